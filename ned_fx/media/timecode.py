"""SMPTE timecode text: read it, and move it by a number of frames (non-drop and drop-frame).

A movie's timecode names its first frame; an edit of frames 100-199 starts 100 frames later, so its output's
timecode is the source's plus 100 (:func:`add_frames`).
"""

from __future__ import annotations

import re
from fractions import Fraction

from ..errors import InvalidParameterError

_TC = re.compile(r"\A(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})\Z")


def parse_timecode(text: str) -> tuple[int, int, int, int, bool]:
    """``(hours, minutes, seconds, frames, drop_frame)`` of ``"HH:MM:SS:FF"`` (``;`` or ``,`` before the
    frames: drop-frame).

    Raises:
        InvalidParameterError: not a timecode.
    """
    m = _TC.match(str(text).strip()) if isinstance(text, str) else None
    if m is None:
        raise InvalidParameterError(f"timecode {text!r} is not HH:MM:SS:FF (or HH:MM:SS;FF for drop-frame)")
    h, mi, se, ff = int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(5))
    if mi > 59 or se > 59:
        raise InvalidParameterError(f"timecode {text!r}: minutes and seconds go up to 59")
    return h, mi, se, ff, m.group(4) in ";,"


def _nominal(rate: Fraction | float) -> int:
    return max(1, int(round(float(rate))))


def to_frames(text: str, rate: Fraction | float) -> int:
    """The frame count a timecode stands for at ``rate`` (drop-frame counted as SMPTE 12M does)."""
    h, m, s, f, drop = parse_timecode(text)
    fps = _nominal(rate)
    if f >= fps:
        raise InvalidParameterError(f"timecode {text!r} has frame {f} but {fps} frames make a second")
    total = ((h * 60 + m) * 60 + s) * fps + f
    if drop:
        skip = 2 * (fps // 30) if fps % 30 == 0 else 0
        minutes = h * 60 + m
        total -= skip * (minutes - minutes // 10)
    return total


def from_frames(count: int, rate: Fraction | float, drop: bool = False) -> str:
    """The timecode of frame ``count`` at ``rate`` (wrapping at 24 hours)."""
    fps = _nominal(rate)
    skip = 2 * (fps // 30) if drop and fps % 30 == 0 else 0
    if skip:
        per_10min = fps * 600 - skip * 9
        per_min = fps * 60 - skip
        tens, rest = divmod(count, per_10min)
        extra = 0 if rest < skip else skip * ((rest - skip) // per_min)
        count += skip * 9 * tens + extra
    count %= fps * 86400
    f = count % fps
    s = count // fps
    sep = ";" if skip else ":"
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{sep}{f:02d}"


def add_frames(text: str, frames: int, rate: Fraction | float) -> str:
    """``text`` moved on by ``frames`` frames at ``rate`` (drop-frame stays drop-frame)."""
    drop = parse_timecode(text)[4]
    return from_frames(to_frames(text, rate) + int(frames), rate, drop)
