"""A user-given holdout matte (roto of a hand, a prop, hair) that overrides the detector for a frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InvalidParameterError


def load_holdout(path_or_pattern, frame_number: int, size: tuple[int, int], data_window=None,
                 display_window=None) -> np.ndarray:
    """One frame's holdout matte, 1 where the plate must be kept as it is.

    Args:
        path_or_pattern: a still (the same matte for every frame), an image sequence pattern
            (``hold.####.png``, ``hold.%04d.exr``: frame ``frame_number``'s file) or a movie (its 0-based
            frame ``frame_number``). The matte is the alpha channel when there is one, else the grey channel,
            else the brightest of R, G, B; 8-bit and 16-bit values are scaled to 0..1, floats are taken as they
            are; everything is clipped to 0..1.
        frame_number: the plate's frame number.
        size: ``(height, width)`` of the plate's pixels the matte belongs to. Crop the result with the face region
            box for the compositor's ``keep``.
        data_window, display_window: the plate's windows (``Frame.data_window``/``display_window``, inclusive
            image-space boxes; None: the whole ``size``). The matte is placed by its own windows the same way: an
            EXR whose data window is a roto's bounding box is 0 outside it (a matte is never stretched from its
            box); a matte whose display window is another size than the plate's (a proxy) is scaled to it first.

    Returns:
        ``size`` float32 in 0..1.

    Raises:
        InputNotFoundError: the file, or this frame's file of a sequence, does not exist.
        UnsupportedFormatError, UnreadableMediaError: the file cannot be read.
        InvalidParameterError: a bad size or window, or a frame a movie does not have.
    """
    import cv2

    from ..media import MOVIE_EXTENSIONS, open_media

    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"size must be (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise InvalidParameterError(f"size must be positive, got {w}x{h}")
    data = _window(data_window, (0, 0, w - 1, h - 1), "data_window")
    display = _window(display_window, data, "display_window")
    if (data[2] - data[0] + 1, data[3] - data[1] + 1) != (w, h):
        raise InvalidParameterError(f"data_window {data} is not the size {w}x{h}")
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
    # the matte over its own display window (0 where its data window has no pixels) ...
    m_data, m_display = tuple(frame.data_window), tuple(frame.display_window)
    full = _place(matte, m_data, m_display)
    # ... scaled to the plate's display window when it is another size (a proxy) ...
    dh, dw = display[3] - display[1] + 1, display[2] - display[0] + 1
    if full.shape != (dh, dw):
        full = np.clip(cv2.resize(full, (dw, dh), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    # ... over the plate's pixels (its data window: 0 where that reaches past the display window)
    return np.ascontiguousarray(_place(full, display, data), dtype=np.float32)


def _window(value, default, what: str) -> tuple[int, int, int, int]:
    if value is None:
        return tuple(int(v) for v in default)
    try:
        win = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        win = ()
    if len(win) != 4 or win[2] < win[0] or win[3] < win[1]:
        raise InvalidParameterError(f"{what} must be (xmin, ymin, xmax, ymax), got {value!r}")
    return win


def _place(values: np.ndarray, have: tuple, want: tuple) -> np.ndarray:
    """``values`` (the pixels of the inclusive image-space box ``have``) over the box ``want``: 0 where ``have``
    has no pixels."""
    out = np.zeros((want[3] - want[1] + 1, want[2] - want[0] + 1), np.float32)
    x0, y0 = max(have[0], want[0]), max(have[1], want[1])
    x1, y1 = min(have[2], want[2]), min(have[3], want[3])
    if x1 >= x0 and y1 >= y0:
        out[y0 - want[1]:y1 - want[1] + 1, x0 - want[0]:x1 - want[0] + 1] = \
            values[y0 - have[1]:y1 - have[1] + 1, x0 - have[0]:x1 - have[0] + 1]
    return out
