"""The geometry renderer's field for one frame on the CPU, in numpy (float32), and the mesh tables it reads.

:class:`~ned_fx.rendering.geometry_module.GeometryRendererModule` is the batched, exportable torch graph (ONNX,
TensorRT, a batch on a GPU). The per-frame render of every CPU edit computes the same field here
(:func:`one_frame_field`), rule by rule, in float32 and in the same order of operations, so the two agree but where
a sum or a matrix product is blocked differently (<= 3e-5 px; up to 2.2e-4 px near an outline vertex, where the
expanded |p|^2 + |q|^2 - 2 p.q cancels: ``tests/test_rendering.py`` holds them to 1e-3 px), and a CPU edit needs no
torch: importing it costs ~1.7 s, about a quarter of a second edit of a cached 100-frame shot. One frame here is
also faster than the graph (~7 vs ~10 ms on d12's 192x165 grid: an opening's Shepard reads its own segments only;
the reductions run along rows).

numpy + OpenCV only; nothing at import time.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from .. import topology as T
from ..errors import InvalidParameterError
from .config import RendererConfig
from .mesh import (HOLE_CONTOURS, HOLE_CORNERS, LOWER_LIP_RINGS, MOUTH, UPPER_LIP_RINGS, RenderMesh,
                   grid_inside_polygon, polygon_contains)

#: sub-samples per field cell side for the openings' coverage
SUPERSAMPLE = 4
_EPS = np.float32(1e-6)
_F = np.float32


class FieldArrays(NamedTuple):
    """One frame's field on the coarse grid (numpy): ``offset`` GhxGwx2 (source minus output position, region
    pixels, for the face layer), ``cover`` KxGhxGw (where each opening's layer -- mouth, right eye, left eye --
    shows over the face), ``mouth_fill`` GhxGw (the dark fill's weight in the mouth layer), ``affine`` Kx2x3 (each
    layer's map from output to source position)."""

    offset: np.ndarray
    cover: np.ndarray
    mouth_fill: np.ndarray
    affine: np.ndarray


class FieldTables(NamedTuple):
    """A shot's mesh as the field reads it (int64 index arrays): its triangles (Tx3), the outline's vertices, the
    openings' contour segments (ends ``seg_a``/``seg_b`` and the opening each belongs to), the mouth's inner-lip
    points, the openings' corner pairs (Kx2), each opening's contour, where the mouth's fill colour is sampled
    (midpoints of ``fill_a``/``fill_b``), and the cell's sub-sample offsets (SUPERSAMPLE^2 x 2, float32, in
    cells)."""

    triangles: np.ndarray
    outline: np.ndarray
    seg_a: np.ndarray
    seg_b: np.ndarray
    seg_owner: np.ndarray
    mouth: np.ndarray
    corners: np.ndarray
    holes: tuple
    fill_a: np.ndarray
    fill_b: np.ndarray
    subsamples: np.ndarray

    @classmethod
    def build(cls, mesh: RenderMesh) -> "FieldTables":
        """The tables of ``mesh``.

        Raises:
            InvalidParameterError: a mesh without the three openings mouth, right eye, left eye.
        """
        if tuple(tuple(c) for c in mesh.holes) != HOLE_CONTOURS:
            raise InvalidParameterError("the render mesh must have the three openings mouth, right eye, left eye "
                                        "(build it with build_render_mesh or RenderMesh.from_triangles)")
        seg_a, seg_b, seg_owner = [], [], []
        for k, contour in enumerate(mesh.holes):
            n = len(contour)
            seg_a += [contour[i] for i in range(n)]
            seg_b += [contour[(i + 1) % n] for i in range(n)]
            seg_owner += [k] * n
        sub = (np.arange(SUPERSAMPLE, dtype=np.float32) + _F(0.5)) / _F(SUPERSAMPLE) - _F(0.5)
        gx, gy = np.meshgrid(sub, sub, indexing="xy")
        as_int = lambda v: np.asarray(v, dtype=np.int64)        # noqa: E731
        # where the mouth-interior colour is sampled in the source: the inner lip contour and the midpoints
        # between facing upper/lower inner-lip points
        return cls(as_int(mesh.triangles), np.unique(as_int(mesh.outer_edges).reshape(-1)), as_int(seg_a),
                   as_int(seg_b), as_int(seg_owner), as_int(mesh.holes[MOUTH]), as_int(HOLE_CORNERS),
                   tuple(as_int(c) for c in mesh.holes), as_int(list(T.LIPS_INNER) + list(UPPER_LIP_RINGS[0])),
                   as_int(list(T.LIPS_INNER) + list(LOWER_LIP_RINGS[0])),
                   np.stack([gx, gy], axis=-1).reshape(-1, 2))


@functools.lru_cache(maxsize=8)
def cell_grid(gh: int, gw: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cell centres of a GhxGw grid over an HxW region (float32, read-only): xs (Gw), ys (Gh) and p (Nx2, x
    then y), as the torch module's grid (a few kept: one per shot and region size, and the refined mouth's)."""
    ys = (np.arange(gh, dtype=_F) + _F(0.5)) * _F(height / gh)
    xs = (np.arange(gw, dtype=_F) + _F(0.5)) * _F(width / gw)
    p = np.stack([np.broadcast_to(xs[None, :], (gh, gw)), np.broadcast_to(ys[:, None], (gh, gw))],
                 axis=-1).reshape(gh * gw, 2)
    for a in (xs, ys, p):
        a.setflags(write=False)
    return xs, ys, p


def _smoothstep(x):
    x = np.clip(x, _F(0.0), _F(1.0))
    return x * x * (_F(3.0) - _F(2.0) * x)


def _dot2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1]


def _norm2(a: np.ndarray) -> np.ndarray:
    return np.sqrt(_dot2(a, a))


def _sim_offset(a_re, a_im, mx, my, p: np.ndarray) -> np.ndarray:
    """``S(p) - p`` for points ``p`` (Mx2); parameters scalars or per point (M, M, Mx2, Mx2)."""
    u, v = p[:, 0] - mx[..., 0], p[:, 1] - mx[..., 1]
    dx = (a_re - _F(1.0)) * u - a_im * v + (my[..., 0] - mx[..., 0])
    dy = a_im * u + (a_re - _F(1.0)) * v + (my[..., 1] - mx[..., 1])
    return np.stack([dx, dy], axis=-1)


def _similarities(tables: "FieldTables", src: np.ndarray, dst: np.ndarray, holes: int):
    """Per opening ``(a_re, a_im, mu_dst (2,), mu_src (2,))`` float32, as the module's ``_similarities``."""
    out = []
    for k in range(holes):
        idx = tables.mouth if k == MOUTH else tables.corners[k]
        x, y = dst[idx], src[idx]
        mx, my = x.mean(axis=0, dtype=_F), y.mean(axis=0, dtype=_F)
        xc, yc = x - mx, y - my
        den = (xc * xc).sum(dtype=_F)
        den = den if den > _EPS else _F(1.0)                                  # exactly 1 for src == dst
        a_re = (xc * yc).sum(dtype=_F) / den
        a_im = (xc[:, 0] * yc[:, 1] - xc[:, 1] * yc[:, 0]).sum(dtype=_F) / den
        out.append((_F(a_re), _F(a_im), mx, my))
    return out


def _lid_margin_inset(limit: float, poly_dst: np.ndarray, poly_src: np.ndarray, sim) -> np.ndarray:
    """The module's ``_lid_margin_inset`` for one frame (Vx2)."""
    if limit <= 0:
        return poly_dst
    a_re, a_im, mx, my = sim
    mismatch = poly_src - (poly_dst + _sim_offset(a_re, a_im, mx, my, poly_dst))
    axis = poly_dst[8] - poly_dst[0]
    width = max(_norm2(axis), _EPS)
    down = np.array([-axis[1], axis[0]], _F) / width
    if _dot2(poly_dst[12] - poly_dst[4], down) < 0:
        down = -down
    upper, lower = np.arange(1, 8), np.arange(15, 8, -1)
    gap = np.maximum(_dot2(poly_dst[lower] - poly_dst[upper], down), _F(0.0))
    scale = max(np.sqrt(a_re * a_re + a_im * a_im), _EPS)
    cap = np.minimum(_F(limit) * width, _F(0.4) * gap)
    drop = np.minimum(np.maximum(-_dot2(mismatch[upper], down) / scale, _F(0.0)), cap)
    rise = np.minimum(np.maximum(_dot2(mismatch[lower], down) / scale, _F(0.0)), cap)
    out = poly_dst.copy()
    out[upper] = poly_dst[upper] + drop[:, None] * down
    out[lower] = poly_dst[lower] - rise[:, None] * down
    return out


def _polygon_distance(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Distance from points Mx2 to the closed polygon Vx2 -> M (float32)."""
    qa = poly[None]
    seg = np.roll(poly, -1, axis=0)[None] - qa
    rel = pts[:, None] - qa
    tau = np.clip(_dot2(rel, seg) / np.maximum(_dot2(seg, seg), _EPS), _F(0.0), _F(1.0))
    return _norm2(rel - tau[..., None] * seg).min(axis=1)


def _shepard(pm, sa, sb, va, vb, fade) -> np.ndarray:
    """The module's ``_shepard`` with one opening's segments (Sx2 each) for its cells (pm Mx2, fade a scalar): Mx2.
    (S x M arrays per coordinate: the same float32 operations, the reductions over the segments along rows.)"""
    seg = sb - sa
    segx, segy = seg[:, 0:1], seg[:, 1:2]                                                  # Sx1
    relx = pm[None, :, 0] - sa[:, 0:1]                                                     # SxM
    rely = pm[None, :, 1] - sa[:, 1:2]
    tau = np.clip((relx * segx + rely * segy) / np.maximum(segx * segx + segy * segy, _EPS), _F(0.0), _F(1.0))
    relx -= tau * segx
    rely -= tau * segy
    dist2 = relx * relx + rely * rely
    weight = _F(1.0) / (dist2 + _F(1e-3))
    total = np.maximum(weight.sum(axis=0), _F(1e-30))
    keep = (_F(1.0) - _smoothstep(np.sqrt(dist2.min(axis=0)) / fade)) / total
    dv = vb - va
    out = np.empty((pm.shape[0], 2), _F)
    for c in range(2):
        out[:, c] = (weight * (va[:, c:c + 1] + tau * dv[:, c:c + 1])).sum(axis=0) * keep
    return out


def _grown(cells: np.ndarray, gh: int, gw: int) -> np.ndarray:
    """Flat indices (ascending) of ``cells`` grown by one cell (3x3, not past the grid's edge)."""
    import cv2

    if len(cells) == 0:
        return np.zeros(0, np.int64)
    rows, cols = np.divmod(cells, gw)
    y0, y1 = max(int(rows.min()) - 1, 0), min(int(rows.max()) + 2, gh)
    x0, x1 = max(int(cols.min()) - 1, 0), min(int(cols.max()) + 2, gw)
    window = np.zeros((y1 - y0, x1 - x0), np.uint8)
    window[rows - y0, cols - x0] = 1
    ys, xs = np.nonzero(cv2.dilate(window, np.ones((3, 3), np.uint8)))
    return (ys + y0).astype(np.int64) * gw + (xs + x0)


def _coverage(xs: np.ndarray, ys: np.ndarray, cells: np.ndarray, offsets: np.ndarray, poly: np.ndarray,
              supersample: int = SUPERSAMPLE) -> np.ndarray:
    """The fraction of each cell's sub-samples inside ``poly`` (a scanline over the sub-sample grid)."""
    if len(cells) == 0:
        return np.zeros(0, np.float32)
    rows, cols = np.divmod(cells, len(xs))
    r0, c0 = rows.min(), cols.min()
    k = np.arange(len(offsets))
    ox, kx = offsets[:supersample, 0], k % supersample
    oy, ky = offsets[::supersample, 1], k // supersample
    sx = (xs[c0:cols.max() + 1, None] + ox[None, :]).reshape(-1)
    sy = (ys[r0:rows.max() + 1, None] + oy[None, :]).reshape(-1)
    inside = grid_inside_polygon(poly, sx, sy)
    ri = (rows - r0)[:, None] * len(oy) + ky[None, :]
    ci = (cols - c0)[:, None] * len(ox) + kx[None, :]
    return np.count_nonzero(inside[ri, ci], axis=1).astype(np.float32) / np.float32(len(offsets))


def one_frame_field(tables: FieldTables, config: RendererConfig, src: np.ndarray, dst: np.ndarray,
                    labels: np.ndarray, height: int, width: int) -> FieldArrays:
    """The field of one frame: what the torch module's ``field`` gives for a batch of one, in numpy.

    Args:
        tables: the shot's :class:`FieldTables`; config: the renderer's config.
        src, dst: Px2+ source and target landmarks in region pixels (any float dtype; used as float32).
        labels: GhxGw int64 from :func:`~ned_fx.rendering.mesh.rasterize_labels` of ``dst``.
        height, width: the region's size.

    Returns:
        A :class:`FieldArrays`.
    """
    cfg, tb = config, tables
    follow = cfg.mouth_interior == "follow"
    src = np.ascontiguousarray(np.asarray(src)[:, :2], dtype=_F)
    dst = np.ascontiguousarray(np.asarray(dst)[:, :2], dtype=_F)
    gh, gw = labels.shape
    n = gh * gw
    n_tri = len(tb.triangles)
    holes = len(tb.holes)
    xs, ys, p = cell_grid(gh, gw, height, width)
    lab = labels.reshape(n)
    disp = src - dst
    iod = _norm2(dst[T.EYE_OUTER_RIGHT] - dst[T.EYE_OUTER_LEFT])
    d = np.zeros((n, 2), _F)

    # -- triangles: barycentrics in the target triangle -> the same point of the source triangle
    cells = np.flatnonzero((lab >= 0) & (lab < n_tri))
    if len(cells):
        tris = tb.triangles
        corners, dv = dst[tris], disp[tris]                        # Tx3x2
        a0 = corners[:, 0]
        e1, e2 = corners[:, 1] - a0, corners[:, 2] - a0
        det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        ok = np.abs(det) > _F(1e-4)
        inv = np.where(ok, _F(1.0) / np.where(ok, det, _F(1.0)), _F(0.0))
        alpha1 = np.stack([e2[:, 1], -e2[:, 0]], axis=-1) * inv[:, None]
        alpha2 = np.stack([-e1[:, 1], e1[:, 0]], axis=-1) * inv[:, None]
        d0 = np.where(ok[:, None], dv[:, 0], dv.mean(axis=1, dtype=_F))
        table = np.concatenate([a0, alpha1, alpha2, d0, dv[:, 1] - dv[:, 0], dv[:, 2] - dv[:, 0]], axis=-1)
        rows = table[lab[cells]]
        rel = p[cells] - rows[:, 0:2]
        l1 = _dot2(rel, rows[:, 2:4])
        l2 = _dot2(rel, rows[:, 4:6])
        l0 = np.maximum(_F(1.0) - l1 - l2, _F(0.0))
        l1, l2 = np.maximum(l1, _F(0.0)), np.maximum(l2, _F(0.0))
        total = l0 + l1 + l2
        l1, l2 = l1 / total, l2 / total
        d[cells] = rows[:, 6:8] + l1[:, None] * rows[:, 8:10] + l2[:, None] * rows[:, 10:12]

    # -- outside the mesh: Shepard from the outline's vertices (IOD units), faded to zero over `falloff` IODs
    cells = np.flatnonzero(lab < 0)
    if len(cells):
        scale = _F(1.0) / (iod + _EPS)
        ring = dst[tb.outline]
        centre = ring.mean(axis=0, dtype=_F)
        q = (ring - centre) * scale                                        # Vx2
        pq = (p[cells] - centre) * scale                                   # Mx2
        # V x M (the vertices down, the cells along: the reductions over the vertices run along whole rows)
        dist2 = _dot2(q, q)[:, None] + _dot2(pq, pq)[None, :]
        dist2 += (q * _F(-2.0)) @ pq.T
        np.maximum(dist2, _F(0.0), out=dist2)
        keep = _F(1.0) - _smoothstep(np.sqrt(dist2.min(axis=0)) / _F(cfg.falloff))
        dist2 += _F(1e-8)
        weight = np.reciprocal(dist2, out=dist2)
        d_out = (disp[tb.outline].T @ weight).T / weight.sum(axis=0)[:, None]
        d[cells] = keep[:, None] * d_out

    # -- openings: similarity + the contour mismatch (Shepard from that opening's segments), faded out
    sims = _similarities(tb, src, dst, holes)
    a_re = np.array([s[0] for s in sims], _F)
    a_im = np.array([s[1] for s in sims], _F)
    mx = np.stack([s[2] for s in sims])
    my = np.stack([s[3] for s in sims])
    owner = tb.seg_owner
    sa, sb = dst[tb.seg_a], dst[tb.seg_b]
    va = disp[tb.seg_a] - _sim_offset(a_re[owner], a_im[owner], mx[owner], my[owner], sa)
    vb = disp[tb.seg_b] - _sim_offset(a_re[owner], a_im[owner], mx[owner], my[owner], sb)
    seg_worst = np.maximum(_norm2(va), _norm2(vb))
    worst = np.array([seg_worst[owner == k].max(initial=0.0) for k in range(holes)], _F)
    ends = dst[tb.corners]                                                 # Kx2x2
    span = _norm2(ends[:, 1] - ends[:, 0])
    fade_len = np.maximum(_F(cfg.hole_band) * span, _F(cfg.fold_guard) * worst) + _EPS
    if follow:
        fade_len = fade_len * (_F(1.0) + _F(1e4 - 1.0) * (np.arange(holes) == MOUTH).astype(_F))
    open_cells = np.flatnonzero(lab >= n_tri)
    open_hole = lab[open_cells] - n_tri
    for k in range(holes):
        cells = open_cells[open_hole == k]
        if not len(cells):
            continue
        pm = p[cells]
        mine = owner == k
        base = _sim_offset(a_re[k], a_im[k], mx[k], my[k], pm)
        d[cells] = base + _shepard(pm, sa[mine], sb[mine], va[mine], vb[mine], fade_len[k])

    # -- the opening layers (mouth, eyes): rigid through their similarity, on the cells in or next to them
    cell = np.array([xs[1] - xs[0], ys[1] - ys[0]], _F)
    cell_mean = _F(0.5) * (cell[0] + cell[1])
    covers = np.zeros((holes, n), _F)
    fill = np.zeros(n, _F)
    affine = np.stack([
        np.stack([a_re, -a_im, my[:, 0] - a_re * mx[:, 0] + a_im * mx[:, 1]], axis=-1),
        np.stack([a_im, a_re, my[:, 1] - a_im * mx[:, 0] - a_re * mx[:, 1]], axis=-1)], axis=1)   # Kx2x3
    offsets = tb.subsamples * cell
    for k in range(holes):
        flat = _grown(open_cells[open_hole == k], gh, gw)
        if not len(flat):
            continue
        pm = p[flat]
        contour = tb.holes[k]
        poly_dst, poly_src = dst[contour], src[contour]
        poly_cov = poly_dst if k == MOUTH else _lid_margin_inset(cfg.lid_margin, poly_dst, poly_src, sims[k])
        cover = _coverage(xs, ys, flat, offsets, poly_cov)
        depth = None
        if k != MOUTH or (cfg.mouth_fill and not follow):
            sm = pm + _sim_offset(*sims[k], pm)
            inside = polygon_contains(poly_src, sm)
            dist = _polygon_distance(sm, poly_src) / cell_mean
            depth = np.where(inside, dist, -dist)
        if k == MOUTH:
            strength = _smoothstep(worst[MOUTH] / cell_mean)
            if cfg.mouth_fill and follow:
                gap = _norm2(src[T.MOUTH_UPPER_INNER] - src[T.MOUTH_LOWER_INNER]) / cell_mean
                gap_dst = _norm2(dst[T.MOUTH_UPPER_INNER] - dst[T.MOUTH_LOWER_INNER]) / cell_mean
                thin = (_F(1.0) - _smoothstep((gap - _F(1.0)) / _F(2.0))) * _smoothstep((gap_dst - gap) / _F(2.0))
                fill[flat] = strength * thin
            elif cfg.mouth_fill:
                fill[flat] = strength * (_F(1.0) - _smoothstep(depth - _F(0.5)))
        else:
            cover = cover * _smoothstep(depth + _F(0.5))
        covers[k, flat] = cover
    return FieldArrays(d.reshape(gh, gw, 2), covers.reshape(holes, gh, gw), fill.reshape(gh, gw),
                       affine.astype(_F))


def fill_colour(tables: FieldTables, config: RendererConfig, region: np.ndarray, src: np.ndarray) -> np.ndarray:
    """The dark mouth-interior colour of one source region (HxWxC float32) for landmarks ``src`` (region pixels):
    C float32, as the torch module's ``fill_colour`` (bilinear samples with the border's values beyond it)."""
    h, w = region.shape[:2]
    s = np.asarray(src)[:, :2].astype(_F)
    pts = (s[tables.fill_a] + s[tables.fill_b]) / _F(2.0)                          # Kx2
    # grid_sample's source position for align_corners=False (normalised and back, in float32), clipped to the
    # border
    x = np.clip(((pts[:, 0] * _F(2.0 / w) - _F(1.0) + _F(1.0)) * _F(w) - _F(1.0)) / _F(2.0), _F(0.0), _F(w - 1))
    y = np.clip(((pts[:, 1] * _F(2.0 / h) - _F(1.0) + _F(1.0)) * _F(h) - _F(1.0)) / _F(2.0), _F(0.0), _F(h - 1))
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    img = np.asarray(region, dtype=_F)
    samples = ((_F(1.0) - fy) * ((_F(1.0) - fx) * img[y0, x0] + fx * img[y0, x1])
               + fy * ((_F(1.0) - fx) * img[y1, x0] + fx * img[y1, x1]))             # KxC
    k = min(int(config.mouth_fill_samples), len(samples))
    darkest = np.argsort(samples.mean(axis=1), kind="stable")[:k]
    return (samples[darkest].mean(axis=0) * _F(config.mouth_fill_gain)).astype(_F)
