"""Stage 3, rendering: turn the target mesh into pixels of the plate's face region.

Public contract: :class:`RendererConfig`; per shot :func:`build_render_mesh` (-> :class:`RenderMesh`); per frame
:func:`face_region_box` and :class:`GeometryRenderer` (``render(region, src, dst, mesh)``); the batched,
ONNX-exportable torch module :class:`GeometryRendererModule` (``forward(images, src, dst, labels)``, labels
from :func:`rasterize_labels`). A neural renderer will take the geometry renderer's place behind the same
calls. Importing this package loads numpy only; torch is imported with the renderer classes.
"""

from .config import RendererConfig
from .mesh import RenderMesh, build_render_mesh, face_region_box, field_grid_size, rasterize_labels

_TORCH_NAMES = ("GeometryRenderer", "GeometryRendererModule", "FieldResult")


def __getattr__(name: str):
    # the renderer classes pull in torch; keep `import ned_fx.rendering` light for tools that only need boxes
    if name in _TORCH_NAMES:
        from . import geometry_renderer

        return getattr(geometry_renderer, name)
    raise AttributeError(name)


__all__ = ["RendererConfig", "RenderMesh", "build_render_mesh", "face_region_box", "field_grid_size",
           "rasterize_labels", *_TORCH_NAMES]
