"""The neutral farm job model and how a shot list becomes jobs.

Per shot, one :class:`Job`:

1. ``analysis`` — one task: ``ned-fx edit INPUT -o OUTPUT --frames=RANGE --analysis=SHOT.analysis.npz
   --analysis-only …instruction… [--consent=TEXT]`` (track the whole shot, fit the neutral, plan the edit; once,
   shared);
2. ``render`` — the shot's frames in chunks of ``chunk`` frames, each ``ned-fx edit INPUT -o OUTPUT
   --frames=A-B --analysis=SHOT.analysis.npz …instruction… [--consent=TEXT] [--audit-log=FILE]``, depending on
   ``analysis``; every frame it writes carries the edit's provenance (with the shot's consent reference) and each
   chunk appends an ``edit`` line to the audit log of the node (or ``audit_log``);
3. ``assemble`` (movie outputs only) — a movie cannot be written in chunks, so the chunks render a PNG (or the
   plate's own format) sequence into ``OUTPUT.frames/`` beside the output, and one task runs ``ned-fx farm assemble``
   to encode it with the source's frame rate and trimmed audio, then removes the frames; depends on ``render``.

Every task runs through ``ned-fx farm task --shot=SHOT --layer=LAYER -- ARGS`` (:mod:`ned_fx.farm.task`): it runs
the ``ned-fx`` command ``ARGS`` in-process, refuses to render a chunk whose analysis file is missing (a chunk never
re-analyses), and a failure is one line in the farm's log naming the shot, the layer, the frames and the reason.

Every layer asks for ``gpus`` GPUs (0: a CPU job). Commands are argument vectors; a render layer's command holds
the placeholders :data:`FIRST` / :data:`LAST`, which each back end turns into its own chunk tokens
(OpenCue ``#FRAME_START#``/``#FRAME_END#``, Deadline ``<STARTFRAME>``/``<ENDFRAME>``); its :class:`Task` s carry
the concrete commands, chunk by chunk, exactly as the farm will cut them.

Every path in a job is absolute (plates, outputs, the analysis file, references, curves, the audit log, the
``ned-fx`` program when given as a path): a farm task runs in a folder of the node's choosing, so a relative path
would name another file there. Relative paths are resolved here, against the current folder (a shot list's own
paths are already resolved against the shot list's folder).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..errors import InvalidParameterError, NedFxError

__all__ = ["FIRST", "LAST", "BACKENDS", "FarmConfig", "FarmError", "Task", "Layer", "Job", "build_jobs",
           "default_executable", "analysis_path", "frames_folder"]

#: Placeholders for a chunk's first and last frame in a layer's command template.
FIRST, LAST = "{FIRST}", "{LAST}"
#: Farm back ends.
BACKENDS = ("opencue", "deadline", "openjd")
#: The instruction keys and the ``ned-fx edit`` option each becomes.
EDIT_OPTIONS = {"emotion": "--emotion", "intensity": "--intensity", "reference": "--reference",
                "reference_frames": "--reference-frames", "reference_neutral_frame": "--reference-neutral-frame",
                "keys": "--keys", "curve": "--curve", "regions": "--regions", "speech": "--speech",
                "neutral_frame": "--neutral-frame"}


class FarmError(NedFxError):
    """A job cannot be built or submitted (the message says what to change, or which tool is missing)."""

    exit_code = 10


@dataclass(frozen=True)
class FarmConfig:
    """How shots become farm jobs (the only home of these defaults).

    Attributes:
        chunk: frames per render task; priority: job priority (Deadline: 0…100); gpus: GPUs per task (0: CPU);
        gpu_memory: GPU memory per task (OpenCue, e.g. ``"4g"``); cores: CPU cores per task; memory: RAM per task.
        pool: Deadline pool; group: Deadline group (GPU workers; None: any); limits: Deadline limits;
        show: OpenCue show (None: ``$SHOW``, else ``ned_fx``); user: the submitting user (None: this user);
        executable: ``ned-fx`` on the farm nodes as an argument vector (None: this one); movie_fps: frame rate of a
        movie made from an image sequence; max_retries: retries of a failed task; paused: submit paused.
        name: the batch's name (None: the shot list's). audit_log: the audit log every render task appends to, as
        the nodes see it (None: each node's default, ``$NED_FX_AUDIT_LOG`` or ``$NED_FX_HOME/audit.jsonl``).
    """

    chunk: int = 10
    priority: int = 50
    gpus: int = 1
    gpu_memory: str = "4g"
    cores: float = 2.0
    memory: str = "8g"
    pool: str | None = None
    group: str | None = "gpu"
    limits: tuple[str, ...] = ()
    show: str | None = None
    user: str | None = None
    executable: tuple[str, ...] | None = None
    movie_fps: float = 25.0
    max_retries: int = 2
    paused: bool = False
    name: str | None = None
    audit_log: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.chunk, int) or self.chunk < 1:
            raise InvalidParameterError(f"chunk (frames per task) must be 1 or more, got {self.chunk!r}")
        if not isinstance(self.gpus, int) or self.gpus < 0:
            raise InvalidParameterError(f"gpus per task must be 0 (CPU) or more, got {self.gpus!r}")
        if not isinstance(self.priority, int) or self.priority < 0:
            raise InvalidParameterError(f"priority must be a whole number 0 or more, got {self.priority!r}")
        if not self.cores > 0:
            raise InvalidParameterError(f"cores per task must be more than 0, got {self.cores!r}")
        for name in ("gpu_memory", "memory"):
            if not re.fullmatch(r"\d+(\.\d+)?[kKmMgGtT]", str(getattr(self, name))):
                raise InvalidParameterError(f"{name} must be like 512m or 4g, got {getattr(self, name)!r}")
        if not self.movie_fps > 0:
            raise InvalidParameterError(f"movie_fps must be more than 0, got {self.movie_fps!r}")
        if self.executable is not None and not self.executable:
            raise InvalidParameterError("executable must name the ned-fx program on the farm nodes")
        if self.audit_log is not None and not str(self.audit_log).strip():
            raise InvalidParameterError("audit_log must name a file (or be None for each node's default)")


@dataclass(frozen=True)
class Task:
    """One unit of farm work: a chunk of frames and the exact command that renders it."""

    first: int
    last: int
    step: int
    command: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.first}-{self.last}" if self.last != self.first else str(self.first)

    def frames(self) -> tuple[int, ...]:
        return tuple(range(self.first, self.last + 1, self.step))


@dataclass(frozen=True)
class Layer:
    """A kind of work inside a job: one command template over a frame range cut into chunks.

    Attributes:
        name: ``analysis``, ``render`` or ``assemble``; command: the argument vector (a render layer's holds
            :data:`FIRST`/:data:`LAST`); frames: the frame range text the farm iterates (a single frame for one-task
            layers); chunk: frames per task; tasks: the chunks with their concrete commands; depends_on: layers that
            must finish first; gpus, gpu_memory, cores, memory: what each task needs; outputs: what it writes.
    """

    name: str
    command: tuple[str, ...]
    frames: str
    chunk: int
    tasks: tuple[Task, ...]
    depends_on: tuple[str, ...] = ()
    gpus: int = 1
    gpu_memory: str = "4g"
    cores: float = 2.0
    memory: str = "8g"
    outputs: tuple[str, ...] = ()

    def command_line(self, first: str, last: str) -> tuple[str, ...]:
        """The command with the chunk placeholders replaced by a back end's tokens."""
        return tuple(a.replace(FIRST, first).replace(LAST, last) for a in self.command)


@dataclass(frozen=True)
class Job:
    """One shot's farm job.

    Attributes:
        name: the job's name on the farm (letters, digits, ``_ - .``); batch: the shot list's name; shot: the
        shot's name; input, output: its plate and output; layers: in dependency order; priority, pool, group,
        limits, show, user, max_retries, paused: submission settings; metadata: what the farm should show
        (instruction, consent, shot list).
    """

    name: str
    batch: str
    shot: str
    input: str
    output: str
    layers: tuple[Layer, ...]
    priority: int = 50
    pool: str | None = None
    group: str | None = None
    limits: tuple[str, ...] = ()
    show: str = "ned_fx"
    user: str = ""
    max_retries: int = 2
    paused: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"job {self.name} has no layer {name!r}; layers: {', '.join(l.name for l in self.layers)}")


# ---- building --------------------------------------------------------------------------------------------------

def build_jobs(shotlist, config: FarmConfig = FarmConfig()) -> tuple[Job, ...]:
    """Turn every shot of a shot list into a :class:`Job`.

    Each input is opened (not decoded) to learn its frame numbers and frame rate; inputs must therefore be
    readable here at the paths the farm nodes use.

    Args:
        shotlist: a :class:`~ned_fx.batch.shotlist.ShotList`; config: chunking, GPU requirement, submission.

    Returns:
        one job per shot, in list order.

    Raises:
        InputNotFoundError, UnreadableMediaError, UnsupportedFormatError: an input cannot be opened.
        FarmError: a shot the farm cannot split (a sequence with missing frames in its range, a still output of
            several frames); the message names the shot and what works.
        InvalidParameterError: a bad instruction (checked before submitting).
    """
    from ..pipeline import EditInstruction, check_instruction, check_render_files
    from ..provenance import normalise_consent

    exe = absolute_executable(tuple(config.executable)) if config.executable else default_executable()
    batch = config.name or shotlist.name
    show = config.show or os.environ.get("SHOW") or "ned_fx"
    user = config.user or _user()
    jobs = []
    for shot in shotlist.shots:
        check_instruction(EditInstruction(**shot.instruction()))
        try:
            check_render_files(shot.actor_footage or (), shot.holdout_matte, shot.checkpoint)
        except NedFxError as exc:
            raise type(exc)(f"shot {shot.name}: {exc}") from None
        try:
            normalise_consent(shot.consent)
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"shot {shot.name}: {exc}") from None
        jobs.append(_job(shot, batch, exe, show, user, config))
    return tuple(jobs)


def _absolute_shot(shot):
    """The shot with every path absolute (a farm task's current folder is not this one)."""
    paths = {k: os.path.abspath(getattr(shot, k)) for k in ("input", "output", "reference", "curve", "holdout_matte",
                                                            "checkpoint") if getattr(shot, k)}
    if shot.actor_footage:
        paths["actor_footage"] = tuple(os.path.abspath(p) for p in shot.actor_footage)
    return dataclasses.replace(shot, **paths)


def absolute_executable(exe: tuple[str, ...]) -> tuple[str, ...]:
    """``ned-fx`` on the nodes with a relative program path (``.venv/bin/ned-fx``) made absolute; a bare name
    (``ned-fx``, ``python``) is left for the node's PATH."""
    if exe and os.sep in exe[0] and not os.path.isabs(exe[0]):
        return (os.path.abspath(exe[0]), *exe[1:])
    return tuple(exe)


def absolute_audit_log(path: str | None) -> str | None:
    """The shared audit log as an absolute path (None stays None: each node's default)."""
    return os.path.abspath(os.path.expanduser(path)) if path else None


def _job(shot, batch: str, exe: tuple[str, ...], show: str, user: str, config: FarmConfig) -> Job:
    from ..batch.shotlist import output_problem
    from ..media import open_media
    from ..media.frames import FrameRange, describe_numbers
    from ..provenance import normalise_consent

    shot = _absolute_shot(shot)
    with open_media(shot.input, shot.frames) as src:
        numbers = tuple(int(n) for n in src.frame_numbers)
        fps, input_kind = src.fps, src.kind
    step = FrameRange.parse(shot.frames).step if shot.frames else 1
    expected = tuple(range(numbers[0], numbers[-1] + 1, step))
    if numbers != expected:
        missing = sorted(set(expected) - set(numbers))
        raise FarmError(f"shot {shot.name}: the sequence {shot.input} has gaps ({describe_numbers(missing)} missing); "
                        f"farm chunks need a gap-free range: fill the gaps, or split the shot with frames: ranges")
    kind = shot.output_kind
    problem = output_problem(shot, input_kind, len(numbers))
    if problem:
        raise FarmError(f"shot {shot.name}: {problem}")
    frange = str(FrameRange(numbers[0], numbers[-1], step))
    analysis = str(analysis_path(shot))
    target = shot.output if kind != "movie" else str(frames_folder(shot, input_kind))
    instruction = _instruction_args(shot)
    consent = normalise_consent(shot.consent)
    edit = ("edit", shot.input, "-o", target)
    # the consent reference rides with every command: the analysis checks it, the chunks stamp it on every frame
    # the session options too: the analysis tracks the plate read in its colour space and builds the shot's models
    # from the actor footage, every chunk renders with the renderer, keeps the holdout matte's pixels and blurs the
    # drawn folds with the shutter
    tail = (*instruction, *_session_args(shot), *((f"--face={shot.face}",) if shot.face is not None else ()),
            *((f"--consent={consent}",) if consent else ()), "-q")
    audit = (f"--audit-log={absolute_audit_log(config.audit_log)}",) if config.audit_log else ()
    res = dict(gpus=config.gpus, gpu_memory=config.gpu_memory, cores=config.cores, memory=config.memory)

    def task(layer: str, *argv: str) -> tuple[str, ...]:
        return (*exe, "farm", "task", f"--shot={shot.name}", f"--layer={layer}", "--", *argv)

    analysis_cmd = task("analysis", *edit, f"--frames={frange}", f"--analysis={analysis}", "--analysis-only", *tail)
    first = numbers[0]
    layers = [Layer("analysis", analysis_cmd, str(first), 1, (Task(first, first, 1, analysis_cmd),),
                    outputs=(analysis,), **res)]
    span = f"{FIRST}-{LAST}" + (f"x{step}" if step != 1 else "")
    render_cmd = task("render", *edit, f"--frames={span}", f"--analysis={analysis}", *audit, *tail)
    tasks = []
    for i in range(0, len(numbers), config.chunk):
        a, b = numbers[i], numbers[min(i + config.chunk, len(numbers)) - 1]
        tasks.append(Task(a, b, step, tuple(x.replace(FIRST, str(a)).replace(LAST, str(b)) for x in render_cmd)))
    layers.append(Layer("render", render_cmd, frange, config.chunk, tuple(tasks), ("analysis",), outputs=(target,),
                        **res))
    if kind == "movie":
        movie_fps = fps if (input_kind == "movie" and fps) else config.movie_fps
        assemble_cmd = task("assemble", "farm", "assemble", target, "-o", shot.output, f"--frames={frange}",
                            f"--fps={movie_fps:g}",
                            *((f"--audio-from={shot.input}",) if input_kind == "movie" else ()), "--clean")
        # a one-task layer after the render runs as the shot's last frame: a farm that orders work by frame
        # (pyoutline's local dispatcher) then reaches it after every render chunk
        last = numbers[-1]
        layers.append(Layer("assemble", assemble_cmd, str(last), 1, (Task(last, last, 1, assemble_cmd),),
                            ("render",), gpus=0, gpu_memory=config.gpu_memory, cores=1.0, memory=config.memory,
                            outputs=(shot.output,)))
    meta = {"shot": shot.name, "input": shot.input, "output": shot.output, "frames": frange,
            "instruction": ", ".join(f"{k}={v}" for k, v in shot.instruction().items()) or "neutral"}
    if shot.session_options():
        meta["session"] = ", ".join(f"{k}={v}" for k, v in shot.session_options().items())
    if consent:
        meta["consent"] = consent
    return Job(name=job_name(batch, shot.name), batch=batch, shot=shot.name, input=shot.input, output=shot.output,
               layers=tuple(layers), priority=config.priority, pool=config.pool,
               group=config.group if config.gpus > 0 else None, limits=tuple(config.limits), show=show, user=user,
               max_retries=config.max_retries, paused=config.paused, metadata=meta)


def _instruction_args(shot) -> tuple[str, ...]:
    """``--key=value`` options of ``ned-fx edit`` (the ``=`` form, so values such as ``-mouth`` stay values)."""
    return tuple(f"{EDIT_OPTIONS[k]}={v:g}" if isinstance(v, float) else f"{EDIT_OPTIONS[k]}={v}"
                 for k, v in shot.instruction().items())


def _session_args(shot) -> tuple[str, ...]:
    """``ned-fx edit``'s session options of a shot: ``--colorspace=NAME``, ``--renderer=NAME``, ``--checkpoint=FILE``,
    ``--actor-footage FILE…`` (its own tokens: the option takes several), ``--holdout-matte=MATTE``,
    ``--shutter-angle=DEGREES``, ``--ignore-cuts``."""
    args: tuple[str, ...] = tuple(f"--{k}={getattr(shot, k)}" for k in ("colorspace", "renderer", "checkpoint")
                                  if getattr(shot, k))
    if shot.actor_footage:
        args += ("--actor-footage", *shot.actor_footage)
    if shot.holdout_matte:
        args += (f"--holdout-matte={shot.holdout_matte}",)
    if shot.shutter_angle is not None:
        args += (f"--shutter-angle={shot.shutter_angle:g}",)
    if shot.ignore_cuts:
        args += ("--ignore-cuts",)
    return args


def analysis_path(shot) -> Path:
    """Where a shot's shared analysis goes: ``SHOT.analysis.npz`` beside its output."""
    return Path(shot.output).parent / f"{shot.name}.analysis.npz"


def frames_folder(shot, input_kind: str) -> Path:
    """The sequence a movie output's chunks render to (``OUTPUT.frames/STEM.####.EXT`` beside the output): the
    plate's own format for EXR/TIFF/PNG plates, PNG otherwise."""
    out = Path(shot.output)
    ext = Path(shot.input).suffix.lower()
    ext = ext if input_kind != "movie" and ext in (".exr", ".tif", ".tiff", ".png") else ".png"
    return out.parent / f"{out.name}.frames" / f"{out.stem}.####{ext}"


def job_name(batch: str, shot: str) -> str:
    """A farm-safe job name: ``BATCH_SHOT`` with anything but letters, digits, ``_ - .`` made ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{batch}_{shot}").strip("_") or "ned_fx"


def default_executable() -> tuple[str, ...]:
    """``ned-fx`` as this process runs it: the console script if there is one, else ``python -m ned_fx.cli``."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "ned-fx" and argv0.is_file():
        return (os.path.abspath(argv0),)
    script = Path(sys.executable).parent / "ned-fx"
    if script.is_file():
        return (str(script),)
    return (sys.executable, "-m", "ned_fx.cli")


def parse_executable(text: str) -> tuple[str, ...]:
    """``--ned-fx PATH``: a program path, or a command such as ``"/opt/py/bin/python -m ned_fx.cli"``."""
    parts = tuple(shlex.split(text))
    if not parts:
        raise InvalidParameterError("--ned-fx needs the ned-fx program on the farm nodes, e.g. /opt/ned_fx/bin/ned-fx")
    return parts


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
