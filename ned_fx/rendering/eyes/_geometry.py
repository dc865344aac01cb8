"""Eye geometry shared by the model builder and the renderer: which landmarks make each eye, its frame
(corner-to-corner axis), and signed distances to the lid polygon."""

from __future__ import annotations

import numpy as np

from ... import topology as T
from ..sampling import median, remap_points, smoothstep  # noqa: F401  (smoothstep: the eye modules take it from here)

#: per eye (right, left): lid contour (upper lid first, corner to corner: its first ``UPPER`` points), corners in
#: image order (the eye's axis runs from the first to the second), iris points (centre, then four on the limbus)
EYES = ((T.RIGHT_EYE, (33, 133), T.RIGHT_IRIS), (T.LEFT_EYE, (362, 263), T.LEFT_IRIS))
UPPER = 9
NUM_POINTS = 478


def luminance(values: np.ndarray) -> np.ndarray:
    """Mean over the last (colour) axis: the plate-value brightness used for all ratios here."""
    return values.mean(axis=-1)


class EyeFrame:
    """One eye in one frame: corners ``a``, ``b`` (2,), width ``w``, unit axis and the down-pointing normal."""

    def __init__(self, points: np.ndarray, corners: tuple[int, int]):
        self.a, self.b = points[corners[0], :2], points[corners[1], :2]
        d = self.b - self.a
        self.w = float(np.hypot(d[0], d[1]))
        self.axis = d / max(self.w, 1e-9)
        self.normal = np.array([-self.axis[1], self.axis[0]])
        self.mid = 0.5 * (self.a + self.b)
        self.angle = float(np.arctan2(self.axis[1], self.axis[0]))

    def u(self, pts: np.ndarray) -> np.ndarray:
        """Position along the axis, -1 at the first corner, +1 at the second."""
        return ((pts - self.mid) @ self.axis) / (0.5 * max(self.w, 1e-9))


def segment_distance(pts: np.ndarray, a: np.ndarray, b: np.ndarray):
    """Distances from points Nx2 to segments (a, b: Sx2): (NxS distances, NxS positions along each 0..1)."""
    sx, sy = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
    inv = 1.0 / np.maximum(sx * sx + sy * sy, 1e-12)
    rx = pts[:, 0:1] - a[:, 0]
    ry = pts[:, 1:2] - a[:, 1]
    # in place (the same operations in the same order as the plain expressions: the same bits, fewer NxS arrays)
    tau = rx * sx
    tau += ry * sy
    tau *= inv
    np.maximum(tau, 0.0, out=tau)
    np.minimum(tau, 1.0, out=tau)
    rx -= tau * sx
    ry -= tau * sy
    rx *= rx
    ry *= ry
    rx += ry
    return np.sqrt(rx, out=rx), tau


def polygon_sdf(pts: np.ndarray, poly: np.ndarray, inside: np.ndarray | None = None):
    """Signed distance (inside > 0) of points Nx2 to the closed polygon Vx2, the nearest edge (index i: vertex i
    to i + 1) and the position along it (0..1). ``inside``: the points' inside test when already known."""
    a, b = poly, np.roll(poly, -1, axis=0)
    dist, tau = segment_distance(pts, a, b)
    j = dist.argmin(axis=1)
    rows = np.arange(len(pts))
    if inside is None:
        ay, by = a[:, 1][None], b[:, 1][None]
        py, px = pts[:, 1:2], pts[:, 0:1]
        straddle = (ay > py) != (by > py)
        xint = a[:, 0][None] + (py - ay) * (b[:, 0] - a[:, 0])[None] / np.where(straddle, by - ay, 1.0)
        inside = (np.count_nonzero(straddle & (px < xint), axis=1) % 2) == 1
    d = dist[rows, j]
    return np.where(inside, d, -d), j, tau[rows, j]


def polyline_distance(pts: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance of points Nx2 to the open polyline Vx2."""
    dist, _ = segment_distance(pts, line[:-1], line[1:])
    return dist.min(axis=1)


def polygon_mask(poly: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """(y1-y0)x(x1-x0) bool: the box's pixels whose centre lies inside the polygon (rasterised, 1/16 px)."""
    import cv2

    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    pts = np.round((poly - [x0 + 0.5, y0 + 0.5]) * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def inner_distance(mask: np.ndarray) -> np.ndarray:
    """Distance (pixels) of each pixel of a mask to the nearest pixel outside it (0 outside)."""
    from ...filters import distance_transform_edt

    # the exact Euclidean transform (an eye's box is small); OpenCV 5.1's DIST_MASK_PRECISE is not deterministic
    # on one thread (it read uninitialised memory), and a frame must render the same in every run
    padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), bool)       # (np.pad costs more than the transform)
    padded[1:-1, 1:-1] = mask
    return distance_transform_edt(padded).astype(np.float32)[1:-1, 1:-1]


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """``inner_distance(mask) - inner_distance(~mask)``, both transforms in one: the two padded boxes one above
    the other (a row of zeros between them is nearer to each pixel than anything beyond it)."""
    from ...filters import distance_transform_edt

    m = np.asarray(mask, bool)
    h, w = m.shape
    both = np.zeros((2 * h + 4, w + 2), bool)
    both[1:h + 1, 1:-1] = m
    both[h + 3:-1, 1:-1] = ~m
    d = distance_transform_edt(both).astype(np.float32)
    return d[1:h + 1, 1:-1] - d[h + 3:-1, 1:-1]


def farther_than(mask: np.ndarray, r: float, or_equal: bool = False) -> np.ndarray:
    """``inner_distance(mask) > r`` (``>= r`` with ``or_equal``), exactly, by one erosion with the disk of the
    pixel offsets within ``r`` (compared as :func:`inner_distance`'s float32 distances are): ~6x faster on an
    eye's box than the transform, which computes every distance to compare one."""
    import cv2

    m = np.asarray(mask, bool)
    if r < 0 or (or_equal and r == 0):
        return np.ones(m.shape, bool)                   # every distance (0 outside) passes
    if not r < np.hypot(*m.shape) + 1:                  # beyond any pixel's distance (or NaN): none passes
        return np.zeros(m.shape, bool)
    reach = int(np.floor(r)) + 1
    d = np.arange(-reach, reach + 1)
    dist = np.sqrt((d[:, None] ** 2 + d[None, :] ** 2).astype(np.float64)).astype(np.float32)
    near = ~(dist >= r) if or_equal else ~(dist > r)                # offsets an outside pixel must not be at
    out = cv2.erode(m.view(np.uint8), near.view(np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return out.view(bool)


def polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def sample(image: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Bilinear samples of an HxWxK image at points Nx2 (continuous coordinates: pixel centres at +0.5) -> NxK."""
    return remap_points(image, (pts[:, 0] - 0.5).astype(np.float32), (pts[:, 1] - 0.5).astype(np.float32))


class EyeDistance:
    """Signed distance to one lid polygon (inside > 0), rasterised once over a box (pixel accuracy) for cheap
    look-ups at many points."""

    def __init__(self, poly: np.ndarray, x0: int, y0: int, x1: int, y1: int):
        inside = polygon_mask(poly, x0, y0, x1, y1)
        self.x0, self.y0 = x0, y0
        self.sd = signed_distance(inside)

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        """Signed distance at points Nx2 (nearest pixel; outside the box: the box's edge)."""
        h, w = self.sd.shape
        ix = np.minimum(np.maximum((pts[:, 0] - self.x0).astype(np.int64), 0), w - 1)
        iy = np.minimum(np.maximum((pts[:, 1] - self.y0).astype(np.int64), 0), h - 1)
        return self.sd[iy, ix]


def refine_iris(image: np.ndarray, centre: np.ndarray, radius: float, frame: EyeFrame, poly: np.ndarray,
                margin: float, origin=(0.0, 0.0), distance=None) -> tuple[np.ndarray, float]:
    """The iris centre and radius from the image itself: where the limbus (iris -> sclera) lies left and right of
    the tracked centre along the eye's axis, on radial profiles the lids do not cover.

    Args:
        image: HxWxK crop; origin: its top-left corner in the coordinates of ``centre``/``poly``.
        centre, radius: the tracked iris; frame: the eye's frame; poly: the lid polygon; margin: lash margin (px).
        distance: an :class:`EyeDistance` of ``poly`` to use instead of exact distances.

    Returns:
        (centre, radius, softness): the tracked centre and radius where the image cannot tell (a side hidden, no
        contrast); softness: the limbus's blur, the sigma (pixels) of a Gaussian edge with its 20-80 % rise
        (None where the image cannot tell).
    """
    rho = np.linspace(0.5, 1.5, 41)
    found, widths = [], []
    for side in (0.0, np.pi):
        theta = frame.angle + side + np.deg2rad(np.linspace(-35.0, 35.0, 15))
        pts = (centre[None, None, :] + radius * rho[None, :, None]
               * np.stack([np.cos(theta), np.sin(theta)], -1)[:, None, :]).reshape(-1, 2)
        sd = distance(pts) if distance is not None else polygon_sdf(pts, poly)[0]
        seen = (sd > margin).reshape(len(theta), len(rho))
        lum = luminance(sample(image, pts - np.asarray(origin))).reshape(len(theta), len(rho))
        count = seen.sum(0)
        if (count[rho < 0.75] < 2).any() or (count[rho > 1.25] < 2).sum() > 4:
            found.append(None)
            continue
        prof = np.where(count > 0, (lum * seen).sum(0) / np.maximum(count, 1), np.nan)
        ok = ~np.isnan(prof)
        inner, outer = median(prof[ok & (rho < 0.75)]), median(prof[ok & (rho > 1.25)])
        if not outer > 1.5 * max(inner, 1e-6):
            found.append(None)
            continue
        half = 0.5 * (inner + outer)
        found.append(_crossing(rho, prof, ok, half))
        lo, hi = (_crossing(rho, prof, ok, inner + f * (outer - inner)) for f in (0.2, 0.8))
        if lo is not None and hi is not None and hi > lo:
            widths.append((hi - lo) * radius / 1.68)
    soft = float(median(widths)) if widths else None
    if any(f is None for f in found) or not all(0.7 < f < 1.35 for f in found):
        return centre, radius, soft
    right, left = found                     # along the axis (+), against it (-)
    return centre + 0.5 * radius * (right - left) * frame.axis, 0.5 * radius * (right + left), soft


def _crossing(rho: np.ndarray, prof: np.ndarray, ok: np.ndarray, level: float):
    """The first radius (from 0.6 out) where the profile rises through ``level`` (linear), or None."""
    cross = np.flatnonzero(ok & (rho >= 0.6) & (prof >= level))
    if not len(cross) or cross[0] == 0 or not ok[cross[0] - 1]:
        return None
    i = cross[0]
    t = (level - prof[i - 1]) / max(prof[i] - prof[i - 1], 1e-9)
    return rho[i - 1] + t * (rho[i] - rho[i - 1])
