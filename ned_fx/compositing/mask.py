"""The soft face mask: the face oval (forehead to chin) of the target and the source landmarks together,
pulled down at the hairline, feathered with a signed distance transform.

Coordinates: continuous pixel coordinates of the region, (0, 0) the top-left corner of its top-left pixel.
"""

from __future__ import annotations

import numpy as np

from .. import topology as T
from ..errors import InvalidParameterError, NoFaceError
from .config import CompositorConfig

FOREHEAD, CHIN = 10, 152
_SHIFT = 4
#: the brows' upper edges (right then left), from the tail to the head
_BROW_TOPS = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)


def _points(landmarks, what: str) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < T.NUM_MESH or pts.shape[1] < 2:
        raise InvalidParameterError(f"{what} must be Px2 or Px3 landmarks (P >= {T.NUM_MESH}), got shape {pts.shape}")
    pts = pts[:, :2]
    if not np.isfinite(pts[list(T.FACE_OVAL) + [T.EYE_OUTER_RIGHT, T.EYE_OUTER_LEFT]]).all():
        raise NoFaceError(f"{what} has NaN points (no face in this frame); composite only frames with a face")
    return pts


def oval_polygon(landmarks: np.ndarray, forehead_shrink: float) -> np.ndarray:
    """The face oval with its top pulled down towards the brows (hairline excluded).

    Each oval point moves along the face's down direction (forehead point 10 -> chin 152) by
    ``forehead_shrink x face height x t^2``, t = 0 at the oval's centre height and 1 at the forehead point.

    Args:
        landmarks: Px2 points (P >= 468).
        forehead_shrink: fraction of the face height.

    Returns:
        36x2 float64 polygon.
    """
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    oval = pts[list(T.FACE_OVAL)]
    up = pts[FOREHEAD] - pts[CHIN]
    height = float(np.linalg.norm(up))
    if height < 1e-9:
        return oval
    up /= height
    centre = oval.mean(axis=0)
    top = max(float((pts[FOREHEAD] - centre) @ up), 1e-9)
    t = np.clip((oval - centre) @ up / top, 0.0, 1.0)
    return oval - np.outer(forehead_shrink * height * t * t, up)


def mask_polygons(landmarks: np.ndarray, config: CompositorConfig, iod: float) -> list[np.ndarray]:
    """The polygons one face adds to the mask: its oval pulled down at the forehead (:func:`oval_polygon`) and,
    with ``brow_margin``, the convex band from its brows to ``brow_margin x iod`` above them (both Vx2 float64,
    region pixels)."""
    import cv2

    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    polys = [oval_polygon(pts, config.forehead_shrink)]
    if config.brow_margin > 0:
        brows = pts[list(_BROW_TOPS)]
        up = pts[FOREHEAD] - pts[CHIN]
        up = up / max(float(np.linalg.norm(up)), 1e-9)
        band = np.concatenate([brows, brows + config.brow_margin * iod * up])
        polys.append(cv2.convexHull(band.astype(np.float32))[:, 0].astype(np.float64))
    return polys


def face_mask(region_size: tuple[int, int], target, source=None, config: CompositorConfig | None = None,
              scratch=None) -> np.ndarray:
    """Soft mask of the face in a region: 1 inside, 0 outside, a smooth ramp ``feather`` wide at the edge.

    The union of the target's and the source's oval polygons (so the face is covered where it was and where
    it goes), each pulled down at the forehead and reaching ``brow_margin`` above its brows, grown by ``grow``; the ramp is a smoothstep of the signed
    distance to that union's edge, computed on a coarse grid and upsampled.

    Args:
        region_size: (H, W) of the region.
        target: Px2/Px3 target landmarks in region pixels.
        source: Px2/Px3 source landmarks in region pixels, or None.
        config: a :class:`CompositorConfig` (defaults when None).
        scratch: a :class:`~ned_fx.scratch.Scratch` for the work arrays and the result (valid until it
            makes the next mask), or None: fresh arrays.

    Returns:
        HxW float32 in 0..1.

    Raises:
        InvalidParameterError: bad shapes. NoFaceError: NaN landmarks.
    """
    import cv2

    cfg = config or CompositorConfig()
    h, w = int(region_size[0]), int(region_size[1])
    if h < 1 or w < 1:
        raise InvalidParameterError(f"region size must be positive, got {w}x{h}")
    shapes = [_points(target, "target landmarks")] + ([] if source is None else [_points(source, "source landmarks")])
    iod = float(np.linalg.norm(shapes[0][T.EYE_OUTER_RIGHT] - shapes[0][T.EYE_OUTER_LEFT]))
    iod = max(iod, 1.0)
    scale = min(1.0, cfg.mask_cells / max(h, w))
    gh, gw = max(2, int(round(h * scale))), max(2, int(round(w * scale)))
    sx, sy = gw / w, gh / h
    # the polygons on the coarse grid, in its pixel-centre convention, drawn past the grid's edge if need be
    pad = int(np.ceil(cfg.feather * iod * max(sx, sy))) + 2
    take = scratch.take if scratch is not None else (lambda name, shape, dtype=np.float32: np.empty(shape, dtype))
    inside = take("inside", (gh + 2 * pad, gw + 2 * pad), np.uint8)
    inside.fill(0)
    for pts in shapes:
        for poly in mask_polygons(pts, cfg, iod):
            g = (poly * [sx, sy] - 0.5 + pad) * (1 << _SHIFT)
            cv2.fillPoly(inside, [np.rint(g).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    # the 5x5 chamfer distance (within ~2 % of Euclidean: the ramp is smooth anyway); OpenCV 5.1's
    # DIST_MASK_PRECISE is not deterministic on one thread (it read uninitialised memory: masks differed between
    # identical calls), and a frame must render the same in every run
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_5, dst=take("d_in", inside.shape))
    outside = np.subtract(1, inside, out=take("outside", inside.shape, np.uint8))
    d_out = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_5, dst=take("d_out", inside.shape))
    cell = 0.5 * (1 / sx + 1 / sy)                                  # region pixels per grid cell
    # the ramp on the grid itself (not its padding), float32, in place: the same operations as
    # x = clip(0.5 + ((inside ? d_in - 0.5 : 0.5 - d_out) * cell + grow * iod) / (feather * iod), 0, 1)
    grid = (slice(pad, pad + gh), slice(pad, pad + gw))
    x = np.subtract(d_in[grid], np.float32(0.5), out=take("ramp_x", (gh, gw)))
    np.subtract(np.float32(0.5), d_out[grid], out=x, where=inside[grid] == 0)
    x *= cell
    x += cfg.grow * iod
    x /= cfg.feather * iod
    x += np.float32(0.5)
    np.clip(x, 0.0, 1.0, out=x)
    ramp = np.multiply(x, 2.0, out=take("ramp_t", (gh, gw)))
    np.subtract(np.float32(3.0), ramp, out=ramp)
    soft = np.multiply(x, x, out=take("ramp_soft", (gh, gw)))
    soft *= ramp                                                    # smoothstep: x * x * (3 - 2 x)
    if (gh, gw) == (h, w):
        return soft
    return cv2.resize(soft, (w, h), dst=take("mask", (h, w)), interpolation=cv2.INTER_LINEAR)
