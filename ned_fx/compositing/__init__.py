"""Stage 4, compositing: blend a rendered face region back into the plate.

Public contract: :class:`CompositorConfig`, :class:`Compositor` (``composite(plate, rendered_region,
region_box, target_landmarks, source_landmarks, keep=None)``: ``keep`` a matte of plate pixels to leave exactly as
they are, e.g. occluders), :func:`extract_region` (the renderer's input crop),
:func:`color_channel_indices`, :func:`face_mask`. Soft face mask from the mesh, colour match, multi-band
(Laplacian) blend; outside the region box, and in alpha/extra channels, the output is a bit-exact copy of the
input; floats stay float and unclipped. numpy + OpenCV only (no torch); nothing is loaded at import time.
"""

from .blend import color_match, laplacian_blend_delta
from .compositor import Compositor, color_channel_indices, extract_region
from .config import CompositorConfig
from .mask import face_mask, oval_polygon

__all__ = ["CompositorConfig", "Compositor", "extract_region", "color_channel_indices", "face_mask",
           "oval_polygon", "laplacian_blend_delta", "color_match"]
