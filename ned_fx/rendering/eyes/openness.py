"""Is each eye open? Per-frame evidence from the plate, and a whole shot's smoothed answer.

The tracker's lids do not always follow a shut eye (d3.mp4: a wink of 17 frames reads 55-75 % of the eye's
usual opening). What the pixels in the tracked opening show does: an open eye has a bright sclera; a shut one
shows the lid's skin and lashes. :func:`eye_evidence` measures the opening's brightest "sclera" in one frame,
and how much darker the tracked iris disc is (plate values, no model needed: the tracking pass can take it from
frames it decodes anyway);
:func:`open_weights` compares a whole shot's evidence with the shot's own sclera around each frame and smooths
it over time, so one dim frame (a lash in front of the sclera) neither opens nor shuts an eye on its own;
:func:`pin_shut_lids` keeps a shut eye's lids where they are in the target.
"""

from __future__ import annotations

import numpy as np

from ..sampling import running_median
from ._geometry import EYES, EyeFrame, luminance, smoothstep
from .config import EyeConfig
from .model import eye_crop, lid_interior, sclera_samples


def eye_evidence(pixels: np.ndarray, landmarks: np.ndarray, config: EyeConfig | None = None,
                 channels=None) -> np.ndarray:
    """What one frame shows of each eye: a 2x2 array, per eye (right, left) the brightness of its brightest
    "sclera" (plate values, the mean over colour channels, sampled as the eye model samples it:
    :func:`~.model.sclera_samples`) and its iris's brightness over that (the median of the tracked iris disc,
    0.8 of its radius, inside the lids: under ~0.35 an iris is plainly there; a shut lid's skin and lashes read
    0.6-1); NaN where it cannot be measured (no finite landmarks, an opening too small: a blink the tracker saw).

    Args:
        pixels: HxWxK (or HxW) plate values of the picture the landmarks are in (any dtype; only the eyes' boxes
            are read).
        landmarks: 478x2 (or x3) landmarks with the iris points, in ``pixels``' pixels.
        channels: the colour channels' indices in ``pixels`` (None: all).
    """
    c = config or EyeConfig()
    out = np.full((2, 2), np.nan)
    px = np.asarray(pixels)
    if px.ndim == 2:
        px = px[:, :, None]
    lm = np.asarray(landmarks, dtype=np.float64)[:, :2]
    for e, (contour, corners, iris) in enumerate(EYES):
        if not (np.isfinite(lm[list(contour)]).all() and np.isfinite(lm[list(iris)]).all()):
            continue
        got = eye_crop(px, lm, contour, corners, iris, c, channels)
        if got is None:
            continue
        frame, poly, box, crop, centre, radius, _ = got
        margin = c.lash_margin * frame.w
        seen = lid_interior(poly, box, margin)      # computed once: the sclera's samples and the iris disc's
        got = sclera_samples(crop, box, poly, centre, radius, margin, c, seen=seen)
        if got is None:
            continue
        out[e, 0] = float(got[2].mean())
        x0, y0 = box[:2]
        rows, cols = np.nonzero(seen)
        disc = np.hypot(cols + (x0 + 0.5) - centre[0], rows + (y0 + 0.5) - centre[1]) < 0.8 * radius
        if np.count_nonzero(disc) >= 4 and out[e, 0] > 0:
            out[e, 1] = float(np.median(luminance(crop[rows[disc], cols[disc]]))) / out[e, 0]
    return out


def open_weights(evidence: np.ndarray, fps: float = 25.0, config: EyeConfig | None = None,
                 landmarks: np.ndarray | None = None) -> np.ndarray:
    """How open each eye is, frame by frame: a Tx2 float32 array in [0, 1] (1: the eye shows its eyeball as
    usual, 0: it is shut; 1 where nothing was measured). With the shot's ``landmarks`` (TxPx2+, the source's),
    the smaller of that and :func:`lid_weights` (a lowered upper lid is no eye to widen either).

    ``evidence`` is each frame's :func:`eye_evidence` (Tx2x2; or Tx2, the sclera alone; NaN where unmeasured).
    An eye's sclera level is compared with the same eye's, there and then: its 90th percentile over
    ``EyeConfig.shut_reference`` seconds around the frame (a light that changes over the shot does not count; an
    eye must be seen open within that window to be judged shut, so a still is never judged shut); below
    ``shut_sclera[0]`` of it the eye is shut, from ``shut_sclera[1]`` open. An eye that test calls shut is open
    all the same where the picture plainly shows its iris, its tracked upper lid is up and its sclera is not far
    dimmer than its own (``EyeConfig.seen_iris``, ``seen_lid``, ``seen_sclera``; needs ``landmarks``): a head
    turned from the light darkens one eye's white for a second, and that eye alone kept its lids. Then smoothed
    over time: a running median over 5 frames (one dim or bright frame does not count), then a 3-frame mean (a
    lid pinned or let go over a few frames, as a real lid moves). The iris never shuts an eye: behind glasses,
    or with the iris under a lid looking up, it reads "no eye" on open eyes (d12.mp4). Last, with ``landmarks``,
    an eye whose own lid is not up is held to at most ``pair_spread`` more open than the other (a look down
    lowers both lids; ``EyeConfig.pair_lid``).
    """
    from ...filters import percentile_filter1d

    c = config or EyeConfig()
    ev = np.asarray(evidence, dtype=np.float64)
    if ev.ndim == 3:
        sclera, iris = ev[:, :, 0], ev[:, :, 1]
    else:
        sclera, iris = ev.reshape(-1, 2), None
    t = len(sclera)
    out = np.ones((t, 2), np.float32) if landmarks is None else lid_weights(landmarks, c)
    if len(out) != t:
        raise ValueError(f"{t} frames of evidence but {len(out)} of landmarks")
    if t == 0:
        return out
    lid_up = None if landmarks is None else _lid_share(landmarks, c)
    if not np.isfinite(sclera).any():
        return _paired(out, lid_up, c)
    size = max(int(round(c.shut_reference * (fps if fps and fps > 0 else 25.0))) | 1, 1)
    lo, hi = c.shut_sclera
    for e in range(2):
        level = sclera[:, e]
        if not np.isfinite(level).any():
            continue
        ref = percentile_filter1d(np.where(np.isfinite(level), level, np.nanmedian(level)), 90, size)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = level / ref
            conf = smoothstep((share - lo) / (hi - lo))
            if lid_up is not None and iris is not None:
                seen = (_ramp(iris[:, e], c.seen_iris, falling=True) * _ramp(share, c.seen_sclera)
                        * _ramp(lid_up[:, e], c.seen_lid))
                conf = np.where(np.isfinite(seen), np.maximum(conf, seen), conf)
        out[:, e] = np.minimum(out[:, e], _smoothed(np.where(np.isfinite(level) & (ref > 0), conf, np.nan), 5))
    return _paired(out, lid_up, c)


def _paired(weights: np.ndarray, share: np.ndarray | None, config: EyeConfig) -> np.ndarray:
    """Each eye whose own upper lid is not up (``pair_lid``) held to at most ``pair_spread`` more open than the
    other eye (a look down lowers both lids: one eye is not widened beside the other pinned); a lid that is up
    (a wink's open eye) is not held. ``share``: :func:`_lid_share` of the source's landmarks (None: none given)."""
    if share is None or config.pair_spread >= 1.0:
        return weights
    lowered = 1.0 - _ramp(np.nan_to_num(share, nan=1.0), config.pair_lid)             # 1: its lid is not up
    out = weights.copy()
    for e in range(2):
        cap = np.minimum(weights[:, 1 - e] + config.pair_spread, 1.0)
        out[:, e] = np.minimum(weights[:, e], 1.0 - lowered[:, e] * (1.0 - cap)).astype(np.float32)
    return out


def _ramp(values: np.ndarray, edges: tuple[float, float], falling: bool = False) -> np.ndarray:
    """smoothstep from ``edges[0]`` (0) to ``edges[1]`` (1), or the other way round when ``falling``; NaN stays."""
    lo, hi = edges
    x = (np.asarray(values, dtype=np.float64) - lo) / (hi - lo)
    return smoothstep(1.0 - x if falling else x)


def lid_heights(landmarks: np.ndarray) -> np.ndarray:
    """``...xPx2+`` landmarks -> ``...x2``: per eye (right, left) its upper lid's height above the line through
    its corners, over the eye's width (NaN where the landmarks are not finite)."""
    lm = np.asarray(landmarks, dtype=np.float64)[..., :2]
    out = []
    for contour, corners, _ in EYES:
        a, b = lm[..., corners[0], :], lm[..., corners[1], :]
        d = b - a
        w = np.hypot(d[..., 0], d[..., 1])
        up = np.stack([d[..., 1], -d[..., 0]], axis=-1) / np.maximum(w, 1e-9)[..., None]   # the normal, upwards
        rel = lm[..., list(contour), :] - (0.5 * (a + b))[..., None, :]
        with np.errstate(invalid="ignore"):
            out.append(np.max(np.einsum("...pk,...k->...p", rel, up), axis=-1) / np.maximum(w, 1e-9))
    return np.stack(out, axis=-1)


def lid_weights(landmarks: np.ndarray, config: EyeConfig | None = None) -> np.ndarray:
    """How far each eye's upper lid is up, frame by frame: a Tx2 float32 array in [0, 1] (1: as open as the eye
    opens, 0: lowered, see ``EyeConfig.lid_lowered``; 1 where there is no face), smoothed over time as
    :func:`open_weights` is. The geometry the tracker follows when the sclera test cannot tell: a look down
    shows the lids' skin, which can be as pale as a shaded sclera."""
    c = config or EyeConfig()
    share = _lid_share(landmarks, c)
    out = np.ones(share.shape, np.float32)
    lo, hi = c.lid_lowered
    for e in range(2):
        if not np.isfinite(share[:, e]).any():
            continue
        conf = smoothstep((share[:, e] - lo) / (hi - lo))
        out[:, e] = _smoothed(np.where(np.isfinite(share[:, e]), conf, np.nan), 5)
    return out


def _lid_share(landmarks: np.ndarray, config: EyeConfig) -> np.ndarray:
    """Tx2: each eye's :func:`lid_heights` over its open height (the larger of the shot's 90th percentile and
    ``EyeConfig.lid_open_height``); NaN where there is no face."""
    h = lid_heights(np.asarray(landmarks, dtype=np.float64)).reshape(-1, 2)
    out = np.full(h.shape, np.nan)
    for e in range(2):
        if np.isfinite(h[:, e]).any():
            out[:, e] = h[:, e] / max(float(np.nanpercentile(h[:, e], 90)), config.lid_open_height)
    return out


def pin_shut_lids(src: np.ndarray, dst: np.ndarray, opened: np.ndarray) -> np.ndarray:
    """The target landmarks with each shut eye's lids and iris kept as the source has them: a copy of ``dst``
    whose eye contour and iris points move from the target toward the source's (carried by the similarity that
    takes the source eye's corners onto the target's, as the warp carries the eye) by ``1 - opened[e]``.

    An eye the tracker follows open while the actor winks or blinks (``opened`` ~0) is then neither widened over
    a shut lid (lashes and lid skin stretched into a dark smear) nor narrowed; a raised brow above it still rises.

    Args:
        src, dst: 478xD (D >= 2) source and target landmarks of one frame; opened: 2 weights from
            :func:`open_weights` (right, left).
    """
    from .renderer import _similarity

    out = np.array(dst, dtype=np.float64, copy=True)
    s2 = np.asarray(src, dtype=np.float64)[:, :2]
    for e, (contour, corners, iris) in enumerate(EYES):
        pin = 1.0 - float(np.clip(opened[e], 0.0, 1.0))
        if pin <= 0.0:
            continue
        fs, ft = EyeFrame(s2, corners), EyeFrame(out[:, :2], corners)
        if fs.w < 1e-6 or ft.w < 1e-6:
            continue
        idx = [i for i in (*contour, *iris) if i not in corners]
        if np.array_equal(out[idx, :2], s2[idx]):
            continue                        # nothing moved (an intensity 0 frame stays bit-exact)
        held = _similarity(s2[idx], fs, ft)
        out[idx, :2] += pin * (held - out[idx, :2])
    return out


def _smoothed(values: np.ndarray, window: int) -> np.ndarray:
    """A running median over ``window`` frames (NaN left out; 1 where a window holds none), then a 3-frame mean."""
    med = running_median(values, window, 1.0)
    mean = np.convolve(np.pad(med, 1, mode="edge"), np.ones(3) / 3.0, mode="valid")
    return np.clip(mean, 0.0, 1.0).astype(np.float32)
