"""The camera's motion blur on drawn content: folds smeared as the plate smears the face.

The warp moves the plate's own pixels, so whatever blur the camera put on them moves with them. The content the
sub-stages draw (a fold's crease) is drawn sharp; on a frame where the actor's head moves fast, the plate is
smeared along the motion and the drawn lines were the only sharp thing on the face (d12.mp4 frame 51: his face
moves ~40 px a frame sideways and his sad forehead lines read as pasted on).

Each frame's blur is a line kernel along the face's own movement in the picture (the tracked points' median
velocity, central difference over the neighbouring frames, :func:`face_motion`), as long as that movement during
the exposure: the velocity times the shutter (the fraction of the frame interval the shutter is open: 0.5 is a
180-degree shutter, the film and video norm; :func:`motion_kernel`). The pipeline hands it to the sub-stages with
the frame (``RegionInputs.smear``); a sub-stage that draws smears its own change with it (:func:`smear`: the skin's
log shading), so its edges fade along the motion and stay as sharp across it as they were.
"""

from __future__ import annotations

import numpy as np

#: How finely the kernel's line is sampled per pixel of its length (anti-aliased ends).
_SAMPLES = 8


def face_motion(landmarks: np.ndarray, found: np.ndarray, frame_numbers=None) -> np.ndarray:
    """Fx2 the face's movement in the picture, pixels per frame, for every frame of a track.

    Args:
        landmarks: FxPx2+ tracked points (plate pixels; NaN where no face).
        found: F booleans; frame_numbers: F frame numbers (default 0..F-1): a gap between two tracked frames
            divides their displacement by the number of frames between them.

    Returns:
        Fx2 float64: the component-wise median over the points of their central-difference velocity (one-sided
        at the shot's ends and beside a frame without a face), zero where no neighbour has a face.
    """
    lm = np.asarray(landmarks, np.float64)[..., :2]
    n = len(lm)
    ok = np.asarray(found, bool) & np.isfinite(lm).all(axis=(1, 2))
    numbers = np.arange(n, dtype=np.float64) if frame_numbers is None else np.asarray(frame_numbers, np.float64)
    out = np.zeros((n, 2))
    for k in range(n):
        if not ok[k]:
            continue
        a = k - 1 if k > 0 and ok[k - 1] else k
        b = k + 1 if k + 1 < n and ok[k + 1] else k
        if a == b or numbers[b] == numbers[a]:
            continue
        out[k] = np.median(lm[b] - lm[a], axis=0) / (numbers[b] - numbers[a])
    return out


def motion_kernel(motion, shutter: float, min_length: float = 1.0) -> np.ndarray | None:
    """The blur kernel of a movement: a line ``shutter x |motion|`` pixels long along ``motion``, centred, summing
    to 1 (float32, odd square size); None where that line is shorter than ``min_length`` pixels (nothing to blur).

    Args:
        motion: (dx, dy) pixels per frame; shutter: the fraction of the frame interval the shutter is open.
    """
    vx, vy = (float(v) for v in motion)
    length = shutter * float(np.hypot(vx, vy))
    if not np.isfinite(length) or length < max(min_length, 1e-6):
        return None
    half = int(np.ceil(length / 2.0)) + 1
    size = 2 * half + 1
    kernel = np.zeros((size, size), np.float64)
    ux, uy = vx / np.hypot(vx, vy), vy / np.hypot(vx, vy)
    steps = max(2, int(np.ceil(length * _SAMPLES)))
    t = (np.arange(steps) + 0.5) / steps - 0.5                 # along the line, -1/2 .. 1/2 of its length
    x, y = half + t * length * ux, half + t * length * uy       # pixel centres at integers
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + dy, x0 + dx), w)                # bilinear splats: a smooth, sub-pixel line
    kernel /= kernel.sum()
    return kernel.astype(np.float32)


def smear(values: np.ndarray, box, kernel: np.ndarray | None):
    """Smear ``values`` (HxW or HxWxC float32, zero outside ``box``) by ``kernel`` in place, over ``box`` grown by the
    kernel's reach (clipped to the array); returns that grown box (``box`` itself where the kernel is None).

    Args:
        values: a drawn layer's change (e.g. the skin's log shading); box: ``(x0, y0, x1, y1)`` end exclusive,
            or None (nothing drawn); kernel: from :func:`motion_kernel`.
    """
    import cv2

    if kernel is None or box is None:
        return box
    r = kernel.shape[0] // 2
    h, w = values.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    gx0, gy0, gx1, gy1 = max(x0 - r, 0), max(y0 - r, 0), min(x1 + r, w), min(y1 + r, h)
    sub = values[gy0:gy1, gx0:gx1]
    # zeros beyond the array (the change is zero beyond the box, and the box is grown by the kernel's reach)
    out = cv2.filter2D(np.ascontiguousarray(sub), -1, kernel, borderType=cv2.BORDER_CONSTANT)
    sub[...] = out.reshape(sub.shape)
    return gx0, gy0, gx1, gy1
