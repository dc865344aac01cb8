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
    box = _box(hole)
    if box is not None and max_width is not None:
        # the opening over the holes' box with a margin past the kernel's reach: outside it nothing is a hole, so
        # erosion and dilation there are what they are over the whole region
        r = max(1, int(round(max_width / 2)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        y0, y1, x0, x1 = _grown(box, r + 2, hole.shape)
        sub = hole[y0:y1, x0:x1]
        wide = cv2.morphologyEx(sub.astype(np.uint8), cv2.MORPH_OPEN, kernel)
        sub &= cv2.dilate(wide, np.ones((3, 3), np.uint8)) == 0
        box = _box(hole)
    if box is None:
        return region
    if hole.all():
        return img[:, :, 0] if squeeze else img.copy()
    # work in the holes' box with a margin of context (the fill only needs their surroundings)
    y0, y1, x0, x1 = _grown(box, 2 ** min(levels, 5), hole.shape)
    out = img.copy()
    _push_pull(img[y0:y1, x0:x1], hole[y0:y1, x0:x1], levels, out[y0:y1, x0:x1])
    return out[:, :, 0] if squeeze else out


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the True pixels, or None when there are none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _grown(box: tuple[int, int, int, int], margin: int, shape) -> tuple[int, int, int, int]:
    y0, y1, x0, x1 = box
    return max(y0 - margin, 0), min(y1 + margin, shape[0]), max(x0 - margin, 0), min(x1 + margin, shape[1])


def _per_channel(weight: np.ndarray, c: int) -> np.ndarray:
    """HxW as HxWxC, the same value in every channel (a same-shape product instead of numpy's slow broadcast over
    a short last axis)."""
    import cv2

    return weight[..., None] if c == 1 else cv2.merge([weight] * c).reshape(weight.shape + (c,))


def _push_pull(img: np.ndarray, hole: np.ndarray, levels: int, out: np.ndarray) -> None:
    """Writes into ``out`` (``img``'s pixels, the same shape) at the ``hole`` pixels a normalised pyramid average of
    the others."""
    import cv2

    c = img.shape[2]
    weight = (~hole).astype(np.float32)
    if not weight.any():
        return
    data = [np.multiply(img, _per_channel(weight, c))]
    weights = [weight]
    for _ in range(levels):
        if min(weights[-1].shape) < 4:
            break
        pw = weights[-1]
        data.append(cv2.pyrDown(data[-1]).reshape(-1, (data[-1].shape[1] + 1) // 2, c))
        weights.append(cv2.pyrDown(pw))
    where = hole[..., None]
    if len(data) == 1:                   # too small for a pyramid: the mean of what is not occluded
        np.copyto(out, data[0].sum(axis=(0, 1)) / max(float(weight.sum()), 1e-6), where=where)
        return
    # coarsest: the normalised average; then up, each level's own average where it has support
    acc = data[-1] / _per_channel(np.maximum(weights[-1], 1e-6), c)
    for k in range(len(data) - 2, 0, -1):
        shape = data[k].shape
        up = cv2.pyrUp(acc, dstsize=(shape[1], shape[0])).reshape(shape)
        wk = weights[k]
        alpha = np.clip(wk * 2.0, 0.0, 1.0)
        acc = data[k] / _per_channel(np.maximum(wk, 1e-6), c)
        acc *= _per_channel(alpha, c)
        up *= _per_channel(1.0 - alpha, c)
        acc += up
    up = cv2.pyrUp(acc, dstsize=(img.shape[1], img.shape[0])).reshape(img.shape)
    np.copyto(out, up, where=where)      # level 0: the holes only; every other pixel is the input's own
