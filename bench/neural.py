"""Speed of the neural renderer: training throughput and inference time at 256² and 512² face crops.

    .venv/bin/python bench/neural.py                      # the production networks (32 base channels, 4 levels)
    .venv/bin/python bench/neural.py --smoke              # a quick CPU pass (few frames, few steps)
    .venv/bin/python bench/neural.py --device cuda --steps 50 --batch 8

On the first frames of a shared clip (tracked, prepared as in `ned-fx train-renderer`) and for each crop size:

* training: frames/s of full training steps (generator + perceptual loss through the face-mesh network + the
  mouth discriminator from the first step), after warm-up steps that are not timed;
* inference: ms per frame of `NeuralRenderer.render` on the clip's face region (align, rasterise the
  conditioning of this and two previous frames, generator, geometry warp underneath, paste back), and of the
  generator alone (batch 1), after warm-up.

Prints a table and writes JSON to bench/results/ (machine, command, commit; not in --smoke runs). Numbers from
a CPU are CPU numbers; run it on the GPU machine for the GPU ones.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from common import FOOTAGE, table, write_results


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default="d12.mp4")
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 512], help="face crop sides")
    parser.add_argument("--frames", type=int, default=40, help="frames of the clip prepared for training")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per size")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps / renders first")
    parser.add_argument("--batch", type=int, default=8, help="training batch")
    parser.add_argument("--renders", type=int, default=20, help="timed renders per size")
    parser.add_argument("--channels", type=int, default=None, help="generator base channels (default: config's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--smoke", action="store_true", help="quick CPU pass: 8 frames, 2 steps, 2 renders, batch 2")
    args = parser.parse_args()
    if args.smoke:
        args.frames, args.steps, args.warmup, args.batch, args.renders = 8, 2, 1, 2, 2

    import os

    import torch

    load_before = list(os.getloadavg())     # a shared machine: what else ran beside the benchmark
    if args.threads:
        torch.set_num_threads(args.threads)
    from ned_fx.compositing import extract_region
    from ned_fx.media import open_media
    from ned_fx.pipeline import EditInstruction, plan_edit, track_media
    from ned_fx.rendering import build_render_mesh, face_region_box
    from ned_fx.rendering.neural import (DatasetBuilder, NeuralRenderer, NeuralRendererConfig, PlateEncoding,
                                         Trainer, TrainerConfig)
    from ned_fx.rendering.neural.conditioning import mean_face_colours
    from ned_fx.rendering.neural.networks import input_channels
    from ned_fx.tracking.engine import load_graph

    clip = FOOTAGE / args.clip
    frames = f"0-{args.frames - 1}"
    track = track_media(clip, frames=frames)
    encoding = PlateEncoding.for_dtype(np.uint8)
    with open_media(clip, frames) as source:
        plates = [f for f in source]
    pictures = [encoding.to_working(extract_region(f, (0, 0, f.width, f.height))) for f in plates]
    mesh = build_render_mesh(track.mean_shape)
    colours = mean_face_colours(track.mean_shape)
    edited = plan_edit(track, EditInstruction(emotion="happy"))
    feature_net = load_graph("face_mesh")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            arch = {"crop_size": size, "device": args.device}
            if args.channels:
                arch["base_channels"] = args.channels
            renderer_cfg = NeuralRendererConfig(**arch)
            total = args.warmup + args.steps
            trainer_cfg = TrainerConfig(steps=total, batch_size=args.batch, refine_pairs=1, holdout=2,
                                        adversarial_start=0, validate_every=0, preview_every=0, checkpoint_every=0,
                                        device=args.device)
            builder = DatasetBuilder(mesh, colours, renderer_cfg, trainer_cfg)
            builder.add_clip(iter(pictures), track.landmarks, track.found, track.frame_numbers)
            dataset = builder.build()
            trainer = Trainer(dataset, trainer_cfg, feature_net=feature_net, encoding=encoding,
                              mean_shape=track.mean_shape)
            device = trainer.device
            for _ in range(args.warmup):
                trainer.train_step(total)
            _sync(device)
            start = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step(total)
            _sync(device)
            train_s = time.perf_counter() - start
            ckpt = Path(tmp) / f"bench_{size}.ckpt"
            trainer.save(ckpt)
            renderer = NeuralRenderer(ckpt, NeuralRendererConfig.from_dict({**renderer_cfg.to_dict()}))
            # the generator alone, batch 1
            x = torch.rand(1, input_channels(renderer.config), size, size, device=renderer.device)
            for _ in range(args.warmup):
                renderer.generate(x)
            _sync(renderer.device)
            start = time.perf_counter()
            for _ in range(args.renders):
                renderer.generate(x)
            _sync(renderer.device)
            gen_ms = 1000 * (time.perf_counter() - start) / args.renders
            # the whole render of a frame's face region (what `ned-fx edit --renderer neural` runs per frame)
            times = []
            for i in range(args.warmup + args.renders):
                k = 2 + i % (len(plates) - 2)
                src, dst = edited.source_landmarks[k], edited.target_landmarks[k]
                frame = plates[k]
                box = face_region_box(np.concatenate([src, dst]), frame.width, frame.height)
                region = extract_region(frame, box)
                off = np.array([box[0], box[1], 0.0])
                prev = [edited.target_landmarks[k - 1] - off, edited.target_landmarks[k - 2] - off]
                _sync(renderer.device)
                t = time.perf_counter()
                renderer.render(region, src - off, dst - off, mesh, previous=prev, plate_dtype=np.uint8)
                _sync(renderer.device)
                times.append(time.perf_counter() - t)
            render_ms = 1000 * float(np.mean(times[args.warmup:]))
            params = sum(p.numel() for p in trainer.generator.parameters()) / 1e6
            rows.append({"crop": f"{size}x{size}", "device": str(device), "channels": renderer_cfg.base_channels,
                         "levels": renderer_cfg.levels, "params_m": params, "batch": args.batch,
                         "train_steps": args.steps, "train_fps": args.steps * args.batch / train_s,
                         "step_ms": 1000 * train_s / args.steps,
                         "generator_ms": gen_ms, "render_ms": render_ms,
                         "region": f"{box[2] - box[0]}x{box[3] - box[1]}"})
    cols = ["crop", "device", "channels", "levels", "params_m", "batch", "train_steps", "train_fps", "step_ms",
            "generator_ms", "render_ms", "region"]
    print(table(rows, cols))
    if args.smoke:
        print("smoke run: nothing written to bench/results")
        return 0
    devices = sorted({r["device"] for r in rows})
    kind = "GPU" if any(d.startswith("cuda") for d in devices) else "CPU"
    path = write_results("neural", rows, {
        "numbers": f"{kind} numbers: measured on {', '.join(devices)}"
                   + ("" if kind == "GPU" else " (no GPU used; GPU numbers come from a run on a GPU machine)"),
        "clip": args.clip, "frames": args.frames, "threads": torch.get_num_threads(),
        "load_average_before": load_before, "load_average_after": list(os.getloadavg())})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
