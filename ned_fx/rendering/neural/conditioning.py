"""Conditioning images from the mesh, the aligned face crop, and the plate's working space.

**The face crop.** The neural renderer works on a square crop aligned to the *source* face by a similarity
(:func:`face_similarity`): the mesh's centre at the crop's centre, its RMS radius ``crop_size / crop_extent``
pixels, the line through the outer eye corners level. Alignment removes the head's position, size and roll,
so the generator sees every frame's face the same way (what lets a small network learn an actor from a few
hundred frames); everything else (yaw, pitch, expression, lighting) it must render.

**The conditioning images** (:data:`MAP_NAMES`, 7 channels per frame, rendered by :class:`Conditioner`):

* ``nmfc_x, nmfc_y, nmfc_z`` -- the Normalised Mean Face Coordinate rendering of NED and Deep Video Portraits:
  every face pixel is coloured by the position, on the actor's mean face (``Track.mean_shape``, each axis
  scaled to 0..1), of the surface point it shows. It tells the generator which part of the face each pixel is,
  in any pose and expression;
* ``face`` -- the mesh's coverage (1 on the face, 0 elsewhere and in the openings);
* ``eyes`` -- the eye openings between the lids; ``iris`` -- the visible iris (a disc of the tracked iris
  radius around the iris centre, inside the eye opening): gaze and blinks;
* ``mouth`` -- the opening between the inner lips (where teeth, tongue and mouth interior show).

**The rasteriser** is ours and small: which triangle (or opening) each pixel centre falls in comes from
:func:`~ned_fx.rendering.mesh.rasterize_labels` at the crop's resolution (CPU, numpy, painter's order by the
mesh's depth, ~1-3 ms for 468 points); the maps are then computed in torch from those labels and the vertex
positions: barycentric coordinates of each pixel centre, interpolated vertex colours, soft iris discs. The
visibility (labels) is discrete, as in any rasteriser; everything after it is differentiable with respect to
the landmark positions and runs on the GPU.

**Working space.** Networks see display-referred values around 0..1 (:class:`PlateEncoding`): integer plates
divided by their white level, float (scene-linear) plates through the sRGB transfer (extended beyond 1 and
mirrored below 0, so nothing is clipped and the round trip is exact up to rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ... import topology as T
from ...errors import InvalidParameterError, NoFaceError
from ..mesh import RenderMesh, rasterize_labels

#: the conditioning channels of one frame, in order
MAP_NAMES = ("nmfc_x", "nmfc_y", "nmfc_z", "face", "eyes", "iris", "mouth")
TRANSFERS = ("display", "linear")


# ---- working space ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlateEncoding:
    """How a plate's values map to the networks' working space.

    Attributes:
        white: the plate value shown as white (255 for 8-bit, 65535 for 16-bit, 1.0 for float plates).
        transfer: ``"display"`` (values are display-referred: working = value / white) or ``"linear"``
            (scene-linear floats: working = sRGB transfer of value / white).
    """

    white: float = 255.0
    transfer: str = "display"

    def __post_init__(self) -> None:
        if not self.white > 0:
            raise InvalidParameterError(f"the plate's white level must be > 0, got {self.white}")
        if self.transfer not in TRANSFERS:
            raise InvalidParameterError(f"transfer must be one of {', '.join(TRANSFERS)}, got {self.transfer!r}")

    @classmethod
    def for_dtype(cls, dtype) -> "PlateEncoding":
        """The encoding of a plate's pixel type: uint8 -> 255 display, uint16 -> 65535 display, floats -> linear.

        Raises:
            InvalidParameterError: another pixel type (the valid ones are listed).
        """
        kind = np.dtype(dtype)
        if kind == np.uint8:
            return cls(255.0, "display")
        if kind == np.uint16:
            return cls(65535.0, "display")
        if kind.kind == "f":
            return cls(1.0, "linear")
        raise InvalidParameterError(f"plate pixels of type {kind} have no known encoding; valid: uint8, uint16, "
                                    f"float16, float32")

    def to_working(self, values: np.ndarray) -> np.ndarray:
        """Plate values (float32 array) -> working space (float32)."""
        x = np.asarray(values, dtype=np.float32) / np.float32(self.white)
        if self.transfer == "display":
            return x
        a = np.abs(x)
        y = np.where(a <= 0.0031308, 12.92 * a, 1.055 * np.power(a, 1 / 2.4) - 0.055)
        return (np.sign(x) * y).astype(np.float32)

    def from_working(self, values: np.ndarray) -> np.ndarray:
        """Working space -> plate values (float32): the inverse of :meth:`to_working`."""
        y = np.asarray(values, dtype=np.float32)
        if self.transfer == "linear":
            a = np.abs(y)
            x = np.where(a <= 0.04045, a / 12.92, np.power((a + 0.055) / 1.055, 2.4))
            y = (np.sign(y) * x).astype(np.float32)
        return y * np.float32(self.white)

    def to_dict(self) -> dict:
        return {"white": float(self.white), "transfer": self.transfer}


def to_rgb(region: np.ndarray) -> np.ndarray:
    """A region's colour as HxWx3 (grey replicated; channels beyond the third ignored)."""
    if region.shape[2] >= 3:
        return region[..., :3]
    return np.repeat(region[..., :1], 3, axis=2)


# ---- the aligned crop ------------------------------------------------------------------------------------------

def face_similarity(landmarks: np.ndarray, crop_size: int, crop_extent: float) -> np.ndarray:
    """The similarity from image pixels to the aligned face crop, as a 2x3 matrix on continuous coordinates.

    Args:
        landmarks: Px2+ landmarks (P >= 468) in the image's pixels ((0,0) = top-left corner of the top-left
            pixel), of the face the crop follows (the source face).
        crop_size: the crop's side in pixels; crop_extent: its side in face RMS radii.

    Returns:
        ``A`` (2x3 float64): crop point = ``A[:, :2] @ p + A[:, 2]``.

    Raises:
        NoFaceError: NaN landmarks. InvalidParameterError: a degenerate face (all points on one spot).
    """
    pts = np.asarray(landmarks, dtype=np.float64)[: T.NUM_MESH, :2]
    if pts.shape != (T.NUM_MESH, 2):
        raise InvalidParameterError(f"landmarks must be Px2+ with P >= {T.NUM_MESH}, got {np.shape(landmarks)}")
    if not np.isfinite(pts).all():
        raise NoFaceError("the face has NaN landmarks (no face in this frame)")
    centre = pts.mean(axis=0)
    radius = float(np.sqrt(((pts - centre) ** 2).sum(axis=1).mean()))
    if radius < 1e-6:
        raise InvalidParameterError("the face's landmarks all lie on one point; cannot align a crop to it")
    eye = pts[T.EYE_OUTER_LEFT] - pts[T.EYE_OUTER_RIGHT]
    angle = math.atan2(eye[1], eye[0])
    scale = crop_size / (crop_extent * radius)
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    rot = np.array([[c, s], [-s, c]])
    return np.concatenate([rot, (crop_size / 2.0 - rot @ centre)[:, None]], axis=1)


def transform_points(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Apply a 2x3 similarity to Px2/Px3 points; z (when present) is scaled like x and y."""
    pts = np.asarray(points, dtype=np.float64)
    out = pts.copy()
    out[..., :2] = pts[..., :2] @ affine[:, :2].T + affine[:, 2]
    if pts.shape[-1] >= 3:
        out[..., 2] = pts[..., 2] * math.sqrt(abs(np.linalg.det(affine[:, :2])))
    return out


def cv2_matrix(affine: np.ndarray) -> np.ndarray:
    """The same map for OpenCV, whose pixel centres sit at integers (ours at +0.5)."""
    m = np.asarray(affine, dtype=np.float64).copy()
    m[:, 2] = m[:, 2] + m[:, :2] @ [0.5, 0.5] - 0.5
    return m


def crop_image(image: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
    """Resample the aligned crop (``size`` x ``size``, bilinear, edges replicated) from an HxWxC image."""
    import cv2

    out = cv2.warpAffine(np.ascontiguousarray(image, dtype=np.float32), cv2_matrix(affine), (size, size),
                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(size, size, -1)


def uncrop_image(crop: np.ndarray, affine: np.ndarray, height: int, width: int, border: float | None = None
                 ) -> np.ndarray:
    """Resample a crop back into image pixels (the inverse map, bilinear). Outside the crop: ``border`` (a
    constant) or the crop's edge replicated when None. Returns HxWxC float32."""
    import cv2

    mode = cv2.BORDER_REPLICATE if border is None else cv2.BORDER_CONSTANT
    out = cv2.warpAffine(np.ascontiguousarray(crop, dtype=np.float32), cv2_matrix(affine), (width, height),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=mode,
                         borderValue=0.0 if border is None else float(border))
    return out.reshape(height, width, -1)


# ---- conditioning images ---------------------------------------------------------------------------------------

def mean_face_colours(mean_shape: np.ndarray) -> np.ndarray:
    """The NMFC colour of each mesh vertex: the mean face's x, y, z each scaled to 0..1 (478x3 float32).

    Raises:
        NoFaceError: NaN points. InvalidParameterError: not a 468/478-point shape, or a flat one.
    """
    shape = np.asarray(mean_shape, dtype=np.float64)
    if shape.ndim != 2 or shape.shape[0] < T.NUM_MESH or shape.shape[1] != 3:
        raise InvalidParameterError(f"the mean shape must be Px3 with P >= {T.NUM_MESH}, got {shape.shape}")
    if not np.isfinite(shape[: T.NUM_MESH]).all():
        raise NoFaceError("the mean shape has NaN points")
    lo, hi = shape[: T.NUM_MESH].min(axis=0), shape[: T.NUM_MESH].max(axis=0)
    if np.any(hi - lo < 1e-9):
        raise InvalidParameterError("the mean shape is flat along an axis; it cannot colour an NMFC image")
    colours = np.zeros((T.NUM_POINTS, 3), np.float32)
    colours[: T.NUM_MESH] = ((shape[: T.NUM_MESH] - lo) / (hi - lo)).astype(np.float32)
    return colours


def label_maps(landmarks: np.ndarray, mesh: RenderMesh, size: int) -> np.ndarray:
    """Rasterise landmarks (crop pixels) at the crop's resolution: ``size`` x ``size`` int64 labels
    (-1 outside, triangle index, or ``T + k`` in opening k: 0 mouth, 1 right eye, 2 left eye)."""
    return rasterize_labels(landmarks, mesh, (size, size), (size, size))


class Conditioner(torch.nn.Module):
    """Renders the conditioning images of a batch from label maps and landmarks (torch, any device).

    Args:
        mesh: the :class:`~ned_fx.rendering.mesh.RenderMesh` the label maps were rasterised with.
        colours: 478x3 NMFC vertex colours (:func:`mean_face_colours`).
        size: the crop's side in pixels.
    """

    def __init__(self, mesh: RenderMesh, colours: np.ndarray, size: int):
        super().__init__()
        tri = torch.as_tensor(np.asarray(mesh.triangles, dtype=np.int64))
        self.num_triangles = int(tri.shape[0])
        self.size = int(size)
        self.register_buffer("triangles", tri, persistent=False)
        self.register_buffer("colours", torch.as_tensor(np.asarray(colours, np.float32)), persistent=False)
        centres = torch.arange(self.size, dtype=torch.float32) + 0.5
        gy, gx = torch.meshgrid(centres, centres, indexing="ij")
        self.register_buffer("pixels", torch.stack([gx, gy], dim=-1), persistent=False)      # SxSx2

    def forward(self, landmarks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The maps.

        Args:
            landmarks: Bx478x2+ landmarks in crop pixels (the ones the labels were rasterised from).
            labels: BxSxS int64 label maps (:func:`label_maps`).

        Returns:
            Bx7xSxS float32 in 0..1, channels as :data:`MAP_NAMES`.
        """
        n_tri = self.num_triangles
        lm = landmarks[..., :2].to(self.pixels.dtype)
        b = lm.shape[0]
        on_tri = (labels >= 0) & (labels < n_tri)
        tri = self.triangles[labels.clamp(0, n_tri - 1)]                       # BxSxSx3
        flat = tri.reshape(b, -1, 3)
        x, y = lm[..., 0], lm[..., 1]
        px, py = self.pixels[..., 0].reshape(1, -1), self.pixels[..., 1].reshape(1, -1)
        ax, ay = torch.gather(x, 1, flat[..., 0]), torch.gather(y, 1, flat[..., 0])
        e1x, e1y = torch.gather(x, 1, flat[..., 1]) - ax, torch.gather(y, 1, flat[..., 1]) - ay
        e2x, e2y = torch.gather(x, 1, flat[..., 2]) - ax, torch.gather(y, 1, flat[..., 2]) - ay
        qx, qy = px - ax, py - ay
        det = e1x * e2y - e1y * e2x
        det = torch.where(det.abs() > 1e-9, det, torch.full_like(det, 1e-9))
        w1 = ((qx * e2y - qy * e2x) / det).clamp(0.0, 1.0)
        w2 = ((e1x * qy - e1y * qx) / det).clamp(0.0, 1.0)
        w0 = (1.0 - w1 - w2).clamp(0.0, 1.0)
        norm = (w0 + w1 + w2).clamp_min(1e-6)
        c = self.colours[flat]                                                   # BxNx3x3 (vertex, rgb)
        nmfc = (w0[..., None] * c[:, :, 0] + w1[..., None] * c[:, :, 1] + w2[..., None] * c[:, :, 2]) \
            * (on_tri.reshape(b, -1, 1) / norm[..., None])                       # BxNx3
        size = self.size
        nmfc = nmfc.transpose(1, 2).reshape(b, 3, size, size)
        face = on_tri.to(lm.dtype)
        mouth = (labels == n_tri).to(lm.dtype)
        right_eye, left_eye = (labels == n_tri + 1).to(lm.dtype), (labels == n_tri + 2).to(lm.dtype)
        iris = right_eye * self._disc(lm, T.RIGHT_IRIS) + left_eye * self._disc(lm, T.LEFT_IRIS)
        return torch.cat([nmfc, torch.stack([face, right_eye + left_eye, iris, mouth], dim=1)], dim=1)

    def _disc(self, lm: torch.Tensor, iris: tuple[int, ...]) -> torch.Tensor:
        """A soft disc (one pixel of anti-aliasing) of the iris' radius around its centre: BxSxS."""
        if lm.shape[1] <= max(iris):                    # no iris points (tracked with --no-iris)
            return torch.zeros(lm.shape[0], self.size, self.size, dtype=lm.dtype, device=lm.device)
        pts = lm[:, list(iris)]
        valid = torch.isfinite(pts).all(dim=2).all(dim=1)                         # B
        pts = torch.nan_to_num(pts, nan=-1e4, posinf=-1e4, neginf=-1e4)
        centre = pts[:, 0]                                                       # Bx2
        radius = (pts[:, 1:] - centre[:, None]).norm(dim=-1).mean(dim=1)
        dist = (self.pixels[None] - centre[:, None, None]).norm(dim=-1)
        disc = torch.sigmoid((radius[:, None, None] - dist) * 2.0)
        return disc * valid[:, None, None].to(disc.dtype)


def face_area(labels: np.ndarray, grow: int) -> np.ndarray:
    """The face and its openings (labels >= 0) grown by ``grow`` pixels: HxW float32 0/1."""
    import cv2

    area = (labels >= 0).astype(np.uint8)
    if grow > 0:
        area = cv2.dilate(area, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return area.astype(np.float32)


def feather(mask: np.ndarray, radius: float) -> np.ndarray:
    """Soften a 0/1 mask's edge over about ``radius`` pixels (Gaussian), keeping its inside at 1."""
    import cv2

    if radius <= 0:
        return mask.astype(np.float32)
    sigma = max(radius / 2.0, 0.5)
    k = int(2 * math.ceil(3 * sigma) + 1)
    grown = cv2.dilate(mask.astype(np.float32), cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                                          (2 * int(radius) + 1,) * 2))
    return np.minimum(cv2.GaussianBlur(grown, (k, k), sigma), 1.0).astype(np.float32)
