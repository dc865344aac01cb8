"""Run a plan of shots through the daemon and write the edited frames: ``python -m ned_fx.hosts.runner PLAN``.

The Resolve bridge runs this in the venv's Python (Resolve's own may lack numpy) and follows its report: one
JSON object per line on stdout — ``{"event": "shot"}`` when a shot starts, ``"progress"`` while it is analysed
and rendered, ``"result"`` per shot, ``"done"`` at the end.

The shots run through ``ned-fx batch``'s runner (:func:`ned_fx.batch.runner.run_batch`: several shots in
flight, resumable, EXR outputs carry the edit's record, a JSON report beside the plan) when that
package is installed; otherwise (``--via client``, or an older install) through a plain loop here: open a
session (the daemon reads the source itself), wait for the analysis, render every frame and write it (EXR for
float frames, PNG for 8/16-bit frames, atomically; frames already written are kept). A shot that fails is
reported and the others go on. Exit code: 0 all shots done, 1 some failed, 8 no daemon answered.
"""

from __future__ import annotations

import argparse
import getpass
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..client import DaemonError, DaemonUnavailableError
from ..errors import NedFxError
from .frames import frame_path, render_to_file
from .link import DaemonLink, LinkConfig
from .resolve import Plan, PlannedShot, plan_from_dict


def run_shot(link: DaemonLink, shot: PlannedShot, emit: Callable[[dict], None],
             application: str = "ned_fx resolve") -> dict:
    """Open, analyse and render one planned shot; returns its ``result`` event."""
    started = time.perf_counter()
    base = _base(shot)
    try:
        Path(shot.output).parent.mkdir(parents=True, exist_ok=True)
        session = link.call(lambda c: c.open(shot.input, frames=shot.frames, consent=shot.consent or None,
                                             user=getpass.getuser(), host=socket.gethostname(),
                                             application=application, **dict(shot.params)))
        session.wait(timeout=24 * 3600.0, poll=0.2,
                     callback=lambda done, total: emit({"event": "progress", "name": shot.name, "done": done,
                                                        "total": total}))
        written = kept = 0
        passed: dict[str, int] = {}
        for f in range(shot.first, shot.last + 1):
            if frame_path(shot.output, f).is_file():
                kept += 1
                continue
            path, reason = link.call(lambda c: render_to_file(session, f, shot.output))
            written += 1
            if reason:
                passed[reason] = passed.get(reason, 0) + 1
            emit({"event": "frame", "name": shot.name, "frame": f, "path": str(path), "reason": reason})
        try:
            session.close()
        except (DaemonError, DaemonUnavailableError):
            pass
        return {**base, "ok": True, "written": written, "kept": kept, "passed_through": passed,
                "seconds": round(time.perf_counter() - started, 3)}
    except DaemonUnavailableError:
        raise
    except (DaemonError, NedFxError, OSError, TimeoutError) as exc:
        return {**base, "ok": False, "error": str(exc)}


def _batch_modules():
    try:
        from ..batch import runner as batch_runner
        from ..batch import shotlist as batch_shotlist
    except ImportError:
        return None
    return batch_runner, batch_shotlist


def run_with_batch(plan: Plan, emit: Callable[[dict], None], report: str | None = None,
                   start_daemon: bool = False) -> list[dict]:
    """Run the plan with ``ned-fx batch``'s runner; returns one ``result`` event per shot (also emitted)."""
    batch_runner, sl = _batch_modules()
    by_name = {s.name: s for s in plan.shots}
    shots = tuple(sl.Shot(name=s.name, input=s.input, output=s.output, frames=s.frames, consent=s.consent or None,
                          **{k: v for k, v in s.params.items() if k in sl.SHOT_KEYS}) for s in plan.shots)
    shotlist = sl.ShotList(shots, name=plan.timeline or "resolve")
    config = batch_runner.BatchConfig(endpoint=plan.endpoint or LinkConfig.from_env().endpoint,
                                      start_daemon=start_daemon, report=report, contact_sheets="")
    lock = threading.Lock()
    started: set[str] = set()

    def progress(name: str, stage: str, done: int, total: int) -> None:
        if name not in by_name:
            return
        with lock:
            if name not in started:
                started.add(name)
                s = by_name[name]
                emit({"event": "shot", "name": name, "input": s.input, "frames": s.frames})
            emit({"event": "progress", "name": name, "stage": stage, "done": done, "total": total})

    try:
        outcome = batch_runner.run_batch(shotlist, config, progress=progress)
    except (DaemonUnavailableError, NedFxError) as exc:      # no daemon, an unwritable audit log, …
        code = "unavailable" if isinstance(exc, DaemonUnavailableError) else type(exc).__name__
        results = [_base(s) | {"ok": False, "error": str(exc), "code": code} for s in plan.shots]
        for r in results:
            emit(r)
        return results
    results = []
    for shot_result in outcome.shots:
        s = by_name[shot_result.name]
        error = dict(shot_result.error or {})
        result = _base(s) | {"ok": shot_result.status == "done", "written": len(shot_result.edited)
                             + len(shot_result.passed_through), "kept": len(shot_result.resumed),
                             "passed_through": len(shot_result.passed_through), "report": outcome.path}
        if shot_result.status != "done":
            result |= {"error": str(error.get("message") or shot_result.reason or shot_result.status),
                       "code": str(error.get("code", shot_result.status))}
        results.append(result)
        emit(result)
    return results


def _base(shot: PlannedShot) -> dict:
    return {"event": "result", "name": shot.name, "clip": shot.clip, "output": shot.output, "first": shot.first,
            "last": shot.last, "record_frame": shot.record_frame, "track": shot.track}


def run(plan: Plan, link: DaemonLink, emit: Callable[[dict], None]) -> list[dict]:
    """Run every shot of ``plan`` with the plain client loop; returns the ``result`` events (also emitted)."""
    results = []
    status = link.check()
    for shot in plan.shots:
        emit({"event": "shot", "name": shot.name, "input": shot.input, "frames": shot.frames})
        if not status.ok:
            result = _base(shot) | {"ok": False, "error": status.message, "code": "unavailable"}
        else:
            try:
                result = run_shot(link, shot, emit)
            except DaemonUnavailableError:
                status = link.status
                result = _base(shot) | {"ok": False, "error": status.message, "code": "unavailable"}
        results.append(result)
        emit(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ned_fx.hosts.runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("plan", help="plan JSON written by the Resolve bridge (ned_fx.hosts.resolve.write_plan)")
    parser.add_argument("--endpoint", help="the daemon (default: the plan's)")
    parser.add_argument("--via", choices=("auto", "batch", "client"), default="auto",
                        help="run the shots with ned-fx batch's runner (auto: when installed) or the plain loop")
    parser.add_argument("--report", help="batch report JSON (default: PLAN_report.json beside the plan)")
    parser.add_argument("--start-daemon", action="store_true",
                        help="batch: start a private daemon when none answers (loads the engines: slow)")
    args = parser.parse_args(argv)

    def say(event: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    patched: set[str] = set()

    def emit(event: dict[str, Any]) -> None:
        # a shot placed as a patch reports its result once its patches are made (below)
        if event.get("event") != "result" or event.get("name") not in patched:
            say(event)

    try:
        plan = plan_from_dict(json.loads(Path(args.plan).read_text(encoding="utf-8")))
    except (OSError, ValueError, NedFxError) as exc:
        emit({"event": "done", "ok": False, "error": f"cannot read the plan {args.plan}: {exc}"})
        return 2
    if args.endpoint:
        plan = Plan(plan.shots, plan.skipped, plan.timeline, args.endpoint)
    patched.update(s.name for s in plan.shots if s.layer == "patch")
    via = args.via
    if via == "auto":
        via = "batch" if _batch_modules() is not None else "client"
    if via == "batch" and _batch_modules() is None:
        emit({"event": "done", "ok": False, "error": "ned_fx.batch is not installed in this Python: use --via client"})
        return 2
    if via == "batch":
        report = args.report or str(Path(args.plan).with_name(Path(args.plan).stem + "_report.json"))
        results = run_with_batch(plan, emit, report, args.start_daemon)
    else:
        link = DaemonLink(LinkConfig.from_env(plan.endpoint or None))
        try:
            results = run(plan, link, emit)
        finally:
            link.close()
    if patched:
        from .patches import layer_result

        inputs = {s.name: s.input for s in plan.shots}
        results = [layer_result(r, inputs[r["name"]], say) if r.get("name") in patched else r for r in results]
        for r in results:
            if r.get("name") in patched:
                say(r)
    ok = all(r.get("ok") for r in results)
    emit({"event": "done", "ok": ok, "via": via, "shots": len(results),
          "failed": sum(not r.get("ok") for r in results)})
    if not ok and results and all(r.get("code") == "unavailable" for r in results if not r.get("ok")):
        return 8
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
