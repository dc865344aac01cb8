"""``ned-fx edit``: the main job. A plate goes in, the same plate comes out with the actor's expression changed.

    ned-fx edit shot.mov -o shot_happy.mov --emotion happy --intensity 0.8 --preview before_after.mp4
    ned-fx edit plates/shot.####.exr --frames 1001-1100 -o out/shot_sad.####.exr --emotion sad
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``edit`` sub-command."""
    from ..cli import add_tracker_options
    from .manipulate import _EPILOG, add_instruction_options

    p = subparsers.add_parser("edit", help="change the actor's expression in a plate (the main job)",
                              description="Change the actor's expression in a movie, still or image sequence, "
                              "keeping speech, identity, head pose and every pixel outside the face.",
                              epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="movie, still, or sequence (shot.%%04d.exr, shot.####.exr); never modified")
    p.add_argument("-o", "--output", required=True,
                   help="sequence pattern (frame numbers kept), movie (fps, size, audio kept) or still")
    p.add_argument("--frames", help="frame range, e.g. 1001-1100 (movies: 0-based frame indices)")
    p.add_argument("--face", type=int, help="face id to edit (see `ned-fx track`; default the main face)")
    p.add_argument("--preview", help="side-by-side before/after: .png (first frame) or .mp4/.mov")
    p.add_argument("--no-resume", action="store_true", help="render every frame again even if already written")
    p.add_argument("--analysis", metavar="FILE.npz",
                   help="shot analysis file (track + edit plan): used if it exists (made for the same source, "
                        "instruction and face), else written; farm tasks render chunks of a shot analysed once")
    p.add_argument("--analysis-only", action="store_true",
                   help="write --analysis and stop (the farm's first layer; --frames is then the whole shot)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_instruction_options(p)
    add_tracker_options(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..cli import progress_bar, tracker_config
    from ..media.frames import describe_numbers
    from ..pipeline import edit_media
    from .manipulate import instruction_from_args

    instruction = instruction_from_args(args)          # edit_media validates it before any work
    bars: dict = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            for other in list(bars):
                bars.pop(other)[1]()
            bars[stage] = progress_bar(stage, args.quiet)
        update = bars[stage][0]
        if update:
            update(done, total)

    try:
        summary = edit_media(Path(args.input), Path(args.output), instruction, frames=args.frames,
                             face_id=args.face, preview=args.preview, tracker_config=tracker_config(args),
                             progress=progress, resume=not args.no_resume, analysis=args.analysis,
                             analysis_only=args.analysis_only)
    finally:
        for _, close in bars.values():
            close()
    s = summary
    total = sum(s.seconds.values())
    if args.analysis_only:
        print(f"analysed {args.input} (face {s.face_id}) in {total:.1f}s; wrote {s.analysis}")
        return 0
    print(f"edited {len(s.edited)} of {s.frames} frame(s) of {args.input} (face {s.face_id}) in {total:.1f}s "
          f"({s.fps():.1f} frames/s)")
    reasons: dict[str, list[int]] = {}
    for number, reason in s.passed_through.items():
        reasons.setdefault(reason, []).append(number)
    for reason, numbers in reasons.items():
        print(f"passed through unchanged ({reason}): {len(numbers)} frame(s): {describe_numbers(numbers)}")
    if s.resumed:
        print(f"kept {len(s.resumed)} frame(s) already written by the same edit: {describe_numbers(list(s.resumed))}")
    print("time per stage: " + ", ".join(f"{k} {v:.1f}s" for k, v in s.seconds.items()))
    print(f"wrote {s.output}")
    if s.preview:
        print(f"wrote {s.preview}")
    sys.stdout.flush()
    return 0
