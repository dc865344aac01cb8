"""Peak memory of `ned-fx edit` on a long 4K image sequence (issue 18, goal 4: a 1,000-frame 4K sequence edits
within 2.5 GB peak RSS — memory bounded by the frame, not the shot).

    .venv/bin/python bench/memory.py [--frames 30 100] [--format exr|png] [--clip d12.mp4] [--folder /tmp/...]

It makes a synthetic 3840x2160 sequence under ``--folder`` (default /tmp; never in the repo) from a shared clip's
frames — each frame scaled up to the picture's height and edge-padded to its width, the clip played forwards and
backwards (ping-pong; a repeat is a hard link to the file of the same picture) for as many frames as the longest
run asks for; EXR: half-float scene-linear (sRGB decoded),
PNG: 8-bit — once, reused by later runs. Then for every ``--frames`` count it runs
``ned-fx edit SEQ --frames 1001-N -o OUT.####.<format>`` under ``/usr/bin/time -v`` (a child process: only the
edit is measured) with an empty track cache, and reads the peak resident set size and the wall time. Prints a
table and writes JSON to bench/results/ (the load average when each run started is in its row: the 2-core
development machine is shared).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import FOOTAGE, REPO, table, write_results

SIZE = (3840, 2160)
FIRST = 1001
LIMIT_MB = 2500.0


def _upscale(rgb8: np.ndarray) -> np.ndarray:
    import cv2

    w, h = SIZE
    scale = h / rgb8.shape[0]
    big = cv2.resize(rgb8, (int(round(rgb8.shape[1] * scale)), h), interpolation=cv2.INTER_CUBIC)
    pad = w - big.shape[1]
    return np.pad(big, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)), mode="edge")


def build_sequence(clip: Path, folder: Path, count: int, fmt: str) -> Path:
    """``folder/plate.####.<fmt>``, frames FIRST..FIRST+count-1 (frames already there are kept)."""
    from ned_fx.media import Frame, open_media, to_display_rgb8, write_image

    folder.mkdir(parents=True, exist_ok=True)
    pattern = folder / f"plate.####.{fmt}"
    missing = [i for i in range(count) if not (folder / f"plate.{FIRST + i:04d}.{fmt}").is_file()]
    if not missing:
        return pattern
    with open_media(clip) as src:
        frames = [to_display_rgb8(f) for f in src]
    order = frames + frames[-2:0:-1] if len(frames) > 1 else frames        # ping-pong: no cut at the loop
    started = time.perf_counter()
    for done, i in enumerate(missing, 1):
        same = folder / f"plate.{FIRST + i - len(order):04d}.{fmt}"
        if i >= len(order) and same.is_file():           # the ping-pong repeats: the same picture, another file
            try:
                os.link(same, folder / f"plate.{FIRST + i:04d}.{fmt}")
            except OSError:
                shutil.copyfile(same, folder / f"plate.{FIRST + i:04d}.{fmt}")
            continue
        rgb = _upscale(order[i % len(order)])
        if fmt == "exr":
            lin = rgb.astype(np.float32) / 255.0
            lin = np.where(lin <= 0.04045, lin / 12.92, ((lin + 0.055) / 1.055) ** 2.4)
            write_image(folder / f"plate.{FIRST + i:04d}.exr", Frame.from_array(lin.astype(np.float16), FIRST + i))
        else:
            write_image(folder / f"plate.{FIRST + i:04d}.png", Frame.from_array(rgb, FIRST + i))
        if done % 25 == 0:
            print(f"  built {done}/{len(missing)} frames ({time.perf_counter() - started:.0f} s)", flush=True)
    return pattern


def _time_v(text: str) -> dict:
    def field(name: str) -> str | None:
        m = re.search(rf"^\s*{re.escape(name)}:\s*(.+)$", text, re.M)
        return m.group(1).strip() if m else None

    peak_kb = field("Maximum resident set size (kbytes)")
    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    seconds = None
    if wall:
        parts = [float(p) for p in wall.split(":")]
        seconds = sum(p * 60 ** k for k, p in enumerate(reversed(parts)))
    return {"peak_rss_mb": int(peak_kb) / 1024.0 if peak_kb else None, "seconds": seconds,
            "user_s": float(field("User time (seconds)") or 0), "system_s": float(field("System time (seconds)") or 0)}


def run_edit(pattern: Path, count: int, fmt: str, out_folder: Path, emotion: str, nice: int,
             extra: list[str]) -> dict:
    out_folder.mkdir(parents=True, exist_ok=True)
    out = out_folder / f"edit.####.{fmt}"
    cache = Path(tempfile.mkdtemp(prefix="ned_fx_mem_cache_"))
    env = {**os.environ, "NED_FX_CACHE": str(cache)}
    cli = [sys.executable, "-m", "ned_fx.cli", "edit", str(pattern), "-o", str(out), "--emotion", emotion,
           "--frames", f"{FIRST}-{FIRST + count - 1}", "-q", "--no-audit-log", *extra]
    cmd = ["nice", "-n", str(nice), "/usr/bin/time", "-v", *cli]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    took = time.perf_counter() - started
    shutil.rmtree(cache, ignore_errors=True)
    stats = _time_v(proc.stderr)
    written = len(list(out_folder.glob(f"edit.*.{fmt}")))
    row = {"frames": count, "size": f"{SIZE[0]}x{SIZE[1]}", "format": fmt, **stats,
           "fps": count / stats["seconds"] if stats.get("seconds") else count / took,
           "frame_mb": SIZE[0] * SIZE[1] * 3 * 4 / 2 ** 20, "written": written, "exit": proc.returncode,
           "load_at_start": round(load, 2), "within_2500mb": bool(stats["peak_rss_mb"] and stats["peak_rss_mb"] <= LIMIT_MB)}
    if proc.returncode != 0:
        row["error"] = proc.stderr[-2000:]
    return row


def stage_peaks(pattern: Path, count: int, fmt: str, out_folder: Path, emotion: str) -> dict:
    """In this process: ``edit_media`` with the RSS sampled every 20 ms, each sample booked to the stage the
    progress callback last named (``start`` before the first): peak MB per stage, and the RSS at 10 %, 50 % and
    100 % of the rendering (flat in the frame count when memory is bounded by the frame)."""
    import threading

    from ned_fx.pipeline import EditInstruction, edit_media

    page = os.sysconf("SC_PAGE_SIZE")

    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page / 2 ** 20

    state = {"stage": "start", "done": 0, "total": 1}
    peaks: dict[str, float] = {}
    marks: dict[str, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peaks[state["stage"]] = max(peaks.get(state["stage"], 0.0), rss_mb())
            stop.wait(0.02)

    def progress(stage: str, done: int, total: int) -> None:
        state.update(stage=stage, done=done, total=total)
        if stage == "rendering":
            for pct in (10, 50, 100):
                if f"render_{pct}%" not in marks and done * 100 >= pct * total:
                    marks[f"render_{pct}%"] = rss_mb()

    out_folder.mkdir(parents=True, exist_ok=True)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        edit_media(pattern, out_folder / f"edit.####.{fmt}", EditInstruction(emotion=emotion),
                   frames=f"{FIRST}-{FIRST + count - 1}", progress=progress)
    finally:
        stop.set()
        thread.join()
    return {"frames": count, "stage_peak_mb": {k: round(v) for k, v in peaks.items()},
            "render_rss_mb": {k: round(v) for k, v in marks.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[30, 100], help="frame counts to edit (one run each)")
    ap.add_argument("--format", choices=("exr", "png"), default="exr")
    ap.add_argument("--clip", default="d12.mp4", help="the shared clip the 4K frames are made from")
    ap.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "ned_fx_memory_4k",
                    help="where the synthetic sequence and the outputs go (kept for later runs; never the repo)")
    ap.add_argument("--emotion", default="happy")
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--keep-output", action="store_true", help="keep the edited frames (default: removed per run)")
    ap.add_argument("--stages", action="store_true", help="also run each edit in this process with the RSS "
                    "sampled per stage (peak per stage; RSS at 10/50/100 %% of the rendering)")
    ap.add_argument("edit_args", nargs="*", help="more `ned-fx edit` options (after --)")
    args = ap.parse_args()
    folder = args.folder.resolve()
    if REPO in folder.parents or folder == REPO:
        ap.error("--folder must be outside the repository (the footage is never committed)")
    clip = FOOTAGE / args.clip
    print(f"building {max(args.frames)} frames of {SIZE[0]}x{SIZE[1]} {args.format} from {clip.name} in {folder}",
          flush=True)
    pattern = build_sequence(clip, folder / f"plate_{args.format}", max(args.frames), args.format)
    rows = []
    for count in args.frames:
        out_folder = folder / f"out_{args.format}_{count}"
        shutil.rmtree(out_folder, ignore_errors=True)
        row = run_edit(pattern, count, args.format, out_folder, args.emotion, args.nice, args.edit_args)
        rows.append(row)
        print(f"  {count} frames: peak RSS {row['peak_rss_mb']:.0f} MB, {row['seconds']:.0f} s, exit {row['exit']}",
              flush=True)
        if not args.keep_output:
            shutil.rmtree(out_folder, ignore_errors=True)
        if args.stages:
            os.environ["NED_FX_CACHE"] = tempfile.mkdtemp(prefix="ned_fx_mem_cache_")
            row["stages"] = stage_peaks(pattern, count, args.format, out_folder, args.emotion)
            shutil.rmtree(os.environ.pop("NED_FX_CACHE"), ignore_errors=True)
            shutil.rmtree(out_folder, ignore_errors=True)
            print(f"  {count} frames in-process: {row['stages']}", flush=True)
    print(table(rows, ["frames", "size", "format", "peak_rss_mb", "seconds", "fps", "exit", "load_at_start"]))
    path = write_results("memory", rows, {"clip": args.clip, "limit_mb": LIMIT_MB, "nice": args.nice})
    print(f"wrote {path}")
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
