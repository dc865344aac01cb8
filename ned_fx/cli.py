"""``ned-fx``: the command line.

Every failure a user can cause ends in one line ``ned-fx: error: …`` and a non-zero exit code, never a
traceback (set ``NED_FX_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import __version__
from .errors import InputNotFoundError, InvalidParameterError, NedFxError


def progress_bar(desc: str, quiet: bool):
    """A tqdm-backed ``progress(done, total)`` callable (frames/s and time left), and its closer."""
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="frame", dynamic_ncols=True, file=sys.stderr, mininterval=0.5)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return update, bar.close


def _frame_ranges(numbers) -> str:
    from .media.frames import describe_numbers

    return describe_numbers(list(int(n) for n in numbers))


def tracker_config(args) -> "object":
    """A TrackerConfig from the tracker options that were given (TrackerConfig holds the defaults)."""
    from .tracking import TrackerConfig

    given = {"smoothing": args.smoothing, "max_faces": args.max_faces, "batch_size": args.batch_size,
             "device": args.device, "iris": False if args.no_iris else None,
             "colorspace": args.colorspace, "ocio_config": args.ocio_config, "display_view": args.display_view,
             "runtime": getattr(args, "runtime", None), "iris_model": getattr(args, "iris_model", None),
             "first_crop_passes": getattr(args, "first_crop_passes", None),
             "small_faces": getattr(args, "small_faces", None),
             "cut_threshold": 0.0 if getattr(args, "ignore_cuts", False) else getattr(args, "cut_threshold", None)}
    return TrackerConfig(**{k: v for k, v in given.items() if v is not None})


def cmd_track(args) -> int:
    from .pipeline import track_media
    from .tracking import write_to_file

    src = Path(args.input)
    out = Path(args.output)
    if out.resolve() == src.resolve():
        raise InvalidParameterError("the output would overwrite the input; choose another -o")
    progress, close = progress_bar("tracking", args.quiet)
    started = time.perf_counter()
    try:
        track = track_media(src, tracker_config(args), frames=args.frames, face_id=args.face, progress=progress)
    finally:
        close()
    elapsed = time.perf_counter() - started
    write_to_file(track, out)
    missing = [n for n, f in zip(track.frame_numbers, track.found) if not f]
    print(f"tracked {track.num_frames} frame(s) of {src} in {elapsed:.1f}s "
          f"({track.num_frames / max(elapsed, 1e-9):.1f} frames/s)")
    print(f"faces: {', '.join(str(int(i)) for i in track.face_ids) or 'none'}; selected face {track.face_id}")
    if missing:
        print(f"no face in {len(missing)} frame(s): {_frame_ranges(missing)} (passed through by later steps)")
    if track.meta.get("cuts"):
        print(f"shot cuts before frame(s) {', '.join(str(c) for c in track.meta['cuts'])}: an edit takes one shot "
              f"at a time (--frames), or --ignore-cuts")
    print(f"wrote {out}")
    if args.preview:
        _write_track_preview(src, track, args.preview, args.frames)
        print(f"wrote {args.preview}")
    return 0


def _write_track_preview(src: Path, track, preview: str, frames: str | None) -> None:
    from .media import open_media, parse_frame_range
    from .pipeline import display_plate
    from .preview import overlay_frames, write_pictures

    with open_media(src, parse_frame_range(frames)) as source:
        pictures = (display_plate(f) for f in source)
        write_pictures(preview, overlay_frames(pictures, track), fps=track.fps or 25.0)


def cmd_weights(args) -> int:
    from .tracking import weights

    if args.action == "install":
        paths = weights.install(wheel=Path(args.wheel) if args.wheel else None, force=args.force)
        for name, path in paths.items():
            print(f"{name}: {path}")
        return 0
    missing = [n for n in weights.NETS if not weights.weights_path(n).is_file()]
    for name in weights.NETS:
        path = weights.weights_path(name)
        print(f"{name}: {path} ({'installed' if path.is_file() else 'MISSING'})")
    return 1 if missing else 0


def demo_image():
    """The embedded default face: scikit-image's astronaut (a registry package ships it; no user files), 512x512x3
    uint8 RGB. Read from the file the package ships (``skimage/data/astronaut.png``, found without importing
    scikit-image: ~0.5 s of a ~1.7 s demo), as ``skimage.data.astronaut()`` reads it; through scikit-image where
    that file is not there."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "data" / "astronaut.png"
        if path.is_file():
            import cv2

            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is not None and bgr.shape == (512, 512, 3):
                return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    from skimage import data

    return data.astronaut()


def cmd_demo(args) -> int:
    """The main job on the embedded default: make the astronaut smile, write the result and a before/after."""
    from .media import read_image, write_image
    from .pipeline import EditInstruction, display_plate, edit_media, track_media
    from .preview import overlay_frames
    from .tracking import write_to_file

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    plate = write_image(out / "astronaut.png", demo_image())
    emotion = args.emotion or "happy"
    config = tracker_config(args)
    summary = edit_media(plate, out / f"astronaut_{emotion}.png", EditInstruction(emotion=emotion,
                         intensity=1.0 if args.intensity is None else args.intensity),
                         preview=out / "astronaut_before_after.png", tracker_config=config, track_cache=True)
    if not summary.edited:
        raise NedFxError(f"the demo edited nothing ({summary.passed_through}); the pipeline is broken")
    # the track the edit made (or read), from the analysis cache as `ned-fx edit` keeps it: not tracked twice
    from .media import source_fingerprint
    from .tracking.cache import find_track

    track, _, tracker = find_track(source_fingerprint(plate), None, None, config)
    if track is None:                   # the cache could not be written (read-only home): track it here
        track = track_media(plate, config, tracker=tracker)
    write_to_file(track, out / "astronaut_track.npz")
    overlay = next(iter(overlay_frames([display_plate(read_image(plate))], track)))
    write_image(out / "astronaut_tracked.png", overlay)
    yaw, pitch, roll = track.pose_euler[0]
    print(f"edited the embedded face ({plate}): {emotion}; head yaw {yaw:.1f}° pitch {pitch:.1f}° roll {roll:.1f}°")
    for name in (f"astronaut_{emotion}.png", "astronaut_before_after.png", "astronaut_tracked.png",
                 "astronaut_track.npz"):
        print(f"wrote {out / name}")
    return 0


def add_tracker_options(p: argparse.ArgumentParser) -> None:
    """The tracker's options (defaults live in TrackerConfig; unset options keep them)."""
    from .tracking.config import TrackerConfig

    d = TrackerConfig()
    g = p.add_argument_group("tracker")
    g.add_argument("--smoothing", type=float, help=f"temporal smoothing 0 (raw) … 1 (default {d.smoothing})")
    g.add_argument("--max-faces", type=int, help=f"most faces tracked at once (default {d.max_faces})")
    g.add_argument("--batch-size", type=int, help=f"frames per forward pass; >1 batches for a GPU (default "
                   f"{d.batch_size}: MediaPipe-exact tracking)")
    g.add_argument("--device", help=f"auto (CUDA if present), cpu, cuda, cuda:N (default {d.device})")
    g.add_argument("--no-iris", action="store_true", help="skip the iris network")
    g.add_argument("--first-crop-passes", type=int, metavar="N", help=f"run the face mesh N more times on a face's "
                   f"first frame (a still), each on the crop its own landmarks give: a wide-open mouth is read open "
                   f"(MediaPipe's crop from the detector's box reads a gasp's jaw short, so a neutral leaves a dark "
                   f"'V' under the lips), kept where it opens the lips by {d.first_crop_gain} IOD; 0: MediaPipe's "
                   f"procedure (default {d.first_crop_passes})")
    g.add_argument("--small-faces", type=float, metavar="F", help=f"where the detector finds no face in the "
                   f"whole frame, look in overlapping windows down to a face box of F x the frame's longer side (a "
                   f"medium shot on a 1080p/4K plate: MediaPipe's detector on the whole frame finds boxes down to "
                   f"about a sixth of it); 0: the whole frame only, MediaPipe's procedure (default {d.small_faces})")
    g.add_argument("--cut-threshold", type=float, metavar="T", help=f"a shot cut is a frame whose 32x32 thumbnail "
                   f"differs from the last frame's by T code values on average ({d.cut_ratio:g}x the shot's usual "
                   f"change, and the next frame too): the tracker looks for the faces afresh there, and an edit "
                   f"refuses a range that holds one, naming each shot's frames (default {d.cut_threshold:g})")
    g.add_argument("--ignore-cuts", action="store_true", help="track the range as one shot whatever changes "
                   "(--cut-threshold 0): for a picture that changes at once without a cut (a flash frame, a "
                   "whip pan)")
    from .tracking.config import IRIS_MODELS, RUNTIMES

    g.add_argument("--iris-model", choices=IRIS_MODELS, help=f"what finds the iris points: eye_crops (the face mesh "
                   f"plus MediaPipe's iris net on two eye crops), attention (MediaPipe's attention mesh, the net "
                   f"behind its refine_landmarks: one net, closer to MediaPipe's irises, its own refined 468 points) or "
                   f"attention_irises (the face mesh's 468 points, the attention mesh's irises from the same crop, "
                   f"in a second thread); the attention ones need `ned-fx weights install` on an older install "
                   f"(default {d.iris_model})")

    g.add_argument("--runtime", choices=RUNTIMES, help=f"what runs the tracker's networks: auto (onnxruntime on "
                   f"the CPU where installed, PyTorch on a GPU), torch, or onnxruntime (CPU only) (default "
                   f"{d.runtime})")
    g.add_argument("--colorspace", help="the plates' colour space for what the tracker looks at (OpenColorIO name, "
                   "e.g. ACEScg, 'ARRI LogC4'); default auto: float plates are scene-linear (the scene_linear role "
                   "of $OCIO's config, else Rec.709), integer plates display-referred")
    g.add_argument("--ocio-config", help="OpenColorIO config file or URI (default $OCIO, else the built-in "
                   "ocio://studio-config-latest)")
    g.add_argument("--display-view", help="'DISPLAY/VIEW' of the config for the tracker's picture (default: the "
                   "config's default display and view)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ned-fx", description="Emotion Director: change an actor's facial "
                                     "expression in real footage, keeping speech, identity and head pose.")
    parser.add_argument("--version", action="version", version=f"ned-fx {__version__}")
    parser.add_argument("--threads", metavar="N",
                        help="CPU threads for the engines (torch, OpenCV); default $NED_FX_THREADS, else half the "
                             "cores (holds up when Nuke, a daemon and a batch share the machine); 0 = the "
                             "libraries' own defaults")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("track", help="track faces: 478 landmarks, face ids, head pose per frame",
                       description="Track the faces of a movie, still or image sequence: 478 landmarks (face mesh + "
                       "iris), a face id and the head pose per frame, written to TRACK.npz (the input of `ned-fx "
                       "manipulate`); --preview draws the tracked mesh over the plate.")
    p.add_argument("input", help="movie, image, or sequence (shot.%%04d.exr, shot.####.exr)")
    p.add_argument("-o", "--output", required=True, help="TRACK.npz to write")
    p.add_argument("--preview", help="overlay of the tracked mesh: .png (first frame) or .mp4/.mov")
    p.add_argument("--frames", help="frame range, e.g. 1001-1100 (movies: 0-based frame indices)")
    p.add_argument("--face", type=int, help="face id to select (default: the face seen in most frames)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_tracker_options(p)
    p.set_defaults(func=cmd_track)

    from .commands import batch, cache, edit, engines, farm, gallery, manipulate, provenance, serve, train_renderer

    for command in (manipulate, edit, gallery, serve, batch, farm, provenance, engines, train_renderer, cache):
        command.register(sub)

    p = sub.add_parser("weights", help="install or check the tracker's network weights",
                       description="install: download the mediapipe==0.10.21 wheel from PyPI (pip download --no-deps; "
                       "or use --wheel PATH) and convert its face detector, face mesh and iris .tflite files into "
                       "ned_fx's weights under $NED_FX_HOME/weights; status: say what is installed.")
    p.add_argument("action", choices=["install", "status"])
    p.add_argument("--wheel", help="a mediapipe-0.10.21 wheel to convert (default: download it from PyPI)")
    p.add_argument("--force", action="store_true", help="convert again")
    p.set_defaults(func=cmd_weights)

    p = sub.add_parser("demo", help="run the main job on the embedded default face (no user files)",
                       description="Edit the embedded default face (scikit-image's astronaut, no user files): writes "
                       "astronaut.png (the input), astronaut_<emotion>.png (the edit), astronaut_before_after.png, "
                       "astronaut_tracked.png (the tracked mesh) and astronaut_track.npz into the output folder.")
    p.add_argument("-o", "--output", default="demo_out", help="folder for the results (default demo_out)")
    p.add_argument("--emotion", help="emotion for the demo edit (default happy)")
    p.add_argument("--intensity", type=float, help="intensity for the demo edit (default 1)")
    add_tracker_options(p)
    p.set_defaults(func=cmd_demo)
    return parser


def _exit_cleanly_on_sigterm() -> None:
    """A SIGTERM (a render farm stopping a task, ``kill``) ends an edit as Ctrl-C does: every ``finally`` runs, so
    the temporary output is removed and the render workers stop (the default action killed the process on the
    spot and left ``.name.*.tmp.*`` beside the output). Exit status 143, as the default's."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def terminated(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)      # a second one kills at once
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    import signal

    # called from a caller's own Python (a TD's script, a test), main leaves its process as it found it: the thread
    # pools and the SIGTERM handler are put back on return
    handler = signal.getsignal(signal.SIGTERM)
    try:
        from .threads import configured

        with configured(args.threads):
            if args.command == "edit":
                _exit_cleanly_on_sigterm()
            return int(args.func(args) or 0)
    except NedFxError as exc:
        if os.environ.get("NED_FX_DEBUG"):
            raise
        print(f"ned-fx: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ned-fx: interrupted; outputs are written atomically, nothing half-written was left", file=sys.stderr)
        return 130
    except FileNotFoundError as exc:   # pragma: no cover - last resort, should be a named error upstream
        print(f"ned-fx: error: {InputNotFoundError(str(exc))}", file=sys.stderr)
        return 2
    finally:
        if signal.getsignal(signal.SIGTERM) is not handler and handler is not None:
            signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
