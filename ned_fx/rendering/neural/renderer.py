"""NeuralRenderer: a trained generator behind the geometry renderer's call, ``render(region, src, dst, mesh)``.

Per frame: the face crop is aligned to the source face; the target mesh (and those of the previous frames,
when given) is rendered into conditioning images; the generator paints the face -- over the geometry
renderer's warp (``mode="refine"``, default) or into the source with the face area masked (``"replace"``) --
and its crop is resampled back into the region and laid over the base (the warp, or the source region) with a
feathered face mask. In refine mode only the generator's change to its input is resampled back and added to
the warp, so the plate's native-resolution detail survives wherever the generator has nothing to correct.
Outside that mask the result is the base, value for value; the compositor then blends the region into the
plate as it does for the geometry renderer (pixels outside its box stay bit-exact).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ... import topology as T
from ...errors import InvalidParameterError
from ..mesh import RenderMesh
from .checkpoint import Checkpoint, load_state, read_checkpoint
from .conditioning import (Conditioner, PlateEncoding, crop_image, face_area, face_similarity, feather, label_maps,
                           to_rgb, transform_points, uncrop_image)
from ..geometry_renderer import _as_points as _points, _as_region   # the geometry renderer's own checks
from .config import NeuralRendererConfig
from .networks import Generator
from .trainer import pick_device

_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


class NeuralRenderer:
    """A trained neural renderer for one actor.

    Usage (as :class:`~ned_fx.rendering.GeometryRenderer`; ``src``/``dst`` in region pixels)::

        renderer = NeuralRenderer("actor.ckpt")
        rendered = renderer.render(region, src - offset, dst - offset, mesh,
                                   previous=[dst_prev1 - offset, dst_prev2 - offset])

    Args:
        checkpoint: a checkpoint path (``ned-fx train-renderer … -o actor.ckpt``) or a :class:`Checkpoint`.
        config: a :class:`NeuralRendererConfig` for how it is applied (mode, plate encoding, device); the
            networks' shape always comes from the checkpoint. Default: the checkpoint's own settings with
            ``device="auto"``.
        geometry: the :class:`~ned_fx.rendering.GeometryRenderer` used in refine mode (default settings when
            None).

    Raises:
        InputNotFoundError, UnreadableMediaError: the checkpoint cannot be read.
    """

    def __init__(self, checkpoint: Checkpoint | str | Path, config: NeuralRendererConfig | None = None,
                 geometry=None):
        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else read_checkpoint(checkpoint)
        self.path = None if isinstance(checkpoint, Checkpoint) else str(checkpoint)
        base = config if config is not None else NeuralRendererConfig.from_dict({**ckpt.renderer.to_dict(),
                                                                                  "device": "auto"})
        self.config = base.with_architecture_of(ckpt.renderer)
        self.device = pick_device(self.config.device)
        self.generator = Generator(self.config)
        load_state(self.generator, ckpt.generator, "generator", self.path or "the checkpoint")
        self.generator = self.generator.to(self.device).eval()
        self.step = ckpt.step
        self.encoding = ckpt.encoding
        self.colours = np.asarray(ckpt.colours, np.float32)
        self.mesh = RenderMesh.from_triangles(ckpt.triangles)
        self._geometry = geometry
        self._given = None
        self._conditioner: Conditioner | None = None

    # ---- helpers -----------------------------------------------------------------------------------------------
    @property
    def geometry(self):
        if self._geometry is None:
            from ..geometry_renderer import GeometryRenderer

            self._geometry = GeometryRenderer()
        return self._geometry

    def _resolve(self, mesh) -> tuple[RenderMesh, Conditioner]:
        if self._conditioner is None or mesh is not self._given:
            resolved = self.mesh if mesh is None else mesh if isinstance(mesh, RenderMesh) else \
                RenderMesh.from_triangles(mesh)
            self._conditioner = Conditioner(resolved, self.colours, self.config.crop_size).to(self.device)
            self._given, self._resolved = mesh, resolved
        return self._resolved, self._conditioner

    def plate_encoding(self, plate_dtype=None) -> PlateEncoding:
        """The plate encoding used: the config's explicit values, else the plate's pixel type's (when given),
        else the checkpoint's (the footage it was trained on)."""
        own = PlateEncoding.for_dtype(plate_dtype) if plate_dtype is not None else self.encoding
        white = self.config.plate_white or own.white
        transfer = own.transfer if self.config.plate_transfer == "auto" else self.config.plate_transfer
        return PlateEncoding(white, transfer)

    # ---- rendering ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, inputs: torch.Tensor) -> torch.Tensor:
        """The generator alone: Bx(C)xSxS inputs (see :mod:`.networks`) -> Bx3xSxS, on the renderer's device."""
        return self.generator(inputs.to(self.device, torch.float32))

    @torch.no_grad()
    def render(self, region, src, dst, mesh=None, previous=None, plate_dtype=None):
        """Render the target face into a region.

        Args:
            region: HxWxC float32 numpy array (the plate's crop around the face in the plate's own values: C = 3
                for RGB, 1 for grey; channels after the third pass through from the base), or an HxWxC tensor.
            src: Px2/Px3 source landmarks in region pixels (P >= 468); dst: the target landmarks.
            mesh: the shot's :class:`~ned_fx.rendering.mesh.RenderMesh` (or Tx3 triangles); None: the
                checkpoint's.
            previous: the target landmarks of the previous frames (nearest first, up to ``temporal_frames``) in
                THIS region's pixels; missing ones repeat the last given (or ``dst``): no motion.
            plate_dtype: the plate's pixel type (uint8, uint16, float16/32), which fixes its encoding unless the
                config sets one; default the checkpoint's footage encoding.

        Returns:
            The rendered region: same type, shape and dtype (float32) as ``region``.

        Raises:
            InvalidParameterError: wrong shapes/dtypes, or plate values far above the encoding's white level
                (a 16-bit or float plate with a checkpoint of 8-bit footage: pass ``plate_dtype`` or set
                ``plate_white``). NoFaceError: NaN landmarks.
        """
        if isinstance(region, torch.Tensor):
            out = self.render(region.detach().cpu().numpy().astype(np.float32), src, dst, mesh, previous,
                              plate_dtype)
            return torch.from_numpy(out).to(region.device, region.dtype)
        arr = _as_region(region)
        src, dst = _points(src, "src"), _points(dst, "dst")
        encoding = self.plate_encoding(plate_dtype)
        peak = float(np.nanmax(arr[..., : min(3, arr.shape[2])])) if arr.size else 0.0
        if plate_dtype is None and not self.config.plate_white and peak > 8.0 * encoding.white:
            raise InvalidParameterError(
                f"the region's values reach {peak:.0f}, far above the white level {encoding.white:g} of the "
                f"footage this checkpoint was trained on; give the plate's pixel type (plate_dtype) or set "
                f"plate_white")
        resolved, conditioner = self._resolve(mesh)
        base = self.geometry.render(arr, src, dst, resolved) if self.config.mode == "refine" else arr.copy()
        blend, painted = self._paint(arr, base, src, dst, previous, resolved, conditioner, encoding)
        out = base.copy()
        if arr.shape[2] >= 3:
            out[..., :3] += blend * (painted - base[..., :3])
        else:
            grey = painted @ _LUMA
            out[..., 0] += blend[..., 0] * (grey - base[..., 0])
        return out

    def _paint(self, region, base, src, dst, previous, mesh, conditioner, encoding):
        """The generator's face in region pixels (plate values, HxWx3) and where it shows (HxWx1, 0..1)."""
        cfg = self.config
        size = cfg.crop_size
        h, w = region.shape[:2]
        affine = face_similarity(src, size, cfg.crop_extent)
        lm_src, lm_dst = transform_points(src, affine), transform_points(dst, affine)
        given = [] if previous is None else [_points(p, "previous landmarks") for p in previous]
        history, last = [], lm_dst
        for k in range(cfg.temporal_frames):
            if k < len(given) and np.isfinite(given[k][: T.NUM_MESH, :2]).all():
                last = transform_points(given[k], affine)
            history.append(last)
        frames = [lm_dst, *history]
        labels = [label_maps(p, mesh, size) for p in frames]
        grow = max(1, int(round(cfg.face_dilate * size)))
        area = np.maximum(face_area(labels[0], grow), face_area(label_maps(lm_src, mesh, size), grow))
        base_working = encoding.to_working(to_rgb(base))
        crop = crop_image(base_working, affine, size)
        if cfg.mode == "replace":
            image = crop * (1.0 - area[..., None])
            known = 1.0 - area
        else:
            image, known = crop, np.ones_like(area)
        dev = self.device
        lm = torch.as_tensor(np.stack(frames), dtype=torch.float32, device=dev)
        lab = torch.as_tensor(np.stack(labels), dtype=torch.int64, device=dev)
        maps = conditioner(lm, lab).reshape(1, -1, size, size)
        inputs = torch.cat([maps, torch.as_tensor(image, device=dev).permute(2, 0, 1)[None],
                            torch.as_tensor(known, device=dev)[None, None]], dim=1)
        out = self.generator(inputs)[0].permute(1, 2, 0).cpu().numpy()
        paste = feather(area, cfg.feather * size)
        if cfg.mode == "refine":
            # only what the generator changes comes from the crop: the warp keeps its native-resolution detail
            painted = encoding.from_working(base_working + uncrop_image(out - image, affine, h, w))
        else:
            painted = encoding.from_working(uncrop_image(out, affine, h, w))
        blend = uncrop_image(paste[..., None], affine, h, w, border=0.0)
        return np.clip(blend, 0.0, 1.0), painted
