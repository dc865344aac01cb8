"""Temporal smoothing of landmark tracks: a zero-phase One-Euro filter.

The One-Euro filter (Casiez et al., CHI 2012) lowers its cut-off when points are still (removing jitter) and
raises it when they move fast (following speech). Run forward and backward over the shot and averaged, its lag
cancels: the mouth does not trail the audio. Coordinates are scaled by the face size first, so the strength
means the same on a 512² crop and on a 4K plate.
"""

from __future__ import annotations

import math

import numpy as np


#: cut-off of the speed estimate (Hz): high enough that the filter opens within a frame or two of a lip move
D_CUTOFF = 4.0


def one_euro_params(strength: float) -> tuple[float, float]:
    """Map a strength 0..1 to (min_cutoff Hz, beta in 1/inter-ocular). 0 disables smoothing.

    Tuned on the shared talking clips against MediaPipe's raw output: at the default 0.3 the landmark
    acceleration drops to ~0.7-0.95x MediaPipe's while the mean landmark change stays under 1% of the
    inter-ocular distance and mouth opening keeps r > 0.98 with the source.
    """
    s = float(np.clip(strength, 0.0, 1.0))
    return 0.5 + 8.0 * (1.0 - s) ** 2, 4.0 + 40.0 * (1.0 - s)


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro(x: np.ndarray, fps: float, min_cutoff: float, beta: float, d_cutoff: float = D_CUTOFF) -> np.ndarray:
    """Causal One-Euro filter along axis 0 of ``x`` (TxD)."""
    dt = 1.0 / fps
    out = np.empty_like(x)
    out[0] = x[0]
    dx = np.zeros_like(x[0])
    a_d = _alpha(d_cutoff, dt)
    for t in range(1, len(x)):
        dx = a_d * (x[t] - x[t - 1]) / dt + (1 - a_d) * dx
        a = _alpha(min_cutoff + beta * np.abs(dx), dt)
        out[t] = a * x[t] + (1 - a) * out[t - 1]
    return out


def smooth_landmarks(landmarks: np.ndarray, found: np.ndarray, fps: float, strength: float,
                     breaks=()) -> np.ndarray:
    """Zero-phase One-Euro smoothing of one face's track.

    Args:
        landmarks: FxPx3 pixels (NaN where not found); found: F bool; fps: frame rate (25 when unknown);
        strength: 0 (no smoothing) … 1; breaks: frame indices that start a new run (shot cuts).

    Returns:
        FxPx3 smoothed landmarks; runs of found frames (split at ``breaks`` too) are smoothed separately, gaps
        stay NaN.
    """
    out = landmarks.copy()
    if strength <= 0 or not found.any():
        return out
    min_cutoff, beta = one_euro_params(strength)
    fps = fps or 25.0
    idx = np.flatnonzero(found)
    starts = np.zeros(len(idx), bool)
    starts[1:] = np.diff(idx) > 1
    if len(breaks):
        starts |= np.isin(idx, np.asarray(breaks, np.int64))
    starts[0] = False
    runs = np.split(idx, np.flatnonzero(starts))
    for run in runs:
        if len(run) < 3:
            continue
        seg = landmarks[run]
        scale = _face_scale(seg)
        flat = (seg / scale).reshape(len(run), -1)
        fwd = one_euro(flat, fps, min_cutoff, beta)
        bwd = one_euro(flat[::-1], fps, min_cutoff, beta)[::-1]
        out[run] = ((fwd + bwd) / 2).reshape(seg.shape) * scale
    return out


def _face_scale(seg: np.ndarray) -> float:
    """Median inter-ocular distance of a run (pixels)."""
    iod = np.linalg.norm(seg[:, 33, :2] - seg[:, 263, :2], axis=1)
    return float(max(np.median(iod), 1e-6))
