"""The geometry renderer: source mesh -> target mesh as a dense backward displacement field over the face,
applied to the plate's face region at native resolution.

The output is a face layer plus three opening layers (mouth, right eye, left eye). How an output pixel ``p``
(region pixels) finds where to sample the source region:

* face layer, inside a triangle of the TARGET mesh: the same barycentric point of the SOURCE triangle
  (piecewise-affine backward warp);
* face layer, outside the mesh: the outline's displacement, interpolated from the outline vertices (Shepard)
  and faded to zero over ``falloff`` x IOD: no tearing at the face edge, nothing moves far from the face;
* face layer, inside an opening: the opening's similarity (below) plus the mismatch with the lips/lids along
  the contour, interpolated from the contour segments (Shepard) and faded out over a band (``hole_band``,
  never narrower than ``fold_guard`` x the mismatch, so it cannot fold). So the face layer is continuous
  everywhere: no tearing, and a soft, smear-free edge where an opening layer is laid over it;
* opening layers: the lip and lid margins are occlusion boundaries (teeth, tongue and eyeballs lie behind
  them), so what is inside moves rigidly, sampled through a similarity transform from the target opening to
  the source one: least squares over the 20 inner-lip points for the mouth (teeth move rigidly, are never
  stretched), the two eye corners for each eye (the iris keeps its size and stays round). Each layer is laid
  over the face layer with the target polygon's anti-aliased coverage (4x4 supersampled per field cell):
  a lowered lid covers the eyeball, a closed mouth hides the teeth;
* what the source does not show: an eye layer shows only where the similarity lands inside the source's eye
  opening; eyeball that a raised lid reveals comes from the face layer's band (the visible eye, stretched up
  to the lid margin). Where the mouth similarity lands outside the source's mouth opening (a closed mouth
  opened, a mouth opened wider) a dark mouth colour is painted (the mean of the darkest samples along and
  inside the source's inner lips, times ``mouth_fill_gain``), faded in with the contour mismatch so an
  unchanged or merely moved mouth gets none. A neural renderer will do better (teeth, tongue, eyeball);
  this keeps the geometry renderer plausible.

Resolution and filtering: the field is computed on a coarse grid (``RendererConfig.field_cells`` along the
region's longer side: a fixed number of cells per face at any plate resolution), upsampled bilinearly to the
region's native size, and the plate is resampled once at native resolution, bilinear by default (bicubic as
an option). Expression warps are small and smooth (local scale ~0.8..1.25), so bilinear sampling neither
aliases (no strong minification) nor visibly blurs. On a large face (a coarse cell over
``RendererConfig.refine_above_px``) a mouth whose inner contour bends far against the source gets a second, finer
field over its box, feathered into the coarse one (the per-frame OpenCV path: :meth:`GeometryRenderer.render` on
numpy); a far-moved lip margin no longer comes out stair-stepped at the coarse cell.

Rasterising the target mesh into a label map (which triangle/opening holds each grid cell's centre) runs on
the CPU in numpy (:func:`~ned_fx.rendering.mesh.rasterize_labels`, ~1 ms). After it, one frame on the CPU (every
CPU edit) computes the field in numpy (:func:`~ned_fx.rendering.field.one_frame_field`) and resamples with
OpenCV: no torch; the batched torch module :class:`~ned_fx.rendering.geometry_module.GeometryRendererModule`
computes the same, exportable to ONNX (opset 18) with the label map as an input (engines, batches, GPUs).
:class:`GeometryRenderer` is the per-frame entry point: numpy in, numpy out; torch tensors in, the module runs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import topology as T
from ..errors import InvalidParameterError
from .config import RendererConfig
from .field import FieldTables, fill_colour, one_frame_field
from .mesh import MOUTH, RenderMesh, field_grid_size, rasterize_labels


def _is_tensor(x) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch: a tensor exists only where torch is loaded)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _as_region(region) -> np.ndarray:
    """A plate crop as an HxWxC float32 array of at least 2x2 pixels (the renderers' one check).

    Raises:
        InvalidParameterError: another shape or dtype, or a smaller crop.
    """
    arr = np.asarray(region)
    if arr.ndim != 3 or arr.dtype != np.float32:
        raise InvalidParameterError(f"region must be an HxWxC float32 array, got shape {arr.shape} and dtype "
                                    f"{arr.dtype}; convert the plate crop with .astype(np.float32)")
    if min(arr.shape[:2]) < 2:
        raise InvalidParameterError(f"region must be at least 2x2 pixels, got {arr.shape[1]}x{arr.shape[0]}")
    return arr


def _as_points(points, what: str) -> np.ndarray:
    pts = np.asarray(points.detach().cpu().numpy() if _is_tensor(points) else points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < T.NUM_MESH or pts.shape[1] < 2:
        raise InvalidParameterError(f"{what} must be Px2 or Px3 landmarks (P >= {T.NUM_MESH}) in region pixels, "
                                    f"got shape {pts.shape}")
    return pts


class GeometryRenderer:
    """Per-frame entry point of the geometry renderer (numpy and OpenCV on numpy regions; torch for tensors).

    Usage (per shot, then per frame; ``src``/``dst`` are 478x3 tracker-convention landmarks in plate pixels)::

        renderer = GeometryRenderer(RendererConfig())
        mesh = build_render_mesh(track.mean_shape)                     # once per shot
        box = face_region_box(np.concatenate([src, dst]), width, height)
        region = extract_region(plate, box)          # ned_fx.compositing: colour channels, float32, plate values
        offset = np.array([box[0], box[1], 0.0])
        rendered = renderer.render(region, src - offset, dst - offset, mesh)

    Args:
        config: a :class:`RendererConfig` (defaults when None).
    """

    def __init__(self, config: RendererConfig | None = None):
        self.config = config or RendererConfig()
        self._given = None                       # the mesh argument last seen, its RenderMesh, tables and module
        self._mesh: RenderMesh | None = None
        self._tables: FieldTables | None = None
        self._module = None

    @property
    def device(self):
        """The torch device of the batched module (``RendererConfig.device``; imports torch)."""
        import torch

        return torch.device(self.config.device)

    def _resolve(self, mesh) -> RenderMesh:
        if self._mesh is None or mesh is not self._given:
            resolved = mesh if isinstance(mesh, RenderMesh) else RenderMesh.from_triangles(mesh)
            self._tables = FieldTables.build(resolved)      # (checks the mesh's openings)
            self._given, self._mesh, self._module = mesh, resolved, None
        return self._mesh

    def module(self, mesh):
        """The batched torch :class:`~ned_fx.rendering.geometry_module.GeometryRendererModule` for ``mesh`` (a
        RenderMesh or Tx3 triangles; cached per mesh object), on the config's device."""
        self._resolve(mesh)
        if self._module is None:
            from .geometry_module import GeometryRendererModule

            self._module = GeometryRendererModule(self._mesh, self.config).to(self.device).eval()
        return self._module

    def labels(self, dst: np.ndarray, mesh, height: int, width: int) -> np.ndarray:
        """The label map of target ``dst`` (Px2/Px3, region pixels) on this config's field grid: GhxGw int64."""
        grid = field_grid_size(height, width, self.config.field_cells)
        return rasterize_labels(dst, self._resolve(mesh), (height, width), grid)

    def field(self, region_shape: tuple[int, int], src, dst, mesh):
        """The coarse field of one frame as the per-frame render computes it (numpy; for inspection, tests and
        custom resampling).

        Args:
            region_shape: (H, W) of the region; src, dst: Px2/Px3 landmarks in region pixels; mesh: RenderMesh.

        Returns:
            A :class:`~ned_fx.rendering.field.FieldArrays`.
        """
        h, w = region_shape
        src, dst = _as_points(src, "src"), _as_points(dst, "dst")
        labels = self.labels(dst, mesh, h, w)
        return one_frame_field(self._tables, self.config, src, dst, labels, h, w)

    def render(self, region, src, dst, mesh):
        """Warp a face region from the source landmarks to the target landmarks.

        Args:
            region: HxWxC float32 numpy array (the plate's crop around the face in the plate's own values;
                any number of channels), or an HxWxC torch tensor (then the torch module runs, on its device).
            src: Px2 or Px3 source landmarks (P >= 468, the tracked face) in REGION pixels
                ((0,0) = top-left corner of the region's top-left pixel).
            dst: Px2 or Px3 target landmarks in region pixels. A z column (tracker convention) orders
                overlapping triangles far-to-near.
            mesh: the shot's :class:`~ned_fx.rendering.mesh.RenderMesh` (or a Tx3 triangle array).

        Returns:
            The rendered region: same type, shape and dtype (float32) as ``region``.

        Raises:
            InvalidParameterError: wrong shapes/dtypes. NoFaceError: NaN landmarks.
        """
        src, dst = _as_points(src, "src"), _as_points(dst, "dst")
        if _is_tensor(region):
            import torch

            if region.ndim != 3:
                raise InvalidParameterError(f"region must be HxWxC, got shape {tuple(region.shape)}")
            images = region.permute(2, 0, 1)[None].to(self.device, torch.float32)
            with torch.no_grad():
                out = self.render_batch(images, src[None], dst[None], mesh)
            return out[0].permute(1, 2, 0).to(region.device, region.dtype)
        return self._render_cv2(_as_region(region), src, dst, mesh)

    def render_batch(self, images, src, dst, mesh):
        """Render a batch with the torch module (GPU-friendly; labels rasterised on the CPU).

        Args:
            images: BxCxHxW float32 tensor of face regions (all the same size).
            src: BxPx2(+) source landmarks in region pixels (array or tensor); dst: the targets, same shape.
            mesh: the shot's RenderMesh.

        Returns:
            BxCxHxW rendered regions, on the renderer's device.
        """
        import torch

        module = self.module(mesh)
        _, _, h, w = images.shape
        src = np.asarray(src.cpu() if _is_tensor(src) else src, dtype=np.float64)
        dst = np.asarray(dst.cpu() if _is_tensor(dst) else dst, dtype=np.float64)
        if src.ndim != 3 or dst.shape != src.shape or src.shape[0] != images.shape[0]:
            raise InvalidParameterError(f"src and dst must be BxPx2 with B = {images.shape[0]}, got "
                                        f"{src.shape} and {dst.shape}")
        labels = np.stack([self.labels(dst[i], mesh, h, w) for i in range(len(dst))])
        dev = self.device
        images = images.to(dev, torch.float32)
        with torch.no_grad():
            return module(images, torch.as_tensor(src[..., :2], dtype=torch.float32, device=dev),
                          torch.as_tensor(dst[..., :2], dtype=torch.float32, device=dev),
                          torch.from_numpy(labels).to(dev))

    def _render_cv2(self, region: np.ndarray, src: np.ndarray, dst: np.ndarray, mesh) -> np.ndarray:
        import cv2

        h, w, c = region.shape
        res = self.field((h, w), src, dst, mesh)
        gh, gw = res.offset.shape[:2]
        flow = cv2.resize(res.offset, (w, h), interpolation=cv2.INTER_LINEAR)
        fine = self._refined(src, dst, h, w, gh, gw)
        if fine is not None:                        # a finer field around a far-bent mouth, feathered in
            x0, y0, x1, y1 = fine.box
            sub = flow[y0:y1, x0:x1]
            sub += fine.ramp[..., None] * (fine.offset - sub)
        map_x = flow[..., 0] + np.arange(w, dtype=np.float32)[None, :]
        map_y = flow[..., 1] + np.arange(h, dtype=np.float32)[:, None]
        interp = cv2.INTER_CUBIC if self.config.interpolation == "bicubic" else cv2.INTER_LINEAR
        out = _remap(region, map_x, map_y, interp)
        fill = res.mouth_fill
        colour = None
        follow = self.config.mouth_interior == "follow"
        for k in range(res.cover.shape[0]):
            cover = res.cover[k]
            # the layer, only over the (small) box where it shows (the covered cells' box)
            c0, r0, nc, nr = cv2.boundingRect((cover > 0).view(np.uint8))
            mine = fine if fine is not None and fine.cover[k].any() else None
            if nc == 0 and mine is None:
                continue
            sx, sy = gw / w, gh / h
            if nc:
                x0, x1 = max(0, int((c0 - 1) / sx)), min(w, int(np.ceil((c0 + nc - 1 + 2) / sx)))
                y0, y1 = max(0, int((r0 - 1) / sy)), min(h, int(np.ceil((r0 + nr - 1 + 2) / sy)))
            else:
                x0, y0, x1, y1 = w, h, 0, 0
            if mine is not None:
                b = mine.box
                x0, y0, x1, y1 = min(x0, b[0]), min(y0, b[1]), max(x1, b[2]), max(y1, b[3])
            size = (x1 - x0, y1 - y0)
            to_grid = np.array([[sx, 0, (x0 + 0.5) * sx - 0.5], [0, sy, (y0 + 0.5) * sy - 0.5]])
            a = res.affine[k].astype(np.float64)               # continuous coords; OpenCV's centres are at +0
            to_src = np.array([[a[0, 0], a[0, 1], a[0, 0] * (x0 + 0.5) + a[0, 1] * (y0 + 0.5) + a[0, 2] - 0.5],
                               [a[1, 0], a[1, 1], a[1, 0] * (x0 + 0.5) + a[1, 1] * (y0 + 0.5) + a[1, 2] - 0.5]])
            if k == MOUTH and follow:
                layer = out[y0:y1, x0:x1].copy()           # the interior follows the lips (face layer)
            else:
                layer = _warp_affine(region, to_src, size, interp).reshape(size[1], size[0], c)
            fine_fill = mine.fill if mine is not None else None
            if k == MOUTH and (fill.any() or fine_fill is not None):
                if colour is None:
                    colour = fill_colour(self._tables, self.config, region, src)
                layer += _overlay(_upsample(fill, to_grid, size), mine, fine_fill, x0, y0) * (colour - layer)
            box = out[y0:y1, x0:x1]
            box += _overlay(_upsample(cover, to_grid, size), mine, None if mine is None else mine.cover[k], x0, y0) \
                * (layer - box)
        return out

    def _refined(self, src: np.ndarray, dst: np.ndarray, h: int, w: int, gh: int, gw: int) -> "_Fine | None":
        """The finer field around the mouth where its inner contour bends against the source by at least one
        coarse cell and the coarse cell is larger than ``RendererConfig.refine_above_px`` (see there); None
        where it is not refined. The eyes are not: their sub-stage paints the new eye at native resolution."""
        import cv2

        cfg = self.config
        cell = max(h / gh, w / gw)
        if cfg.refine_above_px <= 0 or cell <= cfg.refine_above_px:
            return None
        idx = list(self._mesh.holes[MOUTH])
        moved = dst[idx, :2] - src[idx, :2]
        if not np.isfinite(moved).all() or np.linalg.norm(moved - np.median(moved, axis=0), axis=1).max() < cell:
            return None
        margin = cfg.refine_margin * cell
        lo = np.floor(dst[idx, :2].min(axis=0) - margin).astype(int)
        hi = np.ceil(dst[idx, :2].max(axis=0) + margin).astype(int)
        x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
        x1, y1 = min(int(hi[0]), w), min(int(hi[1]), h)
        bh, bw = y1 - y0, x1 - x0
        if bh < 4 or bw < 4:
            return None
        fine_cell = max(cfg.refine_cell_px, float(np.sqrt(bh * bw / cfg.refine_max_cells)))
        grid = field_grid_size(bh, bw, int(np.ceil(max(bh, bw) / fine_cell)))
        shift = np.array([x0, y0], np.float64)
        sd = dst.copy()
        sd[:, :2] -= shift
        labels = rasterize_labels(sd, self._mesh, (bh, bw), grid)
        res = one_frame_field(self._tables, self.config, src[:, :2] - shift, sd, labels, bh, bw)
        size = (bw, bh)

        def native(grid_map: np.ndarray) -> np.ndarray:
            return cv2.resize(grid_map, size, interpolation=cv2.INTER_LINEAR)

        fill = res.mouth_fill
        feather = 2.0 * cell
        ry = np.minimum(np.arange(bh) + 0.5, bh - 0.5 - np.arange(bh)) / feather
        rx = np.minimum(np.arange(bw) + 0.5, bw - 0.5 - np.arange(bw)) / feather
        ramp = np.minimum(np.clip(ry, 0, 1)[:, None], np.clip(rx, 0, 1)[None, :]).astype(np.float32)
        return _Fine((x0, y0, x1, y1), native(res.offset),
                     np.stack([native(res.cover[j]) for j in range(res.cover.shape[0])]),
                     native(fill) if bool(fill.any()) else None, ramp)


class _Fine(NamedTuple):
    """The refined box (region pixels x0, y0, x1, y1) and its maps at native resolution: offset hxwx2, cover
    3xhxw, mouth fill hxw (None: none), and its feathering weight hxw (1 inside, 0 at its edges)."""

    box: tuple[int, int, int, int]
    offset: np.ndarray
    cover: np.ndarray
    fill: np.ndarray | None
    ramp: np.ndarray


def _overlay(coarse: np.ndarray, fine: "_Fine | None", values: np.ndarray | None, x0: int, y0: int) -> np.ndarray:
    """``coarse`` (hxwx1, a layer's box at region offset x0, y0) with the refined box's ``values`` (one of its
    maps) feathered in; as it is without them."""
    if fine is not None and values is not None:
        bx0, by0, bx1, by1 = fine.box
        sub = coarse[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0, 0]
        sub += fine.ramp * (values - sub)
    return coarse


def _upsample(grid_map: np.ndarray, to_grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A block of a coarse grid map at region resolution (bilinear, as the full-region upsampling): hxwx1."""
    import cv2

    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(grid_map, to_grid, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)[..., None]


def _remap(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, interp: int) -> np.ndarray:
    import cv2

    h, w, c = image.shape
    if c <= 4:
        return cv2.remap(image, map_x, map_y, interp, borderMode=cv2.BORDER_REPLICATE).reshape(h, w, c)
    return np.concatenate([cv2.remap(np.ascontiguousarray(image[..., i:i + 4]), map_x, map_y, interp,
                                     borderMode=cv2.BORDER_REPLICATE).reshape(h, w, -1) for i in range(0, c, 4)],
                          axis=2)


def _warp_affine(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], interp: int) -> np.ndarray:
    import cv2

    flags = interp | cv2.WARP_INVERSE_MAP
    c = image.shape[2]
    if c <= 4:
        return cv2.warpAffine(image, matrix, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return np.concatenate([cv2.warpAffine(np.ascontiguousarray(image[..., i:i + 4]), matrix, size, flags=flags,
                                          borderMode=cv2.BORDER_REPLICATE).reshape(size[1], size[0], -1)
                           for i in range(0, c, 4)], axis=2)
