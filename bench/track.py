"""Tracker speed: our PyTorch tracker vs MediaPipe's own runtime, same frames, same run (ratio).

    .venv/bin/python bench/track.py [--clips d12.mp4 ...] [--device cpu|cuda] [--batch 1 8] [--repeat 2]

Frames are decoded once up front (decode is not timed). MediaPipe runs its face mesh in video mode without
refined eyes/lips (468 points); ours runs detector + mesh, with and without the iris net (478 points).
Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import FOOTAGE, table, write_results

CLIPS = ("WDA_AlexandriaOcasioCortez_000.mp4", "d12.mp4", "d3.mp4")


def decode(name: str) -> np.ndarray:
    from ned_fx.media import open_media, to_display_rgb8

    with open_media(FOOTAGE / name) as src:
        return np.stack([to_display_rgb8(f) for f in src])


def time_mediapipe(frames: np.ndarray) -> float:
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=False) as m:
        m.process(frames[0])
        start = time.perf_counter()
        for f in frames:
            m.process(f)
        return time.perf_counter() - start


def time_ours(frames: np.ndarray, device: str, batch: int, iris: bool, engines) -> float:
    from ned_fx.tracking import FaceTracker, TrackerConfig

    tracker = FaceTracker(TrackerConfig(device=device, batch_size=batch, iris=iris),
                          engines=engines if iris else {k: v for k, v in engines.items() if k != "iris"})
    list(tracker.iter_track(iter(frames[: batch * 2])))          # warm-up
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in tracker.iter_track(iter(frames)):
        pass
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="*", default=list(CLIPS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", nargs="*", type=int, default=[1, 8])
    parser.add_argument("--repeat", type=int, default=2, help="runs per setting; the best is kept")
    parser.add_argument("--no-mediapipe", action="store_true", help="skip the reference (e.g. on a GPU box)")
    args = parser.parse_args()

    from ned_fx.tracking.engine import load_engines

    engines = load_engines(args.device)
    rows = []
    for name in args.clips:
        frames = decode(name)
        n = len(frames)
        mp_s = None if args.no_mediapipe else min(time_mediapipe(frames) for _ in range(args.repeat))
        if mp_s:
            rows.append({"clip": name, "tracker": "mediapipe 0.10.21 (tflite/XNNPACK)", "batch": 1,
                         "frames": n, "fps": n / mp_s, "ms_per_frame": 1000 * mp_s / n, "vs_mediapipe": 1.0})
        for batch in args.batch:
            for iris in (False, True):
                s = min(time_ours(frames, args.device, batch, iris, engines) for _ in range(args.repeat))
                rows.append({"clip": name, "tracker": f"ned_fx torch-{args.device}" + (" +iris" if iris else ""),
                             "batch": batch, "frames": n, "fps": n / s, "ms_per_frame": 1000 * s / n,
                             "vs_mediapipe": (mp_s / s) if mp_s else None})
    print(table(rows, ["clip", "tracker", "batch", "frames", "fps", "ms_per_frame", "vs_mediapipe"]))
    path = write_results("track", rows, {"device": args.device})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
