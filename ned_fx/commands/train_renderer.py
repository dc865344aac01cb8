"""``ned-fx train-renderer``: train the neural face renderer on an actor's own footage (self-reenactment).

    ned-fx train-renderer take1.mov take2.mov -o actor.ckpt --steps 20000
    ned-fx train-renderer take1.mov -o actor.ckpt --steps 40000 --resume          # continue a run
    ned-fx train-renderer plates/sh040.####.exr --frames 1001-1400 -o actor.ckpt --crop-size 128 --channels 16
    ned-fx edit take1.mov -o take1_happy.mov --emotion happy --renderer neural --checkpoint actor.ckpt

No dataset is needed: the footage is tracked, every frame with the actor's face becomes an aligned crop, and
the generator learns to paint frame t from frame t's conditioning images (the mesh's NMFC rendering, eyes,
irises, mouth) and another frame warped onto it by the geometry renderer (or the frame with its face masked).
The command composes the tracker (``pipeline.track_media``), the media layer and the rendering stage's
trainer; the tracker's face-mesh network also serves the perceptual loss (no weights are downloaded).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``train-renderer`` sub-command."""
    from ..cli import add_tracker_options
    from ..rendering.neural.config import NeuralRendererConfig, TrainerConfig

    r, t = NeuralRendererConfig(), TrainerConfig()
    p = subparsers.add_parser(
        "train-renderer", help="train the neural face renderer on an actor's own footage",
        description="Train the neural face renderer on an actor's own footage by self-reenactment (no "
        "dataset): previews, checkpoints and a time estimate while it runs; runs on a GPU or (slowly) a CPU.",
        epilog=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("footage", nargs="+", help="movies, stills or sequences (shot.####.exr) of one actor; never "
                   "modified")
    p.add_argument("-o", "--output", required=True, help="the checkpoint to write (e.g. actor.ckpt)")
    p.add_argument("--steps", type=int, help=f"total training steps (default {t.steps}; a resumed run "
                   f"continues up to this number)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output (networks, optimiser "
                   "state, step and history)")
    p.add_argument("--frames", help="frame range of every footage item, e.g. 1001-1400 (movies: 0-based)")
    p.add_argument("--face", type=int, help="face id of the actor (default: the face seen in most frames)")
    p.add_argument("--previews", metavar="DIR", help="folder for preview images and the loss curve (default "
                   "OUTPUT_previews beside the checkpoint)")
    p.add_argument("--onnx", metavar="FILE.onnx", help="also export the trained generator to ONNX (checked "
                   "against PyTorch in onnxruntime)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    net = p.add_argument_group("networks (stored in the checkpoint; a resumed run keeps its own)")
    net.add_argument("--crop-size", type=int, help=f"aligned face crop side in pixels (default {r.crop_size}; "
                     f"128 for CPU runs)")
    net.add_argument("--channels", type=int, help=f"generator base channels (default {r.base_channels})")
    net.add_argument("--levels", type=int, help=f"generator downsamplings (default {r.levels})")
    net.add_argument("--temporal-frames", type=int, help=f"previous frames as input (default {r.temporal_frames})")
    run_ = p.add_argument_group("the run")
    run_.add_argument("--train-batch", type=int, help=f"frames per training step (default {t.batch_size}; "
                      f"--batch-size is the tracker's)")
    run_.add_argument("--lr", type=float, help=f"learning rate (default {t.lr})")
    run_.add_argument("--holdout", type=int, help=f"frames held back to measure generalisation (default "
                      f"{t.holdout})")
    run_.add_argument("--preview-every", type=int, help=f"steps between previews (default {t.preview_every})")
    run_.add_argument("--checkpoint-every", type=int, help=f"steps between checkpoints (default "
                      f"{t.checkpoint_every})")
    run_.add_argument("--adversarial-start", type=int, help=f"step at which the mouth discriminator joins "
                      f"(default {t.adversarial_start})")
    run_.add_argument("--train-device", metavar="DEVICE",
                      help=f"where the networks train: auto, cpu, cuda, cuda:N (default {t.device}; "
                      f"--device sets the tracker's and, unless this is given, this too)")
    run_.add_argument("--refine-pairs", type=int, help=f"refine inputs prepared per training frame (default "
                      f"{t.refine_pairs})")
    run_.add_argument("--identity-pairs", type=int, help=f"of those, inputs that are the frame itself, which teach "
                      f"the generator to leave a right face (and its speech) alone (default {t.identity_pairs})")
    run_.add_argument("--seed", type=int, help=f"random seed (default {t.seed})")
    add_tracker_options(p)
    p.set_defaults(func=run)
    return p


def _configs(args, stored=None):
    """The renderer and trainer configs from the options given (the configs hold the defaults)."""
    from ..errors import InvalidParameterError
    from ..rendering.neural.config import NeuralRendererConfig, TrainerConfig

    arch = {"crop_size": args.crop_size, "base_channels": args.channels, "levels": args.levels,
            "temporal_frames": args.temporal_frames}
    arch = {k: v for k, v in arch.items() if v is not None}
    if stored is not None:
        differ = {k: v for k, v in arch.items() if getattr(stored.renderer, k) != v}
        if differ:
            raise InvalidParameterError(
                "--resume keeps the checkpoint's networks: " + ", ".join(
                    f"{k} is {getattr(stored.renderer, k)}, not {v}" for k, v in differ.items())
                + "; leave those options out, or train a new checkpoint")
        renderer = stored.renderer
        base = stored.trainer.to_dict()
    else:
        renderer = NeuralRendererConfig(**arch)
        base = {}
    device = args.train_device or args.device
    given = {"steps": args.steps, "batch_size": args.train_batch, "lr": args.lr, "holdout": args.holdout,
             "preview_every": args.preview_every, "checkpoint_every": args.checkpoint_every,
             "adversarial_start": args.adversarial_start, "device": device, "seed": args.seed,
             "refine_pairs": args.refine_pairs, "identity_pairs": args.identity_pairs}
    base.update({k: v for k, v in given.items() if v is not None})
    return renderer, TrainerConfig.from_dict(base)


def _pictures(path, frames, encoding_box: list, shifts: list):
    """Working-space RGB pictures of a footage item (colour channels over the data window), recording the plate
    encoding of its first frame and each frame's data-window shift."""
    from ..compositing import extract_region
    from ..media import open_media, parse_frame_range
    from ..rendering.neural.conditioning import PlateEncoding, to_rgb

    with open_media(path, parse_frame_range(frames)) as source:
        for frame in source:
            if not encoding_box:
                encoding_box.append(PlateEncoding.for_dtype(frame.pixels.dtype))
            shifts.append((frame.display_window[0] - frame.data_window[0],
                           frame.display_window[1] - frame.data_window[1]))
            region = extract_region(frame, (0, 0, frame.width, frame.height))
            yield encoding_box[-1].to_working(to_rgb(region))


def run(args) -> int:
    from ..cli import progress_bar, tracker_config
    from ..errors import InputNotFoundError, InvalidParameterError, NoFaceError
    from ..media import ensure_not_input
    from ..pipeline import track_media

    out = Path(args.output)
    footage = [Path(f) for f in args.footage]
    ensure_not_input(out, footage)
    if args.threads is not None:
        if args.threads < 1:
            raise InvalidParameterError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    stored = None
    if args.resume:
        if not out.is_file():
            raise InputNotFoundError(f"--resume: there is no checkpoint {out} to continue; leave out --resume to "
                                     f"start a new run")
        from ..rendering.neural import read_checkpoint

        stored = read_checkpoint(out)
    elif out.exists():
        raise InvalidParameterError(f"{out} exists; --resume continues that run, or choose another -o (or delete "
                                    f"it) to start a new one")
    renderer_cfg, trainer_cfg = _configs(args, stored)
    if args.onnx:
        ensure_not_input(Path(args.onnx), footage)
    previews = Path(args.previews) if args.previews else out.parent / f"{out.stem}_previews"

    # 1. track every footage item (the tracker's own options apply)
    tracker_cfg = tracker_config(args)
    tracks = []
    for path in footage:
        progress, close = progress_bar(f"tracking {path.name}", args.quiet)
        try:
            track = track_media(path, tracker_cfg, frames=args.frames, face_id=args.face, progress=progress)
        finally:
            close()
        found = int(track.found.sum())
        print(f"{path}: face {track.face_id} in {found} of {track.num_frames} frame(s)")
        tracks.append(track)
    total = sum(int(t.found.sum()) for t in tracks)
    if total == 0:
        raise NoFaceError("no face was found in any frame of the footage; nothing to train on")

    # 2. the dataset: aligned crops, conditioning, refine inputs
    from ..rendering import RenderMesh, build_render_mesh
    from ..rendering.neural import DatasetBuilder, Trainer
    from ..rendering.neural.conditioning import mean_face_colours

    if stored is not None:                   # a resumed run keeps the conditioning it was trained with
        mesh, colours, mean_shape = RenderMesh.from_triangles(stored.triangles), stored.colours, stored.mean_shape
    else:
        mean_shape = tracks[0].mean_shape
        mesh, colours = build_render_mesh(mean_shape), mean_face_colours(mean_shape)
    builder = DatasetBuilder(mesh, colours, renderer_cfg, trainer_cfg)
    stride = max(1, math.ceil(total / trainer_cfg.max_frames))
    encodings: list = []
    started = time.perf_counter()
    for path, track in zip(footage, tracks):
        shifts: list = []
        landmarks = track.landmarks.copy()

        def shifted(pictures, landmarks=landmarks, shifts=shifts):
            # landmarks are display-window pixels; the pictures cover the data window
            for i, picture in enumerate(pictures):
                dx, dy = shifts[i]
                landmarks[i, :, 0] += dx
                landmarks[i, :, 1] += dy
                yield picture

        box: list = []
        builder.add_clip(shifted(_pictures(path, args.frames, box, shifts)), landmarks, track.found,
                         track.frame_numbers, stride=stride)
        encodings.extend(box)
    progress, close = progress_bar("preparing", args.quiet)
    try:
        dataset = builder.build(progress=progress)
    finally:
        close()
    encoding = encodings[0] if encodings else None
    if len({(e.white, e.transfer) for e in encodings}) > 1:
        print(f"note: the footage mixes plate encodings; the checkpoint records the first's ({encoding.white:g}, "
              f"{encoding.transfer}); NeuralRenderer takes each edited plate's own", file=sys.stderr)
    print(f"prepared {len(dataset)} frame(s) ({len(dataset.train)} to train on, {len(dataset.holdout)} held back) "
          f"at {renderer_cfg.crop_size}x{renderer_cfg.crop_size} in {time.perf_counter() - started:.1f}s")

    # 3. train
    from ..tracking.engine import load_graph

    feature_net = load_graph("face_mesh") if trainer_cfg.perceptual_weight > 0 else None
    trainer = Trainer(dataset, trainer_cfg, feature_net=feature_net, resume=stored, encoding=encoding,
                      mean_shape=mean_shape,
                      footage=tuple({"path": str(p), "frames": int(t.num_frames), "face": int(t.face_id)}
                                    for p, t in zip(footage, tracks)))
    before = trainer.evaluate()
    steps = trainer_cfg.steps
    if trainer.step >= steps:
        print(f"the checkpoint is at step {trainer.step}, not below --steps {steps}: nothing to train")
    else:
        print(f"training on {trainer.device} from step {trainer.step} to {steps}; previews in {previews}")
        report = _train(trainer, steps, out, previews, args.quiet)
        after = report.validation
        print(f"trained {report.steps} step(s) in {_duration(report.seconds)} ({report.frames_per_second:.1f} "
              f"training frames/s)")
        print("held-back frames, face-area L1 (0..1): replace " + _change(before.replace, after.replace)
              + ", refine " + _change(before.refine, after.refine)
              + f" (the geometry renderer alone: {after.geometry:.4f})")
        print(f"wrote {report.checkpoint}")
        for path in report.previews[-2:]:
            print(f"wrote {path}")
    if args.onnx:
        from ..rendering.neural import export_onnx, onnx_parity

        path = export_onnx(out, args.onnx)
        print(f"wrote {path} (onnxruntime vs PyTorch: max abs difference {onnx_parity(out, path):.2e})")
    sys.stdout.flush()
    return 0


def _train(trainer, steps: int, out: Path, previews: Path, quiet: bool):
    """Run the trainer with a progress bar (loss, frames/s, time left) and a one-line time estimate."""
    told: list = []
    first = trainer.step
    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=trainer.step, desc="training", unit="step", dynamic_ncols=True,
                   file=sys.stderr, mininterval=0.5)

    def progress(step: int, total: int, losses: dict) -> None:
        if bar is not None:
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{losses['loss']:.4f}", fps=f"{losses['fps']:.1f}", refresh=False)
        eta = losses.get("eta")
        if not told and eta is not None and step - first >= 5:
            told.append(eta)
            msg = (f"estimated time to step {total}: {_duration(eta)} ({trainer.seconds_per_step:.3f}s per step, "
                   f"{losses['fps']:.1f} training frames/s)")
            (bar.write if bar is not None else print)(msg)

    try:
        return trainer.train(steps, checkpoint=out, previews=previews, progress=progress)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
            bar = None
        if trainer.step > first:
            trainer.save(out)
            print(f"interrupted at step {trainer.step}: saved {out}; --resume continues the run", file=sys.stderr)
        raise
    finally:
        if bar is not None:
            bar.close()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _change(before: float, after: float) -> str:
    if not (math.isfinite(before) and math.isfinite(after)):
        return "n/a"
    pct = 100.0 * (after - before) / before if before > 0 else 0.0
    return f"{before:.4f} -> {after:.4f} ({pct:+.0f}%)"
