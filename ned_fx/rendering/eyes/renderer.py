"""EyeRenderer: an eyeball behind the target lids, laid only where the target opens the eye beyond the source."""

from __future__ import annotations

import numpy as np

from ...errors import InvalidParameterError
from ..layers import RegionInputs, RenderedLayer
from ._geometry import (EYES, NUM_POINTS, UPPER, EyeDistance, EyeFrame, inner_distance, luminance, polygon_mask,
                        polygon_sdf, polyline_distance, refine_iris, sample, smoothstep)
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
        for e, rows, cols, cov in plans:
            m = model.usable(e)
            if m is None:
                continue
            pixels[rows, cols] = self._paint(model, textures[m], m, e, src[:, :2], dst[:, :2], region, rows, cols)
            coverage[rows, cols] = np.maximum(coverage[rows, cols], cov)
        if not coverage.any():
            return None
        return RenderedLayer(pixels, coverage, self.name)

    # ---- where -----------------------------------------------------------------------------------------------
    def _coverage(self, e: int, src: np.ndarray, dst: np.ndarray, h: int, w: int, valid):
        """(eye, rows, cols, coverage, pixel centres Nx2) of the pixels the eyeball covers, or None."""
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
        inset = max(c.lid_inset * ft.w, soft)
        blend = max(c.blend * ft.w, soft)
        x0, y0 = int(max(np.floor(poly_t[:, 0].min()) - 1, 0)), int(max(np.floor(poly_t[:, 1].min()) - 1, 0))
        x1, y1 = int(min(np.ceil(poly_t[:, 0].max()) + 2, w)), int(min(np.ceil(poly_t[:, 1].max()) + 2, h))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        # candidates: pixel centres inside the target opening and not deep inside the source's (pixel-accurate
        # masks), then exact distances on those only
        inside = polygon_mask(poly_t, x0, y0, x1, y1)
        in_s = polygon_mask(poly_s, x0, y0, x1, y1)
        inside &= inner_distance(in_s) < min(c.reach * out.max(), c.reach_max * ft.w) + blend + 1.5
        if valid is not None:
            inside &= np.asarray(valid)[y0:y1, x0:x1] > 0
        rows, cols = np.nonzero(inside)
        if not len(rows):
            return None
        pts = np.stack([cols + (x0 + 0.5), rows + (y0 + 0.5)], axis=1).astype(np.float64)
        sd_t, _, _ = polygon_sdf(pts, poly_t, inside=True)
        keep = sd_t > inset
        pts, sd_t, rows, cols = pts[keep], sd_t[keep], rows[keep], cols[keep]
        if not len(pts):
            return None
        sd_s, j, tau = polygon_sdf(pts, poly_s, inside=in_s[rows, cols])
        # the lid's local outward movement, along the source's lid: the eyeball covers the source's opening
        # fully that deep (times ``reach``), then fades to the real eye over at most ``blend``
        moved = (1.0 - tau) * out[j] + tau * out[(j + 1) % len(out)]
        reach = np.minimum(c.reach * moved, c.reach_max * ft.w)
        ramp = np.minimum(moved, blend) + 1e-9
        cov = smoothstep((sd_t - inset) / soft) * (1.0 - smoothstep((sd_s - reach) / ramp))
        if valid is not None:
            cov = cov * np.asarray(valid, dtype=np.float64)[rows + y0, cols + x0]
        keep = cov > 0
        if not keep.any():
            return None
        return e, rows[keep] + y0, cols[keep] + x0, cov[keep].astype(np.float32)

    # ---- what ------------------------------------------------------------------------------------------------
    def _paint(self, model, texture, m: int, e: int, src, dst, region, rows, cols) -> np.ndarray:
        """The eyeball at the region pixels (rows, cols): rendered over their bounding box, softened by
        ``config.blur`` to sit in the plate's softness."""
        import cv2

        h, w = region.shape[:2]
        sigma = self.config.blur * EyeFrame(dst, EYES[e][1]).w
        pad = int(np.ceil(2.5 * sigma)) + 1 if sigma >= 0.3 else 0
        r0, r1 = max(int(rows.min()) - pad, 0), min(int(rows.max()) + pad + 1, h)
        c0, c1 = max(int(cols.min()) - pad, 0), min(int(cols.max()) + pad + 1, w)
        gx, gy = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
        pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
        # the source's iris as the image shows it (the tracked centre is often a pixel off), and where the warp
        # puts it: the real iris and the rendered one meet without a step
        contour, corners, iris = EYES[e]
        fs, ft = EyeFrame(src, corners), EyeFrame(dst, corners)
        expected = float(model.iris_ratio[m]) * fs.w
        poly = src[list(contour)]
        reach = 1.6 * expected + 2
        c = src[iris[0]]
        distance = EyeDistance(poly, int(max(min(poly[:, 0].min(), c[0] - reach), 0)),
                               int(max(min(poly[:, 1].min(), c[1] - reach), 0)),
                               int(min(max(poly[:, 0].max(), c[0] + reach) + 1, w)),
                               int(min(max(poly[:, 1].max(), c[1] + reach) + 1, h)))
        centre, radius = refine_iris(region, c, expected, fs, poly, self.config.lash_margin * fs.w,
                                     distance=distance)
        radius = float(np.clip(radius, 0.9 * expected, 1.1 * expected))
        src, dst = src.copy(), dst.copy()
        src[iris[0]] = centre
        dst[iris[0]] = _similarity(centre[None], fs, ft)[0]
        eye = self._eyeball(model, texture, m, e, src, dst, region, pts, radius, distance)
        eye = eye.reshape(r1 - r0, c1 - c0, -1)
        if pad:
            eye = cv2.GaussianBlur(eye, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE).reshape(eye.shape)
        return eye[rows - r0, cols - c0]

    def _eyeball(self, model: EyeModel, texture: np.ndarray, m: int, e: int, src, dst, region, pts,
                 radius_s: float, distance: EyeDistance) -> np.ndarray:
        """The eyeball's colour (NxK) at the pixel centres ``pts`` (Nx2) of the target eye ``e``, from model eye
        ``m``; ``radius_s``: the source's iris radius (pixels); ``distance``: to the source's lids."""
        import cv2

        c = self.config
        contour, corners, iris = EYES[e]
        ft = EyeFrame(dst, corners)
        rings, angles = texture.shape[0], texture.shape[1] - 2
        gain_s, gain_i = self._gains(model, texture, m, e, src, region, radius_s)
        # sclera: colour x shading along the eye x shading under the upper lid
        u = ft.u(pts)
        prof = np.asarray(model.sclera_shading[m], dtype=np.float64)
        shade = np.interp((u + 1.0) * 0.5 * len(prof) - 0.5, np.arange(len(prof)), prof)
        d_up = polyline_distance(pts, dst[list(contour[:UPPER])]) / ft.w
        lid = np.asarray(model.lid_shading[m], dtype=np.float64)
        shade = shade * np.interp(d_up / float(model.shadow_reach) * len(lid) - 0.5, np.arange(len(lid)), lid)
        colour = np.asarray(model.sclera_colour[m], dtype=np.float64) * gain_s
        sclera = colour[None] * shade[:, None]
        # the iris: the polar texture, round, at the target's iris centre
        centre = dst[iris[0]]
        radius = radius_s * ft.w / EyeFrame(src, corners).w
        rel = pts - centre
        dist = np.hypot(rel[:, 0], rel[:, 1])
        theta = np.mod(np.arctan2(rel[:, 1], rel[:, 0]) - ft.angle, 2.0 * np.pi)
        mx = (theta / (2.0 * np.pi) * angles + 1.0).astype(np.float32).reshape(1, -1)
        my = (dist / radius * rings - 0.5).astype(np.float32).reshape(1, -1)
        iris_px = cv2.remap(texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        iris_px = iris_px.reshape(len(pts), -1).astype(np.float64) * gain_i
        limbus = max(c.limbus_softness * ft.w, 1.0)
        alpha = smoothstep((radius - dist) / limbus + 0.5)[:, None]      # an anti-aliased limbus
        eye = sclera + alpha * (iris_px - sclera)
        # a soft shadow right under the upper lid, on sclera and iris alike
        edge = max(c.lid_inset * ft.w, max(c.edge_softness * ft.w, c.min_soft_px)) / ft.w   # where coverage starts
        eye *= (1.0 - c.lid_shadow * (1.0 - smoothstep((d_up - edge) / max(c.lid_shadow_reach, 1e-6))))[:, None]
        # the source's catchlights on the cornea, where the rendered iris covers them
        near = dist < radius + limbus
        if near.any():
            light = self._catchlights(e, src, dst, region, pts[near], float(luminance(colour)), radius_s,
                                      distance)
            if light is not None:
                value, weight = light
                eye[near] += weight[:, None] * (value - eye[near])
        return eye.astype(np.float32)

    def _catchlights(self, e: int, src, dst, region, pts, sclera_lum: float, radius: float,
                     distance: EyeDistance):
        """The source's catchlights seen through the eye's similarity at target points ``pts`` (Nx2): (NxK
        values, N weights 0..1), or None when the source shows none there.

        A catchlight is a small spot of the source's iris disc (inside the lids, give or take ``catch_margin``:
        the tracked lid often runs through it) much brighter than the iris and than its surroundings."""
        import cv2

        c = self.config
        contour, corners, iris = EYES[e]
        fs, ft = EyeFrame(src, corners), EyeFrame(dst, corners)
        centre = src[iris[0]]
        h, w = region.shape[:2]
        x0, y0 = int(max(np.floor(centre[0] - radius) - 3, 0)), int(max(np.floor(centre[1] - radius) - 3, 0))
        x1, y1 = int(min(np.ceil(centre[0] + radius) + 4, w)), int(min(np.ceil(centre[1] + radius) + 4, h))
        if x1 - x0 < 3 or y1 - y0 < 3:
            return None
        crop = region[y0:y1, x0:x1]
        lum = luminance(crop.astype(np.float32))
        grid = np.stack(np.meshgrid(np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5), axis=-1).reshape(-1, 2)
        sd = distance(grid).reshape(lum.shape)
        disc = np.hypot(grid[:, 0] - centre[0], grid[:, 1] - centre[1]).reshape(lum.shape) < radius
        inner = disc & (sd > c.lash_margin * fs.w)
        if np.count_nonzero(inner) < 4:
            return None
        iris_lum = float(np.median(lum[inner]))
        span = max(sclera_lum - iris_lum, 1e-6)
        local = cv2.blur(lum, (5, 5), borderType=cv2.BORDER_REPLICATE)
        mask = (smoothstep((lum - iris_lum - 0.45 * span) / (0.3 * span))
                * smoothstep((lum - local - 0.1 * span) / (0.2 * span))
                * (disc & (sd > -c.catch_margin * fs.w)))
        if not mask.any():
            return None
        # catchlights are small spots well inside the iris; a lit patch of lid skin is larger or on its rim
        n, labels, stats, cents = cv2.connectedComponentsWithStats((mask > 0.25).astype(np.uint8), connectivity=8)
        spot = np.zeros(n, bool)
        for i in range(1, n):
            off = np.hypot(cents[i, 0] + x0 + 0.5 - centre[0], cents[i, 1] + y0 + 0.5 - centre[1])
            spot[i] = stats[i, cv2.CC_STAT_AREA] <= np.pi * (0.3 * radius) ** 2 and off < 0.9 * radius
        mask = mask * spot[labels]
        if not mask.any():
            return None
        # dilate by a pixel so the spot keeps its soft edge
        mask = np.maximum(mask, 0.5 * cv2.dilate(mask.astype(np.float32), np.ones((3, 3), np.uint8)))
        alpha_inv = complex(*(fs.b - fs.a)) / complex(*(ft.b - ft.a))
        z = (pts[:, 0] + 1j * pts[:, 1] - complex(*ft.a)) * alpha_inv + complex(*fs.a)
        q = np.stack([z.real - x0, z.imag - y0], axis=1)
        got = sample(np.dstack([crop, mask.astype(np.float32)]), q)
        weight = got[:, -1]
        if not (weight > 1e-3).any():
            return None
        return got[:, :-1].astype(np.float64), weight.astype(np.float64)

    def _gains(self, model: EyeModel, texture: np.ndarray, m: int, e: int, src, region,
               radius: float) -> tuple[float, float]:
        """This frame's brightness against the model's: (sclera gain, iris gain), from what the source shows."""
        c = self.config
        lo, hi = c.colour_match_limits
        contour, corners, iris = EYES[e]
        fs = EyeFrame(src, corners)
        poly = src[list(contour)]
        h, w = region.shape[:2]
        x0, y0 = int(max(np.floor(poly[:, 0].min()), 0)), int(max(np.floor(poly[:, 1].min()), 0))
        x1, y1 = int(min(np.ceil(poly[:, 0].max()) + 1, w)), int(min(np.ceil(poly[:, 1].max()) + 1, h))
        gain_s = gain_i = 1.0
        if x1 - x0 < 2 or y1 - y0 < 2:
            return gain_s, gain_i
        seen = inner_distance(polygon_mask(poly, x0, y0, x1, y1)) > c.lash_margin * fs.w + 0.5
        rows, cols = np.nonzero(seen)
        if len(rows) < 8:
            return gain_s, gain_i
        pts = np.stack([cols + (x0 + 0.5), rows + (y0 + 0.5)], axis=1)
        centre = src[iris[0]]
        rel = pts - centre
        dist = np.hypot(rel[:, 0], rel[:, 1])
        lum = luminance(region[rows + y0, cols + x0].astype(np.float64))
        ref = float(luminance(np.asarray(model.sclera_colour[m], dtype=np.float64)))
        sclera = dist > c.sclera_exclusion * radius
        if np.count_nonzero(sclera) >= 8 and ref > 0:
            vals = lum[sclera]
            vals = vals[vals >= c.sclera_floor * np.percentile(vals, 90)]
            gain_s = float(np.clip(vals.mean() / ref, lo, hi))
        ring = (dist < 0.9 * radius) & (dist > 0.5 * radius)
        if np.count_nonzero(ring) >= 8:
            theta = np.mod(np.arctan2(rel[ring, 1], rel[ring, 0]) - fs.angle, 2.0 * np.pi)
            rings, angles = texture.shape[0], texture.shape[1] - 2
            cells = np.stack([theta / (2.0 * np.pi) * angles + 1.5, dist[ring] / radius * rings], axis=1)
            model_lum = luminance(sample(texture, cells).astype(np.float64))
            vals = lum[ring]
            ok = vals < c.highlight * np.median(vals)
            if ok.sum() >= 8 and model_lum[ok].mean() > 0:
                gain_i = float(np.clip(vals[ok].mean() / model_lum[ok].mean(), lo, hi))
        return gain_s, gain_i


def _similarity(points: np.ndarray, fs: EyeFrame, ft: EyeFrame) -> np.ndarray:
    """Points of the source eye mapped by the similarity that takes its corners onto the target's."""
    za = complex(*fs.a)
    alpha = complex(*(ft.b - ft.a)) / complex(*(fs.b - fs.a))
    z = (points[:, 0] + 1j * points[:, 1] - za) * alpha + complex(*ft.a)
    return np.stack([z.real, z.imag], axis=1)
