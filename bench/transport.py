"""Transport benchmark: half-float RGBA frames through the daemon (identity engine) vs a bare pyzmq echo of the
same bytes in the same run, over loopback TCP, and through the shared-memory fast path (headers over the daemon's
local lane, and over ZeroMQ as a client with the lane off sends them); then frames/s with 1, 2 and 4 concurrent
client processes.

    .venv/bin/python bench/transport.py [--quick]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import FOOTAGE, REPO, table, write_results  # noqa: E402
from ned_fx.client import Client  # noqa: E402

SIZES = {"512x512": (512, 512), "1920x1080": (1080, 1920), "3840x2160": (2160, 3840)}

_ECHO = """
import sys, zmq
ctx = zmq.Context(); s = ctx.socket(zmq.ROUTER); s.bind(sys.argv[1]); print("ready", flush=True)
while True:
    s.send_multipart(s.recv_multipart(copy=False), copy=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], marker: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if marker not in line:
        proc.kill()
        raise RuntimeError(f"{cmd[2:4]} did not start: {line!r}")
    return proc


def echo_rtt(endpoint: str, frame: np.ndarray, n: int) -> float:
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    header = b"\x80" * 64            # a header-sized first part, as the protocol sends
    buf = memoryview(frame).cast("B")
    for _ in range(2):
        s.send_multipart([header, buf], copy=False)
        s.recv_multipart(copy=False)
    t = time.perf_counter()
    for _ in range(n):
        s.send_multipart([header, buf], copy=False)
        s.recv_multipart(copy=False)
    dt = (time.perf_counter() - t) / n
    s.close(0)
    return dt


def daemon_rtt(endpoint: str, source: str, frame: np.ndarray, n: int, shm: bool = False, lane: bool = True) -> float:
    """Mean round trip through the daemon; with ``shm`` the client copies the frame into its shared-memory
    buffer each time (the host hands over pixels it holds elsewhere) and gets a view of the result; ``lane``:
    the headers of shared-memory renders go over the local lane (else over ZeroMQ)."""
    with Client(endpoint, timeout=30, local_lane=lane) as c:
        shot = c.open(source, frames="0-3")
        shot.wait()
        for _ in range(2):
            shot.render(1, frame, shm=shm)
        t = time.perf_counter()
        for _ in range(n):
            shot.render(1, frame, shm=shm)
        dt = (time.perf_counter() - t) / n
        shot.close()
    return dt


def copy_time(frame: np.ndarray, n: int) -> float:
    """Mean time of a plain in-process copy of the frame (the shared-memory path's yardstick)."""
    dst = np.empty_like(frame)
    np.copyto(dst, frame)
    t = time.perf_counter()
    for _ in range(n):
        np.copyto(dst, frame)
    return (time.perf_counter() - t) / n


def _client_worker(endpoint: str, source: str, shape: tuple, k: int, start: float, stop: float, out) -> None:
    frame = np.random.default_rng(k).random(shape).astype(np.float16)
    done = 0
    with Client(endpoint, timeout=30) as c:
        shot = c.open(source, frames="0-3")
        shot.wait()
        while time.time() < start:
            time.sleep(0.001)
        while time.time() < stop:
            shot.render(k % 4, frame)
            done += 1
        shot.close()
    out.put(done)


def concurrent_fps(endpoint: str, source: str, shape: tuple, clients: int, seconds: float) -> float:
    """Frames/s through the daemon with ``clients`` client processes rendering at once."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start = time.time() + 3.0          # time for the processes to start and open their sessions
    procs = [ctx.Process(target=_client_worker, args=(endpoint, source, shape, k, start, start + seconds, out))
             for k in range(clients)]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=60 + seconds) for _ in procs)
    for p in procs:
        p.join(30)
    return total / seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer round trips")
    ap.add_argument("--blocks", type=int, default=5, help="interleaved measurement blocks per peer (best kept)")
    args = ap.parse_args()
    source = FOOTAGE / "d12.mp4"
    if not source.is_file():
        print(f"needs {source} (any movie of 4+ frames would do)", file=sys.stderr)
        return 2
    dport, eport = free_port(), free_port()
    daemon = start([sys.executable, "-m", "ned_fx.commands.serve", "--engine", "identity", "--port", str(dport),
                    "--root", str(FOOTAGE)], "ready on")
    echo = start([sys.executable, "-c", _ECHO, f"tcp://127.0.0.1:{eport}"], "ready")
    dend, eend = f"tcp://127.0.0.1:{dport}", f"tcp://127.0.0.1:{eport}"
    rows, conc = [], []
    try:
        for name, (h, w) in SIZES.items():
            frame = np.random.default_rng(0).random((h, w, 4)).astype(np.float16)
            n = max(5 if args.quick else 20, int((40 if args.quick else 200) * 512 * 512 / (h * w)))
            # interleaved blocks (echo, daemon, shm, copy) so a noisy machine slows every peer alike; best block
            es, ds, ms, zs, cs = [], [], [], [], []
            for _ in range(args.blocks):
                es.append(echo_rtt(eend, frame, n))
                ds.append(daemon_rtt(dend, str(source), frame, n))
                ms.append(daemon_rtt(dend, str(source), frame, n, shm=True))
                zs.append(daemon_rtt(dend, str(source), frame, n, shm=True, lane=False))
                cs.append(copy_time(frame, n))
            e, d, m, z, c = min(es), min(ds), min(ms), min(zs), min(cs)
            mb = frame.nbytes / 1e6
            rows.append({"frame": name, "MB": mb, "echo_ms": e * 1e3, "daemon_ms": d * 1e3,
                         "overhead_%": (d / e - 1) * 100, "echo_MB/s": 2 * mb / e, "daemon_MB/s": 2 * mb / d,
                         "daemon_fps": 1 / d, "shm_ms": m * 1e3, "copy_ms": c * 1e3, "shm/copy": m / c,
                         "shm_fps": 1 / m, "shm_zmq_ms": z * 1e3, "shm_zmq/copy": z / c, "round_trips": n})
        for k in (1, 2, 4):
            conc.append({"clients": k, "frame": "1920x1080", "fps": concurrent_fps(dend, str(source), (1080, 1920, 4),
                                                                                   k, 2.0 if args.quick else 5.0)})
    finally:
        daemon.kill()
        echo.kill()
    print(table(rows, ["frame", "MB", "echo_ms", "daemon_ms", "overhead_%", "echo_MB/s", "daemon_MB/s",
                       "daemon_fps", "shm_ms", "copy_ms", "shm/copy", "shm_fps", "shm_zmq_ms", "shm_zmq/copy",
                       "round_trips"]))
    print()
    print(table(conc, ["clients", "frame", "fps"]))
    path = write_results("transport", rows, {"concurrent": conc, "transport": "tcp loopback",
                                             "pixels": "float16 RGBA",
                                             "shm": "same-host fast path: client copies the frame into /dev/shm, "
                                                    "result read in place; headers over the local lane "
                                                    "(shm_ms) or over ZeroMQ (shm_zmq_ms)",
                                             "copy": "np.copyto of the frame into a preallocated array, same "
                                                     "process (the shared-memory path's yardstick)"})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
