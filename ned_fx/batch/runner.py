"""``ned-fx batch``: run a shot list through the daemon.

Every shot is a daemon session: ``open`` (the instruction, the frame range, the face, the consent and who asks),
wait for the analysis, then ``render(n)`` for each frame (the daemon reads the plate itself) and write the result
here. Several shots are in flight at once (one :class:`~ned_fx.client.Client` per worker thread), so one shot's
analysis overlaps another's rendering. A shot that fails never stops the others.

* Output frame numbers are the input's (movies: 0-based indices); a movie output keeps the frame rate and the
  (trimmed) audio; a still output is one frame.
* Resumable: for a sequence or still output, frames already on disk that were written by the same edit (same
  plate fingerprint, frames, face, instruction, engine and ned_fx version: a hidden sidecar file beside the output
  holds the key) are kept; writes are atomic, so a frame on disk is complete. A movie output is redone whole.
* Every output file reaches the disk through :func:`write_output`, with a record of the edit.
* A JSON report (per shot: status, frames edited / passed through with reasons / resumed, seconds, outputs,
  errors with their codes) and a before/after contact sheet per shot.

This module imports no torch and no stage package; it needs only the client, the media layer and numpy.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import json
import os
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .. import __version__
from ..client import DaemonError, DaemonUnavailableError
from ..errors import (InputNotFoundError, InvalidParameterError, NedFxError, NoFaceError, OutputWriteError,
                      UnreadableMediaError, UnsupportedFormatError)
from .config import BatchConfig
from .shotlist import Shot, ShotList, output_problem

APPLICATION = "ned-fx batch"
#: Shot statuses in the report.
STATUSES = ("done", "failed", "skipped")
#: The EXR header attribute holding the batch's edit record (JSON).
EXR_RECORD_ATTRIBUTE = "ned_fx/batch_record"

#: ``progress(shot, stage, done, total)``; stage: ``analysing``, ``rendering``, or a final status.
Progress = Callable[[str, str, int, int], None]


class BatchFailedError(NedFxError):
    """Some shots of a batch failed (the others were done; the report lists each error with its code)."""

    exit_code = 9


@dataclass(frozen=True)
class ShotResult:
    """What happened to one shot.

    Attributes:
        name, input, output: the shot; status: ``done``, ``failed`` or ``skipped`` (reason in ``reason``).
        frames: the frame numbers of the shot; edited: frames edited this run; passed_through: frame -> why it
            was written unchanged (``no face``…); resumed: frames kept from an earlier run of the same edit.
        seconds: ``analysis``, ``render`` (render + write) and ``total``; cached: the analysis came from the
            daemon's cache; outputs: files written (a sequence: its pattern); contact_sheet: its path.
        error: ``{"code", "message", "exit_code", "type"}`` for a failed shot.
    """

    name: str
    input: str
    output: str
    status: str
    frames: tuple[int, ...] = ()
    edited: tuple[int, ...] = ()
    passed_through: Mapping[int, str] = field(default_factory=dict)
    resumed: tuple[int, ...] = ()
    seconds: Mapping[str, float] = field(default_factory=dict)
    cached: bool = False
    outputs: tuple[str, ...] = ()
    contact_sheet: str | None = None
    reason: str | None = None
    error: Mapping[str, Any] | None = None

    def as_dict(self) -> dict:
        """The report's entry: counts and compact frame ranges."""
        reasons: dict[str, list[int]] = {}
        for n, why in sorted(self.passed_through.items()):
            reasons.setdefault(why, []).append(n)
        d = {"name": self.name, "status": self.status, "input": self.input, "output": self.output,
             "frames": _ranges(self.frames), "frames_total": len(self.frames),
             "edited": {"count": len(self.edited), "frames": _ranges(self.edited)},
             "passed_through": {why: {"count": len(ns), "frames": _ranges(ns)} for why, ns in reasons.items()},
             "resumed": {"count": len(self.resumed), "frames": _ranges(self.resumed)},
             "seconds": {k: round(v, 3) for k, v in self.seconds.items()}, "analysis_cached": self.cached,
             "outputs": list(self.outputs), "contact_sheet": self.contact_sheet}
        if self.reason:
            d["reason"] = self.reason
        if self.error:
            d["error"] = dict(self.error)
        return d


@dataclass(frozen=True)
class BatchReport:
    """The outcome of a batch: one :class:`ShotResult` per shot, the daemon used, times, the report's path."""

    shotlist: str
    shots: tuple[ShotResult, ...]
    daemon: Mapping[str, Any]
    started: str
    seconds: float
    path: str | None = None
    interrupted: bool = False

    @property
    def failed(self) -> tuple[ShotResult, ...]:
        return tuple(s for s in self.shots if s.status == "failed")

    def counts(self) -> dict:
        return {s: sum(1 for r in self.shots if r.status == s) for s in STATUSES}

    def as_dict(self) -> dict:
        return {"ned_fx": __version__, "application": APPLICATION, "shotlist": self.shotlist, "started": self.started,
                "seconds": round(self.seconds, 3), "interrupted": self.interrupted, "summary": self.counts(),
                "daemon": dict(self.daemon), "shots": [s.as_dict() for s in self.shots]}


# ---- the one place outputs reach the disk ------------------------------------------------------------------------

def write_output(path: str | os.PathLike, content, record: Mapping[str, Any],
                 metadata: Mapping[str, Any] | None = None) -> Path:
    """Write one output of the batch atomically, with a record of the edit. Every file the batch delivers (frames,
    stills, movies, contact sheets) goes through here, so provenance is attached in one place.

    Args:
        path: the file; content: a :class:`~ned_fx.media.Frame` or an RGB8 array (a still or one sequence frame),
            or a :class:`~ned_fx.media.MovieWriter` whose frames were encoded (it is finished and renamed onto
            ``path`` here).
        record: what was done: tool and version, application, shot, source file and frame, parameters, engine,
            consent, user, host, time. EXR files carry it as the ``ned_fx/batch_record`` header attribute (JSON);
            other formats do not carry it yet.
        metadata: EXR header attributes to keep (e.g. the source plate's).

    Returns:
        the path written.

    Raises:
        OutputWriteError: it could not be written (nothing half-written is left);
        InvalidParameterError: the pixels do not fit the format (e.g. 8-bit pixels to EXR).
    """
    from ..media import MovieWriter, write_image

    p = Path(path)
    if isinstance(content, MovieWriter):
        if Path(content.path) != p:
            raise InvalidParameterError(f"the movie writer writes {content.path}, not {p}")
        return content.close()
    if p.suffix.lower() == ".exr":
        attrs = {**(metadata or {}), EXR_RECORD_ATTRIBUTE: json.dumps(record, sort_keys=True, default=str)}
        return write_image(p, content, metadata=attrs)
    return write_image(p, content)


# ---- running a shot list -----------------------------------------------------------------------------------------

def default_report_path(shotlist: ShotList) -> Path:
    """``<folder of the shot list>/<its stem>_report.json`` (the current folder for an in-memory list)."""
    if shotlist.source and os.path.isfile(shotlist.source):
        src = Path(shotlist.source)
        return src.parent / f"{src.stem}_report.json"
    return Path.cwd() / f"{shotlist.name}_report.json"


def run_batch(shotlist: ShotList, config: BatchConfig = BatchConfig(), progress: Progress | None = None,
              link=None) -> BatchReport:
    """Run every shot of a shot list through the daemon, write the report and the contact sheets.

    Args:
        shotlist: the shots; config: how to run (daemon, jobs, resume, report…);
        progress: called as ``progress(shot, stage, done, total)`` from worker threads;
        link: a connected :class:`~ned_fx.batch.connect.DaemonLink` to use (default: connect per ``config``).

    Returns:
        the :class:`BatchReport` (also written to ``report.path``). Failed shots are in it with their errors;
        raise :class:`BatchFailedError` from it if a non-zero exit is wanted.

    Raises:
        DaemonUnavailableError: no daemon and starting one is not allowed; DaemonStartError: one did not start.
        OutputWriteError: the report cannot be written. KeyboardInterrupt: after the report of what was done.
    """
    from .connect import DaemonLink

    started_at, t0 = _now(), time.perf_counter()
    report_path = Path(os.path.abspath(config.report if config.report else default_report_path(shotlist)))
    sheets = _sheet_folder(config, report_path, shotlist)
    selected = set(config.shots) if config.shots else None
    if selected:
        shotlist.select(config.shots)         # unknown names are an error before any work
    who = {"user": config.user or _user(), "host": config.host or socket.gethostname()}
    shots = list(shotlist.shots)
    results: dict[str, ShotResult] = {}
    plans: list[ShotPlan] = []
    for shot in shots:
        if selected is not None and shot.name not in selected:
            results[shot.name] = ShotResult(shot.name, shot.input, shot.output, "skipped", reason="not selected")
            continue
        try:
            plans.append(plan_shot(shot, config))
        except Exception as exc:
            results[shot.name] = _failed(shot, exc, time.perf_counter())
    own_link = link is None
    stop = threading.Event()
    interrupted = False
    if own_link and plans:
        link = DaemonLink.connect(config, _roots(p.shot for p in plans))
    try:
        if plans:
            if progress:
                progress("", "total", 0, sum(len(p.numbers) for p in plans))
            with ThreadPoolExecutor(max(1, min(config.jobs, len(plans))), thread_name_prefix="ned-fx-batch") as pool:
                futures = {pool.submit(_run_shot, p, link, config, who, sheets, progress, stop): p for p in plans}
                try:
                    for fut, p in futures.items():
                        results[p.shot.name] = fut.result()
                except KeyboardInterrupt:
                    interrupted = True
                    stop.set()
                    for fut, p in futures.items():
                        fut.cancel()
                    for fut, p in futures.items():
                        if p.shot.name not in results:
                            try:
                                results[p.shot.name] = fut.result()
                            except BaseException:
                                results[p.shot.name] = _failed(p.shot, KeyboardInterrupt(), time.perf_counter())
    finally:
        stop.set()                            # whatever ends the run, no worker starts another frame
        daemon = link.describe() if link is not None else {"endpoint": config.endpoint, "used": False}
        if own_link and link is not None:
            link.stop()
        ordered = tuple(results[s.name] for s in shots if s.name in results)
        report = BatchReport(str(shotlist.source or shotlist.name), ordered, daemon, started_at,
                             time.perf_counter() - t0, str(report_path), interrupted)
        _write_report(report, report_path)
    if interrupted:
        raise KeyboardInterrupt
    return report


def _sheet_folder(config: BatchConfig, report_path: Path, shotlist: ShotList) -> Path | None:
    if config.contact_sheets == "":
        return None
    if config.contact_sheets:
        return Path(config.contact_sheets)
    return report_path.parent / f"{report_path.stem.removesuffix('_report')}_contact"


def _write_report(report: BatchReport, path: Path) -> None:
    from ..media import atomic_output

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"cannot create the folder {path.parent} for the report: {exc.strerror}") from None
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(report.as_dict(), indent=2, default=str))


def _roots(shots) -> list[str]:
    paths = []
    for s in shots:
        paths += [s.input] + [p for p in (s.reference, s.curve) if p]
    return paths


# ---- one shot ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShotPlan:
    """A shot checked and counted before any daemon work: its frame numbers, what is already written."""

    shot: Shot
    kind: str                       # output kind: sequence | movie | image
    numbers: tuple[int, ...]        # the shot's frame numbers (the input's)
    fps: float | None
    input_kind: str
    key: str | None = None          # resume key (sequences and stills)
    done: frozenset = frozenset()   # frames already written by the same edit


def plan_shot(shot: Shot, config: BatchConfig) -> ShotPlan:
    """Check a shot (readable input, instruction, output kind) and count its frames; touches no output."""
    from ..media import ensure_not_input, open_media
    from ..pipeline import EditInstruction, check_instruction

    check_instruction(EditInstruction(**shot.instruction()))
    with open_media(shot.input, shot.frames) as src:
        numbers = tuple(int(n) for n in src.frame_numbers)
        fps, input_kind = src.fps, src.kind
    ensure_not_input(shot.output, [shot.input])
    problem = output_problem(shot, input_kind, len(numbers))
    if problem:
        raise InvalidParameterError(problem)
    return ShotPlan(shot, shot.output_kind, numbers, fps, input_kind)


def _resume_key(plan: ShotPlan, engine: str) -> str:
    from ..daemon.sessions import fingerprint

    shot = plan.shot
    doc = {"source": os.path.realpath(shot.input), "fingerprint": fingerprint(Path(shot.input)),
           "frames": [plan.numbers[0], plan.numbers[-1], len(plan.numbers)], "face": shot.face,
           "instruction": shot.instruction(), "engine": engine, "version": __version__}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _sidecar(output: str) -> Path:
    p = Path(output)
    return p.parent / f".{p.name}.ned_fx_batch.json"


def _frame_path(plan: ShotPlan, number: int) -> Path:
    """Where frame ``number`` of a sequence or still output goes."""
    from ..media import sequence_path

    return sequence_path(plan.shot.output, number) if plan.kind == "sequence" else Path(plan.shot.output)


def _clean_stale_temps(output: str, kind: str) -> int:
    """Remove temporary files a killed run left for this output (``.NAME.XXXXXXXX.tmp.EXT``)."""
    from ..media import parse_sequence_pattern

    if kind == "sequence":
        seq = parse_sequence_pattern(output)
        folder, name = seq.folder, re.escape(seq.prefix) + r"-?\d+" + re.escape(seq.suffix)
    else:
        folder, name = Path(output).parent, re.escape(Path(output).name)
    stale = re.compile(r"\." + name + r"\.[0-9a-f]{8}\.tmp" + re.escape(Path(output).suffix.lower()) + r"\Z")
    removed = 0
    if folder.is_dir():
        for entry in os.scandir(folder):
            if stale.match(entry.name):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError:
                    pass
    return removed


def _prepare_output(plan: ShotPlan, engine: str, resume: bool) -> ShotPlan:
    """Create the output folder; for a sequence or a still, find the frames already written by the same edit,
    write the sidecar with this edit's key and remove stale temporary files (a movie is always redone)."""
    out = Path(plan.shot.output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"cannot create the folder {out.parent}: {exc.strerror or exc}") from None
    if plan.kind == "movie":
        return plan
    from ..media.writers import atomic_output

    key = _resume_key(plan, engine)
    sidecar = _sidecar(plan.shot.output)
    done: set[int] = set()
    if resume and sidecar.is_file():
        try:
            if json.loads(sidecar.read_text()).get("key") == key:
                done = {n for n in plan.numbers if _frame_path(plan, n).is_file()}
        except (OSError, ValueError):
            done = set()
    _clean_stale_temps(plan.shot.output, plan.kind)
    with atomic_output(sidecar) as tmp:
        tmp.write_text(json.dumps({"key": key, "shot": plan.shot.name, "source": plan.shot.input,
                                   "instruction": plan.shot.instruction(), "engine": engine,
                                   "ned_fx": __version__}, indent=2))
    return dataclasses.replace(plan, key=key, done=frozenset(done))


def _run_shot(plan: ShotPlan, link, config: BatchConfig, who: dict, sheets: Path | None, progress: Progress | None,
              stop: threading.Event) -> ShotResult:
    """One shot from start to end; every failure becomes a failed :class:`ShotResult` (never raised)."""
    t0 = time.perf_counter()
    attempts = 0
    while True:
        try:
            result = _ShotJob(plan, link, config, who, sheets, progress, stop).run(t0)
            break
        except DaemonUnavailableError as exc:
            attempts += 1
            if attempts == 1 and not stop.is_set() and link.recover():
                continue        # a fresh private daemon: open again, the frames written so far are kept
            result = _failed(plan.shot, exc, t0, plan.numbers)
            break
        except BaseException as exc:
            result = _failed(plan.shot, exc, t0, plan.numbers)
            break
    if progress:
        progress(plan.shot.name, result.status, len(result.edited) + len(result.passed_through), len(plan.numbers))
    return result


class _ShotJob:
    """Renders one shot through one client (its own thread)."""

    def __init__(self, plan: ShotPlan, link, config: BatchConfig, who: dict, sheets: Path | None,
                 progress: Progress | None, stop: threading.Event):
        self.plan, self.link, self.config, self.who = plan, link, config, who
        self.sheets, self.progress, self.stop = sheets, progress, stop
        self.shot = plan.shot
        self.engine = str(link.engine.get("engine", "unknown"))

    def _report(self, stage: str, done: int, total: int) -> None:
        if self.progress:
            self.progress(self.shot.name, stage, done, total)

    def run(self, t0: float) -> ShotResult:
        plan = _prepare_output(self.plan, self.engine, self.config.resume)
        shot = self.shot
        todo = [n for n in plan.numbers if n not in plan.done]
        samples = _sample_numbers(plan.numbers, self.config.samples)
        outputs = (shot.output,)
        if not todo:
            sheet = self._contact_sheet(plan, {}, samples, only_if_missing=True)
            self._report("resumed", len(plan.numbers), len(plan.numbers))
            return ShotResult(shot.name, shot.input, shot.output, "skipped", plan.numbers, resumed=tuple(plan.numbers),
                              seconds={"total": time.perf_counter() - t0}, outputs=outputs, contact_sheet=sheet,
                              reason="every frame was already written by the same edit")
        edited: list[int] = []
        passed: dict[int, str] = {}
        afters: dict[int, tuple[np.ndarray, str | None]] = {}
        header = self._source_header(plan)
        with self.link.worker_client() as client:
            session = client.open(shot.input, frames=shot.frames, face=shot.face, consent=shot.consent,
                                  user=self.who["user"], host=self.who["host"], application=APPLICATION,
                                  **shot.instruction())
            try:
                ta = time.perf_counter()
                self._report("analysing", 0, len(plan.numbers))
                info = session.wait(timeout=self.config.analysis_timeout, poll=0.1,
                                    callback=lambda d, n: (self._check_stop(session),
                                                           self._report("analysing", d, n)))
                analysis = time.perf_counter() - ta
                cached = bool(info.get("cached"))
                if int(info.get("total", len(plan.numbers))) != len(plan.numbers):
                    raise InvalidParameterError(f"the daemon sees {info.get('total')} frames in {shot.input} but this "
                                                f"machine sees {len(plan.numbers)}; is the plate the same file on both?")
                tr = time.perf_counter()
                if plan.done:
                    self._report("resumed", len(plan.done), len(plan.numbers))
                movie = None
                try:
                    for i, n in enumerate(todo, 1):
                        self._check_stop(session)
                        pixels, reply = session.render(n, with_info=True)
                        frame = _frame_from_reply(n, pixels, reply.specs[0])
                        reason = (reply.result or {}).get("reason")
                        record = self._record(n, reason)
                        if plan.kind == "movie":
                            movie = self._movie_frame(plan, frame, movie)
                        else:
                            write_output(_frame_path(plan, n), frame, record, metadata=header)
                        if reason is None:
                            edited.append(n)
                        else:
                            passed[n] = str(reason)
                        if n in samples:
                            afters[n] = (_display(frame), reason)
                        self._report("rendering", i, len(todo))
                    if movie is not None:
                        write_output(shot.output, movie, self._record(None, None, edited=len(edited)))
                        movie = None
                finally:
                    if movie is not None:
                        movie.abort()
                render = time.perf_counter() - tr
            except DaemonUnavailableError:
                session = None                # no daemon to close the session on
                raise
            finally:
                if session is not None:
                    try:
                        session.close()
                    except NedFxError:
                        pass
        sheet = self._contact_sheet(plan, afters, samples)
        return ShotResult(shot.name, shot.input, shot.output, "done", plan.numbers, tuple(edited), passed,
                          tuple(sorted(plan.done)),
                          {"analysis": analysis, "render": render, "total": time.perf_counter() - t0}, cached,
                          outputs, sheet)

    def _check_stop(self, session) -> None:
        if self.stop.is_set():
            try:
                session.cancel()
            except NedFxError:
                pass
            raise KeyboardInterrupt

    def _record(self, number: int | None, reason: str | None, **extra) -> dict:
        shot = self.shot
        rec = {"tool": "ned_fx", "version": __version__, "application": APPLICATION, "shot": shot.name,
               "source": shot.input, "frames": shot.frames, "face": shot.face, "parameters": shot.instruction(),
               "engine": self.link.engine, "consent": shot.consent, "user": self.who["user"],
               "host": self.who["host"], "time": _now()}
        if number is not None:
            rec.update({"source_frame": number, "output_frame": number, "edited": reason is None,
                        "reason": reason})
        rec.update(extra)
        return rec

    def _movie_frame(self, plan: ShotPlan, frame, movie):
        from ..media import MovieWriter

        rgb = _display(frame)
        if movie is None:
            fps = plan.fps or 25.0
            start = plan.numbers[0] / fps               # movie frame numbers are 0-based indices
            movie = MovieWriter(self.shot.output, fps, rgb.shape[1], rgb.shape[0],
                                audio_from=self.shot.input if plan.input_kind == "movie" else None,
                                audio_range=(start, start + len(plan.numbers) / fps))
        movie.write(rgb)
        return movie

    def _source_header(self, plan: ShotPlan) -> dict | None:
        """The source plate's EXR header attributes, carried to EXR outputs (the wire carries pixels only)."""
        if Path(self.shot.output).suffix.lower() != ".exr" or Path(self.shot.input).suffix.lower() != ".exr":
            return None
        try:
            from ..media import sequence_path
            from ..media.readers import _open_exr

            first = plan.numbers[0]
            path = sequence_path(self.shot.input, first) if plan.input_kind == "sequence" else Path(self.shot.input)
            header, _ = _open_exr(path, first, header_only=True)
        except Exception:
            return None
        skip = {"channels", "dataWindow", "displayWindow", "type", "tiles", "chunkCount", "version"}
        return {k: v for k, v in header.items() if k not in skip}

    def _contact_sheet(self, plan: ShotPlan, afters: dict, samples: tuple[int, ...],
                       only_if_missing: bool = False) -> str | None:
        if self.sheets is None:
            return None
        from .contact import contact_sheet, sheet_path

        path = sheet_path(self.sheets, self.shot.name)
        if only_if_missing and path.is_file():
            return str(path)
        try:
            picture = contact_sheet(self.shot, plan.kind, samples, afters, self.config.sheet_width, self.engine)
            self.sheets.mkdir(parents=True, exist_ok=True)
            write_output(path, picture, self._record(None, None, contact_sheet=list(samples)))
        except Exception:          # a sheet that cannot be made never fails the shot
            return None
        return str(path)


def _frame_from_reply(number: int, pixels: np.ndarray, spec):
    from ..media import Frame

    return Frame(number, pixels, tuple(spec.channels), tuple(spec.data_window) if spec.data_window else None,
                 tuple(spec.display_window) if spec.display_window else None)


def _display(frame) -> np.ndarray:
    from ..pipeline import display_plate

    return display_plate(frame)


def _sample_numbers(numbers: tuple[int, ...], k: int) -> tuple[int, ...]:
    """``k`` frame numbers spread evenly over the shot (first and last included)."""
    if len(numbers) <= k:
        return tuple(numbers)
    index = np.unique(np.round(np.linspace(0, len(numbers) - 1, k)).astype(int))
    return tuple(numbers[i] for i in index)


def error_code(exc: BaseException) -> str:
    """The report's code for an exception: the daemon's own code, or one named after the error's kind."""
    if isinstance(exc, DaemonError):
        return exc.code
    if isinstance(exc, DaemonUnavailableError):
        return "daemon_unavailable"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, (InputNotFoundError, FileNotFoundError)):
        return "not_found"
    if isinstance(exc, (UnsupportedFormatError, UnreadableMediaError)):
        return "unsupported"
    if isinstance(exc, NoFaceError):
        return "no_face"
    if isinstance(exc, OutputWriteError):
        return "write_failed"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, NedFxError):
        return "invalid_parameter"
    return "internal"


def _failed(shot: Shot, exc: BaseException, t0: float, numbers: tuple[int, ...] = ()) -> ShotResult:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, KeyboardInterrupt):
        message = "interrupted before the shot was finished; run the batch again to resume"
    elif not isinstance(exc, NedFxError):
        message = f"{type(exc).__name__}: {message}"
    return ShotResult(shot.name, shot.input, shot.output, "failed", numbers,
                      seconds={"total": time.perf_counter() - t0},
                      error={"code": error_code(exc), "message": message, "type": type(exc).__name__,
                             "exit_code": int(getattr(exc, "exit_code", 1))})


def _ranges(numbers) -> str:
    numbers = sorted(int(n) for n in numbers)
    if not numbers:
        return ""
    from ..media.frames import describe_numbers

    return describe_numbers(numbers, limit=1000)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
