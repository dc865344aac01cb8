"""The before/after contact sheet of a shot: a few frames spread over the shot, the source plate next to the
delivered frame, each labelled, under a header naming the shot, the instruction and the engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np

GAP = 6                 # pixels between rows and pictures
CAPTION = 22            # pixels of the caption strip over each picture
HEADER_LINE = 22        # pixels per header line


def sheet_path(folder: str | Path, name: str) -> Path:
    """Where a shot's contact sheet goes: ``FOLDER/NAME.png``."""
    return Path(folder) / f"{name}.png"


def contact_sheet(shot, kind: str, samples: tuple[int, ...], afters: dict, width: int, engine: str) -> np.ndarray:
    """An RGB8 picture: one row per sample frame, the source (before) and the output (after) side by side.

    Args:
        shot: the :class:`~ned_fx.batch.shotlist.Shot`; kind: its output kind (sequence, movie, image);
        samples: frame numbers to show; afters: frame -> (RGB8 display picture, reason or None) for frames rendered
            in this run (frames kept from an earlier run are read back from a sequence output);
        width: width of each picture; engine: the daemon's engine name, shown in the header.

    Returns:
        an (H, W, 3) uint8 array.

    Raises:
        the media errors of reading the source (the caller skips the sheet then).
    """
    from ..media import open_media, read_image
    from ..pipeline import display_plate

    rows = []
    with open_media(shot.input, shot.frames) as src:
        for n in samples:
            before = display_plate(src.read(n))
            if n in afters:
                after, reason = afters[n]
            elif kind != "movie" and _written(shot.output, kind, n).is_file():
                after, reason = display_plate(read_image(_written(shot.output, kind, n), n)), "kept from an earlier run"
            else:
                after, reason = None, "not written"
            b = _thumb(before, width)
            a = _thumb(after, width) if after is not None and after.shape == before.shape else _blank(b)
            label = f"after {n}" + (f" ({reason})" if reason else " (edited)")
            rows.append(_pair(b, a, (f"before {n}", label)))
    if not rows:
        raise ValueError("no frames to show")
    w = rows[0].shape[1]
    parts = [_header(shot, engine, w)]
    for row in rows:
        parts += [np.full((GAP, w, 3), 24, np.uint8), row]
    return np.ascontiguousarray(np.vstack(parts))


def _written(output: str, kind: str, number: int) -> Path:
    from ..media import sequence_path

    return sequence_path(output, number) if kind == "sequence" else Path(output)


def _pair(before: np.ndarray, after: np.ndarray, labels: tuple[str, str]) -> np.ndarray:
    """Two pictures side by side, each under a caption strip."""
    h, w = before.shape[:2]
    out = np.full((CAPTION + h, 2 * w + GAP, 3), 24, np.uint8)
    for x, picture, text in ((0, before, labels[0]), (w + GAP, after, labels[1])):
        out[CAPTION:, x:x + w] = picture
        _text(out, text, x + 6, CAPTION - 6, w - 12)
    return out


def _text(canvas: np.ndarray, text: str, x: int, y: int, width: int, scale: float = 0.5) -> None:
    import cv2

    while text and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > width:
        text = text[:-2]
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1, cv2.LINE_AA)


def _thumb(rgb: np.ndarray, width: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    if w == width:
        return rgb
    height = max(2, int(round(h * width / w)))
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if width < w else cv2.INTER_LINEAR)


def _blank(like: np.ndarray) -> np.ndarray:
    return np.full_like(like, 64)


def _header(shot, engine: str, width: int) -> np.ndarray:
    what = ", ".join(f"{k} {v}" for k, v in shot.instruction().items()) or "neutral"
    lines = [f"{shot.name}: {what}" + (f"  face {shot.face}" if shot.face is not None else ""),
             f"{Path(shot.input).name} -> {Path(shot.output).name}" + (f"  frames {shot.frames}" if shot.frames else ""),
             f"edited with ned_fx (engine {engine})" + (f"; consent: {shot.consent}" if shot.consent else "")]
    out = np.full((HEADER_LINE * len(lines) + 10, width, 3), 16, np.uint8)
    for i, text in enumerate(lines):
        _text(out, text, 8, HEADER_LINE * (i + 1), width - 16)
    return out
