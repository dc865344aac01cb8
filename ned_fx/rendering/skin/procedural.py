"""Procedural fold shading: where each fold of a new expression lies (from the target landmarks), how deep it is
(from the change of its AUs), and the multiplicative luminance map that shades it over the warped skin.

Geometry lives in a *face frame* per frame: origin between the outer eye corners (33, 263), ``u`` along them
toward image right, ``v`` perpendicular toward the chin, both in inter-ocular distances (IOD). Each fold is one or
more smooth curves through landmark-anchored control points (a blend of landmarks plus a small face-frame
offset), mirrored for the two sides of the face. A crease is drawn as an anti-aliased polyline whose value
follows its depth along its length, then blurred with a Gaussian of the crease's width: a soft, narrow, faded
line in a log-luminance map; its highlight is the same curve pushed to its upper/outer side and blurred wider.
Each blur runs only where it can reach (strokes far apart on canvases of their own, the row pass only on rows
with strokes), with the values of one whole-canvas ``cv2.GaussianBlur`` bit for bit (see ``_TAIL``).

Nothing here reads pixels except :func:`add_softening` (which lifts the mid-frequency darkening of an existing fold
where a fold's drive is negative, e.g. a smile neutralised), :func:`add_glabella_relax` and :func:`add_chin_relax`
(which flatten the furrows of a frown and the chin of a pout taken away) and :func:`add_socket_lift` (which lifts
the shadow of an eye socket the warp stretched, e.g. sadness's raised inner brows over lowered lids).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..sampling import smoothstep
from .config import SkinConfig

# Landmark pairs (subject's right -> left) for the points the folds use (the mesh's mirror correspondence).
_MIRROR = {129: 358, 203: 423, 206: 426, 216: 436, 212: 432, 61: 291, 55: 285, 107: 336, 70: 300, 63: 293,
           105: 334, 66: 296, 54: 284, 103: 332, 67: 297, 109: 338, 205: 425, 50: 280, 101: 330, 36: 266,
           33: 263, 130: 359, 188: 412, 174: 399, 196: 419, 3: 248, 57: 287, 8: 8, 9: 9, 168: 168, 6: 6, 10: 10,
           151: 151, 46: 276, 53: 283, 52: 282, 65: 295}
_MIRROR.update({v: k for k, v in list(_MIRROR.items())})

#: Right brow upper edge (outer -> inner) and the top of the mesh above the brows (outer -> midline).
_BROW_R = (70, 63, 105, 66, 107)
#: The narrowest crease drawn (pixels, Gaussian sigma).
_MIN_SIGMA = 0.85
_TOP_R = (54, 103, 67, 109)


@dataclass(frozen=True)
class Crease:
    """One crease of one frame, in region pixels.

    Attributes:
        fold: the fold group it belongs to; kind: ``"fine"``, ``"nasolabial"`` (which widths apply).
        points: Nx2 the crease's course; depth: N log-luminance darkening along it (>= 0), or the softening
            weight where ``soften`` is true; side: Nx2 unit normals toward its highlight side.
    """

    fold: str
    kind: str
    points: np.ndarray
    depth: np.ndarray
    side: np.ndarray
    soften: bool = False


@dataclass(frozen=True)
class FaceFrame:
    origin: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    iod: float

    def to_px(self, uv: np.ndarray) -> np.ndarray:
        uv = np.asarray(uv, np.float64)
        return self.origin + (uv[..., :1] * self.ex + uv[..., 1:2] * self.ey) * self.iod

    def to_uv(self, xy: np.ndarray) -> np.ndarray:
        d = (np.asarray(xy, np.float64)[..., :2] - self.origin) / self.iod
        return np.stack([d @ self.ex, d @ self.ey], axis=-1)


def face_frame(landmarks: np.ndarray) -> FaceFrame | None:
    """The face frame of Px3 landmarks (None when the eye corners are missing or coincide)."""
    a, b = np.asarray(landmarks[33, :2], np.float64), np.asarray(landmarks[263, :2], np.float64)
    iod = float(np.linalg.norm(b - a))
    if not np.isfinite(iod) or iod < 4.0:
        return None
    ex = (b - a) / iod
    return FaceFrame((a + b) / 2, ex, np.array([-ex[1], ex[0]]), iod)


def fold_drives(au_names, au_src, au_dst, config: SkinConfig) -> dict[str, float]:
    """``{fold: drive}``: per fold group, the weighted sum of the AU changes (target - source) that make it,
    clipped to ``±max_drive``; changes below ``min_change`` count as none. Empty when nothing changes."""
    src = np.nan_to_num(np.asarray(au_src, np.float64).reshape(-1))
    dst = np.nan_to_num(np.asarray(au_dst, np.float64).reshape(-1))
    delta = dst - src
    delta[np.abs(delta) < config.min_change] = 0.0
    if not delta.any() or config.strength == 0:
        return {}
    index = {str(n): i for i, n in enumerate(au_names)}
    dl = delta.tolist()         # plain floats: the same double arithmetic as numpy's scalars
    out = {}
    for fold, weights in _drive_weights(config.drives):
        d = sum(w * dl[index[au]] for au, w in weights if au in index)
        d = min(max(d, -config.max_drive), config.max_drive)
        if abs(d) > 1e-6:
            out[fold] = d
    return out


@functools.lru_cache(maxsize=8)
def _drive_weights(drives: tuple) -> tuple:
    """``((fold, ((AU, weight), ...)), ...)`` in the order of :meth:`SkinConfig.drive_weights`."""
    return tuple((fold, tuple(dict(weights).items())) for fold, weights in drives)


# ---------------------------------------------------------------------------------------------------------------
# Curves

def _smooth(ctrl: np.ndarray, n: int) -> np.ndarray:
    """``n`` points of the Catmull-Rom curve through the control points (uniform in its parameter)."""
    return _catmull_rom(len(ctrl), n) @ np.asarray(ctrl, np.float64)


@functools.lru_cache(maxsize=64)
def _catmull_rom(m: int, n: int) -> np.ndarray:
    """The n x m matrix taking m control points to n points of their Catmull-Rom curve (ends extrapolated)."""
    ext = np.zeros((m + 2, m))
    ext[1:-1] = np.eye(m)
    ext[0] = 2 * ext[1] - ext[2]
    ext[-1] = 2 * ext[-2] - ext[-3]
    out = np.zeros((n, m))
    for j, x in enumerate(np.linspace(0, m - 1, n)):
        i = min(int(x), m - 2)
        t = x - i
        p0, p1, p2, p3 = ext[i], ext[i + 1], ext[i + 2], ext[i + 3]
        out[j] = 0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                        + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3)
    out.setflags(write=False)
    return out


def _wobble(n: int, seed: int, amount: float) -> np.ndarray:
    """A fixed smooth irregularity along a curve (n values around 0, amplitude about ``amount``)."""
    return amount * _wobble_shape(n, seed)


@functools.lru_cache(maxsize=256)
def _wobble_shape(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = np.linspace(0, 1, n)
    f1, f2 = rng.uniform(0.8, 1.6), rng.uniform(2.2, 3.4)
    ph = rng.uniform(0, 2 * np.pi, 2)
    w = 0.6 * np.sin(2 * np.pi * f1 * s + ph[0]) + 0.4 * np.sin(2 * np.pi * f2 * s + ph[1])
    w.setflags(write=False)
    return w


@functools.lru_cache(maxsize=256)
def _fade(n: int, rise: float, fall: float, peak_at: float | None = None) -> np.ndarray:
    """A depth profile along a crease: smooth ramps over the first ``rise`` and last ``fall`` of its length."""
    s = np.linspace(0, 1, n)
    a = np.clip(s / max(rise, 1e-6), 0, 1)
    b = np.clip((1 - s) / max(fall, 1e-6), 0, 1)
    prof = (a * a * (3 - 2 * a)) * (b * b * (3 - 2 * b))
    if peak_at is not None:
        prof *= 0.75 + 0.25 * np.exp(-0.5 * ((s - peak_at) / 0.3) ** 2)
    prof.setflags(write=False)
    return prof


@functools.lru_cache(maxsize=16)
def _forehead_line(nl: int, j: int):
    """The frame-independent parts of forehead line ``j`` of ``nl``: its height between brows and hairline
    ``t``, the face-frame abscissae of its control points ``u``, its point count ``n``, the AU1 (centre) and AU2
    (sides) profiles along it, its fade, its depth scale and its fixed shallower stretch (a line is rarely
    whole)."""
    t = 0.3 + 0.55 * j / max(nl - 1, 1)
    half = 0.5 - 0.06 * abs(j - (nl - 1) / 2)
    u = np.linspace(-half, half, 9)
    n = 36
    us = np.linspace(-half, half, n)
    g_in = np.exp(-0.5 * (us / 0.2) ** 2)
    g_out = np.exp(-0.5 * ((np.abs(us) - 0.33) / 0.13) ** 2)
    rng = np.random.default_rng(91 + j)
    at, wide = rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.12)
    gap = 1.0 - 0.7 * np.exp(-0.5 * ((np.linspace(0, 1, n) - at) / wide) ** 2)
    for a in (u, g_in, g_out, gap):
        a.setflags(write=False)
    return t, u, n, g_in, g_out, _fade(n, 0.12, 0.12), 1.0 - 0.15 * abs(j - (nl - 1) / 2), gap


class _Builder:
    """Collects the creases of one frame."""

    def __init__(self, lm: np.ndarray, frame: FaceFrame, config: SkinConfig):
        self.lm, self.f, self.c = lm, frame, config
        self._pending: list[tuple] = []
        # the frame in plain floats (the same double arithmetic as numpy's, without its per-call cost)
        self._xy = lm[:, :2].tolist()
        self._ex, self._ey, self._iod = frame.ex.tolist(), frame.ey.tolist(), frame.iod

    def anchor(self, spec, mirror: bool) -> np.ndarray:
        """A control point: ``((landmark, weight), ...), (du, dv)`` -> pixels (mirrored for the left side)."""
        return np.array(self._anchor(spec, mirror))

    def _anchor(self, spec, mirror: bool) -> tuple[float, float]:
        blend, (du, dv) = spec
        px = py = wsum = 0.0
        xy = self._xy
        for idx, w in blend:
            p = xy[_MIRROR[idx] if mirror else idx]
            px += w * p[0]
            py += w * p[1]
            wsum += w
        px /= wsum
        py /= wsum
        du = -du if mirror else du
        (ex0, ex1), (ey0, ey1), iod = self._ex, self._ey, self._iod
        return px + (ex0 * du + ey0 * dv) * iod, py + (ex1 * du + ey1 * dv) * iod

    def ctrl(self, specs, mirror: bool) -> np.ndarray:
        """Control points (Mx2) of anchor specs."""
        return np.array([self._anchor(spec, mirror) for spec in specs])

    def add(self, fold: str, kind: str, ctrl_px: np.ndarray, drive: float, toward_uv, profile: np.ndarray,
            seed: int, n: int = 24) -> None:
        if abs(drive) < 1e-6:
            return
        t0, t1 = toward_uv
        (ex0, ex1), (ey0, ey1) = self._ex, self._ey
        self._pending.append((fold, kind, _smooth(ctrl_px, n), drive, t0 * ex0 + t1 * ey0, t0 * ex1 + t1 * ey1,
                              profile, seed, n))

    def finish(self) -> list[Crease]:
        """The creases added: unit normals of each curve (flipped toward its highlight side), wobble and depth,
        computed for all of them at once (element by element the same arithmetic as crease by crease)."""
        items = self._pending
        if not items:
            return []
        ns = [it[8] for it in items]
        pts = np.concatenate([it[2] for it in items])
        ends = np.cumsum(ns)
        starts = ends - ns
        tan = np.empty_like(pts)               # np.gradient along each curve
        np.subtract(pts[2:], pts[:-2], out=tan[1:-1])
        tan[1:-1] /= 2.0
        tan[starts] = pts[starts + 1] - pts[starts]
        tan[ends - 1] = pts[ends - 1] - pts[ends - 2]
        sq = tan * tan                         # np.linalg.norm's sum of squares, in its order
        tan /= np.maximum(np.sqrt(sq[:, 0] + sq[:, 1]), 1e-9)[:, None]
        side = np.empty_like(tan)
        np.negative(tan[:, 1], out=side[:, 0])
        side[:, 1] = tan[:, 0]
        sign = np.sign(side[:, 0] * np.repeat([it[4] for it in items], ns)
                       + side[:, 1] * np.repeat([it[5] for it in items], ns))
        sign[sign == 0] = 1
        side *= sign[:, None]
        wob = self.c.wobble * self.f.iod
        if wob > 0:
            pts = pts + side * np.concatenate([_wobble(it[8], it[7], wob) for it in items])[:, None]
        if self.c.wobble > 0:
            var = 1.0 + np.concatenate([_wobble(it[8], it[7] + 7, 0.3) for it in items])
        else:
            var = 1.0
        depth = np.repeat([abs(it[3]) for it in items], ns) * np.concatenate([it[6] for it in items]) * var
        return [Crease(it[0], it[1], pts[a:b], depth[a:b], side[a:b], soften=it[3] < 0)
                for it, a, b in zip(items, starts.tolist(), ends.tolist())]


def _descending(ctrl: np.ndarray, frame: FaceFrame, slope: float) -> np.ndarray:
    """Control points (Mx2 pixels) each moved down the face (never up) until it lies at least ``slope`` times its
    outward step lower than the point before it (the first stays)."""
    rel = ctrl - ctrl[0]
    u, v = rel @ frame.ex, rel @ frame.ey
    for i in range(1, len(v)):
        v[i] = max(v[i], v[i - 1] + slope * abs(u[i] - u[i - 1]))
    return ctrl[0] + u[:, None] * frame.ex[None] + v[:, None] * frame.ey[None]


#: the marionette line's depth at a drive of 1, as a share of ``SkinConfig.nasolabial_depth`` (a shallower line than
#: the smile's fold; :func:`~.evidence.pout_activation` reads the picture's lines in this unit)
MARIONETTE_SHARE = 0.6


def build_creases(landmarks: np.ndarray, drives: dict[str, float], config: SkinConfig) -> list[Crease]:
    """The creases of one frame from its target landmarks (region pixels) and fold drives."""
    lm = np.asarray(landmarks, np.float64)
    frame = face_frame(lm)
    if frame is None or not drives or not np.isfinite(lm[:468, :2]).all():
        return []
    b = _Builder(lm, frame, config)
    g = drives.get
    for mirror, sgn, seed0 in ((False, -1.0, 11), (True, 1.0, 31)):
        out = (sgn, 0.0)          # lateral, in the face frame
        A = lambda spec: b.anchor(spec, mirror)  # noqa: E731
        C = lambda *specs: b.ctrl(specs, mirror)  # noqa: E731
        # nasolabial fold: from above the nose wing, down and out, fading beside the mouth corner
        if g("nasolabial"):
            ctrl = C((((129, 1.0),), (-0.025, -0.005)), (((129, 0.5), (206, 0.5)), (-0.015, 0.01)),
                     (((206, 1.0),), (-0.008, 0.0)), (((216, 1.0),), (0.0, 0.0)), (((212, 1.0),), (0.01, 0.02)))
            if config.nasolabial_slope > 0:          # it leaves the nose wing downwards (see SkinConfig)
                ctrl = _descending(ctrl, frame, config.nasolabial_slope)
            b.add("nasolabial", "nasolabial", ctrl, g("nasolabial"), out, _fade(24, 0.3, 0.45, 0.4), seed0)
        # crow's feet: short lines fanning out from the outer eye corner
        if g("crows_feet"):
            for j, (v0, v1) in enumerate(((-0.035, -0.075), (0.0, 0.005), (0.035, 0.085))):
                ctrl = C((((33, 1.0),), (-0.07, v0)), (((33, 1.0),), (-0.115, (v0 + v1) / 2 + 0.003)),
                         (((33, 1.0),), (-0.16, v1)))
                b.add("crows_feet", "fine", ctrl, g("crows_feet") * (0.8 if j != 1 else 1.0), (0.0, -1.0),
                      _fade(24, 0.35, 0.45), seed0 + 1 + j)
        # glabella: vertical furrows between the inner brow heads, diverging slightly upwards
        if g("glabella"):
            ctrl = C((((8, 0.55), (55, 0.45)), (0.0, 0.01)), (((9, 0.5), (107, 0.5)), (0.0, -0.01)),
                     (((9, 0.5), (107, 0.5)), (-0.015, -0.08)))
            b.add("glabella", "glabella", ctrl, g("glabella") * (1.0 if not mirror else 0.8), (-sgn, 0.0),
                  _fade(24, 0.3, 0.5, 0.4), seed0 + 5)
        # nose wrinkles (AU9): short oblique lines from the side of the nasal bridge out and down
        if g("nose"):
            for j in range(2):
                p0 = A((((6, 0.5), (196, 0.5)), (0.01, 0.005 + 0.045 * j)))
                p1 = p0 + (frame.ex * (sgn * 0.05) + frame.ey * 0.012) * frame.iod
                p2 = p0 + (frame.ex * (sgn * 0.1) + frame.ey * 0.04) * frame.iod
                b.add("nose", "fine", np.array([p0, p1, p2]), g("nose") * (0.9 - 0.2 * j), (0.0, -1.0),
                      _fade(24, 0.3, 0.45), seed0 + 9 + j)
        # marionette line (AU15): from beside the mouth corner down toward the jaw
        if g("marionette"):
            ctrl = C((((61, 1.0),), (-0.04, 0.03)), (((61, 1.0),), (-0.06, 0.14)), (((61, 1.0),), (-0.065, 0.25)))
            b.add("marionette", "nasolabial", ctrl, g("marionette") * MARIONETTE_SHARE, out, _fade(24, 0.25, 0.5),
                  seed0 + 13)
    # nasal root: short transverse lines between the eyes (AU9, and some with AU4)
    root = g("nose", 0.0) + 0.3 * max(g("glabella", 0.0), 0.0)
    if abs(root) > 1e-6:
        for j, t in enumerate((0.2, 0.6)):
            c = lm[168, :2] + t * (lm[6, :2] - lm[168, :2])
            ctrl = np.array([frame.to_px(frame.to_uv(c) + [-0.06, 0.01]), c, frame.to_px(frame.to_uv(c) + [0.06, 0.01])])
            b.add("nose", "fine", ctrl, root * (0.9 - 0.25 * j), (0.0, -1.0), _fade(24, 0.3, 0.3), 51 + j)
    # forehead lines (AU1 centre, AU2 sides): parallel to the brows, flatter going up
    inner, outer = g("forehead_inner", 0.0), g("forehead_outer", 0.0)
    if (inner or outer) and config.forehead_lines:
        brow_idx = _BROW_R + (9,) + tuple(_MIRROR[i] for i in _BROW_R[::-1])
        top_idx = _TOP_R + (10,) + tuple(_MIRROR[i] for i in _TOP_R[::-1])
        bu = frame.to_uv(lm[list(brow_idx), :2])
        tu = frame.to_uv(lm[list(top_idx), :2])
        ob, ot = np.argsort(bu[:, 0]), np.argsort(tu[:, 0])
        nl = config.forehead_lines
        bx, by, tx, ty = bu[ob, 0], bu[ob, 1], tu[ot, 0], tu[ot, 1]
        for j in range(nl):
            t, u, n, g_in, g_out, fade, scale, gap = _forehead_line(nl, j)
            vb = np.interp(u, bx, by)
            vt = np.interp(u, tx, ty)
            flat = np.mean(vb)
            vb = vb + 0.35 * t * (flat - vb)        # flatter than the brows, the higher the flatter
            ctrl = frame.to_px(np.stack([u, vb + t * (vt - vb)], axis=1))
            mix = inner * g_in + outer * g_out
            amix = np.abs(mix)
            top = float(np.max(amix))
            drive = top * np.sign(inner + outer)
            if abs(drive) < 1e-6:
                continue
            prof = amix / max(top, 1e-9) * fade     # a new array
            prof *= scale
            prof *= gap
            b.add("forehead", "forehead", ctrl, drive, (0.0, -1.0), prof, 71 + j, n=n)
    return b.finish()


# ---------------------------------------------------------------------------------------------------------------
# Maps

#: Columns of zeros a blur canvas keeps right of everything its blur can reach: OpenCV's row and column filters
#: run the last ``width % lanes`` columns (lanes <= 16) through a scalar loop whose rounding differs from the
#: vector loop's in the last bit; with that many zero columns the last columns only ever hold zeros, so a canvas
#: cropped this way blurs every other pixel exactly as the full one.
_TAIL = 16
#: A canvas whose last columns may hold values keeps its right edge and is cropped on the left by multiples of
#: this (a multiple of every vector width): its columns keep their vector/scalar split.
_LANES = 32
#: Fixed-point bits of the line vertices handed to OpenCV.
_SHIFT = 4


def _segments(strokes, norm: float, x0: int, y0: int):
    """The line segments of ``strokes`` (``(points Nx2, values N)``) as :func:`_draw` draws them, with the
    canvas's top-left corner at region pixel (x0, y0): ``(vertices, values, drawn)``: the vertices in 1/16 pixels
    (Nx2 int64, all strokes one after the other), each segment's value (a list; the segments joining two strokes
    are never drawn) and per stroke with anything to draw ``(first vertex, vertex count, box)``, the box (canvas
    pixels ``[cx0, cy0, cx1, cy1]``) holding every pixel its segments draw."""
    pts = np.concatenate([p for p, _ in strokes]) if len(strokes) > 1 else strokes[0][0]
    values = np.concatenate([v for _, v in strokes]) if len(strokes) > 1 else strokes[0][1]
    values = values * norm
    d = np.diff(pts, axis=0)
    length = np.hypot(d[:, 0], d[:, 1])
    # cv2's AA line puts `value` into each column (row) of an x- (y-)major line: correct to a per-normal value
    v = 0.5 * (values[:-1] + values[1:]) * np.abs(d).max(axis=1) / np.maximum(length, 1e-9)
    qa = np.round((pts - [x0, y0]) * (1 << _SHIFT)).astype(np.int64)
    sizes = [len(p) for p, _ in strokes]
    starts = np.cumsum([0] + sizes[:-1])
    nonzero = v != 0.0
    nonzero[starts[1:] - 1] = False          # the segment from one stroke's end to the next one's start
    drawn = np.add.reduceat(nonzero, starts) > 0
    # an AA line reaches a pixel or so past its vertices
    lo = (np.minimum.reduceat(qa, starts) >> _SHIFT) - 3
    hi = (np.maximum.reduceat(qa, starts) >> _SHIFT) + 4
    items = [(start, n, [lx, ly, hx, hy])
             for start, n, (lx, ly), (hx, hy), yes in zip(starts.tolist(), sizes, lo.tolist(), hi.tolist(),
                                                          drawn.tolist()) if yes]
    return qa, v.tolist(), items


def _draw(canvas: np.ndarray, qa: np.ndarray, vl: list, items, dx: int, dy: int) -> None:
    """Anti-aliased polylines whose perpendicular integral is the segments' values: the strokes ``items`` of
    :func:`_segments`, on a canvas whose corner is (dx, dy) in its canvas pixels (a whole-pixel shift: the same
    pixels)."""
    import cv2

    q = (qa - [dx << _SHIFT, dy << _SHIFT]).tolist() if dx or dy else qa.tolist()
    line, aa = cv2.line, cv2.LINE_AA
    for start, n, _ in items:
        for i in range(start, start + n - 1):
            val = vl[i]
            if val != 0.0:
                line(canvas, q[i], q[i + 1], val, 1, aa, _SHIFT)


def _box(pts_list, margin: float, h: int, w: int):
    allp = np.concatenate(pts_list) if len(pts_list) > 1 else pts_list[0]
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    x0 = int(np.floor(lo[0] - margin))
    y0 = int(np.floor(lo[1] - margin))
    x1 = int(np.ceil(hi[0] + margin)) + 1
    y1 = int(np.ceil(hi[1] + margin)) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


@functools.lru_cache(maxsize=64)
def _gaussian_kernels(k: int, sigma: float):
    import cv2

    kx, one = cv2.getGaussianKernel(k, sigma, cv2.CV_32F), np.ones((1, 1), np.float32)
    kx.setflags(write=False)
    one.setflags(write=False)
    return kx, one


def _gaussian_blur(canvas: np.ndarray, k: int, sigma: float) -> np.ndarray:
    """``cv2.GaussianBlur(canvas, (k, k), sigma, borderType=BORDER_CONSTANT)`` of a float32 canvas whose rows are
    mostly 0.0, bit for bit: its two separable passes run one at a time (as GaussianBlur runs them), the row pass
    only on the rows that hold something (a row of zeros stays zeros)."""
    import cv2

    kx, one = _gaussian_kernels(k, sigma)
    rows = np.flatnonzero(canvas.any(axis=1))
    if len(rows) > 0.75 * len(canvas):
        return cv2.GaussianBlur(canvas, (k, k), sigma, borderType=cv2.BORDER_CONSTANT)
    across = np.zeros(canvas.shape, np.float32)
    across[rows] = cv2.sepFilter2D(canvas[rows], cv2.CV_32F, kx, one, borderType=cv2.BORDER_CONSTANT)
    return cv2.sepFilter2D(across, cv2.CV_32F, one, kx, borderType=cv2.BORDER_CONSTANT)


class ShadingMap:
    """A frame's float32 log-luminance change over the region (``shape``: H, W), filled fold by fold, and the box
    that holds all of it (region pixels: ``x0, y0, x1, y1``).

    ``window`` (region pixels ``x0, y0, x1, y1``): the map holds only that part of the region (``values`` is its
    size; ``origin`` its top-left corner); what falls outside it is dropped. None: the whole region.
    """

    def __init__(self, shape: tuple[int, int], window: tuple[int, int, int, int] | None = None):
        self.shape = (int(shape[0]), int(shape[1]))
        wx0, wy0, wx1, wy1 = window if window is not None else (0, 0, self.shape[1], self.shape[0])
        self.origin = (wx0, wy0)
        self.values = np.zeros((wy1 - wy0, wx1 - wx0), np.float32)
        self.box: tuple[int, int, int, int] | None = None
        #: the box's pixels whose change is not nil (set by the renderer once the map is final)
        self.covered: np.ndarray | None = None
        #: per-channel log changes on top of ``values`` (HxWx3, the same window; None: none), for a change that
        #: moves the colour as well as the luminance (:func:`add_socket_lift`); they bypass ``warmth``
        self.colour: np.ndarray | None = None
        #: the box (region pixels) outside which :attr:`colour` is zero
        self.colour_box: tuple[int, int, int, int] | None = None

    def add_colour(self, box, change: np.ndarray) -> None:
        """Add per-channel log changes ``change`` (hxwx3) over ``box`` (region pixels, inside the window)."""
        if self.colour is None:
            self.colour = np.zeros(self.values.shape + (3,), np.float32)
        x0, y0, x1, y1 = box
        ox, oy = self.origin
        self.colour[y0 - oy:y1 - oy, x0 - ox:x1 - ox] += change
        a = self.colour_box
        self.colour_box = tuple(box) if a is None else (min(a[0], x0), min(a[1], y0), max(a[2], x1), max(a[3], y1))
        self.touch(box)

    def touch(self, box) -> None:
        if box is None:
            return
        if self.box is None:
            self.box = tuple(box)
        else:
            a = self.box
            self.box = (min(a[0], box[0]), min(a[1], box[1]), max(a[2], box[2]), max(a[3], box[3]))

    def strokes(self, strokes, sigma: float) -> None:
        """Add Gaussian-blurred strokes ``(points, signed peak values)`` (the peak value at the stroke's centre
        line); strokes far apart are blurred on canvases of their own."""
        margin = 3.5 * sigma + 2
        groups: list[tuple[list, list]] = []
        for pts, vals in strokes:
            lo, hi = pts.min(axis=0), pts.max(axis=0)
            lo0, lo1, hi0, hi1 = float(lo[0]) - margin, float(lo[1]) - margin, float(hi[0]) + margin, \
                float(hi[1]) + margin
            for g in groups:
                b = g[1]
                if not (lo0 > b[2] or hi0 < b[0] or lo1 > b[3] or hi1 < b[1]):
                    g[0].append((pts, vals))
                    b[:] = [min(b[0], lo0), min(b[1], lo1), max(b[2], hi0), max(b[3], hi1)]
                    break
            else:
                groups.append(([(pts, vals)], [lo0, lo1, hi0, hi1]))
        for group, _ in groups:
            self._blurred(group, sigma, margin)

    def _blurred(self, strokes, sigma: float, margin: float) -> None:
        """The strokes drawn on a canvas reaching ``margin`` past their box (and past the region's edge), blurred
        and added. Only the part of the canvas the blur can reach is blurred (the rest would stay 0.0): the same
        values, bit for bit (see ``_TAIL``)."""
        import cv2

        h, w = self.shape
        box = _box([p for p, _ in strokes], margin, h, w)
        if box is None:
            return
        x0, y0, x1, y1 = box
        ext0 = int(np.ceil(margin))           # draw on a canvas that reaches past the region's edge
        ch, cw = y1 - y0 + 2 * ext0, x1 - x0 + 2 * ext0
        # a unit-integral line blurred by sigma peaks at 1 / (sqrt(2 pi) * sigma_eff)
        norm = np.sqrt(2 * np.pi) * np.sqrt(sigma ** 2 + 1.0 / 6.0)
        qa, vl, items = _segments(strokes, norm, x0 - ext0, y0 - ext0)
        if not items:
            return
        k = int(2 * np.ceil(3 * sigma) + 1)
        r = k // 2
        # what each stroke's blur reaches (canvas pixels); strokes whose reaches overlap are blurred together
        reach = [([b[0] - r, b[1] - r, b[2] + r, b[3] + r], [m]) for m, (_, _, b) in enumerate(items)]
        merged = True
        while merged and len(reach) > 1:
            merged = False
            for i in range(len(reach)):
                for j in range(i + 1, len(reach)):
                    a, b = reach[i][0], reach[j][0]
                    if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                        reach[i] = ([min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])],
                                    sorted(reach[i][1] + reach[j][1]))
                        del reach[j]
                        merged = True
                        break
                if merged:
                    break
        cx, cy = x0 - ext0, y0 - ext0         # the canvas's corner in region pixels
        ox, oy = self.origin
        vh, vw = self.values.shape
        for (rx0, ry0, rx1, ry1), members in reach:
            # a pixel outside every reach stays 0.0, and a reach holds nothing of another: a reach blurred alone
            # (its own strokes on the part of the canvas it covers) gets the same values, bit for bit, if each
            # column keeps its vector/scalar split
            ra, rb = max(ry0, 0), min(ry1, ch)
            ca, cb = max(rx0, 0), min(rx1, cw)
            if ra >= rb or ca >= cb:
                continue
            ea, eb = ca, cb + _TAIL
            if eb > cw:
                ea, eb = ca - ca % _LANES, cw
            canvas = np.zeros((rb - ra, eb - ea), np.float32)
            _draw(canvas, qa, vl, [items[m] for m in members], ea, ra)
            blurred = _gaussian_blur(canvas, k, sigma)
            # the reach inside the box (region pixels), then inside this map's window
            vx0, vy0 = max(cx + ca, x0) - ox, max(cy + ra, y0) - oy
            vx1, vy1 = min(cx + cb, x1) - ox, min(cy + rb, y1) - oy
            vx0, vy0, vx1, vy1 = max(vx0, 0), max(vy0, 0), min(vx1, vw), min(vy1, vh)
            if vx0 >= vx1 or vy0 >= vy1:
                continue
            sx, sy = ox - cx - ea, oy - cy - ra      # map -> blurred canvas
            self.values[vy0:vy1, vx0:vx1] += blurred[vy0 + sy:vy1 + sy, vx0 + sx:vx1 + sx]
            self.touch((vx0 + ox, vy0 + oy, vx1 + ox, vy1 + oy))


def add_creases(out: ShadingMap, creases: list[Crease], iod: float, config: SkinConfig) -> None:
    """Shade the (non-softening) creases into ``out``."""
    adding = [c for c in creases if not c.soften and c.depth.any()]
    if not adding:
        return
    gain = config.strength
    widths = {"fine": (config.crease_width, config.crease_depth),
              "glabella": (config.crease_width * 1.8, config.glabella_depth),
              "forehead": (config.crease_width * 1.6, config.crease_depth * 0.8),
              "nasolabial": (config.nasolabial_width, config.nasolabial_depth)}
    for kind, (wid, depth) in widths.items():
        group = [c for c in adding if c.kind == kind]
        if not group:
            continue
        # a crease narrower than a pixel is blurred by the camera: same darkness, spread over a pixel or so
        sigma = max(wid * iod, _MIN_SIGMA)
        depth = depth * min(1.0, wid * iod / _MIN_SIGMA)
        hl_sigma = sigma * config.highlight_width
        hl_off = sigma * config.highlight_offset
        core, soft = [], []             # the crease; its highlight (and the fold's broad shadow), signed
        for c in group:
            d = c.depth * depth * gain
            core.append((c.points, -d))
            if kind == "nasolabial":
                soft.append((c.points + c.side * (hl_off * 1.4), c.depth * config.nasolabial_highlight * gain))
                soft.append((c.points - c.side * (sigma * 2.5), -c.depth * config.nasolabial_shadow * gain))
            elif kind == "glabella":     # skin bunched up on both sides of the furrow
                soft.append((c.points + c.side * hl_off, d * config.crease_highlight))
                soft.append((c.points - c.side * hl_off, d * config.crease_highlight * 0.6))
            else:
                soft.append((c.points + c.side * hl_off, d * config.crease_highlight))
        out.strokes(core, sigma)
        out.strokes(soft, hl_sigma * (1.5 if kind == "nasolabial" else 1.0))


def add_cheeks(out: ShadingMap, landmarks: np.ndarray, drive: float, iod: float, config: SkinConfig) -> None:
    """The raised cheeks' soft highlight (only for a positive drive)."""
    if drive <= 0 or config.cheek_highlight == 0:
        return
    h, w = out.values.shape
    frame = face_frame(landmarks)
    sigma = config.cheek_radius * iod
    for mirror in (False, True):
        i50, i101, i205 = (280, 330, 425) if mirror else (50, 101, 205)
        c = 0.4 * landmarks[i50, :2] + 0.3 * landmarks[i101, :2] + 0.3 * landmarks[i205, :2] - frame.ey * 0.01 * iod
        r = 3.7 * sigma
        x0, y0 = max(int(c[0] - r), 0), max(int(c[1] - r), 0)
        x1, y1 = min(int(c[0] + r) + 1, w), min(int(c[1] + r) + 1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        du = (np.arange(x0, x1, dtype=np.float32) - np.float32(c[0]))[None, :]
        dv = (np.arange(y0, y1, dtype=np.float32) - np.float32(c[1]))[:, None]
        u = (du * np.float32(frame.ex[0]) + dv * np.float32(frame.ex[1])) / np.float32(1.2 * sigma)
        v = (du * np.float32(frame.ey[0]) + dv * np.float32(frame.ey[1])) / np.float32(0.85 * sigma)
        q2 = u * u + v * v
        g = np.exp(-0.5 * q2) * np.clip(1.0 - q2 / 9.0, 0.0, 1.0) ** 2      # compact: nothing reaches the eye
        out.values[y0:y1, x0:x1] += np.float32(config.cheek_highlight * config.strength * drive) * g
        out.touch((x0, y0, x1, y1))


def add_softening(out: ShadingMap, luma_of, creases: list[Crease], iod: float, config: SkinConfig) -> None:
    """Lift existing folds where their drive is negative: the fold's mid-frequency darkening (a band-pass of the
    plate's own log luminance, so pores and fine texture stay) is lifted by ``soften * |drive|`` along the
    crease's course. ``luma_of(box)`` gives the warped region's luminance inside a box."""
    import cv2

    going = [c for c in creases if c.soften and c.depth.any() and config.soften > 0]
    if not going:
        return
    h, w = out.shape
    big = max(config.nasolabial_width * iod * 5, 2.0)
    box = _box([c.points for c in going], 4 * big + 2, h, w)
    if box is None:
        return
    x0, y0, x1, y1 = box
    # the lift's weight first: the band-pass is needed only where it is above 0
    weight = ShadingMap((h, w), box)
    weight.strokes([(c.points, np.minimum(c.depth, 1.0) * config.soften * config.strength) for c in going],
                   big * 0.6)
    if weight.box is None:
        return
    c0, r0, c1, r1 = weight.box[0] - x0, weight.box[1] - y0, weight.box[2] - x0, weight.box[3] - y0
    loglum = np.maximum(luma_of(box), 1e-6)
    np.log(loglum, out=loglum)
    f = max(1, int(big // 3))                   # the wide low-pass on a coarser grid (its cost was most of a frame's)
    if f > 1:
        small = cv2.resize(loglum, None, fx=1.0 / f, fy=1.0 / f, interpolation=cv2.INTER_AREA)
        low = cv2.resize(cv2.GaussianBlur(small, (0, 0), big / f), (loglum.shape[1], loglum.shape[0]),
                         interpolation=cv2.INTER_LINEAR)
    else:
        low = cv2.GaussianBlur(loglum, (0, 0), big)
    # the mid band over the weight's box (and what its kernel reads), split into columns as on the whole box
    sm = max(config.crease_width * iod, 0.6)
    rm = int(np.ceil(4 * sm)) + 2           # OpenCV's float kernel reaches 4 sigma
    hh, ww = loglum.shape
    a, b = max(c0 - rm, 0), min(c1 + rm, ww)
    span = -(-(b - a) // _LANES) * _LANES
    if c1 <= ww - _TAIL and a + span <= ww:
        b = a + span
    else:
        a, b = a - a % _LANES, ww
    ra, rb = max(r0 - rm, 0), min(r1 + rm, hh)
    mid = cv2.GaussianBlur(loglum[ra:rb, a:b], (0, 0), sm)[r0 - ra:r1 - ra, c0 - a:c1 - a]
    lift = np.subtract(low[r0:r1, c0:c1], mid)
    np.clip(lift, 0.0, 0.4, out=lift)
    wv = weight.values[r0:r1, c0:c1]
    np.clip(wv, 0, 1, out=wv)
    wv *= lift
    out.values[y0 + r0:y0 + r1, x0 + c0:x0 + c1] += wv
    out.touch(weight.box)


#: Per side (subject's right, left): the brow's outline, its lower edge outer -> inner then its upper edge inner ->
#: outer: the brows are not the glabella's to flatten.
_BROW_OUTLINES = ((46, 53, 52, 65, 55, 107, 66, 105, 63, 70), (276, 283, 282, 295, 285, 336, 296, 334, 293, 300))
#: The chin and the sides of the mouth below the corners: beside the right corner, down the jaw's inside to the
#: chin's centre and up the left side, then back along the lower lip's outer contour (left corner to right).
_CHIN_OUTLINE = (214, 135, 169, 170, 140, 171, 175, 396, 369, 395, 394, 364, 434, 291, 375, 321, 405, 314, 17, 84,
                 181, 91, 146, 61)


def add_glabella_relax(out: ShadingMap, pixels_of, landmarks: np.ndarray, frame: FaceFrame, drive: float,
                       config: SkinConfig, valid: np.ndarray | None = None) -> None:
    """Take a brow furrow away (a negative glabella drive: neutral, happy or surprised over a frown): the vertical
    lines between the brows -- the furrows' darkening and the ridges beside them -- are flattened by the share
    :func:`_relax_weight` gives (:func:`_flatten`) over the glabella (between the inner brow heads, from the nasal
    root to ``relax_height`` above the brows; the brows themselves left out, the mask's edge soft).

    The low-pass a line is measured against runs across the face only (``relax_width``, along the line between
    the eyes, so a rolled face is flattened across its own furrows): horizontal structure (the brows' heads, the
    nasal root's transverse lines) is no line across the face. The procedural softening along the glabella
    creases' course (:func:`add_softening`) lifted only a narrow band there, mostly the brows' dark heads, and
    left d3.mp4's furrows on under neutral and happy.
    """
    weight = _relax_weight(drive, config)
    if not weight > 0:
        return
    lm = np.asarray(landmarks, np.float64)
    uv = frame.to_uv(lm[:, :2])
    right, left = uv[[55, 107]].mean(axis=0), uv[[285, 336]].mean(axis=0)
    top = float(min(uv[107, 1], uv[336, 1])) - config.relax_height
    root = float(uv[168, 1])
    if not root > top or not left[0] > right[0]:
        return
    poly = frame.to_px(np.array([[right[0], top], [left[0], top], [left[0], root], [right[0], root]]))
    brows = [lm[list(outline), :2] for outline in _BROW_OUTLINES]
    _flatten(out, pixels_of, poly, brows, frame, weight, config.relax_width * frame.iod, True, config, valid=valid)


def add_chin_relax(out: ShadingMap, pixels_of, landmarks: np.ndarray, frame: FaceFrame, drive: float,
                   config: SkinConfig, valid: np.ndarray | None = None) -> None:
    """Take a pout's chin away (a negative chin drive: the chin raiser AU17 and the lip corner depressor AU15
    lowered, e.g. neutral or happy over d8.jpg's pout): the chin's dimpling and the marionette folds beside it are
    flattened by the share :func:`_relax_weight` gives (:func:`_flatten`, an isotropic low-pass of
    ``relax_chin`` x IOD) between the jaw's inside and the lower lip. The low-pass reads the face only (inside its
    oval: the neck's shadow under the jaw is no fold of it), and nothing outside the oval changes. The warp moves
    the lips and corners, but a fold or a dimple it carries along stays: d8's neutral and happy kept his pout's
    chin and folds, and his smile read as a grimace.
    """
    weight = _relax_weight(drive, config)
    if not weight > 0:
        return
    from ...topology import FACE_OVAL

    lm = np.asarray(landmarks, np.float64)
    _flatten(out, pixels_of, lm[list(_CHIN_OUTLINE), :2], [], frame, weight, config.relax_chin * frame.iod, False,
             config, support=lm[list(FACE_OVAL), :2], valid=valid)


def _relax_weight(drive: float, config: SkinConfig) -> float:
    """The share of a fold group's folds a relax flattens at ``drive`` (< 0: the folds taken away): ``relax *
    min(|drive|, 1)``, faded in as ``|drive|`` rises through ``relax_from`` (a talker's neutralised brow or chin
    drives -0.05 to -0.3 and has no fold to flatten there: none below the first value, the whole share from the
    second); 0 for a drive >= 0."""
    d = -float(drive)
    lo, hi = config.relax_from
    return min(d, 1.0) * config.relax * config.strength * float(smoothstep((d - lo) / (hi - lo)))


def _flatten(out: ShadingMap, pixels_of, poly: np.ndarray, excluded: list, frame: FaceFrame, weight: float,
             sigma: float, across: bool, config: SkinConfig, support: np.ndarray | None = None,
             valid: np.ndarray | None = None) -> None:
    """Flatten the mid-frequency folds of the picture inside ``poly`` (region pixels; ``excluded`` polygons left
    out, grown by 0.02 IOD; the mask's edge soft, 0.03 IOD; nothing outside ``support``, a polygon, changes) by
    ``weight``: per colour channel, the log's band-pass -- a low-pass of ``sigma`` px (across the face only where
    ``across``; of the pixels inside ``support`` only where given, and of the face itself where ``valid``, the
    region's HxW occluder weights, says so: a glasses bridge's dark is no fold of the skin beside it) against a
    fine one (``crease_width``), so texture finer than a crease stays -- is taken away: a fold's darkening lifted by
    at most 0.4, a ridge beside it darkened by at most ``relax_ridge``. A fold is redder than the skin beside it as
    well as darker: lifted in luminance alone, d3's furrows stayed orange lines. ``pixels_of(box)`` gives the
    warped region's pixels inside a box (HxWxC); a plate that is not RGB is flattened in its luminance."""
    import cv2

    iod = frame.iod
    h, w = out.shape
    soft = 0.03 * iod
    pad = 3.0 * soft + 2.0
    x0, y0 = (int(max(np.floor(v - pad), 0)) for v in poly.min(axis=0))
    x1, y1 = int(min(np.ceil(poly[:, 0].max() + pad), w)), int(min(np.ceil(poly[:, 1].max() + pad), h))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return
    # the low-pass reaches 3 sigma: read that much more of the plate around the mask
    reach = int(np.ceil(3.0 * sigma)) + 2
    bx0, by0, bx1, by1 = max(x0 - reach, 0), max(y0 - reach, 0), min(x1 + reach, w), min(y1 + reach, h)
    size = (bx1 - bx0, by1 - by0)
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(mask, [np.round((poly - [x0, y0]) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
    if excluded:
        grow = max(1, int(round(0.02 * iod)))
        away = np.zeros_like(mask)
        for outline in excluded:
            cv2.fillPoly(away, [np.round((outline - [x0, y0]) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
        away = cv2.dilate(away, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
        mask = mask * (1.0 - away)
    mask = cv2.GaussianBlur(mask, (0, 0), soft)
    inside = None               # the pixels the low-pass reads (None: all of them)
    if support is not None:
        inside = np.zeros((by1 - by0, bx1 - bx0), np.float32)
        cv2.fillPoly(inside, [np.round((support - [bx0, by0]) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
        mask *= inside[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]
    if valid is not None:
        seen = np.clip(np.asarray(valid[by0:by1, bx0:bx1], np.float32), 0.0, 1.0)
        if seen.min() < 1.0:
            inside = seen if inside is None else inside * seen
    mask *= weight
    px = np.asarray(pixels_of((bx0, by0, bx1, by1)), np.float32)
    px = px.reshape(px.shape[0], px.shape[1], -1)
    colour = px.shape[2] == 3               # (the renderer applies colour changes to RGB plates only)
    planes = [px[:, :, c] for c in range(3)] if colour else \
        [px[:, :, 0] if px.shape[2] < 3 else px[:, :, :3] @ np.float32([0.2126, 0.7152, 0.0722])]
    turn = None
    if across:
        # the face upright in the box (turned about its centre by the face's roll), so the low-pass runs across the
        # face's own width; the lift turned back
        angle = float(np.degrees(np.arctan2(frame.ex[1], frame.ex[0])))
        centre = ((bx1 - bx0 - 1) / 2.0, (by1 - by0 - 1) / 2.0)
        turn = cv2.getRotationMatrix2D(centre, angle, 1.0) if abs(angle) > 1.0 else None
    if inside is not None and turn is not None:
        inside = cv2.warpAffine(inside, turn, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    def lowpass(x):
        if across:
            x = cv2.GaussianBlur(x, (int(6 * sigma) | 1, 1), sigma, sigmaY=0.01, borderType=cv2.BORDER_REFLECT)
            return cv2.GaussianBlur(x, (0, 0), 0.02 * iod, borderType=cv2.BORDER_REFLECT)
        return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)

    # a normalised low-pass where only some pixels are read
    covered = np.maximum(lowpass(inside), 1e-3) if inside is not None else None
    fine = max(config.crease_width * iod, 0.6)
    lifts = []
    for plane in planes:
        log = np.log(np.maximum(plane, 1e-6))
        if turn is not None:
            log = cv2.warpAffine(log, turn, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        low = lowpass(log) if inside is None else lowpass(log * inside) / covered
        lift = low - cv2.GaussianBlur(log, (0, 0), fine, borderType=cv2.BORDER_REFLECT)
        if turn is not None:
            lift = cv2.warpAffine(lift, turn, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        lift = lift[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]
        np.clip(lift, -config.relax_ridge, 0.4, out=lift)
        lift *= mask
        lifts.append(lift)
    if colour:
        out.add_colour((x0, y0, x1, y1), np.stack(lifts, axis=2))
    else:
        ox, oy = out.origin
        out.values[y0 - oy:y1 - oy, x0 - ox:x1 - ox] += lifts[0]
        out.touch((x0, y0, x1, y1))


# ---------------------------------------------------------------------------------------------------------------
# The eye sockets

#: Per eye (subject's right, left): the upper lid margin (outer -> inner corner), the brow's lower edge and its
#: upper edge (outer -> inner).
_SOCKETS = (((33, 246, 161, 160, 159, 158, 157, 173, 133), (46, 53, 52, 65, 55), (70, 63, 105, 66, 107)),
            ((263, 466, 388, 387, 386, 385, 384, 398, 362), (276, 283, 282, 295, 285), (300, 293, 334, 296, 336)))
#: Where along the eye (0 outer corner, 1 inner) the socket's stretch is sampled.
_SOCKET_U = np.linspace(-0.1, 1.1, 25)


def _socket_curves(lm: np.ndarray, frame: FaceFrame, eye: int):
    """One eye's socket in ``frame``'s coordinates (IOD units): ``(a0, a1, v_lid, v_brow, v_top)``, the lid's
    outer and inner corner along the eyes' axis and, at :data:`_SOCKET_U`, the heights (toward the chin) of the
    lid margin, the brow's lower and upper edges."""
    lid_i, low_i, top_i = _SOCKETS[eye]
    uv = frame.to_uv(lm[list(lid_i + low_i + top_i), :2])
    n0, n1 = len(lid_i), len(lid_i) + len(low_i)
    lid, low, top = uv[:n0], uv[n0:n1], uv[n1:]
    a0, a1 = float(lid[0, 0]), float(lid[-1, 0])
    span = a1 - a0
    if not np.isfinite(span) or abs(span) < 1e-6:
        return None

    def at(pts):
        u = (pts[:, 0] - a0) / span
        order = np.argsort(u)
        return np.interp(_SOCKET_U, u[order], pts[order, 1])

    return a0, a1, at(lid), at(low), at(top)


def socket_stretch(src: np.ndarray, dst: np.ndarray) -> list[tuple | None]:
    """Per eye, how much the target stretches its socket (the skin between the upper lid margin and the brow's
    lower edge) at :data:`_SOCKET_U`: ``(target height over source height, the target's socket curves)``
    (:func:`_socket_curves` in the target's face frame), None where a frame cannot be built."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    fs, ft = face_frame(src), face_frame(dst)
    out: list[tuple | None] = []
    for eye in range(2):
        cs = None if fs is None else _socket_curves(src, fs, eye)
        ct = None if ft is None else _socket_curves(dst, ft, eye)
        if cs is None or ct is None:
            out.append(None)
            continue
        hs, ht = cs[2] - cs[3], ct[2] - ct[3]
        ok = np.isfinite(hs) & np.isfinite(ht) & (hs > 1e-3)
        out.append((np.where(ok, ht / np.where(ok, hs, 1.0), 1.0), ct))
    return out


def socket_gains(src: np.ndarray, dst: np.ndarray, config: SkinConfig) -> list[tuple | None]:
    """Per eye, the share of its socket's shadow :func:`add_socket_lift` takes away along the eye: ``1 - 1/s`` for a
    stretch ``s`` (the shadow keeps its darkness in all, spread over more skin), at most ``socket_lift_max``, times
    ``socket_lift`` x ``strength`` (at most 1), with the target's socket curves: ``(gain, curves)``; None where the
    socket is not stretched (or the lift is off)."""
    if config.socket_lift <= 0 or config.strength <= 0:
        return [None, None]
    out: list[tuple | None] = []
    for got in socket_stretch(src, dst):
        if got is None:
            out.append(None)
            continue
        s, curves = got
        g = np.minimum(np.maximum(1.0 - 1.0 / np.maximum(s, 1e-6), 0.0), config.socket_lift_max) \
            * min(config.socket_lift * config.strength, 1.0)
        out.append((g, curves) if float(g.max()) > 1e-3 else None)
    return out


def add_socket_lift(out: ShadingMap, pixels_of, dst: np.ndarray, frame: FaceFrame, sockets: list, valid,
                    config: SkinConfig) -> None:
    """Lift the shadow of each eye socket the target stretches (:func:`socket_gains`): the warp spreads the socket's
    shading (a deep-set eye's shadow, the brow's shade) over the taller socket, so a raised inner brow over a lowered
    lid drew a dark patch like a bruise (d3.mp4 sad, 1.5-1.8x by the landmarks; WDA and d12 less). A raised brow
    lifts its overhang off the socket and the stretched lid skin is lit, so its shadow does not grow with it: the
    socket's deficit under the forehead just above the brow (low-passed, per channel: the shadow's warmer colour goes
    with it) shrinks by the gain, fading in above the lid margin (its lashes and liner stay) and out under the brow
    (``socket_band``). ``pixels_of(box)`` gives the warped region's pixels (HxWxK) inside a box;
    ``valid`` (HxW, or None) keeps occluders out of the forehead's reference; ``frame``: ``dst``'s face frame (the
    one :func:`socket_gains`' curves are in). Three channels go into :attr:`ShadingMap.colour`, others into its
    luminance ``values``."""
    import cv2

    lm = np.asarray(dst, np.float64)
    h, w = out.shape
    iod = frame.iod
    ox, oy = out.origin
    hh, ww = out.values.shape
    for eye, socket in enumerate(sockets):
        if socket is None:
            continue
        gain, (a0, a1, v_lid, v_low, v_top) = socket
        ids = list(_SOCKETS[eye][0]) + list(_SOCKETS[eye][1]) + list(_SOCKETS[eye][2])
        pts = lm[ids, :2]
        sigma = max(config.socket_sigma * iod, 0.5)
        reach = config.socket_reference[1] * iod + 3.0 * sigma + 2.0
        span = abs(a1 - a0) * iod * 0.15
        x0, y0 = int(max(np.floor(pts[:, 0].min() - span - 2), 0)), int(max(np.floor(pts[:, 1].min() - reach), 0))
        x1, y1 = int(min(np.ceil(pts[:, 0].max() + span + 2) + 1, w)), int(min(np.ceil(pts[:, 1].max() + 2) + 1, h))
        # everything here is smooth (the low-pass's sigma and wider): worked on a grid f times coarser (the box
        # grown to whole cells), the lift brought back to the box's pixels at the end
        f = max(1, int(sigma // 1.5))
        if f > 1 and (-(-(x1 - x0) // f) * f > w or -(-(y1 - y0) // f) * f > h):
            f = 1
        bw, bh = -(-(x1 - x0) // f) * f, -(-(y1 - y0) // f) * f
        x0, y0 = min(x0, w - bw), min(y0, h - bh)
        x1, y1 = x0 + bw, y0 + bh
        sw, sh = bw // f, bh // f
        cx0, cy0, cx1, cy1 = max(x0, ox), max(y0, oy), min(x1, ox + ww), min(y1, oy + hh)
        if bw < 4 or bh < 4 or cx1 <= cx0 or cy1 <= cy0:
            continue
        # the face frame is affine: u and v of each grid cell centre as a row term plus a column term
        gx = (x0 + (np.arange(sw, dtype=np.float64) + 0.5) * f - frame.origin[0]) / iod
        gy = (y0 + (np.arange(sh, dtype=np.float64) + 0.5) * f - frame.origin[1]) / iod
        u = ((gx[None, :] * frame.ex[0] + gy[:, None] * frame.ex[1]) - a0) / (a1 - a0)
        v = gx[None, :] * frame.ey[0] + gy[:, None] * frame.ey[1]
        lid, low, top = (np.interp(u, _SOCKET_U, c) for c in (v_lid, v_low, v_top))
        t = (lid - v) / np.maximum(lid - low, 1e-4)              # 0 on the lid margin, 1 on the brow's lower edge
        inner = smoothstep(np.minimum(u + 0.1, 1.1 - u) / 0.3)
        b0, b1, b2, b3 = config.socket_band
        weight = smoothstep((t - b0) / (b1 - b0)) * smoothstep((b3 - t) / (b3 - b2))
        weight *= inner * np.interp(u, _SOCKET_U, gain)
        if not (weight > 1e-4).any():
            continue
        near, far = config.socket_reference
        band = (top - v >= near) & (top - v < far) & (u > 0.0) & (u < 1.0)
        if valid is not None:
            keep = np.asarray(valid[y0:y1, x0:x1], np.float32)
            if f > 1:
                keep = cv2.resize(keep, (sw, sh), interpolation=cv2.INTER_AREA)
            band &= keep >= 0.999
        if np.count_nonzero(band) < 8:
            continue
        pix = np.asarray(pixels_of((x0, y0, x1, y1)), np.float32)
        if pix.ndim == 2:
            pix = pix[:, :, None]
        colour = pix.shape[2] == 3          # (the renderer's RGB path; other plates take the luminance's)
        pix = pix if colour else pix[:, :, :3].mean(axis=2, keepdims=True)
        if f > 1:
            pix = cv2.resize(pix, (sw, sh), interpolation=cv2.INTER_AREA)
            if pix.ndim == 2:
                pix = pix[:, :, None]
        logs = np.log(np.maximum(pix, 1e-6))
        lowpass = cv2.GaussianBlur(logs, (0, 0), sigma / f)
        if lowpass.ndim == 2:
            lowpass = lowpass[:, :, None]
        ref = np.median(lowpass[band], axis=0)                      # per channel
        # light adds linearly: each channel's deficit under the reference, ref - low, shrinks by the gain
        # (low + gain x (ref - low)), as a log change
        dark = np.maximum(ref[None, None, :] - lowpass, 0.0)
        most = dark.max(axis=2, keepdims=True)      # the limit scales the channels alike (their colour kept)
        dark *= np.minimum(1.0, config.socket_lift_limit / np.maximum(most, 1e-6))
        lift = np.log1p(weight[:, :, None] * np.expm1(dark)).astype(np.float32)
        lift = cv2.GaussianBlur(lift, (0, 0), max(0.5 * sigma / f, 0.5))
        if lift.ndim == 2:
            lift = lift[:, :, None]
        # only the cells the lift reaches (the box also held the forehead's reference band), a cell's margin kept
        # for the upsampling's reach
        reached = lift[:, :, 0] > 1e-5
        for c in range(1, lift.shape[2]):
            reached |= lift[:, :, c] > 1e-5
        rows, cols = np.flatnonzero(reached.any(axis=1)), np.flatnonzero(reached.any(axis=0))
        if not len(rows):
            continue
        r0, r1 = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, sh)
        k0, k1 = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, sw)
        if f > 1:
            lift = cv2.resize(lift, (bw, bh), interpolation=cv2.INTER_LINEAR)
            if lift.ndim == 2:
                lift = lift[:, :, None]
        # that part of the box, inside the map's window
        x0, x1, y0, y1 = x0 + k0 * f, x0 + k1 * f, y0 + r0 * f, y0 + r1 * f
        lift = lift[r0 * f:r1 * f, k0 * f:k1 * f]
        cx0, cy0, cx1, cy1 = max(x0, ox), max(y0, oy), min(x1, ox + ww), min(y1, oy + hh)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        lift = lift[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        if colour:
            out.add_colour((cx0, cy0, cx1, cy1), lift)
        else:
            out.values[cy0 - oy:cy1 - oy, cx0 - ox:cx1 - ox] += lift[:, :, 0]
            out.touch((cx0, cy0, cx1, cy1))
