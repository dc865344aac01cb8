"""``ned-fx batch``: run a shot list (YAML, CSV or OpenTimelineIO) through the daemon.

    ned-fx batch shots.yaml                          # a running daemon, or a private one started for the run
    ned-fx batch shots.csv --jobs 3 --report out/report.json
    ned-fx batch edit.otio --daemon tcp://127.0.0.1:5557 --no-start
    ned-fx batch shots.yaml --check                  # read and check every shot; no daemon, nothing written
    ned-fx batch shots.yaml --from-farm --report out/report.json   # read a farm run's outputs into the report

Several shots are in flight at once; running the same list again keeps the frames (sequences, stills) already
written by the same edit. At the end: a JSON report (per shot: status, frames edited / passed through / resumed, seconds,
outputs, errors with codes) and a before/after contact sheet per shot. Every output carries the edit's
provenance in its own metadata (read it with `ned-fx provenance`), and each shot appends a line to the audit log
(who, shot, parameters, consent, outputs with their SHA-256). A failed shot never stops the others. Ctrl-C or
SIGTERM stops the run cleanly: the report and the table say which shots were done, which were interrupted (with
the frames already on disk) and which were not started; running the same command again resumes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_EPILOG = """\
shot list keys: name, input, output, frames, emotion, intensity, reference, reference_frames,
  reference_neutral_frame, keys, curve, regions, speech, neutral_frame, face, consent, colorspace,
  renderer, checkpoint, actor_footage (a list; CSV: paths separated by ;), holdout_matte, shutter_angle,
  ignore_cuts (true: track the frames as one shot where a cut is found)
  (YAML: version, defaults, shots; CSV: one row per shot; OTIO: one shot per enabled clip, keys in the
  clip's "ned_fx" metadata). Outputs may use {name}, {stem} and {emotion}. See examples/BATCH_AND_FARM.md.

exit codes:
  0    every shot done or skipped (--check: every shot ready)
  2    a bad shot list or option (--check: a shot has a problem; each one is listed)
  6    the report or the audit log cannot be written
  8    no daemon answers (with --no-start), or a private one did not start (its log is named)
  9    a shot failed (the others were done; the report has each error with its code)
  130  interrupted (Ctrl-C, SIGTERM): the report of what was done is written first

daemon logs: a daemon started for the run logs to $NED_FX_HOME/logs (default ~/.cache/ned_fx/logs), where the
  newest ten are kept; the report names its log, and so does the summary when a shot failed.
"""


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``batch`` sub-command."""
    from ..batch.config import BatchConfig

    d = BatchConfig()
    p = subparsers.add_parser("batch", help="run a shot list (YAML/CSV/OTIO) through the daemon",
                              description=__doc__, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shotlist", help="shots.yaml, shots.csv or timeline.otio")
    p.add_argument("--daemon", metavar="ENDPOINT", help=f"the daemon to use (default {d.endpoint})")
    p.add_argument("--no-start", action="store_true", help="fail if no daemon answers instead of starting one")
    p.add_argument("--keep-daemon", action="store_true", help="leave a daemon started for this run running")
    p.add_argument("--engine", choices=("ned_fx", "identity"),
                   help=f"engine of a daemon started for this run (default {d.engine}; identity returns frames unchanged)")
    p.add_argument("--device", help=f"device of a daemon started for this run: auto, cpu, cuda, cuda:N (default {d.device})")
    p.add_argument("-j", "--jobs", type=int, help=f"shots in flight at once (default {d.jobs})")
    p.add_argument("--shot", action="append", metavar="NAME", help="run only this shot (repeatable)")
    p.add_argument("--no-resume", action="store_true", help="render every frame again even if already written")
    p.add_argument("--report", help="the JSON report (default SHOTLIST_report.json beside the shot list)")
    p.add_argument("--contact-sheets", metavar="DIR", help="folder of the contact sheets (default beside the report)")
    p.add_argument("--no-contact-sheets", action="store_true", help="make no contact sheets")
    p.add_argument("--samples", type=int, help=f"frames per contact sheet (default {d.samples})")
    p.add_argument("--timeout", type=float, help=f"seconds to wait for one daemon reply (default {d.timeout:g})")
    p.add_argument("--client-key", metavar="FILE", help="CurveZMQ: this client's .key_secret (with --server-key)")
    p.add_argument("--server-key", metavar="FILE", help="CurveZMQ: the daemon's server.key")
    audit = p.add_mutually_exclusive_group()
    audit.add_argument("--audit-log", metavar="FILE",
                       help="append the batch's audit lines here (one per shot, one per run; default "
                            "$NED_FX_AUDIT_LOG, else $NED_FX_HOME/audit.jsonl)")
    audit.add_argument("--no-audit-log", action="store_true", help="write no audit lines")
    p.add_argument("--check", action="store_true",
                   help="read the shot list and check every shot (inputs, frames, instruction); no daemon, no output")
    p.add_argument("--from-farm", action="store_true",
                   help="render nothing: read what a farm run (ned-fx farm submit) wrote into the same JSON report")
    p.add_argument("--output-root", metavar="DIR",
                   help="--from-farm: the folder the farm job wrote the outputs under (an Open Job Description "
                        "job's OutputRoot), when not the shot list's own")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def config_from_args(args):
    """A :class:`~ned_fx.batch.config.BatchConfig` from the options that were given (it holds the defaults)."""
    from ..batch.config import BatchConfig
    from ..errors import InvalidParameterError

    if bool(args.client_key) != bool(args.server_key):
        raise InvalidParameterError("CurveZMQ needs both --client-key (.key_secret) and --server-key (server.key)")
    given = {"endpoint": args.daemon, "engine": args.engine, "device": args.device, "jobs": args.jobs,
             "report": args.report, "contact_sheets": "" if args.no_contact_sheets else args.contact_sheets,
             "samples": args.samples, "timeout": args.timeout,
             "curve": (args.client_key, args.server_key) if args.client_key else None,
             "shots": tuple(args.shot) if args.shot else None}
    flags = {"start_daemon": False if args.no_start else None, "keep_daemon": True if args.keep_daemon else None,
             "resume": False if args.no_resume else None, "audit": False if args.no_audit_log else None,
             "audit_log": args.audit_log}
    return BatchConfig(**{k: v for k, v in {**given, **flags}.items() if v is not None})


def run(args) -> int:
    from ..batch import read_from_file
    from ..batch.runner import BatchFailedError, BatchInterrupted, run_batch

    shotlist = read_from_file(args.shotlist)
    config = config_from_args(args)
    if args.check:
        return _check(shotlist, config)
    if args.from_farm or args.output_root:
        return _from_farm(shotlist, config, args)
    _interrupt_on_sigterm()
    bars = None
    if not args.quiet:
        from ..batch.progress import BatchBars

        bars = BatchBars(config.jobs)
    try:
        report = run_batch(shotlist, config, progress=bars)
    except BatchInterrupted as exc:
        if bars is not None:
            bars.close()
            bars = None
        _print_summary(exc.report)
        counts = exc.report.counts()
        print(f"ned-fx: interrupted: {counts['interrupted']} shot(s) stopped in flight (their frames on disk are "
              f"kept), {counts['not started']} not started; run the same command again to resume",
              file=sys.stderr)
        return 130
    finally:
        if bars is not None:
            bars.close()
    _print_summary(report)
    failed = report.failed
    if failed:
        detail = "; ".join(f"{s.name} ({s.error['code']}): {s.error['message']}" for s in failed[:3])
        more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
        raise BatchFailedError(f"{len(failed)} of {len(report.shots)} shot(s) failed: {detail}{more} "
                               f"(report: {report.path})")
    return 0


def _from_farm(shotlist, config, args) -> int:
    """``--from-farm``: the report of what a farm run wrote (see :mod:`ned_fx.farm.collect`); exit 9 when a shot's
    outputs are incomplete, like a failed shot of a local batch."""
    import os

    from ..batch.runner import BatchFailedError, default_report_path
    from ..errors import InvalidParameterError
    from ..farm.collect import collect, write_report

    if not args.from_farm:
        raise InvalidParameterError("--output-root is for --from-farm (where the farm job wrote the outputs)")
    if config.shots:
        shotlist = shotlist.select(list(config.shots))
    path = os.path.abspath(config.report or default_report_path(shotlist))
    report = collect(shotlist, args.output_root, path)
    write_report(report)
    _print_summary(report)
    if report.failed:
        detail = "; ".join(f"{s.name}: {s.error['message']}" for s in report.failed[:3])
        raise BatchFailedError(f"{len(report.failed)} of {len(report.shots)} shot(s) incomplete: {detail} "
                               f"(report: {report.path})")
    return 0


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a queue or a supervisor stopping the batch) ends it like Ctrl-C: the report of what was done is
    written and a private daemon is stopped."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


#: ``--check``'s exit code when a shot has a problem: a bad shot list's (InvalidParameterError's, 2).
CHECK_FAILED = 2


def _check(shotlist, config) -> int:
    """``--check``: each shot's frames, output kind and instruction, without a daemon; 0 when every shot is ready,
    :data:`CHECK_FAILED` (2, like any bad shot list) when one has a problem."""
    from ..batch.runner import error_code, plan_shot
    from ..media.frames import describe_numbers

    bad = ready = 0
    for shot in shotlist:
        if config.shots and shot.name not in config.shots:
            continue
        try:
            plan = plan_shot(shot, config)
            what = ", ".join(f"{k} {v}" for k, v in shot.instruction().items()) or "neutral"
            # the session's options too (a holdout matte, actor footage, the renderer…): what the TD set, seen
            how = "".join(f"; {k} {', '.join(v) if isinstance(v, list) else v}"
                          for k, v in shot.session_options().items())
            print(f"{shot.name}: ok: {plan.input_kind} {shot.input} -> {plan.kind} {shot.output}; frames "
                  f"{describe_numbers(list(plan.numbers))}; {what}{how}")
            ready += 1
        except Exception as exc:
            bad += 1
            print(f"{shot.name}: {error_code(exc)}: {exc}")
    print(f"{ready} shot(s) ready, {bad} with problems")
    sys.stdout.flush()
    return CHECK_FAILED if bad else 0


def _print_summary(report) -> None:
    rows = [("shot", "status", "edited", "passed", "resumed", "seconds", "note")]
    for s in report.shots:
        note = s.reason or (f"{s.error['code']}: {s.error['message'][:80]}" if s.error else "")
        if s.passed_through and not note:
            reasons = sorted(set(s.passed_through.values()))
            note = "passed through: " + ", ".join(reasons)
        rows.append((s.name, s.status, str(len(s.edited)), str(len(s.passed_through)), str(len(s.resumed)),
                     f"{s.seconds.get('total', 0.0):.1f}", note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    counts = report.counts()
    parts = [f"{counts[k]} {k}" for k in ("done", "failed", "skipped")]
    if report.interrupted or counts["interrupted"] or counts["not started"]:
        parts += [f"{counts[k]} {k}" for k in ("interrupted", "not started")]
    engine = report.daemon.get("engine") or {}
    daemon = (f"daemon {report.daemon.get('endpoint')}, engine {engine.get('engine', '?')}"
              if report.daemon.get("used", True) else "no daemon was used")
    print(f"{', '.join(parts)} in {report.seconds:.1f}s ({daemon})")
    log = report.daemon.get("log")
    if log and (report.failed or report.daemon.get("restarts")):
        logs = report.daemon.get("logs") or [log]
        why = "restarted once" if report.daemon.get("restarts") else "started for this run"
        print(f"daemon log ({why}): {', '.join(logs)}")
    print(f"wrote {report.path}")
    if report.audit_log:
        print(f"audit: {report.audit_log}")
    sheets = [s.contact_sheet for s in report.shots if s.contact_sheet]
    if sheets:
        print(f"contact sheets: {Path(sheets[0]).parent}")
    sys.stdout.flush()
