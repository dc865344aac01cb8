"""Facts about the 468(+10)-point face mesh topology that every stage shares: named contours and the
triangulation. Pure data and small functions; imports nothing from the stages.

Contours follow the face mesh's published point numbering (the subject's right eye is the one at image left in
a frontal view). Points 468..472 are the right iris (centre, then rim), 473..477 the left.
"""

from __future__ import annotations

import numpy as np

NUM_MESH = 468
NUM_POINTS = 478

LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
RIGHT_EYE = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
RIGHT_BROW = (46, 53, 52, 65, 55, 70, 63, 105, 66, 107)
LEFT_BROW = (276, 283, 282, 295, 285, 300, 293, 334, 296, 336)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
#: Mesh points that expressions move least (forehead, nose bridge and tip, face sides, eye corners): the head pose
#: is fitted on them, and the expression basis is exactly zero there.
RIGID_POINTS = (10, 109, 338, 67, 297, 151, 168, 6, 197, 195, 5, 4, 1, 234, 454, 127, 356, 93, 323, 33, 263, 133,
                362)
RIGHT_IRIS = (468, 469, 470, 471, 472)
LEFT_IRIS = (473, 474, 475, 476, 477)

#: Closed contours: (name, points, closed)
CONTOURS = (("lips_outer", LIPS_OUTER, True), ("lips_inner", LIPS_INNER, True), ("right_eye", RIGHT_EYE, True),
            ("left_eye", LEFT_EYE, True), ("right_brow", RIGHT_BROW, False), ("left_brow", LEFT_BROW, False),
            ("face_oval", FACE_OVAL, True))

# Single points used for measurements
MOUTH_UPPER_INNER, MOUTH_LOWER_INNER = 13, 14
MOUTH_CORNER_RIGHT, MOUTH_CORNER_LEFT = 61, 291
EYE_OUTER_RIGHT, EYE_OUTER_LEFT = 33, 263


def inter_ocular(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the outer eye corners (``...x478x3`` or ``...x468x3`` -> ``...``), in x/y."""
    return np.linalg.norm(landmarks[..., EYE_OUTER_RIGHT, :2] - landmarks[..., EYE_OUTER_LEFT, :2], axis=-1)


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap (upper inner lip to lower inner lip), in x/y: ``...xPx3`` -> ``...``."""
    return np.linalg.norm(landmarks[..., MOUTH_UPPER_INNER, :2] - landmarks[..., MOUTH_LOWER_INNER, :2], axis=-1)


def triangulate(shape: np.ndarray) -> np.ndarray:
    """Triangles over the 468 mesh points of a (roughly frontal) shape, holes kept open.

    Delaunay triangulation of the x/y positions, minus triangles that would close the mouth or the eyes
    (all three corners on the inner lip contour or on one eye contour) and slivers along the outline.

    Args:
        shape: 468x2+ points (pixels or any unit).

    Returns:
        Tx3 int32 vertex indices.
    """
    from scipy.spatial import Delaunay

    xy = np.asarray(shape, dtype=np.float64)[:NUM_MESH, :2]
    tri = Delaunay(xy).simplices
    holes = [set(LIPS_INNER), set(RIGHT_EYE), set(LEFT_EYE)]
    keep = np.array([not any(set(t) <= h for h in holes) for t in tri.tolist()])
    tri = tri[keep]
    # drop slivers on the convex hull that bridge concave parts of the outline
    a, b, c = xy[tri[:, 0]], xy[tri[:, 1]], xy[tri[:, 2]]
    u, v = b - a, c - a
    area = np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]) / 2
    longest = np.max(np.stack([np.linalg.norm(b - a, axis=1), np.linalg.norm(c - b, axis=1),
                               np.linalg.norm(a - c, axis=1)]), axis=0)
    quality = area / np.maximum(longest ** 2, 1e-12)
    outline = np.isin(tri, FACE_OVAL).sum(1) == 3
    tri = tri[~(outline & (quality < 0.05))]
    return tri.astype(np.int32)


def triangle_edges(triangles: np.ndarray) -> np.ndarray:
    """Unique undirected edges (Ex2) of a triangle list."""
    e = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    e = np.sort(e, axis=1)
    return np.unique(e, axis=0)
