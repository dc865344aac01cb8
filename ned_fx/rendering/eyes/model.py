"""The per-shot eye model (iris texture, pupil, sclera colour and shading per eye) and its builder."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InvalidParameterError
from ._geometry import (EYES, NUM_POINTS, UPPER, EyeFrame, farther_than, luminance, polygon_area, polygon_mask,
                        polygon_sdf, polyline_distance, refine_iris, sample)
from ..sampling import smoothstep
from .config import EyeConfig

_FIELDS = ("iris_texture", "iris_ratio", "pupil_ratio", "pupil_colour", "sclera_colour", "sclera_shading",
           "sclera_tint", "lid_shading", "shadow_reach", "softness", "frames")


@dataclass(frozen=True)
class EyeModel:
    """One actor's eyes (index 0 = the right eye, 1 = the left eye), in the plate's own values.

    Attributes:
        iris_texture: 2xRxAxK the iris in a normalised polar disc: ring r at radius ``(r + 0.5) / R`` iris radii,
            angle a at ``2 pi a / A`` from the eye's corner-to-corner axis (image order, y down), completed round
            where the footage never showed it; the pupil and the limbus are part of it.
        iris_ratio: 2 iris radius x the eye's width (corner to corner).
        pupil_ratio: 2 pupil radius x the iris radius; pupil_colour: 2xK.
        sclera_colour: 2xK the visible sclera's mean colour.
        sclera_shading: 2xU brightness factor along the eye (bins over corner -1 .. corner +1, ~1 on average).
        sclera_tint: 2xUxK the sclera's colour along the eye over its brightness (the same bins): whiter beside
            the iris, pinker toward the corners; ones where the footage cannot tell.
        lid_shading: 2xV brightness factor by distance below the upper lid (bins over 0 .. ``shadow_reach`` x W).
        shadow_reach: scalar, the reach of ``lid_shading`` (x W).
        softness: 2 the plate's blur at the limbus: sigma of a Gaussian edge (x W; 0 where never measured).
        frames: 2 int how many frames showed each eye (0: that eye was never seen open).
    """

    iris_texture: np.ndarray
    iris_ratio: np.ndarray
    pupil_ratio: np.ndarray
    pupil_colour: np.ndarray
    sclera_colour: np.ndarray
    sclera_shading: np.ndarray
    sclera_tint: np.ndarray
    lid_shading: np.ndarray
    shadow_reach: np.ndarray
    softness: np.ndarray
    frames: np.ndarray

    def __post_init__(self) -> None:
        tex = np.asarray(self.iris_texture)
        if tex.ndim != 4 or tex.shape[0] != 2:
            raise InvalidParameterError(f"EyeModel.iris_texture must be 2xRxAxK, got shape {tex.shape}")
        k = tex.shape[3]
        shapes = {"iris_ratio": (2,), "pupil_ratio": (2,), "pupil_colour": (2, k), "sclera_colour": (2, k),
                  "frames": (2,), "shadow_reach": (), "softness": (2,)}
        for name, shape in shapes.items():
            if np.shape(getattr(self, name)) != shape:
                raise InvalidParameterError(f"EyeModel.{name} must have shape {shape}, got "
                                            f"{np.shape(getattr(self, name))}")
        for name in ("sclera_shading", "lid_shading"):
            arr = np.asarray(getattr(self, name))
            if arr.ndim != 2 or arr.shape[0] != 2 or arr.shape[1] < 2:
                raise InvalidParameterError(f"EyeModel.{name} must be 2xN (N >= 2), got shape {arr.shape}")
        tint = np.asarray(self.sclera_tint)
        if tint.shape != np.shape(self.sclera_shading) + (k,):
            raise InvalidParameterError(f"EyeModel.sclera_tint must be 2xUxK like sclera_shading and the iris, got "
                                        f"shape {tint.shape}")

    @property
    def channels(self) -> int:
        return int(self.iris_texture.shape[3])

    def usable(self, eye: int) -> int | None:
        """The model's eye to render ``eye`` with: itself, else the other eye, else None (never seen open)."""
        if self.frames[eye] > 0:
            return eye
        if self.frames[1 - eye] > 0:
            return 1 - eye
        return None

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for the analysis file."""
        return {name: np.asarray(getattr(self, name)) for name in _FIELDS}

    @classmethod
    def from_arrays(cls, d: dict) -> "EyeModel":
        """The inverse of :meth:`to_arrays`.

        Raises:
            InvalidParameterError: a field is missing or has the wrong shape.
        """
        d = dict(d)
        if "sclera_tint" not in d and "sclera_shading" in d and "iris_texture" in d:
            # an analysis file from before the tint: a sclera of one colour along the eye, as it was rendered then
            d["sclera_tint"] = np.ones(np.shape(d["sclera_shading"]) + (np.shape(d["iris_texture"])[-1],))
        missing = [name for name in _FIELDS if name not in d]
        if missing:
            raise InvalidParameterError(f"the eye model is missing {', '.join(missing)} (an analysis file from "
                                        "another version? analyse the shot again)")
        kw = {name: np.asarray(d[name], dtype=np.int64 if name == "frames" else np.float32) for name in _FIELDS}
        return cls(**kw)


class _EyeSums:
    """Running sums for one eye."""

    def __init__(self, config: EyeConfig):
        c = config
        self.tex = None                                     # RxAxK, allocated on the first frame (K known then)
        self.tex_n = np.zeros((c.iris_rings, c.iris_angles))
        self.ratios: list[float] = []
        self.levels: list[float] = []                     # each accepted frame's sclera brightness
        self.softness: list[float] = []
        self.sclera = None
        self.sclera_n = 0
        self.sclera_lum = 0.0
        self.u_moments = np.zeros(5)                      # sum u^0..u^4
        self.u_lum = np.zeros(3)                          # sum lum u^0..u^2
        self.u_col = None                                 # sum colour u^0..u^2 (3xK)
        self.d_moments = np.zeros(3)
        self.d_lum = np.zeros(2)
        self.frames = 0


class EyeModelBuilder:
    """Builds an :class:`EyeModel` from a shot's frames (the ShotModelBuilder protocol of ``rendering.layers``).

    ``add`` every frame with a face (a single still is enough), ``finish`` once.

    Args:
        config: an :class:`EyeConfig` (defaults when None).
    """

    def __init__(self, config: EyeConfig | None = None):
        self.config = config or EyeConfig()
        self._eyes = [_EyeSums(self.config), _EyeSums(self.config)]
        self._channels: int | None = None
        c = self.config
        rho = (np.arange(c.iris_rings) + 0.5) / c.iris_rings
        theta = 2.0 * np.pi * np.arange(c.iris_angles) / c.iris_angles
        self._rho, self._theta = np.meshgrid(rho, theta, indexing="ij")       # RxA

    def add(self, index: int, pixels: np.ndarray, landmarks: np.ndarray) -> None:
        """One frame: HxWxK float32 plate values, 478x3 (or x2) landmarks in plate pixels.

        Raises:
            InvalidParameterError: wrong shapes, or a channel count other than the first frame's.
        """
        pixels = np.asarray(pixels)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        lm = np.asarray(landmarks, dtype=np.float64)
        if pixels.ndim != 3 or lm.ndim != 2 or lm.shape[0] < NUM_POINTS or lm.shape[1] < 2:
            raise InvalidParameterError(f"EyeModelBuilder.add needs HxWxK pixels and {NUM_POINTS}x3 landmarks "
                                        f"(with the iris points), got {pixels.shape} and {lm.shape}")
        if self._channels is None:
            self._channels = pixels.shape[2]
        elif pixels.shape[2] != self._channels:
            raise InvalidParameterError(f"frame {index} has {pixels.shape[2]} colour channels, the shot started "
                                        f"with {self._channels}")
        if not np.all(np.isfinite(lm[:NUM_POINTS, :2])):
            return
        for e, (contour, corners, iris) in enumerate(EYES):
            self._add_eye(self._eyes[e], pixels, lm[:, :2], contour, corners, iris)

    def _add_eye(self, acc: _EyeSums, pixels, lm, contour, corners, iris) -> None:
        c = self.config
        got = eye_crop(pixels, lm, contour, corners, iris, c)
        if got is None:
            return                                          # too small, or a blink: nothing to learn
        frame, poly, (x0, y0, x1, y1), crop, centre, radius, tracked = got
        w = frame.w
        origin = np.array([x0, y0], dtype=np.float64)
        margin = c.lash_margin * w
        soft = None
        if tracked:
            centre, radius, soft = refine_iris(crop, centre, radius, frame, poly, margin, origin)

        # -- the sclera: inside the lids, away from the iris and the lashes
        got = sclera_samples(crop, (x0, y0, x1, y1), poly, centre, radius, margin, c)
        if got is None:
            return
        vals, pts, lum = got
        # a blink the tracker missed shows lashes and lid in the tracked opening: far dimmer "sclera" than the
        # frames so far (the renderer's own test, against the running median)
        level = float(lum.mean())
        if len(acc.levels) >= 3 and level < c.sclera_dim[1] * np.median(acc.levels):
            return
        acc.levels.append(level)
        acc.frames += 1
        if tracked:
            acc.ratios.append(radius / w)
            if soft is not None:
                acc.softness.append(soft / w)
        acc.sclera = vals.sum(0) if acc.sclera is None else acc.sclera + vals.sum(0)
        acc.sclera_n += len(vals)
        acc.sclera_lum += float(lum.sum())
        # shading: normal equations of lum ~ quadratic in u (along the eye), ~ linear in the distance below
        # the upper lid (middle of the eye only)
        u = np.clip(frame.u(pts), -1.0, 1.0)
        powers = u[:, None] ** np.arange(5)[None]
        acc.u_moments += powers.sum(0)
        acc.u_lum += (lum[:, None] * powers[:, :3]).sum(0)
        col = (powers[:, :3, None] * vals[:, None, :]).sum(0)
        acc.u_col = col if acc.u_col is None else acc.u_col + col
        d = polyline_distance(pts, poly[:UPPER]) / w
        near = (np.abs(u) < 0.6) & (d < c.shadow_reach)
        dn = d[near] / c.shadow_reach
        acc.d_moments += (dn[:, None] ** np.arange(3)[None]).sum(0)
        acc.d_lum += (lum[near, None] * dn[:, None] ** np.arange(2)[None]).sum(0)

        # -- the iris on its polar grid, where the lids show it (no catchlight)
        ang = self._theta + frame.angle
        pts = np.stack([centre[0] + radius * self._rho * np.cos(ang),
                        centre[1] + radius * self._rho * np.sin(ang)], axis=-1).reshape(-1, 2)
        sd, _, _ = polygon_sdf(pts, poly)
        seen = sd > margin
        values = sample(crop, pts - origin)
        if acc.tex is None:
            acc.tex = np.zeros(self._rho.shape + (values.shape[1],))
        lum = luminance(values)
        if seen.any():
            ring = np.repeat(np.arange(c.iris_rings), c.iris_angles)
            overall = np.median(lum[seen])
            for r in np.unique(ring[seen]):
                m = seen & (ring == r)
                limit = c.highlight * max(np.median(lum[m]), overall)
                seen &= ~((ring == r) & (lum > limit))
            acc.tex.reshape(-1, values.shape[1])[seen] += values[seen]
            acc.tex_n.reshape(-1)[seen] += 1

    def finish(self) -> EyeModel:
        """The model. Eyes never seen open get ``frames`` 0 (the renderer then uses the other eye, or nothing)."""
        c = self.config
        k = self._channels or 3
        out = {name: [] for name in _FIELDS if name != "shadow_reach"}
        for acc in self._eyes:
            fields = self._finish_eye(acc, k)
            for name, value in fields.items():
                out[name].append(value)
        arrays = {name: np.stack(v).astype(np.int64 if name == "frames" else np.float32) for name, v in out.items()}
        if (arrays["frames"] > 0).all():                     # one pupil size for both eyes (they dilate together)
            arrays["pupil_ratio"][:] = arrays["pupil_ratio"].mean()
        return EyeModel(shadow_reach=np.float32(c.shadow_reach), **arrays)

    def _finish_eye(self, acc: _EyeSums, k: int) -> dict:
        c = self.config
        lo, hi = c.shading_limits
        n = acc.tex_n
        if acc.frames == 0 or acc.sclera is None or acc.tex is None or not n.any():
            return {"iris_texture": np.zeros((c.iris_rings, c.iris_angles, k)), "iris_ratio": c.iris_ratio_default,
                    "pupil_ratio": c.pupil_ratio_default, "pupil_colour": np.zeros(k),
                    "sclera_colour": np.zeros(k), "sclera_shading": np.ones(c.shading_bins),
                    "sclera_tint": np.ones((c.shading_bins, k)),
                    "lid_shading": np.ones(c.shadow_bins), "softness": 0.0, "frames": 0}
        tex = acc.tex / np.maximum(n, 1)[..., None]
        seen = n > 0
        rings = c.iris_rings
        # each ring's median colour where seen (robust to lashes, a catchlight's rim, an off-centre pupil);
        # rings never seen take the nearest seen ring's
        # ... taken from the iris's sides where they show (the cells within ``iris_side_angle`` of the eye's axis):
        # the lids cover its top and bottom in most frames, and the cells seen there near the rim hold lid skin and
        # the lid's shade, brighter than iris (d12 behind glasses: his rings' medians rose from 0.5 radii toward
        # the sclera's brightness, the top and bottom cells passed as iris against them, and the iris drawn round
        # read 0.87-0.89 round, squashed top and bottom)
        angles = 2.0 * np.pi * (np.arange(tex.shape[1]) + 0.5) / tex.shape[1]
        side = np.abs(np.cos(angles)) >= np.cos(np.radians(c.iris_side_angle))
        ring_mean = np.full((rings, k), np.nan)
        for r in range(rings):
            use = seen[r] & side if (seen[r] & side).sum() >= 3 else seen[r]
            if use.any():
                ring_mean[r] = np.median(tex[r][use], axis=0)
        have = np.flatnonzero(~np.isnan(ring_mean[:, 0]))
        for r in range(rings):
            if np.isnan(ring_mean[r, 0]):
                ring_mean[r] = ring_mean[have[np.abs(have - r).argmin()]]
        # the pupil: the dark core of the radial profile
        profile = luminance(ring_mean)
        rho = (np.arange(rings) + 0.5) / rings
        core = profile[rho < 0.2].mean()
        iris_level = np.median(profile[(rho > 0.5) & (rho < 0.85)])
        pupil = c.pupil_ratio_default
        if iris_level - core > 0.15 * max(iris_level, 1e-9):
            above = np.flatnonzero((profile > core + 0.5 * (iris_level - core)) & (rho > 0.1))
            if len(above):
                pupil = float(np.clip(rho[above[0]] - 0.5 / rings, 0.2, 0.55))
        pupil_colour = ring_mean[rho < max(0.8 * pupil, rho[0] + 1e-6)].mean(0)
        # the limbus: the outer rings sample the sclera too where the iris's edge is soft or its radius a little
        # large (WDA: 3-4x the iris's brightness in the last ring, drawn as a pale ring inside the limbus and tinted
        # by the colour match); one brighter than ``limbus_rise`` x the iris's brightest ring takes the last ring's
        # colour that is not
        if c.limbus_rise > 0:
            inner = np.flatnonzero((rho > 0.5) & (rho <= 0.85))
            if len(inner):
                good = int(inner[-1])
                top = c.limbus_rise * profile[inner].max()
                for r in range(good + 1, rings):
                    if profile[r] > top:
                        ring_mean[r] = ring_mean[good]
                    else:
                        good = r
        # completed round: a seen cell keeps its own colour where it is iris-like (within ``iris_detail`` of its
        # ring's), every other cell (hidden by the lids, a lash, a catchlight's rim) takes its ring's colour
        level = np.maximum(luminance(ring_mean), 1e-9)[:, None]
        # (a brighter cell fades out from half ``iris_detail_bright`` above its ring to all of it: lid skin and the
        # sclera beyond a soft rim, which the lids' shade leaves at the top and bottom of d12's iris, are
        # brighter than iris; a hard cut there split cells by how their channels are weighed)
        rel = luminance(tex) / level - 1.0
        bright = min(c.iris_detail, c.iris_detail_bright)
        keep = (seen & (rel > -c.iris_detail)) * (1.0 - smoothstep((rel - 0.5 * bright) / max(0.5 * bright, 1e-9)))
        tex = ring_mean[:, None, :] + keep[..., None] * (tex - ring_mean[:, None, :])
        tex = 0.25 * np.roll(tex, 1, axis=1) + 0.5 * tex + 0.25 * np.roll(tex, -1, axis=1)
        sclera = acc.sclera / acc.sclera_n
        mean_lum = acc.sclera_lum / acc.sclera_n
        u_bins = (np.arange(c.shading_bins) + 0.5) / c.shading_bins * 2.0 - 1.0
        d_bins = (np.arange(c.shadow_bins) + 0.5) / c.shadow_bins
        # along the eye: the footage's own fit of the brightness, else (too little sclera to fit: a small eye, one
        # still) a sphere's falloff into the corners; one colour, moved toward the footage's own fit of each
        # channel as far as its samples outweigh ``profile_prior`` of them
        tint = np.ones((c.shading_bins, k))
        fit = _profile(acc.u_moments, acc.u_lum, u_bins, mean_lum, 0.0, np.inf)
        if fit is None:
            u_prof = _sphere(u_bins, c) / _sphere(np.array([c.corner_reference]), c)
        else:
            u_prof = np.clip(fit, lo, hi)
            trust = acc.u_moments[0] / (acc.u_moments[0] + c.profile_prior)
            if acc.u_col is not None:
                # each channel's fit over the brightness's: the colour's drift along the eye, not its level
                for ch in range(k):
                    got = _profile(acc.u_moments, acc.u_col[:, ch], u_bins, float(sclera[ch]), 0.0, np.inf)
                    if got is not None:
                        tint[:, ch] = 1.0 + trust * (np.clip(got / np.maximum(fit, 1e-6), *c.tint_limits) - 1.0)
        d_prof = _profile(acc.d_moments, acc.d_lum, d_bins, mean_lum, lo, hi)
        if d_prof is None:          # nothing seen near the lid: the prior's linear rise (EyeConfig.lid_prior)
            d_prof = 1.0 - (1.0 - c.lid_prior) * (1.0 - d_bins)
        ratio = float(np.median(acc.ratios)) if acc.ratios else c.iris_ratio_default
        soft = float(np.median(acc.softness)) if acc.softness else 0.0
        return {"iris_texture": tex, "iris_ratio": ratio, "pupil_ratio": pupil, "pupil_colour": pupil_colour,
                "sclera_colour": sclera, "sclera_shading": u_prof, "sclera_tint": tint, "lid_shading": d_prof,
                "softness": soft, "frames": acc.frames}


def eye_crop(pixels: np.ndarray, lm: np.ndarray, contour, corners, iris, config: EyeConfig, channels=None):
    """One eye of a picture, as the model builder and the shut-eye evidence look at it: ``(EyeFrame, lid polygon,
    box (x0, y0, x1, y1), the box's pixels as float32 (``channels``: their indices, None: all), the tracked iris
    centre, its radius (the eye's default ratio where the tracked one is implausible), whether the tracked radius
    was taken)``; None for an eye too small or too closed to look at (``min_opening``). ``lm``: Nx2 landmarks."""
    frame = EyeFrame(lm, corners)
    w = frame.w
    poly = lm[list(contour)]
    if w < 4.0 or polygon_area(poly) / (w * w) < config.min_opening:
        return None
    h_img, w_img = pixels.shape[:2]
    x0, y0 = (int(max(np.floor(poly[:, 0].min()) - 1, 0)), int(max(np.floor(poly[:, 1].min()) - 1, 0)))
    x1, y1 = (int(min(np.ceil(poly[:, 0].max()) + 2, w_img)), int(min(np.ceil(poly[:, 1].max()) + 2, h_img)))
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    crop = pixels[y0:y1, x0:x1]
    crop = np.ascontiguousarray(crop if channels is None else crop[:, :, list(channels)], dtype=np.float32)
    centre = lm[iris[0]]
    radius = float(np.mean(np.hypot(*(lm[list(iris[1:])] - centre).T)))
    tracked = 0.08 * w < radius < 0.4 * w
    if not tracked:
        radius = config.iris_ratio_default * w
    return frame, poly, (x0, y0, x1, y1), crop, centre, radius, tracked


def lid_interior(poly: np.ndarray, box, margin: float) -> np.ndarray:
    """The pixels of ``box`` = (x0, y0, x1, y1) more than ``margin`` inside the lid polygon ``poly`` (not the
    lashes): a bool mask over the box."""
    x0, y0, x1, y1 = box
    return farther_than(polygon_mask(poly, x0, y0, x1, y1), margin + 0.5)


def sclera_samples(crop: np.ndarray, box, poly: np.ndarray, centre: np.ndarray, radius: float, margin: float,
                   config: EyeConfig, seen: np.ndarray | None = None):
    """The visible sclera of one eye: ``(values NxK, pixel centres Nx2, luminance N)`` of the pixels inside the lid
    polygon ``poly`` (more than ``margin`` in: not the lashes), beyond ``sclera_exclusion`` iris radii from the iris
    and at least ``sclera_floor`` of the opening's 90th-percentile brightness (not a lash, the iris or the
    caruncle); None when fewer than 3 pixels qualify. ``crop`` covers ``box`` = (x0, y0, x1, y1) of the picture
    ``poly`` and ``centre`` are in; ``seen``: :func:`lid_interior` of them when the caller has it."""
    x0, y0, x1, y1 = box
    seen = lid_interior(poly, box, margin) if seen is None else seen
    rows, cols = np.nonzero(seen)
    pts = np.stack([cols + (x0 + 0.5), rows + (y0 + 0.5)], axis=1).astype(np.float64)
    keep = np.hypot(*(pts - centre).T) > config.sclera_exclusion * radius
    if np.count_nonzero(keep) < 3:
        return None
    vals = crop[rows[keep], cols[keep]].astype(np.float64)
    pts = pts[keep]
    lum = luminance(vals)
    bright = lum >= config.sclera_floor * np.percentile(lum, 90)
    return vals[bright], pts[bright], lum[bright]


def _sphere(u: np.ndarray, c: EyeConfig) -> np.ndarray:
    """The prior brightness along the eye at ``u`` (-1 .. 1, corner to corner): ``EyeConfig.corner_shading``."""
    r = np.clip((np.abs(u) - c.corner_start) / (1.0 - c.corner_start), 0.0, 1.0)
    return 1.0 - c.corner_shading * r ** 2


def _profile(moments: np.ndarray, lum: np.ndarray, at: np.ndarray, mean: float, lo: float, hi: float) -> np.ndarray:
    """A least-squares polynomial (degree ``len(lum) - 1``) from its normal equations, evaluated at ``at``,
    relative to ``mean``; None where the data cannot tell."""
    deg = len(lum)
    gram = np.array([[moments[i + j] for j in range(deg)] for i in range(deg)])
    if mean <= 0 or moments[0] < 10 * deg or np.linalg.cond(gram) > 1e8:
        return None
    coef = np.linalg.solve(gram, lum)
    return np.clip((at[:, None] ** np.arange(deg)[None]) @ coef / mean, lo, hi)
