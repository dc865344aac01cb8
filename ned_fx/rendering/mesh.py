"""The renderer's mesh: a per-shot triangulation with the mouth and eye openings kept as holes, the face region
box, and the CPU rasteriser that turns a target mesh into a label map on the displacement-field grid.

Coordinates everywhere: continuous pixel coordinates of the array they refer to, (0, 0) the top-left corner
of the top-left pixel, pixel centres at +0.5 (the tracker's convention).

Why not :func:`ned_fx.topology.triangulate` as is: on a closed mouth (or a blink) the upper and lower inner
lip rings lie on one line and Delaunay connects them across the seam, so only a few inner-lip edges end up on
the hole's boundary and the lips would be glued together (measured on people_0.png: 7 of 20). Its rule
"drop triangles with all three corners on one contour" also cannot tell a triangle inside the opening from one
outside a concave stretch of it. :func:`build_render_mesh` lays the lip and lid rings out as a well-spaced,
ordered lattice around a guaranteed opening (for triangulating only), runs Delaunay, inserts the contours as
constraint edges by edge flips, and drops the triangles inside the openings: every inner-lip and eye contour
edge is then a hole boundary, whatever the reference's expression.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import topology as T
from ..errors import InvalidParameterError, NoFaceError
from .sampling import smoothstep

# ---- topology facts the renderer needs (MediaPipe's lip and eye refinement rings, upper/lower halves) ----------
# Each row runs from the subject's right corner towards the left corner; rings go from the opening outwards.
UPPER_LIP_RINGS = ((191, 80, 81, 82, 13, 312, 311, 310, 415), (183, 42, 41, 38, 12, 268, 271, 272, 407),
                   (184, 74, 73, 72, 11, 302, 303, 304, 408), (185, 40, 39, 37, 0, 267, 269, 270, 409))
LOWER_LIP_RINGS = ((95, 88, 178, 87, 14, 317, 402, 318, 324), (96, 89, 179, 86, 15, 316, 403, 319, 325),
                   (77, 90, 180, 85, 16, 315, 404, 320, 307), (146, 91, 181, 84, 17, 314, 405, 321, 375))
UPPER_LID_RINGS = (((246, 161, 160, 159, 158, 157, 173), (247, 30, 29, 27, 28, 56, 190)),
                   ((466, 388, 387, 386, 385, 384, 398), (467, 260, 259, 257, 258, 286, 414)))
LOWER_LID_RINGS = (((7, 163, 144, 145, 153, 154, 155), (25, 110, 24, 23, 22, 26, 112)),
                   ((249, 390, 373, 374, 380, 381, 382), (255, 339, 254, 253, 252, 256, 341)))
#: Opening added before triangulating, as a fraction of the corner-to-corner width (an ellipse of this height).
_OPEN_MOUTH, _OPEN_EYE = 0.08, 0.08

#: The openings, in the order the renderer labels them: mouth, right eye, left eye.
HOLE_CONTOURS = (T.LIPS_INNER, T.RIGHT_EYE, T.LEFT_EYE)
#: Their corners (contour points at the two ends).
HOLE_CORNERS = ((78, 308), (33, 133), (362, 263))
MOUTH, RIGHT_EYE, LEFT_EYE = 0, 1, 2


@dataclass(frozen=True)
class RenderMesh:
    """A shot's triangulation for the renderer (build once per shot with :func:`build_render_mesh`).

    Attributes:
        triangles: Tx3 int32 vertex indices into the 478 landmarks (only 0..467 are used).
        outer_edges: Ex2 int32 boundary edges of the triangulation that are not on an opening (the face's
            outline): outside them the displacement decays to zero.
        holes: vertex indices of the mouth, right-eye and left-eye contours (closed polygons, in order).
    """

    triangles: np.ndarray
    outer_edges: np.ndarray
    holes: tuple[tuple[int, ...], ...] = HOLE_CONTOURS

    @classmethod
    def from_triangles(cls, triangles: np.ndarray) -> "RenderMesh":
        """Wrap a ready triangle list (e.g. from :func:`ned_fx.topology.triangulate`).

        Args:
            triangles: Tx3 vertex indices (< 468).

        Returns:
            The RenderMesh with its outline edges found.

        Raises:
            InvalidParameterError: not a Tx3 integer array of valid indices.
        """
        tri = np.asarray(triangles)
        if tri.ndim != 2 or tri.shape[1] != 3 or len(tri) == 0 or tri.min() < 0 or tri.max() >= T.NUM_MESH:
            raise InvalidParameterError(
                f"triangles must be a non-empty Tx3 array of mesh indices 0..{T.NUM_MESH - 1}, got shape "
                f"{getattr(tri, 'shape', None)}")
        tri = tri.astype(np.int32)
        return cls(triangles=tri, outer_edges=_outer_edges(tri))


def _outer_edges(tri: np.ndarray) -> np.ndarray:
    e = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    edges, count = np.unique(e, axis=0, return_counts=True)
    boundary = edges[count == 1]
    hole_edges = set()
    for contour in HOLE_CONTOURS:
        n = len(contour)
        hole_edges.update(tuple(sorted((contour[i], contour[(i + 1) % n]))) for i in range(n))
    keep = [tuple(edge) not in hole_edges for edge in boundary.tolist()]
    return boundary[np.array(keep, dtype=bool)].astype(np.int32).reshape(-1, 2)


def _valid_points(shape: np.ndarray, what: str) -> np.ndarray:
    pts = np.asarray(shape, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < T.NUM_MESH or pts.shape[1] < 2:
        raise InvalidParameterError(f"{what} must be Px2 or Px3 landmarks with P >= {T.NUM_MESH}, "
                                    f"got shape {pts.shape}")
    if not np.isfinite(pts[: T.NUM_MESH, :2]).all():
        raise NoFaceError(f"{what} has NaN/inf points (no face in that frame); pass a frame where the face "
                          f"was found")
    return pts


def open_holes(shape: np.ndarray) -> np.ndarray:
    """The reference shape with mouth and eyes opened a little (for triangulating only).

    In coordinates along/across each opening's corner-to-corner chord, column by column (the rings are listed
    column-aligned): the opening gets at least an elliptic height (zero at the corners), and the rings between
    it and the outermost ring (lip outline / outer lid ring, never collapsed) are spread evenly across. The
    tracker's rings of a closed mouth lie on top of each other and may cross; after this they form a
    well-spaced lattice, so the opening is a proper polygon whose edges Delaunay keeps.

    Args:
        shape: 468x2+ points.

    Returns:
        468x2 float64 points.
    """
    xy = np.asarray(shape, dtype=np.float64)[: T.NUM_MESH, :2].copy()
    sides = [((78, 308), UPPER_LIP_RINGS, LOWER_LIP_RINGS, _OPEN_MOUTH),
             ((33, 133), UPPER_LID_RINGS[0], LOWER_LID_RINGS[0], _OPEN_EYE),
             ((362, 263), UPPER_LID_RINGS[1], LOWER_LID_RINGS[1], _OPEN_EYE)]
    for (ia, ib), upper, lower, amount in sides:
        a, b = xy[ia], xy[ib]
        width = float(np.linalg.norm(b - a))
        if width < 1e-9:
            continue
        ex = (b - a) / width
        ey = np.array([-ex[1], ex[0]])
        up_idx, lo_idx = np.array(upper), np.array(lower)          # rings x columns
        h_up, h_lo = (xy[up_idx] - a) @ ey, (xy[lo_idx] - a) @ ey
        # which side of the chord is "up": the outermost rings are never collapsed, so they decide
        sign = 1.0 if h_up[-1].mean() >= h_lo[-1].mean() else -1.0
        h_up, h_lo = h_up * sign, h_lo * sign
        t = np.clip((xy[up_idx[0]] - a) @ ex / width, 0.0, 1.0)
        mid = (h_up[0] + h_lo[0]) / 2
        top, bottom = np.maximum(h_up[-1], mid), np.minimum(h_lo[-1], mid)
        half = np.maximum((h_up[0] - h_lo[0]) / 2,
                          amount * width * np.minimum(1.0, 3.0 * np.sqrt(t * (1.0 - t))))
        half_up = np.minimum(half, 0.35 * (top - mid))
        half_lo = np.minimum(half, 0.35 * (mid - bottom))
        rings = len(h_up) - 1
        for r in range(rings):           # inner rings evenly from the opening to the (real) outermost ring
            h_up[r] = mid + half_up + (top - mid - half_up) * r / rings
            h_lo[r] = mid - half_lo - (mid - bottom - half_lo) * r / rings
        for idx, h in ((up_idx, h_up), (lo_idx, h_lo)):
            along = (xy[idx] - a) @ ex
            xy[idx] = a + along[..., None] * ex + (sign * h)[..., None] * ey
    return xy


def polygon_contains(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test (poly Kx2, pts Nx2) -> N bools, in the inputs' dtype (float32 in: the same
    operations and answers as the geometry renderer's torch test)."""
    a, b = poly, np.concatenate([poly[1:], poly[:1]])                     # each edge a -> b
    px, py = pts[:, None, 0], pts[:, None, 1]
    crosses = (a[None, :, 1] > py) != (b[None, :, 1] > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        xint = a[None, :, 0] + (py - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / (b[None, :, 1] - a[None, :, 1])
    return (crosses & (px < xint)).sum(axis=1) % 2 == 1


def grid_inside_polygon(poly: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Even-odd test of every grid point ``(xs[j], ys[i])`` against the polygon ``poly`` (Vx2) -> len(ys) x len(xs)
    bool, with ``xs`` ascending: a scanline (each edge's crossing of a row once, located among the columns, the
    crossings right of each column counted by a suffix sum). The same answers as testing each point: an edge
    counts where it straddles the row (``(ay > y) != (by > y)``) and the point lies left of its crossing
    ``ax + (y - ay) * (bx - ax) / (by - ay)``, computed in the inputs' dtype in that order."""
    a, b = poly, np.concatenate([poly[1:], poly[:1]])                     # each edge a -> b
    y = ys[:, None]                                                         # Rx1
    straddle = (a[:, 1] > y) != (b[:, 1] > y)                               # RxV
    dy = np.where(straddle, b[:, 1] - a[:, 1], poly.dtype.type(1))
    xint = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / dy
    row, _ = np.nonzero(straddle)
    first = np.searchsorted(xs, xint[straddle], side="left")               # the columns left of each crossing
    width = len(xs) + 1
    marks = np.bincount(row * width + first, minlength=len(ys) * width).reshape(len(ys), width)
    # crossings right of each column: all of the row's minus those at or left of it (uint8: only parity counts)
    upto = np.cumsum(marks.astype(np.uint8), axis=1, dtype=np.uint8)
    return ((upto[:, -1:] - upto[:, :-1]) & 1).astype(bool)


def _side(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Twice the signed area of (p, q, r), over the leading axes: > 0 when r is left of p -> q."""
    return (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])


def _crosses(xy: np.ndarray, u: int, v: int, a: int, b: int) -> bool:
    """Segments u-v and a-b cross properly (interiors intersect, no shared end point)."""
    if len({u, v, a, b}) < 4:
        return False
    pu, pv, pa, pb = xy[u], xy[v], xy[a], xy[b]
    return bool((_side(pa, pb, pu) * _side(pa, pb, pv) < 0) and (_side(pu, pv, pa) * _side(pu, pv, pb) < 0))


def _insert_constraints(xy: np.ndarray, tri: np.ndarray, constraints: list[tuple[int, int]]) -> np.ndarray:
    """Make every constraint edge an edge of the triangulation by flipping the edges that cross it (Sloan's
    constrained-Delaunay insertion). Constraints that cannot be inserted (a vertex on the segment) are left."""
    tris = [list(t) for t in tri.tolist()]
    edge_tris: dict[tuple[int, int], set[int]] = {}

    def key(i: int, j: int) -> tuple[int, int]:
        return (i, j) if i < j else (j, i)

    def link(k: int) -> None:
        a, b, c = tris[k]
        for e in (key(a, b), key(b, c), key(c, a)):
            edge_tris.setdefault(e, set()).add(k)

    def unlink(k: int) -> None:
        a, b, c = tris[k]
        for e in (key(a, b), key(b, c), key(c, a)):
            edge_tris[e].discard(k)
            if not edge_tris[e]:
                del edge_tris[e]

    for k in range(len(tris)):
        link(k)
    for a, b in constraints:
        for _ in range(4 * len(tris)):
            if key(a, b) in edge_tris:
                break
            keys = np.array(list(edge_tris), dtype=np.int64)
            pu, pv, pa, pb = xy[keys[:, 0]], xy[keys[:, 1]], xy[a], xy[b]

            hit = ((_side(pa, pb, pu) * _side(pa, pb, pv) < 0) & (_side(pu, pv, pa) * _side(pu, pv, pb) < 0)
                   & (keys != a).all(axis=1) & (keys != b).all(axis=1))
            crossing = [tuple(e) for e in keys[hit].tolist()]
            flipped = False
            for u, v in crossing:
                owners = edge_tris.get((u, v), set())
                if len(owners) != 2:
                    continue
                k1, k2 = owners
                p = next(w for w in tris[k1] if w not in (u, v))
                q = next(w for w in tris[k2] if w not in (u, v))
                if not _crosses(xy, p, q, u, v):        # the quad is not convex: cannot flip this one yet
                    continue
                unlink(k1)
                unlink(k2)
                tris[k1], tris[k2] = [p, q, u], [q, p, v]
                link(k1)
                link(k2)
                flipped = True
                break
            if not flipped:
                break
    return np.array(tris, dtype=np.int64)


def build_render_mesh(reference: np.ndarray) -> RenderMesh:
    """Triangulate a shot's reference shape for the renderer, mouth and eyes kept open. Once per shot.

    Delaunay of the reference with its openings widened (:func:`open_holes`), the contours of the inner lips
    and both eyes inserted as constraint edges, then the triangles inside the openings and the slivers along
    the outline removed (as :func:`ned_fx.topology.triangulate` does).

    Args:
        reference: Px2 or Px3 landmarks (P >= 468) of a roughly frontal face: the shot's mean shape
            (``Track.mean_shape``, any scale/orientation) or one frame's landmarks.

    Returns:
        The :class:`RenderMesh`.

    Raises:
        InvalidParameterError: wrong shape. NoFaceError: NaN landmarks.
    """
    from scipy.spatial import Delaunay

    pts = _valid_points(reference, "reference shape")
    xy = open_holes(pts)
    tri = Delaunay(xy).simplices.astype(np.int64)
    constraints = [(c[i], c[(i + 1) % len(c)]) for c in HOLE_CONTOURS for i in range(len(c))]
    tri = _insert_constraints(xy, tri, constraints)
    centroids = xy[tri].mean(axis=1)
    inside = np.zeros(len(tri), dtype=bool)
    for contour in HOLE_CONTOURS:
        inside |= polygon_contains(xy[list(contour)], centroids)
    tri = tri[~inside]
    # drop slivers on the convex hull that bridge concave parts of the outline (as topology.triangulate)
    a, b, c = xy[tri[:, 0]], xy[tri[:, 1]], xy[tri[:, 2]]
    u, v = b - a, c - a
    area = np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]) / 2
    longest = np.max(np.stack([np.linalg.norm(b - a, axis=1), np.linalg.norm(c - b, axis=1),
                               np.linalg.norm(a - c, axis=1)]), axis=0)
    outline = np.isin(tri, T.FACE_OVAL).sum(1) == 3
    tri = tri[~(outline & (area / np.maximum(longest ** 2, 1e-12) < 0.05))]
    return RenderMesh.from_triangles(tri)


def _signed_areas(xy: np.ndarray, tri: np.ndarray) -> np.ndarray:
    a, b, c = xy[tri[:, 0]], xy[tri[:, 1]], xy[tri[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def untangle(src: np.ndarray, dst: np.ndarray, mesh: RenderMesh, limit: float = 0.025,
             rounds: int = 400) -> np.ndarray:
    """The target landmarks with a large fold of the mesh relaxed. An edit turns small triangles of the skin over
    all the time (a brow, lid or lip pressed: up to 0.024 of the inter-ocular distance squared a frame on the
    shared clips at intensity 1.5, d3's sad) and the warp hides them in the line; a large fold is a tear (a hard,
    stair-stepped edge where the front layer wins). Where the skin's triangles the edit turns over cover more than
    ``limit`` x IOD² in all (in full from twice that, a smoothstep between: no popping as a fold comes and goes
    over a shot), the displacement (target - source, x/y) of their vertices is relaxed towards the mean of their
    neighbours' (Jacobi rounds), the relaxed set growing by the neighbours of any triangle still turned over (up
    to three rings: the rest of the face keeps its edit), until none is; the lips, lids and brows stay where the
    edit puts them (the skin around them follows), and so does a triangle of theirs alone. Below the eyes only:
    above them a raised brow bunches the forehead up to the hairline, which the warp shows well (relaxed, the
    astronaut's fringe at surprise 1.5 got a flat, notched lower edge). Triangles turned over in the source
    already (a turned head's far side) are left as they are.

    d19.jpg (a gasp) under ``neutral``: closing a jaw dropped 0.32 of the inter-ocular distance turned the skin
    beside the nose and cheeks over, 0.072 IOD² in all: the cheeks tore at the nostrils' height.

    Args:
        src, dst: Px2+ landmarks (P >= 468) of one frame; mesh: the shot's :class:`RenderMesh`.

    Returns:
        ``dst`` itself when no large fold (an unchanged target stays bit-exact), else a relaxed copy (the iris
        points and any z column as ``dst`` has them).
    """
    tri = mesh.triangles
    s = np.asarray(src, np.float64)[:T.NUM_MESH, :2]
    d = np.asarray(dst, np.float64)[:T.NUM_MESH, :2]
    if not (np.isfinite(s).all() and np.isfinite(d).all()):
        return dst
    iod2 = float(np.sum((s[T.EYE_OUTER_RIGHT] - s[T.EYE_OUTER_LEFT]) ** 2))
    a_s = _signed_areas(s, tri)
    live = np.abs(a_s) > 1e-4 * iod2

    # the lips, lids and brows are where the edit says they go: the skin around them follows (a triangle of
    # theirs alone that the edit turns over, a lip pressed on a lip, stays as the edit has it)
    held = np.zeros(T.NUM_MESH, bool)
    held[list(set(T.LIPS_INNER) | set(T.LIPS_OUTER) | set(T.RIGHT_EYE) | set(T.LEFT_EYE) | set(T.RIGHT_BROW)
              | set(T.LEFT_BROW))] = True
    # the lower face only (a jaw closed or dropped far): above the eyes a raised brow bunches the forehead up to the
    # hairline, which the warp shows well (the astronaut's surprise at 1.5: 0.04 IOD² there, 0.002 below)
    mid = 0.5 * (s[T.EYE_OUTER_RIGHT] + s[T.EYE_OUTER_LEFT])
    down = s[152] - mid
    down /= max(float(np.hypot(down[0], down[1])), 1e-9)
    held |= (s - mid) @ down <= 0.0
    live &= ~held[tri].all(axis=1) & ((s[tri] - mid) @ down > 0.0).all(axis=1)

    def turned(xy):
        a = _signed_areas(xy, tri)
        over = live & (np.sign(a) != np.sign(a_s))
        return over, float(np.abs(a[over]).sum())

    bad, area = turned(d)
    if area <= limit * iod2:
        return dst
    weight = float(smoothstep(area / (limit * iod2) - 1.0))
    from scipy import sparse

    e = T.triangle_edges(tri)
    adj = sparse.coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])),
                            shape=(T.NUM_MESH, T.NUM_MESH)).tocsr()
    mean = sparse.diags(1.0 / np.maximum(np.asarray(adj.sum(axis=1)).ravel(), 1.0)) @ adj
    disp = d - s
    free = np.zeros(T.NUM_MESH, bool)
    rings = 0
    for k in range(rounds):
        free[tri[bad].ravel()] = True
        if k and k % 25 == 0 and rings < 3:          # still turned over: relax a ring further out (at most 3: the
            free |= np.asarray(adj[free].sum(axis=0)).ravel() > 0        # rest of the face keeps its edit)
            rings += 1
        free &= ~held
        disp[free] = (mean @ disp)[free]
        bad, area = turned(s + disp)
        if not bad.any():
            break
    out = np.array(dst, dtype=np.float64, copy=True)
    out[:T.NUM_MESH, :2] = d + weight * (s + disp - d)
    return out.astype(np.asarray(dst).dtype, copy=False)


def face_region_box(landmarks: np.ndarray, width: int, height: int,
                    margin: float | None = None) -> tuple[int, int, int, int]:
    """The face's working region in a plate: the landmarks' bounding box plus a margin, clipped to the plate.

    Renderer and compositor both work only inside this box; pass the source AND target landmarks stacked
    (``np.concatenate([src, dst])``) so both face positions are covered.

    Args:
        landmarks: Px2 or Px3 points in plate pixels (NaN rows are ignored).
        width: plate width in pixels; height: plate height.
        margin: margin on each side as a fraction of the box's longer side (default
            ``RendererConfig().region_margin``, 0.25).

    Returns:
        ``(x0, y0, x1, y1)`` ints, end exclusive: the region is ``pixels[y0:y1, x0:x1]``.

    Raises:
        NoFaceError: no finite landmark. InvalidParameterError: the face lies entirely outside the plate, or a
            bad size/margin.
    """
    if margin is None:
        from .config import RendererConfig

        margin = RendererConfig().region_margin
    if width < 1 or height < 1 or margin < 0:
        raise InvalidParameterError(f"face_region_box needs width, height >= 1 and margin >= 0, got "
                                    f"{width}x{height}, margin {margin}")
    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, np.shape(landmarks)[-1])[:, :2]
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        raise NoFaceError("face_region_box got no finite landmark (no face in this frame)")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = margin * float(max(hi - lo))
    x0 = max(0, int(np.floor(lo[0] - pad)))
    y0 = max(0, int(np.floor(lo[1] - pad)))
    x1 = min(int(width), int(np.ceil(hi[0] + pad)))
    y1 = min(int(height), int(np.ceil(hi[1] + pad)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise InvalidParameterError(
            f"the face ({lo[0]:.0f},{lo[1]:.0f})-({hi[0]:.0f},{hi[1]:.0f}) lies outside the {width}x{height} "
            f"plate; nothing to edit in this frame")
    return x0, y0, x1, y1


def field_grid_size(height: int, width: int, cells: int) -> tuple[int, int]:
    """Rows and columns of the displacement-field grid over a ``height`` x ``width`` region.

    The longer side gets ``cells`` cells (never more cells than pixels); the other side keeps the aspect.
    """
    long_side = max(height, width)
    n = min(int(cells), long_side)
    scale = n / long_side
    return max(2, int(round(height * scale))), max(2, int(round(width * scale)))


def _cells_in_boxes(lo: np.ndarray, hi: np.ndarray, grid_w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (item, cell x, cell y) with the cell inside item k's inclusive box ``lo[k]..hi[k]`` (Kx2 ints)."""
    nx = np.maximum(hi[:, 0] - lo[:, 0] + 1, 0)
    ny = np.maximum(hi[:, 1] - lo[:, 1] + 1, 0)
    counts = nx * ny
    item = np.repeat(np.arange(len(lo)), counts)
    start = np.repeat(np.cumsum(counts) - counts, counts)
    local = np.arange(int(counts.sum())) - start
    dy, dx = np.divmod(local, nx[item])
    return item, lo[item, 0] + dx, lo[item, 1] + dy


def rasterize_labels(dst: np.ndarray, mesh: RenderMesh, region_size: tuple[int, int],
                     grid_size: tuple[int, int]) -> np.ndarray:
    """Rasterise the TARGET mesh on the field grid (CPU, numpy): which triangle or opening holds each cell.

    Cell (i, j) is sampled at its centre, region point ``((j + 0.5) * W / Gw, (i + 0.5) * H / Gh)``, and
    belongs to the triangle that contains that point (edges inclusive), so the barycentric field there is
    exact even where triangles are thinner than a cell. Triangles win over openings; overlapping (folded)
    triangles are resolved far-to-near when ``dst`` has a z column (painter's order; the tracker's z is
    negative towards the viewer), else in list order.

    Args:
        dst: Px2 or Px3 target landmarks in region pixels.
        mesh: the shot's :class:`RenderMesh`.
        region_size: (H, W) of the region in pixels.
        grid_size: (Gh, Gw) of the field grid (:func:`field_grid_size`).

    Returns:
        Gh x Gw int64 labels: -1 outside the mesh, ``t`` in 0..T-1 for triangle t, ``T + k`` inside opening k
        (0 mouth, 1 right eye, 2 left eye).

    Raises:
        InvalidParameterError: wrong shapes. NoFaceError: NaN landmarks.
    """
    pts = _valid_points(dst, "target landmarks")
    (h, w), (gh, gw) = region_size, grid_size
    g = pts[: T.NUM_MESH, :2] * [gw / w, gh / h] - 0.5            # grid coordinates: cell centres at integers
    labels = np.full(gh * gw, -1, dtype=np.int64)
    n_tri = len(mesh.triangles)
    limit = np.array([gw - 1, gh - 1])
    # openings first (even-odd test of the cell centres in each opening's box)
    for k, contour in enumerate(mesh.holes):
        poly = g[list(contour)]
        lo = np.clip(np.ceil(poly.min(axis=0)), 0, limit).astype(np.int64)
        hi = np.clip(np.floor(poly.max(axis=0)), -1, limit).astype(np.int64)
        if (hi >= lo).all():
            cy, cx = np.nonzero(grid_inside_polygon(poly, np.arange(lo[0], hi[0] + 1, dtype=np.float64),
                                                    np.arange(lo[1], hi[1] + 1, dtype=np.float64)))
            labels[(cy + lo[1]) * gw + cx + lo[0]] = n_tri + k
    # triangles: candidate cells in each triangle's box, kept where the barycentrics are all >= 0
    corners = g[mesh.triangles]                                   # Tx3x2
    c0, c1, c2 = corners[:, 0], corners[:, 1], corners[:, 2]     # (3-way min/max: ~10x faster than over axis 1)
    lo = np.clip(np.ceil(np.minimum(np.minimum(c0, c1), c2) - 1e-9), 0, limit).astype(np.int64)
    hi = np.clip(np.floor(np.maximum(np.maximum(c0, c1), c2) + 1e-9), -1, limit).astype(np.int64)
    tri, cx, cy = _cells_in_boxes(lo, hi, gw)
    # per triangle once (then gathered per candidate cell: the same values as computed per candidate)
    a = corners[:, 0]
    e1, e2 = corners[:, 1] - a, corners[:, 2] - a
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = np.abs(det) > 1e-12
    det = np.where(ok, det, 1.0)
    px, py = cx - a[tri, 0], cy - a[tri, 1]
    e1x, e1y, e2x, e2y, d = e1[tri, 0], e1[tri, 1], e2[tri, 0], e2[tri, 1], det[tri]
    l1 = (px * e2y - py * e2x) / d
    l2 = (e1x * py - e1y * px) / d
    eps = 1e-7
    inside = ok[tri] & (l1 >= -eps) & (l2 >= -eps) & (l1 + l2 <= 1 + eps)
    tri, cell = tri[inside], (cy * gw + cx)[inside]
    order = rank = np.arange(n_tri)                               # draw order, and each triangle's place in it
    if pts.shape[1] >= 3 and np.isfinite(pts[: T.NUM_MESH, 2]).all():
        order = np.argsort(-pts[mesh.triangles, 2].mean(axis=1), kind="stable")
        rank = np.empty(n_tri, dtype=np.int64)
        rank[order] = np.arange(n_tri)
    # per cell, the triangle drawn last
    top = np.full(gh * gw, -1, dtype=np.int64)
    np.maximum.at(top, cell, rank[tri])
    hit = np.flatnonzero(top >= 0)
    labels[hit] = order[top[hit]]
    return labels.reshape(gh, gw)
