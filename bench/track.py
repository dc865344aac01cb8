"""Tracker speed: our tracker vs MediaPipe's own runtime, same frames, same run (ratio), like for like.

    .venv/bin/python bench/track.py [--clips d12.mp4 ...] [--frames 100] [--device cpu|cuda]
                                    [--runtime onnxruntime torch] [--batch 1 8] [--repeat 2]

Frames are decoded once up front (decode is not timed). Without iris (468 points) ours is compared with
MediaPipe's face mesh (refine_landmarks=False); with the iris net (478 points) with MediaPipe's
refine_landmarks=True (its attention mesh: 478 points). Each runtime of ours (onnxruntime, the CPU default, and
PyTorch) is timed on the same frames; ``vs_mediapipe`` is MediaPipe's time over ours (>= 1: we are faster).
Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import FOOTAGE, table, write_results

CLIPS = ("WDA_AlexandriaOcasioCortez_000.mp4", "d12.mp4", "d3.mp4")


def decode(name: str, frames: int | None = None) -> np.ndarray:
    from ned_fx.media import open_media, to_display_rgb8

    with open_media(FOOTAGE / name, None if frames is None else f"0-{frames - 1}") as src:
        return np.stack([to_display_rgb8(f) for f in src])


def time_mediapipe(frames: np.ndarray, refine: bool) -> float:
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=refine) as m:
        m.process(frames[0])
        start = time.perf_counter()
        for f in frames:
            m.process(f)
        return time.perf_counter() - start


def time_ours(frames: np.ndarray, tracker) -> float:
    list(tracker.iter_track(iter(frames[: tracker.config.batch_size * 2])))          # warm-up
    cuda = tracker.device.type == "cuda"
    if cuda:
        import torch

        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in tracker.iter_track(iter(frames)):
        pass
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="*", default=list(CLIPS))
    parser.add_argument("--frames", type=int, help="frames per clip from the start (default all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runtime", nargs="*", default=["onnxruntime", "torch"],
                        help="runtimes of ours (onnxruntime: CPU only)")
    parser.add_argument("--batch", nargs="*", type=int, default=[1])
    parser.add_argument("--repeat", type=int, default=2, help="runs per setting; the best is kept")
    parser.add_argument("--threads", help="as ned-fx --threads (default: ned_fx's default)")
    parser.add_argument("--no-mediapipe", action="store_true", help="skip the reference (e.g. on a GPU box)")
    args = parser.parse_args()
    from ned_fx.threads import configure

    threads = configure(args.threads)
    from ned_fx.tracking import FaceTracker, TrackerConfig

    runtimes = [r for r in args.runtime if r == "torch" or args.device == "cpu"]
    trackers = {(rt, b, iris): FaceTracker(TrackerConfig(device=args.device, batch_size=b, iris=iris, runtime=rt))
                for rt in runtimes for b in args.batch for iris in (False, True)}
    rows = []
    for name in args.clips:
        frames = decode(name, args.frames)
        n = len(frames)
        for iris in (False, True):
            mp_s = None if args.no_mediapipe else min(time_mediapipe(frames, iris) for _ in range(args.repeat))
            if mp_s:
                rows.append({"clip": name, "tracker": "mediapipe 0.10.21 (tflite/XNNPACK)" +
                             (" refine" if iris else ""), "batch": 1, "frames": n, "fps": n / mp_s,
                             "ms_per_frame": 1000 * mp_s / n, "vs_mediapipe": 1.0})
            for rt in runtimes:
                for batch in args.batch:
                    s = min(time_ours(frames, trackers[(rt, batch, iris)]) for _ in range(args.repeat))
                    rows.append({"clip": name, "tracker": f"ned_fx {rt}-{args.device}" + (" +iris" if iris else ""),
                                 "batch": batch, "frames": n, "fps": n / s, "ms_per_frame": 1000 * s / n,
                                 "vs_mediapipe": (mp_s / s) if mp_s else None})
    print(table(rows, ["clip", "tracker", "batch", "frames", "fps", "ms_per_frame", "vs_mediapipe"]))
    path = write_results("track", rows, {"device": args.device, "threads": threads})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
