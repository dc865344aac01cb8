"""The manipulator's rule in numpy: what :class:`~ned_fx.manipulation.engine.ManipulatorEngine` (the exportable
torch module; its docstring states the rule) computes, for the one shot a CPU edit plans. ``manipulate`` runs this
unless it is handed an engine (a learned one, or the torch module itself): an edit of a cached shot then needs no
torch at all (importing it costs ~1.7 s, about a quarter of a second edit of a 100-frame shot). The two agree to float64
rounding (``tests/test_manipulator.py``); the kernels are the engine's float32 buffers made double, as
``engine.double()`` makes them.

numpy only; nothing at import time.
"""

from __future__ import annotations

import math

import numpy as np

from .expression import AU_NAMES, EMOTION_AUS, LID_OPENING_AUS, PERFORMANCE_AUS, SPEECH_AUS

#: the smile (AU12 activation) from which a face's raised upper lip, stretched lips and parted lips are its grin's
#: (the astronaut's broad grin: 0.49)
GRIN_AU12 = 0.4
#: emotion AUs a broad grin brings along (kept under a style that smiles; see the engine's docstring)
GRIN_COMPANIONS = ("AU10", "AU14", "AU20")
#: speech AUs that shape the closed lips (a pucker, a press): held longer than the state window on a shot the
#: speech gate frees they are a pout, not speech (see the engine's docstring)
HELD_LIP_AUS = ("AU18", "AU24")
#: the jaw drop (AU26 activation) from which the lips' fitted press is the open mouth's stretch, not a pout
#: (d19's gasp reads AU24 1.61 at AU26 1.05): the held-lip rule fades out up to it
HELD_LIP_JAW = 0.5


def gaussian_kernel(sigma_frames: float) -> np.ndarray:
    """Normalised 1-D Gaussian (radius ``ceil(3 sigma)``); ``[1]`` for sigma 0."""
    if sigma_frames <= 1e-6:
        return np.ones(1)
    r = int(math.ceil(3 * sigma_frames))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma_frames) ** 2)
    return k / k.sum()


def engine_kernel(sigma_frames: float) -> np.ndarray:
    """The engine's smoothing kernel as its buffers hold it: float32, used in float64."""
    return gaussian_kernel(sigma_frames).astype(np.float32).astype(np.float64)


def smooth(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Zero-phase smoothing of ``x`` (TxC) along time with ``kernel`` (odd length), edges replicated."""
    r = (len(kernel) - 1) // 2
    if r == 0:
        return x
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((r, r), (0, 0)), mode="edge"), len(kernel),
                                                       axis=0)                                  # TxCxL
    return windows @ kernel


def opening(x: np.ndarray, radius: int) -> np.ndarray:
    """Morphological opening of ``x`` (TxC) along time (erosion then dilation, window ``2 radius + 1``, edges
    replicated): the lower envelope under peaks narrower than the window."""
    if radius <= 0:
        return x
    size = 2 * radius + 1
    pad = ((radius, radius), (0, 0))
    low = np.lib.stride_tricks.sliding_window_view(np.pad(x, pad, mode="edge"), size, axis=0).min(axis=-1)
    return np.lib.stride_tricks.sliding_window_view(np.pad(low, pad, mode="edge"), size, axis=0).max(axis=-1)


class ManipulatorRule:
    """Source activations + style -> target activations for one shot (the engine's rule, numpy float64).

    Args: as :class:`~ned_fx.manipulation.engine.ManipulatorEngine`.
    """

    def __init__(self, fps: float = 25.0, state_smoothing: float = 0.4, offset_smoothing: float = 0.08,
                 swing_smoothing: float = 0.5, names: tuple[str, ...] = AU_NAMES) -> None:
        mask = lambda group: np.array([1.0 if n in group else 0.0 for n in names])  # noqa: E731
        self.names = tuple(names)
        self.emotion_mask, self.speech_mask, self.lid_mask = (mask(EMOTION_AUS), mask(SPEECH_AUS),
                                                              mask(LID_OPENING_AUS))
        self.blink_select, self.grin_mask = mask(PERFORMANCE_AUS[:1]), mask(GRIN_COMPANIONS)
        self.smile_select, self.held_lip_mask, self.jaw_select = (mask(("AU12",)), mask(HELD_LIP_AUS),
                                                                  mask(("AU26",)))
        self.opening_radius = int(round(state_smoothing * fps))
        self.state_kernel = engine_kernel(0.5 * state_smoothing * fps)
        self.offset_kernel = engine_kernel(offset_smoothing * fps)
        self.swing_kernel = engine_kernel(swing_smoothing * fps)

    def __call__(self, params: np.ndarray, style: np.ndarray, weights: np.ndarray, gate: np.ndarray,
                 region: np.ndarray) -> np.ndarray:
        """Target activations of one shot.

        Args:
            params: TxK source activations; style: TxK target pattern (intensity applied); weights: Tx1 intensity;
            gate: Tx1 speech gate; region: K per-AU weight.

        Returns:
            TxK target activations (float64).
        """
        params, style, weights, gate, region = (np.asarray(a, np.float64) for a in (params, style, weights, gate,
                                                                                     region))
        held = smooth(opening(params, self.opening_radius), self.state_kernel)
        swing = smooth(params, self.swing_kernel)
        state = np.where(style > 1e-6, held, swing)
        replace = np.clip(weights, 0.0, 1.0)
        jaw = np.clip((swing * self.jaw_select).sum(axis=-1, keepdims=True) / HELD_LIP_JAW, 0.0, 1.0)
        closed = 1.0 - jaw * jaw * (3.0 - 2.0 * jaw)
        unshaped = (style <= 1e-6).astype(np.float64)
        pout = replace * gate * closed * unshaped * held * self.held_lip_mask
        grin = np.clip((swing * self.smile_select).sum(axis=-1, keepdims=True) / GRIN_AU12, 0.0, 1.0)
        grin = grin * grin * (3.0 - 2.0 * grin)
        smiles = (style * self.smile_select).sum(axis=-1, keepdims=True) / np.maximum(weights, 1e-6)
        smile = np.minimum(np.clip(smiles, 0.0, 1.0), grin)
        replace = replace * (1.0 - smile * self.grin_mask)
        offset = (style - replace * state) * self.emotion_mask + gate * style * self.speech_mask - pout
        offset = smooth(offset * region, self.offset_kernel)
        blink = smooth(np.clip((params * self.blink_select).sum(axis=-1, keepdims=True), 0.0, 1.0),
                       self.offset_kernel)
        offset = offset * (1.0 - self.lid_mask * blink)
        offset = offset * (weights > 0.0).astype(np.float64)       # intensity 0: nothing changes, bit for bit
        return params + offset
