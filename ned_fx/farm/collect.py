"""A farm run's outputs read back into the report of a local batch (``ned-fx batch SHOTLIST --from-farm``).

The farm leaves no report of its own; what it wrote says everything that matters. Per shot of the shot list:

* the frames of its range are looked for at its output (under ``output_root`` when the farm job wrote its outputs
  to another root: the shot list's output root is replaced by it, as the Open Job Description template does);
* each frame's provenance record says whether it was edited or passed through and why (a movie carries one
  record for the shot: its frames count as edited when it was edited, else as passed through for its reason);
* a shot whose outputs are all there is ``done``; one with frames missing is ``failed`` with the error code
  ``incomplete`` and the missing frames in the message (the farm's log names the failed chunk and why).

Seconds are not known here (the farm's log has them): ``seconds`` is empty and the daemon is ``{"used": false,
"farm": true}``.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path

from .jobs import FarmError


def shot_outputs_root(shotlist) -> str:
    """The folder all of a shot list's outputs lie under (as the farm jobs place them)."""
    folders = [os.path.dirname(os.path.abspath(s.output)) for s in shotlist.shots]
    try:
        return os.path.commonpath(folders)
    except ValueError:
        raise FarmError("the shot list's outputs are on different drives: there is no one output root") from None


def collect(shotlist, output_root: str | None = None, report_path: str | os.PathLike | None = None):
    """The :class:`~ned_fx.batch.runner.BatchReport` of a farm run of ``shotlist`` (not written; see
    :func:`write_report`).

    Args:
        shotlist: the shots the farm ran; output_root: where the farm wrote them, if not at the shot list's own
            outputs; report_path: the report's path (recorded in it).
    """
    from ..batch.runner import BatchReport

    t0 = time.perf_counter()
    old_root = shot_outputs_root(shotlist)
    results = tuple(_shot(shot, _moved(shot.output, old_root, output_root)) for shot in shotlist.shots)
    return BatchReport(os.path.abspath(shotlist.source) if shotlist.source else shotlist.name, results,
                       {"used": False, "farm": True, "output_root": output_root or old_root},
                       datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter() - t0,
                       str(os.path.abspath(report_path)) if report_path else None)


def _moved(path: str, old_root: str, new_root: str | None) -> str:
    path = os.path.abspath(path)
    if not new_root:
        return path
    rel = os.path.relpath(path, old_root)
    return path if rel.startswith(os.pardir) else os.path.join(os.path.abspath(new_root), rel)


def _shot(shot, output: str):
    from ..batch.runner import ShotResult, error_code
    from ..media import open_media, sequence_path
    from ..media.frames import describe_numbers
    from ..media.readers import read_provenance

    try:
        with open_media(shot.input, shot.frames) as src:
            numbers = tuple(int(n) for n in src.frame_numbers)
    except Exception as exc:
        return ShotResult(shot.name, shot.input, output, "failed",
                          error={"code": error_code(exc), "message": str(exc), "type": type(exc).__name__})
    kind = shot.output_kind
    edited, passed, missing = [], {}, []
    if kind == "movie":
        record = read_provenance(output) if Path(output).is_file() else None
        if record is None:
            missing = list(numbers)
        elif record.edited:
            edited = list(numbers)
        else:
            passed = {n: record.passed_through or "unchanged" for n in numbers}
    else:
        for n in numbers:
            path = sequence_path(output, n) if kind == "sequence" else Path(output)
            record = read_provenance(path) if Path(path).is_file() else None
            if record is None:
                missing.append(n)
            elif record.edited:
                edited.append(n)
            else:
                passed[n] = record.passed_through or "unchanged"
    if missing:
        message = (f"{len(missing)} of {len(numbers)} frame(s) are not on disk at {output}: "
                   f"{describe_numbers(missing)}; their farm tasks did not finish (the farm's log names the failed "
                   f"chunk and why)")
        return ShotResult(shot.name, shot.input, output, "failed", numbers, tuple(edited), passed,
                          outputs=(output,) if len(missing) < len(numbers) else (),
                          error={"code": "incomplete", "message": message, "type": "FarmIncomplete"})
    return ShotResult(shot.name, shot.input, output, "done", numbers, tuple(edited), passed, outputs=(output,))


def write_report(report) -> None:
    """Write the report to its path, atomically (the local batch's writer)."""
    from ..batch.runner import _write_report

    _write_report(report, Path(report.path))
