"""The canonical mouth space and the inner-lip shape measures every part of the mouth sub-stage shares.

The inner lip is 20 points (:data:`ned_fx.topology.LIPS_INNER`): the right corner (0), the upper lip (1..9), the
left corner (10), the lower lip back to the right (11..19); upper point ``i`` faces lower point ``20 - i``. The
canonical mouth space is the unit square: ``u`` runs from the right corner (0) to the left one (1) along the lip
points (``u = i / 10`` at pair ``i``), ``v`` from the upper inner lip (0) to the lower one (1). It is tied to
the lips by 18 triangles (a fan at each corner, two per quad between facing pairs), so the map is exact at
the lip points and piecewise affine in between: an interior stored in this space (:class:`MouthBank`) is laid
into any other inner-lip polygon with the same triangles.

Positions are continuous pixels, ``(0, 0)`` = top-left corner of the top-left pixel (the tracker's and
``layers.py``'s convention). Pure numpy.
"""

from __future__ import annotations

import functools

import numpy as np

from ... import topology as T

INNER = np.asarray(T.LIPS_INNER, dtype=np.int64)
OUTER = np.asarray(T.LIPS_OUTER, dtype=np.int64)
#: facing pairs: UPPER[i] and LOWER[i], i = 0..10 (both corners at the ends)
UPPER = np.arange(11)
LOWER = np.array([0] + list(range(19, 9, -1)))
PAIRS = 11
#: the pairs that are not corners (where a gap is measured)
INNER_PAIRS = slice(1, 10)


def _triangles() -> tuple[np.ndarray, np.ndarray]:
    tris = [(0, 1, 19)]
    for i in range(1, 9):
        tris += [(i, i + 1, 20 - (i + 1)), (i, 20 - (i + 1), 20 - i)]
    tris.append((9, 10, 11))
    uv = np.zeros((20, 2))
    for i in range(1, 10):
        uv[i] = (i / 10, 0.0)
        uv[20 - i] = (i / 10, 1.0)
    uv[0], uv[10] = (0.0, 0.5), (1.0, 0.5)
    return np.asarray(tris, dtype=np.int64), uv


#: 18x3 triangles over the 20 inner-lip points; 20x2 their canonical (u, v)
TRIANGLES, UV = _triangles()


def inner_points(landmarks: np.ndarray) -> np.ndarray:
    """The 20 inner-lip points (x, y) of ``...xPx2+`` landmarks: ``...x20x2`` float64."""
    return np.asarray(landmarks, dtype=np.float64)[..., INNER, :2]


def mouth_width(points: np.ndarray) -> np.ndarray:
    """Corner-to-corner width of ``...x20x2`` inner-lip points."""
    return np.linalg.norm(points[..., 10, :] - points[..., 0, :], axis=-1)


def gaps(points: np.ndarray) -> np.ndarray:
    """Upper-to-lower distance at the 11 facing pairs of ``...x20x2`` inner-lip points (pixels; 0 at corners)."""
    return np.linalg.norm(points[..., LOWER, :] - points[..., UPPER, :], axis=-1)


def normalised_shape(points: np.ndarray) -> np.ndarray:
    """Inner-lip points in the mouth's own frame: origin between the corners, x along corner -> corner, divided
    by the width (``...x20x2`` -> ``...x20x2``). The shape descriptor the bank is indexed by."""
    pts = np.asarray(points, dtype=np.float64)
    a, b = pts[..., 0, :], pts[..., 10, :]
    axis = b - a
    width = np.maximum(np.linalg.norm(axis, axis=-1), 1e-9)
    ex = axis / width[..., None]
    ey = np.stack([-ex[..., 1], ex[..., 0]], axis=-1)
    rel = pts - ((a + b) / 2)[..., None, :]
    return np.stack([(rel * ex[..., None, :]).sum(-1), (rel * ey[..., None, :]).sum(-1)], axis=-1) / width[..., None, None]


def centre_opening(points: np.ndarray) -> np.ndarray:
    """Mean gap of the three middle pairs, x width (``...x20x2`` -> ``...``)."""
    return gaps(points)[..., 4:7].mean(-1) / np.maximum(mouth_width(points), 1e-9)


@functools.lru_cache(maxsize=8)
def texel_map(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """For each texel centre of a ``height x width`` canonical texture: the triangle it lies in (nearest when
    outside every one) and its barycentrics there: (H*W int64, H*Wx3 float64)."""
    u = (np.arange(width) + 0.5) / width
    v = (np.arange(height) + 0.5) / height
    pts = np.stack(np.meshgrid(u, v, indexing="xy"), -1).reshape(-1, 2)
    tri, bary = _locate(pts, UV[TRIANGLES])
    return tri, bary


def _barycentrics(pts: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Barycentrics of points Mx2 in triangles Tx3x2 -> MxTx3 (NaN for degenerate triangles)."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    e1, e2 = b - a, c - a
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = np.abs(det) > 1e-9
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), np.nan)
    rel = pts[:, None, :] - a[None]
    l1 = (rel[..., 0] * e2[None, :, 1] - rel[..., 1] * e2[None, :, 0]) * inv
    l2 = (rel[..., 1] * e1[None, :, 0] - rel[..., 0] * e1[None, :, 1]) * inv
    return np.stack([1.0 - l1 - l2, l1, l2], axis=-1)


def _locate(pts: np.ndarray, corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The triangle holding each point (the one it is least outside of) and the clamped barycentrics there."""
    bary = _barycentrics(pts, corners)
    worst = np.nan_to_num(bary.min(-1), nan=-np.inf)
    tri = worst.argmax(1)
    b = np.clip(np.nan_to_num(bary[np.arange(len(pts)), tri]), 0.0, None)
    b /= np.maximum(b.sum(-1, keepdims=True), 1e-12)
    return tri, b


def canonical_positions(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Where each texel of the canonical texture lies on a mouth with inner-lip ``points`` (20x2): HxWx2."""
    tri, bary = texel_map(height, width)
    corners = points[TRIANGLES[tri]]                       # Mx3x2
    return (bary[..., None] * corners).sum(1).reshape(height, width, 2)


def pixel_uv(points: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Canonical (u, v) of the pixels of ``box`` (x0, y0, x1, y1; end exclusive) whose centres lie inside the
    inner-lip polygon ``points`` (20x2, continuous pixels): (Mx2 float64, M flat indices into the box, row-major).

    The 18 triangles are rasterised with OpenCV (sub-pixel vertices) into a label map, then each pixel's (u, v)
    is its triangle's affine map of its centre."""
    import cv2

    x0, y0, x1, y1 = box
    labels = np.full((y1 - y0, x1 - x0), -1, np.int16)
    corners = points[TRIANGLES]                                           # 18x3x2
    a = corners[:, 0]
    e1, e2 = corners[:, 1] - a, corners[:, 2] - a
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = np.abs(det) >= 1e-6
    inv = np.stack([np.stack([e2[:, 1], -e2[:, 0]], -1), np.stack([-e1[:, 1], e1[:, 0]], -1)], 1) \
        / np.where(ok, det, 1.0)[:, None, None]                           # pixel - a -> (l1, l2)
    uvt = UV[TRIANGLES]
    lin = np.stack([uvt[:, 1] - uvt[:, 0], uvt[:, 2] - uvt[:, 0]], axis=2) @ inv    # 18x2x2: pixel -> uv
    maps = np.concatenate([lin, (uvt[:, 0] - (lin @ a[:, :, None])[..., 0])[..., None]], axis=2)
    shift = 4
    fixed = np.round((corners - [x0 + 0.5, y0 + 0.5]) * (1 << shift)).astype(np.int32)
    for t in np.flatnonzero(ok):
        cv2.fillConvexPoly(labels, fixed[t], int(t), lineType=cv2.LINE_8, shift=shift)
    flat = np.flatnonzero(labels.ravel() >= 0)
    lab = labels.ravel()[flat].astype(np.int64)
    xs = (flat % (x1 - x0)) + x0 + 0.5
    ys = (flat // (x1 - x0)) + y0 + 0.5
    m = maps[lab]
    uv = np.stack([m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2], m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]],
                  axis=-1)
    return np.clip(uv, 0.0, 1.0), flat


def polygon_depth(points: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Distance (pixels) of the points ``(xs, ys)`` inside the closed polygon ``points`` (Vx2) to its outline;
    0 for points outside it (even-odd rule)."""
    a, b = points, np.roll(points, -1, axis=0)
    straddle = (a[None, :, 1] > ys[:, None]) != (b[None, :, 1] > ys[:, None])
    dy = np.where(straddle, b[None, :, 1] - a[None, :, 1], 1.0)
    cross = a[None, :, 0] + (ys[:, None] - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / dy
    inside = (straddle & (xs[:, None] < cross)).sum(1) % 2 == 1
    return np.where(inside, polygon_distance(points, xs, ys), 0.0)


def polygon_distance(points: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Distance (pixels) of the points ``(xs, ys)`` to the closed polygon ``points`` (Vx2)."""
    a = points.astype(np.float32)
    seg = np.roll(a, -1, axis=0) - a
    inv = 1.0 / np.maximum((seg * seg).sum(-1), 1e-12)
    px = xs.astype(np.float32)[:, None] - a[None, :, 0]
    py = ys.astype(np.float32)[:, None] - a[None, :, 1]
    t = (px * seg[:, 0] + py * seg[:, 1]) * inv
    np.clip(t, 0.0, 1.0, out=t)
    px -= t * seg[:, 0]
    py -= t * seg[:, 1]
    px *= px
    py *= py
    px += py
    return np.sqrt(px.min(1)).astype(np.float64)


def nearest_on_polygon(points: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                  np.ndarray]:
    """For the points ``(xs, ys)`` (M): the nearest point of the closed polygon ``points`` (Vx2): its distance
    (pixels), the segment it lies on (``j``: from vertex ``j`` to ``j + 1``, wrapping) and how far along (0..1).

    Returns:
        ``(distance M float64, segment M int64, t M float64)``."""
    a = points.astype(np.float32)
    seg = np.roll(a, -1, axis=0) - a
    inv = 1.0 / np.maximum((seg * seg).sum(-1), 1e-12)
    px = xs.astype(np.float32)[:, None] - a[None, :, 0]
    py = ys.astype(np.float32)[:, None] - a[None, :, 1]
    t = np.clip((px * seg[:, 0] + py * seg[:, 1]) * inv, 0.0, 1.0)
    d2 = (px - t * seg[:, 0]) ** 2 + (py - t * seg[:, 1]) ** 2
    j = d2.argmin(1)
    rows = np.arange(len(j))
    return np.sqrt(d2[rows, j]).astype(np.float64), j.astype(np.int64), t[rows, j].astype(np.float64)


def ring_points(landmarks: np.ndarray) -> np.ndarray:
    """Where the lighting around the mouth is measured: the middle of the lips (between facing outer and inner
    lip points) and the skin just outside the outer lip: 40x2."""
    lm = np.asarray(landmarks, dtype=np.float64)
    inner, outer = lm[INNER, :2], lm[OUTER, :2]
    return np.concatenate([(inner + outer) / 2, outer + 0.35 * (outer - inner)])
