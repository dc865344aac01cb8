"""Training the neural renderer on an actor's own footage by self-reenactment (condition of frame t -> frame t).

:class:`Trainer` runs the steps: a batch of training frames, the generator's output, the losses of
:mod:`.losses` (L1 + face-area L1 + Laplacian pyramid + SSIM + perceptual, and from ``adversarial_start`` the
mouth discriminator's least-squares GAN loss), Adam updates. It measures the held-back frames' reconstruction
(:meth:`Trainer.evaluate`), writes preview images (condition / input / output / target), checkpoints (with the
optimisers' state and the step, so a run resumes exactly where it stopped) and a loss curve, and estimates the
time left from the measured speed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InvalidParameterError
from .checkpoint import Checkpoint, load_state, optim_to_arrays, optim_to_torch, read_checkpoint, write_checkpoint
from .conditioning import Conditioner, PlateEncoding
from .config import TrainerConfig
from .dataset import Batch, ShotDataset
from .losses import FeatureTap, PerceptualLoss, gan_d_loss, gan_g_loss, laplacian_pyramid_l1, masked_l1, ssim
from .networks import Generator, MouthDiscriminator


def pick_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise the named device (checked).

    Raises:
        InvalidParameterError: CUDA asked for but not available.
    """
    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidParameterError(f"device {name!r} asked for, but this torch has no CUDA device "
                                    f"(torch {torch.__version__}); use --device cpu or auto")
    return torch.device(text)


@dataclass(frozen=True)
class Validation:
    """Held-back frames' reconstruction at one step: mean L1 over the face area (working space, 0..1 scale).

    Attributes:
        step: the step; refine: with refine inputs (another frame warped by the geometry renderer);
        replace: with the face masked; geometry: the refine inputs themselves (the geometry renderer alone).
    """

    step: int
    refine: float
    replace: float
    geometry: float

    def to_dict(self) -> dict:
        return {"step": self.step, "refine": self.refine, "replace": self.replace, "geometry": self.geometry}


@dataclass(frozen=True)
class TrainingReport:
    """What :meth:`Trainer.train` did: steps run, seconds, frames per second, the last losses and validation,
    and the files written."""

    steps: int
    seconds: float
    frames_per_second: float
    losses: dict
    validation: Validation | None
    checkpoint: str | None
    previews: tuple


class Trainer:
    """Trains a generator (and its mouth discriminator) on a :class:`ShotDataset`.

    Args:
        dataset: the actor's frames (:class:`~ned_fx.rendering.neural.dataset.DatasetBuilder`).
        config: the run's :class:`TrainerConfig`.
        feature_net: a frozen convolutional network for the perceptual loss (``ned-fx train-renderer`` passes
            the tracker's face-mesh network); None leaves the perceptual term out.
        feature_size: the side the feature network's input is resized to (the face-mesh network's is 192).
        resume: a :class:`Checkpoint` (or its path) to continue from: networks, optimisers, step and history.
        encoding: the footage's plate encoding (stored in the checkpoint for the renderer).
        mean_shape: the mean shape behind the NMFC colours (stored in the checkpoint).
        footage: ``({"path": …, "frames": …}, …)`` stored in the checkpoint.

    Raises:
        InvalidParameterError: the checkpoint's architecture differs from the dataset's crops.
    """

    def __init__(self, dataset: ShotDataset, config: TrainerConfig | None = None, feature_net=None,
                 feature_size: int = 192, resume: Checkpoint | str | Path | None = None,
                 encoding: PlateEncoding | None = None, mean_shape: np.ndarray | None = None,
                 footage: tuple = ()):
        self.config = config or TrainerConfig()
        self.dataset = dataset
        self.renderer_config = dataset.config
        self.device = pick_device(self.config.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True          # fixed crop size: let cuDNN pick its fastest kernels
        self.encoding = encoding or PlateEncoding()
        self.mean_shape = np.zeros((478, 3), np.float32) if mean_shape is None else np.asarray(mean_shape)
        self.footage = tuple(footage)
        torch.manual_seed(self.config.seed)
        self.rng = np.random.default_rng(self.config.seed)
        self.generator = Generator(self.renderer_config).to(self.device)
        self.discriminator = MouthDiscriminator(self.renderer_config).to(self.device)
        lr = self.config.lr
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
        self.conditioner = Conditioner(dataset.mesh, dataset.colours, self.renderer_config.crop_size).to(self.device)
        self.perceptual = None
        if feature_net is not None and self.config.perceptual_weight > 0:
            self.perceptual = PerceptualLoss(FeatureTap(feature_net.to(self.device), feature_size)).to(self.device)
        self.step = 0
        self.history: list[dict] = []
        self.validations: list[Validation] = []
        self.seconds_per_step: float | None = None
        if resume is not None:
            self._resume(resume)

    # ---- state -------------------------------------------------------------------------------------------------
    def _resume(self, resume) -> None:
        ckpt = resume if isinstance(resume, Checkpoint) else read_checkpoint(resume)
        from .config import ARCHITECTURE

        ours, theirs = self.renderer_config, ckpt.renderer
        differ = [k for k in ARCHITECTURE if getattr(ours, k) != getattr(theirs, k)]
        if differ:
            raise InvalidParameterError("the checkpoint was trained with another architecture: "
                                        + ", ".join(f"{k} {getattr(theirs, k)} (asked {getattr(ours, k)})"
                                                    for k in differ)
                                        + "; resume with the checkpoint's settings or train a new one")
        load_state(self.generator, ckpt.generator, "generator")
        load_state(self.discriminator, ckpt.discriminator, "discriminator")
        if ckpt.optim_g["state"]:
            self.opt_g.load_state_dict(optim_to_torch(ckpt.optim_g))
        if ckpt.optim_d["state"]:
            self.opt_d.load_state_dict(optim_to_torch(ckpt.optim_d))
        for opt in (self.opt_g, self.opt_d):          # the run's learning rate wins over the stored one
            for group in opt.param_groups:
                group["lr"] = self.config.lr
        self.step = ckpt.step
        self.history = list(ckpt.history)
        self.validations = [Validation(**v) for v in ckpt.validation]
        # continue the random streams where a fresh run at this step would not repeat the first batches
        self.rng = np.random.default_rng([self.config.seed, self.step])
        torch.manual_seed(self.config.seed + self.step)

    def checkpoint(self) -> Checkpoint:
        """The current state as a :class:`Checkpoint`."""
        def arrays(module):
            return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}

        return Checkpoint(renderer=self.renderer_config, trainer=self.config, step=self.step,
                          generator=arrays(self.generator), discriminator=arrays(self.discriminator),
                          optim_g=optim_to_arrays(self.opt_g.state_dict()),
                          optim_d=optim_to_arrays(self.opt_d.state_dict()),
                          colours=self.dataset.colours, mean_shape=self.mean_shape,
                          triangles=np.asarray(self.dataset.mesh.triangles), encoding=self.encoding,
                          history=tuple(self.history), validation=tuple(v.to_dict() for v in self.validations),
                          footage=self.footage)

    def save(self, path: str | Path) -> Path:
        """Write the checkpoint atomically."""
        return write_checkpoint(self.checkpoint(), path)

    # ---- one step ----------------------------------------------------------------------------------------------
    def _mouth(self, images: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """The mouth crops (differentiable resampling): BxCxMxM around each centre."""
        size = self.renderer_config.crop_size
        m = max(16, int(size * self.renderer_config.mouth_size))
        half = m / size
        theta = torch.zeros(images.shape[0], 2, 3, device=images.device, dtype=images.dtype)
        theta[:, 0, 0] = half
        theta[:, 1, 1] = half
        theta[:, :, 2] = centres * (2.0 / size) - 1.0
        grid = F.affine_grid(theta, [images.shape[0], images.shape[1], m, m], align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _batch(self) -> Batch:
        ids = self.rng.choice(self.dataset.train, size=self.config.batch_size,
                              replace=len(self.dataset.train) < self.config.batch_size)
        return self.dataset.batch(ids, self.conditioner, self.device, self.rng, self.config.replace_fraction)

    def learning_rate(self, total_steps: int) -> float:
        """The learning rate at the current step of a run of ``total_steps``: constant, then over the last
        ``lr_decay`` of the run falling linearly to a tenth."""
        cfg = self.config
        span = cfg.lr_decay * total_steps
        if span <= 0:
            return cfg.lr
        left = max(total_steps - self.step, 0)
        return cfg.lr * (0.1 + 0.9 * min(1.0, left / span))

    def train_step(self, total_steps: int | None = None) -> dict:
        """One optimisation step (``total_steps``: the run's length, for the learning-rate schedule; default
        the config's). Returns the step's losses (floats)."""
        cfg = self.config
        lr = self.learning_rate(cfg.steps if total_steps is None else total_steps)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        self.generator.train()
        batch = self._batch()
        output = self.generator(batch.inputs)
        losses: dict[str, torch.Tensor] = {}
        losses["l1"] = masked_l1(output, batch.target)
        losses["face"] = masked_l1(output, batch.target, batch.mask)
        losses["pyramid"] = laplacian_pyramid_l1(output, batch.target)
        if cfg.ssim_weight > 0:
            losses["ssim"] = 1.0 - ssim(output, batch.target)
        if self.perceptual is not None:
            losses["perceptual"] = self.perceptual(output, batch.target)
        adversarial = cfg.adversarial_weight > 0 and self.step >= cfg.adversarial_start
        d_value = None
        if adversarial:
            cond = self._mouth(batch.condition, batch.mouth)
            real = self._mouth(batch.target, batch.mouth)
            fake = self._mouth(output, batch.mouth)
            self.discriminator.train()
            d_loss = gan_d_loss(self.discriminator(real, cond), self.discriminator(fake.detach(), cond))
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            d_value = float(d_loss.detach())
            for p in self.discriminator.parameters():
                p.requires_grad_(False)
            losses["adversarial"] = gan_g_loss(self.discriminator(fake, cond))
            for p in self.discriminator.parameters():
                p.requires_grad_(True)
        weights = {"l1": cfg.l1_weight, "face": cfg.face_weight, "pyramid": cfg.pyramid_weight,
                   "ssim": cfg.ssim_weight, "perceptual": cfg.perceptual_weight,
                   "adversarial": cfg.adversarial_weight}
        total = sum(weights[k] * v for k, v in losses.items())
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.generator.parameters(), cfg.grad_clip)
        self.opt_g.step()
        self.step += 1
        out = {k: float(v.detach()) for k, v in losses.items()}
        out["loss"] = float(total.detach())
        out["lr"] = lr
        if d_value is not None:
            out["discriminator"] = d_value
        return out

    # ---- measuring ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, ids, replace: bool = False, pair: int = 0) -> tuple[Batch, torch.Tensor]:
        """The generator's output for frames ``ids`` with a fixed input kind (eval mode): (batch, output)."""
        self.generator.eval()
        batch = self.dataset.batch(ids, self.conditioner, self.device, replace=replace, pair=pair)
        return batch, self.generator(batch.inputs)

    @torch.no_grad()
    def evaluate(self, ids=None, chunk: int = 8) -> Validation:
        """Reconstruction of frames ``ids`` (default the held-back ones; the training frames if none are held
        back): mean L1 over the face area, for refine inputs (pair 0), replace inputs, and the refine inputs
        themselves (what the geometry renderer alone gives)."""
        ids = np.asarray(self.dataset.holdout if ids is None else ids)
        if ids.size == 0:
            ids = self.dataset.train
        sums = {"refine": 0.0, "replace": 0.0, "geometry": 0.0}
        weight = 0.0
        has_refine = self.dataset.refine.shape[1] > 0
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            batch, out = self.generate(part, replace=True)
            w = float(batch.mask.sum())
            sums["replace"] += float(masked_l1(out, batch.target, batch.mask)) * w
            if has_refine:
                batch, out = self.generate(part, replace=False)
                sums["refine"] += float(masked_l1(out, batch.target, batch.mask)) * w
                sums["geometry"] += float(masked_l1(batch.inputs[:, -4:-1], batch.target, batch.mask)) * w
            weight += w
        weight = max(weight, 1e-9)
        nan = float("nan")
        return Validation(self.step, sums["refine"] / weight if has_refine else nan, sums["replace"] / weight,
                          sums["geometry"] / weight if has_refine else nan)

    # ---- previews ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def preview(self, path: str | Path, ids=None) -> Path:
        """Write a preview PNG: one row per frame (two training frames, two held-back ones by default), columns
        condition (NMFC with eyes, irises and mouth), refine input, its output, replace input, its output,
        target. Atomic."""
        from ...media import write_image

        if ids is None:
            train, hold = self.dataset.train, self.dataset.holdout
            ids = [int(train[0]), int(train[len(train) // 2])] + [int(i) for i in hold[:2]]
        ids = np.asarray(ids)
        rows = []
        rb, rout = self.generate(ids, replace=False)
        pb, pout = self.generate(ids, replace=True)
        cond = rb.condition
        vis = cond[:, :3] * (1.0 - cond[:, 4:5]) + cond[:, 4:5] * torch.tensor([0.9, 0.9, 0.9], device=cond.device
                                                                                   )[None, :, None, None]
        vis = vis * (1.0 - cond[:, 5:6]) + cond[:, 5:6] * torch.tensor([0.1, 0.3, 0.9], device=cond.device
                                                                        )[None, :, None, None]
        vis = vis * (1.0 - cond[:, 6:7]) + cond[:, 6:7] * torch.tensor([0.6, 0.0, 0.0], device=cond.device
                                                                        )[None, :, None, None]
        for k in range(len(ids)):
            cols = [vis[k], rb.inputs[k, -4:-1], rout[k], pb.inputs[k, -4:-1], pout[k], rb.target[k]]
            rows.append(torch.cat([c.clamp(0, 1) for c in cols], dim=2))
        grid = torch.cat(rows, dim=1).permute(1, 2, 0).cpu().numpy()
        return write_image(path, (grid * 255.0 + 0.5).astype(np.uint8))

    # ---- the run -----------------------------------------------------------------------------------------------
    def eta(self, total_steps: int) -> float | None:
        """Seconds left to reach ``total_steps`` at the measured speed (None before it is measured)."""
        if self.seconds_per_step is None:
            return None
        return max(total_steps - self.step, 0) * self.seconds_per_step

    def train(self, steps: int | None = None, checkpoint: str | Path | None = None,
              previews: str | Path | None = None,
              progress: Callable[[int, int, dict], None] | None = None) -> TrainingReport:
        """Train up to ``steps`` total steps (default the config's), continuing from the current step.

        Args:
            steps: the step count to reach (a resumed trainer continues from its step).
            checkpoint: where checkpoints are written (every ``checkpoint_every`` steps and at the end).
            previews: a folder for preview PNGs (``preview_STEP.png`` every ``preview_every`` steps and at the
                end) and the loss curve (``loss.png``).
            progress: called after every step with ``(step, steps, losses)``; ``losses`` also holds ``eta``
                (seconds left) and ``fps`` (training frames per second).

        Returns:
            a :class:`TrainingReport`.
        """
        cfg = self.config
        steps = cfg.steps if steps is None else int(steps)
        folder = Path(previews) if previews else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        written: list[str] = []
        started = time.perf_counter()
        first = self.step
        losses: dict = {}
        last = None
        tick = time.perf_counter()
        while self.step < steps:
            losses = self.train_step(steps)
            now = time.perf_counter()
            dt = now - tick
            tick = now
            # the first steps include warm-up (allocations, kernel choice): they do not set the speed
            if self.step - first > 2:
                self.seconds_per_step = dt if self.seconds_per_step is None else \
                    0.9 * self.seconds_per_step + 0.1 * dt
            if self.step % 10 == 0 or self.step == steps:
                self.history.append({"step": self.step, **{k: round(v, 6) for k, v in losses.items()}})
            if cfg.validate_every and self.step % cfg.validate_every == 0:
                last = self.evaluate()
                self.validations.append(last)
            if folder is not None and cfg.preview_every and self.step % cfg.preview_every == 0:
                written.append(str(self.preview(folder / f"preview_{self.step:07d}.png")))
            if checkpoint is not None and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.save(checkpoint)
            if progress:
                eta = self.eta(steps)
                fps = cfg.batch_size / self.seconds_per_step if self.seconds_per_step else float("nan")
                progress(self.step, steps, {**losses, "eta": eta, "fps": fps})
            tick = time.perf_counter()
        if last is None or last.step != self.step:
            last = self.evaluate()
            self.validations.append(last)
        if folder is not None:
            written.append(str(self.preview(folder / f"preview_{self.step:07d}.png")))
            if self.history:
                written.append(str(write_loss_curve(self.history, [v.to_dict() for v in self.validations],
                                                    folder / "loss.png")))
        saved = str(self.save(checkpoint)) if checkpoint is not None else None
        seconds = time.perf_counter() - started
        done = self.step - first
        return TrainingReport(steps=done, seconds=seconds,
                              frames_per_second=done * cfg.batch_size / seconds if seconds > 0 and done else 0.0,
                              losses=losses, validation=last, checkpoint=saved, previews=tuple(written))


def write_loss_curve(history: list[dict], validation: list[dict], path: str | Path) -> Path:
    """Plot the training losses (and the held-back reconstruction) over the steps into a PNG, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ...media import atomic_output

    fig = Figure(figsize=(8, 4.5), dpi=100)          # no pyplot: the host application's backend is left alone
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    steps = [h["step"] for h in history]
    for key in ("loss", "face", "perceptual", "adversarial"):
        values = [h.get(key, math.nan) for h in history]
        if any(math.isfinite(v) for v in values):
            ax.plot(steps, values, label=f"train {key}", linewidth=1)
    for key in ("refine", "replace", "geometry"):
        values = [v.get(key, math.nan) for v in validation]
        if any(math.isfinite(x) for x in values):
            ax.plot([v["step"] for v in validation], values, "o-", label=f"held-back face L1 ({key})", markersize=3)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("neural renderer training")
    fig.tight_layout()
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


__all__ = ["Trainer", "TrainingReport", "Validation", "write_loss_curve", "pick_device"]
