"""Reading frames: single images (OpenCV, tifffile, OpenEXR), image sequences and movies (PyAV).

:func:`open_media` is the one entry point; it returns a :class:`MediaSource`. Libraries are imported inside the
functions that use them, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import (InputNotFoundError, InvalidParameterError, NedFxError, UnreadableMediaError,
                      UnsupportedFormatError)
from .frames import PIXEL_DTYPES, Frame, FrameRange, describe_numbers, parse_frame_range, window_size
from .paths import (IMAGE_EXTENSIONS, SequencePattern, find_sequence_frames, is_sequence_pattern, media_kind_for,
                    parse_sequence_pattern)

#: EXR channels that come first, in this order, when present; every other channel follows in file order.
_EXR_LEADING = ("R", "G", "B", "Y", "A")
#: How far ahead (frames) random access keeps decoding instead of seeking.
_READ_AHEAD = 64


def _where(path: Path | str, number: int | None) -> str:
    return f"{path}" if number is None else f"{path} (frame {number})"


# ---- single images ------------------------------------------------------------------------------------------

def _read_bytes(path: Path, number: int | None) -> bytes:
    """Whole file as bytes, with file-system failures turned into named errors."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputNotFoundError(f"{_where(path, number)}: the file does not exist") from None
    except IsADirectoryError:
        raise UnsupportedFormatError(f"{path} is a folder, not an image file") from None
    except PermissionError:
        raise UnreadableMediaError(f"{_where(path, number)}: permission denied when reading the file") from None
    except OSError as exc:
        raise UnreadableMediaError(f"{_where(path, number)}: cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise UnreadableMediaError(f"{_where(path, number)}: the file is empty (0 bytes)")
    return data


def _require_file(path: Path, number: int | None) -> None:
    if not path.exists():
        raise InputNotFoundError(f"{_where(path, number)}: the file does not exist")
    if path.is_dir():
        raise UnsupportedFormatError(f"{path} is a folder, not an image file")
    if not os.access(path, os.R_OK):
        raise UnreadableMediaError(f"{_where(path, number)}: permission denied when reading the file")
    if path.stat().st_size == 0:
        raise UnreadableMediaError(f"{_where(path, number)}: the file is empty (0 bytes)")


@contextlib.contextmanager
def _quiet_cv2(cv2: Any) -> Iterator[None]:
    """Silence OpenCV's own warnings while decoding (we raise a clear error instead)."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


def _frame_from_cv2(img: np.ndarray, path: Path, number: int | None) -> Frame:
    """Turn OpenCV's (H, W[, C]) BGR(A) array into an RGB(A) Frame."""
    import cv2

    if img.dtype not in PIXEL_DTYPES:
        raise UnsupportedFormatError(
            f"{_where(path, number)}: pixels of type {img.dtype} are not supported; valid: 8- or 16-bit integer, "
            f"16- or 32-bit float")
    if img.ndim == 2:
        img = img[:, :, None]
    channels_count = img.shape[2]
    if channels_count == 1:
        names: tuple[str, ...] = ("Y",)
    elif channels_count == 2:
        names = ("Y", "A")
    elif channels_count == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        names = ("R", "G", "B")
    elif channels_count == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
        names = ("R", "G", "B", "A")
    else:
        raise UnsupportedFormatError(f"{_where(path, number)}: {channels_count} channels are not supported")
    return Frame(number=0 if number is None else number, pixels=np.ascontiguousarray(img), channels=names)


def _read_cv2(path: Path, number: int | None) -> Frame:
    """PNG, JPEG, BMP (and TIFF layouts tifffile leaves to OpenCV) through ``cv2.imdecode``; a JPEG or PNG upright
    as its EXIF orientation says (:func:`upright`), with its ICC profile and EXIF block."""
    import cv2

    data = _read_bytes(path, number)
    with _quiet_cv2(cv2):
        try:
            img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error:
            img = None
    if img is None:
        kind = path.suffix.lower().lstrip(".").upper() or "image"
        raise UnreadableMediaError(
            f"{_where(path, number)}: cannot be decoded as {kind}; the file is corrupt, truncated or not really "
            f"a {kind} file")
    from .stillmeta import exif_block, exif_orientation, icc_profile, profile_for

    exif = exif_block(data)
    frame = _frame_from_cv2(upright(img, exif_orientation(exif)), path, number)
    profile = profile_for(icc_profile(data), len([c for c in frame.channels if c != "A"]))
    return replace(frame, icc_profile=profile, exif=exif) if profile is not None or exif is not None else frame


def upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """A still's pixels (H x W [x C]) as a viewer shows them, given its EXIF/TIFF orientation (1: as stored; 2-8:
    mirrored and/or turned, as a phone or camera tags a picture taken sideways). The edit and its output are
    upright: the output is written without an orientation tag and shows as the input does."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.swapaxes(0, 1)
    if orientation == 6:
        return pixels.swapaxes(0, 1)[:, ::-1]
    if orientation == 7:
        return pixels.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return pixels.swapaxes(0, 1)[::-1]
    return pixels


def _read_tiff(path: Path, number: int | None) -> Frame:
    """TIFF through tifffile (8/16-bit, half and float, extra samples); other layouts fall back to OpenCV."""
    import tifffile

    _require_file(path, number)
    try:
        with tifffile.TiffFile(str(path)) as tif:
            page = tif.pages[0]
            photometric = int(page.photometric)
            axes = page.axes
            extras = tuple(int(e) for e in (page.extrasamples or ()))
            arr = page.asarray()
            orientation = page.tags.get(274)            # TIFF's Orientation, as EXIF's
            orientation = int(orientation.value) if orientation is not None else 1
            profile = page.tags.get(34675)              # InterColorProfile: the ICC profile
            profile = bytes(profile.value) if profile is not None else None
    except (KeyError, NotImplementedError, ImportError):
        # compression or layout tifffile cannot decode without extra codecs: let OpenCV try
        return _read_cv2(path, number)
    except Exception as exc:  # tifffile raises TiffFileError/ValueError/struct.error on broken files
        raise UnreadableMediaError(
            f"{_where(path, number)}: cannot be decoded as TIFF ({exc}); the file is corrupt or truncated") from None
    rgb, grey = int(tifffile.PHOTOMETRIC.RGB), int(tifffile.PHOTOMETRIC.MINISBLACK)
    if photometric not in (rgb, grey) or arr.dtype == np.bool_:
        return _read_cv2(path, number)  # palette, bilevel, YCbCr, CMYK ...: OpenCV converts to RGB/grey
    if arr.dtype not in PIXEL_DTYPES:
        raise UnsupportedFormatError(
            f"{_where(path, number)}: TIFF pixels of type {arr.dtype} are not supported; valid: 8- or 16-bit "
            f"unsigned integer, 16- or 32-bit float")
    if axes.startswith("S") and arr.ndim == 3:
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise UnsupportedFormatError(f"{_where(path, number)}: TIFF layout {axes!r} is not supported (need one "
                                     f"2-D picture per page)")
    arr = upright(arr, orientation if 1 <= orientation <= 8 else 1)
    base: tuple[str, ...] = ("R", "G", "B") if photometric == rgb else ("Y",)
    names = list(base[: arr.shape[2]])
    alpha_codes = (int(tifffile.EXTRASAMPLE.ASSOCALPHA), int(tifffile.EXTRASAMPLE.UNASSALPHA))
    for i in range(arr.shape[2] - len(names)):
        code = extras[i] if i < len(extras) else 0
        names.append("A" if code in alpha_codes and "A" not in names else f"extra{i + 1}")
    from .stillmeta import profile_for

    return Frame(number=0 if number is None else number, pixels=np.ascontiguousarray(arr), channels=tuple(names),
                 icc_profile=profile_for(profile, len(base)))


def _exr_window(value: Any) -> tuple[int, int, int, int]:
    lo, hi = value
    return (int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1]))


def _open_exr(path: Path, number: int | None, header_only: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and channels (name -> OpenEXR.Channel) of an EXR's first part."""
    import OpenEXR

    _require_file(path, number)
    if not OpenEXR.isOpenExrFile(str(path)):
        raise UnreadableMediaError(f"{_where(path, number)}: not an OpenEXR file (its header is not an EXR header)")
    try:
        exr = OpenEXR.File(str(path), separate_channels=True, header_only=header_only)
        # a file whose pixels fail to decode loads with no parts (the library only prints a warning)
        if not exr.parts:
            raise ValueError("its pixel data could not be read")
        header = dict(exr.header())
        channels = {} if header_only else dict(exr.channels())
    except Exception as exc:
        raise UnreadableMediaError(
            f"{_where(path, number)}: cannot be decoded as OpenEXR ({exc}); the file is corrupt or truncated") \
            from None
    return header, channels


def _read_exr(path: Path, number: int | None) -> Frame:
    """OpenEXR, first part: half stays float16, float stays float32; R,G,B,(Y),A first, then other channels."""
    header, channels = _open_exr(path, number, header_only=False)
    storage = str(header.get("type", ""))
    if "deep" in storage:
        raise UnsupportedFormatError(f"{_where(path, number)}: deep EXR images are not supported")
    if not channels:
        raise UnreadableMediaError(f"{_where(path, number)}: the EXR has no channels")
    names = list(channels.keys())
    order = [c for c in _EXR_LEADING if c in channels] + [c for c in names if c not in _EXR_LEADING]
    arrays = []
    for name in order:
        ch = channels[name]
        if int(ch.xSampling) != 1 or int(ch.ySampling) != 1:
            raise UnsupportedFormatError(
                f"{_where(path, number)}: channel {name!r} is subsampled ({ch.xSampling}x{ch.ySampling}, e.g. a "
                f"luminance/chroma EXR); only full-resolution channels are supported")
        pixels = ch.pixels
        if pixels is None or pixels.ndim != 2:
            raise UnreadableMediaError(f"{_where(path, number)}: channel {name!r} has no readable pixels")
        if pixels.dtype not in (np.float16, np.float32):
            raise UnsupportedFormatError(
                f"{_where(path, number)}: channel {name!r} holds {pixels.dtype} (EXR UINT) samples; only half "
                f"and float channels are supported — write the file without that channel")
        arrays.append(pixels)
    dtypes = {a.dtype for a in arrays}
    channel_dtypes: tuple[str, ...] = ()
    if len(dtypes) > 1:  # half and float mixed: float32 holds both exactly; remember each channel's own type
        channel_dtypes = tuple(str(a.dtype) for a in arrays)
        arrays = [a.astype(np.float32) for a in arrays]
    stacked = np.stack(arrays, axis=-1)
    data_window = _exr_window(header["dataWindow"]) if "dataWindow" in header else None
    display_window = _exr_window(header["displayWindow"]) if "displayWindow" in header else data_window
    if data_window is not None and window_size(data_window) != (stacked.shape[1], stacked.shape[0]):
        raise UnreadableMediaError(
            f"{_where(path, number)}: the EXR data window {data_window} does not match its pixels "
            f"{stacked.shape[1]}x{stacked.shape[0]}")
    metadata = {k: v for k, v in header.items() if k not in ("channels", "dataWindow", "displayWindow")}
    return Frame(number=0 if number is None else number, pixels=stacked, channels=tuple(order),
                 data_window=data_window, display_window=display_window, metadata=metadata,
                 channel_dtypes=channel_dtypes)


def read_image(path: str | os.PathLike, number: int | None = None) -> Frame:
    """Read one still image in its native pixel type.

    Args:
        path: a .png .jpg .jpeg .tif .tiff .exr or .bmp file.
        number: the frame number to give the Frame (and to name in errors); 0 when None.

    Returns:
        The Frame.

    Raises:
        InputNotFoundError: the file does not exist.
        UnsupportedFormatError: not an image extension, or a pixel type / layout that is not supported.
        UnreadableMediaError: the file is corrupt, truncated, empty or unreadable.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        if not p.exists():
            raise InputNotFoundError(f"{_where(p, number)}: the file does not exist")
        raise UnsupportedFormatError(
            f"{p}: {ext or '(no extension)'!r} is not a supported image type; supported: {' '.join(IMAGE_EXTENSIONS)}")
    if ext == ".exr":
        return _read_exr(p, number)
    if ext in (".tif", ".tiff"):
        return _read_tiff(p, number)
    if ext == ".dpx":
        from .dpx import read_dpx

        return read_dpx(p, number)
    return _read_cv2(p, number)


def probe_image_size(path: str | os.PathLike, number: int | None = None) -> tuple[int, int]:
    """Display size of an image without decoding it where the format allows (EXR, TIFF).

    Args:
        path: the image file.
        number: frame number for error messages.

    Returns:
        ``(width, height)``; for EXR the display window's size.

    Raises:
        The errors of :func:`read_image`.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".exr":
        header, _ = _open_exr(p, number, header_only=True)
        return window_size(_exr_window(header.get("displayWindow", header["dataWindow"])))
    frame = read_image(p, number)
    return window_size(frame.display_window)


# ---- sources --------------------------------------------------------------------------------------------------

class MediaSource:
    """Frames of one input (movie, single image or image sequence). Use as a context manager.

    Attributes:
        kind: ``"movie"``, ``"image"`` or ``"sequence"``.
        path: the path as given (for a sequence, the pattern).
        frame_numbers: the numbers this source yields, in order (0-based indices for a movie).
        fps: frames per second for a movie; None otherwise.
        frame_rate, time_base, codec: movie stream details; None otherwise.
        has_audio: whether a movie has an audio track (False for images).
    """

    kind: str = ""
    #: movie only (None for images and sequences): exact frame rate, stream time base, codec name
    frame_rate: Fraction | None = None
    time_base: Fraction | None = None
    codec: str | None = None

    def __init__(self, path: Path, frame_numbers: tuple[int, ...]):
        self.path = path
        self.frame_numbers = tuple(frame_numbers)
        self._number_set = frozenset(self.frame_numbers)
        self.fps: float | None = None
        self.has_audio = False
        self._closed = False

    # size -------------------------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Display width in pixels."""
        return self._size()[0]

    @property
    def height(self) -> int:
        """Display height in pixels."""
        return self._size()[1]

    def _size(self) -> tuple[int, int]:
        raise NotImplementedError

    # frames -----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frame_numbers)

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def read(self, number: int) -> Frame:
        """Read one frame by number (random access).

        Args:
            number: one of :attr:`frame_numbers`.

        Returns:
            The Frame.

        Raises:
            InvalidParameterError: ``number`` is not one of this source's frames, or the source is closed.
            UnreadableMediaError: the frame cannot be decoded.
        """
        self._check_open()
        if number not in self._number_set:
            raise InvalidParameterError(
                f"{self.path}: frame {number} is not in this source; its frames are "
                f"{describe_numbers(self.frame_numbers)}")
        return self._read(int(number))

    def _read(self, number: int) -> Frame:
        raise NotImplementedError

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidParameterError(f"{self.path}: the source is closed")

    def close(self) -> None:
        """Release files and decoders. Safe to call twice."""
        self._closed = True

    def __enter__(self) -> "MediaSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {str(self.path)!r} {len(self)} frames>"


class ImageSource(MediaSource):
    """One still image as a one-frame source (frame number 0)."""

    kind = "image"

    def __init__(self, path: Path, frames: FrameRange | None):
        if frames is not None and 0 not in frames:
            raise InvalidParameterError(
                f"{path} is a single image (frame 0) but frames {frames} were asked for; leave the frame range out "
                f"or give a sequence pattern such as name.####{path.suffix}")
        super().__init__(path, (0,))
        self._frame: Frame | None = read_image(path, None)

    def _size(self) -> tuple[int, int]:
        assert self._frame is not None
        return window_size(self._frame.display_window)

    def __iter__(self) -> Iterator[Frame]:
        self._check_open()
        assert self._frame is not None
        yield self._frame

    def _read(self, number: int) -> Frame:
        assert self._frame is not None
        return self._frame


class SequenceSource(MediaSource):
    """Numbered image files ``name.%04d.ext`` / ``name.####.ext`` / ``name.@@@@.ext``.

    Attributes:
        pattern: the parsed pattern (``pattern.path_for(n)`` is frame n's file).
    """

    kind = "sequence"

    def __init__(self, path: Path, frames: FrameRange | None):
        self.pattern: SequencePattern = parse_sequence_pattern(path)
        found = find_sequence_frames(path)
        if frames is None:
            numbers = tuple(found)
        else:
            numbers = frames.numbers()
            missing = [n for n in numbers if n not in found]
            if missing:
                raise InputNotFoundError(
                    f"image sequence {path}: frames missing in the requested range {frames}: "
                    f"{describe_numbers(missing)}. Frames on disk in {os.path.abspath(self.pattern.folder)}: "
                    f"{describe_numbers(list(found))}")
        super().__init__(path, numbers)
        self._cached_size: tuple[int, int] | None = None

    def _size(self) -> tuple[int, int]:
        if self._cached_size is None:
            first = self.frame_numbers[0]
            self._cached_size = probe_image_size(self.pattern.path_for(first), first)
        return self._cached_size

    def path_for(self, number: int) -> Path:
        """File of frame ``number``."""
        return self.pattern.path_for(number)

    def __iter__(self) -> Iterator[Frame]:
        for number in self.frame_numbers:
            self._check_open()
            yield read_image(self.pattern.path_for(number), number)

    def _read(self, number: int) -> Frame:
        return read_image(self.pattern.path_for(number), number)


# ---- movies ---------------------------------------------------------------------------------------------------

def _open_container(path: Path) -> Any:
    """``av.open`` for reading, with failures turned into named errors."""
    import av

    try:
        return av.open(str(path), mode="r")
    except FileNotFoundError:
        raise InputNotFoundError(f"{path}: the file does not exist") from None
    except PermissionError:
        raise UnreadableMediaError(f"{path}: permission denied when reading the file") from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UnreadableMediaError(
            f"{path}: cannot be opened as a movie ({exc}); the file is corrupt, truncated or not a movie") from None


#: How a movie's YUV pictures become RGB: ``exact`` (the default) rounds exactly and interpolates chroma fully;
#: ``ffmpeg`` is FFmpeg's (and OpenCV's, and many hosts') default conversion, bit for bit.
YUV_CONVERSIONS: tuple[str, ...] = ("exact", "ffmpeg")


def check_yuv_conversion(value: str) -> str:
    """``value`` if it is one of :data:`YUV_CONVERSIONS`.

    Raises:
        InvalidParameterError: any other value (the valid ones are listed).
    """
    if value not in YUV_CONVERSIONS:
        raise InvalidParameterError(f"yuv conversion {value!r} is not known; valid: {', '.join(YUV_CONVERSIONS)}")
    return value


def swscale_matrix(colorspace: int) -> Any:
    """The swscale YUV matrix of an FFmpeg colour-space number (AVColorSpace: 1 BT.709, 5/6 BT.601, 9/10 BT.2020,
    ...), or None for one it has not."""
    from av.video.reformatter import Colorspace

    return {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.ITU601,
            7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}.get(colorspace)


def _deep(frame: Any) -> bool:
    """Whether a decoded picture holds more than 8 bits a component (10-bit ProRes, DNxHR HQX, 10-bit HEVC)."""
    try:
        return max(int(c.bits) for c in frame.format.components) > 8
    except (AttributeError, ValueError, TypeError):
        return False


def _rgb_from_video_frame(frame: Any, conversion: str = "exact", reformatter: Any = None) -> np.ndarray:
    """Decoded video frame -> (H, W, 3) RGB using the stream's own YUV matrix and range: uint8, or uint16 (0-65535)
    for a picture stored with more than 8 bits a component, whose levels an 8-bit frame would band.

    ``conversion="ffmpeg"``: what ``ffmpeg -i clip.mp4 frame.png`` and ``cv2.VideoCapture`` give — swscale's
    default (bicubic flags, fast rounding, chroma interpolated in the output stage) with the frame's own tags, and
    BT.601 where the file names no matrix.

    ``reformatter``: an ``av`` ``VideoReformatter`` to convert with, kept by the caller for a run of frames (one
    swscale context for all of them, set up again only when the size or format changes: 11.6 -> 8.9 ms a 1080p
    frame, 2.4 -> 1.3 ms at 512², the same pixels, as a frame's own ``to_ndarray`` sets one up per call); None:
    a fresh one. Never kept in thread-local storage: a process forked while another thread held one would free
    it in the child, and swscale's slice threads' teardown there deadlocks (the fork of a daemon's start).
    """
    from av.video.reformatter import ColorRange, Colorspace, Interpolation

    rgb = "rgb48le" if _deep(frame) else "rgb24"
    if reformatter is None:
        from av.video.reformatter import VideoReformatter

        reformatter = VideoReformatter()
    reformat = reformatter.reformat
    if conversion == "ffmpeg":
        return np.ascontiguousarray(reformat(frame, format=rgb, interpolation=Interpolation.BICUBIC).to_ndarray())

    # AVColorSpace codes -> swscale matrices; unspecified follows the players' rule (HD: 709, SD: 601).
    space = swscale_matrix(int(frame.colorspace))
    if space is None:
        space = Colorspace.ITU709 if frame.height >= 720 else Colorspace.ITU601
    fmt = frame.format.name
    colour_range = int(frame.color_range)
    if colour_range not in (int(ColorRange.MPEG), int(ColorRange.JPEG)):
        colour_range = int(ColorRange.JPEG) if fmt.startswith("yuvj") else int(ColorRange.MPEG)
    # exact rounding and full chroma interpolation: the default fast path is off by 1-2 levels
    accurate = Interpolation.FAST_BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
    if not fmt.startswith(("yuv", "nv", "p0", "p2")):  # RGB-like or grey sources: no matrix involved
        return np.ascontiguousarray(reformat(frame, format=rgb).to_ndarray())
    return np.ascontiguousarray(reformat(frame, format=rgb, src_colorspace=space, dst_colorspace=space,
                                         src_color_range=colour_range, dst_color_range=ColorRange.JPEG,
                                         interpolation=accurate).to_ndarray())


def _timecode_of(container: Any, video: Any) -> tuple[str | None, str | None]:
    """The movie's first-frame timecode and reel name (a QuickTime/MXF timecode track, the video stream's or the
    container's ``timecode`` tag), or None."""
    timecode = reel = None
    for st in (video, *container.streams.data):
        meta = dict(st.metadata or {})
        timecode = timecode or meta.get("timecode")
        reel = reel or meta.get("reel_name")
    timecode = timecode or dict(container.metadata or {}).get("timecode")
    return (str(timecode) if timecode else None), (str(reel) if reel else None)


def _display_rotation(container: Any) -> int:
    """How far a player turns the movie's coded pictures to show them: 0, 90, 180 or 270 degrees counter-clockwise
    (the display matrix a phone writes for a portrait video, which FFmpeg hands over with every decoded frame; read
    from the first one). 0 when there is none, when it is not a quarter turn (players ignore those too), or when
    the first frame does not decode (reading the frames then says why)."""
    import av

    try:
        frame = next(container.decode(video=0), None)
        angle = float(frame.rotation) if frame is not None else 0.0
    except (av.FFmpegError, OSError, ValueError, AttributeError):
        return 0
    quarter = round(angle / 90.0)
    return int(quarter * 90) % 360 if abs(angle - quarter * 90.0) < 1.0 else 0


def movie_rotation(path: str | os.PathLike) -> int:
    """A movie's display rotation (:func:`_display_rotation`: 0, 90, 180 or 270 degrees counter-clockwise); 0 for
    a movie without one. :class:`MovieSource` gives its frames upright, turned by it; a :class:`~.writers.MovieWriter`
    given it writes upright frames back in the coded orientation, tagged with the same rotation.

    Read once per file version in a process (by path, inode, size and modification time): an edit asks for it up
    to 8 times (the source, and each cache key's fingerprint), and each read opens the movie and decodes a frame
    (~7 ms at 512², more for a 4K ProRes plate).

    Raises:
        InputNotFoundError, UnreadableMediaError: the file cannot be opened as a movie.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return _read_rotation(p)            # says why it cannot be read
    return _rotation_of_version(str(p.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _rotation_of_version(path: str, dev: int, ino: int, size: int, mtime_ns: int) -> int:
    return _read_rotation(Path(path))       # (an error is raised, not remembered)


def _read_rotation(path: Path) -> int:
    container = _open_container(path)
    try:
        return _display_rotation(container) if container.streams.video else 0
    finally:
        container.close()


def _pixel_aspect(stream: Any) -> Fraction:
    """The video stream's pixel aspect ratio (its sample aspect ratio: 4/3 for an anamorphic HDV plate), 1 when
    the file does not say."""
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if sar and Fraction(sar) > 0:
            return Fraction(sar)
    return Fraction(1)


def movie_codec_of(path: str | os.PathLike) -> str | None:
    """Which of :data:`~.writers.MOVIE_CODECS` writes what a movie holds (ProRes 422 HQ/4444 and DNxHR HQ/HQX/444 by
    profile, HEVC, VP9, H.264, MPEG-4), or None for a codec it cannot write (or a file that is not a movie).
    """
    try:
        container = _open_container(Path(path))
    except NedFxError:
        return None
    try:
        if not container.streams.video:
            return None
        cc = container.streams.video[0].codec_context
        name, profile = (cc.name or ""), str(cc.profile or "").upper()
    finally:
        container.close()
    if name == "prores":
        return "prores_4444" if "4444" in profile else "prores_ks"
    if name == "dnxhd":
        return "dnxhr_444" if "444" in profile else "dnxhr_hqx" if "HQX" in profile else "dnxhr_hq"
    return {"hevc": "libx265", "vp9": "libvpx-vp9", "h264": "libx264", "mpeg4": "mpeg4"}.get(name)


#: FFmpeg's AVFieldOrder codes of an interlaced stream -> :attr:`MovieSource.field_order`
FIELD_ORDERS = {2: "tt", 3: "bb", 4: "tb", 5: "bt"}


@dataclass(frozen=True)
class Presentation:
    """How a source movie is shown beyond its pixels, for a movie written from its frames to be shown the same way
    (:meth:`MovieSource.presentation`, :func:`movie_presentation`; the default: nothing to carry).

    Attributes:
        rotation: display rotation (:attr:`MovieSource.rotation`); pixel_aspect: :attr:`MovieSource.pixel_aspect`.
        times: a variable-frame-rate movie's frame times in seconds (:meth:`MovieSource.frame_times`), else None;
        time_base: the movie's time base (what those times are counted in); colour: :attr:`MovieSource.colour`;
        field_order: :attr:`MovieSource.field_order`.
    """

    rotation: int = 0
    pixel_aspect: Fraction = Fraction(1)
    times: dict[int, Fraction] | None = field(default=None, compare=False)
    time_base: Fraction | None = None
    colour: tuple[int, int, int] | None = None
    field_order: str | None = None

    def writer_options(self) -> dict[str, Any]:
        """``MovieWriter`` keywords that tag and time a movie as this one is."""
        return {"rotation": self.rotation, "pixel_aspect": self.pixel_aspect,
                "time_base": self.time_base if self.times else None, "colour": self.colour,
                "field_order": self.field_order}

    def time_of(self, number: int, first: int) -> Fraction | None:
        """When movie frame ``number`` shows in a movie that starts at frame ``first`` (seconds; for
        ``MovieWriter.write``), or None at a constant rate (the writer places it)."""
        return self.times[number] - self.times[first] if self.times else None

    def audio_span(self, first: int, last: int, count: int, fps: float) -> tuple[float, float]:
        """Seconds of the source's audio that the ``count`` frames written, ``first``..``last`` (movie indices),
        cover: at a constant rate ``count / fps`` from frame ``first``; else to the frame after ``last``."""
        if not self.times:
            return first / fps, (first + count) / fps
        times = self.times
        step = times[last] - times[last - 1] if last - 1 in times else Fraction(1) / Fraction(fps)
        return float(times[first]), float(times.get(last + 1, times[last] + step))


def movie_presentation(path: str | os.PathLike) -> Presentation:
    """The :class:`Presentation` of a movie (its packets are indexed and its first frame decoded).

    Raises:
        InputNotFoundError, UnreadableMediaError, UnsupportedFormatError: the file cannot be read as a movie.
    """
    with MovieSource(Path(path), None) as source:
        return source.presentation()


def movie_timecode(path: str | os.PathLike) -> tuple[str | None, str | None]:
    """A movie's first-frame timecode and reel name (each None when the file has none), from its headers only.

    Raises:
        InputNotFoundError, UnreadableMediaError: the file cannot be opened as a movie.
    """
    container = _open_container(Path(path))
    try:
        if not container.streams.video:
            return None, None
        return _timecode_of(container, container.streams.video[0])
    finally:
        container.close()


class MovieSource(MediaSource):
    """A movie's video track, decoded with PyAV to RGB (uint8; uint16 where the movie stores more than 8 bits a
    component: 10-bit ProRes, DNxHR HQX/444, 10-bit HEVC); frame numbers are 0-based indices.

    At open the packets are indexed (no decoding) to count the frames exactly and to find each frame's
    timestamp, which random access seeks to.

    Attributes:
        frame_rate: the exact rate as a fraction (e.g. 30000/1001), or None when the file does not say.
        time_base: the video stream's time base.
        codec: the video codec's name (e.g. ``"h264"``).
        frame_count: the number of frames in the whole movie.
        has_audio: whether the file has an audio track.
        timecode: the first frame's timecode (``"HH:MM:SS:FF"``) or None; reel_name: the source reel or None.
        yuv_conversion: ``"exact"`` or ``"ffmpeg"`` (:data:`YUV_CONVERSIONS`).
        rotation: the movie's display rotation (0, 90, 180 or 270 degrees counter-clockwise: a phone's portrait
            video). Frames come upright, as a player shows them (turned by it; ``width``/``height`` are the
            upright picture's); write them with ``MovieWriter(..., rotation=source.rotation)`` to get the coded
            orientation and the same tag back.
        pixel_aspect: the stored pictures' pixel aspect ratio (a Fraction; 4/3 for anamorphic HDV; 1 when the file
            does not say). Frames keep the stored pixels (not resampled); ``MovieWriter(..., pixel_aspect=...)``
            tags the output with it.
        colour: the stream's colour tags as FFmpeg numbers them, ``(matrix, primaries, transfer)`` (e.g. ``(9, 9,
            18)``: a phone's BT.2020 HLG video), or None when it names none. Frames are the decoded RGB in those
            primaries and transfer (not converted); ``MovieWriter(..., colour=...)`` encodes and tags them back so.
        field_order: an interlaced movie's field order as the file says it (``"tt"``: top field first, ``"bb"``:
            bottom field first; ``"tb"``/``"bt"``: coded in the other order than shown), or None (progressive, or
            not said). Frames come as stored: both fields woven into one picture (not deinterlaced);
            ``MovieWriter(..., field_order=...)`` writes them back interlaced and tagged so.
    """

    kind = "movie"

    def __init__(self, path: Path, frames: FrameRange | None, yuv_conversion: str = "exact"):
        import av

        #: ``"exact"`` or ``"ffmpeg"`` (:data:`YUV_CONVERSIONS`)
        self.yuv_conversion = check_yuv_conversion(yuv_conversion)

        container = _open_container(path)
        try:
            if not container.streams.video:
                raise UnsupportedFormatError(f"{path}: the file has no video track")
            stream = container.streams.video[0]
            if stream.codec_context is None:
                raise UnsupportedFormatError(f"{path}: the video codec is not supported by this FFmpeg build")
            self.codec: str = stream.codec_context.name
            self.time_base: Fraction | None = Fraction(stream.time_base) if stream.time_base else None
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.frame_rate: Fraction | None = Fraction(rate) if rate else None
            self._dims = (int(stream.codec_context.width), int(stream.codec_context.height))
            self.pixel_aspect: Fraction = _pixel_aspect(stream)
            cc = stream.codec_context
            colour = (int(cc.colorspace), int(cc.color_primaries), int(cc.color_trc))
            self.colour: tuple[int, int, int] | None = None if all(c in (0, 2) for c in colour) else colour
            self.field_order: str | None = FIELD_ORDERS.get(int(cc.field_order or 0))
            has_audio = bool(container.streams.audio)
            self.timecode, self.reel_name = _timecode_of(container, stream)
            declared = int(stream.frames or 0)
            pts: list[int | None] = []
            packets = 0
            try:
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue
                    packets += 1
                    if not packet.is_discard:
                        pts.append(packet.pts)
            except (av.FFmpegError, OSError) as exc:
                raise UnreadableMediaError(
                    f"{path}: the file is damaged after frame {len(pts) - 1} ({exc})") from None
        finally:
            container.close()
        if not pts:
            raise UnreadableMediaError(f"{path}: the video track holds no frames; the file is empty or truncated")
        #: degrees counter-clockwise a player turns the coded pictures by (frames are given turned so: upright)
        self.rotation = movie_rotation(path)
        if self.rotation in (90, 270):
            self._dims = self._dims[::-1]
        if declared and packets < declared:
            raise UnreadableMediaError(
                f"{path}: the file is truncated: its header lists {declared} frames but only {packets} are in the "
                f"file")
        self.frame_count = len(pts)
        known = [p for p in pts if p is not None]
        if len(known) == len(pts) and len(set(known)) == len(known):
            self._pts: list[int] | None = sorted(known)
            self._index_by_pts: dict[int, int] | None = {p: i for i, p in enumerate(self._pts)}
        else:  # no usable timestamps: frames are numbered by decode order and random access decodes from 0
            self._pts = None
            self._index_by_pts = None
        if frames is None:
            numbers = tuple(range(self.frame_count))
        else:
            numbers = frames.numbers()
            beyond = [n for n in numbers if not 0 <= n < self.frame_count]
            if beyond:
                raise InvalidParameterError(
                    f"{path}: frames {describe_numbers(beyond)} are outside the movie, which has frames "
                    f"0-{self.frame_count - 1} (movie frames are numbered from 0)")
        super().__init__(path, numbers)
        self.fps = float(self.frame_rate) if self.frame_rate else None
        self.has_audio = has_audio
        self._ra: Iterator[tuple[int, Any]] | None = None  # random-access decoder
        self._ra_last = -1
        self._ra_reformatter: Any = None  # its swscale context (see _rgb_from_video_frame)

    def _size(self) -> tuple[int, int]:
        return self._dims

    def frame_times(self) -> dict[int, Fraction] | None:
        """Each frame's time in seconds after frame 0, for a movie whose frames are not evenly spaced (a phone's
        variable frame rate: it drops or stretches frames in low light), so that a movie written from its frames
        can keep them where they were, in step with the audio (``MovieWriter(..., time_base=)`` and
        ``write(..., time=)``). None for a movie at a constant rate (frame ``n`` is at ``n / frame_rate``: a step
        that wanders by a tick or 2 % is still constant) or whose timestamps are unknown."""
        if self._pts is None or len(self._pts) < 3 or self.time_base is None:
            return None
        pts = np.asarray(self._pts, np.int64)
        steps = np.diff(pts)
        mean = (pts[-1] - pts[0]) / (len(pts) - 1)
        if np.abs(steps - mean).max() <= max(1.0, 0.02 * mean):
            return None
        return {i: (int(p) - int(pts[0])) * self.time_base for i, p in enumerate(pts)}

    def presentation(self) -> Presentation:
        """What a movie written from these frames must carry to be shown as this one is (:class:`Presentation`)."""
        return Presentation(self.rotation, self.pixel_aspect, self.frame_times(), self.time_base, self.colour,
                            self.field_order)

    # decoding ---------------------------------------------------------------------------------------------
    def _decode(self, start: int, allow_seek: bool = True) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, av.VideoFrame)`` in order, from a keyframe at or before ``start`` (or from 0).

        Raises:
            UnreadableMediaError: a frame cannot be decoded (the index is named), or the movie ends early.
        """
        import av

        seek = allow_seek and start > 0 and self._pts is not None
        container = _open_container(self.path)
        expected: int | None = 0
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if seek:
                assert self._pts is not None
                container.seek(self._pts[start], stream=stream, backward=True, any_frame=False)
                expected = None  # unknown until the first frame's timestamp places it
            try:
                for packet in container.demux(stream):
                    for frame in packet.decode():
                        index = self._index_of(frame, expected)
                        if index is None:  # a frame after the seek that no timestamp places: decode from 0
                            seek = False
                            break
                        if expected is None and index > start:
                            seek = False  # the seek landed past the frame: decode from 0 instead
                            break
                        if expected is not None and index > expected:
                            raise UnreadableMediaError(
                                f"{self.path}: frame {expected} could not be decoded (the decoder skipped "
                                f"frames {expected}-{index - 1}); the file is damaged")
                        if expected is not None and index < expected:
                            continue  # a repeated timestamp: already yielded
                        expected = index + 1
                        yield index, frame
                    else:
                        continue
                    break
                else:
                    if expected is not None and expected < self.frame_count:
                        raise UnreadableMediaError(
                            f"{self.path}: frames {expected}-{self.frame_count - 1} could not be decoded (the "
                            f"stream ended early); the file is damaged or truncated")
                    return
            except av.FFmpegError as exc:
                at = f"frame {expected}" if expected is not None else f"a frame near {start}"
                raise UnreadableMediaError(f"{self.path}: {at} could not be decoded ({exc}); the file is damaged") \
                    from None
        finally:
            container.close()
        # fell out of the loop to restart without seeking
        yield from self._decode(0, allow_seek=False)

    def _index_of(self, frame: Any, expected: int | None) -> int | None:
        if self._index_by_pts is not None and frame.pts is not None:
            index = self._index_by_pts.get(int(frame.pts))
            if index is not None:
                return index
        return expected

    def _to_frame(self, index: int, frame: Any, reformatter: Any = None) -> Frame:
        try:
            pixels = _rgb_from_video_frame(frame, self.yuv_conversion, reformatter)
        except NedFxError:
            raise
        except Exception as exc:
            raise UnreadableMediaError(f"{self.path}: frame {index} could not be converted to RGB ({exc})") from None
        if self.rotation:
            pixels = np.ascontiguousarray(np.rot90(pixels, self.rotation // 90))
        return Frame(number=index, pixels=pixels, channels=("R", "G", "B"))

    def __iter__(self) -> Iterator[Frame]:
        self._check_open()
        if not self.frame_numbers:
            return
        from av.video.reformatter import VideoReformatter

        wanted = iter(self.frame_numbers)
        target = next(wanted)
        decoder = self._decode(target)
        reformatter = VideoReformatter()         # one swscale context for the run (see _rgb_from_video_frame)
        try:
            for index, frame in decoder:
                if index < target:
                    continue
                yield self._to_frame(index, frame, reformatter)
                target = next(wanted, None)
                if target is None:
                    return
            raise UnreadableMediaError(f"{self.path}: frame {target} could not be decoded")
        finally:
            decoder.close()

    def _read(self, number: int) -> Frame:
        if self._ra is None or not (self._ra_last < number <= self._ra_last + _READ_AHEAD):
            self._close_ra()
            from av.video.reformatter import VideoReformatter

            self._ra = self._decode(number)
            self._ra_last = -1
            self._ra_reformatter = VideoReformatter()
        try:
            for index, frame in self._ra:
                self._ra_last = index
                if index == number:
                    return self._to_frame(index, frame, self._ra_reformatter)
                if index > number:
                    break
        except BaseException:
            self._close_ra()
            raise
        self._close_ra()
        raise UnreadableMediaError(f"{self.path}: frame {number} could not be decoded")

    def _close_ra(self) -> None:
        if self._ra is not None:
            self._ra.close()  # type: ignore[attr-defined]
        self._ra = None
        self._ra_last = -1
        self._ra_reformatter = None

    def close(self) -> None:
        self._close_ra()
        super().close()


# ---- entry point ----------------------------------------------------------------------------------------------

def open_media(path: str | os.PathLike, frames: "FrameRange | str | int | None" = None,
               yuv_conversion: str = "exact") -> MediaSource:
    """Open a movie, a single image or an image sequence for reading.

    Args:
        path: a movie (.mp4 .mov .mkv .avi .webm ...), an image (.png .jpg .jpeg .tif .tiff .exr .bmp) or a
            sequence pattern (``shot.%04d.exr``, ``shot.####.exr``, ``shot.@@@@.exr``). An existing file is always
            read as that one file, even if its name looks like a pattern.
        frames: optional FrameRange, or text ``"1001-1100"``, ``"1001-1100x2"``, ``"1001"``, limiting the frame
            numbers read; for a movie these are 0-based frame indices.
        yuv_conversion: movies only: ``"exact"`` (default: exact rounding, full chroma interpolation) or
            ``"ffmpeg"`` (FFmpeg's/OpenCV's default conversion, bit for bit: what most hosts show).

    Returns:
        A MediaSource (context manager).

    Raises:
        InputNotFoundError: the file does not exist; no file matches a sequence pattern (pattern and folder
            named); frames of the requested range are missing from a sequence (numbers listed).
        UnsupportedFormatError: the extension is not supported (the message lists the supported ones), or the
            file has no video track / an unsupported pixel layout.
        UnreadableMediaError: the file is corrupt or truncated.
        InvalidParameterError: a malformed frame range, or frames outside a movie.
    """
    if path is None or str(path) == "":
        raise InputNotFoundError("no input path was given")
    p = Path(path)
    frame_range = parse_frame_range(frames)
    check_yuv_conversion(yuv_conversion)
    if p.is_dir():
        raise UnsupportedFormatError(
            f"{p} is a folder; give a movie, an image, or an image sequence pattern such as "
            f"{p / 'name.####.exr'}")
    if p.exists():
        kind = media_kind_for(p)
        if kind == "movie":
            return MovieSource(p, frame_range, yuv_conversion)
        return ImageSource(p, frame_range)
    if is_sequence_pattern(p):
        return SequenceSource(p, frame_range)
    if not p.parent.is_dir():
        raise InputNotFoundError(f"{p}: the file does not exist (its folder {p.parent} does not exist either)")
    raise InputNotFoundError(f"{p}: the file does not exist")


# ---- provenance -----------------------------------------------------------------------------------------------

def read_provenance(path: str | os.PathLike) -> Any:
    """The ned_fx edit record a file carries (written by ``write_image``/``MovieWriter`` with ``provenance=``).

    Reads only metadata (EXR header, PNG text chunks, JPEG XMP, TIFF tags, movie container tags), never pixels.

    Args:
        path: an image (.exr .png .jpg .jpeg .tif .tiff .dpx) or a movie (.mp4 .mov .mkv .webm .avi …).

    Returns:
        an :class:`~ned_fx.provenance.EditRecord`, or None when the file carries none (not written by ned_fx,
        a format without metadata such as BMP, or its metadata was stripped).

    Raises:
        InputNotFoundError: the file does not exist.
        UnreadableMediaError: the file cannot be read as its format.
        ProvenanceError: a ned_fx record is there but malformed.
    """
    from ..provenance import embed
    from .paths import MOVIE_EXTENSIONS

    p = Path(path)
    if not p.is_file():
        if p.is_dir():
            raise UnsupportedFormatError(f"{p} is a folder, not a file")
        raise InputNotFoundError(f"{p}: the file does not exist")
    ext = p.suffix.lower()
    if ext != ".dpx":
        media_kind_for(p)                  # an extension ned_fx neither reads nor writes: the usual error
    if ext == ".exr":
        header, _ = _open_exr(p, None, header_only=True)
        return embed.record_from_exr_header(header)
    if ext in (".tif", ".tiff"):
        import tifffile

        try:
            with tifffile.TiffFile(str(p)) as tif:
                tag = tif.pages[0].tags.get(700)
                xmp = tag.value if tag is not None else None
        except Exception as exc:
            raise UnreadableMediaError(f"{p}: cannot be read as TIFF ({exc})") from None
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8")
        return embed.record_from_xmp(bytes(xmp)) if xmp else None
    if ext in (".png", ".jpg", ".jpeg"):
        data = _read_bytes(p, None)
        from ..provenance.errors import ProvenanceError

        try:
            return embed.record_from_png(data) if ext == ".png" else embed.record_from_jpeg(data)
        except ProvenanceError as exc:
            if not data.startswith(b"\x89PNG" if ext == ".png" else b"\xff\xd8"):
                raise UnreadableMediaError(f"{p}: {exc}") from None
            raise
    if ext == ".dpx":
        import OpenImageIO as oiio

        inp = oiio.ImageInput.open(str(p))
        if inp is None:
            raise UnreadableMediaError(f"{p}: cannot be read as DPX ({oiio.geterror() or 'unknown error'})")
        try:
            values = [a.value for a in inp.spec().extra_attribs if a.name == "dpx:UserData"]
        finally:
            inp.close()
        if not values:
            return None
        value = values[0]
        data = value.encode() if isinstance(value, str) else np.asarray(value, np.uint8).tobytes()
        return embed.record_from_dpx_user_data(data)
    if ext in MOVIE_EXTENSIONS:
        container = _open_container(p)
        try:
            return embed.record_from_movie_metadata(dict(container.metadata))
        finally:
            container.close()
    return None
