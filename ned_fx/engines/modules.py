"""Export adaptors: torch modules that give a stage's module the I/O a compiled engine needs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class RendererEngine(nn.Module):
    """The geometry renderer with the shot's mesh as inputs, so one compiled engine serves every shot.

    :class:`~ned_fx.rendering.GeometryRendererModule` holds the shot's triangulation as buffers; here
    ``triangles`` (Tx3) and ``outline`` (V) come with every call, and index inputs are int32 (TensorRT's
    native index type). ``forward(images, src, dst, labels, triangles, outline) -> rendered``.

    Args:
        config: the :class:`~ned_fx.rendering.RendererConfig` baked into the graph (defaults when None).
    """

    def __init__(self, config=None):
        super().__init__()
        from ..rendering import GeometryRendererModule, RenderMesh

        # the placeholder mesh's triangles/outline buffers are never used: they come as inputs
        self.renderer = GeometryRendererModule(RenderMesh.from_triangles(np.array([[0, 1, 2]])), config)

    def forward(self, images: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, labels: torch.Tensor,
                triangles: torch.Tensor, outline: torch.Tensor) -> torch.Tensor:
        return self.renderer(images, src, dst, labels.to(torch.int64), triangles.to(torch.int64),
                             outline.to(torch.int64))
