"""The occluder detector: glasses frames and hair over the face, as a soft matte over the face region.

Works on one frame's region crop (the renderer's input) and its tracked landmarks; numpy + OpenCV only, a few
milliseconds per frame. Everything is done on a copy scaled to a fixed inter-ocular distance (``work_iod``) so
thresholds and lengths mean the same at any plate size; the matte is scaled back.

Cues:
    glasses: thin lines darker (or brighter) than both their sides, found by a bar filter along the local
        Hessian normal at a few widths, in the band between the brows and the upper cheeks across the face
        oval; the lids, lashes and lid creases (the eye contours grown), the brows and the nose's sides are
        what the landmarks explain and are left out; hysteresis keeps connected thin structures, and short or
        blob-like pieces are dropped. Then a pair of lens outlines (ellipses around the eyes) is fitted to the
        lines found; where enough of the outline is seen, each rim is traced along it (the strongest line
        across the outline at every angle, kept smooth), also through the lid crease and the brows, where the
        line filter alone cannot tell a rim from the face.
    hair: colour against a per-frame skin model sampled at clearly-skin mesh points (cheeks, nose bridge,
        forehead centre): chroma far from the skin's, or much darker and off its colour, inside the face oval
        (pulled in from its outline), never on the eyes, brows, lips or nostrils; gaps closed so a lock is one
        patch. Under a fringe of the skin's own colour (the shot's forehead centre is itself textured:
        :class:`~ned_fx.occlusion.FringeBuilder`), texture too: the luma's fine detail far more contrasted than
        the cheeks' (``OcclusionConfig.hair_texture``).
    glasses on a still (:meth:`OcclusionDetector.find_glasses`): the same lines and lens pair, each lens then moved
        onto the strongest line under its eye, and kept only when the rims under both eyes are real thin lines
        (the median profile across each dips at its centre below the cheek on both sides); only the parts of the
        outlines that are such lines, and the found lines along them, are kept.

Limits: in one frame, clear plastic frames of a few code values' contrast (d12.mp4) are found only in fragments:
give the shot's :class:`~ned_fx.occlusion.GlassesModel` (``detect(..., glasses=model)``), which adds them up
over the shot. On a still, a rim that runs through the lid crease or the brows is kept only where it is seen as
a thin line there (d8.jpg: the lower rims and sides; the top rims only in part). Hands are skin-coloured and
are not detected (give a holdout matte, :func:`~ned_fx.occlusion.load_holdout`).
"""

from __future__ import annotations

import numpy as np

from .. import topology as T
from ..errors import InvalidParameterError, NoFaceError
from ..scratch import per_thread
from .config import OcclusionConfig

#: Clearly-skin mesh points the skin model is sampled at: cheeks, nose bridge, forehead centre.
SKIN_POINTS = (50, 280, 101, 330, 117, 346, 123, 352, 205, 425, 6, 197, 195, 151, 9, 108, 337)
#: ... the cheeks' (the texture cue's reference: the forehead centre may be under a fringe)
CHEEK_POINTS = SKIN_POINTS[:10]
#: The texture cue's scales (x IOD): the detail below the first (a Gaussian's sigma), its energy averaged over the
#: second.
_TEXTURE_FINE, _TEXTURE_LOCAL = 0.019, 0.031
#: ... and the floor under the low-passed luma it is divided by (x the cheeks' luma: dark hair stays finite)
_TEXTURE_FLOOR = 0.1
#: The forehead's centre (a mesh point) and the disc around it (x IOD) whose texture tells a fringe over it.
_FOREHEAD_CENTRE, _FRINGE_RADIUS = 151, 0.15
#: The brows' upper edges (outer -> inner), right and left: the forehead hair cue looks above them.
_BROW_TOP_R = (70, 63, 105, 66, 107)
_BROW_TOP_L = (300, 293, 334, 296, 336)
#: How far past the face oval (x IOD) the forehead hair cue looks: beyond the compositor's band above a raised
#: brow (``CompositorConfig.brow_margin``) and the brows' own rise at the strongest intensity.
_FOREHEAD_REACH = 0.3
#: Nostrils and the nose's base (never hair).
NOSE_BASE = (98, 97, 2, 326, 327, 294, 278, 344, 440, 275, 4, 45, 220, 115, 48, 64)
#: The nose's outline from the bridge down (its sides' shading is not a frame below the eye line).
NOSE = (168, 6, 122, 196, 217, 126, 209, 49, 64, 98, 97, 2, 326, 327, 294, 279, 429, 355, 437, 419, 351)
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
_SHIFT = 4


def _poly(mask: np.ndarray, pts: np.ndarray, value: int = 1) -> None:
    import cv2

    cv2.fillPoly(mask, [np.rint((pts - 0.5) * (1 << _SHIFT)).astype(np.int32)], value, lineType=cv2.LINE_8,
                 shift=_SHIFT)


def _hull(pts: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.convexHull(np.asarray(pts, np.float32))[:, 0].astype(np.float64)


def _grow(mask: np.ndarray, radius: float) -> np.ndarray:
    import cv2

    r = int(round(radius))
    if r <= 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask, kernel)


def _grow_runs(mask: np.ndarray, radius: float) -> np.ndarray:
    """:func:`_grow` of a mask whose every row is one run of ones (or none): a filled convex polygon, the face
    oval. Each grown row is the union of the runs around it, each widened by the kernel's row at that offset: the
    same pixels as the kernel pass, from the runs' ends alone (a large kernel's pass costs ~0.4 ms a frame). Any
    other mask (a row of two runs, a union with a gap) goes to :func:`_grow`."""
    import cv2

    r = int(round(radius))
    if r <= 0:
        return mask
    if mask.dtype != np.uint8 or mask.ndim != 2 or mask.max() > 1:
        return _grow(mask, radius)
    h, w = mask.shape
    on = mask > 0
    filled = on.any(axis=1)
    first = on.argmax(axis=1)
    last = w - 1 - on[:, ::-1].argmax(axis=1)
    if not np.array_equal(np.count_nonzero(on, axis=1), np.where(filled, last - first + 1, 0)):
        return _grow(mask, radius)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    half = (np.count_nonzero(kernel, axis=1) - 1) // 2               # each kernel row is a centred run
    rows = np.arange(h)[:, None] + np.arange(-r, r + 1)[None, :]    # h x (2r+1): the source row at each offset
    ok = (rows >= 0) & (rows < h)
    src = np.clip(rows, 0, h - 1)
    ok &= filled[src]
    lo = np.where(ok, first[src] - half, w + 1)
    hi = np.where(ok, last[src] + half, -2)
    order = np.argsort(lo, axis=1, kind="stable")
    lo, hi = np.take_along_axis(lo, order, 1), np.take_along_axis(hi, order, 1)
    reach = np.maximum.accumulate(hi, axis=1)
    if np.any((lo[:, 1:] <= w) & (lo[:, 1:] > reach[:, :-1] + 1)):      # a gap in some row's union
        return _grow(mask, radius)
    cols = np.arange(w)
    return ((cols >= lo[:, :1]) & (cols <= reach[:, -1:])).astype(np.uint8)


def _line_contrast(grey: np.ndarray, scale: float, gx: np.ndarray, gy: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(dark, bright): how much a thin line of half-width ``scale`` px through each pixel is darker / brighter than
    both of its sides, measured across the line (along the Hessian's strongest-curvature direction, the line's
    normal)."""
    import cv2

    # float32 throughout, in place where a temporary is done with
    b = cv2.GaussianBlur(grey, (0, 0), scale)
    dxx = cv2.Sobel(b, cv2.CV_32F, 2, 0, ksize=3)
    dyy = cv2.Sobel(b, cv2.CV_32F, 0, 2, ksize=3)
    dxy = cv2.Sobel(b, cv2.CV_32F, 1, 1, ksize=3)
    dxy *= 2.0
    # the normal's direction theta = atan2(dxy2, dxx - dyy) / 2 (+ pi/2 where the trace is negative), its cosine
    # and sine from the half-angle formulas (numpy's float32 arctan2 alone took half of this function): with
    # c2 = cos(2 theta), cos theta = sqrt((1 + c2) / 2) >= 0 and sin theta = sqrt((1 - c2) / 2) with dxy's sign
    # (signed zeros as atan2's); no curvature at all (dxx = dyy, dxy = 0) is theta = 0
    diff = np.subtract(dxx, dyy)
    r = np.multiply(diff, diff)
    r += np.square(dxy)
    np.sqrt(r, out=r)
    flat = r == 0
    r[flat] = 1.0
    diff[flat] = 1.0
    np.divide(diff, r, out=diff)                                   # cos(2 theta)
    np.clip(diff, -1.0, 1.0, out=diff)
    nx = np.add(1.0, diff, out=r)
    nx *= 0.5
    np.sqrt(nx, out=nx)
    ny = np.subtract(1.0, diff, out=diff)
    ny *= 0.5
    np.sqrt(ny, out=ny)
    np.copysign(ny, dxy, out=ny)
    trace = np.add(dxx, dyy, out=dxx)
    turn = ~(trace >= 0)                                           # the other eigenvalue is the stronger one:
    nx, ny = np.where(turn, np.negative(ny), nx), np.where(turn, nx, ny)     # (cos, sin) turned by pi/2 there
    reach = np.float32(2.0 * scale + 0.5)
    nx *= reach
    ny *= reach
    sharp = cv2.GaussianBlur(grey, (0, 0), 0.6 * scale, dst=b)
    at_x, at_y = np.add(gx, nx, out=dyy), np.add(gy, ny, out=dxy)
    plus = cv2.remap(sharp, at_x, at_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    minus = cv2.remap(sharp, np.subtract(gx, nx, out=at_x), np.subtract(gy, ny, out=at_y), cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
    dark = np.minimum(plus, minus)
    dark -= sharp
    bright = np.maximum(plus, minus, out=plus)
    return dark, np.subtract(sharp, bright, out=bright)


def _forehead(inside: np.ndarray, p: np.ndarray, iod: float) -> tuple[np.ndarray, np.ndarray]:
    """The part of the (grown) oval mask ``inside`` above the brows' upper edges (the line through them, carried
    on past the brows' ends along the eye axis) and, as a bool mask, its top edge (the mask's outline there, a
    few pixels deep)."""
    import cv2

    up = p[10] - p[152]
    up = up / max(float(np.linalg.norm(up)), 1e-9)
    side = np.array([-up[1], up[0]])
    brows = np.concatenate([p[list(_BROW_TOP_R)], p[list(_BROW_TOP_L)]])
    brows = brows[np.argsort(brows @ side)] - 0.02 * iod * up      # into the brows (never hair: features)
    far = 4.0 * max(inside.shape)
    below = np.concatenate([[brows[0] - far * side], brows, [brows[-1] + far * side],
                            [brows[-1] + far * side - far * up], [brows[0] - far * side - far * up]])
    mask = np.zeros_like(inside)
    _poly(mask, below)
    forehead = inside & (1 - mask)
    rim = max(2, int(round(0.02 * iod)))
    inner = cv2.erode(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim + 1, 2 * rim + 1)))
    return forehead, (forehead > 0) & (inner == 0)


def _hysteresis(weak: np.ndarray, strong: np.ndarray, min_extent: float, max_width: float) -> np.ndarray:
    """The connected components of ``weak`` that contain a ``strong`` pixel, span >= ``min_extent`` px and are
    thin (pixel count / span <= ``max_width``: lines, not blobs)."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(weak.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros(weak.shape, bool)
    seeded = np.zeros(count, bool)
    seeded[labels[strong & weak]] = True
    extent = np.hypot(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    keep = seeded & (extent >= min_extent) & (stats[:, cv2.CC_STAT_AREA] <= max_width * np.maximum(extent, 1.0))
    keep[0] = False
    return keep[labels]


def trace_rim(score: np.ndarray, on: np.ndarray, normal: np.ndarray, offsets: np.ndarray, window: int,
              tolerance: float, low: float) -> tuple[np.ndarray, np.ndarray]:
    """Follow a rim along a fitted outline (the per-frame lens fit and the shot's glasses model).

    At each outline point (``on`` Ax2, unit ``normal`` Ax2) the strongest ``score`` across the outline (``offsets``
    px along the normal) is the rim; a rim is smooth, so its offset follows the circular median of ``window``
    neighbours, and weak points or points far from that median are gaps.

    Returns:
        ``(good, smooth)``: A bool (strength >= ``low`` and within ``tolerance`` px of the median) and A offsets.
    """
    h, w = score.shape
    pts = on[:, None, :] + offsets[None, :, None] * normal[:, None, :]                 # A x M x 2
    xi = np.clip(np.rint(pts[..., 0] - 0.5).astype(np.int32), 0, w - 1)
    yi = np.clip(np.rint(pts[..., 1] - 0.5).astype(np.int32), 0, h - 1)
    r = score[yi, xi]
    best = np.argmax(r, axis=1)
    strength = r[np.arange(len(on)), best]
    shift = offsets[best]
    half = window // 2
    padded = np.concatenate([shift[-half:], shift, shift[:half]])
    smooth = np.median(np.stack([padded[m: m + len(shift)] for m in range(window)]), axis=0)
    return (strength >= low) & (np.abs(shift - smooth) <= tolerance), smooth


class OcclusionDetector:
    """Finds what covers the face (glasses frames, hair) in a frame's region; build once, call per frame.

    Args:
        config: an :class:`OcclusionConfig` (defaults when None).
    """

    def __init__(self, config: OcclusionConfig | None = None):
        self.config = config or OcclusionConfig()

    def detect(self, region: np.ndarray, landmarks: np.ndarray, white: float = 1.0, glasses=None,
               frames: bool = True, fringe: float | None = None) -> np.ndarray:
        """The occluder matte of one frame.

        Args:
            region: HxWxK float32 plate values of the face region (K = 3 for RGB, 1 for grey).
            landmarks: Px3 (or Px2) landmarks in region pixels, P >= 468 (the tracker's 478).
            white: the plate value of display white (255 for 8-bit, 65535 for 16-bit, 1.0 for float).
            glasses: the shot's :class:`~ned_fx.occlusion.GlassesModel` (from :class:`GlassesModelBuilder`):
                its frames are mapped into this frame by the head pose (nudged onto the frame's own lines) and
                added to what this frame shows; None (or an empty model): this frame's lines only. A model of
                fewer than ``model_min_frames`` frames (a still's) is those frames' own lines: it is all there is.
            frames: look for glasses frames at all (the pipeline looks only where the shot's glasses model found
                glasses: see :meth:`detect_in_shot`); hair is looked for either way, as the config says.
            fringe: the shot's forehead texture (:class:`~ned_fx.occlusion.FringeBuilder`; how far the texture
                cue for a fringe is used: ``OcclusionConfig.hair_texture``); None: this frame's own
                (:meth:`forehead_texture`).

        Returns:
            HxW float32 in 0..1: 1 on occluders, 0 on the face, a soft edge of about ``softness`` px.

        Raises:
            InvalidParameterError: bad shapes or white. NoFaceError: NaN landmarks.
        """
        import cv2

        cfg = self.config
        work = self._prepare(region, landmarks, white, grey=cfg.glasses and frames)   # hair alone needs no luma
        if work is None:
            h, w = np.asarray(region).shape[:2]
            return np.zeros((h, w), np.float32)
        (h, w), (ww, wh), (sx, sy), small, grey, p, s_iod, full, iod = work
        found = np.zeros((wh, ww), np.uint8)
        if cfg.glasses and frames:
            shot_model = glasses is not None and not glasses.empty
            if not shot_model or glasses.frames >= cfg.model_min_frames:
                # the model has the lens rims; a short shot's model (a still's) has all its frames' lines too
                found |= self._frames(grey, p, s_iod, lenses=not shot_model)[0]
            if shot_model:
                from .glasses import place

                shot = place(glasses, grey, full[: T.NUM_MESH], cfg, (sx, sy))
                if shot is not None:
                    found |= shot
        hair_found = None
        if (cfg.hair or cfg.forehead_hair) and small.shape[2] == 3:
            half, half_luma, hp, h_iod = self._half(small, p, s_iod)
            hair = self._hair(half, half_luma, hp, h_iod, forehead_only=not cfg.hair, fringe=fringe)
            if hair.any():
                hair_found = cv2.resize(hair, (ww, wh), dst=per_thread(self).take("hair", (wh, ww), np.uint8),
                                        interpolation=cv2.INTER_NEAREST)
        if not found.any():
            # nothing but hair, or nothing at all (a matte of zeros adds nothing to the hair's)
            if hair_found is None:
                return np.zeros((h, w), np.float32)
            matte = None
        else:
            # the structure's own pixels stay at exactly 1
            matte = self._soft_matte(found, (w, h), cfg.softness, "frames")
        if hair_found is not None:
            # hair's edge is a colour boundary found at half resolution: a wider soft edge (a lock's outline is
            # soft anyway), so the skin moved beside it meets it without a seam; its core stays at exactly 1
            hm = self._soft_matte(hair_found, (w, h), max(cfg.softness, cfg.hair_softness * iod), "hair")
            matte = hm if matte is None else np.maximum(matte, hm, out=matte)
        return matte

    def _soft_matte(self, found: np.ndarray, size: tuple[int, int], sigma: float, name: str) -> np.ndarray:
        """A found structure (uint8 0/1, working pixels) as a matte over the region (``size`` = (w, h)): grown by
        ``grow``, scaled to the region (linear), blurred by ``sigma`` and doubled, clipped to 0..1 (a new array;
        its temporaries in the thread's work arrays)."""
        import cv2

        space = per_thread(self)
        grown = _grow(found, self.config.grow)
        matte = space.take(f"{name}_matte", grown.shape)
        np.copyto(matte, grown)
        if matte.shape != (size[1], size[0]):
            matte = cv2.resize(matte, size, dst=space.take(f"{name}_region", (size[1], size[0])),
                               interpolation=cv2.INTER_LINEAR)
        if not sigma > 0:
            return matte.copy()
        matte = cv2.GaussianBlur(matte, (0, 0), sigma)
        matte *= 2.0
        return np.clip(matte, 0.0, 1.0, out=matte)

    def _prepare(self, region: np.ndarray, landmarks: np.ndarray, white: float, work_iod: float | None = None,
                 grey: bool = True):
        """The checked inputs on the working copy: ``((h, w), (ww, wh), (sx, sy), small, grey, p, s_iod, full,
        iod)`` (region and working sizes, working / region scale, the working copy over white and its luma,
        landmarks and IOD in working pixels, the landmarks as given, the IOD in region pixels), or None for a face
        too small to look at. The working copy has ``config.work_iod`` (never enlarged), or ``work_iod`` when
        given; ``grey`` False: no luma (None in its place)."""
        import cv2

        cfg = self.config
        img = np.asarray(region, dtype=np.float32)
        if img.ndim == 2:
            img = img[:, :, None]
        if img.ndim != 3 or img.shape[2] not in (1, 3) or img.shape[0] < 4 or img.shape[1] < 4:
            raise InvalidParameterError(f"region must be HxWx3 or HxWx1 plate values, got shape {img.shape}")
        if not white > 0:
            raise InvalidParameterError(f"white must be > 0, got {white}")
        pts = np.asarray(landmarks, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[0] < T.NUM_MESH or pts.shape[1] < 2:
            raise InvalidParameterError(f"landmarks must be Px2 or Px3 (P >= {T.NUM_MESH}), got shape {pts.shape}")
        full = pts
        pts = pts[:, :2]
        if not np.isfinite(pts[: T.NUM_MESH]).all():
            raise NoFaceError("the landmarks have NaN points (no face in this frame); detect occluders only on "
                              "frames with a face")
        h, w = img.shape[:2]
        iod = float(np.linalg.norm(pts[T.EYE_OUTER_LEFT] - pts[T.EYE_OUTER_RIGHT]))
        if iod < 4.0:
            return None
        if work_iod is None:
            scale = min(1.0, cfg.work_iod / iod)
            if scale > 0.85:
                scale = 1.0                  # a resize by nearly 1 costs more than working a little larger
        else:
            scale = work_iod / iod           # exactly this IOD, enlarged too (one still: its cost does not matter)
        ww, wh = max(4, int(round(w * scale))), max(4, int(round(h * scale)))
        sx, sy = ww / w, wh / h
        space = per_thread(self)                 # the working copies live in the thread's work arrays
        k = img.shape[2]
        small = img if (ww, wh) == (w, h) else cv2.resize(
            img, (ww, wh), dst=space.take("small", (wh, ww) if k == 1 else (wh, ww, k)), interpolation=cv2.INTER_AREA)
        if small.ndim == 2:
            small = small[:, :, None]
        if not (np.isfinite(small.min()) and np.isfinite(small.max())):      # NaN and inf show there
            small = np.nan_to_num(small, nan=0.0, posinf=white, neginf=0.0)
        small = np.multiply(small, np.float32(1.0 / white), out=space.take("scaled", small.shape))
        p = pts * [sx, sy]                                           # landmarks in working pixels
        s_iod = iod * 0.5 * (sx + sy)
        if grey:
            luma = space.take("grey", small.shape[:2])
            grey = small[:, :, 0] if small.shape[2] == 1 else np.matmul(small, _LUMA, out=luma)
            grey = np.clip(grey, 0.0, 2.0, out=luma)
        else:
            grey = None

        return (h, w), (ww, wh), (sx, sy), small, grey, p, s_iod, full, iod

    def find_glasses(self, region: np.ndarray, landmarks: np.ndarray, white: float = 1.0) -> np.ndarray | None:
        """Glasses on one frame alone (a still, a shot too short for a :class:`~ned_fx.occlusion.GlassesModel`):
        the frame lines with both lens rims traced, kept only when the rims under both eyes are real thin lines.

        On one frame the lens pair also fits what a face draws by itself (brows and lid creases above the eyes,
        eye bags and socket shading below them: the astronaut, small faces). Under the eyes there is only cheek,
        so the rims there decide: along the traced lower arc of each lens (``still_lower`` of it found), the
        median profile across the rim must dip at its centre by ``still_dip`` of the brighter of its two sides
        (0.04-0.08 IOD out) -- a line no wider than a frame, the same on both sides; soft shading drifts, edges
        dip on one side only. A bright rim (clear plastic catching light) needs ``bright_factor`` times that.

        Args:
            region, landmarks, white: as for :meth:`detect`.

        Returns:
            HxW bool: the frames (their lines, not grown: :meth:`detect` grows and softens what it keeps), or
            None: no glasses seen.

        Raises:
            InvalidParameterError: bad shapes or white. NoFaceError: NaN landmarks.
        """
        import cv2

        cfg = self.config
        if not cfg.glasses:
            return None
        pts = np.asarray(landmarks, dtype=np.float64)
        img = np.asarray(region)
        if (pts.ndim != 2 or pts.shape[0] < T.NUM_MESH or pts.shape[1] < 2 or img.ndim not in (2, 3)
                or not np.isfinite(pts[: T.NUM_MESH, :2]).all()):
            self._prepare(region, landmarks, white)                   # raises the error that says what is wrong
            return None
        # a crop anchored on the face (its origin a whole pixel from the eyes' centre, its size from the landmarks'
        # spread): the resampling below then sees the same pixels wherever the region starts
        q = pts[:, :2]
        iod = float(np.linalg.norm(q[T.EYE_OUTER_LEFT] - q[T.EYE_OUTER_RIGHT]))
        c = 0.5 * (q[T.EYE_OUTER_LEFT] + q[T.EYE_OUTER_RIGHT])
        margin = 0.25 * iod
        x0, y0 = (np.floor(c) - np.ceil(c - q[: T.NUM_MESH].min(axis=0) + margin)).astype(int)
        x1, y1 = (np.floor(c) + np.ceil(q[: T.NUM_MESH].max(axis=0) - c + margin)).astype(int) + 1
        h, w = img.shape[:2]
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        sub = img[y0:y1, x0:x1]
        at = pts.copy()
        at[:, :2] -= [x0, y0]
        for size in cfg.still_iod:
            work = self._prepare(sub, at, white, size)
            if work is None:
                return None
            (sh, sw), (ww, wh), _, _, grey, p, s_iod, _, _ = work
            lines, rims = self._frames(grey, p, s_iod, lenses=True, support=cfg.still_support, refine=True)
            if len(rims) == 2 and min(_rim_dip(grey, rim, s_iod, cfg) for rim in rims) >= cfg.still_accept:
                # only the lines along the lenses' outlines: on one frame the rest (hair over the brows, the
                # glabella's folds) cannot be told from the face, and a kept patch of face ruins an edit
                # and only where the rim is seen to be a thin line below the brows (the trace also runs along
                # brows and hair: a strand of a fringe is a thin line too)
                along = np.zeros_like(lines)
                rim_px = np.zeros_like(lines)
                for rim in rims:
                    # ... except between the brows, where a rim runs up to the bridge and no brow is there
                    ok = _rim_lines(grey, rim, s_iod, cfg) & (~_above_brows(rim[1], p)
                                                              | _over_glabella(rim[1], p, cfg.glabella_margin * s_iod))
                    px = np.rint((rim[1] - 0.5) * (1 << _SHIFT)).astype(np.int32)
                    for run in _closed_runs(ok):
                        cv2.polylines(along, [px[run]], False, 1, lineType=cv2.LINE_8, shift=_SHIFT,
                                      thickness=max(1, int(round(2 * cfg.still_corridor * s_iod))))
                        cv2.polylines(rim_px, [px[run]], False, 1, thickness=cfg.rim_width, lineType=cv2.LINE_8,
                                      shift=_SHIFT)
                for bridge in _bridge(grey, rims, p, s_iod, cfg):
                    cv2.polylines(rim_px, [np.rint((bridge - 0.5) * (1 << _SHIFT)).astype(np.int32)], False, 1,
                                  thickness=cfg.rim_width, lineType=cv2.LINE_8, shift=_SHIFT)
                found = ((lines & along) | rim_px).astype(np.float32)
                if (ww, wh) != (sw, sh):
                    found = cv2.resize(found, (sw, sh), interpolation=cv2.INTER_LINEAR)
                mask = np.zeros((h, w), bool)
                mask[y0:y1, x0:x1] = found >= 0.5
                return mask
        return None

    def detect_in_shot(self, region: np.ndarray, landmarks: np.ndarray, white: float = 1.0,
                       glasses=None, fringe: float | None = None) -> np.ndarray | None:
        """The occluder matte as the pipeline asks for it (None: nothing found): glasses frames only where the
        shot's glasses model found glasses (on one frame alone the line cues also take brows, lid creases and
        eye-socket shading for rims: seen on the astronaut; a still's model comes from
        :meth:`find_glasses`, which checks the rims), hair as the config says (over the forehead by default;
        ``fringe``: the shot's forehead texture, as :meth:`detect` takes it)."""
        cfg = self.config
        has_glasses = glasses is not None and not glasses.empty
        if not (has_glasses or cfg.hair or cfg.forehead_hair):
            return None
        matte = self.detect(region, landmarks, white, glasses=glasses, frames=has_glasses, fringe=fringe)
        return matte if np.any(matte > 0) else None

    def forehead_texture(self, region: np.ndarray, landmarks: np.ndarray, white: float = 1.0) -> float | None:
        """How textured the forehead's centre is (its texture over the cheeks', :func:`_texture`: ~1 bare skin,
        2.5+ under a fringe of curls), as :meth:`detect` measures it for ``OcclusionConfig.hair_texture``; None
        where there is nothing to measure (a face too small, a grey plate, the forehead out of the picture)."""
        work = self._prepare(region, landmarks, white, grey=False)
        if work is None or work[3].shape[2] != 3:
            return None
        _, _, _, small, _, p, s_iod, _, _ = work
        _, half_luma, hp, h_iod = self._half(small, p, s_iod)
        return _forehead_texture(half_luma, hp, h_iod)

    def _half(self, small: np.ndarray, p: np.ndarray, s_iod: float):
        """``(rgb, luma, landmarks, iod)`` at half the working resolution, where hair is looked for (hair is
        large: half of it sees it as well)."""
        import cv2

        wh, ww = small.shape[:2]
        hw, hh = max(4, ww // 2), max(4, wh // 2)
        space = per_thread(self)
        half = cv2.resize(small, (hw, hh), dst=space.take("half", (hh, hw, 3)), interpolation=cv2.INTER_AREA)
        return (half, np.matmul(half, _LUMA, out=space.take("half_luma", (hh, hw))), p * [hw / ww, hh / wh],
                s_iod * hw / ww)

    # ---- cues ----------------------------------------------------------------------------------------------

    def _frames(self, grey: np.ndarray, p: np.ndarray, iod: float, lenses: bool = True,
                support: float | None = None, refine: bool = False) -> tuple[np.ndarray, list]:
        """Glasses frames: connected thin lines in the band around the eyes, working pixels (uint8 0/1), and the
        traced lens rims (``[(good, points, normals)]`` per lens, working pixels: see :meth:`_lenses`; empty when
        no lens pair was fitted). ``support``: the lens pair's least support (default ``lens_support``);
        ``refine``: each lens moved onto the strongest line under its eye (see :func:`_refine_lower`)."""
        cfg = self.config
        wh, ww = grey.shape
        out = np.zeros((wh, ww), np.uint8)
        right, left = p[T.EYE_OUTER_RIGHT], p[T.EYE_OUTER_LEFT]
        u = (left - right) / max(np.linalg.norm(left - right), 1e-9)
        v = np.array([-u[1], u[0]])
        centre = 0.5 * (left + right)
        if (p[152] - centre) @ v < 0:                                 # v points down the face (to the chin)
            v = -v
        brow_pts = p[list(T.RIGHT_BROW) + list(T.LEFT_BROW)]
        top = float(((brow_pts - centre) @ v).min()) - cfg.band_above * iod
        bottom = cfg.band_below * iod
        # the band: between the two depths, inside the face oval pulled in by band_side
        oval = p[list(T.FACE_OVAL)]
        across = (oval - centre) @ u
        lo, hi = across.min(), across.max()
        corners = np.array([centre + u * a + v * d for a, d in ((lo, top), (hi, top), (hi, bottom), (lo, bottom))])
        inset = np.array([centre + u * a + v * d for a, d in ((lo + cfg.band_side * iod, top),
                                                              (hi - cfg.band_side * iod, top),
                                                              (hi - cfg.band_side * iod, bottom),
                                                              (lo + cfg.band_side * iod, bottom))])
        x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 3
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, ww), min(y1, wh)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return out, []
        q = p - [x0, y0]                                              # landmarks in the band's crop
        c = centre - [x0, y0]
        bh, bw = y1 - y0, x1 - x0
        band = np.zeros((bh, bw), np.uint8)
        _poly(band, corners - [x0, y0])
        inside = np.zeros((bh, bw), np.uint8)
        _poly(inside, q[list(T.FACE_OVAL)])
        band &= inside                                                # where a traced rim may run
        core = np.zeros((bh, bw), np.uint8)
        _poly(core, inset - [x0, y0])
        core &= band                                                  # where frame lines are looked for
        explained = np.zeros((bh, bw), np.uint8)
        for eye in (T.RIGHT_EYE, T.LEFT_EYE):
            e = q[list(eye)]
            _poly(explained, e)
            _poly(explained, e - v * cfg.crease * iod)                # the lid crease above the upper lid
            _poly(explained, e + v * cfg.lower_crease * iod)          # and the one under the lower lid
        explained = _grow(explained, cfg.eye_margin * iod)
        for brow in (T.RIGHT_BROW, T.LEFT_BROW):
            b = q[list(brow)]
            _poly(explained, np.concatenate([b[:5], b[5:][::-1]]))
        nose = np.zeros((bh, bw), np.uint8)
        _poly(nose, _hull(q[list(NOSE)]))
        gx, gy = np.meshgrid(np.arange(bw, dtype=np.float32), np.arange(bh, dtype=np.float32))
        depth = (gx + 0.5 - c[0]) * v[0] + (gy + 0.5 - c[1]) * v[1]
        explained |= _grow(nose, cfg.brow_margin * iod) & (depth > cfg.nose_below * iod)
        explained = _grow(explained, cfg.brow_margin * iod)
        area = (core > 0) & (explained == 0)
        if not area.any():
            return out, []
        crop = np.ascontiguousarray(grey[y0:y1, x0:x1])
        dark = bright = None
        for s in cfg.line_scales:
            d, b = _line_contrast(crop, s, gx, gy)
            dark = d if dark is None else np.maximum(dark, d)
            bright = b if bright is None else np.maximum(bright, b)
        weak = area & (dark >= cfg.line_low)
        strong = weak & (dark >= cfg.line_high)
        if cfg.bright_lines:
            k = cfg.bright_factor
            bw_ = area & (bright >= cfg.line_low * k)
            weak |= bw_
            strong |= bw_ & (bright >= cfg.line_high * k)
        lines = _hysteresis(weak, strong, cfg.min_line_length * iod, cfg.max_line_width * iod)
        support = cfg.lens_support if support is None else support
        if lenses and support < 1.0 and lines.any():
            eyes = np.zeros((bh, bw), np.uint8)
            for eye in (T.RIGHT_EYE, T.LEFT_EYE):
                _poly(eyes, q[list(eye)])
            eyes = _grow(eyes, cfg.eye_margin * iod) > 0
            traced, rims = self._lenses(q, u, v, iod, lines, area, (band > 0) & ~eyes, dark, bright, support,
                                        refine=refine)
            lines |= traced
            rims = [(good, pts + [x0, y0], normal) for good, pts, normal in rims]
        else:
            rims = []
        out[y0:y1, x0:x1] = lines
        return out, rims

    def _lenses(self, q, u, v, iod, lines, area, open_area, dark, bright, least: float,
                refine: bool = False) -> tuple[np.ndarray, list]:
        """The rims' faint parts: a pair of lens ellipses (mirror-symmetric about the face's midline, each eye
        its own width) fitted to the frame lines found so far; where enough of their outline is found, the
        rim is traced along each outline (the strongest line across it at every angle, kept smooth), also
        across the lid crease and the brows.

        Returns:
            ``(found, rims)``: the traced rims (bool map) and, per lens (right eye first), ``(good, points,
            normals)``: which of the 180 outline angles (0 along the eye axis, pi/2 down the face) lie on a line,
            the traced rim's points and its unit normals (crop pixels); ``rims`` is empty when no pair fits.
        """
        import cv2

        cfg = self.config
        bh, bw = lines.shape
        # a lookup image: 2 = a found line (within a pixel), 1 = visible but no line, 0 = not looked at
        code = area.astype(np.uint8) * (1 + (cv2.dilate(lines.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0))
        t = np.linspace(0.0, 2.0 * np.pi, 40, endpoint=False)
        cos_t, sin_t = np.cos(t), np.sin(t)
        centres = [q[list(eye)].mean(axis=0) for eye in (T.RIGHT_EYE, T.LEFT_EYE)]
        outwards = (-u, u)

        def support(n, du, dv, a, b):
            """Fraction of lens outline n (arrays of offsets and semi-axes, x IOD, broadcast) on found lines."""
            cen = centres[n] + (du[..., None] * outwards[n] + dv[..., None] * v) * iod
            x = cen[..., None, 0] + (a[..., None] * cos_t * u[0] + b[..., None] * sin_t * v[0]) * iod
            y = cen[..., None, 1] + (a[..., None] * cos_t * u[1] + b[..., None] * sin_t * v[1]) * iod
            xi, yi = np.rint(x - 0.5).astype(np.int32), np.rint(y - 0.5).astype(np.int32)
            inb = (xi >= 0) & (xi < bw) & (yi >= 0) & (yi < bh)
            c = np.where(inb, code[np.clip(yi, 0, bh - 1), np.clip(xi, 0, bw - 1)], 0)
            seen = (c > 0).sum(axis=-1)
            hits = (c == 2).sum(axis=-1)
            return np.where(seen >= 0.35 * len(t), hits / np.maximum(seen, 0.8 * len(t)), 0.0)

        # coarse grid: a shared height and vertical offset; each eye its own outward offset and width
        du, dv, aa, bb = (np.linspace(-0.05, 0.15, 5), np.linspace(-0.05, 0.15, 5), np.linspace(0.25, 0.5, 6),
                          np.linspace(0.2, 0.4, 5))
        g = np.meshgrid(du, dv, aa, bb, indexing="ij")
        per_eye = [support(n, *g).transpose(1, 3, 0, 2).reshape(len(dv), len(bb), -1) for n in range(2)]
        joint = 0.5 * (per_eye[0].max(axis=2) + per_eye[1].max(axis=2))                  # (dv, bb)
        j, k = np.unravel_index(np.argmax(joint), joint.shape)
        best = [np.unravel_index(np.argmax(per_eye[n][j, k]), (len(du), len(aa))) for n in range(2)]
        # fine: half steps around it
        near = np.array([-1.0, 0.0, 1.0])
        sd, sv, sa, sb = 0.5 * (du[1] - du[0]), 0.5 * (dv[1] - dv[0]), 0.5 * (aa[1] - aa[0]), 0.5 * (bb[1] - bb[0])
        fine = []
        for n in range(2):
            g = np.meshgrid(du[best[n][0]] + near * sd, dv[j] + near * sv, aa[best[n][1]] + near * sa,
                            bb[k] + near * sb, indexing="ij")
            score = support(n, *g).transpose(1, 3, 0, 2).reshape(3, 3, 9)
            fine.append((score, [x.transpose(1, 3, 0, 2).reshape(3, 3, 9) for x in g]))
        joint = 0.5 * (fine[0][0].max(axis=2) + fine[1][0].max(axis=2))
        j, k = np.unravel_index(np.argmax(joint), joint.shape)
        if joint[j, k] < least:
            return np.zeros((bh, bw), bool), []
        fits = []
        for n in range(2):
            score, (gd, gv, ga, gb) = fine[n]
            m = int(np.argmax(score[j, k]))
            fits.append((centres[n] + (gd[j, k, m] * outwards[n] + gv[j, k, m] * v) * iod, ga[j, k, m] * iod,
                         gb[j, k, m] * iod))
        # trace each rim along its fitted outline: at every angle, the strongest line across the outline
        reach = max(1.0, cfg.lens_corridor * iod)
        low = cfg.line_low * cfg.lens_relax
        response = np.maximum(dark, bright / cfg.bright_factor) if cfg.bright_lines else dark
        response = np.where(open_area, response, -1.0)
        if refine:
            fits = [_refine_lower(response, c, a, b, u, v, outwards[n], iod, cfg.line_high)
                    for n, (c, a, b) in enumerate(fits)]
        offsets = np.arange(-reach, reach + 0.25, 0.5)
        angles = np.linspace(0.0, 2.0 * np.pi, 180, endpoint=False)
        found = np.zeros((bh, bw), np.uint8)
        rims = []
        for c, a, b in fits:
            ca, sa = np.cos(angles)[:, None], np.sin(angles)[:, None]
            on = c + a * ca * u + b * sa * v                                           # (180, 2)
            normal = (ca / a) * u + (sa / b) * v
            normal /= np.linalg.norm(normal, axis=1, keepdims=True)
            good, smooth = trace_rim(response, on, normal, offsets, window=5, tolerance=1.5, low=low)
            rim = on + smooth[:, None] * normal
            rims.append((good, rim, normal))
            px = np.rint((rim - 0.5) * (1 << _SHIFT)).astype(np.int32)
            runs, run = [], []
            for m in range(len(angles)):
                if good[m]:
                    run.append(px[m])
                elif run:
                    runs.append(run)
                    run = []
            if run:
                if runs and good[0]:
                    runs[0] = run + runs[0]            # the outline is closed: the last run joins the first
                else:
                    runs.append(run)
            runs = [np.array(r, np.int32) for r in runs if len(r) > 1]
            if len(runs) == 1 and len(runs[0]) == len(angles):
                cv2.polylines(found, runs, True, 1, thickness=cfg.rim_width, lineType=cv2.LINE_8, shift=_SHIFT)
            elif runs:
                cv2.polylines(found, runs, False, 1, thickness=cfg.rim_width, lineType=cv2.LINE_8, shift=_SHIFT)
        return (found > 0) & open_area, rims

    def _hair(self, rgb: np.ndarray, grey: np.ndarray, p: np.ndarray, iod: float,
              forehead_only: bool = False, fringe: float | None = None) -> np.ndarray:
        """Hair over the face: colour far from the skin model inside the face oval (uint8 0/1); with
        ``forehead_only``, only above the brows' upper edges and only patches that reach the oval's top edge."""
        import cv2

        cfg = self.config
        out = np.zeros(grey.shape, np.uint8)
        # the skin model: the median of a 5x5 patch around each clearly-skin point, robust centre and spread
        eps = np.float32(1e-3)
        xy = np.clip(np.rint(p[list(SKIN_POINTS)] - 0.5).astype(int), 2,
                     [max(grey.shape[1] - 3, 2), max(grey.shape[0] - 3, 2)])
        offs = np.arange(-2, 3)
        ys = np.clip(xy[:, 1, None, None] + offs[None, :, None], 0, grey.shape[0] - 1)
        xs = np.clip(xy[:, 0, None, None] + offs[None, None, :], 0, grey.shape[1] - 1)
        patches = np.log(np.maximum(rgb[ys, xs], eps))
        samples = np.median((patches[..., [0, 2]] - patches[..., 1:2]).reshape(len(xy), -1, 2), axis=1)
        skin_luma = float(np.median(np.median(grey[ys, xs].reshape(len(xy), -1), axis=1)))
        centre = np.median(samples, axis=0)
        spread = np.maximum(1.4826 * np.median(np.abs(samples - centre), axis=0), 0.03)
        # only the face oval's box is looked at (with forehead_only: from above the oval down to the brows)
        oval = p[list(T.FACE_OVAL)]
        pad = int(round(_FOREHEAD_REACH * iod)) if forehead_only else 0      # hair hangs in from above the oval
        x0, y0 = np.maximum(np.floor(oval.min(axis=0)).astype(int) - pad, 0)
        x1, y1 = np.minimum(np.ceil(oval.max(axis=0)).astype(int) + 1 + pad, [grey.shape[1], grey.shape[0]])
        if forehead_only:
            y1 = min(y1, int(np.ceil(p[list(_BROW_TOP_R + _BROW_TOP_L), 1].max() + 0.1 * iod)) + 1)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return out
        # a fringe over the forehead's centre, of the skin's own colour (curls and strands are textured, skin, even
        # lined, is not): how textured each pixel is over the cheeks' skin, looked at as far as the shot's (or this
        # frame's) forehead centre is textured (OcclusionConfig.hair_texture)
        texture, texture_at = None, np.inf
        if cfg.hair_texture > 0:
            made = None
            if fringe is None:
                made = _texture_and_reference(grey, p, iod)
                fringe = _forehead_texture(grey, p, iod, made)
            lo, hi = cfg.hair_fringe
            f = float(np.clip(((fringe if fringe is not None else 0.0) - lo) / (hi - lo), 0.0, 1.0))
            share = f * f * (3.0 - 2.0 * f)
            if share > 0:                   # none: the threshold out of reach; a full fringe: hair_texture
                tex, ref = made if made is not None else _texture_and_reference(grey, p, iod)
                if tex is not None:
                    texture_at = cfg.hair_texture / share
                    texture = tex[y0:y1, x0:x1] * np.float32(1.0 / ref)
        full, p = out, p - [x0, y0]
        rgb, grey = rgb[y0:y1, x0:x1], grey[y0:y1, x0:x1]
        wh, ww = grey.shape
        logs = np.log(np.maximum(rgb, eps))
        chroma = logs[:, :, [0, 2]] - logs[:, :, 1:2]
        # shaded skin may be more saturated, by up to skin_shade where it is 30 % or more darker than the model
        shade = np.clip((1.0 - grey / max(skin_luma, 1e-6)) / 0.3, 0.0, 1.0) * np.float32(cfg.skin_shade)
        dist = _skin_distance(chroma, centre, spread, shade)
        inside = np.zeros((wh, ww), np.uint8)
        _poly(inside, p[list(T.FACE_OVAL)])
        # far from the skin's colour (skin in light further: see OcclusionConfig.lit_skin); or much darker than it
        # and off its colour too (not a shadow on skin)
        start, factor = cfg.lit_skin
        far = np.float32(cfg.skin_distance)
        if factor > 1.0:
            lit = np.clip((grey / np.float32(max(skin_luma, 1e-6)) - np.float32(start))
                          / np.float32(max(1.0 - start, 1e-6)), 0.0, 1.0)
            far = far * (1.0 + np.float32(factor - 1.0) * lit)
        hair = (dist > far) | ((grey < cfg.hair_darkness * skin_luma) & (dist > 0.5 * cfg.skin_distance))
        if texture is not None:         # or textured and no brighter than the skin: hair of the skin's own colour
            hair |= (texture > texture_at) & (grey < cfg.hair_texture_luma * skin_luma)
        features = np.zeros((wh, ww), np.uint8)
        for eye in (T.RIGHT_EYE, T.LEFT_EYE):
            e = p[list(eye)]
            _poly(features, e)
            _poly(features, e - (p[152] - p[10]) / max(np.linalg.norm(p[152] - p[10]), 1e-9) * 0.08 * iod)
            _poly(features, e + (e - e.mean(axis=0)) * 0.3)          # lashes and liner past the corners
        for brow in (T.RIGHT_BROW, T.LEFT_BROW):
            b = p[list(brow)]
            _poly(features, np.concatenate([b[:5], b[5:][::-1]]))
        lips = p[list(T.LIPS_OUTER)]
        _poly(features, lips + (lips - lips.mean(axis=0)) * 0.2)       # lips' edges are soft: a wider margin
        _poly(features, _hull(p[list(NOSE_BASE)]))
        features = _grow(features, cfg.feature_margin * iod) > 0
        inset = int(round(cfg.hair_inset * iod))
        top_edge = None
        if forehead_only:
            # the forehead and the fringe above it, out past the oval's top (a raised brow's band reaches there)
            inside, top_edge = _forehead(_grow_runs(inside, pad), p, iod)
        elif inset > 0:
            inside = cv2.erode(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * inset + 1, 2 * inset + 1)))
        hair &= (inside > 0) & ~features
        hair = cv2.morphologyEx(hair.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        r = int(round(cfg.hair_close * iod))
        if r > 0:                            # one solid patch per lock of hair, not a lace of kept and moved bits
            hair = cv2.morphologyEx(hair, cv2.MORPH_CLOSE,
                                    cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
            hair &= (inside > 0) & ~features
        count, labels, stats, _ = cv2.connectedComponentsWithStats(hair, connectivity=8)
        if count > 1:
            keep = stats[:, cv2.CC_STAT_AREA] >= cfg.min_hair_area * iod * iod
            if top_edge is not None:                 # hair over the forehead hangs from the hairline
                touches = np.zeros(count, bool)
                touches[np.unique(labels[top_edge])] = True
                keep &= touches
            keep[0] = False
            full[y0:y1, x0:x1] = keep[labels]
        return full


def _texture(grey: np.ndarray, iod: float, floor: float) -> np.ndarray:
    """Per pixel, the local contrast of the luma's fine detail (its high-pass's RMS over the low-passed luma, that
    at least ``floor``: dark hair stays finite), at scales that follow the IOD (``iod`` working pixels): what a curl
    or a strand of hair has and skin has not."""
    import cv2

    fine, local = max(0.6, _TEXTURE_FINE * iod), max(1.0, _TEXTURE_LOCAL * iod)
    detail = grey - cv2.GaussianBlur(grey, (0, 0), fine)
    np.multiply(detail, detail, out=detail)
    energy = np.sqrt(cv2.GaussianBlur(detail, (0, 0), local))
    return energy / (cv2.GaussianBlur(grey, (0, 0), local) + np.float32(floor))


def _texture_and_reference(grey: np.ndarray, p: np.ndarray, iod: float) -> tuple[np.ndarray | None, float | None]:
    """:func:`_texture` over the picture and its median at the cheeks, ``(None, None)`` where the cheeks are out
    of the picture or black (the floor is ``_TEXTURE_FLOOR`` times their luma: the same measure at any white)."""
    cheek = np.rint(p[list(CHEEK_POINTS)] - 0.5).astype(int)
    inside = (cheek >= 0).all(axis=1) & (cheek[:, 0] < grey.shape[1]) & (cheek[:, 1] < grey.shape[0])
    if not inside.any():
        return None, None
    skin = float(np.median(grey[cheek[inside, 1], cheek[inside, 0]]))
    if not skin > 0:
        return None, None
    tex = _texture(grey, iod, _TEXTURE_FLOOR * skin)
    ref = float(np.median(tex[cheek[inside, 1], cheek[inside, 0]]))
    return (tex, ref) if ref > 0 else (None, None)


def _forehead_texture(grey: np.ndarray, p: np.ndarray, iod: float, made=None) -> float | None:
    """The forehead centre's texture over the cheeks' (the median over a disc round ``_FOREHEAD_CENTRE``), or
    None (no reference, the disc out of the picture). ``made``: :func:`_texture_and_reference` already made."""
    tex, ref = made if made is not None else _texture_and_reference(grey, p, iod)
    if tex is None:
        return None
    c, r = p[_FOREHEAD_CENTRE], _FRINGE_RADIUS * iod
    x0, y0 = int(max(np.floor(c[0] - r), 0)), int(max(np.floor(c[1] - r), 0))
    x1, y1 = int(min(np.ceil(c[0] + r), grey.shape[1])), int(min(np.ceil(c[1] + r), grey.shape[0]))
    if x1 <= x0 or y1 <= y0:
        return None
    yy, xx = np.ogrid[y0:y1, x0:x1]
    disc = (xx + 0.5 - c[0]) ** 2 + (yy + 0.5 - c[1]) ** 2 < r * r
    if not disc.any():
        return None
    return float(np.median(tex[y0:y1, x0:x1][disc])) / ref


def _skin_distance(chroma: np.ndarray, centre: np.ndarray, spread: np.ndarray, shade: np.ndarray | float
                   ) -> np.ndarray:
    """How far (in the skin model's standard deviations) each pixel's log chroma lies from the skin's: from the
    segment between the model's centre and the centre ``1 + shade`` times as saturated (``shade`` per pixel or
    one value: skin in shadow, a temple or the forehead's side under the hairline, is the same hue more saturated:
    its log chroma runs out along the line through neutral and the skin's), not from the centre alone."""
    c = centre.astype(np.float32)
    d = (chroma - c) / spread.astype(np.float32)
    axis = c / spread.astype(np.float32)                       # the saturation axis, in the normalised units
    t = np.clip((d @ axis) / max(float(axis @ axis), 1e-12), 0.0, shade)
    d -= t[..., None] * axis
    return np.sqrt((d * d).sum(axis=2))


#: the brows' lower edges (outer -> inner), right and left
_BROW_LOW = (46, 53, 52, 65, 55, 276, 283, 282, 295, 285)


def _face_axes(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The face's unit axes in the picture for landmarks ``p``: ``u`` from the right eye's outer corner to the
    left's, ``v`` across it pointing to the chin, and ``mid`` between the two corners."""
    right, left = p[T.EYE_OUTER_RIGHT], p[T.EYE_OUTER_LEFT]
    u = (left - right) / max(float(np.linalg.norm(left - right)), 1e-9)
    v = np.array([-u[1], u[0]])
    mid = 0.5 * (left + right)
    if (p[152] - mid) @ v < 0:
        v = -v
    return u, v, mid


def _over_glabella(pts: np.ndarray, p: np.ndarray, margin: float) -> np.ndarray:
    """Which of ``pts`` (Nx2) lie between the brows' inner ends (plus ``margin`` pixels outwards), for landmarks
    ``p`` in the same pixels: no brow there to take for a rim."""
    u, _, mid = _face_axes(p)
    inner = np.abs((p[[55, 285]] - mid) @ u).min()                 # the brows' inner lower corners
    return np.abs((pts - mid) @ u) < inner + margin


def _above_brows(pts: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Which of ``pts`` (Nx2) lie above the brows' lower edges (the line through them, carried on flat past their
    ends), for landmarks ``p`` in the same pixels."""
    u, v, mid = _face_axes(p)
    edge = p[list(_BROW_LOW)] - mid
    order = np.argsort(edge @ u)
    limit = np.interp((pts - mid) @ u, (edge @ u)[order], (edge @ v)[order])
    return (pts - mid) @ v < limit


#: angles of the lower arc of a traced lens outline (0 along the eye axis, pi/2 straight down the face)
_LOWER_ARC = (0.2 * np.pi, 0.8 * np.pi)


def _dip(profiles: np.ndarray, cfg: OcclusionConfig) -> np.ndarray:
    """How clearly profiles across a rim (..., 41 samples from -0.1 to 0.1 IOD) are a thin line: the dip at the
    centre below the brighter of the two sides (0.04-0.08 IOD out), or the rise above them over
    ``bright_factor``, in units of ``still_dip`` (0 where a side is not positive)."""
    rel = np.linspace(-0.1, 0.1, profiles.shape[-1])
    centre = np.abs(rel) <= 0.015
    far = (np.abs(rel) >= 0.04) & (np.abs(rel) <= 0.08)
    left = np.median(profiles[..., far & (rel < 0)], axis=-1)
    right = np.median(profiles[..., far & (rel > 0)], axis=-1)
    lo, hi = np.minimum(left, right), np.maximum(left, right)
    ok = lo > 0
    dark = 1.0 - profiles[..., centre].min(axis=-1) / np.where(ok, lo, 1.0)
    bright = profiles[..., centre].max(axis=-1) / np.where(ok, hi, 1.0) - 1.0
    return np.where(ok, np.maximum(dark, bright / cfg.bright_factor) / cfg.still_dip, 0.0)


def _profiles(grey: np.ndarray, pts: np.ndarray, normal: np.ndarray, iod: float) -> np.ndarray:
    """The luma across a rim at each of its points (A x 41, from -0.1 to 0.1 IOD along the normals)."""
    import cv2

    rel = np.linspace(-0.1, 0.1, 41)
    at = pts[:, None, :] + (rel * iod)[None, :, None] * normal[:, None, :] - 0.5
    return cv2.remap(grey, at[..., 0].astype(np.float32), at[..., 1].astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _rim_dip(grey: np.ndarray, rim: tuple, iod: float, cfg: OcclusionConfig) -> float:
    """How clearly a lens's traced lower rim is a thin line: :func:`_dip` of the median profile across it over
    the lower arc's found angles; 0 when less than ``still_lower`` of the arc was found."""
    good, pts, normal = rim
    t = np.linspace(0.0, 2.0 * np.pi, len(good), endpoint=False)
    arc = (t > _LOWER_ARC[0]) & (t < _LOWER_ARC[1])
    use = arc & good
    if use.sum() < max(3, cfg.still_lower * arc.sum()):
        return 0.0
    return float(_dip(np.median(_profiles(grey, pts[use], normal[use], iod), axis=0), cfg))


def _rim_lines(grey: np.ndarray, rim: tuple, iod: float, cfg: OcclusionConfig, window: int = 9) -> np.ndarray:
    """Which angles of a traced rim are a thin line there (bool A): found by the trace, and :func:`_dip` >= 1 of
    the median profile over ``window`` neighbouring angles (the rim is smooth; a brow's edge, hair, a fold are
    not a line of a frame's width with the same skin on both sides)."""
    good, pts, normal = rim
    prof = _profiles(grey, pts, normal, iod)
    half = window // 2
    ring = np.concatenate([prof[-half:], prof, prof[:half]])
    local = np.median(np.stack([ring[k: k + len(prof)] for k in range(window)]), axis=0)
    return good & (_dip(local, cfg) >= 1.0)


def _refine_lower(response: np.ndarray, c: np.ndarray, a: float, b: float, u: np.ndarray, v: np.ndarray,
                  out: np.ndarray, iod: float, cap: float) -> tuple[np.ndarray, float, float]:
    """A lens outline ``(centre, a, b)`` (axes along the eye axis ``u`` and down the face ``v``) moved (0.1 IOD
    each way, ``out``: outwards) and resized (0.08 IOD) to where its lower arc runs along the strongest line
    (``response`` clipped at ``cap``; -1 where not looked at): under the eye there is only cheek, so the rim there
    is the line to follow, where the fit to the found lines alone takes lid creases and eye bags near the eye."""
    h, w = response.shape
    t = np.linspace(0.1 * np.pi, 0.9 * np.pi, 25)
    step = np.linspace(-0.1, 0.1, 11)
    size = np.linspace(-0.08, 0.08, 9)
    g = np.meshgrid(step, step, size, size, indexing="ij")
    cen = c + (g[0][..., None] * out + g[1][..., None] * v) * iod                      # (..., 2)
    aa, bb = np.maximum(a + g[2] * iod, 0.15 * iod), np.maximum(b + g[3] * iod, 0.12 * iod)
    x = cen[..., 0, None] + aa[..., None] * np.cos(t) * u[0] + bb[..., None] * np.sin(t) * v[0]
    y = cen[..., 1, None] + aa[..., None] * np.cos(t) * u[1] + bb[..., None] * np.sin(t) * v[1]
    xi, yi = np.rint(x - 0.5).astype(np.int32), np.rint(y - 0.5).astype(np.int32)
    inb = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    r = np.where(inb, response[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)], -1.0)
    seen = (r >= 0).sum(axis=-1)
    score = np.where(seen >= 0.6 * len(t), np.minimum(np.maximum(r, 0.0), cap).sum(axis=-1) / np.maximum(seen, 1),
                     -1.0)
    k = np.unravel_index(int(np.argmax(score)), score.shape)
    return cen[k], float(aa[k]), float(bb[k])


def _closed_runs(ok: np.ndarray) -> list[np.ndarray]:
    """Index runs of True (at least 2 long) in a closed sequence; a run over the end continues at the start."""
    n = len(ok)
    if ok.all():
        return [np.concatenate([np.arange(n), [0]])]
    order = (np.arange(n) + int(np.argmin(ok))) % n               # begin at a gap
    runs, run = [], []
    for i in order:
        if ok[i]:
            run.append(i)
        elif run:
            runs.append(np.array(run))
            run = []
    if run:
        runs.append(np.array(run))
    return [r for r in runs if len(r) > 1]


def _bridge(grey: np.ndarray, rims: list, p: np.ndarray, iod: float, cfg: OcclusionConfig) -> list[np.ndarray]:
    """The bridge between two traced lenses on one frame (its bars, Nx2 points each, working pixels; none: []):
    across the gap between the lenses' inner sides, from above their tops down to their centres, the darkest thin
    line (across the face's vertical) of each column, kept when most columns find one (dipping ``still_dip`` below
    the brighter of its sides) at about the same height; then a second such line within ``bridge_pair`` IOD of it
    (a double bridge). Over the nose the face draws no such line."""
    import cv2

    u, v, mid = _face_axes(p)
    (_, r0, _), (_, r1, _) = rims                                  # the right eye's lens (image left), then the left's
    x0, x1 = float(((r0 - mid) @ u).max()), float(((r1 - mid) @ u).min())
    if x1 - x0 < 0.05 * iod:
        return []
    top = float(min(((r0 - mid) @ v).min(), ((r1 - mid) @ v).min())) - 0.05 * iod
    bottom = float(0.5 * (((r0 - mid) @ v).mean() + ((r1 - mid) @ v).mean()))
    ext = cfg.bridge_pair_reach * iod                             # the second bar runs on into the lens tops
    cols = np.arange(x0 - ext, x1 + ext, 0.5)
    central = (cols >= x0) & (cols < x1)
    rows = np.arange(top, bottom, 0.5)
    k = max(1.5, 0.02 * iod)
    depth = rows[None, :, None, None] + np.array([-k, 0.0, k])[None, None, :, None]
    at = mid + cols[:, None, None, None] * u + depth * v
    at = at - 0.5                                                  # cols x rows x 3 x 2
    g = cv2.remap(grey, at[..., 0].reshape(len(cols), -1).astype(np.float32),
                  at[..., 1].reshape(len(cols), -1).astype(np.float32), cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_REPLICATE).reshape(len(cols), len(rows), 3)
    side = np.minimum(g[..., 0], g[..., 2])
    dip = np.where(side > 0, 1.0 - g[..., 1] / np.maximum(side, 1e-6), 0.0)

    def bar(dip, where):
        """The line over the columns ``where`` (most of those between the lenses find it), or None."""
        best = np.argmax(dip, axis=1)
        strength = dip[np.arange(len(cols)), best]
        level = rows[best]
        ok = (strength >= cfg.still_dip) & where
        if ok[central].mean() < 0.6:
            return None
        at = np.median(level[ok & central])
        ok &= np.abs(level - at) <= 0.05 * iod
        if ok[central].mean() < 0.6:
            return None
        # beyond the lenses' inner sides only the line's own continuation: runs joined to the central part
        run = ok.copy()
        inside = np.flatnonzero(ok & central)
        lo, hi = inside.min(), inside.max()
        left = np.flatnonzero(~ok[:lo])
        run[: (left.max() + 1 if len(left) else 0)] = False
        right = np.flatnonzero(~ok[hi + 1:])
        if len(right):
            run[hi + 1 + right.min():] = False
        return at, mid + cols[run, None] * u + level[run, None] * v

    first = bar(dip, central)
    if first is None:
        return []
    # a double bridge (a brow bar over the bridge, d8's round frames): a second such line near the first, the
    # first's own rows (its line and its blur) left out; it runs on into the lenses' tops
    off = np.abs(rows - first[0])
    second = bar(np.where(((off > 0.04 * iod) & (off <= cfg.bridge_pair * iod))[None], dip, 0.0),
                 np.ones(len(cols), bool))
    return [first[1]] + ([] if second is None else [second[1]])

