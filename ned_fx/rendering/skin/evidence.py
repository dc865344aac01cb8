"""What the picture says the brow furrow does where the mesh cannot say it.

MediaPipe's face mesh keeps a frowning face's brows near their rest (d3.mp4 frowns over frames 100-140 and
200-250: the brow lowerer AU4 fits 0.0-0.2 while the picture shows the brows drawn down and together, two vertical
furrows between them), so an edit that takes the frown away (neutral, happy, surprised) left its furrows on, and
one that adds a frown (angry) drew its crease over the actor's own. :func:`furrow_depth` measures one frame's
furrows: the mid-frequency darkening (the band-pass that :func:`~.procedural.add_softening` lifts) along the
glabella creases' course; :func:`furrow_activation` turns a shot's depths into the AU4 activation the mesh did not
see, against the shot's own relaxed brow (its 10th percentile: a furrow the actor always has, a wrinkle, is no
frown). A still has no relaxed frame to compare with: it gets none.

numpy + OpenCV (imported when used); reads pixels, draws nothing.
"""

from __future__ import annotations

import numpy as np

from ..sampling import running_median
from .config import SkinConfig
from .procedural import build_creases, face_frame
from .renderer import _luma


def furrow_depth(pixels: np.ndarray, landmarks: np.ndarray, config: SkinConfig | None = None) -> float:
    """The brow furrow's depth in one picture: the mean mid-frequency darkening (natural-log luminance, >= 0)
    along the glabella creases' course at ``landmarks`` (478x2+, in ``pixels``' pixels), weighted as the creases
    fade; NaN where there is no face to measure (non-finite landmarks, the course outside the picture).

    Args:
        pixels: HxW luminance or HxWxK colour (the skin layer's luma of its first three channels), plate values
            of any white: only ratios count.
    """
    import cv2

    c = config or SkinConfig()
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 2 or lm.shape[0] < 468 or not np.isfinite(lm[:468, :2]).all():
        return float("nan")
    frame = face_frame(lm)
    creases = build_creases(lm, {"glabella": -1.0}, c)
    if frame is None or not creases:
        return float("nan")
    pts = np.concatenate([k.points for k in creases])
    weight = np.concatenate([np.minimum(k.depth, 1.0) for k in creases])
    big = max(c.nasolabial_width * frame.iod * 5, 2.0)           # the softening's own two scales
    small = max(c.crease_width * frame.iod, 0.6)
    pad = int(np.ceil(3 * big)) + 2
    h, w = pixels.shape[:2]
    x0, y0 = (int(max(np.floor(v) - pad, 0)) for v in pts.min(axis=0))
    x1, y1 = int(min(np.ceil(pts[:, 0].max()) + pad, w)), int(min(np.ceil(pts[:, 1].max()) + pad, h))
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
