"""Cross-client batching in the daemon: frames/s of 1, 2 and 4 concurrent hosts on the device fast path with
batches of up to 8 frames against the same daemon rendering one frame per engine call, in the same run.

    .venv/bin/python bench/batching.py [--device cpu|cuda] [--frames 16] [--repeats 3] [--box bucket]

Each host is a client process with its own shot (the shared talking clips: d12, WDA, d3, d12 again with another
emotion), sending its plate's pixels (8-bit RGB, as a host holds them) for frames 0..N-1 one after another, as an
artist scrubbing does. Both daemons are warmed up first (one host, a few frames); then every configuration runs
``--repeats`` times, interleaved (batched, single, batched, single, …), best kept.
On a CPU the fast path is not what the daemon uses by default (``ShotRenderer`` is faster there), so CPU numbers
show what batching does to the fast path's own cost, not the daemon's default speed. Prints a table and writes
JSON to bench/results/ (machine, command, commit).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import FOOTAGE, table, write_results  # noqa: E402
from bench.transport import free_port, start  # noqa: E402

HOSTS = (("d12.mp4", "happy"), ("WDA_AlexandriaOcasioCortez_000.mp4", "sad"), ("d3.mp4", "surprised"),
         ("d12.mp4", "angry"))


def _host(endpoint: str, clip: str, emotion: str, frames: int, start: float, out) -> None:
    import numpy as np

    from ned_fx.client import Client
    from ned_fx.media import open_media

    with open_media(str(FOOTAGE / clip), f"0-{frames - 1}") as media:
        plates = [media.read(n).pixels for n in range(frames)]
    with Client(endpoint, timeout=600, retries=0) as c:
        shot = c.open(str(FOOTAGE / clip), frames=f"0-{frames - 1}", emotion=emotion)
        shot.wait()
        shot.render(0, plates[0])                      # warm: the session's renderer exists
        while time.time() < start:
            time.sleep(0.001)
        t = time.perf_counter()
        for n in range(frames):
            np.asarray(shot.render(n, plates[n]))
        took = time.perf_counter() - t
        shot.close()
        out.put((clip, emotion, took))


def run_hosts(endpoint: str, hosts: int, frames: int) -> float:
    """Frames/s of ``hosts`` client processes each rendering ``frames`` frames at once."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start = time.time() + 8.0                         # processes start, decode their plates, open their shots
    procs = [ctx.Process(target=_host, args=(endpoint, *HOSTS[k], frames, start, out)) for k in range(hosts)]
    for p in procs:
        p.start()
    import queue

    times, deadline = [], time.time() + 900
    while len(times) < hosts:
        try:
            times.append(out.get(timeout=5)[2])
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead or time.time() > deadline:
                for p in procs:
                    p.kill()
                raise RuntimeError(f"a host failed (exit codes {dead}) or {hosts} hosts took over 900 s")
    for p in procs:
        p.join(60)
    return hosts * frames / max(times)


def start_daemon(port: int, device: str, batch: int, box: str, cache: str):
    return start([sys.executable, "-m", "ned_fx.commands.serve", "--port", str(port), "--root", str(FOOTAGE),
                  "--device", device, "--render-path", "fast", "--batch-size", str(batch), "--fast-box", box,
                  "--cache", cache, "--no-audit-log"], "ready on")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, default=16, help="frames per host")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs per configuration (best kept)")
    ap.add_argument("--box", default="bucket", choices=("frame", "bucket"))
    ap.add_argument("--hosts", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args()
    import tempfile

    from ned_fx.client import Client

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        ports = {b: free_port() for b in (8, 1)}
        daemons = {b: start_daemon(ports[b], args.device, b, args.box, cache) for b in (8, 1)}
        endpoints = {b: f"tcp://127.0.0.1:{port}" for b, port in ports.items()}
        try:
            for b in (8, 1):                            # warm: first calls of a fresh process are slow
                run_hosts(endpoints[b], 1, 3)
            for hosts in args.hosts:
                fps = {8: [], 1: []}
                for _ in range(args.repeats):
                    for b in (8, 1):
                        fps[b].append(run_hosts(endpoints[b], hosts, args.frames))
                        print(f"{hosts} host(s), batch {b}: {fps[b][-1]:.1f} frames/s", flush=True)
                with Client(endpoints[8], timeout=30) as c:
                    stats = c.status()["batching"]
                rows.append({"hosts": hosts, "batched_fps": max(fps[8]), "single_fps": max(fps[1]),
                             "batched/single": max(fps[8]) / max(fps[1]), "largest_batch": stats["largest"],
                             "mixed_batches": stats["multi_session_batches"], "batches": stats["batches"]})
        finally:
            for proc in daemons.values():
                proc.kill()
    print(table(rows, ["hosts", "batched_fps", "single_fps", "batched/single", "largest_batch", "mixed_batches",
                       "batches"]))
    path = write_results("batching", rows, {"device": args.device, "frames_per_host": args.frames, "box": args.box,
                                            "repeats": args.repeats,
                                            "pixels": "8-bit RGB 512x512 plates sent inline over TCP loopback",
                                            "peers": "--batch-size 8 vs --batch-size 1, same run, interleaved",
                                            "note": "cumulative batcher stats (largest/mixed/batches) since the "
                                                    "batched daemon started"})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
