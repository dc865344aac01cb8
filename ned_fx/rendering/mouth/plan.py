"""The temporal choice of interior: which bank entry each frame of the shot shows (Viterbi with a switch cost,
cross-faded at the switches), computed once per shot."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InvalidParameterError
from . import shape as S
from .bank import MouthBank
from .config import MouthConfig

_KEYS = ("mouth_plan_first", "mouth_plan_second", "mouth_plan_weight")
#: optional (plans stored before it existed lack it: the renderer then measures each frame alone)
_JAW = "mouth_plan_jaw"


@dataclass(frozen=True)
class MouthPlan:
    """Per frame of the shot: ``first`` and ``second`` bank entries (-1: none) shown as
    ``(1 - weight) * first + weight * second`` (``second`` only during a cross-fade).

    Attributes:
        first: F int32; second: F int32; weight: F float32 in 0..1.
        jaw: F float32 in 0..1 or None: how far the target opens beyond the shown interior as a jaw drop (the
            ``jaw_ratio_*`` ramp of the target's central opening over the entries'), smoothed over time so that a
            teeth-together interior is not opened on one frame and stretched on the next.
    """

    first: np.ndarray
    second: np.ndarray
    weight: np.ndarray
    jaw: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.first.shape[0])

    def entries(self, index: int) -> list[tuple[int, float]]:
        """``[(bank entry, weight), ...]`` shown at frame ``index`` (empty: none planned -> synthetic)."""
        if not 0 <= index < len(self):
            return []
        a, b, w = int(self.first[index]), int(self.second[index]), float(self.weight[index])
        if a < 0:
            return []
        if b < 0 or b == a or w <= 0.0:
            return [(a, 1.0)]
        if w >= 1.0:
            return [(b, 1.0)]
        return [(a, 1.0 - w), (b, w)]

    def switches(self) -> int:
        """How many times the dominant entry changes between consecutive planned frames."""
        dom = np.where(self.weight >= 0.5, np.where(self.second >= 0, self.second, self.first), self.first)
        dom = dom[dom >= 0]
        return int((dom[1:] != dom[:-1]).sum())

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = dict(zip(_KEYS, (self.first, self.second, self.weight)))
        if self.jaw is not None:
            out[_JAW] = self.jaw
        return out

    @classmethod
    def from_arrays(cls, arrays) -> "MouthPlan":
        missing = [k for k in _KEYS if k not in arrays]
        if missing:
            raise InvalidParameterError(f"not a mouth plan: {', '.join(missing)} missing")
        a, b, w = (np.asarray(arrays[k]) for k in _KEYS)
        if a.ndim != 1 or b.shape != a.shape or w.shape != a.shape:
            raise InvalidParameterError(f"mouth plan arrays disagree: {a.shape}, {b.shape}, {w.shape}")
        jaw = np.asarray(arrays[_JAW], np.float32) if _JAW in arrays else None
        if jaw is not None and jaw.shape != a.shape:
            raise InvalidParameterError(f"mouth plan jaw is {jaw.shape}, expected {a.shape}")
        return cls(a.astype(np.int32), b.astype(np.int32), w.astype(np.float32), jaw)


def match_costs(bank: MouthBank, src: np.ndarray, dst: np.ndarray, config: MouthConfig,
                frames: np.ndarray | None = None) -> np.ndarray:
    """FxN cost of showing bank entry n at frame f (inf where not allowed or no target). ``frames``: the shot
    index of each row (default 0..F-1).

    Shape distance (RMS over the 20 normalised inner-lip points) plus the weighted shortfall of the entry's
    opening below the target's, both in ``match_sigma`` units; a frame's own interior is never used when that
    frame's source mouth is closed.
    """
    f, n = len(dst), len(bank)
    pts = S.inner_points(dst)
    ok = np.isfinite(pts).all(axis=(1, 2))
    cost = np.full((f, n), np.inf)
    if n == 0 or not ok.any():
        return cost
    shp = S.normalised_shape(pts[ok])                                    # Mx20x2
    width = S.mouth_width(pts[ok])
    opening = S.gaps(pts[ok]) / np.maximum(width, 1e-9)[:, None]         # Mx11
    sig = config.match_sigma
    dist = np.sqrt(((shp[:, None] - bank.shapes[None].astype(np.float64)) ** 2).sum(-1).mean(-1)) / sig
    diff = opening[:, None, S.INNER_PAIRS] - bank.openings[None, :, S.INNER_PAIRS]
    short = np.clip(diff, 0.0, None).mean(-1)
    over = np.clip(-diff, 0.0, None).mean(-1)
    cost[ok] = dist + (config.under_open_weight * short + config.over_open_weight * over) / sig
    # never a frame's own interior where its source shows none (the bank holds only open frames; explicit anyway)
    spts = S.inner_points(src)
    sw = S.mouth_width(spts)
    src_open = S.gaps(spts)[:, 4:7].mean(-1) >= np.maximum(config.min_open * sw, config.min_open_px)
    rows = np.arange(f) if frames is None else np.asarray(frames, dtype=np.int64).reshape(f)
    for k, t in enumerate(bank.index):
        hit = np.flatnonzero((rows == t) & ~src_open)
        cost[hit, k] = np.inf
    return cost


def _viterbi(cost: np.ndarray, switch: float) -> np.ndarray:
    """Least total cost path through ``cost`` (TxN, finite rows) with ``switch`` per change: T ints."""
    t_len, n = cost.shape
    acc = cost[0].copy()
    back = np.zeros((t_len, n), np.int64)
    for t in range(1, t_len):
        best = int(np.argmin(acc))
        jump = acc[best] + switch
        stay = acc <= jump
        back[t] = np.where(stay, np.arange(n), best)
        acc = np.where(stay, acc, jump) + cost[t]
    path = np.empty(t_len, np.int64)
    path[-1] = int(np.argmin(acc))
    for t in range(t_len - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def plan_mouth(bank: MouthBank, src: np.ndarray, dst: np.ndarray, found: np.ndarray,
               config: MouthConfig | None = None) -> MouthPlan:
    """Choose, for every frame of the shot, the interior(s) that best match the TARGET inner-lip shape,
    temporally consistent: a Viterbi path with a cost per switch over each run of frames with a face, each switch
    cross-faded over ``crossfade`` frames.

    Args:
        bank: the shot's :class:`MouthBank` (may be empty: then nothing is planned and the renderer draws a
            synthetic interior).
        src, dst: FxPx3 source and target landmarks (any consistent pixel frame); found: F bool.
        config: a :class:`MouthConfig` (defaults when None).

    Raises:
        InvalidParameterError: shapes disagree.
    """
    config = config or MouthConfig()
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    found = np.asarray(found, dtype=bool)
    if src.ndim != 3 or dst.shape != src.shape or found.shape != (src.shape[0],) or src.shape[1] < 468:
        raise InvalidParameterError(f"src and dst must be FxPx3 (P >= 468) and found F, got {src.shape}, "
                                    f"{dst.shape} and {found.shape}")
    f = len(found)
    first = np.full(f, -1, np.int32)
    second = np.full(f, -1, np.int32)
    weight = np.zeros(f, np.float32)
    if len(bank) == 0 or f == 0:
        return MouthPlan(first, second, weight)
    cost = match_costs(bank, src, dst, config)
    usable = found & np.isfinite(cost).any(1)
    # runs of consecutive usable frames
    edges = np.flatnonzero(np.diff(np.concatenate([[0], usable.astype(np.int8), [0]])))
    h = config.crossfade
    for start, stop in zip(edges[::2], edges[1::2]):
        c = cost[start:stop]
        c = np.where(np.isfinite(c), c, 1e9)
        path = _viterbi(c, config.switch_cost)
        first[start:stop] = path
        switches = np.flatnonzero(path[1:] != path[:-1]) + 1           # run-relative frames where a new one starts
        if h < 2 or not len(switches):
            continue
        bounds = np.concatenate([[0], switches, [stop - start]])
        for j, s in enumerate(switches):
            lo = max(s - h // 2, (bounds[j] + s + 1) // 2)
            hi = min(s + (h - h // 2), (s + bounds[j + 2]) // 2)
            if hi - lo < 2:
                continue
            frames = np.arange(lo, hi)
            # (never blending in an entry at a frame where it is not allowed: a frame's own closed mouth)
            ok = (c[frames, path[s - 1]] < 1e9) & (c[frames, path[s]] < 1e9)
            frames, ramp = frames[ok], ((frames - lo + 0.5) / (hi - lo))[ok]
            first[start + frames] = path[s - 1]
            second[start + frames] = path[s]
            weight[start + frames] = ramp
    plan = MouthPlan(first, second, weight)
    return MouthPlan(first, second, weight, jaw_ramp(bank, plan, dst, usable, config))


def jaw_ramp(bank: MouthBank, plan: MouthPlan, dst: np.ndarray, usable: np.ndarray,
             config: MouthConfig) -> np.ndarray:
    """Per frame, 0..1: the target's central opening over the planned entries' (both x the inter-ocular
    distance) through the ``jaw_ratio_*`` ramp, then over each run of usable frames the least of every 5 frames
    (a lone frame never opens) averaged over 5 (F float32; 0 where nothing is planned)."""
    from ... import topology as T

    f = len(plan)
    raw = np.zeros(f)
    pts = S.inner_points(dst)
    for t in np.flatnonzero(usable):
        entries = plan.entries(int(t))
        if not entries or not np.isfinite(pts[t]).all():
            continue
        iod = max(float(T.inter_ocular(dst[t])), 1e-6)
        target = float(S.gaps(pts[t])[4:7].mean()) / iod
        own = sum(w * float(bank.openings[k, 4:7].mean()) * float(bank.widths[k]) for k, w in entries)
        x = np.clip((target / max(own, 1e-6) - config.jaw_ratio_start)
                    / (config.jaw_ratio_full - config.jaw_ratio_start), 0.0, 1.0)
        raw[t] = x * x * (3.0 - 2.0 * x)
    out = np.zeros(f, np.float32)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], usable.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        r = raw[start:stop]
        pad = np.pad(r, 2, mode="edge")
        low = np.lib.stride_tricks.sliding_window_view(pad, 5).min(1)
        out[start:stop] = np.lib.stride_tricks.sliding_window_view(np.pad(low, 2, mode="edge"), 5).mean(1)
    return out
