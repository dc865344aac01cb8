"""The daemon as a real process (``python -m ned_fx.commands.serve`` on a free loopback port): several clients at
once, a client killed mid-request, the daemon killed and restarted mid-session, fuzzed messages, and the real
engine rendering frames out of order exactly as in order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ned_fx.appearance import WARP_ONLY
from ned_fx import protocol as P
from ned_fx.client import Client, DaemonError, DaemonUnavailableError

from conftest import FOOTAGE, REPO, footage
from daemons import Daemon, free_port, keyed


@pytest.fixture(scope="module")
def identity():
    d = Daemon("--engine", "identity")
    try:
        yield d
    finally:
        d.kill()


def plate(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 4)).astype(np.float16)


def test_hello_describe_status(identity):
    with Client(identity.endpoint, timeout=5, hello=True) as c:
        assert c.server["version"] == P.PROTOCOL_VERSION and c.server["engine"]["engine"] == "identity"
        d = c.describe()
        by_name = {p["name"]: p for p in d["parameters"]}
        assert by_name["emotion"]["kind"] == "choice" and "happy" in by_name["emotion"]["options"]
        assert by_name["intensity"] == {**by_name["intensity"], "kind": "double", "min": 0.0, "default": 1.0}
        assert by_name["intensity"]["max"] >= 1.5
        assert {c["name"] for c in d["clips"]} == {"Source", "Output", "Matte"}
        s = c.status()
        assert s["queue_depth"] >= 0 and s["memory"]["rss_bytes"] > 0 and s["uptime_s"] > 0
        assert c.ping()["pong"] > 0


def test_shared_memory_maps_are_reused_only_while_the_file_is_the_same(identity, tmp_path):
    """The daemon keeps a client's frame file mapped between renders; a file swapped for a symlink or truncated
    under the same name is refused, never read through the old mapping."""
    with Client(identity.endpoint, timeout=5) as c:
        shot = c.open(str(footage("d12.mp4")), frames="0-3")
        shot.wait()
        a, b = plate(2), plate(3)
        np.testing.assert_array_equal(shot.render(1, a, shm=True), a)
        np.testing.assert_array_equal(shot.render(2, b, shm=True), b)        # the same file, mapped once
        name, buf = c.shm_buffer(a.shape, a.dtype)
        path = Path(P.shm_path(name))
        other = tmp_path / "other"
        other.write_bytes(b"\0" * a.nbytes)
        path.unlink()
        path.symlink_to(other)                                              # same name, now a symlink
        with pytest.raises(DaemonError) as e:
            shot.render(1, a, shm=True)
        assert e.value.code == "not_found"
        path.unlink()
        path.write_bytes(b"\0" * (a.nbytes // 2))                          # same name, truncated
        with pytest.raises(DaemonError):
            shot.render(1, a, shm=True)
        path.unlink()


def test_render_round_trip_and_errors(identity):
    src = str(footage("d12.mp4"))
    with Client(identity.endpoint, timeout=5) as c:
        shot = c.open(src, frames="0-9", emotion="happy", intensity=0.5)
        assert shot.wait()["total"] == 10
        a = plate(1)
        out, reply = shot.render(3, a, row_order="bottom_up", colorspace="linear", with_info=True)
        np.testing.assert_array_equal(out, a)
        assert reply.specs[0].row_order == "bottom_up" and reply.specs[0].colorspace == "linear"
        via_shm = shot.render(4, a, row_order="bottom_up", shm=True)     # same-host fast path
        np.testing.assert_array_equal(via_shm, a)
        name = c.shm_buffer(a.shape, a.dtype)[0]
        assert Path(P.shm_path(name)).is_file()
        with pytest.raises(DaemonError) as e:
            spec = P.BufferSpec.for_array(a)
            c.request("render", session=shot.id, frame=1,
                      arrays=[(a, P.BufferSpec(**{**spec.__dict__, "shm": "ned_fx-" + "0" * 32}))])
        assert e.value.code == "not_found"
        by_number = shot.render(9)                            # the daemon reads the plate itself
        assert by_number.shape == (512, 512, 3) and by_number.dtype == np.uint8
        with pytest.raises(DaemonError) as e:
            shot.render(42, a)
        assert e.value.code == "invalid_parameter" and "42" in str(e.value)
        with pytest.raises(DaemonError) as e:
            c.open(src, emotion="happy", colour="blue")
        assert e.value.code == "invalid_parameter" and "colour" in str(e.value) and "intensity" in str(e.value)
        with pytest.raises(DaemonError) as e:
            c.open(src, emotion="grumpy")
        assert e.value.code == "invalid_parameter" and "happy" in str(e.value)
        with pytest.raises(DaemonError) as e:
            c.open("/etc/passwd")
        assert e.value.code == "forbidden" and "--root" in str(e.value)
        with pytest.raises(DaemonError) as e:
            c.request("render", session="nope", frame=1)
        assert e.value.code == "unknown_session"
        shot.close()
        assert shot.id not in c.status()["sessions"]
    assert not Path(P.shm_path(name)).exists()               # the client removes its shared memory
    with Client(identity.endpoint, timeout=5) as c:
        missing = c.open(str(FOOTAGE / "no_such_shot.mov"))
        with pytest.raises(DaemonError) as e:
            missing.wait(timeout=10)
        assert e.value.code == "not_found" and "no_such_shot" in str(e.value)
        with pytest.raises(DaemonError) as e:
            missing.render(0)
        assert e.value.code == "not_found"
        assert c.ping()


def test_several_concurrent_clients(identity):
    src = str(footage("d12.mp4"))
    errors: list = []

    def work(k: int) -> None:
        try:
            with Client(identity.endpoint, timeout=10) as c:
                shot = c.open(src, frames="0-29")
                shot.wait()
                for i in range(25):
                    a = plate(1000 * k + i, 96 + k, 128)
                    np.testing.assert_array_equal(shot.render(i, a), a)   # each reply reached its own client
                shot.close()
        except BaseException as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def test_slow_client_does_not_stall_others(identity):
    """A client that floods requests and never reads its replies: the others keep their latency."""
    src = str(footage("d12.mp4"))
    with Client(identity.endpoint, timeout=5) as c:
        shot = c.open(src, frames="0-3")
        shot.wait()
        sock = keyed(zmq.Context.instance().socket(zmq.DEALER))
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 1)
        sock.connect(identity.endpoint)
        try:
            a = plate(5, 256, 256)
            spec = P.BufferSpec.for_array(a)
            for i in range(300):
                sock.send_multipart(P.encode("render", i, session=shot.id, frame=1, arrays=[(a, spec)]), copy=False)
            worst = 0.0
            for i in range(20):
                t = time.perf_counter()
                np.testing.assert_array_equal(shot.render(2, a), a)
                worst = max(worst, time.perf_counter() - t)
            assert worst < 1.0
        finally:
            sock.close(0)
        assert c.ping()


_KILLED_CLIENT = """
import sys, numpy as np
from ned_fx.client import Client
c = Client(sys.argv[1], timeout=30)
shot = c.open(sys.argv[2], frames="0-3")
shot.wait()
print("sending", flush=True)
shot.render(1, np.zeros((2160, 3840, 4), np.float16))
"""


def test_client_killed_mid_request(identity):
    src = str(footage("d12.mp4"))
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _KILLED_CLIENT, identity.endpoint, src], cwd=REPO,
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "sending"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(10)
    with Client(identity.endpoint, timeout=5) as c:      # the daemon keeps serving everyone else
        shot = c.open(src, frames="0-3")
        shot.wait()
        a = plate(7)
        np.testing.assert_array_equal(shot.render(2, a), a)
        assert c.status()["queue_depth"] == 0


@pytest.fixture(scope="module")
def raw(identity):
    ctx = zmq.Context.instance()
    sock = keyed(ctx.socket(zmq.DEALER))
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(identity.endpoint)
    yield sock
    sock.close(0)


def _exchange(sock, parts) -> dict:
    sock.send_multipart(parts)
    assert sock.poll(5000), "the daemon did not answer"
    frames = sock.recv_multipart()
    if frames and frames[0] == b"" and len(frames) > 1:
        frames = frames[1:]
    return msgpack.unpackb(frames[0], raw=False)


_parts = st.lists(st.one_of(st.binary(max_size=80),
                            st.dictionaries(st.sampled_from(["v", "type", "id", "session", "frame", "params",
                                                             "buffers", "zz"]),
                                            st.one_of(st.integers(-5, 5), st.text(max_size=8),
                                                      # every type but shutdown (the fixture's daemon is shared)
                                                      st.sampled_from([t for t in P.REQUEST_TYPES
                                                                       if t != "shutdown"]),
                                                      st.lists(st.dictionaries(st.text(max_size=6),
                                                                               st.integers(-2, 9), max_size=3),
                                                               max_size=2)),
                                            max_size=6).map(lambda d: msgpack.packb(d, use_bin_type=True))),
                  min_size=1, max_size=3)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=_parts)
def test_fuzzed_messages_get_error_replies(raw, parts):
    header = _exchange(raw, parts)
    if header.get("type") == "reply":   # the fuzzer may build a valid ping/status/describe/hello
        return
    assert header["type"] == "error" and header["error"]["code"] in P.ERROR_CODES and header["error"]["message"]


def test_fuzzed_extension_types_and_daemon_still_serves(identity, raw):
    evil = [msgpack.packb({"v": 1, "type": "ping", "params": {"x": msgpack.ExtType(5, b"os.system")}}),
            _pack(v=99), _pack(type="exec"),
            _pack(type="render", session="x", frame=1, buffers=[{"dtype": "float16", "shape": [99999, 99999, 4],
                                                                 "channels": list("RGBA")}]),
            msgpack.packb({"v": 1, "type": "open", "id": 5, "params": {"path": str(footage("d12.mp4")),
                                                                     "__class__": "x"}})]
    evil += [_pack(type="hello", params={"versions": 5}), _pack(type="hello", params={"versions": [7, 8]}),
             _pack(type="render", frame=3), _pack(type="open", params={"path": 3})]
    codes = [_exchange(raw, [e])["error"]["code"] for e in evil]
    assert codes == ["bad_message", "version_mismatch", "unknown_type", "bad_message", "invalid_parameter",
                     "invalid_parameter", "version_mismatch", "invalid_parameter", "invalid_parameter"]
    assert _exchange(raw, [_pack(type="render", session="x", frame=1,
                                 buffers=[{"dtype": "uint8", "shape": [2, 2, 3], "channels": list("RGB")}]),
                           b"12345"])["error"]["code"] == "bad_message"          # 5 bytes for a 12-byte shape
    with Client(identity.endpoint, timeout=5) as c:
        assert c.ping()["stopping"] is False


def _pack(**kw) -> bytes:
    return msgpack.packb({"v": 1, "type": "ping", "id": 9, **kw}, use_bin_type=True)


def test_daemon_killed_and_restarted_mid_session(tmp_path):
    src = str(footage("d12.mp4"))
    d = Daemon("--engine", "identity", tmp=tmp_path)
    try:
        c = Client(d.endpoint, timeout=2, retries=2)
        shot = c.open(src, frames="0-9")
        shot.wait()
        a = plate(3)
        np.testing.assert_array_equal(shot.render(4, a), a)
        np.testing.assert_array_equal(shot.render(4, a, shm=True), a)       # over the local lane
        assert c._lane is not None
        old = shot.id
        d.kill()                                           # killed mid-session
        d = Daemon("--engine", "identity", port=d.port, tmp=tmp_path)
        np.testing.assert_array_equal(shot.render(5, a), a)   # the shot reopens itself on the new daemon
        assert shot.id != old
        d.kill()                                           # and again, the next request a shared-memory one
        d = Daemon("--engine", "identity", port=d.port, tmp=tmp_path)
        b = plate(4)
        np.testing.assert_array_equal(shot.render(6, b, shm=True), b)     # dead lane -> ZeroMQ -> reopened
        time.sleep(1.1)                                    # the client tries a lane again after a second
        np.testing.assert_array_equal(shot.render(7, a, shm=True), a)
        assert c._lane is not None, "the client found the new daemon's lane"
        d.kill()
        quick = Client(d.endpoint, timeout=0.3, retries=1)
        started = time.monotonic()
        with pytest.raises(DaemonUnavailableError) as e:
            quick.ping()
        assert time.monotonic() - started < 3 and "ned-fx serve" in str(e.value)
        quick.close()
        c.close()
    finally:
        d.kill()


def _lane_talk(path: str, *messages: bytes) -> list:
    """Connect to a lane, send raw framed messages, return the decoded replies (until the daemon closes)."""
    import socket
    import struct

    replies = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        reader = P.LaneReader(s)
        for m in messages:
            try:
                s.sendall(struct.pack("<I", len(m)) + m if not m.startswith(b"RAW") else m[3:])
            except BrokenPipeError:          # the daemon dropped the connection
                break
            try:
                raw = reader.read()
            except ConnectionResetError:
                break
            if raw is None:
                break
            replies.append(P.decode([raw], request=False))
    return replies


def test_local_lane_carries_shared_memory_renders_of_this_user_only(identity, tmp_path):
    """Same-host shared-memory renders go over the daemon's Unix-domain lane (a private folder, a 0600 socket,
    a token only the ZeroMQ hello tells); anything else on the lane is an error reply, and garbage costs the
    sender its connection, not the daemon."""
    import os
    import stat

    with Client(identity.endpoint, timeout=5) as c:
        lane = c.hello()["lane"]
        folder = Path(lane["path"]).parent
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700 and os.stat(folder).st_uid == os.getuid()
        assert stat.S_ISSOCK(os.stat(lane["path"]).st_mode) and stat.S_IMODE(os.stat(lane["path"]).st_mode) == 0o600
        before = c.status()["lane"]
        assert before["path"] == lane["path"]
        shot = c.open(str(footage("d12.mp4")), frames="0-3")
        shot.wait()
        frames = [plate(k) for k in range(3)]
        for k, a in enumerate(frames):
            np.testing.assert_array_equal(shot.render(k, a, shm=True), a)
        assert c._lane is not None
        assert c.status()["lane"]["requests"] == before["requests"] + 3, "the renders went over the lane"
        name, buf = c.shm_buffer(frames[0].shape, frames[0].dtype)
        spec = P.BufferSpec("float16", frames[0].shape, ("R", "G", "B", "A"), shm=name)
        hello = P.encode("hello", 1, params={"lane_token": lane["token"]})[0]
        render = P.encode("render", 2, session=shot.id, frame=1, arrays=[(buf, spec)])[0]
        wrong = P.encode("hello", 1, params={"lane_token": "0" * 32})[0]
        (r,) = _lane_talk(lane["path"], wrong, render)          # no token: refused, connection closed
        assert r.type == "error" and r.error["code"] == "forbidden"
        r1, r2 = _lane_talk(lane["path"], render)[:1] + [None]  # no hello first: refused too
        assert r1.type == "error" and r1.error["code"] == "forbidden" and r2 is None
        inline = P.encode("render", 3, session=shot.id, frame=1,
                          arrays=[(frames[0], P.BufferSpec.for_array(frames[0]))])[0]
        close = P.encode("close", 4, session=shot.id)[0]
        replies = _lane_talk(lane["path"], hello, render, inline, close, b"RAW\x00\x00\x00\x00")
        assert [r.type for r in replies[:2]] == ["reply", "reply"]
        assert replies[2].error["code"] == "bad_message"             # an inline buffer is not lane business
        assert replies[3].error["code"] == "unknown_type"            # nor is anything but renders
        assert replies[4].error["code"] == "bad_message" and len(replies) == 5   # garbage: answered, dropped
        np.testing.assert_array_equal(shot.render(2, frames[2], shm=True), frames[2])   # still serving
    with Client(identity.endpoint, timeout=5, local_lane=False) as c:             # the ZeroMQ-header path
        shot = c.open(str(footage("d12.mp4")), frames="0-3")
        shot.wait()
        np.testing.assert_array_equal(shot.render(1, frames[1], shm=True), frames[1])
        assert c._lane is None


def test_fast_path_batches_frames_of_different_clients(tmp_path):
    """``--render-path fast``: sessions render on the device fast path (here the CPU) through one batcher;
    two clients rendering at once share engine calls, their pixels are the ones each frame gets alone, and
    they match ShotRenderer's (the opencv path) within the fast path's stated tolerance."""
    from ned_fx import manipulation, tracking
    from ned_fx.media import open_media
    from ned_fx.pipeline import ShotRenderer

    src = str(footage("d12.mp4"))
    cache = tmp_path / "cache"
    d = Daemon("--device", "cpu", "--render-path", "fast", "--batch-size", "4", "--cache", str(cache), tmp=tmp_path)
    try:
        with Client(d.endpoint, timeout=120, retries=0) as c:
            renderer = c.describe()["engine"]["renderer"]
            assert renderer["path"] == "fast" and renderer["backend"] == "torch-cpu" and renderer["batch_size"] == 4
            for e in ("happy", "sad"):
                c.open(src, frames="0-3", emotion=e).wait()
        got: dict = {}
        errors: list = []

        def host(emotion: str) -> None:
            try:
                with Client(d.endpoint, timeout=120, retries=0) as c:
                    shot = c.open(src, frames="0-3", emotion=emotion)
                    shot.wait()
                    got[emotion] = {n: np.array(shot.render(n)) for n in (0, 1, 2, 3)}
            except Exception as exc:     # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=host, args=(e,)) for e in ("happy", "sad")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert not errors, errors
        with Client(d.endpoint, timeout=120, retries=0) as c:
            stats = c.status()["batching"]
            assert stats["frames"] == 8 and stats["multi_session_batches"] >= 1 and stats["largest"] >= 2, stats
            shot = c.open(src, frames="0-3", emotion="sad")
            shot.wait()
            np.testing.assert_array_equal(np.array(shot.render(2)), got["sad"][2])     # alone == batched
            assert {o["name"]: o for o in c.describe()["render_options"]}["matte"]["available"] is True
            # the fast path returns the masks its device compositor blended with; the frame is the same
            pixels, fast_matte = shot.render(2, matte=True)
            np.testing.assert_array_equal(pixels, got["sad"][2])
            assert fast_matte.shape == pixels.shape[:2] + (1,) or fast_matte.shape == pixels.shape[:2]
            fast_matte = np.asarray(fast_matte, np.float32).reshape(pixels.shape[:2])
            from ned_fx.hosts.frames import render_to_file    # the hosts keep it beside the frame

            (tmp_path / "host").mkdir()
            path, _ = render_to_file(shot, 2, tmp_path / "host" / "f.%04d.png")
            assert path.is_file() and len(list((tmp_path / "host").glob("*matte*"))) == 1
    finally:
        d.kill()
    (track_file,) = cache.glob("track-*.npz")
    track = tracking.read_from_file(track_file)
    edits = {e.params.get("emotion"): e for e in map(manipulation.read_from_file, cache.glob("edit-*.npz"))}
    with open_media(src, "0-3") as media:
        plates = {n: media.read(n) for n in range(4)}
    for emotion in ("happy", "sad"):
        ref = ShotRenderer(track, edits[emotion], content=WARP_ONLY)
        for n, frame in plates.items():
            want, why = ref.render(frame)
            assert why is None
            diff = np.abs(got[emotion][n].astype(int) - want.pixels.astype(int))
            assert diff.max() <= 2 and diff.mean() <= 0.02, (emotion, n, diff.max(), diff.mean())
            assert not np.array_equal(got[emotion][n], frame.pixels)
    # the returned matte is the blend's: the edit lives where it is > 0 (the multi-band blend's coarse levels
    # reach a little past it), and it matches ShotRenderer's weights within the masks' stated tolerance (exact
    # signed distance vs OpenCV's raster)
    from ned_fx.pipeline import blend_weights

    ref = ShotRenderer(track, edits["sad"], content=WARP_ONLY)
    want = blend_weights(ref, ref.begin(plates[2]))
    change = np.abs(got["sad"][2].astype(int) - plates[2].pixels).max(axis=2)
    assert change[fast_matte > 0.5].mean() > 20 * change[fast_matte == 0].mean()
    assert change[fast_matte == 0].max() <= 2                     # measured: 1 (mean 0.002; 5.3 inside)
    assert fast_matte.max() == 1.0 and np.abs(fast_matte - want).max() <= 0.1
    assert np.abs(fast_matte - want).mean() <= 0.005


def test_idle_sessions_are_closed_and_shots_reopen(tmp_path):
    d = Daemon("--engine", "identity", "--session-idle", "0.5", tmp=tmp_path)
    try:
        with Client(d.endpoint, timeout=5) as c:
            shot = c.open(str(footage("d12.mp4")), frames="0-3")
            shot.wait()
            old = shot.id
            time.sleep(1.5)
            assert old not in c.status()["sessions"]
            a = plate(11)
            np.testing.assert_array_equal(shot.render(1, a), a)     # reopened by the client
            assert shot.id != old
    finally:
        d.kill()


def test_graceful_shutdown(tmp_path):
    d = Daemon("--engine", "identity", tmp=tmp_path)
    try:
        with Client(d.endpoint, timeout=5) as c:
            assert c.shutdown()["stopping"] is True
        assert d.proc.wait(15) == 0
        assert "stopped" in d.stderr()
    finally:
        d.kill()


def test_sigterm_stops_cleanly(tmp_path):
    d = Daemon("--engine", "identity", tmp=tmp_path)
    try:
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(15) == 0
    finally:
        d.kill()


def test_non_loopback_bind_needs_insecure_flag():
    out = subprocess.run([sys.executable, "-m", "ned_fx.commands.serve", "--bind", f"tcp://0.0.0.0:{free_port()}",
                          "--engine", "identity"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--insecure" in out.stderr


def test_curve_keys_admit_only_known_clients(tmp_path):
    keys = tmp_path / "keys"
    out = subprocess.run([sys.executable, "-m", "ned_fx.commands.serve", "--make-keys", str(keys)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    d = Daemon("--engine", "identity", "--curve-keys", str(keys), tmp=tmp_path)
    try:
        with Client(d.endpoint, timeout=5, curve=(keys / "host.key_secret", keys / "server.key")) as c:
            assert c.hello()["version"] == P.PROTOCOL_VERSION
            shot = c.open(str(footage("d12.mp4")), frames="0-3")
            shot.wait()
            a = plate(2)
            np.testing.assert_array_equal(shot.render(1, a), a)
        with Client(d.endpoint, timeout=0.5, retries=0) as plain:               # no keys: no answer
            with pytest.raises(DaemonUnavailableError):
                plain.ping()
        from ned_fx.daemon.server import make_keys

        stranger = make_keys(tmp_path / "other")                                 # keys the daemon never saw
        with Client(d.endpoint, timeout=0.5, retries=0,
                    curve=(stranger["client_secret"], keys / "server.key")) as c:
            with pytest.raises(DaemonUnavailableError):
                c.ping()
    finally:
        d.kill()


def test_real_engine_out_of_order_frames_match_in_order(tmp_path):
    """The real engines (on the CPU): analyse 8 frames once, render in and out of order, by number and with the
    host's pixels bottom-up; reopening the shot hits the on-disk cache; an analysis can be cancelled."""
    src = str(footage("d12.mp4"))
    d = Daemon("--device", "cpu", "--cache", str(tmp_path / "cache"), tmp=tmp_path)
    try:
        with Client(d.endpoint, timeout=60, retries=0) as c:
            info = c.describe()["engine"]
            from ned_fx.tracking import TrackerConfig
            from ned_fx.tracking.runtime import runtime_name

            # the backend named is what runs the tracker's networks: onnxruntime on a CPU where it is installed
            assert info["engine"] == "ned_fx" and info["device"] == "cpu"
            assert info["tracker_runtime"] == runtime_name(TrackerConfig(device="cpu"))
            assert info["backend"] == {"onnxruntime": "onnxruntime-CPU", "torch": "torch-CPU"}[info["tracker_runtime"]]
            assert info["renderer"]["path"] == "opencv"      # auto: ShotRenderer, where the face content runs
            best = info["best_available"]       # what the machine offers, and why (no CUDA here)
            assert best["backend"] == "torch-cpu" and ("CUDA" in best["reason"] or "CPU" in best["reason"])
            for bad, code in (({"actor_footage": ["/etc/passwd"]}, "forbidden"),
                              ({"holdout_matte": "/etc/passwd"}, "forbidden"),
                              ({"actor_footage": [1, 2]}, "invalid_parameter"),
                              ({"shutter_angle": 400}, "invalid_parameter"),
                              ({"shutter_angle": "open"}, "invalid_parameter")):
                with pytest.raises(DaemonError) as e:     # every path parameter is confined to the roots
                    c.open(src, frames="0-7", emotion="happy", **bad)
                assert e.value.code == code, bad
            seen: list = []
            shot = c.open(src, frames="0-7", emotion="happy")
            ready = shot.wait(callback=lambda done, total: seen.append((done, total)))
            assert ready["state"] == "ready" and not ready["cached"] and seen[-1] == (8, 8)
            in_order = {n: np.array(shot.render(n)) for n in range(8)}
            out_of_order = {n: np.array(shot.render(n)) for n in (6, 1, 7, 3, 0, 5, 2, 4)}
            for n in range(8):
                np.testing.assert_array_equal(out_of_order[n], in_order[n])
            from ned_fx.media import open_media

            with open_media(src, "0-7") as media:
                f = media.read(5)
            assert not np.array_equal(in_order[5], f.pixels)       # the face was edited
            up = shot.render(5, np.ascontiguousarray(f.pixels[::-1]), channels=f.channels, row_order="bottom_up")
            np.testing.assert_array_equal(np.asarray(up)[::-1], in_order[5])
            np.testing.assert_array_equal(shot.render(5, f.pixels, channels=f.channels, shm=True), in_order[5])
            rgba = np.dstack([f.pixels / np.float32(255), np.ones(f.pixels.shape[:2], np.float32)])
            half = shot.render(5, rgba.astype(np.float16), row_order="bottom_up", colorspace="sRGB")
            assert half.dtype == np.float16 and half.shape == (512, 512, 4) and np.isfinite(half).all()
            assert not np.array_equal(half, rgba.astype(np.float16))     # a float RGBA plate is edited too
            with pytest.raises(DaemonError) as e:                  # a failing request is an error reply
                shot.render(5, np.zeros((64, 64, 4), np.float16))
            assert e.value.code == "invalid_parameter" and "512x512" in str(e.value)
            month = time.time() - 30 * 86400                     # the analysis files, as if a month old ...
            for path in (tmp_path / "cache").glob("*.npz"):
                os.utime(path, (month, month))
            again = c.open(src, frames="0-7", emotion="happy")
            assert again.wait()["cached"] is True
            # ... are marked used by the session that read them (`ned-fx cache clear --older-than` keeps them)
            used = {p.name.split("-")[0] for p in (tmp_path / "cache").glob("*.npz") if p.stat().st_mtime > month + 60}
            assert {"track", "edit", "models", "mesh"} <= used, used      # the render mesh too
            np.testing.assert_array_equal(again.render(2), in_order[2])
            # the shutter is the session's: drawn sharp (0 degrees), a frame where his face moves ~9 px a frame
            # (a 4 px smear at the default 180) differs, one at rest (0.3 px) is the same
            sharp = c.open(src, frames="0-7", emotion="happy", shutter_angle=0)
            assert sharp.wait()["cached"] is True                   # the analysis and models do not depend on it
            assert not np.array_equal(sharp.render(6), in_order[6])
            np.testing.assert_array_equal(sharp.render(1), in_order[1])
            long = c.open(src, emotion="sad")
            long.cancel()
            with pytest.raises(DaemonError) as e:
                long.wait(timeout=60)
            assert e.value.code == "cancelled"
            with pytest.raises(DaemonError) as e:
                long.render(1)
            assert e.value.code == "cancelled"
            assert long.analyse()["state"] == "analysing"          # restart it, then cancel again
            assert long.cancel()["state"] in ("analysing", "cancelled")
            with pytest.raises(DaemonError):
                long.wait(timeout=60)
            assert c.ping()
            # on the CPU with onnxruntime nothing the daemon did loaded torch (its start: ~0.5 s, was ~2.1 s); the
            # engine info still names torch's version (the installed package's)
            import importlib.metadata

            assert info["torch"] == importlib.metadata.version("torch")
            if info["tracker_runtime"] == "onnxruntime":
                maps = Path(f"/proc/{d.proc.pid}/maps")
                if maps.is_file():
                    assert "libtorch" not in maps.read_text(), "the CPU daemon loaded torch"
    finally:
        d.kill()


def test_oversized_frame_is_a_clear_error_not_a_timeout(tmp_path):
    """The daemon advertises its message limit; the client refuses a bigger frame at once with a message that
    names the limit and the option, instead of sending it into a silent drop and a timeout."""
    import time

    d = Daemon("--engine", "identity", "--max-message-mb", "1", tmp=tmp_path)
    try:
        src = str(footage("d12.mp4"))
        with Client(d.endpoint, timeout=5, hello=True) as c:
            assert c.server["max_message_bytes"] == 2 ** 20
            shot = c.open(src, frames="0-1", emotion="happy")
            shot.wait()
            small = plate(2)
            np.testing.assert_array_equal(shot.render(0, small), small)
            big = np.zeros((512, 1024, 3), np.float32)               # 6 MiB
            started = time.monotonic()
            with pytest.raises(DaemonError, match="max-message-mb") as e:
                shot.render(1, big)
            assert e.value.code == "invalid_parameter" and time.monotonic() - started < 1.0
            assert c.ping()["pong"] > 0, "the connection is still fine"
    finally:
        d.kill()


def test_render_path_options_are_checked():
    from ned_fx.daemon.server import Daemon as InProcess
    from ned_fx.errors import InvalidParameterError

    for kwargs, needle in (({"render_path": "gpu"}, "auto, opencv, fast"), ({"batch_size": 0}, "1 to 64"),
                           ({"fast_box": "shot"}, "frame, bucket")):
        with pytest.raises(InvalidParameterError, match=needle):
            InProcess("tcp://127.0.0.1:0", engine="identity", **kwargs)
    r = subprocess.run([sys.executable, "-m", "ned_fx.commands.serve", "--render-path", "gpu"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "auto" in r.stderr and "fast" in r.stderr


def test_a_killed_daemons_lane_socket_is_removed_by_the_next(tmp_path):
    import os

    d = Daemon("--engine", "identity", tmp=tmp_path)
    with Client(d.endpoint, timeout=5) as c:
        path = c.hello()["lane"]["path"]
    assert os.path.exists(path)
    d.kill()                                              # SIGKILL: it cannot remove its own socket
    assert os.path.exists(path)
    d = Daemon("--engine", "identity", tmp=tmp_path)
    try:
        assert not os.path.exists(path), "the next daemon removes the dead one's lane"
        with Client(d.endpoint, timeout=5) as c:
            assert os.path.exists(c.hello()["lane"]["path"])
    finally:
        d.kill()


def test_a_with_block_closes_the_sessions_it_opened_and_wait_reports_each_step_once(identity):
    src = str(footage("d12.mp4"))
    with Client(identity.endpoint, timeout=5) as c:
        kept = c.open(src, frames="0-3", emotion="happy")
        steps: list = []
        kept.wait(timeout=30, callback=lambda done, total: steps.append((done, total)))
        assert steps and len(steps) == len(set(steps)) and steps[-1] == (4, 4)
        closed = c.open(src, frames="0-1", emotion="sad")
        closed.close()
        assert {kept.id} <= set(c.status()["sessions"])
    with Client(identity.endpoint, timeout=5) as c:
        assert kept.id not in c.status()["sessions"] and closed.id not in c.status()["sessions"]


def test_render_returns_the_matte_on_request(identity):
    """``params.matte``: a second buffer, channel ``ned.matte``, (H, W, 1) float32 in the frame's row order and
    data window (all 0 from the identity engine: every frame passes through), in the message over TCP, written
    into a second shared-memory file over shared memory and the local lane; bad requests are typed errors."""
    src = str(footage("d12.mp4"))
    window = (10, 20, 73, 67)
    with Client(identity.endpoint, timeout=5) as c:
        d = c.describe()
        option = {o["name"]: o for o in d["render_options"]}["matte"]
        assert option["kind"] == "boolean" and option["default"] is False and option["available"] is True
        clip = {x["name"]: x for x in d["clips"]}["Matte"]
        assert clip["components"] == ["ned.matte"] and clip["optional"] is True
        shot = c.open(src, frames="0-9")
        shot.wait()
        a = plate(5)
        assert isinstance(shot.render(3, a), np.ndarray)                  # no matte unless asked
        out, reply = shot.render(3, a, row_order="bottom_up", data_window=window, with_info=True, matte=True)
        np.testing.assert_array_equal(out, a)
        frame_spec, matte_spec = reply.specs
        assert matte_spec.channels == ("ned.matte",) and matte_spec.dtype == "float32"
        assert matte_spec.shape == (48, 64, 1) and matte_spec.row_order == "bottom_up" == frame_spec.row_order
        assert matte_spec.data_window == frame_spec.data_window == window
        assert reply.arrays[1].shape == (48, 64, 1) and not reply.arrays[1].any()
        out, matte = shot.render(4, matte=True)                            # by number: the file's own window
        assert out.shape == (512, 512, 3) and matte.shape == (512, 512, 1) and matte.dtype == np.float32
        assert not matte.any()
        lane_before = c.status()["lane"]["requests"]
        c.shm_buffer((48, 64, 1), np.float32, role="matte")[1][...] = 1.0   # the daemon writes its zeros there
        out, matte = shot.render(5, a, shm=True, matte=True)               # shared memory, over the lane
        np.testing.assert_array_equal(out, a)
        assert matte.shape == (48, 64, 1) and not matte.any() and c._lane is not None
        assert c.status()["lane"]["requests"] == lane_before + 1
        mname, mbuf = c.shm_buffer((48, 64, 1), np.float32, role="matte")
        assert np.shares_memory(matte, mbuf), "the matte came back in its own shared-memory file"
        assert c.shm_buffer((48, 64, 1), np.float32)[0] != mname, "a frame of the matte's shape gets its own file"
        spec = P.BufferSpec.for_array(a)
        name, buf = c.shm_buffer(a.shape, a.dtype)
        fspec = P.BufferSpec(spec.dtype, spec.shape, spec.channels, shm=name)
        mspec = P.BufferSpec("float32", (48, 64, 1), ("ned.matte",), shm=mname)
        for params, arrays, words in (
                ({"matte": 1}, [(a, spec)], "must be bool"),
                ({"mate": True}, [(a, spec)], "unknown render parameter"),
                ({}, [(buf, fspec), (mbuf, mspec)], "at most one frame buffer"),
                ({"matte": True}, [(a, spec), (a, spec)], "shared-memory"),
                ({"matte": True}, [(buf, fspec), (buf, P.BufferSpec("float16", a.shape, ("ned.matte_", "G", "B",
                                                                                         "A"), shm=mname))],
                 "float32 [48, 64, 1]"),
                ({"matte": True}, [(buf, fspec), (mbuf, P.BufferSpec("float32", (48, 64, 1), ("ned.matte",),
                                                                     shm=name))], "another shared-memory file")):
            with pytest.raises(DaemonError) as e:
                c.request("render", session=shot.id, frame=3, params=params, arrays=arrays)
            assert e.value.code == "invalid_parameter" and words in str(e.value), (params, str(e.value))
        lane = c.hello()["lane"]
        hello = P.encode("hello", 1, params={"lane_token": lane["token"]})[0]
        alone = P.encode("render", 2, session=shot.id, frame=1, params={"matte": True}, arrays=[(buf, fspec)])[0]
        by_number = P.encode("render", 3, session=shot.id, frame=1)[0]
        both = P.encode("render", 4, session=shot.id, frame=1, params={"matte": True},
                        arrays=[(buf, fspec), (mbuf, mspec)])[0]
        replies = _lane_talk(lane["path"], hello, alone, by_number, both)
        assert replies[1].error["code"] == "invalid_parameter" and "second shared-memory" in replies[1].error["message"]
        assert replies[2].error["code"] == "invalid_parameter" and "render by number" in replies[2].error["message"]
        assert replies[3].type == "reply" and replies[3].specs[1].shm == mname
    with Client(identity.endpoint, timeout=5, local_lane=False) as c:             # shared memory over ZeroMQ
        shot = c.open(src, frames="0-3")
        shot.wait()
        c.shm_buffer((48, 64, 1), np.float32, role="matte")[1][...] = 1.0
        out, matte = shot.render(1, a, shm=True, matte=True)
        np.testing.assert_array_equal(out, a)
        assert matte.shape == (48, 64, 1) and not matte.any() and c._lane is None
