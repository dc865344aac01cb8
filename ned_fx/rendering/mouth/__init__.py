"""Mouth interior from the actor's own footage (the Face2Face / Video Rewrite route), a sub-stage of rendering.

Per shot: :class:`MouthBankBuilder` (``add(index, pixels, landmarks)`` every frame with a face, ``finish()``
-> :class:`MouthBank`), then :func:`plan_mouth` (``(bank, src, dst, found, config)`` -> :class:`MouthPlan`).
Per frame: :class:`MouthRenderer` (``render(RegionInputs) -> RenderedLayer | None``), laid over the warp with
:func:`ned_fx.rendering.layers.stack`. :class:`MouthConfig` holds every default. numpy and OpenCV only
(OpenCV imported on first use).
"""

from .bank import MouthBank, MouthBankBuilder
from .config import MouthConfig
from .plan import MouthPlan, plan_mouth
from .renderer import MouthRenderer

__all__ = ["MouthBank", "MouthBankBuilder", "MouthConfig", "MouthPlan", "MouthRenderer", "plan_mouth"]
