"""The pipeline: the only place that composes the stages (plate in -> track -> manipulate -> render ->
composite -> plate out). Each function here is one job the CLI, the daemon and the host bridges call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .errors import InvalidParameterError
from .media import open_media, parse_frame_range, to_display_rgb8
from .media.frames import Frame

Progress = Callable[[int, int], None]


def display_plate(frame: Frame) -> np.ndarray:
    """The display-referred RGB8 picture of a frame over its display window (what the tracker looks at).

    Pixels of the data window land at their place in the display window; the rest is black. Landmarks found
    on it are therefore in display-window pixel coordinates, whatever the file's data window.
    """
    rgb = to_display_rgb8(frame)
    dx0, dy0, dx1, dy1 = frame.display_window
    x0, y0, x1, y1 = frame.data_window
    if (x0, y0, x1, y1) == (dx0, dy0, dx1, dy1):
        return rgb
    out = np.zeros((dy1 - dy0 + 1, dx1 - dx0 + 1, 3), np.uint8)
    sx0, sy0 = max(dx0, x0), max(dy0, y0)
    sx1, sy1 = min(dx1, x1), min(dy1, y1)
    if sx1 >= sx0 and sy1 >= sy0:
        out[sy0 - dy0: sy1 - dy0 + 1, sx0 - dx0: sx1 - dx0 + 1] = rgb[sy0 - y0: sy1 - y0 + 1, sx0 - x0: sx1 - x0 + 1]
    return out


def track_media(path: str | Path, config=None, frames: str | None = None, face_id: int | None = None,
                progress: Progress | None = None, tracker=None):
    """Track the faces of a movie, an image or an image sequence.

    Args:
        path: the input (``shot.mov``, ``face.png``, ``shot.%04d.exr``, ``shot.####.exr``).
        config: a :class:`~ned_fx.tracking.TrackerConfig` (defaults when None).
        frames: frame range to read, e.g. ``"1001-1100"`` (all frames when None).
        face_id: the face to select in multi-face shots (default: the one seen in most frames).
        progress: called with ``(frames done, total)``.
        tracker: a ready :class:`~ned_fx.tracking.FaceTracker` to reuse (the daemon keeps one warm).

    Returns:
        a :class:`~ned_fx.tracking.Track`.

    Raises:
        InputNotFoundError, UnreadableMediaError, UnsupportedFormatError: the input cannot be read.
        InvalidParameterError: a bad frame range, or frames of different sizes in one shot.
        WeightsMissingError: the tracker's weights are not installed.
    """
    from .tracking import FaceTracker

    tracker = tracker or FaceTracker(config)
    with open_media(path, parse_frame_range(frames)) as source:
        total = len(source)
        size: list[tuple[int, int]] = []

        def pictures():
            for frame in source:
                rgb = display_plate(frame)
                if not size:
                    size.append((rgb.shape[1], rgb.shape[0]))
                elif size[0] != (rgb.shape[1], rgb.shape[0]):
                    raise InvalidParameterError(
                        f"frame {frame.number} of {path} is {rgb.shape[1]}x{rgb.shape[0]}, but the shot started "
                        f"at {size[0][0]}x{size[0][1]}; every frame of a shot must have one size")
                yield rgb

        seen = []
        for faces in tracker.iter_track(pictures()):
            seen.append(faces)
            if progress:
                progress(len(seen), total)
        from .tracking.tracker import assemble_track

        width, height = size[0] if size else (source.width, source.height)
        return assemble_track(seen, np.asarray(source.frame_numbers), width, height, source.fps or 0.0,
                              tracker.config, face_id, str(path))
