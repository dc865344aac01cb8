"""Carrying an :class:`~ned_fx.provenance.record.EditRecord` in each format's own metadata.

Every format gets the record as JSON (the machine-readable copy, read back by :func:`ned_fx.media.read_provenance`)
and the sentence where ordinary tools show a description. Nothing else in the file changes, so other readers see
the same pixels:

======== =============================================================================================
EXR      header string attributes ``ned_fx/provenance`` (JSON) and flat ``ned_fx/*`` ones (Nuke shows them
         as ``exr/ned_fx/…``); the standard ``comments`` attribute gets the sentence
PNG      ``iTXt`` chunks ``ned_fx:provenance`` (JSON), ``Description`` (sentence), ``XML:com.adobe.xmp``
         (XMP), ``tEXt`` ``Software``; inserted after ``IHDR`` with their CRCs
JPEG     an APP1 XMP segment and a COM segment (sentence) after the JFIF header
TIFF     ``ImageDescription`` (sentence), ``Software``, ``DateTime`` and the XMP tag (700)
DPX      ``Software``, a 32-character ``ImageDescription`` note and the user data block (JSON), via OpenImageIO
movies   container tags ``comment``/``description`` (sentence) and ``ned_fx_provenance`` (JSON); MP4/MOV with
         ``movflags=use_metadata_tags`` so the custom key survives, AVI's INFO list in ``ISBJ`` (subject)
======== =============================================================================================

The XMP packet (PNG, JPEG, TIFF) says it in the vocabulary other tools read: ``dc:description`` (sentence),
``xmp:CreatorTool``, ``xmp:ModifyDate``, IPTC's ``Iptc4xmpExt:DigitalSourceType``, and the JSON record in
``nedfx:Record`` (namespace :data:`XMP_NAMESPACE`). BMP has no metadata: writers refuse provenance for it.
"""

from __future__ import annotations

import re
import struct
import zlib
from typing import Any, Mapping
from xml.sax.saxutils import escape, quoteattr

from .errors import ProvenanceError
from .record import DIGITAL_SOURCE_TYPE, EditRecord

#: The XMP namespace of the ``nedfx:Record`` property (the JSON record).
XMP_NAMESPACE = "urn:ned_fx:ns:edit:1"
#: EXR header attribute holding the JSON record; flat attributes share its ``ned_fx/`` prefix.
EXR_ATTRIBUTE = "ned_fx/provenance"
EXR_PREFIX = "ned_fx/"
#: The flat EXR attributes written beside the JSON (for host metadata viewers).
EXR_FLAT = ("edited", "summary", "emotion", "intensity", "reference", "keys", "regions", "face_id", "renderer",
            "source", "source_frame", "source_sha256", "time", "consent")
#: PNG text keyword of the JSON record.
PNG_KEYWORD = "ned_fx:provenance"
#: Movie container tag of the JSON record.
MOVIE_TAG = "ned_fx_provenance"
#: Formats that carry provenance (extensions).
FORMATS = (".exr", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dpx", ".mp4", ".mov", ".mkv", ".webm", ".avi")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_MAX_CHUNK = 1 << 20       # text chunks / segments larger than this are not ours


def as_record(provenance: EditRecord | Mapping[str, Any]) -> EditRecord:
    """An EditRecord from a record or its dict form (what writers accept).

    Raises:
        ProvenanceError: anything else, or a malformed dict.
    """
    if isinstance(provenance, EditRecord):
        return provenance
    if isinstance(provenance, Mapping):
        return EditRecord.from_dict(provenance)
    raise ProvenanceError(f"provenance must be an EditRecord or its dict, got {type(provenance).__name__}")


def _tool(record: EditRecord) -> str:
    return f"{record.tool} {record.version}".strip()


# ---- XMP ----------------------------------------------------------------------------------------------------------

def xmp_packet(record: EditRecord) -> bytes:
    """A small XMP packet: description, creator tool, modify date, IPTC digital source type, the JSON record."""
    attrs = {"xmp:CreatorTool": _tool(record), "Iptc4xmpExt:DigitalSourceType": DIGITAL_SOURCE_TYPE,
             "nedfx:Record": record.to_json()}
    if record.time:
        attrs["xmp:ModifyDate"] = record.time
    attr_text = "".join(f"\n    {k}={quoteattr(v)}" for k, v in attrs.items())
    body = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        f'    xmlns:nedfx="{XMP_NAMESPACE}"{attr_text}>\n'
        f'   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{escape(record.summary)}</rdf:li></rdf:Alt>'
        '</dc:description>\n'
        '  </rdf:Description>\n'
        ' </rdf:RDF>\n'
        '</x:xmpmeta>\n'
        '<?xpacket end="w"?>')
    return body.encode("utf-8")


def record_from_xmp(packet: bytes) -> EditRecord | None:
    """The record in an XMP packet's ``nedfx:Record`` property, or None when the packet has none.

    Raises:
        ProvenanceError: the property is there but malformed.
    """
    if len(packet) > _MAX_CHUNK or XMP_NAMESPACE.encode() not in packet:
        return None
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:   # never expand entities from a file
        return None
    import xml.etree.ElementTree as ET

    text = packet.decode("utf-8", "replace")
    text = re.sub(r"<\?xpacket[^>]*\?>", "", text).strip("\x00 \t\r\n")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ProvenanceError(f"the XMP packet that names ned_fx is not valid XML ({exc})") from None
    key = f"{{{XMP_NAMESPACE}}}Record"
    for element in root.iter():
        if key in element.attrib:
            return EditRecord.from_json(element.attrib[key])
        if element.tag == key and element.text:
            return EditRecord.from_json(element.text)
    return None


# ---- EXR ----------------------------------------------------------------------------------------------------------

def exr_attributes(record: EditRecord, existing: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The header attributes to add to an EXR (all strings): the JSON record, flat copies, ``comments``.

    Args:
        existing: the header attributes already going into the file (their ``comments`` is kept, the sentence is
            appended unless already there).
    """
    data = record.to_dict()
    out = {EXR_ATTRIBUTE: record.to_json()}
    for key in EXR_FLAT:
        if key in data:
            value = data[key]
            out[EXR_PREFIX + key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    comments = (existing or {}).get("comments")
    if isinstance(comments, bytes):
        comments = comments.decode("utf-8", "replace")
    if isinstance(comments, str) and comments.strip():
        out["comments"] = comments if record.summary in comments else f"{comments}\n{record.summary}"
    else:
        out["comments"] = record.summary
    return out


def record_from_exr_header(header: Mapping[str, Any]) -> EditRecord | None:
    """The record in an EXR header, or None.

    Raises:
        ProvenanceError: the attribute is there but malformed.
    """
    value = header.get(EXR_ATTRIBUTE)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise ProvenanceError(f"the EXR attribute {EXR_ATTRIBUTE} is a {type(value).__name__}, not a string")
    return EditRecord.from_json(value)


# ---- PNG ----------------------------------------------------------------------------------------------------------

def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk (length, kind, payload, CRC); with :func:`png_chunks`, also :mod:`ned_fx.media.stillmeta`'s."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _itxt(keyword: str, text: str) -> bytes:
    # keyword, NUL, compression flag 0, method 0, empty language tag + NUL, empty translated keyword + NUL, UTF-8
    return png_chunk(b"iTXt", keyword.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode("utf-8"))


def png_chunks(data: bytes):
    """``(offset, kind, payload, crc_ok)`` for each chunk of a PNG byte string.

    Raises:
        ProvenanceError: not a PNG, or a chunk runs past the end.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise ProvenanceError("not a PNG file (no PNG signature)")
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise ProvenanceError(f"the PNG is truncated (chunk {kind!r} at byte {pos} runs past the end)")
        payload = data[pos + 8:pos + 8 + length]
        crc = struct.unpack(">I", data[end - 4:end])[0]
        yield pos, kind, payload, crc == (zlib.crc32(kind + payload) & 0xFFFFFFFF)
        pos = end
        if kind == b"IEND":
            return


def png_with_provenance(data: bytes, record: EditRecord) -> bytes:
    """PNG bytes with the record's text chunks inserted after ``IHDR`` (pixels and other chunks untouched).

    Raises:
        ProvenanceError: ``data`` is not a PNG.
    """
    chunks = list(png_chunks(data))
    if not chunks or chunks[0][1] != b"IHDR":
        raise ProvenanceError("not a PNG file (the first chunk is not IHDR)")
    after_ihdr = chunks[0][0] + 12 + len(chunks[0][2])
    extra = (png_chunk(b"tEXt", b"Software\x00" + _tool(record).encode("latin-1", "replace"))
             + _itxt("Description", record.summary)
             + _itxt(PNG_KEYWORD, record.to_json())
             + _itxt("XML:com.adobe.xmp", xmp_packet(record).decode("utf-8")))
    return data[:after_ihdr] + extra + data[after_ihdr:]


def png_text(data: bytes) -> dict[str, str]:
    """The text chunks (tEXt, iTXt, zTXt) of a PNG with good CRCs: keyword -> text."""
    out: dict[str, str] = {}
    for _, kind, payload, ok in png_chunks(data):
        if not ok or kind not in (b"tEXt", b"iTXt", b"zTXt") or len(payload) > _MAX_CHUNK or b"\x00" not in payload:
            continue
        keyword, rest = payload.split(b"\x00", 1)
        try:
            if kind == b"tEXt":
                text = rest.decode("latin-1")
            elif kind == b"zTXt":
                text = zlib.decompressobj().decompress(rest[1:], _MAX_CHUNK).decode("latin-1")
            else:
                flag = rest[0]                      # rest[1]: the compression method (0: zlib)
                _lang, _, rest = rest[2:].partition(b"\x00")
                _translated, _, body = rest.partition(b"\x00")
                text = (zlib.decompressobj().decompress(body, _MAX_CHUNK) if flag else body).decode("utf-8")
        except (IndexError, zlib.error, UnicodeDecodeError):
            continue
        out[keyword.decode("latin-1")] = text
    return out


def record_from_png(data: bytes) -> EditRecord | None:
    """The record in a PNG's text chunks (the JSON chunk, else the XMP packet), or None.

    Raises:
        ProvenanceError: not a PNG, or a malformed record.
    """
    text = png_text(data)
    if PNG_KEYWORD in text:
        return EditRecord.from_json(text[PNG_KEYWORD])
    if "XML:com.adobe.xmp" in text:
        return record_from_xmp(text["XML:com.adobe.xmp"].encode("utf-8"))
    return None


# ---- JPEG ---------------------------------------------------------------------------------------------------------

def jpeg_segment(marker: int, payload: bytes) -> bytes:
    """One JPEG header segment (marker, length, payload); with :func:`jpeg_segments`, also
    :mod:`ned_fx.media.stillmeta`'s.

    Raises:
        ProvenanceError: more than a segment holds.
    """
    if len(payload) + 2 > 0xFFFF:
        raise ProvenanceError(f"a JPEG segment holds at most 65533 bytes; the provenance needs {len(payload)}")
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def jpeg_segments(data: bytes):
    """``(offset, marker, payload)`` of the header segments of a JPEG, up to the start of scan.

    Raises:
        ProvenanceError: not a JPEG, or a segment runs past the end.
    """
    if not data.startswith(b"\xff\xd8"):
        raise ProvenanceError("not a JPEG file (no start-of-image marker)")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ProvenanceError(f"the JPEG header is damaged at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:          # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if pos + 2 + length > len(data):
            raise ProvenanceError(f"the JPEG is truncated (segment 0x{marker:02X} at byte {pos} runs past the end)")
        yield pos, marker, data[pos + 4:pos + 2 + length]
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no more header segments
            return
        pos += 2 + length


def jpeg_with_provenance(data: bytes, record: EditRecord) -> bytes:
    """JPEG bytes with an APP1 XMP segment and a COM segment (the sentence) after the JFIF/EXIF headers.

    Raises:
        ProvenanceError: ``data`` is not a JPEG.
    """
    insert = 2
    for pos, marker, payload in jpeg_segments(data):
        if marker in (0xE0, 0xE1) and not payload.startswith(_XMP_JPEG_HEADER):   # JFIF / EXIF stay first
            insert = pos + 2 + len(payload) + 2
            continue
        break
    extra = (jpeg_segment(0xE1, _XMP_JPEG_HEADER + xmp_packet(record))
             + jpeg_segment(0xFE, record.summary.encode("utf-8")))
    return data[:insert] + extra + data[insert:]


def record_from_jpeg(data: bytes) -> EditRecord | None:
    """The record in a JPEG's XMP segment, or None.

    Raises:
        ProvenanceError: not a JPEG, or a malformed record.
    """
    for _, marker, payload in jpeg_segments(data):
        if marker == 0xE1 and payload.startswith(_XMP_JPEG_HEADER):
            found = record_from_xmp(payload[len(_XMP_JPEG_HEADER):])
            if found is not None:
                return found
    return None


# ---- TIFF ---------------------------------------------------------------------------------------------------------

def tiff_tags(record: EditRecord) -> dict[str, Any]:
    """Keyword arguments for ``tifffile.imwrite``: description (sentence), software, datetime, XMP tag 700."""
    xmp = xmp_packet(record)
    tags: dict[str, Any] = {"description": record.summary, "software": _tool(record),
                            "extratags": [(700, 1, len(xmp), xmp, True)]}
    match = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)", record.time or "")
    if match:
        y, mo, d, h, mi, s = match.groups()
        tags["datetime"] = f"{y}:{mo}:{d} {h}:{mi}:{s}"
    return tags


# ---- DPX (through OpenImageIO) -------------------------------------------------------------------------------------

#: DPX's ImageDescription field holds 32 characters: it gets this note, the record goes in the user data block.
DPX_NOTE = "ned_fx: facial expression edited"


def dpx_attributes(record: EditRecord) -> dict[str, Any]:
    """OpenImageIO attributes carrying the record in a DPX: ``Software``, a 32-character ``ImageDescription``
    note, and ``dpx:UserData``: the JSON record as bytes, which OpenImageIO must be given as a ``uint8[n]``
    array (``spec.attribute("dpx:UserData", TypeDesc(f"uint8[{n}]"), numpy.frombuffer(data, numpy.uint8))``)."""
    return {"Software": _tool(record)[:100], "ImageDescription": DPX_NOTE[:32],
            "dpx:UserData": record.to_json().encode("ascii")}


def record_from_dpx_user_data(data: bytes | None) -> EditRecord | None:
    """The record in a DPX user data block (as OpenImageIO reads ``dpx:UserData``), or None.

    Raises:
        ProvenanceError: a ned_fx record is there but malformed.
    """
    if not data:
        return None
    raw = bytes(data)
    start = raw.find(b'{"schema":"ned_fx.edit/')
    if start < 0:
        return None
    return EditRecord.from_json(raw[start:].rstrip(b"\x00 "))


# ---- movies -------------------------------------------------------------------------------------------------------

def movie_metadata(record: EditRecord, extension: str) -> tuple[dict[str, str], dict[str, str]]:
    """Container tags and muxer options that carry the record in a movie of this extension.

    Returns:
        ``(metadata, container_options)``: set ``container.metadata.update(metadata)`` before the header is
        written; merge ``container_options`` (MP4/MOV: ``movflags=+use_metadata_tags``) into ``av.open``'s.
    """
    ext = extension.lower()
    if ext == ".avi":      # RIFF INFO keeps only its own list of tags: the JSON goes in ISBJ (subject)
        return {"comment": record.summary, "ISBJ": record.to_json()}, {}
    metadata = {"comment": record.summary, "description": record.summary, MOVIE_TAG: record.to_json()}
    options = {"movflags": "+use_metadata_tags"} if ext in (".mp4", ".mov", ".m4v") else {}
    return metadata, options


def record_from_movie_metadata(metadata: Mapping[str, str]) -> EditRecord | None:
    """The record in a movie's container tags (as PyAV/ffprobe read them), or None.

    Raises:
        ProvenanceError: the tag is there but malformed.
    """
    lower = {str(k).lower(): v for k, v in metadata.items()}
    if MOVIE_TAG in lower:
        return EditRecord.from_json(lower[MOVIE_TAG])
    subject = lower.get("subject") or lower.get("isbj")
    if isinstance(subject, str) and '"schema":"ned_fx.edit/' in subject.replace(" ", ""):
        return EditRecord.from_json(subject)
    return None
