"""Brows: a raised brow carries the skin just beneath it; the lid skin above the crease takes the stretch.

The warp interpolates linearly across the one strip of mesh between the brow's lower edge and the lash band
(which rides rigidly on the lid margin), so a raised brow stretches everything in that strip evenly: the brow's
own lower fringe and the shadow under the brow ridge are drawn out into a wide grey band ("soft brows"). This
sub-stage re-renders that strip from the source plate with the top of it (``fringe``) moving rigidly with the
brow and the rest stretching evenly toward the lash band — as real lid skin unfolds above the crease — where
the strip grows, and adds nothing where it does not (a lowered brow, a raised lid).

Public contract: :class:`BrowConfig`; per frame :class:`BrowRenderer` (``render(RegionInputs) ->
RenderedLayer | None``). numpy and OpenCV (imported when used). No per-shot model.
"""

from .config import BrowConfig
from .renderer import BROW_STRIPS, BrowRenderer

__all__ = ["BROW_STRIPS", "BrowConfig", "BrowRenderer"]
