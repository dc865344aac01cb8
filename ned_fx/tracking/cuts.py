"""Shot cuts: frames where the picture changes at once into another shot.

A plate handed to the tool as one shot may hold an editorial cut (a conform's handles, a timeline render, a
Resolve clip spanning two takes). Across a cut the face is another take's, often another actor's: the tracker must
look for it afresh, smoothing must not blend the two, and an edit must not build one actor's neutral, speech gate or
appearance models from two shots. Found from 32x32 thumbnails of the frames the tracker sees (display-referred
RGB), the content-change test of shot detectors (e.g. PySceneDetect's), made adaptive to the shot's own motion
and confirmed one frame later so that a flash or a single odd frame is not taken for a cut. A dissolve or a fade is
not found (no single frame changes at once).
"""

from __future__ import annotations

import numpy as np

#: side of the thumbnail a frame is compared by
THUMB = 32
#: frames before a frame whose median change is its shot's usual motion
_HISTORY = 8
#: the usual change never counts as less than this (a still shot's change is mostly noise)
_FLOOR = 2.0


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """A frame's 32x32x3 float32 thumbnail (area mean of a strided view: 0.1 ms at 512², 0.3 ms at 4K)."""
    import cv2

    h, w = rgb.shape[:2]
    s = max(1, min(h, w) // (4 * THUMB))
    small = np.ascontiguousarray(rgb[::s, ::s]) if s > 1 else np.ascontiguousarray(rgb)
    return cv2.resize(small, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)


def change(a: np.ndarray, b: np.ndarray) -> float:
    """How much two thumbnails differ: the mean absolute difference (8-bit code values)."""
    return float(np.abs(a - b).mean())


class CutWatch:
    """Frame by frame (causal): does this frame start a new shot? The tracker's cue to look for faces afresh;
    :func:`find_cuts` confirms (or drops) each suspicion once the next frame is known."""

    def __init__(self, threshold: float, ratio: float):
        self.threshold, self.ratio = float(threshold), float(ratio)
        self.last: np.ndarray | None = None
        self.changes: list[float] = []

    def see(self, thumb: np.ndarray) -> bool:
        """Take the next frame's thumbnail; True where it may start a new shot."""
        last, self.last = self.last, thumb
        if last is None or self.threshold <= 0:
            return False
        score = change(last, thumb)
        usual = max(float(np.median(self.changes[-_HISTORY:])) if self.changes else 0.0, _FLOOR)
        self.changes.append(score)
        return score >= self.threshold and score >= self.ratio * usual


def find_cuts(thumbs: list[np.ndarray], threshold: float, ratio: float) -> list[int]:
    """The indices (> 0) of the frames that start a new shot: the frame differs from the last by ``threshold``
    and ``ratio`` x the usual change, the next frame differs from that last one by ``threshold`` too (the new
    picture stays) and the frame before the last differs from this one as much (the old picture had stayed): a
    flash, or one corrupt frame, is neither the frame it replaces nor the one after it, so neither its start nor
    its end is a cut. At a range's ends the frame that is not there is not asked for."""
    if threshold <= 0 or len(thumbs) < 2:
        return []
    watch = CutWatch(threshold, ratio)
    cuts = []
    for t, thumb in enumerate(thumbs):
        if watch.see(thumb) and (t + 1 == len(thumbs) or change(thumbs[t - 1], thumbs[t + 1]) >= threshold) \
                and (t < 2 or change(thumbs[t - 2], thumb) >= threshold):
            cuts.append(t)
    return cuts


def shots(count: int, cuts) -> list[tuple[int, int]]:
    """``(first, last)`` indices of each shot of ``count`` frames split at ``cuts``."""
    starts = [0, *sorted(int(c) for c in cuts if 0 < c < count)]
    return [(a, b - 1) for a, b in zip(starts, starts[1:] + [count])]
