"""The GPU fast path: render and composite an analysed shot's frames on one device, in batches.

Per shot the analysis (track, plan) is what :mod:`ned_fx.pipeline` does; this is the per-frame path the daemon
repeats, as :class:`FastShotRenderer` — a drop-in for :class:`ned_fx.pipeline.ShotRenderer` (same
``render(frame) -> (frame, reason)``, plus ``render_many`` for batches):

1. CPU, per frame (small): the face box, the target mesh's label map on the field grid (``rasterize_labels``),
   the face-oval polygons of the mask.
2. **One upload per frame**: the colour channels of the face box, in the plate's own dtype (uint8 stays one
   byte), staged in pinned host memory and copied ``non_blocking`` on a copy stream.
3. Every pixel operation on the device, batched (``batch_size`` frames per engine call): the geometry renderer
   (its runner: torch eager, ``torch.compile`` or TensorRT), then the compositor ported to torch — the soft
   face mask (a signed distance to the face ovals), the colour match and the 5-level Laplacian blend of the
   difference, rounding back to the plate's dtype.
4. **One download per frame** of the finished box region (plate dtype); the host copies it into the frame. Every
   pixel outside the box, and alpha/extra channels everywhere, stay the input's own bytes.

Transfers overlap compute: a batch's upload and download run on a copy stream while the previous/next batch
computes on the compute stream (events order them). On the CPU the same code runs synchronously.

**Boxes.** ``box="frame"`` (default) uses :class:`~ned_fx.pipeline.ShotRenderer`'s own box per frame and
reproduces its pixels, so a host's preview through the daemon matches ``ned-fx edit``; frames batch when their
boxes share a size. ``box="shot"`` gives every frame of the shot one region size — the largest of the shot's
face boxes, centred on each frame's face — so shapes are static: any frames batch into one engine call, and
compiled engines see one shape. ``box="bucket"`` rounds each frame's box up to a multiple of ``bucket`` pixels
(centred on the face): frames of *different* shots with faces of similar size then share a shape, which is what
lets the daemon put frames of several clients into one engine call. In both, the renderer's field grid and the
openings' anti-aliased edges fall on other cells, so lid and lip edges differ by up to a few tens of code values
along a line a pixel wide.

**Parity with ShotRenderer** (on the CPU, ``tests/test_fastpath.py``, 8-bit plates): with ``box="frame"`` at
most 2 code values differ anywhere and the mean absolute difference over the face box is at most 0.02
(measured: at most 1 value, on ~0.05 % of the pixels: the renderer's torch resampling against its OpenCV one,
and the mask's exact signed distance against OpenCV's distance transform of a rasterised polygon); with
``box="shot"``: at most 64 values along the lid/lip edges, 99.9th percentile over the box at most 8, mean at
most 0.1 (measured: 43, ~0.02 mean). uint16, float16/float32 (NaN and values above 1 kept) and grey plates
match alike; outside the box, and in alpha and extra channels, every byte is the input's. Not on a large face:
ShotRenderer refines the field around a far-bent mouth where the coarse cell exceeds
``RendererConfig.refine_above_px`` (3 px: a 720² close-up, a 4K face); the fast path keeps the coarse field, so
there a moved lip's edge differs (stair-stepped here) by up to a few tens of code values.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from .compositing.blend import pyramid_levels
from .errors import InvalidParameterError
from .media.frames import Frame
from .pipeline import locate_face

BOX_MODES = ("frame", "shot", "bucket")
STAGES = ("prepare", "upload", "render", "composite", "download", "finish")


@dataclass(frozen=True)
class FastPathConfig:
    """Every knob of the fast path.

    Attributes:
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N``.
        backend: the renderer's back end: ``auto`` (:func:`~ned_fx.engines.select_backend`: TensorRT where
            fresh engines are built, else torch), ``torch-cpu``, ``torch-cuda``, ``torch-cuda-graphs`` (the
            renderer cannot be captured and runs eager), ``torch-compile`` (the compositor is compiled too) or
            ``tensorrt``.
        batch_size: frames per engine call (1..64).
        box: ``"frame"`` (default: ShotRenderer's boxes, its pixels), ``"shot"`` (one region size per shot:
            static shapes, every batch one engine call) or ``"bucket"`` (box sizes rounded up to ``bucket``
            pixels: frames of different shots share engine calls).
        bucket: the size step of ``box="bucket"`` (8..512 pixels).
        timing: measure each stage (CUDA events; costs a synchronisation per batch): see
            :attr:`FastShotRenderer.seconds`.
    """

    device: str = "auto"
    backend: str = "auto"
    batch_size: int = 8
    box: str = "frame"
    timing: bool = False
    bucket: int = 64

    def __post_init__(self) -> None:
        from .engines.config import BACKENDS

        valid = ("auto", *(b for b in BACKENDS if b != "onnxruntime"))
        if self.backend not in valid:
            raise InvalidParameterError(f"backend must be one of {', '.join(valid)}, got {self.backend!r}")
        if not 1 <= int(self.batch_size) <= 64:
            raise InvalidParameterError(f"batch_size must be between 1 and 64, got {self.batch_size}")
        if self.box not in BOX_MODES:
            raise InvalidParameterError(f"box must be one of {', '.join(BOX_MODES)}, got {self.box!r}")
        if not 8 <= int(self.bucket) <= 512:
            raise InvalidParameterError(f"bucket must be between 8 and 512 pixels, got {self.bucket}")


@dataclass(frozen=True)
class FramePlan:
    """What the fast path does with one frame (computed on the CPU from the shot's analysis).

    Attributes:
        number: the frame number; reason: None when the frame is edited, else why it passes through
        (``"no face"``, ``"no change at this frame"``, ``"face outside the picture"``);
        box: ``(x0, y0, x1, y1)`` in the frame's pixel (data-window) coordinates, end exclusive;
        src, dst: 478x3 source and target landmarks in region pixels.
    """

    number: int
    reason: str | None
    box: tuple[int, int, int, int] | None = None
    src: np.ndarray | None = None
    dst: np.ndarray | None = None


# ---- the compositor in torch ---------------------------------------------------------------------------------------

def pyr_down(x):
    """OpenCV's ``pyrDown`` on BxCxHxW: 5-tap binomial blur (reflect-101 borders), every second pixel."""
    import torch
    import torch.nn.functional as F

    c = x.shape[1]
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype, device=x.device) / 16.0
    y = F.pad(x, (2, 2, 2, 2), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, 5).expand(c, 1, 1, 5), stride=(1, 2), groups=c)
    return F.conv2d(y, k.view(1, 1, 5, 1).expand(c, 1, 5, 1), stride=(2, 1), groups=c)


def _up_axis(x, size: int, dim: int):
    import torch

    n = x.shape[dim]
    if n == 1:
        return x.repeat_interleave(size, dim=dim)
    left, right = x.narrow(dim, 1, 1), x.narrow(dim, n - 1, 1)        # reflect-101 left, replicate right
    xp = torch.cat([left, x, right], dim=dim)
    prev, cur, nxt = xp.narrow(dim, 0, n), xp.narrow(dim, 1, n), xp.narrow(dim, 2, n)
    even = (prev + 6.0 * cur + nxt) * 0.125
    odd = (cur + nxt) * 0.5
    out = torch.stack([even, odd], dim=dim + 1).flatten(dim, dim + 1)
    return out.narrow(dim, 0, size)


def pyr_up(x, size: tuple[int, int]):
    """OpenCV's ``pyrUp`` on BxCxHxW to ``size`` (H, W) (each 2n or 2n-1 of the input's n), with its borders."""
    return _up_axis(_up_axis(x, size[0], 2), size[1], 3)


def laplacian_blend_delta(delta, mask, levels: int):
    """Torch version of :func:`ned_fx.compositing.laplacian_blend_delta`, batched.

    Args:
        delta: BxCxHxW float32 (rendered minus plate); mask: Bx1xHxW in 0..1; levels: wanted pyramid levels
            (fewer on small regions, as the numpy version).

    Returns:
        BxCxHxW to add to the plate (exactly 0 where ``delta`` is 0 over the blend's support).
    """
    levels = pyramid_levels(delta.shape[2], delta.shape[3], levels)
    if levels == 0:
        return delta * mask
    gd, gm = [delta], [mask]
    for _ in range(levels):
        gd.append(pyr_down(gd[-1]))
        gm.append(pyr_down(gm[-1]))
    acc = gd[-1] * gm[-1]
    for k in range(levels - 1, -1, -1):
        size = (gd[k].shape[2], gd[k].shape[3])
        band = (gd[k] - pyr_up(gd[k + 1], size)) * gm[k]
        acc = pyr_up(acc, size) + band
    return acc


def color_match(rendered, plate, mask, max_gain: float = 1.25, samples: int = 40000):
    """Torch version of :func:`ned_fx.compositing.color_match`, batched (float64 statistics).

    Args:
        rendered, plate: BxCxHxW float32 (finite); mask: BxHxW in 0..1.

    Returns:
        ``(gain, offset)``: BxC float32 each (exactly 1 and 0 where there is no transition ring).
    """
    import torch

    h, w = mask.shape[-2:]
    step = max(1, int(np.sqrt(h * w / max(samples, 1))))
    m = mask[:, ::step, ::step].to(torch.float64)
    weight = 4.0 * m * (1.0 - m)
    weight = torch.where(weight > 1e-6, weight, torch.zeros_like(weight)).flatten(1)     # BxN
    total = weight.sum(1, keepdim=True)
    has = total > 0
    wf = (weight / torch.where(has, total, torch.ones_like(total)))[:, None]             # Bx1xN
    r = rendered[:, :, ::step, ::step].to(torch.float64).flatten(2)                      # BxCxN
    p = plate[:, :, ::step, ::step].to(torch.float64).flatten(2)
    mu_r, mu_p = (wf * r).sum(2), (wf * p).sum(2)
    sd_r = (wf * (r - mu_r[..., None]) ** 2).sum(2).sqrt()
    sd_p = (wf * (p - mu_p[..., None]) ** 2).sum(2).sqrt()
    gain = torch.where(sd_r > 1e-12, sd_p / torch.where(sd_r > 1e-12, sd_r, torch.ones_like(sd_r)),
                       torch.ones_like(sd_r)).clamp(1.0 / max_gain, max_gain)
    offset = mu_p - gain * mu_r
    gain = torch.where(has, gain, torch.ones_like(gain))
    offset = torch.where(has, offset, torch.zeros_like(offset))
    return gain.to(torch.float32), offset.to(torch.float32)


def _polygon_signed_distance(points, polys):
    """Signed distance (> 0 inside, even-odd rule) from points Nx2 to each closed polygon of BxVx2 -> BxN."""
    import torch

    ax, ay = polys[..., 0, None], polys[..., 1, None]                          # BxVx1
    bx, by = torch.roll(polys, -1, dims=1)[..., 0, None], torch.roll(polys, -1, dims=1)[..., 1, None]
    px, py = points[None, None, :, 0], points[None, None, :, 1]                # 1x1xN
    sx, sy = bx - ax, by - ay
    inv = 1.0 / (sx * sx + sy * sy).clamp_min(1e-12)
    rx, ry = px - ax, py - ay                                                  # BxVxN
    tau = ((rx * sx + ry * sy) * inv).clamp(0.0, 1.0)
    dx, dy = rx - tau * sx, ry - tau * sy
    dist = (dx * dx + dy * dy).amin(dim=1).sqrt()                              # BxN
    straddle = (ay > py) != (by > py)
    xint = ax + ry * sx / torch.where(straddle, sy, torch.ones_like(sy))
    inside = ((straddle & (px < xint)).sum(dim=1) % 2) == 1
    return torch.where(inside, dist, -dist)


def stack_polygons(polys: list[list[np.ndarray]]) -> np.ndarray:
    """Per frame, the mask's polygons (:func:`ned_fx.compositing.mask.mask_polygons` of target and source) as
    one BxPxVx2 array: shorter polygons repeat their last vertex (a zero-length edge changes neither the
    distance nor the inside test)."""
    most = max(len(q) for frame_polys in polys for q in frame_polys)
    return np.asarray([[np.concatenate([q, np.repeat(q[-1:], most - len(q), axis=0)]) for q in frame_polys]
                       for frame_polys in polys], np.float64)


def face_masks(polys, iods, size: tuple[int, int], config, device):
    """Torch version of :func:`ned_fx.compositing.face_mask` for a batch of one region size.

    The union of each frame's mask polygons (target and source: ovals and brow bands), with a smooth ramp ``feather`` wide centred on
    its edge, from the exact signed distance to the polygons on the coarse grid (OpenCV's version rasterises
    the polygon and takes a distance transform: the two agree within half a grid cell), upsampled bilinearly.

    Args:
        polys: BxPxVx2 float64 polygons in region pixels (:func:`stack_polygons`);
        iods: B target inter-ocular distances (pixels, >= 1); size: (H, W) of the region;
        config: the :class:`~ned_fx.compositing.CompositorConfig`; device: where to compute.

    Returns:
        BxHxW float32 in 0..1.
    """
    import torch
    import torch.nn.functional as F

    h, w = size
    scale = min(1.0, config.mask_cells / max(h, w))
    gh, gw = max(2, int(round(h * scale))), max(2, int(round(w * scale)))
    sx, sy = gw / w, gh / h
    b, npoly = polys.shape[:2]
    grid_polys = torch.as_tensor(polys * np.array([sx, sy]) - 0.5, dtype=torch.float32, device=device)
    ys, xs = torch.meshgrid(torch.arange(gh, dtype=torch.float32, device=device),
                            torch.arange(gw, dtype=torch.float32, device=device), indexing="ij")
    cells = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)
    signed = _polygon_signed_distance(cells, grid_polys.reshape(b * npoly, *grid_polys.shape[2:]))
    # the union (inside either oval); OpenCV's fillPoly also fills the cells its edges touch, so its polygons
    # come out about a quarter cell larger: matched here
    signed = signed.reshape(b, npoly, -1).amax(dim=1) + 0.25
    cell = 0.5 * (1 / sx + 1 / sy)
    iod = torch.as_tensor(np.asarray(iods, np.float32), device=device)[:, None]
    x = (0.5 + (signed * cell + config.grow * iod) / (config.feather * iod)).clamp(0.0, 1.0)
    soft = (x * x * (3.0 - 2.0 * x)).reshape(b, 1, gh, gw)
    if (gh, gw) != (h, w):
        soft = F.interpolate(soft, size=(h, w), mode="bilinear", align_corners=False)
    return soft[:, 0]


def composite_regions(plate, rendered, masks, config, dtype):
    """Blend rendered regions into plate regions (torch version of the compositor's per-region work).

    Args:
        plate: BxCxHxW float32 plate colour channels (may hold NaN/inf in float plates: those pixels keep
            their value); rendered: BxCxHxW float32; masks: BxHxW; config: CompositorConfig;
        dtype: the plate's torch dtype (uint8 / int32 holding uint16 / float16 / float32).

    Returns:
        BxCxHxW in ``dtype``: plate + blended difference (rounded and saturated for integer plates).
    """
    import torch

    finite = torch.isfinite(plate)
    base = torch.where(finite, plate, torch.zeros_like(plate))
    rend = torch.where(torch.isfinite(rendered), rendered, base)
    if config.color_match:
        gain, shift = color_match(rend, base, masks, config.color_match_max_gain)
        same = ((gain == 1.0) & (shift == 0.0)).all(dim=1)[:, None, None, None]
        rend = torch.where(same, rend, rend * gain[:, :, None, None] + shift[:, :, None, None])
    delta = torch.where(finite, rend - base, torch.zeros_like(rend))
    blended = laplacian_blend_delta(delta, masks[:, None], config.levels)
    result = blended + plate
    if dtype == torch.uint8:
        return result.round().clamp(0, 255).to(torch.uint8)
    if dtype == torch.int32:                                   # uint16 plates travel as int32 on the device
        return result.round().clamp(0, 65535).to(torch.int32)
    return result.to(dtype)


# ---- the shot renderer ---------------------------------------------------------------------------------------------

class FastShotRenderer:
    """Renders an analysed shot's frames on one device, in batches (see the module docstring).

    Args:
        track: the shot's Track; edited: its EditedTrack (from :func:`ned_fx.pipeline.plan_edit`);
        renderer_config, compositor_config: stage configs (defaults when None);
        config: a :class:`FastPathConfig` (defaults when None);
        runner: a ready (or not yet active) renderer runner to use instead of making one.

    Raises:
        InvalidParameterError, BackendUnavailableError: a bad device or a back end this machine lacks.
        StaleEngineError: ``backend="tensorrt"`` without a fresh engine for this GPU.
    """

    def __init__(self, track, edited, renderer_config=None, compositor_config=None,
                 config: FastPathConfig | None = None, runner=None):
        import torch

        from .compositing import CompositorConfig
        from .engines import make_runner, resolve_device, select_backend
        from .engines.modules import RendererEngine
        from .rendering import RendererConfig, build_render_mesh

        self.config = config or FastPathConfig()
        self.renderer_config = renderer_config or RendererConfig()
        self.compositor_config = compositor_config or CompositorConfig()
        self.track, self.edited = track, edited
        self.device = torch.device(resolve_device(self.config.device))
        self.mesh = build_render_mesh(track.mean_shape)
        from .pipeline import untangle_targets

        self.edited = untangle_targets(edited, self.mesh, self.renderer_config.fold_limit)
        self.index = {int(n): t for t, n in enumerate(track.frame_numbers)}
        backend = self.config.backend
        if backend == "auto":
            backend = select_backend(str(self.device)).name
        self.backend = backend
        if runner is None:
            module = RendererEngine(self.renderer_config).eval()
            runner = make_runner("geometry_renderer", backend, str(self.device), "fp32", module=module)
        self.runner = runner
        cuda = self.device.type == "cuda"
        self.compute = torch.cuda.Stream(self.device) if cuda else None
        self.copy = torch.cuda.Stream(self.device) if cuda else None
        if cuda and getattr(self.runner, "stream", "absent") is None:
            self.runner.stream = self.compute
        self.runner.activate()
        self.triangles = torch.as_tensor(np.asarray(self.mesh.triangles), dtype=torch.int32, device=self.device)
        outline = np.unique(np.asarray(self.mesh.outer_edges).reshape(-1)).astype(np.int32)
        self.outline = torch.as_tensor(outline, device=self.device)
        self.outline_key = outline.tobytes()      # frames of shots with the same outline batch together
        self._composite = composite_regions
        if backend == "torch-compile":      # one shape per shot with box="shot"; sizes vary with box="frame"
            self._composite = torch.compile(composite_regions, dynamic=False if self.config.box == "shot" else None)
        self.shot_size = self._shot_size() if self.config.box == "shot" else None
        self.seconds = {s: 0.0 for s in STAGES}

    def describe(self) -> dict:
        """Where and how it runs: back end, device, batch size, box mode, the renderer runner's own description."""
        return {"backend": self.backend, "device": str(self.device), "batch_size": self.config.batch_size,
                "box": self.config.box, "renderer": self.runner.describe()}

    def close(self) -> None:
        """Free the device memory the runner holds."""
        self.runner.deactivate()

    # -- planning (CPU) ---------------------------------------------------------------------------------------
    def _landmarks(self, k: int):
        return self.edited.source_landmarks[k], self.edited.target_landmarks[k]

    def _shot_size(self) -> tuple[int, int] | None:
        """The largest face box of the shot (w, h), in display-window pixels."""
        from .rendering import face_region_box

        width, height = int(self.track.width), int(self.track.height)
        sizes = []
        for k in range(len(self.edited.frame_numbers)):
            src, dst = self._landmarks(k)
            if not self.edited.found[k] or np.array_equal(src, dst):
                continue
            try:
                x0, y0, x1, y1 = face_region_box(np.concatenate([src, dst]), width, height)
            except InvalidParameterError:
                continue
            sizes.append((x1 - x0, y1 - y0))
        if not sizes:
            return None
        return max(s[0] for s in sizes), max(s[1] for s in sizes)

    def plan(self, frame: Frame) -> FramePlan:
        """The box and region landmarks of one frame (or why it passes through).

        Raises:
            InvalidParameterError: the frame number is not part of the analysed shot.
        """
        where = locate_face(self.track, self.edited, self.index, frame)
        if where.reason is not None:
            return FramePlan(frame.number, where.reason)
        box, s, d = where.box, where.src, where.dst
        size = self.shot_size
        if self.config.box == "bucket":
            step = int(self.config.bucket)
            size = (-(-(box[2] - box[0]) // step) * step, -(-(box[3] - box[1]) // step) * step)
        if size is not None:
            bw, bh = min(size[0], frame.width), min(size[1], frame.height)
            cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
            x0 = int(np.clip(cx - bw // 2, 0, frame.width - bw))
            y0 = int(np.clip(cy - bh // 2, 0, frame.height - bh))
            box = (x0, y0, x0 + bw, y0 + bh)
        offset = np.array([box[0], box[1], 0.0])
        return FramePlan(frame.number, None, tuple(int(v) for v in box), s - offset, d - offset)

    # -- rendering --------------------------------------------------------------------------------------------
    def render(self, frame: Frame, clock=None) -> tuple[Frame, str | None]:
        """Edit one frame (a batch of one): ``(edited frame, None)`` or ``(frame unchanged, reason)``.

        Args:
            frame: a frame of the shot; clock: the pipeline's per-stage clock (``clock.seconds``): gets the
                render and composite time (split by stage with ``timing=True``, else all as ``render``).

        Raises:
            InvalidParameterError: the frame number is not part of the analysed shot.
        """
        before, started = dict(self.seconds), time.perf_counter()
        out = next(self.render_many([frame]))
        if clock is not None:
            if self.config.timing:
                spent = {k: self.seconds[k] - before[k] for k in self.seconds}
                render = spent["prepare"] + spent["upload"] + spent["render"]
                composite = spent["composite"] + spent["download"] + spent["finish"]
            else:
                render, composite = time.perf_counter() - started, 0.0
            clock.seconds["render"] = clock.seconds.get("render", 0.0) + render
            clock.seconds["composite"] = clock.seconds.get("composite", 0.0) + composite
        return out

    def render_with_matte(self, frame: Frame) -> tuple[Frame, str | None, np.ndarray]:
        """Edit one frame and return its matte: ``(frame, reason, weights)``, ``weights`` (H, W) float32 over the
        frame's pixels (its data window): the soft face mask the device compositor blended this frame's
        difference with, inside the box and 0 outside it (all 0 for a frame passed through) — what
        :func:`ned_fx.pipeline.blend_weights` is for ShotRenderer. One more download per frame (the box's mask).

        Raises:
            InvalidParameterError: the frame number is not part of the analysed shot.
        """
        return next(self.render_many([frame], matte=True))

    def render_many(self, frames: Iterable[Frame], matte: bool = False) -> Iterator[tuple]:
        """Edit frames in batches of ``batch_size``; yields ``(frame, reason)`` in input order, or
        ``(frame, reason, weights)`` with ``matte`` (see :meth:`render_with_matte`).

        While one batch computes, the next one is prepared and uploaded, and the previous one downloaded.
        """
        pending = None
        chunk: list[Frame] = []

        def finish(job):
            for frame, reason, weights in self._finish(job):
                yield (frame, reason, weights) if matte else (frame, reason)

        for frame in frames:
            chunk.append(frame)
            if len(chunk) == self.config.batch_size:
                launched = self._launch(chunk, mattes=[matte] * len(chunk))
                if pending is not None:
                    yield from finish(pending)
                pending, chunk = launched, []
        if chunk:
            launched = self._launch(chunk, mattes=[matte] * len(chunk))
            if pending is not None:
                yield from finish(pending)
            pending = launched
        if pending is not None:
            yield from finish(pending)

    def _stream(self, stream):
        import torch

        return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()

    def _mark(self, stream):
        """A timing mark: a CUDA event on ``stream`` (GPU) or the host clock (CPU); None when not timing."""
        import torch

        if not self.config.timing:
            return None
        if stream is None:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record(stream)
        return event

    def _launch(self, frames: list[Frame], owners: list["FastShotRenderer"] | None = None,
                mattes: list[bool] | None = None) -> dict:
        """Plan, upload and launch ``frames`` (``owners[i]``: the renderer of the shot frame i belongs to,
        default this one; this renderer's runner, streams and configs do the work; ``mattes[i]``: also download
        frame i's blend weights)."""
        import torch

        from .compositing import color_channel_indices
        from .compositing.mask import mask_polygons
        from .rendering import field_grid_size, rasterize_labels
        from . import topology as T

        t0 = time.perf_counter()
        owners = owners or [self] * len(frames)
        mattes = list(mattes) if mattes is not None else [False] * len(frames)
        plans = [o.plan(f) for o, f in zip(owners, frames)]
        groups: dict[tuple, list[int]] = {}
        for i, (f, p) in enumerate(zip(frames, plans)):
            if p.reason is None:
                cols = color_channel_indices(f.channels, f.pixels.shape[2])
                x0, y0, x1, y1 = p.box
                groups.setdefault((y1 - y0, x1 - x0, cols, f.pixels.dtype.str, owners[i].outline_key),
                                  []).append(i)
        cuda = self.device.type == "cuda"
        launched = []
        for (h, w, cols, dtype_str, _), idx in groups.items():
            # the group's mesh: one shot's own, or several shots' triangles end to end (each frame's labels
            # point into its own shot's part; the openings after all of them)
            shots = list(dict.fromkeys(owners[i] for i in idx))
            offsets, n_total = {}, 0
            for o in shots:
                offsets[o] = n_total
                n_total += int(o.triangles.shape[0])
            triangles = shots[0].triangles if len(shots) == 1 else torch.cat([o.triangles for o in shots])
            np_dtype = np.dtype(dtype_str)
            wire = np.int16 if np_dtype == np.uint16 else np_dtype      # uint16 travels as its int16 bytes
            n, c = len(idx), len(cols)
            host = torch.empty((n, h, w, c), dtype=_torch_dtype(np.dtype(wire)), pin_memory=cuda)
            hn = host.numpy()
            srcs, dsts, labels, polys, iods = [], [], [], [], []
            grid = field_grid_size(h, w, self.renderer_config.field_cells)
            for j, i in enumerate(idx):
                p, pixels = plans[i], frames[i].pixels
                x0, y0, x1, y1 = p.box
                region = pixels[y0:y1, x0:x1]
                hn[j] = (region[:, :, list(cols)] if list(cols) != list(range(cols[0], cols[-1] + 1))
                         else region[:, :, cols[0]: cols[-1] + 1]).view(wire)
                srcs.append(p.src[:, :2])
                dsts.append(p.dst[:, :2])
                owner = owners[i]
                lab = rasterize_labels(p.dst, owner.mesh, (h, w), grid)
                if len(shots) > 1:
                    n_own = int(owner.triangles.shape[0])
                    lab = np.where(lab >= n_own, lab - n_own + n_total, np.where(lab >= 0, lab + offsets[owner], lab))
                labels.append(lab)
                iods.append(max(float(np.linalg.norm(p.dst[T.EYE_OUTER_RIGHT, :2] - p.dst[T.EYE_OUTER_LEFT, :2])),
                                1.0))
                polys.append(mask_polygons(p.dst, self.compositor_config, iods[-1])
                             + mask_polygons(p.src, self.compositor_config, iods[-1]))
            small = {"src": torch.from_numpy(np.stack(srcs).astype(np.float32)),
                     "dst": torch.from_numpy(np.stack(dsts).astype(np.float32)),
                     "labels": torch.from_numpy(np.stack(labels).astype(np.int32))}
            if cuda:
                small = {k: v.pin_memory() for k, v in small.items()}
            polys = stack_polygons(polys)
            self.seconds["prepare"] += time.perf_counter() - t0
            marks = [self._mark(self.copy)]
            with self._stream(self.copy):                     # 1 upload per frame (+ its landmarks/labels)
                dev_img = host.to(self.device, non_blocking=True)
                dev_small = {k: v.to(self.device, non_blocking=True) for k, v in small.items()}
                uploaded = torch.cuda.Event() if cuda else None
                if cuda:
                    uploaded.record(self.copy)
            marks.append(self._mark(self.copy))
            with self._stream(self.compute):
                if cuda:
                    self.compute.wait_event(uploaded)
                    dev_img.record_stream(self.compute)
                    for v in dev_small.values():
                        v.record_stream(self.compute)
                marks.append(self._mark(self.compute))
                if np_dtype == np.uint16:
                    plate = (dev_img.to(torch.int32) & 0xFFFF).permute(0, 3, 1, 2).to(torch.float32)
                    out_dtype = torch.int32
                else:
                    plate = dev_img.permute(0, 3, 1, 2).to(torch.float32)
                    out_dtype = dev_img.dtype
                rendered = self.runner.infer({"images": plate, "src": dev_small["src"], "dst": dev_small["dst"],
                                              "labels": dev_small["labels"], "triangles": triangles,
                                              "outline": shots[0].outline})["rendered"]
                marks.append(self._mark(self.compute))
                masks = face_masks(polys, iods, (h, w), self.compositor_config, self.device)
                result = self._composite(plate, rendered, masks, self.compositor_config, out_dtype)
                result = result.permute(0, 2, 3, 1)
                if out_dtype == torch.int32:
                    result = result.to(torch.int16)            # the uint16 bytes, back on the wire
                result = result.contiguous()
                # the matte: the very masks the blend used, for the frames that asked for it
                want = [j for j, i in enumerate(idx) if mattes[i]]
                weights = masks[want].contiguous() if want else None
                done = torch.cuda.Event() if cuda else None
                if cuda:
                    done.record(self.compute)
                marks.append(self._mark(self.compute))
            with self._stream(self.copy):                     # 1 download per frame: the finished box region
                if cuda:
                    self.copy.wait_event(done)
                    result.record_stream(self.copy)
                    out_host = torch.empty(result.shape, dtype=result.dtype, pin_memory=True)
                    out_host.copy_(result, non_blocking=True)
                    weights_host = None
                    if weights is not None:
                        weights.record_stream(self.copy)
                        weights_host = torch.empty(weights.shape, dtype=weights.dtype, pin_memory=True)
                        weights_host.copy_(weights, non_blocking=True)
                    downloaded = torch.cuda.Event()
                    downloaded.record(self.copy)
                else:
                    out_host, weights_host, downloaded = result, weights, None
            marks.append(self._mark(self.copy))
            launched.append({"idx": idx, "cols": cols, "host": out_host, "event": downloaded, "marks": marks,
                             "dtype": np_dtype, "keep": (host, small, dev_img, dev_small),
                             "weights": weights_host, "want": want})
            t0 = time.perf_counter()
        self.seconds["prepare"] += time.perf_counter() - t0
        return {"frames": frames, "plans": plans, "groups": launched, "mattes": mattes}

    def _finish(self, job: dict) -> Iterator[tuple[Frame, str | None, np.ndarray | None]]:
        """``(frame, reason, weights)`` per launched frame, in order; ``weights``: (H, W) float32 for a frame
        launched with its matte wanted (0 outside its box; all 0 when it passed through), else None."""
        frames, plans = job["frames"], job["plans"]
        results: dict[int, Frame] = {}
        weights: dict[int, np.ndarray] = {}
        for g in job["groups"]:
            if g["event"] is not None:
                g["event"].synchronize()
            marks = g["marks"]
            if self.config.timing and marks[0] is not None:
                spans = [_span(a, b) for a, b in zip(marks[:-1], marks[1:])]
                # copy: upload; compute: wait+render, composite; copy: download
                self.seconds["upload"] += spans[0]
                self.seconds["render"] += spans[2]
                self.seconds["composite"] += spans[3]
                self.seconds["download"] += spans[4]
            t = time.perf_counter()
            data = g["host"].numpy()
            if g["dtype"] == np.uint16:
                data = data.view(np.uint16)
            cols = list(g["cols"])
            contiguous = cols == list(range(cols[0], cols[-1] + 1))
            for j, i in enumerate(g["idx"]):
                frame = frames[i]
                x0, y0, x1, y1 = plans[i].box
                pixels = frame.pixels.copy()
                if contiguous:
                    pixels[y0:y1, x0:x1, cols[0]: cols[-1] + 1] = data[j]
                else:
                    pixels[y0:y1, x0:x1][:, :, cols] = data[j]
                results[i] = frame.with_pixels(pixels)
            if g["weights"] is not None:
                masks = g["weights"].numpy()
                for k, j in enumerate(g["want"]):
                    i = g["idx"][j]
                    x0, y0, x1, y1 = plans[i].box
                    full = np.zeros(frames[i].pixels.shape[:2], np.float32)
                    full[y0:y1, x0:x1] = masks[k]
                    weights[i] = full
            self.seconds["finish"] += time.perf_counter() - t
        wanted = job.get("mattes") or [False] * len(frames)
        for i, (frame, plan) in enumerate(zip(frames, plans)):
            matte = weights.get(i) if i in weights else (
                np.zeros(frame.pixels.shape[:2], np.float32) if wanted[i] else None)
            yield (results[i], None, matte) if i in results else (frame, plan.reason, matte)


def render_across(items: list[tuple[FastShotRenderer, Frame]],
                  mattes: list[bool] | None = None) -> list[tuple]:
    """Edit frames of several shots in one batch (the daemon batching requests of different clients).

    Frames whose face boxes share a size (and whose shots share an outline: MediaPipe faces do) go through one
    engine call; the first renderer's runner, device, streams and configs do the work, so every renderer of
    ``items`` must be on the same device (the daemon gives its sessions one shared runner).

    Args:
        items: ``(renderer of the frame's shot, frame)`` pairs, at most the first renderer's ``batch_size``.
        mattes: per item, whether to return its matte too (None: no item's).

    Returns:
        ``(frame, reason)`` per item, in order, as :meth:`FastShotRenderer.render` gives them; with ``mattes``,
        ``(frame, reason, weights)`` per item (``weights`` as :meth:`FastShotRenderer.render_with_matte` gives
        them for the items that asked, None for the others).

    Raises:
        InvalidParameterError: a frame is not part of its shot; renderers on different devices.
    """
    if not items:
        return []
    leader = items[0][0]
    if any(r.device != leader.device for r, _ in items):
        raise InvalidParameterError("render_across needs every shot's renderer on one device")
    job = leader._launch([f for _, f in items], owners=[r for r, _ in items], mattes=mattes)
    if mattes is None:
        return [(frame, reason) for frame, reason, _ in leader._finish(job)]
    return list(leader._finish(job))


def _span(a, b) -> float:
    """Seconds between two timing marks (CUDA events or host clock readings)."""
    if isinstance(a, float):
        return b - a
    return a.elapsed_time(b) / 1000.0


def _torch_dtype(dtype: np.dtype):
    import torch

    return {np.dtype(np.uint8): torch.uint8, np.dtype(np.int16): torch.int16,
            np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32}[np.dtype(dtype)]
