"""The local lane: the same-host fast path's headers over a Unix-domain socket.

Shared-memory renders move no pixels over a socket, so what is left of their round trip is the latency of two
small messages. Over ZeroMQ each message crosses the sending process's I/O thread, the kernel and the receiving
process's I/O thread: four thread hand-offs per round trip, which on a loaded or small machine costs far more
than copying a 512² frame. A Unix-domain stream socket wakes the thread blocked on it directly.

The lane carries exactly the protocol's messages (msgpack header, no inline buffers: shm renders only), framed
as ``<u32 header length><header>``. Who may use it:

* the socket file is in a folder only this user can enter (0700, checked), and
* the peer's uid, as the kernel reports it (``SO_PEERCRED``), must be the daemon's own, and
* the first message must be a ``hello`` carrying the lane token, which the daemon only tells over its ZeroMQ
  socket (so a client that could not talk to the daemon, e.g. without its CurveZMQ keys, cannot use the lane).

The daemon advertises the lane in its ``hello`` reply (``result.lane = {"path", "token"}``); a client on another
machine never finds the path (or finds another daemon's, whose token differs) and keeps using ZeroMQ.
"""

from __future__ import annotations

import os
import secrets
import socket
import stat
import struct
import sys
import threading
from pathlib import Path

from .. import protocol as P

#: request types the lane serves after its greeting (a ``hello`` with the token); the rest stay on ZeroMQ
LANE_TYPES = ("ping", "render")
MAX_CONNECTIONS = 64
#: After answering, a lane thread polls its connection this long (seconds) before sleeping in ``recv``: a host
#: sending frames back to back then finds the thread awake (waking a sleeping thread costs ~60 µs on the 2-core
#: virtual machines this was measured on: a 512² shared-memory round trip 205 -> 125 µs). At most this much CPU
#: per request.
LANE_SPIN = 200e-6


def lane_folder() -> Path:
    """This user's folder for lane sockets: ``$XDG_RUNTIME_DIR/ned_fx`` or ``<tmp>/ned_fx-<uid>``, created 0700.

    Raises:
        PermissionError: the folder exists but is not a private folder of this user (a symlink, another owner,
            group/other access).
    """
    return P.runtime_folder(create=True)      # the daemon's key lives there too


def remove_stale(folder: Path) -> list[str]:
    """Remove lane sockets of daemons that are gone (killed: they could not remove their own); returns their names.
    A socket whose daemon's pid is alive (or not ours to ask about) is left alone."""
    removed = []
    for path in folder.glob("lane-*-*.sock"):
        try:
            pid = int(path.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue                       # alive
        except ProcessLookupError:
            pass
        except (PermissionError, OSError):
            continue
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                path.unlink()
                removed.append(path.name)
        except OSError:
            pass
    return removed


def peer_uid(sock: socket.socket) -> int | None:
    """The connected peer's uid as the kernel reports it (None where the platform does not say)."""
    if hasattr(socket, "SO_PEERCRED"):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[1]
    getpeereid = getattr(os, "getpeereid", None)     # not in the standard library; BSD/macOS builds may add it
    return getpeereid(sock.fileno())[0] if getpeereid else None


class LaneReply:
    """Where a request that came over the lane is answered (the daemon's "envelope" for lane requests)."""

    def __init__(self, conn: socket.socket, lock: threading.Lock):
        self.conn, self.lock = conn, lock

    def send(self, parts: list) -> None:
        if len(parts) > 1:          # an inline buffer cannot travel on the lane: say so instead
            rid = _id_of(parts[0])
            parts = P.error_reply(rid, "invalid_parameter", "the reply carries pixels, which the local lane does "
                                                            "not: render with a shared-memory buffer")
        try:
            with self.lock:
                P.send_lane_message(self.conn, parts)
        except OSError:
            pass                    # the client went away; its connection thread cleans up


class LocalLane:
    """The daemon's lane listener: ``LocalLane(handle, log).start()``; ``handle(header_bytes, reply)`` answers a
    request (returning the reply parts, or None when a worker answers later through ``reply.send``)."""

    def __init__(self, handle, log, folder: Path | None = None):
        self.handle, self.log = handle, log
        self.token = secrets.token_hex(16)
        self.path = str((folder or lane_folder()) / f"lane-{os.getpid()}-{self.token[:8]}.sock")
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False

    def advert(self) -> dict:
        """What the ``hello`` reply says of the lane."""
        return {"path": self.path, "token": self.token}

    def start(self) -> "LocalLane":
        remove_stale(Path(self.path).parent)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            s.bind(self.path)
        finally:
            os.umask(old)
        s.listen(16)
        self._listener = s
        threading.Thread(target=self._accept, name="ned-fx-lane", daemon=True).start()
        return self

    def close(self) -> None:
        self._closed = True
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            uid = peer_uid(conn)
            with self._lock:
                full = len(self._conns) >= MAX_CONNECTIONS
                allowed = not full and uid in (None, os.getuid())
                if allowed:
                    self._conns.add(conn)
            if allowed:
                threading.Thread(target=self._serve, args=(conn,), name="ned-fx-lane-conn", daemon=True).start()
            else:
                conn.close()
                self.log("local lane: refused a connection " + ("(too many)" if full else f"of uid {uid}"))

    def _serve(self, conn: socket.socket) -> None:
        lock = threading.Lock()
        reply = LaneReply(conn, lock)
        greeted = False
        reader = P.LaneReader(conn)
        try:
            while not self._closed:
                try:
                    raw = reader.read(spin=LANE_SPIN)
                except P.ProtocolError as exc:
                    reply.send(P.error_reply(0, "bad_message", str(exc)))
                    return
                if raw is None:
                    return
                if not greeted:
                    greeted = self._greet(raw, reply)
                    if not greeted:
                        return
                    continue
                parts = self.handle(raw, reply)
                if parts is not None:
                    reply.send(parts)
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _greet(self, raw: bytes, reply: LaneReply) -> bool:
        try:
            msg = P.decode([raw])
        except P.ProtocolError as exc:
            reply.send(P.error_reply(0, exc.code, str(exc)))
            return False
        token = msg.params.get("lane_token") if msg.type == "hello" else None
        if not isinstance(token, str) or not secrets.compare_digest(token, self.token):
            reply.send(P.error_reply(msg.id, "forbidden", "the local lane needs a hello with the lane token the "
                                                          "daemon's hello reply gives"))
            return False
        reply.send(P.encode("reply", msg.id, result={"lane": True}))
        return True


def _id_of(header) -> int:
    try:
        return int(P.decode_header(header).get("id", 0))
    except Exception:
        return 0


def unavailable_reason() -> str | None:
    """Why this platform has no lane (None: it has one)."""
    if not hasattr(socket, "AF_UNIX"):
        return f"no Unix-domain sockets on {sys.platform}"
    return None
