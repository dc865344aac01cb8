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
    graph output, each in TFLite's (NHWC) element order with the batch dimension first. ``lanes``: run parallel
    sub-models as one (:func:`merge_lanes`; the same outputs to float rounding).
    """

    def __init__(self, spec: list[dict], arrays: dict[str, np.ndarray], lanes: bool = False):
        super().__init__()
        if lanes:
            spec, arrays = merge_lanes(spec, arrays)
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
                src = self._to_tflite_order(env[step["in"]], step["in"], flat=True)
                y = _to_nchw(src.reshape([-1, *step["shape"][1:]]))     # -1: a constant shape once exported
            elif op == "mul":
                y = _activate(env[step["in"]] * getattr(self, f"c{i}"), step["act"])
            elif op == "slice":
                src = self._to_tflite_order(env[step["in"]], step["in"])
                index = (slice(None),) + tuple(slice(b, e, s) for b, e, s in
                                               zip(step["begin"], step["end"], step["strides"]))
                if all(sl.start == 0 and sl.step == 1 and sl.stop >= int(n) for sl, n in zip(index[1:], src.shape[1:])):
                    env[step["out"]] = env[step["in"]]           # a slice that keeps everything: no op
                    continue
                y = _to_nchw(src[index])
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
            elif op == "lanes":                             # a group's bilinear crops side by side
                stacked = env.get(("stack", tuple(step["in"])))
                if stacked is not None:                      # BxHxWxGxC: one NHWC map, read as NCHW
                    h, w, g, c = (int(v) for v in stacked.shape[1:])     # constants once exported
                    y = stacked.reshape(-1, h, w, g * c).permute(0, 3, 1, 2)
                else:
                    y = torch.cat([env[j] for j in step["in"]], 1)
            elif op == "lane_gather":
                src = env[step["in"]]
                c, h, w = (int(v) for v in src.shape[1:])
                lanes = src.reshape(-1, c // step["width"], step["width"], h, w)
                y = lanes[:, step["index"]].reshape(-1, len(step["index"]) * step["width"], h, w)
            elif op == "unlane":
                y = env[step["in"]][:, step["start"]: step["stop"]]
            elif op == "concat":
                axis = step["axis"]
                rank = self._ranks[step["out"]]
                if rank == 4:
                    axis = _NHWC_TO_NCHW_AXIS[axis % 4]
                y = torch.cat([env[j] for j in step["in"]], dim=axis)
            else:  # pragma: no cover - the converter only emits the ops above
                raise ValueError(op)
            env[step["out"]] = y
        return tuple(self._to_tflite_order(env[j], j, flat=True) for j in self.output_ids)

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
            samples = bilinear_samples(env[first["in"][0]], torch.stack([env[s["in"][1]] for s in group], 1),
                                       tuple(first["size"]))
            out = samples.permute(0, 3, 4, 1, 2)                # BxGxCxHxW
        else:
            out = transform_landmarks_many([env[s["in"][0]] for s in group], [env[s["in"][1]] for s in group])
        for k, step in enumerate(group):
            env[step["out"]] = out[k] if isinstance(out, list) else out[:, k]
        if first["op"] == "transform_bilinear":        # BxHxWxGxC: the lanes of :func:`merge_lanes` as they are
            env[("stack", tuple(step["out"] for step in group))] = samples

    def _to_tflite_order(self, t: torch.Tensor, tensor_id: int, flat: bool = False) -> torch.Tensor:
        """NCHW activations back to NHWC element order (what RESHAPE and the outputs assume). ``flat``: the caller
        only reads the elements in order, so a 1x1 map (the same order either way) is only re-shaped (no transpose
        once exported)."""
        if self._ranks[tensor_id] != 4 or t.dim() != 4:
            return t
        if flat and int(t.shape[2]) == 1 and int(t.shape[3]) == 1:
            return t.reshape(-1, 1, 1, int(t.shape[1]))
        return t.permute(0, 2, 3, 1)


def _to_nchw(y: torch.Tensor) -> torch.Tensor:
    """A tensor in TFLite's NHWC order as the NCHW activation rank-4 tensors live as (a 1x1 map: a reshape, the same
    element order, no transpose once exported)."""
    if y.dim() != 4:
        return y
    if int(y.shape[1]) == 1 and int(y.shape[2]) == 1:
        return y.reshape(-1, int(y.shape[3]), 1, 1)
    return y.permute(0, 3, 1, 2)


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
    """:func:`transform_bilinear` through G matrices (BxGx4x4) at once -> BxGxCx``size`` (a view of
    :func:`bilinear_samples`)."""
    return bilinear_samples(feature, matrices, size).permute(0, 3, 4, 1, 2)


def bilinear_samples(feature: torch.Tensor, matrices: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """:func:`transform_bilinear` through G matrices (BxGx4x4) at once, as Bx``size``xGxC (channels last: the G
    crops side by side are one NHWC map).

    The four neighbours are gathered and weighted here rather than by ``grid_sample``: onnxruntime's GridSample took
    ~0.25 ms for each 16x16x32 sample on the CPU, more than the convolutions of the branch it feeds. The sample
    positions are worked out coordinate by coordinate on BxPxG tensors (onnxruntime broadcasts along a short last
    axis, as an Nx2 point list needs, one short span at a time: ~20 us an op at these sizes, ~1 us so)."""
    c, h, w = (int(v) for v in feature.shape[1:])          # constants once exported (no shape arithmetic)
    g = int(matrices.shape[1])
    out_h, out_w = size
    p = out_h * out_w
    kw = {"dtype": feature.dtype, "device": feature.device}
    gy, gx = torch.meshgrid(torch.arange(out_h, **kw) + 0.5, torch.arange(out_w, **kw) + 0.5, indexing="ij")
    coords = torch.stack([gx.reshape(-1), gy.reshape(-1), torch.ones(p, **kw)], -1)                # Px3
    m = matrices.to(feature.dtype)
    x = coords @ m[:, :, 0, [0, 1, 3]].transpose(1, 2) - 0.5                  # BxPxG: input pixel x of each sample
    y = coords @ m[:, :, 1, [0, 1, 3]].transpose(1, 2) - 0.5
    cx, cy = torch.clamp(x, 0.0, w - 1.0), torch.clamp(y, 0.0, h - 1.0)     # any index read stays valid
    # TFLite: 0 outside [0, size-1], i.e. where clamping moved the point
    inside = (cx == x).to(feature.dtype) * (cy == y).to(feature.dtype)
    x0, y0 = torch.floor(cx), torch.floor(cy)
    fx, fy = cx - x0, cy - y0
    x1, y1 = torch.clamp(x0 + 1.0, max=w - 1.0), torch.clamp(y0 + 1.0, max=h - 1.0)   # past the edge: weight 0 there
    r0, r1 = y0 * w, y1 * w
    # each batch item's first row (the batch size read off the matrices: onnxruntime then never lays the feature map
    # out as NCHW only to read its shape)
    first = torch.arange(matrices.shape[0], device=feature.device).reshape(1, -1, 1, 1) * (h * w)
    index = torch.stack([r0 + x0, r0 + x1, r1 + x0, r1 + x1]).long() + first               # 4xBxPxG
    left, top = (1.0 - fx) * inside, 1.0 - fy
    right = fx * inside
    weight = torch.stack([left * top, right * top, left * fy, right * fy])                 # 4xBxPxG
    # whole pixels (C values, contiguous once the map is HWC) gathered as rows of one B*H*W x C table, corner
    # first: a row copy per sample instead of an element gather through a B x C x G*P*4 index
    rows = feature.permute(0, 2, 3, 1).reshape(-1, c)
    values = rows[index.reshape(-1)]                                                       # 4*B*P*G x C
    spread = weight.reshape(-1, 1) @ torch.ones(1, c, **kw)             # each weight over its row: one outer product
    out = torch.ones(1, 4, **kw) @ (values * spread).reshape(4, -1)                        # the corners' sum
    return out.reshape(-1, out_h, out_w, g, c)


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
    every = torch.cat(points, 1)                                               # BxNxD
    # each point's own affine coefficients (a constant one-hot product: Bx6xN), then x and y as whole BxN tensors:
    # a few whole-tensor ops rather than N batched 2x2 products, and no broadcast along a 2-long last axis
    mine = torch.zeros(len(sizes), sum(sizes), dtype=every.dtype, device=every.device)
    for k, start in enumerate(np.cumsum([0] + sizes[:-1])):
        mine[k, int(start):int(start) + sizes[k]] = 1.0
    m = torch.stack(matrices, 1).to(every.dtype)                               # BxGx4x4
    coef = m[:, :, :2][..., [0, 1, 3]].reshape(-1, len(sizes), 6).transpose(1, 2) @ mine     # Bx6xN
    x, y = every[..., 0], every[..., 1]
    xy = torch.stack([coef[:, 0] * x + coef[:, 1] * y + coef[:, 2], coef[:, 3] * x + coef[:, 4] * y + coef[:, 5]], -1)
    out = torch.cat([xy, every[..., 2:]], -1) if every.shape[-1] > 2 else xy
    return list(out.split(sizes, 1))


#: ops :func:`merge_lanes` runs for several lanes at once
_LANE_OPS = ("conv", "prelu", "add", "maxpool", "pad")


def merge_lanes(spec: list[dict], arrays: dict[str, np.ndarray]) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The spec with parallel branches run as one: the attention mesh's lips, left and right eye sub-models (each
    cropped by one TransformTensorBilinear of a group, same shapes, own weights) become "lanes" of one tensor, their
    channels side by side (lane-major), and each set of matching steps, one per lane, becomes one step: depthwise
    convolutions with the weights side by side, per-lane dense convolutions as grouped ones (groups = lanes),
    PReLU with the slopes side by side, sums and pools as they are, channel pads as grouped 1x1 convolutions that
    embed the channels. Where lanes split (an eye's contour and iris heads both read its trunk) the lanes are
    gathered (lane k of the input repeated); output convolutions of unequal widths are padded with zero filters.
    Steps outside the lanes read a lane back as a channel slice. Same values to float rounding (a grouped
    convolution sums the same products); the attention mesh's branches: ~220 convolutions -> ~57 (onnxruntime on
    the CPU: the net ~15-20 % faster; 16x16 down to 1x1 maps, where a convolution's fixed cost is much of its time).
    A spec without a group of bilinear crops comes back as it is.

    Returns (spec, arrays): a new spec, and the original arrays with the merged ones added.
    """
    header, steps = spec[0], spec[1:]
    arrays = dict(arrays)
    ranks = dict(header["ranks"])
    made_at = {s["out"]: i for i, s in enumerate(steps)}
    users: dict[int, list[int]] = {}
    for i, s in enumerate(steps):
        for t in (s["in"] if isinstance(s["in"], list) else [s["in"]]):
            users.setdefault(t, []).append(i)
    fresh = [max(int(k) for k in ranks) + 1]

    def new_id() -> int:
        fresh[0] += 1
        ranks[str(fresh[0])] = 4
        return fresh[0]

    # bundle id -> (member tensor ids in lane order, lane width (channels each lane holds), valid channels per lane)
    bundles: dict[int, tuple[list[int], int, list[int]]] = {}
    where: dict[int, tuple[int, int]] = {}            # member tensor -> (bundle, lane)
    starts: dict[int, int] = {}                        # step index -> bundle made right after it (bilinear groups)
    for first, group in _transform_groups(steps).items():
        if steps[first]["op"] == "transform_bilinear":
            feature = steps[first]["in"][0]
            c = _channels(steps, arrays, feature, made_at, users)
            if c is None:
                continue
            b = new_id()
            members = [steps[j]["out"] for j in group]
            bundles[b] = (members, c, [c] * len(members))
            where.update({t: (b, k) for k, t in enumerate(members)})
            starts[max(group)] = b
    if not bundles:
        return spec, arrays

    def lane_input(t: int) -> tuple[int, int] | None:
        """(bundle, lane) of a full-width lane tensor (a merged step's input), else None."""
        if t not in where:
            return None
        b, k = where[t]
        return (b, k) if bundles[b][2][k] == bundles[b][1] else None

    def signature(s: dict):
        if s["op"] not in _LANE_OPS:
            return None
        ins = s["in"] if isinstance(s["in"], list) else [s["in"]]
        found = [lane_input(t) for t in ins]
        if any(f is None for f in found):
            return None
        if s["op"] == "conv":
            w = arrays[s["weight"]]
            depthwise = s["groups"] == w.shape[0] and w.shape[1] == 1
            if not depthwise and s["groups"] != 1:
                return None
            key = ("conv", depthwise, w.shape[1:] if not depthwise else w.shape, tuple(s["stride"]),
                   tuple(s["dilation"]), tuple(s["pads"]), s["act"])
        elif s["op"] == "prelu":
            key = ("prelu", arrays[s["weight"]].shape)
        elif s["op"] == "add":
            key = ("add", s["act"])
        elif s["op"] == "maxpool":
            key = ("maxpool", tuple(s["kernel"]), tuple(s["stride"]), tuple(s["pads"]))
        else:
            if any(s["pads"][:4]):                     # only channel pads (the residual blocks' growth)
                return None
            key = ("pad", tuple(s["pads"]))
        return key, tuple(f[0] for f in found)

    out_steps: list[dict] = []
    done: set[int] = set()
    present: set[int] = {header["inputs"][0]}         # individual tensors computed so far
    gathers: dict[tuple[int, tuple[int, ...]], int] = {}

    def materialize(t: int) -> None:
        if t in present or t not in where:
            return
        b, k = where[t]
        _, width, valid = bundles[b]
        out_steps.append({"op": "unlane", "in": b, "out": t, "start": k * width, "stop": k * width + valid[k]})
        present.add(t)

    def lanes_of(b: int, index: list[int]) -> int:
        """Bundle ``b`` with lanes ``index`` (in that order): itself, or a gather of its lanes."""
        members, width, valid = bundles[b]
        if index == list(range(len(members))):
            return b
        key = (b, tuple(index))
        if key not in gathers:
            g = new_id()
            out_steps.append({"op": "lane_gather", "in": b, "out": g, "index": list(index), "width": width})
            bundles[g] = ([members[k] for k in index], width, [valid[k] for k in index])
            gathers[key] = g
        return gathers[key]

    for i, s in enumerate(steps):
        if i in done:
            continue
        sig = signature(s)
        group = [j for j in range(i, len(steps)) if j not in done and (j == i or signature(steps[j]) == sig)] \
            if sig is not None else [i]
        if len(group) < 2:
            for t in (s["in"] if isinstance(s["in"], list) else [s["in"]]):
                materialize(t)
            out_steps.append(s)
            present.add(s["out"])
            if i in starts:
                b = starts[i]
                out_steps.append({"op": "lanes", "in": list(bundles[b][0]), "out": b})
            continue
        done.update(group)
        n_in = len(s["in"]) if isinstance(s["in"], list) else 1
        ins = []
        for p in range(n_in):
            tensors = [(steps[j]["in"] if isinstance(steps[j]["in"], list) else [steps[j]["in"]])[p] for j in group]
            ins.append(lanes_of(where[tensors[0]][0], [where[t][1] for t in tensors]))
        lanes = len(group)
        width = bundles[ins[0]][1]
        out = new_id()
        op = s["op"]
        name = f"lanes{out}"
        if op == "conv":
            ws = [arrays[steps[j]["weight"]] for j in group]
            bs = [arrays[steps[j]["bias"]] for j in group]
            valid = [w.shape[0] for w in ws]
            top = max(valid)
            if ws[0].shape[1] == 1 and s["groups"] > 1:                          # depthwise: side by side
                weight, bias, groups = np.concatenate(ws), np.concatenate(bs), lanes * width
            else:                                                                # dense per lane: grouped
                weight = np.zeros((lanes * top, *ws[0].shape[1:]), np.float32)
                bias = np.zeros(lanes * top, np.float32)
                for k, (w, bb) in enumerate(zip(ws, bs)):
                    weight[k * top: k * top + len(w)] = w
                    bias[k * top: k * top + len(bb)] = bb
                groups = lanes
            arrays[name + ".w"], arrays[name + ".b"] = weight.astype(np.float32), bias.astype(np.float32)
            merged = dict(s, **{"in": ins[0], "out": out, "weight": name + ".w", "bias": name + ".b",
                                "groups": groups})
            bundles[out] = ([steps[j]["out"] for j in group], top, valid)
        elif op == "pad":
            c0, c1 = s["pads"][4], s["pads"][5]
            grown = c0 + width + c1
            weight = np.zeros((lanes * grown, width, 1, 1), np.float32)
            for k in range(lanes):
                weight[k * grown + c0 + np.arange(width), np.arange(width)] = 1.0
            arrays[name + ".w"], arrays[name + ".b"] = weight, np.zeros(lanes * grown, np.float32)
            merged = {"op": "conv", "in": ins[0], "out": out, "weight": name + ".w", "bias": name + ".b",
                      "groups": lanes, "stride": [1, 1], "dilation": [1, 1], "pads": [0, 0, 0, 0], "act": None}
            bundles[out] = ([steps[j]["out"] for j in group], grown, [grown] * lanes)
        else:
            if op == "prelu":
                arrays[name + ".w"] = np.concatenate([arrays[steps[j]["weight"]] for j in group]).astype(np.float32)
                merged = dict(s, **{"in": ins[0], "out": out, "weight": name + ".w"})
            else:
                merged = dict(s, **{"in": ins if op == "add" else ins[0], "out": out})
            bundles[out] = ([steps[j]["out"] for j in group], width, [width] * lanes)
        out_steps.append(merged)
        where.update({t: (out, k) for k, t in enumerate(bundles[out][0])})
    for t in header["outputs"]:
        materialize(t)
    return [dict(header, ranks=ranks), *out_steps], arrays


def _channels(steps: list[dict], arrays: dict, feature: int, made_at: dict, users: dict) -> int | None:
    """Channels of tensor ``feature`` where a conv made it or reads it, else None."""
    if feature in made_at and steps[made_at[feature]]["op"] == "conv":
        return int(arrays[steps[made_at[feature]]["weight"]].shape[0])
    for j in users.get(feature, []):
        if steps[j]["op"] == "conv" and steps[j]["in"] == feature:
            return int(arrays[steps[j]["weight"]].shape[1] * steps[j]["groups"])
    return None
