"""Deadline: each layer of a :class:`~ned_fx.farm.jobs.Job` is a Deadline job of the ``CommandLine`` plugin, written
as a job info file and a plugin info file (``key=value`` lines).

* job info: ``Plugin=CommandLine``, ``Name``, ``BatchName`` (the shot list: Monitor groups its jobs), ``Frames``,
  ``ChunkSize``, ``Priority``, ``Pool``, ``Group`` (the GPU workers), ``LimitGroups`` (the key Thinkbox's own
  submitters write for limits), ``UserName``, ``Comment``, ``OutputDirectory0``/``OutputFilename0``,
  ``IsFrameDependent=false``, ``OverrideTaskFailureDetection``/``FailureDetectionTaskErrors`` and
  ``ExtraInfoKeyValueN`` (shot, layer, GPUs, consent);
* plugin info: ``Executable`` and ``Arguments`` with Deadline's ``<STARTFRAME>``/``<ENDFRAME>`` tokens (the
  documented tokens of command-line jobs), ``ShellExecute=False``, ``SingleFramesOnly=False``.

GPUs: ``GPUsPerTask`` is a plugin-info key of the renderer plugins (Redshift, Octane, V-Ray GPU…); the CommandLine
plugin does not read it, so it is not written. A GPU layer goes to the ``Group`` of GPU workers with
``ConcurrentTasks=1`` (one chunk at a time per worker, so a chunk has the worker's GPUs to itself); which GPUs a
worker lends is the worker's own GPU affinity (Worker Properties), not a job setting. The GPUs a task asks for are
recorded in ``ExtraInfoKeyValue`` (``ned_fx_gpus``) for the Monitor.

A shot's jobs are submitted together, in layer order, by ``deadlinecommand -SubmitMultipleJobs -dependent -job
ANALYSIS.job ANALYSIS.plugin -job RENDER.job RENDER.plugin [...]``: ``-dependent`` makes each job depend on the one
before (so render waits for the analysis, assemble for the render). ``submit.sh`` holds those lines.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from .jobs import FarmError, Job, Layer

#: Deadline's chunk tokens.
START_FRAME, END_FRAME = "<STARTFRAME>", "<ENDFRAME>"
PLUGIN = "CommandLine"


def quote_argument(arg: str) -> str:
    """An argument for Deadline's ``Arguments`` line: double quotes around text with spaces or quotes."""
    if arg and not re.search(r'[\s"]', arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def job_info(job: Job, layer: Layer) -> dict[str, str]:
    """The job info of one layer (ordered keys)."""
    if not 0 <= job.priority <= 100:
        raise FarmError(f"Deadline priorities are 0…100, got {job.priority}")
    info = {"Plugin": PLUGIN, "Name": f"{job.shot} {layer.name}", "BatchName": job.batch,
            "UserName": job.user, "Comment": f"ned_fx {layer.name}: {job.metadata.get('instruction', '')}",
            "Frames": layer.frames, "ChunkSize": str(layer.chunk), "Priority": str(job.priority)}
    if job.pool:
        info["Pool"] = job.pool
    if job.group and layer.gpus > 0:
        info["Group"] = job.group
    if layer.gpus > 0:
        info["ConcurrentTasks"] = "1"         # a chunk has the worker's GPUs to itself
    if job.limits:
        info["LimitGroups"] = ",".join(job.limits)
    if job.paused:
        info["InitialStatus"] = "Suspended"
    info["OverrideTaskFailureDetection"] = "True"
    info["FailureDetectionTaskErrors"] = str(job.max_retries + 1)     # a task fails for good after its retries
    if layer.depends_on:
        info["IsFrameDependent"] = "false"     # each task waits for the whole job before (-dependent)
    for i, out in enumerate(layer.outputs):
        info[f"OutputDirectory{i}"] = str(Path(out).parent)
        info[f"OutputFilename{i}"] = Path(out).name
    extra = {"ned_fx_shot": job.shot, "ned_fx_layer": layer.name, "ned_fx_gpus": str(layer.gpus),
             "ned_fx_gpu_memory": layer.gpu_memory if layer.gpus else "0",
             **({"ned_fx_consent": job.metadata["consent"]} if job.metadata.get("consent") else {})}
    for i, (k, v) in enumerate(extra.items()):
        info[f"ExtraInfoKeyValue{i}"] = f"{k}={v}"
    return info


def plugin_info(layer: Layer) -> dict[str, str]:
    """The CommandLine plugin info of one layer: the program and its arguments with the chunk tokens."""
    argv = layer.command_line(START_FRAME, END_FRAME)
    return {"Executable": argv[0], "Arguments": " ".join(quote_argument(a) for a in argv[1:]),
            "ShellExecute": "False", "SingleFramesOnly": "False"}


def _text(info: dict[str, str]) -> str:
    for k, v in info.items():
        if "\n" in v or "\r" in v:
            raise FarmError(f"Deadline info value {k} has a line break: {v!r}")
    return "".join(f"{k}={v}\n" for k, v in info.items())


def write_files(jobs, folder: str | Path) -> dict[str, list[tuple[Path, Path]]]:
    """Write ``SHOT_LAYER.job`` / ``SHOT_LAYER.plugin`` for every layer and ``submit.sh`` (one
    ``deadlinecommand -SubmitMultipleJobs -dependent`` line per shot) into ``folder``, atomically.

    Returns:
        job name -> its ``(job info, plugin info)`` file pairs in submission order.
    """
    from ..media import atomic_output

    folder = Path(os.path.abspath(folder))
    written: dict[str, list[tuple[Path, Path]]] = {}
    texts = [(job, layer, _text(job_info(job, layer)), _text(plugin_info(layer)))    # every check before a write
             for job in jobs for layer in job.layers]
    folder.mkdir(parents=True, exist_ok=True)
    for job, layer, job_text, plugin_text in texts:
        stem = folder / f"{job.name}_{layer.name}"
        ji, pi = stem.with_name(stem.name + ".job"), stem.with_name(stem.name + ".plugin")
        with atomic_output(ji) as tmp:
            tmp.write_text(job_text, encoding="utf-8")
        with atomic_output(pi) as tmp:
            tmp.write_text(plugin_text, encoding="utf-8")
        written.setdefault(job.name, []).append((ji, pi))
    script = folder / "submit.sh"
    lines = ["#!/bin/sh", "# Submit the ned_fx jobs: one line per shot; -dependent chains analysis -> render -> assemble.",
             "set -e", 'DEADLINECOMMAND="${DEADLINECOMMAND:-deadlinecommand}"']
    for name, pairs in written.items():
        lines.append('"$DEADLINECOMMAND" ' + shlex.join(submit_arguments(pairs)))
    with atomic_output(script) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    os.chmod(script, 0o755)
    return written


def submit_arguments(pairs) -> list[str]:
    """``-SubmitMultipleJobs -dependent -job A.job A.plugin -job B.job B.plugin …`` for one shot."""
    args = ["-SubmitMultipleJobs", "-dependent"]
    for ji, pi in pairs:
        args += ["-job", str(ji), str(pi)]
    return args


def find_deadlinecommand() -> str | None:
    """``deadlinecommand`` on PATH, or under ``$DEADLINE_PATH``."""
    found = shutil.which("deadlinecommand")
    if found:
        return found
    base = os.environ.get("DEADLINE_PATH")
    if base:
        for name in ("deadlinecommand", "deadlinecommand.exe"):
            if (Path(base) / name).is_file():
                return str(Path(base) / name)
    return None


def submit(jobs, folder: str | Path) -> list[str]:
    """Write the files into ``folder`` and submit each shot's jobs with ``deadlinecommand``.

    Returns:
        the Deadline job ids it printed (``JobID=…``).

    Raises:
        FarmError: ``deadlinecommand`` is not found, or it refused a submission (its output is in the message).
    """
    exe = find_deadlinecommand()
    if exe is None:
        raise FarmError("deadlinecommand was not found on PATH or in $DEADLINE_PATH; install the Deadline client, "
                        "or use --dry-run and run submit.sh where it is installed")
    ids: list[str] = []
    for name, pairs in write_files(jobs, folder).items():
        result = subprocess.run([exe, *submit_arguments(pairs)], capture_output=True, text=True)
        text = (result.stdout or "") + (result.stderr or "")
        if result.returncode != 0 or ("Result=Success" not in text and "JobID=" not in text):
            raise FarmError(f"deadlinecommand did not take the jobs of {name} (exit {result.returncode}): "
                            f"{text.strip()[-800:]}")
        ids += re.findall(r"JobID=(\S+)", text)
    return ids
