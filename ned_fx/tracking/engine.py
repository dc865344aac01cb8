"""The tracker's three engines as narrow tensor-in / tensor-out torch modules.

Each takes float images in 0..1 (NCHW, RGB) and returns plain tensors, so one module serves eager PyTorch,
ONNX export and (later) TensorRT. Shapes are stated per method; B is the batch.
"""

from __future__ import annotations

import torch
from torch import nn

from . import weights
from .geometry import ssd_anchors
from .graph_net import GraphNet

DETECTOR_SIZE = 128
MESH_SIZE = 192
IRIS_SIZE = 64


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """NHWC memory order: these depthwise-heavy nets run ~2x faster so on CPU (and suit cuDNN)."""
    return x.contiguous(memory_format=torch.channels_last)


def load_graph(name: str) -> GraphNet:
    """Build one converted net (``face_detector``, ``face_mesh`` or ``iris``) from its installed weights."""
    from .tflite_convert import load_net

    spec, arrays, _ = load_net(weights.require(name))
    return GraphNet(spec, arrays).eval()


class FaceDetectorEngine(nn.Module):
    """BlazeFace short range. ``images``: Bx3x128x128 in 0..1 -> ``points`` Bx896x8x2 (0..1 of the input:
    box min corner, box max corner, 6 keypoints), ``prob`` Bx896."""

    def __init__(self, net: GraphNet):
        super().__init__()
        self.net = net
        self.register_buffer("anchors", torch.from_numpy(ssd_anchors(DETECTOR_SIZE)), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from .geometry import decode_detections

        regressors, scores = self.net(_channels_last(images * 2.0 - 1.0))
        return decode_detections(regressors, scores, self.anchors, DETECTOR_SIZE)


class FaceMeshEngine(nn.Module):
    """Face landmarks. ``crops``: Bx3x192x192 in 0..1 -> ``landmarks`` Bx468x3 in crop pixels (z in the same
    units, negative towards the camera), ``score`` B face-presence probability."""

    def __init__(self, net: GraphNet):
        super().__init__()
        self.net = net

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        landmarks, flag = self.net(_channels_last(crops))
        return landmarks.reshape(-1, 468, 3), torch.sigmoid(flag.reshape(-1))


class IrisEngine(nn.Module):
    """Eye and iris landmarks. ``crops``: Bx3x64x64 in 0..1 (an eye, the subject's left eye mirrored) ->
    ``contour`` Bx71x3 (eyelids and brow), ``iris`` Bx5x3 (centre then 4 points on the iris rim), crop pixels."""

    def __init__(self, net: GraphNet):
        super().__init__()
        self.net = net

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        contour, iris = self.net(_channels_last(crops))
        return contour.reshape(-1, 71, 3), iris.reshape(-1, 5, 3)


def load_engines(device: torch.device | str = "cpu", iris: bool = True) -> dict[str, nn.Module]:
    """The three engines, on ``device``, in eval mode.

    Raises:
        WeightsMissingError: the converted weights are not installed.
    """
    engines: dict[str, nn.Module] = {
        "face_detector": FaceDetectorEngine(load_graph("face_detector")),
        "face_mesh": FaceMeshEngine(load_graph("face_mesh")),
    }
    if iris:
        engines["iris"] = IrisEngine(load_graph("iris"))
    return {k: v.to(device, memory_format=torch.channels_last).eval() for k, v in engines.items()}
