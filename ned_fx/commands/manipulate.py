"""``ned-fx manipulate``: from a track to an edit (target landmarks per frame).

    ned-fx manipulate TRACK.npz --emotion happy --intensity 0.8 -o EDITED.npz [--plot curves.png]
    ned-fx manipulate TRACK.npz --reference REF.jpg -o EDITED.npz
    ned-fx manipulate TRACK.npz --keys "1001:neutral:0,1020:happy:1,1080:sad:0.6" --regions -mouth -o EDITED.npz

Composes the tracking stage (reading the track, tracking a reference) with the manipulation stage.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InvalidParameterError, NoFaceError

_EPILOG = """\
emotions: neutral, happy, sad, surprised, fearful, angry, disgusted (blends: happy:0.7,surprised:0.3)
regions:  brows, eyes, cheeks, nose, corners, lips, jaw (mouth = corners+lips+jaw); "brows,eyes" = only
          those, "all,-mouth" (or --regions=-mouth) = all but the mouth, "brows:1,corners:0.5" = weights
keys:     FRAME:EMOTION[:INTENSITY],...  (smoothstep ease between keys; a blend in a key: happy+sad*0.5)
curve:    CSV "frame,intensity" rows or JSON {"frame": intensity}; linear between given frames
speech:   auto (default): a talking shot keeps its mouth opening exactly, other shots may open the jaw
          (surprise); preserve: never; free: always
"""


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``manipulate`` sub-command to an ``argparse`` subparsers object.

    Returns:
        the sub-command's parser (its handler is :func:`run`, set as ``func``).
    """
    p = subparsers.add_parser("manipulate", help="change the expression: target landmarks for every frame",
                              description="Change the actor's expression toward an emotion or a reference, "
                              "keeping speech, identity and head pose.", epilog=_EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("track", help="TRACK.npz written by `ned-fx track`")
    p.add_argument("-o", "--output", required=True, help="EDITED.npz to write")
    what = p.add_argument_group("what the face should do")
    what.add_argument("--emotion", help="emotion or blend (default: the reference when given, else neutral)")
    what.add_argument("--intensity", type=float, default=1.0,
                      help="0 (no change) … 1 (full) … 1.5 (exaggerated); default 1")
    what.add_argument("--reference", help="image or clip whose expression to transfer (tracked here)")
    what.add_argument("--reference-frames", help="frame range of a reference clip, e.g. 10-40")
    what.add_argument("--reference-neutral-frame", type=int,
                      help="frame number of a neutral face in the reference (best measure of its style)")
    what.add_argument("--keys", help="keyframes FRAME:EMOTION[:INTENSITY],… (overrides --emotion/--intensity)")
    what.add_argument("--curve", help="per-frame intensity curve file (.csv or .json) for --emotion")
    what.add_argument("--regions", help="region control (default: all)")
    what.add_argument("--speech", choices=["auto", "preserve", "free"], help="speech rule (default auto)")
    what.add_argument("--neutral-frame", type=int, help="frame number where the actor's face is neutral")
    what.add_argument("--face", type=int, help="face id to edit in a multi-face track (default: the track's)")
    p.add_argument("--plot", help="PNG of AU activations before/after over the shot")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(func=run)
    return p


def _check_output(out: Path, inputs: list[Path]) -> None:
    for src in inputs:
        if src.exists() and out.resolve() == src.resolve():
            raise InvalidParameterError(f"the output {out} would overwrite an input; choose another name")


def run(args) -> int:
    """Handle ``ned-fx manipulate``.

    Raises:
        the named errors of :mod:`ned_fx.errors` (the CLI prints them as one line).
    """
    from .. import manipulation as manip
    from ..tracking import read_from_file as read_track

    out = Path(args.output)
    plot = Path(args.plot) if args.plot else None
    _check_output(out, [Path(args.track)] + ([Path(args.reference)] if args.reference else []))
    if out.suffix != ".npz":
        raise InvalidParameterError(f"the edit file must end in .npz, got {out.name}")
    if plot is not None and plot.suffix.lower() != ".png":
        raise InvalidParameterError(f"--plot must name a .png, got {plot.name}")
    if args.keys and args.curve:
        raise InvalidParameterError("give either --keys or --curve, not both")
    if args.reference_frames and not args.reference:
        raise InvalidParameterError("--reference-frames needs --reference")
    config = manip.ManipulatorConfig()
    # validate the cheap parameters before any tracking work
    manip.prototypes.check_intensity(args.intensity, config.max_intensity)
    blend = manip.parse_blend(args.emotion, allow_reference=bool(args.reference)) if args.emotion else None
    regions = manip.parse_regions(args.regions)
    keys = manip.parse_keys(args.keys, args.intensity, config.max_intensity,
                            allow_reference=bool(args.reference)) if args.keys else None
    if args.reference:
        uses = ({n for k in keys for n, _ in k.blend} if keys else set(blend or {"reference": 1.0}))
        if "reference" not in uses:
            raise InvalidParameterError("--reference is given but the instruction does not use it: leave out "
                                        "--emotion, or blend it in (e.g. --emotion reference:0.5,happy:0.5)")
    curve = manip.read_curve(args.curve, config.max_intensity) if args.curve else None

    track = read_track(args.track)
    if args.face is not None and args.face != track.face_id:
        track = track.select_face(args.face)
    if not track.found.any():
        raise NoFaceError(f"{args.track} has no face in any frame; nothing to manipulate")
    track_src = track
    if not track.source:
        from dataclasses import replace

        track_src = replace(track, source=str(args.track))
    fit = manip.fit_track(track_src, config, neutral_frame=args.neutral_frame)

    reference = None
    if args.reference:
        reference = _reference_style(args, fit.model.neutral, config)
    edited = manip.manipulate(track_src, args.emotion, args.intensity, keys=keys, curve=curve,
                              reference=reference, regions=regions, speech=args.speech, config=config, fit=fit)
    edited = _with_params(edited, {"track": str(args.track)})
    manip.write_to_file(edited, out)
    if plot is not None:
        manip.plot_activations(edited, plot)
    if not args.quiet:
        _report(edited, out, plot, reference)
    return 0


def _reference_style(args, actor_neutral, config):
    """Track the reference and measure its style (NoFaceError names the file when it has no face)."""
    from .. import manipulation as manip
    from ..pipeline import track_media

    ref = Path(args.reference)
    rtrack = track_media(ref, frames=args.reference_frames)
    if not rtrack.found.any():
        raise NoFaceError(f"no face found in the reference {ref.name}")
    neutral_index = None
    if args.reference_neutral_frame is not None:
        numbers = [int(n) for n in rtrack.frame_numbers]
        if args.reference_neutral_frame not in numbers:
            raise InvalidParameterError(f"reference neutral frame {args.reference_neutral_frame} is not in "
                                        f"{ref.name} (frames {numbers[0]}-{numbers[-1]})")
        neutral_index = numbers.index(args.reference_neutral_frame)
    return manip.reference_style(rtrack.landmarks, rtrack.pose, rtrack.found, actor_neutral, config,
                                 name=ref.name, neutral_frame=neutral_index)


def _with_params(edited, extra: dict):
    from dataclasses import replace

    return replace(edited, params={**edited.params, **extra})


def _report(edited, out: Path, plot: Path | None, reference) -> None:
    import numpy as np

    from ..manipulation.plot import changed_groups

    p = edited.params
    what = p.get("emotion") or "keyframes"
    if reference is not None:
        top = sorted(((v, n) for n, v in zip(edited.au_names, reference.style) if v > 0.1), reverse=True)[:5]
        print(f"reference {reference.name}: " + (", ".join(f"{n} {v:.2f}" for v, n in top) or "no AU activity")
              + f" (measured against the {reference.neutral} neutral)")
    found = int(np.sum(edited.found))
    moved = np.nanmax(np.abs(edited.offsets)) if found else 0.0
    groups = ", ".join(t.lower() for t, _ in changed_groups(edited)) or "nothing"
    talk = "talking shot, mouth opening kept" if p.get("talking") else "not a talking shot"
    print(f"edited {found} of {edited.num_frames} frame(s): {what}"
          + (f" at {p['intensity']:g}" if isinstance(p.get("intensity"), (int, float)) else "")
          + f"; speech {p.get('speech')} ({talk}); neutral {p.get('neutral')}")
    print(f"changes: {groups}; largest landmark move {moved:.1f} px")
    print(f"wrote {out}")
    if plot is not None:
        print(f"wrote {plot}")
