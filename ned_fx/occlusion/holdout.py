"""A user-given holdout matte (roto of a hand, a prop, hair) that overrides the detector for a frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InvalidParameterError


def load_holdout(path_or_pattern, frame_number: int, size: tuple[int, int]) -> np.ndarray:
    """One frame's holdout matte, 1 where the plate must be kept as it is.

    Args:
        path_or_pattern: a still (the same matte for every frame), an image sequence pattern
            (``hold.####.png``, ``hold.%04d.exr``: frame ``frame_number``'s file) or a movie (its 0-based
            frame ``frame_number``). The matte is the alpha channel when there is one, else the grey channel,
            else the brightest of R, G, B; 8-bit and 16-bit values are scaled to 0..1, floats are taken as they
            are; everything is clipped to 0..1.
        frame_number: the plate's frame number.
        size: ``(height, width)`` of the plate the matte belongs to; a matte of another size (a proxy) is
            scaled to it. Crop the result with the face region box for the compositor's ``keep``.

    Returns:
        ``size`` float32 in 0..1.

    Raises:
        InputNotFoundError: the file, or this frame's file of a sequence, does not exist.
        UnsupportedFormatError, UnreadableMediaError: the file cannot be read.
        InvalidParameterError: a bad size, or a frame a movie does not have.
    """
    import cv2

    from ..media import MOVIE_EXTENSIONS, open_media

    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"size must be (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise InvalidParameterError(f"size must be positive, got {w}x{h}")
    path = Path(path_or_pattern)
    still = path.is_file() and path.suffix.lower() not in MOVIE_EXTENSIONS
    with open_media(path, None if still else str(int(frame_number))) as source:
        frame = next(iter(source)) if still else source.read(int(frame_number))
    names = frame.channels
    pixels = frame.pixels
    if "A" in names:
        values = pixels[:, :, names.index("A")]
    elif "Y" in names:
        values = pixels[:, :, names.index("Y")]
    else:
        idx = [names.index(c) for c in ("R", "G", "B") if c in names] or [0]
        values = pixels[:, :, idx].max(axis=2)
    if pixels.dtype == np.uint8:
        matte = values.astype(np.float32) / 255.0
    elif pixels.dtype == np.uint16:
        matte = values.astype(np.float32) / 65535.0
    else:
        matte = np.nan_to_num(values.astype(np.float32), nan=0.0)
    matte = np.clip(matte, 0.0, 1.0)
    if matte.shape != (h, w):
        matte = np.clip(cv2.resize(matte, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return np.ascontiguousarray(matte, dtype=np.float32)

