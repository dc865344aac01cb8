"""Exporting the tracker's engines to ONNX for onnxruntime (:mod:`.ort`, which calls :func:`export` when a net's
export is missing): the PyTorch module rewritten for onnxruntime's blocked layout, exported, rewritten again and
checked against PyTorch. Imports torch (and, on use, the onnx package).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from . import weights
from .engine import load_engine
from .ort import _IO, _TOLERANCE, OPSET, OrtEngine


class _PReluAsConvs(torch.nn.Module):
    """PReLU as ``x + (1 - alpha) * relu(-x)`` with both scalings as depthwise 1x1 convolutions: the same values (to
    float rounding), but onnxruntime keeps the whole net in its blocked (NCHWc) layout instead of re-ordering the
    activations around every PReLU (it has no blocked PReLU): the mesh net runs ~2.5x faster, the iris net ~2x.
    The negation's ReLU and the sum with ``x`` fuse into the two convolutions (``relu(x) + alpha * ...`` needed a
    ReLU pass of its own: ~9 % of the iris net)."""

    def __init__(self, alpha: torch.Tensor):
        super().__init__()
        c = alpha.numel()
        self.negate = torch.nn.Conv2d(c, c, 1, groups=c, bias=False)
        self.negate.weight.data.fill_(-1.0)
        self.scale = torch.nn.Conv2d(c, c, 1, groups=c, bias=False)
        self.scale.weight.data.copy_(1.0 - alpha.detach().reshape(c, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale(torch.relu(self.negate(x)))


def _for_export(module: torch.nn.Module, name: str = "") -> torch.nn.Module:
    """The engine with every PReLU of its graph net written as :class:`_PReluAsConvs` (in place); the attention
    mesh's net is rebuilt with its lips and eye sub-models as lanes of one branch (:func:`.graph_net.merge_lanes`:
    ~3x fewer small ops there)."""
    if name == "face_mesh_attention":
        from .graph_net import GraphNet
        from .tflite_convert import load_net

        spec, arrays, _ = load_net(weights.require(name))
        module.net = GraphNet(spec, arrays, lanes=True).eval()
    layers = module.net.layers
    for key, layer in list(layers.items()):
        if isinstance(layer, torch.nn.PReLU):
            layers[key] = _PReluAsConvs(layer.weight)
    return module


def _blocked_friendly(path: Path) -> None:
    """Rewrite an exported net (in place) so that onnxruntime runs it in its blocked NCHWc layout end to end:
    constants folded (onnxruntime's basic, machine-independent level), then every zero ``Pad`` of the spatial
    axes that feeds a ``Conv`` becomes that conv's own (asymmetric) padding, and every zero ``Pad`` of the channel
    axis (the residual blocks' channel growth) becomes a 1x1 conv whose weights embed the channels. The values
    are the same (the parity check after the export holds them to PyTorch); the mesh net runs ~40 % faster."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    folded = path.with_name(path.name + ".folded")
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        model = onnx.load(str(folded))
    finally:
        try:
            os.unlink(folded)
        except OSError:
            pass
    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    typed = onnx.shape_inference.infer_shapes(model).graph.value_info
    channels = {v.name: v.type.tensor_type.shape.dim[1].dim_value for v in typed
                if len(v.type.tensor_type.shape.dim) == 4 and v.type.tensor_type.shape.dim[1].dim_value}
    users: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def zero_pads(node):
        if node.op_type != "Pad" or node.input[1] not in inits or node.output[0] in outputs:
            return None
        if next((a.s for a in node.attribute if a.name == "mode"), b"constant") != b"constant":
            return None
        if len(node.input) > 2 and node.input[2] and (node.input[2] not in inits or inits[node.input[2]].any()):
            return None
        pads = inits[node.input[1]]
        return pads if len(pads) == 8 and (pads >= 0).all() else None

    for node in list(graph.node):
        pads = zero_pads(node)
        if pads is None:
            continue
        after = users.get(node.output[0], [])
        if not pads[[0, 1, 4, 5]].any() and after and all(
                u.op_type == "Conv" and u.input[0] == node.output[0] and node.output[0] not in u.input[1:]
                and next((a.s for a in u.attribute if a.name == "auto_pad"), b"NOTSET") in (b"", b"NOTSET")
                for u in after):
            for conv in after:          # one padded tensor may feed several convolutions: each pads itself
                attrs = {a.name: a for a in conv.attribute}
                old = list(attrs["pads"].ints) if "pads" in attrs else [0, 0, 0, 0]
                if "pads" in attrs:
                    conv.attribute.remove(attrs["pads"])
                conv.attribute.append(helper.make_attribute("pads", [old[0] + int(pads[2]), old[1] + int(pads[3]),
                                                                     old[2] + int(pads[6]), old[3] + int(pads[7])]))
                conv.input[0] = node.input[0]
            graph.node.remove(node)
        elif not pads[[0, 2, 3, 4, 6, 7]].any() and channels.get(node.input[0]):
            c, c0, c1 = channels[node.input[0]], int(pads[1]), int(pads[5])
            weight = np.zeros((c0 + c + c1, c, 1, 1), np.float32)
            weight[c0 + np.arange(c), np.arange(c)] = 1.0
            graph.initializer.append(numpy_helper.from_array(weight, node.output[0] + ".embed"))
            conv = helper.make_node("Conv", [node.input[0], node.output[0] + ".embed"], [node.output[0]],
                                    name=(node.name or node.output[0]) + ".as_conv", kernel_shape=[1, 1])
            graph.node.insert(list(graph.node).index(node), conv)
            graph.node.remove(node)
    _block_branch_inputs(graph, inits)
    onnx.save(model, str(path))


def _block_branch_inputs(graph, inits: dict) -> None:
    """An identity depthwise 1x1 ``Conv`` after each activation that a non-convolution makes (the attention mesh's
    bilinear crops) and that feeds both a ``Conv`` and an ``Add`` (a residual block): onnxruntime then reads it in
    its blocked layout once, instead of re-ordering every residual sum of the branch in and out of NCHW (the
    attention mesh: 8 re-orders per branch). Same values: the conv multiplies by 1 and adds 0."""
    from onnx import helper, numpy_helper

    producer = {out: node for node in graph.node for out in node.output}
    users: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    for name, after in list(users.items()):
        made = producer.get(name)
        if made is None or made.op_type in ("Conv", "Add", "MaxPool", "Relu", "Clip", "Sigmoid"):
            continue
        convs = [u for u in after if u.op_type == "Conv" and u.input[0] == name and u.input[1] in inits]
        if not convs or not any(u.op_type == "Add" for u in after):
            continue
        w = inits[convs[0].input[1]]
        group = next((a.i for a in convs[0].attribute if a.name == "group"), 1)
        c = int(w.shape[1] * group)
        if c % 16:
            continue
        blocked = name + ".blocked"
        graph.initializer.append(numpy_helper.from_array(np.ones((c, 1, 1, 1), np.float32), blocked + ".one"))
        conv = helper.make_node("Conv", [name, blocked + ".one"], [blocked], name=blocked, kernel_shape=[1, 1],
                                group=c)
        for u in after:
            for k, inp in enumerate(u.input):
                if inp == name:
                    u.input[k] = blocked
        graph.node.insert(list(graph.node).index(made) + 1, conv)


def export(name: str, path: Path) -> None:
    """Export engine ``name`` to ``path`` (atomically), rewritten for the blocked layout and checked against
    PyTorch on a fixed random batch (an export that does not match is not kept).

    Raises:
        RuntimeError: the export differs from PyTorch by more than ``_TOLERANCE``.
    """
    module = _for_export(load_engine(name, "cpu").float(), name)
    inp, outs, size = _IO[name]
    example = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    folder = path.parent
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)    # the cache folder (it also holds face tracks)
    folder.mkdir(exist_ok=True, mode=0o700)
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(tmp), input_names=[inp], output_names=list(outs),
                              dynamic_axes={k: {0: "batch"} for k in (inp, *outs)}, opset_version=OPSET,
                              dynamo=False)
        _blocked_friendly(tmp)
        check = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            ref = [r.numpy() for r in module(check)]
        got = OrtEngine(name, tmp, 1).run(check.numpy())
        worst = max(float(np.max(np.abs(g - r))) for g, r in zip(got, ref))
        if not worst <= _TOLERANCE:
            raise RuntimeError(f"the ONNX export of {name} differs from PyTorch by {worst:.3g} (> {_TOLERANCE})")
        os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
