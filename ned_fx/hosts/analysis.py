"""A shot's analysis run from a host: ``open`` + progress polling in a background thread, cancellable.

The controller never touches the host's UI: it reports :class:`AnalysisUpdate` records through ``on_update``,
called through ``post`` — a host passes its "run this on the main thread" function (Nuke:
``nuke.executeInMainThread``), so every UI change happens where the host wants it. A daemon that is not there is
found by a 2-second ping before anything else, so the host hears "unavailable" at once instead of hanging.

    controller = AnalysisController(link, ShotRequest("/shows/sh010/plate.####.exr", "1001-1100",
                                                      params={"emotion": "happy"}), on_update=show,
                                    post=nuke.executeInMainThread).start()
    ...
    controller.cancel()           # from any thread: the daemon stops at its next frame
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .wire import Client, DaemonError, DaemonUnavailableError, Shot
from .link import DaemonLink

#: Session states the daemon reports, plus the host-side ``connecting`` and ``unavailable``.
STATES = ("connecting", "analysing", "ready", "failed", "cancelled", "unavailable")
FINAL_STATES = ("ready", "failed", "cancelled", "unavailable")


@dataclass(frozen=True)
class ShotRequest:
    """What to analyse: the daemon's ``open`` parameters.

    Attributes:
        path: the shot's source as the daemon sees it (movie, still, ``%04d``/``####`` sequence).
        frames: frame range (``"1001-1100"``; movies: 0-based indices) or None for all.
        params: the instruction and ``face`` (see :func:`ned_fx.hosts.params.open_params`).
        consent: the performer's consent reference; user/host/application: who asks (audit log).
    """

    path: str
    frames: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    consent: str | None = None
    user: str | None = None
    host: str | None = None
    application: str | None = None

    def open_kwargs(self) -> dict:
        extra = {k: v for k, v in (("consent", self.consent), ("user", self.user), ("host", self.host),
                                   ("application", self.application)) if v}
        params = dict(self.params)
        face = params.pop("face", None)
        return {"frames": self.frames, "face": face, **params, **extra}


@dataclass(frozen=True)
class ShotHandle:
    """An analysed session any thread can render from (sessions are not tied to a client connection).

    ``provenance`` is the shot's edit record as the daemon's ``progress`` reply carries it once the session is
    ready (a dict of :class:`ned_fx.provenance.EditRecord`'s fields; None before that, or from a daemon that
    sends none): hosts stamp it on the frames they output (:mod:`ned_fx.hosts.stamps`).
    """

    session: str
    request: ShotRequest
    wire_params: Mapping[str, Any]
    frames: str = ""
    provenance: Mapping[str, Any] | None = None

    def bind(self, client: Client) -> Shot:
        """A :class:`~ned_fx.client.Shot` of this session on ``client`` (reopened by itself after a restart)."""
        shot = Shot(client, dict(self.wire_params))
        shot.id = self.session
        return shot


@dataclass(frozen=True)
class AnalysisUpdate:
    """One report: ``state`` (:data:`STATES`), frames ``done`` of ``total``, a ``message`` for the artist, and
    once ``ready`` the :class:`ShotHandle` to render from."""

    state: str
    done: int = 0
    total: int = 0
    message: str = ""
    handle: ShotHandle | None = None
    code: str = ""

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else (100 if self.state == "ready" else 0)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def _record_dict(value: Any) -> dict | None:
    """The ``provenance`` of a progress reply as a plain dict (None when absent or not a mapping)."""
    return dict(value) if isinstance(value, Mapping) else None


class AnalysisController:
    """Runs one analysis in a background thread.

    Args:
        link: the daemon link; request: what to open.
        on_update: called with each :class:`AnalysisUpdate` (through ``post``).
        post: runs a callable where the host wants UI work done (default: call it directly).
        poll: seconds between progress requests; timeout: give up after this long (the daemon keeps the session).
    """

    def __init__(self, link: DaemonLink, request: ShotRequest,
                 on_update: Callable[[AnalysisUpdate], None] | None = None,
                 post: Callable[..., Any] | None = None, poll: float = 0.2, timeout: float = 24 * 3600.0):
        self.link, self.request = link, request
        self.on_update = on_update or (lambda update: None)
        self.post = post or (lambda fn, *args: fn(*args))
        self.poll, self.timeout = poll, timeout
        self._cancel = threading.Event()
        self._done = threading.Event()
        self.thread: threading.Thread | None = None
        self.last = AnalysisUpdate("connecting", message=f"connecting to {link.config.endpoint}")

    # -- public -------------------------------------------------------------------------------------------------
    def start(self) -> "AnalysisController":
        self.thread = threading.Thread(target=self._run, name="ned-fx-analysis", daemon=True)
        self.thread.start()
        return self

    def cancel(self) -> None:
        """Ask the analysis to stop (any thread); the final update says ``cancelled``."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def wait(self, timeout: float | None = None) -> AnalysisUpdate:
        """Block until the final update (for scripts and tests; a UI should not block)."""
        self._done.wait(timeout)
        return self.last

    @property
    def running(self) -> bool:
        return self.thread is not None and not self._done.is_set()

    # -- the thread ---------------------------------------------------------------------------------------------
    def _report(self, update: AnalysisUpdate) -> None:
        self.last = update
        self.post(self.on_update, update)

    def _run(self) -> None:
        try:
            self._report(self.last)
            self._report(self._analyse())
        except Exception as exc:          # never let a host thread die silently
            self._report(AnalysisUpdate("failed", message=f"analysis failed: {type(exc).__name__}: {exc}",
                                        code="internal"))
        finally:
            self._done.set()

    def _analyse(self) -> AnalysisUpdate:
        status = self.link.check()
        if not status.ok:
            return AnalysisUpdate("unavailable", message=status.message, code="unavailable")
        if self._cancel.is_set():
            return AnalysisUpdate("cancelled", message="cancelled before the analysis started", code="cancelled")
        try:
            shot = self.link.call(lambda c: c.open(self.request.path, **self.request.open_kwargs()))
        except DaemonError as exc:
            return AnalysisUpdate("failed", message=str(exc), code=exc.code)
        except DaemonUnavailableError:
            return AnalysisUpdate("unavailable", message=self.link.status.message, code="unavailable")
        handle = ShotHandle(shot.id, self.request, dict(shot.params), str(shot.info.get("frames", "")))
        end = time.monotonic() + self.timeout
        sent_cancel = False
        while True:
            if self._cancel.is_set() and not sent_cancel:
                try:
                    self.link.call(lambda c: handle.bind(c).cancel())
                except (DaemonError, DaemonUnavailableError):
                    pass
                sent_cancel = True
            try:
                info = self.link.call(lambda c: c.request("progress", session=handle.session).result)
            except DaemonError as exc:
                return AnalysisUpdate("failed", message=str(exc), code=exc.code)
            except DaemonUnavailableError:
                return AnalysisUpdate("unavailable", message=self.link.status.message, code="unavailable")
            state, done, total = info.get("state"), int(info.get("done", 0)), int(info.get("total", 0))
            if state == "ready":
                frames = str(info.get("frames", ""))
                return AnalysisUpdate("ready", done, total, f"analysed {frames or f'{total} frames'}"
                                      f"{' (cached)' if info.get('cached') else ''}",
                                      ShotHandle(handle.session, self.request, handle.wire_params, frames,
                                                 _record_dict(info.get("provenance"))))
            if state in ("failed", "cancelled"):
                err = info.get("error") or {}
                return AnalysisUpdate(state, done, total, str(err.get("message", f"analysis {state}")),
                                      code=str(err.get("code", state)))
            self._report(AnalysisUpdate("analysing", done, total, f"analysing: {done}/{total} frames"
                                        if total else "analysing"))
            if time.monotonic() > end:
                return AnalysisUpdate("failed", done, total, f"the analysis was not done in {self.timeout:g}s",
                                      code="timeout")
            if sent_cancel:
                time.sleep(self.poll)
            else:
                self._cancel.wait(self.poll)
