"""Image files the bridges read and write themselves: scanline OpenEXR and PNG, with numpy and zlib only.

A host's Python (Nuke's, Resolve's) has numpy at best, never the OpenEXR bindings, yet the bridges must hand
frames to the host as files the host reads natively. This module is the small, exact subset they need:

* :func:`read_exr` / :func:`write_exr`: single-part scanline OpenEXR 2.0 files, ``none``, ``rle`` (read only),
  ``zips`` and ``zip`` compression, half/float/uint channels, data and display windows, and every header
  attribute carried through unchanged (unknown attribute types travel as raw bytes).
* :func:`write_png`: 8/16-bit grey, grey+alpha, RGB and RGBA PNG (lossless, for integer frames from movies).

Every file is written to a hidden temporary name in the same folder and renamed (:func:`atomic_write_bytes`),
so a reader (Nuke's Read, Resolve's media pool, the daemon) never sees half a frame.
"""

from __future__ import annotations

import os
import secrets
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from ..errors import InvalidParameterError, OutputWriteError, UnreadableMediaError, UnsupportedFormatError

EXR_MAGIC = 20000630
#: Compression names -> OpenEXR's codes. ``rle`` is read but never written.
EXR_COMPRESSIONS = {"none": 0, "rle": 1, "zips": 2, "zip": 3}
_LINES_PER_CHUNK = {0: 1, 1: 1, 2: 1, 3: 16}
#: EXR pixel types -> numpy dtypes.
EXR_PIXEL_TYPES = {"uint": np.dtype("<u4"), "half": np.dtype("<f2"), "float": np.dtype("<f4")}
_TYPE_CODES = {"uint": 0, "half": 1, "float": 2}
#: The order channels come out in (as ned_fx.media reads them): these first, then the others in file order.
LEADING_CHANNELS = ("R", "G", "B", "Y", "A")
#: Attributes this module writes itself (never copied from ``attributes``).
_STRUCTURE = {"channels", "compression", "dataWindow", "displayWindow", "lineOrder", "pixelAspectRatio",
              "screenWindowCenter", "screenWindowWidth", "type", "tiles", "chunkCount", "version"}

Window = tuple[int, int, int, int]


@dataclass(frozen=True, eq=False)
class ExrImage:
    """One EXR frame.

    Attributes:
        pixels: (H, W, C) covering the DATA window, rows top-down; float16/float32 (float32 when the channel
            types are mixed), or uint32 for all-uint files.
        channels: channel names in :data:`LEADING_CHANNELS`-first order.
        data_window, display_window: inclusive ``(xmin, ymin, xmax, ymax)``.
        channel_types: ``"half"``, ``"float"`` or ``"uint"`` per channel (what the file stores).
        attributes: every other header attribute, ``name -> (type name, raw little-endian bytes)``; see
            :func:`attribute_value` to decode the common ones.
        compression: the file's compression name.
    """

    pixels: np.ndarray
    channels: tuple[str, ...]
    data_window: Window
    display_window: Window
    channel_types: tuple[str, ...] = ()
    attributes: Mapping[str, tuple[str, bytes]] = field(default_factory=lambda: MappingProxyType({}))
    compression: str = "zip"


# ---- atomic files -------------------------------------------------------------------------------------------------

def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a hidden temporary file in the same folder, then rename.

    Raises:
        OutputWriteError: the folder is missing or not writable, or the disk is full (nothing is left behind).
    """
    final = Path(path)
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp{final.suffix.lower()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OutputWriteError(f"could not write {final}: {reason}; nothing was written") from None
    return final


# ---- EXR: attributes ----------------------------------------------------------------------------------------------

def _encode_attribute(name: str, value: Any) -> tuple[str, bytes]:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], bytes):
        return value                                   # raw (type, bytes), as read
    if isinstance(value, str):
        return "string", value.encode("utf-8")
    if isinstance(value, bool) or isinstance(value, (int, np.integer)):
        return "int", struct.pack("<i", int(value))
    if isinstance(value, (float, np.floating)):
        return "float", struct.pack("<f", float(value))
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return "stringvector", b"".join(struct.pack("<i", len(v.encode())) + v.encode() for v in value)
    if isinstance(value, tuple) and all(isinstance(v, (int, np.integer)) for v in value) and len(value) in (2, 4):
        return ("v2i" if len(value) == 2 else "box2i"), struct.pack(f"<{len(value)}i", *map(int, value))
    if isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value) and len(value) in (2, 4):
        return ("v2f" if len(value) == 2 else "box2f"), struct.pack(f"<{len(value)}f", *map(float, value))
    raise InvalidParameterError(f"EXR attribute {name!r}: cannot store a {type(value).__name__}; valid: str, int, "
                                f"float, list of str, 2/4-tuples of numbers, or a (type, bytes) pair read from a file")


def attribute_value(kind: str, raw: bytes) -> Any:
    """Decode a raw attribute of a common type (``string``, ``int``, ``float``, ``double``, ``v2i``, ``v2f``,
    ``box2i``, ``box2f``, ``stringvector``); other types come back as the raw bytes."""
    fmt = {"int": "<i", "float": "<f", "double": "<d", "v2i": "<2i", "v2f": "<2f", "box2i": "<4i",
           "box2f": "<4f"}.get(kind)
    if kind == "string":
        return raw.decode("utf-8", "replace")
    if fmt is not None and len(raw) == struct.calcsize(fmt):
        vals = struct.unpack(fmt, raw)
        return vals[0] if len(vals) == 1 else vals
    if kind == "stringvector":
        out, i = [], 0
        while i + 4 <= len(raw):
            n = struct.unpack_from("<i", raw, i)[0]
            out.append(raw[i + 4:i + 4 + n].decode("utf-8", "replace"))
            i += 4 + n
        return out
    return raw


# ---- EXR: chunk codecs ------------------------------------------------------------------------------------------

def _zip_encode(raw: bytes) -> bytes:
    t = np.frombuffer(raw, np.uint8)
    buf = np.concatenate([t[0::2], t[1::2]]).astype(np.int16)
    if buf.size > 1:
        buf[1:] = (buf[1:] - buf[:-1] + 128) & 255
    return zlib.compress(buf.astype(np.uint8).tobytes(), 4)


def _zip_decode(data: bytes, size: int) -> bytes:
    d = np.frombuffer(zlib.decompress(data), np.uint8).astype(np.int64)
    if d.size != size:
        raise ValueError(f"a chunk decompressed to {d.size} bytes, expected {size}")
    return _unpredict(d)


def _unpredict(d: np.ndarray) -> bytes:
    """Undo the EXR ZIP/RLE byte predictor (deltas + 128) and the split of even and odd bytes (int64 in)."""
    size = d.size
    if size > 1:
        d[1:] -= 128
    b = (np.cumsum(d) & 255).astype(np.uint8)
    out = np.empty(size, np.uint8)
    half = (size + 1) // 2
    out[0::2], out[1::2] = b[:half], b[half:]
    return out.tobytes()


def _rle_decode(data: bytes, size: int) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        count = struct.unpack_from("b", data, i)[0]
        i += 1
        if count < 0:
            out += data[i:i - count]
            i -= count
        else:
            out += data[i:i + 1] * (count + 1)
            i += 1
    if len(out) != size:
        raise ValueError(f"an RLE chunk decoded to {len(out)} bytes, expected {size}")
    return _unpredict(np.frombuffer(bytes(out), np.uint8).astype(np.int64))


def _line_dtype(names: list[str], types: list[str], width: int) -> np.dtype:
    return np.dtype([(n, EXR_PIXEL_TYPES[t], (width,)) for n, t in zip(names, types)])


# ---- EXR: reading -------------------------------------------------------------------------------------------------

def read_exr(path: str | os.PathLike) -> ExrImage:
    """Read a single-part scanline OpenEXR file.

    Raises:
        UnreadableMediaError: the file cannot be read or is not a valid EXR; UnsupportedFormatError: tiled, deep
        or multi-part files, subsampled channels, or a compression other than none/rle/zips/zip (listed).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise UnreadableMediaError(f"cannot read {p}: {exc.strerror}") from None
    try:
        return _parse_exr(data, p)
    except (struct.error, ValueError, IndexError, KeyError, zlib.error) as exc:
        raise UnreadableMediaError(f"{p}: not a readable OpenEXR file ({exc}); it is corrupt or truncated") from None


def _parse_exr(data: bytes, p: Path) -> ExrImage:
    magic, version = struct.unpack_from("<ii", data, 0)
    if magic != EXR_MAGIC:
        raise UnreadableMediaError(f"{p}: not an OpenEXR file")
    flags = version & ~0xFF
    if flags & 0x200 or flags & 0x800 or flags & 0x1000:
        kind = "tiled" if flags & 0x200 else "deep" if flags & 0x800 else "multi-part"
        raise UnsupportedFormatError(f"{p}: {kind} OpenEXR files are not read by the host bridges; write "
                                     f"single-part scanline EXRs (compression none, zips or zip)")
    i = 8
    raw_attrs: dict[str, tuple[str, bytes]] = {}
    while data[i] != 0:
        end = data.index(b"\0", i)
        name = data[i:end].decode("utf-8", "replace")
        tend = data.index(b"\0", end + 1)
        kind = data[end + 1:tend].decode("utf-8", "replace")
        size = struct.unpack_from("<i", data, tend + 1)[0]
        start = tend + 5
        raw_attrs[name] = (kind, data[start:start + size])
        i = start + size
    i += 1
    names, types = [], []
    chl = raw_attrs["channels"][1]
    j = 0
    while chl[j] != 0:
        end = chl.index(b"\0", j)
        name = chl[j:end].decode("utf-8", "replace")
        ptype, _linear, xs, ys = struct.unpack_from("<iB3xii", chl, end + 1)
        if (xs, ys) != (1, 1):
            raise UnsupportedFormatError(f"{p}: channel {name!r} is subsampled ({xs}x{ys}); only full-resolution "
                                         f"channels are supported")
        names.append(name)
        types.append({0: "uint", 1: "half", 2: "float"}[ptype])
        j = end + 1 + 16
    comp = raw_attrs["compression"][1][0]
    comp_name = {v: k for k, v in EXR_COMPRESSIONS.items()}.get(comp)
    if comp_name is None:
        raise UnsupportedFormatError(f"{p}: EXR compression code {comp} is not read by the host bridges; valid: "
                                     f"{', '.join(EXR_COMPRESSIONS)}")
    dw = struct.unpack("<4i", raw_attrs["dataWindow"][1])
    disp = struct.unpack("<4i", raw_attrs["displayWindow"][1])
    width, height = dw[2] - dw[0] + 1, dw[3] - dw[1] + 1
    lines = _LINES_PER_CHUNK[comp]
    chunks = (height + lines - 1) // lines
    offsets = struct.unpack_from(f"<{chunks}Q", data, i)
    ldt = _line_dtype(names, types, width)
    planes = {n: np.empty((height, width), EXR_PIXEL_TYPES[t]) for n, t in zip(names, types)}
    for off in offsets:
        y, size = struct.unpack_from("<ii", data, off)
        row = y - dw[1]
        n = min(lines, height - row)
        payload = data[off + 8:off + 8 + size]
        expected = n * ldt.itemsize
        if size != expected:
            payload = _zip_decode(payload, expected) if comp in (2, 3) else _rle_decode(payload, expected)
        block = np.frombuffer(payload, ldt, count=n)
        for name in names:
            planes[name][row:row + n] = block[name]
    order = [c for c in LEADING_CHANNELS if c in planes] + [c for c in names if c not in LEADING_CHANNELS]
    kinds = [types[names.index(c)] for c in order]
    out_dtype = (np.float16 if set(kinds) == {"half"} else np.uint32 if set(kinds) == {"uint"} else np.float32)
    pixels = np.stack([planes[c].astype(out_dtype, copy=False) for c in order], axis=-1) if order else \
        np.zeros((height, width, 0), out_dtype)
    attrs = {k: v for k, v in raw_attrs.items() if k not in _STRUCTURE}
    return ExrImage(np.ascontiguousarray(pixels), tuple(order), tuple(dw), tuple(disp), tuple(kinds),
                    MappingProxyType(attrs), comp_name)


# ---- EXR: writing -------------------------------------------------------------------------------------------------

def encode_exr(pixels: np.ndarray, channels, *, data_window: Window | None = None,
               display_window: Window | None = None, channel_types=None, compression: str = "zips",
               attributes: Mapping[str, Any] | None = None) -> bytes:
    """The bytes of a scanline EXR (see :func:`write_exr`)."""
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise InvalidParameterError(f"EXR pixels must be (H, W, C), got shape {arr.shape}")
    h, w, c = arr.shape
    channels = tuple(str(x) for x in channels)
    if len(channels) != c or len(set(channels)) != c or any(not x for x in channels):
        raise InvalidParameterError(f"{c} channels need {c} unique non-empty names, got {list(channels)}")
    if compression not in ("none", "zips", "zip"):
        raise InvalidParameterError(f"EXR compression {compression!r}; valid: none, zips, zip")
    if channel_types is None:
        default = {np.dtype(np.float16): "half", np.dtype(np.float32): "float", np.dtype(np.uint32): "uint"}.get(
            arr.dtype)
        if default is None:
            raise InvalidParameterError(f"EXR stores half, float or uint samples; the pixels are {arr.dtype}: "
                                        f"convert them (or write PNG for 8/16-bit frames)")
        channel_types = (default,) * c
    channel_types = tuple(channel_types)
    if len(channel_types) != c or any(t not in EXR_PIXEL_TYPES for t in channel_types):
        raise InvalidParameterError(f"channel_types must name one of {', '.join(EXR_PIXEL_TYPES)} per channel")
    dw = tuple(int(v) for v in (data_window or (0, 0, w - 1, h - 1)))
    disp = tuple(int(v) for v in (display_window or dw))
    if (dw[2] - dw[0] + 1, dw[3] - dw[1] + 1) != (w, h):
        raise InvalidParameterError(f"data window {dw} is not the pixels' size {w}x{h}")
    comp = EXR_COMPRESSIONS[compression]
    order = sorted(range(c), key=lambda k: channels[k].encode("utf-8"))
    names = [channels[k] for k in order]
    types = [channel_types[k] for k in order]
    long_names = any(len(n.encode()) > 31 for n in names) or any(len(k.encode()) > 31 for k in (attributes or {}))

    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", _TYPE_CODES[t], 0, 1, 1)
                      for n, t in zip(names, types)) + b"\0"
    attrs: list[tuple[str, str, bytes]] = [
        ("channels", "chlist", chlist),
        ("compression", "compression", bytes([comp])),
        ("dataWindow", "box2i", struct.pack("<4i", *dw)),
        ("displayWindow", "box2i", struct.pack("<4i", *disp)),
        ("lineOrder", "lineOrder", b"\0"),
        ("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        ("screenWindowCenter", "v2f", struct.pack("<2f", 0.0, 0.0)),
        ("screenWindowWidth", "float", struct.pack("<f", 1.0)),
    ]
    for key, value in (attributes or {}).items():
        if key in ("pixelAspectRatio", "screenWindowCenter", "screenWindowWidth"):
            kind, raw = _encode_attribute(key, value)
            attrs = [(n, t, r) if n != key else (key, kind, raw) for n, t, r in attrs]
        elif key not in _STRUCTURE:
            kind, raw = _encode_attribute(key, value)
            attrs.append((key, kind, raw))
    header = struct.pack("<ii", EXR_MAGIC, 2 | (0x400 if long_names else 0))
    header += b"".join(n.encode() + b"\0" + t.encode() + b"\0" + struct.pack("<i", len(r)) + r for n, t, r in attrs)
    header += b"\0"

    lines = _LINES_PER_CHUNK[comp]
    chunks = (h + lines - 1) // lines
    ldt = _line_dtype(names, types, w)
    table_at = len(header)
    pos = table_at + 8 * chunks
    offsets, blobs = [], []
    for k in range(chunks):
        r0 = k * lines
        n = min(lines, h - r0)
        block = np.empty(n, ldt)
        for name, src, t in zip(names, order, types):
            block[name] = arr[r0:r0 + n, :, src].astype(EXR_PIXEL_TYPES[t], copy=False)
        raw = block.tobytes()
        if comp:
            packed = _zip_encode(raw)
            if len(packed) < len(raw):
                raw = packed
        blob = struct.pack("<ii", dw[1] + r0, len(raw)) + raw
        offsets.append(pos)
        blobs.append(blob)
        pos += len(blob)
    return header + struct.pack(f"<{chunks}Q", *offsets) + b"".join(blobs)


def write_exr(path: str | os.PathLike, pixels: np.ndarray, channels, *, data_window: Window | None = None,
              display_window: Window | None = None, channel_types=None, compression: str = "zips",
              attributes: Mapping[str, Any] | None = None) -> Path:
    """Write a single-part scanline EXR atomically.

    Args:
        pixels: (H, W, C) top-down rows covering the data window (float16, float32 or uint32).
        channels: C names (any order; the file stores them sorted, as EXR requires).
        data_window, display_window: inclusive windows (default: the full pixels).
        channel_types: ``half``/``float``/``uint`` per channel (default from the dtype).
        compression: ``none``, ``zips`` (one scanline per chunk, the default: fast random access) or ``zip``.
        attributes: extra header attributes (see :func:`_encode_attribute`); an :class:`ExrImage`'s
            ``attributes`` pass through unchanged.

    Raises:
        InvalidParameterError: a layout EXR cannot store; OutputWriteError: the file could not be written.
    """
    return atomic_write_bytes(path, encode_exr(pixels, channels, data_window=data_window,
                                               display_window=display_window, channel_types=channel_types,
                                               compression=compression, attributes=attributes))


def same_exr_content(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two EXR files hold the same pixels, channels and windows (header metadata is ignored).
    False when either cannot be read by :func:`read_exr`."""
    try:
        x, y = read_exr(a), read_exr(b)
    except (UnreadableMediaError, UnsupportedFormatError):
        return False
    return (x.channels == y.channels and x.data_window == y.data_window and x.display_window == y.display_window
            and x.channel_types == y.channel_types and x.pixels.tobytes() == y.pixels.tobytes())


# ---- PNG ------------------------------------------------------------------------------------------------------------

_PNG_COLOUR = {("Y",): 0, ("R", "G", "B"): 2, ("Y", "A"): 4, ("R", "G", "B", "A"): 6}


def encode_png(pixels: np.ndarray, channels=None) -> bytes:
    """The bytes of an 8/16-bit PNG of (H, W, C) top-down pixels (channels Y, YA, RGB or RGBA)."""
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    h, w, c = arr.shape
    channels = tuple(channels) if channels is not None else {1: ("Y",), 2: ("Y", "A"), 3: ("R", "G", "B"),
                                                            4: ("R", "G", "B", "A")}.get(c, ())
    if channels not in _PNG_COLOUR:
        raise InvalidParameterError(f"PNG holds Y, YA, RGB or RGBA; the frame has {list(channels) or c} — "
                                    f"write EXR for other channel layouts")
    if arr.dtype == np.uint8:
        depth, rows = 8, arr
    elif arr.dtype == np.uint16:
        depth, rows = 16, arr.astype(">u2")
    else:
        raise InvalidParameterError(f"PNG stores 8 or 16-bit integers; the pixels are {arr.dtype} (write EXR)")
    raw = np.zeros((h, 1 + w * c * (depth // 8)), np.uint8)
    raw[:, 1:] = np.ascontiguousarray(rows).view(np.uint8).reshape(h, -1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, depth, _PNG_COLOUR[channels], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
            + chunk(b"IEND", b""))


def write_png(path: str | os.PathLike, pixels: np.ndarray, channels=None) -> Path:
    """Write an 8/16-bit PNG atomically (see :func:`encode_png`)."""
    return atomic_write_bytes(path, encode_png(pixels, channels))


def write_frame(path: str | os.PathLike, pixels: np.ndarray, channels, data_window: Window | None = None,
                display_window: Window | None = None) -> Path:
    """Write a frame the way its pixel type asks: ``.exr`` (float pixels, or integers scaled to 0..1 float) or
    ``.png`` (8/16-bit, full windows only).

    Raises:
        UnsupportedFormatError: another extension (valid: .exr, .png); InvalidParameterError: a layout the
        format cannot hold.
    """
    ext = Path(path).suffix.lower()
    arr = np.asarray(pixels)
    if ext == ".exr":
        if arr.dtype in (np.uint8, np.uint16):
            arr = (arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)).astype(np.float16)
        return write_exr(path, arr, channels, data_window=data_window, display_window=display_window)
    if ext == ".png":
        if data_window is not None and display_window is not None and tuple(data_window) != tuple(display_window):
            raise InvalidParameterError(f"{path}: PNG has no data window; the frame's data window {data_window} "
                                        f"differs from its display window {display_window}: write EXR")
        return write_png(path, arr, channels)
    raise UnsupportedFormatError(f"cannot write {path}: {ext or '(no extension)'!r}; valid: .exr .png")
