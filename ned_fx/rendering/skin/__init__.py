"""Skin that follows the expression: the folds and shading a new expression brings (nasolabial fold and cheek
raise with a smile, the brow furrow with anger, forehead lines with raised brows, nose wrinkles with disgust,
crow's feet, marionette lines), as a multiplicative luminance layer over the warped skin.

Public contract: :class:`SkinConfig`; per shot (optional) :class:`SkinModelBuilder` (``SkinModelBuilder(
activations, au_names)``, then ``add(index, pixels, landmarks)`` per frame and ``finish() -> SkinModel | None``);
per frame :class:`SkinRenderer` (``SkinRenderer(model, config).render(inputs, au_names, au_src, au_dst) ->
RenderedLayer | None``). Folds are procedural, placed by the target landmarks, their depth following the change of
the AUs that make them (target - source); the AUs a learned model covers are shaded as the actor's own frames
show. A frown or a pout taken away has its furrows, or its chin's dimpling and marionette folds, flattened out of
the picture (the plate's own band-pass, per channel: :func:`~.procedural.add_glabella_relax`,
:func:`~.procedural.add_chin_relax`). Pixels are only multiplied, so pores and texture stay. Per shot,
:mod:`.evidence` measures the brow furrow the picture shows where the mesh keeps the brows at rest
(``furrow_depth`` per frame, ``furrow_activation``) and the marionette lines of a pout whose corners it puts at rest
(``marionette_depth``, ``pout_activation``).
Importing this package loads numpy only (cv2 with the first frame).
"""

from .config import DEFAULT_DRIVES, SkinConfig
from .evidence import fold_depth, furrow_activation, furrow_depth, marionette_depth, pout_activation
from .model import SkinModel, SkinModelBuilder
from .renderer import SkinRenderer

__all__ = ["DEFAULT_DRIVES", "SkinConfig", "SkinModel", "SkinModelBuilder", "SkinRenderer", "fold_depth",
           "furrow_activation", "furrow_depth", "marionette_depth", "pout_activation"]
