"""The geometry renderer's batched torch module (:class:`GeometryRendererModule`): the field and the warp as one
graph, exportable to ONNX (opset 18) with the label map as an input -- TensorRT engines, a batch on a GPU, the
fast path. What it computes is described in :mod:`ned_fx.rendering.geometry_renderer`; one frame on the CPU is
computed in numpy instead (:func:`~ned_fx.rendering.field.one_frame_field`, the same arithmetic).
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import topology as T
from .config import RendererConfig
from .field import FieldTables
from .mesh import MOUTH, RenderMesh

_EPS = 1e-6


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
    past the grid's edge): max pooling."""
    grown = F.max_pool2d(mask.to(torch.float32).reshape(b, 1, gh, gw), 3, stride=1, padding=1)
    return torch.nonzero(grown.reshape(-1) > 0)[:, 0]


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
        tables = FieldTables.build(mesh)                # (raises for a mesh without the three openings)
        self.num_triangles = int(tables.triangles.shape[0])
        self.num_holes = len(tables.holes)
        as_t = torch.as_tensor
        self.register_buffer("triangles", as_t(tables.triangles), persistent=False)
        self.register_buffer("seg_a", as_t(tables.seg_a), persistent=False)
        self.register_buffer("seg_b", as_t(tables.seg_b), persistent=False)
        self.register_buffer("seg_owner", as_t(tables.seg_owner), persistent=False)
        self.register_buffer("outline", as_t(tables.outline), persistent=False)
        self.register_buffer("mouth", as_t(tables.mouth), persistent=False)
        for k, contour in enumerate(tables.holes):
            self.register_buffer(f"hole{k}", as_t(contour), persistent=False)
        self.register_buffer("corners", as_t(tables.corners), persistent=False)
        self.register_buffer("fill_a", as_t(tables.fill_a), persistent=False)
        self.register_buffer("fill_b", as_t(tables.fill_b), persistent=False)
        self.register_buffer("subsamples", as_t(tables.subsamples.copy()), persistent=False)
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
        xs, ys, p = self._grid(gh, gw, height, width, dev, cache=not exporting)
        lab = labels.reshape(b, n)
        disp = src - dst                                                        # BxPx2 at the vertices
        iod = (dst[:, T.EYE_OUTER_RIGHT] - dst[:, T.EYE_OUTER_LEFT]).norm(dim=-1)          # B

        # each cell takes one of three rules (a triangle, outside the mesh, an opening): every rule runs on its own
        # cells only (most of a region lies outside the mesh; a rule computed everywhere costs ~3x)
        flat_lab = lab.reshape(-1)
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
            flat = _grown_cells(lab == n_tri + k, b, gh, gw)
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
            cover = _inside_polygon(pm[:, None, :] + offsets[None], poly_cov).to(torch.float32).mean(dim=1)
            depth = None                        # cells deep into the source opening (< 0: outside it)
            if k != MOUTH or (self.config.mouth_fill and not self._follow):
                sm = pm + self._sim_offset(tuple(t[bidx] for t in sims[k]), pm)    # the similarity's points
                inside = _inside_polygon(sm[:, None], poly_src)[:, 0]
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
