"""``ned-fx farm``: send a shot list to a render farm (OpenCue, Deadline, or an Open Job Description template).

    ned-fx farm submit shots.yaml --to opencue --chunk 10 --show myshow --dry-run
    ned-fx farm submit shots.yaml --to deadline --pool gpu --priority 60 --out farm_specs/
    ned-fx farm submit shots.yaml --to openjd -o bundle/template.yaml     # then: openjd run / deadline bundle submit
    ned-fx farm assemble out/sh010.mov.frames/sh010.####.png -o out/sh010.mov --frames 0-99 --fps 25

Per shot: an analysis task (tracks the whole shot once, written to SHOT.analysis.npz beside the output), render
tasks of --chunk frames that depend on it (each runs `ned-fx edit` on its chunk), and for a movie output an
assemble task that encodes the rendered frames (movies cannot be written in chunks). Every render task asks for
--gpu GPUs. A shot's consent reference goes to every `ned-fx edit` (--consent) and the job's metadata; every frame
carries the edit's provenance, the assembled movie too, and each render task appends to the audit log
(--audit-log FILE: one file the nodes share). --dry-run writes the specs (OpenCue job spec XML / Deadline job and
plugin info files) without submitting. --to openjd writes an Open Job Description job template (-o FILE), which
`openjd run FILE` runs on this machine and `deadline bundle submit FOLDER` sends to a Deadline Cloud queue.

Every task runs `ned-fx farm task --shot=SHOT --layer=LAYER -- ARGS`: a render chunk never analyses the shot again
(its analysis file must be there), a rerun keeps the frames already written, and a failure is one line in the
farm's log naming the shot, the layer, the frames and the reason.

Every path in the jobs and in what this prints is absolute: a farm task does not run in this folder, so plates,
outputs, --audit-log and a --ned-fx path given relative here are resolved against this folder (a shot list's own
paths against the shot list's folder). The nodes must see them at the same paths (shared storage).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``farm`` sub-command (``submit``, ``assemble``)."""
    from ..farm.jobs import FarmConfig

    d = FarmConfig()
    p = subparsers.add_parser("farm", help="submit a shot list to a render farm (OpenCue, Deadline)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="farm_command", metavar="ACTION")
    s = sub.add_parser("submit", help="turn a shot list into farm jobs and submit them (or --dry-run)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("shotlist", help="shots.yaml, shots.csv or timeline.otio")
    s.add_argument("--to", required=True, choices=("opencue", "deadline", "openjd"),
                   help="the farm (openjd: write an Open Job Description job template)")
    s.add_argument("-o", "--output", metavar="FILE",
                   help="--to openjd: the job template to write (.yaml or .json; default OUT/template.yaml, "
                        "else SHOTLIST_farm/openjd/template.yaml beside the shot list)")
    s.add_argument("--chunk", type=int, help=f"frames per render task (default {d.chunk})")
    s.add_argument("--dry-run", action="store_true", help="write the job specs and print a summary; submit nothing")
    s.add_argument("--out", metavar="DIR", help="folder for the spec files (default SHOTLIST_farm/BACKEND beside "
                   "the shot list; printed as an absolute path)")
    s.add_argument("--priority", type=int, help=f"job priority (default {d.priority}; Deadline 0-100)")
    s.add_argument("--pool", help="Deadline pool")
    s.add_argument("--group", help=f"Deadline group of the GPU workers (default {d.group}; 'none' for any)")
    s.add_argument("--limits", help="Deadline limits, comma separated")
    s.add_argument("--show", help="OpenCue show (default $SHOW, else ned_fx)")
    s.add_argument("--pycuerun", action="store_true",
                   help="OpenCue: wrap each layer in pyoutline's pycuerun (its default; pyoutline on the nodes and its "
                        "session_dir on shared storage); without it the nodes run ned-fx directly")
    s.add_argument("--gpu", type=int, help=f"GPUs per task (default {d.gpus}; 0 for CPU nodes)")
    s.add_argument("--gpu-memory", help=f"GPU memory per task, e.g. 4g (OpenCue; default {d.gpu_memory})")
    s.add_argument("--ned-fx", dest="ned_fx", metavar="PATH",
                   help="the ned-fx program on the farm nodes (default: the one running this; a relative path "
                        "is made absolute)")
    s.add_argument("--shot", action="append", metavar="NAME", help="submit only this shot (repeatable)")
    s.add_argument("--paused", action="store_true", help="submit the jobs paused")
    s.add_argument("--audit-log", metavar="FILE",
                   help="the audit log every render task appends to, as the nodes see it (made absolute; "
                        "default: each node's $NED_FX_AUDIT_LOG, else $NED_FX_HOME/audit.jsonl)")
    s.set_defaults(func=run_submit)
    t = sub.add_parser("task", help="run one farm task (what the farm nodes run; see ned_fx.farm.task)")
    t.add_argument("--shot", required=True, help="the shot's name (named in the log when the task fails)")
    t.add_argument("--layer", required=True, choices=("analysis", "render", "assemble"), help="the task's layer")
    t.add_argument("--pyoutline-frame", metavar="FRAME",
                   help="%%{FRAME} as pyoutline's pycuerun substitutes it (OpenCue commands carry it)")
    t.add_argument("argv", nargs=argparse.REMAINDER, help="-- and the ned-fx command to run (edit … / farm "
                   "assemble …)")
    t.set_defaults(func=run_task)
    a = sub.add_parser("assemble", help="encode a rendered frame sequence as the movie output (the farm's last task)")
    a.add_argument("frames", help="the rendered sequence, e.g. out/sh010.mov.frames/sh010.####.png")
    a.add_argument("-o", "--output", required=True, help="the movie to write")
    a.add_argument("--frames", dest="frame_range", help="frame range of the sequence (default all)")
    a.add_argument("--fps", type=float, required=True, help="frame rate")
    a.add_argument("--audio-from", help="a movie whose audio is copied, trimmed to the frames")
    a.add_argument("--clean", action="store_true", help="remove the frames once the movie is written")
    a.set_defaults(func=run_assemble)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """``ned-fx farm`` without an action."""
    from ..errors import InvalidParameterError

    raise InvalidParameterError("ned-fx farm needs an action: submit (send a shot list to a farm) or assemble "
                                "(encode rendered frames as a movie)")


def config_from_args(args):
    """A :class:`~ned_fx.farm.jobs.FarmConfig` from the options that were given (it holds the defaults)."""
    from ..farm.jobs import FarmConfig, parse_executable

    given = {"chunk": args.chunk, "priority": args.priority, "pool": args.pool, "show": args.show,
             "gpus": args.gpu, "gpu_memory": args.gpu_memory,
             "executable": parse_executable(args.ned_fx) if args.ned_fx else None,
             "limits": tuple(x.strip() for x in args.limits.split(",") if x.strip()) if args.limits else None,
             "paused": True if args.paused else None, "audit_log": args.audit_log}
    if args.group is not None:
        given["group"] = None if args.group.lower() == "none" else args.group
    return FarmConfig(**{k: v for k, v in given.items() if v is not None or k == "group"})


def run_submit(args) -> int:
    from ..batch import read_from_file
    from ..farm import deadline, opencue
    from ..farm.jobs import build_jobs

    shotlist = read_from_file(args.shotlist)
    if args.shot:
        shotlist = shotlist.select(args.shot)
    config = config_from_args(args)
    jobs = build_jobs(shotlist, config)
    out = Path(os.path.abspath(args.out if args.out else _default_out(args.shotlist, args.to)))
    shotlist_path = os.path.abspath(args.shotlist)
    _describe(jobs)
    if args.to == "openjd":
        from ..farm import openjd

        folder = Path(args.out) if args.out else _default_out(args.shotlist, "openjd")
        target = args.output or folder / "template.yaml"
        path = openjd.write_template(jobs, shotlist_path, target)
        values = " ".join(f"-p {shlex.quote(f'{k}={v}')}" for k, v in openjd.parameter_values(jobs, shotlist_path)
                          .items())
        print(f"wrote {path}")
        print(f"run it on this machine:  openjd run {shlex.quote(str(path))} {values}")
        print(f"send it to Deadline Cloud (the folder holds it as template.yaml):  deadline bundle submit "
              f"{shlex.quote(str(path.parent))} --farm-id FARM_ID --queue-id QUEUE_ID {values}")
        return 0
    if args.to == "opencue":
        if not opencue.have_pyoutline():
            print("pyoutline is not installed: the spec is written by ned_fx itself (pip install opencue-pyoutline "
                  "to launch)")
        paths = opencue.write_specs(jobs, out, args.pycuerun)
        for p in paths:
            print(f"wrote {p}")
        if args.dry_run:
            print(f"dry run: nothing submitted; launch later with `ned-fx farm submit {shlex.quote(shotlist_path)} "
                  f"--to opencue` and the same options, without --dry-run")
            return 0
        for name in opencue.submit(jobs, args.pycuerun):
            print(f"submitted OpenCue job {name}")
        return 0
    if args.dry_run:
        written = deadline.write_files(jobs, out)
        for pairs in written.values():
            for ji, pi in pairs:
                print(f"wrote {ji}\nwrote {pi}")
        print(f"wrote {out / 'submit.sh'}")
        print(f"dry run: nothing submitted; submit with {out / 'submit.sh'} where deadlinecommand is installed")
        return 0
    for job_id in deadline.submit(jobs, out):
        print(f"submitted Deadline job {job_id}")
    sys.stdout.flush()
    return 0


def _default_out(shotlist: str, backend: str) -> Path:
    p = Path(shotlist)
    return p.parent / f"{p.stem}_farm" / backend


def _describe(jobs) -> None:
    for job in jobs:
        print(f"job {job.name}: {job.metadata['instruction']}; {job.input} -> {job.output}")
        for layer in job.layers:
            need = f"{layer.gpus} GPU" if layer.gpus else "CPU"
            after = f", after {', '.join(layer.depends_on)}" if layer.depends_on else ""
            print(f"  {layer.name}: frames {layer.frames}, {len(layer.tasks)} task(s) of up to {layer.chunk} "
                  f"frame(s), {need}{after}")
    sys.stdout.flush()


def run_task(args) -> int:
    from ..farm.task import run_task as run

    return run(args.shot, args.layer, list(args.argv), args.pyoutline_frame)


def run_assemble(args) -> int:
    from ..farm.assemble import assemble_movie

    out = assemble_movie(args.frames, args.output, args.frame_range, args.fps, audio_from=args.audio_from,
                         clean=args.clean)
    print(f"wrote {os.path.abspath(out)}")
    return 0
