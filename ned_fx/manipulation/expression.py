"""The expression model on the 468(+10)-point mesh: the actor's neutral shape, a basis of facial action units
(FACS) as smooth displacement fields, and the per-frame fit of AU activations.

Everything here lives in the *head frame*: a track's ``pose`` ``[sR | t]`` maps head-frame points to frame
pixels (``landmarks ≈ pose[:, :, :3] @ head + pose[:, :, 3]``); :func:`head_frame` inverts it per frame. The head
frame has x toward the subject's left eye (image right), y down toward the chin, z into the screen, and unit RMS
radius on the rigid points, so one head-frame unit is about 0.65 inter-ocular distances.

The basis
    Each AU is authored from its FACS definition as a set of *handles* (anchor points on the mesh contours, the
    direction they move in: outward, up, forward, and how far, in inter-ocular units for activation 1, a strong but
    natural expression), spread to the neighbouring points by a Gaussian falloff of the *geodesic* distance over
    the actor's neutral mesh (edges across the mouth and the eyes are cut, so the lower lip never drags the upper
    one). Left and right are mirror images (:data:`MIRROR`). The jaw drop (AU26) is a rotation about the
    temporomandibular axis; the blink (AU45) closes each upper lid onto the lower lid of *this* actor; the lip
    corner puller (AU12) bends the lips along a smooth curve of this actor's mouth and stretches their red thinner
    (:class:`_LipCurve`), its cheek part leaving the mouth to the corners. Fields are exactly zero on the rigid
    points the head pose is fitted on, so an edit never changes the pose; the iris points follow their eye corners,
    so lids move over the eye and never squash the iris.

The fit
    ``shape ≈ neutral + Σ_k a_k · field_k + residual`` per frame, with ``0 <= a_k <= upper_k`` (bounded least
    squares on the 468 mesh points with a small ridge). The residual keeps what the basis cannot explain, so
    re-decoding the fitted activations reproduces the tracked face exactly.

Speech-safe fields
    :attr:`ExpressionBasis.edit_fields` are the fields the manipulator applies to *offsets*: for every AU that is
    not a speech channel, the part that would change the inner-lip gap is projected out (the upper and lower inner
    lip move together at each of the nine inner-lip pairs, the difference spread smoothly over each lip), so an
    emotion edit keeps the source's mouth opening exactly, frame by frame. Where a style raises the upper lip
    (AU9, AU10) or lowers the lower one (AU16) the upper lip moves as one piece and the lower lip's columns follow
    it (:data:`LOWER_LIP_FOLLOWS_AUS`): a sneer on a talker lifts the whole mouth, neither red thickens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import topology as topo
from ..errors import InvalidParameterError, NoFaceError
from .config import ManipulatorConfig

# ----------------------------------------------------------------------------------------------------------------
# Action units

#: The AUs of the basis, in the order of every K-sized array in this package.
AU_NAMES = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU14", "AU15", "AU16", "AU17",
            "AU18", "AU20", "AU23", "AU24", "AU25", "AU26", "AU45")
AU_LABELS = {
    "AU1": "inner brow raiser", "AU2": "outer brow raiser", "AU4": "brow lowerer", "AU5": "upper lid raiser",
    "AU6": "cheek raiser", "AU7": "lid tightener", "AU9": "nose wrinkler", "AU10": "upper lip raiser",
    "AU12": "lip corner puller", "AU14": "dimpler", "AU15": "lip corner depressor", "AU16": "lower lip depressor",
    "AU17": "chin raiser", "AU18": "lip pucker", "AU20": "lip stretcher", "AU23": "lip tightener",
    "AU24": "lip pressor", "AU25": "lips part", "AU26": "jaw drop", "AU45": "blink",
}
#: Channels visemes need (opening, rounding, pressing): always the source's own, per frame; a style adds to them
#: only where the speech rule allows (see :mod:`ned_fx.manipulation.manipulator`).
SPEECH_AUS = ("AU18", "AU24", "AU25", "AU26")
#: The upper face's emotion AUs (brows, lids, cheeks, nose).
UPPER_FACE_AUS = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9")
#: The mouth-opening AUs (the neutral's mouth is closed; a talking shot's opening is never edited).
MOUTH_OPENING_AUS = ("AU25", "AU26")
#: Performance channels that are never edited (the actor's blinks stay).
PERFORMANCE_AUS = ("AU45",)
#: The AUs that carry emotion: everything else.
EMOTION_AUS = tuple(n for n in AU_NAMES if n not in SPEECH_AUS + PERFORMANCE_AUS)
#: AUs that open the eye: scaled down while the source blinks, so a raised lid never fights a blink.
LID_OPENING_AUS = ("AU5",)

#: Region of the face each AU belongs to (region control).
AU_REGION = {"AU1": "brows", "AU2": "brows", "AU4": "brows", "AU5": "eyes", "AU7": "eyes", "AU45": "eyes",
             "AU6": "cheeks", "AU9": "nose", "AU10": "lips", "AU12": "corners", "AU14": "corners",
             "AU15": "corners", "AU20": "corners", "AU16": "lips", "AU17": "lips", "AU18": "lips", "AU23": "lips",
             "AU24": "lips", "AU25": "jaw", "AU26": "jaw"}
REGIONS = ("brows", "eyes", "cheeks", "nose", "corners", "lips", "jaw")
#: Other names an artist may use for regions.
REGION_ALIASES = {"lids": ("eyes",), "eyelids": ("eyes",), "brow": ("brows",), "cheek": ("cheeks",),
                  "mouth_corners": ("corners",), "mouth": ("corners", "lips", "jaw"), "chin": ("lips",),
                  "all": REGIONS}

# ----------------------------------------------------------------------------------------------------------------
# Mesh facts used by the basis (beyond ned_fx.topology)

#: Left/right correspondence of the 468 mesh points (``MIRROR[i]`` is the mirror image of point ``i``; midline
#: points map to themselves). Derived by symmetric assignment over several real faces; an involution.
MIRROR = (
    0, 1, 2, 248, 4, 5, 6, 249, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 250, 251, 252, 253, 254, 255, 256,
    257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 270, 271, 272, 273, 274, 275, 276, 277, 278,
    279, 280, 281, 282, 283, 284, 285, 286, 287, 288, 289, 290, 291, 292, 293, 294, 295, 296, 297, 298, 299, 300,
    301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311, 312, 313, 314, 315, 316, 317, 318, 319, 320, 321, 322,
    323, 94, 324, 325, 326, 327, 328, 329, 330, 331, 332, 333, 334, 335, 336, 337, 338, 339, 340, 341, 342, 343,
    344, 345, 346, 347, 348, 349, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 360, 361, 362, 363, 364, 365,
    366, 367, 368, 369, 370, 371, 372, 373, 374, 375, 376, 377, 378, 379, 151, 152, 380, 381, 382, 383, 384, 385,
    386, 387, 388, 389, 390, 164, 391, 392, 393, 168, 394, 395, 396, 397, 398, 399, 175, 400, 401, 402, 403, 404,
    405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 195, 419, 197, 420, 199, 200, 421, 422,
    423, 424, 425, 426, 427, 428, 429, 430, 431, 432, 433, 434, 435, 436, 437, 438, 439, 440, 441, 442, 443, 444,
    445, 446, 447, 448, 449, 450, 451, 452, 453, 454, 455, 456, 457, 458, 459, 460, 461, 462, 463, 464, 465, 466,
    467, 3, 7, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
    45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72,
    73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 95, 96, 97, 98, 99, 100,
    101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122,
    123, 124, 125, 126, 127, 128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144,
    145, 146, 147, 148, 149, 150, 153, 154, 155, 156, 157, 158, 159, 160, 161, 162, 163, 165, 166, 167, 169, 170,
    171, 172, 173, 174, 176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193,
    194, 196, 198, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219,
    220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 241,
    242, 243, 244, 245, 246, 247,
)
#: The points the head pose is fitted on; the basis is exactly zero there (:data:`ned_fx.topology.RIGID_POINTS`).
RIGID_POINTS = topo.RIGID_POINTS

# Right-side (subject's right, image left) point sets; left ones are their mirror images.
UPPER_LID_R = (246, 161, 160, 159, 158, 157, 173)          # outer -> inner
LOWER_LID_R = (7, 163, 144, 145, 153, 154, 155)            # paired with UPPER_LID_R
LID_CREASE_R = (247, 30, 29, 27, 28, 56, 190)
#: The ring above LID_CREASE_R: with it, the band the upper lashes (and liner) lie on, paired column by column
#: with UPPER_LID_R
LASH_RING_R = (113, 225, 224, 223, 222, 221, 189)
LOWER_LID_RING_R = (25, 110, 24, 23, 22, 26, 112)
INFRAORBITAL_R = (31, 228, 229, 230, 231, 111, 117, 118, 119, 120, 121, 47, 100, 101)
CROWS_FEET_R = (130, 226, 35, 143, 113, 124)
BROW_INNER_R = (107, 66, 55, 65)
BROW_MID_R = (105, 52)
BROW_OUTER_R = (70, 63, 46, 53)
FOREHEAD_INNER_R = (108, 69)
FOREHEAD_OUTER_R = (104, 68, 54, 71)
NOSE_SIDE_R = (98, 64, 48, 102, 129, 49, 240, 235, 219, 218, 115, 220, 131, 209, 59, 75, 166, 79)
NOSE_BRIDGE_SIDE_R = (122, 188, 196, 3, 174, 236, 51, 217, 198, 126)
NASOLABIAL_R = (92, 165, 206, 203, 186, 216)
ZYGOMATIC_CHEEK_R = (205, 187, 207, 216, 206, 50, 36, 101, 203)
CORNER_R = (61, 76, 62, 78)
BELOW_CORNER_R = (43, 57, 202, 204, 106)
LOWER_FACE_SIDE_R = (212, 214, 202, 210, 57, 43)
UPPER_LIP_OUTER_R = (185, 40, 39, 37, 0)                   # corner side -> midline
UPPER_LIP_INNER_R = (191, 80, 81, 82, 13)
UPPER_LIP_ROWS_R = (184, 74, 73, 72, 11, 183, 42, 41, 38, 12)
LOWER_LIP_OUTER_R = (146, 91, 181, 84, 17)
LOWER_LIP_INNER_R = (95, 88, 178, 87, 14)
LOWER_LIP_ROWS_R = (77, 90, 180, 85, 16, 96, 89, 179, 86, 15)
CHIN_R = (18, 83, 201, 200, 194, 208, 199, 32)
JAW_R = (175, 152, 148, 176, 149, 150, 171, 140, 170, 169, 211, 204, 106, 182, 43, 202, 210, 136, 135, 172, 58)
JAW_UPPER_R = (138, 215, 214, 212, 192, 213, 132)
#: The nostril wing (ala) and the skin beside it: a smile's cheek leaves it (the nasolabial fold forms there).
_ALAR_R = (129, 49, 64, 98, 48, 102, 209, 198, 131)
#: Outer-lid weights along the lid (corners move least).
_LID_PROFILE = (0.35, 0.7, 0.9, 1.0, 0.9, 0.7, 0.4)
#: Along the lip from the corner side to the midline.
_LIP_PROFILE = (0.5, 0.9, 1.0, 0.85, 0.75)

#: Pupil points and the eye corners they follow: (iris points, (outer corner, inner corner)).
_IRIS = ((topo.RIGHT_IRIS, (33, 133)), (topo.LEFT_IRIS, (263, 362)))


def mirrored(points) -> tuple[int, ...]:
    """The mirror images of right-side points (midline points map to themselves)."""
    return tuple(MIRROR[p] for p in points)


def both_sides(points) -> tuple[int, ...]:
    """Right-side points and their mirror images, each once."""
    return tuple(dict.fromkeys(tuple(points) + mirrored(points)))


#: The lip rings column by column (each from the corner side to the midline), from the inner lip outwards.
UPPER_LIP_RINGS_R = (UPPER_LIP_INNER_R, UPPER_LIP_ROWS_R[5:], UPPER_LIP_ROWS_R[:5], UPPER_LIP_OUTER_R)
LOWER_LIP_RINGS_R = (LOWER_LIP_INNER_R, LOWER_LIP_ROWS_R[5:], LOWER_LIP_ROWS_R[:5], LOWER_LIP_OUTER_R)
UPPER_LIP = both_sides(UPPER_LIP_OUTER_R + UPPER_LIP_INNER_R + UPPER_LIP_ROWS_R)
LOWER_LIP = both_sides(LOWER_LIP_OUTER_R + LOWER_LIP_INNER_R + LOWER_LIP_ROWS_R)
#: Inner-lip pairs (upper, lower) whose gap speech owns.
INNER_LIP_PAIRS = tuple(zip(UPPER_LIP_INNER_R[:-1] + (13,) + mirrored(UPPER_LIP_INNER_R[:-1])[::-1],
                            LOWER_LIP_INNER_R[:-1] + (14,) + mirrored(LOWER_LIP_INNER_R[:-1])[::-1]))
LID_MARGINS = both_sides(UPPER_LID_R + LOWER_LID_R)


# ----------------------------------------------------------------------------------------------------------------
# Head frame

def head_frame(landmarks: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Frame pixels -> head frame, per frame.

    Args:
        landmarks: FxPx3 frame pixels; pose: Fx3x4 ``[sR | t]`` (NaN rows where no face).

    Returns:
        FxPx3 head-frame shapes (NaN where the pose is NaN).
    """
    landmarks = np.asarray(landmarks, np.float64)
    pose = np.asarray(pose, np.float64)
    out = np.full(landmarks.shape, np.nan)
    ok = np.isfinite(pose).all(axis=(1, 2)) & np.isfinite(landmarks).all(axis=(1, 2))
    if ok.any():
        inv = np.linalg.inv(pose[ok, :, :3])
        out[ok] = np.einsum("fij,fpj->fpi", inv, landmarks[ok] - pose[ok, None, :, 3])
    return out


def frame_offsets(head_offsets: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Head-frame displacements -> frame-pixel displacements (the linear part of the pose only).

    Args:
        head_offsets: FxPx3; pose: Fx3x4.

    Returns:
        FxPx3 displacements in frame pixels.
    """
    return np.einsum("fij,fpj->fpi", np.asarray(pose, np.float64)[:, :, :3], head_offsets)


def inter_ocular_3d(shape: np.ndarray) -> float:
    """Outer-eye-corner distance of one shape (Px3), in its own units (3D)."""
    return float(np.linalg.norm(shape[topo.EYE_OUTER_LEFT] - shape[topo.EYE_OUTER_RIGHT]))


def mouth_opening_iod(shapes: np.ndarray) -> np.ndarray:
    """Inner-lip gap in inter-ocular units (3D, head frame): ``...xPx3`` -> ``...``."""
    gap = np.linalg.norm(shapes[..., topo.MOUTH_UPPER_INNER, :] - shapes[..., topo.MOUTH_LOWER_INNER, :], axis=-1)
    iod = np.linalg.norm(shapes[..., topo.EYE_OUTER_LEFT, :] - shapes[..., topo.EYE_OUTER_RIGHT, :], axis=-1)
    return gap / iod


# ----------------------------------------------------------------------------------------------------------------
# Geodesics

def geodesic_distances(neutral: np.ndarray) -> np.ndarray:
    """All-pairs geodesic distance over the mesh (468x468, the shape's units).

    Edges of a frontal triangulation (:func:`ned_fx.topology.triangulate`), with every edge across the mouth
    (upper lip to lower lip) or across an eye (upper lid to lower lid) cut. Unconnected pairs are ``inf``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    shape = np.asarray(neutral, np.float64)[:topo.NUM_MESH]
    edges = topo.triangle_edges(topo.triangulate(shape))
    side = np.zeros(topo.NUM_MESH, np.int8)
    side[list(UPPER_LIP)], side[list(LOWER_LIP)] = 1, 2
    lids = np.zeros(topo.NUM_MESH, np.int8)
    lids[list(UPPER_LID_R)], lids[list(LOWER_LID_R)] = 1, 2
    lids[list(mirrored(UPPER_LID_R))], lids[list(mirrored(LOWER_LID_R))] = 3, 4
    a, b = edges[:, 0], edges[:, 1]
    cut = ((side[a] * side[b]) == 2) | ((lids[a] * lids[b]) == 2) | ((lids[a] * lids[b]) == 12)
    a, b = a[~cut], b[~cut]
    w = np.linalg.norm(shape[a] - shape[b], axis=1)
    graph = coo_matrix((np.concatenate([w, w]), (np.concatenate([a, b]), np.concatenate([b, a]))),
                       shape=(topo.NUM_MESH, topo.NUM_MESH)).tocsr()
    return dijkstra(graph, directed=False)


# ----------------------------------------------------------------------------------------------------------------
# Authoring the basis

@dataclass(frozen=True)
class _Handle:
    """Right-side anchor points that move together: ``move`` = (outward, up, forward) in inter-ocular units at
    activation 1, scaled per point by ``weights``; ``radius`` the geodesic falloff (inter-ocular units);
    ``held``: points anchored still, so the falloff fades out before them (another handle moves them)."""

    points: tuple[int, ...]
    move: tuple[float, float, float]
    radius: float = 0.12
    weights: tuple[float, ...] | None = None
    held: tuple[int, ...] = ()


H = _Handle
#: FACS-authored handles per AU (AU26 and AU45 are built by their own generators and damped below).
_AU_HANDLES: dict[str, tuple[_Handle, ...]] = {
    # a raised brow travels ~10-13 % IOD at 1 (more stretches the lid skin beneath into a smear)
    "AU1": (H(BROW_INNER_R, (0.0, 0.08, 0.0), 0.12, (1.0, 0.8, 1.0, 0.8)),
            H(FOREHEAD_INNER_R, (0.0, 0.05, 0.0), 0.15)),
    "AU2": (H(BROW_OUTER_R, (0.01, 0.06, 0.0), 0.12),
            H(BROW_MID_R, (0.0, 0.04, 0.0), 0.10),
            H(FOREHEAD_OUTER_R, (0.0, 0.045, 0.0), 0.15)),
    "AU4": (H(BROW_INNER_R, (-0.045, -0.07, 0.0), 0.12),
            H(BROW_MID_R, (-0.03, -0.06, 0.0), 0.10),
            H(BROW_OUTER_R, (-0.01, -0.04, 0.0), 0.12),
            H((9, 8), (0.0, -0.02, 0.0), 0.08)),
    "AU5": (H(UPPER_LID_R, (0.0, 0.05, 0.0), 0.05, _LID_PROFILE),
            H(LID_CREASE_R, (0.0, 0.02, 0.0), 0.06, _LID_PROFILE)),
    # the cheeks lift and bunch under the eye; the lower lid rises by a share of this actor's lid gap
    # (_LID_SHARES), so the squint of a smile is moderate on any eye and never closes it
    "AU6": (H(INFRAORBITAL_R, (0.0, 0.05, 0.01), 0.12, held=LOWER_LID_R),
            H(CROWS_FEET_R, (-0.01, 0.02, 0.0), 0.08, held=LOWER_LID_R)),
    "AU7": (H(LOWER_LID_R, (0.0, 0.03, 0.0), 0.04, _LID_PROFILE),
            H(UPPER_LID_R, (0.0, -0.012, 0.0), 0.04, _LID_PROFILE)),
    "AU9": (H(NOSE_SIDE_R, (-0.01, 0.06, 0.0), 0.10),
            H(NOSE_BRIDGE_SIDE_R, (0.0, 0.02, 0.0), 0.08),
            H(BROW_INNER_R, (-0.01, -0.03, 0.0), 0.10),
            H(UPPER_LIP_OUTER_R, (0.0, 0.02, 0.0), 0.08)),
    "AU10": (H(UPPER_LIP_OUTER_R, (0.0, 0.06, 0.01), 0.08, _LIP_PROFILE),
             H(UPPER_LIP_INNER_R, (0.0, 0.05, 0.0), 0.06, _LIP_PROFILE),
             H(NASOLABIAL_R, (0.005, 0.03, 0.0), 0.10),
             H(CORNER_R[:1], (0.0, 0.015, 0.0), 0.05)),
    # the lips follow the corners along a curve (_LIP_CURVES); the cheeks bunch up but leave the mouth to them
    "AU12": (H(CORNER_R, (0.08, 0.125, -0.02), 0.16, (1.0, 1.0, 0.95, 0.9)),
             H(ZYGOMATIC_CHEEK_R, (0.035, 0.10, 0.02), 0.14,
               held=CORNER_R + sum(UPPER_LIP_RINGS_R + LOWER_LIP_RINGS_R, ()) + _ALAR_R)),
    "AU14": (H(CORNER_R, (0.02, 0.01, -0.05), 0.08),
             H((57, 212, 186), (0.01, 0.0, -0.02), 0.06)),
    "AU15": (H(CORNER_R, (0.015, -0.08, 0.0), 0.12),
             H(BELOW_CORNER_R, (0.0, -0.04, 0.0), 0.10)),
    "AU16": (H(LOWER_LIP_OUTER_R, (0.015, -0.06, 0.03), 0.06, (0.5, 1.0, 1.0, 0.6, 0.4)),
             H(LOWER_LIP_INNER_R, (0.01, -0.045, 0.03), 0.05, (0.5, 1.0, 1.0, 0.6, 0.4))),
    "AU17": (H(CHIN_R, (0.0, 0.045, 0.03), 0.12),
             H(LOWER_LIP_OUTER_R, (0.0, 0.03, 0.02), 0.06, (0.2, 0.5, 0.8, 1.0, 1.0))),
    "AU18": (H(CORNER_R, (-0.09, 0.0, 0.04), 0.14),
             H(UPPER_LIP_OUTER_R + LOWER_LIP_OUTER_R, (-0.02, 0.0, 0.04), 0.08)),
    "AU20": (H(CORNER_R, (0.09, -0.02, -0.01), 0.14),
             H(LOWER_FACE_SIDE_R, (0.02, -0.015, 0.0), 0.12)),
    # the red narrows (_LIP_THINNING: a share of this actor's lip height) and the mouth narrows a little
    "AU23": (H(CORNER_R, (-0.025, 0.0, 0.005), 0.05),),
    "AU24": (H(UPPER_LIP_OUTER_R + UPPER_LIP_INNER_R, (0.0, -0.025, 0.0), 0.05),
             H(LOWER_LIP_OUTER_R + LOWER_LIP_INNER_R, (0.0, 0.03, 0.0), 0.05)),
    "AU25": (H(UPPER_LIP_INNER_R, (0.0, 0.02, 0.0), 0.05, (0.4, 0.8, 1.0, 1.0, 1.0)),
             H(UPPER_LIP_OUTER_R, (0.0, 0.01, 0.0), 0.05, (0.4, 0.8, 1.0, 1.0, 1.0)),
             H(LOWER_LIP_INNER_R, (0.0, -0.05, 0.0), 0.06, (0.4, 0.8, 1.0, 1.0, 1.0)),
             H(LOWER_LIP_OUTER_R, (0.0, -0.04, 0.0), 0.06, (0.4, 0.8, 1.0, 1.0, 1.0))),
}
del H
#: Per AU: (points, factor) pairs that damp the falloff where it would reach parts the AU does not move.
_AU_DAMP: dict[str, tuple[tuple[tuple[int, ...], float], ...]] = {
    "AU1": ((LID_MARGINS, 0.25),), "AU2": ((LID_MARGINS, 0.25),), "AU4": ((LID_MARGINS, 0.3),),
    "AU5": ((both_sides(LOWER_LID_R + LOWER_LID_RING_R), 0.0),),
    "AU6": ((both_sides(UPPER_LID_R), 0.2),), "AU9": ((LID_MARGINS, 0.0),), "AU12": ((LID_MARGINS, 0.0),),
}


#: AUs whose upper-lid motion carries the lash band rigidly (see build_basis)
_LASH_RIGID_AUS = ("AU1", "AU2", "AU5")


@dataclass(frozen=True)
class _LipCurve:
    """How the lips follow an AU's corner handle (its first handle).

    Every lip point moves with the corners, weighted by the lateral position of its column's inner-lip point,
    ``(|x| / |x_corner|) ** power`` (at least ``floor``; x from the midline of this actor's neutral): each column
    of the red moves as one, and the pull stretches the lips: their red narrows toward the inner lip line by
    ``thinning`` (a fraction of the actor's own lip height, column by column), as in a real smile. Left to the
    corner handle's geodesic falloff, the outer lip contours rose more than the inner lip near the corners (the
    upper lip thickened toward them by ~0.013 inter-ocular units) and the red kept its height: an independent
    tracker read the upper inner lip of that mouth 3-4 % of the inter-ocular distance too high, more so on a
    closed mouth than an open one, so on a talking shot its mouth opening followed the source's with r 0.93.
    """

    power: float
    floor: float
    thinning: float = 0.0


#: Corner AUs whose lips follow a :class:`_LipCurve` (a smile's lips curve and stretch thinner).
_LIP_CURVES: dict[str, _LipCurve] = {"AU12": _LipCurve(power=1.0, floor=0.15, thinning=0.4)}
#: AUs that narrow the red of the lips toward the inner lip line by a share of this actor's lip height (the lip
#: tightener presses the lips thin), beside their handles.
_LIP_THINNING: dict[str, float] = {"AU23": 0.45}
#: AUs that move the lid margins by a share of this actor's lid gap at activation 1: (upper lid down, lower lid
#: up). The cheek raiser's lower lid rise is a share, so a smile's squint is alike on narrow and wide eyes.
_LID_SHARES: dict[str, tuple[float, float]] = {"AU6": (0.0, 0.35)}
#: Reach of the lip thinning into the skin around the lips (geodesic sigma, inter-ocular units).
_LIP_THINNING_RADIUS = 0.03
#: Jaw drop: lower inner lip travel at activation 1 (inter-ocular units), the share of rotation about the
#: jaw joints in the motion (the rest is the condyles' forward glide, which reads as a downward translation),
#: and the weight of each part of the lower face.
_JAW_TRAVEL = 0.22
_JAW_ROTATION = 0.5
_JAW_WEIGHTS = ((LOWER_LIP_OUTER_R + LOWER_LIP_INNER_R + LOWER_LIP_ROWS_R + CHIN_R + JAW_R[:-3], 1.0),
                ((136, 135, 214, 212), 0.7), ((138, 192, 172), 0.45), (CORNER_R, 0.3), ((58, 215, 213), 0.25),
                ((132, 177, 147), 0.0))
#: Blink: share of the lid gap closed by the upper lid (the lower lid does the rest).
_BLINK_UPPER_SHARE = 0.8


def _anchor_field(geo: np.ndarray, anchors: np.ndarray, vectors: np.ndarray, radius: float) -> np.ndarray:
    """Spread anchor displacements over the mesh.

    Args:
        geo: 468x468 geodesic distances (inter-ocular units); anchors: N point indices; vectors: NxC
        displacement (or any per-anchor value) at each anchor; radius: falloff sigma (inter-ocular units).

    Returns:
        468xC field: the inverse-square-distance blend of the anchor vectors (exact at the anchors) times a
        Gaussian falloff of the geodesic distance to the nearest anchor (zero beyond four radii).
    """
    d = geo[anchors]                                        # N x 468
    dmin = d.min(axis=0)
    finite = np.isfinite(dmin)
    w = 1.0 / (np.where(np.isfinite(d), d, np.inf) ** 2 + 1e-8)
    blend = (w.T @ vectors) / np.maximum(w.sum(0), 1e-300)[:, None]
    near = finite & (dmin < 4.0 * radius)                   # exactly zero beyond four radii: local AUs
    fall = np.where(near, np.exp(-0.5 * (np.where(near, dmin, 0.0) / radius) ** 2), 0.0)
    return blend * fall[:, None]


def _handle_field(geo: np.ndarray, handle: _Handle, iod: float) -> np.ndarray:
    """One handle (right side + mirror) -> 468x3 head-frame field (head-frame units)."""
    right = np.asarray(tuple(handle.points) + tuple(handle.held))
    weights = np.ones(len(handle.points)) if handle.weights is None else np.asarray(handle.weights, np.float64)
    weights = np.concatenate([weights, np.zeros(len(handle.held))])
    left = np.asarray(mirrored(tuple(handle.points) + tuple(handle.held)))
    on_mid = left == right
    pts = np.concatenate([right, left[~on_mid]])
    w = np.concatenate([weights, weights[~on_mid]])
    side = np.concatenate([np.where(on_mid, 0.0, -1.0), np.ones((~on_mid).sum())])
    out, up, fwd = handle.move
    vec = np.stack([side * out, np.full_like(side, -up), np.full_like(side, -fwd)], axis=1) * w[:, None] * iod
    return _anchor_field(geo, pts, vec, handle.radius)


def _weight_field(geo: np.ndarray, parts, radius: float) -> np.ndarray:
    """Scalar region weight over the mesh from (right-side points, weight) parts (mirrored)."""
    pts, vals = [], []
    for points, value in parts:
        p = both_sides(points)
        pts.extend(p)
        vals.extend([value] * len(p))
    pts_arr, idx = np.unique(np.asarray(pts), return_index=True)
    v = np.asarray(vals, np.float64)[idx]
    return _anchor_field(geo, pts_arr, v[:, None], radius)[:, 0]


def _jaw_field(neutral: np.ndarray, geo: np.ndarray, iod: float) -> np.ndarray:
    """AU26: the mandible's motion, weighted over the lower face: a downward glide plus a rotation about the
    temporomandibular axis (x through the jaw joints, linearised), scaled so the lower inner lip travels
    ``_JAW_TRAVEL`` inter-ocular units down."""
    side_l, side_r = neutral[454], neutral[234]
    pivot_y = 0.5 * (side_l[1] + side_r[1])
    pivot_z = 0.5 * (side_l[2] + side_r[2]) + 0.3 * iod
    w = _weight_field(geo, _JAW_WEIGHTS, 0.08)
    pts = neutral[:topo.NUM_MESH]
    tangent = np.stack([np.zeros(len(pts)), -(pts[:, 2] - pivot_z), pts[:, 1] - pivot_y], axis=1)
    tangent /= max(np.linalg.norm(tangent[topo.MOUTH_LOWER_INNER]), 1e-9)
    glide = np.array([0.0, 1.0, 0.0])
    field = w[:, None] * ((1 - _JAW_ROTATION) * glide + _JAW_ROTATION * tangent)
    travel = field[topo.MOUTH_LOWER_INNER, 1]
    return field * (_JAW_TRAVEL * iod / max(travel, 1e-9))


def _lip_curve_handle(neutral: np.ndarray, handle: _Handle, curve: _LipCurve) -> _Handle:
    """A corner handle with every lip point added as an anchor, column by column weighted by the lateral position
    of the column's inner-lip point (see :class:`_LipCurve`): a column of the lip moves as one, so neither lip
    thickens or thins where the line bends."""
    mid = float(neutral[[0, 13, 14, 17], 0].mean())
    half = 0.5 * (abs(neutral[topo.MOUTH_CORNER_RIGHT, 0] - mid) + abs(neutral[topo.MOUTH_CORNER_LEFT, 0] - mid))
    lips, lateral = [], []
    for rings in (UPPER_LIP_RINGS_R, LOWER_LIP_RINGS_R):
        x = [0.5 * (abs(neutral[p, 0] - mid) + abs(neutral[MIRROR[p], 0] - mid)) for p in rings[0]]
        for ring in rings:
            lips += ring
            lateral += x
    share = np.minimum(1.0, np.asarray(lateral) / max(half, 1e-9))
    weights = np.maximum(curve.floor, share ** curve.power)
    own = handle.weights or (1.0,) * len(handle.points)
    return _Handle(tuple(handle.points) + tuple(lips), handle.move, handle.radius, tuple(own) + tuple(weights),
                   handle.held)


def _lip_thinning_field(neutral: np.ndarray, geo: np.ndarray, fraction: float) -> np.ndarray:
    """The lips' red narrowing toward the inner lip line: every lip ring point moves vertically (head frame) by
    ``fraction`` of its height above/below the inner lip point of its column; the inner lips and corners stay."""
    anchors, vectors = [], []
    for rings in (UPPER_LIP_RINGS_R, LOWER_LIP_RINGS_R):
        for side in (lambda pts: tuple(pts), mirrored):
            inner = side(rings[0])
            for ring in rings:
                pts = side(ring)
                vec = np.zeros((len(pts), 3))
                vec[:, 1] = fraction * (neutral[list(inner), 1] - neutral[list(pts), 1])
                anchors += pts
                vectors.append(vec)
    corners = both_sides(CORNER_R)
    anchors += corners
    vectors.append(np.zeros((len(corners), 3)))
    idx, first = np.unique(np.asarray(anchors), return_index=True)
    return _anchor_field(geo, idx, np.concatenate(vectors)[first], _LIP_THINNING_RADIUS)


def _blink_field(neutral: np.ndarray, geo: np.ndarray, iod: float) -> np.ndarray:
    """AU45: each upper lid margin point closes onto its lower partner (this actor's lid gap), the lower lid
    meets it; lid skin around follows."""
    pts, vec = [], []
    for upper, lower in ((UPPER_LID_R, LOWER_LID_R), (mirrored(UPPER_LID_R), mirrored(LOWER_LID_R))):
        gap = neutral[list(lower)] - neutral[list(upper)]
        pts += [upper, lower]
        vec += [_BLINK_UPPER_SHARE * gap, -(1 - _BLINK_UPPER_SHARE) * gap]
    idx = np.concatenate([np.asarray(p) for p in pts])
    return _anchor_field(geo, idx, np.concatenate(vec), 0.05)


def _lid_share_field(neutral: np.ndarray, geo: np.ndarray, upper_share: float, lower_share: float) -> np.ndarray:
    """The lid margins move toward each other by shares of this actor's lid gap (each pair of the margins),
    weighted along the lid (:data:`_LID_PROFILE`); the lid skin around follows."""
    pts, vec = [], []
    for upper, lower in ((UPPER_LID_R, LOWER_LID_R), (mirrored(UPPER_LID_R), mirrored(LOWER_LID_R))):
        gap = (neutral[list(lower)] - neutral[list(upper)]) * np.asarray(_LID_PROFILE)[:, None]
        gap[:, [0, 2]] = 0.0                                     # vertical only: the lids do not slide sideways
        pts += [upper, lower]
        vec += [upper_share * gap, -lower_share * gap]
    idx = np.concatenate([np.asarray(p) for p in pts])
    return _anchor_field(geo, idx, np.concatenate(vec), 0.04)


def _lip_gap_projector(geo: np.ndarray, radius: float) -> np.ndarray:
    """The linear map (468x468, applied per coordinate) that removes from a field every change of the inner-lip
    gap at :data:`INNER_LIP_PAIRS`: the difference is split between the lips and spread smoothly over each."""
    up = np.array([u for u, _ in INNER_LIP_PAIRS])
    lo = np.array([l for _, l in INNER_LIP_PAIRS])
    upper_region = np.zeros(topo.NUM_MESH)
    upper_region[list(UPPER_LIP)] = 1
    lower_region = np.zeros(topo.NUM_MESH)
    lower_region[list(LOWER_LIP)] = 1
    # kernels centred on each pair's upper / lower point, each living on its own lip (+ its surroundings)
    phi = np.exp(-0.5 * (geo[up] / radius) ** 2) * (1 - lower_region)[None]      # n x 468
    psi = np.exp(-0.5 * (geo[lo] / radius) ** 2) * (1 - upper_region)[None]
    kern = phi - psi                                                              # correction basis (n x 468)
    # gap change of the correction at the pairs: (upper - lower) per basis function
    g = kern[:, up] - kern[:, lo]                                                 # n(basis) x n(pairs)
    # field f -> f + kern.T @ c with (f_up - f_lo) + g.T c = 0
    sel = np.zeros((len(up), topo.NUM_MESH))
    sel[np.arange(len(up)), up] = 1
    sel[np.arange(len(lo)), lo] -= 1                                              # f -> f_up - f_lo
    c = -np.linalg.solve(g.T, sel)                                                # n x 468
    return np.eye(topo.NUM_MESH) + kern.T @ c


#: AUs that raise the upper lip (a sneer) or lower the lower lip: in their edit fields (positive offsets) the
#: upper lip moves as one piece, each column by its mean, and the inner-lip gap change is taken out by the lower
#: lip following the upper one column by column (:func:`_lower_lip_follows_projector`), so neither lip's red
#: changes. Split between the lips (:func:`_lip_gap_projector`) the upper lip's
#: inner edge was held down while AU10 raised its outer edge: on WDA's talker the red of the upper lip grew
#: visibly thicker and MediaPipe read the mouth 0.064 IOD more open (whole-clip opening r 0.938).
LOWER_LIP_FOLLOWS_AUS = ("AU9", "AU10", "AU16")


def _lip_columns(rings_r) -> tuple[tuple[int, ...], ...]:
    """The lip's columns in :data:`INNER_LIP_PAIRS` order (each: its points from the inner lip outwards)."""
    right = [tuple(ring[i] for ring in rings_r) for i in range(len(rings_r[0]) - 1)]
    mid = (tuple(ring[-1] for ring in rings_r),)
    return tuple(right) + mid + tuple(mirrored(c) for c in right[::-1])


def _lower_lip_follows_projector(geo: np.ndarray, radius: float) -> np.ndarray:
    """The linear map (468x468, per coordinate) that removes from a field every change of the inner-lip gap at
    :data:`INNER_LIP_PAIRS` by moving the lower lip: each of its columns (inner lip to outer edge) moves as one by
    its inner-lip pair's gap change, so the lower lip follows the upper one (as a chin raiser pushes it up in
    disgust) and keeps its thickness; the skin around follows with a geodesic falloff (``radius``); the upper lip
    and the mouth corners are left as the AU moves them (a follow spread into the corners lifted them 3 % IOD more
    than a sneer's own lift, undoing the lip corner depressor)."""
    cols = _lip_columns(LOWER_LIP_RINGS_R)
    sel = np.zeros((len(INNER_LIP_PAIRS), topo.NUM_MESH))                        # f -> f_up - f_lo per pair
    for i, (u, l) in enumerate(INNER_LIP_PAIRS):
        sel[i, u], sel[i, l] = 1.0, -1.0
    lip = np.array([p for c in cols for p in c])
    corners = np.array(both_sides(CORNER_R))
    col_of = np.array([i for i, c in enumerate(cols) for _ in c])
    onehot = np.zeros((len(lip) + len(corners), len(cols)))
    onehot[np.arange(len(lip)), col_of] = 1.0
    anchors = np.concatenate([lip, corners])
    spread = _anchor_field(geo, anchors, onehot, radius)                        # 468 x columns
    spread[list(UPPER_LIP)] = 0.0
    spread[anchors] = onehot                                                     # exact on the lip, corners held
    return np.eye(topo.NUM_MESH) + spread @ sel


@dataclass(frozen=True)
class ExpressionBasis:
    """The AU basis of one actor.

    Attributes:
        names: AU names (K), :data:`AU_NAMES`.
        fields: KxPx3 head-frame displacement per unit activation (P = 478; iris rows follow the eye corners).
        edit_fields: KxPx3 the fields applied to positive activation *offsets* by the manipulator: speech channels
            as ``fields``, every other AU with its inner-lip-gap change projected out (for
            :data:`LOWER_LIP_FOLLOWS_AUS` by the lower lip following the upper one).
        upper: K upper bounds of the activations.
        iod: the neutral's inter-ocular distance (head-frame units) the fields are scaled to.
        edit_fields_down: KxPx3 the fields applied to negative offsets (None: ``edit_fields``): there every AU's
            gap change is split between the lips, so a style that takes a source's raised upper lip away (d12's
            grin, for every emotion) thins its red as before instead of lowering the whole mouth.
    """

    names: tuple[str, ...]
    fields: np.ndarray
    edit_fields: np.ndarray
    upper: np.ndarray
    iod: float
    edit_fields_down: np.ndarray | None = None

    def index(self, name: str) -> int:
        """Position of an AU name in every K-sized array."""
        return self.names.index(name)

    def decode(self, activations: np.ndarray, edit: bool = False) -> np.ndarray:
        """``...xK`` activations -> ``...xPx3`` head-frame displacement (``edit``: the speech-safe fields, for
        activation offsets: ``edit_fields`` for the positive ones, ``edit_fields_down`` for the negative ones)."""
        if not edit:
            return np.tensordot(activations, self.fields, axes=([-1], [0]))
        if self.edit_fields_down is None:
            return np.tensordot(activations, self.edit_fields, axes=([-1], [0]))
        a = np.asarray(activations)
        return (np.tensordot(np.maximum(a, 0.0), self.edit_fields, axes=([-1], [0]))
                + np.tensordot(np.minimum(a, 0.0), self.edit_fields_down, axes=([-1], [0])))


def build_basis(neutral: np.ndarray, config: ManipulatorConfig | None = None) -> ExpressionBasis:
    """Author the AU basis on an actor's neutral shape.

    Args:
        neutral: Px3 head-frame neutral shape (P = 478, or 468 without iris).
        config: limits (defaults when None).

    Returns:
        the :class:`ExpressionBasis` (fields scaled to the neutral's inter-ocular distance).
    """
    config = config or ManipulatorConfig()
    neutral = np.asarray(neutral, np.float64)
    p = neutral.shape[0]
    iod = inter_ocular_3d(neutral)
    geo = geodesic_distances(neutral) / iod
    fields = np.zeros((len(AU_NAMES), p, 3))
    for k, name in enumerate(AU_NAMES):
        if name == "AU26":
            f = _jaw_field(neutral, geo, iod)
        elif name == "AU45":
            f = _blink_field(neutral, geo, iod)
        elif name in _LIP_CURVES:
            curve = _LIP_CURVES[name]
            corner, *rest = _AU_HANDLES[name]
            f = sum(_handle_field(geo, h, iod) for h in [_lip_curve_handle(neutral, corner, curve)] + rest)
            if curve.thinning:
                f = f + _lip_thinning_field(neutral, geo, curve.thinning)
        else:
            f = sum(_handle_field(geo, h, iod) for h in _AU_HANDLES[name])
        if name in _LIP_THINNING:
            f = f + _lip_thinning_field(neutral, geo, _LIP_THINNING[name])
        if name in _LID_SHARES:
            f = f + _lid_share_field(neutral, geo, *_LID_SHARES[name])
        for points, factor in _AU_DAMP.get(name, ()):
            f[list(points)] *= factor
        if name in _LASH_RIGID_AUS:
            # the lashes ride on the lid margin: the band from the margin to LASH_RING moves as the margin does,
            # so lashes and liner are carried, never stretched; the skin between that band and the brow takes
            # the stretch of a raised brow (as the real lid skin does)
            for upper, crease, ring in ((UPPER_LID_R, LID_CREASE_R, LASH_RING_R),
                                        (mirrored(UPPER_LID_R), mirrored(LID_CREASE_R), mirrored(LASH_RING_R))):
                f[list(crease)] = f[list(upper)]
                f[list(ring)] = f[list(upper)]
        f[list(RIGID_POINTS)] = 0.0
        fields[k, :topo.NUM_MESH] = f
        if p > topo.NUM_MESH:
            for iris, corners in _IRIS:
                fields[k, list(iris)] = f[list(corners)].mean(axis=0)
    proj = _lip_gap_projector(geo, config.lip_correction_radius)
    follow = _lower_lip_follows_projector(geo, config.lip_correction_radius)
    edit, down = fields.copy(), fields.copy()
    for k, name in enumerate(AU_NAMES):
        if name not in SPEECH_AUS + PERFORMANCE_AUS:
            raised = fields[k, :topo.NUM_MESH].copy()
            if name in LOWER_LIP_FOLLOWS_AUS:
                # the upper lip rises as one piece: each column (inner edge to outer edge) by its mean
                for col in _lip_columns(UPPER_LIP_RINGS_R):
                    raised[list(col)] = raised[list(col)].mean(axis=0)
            for out, mine, f in ((edit, follow if name in LOWER_LIP_FOLLOWS_AUS else proj, raised),
                                 (down, proj, fields[k, :topo.NUM_MESH])):
                out[k, :topo.NUM_MESH] = np.einsum("pq,qc->pc", mine, f)
                out[k, list(RIGID_POINTS)] = 0.0
                if p > topo.NUM_MESH:
                    for iris, corners in _IRIS:
                        out[k, list(iris)] = out[k, list(corners)].mean(axis=0)
    upper = np.array([config.max_mouth_activation if n in MOUTH_OPENING_AUS else config.max_activation
                      for n in AU_NAMES])
    return ExpressionBasis(names=AU_NAMES, fields=fields, edit_fields=edit, upper=upper, iod=iod,
                           edit_fields_down=down)


def basis_condition(basis: ExpressionBasis, config: ManipulatorConfig | None = None) -> float:
    """Condition number of the fit's normal matrix (with the configured ridge and depth weight)."""
    config = config or ManipulatorConfig()
    q = _normal_matrix(basis, config)
    return float(np.linalg.cond(q))


# ----------------------------------------------------------------------------------------------------------------
# Fit

def _design(basis: ExpressionBasis, config: ManipulatorConfig) -> np.ndarray:
    """(468*3)xK weighted design matrix of the fit."""
    w = np.sqrt(np.array([1.0, 1.0, config.z_weight]))
    a = basis.fields[:, :topo.NUM_MESH] * w
    return a.reshape(len(basis.names), -1).T


def _normal_matrix(basis: ExpressionBasis, config: ManipulatorConfig) -> np.ndarray:
    a = _design(basis, config)
    q = a.T @ a
    return q + config.ridge * np.diag(np.diag(q))


def _bounded_qp(q: np.ndarray, c: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``argmin aᵀqa - 2cᵀa`` with ``lower <= a <= upper`` for each row of c (FxK), q positive definite."""
    from scipy.linalg import cho_factor, cho_solve, solve_triangular
    from scipy.optimize import lsq_linear

    chol = cho_factor(q, lower=False)
    res = cho_solve(chol, c.T).T                               # unconstrained optimum per frame
    r = np.triu(chol[0])                                       # q = rᵀr: the objective is |r a - b|² + const
    b = solve_triangular(r, c.T, trans="T").T
    inside = ((res >= lower - 1e-12) & (res <= upper + 1e-12)).all(axis=1)
    for i in np.flatnonzero(~inside):
        res[i] = lsq_linear(r, b[i], bounds=(lower, upper), method="bvls", tol=1e-12).x
    return np.clip(res, lower, upper)


def fit_activations(shapes: np.ndarray, neutral: np.ndarray, basis: ExpressionBasis,
                    config: ManipulatorConfig | None = None, lower: np.ndarray | None = None,
                    upper: np.ndarray | None = None) -> np.ndarray:
    """Per-frame bounded, sparse, ridge-regularised least squares of ``shape - neutral`` onto the basis.

    Two steps per frame (a relaxed lasso): a fit with an L1 cost of ``config.sparsity`` / 2 activation units
    per AU picks the AUs that are really at work (so antagonists do not cancel each other out), then the bounded
    least-squares fit on those AUs alone gives their unbiased activations.

    Args:
        shapes: FxPx3 head-frame shapes (NaN rows are skipped); neutral: Px3; basis: the actor's basis.
        config: ridge, sparsity and depth weight (defaults when None).
        lower, upper: K bounds (default 0 and ``basis.upper``); AUs with a negative lower bound are signed
            and free of the L1 cost; an AU with ``upper <= lower`` is pinned at ``lower`` (left out of the fit).

    Returns:
        FxK activations (NaN for frames with NaN shapes).
    """
    config = config or ManipulatorConfig()
    shapes = np.asarray(shapes, np.float64)
    k = len(basis.names)
    lower = np.zeros(k) if lower is None else np.asarray(lower, np.float64)
    upper = basis.upper if upper is None else np.asarray(upper, np.float64)
    out = np.full((len(shapes), k), np.nan)
    ok = np.isfinite(shapes[:, :topo.NUM_MESH]).all(axis=(1, 2))
    if not ok.any():
        return out
    fixed = upper <= lower
    if fixed.any():                                            # AUs pinned to a value leave the fit
        free = np.flatnonzero(~fixed)
        pinned = np.where(fixed, lower, 0.0)
        down = None if basis.edit_fields_down is None else basis.edit_fields_down[free]
        sub = ExpressionBasis(tuple(basis.names[i] for i in free), basis.fields[free], basis.edit_fields[free],
                              basis.upper[free], basis.iod, down)
        rest = fit_activations(shapes - basis.decode(pinned), neutral, sub, config, lower[free], upper[free])
        out[ok] = pinned
        out[np.ix_(ok, free)] = rest[ok]
        return out
    a = _design(basis, config)
    w = np.sqrt(np.array([1.0, 1.0, config.z_weight]))
    y = ((shapes[ok, :topo.NUM_MESH] - neutral[None, :topo.NUM_MESH]) * w).reshape(ok.sum(), -1)
    q = _normal_matrix(basis, config)
    c = y @ a                                                  # F x K
    if config.sparsity <= 0:
        out[ok] = _bounded_qp(q, c, lower, upper)
        return out
    l1 = 0.5 * config.sparsity * np.diag(a.T @ a) * (lower >= 0)
    first = _bounded_qp(q, c - l1, lower, upper)
    active = (first > 1e-9) | (lower < 0)
    res = np.zeros_like(first)
    patterns, inverse = np.unique(active, axis=0, return_inverse=True)
    for j, pattern in enumerate(patterns):
        rows = np.flatnonzero(inverse.ravel() == j)
        idx = np.flatnonzero(pattern)
        if len(idx):
            res[np.ix_(rows, idx)] = _bounded_qp(q[np.ix_(idx, idx)], c[np.ix_(rows, idx)], lower[idx], upper[idx])
    out[ok] = res
    return out


def estimate_neutral(shapes: np.ndarray, config: ManipulatorConfig | None = None) -> np.ndarray:
    """The actor's neutral (identity) shape from a shot, robustly and without the basis.

    The neutral is the face the actor keeps returning to, with the mouth at rest: the densest frame of the shot
    is found by the upper face and the lips' upper half (smallest mean distance to its nearest
    ``neutral_mode_fraction`` of the frames, over the mesh points that expressions move, leaving out the lower
    lip and jaw that speech moves); of it and those neighbours, the ``neutral_closed_percentile`` percent with
    the smallest inner-lip gap are taken, and the neutral is their per-point median. Transient expressions (a
    frown, a surprise, blinks) are outvoted and speech does not open the neutral's mouth. A lower face that is
    still outside the bands of a relaxed neutral is relaxed into them as a still's is (:func:`still_neutral`): an
    actor who smiles or keeps his lips apart through the whole shot (d12.mp4's smiling talker, whose corners sit
    5 % IOD above the lip line on the estimate) gets a neutral without the smile, so an edit to sad or angry
    takes the smile away instead of building on it. A frame that is truly neutral beats any estimate: pass it
    instead. An upper-face expression held through the whole shot cannot be told from identity and stays in the
    neutral.

    Args:
        shapes: FxPx3 head-frame shapes (rows with NaN are ignored).
        config: the neutral's knobs (defaults when None).

    Returns:
        Px3 neutral shape (head frame).

    Raises:
        NoFaceError: no frame has a face.
    """
    config = config or ManipulatorConfig()
    shapes = np.asarray(shapes, np.float64)
    ok = np.isfinite(shapes[:, :topo.NUM_MESH]).all(axis=(1, 2))
    if not ok.any():
        raise NoFaceError("no frame has a face; a neutral cannot be estimated")
    x = shapes[ok]
    if len(x) == 1:
        return still_neutral(x[0], config)
    if len(x) < 3:
        return np.median(x, axis=0)
    lower_face = both_sides(LOWER_LIP_OUTER_R + LOWER_LIP_INNER_R + LOWER_LIP_ROWS_R + CHIN_R + JAW_R + JAW_UPPER_R)
    points = np.setdiff1d(np.arange(topo.NUM_MESH), np.concatenate([RIGID_POINTS, lower_face]))
    v = x[:, points].reshape(len(x), -1) / inter_ocular_3d(np.median(x, axis=0))
    sq = (v ** 2).sum(1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * v @ v.T, 0.0) / len(points))
    k = max(1, min(len(x) - 1, int(round(config.neutral_mode_fraction * len(x)))))
    near = np.sort(dist, axis=1)[:, 1:k + 1].mean(axis=1)
    cluster = np.argsort(dist[int(np.argmin(near))], kind="stable")[:k + 1]
    gap = mouth_opening_iod(x[cluster])
    rest = cluster[gap <= max(np.percentile(gap, config.neutral_closed_percentile), config.neutral_closed_gap)]
    return still_neutral(np.median(x[rest], axis=0), config)


#: The lower face of a relaxed neutral, as (measure, low, high) in inter-ocular units (head frame), from neutral
#: faces (studio portraits and the neutral estimates of talking shots): a still whose measure lies outside is
#: read as an expression there (:func:`still_neutral`). Wide bands: a face's own proportions are never touched.
_NEUTRAL_BANDS = (("lift", -0.03, 0.005), ("width", 0.49, 0.58), ("opening", 0.0, 0.04),
                  ("corners_below_nose", 0.215, 0.28), ("lip_below_nose", 0.13, 0.175),
                  ("chin_below_lip", 0.28, 0.37))
#: The AUs a still's expression is read with (the lower face: the upper face of a still is its identity).
#: Their cost per unit activation in that reading, where two AUs could explain one measure: a wide mouth with
#: raised corners is a smile (AU12) before it is a stretch (AU20) or a dimple (AU14).
_STILL_RIDGE = {"AU14": 0.3, "AU20": 0.3}
STILL_AUS = ("AU10", "AU12", "AU14", "AU15", "AU16", "AU17", "AU18", "AU20", "AU23", "AU24", "AU25", "AU26")


def _neutral_measures(shapes: np.ndarray) -> np.ndarray:
    """``...xPx3`` -> ``...x M`` the measures of :data:`_NEUTRAL_BANDS` (linear in the shape; IOD units)."""
    x = np.asarray(shapes, np.float64)
    iod = np.linalg.norm(x[..., topo.EYE_OUTER_LEFT, :] - x[..., topo.EYE_OUTER_RIGHT, :], axis=-1)
    y = x[..., 1]
    corners = 0.5 * (y[..., topo.MOUTH_CORNER_RIGHT] + y[..., topo.MOUTH_CORNER_LEFT])
    centre = 0.5 * (y[..., topo.MOUTH_UPPER_INNER] + y[..., topo.MOUTH_LOWER_INNER])
    width = x[..., topo.MOUTH_CORNER_LEFT, 0] - x[..., topo.MOUTH_CORNER_RIGHT, 0]
    gap = y[..., topo.MOUTH_LOWER_INNER] - y[..., topo.MOUTH_UPPER_INNER]
    nose = y[..., 2]
    return np.stack([centre - corners, width, gap, corners - nose, y[..., 0] - nose, y[..., 152] - y[..., 17]],
                    axis=-1) / iod[..., None]


def still_activations(shape: np.ndarray, basis: ExpressionBasis) -> np.ndarray:
    """The lower-face expression of one face with no other frame to compare with: the smallest non-negative
    activations of :data:`STILL_AUS` that bring its measures into the bands of a relaxed neutral
    (:data:`_NEUTRAL_BANDS`). Zero for a face inside every band (a neutral portrait).

    Args:
        shape: Px3 head-frame shape; basis: a basis authored on it (or on a face close to it).

    Returns:
        K activations.
    """
    from scipy.optimize import lsq_linear

    m = _neutral_measures(shape)
    lo = np.array([b[1] for b in _NEUTRAL_BANDS])
    hi = np.array([b[2] for b in _NEUTRAL_BANDS])
    excess = m - np.clip(m, lo, hi)
    out = np.zeros(len(basis.names))
    if not np.any(np.abs(excess) > 1e-12):
        return out
    scale = 1.0 / np.maximum(hi - lo, 1e-6)
    # first the jaw and lips part alone close an open mouth to the band (an opening is speech-like: the other AUs
    # must not soak it up), then every lower-face AU explains what is left
    for names in (MOUTH_OPENING_AUS, STILL_AUS):
        idx = [basis.index(n) for n in names]
        jac = (_neutral_measures(shape[None] + basis.fields[idx]) - m[None]).T          # M x n (linear)
        rows = [2] if names is MOUTH_OPENING_AUS else slice(None)
        ridge = np.array([_STILL_RIDGE.get(n, 0.05) for n in names])
        now = _neutral_measures(shape - basis.decode(out))
        excess = now - np.clip(now, lo, hi)
        a = np.vstack([(jac * scale[:, None])[rows], np.diag(np.sqrt(ridge))])
        b = np.concatenate([(excess * scale)[rows], np.zeros(len(idx))])
        out[idx] += lsq_linear(a, b, bounds=(-out[idx], basis.upper[idx] - out[idx])).x
    return out


def still_neutral(shape: np.ndarray, config: ManipulatorConfig | None = None) -> np.ndarray:
    """The actor's neutral estimated from a single face: the shape with its lower-face expression
    (:func:`still_activations`, read with a basis authored on the face itself) taken out: a smile's corners come
    down and in, a pout's lower lip and chin relax, an open mouth closes. The face itself when it is within the
    bands of a relaxed neutral.

    Args:
        shape: Px3 head-frame shape.

    Returns:
        Px3.
    """
    shape = np.asarray(shape, np.float64)
    basis = build_basis(shape, config)
    act = still_activations(shape, basis)
    if not act.any():
        return shape.copy()
    return shape - basis.decode(act)


@dataclass(frozen=True)
class ExpressionModel:
    """An actor's expression model: neutral shape + AU basis.

    Attributes:
        neutral: Px3 head-frame neutral shape.
        basis: the :class:`ExpressionBasis` authored on it.
    """

    neutral: np.ndarray
    basis: ExpressionBasis

    @classmethod
    def from_neutral(cls, neutral: np.ndarray, config: ManipulatorConfig | None = None) -> "ExpressionModel":
        """Build the basis on a given neutral (Px3 head frame)."""
        neutral = np.asarray(neutral, np.float64)
        if not np.isfinite(neutral).all():
            raise InvalidParameterError("the neutral shape has non-finite values")
        return cls(neutral=neutral, basis=build_basis(neutral, config))

    def fit(self, shapes: np.ndarray, config: ManipulatorConfig | None = None) -> np.ndarray:
        """FxPx3 head-frame shapes -> FxK activations (NaN where no face)."""
        return fit_activations(shapes, self.neutral, self.basis, config)

    def residual(self, shapes: np.ndarray, activations: np.ndarray) -> np.ndarray:
        """What the basis does not explain: ``shapes - (neutral + basis·a)`` (FxPx3)."""
        return shapes - self.neutral - self.basis.decode(activations)

    def decode(self, activations: np.ndarray, residual: np.ndarray | None = None) -> np.ndarray:
        """``...xK`` activations (+ residual) -> ``...xPx3`` head-frame shapes."""
        shape = self.neutral + self.basis.decode(activations)
        return shape if residual is None else shape + residual
