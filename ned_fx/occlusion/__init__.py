"""Stage: occlusion. What covers the face (glasses frames, hair, a user's holdout matte) must not be warped.

Public contract: :class:`OcclusionConfig`, :class:`OcclusionDetector` (``detect(region, landmarks, white) ->
matte``), :func:`fill` (thin occluders' pixels replaced by the surrounding skin, so a warp does not smear them
into the moved skin), :func:`load_holdout` (a user-given matte for a frame, which replaces detection). The matte
is HxW float32 over the face region, 1 on an occluder; the compositor keeps the plate's pixels there
(``Compositor.composite(..., keep=matte)``). Per frame: ``matte = detect(region, src)``, ``render(fill(region,
matte), ...)``, ``composite(..., keep=matte)``. Glasses are rigid with the head:
:class:`GlassesModelBuilder` (a per-shot model builder: ``add`` every frame, ``finish`` once) accumulates the
frames' evidence over the shot into a :class:`GlassesModel` (None when the actor wears none; a still's is its
one frame's rims, checked by :meth:`OcclusionDetector.find_glasses`), which ``detect(..., glasses=model)`` maps
into each frame; :class:`FringeBuilder` measures the shot's forehead texture once (``detect(..., fringe=value)``:
the texture cue for a fringe of the skin's colour is used as far as that says). numpy + OpenCV only; nothing is
loaded at import time; this stage imports no other stage.
"""

from .config import OcclusionConfig
from .detector import OcclusionDetector
from .fill import fill
from .fringe import FringeBuilder
from .glasses import GlassesModel, GlassesModelBuilder
from .holdout import load_holdout

__all__ = ["FringeBuilder", "GlassesModel", "GlassesModelBuilder", "OcclusionConfig", "OcclusionDetector", "fill",
           "load_holdout"]
