"""Video face tracking: detect, track each face from its previous landmarks, re-detect when a face is lost or
new faces may have entered, keep stable ids; irises from MediaPipe's attention mesh (one net, as its
refine_landmarks=True) or from the iris net on eye crops (TrackerConfig.iris_model); smoothing and head pose at the
end.

Frames with no face are reported (``found`` false), never fatal.

With the onnxruntime runtime on the CPU (the default there) frames, crops and the networks' outputs are numpy arrays
and torch is never imported (~2 s of every process that tracks: a first edit, ``ned-fx demo``, a gallery); with
PyTorch they are torch tensors on the tracker's device. The same code runs both: :func:`_host` brings an output to
numpy either way.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from .. import __version__
from ..errors import InvalidParameterError, WeightsMissingError
from . import geometry as g
from .config import TrackerConfig
from .netspec import DETECTOR_SIZE, IRIS_SIZE, MESH_SIZE
from .pose import fit_poses
from .smoothing import smooth_landmarks
from .track import Track

NUM_MESH = 468
NUM_POINTS = 478            # 468 mesh points + 5 iris points per eye
#: Mesh points that outline each eye, given to the iris crop (MediaPipe: eye corners).
_EYES = ((g.EYE_OUTER_RIGHT, g.EYE_INNER_RIGHT, False), (g.EYE_INNER_LEFT, g.EYE_OUTER_LEFT, True))
#: the crop offset of the networks' output coordinates (they refer to pixel centres)
_PIXEL_CENTRE = 0.5
#: windows per detector call in :meth:`FaceTracker.detect_small` (a 4K frame's finest level has ~120)
_TILE_BATCH = 32


class CpuDevice(str):
    """The CPU as the tracker names it without torch: the string ``"cpu"`` (which torch takes wherever it takes a
    device) with ``.type``, as a ``torch.device`` has."""

    type = "cpu"


def pick_device(name: str):
    """``"auto"`` -> CUDA when available, else CPU; otherwise the named device (a ``torch.device``; the CPU as a
    :class:`CpuDevice`, told without importing torch where no GPU driver is loaded: ``runtime.cuda_available``)."""
    from .runtime import cuda_available

    if name == "cpu" or (name == "auto" and not cuda_available()):
        return CpuDevice("cpu")
    import torch

    return torch.device("cuda" if name == "auto" else name)


def load_engines(device, iris: bool = True, iris_model: str | None = None) -> dict:
    """The PyTorch engines (:func:`.engine.load_engines`; torch is imported here, on use)."""
    from .engine import load_engines as load

    return load(device, iris=iris, iris_model=iris_model)


def _inference(method):
    """``torch.inference_mode()`` around ``method`` where torch is loaded (the PyTorch engines); without torch
    (the onnxruntime tracker) the method runs as it is."""
    @functools.wraps(method)
    def run(*args, **kwargs):
        torch = sys.modules.get("torch")
        if torch is None:
            return method(*args, **kwargs)
        with torch.inference_mode():
            return method(*args, **kwargs)

    return run


def _host(x) -> np.ndarray:
    """An engine's output or a crop batch as a numpy array (a torch tensor copied to the CPU; numpy as it is)."""
    return x if isinstance(x, np.ndarray) else x.detach().cpu().numpy()


@dataclass
class _IrisKey:
    """The eye crop the iris net last ran on (64x64x3 float32, 0..1) and its output (5x3, crop pixels)."""

    crop: np.ndarray
    iris: np.ndarray


@dataclass
class _Face:
    id: int
    landmarks: np.ndarray            # 478x3, frame pixels
    last_seen: int
    #: per eye (right, left) the last crop the iris net ran on: an eye crop that has hardly changed since reuses
    #: its output (TrackerConfig.iris_reuse)
    iris_keys: list = field(default_factory=lambda: [None, None])


@dataclass
class _State:
    faces: dict[int, _Face] = field(default_factory=dict)
    lost: dict[int, _Face] = field(default_factory=dict)
    next_id: int = 0
    small_search: int | None = None     # the frame the windows were last searched for a small face


@dataclass(frozen=True)
class FrameFaces:
    """What the tracker saw in one frame: per face id, 478x3 landmarks (pixels) and the presence score."""

    index: int
    faces: dict[int, tuple[np.ndarray, float]] = field(default_factory=dict)
    #: the frame's 32x32x3 thumbnail (:func:`~ned_fx.tracking.cuts.thumbnail`): where the shot cuts
    thumbnail: np.ndarray | None = None


def _opening(points: np.ndarray) -> np.ndarray:
    """Kx478x2+ landmarks -> K inner-lip gaps over the eyes' outer corners' distance."""
    from .. import topology

    return topology.mouth_opening(points) / np.maximum(topology.inter_ocular(points), 1e-9)


class FaceTracker:
    """Tracks faces through frames. Build once (loads the engines), call :meth:`track_frames` per shot."""

    def __init__(self, config: TrackerConfig | None = None, engines: dict | None = None):
        self.config = config or TrackerConfig()
        self.device = pick_device(self.config.device)
        #: what runs the networks: "torch", "onnxruntime" (see TrackerConfig.runtime), "given" for ``engines``
        self.runtime = "given" if engines else ""
        self.engines = engines or self._load_engines()
        from .ort import OrtEngine

        #: frames, crops and outputs as numpy arrays (every engine an onnxruntime one): no torch
        self.numpy = bool(self.engines) and all(isinstance(e, OrtEngine) for e in self.engines.values())
        #: per calling thread: the iris passes deferred to the worker while :meth:`iter_track` overlaps them with
        #: the next frame's mesh (None: run them in place)
        import threading

        self._local = threading.local()
        self._workers: list = [None]    # the iris worker, made on first use (one list: shared with variant()s)

    #: TrackerConfig fields a :meth:`variant` may change: they leave the networks (the engines) as they are
    VARIANT_FIELDS = ("cut_threshold", "cut_ratio")

    def variant(self, **changes) -> "FaceTracker":
        """This tracker with other settings that do not touch its networks (:data:`VARIANT_FIELDS`): the same
        engines and iris worker, nothing loaded again (the daemon's warm tracker, for a session that tracks its
        shot as one: ``variant(cut_threshold=0.0)``). Itself where nothing changes.

        Raises:
            InvalidParameterError: a field that is not one of :data:`VARIANT_FIELDS`.
        """
        import copy
        import dataclasses
        import threading

        other = sorted(set(changes) - set(self.VARIANT_FIELDS))
        if other:
            raise InvalidParameterError(f"a tracker variant changes only {', '.join(self.VARIANT_FIELDS)}, not "
                                        f"{', '.join(other)} (they need their own engines: build a FaceTracker)")
        config = dataclasses.replace(self.config, **changes)
        if config == self.config:
            return self
        twin = copy.copy(self)              # every attribute shared (the engines, the worker list) ...
        twin.config = config
        twin._local = threading.local()     # ... but its own per-thread state
        return twin

    def _load_engines(self) -> dict:
        from .runtime import runtime_name

        ort = runtime_name(self.config) == "onnxruntime"
        if ort and self.device.type != "cpu" and self.config.runtime == "auto":
            ort = False         # auto on a GPU torch found (a GPU the runtime's quick look did not see): PyTorch
        if ort:
            if self.device.type != "cpu":
                raise InvalidParameterError(f"the onnxruntime tracker runs on the CPU, not {self.config.device}; "
                                            f"use runtime torch there")
            from .ort import load_ort_engines

            try:
                engines = load_ort_engines(iris=self.config.iris, iris_model=self.config.iris_model,
                                           threads=self.config.ort_threads())
                self.runtime = "onnxruntime"
                return engines
            except WeightsMissingError:
                raise
            except Exception:
                if self.config.runtime == "onnxruntime":
                    raise
                # auto: no usable export (the onnx package missing, a read-only cache, an export that does not
                # match PyTorch): PyTorch runs the networks
        self.runtime = "torch"
        return load_engines(self.device, iris=self.config.iris, iris_model=self.config.iris_model)

    def _batch(self, frames: list[np.ndarray]):
        """HxWx3 uint8 frames as the networks' FxCxHxW batch, still uint8 (the crops convert only the pixels they
        read): a numpy view of the NHWC frames for onnxruntime engines (:attr:`numpy`), else a torch tensor on the
        device. A batch of one frame is a view of it (np.stack's copy of a 1080p frame costs ~1-16 ms, page
        faults)."""
        stacked = np.stack(frames) if len(frames) > 1 else frames[0][None]
        if self.numpy:
            return stacked.transpose(0, 3, 1, 2)
        import torch

        return torch.from_numpy(stacked).to(self.device).permute(0, 3, 1, 2)

    # ---- narrow batched steps ---------------------------------------------------------------------------
    @_inference
    def detect(self, frames, which: list[int]) -> list[list[tuple[np.ndarray, float]]]:
        """Detect faces in frames ``which`` of ``frames`` (FxCxHxW, 0..1; a torch tensor or a uint8 numpy array:
        see :meth:`_batch`). Returns per frame a list of
        (points 8x2 in pixels, score), best first."""
        if not which:
            return []
        _, _, h, w = frames.shape
        affine = g.roi_to_affine(np.array([[w / 2, h / 2, max(w, h), 0.0]]), DETECTOR_SIZE)
        return self._detections(frames, which, np.repeat(affine, len(which), axis=0))

    def _detections(self, frames, which: list[int], affines: np.ndarray) -> list[list[tuple[np.ndarray, float]]]:
        """The detector on crop ``k`` of frame ``which[k]`` of ``frames`` (``affines[k]``: crop -> frame pixels,
        zeros outside the frame): per crop a list of (points 8x2 in frame pixels, score), best first."""
        cfg = self.config
        crops = g.crop_images(frames, which, affines, DETECTOR_SIZE, padding_mode="zeros")
        points, prob = self.engines["face_detector"](crops)
        points, prob = _host(points), _host(prob)
        out = []
        for k in range(len(which)):
            dets = g.weighted_nms(points[k], prob[k], cfg.min_detection_score, cfg.nms_iou, cfg.max_faces)
            out.append([(g.apply_affine(affines[k], p * DETECTOR_SIZE), s) for p, s in dets])
        return out

    @_inference
    def detect_small(self, frames, index: int) -> list[tuple[np.ndarray, float]]:
        """Faces of frame ``index`` of ``frames`` (FxCxHxW) too small for the detector on the whole frame:
        overlapping square windows, coarse to fine (:func:`~.geometry.detection_tiles`, down to
        ``TrackerConfig.small_faces``), each detected on as the whole frame is (:meth:`_detections`); the first level
        that finds a face gives the result (points 8x2 in frame pixels, score; best first). A face is taken from
        the window that holds it whole (:func:`~.geometry.tile_owns`), and the windows' finds merged as one
        image's are."""
        cfg = self.config
        _, _, h, w = frames.shape
        for rois in g.detection_tiles(w, h, cfg.small_faces, min_side=DETECTOR_SIZE):
            affines = g.roi_to_affine(rois, DETECTOR_SIZE)
            found = []
            for lo in range(0, len(rois), _TILE_BATCH):
                part = rois[lo:lo + _TILE_BATCH]
                for roi, dets in zip(part, self._detections(frames, [index] * len(part),
                                                            affines[lo:lo + _TILE_BATCH])):
                    found += [(px, score) for px, score in dets if g.tile_owns(roi, px[:2].mean(axis=0), w, h)]
            if found:
                return [(p.astype(np.float64), s) for p, s in
                        g.weighted_nms(np.stack([p for p, _ in found]), np.asarray([s for _, s in found]),
                                       cfg.min_detection_score, cfg.nms_iou, cfg.max_faces)]
        return []

    @_inference
    def mesh(self, frames, which: list[int], rois: list[np.ndarray],
             faces: list[_Face] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Face mesh for crops ``rois[k]`` of frame ``which[k]``. Returns (Kx478x3 pixels, K scores); the iris
        points come from the attention mesh where it runs (:attr:`uses_attention`), else from the iris engine where
        it is loaded, else are copied from the eye centres. ``faces[k]`` (the
        tracked face crop ``k`` follows, frames in order) lets an eye whose crop hardly changed since the iris net
        last ran on it reuse that output."""
        if not which:
            return np.zeros((0, NUM_POINTS, 3)), np.zeros(0)
        out, score, crops, affines = self._mesh_points(frames, which, rois)
        if not self.uses_attention:
            deferred = getattr(self._local, "deferred", None)
            irises = self._attention_irises if self.attention_irises else None
            if deferred is not None and (irises is not None or "iris" in self.engines):
                # (frame by frame: the next frame's crop needs only these 468 points, so the iris net runs in
                # the worker while the next frame's mesh runs here; iter_track waits for it before yielding)
                if self._workers[0] is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._workers[0] = ThreadPoolExecutor(1, thread_name_prefix="ned-fx-iris")
                worker = self._workers[0]
                # (the eye crops here: the worker's share, the net, is then about the mesh's)
                deferred.append(worker.submit(irises, crops, affines, rois, out) if irises is not None else
                                worker.submit(self._iris_net, *self._eye_crops(frames, which, out), out, faces))
            elif irises is not None:
                irises(crops, affines, rois, out)
            else:
                self._iris(frames, which, out, faces)
        return out, score

    @_inference
    def _mesh_points(self, frames, which: list[int], rois: list[np.ndarray]) -> tuple:
        """The face mesh alone (no iris pass): ``(Kx478x3 pixels, K scores, the crops, their affines)``; the iris
        rows are zero unless the attention mesh gave them."""
        affines = g.roi_to_affine(np.stack(rois), MESH_SIZE)
        crops = g.crop_images(frames, which, affines, MESH_SIZE)
        attention = self.uses_attention
        lm, score = self.engines["face_mesh_attention" if attention else "face_mesh"](crops)
        lm = _host(lm).astype(np.float64)
        out = np.zeros((len(which), NUM_POINTS, 3))
        points = lm.shape[1]           # 478 from the attention mesh (irises included), else 468
        for k in range(len(which)):
            pts = lm[k].copy()
            pts[:, :2] += _PIXEL_CENTRE
            out[k, :points] = g.apply_affine(affines[k], pts)
            out[k, :points, 2] = lm[k, :, 2] * rois[k][2] / MESH_SIZE
        return out, _host(score).astype(np.float64), crops, affines

    @property
    def uses_attention(self) -> bool:
        """Whether the attention mesh runs (``iris_model`` "attention" with its engine loaded, or engines given with
        no other face mesh); else the face mesh and, where loaded, the iris net on eye crops."""
        if "face_mesh_attention" not in self.engines:
            return False
        wanted = self.config.iris and self.config.iris_model == "attention"
        return wanted or "face_mesh" not in self.engines

    @property
    def attention_irises(self) -> bool:
        """Whether the irises come from the attention mesh on the face mesh's own crop (``iris_model``
        "attention_irises": the plain mesh's 468 points, the attention mesh's 10 iris points)."""
        return (self.config.iris and self.config.iris_model == "attention_irises" and not self.uses_attention
                and "face_mesh_attention" in self.engines)

    @_inference
    def _attention_irises(self, crops, affines: np.ndarray, rois: list, out: np.ndarray) -> None:
        """The attention mesh on the face mesh's crops: its 10 iris points (468..477) into ``out``."""
        lm, _ = self.engines["face_mesh_attention"](crops)
        lm = _host(lm).astype(np.float64)[:, NUM_MESH:NUM_POINTS]
        for k in range(len(lm)):
            pts = lm[k].copy()
            pts[:, :2] += _PIXEL_CENTRE
            out[k, NUM_MESH:] = g.apply_affine(affines[k], pts)
            out[k, NUM_MESH:, 2] = lm[k, :, 2] * rois[k][2] / MESH_SIZE

    @_inference
    def _iris(self, frames, which: list[int], out: np.ndarray, faces: list[_Face] | None = None) -> None:
        """The iris points into ``out`` in place: the iris net on eye crops, or without it the eye centres."""
        if "iris" not in self.engines:
            for e, (a, b, _) in enumerate(_EYES):
                centre = (out[:, a] + out[:, b]) / 2
                out[:, NUM_MESH + 5 * e: NUM_MESH + 5 * e + 5] = centre[:, None]
            return
        self._iris_net(*self._eye_crops(frames, which, out), out, faces)

    def _eye_crops(self, frames, which: list[int], out: np.ndarray) -> tuple:
        """Both eyes of every face in one batch (2K crops, right eyes first): ``(crops, affines, rois)``."""
        k_all = len(which)
        rois, affines = [], []
        for a, b, flip in _EYES:
            eye = [g.roi_from_points(out[k, [a, b]], 0, 1, self.config.iris_roi_scale) for k in range(k_all)]
            rois.extend(eye)
            affines.append(g.roi_to_affine(np.stack(eye), IRIS_SIZE, flip=flip))
        affines = np.concatenate(affines)
        return g.crop_images(frames, which * 2, affines, IRIS_SIZE), affines, rois

    @_inference
    def eye_contours(self, frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The iris net's eye contours on one frame: ``2x71x3`` (right eye, then left; frame pixels, depth as the
        iris points'), on the crops ``landmarks``' eye corners place (478 or 468 points; MediaPipe's iris landmark
        model's 71-point contour, its first 16 the lid margin in the order of the mesh's ``33, 7, 163, 144, 145,
        153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173`` and their mirror). The tracker's landmarks take only
        the iris points from this net; its lids are an eye-sized net's second read of the opening (the eval's).

        Raises:
            InvalidParameterError: a tracker without the iris net (``iris_model`` other than "eye_crops"), or a
                frame that is not HxWx3 uint8.
        """
        if "iris" not in self.engines:
            raise InvalidParameterError("eye_contours needs the iris net: a tracker with iris_model 'eye_crops'")
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise InvalidParameterError(f"eye_contours takes an HxWx3 uint8 frame, got {frame.shape} {frame.dtype}")
        out = np.asarray(landmarks, np.float64)[None].copy()
        crops, affines, rois = self._eye_crops(self._batch([np.ascontiguousarray(frame)]), [0], out)
        contour, _ = self.engines["iris"](crops)
        contour = _host(contour).astype(np.float64)
        return np.stack([_from_eye_crop(contour[e], affines[e], rois[e], out[0, [a, b], 2].mean())
                         for e, (a, b, _) in enumerate(_EYES)])

    @_inference
    def _iris_net(self, crops, affines: np.ndarray, rois: list, out: np.ndarray,
                  faces: list[_Face] | None = None) -> None:
        """The iris net on :meth:`_eye_crops`' crops, its points mapped into ``out``'s iris rows."""
        k_all = len(rois) // 2
        iris = np.empty((2 * k_all, 5, 3))
        # an eye whose crop changed by less than iris_reuse (mean |difference|, 0..1) since the net last ran on it
        # keeps that output (crop pixels: it moves with the crop); the net runs on the others, in one batch
        reuse = self.config.iris_reuse if faces is not None else 0.0
        host = _host(crops) if reuse > 0 else None
        run = []
        for j in range(2 * k_all):
            key = faces[j % k_all].iris_keys[j // k_all] if reuse > 0 else None
            if key is not None and _crop_change(host[j], key.crop) < reuse:
                iris[j] = key.iris
            else:
                run.append(j)
        if run:
            _, fresh = self.engines["iris"](crops[run] if len(run) < 2 * k_all else crops)
            iris[run] = _host(fresh).astype(np.float64)
            if reuse > 0:
                for j in run:
                    faces[j % k_all].iris_keys[j // k_all] = _IrisKey(host[j].copy(), iris[j].copy())
        for e, (a, b, flip) in enumerate(_EYES):
            for k in range(k_all):
                j = e * k_all + k
                mapped = _from_eye_crop(iris[j], affines[j], rois[j], (out[k, a, 2] + out[k, b, 2]) / 2)
                if flip:    # a mirrored crop lists the rim points mirrored: keep MediaPipe's 478-point order
                    mapped = mapped[[0, 3, 2, 1, 4]]
                out[k, NUM_MESH + 5 * e: NUM_MESH + 5 * e + 5] = mapped

    # ---- the loop ----------------------------------------------------------------------------------------
    def iter_track(self, frames: Iterable[np.ndarray]) -> Iterator[FrameFaces]:
        """Track faces through RGB uint8 frames (HxWx3), yielding one :class:`FrameFaces` per frame. Frame by
        frame with the irises from a second net (the iris net on eye crops, or ``attention_irises``) and
        ``overlap_iris``, a frame is handed out once the next one's face mesh has run beside that net (one frame
        later; the same points)."""
        from .cuts import CutWatch, thumbnail

        state = _State()
        chunk: list[np.ndarray] = []
        thumbs: list[np.ndarray] = []               # (none with cut detection off: nothing reads them)
        fresh: list[bool] = []                      # per frame: it may start a new shot (a cut)
        watch = CutWatch(self.config.cut_threshold, self.config.cut_ratio)
        index = 0
        overlap = self.config.batch_size == 1 and self.config.overlap_iris
        held: tuple[list, list] | None = None        # a frame's results and its iris passes still running

        def step(chunk, index):
            nonlocal held
            if not overlap:
                yield from self._track_chunk(chunk, index, state, thumbs, fresh)
                return
            self._local.deferred = deferred = []
            try:
                results = self._track_chunk(chunk, index, state, thumbs, fresh)
            finally:
                self._local.deferred = None
            previous, held = held, (results, deferred)
            if previous is not None:
                yield from self._finish(*previous)

        try:
            for frame in frames:
                chunk.append(_as_rgb8(frame))
                if watch.threshold > 0:
                    thumbs.append(thumbnail(chunk[-1]))
                    fresh.append(watch.see(thumbs[-1]))
                if len(chunk) == self.config.batch_size:
                    yield from step(chunk, index)
                    index += len(chunk)
                    chunk, thumbs, fresh = [], [], []
            if chunk:
                yield from step(chunk, index)
            if held is not None:
                last, held = held, None
                yield from self._finish(*last)
        finally:
            if held is not None:            # the caller stopped early: let the worker finish before returning
                for job in held[1]:
                    job.result()

    @staticmethod
    def _finish(results: list, deferred: list) -> list:
        """``results`` once their deferred iris passes have filled in the iris points (their errors raised here)."""
        for job in deferred:
            job.result()
        return results

    def _track_chunk(self, chunk: list[np.ndarray], start: int, state: "_State", thumbs=None,
                     fresh=None) -> list[FrameFaces]:
        """Track one chunk of frames (``thumbs``: their thumbnails, kept in the results; ``fresh``: per frame, it
        may start a new shot: frame by frame, the faces followed so far are looked for afresh there)."""
        cfg = self.config
        batch = self._batch(chunk)
        n = len(chunk)
        results = [FrameFaces(start + k, {}, thumbs[k] if thumbs else None) for k in range(n)]
        if n == 1 and fresh and fresh[0]:           # a cut: no crop from the last shot's face; an id is kept where
            state.lost.update(state.faces)          # the detector finds a face in its place (a flash, a jump cut)
            state.faces.clear()
        detections = self.detect(batch, list(range(n))) if n > 1 else None
        if n > 1 and not state.faces:          # batched chunk with nothing to follow: find faces first
            self._add_detections(batch, [0], results, state, start, detections)
        ids = list(state.faces)
        if ids:
            which = [k for k in range(n) for _ in ids]
            rois = [g.roi_from_landmarks(state.faces[i].landmarks, cfg.roi_scale) for _ in range(n) for i in ids]
            if n > 1:
                # pass 1 crops each frame at its detection of the face (else the last known crop); pass 2 crops
                # frame t from pass 1's landmarks of frame t-1, as sequential tracking crops from the previous
                # frame (the first frame of the chunk keeps the last known crop)
                first = rois[: len(ids)]
                rois, current = [], list(first)
                for k in range(n):       # follow each face through the chunk's detections, frame to frame
                    current = [self._match_detection(detections[k], roi) for roi in current]
                    rois.extend(current)
                lm, sc = self.mesh(batch, which, rois)
                rois = first + [g.roi_from_landmarks(p, cfg.roi_scale) if s >= cfg.min_face_score else r
                                for p, s, r in zip(lm[: -len(ids)], sc[: -len(ids)], rois[len(ids):])]
            # sequential tracking (one frame a chunk): each eye may reuse its last iris output
            lm, sc = self.mesh(batch, which, rois, [state.faces[i] for i in ids] if n == 1 else None)
            for j, (k, fid) in enumerate(zip(which, ids * n)):
                if sc[j] >= cfg.min_face_score:
                    results[k].faces[fid] = (lm[j], float(sc[j]))
            for fid in ids:
                seen = [k for k in range(n) if fid in results[k].faces]
                if seen:
                    state.faces[fid].landmarks = results[seen[-1]].faces[fid][0]
                    state.faces[fid].last_seen = start + seen[-1]
                if not seen or seen[-1] != n - 1:
                    state.lost[fid] = state.faces.pop(fid)
        # detection where it is due: no face, a face lost, or the periodic re-detect
        due = [k for k in range(n)
               if len(results[k].faces) < cfg.max_faces and (
                   len(results[k].faces) < max(len(ids), 1)
                   or (cfg.redetect_interval and (start + k) % cfg.redetect_interval == 0))]
        self._add_detections(batch, due, results, state, start, detections)
        for fid in [f for f, face in state.lost.items() if start + n - face.last_seen > cfg.max_gap]:
            state.lost.pop(fid)
        return results

    def _match_detection(self, dets: list[tuple[np.ndarray, float]], roi: np.ndarray) -> np.ndarray:
        """The ROI of the detection that overlaps ``roi`` most (IoU > 0.2), else ``roi`` itself."""
        box = g.roi_box(roi)
        best, best_iou = roi, 0.2
        for points, _ in dets:
            iou = g.box_iou(np.r_[points[0], points[1]], box)
            if iou > best_iou:
                best, best_iou = g.roi_from_detection(points, self.config.roi_scale), iou
        return best

    def _add_detections(self, batch, due: list[int], results: list[FrameFaces], state: "_State",
                        start: int, detections: list | None = None) -> None:
        """Start (or resume) tracks for faces detected in frames ``due`` that are not already tracked.
        ``detections`` (per frame of the chunk) are reused when given, else the detector runs on ``due``."""
        cfg = self.config
        found = [detections[k] for k in due] if detections is not None else self.detect(batch, due)
        for k, dets in zip(due, found):
            if not dets and not results[k].faces and cfg.small_faces > 0 and (
                    state.small_search is None or start + k - state.small_search >= cfg.small_faces_interval):
                state.small_search = start + k        # nothing in view at the whole frame's scale
                dets = self.detect_small(batch, k)
            boxes = [g.roi_box(g.roi_from_landmarks(p, 1.0)) for p, _ in results[k].faces.values()]
            fresh = [g.roi_from_detection(p, cfg.roi_scale) for p, _ in dets
                     if all(g.box_iou(np.r_[p[0], p[1]], b) < 0.3 for b in boxes)]
            fresh = fresh[: cfg.max_faces - len(results[k].faces)]
            if not fresh:
                continue
            rois = list(fresh)
            if cfg.first_crop_passes:
                # the detector's box cuts a dropped jaw short: the mesh again on the crop its landmarks give (as
                # the next frame's), where the face was found; kept where it opens the mouth by first_crop_gain
                # (elsewhere the detector's crop, as MediaPipe); the irises on the last crop only
                opening = None
                for _ in range(cfg.first_crop_passes):
                    pts, score, _, _ = self._mesh_points(batch, [k] * len(rois), rois)
                    if opening is None:                  # the detector's crop's reading
                        opening = _opening(pts)
                    rois = [g.roi_from_landmarks(p, cfg.roi_scale) if s >= cfg.min_face_score else r
                            for p, s, r in zip(pts, score, rois)]
                pts, score, _, _ = self._mesh_points(batch, [k] * len(rois), rois)
                wider = _opening(pts) - opening >= cfg.first_crop_gain
                rois = [r if s >= cfg.min_face_score and w else f for r, s, w, f in zip(rois, score, wider, fresh)]
            lm, sc = self.mesh(batch, [k] * len(rois), rois)
            for p, s in zip(lm, sc):
                if s < cfg.min_face_score:
                    continue
                # a face we follow that missed this frame, or one lost lately, keeps its id
                missing = {f: face for f, face in state.faces.items() if f not in results[k].faces}
                fid = self._reuse_id(p, {**state.lost, **missing}, start + k)
                if fid is not None and fid in results[k].faces:
                    continue
                if fid is None:
                    fid, state.next_id = state.next_id, state.next_id + 1
                state.lost.pop(fid, None)
                results[k].faces[fid] = (p, float(s))
                face = state.faces.get(fid)
                if face is None or face.last_seen <= start + k:
                    state.faces[fid] = _Face(fid, p, start + k)

    def track_frames(self, frames: Iterable[np.ndarray], frame_numbers: list[int] | np.ndarray, width: int,
                     height: int, fps: float = 0.0, face_id: int | None = None, source: str = "",
                     progress: ProgressFn | None = None) -> Track:
        """Track a whole shot and assemble a :class:`Track` (smoothed, with head poses).

        Args:
            frames: RGB uint8 HxWx3 frames, display-referred; frame_numbers: their numbers (same length);
            width, height: frame size; fps: frame rate (0 for stills); face_id: the face to select
            (default: the one present in most frames); source: input path for the record;
            progress: called with the number of frames done after each frame.

        Raises:
            InvalidParameterError: ``face_id`` was given but never seen (the message lists the ids seen).
        """
        seen: list[FrameFaces] = []
        for ff in self.iter_track(frames):
            seen.append(ff)
            if progress:
                progress(len(seen))
        return assemble_track(seen, np.asarray(frame_numbers), width, height, fps, self.config, face_id, source)

    def _reuse_id(self, landmarks: np.ndarray, lost: dict[int, _Face], index: int) -> int | None:
        box = g.roi_box(g.roi_from_landmarks(landmarks, 1.0))
        best, best_iou = None, 0.3
        for fid, face in lost.items():
            if index - face.last_seen > self.config.max_gap:
                continue
            iou = g.box_iou(box, g.roi_box(g.roi_from_landmarks(face.landmarks, 1.0)))
            if iou > best_iou:
                best, best_iou = fid, iou
        return best


#: side of the blocks an eye crop's change is measured over (16: a 4x4 grid over the 64x64 crop)
_CHANGE_BLOCK = 16


def _from_eye_crop(points: np.ndarray, affine: np.ndarray, roi, depth: float) -> np.ndarray:
    """The iris net's points (Nx3, eye-crop pixels) in frame pixels: x, y through the crop's affine (pixel
    centres), z scaled as the crop and relative to ``depth`` (the eye corners' mean depth)."""
    pts = np.array(points, np.float64)
    pts[:, :2] += _PIXEL_CENTRE
    mapped = g.apply_affine(affine, pts)
    mapped[:, 2] = points[:, 2] * roi[2] / IRIS_SIZE + depth
    return mapped


def _crop_change(crop: np.ndarray, key: np.ndarray) -> float:
    """How much eye crop ``crop`` (3xSxS, 0..1) changed from ``key``: the largest mean absolute difference over a
    block of the crop (a gaze shift or a blink changes a few blocks a lot; noise changes every block a little)."""
    s = crop.shape[-1] // _CHANGE_BLOCK
    d = np.abs(crop - key).mean(0)
    return float(d.reshape(s, _CHANGE_BLOCK, s, _CHANGE_BLOCK).mean((1, 3)).max())


def _as_rgb8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise TypeError(f"the tracker takes HxWx3 uint8 RGB frames, got {frame.dtype} {frame.shape}")
    return np.ascontiguousarray(frame)


ProgressFn = Callable[[int], None]


def assemble_track(seen: list[FrameFaces], frame_numbers: np.ndarray, width: int, height: int, fps: float,
                   config: TrackerConfig, face_id: int | None = None, source: str = "") -> Track:
    """Per-frame detections -> a :class:`Track`: arrays per face id, smoothing, pose, face selection."""
    f = len(seen)
    if len(frame_numbers) != f:
        raise InvalidParameterError(f"{f} frames tracked but {len(frame_numbers)} frame numbers given")
    ids = sorted({fid for ff in seen for fid in ff.faces})
    n = max(len(ids), 1)
    raw = np.full((n, f, NUM_POINTS, 3), np.nan)
    scores = np.zeros((n, f))
    for t, ff in enumerate(seen):
        for fid, (lm, sc) in ff.faces.items():
            raw[ids.index(fid), t], scores[ids.index(fid), t] = lm, sc
    found = ~np.isnan(raw[:, :, 0, 0])
    cuts = []
    if f and all(ff.thumbnail is not None for ff in seen):
        from .cuts import find_cuts

        cuts = find_cuts([ff.thumbnail for ff in seen], config.cut_threshold, config.cut_ratio)
    smooth = np.stack([smooth_landmarks(raw[k], found[k], fps or 25.0, config.smoothing, breaks=cuts)
                       for k in range(n)])
    if face_id is None:
        k = int(np.argmax(found.sum(1) + 1e-6 * np.nan_to_num(
            np.nanmean(np.ptp(raw[:, :, :NUM_MESH, 0], axis=2), axis=1)))) if ids else 0
    elif face_id in ids:
        k = ids.index(face_id)
    else:
        raise InvalidParameterError(f"face id {face_id} was not seen; face ids in this shot: {ids or 'none'}")
    poses = fit_poses(smooth[k], found[k])
    meta = {"tracker": asdict(config), "ned_fx": __version__, "frames_without_face": int((~found[k]).sum())}
    if cuts:                                    # the frame numbers that start a new shot
        meta["cuts"] = [int(frame_numbers[t]) for t in cuts]
    return Track(landmarks=smooth[k], landmarks_raw=raw[k], found=found[k], scores=scores[k],
                 pose=poses["matrix"], pose_euler=poses["euler"], pose_scale=poses["scale"],
                 mean_shape=poses["mean_shape"], frame_numbers=np.asarray(frame_numbers, np.int64),
                 face_id=ids[k] if ids else -1, face_ids=np.asarray(ids, np.int64), all_landmarks=smooth,
                 all_found=found, width=int(width), height=int(height), fps=float(fps or 0.0), source=str(source),
                 meta=meta)
