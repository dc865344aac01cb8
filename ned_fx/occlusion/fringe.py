"""A shot's forehead texture (how far the texture cue for a fringe is used, ``OcclusionConfig.hair_texture``),
one value per shot so the matte does not switch the cue on and off from frame to frame."""

from __future__ import annotations

import numpy as np

from .. import topology as T
from .config import OcclusionConfig


class FringeBuilder:
    """A per-shot builder (``add`` the shot's frames, ``finish`` once): the median over the frames of the
    forehead centre's texture (:meth:`~ned_fx.occlusion.OcclusionDetector.forehead_texture`). A strand that falls
    over the forehead now and then (d12.mp4) leaves it low; a fringe over the whole shot (d8's curls) high."""

    def __init__(self, config: OcclusionConfig | None = None):
        from .detector import OcclusionDetector

        self._detector = OcclusionDetector(config)
        self._values: list[float] = []

    def add(self, index: int, pixels: np.ndarray, landmarks: np.ndarray) -> None:
        """One frame of the shot (``index`` < 0: the actor's other footage, whose hair may be another: not
        counted): HxWx3 plate values (any white), 478x3 landmarks in the same pixels."""
        if index < 0:
            return
        p = np.asarray(landmarks, dtype=np.float64)
        if p.ndim != 2 or p.shape[0] < T.NUM_MESH or not np.isfinite(p[: T.NUM_MESH, :2]).all():
            return              # no face in this frame (the detector refuses NaN landmarks)
        value = self._detector.forehead_texture(pixels, p, 1.0)
        if value is not None and np.isfinite(value):
            self._values.append(float(value))

    def finish(self) -> float | None:
        """The shot's forehead texture, or None (no frame measured)."""
        return float(np.median(self._values)) if self._values else None
