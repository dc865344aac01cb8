"""The GPU path's speed: per-stage milliseconds and end-to-end frames/s per back end, in one run.

    .venv/bin/python bench/gpu.py                                   # every back end this machine has
    .venv/bin/python bench/gpu.py --device cpu --sizes 512 --frames 8   # smoke run (no GPU): checks it works

What is measured (same frames, same run, so back ends compare as ratios):

* plates: the first ``--frames`` frames of a shared clip (d12.mp4, 512²), scaled so the face grows with the plate
  (1920x1080 and 3840x2160: the clip resized to the plate's height, edge-padded to its width). The shot is
  analysed once (track + plan, happy at 1) at 512² and its landmarks scaled: the analysis is per shot and is
  not what repeats per frame.
* ``render`` rows: the per-frame path of :class:`ned_fx.fastpath.FastShotRenderer` — host frames in, finished
  host frames out (CPU prep, one upload, renderer, compositor, one download, copy into the frame) — at batch
  1 and 8, ``box=frame`` (ShotRenderer's pixels) and ``box=shot`` (one shape per shot), per back end:
  ``torch-cuda`` (eager), ``torch-cuda-graphs`` (the tracker's engines replay CUDA graphs; the renderer cannot
  be captured and runs eager), ``torch-compile`` (box=shot only: with per-frame boxes every frame is a new
  shape) and ``tensorrt`` (when installed and built), or ``torch-cpu``. ``fps`` is the median over ``--repeat``
  passes (after a warm-up pass); the per-stage ms come from a separate pass with CUDA-event timing (it
  synchronises per batch). ``vs_eager`` is fps over the eager row's (same plate, batch and box).
* ``track_ms``: the tracker (detector, face mesh, iris, and its Python between them) per frame on the same
  plates, its engines on the row's back end, frames per call = the row's batch; ``e2e_fps`` =
  1 / (track time + render time per frame): a shot tracked and rendered on this machine.
* ``engine`` rows: each engine alone (median of CUDA-event-timed calls), per back end and batch.
* correctness in the same run: ``max_diff_vs_shotrenderer`` is the largest difference (8-bit code values) of each
  row's first frames from :class:`ned_fx.pipeline.ShotRenderer` on the CPU with ``content=WARP_ONLY`` (the fast
  path renders the warp alone, no mouth interior, eyeballs or occluders; box=frame: 1-2 on an H200 at 512² and
  1080p, 3 at 4K batch 8 — the tests hold 512² to 2).
* floors: pinned host<->device copy bandwidth, measured here; ``xfer_floor_fps`` = that bandwidth over the
  bytes one frame moves (its face box up, the box down): no version of this path runs faster.

Rows not started within ``--budget`` seconds (default 540: a lent GPU allows 10 minutes per command) are listed as
skipped; run the sizes in separate calls then (``--sizes 1080``, ``--sizes 2160``). Prints a table and writes
bench/results/gpu-<host>-<time>.json with the machine (GPU, driver, torch, CUDA,
TensorRT), the exact command and the commit. Targets (issue 7, H200): 1080p end to end >= 120 frames/s, 4K >= 30.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from common import FOOTAGE, machine, table, write_results

SIZES = {512: (512, 512), 1080: (1920, 1080), 2160: (3840, 2160)}
TARGET_FPS = {1080: 120, 2160: 30}


# ---- machine ------------------------------------------------------------------------------------------------------

def gpu_machine(device: str) -> dict:
    import torch

    info = machine()
    info["device"] = device
    info["torch_cuda"] = torch.version.cuda
    try:
        import tensorrt

        info["tensorrt"] = tensorrt.__version__
    except ImportError:
        info["tensorrt"] = None
    if device.startswith("cuda"):
        dev = torch.device(device)
        info["gpu"] = torch.cuda.get_device_name(dev)
        info["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(dev)))
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(dev).total_memory / 2 ** 30, 1)
        info["cudnn"] = torch.backends.cudnn.version()
        try:
            import subprocess

            out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm,"
                                  "power.limit", "--format=csv,noheader"], capture_output=True, text=True,
                                 timeout=20)
            info["nvidia_smi"] = out.stdout.strip()
            info["driver"] = out.stdout.split(",")[1].strip() if out.stdout.count(",") >= 1 else None
        except (OSError, ValueError):
            info["driver"] = None
    return info


def copy_bandwidth(device: str) -> dict:
    """Pinned host->device and device->host, and device->device copy bandwidth (GB/s; bytes read + written
    for device copies), median of 10."""
    import torch

    if not device.startswith("cuda"):
        return {}
    n = 256 << 20
    host = torch.empty(n, dtype=torch.uint8, pin_memory=True).random_(0, 255)
    dev = torch.empty(n, dtype=torch.uint8, device=device)
    other = torch.empty_like(dev)

    def timed(fn, nbytes):
        times = []
        for _ in range(12):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        return nbytes / statistics.median(times[2:]) / 1e9

    return {"h2d_gbps": timed(lambda: dev.copy_(host, non_blocking=True), n),
            "d2h_gbps": timed(lambda: host.copy_(dev, non_blocking=True), n),
            "d2d_gbps": timed(lambda: other.copy_(dev), 2 * n)}


# ---- plates and the shot ------------------------------------------------------------------------------------------

def analyse(clip: Path, frames: int):
    from ned_fx.media import open_media
    from ned_fx.pipeline import EditInstruction, plan_edit, track_media
    from ned_fx.tracking import TrackerConfig

    rng = f"0-{frames - 1}"
    track = track_media(clip, TrackerConfig(device="cpu"), frames=rng)
    edited = plan_edit(track, EditInstruction(emotion="happy", intensity=1.0))
    with open_media(clip, rng) as src:
        plates = list(src)
    return track, edited, plates


def scaled_shot(track, edited, plates, size: int):
    """The shot on a ``size`` plate: frames resized to its height, edge-padded to its width; landmarks alike."""
    import cv2

    width, height = SIZES[size]
    k = height / plates[0].height
    pad = (width - int(round(plates[0].width * k))) // 2
    out = []
    for f in plates:
        img = f.pixels if k == 1 else cv2.resize(f.pixels, (int(round(f.width * k)), height),
                                                 interpolation=cv2.INTER_LINEAR)
        right = width - img.shape[1] - pad
        img = np.pad(img, ((0, 0), (pad, right), (0, 0)), mode="edge") if pad or right else img
        out.append(dataclasses.replace(f, pixels=np.ascontiguousarray(img), data_window=None,
                                       display_window=None))

    def scale(lm):
        lm = np.asarray(lm, np.float64) * k
        lm[..., 0] += pad
        return lm

    track2 = dataclasses.replace(track, landmarks=scale(track.landmarks), landmarks_raw=scale(track.landmarks_raw),
                                 width=width, height=height)
    edited2 = dataclasses.replace(edited, source_landmarks=scale(edited.source_landmarks),
                                  target_landmarks=scale(edited.target_landmarks), width=width, height=height)
    return track2, edited2, out


def box_bytes(renderer, frames) -> float:
    """Mean bytes one frame moves on the fast path: its box's colour channels up and down."""
    sizes = []
    for f in frames:
        p = renderer.plan(f)
        if p.box is not None:
            x0, y0, x1, y1 = p.box
            sizes.append((x1 - x0) * (y1 - y0) * 3 * f.pixels.itemsize * 2)
    return float(np.mean(sizes)) if sizes else 0.0


# ---- measurements -------------------------------------------------------------------------------------------------

def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def time_render(track, edited, frames, device, backend, batch, box, repeat, reference=None) -> dict:
    """frames/s over ``repeat`` passes, per-stage ms from a CUDA-event-timed pass, and the largest difference
    (code values) from ``reference`` (ShotRenderer's pixels of the first frames) on the warm-up frames."""
    from ned_fx.fastpath import STAGES, FastPathConfig, FastShotRenderer

    r = FastShotRenderer(track, edited, config=FastPathConfig(device=device, backend=backend, batch_size=batch,
                                                              box=box))
    try:
        first = [f.pixels for f, _ in r.render_many(frames[: 2 * batch])]    # warm up: allocator, cuDNN, compiling
        worst = max(float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
                    for a, b in zip(first, reference)) if reference else None
        sync(device)
        fps = []
        for _ in range(repeat):
            start = time.perf_counter()
            n = sum(1 for _ in r.render_many(frames))
            sync(device)
            fps.append(n / (time.perf_counter() - start))
        moved = box_bytes(r, frames)
        renderer = r.runner.describe()
    finally:
        r.close()
    t = FastShotRenderer(track, edited, config=FastPathConfig(device=device, backend=backend, batch_size=batch,
                                                              box=box, timing=True))
    try:
        for _ in t.render_many(frames[: 2 * batch]):
            pass
        t.seconds = {s: 0.0 for s in STAGES}
        n = sum(1 for _ in t.render_many(frames))
        stages = {f"{s}_ms": 1000 * t.seconds[s] / n for s in STAGES}
    finally:
        t.close()
    return {"fps": statistics.median(fps), "fps_runs": [round(v, 2) for v in fps], "bytes_per_frame": moved,
            "renderer": renderer, "max_diff_vs_shotrenderer": worst, **stages}


def tracker_runners(device: str, backend: str, batches):
    from ned_fx.engines import EnginesConfig, make_runner

    config = EnginesConfig(batches=tuple(sorted({1, *batches})))
    runners = {n: make_runner(n, backend, device, "fp32", config) for n in ("face_detector", "face_mesh", "iris")}
    for r in runners.values():
        r.activate()
    return runners


def time_track(frames, device, backend, batch, repeat) -> float:
    """Seconds per frame of the tracker on these plates, its engines on ``backend``."""
    from ned_fx.media import to_display_rgb8
    from ned_fx.tracking import FaceTracker, TrackerConfig

    rgb = [to_display_rgb8(f) for f in frames]
    runners = tracker_runners(device, backend, (batch,))
    try:
        tracker = FaceTracker(TrackerConfig(device=device, batch_size=batch), engines=runners)
        list(tracker.iter_track(iter(rgb[: 2 * batch])))
        runs = []
        for _ in range(repeat):
            sync(device)
            start = time.perf_counter()
            list(tracker.iter_track(iter(rgb)))
            sync(device)
            runs.append((time.perf_counter() - start) / len(rgb))
        return statistics.median(runs)
    finally:
        for r in runners.values():
            r.deactivate()


def time_engine(name, device, backend, batch, calls=30) -> float:
    """Median ms per call of one engine on its example feed (CUDA events on GPU)."""
    import torch

    from ned_fx.engines import EnginesConfig, get_spec, make_runner

    spec = get_spec(name)
    runner = make_runner(name, backend, device, "fp32", EnginesConfig(batches=tuple(sorted({1, batch}))))
    feeds = {k: torch.from_numpy(v).to(device if device.startswith("cuda") else "cpu")
             for k, v in spec.example(batch, 0).items()}
    with runner:
        for _ in range(10):                    # warm up (the process's first CPU convolutions are slow for a while)
            runner.infer(feeds)
        times = []
        for _ in range(calls if device.startswith("cuda") else max(3, calls // 6)):
            if device.startswith("cuda"):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                runner.infer(feeds)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t = time.perf_counter()
                runner.infer(feeds)
                times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def available_backends(device: str, asked) -> list[str]:
    if asked:
        return list(asked)
    if not device.startswith("cuda"):
        return ["torch-cpu"]
    out = ["torch-cuda", "torch-cuda-graphs", "torch-compile"]
    from ned_fx.engines.runners import tensorrt_ready

    if tensorrt_ready(device)[0]:
        out.append("tensorrt")
    return out


def build_trt_if_possible(device: str) -> str:
    """Build the TensorRT engines when TensorRT is installed (minutes the first time); returns a note."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT not installed: no tensorrt rows"
    from ned_fx.engines.cache import build_engines
    from ned_fx.errors import NedFxError

    notes = []
    for name in ("face_detector", "face_mesh", "iris", "manipulator", "geometry_renderer"):
        try:
            build_engines([name], device=device, say=lambda line: print(line, file=sys.stderr, flush=True))
        except NedFxError as exc:
            notes.append(f"{name}: {exc}")
    return "; ".join(notes) or "TensorRT engines built or up to date"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1080, 2160], choices=sorted(SIZES))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--boxes", nargs="+", default=["frame", "shot"], choices=["frame", "shot"])
    parser.add_argument("--frames", type=int, default=64, help="frames per pass (from the clip's start)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per row (median)")
    parser.add_argument("--backends", nargs="*", help="back ends to compare (default: all this machine has)")
    parser.add_argument("--clip", default="d12.mp4", help="shared clip to build the plates from")
    parser.add_argument("--no-track", action="store_true", help="skip the tracker rows")
    parser.add_argument("--no-engines", action="store_true", help="skip the per-engine rows")
    parser.add_argument("--build-trt", action="store_true", help="build missing TensorRT engines first")
    parser.add_argument("--budget", type=float, default=540.0,
                        help="seconds; rows not started by then are listed as skipped (a lent GPU allows 10 minutes "
                        "per command: run the sizes in two calls if needed). Default 540")
    args = parser.parse_args()
    started = time.perf_counter()

    def over_budget() -> bool:
        return time.perf_counter() - started > args.budget

    import torch

    from ned_fx.engines import resolve_device

    device = resolve_device(args.device)
    info = gpu_machine(device)
    notes = {"trt_build": build_trt_if_possible(device)} if args.build_trt else {}
    backends = available_backends(device, args.backends)
    floors = copy_bandwidth(device)
    print(f"device {device} ({info.get('gpu') or info.get('cpu')}); back ends {', '.join(backends)}; "
          f"torch {torch.__version__} CUDA {info.get('torch_cuda')} TensorRT {info.get('tensorrt')}", flush=True)
    if floors:
        print("copy bandwidth GB/s: " + ", ".join(f"{k} {v:.1f}" for k, v in floors.items()), flush=True)

    track, edited, plates = analyse(FOOTAGE / args.clip, args.frames)
    rows, engine_rows = [], []
    for size in args.sizes:
        tr, ed, frames = scaled_shot(track, edited, plates, size)
        from ned_fx.appearance import WARP_ONLY
        from ned_fx.pipeline import ShotRenderer

        # the CPU reference the fast path must reproduce: ShotRenderer's warp (the fast path renders no face content)
        ref_renderer = ShotRenderer(tr, ed, content=WARP_ONLY)
        reference = [ref_renderer.render(f)[0].pixels for f in frames[: 2 * max(args.batches)]]
        track_s = {}
        for backend in backends:
            for batch in args.batches:
                if not args.no_track and not over_budget():
                    try:
                        track_s[(backend, batch)] = time_track(frames, device, backend, batch, args.repeat)
                    except Exception as exc:      # a back end that fails here is a finding, not a crash
                        track_s[(backend, batch)] = None
                        print(f"track {size} {backend} b{batch}: {type(exc).__name__}: {exc}", file=sys.stderr)
                for box in args.boxes:
                    if backend == "torch-compile" and box == "frame":
                        continue                # every frame its own shape: recompiles; compiled rows use box=shot
                    row = {"what": "render", "plate": f"{SIZES[size][0]}x{SIZES[size][1]}", "backend": backend,
                           "batch": batch, "box": box}
                    if over_budget():
                        rows.append({**row, "error": "skipped: time budget"})
                        continue
                    try:
                        row.update(time_render(tr, ed, frames, device, backend, batch, box, args.repeat,
                                               reference[: 2 * batch]))
                    except Exception as exc:
                        row["error"] = f"{type(exc).__name__}: {exc}"
                        print(f"render {row['plate']} {backend} b{batch} {box}: {row['error']}", file=sys.stderr)
                        rows.append(row)
                        continue
                    ts = track_s.get((backend, batch))
                    if ts:
                        row["track_ms"] = 1000 * ts
                        row["e2e_fps"] = 1.0 / (ts + 1.0 / row["fps"])
                    if floors and row.get("bytes_per_frame"):
                        bw = min(floors["h2d_gbps"], floors["d2h_gbps"]) * 1e9
                        row["xfer_floor_fps"] = bw / row["bytes_per_frame"]
                    row["target_fps"] = TARGET_FPS.get(size)
                    rows.append(row)
                    print(f"render {row['plate']} {backend} b{batch} {box}: {row['fps']:.1f} frames/s", flush=True)
    for row in rows:                       # ratios against eager torch in the same run
        peer = next((r for r in rows if r["plate"] == row["plate"] and r["batch"] == row["batch"]
                     and r["box"] == row["box"] and r["backend"] in ("torch-cuda", "torch-cpu") and "fps" in r), None)
        if peer and "fps" in row:
            row["vs_eager"] = row["fps"] / peer["fps"]
    if not args.no_engines:
        for name in ("face_detector", "face_mesh", "iris", "manipulator"):
            for backend in backends + (["onnxruntime"] if not device.startswith("cuda") else []):
                for batch in args.batches:
                    row = {"what": "engine", "engine": name, "backend": backend, "batch": batch}
                    if over_budget():
                        engine_rows.append({**row, "error": "skipped: time budget"})
                        continue
                    try:
                        if backend == "onnxruntime":
                            from ned_fx.engines.cache import build_engines

                            build_engines([name], onnx_only=True)
                        ms = time_engine(name, device, backend, batch)
                        row.update({"ms": ms, "ms_per_item": ms / batch})
                    except Exception as exc:
                        row["error"] = f"{type(exc).__name__}: {exc}"
                    engine_rows.append(row)
        for row in engine_rows:
            peer = next((r for r in engine_rows if r["engine"] == row["engine"] and r["batch"] == row["batch"]
                         and r["backend"] in ("torch-cuda", "torch-cpu") and "ms" in r), None)
            if peer and "ms" in row:
                row["vs_eager"] = peer["ms"] / row["ms"]

    cols = ["plate", "backend", "batch", "box", "fps", "vs_eager", "target_fps", "e2e_fps", "track_ms", "prepare_ms",
            "upload_ms", "render_ms", "composite_ms", "download_ms", "finish_ms", "xfer_floor_fps",
            "max_diff_vs_shotrenderer", "error"]
    print()
    print(table(rows, cols))
    if engine_rows:
        print()
        print(table(engine_rows, ["engine", "backend", "batch", "ms", "ms_per_item", "vs_eager", "error"]))
    path = write_results("gpu", rows + engine_rows, {"machine_gpu": info, "floors": floors, "notes": notes,
                                                     "clip": args.clip, "frames": args.frames,
                                                     "repeat": args.repeat})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
