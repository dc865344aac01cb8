"""Believability measures of an edit, for the eval only (tests and bench/believable.py; never imported by ned_fx).

numpy (+ OpenCV to rasterise polygons) on RGB8 frames (HxWx3 uint8) and 478x3 landmarks in those frames' pixels
(the tracker's convention: ``(0, 0)`` = the top-left corner of the top-left pixel). ``src`` landmarks are the
source frame's, ``dst`` the edit's target (the plan's target landmarks, or the edited output re-tracked).

* **emotion**: P(target) of an independent classifier (:mod:`fer_classifier`) before and after, same crop box;
* **mouth**: inside the NEW inner-lip opening (target inner-lip polygon minus the source's): the share of
  near-black pixels (luminance < 10 % of the face's mean) and the luminance std, next to the same statistics of
  the actor's own real open mouths (:func:`real_open_mouth`); a flat black hole has a dark share near 1 and no
  texture (:func:`flat_black_hole`);
* **eyes**: the newly uncovered area inside the lid contour: its mean luminance over the visible sclera's
  (:func:`eye_new_area_ratio`); the iris's roundness (:func:`iris_roundness`: an ellipse fitted to the limbus
  away from the lids, on :func:`frontal` frames; :func:`iris_ratio`: vertical/horizontal spread of the dark
  iris blob in the eye's axes; a stretched iris is > 1, a lid-clipped one < 1); symmetry of the left/right
  eye-opening change (:func:`eye_symmetry`);
* **speech**: correlation of the mouth opening with the source's (:func:`mouth_opening_r`);
* **plate**: outside-face bit-exactness (:func:`outside_face_change`), occluder pixels (:func:`occluder_change`),
  added jitter (:func:`added_jitter`).
"""

from __future__ import annotations

import numpy as np

from ned_fx import topology as T
from ned_fx.manipulation.expression import LASH_RING_R, LID_CREASE_R, UPPER_LID_R, mirrored

DARK_FRACTION = 0.10          # near-black: luminance below this fraction of the face's mean luminance
OPEN_MOUTH_IOD = 0.10         # a real open mouth: inner-lip gap at least this many inter-ocular distances
RIGHT_LIDS, LEFT_LIDS = (159, 145), (386, 374)     # upper, lower lid mid points


def luminance(rgb: np.ndarray) -> np.ndarray:
    """HxW float32 luma (0.299 R + 0.587 G + 0.114 B, code values 0..255)."""
    rgb = np.asarray(rgb, np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def iod(lm: np.ndarray) -> float:
    return float(T.inter_ocular(np.asarray(lm, np.float64)))


def polygon_mask(shape: tuple, points: np.ndarray) -> np.ndarray:
    """HxW bool: pixel centres inside the polygon (x, y) (subpixel-accurate rasterisation)."""
    import cv2

    mask = np.zeros(shape[:2], np.uint8)
    pts = np.round((np.asarray(points, np.float64)[:, :2] - 0.5) * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def erode(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    if px <= 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.erode(mask.astype(np.uint8), k).astype(bool)


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    if px <= 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def face_mask(shape: tuple, lm: np.ndarray) -> np.ndarray:
    return polygon_mask(shape, lm[list(T.FACE_OVAL)])


def face_mean_luminance(rgb: np.ndarray, lm: np.ndarray) -> float:
    return float(luminance(rgb)[face_mask(rgb.shape, lm)].mean())


# ---- emotion ------------------------------------------------------------------------------------------------------

def emotion_probabilities(frames, src_lms) -> np.ndarray:
    """Fx7 probabilities of the independent classifier, each frame cropped with its SOURCE landmarks' box."""
    import fer_classifier as fc

    boxes = [fc.face_box(lm) if np.isfinite(lm[:468]).all() else None for lm in src_lms]
    return fc.classify_frames(frames, src_lms, boxes=boxes)


def p_target_gain(src_frames, out_frames, src_lms, emotion: str) -> dict:
    """P(target) before and after (same crop box per frame): ``{"p_src", "p_out", "delta", "per_frame"}``."""
    import fer_classifier as fc

    ps = fc.p_target(emotion_probabilities(src_frames, src_lms), emotion)
    po = fc.p_target(emotion_probabilities(out_frames, src_lms), emotion)
    return {"p_src": float(np.nanmean(ps)), "p_out": float(np.nanmean(po)), "delta": float(np.nanmean(po - ps)),
            "per_frame": (po - ps).tolist()}


# ---- mouth --------------------------------------------------------------------------------------------------------

def new_opening_mask(shape: tuple, src_lm: np.ndarray, dst_lm: np.ndarray, contour=T.LIPS_INNER,
                     erode_px: int | None = None) -> np.ndarray:
    """Pixels inside the target's contour polygon but not the source's (eroded by ~1 % IOD, at least 1 px, so the
    lip edge's anti-aliasing is not counted)."""
    if erode_px is None:
        erode_px = max(1, int(round(0.01 * iod(dst_lm))))
    new = polygon_mask(shape, dst_lm[list(contour)]) & ~polygon_mask(shape, src_lm[list(contour)])
    return erode(new, erode_px)


def interior_stats(rgb: np.ndarray, mask: np.ndarray, face_mean: float) -> dict:
    """``{"n", "dark_share", "std", "mean"}`` of the luminance in ``mask`` (dark: < 10 % of ``face_mean``)."""
    y = luminance(rgb)[mask]
    if y.size == 0:
        return {"n": 0, "dark_share": float("nan"), "std": float("nan"), "mean": float("nan")}
    return {"n": int(y.size), "dark_share": float((y < DARK_FRACTION * face_mean).mean()), "std": float(y.std()),
            "mean": float(y.mean())}


def mouth_new_opening(out_rgb: np.ndarray, src_lm: np.ndarray, dst_lm: np.ndarray) -> dict:
    """Statistics of the edited picture inside the new mouth opening (n = 0 when the edit opens nothing)."""
    mask = new_opening_mask(out_rgb.shape, src_lm, dst_lm)
    return interior_stats(out_rgb, mask, face_mean_luminance(out_rgb, dst_lm))


def mouth_interior(out_rgb: np.ndarray, dst_lm: np.ndarray) -> dict:
    """Statistics of the edited picture inside the target's whole inner-lip polygon (eroded as
    :func:`real_open_mouth` erodes the actor's own): the mouth as a viewer sees it, measured the way the actor's
    real open mouths are (a thin new crescent of lower teeth is uniform by nature; the interior it belongs to
    is not)."""
    mask = erode(polygon_mask(out_rgb.shape, dst_lm[list(T.LIPS_INNER)]), max(1, int(round(0.01 * iod(dst_lm)))))
    return interior_stats(out_rgb, mask, face_mean_luminance(out_rgb, dst_lm))


def real_open_mouth(frames, lms, min_opening: float = OPEN_MOUTH_IOD) -> dict | None:
    """The actor's own open mouths: statistics pooled over the inner-lip polygon of every frame whose inner-lip gap
    is at least ``min_opening`` IOD (None when no frame opens that far). ``frames_used`` says how many."""
    dark, stds, means, n, used = [], [], [], 0, 0
    for rgb, lm in zip(frames, lms):
        if not np.isfinite(lm[:468]).all() or T.mouth_opening(lm) / iod(lm) < min_opening:
            continue
        mask = erode(polygon_mask(rgb.shape, lm[list(T.LIPS_INNER)]), max(1, int(round(0.01 * iod(lm)))))
        s = interior_stats(rgb, mask, face_mean_luminance(rgb, lm))
        if s["n"] < 20:
            continue
        dark.append(s["dark_share"] * s["n"])
        stds.append(s["std"])
        means.append(s["mean"])
        n += s["n"]
        used += 1
    if not used:
        return None
    return {"n": n, "frames_used": used, "dark_share": float(np.sum(dark) / n), "std": float(np.median(stds)),
            "mean": float(np.median(means))}


def flat_black_hole(stats: dict, real: dict | None = None) -> bool:
    """True when a new mouth opening looks like a flat black hole rather than a mouth: far darker than the actor's
    own open mouths (dark share more than 0.3 above theirs; 0.6 absolute without a reference) or textureless
    (luminance std under half theirs; under 6 code values without a reference)."""
    if not stats["n"]:
        return False
    dark_limit = min(0.95, real["dark_share"] + 0.3) if real else 0.6
    std_limit = 0.5 * real["std"] if real else 6.0
    return stats["dark_share"] > dark_limit or stats["std"] < std_limit


# ---- eyes ---------------------------------------------------------------------------------------------------------

def _eye(side: str):
    return (T.RIGHT_EYE, T.RIGHT_IRIS) if side == "right" else (T.LEFT_EYE, T.LEFT_IRIS)


def iris_circle(lm: np.ndarray, side: str) -> tuple[np.ndarray, float]:
    """Iris centre (x, y) and radius from the iris landmarks (centre + 4 rim points)."""
    _, iris = _eye(side)
    c = lm[iris[0], :2]
    return c, float(np.linalg.norm(lm[list(iris[1:]), :2] - c, axis=1).mean())


def sclera_mask(shape: tuple, lm: np.ndarray, side: str) -> np.ndarray:
    """The visible sclera: inside the lid contour (eroded ~2 % IOD), outside the iris disc (radius x 1.15)."""
    contour, _ = _eye(side)
    inside = erode(polygon_mask(shape, lm[list(contour)]), max(1, int(round(0.02 * iod(lm)))))
    c, r = iris_circle(lm, side)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return inside & ((xx + 0.5 - c[0]) ** 2 + (yy + 0.5 - c[1]) ** 2 > (1.15 * r) ** 2)


def eye_new_area_ratio(src_rgb: np.ndarray, out_rgb: np.ndarray, src_lm: np.ndarray, dst_lm: np.ndarray,
                       side: str, min_px: int = 8, exclude_iris: bool = False, margin_px: int | None = None) -> dict:
    """Mean luminance of the edited picture in the eye's newly uncovered area (target lid polygon minus the
    source's) over the source's visible sclera's: ``{"n", "ratio", "new_mean", "sclera_mean"}`` (ratio NaN when
    fewer than ``min_px`` pixels are new). An eyeball (sclera, iris) reads near 1 (a little under where iris
    shows); a stretched lid or lash line far under 1; a skin-coloured smear usually above 1 (a sclera in the lids'
    shade is darker than the lit skin: people_0 1.46).

    The target lid polygon is eroded by its margin, ``margin_px`` (default ~1 % IOD, at least 1 px; 0: the whole
    polygon): the lashes and liner on the lid margin belong to the lid, not to the uncovered eyeball, just as the
    reference sclera (:func:`sclera_mask`) leaves out 2 % IOD. On the unedited footage the first pixel row inside
    the tracked upper lid reads 0.58-0.68 of the sclera (WDA, d3): counted, a real eye would fail the floor, and a
    lid that moved out by a fraction of a pixel (angry, happy) made a "new area" of lash pixels only."""
    contour, _ = _eye(side)
    if margin_px is None:
        margin_px = max(1, int(round(0.01 * iod(dst_lm))))
    new = erode(polygon_mask(out_rgb.shape, dst_lm[list(contour)]), margin_px) \
        & ~polygon_mask(out_rgb.shape, src_lm[list(contour)])
    if exclude_iris:                     # the sclera that widening shows, not the iris it uncovers too
        # eroded by ~1 % IOD on both sides (the old lid line as well)
        new = new_opening_mask(out_rgb.shape, src_lm, dst_lm, contour)
        c, r = iris_circle(dst_lm, side)
        yy, xx = np.mgrid[:out_rgb.shape[0], :out_rgb.shape[1]]
        new &= (xx + 0.5 - c[0]) ** 2 + (yy + 0.5 - c[1]) ** 2 > (1.15 * r) ** 2
    sclera = sclera_mask(src_rgb.shape, src_lm, side)
    ys = luminance(src_rgb)[sclera]
    yn = luminance(out_rgb)[new]
    sm = float(ys.mean()) if ys.size else float("nan")
    if yn.size < min_px or not ys.size:
        return {"n": int(yn.size), "ratio": float("nan"), "new_mean": float("nan"), "sclera_mean": sm}
    return {"n": int(yn.size), "ratio": float(yn.mean() / sm), "new_mean": float(yn.mean()), "sclera_mean": sm}


#: each eye's upper lid, outer corner to inner corner (the first half of RIGHT_EYE / LEFT_EYE)
_UPPER_LID = {"right": T.RIGHT_EYE[:9], "left": T.LEFT_EYE[:9]}


def lid_shade(rgb: np.ndarray, lm: np.ndarray, side: str, band=(0.06, 0.12)) -> float:
    """How much the upper lid shades the eye white: the median luminance of the sclera (inside the lid contour,
    outside the iris disc x 1.2) ``band`` eye widths below the upper lid, over the eye's brightest sclera (its 90th
    percentile); NaN with fewer than 3 such pixels. Real eyes on the shared footage read 0.70-0.91 (WDA 0.79-0.84,
    d3 0.72-0.81, people_0 0.70-0.76, d12 0.88-0.91; d8 0.56-0.62); near 1 is a flat, evenly lit white."""
    import cv2

    contour, _ = _eye(side)
    up = lm[list(_UPPER_LID[side]), :2]
    width = float(np.linalg.norm(up[0] - up[-1]))
    if not np.isfinite(up).all() or width < 4:
        return float("nan")
    line = np.zeros(rgb.shape[:2], np.uint8)
    cv2.polylines(line, [np.round(up * 16).astype(np.int32)], False, 255, 1, cv2.LINE_AA, 4)
    below = cv2.distanceTransform((line == 0).astype(np.uint8), cv2.DIST_L2, 5) / width
    c, r = iris_circle(lm, side)
    yy, xx = np.mgrid[:rgb.shape[0], :rgb.shape[1]]
    sclera = polygon_mask(rgb.shape, lm[list(contour)]) & ((xx + 0.5 - c[0]) ** 2 + (yy + 0.5 - c[1]) ** 2
                                                           > (1.2 * r) ** 2)
    y = luminance(rgb)
    near = sclera & (below >= band[0]) & (below < band[1])
    if sclera.sum() < 20 or near.sum() < 3:
        return float("nan")
    return float(np.median(y[near]) / np.percentile(y[sclera], 90))


def iris_ratio(rgb: np.ndarray, lm: np.ndarray, side: str) -> float:
    """Roundness of the visible iris: sqrt(var across / var along) of the dark blob around the iris centre, in the
    eye's axes (along = the corner-to-corner line). A round, fully visible iris is ~1, a lid-clipped one < 1, a
    vertically stretched one > 1. NaN when no blob is found."""
    import cv2

    contour, _ = _eye(side)
    inside = erode(polygon_mask(rgb.shape, lm[list(contour)]), max(1, int(round(0.015 * iod(lm)))))
    if inside.sum() < 20:
        return float("nan")
    y = luminance(rgb)
    values = y[inside].astype(np.uint8)
    thresh, _ = cv2.threshold(values.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = inside & (y <= thresh)
    count, labels = cv2.connectedComponents(dark.astype(np.uint8), connectivity=8)
    c, r = iris_circle(lm, side)
    cx, cy = int(np.clip(c[0], 0, rgb.shape[1] - 1)), int(np.clip(c[1], 0, rgb.shape[0] - 1))
    label = labels[cy, cx]
    if label == 0:                       # the centre pixel is not dark: take the biggest blob near the centre
        near = labels[max(cy - int(r), 0): cy + int(r) + 1, max(cx - int(r), 0): cx + int(r) + 1]
        ids, counts = np.unique(near[near > 0], return_counts=True)
        if not len(ids):
            return float("nan")
        label = ids[np.argmax(counts)]
    yy, xx = np.nonzero(labels == label)
    if len(xx) < 6:
        return float("nan")
    a, b = lm[contour[0], :2], lm[contour[8], :2]      # eye corners
    u = (b - a) / max(np.linalg.norm(b - a), 1e-9)
    v = np.array([-u[1], u[0]])
    p = np.stack([xx + 0.5, yy + 0.5], 1)
    p = p - p.mean(0)
    return float(np.sqrt((p @ v).var() / max((p @ u).var(), 1e-9)))


def iris_roundness(rgb: np.ndarray, lm: np.ndarray, side: str, min_points: int = 12,
                   min_arc: float = 180.0, max_gaze: float = 0.3, min_gap: float = 1.6) -> float:
    """Roundness of the iris proper, the issue's "fitted ellipse axis ratio": minor over major axis of an ellipse
    fitted to the limbus (the sub-pixel iso-line halfway between the iris's and the sclera's luminance beside it, at
    each angle) where it lies away from the lids (more than 0.1 eye widths inside the lid contour) and near the
    tracked iris circle (0.75-1.3 radii: not a catchlight or the pupil's edge, not the lash line; from 0.6 a
    catchlight's rim inside d8's widened left iris bent the fit to 0.85), on the convex hull of those (a catchlight
    notching the edge is not the limbus). A lid that covers the iris's top or bottom (a real lower lid does, on most
    people) leaves the side arcs, which still fit the circle: unlike :func:`iris_ratio` it does not read a clipped
    iris as an oval. A warp's stretched iris reads < 1 the same. NaN where less than ``min_arc`` degrees of the
    limbus show (a blink, a half-lidded eye, an iris in the corner: an ellipse is not fixed by an arc) or no sclera
    is seen, and on an eye looking aside (its iris centre more than ``max_gaze`` of the half width from the eye's
    middle: ~22 degrees, past which the iris is seen obliquely, a real ellipse of ratio cos(gaze): d3 and d12
    looking aside, 0.35-0.47), or with the lids less than ``min_gap`` iris radii apart (a blink's onset, a squint:
    no round iris shows between them, and the iso-line runs along the lids)."""
    import cv2
    from skimage.measure import find_contours

    contour, _ = _eye(side)
    pts = np.asarray(lm, np.float64)[list(contour), :2]
    c, r = iris_circle(lm, side)
    width = float(np.linalg.norm(pts[0] - pts[8]))
    if not (np.isfinite(pts).all() and np.isfinite(r) and r > 1.0 and width > 4.0):
        return float("nan")
    gaze = float(np.dot(c - 0.5 * (pts[0] + pts[8]), pts[8] - pts[0])) / (0.5 * width * width)
    if abs(gaze) > max_gaze:
        return float("nan")
    upper, lower = RIGHT_LIDS if side == "right" else LEFT_LIDS
    if np.linalg.norm(lm[upper, :2] - lm[lower, :2]) < min_gap * r:     # the lids hide most of the iris
        return float("nan")
    pad = int(np.ceil(0.3 * width)) + 2
    x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int) - pad, 0)
    x1, y1 = np.ceil(pts.max(0)).astype(int) + pad
    crop = rgb[y0:y1, x0:x1]
    local = lm.copy()
    local[:, 0] -= x0
    local[:, 1] -= y0
    eye = polygon_mask(crop.shape, local[list(contour)]).astype(np.uint8)
    away = cv2.distanceTransform(np.pad(eye, 1), cv2.DIST_L2, 5)[1:-1, 1:-1] > 0.1 * width
    y = luminance(crop)
    sclera = sclera_mask(crop.shape, local, side)
    yy, xx = np.mgrid[:crop.shape[0], :crop.shape[1]]
    core = (xx + 0.5 - (c[0] - x0)) ** 2 + (yy + 0.5 - (c[1] - y0)) ** 2 < (0.7 * r) ** 2
    core &= eye.astype(bool)
    if sclera.sum() < 6 or core.sum() < 6:
        return float("nan")
    # the level halfway between the iris and the sclera, taken per 30-degree sector around the tracked centre and
    # interpolated between sectors: a real sclera is shaded toward a corner (d19's nasal side 90-97 against 124-135
    # on the temple's, his iris's rim ~75), and one level for the whole eye put that side's iso-line out in the
    # white (d19's round new iris read 0.83, d12's 0.87); where a sector shows too little of either, the whole
    # eye's level
    cx, cy = c[0] - x0, c[1] - y0
    ang = np.mod(np.arctan2(yy + 0.5 - cy, xx + 0.5 - cx), 2 * np.pi)
    rad = np.hypot(yy + 0.5 - cy, xx + 0.5 - cx)
    rim_in = (rad > 0.45 * r) & (rad < 0.8 * r) & eye.astype(bool)
    rim_out = sclera & (rad < 1.6 * r)
    sectors_n = 12
    sector = (ang / (2 * np.pi / sectors_n)).astype(int) % sectors_n
    level = np.full(sectors_n, 0.5 * (np.percentile(y[core], 40) + np.median(y[sclera])))
    for k in range(sectors_n):
        inner, outer = rim_in & (sector == k), rim_out & (sector == k)
        if inner.sum() >= 3 and outer.sum() >= 3:
            level[k] = 0.5 * (np.percentile(y[inner], 40) + np.median(y[outer]))
    mids = (np.arange(sectors_n) + 0.5) * (2 * np.pi / sectors_n)
    field = np.interp(ang, np.concatenate([mids - 2 * np.pi, mids, mids + 2 * np.pi]), np.tile(level, 3))
    found = find_contours(y - field, 0.0)
    if not found:
        return float("nan")
    p = np.concatenate(found)[:, ::-1] + 0.5                      # (x, y) of pixel centres
    d = np.hypot(p[:, 0] - (c[0] - x0), p[:, 1] - (c[1] - y0))
    ix, iy = np.clip(p.astype(int).T, 0, [[crop.shape[1] - 1], [crop.shape[0] - 1]])
    keep = (d > 0.75 * r) & (d < 1.3 * r) & away[iy, ix]
    if keep.sum() < min_points:
        return float("nan")
    # the limbus is convex: an iso-line dipping into the iris (a catchlight on its edge, a lash's shadow) is not
    # part of it; only points on the kept points' convex hull (within ~a pixel) are fitted
    hull = cv2.convexHull(p[keep].astype(np.float32))
    on_hull = np.array([cv2.pointPolygonTest(hull, (float(x), float(y)), True) for x, y in p[keep]]) < 0.75
    keep[np.flatnonzero(keep)[~on_hull]] = False
    if keep.sum() < min_points:
        return float("nan")
    # an ellipse is fixed by its boundary only where enough of it shows: at least ``min_arc`` degrees of the circle
    # around the tracked centre, in 15-degree sectors (a half-lidded iris's top arc, a blink's few points along a
    # lid, fit any ellipse; a widened eye's iris under its lower lid shows ~210, stretched 1.25x along the eye 180)
    rel = p[keep] - (c - [x0, y0])
    sectors = np.unique((np.mod(np.arctan2(rel[:, 1], rel[:, 0]), 2 * np.pi) / (np.pi / 12)).astype(int))
    if len(sectors) * 15.0 < min_arc:
        return float("nan")
    (_, _), (a, b), _ = cv2.fitEllipse(p[keep].astype(np.float32))
    return float(min(a, b) / max(a, b)) if max(a, b) > 0 else float("nan")


def frontal(lm: np.ndarray, min_balance: float = 0.7) -> bool:
    """A frontal frame: the nose tip sits between the face's sides with the nearer side at least
    ``min_balance`` of the farther (a head turned ~20 degrees reads ~0.6)."""
    lm = np.asarray(lm, np.float64)
    if not np.isfinite(lm[[1, 234, 454], :2]).all():
        return False
    a, b = np.linalg.norm(lm[1, :2] - lm[234, :2]), np.linalg.norm(lm[1, :2] - lm[454, :2])
    return bool(min(a, b) >= min_balance * max(a, b))


def eye_opening(lm: np.ndarray) -> np.ndarray:
    """(right, left) lid gap in IOD units (``...x478x3`` -> ``...x2``)."""
    lm = np.asarray(lm, np.float64)
    gaps = [np.linalg.norm(lm[..., a, :2] - lm[..., b, :2], axis=-1) for a, b in (RIGHT_LIDS, LEFT_LIDS)]
    return np.stack(gaps, -1) / T.inter_ocular(lm)[..., None]


def iris_net_eye_opening(rgb: np.ndarray, lm: np.ndarray, tracker) -> np.ndarray:
    """(right, left) lid gap in IOD units as the iris net reads it (MediaPipe's iris landmark model, the eye-sized
    net beside the face mesh: ``FaceTracker.eye_contours``, its lid points 12 and 4, the mesh's 159/145 and
    386/374), on crops ``lm``'s eye corners place: give the source's landmarks for both the source and the edit,
    so the crop does not follow the edit. A second reader of the opening beside the re-tracked mesh's
    (:func:`eye_opening`): on people_0 surprised the mesh's lids read the two eyes' widening 0.0335 and 0.0285 IOD
    and 0.0184 and 0.0239 on the mirrored picture (plan 0.0716 and 0.0718), the attention mesh's 0.0242 and 0.0373;
    this net's 0.0195 and 0.0184."""
    contours = tracker.eye_contours(np.ascontiguousarray(rgb[..., :3]), lm)
    gaps = np.linalg.norm(contours[:, 12, :2] - contours[:, 4, :2], axis=-1)
    return gaps / iod(lm)


def eye_symmetry_of(src_open: np.ndarray, out_open: np.ndarray, planned_change: np.ndarray | None = None,
                    min_change: float = 0.01, min_planned: float = 0.02) -> float:
    """:func:`eye_symmetry` on openings read by any reader (``Fx2`` each, right and left, IOD units), e.g.
    :func:`iris_net_eye_opening`; ``planned_change`` (Fx2, the plan's own change) keeps the frames where it changes
    both eyes by at least ``min_planned``."""
    d = (np.asarray(out_open, np.float64) - np.asarray(src_open, np.float64)).reshape(-1, 2)
    ok = np.isfinite(d).all(1) & (np.abs(d).max(1) >= min_change)
    if planned_change is not None:
        p = np.asarray(planned_change, np.float64).reshape(-1, 2)
        ok &= np.isfinite(p).all(1) & (np.abs(p).min(1) >= min_planned)
    if not ok.any():
        return float("nan")
    r, l = d[ok, 0], d[ok, 1]
    return float(np.median(np.where(r * l > 0, np.minimum(np.abs(r), np.abs(l)) / np.maximum(np.abs(r), np.abs(l)),
                                    0.0)))


def eye_symmetry(src_lms: np.ndarray, out_lms: np.ndarray, min_change: float = 0.01,
                 planned: np.ndarray | None = None, min_planned: float = 0.02) -> float:
    """How alike the two eyes' opening changes are, 0..1 (1 = the same change; 0 = opposite signs or one eye
    alone), median over frames where either eye changes by at least ``min_change`` IOD (NaN: no such frame).

    ``planned`` (the plan's target landmarks, Fx478x3): judge only the frames where the plan changes *both* eyes'
    opening by at least ``min_planned`` IOD, a change the re-tracker can resolve: its own read of an eye wobbles
    by ~0.005-0.007 IOD frame to frame around an edit (d12 behind glasses, measured), so on a planned change of
    ~0.01 IOD (or none: disgusted) the ratio of two such reads is its noise, not the edit's symmetry."""
    planned_change = None if planned is None else eye_opening(planned) - eye_opening(src_lms)
    return eye_symmetry_of(eye_opening(src_lms), eye_opening(out_lms), planned_change, min_change, min_planned)


def eye_change_seen(src_lms: np.ndarray, out_lms: np.ndarray, planned: np.ndarray) -> float:
    """How much of the planned eye-opening change a re-tracker reads on the output: mean re-tracked change over
    mean planned change, both eyes pooled (1 = all of it; NaN when the plan changes the eyes by under 0.005 IOD on
    average). Where it is far under 1 the re-tracked symmetry measures the tracker, not the picture."""
    d = (eye_opening(out_lms) - eye_opening(src_lms)).reshape(-1, 2)
    p = (eye_opening(planned) - eye_opening(src_lms)).reshape(-1, 2)
    ok = np.isfinite(d).all(1) & np.isfinite(p).all(1)
    if not ok.any() or abs(p[ok].mean()) < 0.005:
        return float("nan")
    return float(d[ok].mean() / p[ok].mean())


def eye_symmetry_mean(src_lms: np.ndarray, out_lms: np.ndarray, min_change: float = 0.005) -> float:
    """How alike the two eyes' opening changes are over the shot, 0..1: the per-eye mean change over the frames
    (1 = the same; 0 = opposite signs), NaN when neither eye changes by ``min_change`` IOD on average. Per-frame
    ratios (:func:`eye_symmetry`) are dominated by the tracker's noise where the change is ~0.01 IOD."""
    d = (eye_opening(out_lms) - eye_opening(src_lms)).reshape(-1, 2)
    d = d[np.isfinite(d).all(1)]
    if not len(d):
        return float("nan")
    r, l = d.mean(axis=0)
    if max(abs(r), abs(l)) < min_change:
        return float("nan")
    return float(min(abs(r), abs(l)) / max(abs(r), abs(l))) if r * l > 0 else 0.0


# ---- speech, plate ------------------------------------------------------------------------------------------------

#: The brow's lower edge (right side, outer -> inner), over the upper lid margin and its rings
#: (``ned_fx.manipulation.expression``'s UPPER_LID_R, LID_CREASE_R, LASH_RING_R, column by column).
BROW_EDGE_R = (46, 53, 52, 65, 55)


def _up(lm: np.ndarray) -> np.ndarray:
    up = lm[10, :2] - lm[152, :2]
    return up / np.linalg.norm(up)


def lid_skin_heights(lm: np.ndarray) -> np.ndarray:
    """One frame's crease ring and lash-band ring heights over the upper lid margin beneath them, column by column
    along the face's up direction (both eyes, 28 values; > 0: above the lid)."""
    up = _up(lm)
    out = []
    for lid, crease, ring in ((UPPER_LID_R, LID_CREASE_R, LASH_RING_R),
                              (mirrored(UPPER_LID_R), mirrored(LID_CREASE_R), mirrored(LASH_RING_R))):
        for skin in (crease, ring):
            out.append((lm[list(skin), :2] - lm[list(lid), :2]) @ up)
    return np.concatenate(out)


def brow_heights(lm: np.ndarray, points=UPPER_LID_R[1:-1]) -> np.ndarray:
    """One frame's brow lower edge straight above each of ``points`` (right side's; the left's are their mirrors),
    its height over the point along the face's up direction (the edge interpolated across the face)."""
    up = _up(lm)
    across = np.array([up[1], -up[0]])
    out = []
    for edge, pts in ((BROW_EDGE_R, points), (mirrored(BROW_EDGE_R), mirrored(points))):
        a_b, h_b = lm[list(edge), :2] @ across, lm[list(edge), :2] @ up
        order = np.argsort(a_b)
        a_p, h_p = lm[list(pts), :2] @ across, lm[list(pts), :2] @ up
        out.append(np.interp(a_p, a_b[order], h_b[order]) - h_p)
    return np.concatenate(out)


def lid_skin_ratio(src_lms: np.ndarray, dst_lms: np.ndarray) -> float:
    """The smallest height of the skin above an upper lid (crease and lash-band rings) over the lid margin,
    target over source, over the frames (< 0: the edit folds that skin through the lid)."""
    return float(min(np.min(lid_skin_heights(d) / lid_skin_heights(s)) for s, d in zip(src_lms, dst_lms)))


def brow_lid_ratio(src_lms: np.ndarray, dst_lms: np.ndarray, points=UPPER_LID_R[1:-1]) -> float:
    """The smallest height of the brow's lower edge over ``points`` (default: the upper lid margin), target over
    source, over the frames (< 0: the brow passes them)."""
    return float(min(np.min(brow_heights(d, points) / brow_heights(s, points)) for s, d in zip(src_lms, dst_lms)))


def mouth_opening_r(src_lms: np.ndarray, out_lms: np.ndarray) -> float:
    """Pearson r of the inner-lip gap (IOD units) over frames, output vs source (NaN if either is constant)."""
    a = T.mouth_opening(src_lms) / T.inter_ocular(src_lms)
    b = T.mouth_opening(out_lms) / T.inter_ocular(out_lms)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def outside_face_mask(shape: tuple, src_lm: np.ndarray, dst_lm: np.ndarray, margin: float = 0.15) -> np.ndarray:
    """Pixels outside the convex hull of source and target landmarks grown by ``margin`` IOD."""
    import cv2

    pts = np.concatenate([src_lm[:468, :2], dst_lm[:468, :2]])
    hull = cv2.convexHull(np.round((pts - 0.5) * 16).astype(np.int32))
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [hull], 1, shift=4)
    return ~dilate(mask.astype(bool), int(round(margin * iod(src_lm))))


def outside_face_change(src_rgb: np.ndarray, out_rgb: np.ndarray, src_lm: np.ndarray, dst_lm: np.ndarray) -> dict:
    """``{"changed_share", "max_abs"}`` of pixels outside the face (bit-exact: both 0)."""
    mask = outside_face_mask(src_rgb.shape, src_lm, dst_lm)
    diff = np.abs(src_rgb.astype(np.int16) - out_rgb.astype(np.int16)).max(-1)[mask]
    return {"changed_share": float((diff > 0).mean()) if diff.size else 0.0,
            "max_abs": int(diff.max()) if diff.size else 0}


def occluder_change(src_rgb: np.ndarray, out_rgb: np.ndarray, mask: np.ndarray) -> int:
    """Max abs code-value change over the occluder's pixels (``mask`` HxW bool; 0 when it is empty)."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return 0
    return int(np.abs(src_rgb.astype(np.int16) - out_rgb.astype(np.int16)).max(-1)[mask].max())


def jitter(lms: np.ndarray) -> float:
    """Mean second difference of the 468 mesh points over consecutive frames, in units of the shot's median IOD."""
    lms = np.asarray(lms, np.float64)
    xy = lms[:, :468, :2] / np.nanmedian(T.inter_ocular(lms))
    return float(np.nanmean(np.linalg.norm(xy[2:] - 2 * xy[1:-1] + xy[:-2], axis=2)))


def added_jitter(src_lms: np.ndarray, out_lms: np.ndarray) -> float:
    """Jitter of the edited output (re-tracked) minus the source's (tracked the same way), IOD units."""
    return jitter(out_lms) - jitter(src_lms)
