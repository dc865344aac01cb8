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
* Every output file reaches the disk through :func:`write_output`, carrying the edit's provenance record
  (:class:`~ned_fx.provenance.EditRecord`, the one the daemon made for the session) in its own metadata: per frame
  the source frame number, that frame file's SHA-256 for a sequence plate, and whether it was edited or passed
  through (and why); movies and contact sheets carry the shot's record.
* An append-only audit log (:class:`~ned_fx.provenance.AuditLog`, JSON lines): one ``batch_shot`` line per shot
  (status, who, shot, parameters, consent, engine, every output written with its SHA-256, the error of a failed
  shot) and a ``batch`` line at the end.
* A JSON report (per shot: status, frames edited / passed through with reasons / resumed, seconds, outputs,
  errors with their codes) and a before/after contact sheet per shot.

This module imports no torch and no stage package; it needs only the client, the media layer, the provenance
package (standard library only) and numpy.
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
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .. import __version__
from ..client import DaemonError, DaemonUnavailableError
from ..errors import (InputNotFoundError, InvalidParameterError, NedFxError, NoFaceError, OutputWriteError,
                      UnreadableMediaError, UnsupportedFormatError)
from .config import INTERRUPTED, NOT_STARTED, STATUSES, BatchConfig
from .shotlist import Shot, ShotList, output_problem

APPLICATION = "ned-fx batch"
#: Audit-log events of a batch: one per shot, one for the whole run.
AUDIT_SHOT_EVENT, AUDIT_BATCH_EVENT = "batch_shot", "batch"

#: ``progress(shot, stage, done, total)``; stage: ``analysing``, ``rendering``, or a final status.
Progress = Callable[[str, str, int, int], None]


class BatchFailedError(NedFxError):
    """Some shots of a batch failed (the others were done; the report lists each error with its code)."""

    exit_code = 9


class BatchInterrupted(KeyboardInterrupt):
    """The batch was interrupted (Ctrl-C, SIGTERM); raised after its report was written. ``report`` is that
    :class:`BatchReport`: shots in flight are ``interrupted`` (with the frames they wrote), the others
    ``not started``."""

    def __init__(self, report: "BatchReport"):
        super().__init__("the batch was interrupted; run it again to resume")
        self.report = report


@dataclass(frozen=True)
class ShotResult:
    """What happened to one shot.

    Attributes:
        name, input, output: the shot; status: one of :data:`~ned_fx.batch.config.STATUSES` (``done``, ``failed``,
            ``skipped``; after an interrupt ``interrupted`` or ``not started``), the reason in ``reason``.
        frames: the frame numbers of the shot; edited: frames edited and written this run; passed_through: frame ->
            why it was written unchanged (``no face``…); resumed: frames kept from an earlier run of the same edit
            (for a shot ``not started``: those on disk that a run will keep). An ``interrupted`` shot counts only
            the frames that reached the disk (a movie is written whole or not at all).
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
    audit_log: str | None = None

    @property
    def failed(self) -> tuple[ShotResult, ...]:
        return tuple(s for s in self.shots if s.status == "failed")

    def counts(self) -> dict:
        return {s: sum(1 for r in self.shots if r.status == s) for s in STATUSES}

    def as_dict(self) -> dict:
        return {"ned_fx": __version__, "application": APPLICATION, "shotlist": self.shotlist, "started": self.started,
                "seconds": round(self.seconds, 3), "interrupted": self.interrupted, "summary": self.counts(),
                "daemon": dict(self.daemon), "audit_log": self.audit_log,
                "shots": [s.as_dict() for s in self.shots]}


# ---- the one place outputs reach the disk ------------------------------------------------------------------------

def write_output(path: str | os.PathLike, content, record, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write one output of the batch atomically, carrying the edit's provenance. Every file the batch delivers
    (frames, stills, movies, contact sheets) goes through here, so no output leaves without saying it was edited.

    Args:
        path: the file; content: a :class:`~ned_fx.media.Frame` or an RGB8 array (a still or one sequence frame),
            or a :class:`~ned_fx.media.MovieWriter` whose frames were encoded (it is finished and renamed onto
            ``path`` here; it was created with ``provenance=record``, which its container tags carry).
        record: the :class:`~ned_fx.provenance.EditRecord` (or its dict) this file carries in its own metadata:
            EXR header attributes, PNG text chunks, TIFF/JPEG XMP, DPX header, movie container tags (see
            :mod:`ned_fx.provenance.embed`; :func:`ned_fx.media.readers.read_provenance` reads it back).
        metadata: EXR header attributes to keep (e.g. the source plate's); other formats ignore it.

    Returns:
        the path written.

    Raises:
        OutputWriteError: it could not be written (nothing half-written is left);
        InvalidParameterError: the pixels do not fit the format (e.g. 8-bit pixels to EXR), a format that cannot
            carry provenance (BMP), or no record; ProvenanceError: ``record`` is not a valid record.
    """
    from ..media import MovieWriter, write_image

    p = Path(path)
    if record is None:
        raise InvalidParameterError(f"{p.name}: every output of the batch carries the record of its edit; none given")
    if isinstance(content, MovieWriter):
        if Path(content.path) != p:
            raise InvalidParameterError(f"the movie writer writes {content.path}, not {p}")
        return content.close()
    keep = dict(metadata) if metadata and p.suffix.lower() == ".exr" else None
    return write_image(p, content, metadata=keep, provenance=record)


# ---- running a shot list -----------------------------------------------------------------------------------------

def default_report_path(shotlist: ShotList) -> Path:
    """``<folder of the shot list>/<its stem>_report.json`` (the current folder for an in-memory list)."""
    if shotlist.source and os.path.isfile(shotlist.source):
        src = Path(shotlist.source)
        return src.parent / f"{src.stem}_report.json"
    return Path.cwd() / f"{shotlist.name}_report.json"


def run_batch(shotlist: ShotList, config: BatchConfig = BatchConfig(), progress: Progress | None = None,
              link=None) -> BatchReport:
    """Run every shot of a shot list through the daemon, write the report, the contact sheets and the audit lines.

    Args:
        shotlist: the shots; config: how to run (daemon, jobs, resume, report, audit log…);
        progress: called as ``progress(shot, stage, done, total)`` from worker threads;
        link: a connected :class:`~ned_fx.batch.connect.DaemonLink` to use (default: connect per ``config``).

    Returns:
        the :class:`BatchReport` (also written to ``report.path``). Failed shots are in it with their errors;
        raise :class:`BatchFailedError` from it if a non-zero exit is wanted.

    Raises:
        AuditLogError: the audit log cannot be written (checked before any work; if a line fails later, raised
            after the report is written). DaemonUnavailableError: no daemon and starting one is not allowed;
        DaemonStartError: one did not start. OutputWriteError: the report cannot be written.
        KeyboardInterrupt: after the report of what was done.
    """
    from .connect import DaemonLink

    started_at, t0 = _now(), time.perf_counter()
    report_path = Path(os.path.abspath(config.report if config.report else default_report_path(shotlist)))
    sheets = _sheet_folder(config, report_path, shotlist)
    selected = set(config.shots) if config.shots else None
    if selected:
        shotlist.select(config.shots)         # unknown names are an error before any work
    who = {"user": config.user or _user(), "host": config.host or socket.gethostname()}
    auditor = _Auditor.open(config, shotlist, who)     # a log that cannot be written fails now, not after the work
    shots = list(shotlist.shots)
    results: dict[str, ShotResult] = {}
    plans: list[ShotPlan] = []
    interrupted = False
    try:
        for shot in shots:
            if selected is not None and shot.name not in selected:
                results[shot.name] = ShotResult(shot.name, shot.input, shot.output, "skipped", reason="not selected")
                continue
            try:
                plans.append(plan_shot(shot, config))
            except Exception as exc:
                results[shot.name] = _failed(shot, exc, time.perf_counter())
        own_link = link is None
        if own_link and plans:
            link = DaemonLink.connect(config, _roots(p.shot for p in plans))
    except KeyboardInterrupt:            # while planning or while a private daemon starts: nothing began
        interrupted, own_link = True, link is None
    stop = threading.Event()
    pool = None
    futures: dict = {}
    try:
        try:
            if plans and not interrupted:
                if progress:
                    progress("", "total", 0, sum(len(p.numbers) for p in plans))
                pool = ThreadPoolExecutor(max(1, min(config.jobs, len(plans))), thread_name_prefix="ned-fx-batch")
                futures = {pool.submit(_run_shot, p, link, config, who, sheets, progress, stop, auditor): p
                           for p in plans}
                for fut, p in futures.items():
                    results[p.shot.name] = fut.result()
        except KeyboardInterrupt:
            interrupted = True
            stop.set()                    # shots in flight stop before their next frame; the others never start
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        stop.set()                            # whatever ends the run, no worker starts another frame
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        engine = str(link.engine.get("engine", "unknown")) if link is not None else None
        for fut, p in futures.items():
            if p.shot.name not in results:
                results[p.shot.name] = _after_interrupt(fut, p, config, engine)
        for p in plans:                      # never submitted (interrupted while planning or connecting)
            if p.shot.name not in results:
                results[p.shot.name] = _not_started(p, config, engine)
        for shot in shots:                   # interrupted before it was planned
            if shot.name not in results and interrupted:
                results[shot.name] = ShotResult(shot.name, shot.input, shot.output, NOT_STARTED,
                                                reason="interrupted before the shot began")
        daemon = link.describe() if link is not None else {"endpoint": config.endpoint, "used": False}
        if own_link and link is not None:
            link.stop()
        ordered = tuple(results[s.name] for s in shots if s.name in results)
        report = BatchReport(str(shotlist.source or shotlist.name), ordered, daemon, started_at,
                             time.perf_counter() - t0, str(report_path), interrupted,
                             str(auditor.log.path) if auditor.log is not None else None)
        try:
            _write_report(report, report_path)
        finally:
            # shots that never reached a worker (not selected, refused when planned, cancelled), then the run
            for shot, result in zip((s for s in shots if s.name in results), ordered):
                auditor.shot(shot, result)
            auditor.batch(report, ordered)
    if interrupted:
        raise BatchInterrupted(report)
    auditor.raise_failure()
    return report


def _after_interrupt(fut, plan: "ShotPlan", config: BatchConfig, engine: str | None) -> ShotResult:
    """The result of a shot whose future was not collected before the interrupt: its worker's own result (an
    ``interrupted`` shot with the frames it wrote, or one that ended meanwhile), else ``not started``."""
    if fut.done() and not fut.cancelled():
        try:
            return fut.result()
        except BaseException as exc:            # _run_shot never raises; this is the last resort
            return _failed(plan.shot, exc, time.perf_counter(), plan.numbers)
    return _not_started(plan, config, engine)


def _not_started(plan: "ShotPlan", config: BatchConfig, engine: str | None) -> ShotResult:
    """A shot the interrupt came before: its frames already on disk from an earlier run of the same edit are
    counted as ``resumed`` (the next run keeps them)."""
    kept: frozenset = frozenset()
    if engine is not None and config.resume and plan.kind != "movie":
        try:
            kept = _kept_frames(plan, _resume_key(plan, engine))
        except Exception:
            kept = frozenset()
    shot = plan.shot
    return ShotResult(shot.name, shot.input, shot.output, NOT_STARTED, plan.numbers, resumed=tuple(sorted(kept)),
                      outputs=(shot.output,) if kept else (),
                      reason="interrupted before the shot began; run the batch again to render it")


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
        paths += [s.input, *(p for p in (s.reference, s.curve) if p), *s.session_files()]
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
    """Check a shot (readable input, instruction, consent reference, output kind) and count its frames; touches no
    output."""
    from ..media import ensure_not_input, open_media
    from ..pipeline import EditInstruction, check_instruction, check_render_files
    from ..provenance import normalise_consent

    check_instruction(EditInstruction(**shot.instruction()))
    check_render_files(shot.actor_footage or (), shot.holdout_matte, shot.checkpoint)
    normalise_consent(shot.consent)
    with open_media(shot.input, shot.frames) as src:
        numbers = tuple(int(n) for n in src.frame_numbers)
        fps, input_kind = src.fps, src.kind
    ensure_not_input(shot.output, [shot.input, *shot.session_files()])
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
    if shot.session_options():      # absent when not set: the keys of shots without session options stay valid
        doc["session"] = shot.session_options()
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
    done = _kept_frames(plan, key) if resume else frozenset()
    _clean_stale_temps(plan.shot.output, plan.kind)
    with atomic_output(sidecar) as tmp:
        tmp.write_text(json.dumps({"key": key, "shot": plan.shot.name, "source": plan.shot.input,
                                   "instruction": plan.shot.instruction(), "engine": engine,
                                   **({"session": plan.shot.session_options()} if plan.shot.session_options() else {}),
                                   "ned_fx": __version__}, indent=2))
    return dataclasses.replace(plan, key=key, done=frozenset(done))


def _kept_frames(plan: ShotPlan, key: str) -> frozenset:
    """The frames of a sequence or still output on disk that were written by the edit ``key`` names (the sidecar
    beside them holds the key of the edit that wrote them); nothing is written."""
    sidecar = _sidecar(plan.shot.output)
    try:
        if sidecar.is_file() and json.loads(sidecar.read_text()).get("key") == key:
            return frozenset(n for n in plan.numbers if _frame_path(plan, n).is_file())
    except (OSError, ValueError):
        pass
    return frozenset()


def _written_record(plan: ShotPlan):
    """The edit record an already written output frame carries (its first frame), or None if it carries none.
    For a sequence its ``source_sha256`` is that frame's source file's."""
    from ..media.readers import read_provenance

    try:
        return read_provenance(_frame_path(plan, plan.numbers[0]))
    except Exception:          # a frame we cannot read back costs the audit line these two fields only
        return None


def _run_shot(plan: ShotPlan, link, config: BatchConfig, who: dict, sheets: Path | None, progress: Progress | None,
              stop: threading.Event, auditor: "_Auditor | None" = None) -> ShotResult:
    """One shot from start to end, then its audit line; every failure becomes a failed :class:`ShotResult` (never
    raised)."""
    t0 = time.perf_counter()
    if stop.is_set():                   # interrupted before this shot reached a worker
        return _not_started(plan, config, str(link.engine.get("engine", "unknown")))
    attempts = 0
    written: list = []        # outputs of this run: paths, or futures of {path, sha256} (sequence frames)
    record = job = None
    # SHA-256 of the plate's and the output's frame files runs beside the render, not in line with it
    hasher = ThreadPoolExecutor(1, thread_name_prefix="ned-fx-batch-hash")
    try:
        while True:
            try:
                job = _ShotJob(plan, link, config, who, sheets, progress, stop, written, hasher)
                result = job.run(t0)
                break
            except DaemonUnavailableError as exc:
                attempts += 1
                if attempts == 1 and not stop.is_set() and link.recover():
                    continue    # a fresh private daemon: open again, the frames written so far are kept
                result = _failed(plan.shot, exc, t0, plan.numbers)
                break
            except KeyboardInterrupt:            # the batch was interrupted (the stop event) during this shot
                result = job.interrupted(t0) if job is not None else _not_started(plan, config, None)
                break
            except BaseException as exc:
                result = _failed(plan.shot, exc, t0, plan.numbers)
                break
            finally:
                record = getattr(job, "record", None) or record
        if progress:
            progress(plan.shot.name, result.status, len(result.edited) + len(result.passed_through),
                     len(plan.numbers))
        if auditor is not None:
            auditor.shot(plan.shot, result, record, _output_entries(written), getattr(job, "sheet_entry", None),
                         getattr(job, "engine", None))
    finally:
        hasher.shutdown(wait=True)
    return result


def _output_entries(written) -> list[dict]:
    """``{path, sha256}`` of each output written: a path (hashed now) or a future of its entry (hashed in the
    background as it was written). A file that vanished since is left out."""
    from ..provenance import output_entry

    entries = []
    for item in written:
        try:
            entries.append(item.result() if hasattr(item, "result") else output_entry(item))
        except Exception:
            pass
    return entries


class _ShotJob:
    """Renders one shot through one client (its own thread)."""

    def __init__(self, plan: ShotPlan, link, config: BatchConfig, who: dict, sheets: Path | None,
                 progress: Progress | None, stop: threading.Event, written: list | None = None, hasher=None):
        self.plan, self.link, self.config, self.who = plan, link, config, who
        self.sheets, self.progress, self.stop = sheets, progress, stop
        self.shot = plan.shot
        self.engine = str(link.engine.get("engine", "unknown"))
        self.written = [] if written is None else written     # outputs written: paths or futures of entries
        self.hasher = hasher
        self.record = None            # the shot's EditRecord (the daemon's, once it has analysed the shot)
        self.sheet_entry: dict | None = None                  # {path, sha256} of the contact sheet written
        self.prepared: ShotPlan | None = None                 # the plan once the output is prepared (frames kept)
        self.edited: list[int] = []                           # frames edited and on disk (a movie: once written)
        self.passed: dict[int, str] = {}                      # frames written unchanged, with the reason

    def _report(self, stage: str, done: int, total: int) -> None:
        if self.progress:
            self.progress(self.shot.name, stage, done, total)

    def run(self, t0: float) -> ShotResult:
        plan = self.prepared = _prepare_output(self.plan, self.engine, self.config.resume)
        shot = self.shot
        todo = [n for n in plan.numbers if n not in plan.done]
        samples = _sample_numbers(plan.numbers, self.config.samples)
        outputs = (shot.output,)
        if not todo:
            self.record = _written_record(plan)       # the audit line names the renderer and source of the frames
            sheet = self._contact_sheet(plan, {}, samples, only_if_missing=True)
            self._report("resumed", len(plan.numbers), len(plan.numbers))
            return ShotResult(shot.name, shot.input, shot.output, "skipped", plan.numbers, resumed=tuple(plan.numbers),
                              seconds={"total": time.perf_counter() - t0}, outputs=outputs, contact_sheet=sheet,
                              reason="every frame was already written by the same edit")
        edited, passed = self.edited, self.passed     # a frame counts once it is on disk (see interrupted())
        encoded: list[tuple[int, str | None]] = []    # a movie's frames: on disk only once the movie is written
        afters: dict[int, tuple[np.ndarray, str | None]] = {}
        header = self._source_header(plan)
        with self.link.worker_client() as client:
            session = client.open(shot.input, frames=shot.frames, face=shot.face, consent=_consent(shot),
                                  user=self.who["user"], host=self.who["host"], application=APPLICATION,
                                  **shot.instruction(), **shot.session_options())
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
                self.record = self._shot_record(plan, info.get("provenance"))
                tr = time.perf_counter()
                if plan.done:
                    self._report("resumed", len(plan.done), len(plan.numbers))
                movie = None
                try:
                    for i, n in enumerate(todo, 1):
                        self._check_stop(session)
                        own = self._source_hash(plan, n)        # hashed while the daemon renders
                        pixels, reply = session.render(n, with_info=True)
                        frame = _frame_from_reply(n, pixels, reply.specs[0])
                        reason = (reply.result or {}).get("reason")
                        reason = None if reason is None else str(reason)
                        if plan.kind == "movie":
                            movie = self._movie_frame(plan, frame, movie)
                        else:
                            own = own.result() if hasattr(own, "result") else own
                            stamp = self.record.for_frame(n, own, passed_through=reason)
                            self._wrote(write_output(_frame_path(plan, n), frame, stamp, metadata=header))
                        if plan.kind == "movie":
                            encoded.append((n, reason))
                        elif reason is None:
                            edited.append(n)
                        else:
                            passed[n] = reason
                        if n in samples:
                            afters[n] = (_display(frame), reason)
                        self._report("rendering", i, len(todo))
                    if movie is not None:
                        self._wrote(write_output(shot.output, movie, self._video_record()), background=False)
                        movie = None
                        for n, reason in encoded:
                            if reason is None:
                                edited.append(n)
                            else:
                                passed[n] = reason
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
        sheet = self._contact_sheet(plan, afters, samples, edited=bool(edited), reasons=set(passed.values()))
        return ShotResult(shot.name, shot.input, shot.output, "done", plan.numbers, tuple(edited), passed,
                          tuple(sorted(plan.done)),
                          {"analysis": analysis, "render": render, "total": time.perf_counter() - t0}, cached,
                          outputs, sheet)

    def interrupted(self, t0: float) -> ShotResult:
        """This shot as the interrupt left it: the frames it wrote (on disk, complete: writes are atomic) and those
        kept from an earlier run; a movie in progress was discarded (movies are written whole)."""
        plan = self.prepared or self.plan
        shot = self.shot
        written = len(self.edited) + len(self.passed)
        if plan.kind == "movie":
            note = "interrupted before the movie was finished (it is redone whole); run the batch again"
        else:
            note = (f"interrupted after {written + len(plan.done)} of {len(plan.numbers)} frame(s) were on disk; run "
                    f"the batch again to render the rest")
        on_disk = written or plan.done
        return ShotResult(shot.name, shot.input, shot.output, INTERRUPTED, plan.numbers, tuple(self.edited),
                          dict(self.passed), tuple(sorted(plan.done)), {"total": time.perf_counter() - t0},
                          outputs=(shot.output,) if on_disk else (), reason=note)

    def _check_stop(self, session) -> None:
        if self.stop.is_set():
            try:
                session.cancel()
            except NedFxError:
                pass
            raise KeyboardInterrupt

    # -- provenance ------------------------------------------------------------------------------------------------
    def _shot_record(self, plan: ShotPlan, provenance: Mapping[str, Any] | None):
        """The shot's :class:`~ned_fx.provenance.EditRecord`: the one the daemon made for the session (its renderer,
        the face it chose, the source's SHA-256 it computed), else one made here from the shot."""
        from ..provenance import EditRecord, ProvenanceError

        if provenance:
            try:
                return EditRecord.from_dict(provenance)
            except ProvenanceError:
                pass                  # a daemon of another version: describe the edit from here
        return self._local_record(plan)

    def _local_record(self, plan: ShotPlan):
        from ..provenance import build_record

        return build_record(self.shot.input, self.shot.instruction(), face_id=self.shot.face,
                            frames=_frames_text(plan.numbers),
                            renderer="identity" if self.engine == "identity" else "geometry",
                            kind="video" if plan.input_kind == "movie" else "image", consent=_consent(self.shot),
                            user=self.who["user"], host=self.who["host"], application=APPLICATION,
                            hash_source=Path(self.shot.input).is_file())

    def _source_hash(self, plan: ShotPlan, number: int):
        """SHA-256 of a sequence plate's frame file (a future when there is a hashing thread); None for a movie or
        a still (the shot's record holds that file's hash)."""
        if plan.kind == "movie" or plan.input_kind != "sequence":
            return None
        from ..media import sequence_path
        from ..provenance import file_sha256

        target = sequence_path(self.shot.input, number)
        return self.hasher.submit(file_sha256, target) if self.hasher is not None else file_sha256(target)

    def _video_record(self):
        """The record a movie output carries: the shot's, as a video (it covers ``frames``). The identity engine
        changes no frame, so its movies say they were passed through unchanged."""
        from ..provenance import sentence

        identity = self.record.renderer == "identity"
        rec = replace(self.record, kind="video", source_frame=None, edited=not identity,
                      passed_through="identity engine" if identity else None)
        return replace(rec, summary=sentence(rec))

    def _sheet_record(self, plan: ShotPlan, edited: bool | None, reasons: set[str]):
        """The record a contact sheet carries: the shot's (it shows the edit), edited when any frame of it was."""
        from ..provenance import sentence

        record = self.record or self._record_from_output(plan) or self._local_record(plan)
        if edited is None:                      # every frame was kept from an earlier run
            edited, reasons = record.edited, {record.passed_through} - {None}
        rec = replace(record, kind="image", source_frame=None, edited=bool(edited),
                      source_sha256=None if plan.input_kind == "sequence" else record.source_sha256,
                      passed_through=None if edited else ("; ".join(sorted(reasons)) or "no change"))
        return replace(rec, summary=sentence(rec))

    def _record_from_output(self, plan: ShotPlan):
        """The record a frame written by an earlier run of the same edit carries (None if unreadable)."""
        if plan.kind == "movie":
            return None
        try:
            from ..media.readers import read_provenance

            return read_provenance(_frame_path(plan, plan.numbers[0]))
        except Exception:
            return None

    def _wrote(self, path: Path, background: bool = True) -> None:
        """Note an output written in this run for the audit line (a frame is hashed in the background)."""
        if background and self.hasher is not None:
            from ..provenance import output_entry

            self.written.append(self.hasher.submit(output_entry, path))
        else:
            self.written.append(Path(path))

    def _movie_frame(self, plan: ShotPlan, frame, movie):
        from ..media import MovieWriter
        from ..media.layers import LayerConfig
        from ..media.readers import Presentation, movie_presentation
        from ..media.writers import deep_pixels

        rgb = _display(frame)
        if movie is None:
            fps = plan.fps or 25.0
            source = self.shot.input if plan.input_kind == "movie" else None
            # shown as the source was (rotation, pixel aspect, a variable frame rate), in its own codec
            self._shown = movie_presentation(source) if source else Presentation()
            numbers = plan.numbers                      # movie frame numbers are 0-based indices
            movie = MovieWriter(self.shot.output, fps, rgb.shape[1], rgb.shape[0],
                                codec=LayerConfig().movie_codec(self.shot.output, source), audio_from=source,
                                audio_range=self._shown.audio_span(numbers[0], numbers[-1], len(numbers), fps),
                                provenance=self._video_record(), deep=frame.pixels.dtype == np.uint16,
                                **self._shown.writer_options())
        deep = deep_pixels(frame, movie)
        movie.write(rgb if deep is None else deep, self._shown.time_of(frame.number, plan.numbers[0]))
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
        # the plate's own provenance (a plate that is itself a ned_fx output) is replaced, never carried over
        return {k: v for k, v in header.items() if k not in skip and not k.startswith("ned_fx")}

    def _contact_sheet(self, plan: ShotPlan, afters: dict, samples: tuple[int, ...], only_if_missing: bool = False,
                       edited: bool | None = None, reasons: set[str] = frozenset()) -> str | None:
        if self.sheets is None:
            return None
        from .contact import contact_sheet, sheet_path

        path = sheet_path(self.sheets, self.shot.name)
        if only_if_missing and path.is_file():
            return str(path)
        try:
            picture = contact_sheet(self.shot, plan.kind, samples, afters, self.config.sheet_width, self.engine)
            self.sheets.mkdir(parents=True, exist_ok=True)
            written = write_output(path, picture, self._sheet_record(plan, edited, set(reasons)))
        except Exception:          # a sheet that cannot be made never fails the shot
            return None
        try:
            from ..provenance import output_entry

            self.sheet_entry = output_entry(written)
        except NedFxError:
            pass
        return str(path)


class _Auditor:
    """The batch's audit lines (:class:`~ned_fx.provenance.AuditLog`): one ``batch_shot`` line per shot as it ends
    (from the worker threads: the log takes concurrent writers), one ``batch`` line for the run. A line that
    cannot be written does not stop the shots; :meth:`raise_failure` raises it once the report is written."""

    def __init__(self, log, shotlist: ShotList, who: Mapping[str, Any] | None):
        self.log = log
        self.batch_name = str(shotlist.source or shotlist.name)
        self.who = who                        # declared who (--user/--host given), else this process's
        self.run = uuid.uuid4().hex[:16]      # ties a run's shot lines to its batch line
        self.failure: Exception | None = None
        self.done: set[str] = set()
        self.lock = threading.Lock()

    @classmethod
    def open(cls, config: BatchConfig, shotlist: ShotList, who: Mapping[str, Any]) -> "_Auditor":
        """The auditor of a run: the log checked writable now (None when ``config.audit`` is off).

        Raises:
            AuditLogError: the log cannot be created or appended to.
        """
        log = None
        if config.audit:
            from ..provenance import AuditLog

            log = AuditLog(config.audit_log, application=APPLICATION)
            log.check()
        declared = {**who, "application": APPLICATION} if (config.user or config.host) else None
        return cls(log, shotlist, declared)

    def _write(self, event: str, **fields) -> None:
        from ..provenance import AuditLogError

        if self.who is not None:
            fields["who"] = self.who
        try:
            self.log.write(event, **fields)
        except AuditLogError as exc:
            with self.lock:
                self.failure = self.failure or exc

    def shot(self, shot: Shot, result: ShotResult, record=None, outputs: list | tuple = (),
             contact_sheet: Mapping[str, str] | None = None, engine: str | None = None) -> None:
        """The shot's line (once per shot): status, the shot, parameters, consent, engine, outputs with hashes."""
        if self.log is None:
            return
        with self.lock:
            if shot.name in self.done:
                return
            self.done.add(shot.name)
        reasons: dict[str, int] = {}
        for why in result.passed_through.values():
            reasons[why] = reasons.get(why, 0) + 1
        face = record.face_id if record is not None and record.face_id is not None else shot.face
        fields: dict[str, Any] = {
            "status": result.status, "batch": self.batch_name, "run": self.run,
            "shot": {"name": shot.name, "source": os.path.abspath(shot.input), "output": os.path.abspath(shot.output),
                     "frames": _frames_text(result.frames) or shot.frames, "face": face},
            "params": {**shot.instruction(), **shot.session_options()}, "consent": _consent(shot, strict=False),
            "engine": engine,
            "renderer": record.renderer if record is not None else None,
            "source_sha256": record.source_sha256 if record is not None else None,
            "outputs": list(outputs), "contact_sheet": dict(contact_sheet) if contact_sheet else None,
            "edited": len(result.edited), "passed_through": reasons, "resumed": len(result.resumed),
            "seconds": round(float(result.seconds.get("total", 0.0)), 3)}
        if result.reason:
            fields["reason"] = result.reason
        if result.error:
            fields["error"] = {"code": result.error.get("code"), "message": str(result.error.get("message"))[:2000]}
        self._write(AUDIT_SHOT_EVENT, **fields)

    def batch(self, report: BatchReport, results: tuple[ShotResult, ...]) -> None:
        """The run's line: the shot list, the report, the daemon, the counts and every shot's status."""
        if self.log is None:
            return
        engine = report.daemon.get("engine") if isinstance(report.daemon, Mapping) else None
        self._write(AUDIT_BATCH_EVENT, batch=self.batch_name, run=self.run, report=report.path,
                    summary=report.counts(), interrupted=report.interrupted, seconds=round(report.seconds, 3),
                    daemon={"endpoint": report.daemon.get("endpoint"),
                            "engine": engine.get("engine") if isinstance(engine, Mapping) else engine},
                    shots={r.name: r.status for r in results})

    def raise_failure(self) -> None:
        """Raise the first audit line that could not be written (after the report is on disk)."""
        if self.failure is not None:
            raise self.failure


def _consent(shot: Shot, strict: bool = True) -> str | None:
    """The shot's consent reference, trimmed (``plan_shot`` has checked it; ``strict=False`` never raises)."""
    from ..provenance import normalise_consent

    try:
        return normalise_consent(shot.consent)
    except NedFxError:
        if strict:
            raise
        return str(shot.consent)[:2000]


def _frames_text(numbers) -> str | None:
    """``"1001-1100"`` (runs, no count): a record's and an audit line's ``frames``."""
    numbers = sorted(int(n) for n in numbers)
    if not numbers:
        return None
    from ..media.frames import describe_numbers

    return describe_numbers(numbers, limit=1000).split(" (")[0]


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
