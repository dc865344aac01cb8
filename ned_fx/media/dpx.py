"""DPX frames through OpenImageIO (the ASWF's maintained library; its PyPI wheel reads and writes DPX).

A 10- or 12-bit DPX is read as uint16 scaled to the full 16-bit range (OpenImageIO's convention) and written back
at the bit depth it came with, so DPX in → DPX out keeps the plate's code values. The DPX header fields worth
carrying (bit depth, transfer, colorimetric, timecode, frame rate, …) travel in the Frame's metadata under their
OpenImageIO names (``dpx:Transfer``, ``oiio:BitsPerSample``, ``smpte:TimeCode``, …); the timecode as text
(``"HH:MM:SS:FF"``, ``;`` before the frames for drop-frame), packed into the television header when written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import InputNotFoundError, OutputWriteError, UnreadableMediaError, UnsupportedFormatError
from .frames import Frame

#: Bit depths a DPX is written with.
DPX_BITS = (8, 10, 12, 16)
#: Header fields read into Frame.metadata and written back (others are the file's own bookkeeping).
_CARRIED = ("oiio:BitsPerSample", "dpx:Transfer", "dpx:Colorimetric", "dpx:Signal", "dpx:Orientation",
            "smpte:TimeCode", "FramesPerSecond", "PixelAspectRatio", "dpx:FrameRate", "dpx:SourceImageFileName",
            "DocumentName", "Copyright", "dpx:InputDevice", "dpx:Format")


def read_dpx(path: str | Path, number: int | None = None) -> Frame:
    """Read one DPX frame in its native depth (8-bit as uint8, 10/12/16-bit as uint16).

    Raises:
        InputNotFoundError: no such file. UnreadableMediaError: not a readable DPX.
        UnsupportedFormatError: a layout other than grey, RGB or RGBA.
    """
    import OpenImageIO as oiio

    path = Path(path)
    where = f"{path}" + (f" (frame {number})" if number is not None else "")
    if not path.is_file():
        raise InputNotFoundError(f"{where}: the file does not exist")
    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise UnreadableMediaError(f"{where}: cannot be read as DPX ({oiio.geterror() or 'unknown error'}); the file "
                                   f"is corrupt or truncated")
    try:
        spec = inp.spec()
        bits = int(spec.get_int_attribute("oiio:BitsPerSample", 8))
        dtype = oiio.UINT8 if bits <= 8 else oiio.UINT16
        pixels = inp.read_image(0, 0, 0, spec.nchannels, dtype)
        if pixels is None:
            raise UnreadableMediaError(f"{where}: the pixels cannot be decoded ({inp.geterror()}); the file is "
                                       f"corrupt or truncated")
        names = tuple(spec.channelnames)
        meta: dict[str, Any] = {}
        for attr in spec.extra_attribs:
            if attr.name in _CARRIED and isinstance(attr.value, (int, float, str)):
                meta[attr.name] = attr.value
        timecode = _read_timecode(spec)
        if timecode is not None:
            meta["smpte:TimeCode"] = timecode
    finally:
        inp.close()
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if names[:3] != ("R", "G", "B") and names[:1] != ("Y",):
        if len(names) in (1, 3, 4):
            names = (("Y",), None, ("R", "G", "B"), ("R", "G", "B", "A"))[len(names) - 1]
        else:
            raise UnsupportedFormatError(f"{where}: DPX channels {', '.join(names)} are not supported; valid: grey, "
                                         f"RGB, RGBA")
    meta["oiio:BitsPerSample"] = bits
    w, h, x, y = spec.width, spec.height, spec.x, spec.y
    fw, fh, fx, fy = spec.full_width or w, spec.full_height or h, spec.full_x, spec.full_y
    return Frame(number=0 if number is None else number, pixels=np.ascontiguousarray(pixels), channels=names,
                 data_window=(x, y, x + w - 1, y + h - 1), display_window=(fx, fy, fx + fw - 1, fy + fh - 1),
                 metadata=meta)


def _read_timecode(spec: Any) -> str | None:
    """The television header's SMPTE timecode as text (``"HH:MM:SS:FF"``, ``;`` for drop-frame), or None."""
    from ..errors import InvalidParameterError
    from .timecode import unpack_timecode

    value = spec.getattribute("smpte:TimeCode")
    if not isinstance(value, (tuple, list)) or not value or int(value[0]) == 0xFFFFFFFF:
        return None                       # none (DPX leaves an unset field all ones; OpenImageIO skips it)
    try:
        return unpack_timecode(int(value[0]))
    except InvalidParameterError:
        return None


def check_dpx_frame(frame: Frame, path: Path, bits: int | None = None) -> tuple[list[int], tuple[str, ...], int]:
    """What of ``frame`` a DPX can hold: (channel indices, their names, bit depth). Called before any file is made.

    Raises:
        UnsupportedFormatError: float pixels, other channels or bit depths (the message says what works).
    """
    kind = frame.pixels.dtype
    if kind not in (np.uint8, np.uint16):
        raise UnsupportedFormatError(f"{path.name}: DPX holds 8/10/12/16-bit integer pixels, not {kind}; write "
                                     f"float plates as EXR (name.####.exr) or convert them to 16-bit")
    keep = [i for i, c in enumerate(frame.channels) if c in ("R", "G", "B", "A", "Y")]
    names = tuple(frame.channels[i] for i in keep)
    if names not in (("R", "G", "B"), ("R", "G", "B", "A"), ("Y",)):
        raise UnsupportedFormatError(f"{path.name}: DPX is written as grey, RGB or RGBA; this frame has "
                                     f"{', '.join(frame.channels)} (write EXR to keep extra channels)")
    bits = int(bits or (8 if kind == np.uint8 else 10))
    if bits not in DPX_BITS:
        raise UnsupportedFormatError(f"{path.name}: DPX bit depth {bits} is not supported; valid: "
                                     f"{', '.join(map(str, DPX_BITS))}")
    return keep, names, bits


def write_dpx(path: str | Path, frame: Frame, metadata: Mapping[str, Any] | None = None,
              bits: int | None = None) -> None:
    """Write ``frame`` as a DPX file at ``path`` (the caller makes it atomic: ``path`` is a temporary name).

    Args:
        frame: uint8 or uint16 pixels, grey/RGB/RGBA (float plates belong in EXR: DPX float is not supported by
            most readers). metadata: header fields (see the module doc) and ``ImageDescription``/``Software``/
            strings, ``dpx:UserData`` bytes (the user data block); bits: 8, 10, 12 or 16 (default: ``oiio:BitsPerSample`` of the metadata,
            else 10 for uint16, 8 for uint8).

    Raises:
        UnsupportedFormatError: float pixels or other channels (the message says what works).
        OutputWriteError: the file could not be written.
    """
    import OpenImageIO as oiio

    path = Path(path)
    meta = dict(metadata or {})
    keep, names, bits = check_dpx_frame(frame, path, meta.pop("oiio:BitsPerSample", None) if bits is None else bits)
    kind = frame.pixels.dtype
    pixels = np.ascontiguousarray(frame.pixels[:, :, keep])
    h, w, c = pixels.shape
    spec = oiio.ImageSpec(w, h, c, oiio.UINT8 if kind == np.uint8 else oiio.UINT16)
    spec.channelnames = names
    x0, y0 = frame.data_window[:2]
    dx0, dy0, dx1, dy1 = frame.display_window
    spec.x, spec.y = x0, y0
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = dx0, dy0, dx1 - dx0 + 1, dy1 - dy0 + 1
    spec.attribute("oiio:BitsPerSample", bits)
    timecode = meta.pop("smpte:TimeCode", None)
    meta.pop("dpx:TimeCode", None)
    if timecode is not None:              # text -> the television header's packed SMPTE timecode
        from .timecode import pack_timecode

        spec.attribute("smpte:TimeCode", oiio.TypeDesc("timecode"),
                       np.array([pack_timecode(str(timecode)), 0], np.uint32))
    for key, value in meta.items():
        if isinstance(value, (bytes, bytearray)):          # a binary block (dpx:UserData): uint8[n]
            data = np.frombuffer(bytes(value), np.uint8)
            spec.attribute(str(key), oiio.TypeDesc(f"uint8[{len(data)}]"), data)
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
            spec.attribute(str(key), value)
    out = oiio.ImageOutput.create(str(path))
    if out is None or not out.open(str(path), spec):
        raise OutputWriteError(f"could not write {path}: {oiio.geterror() or (out.geterror() if out else '')}")
    try:
        ok = out.write_image(pixels)
    finally:
        out.close()
    if not ok:
        raise OutputWriteError(f"could not write {path}: {out.geterror() or 'OpenImageIO write failed'}")
