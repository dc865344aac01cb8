"""What the picture says the brow furrow and the mouth's corners do where the mesh cannot say it.

MediaPipe's face mesh keeps a frowning face's brows near their rest (d3.mp4 frowns over frames 100-140 and
200-250: the brow lowerer AU4 fits 0.0-0.2 while the picture shows the brows drawn down and together, two vertical
furrows between them), so an edit that takes the frown away (neutral, happy, surprised) left its furrows on, and
one that adds a frown (angry) drew its crease over the actor's own. :func:`furrow_depth` measures one frame's
furrows: the mid-frequency darkening (the band-pass that :func:`~.procedural.add_softening` lifts) along the
glabella creases' course; :func:`furrow_activation` turns a shot's depths into the AU4 activation the mesh did not
see, against the shot's own relaxed brow (its 10th percentile: a furrow the actor always has, a wrinkle, is no
frown). A still has no relaxed frame to compare with: it gets none.

The same holds under the mouth: a pout with the corners pulled down hard (d8.jpg: deep marionette lines from the
corners toward the jaw, the chin pushed up) fits the lip corner depressor AU15 at 0.07, because the mesh puts his
corners inside and above the real ones. :func:`marionette_depth` measures the marionette lines as
:func:`furrow_depth` measures the furrows (:func:`fold_depth`), on a face turned at most ``SkinConfig.pout_yaw``
(beyond, the far cheek's silhouette lies on the far line's course: d3.mp4 turned 20 degrees reads as deep as d8),
and :func:`pout_activation` turns the depths into the AU15 the mesh did not see: against a fixed rest
(``SkinConfig.pout_rest``: relaxed faces, talkers and smiles read at most 0.013, d8 0.09), so a still gets it too,
and on a clip against the shot's own relaxed mouth as well (lines an actor always has are his face, not a pout).

numpy + OpenCV (imported when used); reads pixels, draws nothing.
"""

from __future__ import annotations

import numpy as np

from ...errors import InvalidParameterError
from ..sampling import running_median
from .config import SkinConfig
from .procedural import build_creases, face_frame
from .renderer import _luma


def furrow_depth(pixels: np.ndarray, landmarks: np.ndarray, config: SkinConfig | None = None) -> float:
    """The brow furrow's depth in one picture: :func:`fold_depth` of the glabella creases."""
    return fold_depth(pixels, landmarks, "glabella", config)


def marionette_depth(pixels: np.ndarray, landmarks: np.ndarray, config: SkinConfig | None = None) -> float:
    """The marionette lines' depth in one picture (from beside the mouth's corners down toward the jaw):
    :func:`fold_depth` of the marionette creases, faded out as the face turns through ``SkinConfig.pout_yaw``
    (degrees; the turn read from the landmarks' depth at the outer eye corners; no depth column: no fade) and where
    the lines' course is hair, not skin (``SkinConfig.pout_skin``: the course's low-passed luminance over the
    cheeks'; a goatee's edge or a beard along it reads as a deep line)."""
    c = config or SkinConfig()
    course = _course(landmarks, "marionette", c)
    if course is None:
        return float("nan")
    lm, frame, creases = course
    depth = _depth_along(pixels, frame, creases, c)
    if not np.isfinite(depth) or depth <= c.pout_rest:
        return depth            # no pout either way (a shot's rest is never below pout_rest): nothing to fade
    if lm.shape[1] >= 3 and np.isfinite(lm[[33, 263], :3]).all():
        across = lm[263, :3] - lm[33, :3]
        yaw = abs(float(np.degrees(np.arctan2(across[2], np.hypot(across[0], across[1])))))
        depth *= 1.0 - _rise(yaw, c.pout_yaw)
    skin = _course_over_cheeks(pixels, lm, frame, creases, c)
    if np.isfinite(skin):
        depth *= _rise(skin, c.pout_skin)
    return depth


def _rise(x, edges: tuple[float, float]):
    """0 at ``edges[0]`` and below, 1 at ``edges[1]`` and above, linear between (elementwise)."""
    lo, hi = edges
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


#: cheek landmarks beside the nose wings and over the smile folds: the skin a marionette line's course is held to
_CHEEKS = (50, 280, 205, 425)


def _course(landmarks: np.ndarray, fold: str, c: SkinConfig):
    """``(landmarks as float64, face frame, creases)`` of a fold group's course at ``landmarks``, or None where
    there is no face to measure (too few or non-finite landmarks)."""
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 2 or lm.shape[0] < 468 or not np.isfinite(lm[:468, :2]).all():
        return None
    frame = face_frame(lm)
    creases = build_creases(lm, {fold: -1.0}, c)
    if frame is None or not creases:
        return None
    return lm, frame, creases


def _wide_scale(frame, c: SkinConfig) -> float:
    """The sigma (px) of the softening's wide low-pass, which the measures share."""
    return max(c.nasolabial_width * frame.iod * 5, 2.0)


def _box(pts: np.ndarray, pad: int, shape) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the points' box grown by ``pad`` px, inside a picture of ``shape``."""
    h, w = shape[:2]
    x0, y0 = (int(max(np.floor(v) - pad, 0)) for v in pts.min(axis=0))
    return x0, y0, int(min(np.ceil(pts[:, 0].max()) + pad, w)), int(min(np.ceil(pts[:, 1].max()) + pad, h))


def _course_over_cheeks(pixels: np.ndarray, lm: np.ndarray, frame, creases: list, c: SkinConfig) -> float:
    """The marionette lines' course's low-passed luminance (median) over the cheeks' (NaN where not measurable)."""
    import cv2

    course = np.concatenate([k.points for k in creases])
    big = _wide_scale(frame, c)
    pts = np.concatenate([course, lm[list(_CHEEKS), :2]])
    x0, y0, x1, y1 = _box(pts, int(np.ceil(3 * big)) + 2, pixels.shape)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return float("nan")
    # a low-pass this wide needs no full resolution: a quarter of it (or as near as the blur allows)
    f = max(1.0, min(4.0, big / 2.0))
    lum = _luma(pixels[y0:y1, x0:x1])
    small = cv2.resize(lum, (max(1, int(round((x1 - x0) / f))), max(1, int(round((y1 - y0) / f)))),
                       interpolation=cv2.INTER_AREA)
    fx, fy = small.shape[1] / (x1 - x0), small.shape[0] / (y1 - y0)
    low = cv2.GaussianBlur(small, (0, 0), big * fx)
    q = ((pts - [x0, y0]) * [fx, fy] - 0.5 * (1.0 - np.array([fx, fy]))).astype(np.float32)
    got = cv2.remap(low, q[:, 0][None], q[:, 1][None], cv2.INTER_LINEAR, borderValue=np.nan)[0]
    on, ref = np.nanmedian(got[: len(course)]), np.nanmedian(got[len(course):])
    return float(on / ref) if np.isfinite(on) and np.isfinite(ref) and ref > 0 else float("nan")


def fold_depth(pixels: np.ndarray, landmarks: np.ndarray, fold: str, config: SkinConfig | None = None) -> float:
    """A fold group's depth in one picture: the mean mid-frequency darkening (natural-log luminance, >= 0) along
    the course of its creases (:func:`~.procedural.build_creases`) at ``landmarks`` (478x2+, in ``pixels``'
    pixels), weighted as the creases fade; NaN where there is no face to measure (non-finite landmarks, the course
    outside the picture).

    Args:
        pixels: HxW luminance or HxWxK colour (the skin layer's luma of its first three channels), plate values
            of any white: only ratios count.
        fold: a fold group (``glabella``, ``marionette``, ...: :data:`~.config.DEFAULT_DRIVES`).
    """
    c = config or SkinConfig()
    course = _course(landmarks, fold, c)
    return float("nan") if course is None else _depth_along(pixels, course[1], course[2], c)


def _depth_along(pixels: np.ndarray, frame, creases: list, c: SkinConfig) -> float:
    """:func:`fold_depth` of the given course."""
    import cv2

    pts = np.concatenate([k.points for k in creases])
    weight = np.concatenate([np.minimum(k.depth, 1.0) for k in creases])
    big = _wide_scale(frame, c)                                  # the softening's own two scales
    small = max(c.crease_width * frame.iod, 0.6)
    x0, y0, x1, y1 = _box(pts, int(np.ceil(3 * big)) + 2, pixels.shape)
    inside = (pts[:, 0] >= x0) & (pts[:, 0] < x1 - 1) & (pts[:, 1] >= y0) & (pts[:, 1] < y1 - 1)
    if x1 - x0 < 4 or y1 - y0 < 4 or inside.mean() < 0.8:
        return float("nan")
    crop = _luma(pixels[y0:y1, x0:x1])
    top = float(crop.max()) if crop.size else 0.0
    if not np.isfinite(top) or top <= 0:
        return float("nan")
    loglum = np.log(np.maximum(crop, np.float32(top * 1e-4)))
    lift = np.clip(cv2.GaussianBlur(loglum, (0, 0), big) - cv2.GaussianBlur(loglum, (0, 0), small), 0.0, 0.4)
    q = (pts[inside] - [x0, y0]).astype(np.float32)
    got = cv2.remap(lift, q[:, 0][None], q[:, 1][None], cv2.INTER_LINEAR)[0]
    wi = weight[inside]
    return float((got * wi).sum() / max(float(wi.sum()), 1e-9))


def furrow_activation(depths: np.ndarray, config: SkinConfig | None = None) -> np.ndarray | None:
    """A shot's per-frame :func:`furrow_depth` (T, NaN where unmeasured) as the AU4 activation the picture shows
    beyond the shot's relaxed brow: ``(depth - rest - furrow_margin) / glabella_depth``, 0 below, at most
    ``max_drive``, ``rest`` the shot's 10th percentile; a running median over 5 frames (one odd frame neither
    starts nor ends a frown). None for a shot of fewer than ``furrow_min_frames`` measured frames (a still: no
    relaxed brow to compare with)."""
    c = config or SkinConfig()
    d = np.asarray(depths, np.float64).reshape(-1)
    ok = np.isfinite(d)
    if ok.sum() < c.furrow_min_frames:
        return None
    rest = float(np.percentile(d[ok], 10))
    act = np.where(ok, np.clip((d - rest - c.furrow_margin) / c.glabella_depth, 0.0, c.max_drive), np.nan)
    return running_median(act, 5, 0.0).astype(np.float32)


def pout_activation(depths: np.ndarray, config: SkinConfig | None = None,
                    fitted: np.ndarray | None = None) -> np.ndarray | None:
    """A shot's (or a still's) per-frame :func:`marionette_depth` (T, NaN where unmeasured) as the lip corner
    depressor (AU15) the picture shows beyond the mesh: ``(depth - rest) / unit``, 0 below, at most ``max_drive``;
    ``unit`` the depth of the skin's own marionette line at a drive of 1 (``nasolabial_depth x``
    :data:`~.procedural.MARIONETTE_SHARE`), ``rest`` ``SkinConfig.pout_rest``, and on a shot of at least
    ``furrow_min_frames`` measured frames no less than its 10th percentile plus ``furrow_margin`` (lines the actor
    always has are no pout); a running median over 5 frames. ``fitted`` (T, the mesh's own lip corner depressor
    plus chin raiser, AU15 + AU17): the lines count only as far as the mesh sees the mouth pulled that way too
    (``SkinConfig.pout_fitted``): deep lines on a relaxed mouth are an older face's own (a still has no relaxed
    frame to tell them apart). None where nothing was measured or nothing shows."""
    from .procedural import MARIONETTE_SHARE

    c = config or SkinConfig()
    d = np.asarray(depths, np.float64).reshape(-1)
    ok = np.isfinite(d)
    if not ok.any():
        return None
    rest = c.pout_rest
    if ok.sum() >= c.furrow_min_frames:
        rest = max(rest, float(np.percentile(d[ok], 10)) + c.furrow_margin)
    unit = max(c.nasolabial_depth * MARIONETTE_SHARE, 1e-6)
    act = np.where(ok, np.clip((d - rest) / unit, 0.0, c.max_drive), np.nan)
    if fitted is not None:
        seen = np.nan_to_num(np.asarray(fitted, np.float64).reshape(-1), nan=0.0)
        if len(seen) != len(act):
            raise InvalidParameterError(f"the fitted activations have {len(seen)} frames, the depths {len(act)}")
        act = act * _rise(seen, c.pout_fitted)
    if len(act) > 1:
        act = running_median(act, 5, 0.0)
    act = np.nan_to_num(act, nan=0.0)
    return act.astype(np.float32) if np.any(act > 0) else None
