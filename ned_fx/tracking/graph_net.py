"""A PyTorch module that runs a converted net spec (see :mod:`.tflite_convert`) with real torch layers.

Activations are NCHW; each convolution is an ``nn.Conv2d`` whose weights are parameters, so the module
moves to CUDA, casts to half, traces and exports to ONNX (dynamic batch) like any other torch module.
MediaPipe's custom operators of the attention mesh are plain torch ops too (:func:`landmarks_to_matrix`,
:func:`transform_bilinear`, :func:`transform_landmarks`: arithmetic, min/max and a gather), so that net
exports to ONNX and runs in onnxruntime as well.
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
            elif step["op"] == "mul":
                self.register_buffer(f"c{i}", torch.from_numpy(arrays[step["weight"]]).clone())
        self._groups = _transform_groups(steps)            # first step -> the steps computed with it
        self._grouped = {j for group in self._groups.values() for j in group[1:]}

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
                y = src.reshape([-1, *step["shape"][1:]])        # -1: a constant shape once exported
                y = y.permute(0, 3, 1, 2) if y.dim() == 4 else y        # rank-4 tensors live as NCHW
            elif op == "mul":
                y = _activate(env[step["in"]] * getattr(self, f"c{i}"), step["act"])
            elif op == "slice":
                src = self._to_tflite_order(env[step["in"]], step["in"])
                index = (slice(None),) + tuple(slice(b, e, s) for b, e, s in
                                               zip(step["begin"], step["end"], step["strides"]))
                y = src[index]
                y = y.permute(0, 3, 1, 2) if y.dim() == 4 else y
            elif i in self._grouped:                        # computed with the first step of its group
                continue
            elif i in self._groups:
                self._run_group([self._steps[j] for j in self._groups[i]], env)
                continue
            elif op == "landmarks_to_matrix":
                y = landmarks_to_matrix(env[step["in"]], step["subset"], step["left"], step["right"],
                                        step["target_rotation"], tuple(step["size"]), tuple(step["scale"]))
            elif op == "transform_bilinear":
                feature, matrix = step["in"]
                y = transform_bilinear(env[feature], env[matrix], tuple(step["size"]))
            elif op == "transform_landmarks":
                points, matrix = step["in"]
                y = transform_landmarks(env[points], env[matrix])
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

    def _run_group(self, group: list[dict], env: dict[int, torch.Tensor]) -> None:
        """Steps of one of MediaPipe's custom operators that :func:`_transform_groups` batched, in one go (one short
        graph for all of them once exported, instead of one per step)."""
        first = group[0]
        if first["op"] == "landmarks_to_matrix":
            out = landmarks_to_matrices([env[s["in"]] for s in group], [s["subset"] for s in group],
                                        [s["left"] for s in group],
                                        [s["right"] for s in group], first["target_rotation"], tuple(first["size"]),
                                        tuple(first["scale"]))
        elif first["op"] == "transform_bilinear":
            out = transform_bilinear_many(env[first["in"][0]], torch.stack([env[s["in"][1]] for s in group], 1),
                                          tuple(first["size"]))
        else:
            out = transform_landmarks_many([env[s["in"][0]] for s in group], [env[s["in"][1]] for s in group])
        for k, step in enumerate(group):
            env[step["out"]] = out[k] if isinstance(out, list) else out[:, k]

    def _to_tflite_order(self, t: torch.Tensor, tensor_id: int) -> torch.Tensor:
        """NCHW activations back to NHWC element order (what RESHAPE and the outputs assume)."""
        return t.permute(0, 2, 3, 1) if self._ranks[tensor_id] == 4 and t.dim() == 4 else t


def _transform_groups(steps: list[dict]) -> dict[int, list[int]]:
    """Steps of MediaPipe's custom operators that can run as one: Landmarks2TransformMatrix steps (the
    attention mesh's lips, left and right eye crops), TransformTensorBilinear steps sampling the same
    feature map, TransformLandmarks steps, each group where every member's inputs exist at its first step.
    Returns first step index -> the group's step indices (groups of one are left out)."""
    made_at = {step["out"]: i for i, step in enumerate(steps)}
    keys = {"landmarks_to_matrix": lambda s: (tuple(s["size"]), tuple(s["scale"]), s["target_rotation"]),
            "transform_bilinear": lambda s: (s["in"][0], tuple(s["size"])),
            "transform_landmarks": lambda s: (s["points_dim"] if "points_dim" in s else 0,)}
    found: dict[tuple, list[int]] = {}
    for i, step in enumerate(steps):
        if step["op"] in keys:
            found.setdefault((step["op"], *keys[step["op"]](step)), []).append(i)
    groups = {}
    for members in found.values():
        first = members[0]

        def ready(j):
            ins = steps[j]["in"] if isinstance(steps[j]["in"], list) else [steps[j]["in"]]
            return all(made_at.get(t, -1) < first for t in ins)

        group = [j for j in members if ready(j)]
        if len(group) > 1:
            groups[first] = group
    return groups


def landmarks_to_matrix(landmarks: torch.Tensor, subset: list[int], left: int, right: int, target_rotation: float,
                        size: tuple[int, int], scale: tuple[float, float]) -> torch.Tensor:
    """MediaPipe's Landmarks2TransformMatrix v2. ``landmarks``: BxNx3 -> Bx4x4, the affine that maps a pixel of an
    ``size`` (HxW) output grid to the input: a box around landmarks ``subset``, rotated by ``target_rotation`` minus
    the angle of the line from ``left`` to ``right``, grown by ``scale`` (y, x)."""
    return landmarks_to_matrices([landmarks], [subset], [left], [right], target_rotation, size, scale)[:, 0]


def landmarks_to_matrices(landmarks: list[torch.Tensor], subsets: list[list[int]], lefts: list[int],
                          rights: list[int], target_rotation: float, size: tuple[int, int],
                          scale: tuple[float, float]) -> torch.Tensor:
    """:func:`landmarks_to_matrix` for G (landmarks, subset, left, right) at once -> BxGx4x4. Cosine and sine come
    from each line itself (no angle, so no atan2), and the steps are a few matrix products: a short graph once
    exported. Subsets of unequal length repeat their last point (a box does not change)."""
    kw = {"dtype": landmarks[0].dtype, "device": landmarks[0].device}
    length = max(len(sub) for sub in subsets)
    g = len(subsets)
    n = landmarks[0].shape[1]
    # one BxG*Nx2 tensor (one copy where every step reads the same tensor), indices offset per step
    same = all(lm is landmarks[0] for lm in landmarks)
    xy = landmarks[0][..., :2] if same else torch.cat([lm[..., :2] for lm in landmarks], 1)
    base = [0 if same else k * n for k in range(g)]
    index = [[o + i for i in list(sub) + [sub[-1]] * (length - len(sub))] for o, sub in zip(base, subsets)]
    d = xy[:, [o + r for o, r in zip(base, rights)]] - xy[:, [o + v for o, v in zip(base, lefts)]]   # BxGx2
    norm = torch.sqrt((d * d).sum(-1, keepdim=True))
    ok = norm > 0
    unit = torch.where(ok, d / torch.where(ok, norm, torch.ones_like(norm)),  # atan2(0, 0) = 0: no rotation
                       torch.tensor([1.0, 0.0], **kw))
    ct, st = float(np.cos(target_rotation)), float(np.sin(target_rotation))
    # rotation(r), r = target - angle, row-major, linear in the unit direction (cos a, sin a)
    k = torch.tensor([[ct, -st, st, ct], [st, ct, -ct, st]], **kw)
    rot = (unit @ k).reshape(-1, g, 2, 2)
    pts = xy[:, sum(index, [])].reshape(-1, g, length, 2)
    turned = pts @ rot.transpose(2, 3)                                         # each subset rotated by its r
    high, low = turned.amax(2), turned.amin(2)                                 # BxGx2 each
    centre = (((high + low) / 2)[..., None, :] @ rot)[..., 0, :]               # rotated back: rotation(-r) = rot^T
    out_h, out_w = size
    grow = (high - low) * torch.tensor([scale[1] / out_w, scale[0] / out_h], **kw)
    a = rot.transpose(2, 3) * grow[..., None, :]                               # rotation(-r) @ diag(grow)
    t = centre - (a * torch.tensor([out_w / 2, out_h / 2], **kw)).sum(-1)
    # [[a, 0, t], [0, 0, 1, 0], [0, 0, 0, 1]] from products with constants (no shape-dependent zeros or expand)
    spread = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], **kw)             # 2x4: a's columns
    rows = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]], **kw)            # 4x2: the top rows
    last = torch.tensor([0.0, 0.0, 0.0, 1.0], **kw)
    bottom = torch.tensor([[0.0] * 4, [0.0] * 4, [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]], **kw)
    return rows @ (a @ spread + t[..., None] * last) + bottom


def transform_bilinear(feature: torch.Tensor, matrix: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """MediaPipe's TransformTensorBilinear v2. ``feature``: BxCxHxW, ``matrix``: Bx4x4 (output pixel -> input pixel,
    pixel centres at +0.5) -> BxCx``size``: bilinear samples, zero where the sample point leaves the input."""
    return transform_bilinear_many(feature, matrix[:, None], size)[:, 0]


def transform_bilinear_many(feature: torch.Tensor, matrices: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """:func:`transform_bilinear` through G matrices (BxGx4x4) at once -> BxGxCx``size``.

    The four neighbours are gathered and weighted here rather than by ``grid_sample``: onnxruntime's GridSample took
    ~0.25 ms for each 16x16x32 sample on the CPU, more than the convolutions of the branch it feeds."""
    c, h, w = (int(v) for v in feature.shape[1:])          # constants once exported (no shape arithmetic)
    g = int(matrices.shape[1])
    out_h, out_w = size
    p = out_h * out_w
    kw = {"dtype": feature.dtype, "device": feature.device}
    gy, gx = torch.meshgrid(torch.arange(out_h, **kw) + 0.5, torch.arange(out_w, **kw) + 0.5, indexing="ij")
    coords = torch.stack([gx.reshape(-1), gy.reshape(-1), torch.ones(p, **kw)], -1)                # Px3
    m = matrices.to(feature.dtype)[:, :, :2][..., [0, 1, 3]]                                       # BxGx2x3
    at = coords @ m.transpose(2, 3) - 0.5                                     # BxGxPx2: input pixel (x, y) of each
    top = torch.tensor([w - 1.0, h - 1.0], **kw)
    inside = ((at >= 0) & (at <= top)).all(-1, keepdim=True).to(feature.dtype)   # TFLite: 0 outside [0, size-1]
    at = torch.minimum(torch.clamp(at, min=0.0), top)                          # any index read stays valid
    low = torch.floor(at)
    frac = at - low
    step = (torch.minimum(low + 1, top) - low) * torch.tensor([1.0, w], **kw)  # 0 past the edge (weight 0 there)
    corners = torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]], **kw)
    index = ((low * torch.tensor([1.0, w], **kw)).sum(-1, keepdim=True) + step @ corners).long()  # BxGxPx4
    both = torch.cat([1 - frac, frac], -1)                                     # (1-fx, 1-fy, fx, fy)
    weight = both[..., [0, 2, 0, 2]] * both[..., [1, 1, 3, 3]] * inside       # BxGxPx4
    # whole pixels (C values, contiguous once the map is HWC) gathered as rows of one B*H*W x C table, corner
    # first: a row copy per sample instead of an element gather through a B x C x G*P*4 index
    rows = feature.permute(0, 2, 3, 1).reshape(-1, c)
    first = torch.arange(feature.shape[0], device=feature.device).reshape(-1, 1, 1, 1) * (h * w)
    values = rows[(index + first).permute(3, 0, 1, 2).reshape(4, -1)]          # 4 x B*G*P x C
    weighted = (values * weight.permute(3, 0, 1, 2).reshape(4, -1, 1)).reshape(4, -1)
    out = (torch.ones(1, 4, **kw) @ weighted).reshape(-1, c)                   # B*G*P x C: the corners' sum
    return out.reshape(-1, g, p, c).transpose(2, 3).reshape(-1, g, c, out_h, out_w)


def transform_landmarks(points: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """MediaPipe's TransformLandmarks v2. ``points``: BxNx2 (or BxNx3: z kept), ``matrix``: Bx4x4 -> the points'
    x, y through the matrix's affine part."""
    m = matrix.to(points.dtype)
    xy = points[..., :2] @ m[:, :2, :2].transpose(1, 2) + m[:, None, :2, 3]
    return torch.cat([xy, points[..., 2:]], -1) if points.shape[-1] > 2 else xy


def transform_landmarks_many(points: list[torch.Tensor], matrices: list[torch.Tensor]) -> list[torch.Tensor]:
    """:func:`transform_landmarks` for G point sets (BxNgx2, or x3), each through its own matrix, in one go."""
    if any(pt.shape[-1] != points[0].shape[-1] for pt in points):
        return [transform_landmarks(pt, m) for pt, m in zip(points, matrices)]
    sizes = [int(pt.shape[1]) for pt in points]
    every = torch.cat(points, 1)                                               # BxNx2
    # every point through every matrix (G products of Nx2 by 2x2), then each point's own kept by a constant mask:
    # a few whole-tensor ops rather than N batched 2x2 products through a per-point gather of the matrices
    mine = torch.zeros(len(sizes), sum(sizes), 1, dtype=every.dtype, device=every.device)
    for k, start in enumerate(np.cumsum([0] + sizes[:-1])):
        mine[k, int(start):int(start) + sizes[k]] = 1.0
    m = torch.stack(matrices, 1).to(every.dtype)                               # BxGx4x4
    xy = ((every[:, None, :, :2] @ m[..., :2, :2].transpose(2, 3) + m[..., None, :2, 3]) * mine).sum(1)
    out = torch.cat([xy, every[..., 2:]], -1) if every.shape[-1] > 2 else xy
    return list(out.split(sizes, 1))
