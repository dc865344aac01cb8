"""The manipulator: from a tracked face and an instruction ("happy, 0.8"; "like this reference"; "only the
brows") to target landmarks for every frame, with the actor's speech, identity and head pose untouched.

How an edit is made
    1. Every frame is taken into the head frame (the track's pose inverted), the actor's neutral is estimated
       (or given), the AU basis is authored on it and every frame's AU activations are fitted
       (:mod:`~ned_fx.manipulation.expression`).
    2. The instruction becomes a per-frame target pattern (intensity x prototype, reference style, blends,
       keyframes or an intensity curve; :mod:`~ned_fx.manipulation.prototypes`).
    3. The rule of :class:`~ned_fx.manipulation.engine.ManipulatorEngine` (run in numpy,
       :class:`~ned_fx.manipulation.rule.ManipulatorRule`, unless an engine is given) turns source activations +
       pattern into target activations: the actor's sustained emotion is replaced by the pattern at intensity 1,
       the performance (emphasis, blinks, speech) is kept, offsets are smoothed zero-phase.
    4. The activation offsets are decoded with the speech-safe fields (the inner-lip gap never changes under an
       emotion offset) where the speech gate is shut, with the fields as authored where it is open (a still: a
       disgusted upper lip rises off the teeth), and mapped into each frame with that frame's pose:
       ``target = source + sR · basis · Δa``.
       With no change (intensity 0) the target *is* the source, bit for bit.

The speech rule
    Speech channels (AU18 lip pucker, AU24 lip pressor, AU25 lips part, AU26 jaw drop) are always the source's
    own, frame by frame — except on a still, which holds no speech: there a smile's parted lips or a held gasp
    are expression, taken away like the emotion AUs' sustained state wherever the gate is open (``neutral`` and
    ``sad`` close a grin over its teeth, ``happy`` keeps a grin's; :func:`_still_speech`) — but a jaw held wide
    open stays open under any style but ``neutral`` (a warp cannot close a gasp believably:
    ``ManipulatorConfig.still_gasp_kept``). A style may *add* to them (surprise drops the jaw) only according to
    the speech mode:

    * ``preserve``: never; the mouth opening is exactly the source's.
    * ``free``: always (a silent reaction shot may open the mouth in surprise).
    * ``auto`` (default): the shot is measured; a *talking shot* (the mouth opening varies by more than
      ``talking_threshold`` inter-ocular units over a ``talking_window``-second window, within a line of
      openings at most ``syllable_gap`` seconds apart, in at least ``talking_fraction`` of the frames; see
      :func:`speech_frames`) is treated as ``preserve``, any other shot (including stills) as
      ``free``. One decision per shot, so the jaw never pops open in the pauses of a line; and in a shot that
      is not a talking shot the gate still closes, with an ease, over every stretch where the actor speaks.

    Every other AU's offset is projected so the inner-lip gap stays the source's (see
    :class:`~ned_fx.manipulation.expression.ExpressionBasis`) wherever the gate is shut, so on a talking shot the
    edited mouth opening follows the source exactly, or as a fixed share of it where a style's jaw drop or smile
    scales every opening alike (``talking_jaw_gain``, ``smile_lip_gain``; zero where the lips meet).

Region control
    Each AU belongs to a region (brows, eyes, cheeks, nose, corners, lips, jaw); region weights scale the offsets.
    ``"brows"`` = only the brows, ``"-mouth"`` = everything but the mouth, ``"brows:1,corners:0.5"`` = weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .. import __version__
from .. import topology as topo
from ..errors import InvalidParameterError, NoFaceError
from . import prototypes as protos
from .config import SPEECH_MODES, ManipulatorConfig
from .edited import EditedTrack
from .expression import (AU_NAMES, AU_REGION, EMOTION_AUS, PERFORMANCE_AUS, REGION_ALIASES, REGIONS, RIGID_POINTS,
                         SPEECH_AUS, STILL_AUS, UPPER_FACE_AUS, ExpressionBasis, ExpressionModel, build_basis,
                         estimate_neutral, fit_activations, frame_offsets, head_frame, mouth_opening_iod,
                         still_neutral)

# ----------------------------------------------------------------------------------------------------------------
# Regions


def parse_regions(spec: str | Mapping[str, float] | None) -> dict[str, float]:
    """Region weights from an artist's spec.

    Args:
        spec: None / ``"all"`` (everything), ``"brows,eyes"`` (only those), ``"-mouth"`` (all but the mouth),
            ``"brows:1,corners:0.5"`` (weights 0..1), or a mapping region -> weight. When every item is an
            exclusion (``-name`` or weight 0) the other regions keep weight 1, otherwise they get 0.

    Returns:
        {region: weight} over :data:`~ned_fx.manipulation.expression.REGIONS`.

    Raises:
        InvalidParameterError: unknown region (the message lists the valid names) or a weight outside 0..1.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "all")):
        return {r: 1.0 for r in REGIONS}
    if isinstance(spec, Mapping):
        items = [(str(k), v) for k, v in spec.items()]
    else:
        items = []
        for part in [p.strip() for p in str(spec).split(",") if p.strip()]:
            if part.startswith("-"):
                items.append((part[1:], 0.0))
            else:
                name, sep, w = part.replace("=", ":").partition(":")
                items.append((name, w if sep else 1.0))
    valid = REGIONS + tuple(REGION_ALIASES)
    given: dict[str, float] = {}
    for name, w in items:
        key = name.strip().lower()
        if key not in valid:
            raise InvalidParameterError(f"unknown region {name!r}; regions: {', '.join(valid)}")
        try:
            weight = float(w)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"weight of region {name!r} must be a number, got {w!r}") from None
        if not 0.0 <= weight <= 1.0:
            raise InvalidParameterError(f"weight of region {name!r} must be between 0 and 1, got {w}")
        for region in REGION_ALIASES.get(key, (key,)):
            given[region] = weight
    base = 1.0 if all(v == 0.0 for v in given.values()) else 0.0
    return {r: given.get(r, base) for r in REGIONS}


def region_vector(weights: Mapping[str, float]) -> np.ndarray:
    """{region: weight} -> K per-AU weights."""
    return np.array([float(weights.get(AU_REGION.get(n, ""), 1.0)) for n in AU_NAMES])


# ----------------------------------------------------------------------------------------------------------------
# Speech


def prominent_peaks(x: np.ndarray, prominence: float) -> np.ndarray:
    """The indices of the 1-D ``x``'s peaks (a flat top: its middle sample, rounded down) whose prominence (the
    peak over the higher of its two bases, each the lowest sample before a higher one or the end) is at least
    ``prominence``: ``scipy.signal.find_peaks(x, prominence=prominence)[0]`` exactly, without importing
    scipy.signal (~0.3-0.8 s a process, paid by every `ned-fx edit` for this one call)."""
    x = np.asarray(x, np.float64)
    n = len(x)
    peaks = []
    i = 1
    while i < n - 1:
        if x[i - 1] < x[i]:
            ahead = i + 1
            while ahead < n - 1 and x[ahead] == x[i]:
                ahead += 1
            if x[ahead] < x[i]:
                peaks.append((i + ahead - 1) // 2)
                i = ahead
        i += 1
    keep = []
    for p in peaks:
        top = x[p]
        bases = []
        for step in (-1, 1):
            low, j = top, p
            while 0 <= j < n and x[j] <= top:
                low = min(low, x[j])
                j += step
            bases.append(low)
        if top - max(bases) >= prominence:
            keep.append(p)
    return np.array(keep, dtype=np.intp)


def speech_frames(shapes: np.ndarray, fps: float, config: ManipulatorConfig | None = None) -> np.ndarray:
    """Per frame: does the mouth opening vary like speech around it (see the module docstring)?

    A frame is speech when the mouth opening varies (standard deviation above ``talking_threshold`` over the
    surrounding ``talking_window``) *and* it lies within half a window of a line: two or more openings (peaks of
    the opening with a prominence of at least ``talking_threshold``), each at most ``syllable_gap`` seconds after
    the one before. Speech opens and closes the mouth several times a second; a single opening that is held and
    released (an expression's parted lips or bared teeth, a gasp) is not speech, however wide.

    Args:
        shapes: FxPx3 head-frame shapes (NaN rows = no face); fps: frame rate (0 -> config default).

    Returns:
        F bools (all False for a still or fewer than 3 faces; frames without a face take their neighbours').
    """
    config = config or ManipulatorConfig()
    ok = np.isfinite(shapes[:, :468]).all(axis=(1, 2))
    out = np.zeros(len(shapes), bool)
    if ok.sum() < 3:
        return out
    rate = fps or config.default_fps
    opening = mouth_opening_iod(shapes[ok])
    half = max(1, int(round(0.5 * config.talking_window * rate)))
    pad = np.pad(opening, half, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, 2 * half + 1)
    varies = win.std(axis=1) > config.talking_threshold
    peaks = prominent_peaks(opening, config.talking_threshold)
    line = np.zeros(len(opening), bool)
    if len(peaks) >= 2:
        gap = config.syllable_gap * rate
        breaks = np.flatnonzero(np.diff(peaks) > gap)
        for run in np.split(peaks, breaks + 1):
            if len(run) >= 2:
                line[max(run[0] - half, 0): run[-1] + half + 1] = True
    seen = varies & line
    t = np.arange(len(shapes))
    out[:] = np.interp(t, t[ok], seen.astype(np.float64)) > 0.5
    return out


def talking_share(shapes: np.ndarray, fps: float, config: ManipulatorConfig | None = None) -> float:
    """Share of frames whose mouth opening varies like speech (see the module docstring).

    Args:
        shapes: FxPx3 head-frame shapes (NaN rows = no face); fps: frame rate (0 -> config default).

    Returns:
        0..1 (0 for a still).
    """
    ok = np.isfinite(shapes[:, :468]).all(axis=(1, 2))
    if ok.sum() < 3:
        return 0.0
    return float(np.mean(speech_frames(shapes, fps, config)[ok]))


def speech_gate(mode: str, talking: bool, frames: int, speaking: np.ndarray | None = None,
                fps: float = 25.0, window: float = 1.0) -> np.ndarray:
    """Per-frame gate (F) of the style on speech channels for a speech mode and the shot's talking flag.

    In ``auto`` mode a shot that is not a talking shot still closes the gate, smoothly, around every frame
    where the actor speaks (``speaking``, from :func:`speech_frames`; ``window`` seconds of ease on each side):
    the jaw never opens over a line, even in a shot that is mostly silent.
    """
    if mode not in SPEECH_MODES:
        raise InvalidParameterError(f"unknown speech mode {mode!r}; speech modes: {', '.join(SPEECH_MODES)}")
    allowed = mode == "free" or (mode == "auto" and not talking)
    gate = np.full(frames, 1.0 if allowed else 0.0)
    if mode == "auto" and allowed and speaking is not None and np.any(speaking):
        from ..filters import distance_transform_edt

        half = max(1, int(round(0.5 * window * (fps or 25.0))))
        away = distance_transform_edt(~np.asarray(speaking, bool))          # frames to the nearest speech
        gate = protos.smoothstep((away - half) / half)                      # shut within half, eased over half
    return gate


# ----------------------------------------------------------------------------------------------------------------
# Reference


@dataclass(frozen=True)
class ReferenceStyle:
    """A reference's expression as AU activations (the style NED's reference mode transfers).

    Attributes:
        style: K median activations over the reference's frames (fitted without the blink channel: narrowed
            eyes are read as lid tightening, which transfers).
        activations: RxK per reference frame with a face.
        name: the reference's name (file), for messages and the edit's params.
        neutral: how the reference's neutral was obtained ("adapted", "own", "frame N").
    """

    style: np.ndarray
    activations: np.ndarray
    name: str
    neutral: str


def adapt_neutral(actor_neutral: np.ndarray, shapes: np.ndarray, closed_gap: float = 0.03) -> np.ndarray:
    """The actor's neutral fitted to another face's proportions, so a reference of unknown neutral can be
    measured against a plausible one.

    Per-axis scale and offset (head frame) over the rigid points; then the lower face is stretched vertically
    (piecewise linear in height, from the nose base down) so the philtrum sits where the other face's does and,
    when the other face's mouth is closed (inner-lip gap under ``closed_gap`` inter-ocular units), the chin too:
    lip and chin height are identity then, while an open mouth's chin belongs to the expression.

    Args:
        actor_neutral: Px3; shapes: RxPx3 head-frame shapes of the other face.

    Returns:
        Px3.
    """
    target = np.median(shapes, axis=0)
    idx = list(RIGID_POINTS)
    a, b = actor_neutral[idx], target[idx]
    scale = np.empty(3)
    shift = np.empty(3)
    for c in range(3):
        x = a[:, c] - a[:, c].mean()
        scale[c] = float(x @ (b[:, c] - b[:, c].mean()) / max(x @ x, 1e-12))
        shift[c] = b[:, c].mean() - scale[c] * a[:, c].mean()
    out = actor_neutral * scale + shift
    lip = [164, 167, 393]                        # the philtrum: where the mouth sits, barely moved by AUs
    y_nose, y_lip, y_chin = out[2, 1], out[lip, 1].mean(), out[152, 1]
    d_lip = target[lip, 1].mean() - y_lip
    closed = float(mouth_opening_iod(target)) < closed_gap
    d_chin = target[152, 1] - y_chin if closed else d_lip
    if y_nose < y_lip < y_chin:
        out[:, 1] += np.interp(out[:, 1], [y_nose, y_lip, y_chin], [0.0, d_lip, d_chin])
    return out


def reference_style(landmarks: np.ndarray, pose: np.ndarray, found: np.ndarray,
                    actor_neutral: np.ndarray | None = None, config: ManipulatorConfig | None = None,
                    name: str = "reference", neutral_frame: int | None = None) -> ReferenceStyle:
    """Measure a reference image or clip (already tracked) as an AU style.

    The reference is fitted with its own basis against its neutral: the frame ``neutral_frame`` (an index into
    the reference's frames) when given; else, with ``config.reference_neutral == "own"`` and a clip, its own
    neutral estimate; else the actor's neutral adapted to the reference's proportions (a single photo cannot
    show its own neutral; identity differences such as brow height then read as a little expression).

    Args:
        landmarks: RxPx3 frame pixels; pose: Rx3x4; found: R bool (the reference's track).
        actor_neutral: Px3 head-frame neutral of the actor being edited (for "adapted").
        config: defaults when None. name: the reference's file name for messages.
        neutral_frame: index of a neutral frame in the reference.

    Returns:
        the :class:`ReferenceStyle`.

    Raises:
        NoFaceError: the reference has no face.
        InvalidParameterError: a bad neutral frame; or a single photo with neither an actor neutral nor a
            neutral frame.
    """
    config = config or ManipulatorConfig()
    shapes = head_frame(landmarks, pose)
    ok = np.asarray(found, bool) & np.isfinite(shapes).all(axis=(1, 2))
    if not ok.any():
        raise NoFaceError(f"no face found in the reference {name}")
    x = shapes[ok]
    if neutral_frame is not None:
        if not 0 <= neutral_frame < len(shapes) or not ok[neutral_frame]:
            raise InvalidParameterError(f"reference neutral frame {neutral_frame} has no face in {name}")
        neutral, how = shapes[neutral_frame], f"frame {neutral_frame}"
    elif config.reference_neutral == "own" and len(x) > 1:
        neutral, how = estimate_neutral(x, config), "own"
    elif actor_neutral is not None:
        neutral, how = adapt_neutral(np.asarray(actor_neutral, np.float64), x, config.neutral_closed_gap), "adapted"
    elif len(x) > 1:
        neutral, how = estimate_neutral(x, config), "own"
    else:
        raise InvalidParameterError(f"the reference {name} is a single frame: give the actor's neutral or a "
                                    f"neutral frame to measure it against")
    basis = build_basis(neutral, config)
    upper = basis.upper.copy()
    upper[[AU_NAMES.index(n) for n in PERFORMANCE_AUS]] = 0.0     # a narrow eye is a style (AU7), not a blink
    acts = fit_activations(x, neutral, basis, config, upper=upper)
    if how == "adapted":
        # the lower face's emotion AUs are read against the reference's own relaxed face (its median with the
        # lower-face expression taken out, see still_neutral): against the actor's neutral, the two faces' lip
        # heights and mouth widths read as expression (a smile as a chin raise and a lip press); the speech
        # channels (a closed mouth is the actor's) and the upper face stay read against the adapted neutral, less
        # an allowance for the two faces' different brows and eyes (config.reference_identity_allowance)
        own = still_neutral(np.median(x, axis=0), config)
        own_basis = build_basis(own, config)
        lower = [AU_NAMES.index(n) for n in STILL_AUS if n not in SPEECH_AUS]
        acts[:, lower] = fit_activations(x, own, own_basis, config, upper=upper)[:, lower]
        face = [AU_NAMES.index(n) for n in UPPER_FACE_AUS]
        d = min(config.reference_identity_allowance, 0.9)
        a = acts[:, face]
        acts[:, face] = np.where(a >= 1.0, a, np.clip((a - d) / (1.0 - d), 0.0, None))   # 0 below d, 1 kept at 1
    style = np.median(acts, axis=0)
    return ReferenceStyle(style=style, activations=acts, name=str(name), neutral=how)


# ----------------------------------------------------------------------------------------------------------------
# The edit


def _fill_missing(act: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Linear interpolation over frames without a face (held at the ends), so smoothing sees a continuous
    signal."""
    if ok.all():
        return act
    t = np.arange(len(act))
    return np.stack([np.interp(t, t[ok], act[ok, k]) for k in range(act.shape[1])], axis=1)


def smooth_linear_pose(pose: np.ndarray, found: np.ndarray, sigma_frames: float) -> np.ndarray:
    """The pose with its linear part (``sR``) smoothed zero-phase over time, for mapping edit offsets into the
    frames: the offsets follow the head's motion but not the per-frame noise of the pose fit.

    Args:
        pose: Fx3x4; found: F bool; sigma_frames: Gaussian sigma in frames (0: unchanged).

    Returns:
        Fx3x4 (translation unchanged; NaN where not found).
    """
    out = np.array(pose, np.float64, copy=True)
    ok = np.asarray(found, bool) & np.isfinite(out).all(axis=(1, 2))
    if sigma_frames <= 0 or ok.sum() < 2:
        return out
    from ..filters import gaussian_filter1d

    lin = _fill_missing(out[:, :, :3].reshape(len(out), 9), ok)
    out[ok, :, :3] = gaussian_filter1d(lin, sigma_frames, axis=0)[ok].reshape(-1, 3, 3)
    return out


#: The brow's lower edge (right side; the left mirrors it): the brow-lid gap is measured from it down to each
#: lash-band point beneath it.
_GAP_BROW_R = (46, 53, 52, 65, 55)


def _brow_lid_pairs(nat: np.ndarray, margin: bool = False) -> list[np.ndarray]:
    """Per lash-band point under a brow (both sides, the right's five middle points first), the point weights
    whose sum is its brow-lid gap (the brow's lower edge above it minus the point, interpolated along the edge).
    ``margin``: the gap down to the lid margin point of the same column instead (the brow's edge is still taken
    above the lash-band point)."""
    from .expression import LASH_RING_R, UPPER_LID_R, mirrored

    pairs = []
    for brow, ring, lid in ((_GAP_BROW_R, LASH_RING_R, UPPER_LID_R),
                            (mirrored(_GAP_BROW_R), mirrored(LASH_RING_R), mirrored(UPPER_LID_R))):
        edge = sorted(brow, key=lambda p: nat[p, 0])
        xs = nat[edge, 0]
        for j, m in zip(ring[1:-1], lid[1:-1]):   # the lash-band points under the brow (not the corners)
            x = min(max(nat[j, 0], xs[0]), xs[-1])          # past the brow's head or tail: against that end
            i = min(int(np.searchsorted(xs, x)), len(xs) - 1)
            i0 = max(i - 1, 0)
            w = 0.0 if xs[i] == xs[i0] else (x - xs[i0]) / (xs[i] - xs[i0])
            weights = np.zeros(nat.shape[0])
            weights[edge[i0]] += 1.0 - w
            weights[edge[i]] += w
            weights[m if margin else j] -= 1.0
            pairs.append(weights)
    return pairs


def _brow_vertex_pairs(landmarks: np.ndarray, linear: np.ndarray, basis, delta: np.ndarray, found: np.ndarray
                       ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per point of a brow's lower edge (both sides), the gap weights (``(points, F x m weights)``, see
    :func:`_gap_guard`) whose sum is its height over the upper lid's margin beneath it, per frame: beneath where
    the activation offsets ``delta`` (F x K) put the point across the face (the lid margin interpolated there;
    past the lid's ends, that end). The brow lowerer draws the edge's middle down and inward, over the lid's
    higher middle (WDA angry, frame 20: 14 px inward, 1.2 px over the lid), which a fixed column misses."""
    from .expression import UPPER_LID_R, mirrored

    lm = np.nan_to_num(np.asarray(landmarks, np.float64)[..., :2])
    up = _face_up(lm)
    across = np.stack([up[:, 1], -up[:, 0]], axis=1)
    lin = np.nan_to_num(np.asarray(linear, np.float64)[:, :2, :3])
    d = np.where(found[:, None], delta, 0.0)
    pairs = []
    for brow, lid in ((_GAP_BROW_R, UPPER_LID_R), (mirrored(_GAP_BROW_R), mirrored(UPPER_LID_R))):
        fields = [basis.edit_fields[:, list(brow)],
                  basis.edit_fields[:, list(brow)] if basis.edit_fields_down is None else
                  basis.edit_fields_down[:, list(brow)]]
        head = (np.tensordot(np.maximum(d, 0.0), fields[0], axes=([-1], [0]))
                + np.tensordot(np.minimum(d, 0.0), fields[1], axes=([-1], [0])))              # F x B x 3
        moved = lm[:, list(brow)] + np.einsum("fij,fbj->fbi", lin, head)                  # F x B x 2
        a_b = np.einsum("fbx,fx->fb", moved, across)
        a_l = np.einsum("flx,fx->fl", lm[:, list(lid)], across)                          # F x L
        order = np.argsort(a_l, axis=1)
        a_sorted = np.take_along_axis(a_l, order, axis=1)
        rows = np.arange(len(lm))
        for j, b in enumerate(brow):
            x = np.clip(a_b[:, j], a_sorted[:, 0], a_sorted[:, -1])
            i = np.clip((a_sorted < x[:, None]).sum(axis=1), 1, len(lid) - 1)
            lo, hi = a_sorted[rows, i - 1], a_sorted[rows, i]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(hi > lo, (x - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)
            weights = np.zeros((len(lm), len(lid) + 1))
            weights[:, 0] = 1.0
            weights[rows, 1 + order[rows, i - 1]] -= 1.0 - t
            weights[rows, 1 + order[rows, i]] -= t
            pairs.append((np.array((b,) + tuple(lid)), weights))
    return pairs


#: Upper lid margin (middle), iris centre and iris contour points, right and left.
_LID_IRIS = ((159, 468, (469, 470, 471, 472)), (386, 473, (474, 475, 476, 477)))


def _face_up(lm: np.ndarray) -> np.ndarray:
    """F x 2: each frame's up direction of the face in the picture (chin to forehead, unit), from frame
    landmarks F x P x 2+."""
    up = lm[:, 10, :2] - lm[:, 152, :2]
    return up / np.maximum(np.linalg.norm(up, axis=1, keepdims=True), 1e-9)


def _damp_lid_exaggeration(pattern: np.ndarray, intensity: np.ndarray, names, share: float) -> np.ndarray:
    """``pattern`` (F x K, intensity x style) with the upper lid's raise (AU5 > 0) past intensity 1 grown at
    ``share`` of the rate (1: as the rest): at 1.5 surprise's and fear's lids opened into round doll's eyes, while
    the brows and mouth at 1.5 read strong, not grotesque. Intensities up to 1 are untouched, and so is a droop
    (sadness's heavy lids at 1.5 are held by ``lid_opening_kept``; damped, the guard's eroded share let d12's
    blink onsets close further)."""
    if share >= 1.0 or "AU5" not in names:
        return pattern
    inten = np.asarray(intensity, np.float64)
    k = list(names).index("AU5")
    over = (inten > 1.0) & (np.asarray(pattern)[:, k] > 0)
    if not over.any():
        return pattern
    out = np.array(pattern, copy=True)
    out[over, k] *= (1.0 + share * (inten[over] - 1.0)) / inten[over]
    return out


def _lid_clears_iris(landmarks: np.ndarray, linear: np.ndarray | None, basis, src: np.ndarray,
                     target: np.ndarray, pattern: np.ndarray, found: np.ndarray, fps: float,
                     config: ManipulatorConfig) -> np.ndarray:
    """Target activations whose upper lid raise (AU5, where the style raises the lids) is raised further, up to
    ``config.lid_iris_boost`` x the style's own, on frames where the raised lid would still cover the top of
    the iris: a raised upper lid reads as surprise or fear by the white it shows above the iris (on a talker
    with heavy lids AU5 1 left 43-46 % of the newly uncovered eye on the iris). The lid's middle point must
    clear the iris top by ``config.lid_iris_clearance`` x the iris radius, in the picture (the tracked iris,
    which the eye layer draws where it is). One amount for both eyes (the one that needs more), per frame,
    dilated and smoothed over time so it never pops."""
    from ..filters import maximum_filter1d
    from .rule import gaussian_kernel

    k5 = basis.names.index("AU5") if "AU5" in basis.names else None
    if (k5 is None or config.lid_iris_boost <= 0 or linear is None or landmarks.shape[1] < 478
            or not np.any((pattern[:, k5] > 0) & found)):
        return target
    lm = np.asarray(landmarks[..., :2], np.float64)
    up = _face_up(lm)
    lin = np.nan_to_num(np.asarray(linear, np.float64)[:, :2, :3])
    delta = np.where(found[:, None], target - src, 0.0)
    need = np.zeros(len(target))
    for lid, centre, ring in _LID_IRIS:
        radius = np.linalg.norm(lm[:, list(ring)] - lm[:, centre, None], axis=2).mean(axis=1)
        gap = np.einsum("fc,fc->f", lm[:, lid] - lm[:, centre], up) - radius       # > 0: the lid clears it
        moves = np.einsum("fij,kj,fi->fk", lin, basis.edit_fields[:, lid], up)      # F x K, px per activation
        now = gap + (delta * moves).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            extra = (config.lid_iris_clearance * radius - now) / moves[:, k5]
        ok = found & np.isfinite(extra) & (moves[:, k5] > 1e-6) & np.isfinite(radius)
        need = np.maximum(need, np.where(ok, extra, 0.0))
    cap = config.lid_iris_boost * np.clip(pattern[:, k5], 0.0, None)
    need = np.clip(need, 0.0, cap)
    if not need.any():
        return target
    kernel = gaussian_kernel(config.offset_smoothing * fps)
    radius = (len(kernel) - 1) // 2
    if radius:           # dilate (a neighbour's need holds), then smooth: a frame never gets less than it needs
        need = maximum_filter1d(need, 2 * radius + 1)
        need = np.convolve(np.pad(need, radius, mode="edge"), kernel, mode="valid")
    need = np.minimum(need, cap)            # never past a frame's own cap (0 where the style or intensity is 0)
    out = target.copy()
    out[:, k5] = np.where(found, target[:, k5] + need, target[:, k5])
    return out


#: The AUs that give way to keep an eye open (the lids' own: a lowered brow is the brow guard's business).
_LID_AUS = ("AU5", "AU6", "AU7")


def _lid_opening_pairs(nat: np.ndarray) -> list[np.ndarray]:
    """Per pair of lid margin points in the middle of each eye (both sides), the weights whose sum is the eye's
    opening there (upper margin minus lower margin, along the face's up direction)."""
    from .expression import LOWER_LID_R, UPPER_LID_R, mirrored

    pairs = []
    for upper, lower in ((UPPER_LID_R, LOWER_LID_R), (mirrored(UPPER_LID_R), mirrored(LOWER_LID_R))):
        for u, l in list(zip(upper, lower))[2:-2]:       # the middle of the eye, where the opening reads
            weights = np.zeros(nat.shape[0])
            weights[u] += 1.0
            weights[l] -= 1.0
            pairs.append(weights)
    return pairs


def _lid_pupil_pairs(points: int) -> list[np.ndarray]:
    """Per eye, the weights whose sum is the upper lid margin's height (middle) over the iris centre."""
    pairs = []
    for lid, centre, _ in _LID_IRIS:
        weights = np.zeros(points)
        weights[lid] += 1.0
        weights[centre] -= 1.0
        pairs.append(weights)
    return pairs


def _brow_lid_guard(landmarks: np.ndarray, linear: np.ndarray | None, basis, neutral: np.ndarray, src: np.ndarray,
                    target: np.ndarray, found: np.ndarray, fps: float, config: ManipulatorConfig,
                    pattern: np.ndarray | None = None) -> np.ndarray:
    """Target activations whose offsets that close the brow-lid gap (a lid raise, a brow lowering, a source's
    raised brow taken away) give way together where the brow would come closer to the lid margin than
    ``config.brow_margin_gap`` of the source's gap, or to the lash band than ``config.brow_lid_gap`` of it, after
    those that close the eye (a lid tightener, a cheek raise's
    squint, drooping lids, a source's raised lid taken away) where the upper lid would come closer to the iris
    centre than ``config.pupil_kept`` of the source's height over it (less on frames whose style droops the lids
    itself, ``pattern``'s AU5 < 0: sadness's heavy lid, see ``config.pupil_droop``), or the opening would fall below
    ``config.lid_opening_kept`` of the source's. See :func:`_gap_guard`."""
    nat = np.asarray(neutral, np.float64)
    # the eye first: a lid tightener that gives way lifts the lash band back toward the brow; the pupil before
    # the opening (an eye looking up shows its white below the iris: the opening is large, the pupil near the
    # lid), by the upper lid's own AU only (a tightener's or a squint's work is the lower lid's)
    k5 = basis.names.index("AU5") if "AU5" in basis.names else None
    droop = np.zeros(len(target)) if pattern is None or k5 is None or config.pupil_droop <= 0 else \
        np.clip(-np.asarray(pattern, np.float64)[:, k5] / config.pupil_droop, 0.0, 1.0)
    if landmarks.shape[1] >= 478 and (droop[found] < 1).any():
        guarded = _gap_guard(_lid_pupil_pairs(nat.shape[0]), config.pupil_kept, landmarks, linear, basis, src,
                             target, found & (droop < 1), fps, config, only=("AU5",))
        # a style's own droop lets the lid go, in proportion (a keyframed angry -> sad turn never pops)
        target = guarded + droop[:, None] * (target - guarded)
    target = _gap_guard(_lid_opening_pairs(nat), config.lid_opening_kept, landmarks, linear, basis, src, target,
                        found, fps, config, only=_LID_AUS)
    # the brow against the lid margin beneath it (the brow lowerer carries the lash band down with the brow, 5-8x
    # as far as the lid, so the band alone let a lowered brow pass the margin), then against the lash band
    pairs = _brow_lid_pairs(nat, margin=True) + \
        (_brow_vertex_pairs(landmarks, linear, basis, target - src, found) if linear is not None else [])
    target = _gap_guard(pairs, config.brow_margin_gap, landmarks, linear, basis, src, target, found, fps, config)
    return _gap_guard(_brow_lid_pairs(nat), config.brow_lid_gap, landmarks, linear, basis, src, target, found, fps,
                      config)


def _gap_guard(pairs: list, r: float, landmarks: np.ndarray, linear: np.ndarray | None, basis,
               src: np.ndarray, target: np.ndarray, found: np.ndarray, fps: float,
               config: ManipulatorConfig, only: tuple[str, ...] | None = None) -> np.ndarray:
    """Target activations whose emotion offsets that close any of the gaps ``pairs`` measure (point weights) give
    way together where a gap would fall below ``r`` of the source's, as the picture shows it (frame pixels, along
    the face's up direction: a pitched head's depth is in it), per frame. The landmarks are linear in the
    activations, so each frame's largest allowed share of those offsets is solved for exactly, then eroded and
    smoothed over time. ``only``: the AUs that may give way (default: every emotion AU that closes a gap). A pair
    is a P-vector of point weights, or ``(points, F x m weights)``: weights that change from frame to frame."""
    from .rule import gaussian_kernel

    if r <= 0 or not found.any() or linear is None:
        return target
    lm = np.nan_to_num(landmarks[..., :2])
    up = _face_up(lm)
    emotion = np.array([n in EMOTION_AUS and (only is None or n in only) for n in basis.names])
    fields = basis.edit_fields                                                # K x P x 3
    delta = np.where(found[:, None], target - src, 0.0)                      # F x K
    closing = np.zeros(len(basis.names), bool)                                # offsets that close a gap
    share = np.ones(len(target))
    lin = np.nan_to_num(np.asarray(linear, np.float64)[:, :2, :3])            # F x 2 x 3: head -> frame pixels
    for weights in pairs:
        if isinstance(weights, tuple):                                       # per-frame weights
            points, w = weights
            g0 = np.einsum("fmc,fm,fc->f", lm[:, points], w, up)
            head = np.einsum("kmc,fm->fkc", fields[:, points], w)           # F x K x 3
            moves_f = np.einsum("fij,fkj,fi->fk", lin, head, up)
            big = np.linalg.norm(head, axis=2) >= 0.01 * basis.iod           # F x K
        else:
            g0 = np.einsum("fpc,p,fc->f", lm, weights, up)                   # F: the source's gap, pixels
            head = np.einsum("kpc,p->kc", fields, weights)                   # K x 3: the gap's head-frame change
            moves_f = np.einsum("fij,kj,fi->fk", lin, head, up)              # F x K: its change in the picture
            big = (np.linalg.norm(head, axis=1) >= 0.01 * basis.iod)[None]
        g0 = np.where(found, g0, np.nan)
        per_au = delta * moves_f                                             # F x K: each AU's change of the gap
        # only AUs that act on the brow or the lid (a mouth AU's field is ~0 up here: it is never scaled)
        shut = emotion[None] & big & (per_au < 0)
        take = np.where(shut, per_au, 0.0).sum(1)                           # what the closing offsets take
        keep = per_au.sum(1) - take
        need = r * g0 - g0 - keep                                            # what they may take at most
        short = found & np.isfinite(g0) & (g0 > 1e-9) & (keep + take < need)
        with np.errstate(divide="ignore", invalid="ignore"):
            allowed = np.clip(np.nan_to_num(need / take, nan=1.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
        share = np.where(short, np.minimum(share, allowed), share)
        closing |= (shut & short[:, None]).any(axis=0)
    if (share == 1).all():
        return target
    kernel = gaussian_kernel(config.offset_smoothing * fps)
    radius = (len(kernel) - 1) // 2
    if radius:           # erode (a neighbour's need holds), then smooth: a frame never gets much more than it may
        padded = np.pad(share, radius, mode="edge")
        share = np.min(np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1), axis=1)
        share = np.convolve(np.pad(share, radius, mode="edge"), kernel, mode="valid")
    out = target.copy()
    # the AUs that close the gap anywhere in the shot share one factor per frame (no AU switches on and off)
    for k in np.nonzero(closing)[0]:
        out[:, k] = np.where(found, src[:, k] + share * (target[:, k] - src[:, k]), target[:, k])
    return out


def _lip_gaps(source: np.ndarray, target: np.ndarray, found: np.ndarray):
    """``(upper columns, lower columns, frames, up, source gaps, target gaps)`` of the found frames: each
    inner-lip column's gap (:data:`~.expression.INNER_LIP_PAIRS` order), upper inner lip over lower along the
    face's up direction (frame pixels; > 0: apart, < 0: through each other); ``frames`` None when none is found."""
    from .expression import LOWER_LIP_RINGS_R, UPPER_LIP_RINGS_R, _lip_columns

    upper_cols, lower_cols = _lip_columns(UPPER_LIP_RINGS_R), _lip_columns(LOWER_LIP_RINGS_R)
    ok = np.flatnonzero(found)
    if len(ok) == 0:
        return upper_cols, lower_cols, None, None, None, None
    inner_u, inner_l = [c[0] for c in upper_cols], [c[0] for c in lower_cols]
    src = np.asarray(source, np.float64)[ok, :, :2]
    dst = np.asarray(target, np.float64)[ok, :, :2]
    up = _face_up(src)
    gap_s = np.einsum("fcx,fx->fc", src[:, inner_u] - src[:, inner_l], up)             # F x C
    gap_t = np.einsum("fcx,fx->fc", dst[:, inner_u] - dst[:, inner_l], up)
    return upper_cols, lower_cols, ok, up, gap_s, gap_t


def _open_columns(target: np.ndarray, ok: np.ndarray, upper_cols, lower_cols, widen: np.ndarray,
                  up: np.ndarray) -> np.ndarray:
    """``target`` with each lip column's gap changed by ``widen`` (F x C pixels): its upper lip moves up and its
    lower lip down by half each, the column as one piece (a lip keeps its thickness)."""
    out = np.array(target, copy=True)
    for c, (ucol, lcol) in enumerate(zip(upper_cols, lower_cols)):
        half = 0.5 * widen[:, c, None, None] * up[:, None, :]                          # F x 1 x 2
        out[ok[:, None], list(ucol), :2] += half
        out[ok[:, None], list(lcol), :2] -= half
    return out


def lips_uncrossed(source: np.ndarray, target: np.ndarray, found: np.ndarray) -> np.ndarray:
    """``target`` (FxPx3 frame landmarks) with lips that never pass through each other further than the source's
    do: per inner-lip column (:data:`~.expression.INNER_LIP_PAIRS`), where the target's upper inner lip would lie
    below the lower one (along the face's up direction, frame pixels) by more than the source's does (or at all,
    where the source's lips are apart), the column's upper lip (inner edge to outer edge) moves up and its lower
    lip down by half the overlap each, so the lips meet. The AUs are linear and closing ones add up (a still's
    open smile or gasp taken away, its lips part and raised upper lip; anger's lip presser): the astronaut's angry
    crossed by 2 % IOD, d19's by up to 9 %, and the warp folded the red of both lips into a thin line. A target
    whose lips stay apart is returned unchanged (bit for bit: intensity 0 stays exact)."""
    upper_cols, lower_cols, ok, up, gap_s, gap_t = _lip_gaps(source, target, found)
    if ok is None:
        return target
    overlap = np.minimum(gap_s, 0.0) - gap_t                                            # > 0: pass through
    if not np.any(overlap > 0):
        return target
    return _open_columns(target, ok, upper_cols, lower_cols, np.maximum(overlap, 0.0), up)


def lips_sealed(source: np.ndarray, target: np.ndarray, found: np.ndarray, seal: tuple[float, float]) -> np.ndarray:
    """A still's lips that the edit brings together meet (``ManipulatorConfig.lip_seal``, ``seal``): per inner-lip
    column where the target's lips are apart but closer than the source's, by ``r`` = the target's gap over the
    source's, the gap is scaled by ``smoothstep((r - lo) / (hi - lo))`` (the column moves as :func:`lips_uncrossed`
    moves it). For a still only (one frame holds no speech; a talker's gap is his own): its estimated neutral
    keeps the parted lips a relaxed neutral may have (up to 0.04 IOD), so taking the astronaut's open smile away
    left a 2 px line of teeth between her lips (0.032 IOD) under neutral and sad. Continuous and monotonic in the
    intensity; nothing moves where nothing closes (intensity 0 stays exact; a smile kept or a mouth opened further
    are untouched) nor where the edit takes less than ``1 - hi`` of the opening away."""
    lo, hi = seal
    upper_cols, lower_cols, ok, up, gap_s, gap_t = _lip_gaps(source, target, found)
    if ok is None or hi <= 0:
        return target
    closing = (gap_t > 0) & (gap_s > gap_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(closing, gap_t / np.where(closing, gap_s, 1.0), 1.0)
    keep = protos.smoothstep((r - lo) / max(hi - lo, 1e-9)) if hi > lo else (r >= hi).astype(np.float64)
    more = np.where(closing, gap_t * (1.0 - keep), 0.0)                                # >= 0: how much more
    if not np.any(more > 0):
        return target
    return _open_columns(target, ok, upper_cols, lower_cols, -more, up)


def _head_offsets(basis, delta: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """FxPx3 head-frame displacement of activation offsets ``delta`` (FxK): the speech-safe fields (the source's
    lip gap kept), and where the speech rule lets the style move the mouth (``gate`` > 0) the emotion AUs part the
    lips as authored (a disgusted upper lip rises off the teeth) instead of keeping the source's lip gap."""
    head = basis.decode(delta, edit=True)
    lips_free = gate > 0
    if lips_free.any():
        emotion = np.array([n in EMOTION_AUS for n in AU_NAMES], np.float64)
        d = delta[lips_free] * emotion
        head[lips_free] += gate[lips_free, None, None] * (basis.decode(d) - basis.decode(d, edit=True))
    return head


def lips_kept_closed(source: np.ndarray, target: np.ndarray, taken: np.ndarray, found: np.ndarray,
                     closed: float) -> np.ndarray:
    """A still's closed lips are not parted by taking its expression away (``ManipulatorConfig.lip_kept_closed``,
    ``closed`` IOD): ``taken`` is the source moved by the edit's negative activation offsets alone (the AUs the
    target has less of). Per inner-lip column, what that motion opens is taken back where the source's lips touch
    (fully at a gap <= 0, fading to nothing at ``closed`` IOD), so only the style's own AUs part them (a sneer,
    a jaw). A relaxed pout's lips stay together: on d8 the chin raiser's, lip tightener's and upper lip raiser's
    linear fields, taken away, parted his sealed lips by 0.7-1.5 px (0.005-0.010 IOD) under neutral and happy,
    and a dark line showed between them. Columns that the removal closes, and lips already apart, are left as they
    are (intensity 0: unchanged)."""
    upper_cols, lower_cols, ok, up, gap_s, gap_t = _lip_gaps(source, target, found)
    if ok is None:
        return target
    gap_r = _lip_gaps(source, taken, found)[5]
    opens = np.maximum(gap_r - gap_s, 0.0)                                              # F x C pixels
    if not np.any(opens > 0):
        return target
    lm = np.asarray(source, np.float64)[ok]
    iod = np.linalg.norm(lm[:, topo.EYE_OUTER_LEFT, :2] - lm[:, topo.EYE_OUTER_RIGHT, :2], axis=-1)[:, None]
    touching = 1.0 - protos.smoothstep(gap_s / (closed * iod))
    return _open_columns(target, ok, upper_cols, lower_cols, -opens * touching, up)


def _brow_heights(lm: np.ndarray, up: np.ndarray, brow, points) -> np.ndarray:
    """F x C: the height (along ``up``, F x 2) of the brow's lower edge ``brow`` straight above each of ``points``
    (interpolated along the edge across the face; past the brow's head or tail, that end's)."""
    across = np.stack([up[:, 1], -up[:, 0]], axis=1)
    a_b = np.einsum("fpx,fx->fp", lm[:, list(brow)], across)
    h_b = np.einsum("fpx,fx->fp", lm[:, list(brow)], up)
    a_p = np.einsum("fpx,fx->fp", lm[:, list(points)], across)
    out = np.empty(a_p.shape)
    for f in range(len(lm)):
        order = np.argsort(a_b[f])
        out[f] = np.interp(a_p[f], a_b[f, order], h_b[f, order])
    return out


def brows_over_lids(source: np.ndarray, target: np.ndarray, found: np.ndarray, gap: float) -> np.ndarray:
    """``target`` (FxPx3 frame landmarks) with each brow lifted, as one piece (both its edges, along the face's up
    direction), as far as its lower edge must go to stay ``gap`` x the source's height over the upper lid's margin
    beneath it, per lid column (``ManipulatorConfig.brow_margin_gap``; the brow's edge straight above each column,
    interpolated across the face). The plan keeps that gap itself (:func:`_brow_lid_guard`); a renderer that moves
    the lids afterwards (a shut eye's lids pinned where the source has them) can open it again: d3's wink under
    angry put her brow 1.2 px under the pinned lid and the warp folded the lid skin between them into a stepped
    line. Where no brow comes closer than that the target is returned unchanged (the same object)."""
    from .expression import UPPER_LID_R, mirrored

    ok = np.flatnonzero(found)
    if not gap > 0 or len(ok) == 0:
        return target
    src = np.asarray(source, np.float64)[ok, :, :2]
    dst = np.asarray(target, np.float64)[ok, :, :2]
    up = _face_up(src)                                                                  # F x 2
    out = None
    for brow, lid, whole in ((_GAP_BROW_R, UPPER_LID_R, topo.RIGHT_BROW),
                             (mirrored(_GAP_BROW_R), mirrored(UPPER_LID_R), topo.LEFT_BROW)):
        cols = list(lid[1:-1])                                     # the margin under the brow (not the corners)
        g_s = _brow_heights(src, up, brow, cols) - np.einsum("fcx,fx->fc", src[:, cols], up)      # F x C px
        g_t = _brow_heights(dst, up, brow, cols) - np.einsum("fcx,fx->fc", dst[:, cols], up)
        need = np.where(g_s > 0, gap * g_s - g_t, 0.0).max(axis=1)                           # F
        rows = need > 0
        if not rows.any():
            continue
        if out is None:
            out = np.array(target, copy=True)
        out[ok[rows][:, None], list(whole), :2] += need[rows, None, None] * up[rows, None, :]
    return target if out is None else out


def lid_folds_held(source: np.ndarray, target: np.ndarray, found: np.ndarray, kept: tuple[float, float]
                   ) -> np.ndarray:
    """``target`` (FxPx3 frame landmarks) with the skin above each upper lid kept above the lid margin
    (``ManipulatorConfig.lid_fold_kept``, ``kept`` = (floor, knee)). The brow lowerer's field (AU4) moves that
    skin several times as far as the lid, and sadness's and anger's brows carried it through the lid on most
    faces (the warp then folded lid skin over the lashes). Per lid column, the crease ring's and the lash band's
    outer ring's height over the lid (along the face's up direction, frame pixels) is ``r`` x the source's; below
    ``knee`` it is raised toward ``floor + (knee - floor) exp((r - knee) / (knee - floor))`` (continuous with its
    slope at the knee, never under ``floor``), but never past an even squeeze of the whole band from the lid up to
    the brow's lower edge straight above the point (raised past the lowered brow, the ring folded the lid skin
    between them into a jagged line: WDA angry). The point moves along the face's up direction. Where no ring
    comes down past the knee the target is returned unchanged (bit for bit: intensity 0 stays exact)."""
    from .expression import LASH_RING_R, LID_CREASE_R, UPPER_LID_R, mirrored

    floor, knee = (float(v) for v in kept)
    ok = np.flatnonzero(found)
    if knee <= 0 or len(ok) == 0:
        return target
    src = np.asarray(source, np.float64)[ok, :, :2]
    dst = np.asarray(target, np.float64)[ok, :, :2]
    up = _face_up(src)                                                                  # F x 2
    span = max(knee - floor, 1e-9)
    out = None
    for brow, lid, crease, ring in ((_GAP_BROW_R, UPPER_LID_R, LID_CREASE_R, LASH_RING_R),
                                    (mirrored(_GAP_BROW_R), mirrored(UPPER_LID_R), mirrored(LID_CREASE_R),
                                     mirrored(LASH_RING_R))):
        lid_s = np.einsum("fcx,fx->fc", src[:, list(lid)], up)                         # F x C
        lid_t = np.einsum("fcx,fx->fc", dst[:, list(lid)], up)
        for skin in (crease, ring):
            g_s = np.einsum("fcx,fx->fc", src[:, list(skin)], up) - lid_s                # > 0: above the lid
            g_t = np.einsum("fcx,fx->fc", dst[:, list(skin)], up) - lid_t
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(g_s > 0, g_t / np.where(g_s > 0, g_s, 1.0), np.inf)
            low = r < knee
            if not low.any():
                continue
            # the band's even squeeze: the brow's height over the lid kept, straight above the point
            b_s = _brow_heights(src, up, brow, skin) - lid_s
            b_t = _brow_heights(dst, up, brow, skin) - lid_t
            with np.errstate(divide="ignore", invalid="ignore"):
                even = np.where(b_s > g_s, b_t / np.where(b_s > g_s, b_s, 1.0), np.inf)
            eased = floor + (knee - floor) * np.exp(np.minimum(r - knee, 0.0) / span)
            lift = np.where(low, (np.maximum(r, np.minimum(eased, even)) - r) * g_s, 0.0)   # F x C px, >= 0
            if out is None:
                out = np.array(target, copy=True)
            for c, point in enumerate(skin):
                rows = low[:, c]
                out[ok[rows], point, :2] += lift[rows, c, None] * up[rows]
    return target if out is None else out


def _still_speech(src: np.ndarray, intensity: np.ndarray, gate: np.ndarray, region: np.ndarray,
                  pattern: np.ndarray, config: ManipulatorConfig) -> np.ndarray:
    """FxK activation offsets a still's speech channels lose: a single frame holds no speech, so where the speech
    rule lets the style move the mouth (``gate``) the source's own lips part, jaw drop, press and pucker (what the
    fit reads above the actor's neutral) are taken away as the emotion AUs' sustained state is, by ``min(w, 1)``
    (the engine keeps them: on a clip they are the line being spoken) — less where a smile parted them and the
    target smiles too: the style's AU12 at intensity 1 (0..1), as far as the source smiles (its AU12 over
    ``engine.GRIN_AU12``): a grin's parted lips stay under ``happy`` and close under ``neutral`` or ``sad``; a gasp
    (no smile) stays under a style that opens the mouth itself (``surprised``, ``fearful``: at most the style's own
    value goes, which the engine adds back), and a wide one under every style, neutral too (:func:`_gasp_closes`).
    Zero at intensity 0."""
    from .rule import GRIN_AU12

    speech = np.array([n in SPEECH_AUS for n in AU_NAMES], np.float64)
    held = np.clip(np.nan_to_num(src), 0.0, None) * speech * region
    k = AU_NAMES.index("AU12")
    grin = protos.smoothstep(np.nan_to_num(src[:, k]) / GRIN_AU12)
    own = np.divide(pattern[:, k], intensity, out=np.zeros(len(pattern)), where=intensity > 0)   # the style's AU12
    smile = np.minimum(np.clip(own, 0.0, 1.0), grin)
    lose = (gate * np.clip(intensity, 0.0, 1.0) * (1.0 - smile))[:, None] * held
    # a style that opens a channel itself (surprise's jaw, its parted lips) never closes a mouth the still holds
    # open wider: the engine adds the style's value, so at most that much of the source's goes (d19's gasp under
    # surprised had closed to the style's standard jaw)
    opens = np.clip(pattern, 0.0, None) * speech * region * gate[:, None]
    return np.where(opens > 0, np.minimum(lose, opens), lose) * _gasp_closes(src, config)


def _gasp_closes(src: np.ndarray, config: ManipulatorConfig) -> np.ndarray:
    """Fx1 share of a still's speech channels a style takes away (``ManipulatorConfig.still_gasp_kept``): 1 for a
    jaw not held wide open, falling to 0 as the fitted jaw drop (AU26) passes through the range, under every style
    (neutral too: closed, d19's gasp left a pale seam along the raised jaw, pale wedges beside the nose and a
    smeared, jagged upper lip over a dark slit)."""
    lo, hi = (float(v) for v in config.still_gasp_kept)
    jaw = np.nan_to_num(src[:, AU_NAMES.index("AU26")])
    if not np.isfinite(lo):
        kept = np.zeros(len(src))
    elif hi > lo:
        kept = protos.smoothstep((jaw - lo) / (hi - lo))
    else:
        kept = (jaw >= lo).astype(np.float64)
    return (1.0 - kept)[:, None]


def _talking_jaw(shapes: np.ndarray, basis, neutral: np.ndarray, pattern: np.ndarray, gate: np.ndarray,
                 region: np.ndarray, found: np.ndarray, mode: str, config: ManipulatorConfig) -> np.ndarray:
    """FxK activation offsets: the style's jaw drop (and its smile) where the speech gate is shut, as a gain on the
    source's own mouth opening (see ``ManipulatorConfig.talking_jaw_gain`` and ``smile_lip_gain``): zero where
    the lips meet, the same share of every opening, so the speech (and its correlation with the source) is kept.
    Zero in ``preserve`` mode."""
    out = np.zeros_like(pattern)
    jaw, smile = AU_NAMES.index("AU26"), AU_NAMES.index("AU12")
    if mode != "auto" or (config.talking_jaw_gain <= 0 and config.smile_lip_gain <= 0) or not found.any():
        return out
    gain = (config.talking_jaw_gain * np.clip(pattern[:, jaw], 0.0, None)
            + config.smile_lip_gain * np.clip(pattern[:, smile], 0.0, None) * region[smile])
    gain = gain * (1.0 - gate) * region[jaw]
    if not np.any(gain > 0):
        return out
    travel = float(mouth_opening_iod(neutral + basis.fields[jaw]) - mouth_opening_iod(neutral))
    opening = np.zeros(len(pattern))
    opening[found] = mouth_opening_iod(shapes[found])
    out[:, jaw] = np.where(found, gain * opening / max(travel, 1e-6), 0.0)
    return out


@dataclass(frozen=True)
class TrackFit:
    """A track seen through the expression model (reusable across edits of the same shot).

    Attributes:
        model: the actor's :class:`~ned_fx.manipulation.expression.ExpressionModel`.
        shapes: FxPx3 head-frame shapes (NaN where no face).
        activations: FxK fitted AU activations (NaN where no face).
        neutral_source: how the neutral was obtained ("estimated", "given", "frame N").
    """

    model: ExpressionModel
    shapes: np.ndarray
    activations: np.ndarray
    neutral_source: str

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fit as plain arrays (an ``.npz``'s contents, no pickles; float64 kept: a fit read back plans the
        same edit, bit for bit), less the head-frame shapes: :func:`track_shapes` remakes them from the track,
        exactly (they were 95 % of the file: ~11 MB a 1,000-frame shot)."""
        basis = self.model.basis
        out = {"fit_neutral": self.model.neutral, "fit_names": np.array(basis.names, dtype=str),
               "fit_fields": basis.fields, "fit_edit_fields": basis.edit_fields, "fit_upper": basis.upper,
               "fit_iod": np.array(basis.iod, np.float64),
               "fit_activations": self.activations, "fit_neutral_source": np.array(self.neutral_source, dtype=str)}
        if basis.edit_fields_down is not None:
            out["fit_edit_fields_down"] = basis.edit_fields_down
        return out

    @classmethod
    def from_arrays(cls, d, shapes: np.ndarray) -> "TrackFit":
        """The fit :meth:`to_arrays` gave (``d``: a mapping of its arrays, e.g. an open ``.npz``) of the track whose
        :func:`track_shapes` are ``shapes``.

        Raises:
            KeyError: an array is missing. ValueError: ``shapes`` are not the fit's frames.
        """
        activations = np.asarray(d["fit_activations"])
        if np.shape(shapes)[:1] != activations.shape[:1]:
            raise ValueError(f"the fit has {activations.shape[0]} frames, the shapes {np.shape(shapes)[0]}")
        basis = ExpressionBasis(names=tuple(str(n) for n in d["fit_names"]), fields=np.asarray(d["fit_fields"]),
                                edit_fields=np.asarray(d["fit_edit_fields"]), upper=np.asarray(d["fit_upper"]),
                                iod=float(d["fit_iod"]),
                                edit_fields_down=np.asarray(d["fit_edit_fields_down"])
                                if "fit_edit_fields_down" in d else None)
        return cls(model=ExpressionModel(neutral=np.asarray(d["fit_neutral"]), basis=basis),
                   shapes=np.asarray(shapes), activations=activations, neutral_source=str(d["fit_neutral_source"]))


def track_shapes(track) -> np.ndarray:
    """FxPx3 head-frame shapes of a track's faces (NaN where no face): what its fit is made of."""
    shapes = head_frame(np.asarray(track.landmarks, np.float64), track.pose)
    shapes[~np.asarray(track.found, bool)] = np.nan
    return shapes


def fit_track(track, config: ManipulatorConfig | None = None, neutral: np.ndarray | None = None,
              neutral_frame: int | None = None) -> TrackFit:
    """Expression model and per-frame activations of a track.

    Args:
        track: anything with ``landmarks`` FxPx3, ``pose`` Fx3x4, ``found`` F, ``frame_numbers`` F (a
            :class:`~ned_fx.tracking.Track`).
        config: defaults when None. neutral: Px3 head-frame neutral to use (e.g. from another shot of the actor).
        neutral_frame: frame *number* whose face is the neutral.

    Returns:
        the :class:`TrackFit`.

    Raises:
        NoFaceError: the track has no face. InvalidParameterError: a neutral frame without a face / not in the
            shot, or a neutral of the wrong shape.
    """
    config = config or ManipulatorConfig()
    landmarks = np.asarray(track.landmarks, np.float64)
    found = np.asarray(track.found, bool)
    source = getattr(track, "source", "") or "the track"
    if not found.any():
        raise NoFaceError(f"{source} has no face in any frame; nothing to manipulate")
    shapes = track_shapes(track)
    if neutral is not None:
        neutral = np.asarray(neutral, np.float64)
        if neutral.shape != landmarks.shape[1:]:
            raise InvalidParameterError(f"the neutral is {neutral.shape}, the track's faces are "
                                        f"{landmarks.shape[1:]}")
        how = "given"
    elif neutral_frame is not None:
        numbers = [int(n) for n in track.frame_numbers]
        if int(neutral_frame) not in numbers:
            raise InvalidParameterError(f"neutral frame {neutral_frame} is not in the shot (frames "
                                        f"{numbers[0]}-{numbers[-1]})")
        i = numbers.index(int(neutral_frame))
        if not np.isfinite(shapes[i]).all():
            raise InvalidParameterError(f"neutral frame {neutral_frame} has no face")
        neutral, how = shapes[i].copy(), f"frame {neutral_frame}"
    else:
        neutral, how = estimate_neutral(shapes, config), "estimated"
    model = ExpressionModel.from_neutral(neutral, config)
    return TrackFit(model=model, shapes=shapes, activations=model.fit(shapes, config), neutral_source=how)


def manipulate(track, emotion: str | Mapping[str, float] | None = None, intensity: float = 1.0, *,
               keys: str | tuple | None = None, curve: tuple[np.ndarray, np.ndarray] | None = None,
               reference: ReferenceStyle | None = None, regions: str | Mapping[str, float] | None = None,
               speech: str | None = None, neutral: np.ndarray | None = None, neutral_frame: int | None = None,
               config: ManipulatorConfig | None = None, fit: TrackFit | None = None, engine=None) -> EditedTrack:
    """Change the actor's expression over a shot.

    Args:
        track: a :class:`~ned_fx.tracking.Track` or anything with ``landmarks``, ``pose``, ``found``,
            ``frame_numbers`` (and optionally ``fps``, ``width``, ``height``, ``face_id``, ``source``).
        emotion: an emotion or blend (``"happy"``, ``"happy:0.7,surprised:0.3"``, a mapping); ``"reference"``
            is the reference's style. Default: the reference when one is given, else ``"neutral"``.
        intensity: 0 (no change) .. ``config.max_intensity``; the constant intensity unless keys/curve.
        keys: keyframes (``"1001:happy:0.0,1020:happy:1.0"`` or parsed :class:`~.prototypes.Keyframe` s);
            overrides ``emotion``/``intensity``.
        curve: ``(frames, intensities)`` per-frame intensity curve for ``emotion`` (see
            :func:`~.prototypes.read_curve`).
        reference: a :class:`ReferenceStyle` (see :func:`reference_style`).
        regions: region control (see :func:`parse_regions`).
        speech: "auto" | "preserve" | "free" (default ``config.speech``).
        neutral: Px3 head-frame neutral of the actor; neutral_frame: frame number of a neutral face.
        config: defaults when None.
        fit: the track's :class:`TrackFit` when already computed (``neutral``/``neutral_frame`` are then unused).
        engine: a torch module with the :class:`~.engine.ManipulatorEngine` signature (e.g. a learned one; None:
            the rule in numpy, :class:`~.rule.ManipulatorRule`).

    Returns:
        the :class:`~ned_fx.manipulation.edited.EditedTrack`.

    Raises:
        InvalidParameterError: unknown emotion (valid ones listed), intensity out of range, bad regions,
            keys, speech mode or neutral frame; both keys and a curve.
        NoFaceError: the track has no face in any frame.
    """
    config = config or ManipulatorConfig()
    mode = config.speech if speech is None else str(speech).lower()
    if mode not in SPEECH_MODES:
        raise InvalidParameterError(f"unknown speech mode {speech!r}; speech modes: {', '.join(SPEECH_MODES)}")
    intensity = protos.check_intensity(intensity, config.max_intensity)
    has_ref = reference is not None
    ref_style = None if reference is None else np.asarray(reference.style, np.float64)
    if keys is not None and curve is not None:
        raise InvalidParameterError("give either keyframes or an intensity curve, not both")
    if emotion is None:
        emotion = protos.REFERENCE if has_ref else "neutral"
    blend = protos.parse_blend(emotion, allow_reference=has_ref)
    if isinstance(keys, str):
        keys = protos.parse_keys(keys, intensity, config.max_intensity, allow_reference=has_ref)
    region_w = parse_regions(regions)

    fit = fit or fit_track(track, config, neutral, neutral_frame)
    model, shapes, act, how = fit.model, fit.shapes, fit.activations, fit.neutral_source
    basis = model.basis
    found = np.isfinite(act).all(axis=1)
    frames = np.asarray(track.frame_numbers)
    f = len(frames)
    fps = float(getattr(track, "fps", 0.0) or 0.0)

    if keys:
        pattern, inten = protos.evaluate_keys(tuple(keys), frames, ref_style)
    else:
        style = protos.blend_style(blend, ref_style)
        if curve is not None:
            c_frames, c_values = curve
            inten = protos.curve_on_frames(c_frames, [protos.check_intensity(v, config.max_intensity)
                                                      for v in c_values], frames)
        else:
            inten = np.full(f, intensity)
        pattern = inten[:, None] * style[None]
    pattern = _damp_lid_exaggeration(pattern, inten, basis.names, config.lid_exaggeration)
    speaking = speech_frames(shapes, fps, config)
    share = float(np.mean(speaking[found])) if found.sum() >= 3 else 0.0
    talking = share >= config.talking_fraction
    gate = speech_gate(mode, talking, f, speaking, fps or config.default_fps, config.talking_window)
    region = region_vector(region_w)

    src = _fill_missing(act, found)
    if engine is None:          # the rule in numpy (no torch: a cached shot's edit never imports it)
        from .rule import ManipulatorRule

        target = ManipulatorRule(fps or config.default_fps, config.state_smoothing, config.offset_smoothing,
                                 config.swing_smoothing)(src, pattern, inten[:, None], gate[:, None], region)
    else:
        import torch

        engine = engine.double().eval()
        with torch.no_grad():
            target = engine(torch.from_numpy(src)[None], torch.from_numpy(pattern)[None],
                            torch.from_numpy(inten)[None, :, None], torch.from_numpy(gate)[None, :, None],
                            torch.from_numpy(region)).numpy()[0]
    if f == 1:
        # what the rule took away already (a held pout's press, HELD_LIP_AUS) is not taken away a second time: it
        # drove the press below the neutral's and parted d8's sealed lips by 2 px under every closed-mouth style
        target = target - np.maximum(_still_speech(src, inten, gate, region, pattern, config)
                                     - np.maximum(src - target, 0.0), 0.0)
    boost = _talking_jaw(shapes, basis, model.neutral, pattern, gate, region, found, mode, config)
    landmarks = np.asarray(track.landmarks, np.float64)
    linear = smooth_linear_pose(np.asarray(track.pose, np.float64), found,
                                config.pose_smoothing * (fps or config.default_fps)) if found.any() else None
    target = _lid_clears_iris(landmarks, linear, basis, src, target + boost, pattern, found,
                              fps or config.default_fps, config)
    target = _brow_lid_guard(landmarks, linear, basis, model.neutral, src, target, found,
                             fps or config.default_fps, config, pattern)
    delta = np.where(found[:, None], target - src, 0.0)
    target_lm = np.full_like(landmarks, np.nan)
    if found.any():
        head = _head_offsets(basis, delta[found], gate[found])
        offsets = frame_offsets(head, linear[found])
        target_lm[found] = landmarks[found] + offsets
        if f == 1 and config.lip_kept_closed > 0:
            taken = np.array(landmarks, copy=True)        # the source moved by what the edit takes away alone
            taken[found] += frame_offsets(_head_offsets(basis, np.minimum(delta[found], 0.0), gate[found]),
                                          linear[found])
            target_lm = lips_kept_closed(landmarks, target_lm, taken, found, config.lip_kept_closed)
        target_lm = lips_uncrossed(landmarks, target_lm, found)
        target_lm = lid_folds_held(landmarks, target_lm, found, config.lid_fold_kept)
        if f == 1:
            target_lm = lips_sealed(landmarks, target_lm, found, config.lip_seal)
    au_target = np.where(found[:, None], target, np.nan)

    params = {
        "emotion": protos.describe_blend(blend) if not keys else None,
        "keys": [{"frame": k.frame, "emotion": protos.describe_blend(dict(k.blend)), "intensity": k.intensity}
                 for k in keys] if keys else None,
        "curve": None if curve is None else [[float(a), float(b)] for a, b in zip(*curve)],
        "intensity": intensity if not keys and curve is None else None,
        "regions": region_w, "speech": mode, "talking_share": round(share, 4), "talking": bool(talking),
        "reference": None if reference is None else {"name": reference.name, "neutral": reference.neutral,
                                                     "style": {n: round(float(v), 4) for n, v in
                                                               zip(AU_NAMES, reference.style) if v > 1e-3}},
        "neutral": how, "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "ned_fx": __version__,
    }
    return EditedTrack(
        source_landmarks=landmarks, target_landmarks=target_lm, found=found, frame_numbers=frames,
        pose=np.asarray(track.pose, np.float64), au_names=AU_NAMES, au_source=act, au_target=au_target,
        neutral=model.neutral, basis=basis.edit_fields, basis_down=basis.edit_fields_down, intensity=inten, style=pattern, speech_gate=gate,
        region_weights=region, width=int(getattr(track, "width", 0) or 0),
        height=int(getattr(track, "height", 0) or 0), fps=fps, face_id=int(getattr(track, "face_id", 0) or 0),
        source=str(getattr(track, "source", "") or ""), params=params)
