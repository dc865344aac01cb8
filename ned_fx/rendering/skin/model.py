"""A per-actor skin model: how this actor's skin shading changes with each AU, learned from the shot's own frames.

The face is sampled at fixed mesh-anchored points (the 468 vertices and the centroids of the mesh's triangles,
off the lips and off the eyes with their lids up to the brows: about 800 points, some 3 % of the inter-ocular
distance apart) on a copy of each frame scaled so the eyes are ``model_iod`` pixels apart. Each frame gives the
log luminance at those points, less its own exposure and lighting gradient (a plane over the face), and its AU
activations. Per point, a ridge regression on the AUs that
the actor's frames actually exercise (a wide enough spread of activations) gives how much darker or lighter the
skin there gets per unit of each AU; coefficients the data does not support (small against their standard error)
shrink to zero. At render time the change of the covered AUs (clipped to the range the actor showed) gives a
log-luminance change per point, spread smoothly over the target face (normalised Gaussian splatting on a coarse
grid); AUs the model does not cover are left to the procedural folds.

The model is broad by construction (about 3 % IOD): it carries the actor's own bulges and shadows; the narrow
creases of the AUs it does not cover come from the procedural folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import topology as T
from ...errors import InvalidParameterError
from ..sampling import median
from .config import SkinConfig

_FIELDS = ("au_names", "sample_index", "sample_weight", "sample_uv", "coef", "low", "high", "frames")
_FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
              148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
#: Each eye with its lids up to the brow (eye contour and brow points; their convex hull): no learned change there.
_LID_BANDS = (T.RIGHT_EYE + T.RIGHT_BROW, T.LEFT_EYE + T.LEFT_BROW)
#: Where the learned change never goes: the lips (outer contour) and the eyes (what changes there is not skin).
_OPENINGS = ((61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146),
             (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7),
             (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249))


@dataclass(frozen=True)
class SkinModel:
    """What a shot's frames say about its actor's skin shading.

    Attributes:
        au_names: the K' AUs the model covers (their activations spread widely enough in the shot).
        sample_index, sample_weight: Sx3 landmark indices and weights of the sample points.
        sample_uv: Sx2 the points in the canonical face frame (IOD units; for the lighting plane).
        coef: K'xS log-luminance change per unit activation at each point.
        low, high: K' the activation range the actor showed (changes are clipped to it).
        frames: number of frames the model was fitted on.
    """

    au_names: np.ndarray
    sample_index: np.ndarray
    sample_weight: np.ndarray
    sample_uv: np.ndarray
    coef: np.ndarray
    low: np.ndarray
    high: np.ndarray
    frames: np.ndarray

    def covers(self, name: str) -> bool:
        return str(name) in set(str(n) for n in self.au_names)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for the analysis file."""
        return {name: np.asarray(getattr(self, name)) for name in _FIELDS}

    @classmethod
    def from_arrays(cls, d: dict) -> "SkinModel":
        """The inverse of :meth:`to_arrays`.

        Raises:
            InvalidParameterError: a field is missing or the shapes disagree.
        """
        missing = [name for name in _FIELDS if name not in d]
        if missing:
            raise InvalidParameterError(f"the skin model is missing {', '.join(missing)} (an analysis file from "
                                        "another version? analyse the shot again)")
        m = cls(au_names=np.asarray(d["au_names"]).astype(str).reshape(-1),
                sample_index=np.asarray(d["sample_index"], np.int64),
                sample_weight=np.asarray(d["sample_weight"], np.float32),
                sample_uv=np.asarray(d["sample_uv"], np.float32), coef=np.asarray(d["coef"], np.float32),
                low=np.asarray(d["low"], np.float32).reshape(-1), high=np.asarray(d["high"], np.float32).reshape(-1),
                frames=np.asarray(d["frames"], np.int64).reshape(()))
        k, s = len(m.au_names), len(m.sample_index)
        if (m.sample_index.shape != (s, 3) or m.sample_weight.shape != (s, 3) or m.sample_uv.shape != (s, 2)
                or m.coef.shape != (k, s) or m.low.shape != (k,) or m.high.shape != (k,)):
            raise InvalidParameterError("the skin model's arrays do not fit together (a damaged analysis file?)")
        return m

    def covered(self, au_names, au_src, au_dst) -> np.ndarray:
        """K: the part of each AU's change (target - source) that lies in the range the actor showed, for the
        AUs the model covers (0 elsewhere): the model shades it, the procedural folds the rest."""
        src = np.nan_to_num(np.asarray(au_src, np.float64).reshape(-1))
        dst = np.nan_to_num(np.asarray(au_dst, np.float64).reshape(-1))
        out = np.zeros(len(src))
        mine = {str(n): k for k, n in enumerate(self.au_names)}
        for i, name in enumerate(au_names):
            k = mine.get(str(name))
            if k is not None:
                lo, hi = float(self.low[k]), float(self.high[k])
                out[i] = np.clip(dst[i], lo, hi) - np.clip(src[i], lo, hi)
        return out

    def change(self, au_names, au_src, au_dst) -> np.ndarray | None:
        """S log-luminance changes for a frame's activations (None when no covered AU changes)."""
        index = {str(n): i for i, n in enumerate(au_names)}
        src = np.nan_to_num(np.asarray(au_src, np.float64).reshape(-1))
        dst = np.nan_to_num(np.asarray(au_dst, np.float64).reshape(-1))
        delta = np.zeros(len(self.au_names))
        for k, name in enumerate(self.au_names):
            i = index.get(str(name))
            if i is not None:
                lo, hi = float(self.low[k]), float(self.high[k])
                delta[k] = np.clip(dst[i], lo, hi) - np.clip(src[i], lo, hi)
        if not np.any(np.abs(delta) > 1e-6):
            return None
        return delta.astype(np.float32) @ self.coef


def _samples(shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sx3 indices and weights: the vertices and the triangle centroids of a face's mesh, on the skin only (the
    lips, the eyes with their lids up to the brows, and a margin around them change for other reasons than skin
    shading: teeth, blinks, gaze)."""
    import cv2

    from ...topology import LIPS_OUTER, triangulate

    tri = triangulate(shape[:468, :2])
    n = 468
    idx = np.concatenate([np.repeat(np.arange(n)[:, None], 3, axis=1), tri]).astype(np.int64)
    w = np.concatenate([np.tile([1.0, 0.0, 0.0], (n, 1)), np.full((len(tri), 3), 1.0 / 3.0)]).astype(np.float32)
    pts = np.einsum("sk,skd->sd", w.astype(np.float64), shape[idx][:, :, :2])
    iod = float(np.linalg.norm(shape[33, :2] - shape[263, :2]))
    keep = np.ones(len(idx), bool)
    # the eyes with their lids up to the brows: what changes there is the lids and the gaze (a blink, a look up
    # darkens the lid band far more than any fold), never learned as skin
    lids = [cv2.convexHull(shape[list(band), :2].astype(np.float32)).reshape(-1, 2) for band in _LID_BANDS]
    for poly, margin in ((shape[list(LIPS_OUTER), :2], 0.05), (lids[0], 0.06), (lids[1], 0.06)):
        poly = np.asarray(poly, np.float32).reshape(-1, 1, 2)
        for i, p in enumerate(pts):
            if keep[i] and cv2.pointPolygonTest(poly, (float(p[0]), float(p[1])), True) > -margin * iod:
                keep[i] = False
    return idx[keep], w[keep]


def _uv(points: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    a, b = landmarks[33, :2], landmarks[263, :2]
    iod = max(float(np.linalg.norm(b - a)), 1e-6)
    ex = (b - a) / iod
    ey = np.array([-ex[1], ex[0]])
    d = (points - (a + b) / 2) / iod
    return np.stack([d @ ex, d @ ey], axis=1)


class SkinModelBuilder:
    """Builds a :class:`SkinModel` from the shot's frames (the ShotModelBuilder protocol).

    Args:
        activations: FxK AU activations of the shot (``EditedTrack.au_source``), indexed by the frame index that
            :meth:`add` receives; frames with index -1 (extra footage without activations) are skipped.
        au_names: the K AU names.
        config: a :class:`SkinConfig` (``model_*`` fields).
    """

    def __init__(self, activations: np.ndarray, au_names, config: SkinConfig | None = None):
        self.activations = np.asarray(activations, np.float64)
        self.au_names = tuple(str(n) for n in au_names)
        if self.activations.ndim != 2 or self.activations.shape[1] != len(self.au_names):
            raise InvalidParameterError(f"skin model activations must be F x {len(self.au_names)}, got "
                                        f"{self.activations.shape}")
        self.config = config or SkinConfig()
        self._index = self._weight = self._uv = None
        self._rows: list[np.ndarray] = []
        self._aus: list[np.ndarray] = []

    def add(self, index: int, pixels: np.ndarray, landmarks: np.ndarray) -> None:
        """One frame (HxWxK plate values, 478x3 landmarks in plate pixels)."""
        import cv2

        if index < 0 or index >= len(self.activations):
            return
        a = self.activations[index]
        lm = np.asarray(landmarks, np.float64)
        if not np.isfinite(a).all() or not np.isfinite(lm[:468, :2]).all():
            return
        iod = float(np.linalg.norm(lm[33, :2] - lm[263, :2]))
        if iod < 8:
            return
        if self._index is None:
            self._index, self._weight = _samples(lm)
            self._uv = _uv(self._points(lm), lm).astype(np.float32)
        px = np.asarray(pixels, np.float32)
        if px.ndim == 2:
            px = px[:, :, None]
        h, w = px.shape[:2]
        lo = np.floor(lm[:468, :2].min(axis=0) - 0.1 * iod).astype(int)
        hi = np.ceil(lm[:468, :2].max(axis=0) + 0.1 * iod).astype(int)
        x0, y0 = max(lo[0], 0), max(lo[1], 0)
        x1, y1 = min(hi[0], w), min(hi[1], h)
        if x1 - x0 < 4 or y1 - y0 < 4:
            return
        crop = px[y0:y1, x0:x1]
        luma = (crop[:, :, 0] * 0.2126 + crop[:, :, 1] * 0.7152 + crop[:, :, 2] * 0.0722) if crop.shape[2] >= 3 \
            else crop[:, :, 0]
        s = min(1.0, self.config.model_iod / iod)
        small = cv2.resize(np.ascontiguousarray(luma), None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 \
            else np.ascontiguousarray(luma)
        pts = (self._points(lm) - [x0, y0]) * s
        vals = cv2.remap(small, pts[:, 0].astype(np.float32)[None], pts[:, 1].astype(np.float32)[None],
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]
        floor = float(np.percentile(vals, 50)) * 1e-3 + 1e-9
        self._rows.append(np.log(np.maximum(vals, floor)).astype(np.float32))
        self._aus.append(a.astype(np.float32))

    def _points(self, lm: np.ndarray) -> np.ndarray:
        return np.einsum("sk,skd->sd", self._weight, lm[self._index][:, :, :2])

    def finish(self) -> SkinModel | None:
        """The model, or None when the frames exercise no AU (too few frames, or too narrow a spread)."""
        c = self.config
        if len(self._rows) < c.model_min_frames:
            return None
        y = np.stack(self._rows).astype(np.float64)                 # F x S
        x = np.stack(self._aus).astype(np.float64)                  # F x K
        # each frame's own exposure and lighting gradient out: a plane over the face
        basis = np.column_stack([np.ones(len(self._uv)), self._uv.astype(np.float64)])     # S x 3
        plane, *_ = np.linalg.lstsq(basis, y.T, rcond=None)
        y = y - (basis @ plane).T
        lo, hi = np.percentile(x, 2, axis=0), np.percentile(x, 98, axis=0)
        varies = ((hi - lo) >= c.model_min_range / 4) & (x.std(axis=0) > 1e-3)
        # learned: the AUs that make folds, where the actor showed enough of them; every AU that varies (speech
        # too) is a regressor, so the mouth's opening does not pass for a smile
        fold_aus = {au for _, weights in c.drives for au, _ in weights}
        learn = varies & ((hi - lo) >= c.model_min_range) & np.array([n in fold_aus for n in self.au_names])
        if not learn.any():
            return None
        xs = x[:, varies]
        xc = xs - xs.mean(axis=0)
        yc = y - y.mean(axis=0)
        f, k = xc.shape
        gram = xc.T @ xc + c.model_ridge * f * np.eye(k)
        inv = np.linalg.inv(gram)
        coef = inv @ xc.T @ yc                                      # K'' x S
        resid = yc - xc @ coef
        # neighbouring frames are not independent: count the frames' effective number from the residuals' lag-1
        # autocorrelation (frames are in shot order)
        r = resid - resid.mean(axis=0)
        rho = float(np.clip(np.sum(r[1:] * r[:-1]) / max(np.sum(r * r), 1e-12), 0.0, 0.95))
        inflation = (1 + rho) / (1 - rho)                           # frames per independent frame
        var = (resid ** 2).sum(axis=0) / max(f - k - 1, 1)          # S
        se = np.sqrt(np.outer(np.diag(inv @ (xc.T @ xc) @ inv), var) * inflation)
        coef = coef * coef ** 2 / (coef ** 2 + (c.model_significance * se) ** 2 + 1e-12)
        rows = [i for i, n in enumerate(np.array(self.au_names)[varies]) if learn[self.au_names.index(n)]]
        coef = np.clip(coef[rows], -c.model_max, c.model_max)
        names = np.array([n for n, kk in zip(self.au_names, learn) if kk], dtype=str)
        return SkinModel(au_names=names, sample_index=self._index, sample_weight=self._weight,
                         sample_uv=self._uv, coef=coef.astype(np.float32), low=lo[learn].astype(np.float32),
                         high=hi[learn].astype(np.float32), frames=np.asarray(f, np.int64))


def add_model_change(out, model: SkinModel, change: np.ndarray, landmarks: np.ndarray, iod: float,
                     config: SkinConfig) -> None:
    """Spread the model's per-point log-luminance changes over the target face into ``out`` (a ShadingMap)."""
    import cv2

    h, w = out.values.shape
    lm = np.asarray(landmarks, np.float64)
    pts = np.einsum("sk,skd->sd", model.sample_weight.astype(np.float64), lm[model.sample_index][:, :, :2])
    lo = np.floor(lm[:468, :2].min(axis=0) - 0.05 * iod).astype(int)
    hi = np.ceil(lm[:468, :2].max(axis=0) + 0.05 * iod).astype(int)
    x0, y0, x1, y1 = max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    f = min(1.0, 48.0 / iod)                                      # a coarse grid: the model is broad
    gw, gh = max(int(np.ceil((x1 - x0) * f)), 2), max(int(np.ceil((y1 - y0) * f)), 2)
    g = (pts - [x0, y0]) * f
    ok = (g[:, 0] >= 0) & (g[:, 1] >= 0) & (g[:, 0] <= gw - 1) & (g[:, 1] <= gh - 1)
    gi = np.round(g[ok]).astype(np.int64)
    acc = np.zeros((gh, gw), np.float32)
    cnt = np.zeros((gh, gw), np.float32)
    np.add.at(acc, (gi[:, 1], gi[:, 0]), change[ok])
    np.add.at(cnt, (gi[:, 1], gi[:, 0]), 1.0)
    sigma = max(config.model_blur * iod * f, 0.7)
    acc = cv2.GaussianBlur(acc, (0, 0), sigma)
    cnt = cv2.GaussianBlur(cnt, (0, 0), sigma)
    field = acc / np.maximum(cnt, 1e-6)
    # fade out where no sample lies near (the eyes' lid band, the lips: the change is not extrapolated there)
    dense = float(median(cnt[gi[:, 1], gi[:, 0]])) if len(gi) else 0.0
    if dense > 0:
        field *= np.clip(cnt / (0.5 * dense), 0.0, 1.0)
    mask = np.zeros((gh, gw), np.uint8)
    scale = np.array([f, f])
    cv2.fillPoly(mask, [np.round((lm[list(_FACE_OVAL), :2] - [x0, y0]) * scale).astype(np.int32)], 1)
    for hole in _OPENINGS:
        cv2.fillPoly(mask, [np.round((lm[list(hole), :2] - [x0, y0]) * scale).astype(np.int32)], 0)
    for hole in _LID_BANDS:         # nor over the lids up to the brows (where nothing was learned)
        hull = cv2.convexHull(((lm[list(hole), :2] - [x0, y0]) * scale).astype(np.float32))
        cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 0)
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), max(0.7, 0.02 * iod * f)) * mask
    field = np.clip(field * soft * config.strength, -config.model_max, config.model_max)
    up = cv2.resize(field, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    out.values[y0:y1, x0:x1] += up
    out.touch((x0, y0, x1, y1))
