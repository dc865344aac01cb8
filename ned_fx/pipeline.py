"""The pipeline: the only place that composes the stages (plate in -> track -> manipulate -> render ->
composite -> plate out). Each function here is one job the CLI, the daemon and the host bridges call.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import InvalidParameterError, NoFaceError, OutputWriteError
from .media import open_media, parse_frame_range, to_display_rgb8
from .media.frames import Frame

Progress = Callable[[int, int], None]


def display_plate(frame: Frame, view=None, copy: bool = True) -> np.ndarray:
    """The display-referred RGB8 picture of a frame over its display window (what the tracker looks at).

    Pixels of the data window land at their place in the display window; the rest is black. Landmarks found
    on it are therefore in display-window pixel coordinates, whatever the file's data window. ``view``: an
    OpenColorIO :class:`~ned_fx.media.color.DisplayView` for scene-linear / log plates (see
    :func:`tracker_view`). ``copy``: as :func:`~ned_fx.media.to_display_rgb8`'s (False: a reader that never writes
    to the picture may get the frame's own pixels).
    """
    rgb = to_display_rgb8(frame, view, copy)
    dx0, dy0, dx1, dy1 = frame.display_window
    x0, y0, x1, y1 = frame.data_window
    if (x0, y0, x1, y1) == (dx0, dy0, dx1, dy1):
        return rgb
    out = np.zeros((dy1 - dy0 + 1, dx1 - dx0 + 1, 3), np.uint8)
    sx0, sy0 = max(dx0, x0), max(dy0, y0)
    sx1, sy1 = min(dx1, x1), min(dy1, y1)
    if sx1 >= sx0 and sy1 >= sy0:
        out[sy0 - dy0: sy1 - dy0 + 1, sx0 - dx0: sx1 - dx0 + 1] = rgb[sy0 - y0: sy1 - y0 + 1, sx0 - x0: sx1 - x0 + 1]
    return out


def tracker_view(config):
    """The OpenColorIO view the tracker's config asks for (None: the built-in sRGB path). See
    :mod:`ned_fx.media.color`.

    Raises:
        InvalidParameterError: an unknown colour space, display or view, or an unreadable config.
    """
    from .media.color import display_view_for

    return display_view_for(config.colorspace, config.ocio_config, config.display_view)


def track_media(path: str | Path, config=None, frames: str | None = None, face_id: int | None = None,
                progress: Progress | None = None, tracker=None, keep=None):
    """Track the faces of a movie, an image or an image sequence.

    Args:
        path: the input (``shot.mov``, ``face.png``, ``shot.%04d.exr``, ``shot.####.exr``).
        config: a :class:`~ned_fx.tracking.TrackerConfig` (defaults when None).
        frames: frame range to read, e.g. ``"1001-1100"`` (all frames when None).
        face_id: the face to select in multi-face shots (default: the one seen in most frames).
        progress: called with ``(frames done, total)``.
        tracker: a ready :class:`~ned_fx.tracking.FaceTracker` to reuse (the daemon keeps one warm).
        keep: a :class:`~ned_fx.appearance.FrameKeeper` (or a callable ``keep(total)`` that makes one, given the
            shot's length): the face crops the appearance models need are kept from this decode.

    Returns:
        a :class:`~ned_fx.tracking.Track`.

    Raises:
        InputNotFoundError, UnreadableMediaError, UnsupportedFormatError: the input cannot be read.
        InvalidParameterError: a bad frame range, or frames of different sizes in one shot.
        WeightsMissingError: the tracker's weights are not installed.
    """
    from .tracking import FaceTracker

    tracker = tracker or FaceTracker(config)
    view = tracker_view(config or tracker.config)     # a warm tracker may look at this shot's colour space
    with open_media(path, parse_frame_range(frames)) as source:
        total = len(source)
        size: list[tuple[int, int]] = []
        if callable(keep):
            keep = keep(total)

        def pictures():
            for i, frame in enumerate(source):
                if keep is not None:
                    keep.offer(i, frame)
                rgb = display_plate(frame, view, copy=False)       # the tracker only reads it
                if not size:
                    size.append((rgb.shape[1], rgb.shape[0]))
                elif size[0] != (rgb.shape[1], rgb.shape[0]):
                    raise InvalidParameterError(
                        f"frame {frame.number} of {path} is {rgb.shape[1]}x{rgb.shape[0]}, but the shot started "
                        f"at {size[0][0]}x{size[0][1]}; every frame of a shot must have one size")
                yield rgb

        from .streams import prefetch

        seen = []       # the next frames decode (and convert) while the tracker works on these
        for faces in tracker.iter_track(prefetch(pictures(), depth=2 * tracker.config.batch_size,
                                                 name="ned-fx-decode")):
            seen.append(faces)
            if keep is not None:
                keep.located(faces.index, faces.faces)
            if progress:
                progress(len(seen), total)
        from .tracking.tracker import assemble_track

        width, height = size[0] if size else (source.width, source.height)
        return assemble_track(seen, np.asarray(source.frame_numbers), width, height, source.fps or 0.0,
                              tracker.config, face_id, str(path))


@dataclass(frozen=True)
class EditInstruction:
    """What the face should do: every option of the manipulate step (validated by :func:`plan_edit`).

    Attributes:
        emotion: an emotion or blend (``"happy"``, ``"happy:0.7,surprised:0.3"``, ``"reference"``).
        intensity: 0 (no change) … 1 (full) … 1.5 (exaggerated).
        reference: an image or clip whose expression is transferred (tracked here);
        reference_frames: its frame range; reference_neutral_frame: a neutral frame in it.
        keys: keyframes ``FRAME:EMOTION[:INTENSITY],…``; curve: a per-frame intensity file (.csv/.json).
        regions: region control (``"brows,eyes"``, ``"all,-mouth"``, ``"brows:1,corners:0.5"``).
        speech: ``"auto"``, ``"preserve"`` or ``"free"``; neutral_frame: a frame where the actor is neutral.
    """

    emotion: str | None = None
    intensity: float = 1.0
    reference: str | None = None
    reference_frames: str | None = None
    reference_neutral_frame: int | None = None
    keys: str | None = None
    curve: str | None = None
    regions: str | None = None
    speech: str | None = None
    neutral_frame: int | None = None

    def as_params(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def check_render_files(actor_footage=(), holdout: str | None = None, checkpoint: str | None = None) -> None:
    """The render options' files are there: every actor footage path, the holdout matte (a still, or a sequence
    pattern with at least one frame) and a neural renderer's checkpoint; reads no pixels.

    Raises:
        InputNotFoundError: one is missing (named).
    """
    from .errors import InputNotFoundError

    for extra in actor_footage:
        if not Path(extra).exists():
            raise InputNotFoundError(f"actor footage {extra} does not exist")
    if holdout:
        from .media import find_sequence_frames, is_sequence_pattern

        if is_sequence_pattern(holdout):
            find_sequence_frames(holdout)      # no frame of the pattern: a clear error now
        elif not Path(holdout).is_file():
            raise InputNotFoundError(f"holdout matte {holdout} does not exist")
    if checkpoint and not Path(checkpoint).is_file():
        raise InputNotFoundError(f"neural renderer checkpoint {checkpoint} does not exist")


def check_instruction(instruction: EditInstruction, config=None) -> tuple:
    """Validate the cheap parts of an instruction before any tracking work.

    Returns:
        ``(keys, curve)``: the parsed keyframes and intensity curve (None where not given).

    Raises:
        InvalidParameterError: unknown emotion (valid ones listed), intensity out of range, bad regions or
            keys, both keys and a curve, a reference the instruction does not use.
    """
    from . import manipulation as manip

    config = config or manip.ManipulatorConfig()
    i = instruction
    if i.keys and i.curve:
        raise InvalidParameterError("give either keys or a curve, not both")
    if i.reference_frames and not i.reference:
        raise InvalidParameterError("reference frames need a reference")
    manip.prototypes.check_intensity(i.intensity, config.max_intensity)
    blend = manip.parse_blend(i.emotion, allow_reference=bool(i.reference)) if i.emotion else None
    manip.parse_regions(i.regions)
    keys = manip.parse_keys(i.keys, i.intensity, config.max_intensity,
                            allow_reference=bool(i.reference)) if i.keys else None
    if i.reference:
        uses = ({n for k in keys for n, _ in k.blend} if keys else set(blend or {"reference": 1.0}))
        if "reference" not in uses:
            raise InvalidParameterError("a reference is given but the instruction does not use it: leave out "
                                        "the emotion, or blend it in (e.g. reference:0.5,happy:0.5)")
    curve = manip.read_curve(i.curve, config.max_intensity) if i.curve else None
    return keys, curve


def plan_edit(track, instruction: EditInstruction, config=None, progress: Progress | None = None, fit=None):
    """The manipulate step: a track and an instruction -> an :class:`~ned_fx.manipulation.EditedTrack`.

    Args:
        track: the shot's :class:`~ned_fx.tracking.Track` (the selected face is edited).
        instruction: what the face should do; config: a :class:`~ned_fx.manipulation.ManipulatorConfig`.
        fit: the track's :class:`~ned_fx.manipulation.TrackFit` under ``config`` and the instruction's neutral frame
            (:func:`track_fit`: what every edit of the shot shares); None: fitted here.

    Raises:
        InvalidParameterError: see :func:`check_instruction`; NoFaceError: no face in the track, or none in
        the reference (the message names the file).
    """
    from . import manipulation as manip

    config = config or manip.ManipulatorConfig()
    keys, curve = check_instruction(instruction, config)
    i = instruction
    if not track.found.any():
        raise NoFaceError(f"no face was found in any frame of {track.source or 'the shot'}; nothing to edit")
    if fit is None:
        fit = manip.fit_track(track, config, neutral_frame=i.neutral_frame)
    reference = _reference_style(i, fit.model.neutral, config) if i.reference else None
    edited = manip.manipulate(track, i.emotion, i.intensity, keys=keys, curve=curve, reference=reference,
                              regions=manip.parse_regions(i.regions), speech=i.speech, config=config, fit=fit)
    return replace(edited, params={**edited.params, "instruction": i.as_params(),
                                   **({"reference_summary": _style_summary(edited, reference)} if reference else {})})


#: bump when what a cached fit holds changes meaning
FIT_CACHE_VERSION = 2


def track_fit(track, config=None, neutral_frame: int | None = None, track_key: str | None = None, folder=None):
    """The track's :class:`~ned_fx.manipulation.TrackFit` (its expression model and per-frame AU activations: the
    part of planning every edit of the shot shares, ~0.3-0.8 s a 100-frame shot), read from the track cache's folder
    (``fit-<key>.npz``, 0600) when ``track_key`` names the cached track it was made from, else fitted (and stored
    there). The key covers the track's key, the manipulator config, the neutral frame and the manipulation code;
    a fit that cannot be read or stored only costs fitting again.

    Args:
        track: the track as the cache holds it (``as_cached``); config: a ManipulatorConfig (None: defaults);
        neutral_frame: the instruction's neutral frame; track_key: the track cache's key of ``track`` (None: no
        cache); folder: the cache folder (default :func:`ned_fx.tracking.cache.cache_dir`).
    """
    from . import manipulation as manip

    config = config or manip.ManipulatorConfig()
    if track_key is None:
        return manip.fit_track(track, config, neutral_frame=neutral_frame)
    import hashlib

    from . import __version__
    from .cachefiles import hash_package_sources
    from .tracking.cache import cache_dir, load_private, store_private

    h = hashlib.sha256(repr((FIT_CACHE_VERSION, __version__, track_key, neutral_frame, repr(config))).encode())
    hash_package_sources(h, "manipulation")
    path = Path(folder or cache_dir()) / f"fit-{h.hexdigest()[:32]}.npz"
    # (a fit of another track, were a key ever to collide, would not have this track's frame count: a miss; the
    # shapes are made only for a fit that is there to read: a miss's fit_track makes its own)
    from .manipulation.manipulator import track_shapes

    fit = load_private(path, lambda data: manip.TrackFit.from_arrays({k: data[k] for k in data.files},
                                                                     track_shapes(track)))
    if fit is not None:
        return fit
    fit = manip.fit_track(track, config, neutral_frame=neutral_frame)
    store_private(path, lambda fh: np.savez(fh, **fit.to_arrays()))
    return fit


MESH_CACHE_VERSION = 1


def mesh_key(reference) -> str:
    """What a stored render mesh of mean shape ``reference`` was made from: the shape's values, the triangulation's
    code (the rendering package and the topology) and ned_fx's version (32 hex digits)."""
    import hashlib

    from . import __version__
    from .cachefiles import hash_package_sources

    shape = np.ascontiguousarray(reference, dtype=np.float64)
    h = hashlib.sha256(repr((MESH_CACHE_VERSION, __version__, shape.shape)).encode())
    h.update(shape.tobytes())
    hash_package_sources(h, "rendering")
    h.update((Path(__file__).parent / "topology.py").read_bytes())
    return h.hexdigest()[:32]


def shot_mesh(reference, cache: bool = False, folder=None):
    """The shot's :class:`~ned_fx.rendering.RenderMesh` (:func:`~ned_fx.rendering.build_render_mesh` of its mean
    shape ``reference``); with ``cache`` read from the cache folder (``mesh-<key>.npz``, 0600; key: the shape's
    values and the triangulation's code), else built and stored there. A second edit of a cached shot then neither
    triangulates again nor imports scipy.spatial (its Delaunay: ~0.3 s of a process). The same triangles either
    way: a file that cannot be read or written only costs building the mesh again.

    Args:
        reference: the shot's mean shape (``Track.mean_shape``); cache: use the cache folder;
        folder: the cache folder (default :func:`ned_fx.tracking.cache.cache_dir`).
    """
    from .rendering import RenderMesh, build_render_mesh

    if not cache:
        return build_render_mesh(reference)
    from .tracking.cache import cache_dir, load_private, store_private

    path = Path(folder or cache_dir()) / f"mesh-{mesh_key(reference)}.npz"
    mesh = load_private(path, lambda data: RenderMesh.from_triangles(np.asarray(data["triangles"])))
    if mesh is not None:
        return mesh
    mesh = build_render_mesh(reference)
    store_private(path, lambda fh: np.savez(fh, triangles=mesh.triangles))
    return mesh


def _style_summary(edited, reference) -> dict:
    return {"name": reference.name, "neutral": reference.neutral,
            "top": {n: round(float(v), 3) for n, v in zip(edited.au_names, reference.style) if v > 0.1}}


def _reference_style(instruction: EditInstruction, actor_neutral, config):
    """Track the reference and measure its style."""
    from . import manipulation as manip

    ref = Path(instruction.reference)
    rtrack = track_media(ref, frames=instruction.reference_frames)
    if not rtrack.found.any():
        raise NoFaceError(f"no face found in the reference {ref.name}")
    neutral_index = None
    if instruction.reference_neutral_frame is not None:
        numbers = [int(n) for n in rtrack.frame_numbers]
        if instruction.reference_neutral_frame not in numbers:
            raise InvalidParameterError(f"reference neutral frame {instruction.reference_neutral_frame} is not in "
                                        f"{ref.name} (frames {numbers[0]}-{numbers[-1]})")
        neutral_index = numbers.index(instruction.reference_neutral_frame)
    return manip.reference_style(rtrack.landmarks, rtrack.pose, rtrack.found, actor_neutral, config,
                                 name=ref.name, neutral_frame=neutral_index)


# ---- the main job: edit a plate ----------------------------------------------------------------------------------

STAGES = ("decode", "track", "manipulate", "appearance", "render", "composite", "encode")


@dataclass(frozen=True)
class EditSummary:
    """What an edit did: frames edited, frames passed through (with the reason), and time per stage."""

    output: str
    frames: int
    edited: tuple[int, ...]
    passed_through: dict
    resumed: tuple[int, ...]
    seconds: dict
    preview: str | None = None
    face_id: int = -1
    analysis: str | None = None
    outputs: tuple = ()               # ({"path", "sha256"}, …) of every file written (also in the audit log)
    signed: bool = False              # C2PA Content Credentials added to the output
    content_seconds: dict = field(default_factory=dict)   # the face content's share of "render": per sub-stage
    # the CPU seconds of the threads that ran each rendering stage ("render", "composite", "encode": this process's
    # own threads, not the encoder's): beside the wall ``seconds``, which count a stage's waits for a core too
    cpu_seconds: dict = field(default_factory=dict)
    layer: str = "full"               # "full" frames, or "patch": the edited region with premultiplied alpha
    matte: str | None = None          # where the matte went: the matte file/pattern, or "EXR channel NAME"
    restarted: str | None = None      # why a sequence output's frames already there were rendered again
    field_order: str | None = None    # an interlaced movie source's field order (MovieSource.field_order), kept
    wall_seconds: float = 0.0         # the whole edit, start to end (the stages' seconds overlap: they run at once)
    track_cached: bool = False        # the shot's track was read from the analysis cache, not tracked again

    def fps(self) -> float:
        """Frames a second over the whole edit (its wall time; a summary without one: the stages' sum)."""
        total = self.wall_seconds or sum(self.seconds.values())
        return self.frames / total if total > 0 else 0.0


class _Clock:
    def __init__(self):
        import threading

        self.seconds = {s: 0.0 for s in STAGES}
        self.cpu = {s: 0.0 for s in STAGES}
        self.track_cached = False
        self._lock = threading.Lock()

    def add(self, stage: str, started: float, cpu_started: float | None = None) -> float:
        """Add the wall seconds since ``started`` (``time.perf_counter``) to ``stage``, and the calling thread's
        CPU seconds since ``cpu_started`` (``time.thread_time`` in this thread) when given; returns now."""
        import time

        now = time.perf_counter()
        with self._lock:            # the render's steps run in threads of their own (ned_fx.streams)
            self.seconds[stage] += now - started
            if cpu_started is not None:
                self.cpu[stage] += time.thread_time() - cpu_started
        return now

    def merge(self, seconds: dict, cpu: dict) -> None:
        """Add another clock's seconds (a render worker's, per stage)."""
        with self._lock:
            for stage, value in seconds.items():
                self.seconds[stage] += value
            for stage, value in cpu.items():
                self.cpu[stage] += value


def _movie_file(path) -> Path | None:
    """``path`` when it is a movie file (whose codec, rotation and pixel aspect an output takes on), else None."""
    from .media import MOVIE_EXTENSIONS

    p = Path(path)
    return p if p.suffix.lower() in MOVIE_EXTENSIONS and p.is_file() else None


def _output_kind(output: Path) -> str:
    from .media import MOVIE_EXTENSIONS, is_sequence_pattern

    if is_sequence_pattern(output):
        return "sequence"
    if output.suffix.lower() in MOVIE_EXTENSIONS:
        return "movie"
    return "image"


def edit_media(path: str | Path, output: str | Path, instruction: EditInstruction, frames: str | None = None,
               face_id: int | None = None, preview: str | Path | None = None, tracker_config=None,
               manipulator_config=None, renderer_config=None, compositor_config=None,
               progress: Callable[[str, int, int], None] | None = None, resume: bool = True,
               analysis: str | Path | None = None, analysis_only: bool = False, consent: str | None = None,
               audit=None, sign: tuple | None = None, sign_alg: str = "es256", renderer: str = "geometry",
               checkpoint: str | Path | None = None, content=None,
               actor_footage: tuple = (), linearize: bool = False, layers=None,
               track_cache: bool = False) -> EditSummary:
    """The main job: change the expression of the actor in a plate, keeping everything else.

    Args:
        path: the input plate (movie, still, or ``shot.####.exr`` / ``shot.%04d.exr`` sequence); never modified.
        output: where to write: a sequence pattern (frame numbers kept), a movie (frame rate, size and the
            audio track kept) or a still. Written atomically, frame by frame for sequences.
        instruction: what the face should do; frames: a frame range (``"1001-1100"``); face_id: which face;
        preview: a before/after picture (``.png``) or movie (``.mp4``) side by side.
        tracker_config … compositor_config: per-stage configs (defaults when None).
        progress: called as ``progress(stage, done, total)`` with stage ``"tracking"`` or ``"rendering"``.
        resume: for sequence outputs, frames already written by an edit with the same parameters of the same
            source content (:func:`~ned_fx.media.source_fingerprint`, kept in the ``.NAME.ned_fx.json`` manifest
            beside the output) are kept; a re-delivered plate renders every frame again.
        analysis: a shot analysis file (``.npz``: track + edit plan). If it exists it is used instead of tracking
            (it must have been made for the same source, instruction and face, and hold every frame asked for), so
            farm tasks render chunks of a shot analysed once; if not, the analysis of ``frames`` is written there.
        analysis_only: write the analysis and stop (the farm's first layer); needs ``analysis``.
        consent: the performer's consent reference (free text or id), carried into every output's provenance and
            the audit line.
        audit: an :class:`~ned_fx.provenance.AuditLog`: one ``edit`` line when the edit ends (who, shot,
            parameters, consent, every output with its SHA-256; ``status`` ``done`` or ``failed``).
        sign: ``(certificate chain PEM, private key PEM)`` (paths or PEM text): add signed C2PA Content
            Credentials to a still or movie output (PNG, JPEG, TIFF, MP4, MOV); sign_alg: the key's algorithm.
        renderer: ``"geometry"`` (default) or ``"neural"``: the actor's neural renderer (``checkpoint``, from
            ``ned-fx train-renderer``) refines the geometry renderer's warp; every guarantee above holds the same.
        content: a :class:`~ned_fx.appearance.ContentConfig` (which face-content sub-stages run: occluders kept,
            mouth interior, eyeballs; a holdout matte). Default: all of them.
        actor_footage: more footage of the same actor (files): a library of mouth interiors and eyes for the
            shot's appearance models (never edited).
        linearize: when the output's format cannot hold the plate's pixel type (an 8/16-bit plate to EXR, a float
            plate to PNG/JPEG) it is converted (:mod:`ned_fx.media.convert`): display-referred by default
            (code / white), through the sRGB curve (scene-linear EXR) with ``linearize``.
        layers: a :class:`~ned_fx.media.layers.LayerConfig`: a patch with alpha instead of the full frame, the
            matte (an EXR channel, else a file beside the output), a movie source's YUV conversion and a movie
            output's codec (its timecode and reel name follow the source's). Default: full frames, no matte.
        track_cache: look the shot's track up in ``$NED_FX_HOME/cache`` (keyed by the source's content, the frames,
            the face and the tracker config) and store it there when tracked, so another edit of the same plate
            skips tracking (:mod:`ned_fx.tracking.cache`; ``ned-fx edit`` does, unless ``--no-cache``); afterwards
            the folder is kept under its size limit (:func:`ned_fx.cachefiles.trim_to_limit`).

    Every file written carries the edit's provenance record (:mod:`ned_fx.provenance`) in its own metadata:
    the shot's record, stamped per frame with the source frame number (and, for a sequence source, that frame
    file's SHA-256) and whether the frame was edited or passed through.

    Returns:
        an :class:`EditSummary` (no frames rendered with ``analysis_only``).

    Raises:
        InputNotFoundError, UnreadableMediaError, UnsupportedFormatError: the input cannot be read.
        InvalidParameterError: a bad instruction or range, an output that would overwrite the input, a still
            output for several frames. NoFaceError: no face anywhere in the shot (or in the reference).
        OutputWriteError: an output cannot be written (nothing half-written is left).
        UnsupportedFormatError: ``sign`` for an output C2PA cannot sign (EXR, a sequence).
        SigningError: the certificate or key is refused. AuditLogError: the audit log cannot be written.
    """
    path, output = Path(path), Path(output)
    if audit is not None:
        audit.check()                      # a log that cannot be written fails now, not after the render
    reached: list = []
    import time

    started, clock_start = time.perf_counter(), time.time()
    try:
        summary = _checked_edit(path, output, instruction, frames, face_id, preview, tracker_config,
                                manipulator_config, renderer_config, compositor_config, progress, resume, analysis,
                                analysis_only, consent, audit, sign, sign_alg, renderer, checkpoint, content,
                                actor_footage, linearize, reached, layers=layers, track_cache=track_cache)
        if track_cache:         # the cache's size limit: the least recently used analyses go, never this edit's
            from .cachefiles import trim_to_limit

            trim_to_limit(since=clock_start - 2.0)
        return replace(summary, wall_seconds=time.perf_counter() - started)
    except BaseException as exc:           # every attempt that reached the input is audited, whatever stopped it
        if audit is not None and reached and not getattr(exc, "_ned_fx_audited", False):
            _audit_edit(audit, "failed", path, frames, face_id, instruction, consent, None, [],
                        error=f"{type(exc).__name__}: {exc}", renderer=renderer)
        raise


def _checked_edit(path, output, instruction, frames, face_id, preview, tracker_config, manipulator_config,
                  renderer_config, compositor_config, progress, resume, analysis, analysis_only, consent, audit,
                  sign, sign_alg, renderer, checkpoint, content, actor_footage, linearize, reached,
                  layers=None, track_cache=False) -> EditSummary:
    from .media import ensure_not_input
    from .media.layers import LayerConfig, check_layer_output
    from .provenance import normalise_consent

    # the options first (a refused option is not an attempt: nothing is audited) ...
    kind = _output_kind(output)
    consent = normalise_consent(consent)
    _check_output_format(output, kind, preview)
    layers = layers if layers is not None else LayerConfig()
    check_layer_output(output, kind, layers, source=_movie_file(path))
    if preview is not None and _same_path(preview, output):
        raise InvalidParameterError(f"--preview {preview} is the same file as the output -o {output}: give the "
                                    f"before/after preview its own name (e.g. {output.stem}_preview.png)")
    _check_provenance_formats(output, kind, preview)
    if sign is not None:
        _check_signing(output, kind, sign, sign_alg)
    if analysis_only and analysis is None:
        raise InvalidParameterError("--analysis-only needs the analysis file to write: --analysis SHOT.analysis.npz")
    if analysis is not None and Path(analysis).suffix != ".npz":
        raise InvalidParameterError(f"an analysis file must end in .npz, got {Path(analysis).name}")
    ensure_not_input(output, [path])
    if preview is not None:
        ensure_not_input(preview, [path, output])
    check_instruction(instruction, manipulator_config)
    neural = check_renderer(renderer, checkpoint)
    # ... then the input (from here on every failure is audited): a missing or unreadable input is told at once
    reached.append(True)
    count = _check_input(path, frames)
    if kind == "image" and count != 1 and analysis is None:
        raise InvalidParameterError(f"{output.name} is a still but {count} frames are to be edited; write a "
                                    f"sequence (name.####.exr) or a movie (.mov/.mp4)")
    if not analysis_only:
        check_free_space(path, output, kind, frames, count)
    made = _make_output_folders(output, preview)
    try:
        return _edit(path, output, kind, instruction, frames, face_id, preview, tracker_config, manipulator_config,
                     renderer_config, compositor_config, progress, resume, analysis, analysis_only, consent, audit,
                     sign, sign_alg, renderer, checkpoint, content, actor_footage, neural, linearize, layers=layers,
                     track_cache=track_cache)
    except BaseException:
        _remove_empty(made)              # a failed edit leaves no folder it made (nothing half-written is in them)
        raise


def _edit(path, output, kind, instruction, frames, face_id, preview, tracker_config, manipulator_config,
          renderer_config, compositor_config, progress, resume, analysis, analysis_only, consent, audit, sign,
          sign_alg, renderer, checkpoint, content, actor_footage, neural, linearize, layers=None,
          track_cache=False) -> EditSummary:
    clock = _Clock()

    # 1.+2. analyse the shot (track every frame: smoothing and the neutral need the whole shot) and plan the edit,
    # or take both from an analysis file made once for the shot
    from .appearance import ContentConfig

    content = content if content is not None else ContentConfig()
    actor_footage = tuple(str(p) for p in actor_footage)
    check_render_files(actor_footage, content.holdout)
    models = mesh = None
    kept: list = []                   # the crops the tracking pass keeps for the appearance models
    if analysis is not None and Path(analysis).is_file():
        shot = read_analysis(analysis)
        check_analysis(shot, path, instruction, face_id, frames)
        track, edited, models, mesh = shot.track, shot.edited, shot.models, shot.mesh
        if frames is None:
            frames = f"{int(track.frame_numbers[0])}-{int(track.frame_numbers[-1])}"
    else:
        track, edited = _analyse(path, instruction, frames, face_id, tracker_config, manipulator_config, progress,
                                 clock, cache=track_cache, keep=_keeper(content, kept, frames=not analysis_only))
    if models is None:                # not analysed yet, or an analysis file from before the appearance models
        import time

        t0 = time.perf_counter()
        models = _shot_models(path, track, edited, frames, actor_footage, content, tracker_config, progress,
                              cache=track_cache, kept=kept[0] if kept else None)
        clock.seconds["appearance"] += time.perf_counter() - t0
        # (the track is at its files' precision already: the mesh of its mean shape is the stored track's)
        shot = ShotAnalysis(track, edited, analysis_key(path, instruction, face_id), models,
                            shot_mesh(track.mean_shape, cache=track_cache))
        if analysis is not None and not Path(analysis).is_file():
            write_analysis(analysis, shot)
            shot = read_analysis(analysis)   # render from what the file holds, as every farm chunk will
        else:
            shot = as_stored(shot)           # ... and without a file, from the same values
        track, edited, models, mesh = shot.track, shot.edited, shot.models, shot.mesh
    count = _frames_to_render(track, frames)
    if kind == "image" and count != 1:
        raise InvalidParameterError(f"{output.name} is a still but {count} frames are to be edited; write a "
                                    f"sequence (name.####.exr) or a movie (.mov/.mp4)")
    # the frames the tracking pass decoded, when they were all kept: the render decodes nothing again
    decoded = kept[0].decoded_frames(len(track.frame_numbers)) if kept else None
    kept.clear()
    if analysis_only:
        return EditSummary(output=str(output), frames=0, edited=(), passed_through={}, resumed=(),
                           seconds=dict(clock.seconds), face_id=track.face_id, analysis=str(analysis),
                           track_cached=clock.track_cached)
    # 3. render + composite every frame, write as we go (each output stamped with the edit's provenance)
    from .provenance import build_record

    record = build_record(path, instruction, face_id=int(track.face_id), frames=_range_text(track, frames),
                          renderer=renderer, kind="video" if kind == "movie" else "image", consent=consent,
                          application="ned-fx edit", hash_source=path.is_file())
    if layers is not None:               # how a movie was decoded, and what the output holds
        record = replace(record, layer=layers.layer, yuv_conversion=layers.yuv_conversion
                         if _movie_file(path) is not None else None)
    from concurrent.futures import ThreadPoolExecutor

    written: list = []
    # SHA-256 of source and output frame files runs beside the render (it would cost ~10 % at 1080p in line)
    hasher = ThreadPoolExecutor(1, thread_name_prefix="ned-fx-hash")
    try:
        summary = _render_shot(path, output, kind, track, edited, frames, preview, renderer_config,
                               compositor_config, progress, resume, clock, instruction, record, written, hasher,
                               neural=(checkpoint, neural) if neural is not None else None, models=models,
                               content=content, linearize=linearize, layers=layers, decoded=decoded,
                               shot_cache=track_cache, mesh=mesh)
        if sign is not None:
            from .media.readers import read_provenance
            from .provenance.c2pa import sign_file

            # the manifest carries the very record the file's metadata carries
            sign_file(output, output, sign[0], sign[1], read_provenance(output) or record, alg=sign_alg)
            summary = replace(summary, signed=True)
        outputs = tuple(_output_entries(written))
        summary = replace(summary, outputs=outputs)
    except BaseException as exc:
        if audit is not None:
            _audit_edit(audit, "failed", path, frames, face_id, instruction, consent, record,
                        _output_entries(written), error=f"{type(exc).__name__}: {exc}")
            try:
                exc._ned_fx_audited = True
            except AttributeError:
                pass
        raise
    finally:
        hasher.shutdown(wait=True)
    if audit is not None:
        _audit_edit(audit, "done", path, frames, face_id, instruction, consent, record, outputs, summary=summary)
    return summary


RENDERERS = ("geometry", "neural")


def _check_input(path: Path, frames: str | None) -> int:
    """Open the input (cheap: no decoding) before any other work: how many frames are to be edited.

    Raises:
        InputNotFoundError, UnreadableMediaError, UnsupportedFormatError, InvalidParameterError (a bad range).
    """
    with open_media(path, parse_frame_range(frames)) as source:
        return len(source)


def _still_formats() -> tuple[str, ...]:
    from .media import IMAGE_EXTENSIONS
    from .provenance.embed import FORMATS

    return tuple(e for e in IMAGE_EXTENSIONS if e in FORMATS)


def _check_output_format(output: Path, kind: str, preview) -> None:
    """Refuse, before any work, an output or preview whose format ned_fx cannot write (names the valid ones)."""
    from .media import MOVIE_EXTENSIONS

    stills = _still_formats()
    movies = tuple(e for e in MOVIE_EXTENSIONS if e in (".mp4", ".mov", ".mkv", ".webm", ".avi"))
    ext = output.suffix.lower()
    if kind in ("image", "sequence") and ext not in stills:
        if ext in MOVIE_EXTENSIONS or ext in (".bmp",):
            pass                          # movies are kind "movie"; BMP gets the provenance message below
        else:
            raise InvalidParameterError(
                f"cannot write {output.name}: {ext or 'no extension'} is not an output format; valid: stills "
                f"{' '.join(stills)}, sequences name.####{stills[0]} (any still format), movies {' '.join(movies)}")
    if preview is not None:
        pext = Path(preview).suffix.lower()
        if pext not in stills and pext not in movies and pext != ".bmp":
            raise InvalidParameterError(f"cannot write the preview {Path(preview).name}: valid: a still "
                                        f"({' '.join(stills)}) or a movie ({' '.join(movies)})")


def _same_path(a, b) -> bool:
    import os

    return os.path.abspath(os.path.expanduser(str(a))) == os.path.abspath(os.path.expanduser(str(b)))


def _make_output_folders(output: Path, preview) -> list[Path]:
    """Create the outputs' folders; returns those it created (deepest first) so a failed edit can remove them."""
    made: list[Path] = []
    for target in (output, Path(preview) if preview else None):
        if target is None:
            continue
        missing = []
        folder = target.parent.absolute()
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _remove_empty(made)
            raise OutputWriteError(f"cannot create the folder {target.parent}: {exc.strerror or exc}") from None
        made.extend(missing)
    return made


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:                # deepest first
        try:
            for side in folder.glob(".*.ned_fx.json"):       # the resume manifest of a sequence never written
                side.unlink()
            folder.rmdir()
        except OSError:
            pass


def check_renderer(renderer: str, checkpoint: str | Path | None):
    """Validate the renderer choice before any work.

    Returns:
        the neural renderer's :class:`~ned_fx.rendering.neural.Checkpoint` (read once), or None for geometry.

    Raises:
        InvalidParameterError: an unknown renderer (valid ones listed), neural without a checkpoint or a
            checkpoint without neural. InputNotFoundError, UnreadableMediaError: the checkpoint cannot be read.
    """
    if renderer not in RENDERERS:
        raise InvalidParameterError(f"renderer must be one of {', '.join(RENDERERS)}, got {renderer!r}")
    if renderer == "geometry":
        if checkpoint is not None:
            raise InvalidParameterError("a checkpoint is for the neural renderer: add --renderer neural")
        return None
    if checkpoint is None:
        raise InvalidParameterError("the neural renderer needs the actor's checkpoint: --checkpoint ACTOR.ckpt "
                                    "(train one with `ned-fx train-renderer FOOTAGE -o ACTOR.ckpt`)")
    from .rendering.neural import read_checkpoint

    return read_checkpoint(checkpoint)


def _check_provenance_formats(output: Path, kind: str, preview) -> None:
    """Every output carries provenance: refuse, before any work, a picture format that has no metadata (BMP)."""
    from .media import IMAGE_EXTENSIONS
    from .provenance.embed import FORMATS

    for target, what in ((output, "output"), (Path(preview) if preview else None, "preview")):
        if target is None or (target is output and kind == "movie"):
            continue
        ext = target.suffix.lower()
        if ext in IMAGE_EXTENSIONS and ext not in FORMATS:
            valid = " ".join(e for e in FORMATS if e in IMAGE_EXTENSIONS)
            raise InvalidParameterError(
                f"the {what} {target.name} cannot say it was edited: {ext} files have no metadata for the "
                f"provenance every ned_fx output carries; valid: {valid}")


def _check_signing(output: Path, kind: str, sign: tuple, alg: str) -> None:
    """Refuse C2PA signing the output cannot take, or credentials C2PA refuses, before any work."""
    from .errors import UnsupportedFormatError
    from .provenance.c2pa import SIGNABLE, check_signer

    if kind == "sequence" or output.suffix.lower() not in SIGNABLE:
        raise UnsupportedFormatError(
            f"Content Credentials (C2PA) are added to delivered stills and movies; {output.name} is "
            f"{'a sequence' if kind == 'sequence' else 'a ' + output.suffix + ' file'}; valid outputs: "
            f"{' '.join(sorted(SIGNABLE))} (every output carries ned_fx provenance in its metadata anyway)")
    if len(sign) != 2:
        raise InvalidParameterError("signing needs a certificate chain and a private key (--sign-cert, --sign-key)")
    check_signer(sign[0], sign[1], alg)


def _range_text(track, frames: str | None) -> str:
    from .media.frames import describe_numbers

    numbers = [int(n) for n in track.frame_numbers]
    asked = parse_frame_range(frames)
    if asked is not None:
        numbers = [n for n in numbers if asked.first <= n <= asked.last and (n - asked.first) % asked.step == 0]
    return describe_numbers(numbers).split(" (")[0] if numbers else ""


def _output_entries(written) -> list:
    """``{path, sha256}`` of each output: a path (hashed now: a still or movie, after any signing) or a future of
    the entry (sequence frames, hashed in the background as they were written)."""
    from .provenance import output_entry

    entries = []
    for item in written:
        if hasattr(item, "result"):
            try:
                entries.append(item.result())
            except Exception:           # a frame file that vanished: the audit line lists what is there
                pass
        elif Path(item).is_file():
            entries.append(output_entry(item))
    return entries


def _audit_edit(audit, status, path, frames, face_id, instruction, consent, record, outputs, summary=None,
                error=None, renderer: str | None = None) -> None:
    fields = {"status": status, "shot": {"source": str(Path(path).resolve()), "frames": frames, "face": face_id},
              "params": instruction.as_params(), "consent": consent,
              "renderer": record.renderer if record is not None else renderer,
              "source_sha256": record.source_sha256 if record is not None else None, "outputs": list(outputs)}
    if summary is not None:
        fields.update(face=summary.face_id, edited=len(summary.edited), passed_through=len(summary.passed_through),
                      resumed=len(summary.resumed), signed=summary.signed)
    if error is not None:
        fields["error"] = error[:2000]
    audit.write("edit", **fields)


def _keeper(content, made: list, frames: bool = True):
    """A maker of the :class:`~ned_fx.appearance.FrameKeeper` the tracking pass fills for the appearance models
    and (``frames``) the render (appended to ``made``), or None when neither needs it."""
    if not content.builds_models and not frames:
        return None
    from .appearance import KEEP_FRAME_BYTES, FrameKeeper

    def make(total: int):
        made.append(FrameKeeper(total, content, frame_bytes=KEEP_FRAME_BYTES if frames else 0))
        return made[-1]

    return make


def _analyse(path, instruction, frames, face_id, tracker_config, manipulator_config, progress, clock,
             cache=False, keep=None):
    """Track the shot and plan the edit (the two per-shot steps before rendering). With ``cache`` the track is
    looked up in (and stored to) the track cache, and the plan is made from the track as the cache holds it, so
    the first and a later edit of the shot render the same pixels."""
    import time

    from .tracking import TrackerConfig

    t0 = time.perf_counter()
    config = tracker_config or TrackerConfig()
    track = key = tracker = None
    if cache:
        from .media import source_fingerprint
        from .tracking.cache import find_track

        track, key, tracker = find_track(source_fingerprint(path), frames, face_id, config)
    clock.track_cached = track is not None
    if track is not None and progress:
        progress("tracking", track.num_frames, track.num_frames)
    if track is None:            # (tracked by find_track's tracker on a miss, else by one track_media makes)
        track = track_media(path, config, frames=frames, face_id=face_id, tracker=tracker,
                            progress=(lambda d, n: progress("tracking", d, n)) if progress else None, keep=keep)
        from .tracking.cache import as_cached, store_track

        if key is not None:
            store_track(key, track)
        # the plan is made from the track at the cache file's precision whether or not it was stored, so an edit
        # with --no-cache renders what a cached edit renders (float64 landmarks moved ~6-9 pixels a frame by one
        # code value)
        track = as_cached(track)
    clock.seconds["track"] += time.perf_counter() - t0
    check_one_shot(track, path)
    t0 = time.perf_counter()
    from .manipulation.edited import as_stored

    # rendered from the plan at an edit file's precision, as the daemon renders a session's: the CLI and a host
    # render the same pixels
    fit = track_fit(track, manipulator_config, instruction.neutral_frame, track_key=key)     # (no key: fitted)
    edited = as_stored(plan_edit(track, instruction, manipulator_config, fit=fit))
    clock.seconds["manipulate"] += time.perf_counter() - t0
    return track, edited


def check_one_shot(track, source) -> None:
    """The track covers one shot: no cut (``track.meta["cuts"]``, :mod:`ned_fx.tracking.cuts`) inside it.

    Raises:
        ShotCutError: it holds a cut; the message names each shot's frame range and how to go on.
    """
    from .errors import ShotCutError
    from .tracking.cuts import shots

    numbers = np.asarray(track.frame_numbers)
    cuts = [int(np.searchsorted(numbers, c)) for c in track.meta.get("cuts", ())]
    if not cuts:
        return
    spans = [(int(numbers[a]), int(numbers[b])) for a, b in shots(len(numbers), cuts)]
    ranges = ", ".join(f"--frames {a}-{b}" for a, b in spans)
    raise ShotCutError(
        f"{Path(str(source)).name}: frames {spans[0][0]}-{spans[-1][1]} hold {len(spans)} shots (a cut before "
        f"frame{'s' if len(cuts) > 1 else ''} {', '.join(str(int(numbers[c])) for c in cuts)}: the picture changes "
        f"at once into another). One edit follows one face through one shot (its neutral, speech and appearance "
        f"models are that shot's): edit each shot on its own ({ranges}), or, if these are not cuts, "
        f"track the range as one shot (--ignore-cuts; a daemon session's or a shot list's ignore_cuts: true; "
        f"TrackerConfig(cut_threshold=0))", spans)


# ---- shot analysis files (analyse once, render chunks anywhere) ---------------------------------------------------

ANALYSIS_FORMAT = "ned_fx.analysis/1"


@dataclass(frozen=True)
class ShotAnalysis:
    """A shot analysed once: its track, its edit plan, and the key of what it was made from."""

    track: object
    edited: object
    key: dict
    models: object = None         # ShotModels (None in files from before the appearance models: built on use)
    #: the render mesh (RenderMesh; None in files from before it, or made by other rendering code: built on use),
    #: so a farm chunk neither triangulates nor imports scipy.spatial
    mesh: object = None


def analysis_key(path: str | Path, instruction: EditInstruction, face_id: int | None) -> dict:
    """What an analysis depends on: the source's content fingerprint, the instruction and the face asked for."""
    from .media import source_fingerprint

    return {"format": ANALYSIS_FORMAT, "source": str(Path(path).resolve()), "fingerprint": source_fingerprint(path),
            "instruction": instruction.as_params(), "face": face_id, "version": _version()}


def _analysis_arrays(shot: ShotAnalysis) -> dict:
    """The flat arrays an analysis file holds (the track's and the edit's arrays, the models, the key)."""
    import json

    from .manipulation.edited import to_arrays as edit_arrays
    from .tracking.track import to_arrays as track_arrays

    arrays = {f"track.{k}": v for k, v in track_arrays(shot.track).items()}
    arrays.update({f"edit.{k}": v for k, v in edit_arrays(shot.edited).items()})
    if shot.models is not None:
        arrays.update({f"models.{k}": v for k, v in shot.models.to_arrays().items()})
        arrays["models.present"] = np.array(True)
    if shot.mesh is not None:
        arrays["mesh.triangles"] = np.asarray(shot.mesh.triangles, np.int32)
        arrays["mesh.key"] = np.array(mesh_key(shot.track.mean_shape))
    arrays["analysis_key"] = np.array(json.dumps(shot.key, sort_keys=True))
    return arrays


def as_stored(shot: ShotAnalysis) -> ShotAnalysis:
    """The analysis exactly as an analysis file holds it (its arrays' precision): what every render renders
    from, so an edit without ``--analysis``, one with it, a farm chunk and the daemon give the same pixels. The
    render mesh (whole triangle indices: the file holds them unchanged) is kept as given, not keyed and rebuilt."""
    stored = _analysis_from_arrays(_analysis_arrays(replace(shot, mesh=None)), "the analysis")
    return replace(stored, mesh=shot.mesh)


def write_analysis(path: str | Path, shot: ShotAnalysis) -> Path:
    """Write a shot analysis (one ``.npz``: the track's and the edit's arrays + the key) atomically.

    Raises:
        OutputWriteError: it could not be written (nothing half-written is left).
    """
    from .npzfile import write_npz

    return write_npz(path, _analysis_arrays(shot))


def read_analysis(path: str | Path) -> ShotAnalysis:
    """Read a shot analysis written by :func:`write_analysis`.

    Raises:
        InputNotFoundError: no such file. UnreadableMediaError: not an analysis file.
    """
    from .manipulation.edited import REQUIRED as EDIT_REQUIRED
    from .npzfile import read_npz
    from .tracking.track import REQUIRED as TRACK_REQUIRED

    required = ("analysis_key", *(f"track.{k}" for k in TRACK_REQUIRED), *(f"edit.{k}" for k in EDIT_REQUIRED))
    return _analysis_from_arrays(read_npz(path, required, "analysis"), path)


def _analysis_from_arrays(d: dict, path) -> ShotAnalysis:
    import json

    from .errors import UnreadableMediaError
    from .manipulation.edited import from_arrays as edit_from
    from .tracking.track import from_arrays as track_from

    try:
        key = json.loads(str(d["analysis_key"]))
        track = track_from({k[6:]: v for k, v in d.items() if k.startswith("track.")})
        edited = edit_from({k[5:]: v for k, v in d.items() if k.startswith("edit.")})
    except (KeyError, ValueError) as exc:
        raise UnreadableMediaError(f"{path} is not a readable ned_fx analysis file: {exc}") from None
    if key.get("format") != ANALYSIS_FORMAT:
        raise UnreadableMediaError(f"{path} is an analysis of format {key.get('format')!r}; this ned_fx reads "
                                   f"{ANALYSIS_FORMAT!r}: analyse the shot again (--analysis-only)")
    models = None
    if "models.present" in d:
        from .appearance import ShotModels

        try:
            models = ShotModels.from_arrays({k[7:]: v for k, v in d.items() if k.startswith("models.")})
        except (KeyError, ValueError) as exc:
            raise UnreadableMediaError(f"{path}: its appearance models are unreadable: {exc}") from None
    mesh = None
    if "mesh.triangles" in d and str(d.get("mesh.key", "")) == mesh_key(track.mean_shape):
        from .rendering import RenderMesh

        try:
            mesh = RenderMesh.from_triangles(np.asarray(d["mesh.triangles"], np.int64))
        except Exception:        # noqa: BLE001 - an unusable stored mesh is built again on use
            mesh = None
    return ShotAnalysis(track, edited, key, models, mesh)


def check_analysis(shot: ShotAnalysis, path: str | Path, instruction: EditInstruction, face_id: int | None,
                   frames: str | None) -> None:
    """Refuse an analysis made for another source, instruction or face, or that lacks frames asked for.

    Raises:
        InvalidParameterError: the message says what differs and how to redo the analysis.
    """
    want = analysis_key(path, instruction, face_id)
    redo = "delete it or analyse again with --analysis-only"
    for field, what in (("fingerprint", "source (its content changed or it is another file)"),
                        ("instruction", "edit instruction"), ("face", "face id")):
        if shot.key.get(field) != want[field]:
            raise InvalidParameterError(f"the analysis file was made for another {what}: {shot.key.get(field)!r} "
                                        f"vs {want[field]!r}; {redo}")
    asked = parse_frame_range(frames)
    have = [int(n) for n in shot.track.frame_numbers]
    if asked is not None and (asked.first < have[0] or asked.last > have[-1]):
        from .media.frames import describe_numbers

        raise InvalidParameterError(f"frames {frames} are not all in the analysed shot ({describe_numbers(have)}); "
                                    f"{redo} over the whole range")


def _shot_models(path, track, edited, frames, actor_footage, content, tracker_config, progress, cache=False,
                 kept=None):
    """The shot's appearance models (mouth bank, eye model): from the crops the tracking pass ``kept``, else one
    more decode of the shot; none with ``cache`` when an edit of the same shot stored them
    (:func:`~ned_fx.appearance.build_shot_models`)."""
    from .appearance import build_shot_models

    return build_shot_models(path, track, edited, frames, actor_footage, content, tracker_config,
                             progress=(lambda d, n: progress("appearance", d, n)) if progress else None,
                             cache=cache, kept=kept)


def _frames_to_render(track, frames: str | None) -> int:
    asked = parse_frame_range(frames)
    numbers = [int(n) for n in track.frame_numbers]
    if asked is None:
        return len(numbers)
    return sum(1 for n in numbers if asked.first <= n <= asked.last and (n - asked.first) % asked.step == 0)


@dataclass(frozen=True)
class FaceLocation:
    """Where one frame's edit happens (:func:`locate_face`).

    Attributes:
        index: the frame's index in the shot's analysis; reason: None when the frame is edited, else why it passes
            through (``"no face"``, ``"no change at this frame"``, ``"face outside the picture"``);
        box: ``(x0, y0, x1, y1)`` the face region in the frame's pixel (data-window) coordinates, end exclusive;
        src, dst: 478x3 source and target landmarks in those coordinates;
        shift: what was added to the analysis's display-window landmarks to get there (3,);
        source_box: the source face's own region (``face_region_box`` of ``src`` alone, inside ``box``): what
            depends on the plate only (the occluder matte) is found there, the same whatever the edit's target.
    """

    index: int
    reason: str | None
    box: tuple[int, int, int, int] | None = None
    src: np.ndarray | None = None
    dst: np.ndarray | None = None
    shift: np.ndarray | None = None
    source_box: tuple[int, int, int, int] | None = None


def locate_face(track, edited, index: dict, frame: Frame) -> FaceLocation:
    """Where (and whether) ``frame`` of an analysed shot is edited: ShotRenderer's and the fast path's one rule.

    Args:
        track, edited: the shot's Track and EditedTrack; index: ``{frame number: index}`` of the analysis;
        frame: the plate's frame.

    Raises:
        InvalidParameterError: the frame number is not part of the analysed shot.
    """
    from .rendering import face_region_box

    k = index.get(int(frame.number))
    if k is None:
        raise InvalidParameterError(f"frame {frame.number} is not in the analysed shot "
                                    f"({track.frame_numbers[0]}-{track.frame_numbers[-1]})")
    src, dst = edited.source_landmarks[k], edited.target_landmarks[k]
    if not edited.found[k]:
        return FaceLocation(k, "no face")
    if np.array_equal(src, dst):
        return FaceLocation(k, "no change at this frame")
    # landmarks are in display-window pixels; the pixels cover the data window
    shift = frame.display_to_data
    s, d = src + shift, dst + shift
    try:
        box = face_region_box(np.concatenate([s, d]), frame.width, frame.height)
    except InvalidParameterError:
        return FaceLocation(k, "face outside the picture")
    try:        # inside box: the source's points are among box's and its margin is no larger
        source_box = face_region_box(s, frame.width, frame.height)
    except InvalidParameterError:       # the source face lies outside the picture, the target's in it
        source_box = box
    return FaceLocation(k, None, box, s, d, shift, source_box)


def pin_shut_eyes(edited, opened: np.ndarray):
    """``edited`` with each shut eye's lids kept as the source has them (per frame, by ``1 - opened``: the shot
    models' ``eyes_open``, Tx2; :func:`~ned_fx.rendering.eyes.openness.pin_shut_lids`): an eye the tracker follows
    open through a wink is neither widened nor narrowed. The same object when no frame has a shut eye."""
    from dataclasses import replace

    from .rendering.eyes.openness import pin_shut_lids

    opened = np.asarray(opened, np.float64)
    if opened.shape != (len(edited.found), 2):
        raise InvalidParameterError(f"eyes_open has shape {opened.shape}, the shot {len(edited.found)} frames "
                                    "(models of another shot? analyse it again)")
    shut = [k for k in np.flatnonzero(opened.min(axis=1) < 1.0) if edited.found[k]]
    if not shut:
        return edited
    target = np.array(edited.target_landmarks, copy=True)
    for k in shut:
        target[k] = pin_shut_lids(edited.source_landmarks[k], target[k], opened[k])
    return replace(edited, target_landmarks=target)


def hold_lid_folds(edited, planned=None):
    """``edited`` with each brow and the skin above each upper lid held over the lid margin again after the
    renderer's changes to the plan: the brow lifted as one piece to the plan's ``brow_margin_gap`` of its source
    height over the margin (:func:`~ned_fx.manipulation.manipulator.brows_over_lids`), then the lid skin to the
    plan's ``lid_fold_kept`` floor as a hard floor, squeezed evenly under the brow
    (:func:`~ned_fx.manipulation.manipulator.lid_folds_held`). A shut eye's lids pinned where the source has them
    (:func:`pin_shut_eyes`) lay under the lid skin the style moved down (d3's wink under sad: that skin 1.1 times
    its height through the shut lid) and, under angry, under the lowered brow (1.2 px below the pinned lid on frame
    44: the warp folded the skin between them into a stepped line). ``planned``: the plan before the renderer's
    changes; both are then held on the frames those changes moved only (the plan's own brows sit at or a few
    tenths of a pixel under its gap: its guard's share is smoothed over time). The plan's lid skin is at or over
    its floor, so a plan is returned as it is (the same object; its brows too where ``planned`` is given), and so
    is anything that moves less than a millionth of a pixel."""
    from dataclasses import replace

    from .manipulation import ManipulatorConfig
    from .manipulation.manipulator import brows_over_lids, lid_folds_held

    config = (edited.params or {}).get("config") or {}
    kept = config.get("lid_fold_kept", ManipulatorConfig().lid_fold_kept)
    gap = float(config.get("brow_margin_gap", ManipulatorConfig().brow_margin_gap))
    floor = float(kept[0])
    before = np.asarray(edited.target_landmarks)
    found = np.asarray(edited.found, bool)
    moved = found
    if planned is not None:         # the frames the renderer changed
        was = np.asarray(planned.target_landmarks)
        moved = found & ~np.all((before == was) | (np.isnan(before) & np.isnan(was)), axis=(1, 2))
    target = brows_over_lids(edited.source_landmarks, before, moved, gap)
    if floor > 0:
        target = lid_folds_held(edited.source_landmarks, target, moved, (floor, floor))
    if target is before or not np.nanmax(np.abs(target - before)) > 1e-6:
        return edited
    return replace(edited, target_landmarks=target)


def lift_hidden_frown(edited, furrow: np.ndarray, share: float):
    """``edited`` with the brows moved as the skin's folds are (:meth:`~ned_fx.appearance.FaceContent.skin_aus`):
    ``share`` (``RendererConfig.frown_lift``) of the brow lowerer the picture shows beyond the fitted one (the shot
    models' ``furrow``, AU4 activations, T) is taken from the source as far as the edit replaces the source's own:
    neutral or happy on a frown the mesh did not see (d3.mp4) raise and part the brows, angry lowers them only as
    far as they are not down already (:func:`lift_hidden`)."""
    return lift_hidden(edited, "AU4", furrow, share, "furrow")


def lift_hidden(edited, au: str, hidden: np.ndarray, share: float, what: str = "evidence"):
    """``edited`` with the geometry moved as the skin's folds are (:meth:`~ned_fx.appearance.FaceContent.skin_aus`):
    ``share`` of the activation of ``au`` the picture shows beyond the fitted one (``hidden``, T: the shot models'
    ``furrow`` or ``pout``) is taken from the source as far as the edit replaces the source's own
    (``EditedTrack.replaced``): an edit whose target holds less of it than the picture shows moves the face by the
    difference, one that holds more moves it only as far as it is not there already. The offset is decoded as the
    plan decodes it (the speech-safe fields, the lowering or raising one by its sign) and posed by the frame's
    linear pose; the same object when nothing moves (nothing hidden, intensity 0, ``share`` 0).

    Raises:
        InvalidParameterError: ``hidden`` has another length than the shot (``what`` names it in the message).
    """
    from dataclasses import replace

    from .manipulation.expression import frame_offsets

    names = tuple(edited.au_names)
    hidden = np.asarray(hidden, np.float64).reshape(-1)
    if len(hidden) != len(edited.found):
        raise InvalidParameterError(f"the {what} has {len(hidden)} frames, the shot {len(edited.found)} (models of "
                                    "another shot? analyse it again)")
    if au not in names or not share > 0:
        return edited
    i = names.index(au)
    up, down = edited.basis[i], (edited.basis_down if edited.basis_down is not None else edited.basis)[i]

    def field(d: float) -> np.ndarray:                  # the AU's head-frame offset for an activation change d
        return (up if d >= 0 else down) * d

    target = None
    for k in np.flatnonzero(edited.found & (hidden > 0)):
        taken = share * edited.replaced(k, au) * hidden[k]
        if not taken > 0 or not np.isfinite(edited.au_target[k, i]):
            continue
        before = float(edited.au_target[k, i] - edited.au_source[k, i])
        head = field(before - taken) - field(before)                           # Px3, head frame
        if target is None:
            target = np.array(edited.target_landmarks, copy=True)
        p = min(head.shape[0], target.shape[1])
        target[k, :p] += frame_offsets(head[None, :p], edited.pose[k][None])[0][:, :target.shape[2]]
    return edited if target is None else replace(edited, target_landmarks=target)


def untangle_targets(edited, mesh, limit: float):
    """``edited`` with each frame's large fold of the render mesh relaxed
    (:func:`~ned_fx.rendering.mesh.untangle`, ``RendererConfig.fold_limit``); the same object when no frame
    has one (or ``limit`` is 0)."""
    from dataclasses import replace

    from .rendering.mesh import untangle

    if not limit > 0:
        return edited
    target, changed = None, False
    for k in np.flatnonzero(edited.found):
        row = edited.target_landmarks[k]
        got = untangle(edited.source_landmarks[k], row, mesh, limit)
        if got is not row:
            if target is None:
                target = np.array(edited.target_landmarks, copy=True)
            target[k], changed = got, True
    return replace(edited, target_landmarks=target) if changed else edited


class ShotRenderer:
    """Renders any frame of an analysed shot on request (the daemon keeps one per session).

    Args:
        track: the shot's Track; edited: its EditedTrack (from :func:`plan_edit`);
        renderer_config, compositor_config: stage configs (defaults when None).
        checkpoint: the actor's neural renderer (a checkpoint path or a read
            :class:`~ned_fx.rendering.neural.Checkpoint`): it refines the geometry renderer's warp, seeing the
            target meshes of the two previous frames too. None: the geometry renderer alone.
        neural_config: a :class:`~ned_fx.rendering.neural.NeuralRendererConfig` (the checkpoint's when None).
        models: the shot's :class:`~ned_fx.appearance.ShotModels` (mouth bank, eye model; from the analysis).
        content: a :class:`~ned_fx.appearance.ContentConfig`: which face-content sub-stages run (occluders,
            mouth interior, eyeballs) and the holdout matte.
    """

    def __init__(self, track, edited, renderer_config=None, compositor_config=None, checkpoint=None,
                 neural_config=None, models=None, content=None, mesh=None):
        from .appearance import HIDDEN_AUS, ContentConfig, FaceContent
        from .compositing import Compositor
        from .rendering import GeometryRenderer, RendererConfig, build_render_mesh
        from .rendering.motion import face_motion

        content = content if content is not None else ContentConfig()
        planned = edited
        if models is not None and getattr(models, "eyes_open", None) is not None and content.eyes:
            edited = pin_shut_eyes(edited, models.eyes_open)
        renderer_config = renderer_config or RendererConfig()
        # what the picture shows beyond the fitted activations: the geometry follows it as the skin's folds do
        shares = {"furrow": renderer_config.frown_lift, "pout": renderer_config.pout_lift}
        for name, au in HIDDEN_AUS.items():
            hidden = getattr(models, name, None) if models is not None else None
            if hidden is not None:
                edited = lift_hidden(edited, au, hidden, shares[name], name)
        if edited is not planned:           # the plan holds its own lid skin; only what was changed here is held
            edited = hold_lid_folds(edited, planned)
        self.track, self.edited = track, edited
        self.content = FaceContent(models, content)
        self.renderer = GeometryRenderer(renderer_config)
        self.neural = checkpoint is not None
        if self.neural:
            from .rendering.neural import NeuralRenderer

            self.renderer = NeuralRenderer(checkpoint, neural_config, geometry=self.renderer)
        if compositor_config is None and self.neural:     # a neural renderer may drift in colour: match it
            from .compositing import CompositorConfig

            compositor_config = CompositorConfig(color_match=True)
        self.compositor = Compositor(compositor_config)
        self.mesh = mesh if mesh is not None else build_render_mesh(track.mean_shape)
        self.edited = untangle_targets(self.edited, self.mesh, renderer_config.fold_limit)
        self.index = {int(n): t for t, n in enumerate(track.frame_numbers)}
        # the face's movement in the picture per frame (the drawn content takes the camera's smear of it; with a
        # closed shutter or no skin sub-stage nothing is smeared: no need to measure it)
        self.motion = (face_motion(edited.source_landmarks, edited.found, track.frame_numbers)
                       if content.shutter > 0 and content.skin else np.zeros((len(track.frame_numbers), 2)))
        self.warp_seconds = 0.0           # the renderer's own share of "render" (the warp), wall seconds

    def render(self, frame: Frame, clock: "_Clock | None" = None) -> tuple[Frame, str | None]:
        """Edit one frame of the shot.

        Args:
            frame: the plate's frame (native pixels), whose ``number`` is one of the shot's frame numbers.
            clock: accumulates render/composite seconds when given.

        Returns:
            ``(frame, reason)``: the edited frame and None, or the input frame unchanged and why
            (``"no face"``, ``"no change at this frame"``, ``"face outside the picture"``).

        Raises:
            InvalidParameterError: the frame number is not part of the analysed shot.
        """
        return self.finish(self.begin(frame, clock), clock)

    def begin(self, frame: Frame, clock: "_Clock | None" = None) -> "_Pending":
        """The first half of :meth:`render`: find the face, take the occluders out, warp (a frame's halves may
        run in two threads, one frame apart: see :mod:`ned_fx.streams`)."""
        import time

        from .appearance import white_of
        from .compositing import extract_region

        where = locate_face(self.track, self.edited, self.index, frame)
        if where.reason is not None:
            return _Pending(frame, where)
        k, box, s, d, shift = where.index, where.box, where.src, where.dst, where.shift
        t, cpu = time.perf_counter(), time.thread_time()
        x0, y0 = box[0], box[1]
        offset = np.array([x0, y0, 0.0])
        extra = {}
        if self.neural:     # the previous frames' targets (NaN where no face) and the plate's encoding
            extra = {"previous": [self.edited.target_landmarks[j] + shift - offset for j in (k - 1, k - 2) if j >= 0],
                     "plate_dtype": frame.pixels.dtype}
        region = extract_region(frame, box)
        white = white_of(frame.pixels.dtype)
        src_r, dst_r = s - offset, d - offset
        keep = self.content.occluders(region, src_r, white, int(frame.number), box, frame.pixels.shape[:2],
                                      source_box=where.source_box, windows=(frame.data_window, frame.display_window))
        clean = self.content.fill(region, keep)
        w = time.perf_counter()
        rendered = self.renderer.render(clean, src_r, dst_r, self.mesh, **extra)
        self.warp_seconds += time.perf_counter() - w
        if clock:
            clock.add("render", t, cpu)
        return _Pending(frame, where, clean, rendered, src_r, dst_r, keep, white)

    def finish(self, pending: "_Pending", clock: "_Clock | None" = None,
               in_place: bool = False) -> tuple[Frame, str | None]:
        """The second half of :meth:`render`: the new face content over the warp, composited into the plate
        (``in_place``: into the plate frame's own pixels where they are writable, for a caller that reads the plate
        no more: a frame-sized copy saved, ~100 MB for a 4K float frame)."""
        import time

        from .rendering.layers import RegionInputs

        where = pending.where
        if where.reason is not None:
            return pending.frame, where.reason
        t, cpu = time.perf_counter(), time.thread_time()
        k, keep, e = where.index, pending.keep, self.edited
        rendered = self.content.layers(RegionInputs(pending.clean, pending.rendered, pending.src, pending.dst,
                                                    None if keep is None else 1.0 - keep, k, pending.white,
                                                    self.content.smear(self.motion[k])),
                                       self.content.skin_aus(e, k))
        if clock:
            t = clock.add("render", t, cpu)
            cpu = time.thread_time()
        in_place = in_place and bool(pending.frame.pixels.flags.writeable)
        out = self.compositor.composite_frame(pending.frame, rendered, where.box, where.dst, where.src, keep=keep,
                                              in_place=in_place)
        if clock:
            clock.add("composite", t, cpu)
        return out, None


@dataclass(frozen=True)
class _Pending:
    """A frame between :meth:`ShotRenderer.begin` and :meth:`ShotRenderer.finish`."""

    frame: Frame
    where: FaceLocation
    clean: np.ndarray | None = None
    rendered: np.ndarray | None = None
    src: np.ndarray | None = None
    dst: np.ndarray | None = None
    keep: np.ndarray | None = None
    white: float = 1.0


def _render_shot(path, output, kind, track, edited, frames, preview, renderer_config, compositor_config,
                 progress, resume, clock, instruction, record=None, written: list | None = None,
                 hasher=None, neural: tuple | None = None, models=None, content=None,
                 linearize: bool = False, layers=None, decoded: list | None = None,
                 shot_cache: bool = False, mesh=None) -> EditSummary:
    import time

    from .media.layers import LayerConfig

    from .media import open_media, write_image
    from .provenance import file_sha256
    from .streams import staged

    shot = ShotRenderer(track, edited, renderer_config, compositor_config,
                        checkpoint=neural[1] if neural else None, models=models, content=content,
                        mesh=mesh if mesh is not None else shot_mesh(track.mean_shape, cache=shot_cache))
    edited_frames: list[int] = []
    passed: dict[int, str] = {}
    resumed: list[int] = []
    total = 0
    written = [] if written is None else written
    sink = _Sink(output, kind, path, track, edited, instruction, resume, record, written, hasher,
                 renderer={"renderer": "neural", "checkpoint": str(Path(neural[0]).resolve()),
                           "step": int(neural[1].step)} if neural else None, linearize=linearize,
                 layers=layers if layers is not None else LayerConfig(), content=content)
    need_weights = sink.layers.matte or sink.layers.layer == "patch"
    # the plate is read after compositing only by a patch layer and the before/after preview: otherwise the
    # compositor writes into the decoded frame itself (no frame-sized copy)
    in_place = preview is None and sink.layers.layer != "patch"
    if shot_cache and shot.content.occlusion is not None and not shot.content.config.holdout:
        # the occluder mattes do not depend on the emotion: a second edit of the shot reads the first one's
        from .appearance import MatteMemo, matte_cache_key

        shot.content.mattes = MatteMemo(matte_cache_key(path, edited, frames, sink.layers.yuv_conversion))
    before_after = _PreviewSink(preview, track.fps, record, written)
    try:
        with open_media(path, parse_frame_range(frames), yuv_conversion=sink.layers.yuv_conversion) as source:
            total = len(source)
            if source.kind == "movie":          # rotation, pixel aspect, a variable frame rate: a movie keeps them
                sink.presentation = source.presentation()
            hash_own = record is not None and kind != "movie" and source.kind == "sequence"
            frames_in = source
            if decoded is not None and sink.layers.yuv_conversion == "exact" and \
                    [f.number for f in decoded] == [int(n) for n in source.frame_numbers]:
                frames_in = _handed_over(decoded)       # the tracking pass's decode of these very frames

            def decoded_frames():
                t = time.perf_counter()
                for frame in frames_in:
                    t = clock.add("decode", t)
                    if sink.already_done(frame.number):
                        yield frame, None, None
                    else:
                        own = None          # a sequence frame's own file is its source: hashed while it renders
                        if hash_own:
                            target = source.path_for(frame.number)
                            own = hasher.submit(file_sha256, target) if hasher is not None else file_sha256(target)
                        yield frame, own, True
                    t = time.perf_counter()

            def begin(item):
                frame, own, todo = item
                return frame, own, shot.begin(frame, clock) if todo else None

            def finish(item):
                frame, own, pending = item
                if pending is None:
                    return frame, own, None, None
                # the matte / a patch's alpha: the weights the compositor blends this frame with
                weights = blend_weights(shot, pending) if need_weights else None
                return frame, own, shot.finish(pending, clock, in_place=in_place), weights

            # decode, warp, content + composite, and encode (here) of neighbouring frames run at once: the render
            # in forked worker processes where it can (each with its own GIL), else in two threads of this one
            workers = _render_workers(shot, total, in_place and not need_weights and preview is None,
                                      int(track.width), int(track.height))
            if workers > 1:
                results = _forked_render(shot, decoded_frames(), workers, clock)
            else:
                results = staged(decoded_frames(), (begin, finish), name="ned-fx-render")
            for done, (frame, own, result, weights) in enumerate(results, 1):
                t, cpu = time.perf_counter(), time.thread_time()
                if result is None:
                    resumed.append(frame.number)
                else:
                    out_frame, reason = result
                    if reason is None:
                        edited_frames.append(frame.number)
                    else:
                        passed[frame.number] = reason
                    stamp = None
                    if record is not None and kind != "movie":
                        own = own.result() if hasattr(own, "result") else own
                        stamp = record.for_frame(frame.number, own, reason)
                    sink.write(out_frame, write_image, stamp, plate=frame, weights=weights)
                    before_after.add(frame, out_frame)
                    clock.add("encode", t, cpu)
                if progress:
                    progress("rendering", done, total)
        t, cpu = time.perf_counter(), time.thread_time()
        sink.close()
        before_after.close()
        clock.add("encode", t, cpu)
        if shot.content.mattes is not None:
            shot.content.mattes.save()
    except BaseException:
        sink.abort()
        before_after.abort()
        raise
    return EditSummary(output=str(output), frames=total, edited=tuple(edited_frames),
                       passed_through=passed, resumed=tuple(resumed), seconds=dict(clock.seconds),
                       preview=str(preview) if preview else None, face_id=track.face_id,
                       content_seconds={**shot.content.seconds, "warp": shot.warp_seconds}, layer=sink.layers.layer,
                       matte=sink.matte_where(), restarted=sink.restarted_frames(),
                       cpu_seconds={s: clock.cpu[s] for s in ("render", "composite", "encode")},
                       field_order=sink.presentation.field_order if sink.presentation is not None else None,
                       track_cached=clock.track_cached)


def _render_workers(shot: ShotRenderer, total: int, in_place: bool, width: int, height: int) -> int:
    """How many forked processes render this shot's frames (:mod:`ned_fx.forked`); 1: this process's threads.
    Forked only for the CPU geometry renderer compositing in place (no matte or patch weights, no preview), on
    Linux, for frames up to :data:`ned_fx.forked.MAX_PIXELS`, with at least 2 frames per worker, from the main
    thread only (``ned-fx edit``; an edit called from a thread of a caller's own may fork while the caller's other
    threads hold locks a child would wait for), and never after CUDA has started (a forked CUDA context breaks)."""
    import sys
    import threading

    from . import forked

    n = forked.processes()
    if n <= 1 or not in_place or shot.neural or width * height > forked.MAX_PIXELS or not forked.available() \
            or threading.current_thread() is not threading.main_thread():
        return 1
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return 1
    return max(1, min(n, total // 2))


def _forked_render(shot: ShotRenderer, items, workers: int, clock: _Clock):
    """``(frame, own, (edited frame, reason) or None, None)`` for every ``(frame, own, todo)`` of ``items``, as the
    threaded steps of :func:`_render_shot` give them, the frames rendered in ``workers`` forked processes (the
    edited frame's pixels are valid until the next result is taken). The workers' clock, content timings and new
    occluder mattes are added to this process's ``clock``, ``shot.content`` and its matte memo."""
    from .forked import forked
    from .media import Frame

    def split(item):
        frame, _, todo = item
        if not todo:
            return None, None
        return frame.pixels, (frame.number, frame.channels, frame.data_window, frame.display_window)

    def work(message, pixels):                  # in a worker: its own copy of ``shot`` and ``clock``
        number, channels, data_window, display_window = message
        frame = Frame(number, pixels, channels, data_window, display_window)
        seconds, cpu = dict(clock.seconds), dict(clock.cpu)
        content, warp = dict(shot.content.seconds), shot.warp_seconds
        memo = shot.content.mattes
        added = memo.added if memo is not None else 0
        result, reason = shot.finish(shot.begin(frame, clock), clock, in_place=True)
        # this frame's new matte, for the parent to store
        mattes = memo.take(number) if memo is not None and memo.added > added else []
        payload = {"reason": reason, "mattes": mattes, "warp": shot.warp_seconds - warp,
                   "seconds": {k: v - seconds[k] for k, v in clock.seconds.items() if v != seconds[k]},
                   "cpu": {k: v - cpu[k] for k, v in clock.cpu.items() if v != cpu[k]},
                   "content": {k: v - content[k] for k, v in shot.content.seconds.items() if v != content[k]}}
        return result.pixels, payload

    for got in forked(items, split, work, workers, name="ned-fx-render"):
        frame, own, _ = got.item
        if got.pixels is None:
            yield frame, own, None, None
            continue
        p = got.payload
        clock.merge(p["seconds"], p["cpu"])
        for k, v in p["content"].items():
            shot.content.seconds[k] += v
        shot.warp_seconds += p["warp"]
        if shot.content.mattes is not None:
            shot.content.mattes.adopt(p["mattes"])
        yield frame, own, (frame.with_pixels(got.pixels), p["reason"]), None


def _handed_over(frames: list):
    """The frames of ``frames`` in order, each let go as it is taken (memory falls as the render goes)."""
    frames.reverse()
    while frames:
        yield frames.pop()


def blend_weights(shot: ShotRenderer, pending: _Pending) -> np.ndarray:
    """The matte of a frame: the weights ``shot.finish(pending)`` composites with, (H, W) float32 over the frame's
    pixels (its data window), 0 outside the face's box and everywhere for a frame passed through. Call it with
    the ``pending`` of :meth:`ShotRenderer.begin` (before or after ``finish``); the daemon's render option for
    the matte can use it as ``edit_media`` does."""
    where, frame = pending.where, pending.frame
    if where.reason is not None:
        return np.zeros(frame.pixels.shape[:2], np.float32)
    return shot.compositor.weights(frame.pixels.shape, where.box, where.dst, where.src, keep=pending.keep)


#: Fewest bytes per pixel and frame an output of each format takes (photographic plates compress less than this:
#: a low bound, so that a refusal is always right). Movies: a heavily compressed H.264 is ~0.1 bit per pixel.
_LEAST_BYTES_PER_PIXEL = {".exr": 1.0, ".dpx": 4.0, ".tif": 0.5, ".tiff": 0.5, ".png": 0.5, ".jpg": 0.05,
                          ".jpeg": 0.05}
_LEAST_MOVIE_BYTES_PER_PIXEL = 0.01


def estimated_output_bytes(output: Path, kind: str, width: int, height: int, frames: int) -> int:
    """A low estimate of what ``frames`` frames of ``width`` x ``height`` written to ``output`` take on disk."""
    per_pixel = (_LEAST_MOVIE_BYTES_PER_PIXEL if kind == "movie"
                 else _LEAST_BYTES_PER_PIXEL.get(output.suffix.lower(), 0.05))
    return int(width * height * per_pixel * max(frames, 0))


def check_free_space(path: Path, output: Path, kind: str, frames: str | None, count: int) -> None:
    """Refuse, before any work, an edit whose output clearly cannot fit: the free space of the output's file
    system is below a low estimate of the output's size (:func:`estimated_output_bytes`; frames of a sequence
    output already on disk are overwritten in place and not counted; a movie or still is written whole beside
    its final name before it replaces it). Where the estimate is wrong the writers still fail cleanly: every file
    is written to a temporary name and renamed, so a full disk never leaves a half-written output.

    Raises:
        OutputWriteError: not enough free space (says how much is needed and free).
    """
    import shutil

    from .errors import NedFxError
    from .media import sequence_path

    folder = output.parent if str(output.parent) else Path(".")
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
        with open_media(path, parse_frame_range(frames)) as source:
            width, height = source.width, source.height
            numbers = source.frame_numbers
    except (OSError, NedFxError):     # not measurable here: the writers say so if the disk fills
        return
    todo = count
    if kind == "sequence":
        todo = sum(1 for n in numbers if not sequence_path(output, int(n)).exists())
    need = estimated_output_bytes(output, kind, width, height, todo)
    if need > free:
        raise OutputWriteError(
            f"not enough free space for {output}: {todo} frame(s) of {width}x{height} need at least "
            f"{_mib(need)} but {folder} has {_mib(free)} free; free some space or write elsewhere "
            f"(nothing was written)")


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def _written_since(path: Path, since_ns: int) -> bool:
    """``path`` is a file written at or after ``since_ns`` (its file system's own clock, as the manifest's)."""
    try:
        return path.stat().st_mtime_ns >= since_ns and path.is_file()
    except OSError:
        return False


class _MovieOwner:
    """Finishes (close) or discards (abort) the movie a sink may have started."""

    movie = None

    def close(self) -> None:
        if self.movie is not None:
            self.movie.close()

    def abort(self) -> None:
        if self.movie is not None:
            self.movie.abort()


class _Sink(_MovieOwner):
    """Writes the edited frames: a sequence (atomic per frame, resumable), a movie (atomic whole, audio kept)
    or a still."""

    def __init__(self, output: Path, kind: str, source: Path, track, edited, instruction, resume: bool,
                 record=None, written: list | None = None, hasher=None, renderer: dict | None = None,
                 linearize: bool = False, layers=None, content=None):
        import hashlib
        import json
        from dataclasses import asdict

        from .appearance import ContentConfig
        from .media.layers import LayerConfig, matte_path

        self.layers = layers if layers is not None else LayerConfig()
        # the matte beside the output (an EXR holds it as a channel)
        self.matte_file = matte_path(output) if self.layers.matte and output.suffix.lower() != ".exr" else None
        self.matte_movie = None
        self.linearize = linearize
        self.output, self.kind, self.source = output, kind, source
        self.movie = None
        self.track = track
        self.record = record                 # the shot's provenance (movies carry it whole)
        self.written = [] if written is None else written     # paths, or futures of {path, sha256}
        self.hasher = hasher
        self.done: set[int] = set()
        self._first_number = int(track.frame_numbers[0])
        #: how the movie source is shown (MovieSource.presentation): rotation, pixel aspect, a variable frame
        #: rate's times; a movie output carries it
        self.presentation = None
        self.restarted: str | None = None    # why frames already written were not kept (resume)
        if kind == "sequence":
            from .media import sequence_path, source_fingerprint

            # resume is keyed on the source's content (a plate re-delivered under the same names is another
            # source), the edit and the code: the manifest beside the output holds the key
            fingerprint = source_fingerprint(source)
            key = json.dumps({"source": str(source.resolve()), "instruction": instruction.as_params(),
                              "fingerprint": fingerprint,
                              "frames": [int(track.frame_numbers[0]), int(track.frame_numbers[-1])],
                              "face": int(track.face_id), "version": _version(), **(renderer or {}),
                              **({"layers": self.layers.key()} if self.layers != LayerConfig() else {}),
                              # face content other than the default (sub-stages off, a holdout matte, another
                              # shutter) is another edit: its frames are not kept (the default's key is as before)
                              **({"content": asdict(content)} if content is not None and content != ContentConfig()
                                 else {})},
                             sort_keys=True)
            self.key = hashlib.sha256(key.encode()).hexdigest()
            self._path_for = lambda n: sequence_path(output, n)
            self.manifest = output.parent / f".{output.name}.ned_fx.json"
            self._manifest_was_there = self.manifest.is_file()
            same = False
            if resume and self._manifest_was_there:
                try:
                    before = json.loads(self.manifest.read_text())
                    same = before.get("key") == self.key
                    # frames written under this key are the ones written since its manifest was: a run that
                    # started over for another key and stopped leaves older frames (of the old source) behind
                    since = self.manifest.stat().st_mtime_ns
                    if same:
                        self.done = {int(n) for n in track.frame_numbers
                                     if _written_since(self._path_for(int(n)), since)
                                     and (self.matte_file is None
                                          or _written_since(sequence_path(self.matte_file, n), since))}
                    elif before.get("fingerprint") not in (None, fingerprint):
                        self.restarted = "the source changed since those frames were rendered"
                    else:
                        self.restarted = "they were rendered by another edit (or version) of this shot"
                except (OSError, ValueError, AttributeError):
                    self.done, same = set(), False
                if self.restarted and not any(self._path_for(int(n)).is_file() for n in track.frame_numbers):
                    self.restarted = None
            output.parent.mkdir(parents=True, exist_ok=True)
            if not same:                     # a new key: its manifest's time marks where its frames start
                _write_json(self.manifest, {"key": self.key, "source": str(source), "fingerprint": fingerprint,
                                            "params": instruction.as_params()})

    def already_done(self, number: int) -> bool:
        return number in self.done

    def restarted_frames(self) -> str | None:
        """Why frames of the output already on disk are rendered again (None: none were, or they were kept)."""
        return self.restarted

    def matte_where(self) -> str | None:
        """Where the matte went (for the summary), or None without one."""
        if not self.layers.matte:
            return None
        return str(self.matte_file) if self.matte_file is not None else f"EXR channel {self.layers.matte_channel}"

    def _metadata(self, frame: Frame):
        """The plate's header attributes go to EXR outputs, a movie source's timecode (moved on to the frame) to
        EXR/DPX headers (other formats carry only the provenance)."""
        from .media.timecode import add_frames, timecode_fields

        ext = self.output.suffix.lower()
        if ext not in (".exr", ".dpx"):
            return None
        if not hasattr(self, "_movie_tc"):           # read once: (timecode, reel, fps) of a movie source
            from .media import MOVIE_EXTENSIONS

            fps = self.track.fps or 25.0
            movie = self.source.suffix.lower() in MOVIE_EXTENSIONS and self.source.is_file()
            self._movie_tc = (*(_output_timecode(self.source, 0, fps) if movie else (None, None)), fps)
        tc, reel, fps = self._movie_tc
        moved = add_frames(tc, frame.number, fps) if tc is not None else None
        meta = {**(dict(frame.metadata) if ext == ".exr" else {}), **timecode_fields(ext, moved, reel)}
        return meta or None

    def abort(self) -> None:
        super().abort()
        if self.matte_movie is not None:
            self.matte_movie.abort()
        # a sequence of which this run wrote nothing and found nothing leaves no resume manifest behind
        if self.kind == "sequence" and not self.written and not self.done and not self._manifest_was_there:
            try:
                self.manifest.unlink()
            except OSError:
                pass

    def write(self, frame: Frame, write_image, provenance=None, plate: Frame | None = None,
              weights: np.ndarray | None = None) -> None:
        """Write one edited frame (``plate``: the frame as decoded; ``weights``: the compositor's, for a matte or
        a patch)."""
        if self.kind == "movie":
            self._movie_write(frame, plate, weights)
            return
        from .media import sequence_path
        from .media.convert import convert_for_output
        from .media.layers import matte_frame, patch_frame, with_matte_channel

        frame = convert_for_output(frame, self.output.suffix, self.linearize)   # 8-bit plate to EXR, float to PNG
        if self.layers.layer == "patch":
            frame = patch_frame(convert_for_output(plate, self.output.suffix, self.linearize), frame, weights)
        if self.layers.matte and self.matte_file is None:
            frame = with_matte_channel(frame, weights, self.layers.matte_channel)
        elif self.layers.matte:
            matte = matte_frame(weights, frame, self.output.suffix.lower())
            target = sequence_path(self.matte_file, frame.number) if self.kind == "sequence" else self.matte_file
            self._keep(write_image(target, matte, provenance=provenance))
        self._write_picture(frame, write_image, provenance)

    def _keep(self, written) -> None:
        if self.hasher is not None:
            from .provenance import output_entry

            written = self.hasher.submit(output_entry, written)
        self.written.append(written)

    def _write_picture(self, frame: Frame, write_image, provenance=None) -> None:
        if self.layers.layer == "patch" and self.output.suffix.lower() in (".tif", ".tiff"):
            import functools

            write_image = functools.partial(write_image, premultiplied=True)
        if self.kind == "sequence":
            written = write_image(self._path_for(frame.number), frame, metadata=self._metadata(frame),
                                  provenance=provenance)
            if self.hasher is not None:
                from .provenance import output_entry

                written = self.hasher.submit(output_entry, written)
            self.written.append(written)
        else:
            self.written.append(write_image(self.output, frame, metadata=self._metadata(frame),
                                            provenance=provenance))

    def close(self) -> None:
        super().close()
        if self.movie is not None:
            self.written.append(self.movie.path)
        if self.matte_movie is not None:
            self.written.append(self.matte_movie.close())

    def _movie_write(self, frame: Frame, plate: Frame | None = None, weights: np.ndarray | None = None) -> None:
        from .media import MovieWriter, to_display_rgb8
        from .media.layers import patch_frame
        from .media.readers import Presentation
        from .media.writers import deep_pixels
        from .media.timecode import header_timecode

        height, width = frame.pixels.shape[:2]
        shown = self.presentation or Presentation()
        if self.movie is None:
            fps = self.track.fps or 25.0
            # movie frame numbers are 0-based indices; a variable frame rate: the frames' own span
            numbers = self.track.frame_numbers
            audio_span = shown.audio_span(self._first_number, int(numbers[-1]), len(numbers), fps)
            from_movie = _movie_file(self.source) is not None
            timecode, reel = _output_timecode(self.source, self._first_number, fps) if from_movie else \
                header_timecode(plate.metadata if plate is not None else frame.metadata)   # EXR/DPX headers
            codec = self.layers.movie_codec(self.output, self.source if from_movie else None)
            # shown as the source was: a portrait phone video's coded orientation and display rotation back, an
            # anamorphic plate's pixel aspect, a phone's variable frame rate
            self.movie = MovieWriter(self.output, fps, width, height, codec=codec,
                                     audio_from=self.source if from_movie else None,
                                     audio_range=audio_span, provenance=self.record, timecode=timecode,
                                     reel_name=reel, deep=frame.pixels.dtype == np.uint16,
                                     **shown.writer_options())
            if self.matte_file is not None:
                from .media.writers import ALPHA_CODECS

                self.matte_movie = MovieWriter(self.matte_file, fps, width, height,
                                               codec="prores_ks" if codec in ALPHA_CODECS else codec,
                                               provenance=self.record, timecode=timecode, reel_name=reel,
                                               **shown.writer_options())
        when = shown.time_of(frame.number, self._first_number)      # a variable frame rate's own time, else None
        if self.matte_movie is not None:
            # a 10-bit matte movie (ProRes, DNxHR HQX) keeps a soft edge's levels finer than 8 bits
            top, kind = (65535.0, np.uint16) if self.matte_movie.deep else (255.0, np.uint8)
            grey = np.round(np.clip(weights, 0.0, 1.0) * top).astype(kind)
            self.matte_movie.write(np.repeat(grey[..., None], 3, axis=2), when)
        # a 10-bit frame goes to a 10-bit movie as its own levels: its 8-bit picture is made only where it is written
        deep = deep_pixels(frame, self.movie)
        if self.layers.layer == "patch":
            if deep is not None and deep_pixels(plate, self.movie) is not None:
                # a 10-bit plate's patch from its own levels (from its 8-bit picture it was banded)
                rgb = patch_frame(plate, frame, weights).pixels
            else:
                rgb = patch_frame(Frame.from_array(to_display_rgb8(plate), frame.number),
                                  Frame.from_array(to_display_rgb8(frame, copy=False), frame.number), weights).pixels
        else:
            rgb = deep if deep is not None else to_display_rgb8(frame, copy=False)     # the encoder only reads it
        self.movie.write(rgb, when)


def _output_timecode(source: Path, first: int, fps: float) -> tuple[str | None, str | None]:
    """The source movie's timecode moved on to the output's first frame, and its reel name."""
    from .media.readers import movie_timecode
    from .media.timecode import add_frames

    timecode, reel = movie_timecode(source)
    if timecode is None:
        return None, None
    try:
        return add_frames(timecode, first, fps), reel
    except InvalidParameterError:       # a timecode tag this reader does not understand: not carried
        return None, None


class _PreviewSink(_MovieOwner):
    """Side-by-side before/after: the first frame as a still (.png/.jpg) or every frame as a movie."""

    def __init__(self, path: str | Path | None, fps: float, record=None, written: list | None = None):
        self.path = Path(path) if path else None
        self.fps = fps or 25.0
        self.movie = None
        self.still_written = False
        self.record = record                 # a preview shows an edited face: it says so too
        self.written = [] if written is None else written

    def close(self) -> None:
        super().close()
        if self.movie is not None:
            self.written.append(self.movie.path)

    def add(self, before: Frame, after: Frame) -> None:
        if self.path is None:
            return
        from .media import MOVIE_EXTENSIONS, MovieWriter, write_image

        pair = side_by_side(display_plate(before), display_plate(after))
        if self.path.suffix.lower() in MOVIE_EXTENSIONS:
            if self.movie is None:
                video = None if self.record is None else replace(self.record, kind="video", source_frame=None)
                self.movie = MovieWriter(self.path, self.fps, pair.shape[1], pair.shape[0],
                                         provenance=None if video is None else replace(video, summary=_sentence(video)))
            self.movie.write(pair)
        elif not self.still_written:
            stamp = None if self.record is None else self.record.for_frame(before.number)
            self.written.append(write_image(self.path, pair, provenance=stamp))
            self.still_written = True


def _sentence(record) -> str:
    from .provenance import sentence

    return sentence(record)


def side_by_side(before: np.ndarray, after: np.ndarray, labels: tuple[str, str] = ("before", "after")) -> np.ndarray:
    """Two RGB8 pictures next to each other with a thin divider and a label on each (even width)."""
    import cv2

    h, w = before.shape[:2]
    gap = max(2, w // 200) * 2
    out = np.zeros((h, 2 * w + gap, 3), np.uint8)
    out[:, :w], out[:, w + gap:] = before, after
    scale = max(0.5, w / 900)
    for x, text in ((0, labels[0]), (w + gap, labels[1])):
        org = (x + int(12 * scale), int(30 * scale))
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), max(2, int(4 * scale)), cv2.LINE_AA)
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), max(1, int(2 * scale)),
                    cv2.LINE_AA)
    return out


def _write_json(path: Path, doc: dict) -> None:
    import json

    from .media import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2))


def _version() -> str:
    from . import __version__

    return __version__
