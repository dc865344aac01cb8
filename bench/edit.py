"""End-to-end speed of `ned-fx edit` (the main job), per stage, on CPU (or a GPU where one is present).

    .venv/bin/python bench/edit.py [--clips d12.mp4 ...] [--frames 100] [--emotion happy]

For each shared 512² clip and for a 1920x1080 plate made by padding a clip (edge-replicated, written to a
lossless-ish movie first, not timed), it runs the whole edit (decode, track, manipulate, render, composite,
encode to .mp4) through `ned_fx.pipeline.edit_media` and reports frames/s and ms/frame per stage. The peer in
the same run is a plain transcode of the same frames through the same media layer (decode + encode), run right
before and right after the first edit (``transcode_before_fps``, ``transcode_after_fps``; ``transcode_fps`` is their
mean time's: one transcode alone swung 14-21 frames/s at 1080p between runs): the ratio says what the edit costs
on top of touching the frames at all. Targets (issue 4, 2-core CPU): >= 10 frames/s at
512², >= 4 at 1080p. Each edit runs as `ned-fx edit` does, with the track cache (an empty one per run); then a
second edit of the same frames with --second-emotion reads the cached track and appearance models:
``second_vs_first`` is the first edit's time over the second's (issue 18: >= 2); ``second_render_ms`` and
``second_occlusion_ms`` say what the second edit's render still costs (its occluder mattes are read from the first
edit where the face region's box is the same). The render runs in forked worker processes where it can
(``ned_fx.forked``: frames up to 2K, one per core), so the stage times and ``render_cpu_ms`` add up the workers'
own; ``threads_fps`` is the first edit again with ``NED_FX_RENDER_PROCESSES=1`` (the render in this process's
threads, an empty track cache), ``forked_vs_threads`` the ratio. Inside "render": ``occlusion_ms``, ``warp_ms`` (the geometry
renderer), ``brows_ms``, ``skin_ms``, ``mouth_ms``, ``eyes_ms``. The stage times are wall seconds of the thread that
ran the stage, and render's two halves run in two threads at once, so they count waits for a core and for the GIL;
``render_cpu_ms``, ``composite_cpu_ms`` and ``encode_cpu_ms`` are those threads' own CPU (the encoder's threads are
counted in ``cpu_ms`` only). Prints a table and writes JSON to bench/results/.

``cli_first_s``, ``cli_second_s`` and ``cli_second_vs_first`` are the same two edits as a user runs them: two
``ned-fx edit`` processes one after the other on an empty track cache (each pays its start-up: Python, the imports,
torch where the edit needs it -- the first does, for the tracker; a second edit of a cached shot never imports it).

The machine's 1-minute load average before and after each row is recorded (``load``): these VMs are shared, and
a load above the core count slows everything (compare ratios within one run). The process's CPU time (all its
threads, the encoder's included) per frame is recorded beside the wall time (``cpu_ms``, ``second_cpu_ms``,
``transcode_cpu_ms``): it moves much less with the load than the wall time does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import FOOTAGE, table, write_results

CLIPS = ("WDA_AlexandriaOcasioCortez_000.mp4", "d12.mp4", "d3.mp4")


def padded_plate(src: Path, out: Path, frames: int, size=(1920, 1080)) -> Path:
    from ned_fx.media import MovieWriter, open_media, to_display_rgb8

    with open_media(src, f"0-{frames - 1}") as s, MovieWriter(out, s.frame_rate, size[0], size[1], crf=12,
                                                                audio_from=src) as w:
        for frame in s:
            rgb = to_display_rgb8(frame)
            py, px = (size[1] - rgb.shape[0]) // 2, (size[0] - rgb.shape[1]) // 2
            w.write(np.pad(rgb, ((py, size[1] - rgb.shape[0] - py), (px, size[0] - rgb.shape[1] - px), (0, 0)),
                           mode="edge"))
    return out


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (every thread) and of its ended child processes (the
    edit's forked render workers, ``ned_fx.forked``: each edit joins its own before it returns)."""
    import resource

    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def transcode(src: Path, out: Path, frames: int) -> float:
    from ned_fx.media import MovieWriter, open_media, to_display_rgb8

    start = time.perf_counter()
    with open_media(src, f"0-{frames - 1}") as s, MovieWriter(out, s.frame_rate, s.width, s.height,
                                                                audio_from=src) as w:
        for frame in s:
            w.write(to_display_rgb8(frame))
    return time.perf_counter() - start


def cli_edits(src: Path, out: Path, frames: int, emotions: tuple[str, str], cache: Path,
              threads: str | None) -> tuple[float, float]:
    """Wall seconds of two ``ned-fx edit`` processes (the first on an empty track cache ``cache``, the second with
    the other emotion reading it)."""
    env = dict(os.environ, NED_FX_CACHE=str(cache))
    times = []
    for emotion in emotions:
        cmd = [sys.executable, "-c", "import sys; from ned_fx.cli import main; sys.exit(main(sys.argv[1:]))", "edit",
               str(src), "-o", str(out), "--emotion", emotion, "--frames", f"0-{frames - 1}", "-q", "--no-audit-log"]
        if threads:
            cmd[3:3] = ["--threads", threads]
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="*", default=list(CLIPS))
    parser.add_argument("--frames", type=int, default=100, help="frames per clip (from the start)")
    parser.add_argument("--emotion", default="happy")
    parser.add_argument("--second-emotion", default="sad",
                        help="the second edit of each clip (reads the cached track and appearance models)")
    parser.add_argument("--threads", help="as ned-fx --threads (default: ned_fx's default, what `ned-fx edit` uses)")
    args = parser.parse_args()
    from ned_fx.threads import configure

    threads = configure(args.threads)

    from ned_fx.pipeline import STAGES, EditInstruction, edit_media

    rows = []
    processes = os.environ.get("NED_FX_RENDER_PROCESSES")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["NED_FX_CACHE"] = str(tmp / "cache")       # an empty track cache: the first edit tracks
        inputs = [(name, FOOTAGE / name, "512x512") for name in args.clips]
        inputs.append((f"{args.clips[0]} padded", padded_plate(FOOTAGE / args.clips[0], tmp / "hd.mp4",
                                                               args.frames), "1920x1080"))
        # warm-up: load the engines once so the first row does not pay for it
        edit_media(FOOTAGE / args.clips[0], tmp / "warm.mp4", EditInstruction(emotion=args.emotion), frames="0-4")
        for label, path, size in inputs:
            load_before = os.getloadavg()[0]
            cpu0 = cpu_seconds()
            peer = transcode(path, tmp / "peer.mp4", args.frames)
            cpu1 = cpu_seconds()
            start = time.perf_counter()
            summary = edit_media(path, tmp / "out.mp4", EditInstruction(emotion=args.emotion),
                                 frames=f"0-{args.frames - 1}", track_cache=True)
            wall = time.perf_counter() - start
            cpu2 = cpu_seconds()
            # the peer again right after the edit: the edit is compared with the mean of the two transcodes that
            # bracket it (one transcode alone swung 14-21 frames/s at 1080p between runs on this VM)
            after = transcode(path, tmp / "peer2.mp4", args.frames)
            cpu2b = cpu_seconds()
            peer_before, peer = peer, 0.5 * (peer + after)
            start = time.perf_counter()
            second = edit_media(path, tmp / "out2.mp4", EditInstruction(emotion=args.second_emotion),
                                frames=f"0-{args.frames - 1}", track_cache=True)
            wall2 = time.perf_counter() - start
            cpu3 = cpu_seconds() - (cpu2b - cpu2)           # the second edit's own CPU (not the second transcode's)
            os.environ["NED_FX_CACHE"] = str(tmp / "cache-threads")      # the first edit again, in threads
            os.environ["NED_FX_RENDER_PROCESSES"] = "1"
            try:
                start = time.perf_counter()
                edit_media(path, tmp / "out3.mp4", EditInstruction(emotion=args.emotion),
                           frames=f"0-{args.frames - 1}", track_cache=True)
                wall3 = time.perf_counter() - start
            finally:
                os.environ["NED_FX_CACHE"] = str(tmp / "cache")
                if processes is None:
                    del os.environ["NED_FX_RENDER_PROCESSES"]
                else:
                    os.environ["NED_FX_RENDER_PROCESSES"] = processes
            cli_first, cli_second = cli_edits(path, tmp / "cli.mp4", args.frames, (args.emotion, args.second_emotion),
                                              tmp / f"cache-cli-{len(rows)}", args.threads)
            n = summary.frames
            row = {"cli_first_s": cli_first, "cli_second_s": cli_second, "cli_second_vs_first": cli_first / cli_second,
                   "input": label, "size": size, "frames": n, "fps": n / wall, "target_fps": 10 if size == "512x512"
                   else 4, "transcode_fps": n / peer, "edit_vs_transcode": peer / wall,
                   "second_fps": n / wall2, "second_track_ms": 1000 * second.seconds["track"] / n,
                   "second_appearance_ms": 1000 * second.seconds["appearance"] / n,
                   "second_vs_first": wall / wall2, "threads_fps": n / wall3, "forked_vs_threads": wall3 / wall, "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                   "cpu_ms": 1000 * (cpu2 - cpu1) / n, "second_cpu_ms": 1000 * (cpu3 - cpu2) / n,
                   "transcode_cpu_ms": 1000 * (cpu1 - cpu0) / n,
                   "transcode_before_fps": n / peer_before, "transcode_after_fps": n / after}
            row.update({f"{s}_ms": 1000 * summary.seconds[s] / n for s in STAGES})
            # what the face content costs inside "render" (occluders, skin folds, mouth interior, eyeballs)
            row.update({f"{k}_ms": 1000 * v / n for k, v in summary.content_seconds.items()})
            # the CPU of the threads that ran render / composite / encode (ned_fx's own; the encoder's threads
            # are in cpu_ms only): the wall stage times above count waits for a core and the GIL too
            row.update({f"{s}_cpu_ms": 1000 * v / n for s, v in summary.cpu_seconds.items()})
            # the second edit's render: what it still pays per frame (its occluder mattes are read from the first)
            row.update({"second_render_ms": 1000 * second.seconds["render"] / n,
                        "second_occlusion_ms": 1000 * second.content_seconds.get("occlusion", 0.0) / n})
            rows.append(row)
    cols = ["input", "size", "frames", "fps", "target_fps", "transcode_fps", "transcode_before_fps",
            "transcode_after_fps", "edit_vs_transcode",
            "second_fps", "second_track_ms", "second_appearance_ms", "second_vs_first", "cli_first_s", "cli_second_s",
            "cli_second_vs_first", "threads_fps",
            "forked_vs_threads", "load", "cpu_ms",
            "second_cpu_ms", "transcode_cpu_ms",
            *[f"{s}_ms" for s in STAGES], "occlusion_ms", "warp_ms", "brows_ms", "skin_ms", "mouth_ms", "eyes_ms",
            "render_cpu_ms", "composite_cpu_ms", "encode_cpu_ms",
            "second_render_ms", "second_occlusion_ms"]
    print(table(rows, cols))
    path = write_results("edit", rows, {"emotion": args.emotion, "second_emotion": args.second_emotion,
                                        "threads": threads})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
