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


#: outline vertices per inner-lip segment in :func:`smooth_outline`
OUTLINE_STEPS = 4


def _catmull_rom(chain: np.ndarray, steps: int) -> np.ndarray:
    """Centripetal Catmull-Rom through the points of ``chain`` (Nx2; the ends extended by reflection): the
    ``steps`` samples of every segment from its start (the last point itself not included): ((N-1)*steps)x2."""
    ext = np.concatenate([2 * chain[:1] - chain[1:2], chain, 2 * chain[-1:] - chain[-2:-1]])
    p0, p1, p2, p3 = ext[:-3], ext[1:-2], ext[2:-1], ext[3:]

    def knot(a, b):
        return np.maximum(np.linalg.norm(b - a, axis=-1), 1e-6) ** 0.5

    t1 = knot(p0, p1)
    t2 = t1 + knot(p1, p2)
    t3 = t2 + knot(p2, p3)
    t0 = np.zeros_like(t1)
    u = np.arange(steps) / steps
    t = t1[:, None] + u[None] * (t2 - t1)[:, None]                            # S x steps

    def lerp(a, b, ta, tb):                   # a, b: Sx2 points, or Sxstepsx2 of the level below
        w = ((t - ta[:, None]) / (tb - ta)[:, None])[..., None]
        return (1 - w) * (a if a.ndim == 3 else a[:, None]) + w * (b if b.ndim == 3 else b[:, None])

    a1, a2, a3 = lerp(p0, p1, t0, t1), lerp(p1, p2, t1, t2), lerp(p2, p3, t2, t3)
    b1, b2 = lerp(a1, a2, t0, t2), lerp(a2, a3, t1, t3)
    return lerp(b1, b2, t1, t2).reshape(-1, 2)


def smooth_outline(points: np.ndarray, steps: int = OUTLINE_STEPS) -> np.ndarray:
    """The inner lip as two smooth curves through its 20 points that meet at the corners (the commissures stay
    points): centripetal Catmull-Rom along the upper lip (0..10) and along the lower lip (10..19, 0), ``steps``
    vertices a segment: (20*steps)x2, vertex ``k*steps`` = point ``k``, vertex ``j`` on segment ``j // steps``.
    A large face's new opening drawn into the 20-point polygon showed its straight sides and corners (a
    700-pixel face: a jagged, cut-out lower edge under the upper teeth)."""
    pts = np.asarray(points, dtype=np.float64)
    upper = _catmull_rom(pts[:11], steps)
    lower = _catmull_rom(pts[[10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 0]], steps)
    return np.concatenate([upper, lower])


def smooth_v(outline: np.ndarray, xs: np.ndarray, ys: np.ndarray, steps: int = OUTLINE_STEPS) -> np.ndarray:
    """The canonical ``v`` of the points ``(xs, ys)`` inside :func:`smooth_outline` ``outline``: their distance to
    the upper lip's curve over the sum of their distances to both curves (0 on the upper lip, 1 on the lower). The
    triangles' piecewise-affine ``v`` bends at every lip point, and a band laid at a fixed height over a lip (the
    upper teeth under it, the lower teeth over the other) showed those straight pieces."""
    half = 10 * steps
    up = polygon_distance(outline[:half + 1], xs, ys, closed=False)
    low = polygon_distance(np.concatenate([outline[half:], outline[:1]]), xs, ys, closed=False)
    total = up + low
    return np.where(total > 1e-6, up / np.maximum(total, 1e-6), 0.5)


def smooth_v_in_box(outline: np.ndarray, box: tuple[int, int, int, int], flat: np.ndarray, stride: int = 1,
                    steps: int = OUTLINE_STEPS) -> np.ndarray:
    """:func:`smooth_v` of the pixels ``flat`` (flat indices into ``box``, row-major; their centres), computed
    exactly (``stride`` 1) or on every ``stride``-th pixel of the box and bilinearly between (v is smooth: a large
    mouth's opening holds tens of thousands of pixels, each measured against every vertex of both curves)."""
    x0, y0, x1, y1 = box
    bw = x1 - x0
    px, py = flat % bw, flat // bw
    if stride <= 1:
        return smooth_v(outline, px + x0 + 0.5, py + y0 + 0.5, steps)
    nx, ny = (bw - 1) // stride + 2, (y1 - y0 - 1) // stride + 2
    gx, gy = np.meshgrid(x0 + 0.5 + stride * np.arange(nx), y0 + 0.5 + stride * np.arange(ny))
    grid = smooth_v(outline, gx.ravel(), gy.ravel(), steps).reshape(ny, nx)
    fx, fy = px / stride, py / stride
    ix, iy = np.minimum(fx.astype(np.int64), nx - 2), np.minimum(fy.astype(np.int64), ny - 2)
    wx, wy = fx - ix, fy - iy
    top = grid[iy, ix] * (1 - wx) + grid[iy, ix + 1] * wx
    bottom = grid[iy + 1, ix] * (1 - wx) + grid[iy + 1, ix + 1] * wx
    return top * (1 - wy) + bottom * wy


def outline_segment(j: np.ndarray, t: np.ndarray, steps: int = OUTLINE_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """A place on :func:`smooth_outline` (its segment ``j``, ``t`` along it) as the inner lip's segment (from point
    ``k`` to ``k + 1``, wrapping) and how far along it (0..1)."""
    return j // steps, ((j % steps) + t) / steps


def pixel_uv(points: np.ndarray, box: tuple[int, int, int, int],
             outline: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Canonical (u, v) of the pixels of ``box`` (x0, y0, x1, y1; end exclusive) whose centres lie inside the
    inner-lip polygon ``points`` (20x2, continuous pixels), or inside ``outline`` (a closed polygon, e.g.
    :func:`smooth_outline`) when given: (Mx2 float64, M flat indices into the box, row-major).

    The 18 triangles are rasterised with OpenCV (sub-pixel vertices) into a label map, then each pixel's (u, v)
    is its triangle's affine map of its centre; a pixel inside ``outline`` but outside every triangle takes the
    nearest one's (clamped barycentrics)."""
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
    if outline is None:
        flat = np.flatnonzero(labels.ravel() >= 0)
    else:
        inside = np.zeros(labels.shape, np.uint8)
        cv2.fillPoly(inside, [np.round((np.asarray(outline) - [x0 + 0.5, y0 + 0.5]) * (1 << shift)).astype(np.int32)],
                     1, lineType=cv2.LINE_8, shift=shift)
        flat = np.flatnonzero(inside.ravel())
    lab = labels.ravel()[flat].astype(np.int64)
    xs = (flat % (x1 - x0)) + x0 + 0.5
    ys = (flat // (x1 - x0)) + y0 + 0.5
    uv = np.empty((len(flat), 2))
    have = lab >= 0
    m = maps[lab[have]]
    xh, yh = xs[have], ys[have]
    uv[have] = np.stack([m[:, 0, 0] * xh + m[:, 0, 1] * yh + m[:, 0, 2], m[:, 1, 0] * xh + m[:, 1, 1] * yh
                         + m[:, 1, 2]], axis=-1)
    if not have.all():                         # inside the smooth outline, outside the polygon: the nearest triangle
        tri, bary = _locate(np.stack([xs[~have], ys[~have]], -1), corners)
        uv[~have] = (bary[..., None] * uvt[tri]).sum(1)
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


def polygon_distance(points: np.ndarray, xs: np.ndarray, ys: np.ndarray, closed: bool = True) -> np.ndarray:
    """Distance (pixels) of the points ``(xs, ys)`` to the closed polygon ``points`` (Vx2), or to the open
    polyline through them (``closed`` False)."""
    a = points.astype(np.float32)
    seg = np.roll(a, -1, axis=0) - a
    if not closed:
        a, seg = a[:-1], seg[:-1]
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
