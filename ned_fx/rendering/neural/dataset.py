"""The training data of the neural renderer: an actor's own frames as aligned face crops (self-reenactment).

:class:`DatasetBuilder` takes clips frame by frame (working-space pictures and the tracked landmarks, in the
pictures' pixels) and keeps, per frame with a face, only what training needs at the crop's resolution: the
aligned crop, the landmarks of the frame and of its previous frames in that crop, their label maps, the face
area, and *refine inputs*: other frames of the same clip warped by the geometry renderer to this frame's
landmarks and laid into its face (what the generator sees in an edit, where the geometry renderer has moved
the face and the generator must correct it). A few frames, spread over the footage, are held back.

The stage never tracks or decodes: ``ned-fx train-renderer`` tracks the footage (``pipeline.track_media``),
decodes it through :mod:`ned_fx.media` and feeds the builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple

import numpy as np
import torch

from ... import topology as T
from ...errors import InvalidParameterError, NoFaceError
from ..mesh import RenderMesh
from .config import NeuralRendererConfig, TrainerConfig
from .conditioning import (Conditioner, crop_image, face_area, face_similarity, feather, label_maps,
                           transform_points)


class Batch(NamedTuple):
    """One batch for the generator (all tensors on the training device).

    Attributes:
        inputs: BxCxSxS generator input (conditioning of t and previous frames, image, known).
        target: Bx3xSxS the real frame t (working space).
        mask: Bx1xSxS the face area (where the reconstruction matters most).
        condition: Bx7xSxS frame t's conditioning maps (for the mouth discriminator and previews).
        mouth: Bx2 mouth centres (crop pixels).
        replace: B bool, the sample got the replace input (face masked) rather than a refine input.
    """

    inputs: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    condition: torch.Tensor
    mouth: torch.Tensor
    replace: torch.Tensor


@dataclass(frozen=True)
class ShotDataset:
    """Aligned crops of an actor's frames (N frames, K previous frames each, P refine inputs each; S = crop).

    Attributes:
        crops: NxSxSx3 float16 working-space crops (the targets).
        landmarks: Nx(1+K)x478x3 float32 crop-pixel landmarks: the frame's own, then its previous frames'.
        labels: Nx(1+K)xSxS int16 label maps of those landmarks.
        areas: NxSxS uint8 the face area (mesh and openings, grown by ``face_dilate``).
        refine: NxPxSxSx3 float16 refine inputs; refine_from: NxP the frame each was warped from (the frame
            itself for the identity pairs, the last ones).
        frame_numbers: N the frames' numbers in their clips; clips: N clip index.
        train, holdout: indices into the N frames.
        mesh: the triangulation the labels were rasterised with; colours: 478x3 NMFC vertex colours.
        config: the :class:`NeuralRendererConfig` the crops were made for.
        maps: Nx(1+K)x7xSxS float16 conditioning maps, rendered once when they fit the trainer's
            ``map_cache_mb`` (else None: rendered per batch, on the training device).
    """

    crops: np.ndarray
    landmarks: np.ndarray
    labels: np.ndarray
    areas: np.ndarray
    refine: np.ndarray
    refine_from: np.ndarray
    frame_numbers: np.ndarray
    clips: np.ndarray
    train: np.ndarray
    holdout: np.ndarray
    mesh: RenderMesh
    colours: np.ndarray
    config: NeuralRendererConfig
    maps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.crops)

    def batch(self, ids, conditioner: Conditioner, device: torch.device, rng: np.random.Generator | None = None,
              replace_fraction: float = 0.0, pair: int | None = None, replace: bool | None = None) -> Batch:
        """Assemble the generator's input for frames ``ids``.

        Args:
            ids: frame indices; conditioner: renders the maps (on ``device``).
            rng: draws the per-sample input kind and refine pair (training); None for a fixed choice.
            replace_fraction: with ``rng``, the probability of the replace input.
            pair: without ``rng``, the refine input used (default 0); replace: without ``rng``, True for the
                replace input for every sample.
        """
        ids = np.asarray(ids, dtype=np.int64)
        b = len(ids)
        p = self.refine.shape[1]
        if rng is not None:
            use_replace = rng.random(b) < replace_fraction if p else np.ones(b, bool)
            pairs = rng.integers(0, max(p, 1), size=b)
        else:
            use_replace = np.full(b, bool(replace) or p == 0)
            pairs = np.full(b, pair or 0)
        target = torch.from_numpy(self.crops[ids].astype(np.float32)).permute(0, 3, 1, 2)
        area = torch.from_numpy(self.areas[ids].astype(np.float32))[:, None]
        images = []
        for k, i in enumerate(ids):
            if use_replace[k]:
                images.append(target[k] * (1.0 - area[k]))
            else:
                images.append(torch.from_numpy(self.refine[i, pairs[k]].astype(np.float32)).permute(2, 0, 1))
        image = torch.stack(images).to(device)
        known = torch.ones_like(area)
        replace_t = torch.from_numpy(use_replace)
        known[replace_t] = 1.0 - area[replace_t]
        lm = torch.from_numpy(self.landmarks[ids]).to(device)                      # Bx(1+K)x478x3
        k1 = lm.shape[1]
        if self.maps is not None:
            maps = torch.from_numpy(self.maps[ids].astype(np.float32)).to(device)
        else:
            labels = torch.from_numpy(self.labels[ids].astype(np.int64)).to(device)    # Bx(1+K)xSxS
            maps = conditioner(lm.reshape(b * k1, *lm.shape[2:]), labels.reshape(b * k1, *labels.shape[2:]))
        maps = maps.reshape(b, -1, *maps.shape[-2:])
        inputs = torch.cat([maps, image, known.to(device)], dim=1)
        mouth = lm[:, 0, list(T.LIPS_OUTER), :2].mean(dim=1)
        return Batch(inputs, target.to(device), area.to(device), maps[:, :7], mouth, replace_t.to(device))


def previous_landmarks(landmarks: np.ndarray, found: np.ndarray, index: int, count: int) -> list[np.ndarray]:
    """The landmarks of the ``count`` frames before ``index`` (nearest first); a frame without a face, or
    before the clip's start, repeats the one after it (so a cut or a lost face reads as "no motion")."""
    out, last = [], landmarks[index]
    for k in range(1, count + 1):
        j = index - k
        if j >= 0 and found[j] and np.isfinite(landmarks[j][: T.NUM_MESH]).all():
            last = landmarks[j]
        out.append(last)
    return out


class DatasetBuilder:
    """Collects an actor's clips into a :class:`ShotDataset`.

    Args:
        mesh: the triangulation (``build_render_mesh(track.mean_shape)``); mean_shape: 478x3 for the NMFC
            colours (:func:`~ned_fx.rendering.neural.conditioning.mean_face_colours`).
        config: the renderer's config (crop size, extent, temporal frames, face_dilate).
        trainer: the run's config (holdout, refine_pairs, max_frames, seed).
    """

    def __init__(self, mesh: RenderMesh, colours: np.ndarray, config: NeuralRendererConfig,
                 trainer: TrainerConfig):
        self.mesh, self.colours = mesh, np.asarray(colours, np.float32)
        self.config, self.trainer = config, trainer
        self._crops: list[np.ndarray] = []
        self._landmarks: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._areas: list[np.ndarray] = []
        self._numbers: list[int] = []
        self._clips: list[int] = []
        self._clip = -1

    def add_clip(self, pictures: Iterable[np.ndarray], landmarks: np.ndarray, found: np.ndarray,
                 frame_numbers: np.ndarray, stride: int = 1) -> int:
        """Add one clip.

        Args:
            pictures: the clip's frames in order, each HxWx3 float32 in working space (every frame, also those
                without a face: they are skipped here).
            landmarks: Fx478x3 tracked landmarks in the pictures' pixels; found: F bool; frame_numbers: F.
            stride: keep every ``stride``-th frame with a face (to bound memory on long footage).

        Returns:
            Frames kept.

        Raises:
            InvalidParameterError: pictures and landmarks of different lengths.
        """
        cfg = self.config
        size = cfg.crop_size
        grow = max(1, int(round(cfg.face_dilate * size)))
        self._clip += 1
        kept = 0
        count = 0
        seen = 0
        for i, picture in enumerate(pictures):
            count += 1
            if i >= len(landmarks):
                raise InvalidParameterError(f"the clip has more pictures than tracked frames ({len(landmarks)})")
            if not found[i] or not np.isfinite(landmarks[i][: T.NUM_MESH]).all():
                continue
            seen += 1
            if (seen - 1) % stride:
                continue
            affine = face_similarity(landmarks[i], size, cfg.crop_extent)
            own = [landmarks[i], *previous_landmarks(landmarks, found, i, cfg.temporal_frames)]
            lms = np.stack([transform_points(p, affine) for p in own]).astype(np.float32)
            labels = np.stack([label_maps(p, self.mesh, size) for p in lms])
            self._crops.append(crop_image(picture[..., :3], affine, size).astype(np.float16))
            self._landmarks.append(lms)
            self._labels.append(labels.astype(np.int16))
            self._areas.append(face_area(labels[0], grow).astype(np.uint8))
            self._numbers.append(int(frame_numbers[i]))
            self._clips.append(self._clip)
            kept += 1
        if count != len(landmarks):
            raise InvalidParameterError(f"the clip has {count} pictures but {len(landmarks)} tracked frames")
        return kept

    def build(self, geometry=None, progress: Callable[[int, int], None] | None = None) -> ShotDataset:
        """Hold back frames, prepare the refine inputs and return the dataset.

        Args:
            geometry: a :class:`~ned_fx.rendering.GeometryRenderer` for the refine inputs (one with default
                settings when None).
            progress: called with ``(done, total)`` while the refine inputs are prepared.

        Raises:
            NoFaceError: no frame with a face was added. InvalidParameterError: too few frames to train on.
        """
        n = len(self._crops)
        if n == 0:
            raise NoFaceError("no frame of the footage has a tracked face; nothing to train on")
        if n < 2:
            raise InvalidParameterError("the footage has a face in only one frame; training needs at least 2 "
                                        "(a few hundred is good)")
        holdout_n = min(self.trainer.holdout, n // 4)
        holdout = np.unique(np.round(np.linspace(0, n - 1, holdout_n + 2)[1:-1]).astype(np.int64)) \
            if holdout_n else np.zeros(0, np.int64)
        train = np.setdiff1d(np.arange(n), holdout)
        crops = np.stack(self._crops)
        lms = np.stack(self._landmarks)
        labels = np.stack(self._labels)
        areas = np.stack(self._areas)
        clips = np.asarray(self._clips)
        pairs = self.trainer.refine_pairs
        size = self.config.crop_size
        refine = np.zeros((n, pairs, size, size, 3), np.float16)
        refine_from = np.zeros((n, pairs), np.int64)
        if pairs:
            if geometry is None:
                from ..geometry_renderer import GeometryRenderer

                geometry = GeometryRenderer()
            rng = np.random.default_rng(self.trainer.seed + 1)
            radius = self.config.feather * size
            # the last pairs are the frame itself (see TrainerConfig.identity_pairs): the warp of a frame onto its
            # own landmarks is the frame, so the input is the target; pair 0 always comes from another frame
            own = min(self.trainer.identity_pairs, pairs - 1)
            for i in range(n):
                pool = train[(clips[train] == clips[i]) & (train != i)]
                pool = pool if len(pool) else train[train != i]
                sources = rng.choice(pool, size=pairs - own, replace=len(pool) < pairs - own)
                refine[i, pairs - own:] = crops[i]
                refine_from[i, pairs - own:] = i
                soft = feather(areas[i].astype(np.float32), radius)[..., None]
                for p, j in enumerate(sources):
                    warped = geometry.render(crops[j].astype(np.float32), lms[j, 0], lms[i, 0], self.mesh)
                    mixed = crops[i].astype(np.float32) * (1.0 - soft) + warped * soft
                    refine[i, p] = mixed.astype(np.float16)
                    refine_from[i, p] = j
                if progress:
                    progress(i + 1, n)
        maps = None
        k1 = lms.shape[1]
        if n * k1 * 7 * size * size * 2 <= self.trainer.map_cache_mb * 2 ** 20:
            conditioner = Conditioner(self.mesh, self.colours, size)
            maps = np.zeros((n, k1, 7, size, size), np.float16)
            with torch.no_grad():
                for start in range(0, n, 16):
                    part = slice(start, min(n, start + 16))
                    m = len(range(n)[part])
                    out = conditioner(torch.from_numpy(lms[part].reshape(m * k1, *lms.shape[2:])),
                                      torch.from_numpy(labels[part].astype(np.int64).reshape(m * k1, size, size)))
                    maps[part] = out.reshape(m, k1, 7, size, size).numpy().astype(np.float16)
        return ShotDataset(crops=crops, landmarks=lms, labels=labels, areas=areas, refine=refine,
                           refine_from=refine_from, frame_numbers=np.asarray(self._numbers), clips=clips,
                           train=train, holdout=holdout, mesh=self.mesh, colours=self.colours, config=self.config,
                           maps=maps)
