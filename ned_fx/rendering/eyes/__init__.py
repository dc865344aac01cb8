"""Eyes: an eyeball behind the lids where the target opens an eye beyond the source.

The geometry warp moves the visible eyeball rigidly and can only stretch the lids into a widened opening; this
sub-stage renders what a raised lid reveals: sclera (the actor's own colour and shading), the round iris (a
polar texture taken from the actor's frames and completed round), its pupil, and a soft shadow under the
upper lid, laid only where the opening is new (see :class:`EyeRenderer`).

Public contract: :class:`EyeConfig`; per shot :class:`EyeModelBuilder` (``add(index, pixels, landmarks)``,
``finish() -> EyeModel``; :class:`EyeModel` ``to_arrays``/``from_arrays``); per frame :class:`EyeRenderer`
(``render(RegionInputs) -> RenderedLayer | None``); per shot, for eyes the tracker follows open while they are
shut, :mod:`.openness` (``eye_evidence`` per frame, ``open_weights`` over the shot, ``pin_shut_lids`` per
frame's target). numpy and OpenCV (imported when used).
"""

from .config import EyeConfig
from .model import EyeModel, EyeModelBuilder
from .renderer import EyeRenderer

__all__ = ["EyeConfig", "EyeModel", "EyeModelBuilder", "EyeRenderer"]
