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


# ---- timecode in image headers (EXR ``timeCode``/``reelName``, DPX ``smpte:TimeCode``) -------------------------
#
# A sequence's timecode lives in every frame's header: an EXR's ``timeCode`` attribute (an OpenEXR.TimeCode) and
# ``reelName`` string; a DPX's television-header timecode, which ned_fx.media.dpx keeps in Frame.metadata as
# ``smpte:TimeCode`` text. The helpers below read either, and write the one an output format holds.

def pack_timecode(text: str) -> int:
    """``text`` as SMPTE 12M BCD in the 60-field television packing DPX and OpenImageIO use (hours in the top
    byte; the drop-frame flag at bit 6).

    Raises:
        InvalidParameterError: not a timecode.
    """
    h, m, s, f, drop = parse_timecode(text)
    if h > 23 or f > 99:
        raise InvalidParameterError(f"timecode {text!r}: hours go up to 23 and frames to 99 in a header")

    def bcd(v: int) -> int:
        return ((v // 10) << 4) | (v % 10)

    return (bcd(h) << 24) | (bcd(m) << 16) | (bcd(s) << 8) | bcd(f) | (0x40 if drop else 0)


def unpack_timecode(value: int) -> str:
    """The text of a packed SMPTE timecode (:func:`pack_timecode`'s layout; flag bits other than drop-frame are
    ignored).

    Raises:
        InvalidParameterError: not BCD digits of a timecode.
    """
    v = int(value)

    def digits(byte: int, tens_mask: int) -> int:
        tens, units = (byte >> 4) & tens_mask, byte & 0xF
        if units > 9:
            raise InvalidParameterError(f"packed timecode {v:#010x} holds a non-decimal digit")
        return tens * 10 + units

    h, m, s, f = digits(v >> 24, 0x3), digits(v >> 16, 0x7), digits(v >> 8, 0x7), digits(v, 0x3)
    text = f"{h:02d}:{m:02d}:{s:02d}{';' if v & 0x40 else ':'}{f:02d}"
    parse_timecode(text)
    return text


def header_timecode(metadata) -> tuple[str | None, str | None]:
    """The timecode and reel name an image's header holds (``Frame.metadata`` of an EXR or DPX), each None when
    it holds none or a value that is not a timecode (a header this reader does not understand is not carried)."""
    meta = dict(metadata or {})
    timecode = None
    exr = meta.get("timeCode")
    if exr is not None and all(hasattr(exr, a) for a in ("hours", "minutes", "seconds", "frame", "dropFrame")):
        text = (f"{int(exr.hours):02d}:{int(exr.minutes):02d}:{int(exr.seconds):02d}"
                f"{';' if exr.dropFrame else ':'}{int(exr.frame):02d}")
        timecode = _valid(text)
    for key in ("smpte:TimeCode", "dpx:TimeCode"):
        value = meta.get(key)
        if timecode is None and isinstance(value, str):
            timecode = _valid(value)
        elif timecode is None and isinstance(value, (tuple, list)) and value:    # OpenImageIO's packed pair
            try:
                timecode = unpack_timecode(int(value[0]))
            except (InvalidParameterError, TypeError, ValueError):
                pass
    reel = meta.get("reelName")
    reel = str(reel).strip() if isinstance(reel, str) and reel.strip() and len(reel) <= 255 else None
    return timecode, (reel if timecode is not None else None)


def _valid(text: str) -> str | None:
    try:
        h, m, s, f, drop = parse_timecode(text)
    except InvalidParameterError:
        return None
    if h > 23:
        return None
    return f"{h:02d}:{m:02d}:{s:02d}{';' if drop else ':'}{f:02d}"


def timecode_fields(extension: str, timecode: str | None, reel_name: str | None = None) -> dict:
    """The header fields that hold ``timecode`` (and the reel) in an ``extension`` file: EXR ``timeCode`` (and
    ``reelName``), DPX ``smpte:TimeCode``; empty for formats without one, or without a timecode.

    Raises:
        InvalidParameterError: not a timecode.
    """
    ext = extension.lower()
    if timecode is None or ext not in (".exr", ".dpx"):
        return {}
    h, m, s, f, drop = parse_timecode(timecode)
    if ext == ".dpx":
        pack_timecode(timecode)                 # refuse what a DPX header cannot hold
        return {"smpte:TimeCode": f"{h:02d}:{m:02d}:{s:02d}{';' if drop else ':'}{f:02d}"}
    import OpenEXR

    tc = OpenEXR.TimeCode()
    tc.hours, tc.minutes, tc.seconds, tc.frame, tc.dropFrame = h, m, s, f, bool(drop)
    return {"timeCode": tc, **({"reelName": str(reel_name)} if reel_name else {})}


def carry_timecode(header: dict, extension: str) -> dict:
    """``header`` (an image's metadata on its way to an ``extension`` file) with its timecode in the field that
    format holds: a DPX plate's timecode becomes an EXR's ``timeCode``, an EXR plate's a DPX's ``smpte:TimeCode``,
    and the other format's field is dropped. The format's own field, when it holds a timecode, wins."""
    ext = extension.lower()
    out = dict(header)
    if ext not in (".exr", ".dpx"):
        return out
    timecode, _ = header_timecode(out)
    if ext == ".exr":
        for key in ("smpte:TimeCode", "dpx:TimeCode"):
            out.pop(key, None)
        if timecode is not None and not hasattr(out.get("timeCode"), "hours"):
            out.update(timecode_fields(ext, timecode))
        return out
    own = out.get("smpte:TimeCode")
    timecode = (_valid(own) if isinstance(own, str) else None) or timecode
    for key in ("timeCode", "smpte:TimeCode", "dpx:TimeCode"):
        out.pop(key, None)
    if timecode is not None:
        try:
            out.update(timecode_fields(ext, timecode))
        except InvalidParameterError:        # beyond what a DPX header holds (hours > 23): not carried
            pass
    return out
