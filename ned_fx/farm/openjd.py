"""Open Job Description (the job-template format of AWS Deadline Cloud): a shot list as one job template.

The template (``specificationVersion: jobtemplate-2023-09``, no extensions) holds:

* job parameters: ``ShotList`` (PATH, in), ``OutputRoot`` (PATH, out: every output, analysis file and frame folder
  is written under it, so it can be moved or path-mapped) and the consent reference, ``Consent`` (the shots share
  one; else one ``Consent_SHOT`` per shot). PATH defaults are relative to the template's folder (OpenJD's rule);
* per shot, the steps of the neutral job model (:mod:`ned_fx.farm.jobs`): ``SHOT analysis`` (one task),
  ``SHOT render`` whose task parameter space is the chunks (``First`` and ``Last``, two INT lists zipped by
  ``combination: (First, Last)``) and which depends on the analysis, and for a movie ``SHOT assemble``
  depending on the render; every task runs ``ned-fx farm task`` (:mod:`ned_fx.farm.task`);
* ``report``, after every shot: ``ned-fx batch SHOTLIST --from-farm --output-root ROOT --report
  ROOT/BATCH_report.json`` reads the farm run's outputs back into a batch report.

GPUs, cores and memory are host requirements (``amount.worker.gpu``, ``amount.worker.gpu.memory`` in MiB,
``amount.worker.vcpu``, ``amount.worker.memory`` in MiB). ``openjd check`` accepts it, ``openjd run`` runs it on
this machine, ``deadline bundle submit`` sends a folder holding it as ``template.yaml`` to a Deadline Cloud queue.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from .jobs import FarmError, Job, Layer

SPEC = "jobtemplate-2023-09"
FIRST_PARAM, LAST_PARAM = "First", "Last"
ROOT = "{{Param.OutputRoot}}"
_UNITS = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}


def output_root(jobs) -> str:
    """The folder every job's outputs lie under (the common folder of the outputs' folders)."""
    folders = [os.path.dirname(p) for job in jobs for layer in job.layers for p in (*layer.outputs, job.output)]
    try:
        return os.path.commonpath(folders)
    except ValueError:
        raise FarmError("the outputs are on different drives: Open Job Description needs one output root; "
                        "split the shot list by drive") from None


def reroot(path: str, old_root: str, new_root: str) -> str:
    """``path`` under ``old_root`` moved to the same place under ``new_root`` (other paths are kept)."""
    rel = os.path.relpath(path, old_root)
    return path if rel.startswith(os.pardir) else os.path.join(new_root, rel)


def parameter_values(jobs, shotlist_path: str | os.PathLike) -> dict[str, str]:
    """The values of the PATH parameters for this shot list: ``{"ShotList": …, "OutputRoot": …}`` (absolute)."""
    return {"ShotList": os.path.abspath(shotlist_path), "OutputRoot": output_root(jobs)}


def _default(path: str, here: str) -> str | None:
    """A PATH default, relative to the template's folder (OpenJD's rule), or None where the path is not inside that
    folder (OpenJD refuses defaults that walk up): the value is then given at submission (``-p NAME=VALUE``)."""
    try:
        rel = os.path.relpath(path, here)
    except ValueError:
        return None
    return None if rel == os.pardir or rel.startswith(os.pardir + os.sep) else Path(rel).as_posix()


def _mib(text: str) -> int:
    return max(1, math.ceil(float(text[:-1]) * _UNITS[text[-1].lower()]))


def _param_name(shot: str) -> str:
    return "Consent_" + re.sub(r"[^A-Za-z0-9_]", "_", shot)[:50]


def template(jobs, shotlist_path: str | os.PathLike, template_path: str | os.PathLike) -> dict:
    """The job template of a shot list's jobs (as a dict ready for YAML).

    Args:
        jobs: :func:`~ned_fx.farm.jobs.build_jobs` of the shot list; shotlist_path: the shot list (the report
            step reads it); template_path: where the template will be written (PATH defaults are relative to it).

    Raises:
        FarmError: a name OpenJD cannot hold, a path with ``{{``, outputs on several drives.
    """
    if not jobs:
        raise FarmError("the shot list has no shots to put in a job template")
    here = os.path.dirname(os.path.abspath(template_path))
    root = output_root(jobs)
    consents = {job.shot: job.metadata.get("consent", "") for job in jobs}
    shared = len(set(consents.values())) == 1

    params = [
        {"name": "ShotList", "type": "PATH", "objectType": "FILE", "dataFlow": "IN",
         "description": "The shot list (read by the report step)."},
        {"name": "OutputRoot", "type": "PATH", "objectType": "DIRECTORY", "dataFlow": "OUT",
         "description": "Every output, analysis file and frame folder of the shots is written under this folder."},
    ]
    for param, path in zip(params, parameter_values(jobs, shotlist_path).values()):
        default = _default(path, here)
        if default is not None:
            param["default"] = default
    from ..provenance.consent import MAX_CONSENT

    consent_desc = ("The consent reference of the release the actor signed: every frame carries it in its "
                    "provenance and every audit line names it (empty: none).")
    if shared:
        params.append({"name": "Consent", "type": "STRING", "default": next(iter(consents.values())),
                       "maxLength": MAX_CONSENT, "description": consent_desc})
    else:
        if len({_param_name(shot) for shot in consents}) < len(consents):
            raise FarmError("two shot names differ only in characters a job parameter cannot hold ("
                            + ", ".join(consents) + "); rename one")
        for shot, value in consents.items():
            params.append({"name": _param_name(shot), "type": "STRING", "default": value, "maxLength": MAX_CONSENT,
                           "description": f"Shot {shot}: " + consent_desc})
    steps, last_steps = [], []
    for job in jobs:
        consent_param = "{{Param.Consent}}" if shared else "{{Param.%s}}" % _param_name(job.shot)
        names = {}
        for layer in job.layers:
            step = _step(job, layer, root, consent_param, names)
            names[layer.name] = step["name"]
            steps.append(step)
        last_steps.append(names[job.layers[-1].name])
    exe = list(jobs[0].layers[0].command[:jobs[0].layers[0].command.index("farm")])
    report = f"{ROOT}/{jobs[0].batch}_report.json"
    steps.append({"name": "report", "description": "Read the farm run's outputs back into a batch report.",
                  "dependencies": [{"dependsOn": n} for n in last_steps],
                  "script": {"actions": {"onRun": {"command": exe[0], "args": [
                      *exe[1:], "batch", "{{Param.ShotList}}", "--from-farm", f"--output-root={ROOT}",
                      f"--report={report}"]}}}})
    _check_names(jobs[0].batch, steps)
    return {"specificationVersion": SPEC, "name": f"ned_fx {jobs[0].batch}",
            "description": f"ned_fx: {len(jobs)} shot(s) of {jobs[0].batch}: per shot an analysis, render chunks "
                           f"and for movies an assemble step; then a report.",
            "parameterDefinitions": params, "steps": steps}


def _step(job: Job, layer: Layer, root: str, consent_param: str, names: dict) -> dict:
    argv = layer.command_line("{{Task.Param.%s}}" % FIRST_PARAM, "{{Task.Param.%s}}" % LAST_PARAM) \
        if layer.name == "render" else layer.command
    for arg in layer.command:
        if "{{" in arg or "}}" in arg:
            raise FarmError(f"shot {job.shot}: {arg!r} holds '{{{{' or '}}}}', which Open Job Description reads as "
                            f"a format string; rename the file")
    out_paths = sorted({p for l in job.layers for p in (*l.outputs, *_analysis_args(l))} | {job.output},
                       key=len, reverse=True)
    args = []
    for arg in argv:
        if arg.startswith("--consent="):
            arg = f"--consent={consent_param}"
        for p in out_paths:
            if p in arg:
                arg = arg.replace(p, ROOT + "/" + Path(os.path.relpath(p, root)).as_posix())
                break
        args.append(arg)
    if layer.name in ("analysis", "render") and not any(a.startswith("--consent=") for a in args):
        # a shot without a reference still takes the job's parameter (empty: none)
        args.insert(args.index("-q") if "-q" in args else len(args), f"--consent={consent_param}")
    step = {"name": f"{job.shot} {layer.name}",
            "description": f"ned_fx {layer.name} of shot {job.shot}: {job.metadata.get('instruction', '')}"}
    if layer.depends_on:
        step["dependencies"] = [{"dependsOn": names[d]} for d in layer.depends_on]
    if layer.name == "render":
        step["parameterSpace"] = {
            "taskParameterDefinitions": [
                {"name": FIRST_PARAM, "type": "INT", "range": [t.first for t in layer.tasks]},
                {"name": LAST_PARAM, "type": "INT", "range": [t.last for t in layer.tasks]}],
            "combination": f"({FIRST_PARAM}, {LAST_PARAM})"}
    amounts = [{"name": "amount.worker.vcpu", "min": max(1, math.ceil(layer.cores))},
               {"name": "amount.worker.memory", "min": _mib(layer.memory)}]
    if layer.gpus > 0:
        amounts += [{"name": "amount.worker.gpu", "min": layer.gpus},
                    {"name": "amount.worker.gpu.memory", "min": _mib(layer.gpu_memory)}]
    step["hostRequirements"] = {"amounts": amounts}
    step["script"] = {"actions": {"onRun": {"command": args[0], "args": args[1:]}}}
    return step


def _analysis_args(layer: Layer) -> list[str]:
    return [a.split("=", 1)[1] for a in layer.command if a.startswith("--analysis=")]


def _check_names(batch: str, steps: list[dict]) -> None:
    if len(f"ned_fx {batch}") > 128:
        raise FarmError(f"the batch name {batch!r} is too long for an Open Job Description job (128 characters)")
    for step in steps:
        if len(step["name"]) > 64:
            raise FarmError(f"the step name {step['name']!r} is longer than Open Job Description allows (64): "
                            f"give the shot a shorter name")


def write_template(jobs, shotlist_path: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write the job template (YAML, or JSON for a ``.json`` path) atomically. Returns its absolute path."""
    import json

    import yaml

    from ..media import atomic_output

    path = Path(os.path.abspath(path))
    doc = template(jobs, shotlist_path, path)
    text = json.dumps(doc, indent=2) if path.suffix.lower() == ".json" else \
        yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
