"""Stage 3, rendering: turn the target mesh into pixels of the plate's face region.

Public contract: :class:`RendererConfig`; per shot :func:`build_render_mesh` (-> :class:`RenderMesh`); per frame
:func:`face_region_box` and :class:`GeometryRenderer` (``render(region, src, dst, mesh)``); the batched,
ONNX-exportable torch module :class:`GeometryRendererModule` (``forward(images, src, dst, labels)``, labels
from :func:`rasterize_labels`). A neural renderer will take the geometry renderer's place behind the same
calls. Importing this package loads numpy only; torch is imported with the batched module (the per-frame
renderer on numpy regions never imports it).
"""

from .config import RendererConfig
from .mesh import RenderMesh, build_render_mesh, face_region_box, field_grid_size, rasterize_labels

_TORCH_NAMES = ("GeometryRendererModule", "FieldResult")


def __getattr__(name: str):
    # loaded on use: `import ned_fx.rendering` stays light for tools that only need boxes (and the module is torch)
    if name == "GeometryRenderer":
        from .geometry_renderer import GeometryRenderer

        return GeometryRenderer
    if name in _TORCH_NAMES:
        from . import geometry_module

        return getattr(geometry_module, name)
    raise AttributeError(name)


__all__ = ["RendererConfig", "RenderMesh", "build_render_mesh", "face_region_box", "field_grid_size",
           "rasterize_labels", "GeometryRenderer", *_TORCH_NAMES]
