"""The pipeline's face-content step: per-shot appearance models and the per-frame layers over the warp.

A geometry warp can only move pixels that exist. Teeth, the tongue, eye whites and a round iris are new
content; this module is the one place that runs the sub-stages that make it, in a fixed order, around the
renderer:

1. **occlusion** (:mod:`ned_fx.occlusion`): glasses (where the shot's glasses model found them) or a user's
   holdout matte are filled in with skin before the warp, so the warp never drags them; the compositor keeps
   their plate pixels exactly (``keep``);
2. the **renderer** warps the (filled) region;
3. **skin** (:mod:`ned_fx.rendering.skin`): the folds and shading of the new expression;
4. **mouth** (:mod:`ned_fx.rendering.mouth`): where the target opens the mouth beyond the source, a real
   interior retrieved from the actor's own frames (or a shaded synthetic one on a lone still);
5. **eyes** (:mod:`ned_fx.rendering.eyes`): where the lids open beyond the source, an eyeball (sclera, round
   iris, pupil) behind the lids.

Per-shot models (the mouth bank and its temporal plan, the eye model, the glasses model) are built once per shot
from the plate's frames (and optional extra footage of the same actor) by :func:`build_shot_models` and stored
in the analysis file (:meth:`ShotModels.to_arrays`), so a farm chunk renders exactly what a whole run renders.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .errors import InvalidParameterError

#: analysis-file key prefix of each model -> (module, class) that reads it back (imported on use)
_LOADERS = {"mouth": (".rendering.mouth", "MouthBank"), "mouth_plan": (".rendering.mouth", "MouthPlan"),
            "eyes": (".rendering.eyes", "EyeModel"), "glasses": (".occlusion", "GlassesModel")}


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
    """

    mouth: bool = True
    eyes: bool = True
    skin: bool = True
    occluders: bool = True
    holdout: str | None = None
    brows: bool = True

    def __post_init__(self) -> None:
        for name in ("mouth", "eyes", "skin", "occluders", "brows"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidParameterError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def builds_models(self) -> bool:
        return self.mouth or self.eyes or self.occluders


#: the renderer's warp alone, no face content (the fast path's output; a baseline for the sub-stages' tests)
WARP_ONLY = ContentConfig(mouth=False, eyes=False, skin=False, occluders=False, brows=False)


@dataclass(frozen=True)
class ShotModels:
    """A shot's appearance models (any may be None: that sub-stage then adds nothing)."""

    mouth: object | None = None
    mouth_plan: object | None = None
    eyes: object | None = None
    glasses: object | None = None
    sources: tuple[str, ...] = field(default_factory=tuple)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat ``{"sources": array, "mouth.x": array, "eyes.y": array, ...}`` for the analysis file."""
        out: dict[str, np.ndarray] = {"sources": np.array(list(self.sources), dtype=str)}
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
        return cls(sources=sources, **kw)


def white_of(dtype) -> float:
    """The plate value of display white: 255 (8-bit), 65535 (16-bit), 1.0 (float)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        return float(np.iinfo(dtype).max)
    return 1.0


#: at most this many frames of a shot feed each model (evenly spread: the eye and glasses models average, the
#: mouth bank keeps a diverse set of open mouths)
_MODEL_FRAMES = {"EyeModelBuilder": 16, "GlassesModelBuilder": 40, "MouthBankBuilder": 120}


def _face_crop(frame, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frame's colour channels around the face (the landmarks' box grown by its size on every side), as
    HxWxK float32 plate values, and the landmarks in that crop's pixels: what the builders look at, without
    converting a whole 4K frame for a face in a corner."""
    px = frame.pixels if frame.pixels.ndim == 3 else frame.pixels[:, :, None]
    h, w = px.shape[:2]
    pts = landmarks[:, :2]
    lo, hi = np.nanmin(pts, axis=0), np.nanmax(pts, axis=0)
    grow = (hi - lo).max()
    x0, y0 = (int(max(0, np.floor(v))) for v in lo - grow)
    x1, y1 = int(min(w, np.ceil(hi[0] + grow))), int(min(h, np.ceil(hi[1] + grow)))
    from .compositing import color_channel_indices

    idx = list(color_channel_indices(getattr(frame, "channels", None), px.shape[2]))
    crop = np.ascontiguousarray(px[y0:y1, x0:x1][:, :, idx], dtype=np.float32)
    return crop, landmarks - np.array([x0, y0, 0.0])[: landmarks.shape[1]]


def build_shot_models(path: str | Path, track, edited, frames: str | None = None,
                      actor_footage: Iterable[str | Path] = (), config: ContentConfig | None = None,
                      tracker_config=None, progress: Callable[[int, int], None] | None = None,
                      cache: bool = False) -> ShotModels:
    """Build the shot's appearance models: one decode of the shot (and of each extra footage file).

    The models that do not depend on the edit (mouth bank, eye model, glasses model) are made from the source's
    frames and landmarks only; the mouth's temporal plan follows the target and is made per edit, always from the
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
            the frames, the source landmarks, the sub-stages asked for and the extra footage; store them there when
            built. So a second edit of a shot (another emotion) skips this pass.

    Raises:
        InputNotFoundError, UnreadableMediaError: an extra footage file cannot be read.
        NoFaceError: no face in an extra footage file (the message names it).
    """
    config = config or ContentConfig()
    if not config.builds_models:
        return ShotModels()
    actor_footage = tuple(actor_footage)
    key = _models_key(path, edited, frames, actor_footage, config, tracker_config) if cache else None
    stored = _load_models(key) if key is not None else None
    if stored is None:
        stored = ShotModels.from_arrays(_build_models(path, track, edited, frames, actor_footage, config,
                                                      tracker_config, progress).to_arrays())
        if key is not None:
            _store_models(key, stored)
    elif progress:
        progress(1, 1)
    plan = None
    if stored.mouth is not None:
        from .rendering.mouth import plan_mouth

        plan = plan_mouth(stored.mouth, edited.source_landmarks, edited.target_landmarks, edited.found)
    return ShotModels(mouth=stored.mouth, mouth_plan=plan, eyes=stored.eyes, glasses=stored.glasses,
                      sources=stored.sources)


def _build_models(path, track, edited, frames, actor_footage, config, tracker_config, progress) -> ShotModels:
    """The models that do not depend on the edit (no mouth plan): one decode of the shot and of each extra
    footage file."""
    from .media import open_media, parse_frame_range

    mouth = eyes = glasses = None
    builders = []
    if config.occluders:
        from .occlusion import GlassesModelBuilder

        glasses = GlassesModelBuilder()          # glasses are rigid with the head: their rims add up over the shot
        builders.append(glasses)
    if config.mouth:
        from .rendering.mouth import MouthBankBuilder

        mouth = MouthBankBuilder()
        builders.append(mouth)
    if config.eyes:
        from .rendering.eyes import EyeModelBuilder

        eyes = EyeModelBuilder()
        builders.append(eyes)
    index = {int(n): t for t, n in enumerate(track.frame_numbers)}
    found = int(np.count_nonzero(edited.found))
    # which frames each builder sees: an even sample of at most _MODEL_FRAMES (this pass is per shot, not free)
    every = {id(b): max(1, -(-found // _MODEL_FRAMES.get(type(b).__name__, found or 1))) for b in builders}
    from .streams import prefetch

    with open_media(path, parse_frame_range(frames)) as source:
        total = len(source)

        def crops():            # decode + crop (a thread of its own) while the builders take the last crops
            seen = 0
            for frame in source:
                k = index.get(int(frame.number))
                wanted, crop = [], None
                if k is not None and edited.found[k]:
                    wanted = [b for b in builders if seen % every[id(b)] == 0]
                    seen += 1
                    if wanted:
                        crop = _face_crop(frame, edited.source_landmarks[k] + frame.display_to_data)
                yield k, wanted, crop

        for done, (k, wanted, crop) in enumerate(prefetch(crops(), depth=4, name="ned-fx-models"), 1):
            for b in wanted:
                b.add(k, *crop)
            if progress:
                progress(done, total)
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
    return ShotModels(mouth=mouth.finish() if mouth is not None else None,
                      eyes=eyes.finish() if eyes is not None else None,
                      glasses=glasses.finish() if glasses is not None else None, sources=tuple(sources))


#: bump when what the cached models hold, or how they are built, changes meaning
MODELS_CACHE_VERSION = 1


def _models_key(path, edited, frames, actor_footage, config: ContentConfig, tracker_config) -> str | None:
    """The cache key of a shot's edit-independent models (None when a source cannot be fingerprinted)."""
    import hashlib
    import json
    from dataclasses import asdict

    from . import __version__
    from .errors import NedFxError
    from .media import source_fingerprint

    try:
        sources = [source_fingerprint(path), *(source_fingerprint(p) for p in actor_footage)]
    except (OSError, NedFxError):
        return None
    h = hashlib.sha256()
    h.update(json.dumps({"v": MODELS_CACHE_VERSION, "ned_fx": __version__, "sources": sources,
                         "paths": [str(Path(p).resolve()) for p in (path, *actor_footage)], "frames": frames,
                         "stages": [config.mouth, config.eyes, config.occluders], "sample": _MODEL_FRAMES,
                         "tracker": None if tracker_config is None or not actor_footage
                         else sorted((k, repr(v)) for k, v in asdict(tracker_config).items())},
                        sort_keys=True).encode())
    for arr in (edited.frame_numbers, edited.found, edited.source_landmarks):
        a = np.ascontiguousarray(arr)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:32]


def _models_path(key: str) -> Path:
    from .tracking.cache import cache_dir

    return cache_dir() / f"models-{key}.npz"


def _load_models(key: str) -> ShotModels | None:
    """The cached models of ``key``, or None (absent, unreadable, or not the owner's private file)."""
    import os
    import stat

    path = _models_path(key)
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            return None
        with np.load(path, allow_pickle=False) as data:
            return ShotModels.from_arrays({k: data[k] for k in data.files})
    except Exception:       # absent, corrupt, from another version: a miss, never a failed edit
        return None


def _store_models(key: str, models: ShotModels) -> Path | None:
    """Write the models under ``key`` as the track cache writes tracks (biometric data: folder 0700, file 0600,
    atomically); None when the cache cannot be written (nothing half-written is left)."""
    import os
    import stat

    final = _models_path(key)
    folder = final.parent
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            return None
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(folder, 0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(fh, **models.to_arrays())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, final)
        return final
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return None


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

            self.skin = SkinRenderer()
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

    def occluders(self, region: np.ndarray, src: np.ndarray, white: float, number: int | None = None,
                  box=None, size: tuple[int, int] | None = None) -> np.ndarray | None:
        """The occluder matte over the region (1 = an occluder: keep the plate), or None when there is none.

        Args:
            region: HxWxK plate crop; src: its source landmarks (region pixels); white: display white;
            number: the frame number (for a holdout sequence); box: the region's box in the frame; size: the
                frame's (height, width) (a holdout matte of another size is scaled to it).
        """
        import time

        from .errors import InputNotFoundError

        t = time.perf_counter()
        matte = None
        if self.config.holdout and box is not None and size is not None:
            from .occlusion import load_holdout

            try:
                matte = load_holdout(self.config.holdout, number, size)
            except InputNotFoundError:
                matte = None              # a sequence without this frame: detection decides
            if matte is not None:                  # the frame's matte over the region (the box lies in the frame)
                x0, y0, x1, y1 = box
                matte = matte[y0:y1, x0:x1]
        if matte is None and self.occlusion is not None:
            # glasses frames only where the shot's glasses model found glasses (a still with glasses:
            # --holdout-matte); hair over the forehead always (see OcclusionDetector.detect_in_shot)
            matte = self.occlusion.detect_in_shot(region, src, white, glasses=self.models.glasses)
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

        out = []
        for name in ("brows", "skin", "mouth", "eyes"):
            stage = getattr(self, name)
            if stage is None or (name == "skin" and aus is None):
                continue
            t = time.perf_counter()
            out.append(stage.render(inputs, *aus) if name == "skin" else stage.render(inputs))
            self.seconds[name] += time.perf_counter() - t
        return stack(inputs.warped, out)
