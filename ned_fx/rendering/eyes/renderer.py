"""EyeRenderer: an eyeball behind the target lids, laid only where the target opens the eye beyond the source."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...errors import InvalidParameterError
from ..layers import RegionInputs, RenderedLayer
from ..sampling import median, plate_noise, remap_points
from ._geometry import (EYES, NUM_POINTS, UPPER, EyeDistance, EyeFrame, farther_than, luminance, polygon_mask,
                        polygon_sdf, polyline_distance, refine_iris, sample, segment_distance, smoothstep)
from .config import EyeConfig
from .model import EyeModel, EyeModelBuilder


class EyeRenderer:
    """Renders the eyeball (sclera with its shading, the round iris with its pupil, a soft shadow under the upper
    lid) inside each TARGET eye opening, only where the opening is new.

    "New" is where the source's lids covered the eye: outside the source's lid polygon mapped to the target by
    the eye's similarity (its two corners; the geometry renderer moves the visible eyeball the same way), and a
    little way into it where a lid moved out (the source's old lash line, which the warp carried into the
    widened opening). Where the source already shows eyeball, the warped real eye stays (coverage 0, a soft
    blend at the seam). The coverage ends ``lid_inset`` inside the target lid contour with an anti-aliased
    falloff, so the lid margin, its lashes and make-up stay as the warp put them. A narrowed or unchanged eye
    gets nothing; :meth:`render` returns None when no eye opens beyond the source.

    Args:
        model: the shot's :class:`EyeModel`; None: each frame's own source region is the model (a lone still).
        config: an :class:`EyeConfig` (defaults when None).
    """

    name = "eyes"

    def __init__(self, model: EyeModel | None = None, config: EyeConfig | None = None):
        self.model = model
        self.config = config or EyeConfig()
        # the texture's own grid is what it means (a model may come from another config)
        self._textures = None if model is None else self._padded(model)

    @staticmethod
    def _padded(model: EyeModel) -> list[np.ndarray]:
        """Each eye's texture with one wrapped angle column on each side (for seamless bilinear lookups)."""
        tex = np.asarray(model.iris_texture, dtype=np.float32)
        return [np.ascontiguousarray(np.concatenate([t[:, -1:], t, t[:, :1]], axis=1)) for t in tex]

    def render(self, inputs: RegionInputs) -> RenderedLayer | None:
        """The eyeball layer of one frame, or None when no eye opens beyond the source.

        Raises:
            InvalidParameterError: landmarks without the iris points, or a model with another channel count.
        """
        src = np.asarray(inputs.src, dtype=np.float64)
        dst = np.asarray(inputs.dst, dtype=np.float64)
        if src.ndim != 2 or dst.shape != src.shape or src.shape[0] < NUM_POINTS:
            raise InvalidParameterError(f"the eye layer needs {NUM_POINTS}x3 source and target landmarks (with "
                                        f"the iris points), got {src.shape} and {dst.shape}")
        region = inputs.region
        h, w = region.shape[:2]
        plans = [p for p in (self._coverage(e, src[:, :2], dst[:, :2], h, w, inputs.valid) for e in range(2))
                 if p is not None]
        if not plans:
            return None
        model, textures = self.model, self._textures
        if model is None:
            builder = EyeModelBuilder(self.config)
            builder.add(inputs.index, region, src)
            model = builder.finish()
            textures = self._padded(model)
        if model.channels != region.shape[2]:
            raise InvalidParameterError(f"the eye model has {model.channels} colour channels, the region "
                                        f"{region.shape[2]}")
        pixels = np.zeros_like(inputs.warped)
        coverage = np.zeros((h, w), np.float32)
        for e, rows, cols, cov, sd_old, gate, out in plans:
            m = model.usable(e)
            if m is None:
                continue
            fs = EyeFrame(src[:, :2], EYES[e][1])
            seen = self._source(model, textures[m], m, e, src[:, :2], region, fs)
            if seen.confidence <= 0:
                continue
            eye = self._paint(model, textures[m], m, e, src[:, :2], dst[:, :2], rows, cols, seen, (h, w))
            eye = self._grain(eye, region, rows, cols, inputs.index, e)
            warped = inputs.warped[rows, cols]
            ft = EyeFrame(dst[:, :2], EYES[e][1])
            eye = eye * self._seam_gain(eye, warped, cov, sd_old, rows, cols, seen, fs, ft)
            cov = self._old_lid(eye, warped, cov, sd_old, gate)
            pixels[rows, cols] = eye
            coverage[rows, cols] = np.maximum(coverage[rows, cols], cov * np.float32(seen.confidence))
            if self.config.lash_specks > 0:
                white = float(luminance(np.asarray(model.sclera_colour[m], dtype=np.float64))) * seen.gain_s
                self._lash_specks(inputs.warped, dst[:, :2], e, ft, out[:UPPER], white, inputs.valid, pixels,
                                  coverage)
        if not coverage.any():
            return None
        return RenderedLayer(pixels, coverage, self.name)

    def _lash_specks(self, warped: np.ndarray, dst: np.ndarray, e: int, ft: EyeFrame, rose: np.ndarray,
                     white: float, valid, pixels: np.ndarray, coverage: np.ndarray) -> None:
        """Small bright specks in the warp's lash band over eye ``e`` (target frame ``ft``; ``rose``: how far each
        upper-lid point of the target lies outside the source's opening, :meth:`_coverage`'s; see
        ``EyeConfig.lash_specks``) replaced by the lashes around them, in ``pixels``/``coverage`` in place, under the
        eyeball where it covers (the two layers composited exactly: the eyeball over the mended lashes). Only where
        the upper lid rose off the source's opening (fully from ``min_move`` x W): a lid that came down (sad,
        angry) has the eye's own white and catchlights right under it, and an eye whose lower lid alone moved a
        pixel out (WDA sad) had them mended into a blocky black band over the iris."""
        import cv2

        c = self.config
        contour = EYES[e][0]
        band = c.lash_specks * ft.w
        lid = dst[list(contour[:UPPER])]
        h, w = warped.shape[:2]
        x0, x1 = int(max(np.floor(lid[:, 0].min() - band), 0)), int(min(np.ceil(lid[:, 0].max() + band) + 1, w))
        y0, y1 = int(max(np.floor(lid[:, 1].min() - band), 0)), int(min(np.ceil(lid[:, 1].max() + band) + 1, h))
        if x1 - x0 < 3 or y1 - y0 < 3 or white <= 0:
            return
        crop = np.ascontiguousarray(warped[y0:y1, x0:x1], dtype=np.float32)
        k = max(3, int(round(c.speck_size * ft.w)) | 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        opened = cv2.morphologyEx(crop, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REPLICATE)
        opened = opened.reshape(crop.shape)
        lo, hi = c.speck_contrast
        speck = smoothstep(((luminance(crop) - luminance(opened)) / white - lo) / (hi - lo)).astype(np.float32)
        if not (speck > 0).any():
            return
        speck = cv2.dilate(speck, np.ones((3, 3), np.uint8))      # and the speck's soft rim (a ring was left)
        yy, xx = np.nonzero(speck > 0)
        pts = np.stack([xx + (x0 + 0.5), yy + (y0 + 0.5)], axis=1).astype(np.float64)
        # the lash band: near the upper lid, outside the target opening or in the lid margin the eyeball leaves to
        # the warp (deeper in, a bright sliver is the eye's own white: a corner the lids did not open)
        margin = c.lid_inset * ft.w + max(c.edge_softness * ft.w, c.min_soft_px)
        speck[yy, xx] *= (polyline_distance(pts, lid) < band) & (polygon_sdf(pts, dst[list(contour)])[0] < margin)
        # only where the upper lid rose, at the speck's nearest lid point
        nearest = np.argmin(((pts[:, None, :] - lid[None]) ** 2).sum(-1), axis=1)
        speck[yy, xx] *= smoothstep(rose[nearest] / max(c.min_move * ft.w, 1e-6))
        if valid is not None:           # never on an occluder (a lens's glare is the plate's)
            speck *= np.asarray(valid, dtype=np.float32)[y0:y1, x0:x1] > 0.5
        if not (speck > 0).any():
            return
        cov_e = coverage[y0:y1, x0:x1]
        total = cov_e + (1.0 - cov_e) * speck
        mix = (cov_e[..., None] * pixels[y0:y1, x0:x1] + ((1.0 - cov_e) * speck)[..., None] * opened)
        some = total > 0
        pixels[y0:y1, x0:x1][some] = mix[some] / total[some][:, None]
        coverage[y0:y1, x0:x1] = total

    # ---- where -----------------------------------------------------------------------------------------------
    def _coverage(self, e: int, src: np.ndarray, dst: np.ndarray, h: int, w: int, valid):
        """(eye, rows, cols, coverage, signed distance N to the source's opening where the warp puts it: inside
        > 0, gate, and how far each target contour point lies outside that opening) of the pixels the eyeball
        covers, or None."""
        c = self.config
        contour, corners, _ = EYES[e]
        fs, ft = EyeFrame(src, corners), EyeFrame(dst, corners)
        if fs.w < 2.0 or ft.w < 2.0:
            return None
        poly_t = dst[list(contour)]
        poly_s = _similarity(src[list(contour)], fs, ft)       # the source's opening, where the warp puts it
        if np.array_equal(poly_t, poly_s):
            return None
        # how far each target lid point lies outside the source's opening (0 where the lid came down)
        out, _, _ = polygon_sdf(poly_t, poly_s)
        out = np.maximum(-out, 0.0)
        if out.max() < 1e-3:
            return None
        soft = max(c.edge_softness * ft.w, c.min_soft_px)
        inset = c.lid_inset * ft.w                 # the middle of the anti-aliased edge (a pixel's area there)
        start = max(inset - 0.5 * soft, 0.0)       # where the coverage starts (never outside the contour)
        blend = max(c.blend * ft.w, soft)
        x0, y0 = int(max(np.floor(poly_t[:, 0].min()) - 1, 0)), int(max(np.floor(poly_t[:, 1].min()) - 1, 0))
        x1, y1 = int(min(np.ceil(poly_t[:, 0].max()) + 2, w)), int(min(np.ceil(poly_t[:, 1].max()) + 2, h))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        # candidates: pixel centres inside the target opening and not deep inside the source's (pixel-accurate
        # masks), then exact distances on those only
        inside = polygon_mask(poly_t, x0, y0, x1, y1)
        in_s = polygon_mask(poly_s, x0, y0, x1, y1)
        depth = max(min(c.reach * out.max(), c.reach_max * ft.w) + blend, c.lash_depth * ft.w) + 1.5
        shallow = ~farther_than(in_s, depth, or_equal=True)
        # the iris: where the lids open, the whole iris is drawn (round; :meth:`_eyeball` takes the frame's own
        # iris where the lids left it), not only its newly uncovered part: the warp stretches the source's iris
        # between the parting lids (and its lid-shaded top with it), and a half-drawn iris shows that stretched
        # middle between round edges
        iris = EYES[e][2]
        iris_c = _similarity(src[[iris[0]]], fs, ft)[0]
        iris_r = float(np.linalg.norm(src[list(iris[1:])] - src[iris[0]], axis=1).mean()) * ft.w / fs.w
        whole = 0.0 if c.iris_whole <= 0 else float(smoothstep(out.max() / (c.iris_whole * ft.w)))
        if whole > 0:           # the disc's own box only
            reach_i = (c.iris_cover + 0.5) * iris_r + soft
            bx0, by0 = max(int(iris_c[0] - reach_i) - x0, 0), max(int(iris_c[1] - reach_i) - y0, 0)
            bx1, by1 = min(int(iris_c[0] + reach_i) + 2 - x0, x1 - x0), min(int(iris_c[1] + reach_i) + 2 - y0, y1 - y0)
            if bx1 > bx0 and by1 > by0:
                yy, xx = np.mgrid[by0 + y0:by1 + y0, bx0 + x0:bx1 + x0]
                shallow[by0:by1, bx0:bx1] |= np.hypot(xx + 0.5 - iris_c[0], yy + 0.5 - iris_c[1]) < reach_i
        inside &= shallow
        if valid is not None:
            inside &= np.asarray(valid)[y0:y1, x0:x1] > 0
        rows, cols = np.nonzero(inside)
        if not len(rows):
            return None
        pts = np.stack([cols + (x0 + 0.5), rows + (y0 + 0.5)], axis=1).astype(np.float64)
        sd_t, _, _ = polygon_sdf(pts, poly_t, inside=True)
        keep = sd_t > start
        pts, sd_t, rows, cols = pts[keep], sd_t[keep], rows[keep], cols[keep]
        if not len(pts):
            return None
        sd_s, j, tau = polygon_sdf(pts, poly_s, inside=in_s[rows, cols])
        # the lid's local outward movement, along the source's lid: the eyeball covers the source's opening
        # fully that deep (times ``reach``), then fades to the real eye over at most ``blend``
        moved = (1.0 - tau) * out[j] + tau * out[(j + 1) % len(out)]
        # ``moved`` follows the nearest source lid segment, so it jumps where that switches (the upper lid to the
        # corner, a lid point that moved to one that did not): a hard step across the new eye white. It is
        # smoothed over the pixels (the reveal's own edge, along the source lid, stays as sharp as it was)
        import cv2

        grid = np.zeros((y1 - y0, x1 - x0), np.float32)
        weight = np.zeros_like(grid)
        grid[rows, cols] = moved
        weight[rows, cols] = 1.0
        sigma = max(soft, 1.0)
        moved = (cv2.GaussianBlur(grid, (0, 0), sigma)[rows, cols]
                 / np.maximum(cv2.GaussianBlur(weight, (0, 0), sigma)[rows, cols], 1e-6)).astype(np.float64)
        reach = np.minimum(c.reach * moved, c.reach_max * ft.w)
        ramp = np.minimum(moved, blend) + 1e-9
        # a lid that barely moved reveals a sliver under its own shadow: the warp's lash line reads better there
        edge = smoothstep((sd_t - inset) / soft + 0.5)          # inside the target lid's anti-aliased edge
        seen = None if valid is None else np.asarray(valid, dtype=np.float64)[rows + y0, cols + x0]
        gate = edge * smoothstep(moved / max(c.min_move * ft.w, 1e-6))
        if seen is not None:
            gate = gate * seen
        cov = gate * (1.0 - smoothstep((sd_s - reach) / ramp))
        if whole > 0:
            lid = edge if seen is None else edge * seen
            d_i = np.hypot(pts[:, 0] - iris_c[0], pts[:, 1] - iris_c[1])
            disc = 1.0 - smoothstep((d_i - c.iris_cover * iris_r) / (0.5 * iris_r + soft) + 0.5)
            cov = np.maximum(cov, whole * lid * disc)
        # a faint sliver (a lid that moved out by a hair, e.g. at a squinting eye's corner) is no new eyeball:
        # coverage under ``min_coverage`` is dropped, the rest rescaled so it still rises continuously from 0
        cov = (cov - c.min_coverage) / (1.0 - c.min_coverage)
        # ... and the pixels of the source's opening near its lid where the lid moved out: the render covers those
        # that show no eyeball (:meth:`_old_lid`). Where the lid barely moved (near a corner) but the eyeball
        # covers the pixels around (the new white on one side, the iris disc on the other), the old lid line is
        # covered as they are: left alone it is a thin grey line of the old lash line across the new white
        grid[:] = 0.0
        grid[rows, cols] = np.maximum(cov, 0.0)
        r_near = max(c.old_lid_near * ft.w, 1.0)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * int(np.ceil(r_near)) + 1,) * 2)
        near = edge * cv2.dilate(grid, kernel)[rows, cols]
        gate = np.maximum(gate, near if seen is None else near * seen)
        keep = (cov > 0) | ((sd_s > 0) & (sd_s < c.lash_depth * ft.w) & (gate > c.min_coverage))
        if not keep.any():
            return None
        return (e, rows[keep] + y0, cols[keep] + x0, np.maximum(cov[keep], 0.0).astype(np.float32), sd_s[keep],
                gate[keep].astype(np.float32), out)

    # ---- what ------------------------------------------------------------------------------------------------
    def _paint(self, model, texture, m: int, e: int, src, dst, rows, cols, seen: "_Seen",
               size: tuple[int, int]) -> np.ndarray:
        """The eyeball at the region pixels (rows, cols): rendered over their bounding box, softened by
        ``config.blur`` to sit in the plate's softness."""
        import cv2

        h, w = size
        fs, ft = EyeFrame(src, EYES[e][1]), EyeFrame(dst, EYES[e][1])
        # as soft as the plate's own limbus (less the limbus's own anti-aliasing), at least ``blur``
        sigma = max(self.config.blur, 0.8 * float(model.softness[m])) * ft.w
        pad = int(np.ceil(2.5 * sigma)) + 1 if sigma >= 0.3 else 0
        r0, r1 = max(int(rows.min()) - pad, 0), min(int(rows.max()) + pad + 1, h)
        c0, c1 = max(int(cols.min()) - pad, 0), min(int(cols.max()) + pad + 1, w)
        gx, gy = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
        pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
        eye = self._eyeball(model, texture, m, e, dst, pts, seen, fs, ft).reshape(r1 - r0, c1 - c0, -1)
        if pad:
            eye = cv2.GaussianBlur(eye, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE).reshape(eye.shape)
        return eye[rows - r0, cols - c0]

    def _old_lid(self, eye: np.ndarray, warped: np.ndarray, cov: np.ndarray, sd_old: np.ndarray,
                 gate: np.ndarray) -> np.ndarray:
        """The coverage with the source's old lid margin covered: where the lid moved out (``gate``), pixels of the
        source's opening within ``lash_depth`` of its lid (the tracked lid often runs inside the lash line and
        its make-up, and the warp leaves that part where the eyeball was) that are far darker than the eyeball
        rendered there (``old_lid`` of its brightness: lashes and lid, not a sclera in the lid's shade, not the
        iris, which is as dark rendered as seen)."""
        c = self.config
        lo, hi = c.old_lid
        ratio = luminance(warped) / np.maximum(luminance(eye), 1e-6)
        old = (sd_old > 0) * gate * (1.0 - smoothstep((ratio - lo) / (hi - lo)))
        return np.maximum(cov, ((old - c.min_coverage) / (1.0 - c.min_coverage)).astype(np.float32))

    def _grain(self, eye: np.ndarray, region: np.ndarray, rows, cols, index: int, e: int) -> np.ndarray:
        """The plate's own grain (``config.grain`` x its level around the eye) over the rendered eyeball, a new
        draw each frame (seeded by the frame, so a render is repeatable): a new white as flat as paint reads as
        pasted on a noisy plate."""
        c = self.config
        if c.grain <= 0:
            return eye
        noise = plate_noise(region, (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1))
        if noise <= 0:
            return eye
        rng = np.random.default_rng([max(int(index), 0), 104729 + e])
        grain = np.float32(c.grain * noise) * rng.standard_normal((len(eye), 1)).astype(np.float32)
        return np.maximum(eye + grain, np.float32(0.0))

    def _seam_gain(self, eye: np.ndarray, warped: np.ndarray, cov: np.ndarray, sd_old: np.ndarray, rows, cols,
                   seen: "_Seen", fs: EyeFrame, ft: EyeFrame) -> np.ndarray:
        """Per pixel and channel gain (NxK) that meets the real eye's sclera where the eyeball fades into it: along the eye
        (``seam_bins`` bins), the warped real sclera's brightness over the rendered one's on the blend seam (pixels
        of the source's opening, ``cov`` between 0.15 and 0.85, outside the iris, where the real eye is sclera:
        at least ``seam_min`` of the rendered brightness, not a lash line), clipped to ``seam_limits``; 1 where
        the seam shows no sclera. The gain holds on the source's opening (``sd_old`` >= 0) and fades to 1 over
        ``seam_reach`` outside it: the real sclera at the old lid line lies in that lid's shade, the eye white the
        raised lid uncovers beyond it does not; the colour part (the tint) fades across the old lid line, from
        ``seam_tint_reach`` inside the old opening to as far outside it; with
        ``seam_iris`` both hold on the white only, fading to 1 across the limbus."""
        c = self.config
        old = sd_old > 0
        pts = np.stack([cols + 0.5, rows + 0.5], axis=1).astype(np.float64)
        u = ft.u(pts)
        centre, radius, limbus = self._iris_disc(seen, fs, ft)
        lum_e, lum_w = luminance(eye), luminance(warped)
        off = np.hypot(*(pts - centre).T)                  # from the iris's centre
        seam = old & (cov > 0.15) & (cov < 0.85) & (off > 1.2 * radius) & (lum_w >= c.seam_min * lum_e)
        ones = np.ones((len(pts), 1), np.float32)
        if np.count_nonzero(seam) < 3:
            return ones
        edges = np.linspace(-1.0, 1.0, c.seam_bins + 1)
        mids, gains, tints = [], [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            inbin = seam & (u >= lo) & (u < hi)
            if np.count_nonzero(inbin) >= 3:
                mids.append(0.5 * (lo + hi))
                lw, le = float(median(lum_w[inbin])), max(float(median(lum_e[inbin])), 1e-6)
                gains.append(lw / le)
                # ... and its colour: each channel's share of the brightness, real over rendered
                tints.append((np.median(warped[inbin], axis=0) / max(lw, 1e-6))
                             / np.maximum(np.median(eye[inbin], axis=0) / le, 1e-6))
        if not gains:
            return ones
        lo, hi = c.seam_limits
        gain = np.clip(np.interp(u, mids, gains), lo, hi)[:, None]
        t_lo, t_hi = c.seam_tint_limits
        tint = np.stack([np.interp(u, mids, t) for t in np.clip(np.asarray(tints), t_lo, t_hi).T], axis=1)
        near = 1.0 - smoothstep(-sd_old / max(c.seam_reach * ft.w, c.min_soft_px))
        # the colour across the old lid line, from ``seam_tint_reach`` inside the old opening (the seam lies deeper)
        # to as far outside it: held to the line, it drew the old lid line across the new white (a pink band under
        # d19's and d8's grey-blue arc)
        span = max(c.seam_tint_reach * ft.w, c.min_soft_px)
        near_t = 1.0 - smoothstep(0.5 - sd_old / (2.0 * span))
        # ... on the sclera only: the iris is the frame's own where it shows and its texture is matched to that
        # (:meth:`_eyeball`); the sclera's tint on it turned d19's grey-blue irises brown (x0.8 blue, the pink of
        # his small, skin-tinged whites)
        if c.seam_iris:
            white = 1.0 - _limbus_alpha(off, radius, limbus)
            near, near_t = near * white, near_t * white
        return ((1.0 + near[:, None] * (gain - 1.0)) * (1.0 + near_t[:, None] * (tint - 1.0))).astype(np.float32)

    def _source(self, model: EyeModel, texture: np.ndarray, m: int, e: int, src, region, fs: EyeFrame) -> "_Seen":
        """What the source frame shows of eye ``e``: its iris as the image shows it (the tracked centre is often
        a pixel off), its brightness against the model's, and its catchlights."""
        import cv2

        c = self.config
        contour, corners, iris = EYES[e]
        lo, hi = c.colour_match_limits
        h, w = region.shape[:2]
        poly = src[list(contour)]
        centre = src[iris[0]]
        expected = float(model.iris_ratio[m]) * fs.w
        reach = 1.1 * expected + 3          # the iris disc and a little more (refine_iris looks further out,
        #                                     but only inside the lids)
        x0 = int(max(min(poly[:, 0].min(), centre[0] - reach), 0))
        y0 = int(max(min(poly[:, 1].min(), centre[1] - reach), 0))
        x1 = int(min(max(poly[:, 0].max(), centre[0] + reach) + 1, w))
        y1 = int(min(max(poly[:, 1].max(), centre[1] + reach) + 1, h))
        plain = _Seen(centre, expected, 1.0, 1.0, None, 0, 0, 1.0, None)
        if x1 - x0 < 3 or y1 - y0 < 3:
            return plain
        distance = EyeDistance(poly, x0, y0, x1, y1)
        crop = region[y0:y1, x0:x1]
        margin = c.lash_margin * fs.w
        centre, radius, _ = refine_iris(crop, centre, expected, fs, poly, margin, (x0, y0), distance)
        radius = float(np.clip(radius, 0.9 * expected, 1.1 * expected))
        lum = luminance(crop.astype(np.float32))
        gx, gy = np.meshgrid(np.arange(x0, x1) + (0.5 - centre[0]), np.arange(y0, y1) + (0.5 - centre[1]))
        dist = np.hypot(gx, gy)
        seen = distance.sd > margin + 0.5
        gain_s = gain_i = confidence = 1.0
        ref = float(luminance(np.asarray(model.sclera_colour[m], dtype=np.float64)))
        where = seen & (dist > c.sclera_exclusion * radius)
        vals = lum[where]
        sclera_now = None
        if len(vals) >= 8 and ref > 0:
            bright = vals >= c.sclera_floor * np.percentile(vals, 90)
            sclera_now = float(vals[bright].mean())
            gain_s = float(np.clip(sclera_now / ref, lo, hi))
            # is there an eye at all? a blink the tracker missed shows lashes and lid where the sclera should be
            dim_lo, dim_hi = c.sclera_dim
            confidence = float(smoothstep((sclera_now / ref - dim_lo) / (dim_hi - dim_lo)))
        ring = seen & (dist < 0.9 * radius) & (dist > 0.5 * radius)
        if np.count_nonzero(ring) >= 8:
            theta = np.mod(np.arctan2(gy[ring], gx[ring]) - fs.angle, 2.0 * np.pi)
            rings, angles = texture.shape[0], texture.shape[1] - 2
            cells = np.stack([theta / (2.0 * np.pi) * angles + 1.5, dist[ring] / radius * rings], axis=1)
            model_lum = luminance(sample(texture, cells))
            vals = lum[ring]
            ok = vals < c.highlight * median(vals)
            if ok.sum() >= 8 and model_lum[ok].mean() > 0:
                iris_now = float(vals[ok].mean())
                gain_i = float(np.clip(iris_now / model_lum[ok].mean(), lo, hi))
                # ... and an iris darker than the sclera around it
                if sclera_now:
                    alike = float(smoothstep((iris_now / sclera_now - c.iris_contrast) / 0.15))
                    if alike > 0 and crop.shape[2] >= 3:
                        # ... unless it has a colour of its own (a pale iris): lid skin has the lid's
                        iris_c = crop[ring][ok][:, :3].astype(np.float64).mean(0)
                        sclera_c = crop[where][bright][:, :3].astype(np.float64).mean(0)
                        hue = float(np.abs(iris_c / max(iris_c.sum(), 1e-9)
                                           - sclera_c / max(sclera_c.sum(), 1e-9)).sum())
                        lo_h, hi_h = c.iris_hue
                        alike *= 1.0 - float(smoothstep((hue - lo_h) / (hi_h - lo_h)))
                    confidence *= 1.0 - alike
        # catchlights: small spots of the iris disc (inside the lids, give or take ``catch_margin``: the tracked
        # lid often runs through one) much brighter than the iris and than their surroundings, well inside it
        catch = None
        disc = dist < radius
        inner = disc & seen
        if np.count_nonzero(inner) >= 4:
            iris_lum = float(median(lum[inner]))
            span = max(ref * gain_s - iris_lum, 1e-6)
            local = cv2.blur(lum, (5, 5), borderType=cv2.BORDER_REPLICATE)
            low, high = c.catch_level
            # (outside the tracked contour only over the upper lid: under the lower one a bright spot in the
            # disc is the lid's wet margin or the white below the iris, not a reflection on the cornea)
            lids = (distance.sd > 0) | ((distance.sd > -c.catch_margin * fs.w) & (gy < 0))
            mask = (smoothstep((lum - iris_lum - low * span) / ((high - low) * span))
                    * smoothstep((lum - local - 0.1 * span) / (0.2 * span)) * lids).astype(np.float32)
            if mask.any():
                # a spot is small and lies inside the iris (every pixel within ``catch_inside`` x the radius): the
                # white beside or under the iris, which the disc cuts at its edge, runs out past it
                n, labels, stats, cents = cv2.connectedComponentsWithStats((mask > 0.25).astype(np.uint8))
                far = np.zeros(n)
                np.maximum.at(far, labels.ravel(), dist.ravel())
                spot = (stats[:, cv2.CC_STAT_AREA] <= np.pi * (0.3 * radius) ** 2) & (far < c.catch_inside * radius)
                spot[0] = False
                mask *= spot[labels] * disc
                if mask.any():       # dilated by a pixel so the spot keeps its soft edge
                    mask = np.maximum(mask, 0.5 * cv2.dilate(mask, np.ones((3, 3), np.uint8)))
                    catch = np.dstack([crop, mask]).astype(np.float32)
        # the iris as the frame shows it where the lids leave it (its own texture, darkness and catchlights), for
        # the eyeball to draw it round (:meth:`_eyeball`): weight 1 well inside the opening, fading over the lid
        # margin, inside the limbus (the limbus itself is the texture's, round at the radius the eyeball draws: the
        # frame's own edge, a pixel in or out, would dent the circle where it meets the texture)
        shown = None
        if c.iris_own > 0:
            soft = max(c.edge_softness * fs.w, c.min_soft_px)
            inner = 1.0 - smoothstep((dist / radius - c.iris_own_reach) / 0.1 + 0.5)
            weight = (smoothstep((distance.sd - margin) / soft) * inner).astype(np.float32)
            if weight.any():
                shown = np.dstack([crop, c.iris_own * weight]).astype(np.float32)
        return _Seen(centre, radius, gain_s, gain_i, catch, x0, y0, confidence, shown,
                     _skin_chroma(region, src, e, fs))

    def _iris_disc(self, seen: "_Seen", fs: EyeFrame, ft: EyeFrame) -> tuple[np.ndarray, float, float]:
        """Where the eyeball draws the iris in the target: ``(centre, radius, limbus)``, the source's iris seen
        through the eye's similarity and the anti-aliased limbus's width (pixels; :func:`_limbus_alpha`)."""
        return (_similarity(seen.centre[None], fs, ft)[0], seen.radius * ft.w / fs.w,
                max(self.config.limbus_softness * ft.w, 1.0))

    def _eyeball(self, model: EyeModel, texture: np.ndarray, m: int, e: int, dst, pts, seen: "_Seen",
                 fs: EyeFrame, ft: EyeFrame) -> np.ndarray:
        """The eyeball's colour (NxK) at the pixel centres ``pts`` (Nx2) of the target eye ``e``, from model eye
        ``m`` and what the source shows (``seen``)."""
        c = self.config
        contour = EYES[e][0]
        rings, angles = texture.shape[0], texture.shape[1] - 2
        # sclera: colour x shading along the eye x shading under the upper lid
        u = ft.u(pts)
        prof = np.asarray(model.sclera_shading[m], dtype=np.float64)
        along = (u + 1.0) * 0.5 * len(prof) - 0.5                         # the profiles' bin positions
        shade = np.interp(along, np.arange(len(prof)), prof)
        # the closed lid contour's edges: the upper lid's first (UPPER - 1), then the lower lid's, in one pass
        poly = dst[list(contour)]
        dist, _ = segment_distance(pts, poly, np.roll(poly, -1, axis=0))
        d_up = dist[:, :UPPER - 1].min(axis=1) / ft.w
        d_low = dist[:, UPPER - 1:].min(axis=1) / ft.w
        lid = np.asarray(model.lid_shading[m], dtype=np.float64)
        measured = np.interp(d_up / float(model.shadow_reach) * len(lid) - 0.5, np.arange(len(lid)), lid)
        # a soft shadow in a narrow band right under the upper lid (and a fainter one above the lower lid), on
        # sclera and iris alike, from where the coverage starts; on the sclera it is the same shade the measured
        # profile holds (the darker of the two, not their product: the lid's shade counted once)
        edge = c.lid_inset
        reach = max(c.lid_shadow_reach, c.min_soft_px / ft.w, 1e-6)
        upper = 1.0 - c.lid_shadow * (1.0 - smoothstep((d_up - edge) / reach))
        lower = 1.0 - c.lower_lid_shadow * (1.0 - smoothstep((d_low - edge) / reach))
        shade = shade * np.minimum(measured, upper) / upper
        colour = np.asarray(model.sclera_colour[m], dtype=np.float64) * seen.gain_s
        tint = np.asarray(model.sclera_tint[m], dtype=np.float64)
        # the visible sclera's colour, less the skin's bleeding into it: at most ``sclera_chroma`` x the skin's
        # chroma, its other channels raised toward its brightest (the skin's colour pulled them down; a white's
        # brightest channel is the skin's brightest too), its drift along the eye scaled alike
        top = float(colour.max())
        if seen.skin_chroma is not None and top > 0:
            have = (top - float(colour.min())) / max(float(colour.mean()), 1e-9)
            limit = c.sclera_chroma * seen.skin_chroma
            if have > limit:
                keep = limit / have
                colour = top - keep * (top - colour)
                tint = 1.0 + keep * (tint - 1.0)
        tint = np.stack([np.interp(along, np.arange(len(prof)), t) for t in tint.T], axis=1)
        sclera = colour[None] * shade[:, None] * tint
        # the iris: the polar texture, round, where the warp puts the source's iris
        centre, radius, limbus = self._iris_disc(seen, fs, ft)
        rel = pts - centre
        dist = np.hypot(rel[:, 0], rel[:, 1])
        theta = np.mod(np.arctan2(rel[:, 1], rel[:, 0]) - ft.angle, 2.0 * np.pi)
        mx = (theta / (2.0 * np.pi) * angles + 1.0).astype(np.float32)
        my = (dist / radius * rings - 0.5).astype(np.float32)
        iris_px = remap_points(texture, mx, my).reshape(len(pts), -1) * seen.gain_i
        if seen.shown is not None:      # the frame's own iris where it shows, seen round through the similarity
            near = dist < radius + limbus
            if near.any():
                got = sample(seen.shown, _similarity(pts[near], ft, fs) - [seen.x0, seen.y0])
                own, weight, tex = got[:, :-1], got[:, -1:], iris_px[near]
                # the texture where the lids covered the iris, matched per channel to the iris the frame shows
                # (a clip's texture averages many frames: paler and softer than any one)
                both = (weight[:, 0] > 0.5) & (dist[near] < 0.9 * radius)
                if both.sum() >= 8:        # no catchlight in the match (it brightened the texture around it)
                    lum = luminance(own)
                    both &= lum <= c.highlight * median(lum[both])
                if both.sum() >= 8:
                    lo, hi = c.iris_own_gain
                    gain = np.median(own[both], axis=0) / np.maximum(np.median(tex[both], axis=0), 1e-6)
                    tex *= np.clip(gain, lo, hi)
                iris_px[near] = tex + weight * (own - tex)
        alpha = _limbus_alpha(dist, radius, limbus)[:, None]
        eye = sclera + alpha * (iris_px - sclera)
        eye *= (upper * lower)[:, None]
        # the source's catchlights on the cornea, seen through the eye's similarity, where the iris is rendered
        near = dist < radius + limbus
        if seen.catch is not None and near.any():
            q = _similarity(pts[near], ft, fs) - [seen.x0, seen.y0]
            got = sample(seen.catch, q)
            eye[near] += got[:, -1:] * (got[:, :-1] - eye[near])
        return eye.astype(np.float32)


class _Seen(NamedTuple):
    """What the source frame shows of one eye: iris centre (2,) and radius (pixels), sclera and iris gains, the
    catchlights (crop colour + weight channel, or None) and that crop's top-left corner, how sure it is that
    the tracked opening shows an eye at all (0 on a blink the tracker missed), the iris where the lids leave
    it (crop colour + weight channel, or None), and the chroma (max - min over mean of the channels) of the skin
    under the eye (None for fewer than 3 channels)."""

    centre: np.ndarray
    radius: float
    gain_s: float
    gain_i: float
    catch: np.ndarray | None
    x0: int
    y0: int
    confidence: float
    shown: np.ndarray | None
    skin_chroma: float | None = None


def _limbus_alpha(dist: np.ndarray, radius: float, limbus: float) -> np.ndarray:
    """How much of the iris a pixel ``dist`` from the iris centre shows: 1 inside, 0 outside, an anti-aliased
    limbus ``limbus`` pixels wide at ``radius``."""
    return smoothstep((radius - dist) / limbus + 0.5)


def _similarity(points: np.ndarray, fs: EyeFrame, ft: EyeFrame) -> np.ndarray:
    """Points of the source eye mapped by the similarity that takes its corners onto the target's."""
    za = complex(*fs.a)
    alpha = complex(*(ft.b - ft.a)) / complex(*(fs.b - fs.a))
    z = (points[:, 0] + 1j * points[:, 1] - za) * alpha + complex(*ft.a)
    return np.stack([z.real, z.imag], axis=1)


def _skin_chroma(region: np.ndarray, src: np.ndarray, e: int, fs: EyeFrame) -> float | None:
    """The chroma (max - min over the mean of the channels; median) of the skin under eye ``e``: its lower lid's
    points moved 0.15 and 0.25 eye widths down, in the source frame; None for fewer than 3 channels or no such
    pixel in the region."""
    if region.ndim != 3 or region.shape[2] < 3:
        return None
    lower = src[list(EYES[e][0][UPPER:])]
    pts = np.concatenate([lower + d * fs.w * fs.normal for d in (0.15, 0.25)])
    h, w = region.shape[:2]
    xy = np.floor(pts).astype(np.int64)
    ok = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    if not ok.any():
        return None
    vals = region[xy[ok, 1], xy[ok, 0]].astype(np.float64)
    mean = vals.mean(axis=1)
    good = mean > 0
    if not good.any():
        return None
    return float(median((vals.max(axis=1) - vals.min(axis=1))[good] / mean[good]))
