"""``ned-fx manipulate``: from a track to an edit (target landmarks per frame).

    ned-fx manipulate TRACK.npz --emotion happy --intensity 0.8 -o EDITED.npz [--plot curves.png]
    ned-fx manipulate TRACK.npz --reference REF.jpg -o EDITED.npz
    ned-fx manipulate TRACK.npz --keys "1001:neutral:0,1020:happy:1,1080:sad:0.6" --regions -mouth -o EDITED.npz

Composes the tracking stage (reading the track, tracking a reference) with the manipulation stage.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InvalidParameterError

def regions_help() -> str:
    """Every region name --regions accepts, from the manipulation stage's own tables (the help's one list)."""
    from ..manipulation.expression import REGION_ALIASES, REGIONS

    aliases = ", ".join(f"{k} = {'+'.join(v)}" if k != "all" else "all" for k, v in REGION_ALIASES.items())
    return f"{', '.join(REGIONS)}; also {aliases}"


def epilog() -> str:
    return _EPILOG.replace("REGIONS", regions_help())


_EPILOG = """\
emotions: neutral, happy, sad, surprised, fearful, angry, disgusted (blends: happy:0.7,surprised:0.3)
regions:  REGIONS;
          "brows,eyes" = only those, "all,-mouth" (or --regions=-mouth) = all but the mouth,
          "brows:1,corners:0.5" = weights
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
                              "keeping speech, identity and head pose.", epilog=epilog(),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("track", help="TRACK.npz written by `ned-fx track`")
    p.add_argument("-o", "--output", required=True, help="EDITED.npz to write")
    add_instruction_options(p)
    p.add_argument("--face", type=int, help="face id to edit in a multi-face track (default: the track's)")
    p.add_argument("--plot", help="PNG of AU activations before/after over the shot")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(func=run)
    return p


def add_instruction_options(p: argparse.ArgumentParser) -> None:
    """The options of the manipulate step (shared by ``manipulate`` and ``edit``)."""
    what = p.add_argument_group("what the face should do")
    what.add_argument("--emotion", help="emotion or blend (default: the reference when given, else neutral)")
    what.add_argument("--intensity", type=float, default=None,
                      help="0 (no change) … 1 (full) … 1.5 (exaggerated); default 1")
    what.add_argument("--reference", help="image or clip whose expression to transfer (tracked here)")
    what.add_argument("--reference-frames", help="frame range of a reference clip, e.g. 10-40")
    what.add_argument("--reference-neutral-frame", type=int,
                      help="frame number of a neutral face in the reference (best measure of its style)")
    what.add_argument("--keys", help="keyframes FRAME:EMOTION[:INTENSITY],… (overrides --emotion/--intensity)")
    what.add_argument("--curve", help="per-frame intensity curve file (.csv or .json) for --emotion")
    what.add_argument("--regions", help=f"region control (default: all): {regions_help()}")
    what.add_argument("--speech", choices=["auto", "preserve", "free"], help="speech rule (default auto)")
    what.add_argument("--neutral-frame", type=int, help="frame number where the actor's face is neutral")


def instruction_from_args(args):
    """An :class:`~ned_fx.pipeline.EditInstruction` from parsed options (unset options keep its defaults)."""
    from ..pipeline import EditInstruction

    given = {name: getattr(args, name, None) for name in EditInstruction.__dataclass_fields__}
    return EditInstruction(**{k: v for k, v in given.items() if v is not None})


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
    from ..pipeline import check_instruction, plan_edit

    instruction = instruction_from_args(args)
    check_instruction(instruction)            # the cheap parameters, before any tracking work
    track = read_track(args.track)
    if args.face is not None and args.face != track.face_id:
        track = track.select_face(args.face)
    if not track.source:
        from dataclasses import replace

        track = replace(track, source=str(args.track))
    edited = plan_edit(track, instruction)
    edited = _with_params(edited, {"track": str(args.track)})
    manip.write_to_file(edited, out)
    if plot is not None:
        manip.plot_activations(edited, plot)
    if not args.quiet:
        _report(edited, out, plot)
    return 0


def _with_params(edited, extra: dict):
    from dataclasses import replace

    return replace(edited, params={**edited.params, **extra})


def _report(edited, out: Path, plot: Path | None) -> None:
    import numpy as np

    from ..manipulation.plot import changed_groups

    p = edited.params
    what = p.get("emotion") or "keyframes"
    ref = p.get("reference_summary")
    if ref is not None:
        top = sorted(((v, n) for n, v in ref["top"].items()), reverse=True)[:5]
        print(f"reference {ref['name']}: " + (", ".join(f"{n} {v:.2f}" for v, n in top) or "no AU activity")
              + f" (measured against the {ref['neutral']} neutral)")
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
