"""NeuralRendererConfig and TrainerConfig: the one home of the neural renderer's defaults.

:class:`NeuralRendererConfig` describes the networks and how a trained renderer is applied (it is stored in
every checkpoint; the architecture fields of a checkpoint win over a config given at load time).
:class:`TrainerConfig` describes one training run (steps, batch, losses, intervals). Both are frozen and
validate their values; a bad value raises :class:`~ned_fx.errors.InvalidParameterError` naming the valid range.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ...errors import InvalidParameterError

MODES = ("refine", "replace")
DEVICES_HELP = "auto (CUDA if present), cpu, cuda, cuda:N"
#: fields of NeuralRendererConfig that fix the networks' shapes (a checkpoint's own values are used)
ARCHITECTURE = ("crop_size", "crop_extent", "base_channels", "levels", "bottleneck_blocks", "temporal_frames",
                "mouth_size", "disc_channels")


def _check_device(device: str) -> None:
    text = str(device).strip().lower()
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return
    raise InvalidParameterError(f"device must be one of {DEVICES_HELP}, got {device!r}")


@dataclass(frozen=True)
class NeuralRendererConfig:
    """The neural renderer's networks and how they are applied to a plate.

    The renderer works on a square face crop aligned to the source face (a similarity: the face's centre, its
    size, the eye line level), ``crop_size`` pixels wide, whatever the plate's resolution: the crop is resampled
    from the plate's face region and the result resampled back at native resolution.

    Attributes:
        crop_size: side of the aligned face crop in pixels (a multiple of ``2 ** (levels + 1)``). 256 is the production
            size for a GPU; 128 trains on a CPU in minutes (previews, tests).
        crop_extent: the crop's side as a multiple of the face's RMS radius (the 468 mesh points' root mean
            square distance from their centre); 4.2 holds the face oval, the hairline and a margin of background.
        base_channels: channels of the generator's first level (doubled per level, at most 8x).
        levels: downsamplings of the generator's U-Net (each halves the resolution), below its half-resolution
            stem (a pixel unshuffle).
        bottleneck_blocks: residual blocks at the lowest resolution.
        temporal_frames: previous frames whose conditioning images the generator also sees (temporal input:
            0, 1 or 2); their target landmarks come from the edit plan, so any frame renders the same in any order.
        mouth_size: side of the mouth crop the mouth discriminator judges, as a fraction of ``crop_size``.
        disc_channels: channels of the mouth discriminator's first layer.
        mode: how the generator is used in an edit. ``"refine"`` (default): the geometry renderer warps the
            face first and the generator, seeing that warped face, corrects it (teeth a wider smile shows,
            creases, lids) -- what it was trained for on pairs of the actor's own frames. ``"replace"``: the
            generator paints the whole face from the conditioning images and the plate around the face (the
            face area masked), as NED and Deep Video Portraits do.
        face_dilate: the masked face area (replace mode) and the area pasted back grow by this fraction of the
            crop beyond the rasterised mesh.
        feather: softness of the edge where the generated face is pasted back into the region, as a fraction
            of the crop (the compositor blends the region into the plate afterwards).
        plate_white: the plate value that the network's working space maps to 1, or 0 (default) for the
            encoding recorded in the checkpoint (255 for 8-bit footage, 65535 for 16-bit, 1 for float).
        plate_transfer: ``"display"`` (integer plates: their values are display-referred), ``"linear"`` (float
            plates: scene-linear, viewed through the sRGB transfer), or ``"auto"`` (the checkpoint's).
        device: where the networks run: "auto", "cpu", "cuda", "cuda:N".
    """

    crop_size: int = 256
    crop_extent: float = 4.2
    base_channels: int = 32
    levels: int = 4
    bottleneck_blocks: int = 2
    temporal_frames: int = 2
    mouth_size: float = 0.25
    disc_channels: int = 32
    mode: str = "refine"
    face_dilate: float = 0.03
    feather: float = 0.03
    plate_white: float = 0.0
    plate_transfer: str = "auto"
    device: str = "auto"

    def __post_init__(self) -> None:
        if not 1 <= self.levels <= 6:
            raise InvalidParameterError(f"levels must be between 1 and 6, got {self.levels}")
        step = 2 ** (self.levels + 1)
        if not 32 <= self.crop_size <= 1024 or self.crop_size % step:
            raise InvalidParameterError(f"crop_size must be between 32 and 1024 and a multiple of {step} "
                                        f"(2 ** (levels + 1)), got {self.crop_size}")
        if not 2.0 <= self.crop_extent <= 8.0:
            raise InvalidParameterError(f"crop_extent must be between 2 and 8 face radii, got {self.crop_extent}")
        if not 4 <= self.base_channels <= 256:
            raise InvalidParameterError(f"base_channels must be between 4 and 256, got {self.base_channels}")
        if not 0 <= self.bottleneck_blocks <= 16:
            raise InvalidParameterError(f"bottleneck_blocks must be between 0 and 16, got {self.bottleneck_blocks}")
        if self.temporal_frames not in (0, 1, 2):
            raise InvalidParameterError(f"temporal_frames must be 0, 1 or 2, got {self.temporal_frames}")
        if not 0.1 <= self.mouth_size <= 0.6 or int(self.crop_size * self.mouth_size) < 16:
            raise InvalidParameterError(f"mouth_size must be between 0.1 and 0.6 of the crop and at least 16 "
                                        f"pixels, got {self.mouth_size} of {self.crop_size}")
        if not 4 <= self.disc_channels <= 256:
            raise InvalidParameterError(f"disc_channels must be between 4 and 256, got {self.disc_channels}")
        if self.mode not in MODES:
            raise InvalidParameterError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("face_dilate", "feather"):
            if not 0.0 <= getattr(self, name) <= 0.25:
                raise InvalidParameterError(f"{name} must be between 0 and 0.25 of the crop, got "
                                            f"{getattr(self, name)}")
        if self.plate_white < 0:
            raise InvalidParameterError(f"plate_white must be > 0 (or 0 for the checkpoint's), got {self.plate_white}")
        if self.plate_transfer not in ("auto", "display", "linear"):
            raise InvalidParameterError(f"plate_transfer must be auto, display or linear, got {self.plate_transfer!r}")
        _check_device(self.device)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "NeuralRendererConfig":
        """A config from stored values: known fields only, each validated (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def with_architecture_of(self, stored: "NeuralRendererConfig") -> "NeuralRendererConfig":
        """This config with the network-shaping fields of ``stored`` (a checkpoint's)."""
        values = self.to_dict()
        values.update({k: getattr(stored, k) for k in ARCHITECTURE})
        return NeuralRendererConfig(**values)


@dataclass(frozen=True)
class TrainerConfig:
    """One training run of the neural renderer on an actor's own footage (self-reenactment).

    Every step draws ``batch_size`` training frames t; the generator sees frame t's conditioning images (and
    those of t-1, t-2) and, per sample, either a *refine* input (another frame s of the footage warped by the
    geometry renderer to t's landmarks, inside t's face; or t itself, see ``identity_pairs``) or a *replace*
    input (frame t with the face masked), and must produce frame t.

    Attributes:
        steps: total optimisation steps of the run (a resumed run continues up to this number).
        batch_size: frames per step.
        lr: Adam learning rate of the generator (the discriminator uses the same); betas (0.5, 0.999).
        lr_decay: the last fraction of the steps over which the learning rate falls linearly to a tenth
            (pix2pix-style; 0 keeps it constant).
        grad_clip: the generator's gradient norm is clipped to this (0: no clipping).
        replace_fraction: share of samples given the replace input (the rest get the refine input), so one
            checkpoint serves both modes.
        refine_pairs: refine inputs prepared per training frame (each from a random other frame, except the
            identity pairs below).
        identity_pairs: of those, how many are the frame itself (the geometry renderer's warp of a frame onto
            its own landmarks is the frame: input = target). An edit warps each frame from itself, so most of
            its face -- the mouth's speech shape among it -- is already right and must come out as it went in;
            cross-frame pairs alone teach the mean correction of a cross-frame warp (brightening the mouth
            opening, where the geometry renderer paints its dark fill for a closed source mouth), which the
            generator then applies to every edit and closes talking mouths a little. Pair 0 is always another
            frame (the held-back validation measures it), so at most ``refine_pairs - 1`` are used.
        holdout: frames held back from training (spread over the footage) to measure generalisation; at most
            a quarter of the frames.
        max_frames: most training frames kept in memory (spread evenly over the footage).
        map_cache_mb: the conditioning images of every frame are rendered once and kept (float16) when they
            fit in this many MiB; otherwise they are rendered per batch on the training device.
        l1_weight, face_weight: L1 over the whole crop, and extra L1 over the face area.
        pyramid_weight: Laplacian-pyramid L1 (5 levels: fine detail and low frequencies weigh the same).
        ssim_weight: 1 - SSIM (local structure) over the crop.
        perceptual_weight: L1 between the face-mesh network's intermediate activations of output and target
            (see :mod:`.losses`); used only when a feature network is given.
        adversarial_weight: least-squares GAN loss of the mouth discriminator, from step ``adversarial_start`` on.
        adversarial_start: steps of reconstruction-only training before the discriminator joins.
        preview_every, checkpoint_every, validate_every: intervals in steps (0: never; a checkpoint and a
            preview are always written at the end).
        seed: random seed (frame draws, refine pairs, initial weights).
        device: "auto", "cpu", "cuda", "cuda:N".
    """

    steps: int = 20000
    batch_size: int = 8
    lr: float = 2e-4
    lr_decay: float = 0.5
    grad_clip: float = 1.0
    replace_fraction: float = 0.3
    refine_pairs: int = 4
    identity_pairs: int = 1
    holdout: int = 10
    max_frames: int = 3000
    map_cache_mb: int = 4096
    l1_weight: float = 1.0
    face_weight: float = 2.0
    pyramid_weight: float = 1.0
    ssim_weight: float = 0.5
    perceptual_weight: float = 0.2
    adversarial_weight: float = 0.02
    adversarial_start: int = 2000
    preview_every: int = 500
    checkpoint_every: int = 1000
    validate_every: int = 500
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if not 0 <= self.steps <= 10_000_000:
            raise InvalidParameterError(f"steps must be between 0 and 10000000, got {self.steps}")
        if not 1 <= self.batch_size <= 512:
            raise InvalidParameterError(f"batch_size must be between 1 and 512, got {self.batch_size}")
        if not 0 < self.lr <= 0.1:
            raise InvalidParameterError(f"lr must be in (0, 0.1], got {self.lr}")
        if not 0.0 <= self.lr_decay <= 1.0:
            raise InvalidParameterError(f"lr_decay must be between 0 and 1, got {self.lr_decay}")
        if self.grad_clip < 0:
            raise InvalidParameterError(f"grad_clip must be >= 0, got {self.grad_clip}")
        if not 0.0 <= self.replace_fraction <= 1.0:
            raise InvalidParameterError(f"replace_fraction must be between 0 and 1, got {self.replace_fraction}")
        if not 0 <= self.refine_pairs <= 64:
            raise InvalidParameterError(f"refine_pairs must be between 0 and 64, got {self.refine_pairs}")
        if not 0 <= self.identity_pairs <= 64:
            raise InvalidParameterError(f"identity_pairs must be between 0 and 64, got {self.identity_pairs}")
        if self.refine_pairs == 0 and self.replace_fraction < 1.0:
            raise InvalidParameterError("refine_pairs 0 leaves no refine inputs: set replace_fraction to 1")
        if not 0 <= self.holdout <= 10_000:
            raise InvalidParameterError(f"holdout must be between 0 and 10000 frames, got {self.holdout}")
        if self.max_frames < 2:
            raise InvalidParameterError(f"max_frames must be at least 2, got {self.max_frames}")
        if self.map_cache_mb < 0:
            raise InvalidParameterError(f"map_cache_mb must be >= 0, got {self.map_cache_mb}")
        for name in ("l1_weight", "face_weight", "pyramid_weight", "ssim_weight", "perceptual_weight",
                     "adversarial_weight"):
            if not 0.0 <= getattr(self, name) <= 100.0:
                raise InvalidParameterError(f"{name} must be between 0 and 100, got {getattr(self, name)}")
        for name in ("adversarial_start", "preview_every", "checkpoint_every", "validate_every"):
            if getattr(self, name) < 0:
                raise InvalidParameterError(f"{name} must be >= 0, got {getattr(self, name)}")
        _check_device(self.device)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainerConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
