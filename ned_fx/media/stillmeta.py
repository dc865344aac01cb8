"""What a still's file says about how to show its pixels, read from and written into the bytes themselves (the
JPEG segments and PNG chunks as :mod:`ned_fx.provenance.embed` parses and builds them): the EXIF orientation of a
JPEG or PNG (a phone's portrait stored sideways), the ICC colour profile of a JPEG or PNG (a phone's Display P3
photo) and the EXIF block itself. The readers show a still upright and keep its profile and EXIF on the Frame; the
writers carry the profile into a JPEG, PNG or TIFF output, so the edit shows in the input's colours, and what the
EXIF says of the picture (camera, dates, copyright; never its thumbnail or maker note) into a JPEG or PNG output.
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


def exif_orientation(tiff: bytes | None) -> int:
    """The Orientation tag (0x0112, 1-8) of an EXIF block's first IFD (:func:`exif_block`'s: a TIFF header and its
    IFDs); 1 when there is no block or tag (or it is malformed: read as stored)."""
    order = {b"II": "<", b"MM": ">"}.get(bytes(tiff[:2])) if tiff else None
    if order is None:
        return 1
    try:
        ifd = struct.unpack(order + "I", tiff[4:8])[0]
        count = struct.unpack(order + "H", tiff[ifd:ifd + 2])[0]
        for k in range(count):
            tag, kind, _, value = struct.unpack(order + "HHIH", tiff[ifd + 2 + 12 * k:ifd + 12 + 12 * k])
            if tag == 0x0112 and kind == 3:
                return value if 1 <= value <= 8 else 1
    except struct.error:
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
        return _png_with(data, png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(profile)), (b"sRGB", b"gAMA", b"iCCP"))
    return data


def _png_with(data: bytes, chunk: bytes, replaced: tuple[bytes, ...]) -> bytes:
    """PNG bytes with ``chunk`` put before the image data and the chunks of the ``replaced`` kinds left out; the
    bytes as they are when no image data is found (a damaged PNG)."""
    from ..provenance.embed import PNG_SIGNATURE

    out, placed = [data[:len(PNG_SIGNATURE)]], False
    for pos, kind, body in _png_chunks(data):
        if kind in replaced:
            continue
        if kind == b"IDAT" and not placed:
            out.append(chunk)
            placed = True
        out.append(data[pos:pos + 12 + len(body)])
    return b"".join(out) if placed else data


# ----------------------------------------------------------------------------------------------------------------
# EXIF: what a still says about itself (camera, lens, date, copyright, place), carried into the edited output

#: bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE, UNDEFINED, SSHORT, SLONG,
#: SRATIONAL, FLOAT, DOUBLE, IFD)
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
#: the sub-IFDs carried: the Exif IFD (exposure, lens, DateTimeOriginal) and the GPS IFD
_SUB_IFDS = (0x8769, 0x8825)
#: tags not carried. First IFD: the layout of pixels that are not the output's (size, compression, strips, a
#: thumbnail's JPEG, YCbCr sampling), the orientation (the output is written upright), an XMP packet and an ICC
#: profile (the output has its own: provenance, :func:`with_icc`), other sub-IFDs. Exif IFD: the maker note (a
#: camera's private block, which may hold a preview of the unedited picture), the interoperability IFD, the
#: pixel dimensions and the image's unique ID (the edit is another picture).
_DROPPED = frozenset((0x00FE, 0x00FF, 0x0100, 0x0101, 0x0102, 0x0103, 0x0106, 0x0111, 0x0112, 0x0115, 0x0116,
                      0x0117, 0x011C, 0x014A, 0x0201, 0x0202, 0x0211, 0x0212, 0x02BC, 0x8773,
                      0x927C, 0xA005, 0xA002, 0xA003, 0xA420))
_SOFTWARE = 0x0131


def exif_block(data: bytes) -> bytes | None:
    """The EXIF block (a TIFF header and its IFDs) of a JPEG (APP1 ``Exif``) or a PNG (``eXIf``), else None."""
    for _, marker, body in _jpeg_headers(data):
        if marker == 0xE1 and body[:6] == b"Exif\x00\x00":
            return body[6:]
    for _, kind, body in _png_chunks(data):
        if kind == b"eXIf":
            return body
        if kind == b"IDAT":
            break
    return None


def _entries(tiff: bytes, order: str, offset: int, depth: int = 0) -> list:
    """One IFD's entries as ``(tag, type, count, value bytes or a sub-IFD's entries)``, sorted by tag, without
    :data:`_DROPPED`; a sub-IFD of :data:`_SUB_IFDS` is read in place of its pointer (a malformed entry is left
    out). Raises ``struct.error``/``ValueError`` for an IFD that cannot be read at all."""
    if depth > 2 or not 8 <= offset <= len(tiff) - 2:
        raise ValueError("IFD offset out of range")
    count = struct.unpack(order + "H", tiff[offset:offset + 2])[0]
    out = []
    for k in range(count):
        at = offset + 2 + 12 * k
        tag, kind, n = struct.unpack(order + "HHI", tiff[at:at + 8])
        if tag in _DROPPED or kind not in _TYPE_SIZE:
            continue
        if tag in _SUB_IFDS:
            try:
                out.append((tag, 4, 1, _entries(tiff, order, struct.unpack(order + "I", tiff[at + 8:at + 12])[0],
                                                depth + 1)))
            except (struct.error, ValueError):
                pass
            continue
        size = _TYPE_SIZE[kind] * n
        if size <= 4:
            value = tiff[at + 8:at + 8 + size]
        else:
            start = struct.unpack(order + "I", tiff[at + 8:at + 12])[0]
            value = tiff[start:start + size]
        if len(value) == size and size < 1 << 20:
            out.append((tag, kind, n, value))
    return sorted(out, key=lambda e: e[0])


def _emit(entries: list, order: str, start: int) -> bytes:
    """An IFD at ``start`` (offsets in the block), then its values, then its sub-IFDs; no next IFD."""
    head = start + 2 + 12 * len(entries) + 4
    data, subs, fields = bytearray(), [], []
    for tag, kind, n, value in entries:
        if isinstance(value, list):
            fields.append((tag, kind, n, None))
            subs.append(value)
        elif len(value) <= 4:
            fields.append((tag, kind, n, value.ljust(4, b"\x00")))
        else:
            fields.append((tag, kind, n, struct.pack(order + "I", head + len(data))))
            data += value + b"\x00" * (len(value) % 2)
    tail, offsets = bytearray(), []
    for sub in subs:                                        # each sub-IFD after the values and the ones before it
        offsets.append(head + len(data) + len(tail))
        tail += _emit(sub, order, offsets[-1])
    sub_at = iter(offsets)
    ifd = bytearray(struct.pack(order + "H", len(fields)))
    for tag, kind, n, value in fields:
        ifd += struct.pack(order + "HHI", tag, kind, n) + (struct.pack(order + "I", next(sub_at))
                                                          if value is None else value)
    return bytes(ifd + struct.pack(order + "I", 0) + data + tail)


def carried_exif(tiff: bytes | None, software: str) -> bytes | None:
    """What an edited still keeps of its source's EXIF block: the first IFD's tags and the Exif and GPS IFDs
    (camera, lens, exposure, dates, artist, copyright, place), without the thumbnail (the second IFD: a small
    picture of the unedited face), the maker note, the orientation (the output is upright) and the tags of
    :data:`_DROPPED`; ``Software`` says what edited it. None when there is no block, or it cannot be read (then
    nothing is carried, as before: a damaged block never fails an edit)."""
    if not tiff or len(tiff) < 8:
        return None
    order = {b"II": "<", b"MM": ">"}.get(bytes(tiff[:2]))
    if order is None:
        return None
    try:
        if struct.unpack(order + "H", tiff[2:4])[0] != 42:
            return None
        entries = _entries(bytes(tiff), order, struct.unpack(order + "I", tiff[4:8])[0])
    except (struct.error, ValueError):
        return None
    name = software.encode("ascii", "replace") + b"\x00"
    entries = sorted([e for e in entries if e[0] != _SOFTWARE] + [(_SOFTWARE, 2, len(name), name)],
                     key=lambda e: e[0])
    return (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8) + _emit(entries, order, 8)


def with_exif(data: bytes, tiff: bytes) -> bytes:
    """JPEG or PNG bytes with the EXIF block ``tiff`` embedded (a JPEG's APP1 after its JFIF header, a PNG's
    ``eXIf`` chunk before its image data), replacing any EXIF they had; other bytes unchanged. A block too long
    for one JPEG segment is not embedded."""
    from ..provenance.embed import PNG_SIGNATURE, jpeg_segment, png_chunk

    if data[:2] == b"\xff\xd8":
        if len(tiff) + 8 > 0xFFFF:
            return data
        segment = jpeg_segment(0xE1, b"Exif\x00\x00" + tiff)
        out, placed = [data[:2]], False
        for pos, marker, body in _jpeg_headers(data):
            if marker == 0xE1 and body[:6] == b"Exif\x00\x00":
                continue                                    # the source's own block, if the output had one
            if not placed and marker != 0xE0:               # after the JFIF header, before everything else
                out.append(segment)
                placed = True
            if marker == 0xDA:                              # the scan and everything after it, as they are
                out.append(data[pos:])
                return b"".join(out)
            out.append(data[pos:pos + 4 + len(body)])
        return data                                         # no scan found: a damaged JPEG is left as it is
    if data.startswith(PNG_SIGNATURE):
        return _png_with(data, png_chunk(b"eXIf", tiff), (b"eXIf",))
    return data
