"""Frames between a host and the daemon: host pixel layouts, the mix, and rendering a shot's frames to files.

Host conventions are converted here, once: Nuke's images are bottom-up with a bounding box ``(x, y, r, t)``
(exclusive right/top, y up) inside a format; the wire speaks top-down inclusive data/display windows.
:func:`render_image` sends a host's own pixels (any row order, a data window smaller or larger than the
display window, alpha and extra channels) and returns the edited frame in exactly the same layout, with the
``mix`` applied host-side. :class:`FrameRenderer` renders a shot's frames in a background thread — current
frame first, then outward — into an image sequence the host reads back (EXR, atomically written).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .wire import DaemonError, DaemonUnavailableError, Shot
from ..errors import InvalidParameterError, NedFxError
from .analysis import ShotHandle
from .images import write_frame
from .link import DaemonLink

Window = tuple[int, int, int, int]


@dataclass(frozen=True, eq=False)
class HostImage:
    """A frame as a host holds it.

    Attributes:
        pixels: (H, W, C) in the host's row order, covering ``data_window``.
        channels: one name per channel (``R G B A`` then extras such as ``depth.Z``).
        row_order: ``"top_down"`` or ``"bottom_up"`` (Nuke).
        data_window, display_window: inclusive ``(xmin, ymin, xmax, ymax)`` in top-down image space (see
            :func:`nuke_windows` for Nuke's bbox/format); None: the full buffer.
        colorspace: a label the daemon carries back.
    """

    pixels: np.ndarray
    channels: tuple[str, ...]
    row_order: str = "top_down"
    data_window: Window | None = None
    display_window: Window | None = None
    colorspace: str = ""


def nuke_windows(bbox: Sequence[int], format_size: Sequence[int]) -> tuple[Window, Window]:
    """Nuke's ``bbox (x, y, r, t)`` (y up, r/t exclusive) inside a ``format (width, height)`` -> the wire's
    top-down inclusive ``(data_window, display_window)``."""
    x, y, r, t = (int(v) for v in bbox)
    w, h = (int(v) for v in format_size)
    if r <= x or t <= y:
        raise InvalidParameterError(f"bbox {tuple(bbox)} is empty (r <= x or t <= y)")
    return (x, h - t, r - 1, h - y - 1), (0, 0, w - 1, h - 1)


def nuke_bbox(data_window: Sequence[int], format_size: Sequence[int]) -> tuple[int, int, int, int]:
    """The inverse of :func:`nuke_windows`: a top-down inclusive data window -> Nuke's ``(x, y, r, t)``."""
    x0, y0, x1, y1 = (int(v) for v in data_window)
    h = int(format_size[1])
    return x0, h - y1 - 1, x1 + 1, h - y0


def from_nuke(pixels, channels: Sequence[str] | None, bbox: Sequence[int], format_size: Sequence[int],
              colorspace: str = "", planar: bool = False) -> HostImage:
    """A :class:`HostImage` of Nuke's bottom-up pixels (rows from the bbox's bottom ``y`` to ``t - 1``).

    Args:
        pixels: (H, W, C) interleaved; with ``planar``, (C, H, W) planes; or a mapping ``channel -> (H, W)
            plane`` (NDK-style planes; ``channels`` may then be None: the mapping's order).
        channels: one name per channel; bbox, format_size: Nuke's ``(x, y, r, t)`` and ``(width, height)``.

    Raises:
        InvalidParameterError: planes of different sizes, or a size that is not the bbox's.
    """
    if isinstance(pixels, dict):
        channels = tuple(channels) if channels is not None else tuple(pixels)
        planes = [np.asarray(pixels[c]) for c in channels]
        if len({p.shape for p in planes}) != 1 or len({p.dtype for p in planes}) != 1:
            raise InvalidParameterError("every plane must have the same size and pixel type")
        arr = np.stack(planes, axis=-1)
    else:
        arr = np.asarray(pixels)
        if planar:
            arr = np.moveaxis(arr, 0, -1)
    arr = np.ascontiguousarray(arr)
    data, display = nuke_windows(bbox, format_size)
    if arr.shape[:2] != (data[3] - data[1] + 1, data[2] - data[0] + 1):
        raise InvalidParameterError(f"pixels of {arr.shape[1]}x{arr.shape[0]} do not fill the bbox {tuple(bbox)}")
    return HostImage(arr, tuple(channels), "bottom_up", data, display, colorspace)


def to_planes(image: HostImage) -> dict[str, np.ndarray]:
    """``channel -> (H, W) plane`` of an image (in its own row order): the way back to planar hosts."""
    return {c: image.pixels[:, :, i] for i, c in enumerate(image.channels)}


def apply_mix(source: np.ndarray, edited: np.ndarray, mix: float) -> np.ndarray:
    """``source + (edited - source) * mix`` in the source's dtype (integers rounded and clipped).

    Raises:
        InvalidParameterError: mix outside 0…1 or the two layouts differ.
    """
    if not 0.0 <= float(mix) <= 1.0:
        raise InvalidParameterError(f"mix must be between 0 and 1, got {mix}")
    if source.shape != edited.shape:
        raise InvalidParameterError(f"cannot mix {edited.shape} over {source.shape}: the layouts differ")
    if mix == 1.0:
        return np.asarray(edited, dtype=source.dtype)
    if mix == 0.0:
        return np.array(source, copy=True)
    out = source.astype(np.float32) + (edited.astype(np.float32) - source.astype(np.float32)) * np.float32(mix)
    if np.issubdtype(source.dtype, np.integer):
        info = np.iinfo(source.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(source.dtype)


def render_image(shot: Shot, frame: int, image: HostImage, mix: float = 1.0,
                 shm: bool = False) -> tuple[HostImage, str | None]:
    """Edit one frame of the host's pixels through the daemon; the result has the host's layout.

    Args:
        shot: an analysed session (see :meth:`ShotHandle.bind`); frame: the frame number.
        image: the host's pixels; mix: 0 (source) … 1 (edited), applied here.
        shm: pass the pixels through shared memory (daemon on this machine).

    Returns:
        ``(edited image, reason)``: reason is None or why the daemon passed the frame through (no face…).

    Raises:
        DaemonError: the daemon refused (its message says why); DaemonUnavailableError: no answer.
    """
    edited, reply = shot.render(int(frame), image.pixels, image.channels, row_order=image.row_order,
                                colorspace=image.colorspace, data_window=image.data_window,
                                display_window=image.display_window, with_info=True, shm=shm)
    spec = reply.specs[0]
    if tuple(spec.channels) != tuple(image.channels) or tuple(edited.shape) != tuple(image.pixels.shape) or (
            image.data_window is not None and tuple(spec.data_window or ()) != tuple(image.data_window)):
        raise DaemonError("bad_message", f"the daemon returned frame {frame} in another layout "
                                         f"({list(spec.channels)} {list(edited.shape)}); expected the host's")
    pixels = apply_mix(image.pixels, np.asarray(edited).reshape(image.pixels.shape), mix)
    return (HostImage(pixels, image.channels, image.row_order, image.data_window, image.display_window,
                      image.colorspace), (reply.result or {}).get("reason"))


def ordered_frames(frames: Iterable[int], current: int | None = None) -> list[int]:
    """``frames`` in the order an artist wants them: the current frame first, then outward (next, previous, …);
    without a current frame, ascending."""
    fs = sorted(set(int(f) for f in frames))
    if current is None or not fs:
        return fs
    return sorted(fs, key=lambda f: (abs(f - current), f < current))


def frame_path(pattern: str | Path, number: int) -> Path:
    """``edit.%04d.exr`` / ``edit.####.exr`` with ``number`` filled in."""
    import re

    text = str(pattern)
    m = re.search(r"%0?(\d*)d", text)
    if m:
        width = int(m.group(1) or 0)
        return Path(text[:m.start()] + f"{number:0{width}d}" + text[m.end():])
    m = re.search(r"#+", text)
    if m:
        return Path(text[:m.start()] + f"{number:0{len(m.group(0))}d}" + text[m.end():])
    raise InvalidParameterError(f"{pattern} is not a sequence pattern (use %04d or ####)")


#: The channel (EXR) of the compositor's weights when the daemon returns them with a frame.
MATTE_CHANNEL = "ned.matte"


def matte_pattern(pattern: str | Path) -> str:
    """Where a PNG frame's matte goes: ``NAME.%04d.png`` -> ``NAME.matte.%04d.png`` (EXR frames hold it as the
    :data:`MATTE_CHANNEL` channel)."""
    import re

    text = str(pattern)
    m = re.search(r"%0?\d*d|#+", text)
    if m is None:
        raise InvalidParameterError(f"{pattern} is not a sequence pattern (use %04d or ####)")
    return f"{text[:m.start()].rstrip('._')}.matte.{text[m.start():]}"


def render_to_file(shot: Shot, frame: int, pattern: str | Path) -> tuple[Path, str | None]:
    """Render frame ``frame`` with the daemon reading the shot's source itself, and write it to ``pattern``'s
    file for that frame (atomically; windows and every channel kept). Returns ``(path, reason)``.

    A matte the daemon returns with the frame (a second array whose one channel is :data:`MATTE_CHANNEL`: the
    compositor's weights) is kept: an extra channel of an EXR frame (in the frame's pixel type), a 16-bit
    ``NAME.matte.%04d.png`` beside a PNG one (:func:`matte_pattern`)."""
    import inspect

    try:                                  # ask for the matte where this client offers it
        ask = {"matte": True} if "matte" in inspect.signature(shot.render).parameters else {}
    except (TypeError, ValueError):
        ask = {}
    try:
        pixels, reply = shot.render(int(frame), with_info=True, **ask)
    except DaemonError as exc:            # a daemon that keeps no matte (its device fast path): the frame alone
        if not ask or exc.code != "unsupported":
            raise
        pixels, reply = shot.render(int(frame), with_info=True)
    spec = reply.specs[0]
    path = frame_path(pattern, frame)
    arr, channels = np.asarray(pixels), tuple(spec.channels)
    matte = _matte_of(reply, arr.shape[:2])
    if matte is not None and path.suffix.lower() == ".exr" and arr.dtype.kind == "f":
        arr = np.concatenate([arr, matte.astype(arr.dtype)[..., None]], axis=2)
        channels += (MATTE_CHANNEL,)
    elif matte is not None:
        write_frame(frame_path(matte_pattern(pattern), frame).with_suffix(".png"),
                    np.round(np.clip(matte, 0.0, 1.0) * 65535.0).astype(np.uint16), ("Y",))
    write_frame(path, arr, channels, spec.data_window, spec.display_window)
    return path, (reply.result or {}).get("reason")


def _matte_of(reply, size) -> np.ndarray | None:
    """The (H, W) float32 matte among the reply's further arrays, or None."""
    for spec, array in zip(list(reply.specs)[1:], list(reply.arrays)[1:]):
        if tuple(spec.channels) == (MATTE_CHANNEL,) and array is not None:
            matte = np.asarray(array, np.float32).reshape(size)
            return matte
    return None


@dataclass(frozen=True)
class FrameDone:
    """One rendered frame (or why not): ``path`` is None when it failed; ``reason`` says why the daemon passed
    it through (no face…), ``error`` why it failed."""

    frame: int
    path: Path | None
    reason: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class RenderSummary:
    """The end of a :class:`FrameRenderer` run."""

    rendered: tuple[int, ...]
    failed: tuple[tuple[int, str], ...]
    skipped: tuple[int, ...]
    cancelled: bool
    unavailable: bool
    seconds: float

    @property
    def message(self) -> str:
        parts = [f"{len(self.rendered)} frame(s) rendered in {self.seconds:.1f}s"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} already there")
        if self.failed:
            parts.append(f"{len(self.failed)} failed (frame {self.failed[0][0]}: {self.failed[0][1]})")
        if self.cancelled:
            parts.append("cancelled")
        if self.unavailable:
            parts.append("the daemon stopped answering")
        return ", ".join(parts)


class FrameRenderer:
    """Renders a session's frames to an image sequence in a background thread (never touches the host UI).

    Args:
        link: the daemon link; handle: the analysed session; pattern: ``…/edit.%04d.exr``.
        frames: the frame numbers, in the order to render them (see :func:`ordered_frames`).
        on_frame: called with each :class:`FrameDone`; on_done: with the :class:`RenderSummary` (both through
            ``post``); overwrite: render frames whose file exists (default: keep them, a resumed render).
    """

    def __init__(self, link: DaemonLink, handle: ShotHandle, pattern: str | Path, frames: Sequence[int],
                 on_frame: Callable[[FrameDone], None] | None = None,
                 on_done: Callable[[RenderSummary], None] | None = None,
                 post: Callable[..., Any] | None = None, overwrite: bool = False):
        self.link, self.handle, self.pattern, self.frames = link, handle, pattern, list(frames)
        self.on_frame = on_frame or (lambda done: None)
        self.on_done = on_done or (lambda summary: None)
        self.post = post or (lambda fn, *args: fn(*args))
        self.overwrite = overwrite
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self.summary: RenderSummary | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> "FrameRenderer":
        self.thread = threading.Thread(target=self._run, name="ned-fx-render", daemon=True)
        self.thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> RenderSummary | None:
        self._finished.wait(timeout)
        return self.summary

    @property
    def running(self) -> bool:
        return self.thread is not None and not self._finished.is_set()

    def _run(self) -> None:
        started = time.perf_counter()
        rendered, failed, skipped = [], [], []
        unavailable = False
        try:
            for f in self.frames:
                if self._cancel.is_set():
                    break
                if not self.overwrite and frame_path(self.pattern, f).is_file():
                    skipped.append(f)
                    continue
                try:
                    path, reason = self.link.call(lambda c: render_to_file(self.handle.bind(c), f, self.pattern))
                except DaemonUnavailableError:
                    unavailable = True
                    self.post(self.on_frame, FrameDone(f, None, error=self.link.status.message))
                    break
                except (DaemonError, NedFxError, OSError) as exc:
                    failed.append((f, str(exc)))
                    self.post(self.on_frame, FrameDone(f, None, error=str(exc)))
                    continue
                rendered.append(f)
                self.post(self.on_frame, FrameDone(f, path, reason))
        finally:
            self.summary = RenderSummary(tuple(rendered), tuple(failed), tuple(skipped), self._cancel.is_set(),
                                         unavailable, time.perf_counter() - started)
            self._finished.set()
            self.post(self.on_done, self.summary)
