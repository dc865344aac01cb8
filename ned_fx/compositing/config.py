"""CompositorConfig: the one home of the compositor's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidParameterError


@dataclass(frozen=True)
class CompositorConfig:
    """Every knob of the compositor (face mask -> colour match -> multi-band blend into the plate).

    Lengths given "x IOD" are fractions of the target face's inter-ocular distance (outer eye corners), so a
    setting means the same on a 512² clip and on a 4K plate.

    Attributes:
        feather: width of the mask's soft edge (x IOD), centred on the face outline.
        forehead_shrink: the top of the face oval is pulled down towards the brows by this fraction of the
            face height (forehead to chin), fading out towards the cheeks, so hair at the hairline is not
            touched.
        grow: moves the mask's edge outwards (> 0) or inwards (< 0), x IOD.
        brow_margin: the mask's full-strength part reaches at least this far above the brows (each face's own
            brows, x IOD, before feathering): a raised brow stays inside the face, not in the forehead's soft
            edge, where the blend let its lower frequencies fade (a washed-out brow over the old brow's ghost).
        levels: Laplacian pyramid levels of the blend (fewer on small regions: the coarsest level keeps at
            least 8 pixels).
        color_match: match the rendered region's mean and standard deviation (per channel) to the plate's,
            measured in the mask's transition ring: for a renderer that drifts in colour (a neural renderer
            turns it on). Off by default: the geometry renderer moves the plate's own pixels, and where the
            edit moves real content through the ring (raised brows cross the forehead's part of it) the match
            took that motion for a colour drift and flattened the contrast of the whole face (washed-out
            brows and lashes).
        color_match_max_gain: the colour match's gain is kept within [1/g, g].
        mask_cells: the mask is computed on a grid of this many cells along the region's longer side, then
            upsampled (it is smooth).
    """

    feather: float = 0.25
    forehead_shrink: float = 0.08
    grow: float = 0.0
    brow_margin: float = 0.12
    levels: int = 5
    color_match: bool = False
    color_match_max_gain: float = 1.25
    mask_cells: int = 256

    def __post_init__(self) -> None:
        if not self.feather > 0:
            raise InvalidParameterError(f"feather must be > 0 (x IOD), got {self.feather}")
        if not 0.0 <= self.forehead_shrink <= 0.5:
            raise InvalidParameterError(f"forehead_shrink must be between 0 and 0.5, got {self.forehead_shrink}")
        if not -1.0 <= self.grow <= 1.0:
            raise InvalidParameterError(f"grow must be between -1 and 1 (x IOD), got {self.grow}")
        if not 0.0 <= self.brow_margin <= 1.0:
            raise InvalidParameterError(f"brow_margin must be between 0 and 1 (x IOD), got {self.brow_margin}")
        if not 0 <= self.levels <= 10:
            raise InvalidParameterError(f"levels must be between 0 and 10, got {self.levels}")
        if not 1.0 <= self.color_match_max_gain <= 4.0:
            raise InvalidParameterError(f"color_match_max_gain must be between 1 and 4, got "
                                        f"{self.color_match_max_gain}")
        if not 16 <= self.mask_cells <= 4096:
            raise InvalidParameterError(f"mask_cells must be between 16 and 4096, got {self.mask_cells}")
