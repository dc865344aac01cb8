"""The in-memory frame every stage passes around, frame ranges, and the 8-bit view a face tracker looks at.

Nothing here imports an image or video library; only numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Iterator, Mapping

import numpy as np

from ..errors import InvalidParameterError, UnsupportedFormatError

#: The pixel dtypes a Frame may hold (what the supported files store natively).
PIXEL_DTYPES: tuple[np.dtype, ...] = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float16),
                                      np.dtype(np.float32))

#: Channel names assumed for a plain array with 1, 2, 3 or 4 channels.
DEFAULT_CHANNELS: dict[int, tuple[str, ...]] = {1: ("Y",), 2: ("Y", "A"), 3: ("R", "G", "B"),
                                                4: ("R", "G", "B", "A")}

Window = tuple[int, int, int, int]
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def full_window(width: int, height: int) -> Window:
    """The window covering a whole ``width`` x ``height`` image.

    Args:
        width: image width in pixels.
        height: image height in pixels.

    Returns:
        ``(0, 0, width - 1, height - 1)`` (inclusive corners, as OpenEXR writes them).
    """
    return (0, 0, int(width) - 1, int(height) - 1)


def window_size(window: Window) -> tuple[int, int]:
    """Width and height of an inclusive ``(xmin, ymin, xmax, ymax)`` window.

    Args:
        window: the window.

    Returns:
        ``(width, height)``.
    """
    xmin, ymin, xmax, ymax = window
    return xmax - xmin + 1, ymax - ymin + 1


def _as_window(value: Any, what: str) -> Window:
    try:
        win = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        win = ()
    if len(win) != 4 or win[2] < win[0] or win[3] < win[1]:
        raise InvalidParameterError(
            f"{what} must be (xmin, ymin, xmax, ymax) with xmax >= xmin and ymax >= ymin, got {value!r}")
    return win  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class Frame:
    """One picture of a source, in the file's own pixel type.

    Attributes:
        number: frame number: the sequence number, the 0-based index in a movie, 0 for a single image.
        pixels: (H, W, C) array in the file's native dtype (uint8, uint16, float16 or float32). For an EXR whose
            data window differs from its display window, it covers the DATA window.
        channels: one name per channel of ``pixels``: ("R","G","B"), ("R","G","B","A"), ("Y",) for grey,
            then any extra channels (EXR: in file order after the colour channels).
        data_window: (xmin, ymin, xmax, ymax), inclusive: where ``pixels`` lie in image space. Defaults to the
            full image.
        display_window: (xmin, ymin, xmax, ymax), inclusive: the picture's frame. Defaults to the data window.
        metadata: read-only header attributes that a writer may carry to the output (EXR header attributes;
            empty for other formats).
        channel_dtypes: per-channel storage type when it differs between channels (an EXR mixing half and float
            channels is read as float32, which is exact, and writes back with each channel's own type); empty
            when every channel is stored as ``pixels.dtype``.
        icc_profile: the ICC colour profile a JPEG, PNG or TIFF still came with (a phone's Display P3), for a
            JPEG, PNG or TIFF output to carry (the pixels are not converted); None: none.
        exif: the EXIF block a JPEG or PNG still came with, as stored (camera, lens, dates, artist, copyright,
            place; also its thumbnail and maker note), for a JPEG or PNG output to carry what still describes it
            (:func:`~ned_fx.media.stillmeta.carried_exif`: never the thumbnail or the maker note); None: none.
    """

    number: int
    pixels: np.ndarray
    channels: tuple[str, ...]
    data_window: Window | None = None
    display_window: Window | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    channel_dtypes: tuple[str, ...] = ()
    icc_profile: bytes | None = None
    exif: bytes | None = None

    def __post_init__(self) -> None:
        pixels = self.pixels
        if not isinstance(pixels, np.ndarray) or pixels.ndim != 3:
            shape = getattr(pixels, "shape", None)
            raise InvalidParameterError(f"Frame pixels must be an (H, W, C) numpy array, got shape {shape}")
        if pixels.dtype not in PIXEL_DTYPES:
            raise InvalidParameterError(
                f"Frame pixels have dtype {pixels.dtype}; valid: {', '.join(str(d) for d in PIXEL_DTYPES)}")
        channels = tuple(str(c) for c in self.channels)
        if len(channels) != pixels.shape[2]:
            raise InvalidParameterError(
                f"Frame has {pixels.shape[2]} channels in its pixels but {len(channels)} names {channels}")
        if len(set(channels)) != len(channels) or any(not c for c in channels):
            raise InvalidParameterError(f"Frame channel names must be unique and non-empty, got {channels}")
        height, width = pixels.shape[:2]
        data = _as_window(self.data_window, "data_window") if self.data_window is not None \
            else full_window(width, height)
        if window_size(data) != (width, height):
            raise InvalidParameterError(
                f"Frame data_window {data} is {window_size(data)[0]}x{window_size(data)[1]} but the pixels are "
                f"{width}x{height}")
        display = _as_window(self.display_window, "display_window") if self.display_window is not None else data
        dtypes = tuple(str(np.dtype(d)) for d in self.channel_dtypes)
        if dtypes and len(dtypes) != len(channels):
            raise InvalidParameterError(
                f"Frame channel_dtypes has {len(dtypes)} entries for {len(channels)} channels")
        object.__setattr__(self, "number", int(self.number))
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "data_window", data)
        object.__setattr__(self, "display_window", display)
        object.__setattr__(self, "channel_dtypes", dtypes)
        if not isinstance(self.metadata, MappingProxyType):
            object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @classmethod
    def from_array(cls, pixels: np.ndarray, number: int = 0, channels: tuple[str, ...] | None = None) -> "Frame":
        """Wrap a plain array as a full-image Frame.

        Args:
            pixels: (H, W) or (H, W, C) array (uint8, uint16, float16 or float32).
            number: the frame number.
            channels: channel names; by default ("Y",), ("Y","A"), ("R","G","B") or ("R","G","B","A") by C.

        Returns:
            The Frame (sharing memory with ``pixels``).

        Raises:
            InvalidParameterError: wrong shape or dtype, or C > 4 without channel names.
        """
        arr = np.asarray(pixels)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise InvalidParameterError(f"an image array must be (H, W) or (H, W, C), got shape {arr.shape}")
        if channels is None:
            if arr.shape[2] not in DEFAULT_CHANNELS:
                raise InvalidParameterError(
                    f"an array with {arr.shape[2]} channels needs channel names (1 to 4 channels are named "
                    f"Y, YA, RGB, RGBA)")
            channels = DEFAULT_CHANNELS[arr.shape[2]]
        return cls(number=number, pixels=arr, channels=tuple(channels))

    @property
    def height(self) -> int:
        """Rows of ``pixels`` (the data window's height)."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Columns of ``pixels`` (the data window's width)."""
        return int(self.pixels.shape[1])

    @property
    def display_to_data(self) -> np.ndarray:
        """(dx, dy, 0): what to add to display-window coordinates (the tracker's landmarks) to get coordinates in
        ``pixels`` (the data window)."""
        return np.array([self.display_window[0] - self.data_window[0],
                         self.display_window[1] - self.data_window[1], 0.0])

    def with_pixels(self, pixels: np.ndarray, channels: tuple[str, ...] | None = None) -> "Frame":
        """A copy of this frame with new pixels of the same size (windows and metadata kept).

        Args:
            pixels: (H, W, C) array of the same H and W.
            channels: new channel names; by default the current ones (then C must match).

        Returns:
            The new Frame.

        Raises:
            InvalidParameterError: shape, dtype or channel count does not fit.
        """
        names = self.channels if channels is None else tuple(channels)
        dtypes = self.channel_dtypes if (channels is None and np.asarray(pixels).dtype == self.pixels.dtype) else ()
        return replace(self, pixels=pixels, channels=names, channel_dtypes=dtypes)


def to_display_rgb8(frame: Frame | np.ndarray, view=None, copy: bool = True) -> np.ndarray:
    """The 8-bit RGB picture a face tracker looks at.

    Without ``view``: uint8 is taken as is; uint16 is scaled to 8 bits with rounding; float16/float32 are treated as
    scene-linear Rec.709 and encoded with the sRGB transfer function (clipped to 0..1; NaN and inf become 0). With
    a :class:`~ned_fx.media.color.DisplayView` that applies to the frame's pixel type, OpenColorIO makes the picture.
    Grey ("Y") is replicated to three channels; alpha and extra channels are ignored.

    Args:
        frame: a Frame, or an (H, W) / (H, W, C) array named as in :meth:`Frame.from_array`.
        view: how to show scene-linear / log plates (see :func:`~ned_fx.media.color.display_view_for`).
        copy: False lets an 8-bit RGB frame's own C-contiguous pixels come back as they are (for a reader that
            never writes to the picture: the tracker, an encoder; a 1080p copy costs 1-9 ms, mostly page faults).

    Returns:
        C-contiguous uint8 array of shape (H, W, 3), the same H and W as ``frame.pixels`` (a new array unless
        ``copy`` is False).

    Raises:
        UnsupportedFormatError: the frame has neither R, G and B nor Y channels.
        InvalidParameterError: an array of an unsupported shape or dtype.
    """
    if not isinstance(frame, Frame):
        frame = Frame.from_array(frame)
    names = frame.channels
    if all(c in names for c in ("R", "G", "B")):
        index = [names.index("R"), names.index("G"), names.index("B")]
    elif "Y" in names:
        index = [names.index("Y")] * 3
    else:
        raise UnsupportedFormatError(
            f"frame {frame.number} has channels {', '.join(names)}; a picture needs R, G and B channels or a "
            f"grey Y channel")
    rgb = channel_copy(frame.pixels, index, copy=copy and (view is None or not view.applies_to(frame.pixels.dtype)))
    kind = frame.pixels.dtype
    if view is not None and view.applies_to(kind):
        return view(rgb)
    if kind == np.uint8:
        return rgb
    if kind == np.uint16:
        scaled = (rgb.astype(np.uint32) * 255 + 32767) // 65535
        return np.ascontiguousarray(scaled.astype(np.uint8))
    return linear_to_srgb8(rgb)


def channel_copy(pixels: np.ndarray, index, dtype=None, copy: bool = True) -> np.ndarray:
    """A C-contiguous (H, W, len(index)) array of ``pixels``' channels ``index`` (HxWxC), as ``dtype`` (default:
    the pixels' own; values converted as ``astype`` does): new unless ``copy`` is False and the pixels are already
    exactly that (all their channels in order, C-contiguous, of that dtype).

    numpy's ``pixels[:, :, index]`` gathers element by element into a channel-first layout that then needs a second
    copy (~17 ms for a 1080p RGB frame); a plain copy (every channel in order) or one strided copy per channel costs
    0.3-3 ms.
    """
    index = list(index)
    dtype = pixels.dtype if dtype is None else np.dtype(dtype)
    if index == list(range(pixels.shape[2])):
        return np.array(pixels, dtype=dtype, order="C", copy=copy or None)
    out = np.empty(pixels.shape[:2] + (len(index),), dtype)
    for k, i in enumerate(index):
        out[:, :, k] = pixels[:, :, i]
    return out


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    """Encode scene-linear values with the sRGB transfer function to 8 bits.

    Args:
        linear: float array (any shape).

    Returns:
        uint8 array of the same shape: ``round(255 * srgb(clip(x, 0, 1)))``, NaN and inf -> 0.
    """
    x = np.asarray(linear, dtype=np.float32)
    x = np.where(np.isfinite(x), x, np.float32(0.0))
    x = np.clip(x, 0.0, 1.0)
    encoded = np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)
    return np.ascontiguousarray(np.clip(np.rint(encoded * 255.0), 0, 255).astype(np.uint8))


# ---- frame ranges ---------------------------------------------------------------------------------------------

_RANGE_RE = re.compile(r"^\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*(?:x\s*(\d+)\s*)?)?$")
_RANGE_FORMS = '"1001" (one frame), "1001-1100" (inclusive) or "1001-1100x2" (every 2nd frame)'


@dataclass(frozen=True)
class FrameRange:
    """Inclusive range of frame numbers with a step: ``first, first + step, ...`` up to ``last``.

    Attributes:
        first: first frame number.
        last: last frame number allowed (reached only when ``last - first`` is a multiple of ``step``).
        step: distance between frames, >= 1.
    """

    first: int
    last: int
    step: int = 1

    def __post_init__(self) -> None:
        if self.step < 1:
            raise InvalidParameterError(f"frame range step must be 1 or more, got {self.step}")
        if self.last < self.first:
            raise InvalidParameterError(
                f"frame range {self.first}-{self.last} ends before it starts; write it as first-last")

    @classmethod
    def parse(cls, text: str) -> "FrameRange":
        """Parse "1001", "1001-1100" or "1001-1100x2".

        Args:
            text: the range as a user writes it.

        Returns:
            The FrameRange.

        Raises:
            InvalidParameterError: the text is not one of the valid forms, ends before it starts or has step 0.
        """
        match = _RANGE_RE.match(str(text))
        if not match:
            raise InvalidParameterError(f"frame range {text!r} is not valid; use {_RANGE_FORMS}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        step = int(match.group(3)) if match.group(3) is not None else 1
        if step < 1:
            raise InvalidParameterError(f"frame range {text!r} has step {step}; the step must be 1 or more")
        if last < first:
            raise InvalidParameterError(
                f"frame range {text!r} ends before it starts; write it as first-last, e.g. {last}-{first}")
        return cls(first, last, step)

    def numbers(self) -> tuple[int, ...]:
        """Every frame number of the range, in order."""
        return tuple(range(self.first, self.last + 1, self.step))

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.first, self.last + 1, self.step))

    def __len__(self) -> int:
        return len(range(self.first, self.last + 1, self.step))

    def __contains__(self, number: object) -> bool:
        return isinstance(number, int) and number in range(self.first, self.last + 1, self.step)

    def __str__(self) -> str:
        if self.first == self.last:
            return str(self.first)
        return f"{self.first}-{self.last}" + (f"x{self.step}" if self.step != 1 else "")


def parse_frame_range(value: "FrameRange | str | int | None") -> FrameRange | None:
    """Accept a FrameRange, its text form, a single frame number or None.

    Args:
        value: what the caller passed as ``frames``.

    Returns:
        The FrameRange, or None for None.

    Raises:
        InvalidParameterError: a string that is not a valid range, or another type.
    """
    if value is None or isinstance(value, FrameRange):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return FrameRange(int(value), int(value))
    if isinstance(value, str):
        return FrameRange.parse(value)
    raise InvalidParameterError(f"frames must be a FrameRange or a string like {_RANGE_FORMS}; got {value!r}")


def describe_numbers(numbers: "list[int] | tuple[int, ...]", limit: int = 12) -> str:
    """Compact text of frame numbers: runs written as ``a-b``, at most ``limit`` runs then ``...``.

    Args:
        numbers: sorted frame numbers.
        limit: how many runs to spell out.

    Returns:
        e.g. ``"1003, 1010-1012 (4 frames)"``.
    """
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in runs[:limit]]
    text = ", ".join(parts) + (", ..." if len(runs) > limit else "")
    return f"{text} ({len(numbers)} frame{'s' if len(numbers) != 1 else ''})"
