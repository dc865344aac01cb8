"""What a still's file says about how to show its pixels, read from and written into the bytes themselves (the
JPEG segments and PNG chunks as :mod:`ned_fx.provenance.embed` parses and builds them): the EXIF orientation of a
JPEG or PNG (a phone's portrait stored sideways) and the ICC colour profile of a JPEG or PNG (a phone's Display P3
photo). The readers show a still upright and keep its profile on the Frame; the writers carry the profile into a
JPEG, PNG or TIFF output, so the edit shows in the input's colours.
"""

from __future__ import annotations

import struct
import zlib

_ICC_JPEG = b"ICC_PROFILE\x00"
#: The most profile bytes one JPEG APP2 segment holds (65533 less the 14-byte ICC_PROFILE header).
_ICC_CHUNK = 65519


def _jpeg_headers(data: bytes):
    """``(offset, marker, payload)`` of a JPEG's header segments (:func:`ned_fx.provenance.embed.jpeg_segments`),
    stopping quietly where the bytes are not a JPEG or are damaged."""
    from ..provenance.embed import jpeg_segments
    from ..provenance.errors import ProvenanceError

    try:
        yield from jpeg_segments(data)
    except ProvenanceError:
        return


def _png_chunks(data: bytes):
    """``(offset, kind, payload)`` of a PNG's chunks (:func:`ned_fx.provenance.embed.png_chunks`), stopping quietly
    where the bytes are not a PNG or are damaged."""
    from ..provenance.embed import png_chunks
    from ..provenance.errors import ProvenanceError

    try:
        for pos, kind, payload, _ in png_chunks(data):
            yield pos, kind, payload
    except ProvenanceError:
        return


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) of a JPEG's (APP1 ``Exif``) or a PNG's (``eXIf`` chunk) bytes; 1 when it has none
    (or is neither, or its EXIF is malformed: read as stored)."""
    for _, marker, body in _jpeg_headers(data):
        if marker == 0xE1 and body[:6] == b"Exif\x00\x00":
            return _tiff_orientation(body[6:])
    for _, kind, body in _png_chunks(data):
        if kind == b"eXIf":
            return _tiff_orientation(body)
        if kind == b"IDAT":
            break
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    """The Orientation tag (0x0112) of an EXIF block's first IFD (a TIFF header and its IFDs); 1 when absent."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    try:
        ifd = struct.unpack(order + "I", tiff[4:8])[0]
        count = struct.unpack(order + "H", tiff[ifd:ifd + 2])[0]
        for k in range(count):
            tag, kind, _, value = struct.unpack(order + "HHIH", tiff[ifd + 2 + 12 * k:ifd + 12 + 12 * k])
            if tag == 0x0112 and kind == 3:
                return value if 1 <= value <= 8 else 1
    except (struct.error, TypeError):
        return 1
    return 1


def icc_profile(data: bytes) -> bytes | None:
    """The ICC profile embedded in a JPEG (APP2 ``ICC_PROFILE`` segments, joined in their order) or a PNG (its
    ``iCCP`` chunk), else None (none, or malformed)."""
    if data[:2] == b"\xff\xd8":
        parts = {}
        for _, marker, body in _jpeg_headers(data):
            if marker == 0xE2 and body.startswith(_ICC_JPEG) and len(body) > 14:
                parts[body[12]] = body[14:]
        if not parts:
            return None
        return b"".join(parts[k] for k in sorted(parts))
    for _, kind, body in _png_chunks(data):
        if kind == b"iCCP":
            name_end = body.find(b"\x00")
            if name_end < 0 or name_end + 2 > len(body) or body[name_end + 1] != 0:
                return None
            try:
                return zlib.decompress(body[name_end + 2:])
            except zlib.error:
                return None
        if kind == b"IDAT":
            return None
    return None


def colour_space(profile: bytes | None) -> str | None:
    """An ICC profile's data colour space (``"RGB"``, ``"GRAY"``, ``"CMYK"``...), or None when it is not one."""
    if not profile or len(profile) < 20 or profile[36:40] != b"acsp":
        return None
    return profile[16:20].decode("latin-1").strip()


def profile_for(profile: bytes | None, channels: int) -> bytes | None:
    """``profile`` where it describes pixels of ``channels`` colour channels + alpha (RGB for 3-4, GRAY for 1-2),
    else None: a CMYK JPEG's profile does not describe the RGB it decodes to."""
    space = colour_space(profile)
    return profile if space == ("RGB" if channels >= 3 else "GRAY") else None


def with_icc(data: bytes, profile: bytes) -> bytes:
    """JPEG or PNG bytes with ``profile`` embedded (after the JFIF/EXIF headers; in a PNG before its image data,
    replacing an sRGB/gamma statement that would contradict it). Other bytes: unchanged."""
    from ..provenance.embed import PNG_SIGNATURE, jpeg_segment, png_chunk

    if data[:2] == b"\xff\xd8":
        insert = 2
        for pos, marker, body in _jpeg_headers(data):
            if marker in (0xE0, 0xE1):
                insert = pos + 4 + len(body)
                continue
            break
        chunks = [profile[i:i + _ICC_CHUNK] for i in range(0, len(profile), _ICC_CHUNK)]
        if len(chunks) > 255:
            return data
        segments = b"".join(jpeg_segment(0xE2, _ICC_JPEG + bytes([k + 1, len(chunks)]) + c)
                            for k, c in enumerate(chunks))
        return data[:insert] + segments + data[insert:]
    if data.startswith(PNG_SIGNATURE):
        chunk = png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(profile))
        out, placed = [data[:len(PNG_SIGNATURE)]], False
        for pos, kind, body in _png_chunks(data):
            whole = data[pos:pos + 12 + len(body)]
            if kind in (b"sRGB", b"gAMA", b"iCCP"):
                continue
            if kind == b"IDAT" and not placed:
                out.append(chunk)
                placed = True
            out.append(whole)
        return b"".join(out) if placed else data
    return data
