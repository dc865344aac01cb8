"""Bilinear samples of an image at many points, for every sub-stage: OpenCV's remap, whatever the number of points.

numpy only at import (OpenCV imported when used).
"""

from __future__ import annotations

import numpy as np

#: OpenCV's remap takes maps under 32767 on each side: points are sampled in rows of this many
_ROW = 16384


def smoothstep(x):
    """0 below 0, 1 above 1, ``3x² - 2x³`` between (arrays or floats; NaN stays NaN): the sub-stages' one ramp."""
    x = np.minimum(np.maximum(x, 0.0), 1.0)      # (np.clip is several times slower on small arrays)
    return x * x * (3.0 - 2.0 * x)


def median(values):
    """``np.median(values)`` (no axis) of a float array, the same value and dtype, without its Python layers
    (~25 -> ~4 µs a call; the layers take tens of medians of a few hundred values each frame): the middle of one
    partition (of the two middles, their mean as ``np.mean`` takes it), NaN where any value is NaN."""
    a = np.asarray(values)
    n = a.size
    if n == 0 or a.dtype.kind != "f":
        return np.median(a)
    k = n // 2
    part = np.partition(a.reshape(-1), (k - 1, k, n - 1) if n % 2 == 0 else (k, n - 1))
    if np.isnan(part[-1]):
        return part[-1]
    return part[k] if n % 2 else (part[k - 1] + part[k]) / 2


def running_median(values: np.ndarray, window: int, empty: float) -> np.ndarray:
    """A running median over ``window`` frames (edge-padded; NaN left out; ``empty`` where a window holds no
    finite value): how the sub-stages smooth a per-frame measure over a shot (T -> T float64)."""
    v = np.asarray(values, np.float64).reshape(-1)
    half = max(int(window), 1) // 2
    wins = np.lib.stride_tricks.sliding_window_view(np.pad(v, half, mode="edge"), 2 * half + 1)
    some = np.isfinite(wins).any(axis=1)
    out = np.full(len(v), float(empty))
    if some.any():
        out[some] = np.nanmedian(wins[some], axis=1)
    return out


def plate_noise(region: np.ndarray, box) -> float:
    """The plate's grain around ``box`` = (x0, y0, x1, y1) of ``region`` (HxWxK, the box padded by half its width):
    a robust std of the (second) channel's Laplacian / sqrt(20), in the plate's values; 0 where too small to
    tell. New content (a mouth's interior, an eye's new white) gets this much grain so it is not flatter than
    the picture around it."""
    x0, y0, x1, y1 = box
    h, w = region.shape[:2]
    pad = max(4, (x1 - x0) // 2)
    crop = region[max(y0 - pad, 0):min(y1 + pad, h), max(x0 - pad, 0):min(x1 + pad, w), min(1, region.shape[2] - 1)]
    if min(crop.shape) < 3:
        return 0.0
    crop = np.asarray(crop, np.float32)                 # (no copy of a float32 plate: this runs every frame)
    lap = (crop[1:-1, 1:-1] * 4 - crop[:-2, 1:-1] - crop[2:, 1:-1] - crop[1:-1, :-2] - crop[1:-1, 2:]).ravel()
    lap = lap[::max(1, lap.size // 8192)]               # a few thousand samples are plenty
    return float(1.4826 * median(np.abs(lap - median(lap))) / np.sqrt(20.0))


def remap_points(image: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    """``cv2.remap`` (bilinear, border replicated) of an HxW or HxWxC image at N points given as two flat float32
    maps (OpenCV coordinates: pixel centres at integers) -> NxC (C = 1 for a 2-D image), in the image's dtype.
    Any N: the points go in rows of at most ``_ROW`` (an eye on a 4K plate covers more pixels than one map row may
    hold); any C: the channels go four at a time; each point's value is the same however they are cut."""
    import cv2

    n = mx.size
    rows = max(1, -(-n // _ROW))
    cols = min(n, _ROW) if n else 1
    pad = rows * cols - n
    if pad:
        mx = np.pad(np.asarray(mx, np.float32).reshape(-1), (0, pad)).reshape(rows, cols)
        my = np.pad(np.asarray(my, np.float32).reshape(-1), (0, pad)).reshape(rows, cols)
    else:               # (np.pad of nothing still costs ~20 µs, twice a call, tens of calls a frame)
        mx = np.asarray(mx, np.float32).reshape(rows, cols)
        my = np.asarray(my, np.float32).reshape(rows, cols)
    parts = [image] if image.ndim == 2 else [image[..., c:c + 4] for c in range(0, image.shape[2], 4)]
    out = [cv2.remap(np.ascontiguousarray(part), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
           .reshape(rows * cols, -1)[:n] for part in parts]
    return out[0] if len(out) == 1 else np.concatenate(out, axis=1)
