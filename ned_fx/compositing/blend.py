"""Multi-band (Laplacian pyramid) blending and colour matching, on float32 arrays (numpy + OpenCV).

The blend works on the DIFFERENCE between the rendered region and the plate: ``out = plate + B`` with
``B = sum_k up(L_k(rendered - plate) * G_k(mask))``. That is algebraically the classic multi-band blend of the
two images (pyramids are linear), but wherever the rendered region equals the plate the difference is exactly
zero and so is B: those pixels come back bit-identical, in any dtype.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError
from ..scratch import Scratch


def pyramid_levels(height: int, width: int, wanted: int, min_size: int = 8) -> int:
    """How many pyramid levels fit a ``height`` x ``width`` region (the coarsest keeps >= ``min_size`` px)."""
    levels = 0
    size = min(height, width)
    while levels < wanted and size // 2 >= min_size:
        size = (size + 1) // 2
        levels += 1
    return levels


def laplacian_blend_delta(delta: np.ndarray, mask: np.ndarray, levels: int,
                          scratch: Scratch | None = None) -> np.ndarray:
    """Multi-band blend of a difference image: ``sum_k up(L_k(delta) * G_k(mask))``.

    Args:
        delta: HxWxC float32, rendered minus plate (finite).
        mask: HxW float32 in 0..1, where the rendered region should show.
        levels: pyramid levels (0: a plain ``delta * mask``).
        scratch: where the temporaries live (and the result: valid until ``scratch`` blends again); None: fresh
            arrays.

    Returns:
        HxWxC float32 to add to the plate (exactly 0 wherever ``delta`` is 0 over the blend's support).

    Raises:
        InvalidParameterError: shapes that do not fit.
    """
    import cv2

    if delta.ndim != 3 or mask.shape != delta.shape[:2]:
        raise InvalidParameterError(f"delta must be HxWxC and mask HxW of the same size, got {delta.shape} and "
                                    f"{mask.shape}")
    space = scratch or Scratch()
    c = delta.shape[2]
    levels = pyramid_levels(delta.shape[0], delta.shape[1], levels)
    gauss_d, gauss_m = [np.ascontiguousarray(delta, dtype=np.float32)], [np.ascontiguousarray(mask, np.float32)]
    for n in range(1, levels + 1):
        h, w = gauss_d[-1].shape[:2]
        shape = ((h + 1) // 2, (w + 1) // 2)
        gauss_d.append(cv2.pyrDown(gauss_d[-1], dst=_cv(space.take(f"d{n}", shape + (c,)))).reshape(shape + (c,)))
        gauss_m.append(cv2.pyrDown(gauss_m[-1], dst=space.take(f"m{n}", shape)))
    acc = weigh(gauss_d[-1], gauss_m[-1], space.take(f"acc{levels % 2}", gauss_d[-1].shape), space)
    for k in range(levels - 1, -1, -1):
        shape = gauss_d[k].shape
        size = (shape[1], shape[0])
        band = cv2.pyrUp(gauss_d[k + 1], dst=_cv(space.take("band", shape)), dstsize=size).reshape(shape)
        np.subtract(gauss_d[k], band, out=band)                  # the Laplacian band of level k ...
        weigh(band, gauss_m[k], band, space)                     # ... weighted by the mask at that scale
        acc = cv2.pyrUp(acc, dst=_cv(space.take(f"acc{k % 2}", shape)), dstsize=size).reshape(shape)
        acc += band
    return acc if scratch is not None else acc.copy()


def _cv(a: np.ndarray) -> np.ndarray:
    """An HxWx1 array as OpenCV writes a one-channel result (HxW), HxWxC as it is."""
    return a.reshape(a.shape[:2]) if a.ndim == 3 and a.shape[2] == 1 else a


def weigh(image: np.ndarray, weight: np.ndarray, out: np.ndarray | None = None,
          scratch: Scratch | None = None) -> np.ndarray:
    """``image * weight[..., None]`` (every channel times the same weight), bit for bit, without numpy's
    broadcast over a short last axis (several times slower than a product of two arrays of one shape).

    Args:
        image: HxWxC float32; weight: HxW float32; out: where to write (``image`` itself may be given), or None
            for a new array; scratch: where the weight's C copies go (None: a fresh array).

    Returns:
        HxWxC float32 (``out`` when given).
    """
    import cv2

    h, w, c = image.shape
    if out is None:
        out = np.empty(image.shape, np.float32)
    if c == 1:
        np.multiply(image.reshape(h, w), weight, out=out.reshape(h, w))
    else:
        planes = (scratch.take("weights", (h, w, c)) if scratch is not None else None)
        planes = cv2.merge([weight] * c, dst=planes).reshape(h, w, c)
        np.multiply(image, planes, out=out)
    return out


def color_match(rendered: np.ndarray, plate: np.ndarray, mask: np.ndarray, max_gain: float = 1.25,
                samples: int = 40000) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel gain and offset that give ``rendered`` the plate's mean and standard deviation, measured
    in the mask's transition ring (weights ``4 m (1 - m)``: where the rendered face meets the plate).

    Args:
        rendered: HxWxC float32 (finite); plate: HxWxC float32 (finite), same shape.
        mask: HxW float32 in 0..1 (the face mask).
        max_gain: the gain is kept within [1/max_gain, max_gain].
        samples: about how many pixels to compare (a regular subsample; speed on large regions).

    Returns:
        (gain C, offset C) float32: ``rendered * gain + offset``. Exactly (1, 0) when the two agree on the
        ring, or when there is no ring.
    """
    c = rendered.shape[2]
    step = max(1, int(np.sqrt(mask.size / max(samples, 1))))
    m = mask[::step, ::step].astype(np.float64)
    w = 4.0 * m * (1.0 - m)
    rows, cols = np.nonzero(w > 1e-6)
    if len(rows) == 0:
        return np.ones(c, np.float32), np.zeros(c, np.float32)
    wf = w[rows, cols][:, None]
    wf /= wf.sum()
    r = rendered[::step, ::step][rows, cols].astype(np.float64)
    p = plate[::step, ::step][rows, cols].astype(np.float64)
    mu_r, mu_p = (wf * r).sum(0), (wf * p).sum(0)
    sd_r = np.sqrt((wf * (r - mu_r) ** 2).sum(0))
    sd_p = np.sqrt((wf * (p - mu_p) ** 2).sum(0))
    gain = np.where(sd_r > 1e-12, sd_p / np.where(sd_r > 1e-12, sd_r, 1.0), 1.0)
    gain = np.clip(gain, 1.0 / max_gain, max_gain)
    offset = mu_p - gain * mu_r
    return gain.astype(np.float32), offset.astype(np.float32)
