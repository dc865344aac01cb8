"""The daemon a batch talks to: one already answering at the endpoint, or a private ``ned-fx serve`` started for
the run (stopped at the end unless kept, restarted once if it dies mid-run). A started daemon's output goes to a
log file in ``$NED_FX_HOME/logs`` (the last ``keep_logs`` are kept).

Only the standard library, pyzmq/msgpack (through :mod:`ned_fx.client`) and numpy: no torch in this process.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import zmq

from ..client import Client, DaemonError, DaemonUnavailableError
from ..errors import NedFxError

_READY_RE = re.compile(r"ned-fx serve: ready on (\S+)")
#: A started daemon's log file name: ``batch-daemon-YYYYMMDD-HHMMSS-PID-N.log``.
LOG_PREFIX, LOG_SUFFIX = "batch-daemon-", ".log"


class DaemonStartError(NedFxError):
    """A private daemon could not be started (its log's last lines say why, e.g. missing weights)."""

    exit_code = 8


class DaemonLink:
    """A connection point to ``ned-fx serve``.

    Attributes:
        endpoint: where the daemon listens; started: whether this run started it (and owns it);
        engine: the daemon's engine description (``hello``'s ``engine``: engine, backend, device…);
        log: the started daemon's log file (stdout and stderr; in ``$NED_FX_HOME/logs``, see :func:`new_daemon_log`),
            else None; logs: every log of this run (a restarted daemon has its own); pid: its process id, else None.
    """

    def __init__(self, endpoint: str, started: bool = False, proc: subprocess.Popen | None = None,
                 log: Path | None = None, command: list[str] | None = None, config=None):
        self.endpoint, self.started, self.proc, self.log = endpoint, started, proc, log
        self.logs: list[Path] = [log] if log is not None else []     # every started daemon's log (a restart: two)
        self.command = command
        self.config = config
        self.engine: dict = {}
        self.restarts = 0
        self._lock = threading.Lock()
        self._contexts: set = set()          # one zmq context per worker client: terminated if the daemon dies
        self._stopping = False
        self._watchdog: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    # -- connecting ----------------------------------------------------------------------------------------------
    @classmethod
    def connect(cls, config, roots: list[str]) -> "DaemonLink":
        """The daemon at ``config.endpoint`` if one answers a short ping; else a private one (``config.start``).

        Args:
            config: a :class:`~ned_fx.batch.runner.BatchConfig`; roots: folders the daemon must be allowed to read
                (the shots' inputs, references and curves).

        Raises:
            DaemonUnavailableError: none answers and starting one is not allowed (``--no-start``).
            DaemonStartError: a private daemon did not start (its log's tail is in the message).
        """
        if answers(config.endpoint, config.ping_timeout, config.curve):
            link = cls(config.endpoint, config=config)
            link._hello()
            return link
        if not config.start_daemon:
            raise DaemonUnavailableError(
                f"no ned-fx daemon answered at {config.endpoint} within {config.ping_timeout:g}s; start one with "
                f"`ned-fx serve --root FOLDER` (FOLDER holding the plates), give its endpoint with --daemon, or leave "
                f"out --no-start so that ned-fx batch starts a private one")
        command = [sys.executable, "-m", "ned_fx.commands.serve", "--port", "0", "--engine", config.engine,
                   "--device", config.device, *[a for r in _minimal_roots(roots) for a in ("--root", r)],
                   *(() if config.keep_daemon else ("--parent-pid", str(os.getpid())))]
        link = cls("", started=True, command=command, config=config)
        link._start()
        return link

    def _start(self) -> None:
        self.log = new_daemon_log(self.config.daemon_logs, self.config.keep_logs)
        self.logs.append(self.log)
        with open(self.log, "w") as out:          # no preexec_fn: nothing of Python runs between fork and exec
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + self.config.start_timeout
        try:
            while True:
                text = _read(self.log)
                match = _READY_RE.search(text)
                if match:
                    self.endpoint = match.group(1)
                    break
                if self.proc.poll() is not None:
                    raise DaemonStartError(f"the private ned-fx daemon exited at start (code {self.proc.returncode}): "
                                           f"{_tail(text)} (log: {self.log})")
                if time.monotonic() > deadline:
                    self._kill()
                    raise DaemonStartError(f"the private ned-fx daemon was not ready within "
                                           f"{self.config.start_timeout:g}s (log: {self.log}): {_tail(text)}")
                time.sleep(0.05)
        except KeyboardInterrupt:              # Ctrl-C while its engines load: no daemon is left behind
            self._kill()
            raise
        self._hello()
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, name="ned-fx-batch-watchdog", daemon=True)
            self._watchdog.start()

    def _watch(self) -> None:
        """A private daemon that dies fails the requests waiting on it at once (their zmq contexts are terminated)
        instead of after the request timeout; the shots then restart it through :meth:`recover`."""
        while not self._stopping:
            proc = self.proc
            if proc is not None and proc.poll() is not None and not self._stopping:
                with self._lock:
                    doomed = list(self._contexts)
                    self._contexts.clear()
                for ctx in doomed:
                    threading.Thread(target=ctx.term, daemon=True).start()
            time.sleep(0.2)

    def _hello(self) -> None:
        with self.client(timeout=max(5.0, self.config.ping_timeout)) as c:
            self.engine = dict(c.hello().get("engine") or {})

    def client(self, timeout: float | None = None) -> Client:
        """A new :class:`~ned_fx.client.Client` (one per thread; close it when done)."""
        return Client(self.endpoint, timeout=self.config.timeout if timeout is None else timeout,
                      retries=self.config.retries, curve=self.config.curve, hello=True)

    @contextlib.contextmanager
    def worker_client(self) -> Iterator[Client]:
        """A Client on its own zmq context for one worker thread. If a private daemon dies, its pending request
        ends at once with :class:`DaemonUnavailableError` (not after the request timeout)."""
        ctx = zmq.Context()
        with self._lock:
            self._contexts.add(ctx)
        client = None
        try:
            try:
                client = Client(self.endpoint, timeout=self.config.timeout, retries=self.config.retries,
                                curve=self.config.curve, hello=True, context=ctx)
                yield client
            except zmq.ZMQError as exc:
                if exc.errno != zmq.ETERM and not isinstance(exc, zmq.ContextTerminated):
                    raise
                code = self.proc.returncode if self.proc is not None else None
                raise DaemonUnavailableError(f"the private ned-fx daemon stopped (exit code {code}) during the "
                                             f"request; its log: {self.log}") from None
        finally:
            if client is not None:
                client.close()
            with self._lock:
                owned = ctx in self._contexts
                self._contexts.discard(ctx)
            if owned:
                ctx.term()

    # -- failures ------------------------------------------------------------------------------------------------
    def recover(self) -> bool:
        """After a :class:`DaemonUnavailableError`: restart a private daemon that died (once per run).

        Returns:
            True when a fresh daemon is up (open the shot again: written frames are kept), False otherwise.
        """
        if not self.started:
            return False
        with self._lock:
            if self.proc is not None and self.proc.poll() is None:
                return answers(self.endpoint, self.config.ping_timeout, self.config.curve)
            if self.restarts >= 1:
                return False
            self.restarts += 1
            self._start()
            return True

    # -- the end -------------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop a private daemon (a shutdown request, then SIGTERM, then SIGKILL); a kept or external one stays."""
        self._stopping = True
        if not self.started or self.proc is None or self.config.keep_daemon:
            return
        if self.proc.poll() is None:
            try:
                with Client(self.endpoint, timeout=5.0, retries=0, curve=self.config.curve) as c:
                    c.shutdown()
            except (DaemonError, DaemonUnavailableError):
                pass
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self._kill()

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def describe(self) -> dict:
        """What the report says about the daemon."""
        d = {"endpoint": self.endpoint, "started_here": self.started, "engine": self.engine}
        if self.started:
            d.update({"pid": self.pid, "log": str(self.log), "logs": [str(p) for p in self.logs],
                      "kept": bool(self.config.keep_daemon), "restarts": self.restarts})
        return d


def logs_folder(folder: str | os.PathLike | None = None) -> Path:
    """Where started daemons' logs go: ``folder``, else ``$NED_FX_HOME/logs`` (``~/.cache/ned_fx/logs`` when
    ``NED_FX_HOME`` is not set; the same home as :func:`ned_fx.tracking.weights.home`, read here without importing a
    stage package)."""
    if folder:
        return Path(os.path.abspath(folder))
    home = os.environ.get("NED_FX_HOME") or Path.home() / ".cache" / "ned_fx"
    return Path(os.path.abspath(home)) / "logs"


def new_daemon_log(folder: str | os.PathLike | None = None, keep: int = 10) -> Path:
    """Create a new, empty log file for a started daemon in :func:`logs_folder` and remove the oldest daemon logs
    there so that ``keep`` are left (this one included).

    Raises:
        DaemonStartError: the folder cannot be created or written (the message names it).
    """
    base = logs_folder(folder)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        base.mkdir(parents=True, exist_ok=True)
        for i in range(1000):
            path = base / f"{LOG_PREFIX}{stamp}-{os.getpid()}-{i}{LOG_SUFFIX}"
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - a thousand daemons started by one process in one second
            raise FileExistsError(f"no free log name in {base}")
    except OSError as exc:
        raise DaemonStartError(f"cannot write a daemon log in {base}: {exc.strerror or exc}; set NED_FX_HOME to a "
                               f"writable folder") from None
    rotate_logs(base, keep, current=path)
    return path


def rotate_logs(folder: Path, keep: int, current: Path | None = None) -> list[Path]:
    """Remove the oldest ``batch-daemon-*.log`` files in ``folder`` so that ``keep`` are left (``current`` is never
    removed). Returns the files removed."""
    logs = []
    for entry in folder.glob(f"{LOG_PREFIX}*{LOG_SUFFIX}"):
        try:
            logs.append((entry.stat().st_mtime_ns, entry.name, entry))
        except OSError:
            continue                   # removed meanwhile by another batch
    logs.sort()
    removed = []
    for _, _, entry in logs[:max(0, len(logs) - keep)]:
        if current is not None and entry == current:
            continue
        try:
            entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    return removed


def answers(endpoint: str, timeout: float, curve=None) -> bool:
    """Whether a daemon answers a ping at ``endpoint`` within ``timeout`` seconds."""
    try:
        with Client(endpoint, timeout=timeout, retries=0, curve=curve) as c:
            c.ping()
        return True
    except (DaemonUnavailableError, DaemonError):
        return False


def _minimal_roots(paths: list[str]) -> list[str]:
    """The folders to allow: each path's folder, without folders already under another one."""
    folders = sorted({os.path.realpath(p if os.path.isdir(p) else os.path.dirname(p) or ".") for p in paths})
    out: list[str] = []
    for f in folders:
        if not any(f == o or f.startswith(o.rstrip(os.sep) + os.sep) for o in out):
            out.append(f)
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _tail(text: str, lines: int = 6) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "(no output)"
