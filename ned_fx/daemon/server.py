"""The inference daemon: one ZeroMQ ROUTER socket, engines loaded once, shots as sessions.

The ROUTER loop only decodes, dispatches and forwards replies; analyses run in one worker thread (the tracker is
warm and single-threaded), renders in a small pool. Workers hand their replies back to the loop over an inproc
PUSH/PULL pair (ZeroMQ sockets are not thread-safe), so a slow analysis never stalls other clients, and replies
are sent without blocking (a client that stopped reading loses its replies; the others do not wait).
"""

from __future__ import annotations

import os
import resource
import signal
import stat
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import zmq

from .. import __version__, protocol as P
from ..errors import (InputNotFoundError, InvalidParameterError, NedFxError, NoFaceError, UnreadableMediaError,
                      UnsupportedFormatError)
from ..provenance.consent import ConsentPolicy
from ..provenance.errors import AuditLogError, ConsentRequiredError
from .lane import LANE_TYPES, LaneReply, LocalLane, unavailable_reason
from .sessions import (Cancelled, Session, check_frames, confine_file, confine_media, instruction_dict,
                       instruction_from_params)
from .shm import ShmFiles

ENGINES = ("ned_fx", "identity")
#: How sessions render: ``fast`` — the device fast path (ned_fx.fastpath), frames of all sessions batched;
#: ``opencv`` — ShotRenderer (numpy/OpenCV, the fastest on a CPU) with the face content (mouth interior, eyeballs,
#: occluders kept); ``auto`` — opencv. The fast path renders the warp alone (no face content yet): a choice for
#: throughput on a GPU, never the default.
RENDER_PATHS = ("auto", "opencv", "fast")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
#: Largest files the daemon reads whole at ``open``: an intensity curve, a neural-renderer checkpoint.
MAX_CURVE_BYTES = 1 << 20
MAX_CHECKPOINT_BYTES = 4 << 30
#: Sessions a ``status`` reply lists at most (``params.offset``/``params.limit`` page through the rest).
STATUS_PAGE = 50


def _who_listens(endpoint: str) -> str:
    """`` by PID NAME`` for the process listening on a tcp endpoint's port (Linux /proc), or ``""``."""
    import os
    import re

    m = re.search(r":(\d+)$", endpoint)
    if not m or not endpoint.startswith("tcp://"):
        return ""
    port = int(m.group(1))
    try:
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            if not os.path.exists(table):
                continue
            with open(table) as fh:
                for line in fh.readlines()[1:]:
                    f = line.split()
                    if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "0A":       # LISTEN
                        inodes.add(f[9])
        if not inodes:
            return ""
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        with open(f"/proc/{pid}/cmdline", "rb") as fh:
                            cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
                        return f" by process {pid} ({cmd[:120]})"
            except OSError:
                continue
    except (OSError, ValueError, IndexError):
        return ""
    return " by another process"


def is_loopback(endpoint: str) -> bool:
    """Whether ``endpoint`` only listens on this machine (ipc://, inproc://, tcp on a loopback address)."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if endpoint.startswith("tcp://"):
        host = endpoint[6:].rsplit(":", 1)[0]
        return host in LOOPBACK_HOSTS
    return False


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


class Daemon:
    """The daemon. ``Daemon(endpoint, engine).serve()`` blocks until a shutdown request or SIGTERM.

    Args:
        endpoint: where to bind (``tcp://127.0.0.1:5557``, ``ipc:///tmp/ned_fx.sock``).
        engine: ``"ned_fx"`` (the tracker, manipulator and renderer) or ``"identity"`` (frames come back
            unchanged, no models: for transport tests and benchmarks).
        roots: folders request paths must lie under.
        max_sessions: open sessions at most; max_message: largest accepted message part, bytes.
        device: the tracker's device (``auto``, ``cpu``, ``cuda``…).
        cache: folder of cached analyses (default ``$NED_FX_HOME/cache``).
        session_idle: seconds after which a session nobody used is closed (a killed host never closes its own).
        lease: seconds a session outlives the last of the connections it was used over (a client killed with
            kill -9: its connection drops at once, or after the ZMTP heartbeat timeout); a request over another
            connection renews it.
        curve_keys: a folder made by :func:`make_keys`: CurveZMQ encryption, and only clients whose public key
            is in its ``clients/`` folder are let in.
        render_workers: threads preparing and rendering frames of different sessions at once.
        render_path: one of :data:`RENDER_PATHS`; batch_size: frames per engine call of the fast path;
        fast_box: the fast path's region boxes: ``frame`` (ShotRenderer's boxes and pixels; frames batch into one
            engine call when their boxes coincide) or ``bucket`` (sizes rounded up to 64 pixels: frames of
            different clients' shots share engine calls; lid/lip edges within the fast path's stated tolerance).
        consent: the :class:`~ned_fx.provenance.ConsentPolicy` (default: a consent reference is optional).
        audit: an :class:`~ned_fx.provenance.AuditLog` to record every open (and every refusal) and a summary of
            each session when it ends (closed, expired, shutdown); None: no audit log.
        local_lane: also answer shared-memory renders of same-user clients on this machine over a Unix-domain
            socket (:mod:`ned_fx.daemon.lane`), advertised in the ``hello`` reply.
    """

    def __init__(self, endpoint: str, engine: str = "ned_fx", roots=(), max_sessions: int = 16,
                 max_message: int = P.MAX_BUFFER_BYTES, device: str = "auto", render_workers: int = 8,
                 grace: float = 30.0, cache: str | Path | None = None, session_idle: float = 600.0,
                 curve_keys: str | Path | None = None, log=None, consent: ConsentPolicy | None = None,
                 audit=None, local_lane: bool = True, render_path: str = "auto", batch_size: int = 8,
                 fast_box: str = "frame", lease: float = 60.0):
        if engine not in ENGINES:
            raise InvalidParameterError(f"engine {engine!r}; valid: {', '.join(ENGINES)}")
        if render_path not in RENDER_PATHS:
            raise InvalidParameterError(f"render path {render_path!r}; valid: {', '.join(RENDER_PATHS)}")
        if not 1 <= int(batch_size) <= 64:
            raise InvalidParameterError(f"batch size must be 1 to 64, got {batch_size}")
        if fast_box not in ("frame", "bucket"):
            raise InvalidParameterError(f"fast box {fast_box!r}; valid: frame, bucket")
        self.render_path, self.batch_size, self.fast_box = render_path, int(batch_size), fast_box
        self._fast = None                  # fast(track, edited) -> FastShotRenderer sharing one runner
        self._batcher = None
        self.rendering = 0                 # render requests in the daemon's hands (the batcher waits for them)
        self.consent = consent or ConsentPolicy()
        self.audit = audit
        self.endpoint, self.engine, self.device = endpoint, engine, device
        self.roots = [Path(r) for r in (roots or [os.getcwd()])]
        self.max_sessions, self.max_message, self.grace = max_sessions, max_message, grace
        self.sessions: dict[str, Session] = {}
        self.cache = Path(cache) if cache else None
        self.session_idle = session_idle
        self.lease = float(lease)
        self._conn_monitor = None          # ROUTER socket events: which connections dropped
        self.curve_keys = Path(curve_keys) if curve_keys else None
        self._auth = None
        self.admins: set | None = {P.OWNER}    # identities that see and manage every session (None: all)
        self._swept = time.time()
        self.tracker = None
        self.engine_info: dict = {}
        self.started = time.time()
        self.pending = 0
        self.served = 0
        self.stopping = False
        self._lock = threading.Lock()
        self._local = threading.local()
        self._analysis = ThreadPoolExecutor(1, thread_name_prefix="ned-fx-analyse")
        self._renders = ThreadPoolExecutor(max(render_workers, batch_size), thread_name_prefix="ned-fx-render")
        self._shm = ShmFiles()
        self._opens = ThreadPoolExecutor(2, thread_name_prefix="ned-fx-open")   # reads files an open names
        self.opening = 0                   # open requests being checked off the socket thread
        self.log = log or (lambda msg: print(f"ned-fx serve: {msg}", file=sys.stderr, flush=True))
        self.ctx = zmq.Context()
        self.bound: str | None = None
        self.local_lane = local_lane
        self.lane: LocalLane | None = None
        self.lane_served = 0

    # -- start ------------------------------------------------------------------------------------------------
    def load(self) -> dict:
        """Load the engines once; return what was loaded (also the ``describe`` reply's ``engine``)."""
        if self.engine == "identity":
            self.engine_info = {"engine": "identity", "backend": "none", "precision": "native", "device": "none"}
            return self.engine_info
        from ..tracking import FaceTracker, TrackerConfig

        self.tracker = FaceTracker(TrackerConfig(device=self.device))
        from ..tracking.ort import torch_version

        dev = str(self.tracker.device)
        # what actually runs the tracker's networks (onnxruntime on the CPU where it loaded, else PyTorch)
        runtime = self.tracker.runtime or "torch"
        backend = ("onnxruntime-CPU" if runtime == "onnxruntime"
                   else "torch-CUDA" if dev.startswith("cuda") else "torch-CPU")
        self.engine_info = {"engine": "ned_fx", "backend": backend, "tracker_runtime": runtime,
                            "precision": "float32", "device": dev, "torch": torch_version(),
                            **({"gpu": _gpu_name()} if dev.startswith("cuda") else {})}
        # what this machine could run the engines on (TensorRT engines built, CUDA graphs, …), and why: the
        # daemon itself renders with the torch modules above (the GPU fast path is not wired in yet)
        try:
            from ..engines import select_backend

            self.engine_info["best_available"] = select_backend(self.device or dev).as_dict()   # auto: says why it is the CPU
        except Exception as exc:   # a broken probe must not stop the daemon
            self.engine_info["best_available"] = {"backend": "unknown", "reason": str(exc)}
        self.engine_info["renderer"] = self._load_renderer(dev)
        return self.engine_info

    def _load_renderer(self, dev: str) -> dict:
        """Make the fast path's shared renderer runner and the batcher when sessions render on it."""
        path = self.render_path
        if path == "auto":
            path = "opencv"
        if path == "opencv":
            return {"path": "opencv", "backend": "numpy/OpenCV", "device": "cpu",
                    "why": "ShotRenderer: the face content (mouth interior, eyeballs, occluders) runs there; "
                           "--render-path fast renders the warp alone on the device, batched"}
        from ..engines import make_runner, select_backend
        from ..engines.modules import RendererEngine
        from ..fastpath import FastPathConfig, FastShotRenderer
        from ..rendering import RendererConfig
        from .batching import RenderBatcher

        backend = select_backend(dev).name
        runner = make_runner("geometry_renderer", backend, dev, "fp32",
                             module=RendererEngine(RendererConfig()).eval()).activate()
        config = FastPathConfig(device=dev, backend=backend, batch_size=self.batch_size, box=self.fast_box)
        self._fast = lambda track, edited: FastShotRenderer(track, edited, config=config, runner=runner)
        self._batcher = RenderBatcher(self.batch_size, lambda: self.rendering)
        return {"path": "fast", "backend": backend, "device": dev, "batch_size": self.batch_size, "box": self.fast_box,
                "runner": runner.describe()}

    def bind(self) -> str:
        if self.endpoint.startswith("ipc://"):
            self._check_ipc(self.endpoint[6:])
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if self.curve_keys is not None:
            self._curve(self.sock)
        else:
            self._plain(self.sock)
        self.sock.setsockopt(zmq.MAXMSGSIZE, self.max_message)
        self.sock.setsockopt(zmq.HEARTBEAT_IVL, P.HEARTBEAT_IVL_MS)        # drop dead clients' queues
        self.sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, P.HEARTBEAT_TIMEOUT_MS)
        self.sock.setsockopt(zmq.HEARTBEAT_TTL, P.HEARTBEAT_TIMEOUT_MS)
        self.sock.setsockopt(zmq.SNDHWM, 64)
        self.sock.setsockopt(zmq.RCVHWM, 256)
        old_umask = os.umask(0o177) if self.endpoint.startswith("ipc://") else None   # ipc: a 0600 socket file
        try:
            self.sock.bind(self.endpoint)
        except zmq.ZMQError as exc:
            import errno

            self.sock.close(0)
            if exc.errno == errno.EADDRINUSE:
                from ..errors import EndpointInUseError

                raise EndpointInUseError(f"{self.endpoint} is in use{_who_listens(self.endpoint)}: stop that "
                                         f"process, or start on another port (--port N)") from None
            raise InvalidParameterError(f"cannot listen on {self.endpoint}: {exc}") from None
        finally:
            if old_umask is not None:
                os.umask(old_umask)
        self.bound = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._conn_monitor = self.sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        stale = P.remove_stale_shm()
        if stale:
            self.log(f"removed {len(stale)} shared-memory frame file(s) of clients that are gone")
        self.inbox = self.ctx.socket(zmq.PULL)
        self.inbox.bind(f"inproc://replies-{id(self)}")
        if self.local_lane and unavailable_reason() is None:
            try:
                self.lane = LocalLane(self._handle_lane, self.log).start()
            except OSError as exc:          # no lane costs speed only: the ZeroMQ socket carries everything
                self.log(f"no local lane ({exc}); same-host clients use the ZeroMQ socket")
                self.lane = None
        return self.bound

    def _check_ipc(self, path: str) -> None:
        """Refuse an ``ipc://`` path another daemon listens on (ZeroMQ would silently take it over); remove a
        dead daemon's socket file."""
        import socket as pysocket

        if not path or not os.path.lexists(path):
            return
        st = os.lstat(path)
        if not stat.S_ISSOCK(st.st_mode):
            raise InvalidParameterError(f"{path} exists and is not a socket: choose another ipc:// path")
        probe = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except ConnectionRefusedError:          # nobody listens: a killed daemon's leftover
            if st.st_uid == os.getuid():
                os.unlink(path)
            return
        except OSError:
            return
        finally:
            probe.close()
        from ..errors import EndpointInUseError

        raise EndpointInUseError(f"ipc://{path} is in use by another daemon: stop it, or start on another path")

    def _plain(self, sock) -> None:
        """The default: ZeroMQ PLAIN checked by a ZAP handler against this user's key and its grants."""
        from zmq.auth.thread import ThreadAuthenticator

        from .auth import passwords

        accepted = passwords(self.log)
        self._auth = ThreadAuthenticator(self.ctx)
        self._auth.start()
        from .auth import Secret

        self._auth.configure_plain(domain="*", passwords={k: Secret(v) for k, v in accepted.items()})
        sock.plain_server = True
        self.admins = {P.OWNER}
        if len(accepted) > 1:
            self.log(f"granted clients: {', '.join(sorted(set(accepted) - {P.OWNER}))}")

    def _curve(self, sock) -> None:
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        secret = self.curve_keys / "server.key_secret"
        clients = self.curve_keys / "clients"
        if not secret.is_file() or not clients.is_dir():
            raise InvalidParameterError(f"{self.curve_keys} has no server.key_secret and clients/ folder: make "
                                        f"one with `ned-fx serve --make-keys {self.curve_keys}`")
        public, private = zmq.auth.load_certificate(str(secret))
        self._auth = ThreadAuthenticator(self.ctx)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(clients))
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = private, public, True
        self.admins = None                 # every authorised CurveZMQ key is the owner's to hand out

    # -- reply plumbing ----------------------------------------------------------------------------------------
    def _post(self, envelope, parts: list) -> None:
        """Hand a reply from a worker thread to the loop (a lane request is answered on its lane at once)."""
        if isinstance(envelope, LaneReply):
            envelope.send(parts)
            return
        push = getattr(self._local, "push", None)
        if push is None:
            push = self._local.push = self.ctx.socket(zmq.PUSH)
            push.setsockopt(zmq.LINGER, 0)
            push.connect(f"inproc://replies-{id(self)}")
        push.send_multipart([bytes([len(envelope)])] + envelope + parts, copy=False)

    def _send(self, envelope: list, parts: list) -> None:
        try:
            self.sock.send_multipart(envelope + parts, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.log("a client is not reading its replies; dropped one")
        except zmq.ZMQError as exc:
            self.log(f"could not send a reply: {exc}")

    # -- the loop ----------------------------------------------------------------------------------------------
    def serve(self) -> int:
        if self.bound is None:
            self.bind()
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.inbox, zmq.POLLIN)
        if self._conn_monitor is not None:
            poller.register(self._conn_monitor, zmq.POLLIN)
        self.log(f"listening on {self.bound} (engine {self.engine_info.get('engine')}, "
                 f"{self.engine_info.get('backend')}, {self.engine_info.get('device')})")
        deadline = None
        try:
            while True:
                if self.stopping:
                    if deadline is None:
                        deadline = time.time() + self.grace
                        for s in list(self.sessions.values()):
                            if s.state == "analysing":
                                s.cancel.set()
                    with self._lock:
                        idle = self.pending == 0
                    if idle or time.time() > deadline:
                        break
                events = dict(poller.poll(50))
                if self._conn_monitor is not None and self._conn_monitor in events:
                    self._dropped()
                if time.time() - self._swept > min(5.0, self.session_idle / 4, max(self.lease / 2, 0.5)):
                    self._sweep()
                if self.inbox in events:
                    while True:
                        try:
                            frames = self.inbox.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        cut = 1 + frames[0].bytes[0]
                        self._send(frames[1:cut], frames[cut:])
                if self.sock in events:
                    for _ in range(64):
                        try:
                            frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._handle(frames)
        finally:
            self._analysis.shutdown(wait=False, cancel_futures=True)
            self._renders.shutdown(wait=False, cancel_futures=True)
            self._opens.shutdown(wait=False, cancel_futures=True)
            if self._batcher is not None:
                self._batcher.close()
            for s in list(self.sessions.values()):
                self._end(s, "shutdown")
            if self.lane is not None:
                self.lane.close()
            self._shm.close()
            if self._conn_monitor is not None:
                self.sock.disable_monitor()
                self._conn_monitor.close(0)
            self.sock.close(0)
            self.inbox.close(0)
            if self._auth is not None:
                self._auth.stop()
            self.log("stopped")
        return 0

    def _dropped(self) -> None:
        """Connections that dropped (ROUTER monitor events): a session none of whose connections is up any more
        starts its lease (several threads of one host may use a session, each over its own connection)."""
        from zmq.utils.monitor import recv_monitor_message

        now = time.time()
        while self._conn_monitor.poll(0):
            event = recv_monitor_message(self._conn_monitor)
            if event["event"] != zmq.EVENT_DISCONNECTED:
                continue
            fd = int(event["value"])
            for s in list(self.sessions.values()):
                if fd in s.conns:
                    s.conns.discard(fd)
                    if not s.conns:
                        s.orphaned = now

    def _sweep(self) -> None:
        """Close sessions idle for longer than ``session_idle``, and sessions whose client's connection dropped
        ``lease`` seconds ago with no request since (not while they render)."""
        now = self._swept = time.time()
        self._shm.prune()                  # frame files their clients removed are not kept alive here
        for sid, s in list(self.sessions.items()):
            if s.lock.locked():
                continue
            if now - s.touched > self.session_idle and s.state != "analysing":
                self._end(s, "expired")
                self.log(f"session {sid[:8]}: closed after {self.session_idle:g}s unused")
            elif s.orphaned is not None and now - max(s.orphaned, s.touched) > self.lease:
                self._end(s, "expired")
                self.log(f"session {sid[:8]}: closed {self.lease:g}s after its client's connection dropped")

    def _end(self, session: Session, reason: str) -> None:
        """Close a session and write its audit summary (``closed``, ``expired`` or ``shutdown``)."""
        self.sessions.pop(session.id, None)
        session.close()
        self._shm.forget(session.shm_names)
        self._audit("close", who=session.requester, engine=self.engine, **session.summary(reason))

    def _audit(self, event: str, required: bool = False, **fields) -> None:
        """One audit line. ``required``: a failure refuses the request (no unaudited edit); otherwise it is
        reported on the daemon's log and serving goes on."""
        if self.audit is None:
            return
        try:
            self.audit.write(event, **fields)
        except AuditLogError as exc:
            if required:
                raise
            self.log(f"audit log: {exc}")

    def _handle(self, frames: list) -> None:
        # envelope: routing id, and the empty delimiter a REQ client adds
        envelope = frames[:1]
        body = frames[1:]
        if len(body) > 1 and len(body[0]) == 0:
            envelope, body = frames[:2], frames[2:]
        parts = self._answer(body, envelope, user=_user_id(frames[-1]), conn=_src_fd(frames[-1]))
        if parts is not None:
            self._send(envelope, parts)

    def _handle_lane(self, raw: bytes, reply: LaneReply):
        """A request that came over the local lane (a lane thread): only ping and shared-memory renders."""
        return self._answer([raw], reply, lane=True, user=P.OWNER)    # the lane: this user's processes only

    def _answer(self, body: list, envelope, lane: bool = False, user: str = "", conn: int | None = None):
        """Decode and serve one request: its reply parts, an error reply, or None when a worker answers later.
        ``user``: who the connection proved to be (the ZAP handler's User-Id)."""
        rid = 0
        try:
            msg = P.decode(body)
            rid = msg.id
            msg.user = user
            msg.conn = conn
            if lane:
                if msg.type not in LANE_TYPES:
                    raise P.ProtocolError(f"the local lane takes {', '.join(LANE_TYPES)} "
                                          f"only; send {msg.type} over the ZeroMQ socket", "unknown_type")
                if msg.specs and not all(spec.shm for spec in msg.specs):
                    raise P.ProtocolError("the local lane carries shared-memory buffers only", "invalid_parameter")
                self.lane_served += 1
            self.served += 1
            return self._dispatch(msg, envelope, body)
        except P.ProtocolError as exc:
            return P.error_reply(rid or _lenient_id(body), exc.code, str(exc))
        except Exception as exc:
            return self._error(rid, exc)

    def _error(self, rid: int, exc: BaseException) -> list:
        return P.error_reply(rid, *error_of(exc))

    # -- requests ----------------------------------------------------------------------------------------------
    def _is_admin(self, msg: P.Message) -> bool:
        """The daemon's own user (its key, or any CurveZMQ key): sees and manages every session."""
        return self.admins is None or getattr(msg, "user", "") in self.admins

    def _dispatch(self, msg: P.Message, envelope: list, body: list):
        t = msg.type
        if t == "ping":
            return P.encode("reply", msg.id, result={"pong": time.time(), "stopping": self.stopping})
        if t == "status":
            return P.encode("reply", msg.id, result=self.status(msg))
        if t == "hello":
            theirs = msg.params.get("versions", [msg.v])
            if not isinstance(theirs, list) or len(theirs) > 64:
                raise P.ProtocolError("hello params.versions must be a list of protocol versions",
                                      "invalid_parameter")
            theirs = [v for v in theirs if isinstance(v, int) and not isinstance(v, bool)]
            common = sorted(set(v for v in theirs if isinstance(v, int)) & set(P.SUPPORTED_VERSIONS))
            if not common:
                raise P.ProtocolError(f"no common protocol version (client {theirs}, daemon "
                                      f"{list(P.SUPPORTED_VERSIONS)})", "version_mismatch")
            return P.encode("reply", msg.id, result={"version": common[-1], "daemon": __version__,
                                                     "engine": self.engine_info,
                                                     "max_message_bytes": int(self.max_message),
                                                     "user": getattr(msg, "user", ""),
                                                     **({"lane": self.lane.advert()}
                                                        if self.lane and self._is_admin(msg) else {})})
        if t == "describe":
            return P.encode("reply", msg.id, result=describe(self.engine_info, self.consent.required))
        if self.stopping:
            raise P.ProtocolError("the daemon is shutting down; it finishes in-flight work and takes no new "
                                  "requests: start it again", "shutting_down")
        if t == "shutdown":
            if not self._is_admin(msg):
                raise P.ProtocolError("only the daemon's own user may shut it down", "forbidden")
            self.stopping = True
            self.log("shutdown requested")
            return P.encode("reply", msg.id, result={"stopping": True, "in_flight": self.pending})
        if t == "open":
            return self._open(msg, envelope, body)
        session = self._session(msg)
        if session.owner != getattr(msg, "user", "") and not self._is_admin(msg):
            raise P.ProtocolError(f"session {session.id[:8]}… belongs to another client: only its opener (or the "
                                  f"daemon's own user) may use it", "forbidden")
        if getattr(msg, "conn", None) is not None:      # a connection using it: the lease waits for it
            session.conns.add(msg.conn)
            session.orphaned = None
        if t == "progress":
            return P.encode("reply", msg.id, result=session.info())
        if t == "analyse":         # (re)start the analysis of a cancelled or failed session
            if session.state in ("cancelled", "failed"):
                session.state, session.error, session.done = "analysing", None, 0
                session.cancel.clear()
                with self._lock:
                    self.pending += 1
                self._analysis.submit(self._analyse, session)
            return P.encode("reply", msg.id, result=session.info())
        if t == "cancel":
            session.cancel.set()
            return P.encode("reply", msg.id, result=session.info())
        if t == "close":
            self._end(session, "closed")
            return P.encode("reply", msg.id, result={"session": session.id, "closed": True})
        if t == "render":
            return self._render(msg, session, envelope, body)
        raise P.ProtocolError(f"unhandled type {t}", "unknown_type")   # pragma: no cover

    def _session(self, msg: P.Message) -> Session:
        if not msg.session:
            raise P.ProtocolError(f"a {msg.type} request needs a session", "invalid_parameter")
        s = self.sessions.get(msg.session)
        if s is None:
            raise P.ProtocolError(f"unknown session {msg.session[:40]}: it was closed (or unused for too long) or "
                                  f"the daemon restarted; open the shot again (the analysis is cached)",
                                  "unknown_session")
        s.touched = time.time()
        return s

    def _open(self, msg: P.Message, envelope: list, body: list = ()):
        """Check an open's parameters that need no file, then read and check its files off the socket thread
        (:meth:`_open_job` answers): a large checkpoint, a slow disk or a FIFO never stalls other clients."""
        params = msg.params
        with self._lock:
            busy = len(self.sessions) + self.opening
        if busy >= self.max_sessions:
            raise P.ProtocolError(f"{busy} sessions are open, the limit is {self.max_sessions}: "
                                  f"close some", "busy")
        if not isinstance(params.get("path"), str):
            raise InvalidParameterError("open needs params.path: the shot's source (movie, still or sequence)")
        frames = params.get("frames")
        face = params.get("face")
        check_frames(frames)
        if face is not None and (not isinstance(face, int) or isinstance(face, bool) or not 0 <= face < 1 << 16):
            raise InvalidParameterError("params.face must be an integer face id")
        for key in ("consent", "user", "host", "application", "colorspace", "renderer", "checkpoint",
                    "reference", "curve"):
            if params.get(key) is not None and not isinstance(params[key], str):
                raise InvalidParameterError(f"params.{key} must be a string")
        with self._lock:
            self.opening += 1
            self.pending += 1
        self._opens.submit(self._open_job, msg, envelope, _peer_address(body))
        return None

    def _open_job(self, msg: P.Message, envelope, peer: str | None) -> None:
        try:
            parts = self._open_checked(msg, peer)
        except BaseException as exc:
            parts = P.error_reply(msg.id, *error_of(exc))
        finally:
            with self._lock:
                self.opening -= 1
                self.pending -= 1
        self._post(envelope, parts)

    def _open_checked(self, msg: P.Message, peer: str | None) -> list:
        """Every path confined *before* anything opens it, files read whole only when small enough, and a file's
        content never quoted back (a curve that does not parse is "not a curve", not its first line)."""
        params = dict(msg.params)
        frames, face = params.get("frames"), params.get("face")
        path = confine_media(params["path"], self.roots)
        if params.get("curve"):
            curve = confine_file(params["curve"], self.roots, "curve", MAX_CURVE_BYTES)
            params["curve"] = str(curve)
            _check_curve(curve)
        if params.get("reference"):
            params["reference"] = str(confine_media(params["reference"], self.roots, "reference"))
        instruction = instruction_from_params(params)
        colorspace = params.get("colorspace") or None
        if colorspace and self.engine != "identity":
            from ..media.color import display_view_for

            display_view_for(colorspace)            # an unknown colour space is refused now, with the valid names
        checkpoint = None
        if params.get("renderer") or params.get("checkpoint"):
            from ..pipeline import check_renderer

            ckpt = params.get("checkpoint")
            if ckpt:
                ckpt = str(confine_file(ckpt, self.roots, "checkpoint", MAX_CHECKPOINT_BYTES))
            try:
                checkpoint = check_renderer(params.get("renderer") or "geometry", ckpt)   # read once, here
            except UnreadableMediaError:
                raise UnreadableMediaError(f"checkpoint {Path(ckpt).name} cannot be read as a neural-renderer "
                                           f"checkpoint (train one with `ned-fx train-renderer`)") from None
        actor = params.get("actor_footage") or []
        if isinstance(actor, str):
            actor = [actor]
        if not isinstance(actor, list) or len(actor) > 64 or not all(isinstance(a, str) for a in actor):
            raise InvalidParameterError("params.actor_footage must be a list of at most 64 paths (strings)")
        actor = tuple(str(confine_media(a, self.roots, "actor_footage")) for a in actor)
        holdout = params.get("holdout_matte") or None
        if holdout is not None:
            if not isinstance(holdout, str):
                raise InvalidParameterError("params.holdout_matte must be a string (a still or a sequence pattern)")
            holdout = str(confine_media(holdout, self.roots, "holdout_matte"))
        ignore_cuts = params.get("ignore_cuts")
        if ignore_cuts is not None and not isinstance(ignore_cuts, bool):
            raise InvalidParameterError("params.ignore_cuts must be true or false")
        shutter = params.get("shutter_angle")
        if shutter is not None:
            from ..appearance import shutter_from_angle

            shutter = shutter_from_angle(shutter)
        # who asked: what the client declares (unverified), the identity its connection proved, the peer address
        requester = {k: params[k] for k in ("user", "host", "application") if params.get(k)}
        user = getattr(msg, "user", "")
        if user:
            requester["key"] = user
        if peer:
            requester["peer"] = peer
        try:
            consent = self.consent.check(params.get("consent"), f"opening {path.name}")
        except ConsentRequiredError:
            self._audit("refused", who=requester, reason="consent_required", engine=self.engine,
                        shot={"source": str(path), "frames": frames, "face": face},
                        params=instruction.as_params(), consent=None)
            raise
        if self.stopping:
            raise P.ProtocolError("the daemon is shutting down; it finishes in-flight work and takes no new "
                                  "requests: start it again", "shutting_down")
        session = Session(path, frames, face, instruction, identity=self.engine == "identity",
                          cache=self.cache, consent=consent, requester=requester, colorspace=colorspace,
                          checkpoint=checkpoint, fast=self._fast, actor_footage=actor, holdout=holdout,
                          owner=user, roots=self.roots, shutter=shutter, ignore_cuts=bool(ignore_cuts))
        if getattr(msg, "conn", None) is not None:
            session.conns.add(msg.conn)
        self._audit("open", required=True, who=requester, engine=self.engine, **session.audit_fields())
        with self._lock:
            self.sessions[session.id] = session
            self.pending += 1
        self._analysis.submit(self._analyse, session)
        return P.encode("reply", msg.id, session=session.id,
                        result={**session.info(), "instruction": instruction_dict(instruction)})

    def _analyse(self, session: Session) -> None:
        started = time.perf_counter()
        try:
            if session.cancel.is_set():
                raise Cancelled()
            session.analyse(self.tracker)
            session.make_record()
            session.state = "ready"
            self.log(f"session {session.id[:8]}: {session.path.name} analysed in "
                     f"{time.perf_counter() - started:.1f}s{' (cached)' if session.cached else ''}")
        except Cancelled:
            session.state = "cancelled"
            session.error = ("cancelled", "the analysis was cancelled; send analyse (or open the shot again) to "
                                          "restart it")
        except BaseException as exc:
            session.state = "failed"
            session.error = error_of(exc)
        finally:
            with self._lock:
                self.pending -= 1

    def _render(self, msg: P.Message, session: Session, envelope: list, body: list):
        if session.state != "ready":
            if session.state == "analysing":
                raise P.ProtocolError(f"session is still analysing ({session.done}/{session.total} frames); "
                                      f"poll progress and render when ready", "not_ready")
            code, text = session.error or ("internal", "the analysis failed")
            raise P.ProtocolError(f"the session's analysis {session.state}: {text}", code)
        if msg.frame is None:
            raise P.ProtocolError("a render request needs a frame number", "invalid_parameter")
        matte = _render_matte(msg)
        lane = isinstance(envelope, LaneReply)
        if lane and not msg.specs:
            raise P.ProtocolError("the local lane carries shared-memory renders only: render by number over the "
                                  "ZeroMQ socket", "invalid_parameter")
        if matte:
            why = session.matte_refusal()
            if why is not None:
                raise P.ProtocolError(why, "unsupported")
            if lane and len(msg.specs) < 2:
                raise P.ProtocolError("the local lane carries no pixels: a render asking for the matte there names "
                                      "a second shared-memory buffer for it", "invalid_parameter")
        for spec in msg.specs:
            if not spec.shm:
                continue
            if not lane and not is_loopback(self.bound or self.endpoint):
                raise P.ProtocolError("shared-memory buffers are for clients on this machine only", "forbidden")
            if not self._is_admin(msg):     # a granted user's frame files are not the daemon user's to touch
                raise P.ProtocolError("shared-memory buffers are for the daemon's own user only; send the pixels "
                                      "in the message", "forbidden")
            session.shm_names.add(spec.shm)
            if session.identity:            # answered here: the file is there, this user's, of the spec's size
                self._shm.check(spec)
        if session.identity and msg.arrays:
            if msg.frame not in session.frame_numbers:
                raise InvalidParameterError(f"frame {msg.frame} is not in the session's shot")
            session.note_render(msg.frame, "identity engine")
            # shared memory: the pixels are already where the client reads them; nothing travels
            # zero-copy echo: the received message part itself goes straight back (a zmq.Frame: no new buffer
            # to track, unlike sending a view of it)
            frame_spec = msg.specs[0]
            arrays = [(None if frame_spec.shm else msg.arrays[0], frame_spec)]
            if matte:                       # the identity engine edits nothing: its matte is all 0
                h, w = frame_spec.shape[:2]
                arrays.append(self._matte_out(np.zeros((h, w, 1), np.float32), frame_spec, frame_spec.data_window,
                                              frame_spec.display_window, msg.specs[1:]))
            parts = P.encode("reply", msg.id, session=session.id, frame=msg.frame,
                             result={"reason": "identity engine"}, arrays=arrays)
            if len(parts) >= 2 and len(body) == 2 and not frame_spec.shm:
                parts[1] = body[1]
            return parts
        for i, spec in enumerate(msg.specs):
            if spec.shm:
                msg.arrays[i] = None        # read by the render job (off the socket thread)
        with self._lock:
            self.pending += 1
            self.rendering += 1
        self._renders.submit(self._render_job, msg, session, envelope)
        return None

    def _render_job(self, msg: P.Message, session: Session, envelope: list) -> None:
        try:
            if msg.arrays:
                spec, arr = msg.specs[0], msg.arrays[0]
                if spec.shm:
                    arr = msg.arrays[0] = self._shm.attach(spec)    # a copy: a truncated file is an error
                top_down = arr[::-1] if spec.row_order == "bottom_up" else arr
                from ..media.frames import Frame

                frame = Frame(msg.frame, top_down, spec.channels, spec.data_window, spec.display_window)
            else:
                with session.lock:                  # the session's source reader is not thread-safe
                    frame = session.read_frame(msg.frame)
                spec = P.BufferSpec(str(frame.pixels.dtype), tuple(frame.pixels.shape), frame.channels,
                                    "top_down", "", frame.data_window, frame.display_window)
            weights = None
            matte = bool(msg.params.get("matte"))       # checked by _render_matte on the socket thread
            if matte and session.batchable and self._batcher is not None:     # the fast path keeps its masks
                out, reason, weights = session.render_with_matte(frame, self._batcher)
            elif matte:
                with session.lock:                  # ShotRenderer keeps state: one frame at a time
                    out, reason, weights = session.render_with_matte(frame)
            elif session.batchable and self._batcher is not None:
                out, reason = session.render(frame, self._batcher)   # with frames of other sessions
            else:
                with session.lock:                  # ShotRenderer keeps state: one frame at a time
                    out, reason = session.render(frame)
            session.note_render(msg.frame, reason)
            pixels = out.pixels
            if spec.row_order == "bottom_up":
                pixels = pixels[::-1]
            pixels = np.ascontiguousarray(pixels, dtype=spec.dtype)
            shm = ""
            if spec.shm and msg.arrays and pixels.shape == msg.arrays[0].shape:
                self._shm.write(spec, pixels)     # written back in place: only the header travels
                shm = spec.shm
            out_spec = P.BufferSpec(spec.dtype, tuple(pixels.shape), tuple(out.channels), spec.row_order,
                                    spec.colorspace, tuple(out.data_window), tuple(out.display_window), shm)
            arrays = [(pixels, out_spec)]
            if weights is not None:
                if weights.shape != pixels.shape[:2]:
                    raise RuntimeError(f"the matte is {weights.shape} but the frame {pixels.shape[:2]}")
                if spec.row_order == "bottom_up":
                    weights = weights[::-1]
                arrays.append(self._matte_out(weights[..., None], out_spec, out_spec.data_window,
                                              out_spec.display_window, msg.specs[1:]))
            parts = P.encode("reply", msg.id, session=session.id, frame=msg.frame, result={"reason": reason},
                             arrays=arrays)
        except BaseException as exc:
            parts = P.error_reply(msg.id, *error_of(exc))
        finally:
            with self._lock:
                self.pending -= 1
                self.rendering -= 1
        self._post(envelope, parts)

    def _matte_out(self, matte: np.ndarray, frame: P.BufferSpec, data_window, display_window,
                   targets) -> tuple:
        """The reply's matte buffer: ``matte`` (H, W, 1) float32 in the frame's row order, windows and colour label
        left empty; written into the request's shared-memory matte buffer when it named one (then only the header
        travels), else sent in the message."""
        matte = np.ascontiguousarray(matte, dtype=np.float32)
        target = targets[0] if targets else None
        shm = ""
        if target is not None and target.shape == matte.shape:
            self._shm.write(target, matte)
            shm = target.shm
        return matte, P.BufferSpec("float32", tuple(matte.shape), (P.MATTE_CHANNEL,), frame.row_order, "",
                                   None if data_window is None else tuple(data_window),
                                   None if display_window is None else tuple(display_window), shm)

    def status(self, msg: P.Message | None = None) -> dict:
        """The daemon's state. Sessions: every one for the daemon's own user, a granted client's own otherwise;
        at most ``params.limit`` (default and most :data:`STATUS_PAGE`) from ``params.offset``, without their
        provenance (``progress`` gives a session's whole info), so the reply fits one header however many
        sessions are open."""
        params = msg.params if msg is not None else {}
        offset, limit = params.get("offset", 0), params.get("limit", STATUS_PAGE)
        for name, value in (("offset", offset), ("limit", limit)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidParameterError(f"status params.{name} must be a whole number >= 0")
        limit = min(limit, STATUS_PAGE)
        admin = msg is None or self._is_admin(msg)
        user = getattr(msg, "user", "")
        mine = [(sid, s) for sid, s in list(self.sessions.items()) if admin or s.owner == user]
        page = {sid: s.info(brief=True) for sid, s in mine[offset:offset + limit]}
        rss = 0
        try:
            rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            pass
        mem = {"rss_bytes": rss, "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            mem["cuda_allocated_bytes"] = int(torch.cuda.memory_allocated())
        return {"uptime_s": time.time() - self.started, "queue_depth": self.pending, "requests": self.served,
                "sessions": page, "sessions_total": len(mine), "sessions_offset": offset, "memory": mem,
                "engine": self.engine_info, "stopping": self.stopping, "pid": os.getpid(),
                "consent_required": self.consent.required,
                "lane": ({"path": self.lane.path, "requests": self.lane_served}
                         if self.lane is not None and admin else None),
                "shm_open": self._shm.open_count(),
                **({"batching": self._batcher.describe()} if self._batcher is not None else {}),
                "audit_log": str(self.audit.path) if self.audit is not None else None}

    def watch_parent(self, pid: int, interval: float = 0.25) -> threading.Thread:
        """Stop (as on SIGTERM: in-flight work finishes) when process ``pid`` ends, e.g. the batch that started this
        daemon, even when it was killed with SIGKILL. Nothing runs in the starting process between fork and exec
        (``preexec_fn`` is unsafe in a threaded process: a child can hang there for good), so the daemon watches.
        When ``pid`` is this process's parent, a changed parent pid says it ended (no pid-reuse race)."""
        parent = os.getppid() == pid

        def gone() -> bool:
            if parent:
                return os.getppid() != pid
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            return False

        def watch() -> None:
            while not self.stopping:
                if gone():
                    self.log(f"process {pid} that started this daemon ended: finishing in-flight work, then stopping")
                    self.stopping = True
                    return
                time.sleep(interval)

        thread = threading.Thread(target=watch, name="ned-fx-parent-watch", daemon=True)
        thread.start()
        return thread

    def install_signals(self) -> None:
        def stop(signum, _frame):
            self.log(f"signal {signum}: finishing in-flight work, then stopping")
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if hasattr(signal, "SIGUSR1"):           # `kill -USR1 PID`: every thread's stack on the daemon's log
            import faulthandler

            faulthandler.register(signal.SIGUSR1, all_threads=True)


ShmMaps = ShmFiles        # the old name (frames were mapped; now read and written with preadv/pwritev)


def make_keys(folder: str | Path, client: str = "host") -> dict:
    """Make CurveZMQ keys: ``server.key`` / ``server.key_secret``, and one client certificate whose public half
    is authorised (``clients/<client>.key``) and whose secret half (``<client>.key_secret``) goes to the host.
    Returns the paths written."""
    import zmq.auth

    folder = Path(folder)
    (folder / "clients").mkdir(parents=True, exist_ok=True)
    server_public, server_secret = zmq.auth.create_certificates(str(folder), "server")
    client_public, client_secret = zmq.auth.create_certificates(str(folder), client)
    authorised = folder / "clients" / Path(client_public).name
    os.replace(client_public, authorised)
    os.chmod(server_secret, 0o600)
    os.chmod(client_secret, 0o600)
    return {"server_public": server_public, "server_secret": server_secret, "client_public": str(authorised),
            "client_secret": client_secret}


def error_of(exc: BaseException) -> tuple[str, str]:
    """``(code, message)`` of an error reply for an exception raised while serving a request."""
    if isinstance(exc, P.ProtocolError):
        return exc.code, str(exc)
    if isinstance(exc, Cancelled):
        return "cancelled", "cancelled"
    if isinstance(exc, ConsentRequiredError):
        return "consent_required", str(exc)
    if isinstance(exc, AuditLogError):
        return "internal", f"{exc}; the request was refused because it could not be audited"
    if isinstance(exc, PermissionError):
        return "forbidden", str(exc)
    if isinstance(exc, (InputNotFoundError, FileNotFoundError)):
        return "not_found", str(exc)
    if isinstance(exc, NoFaceError):
        return "no_face", str(exc)
    if isinstance(exc, (UnsupportedFormatError, UnreadableMediaError)):
        return "unsupported", str(exc)
    if isinstance(exc, NedFxError):
        return "invalid_parameter", str(exc)
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
        return "out_of_memory", f"the device ran out of memory ({text}); render fewer or smaller frames at once"
    return "internal", f"internal error ({text}); the daemon keeps serving, see its log"


def _render_matte(msg: P.Message) -> bool:
    """Check a render request's parameters and buffers; whether it asks for the matte (``params.matte``).

    A render carries at most one frame buffer, and, only when it asks for the matte with a shared-memory frame,
    a second shared-memory buffer for the matte: float32, (H, W, 1) of the frame, channel ``ned.matte``."""
    for key, value in msg.params.items():
        want = P.RENDER_PARAMS.get(key)
        if want is None:
            raise P.ProtocolError(f"unknown render parameter {str(key)[:40]!r}; valid: {', '.join(P.RENDER_PARAMS)}",
                                  "invalid_parameter")
        if not isinstance(value, want):
            raise P.ProtocolError(f"render params.{key} must be {want.__name__}, got {type(value).__name__}",
                                  "invalid_parameter")
    matte = bool(msg.params.get("matte", False))
    if len(msg.specs) > 2 or (len(msg.specs) == 2 and not matte):
        raise P.ProtocolError("a render request carries at most one frame buffer (and, asking for the matte, one "
                              "shared-memory buffer for it)", "invalid_parameter")
    if len(msg.specs) == 2:
        frame, target = msg.specs
        h, w = frame.shape[:2]
        if not (frame.shm and target.shm):
            raise P.ProtocolError("a matte buffer in a render request is a shared-memory one, with a "
                                  "shared-memory frame; otherwise the matte comes back in the reply",
                                  "invalid_parameter")
        if (target.dtype, target.shape, target.channels) != ("float32", (h, w, 1), (P.MATTE_CHANNEL,)):
            raise P.ProtocolError(f"the matte buffer must be float32 [{h}, {w}, 1] with channel "
                                  f"{P.MATTE_CHANNEL!r}, got {target.dtype} {list(target.shape)} "
                                  f"{list(target.channels)}", "invalid_parameter")
        if target.shm == frame.shm:
            raise P.ProtocolError("the matte buffer must be another shared-memory file than the frame's",
                                  "invalid_parameter")
    return matte


def _check_curve(path: Path) -> None:
    """Parse an intensity curve the daemon may read; a file that is not one is said so *without* its content
    (a parse error would quote the file's first line back to the client)."""
    from ..manipulation import read_curve

    try:
        read_curve(path, float("inf"))
    except (InputNotFoundError, InvalidParameterError):
        raise
    except Exception:
        raise UnreadableMediaError(f"curve {path.name} is not an intensity curve (frame,intensity rows or JSON); "
                                   f"the daemon does not quote the file's content") from None


def _src_fd(frame) -> int | None:
    """The file descriptor of the connection a received message came over (to follow its session's lease)."""
    try:
        fd = frame.get(zmq.SRCFD)
        return int(fd) if fd is not None and int(fd) >= 0 else None
    except (AttributeError, zmq.ZMQError, ValueError, TypeError):
        return None


def _user_id(frame) -> str:
    """Who the connection of a received message proved to be: the ZAP handler's User-Id (the key's name, or the
    CurveZMQ client key); "" for none."""
    try:
        return frame.get("User-Id") or ""
    except (AttributeError, zmq.ZMQError):
        return ""


def _peer_address(body) -> str | None:
    """The peer's address ZeroMQ saw for a received message (TCP: the client's IP), when it says."""
    try:
        return body[0].get("Peer-Address") or None
    except (AttributeError, IndexError, zmq.ZMQError):
        return None


def _lenient_id(body: list) -> int:
    """The request id of a message that failed to decode, when one can be read (0 otherwise)."""
    try:
        import msgpack

        head = msgpack.unpackb(bytes(body[0].buffer if hasattr(body[0], "buffer") else body[0])[:P.MAX_HEADER_BYTES],
                               raw=False, ext_hook=lambda c, d: None, strict_map_key=False)
        rid = head.get("id") if isinstance(head, dict) else 0
        return rid if isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid < 1 << 63 else 0
    except Exception:
        return 0


def describe(engine_info: dict, consent_required: bool = False) -> dict:
    """Parameter descriptors (OFX-style) built from the manipulation stage's own tables, plus the engine."""
    from ..appearance import ContentConfig
    from ..manipulation import EMOTIONS, REGIONS, ManipulatorConfig
    from ..pipeline import EditInstruction

    d = EditInstruction()
    top = float(ManipulatorConfig().max_intensity)
    params = [
        P.choice("emotion", EMOTIONS, "happy", "Emotion", "the expression to give the actor (blends: happy:0.7,"
                 "surprised:0.3 as free text)"),
        P.double("intensity", 0.0, top, d.intensity, "Intensity", "0 no change, 1 full, above 1 exaggerated"),
        P.string("regions", None, "Regions", f"comma list of {', '.join(REGIONS)} (e.g. all,-mouth)"),
        P.choice("speech", ("auto", "preserve", "free"), "auto", "Speech", "keep the lips' speech motion"),
        P.choice("renderer", ("geometry", "neural"), "geometry", "Renderer",
                 "geometry warp, or the actor's neural renderer (needs a checkpoint)"),
        P.string("checkpoint", None, "Checkpoint", "the actor's neural renderer (ned-fx train-renderer)", file=True),
        P.integer("face", 0, None, None, "Face", "face id in multi-face shots (default the main face)"),
        P.integer("neutral_frame", None, None, None, "Neutral frame", "a frame where the actor is neutral"),
        P.string("reference", None, "Reference", "image or clip whose expression is transferred", file=True),
        P.string("actor_footage", None, "Actor footage", "more footage of the same actor (mouth interiors, eyes); "
                 "a list of paths on the wire", file=True),
        P.string("holdout_matte", None, "Holdout matte", "still or sequence: 1 keeps the plate (glasses, hands, "
                 "hair)", file=True),
        P.double("shutter_angle", 0.0, 360.0, 360.0 * ContentConfig().shutter, "Shutter angle",
                 "the camera's shutter (degrees): drawn folds take the plate's motion blur; 0 draws them sharp"),
        P.boolean("ignore_cuts", False, "Ignore cuts", "track the frames as one shot where a cut is found (a flash "
                  "or a whip pan taken for one); off: a range holding a cut fails, naming each shot's frames"),
        P.string("keys", None, "Keys", "keyframes FRAME:EMOTION[:INTENSITY],…"),
        P.double("mix", 0.0, 1.0, 1.0, "Mix", "host-side mix of the edited plate over the source"),
    ]
    clips = [P.clip("Source", ("RGBA", "RGB", "Alpha")), P.clip("Output", ("RGBA", "RGB")),
             P.clip("Matte", (P.MATTE_CHANNEL,), optional=True, label="Matte")]
    # options of each render request (not of the shot: hosts send them with ``render``, never with ``open``)
    render_options = [
        P.boolean("matte", False, "Matte", f"return the edit's matte with each frame: a second buffer, channel "
                  f"{P.MATTE_CHANNEL}, (H, W, 1) float32 in the frame's row order and data window: the weights the "
                  f"edit was blended with, 0 where the plate shows and for frames passed through"),
    ]
    # every render path keeps the weights it blended with (the device fast path downloads its masks on request)
    render_options[0]["available"] = True
    return {"parameters": params, "clips": clips, "render_options": render_options, "engine": engine_info,
            "protocol": P.PROTOCOL_VERSION,
            "daemon": __version__, "dtypes": list(P.DTYPES), "row_orders": list(P.ROW_ORDERS),
            "consent_required": bool(consent_required)}
