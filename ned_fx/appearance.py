"""The pipeline's face-content step: per-shot appearance models and the per-frame layers over the warp.

A geometry warp can only move pixels that exist. Teeth, the tongue, eye whites and a round iris are new
content; this module is the one place that runs the sub-stages that make it, in a fixed order, around the
renderer:

1. **occlusion** (:mod:`ned_fx.occlusion`): glasses (where the shot's glasses model found them) or a user's
   holdout matte are filled in with skin before the warp, so the warp never drags them; the compositor keeps
   their plate pixels exactly (``keep``);
2. the **renderer** warps the (filled) region;
3. **skin** (:mod:`ned_fx.rendering.skin`): the folds and shading of the new expression (as the actor's own
   frames show them, where the shot exercises those AUs; procedural elsewhere);
4. **mouth** (:mod:`ned_fx.rendering.mouth`): where the target opens the mouth beyond the source, a real
   interior retrieved from the actor's own frames (or a shaded synthetic one on a lone still);
5. **eyes** (:mod:`ned_fx.rendering.eyes`): where the lids open beyond the source, an eyeball (sclera, round
   iris, pupil) behind the lids.

Per-shot models (the mouth bank and its temporal plan, the eye model, the glasses model, the skin model, the
forehead's texture that tells a fringe) are
built once per shot from the plate's frames (and optional extra footage of the same actor) by
:func:`build_shot_models` and stored in the analysis file (:meth:`ShotModels.to_arrays`), so a farm chunk renders
exactly what a whole run renders.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .errors import InvalidParameterError

#: analysis-file key prefix of each model -> (module, class) that reads it back (imported on use)
_LOADERS = {"mouth": (".rendering.mouth", "MouthBank"), "mouth_plan": (".rendering.mouth", "MouthPlan"),
            "eyes": (".rendering.eyes", "EyeModel"), "glasses": (".occlusion", "GlassesModel"),
            "skin": (".rendering.skin", "SkinModel")}


@dataclass(frozen=True)
class ContentConfig:
    """Which face-content sub-stages run (the sub-stages' own knobs live in their configs).

    Attributes:
        mouth: fill new mouth openings with a real (retrieved) or shaded interior.
        eyes: render an eyeball where the lids open beyond the source.
        skin: the folds and shading the new expression brings (nasolabial fold, brow furrow, forehead lines...).
        brows: a raised brow carries its fringe and the skin beneath it; the lid skin above the crease takes the
            stretch (instead of the warp's even stretch of the whole strip down to the lashes).
        occluders: keep glasses out of the edit where the shot's glasses model finds them (a clip: the rims add
            up over its frames), and any holdout matte.
        holdout: a user-given holdout matte (a still or a sequence pattern: 1 = keep the plate), which replaces
            detection on every frame it has.
        shutter: the camera's shutter, as the fraction of the frame interval it is open (a 180-degree shutter is
            0.5, the film and video norm): the drawn folds are smeared along the face's movement in the picture
            over that much of a frame, as the plate smears the face (:mod:`ned_fx.rendering.motion`). 0: drawn
            sharp whatever the movement. The eyeballs stay as drawn: smeared too, d12's irises on his jerky frames
            read 0.86 round in the picture (the issue's floor, 0.9, is measured there) for little to see at 1x
            (frames 33, 47, 51 looked at, 2.2x); the brows' strip and the mouth's interior are plate pixels with
            their own frames' blur in them.
        min_blur_px: a frame whose smear would be shorter than this many pixels keeps its drawn content as drawn
            (bit for bit): a still, a face at rest, a tracker's sub-pixel jitter.
    """

    mouth: bool = True
    eyes: bool = True
    skin: bool = True
    occluders: bool = True
    holdout: str | None = None
    brows: bool = True
    shutter: float = 0.5
    min_blur_px: float = 1.0

    def __post_init__(self) -> None:
        for name in ("mouth", "eyes", "skin", "occluders", "brows"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidParameterError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name, top in (("shutter", 1.0), ("min_blur_px", float("inf"))):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top:
                raise InvalidParameterError(f"{name} must be a number in 0..{top:g}, got {value!r}")

    @property
    def builds_models(self) -> bool:
        return self.mouth or self.eyes or self.occluders or self.skin


def shutter_from_angle(angle) -> float:
    """A shutter angle in degrees (0..360, what a camera report says) as ``ContentConfig.shutter``, the fraction of
    the frame interval the shutter is open.

    Raises:
        InvalidParameterError: not a number in 0..360.
    """
    if isinstance(angle, bool) or not isinstance(angle, (int, float)) or not 0 <= angle <= 360:
        raise InvalidParameterError(f"a shutter angle is 0..360 degrees, got {angle!r}")
    return float(angle) / 360.0


#: the renderer's warp alone, no face content (the fast path's output; a baseline for the sub-stages' tests)
WARP_ONLY = ContentConfig(mouth=False, eyes=False, skin=False, occluders=False, brows=False)


#: the :class:`ShotModels` fields of what the picture shows beyond the fitted activations, and their AUs (the
#: skin's folds start from them, :meth:`FaceContent.skin_aus`; the geometry follows, ``pipeline.lift_hidden``)
HIDDEN_AUS = {"furrow": "AU4", "pout": "AU15"}


@dataclass(frozen=True)
class ShotModels:
    """A shot's appearance models (any may be None: that sub-stage then adds nothing)."""

    mouth: object | None = None
    mouth_plan: object | None = None
    eyes: object | None = None
    glasses: object | None = None
    #: the actor's learned skin shading (:class:`~ned_fx.rendering.skin.SkinModel`: how the skin darkens and
    #: lightens with each fold AU the shot exercises), or None (the folds are all procedural)
    skin: object | None = None
    sources: tuple[str, ...] = field(default_factory=tuple)
    #: Tx2 how open each eye is per frame of the track (1 open, 0 shut: its lids are kept as the source has them;
    #: :func:`~ned_fx.rendering.eyes.openness.open_weights`), or None
    eyes_open: np.ndarray | None = None
    #: T the brow lowerer (AU4) the picture shows per frame beyond what the mesh fitted (the furrow between the
    #: brows: :func:`~ned_fx.rendering.skin.furrow_activation`; the skin's folds start from it, see
    #: :meth:`FaceContent.skin_aus`), or None (a still, the skin stage off)
    furrow: np.ndarray | None = None
    #: T the lip corner depressor (AU15) the picture shows per frame beyond what the mesh fitted (the marionette
    #: lines of a pout: :func:`~ned_fx.rendering.skin.pout_activation`; a still's too), or None (none shows, the
    #: skin stage off)
    pout: np.ndarray | None = None
    #: the shot's forehead texture (:class:`~ned_fx.occlusion.FringeBuilder`: how far the occluder detector's
    #: texture cue for a fringe is used, one value for the shot), or None (this frame's own, the occluders off)
    fringe: float | None = None

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat ``{"sources": array, "mouth.x": array, "eyes.y": array, ...}`` for the analysis file."""
        out: dict[str, np.ndarray] = {"sources": np.array(list(self.sources), dtype=str)}
        if self.eyes_open is not None:
            out["eyes_open"] = np.asarray(self.eyes_open, np.float32)
        for name in HIDDEN_AUS:
            if getattr(self, name) is not None:
                out[name] = np.asarray(getattr(self, name), np.float32)
        if self.fringe is not None:
            out["fringe"] = np.array(float(self.fringe), np.float64)
        for prefix in _LOADERS:
            model = getattr(self, prefix)
            if model is not None:
                out.update({f"{prefix}.{k}": np.asarray(v) for k, v in model.to_arrays().items()})
        return out

    @classmethod
    def from_arrays(cls, d: dict) -> "ShotModels":
        """The inverse of :meth:`to_arrays` (keys of other parts of an analysis file are ignored)."""
        parts: dict[str, dict] = {p: {} for p in _LOADERS}
        for key, value in d.items():
            head, _, rest = key.partition(".")
            if head in parts and rest:
                parts[head][rest] = value
        kw = {}
        for prefix, (module, name) in _LOADERS.items():
            if parts[prefix]:
                kw[prefix] = getattr(importlib.import_module(module, __package__), name).from_arrays(parts[prefix])
        sources = tuple(str(s) for s in np.asarray(d.get("sources", np.array([], dtype=str))).reshape(-1))
        opened = d.get("eyes_open")
        if opened is not None:
            opened = np.asarray(opened, np.float32)
            if opened.ndim != 2 or opened.shape[1] != 2:
                raise InvalidParameterError(f"eyes_open must be Tx2, got shape {opened.shape} (an analysis file "
                                            "from another version? analyse the shot again)")
        for name in HIDDEN_AUS:
            hidden = d.get(name)
            if hidden is not None:
                hidden = np.asarray(hidden, np.float32)
                if hidden.ndim != 1:
                    raise InvalidParameterError(f"{name} must be one value per frame, got shape {hidden.shape} (an "
                                                "analysis file from another version? analyse the shot again)")
                kw[name] = hidden
        fringe = d.get("fringe")
        if fringe is not None:
            fringe = np.asarray(fringe, np.float64)
            if fringe.size != 1 or not np.isfinite(fringe).all():
                raise InvalidParameterError(f"fringe must be one finite value, got shape {fringe.shape} (an analysis "
                                            "file from another version? analyse the shot again)")
            kw["fringe"] = float(fringe.reshape(-1)[0])
        return cls(sources=sources, eyes_open=opened, **kw)


def white_of(dtype) -> float:
    """The plate value of display white: 255 (8-bit), 65535 (16-bit), 1.0 (float)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        return float(np.iinfo(dtype).max)
    return 1.0


#: at most this many frames of a shot feed each model (evenly spread: the eye and glasses models average, the
#: mouth bank keeps a diverse set of open mouths)
_MODEL_FRAMES = {"EyeModelBuilder": 16, "GlassesModelBuilder": 40, "MouthBankBuilder": 120,
                 "SkinModelBuilder": 120, "FringeBuilder": 40}


def _crop_box(landmarks: np.ndarray, height: int, width: int, grow: float = 1.0) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the landmarks' box grown by ``grow`` times its longer side on every side, clipped to
    a ``height`` x ``width`` picture."""
    pts = landmarks[:, :2]
    lo, hi = np.nanmin(pts, axis=0), np.nanmax(pts, axis=0)
    more = (hi - lo).max() * grow
    x0, y0 = (int(max(0, np.floor(v))) for v in lo - more)
    x1, y1 = int(min(width, np.ceil(hi[0] + more))), int(min(height, np.ceil(hi[1] + more)))
    return x0, y0, x1, y1


def _face_crop(frame, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frame's colour channels around the face (the landmarks' box grown by its size on every side), as
    HxWxK float32 plate values, and the landmarks in that crop's pixels: what the builders look at, without
    converting a whole 4K frame for a face in a corner."""
    px = frame.pixels if frame.pixels.ndim == 3 else frame.pixels[:, :, None]
    return _cut(px, (0, 0), _crop_box(landmarks, *px.shape[:2]), getattr(frame, "channels", None), landmarks)


def _cut(px: np.ndarray, origin: tuple[int, int], box, channels, landmarks: np.ndarray):
    """:func:`_face_crop` of a picture whose pixels ``px`` start at ``origin`` of the frame (a kept crop)."""
    from .compositing import color_channel_indices
    from .media.frames import channel_copy

    x0, y0, x1, y1 = box
    ox, oy = origin
    idx = list(color_channel_indices(channels, px.shape[2]))
    crop = channel_copy(px[y0 - oy:y1 - oy, x0 - ox:x1 - ox], idx, np.float32)
    return crop, landmarks - np.array([x0, y0, 0.0])[: landmarks.shape[1]]


def frame_evidence(frame, landmarks: np.ndarray, eyes: bool = True, folds: bool = False) -> tuple:
    """What a decoded frame shows at ``landmarks`` (display-window pixels) that the mesh does not: ``(the eyes'
    evidence 2x2 or None, the folds' depths or None)`` (:func:`~ned_fx.rendering.eyes.openness.eye_evidence`; the
    folds: ``(brow furrow, marionette lines)``, :func:`~ned_fx.rendering.skin.furrow_depth` and
    :func:`~ned_fx.rendering.skin.marionette_depth`, NaN where unmeasured; each when asked for): the keeper's and
    the models pass's one call."""
    from .compositing import color_channel_indices

    px = frame.pixels if frame.pixels.ndim == 3 else frame.pixels[:, :, None]
    channels = list(color_channel_indices(getattr(frame, "channels", None), px.shape[2]))
    lm = np.asarray(landmarks, np.float64) + frame.display_to_data
    ev = depths = None
    if eyes:
        from .rendering.eyes.openness import eye_evidence

        ev = eye_evidence(px, lm, channels=channels)
    if folds:
        from .rendering.skin import furrow_depth, marionette_depth

        from . import topology as T

        depths = (float("nan"), float("nan"))
        if np.isfinite(lm[:468, :2]).all():       # each fold's box only (its landmarks' grown by half an IOD)
            grow = 0.5 * float(np.linalg.norm(lm[T.EYE_OUTER_LEFT, :2] - lm[T.EYE_OUTER_RIGHT, :2]))
            depths = tuple(_depth_in_box(px, channels, lm, measure, lm[list(near), :2], grow)
                           for measure, near in ((furrow_depth, T.RIGHT_BROW + T.LEFT_BROW + (6, 8, 9, 168)),
                                                 (marionette_depth, T.LIPS_OUTER + (152, 172, 397, 50, 280))))
    return ev, depths


def _depth_in_box(px: np.ndarray, channels: list, lm: np.ndarray, measure, pts: np.ndarray, grow: float) -> float:
    """``measure(pixels, landmarks)`` on the colour channels of the box around ``pts`` grown by ``grow`` (NaN where
    that box is too small): a fold's depth without converting a whole 4K frame."""
    h, w = px.shape[:2]
    x0, y0 = (int(max(v, 0)) for v in np.floor(pts.min(axis=0) - grow))
    x1 = int(min(np.ceil(pts[:, 0].max() + grow) + 1, w))
    y1 = int(min(np.ceil(pts[:, 1].max() + grow) + 1, h))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return float("nan")
    return measure(px[y0:y1, x0:x1][:, :, channels], lm - np.array([x0, y0, 0.0])[: lm.shape[1]])


#: the most bytes of plate crops the tracking pass keeps for the appearance models (beyond: a second decode)
KEEP_BYTES = 512 << 20
#: the most bytes of whole decoded frames the tracking pass keeps for the render (beyond: the render decodes
#: again). 1 GiB holds ~170 frames of 1080p 8-bit (a movie's RGB conversion costs ~9-12 ms a 1080p frame here):
#: the 100-frame 1080p bench edit 10.4-10.7 -> 11.0-11.2 frames/s, CPU 147-153 -> 140 ms a frame; a 4K float
#: sequence of 1,000 frames is never kept (bench/memory.py)
KEEP_FRAME_BYTES = 1024 << 20
#: the largest frame the tracking pass holds until its face is found, to measure its eyes (:func:`frame_evidence`;
#: a few frames at a time, the decode's lead over the tracker): a larger plate (a 4K float EXR) is not held, and the
#: models pass takes the eyes' evidence from its own decode
EVIDENCE_FRAME_BYTES = 32 << 20


class FrameKeeper:
    """Keeps, while the tracking pass decodes the shot, the face crops the appearance models will look at, so
    the models need no second decode of the shot (:func:`build_shot_models` with ``kept=``), and, for a shot
    whose frames fit ``frame_bytes``, the decoded frames themselves, so the render need not decode them again
    (:meth:`decoded_frames`). Whether a shot fits is judged on its first frame and first crop (its length
    times their size), so a long or large shot is never kept in part: memory stays bounded by the frame.

    The frames kept are the even sample the builders take when every frame has a face (known before tracking:
    the shot's length); each is cut to the tracker's face box grown by 1.5 times its size on every side (the
    builders' crop, around the smoothed landmarks, is 1 time: it lies inside). Every frame's eye and brow
    evidence (:func:`frame_evidence`, at the tracker's landmarks) is taken too, for the shut-eye weights and the
    furrow, while frames are at most :data:`EVIDENCE_FRAME_BYTES` (a frame is held only until its face is found).
    Memory is bounded by ``max_bytes``; a shot whose sample differs (frames without a face) or whose crops do not
    hold the builders' crops is decoded again, as without a keeper. Thread-safe: :meth:`offer` runs in the
    decoder's thread, :meth:`located` in the tracker's.

    Args:
        total: frames in the shot (the range being tracked); config: which builders run.
        max_bytes: most bytes of kept crops (default :data:`KEEP_BYTES`).
        frame_bytes: most bytes of kept whole frames (default :data:`KEEP_FRAME_BYTES`; 0: none are kept).
    """

    GROW = 1.5

    def __init__(self, total: int, config: ContentConfig | None = None, max_bytes: int = KEEP_BYTES,
                 frame_bytes: int = KEEP_FRAME_BYTES):
        import threading

        config = config or ContentConfig()
        self.frames: list | None = [] if frame_bytes > 0 else None      # every frame, in order, if they fit
        self._frame_room = frame_bytes
        self.total = total
        names = [n for n, on in (("GlassesModelBuilder", config.occluders), ("FringeBuilder", config.occluders),
                                 ("MouthBankBuilder", config.mouth), ("EyeModelBuilder", config.eyes),
                                 ("SkinModelBuilder", config.skin))
                 if on] if config.builds_models else []
        self.wanted = {i for n in names for i in range(0, total, max(1, -(-total // _MODEL_FRAMES[n])))}
        self.max_bytes = max_bytes
        self.bytes = 0
        self.full = False                       # over budget: nothing more is kept (the models decode again)
        self._frames: dict = {}                 # index -> Frame, until its face is located
        self.crops: dict = {}                   # index -> (pixels, (x0, y0), channels, display_to_data)
        #: face id -> {index: :func:`frame_evidence`} of every frame (the 2 eyes' evidence, 2x2, and the brow
        #: furrow's depth, at the tracker's own landmarks: the models pass's shut-eye weights and furrow), when the
        #: eyes or skin sub-stage runs
        self.evidence: dict | None = {} if config.builds_models and (config.eyes or config.skin) else None
        self._measure = (config.eyes, config.skin)
        self._lock = threading.Lock()

    def offer(self, index: int, frame) -> None:
        """A decoded frame of the shot (its position in the range)."""
        with self._lock:
            if self.frames is not None:
                size = frame.pixels.nbytes
                if size * (self.total if index == 0 else 1) > self._frame_room or index != len(self.frames):
                    self.frames = None            # the shot does not fit: the render decodes it again
                else:
                    self.frames.append(frame)
                    self._frame_room -= size
            if self.evidence is not None and index not in self.wanted and \
                    frame.pixels.nbytes > EVIDENCE_FRAME_BYTES:
                self.evidence = None              # a 4K float plate is not held for it: the models pass measures
            if (index in self.wanted and not self.full) or self.evidence is not None:
                self._frames[index] = frame

    def decoded_frames(self, count: int) -> list | None:
        """Every frame of the shot as the tracking pass decoded it (``count`` of them), handed over once; None
        when they were not all kept."""
        with self._lock:
            frames, self.frames = self.frames, None
        return frames if frames is not None and len(frames) == count else None

    def located(self, index: int, faces: dict) -> None:
        """The tracker's faces of frame ``index`` (``{face id: (landmarks in display pixels, score)}``)."""
        with self._lock:
            frame = self._frames.pop(index, None)
            # a frame the keeper holds whole anyway (within frame_bytes) lends its crop as a view, not a copy
            whole = self.frames is not None and index < len(self.frames) and self.frames[index] is frame
        if frame is None or not faces:
            return
        evidence = self.evidence            # (offer() may drop it meanwhile: then these are never read)
        if evidence is not None:
            for fid, (lm, _) in faces.items():
                evidence.setdefault(fid, {})[index] = frame_evidence(frame, lm, *self._measure)
        if index not in self.wanted or self.full:
            return
        px = frame.pixels if frame.pixels.ndim == 3 else frame.pixels[:, :, None]
        shift = np.asarray(frame.display_to_data, np.float64)
        pts = np.concatenate([np.asarray(lm, np.float64)[:, :3] for lm, _ in faces.values()]) + shift
        if not np.isfinite(pts[:, :2]).all():
            return
        x0, y0, x1, y1 = _crop_box(pts, *px.shape[:2], grow=self.GROW)
        if x1 <= x0 or y1 <= y0:
            return
        crop = px[y0:y1, x0:x1] if whole else np.array(px[y0:y1, x0:x1])
        with self._lock:
            if self.bytes + crop.nbytes * (len(self.wanted) if not self.crops else 1) > self.max_bytes:
                self.full, self.crops = True, {}
                return
            self.bytes += crop.nbytes
            self.crops[index] = (crop, (x0, y0), px.shape[:2], getattr(frame, "channels", None), shift)

    def holds(self, index: int, landmarks: np.ndarray) -> bool:
        """Frame ``index`` was kept and its crop holds the builders' crop around ``landmarks`` (display pixels)."""
        if self.full or index not in self.crops:
            return False
        px, (ox, oy), (height, width), _, shift = self.crops[index]
        box = _crop_box(landmarks + shift, height, width)
        return box[0] >= ox and box[1] >= oy and box[2] <= ox + px.shape[1] and box[3] <= oy + px.shape[0]

    def crop(self, index: int, landmarks: np.ndarray):
        """:func:`_face_crop` of frame ``index`` around ``landmarks`` (display pixels): the same pixels and
        landmarks as from the decoded frame (call :meth:`holds` first)."""
        px, origin, (height, width), channels, shift = self.crops[index]
        lm = landmarks + shift
        return _cut(px, origin, _crop_box(lm, height, width), channels, lm)


def build_shot_models(path: str | Path, track, edited, frames: str | None = None,
                      actor_footage: Iterable[str | Path] = (), config: ContentConfig | None = None,
                      tracker_config=None, progress: Callable[[int, int], None] | None = None,
                      cache: bool = False, kept: "FrameKeeper | None" = None,
                      folder: str | Path | None = None) -> ShotModels:
    """Build the shot's appearance models: one decode of the shot (and of each extra footage file).

    The models that do not depend on the edit (mouth bank, eye model, glasses model, the skin model learned from
    the source's frames and their fitted AUs) are made from the source's frames, landmarks and activations only;
    the mouth's temporal plan follows the target and is made per edit, always from the
    models as stored (:meth:`ShotModels.to_arrays`), so an edit that built them and one that read them render
    the same pixels.

    Args:
        path: the shot's plate; track, edited: its Track and EditedTrack (from the analysis); frames: the
            analysed range.
        actor_footage: more footage of the same actor (movies, stills, sequences): tracked here and used only
            as a library of appearances (mouth interiors, eyes); never edited.
        config: which sub-stages run (:class:`ContentConfig`); tracker_config: for tracking the extra footage.
        progress: ``progress(done, total)`` over the shot's frames.
        cache: look the edit-independent models up in the cache folder of the track cache
            (:func:`ned_fx.tracking.cache.cache_dir`, ``models-<key>.npz``, 0600), keyed by the source's content,
            the frames, the source landmarks and activations, the sub-stages asked for and the extra footage; store
            them there when
            built. So a second edit of a shot (another emotion) skips this pass, and so does a daemon session
            of it (the same key: an edit and a session read each other's models).
        kept: the :class:`FrameKeeper` the shot's tracking pass filled: the builders take its crops instead of
            decoding the shot again (when it holds them all; the same models either way).
        folder: the cache folder (default the track cache's, :func:`ned_fx.tracking.cache.cache_dir`; a daemon's
            ``--cache DIR``).

    Raises:
        InputNotFoundError, UnreadableMediaError: an extra footage file cannot be read.
        NoFaceError: no face in an extra footage file (the message names it).
    """
    config = config or ContentConfig()
    if not config.builds_models:
        return ShotModels()
    actor_footage = tuple(actor_footage)
    key = _models_key(path, edited, frames, actor_footage, config, tracker_config) if cache else None
    stored = _load_models(key, folder) if key is not None else None
    if stored is None:
        stored = ShotModels.from_arrays(_build_models(path, track, edited, frames, actor_footage, config,
                                                      tracker_config, progress, kept).to_arrays())
        if key is not None:
            _store_models(key, stored, folder)
    elif progress:
        progress(1, 1)
    plan = None
    if stored.mouth is not None:
        from .rendering.mouth import plan_mouth

        plan = plan_mouth(stored.mouth, edited.source_landmarks, edited.target_landmarks, edited.found)
    return ShotModels(mouth=stored.mouth, mouth_plan=plan, eyes=stored.eyes, glasses=stored.glasses,
                      skin=stored.skin, sources=stored.sources, eyes_open=stored.eyes_open, fringe=stored.fringe,
                      **{name: getattr(stored, name) for name in HIDDEN_AUS})


def _build_models(path, track, edited, frames, actor_footage, config, tracker_config, progress,
                  kept: FrameKeeper | None = None) -> ShotModels:
    """The models that do not depend on the edit (no mouth plan): one decode of the shot (none when ``kept``
    holds every crop the builders take) and of each extra footage file."""
    mouth = eyes = glasses = skin = fringe = None
    builders = []
    if config.occluders:
        from .occlusion import FringeBuilder, GlassesModelBuilder

        glasses = GlassesModelBuilder()          # glasses are rigid with the head: their rims add up over the shot
        fringe = FringeBuilder()                 # ... and a fringe's texture is the shot's, not a frame's
        builders += [glasses, fringe]
    if config.mouth:
        from .rendering.mouth import MouthBankBuilder

        mouth = MouthBankBuilder()
        builders.append(mouth)
    if config.eyes:
        from .rendering.eyes import EyeModelBuilder

        eyes = EyeModelBuilder()
        builders.append(eyes)
    if config.skin:
        from .rendering.skin import SkinModelBuilder

        skin = SkinModelBuilder(edited.au_source, edited.au_names)     # learned from the shot's own frames only
        builders.append(skin)
    index = {int(n): t for t, n in enumerate(track.frame_numbers)}
    found = int(np.count_nonzero(edited.found))
    # which frames each builder sees: an even sample of at most _MODEL_FRAMES (this pass is per shot, not free)
    every = {id(b): max(1, -(-found // _MODEL_FRAMES.get(type(b).__name__, found or 1))) for b in builders}
    plan, seen = [], 0            # (k, builders) of the frames that feed a builder, in the shot's order
    for k in range(len(track.frame_numbers)):
        if edited.found[k]:
            wanted = [b for b in builders if seen % every[id(b)] == 0]
            seen += 1
            if wanted:
                plan.append((k, wanted))
    # every frame's eye evidence (shut eyes) and brow furrow, at the tracker's own landmarks
    t = len(track.frame_numbers)
    evidence = np.full((t, 2, 2), np.nan) if config.eyes else None
    folds = np.full((t, 2), np.nan) if config.skin else None         # the brow furrow, the marionette lines
    measured = None
    if evidence is not None or folds is not None:
        measured = (kept.evidence or {}).get(track.face_id, {}) if kept is not None else {}
        for k, (ev, depths) in measured.items():
            if 0 <= k < t:
                if evidence is not None and ev is not None:
                    evidence[k] = ev
                if folds is not None and depths is not None:
                    folds[k] = depths
        if any(track.found[k] and k not in measured for k in range(t)):
            measured = None                # the keeper did not see them all: measured in the decode below
    if kept is not None and all(kept.holds(k, edited.source_landmarks[k]) for k, _ in plan) and \
            (measured is not None or (evidence is None and folds is None)):
        # the tracking pass kept them: no second decode
        _feed(((k, wanted, kept.crop(k, edited.source_landmarks[k])) for k, wanted in plan), builders,
              progress, len(plan))
    else:
        _decode_for_models(path, frames, index, edited, builders, every, progress,
                           (track, evidence, folds) if evidence is not None or folds is not None else None)
    models = _extra_footage(path, actor_footage, builders, tracker_config, mouth, eyes, glasses, skin, fringe)
    measures = {}                   # the per-frame evidence, as the renderer reads it
    if evidence is not None:
        from .rendering.eyes.openness import open_weights

        measures["eyes_open"] = open_weights(evidence, track.fps, landmarks=edited.source_landmarks)
    if folds is not None:
        from .rendering.skin import furrow_activation, pout_activation

        measures["furrow"] = furrow_activation(folds[:, 0])
        names = list(edited.au_names)
        fitted = sum((np.clip(np.nan_to_num(edited.au_source[:, names.index(au)]), 0.0, None)
                      for au in ("AU15", "AU17") if au in names), np.zeros(t))
        measures["pout"] = pout_activation(folds[:, 1], fitted=fitted)
    if measures:
        models = replace(models, **measures)
    return models


def _feed(items, builders: list, progress, total: int) -> None:
    """``builder.add(k, *crop)`` for every ``(k, wanted builders, crop)`` of ``items``, in order. The items are
    made in a thread of their own and each builder takes its frames in a thread of its own (they share nothing
    and never write a crop: the same models as one after the other, in about the time of the slowest)."""
    import queue
    import threading

    from .streams import prefetch

    items = prefetch(items, depth=4, name="ned-fx-models")
    if len(builders) < 2:
        for done, (k, wanted, crop) in enumerate(items, 1):
            for b in wanted:
                b.add(k, *crop)
            if progress:
                progress(done, total)
        return
    inbox = {id(b): queue.Queue(maxsize=4) for b in builders}
    failed: list[BaseException] = []

    def work(builder) -> None:
        q = inbox[id(builder)]
        while (item := q.get()) is not None:
            if not failed:                    # after a failure the queue is only drained
                try:
                    builder.add(item[0], *item[1])
                except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
                    failed.append(exc)

    threads = [threading.Thread(target=work, args=(b,), name=f"ned-fx-models-{type(b).__name__}", daemon=True)
               for b in builders]
    for t in threads:
        t.start()
    try:
        for done, (k, wanted, crop) in enumerate(items, 1):
            if failed:
                break
            for b in wanted:
                inbox[id(b)].put((k, crop))
            if progress:
                progress(done, total)
    finally:
        for b in builders:
            inbox[id(b)].put(None)
        for t in threads:
            t.join()
        items.close()
    if failed:
        raise failed[0]


def _decode_for_models(path, frames, index, edited, builders, every, progress, eyes=None) -> None:
    """The builders' frames, decoded (the appearance pass's own decode of the shot); with ``eyes`` =
    ``(track, evidence, folds)``, every frame's eye evidence is written into ``evidence`` (Tx2x2) and its folds'
    depths into ``folds`` (Tx2: the brow furrow, the marionette lines) too (each where not None)."""
    from .media import open_media, parse_frame_range

    with open_media(path, parse_frame_range(frames)) as source:
        total = len(source)

        def crops():            # decode + crop (a thread of its own) while the builders take the last crops
            seen = 0
            for frame in source:
                k = index.get(int(frame.number))
                wanted, crop = [], None
                if eyes is not None and k is not None and eyes[0].found[k]:
                    ev, depths = frame_evidence(frame, eyes[0].landmarks_raw[k], eyes[1] is not None,
                                                eyes[2] is not None)
                    if ev is not None:
                        eyes[1][k] = ev
                    if depths is not None:
                        eyes[2][k] = depths
                if k is not None and edited.found[k]:
                    wanted = [b for b in builders if seen % every[id(b)] == 0]
                    seen += 1
                    if wanted:
                        crop = _face_crop(frame, edited.source_landmarks[k] + frame.display_to_data)
                yield k, wanted, crop

        _feed(crops(), builders, progress, total)


def _extra_footage(path, actor_footage, builders, tracker_config, mouth, eyes, glasses, skin=None,
                   fringe=None) -> ShotModels:
    """The extra footage of the actor through the builders (tracked and decoded here), then the models."""
    from .media import open_media

    sources = [str(Path(path).resolve())]
    for extra in actor_footage:
        from .errors import NoFaceError
        from .pipeline import track_media

        extra = Path(extra)
        etrack = track_media(extra, tracker_config)
        if not etrack.found.any():
            raise NoFaceError(f"no face found in the actor footage {extra.name}")
        eindex = {int(n): t for t, n in enumerate(etrack.frame_numbers)}
        with open_media(extra) as source:
            for frame in source:
                k = eindex.get(int(frame.number))
                if k is None or not etrack.found[k]:
                    continue
                pixels, lm = _face_crop(frame, etrack.landmarks[k] + frame.display_to_data)
                for b in builders:
                    b.add(-1, pixels, lm)
        sources.append(str(extra.resolve()))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3, thread_name_prefix="ned-fx-models") as pool:     # independent: side by side
        done = {name: pool.submit(b.finish) for name, b in (("mouth", mouth), ("eyes", eyes), ("glasses", glasses),
                                                            ("skin", skin), ("fringe", fringe)) if b is not None}
        return ShotModels(**{name: f.result() for name, f in done.items()}, sources=tuple(sources))


#: bump when what the cached models hold, or how they are built, changes meaning
MODELS_CACHE_VERSION = 7       # 2: the builders' code and default configs are in the key; 3: eyes_open; 4: furrow;
#: 5: the learned skin model; 6: pout; 7: fringe


def _models_key(path, edited, frames, actor_footage, config: ContentConfig, tracker_config) -> str | None:
    """The cache key of a shot's edit-independent models (None when a source cannot be fingerprinted)."""
    import hashlib
    import json
    from dataclasses import asdict

    from .errors import NedFxError
    from .media import source_fingerprint

    try:
        sources = [source_fingerprint(path), *(source_fingerprint(p) for p in actor_footage)]
    except (OSError, NedFxError):
        return None
    h = hashlib.sha256(models_fingerprint().encode())       # what builds the models, then the shot they are of
    h.update(json.dumps({"sources": sources,
                         "paths": [str(Path(p).resolve()) for p in (path, *actor_footage)], "frames": frames,
                         "stages": [config.mouth, config.eyes, config.occluders, config.skin],
                         "sample": _MODEL_FRAMES,
                         "tracker": None if tracker_config is None or not actor_footage
                         else sorted((k, repr(v)) for k, v in asdict(tracker_config).items())},
                        sort_keys=True).encode())
    for arr in (edited.frame_numbers, edited.found, edited.source_landmarks, edited.au_source):
        a = np.ascontiguousarray(arr)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:32]


def _models_path(key: str, folder: str | Path | None = None) -> Path:
    from .tracking.cache import cache_dir

    return Path(folder or cache_dir()) / f"models-{key}.npz"


def _load_models(key: str, folder: str | Path | None = None) -> ShotModels | None:
    """The cached models of ``key``, or None (absent, unreadable, or not the owner's private file)."""
    from .tracking.cache import load_private

    return load_private(_models_path(key, folder),
                        lambda data: ShotModels.from_arrays({k: data[k] for k in data.files}))


def _store_models(key: str, models: ShotModels, folder: str | Path | None = None) -> Path | None:
    """Write the models under ``key`` as the track cache writes tracks (biometric data: folder 0700, file 0600,
    atomically); None when the cache cannot be written (nothing half-written is left)."""
    from .tracking.cache import store_private

    # uncompressed: written and read in a blink
    return store_private(_models_path(key, folder), lambda fh: np.savez(fh, **models.to_arrays()), fsync=False)


#: bump when what the matte cache holds, or how it is checked, changes meaning
MATTES_CACHE_VERSION = 2
_MISS = object()


def matte_cache_key(path: str | Path, edited, frames: str | None, yuv_conversion: str | None) -> str | None:
    """The cache key of a shot's occluder mattes (None when the source cannot be fingerprinted): the source's
    content, the frames, the source landmarks, the decode's YUV conversion, and the occlusion stage's own code and
    default config (a changed detector never reads an old matte). Nothing of the edit's target is in it: an edit
    of the same shot with another emotion reads the mattes the first one found."""
    import hashlib

    from . import __version__
    from .errors import NedFxError
    from .media import source_fingerprint

    try:
        source = source_fingerprint(path)
    except (OSError, NedFxError):
        return None
    h = hashlib.sha256(f"{MATTES_CACHE_VERSION}|{__version__}|{source}|{Path(path).resolve()}|{frames}|"
                       f"{yuv_conversion}".encode())
    _builders_fingerprint(h, ("occlusion",))
    for arr in (edited.frame_numbers, edited.found, edited.source_landmarks):
        a = np.ascontiguousarray(arr)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:32]


#: the sub-stage packages whose code and default config the shot's models are built with
_MODEL_PACKAGES = ("occlusion", "rendering/eyes", "rendering/mouth", "rendering/skin")


def models_fingerprint() -> str:
    """What a stored set of shot models was built by: :data:`MODELS_CACHE_VERSION`, the package's version and the
    builders' code and default configs (a cache of models keyed without it reads models a changed builder would
    not make: the daemon's per-session cache keys with it)."""
    import hashlib

    from . import __version__

    h = hashlib.sha256(f"{MODELS_CACHE_VERSION}|{__version__}".encode())
    _builders_fingerprint(h, _MODEL_PACKAGES)
    return h.hexdigest()[:32]


def _builders_fingerprint(h, packages: tuple[str, ...]) -> None:
    """Hash into ``h`` what a cached per-shot product was built with: the default config (``repr``) and the source
    files of each sub-stage package (``"occlusion"``, ``"rendering/eyes"``, ...): a changed builder or default never
    reads an old model or matte (a release bumps ``__version__``; a changed default or a patched install need not)."""
    from .cachefiles import hash_package_sources
    from .occlusion import OcclusionConfig
    from .rendering.eyes import EyeConfig
    from .rendering.mouth import MouthConfig
    from .rendering.skin import SkinConfig

    configs = {"occlusion": OcclusionConfig, "rendering/eyes": EyeConfig, "rendering/mouth": MouthConfig,
               "rendering/skin": SkinConfig}
    for package in packages:
        h.update(repr(configs[package]()).encode())
        hash_package_sources(h, package)


class MatteMemo:
    """The occluder mattes of a shot's frames, kept between edits of the shot (in the track cache's folder,
    ``mattes-<key>.npz``, 0600).

    The detector looks at the source face's own box of the plate and the source landmarks only
    (``FaceContent.occluders``' ``source_box``), so an edit with another emotion finds every frame's matte here.
    Each entry is checked on use: frame number, box, white, and a CRC of the source
    landmarks and of every 4th row of the region's pixels must all match, else the detector runs. Memory is
    bounded: mattes are held as the box around their non-zero values, and recording stops at ``budget`` bytes.

    Args:
        key: from :func:`matte_cache_key` (None: nothing is read or stored).
        budget: most bytes of new mattes held for storing.
        folder: the cache folder (default the track cache's; a daemon's ``--cache DIR``).
    """

    def __init__(self, key: str | None, budget: int = 64 << 20, folder: str | Path | None = None):
        self.key, self.budget, self.folder = key, budget, folder
        self.entries: dict[tuple, tuple] = {} if key is None else self._load(key)
        self.added, self.held, self.hits = 0, 0, 0

    def _path(self, key: str) -> Path:
        from .tracking.cache import cache_dir

        return Path(self.folder or cache_dir()) / f"mattes-{key}.npz"

    def _load(self, key: str) -> dict:
        from .tracking.cache import load_private

        arrays = load_private(self._path(key), lambda d: (d["heads"], d["crops"], d["ends"], d["values"]))
        if arrays is None:      # absent, corrupt, from another version: a miss, never a failed edit
            return {}
        heads, crops, ends, values = arrays
        out, start = {}, 0
        for head, crop, end in zip(heads.tolist(), crops.tolist(), ends.tolist()):
            number, x0, y0, x1, y1, white, check = head
            if crop[0] < 0:
                matte = None
            else:
                shape = (crop[2] - crop[0], crop[3] - crop[1])
                matte = (tuple(crop), values[start:end].reshape(shape))
            out[(int(number), (int(x0), int(y0), int(x1), int(y1)))] = (float(white), int(check), matte)
            start = end
        return out

    @staticmethod
    def _check(region: np.ndarray, src: np.ndarray) -> int:
        import zlib

        check = zlib.crc32(np.ascontiguousarray(src, np.float64).tobytes())
        return zlib.crc32(np.ascontiguousarray(region[::4]).tobytes(), check)

    def get(self, number, box, region: np.ndarray, src: np.ndarray, white: float):
        """The stored matte (an HxW float32 array, or None: no occluder), or ``_MISS``."""
        entry = self.entries.get((int(number), tuple(int(v) for v in box)))
        if entry is None or entry[0] != float(white) or entry[1] != self._check(region, src):
            return _MISS
        self.hits += 1
        if entry[2] is None:
            return None
        (r0, c0, r1, c1), crop = entry[2]
        matte = np.zeros(region.shape[:2], np.float32)
        matte[r0:r1, c0:c1] = crop
        return matte

    def put(self, number, box, region: np.ndarray, src: np.ndarray, white: float, matte: np.ndarray | None) -> None:
        """Hold the matte the detector found (kept for :meth:`save` while within the budget)."""
        if self.key is None or self.held >= self.budget:
            return
        crop = None
        if matte is not None:
            # every value that is not +0.0 (a -0.0 too): the matte comes back bit for bit
            set_ = (matte != 0) | np.signbit(matte)
            rows = np.flatnonzero(set_.any(axis=1))
            if len(rows) == 0:
                crop = ((0, 0, 0, 0), np.zeros((0, 0), np.float32))
            else:
                cols = np.flatnonzero(set_[rows[0]:rows[-1] + 1].any(axis=0))
                r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
                crop = ((r0, c0, r1, c1), np.array(matte[r0:r1, c0:c1], np.float32))
            self.held += crop[1].nbytes
        self.entries[(int(number), tuple(int(v) for v in box))] = (float(white), self._check(region, src), crop)
        self.added += 1

    def take(self, number) -> list:
        """The entries held for frame ``number``, let go here (a render worker hands them to its parent, which
        :meth:`adopt` s them): ``[(key, entry), ...]``."""
        taken = [(key, entry) for key, entry in self.entries.items() if key[0] == int(number)]
        for key, _ in taken:
            del self.entries[key]
        self.held = 0           # the parent counts the budget
        return taken

    def adopt(self, taken: list) -> None:
        """Hold entries another process's memo found (:meth:`take`), as :meth:`put` holds its own, within the
        budget."""
        for key, entry in taken:
            if self.key is None or self.held >= self.budget:
                return
            self.entries[key] = entry
            self.added += 1
            self.held += entry[2][1].nbytes if entry[2] is not None else 0

    def save(self) -> Path | None:
        """Store every matte held (with the ones read) when new ones were found; the path, or None."""
        if self.key is None or not self.added:
            return None
        from .tracking.cache import store_private

        heads, crops, ends, values, end = [], [], [], [], 0
        # (a snapshot: daemon sessions of one shot share a memo, and another may be adding to it)
        for (number, box), (white, check, matte) in sorted(list(self.entries.items())):
            heads.append([number, *box, white, check])
            if matte is None:
                crops.append([-1, -1, -1, -1])
            else:
                (r0, c0, r1, c1), crop = matte
                crops.append([r0, c0, r1, c1])
                values.append(crop.reshape(-1))
                end += crop.size
            ends.append(end)
        arrays = {"heads": np.array(heads, np.float64).reshape(-1, 7), "crops": np.array(crops, np.int64).reshape(-1, 4),
                  "ends": np.array(ends, np.int64),
                  "values": np.concatenate(values) if values else np.zeros(0, np.float32)}
        from .npzfile import savez_deflated

        # (deflated: mattes are mostly zeros, 12x smaller on d12)
        return store_private(self._path(self.key), lambda fh: savez_deflated(fh, **arrays), fsync=False)


class FaceContent:
    """Per frame: occluders out, the renderer's warp, the new content over it (the one place sub-stages run).

    Args:
        models: the shot's :class:`ShotModels` (None: no mouth bank or eye model: a still's synthetic fallbacks
            are still used when the config asks for them).
        config: a :class:`ContentConfig`.
    """

    def __init__(self, models: ShotModels | None = None, config: ContentConfig | None = None):
        self.config = config or ContentConfig()
        self.models = models or ShotModels()
        self.mouth = self.eyes = self.skin = self.occlusion = self.brows = None
        if self.config.brows:
            from .rendering.brows import BrowRenderer

            self.brows = BrowRenderer()
        if self.config.skin:
            from .rendering.skin import SkinRenderer

            self.skin = SkinRenderer(self.models.skin)
        if self.config.mouth:
            from .rendering.mouth import MouthRenderer

            self.mouth = MouthRenderer(self.models.mouth, self.models.mouth_plan)
        if self.config.eyes:
            from .rendering.eyes import EyeRenderer

            self.eyes = EyeRenderer(self.models.eyes)
        if self.config.occluders:
            from .occlusion import OcclusionDetector

            self.occlusion = OcclusionDetector()
        self.seconds = {"occlusion": 0.0, "brows": 0.0, "skin": 0.0, "mouth": 0.0, "eyes": 0.0}
        #: a :class:`MatteMemo` of the shot's occluder mattes (kept between edits of the shot), or None
        self.mattes: MatteMemo | None = None

    def occluders(self, region: np.ndarray, src: np.ndarray, white: float, number: int | None = None,
                  box=None, size: tuple[int, int] | None = None, source_box=None, windows=None) -> np.ndarray | None:
        """The occluder matte over the region (1 = an occluder: keep the plate), or None when there is none.

        Args:
            region: HxWxK plate crop; src: its source landmarks (region pixels); white: display white;
            number: the frame number (for a holdout sequence); box: the region's box in the frame; size: the
                frame's (height, width) (a holdout matte of another size is scaled to it);
            windows: the frame's (data window, display window) (``Frame``'s: a holdout matte is placed by them);
                None: the whole ``size``.
            source_box: the source face's own box in the frame, inside ``box`` (``FaceLocation.source_box``):
                the detector looks there, so the matte depends on the plate alone, not on how far the edit's
                target reaches (the same matte for every emotion: a second edit of the shot reads the first
                one's from the memo). None: the whole region.
        """
        import time

        from .errors import InputNotFoundError

        t = time.perf_counter()
        matte = None
        if self.config.holdout and box is not None and size is not None:
            from .occlusion import load_holdout

            try:
                matte = load_holdout(self.config.holdout, number, size, *(windows or (None, None)))
            except InputNotFoundError:
                matte = None              # a sequence without this frame: detection decides
            if matte is not None:                  # the frame's matte over the region (the box lies in the frame)
                x0, y0, x1, y1 = box
                matte = matte[y0:y1, x0:x1]
        if matte is None and self.occlusion is not None:
            look, at, where = region, None, box
            if source_box is not None and box is not None and tuple(source_box) != tuple(box):
                c0, r0 = int(source_box[0]) - int(box[0]), int(source_box[1]) - int(box[1])
                c1, r1 = int(source_box[2]) - int(box[0]), int(source_box[3]) - int(box[1])
                if not (0 <= c0 < c1 <= region.shape[1] and 0 <= r0 < r1 <= region.shape[0]):
                    raise InvalidParameterError(f"source_box {tuple(source_box)} does not lie in box {tuple(box)}")
                look, at, where = region[r0:r1, c0:c1], (r0, r1, c0, c1), source_box
                src = np.array(src, np.float64, copy=True)
                src[:, 0] -= c0
                src[:, 1] -= r0
            # the memo (another edit of the shot found these mattes) only where detection alone decides
            memo = self.mattes if number is not None and where is not None and not self.config.holdout else None
            found = memo.get(number, where, look, src, white) if memo is not None else _MISS
            if found is _MISS:
                # glasses frames only where the shot's glasses model found glasses (a clip's from its frames, a
                # still's from its thin rims); hair over the forehead always (see OcclusionDetector.detect_in_shot)
                found = self.occlusion.detect_in_shot(look, src, white, glasses=self.models.glasses,
                                                      fringe=self.models.fringe)
                found = None if found is None or not np.any(found > 0) else \
                    np.clip(found.astype(np.float32, copy=False), 0.0, 1.0)
                if memo is not None:
                    memo.put(number, where, look, src, white, found)
            if found is not None and at is not None:        # the source box's matte over the whole region
                whole = np.zeros(region.shape[:2], np.float32)
                whole[at[0]:at[1], at[2]:at[3]] = found
                found = whole
            self.seconds["occlusion"] += time.perf_counter() - t
            return found
        self.seconds["occlusion"] += time.perf_counter() - t
        if matte is None or not np.any(matte > 0):
            return None
        return np.clip(matte.astype(np.float32, copy=False), 0.0, 1.0)

    def fill(self, region: np.ndarray, matte: np.ndarray | None) -> np.ndarray:
        """The region with the occluders filled in with skin (the renderer's input)."""
        if matte is None:
            return region
        from .occlusion import fill

        return fill(region, matte)

    def skin_aus(self, edited, k: int) -> tuple:
        """``(au_names, source activations, target activations)`` of frame ``k`` for the skin's folds: the
        edit's, with what the picture shows beyond the fitted activations (:data:`HIDDEN_AUS`: the brow furrow's AU4,
        ``models.furrow``; a pout's AU15, ``models.pout``) added to the source, and to the target as far as the edit
        keeps the source's own (``EditedTrack.replaced``): neutral or happy on a frown the mesh did not see lift its
        furrows, angry deepens them only as far as they are not there already; neutral on a pout lifts its
        marionette lines; intensity 0 changes nothing."""
        src, dst = edited.au_source[k], edited.au_target[k]
        names = tuple(edited.au_names)
        copied = False
        for field_name, au in HIDDEN_AUS.items():
            hidden = getattr(self.models, field_name, None)
            if hidden is None or au not in names or not 0 <= k < len(hidden) or not hidden[k] > 0:
                continue
            i = names.index(au)
            e = float(hidden[k])
            kept = 1.0 - edited.replaced(k, au)
            if not copied:
                src, dst, copied = np.array(src, np.float64), np.array(dst, np.float64), True
            src[i] += e
            dst[i] += kept * e
        return names, src, dst

    def layers(self, inputs, aus: tuple | None = None) -> np.ndarray:
        """The renderer's output with the new content laid over it: the strips under raised brows, skin folds,
        then the mouth interior, then the eyeballs (openings over skin).

        Args:
            inputs: the frame's :class:`~ned_fx.rendering.layers.RegionInputs`.
            aus: ``(au_names, source activations K, target activations K)`` of the frame (the skin's folds
                follow their change); None: no skin layer.
        """
        import time

        from .rendering.layers import stack

        base, out = inputs.warped, []
        for name in ("brows", "skin", "mouth", "eyes"):
            stage = getattr(self, name)
            if stage is None or (name == "skin" and aus is None):
                continue
            t = time.perf_counter()
            if name == "skin":
                # the folds shade the picture as it stands (``picture x ratio`` where they are): over the brows'
                # strip, not the plain warp it replaced (laid over it, the warp's drawn-out brow came back
                # wherever a fold reached, cut off hard at the fold's edge: d19's sad brows)
                base, out = stack(base, out), []
                out.append(stage.render(inputs if base is inputs.warped else replace(inputs, warped=base), *aus))
            else:
                out.append(stage.render(inputs))
            self.seconds[name] += time.perf_counter() - t
        return stack(base, out)

    def smear(self, motion) -> np.ndarray | None:
        """The motion-blur kernel of a frame whose face moves ``motion`` (``(dx, dy)`` pixels a frame) under this
        config's shutter (None: nothing to smear; see :mod:`ned_fx.rendering.motion`)."""
        from .rendering.motion import motion_kernel

        if not self.config.shutter > 0:
            return None
        return motion_kernel(motion, self.config.shutter, self.config.min_blur_px)
