"""The mouth-interior layer: where the target opens the mouth beyond what the source shows, a real interior of
the actor (teeth, tongue, shading from the shot's :class:`~.bank.MouthBank`, chosen by the :class:`~.plan.MouthPlan`)
is laid into the target inner-lip polygon, colour-matched to the frame; with no bank, a shaded synthetic one.

Where the layer shows (per inner-lip column, from right corner to left): the target's gap must exceed the
source's both by a ratio (``cover_ratio_*``) and by an amount (``cover_excess_*``), so a talking mouth that the
target keeps as it is shows its own interior (the warp's) and gets no layer at all; a closed mouth opened gets
the layer over the whole opening. Across the inner lip the layer fades in over ``edge_feather`` just inside the
lip line (anti-aliased); where the opening is new, over the lips' own colour (``lip_rim``: also a little beyond the
lip line where the warp is darker, the closed lips' crease it stretched along the new lip line; further at the
corners, ``lip_rim_corner``, where that crease runs on through the thin lip). Cost: a few thousand pixels of numpy
per frame, only over the mouth's box.
"""

from __future__ import annotations

import numpy as np

from ... import topology as T
from ...errors import InvalidParameterError
from ..layers import RegionInputs, RenderedLayer
from ..sampling import median, plate_noise
from ..sampling import smoothstep as _smoothstep
from . import shape as S
from .bank import MouthBank, extract_interior, ring_colour, sample, sclera_colour, teeth_colour
from .config import MouthConfig
from .plan import MouthPlan, match_costs


def column_coverage(src_points: np.ndarray, dst_points: np.ndarray, config: MouthConfig,
                    own: float = 0.0) -> np.ndarray:
    """How much of each of the 11 inner-lip columns is new (0..1): the target's gap beyond the source's.
    ``own`` (0..1): how far the source's own interior is kept (:meth:`MouthRenderer.own_weight`), whose
    coverage starts at a smaller excess (``own_*``) than a whole new interior's (``cover_*``)."""
    width = max(float(S.mouth_width(src_points)), 1e-6)
    gs, gt = S.gaps(src_points), S.gaps(dst_points)
    ratio = gt / (gs + 0.02 * width)
    excess = (gt - gs) / width

    def ramp(ratio_lo, ratio_hi, excess_lo, excess_hi):
        return (_smoothstep((ratio - ratio_lo) / (ratio_hi - ratio_lo))
                * _smoothstep((excess - excess_lo) / (excess_hi - excess_lo)))

    col = ramp(config.cover_ratio_start, config.cover_ratio_full, config.cover_excess_start, config.cover_excess_full)
    if own > 0:
        # the kept interior equals the warp's where the target opens no further (there it is the source's own,
        # following the lips), so it covers every column once any opens: no stretched teeth seen through
        kept = ramp(config.own_ratio_start, config.own_ratio_full, config.own_excess_start, config.own_excess_full)
        col = (1.0 - own) * col + own * float(kept[S.INNER_PAIRS].max())
    col[0], col[-1] = col[1], col[-2]
    padded = np.concatenate([col[:1], col, col[-1:]])
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


def teeth_from_sclera(sclera: np.ndarray, config: MouthConfig) -> np.ndarray:
    """A plausible teeth colour from the eye whites' (K): blended toward a warm off-white, darkened."""
    sclera = np.asarray(sclera, dtype=np.float32)
    lum = float(sclera.mean())
    if sclera.shape[0] == 3 and lum > 0:
        warm = np.array([1.07, 1.0, 0.93], np.float32)
        chroma = (1.0 - config.teeth_from_sclera) * sclera / lum + config.teeth_from_sclera * warm
        return (lum * (1.0 - config.teeth_darkening) * chroma).astype(np.float32)
    return (sclera * (1.0 - config.teeth_darkening)).astype(np.float32)


def _brighter_than(teeth: np.ndarray, lips: np.ndarray, ratio: float = 1.2) -> np.ndarray:
    """A teeth colour estimated from the eye whites, made at least ``ratio`` x as bright as the ``lips`` (K) and
    warm off-white where it is not: where the eyes are narrowed or behind glasses the 'sclera' samples are lids and
    lenses (d8: skin-red, 0.7 x her lips: grey-brown teeth); teeth seen in a mouth are brighter than its lips."""
    teeth = np.asarray(teeth, dtype=np.float32)
    lum, floor = float(teeth.mean()), ratio * float(np.mean(lips))
    if lum >= floor or teeth.shape[0] != 3:
        return teeth if lum >= floor else np.full_like(teeth, floor)
    warm = np.array([1.07, 1.0, 0.93], np.float32)
    chroma = 0.3 * teeth / max(lum, 1e-6) + 0.7 * warm
    return (floor * 1.1 * chroma / float(chroma.mean())).astype(np.float32)


def _split(texture: np.ndarray, lips: float) -> np.ndarray:
    """Where a canonical interior (HxWxK) splits between what rides with the upper jaw and what with the lower
    one (v, the same for every column, W): the lower edge of the upper teeth (the first row below the bright band at the top where
    the luminance falls halfway to the darkest); no bright band at the top (no upper teeth in view: the tongue,
    the lower teeth ride with the jaw): the upper lip (0); bright all the way (upper teeth only, the lower
    ones behind the lower lip; brighter than the ``lips`` luminance): the bottom."""
    import cv2

    th, tw = texture.shape[:2]
    lum = cv2.blur(np.ascontiguousarray(texture.mean(-1), dtype=np.float32), (max(3, tw // 10) | 1, 3))
    profile = lum[:, tw // 4:3 * tw // 4].mean(1)
    top = max(int(0.3 * th), 1)
    peak = int(np.argmax(profile[:top]))
    bright, dark = float(profile[peak]), float(profile[peak:].min())
    if bright - dark < 0.3 * bright:                 # no contrast below the top: all teeth, or all tongue
        return np.ones(tw) if float(median(profile)) > 1.05 * lips else np.zeros(tw)
    thr = 0.5 * (bright + dark)
    rows = np.arange(th)[:, None]
    below = (lum < thr) & (rows > peak)
    first = np.where(below.any(0), below.argmax(0), th - 1)
    split = (first + 0.5) / th
    mid = float(median(split[tw // 4:3 * tw // 4]))
    # no bright band at the top (the brightest of the top rows no brighter than the rest, or than the lips: a
    # lip's lit inner edge): no upper teeth; unless far brighter than the lips (teeth that fill most of the
    # opening, so that the rest is as bright: d12 laughing, her upper teeth 1.4 x her lips over 60 % of it)
    if (bright < 1.15 * float(median(profile)) or bright < 1.05 * lips) and bright < 1.25 * lips:
        return np.zeros(tw)
    # one split for the whole mouth: per-column splits jitter (a ragged edge, stripes in a dark interior)
    return np.full(tw, mid)


def _teeth_profile(texture: np.ndarray, ring: float):
    """The measurement :func:`teeth_rows` and :func:`gap_bands` share: the central columns' blurred luminance
    profile of a canonical interior, its part above the lower lip (v < 0.85), that part's brightest value, the
    envelope (the smaller of the brightest rows above and below each row) and each row's dip below it (none in
    the top tenth). None when no row is teeth-bright (>= 1.15 x ``ring``).

    Returns:
        ``(th, profile, p, bright, ref, dip)``."""
    import cv2

    th, tw = texture.shape[:2]
    lum = cv2.blur(np.ascontiguousarray(texture.mean(-1), dtype=np.float32), (max(3, tw // 10) | 1, 3))
    profile = lum[:, tw // 4:3 * tw // 4].mean(1).astype(np.float64)
    end = max(int(0.85 * th), 3)
    p = profile[:end]
    bright = float(p.max())
    if bright < 1.15 * ring:
        return None
    ref = np.minimum(np.maximum.accumulate(p), np.maximum.accumulate(p[::-1])[::-1])
    dip = 1.0 - p / np.maximum(ref, 1e-6)
    dip[:max(int(0.1 * th), 1)] = 0.0
    return th, profile, p, bright, ref, dip


def teeth_rows(texture: np.ndarray, ring: float, config: MouthConfig) -> tuple[float, float]:
    """Of a canonical interior (HxWxK) seen with lips and skin around it of mean value ``ring``: how far its
    teeth and what lies below them are together (0..1; 0: a dark gap between them, or nothing brighter than the
    ring in view: stretching a dark cavity is harmless, stretching teeth is not) and where a jaw drop splits it
    (v): the darkest row between the upper teeth and a brighter row below (where they meet the lower teeth),
    else where the teeth end (the profile halfway from them to the lower lip's edge; 1: they reach the lip).

    Measured on the central columns' luminance profile above the lower lip (v < 0.85): the teeth are its
    brightest rows (at least 1.15 x ``ring``); a gap is a dip below both the brightest row above it and the
    brightest below it, its depth that dip's share of the smaller of the two (``gap_depth_*``)."""
    prof = _teeth_profile(texture, ring)
    if prof is None:
        return 0.0, 1.0
    th, profile, p, bright, ref, dip = prof
    m = int(np.argmax(dip))
    depth = float(dip[m])
    together = 1.0 - float(_smoothstep((depth - config.gap_depth_start)
                                       / (config.gap_depth_full - config.gap_depth_start)))
    if depth > 0.04:
        return together, (m + 0.5) / th
    # no lower teeth below: the upper teeth end where the profile falls halfway to the lower lip's edge
    peak = int(np.argmax(p))
    below = np.flatnonzero(profile[peak:] < 0.5 * (bright + float(profile[-1])))
    return together, (float(peak + below[0] + 0.5) / th if len(below) else 1.0)


def gap_bands(texture: np.ndarray, ring: float, config: MouthConfig) -> tuple[float, float]:
    """Of a canonical interior (HxWxK, lips and skin around it of mean value ``ring``) with a dark gap between its
    upper teeth and its lower part (:func:`teeth_rows`' dip at least ``gap_depth_full`` deep): the share of its
    opening above the gap (the upper teeth) and below it (the lower teeth, the tongue), where the profile is
    darker than halfway from the gap's darkest row to the teeth, each within 0.05..0.45; no such gap (or no
    teeth): ``teeth_band`` for both."""
    a = config.teeth_band
    prof = _teeth_profile(texture, ring)
    if prof is None:
        return a, a
    th, profile, p, bright, ref, dip = prof
    m = int(np.argmax(dip))
    if dip[m] < config.gap_depth_full:
        return a, a
    dark = profile < float(p[m]) + 0.5 * (float(ref[m]) - float(p[m]))
    t0 = m
    while t0 > 0 and dark[t0 - 1]:
        t0 -= 1
    t1 = m
    while t1 < th - 1 and dark[t1 + 1]:
        t1 += 1
    return float(np.clip(t0 / th, 0.05, 0.45)), float(np.clip(1.0 - (t1 + 1) / th, 0.05, 0.45))


#: where neighbouring upper teeth meet, x the inter-ocular distance from the midline (projected along the
#: arch), and each tooth's visible length relative to the central incisors'
_TEETH_EDGES = np.array([0.0, 0.09, 0.155, 0.205, 0.245, 0.28])
_TEETH_LENGTH = np.array([1.0, 0.88, 0.95, 0.8, 0.75])


#: the most pixels across a mouth on which :func:`morph` measures its flow
_MORPH_SIDE = 160


def morph(a: np.ndarray, b: np.ndarray, t, flat: np.ndarray, width: int, height: int) -> np.ndarray:
    """Two interiors laid into the same opening (MxK each, at the ``flat`` indices of a ``height x width`` box)
    morphed ``t`` (0: ``a``, 1: ``b``; a number or M per pixel) of the way: each is moved along the optical flow
    toward the other by its share and the two are dissolved. Two real interiors dissolved without moving show both
    sets of teeth at half strength (grey, doubled teeth through a cross-fade); morphed, the teeth slide from one
    place to the other. Flow is measured on at most ``_MORPH_SIDE`` pixels across (a 4K mouth: scaled down)."""
    import cv2

    tv = np.broadcast_to(np.asarray(t, dtype=np.float32), (len(flat),))
    if len(flat) < 16 or (tv <= 0.0).all() or (tv >= 1.0).all():
        return np.asarray((1.0 - tv)[:, None] * a + tv[:, None] * b, dtype=np.float32)
    k = a.shape[1]
    ys, xs = flat // width, flat % width
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    h, w = int(y1 - y0), int(x1 - x0)
    inside = np.zeros((h, w), bool)
    inside[ys - y0, xs - x0] = True

    # outside the opening each image takes its nearest inside colour, so the flow sees no edge of its own there
    nearest = None
    if not inside.all():
        _, near = cv2.distanceTransformWithLabels((~inside).astype(np.uint8), cv2.DIST_L2, 3,
                                                  labelType=cv2.DIST_LABEL_PIXEL)
        idx = np.zeros(int(near.max()) + 1, np.int64)
        idx[near[inside]] = np.flatnonzero(inside.ravel())
        nearest = idx[near.ravel()]

    def image(pix):
        img = np.zeros((h, w, k), np.float32)
        img[ys - y0, xs - x0] = pix
        return img if nearest is None else img.reshape(-1, k)[nearest].reshape(h, w, k)

    ia, ib = image(a), image(b)
    la, lb = ia.mean(-1), ib.mean(-1)
    lo, hi = float(min(la.min(), lb.min())), float(max(la.max(), lb.max()))
    ga, gb = (np.clip((lum - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255).astype(np.uint8) for lum in (la, lb))
    scale = min(1.0, _MORPH_SIDE / max(h, w))
    if scale < 1.0:
        size = (max(int(round(w * scale)), 8), max(int(round(h * scale)), 8))
        ga, gb = (cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in (ga, gb))
    fh, fw = ga.shape
    flow = dict(pyr_scale=0.5, levels=3, winsize=max(5, (min(fh, fw) // 6) | 1), iterations=3, poly_n=5,
                poly_sigma=1.1, flags=0)
    f_ab = cv2.calcOpticalFlowFarneback(ga, gb, None, **flow)        # a(x) ~ b(x + f_ab(x))
    f_ba = cv2.calcOpticalFlowFarneback(gb, ga, None, **flow)        # b(x) ~ a(x + f_ba(x))
    # (a smooth flow: teeth move as rows, never torn into shards where the flow is unsure)
    sigma = max(1.0, min(fh, fw) / 8.0)
    f_ab, f_ba = (cv2.GaussianBlur(f, (0, 0), sigma) for f in (f_ab, f_ba))
    if scale < 1.0:
        up = np.array([w / fw, h / fh], np.float32)
        f_ab, f_ba = (cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) * up for f in (f_ab, f_ba))
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    timg = np.zeros((h, w), np.float32)
    timg[ys - y0, xs - x0] = tv

    def moved(img, f, s):
        return cv2.remap(img, gx + s * f[..., 0], gy + s * f[..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE).reshape(h, w, k)

    out = (1.0 - timg)[..., None] * moved(ia, f_ba, timg) + timg[..., None] * moved(ib, f_ab, 1.0 - timg)
    return out[ys - y0, xs - x0].astype(np.float32)


class MouthRenderer:
    """Renders the mouth-interior layer of any frame of a shot.

    Args:
        bank: the shot's :class:`MouthBank` (None or empty: the synthetic interior).
        plan: the shot's :class:`MouthPlan` (None: each frame takes its own best match from the bank, with no
            temporal smoothing: for stills and tests).
        config: a :class:`MouthConfig` (defaults when None).
    """

    def __init__(self, bank: MouthBank | None = None, plan: MouthPlan | None = None,
                 config: MouthConfig | None = None):
        self.config = config or MouthConfig()
        self.bank = bank if bank is not None else MouthBank.empty(self.config)
        self.plan = plan

    def render(self, inputs: RegionInputs) -> RenderedLayer | None:
        """The layer for one frame, or None where the target opens nothing beyond the source (so an unchanged
        frame stays bit-exact).

        Raises:
            InvalidParameterError: the region's channel count is not the bank's.
        """
        cfg = self.config
        if len(self.bank) and self.bank.textures.shape[3] != inputs.region.shape[2]:
            raise InvalidParameterError(f"the mouth bank holds {self.bank.textures.shape[3]}-channel interiors, the "
                                        f"region has {inputs.region.shape[2]} channels; build the bank from this "
                                        f"plate's colour channels")
        src_pts, dst_pts = S.inner_points(inputs.src), S.inner_points(inputs.dst)
        if not (np.isfinite(src_pts).all() and np.isfinite(dst_pts).all()):
            return None
        own = self.own_weight(src_pts)
        entries = self._entries(inputs)
        # a real interior of the actor's as open as the target (a talking clip's bank) is what the mouth looks
        # like opened that far; the source's own teeth kept at size over a cavity is the fallback where the bank
        # has nothing that open (a still: its own frame only)
        use_own = own * (1.0 - self.bank_fit(entries, inputs.dst)) if own > 0 else 0.0
        kept = None
        if use_own > 0:
            tex = extract_interior(inputs.region, src_pts, cfg.texture_height, cfg.texture_width)
            split = _split(tex, float(sample(inputs.region, S.ring_points(inputs.src)[:20]).mean()))
            if split.max() <= 0:
                own = use_own = 0.0   # no upper teeth in view: the warp's stretch of a cavity and tongue is harmless
            else:
                kept = (tex, split)
        col = column_coverage(src_pts, dst_pts, cfg, own)
        if col.max() < 1e-3:
            return None
        h, w = inputs.size
        # the opening is drawn into the inner lip's smooth outline (through its 20 points), not their polygon
        outline = S.smooth_outline(dst_pts)
        lo = np.floor(outline.min(0)).astype(int) - 1
        hi = np.ceil(outline.max(0)).astype(int) + 1
        tight = (max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h))
        rim_px, rim_reach, rim_w = self._rim_weights(src_pts, dst_pts, inputs, own)
        pad = int(np.ceil(rim_px.max())) + 1 if rim_w.max() > 1e-3 else 0
        x0, y0, x1, y1 = max(lo[0] - pad, 0), max(lo[1] - pad, 0), min(hi[0] + pad, w), min(hi[1] + pad, h)
        if tight[2] - tight[0] < 2 or tight[3] - tight[1] < 2:
            return None
        bw, bh = x1 - x0, y1 - y0
        uv, flat = S.pixel_uv(dst_pts, (x0, y0, x1, y1), outline)
        if not len(flat):
            return None
        # where a part is laid at a height under one lip or over the other (the source's teeth kept at their size,
        # the cavity, the synthetic interior's bands), its v is the smooth outline's; a real interior from the bank
        # is laid by the triangles' (u, v), the map it was stored by
        width_dst = float(S.mouth_width(dst_pts))
        uv_s = uv.copy()
        uv_s[:, 1] = S.smooth_v_in_box(outline, (x0, y0, x1, y1), flat, max(1, int(width_dst / 60.0)))
        feather = max(cfg.edge_min_px, cfg.edge_feather * width_dst)
        # depth inside the lip line: exact near it (anti-aliased edge; 0 for the pixels the rasteriser takes
        # along the outline whose centres lie outside), a coarse distance transform elsewhere (a large mouth's wide
        # feather: from 3 pixels in, where the ramp is smooth; a small one's whole feather is exact)
        import cv2

        mask = np.zeros(bh * bw, np.uint8)
        mask[flat] = 1
        depth = cv2.distanceTransform(mask.reshape(bh, bw), cv2.DIST_L2, 3).ravel()[flat]
        near = depth <= min(feather, 3.0) + 1.5
        if near.any():
            fn = flat[near]
            depth[near] = S.polygon_depth(outline, fn % bw + x0 + 0.5, fn // bw + y0 + 0.5)
        if own > 0 and feather > cfg.edge_min_px * 0.5:
            # at the lower lip the warp shows what was above the source's lower lip (the teeth's edge): a
            # narrower feather there when the source's own interior is opened
            lower = feather + own * (cfg.edge_min_px * 0.5 - feather)
            feather = np.where(uv_s[:, 1] > 0.5, lower, feather)
        share = np.interp(uv[:, 0] * 10.0, np.arange(S.PAIRS), col)
        cover = _smoothstep(depth / feather) * share
        if cover.max() < 1e-3:
            return None
        box = tight
        interior = 0.0
        if use_own < 1.0:
            if entries:
                whole = self._from_bank(entries, uv, inputs, box)
            else:
                xy = np.stack([flat % bw + x0 + 0.5, flat // bw + y0 + 0.5], -1)
                whole = self._synthetic(uv_s, src_pts, dst_pts, inputs, box, xy=xy)
            interior = whole if use_own <= 0 else (1.0 - use_own) * whole
        if use_own > 0.0:
            interior = interior + use_own * self._own(uv_s, src_pts, dst_pts, inputs, box, *kept)
        interior = np.asarray(interior, dtype=np.float32)
        if cfg.morph and (share < 0.999).any():
            # a new interior only partly in (the target a little more open than the source): the warp's own
            # teeth morphed that far toward the new interior's, not the two sets of teeth dissolved into grey
            warp = inputs.warped[flat // bw + y0, flat % bw + x0].astype(np.float32)
            interior = morph(warp, interior, share, flat, bw, bh)
            cover = _smoothstep(depth / feather) * _smoothstep(share / 0.05)
        pixels = np.zeros(inputs.warped.shape, np.float32)
        block = np.zeros((bh * bw, pixels.shape[2]), np.float32)
        block[flat] = interior
        alpha = np.zeros(bh * bw, np.float32)
        alpha[flat] = cover
        if pad:
            # the lips' own colour over the warp's stretched crease around a new opening, under the interior
            at, lip_a, lip_c = self._lip_rim(inputs, dst_pts, rim_px, rim_reach, rim_w, (x0, y0, x1, y1), flat,
                                             float(np.max(feather)), outline)
            a_i = alpha[at]
            total = a_i + (1.0 - a_i) * lip_a
            block[at] = ((a_i[:, None] * block[at] + ((1.0 - a_i) * lip_a)[:, None] * lip_c)
                         / np.maximum(total, 1e-6)[:, None])
            alpha[at] = total
        pixels[y0:y1, x0:x1] = block.reshape(bh, bw, -1)
        coverage = np.zeros((h, w), np.float32)
        coverage[y0:y1, x0:x1] = alpha.reshape(bh, bw)
        return RenderedLayer(pixels, coverage, "mouth")

    def _rim_weights(self, src_pts: np.ndarray, dst_pts: np.ndarray, inputs: RegionInputs,
                     own: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where, how and how strongly the lips' colour is laid around the opening (:meth:`_lip_rim`), per inner-lip
        point (20 each): ``(far, reach, weight)``. ``far``: how far beyond the inner lip (pixels; ``lip_rim``
        along the lips, ``lip_rim_corner`` at the corners); ``reach``: over how far it fades out (along the lips at
        most half the lip's thickness, at the corners all of ``far``); ``weight`` 0..1: where the opening is new
        (the columns' coverage of a whole new interior, not the source's own kept open: its real lip edge stays),
        half at the corners (a real commissure is dark)."""
        cfg = self.config
        if cfg.lip_rim <= 0 or own >= 1.0:
            return np.zeros(20), np.ones(20), np.zeros(20)
        dst = np.asarray(inputs.dst, dtype=np.float64)
        iod = float(T.inter_ocular(dst))
        new = column_coverage(src_pts, dst_pts, cfg, 0.0) * (1.0 - own)
        pairs = np.where(np.arange(20) <= 10, np.arange(20), 20 - np.arange(20))
        middle = _smoothstep(np.minimum(pairs, 10 - pairs) / 2.0)        # 0 at the corners, 1 from 2 columns in
        rim = max(cfg.lip_rim * iod, 1.0)
        corner = max(cfg.lip_rim_corner * iod, rim)
        along = np.clip(0.5 * np.linalg.norm(dst[S.OUTER, :2] - dst_pts, axis=1), 1.0, rim)
        far = middle * rim + (1.0 - middle) * corner
        reach = middle * along + (1.0 - middle) * corner
        return far, reach, new[pairs] * (0.5 + 0.5 * middle)

    def _lip_rim(self, inputs: RegionInputs, dst_pts: np.ndarray, rim_px: np.ndarray, rim_reach: np.ndarray,
                 rim_w: np.ndarray, box, flat: np.ndarray, feather: float, outline: np.ndarray):
        """The lips' own colour around a new opening (``rim_w`` per inner-lip point), sampled per inner-lip point
        on the warped lip body between the inner and the outer contour (away from the crease the warp stretches
        along the new lip line; at the corners, where the body is thin and holds the crease, a column in), a soft
        ``lip_rim_shadow`` at the opening's edge fading out across the rim: over the feather inside the target
        inner lip, and outside it ``rim_px`` far (per inner-lip point, fading out over ``rim_reach``: opaque over
        its first half) only where the warp is darker than that (the crease; where the warp shows lip its own
        texture stays). ``outline``: the smooth outline the opening is drawn into (:func:`~.shape.smooth_outline`).

        Returns:
            ``(at, alpha, colour)``: flat indices into ``box``, their coverage (N) and colour (NxK)."""
        import cv2

        cfg = self.config
        x0, y0, x1, y1 = box
        bw = x1 - x0
        inside_box = np.zeros((y1 - y0) * bw, bool)
        inside_box[flat] = True
        # the pixels within reach of the outline (a thick line along it), each with its nearest place on it, per
        # inner-lip segment
        reach = max(float(np.max(rim_px)), feather + 1.0) + 1.5
        band = np.zeros((y1 - y0, bw), np.uint8)
        cv2.polylines(band, [np.round((outline - [x0 + 0.5, y0 + 0.5]) * 16).astype(np.int32)], True, 1,
                      thickness=2 * int(np.ceil(reach)) + 3, lineType=cv2.LINE_8, shift=4)
        idx = np.flatnonzero(band.ravel())
        dist, seg, t = S.nearest_on_polygon(outline, idx % bw + x0 + 0.5, idx // bw + y0 + 0.5)
        seg, t = S.outline_segment(seg, t)
        inside = inside_box[idx]
        nxt = (seg + 1) % 20
        keep = np.where(inside, dist <= feather + 1.0, dist < (1.0 - t) * rim_px[seg] + t * rim_px[nxt])
        at, dist, seg, t, inside, nxt = idx[keep], dist[keep], seg[keep], t[keep], inside[keep], nxt[keep]
        outer = np.asarray(inputs.dst, dtype=np.float64)[S.OUTER, :2]
        reach = (1.0 - t) * rim_reach[seg] + t * rim_reach[nxt]
        weight = (1.0 - t) * rim_w[seg] + t * rim_w[nxt]
        # the lip body: the median of three samples across it, smoothed along the lip; at the corners the body
        # is a few pixels of lip around the crease itself: the colour of the column next in
        across = [sample(inputs.warped, dst_pts + f * (outer - dst_pts)) for f in (0.4, 0.55, 0.7)]
        lips = np.median(np.stack(across), axis=0)
        lips[[1, 19, 9, 11]] = lips[[2, 18, 8, 12]]
        lips[0], lips[10] = 0.5 * (lips[2] + lips[18]), 0.5 * (lips[8] + lips[12])
        lips = 0.25 * np.roll(lips, 1, 0) + 0.5 * lips + 0.25 * np.roll(lips, -1, 0)
        colour = (1.0 - t)[:, None] * lips[seg] + t[:, None] * lips[nxt]
        colour *= (1.0 - cfg.lip_rim_shadow * np.where(inside, 1.0, 1.0 - _smoothstep(dist / reach)))[:, None]
        want = colour.mean(-1)
        have = inputs.warped.reshape(-1, inputs.warped.shape[2])[
            (at // bw + y0) * inputs.warped.shape[1] + at % bw + x0].mean(-1)
        darker = _smoothstep((want - have) / np.maximum(0.15 * want, 1e-6))
        alpha = weight * np.where(inside, 1.0 - _smoothstep(dist - feather),
                                  darker * (1.0 - _smoothstep((dist - 0.5 * reach) / (0.5 * reach))))
        return at, alpha.astype(np.float32), colour.astype(np.float32)

    def bank_fit(self, entries, dst: np.ndarray) -> float:
        """How well the planned bank ``entries`` fit the target mouth ``dst`` (landmarks) as whole interiors, 0..1:
        their central opening (x the inter-ocular distance) over the target's, from ``bank_fit_start`` (0: the
        entry would be stretched) to ``bank_fit_full`` (1: about as open: its teeth keep their size)."""
        cfg = self.config
        if not entries or cfg.bank_fit_full <= 0:
            return 0.0
        dst = np.asarray(dst, dtype=np.float64)
        iod = max(float(T.inter_ocular(dst)), 1e-6)
        target = float(S.gaps(S.inner_points(dst))[4:7].mean()) / iod
        if target <= 0:
            return 1.0
        bank = self.bank
        opening = sum(w * float(bank.openings[k, 4:7].mean()) * float(bank.widths[k]) for k, w in entries)
        return float(_smoothstep((opening / target - cfg.bank_fit_start) / (cfg.bank_fit_full - cfg.bank_fit_start)))

    def own_weight(self, src_pts: np.ndarray) -> float:
        """How far the source's own interior is kept where the target opens further (0: closed, a whole new
        interior; 1: open, its teeth kept at their size and the cavity between them)."""
        cfg = self.config
        return float(_smoothstep((float(S.centre_opening(src_pts)) - cfg.own_open_start)
                                 / (cfg.own_open_full - cfg.own_open_start)))

    # ---- the source's own interior, opened -----------------------------------------------------------------
    def _own(self, uv: np.ndarray, src_pts: np.ndarray, dst_pts: np.ndarray, inputs: RegionInputs, box,
             tex: np.ndarray, split: np.ndarray) -> np.ndarray:
        """The source's own interior (``tex``, canonical) where the target opens further than the source: split
        at ``split`` (:func:`_split`: the lower edge of its upper teeth), the part above at its size under the
        upper lip (the upper teeth ride with the upper jaw), the part below at its size above the lower lip (the
        lower teeth, the tongue move down with the jaw), and a shaded cavity between them (:meth:`_opened`)."""
        scale = float(T.inter_ocular(np.asarray(inputs.dst, np.float64))) \
            / max(float(T.inter_ocular(np.asarray(inputs.src, np.float64))), 1e-6)
        u = uv[:, 0]
        gs = np.maximum(np.interp(u * 10.0, np.arange(S.PAIRS), S.gaps(src_pts)) * scale, 1e-3)
        return self._opened(uv, u, gs, tex, split, src_pts, dst_pts, inputs, box, own_below=True)

    def _opened(self, uv: np.ndarray, u_tex: np.ndarray, gs: np.ndarray, tex: np.ndarray, split: np.ndarray,
                src_pts: np.ndarray, dst_pts: np.ndarray, inputs: RegionInputs, box,
                own_below: bool) -> np.ndarray:
        """A canonical interior ``tex`` (HxWxK, seen with a gap of ``gs`` target pixels per point, sampled across
        at ``u_tex``) opened as a jaw drop into the target's (u, v) ``uv``: the part above ``split`` (W, v) at its
        size under the upper lip, the part below at its size above the lower lip, and a shaded cavity between
        them (synthetic, with a hint of the lower teeth where the interior shows nothing below; ``own_below``:
        else the interior's own colour below the split, darker toward the middle; never darker than the bank's
        darkest)."""
        cfg = self.config
        th, tw = tex.shape[:2]
        u, v = uv[:, 0], uv[:, 1]
        gt = np.interp(u * 10.0, np.arange(S.PAIRS), S.gaps(dst_pts))
        s = np.interp(u_tex * tw - 0.5, np.arange(tw), split)
        d = v * gt
        up, low = s * gs, (1.0 - s) * gs
        extra = gt - gs
        opens = extra > 0
        v_src = np.where(d < up, d / gs, np.where(d > gt - low, 1.0 - (gt - d) / gs, s))
        v_src = np.where(opens, v_src, v)
        out = sample(tex, np.stack([u_tex * tw, np.clip(v_src, 0.0, 1.0) * th], -1))
        wd = float(S.mouth_width(dst_pts))
        soft = max(0.7, 0.008 * wd)                     # px: sharp on a small face, not a cut on a large one
        # (a part under a pixel tall is no part: the cavity reaches that lip, never a half-covered sliver of it)
        top = 1.0 - (1.0 - _smoothstep((d - up) / soft + 0.5)) * _smoothstep(up - 0.5)
        bottom = 1.0 - (1.0 - _smoothstep((gt - low - d) / soft + 0.5)) * _smoothstep(low - 0.5)
        wc = (top * bottom * opens).astype(np.float32)
        hit = wc > 1e-3
        if hit.any():
            t = np.clip((d[hit] - up[hit]) / np.maximum(extra[hit], 1e-6), 0.0, 1.0)
            # the cavity (a hint of the lower teeth at its bottom where the interior shows none of its own)
            lower = float(_smoothstep((0.1 * wd - float(median(low))) / (0.05 * wd)))
            cavity = self._synthetic(np.stack([u[hit], t], -1), src_pts, dst_pts, inputs, box, teeth=False,
                                     lower_teeth=lower, gap=extra[hit])
            if lower < 1.0 and own_below:
                # the source's own lower part (its tongue, its cavity) below: the gap continues the source's own
                # colour at the split, darker toward the middle (synthetic where nothing of its own is below)
                # (sampled a little below the split: the split row itself may be a lip's ragged inner edge)
                near = sample(tex, np.stack([u_tex[hit] * tw, np.clip(s[hit] + 0.12, 0.0, 1.0) * th], -1))
                between = near * (0.55 + 0.45 * np.abs(2.0 * t - 1.0)).astype(np.float32)[:, None]
                cavity = lower * cavity + (1.0 - lower) * between
            if len(self.bank):
                # no darker than the actor's own open mouths get (their lighting reaches into the mouth or not)
                floor = self._dark_floor() * np.clip(ring_colour(inputs.region, inputs.src)
                                                     / np.maximum(np.median(self.bank.ring, 0), 1e-6),
                                                     cfg.min_gain, cfg.max_gain)
                cavity = np.maximum(cavity, floor.astype(np.float32))
            out[hit] += wc[hit, None] * (cavity - out[hit])
        return out

    def _dark_floor(self) -> np.ndarray:
        """The bank's darkest interiors (K): the 5th percentile by luminance of all its texels, per channel
        (computed once per renderer)."""
        if getattr(self, "_floor", None) is None:
            tex = self.bank.textures.reshape(-1, self.bank.textures.shape[3])[::7]
            lum = tex.mean(-1)
            self._floor = np.median(tex[lum <= np.percentile(lum, 5)], axis=0)
        return self._floor

    # ---- a real interior ------------------------------------------------------------------------------------
    def _entries(self, inputs: RegionInputs) -> list[tuple[int, float]]:
        """The bank entries shown at this frame: the plan's; without a plan, the best match of this frame alone."""
        if not len(self.bank):
            return []
        if self.plan is not None:
            return self.plan.entries(inputs.index)
        cost = match_costs(self.bank, np.asarray(inputs.src)[None], np.asarray(inputs.dst)[None], self.config,
                           np.array([inputs.index]))[0]
        return [(int(np.argmin(cost)), 1.0)] if np.isfinite(cost).any() else []

    def _from_bank(self, entries, uv: np.ndarray, inputs: RegionInputs, box) -> np.ndarray:
        """The planned bank ``entries`` laid into the target at canonical ``uv``, colour-matched to the frame: each
        as :meth:`_entry_uv` maps it, or, an interior whose teeth are together in a target far more open than it
        (:meth:`jaw_weight`), opened as a jaw drop (:meth:`_opened`). Two entries (the plan's cross-fade) are
        dissolved: morphed (:func:`morph`), a row of teeth that shows in one and not the other broke into loose
        chunks sliding in (WDA fearful, frames 138-141), worse than their faint double for a few frames. Laid by
        the triangles' (u, v) throughout, its jaw drop too (opened by the smooth outline's v, d3's surprised interior
        read 25.2 % more contrasted than her own open mouths, over the issue's 25 %: 20.6 % before)."""
        cfg = self.config
        bank = self.bank
        th, tw = bank.textures.shape[1:3]
        current = ring_colour(inputs.region, inputs.src)
        out = 0.0
        for k, wgt in entries:
            u, v = self._entry_uv(k, uv, inputs)
            gain = np.clip(current / np.maximum(bank.ring[k], 1e-6), cfg.min_gain, cfg.max_gain).astype(np.float32)
            pix = sample(bank.textures[k], np.stack([u * tw, v * th], -1)) * gain
            closing = self._closed(k, uv, u, inputs)
            if closing is not None:
                hit, v_up, v_low, w_low, weight = closing
                rows = sample(bank.textures[k], np.stack([np.repeat(u[hit] * tw, 2), np.stack([v_up, v_low], -1)
                                                          .ravel() * th], -1)).reshape(-1, 2, pix.shape[1]) * gain
                closed = rows[:, 0] + w_low[:, None] * (rows[:, 1] - rows[:, 0])
                pix[hit] += weight[:, None] * (closed - pix[hit])
            jaw = self.jaw_weight(k, inputs.dst, inputs.index)
            if jaw > 0:
                src_pts, dst_pts = S.inner_points(inputs.src), S.inner_points(inputs.dst)
                iod = max(float(T.inter_ocular(np.asarray(inputs.dst, dtype=np.float64))), 1e-6)
                gs = np.maximum(np.interp(u * 10.0, np.arange(S.PAIRS), bank.openings[k].astype(np.float64))
                                * float(bank.widths[k]) * iod, 1e-3)
                split = np.full(tw, self._teeth_rows()[1][k])
                opened = self._opened(uv, u, gs, bank.textures[k] * gain, split, src_pts, dst_pts, inputs, box,
                                      own_below=False)
                pix = pix + np.float32(jaw) * (opened - pix)
            out = out + wgt * pix
        return np.asarray(out, dtype=np.float32)

    def _closed(self, k: int, uv: np.ndarray, u: np.ndarray, inputs: RegionInputs):
        """Bank entry ``k`` with its teeth together (:meth:`_teeth_rows`) laid into a target LESS open than it
        (per column), as a jaw closing does: the upper teeth at their size under the upper lip, in front; what
        lies below them (the lower teeth, the lip) at its size above the lower lip, behind them (the lower teeth
        slide behind the upper ones); never the teeth squashed toward the middle (:meth:`_entry_uv` narrows the
        middle of the opening: right for a dark cavity between the teeth, a squashed row of teeth with a dark
        line through it where the teeth are together: a sneer's bared teeth laid from a smile).

        Returns:
            None (nothing to close), else ``(hit, v_up, v_low, w_low, weight)``: the pixels concerned (M bool),
            the entry's v there for the upper part and for the lower part, the share of the lower one (0..1,
            anti-aliased over about a pixel at the upper teeth's edge) and the weight of this mapping (the
            entry's ``together``; the mapping equals :meth:`_entry_uv`'s where the target opens as far)."""
        together, split = self._teeth_rows()
        if together[k] <= 0:
            return None
        bank = self.bank
        dst_pts = S.inner_points(inputs.dst)
        iod = max(float(T.inter_ocular(np.asarray(inputs.dst, dtype=np.float64))), 1e-6)
        cols = np.arange(S.PAIRS)
        gap_t = np.interp(uv[:, 0] * 10.0, cols, S.gaps(dst_pts)) / iod
        gap_e = np.interp(u * 10.0, cols, bank.openings[k].astype(np.float64)) * float(bank.widths[k])
        g = gap_t / np.maximum(gap_e, 1e-6)
        hit = g < 1.0
        if not hit.any():
            return None
        g, v = np.maximum(g[hit], 0.05), uv[hit, 1]
        s = float(split[k])
        soft = 0.7 / np.maximum(gap_t[hit] * iod, 1e-3)                 # about a pixel, in v
        w_low = _smoothstep((v - s / g) / soft + 0.5)
        v_up = np.clip(v * g, 0.0, 1.0)
        v_low = np.clip(1.0 - (1.0 - v) * g, 0.0, 1.0)
        return hit, v_up, v_low, w_low.astype(np.float32), np.full(len(v), together[k], np.float32)

    def jaw_weight(self, k: int, dst: np.ndarray, index: int = -1) -> float:
        """How far bank entry ``k`` is opened as a jaw drop in the target mouth ``dst`` (landmarks) of frame
        ``index``, 0..1: its teeth together (:meth:`_teeth_rows`) times the plan's smoothed ramp of the target's
        opening over the shown interiors' (:attr:`MouthPlan.jaw`); without one (no plan, or one stored before it
        existed), the target's central opening ``jaw_ratio_*`` times this entry's own or more."""
        cfg = self.config
        together = float(self._teeth_rows()[0][k])
        if together <= 0:
            return 0.0
        plan = self.plan
        if plan is not None and plan.jaw is not None and 0 <= index < len(plan):
            return together * float(plan.jaw[index])
        dst = np.asarray(dst, dtype=np.float64)
        iod = max(float(T.inter_ocular(dst)), 1e-6)
        target = float(S.gaps(S.inner_points(dst))[4:7].mean()) / iod
        own = float(self.bank.openings[k, 4:7].mean()) * float(self.bank.widths[k])
        ratio = target / max(own, 1e-6)
        return together * float(_smoothstep((ratio - cfg.jaw_ratio_start) / (cfg.jaw_ratio_full - cfg.jaw_ratio_start)))

    def _teeth_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Per bank entry (computed once per renderer): how far its teeth are together (0..1: no dark gap between
        the upper and the lower teeth; 0 where no teeth show) and where it splits for a jaw drop (v: the line where
        the upper teeth meet the lower ones, a darker row between two brighter ones; none seen: 1, the lower teeth
        are behind the lower lip)."""
        if getattr(self, "_rows", None) is None:
            n = len(self.bank)
            together, split = np.zeros(n), np.ones(n)
            for k in range(n):
                ring = self.bank.ring[k]
                lum = float(ring.mean())
                together[k], split[k] = teeth_rows(self.bank.textures[k], lum, self.config)
            self._rows = (together, split)
        return self._rows

    def _gap_bands(self) -> np.ndarray:
        """Per bank entry (once per renderer): Nx2 the share of its opening kept at its size at the upper and at
        the lower lip where it is laid into a more or less open mouth (:func:`gap_bands`)."""
        if getattr(self, "_bands", None) is None:
            self._bands = np.array([gap_bands(self.bank.textures[k], float(self.bank.ring[k].mean()), self.config)
                                    for k in range(len(self.bank))]).reshape(-1, 2)
        return self._bands

    def _entry_uv(self, k: int, uv: np.ndarray, inputs: RegionInputs) -> tuple[np.ndarray, np.ndarray]:
        """Where the target's canonical (u, v) samples bank entry ``k``, so its teeth keep their size on the face:
        across, the entry is scaled by (target width / its width, both x IOD) ** ``rigid_width`` about the middle;
        down, a band of the entry's opening at each lip (the teeth: above and below its dark gap where it shows
        one, :func:`gap_bands`, else ``teeth_band``) keeps its scale and only the middle (the dark of the mouth)
        stretches where the target opens wider, or narrows where it opens less."""
        cfg, bank = self.config, self.bank
        dst_pts = S.inner_points(inputs.dst)
        iod = max(float(T.inter_ocular(np.asarray(inputs.dst, dtype=np.float64))), 1e-6)
        width = float(S.mouth_width(dst_pts)) / iod
        scale = float(np.clip(width / max(float(bank.widths[k]), 1e-6), 0.5, 2.0)) ** cfg.rigid_width
        u = np.clip(0.5 + (uv[:, 0] - 0.5) * scale, 0.0, 1.0)
        v = uv[:, 1]
        if cfg.teeth_band > 0:
            a_top, a_bot = self._gap_bands()[k]
            cols = np.arange(S.PAIRS)
            gap_t = np.interp(uv[:, 0] * 10.0, cols, S.gaps(dst_pts)) / iod
            gap_e = np.interp(u * 10.0, cols, bank.openings[k].astype(np.float64)) * float(bank.widths[k])
            # (a target less open than the entry: the teeth keep their size and the cavity between them
            # narrows, as a jaw closing a little does; a band of the teeth at most 45 % of the target each)
            g = np.clip(gap_t / np.maximum(gap_e, 1e-6), 0.5, 4.0)
            b_top, b_bot = np.minimum(a_top / g, 0.45), np.minimum(a_bot / g, 0.45)
            top, bot = b_top * g, b_bot * g                   # the entry's share each band shows (a unless capped)
            mid = top + (v - b_top) * (1.0 - top - bot) / np.maximum(1.0 - b_top - b_bot, 1e-6)
            v = np.where(v < b_top, v * g, np.where(v > 1.0 - b_bot, 1.0 - (1.0 - v) * g, mid))
        return u, np.clip(v, 0.0, 1.0)

    # ---- no footage of an open mouth: a shaded synthetic interior ------------------------------------------
    def _synthetic(self, uv: np.ndarray, src_pts: np.ndarray, dst_pts: np.ndarray, inputs: RegionInputs,
                   box, teeth: bool = True, lower_teeth: float = 0.0, gap: np.ndarray | None = None,
                   xy: np.ndarray | None = None) -> np.ndarray:
        """A shaded interior at canonical ``uv`` (Mx2): throat, tongue, shadows, and (``teeth``) the upper teeth
        under the upper lip (a thin hint of the lower ones in a wide opening); ``lower_teeth`` (0..1): that hint
        alone, over an opening ``gap`` pixels tall per point (the cavity between kept teeth); ``xy`` (Mx2): the
        pixels' positions (the upper teeth's edge then follows a smooth arch, not the lip line's kinks)."""
        cfg = self.config
        region = inputs.region
        ring = S.ring_points(inputs.src)
        rim = sample(region, ring)                                             # 40xK: lips, then skin
        lips = rim[:20].mean(0)
        uv = uv.astype(np.float32)
        u, v = uv[:, 0:1], uv[:, 1:2]
        # throat at the back, the tongue rising at the lower middle, both a fraction of the lip colour
        # (a dome: its top lowest toward the corners)
        tongue = _smoothstep((v - 0.5 - 0.3 * (2.0 * u - 1.0) ** 2) / 0.25)
        # the inside of the mouth is a deeper red than the lips: their colour pushed away from grey
        # (half the lips', half the surrounding skin's reddened: lipstick is not the colour inside the mouth)
        deep = np.clip(lips.mean() + 1.5 * (lips - lips.mean()), 0.05 * lips.mean(), None)
        if region.shape[2] == 3:
            skin = rim[20:].mean(0)
            flesh = skin * np.array([1.0, 0.55, 0.55]) * (lips.mean() / max(float(skin.mean()), 1e-6)) / 0.7
            deep = 0.5 * deep + 0.5 * flesh
        deep = deep.astype(np.float32)
        colour = deep * (cfg.throat_level + (cfg.tongue_level - cfg.throat_level) * tongue)
        # darker toward the centre (the throat) and the corners (the cheeks), shadowed under the upper lip
        centre = 1.0 - cfg.centre_darkening * np.exp(-(((u - 0.5) / 0.25) ** 2 + ((v - 0.35) / 0.25) ** 2))
        shadow = 0.55 + 0.45 * _smoothstep(v / 0.35)
        arch = np.sqrt(np.clip(np.sin(np.float32(np.pi) * u), 0.0, 1.0))
        corners = 0.6 + 0.4 * arch
        colour = colour * (centre * shadow * corners)
        tooth = self._teeth(region, inputs.src, src_pts, lips) if teeth and cfg.teeth_height > 0 else None
        if tooth is not None:
            colour = self._draw_teeth(colour, u[:, 0], v[:, 0], arch[:, 0], dst_pts, inputs, tooth, xy=xy)
        elif lower_teeth > 0 and gap is not None:
            tooth = self._teeth(region, inputs.src, src_pts, lips)
            if tooth is not None:
                colour = self._draw_teeth(colour, u[:, 0], v[:, 0], arch[:, 0], dst_pts, inputs, tooth,
                                          upper=False, lower=lower_teeth, gap=gap)
        noise = plate_noise(region, box)
        if noise > 0 and cfg.grain > 0:
            rng = np.random.default_rng(max(int(inputs.index), 0) + 7919)
            grain = rng.standard_normal((len(u), 1)).astype(np.float32)
            colour = colour + np.float32(cfg.grain * noise / max(float(lips.mean()), 1e-6)) * grain \
                * colour.mean(-1, keepdims=True)
        return np.clip(colour, 0.0, None).astype(np.float32)

    def _draw_teeth(self, colour: np.ndarray, u: np.ndarray, v: np.ndarray, arch: np.ndarray, dst_pts: np.ndarray,
                    inputs: RegionInputs, tooth: np.ndarray, upper: bool = True, lower: float | None = None,
                    gap: np.ndarray | None = None, xy: np.ndarray | None = None) -> np.ndarray:
        """The upper teeth (and a hint of the lower ones) over the synthetic interior ``colour`` (MxK): a band
        under the upper lip, partly hidden by it, its incisal edge soft (about a pixel), shorter and darker toward
        the corners, with faint separations between the teeth (sizes from the inter-ocular distance)."""
        cfg = self.config
        width = float(S.mouth_width(dst_pts))
        iod = max(float(T.inter_ocular(np.asarray(inputs.dst, np.float64))), 1e-6)
        gap = np.maximum(np.interp(u * 10.0, np.arange(S.PAIRS), S.gaps(dst_pts)) if gap is None else gap, 1.0)
        # how far each pixel is from the nearest separation between teeth (pixels)
        off = np.abs(u - 0.5) * width / iod                                      # x IOD from the midline
        edge_px = np.min(np.abs(off[:, None] - _TEETH_EDGES[None, 1:]), axis=1) * iod
        mid_px = off * iod
        # each tooth's length eased into its neighbours' (a step from tooth to tooth was a saw-tooth edge a pixel
        # sharp: broken teeth), the embrasures between them a shallow notch
        centres = 0.5 * (_TEETH_EDGES[:-1] + _TEETH_EDGES[1:])
        length = np.interp(off, centres, _TEETH_LENGTH) \
            * (1.0 - 0.05 * np.exp(-(np.minimum(edge_px, mid_px) / (0.012 * iod)) ** 2))
        visible = cfg.teeth_height * width * (1.0 - cfg.teeth_hidden) * length * (0.55 + 0.45 * arch)
        visible = np.minimum(visible, 0.45 * gap) * _smoothstep((0.5 - np.abs(u - 0.5)) / 0.2)
        # how far below the upper lip (pixels): along the mouth's vertical, below a smooth arch through the upper
        # inner lip where the pixels' positions are known (v x gap follows the lip line's kinks between its points
        # and the triangles' diagonals: a saw-tooth incisal edge)
        down = v * gap if xy is None else self._below_upper_arch(dst_pts, xy)
        extent = visible
        soft = 0.9 / gap
        # the teeth show to about the premolars; beyond, the dark corridor by the cheeks
        lateral = _smoothstep((_TEETH_EDGES[-1] - off) / 0.08) * _smoothstep((0.5 - np.abs(u - 0.5) - 0.08) / 0.16)
        band = (1.0 - _smoothstep((down - extent) / 0.9 + 0.5)) * lateral
        sep = 1.0 - cfg.teeth_separation * (np.exp(-(edge_px / 0.6) ** 2) + 0.7 * np.exp(-(mid_px / 0.5) ** 2))
        gum = 0.6 + 0.4 * _smoothstep(down / np.maximum(0.6 * extent, 1e-3))      # the upper lip's shadow
        rim = 1.0 - 0.1 * _smoothstep((down - 0.75 * extent) / np.maximum(0.25 * extent, 1e-3))   # translucent edge
        shade = (gum * rim * sep * (0.5 + 0.5 * arch)).astype(np.float32)
        teeth = tooth.astype(np.float32)[None] * shade[:, None]
        if upper:
            colour = colour + band.astype(np.float32)[:, None] * (teeth - colour)
        opening = float(S.gaps(dst_pts)[4:7].mean()) / max(width, 1e-6)
        wide = float(_smoothstep((opening - cfg.lower_teeth_open) / 0.1)) if lower is None else lower
        if wide > 0:
            low_extent = np.minimum(wide * (0.035 if lower is None else 0.09) * width * (0.5 + 0.5 * arch),
                                    0.25 * gap) / gap
            low = _smoothstep((v - (1.0 - low_extent)) / soft + 0.5) * _smoothstep((0.2 - off) / 0.06)
            colour = colour + ((0.6 if lower is None else 0.9) * low).astype(np.float32)[:, None] * ((0.7 if lower is None else 0.85) * teeth - colour)
        return colour

    @staticmethod
    def _below_upper_arch(dst_pts: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """How far (pixels) the points ``xy`` (Mx2) lie below a smooth arch through the upper inner lip (a
        parabola fitted to its points 1..9 in the mouth's own frame, corner to corner), along the mouth's
        vertical."""
        a, b = dst_pts[0], dst_pts[10]
        ex = (b - a) / max(float(np.linalg.norm(b - a)), 1e-6)
        ey = np.array([-ex[1], ex[0]])
        if float((dst_pts[15] - dst_pts[5]) @ ey) < 0:          # the lower lip below: +ey points down the face
            ey = -ey
        rel = dst_pts[1:10] - a
        coef = np.polyfit(rel @ ex, rel @ ey, 2)
        p = np.asarray(xy, dtype=np.float64) - a
        return p @ ey - np.polyval(coef, p @ ex)

    def _teeth(self, region: np.ndarray, src: np.ndarray, src_pts: np.ndarray, lips: np.ndarray) -> np.ndarray | None:
        """The teeth colour for the synthetic interior: the shot's (seen anywhere in the shot by the bank builder,
        matched to this frame's lighting; the same in every frame, so the band never flickers), else this frame's
        own where its mouth shows teeth, else one estimated from the eye whites (the shot's, else this frame's),
        else None."""
        bank, cfg = self.bank, self.config
        current = None
        for colour, ring in ((bank.teeth, bank.teeth_ring), (None, None), (bank.sclera, bank.sclera_ring)):
            if colour is None:
                own = teeth_colour(region, src_pts, lips)
                if own is not None:
                    return own
                continue
            if colour.size and np.isfinite(colour).all() and np.isfinite(ring).all():
                current = ring_colour(region, src) if current is None else current
                gain = np.clip(current / np.maximum(ring, 1e-6), cfg.min_gain, cfg.max_gain)
                found = colour * gain
                return found if colour is bank.teeth else _brighter_than(teeth_from_sclera(found, cfg), lips)
        sclera = sclera_colour(region, src)
        return _brighter_than(teeth_from_sclera(sclera, cfg), lips) if sclera is not None else None
