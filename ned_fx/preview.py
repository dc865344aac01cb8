"""Pictures a person looks at: the tracked mesh drawn over the frames, and side-by-side before/after."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from . import topology
from .errors import InvalidParameterError

_COLOURS = {"lips_outer": (255, 80, 80), "lips_inner": (255, 160, 160), "right_eye": (80, 220, 255),
            "left_eye": (80, 220, 255), "right_brow": (255, 220, 60), "left_brow": (255, 220, 60),
            "face_oval": (255, 255, 255)}


def draw_mesh(rgb: np.ndarray, landmarks: np.ndarray, triangles: np.ndarray | None = None,
              label: str | None = None) -> np.ndarray:
    """Draw a face mesh over an RGB8 picture (returns a new array).

    Args:
        rgb: HxWx3 uint8; landmarks: 478x3 (or 468x3) pixels, NaN rows are skipped;
        triangles: Tx3 mesh triangles (thin green wire); label: text drawn at the top-left of the face.
    """
    import cv2

    out = np.ascontiguousarray(rgb.copy())
    if landmarks is None or np.isnan(landmarks[:, :2]).any():
        return out
    h, w = out.shape[:2]
    thick = max(1, round(max(h, w) / 700))
    shift = 4                                      # sub-pixel drawing: coordinates * 16
    pts = np.round((landmarks[:, :2] - 0.5) * (1 << shift)).astype(np.int32)
    if triangles is not None and len(triangles):
        edges = topology.triangle_edges(triangles)
        lines = [pts[e] for e in edges]
        cv2.polylines(out, lines, False, (60, 200, 90), max(1, thick // 2), cv2.LINE_AA, shift)
    for name, idx, closed in topology.CONTOURS:
        cv2.polylines(out, [pts[list(idx)]], closed, _COLOURS[name], thick, cv2.LINE_AA, shift)
    if len(landmarks) >= topology.NUM_POINTS:
        for iris in (topology.RIGHT_IRIS, topology.LEFT_IRIS):
            centre = landmarks[iris[0], :2]
            radius = np.linalg.norm(landmarks[list(iris[1:]), :2] - centre, axis=1).mean()
            cv2.circle(out, tuple(np.round((centre - 0.5) * (1 << shift)).astype(int)),
                       int(round(radius * (1 << shift))), (255, 60, 255), thick, cv2.LINE_AA, shift)
    if label:
        x0, y0 = np.nanmin(landmarks[:, 0]), np.nanmin(landmarks[:, 1])
        scale = max(0.4, max(h, w) / 1400)
        cv2.putText(out, label, (int(max(x0, 0)), int(max(y0 - 8, 14))), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 0), max(1, thick), cv2.LINE_AA)
    return out


def overlay_frames(pictures: Iterable[np.ndarray], track) -> Iterable[np.ndarray]:
    """Yield each RGB8 picture of a shot with every tracked face drawn (id label on each face)."""
    shape = track.mean_shape if not np.isnan(track.mean_shape).any() else None
    triangles = topology.triangulate(shape) if shape is not None else None
    for t, rgb in enumerate(pictures):
        out = rgb
        for k, fid in enumerate(track.face_ids):
            if track.all_found[k, t]:
                marker = "*" if int(fid) == track.face_id else ""
                out = draw_mesh(out, track.all_landmarks[k, t], triangles, f"face {int(fid)}{marker}")
        yield out


def write_pictures(path: str | Path, pictures: Iterable[np.ndarray], fps: float = 25.0) -> Path:
    """Write RGB8 pictures as a preview: one ``.png``/``.jpg`` (the first picture) or a movie
    (``.mp4``/``.mov``), atomically.

    Raises:
        InvalidParameterError: an extension that is neither a still nor a movie.
    """
    from .media import MOVIE_EXTENSIONS, MovieWriter, write_image

    path = Path(path)
    ext = path.suffix.lower()
    if ext in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        for rgb in pictures:
            return write_image(path, rgb)
        raise InvalidParameterError("nothing to preview: no frames")
    if ext in MOVIE_EXTENSIONS:
        it = iter(pictures)
        first = next(it, None)
        if first is None:
            raise InvalidParameterError("nothing to preview: no frames")
        with MovieWriter(path, fps or 25.0, first.shape[1], first.shape[0]) as writer:
            writer.write(first)
            for rgb in it:
                writer.write(rgb)
        return path
    raise InvalidParameterError(f"preview must be a .png/.jpg still or a movie ({', '.join(MOVIE_EXTENSIONS)}), "
                                f"got {path.name}")
