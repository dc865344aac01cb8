"""BrowConfig: the one home of the brow sub-stage's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import InvalidParameterError


@dataclass(frozen=True)
class BrowConfig:
    """Every knob of the brow strip's re-render.

    Attributes:
        fringe: the share of the source strip (brow's lower edge -> lash band) that moves rigidly with the brow:
            the brow's lower fringe of hairs and the skin under the brow ridge (the tracked lower brow edge runs
            through the hairs, not below them).
        columns: samples along each brow (the strip is resampled to this many columns; along each column the
            mapping is exact: rigid over the fringe, linear below it).
        min_stretch: a strip column must grow by at least this factor for the layer to change it (below it the
            warp's own even stretch is kept; the coverage ramps in over the next ``ramp``).
        ramp: the coverage reaches 1 at ``min_stretch + ramp``.
        end_feather: the coverage fades in over this share of the brow's length at each end (the brow's head
            and tail, where the strip narrows to nothing), so the layer meets the warp without a seam.
        max_stretch: the strip is never treated as growing by more than this (a folded or degenerate frame).
        hair_contrast, hair_margin, max_fringe: a thick, low brow's hair reaches below its tracked lower edge
            down the strip (d19: to the lash band's ring): stretched evenly it smeared into a band of hair down to
            the lids under sad. Per column the source strip is looked at (its luminance from the brow's edge down):
            where its top is darker than its lower half's skin by at least ``hair_contrast`` (a share of the
            skin's), the hair ends where the luminance climbs 60 % of the way to the skin, and the rigid fringe
            reaches that far plus ``hair_margin`` of the strip (never less than ``fringe``, never more than
            ``max_fringe``): the hair moves with the brow and the lid skin beneath takes the stretch.
        smooth_unfolded: blur the stretched part along the brow as far as it is drawn out (a band of a few
            source rows drawn out several times shows each lash tip, pore or crease as a vertical streak down the
            new lid skin: people_0 surprised/sad at 1.5, looked at).
    """

    fringe: float = 0.45
    columns: int = 24
    min_stretch: float = 1.03
    ramp: float = 0.07
    end_feather: float = 0.18
    max_stretch: float = 4.0
    hair_contrast: float = 0.15
    hair_margin: float = 0.08
    max_fringe: float = 0.85
    smooth_unfolded: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.fringe < 1.0:
            raise InvalidParameterError(f"fringe must be in [0, 1), got {self.fringe}")
        if self.columns < 3:
            raise InvalidParameterError(f"need columns >= 3, got {self.columns}")
        if not 1.0 <= self.min_stretch < self.max_stretch:
            raise InvalidParameterError(f"need 1 <= min_stretch < max_stretch, got {self.min_stretch}, "
                                        f"{self.max_stretch}")
        if not (0.0 < self.hair_contrast <= 1.0 and 0.0 <= self.hair_margin <= 0.5
                and self.fringe <= self.max_fringe < 1.0):
            raise InvalidParameterError(f"need 0 < hair_contrast <= 1, 0 <= hair_margin <= 0.5 and fringe <= "
                                        f"max_fringe < 1, got {self.hair_contrast}, {self.hair_margin}, "
                                        f"{self.max_fringe}")
        if self.ramp <= 0 or not 0.0 <= self.end_feather < 0.5:
            raise InvalidParameterError(f"need ramp > 0 and 0 <= end_feather < 0.5, got {self.ramp}, "
                                        f"{self.end_feather}")
