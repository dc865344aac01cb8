"""Writing frames: still images (PNG, JPEG, TIFF, BMP, EXR) and movies, always atomically.

Every writer writes a hidden temporary file next to the output (``.NAME.XXXXXXXX.tmp.EXT``), flushes it to disk and
renames it onto the final name. On any failure — including a full disk and Ctrl-C — the temporary file is removed
and the output path is left as it was; the failure is raised as :class:`OutputWriteError` (Ctrl-C re-raised as
``KeyboardInterrupt`` after the clean-up).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import weakref
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from ..errors import InvalidParameterError, OutputWriteError, UnsupportedFormatError
from .frames import Frame
from .paths import IMAGE_EXTENSIONS, MOVIE_EXTENSIONS, is_sequence_pattern, parse_sequence_pattern, sequence_path

__all__ = ["write_image", "MovieWriter", "ensure_not_input", "sequence_path", "is_sequence_pattern",
           "atomic_output", "EXR_COMPRESSIONS", "MOVIE_CODECS", "ALPHA_CODECS"]

#: EXR compression names accepted by :func:`write_image`.
EXR_COMPRESSIONS: tuple[str, ...] = ("none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab")
#: EXR header attributes that are structure, set by the writer rather than carried from metadata.
_EXR_STRUCTURE = {"channels", "dataWindow", "displayWindow", "chunkCount", "version", "type", "tiles"}
#: TIFF compressions that tifffile writes without extra packages.
TIFF_COMPRESSIONS: tuple[str, ...] = ("none", "zlib")


# ---- atomic files ---------------------------------------------------------------------------------------------

def temp_path_for(path: Path) -> Path:
    """The hidden temporary name used while writing ``path``: ``.NAME.XXXXXXXX.tmp.EXT`` in the same folder.

    Args:
        path: the final output path.

    Returns:
        The temporary path (the real extension is kept last so libraries still pick the format).
    """
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix.lower()}")


def describe_os_error(exc: BaseException) -> str:
    """A person's words for why a file operation failed ("the disk is full", "permission denied", …)."""
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return "the disk is full"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "permission denied"
        if exc.errno == errno.EROFS:
            return "the file system is read-only"
        if getattr(errno, "EDQUOT", None) is not None and exc.errno == errno.EDQUOT:
            return "the disk quota is exceeded"
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__


_reason = describe_os_error


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_output_path(path: str | os.PathLike, extensions: tuple[str, ...], what: str) -> Path:
    """Validate an output path before anything is written.

    Args:
        path: the output path.
        extensions: the extensions allowed (lower case).
        what: what is being written, for messages ("image", "movie").

    Returns:
        The path as a Path.

    Raises:
        UnsupportedFormatError: the extension is not one of ``extensions`` (they are listed).
        OutputWriteError: the folder does not exist, is not writable, or the path is a folder.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in extensions:
        raise UnsupportedFormatError(
            f"cannot write {what} {p}: {ext or '(no extension)'!r} is not supported; valid: {' '.join(extensions)}")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise OutputWriteError(f"cannot write {p}: the folder {folder} does not exist; create it first")
    if p.is_dir():
        raise OutputWriteError(f"cannot write {p}: a folder of that name exists")
    if not os.access(folder, os.W_OK):
        raise OutputWriteError(f"cannot write {p}: permission denied in the folder {folder}")
    return p


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Write through a temporary file that replaces ``path`` only when the block succeeds.

    Args:
        path: the final output path (its folder must exist).

    Yields:
        The temporary path to write to.

    Raises:
        OutputWriteError: the block or the rename failed (the temporary file is removed, ``path`` untouched).
        KeyboardInterrupt: re-raised after the clean-up.
    """
    final = Path(path)
    tmp = temp_path_for(final)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, final)
    except BaseException as exc:
        _remove_quietly(tmp)
        if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        if isinstance(exc, OutputWriteError):
            raise
        raise OutputWriteError(f"could not write {final}: {_reason(exc)}; nothing was written") from exc
    _fsync_folder(final.parent)


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()


# ---- still images ---------------------------------------------------------------------------------------------

def _as_frame(image: Frame | np.ndarray, channels: tuple[str, ...] | None) -> Frame:
    if isinstance(image, Frame):
        if channels is not None:
            return image.with_pixels(image.pixels, tuple(channels))
        return image
    if isinstance(image, np.ndarray):
        return Frame.from_array(image, 0, None if channels is None else tuple(channels))
    raise InvalidParameterError(f"write_image needs a Frame or a numpy array, got {type(image).__name__}")


def _picture_layout(frame: Frame, path: Path, allow_alpha: bool) -> tuple[np.ndarray, str]:
    """Pick the channels an 8/16-bit picture format stores: grey, RGB or RGBA (others dropped)."""
    names = frame.channels
    px = frame.pixels
    if all(c in names for c in ("R", "G", "B")):
        idx = [names.index(c) for c in ("R", "G", "B")]
        if allow_alpha and "A" in names:
            idx.append(names.index("A"))
    elif "Y" in names:
        idx = [names.index("Y")]
        if allow_alpha and "A" in names:  # grey + alpha: stored as RGBA (OpenCV has no grey-alpha writer)
            idx = [idx[0]] * 3 + [names.index("A")]
    else:
        raise UnsupportedFormatError(
            f"cannot write {path}: channels {', '.join(names)} have no picture (need R, G, B or Y); write EXR or "
            f"TIFF to keep arbitrary channels")
    picked = px[:, :, idx]
    layout = {1: "Y", 3: "RGB", 4: "RGBA"}[picked.shape[2]]
    return picked, layout


def _encode_cv2(frame: Frame, path: Path, ext: str, jpeg_quality: int, png_compression: int) -> bytes:
    import cv2

    dtype = frame.pixels.dtype
    if ext in (".jpg", ".jpeg", ".bmp") and dtype != np.uint8:
        raise InvalidParameterError(
            f"cannot write {path}: {ext} stores 8-bit pixels but the image is {dtype}; convert it (e.g. "
            f"to_display_rgb8) or write PNG/TIFF (16-bit) or EXR (float)")
    if dtype not in (np.uint8, np.uint16):
        raise InvalidParameterError(
            f"cannot write {path}: PNG stores 8- or 16-bit integers but the image is {dtype}; write EXR or TIFF "
            f"for float pixels, or convert with to_display_rgb8")
    picked, layout = _picture_layout(frame, path, allow_alpha=ext != ".jpg" and ext != ".jpeg")
    if layout == "RGB":
        picked = cv2.cvtColor(np.ascontiguousarray(picked), cv2.COLOR_RGB2BGR)
    elif layout == "RGBA":
        picked = cv2.cvtColor(np.ascontiguousarray(picked), cv2.COLOR_RGBA2BGRA)
    else:
        picked = np.ascontiguousarray(picked[:, :, 0])
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    elif ext == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    ok, buf = cv2.imencode(ext, picked, params)
    if not ok:
        raise OutputWriteError(f"could not encode {path} as {ext}")
    return buf.tobytes()


def _write_tiff(frame: Frame, tmp: Path, compression: str | None, tags: Mapping[str, Any] | None = None,
                premultiplied: bool = False) -> None:
    import tifffile

    px = frame.pixels
    names = frame.channels
    if names[:3] == ("R", "G", "B"):
        photometric, base = "rgb", 3
    else:
        photometric, base = "minisblack", 1
    alpha = "assocalpha" if premultiplied else "unassalpha"
    extras = [alpha if n == "A" else "unspecified" for n in names[base:]]
    data = px[:, :, 0] if px.shape[2] == 1 else px
    comp = None if compression in (None, "none") else "zlib"
    from .stillmeta import profile_for

    tifffile.imwrite(str(tmp), np.ascontiguousarray(data), photometric=photometric,
                     planarconfig="contig" if px.shape[2] > 1 else None,
                     extrasamples=extras or None, compression=comp, metadata=None,
                     iccprofile=profile_for(frame.icc_profile, base), **(tags or {}))


def _exr_header(frame: Frame, metadata: Mapping[str, Any] | None, compression: str | None) -> dict[str, Any]:
    import OpenEXR

    from .timecode import carry_timecode

    header: dict[str, Any] = {}
    carried = dict(frame.metadata)
    if metadata:
        carried.update(metadata)
    carried = carry_timecode(carried, ".exr")       # a DPX plate's timecode as the EXR's timeCode
    for key, value in carried.items():
        if key not in _EXR_STRUCTURE:
            _check_exr_attribute(key, value)
            header[key] = value
    if str(carried.get("type", "")).endswith("tiledimage") and "tiles" in carried:
        header["type"] = OpenEXR.tiledimage
        header["tiles"] = carried["tiles"]
    else:
        header["type"] = OpenEXR.scanlineimage
    if compression is not None:
        name = "NO_COMPRESSION" if compression == "none" else f"{compression.upper()}_COMPRESSION"
        header["compression"] = getattr(OpenEXR, name)
    elif "compression" not in header:
        header["compression"] = OpenEXR.ZIP_COMPRESSION
    dx0, dy0, dx1, dy1 = frame.data_window
    wx0, wy0, wx1, wy1 = frame.display_window
    header["dataWindow"] = ((dx0, dy0), (dx1, dy1))
    header["displayWindow"] = ((wx0, wy0), (wx1, wy1))
    return header


def _check_exr_attribute(key: Any, value: Any) -> None:
    """Refuse header attributes OpenEXR cannot store (it would fail mid-write or drop them silently)."""
    if not isinstance(key, str) or not key:
        raise InvalidParameterError(f"EXR header attribute names must be non-empty strings, got {key!r}")
    if isinstance(value, (str, bool, int, float, np.integer, np.floating, tuple, np.ndarray)):
        return
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return
    if type(value).__module__.split(".")[0] == "OpenEXR":
        return
    raise InvalidParameterError(
        f"EXR header attribute {key!r} has a {type(value).__name__} value, which EXR cannot store; valid: "
        f"string, list of strings, number, tuple/array of numbers, or a value read from another EXR")


def _exr_channels(frame: Frame, path: Path, pixel_type: str | None) -> dict[str, np.ndarray]:
    dtype = frame.pixels.dtype
    if dtype not in (np.float16, np.float32):
        raise InvalidParameterError(
            f"cannot write {path}: EXR stores half or float pixels but the image is {dtype}; convert it to "
            f"float16/float32 first, or write PNG/TIFF for integer pixels")
    if pixel_type is not None:
        types = [{"half": "float16", "float": "float32"}[pixel_type]] * len(frame.channels)
    elif frame.channel_dtypes:
        types = list(frame.channel_dtypes)
    else:
        types = [str(dtype)] * len(frame.channels)
    return {name: np.ascontiguousarray(frame.pixels[:, :, i].astype(types[i], copy=False))
            for i, name in enumerate(frame.channels)}


def write_image(path: str | os.PathLike, image: Frame | np.ndarray, *, channels: tuple[str, ...] | None = None,
                pixel_type: str | None = None, compression: str | None = None,
                metadata: Mapping[str, Any] | None = None, jpeg_quality: int = 95,
                png_compression: int = 3, provenance: Any = None, premultiplied: bool = False) -> Path:
    """Write one still image atomically.

    Formats by extension:

    * ``.png``: uint8 or uint16; grey, RGB or RGBA (grey+alpha is stored as RGBA; extra channels are dropped).
    * ``.jpg``/``.jpeg``: uint8; grey or RGB (alpha and extra channels are dropped).
    * ``.bmp``: uint8; grey, RGB or RGBA.
    * ``.tif``/``.tiff``: uint8, uint16, float16 or float32; every channel (RGB or grey, then extra samples; "A"
      marked as alpha).
    * ``.exr``: float16 (half) or float32 (float); every channel by name, the data and display windows and the
      frame's header attributes (``frame.metadata``, then ``metadata``) are written.

    Formats other than EXR have no data window: they store ``pixels`` (the frame's data window) as the image.

    Args:
        path: output file.
        image: a Frame, or an (H, W) / (H, W, C) array (channels named Y, YA, RGB, RGBA by C unless ``channels``).
        channels: channel names overriding the frame's / the default ones.
        pixel_type: EXR only: ``"half"`` or ``"float"`` to convert every channel; None keeps each channel's type.
        compression: EXR: one of :data:`EXR_COMPRESSIONS` (default: the frame's own, else zip); TIFF: ``"zlib"``
            (default) or ``"none"``.
        metadata: EXR only: extra header attributes (name -> value; strings at least), added to the frame's.
        jpeg_quality: JPEG quality 1-100.
        png_compression: PNG zlib level 0-9 (lossless at every level).
        provenance: an :class:`~ned_fx.provenance.EditRecord` (or its dict) to carry in the file's own
            metadata: EXR header attributes, PNG text chunks, JPEG XMP/COM segments, TIFF description, software
            and XMP tags (see :mod:`ned_fx.provenance.embed`); the pixels are the same as without it. BMP has no
            metadata and refuses it.
        premultiplied: the colour channels are premultiplied by A (a patch): TIFF marks A as associated alpha.
            EXR is premultiplied by convention; PNG has no such mark (its readers assume straight alpha: tell
            the host the clip's alpha is premultiplied).

    Returns:
        The output path.

    Raises:
        UnsupportedFormatError: unknown extension, or channels with no picture for an 8/16-bit format.
        InvalidParameterError: a pixel type the format cannot store, or an invalid option (provenance for BMP).
        ProvenanceError: ``provenance`` is not a valid record.
        OutputWriteError: the file could not be written (nothing is left behind; an existing file is unchanged).
    """
    p = check_output_path(path, IMAGE_EXTENSIONS, "image")
    ext = p.suffix.lower()
    frame = _as_frame(image, channels)
    if not isinstance(jpeg_quality, (int, np.integer)) or not 1 <= int(jpeg_quality) <= 100:
        raise InvalidParameterError(f"jpeg_quality must be a whole number 1-100, got {jpeg_quality!r}")
    if not isinstance(png_compression, (int, np.integer)) or not 0 <= int(png_compression) <= 9:
        raise InvalidParameterError(f"png_compression must be a whole number 0-9, got {png_compression!r}")
    if pixel_type is not None and pixel_type not in ("half", "float"):
        raise InvalidParameterError(f"pixel_type must be 'half' or 'float' (or None), got {pixel_type!r}")
    record = None
    if provenance is not None:
        from ..provenance.embed import FORMATS, as_record

        if ext not in FORMATS:
            raise InvalidParameterError(
                f"cannot write {p.name} with provenance: {ext} files have no metadata to carry it; valid: "
                f"{' '.join(e for e in FORMATS if e in IMAGE_EXTENSIONS)}")
        record = as_record(provenance)
    if ext == ".exr":
        if compression is not None and compression not in EXR_COMPRESSIONS:
            raise InvalidParameterError(
                f"EXR compression {compression!r} is not valid; valid: {', '.join(EXR_COMPRESSIONS)}")
        channel_data = _exr_channels(frame, p, pixel_type)
        header = _exr_header(frame, metadata, compression)
        if record is not None:
            from ..provenance.embed import exr_attributes

            header.update(exr_attributes(record, header))
        _write_exr_atomic(p, header, channel_data)
        return p
    if ext == ".dpx":                       # through OpenImageIO (ned_fx.media.dpx), header fields in metadata
        if pixel_type is not None or compression is not None:
            raise InvalidParameterError(f"pixel_type and compression do not apply to DPX ({p.name})")
        from .dpx import check_dpx_frame, write_dpx

        from .timecode import carry_timecode

        header = carry_timecode({**dict(frame.metadata), **dict(metadata or {})}, ".dpx")
        check_dpx_frame(frame, p, header.get("oiio:BitsPerSample"))      # before any file is made
        if record is not None:
            from ..provenance.embed import dpx_attributes

            header.update(dpx_attributes(record))
        with atomic_output(p) as tmp:
            write_dpx(tmp, frame, metadata=header)
            if record is not None:
                from .readers import read_provenance

                if read_provenance(tmp) != record:     # never deliver an edited frame that does not say so
                    raise OutputWriteError(f"could not write {p}: the DPX writer did not store the provenance "
                                           f"record (dpx:UserData); nothing was written")
        return p
    if pixel_type is not None or metadata:
        raise InvalidParameterError(f"pixel_type and metadata apply to EXR only, not to {p.name}")
    if ext in (".tif", ".tiff"):
        if compression is not None and compression not in TIFF_COMPRESSIONS:
            raise InvalidParameterError(
                f"TIFF compression {compression!r} is not valid; valid: {', '.join(TIFF_COMPRESSIONS)}")
        tags = None
        if record is not None:
            from ..provenance.embed import tiff_tags

            tags = tiff_tags(record)
        with atomic_output(p) as tmp:
            _write_tiff(frame, tmp, "zlib" if compression is None else compression, tags, premultiplied)
        return p
    if compression is not None:
        raise InvalidParameterError(f"compression applies to EXR and TIFF only, not to {p.name}")
    data = _encode_cv2(frame, p, ext, jpeg_quality, png_compression)
    if frame.icc_profile is not None and ext in (".png", ".jpg", ".jpeg"):
        from .stillmeta import profile_for, with_icc

        colours = 3 if frame.channels[:3] == ("R", "G", "B") else 1
        profile = profile_for(frame.icc_profile, colours)
        data = with_icc(data, profile) if profile is not None else data
    if frame.exif is not None and ext in (".png", ".jpg", ".jpeg"):
        from .. import __version__
        from .stillmeta import carried_exif, with_exif

        block = carried_exif(frame.exif, f"ned_fx {__version__}")
        data = with_exif(data, block) if block is not None else data
    if record is not None:
        from ..provenance.embed import jpeg_with_provenance, png_with_provenance

        data = png_with_provenance(data, record) if ext == ".png" else jpeg_with_provenance(data, record)
    with atomic_output(p) as tmp:
        _write_bytes(tmp, data)
    return p


def _write_exr_atomic(path: Path, header: dict[str, Any], channel_data: dict[str, np.ndarray]) -> None:
    import OpenEXR

    try:
        exr = OpenEXR.File(header, channel_data)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"cannot write {path}: the EXR header or channels are not valid ({exc}); header attributes must be "
            f"strings, numbers or values read from another EXR") from None
    with atomic_output(path) as tmp:
        exr.write(str(tmp))


# ---- movies ---------------------------------------------------------------------------------------------------

#: codec -> (pixel format, extensions it can be written in, encoder options)
MOVIE_CODECS: dict[str, tuple[str, tuple[str, ...], dict[str, str]]] = {
    "libx264": ("yuv420p", (".mp4", ".mov", ".mkv"), {"preset": "medium"}),
    "libx265": ("yuv420p", (".mp4", ".mov", ".mkv"), {"preset": "medium", "x265-params": "log-level=error",
                                                      "tag": "hvc1"}),
    "libvpx-vp9": ("yuv420p", (".webm", ".mkv", ".mp4"), {"b": "0", "row-mt": "1"}),
    "prores_ks": ("yuv422p10le", (".mov", ".mkv"), {"profile": "3"}),
    "prores_4444": ("yuva444p10le", (".mov", ".mkv"), {"profile": "4", "alpha_bits": "16"}),
    "dnxhr_hq": ("yuv422p", (".mov", ".mxf", ".mkv"), {"profile": "dnxhr_hq"}),
    "dnxhr_hqx": ("yuv422p10le", (".mov", ".mxf", ".mkv"), {"profile": "dnxhr_hqx"}),
    "dnxhr_444": ("yuv444p10le", (".mov", ".mxf", ".mkv"), {"profile": "dnxhr_444"}),
    "mpeg4": ("yuv420p", (".mp4", ".mov", ".mkv", ".avi"), {}),
}
#: containers that hold one kind of audio only (codec name prefix); the audio of a source in another is encoded
_AUDIO_ONLY = {".webm": ("opus", "vorbis", "libopus", "libvorbis"), ".mxf": ("pcm_",)}
#: what a source's audio is encoded to where the container cannot hold it as it is (AAC elsewhere)
_AUDIO_FALLBACK = {".webm": "libopus", ".mxf": "pcm_s16le"}
#: containers whose audio has one sample rate (Opus in WebM, PCM in MXF: 48 kHz)
_AUDIO_RATE = {".webm": 48000, ".mxf": 48000}
#: codecs that store more than 8 bits a component: :meth:`MovieWriter.write` keeps a uint16 frame's levels
DEEP_CODECS: tuple[str, ...] = tuple(c for c, (fmt, _, _) in MOVIE_CODECS.items() if "10" in fmt)
#: frames an HEVC movie in MP4/MOV holds back before encoding (:meth:`MovieWriter._release`)
_HEVC_HOLD = 6
#: codecs with a 10-bit form, used for a 10-bit source (``MovieWriter(deep=True)``: a phone's 10-bit HDR HEVC;
#: this FFmpeg's libvpx has no 10-bit VP9)
_DEEP_FORMS = {"libx265": "yuv420p10le"}
#: codec names that are a profile of another FFmpeg encoder
_ENCODERS = {"prores_4444": "prores_ks", "dnxhr_hq": "dnxhd", "dnxhr_hqx": "dnxhd", "dnxhr_444": "dnxhd"}
#: codecs that store an alpha channel (:meth:`MovieWriter.write` takes RGBA for them)
ALPHA_CODECS: tuple[str, ...] = ("prores_4444",)
#: codec -> the quality option and the value for ``crf``-style quality (lower = better)
_QUALITY_OPTION = {"libx264": "crf", "libx265": "crf", "libvpx-vp9": "crf", "mpeg4": "qscale"}


def _rate_fraction(fps: float | Fraction) -> Fraction:
    if isinstance(fps, Fraction):
        return fps
    value = float(fps)
    for base in (24, 30, 48, 60, 120):  # NTSC rates: 23.976 -> 24000/1001 ...
        if abs(value - base * 1000 / 1001) < 5e-3:
            return Fraction(base * 1000, 1001)
    return Fraction(value).limit_denominator(1001)


def _cleanup_temp(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def deep_pixels(frame: Any, movie: "MovieWriter") -> np.ndarray | None:
    """A frame's own uint16 RGB pixels when ``movie`` keeps more than 8 bits (:attr:`MovieWriter.deep`: a 10-bit
    plate's levels, not cut to 8 bits), else None (write its 8-bit display picture)."""
    px = frame.pixels
    if movie.deep and px.dtype == np.uint16 and tuple(frame.channels) == ("R", "G", "B"):
        return px
    return None


#: Movie containers that hold a display rotation (a display matrix) that FFmpeg writes and reads back.
ROTATION_EXTENSIONS: tuple[str, ...] = (".mp4", ".mov", ".m4v", ".mkv", ".webm")


def _video_frame(arr: np.ndarray, fmt: str, held: list):
    """An ``av`` VideoFrame of ``arr`` (RGB/RGBA, ``fmt`` its pixel format) in a buffer the writer keeps for the
    movie (``held``: ``[buffer]``, made on the first frame and again when the frame's size changes): the frame is
    copied into it and wrapped without another copy. ``from_ndarray`` put every frame into a new buffer, and a
    new 6 MB buffer a 1080p frame costs its page faults on top of the copy (with the copy, ~3x the swscale
    conversion that follows). The kept buffer has spare bytes past the last row (swscale's vector loads may read a
    little beyond a row's end). The encoder never holds it: the conversion makes a new frame, and FFmpeg copies a
    frame that needs none where an encoder keeps it (the buffer is not reference-counted). ``from_ndarray`` where
    ``av`` has no ``from_numpy_buffer``."""
    import av

    if not hasattr(av.VideoFrame, "from_numpy_buffer"):
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt)
    if not held or held[0].shape != arr.shape or held[0].dtype != arr.dtype:
        spare = np.empty(arr.nbytes + 256, np.uint8)
        held[:] = [spare[:arr.nbytes].view(arr.dtype).reshape(arr.shape)]
    np.copyto(held[0], arr)
    return av.VideoFrame.from_numpy_buffer(held[0], format=fmt)


class MovieWriter:
    """Write RGB frames to a movie, atomically: a hidden temporary file is renamed at a successful close.

    Odd widths/heights are padded to even (edge pixels repeated) for 4:2:0/4:2:2 encoders. Colours are encoded
    with the Rec.709 matrix, limited range, and tagged so, which is what :func:`open_media` decodes with.

    Use as a context manager: an exception inside the ``with`` block deletes the temporary file and is re-raised.

    Args:
        path: output file (.mp4 .mov .mkv .webm .avi, as the codec allows).
        fps: frame rate (float, e.g. 25 or 23.976, or an exact Fraction such as 30000/1001).
        width: frame width of the RGB frames given to :meth:`write`.
        height: frame height.
        codec: one of :data:`MOVIE_CODECS`: ``"libx264"`` (default), ``"libx265"``, ``"libvpx-vp9"``,
            ``"prores_ks"`` (ProRes 422 HQ, .mov), ``"prores_4444"`` (ProRes 4444 with alpha: :meth:`write` takes
            RGBA), ``"dnxhr_hq"`` (8-bit 4:2:2), ``"dnxhr_hqx"`` (10-bit 4:2:2), ``"dnxhr_444"`` (10-bit 4:4:4;
            .mov/.mxf) or ``"mpeg4"``.
        crf: quality, lower is better (x264/x265/vp9 CRF, mpeg4 qscale); 18 by default (visually lossless for
            x264). Ignored by ProRes.
        options: extra encoder options (strings), e.g. ``{"preset": "slow"}``.
        audio_from: a movie whose audio tracks (every one) are copied into the output unchanged (no re-encode),
            e.g. the source plate of an edit; where the container cannot hold it as it is (AAC in WebM or MXF, 44.1 kHz
            in MXF) it is encoded to what the container holds (Opus; 48 kHz PCM); None: no audio.
        audio_range: ``(start, end)`` seconds of that audio to keep (an edit of a frame range); the kept part
            starts at 0 in the output. None: all of it.
        provenance: an :class:`~ned_fx.provenance.EditRecord` (or its dict) carried in the container's tags
            (``comment``/``description``: the sentence; ``ned_fx_provenance``: the JSON record; MP4/MOV are written
            with ``movflags=+use_metadata_tags`` so the custom tag survives; AVI keeps it in its INFO subject).
        timecode: the first frame's timecode (``"HH:MM:SS:FF"``, ``;`` before the frames for drop-frame): a
            QuickTime/MXF timecode track (and the ``timecode`` tag elsewhere); None: none.
        reel_name: the source's reel (tape) name, kept in the .mov timecode track (``reel_name``); needs
            ``timecode``.
        rotation: the display rotation of the source movie (:attr:`~.readers.MovieSource.rotation`: 0, 90, 180 or
            270 degrees counter-clockwise; a phone's portrait video). The frames given to :meth:`write` are
            upright, as its reader gave them; they are encoded turned back to the source's coded orientation and
            the movie is tagged with the rotation, so a player or a host shows it as it showed the source. A
            container that cannot hold the tag (:data:`ROTATION_EXTENSIONS` lists those that can) gets the upright
            pictures untagged: what a player showed.
        pixel_aspect: the pixel aspect ratio to tag the movie with (the source's
            :attr:`~.readers.MovieSource.pixel_aspect`: an anamorphic plate's pixels are not square), so it is shown
            as wide as the source; the pixels are not resampled. None or 1: square pixels. WebM and MXF do not
            hold the tag.
        time_base: the source movie's time base, for frames written with their own times (:meth:`write`'s
            ``time``: a variable-frame-rate source's, :meth:`~.readers.MovieSource.frame_times`); None: frame ``n``
            at ``n / fps``.
        colour: the source movie's colour tags (:attr:`~.readers.MovieSource.colour`: matrix, primaries, transfer
            as FFmpeg numbers them): the frames are encoded with that matrix and tagged so (a phone's BT.2020 HLG
            video stays BT.2020 HLG); None: BT.709.
        field_order: the source's field order (:attr:`~.readers.MovieSource.field_order`: ``"tt"``, ``"bb"``,
            ``"tb"``, ``"bt"``) for frames that hold two woven fields: the movie is tagged so, and H.264 is coded
            interlaced (x264's field coding, top or bottom field first), so a host that conforms it into an
            interlaced timeline treats it as it treated the source; None: progressive.
        deep: the frames are 10-bit or more (uint16 from a 10-bit source): HEVC is written in its 10-bit form
            (ProRes and DNxHR HQX/444 are 10-bit anyway: :data:`DEEP_CODECS`); :attr:`deep` says
            whether the movie keeps more than 8 bits.

    Raises:
        InvalidParameterError: fps, size, codec or crf out of range, or a codec that the container cannot hold.
        UnsupportedFormatError: unknown extension.
        OutputWriteError: the temporary file cannot be created.
        ProvenanceError: ``provenance`` is not a valid record.
    """

    def __init__(self, path: str | os.PathLike, fps: float | Fraction, width: int, height: int,
                 codec: str = "libx264", crf: int = 18, options: Mapping[str, str] | None = None,
                 audio_from: str | os.PathLike | None = None, audio_range: tuple[float, float] | None = None,
                 provenance: Any = None, timecode: str | None = None, reel_name: str | None = None,
                 rotation: int = 0, pixel_aspect: Fraction | float | None = None,
                 time_base: Fraction | None = None, colour: tuple[int, int, int] | None = None,
                 deep: bool = False, field_order: str | None = None):
        import av

        from .timecode import parse_timecode

        self.path = check_output_path(path, MOVIE_EXTENSIONS, "movie")
        if codec not in MOVIE_CODECS:
            raise InvalidParameterError(f"movie codec {codec!r} is not supported; valid: {', '.join(MOVIE_CODECS)}")
        pix_fmt, extensions, defaults = MOVIE_CODECS[codec]
        pix_fmt = _DEEP_FORMS.get(codec, pix_fmt) if deep else pix_fmt
        #: whether the movie keeps more than 8 bits a component (:meth:`write` then keeps a uint16 frame's levels)
        self.deep = "10" in pix_fmt
        if self.path.suffix.lower() not in extensions:
            raise InvalidParameterError(
                f"codec {codec} cannot be written to a {self.path.suffix} file; use {' or '.join(extensions)}")
        encoder = _ENCODERS.get(codec, codec)
        if encoder not in av.codecs_available:
            here = [c for c in MOVIE_CODECS if _ENCODERS.get(c, c) in av.codecs_available]
            raise InvalidParameterError(f"codec {codec} is not in this FFmpeg build; valid here: {', '.join(here)}")
        if timecode is not None:
            parse_timecode(timecode)         # a malformed timecode is refused before any file is made
        if reel_name is not None and (timecode is None or not str(reel_name).strip() or len(str(reel_name)) > 255):
            raise InvalidParameterError(f"reel name {reel_name!r}: give a non-empty name (up to 255 characters) "
                                        f"together with a timecode")
        try:
            rate = _rate_fraction(fps)
        except (TypeError, ValueError, OverflowError):
            raise InvalidParameterError(f"fps must be a number, got {fps!r}") from None
        if not 0 < rate <= 1000:
            raise InvalidParameterError(f"fps must be more than 0 and at most 1000, got {fps}")
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, (int, np.integer)) or not 1 <= int(value) <= 16384:
                raise InvalidParameterError(f"movie {name} must be a whole number 1-16384, got {value!r}")
        if not isinstance(crf, (int, np.integer)) or not 0 <= int(crf) <= 63:
            raise InvalidParameterError(f"crf must be a whole number 0-63, got {crf!r}")
        from .readers import FIELD_ORDERS

        if field_order is not None and field_order not in FIELD_ORDERS.values():
            raise InvalidParameterError(f"field order must be one of {', '.join(FIELD_ORDERS.values())} or None, got "
                                        f"{field_order!r}")
        #: the field order the movie is tagged (and, for H.264, coded) with; None: progressive
        self.field_order = field_order
        if not isinstance(rotation, (int, np.integer)) or int(rotation) % 90:
            raise InvalidParameterError(f"rotation must be a multiple of 90 degrees, got {rotation!r}")
        try:
            aspect = Fraction(1) if pixel_aspect is None else Fraction(pixel_aspect).limit_denominator(65535)
        except (TypeError, ValueError, OverflowError):
            aspect = Fraction(0)
        if not 0 < aspect <= 100:
            raise InvalidParameterError(f"pixel aspect must be a number more than 0, got {pixel_aspect!r}")
        self.pixel_aspect = aspect
        #: the display rotation the movie is tagged with (0: none; the frames are encoded as given)
        self.rotation = int(rotation) % 360 if self.path.suffix.lower() in ROTATION_EXTENSIONS else 0
        self.fps = float(rate)
        self.rate = rate
        self.width, self.height = int(width), int(height)
        self.codec = codec
        self.alpha = codec in ALPHA_CODECS
        self.timecode, self.reel_name = timecode, reel_name
        self.frames_written = 0
        self._last_pts = -1
        # HEVC into MP4/MOV holds its first frames back until it knows the movie is not a few frames long
        self._held = [] if codec == "libx265" and self.path.suffix.lower() in (".mp4", ".mov", ".m4v") else None
        coded = (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)
        self._enc_width = coded[0] + coded[0] % 2
        self._enc_height = coded[1] + coded[1] % 2
        self._tmp = temp_path_for(self.path)
        self._done = False
        self._reformatter = None
        self._rgb_buffer: list = []          # the frame buffer kept for the movie (see _video_frame)
        # the temporary file goes away even if the writer is dropped without close()
        self._finalizer = weakref.finalize(self, _cleanup_temp, str(self._tmp))
        opts = dict(defaults)
        if codec in _QUALITY_OPTION:
            opts[_QUALITY_OPTION[codec]] = str(int(crf) if codec != "mpeg4" else max(1, min(31, int(crf) // 6 + 1)))
        if field_order is not None and encoder == "libx264":        # field coding, the source's field first
            first = "tff=1" if field_order in ("tt", "tb") else "bff=1"
            opts["x264-params"] = ":".join(p for p in (opts.get("x264-params", ""), f"interlaced=1:{first}") if p)
        if options:
            opts.update({str(k): str(v) for k, v in options.items()})
        container_opts = {"movflags": "+faststart"} if self.path.suffix.lower() in (".mp4", ".mov") else {}
        tags: dict[str, str] = {}
        if provenance is not None:
            from ..provenance.embed import as_record, movie_metadata

            tags, extra = movie_metadata(as_record(provenance), self.path.suffix)
            if "movflags" in extra:
                container_opts["movflags"] = container_opts.get("movflags", "") + extra["movflags"]
        self._container = None
        try:
            self._container = av.open(str(self._tmp), mode="w", options=container_opts)
            if tags:
                self._container.metadata.update(tags)
            if timecode is not None and self.path.suffix.lower() not in (".mov", ".mp4", ".mxf"):
                self._container.metadata["timecode"] = timecode
            stream = self._container.add_stream(encoder, rate=rate)
            if timecode is not None:
                stream.metadata["timecode"] = timecode          # mov/mp4/mxf: a timecode track
                if reel_name is not None:
                    stream.metadata["reel_name"] = str(reel_name)
            stream.width = self._enc_width
            stream.height = self._enc_height
            if self.rotation:
                stream.set_display_rotation(self.rotation)
            stream.pix_fmt = pix_fmt
            cc = stream.codec_context
            cc.time_base = Fraction(time_base) if time_base else Fraction(1, 1) / rate
            from .readers import swscale_matrix

            # the source's matrix where swscale has it (else BT.709, as the frames were read: an unnamed one as
            # players take it), and its primaries and transfer whatever its matrix: a BT.2020 HLG clip that names
            # no matrix stays HLG
            primaries, trc = (colour[1], colour[2]) if colour else (1, 1)
            space = colour[0] if colour and swscale_matrix(int(colour[0])) is not None else 1
            cc.colorspace = int(space)                       # AVCOL_SPC_BT709 unless the source says
            cc.color_primaries = int(primaries) if primaries not in (0, 2) else 1
            cc.color_trc = int(trc) if trc not in (0, 2) else 1
            cc.color_range = 1       # AVCOL_RANGE_MPEG (limited)
            self._matrix = swscale_matrix(int(space))
            if self.pixel_aspect != 1:
                cc.sample_aspect_ratio = self.pixel_aspect
            if field_order is not None:
                cc.field_order = {v: k for k, v in FIELD_ORDERS.items()}[field_order]
            stream.options = opts
            self._stream = stream
            self._audio = self._open_audio(audio_from, audio_range)
        except BaseException as exc:
            self._abort()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise OutputWriteError(f"could not start writing {self.path}: {_reason(exc)}") from exc

    # -----------------------------------------------------------------------------------------------------------
    def write(self, rgb8: np.ndarray, time: Fraction | float | None = None) -> None:
        """Encode one frame.

        Args:
            rgb8: (height, width, 3) uint8 RGB array (e.g. from :func:`to_display_rgb8`), or uint16 RGB (0-65535:
                a 10-bit plate's frames, kept deep for a 10-bit codec: :data:`DEEP_CODECS`); for an alpha codec
                (:data:`ALPHA_CODECS`) also (height, width, 4) uint8 or uint16 RGBA (alpha as given: a patch's
                premultiplied colour stays premultiplied).
            time: when the frame shows, in seconds from the movie's start (a variable-frame-rate source's own
                times; give ``time_base`` at construction); None: right after the previous frame at ``fps``.

        Raises:
            InvalidParameterError: wrong shape or dtype, or the writer is closed.
            OutputWriteError: encoding or writing failed (the temporary file is removed).
        """
        if self._done:
            raise InvalidParameterError(f"{self.path}: the movie writer is already closed")
        arr = np.asarray(rgb8)
        rgba = self.alpha and arr.shape == (self.height, self.width, 4) and arr.dtype in (np.uint8, np.uint16)
        if not rgba and (arr.dtype not in (np.uint8, np.uint16) or arr.shape != (self.height, self.width, 3)):
            also = f" or ({self.height}, {self.width}, 4) uint8/uint16 RGBA" if self.alpha else ""
            raise InvalidParameterError(
                f"{self.path}: frames must be ({self.height}, {self.width}, 3) uint8/uint16 RGB{also}, got "
                f"{arr.shape} {arr.dtype}")
        try:
            self._encode(arr, time)
        except BaseException as exc:
            self._abort()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise OutputWriteError(f"could not write frame {self.frames_written} to {self.path}: {_reason(exc)}; "
                                   f"nothing was written") from exc
        self.frames_written += 1

    def _encode(self, arr: np.ndarray, time: Fraction | float | None = None) -> None:
        from av.video.reformatter import ColorRange

        if self.rotation:           # back to the source's coded orientation (its reader turned it upright)
            arr = np.rot90(arr, -(self.rotation // 90))
        pad_y, pad_x = self._enc_height - arr.shape[0], self._enc_width - arr.shape[1]
        if pad_y or pad_x:
            arr = np.pad(arr, ((0, pad_y), (0, pad_x), (0, 0)), mode="edge")
        if arr.shape[2] == 3 and self.alpha:          # opaque
            full = np.iinfo(arr.dtype).max
            arr = np.concatenate([arr, np.full(arr.shape[:2] + (1,), full, arr.dtype)], axis=2)
        fmt = {(3, "uint8"): "rgb24", (3, "uint16"): "rgb48le", (4, "uint8"): "rgba",
               (4, "uint16"): "rgba64le"}[arr.shape[2], str(arr.dtype)]
        frame = _video_frame(arr, fmt, self._rgb_buffer)
        if self._reformatter is None:       # one swscale context for the movie (a frame's own is set up per call:
            from av.video.reformatter import VideoReformatter      # 1.2 -> 0.5 ms a 512² frame, the same pixels)

            self._reformatter = VideoReformatter()
        frame = self._reformatter.reformat(frame, format=self._stream.pix_fmt, src_colorspace=self._matrix,
                                           dst_colorspace=self._matrix, src_color_range=ColorRange.JPEG,
                                           dst_color_range=ColorRange.MPEG)
        tb = self._stream.codec_context.time_base
        pts = self._last_pts + 1 if time is None else int(round(Fraction(time) / tb))
        self._last_pts = pts = max(pts, self._last_pts + 1)        # never two frames at one time
        frame.pts = pts
        frame.time_base = tb
        if self._held is not None:          # HEVC into MP4/MOV: the first frames wait (see _release)
            self._held.append(frame)
            if len(self._held) < _HEVC_HOLD:
                return
            self._release(short=False)
            return
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def _release(self, short: bool) -> None:
        """Encode the held first frames of an HEVC movie in MP4/MOV. FFmpeg's MP4 muxer fails now and then at the
        end of a movie of a few HEVC frames with B-frames ("not yet implemented in FFmpeg"; 2-3 frames failed 7-15
        times in 20 here, 6 or more never): a movie that ends before :data:`_HEVC_HOLD` frames (``short``) is
        encoded without B-frames, which it does not need."""
        held, self._held = self._held, None
        if short:
            opts = dict(self._stream.options)
            params = opts.get("x265-params", "")
            opts["x265-params"] = f"{params}:bframes=0" if params else "bframes=0"
            self._stream.options = opts
        for frame in held:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)

    def close(self) -> Path:
        """Flush the encoder, finish the file and rename it onto :attr:`path`.

        Returns:
            The output path.

        Raises:
            OutputWriteError: no frame was written, or finishing the file failed (the temporary file is removed;
                an existing output is left unchanged).
        """
        if self._done:
            return self.path
        try:
            if self.frames_written == 0:
                raise OutputWriteError(f"no frames were written to {self.path}; nothing was saved")
            if self._held is not None:
                self._release(short=True)
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._copy_audio()
            self._container.close()
            self._container = None
            _fsync(self._tmp)
            os.replace(self._tmp, self.path)
        except BaseException as exc:
            self._abort()
            if isinstance(exc, (KeyboardInterrupt, SystemExit, OutputWriteError)):
                raise
            raise OutputWriteError(f"could not finish {self.path}: {_reason(exc)}; nothing was written") from exc
        self._done = True
        self._finalizer.detach()
        _fsync_folder(self.path.parent)
        return self.path

    def _open_audio(self, source: str | os.PathLike | None, span: tuple[float, float] | None):
        """Add one audio stream for every audio track of ``source`` (before any packet is written: a master's
        stereo mix and its stems, a camera's channels all come along), each copied as it is or, where the container
        cannot hold it as it is, encoded to what it holds."""
        if source is None:
            return None
        import av

        try:
            src = av.open(str(source))
        except Exception as exc:
            raise OutputWriteError(f"could not read the audio of {source}: {_reason(exc)}") from exc
        try:
            tracks = [(st, *self._audio_stream(st)) for st in src.streams if st.type == "audio"]
        except BaseException:
            src.close()
            raise
        if not tracks:
            src.close()
            return None
        return src, tracks, span

    def _audio_stream(self, track) -> tuple[Any, bool]:
        """``(output stream, encoded)`` for one source audio track: its copy, or a stream of what this container
        holds where it cannot hold the track as it is (AAC in WebM or MXF, 44.1 kHz in MXF)."""
        ext = self.path.suffix.lower()
        cc = track.codec_context
        name, rate = cc.name, cc.sample_rate or 48000
        if not (ext in _AUDIO_ONLY and not name.startswith(_AUDIO_ONLY[ext])) and _AUDIO_RATE.get(ext, rate) == rate:
            try:
                return self._container.add_stream_from_template(track), False
            except ValueError:          # FFmpeg says this container cannot hold the codec
                pass
        layout = cc.layout.name if cc.layout.nb_channels <= 2 else "stereo"
        return self._container.add_stream(_AUDIO_FALLBACK.get(ext, "aac"), rate=_AUDIO_RATE.get(ext, rate),
                                          layout=layout), True

    def _copy_audio(self) -> None:
        """Every audio track's ``span`` seconds (from 0 in the output): packets copied, or decoded and encoded."""
        if self._audio is None:
            return
        src, tracks, span = self._audio
        try:
            route = {st.index: (st, out, encode) for st, out, encode in tracks}
            for packet in src.demux(*[st for st, _, _ in tracks]):
                st, out, encode = route[packet.stream.index]
                if encode:
                    for frame in packet.decode():           # the flush packet at the end drains the decoder
                        self._encode_audio(frame, out, span)
                    continue
                if packet.dts is None or packet.pts is None:
                    continue
                if span is not None:
                    tb = st.time_base
                    start, end = int(round(span[0] / tb)), int(round(span[1] / tb))
                    if packet.pts < start or packet.pts >= end:
                        continue
                    packet.pts -= start
                    packet.dts -= start
                packet.stream = out
                self._container.mux(packet)
            for _, out, encode in tracks:
                if encode:
                    for packet in out.encode(None):
                        self._container.mux(packet)
        finally:
            src.close()
            self._audio = None

    def _encode_audio(self, frame, out, span) -> None:
        """One decoded audio frame of the source into ``out`` (an encoded track), if it lies in ``span`` seconds
        (moved to start at 0)."""
        if frame.pts is None or frame.time_base is None:
            return
        t = float(frame.pts * frame.time_base)
        if span is not None:
            if t < span[0] or t >= span[1]:
                return
            t -= span[0]
        rate = out.codec_context.sample_rate
        frame.pts, frame.time_base = int(round(t * rate)), Fraction(1, rate)
        for packet in out.encode(frame):
            self._container.mux(packet)

    def abort(self) -> None:
        """Stop without saving: the temporary file is removed and :attr:`path` is left as it was."""
        self._abort()

    def _abort(self) -> None:
        self._done = True
        audio, self._audio = getattr(self, "_audio", None), None
        if audio is not None:
            with contextlib.suppress(Exception):
                audio[0].close()
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        _remove_quietly(self._tmp)
        self._finalizer.detach()

    def __enter__(self) -> "MovieWriter":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._abort()
        else:
            self.close()


# ---- safety -----------------------------------------------------------------------------------------------------

def _norm(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    try:
        return p.resolve()
    except OSError:
        return Path(os.path.abspath(p))


def _same_file(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _pattern_collides(pattern: Path, other: Path) -> bool:
    """Whether a concrete file or another pattern names a file of ``pattern``."""
    seq = parse_sequence_pattern(pattern)
    if is_sequence_pattern(other):
        oth = parse_sequence_pattern(other)
        return _same_folder(seq.folder, oth.folder) and seq.prefix == oth.prefix and seq.suffix == oth.suffix
    if not _same_folder(seq.folder, other.parent):
        return False
    loose = re.compile(re.escape(seq.prefix) + r"-?\d+" + re.escape(seq.suffix) + r"\Z")
    return loose.match(other.name) is not None


def _same_folder(a: Path, b: Path) -> bool:
    return _same_file(_norm(a), _norm(b))


def ensure_not_input(out_path: str | os.PathLike, in_paths: "list[str | os.PathLike] | tuple[str | os.PathLike, ...]"
                     ) -> None:
    """Refuse an output path that would overwrite one of the inputs.

    Sequence patterns are compared as the files they name (``out.####.exr`` collides with ``out.1001.exr`` and with
    ``out.%04d.exr`` in the same folder).

    Args:
        out_path: the output file or sequence pattern.
        in_paths: input files or sequence patterns.

    Raises:
        InvalidParameterError: the output is one of the inputs (the message names both).
    """
    out = _norm(out_path)
    for given in in_paths:
        inp = _norm(given)
        if is_sequence_pattern(out) and not out.exists():
            clash = _pattern_collides(out, inp)
        elif is_sequence_pattern(inp) and not inp.exists():
            clash = _pattern_collides(inp, out)
        else:
            clash = _same_file(out, inp)
        if clash:
            raise InvalidParameterError(
                f"the output {out_path} would overwrite the input {given}; choose another output path")
