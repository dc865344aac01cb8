"""RendererConfig: the one home of the geometry renderer's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidParameterError

INTERPOLATIONS = ("bilinear", "bicubic")


@dataclass(frozen=True)
class RendererConfig:
    """Every knob of the geometry renderer (target mesh -> displacement field -> resampled plate region).

    Lengths given "x IOD" are fractions of the target face's inter-ocular distance (outer eye corners), so a
    setting means the same on a 512² clip and on a 4K plate.

    Attributes:
        region_margin: margin around the landmarks' bounding box for :func:`face_region_box`, as a fraction of
            the box's longer side on each side.
        field_cells: cells of the displacement-field grid along the region's longer side. The field is
            computed on this grid and upsampled (bilinear) to the region's native size; the image itself is
            always resampled at native resolution. 192 gives about 65-75 cells per inter-ocular distance at any
            plate resolution; the field's reconstruction error near lids and lips is about one cell (fewer cells are
            faster: 128 saves ~3 ms per frame on 2 CPU cores).
        refine_above_px, refine_cell_px, refine_margin, refine_max_cells: where the coarse field's cell is
            larger than ``refine_above_px`` pixels (192 cells over a large face: d19's 609x544 region on a 720²
            still, 3.2 px a cell; ~7.7 on a 4K plate's 1500-px face) and the mouth's inner contour bends against the
            source by at least one such cell, the field around the mouth (its target contour's box grown by
            ``refine_margin`` coarse cells) is computed again with cells of ``refine_cell_px`` pixels (larger where
            the box would need more than ``refine_max_cells``) and laid over the coarse one, feathered over its
            outer two coarse cells: a lip margin moved far (d19's gasp closed into a smile or a pressed mouth)
            otherwise comes out stair-stepped at the coarse cell. The eyes are not refined (their sub-stage paints
            the new eye at native resolution; refining them changed 282 of d19's pixels, none visibly, and cost
            3x the mouth's). Cost: 4K, WDA scaled up, surprised: render 0.70 -> 0.76 s a frame. The shared 512²
            clips (2.0-2.8 px a cell, their lips' new edges alike at 4x zoom with and without) are not refined.
            ``refine_above_px`` 0 switches it off. The per-frame CPU/OpenCV path only (``render`` on numpy).
        interpolation: "bilinear" (default) or "bicubic" resampling of the plate. Expression warps are small
            and smooth (local scale ~0.8..1.25), so bilinear neither aliases nor blurs visibly; bicubic is
            sharper on magnified areas and ~1.5x slower.
        falloff: outside the mesh the displacement decays smoothly (Shepard interpolation of the boundary
            values times a smoothstep) to zero over this distance (x IOD).
        hole_band: inside the mouth and eye openings the content moves by a similarity transform (teeth move
            rigidly, irises stay round); the mismatch with the lips/lids is absorbed in a band along the
            contour this wide (x the opening's corner-to-corner width) ...
        fold_guard: ... but at least this many times the largest mismatch, so the band never folds over.
        lid_margin: where a lid moves over the eyeball (a lowered upper lid, a raised lower one), the eyeball
            layer starts this far (x the eye's corner-to-corner width; at most as far as the lid moved, and 0.4 of
            the lids' gap) inside the target lid, and the face layer shows the lid's margin there: the tracked lid
            often runs along the top of the lash band or through it, and the eyeball cut at it took the margin and
            its lashes away (d19's sad lids came out as bare skin down to the iris). 0: the eyeball up to the lid.
        mouth_interior: ``"follow"`` (default): the mouth interior (teeth, tongue) follows the inner lips
            smoothly, mapped from the source's interior point for point, so a smile's raised corners still show
            the source's teeth; ``"rigid"``: it moves by one similarity transform (never bends, but where the
            target opening leaves the source's it shows the dark fill).
        mouth_fill: where the target mouth is open but the source shows no mouth interior there (e.g. opening a
            closed mouth), paint a dark mouth-interior colour instead of stretching the lips.
        mouth_fill_gain: that colour is the mean of the darkest samples along/inside the source's inner lip
            contour, times this gain (0..1).
        mouth_fill_samples: how many of the darkest samples are averaged.
        fold_limit: a frame whose target turns the skin's triangles over by more than this much area in all
            (x the inter-ocular distance squared) has that fold relaxed before it is rendered, in full from twice
            it (:func:`~ned_fx.rendering.mesh.untangle`; the shared clips' edits turn up to 0.024 over at intensity
            1.5, hidden in a pressed brow, lid or lip line; d19's gasp closed by neutral 0.072: a tear across both
            cheeks). 0: never.
        frown_lift: the share of the brow furrow the picture shows beyond the fitted brow lowerer (the shot
            models' ``furrow``, AU4 activations measured by the skin's evidence) that the brows' geometry follows:
            an edit that takes the source's frown away (neutral, happy, surprised) raises and parts the brows by
            this much of AU4 where the mesh did not see them drawn down (:func:`~ned_fx.pipeline.lift_hidden_frown`;
            d3.mp4 frowns with her tracked brows 0.02 IOD below their rest). 0.35: the knit eases to a relaxed
            brow; 0.5 and more arch the brows with a pale rim above them (the mesh's brows sit above the drawn-down
            real ones, so the lift is taken at the wrong height), 1 stretches the lids. 0: the brows stay as the
            mesh has them.
        pout_lift: the share of the lip corner depressor the picture shows beyond the fitted one (the shot models'
            ``pout``: the marionette lines of a pout whose corners the mesh puts inside and above the real ones,
            d8.jpg) that the mouth's geometry follows (:func:`~ned_fx.pipeline.lift_hidden`): neutral or happy raise
            the corners by this much of that AU15. 0: the corners stay as the mesh has them.
        device: torch device for the field computation and the batched module ("cpu", "cuda", ...).
    """

    region_margin: float = 0.25
    field_cells: int = 192
    refine_above_px: float = 3.0
    refine_cell_px: float = 1.0
    refine_margin: float = 6.0
    refine_max_cells: int = 32768
    interpolation: str = "bilinear"
    falloff: float = 0.6
    hole_band: float = 0.2
    fold_guard: float = 2.0
    lid_margin: float = 0.06
    mouth_interior: str = "follow"
    mouth_fill: bool = True
    mouth_fill_gain: float = 0.6
    mouth_fill_samples: int = 4
    fold_limit: float = 0.025
    frown_lift: float = 0.35
    pout_lift: float = 1.0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise InvalidParameterError(
                f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        if not 0.0 <= self.region_margin <= 2.0:
            raise InvalidParameterError(f"region_margin must be between 0 and 2, got {self.region_margin}")
        if not 8 <= self.field_cells <= 1024:
            raise InvalidParameterError(f"field_cells must be between 8 and 1024, got {self.field_cells}")
        if not (0.0 <= self.refine_above_px < 1e4 and 0.25 <= self.refine_cell_px < 1e4
                and 0.0 <= self.refine_margin <= 100.0):
            raise InvalidParameterError(f"refine_above_px must be >= 0, refine_cell_px >= 0.25 and refine_margin "
                                        f"0..100, got {self.refine_above_px}, {self.refine_cell_px}, "
                                        f"{self.refine_margin}")
        if not 1024 <= self.refine_max_cells <= 1 << 24:
            raise InvalidParameterError(f"refine_max_cells must be between 1024 and 16777216, got "
                                        f"{self.refine_max_cells}")
        if not 0.0 <= self.lid_margin <= 0.5:
            raise InvalidParameterError(f"lid_margin must be between 0 and 0.5, got {self.lid_margin}")
        if not self.fold_limit >= 0:
            raise InvalidParameterError(f"fold_limit must be >= 0, got {self.fold_limit}")
        if not 0.0 <= self.frown_lift <= 1.0:
            raise InvalidParameterError(f"frown_lift must be between 0 and 1, got {self.frown_lift}")
        if not 0.0 <= self.pout_lift <= 1.0:
            raise InvalidParameterError(f"pout_lift must be between 0 and 1, got {self.pout_lift}")
        for name in ("falloff", "hole_band", "fold_guard"):
            if not getattr(self, name) > 0:
                raise InvalidParameterError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.mouth_interior not in ("follow", "rigid"):
            raise InvalidParameterError(f"mouth_interior must be 'follow' or 'rigid', got {self.mouth_interior!r}")
        if not 0.0 <= self.mouth_fill_gain <= 1.0:
            raise InvalidParameterError(f"mouth_fill_gain must be between 0 and 1, got {self.mouth_fill_gain}")
        if not 1 <= self.mouth_fill_samples <= 29:
            raise InvalidParameterError(f"mouth_fill_samples must be between 1 and 29, got {self.mouth_fill_samples}")
