"""The manipulator engine: a torch module that maps a window of per-frame AU activations and a style to target
activations, batched, and exportable to ONNX like the tracker's engines. Plus the geometric decoder (target
activations -> frame-pixel landmark offsets).

The rule the engine implements (per batch item, frame t, AU k; all smoothing zero-phase along time):

* ``state = smooth(opening(params, state_window), state_window / 2)`` is the actor's *sustained* expression:
  the morphological opening (erosion then dilation over a window) is the lower envelope under every transient
  shorter than the window; ``params - state`` is the performance (emphasis, blinks, speech) and is kept.
* emotion AUs: ``offset = style - min(w, 1) * state``: at intensity ``w = 1`` the sustained emotion is replaced
  by the style, at 0 nothing changes, above 1 the style is exaggerated. ``style`` is the target AU pattern with
  the intensity already applied (``w x prototype``), so emotions can cross-fade over time.
* a grin's companions (:data:`GRIN_COMPANIONS`: the upper lip raised off the teeth, the lips stretched wide, the
  dimples) are the smile's own where the actor grins (the swing of AU12 over :data:`GRIN_AU12`) and the style
  smiles too: they are replaced by ``min(w, 1) * (1 - smile)``, ``smile = min(style AU12 / w clamped to 0..1,
  smoothstep(AU12 / GRIN_AU12))`` (the style's own smile, whatever its intensity: half of ``happy`` keeps the grin
  too). ``happy`` keeps a broad grin's teeth (the astronaut's grin reads AU10 0.54 beside AU12 0.49: taking the
  "sneer" away had closed her upper lip over her teeth); ``sad`` or ``neutral`` still take them away.
* emotion AUs the style does not use at that frame (a smile under sad), or pushes below rest (sad's drooping
  lids, its corners drawn in against a smile), go with their slower swings too: their ``state`` is
  ``smooth(params, swing_sigma)``, not the lower envelope, so a grin that comes and goes over a line (or a
  grimace held for half a second, eyes thrown wide while looking up) is taken away and only motion at the pace
  of speech stays; the style's own raised AUs keep the actor's emphasis on top (a sad brow still flicks up on
  a stressed word).
* speech AUs: ``offset = gate * style``: the source's own speech is always kept; a style may add to it only
  where ``gate`` allows (0 on talking shots).
* held lips (:data:`HELD_LIP_AUS`: the pucker, the press): where ``gate`` frees the lips and the style does not
  shape them, their lower envelope (a pout held longer than the state window) goes too, ``offset -= min(w, 1) *
  gate * closed * state``, ``closed`` fading out as the jaw drops (:data:`HELD_LIP_JAW`). A pout held through
  ``happy`` was a pursed smirk (d3: AU24 1.23 with AU18 0.65 kept beside a smile); a press or pucker at the pace
  of speech stays, and on a talking shot (gate 0) nothing changes.
* performance AUs (blink): never changed.
* ``offset *= region``; ``offset = smooth(offset, offset_sigma)`` (no jitter); lid-opening AUs are scaled by
  ``1 - blink`` of the source (smoothed alike), so a raised lid never fights a blink.
* frames at intensity 0 get no offset at all (the smoothing does not leak into them): ``target = params``
  exactly, so a key at 0 is the source, bit for bit.
* ``target = params + offset``. The target is not clamped: where the edit removes a sustained AU, the actor's
  moment-to-moment motion around it is kept as it is (it may dip below 0), and clamping would expose the
  per-frame decomposition (jitter) instead of a smooth offset. The style itself is bounded by the prototypes
  and the intensity.

A learned manipulator can replace this module: anything with the same forward signature and output plugs into
:func:`ned_fx.manipulation.manipulate` (``engine=``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import OutputWriteError
from .expression import AU_NAMES, EMOTION_AUS, LID_OPENING_AUS, PERFORMANCE_AUS, SPEECH_AUS
# the rule's constants and kernel live with its numpy twin (:mod:`.rule`, what a CPU edit runs)
from .rule import GRIN_AU12, GRIN_COMPANIONS, HELD_LIP_AUS, HELD_LIP_JAW, gaussian_kernel  # noqa: F401

OPSET = 18
INPUT_NAMES = ("params", "style", "weights", "gate", "region")
OUTPUT_NAMES = ("target",)


def smooth_time(x: torch.Tensor, weight: torch.Tensor, radius: int) -> torch.Tensor:
    """Zero-phase smoothing along time with edge replication.

    Args:
        x: BxTxC; weight: Cx1xL (L = 2 radius + 1) one normalised kernel per channel; radius: L // 2.

    Returns:
        BxTxC.
    """
    if radius == 0:
        return x
    y = F.pad(x.permute(0, 2, 1), (radius, radius), mode="replicate")      # B x C x T+2r
    return F.conv1d(y, weight, groups=weight.shape[0]).permute(0, 2, 1)


def _kernel_buffer(sigma_frames: float, channels: int) -> tuple[torch.Tensor, int]:
    k = gaussian_kernel(sigma_frames)
    return torch.tensor(np.tile(k, (channels, 1, 1)), dtype=torch.float32), (len(k) - 1) // 2


def opening_time(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Morphological opening along time (erosion then dilation, window ``2 radius + 1``, edges replicated): the
    lower envelope of ``x`` under peaks narrower than the window.

    Args:
        x: BxTxC; radius: half window in frames (0: unchanged).

    Returns:
        BxTxC.
    """
    if radius <= 0:
        return x
    y = x.permute(0, 2, 1)
    y = -F.max_pool1d(-F.pad(y, (radius, radius), mode="replicate"), 2 * radius + 1, stride=1)
    y = F.max_pool1d(F.pad(y, (radius, radius), mode="replicate"), 2 * radius + 1, stride=1)
    return y.permute(0, 2, 1)


class ManipulatorEngine(nn.Module):
    """Source activations + style -> target activations (the rule in the module docstring).

    Args:
        fps: frame rate the durations are converted with.
        state_smoothing: seconds; half the window of the sustained expression (transients shorter than twice
            this are performance).
        offset_smoothing: seconds (Gaussian sigma) of the offsets' smoothing.
        swing_smoothing: seconds (Gaussian sigma): the state of the emotion AUs the style does not raise.
        names: AU names (K), :data:`~ned_fx.manipulation.expression.AU_NAMES` by default.
    """

    def __init__(self, fps: float = 25.0, state_smoothing: float = 0.4,
                 offset_smoothing: float = 0.08, swing_smoothing: float = 0.5,
                 names: tuple[str, ...] = AU_NAMES) -> None:
        super().__init__()
        mask = lambda group: torch.tensor([1.0 if n in group else 0.0 for n in names])  # noqa: E731
        self.names = tuple(names)
        self.register_buffer("emotion_mask", mask(EMOTION_AUS))
        self.register_buffer("speech_mask", mask(SPEECH_AUS))
        self.register_buffer("lid_mask", mask(LID_OPENING_AUS))
        self.register_buffer("blink_select", mask(PERFORMANCE_AUS[:1]))
        self.register_buffer("grin_mask", mask(GRIN_COMPANIONS))
        self.register_buffer("smile_select", mask(("AU12",)))
        self.register_buffer("held_lip_mask", mask(HELD_LIP_AUS))
        self.register_buffer("jaw_select", mask(("AU26",)))
        k = len(names)
        self.opening_radius = int(round(state_smoothing * fps))
        state_kernel, self.state_radius = _kernel_buffer(0.5 * state_smoothing * fps, k)
        offset_kernel, self.offset_radius = _kernel_buffer(offset_smoothing * fps, k)
        blink_kernel, _ = _kernel_buffer(offset_smoothing * fps, 1)
        swing_kernel, self.swing_radius = _kernel_buffer(swing_smoothing * fps, k)
        self.register_buffer("swing_kernel", swing_kernel)
        self.register_buffer("state_kernel", state_kernel)
        self.register_buffer("offset_kernel", offset_kernel)
        self.register_buffer("blink_kernel", blink_kernel)

    def forward(self, params: torch.Tensor, style: torch.Tensor, weights: torch.Tensor, gate: torch.Tensor,
                region: torch.Tensor) -> torch.Tensor:
        """Target activations for a window of frames.

        Args:
            params: BxTxK source activations; style: BxTxK target pattern (intensity applied);
            weights: BxTx1 intensity (0..1.5); gate: BxTx1 speech gate (0..1); region: K per-AU weight (0..1).

        Returns:
            BxTxK target activations.
        """
        held = smooth_time(opening_time(params, self.opening_radius), self.state_kernel, self.state_radius)
        swing = smooth_time(params, self.swing_kernel, self.swing_radius)
        state = torch.where(style > 1e-6, held, swing)
        replace = torch.clamp(weights, 0.0, 1.0)
        # a pout or a press held longer than the window, where the gate frees the lips and the style does not
        # shape them itself, is taken away (a closed mouth only: an open jaw's fitted press is its stretch)
        jaw = torch.clamp((swing * self.jaw_select).sum(dim=-1, keepdim=True) / HELD_LIP_JAW, 0.0, 1.0)
        closed = 1.0 - jaw * jaw * (3.0 - 2.0 * jaw)
        unshaped = (style <= 1e-6).to(params.dtype)
        pout = replace * gate * closed * unshaped * held * self.held_lip_mask
        grin = torch.clamp((swing * self.smile_select).sum(dim=-1, keepdim=True) / GRIN_AU12, 0.0, 1.0)
        grin = grin * grin * (3.0 - 2.0 * grin)
        smiles = (style * self.smile_select).sum(dim=-1, keepdim=True) / torch.clamp(weights, min=1e-6)
        smile = torch.minimum(torch.clamp(smiles, 0.0, 1.0), grin)               # the style's own AU12 (w = 1)
        replace = replace * (1.0 - smile * self.grin_mask)                      # a grin's companions stay
        offset = (style - replace * state) * self.emotion_mask + gate * style * self.speech_mask - pout
        offset = smooth_time(offset * region, self.offset_kernel, self.offset_radius)
        blink = smooth_time(torch.clamp((params * self.blink_select).sum(dim=-1, keepdim=True), 0.0, 1.0),
                            self.blink_kernel, self.offset_radius)
        offset = offset * (1.0 - self.lid_mask * blink)
        # where the intensity is 0 nothing changes, bit for bit: the smoothing above must not leak the
        # neighbouring frames' offsets into a frame keyed (or curved) at 0
        offset = offset * (weights > 0.0).to(offset.dtype)
        return params + offset


class ExpressionDecoder(nn.Module):
    """Activation offsets -> landmark offsets in frame pixels (the linear decode: the manipulator's landmark rules
    after it, :func:`~.manipulator.lips_uncrossed`, :func:`~.manipulator.lips_sealed` and
    :func:`~.manipulator.lid_folds_held`, act only where lips or lid skin would cross).

    Args:
        edit_fields: KxPx3 head-frame fields of positive offsets (:attr:`ExpressionBasis.edit_fields`).
        edit_fields_down: KxPx3 those of negative offsets (:attr:`ExpressionBasis.edit_fields_down`; None: the
            same).
    """

    def __init__(self, edit_fields: np.ndarray, edit_fields_down: np.ndarray | None = None) -> None:
        super().__init__()
        down = edit_fields if edit_fields_down is None else edit_fields_down
        self.register_buffer("fields", torch.as_tensor(np.asarray(edit_fields), dtype=torch.float32))
        self.register_buffer("fields_down", torch.as_tensor(np.asarray(down), dtype=torch.float32))

    def forward(self, delta: torch.Tensor, linear: torch.Tensor) -> torch.Tensor:
        """Args: delta BxTxK activation offsets; linear BxTx3x3 the pose's ``sR`` per frame.

        Returns:
            BxTxPx3 frame-pixel offsets.
        """
        head = (torch.einsum("btk,kpc->btpc", torch.clamp(delta, min=0.0), self.fields)
                + torch.einsum("btk,kpc->btpc", torch.clamp(delta, max=0.0), self.fields_down))
        return torch.einsum("btij,btpj->btpi", linear, head)


def example_inputs(batch: int = 2, frames: int = 48, seed: int = 0, k: int = len(AU_NAMES)) -> tuple:
    """Plausible float32 inputs for tracing and parity checks (seeded)."""
    g = torch.Generator().manual_seed(seed)
    params = torch.rand(batch, frames, k, generator=g) * 1.2
    style = torch.rand(batch, frames, k, generator=g)
    weights = torch.rand(batch, frames, 1, generator=g) * 1.5
    gate = torch.rand(batch, frames, 1, generator=g)
    region = torch.rand(k, generator=g)
    return params, style, weights, gate, region


def export_onnx(path: str | Path, engine: ManipulatorEngine | None = None, batch: int = 2, frames: int = 48) -> Path:
    """Export the engine to ONNX (opset 18, dynamic batch and time axes), atomically.

    Raises:
        OutputWriteError: the file could not be written.
    """
    engine = (engine or ManipulatorEngine()).float().eval()
    path = Path(path)
    axes = {n: {0: "batch", 1: "frames"} for n in ("params", "style", "weights", "gate", "target")}
    from ..media import atomic_output

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"could not write {path}: {exc.strerror or exc}") from None
    with atomic_output(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(engine, example_inputs(batch, frames), tmp, input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return path


def onnx_parity(path: str | Path, engine: ManipulatorEngine | None = None, batch: int = 3, frames: int = 75,
                seed: int = 1) -> float:
    """Max absolute difference between onnxruntime (CPU) and PyTorch on seeded inputs of another batch and
    length than the export's."""
    import onnxruntime as ort

    engine = (engine or ManipulatorEngine()).float().eval()
    inputs = example_inputs(batch, frames, seed)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs)})[0]
    with torch.no_grad():
        ref = engine(*inputs).numpy()
    return float(np.abs(got - ref).max())
