"""The ned_fx wire protocol (version 1): how hosts and the inference daemon talk over ZeroMQ.

Every message is multipart: frame 0 is a msgpack *header* (a map), frames 1… are raw pixel buffers, sent and
received without copying. The header says what each buffer is (dtype, shape, channel names, row order, colour
space, data and display windows), so a buffer is never interpreted without a declared layout.

Decoding is strict: a header that is not a msgpack map of known keys and types, an unknown message type, another
protocol version, a msgpack extension type, a buffer whose size does not match its declared shape, or an absurd
shape raises :class:`ProtocolError`, which the daemon turns into an ``error`` reply. Nothing is ever unpickled and
no message carries code. This module imports only msgpack, numpy and the standard library (hosts load it inside
Nuke's and Resolve's Pythons). See ``docs/protocol.md``.
"""

from __future__ import annotations

import mmap
import os
import re
import socket
import stat
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import msgpack
import numpy as np

#: The protocol version this module speaks. A peer speaking another version gets a ``version_mismatch`` error.
PROTOCOL_VERSION = 1
#: Versions this module can decode (hello negotiates the highest common one).
SUPPORTED_VERSIONS = (1,)

#: Request types a client may send.
REQUEST_TYPES = ("hello", "describe", "status", "ping", "open", "analyse", "progress", "cancel", "render", "close",
                 "shutdown")
#: Reply types the daemon sends: ``reply`` (success, with ``result``) or ``error`` (with ``error``).
REPLY_TYPES = ("reply", "error")

#: Pixel dtypes on the wire (the dtypes a ned_fx Frame holds).
DTYPES = ("uint8", "uint16", "float16", "float32")
_ITEMSIZE = {"uint8": 1, "uint16": 2, "float16": 2, "float32": 4}
ROW_ORDERS = ("top_down", "bottom_up")   # Nuke's rows are bottom-up

#: Limits: a header this big, an image this wide/high, this many channels or buffers is refused.
MAX_HEADER_BYTES = 64 * 1024
MAX_SIDE = 32768
MAX_CHANNELS = 16
MAX_BUFFERS = 4
MAX_BUFFER_BYTES = 1 << 30      # 1 GiB per buffer (a 16k float32 RGBA plate is 4 GiB: refused)

#: Error codes of ``error`` replies (``error.code``); the message says what to do.
#: ZMTP heartbeats both ends set (ms): a silent peer is dropped after HEARTBEAT_TIMEOUT_MS
HEARTBEAT_IVL_MS = 2000
HEARTBEAT_TIMEOUT_MS = 10000

ERROR_CODES = ("bad_message", "version_mismatch", "unknown_type", "invalid_parameter", "unknown_session",
               "not_ready", "busy", "not_found", "forbidden", "cancelled", "out_of_memory", "shutting_down",
               "internal", "no_face", "unsupported", "consent_required")

_HEADER_KEYS = {"v": int, "type": str, "id": int, "session": str, "frame": int, "params": dict, "buffers": list,
                "result": dict, "error": dict}
_BUFFER_KEYS = {"dtype": str, "shape": list, "channels": list, "row_order": str, "colorspace": str,
                "data_window": list, "display_window": list, "shm": str}

#: The channel name of the edit's matte, the second buffer of a render reply when ``params.matte`` is true: the
#: exact weights the daemon's compositor blended the edit with, (H, W, 1) float32 in the frame's row order and
#: data window (0 where the plate shows, all 0 for a frame passed through).
MATTE_CHANNEL = "ned.matte"
#: The parameters a ``render`` request may carry, and their types (any other key is ``invalid_parameter``).
RENDER_PARAMS = {"matte": bool}

#: Same-host fast path: a buffer may live in a file of SHM_DIR named ``ned_fx-<32 hex>`` instead of a message part.
SHM_DIR = "/dev/shm"
SHM_NAME = re.compile(r"ned_fx-[0-9a-f]{32}")      # always fullmatch (``$`` lets a trailing newline in)


class ProtocolError(ValueError):
    """A message that breaks the protocol. ``code`` is one of :data:`ERROR_CODES`."""

    def __init__(self, message: str, code: str = "bad_message"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class BufferSpec:
    """What one raw pixel buffer holds.

    Attributes:
        dtype: one of :data:`DTYPES`; shape: ``(height, width, channels)`` of the buffer as sent (C order).
        channels: one name per channel (``("R","G","B","A")``).
        row_order: ``"top_down"`` (row 0 is the top) or ``"bottom_up"`` (row 0 is the bottom, Nuke).
        colorspace: a free label the daemon carries back (``"linear"``, ``"sRGB"``, ``"ACEScg"`` …).
        data_window, display_window: inclusive ``(xmin, ymin, xmax, ymax)`` in top-down image space
            (None: the full buffer).
    """

    dtype: str
    shape: tuple[int, int, int]
    channels: tuple[str, ...]
    row_order: str = "top_down"
    colorspace: str = ""
    data_window: tuple[int, int, int, int] | None = None
    display_window: tuple[int, int, int, int] | None = None
    shm: str = ""

    @property
    def nbytes(self) -> int:
        h, w, c = self.shape
        size = _ITEMSIZE.get(self.dtype)
        return h * w * c * (size if size is not None else np.dtype(self.dtype).itemsize)

    def to_wire(self) -> dict:
        d = {"dtype": self.dtype, "shape": list(self.shape), "channels": list(self.channels),
             "row_order": self.row_order, "colorspace": self.colorspace}
        if self.data_window is not None:
            d["data_window"] = list(self.data_window)
        if self.display_window is not None:
            d["display_window"] = list(self.display_window)
        if self.shm:
            d["shm"] = self.shm
        return d

    @classmethod
    def for_array(cls, pixels: np.ndarray, channels: Sequence[str] | None = None, row_order: str = "top_down",
                  colorspace: str = "", data_window=None, display_window=None) -> "BufferSpec":
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if channels is None:
            channels = {1: ("Y",), 2: ("Y", "A"), 3: ("R", "G", "B"), 4: ("R", "G", "B", "A")}.get(pixels.shape[2])
            if channels is None:
                raise ProtocolError(f"name the {pixels.shape[2]} channels", "invalid_parameter")
        spec = cls(pixels.dtype.name, tuple(map(int, pixels.shape)), tuple(channels), row_order, colorspace,
                   None if data_window is None else tuple(int(v) for v in data_window),
                   None if display_window is None else tuple(int(v) for v in display_window))
        return _check_spec(spec)


@dataclass
class Message:
    """A decoded message: the header fields and the buffers (numpy views on the received bytes, no copy)."""

    type: str
    id: int = 0
    session: str | None = None
    frame: int | None = None
    params: dict = field(default_factory=dict)
    specs: list[BufferSpec] = field(default_factory=list)
    arrays: list[np.ndarray | None] = field(default_factory=list)   # None: the buffer is in shared memory
    result: dict | None = None
    error: dict | None = None
    v: int = PROTOCOL_VERSION
    user: str = ""        # the daemon side: who the connection proved to be (set by the daemon, never on the wire)


# ---- encoding ---------------------------------------------------------------------------------------------------

def encode(type: str, id: int = 0, *, session: str | None = None, frame: int | None = None,
           params: dict | None = None, arrays: Sequence[tuple[np.ndarray, BufferSpec]] = (),
           result: dict | None = None, error: dict | None = None, v: int = PROTOCOL_VERSION) -> list:
    """Build the parts of one message: ``[header bytes, buffer, …]`` ready for ``send_multipart(copy=False)``.

    Buffers are passed as memoryviews of C-contiguous arrays (no copy is made for contiguous arrays).
    """
    header: dict[str, Any] = {"v": int(v), "type": type, "id": int(id)}
    if session is not None:
        header["session"] = session
    if frame is not None:
        header["frame"] = int(frame)
    if params:
        header["params"] = params
    if result is not None:
        header["result"] = result
    if error is not None:
        header["error"] = error
    parts: list = []
    if arrays:
        header["buffers"] = [spec.to_wire() for _, spec in arrays]
        for arr, spec in arrays:
            if spec.shm:          # the pixels are already in the shared-memory file
                continue
            arr = np.ascontiguousarray(arr)
            if arr.nbytes != spec.nbytes:
                raise ProtocolError(f"buffer of {arr.nbytes} bytes does not match its spec {spec.shape} "
                                    f"{spec.dtype}", "invalid_parameter")
            parts.append(memoryview(arr).cast("B"))
    return [msgpack.packb(header, use_bin_type=True)] + parts


def error_reply(id: int, code: str, message: str, **extra) -> list:
    """An ``error`` reply. A message naming a file whose name is not UTF-8 (surrogate escapes) travels with
    those bytes escaped, and an over-long message is cut, so an error reply can always be encoded."""
    message = str(message).encode("utf-8", "backslashreplace").decode("utf-8")
    if len(message) > 4096:
        message = message[:4000] + " …"
    return encode("error", id, error={"code": code if code in ERROR_CODES else "internal", "message": message,
                                      **extra})


# ---- decoding ---------------------------------------------------------------------------------------------------

def _no_ext(code, data):
    raise ProtocolError(f"msgpack extension type {code} is not allowed")


def _bytes_of(part) -> memoryview:
    if isinstance(part, (bytes, bytearray, memoryview)):
        return memoryview(part)
    buf = getattr(part, "buffer", None)   # zmq.Frame
    if buf is None:
        raise ProtocolError(f"message part of type {type(part).__name__}")
    return memoryview(buf)


def decode_header(raw) -> dict:
    """Decode and check one header: a msgpack map of known keys with the right types."""
    raw = _bytes_of(raw)
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(raw)} bytes is over the {MAX_HEADER_BYTES}-byte limit")
    try:
        header = msgpack.unpackb(raw, raw=False, strict_map_key=True, ext_hook=_no_ext, use_list=True,
                                 max_bin_len=0, max_ext_len=0)
    except ProtocolError:
        raise
    except Exception as exc:   # msgpack raises several types (ExtraData, FormatError, ValueError, …)
        raise ProtocolError(f"header is not valid msgpack: {type(exc).__name__}: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"header must be a msgpack map, got {type(header).__name__}")
    for key, value in header.items():
        want = _HEADER_KEYS.get(key)
        if want is None:
            raise ProtocolError(f"unknown header key {key[:40]!r}; valid: {', '.join(_HEADER_KEYS)}")
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ProtocolError(f"header key {key!r} must be {want.__name__}, got {type(value).__name__}")
    for key in ("v", "type"):
        if key not in header:
            raise ProtocolError(f"header has no {key!r}")
    return header


def decode(parts: Sequence, *, request: bool = True) -> Message:
    """Decode a received multipart message (``recv_multipart(copy=False)`` parts, or bytes).

    Raises:
        ProtocolError: anything that breaks the protocol (the ``code`` says which kind).
    """
    if not parts:
        raise ProtocolError("empty message")
    header = decode_header(parts[0])
    version = header["v"]
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError(f"protocol version {version} is not supported; this side speaks "
                            f"{', '.join(map(str, SUPPORTED_VERSIONS))}: upgrade the older of client and daemon",
                            "version_mismatch")
    kind = header["type"]
    valid = REQUEST_TYPES if request else REPLY_TYPES
    if kind not in valid:
        raise ProtocolError(f"unknown message type {kind[:40]!r}; valid: {', '.join(valid)}", "unknown_type")
    wire_specs = header.get("buffers", [])
    if len(wire_specs) > MAX_BUFFERS:
        raise ProtocolError(f"{len(wire_specs)} buffers declared; at most {MAX_BUFFERS}")
    buffers = list(parts[1:])
    specs = [spec_from_wire(wire, i) for i, wire in enumerate(wire_specs)]
    inline = [s for s in specs if not s.shm]
    if len(buffers) != len(inline):
        raise ProtocolError(f"header declares {len(inline)} inline buffer(s) but {len(buffers)} were sent")
    arrays: list = []
    parts_left = iter(buffers)
    for i, spec in enumerate(specs):
        if spec.shm:
            arrays.append(None)
            continue
        data = _bytes_of(next(parts_left))
        if data.nbytes != spec.nbytes:
            raise ProtocolError(f"buffer {i} has {data.nbytes} bytes but its declared shape {list(spec.shape)} "
                                f"{spec.dtype} needs {spec.nbytes}")
        arrays.append(np.frombuffer(data, dtype=spec.dtype).reshape(spec.shape))
    return Message(type=kind, id=header.get("id", 0), session=header.get("session"), frame=header.get("frame"),
                   params=header.get("params", {}), specs=specs, arrays=arrays, result=header.get("result"),
                   error=header.get("error"), v=version)


def spec_from_wire(wire: Any, index: int = 0) -> BufferSpec:
    """Check one buffer descriptor from a header."""
    if not isinstance(wire, dict):
        raise ProtocolError(f"buffer {index} descriptor must be a map")
    for key, value in wire.items():
        want = _BUFFER_KEYS.get(key)
        if want is None:
            raise ProtocolError(f"buffer {index}: unknown key {str(key)[:40]!r}; valid: {', '.join(_BUFFER_KEYS)}")
        if not isinstance(value, want):
            raise ProtocolError(f"buffer {index}: {key!r} must be {want.__name__}")
    for key in ("dtype", "shape", "channels"):
        if key not in wire:
            raise ProtocolError(f"buffer {index} has no {key!r}")
    shape = wire["shape"]
    if len(shape) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
        raise ProtocolError(f"buffer {index}: shape must be [height, width, channels] integers")
    channels = wire["channels"]
    if not all(isinstance(c, str) and 0 < len(c) <= 64 for c in channels):
        raise ProtocolError(f"buffer {index}: channel names must be non-empty strings")
    spec = BufferSpec(wire["dtype"], tuple(shape), tuple(channels), wire.get("row_order", "top_down"),
                      wire.get("colorspace", "")[:64], _window(wire.get("data_window"), index),
                      _window(wire.get("display_window"), index), wire.get("shm", ""))
    return _check_spec(spec, index)


def _window(value, index):
    if value is None:
        return None
    if len(value) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) and abs(v) < 1 << 31
                                  for v in value):
        raise ProtocolError(f"buffer {index}: a window must be [xmin, ymin, xmax, ymax] integers")
    if value[2] < value[0] or value[3] < value[1]:
        raise ProtocolError(f"buffer {index}: window {value} has xmax < xmin or ymax < ymin")
    return tuple(value)


def _check_spec(spec: BufferSpec, index: int = 0) -> BufferSpec:
    if spec.dtype not in DTYPES:
        raise ProtocolError(f"buffer {index}: dtype {spec.dtype[:20]!r} is not one of {', '.join(DTYPES)}")
    h, w, c = spec.shape
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE and 0 < c <= MAX_CHANNELS):
        raise ProtocolError(f"buffer {index}: shape {list(spec.shape)} is out of range (sides 1..{MAX_SIDE}, "
                            f"channels 1..{MAX_CHANNELS})")
    if spec.nbytes > MAX_BUFFER_BYTES:
        raise ProtocolError(f"buffer {index}: {spec.nbytes} bytes is over the {MAX_BUFFER_BYTES}-byte limit")
    if len(spec.channels) != c or len(set(spec.channels)) != c:
        raise ProtocolError(f"buffer {index}: {c} channels need {c} unique names, got {list(spec.channels)}")
    if spec.shm and not SHM_NAME.fullmatch(spec.shm):
        raise ProtocolError(f"buffer {index}: shared-memory name must be ned_fx-<32 hex digits>")
    if spec.row_order not in ROW_ORDERS:
        raise ProtocolError(f"buffer {index}: row_order must be one of {', '.join(ROW_ORDERS)}")
    if spec.data_window is not None:
        x0, y0, x1, y1 = spec.data_window
        if (y1 - y0 + 1, x1 - x0 + 1) != (h, w):
            raise ProtocolError(f"buffer {index}: data window {list(spec.data_window)} is "
                                f"{x1 - x0 + 1}x{y1 - y0 + 1} but the buffer is {w}x{h}")
    return spec


# ---- same-host fast path: shared memory ------------------------------------------------------------------------

def shm_path(name: str) -> str:
    if not isinstance(name, str) or not SHM_NAME.fullmatch(name):
        raise ProtocolError("shared-memory name must be ned_fx-<32 hex digits>")
    return os.path.join(SHM_DIR, name)


def attach_shm(spec: BufferSpec, create: bool = False) -> np.ndarray:
    """Map the shared-memory file of ``spec`` as an array (writable). The file must be a regular file of this
    user, exactly ``spec.nbytes`` long; symlinks are refused. ``create`` makes it (the client side)."""
    path = shm_path(spec.shm)
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | ((os.O_CREAT | os.O_EXCL) if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise ProtocolError(f"cannot open shared memory {spec.shm}: {exc.strerror}", "not_found") from None
    try:
        if create:
            os.ftruncate(fd, spec.nbytes)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_size != spec.nbytes:
            raise ProtocolError(f"shared memory {spec.shm} is not a {spec.nbytes}-byte file of this user")
        mm = mmap.mmap(fd, spec.nbytes)
    finally:
        os.close(fd)
    return np.frombuffer(mm, dtype=spec.dtype).reshape(spec.shape)


def hold_shm(name: str) -> int:
    """Open a shared-memory file this process created and hold a shared ``flock`` on it for as long as the
    returned descriptor stays open: the mark of a live owner that :func:`remove_stale_shm` looks for."""
    try:
        import fcntl
    except ImportError:                      # not a POSIX system: no shared-memory frames there either
        raise OSError("no flock on this platform") from None

    fd = os.open(shm_path(name), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    return fd


def remove_stale_shm(min_age: float = 10.0, names=None) -> list[str]:
    """Remove this user's shared-memory frame files (``ned_fx-<32 hex>`` in :data:`SHM_DIR`) whose client is gone:
    no process holds the ``flock`` a live client keeps on its files (:func:`hold_shm`). Files younger than
    ``min_age`` seconds are left alone (a client takes its lock just after creating the file); ``names``: look at
    these only. Returns the names removed. Clients run it when they make their first buffer, the daemon when it
    starts."""
    removed: list[str] = []
    try:
        import fcntl
    except ImportError:
        return removed

    try:
        names = [n for n in (os.listdir(SHM_DIR) if names is None else names) if SHM_NAME.fullmatch(n)]
    except OSError:
        return removed
    now = time.time()
    for name in names:
        path = os.path.join(SHM_DIR, name)
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or now - st.st_ctime < min_age:
                continue
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # nobody holds it: its client is gone
            if os.fstat(fd).st_ino == os.lstat(path).st_ino:
                os.unlink(path)
                removed.append(name)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


# ---- authentication: the key a same-user (or granted) client presents -------------------------------------------

#: The environment variable naming a key file to present instead of this user's own (a grant from a daemon's
#: owner to another user or machine: ``ned-fx serve --grant NAME``).
KEY_ENV = "NED_FX_DAEMON_KEY"
#: The name the daemon user's own key carries (clients presenting it are the daemon's owner).
OWNER = "owner"
KEY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_KEY_SECRET = re.compile(r"[0-9a-f]{32,128}")


def runtime_folder(create: bool = False):
    """This user's private folder for the daemon's files (its key, its lane sockets): ``$XDG_RUNTIME_DIR/ned_fx``
    or ``<tmp>/ned_fx-<uid>``. ``create`` makes it (0700) and checks it is private.

    Raises:
        PermissionError: it is not a private folder of this user (a symlink, another owner, group/other access).
    """
    import tempfile
    from pathlib import Path

    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not hasattr(os, "getuid"):            # Windows (a host talking to a daemon elsewhere): per-user app data
        return Path(os.environ.get("LOCALAPPDATA") or tempfile.gettempdir()) / "ned_fx"
    folder = (Path(runtime) / "ned_fx" if runtime and os.path.isdir(runtime)
              else Path(tempfile.gettempdir()) / f"ned_fx-{os.getuid()}")
    if create:
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise PermissionError(f"{folder} is not a private folder of this user (mode "
                                  f"{oct(st.st_mode & 0o777)}); remove it and start the daemon again")
    return folder


def owner_key_path():
    """Where this user's daemons keep their key (made 0600 at a daemon's first start)."""
    return runtime_folder() / "daemon.key"


def read_key(path) -> tuple[str, str]:
    """``(name, secret)`` from a key file (one line ``NAME SECRET``) of this user that no one else may read.

    Raises:
        PermissionError: the file is a symlink, not a regular file, not this user's, or readable by others.
        FileNotFoundError: no such file. ValueError: not a key file.
    """
    fd = os.open(str(path), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        posix = hasattr(os, "getuid")            # Windows has no owner/mode bits to check here
        if not stat.S_ISREG(st.st_mode) or (posix and (st.st_uid != os.getuid() or st.st_mode & 0o077)):
            raise PermissionError(f"key file {path} must be a regular file of this user that only this user may "
                                  f"read (chmod 600); it is mode {oct(st.st_mode & 0o777)}, uid {st.st_uid}")
        text = os.read(fd, 512).decode("ascii", "replace").split()
    finally:
        os.close(fd)
    if len(text) != 2 or not KEY_NAME.fullmatch(text[0]) or not _KEY_SECRET.fullmatch(text[1]):
        raise ValueError(f"{path} is not a ned_fx daemon key file (one line: NAME SECRET)")
    return text[0], text[1]


def write_key(path, name: str) -> tuple[str, str]:
    """Make a key file ``path`` (0600, whatever the umask) for ``name``, unless one is there already; return the
    key the file holds (an existing one is read and checked, so concurrent first starts agree on one key)."""
    import secrets

    if not KEY_NAME.fullmatch(name):
        raise ValueError(f"key name {name!r}: letters, digits, '_', '.', '-' only (1 to 64)")
    secret = secrets.token_hex(32)
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, f"{name} {secret}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, str(path))                  # atomic, and never over an existing key
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return read_key(path)


def client_key(path=None) -> tuple[str, str] | None:
    """The key a client presents: ``path``, else ``$NED_FX_DAEMON_KEY``, else this user's own daemon key when
    there is one (None: no key, the client connects without one and an authenticating daemon refuses it)."""
    path = path or os.environ.get(KEY_ENV) or None
    if path is None:
        own = owner_key_path()
        return read_key(own) if os.path.lexists(own) else None
    return read_key(path)


# ---- the local lane's framing (a Unix-domain stream socket; see ned_fx/daemon/lane.py) ---------------------

_LANE_LEN = struct.Struct("<I")


def send_lane_message(sock, parts: list) -> None:
    """Send one message over a local lane (:mod:`ned_fx.daemon.lane`): ``<u32 length><header>``; lane messages
    have no inline buffers (shared-memory renders only)."""
    header = bytes(_bytes_of(parts[0]))
    sock.sendall(_LANE_LEN.pack(len(header)) + header)


class LaneReader:
    """Reads lane messages off a stream socket with as few ``recv`` calls as the data allows (usually one per
    message: the length and the header arrive together); bytes of a next message stay buffered."""

    def __init__(self, sock):
        self.sock = sock
        self._buf = bytearray()

    def read(self, spin: float = 0.0) -> bytes | None:
        """The next message's header bytes; None when the peer closed the connection between messages.

        Args:
            spin: seconds to poll without blocking before sleeping in ``recv`` (a reply due in microseconds
                then needs no wake-up of this thread: on virtual machines a wake-up costs tens of µs).

        Raises:
            ProtocolError: a declared length outside 1..MAX_HEADER_BYTES, or the connection closed mid-message.
            OSError: the socket's own errors (timeouts included).
        """
        buf = self._buf
        while True:
            if len(buf) >= 4:
                (n,) = _LANE_LEN.unpack_from(buf)
                if n == 0 or n > MAX_HEADER_BYTES:
                    raise ProtocolError(f"lane message of {n} bytes; headers are 1 to {MAX_HEADER_BYTES} bytes")
                if len(buf) >= 4 + n:
                    message = bytes(buf[4:4 + n])
                    del buf[:4 + n]
                    return message
            chunk = None
            if spin > 0:
                end = time.perf_counter() + spin
                while chunk is None and time.perf_counter() < end:
                    try:
                        chunk = self.sock.recv(MAX_HEADER_BYTES + 4, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        pass
                spin = 0.0
            if chunk is None:
                chunk = self.sock.recv(MAX_HEADER_BYTES + 4)
            if not chunk:
                if buf:
                    raise ProtocolError("the lane connection closed in the middle of a message")
                return None
            buf += chunk


# ---- parameter descriptors (OFX-style, hosts build their UI from them) -----------------------------------------

def choice(name: str, options: Sequence[str], default: str | None, label: str = "", hint: str = "") -> dict:
    return {"name": name, "kind": "choice", "options": list(options), "default": default, "label": label or name,
            "hint": hint}


def double(name: str, minimum: float, maximum: float, default: float, label: str = "", hint: str = "") -> dict:
    return {"name": name, "kind": "double", "min": minimum, "max": maximum, "default": default,
            "label": label or name, "hint": hint}


def integer(name: str, minimum: int | None, maximum: int | None, default: int | None, label: str = "",
            hint: str = "") -> dict:
    return {"name": name, "kind": "integer", "min": minimum, "max": maximum, "default": default,
            "label": label or name, "hint": hint}


def boolean(name: str, default: bool, label: str = "", hint: str = "") -> dict:
    return {"name": name, "kind": "boolean", "default": default, "label": label or name, "hint": hint}


def string(name: str, default: str | None, label: str = "", hint: str = "", file: bool = False) -> dict:
    return {"name": name, "kind": "file" if file else "string", "default": default, "label": label or name,
            "hint": hint}


def clip(name: str, components: Sequence[str], optional: bool = False, label: str = "") -> dict:
    return {"name": name, "kind": "clip", "components": list(components), "optional": optional,
            "label": label or name}
