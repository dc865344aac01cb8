"""A per-shot glasses model: the frames' outline, accumulated over the shot in a head-aligned canonical view.

Glasses are rigid with the head. Each frame's thin-line response (the detector's bar filter) is resampled into a
canonical view of the face (the head's 3D pose from stable landmarks -- eye corners, nose bridge, temples --
fitted to a canonical face, the lens plane at the nose bridge's depth), so evidence too faint in one frame
(clear plastic rims in compressed video) adds up over the shot, and the rims found do not follow the brows or
lids when those move. ``finish`` fits a pair of lens outlines to the accumulated evidence and keeps the rims
(and the bridge) only where a line is there in most frames; a face without glasses gives ``None``. A shot too
short for that (a still) is judged frame by frame (:meth:`OcclusionDetector.find_glasses`).

numpy + OpenCV only; nothing at import time; no other stage is imported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import topology as T
from ..errors import InvalidParameterError
from .config import OcclusionConfig

#: Landmarks that move with the head but hardly with the expression: eye corners, nose bridge, temples.
STABLE = (33, 133, 362, 263, 168, 6, 197, 195, 5, 127, 356, 234, 454, 93, 323)
#: The nose's outline from the bridge down.
_NOSE = (168, 6, 122, 196, 217, 126, 209, 49, 64, 98, 97, 2, 326, 327, 294, 279, 429, 355, 437, 419, 351)
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def _umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) with ``s * R @ src + t`` closest to ``dst`` (rows are points, 3D)."""
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    xs, xd = src - ms, dst - md
    cov = xd.T @ xs / len(src)
    u, sv, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    r = u @ np.diag(d) @ vt
    s = float((sv * d).sum() / max((xs ** 2).sum() / len(src), 1e-12))
    return s, r, md - s * r @ ms


def _canonical_face(p: np.ndarray, cfg: OcclusionConfig) -> np.ndarray:
    """The stable points of one face (Px3), turned frontal and scaled into the canonical view (Nx3)."""
    a, b = p[T.EYE_OUTER_RIGHT], p[T.EYE_OUTER_LEFT]
    mid = 0.5 * (a + b)
    ex = (b - a) / max(np.linalg.norm(b - a), 1e-9)
    up = p[10] - mid                                                  # the forehead's top
    ey = -(up - (up @ ex) * ex)
    ey /= max(np.linalg.norm(ey), 1e-9)
    ez = np.cross(ex, ey)
    k = cfg.model_iod / max(np.linalg.norm(b - a), 1e-9)
    q = (p[list(STABLE)] - mid) @ np.stack([ex, ey, ez], axis=1) * k
    return q + [cfg.model_size[0] / 2.0, cfg.model_eye_line, 0.0]


def canonical_to_image(canon: np.ndarray, depth: float, landmarks: np.ndarray) -> np.ndarray | None:
    """The 2x3 affine from the canonical view's lens plane to image pixels for a face's landmarks (Px3; Px2
    landmarks get a 2D affine fit instead), or None when the landmarks are not usable."""
    p = np.asarray(landmarks, dtype=np.float64)
    pts = p[list(STABLE)]
    if not np.isfinite(pts).all():
        return None
    if p.shape[1] >= 3:
        s, r, t = _umeyama(canon, pts[:, :3])
        m = s * r[:2]
        return np.column_stack([m[:, 0], m[:, 1], m[:, 2] * depth + t[:2]])
    x = np.column_stack([canon[:, :2], np.ones(len(canon))])
    return np.linalg.lstsq(x, pts[:, :2], rcond=None)[0].T


def _invert(m: np.ndarray) -> np.ndarray:
    a = np.linalg.inv(m[:, :2])
    return np.column_stack([a, -a @ m[:, 2]])


@dataclass(frozen=True)
class GlassesModel:
    """A shot's glasses frames in the canonical view.

    Attributes:
        mask: HxW uint8, 1 on the frames (rims, bridge) in the canonical view (``OcclusionConfig.model_size``).
        canon: Nx3 the stable landmarks (:data:`STABLE`) of the canonical face.
        depth: the lens plane's depth in the canonical face (the nose bridge's).
        frames: how many frames the model was built from.
        support: the fitted lens outlines' support (mean fraction of frames with a line along them).
    """

    mask: np.ndarray
    canon: np.ndarray
    depth: float
    frames: int = 0
    support: float = 0.0
    lenses: np.ndarray | None = None

    @property
    def empty(self) -> bool:
        return not np.any(self.mask)

    def to_image(self, landmarks: np.ndarray) -> np.ndarray | None:
        """The 2x3 affine from the model's canonical view to the image of a face with these landmarks."""
        return canonical_to_image(self.canon, self.depth, landmarks)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"mask": np.asarray(self.mask, np.uint8), "canon": np.asarray(self.canon, np.float64),
                "depth": np.array(self.depth), "frames": np.array(self.frames), "support": np.array(self.support),
                "lenses": np.zeros((2, 4)) if self.lenses is None else np.asarray(self.lenses, np.float64)}

    @classmethod
    def from_arrays(cls, d: dict) -> "GlassesModel":
        try:
            mask = np.asarray(d["mask"], np.uint8)
            canon = np.asarray(d["canon"], np.float64)
        except KeyError as e:
            raise InvalidParameterError(f"a glasses model needs the array {e.args[0]!r}") from None
        if mask.ndim != 2 or canon.shape != (len(STABLE), 3):
            raise InvalidParameterError(f"bad glasses model arrays: mask {mask.shape}, canon {canon.shape}")
        return cls(mask=mask, canon=canon, depth=float(np.asarray(d.get("depth", 0.0))),
                   frames=int(np.asarray(d.get("frames", 0))), support=float(np.asarray(d.get("support", 0.0))),
                   lenses=np.asarray(d["lenses"], np.float64) if "lenses" in d else None)


class GlassesModelBuilder:
    """Accumulates a shot's thin-line evidence in the canonical view (a :class:`ShotModelBuilder`: ``add`` every
    frame, ``finish`` once).

    Frames of other footage of the actor (``index`` < 0) are skipped: the actor may wear other glasses, or
    none, there.

    Args:
        config: an :class:`OcclusionConfig` (its ``model_*`` settings and line filter).

    After ``finish``, ``diagnostics`` holds what the decision saw: ``support`` and ``lower`` (against
    ``model_support`` / ``model_lower``), each kept frame's glasses offset ``shifts`` (canonical px), the aligned
    mean ``evidence`` map, the fitted ``lenses`` ([cx, cy, a, b, support] each) and the ``ignore`` mask.
    """

    def __init__(self, config: OcclusionConfig | None = None):
        self.config = config or OcclusionConfig()
        self.diagnostics: dict = {}
        self._canon = None
        self._depth = 0.0
        self._views: list[np.ndarray] = []
        self._points: list[np.ndarray] = []
        self._n = 0
        self._seen = 0
        self._stride = 1
        self._short: list = []          # (pixels, landmarks, canonical -> pixels) of a shot too short for the model
        self._grid: tuple | None = None  # the canonical view's pixel coordinates (the line filter's), made once

    def add(self, index: int, pixels: np.ndarray, landmarks: np.ndarray) -> None:
        """One frame: HxWxK float32 plate values (any white: contrasts are taken relative to the skin), 478x3
        landmarks in the same pixels."""
        import cv2

        from .detector import _line_contrast

        if index < 0:
            return
        cfg = self.config
        self._seen += 1
        if (self._seen - 1) % self._stride:
            return                                     # a long shot: every stride-th frame is enough
        p = np.asarray(landmarks, dtype=np.float64)
        if p.ndim != 2 or p.shape[0] < T.NUM_MESH or p.shape[1] < 3 or not np.isfinite(p[: T.NUM_MESH]).all():
            return
        if self._canon is None:
            self._canon = _canonical_face(p, cfg)
            self._depth = float(self._canon[STABLE.index(168), 2])
        m = canonical_to_image(self._canon, self._depth, p)
        if m is None:
            return
        cw, ch = cfg.model_size
        img = np.asarray(pixels, dtype=np.float32)
        if img.ndim == 2:
            img = img[:, :, None]
        # only the canonical view's footprint is read, shrunk first when the face is larger than the view
        corners = np.array([[0, 0, 1], [cw, 0, 1], [cw, ch, 1], [0, ch, 1]], np.float64) @ m.T
        x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int) - 2, 0)
        x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 3, [img.shape[1], img.shape[0]])
        if x1 - x0 < 8 or y1 - y0 < 8:
            return
        crop = img[y0:y1, x0:x1]
        grey = crop[:, :, 0] if crop.shape[2] == 1 else crop[:, :, :3] @ _LUMA
        m = m - np.array([[0, 0, x0], [0, 0, y0]], np.float64)
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        if scale > 1.25:
            f = 1.0 / scale
            grey = cv2.resize(grey, (max(4, int(round(grey.shape[1] * f))), max(4, int(round(grey.shape[0] * f)))),
                              interpolation=cv2.INTER_AREA)
            m = m * [[grey.shape[1] / crop.shape[1]], [grey.shape[0] / crop.shape[0]]]
        view = cv2.warpAffine(np.ascontiguousarray(grey, dtype=np.float32), m.astype(np.float32), (cw, ch),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        # contrasts relative to the skin: the median of the nose and the cheeks under the eyes
        e, iod = cfg.model_eye_line, cfg.model_iod
        skin = float(np.median(view[int(e + 0.3 * iod): int(e + 0.7 * iod), int(cw / 2 - 0.5 * iod): int(cw / 2 + 0.5 * iod)]))
        if not skin > 0:
            return
        view *= np.float32(1.0 / skin)
        if self._grid is None:
            self._grid = np.meshgrid(np.arange(cw, dtype=np.float32), np.arange(ch, dtype=np.float32))
        gx, gy = self._grid
        r = None
        for s in cfg.line_scales:
            d, b = _line_contrast(view, s, gx, gy)
            rr = np.maximum(d, b / cfg.bright_factor) if cfg.bright_lines else d
            r = rr if r is None else np.maximum(r, rr)
        mm = canonical_to_image(self._canon, self._depth, p)
        inv = _invert(mm)
        self._views.append(np.clip(r * 1000.0, 0.0, 65000.0).astype(np.uint16))
        self._points.append(p[: T.NUM_MESH, :2] @ inv[:, :2].T + inv[:, 2])      # the face in the view
        # a shot shorter than model_min_frames is judged frame by frame in finish(): its frames are kept till then
        self._short = self._short + [(img, p, mm)] if len(self._views) < cfg.model_min_frames else []
        self._n += 1
        if len(self._views) >= cfg.model_max_frames:                 # bounded memory: keep every other frame
            self._views, self._points = self._views[::2], self._points[::2]
            self._stride *= 2

    def finish(self) -> GlassesModel | None:
        """The shot's glasses model, or None: the actor wears no glasses (no lens pair that the frames agree on).

        A shot of fewer than ``model_min_frames`` frames (a still) cannot show which lines stay with the head:
        each frame is judged alone (:meth:`OcclusionDetector.find_glasses`: both lenses' rims under the eyes are
        real thin lines), and when every one of them shows glasses, the model is their frames in the canonical
        view (``lenses`` None: mapped by the head pose only)."""
        import cv2

        cfg = self.config
        if len(self._views) < cfg.model_min_frames:
            return self._short_shot()
        iod = cfg.model_iod
        cw, ch = cfg.model_size
        n = len(self._views)
        face = np.stack(self._points).mean(axis=0)                      # the mean face in the view
        eyes = np.stack([face[list(e)] for e in (T.RIGHT_EYE, T.LEFT_EYE)])
        ignore = _explained(face, iod, (ch, cw))
        cap = np.float32(cfg.model_cap)
        kernel = np.ones((3, 3), np.uint8)
        evidence = [cv2.dilate(np.minimum(v.astype(np.float32) / (1000.0 * cap), 1.0), kernel) for v in self._views]
        shifts = np.zeros((n, 2))
        fit = None
        for _ in range(3):
            mean = _aligned_mean(evidence, shifts, (cw, ch))
            fit = _fit_pair(mean, eyes, iod, ignore)
            shifts = np.array([_best_shift(e, fit, ignore, cfg.model_search * iod) for e in evidence])
            shifts -= np.median(shifts, axis=0)
        mean = _aligned_mean(evidence, shifts, (cw, ch))
        fit = _fit_pair(mean, eyes, iod, ignore)
        support = float(0.5 * (fit[0, 4] + fit[1, 4]))
        lower = _arc_support(mean, fit, ignore, 0.3 * np.pi, 0.7 * np.pi)      # the rims under the eyes
        self.diagnostics = dict(support=support, lower=lower, shifts=shifts, evidence=mean, lenses=fit, ignore=ignore)
        if support < cfg.model_support or lower < cfg.model_lower:
            return None
        mask = _trace(mean, fit, _eye_mask(eyes, iod, (ch, cw)), cfg)
        if not mask.any():
            return None
        return GlassesModel(mask=mask, canon=self._canon, depth=self._depth, frames=n, support=support,
                            lenses=fit[:, :4].copy())

    def _short_shot(self) -> GlassesModel | None:
        """The model of a shot too short for one (see :meth:`finish`), or None."""
        import cv2

        from .detector import OcclusionDetector

        frames, self._short = self._short, []
        if not frames:
            return None
        detector = OcclusionDetector(self.config)
        cw, ch = self.config.model_size
        total = np.zeros((ch, cw), np.float32)
        for img, p, m in frames:
            img = img[:, :, :3] if img.shape[2] >= 3 else img[:, :, :1]
            found = detector.find_glasses(img, p, _plate_white(img))
            if found is None:
                return None
            total = np.maximum(total, cv2.warpAffine(found.astype(np.float32), m.astype(np.float32), (cw, ch),
                                                     flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
        mask = (total >= 0.5).astype(np.uint8)
        if not mask.any():
            return None
        return GlassesModel(mask=mask, canon=self._canon, depth=self._depth, frames=len(frames), support=1.0)


def _plate_white(pixels: np.ndarray) -> float:
    """The display white of plate values the builder is given as float32 (its callers pass no white): 1.0 for
    float plates (values that are not all whole numbers, or none above 1), else the smallest integer full scale
    (8, 10, 12 or 16 bits) that holds the face's pixels."""
    sample = pixels[::4, ::4]
    top = float(np.nanmax(sample)) if sample.size else 1.0
    if top <= 1.0 + 1e-3 or not np.array_equal(sample, np.round(sample)):
        return 1.0
    for bits in (8, 10, 12):
        if top <= (1 << bits) - 1:
            return float((1 << bits) - 1)
    return 65535.0


def _arc_support(score: np.ndarray, fit: np.ndarray, ignore: np.ndarray, start: float, stop: float) -> float:
    """The mean of ``score`` along an arc of both lens outlines (angles from ``start`` to ``stop``, y down),
    the lower of the two lenses."""
    h, w = score.shape
    t = np.linspace(start, stop, 24)
    out = []
    for cx, cy, a, b in fit[:, :4]:
        x = np.clip(np.rint(cx + a * np.cos(t) - 0.5).astype(int), 0, w - 1)
        y = np.clip(np.rint(cy + b * np.sin(t) - 0.5).astype(int), 0, h - 1)
        seen = ~ignore[y, x]
        out.append(float(score[y, x][seen].mean()) if seen.sum() >= 6 else 0.0)
    return min(out)


def _aligned_mean(maps, shifts, size) -> np.ndarray:
    import cv2

    total = np.zeros((size[1], size[0]), np.float32)
    for m, d in zip(maps, shifts):
        if d[0] == 0 and d[1] == 0:
            total += m
        else:
            total += cv2.warpAffine(m, np.float32([[1, 0, -d[0]], [0, 1, -d[1]]]), size, flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
    return total / max(len(maps), 1)


def _outline(fit: np.ndarray, count: int = 64) -> np.ndarray:
    """Points along both lens outlines (2*count, 2)."""
    t = np.linspace(0.0, 2.0 * np.pi, count, endpoint=False)
    return np.concatenate([np.stack([cx + a * np.cos(t), cy + b * np.sin(t)], axis=1) for cx, cy, a, b in fit[:, :4]])


def _best_shift(evidence: np.ndarray, fit: np.ndarray, ignore: np.ndarray, reach: float) -> np.ndarray:
    """The translation of the rigid lens pair that puts most of its outline on this frame's evidence."""
    h, w = evidence.shape
    pts = _outline(fit)
    lookup = np.where(ignore, 0.0, evidence)
    r = int(np.ceil(reach))
    best = np.zeros(2)
    for step, span in ((2, r), (1, 1)):
        d = np.arange(-span, span + 1, step, dtype=np.float64)
        dx, dy = np.meshgrid(d + best[0], d + best[1], indexing="ij")
        x = pts[None, :, 0] + dx.reshape(-1, 1)
        y = pts[None, :, 1] + dy.reshape(-1, 1)
        xi = np.clip(np.rint(x - 0.5).astype(np.int32), 0, w - 1)
        yi = np.clip(np.rint(y - 0.5).astype(np.int32), 0, h - 1)
        score = lookup[yi, xi].sum(axis=1)
        k = int(np.argmax(score))
        best = np.array([dx.reshape(-1)[k], dy.reshape(-1)[k]])
    return best


def _explained(face: np.ndarray, iod: float, shape) -> np.ndarray:
    """What the face itself draws as lines near the lenses (eye openings and their lid creases, the brows, the
    nose's sides below the eyes, the face's outline): not looked at when the lenses are fitted (bool)."""
    import cv2

    m = np.zeros(shape, np.uint8)
    for eye in (T.RIGHT_EYE, T.LEFT_EYE):
        e = face[list(eye)]
        for dy in (0.0, -0.06 * iod, 0.04 * iod):
            cv2.fillPoly(m, [np.rint(e + [0.0, dy]).astype(np.int32)], 1)
    for brow in (T.RIGHT_BROW, T.LEFT_BROW):
        b = face[list(brow)]
        cv2.fillPoly(m, [np.rint(np.concatenate([b[:5], b[5:][::-1]])).astype(np.int32)], 1)
    nose = np.zeros(shape, np.uint8)
    cv2.fillPoly(nose, [np.rint(cv2.convexHull(face[list(_NOSE)].astype(np.float32))[:, 0]).astype(np.int32)], 1)
    eye_line = face[[T.EYE_OUTER_RIGHT, T.EYE_OUTER_LEFT], 1].mean()
    nose[: max(int(eye_line + 0.05 * iod), 0)] = 0
    m |= nose
    r = max(1, int(round(0.04 * iod)))
    m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    oval = np.zeros(shape, np.uint8)
    cv2.fillPoly(oval, [np.rint(face[list(T.FACE_OVAL)]).astype(np.int32)], 1)
    r = max(1, int(round(0.06 * iod)))
    oval = cv2.erode(oval, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return (m > 0) | (oval == 0)


def _eye_mask(eye: np.ndarray, iod: float, shape) -> np.ndarray:
    """The eye openings (2x16x2 canonical points) grown a little: no rim runs through them (bool)."""
    import cv2

    m = np.zeros(shape, np.uint8)
    for e in eye:
        cv2.fillPoly(m, [np.rint(e).astype(np.int32)], 1)
    r = max(1, int(round(0.03 * iod)))
    return cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0


_ANGLES = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)


def _fit_pair(score: np.ndarray, eye: np.ndarray, iod: float, eye_area: np.ndarray) -> np.ndarray:
    """The lens pair (ellipses round the eyes, sharing height and vertical offset) along which ``score`` (0..1,
    canonical view) is highest: (2, 5) of [cx, cy, a, b, mean score]."""
    h, w = score.shape
    lookup = np.where(eye_area, -1.0, score)                      # the eye openings are not looked at
    du, dv = np.linspace(-0.06, 0.16, 12), np.linspace(-0.1, 0.14, 13)
    aa, bb = np.linspace(0.32, 0.52, 11), np.linspace(0.26, 0.44, 10)
    g = np.meshgrid(du, dv, aa, bb, indexing="ij")
    cos_t, sin_t = np.cos(_ANGLES), np.sin(_ANGLES)
    per_eye, geo = [], []
    flat = np.concatenate([lookup.ravel(), np.full(1, -1.0, lookup.dtype)])     # the last: outside the view
    for n, e in enumerate(eye):
        c = e.mean(axis=0)
        out = -1.0 if n == 0 else 1.0                              # the right eye is on the image's left
        cx = c[0] + out * g[0] * iod
        cy = c[1] + g[1] * iod
        # x depends on (du, a) only and y on (dv, b): each is rounded on its own small grid, the (du, dv, a, b)
        # samples are their broadcast (the same pixels as rounding the full grid, ~4x less work)
        x = (c[0] + out * du[:, None, None] * iod) + aa[None, :, None] * iod * cos_t
        y = (c[1] + dv[:, None, None] * iod) + bb[None, :, None] * iod * sin_t
        xi, yi = np.rint(x - 0.5).astype(np.int64), np.rint(y - 0.5).astype(np.int64)       # (du, a, A), (dv, b, A)
        xi = np.where((xi >= 0) & (xi < w), xi, -(h * w + 1))
        yi = np.where((yi >= 0) & (yi < h), yi * w, -(h * w + 1))
        idx = xi[:, None, :, None, :] + yi[None, :, None, :, :]                 # (du, dv, a, b, A)
        s = flat[np.where(idx >= 0, idx, h * w)]
        seen = (s >= 0).sum(axis=-1)
        sc = np.where(seen >= 0.5 * len(_ANGLES), np.maximum(s, 0).sum(axis=-1) / np.maximum(seen, 0.75 * len(_ANGLES)), 0.0)
        per_eye.append(sc.transpose(1, 3, 0, 2).reshape(len(dv), len(bb), -1))
        geo.append(np.stack([cx, cy, g[2] * iod, g[3] * iod], -1).transpose(1, 3, 0, 2, 4).reshape(len(dv), len(bb), -1, 4))
    joint = per_eye[0].max(axis=2) + per_eye[1].max(axis=2)
    j, k = np.unravel_index(np.argmax(joint), joint.shape)
    out = np.zeros((2, 5))
    for n in range(2):
        m = int(np.argmax(per_eye[n][j, k]))
        out[n, :4] = geo[n][j, k, m]
        out[n, 4] = per_eye[n][j, k, m]
    return out


def _trace(evidence: np.ndarray, fit: np.ndarray, eye_area: np.ndarray,
           cfg: OcclusionConfig) -> np.ndarray:
    """The rims along the fitted lens outlines where a line is there in enough frames, and the bridge between
    them (uint8 mask in the canonical view)."""
    import cv2

    from .detector import _closed_runs, trace_rim

    iod = cfg.model_iod
    h, w = evidence.shape
    score = np.where(eye_area, -1.0, evidence)
    reach = cfg.model_corridor * iod
    offsets = np.arange(-reach, reach + 0.25, 0.5)
    angles = np.linspace(0.0, 2.0 * np.pi, 180, endpoint=False)
    ca, sa = np.cos(angles)[:, None], np.sin(angles)[:, None]
    mask = np.zeros((h, w), np.uint8)
    thick = max(1, int(round(cfg.model_rim * iod)))
    keep = cfg.model_consistency
    for cx, cy, a, b, _ in fit:
        on = np.concatenate([cx + a * ca, cy + b * sa], axis=1)
        normal = np.concatenate([ca / a, sa / b], axis=1)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        good, smooth = trace_rim(score, on, normal, offsets, window=9, tolerance=2.0, low=keep)
        # short gaps (a few degrees) between found parts are bridged: the rim is continuous
        good = np.convolve(np.concatenate([good[-3:], good, good[:3]]).astype(float), np.ones(7), "same")[3:-3] >= 3
        rim = on + smooth[:, None] * normal
        # under the eye a frame's lower bar is kept whole: a thick frame's inner edge lies inside the traced rim
        depth = cfg.model_rim_inner * iod * np.clip((sa[:, 0] - 0.3) / 0.4, 0.0, 1.0)
        # ... and all along the outline's lower arc: the bar is continuous (the shot passed ``model_lower`` on it),
        # and a part too faint to trace (d12's right lens, its lower outer side) moved up with a cheek raise
        good |= depth > 0
        inner = rim - depth[:, None] * normal
        for run in _closed_runs(good):
            cv2.polylines(mask, [np.rint(rim[run] * 16).astype(np.int32)], False, 1, thickness=thick,
                          lineType=cv2.LINE_8, shift=4)
            for m0, m1 in zip(run[:-1], run[1:]):
                if depth[m0] > 0 or depth[m1] > 0:        # the band out to the inner edge (none above the eye)
                    quad = np.stack([rim[m0], rim[m1], inner[m1], inner[m0]])
                    cv2.fillConvexPoly(mask, np.rint(quad * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
    # the bridge: the strongest consistent line between the lenses' inner sides, above the eye line
    right, left = fit[0], fit[1]
    x0, x1 = int(right[0] + right[2] * 0.9), int(left[0] - left[2] * 0.9)
    y0, y1 = int(min(right[1], left[1]) - 0.45 * iod), int(max(right[1], left[1]) + 0.05 * iod)
    if x1 > x0 + 2 and y1 > y0 + 2:
        band = score[max(y0, 0):y1, x0:x1]
        rows = np.argmax(band, axis=0)
        vals = band[rows, np.arange(band.shape[1])]
        ys = np.median(rows) if len(rows) else 0
        ok = (vals >= keep) & (np.abs(rows - ys) <= 0.06 * iod)
        if ok.mean() >= 0.5:
            pts = np.stack([np.arange(x0, x1) + 0.5, rows + max(y0, 0) + 0.5], axis=1)
            cv2.polylines(mask, [np.rint(pts[ok] * 16).astype(np.int32)], False, 1, thickness=thick,
                          lineType=cv2.LINE_8, shift=4)
    return mask


def place(model: GlassesModel, grey: np.ndarray, landmarks: np.ndarray, cfg: OcclusionConfig,
          scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray | None:
    """The model's frames in one frame: the canonical mask mapped by the head pose, nudged by the frame's own
    lines (the lens pair's translation that puts most of its outline on them), as a bool map the size of
    ``grey`` (working pixels: ``landmarks`` are region pixels, ``scale`` = working / region), or None.

    ``grey`` is the frame's luma (any white: contrasts are taken relative to the skin)."""
    import cv2

    from .detector import _line_contrast

    m = model.to_image(landmarks)
    if m is None:
        return None
    m = np.array([[scale[0]], [scale[1]]]) * m                        # canonical -> working pixels
    cw, ch = cfg.model_size
    iod = cfg.model_iod
    if model.lenses is not None and np.any(model.lenses):
        # the frame's thin lines in the canonical view, over the lenses' box only
        lx0 = int(max(0, np.floor((model.lenses[:, 0] - model.lenses[:, 2]).min() - cfg.model_search * iod - 4)))
        lx1 = int(min(cw, np.ceil((model.lenses[:, 0] + model.lenses[:, 2]).max() + cfg.model_search * iod + 4)))
        ly0 = int(max(0, np.floor((model.lenses[:, 1] - model.lenses[:, 3]).min() - cfg.model_search * iod - 4)))
        ly1 = int(min(ch, np.ceil((model.lenses[:, 1] + model.lenses[:, 3]).max() + cfg.model_search * iod + 4)))
        sub = m.copy()
        sub[:, 2] += sub[:, :2] @ [lx0, ly0]
        view = cv2.warpAffine(grey, sub.astype(np.float32), (lx1 - lx0, ly1 - ly0),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        skin = float(np.median(view[-max(4, (ly1 - ly0) // 6):, (lx1 - lx0) // 3: 2 * (lx1 - lx0) // 3]))
        if skin > 0:
            gx, gy = np.meshgrid(np.arange(lx1 - lx0, dtype=np.float32), np.arange(ly1 - ly0, dtype=np.float32))
            d, b = _line_contrast(view * np.float32(1.0 / skin), 1.2, gx, gy)
            r = np.maximum(d, b / cfg.bright_factor) if cfg.bright_lines else d
            evidence = cv2.dilate(np.clip(r / cfg.model_cap, 0.0, 1.0), np.ones((3, 3), np.uint8))
            fit = model.lenses - [lx0, ly0, 0.0, 0.0]
            inv = _invert(sub)
            face = np.asarray(landmarks, np.float64)[: T.NUM_MESH, :2] * scale @ inv[:, :2].T + inv[:, 2]
            no = _explained(face, iod, evidence.shape)
            base = _outline(np.column_stack([fit, np.zeros(2)]))
            d_best = _best_shift(evidence, np.column_stack([fit, np.zeros(2)]), no, cfg.model_search * iod)
            seen = np.where(no, np.nan, evidence)

            def on(d):                       # only move when the frame's lines clearly prefer it
                x = np.clip(np.rint(base[:, 0] + d[0] - 0.5).astype(int), 0, evidence.shape[1] - 1)
                y = np.clip(np.rint(base[:, 1] + d[1] - 0.5).astype(int), 0, evidence.shape[0] - 1)
                return float(np.nanmean(seen[y, x])) if np.isfinite(seen[y, x]).any() else 0.0
            if on(d_best) > on(np.zeros(2)) + 0.05:
                m = m.copy()
                m[:, 2] += m[:, :2] @ d_best
    wh, ww = grey.shape
    out = cv2.warpAffine(model.mask.astype(np.float32), m.astype(np.float32), (ww, wh), flags=cv2.INTER_LINEAR)
    return out >= 0.4
