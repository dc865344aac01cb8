"""The geometry renderer: source mesh -> target mesh as a dense backward displacement field over the face,
applied to the plate's face region at native resolution.

The output is a face layer plus three opening layers (mouth, right eye, left eye). How an output pixel ``p``
(region pixels) finds where to sample the source region:

* face layer, inside a triangle of the TARGET mesh: the same barycentric point of the SOURCE triangle
  (piecewise-affine backward warp);
* face layer, outside the mesh: the outline's displacement, interpolated from the outline vertices (Shepard)
  and faded to zero over ``falloff`` x IOD: no tearing at the face edge, nothing moves far from the face;
* face layer, inside an opening: the opening's similarity (below) plus the mismatch with the lips/lids along
  the contour, interpolated from the contour segments (Shepard) and faded out over a band (``hole_band``,
  never narrower than ``fold_guard`` x the mismatch, so it cannot fold). So the face layer is continuous
  everywhere: no tearing, and a soft, smear-free edge where an opening layer is laid over it;
* opening layers: the lip and lid margins are occlusion boundaries (teeth, tongue and eyeballs lie behind
  them), so what is inside moves rigidly, sampled through a similarity transform from the target opening to
  the source one: least squares over the 20 inner-lip points for the mouth (teeth move rigidly, are never
  stretched), the two eye corners for each eye (the iris keeps its size and stays round). Each layer is laid
  over the face layer with the target polygon's anti-aliased coverage (4x4 supersampled per field cell):
  a lowered lid covers the eyeball, a closed mouth hides the teeth;
* what the source does not show: an eye layer shows only where the similarity lands inside the source's eye
  opening; eyeball that a raised lid reveals comes from the face layer's band (the visible eye, stretched up
  to the lid margin). Where the mouth similarity lands outside the source's mouth opening (a closed mouth
  opened, a mouth opened wider) a dark mouth colour is painted (the mean of the darkest samples along and
  inside the source's inner lips, times ``mouth_fill_gain``), faded in with the contour mismatch so an
  unchanged or merely moved mouth gets none. A neural renderer will do better (teeth, tongue, eyeball);
  this keeps the geometry renderer plausible.

Resolution and filtering: the field is computed on a coarse grid (``RendererConfig.field_cells`` along the
region's longer side: a fixed number of cells per face at any plate resolution), upsampled bilinearly to the
region's native size, and the plate is resampled once at native resolution, bilinear by default (bicubic as
an option). Expression warps are small and smooth (local scale ~0.8..1.25), so bilinear sampling neither
aliases (no strong minification) nor visibly blurs. On a large face (a coarse cell over
``RendererConfig.refine_above_px``) a mouth whose inner contour bends far against the source gets a second, finer
field over its box, feathered into the coarse one (the per-frame OpenCV path: :meth:`GeometryRenderer.render` on
numpy); a far-moved lip margin no longer comes out stair-stepped at the coarse cell.

Rasterising the target mesh into a label map (which triangle/opening holds each grid cell's centre) runs on
the CPU in numpy (:func:`~ned_fx.rendering.mesh.rasterize_labels`, ~1 ms); everything after it is the torch
module :class:`GeometryRendererModule`, batched and exportable to ONNX (opset 18) with the label map as an
input. :class:`GeometryRenderer` is the per-frame entry point; on numpy input it resamples with OpenCV.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import topology as T
from ..errors import InvalidParameterError
from .config import RendererConfig
from .mesh import (HOLE_CONTOURS, HOLE_CORNERS, LOWER_LIP_RINGS, MOUTH, UPPER_LIP_RINGS, RenderMesh,
                   field_grid_size, grid_inside_polygon, polygon_contains,
                   rasterize_labels)

_EPS = 1e-6
#: sub-samples per field cell side for the openings' coverage
_SUPERSAMPLE = 4


def _exporting() -> bool:
    """The module is being traced or exported (its graph must not depend on this call's sizes). ``torch.onnx`` is
    looked at only when something imported it: importing it costs ~0.2 s."""
    import sys

    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return True
    onnx = sys.modules.get("torch.onnx")
    return bool(onnx is not None and onnx.is_in_onnx_export())


def _smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _dot2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dot products over a last axis of 2: ``(a * b).sum(-1)`` (the same float32 values: two products, one sum),
    ~3x faster on the CPU than a reduction over 2 elements."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1]


def _put(d: torch.Tensor, cells: torch.Tensor, values: torch.Tensor, in_place: bool) -> torch.Tensor:
    """``d`` with rows ``cells`` (distinct) set to ``values``: in place by index_copy_ (one frame; ~2x faster on
    the CPU) or as a new tensor by index_put (the traced graph)."""
    return d.index_copy_(0, cells, values) if in_place else d.index_put((cells,), values)


def _inside_polygon(pts: torch.Tensor, poly: torch.Tensor) -> torch.Tensor:
    """Even-odd test: points ``...xKx2`` against polygons ``...xVx2`` (broadcast over the leading axes) ->
    ``...xK`` bool."""
    qa, qb = poly[..., None, :, :], torch.roll(poly, -1, dims=-2)[..., None, :, :]         # ...x1xVx2
    py, px = pts[..., :, None, 1], pts[..., :, None, 0]                                    # ...xKx1
    ay, by, ax, bx = qa[..., 1], qb[..., 1], qa[..., 0], qb[..., 0]
    straddle = (ay > py) != (by > py)
    dy = torch.where(straddle, by - ay, torch.ones_like(by))
    xint = ax + (py - ay) * (bx - ax) / dy
    return ((straddle & (px < xint)).to(torch.int64).sum(-1) % 2) == 1


def _polygon_distance(pts: torch.Tensor, poly: torch.Tensor) -> torch.Tensor:
    """Distance from points ``Mx2`` to the closed polygons ``MxVx2`` (one per point; ``1xVx2``: one for all) -> M."""
    qa, qb = poly, torch.roll(poly, -1, dims=1)
    seg = qb - qa
    rel = pts[:, None] - qa
    tau = (_dot2(rel, seg) / _dot2(seg, seg).clamp_min(_EPS)).clamp(0.0, 1.0)
    return (rel - tau[..., None] * seg).norm(dim=-1).amin(dim=1)


def _grown_cells(mask: torch.Tensor, b: int, gh: int, gw: int) -> torch.Tensor:
    """Flat indices (ascending, int64) of the cells of a BxN bool map grown by one cell (3x3 neighbourhood, not
    past the grid's edge): max pooling (traced or batched; one CPU frame: :func:`_grown_cells_cpu`)."""
    grown = F.max_pool2d(mask.to(torch.float32).reshape(b, 1, gh, gw), 3, stride=1, padding=1)
    return torch.nonzero(grown.reshape(-1) > 0)[:, 0]


def _grown_cells_cpu(cells: np.ndarray, gh: int, gw: int) -> torch.Tensor:
    """:func:`_grown_cells` of one frame's cells given as flat indices: OpenCV's dilation of the cells' box (the
    same cells; torch's max pooling over the whole grid cost ~1.5 ms a frame for three small openings)."""
    import cv2

    if len(cells) == 0:
        return torch.zeros(0, dtype=torch.int64)
    rows, cols = np.divmod(cells, gw)
    y0, y1 = max(int(rows.min()) - 1, 0), min(int(rows.max()) + 2, gh)
    x0, x1 = max(int(cols.min()) - 1, 0), min(int(cols.max()) + 2, gw)
    window = np.zeros((y1 - y0, x1 - x0), np.uint8)
    window[rows - y0, cols - x0] = 1
    # OpenCV's default dilation border never grows a cell from outside the window
    ys, xs = np.nonzero(cv2.dilate(window, np.ones((3, 3), np.uint8)))
    return torch.from_numpy((ys + y0).astype(np.int64) * gw + (xs + x0))


def _coverage_cpu(xs: np.ndarray, ys: np.ndarray, cells: np.ndarray, offsets: np.ndarray,
                  poly: np.ndarray) -> np.ndarray:
    """The opening cover of one frame on the CPU: the fraction of each cell's sub-samples inside ``poly``, the
    same answers as :func:`_inside_polygon` on every sub-sample (the same float32 operations) by a scanline: the
    sub-samples lie on a grid (each cell row's sub-sample rows ``ys[i] + dy``, each column's ``xs[j] + dx``: the
    same float32 sums), tested at once by :func:`~ned_fx.rendering.mesh.grid_inside_polygon`.

    Args:
        xs, ys: the grid's cell centres (Gw, Gh float32); cells: flat indices of the cells (M int64);
        offsets: Kx2 float32 sub-sample offsets (``subsamples`` times the cell size: x varies fastest, K =
            _SUPERSAMPLE^2); poly: Vx2 float32.

    Returns:
        M float32.
    """
    if len(cells) == 0:
        return np.zeros(0, np.float32)
    rows, cols = np.divmod(cells, len(xs))
    r0, c0 = rows.min(), cols.min()
    k = np.arange(len(offsets))
    ox, kx = offsets[:_SUPERSAMPLE, 0], k % _SUPERSAMPLE                     # the sub-samples' x, row-major
    oy, ky = offsets[::_SUPERSAMPLE, 1], k // _SUPERSAMPLE
    sx = (xs[c0:cols.max() + 1, None] + ox[None, :]).reshape(-1)           # sub-sample columns, ascending
    sy = (ys[r0:rows.max() + 1, None] + oy[None, :]).reshape(-1)           # sub-sample rows
    inside = grid_inside_polygon(poly, sx, sy)
    ri = (rows - r0)[:, None] * len(oy) + ky[None, :]                     # MxK
    ci = (cols - c0)[:, None] * len(ox) + kx[None, :]
    return np.count_nonzero(inside[ri, ci], axis=1).astype(np.float32) / np.float32(len(offsets))


class FieldResult(NamedTuple):
    """What :meth:`GeometryRendererModule.field` returns (all on the coarse field grid, B frames).

    Attributes:
        offset: Bx2xGhxGw source position minus output position, region pixels (x, y), for the face layer.
        cover: Bx3xGhxGw 0..1 where each opening's layer (mouth, right eye, left eye) shows over the face.
        mouth_fill: Bx1xGhxGw 0..1 weight of the dark fill colour within the mouth layer.
        affine: Bx3x2x3 each layer's map from output to source position: ``s = A[..., :2] @ p + A[..., 2]``.
    """

    offset: torch.Tensor
    cover: torch.Tensor
    mouth_fill: torch.Tensor
    affine: torch.Tensor


class GeometryRendererModule(nn.Module):
    """Batched geometry renderer: ``forward(images, src, dst, labels) -> images``; ONNX-exportable.

    Build one per shot (it holds the shot's triangulation as buffers). A neural renderer takes its place by
    offering the same ``forward(images, src, dst, ...)``.

    Args:
        mesh: the shot's :class:`~ned_fx.rendering.mesh.RenderMesh`.
        config: a :class:`RendererConfig` (defaults when None).
    """

    def __init__(self, mesh: RenderMesh, config: RendererConfig | None = None):
        super().__init__()
        self.config = config or RendererConfig()
        self.mode = self.config.interpolation
        self._follow = self.config.mouth_interior == "follow"
        if tuple(tuple(c) for c in mesh.holes) != HOLE_CONTOURS:
            raise InvalidParameterError("the render mesh must have the three openings mouth, right eye, left eye "
                                        "(build it with build_render_mesh or RenderMesh.from_triangles)")
        tri = torch.as_tensor(np.asarray(mesh.triangles, dtype=np.int64))
        self.num_triangles = int(tri.shape[0])
        self.num_holes = len(mesh.holes)
        self.register_buffer("triangles", tri, persistent=False)
        seg_a, seg_b, seg_owner = [], [], []
        for k, contour in enumerate(mesh.holes):
            n = len(contour)
            seg_a += [contour[i] for i in range(n)]
            seg_b += [contour[(i + 1) % n] for i in range(n)]
            seg_owner += [k] * n
        self.register_buffer("seg_a", torch.tensor(seg_a, dtype=torch.long), persistent=False)
        self.register_buffer("seg_b", torch.tensor(seg_b, dtype=torch.long), persistent=False)
        self.register_buffer("seg_owner", torch.tensor(seg_owner, dtype=torch.long), persistent=False)
        outline = np.unique(np.asarray(mesh.outer_edges, dtype=np.int64).reshape(-1))
        self.register_buffer("outline", torch.as_tensor(outline), persistent=False)
        self.register_buffer("mouth", torch.tensor(mesh.holes[MOUTH], dtype=torch.long), persistent=False)
        for k, contour in enumerate(mesh.holes):
            self.register_buffer(f"hole{k}", torch.tensor(contour, dtype=torch.long), persistent=False)
        self.register_buffer("corners", torch.tensor(HOLE_CORNERS, dtype=torch.long), persistent=False)
        # where the mouth-interior colour is sampled in the source: the inner lip contour and the midpoints
        # between facing upper/lower inner-lip points
        self.register_buffer("fill_a", torch.tensor(list(T.LIPS_INNER) + list(UPPER_LIP_RINGS[0]),
                                                    dtype=torch.long), persistent=False)
        self.register_buffer("fill_b", torch.tensor(list(T.LIPS_INNER) + list(LOWER_LIP_RINGS[0]),
                                                    dtype=torch.long), persistent=False)
        sub = (torch.arange(_SUPERSAMPLE, dtype=torch.float32) + 0.5) / _SUPERSAMPLE - 0.5
        self.register_buffer("subsamples", torch.stack(torch.meshgrid(sub, sub, indexing="xy"), -1).reshape(-1, 2),
                             persistent=False)
        self._grid_cache: dict = {}         # the last few grids (the region's, and its refined mouth's)

    # ---- pieces of the field ---------------------------------------------------------------------------------
    def _grid(self, gh: int, gw: int, height, width, device, cache: bool) -> tuple[torch.Tensor, ...]:
        """The cell centres of a GhxGw grid over an HxW region: xs (Gw), ys (Gh) and p (1xNx2, x then y).
        ``cache``: keep the last few grids (sizes are ints; one per shot and region size, and the refined
        mouth's boxes of :meth:`GeometryRenderer.render`)."""
        key = (gh, gw, height, width, device)
        if cache and key in self._grid_cache:
            self._grid_cache[key] = self._grid_cache.pop(key)           # the most recently used last
            return self._grid_cache[key]
        # a kept grid is made of ordinary tensors, whatever mode the caller runs in (not while tracing)
        with torch.inference_mode(False) if cache else contextlib.nullcontext():
            ys = (torch.arange(gh, dtype=torch.float32, device=device) + 0.5) * (height / gh)
            xs = (torch.arange(gw, dtype=torch.float32, device=device) + 0.5) * (width / gw)
            p = torch.stack([xs[None, :].expand(gh, gw), ys[:, None].expand(gh, gw)], dim=-1).reshape(1, gh * gw, 2)
        if cache:
            if len(self._grid_cache) >= 4:
                self._grid_cache.pop(next(iter(self._grid_cache)))
            self._grid_cache[key] = (xs, ys, p)
        return xs, ys, p

    def _similarities(self, src: torch.Tensor, dst: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """Per opening, the least-squares similarity target -> source, ``S(p) = a (p - mu_dst) + mu_src`` in
        complex notation: (a_re B, a_im B, mu_dst Bx2, mu_src Bx2). Mouth: the 20 inner-lip points; eyes: the
        two corners."""
        out = []
        for k in range(self.num_holes):
            idx = self.mouth if k == MOUTH else self.corners[k]
            x, y = dst[:, idx], src[:, idx]
            mx, my = x.mean(dim=1), y.mean(dim=1)
            xc, yc = x - mx[:, None], y - my[:, None]
            den = (xc * xc).sum(dim=(1, 2))
            den = torch.where(den > _EPS, den, torch.ones_like(den))             # exactly 1 for src == dst
            a_re = (xc * yc).sum(dim=(1, 2)) / den
            a_im = (xc[..., 0] * yc[..., 1] - xc[..., 1] * yc[..., 0]).sum(dim=1) / den
            out.append((a_re, a_im, mx, my))
        return out

    def _lid_margin_inset(self, poly_dst: torch.Tensor, poly_src: torch.Tensor,
                          sim: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """An eye's target contour (BxVx2, :data:`~ned_fx.topology.RIGHT_EYE` order: corner, 7 upper-lid
        points, corner, 7 lower) with each lid point moved into the opening by as far as that lid moved over
        the eyeball (the source's lid point against the eyeball's similarity image of the target's), at most
        ``RendererConfig.lid_margin`` x the eye's width and ``0.4`` x the lids' gap there: the eyeball layer is
        laid inside it, so a lowered lid (sad, angry) keeps its lower margin and lashes (the tracked lid often
        runs along the top of the lash band or through it; cut at it, d19's sad lids lost their lash line). A lid
        that did not move over the eyeball, or moved off it (a widened eye), keeps its contour exactly."""
        limit = self.config.lid_margin
        if limit <= 0:
            return poly_dst
        a_re, a_im, mx, my = sim                                                # B, B, Bx2, Bx2
        v = poly_dst.shape[1]
        flat = poly_dst.reshape(-1, 2)
        per = tuple(t.repeat_interleave(v, dim=0) for t in (a_re, a_im, mx, my))
        mapped = (flat + self._sim_offset(per, flat)).reshape(poly_dst.shape)   # S(target) in the source
        mismatch = poly_src - mapped                                            # BxVx2, source pixels
        axis = poly_dst[:, 8] - poly_dst[:, 0]
        width = axis.norm(dim=-1).clamp_min(_EPS)                               # B
        down = torch.stack([-axis[:, 1], axis[:, 0]], dim=-1) / width[:, None]
        lower_mid = poly_dst[:, 12] - poly_dst[:, 4]
        down = down * torch.where(_dot2(lower_mid, down) < 0, -1.0, 1.0)[:, None]   # toward the lower lid
        upper = torch.arange(1, 8, device=poly_dst.device)
        lower = torch.arange(15, 8, -1, device=poly_dst.device)                # facing upper[i]
        gap = _dot2(poly_dst[:, lower] - poly_dst[:, upper], down[:, None]).clamp_min(0.0)   # Bx7
        scale = torch.sqrt(a_re * a_re + a_im * a_im).clamp_min(_EPS)[:, None]  # source px per target px
        cap = torch.minimum(limit * width[:, None], 0.4 * gap)
        # the upper lid over the eyeball: the source's lid point lies above the eyeball's image of the target's
        drop = torch.minimum((-_dot2(mismatch[:, upper], down[:, None]) / scale).clamp_min(0.0), cap)
        rise = torch.minimum((_dot2(mismatch[:, lower], down[:, None]) / scale).clamp_min(0.0), cap)
        out = poly_dst.clone()
        out[:, upper] = poly_dst[:, upper] + drop[..., None] * down[:, None]
        out[:, lower] = poly_dst[:, lower] - rise[..., None] * down[:, None]
        return out

    @staticmethod
    def _sim_offset(sim: tuple[torch.Tensor, ...], p: torch.Tensor) -> torch.Tensor:
        """``S(p) - p`` for points ``p`` (Mx2), parameters already per point (M, M, Mx2, Mx2); exactly zero for
        an identity fit."""
        a_re, a_im, mx, my = sim
        u, v = p[:, 0] - mx[:, 0], p[:, 1] - mx[:, 1]
        dx = (a_re - 1.0) * u - a_im * v + (my[:, 0] - mx[:, 0])
        dy = a_im * u + (a_re - 1.0) * v + (my[:, 1] - mx[:, 1])
        return torch.stack([dx, dy], dim=-1)

    @staticmethod
    def _shepard(pm: torch.Tensor, sa: torch.Tensor, sb: torch.Tensor, va: torch.Tensor, vb: torch.Tensor,
                 fade: torch.Tensor, mine: torch.Tensor) -> torch.Tensor:
        """Shepard interpolation (weights 1/distance^2) of values given linearly along segments, faded out.

        Exact on the segments (so the field is continuous across the contour), zero ``fade`` away from them.

        Args:
            pm: Mx2 cells; sa, sb: MxSx2 segment ends; va, vb: MxSx2 values at the ends; fade: M fade lengths;
                mine: MxS bool, the segments each cell uses.

        Returns:
            Mx2 interpolated values times the fade.
        """
        seg = sb - sa
        rel = pm[:, None, :] - sa
        tau = (_dot2(rel, seg) / _dot2(seg, seg).clamp_min(_EPS)).clamp(0.0, 1.0)             # MxS
        off = rel - tau[..., None] * seg
        dist2 = torch.where(mine, _dot2(off, off), torch.full_like(tau, 1e12))
        weight = 1.0 / (dist2 + 1e-3)
        value = va + tau[..., None] * (vb - va)                                              # MxSx2
        filled = (weight[..., None] * value).sum(1) / weight.sum(1, keepdim=True).clamp_min(1e-30)
        keep = 1.0 - _smoothstep(dist2.amin(dim=1).sqrt() / fade)
        return keep[:, None] * filled

    # ---- the field -----------------------------------------------------------------------------------------
    def field(self, src: torch.Tensor, dst: torch.Tensor, labels: torch.Tensor, height, width,
              triangles: torch.Tensor | None = None, outline: torch.Tensor | None = None) -> FieldResult:
        """The face layer's backward displacement field and the opening layers, on the grid of ``labels``.

        Args:
            src: Bx478x2 (or BxPx2+, P >= 468) source landmarks in region pixels.
            dst: Bx478x2 target landmarks in region pixels.
            labels: BxGhxGw int64 from :func:`~ned_fx.rendering.mesh.rasterize_labels` of ``dst``.
            height: region height H in pixels; width: region width W (ints, or sizes traced from a tensor).
            triangles, outline: the shot's Tx3 triangles and outline vertices (int64) instead of the ones this
                module was built with (a compiled engine takes the mesh as an input; default: the module's own).

        Returns:
            A :class:`FieldResult`.
        """
        src = src[..., :2].to(torch.float32)
        dst = dst[..., :2].to(torch.float32)
        tris = self.triangles if triangles is None else triangles
        outline = self.outline if outline is None else outline
        b, gh, gw = labels.shape
        n = gh * gw
        n_tri = self.num_triangles if triangles is None else tris.shape[0]
        dev = dst.device
        exporting = _exporting()
        one = b == 1 and not exporting                  # one frame: each rule on its own cells, shared tables
        cpu_one = one and dev.type == "cpu"             # ... on the CPU (numpy and OpenCV helpers)
        xs, ys, p = self._grid(gh, gw, height, width, dev, cache=not exporting)
        lab = labels.reshape(b, n)
        disp = src - dst                                                        # BxPx2 at the vertices
        iod = (dst[:, T.EYE_OUTER_RIGHT] - dst[:, T.EYE_OUTER_LEFT]).norm(dim=-1)          # B

        # each cell takes one of three rules (a triangle, outside the mesh, an opening): every rule runs on its own
        # cells only (most of a region lies outside the mesh; a rule computed everywhere costs ~3x)
        flat_lab = lab.reshape(-1)
        # each rule's cells (flat indices, ascending): one CPU frame takes them from numpy (~4x faster)
        if cpu_one:
            lab_np = flat_lab.numpy()
            cells_of = {rule: torch.from_numpy(np.flatnonzero(mask)) for rule, mask in
                        (("tri", (lab_np >= 0) & (lab_np < n_tri)), ("out", lab_np < 0), ("open", lab_np >= n_tri))}
        else:
            cells_of = {"tri": torch.nonzero((flat_lab >= 0) & (flat_lab < n_tri))[:, 0],
                        "out": torch.nonzero(flat_lab < 0)[:, 0],
                        "open": torch.nonzero((lab >= n_tri).reshape(-1))[:, 0]}
        d = torch.zeros(b * n, 2, dtype=torch.float32, device=dev)

        # -- triangles: barycentrics in the target triangle -> same point of the source triangle
        cells = cells_of["tri"]
        bidx = torch.div(cells, n, rounding_mode="floor")
        # (gathers along one axis by index_select: the same values, ~3x faster than advanced indexing on the CPU)
        pm = p[0].index_select(0, cells if one else cells - bidx * n)
        corners = dst[:, tris]                                                  # BxTx3x2
        dv = disp[:, tris]
        a0 = corners[:, :, 0]
        e1, e2 = corners[:, :, 1] - a0, corners[:, :, 2] - a0
        det = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]
        ok = det.abs() > 1e-4
        inv = torch.where(ok, 1.0 / torch.where(ok, det, torch.ones_like(det)), torch.zeros_like(det))
        alpha1 = torch.stack([e2[..., 1], -e2[..., 0]], dim=-1) * inv[..., None]
        alpha2 = torch.stack([-e1[..., 1], e1[..., 0]], dim=-1) * inv[..., None]
        d0 = torch.where(ok[..., None], dv[:, :, 0], dv.mean(dim=2))
        table = torch.cat([a0, alpha1, alpha2, d0, dv[:, :, 1] - dv[:, :, 0], dv[:, :, 2] - dv[:, :, 0]], dim=-1)
        tri_of = flat_lab.index_select(0, cells)
        rows = table.reshape(b * n_tri, 12).index_select(0, tri_of if one else bidx * n_tri + tri_of)  # Mx12
        rel = pm - rows[:, 0:2]
        l1 = _dot2(rel, rows[:, 2:4])
        l2 = _dot2(rel, rows[:, 4:6])
        # labels hold cell centres inside their triangle; should one lie outside (a folded or degenerate target
        # triangle) it takes the triangle's nearest point: barycentrics clamped to >= 0 and renormalised
        l0 = (1.0 - l1 - l2).clamp_min(0.0)
        l1, l2 = l1.clamp_min(0.0), l2.clamp_min(0.0)
        total = l0 + l1 + l2
        l1, l2 = l1 / total, l2 / total
        d = _put(d, cells, rows[:, 6:8] + l1[:, None] * rows[:, 8:10] + l2[:, None] * rows[:, 10:12], one)

        # -- outside the mesh: Shepard from the outline's vertices (matrix products, in IOD units so squared
        # distances stay accurate in float32), faded to zero over `falloff` IODs
        scale = 1.0 / (iod[:, None, None] + _EPS)
        centre = dst[:, outline].mean(dim=1, keepdim=True)
        q = (dst[:, outline] - centre) * scale                                  # BxVx2
        if one:
            cells = cells_of["out"]                                             # one frame: only its cells
            pq = (p.index_select(1, cells) - centre) * scale                    # 1xMx2
        else:                                                                   # a batch: every cell
            cells = None
            pq = (p - centre) * scale                                           # BxNx2
        # |p|^2 + |q|^2 - 2 p.q, in place where the graph allows it (the same values: one frame adds the product
        # of -2 p and q, exactly -2 times p.q in float32, into the sums as the product is made; both of its
        # products were checked bit for bit against the batched ones: tests/test_rendering.py)
        dist2 = _dot2(pq, pq)[..., None] + _dot2(q, q)[:, None, :]
        if cells is None:
            cross = torch.bmm(pq, q.transpose(1, 2))                            # BxMxV
            dist2 = (dist2 - 2.0 * cross).clamp_min(0.0)
            weight = 1.0 / (dist2 + 1e-8)
        else:
            dist2.baddbmm_(pq * -2.0, q.transpose(1, 2)).clamp_min_(0.0)
        keep = 1.0 - _smoothstep(dist2.amin(dim=-1).sqrt() / self.config.falloff)
        if cells is None:
            d_out = torch.bmm(weight, disp[:, outline])
        else:   # the weights in place; the same products as the transposed product (2 x M: MKL's sgemm is ~2.5x
            weight = dist2.add_(1e-8).reciprocal_()     # faster that way round)
            d_out = torch.bmm(disp[:, outline].transpose(1, 2), weight.transpose(1, 2)).transpose(1, 2)
        d_out = d_out / weight.sum(-1, keepdim=True)
        if cells is None:
            cells = cells_of["out"]
            d_out, keep = d_out.reshape(b * n, 2)[cells], keep.reshape(b * n)[cells]
        else:
            d_out, keep = d_out[0], keep[0]
        d = _put(d, cells, keep[:, None] * d_out, one)

        # -- openings: similarity + the contour mismatch (Shepard from that opening's segments), faded out
        sims = self._similarities(src, dst)
        # each similarity parameter for every opening at once (BxK, BxKx2): one computation for all segments and
        # cells, each with its own opening's parameters (the same values as opening by opening)
        sim_all = tuple(torch.stack([sim[i] for sim in sims], dim=1) for i in range(4))
        sa, sb = dst[:, self.seg_a], dst[:, self.seg_b]                         # BxSx2
        owner = self.seg_owner
        seg_sim = tuple(t[:, owner].reshape(-1, *t.shape[2:]) for t in sim_all)   # B*S (x2)
        va = disp[:, self.seg_a] - self._sim_offset(seg_sim, sa.reshape(-1, 2)).reshape(b, -1, 2)
        vb = disp[:, self.seg_b] - self._sim_offset(seg_sim, sb.reshape(-1, 2)).reshape(b, -1, 2)
        holes = torch.arange(self.num_holes, device=dev)
        seg_worst = torch.maximum(va.norm(dim=-1), vb.norm(dim=-1))            # BxS
        worst = torch.where(owner[:, None] == holes, seg_worst[..., None],
                            torch.zeros_like(seg_worst[..., None])).amax(dim=1)   # BxK: each opening's own
        ends = dst[:, self.corners]                                             # BxKx2x2
        width = (ends[:, :, 1] - ends[:, :, 0]).norm(dim=-1)                    # BxK
        # the band: a fraction of the opening, and wide enough not to fold; a mouth whose interior follows the
        # lips takes the contour's mismatch all the way in
        fade_len = torch.maximum(self.config.hole_band * width, self.config.fold_guard * worst) + _EPS
        if self._follow:
            fade_len = fade_len * (1.0 + (1e4 - 1.0) * (holes == MOUTH).to(torch.float32))
        flat = cells_of["open"]                                                 # the opening cells
        bidx = torch.div(flat, n, rounding_mode="floor")
        pm = p[0].index_select(0, flat - bidx * n)
        rm = lab.reshape(-1)[flat] - n_tri
        if cpu_one:
            open_cells, open_hole = flat.numpy(), rm.numpy()
        base = self._sim_offset(tuple(t[bidx, rm] for t in sim_all), pm)
        # one frame: every cell shares the frame's segments (broadcast, not copied per cell: the same values)
        ends = (sa, sb, va, vb) if one else (sa[bidx], sb[bidx], va[bidx], vb[bidx])
        mismatch = self._shepard(pm, *ends, torch.gather(fade_len[bidx], 1, rm[:, None])[:, 0],
                                 owner[None, :] == rm[:, None])
        d = _put(d, flat, base + mismatch, one).reshape(b, n, 2)

        # -- the opening layers (mouth, eyes): rigid through their similarity, on the cells in or next to them
        cell = torch.stack([xs[1] - xs[0], ys[1] - ys[0]])                     # cell size (traced, not baked)
        cell_mean = 0.5 * (cell[0] + cell[1])
        zeros = torch.zeros(b * n, dtype=torch.float32, device=dev)
        covers, fill = [], zeros
        a_re, a_im, mx, my = sim_all                                            # every opening at once
        affine = torch.stack([
            torch.stack([a_re, -a_im, my[..., 0] - a_re * mx[..., 0] + a_im * mx[..., 1]], dim=-1),
            torch.stack([a_im, a_re, my[..., 1] - a_im * mx[..., 0] - a_re * mx[..., 1]], dim=-1)], dim=2)  # BxKx2x3
        for k in range(self.num_holes):
            flat = _grown_cells_cpu(open_cells[open_hole == k], gh, gw) if cpu_one else \
                _grown_cells(lab == n_tri + k, b, gh, gw)
            bidx = torch.div(flat, n, rounding_mode="floor")
            pm = p[0].index_select(0, flat - bidx * n)
            contour = getattr(self, f"hole{k}")
            poly_dst, poly_src = dst[:, contour], src[:, contour]              # BxVx2
            # an eye's eyeball layer starts below a lid that moved over it by the lid margin's own depth: the
            # face layer shows the margin (its lashes) there, carried with the lid
            poly_cov = poly_dst if k == MOUTH else self._lid_margin_inset(poly_dst, poly_src, sims[k])
            if not one:                                                         # MxVx2 (1xVx2: broadcast)
                poly_dst, poly_src, poly_cov = poly_dst[bidx], poly_src[bidx], poly_cov[bidx]
            offsets = self.subsamples * cell                                   # Kx2
            if cpu_one:
                cover = torch.from_numpy(_coverage_cpu(xs.numpy(), ys.numpy(), flat.numpy(), offsets.numpy(),
                                                       poly_cov[0].numpy()))
            else:
                cover = _inside_polygon(pm[:, None, :] + offsets[None], poly_cov).to(torch.float32).mean(dim=1)
            depth = None                        # cells deep into the source opening (< 0: outside it)
            if k != MOUTH or (self.config.mouth_fill and not self._follow):
                sm = pm + self._sim_offset(tuple(t[bidx] for t in sims[k]), pm)    # the similarity's points
                inside = torch.from_numpy(polygon_contains(poly_src[0].numpy(), sm.numpy())) if cpu_one else \
                    _inside_polygon(sm[:, None], poly_src)[:, 0]
                dist = _polygon_distance(sm, poly_src) / cell_mean
                depth = torch.where(inside, dist, -dist)
            if k == MOUTH:
                # faded in with the contour mismatch: an unchanged or merely moved mouth gets no fill at all
                strength = _smoothstep(worst[:, MOUTH] / cell_mean)[bidx]
                # full fill outside the source opening and along its rim (a seam-thin opening has no interior
                # to show), none from 1.5 cells inside it
                if self.config.mouth_fill and self._follow:
                    # the interior follows the lips, so only a seam-thin source opening (a closed mouth) has no
                    # interior to show: fill fully at <= 1 cell of opening, not at all from 3 cells
                    # and only where the target opens it (a thin mouth kept thin shows its own lips)
                    gap = (src[:, T.MOUTH_UPPER_INNER] - src[:, T.MOUTH_LOWER_INNER]).norm(dim=-1) / cell_mean
                    gap_dst = (dst[:, T.MOUTH_UPPER_INNER] - dst[:, T.MOUTH_LOWER_INNER]).norm(dim=-1) / cell_mean
                    thin = (1.0 - _smoothstep((gap - 1.0) / 2.0)) * _smoothstep((gap_dst - gap) / 2.0)
                    fill = zeros.index_put((flat,), strength * thin[bidx])
                elif self.config.mouth_fill:
                    fill = zeros.index_put((flat,), strength * (1.0 - _smoothstep(depth - 0.5)))
            else:
                # an eye shows its rigid eyeball only where the source showed it; eyeball a raised lid reveals
                # comes from the face layer (the band's stretch, continuous with the lid)
                cover = cover * _smoothstep(depth + 0.5)
            covers.append(zeros.index_put((flat,), cover))
        return FieldResult(d.permute(0, 2, 1).reshape(b, 2, gh, gw),
                           torch.stack([c.reshape(b, gh, gw) for c in covers], dim=1),
                           fill.reshape(b, 1, gh, gw), affine)

    def fill_colour(self, images: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        """The dark mouth-interior colour of each source image: BxC.

        The mean of the ``mouth_fill_samples`` darkest samples (by channel mean) among the inner-lip contour
        points and the midpoints of facing upper/lower inner-lip points, times ``mouth_fill_gain``.
        """
        _, _, h, w = images.shape
        src = src[..., :2].to(images.dtype)
        pts = (src[:, self.fill_a] + src[:, self.fill_b]) / 2                 # BxKx2
        grid = torch.stack([pts[..., 0] * (2.0 / w) - 1.0, pts[..., 1] * (2.0 / h) - 1.0], dim=-1)[:, None]
        samples = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0]
        k = self.config.mouth_fill_samples
        _, idx = torch.topk(samples.mean(dim=1), k, dim=1, largest=False)
        picked = torch.gather(samples, 2, idx[:, None, :].expand(-1, samples.shape[1], k))
        return picked.mean(dim=2) * self.config.mouth_fill_gain

    def forward(self, images: torch.Tensor, src: torch.Tensor, dst: torch.Tensor,
                labels: torch.Tensor, triangles: torch.Tensor | None = None,
                outline: torch.Tensor | None = None) -> torch.Tensor:
        """Render a batch of face regions.

        Args:
            images: BxCxHxW float32 source regions (the plate's values, any channels).
            src: Bx478x2 source landmarks in region pixels ((0,0) = top-left corner of the top-left pixel).
            dst: Bx478x2 target landmarks in region pixels.
            labels: BxGhxGw int64 label maps of ``dst`` (:func:`~ned_fx.rendering.mesh.rasterize_labels`;
                rasterisation runs on the CPU and is not part of the exported graph).
            triangles, outline: the shot's mesh as tensors (see :meth:`field`); default the module's own.

        Returns:
            BxCxHxW rendered regions.
        """
        _, _, h, w = images.shape
        res = self.field(src, dst, labels, h, w, triangles, outline)
        d = F.interpolate(res.offset, size=(h, w), mode="bilinear", align_corners=False)
        xs = torch.arange(w, dtype=images.dtype, device=images.device) + 0.5
        ys = torch.arange(h, dtype=images.dtype, device=images.device) + 0.5
        gx = (xs[None, None, :] + d[:, 0]) * (2.0 / w) - 1.0
        gy = (ys[None, :, None] + d[:, 1]) * (2.0 / h) - 1.0
        out = F.grid_sample(images, torch.stack([gx, gy], dim=-1), mode=self.mode, padding_mode="border",
                            align_corners=False)
        # the opening layers, each sampled through its similarity; the mouth's dark fill where the source has
        # no interior to show
        fill = F.interpolate(res.mouth_fill, size=(h, w), mode="bilinear", align_corners=False)
        cover = F.interpolate(res.cover, size=(h, w), mode="bilinear", align_corners=False)
        colour = self.fill_colour(images, src)[:, :, None, None]
        for k in range(self.num_holes):
            if k == MOUTH and self._follow:     # the face layer already shows the interior; add the fill only
                out = out + cover[:, k:k + 1] * fill * (colour - out)
                continue
            a = res.affine[:, k, :, :, None, None]
            sx = a[:, 0, 0] * xs[None, None, :] + a[:, 0, 1] * ys[None, :, None] + a[:, 0, 2]
            sy = a[:, 1, 0] * xs[None, None, :] + a[:, 1, 1] * ys[None, :, None] + a[:, 1, 2]
            layer = F.grid_sample(images, torch.stack([sx * (2.0 / w) - 1.0, sy * (2.0 / h) - 1.0], dim=-1),
                                  mode=self.mode, padding_mode="border", align_corners=False)
            if k == MOUTH:
                layer = layer + fill * (colour - layer)
            out = out + cover[:, k:k + 1] * (layer - out)
        return out


def _as_region(region) -> np.ndarray:
    """A plate crop as an HxWxC float32 array of at least 2x2 pixels (the renderers' one check).

    Raises:
        InvalidParameterError: another shape or dtype, or a smaller crop.
    """
    arr = np.asarray(region)
    if arr.ndim != 3 or arr.dtype != np.float32:
        raise InvalidParameterError(f"region must be an HxWxC float32 array, got shape {arr.shape} and dtype "
                                    f"{arr.dtype}; convert the plate crop with .astype(np.float32)")
    if min(arr.shape[:2]) < 2:
        raise InvalidParameterError(f"region must be at least 2x2 pixels, got {arr.shape[1]}x{arr.shape[0]}")
    return arr


def _as_points(points, what: str) -> np.ndarray:
    pts = np.asarray(points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else points,
                     dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < T.NUM_MESH or pts.shape[1] < 2:
        raise InvalidParameterError(f"{what} must be Px2 or Px3 landmarks (P >= {T.NUM_MESH}) in region pixels, "
                                    f"got shape {pts.shape}")
    return pts


class GeometryRenderer:
    """Per-frame entry point of the geometry renderer (CPU fast path with OpenCV resampling; torch for tensors).

    Usage (per shot, then per frame; ``src``/``dst`` are 478x3 tracker-convention landmarks in plate pixels)::

        renderer = GeometryRenderer(RendererConfig())
        mesh = build_render_mesh(track.mean_shape)                     # once per shot
        box = face_region_box(np.concatenate([src, dst]), width, height)
        region = extract_region(plate, box)          # ned_fx.compositing: colour channels, float32, plate values
        offset = np.array([box[0], box[1], 0.0])
        rendered = renderer.render(region, src - offset, dst - offset, mesh)

    Args:
        config: a :class:`RendererConfig` (defaults when None).
    """

    def __init__(self, config: RendererConfig | None = None):
        self.config = config or RendererConfig()
        self.device = torch.device(self.config.device)
        self._given = None                       # the mesh argument last seen, its RenderMesh and modules
        self._mesh: RenderMesh | None = None
        self._module: GeometryRendererModule | None = None
        self._cpu_module: GeometryRendererModule | None = None

    def _resolve(self, mesh) -> RenderMesh:
        if self._module is None or mesh is not self._given:
            resolved = mesh if isinstance(mesh, RenderMesh) else RenderMesh.from_triangles(mesh)
            cpu = GeometryRendererModule(resolved, self.config).eval()
            # the per-frame OpenCV path computes its (small) field on the CPU whatever the device
            self._cpu_module = cpu
            self._module = cpu if self.device.type == "cpu" else \
                GeometryRendererModule(resolved, self.config).to(self.device).eval()
            self._given, self._mesh = mesh, resolved
        return self._mesh

    def module(self, mesh) -> GeometryRendererModule:
        """The batched torch module for ``mesh`` (a RenderMesh or Tx3 triangles; cached per mesh object)."""
        self._resolve(mesh)
        return self._module

    def labels(self, dst: np.ndarray, mesh, height: int, width: int) -> np.ndarray:
        """The label map of target ``dst`` (Px2/Px3, region pixels) on this config's field grid: GhxGw int64."""
        grid = field_grid_size(height, width, self.config.field_cells)
        return rasterize_labels(dst, self._resolve(mesh), (height, width), grid)

    @torch.no_grad()
    def field(self, region_shape: tuple[int, int], src, dst, mesh) -> FieldResult:
        """The coarse field of one frame (batch of 1; for inspection, tests and custom resampling).

        Args:
            region_shape: (H, W) of the region; src, dst: Px2/Px3 landmarks in region pixels; mesh: RenderMesh.

        Returns:
            A :class:`FieldResult` with B = 1 (CPU tensors).
        """
        h, w = region_shape
        src, dst = _as_points(src, "src"), _as_points(dst, "dst")
        labels = torch.from_numpy(self.labels(dst, mesh, h, w))[None]
        with torch.inference_mode():                    # less per-operation bookkeeping (~5 % of the field)
            return self._cpu_module.field(torch.as_tensor(src[None, :, :2], dtype=torch.float32),
                                          torch.as_tensor(dst[None, :, :2], dtype=torch.float32), labels, h, w)

    @torch.no_grad()
    def render(self, region, src, dst, mesh):
        """Warp a face region from the source landmarks to the target landmarks.

        Args:
            region: HxWxC float32 numpy array (the plate's crop around the face in the plate's own values;
                any number of channels), or an HxWxC torch tensor (then the torch module runs, on its device).
            src: Px2 or Px3 source landmarks (P >= 468, the tracked face) in REGION pixels
                ((0,0) = top-left corner of the region's top-left pixel).
            dst: Px2 or Px3 target landmarks in region pixels. A z column (tracker convention) orders
                overlapping triangles far-to-near.
            mesh: the shot's :class:`~ned_fx.rendering.mesh.RenderMesh` (or a Tx3 triangle array).

        Returns:
            The rendered region: same type, shape and dtype (float32) as ``region``.

        Raises:
            InvalidParameterError: wrong shapes/dtypes. NoFaceError: NaN landmarks.
        """
        src, dst = _as_points(src, "src"), _as_points(dst, "dst")
        if isinstance(region, torch.Tensor):
            if region.ndim != 3:
                raise InvalidParameterError(f"region must be HxWxC, got shape {tuple(region.shape)}")
            images = region.permute(2, 0, 1)[None].to(self.device, torch.float32)
            out = self.render_batch(images, src[None], dst[None], mesh)
            return out[0].permute(1, 2, 0).to(region.device, region.dtype)
        return self._render_cv2(_as_region(region), src, dst, mesh)

    @torch.no_grad()
    def render_batch(self, images: torch.Tensor, src, dst, mesh) -> torch.Tensor:
        """Render a batch with the torch module (GPU-friendly; labels rasterised on the CPU).

        Args:
            images: BxCxHxW float32 tensor of face regions (all the same size).
            src: BxPx2(+) source landmarks in region pixels (array or tensor); dst: the targets, same shape.
            mesh: the shot's RenderMesh.

        Returns:
            BxCxHxW rendered regions, on the renderer's device.
        """
        module = self.module(mesh)
        _, _, h, w = images.shape
        src = np.asarray(src.cpu() if isinstance(src, torch.Tensor) else src, dtype=np.float64)
        dst = np.asarray(dst.cpu() if isinstance(dst, torch.Tensor) else dst, dtype=np.float64)
        if src.ndim != 3 or dst.shape != src.shape or src.shape[0] != images.shape[0]:
            raise InvalidParameterError(f"src and dst must be BxPx2 with B = {images.shape[0]}, got "
                                        f"{src.shape} and {dst.shape}")
        labels = np.stack([self.labels(dst[i], mesh, h, w) for i in range(len(dst))])
        dev = self.device
        images = images.to(dev, torch.float32)
        return module(images, torch.as_tensor(src[..., :2], dtype=torch.float32, device=dev),
                      torch.as_tensor(dst[..., :2], dtype=torch.float32, device=dev),
                      torch.from_numpy(labels).to(dev))

    def _render_cv2(self, region: np.ndarray, src: np.ndarray, dst: np.ndarray, mesh) -> np.ndarray:
        import cv2

        h, w, c = region.shape
        self._resolve(mesh)
        module = self._cpu_module
        labels = torch.from_numpy(self.labels(dst, mesh, h, w))[None]
        src_t = torch.as_tensor(src[None, :, :2], dtype=torch.float32)
        with torch.inference_mode():                    # less per-operation bookkeeping (~5 % of the field)
            res = module.field(src_t, torch.as_tensor(dst[None, :, :2], dtype=torch.float32), labels, h, w)
        gh, gw = labels.shape[1:]
        flow = cv2.resize(res.offset[0].permute(1, 2, 0).numpy(), (w, h), interpolation=cv2.INTER_LINEAR)
        fine = self._refined(module, src, dst, h, w, gh, gw)
        if fine is not None:                        # a finer field around a far-bent mouth, feathered in
            x0, y0, x1, y1 = fine.box
            sub = flow[y0:y1, x0:x1]
            sub += fine.ramp[..., None] * (fine.offset - sub)
        map_x = flow[..., 0] + np.arange(w, dtype=np.float32)[None, :]
        map_y = flow[..., 1] + np.arange(h, dtype=np.float32)[:, None]
        interp = cv2.INTER_CUBIC if self.config.interpolation == "bicubic" else cv2.INTER_LINEAR
        out = _remap(region, map_x, map_y, interp)
        fill = res.mouth_fill[0, 0].numpy()
        colour = None
        for k in range(res.cover.shape[1]):
            cover = res.cover[0, k].numpy()
            # the layer, only over the (small) box where it shows (the covered cells' box)
            c0, r0, nc, nr = cv2.boundingRect((cover > 0).view(np.uint8))
            mine = fine if fine is not None and fine.cover[k].any() else None
            if nc == 0 and mine is None:
                continue
            sx, sy = gw / w, gh / h
            if nc:
                x0, x1 = max(0, int((c0 - 1) / sx)), min(w, int(np.ceil((c0 + nc - 1 + 2) / sx)))
                y0, y1 = max(0, int((r0 - 1) / sy)), min(h, int(np.ceil((r0 + nr - 1 + 2) / sy)))
            else:
                x0, y0, x1, y1 = w, h, 0, 0
            if mine is not None:
                b = mine.box
                x0, y0, x1, y1 = min(x0, b[0]), min(y0, b[1]), max(x1, b[2]), max(y1, b[3])
            size = (x1 - x0, y1 - y0)
            to_grid = np.array([[sx, 0, (x0 + 0.5) * sx - 0.5], [0, sy, (y0 + 0.5) * sy - 0.5]])
            a = res.affine[0, k].numpy().astype(np.float64)    # continuous coords; OpenCV's centres are at +0
            to_src = np.array([[a[0, 0], a[0, 1], a[0, 0] * (x0 + 0.5) + a[0, 1] * (y0 + 0.5) + a[0, 2] - 0.5],
                               [a[1, 0], a[1, 1], a[1, 0] * (x0 + 0.5) + a[1, 1] * (y0 + 0.5) + a[1, 2] - 0.5]])
            if k == MOUTH and module._follow:
                layer = out[y0:y1, x0:x1].copy()           # the interior follows the lips (face layer)
            else:
                layer = _warp_affine(region, to_src, size, interp).reshape(size[1], size[0], c)
            fine_fill = mine.fill if mine is not None else None
            if k == MOUTH and (fill.any() or fine_fill is not None):
                if colour is None:
                    images = torch.from_numpy(region).permute(2, 0, 1)[None]    # a view (no copy of the region)
                    colour = module.fill_colour(images, src_t)[0].numpy().astype(np.float32)
                layer += _overlay(_upsample(fill, to_grid, size), mine, fine_fill, x0, y0) * (colour - layer)
            box = out[y0:y1, x0:x1]
            box += _overlay(_upsample(cover, to_grid, size), mine, None if mine is None else mine.cover[k], x0, y0) \
                * (layer - box)
        return out

    def _refined(self, module: GeometryRendererModule, src: np.ndarray, dst: np.ndarray, h: int, w: int, gh: int,
                 gw: int) -> "_Fine | None":
        """The finer field around the mouth where its inner contour bends against the source by at least one
        coarse cell and the coarse cell is larger than ``RendererConfig.refine_above_px`` (see there); None
        where it is not refined. The eyes are not: their sub-stage paints the new eye at native resolution."""
        import cv2

        cfg = self.config
        cell = max(h / gh, w / gw)
        if cfg.refine_above_px <= 0 or cell <= cfg.refine_above_px:
            return None
        idx = list(self._mesh.holes[MOUTH])
        moved = dst[idx, :2] - src[idx, :2]
        if not np.isfinite(moved).all() or np.linalg.norm(moved - np.median(moved, axis=0), axis=1).max() < cell:
            return None
        margin = cfg.refine_margin * cell
        lo = np.floor(dst[idx, :2].min(axis=0) - margin).astype(int)
        hi = np.ceil(dst[idx, :2].max(axis=0) + margin).astype(int)
        x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
        x1, y1 = min(int(hi[0]), w), min(int(hi[1]), h)
        bh, bw = y1 - y0, x1 - x0
        if bh < 4 or bw < 4:
            return None
        fine_cell = max(cfg.refine_cell_px, float(np.sqrt(bh * bw / cfg.refine_max_cells)))
        grid = field_grid_size(bh, bw, int(np.ceil(max(bh, bw) / fine_cell)))
        shift = np.array([x0, y0], np.float64)
        sd = dst.copy()
        sd[:, :2] -= shift
        labels = torch.from_numpy(rasterize_labels(sd, self._mesh, (bh, bw), grid))[None]
        with torch.inference_mode():
            res = module.field(torch.as_tensor(src[None, :, :2] - shift, dtype=torch.float32),
                               torch.as_tensor(sd[None, :, :2], dtype=torch.float32), labels, bh, bw)
        size = (bw, bh)

        def native(grid_map: torch.Tensor) -> np.ndarray:
            return cv2.resize(grid_map.numpy(), size, interpolation=cv2.INTER_LINEAR)

        fill = res.mouth_fill[0, 0]
        feather = 2.0 * cell
        ry = np.minimum(np.arange(bh) + 0.5, bh - 0.5 - np.arange(bh)) / feather
        rx = np.minimum(np.arange(bw) + 0.5, bw - 0.5 - np.arange(bw)) / feather
        ramp = np.minimum(np.clip(ry, 0, 1)[:, None], np.clip(rx, 0, 1)[None, :]).astype(np.float32)
        return _Fine((x0, y0, x1, y1), native(res.offset[0].permute(1, 2, 0)),
                     np.stack([native(res.cover[0, j]) for j in range(res.cover.shape[1])]),
                     native(fill) if bool(fill.any()) else None, ramp)


class _Fine(NamedTuple):
    """The refined box (region pixels x0, y0, x1, y1) and its maps at native resolution: offset hxwx2, cover
    3xhxw, mouth fill hxw (None: none), and its feathering weight hxw (1 inside, 0 at its edges)."""

    box: tuple[int, int, int, int]
    offset: np.ndarray
    cover: np.ndarray
    fill: np.ndarray | None
    ramp: np.ndarray


def _overlay(coarse: np.ndarray, fine: "_Fine | None", values: np.ndarray | None, x0: int, y0: int) -> np.ndarray:
    """``coarse`` (hxwx1, a layer's box at region offset x0, y0) with the refined box's ``values`` (one of its
    maps) feathered in; as it is without them."""
    if fine is not None and values is not None:
        bx0, by0, bx1, by1 = fine.box
        sub = coarse[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0, 0]
        sub += fine.ramp * (values - sub)
    return coarse


def _upsample(grid_map: np.ndarray, to_grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A block of a coarse grid map at region resolution (bilinear, as the full-region upsampling): hxwx1."""
    import cv2

    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(grid_map, to_grid, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)[..., None]


def _remap(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, interp: int) -> np.ndarray:
    import cv2

    h, w, c = image.shape
    if c <= 4:
        return cv2.remap(image, map_x, map_y, interp, borderMode=cv2.BORDER_REPLICATE).reshape(h, w, c)
    return np.concatenate([cv2.remap(np.ascontiguousarray(image[..., i:i + 4]), map_x, map_y, interp,
                                     borderMode=cv2.BORDER_REPLICATE).reshape(h, w, -1) for i in range(0, c, 4)],
                          axis=2)


def _warp_affine(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], interp: int) -> np.ndarray:
    import cv2

    flags = interp | cv2.WARP_INVERSE_MAP
    c = image.shape[2]
    if c <= 4:
        return cv2.warpAffine(image, matrix, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return np.concatenate([cv2.warpAffine(np.ascontiguousarray(image[..., i:i + 4]), matrix, size, flags=flags,
                                          borderMode=cv2.BORDER_REPLICATE).reshape(size[1], size[0], -1)
                           for i in range(0, c, 4)], axis=2)
