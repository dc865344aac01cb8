"""TrackerConfig: the one home of the tracker's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidParameterError

#: what can run the tracker's networks (TrackerConfig.runtime)
RUNTIMES = ("auto", "torch", "onnxruntime")
#: what finds the iris points (TrackerConfig.iris_model)
IRIS_MODELS = ("attention", "eye_crops", "attention_irises")


@dataclass(frozen=True)
class TrackerConfig:
    """Every knob of the face tracker.

    Attributes:
        min_detection_score: BlazeFace score (0..1) above which a detection counts (MediaPipe: 0.5).
        nms_iou: overlap above which detections merge (weighted NMS, as MediaPipe).
        min_face_score: face-mesh presence score below which a tracked face counts as lost (MediaPipe: 0.5).
        max_faces: most faces tracked at once.
        redetect_interval: run the detector every N frames even while faces are tracked, to pick up faces
            entering the shot (0: only when a face is lost or none is tracked).
        max_gap: frames a lost face's id is kept, so a face that comes back gets its old id.
        roi_scale: crop size over the face box (MediaPipe: 1.5); iris_roi_scale: same for the eye crops (2.3).
        first_crop_passes, first_crop_gain: a face's first crop (a still, a face entering a shot) is the
            detector's box, which cuts a dropped jaw short: the mesh runs ``first_crop_passes`` times more, each on
            the crop its own landmarks give (as every later frame of a shot is cropped), and that crop is kept where
            it opens the inner lips by at least ``first_crop_gain`` (x the inter-ocular distance; elsewhere the
            detector's crop stays, MediaPipe's own result, bit for bit). d19.jpg (a gasp): his tracked lips read
            0.22 apart, 0.32 after two passes (~0.43 in the picture), so a neutral closes the real lips instead of
            leaving a dark "V" under the tracked ones; the other shared stills and clips keep MediaPipe's first
            crop (the passes alone moved people_0's points 0.4 %, d8's 1.6 % and the clips' first frames, and 14
            of the test suite's calibrated reads with them). 0 passes: MediaPipe's procedure.
        small_faces: where the detector on the whole frame finds no face and none is tracked, it also looks in
            overlapping square windows of the frame, coarse to fine (each level's side 0.6 of the last's), down to
            windows in which a face box of ``small_faces`` x the frame's longer side fills a fifth: BlazeFace's
            short-range model (MediaPipe's, run on the whole frame letterboxed to 128 pixels) finds face boxes down
            to ~0.14-0.18 of its window, so a medium shot's face was never found (the astronaut's 93-pixel box in a
            1024x512 frame, d12's first frame set into a 4K one). The first level that finds a face is kept. 0: the
            whole frame only (MediaPipe's procedure); at most 0.2.
        small_faces_interval: in a run of frames where no face is found, the windows are searched on every N-th
            frame only (where nothing is there, a search costs ~0.3 s of CPU at 1080p, ~0.45 s at 4K: 183 windows);
            a face large enough for the whole frame is found on every frame as before.
        cut_threshold: a shot cut (the picture changes at once into another shot) is where a 32x32 thumbnail of the
            frame differs from the last frame's by at least this (mean absolute difference, 8-bit code values),
            ``cut_ratio`` times the usual change of the frames before it, the next frame differs from the last one
            as much and the frame before the last from this one (a flash or one odd frame is not a cut). At a cut the tracker looks for the faces afresh
            (as on a shot's first frame), smoothing never runs across it, and the track lists it (``meta["cuts"]``):
            an edit refuses a range holding one, since the shot's neutral, speech, mouth, eye and skin models are
            one actor's in one shot. Measured: the shared clips' largest change is 4.5-19.6 (d12's hands), a cut
            between two of them 68-70. 0: no cut detection (the whole range is one shot).
        cut_ratio: see ``cut_threshold`` (over the median change of up to 8 frames before it).
        iris: also find the irises (10 extra points: 468..472 and 473..477, MediaPipe's 478-point layout).
        iris_model: what finds them: "attention" (MediaPipe's attention mesh, the net of its
            ``refine_landmarks=True``: one net gives the mesh with refined lips and eyes and both irises) or
            "eye_crops" (the plain face mesh, then the iris net on a crop around each eye, both eyes in one batch)
            or "attention_irises" (the plain face mesh's 468 points and the attention mesh's 10 iris points, both
            nets on the same face crop; frame by frame the attention mesh runs beside the next frame's mesh).
            Measured on the shared clips (bench/track.py, onnxruntime, 2 loaded cores): against MediaPipe's
            refine_landmarks=True, attention's mesh is off by 0.47-0.68 % of the inter-ocular distance and its irises
            by 0.55-0.68 % (eye_crops: mesh 1.6-2.1 %, irises 1.15-2.54 %), at 0.53-0.73x MediaPipe's speed (eye_crops
            0.27-0.56x in the same runs). Its 468 mesh points are the refined ones, ~1.6-2.1 % from the plain mesh's.
        iris_reuse: when tracking frame by frame (``batch_size`` 1), an eye crop whose change since the iris net
            last ran on that eye (the largest mean absolute difference, 0..1, over a 16x16 block of the 64x64
            crop) is below this keeps that output (in crop pixels: the points follow the eye's crop) instead of
            running the net again (``iris_model`` "eye_crops" only); 0 (the default: the same points as before) runs it on every frame. Measured
            on the shared clips (bench/track.py): 0.02 runs the net on 39-100 % of the frames and moves the iris
            points by 0.0-0.34 % of the inter-ocular distance on average (at most 2.1 %); larger values skip
            more and lag gaze shifts more.
        threads: CPU threads each onnxruntime network runs on; 0 (auto): one when tracking frame by frame (the
            nets are small: on 2 cores a second thread's hand-offs cost more than it computes, 10.3 -> 5.2 ms a
            frame with the iris net, and the iris net then has a core of its own, ``overlap_iris``), else torch's
            thread count (a batch of crops keeps them busy).
        overlap_iris: when tracking frame by frame (``batch_size`` 1) with the iris net on eye crops, run each
            frame's iris net in a worker thread while the next frame's face mesh runs (the next crop needs only the
            468 mesh points), each frame handed out once its irises are in: the same points, on two cores in
            about the time of the slower net instead of both.
        smoothing: temporal smoothing strength, 0 (raw) … 1 (strong). Zero-phase One-Euro: no lag on speech.
        batch_size: frames per forward pass. 1 tracks exactly like MediaPipe (crop from the previous frame's
            landmarks); >1 runs chunks of frames in two batched passes (crop from the chunk's previous
            landmarks, then refined from each frame's own), which keeps a GPU busy.
        device: "auto" (CUDA if present, else CPU), "cpu", "cuda", "cuda:1", ….
        runtime: what runs the networks: "auto" (onnxruntime on the CPU where it is installed: about twice as fast
            there; PyTorch on a GPU), "torch" or "onnxruntime" (CPU only).
        colorspace: the plates' colour space for the picture the tracker looks at: "auto" (float plates are
            scene-linear: Rec.709 with the sRGB transfer, or the scene_linear role of ``$OCIO``'s config) or a
            colour space of the OpenColorIO config (e.g. "ACEScg", "ARRI LogC4"), applied to every plate.
        ocio_config: OpenColorIO config path or URI ("" = ``$OCIO``, else the built-in studio config).
        display_view: "DISPLAY/VIEW" of that config ("" = its default display and view).
    """

    min_detection_score: float = 0.5
    nms_iou: float = 0.3
    min_face_score: float = 0.5
    max_faces: int = 4
    redetect_interval: int = 10
    max_gap: int = 25
    roi_scale: float = 1.5
    iris_roi_scale: float = 2.3
    first_crop_passes: int = 2
    first_crop_gain: float = 0.05
    small_faces: float = 0.025
    small_faces_interval: int = 5
    cut_threshold: float = 30.0
    cut_ratio: float = 3.0
    iris: bool = True
    iris_model: str = "eye_crops"
    iris_reuse: float = 0.0
    threads: int = 0
    overlap_iris: bool = True
    smoothing: float = 0.3
    batch_size: int = 1
    device: str = "auto"
    runtime: str = "auto"
    colorspace: str = "auto"
    ocio_config: str = ""
    display_view: str = ""

    def ort_threads(self) -> int:
        """The threads each onnxruntime network runs on (:attr:`threads`; 0: one frame by frame, else torch's)."""
        if self.threads:
            return self.threads
        if self.batch_size == 1:
            return 1
        return library_threads()

    def __post_init__(self) -> None:
        for name in ("min_detection_score", "nms_iou", "min_face_score", "smoothing"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidParameterError(f"{name} must be between 0 and 1, got {value}")
        if self.max_faces < 1:
            raise InvalidParameterError(f"max_faces must be at least 1, got {self.max_faces}")
        if self.batch_size < 1:
            raise InvalidParameterError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.runtime not in RUNTIMES:
            raise InvalidParameterError(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if self.iris_model not in IRIS_MODELS:
            raise InvalidParameterError(f"iris_model must be one of {', '.join(IRIS_MODELS)}, "
                                        f"got {self.iris_model!r}")
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 0:
            raise InvalidParameterError(f"threads must be a whole number >= 0 (0: auto), got {self.threads!r}")
        if not 0.0 <= self.iris_reuse <= 1.0:
            raise InvalidParameterError(f"iris_reuse must be between 0 and 1, got {self.iris_reuse}")
        if not self.first_crop_gain >= 0:
            raise InvalidParameterError(f"first_crop_gain must be >= 0, got {self.first_crop_gain}")
        if not isinstance(self.first_crop_passes, int) or isinstance(self.first_crop_passes, bool) \
                or self.first_crop_passes < 0:
            raise InvalidParameterError(f"first_crop_passes must be a whole number >= 0, got "
                                        f"{self.first_crop_passes!r}")
        if not 0.0 <= self.small_faces <= 0.2:
            raise InvalidParameterError(f"small_faces must be between 0 and 0.2 (x the frame's longer side; 0: the "
                                        f"whole frame only), got {self.small_faces}")
        if not isinstance(self.small_faces_interval, int) or isinstance(self.small_faces_interval, bool) \
                or self.small_faces_interval < 1:
            raise InvalidParameterError(f"small_faces_interval must be a whole number >= 1, got "
                                        f"{self.small_faces_interval!r}")
        if not 0.0 <= self.cut_threshold <= 255.0 or not 1.0 <= self.cut_ratio <= 100.0:
            raise InvalidParameterError(f"cut_threshold must be between 0 (no cut detection) and 255, and cut_ratio "
                                        f"between 1 and 100, got {self.cut_threshold} and {self.cut_ratio}")
        if self.redetect_interval < 0 or self.max_gap < 0:
            raise InvalidParameterError("redetect_interval and max_gap must be >= 0")


def library_threads() -> int:
    """torch's intra-op thread count, told without importing torch where it is not loaded: what it starts with
    (``$OMP_NUM_THREADS``, which :func:`ned_fx.threads.configure` sets; else the cores)."""
    import os
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        return int(torch.get_num_threads())
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return max(1, os.cpu_count() or 1)
