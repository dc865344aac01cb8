"""The tracker's engines as narrow tensor-in / tensor-out torch modules.

Each takes float images in 0..1 (NCHW, RGB) and returns plain tensors, so one module serves eager PyTorch,
ONNX export and (later) TensorRT. Shapes are stated per method; B is the batch.
"""

from __future__ import annotations

import torch
from torch import nn

from . import weights
from .geometry import ssd_anchors
from .graph_net import GraphNet
from .netspec import DETECTOR_SIZE, IRIS_SIZE, MESH_SIZE, engine_names  # noqa: F401 (this module's API too)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """NHWC memory order: these depthwise-heavy nets run ~2x faster so on CPU (and suit cuDNN)."""
    return x.contiguous(memory_format=torch.channels_last)


def load_graph(name: str) -> GraphNet:
    """Build one converted net (``face_detector``, ``face_mesh``, ``iris``, ``face_mesh_attention``) from its
    installed weights."""
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


#: MediaPipe's assembly of the attention mesh's outputs (tensors_to_face_landmarks_with_attention.pbtxt): the mesh
#: points each sub-model's x, y replace, in the order of that sub-model's output. The Landmarks2TransformMatrix
#: ops of the net crop around exactly these subsets.
LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409, 78, 95, 88, 178,
        87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415, 76, 77, 90, 180, 85, 16, 315, 404,
        320, 307, 306, 184, 74, 73, 72, 11, 302, 303, 304, 408, 62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292, 183,
        42, 41, 38, 12, 268, 271, 272, 407)
LEFT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173, 130, 25, 110, 24, 23, 22, 26,
            112, 243, 247, 30, 29, 27, 28, 56, 190, 226, 31, 228, 229, 230, 231, 232, 233, 244, 113, 225, 224, 223, 222,
            221, 189, 35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119, 120, 121, 128, 245, 156, 70, 63, 105, 66, 107,
            55, 193)
RIGHT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398, 359, 255, 339, 254, 253,
             252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414, 446, 261, 448, 449, 450, 451, 452, 453, 464, 342,
             445, 444, 443, 442, 441, 413, 265, 353, 276, 283, 282, 295, 372, 340, 346, 347, 348, 349, 350, 357, 465,
             383, 300, 293, 334, 296, 336, 285, 417)
#: an iris's depth: the mean depth of its eye's lid contour (the first 16 points of the eye's subset)
_LID_CONTOUR = 16


class FaceMeshAttentionEngine(nn.Module):
    """MediaPipe's attention mesh (``refine_landmarks=True``: one net for the mesh, lips, eyes and irises).
    ``crops``: Bx3x192x192 in 0..1 -> ``landmarks`` Bx478x3 in crop pixels (MediaPipe's 478-point layout: 468 mesh
    points with lips and eyes refined, then the irises 468..472 and 473..477, each centre first), ``score`` B
    face-presence probability. The iris depth is the mean of its lid contour's (MediaPipe's assign_average)."""

    def __init__(self, net: GraphNet):
        super().__init__()
        self.net = net
        # x, y of point i = sources[index[i]], sources = mesh (468) + lips (80) + left eye (71) + right eye (71)
        index = list(range(468))
        for offset, subset in ((468, LIPS), (548, LEFT_EYE), (619, RIGHT_EYE)):
            for k, p in enumerate(subset):
                index[p] = offset + k
        self.register_buffer("xy_index", torch.tensor(index), persistent=False)
        # the 10 iris depths as one product with the mesh's z: each iris point the mean of its eye's lid contour
        lids = torch.zeros(468, 10)
        for eye, subset in enumerate((LEFT_EYE, RIGHT_EYE)):
            lids[list(subset[:_LID_CONTOUR]), 5 * eye: 5 * eye + 5] = 1.0 / _LID_CONTOUR
        self.register_buffer("lids", lids, persistent=False)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mesh, lips, left_eye, right_eye, left_iris, right_iris, flag = self.net(_channels_last(crops))
        mesh = mesh.reshape(-1, 468, 3)
        sources = torch.cat([mesh[..., :2], lips.reshape(-1, 80, 2), left_eye.reshape(-1, 71, 2),
                             right_eye.reshape(-1, 71, 2)], 1)
        xy = torch.cat([sources[:, self.xy_index], left_iris.reshape(-1, 5, 2), right_iris.reshape(-1, 5, 2)], 1)
        z = mesh[..., 2]
        z = torch.cat([z, z @ self.lids.to(z.dtype)], 1)                                           # Bx478
        return torch.cat([xy, z[..., None]], -1), torch.sigmoid(flag.reshape(-1))


#: each engine's module, built on its converted graph
_ENGINES = {"face_detector": FaceDetectorEngine, "face_mesh": FaceMeshEngine,
            "face_mesh_attention": FaceMeshAttentionEngine, "iris": IrisEngine}


def load_engine(name: str, device: torch.device | str = "cpu") -> nn.Module:
    """One engine (:data:`_ENGINES`' names), on ``device``, in eval mode.

    Raises:
        WeightsMissingError: the converted weights are not installed.
    """
    return _ENGINES[name](load_graph(name)).to(device, memory_format=torch.channels_last).eval()


def load_engines(device: torch.device | str = "cpu", iris: bool = True,
                 iris_model: str | None = None) -> dict[str, nn.Module]:
    """The tracker's engines (:func:`engine_names`), on ``device``, in eval mode.

    Raises:
        WeightsMissingError: the converted weights are not installed.
    """
    return {name: load_engine(name, device) for name in engine_names(iris, iris_model)}
