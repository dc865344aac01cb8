"""What a farm node runs: ``ned-fx farm task --shot=SHOT --layer=LAYER -- ARGS`` (every task of every back end).

It runs the ``ned-fx`` command ``ARGS`` (``edit …`` or ``farm assemble …``) in this process and adds what a farm
task needs:

* **a chunk never re-analyses**: a ``render`` task whose ``--analysis`` file is missing fails at once (the analysis
  task must run first) instead of tracking the whole shot again on a render node;
* **a retry resumes**: frames are written atomically (a hidden temporary file, then a rename), so a chunk killed
  midway leaves each frame complete or absent; hidden temporary files a killed chunk left for its own frames are
  removed once they are :data:`STALE_SECONDS` old (a live racer's are seconds old), and the rerun keeps the frames
  the same edit already wrote. Two chunks racing on one frame each rename a whole file: the last one wins, no
  file is ever torn;
* **a failure names itself**: one line on stderr, which every farm keeps in the task's log,
  ``ned-fx farm: shot SHOT LAYER frames A-B failed (exit N): REASON``;
* **pyoutline's pycuerun wrapper**: under pycuerun, Cuebot substitutes its tokens in the wrapper's command, not in
  the layer's, and pyoutline runs a ``Shell`` layer's command once per frame of the chunk with ``%{FRAME}``
  substituted and ``$OL_LAYER_RANGE`` holding the chunk. OpenCue commands carry ``--pyoutline-frame=%{FRAME}``:
  when it is a number, the chunk's ``#FRAME_START#``/``#FRAME_END#`` are taken from ``$OL_LAYER_RANGE`` and only the
  chunk's first frame renders it (the others print that they are part of it). Without pycuerun the option stays
  ``%{FRAME}`` and is ignored: Cuebot substituted the tokens itself. (pycuerun leaves ``%{FRAME}`` as it is for
  frame 0 too: pyoutline substitutes it only for a true frame number; with ``$OL_LAYER_RANGE`` set and the chunk
  tokens still there, that is frame 0.)
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

from .jobs import FarmError

#: Hidden temporary files of a chunk's frames older than this are a killed run's leftovers (seconds).
STALE_SECONDS = 600.0
#: OpenCue's chunk tokens (as the OpenCue back end writes them).
_TOKENS = ("#FRAME_START#", "#FRAME_END#")


def run_task(shot: str, layer: str, argv: list[str], pyoutline_frame: str | None = None) -> int:
    """Run one farm task. Returns the exit code (0: done); a failure is reported on stderr first.

    Args:
        shot: the shot's name; layer: ``analysis``, ``render`` or ``assemble``; argv: the ``ned-fx`` command;
        pyoutline_frame: ``%{FRAME}`` as pyoutline substituted it (or left it).
    """
    from ..cli import build_parser
    from ..errors import NedFxError

    frames = "?"
    try:
        argv = list(argv[1:] if argv and argv[0] == "--" else argv)
        if not argv:
            raise FarmError("ned-fx farm task needs the ned-fx command to run after --, e.g. -- edit IN -o OUT …")
        if pyoutline_frame == "%{FRAME}" and os.environ.get("OL_LAYER_RANGE") and \
                any(t in a for a in argv for t in _TOKENS):
            pyoutline_frame = "0"       # pycuerun leaves %{FRAME} as it is for frame 0 (pyoutline tests `if frame:`)
        if pyoutline_frame is not None and pyoutline_frame.strip().lstrip("-").isdigit():
            chunk = _pyoutline_chunk()
            frame = int(pyoutline_frame)
            if frame != chunk[0]:
                print(f"ned-fx farm: shot {shot} {layer}: frame {frame} is part of the chunk {chunk[0]}-{chunk[-1]}, "
                      f"rendered with its first frame", flush=True)
                return 0
            argv = [a.replace(_TOKENS[0], str(chunk[0])).replace(_TOKENS[1], str(chunk[-1])) for a in argv]
        args = build_parser().parse_args(argv)
        frames = getattr(args, "frame_range", None) or getattr(args, "frames", None) or "all"   # assemble: --frames
        left = [t for t in _TOKENS if any(t in a for a in argv)]
        if left:
            raise FarmError(f"the farm did not substitute its chunk tokens ({', '.join(left)}) in the command (under "
                            f"pyoutline's pycuerun the command needs --pyoutline-frame=%{{FRAME}})")
        if layer == "render" and getattr(args, "analysis", None) and not getattr(args, "analysis_only", False):
            if not Path(args.analysis).is_file():
                raise FarmError(f"the shot's analysis {args.analysis} is missing: the analysis task runs first "
                                f"(a render chunk never analyses the shot again); rerun the analysis task")
        if getattr(args, "command", None) == "edit" and getattr(args, "output", None):
            clean_stale_temps(args.output)
        code = int(args.func(args) or 0)
    except NedFxError as exc:
        _failed(shot, layer, frames, exc.exit_code, str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _failed(shot, layer, frames, 130, "interrupted; frames already written are kept, a rerun resumes")
        return 130
    except SystemExit as exc:             # argparse refused the command line
        code = exc.code if isinstance(exc.code, int) else 2
        if code:
            _failed(shot, layer, frames, code, "the ned-fx command line was refused (see above)")
        return code
    except Exception as exc:
        _failed(shot, layer, frames, 1, f"internal error {type(exc).__name__}: {exc}")
        raise
    if code:
        _failed(shot, layer, frames, code, "the ned-fx command failed (see above)")
    return code


def _failed(shot: str, layer: str, frames: str, code: int, reason: str) -> None:
    sys.stdout.flush()
    print(f"ned-fx farm: shot {shot} {layer} frames {frames} failed (exit {code}): {reason}", file=sys.stderr,
          flush=True)


def _pyoutline_chunk() -> list[int]:
    """The frames of the chunk pyoutline is running (``$OL_LAYER_RANGE``: ``1-10``, ``1-9x2``, ``1,2,3``)."""
    text = os.environ.get("OL_LAYER_RANGE", "")
    frames: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"(-?\d+)(?:-(-?\d+)(?:[xy:](\d+))?)?", part)
        if not m:
            raise FarmError(f"pyoutline's chunk $OL_LAYER_RANGE={text!r} is not a frame range")
        a, b, step = int(m.group(1)), int(m.group(2) or m.group(1)), int(m.group(3) or 1)
        frames += list(range(a, b + 1, step))
    if not frames:
        raise FarmError("--pyoutline-frame was given but pyoutline did not set $OL_LAYER_RANGE")
    return sorted(set(frames))


def clean_stale_temps(output: str, older_than: float = STALE_SECONDS) -> int:
    """Remove the hidden temporary files (``.NAME.XXXXXXXX.tmp.EXT``) a killed run left beside ``output``'s frames
    once they are ``older_than`` seconds old. Returns how many were removed."""
    from ..media import is_sequence_pattern, parse_sequence_pattern

    out = Path(output)
    if is_sequence_pattern(str(output)):
        seq = parse_sequence_pattern(str(output))
        folder, name = seq.folder, re.escape(seq.prefix) + r"-?\d+" + re.escape(seq.suffix)
    else:
        folder, name = out.parent, re.escape(out.name)
    stale = re.compile(r"\." + name + r"\.[0-9a-f]{8}\.tmp" + re.escape(out.suffix.lower()) + r"\Z")
    removed, now = 0, time.time()
    if folder.is_dir():
        for entry in os.scandir(folder):
            try:
                if stale.match(entry.name) and now - entry.stat().st_mtime >= older_than:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass
    return removed
