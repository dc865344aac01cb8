"""The daemon on a shared workstation (issue 15): only its owner (or a key the owner granted) gets in, sessions
belong to their opener, nothing outside ``--root`` is read or quoted back, no FIFO wedges it, a truncated
shared-memory frame is an error reply (never SIGBUS), absurd requests cost nothing, restarts are invisible."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from ned_fx import protocol as P
from ned_fx.client import Client, DaemonAuthError, DaemonError, DaemonUnavailableError

from conftest import REPO, footage
from daemons import Daemon, free_port


def _png(path: Path, seed: int = 0, h: int = 24, w: int = 32) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))
    return path


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """An identity daemon whose only extra root is ``root`` (``outside`` is beside it, not under it)."""
    base = tmp_path_factory.mktemp("guarded")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    d = Daemon("--engine", "identity", "--max-sessions", "200", roots=[root], tmp=base)
    d.root, d.outside = root, outside
    try:
        yield d
    finally:
        d.kill()


# ---- who may talk to the daemon ---------------------------------------------------------------------------------

def test_the_key_is_private_and_a_client_without_it_is_refused_clearly(guarded):
    key = P.owner_key_path()
    st, folder = os.lstat(key), os.lstat(key.parent)
    assert stat.S_IMODE(st.st_mode) == 0o600 and stat.S_IMODE(folder.st_mode) == 0o700
    with Client(guarded.endpoint, timeout=5) as c:            # same user: nothing to configure
        assert c.hello()["user"] == P.OWNER
    started = time.monotonic()
    with Client(guarded.endpoint, timeout=5, retries=1, key=(P.OWNER, "0" * 64)) as wrong:
        with pytest.raises(DaemonAuthError) as e:
            wrong.ping()
    assert time.monotonic() - started < 3, "a refusal is said at once, not after the timeouts"
    assert e.value.code == "forbidden" and "refused" in str(e.value) and P.KEY_ENV in str(e.value)
    assert isinstance(e.value, DaemonUnavailableError)        # callers that caught "unavailable" still do
    raw = zmq.Context.instance().socket(zmq.DEALER)            # no key at all: never served
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(guarded.endpoint)
    try:
        raw.send(msgpack.packb({"v": 1, "type": "status", "id": 1}))
        assert not raw.poll(1500), "a client without the key got an answer"
    finally:
        raw.close(0)
    with pytest.raises(DaemonAuthError):                        # a key file others may read is not used
        loose = guarded.outside / "loose.key"
        loose.write_text(f"guest {'a' * 64}\n")
        loose.chmod(0o644)
        Client(guarded.endpoint, key=str(loose))


_NOBODY = r"""
import json, os, sys, tempfile, secrets, fcntl
import zmq, zmq.utils.monitor, msgpack, numpy
import ned_fx.client as C, ned_fx.protocol as P
endpoint, owner_session, grant, owner_key = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5]
os.setgroups([]); os.setgid(65534); os.setuid(65534)        # from here on: another user
out = {}
try:
    open(owner_key).read()
    out["read_owner_key"] = True
except OSError:
    out["read_owner_key"] = False
try:
    C.Client(endpoint, timeout=15, retries=0).ping()     # the refused handshake is seen at once; 15 s for a loaded machine
    out["no_key"] = "served"
except C.DaemonAuthError as exc:
    out["no_key"] = exc.code
c = C.Client(endpoint, timeout=15, retries=0, key=grant)     # not a with block: its session stays open; 15 s: loaded
if True:
    hello = c.hello()
    out["user"], out["lane"] = hello["user"], "lane" in hello
    shot = c.open(sys.argv[4], frames="0-1")
    shot.wait()
    out["render"] = list(shot.render(0).shape)
    s = c.status()
    out["sessions"], out["total"] = sorted(s["sessions"]), s["sessions_total"]
    out["mine"] = shot.id
    for kind in ("progress", "close", "render"):
        try:
            c.request(kind, session=owner_session, frame=0 if kind == "render" else None)
            out["other_" + kind] = "allowed"
        except C.DaemonError as exc:
            out["other_" + kind] = exc.code
    try:
        c.shutdown()
        out["shutdown"] = "allowed"
    except C.DaemonError as exc:
        out["shutdown"] = exc.code
c.close()
print(json.dumps(out))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="a second local user needs root to switch to (runs as 'nobody')")
def test_another_user_needs_a_grant_and_then_sees_and_touches_only_its_own_sessions(tmp_path):
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user on this machine")
    home = tmp_path / "home"
    env = {"NED_FX_HOME": str(home)}
    made = subprocess.run([sys.executable, "-m", "ned_fx.commands.serve", "--grant", "guest"], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    grant = home / "grants" / "guest.key"
    assert stat.S_IMODE(grant.stat().st_mode) == 0o600
    import shutil
    import tempfile

    given = Path(tempfile.mkdtemp(prefix="ned_fx-guest-"))       # the owner hands guest a copy guest owns
    os.chown(given, nobody.pw_uid, nobody.pw_gid)
    copy = given / "guest.key"
    copy.write_bytes(grant.read_bytes())
    os.chown(copy, nobody.pw_uid, nobody.pw_gid)
    copy.chmod(0o600)
    src = str(footage("d12.mp4"))
    d = Daemon("--engine", "identity", tmp=tmp_path, env=env)
    try:
        with Client(d.endpoint, timeout=5) as owner:
            mine = owner.open(src, frames="0-3")
            mine.wait()
            out = subprocess.run([sys.executable, "-c", _NOBODY, d.endpoint, mine.id, str(copy), src,
                                  str(P.owner_key_path())], cwd=REPO,
                                 capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": "/"})
            # (the daemon's log too: a granted client's first request was now and then not answered in a loaded
            # full run, never alone or with the cores busy; its log will say what the daemon saw)
            assert out.returncode == 0, out.stderr[-3000:] + "\ndaemon log:\n" + d.stderr()[-3000:]
            import json

            got = json.loads(out.stdout.strip().splitlines()[-1])
            assert got["read_owner_key"] is False and got["no_key"] == "forbidden"
            assert got["user"] == "guest" and got["lane"] is False and got["render"] == [512, 512, 3]
            assert got["sessions"] == [got["mine"]] and got["total"] == 1      # the owner's is not listed
            assert got["other_progress"] == got["other_close"] == got["other_render"] == "forbidden"
            assert got["shutdown"] == "forbidden"
            assert mine.progress()["state"] == "ready"               # still open, still the owner's
            status = owner.status()
            assert {mine.id, got["mine"]} <= set(status["sessions"])   # the owner sees every session
    finally:
        d.kill()
        shutil.rmtree(given, ignore_errors=True)


def test_cache_files_of_real_faces_are_private_whatever_the_umask(tmp_path):
    cache = tmp_path / "cache"
    d = Daemon("--device", "cpu", "--cache", str(cache), tmp=tmp_path, umask=0)
    try:
        with Client(d.endpoint, timeout=120, retries=0) as c:
            c.open(str(footage("d12.mp4")), frames="0-1").wait(timeout=300)
    finally:
        d.kill()
    files = list(cache.iterdir())
    assert any(f.name.startswith("track-") for f in files), files
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, (f, oct(f.stat().st_mode))


# ---- nothing outside --root --------------------------------------------------------------------------------------

def test_a_curve_is_confined_before_it_is_read_and_its_content_never_comes_back(guarded):
    src = str(footage("d12.mp4"))
    secret = guarded.outside / "secret.csv"
    secret.write_text("root:TOPSECRET-HASH:19000:0:99999:7:::\n")
    inside = guarded.root / "notacurve.csv"
    inside.write_text("frame,intensity\nroot:INSIDE-SECRET:1\n")
    big = guarded.root / "big.csv"
    big.write_text("0,0.5\n" * 300_000)
    with Client(guarded.endpoint, timeout=5) as c:
        for path, code in ((secret, "forbidden"), ("/etc/shadow", "forbidden"), (inside, "unsupported"),
                           (big, "invalid_parameter")):
            with pytest.raises(DaemonError) as e:
                c.open(src, emotion="happy", curve=str(path))
            assert e.value.code == code, (path, e.value)
            assert "SECRET" not in str(e.value) and "root:" not in str(e.value), str(e.value)
        for key, value in (("checkpoint", "/etc/hostname"), ("reference", str(secret)),
                           ("holdout_matte", str(secret)), ("actor_footage", [str(secret)])):
            with pytest.raises(DaemonError) as e:
                c.request("open", params={"path": src, key: value, **({"renderer": "neural"}
                                                                       if key == "checkpoint" else {})})
            assert e.value.code == "forbidden", (key, e.value)


def test_sequence_frames_are_confined_at_open_and_at_every_read(guarded):
    root, outside = guarded.root, guarded.outside
    _png(root / "mixed" / "f.0001.png", 1)
    _png(outside / "stolen.png", 2)
    (root / "mixed" / "f.0002.png").symlink_to(outside / "stolen.png")      # a member pointing outside
    for n in (1, 2):
        _png(root / "seq" / f"s.{n:04d}.png", n)
        _png(outside / "seqx" / f"s.{n:04d}.png", 10 + n)
    with Client(guarded.endpoint, timeout=5) as c:
        with pytest.raises(DaemonError) as e:
            c.open(str(root / "mixed" / "f.####.png"))
        assert e.value.code == "forbidden" and "f.0002.png" in str(e.value)
        for key in ("actor_footage", "holdout_matte"):               # members of the other sequences too
            value = str(root / "mixed" / "f.####.png")
            with pytest.raises(DaemonError) as e:
                c.request("open", params={"path": str(root / "mixed" / "f.0001.png"),
                                          key: [value] if key == "actor_footage" else value})
            assert e.value.code == "forbidden" and "f.0002.png" in str(e.value), key
        shot = c.open(str(root / "seq" / "s.####.png"))
        shot.wait(timeout=10)
        assert shot.render(1).shape == (24, 32, 3)
        os.rename(root / "seq", root / "seq_old")                             # swapped after open
        (root / "seq").symlink_to(outside / "seqx")
        with pytest.raises(DaemonError) as e:
            shot.render(2)
        assert e.value.code == "forbidden"


def test_a_fifo_is_refused_at_once_and_sigterm_still_ends_the_daemon(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "x.png")
    os.mkfifo(root / "q.0002.png")
    _png(root / "q.0001.png")
    d = Daemon("--engine", "identity", "--grace", "2", roots=[root], tmp=tmp_path)
    try:
        with Client(d.endpoint, timeout=5, retries=0) as c:
            with pytest.raises(DaemonError) as e:
                c.open(str(root / "x.png"))
            assert e.value.code == "invalid_parameter" and "regular file" in str(e.value)
            seq = c.open(str(root / "q.####.png"))                   # the FIFO is no frame of the sequence
            assert seq.wait(timeout=10)["total"] == 1
            with pytest.raises(DaemonError) as e:
                seq.render(2)
            assert e.value.code == "invalid_parameter"
            assert c.ping()["stopping"] is False                      # nothing wedged
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(20) == 0
    finally:
        d.kill()


def test_nul_bytes_non_utf8_names_and_shm_names_are_invalid_parameters(guarded, tmp_path):
    weird = os.fsencode(str(guarded.root)) + b"/caf\xe9.png"
    with open(weird, "wb") as fh:
        fh.write(Path(_png(tmp_path / "w.png")).read_bytes())
    (guarded.root / "link.png").symlink_to(os.fsdecode(weird))
    with Client(guarded.endpoint, timeout=5) as c:
        for path in (str(guarded.root / "a\0b.png"), str(guarded.root / "link.png")):
            with pytest.raises(DaemonError) as e:
                c.open(path)
            assert e.value.code == "invalid_parameter", (path, e.value)
        assert c.ping()
    with pytest.raises(P.ProtocolError):
        P.shm_path("ned_fx-" + "0" * 32 + "\n")
    with pytest.raises(P.ProtocolError):
        P.spec_from_wire({"dtype": "uint8", "shape": [1, 1, 3], "channels": list("RGB"),
                          "shm": "ned_fx-" + "a" * 32 + "\n"})


# ---- no crash, no unbounded use -----------------------------------------------------------------------------------

_TRUNCATE = r"""
import os, sys, numpy as np
from ned_fx import protocol as P
from ned_fx.daemon.server import ShmMaps
spec = P.BufferSpec("float32", (256, 256, 4), tuple("RGBA"), shm="ned_fx-" + os.urandom(16).hex())
P.attach_shm(spec, create=True)[...] = 1.0
path = P.shm_path(spec.shm)
try:
    shm = ShmMaps()
    arr = shm.attach(spec)                    # what a render job reads
    os.truncate(path, 1024)                   # the client truncates its file meanwhile
    print("sum", float(np.asarray(arr, np.float64).sum()), flush=True)
    try:
        shm.attach(spec)
        print("attached a short file")
    except P.ProtocolError as exc:
        print("refused", exc.code)
    if hasattr(shm, "write"):                 # writing the result back into a file cut short: no signal either
        try:
            shm.write(spec, np.zeros(spec.shape, np.float32))
        except P.ProtocolError:
            pass
    print("alive")
finally:
    os.unlink(path)
"""


def test_a_truncated_shared_memory_frame_is_an_error_not_sigbus():
    out = subprocess.run([sys.executable, "-c", _TRUNCATE], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"the daemon's frame reader died (signal {-out.returncode}): {out.stderr[-800:]}"
    assert f"sum {256 * 256 * 4}.0" in out.stdout and "refused invalid_parameter" in out.stdout
    assert "alive" in out.stdout


def test_deleted_frame_files_are_not_kept_alive_by_the_daemon(guarded):
    src = str(footage("d12.mp4"))
    with Client(guarded.endpoint, timeout=5) as c:
        shot = c.open(src, frames="0-3")
        shot.wait()
        a = np.ones((64, 64, 4), np.float32)
        np.testing.assert_array_equal(shot.render(1, a, shm=True), a)
        name = c.shm_buffer(a.shape, a.dtype)[0]
    assert not os.path.exists(P.shm_path(name))                # the client removed it
    pid = guarded.proc.pid
    end = time.monotonic() + 12
    while True:
        held = []
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                held.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except FileNotFoundError:      # closed between the listing and the look: it holds nothing
                pass
        maps = Path(f"/proc/{pid}/maps").read_text()
        if not any(name in h for h in held) and name not in maps:
            break
        assert time.monotonic() < end, "the daemon still holds the deleted frame file"
        time.sleep(0.5)


def test_stale_frame_files_of_dead_clients_are_removed_live_ones_kept():
    spec_dead = P.BufferSpec("uint8", (4, 4, 3), tuple("RGB"), shm="ned_fx-" + os.urandom(16).hex())
    spec_live = P.BufferSpec("uint8", (4, 4, 3), tuple("RGB"), shm="ned_fx-" + os.urandom(16).hex())
    P.attach_shm(spec_dead, create=True)                         # its client was killed: no lock held
    P.attach_shm(spec_live, create=True)
    hold = P.hold_shm(spec_live.shm)
    try:
        removed = P.remove_stale_shm(min_age=0, names=[spec_dead.shm, spec_live.shm])
        assert spec_dead.shm in removed and not os.path.exists(P.shm_path(spec_dead.shm))
        assert os.path.exists(P.shm_path(spec_live.shm))
    finally:
        os.close(hold)
        for s in (spec_dead, spec_live):
            if os.path.exists(P.shm_path(s.shm)):
                os.unlink(P.shm_path(s.shm))


def test_absurd_frame_ranges_cost_nothing_and_are_invalid_parameters(guarded):
    src = str(footage("d12.mp4"))

    def rss() -> int:
        return int(Path(f"/proc/{guarded.proc.pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    before = rss()
    with Client(guarded.endpoint, timeout=10) as c:
        with pytest.raises(DaemonError) as e:
            c.open(src, frames="1-" + "9" * 24)
        assert e.value.code == "invalid_parameter"
        started = time.monotonic()
        shot = c.open(src, frames="1-20000000")
        with pytest.raises(DaemonError) as e:
            shot.wait(timeout=30)
        assert e.value.code == "invalid_parameter" and "outside the source" in str(e.value)
        assert time.monotonic() - started < 10
        assert c.ping()
    assert rss() - before < 200 << 20


def test_status_of_many_sessions_fits_one_header_and_pages(guarded):
    still = str(_png(guarded.root / "still.png"))
    with Client(guarded.endpoint, timeout=10) as c:
        shots = [c.open(still) for _ in range(150)]
        s = c.status()
        assert s["sessions_total"] >= 150 and len(s["sessions"]) <= 50
        seen = set()
        for offset in range(0, s["sessions_total"], 50):
            seen |= set(c.request("status", params={"offset": offset}).result["sessions"])
        assert {shot.id for shot in shots} <= seen
        for shot in shots:
            shot.close()


# ---- restarts and endpoints ----------------------------------------------------------------------------------------

@pytest.fixture
def plain_zap():
    """``(context, name, secret)``: a ZeroMQ context whose PLAIN servers (fake daemons) accept this user's daemon
    key, checked by a ZAP handler in a thread; every socket left in it is closed at the end."""
    from zmq.auth.thread import ThreadAuthenticator

    ctx = zmq.Context()
    name, secret = P.client_key() or ("owner", "ab" * 32)
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_plain(domain="*", passwords={name: secret})
    try:
        yield ctx, name, secret
    finally:
        auth.stop()
        ctx.destroy(linger=0)                  # a fake daemon still polling must not hold the test


def test_a_client_retries_shutting_down_like_a_lost_daemon(plain_zap):
    """A daemon that says ``shutting_down`` (a graceful restart) is waited for, not reported to the caller."""
    ctx, name, secret = plain_zap
    server = ctx.socket(zmq.ROUTER)
    server.plain_server = True
    port = server.bind_to_random_port("tcp://127.0.0.1")
    answered = []

    def serve() -> None:
        for n in range(4):
            if not server.poll(5000):
                return
            frames = server.recv_multipart()
            msg = P.decode(frames[1:])
            parts = (P.error_reply(msg.id, "shutting_down", "restarting") if n < 3
                     else P.encode("reply", msg.id, result={"pong": 1.0, "stopping": False}))
            answered.append(n)
            server.send_multipart([frames[0]] + [bytes(p) for p in parts])

    t = threading.Thread(target=serve)
    t.start()
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout=3, retries=1, key=(name, secret)) as c:
            assert c.ping()["pong"] == 1.0
        assert answered == [0, 1, 2, 3]
    finally:
        t.join(10)
        server.close(0)


def test_a_request_lost_with_its_daemon_is_sent_again_at_once(plain_zap):
    """A daemon takes a request and exits without answering (a crash, or a restart that took it as it stopped);
    a new daemon comes up on the same port. The client notices the dropped connection and resends to the new one
    at once, not after its whole timeout (60 s here: a host frozen for a minute). The last attempt still waits its
    timeout out (``retries=0``: 3 s here), as before: a drop seen late may be an earlier connection's."""
    ctx, name, secret = plain_zap
    port = free_port()
    got: list = []

    def daemon(answer: bool) -> None:
        server = ctx.socket(zmq.ROUTER)
        server.plain_server = True
        for _ in range(100):         # the one before lets go of the port a moment after its close() returns
            try:
                server.bind(f"tcp://127.0.0.1:{port}")
                break
            except zmq.ZMQError:
                time.sleep(0.05)
        try:
            if server.poll(10000):
                frames = server.recv_multipart()
                msg = P.decode(frames[1:])
                got.append((answer, msg.id))
                if answer:
                    parts = P.encode("reply", msg.id, result={"pong": 1.0, "stopping": False})
                    server.send_multipart([frames[0]] + [bytes(p) for p in parts])
                    server.poll(1000)
        finally:
            server.close(0)             # the first one: gone, its request unanswered

    with Client(f"tcp://127.0.0.1:{port}", timeout=60, retries=1, key=(name, secret)) as c:
        first = threading.Thread(target=daemon, args=(False,))
        first.start()
        started = time.monotonic()
        second = threading.Thread(target=lambda: (first.join(), daemon(True)))
        second.start()
        assert c.ping()["pong"] == 1.0
        assert time.monotonic() - started < 15, "waited for the timeout, not for the dropped connection"
        # the second daemon answered and exits within a second without reading more: a last attempt's
        # request it swallows is waited for to the end of its timeout, then reported
        started = time.monotonic()
        with pytest.raises(DaemonUnavailableError):
            c.ping(timeout=3, retries=0)
        assert time.monotonic() - started >= 2.5
        second.join(10)
    assert [a for a, _ in got] == [False, True]
    assert got[0][1] != got[1][1]          # a resend: a new request id


def test_a_second_daemon_on_the_same_ipc_path_is_refused(tmp_path):
    sock = tmp_path / "d.sock"
    d = Daemon("--engine", "identity", "--bind", f"ipc://{sock}", tmp=tmp_path)
    try:
        assert stat.S_IMODE(os.lstat(sock).st_mode) & 0o077 == 0
        out = subprocess.run([sys.executable, "-m", "ned_fx.commands.serve", "--engine", "identity", "--bind",
                              f"ipc://{sock}", "--no-audit-log"], cwd=REPO, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode != 0 and out.stderr.startswith("ned-fx: error:") and "in use" in out.stderr
        assert "Traceback" not in out.stderr
        with Client(f"ipc://{sock}", timeout=5) as c:               # the first one still has it
            assert c.ping()["stopping"] is False
    finally:
        d.kill()


def test_dead_clients_sessions_are_reaped_well_before_an_hour():
    from ned_fx.commands.serve import add_options
    import argparse

    p = argparse.ArgumentParser()
    add_options(p)
    assert p.parse_args([]).session_idle <= 900


_HOLDS_A_SESSION = """
import sys, time
from ned_fx.client import Client
c = Client(sys.argv[1], timeout=10)
shot = c.open(sys.argv[2], frames="0-3")
shot.wait()
print(shot.id, flush=True)
time.sleep(600)
"""


def test_a_killed_clients_session_is_reaped_after_its_lease(tmp_path):
    """A session lives while any connection that used it is up (several threads of a host share sessions), and
    ``--lease`` seconds more once the last one dropped (kill -9)."""
    d = Daemon("--engine", "identity", "--lease", "1", tmp=tmp_path)
    try:
        proc = subprocess.Popen([sys.executable, "-c", _HOLDS_A_SESSION, d.endpoint, str(footage("d12.mp4"))],
                                cwd=REPO, stdout=subprocess.PIPE, text=True)
        try:
            sid = proc.stdout.readline().strip()
            watcher = Client(d.endpoint, timeout=5)
            other = Client(d.endpoint, timeout=5)
            assert sid in watcher.status()["sessions"]
            time.sleep(2.5)
            assert sid in watcher.status()["sessions"], "a live client's session is kept past the lease"
            other.request("progress", session=sid)             # a second connection uses the session
            proc.kill()                                         # kill -9: it never closes its session
            proc.wait(10)
            time.sleep(3)
            assert sid in watcher.status()["sessions"], "the other connection still holds it"
            other.close()                                       # the last connection that used it drops
            end = time.monotonic() + 15
            while sid in watcher.status()["sessions"]:
                assert time.monotonic() < end, "the dead client's session was not reaped"
                time.sleep(0.5)
            watcher.close()
        finally:
            proc.kill()
            proc.wait(10)
    finally:
        d.kill()


def test_a_graceful_restart_is_invisible_to_shot_render(tmp_path):
    """SIGTERM while three hosts render, then a new daemon on the same port: the old one answers
    ``shutting_down`` while it finishes its renders; clients wait for the new one and their shots reopen
    themselves (cached analysis): no error reaches ``Shot.render``."""
    src = str(footage("d12.mp4"))
    cache = str(tmp_path / "cache")
    d = Daemon("--device", "cpu", "--cache", cache, "--grace", "5", tmp=tmp_path)
    errors: list = []
    rendered: list = []
    stop = threading.Event()
    clients = []
    try:
        shots = []
        for _ in range(3):
            clients.append(Client(d.endpoint, timeout=60, retries=1))
            shots.append(clients[-1].open(src, frames="0-3"))
            shots[-1].wait(timeout=300)

        def host(shot) -> None:
            n = 0
            while not stop.is_set():
                try:
                    shot.render(n % 4)
                    rendered.append(n)
                except Exception as exc:     # noqa: BLE001 - what the test counts
                    errors.append(exc)
                    return
                n += 1

        threads = [threading.Thread(target=host, args=(shot,)) for shot in shots]
        for t in threads:
            t.start()
        while len(rendered) < 6:
            time.sleep(0.05)
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(60) == 0
        before = len(rendered)
        d = Daemon("--device", "cpu", "--cache", cache, port=d.port, tmp=tmp_path)
        end = time.monotonic() + 120
        while len(rendered) < before + 6 and time.monotonic() < end and len(errors) < 3:
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(120)
        assert not errors, errors[:3]
        assert len(rendered) >= before + 6
    finally:
        stop.set()
        for c in clients:
            c.close()
        d.kill()


_WEDGED = r"""
import os, sys, threading
from concurrent.futures import ThreadPoolExecutor
from ned_fx.commands import serve
fifo = sys.argv[1]
pool = ThreadPoolExecutor(1)
pool.submit(lambda: open(fifo).read())          # a read that never returns (nobody writes the FIFO)
pool.shutdown(wait=False)

class Stopped:
    def log(self, msg):
        print(msg, flush=True)

serve._exit_if_wedged(Stopped(), 0)
print("returned", flush=True)
"""


def test_a_worker_stuck_in_a_read_does_not_keep_a_stopped_daemon_alive(tmp_path):
    """After SIGTERM the loop ends; a pool thread wedged in a FIFO read must not keep the process alive (Python
    joins pool threads at exit)."""
    fifo = tmp_path / "wedge.png"
    os.mkfifo(fifo)
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", _WEDGED, str(fifo)], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "stuck worker thread" in out.stdout, (out.stdout, out.stderr[-500:])
    assert time.monotonic() - started < 30


def test_a_client_made_before_the_daemons_first_start_finds_its_key(tmp_path, monkeypatch):
    from daemons import free_port

    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))             # a user whose daemon never ran: no key yet
    assert P.client_key() is None
    port = free_port()
    c = Client(f"tcp://127.0.0.1:{port}", timeout=10, retries=1)
    d = Daemon("--engine", "identity", port=port, tmp=tmp_path, env={"XDG_RUNTIME_DIR": str(run)})
    try:
        assert (run / "ned_fx" / "daemon.key").is_file()
        assert c.ping()["stopping"] is False
        assert c.hello()["user"] == P.OWNER
    finally:
        c.close()
        d.kill()


from hypothesis import HealthCheck, given, settings          # noqa: E402
from hypothesis import strategies as st                      # noqa: E402

_NASTY = st.sampled_from(["", "\0", "a\0b.png", "/etc/shadow", "../../../../etc/passwd", "x" * 5000, "~root",
                          "plate.####.png", "%s%s%n", "\udcff".encode("utf-8", "surrogatepass").decode("latin-1"),
                          "/dev/zero", "/proc/self/mem", "/dev/stdin"])
_OPEN_PARAMS = st.fixed_dictionaries({"path": st.one_of(_NASTY, st.text(max_size=40))}, optional={
    "frames": st.one_of(st.text(max_size=30), st.sampled_from(["1-" + "9" * 30, "-5-3", "0-0x0", "9" * 70])),
    "face": st.integers(-(1 << 63), (1 << 63) - 1),
    "curve": st.one_of(_NASTY, st.text(max_size=20)),
    "reference": _NASTY, "checkpoint": _NASTY, "holdout_matte": _NASTY,
    "actor_footage": st.lists(_NASTY, max_size=3),
    "intensity": st.floats(allow_nan=True, allow_infinity=True),
    "emotion": st.one_of(st.text(max_size=10), st.sampled_from(["happy", "sad"]))})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=_OPEN_PARAMS)
def test_fuzzed_open_requests_are_never_internal_errors(guarded, params):
    with Client(guarded.endpoint, timeout=10, retries=0) as c:
        try:
            reply = c.request("open", params=params)
        except DaemonError as exc:
            assert exc.code != "internal", (params, str(exc))
            assert "root:" not in str(exc)
            return
        c.request("close", session=reply.session)


def test_reading_an_opens_files_never_stalls_other_clients(tmp_path, monkeypatch):
    """The files an ``open`` names are read off the socket thread: a slow read (a big file, a slow disk) holds
    up that open only, never another client's requests."""
    import ned_fx.manipulation as manip
    from ned_fx.daemon.server import Daemon as InProcess

    real = manip.read_curve

    def slow(path, *args, **kwargs):
        time.sleep(2.5)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(manip, "read_curve", slow)
    curve = tmp_path / "curve.csv"
    curve.write_text("0,0.5\n3,1.0\n")
    src = footage("d12.mp4")
    d = InProcess("tcp://127.0.0.1:0", engine="identity", roots=[tmp_path, src.parent], local_lane=False,
                  cache=tmp_path / "cache", log=lambda msg: None)
    d.load()
    endpoint = d.bind()
    loop = threading.Thread(target=d.serve)
    loop.start()
    opened: dict = {}
    try:
        opener = Client(endpoint, timeout=30, retries=0)
        t = threading.Thread(target=lambda: opened.setdefault("shot", opener.open(str(src), frames="0-3",
                                                                               emotion="happy", curve=str(curve))))
        t.start()
        time.sleep(0.5)                                        # the open is reading its curve now
        with Client(endpoint, timeout=10, retries=0) as other:
            started = time.monotonic()
            assert other.ping()["stopping"] is False
            assert time.monotonic() - started < 1.0, "a slow open stalled another client"
        t.join(60)
        assert opened["shot"].wait(timeout=30)["state"] == "ready"
        opener.close()
    finally:
        d.stopping = True
        loop.join(60)


def test_a_request_with_no_connection_to_send_on_ends_at_its_timeout():
    """A DEALER with no connection blocks a send for good: a handshake the daemon refused before the request went
    out left none, and the suite once hung 300 s in ``send`` in the test below. The send waits by the request's
    deadline (and on the monitor, which reports a refusal): here the connection is taken away, and the request says
    "no daemon answered" after its timeout instead of hanging."""
    import threading

    import zmq

    server = zmq.Context.instance().socket(zmq.ROUTER)
    try:
        port = server.bind_to_random_port("tcp://127.0.0.1")
        server.close(0)                             # nobody listens there: no handshake, no refusal
        endpoint = f"tcp://127.0.0.1:{port}"
        c = Client(endpoint, timeout=1, retries=0)
        if c.sock is None:
            c._connect()
        c.sock.disconnect(endpoint)                 # no connection left: a blocking send would wait for ever
        got: list = []

        def ask():
            try:
                c.request("hello", timeout=1, retries=0)
            except DaemonUnavailableError as exc:
                got.append(exc)

        started = time.monotonic()
        t = threading.Thread(target=ask, daemon=True)
        t.start()
        t.join(15)
        assert not t.is_alive(), "the request hung in send"
        assert len(got) == 1 and not isinstance(got[0], DaemonAuthError) and time.monotonic() - started < 10, got
        c.close()
    finally:
        server.close(0)


def test_a_refused_client_asked_again_is_refused_again_at_once():
    """ZeroMQ gives up a connection whose handshake was refused: a second request on the same Client waited its
    whole timeout and said "no daemon answered" (wrong, and slow). It connects afresh and is told at once."""
    import zmq
    from zmq.auth.thread import ThreadAuthenticator

    ctx = zmq.Context()
    auth = ThreadAuthenticator(ctx)
    auth.start()
    server = ctx.socket(zmq.ROUTER)
    try:
        auth.configure_plain(domain="*", passwords={"owner": "1" * 64})
        server.plain_server = True
        port = server.bind_to_random_port("tcp://127.0.0.1")
        c = Client(f"tcp://127.0.0.1:{port}", timeout=5, retries=0, key=("guest", "2" * 64))
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(DaemonAuthError):
                c.ping()
            assert time.monotonic() - started < 3, "a refusal is said at once, not after the timeout"
        c.close()
    finally:
        server.close(0)
        auth.stop()
        ctx.term()
