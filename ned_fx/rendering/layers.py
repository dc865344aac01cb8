"""The contract between the warp and the new-content sub-stages (mouth interior, eyeballs, skin shading).

A geometry warp only moves pixels that exist. Teeth, the tongue, eye whites, a round iris and folds are new
content; each sub-stage (``rendering/mouth``, ``rendering/eyes``, ``rendering/skin``) renders it as a
:class:`RenderedLayer` from the same frozen :class:`RegionInputs`, and :func:`stack` lays the layers over the
warped region in a fixed order (mouth, eyes, skin). No sub-stage imports another; only the pipeline runs them.

Per-shot models (a mouth bank retrieved from the actor's own frames, an eye model, a skin model) are built once
per shot from the plate's frames by :class:`ShotModelBuilder` objects (``add`` every frame, ``finish`` once) and
are stored in the analysis file as plain arrays (``to_arrays``/``from_arrays``), so a farm chunk renders exactly
what a whole run renders.

Conventions: region pixels, ``(0, 0)`` = top-left corner of the region's top-left pixel; landmarks are Px3 in
the tracker's convention (P = 478 with the iris points 468..477); pixel values are the plate's own (float32,
the colour channels only: 3 for RGB, 1 for grey), with ``white`` the value of display white (255 for 8-bit
plates, 65535 for 16-bit, 1.0 for float plates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import InvalidParameterError


@dataclass(frozen=True)
class RegionInputs:
    """What every sub-stage sees for one frame.

    Attributes:
        region: HxWxK float32 source plate crop (occluders already filled in where ``valid`` < 1).
        warped: HxWxK float32 the renderer's output for the region (the face moved to the target).
        src: Px3 source landmarks in region pixels; dst: Px3 target landmarks in region pixels.
        valid: HxW float32, 1 where the plate shows the face itself, 0 on occluders (glasses, hands, hair);
            None when nothing occludes.
        index: the frame's index in the shot's analysis (0 for a still).
        white: plate value of display white.
        smear: the camera's motion blur at this frame, a kernel for what a sub-stage draws
            (:func:`~ned_fx.rendering.motion.motion_kernel`; :func:`~ned_fx.rendering.motion.smear` applies it),
            or None: drawn content stays as drawn (a still, a face at rest, a shutter of 0).
    """

    region: np.ndarray
    warped: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    valid: np.ndarray | None = None
    index: int = 0
    white: float = 1.0
    smear: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the region."""
        return self.region.shape[0], self.region.shape[1]


@dataclass(frozen=True)
class RenderedLayer:
    """New content over the warped region: ``out = warped + coverage * (pixels - warped)``.

    Attributes:
        pixels: HxWxK float32 (only meaningful where ``coverage`` > 0).
        coverage: HxW float32 in 0..1.
        name: which sub-stage made it (for timing and debugging).
    """

    pixels: np.ndarray
    coverage: np.ndarray
    name: str = ""


class ShotModelBuilder(Protocol):
    """Builds one per-shot model from the plate's frames (the appearance pass of the analysis)."""

    def add(self, index: int, pixels: np.ndarray, landmarks: np.ndarray) -> None:
        """One frame: its index in the shot, HxWxK float32 plate colour values, 478x3 landmarks in plate pixels
        (never called for frames without a face)."""

    def finish(self):
        """The model (an object with ``to_arrays() -> dict[str, np.ndarray]``)."""


def stack(warped: np.ndarray, layers) -> np.ndarray:
    """Lay ``layers`` (in order, None entries skipped) over ``warped``; returns a new array (or ``warped`` itself
    when no layer covers anything)."""
    out = warped
    for layer in layers:
        if layer is None:
            continue
        cov = np.asarray(layer.coverage, dtype=np.float32)
        if cov.shape != warped.shape[:2] or layer.pixels.shape != warped.shape:
            raise InvalidParameterError(f"layer {layer.name!r} is {layer.pixels.shape} with coverage {cov.shape}; "
                                        f"the region is {warped.shape}")
        rows = np.flatnonzero(cov.any(axis=1))
        if not len(rows):
            continue
        cols = np.flatnonzero(cov[rows[0]:rows[-1] + 1].any(axis=0))
        if out is warped:
            out = warped.copy()
        # only over the box the layer covers (a layer is mostly coverage 0: nothing to lay there)
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        box = out[y0:y1, x0:x1]
        box += cov[y0:y1, x0:x1, None] * (layer.pixels[y0:y1, x0:x1] - box)
    return out
