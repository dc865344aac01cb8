"""Fill the occluders' pixels with the surrounding skin (push-pull: a normalised pyramid average), so the warp
moves skin and not glasses frames or hair; the compositor then puts the plate's occluders back."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError


def fill(region: np.ndarray, matte: np.ndarray, levels: int = 8, threshold: float = 0.01,
         max_width: float | None = 12.0) -> np.ndarray:
    """The region with the thin occluders the matte marks replaced by the surrounding unoccluded pixels.

    Args:
        region: HxWxK float32 plate values (any K, e.g. 3 for RGB).
        matte: HxW float32, 1 on occluders (from :meth:`OcclusionDetector.detect` or :func:`load_holdout`).
        levels: pyramid levels (holes up to about ``2**levels`` px wide are filled smoothly).
        threshold: pixels whose matte exceeds this are filled (the matte's soft edge holds occluder colour).
        max_width: only the parts of the matte thinner than this (px) are filled: glasses frames, strands.
            Wide occluders (a lock of hair, a hand) keep their own pixels: a warp that moves part of them out
            from under the kept matte shows their own texture, not a smooth patch. None fills everything.

    Returns:
        A new HxWxK float32 array: the input exactly where the matte is <= ``threshold``, a smooth fill from
        the surroundings elsewhere (the input itself is returned when the matte is empty).

    Raises:
        InvalidParameterError: shapes that do not fit.
    """
    import cv2

    img = np.asarray(region, dtype=np.float32)
    squeeze = img.ndim == 2
    if squeeze:
        img = img[:, :, None]
    m = np.asarray(matte, dtype=np.float32)
    if img.ndim != 3 or m.shape != img.shape[:2]:
        raise InvalidParameterError(f"region must be HxWxK and matte HxW of the same size, got {img.shape} and "
                                    f"{m.shape}")
    hole = m > threshold
    if max_width is not None and hole.any():
        r = max(1, int(round(max_width / 2)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        wide = cv2.morphologyEx(hole.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0
        hole &= ~cv2.dilate(wide.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if not hole.any():
        return region
    if hole.all():
        return img[:, :, 0] if squeeze else img.copy()
    # work in the holes' box with a margin of context (the fill only needs their surroundings)
    ys, xs = np.nonzero(hole)
    margin = 2 ** min(levels, 5)
    y0, y1 = max(ys.min() - margin, 0), min(ys.max() + 1 + margin, hole.shape[0])
    x0, x1 = max(xs.min() - margin, 0), min(xs.max() + 1 + margin, hole.shape[1])
    out = img.copy()
    crop = out[y0:y1, x0:x1]
    crop[...] = _push_pull(np.ascontiguousarray(img[y0:y1, x0:x1]), hole[y0:y1, x0:x1], levels)
    return out[:, :, 0] if squeeze else out


def _push_pull(img: np.ndarray, hole: np.ndarray, levels: int) -> np.ndarray:
    """``img`` with the ``hole`` pixels replaced by a normalised pyramid average of the others."""
    import cv2

    c = img.shape[2]
    weight = (~hole).astype(np.float32)
    if not weight.any():
        return img
    data = [img * weight[..., None]]
    weights = [weight]
    for _ in range(levels):
        if min(weights[-1].shape) < 4:
            break
        pw = weights[-1]
        data.append(cv2.pyrDown(data[-1]).reshape(-1, (data[-1].shape[1] + 1) // 2, c))
        weights.append(cv2.pyrDown(pw))
    out = img.copy()
    if len(data) == 1:                   # too small for a pyramid: the mean of what is not occluded
        out[hole] = data[0].sum(axis=(0, 1)) / max(float(weight.sum()), 1e-6)
        return out
    # coarsest: the normalised average; then up, each level's own average where it has support
    acc = data[-1] / np.maximum(weights[-1], 1e-6)[..., None]
    for k in range(len(data) - 2, 0, -1):
        shape = data[k].shape
        up = cv2.pyrUp(acc, dstsize=(shape[1], shape[0])).reshape(shape)
        wk = weights[k]
        alpha = np.clip(wk * 2.0, 0.0, 1.0)[..., None]
        acc = data[k] / np.maximum(wk, 1e-6)[..., None] * alpha + up * (1.0 - alpha)
    up = cv2.pyrUp(acc, dstsize=(img.shape[1], img.shape[0])).reshape(img.shape)
    out[hole] = up[hole]                 # level 0: the holes only; every other pixel is the input's own
    return out
