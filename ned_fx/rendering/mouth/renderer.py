"""The mouth-interior layer: where the target opens the mouth beyond what the source shows, a real interior of
the actor (teeth, tongue, shading from the shot's :class:`~.bank.MouthBank`, chosen by the :class:`~.plan.MouthPlan`)
is laid into the target inner-lip polygon, colour-matched to the frame; with no bank, a shaded synthetic one.

Where the layer shows (per inner-lip column, from right corner to left): the target's gap must exceed the
source's both by a ratio (``cover_ratio_*``) and by an amount (``cover_excess_*``), so a talking mouth that the
target keeps as it is shows its own interior (the warp's) and gets no layer at all; a closed mouth opened gets
the layer over the whole opening. Across the inner lip the layer fades in over ``edge_feather`` just inside the
lip line (the lips stay the warp's; anti-aliased). Cost: a few thousand pixels of numpy per frame, only over the
mouth's box.
"""

from __future__ import annotations

import numpy as np

from ... import topology as T
from ...errors import InvalidParameterError
from ..layers import RegionInputs, RenderedLayer
from . import shape as S
from .bank import MouthBank, ring_colour, sample, teeth_colour
from .config import MouthConfig
from .plan import MouthPlan, match_costs


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def column_coverage(src_points: np.ndarray, dst_points: np.ndarray, config: MouthConfig) -> np.ndarray:
    """How much of each of the 11 inner-lip columns is new (0..1): the target's gap beyond the source's."""
    width = max(float(S.mouth_width(src_points)), 1e-6)
    gs, gt = S.gaps(src_points), S.gaps(dst_points)
    ratio = gt / (gs + 0.02 * width)
    excess = (gt - gs) / width
    col = (_smoothstep((ratio - config.cover_ratio_start) / (config.cover_ratio_full - config.cover_ratio_start))
           * _smoothstep((excess - config.cover_excess_start)
                         / (config.cover_excess_full - config.cover_excess_start)))
    col[0], col[-1] = col[1], col[-2]
    padded = np.concatenate([col[:1], col, col[-1:]])
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


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
        col = column_coverage(src_pts, dst_pts, cfg)
        if col.max() < 1e-3:
            return None
        h, w = inputs.size
        lo = np.floor(dst_pts.min(0)).astype(int) - 1
        hi = np.ceil(dst_pts.max(0)).astype(int) + 1
        x0, y0, x1, y1 = max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        bw, bh = x1 - x0, y1 - y0
        uv, flat = S.pixel_uv(dst_pts, (x0, y0, x1, y1))
        if not len(flat):
            return None
        width_dst = float(S.mouth_width(dst_pts))
        feather = max(cfg.edge_min_px, cfg.edge_feather * width_dst)
        # depth inside the lip line: exact near it (anti-aliased edge; 0 for the pixels the rasteriser takes
        # along the outline whose centres lie outside), a coarse distance transform elsewhere
        import cv2

        mask = np.zeros(bh * bw, np.uint8)
        mask[flat] = 1
        depth = cv2.distanceTransform(mask.reshape(bh, bw), cv2.DIST_L2, 3).ravel()[flat]
        near = depth <= feather + 1.5
        if near.any():
            fn = flat[near]
            depth[near] = S.polygon_depth(dst_pts, fn % bw + x0 + 0.5, fn // bw + y0 + 0.5)
        cover = _smoothstep(depth / feather) * np.interp(uv[:, 0] * 10.0, np.arange(S.PAIRS), col)
        if cover.max() < 1e-3:
            return None
        entries = self._entries(inputs)
        if entries:
            interior = self._from_bank(entries, uv, inputs)
        else:
            interior = self._synthetic(uv, src_pts, dst_pts, inputs, (x0, y0, x1, y1))
        pixels = np.zeros(inputs.warped.shape, np.float32)
        block = np.zeros((bh * bw, pixels.shape[2]), np.float32)
        block[flat] = interior
        pixels[y0:y1, x0:x1] = block.reshape(bh, bw, -1)
        coverage = np.zeros((h, w), np.float32)
        alpha = np.zeros(bh * bw, np.float32)
        alpha[flat] = cover
        coverage[y0:y1, x0:x1] = alpha.reshape(bh, bw)
        return RenderedLayer(pixels, coverage, "mouth")

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

    def _from_bank(self, entries, uv: np.ndarray, inputs: RegionInputs) -> np.ndarray:
        cfg = self.config
        bank = self.bank
        th, tw = bank.textures.shape[1:3]
        current = ring_colour(inputs.region, inputs.src)
        out = 0.0
        for k, wgt in entries:
            u, v = self._entry_uv(k, uv, inputs)
            gain = np.clip(current / np.maximum(bank.ring[k], 1e-6), cfg.min_gain, cfg.max_gain)
            out = out + wgt * sample(bank.textures[k], np.stack([u * tw, v * th], -1)) * gain.astype(np.float32)
        return np.asarray(out, dtype=np.float32)

    def _entry_uv(self, k: int, uv: np.ndarray, inputs: RegionInputs) -> tuple[np.ndarray, np.ndarray]:
        """Where the target's canonical (u, v) samples bank entry ``k``, so its teeth keep their size on the face:
        across, the entry is scaled by (target width / its width, both x IOD) ** ``rigid_width`` about the middle;
        down, where the target opens wider than the entry, a band of ``teeth_band`` of the entry's opening at
        each lip (the teeth) keeps its scale and only the middle (the dark of the mouth, the tongue) stretches."""
        cfg, bank = self.config, self.bank
        dst_pts = S.inner_points(inputs.dst)
        iod = max(float(T.inter_ocular(np.asarray(inputs.dst, dtype=np.float64))), 1e-6)
        width = float(S.mouth_width(dst_pts)) / iod
        scale = float(np.clip(width / max(float(bank.widths[k]), 1e-6), 0.5, 2.0)) ** cfg.rigid_width
        u = np.clip(0.5 + (uv[:, 0] - 0.5) * scale, 0.0, 1.0)
        v = uv[:, 1]
        a = cfg.teeth_band
        if a > 0:
            cols = np.arange(S.PAIRS)
            gap_t = np.interp(uv[:, 0] * 10.0, cols, S.gaps(dst_pts)) / iod
            gap_e = np.interp(u * 10.0, cols, bank.openings[k].astype(np.float64)) * float(bank.widths[k])
            g = np.clip(gap_t / np.maximum(gap_e, 1e-6), 1.0, 4.0)
            band = a / g
            mid = a + (v - band) * (1.0 - 2.0 * a) / np.maximum(1.0 - 2.0 * band, 1e-6)
            v = np.where(v < band, v * g, np.where(v > 1.0 - band, 1.0 - (1.0 - v) * g, mid))
        return u, np.clip(v, 0.0, 1.0)

    # ---- no footage of an open mouth: a shaded synthetic interior ------------------------------------------
    def _synthetic(self, uv: np.ndarray, src_pts: np.ndarray, dst_pts: np.ndarray, inputs: RegionInputs,
                   box) -> np.ndarray:
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
        corners = 0.6 + 0.4 * np.sqrt(np.clip(np.sin(np.float32(np.pi) * u), 0.0, 1.0))
        colour = colour * (centre * shadow * corners)
        teeth = self._teeth(region, inputs.src, src_pts, lips)
        if teeth is not None and cfg.teeth_height > 0:
            gap = np.interp(u[:, 0] * 10.0, np.arange(S.PAIRS), S.gaps(dst_pts))
            extent = np.clip(cfg.teeth_height * float(S.mouth_width(dst_pts)) / np.maximum(gap, 1.0), 0.0, 0.45)
            extent = extent[:, None].astype(np.float32)
            band = (1.0 - _smoothstep((v - extent) / np.maximum(0.25 * extent, 1e-3))) \
                * _smoothstep((0.5 - np.abs(u - 0.5)) / 0.3)
            shade = 0.75 + 0.25 * _smoothstep(v / np.maximum(0.4 * extent, 1e-3))     # darker at the gum line
            colour = colour + band * (teeth.astype(np.float32) * shade * (0.85 + 0.15 * np.sin(np.float32(np.pi) * u))
                                      - colour)
        noise = self._noise_level(region, box)
        if noise > 0 and cfg.grain > 0:
            rng = np.random.default_rng(max(int(inputs.index), 0) + 7919)
            grain = rng.standard_normal((len(u), 1)).astype(np.float32)
            colour = colour + np.float32(cfg.grain * noise / max(float(lips.mean()), 1e-6)) * grain \
                * colour.mean(-1, keepdims=True)
        return np.clip(colour, 0.0, None).astype(np.float32)

    def _teeth(self, region: np.ndarray, src: np.ndarray, src_pts: np.ndarray, lips: np.ndarray) -> np.ndarray | None:
        """The teeth colour for the synthetic interior: the shot's (seen anywhere in the shot by the bank builder,
        matched to this frame's lighting; the same in every frame, so the band never flickers), else this frame's
        own where its mouth shows teeth, else None."""
        bank = self.bank
        if np.isfinite(bank.teeth).all() and np.isfinite(bank.teeth_ring).all() and bank.teeth.size:
            gain = np.clip(ring_colour(region, src) / np.maximum(bank.teeth_ring, 1e-6), self.config.min_gain,
                           self.config.max_gain)
            return bank.teeth * gain
        return teeth_colour(region, src_pts, lips)

    @staticmethod
    def _noise_level(region: np.ndarray, box) -> float:
        """The plate's grain around the mouth: robust std of the luminance's Laplacian / sqrt(20)."""
        x0, y0, x1, y1 = box
        h, w = region.shape[:2]
        pad = max(4, (x1 - x0) // 2)
        crop = region[max(y0 - pad, 0):min(y1 + pad, h), max(x0 - pad, 0):min(x1 + pad, w), min(1, region.shape[2] - 1)]
        if min(crop.shape) < 3:
            return 0.0
        lap = (crop[1:-1, 1:-1] * 4 - crop[:-2, 1:-1] - crop[2:, 1:-1] - crop[1:-1, :-2] - crop[1:-1, 2:]).ravel()
        lap = lap[::max(1, lap.size // 8192)]               # a few thousand samples are plenty
        return float(1.4826 * np.median(np.abs(lap - np.median(lap))) / np.sqrt(20.0))
