"""A PyTorch module that runs a converted net spec (see :mod:`.tflite_convert`) with real torch layers.

Activations are NCHW; each convolution is an ``nn.Conv2d`` whose weights are parameters, so the module
moves to CUDA, casts to half, traces and exports to ONNX (dynamic batch) like any other torch module.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def _activate(x: torch.Tensor, act: str | None) -> torch.Tensor:
    if act == "relu":
        return F.relu(x)
    if act == "relu6":
        return F.relu6(x)
    return x


class GraphNet(nn.Module):
    """Runs a converted graph.

    Input ``x``: Bx3xHxW float, in the range the original network expects. Outputs: a tuple, one tensor per
    graph output, each in TFLite's (NHWC) element order with the batch dimension first.
    """

    def __init__(self, spec: list[dict], arrays: dict[str, np.ndarray]):
        super().__init__()
        header, steps = spec[0], spec[1:]
        self.input_id = header["inputs"][0]
        self.output_ids = list(header["outputs"])
        self.input_shape = tuple(header["input_shapes"][0])          # 1xHxWxC
        self._ranks = {int(k): v for k, v in header["ranks"].items()}
        self._steps = steps
        self.layers = nn.ModuleDict()
        self._inner_pad: set[int] = set()          # convs that pad inside (no separate zero-pad op)
        for i, step in enumerate(steps):
            name = f"l{i}"
            if step["op"] == "conv":
                w = torch.from_numpy(arrays[step["weight"]])
                t, b, l, r = step["pads"]
                inside = (t, l) if (t, l) == (b, r) else (0, 0)     # symmetric padding: the conv's own (one op)
                if inside != (0, 0):
                    self._inner_pad.add(i)
                conv = nn.Conv2d(w.shape[1] * step["groups"], w.shape[0], tuple(w.shape[2:]),
                                 stride=tuple(step["stride"]), dilation=tuple(step["dilation"]),
                                 groups=step["groups"], bias=True, padding=inside)
                conv.weight.data.copy_(w)
                conv.bias.data.copy_(torch.from_numpy(arrays[step["bias"]]))
                self.layers[name] = conv
            elif step["op"] == "prelu":
                alpha = torch.from_numpy(arrays[step["weight"]])
                prelu = nn.PReLU(alpha.numel())
                prelu.weight.data.copy_(alpha)
                self.layers[name] = prelu

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        env: dict[int, torch.Tensor] = {self.input_id: x}
        for i, step in enumerate(self._steps):
            op = step["op"]
            if op == "conv":
                t, b, l, r = step["pads"]
                src = env[step["in"]]
                if (t or b or l or r) and i not in self._inner_pad:
                    src = F.pad(src, (l, r, t, b))
                y = _activate(self.layers[f"l{i}"](src), step["act"])
            elif op == "prelu":
                y = self.layers[f"l{i}"](env[step["in"]])
            elif op == "act":
                y = _activate(env[step["in"]], step["act"])
            elif op == "add":
                a, b = step["in"]
                y = _activate(env[a] + env[b], step["act"])
            elif op == "maxpool":
                t, b, l, r = step["pads"]
                src = env[step["in"]]
                if t or b or l or r:
                    src = F.pad(src, (l, r, t, b), value=float("-inf"))
                y = F.max_pool2d(src, tuple(step["kernel"]), tuple(step["stride"]))
            elif op == "pad":
                t, b, l, r, c0, c1 = step["pads"]
                y = F.pad(env[step["in"]], (l, r, t, b, c0, c1))
            elif op == "reshape":
                src = self._to_tflite_order(env[step["in"]], step["in"])
                y = src.reshape([src.shape[0], *step["shape"][1:]])
            elif op == "concat":
                axis = step["axis"]
                rank = self._ranks[step["out"]]
                if rank == 4:
                    axis = _NHWC_TO_NCHW_AXIS[axis % 4]
                y = torch.cat([env[j] for j in step["in"]], dim=axis)
            else:  # pragma: no cover - the converter only emits the ops above
                raise ValueError(op)
            env[step["out"]] = y
        return tuple(self._to_tflite_order(env[j], j) for j in self.output_ids)

    def _to_tflite_order(self, t: torch.Tensor, tensor_id: int) -> torch.Tensor:
        """NCHW activations back to NHWC element order (what RESHAPE and the outputs assume)."""
        return t.permute(0, 2, 3, 1) if self._ranks[tensor_id] == 4 and t.dim() == 4 else t
