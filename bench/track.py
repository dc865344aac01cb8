"""Tracker speed: our tracker vs MediaPipe's own runtime, same frames, same run (ratio), like for like.

    .venv/bin/python bench/track.py [--clips d12.mp4 ...] [--frames 100] [--device cpu|cuda]
                                    [--runtime onnxruntime torch] [--batch 1 8] [--repeat 2]
                                    [--iris-model attention eye_crops attention_irises] [--iris-reuse 0.02] [--stages]

Frames are decoded once up front (decode is not timed). Without iris (468 points) ours is compared with
MediaPipe's face mesh (refine_landmarks=False); with iris (478 points) with MediaPipe's refine_landmarks=True (its
attention mesh: 478 points), ours once per ``--iris-model``: "attention" (our port of that same attention mesh: one
net), "eye_crops" (the face mesh, then the iris net on two eye crops) and "attention_irises" (the face mesh's
468 points, the attention mesh's irises from the same crop). Each runtime of ours (onnxruntime, the CPU
default, and PyTorch) is timed on the same frames; ``vs_mediapipe`` is MediaPipe's time over ours (>= 1: we are faster).
``--iris-reuse T ...`` adds rows of the onnxruntime tracker with ``TrackerConfig.iris_reuse`` T (the iris net
skipped on eye crops that hardly changed; eye_crops only). Accuracy, from an untimed pass over the same frames:
``err_iod`` the mean error of our 468 mesh points vs MediaPipe's face mesh of the same kind (refine on for the
attention mesh, else off; % of the inter-ocular distance, as the tests),
``iris_err_iod`` our 10 iris points vs MediaPipe's refine_landmarks ones, ``iris_dev_iod`` (reuse rows) our iris
points vs the same tracker running the iris net on every frame, ``iris_runs`` the share of eye crops the net ran on,
``stages`` ms per frame of that pass in each net, the crops and the rest (``--stages`` prints them).
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


def mediapipe_points(frames: np.ndarray, refine: bool) -> np.ndarray:
    """MediaPipe's landmarks (Fx468x2 or Fx478x2 pixels, NaN where no face), video mode."""
    import mediapipe as mp

    h, w = frames.shape[1:3]
    out = np.full((len(frames), 478 if refine else 468, 2), np.nan)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=refine) as m:
        for i, f in enumerate(frames):
            r = m.process(f)
            if r.multi_face_landmarks:
                out[i] = [[p.x * w, p.y * h] for p in r.multi_face_landmarks[0].landmark]
    return out


def our_points(frames: np.ndarray, tracker) -> tuple[np.ndarray, float, dict]:
    """Our raw landmarks (Fx478x2, NaN where no face; the first face), the share of eye crops the iris net ran
    on, and per-stage times of this (untimed) pass in ms per frame: each net, the crops, everything else."""
    from ned_fx.tracking import geometry

    engines, crop_images = dict(tracker.engines), geometry.crop_images
    spent = {f"{k}_ms": 0.0 for k in engines} | {"crops_ms": 0.0}
    crops = [0]

    def timed(key, fn, count=False):
        def run(x, *rest, **kw):
            start = time.perf_counter()
            out = fn(x, *rest, **kw)
            spent[key] += time.perf_counter() - start
            crops[0] += len(x) if count else 0
            return out
        return run

    for k, net in engines.items():
        tracker.engines[k] = timed(f"{k}_ms", net, k == "iris")
    geometry.crop_images = timed("crops_ms", crop_images)
    try:
        out = np.full((len(frames), 478, 2), np.nan)
        start = time.perf_counter()
        for i, ff in enumerate(tracker.iter_track(iter(frames))):
            if ff.faces:
                out[i] = ff.faces[min(ff.faces)][0][:, :2]
        total = time.perf_counter() - start
    finally:
        tracker.engines.update(engines)
        geometry.crop_images = crop_images
    stages = {k: 1000 * v / len(frames) for k, v in spent.items()}
    stages["other_ms"] = 1000 * total / len(frames) - sum(stages.values())
    return out, crops[0] / (2 * len(frames)), stages


def _error(ours: np.ndarray, ref: np.ndarray, points: slice) -> float:
    """Mean distance of ``points`` over the frames where both found a face, in % of ``ref``'s IOD."""
    from ned_fx import topology

    both = ~np.isnan(ours[:, 0, 0]) & ~np.isnan(ref[:, 0, 0])
    iod = topology.inter_ocular(ref[both, :468])
    return float(100 * (np.linalg.norm(ours[both][:, points] - ref[both][:, points], axis=2).mean(1) / iod).mean())


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
    parser.add_argument("--repeat", type=int, default=2,
                        help="rounds (each runs every setting once); each setting's best is kept")
    parser.add_argument("--threads", help="as ned-fx --threads (default: ned_fx's default)")
    parser.add_argument("--no-mediapipe", action="store_true", help="skip the reference (e.g. on a GPU box)")
    parser.add_argument("--iris-reuse", nargs="*", type=float, default=[],
                        help="also time the onnxruntime tracker with these TrackerConfig.iris_reuse values")
    parser.add_argument("--stages", action="store_true", help="also print each row's per-stage times")
    parser.add_argument("--iris-model", nargs="*", default=["attention", "eye_crops"],
                        help="TrackerConfig.iris_model values timed with iris on")
    args = parser.parse_args()
    from ned_fx.threads import configure

    threads = configure(args.threads)
    from ned_fx.tracking import FaceTracker, TrackerConfig

    runtimes = [r for r in args.runtime if r == "torch" or args.device == "cpu"]
    # (runtime, batch, iris, iris_reuse, iris_model) -> tracker
    settings = [(rt, b, False, 0.0, "") for rt in runtimes for b in args.batch]
    settings += [(rt, b, True, 0.0, m) for rt in runtimes for b in args.batch for m in args.iris_model]
    if args.device == "cpu" and "eye_crops" in args.iris_model:
        settings += [("onnxruntime", 1, True, t, "eye_crops") for t in args.iris_reuse if t > 0]
    trackers = {s: FaceTracker(TrackerConfig(device=args.device, batch_size=s[1], iris=s[2], runtime=s[0],
                                             iris_reuse=s[3], iris_model=s[4] or "attention")) for s in settings}
    rows = []
    for name in args.clips:
        frames = decode(name, args.frames)
        n = len(frames)
        refs = {} if args.no_mediapipe else {refine: mediapipe_points(frames, refine) for refine in (False, True)}
        # every setting once per round, rounds repeated, the best of each kept: a burst of load on a shared
        # machine hits one round of every setting rather than all the runs of one
        best: dict = {}
        for _ in range(args.repeat):
            for iris in (False, True):
                if not args.no_mediapipe:
                    best[("mp", iris)] = min(best.get(("mp", iris), float("inf")), time_mediapipe(frames, iris))
                for key in [s for s in settings if s[2] == iris]:
                    best[key] = min(best.get(key, float("inf")), time_ours(frames, trackers[key]))
        for iris in (False, True):
            mp_s = best.get(("mp", iris))
            if mp_s:
                rows.append({"clip": name, "tracker": "mediapipe 0.10.21 (tflite/XNNPACK)" +
                             (" refine" if iris else ""), "batch": 1, "frames": n, "fps": n / mp_s,
                             "ms_per_frame": 1000 * mp_s / n, "vs_mediapipe": 1.0})
            every = None
            for key in [s for s in settings if s[2] == iris]:
                rt, batch, _, reuse, model = key
                s = best[key]
                row = {"clip": name, "tracker": f"ned_fx {rt}-{args.device}" + (f" +iris {model}" if iris else "") +
                       (f" reuse {reuse:g}" if reuse else ""), "batch": batch, "frames": n, "fps": n / s,
                       "ms_per_frame": 1000 * s / n, "vs_mediapipe": (mp_s / s) if mp_s else None}
                pts, runs, stages = our_points(frames, trackers[key])
                row["stages"] = stages
                if refs:
                    row["err_iod"] = _error(pts, refs[model == "attention"], slice(0, 468))
                    if iris:
                        row["iris_err_iod"] = _error(pts, refs[True], slice(468, 478))
                if iris and model == "eye_crops":
                    row["iris_runs"] = runs
                    if rt == "onnxruntime" and batch == 1 and not reuse:
                        every = pts
                    if reuse and every is not None:
                        row["iris_dev_iod"] = _error(pts, every, slice(468, 478))
                rows.append(row)
    print(table(rows, ["clip", "tracker", "batch", "frames", "fps", "ms_per_frame", "vs_mediapipe", "err_iod",
                       "iris_err_iod", "iris_dev_iod", "iris_runs"]))
    if args.stages:
        staged = [{"clip": r["clip"], "tracker": r["tracker"], **r["stages"]} for r in rows if "stages" in r]
        print("\nper stage, ms per frame (an untimed pass with timers):")
        print(table(staged, ["clip", "tracker", "face_detector_ms", "face_mesh_ms", "face_mesh_attention_ms", "iris_ms",
                             "crops_ms", "other_ms"]))
    path = write_results("track", rows, {"device": args.device, "threads": threads})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
