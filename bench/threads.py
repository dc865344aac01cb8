"""How thread counts hold up idle and under load: `ned-fx track` of the same frames with --threads 1, half the
cores (ned_fx's default), every core, and 0 (torch's own default), on an idle machine and with every core kept
busy by other processes (what Nuke, a daemon and a batch sharing a workstation do).

    .venv/bin/python bench/threads.py [--clip d12.mp4] [--frames 48] [--repeat 2]

Prints a table (seconds, and each setting's time relative to the default in the same condition) and writes
bench/results/threads-<host>-<time>.json. Run it on an otherwise quiet machine: the "idle" rows need it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FOOTAGE, REPO, table, write_results  # noqa: E402


def _spin(stop) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100000):
            x += 1


def _track(clip: Path, frames: int, threads: int, out: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NED_FX_THREADS")}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ned_fx.cli", "--threads", str(threads), "track", str(clip), "-o", str(out),
                    "--frames", f"0-{frames - 1}", "-q"], cwd=REPO, env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="d12.mp4")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=2, help="runs per setting (the best is kept)")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from ned_fx.threads import default_threads

    cores = os.cpu_count() or 1
    settings = sorted({1, default_threads(cores), cores}) + [0]
    clip = FOOTAGE / args.clip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "t.npz"
        _track(clip, 4, 1, out)                                   # warm the file cache
        for condition in ("idle", "loaded"):
            stop = multiprocessing.Event()
            load = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(cores if condition == "loaded" else 0)]
            for p in load:
                p.start()
            try:
                for n in settings:
                    best = min(_track(clip, args.frames, n, out) for _ in range(args.repeat))
                    rows.append({"condition": condition, "threads": n if n else "torch default", "seconds": best,
                                 "ms_per_frame": 1000 * best / args.frames})
            finally:
                stop.set()
                for p in load:
                    p.join()
    for cond in ("idle", "loaded"):
        ref = next(r["seconds"] for r in rows if r["condition"] == cond and r["threads"] == default_threads(cores))
        for r in rows:
            if r["condition"] == cond:
                r["vs_ned_fx_default"] = r["seconds"] / ref
    print(table(rows, ["condition", "threads", "seconds", "ms_per_frame", "vs_ned_fx_default"]))
    path = write_results("threads", rows, {"clip": args.clip, "frames": args.frames, "cores": cores,
                                           "ned_fx_default": default_threads(cores)})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
