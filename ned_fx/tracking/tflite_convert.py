"""Our converter from MediaPipe's ``.tflite`` graphs to a weights file that :class:`GraphNet` runs in PyTorch.

The ``tflite`` package parses the flatbuffer (no TensorFlow needed). Every operator of the face detector,
face mesh and iris networks is one of CONV_2D, DEPTHWISE_CONV_2D, PRELU, RELU, ADD, MAX_POOL_2D, PAD,
RESHAPE, CONCATENATION (with DEQUANTIZE turning fp16 constants into fp32, folded here). The attention mesh
(MediaPipe's ``refine_landmarks=True`` net) adds MUL by a constant, STRIDED_SLICE and MediaPipe's three custom
operators (``mediapipe/util/tflite/operations``, options read from their flexbuffers): Landmarks2TransformMatrix
(v2: an affine from a landmark subset's rotated bounding box), TransformTensorBilinear (v2: an affine bilinear
resample of a feature map) and TransformLandmarks (v2: landmarks through that affine). The result is a
*net spec* — a list of steps in execution order with static padding already resolved — plus named float32
arrays, saved together in one ``.npz``. Layout is converted once, here: TFLite's NHWC/OHWI becomes
PyTorch's NCHW/OIHW.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnsupportedFormatError

#: TFLite tensor type codes we meet (schema.fbs TensorType).
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
#: Fused activation codes (schema.fbs ActivationFunctionType).
_ACTIVATIONS = {0: None, 1: "relu", 3: "relu6"}


def _builtin_names() -> dict[int, str]:
    from tflite.BuiltinOperator import BuiltinOperator

    return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}


def _options(op: Any, cls: Any) -> Any:
    table = op.BuiltinOptions()
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def convert_tflite(data: bytes) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Convert one ``.tflite`` graph into a net spec and its float32 arrays.

    Args:
        data: the bytes of a ``.tflite`` file.

    Returns:
        ``(spec, arrays)``: ``spec`` is a JSON-able dict list — first an ``{"op": "graph", ...}`` entry naming the
        input/output tensors and their TFLite shapes, then one entry per executed step; ``arrays`` maps names
        used by the spec to float32 arrays in PyTorch layout.

    Raises:
        UnsupportedFormatError: the graph uses an operator or a tensor type this converter does not know.
    """
    import tflite

    names = _builtin_names()
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)

    def tensor_info(index: int) -> tuple[str, list[int], int]:
        t = graph.Tensors(index)
        return t.Name().decode(), [int(v) for v in t.ShapeAsNumpy()], t.Type()

    constants: dict[int, np.ndarray] = {}
    for index in range(graph.TensorsLength()):
        t = graph.Tensors(index)
        buf = model.Buffers(t.Buffer())
        if buf is None or buf.DataLength() == 0:
            continue
        if t.Type() not in _DTYPES:
            raise UnsupportedFormatError(f"tensor {t.Name().decode()!r} has TFLite type {t.Type()}, "
                                         f"supported types: {sorted(_DTYPES)}")
        raw = buf.DataAsNumpy().tobytes()
        shape = [int(v) for v in t.ShapeAsNumpy()]
        constants[index] = np.frombuffer(raw, dtype=_DTYPES[t.Type()]).reshape(shape)

    arrays: dict[str, np.ndarray] = {}
    steps: list[dict] = []
    # Rank of each activation tensor: rank-4 tensors live as NCHW in PyTorch.
    shapes = {i: tensor_info(i)[1] for i in range(graph.TensorsLength())}

    def const(index: int) -> np.ndarray:
        if index not in constants:
            raise UnsupportedFormatError(f"expected a constant for tensor {tensor_info(index)[0]!r}")
        return constants[index].astype(np.float32)

    def store(name: str, value: np.ndarray) -> str:
        arrays[name] = np.ascontiguousarray(value, dtype=np.float32)
        return name

    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code_entry = model.OperatorCodes(op.OpcodeIndex())
        code = max(code_entry.BuiltinCode(), code_entry.DeprecatedBuiltinCode())
        kind = names.get(code, str(code))
        ins = [int(i) for i in op.InputsAsNumpy()]
        outs = [int(i) for i in op.OutputsAsNumpy()]
        out = outs[0]
        key = f"s{k}"

        if kind == "CUSTOM":
            steps.append(_custom_step(code_entry.CustomCode().decode(), code_entry.Version(), op, ins, out, shapes))
            continue
        if kind == "DEQUANTIZE":
            constants[out] = const(ins[0])
            continue
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            depthwise = kind == "DEPTHWISE_CONV_2D"
            opts = _options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
            weight = const(ins[1])                                    # OHWI, depthwise: 1HWO
            weight = weight.transpose(3, 0, 1, 2) if depthwise else weight.transpose(0, 3, 1, 2)
            bias = const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else np.zeros(weight.shape[0], np.float32)
            stride = (opts.StrideH(), opts.StrideW())
            dilation = (opts.DilationHFactor(), opts.DilationWFactor())
            _, h, w, _ = shapes[ins[0]]
            kh, kw = weight.shape[2:]
            pads = [0, 0, 0, 0]
            if opts.Padding() == 0:  # SAME
                pads = [*_same_pads(h, kh, stride[0], dilation[0]), *_same_pads(w, kw, stride[1], dilation[1])]
            act = opts.FusedActivationFunction()
            if act not in _ACTIVATIONS:
                raise UnsupportedFormatError(f"{kind} with fused activation code {act} is not supported")
            steps.append({"op": "conv", "in": ins[0], "out": out, "weight": store(key + ".weight", weight),
                          "bias": store(key + ".bias", bias), "stride": stride, "dilation": dilation,
                          "pads": pads, "groups": weight.shape[0] if depthwise else 1,
                          "act": _ACTIVATIONS[act]})
        elif kind == "PRELU":
            alpha = const(ins[1]).reshape(-1)
            steps.append({"op": "prelu", "in": ins[0], "out": out, "weight": store(key + ".weight", alpha)})
        elif kind == "RELU":
            steps.append({"op": "act", "in": ins[0], "out": out, "act": "relu"})
        elif kind == "ADD":
            opts = _options(op, tflite.AddOptions)
            steps.append({"op": "add", "in": ins, "out": out,
                          "act": _ACTIVATIONS[opts.FusedActivationFunction()]})
        elif kind == "MAX_POOL_2D":
            opts = _options(op, tflite.Pool2DOptions)
            kernel = (opts.FilterHeight(), opts.FilterWidth())
            stride = (opts.StrideH(), opts.StrideW())
            _, h, w, _ = shapes[ins[0]]
            pads = [0, 0, 0, 0]
            if opts.Padding() == 0:
                pads = [*_same_pads(h, kernel[0], stride[0]), *_same_pads(w, kernel[1], stride[1])]
            steps.append({"op": "maxpool", "in": ins[0], "out": out, "kernel": kernel, "stride": stride,
                          "pads": pads})
        elif kind == "PAD":
            paddings = constants[ins[1]].astype(int).tolist()           # NHWC [[b0,b1],[h0,h1],[w0,w1],[c0,c1]]
            if paddings[0] != [0, 0]:
                raise UnsupportedFormatError("PAD along the batch axis is not supported")
            steps.append({"op": "pad", "in": ins[0], "out": out,
                          "pads": [*paddings[1], *paddings[2], *paddings[3]]})
        elif kind == "RESHAPE":
            steps.append({"op": "reshape", "in": ins[0], "out": out, "shape": shapes[out]})
        elif kind == "MUL":
            if ins[1] not in constants:
                raise UnsupportedFormatError("MUL is supported by a constant only")
            opts = _options(op, tflite.MulOptions)
            value = const(ins[1])
            if len(shapes[out]) == 4 and value.ndim == 4:       # NHWC constant: NCHW like the activations
                value = value.transpose(0, 3, 1, 2)
            steps.append({"op": "mul", "in": ins[0], "out": out, "weight": store(key + ".weight", value),
                          "act": _ACTIVATIONS[opts.FusedActivationFunction()]})
        elif kind == "STRIDED_SLICE":
            opts = _options(op, tflite.StridedSliceOptions)
            if opts.EllipsisMask() or opts.NewAxisMask() or opts.ShrinkAxisMask():
                raise UnsupportedFormatError("STRIDED_SLICE with ellipsis, new-axis or shrink masks is not supported")
            begin, end, strides = (constants[i].astype(int).tolist() for i in ins[1:4])
            rank = len(shapes[ins[0]])
            begin = [None if opts.BeginMask() >> a & 1 else begin[a] for a in range(rank)]
            end = [None if opts.EndMask() >> a & 1 else end[a] for a in range(rank)]
            if begin[0] not in (0, None) or end[0] not in (1, None) or strides[0] != 1:
                raise UnsupportedFormatError("STRIDED_SLICE along the batch axis is not supported")
            steps.append({"op": "slice", "in": ins[0], "out": out, "begin": begin[1:], "end": end[1:],
                          "strides": strides[1:]})
        elif kind == "CONCATENATION":
            opts = _options(op, tflite.ConcatenationOptions)
            steps.append({"op": "concat", "in": ins, "out": out, "axis": opts.Axis()})
        else:
            raise UnsupportedFormatError(
                f"TFLite operator {kind} is not supported by the converter; supported: CONV_2D, "
                "DEPTHWISE_CONV_2D, PRELU, RELU, ADD, MUL, MAX_POOL_2D, PAD, RESHAPE, STRIDED_SLICE, CONCATENATION, "
                "DEQUANTIZE, and the custom " + ", ".join(_CUSTOM))

    inputs = [int(i) for i in graph.InputsAsNumpy()]
    outputs = [int(i) for i in graph.OutputsAsNumpy()]
    header = {"op": "graph", "inputs": inputs, "outputs": outputs,
              "input_shapes": [shapes[i] for i in inputs], "output_shapes": [shapes[i] for i in outputs],
              "output_names": [tensor_info(i)[0] for i in outputs],
              "ranks": {str(i): len(s) for i, s in shapes.items()}}
    return [header, *steps], arrays


#: MediaPipe's custom operators the converter knows, with the version it implements
_CUSTOM = {"Landmarks2TransformMatrix": 2, "TransformTensorBilinear": 2, "TransformLandmarks": 2}


def _custom_step(name: str, version: int, op: Any, ins: list[int], out: int, shapes: dict) -> dict:
    """One of MediaPipe's custom operators as a spec step (its flexbuffers options decoded)."""
    if _CUSTOM.get(name) != version:
        raise UnsupportedFormatError(f"custom TFLite operator {name} v{version} is not supported; supported: "
                                     + ", ".join(f"{k} v{v}" for k, v in _CUSTOM.items()))
    raw = bytes(op.CustomOptionsAsNumpy()) if op.CustomOptionsLength() else b""
    options: dict = {}
    if raw:
        from flatbuffers import flexbuffers

        options = flexbuffers.Loads(raw)
    if name == "Landmarks2TransformMatrix":
        return {"op": "landmarks_to_matrix", "in": ins[0], "out": out,
                "subset": [int(i) for i in options["subset_idxs"]],
                "left": int(options["left_rotation_idx"]), "right": int(options["right_rotation_idx"]),
                "target_rotation": float(options.get("target_rotation_radians", 0.0)),
                "size": [int(options["output_height"]), int(options["output_width"])],
                "scale": [float(options["scale_y"]), float(options["scale_x"])]}
    if name == "TransformTensorBilinear":
        return {"op": "transform_bilinear", "in": ins[:2], "out": out,
                "size": [int(options["output_height"]), int(options["output_width"])]}
    return {"op": "transform_landmarks", "in": ins[:2], "out": out}


def save_net(path: Path, spec: list[dict], arrays: dict[str, np.ndarray], source: dict) -> None:
    """Write a converted net (spec + arrays + where it came from) to ``path`` atomically."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.stem, suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, __spec__=np.array(json.dumps(spec)), __source__=np.array(json.dumps(source)), **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_net(path: Path) -> tuple[list[dict], dict[str, np.ndarray], dict]:
    """Read a file written by :func:`save_net`; returns ``(spec, arrays, source)``."""
    with np.load(path, allow_pickle=False) as data:
        spec = json.loads(str(data["__spec__"]))
        source = json.loads(str(data["__source__"]))
        arrays = {k: data[k] for k in data.files if not k.startswith("__")}
    return spec, arrays, source
