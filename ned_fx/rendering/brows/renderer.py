"""BrowRenderer: the strip between a raised brow and the lash band, re-rendered with the brow's fringe rigid."""

from __future__ import annotations

import functools

import numpy as np

from ..layers import RegionInputs, RenderedLayer
from ..sampling import remap_points
from ..sampling import smoothstep as _smoothstep
from .config import BrowConfig

#: Per brow (right, left): the brow's lower edge and the lash band's outer ring (the ring that rides on the lid
#: margin), each from the brow's tail (outer end) to its head (inner end).
BROW_STRIPS = (((46, 53, 52, 65, 55), (113, 225, 224, 223, 222, 221, 189)),
               ((276, 283, 282, 295, 285), (342, 445, 444, 443, 442, 441, 413)))


@functools.lru_cache(maxsize=8)
def _strip_triangles(columns: int) -> tuple[np.ndarray, np.ndarray]:
    """(column, row) indices into a strip's Cx3 vertices of its triangles, each Tx3 (T = 4 (C - 1))."""
    cols, rows = [], []
    for k in range(columns - 1):
        for j in range(2):
            a, b, c, d = (k, j), (k + 1, j), (k + 1, j + 1), (k, j + 1)
            for tri in ((a, b, c), (a, c, d)):
                cols.append([p[0] for p in tri])
                rows.append([p[1] for p in tri])
    return np.array(cols), np.array(rows)


def _resample(poly: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length along a polyline (Mx2)."""
    d = poly[1:] - poly[:-1]
    sq = d * d                              # np.linalg.norm(axis=1): the sum of squares in its order
    s = np.empty(len(poly))
    s[0] = 0.0
    np.cumsum(np.sqrt(sq[:, 0] + sq[:, 1]), out=s[1:])
    t = np.linspace(0.0, s[-1], n) if s[-1] > 0 else np.zeros(n)
    out = np.empty((n, 2))
    out[:, 0] = np.interp(t, s, poly[:, 0])
    out[:, 1] = np.interp(t, s, poly[:, 1])
    return out


@functools.lru_cache(maxsize=8)
def _columns(n: int, fringe: float, end_feather: float) -> tuple[np.ndarray, np.ndarray]:
    """Per strip column (C = n): the source fractions of its three vertices (C x 3) and the coverage fade at the
    brow's ends (C); the same for every frame."""
    f_s = np.stack([np.zeros(n), np.full(n, fringe), np.ones(n)], axis=1)
    u = np.linspace(0.0, 1.0, n)
    ends = _smoothstep(u / max(end_feather, 1e-6)) * _smoothstep((1.0 - u) / max(end_feather, 1e-6))
    f_s.setflags(write=False)
    ends.setflags(write=False)
    return f_s, ends


def _up(points: np.ndarray) -> np.ndarray:
    """The face's up direction (chin -> forehead), a unit 2-vector."""
    up = points[10, :2] - points[152, :2]
    return up / max(float(np.linalg.norm(up)), 1e-9)


def _block_mean(sub: np.ndarray, ss: int) -> np.ndarray:
    """The mean of each ``ss`` x ``ss`` block of ``sub`` (float64, whole blocks, at least 2 x 2 of them), bit for
    bit numpy's ``sub.reshape(h, ss, w, ss).mean(axis=(1, 3))`` (each sub-row's ``ss`` values summed in order,
    the sub-rows accumulated in order: numpy's order for these shapes) without its slow multi-axis reduction."""
    h, w = sub.shape[0] // ss, sub.shape[1] // ss
    blocks = sub.reshape(h, ss, w, ss)
    acc = None
    for k in range(ss):
        row = blocks[:, k, :, 0] + blocks[:, k, :, 1]
        for j in range(2, ss):
            row += blocks[:, k, :, j]
        if acc is None:
            acc = row
        else:
            acc += row
    acc /= ss * ss
    return acc


def _signed(labels: np.ndarray, small: bool) -> np.ndarray:
    """Labels as int32 with -1 where no triangle is (a byte label map marks that 255); a new array."""
    if not small:
        return labels.astype(np.int32)
    out = labels.astype(np.int32)
    out[labels == 255] = -1
    return out


def _smooth_unfolded(patch: np.ndarray, centre: np.ndarray, v_t: np.ndarray, v_s: np.ndarray,
                     weight: np.ndarray) -> None:
    """Blur the strip's stretched part (below the fringe) along the brow, in place, as far as it is drawn out
    across it: a band of a few source rows stretched several times comes out as vertical streaks (each hair tip,
    pore or crease drawn down the new lid skin); blurred alike in both directions it reads as skin."""
    import cv2

    drawn = np.linalg.norm(v_t[:, 2] - v_t[:, 1], axis=1) / np.maximum(np.linalg.norm(v_s[:, 2] - v_s[:, 1], axis=1),
                                                                       1e-6)
    mag = float(drawn[weight > 0.5].max()) if (weight > 0.5).any() else 1.0
    if mag < 1.5:
        return
    k = min(2 * int(mag) + 1, 21)
    lower = (centre >= 0) & (centre % 4 >= 2)           # the quads below the fringe (_strip_triangles' order)
    if lower.any():
        # a blur of those quads' own pixels only (normalised): the pixels beside the strip hold whatever the
        # nearest triangle's map reached (the brow's hair, the lash line), and mixed in they drew a thin dark arc
        # along the strip's curved lower edge on the new lid skin
        inside = lower.astype(np.float32)
        total = cv2.blur(patch * inside[..., None], (k, 1), borderType=cv2.BORDER_REPLICATE).reshape(patch.shape)
        share = cv2.blur(inside, (k, 1), borderType=cv2.BORDER_REPLICATE)
        np.copyto(patch, total / np.maximum(share, 1e-6)[..., None], where=lower[..., None])


class BrowRenderer:
    """Per frame: a layer over the strip under each brow wherever the target stretches it.

    Args:
        config: a :class:`BrowConfig` (defaults when None).
    """

    def __init__(self, config: BrowConfig | None = None):
        self.config = config or BrowConfig()

    def strip_mesh(self, src: np.ndarray, dst: np.ndarray, brow: int, region: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One brow's strip as a mesh: target vertices, source vertices (both Cx3x2: per column the brow's lower
        edge, the end of the rigid fringe, the lash band) and each column's coverage weight (C). With the source
        ``region`` the fringe reaches down over the brow's hair where it hangs below the edge
        (:meth:`hair_fringe`)."""
        cfg = self.config
        edge, ring = BROW_STRIPS[brow]
        n = cfg.columns
        top_t, bot_t = _resample(dst[list(edge), :2], n), _resample(dst[list(ring), :2], n)
        top_s, bot_s = _resample(src[list(edge), :2], n), _resample(src[list(ring), :2], n)
        # the strip's height along the face's up direction (brows drawn together slant the columns: that is
        # not a stretch of the lid skin)
        len_t = (top_t - bot_t) @ _up(dst)
        len_s = (top_s - bot_s) @ _up(src)
        stretch = np.clip(np.maximum(len_t, 0.0) / np.maximum(len_s, 1e-6), 1.0 / cfg.max_stretch, cfg.max_stretch)
        grow = np.maximum(stretch, 1.0)
        f_s, ends = _columns(n, cfg.fringe, cfg.end_feather)
        if region is not None and (stretch > cfg.min_stretch).any():
            fringe = self.hair_fringe(region, top_s, bot_s)
            if (fringe > cfg.fringe).any():
                f_s = f_s.copy()
                f_s[:, 1] = fringe
        # along each column: the fringe keeps its source length (target fraction fringe / grow), the rest is even
        f_t = np.zeros((n, 3))                                                             # C x 3
        f_t[:, 1] = f_s[:, 1] / grow
        f_t[:, 2] = 1.0
        v_t = top_t[:, None] + f_t[..., None] * (bot_t - top_t)[:, None]
        v_s = top_s[:, None] + f_s[..., None] * (bot_s - top_s)[:, None]
        weight = _smoothstep((stretch - cfg.min_stretch) / cfg.ramp) * ends
        if not (np.isfinite(v_t).all() and np.isfinite(v_s).all()):
            weight = np.zeros(n)
        return v_t, v_s, weight

    def hair_fringe(self, region: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
        """Per strip column (C), the share of the source strip the rigid fringe covers: ``fringe``, or down to
        where the brow's hair ends when it hangs below the tracked edge (see :class:`BrowConfig`)."""
        cfg = self.config
        k = 16
        f = np.linspace(0.0, 1.0, k)
        pts = top[:, None] + f[None, :, None] * (bottom - top)[:, None]                  # C x k x 2
        xy = (pts - 0.5).astype(np.float32)
        # the colour at the C x k points only (not a luminance image of the whole region), then its luminance
        rgb = remap_points(np.ascontiguousarray(region[..., :3] if region.shape[2] >= 3 else region[..., :1],
                                                np.float32), xy[..., 0], xy[..., 1]).astype(np.float64)
        lum = (rgb[:, 0] if rgb.shape[1] < 3 else
               0.2126 * rgb[:, 0] + 0.7152 * rgb[:, 1] + 0.0722 * rgb[:, 2]).reshape(len(top), k)
        hair = lum[:, :2].mean(axis=1)
        skin = np.percentile(lum[:, k // 2:], 75, axis=1)
        rise = hair[:, None] + 0.6 * (skin - hair)[:, None]
        below = lum >= rise
        below[:, -1] = True
        end = f[np.argmax(below, axis=1)]
        end = np.where(skin - hair >= cfg.hair_contrast * np.maximum(np.abs(skin), 1e-9), end, 0.0)
        # one column's reading is noisy (a hair, a pore): the median of each column's neighbourhood
        pad = np.pad(end, 2, mode="edge")
        end = np.median(np.stack([pad[i:i + len(end)] for i in range(5)]), axis=0)
        return np.clip(end + cfg.hair_margin, cfg.fringe, cfg.max_fringe)

    def render(self, inputs: RegionInputs) -> RenderedLayer | None:
        """The brow strips' layer, or None where no strip grows (nothing to correct)."""
        import cv2

        h, w = inputs.size
        pixels = coverage = None
        for brow in range(len(BROW_STRIPS)):
            v_t, v_s, weight = self.strip_mesh(inputs.src, inputs.dst, brow, inputs.region)
            if not (weight > 0).any():
                continue
            # the strip's box in the region (whole pixels, a pixel of margin for the anti-aliased edge)
            x0, y0 = np.floor(v_t.reshape(-1, 2).min(axis=0)).astype(int) - 1
            x1, y1 = np.ceil(v_t.reshape(-1, 2).max(axis=0)).astype(int) + 2
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            # two quads per column gap (lower edge -> fringe end -> lash band), two triangles per quad, in the
            # order the label map numbers them
            tri_cols, tri_rows = _strip_triangles(len(weight))
            tris_t = v_t[tri_cols, tri_rows] - np.array([x0, y0])          # T x 3 x 2, box pixels
            tris_s = v_s[tri_cols, tri_rows]
            tris_w = weight[tri_cols]
            # per triangle: target -> source affine and the weight's plane, evaluated at sub-pixel centres
            ones = np.ones((len(tris_t), 3, 1))
            at = np.concatenate([tris_t, ones], axis=2)                                    # T x 3 x 3
            ok = np.abs(np.linalg.det(at)) > 1e-9
            inv = np.zeros_like(at)
            inv[ok] = np.linalg.inv(at[ok])
            to_src = np.einsum("tij,tjc->tic", inv, tris_s)         # rows: coefficients of x, y, 1 -> source xy
            to_w = np.einsum("tij,tj->ti", inv, tris_w)
            to_w[~ok] = 0.0
            # label map at 4x4 supersampling: which triangle covers each sub-pixel (anti-aliased coverage)
            ss = 4
            small = len(tris_t) < 255                   # labels in bytes (255: none), looked up by table
            labels = np.full(((y1 - y0) * ss, (x1 - x0) * ss), 255 if small else -1, np.uint8 if small else np.int32)
            corners = np.round(tris_t * ss * 16).astype(np.int32)
            for i, tri in enumerate(corners):
                cv2.fillConvexPoly(labels, tri, i, lineType=cv2.LINE_8, shift=4)
            # sub-pixel centres as a row and a column (broadcast: the same values as full coordinate grids)
            px = (np.arange(labels.shape[1]) + 0.5) / ss
            py = ((np.arange(labels.shape[0]) + 0.5) / ss)[:, None]
            # each sub-pixel's triangle's weight plane (no triangle: a plane of zeros, so the weight there is
            # exactly 0.0)
            if small:
                plane = np.zeros((3, 256))
                plane[:, :len(to_w)] = to_w.T
                wt = cv2.LUT(labels, plane[0])
                wt *= px
                tmp = cv2.LUT(labels, plane[1])
                tmp *= py
                wt += tmp
                wt += cv2.LUT(labels, plane[2], dst=tmp)
            else:
                plane = np.concatenate([to_w, np.zeros((1, 3))]).T.copy()
                lab = labels.astype(np.intp)
                wt = np.take(plane[0], lab) * px + np.take(plane[1], lab) * py + np.take(plane[2], lab)
            cov = _block_mean(wt, ss).astype(np.float32)
            if not (cov > 1e-3).any():
                continue
            # source positions at pixel centres (the middle of each 4x4 block); outside the strip: anywhere
            centre = _signed(labels[ss // 2::ss, ss // 2::ss], small)
            # a covered pixel whose centre missed the strip (an edge pixel) takes its largest covered sub-pixel's
            # triangle
            iy, ix = np.nonzero((centre < 0) & (cov > 0))
            if len(iy):
                blocks = _signed(labels.reshape(y1 - y0, ss, x1 - x0, ss)[iy, :, ix, :], small)
                centre[iy, ix] = blocks.reshape(len(iy), -1).max(axis=1)
            ci = np.maximum(centre, 0)
            gx, gy = np.arange(x1 - x0) + 0.5, (np.arange(y1 - y0) + 0.5)[:, None]
            sx = to_src[ci, 0, 0] * gx + to_src[ci, 1, 0] * gy + to_src[ci, 2, 0]      # region pixels
            sy = to_src[ci, 0, 1] * gx + to_src[ci, 1, 1] * gy + to_src[ci, 2, 1]
            map_x = (sx - 0.5).astype(np.float32)
            map_y = (sy - 0.5).astype(np.float32)
            region = inputs.region
            chans = [cv2.remap(np.ascontiguousarray(region[..., i:i + 4]), map_x, map_y, cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REPLICATE).reshape(y1 - y0, x1 - x0, -1)
                     for i in range(0, region.shape[2], 4)]
            patch = np.concatenate(chans, axis=2)
            if self.config.smooth_unfolded:
                _smooth_unfolded(patch, centre, v_t, v_s, weight)
            if pixels is None:       # only covered pixels are meaningful: zeros elsewhere (no copy of the plate)
                pixels = np.zeros(inputs.warped.shape, np.float32)
                coverage = np.zeros((h, w), np.float32)
                boxes = []
            box = (slice(y0, y1), slice(x0, x1))
            old = coverage[box]
            # the two brows never overlap; where boxes touch, keep the larger coverage
            take = cov > old
            np.copyto(pixels[box], patch, where=take[:, :, None])
            coverage[box] = np.maximum(old, cov)
            boxes.append(box)
        if pixels is None:
            return None
        for box in boxes:           # (coverage is 0.0 outside the boxes)
            np.clip(coverage[box], 0.0, 1.0, out=coverage[box])
        return RenderedLayer(pixels=pixels, coverage=coverage, name="brows")
