"""The skin sub-stage's per-frame step: the folds of the new expression as a multiplicative shading layer."""

from __future__ import annotations

import numpy as np

from ...errors import InvalidParameterError
from ..layers import RegionInputs, RenderedLayer
from ..motion import smear
from .config import SkinConfig
from .model import SkinModel, add_model_change
from .procedural import (ShadingMap, add_cheeks, add_chin_relax, add_creases, add_glabella_relax, add_socket_lift,
                         add_softening, build_creases, face_frame, fold_drives, socket_gains)

#: Log-luminance changes below this are no change (1e-5: far below one 16-bit step).
_EPS = 1e-5


class SkinRenderer:
    """Shades the folds that come with an expression change over the warped skin.

    Args:
        model: the actor's :class:`~ned_fx.rendering.skin.model.SkinModel` (from :class:`SkinModelBuilder`):
            the AUs it covers are shaded as this actor's skin does; the others (and everything when None, e.g. on
            a lone still) get the procedural folds.
        config: a :class:`SkinConfig`.
    """

    def __init__(self, model: SkinModel | None = None, config: SkinConfig | None = None):
        self.model = model
        self.config = config or SkinConfig()

    def log_shading(self, inputs: RegionInputs, au_names, au_src, au_dst) -> np.ndarray | None:
        """HxW float32 natural-log luminance change of the frame (None when no fold changes)."""
        shading = self._shading(inputs, au_names, au_src, au_dst)
        if shading is None:
            return None
        if shading.colour is None:
            return shading.values
        # the colour changes' luminance (the luma weights of the per-channel log changes: close for the small,
        # nearly grey changes a lifted socket makes)
        out = shading.values.copy()
        c0, r0, c1, r1 = shading.colour_box
        out[r0:r1, c0:c1] += _luma(shading.colour[r0:r1, c0:c1])
        return out

    def _shading(self, inputs: RegionInputs, au_names, au_src, au_dst) -> ShadingMap | None:
        au_src = np.asarray(au_src, np.float64).reshape(-1)
        au_dst = np.asarray(au_dst, np.float64).reshape(-1)
        if len(au_src) != len(au_names) or len(au_dst) != len(au_names):
            raise InvalidParameterError(f"skin shading needs one activation per AU ({len(au_names)}), got "
                                        f"{len(au_src)} source and {len(au_dst)} target values")
        # (a stretched socket follows the landmarks, but only where the expression changes: no AU change, no layer)
        moved = bool(np.any(np.abs(np.nan_to_num(au_dst - au_src)) >= self.config.min_change))
        change = None
        if self.model is not None:      # the AUs the actor's own frames cover are the model's, not the folds'
            change = self.model.change(au_names, au_src, au_dst)
            au_dst = au_dst - self.model.covered(au_names, au_src, au_dst)
        drives = fold_drives(au_names, au_src, au_dst, self.config)
        dst = np.asarray(inputs.dst, np.float64)
        src = np.asarray(inputs.src, np.float64)
        finite = np.isfinite(dst[:468, :2]).all() and np.isfinite(src[:468, :2]).all()
        sockets = socket_gains(src, dst, self.config) if finite and moved else [None, None]
        if not drives and change is None and all(g is None for g in sockets):
            return None
        frame = face_frame(dst)
        if frame is None or not finite:
            return None
        shading = ShadingMap(inputs.size)
        if change is not None:
            add_model_change(shading, self.model, change, dst, frame.iod, self.config)
        creases = build_creases(dst, drives, self.config)
        add_creases(shading, creases, frame.iod, self.config)
        add_cheeks(shading, dst, drives.get("cheek", 0.0), frame.iod, self.config)
        warped = inputs.warped
        # a frown taken away has its furrows flattened, a pout its chin and marionette folds (not softened as well:
        # both lift the same darkening of the plate)
        relaxed = {"glabella"} if self.config.relax > 0 else set()
        if relaxed and drives.get("chin", 0.0) < 0:
            relaxed.add("marionette")
        add_softening(shading, lambda b: _luma(warped[b[1]:b[3], b[0]:b[2]]),
                      [c for c in creases if c.fold not in relaxed], frame.iod, self.config)
        pixels_of = lambda b: warped[b[1]:b[3], b[0]:b[2]]       # noqa: E731
        if relaxed and drives.get("glabella", 0.0) < 0:
            add_glabella_relax(shading, pixels_of, dst, frame, drives["glabella"], self.config, inputs.valid)
        if "marionette" in relaxed:
            add_chin_relax(shading, pixels_of, dst, frame, drives["chin"], self.config, inputs.valid)
        add_socket_lift(shading, pixels_of, dst, frame, sockets, inputs.valid, self.config)
        if shading.box is None:
            return None
        if inputs.smear is not None:        # the camera's motion blur of this frame (the warp's pixels have it)
            shading.box = smear(shading.values, shading.box, inputs.smear)
            if shading.colour is not None:
                shading.colour_box = smear(shading.colour, shading.colour_box, inputs.smear)
        x0, y0, x1, y1 = shading.box
        sub = shading.values[y0:y1, x0:x1]
        openings = _openings(sub.shape, dst, x0, y0)
        np.copyto(sub, 0.0, where=openings)
        keep = None
        if inputs.valid is not None:
            keep = np.clip(np.asarray(inputs.valid[y0:y1, x0:x1], np.float32), 0.0, 1.0)
            sub *= keep
        covered = np.abs(sub) > _EPS
        if shading.colour is not None:          # the colour changes, over their own (smaller) box
            c0, r0, c1, r1 = shading.colour_box
            tint = shading.colour[r0:r1, c0:c1]
            inner = (slice(r0 - y0, r1 - y0), slice(c0 - x0, c1 - x0))
            shut = openings[inner]
            if shut.any():
                tint *= ~shut[:, :, None]
            if keep is not None:
                tint *= keep[inner][:, :, None]
            lit = covered[inner]
            for c in range(3):      # (a reduction over the 3-long axis is slow)
                lit |= np.abs(tint[:, :, c]) > _EPS
        if not covered.any():
            return None
        shading.covered = covered
        return shading

    def render(self, inputs: RegionInputs, au_names, au_src, au_dst) -> RenderedLayer | None:
        """The fold layer of one frame.

        Args:
            inputs: the frame's :class:`~ned_fx.rendering.layers.RegionInputs` (``warped`` is shaded; ``dst``
                places the folds; ``valid`` keeps them off occluders).
            au_names: the K AU names; au_src, au_dst: the frame's K source and target activations (NaN: none).

        Returns:
            a :class:`~ned_fx.rendering.layers.RenderedLayer` (``pixels = warped * ratio`` where the folds are,
            coverage 1 there), or None when no fold changes (no AU change: the warp is left bit-exact).

        Raises:
            InvalidParameterError: the activations do not match the AU names.
        """
        shading = self._shading(inputs, au_names, au_src, au_dst)
        if shading is None:
            return None
        x0, y0, x1, y1 = shading.box
        flat = shading.values[y0:y1, x0:x1]
        warped = np.asarray(inputs.warped, np.float32)
        k = warped.shape[2] if warped.ndim == 3 else 1
        # the layer's pixels only matter where it covers, all inside the box: zeros elsewhere (no copy of the plate)
        pixels = np.zeros(warped.shape, np.float32)
        region = pixels[y0:y1, x0:x1]
        if k == 3:      # skin in shadow is a little warmer: one exponent per channel
            ratio = np.empty((y1 - y0, x1 - x0, 3), np.float32)
            for c, w in enumerate(self.config.warmth):     # (numpy's broadcast over a 3-long axis is slow)
                np.multiply(flat, np.float32(w), out=ratio[:, :, c])
            if shading.colour is not None:      # the colour changes (a lifted socket) on top
                c0, r0, c1, r1 = shading.colour_box
                ratio[r0 - y0:r1 - y0, c0 - x0:c1 - x0] += shading.colour[r0:r1, c0:c1]
            np.exp(ratio, out=ratio)
            np.multiply(warped[y0:y1, x0:x1], ratio, out=region)
        else:
            ratio = np.exp(flat)
            region[...] = warped[y0:y1, x0:x1]
            for c in range(k):
                region[:, :, c] *= ratio
        if inputs.white > 1.0:      # integer plates: stay in range
            np.clip(region, 0.0, float(inputs.white), out=region)
        coverage = np.zeros(warped.shape[:2], np.float32)
        coverage[y0:y1, x0:x1] = shading.covered
        return RenderedLayer(pixels, coverage, "skin")


def _openings(shape: tuple[int, int], dst: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """The target's mouth opening and eye openings in a box at ``(x0, y0)`` (bool): no shading there, that is the
    mouth and eye sub-stages' new content (teeth, eyeballs), never skin."""
    import cv2

    from ...topology import LEFT_EYE, LIPS_INNER, RIGHT_EYE

    mask = np.zeros(shape, np.uint8)
    for contour in (LIPS_INNER, RIGHT_EYE, LEFT_EYE):
        poly = np.round((dst[list(contour), :2] - [x0, y0]) * 16).astype(np.int32)
        cv2.fillPoly(mask, [poly], 1, cv2.LINE_8, 4)
    return mask.view(bool)


def _luma(pixels: np.ndarray) -> np.ndarray:
    p = np.asarray(pixels, np.float32)
    if p.ndim == 2:
        return p
    if p.shape[2] >= 3:     # 0.2126 r + 0.7152 g + 0.0722 b in float32, in that order, with one temporary
        out = np.multiply(p[:, :, 0], np.float32(0.2126))
        tmp = np.multiply(p[:, :, 1], np.float32(0.7152))
        out += tmp
        out += np.multiply(p[:, :, 2], np.float32(0.0722), out=tmp)
        return out
    return p[:, :, 0]
