"""The thin client hosts use to talk to ``ned-fx serve`` (Nuke, Resolve, batch tools).

Imports only pyzmq, msgpack, numpy, the standard library and :mod:`ned_fx.protocol` / :mod:`ned_fx.errors`, so it
loads inside a host's Python with no torch. Requests follow the Lazy Pirate pattern: wait ``timeout`` seconds for
the reply (or, while resends are left, until the connection it went out on drops: the daemon exited or
restarted), then drop the socket, reconnect and resend, up to ``retries`` times; if the daemon still does not
answer, :class:`DaemonUnavailableError` says so. A :class:`Shot` reopens its session by itself when the daemon
restarted (its analysis is cached on disk, so that is quick).

    from ned_fx.client import Client
    with Client("tcp://127.0.0.1:5557") as c:
        shot = c.open("/shows/s1/plate.####.exr", frames="1001-1100", emotion="happy", intensity=0.8)
        shot.wait()
        edited = shot.render(1042, pixels, row_order="bottom_up")   # same layout back
"""

from __future__ import annotations

import atexit
import itertools
import os
import socket
import time
import uuid
import weakref
from typing import Any, Callable, Sequence

import numpy as np
import zmq

from . import protocol as P
from .errors import NedFxError


class DaemonError(NedFxError):
    """The daemon answered with an error reply. ``code`` is one of :data:`ned_fx.protocol.ERROR_CODES`."""

    exit_code = 7

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class DaemonUnavailableError(NedFxError):
    """No daemon answered at the endpoint."""

    exit_code = 8


class DaemonAuthError(DaemonUnavailableError):
    """The daemon refused this client's connection: no key, a wrong key, or another security mechanism (CurveZMQ).
    ``code`` is ``"forbidden"``. A subclass of :class:`DaemonUnavailableError` (the daemon cannot be used)."""

    code = "forbidden"


_STALE_SHM_CHECKED = False


class Client:
    """One connection to the daemon (not thread-safe: use one Client per thread).

    Args:
        endpoint: ``tcp://127.0.0.1:5557`` or ``ipc:///path``.
        timeout: seconds to wait for each reply; retries: resends after a timeout or a dropped connection (Lazy
            Pirate).
        hello: negotiate the protocol version on connect.
        curve: ``(client .key_secret file, server .key file)`` for a daemon started with ``--curve-keys``.
        key: the key file to present (``NAME SECRET``; a grant from the daemon's owner), or ``(name, secret)``.
            Default: ``$NED_FX_DAEMON_KEY``, else this user's own daemon key (see
            :func:`ned_fx.protocol.client_key`): a client of the daemon's own user needs nothing.
        local_lane: send shared-memory renders over the daemon's local lane (a Unix-domain socket, same machine
            and user only; see :mod:`ned_fx.daemon.lane`) when it offers one; otherwise, and whenever the lane
            fails, they go over ZeroMQ like every other request.
    """

    def __init__(self, endpoint: str = "tcp://127.0.0.1:5557", timeout: float = 10.0, retries: int = 2,
                 hello: bool = False, context: zmq.Context | None = None, curve: tuple | None = None,
                 local_lane: bool = True, key: Any = None):
        self.endpoint, self.timeout, self.retries = endpoint, timeout, retries
        self.ctx = context or zmq.Context.instance()
        self._ids = itertools.count(1)
        self.sock: zmq.Socket | None = None
        self._shm: dict = {}
        self._curve = None
        self._key_arg = key
        self._key: tuple[str, str] | None = None
        self._monitor = None
        self._up = False
        self._shm_holds: dict[str, int] = {}
        self.local_lane = local_lane
        self._lane: socket.socket | None = None
        self._lane_retry = 0.0          # monotonic time before which no lane is tried again
        self._open_shots: "weakref.WeakSet[Shot]" = weakref.WeakSet()   # closed when a `with` block ends
        if curve is not None:
            from zmq.auth import load_certificate

            public, secret = load_certificate(str(curve[0]))
            server, _ = load_certificate(str(curve[1]))
            self._curve = (public, secret, server)
        self._connect()
        self.server: dict = {}
        if hello:
            self.server = self.hello()

    def _load_key(self) -> tuple[str, str] | None:
        """The key to present (read again at each connect until one is found: the daemon makes its user's key
        at its first start, which may come after this client was made)."""
        if self._curve is not None or self._key is not None:
            return self._key
        arg = self._key_arg
        try:
            if isinstance(arg, (tuple, list)) and len(arg) == 2:
                self._key = (str(arg[0]), str(arg[1]))
            else:
                self._key = P.client_key(arg)
        except (OSError, ValueError) as exc:
            raise DaemonAuthError(f"cannot use the daemon key: {exc}") from None
        return self._key

    def _connect(self) -> None:
        self._close_socket()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.HEARTBEAT_IVL, P.HEARTBEAT_IVL_MS)
        self.sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, P.HEARTBEAT_TIMEOUT_MS)
        if self._curve is not None:
            self.sock.curve_publickey, self.sock.curve_secretkey, self.sock.curve_serverkey = self._curve
        else:
            key = self._load_key()
            if key is not None:             # ZeroMQ PLAIN: the daemon's ZAP handler checks name and secret
                self.sock.plain_username, self.sock.plain_password = key[0].encode(), key[1].encode()
        # a refused handshake is reported here at once (otherwise it would look like a daemon that never answers),
        # and a dropped connection (the daemon exited or restarted, or its heartbeats stopped): a request in flight
        # on it is lost and is sent again at once, not after the whole timeout
        self._monitor = self.sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                                     | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                                     | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        self._up = False                # a handshake succeeded on the current connection
        self.sock.connect(self.endpoint)

    def _close_socket(self) -> None:
        if self.sock is None:
            return
        if self._monitor is not None:
            try:
                self.sock.disable_monitor()
            except zmq.ZMQError:
                pass
            self._monitor.close(linger=0)
            self._monitor = None
        self.sock.close(linger=0)
        self.sock = None

    def _read_monitor(self) -> bool:
        """Read the connection's monitor events: raise :class:`DaemonAuthError` if the daemon refused this client's
        handshake; True if the connection to the daemon dropped since the last read (what was in flight on it is
        lost: the daemon that held it exited, restarted or stopped answering heartbeats)."""
        from zmq.utils.monitor import recv_monitor_message

        dropped = False
        while self._monitor is not None and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            kind, value = event["event"], int(event["value"])
            if kind in (zmq.EVENT_HANDSHAKE_SUCCEEDED, zmq.EVENT_DISCONNECTED):
                # a connection that was up went down (a refused handshake's drop is reported as the refusal)
                dropped |= self._up and kind == zmq.EVENT_DISCONNECTED
                self._up = kind == zmq.EVENT_HANDSHAKE_SUCCEEDED
                continue
            if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                why = ("this client presented no key" if self._curve is None and self._key is None
                       else "the key this client presented is not one the daemon accepts")
                raise DaemonAuthError(
                    f"the ned_fx daemon at {self.endpoint} refused this client ({why}; status {value}). Run the "
                    f"client as the daemon's user (its key is read from {P.owner_key_path()}), or ask the "
                    f"daemon's owner for a key (`ned-fx serve --grant NAME`) and set ${P.KEY_ENV} to it")
            if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == getattr(
                    zmq, "PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH", 0x11000002):
                mine = "CurveZMQ" if self._curve is not None else ("a key" if self._key is not None else "no key")
                raise DaemonAuthError(
                    f"the ned_fx daemon at {self.endpoint} refused this client: it uses another security mechanism "
                    f"than this client ({mine}). Same-user clients find the daemon's key by themselves; for a "
                    f"daemon started with --curve-keys pass curve=(client .key_secret, server.key); otherwise "
                    f"set ${P.KEY_ENV} to a key the daemon's owner granted (`ned-fx serve --grant NAME`)")
        return dropped

    def close(self) -> None:
        self._drop_lane(retry_after=float("inf"))
        self._close_socket()
        for name, _ in self._shm.values():
            _unlink(name)
        self._shm.clear()
        for fd in self._shm_holds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._shm_holds.clear()

    def shm_buffer(self, shape: Sequence[int], dtype, role: str = "frame") -> tuple[str, np.ndarray]:
        """A shared-memory frame buffer of this shape and dtype (same-host fast path), reused across renders.
        A host may write its pixels straight into the array and pass it to :meth:`Shot.render` with ``shm=True``.
        ``role``: buffers of different roles never share a file (``"matte"``: where the daemon writes the matte,
        which may have a single-channel float frame's shape)."""
        global _STALE_SHM_CHECKED
        key = (tuple(int(s) for s in shape), np.dtype(dtype).str) + ((role,) if role != "frame" else ())
        if key not in self._shm:
            if not _STALE_SHM_CHECKED:          # frame files of this user's clients that died (kill -9)
                _STALE_SHM_CHECKED = True
                P.remove_stale_shm()
            name = f"ned_fx-{uuid.uuid4().hex}"
            spec = P.BufferSpec(np.dtype(dtype).name, key[0], ("_",) * key[0][2], shm=name)
            arr = P.attach_shm(spec, create=True)
            try:
                self._shm_holds[name] = P.hold_shm(name)     # the mark of a live owner
            except OSError:
                pass
            atexit.register(_unlink, name)
            self._shm[key] = (name, arr)
        return self._shm[key]

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        """The end of a ``with Client(...)`` block: close the sessions it opened and left open, then the client
        (a daemon that no longer answers is not waited for)."""
        for shot in list(self._open_shots):
            try:
                self.request("close", session=shot.id, retries=0, timeout=min(self.timeout, 2.0))
            except Exception:            # the daemon closes idle sessions itself in the end
                pass
        self._open_shots.clear()
        self.close()

    # -- the request/reply core -----------------------------------------------------------------------------
    def request(self, type: str, *, session: str | None = None, frame: int | None = None,
                params: dict | None = None, arrays: Sequence = (), timeout: float | None = None,
                retries: int | None = None, lane: bool = False) -> P.Message:
        """Send one request and return its reply (a decoded ``reply`` message). ``lane``: try the local lane
        first (shared-memory renders).

        A ``shutting_down`` error (a daemon restarting gracefully) is retried like a lost daemon, within the same
        time (``timeout`` × attempts): the next daemon on the endpoint answers it (a session it does not know
        is reopened by :class:`Shot`).

        Raises:
            DaemonError: an error reply; DaemonUnavailableError: no reply after every retry;
            DaemonAuthError: the daemon refused this client's connection (no key or a wrong one).
        """
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        budget = time.monotonic() + timeout * (retries + 1)
        pause = 0.05
        while True:
            try:
                return self._request_once(type, session=session, frame=frame, params=params, arrays=arrays,
                                          timeout=timeout, retries=retries, lane=lane)
            except DaemonError as exc:
                if exc.code != "shutting_down" or type == "shutdown" or time.monotonic() + pause > budget:
                    raise
            time.sleep(pause)            # the old daemon finishes its work; the new one takes the endpoint
            pause = min(pause * 2, 0.5)
            if self._lane is not None:
                self._drop_lane(retry_after=0.5)

    def _request_once(self, type: str, *, session, frame, params, arrays, timeout: float, retries: int,
                      lane: bool) -> P.Message:
        conn = self._lane_socket() if lane else None
        if conn is not None:
            rid = next(self._ids)
            parts = P.encode(type, rid, session=session, frame=frame, params=params, arrays=arrays)
            reply = self._lane_request(conn, parts, rid, timeout)
            if reply is not None:
                return _checked(reply)
        attempt, rekeyed = 0, False
        while attempt <= retries:
            attempt += 1
            rid = next(self._ids)
            parts = P.encode(type, rid, session=session, frame=frame, params=params, arrays=arrays)
            self._check_size(parts)
            if self.sock is None:        # refused before: a fresh handshake (a key may have been granted since)
                self._connect()
            try:
                reply = self._send_and_wait(parts, rid, timeout, resend_on_drop=attempt <= retries)
            except DaemonAuthError:
                # no key when this client connected, and the daemon made one since (its first start): once,
                # connect again presenting it and resend
                if rekeyed or self._key is not None or self._curve is not None or self._load_key() is None:
                    # refused: ZeroMQ gives that connection up for good (the next request on it would wait its
                    # whole timeout and say "no daemon answered"); the next request connects afresh instead
                    self._close_socket()
                    raise
                rekeyed, attempt, reply = True, attempt - 1, None
            if reply is not None:
                return _checked(reply)
            self._connect()              # Lazy Pirate: a fresh socket, then resend
        raise DaemonUnavailableError(
            f"no ned-fx daemon answered at {self.endpoint} within {timeout:g}s ({retries + 1} attempt(s)); "
            f"start one with `ned-fx serve`, or check the endpoint (and the CurveZMQ keys if it uses them)")

    def _send_and_wait(self, parts: list, rid: int, timeout: float, resend_on_drop: bool) -> P.Message | None:
        """Send one attempt of a request and wait for its reply: the reply, or None after ``timeout`` (with
        ``resend_on_drop``, as soon as the connection it went out on drops: the daemon holding it is gone).

        Raises:
            DaemonAuthError: the daemon refused this client's handshake.
        """
        self._read_monitor()          # a drop before this request is sent does not concern it: ZeroMQ reconnects
        deadline = time.monotonic() + timeout
        if not self._send_by(parts, deadline):
            return None
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        if self._monitor is not None:
            poller.register(self._monitor, zmq.POLLIN)
        while True:
            left = deadline - time.monotonic()
            events = dict(poller.poll(int(left * 1000) + 1)) if left > 0 else {}
            if self._monitor is not None and self._monitor in events:
                # the last attempt waits its time out, as it always did: a drop seen late may be an older one's
                if self._read_monitor() and self.sock not in events and resend_on_drop:
                    return None
                if self.sock not in events:
                    continue
            if self.sock not in events:
                self._read_monitor()
                return None
            reply = P.decode(self.sock.recv_multipart(copy=False), request=False)
            if reply.id == rid:      # else a late reply to an earlier, abandoned attempt
                return reply

    def _send_by(self, parts: list, deadline: float) -> bool:
        """Send ``parts`` by ``deadline`` (``time.monotonic``): False when the socket could not take them in time. A
        DEALER with no connection blocks a send, for good: a handshake the daemon refused before the request went
        out leaves none (seen in the suite: a refused client's request hung in ``send`` instead of being told), so
        the send waits on the monitor too.

        Raises:
            DaemonAuthError: the daemon refused this client's handshake meanwhile.
        """
        poller = None
        while True:
            try:
                self.sock.send_multipart(parts, copy=False, flags=zmq.NOBLOCK)
                return True
            except zmq.Again:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                self._read_monitor()
                return False
            if poller is None:
                poller = zmq.Poller()
                poller.register(self.sock, zmq.POLLOUT)
                if self._monitor is not None:
                    poller.register(self._monitor, zmq.POLLIN)
            if self._monitor in dict(poller.poll(int(left * 1000) + 1)):
                self._read_monitor()        # raises on a refusal; a drop: ZeroMQ reconnects, the send goes on waiting

    # -- the local lane (same-host shared-memory renders) ---------------------------------------------------
    def _lane_socket(self) -> socket.socket | None:
        """The greeted lane connection, or None (no lane offered, another machine, or a recent failure)."""
        if self._lane is not None:
            return self._lane
        if not self.local_lane or time.monotonic() < self._lane_retry or not hasattr(socket, "AF_UNIX"):
            return None
        self._lane_retry = time.monotonic() + 30.0      # until it works: ask again in a while, not every frame
        try:
            lane = self.hello().get("lane")
        except NedFxError:
            return None
        if not isinstance(lane, dict) or not isinstance(lane.get("path"), str) or not os.path.exists(lane["path"]):
            return None
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.settimeout(min(self.timeout, 5.0))
            conn.connect(lane["path"])
            reader = P.LaneReader(conn)
            P.send_lane_message(conn, P.encode("hello", 0, params={"lane_token": str(lane.get("token", ""))}))
            raw = reader.read()
            reply = P.decode([raw], request=False) if raw is not None else None
        except (OSError, P.ProtocolError):
            conn.close()
            return None
        if reply is None or reply.type != "reply":
            conn.close()
            return None
        self._lane = conn
        self._lane_reader = reader
        return conn

    def _drop_lane(self, retry_after: float = 1.0) -> None:
        if self._lane is not None:
            self._lane.close()
            self._lane = None
        self._lane_retry = time.monotonic() + retry_after

    def _lane_request(self, conn: socket.socket, parts: list, rid: int, timeout: float) -> P.Message | None:
        """One request over the lane; None when the lane failed (then dropped: the caller uses ZeroMQ)."""
        try:
            if conn.gettimeout() != timeout:
                conn.settimeout(timeout)
            P.send_lane_message(conn, parts)
            while True:
                raw = self._lane_reader.read()
                if raw is None:
                    raise OSError("the daemon closed the lane")
                reply = P.decode([raw], request=False)
                if reply.id == rid:
                    return reply
        except (OSError, P.ProtocolError):       # socket.timeout is an OSError
            self._drop_lane()
            return None

    # -- requests -------------------------------------------------------------------------------------------
    def _check_size(self, parts) -> None:
        """The daemon drops a message part over its limit without a word: refuse it here, clearly."""
        limit = (getattr(self, "server", None) or {}).get("max_message_bytes")
        if not limit:
            return
        for part in parts:
            size = len(part.buffer) if hasattr(part, "buffer") else memoryview(part).nbytes
            if size > limit:
                raise DaemonError("invalid_parameter", f"a message part of {size / 2**20:.1f} MiB is over the "
                                  f"daemon's limit of {limit / 2**20:.1f} MiB (ned-fx serve --max-message-mb)")

    def hello(self) -> dict:
        return self.request("hello", params={"versions": list(P.SUPPORTED_VERSIONS), "client": "ned_fx.client"}
                            ).result

    def describe(self) -> dict:
        return self.request("describe").result

    def status(self) -> dict:
        return self.request("status").result

    def ping(self, timeout: float | None = None, retries: int | None = None) -> dict:
        return self.request("ping", timeout=timeout, retries=retries).result

    def shutdown(self) -> dict:
        return self.request("shutdown", retries=0).result

    def open(self, path: str, frames: str | None = None, face: int | None = None, **instruction) -> "Shot":
        """Open a session for a shot; the daemon starts analysing it. Instruction keys: emotion, intensity,
        regions, speech, keys, curve, reference, reference_frames, reference_neutral_frame, neutral_frame."""
        shot = Shot(self, {"path": str(path), **({"frames": frames} if frames is not None else {}),
                           **({"face": face} if face is not None else {}),
                           **{k: v for k, v in instruction.items() if v is not None}})
        shot.reopen()
        return shot


class Shot:
    """A session on the daemon: poll its analysis, render frames, close it. Reopens after a daemon restart."""

    def __init__(self, client: Client, params: dict):
        self.client, self.params = client, params
        self.id: str | None = None
        self.info: dict = {}

    def reopen(self) -> dict:
        reply = self.client.request("open", params=self.params, retries=0)
        self.id = reply.session
        self.info = reply.result
        self.client._open_shots.add(self)
        return self.info

    def _call(self, type: str, **kw) -> P.Message:
        """A session request; reopens the session once if the daemon no longer knows it (it restarted)."""
        try:
            return self.client.request(type, session=self.id, **kw)
        except DaemonError as exc:
            if exc.code != "unknown_session":
                raise
        self.reopen()              # the daemon restarted: open again (cached analysis) and wait for it
        self.wait()
        return self.client.request(type, session=self.id, **kw)

    def progress(self) -> dict:
        self.info = self._call("progress").result
        return self.info

    def wait(self, timeout: float = 600.0, poll: float = 0.1,
             callback: Callable[[int, int], None] | None = None) -> dict:
        """Block until the analysis is done.

        Raises:
            DaemonError: it failed or was cancelled (the daemon's message); TimeoutError: not done in time.
        """
        end = time.monotonic() + timeout
        last = None
        while True:
            info = self.client.request("progress", session=self.id).result
            self.info = info
            now = (info.get("done", 0), info.get("total", 0))
            if callback and now != last:         # each progress step once
                callback(*now)
                last = now
            if info["state"] == "ready":
                return info
            if info["state"] in ("failed", "cancelled"):
                err = info.get("error") or {}
                raise DaemonError(err.get("code", info["state"]), err.get("message", f"analysis {info['state']}"))
            if time.monotonic() > end:
                raise TimeoutError(f"the analysis of {self.params['path']} was not done in {timeout:g}s")
            time.sleep(poll)

    def analyse(self) -> dict:
        """Restart a cancelled or failed analysis (otherwise just its progress)."""
        self.info = self.client.request("analyse", session=self.id).result
        return self.info

    def cancel(self) -> dict:
        return self.client.request("cancel", session=self.id).result

    def render(self, frame: int, pixels: np.ndarray | None = None, channels: Sequence[str] | None = None,
               row_order: str = "top_down", colorspace: str = "", data_window=None, display_window=None,
               with_info: bool = False, shm: bool = False, matte: bool = False) -> Any:
        """Edit frame ``frame``. With ``pixels`` (H×W×C, the host's own layout) the daemon edits those pixels and
        returns them in the same layout; without, it reads the frame from the source itself.

        Args:
            matte: also return the edit's matte: (H, W, 1) float32, channel :data:`ned_fx.protocol.MATTE_CHANNEL`
                (``ned.matte``), in the frame's row order and data window: the weights the daemon's compositor
                blended the edit with (0 where the plate shows, all 0 for a frame passed through).

        Returns:
            the edited pixels (H×W×C numpy array, read-only view of the received bytes); with ``matte``
            ``(pixels, matte)``; with ``with_info`` ``(pixels, reply)`` where ``reply.result["reason"]`` says why
            a frame was passed through and, with ``matte``, ``reply.arrays[1]`` (``reply.specs[1]``) is the matte.
            With ``shm`` (daemon on this machine) the pixels (and the matte) travel through shared-memory files
            instead of the socket and the returned arrays are views of them: copy them before the next render of
            that size.

        Raises:
            DaemonError: ``unsupported`` for a matte from a daemon rendering on its device fast path.
        """
        arrays = []
        if pixels is not None:
            spec = P.BufferSpec.for_array(pixels, channels, row_order, colorspace, data_window, display_window)
            pixels = pixels.reshape(spec.shape)
            if shm:
                name, buf = self.client.shm_buffer(spec.shape, spec.dtype)
                if not np.shares_memory(buf, pixels):
                    buf[...] = pixels
                spec = P.BufferSpec(spec.dtype, spec.shape, spec.channels, spec.row_order, spec.colorspace,
                                    spec.data_window, spec.display_window, name)
                pixels = buf
            arrays = [(pixels, spec)]
            if shm and matte:           # the daemon writes the matte there too: nothing but headers travel
                shape = (spec.shape[0], spec.shape[1], 1)
                mname, mbuf = self.client.shm_buffer(shape, np.float32, role="matte")
                arrays.append((mbuf, P.BufferSpec("float32", shape, (P.MATTE_CHANNEL,), spec.row_order, "",
                                                  spec.data_window, spec.display_window, mname)))
        reply = self._call("render", frame=int(frame), arrays=arrays, lane=shm and pixels is not None,
                           params={"matte": True} if matte else None)
        if not reply.specs:
            raise DaemonError("bad_message", "the render reply carried no pixels")
        for i, spec in enumerate(reply.specs):
            if reply.arrays[i] is None:     # written back into our shared-memory buffer
                role = "matte" if i > 0 and tuple(spec.channels) == (P.MATTE_CHANNEL,) else "frame"
                reply.arrays[i] = self.client.shm_buffer(spec.shape, spec.dtype, role=role)[1]
        out = reply.arrays[0]
        if with_info:
            return out, reply
        if matte:
            got = [a for s, a in zip(reply.specs[1:], reply.arrays[1:]) if tuple(s.channels) == (P.MATTE_CHANNEL,)]
            if not got:
                raise DaemonError("bad_message", "the render reply carried no matte (a daemon older than the "
                                                 "matte option?)")
            return out, got[0]
        return out

    def close(self) -> None:
        self.client._open_shots.discard(self)
        try:
            self.client.request("close", session=self.id, retries=0)
        except DaemonError as exc:
            if exc.code != "unknown_session":
                raise


def _checked(reply: P.Message) -> P.Message:
    """The reply, or its error as a DaemonError."""
    if reply.type == "error":
        err = reply.error or {}
        raise DaemonError(str(err.get("code", "internal")), str(err.get("message", "error")))
    return reply


def _unlink(name: str) -> None:
    try:
        os.unlink(P.shm_path(name))
    except OSError:
        pass
