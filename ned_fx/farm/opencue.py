"""OpenCue: a :class:`~ned_fx.farm.jobs.Job` as a pyoutline ``Outline`` (one ``Shell`` layer per job layer, layer-on-
layer dependencies, ``gpus``/``gpu_memory`` per layer), serialised to the job spec XML (the ``cjsl`` DTD) that
``cuerun.launch`` sends to Cuebot.

pyoutline (``opencue-pyoutline``; it pulls opencue-pycue, opencue-proto and grpcio) is imported only here and only
when a spec is built. Building a spec works offline. By default the commands are written as they are (no
``pycuerun`` wrapper): nodes run ``ned-fx`` directly, Cuebot substitutes ``#FRAME_START#``/``#FRAME_END#`` per chunk,
and pyoutline's session folder is a temporary one. With ``use_pycuerun=True`` (pyoutline's own default) every
layer's command is pyoutline's wrapper ``pycuerun SESSION -e #IFRAME#-LAYER``, which loads the outline from its
session folder (pyoutline's configured ``session_dir``: it must be on storage the nodes see) and runs the layer's
command once per frame of the chunk with ``%{FRAME}`` substituted; the command carries
``--pyoutline-frame=%{FRAME}`` so that ``ned-fx farm task`` renders the chunk once (see :mod:`ned_fx.farm.task`).

Cores are written as pyoutline 1.37 writes a layer's ``cores`` argument (``<cores>%0.1f</cores>``: an override of the
service's cores) with ``threadable`` as OpenCue's CueSubmit sets it when it overrides cores (2 cores or more).
Where pyoutline is not installed, :func:`spec_xml` writes the same XML itself (``uid`` 1 on Windows, where there is
no ``os.getuid``, as pyoutline does); launching needs pyoutline and a Cuebot.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import tempfile
from pathlib import Path
from xml.etree import ElementTree as Et

from .jobs import Job, Layer, FarmError

#: OpenCue's chunk tokens.
FRAME_START, FRAME_END = "#FRAME_START#", "#FRAME_END#"
#: The job spec DTD version written.
SPEC_VERSION = "1.15"


#: pyoutline's per-frame token (substituted by pycuerun; left as is when Cuebot runs the command directly).
PYOUTLINE_FRAME = "%{FRAME}"


def layer_command(layer: Layer) -> str:
    """The shell command line of a layer, with OpenCue's chunk tokens (arguments quoted for ``/bin/sh``) and, for
    ``ned-fx farm task``, ``--pyoutline-frame=%{FRAME}`` (what lets the same command run under pycuerun)."""
    argv = list(layer.command_line(FRAME_START, FRAME_END))
    for i in range(len(argv) - 1):
        if argv[i:i + 2] == ["farm", "task"]:
            argv.insert(i + 2, f"--pyoutline-frame={PYOUTLINE_FRAME}")
            break
    return shlex.join(argv)


def threadable(cores: float) -> bool:
    """Whether a layer with these cores is threadable, as CueSubmit decides when it overrides the cores."""
    return float(cores) >= 2 or float(cores) <= 0


def have_pyoutline() -> bool:
    """Whether pyoutline can be imported."""
    import importlib

    try:
        importlib.import_module("outline.modules.shell")
    except Exception:
        return False
    return True


def to_outline(job: Job):
    """The job as a pyoutline ``Outline`` (needs pyoutline).

    Raises:
        FarmError: pyoutline is not installed (how to install it is in the message).
    """
    try:
        from outline import Outline
        from outline.modules.shell import Shell
    except Exception as exc:
        raise FarmError(f"OpenCue needs pyoutline: pip install opencue-pyoutline (with protobuf<7 kept), then try "
                        f"again ({type(exc).__name__}: {exc})") from None
    # pyoutline launches each layer over its range intersected with the outline's: the outline spans the shot
    span = max(job.layers, key=lambda layer: len(layer.tasks) * layer.chunk).frames
    # pyoutline adds every new layer to its "current" outline (one loaded or set up earlier in this process, e.g.
    # by pycuerun or a TD's script): make this outline the current one while its layers are made, then put back
    # whatever was current before
    previous = Outline.current
    ol = Outline(job.name, frame_range=span, shot=job.shot, show=job.show, user=job.user, current=True)
    try:
        made = {}
        for layer in job.layers:
            args = {"command": layer_command(layer), "range": layer.frames, "chunk": layer.chunk,
                    "cores": layer.cores, "threadable": threadable(layer.cores), "memory": layer.memory}
            if layer.gpus > 0:
                args.update(gpus=layer.gpus, gpu_memory=layer.gpu_memory)
            shell = Shell(layer.name, **args)               # added to ol, the current outline
            for key, value in (("NED_FX_SHOT", job.shot), ("NED_FX_LAYER", layer.name)):
                shell.set_env(key, value)
            for dep in layer.depends_on:
                shell.depend_all(made[dep])
            made[layer.name] = shell
    finally:
        Outline.current = previous
    return ol


@contextlib.contextmanager
def _session_folder(use_pycuerun: bool = False):
    """pyoutline writes a session folder while serialising: without pycuerun it is not needed after, so it goes to a
    temporary folder; with pycuerun the nodes load the outline from it (pyoutline's configured ``session_dir``).
    Setting up an outline also makes it pyoutline's "current" one; whatever was current before is put back."""
    import outline
    from outline import Outline

    previous = Outline.current
    try:
        with _temporary_session(outline, use_pycuerun):
            yield
    finally:
        Outline.current = previous


@contextlib.contextmanager
def _temporary_session(outline, use_pycuerun: bool):
    if use_pycuerun:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="ned-fx-opencue-") as tmp:
        old = outline.config.get("outline", "session_dir")
        outline.config.set("outline", "session_dir", tmp)
        try:
            yield
        finally:
            outline.config.set("outline", "session_dir", old)


def launcher(job: Job):
    """pyoutline's ``OutlineLauncher`` for the job (show, shot, user, priority, retries, paused)."""
    from outline.cuerun import OutlineLauncher

    return OutlineLauncher(to_outline(job), show=job.show, shot=job.shot, user=job.user, priority=job.priority,
                           pause=job.paused, maxretries=job.max_retries, nomail=True)


def spec_xml(job: Job, use_pycuerun: bool = False) -> str:
    """The OpenCue job spec XML of a job (pyoutline's ``serialize``; without pycuerun the same XML is written here
    where pyoutline is not installed).

    Raises:
        FarmError: ``use_pycuerun`` without pyoutline.
    """
    if have_pyoutline():
        with _session_folder(use_pycuerun):
            return launcher(job).serialize(use_pycuerun=use_pycuerun)
    if use_pycuerun:
        raise FarmError("the pycuerun wrapper needs pyoutline: pip install opencue-pyoutline (with protobuf<7 kept)")
    return _spec_xml_plain(job)


def _spec_xml_plain(job: Job) -> str:
    """The spec as pyoutline 1.37 writes it (``serialize_simple``), for machines without pyoutline."""
    root = Et.Element("spec")
    for tag, text in (("facility", os.environ.get("RENDER_TO") or os.environ.get("FACILITY") or "local"),
                      ("show", job.show), ("shot", job.shot), ("user", job.user), ("uid", str(_uid()))):
        Et.SubElement(root, tag).text = text
    j = Et.SubElement(root, "job", {"name": job.name})
    for tag, text in (("paused", str(job.paused)), ("priority", str(job.priority)),
                      ("maxretries", str(job.max_retries)), ("autoeat", "False")):
        Et.SubElement(j, tag).text = text
    Et.SubElement(j, "env")
    layers = Et.SubElement(j, "layers")
    depends = Et.Element("depends")
    for layer in job.layers:
        el = Et.SubElement(layers, "layer", {"name": layer.name, "type": "Render"})
        Et.SubElement(el, "cmd").text = layer_command(layer)
        Et.SubElement(el, "range").text = layer.frames
        Et.SubElement(el, "chunk").text = str(layer.chunk)
        Et.SubElement(el, "cores").text = "%0.1f" % float(layer.cores)
        Et.SubElement(el, "threadable").text = str(threadable(layer.cores))
        Et.SubElement(el, "memory").text = layer.memory
        if layer.gpus > 0:
            Et.SubElement(el, "gpus").text = str(layer.gpus)
            Et.SubElement(el, "gpu_memory").text = layer.gpu_memory
        env = Et.SubElement(el, "env")
        for key, value in (("NED_FX_SHOT", job.shot), ("NED_FX_LAYER", layer.name)):
            Et.SubElement(env, "key", {"name": key}).text = value
        Et.SubElement(Et.SubElement(el, "services"), "service").text = "shell"
        Et.SubElement(el, "outputs")
        for dep in layer.depends_on:
            d = Et.SubElement(depends, "depend", {"type": "LAYER_ON_LAYER", "anyframe": "False"})
            for tag, text in (("depjob", job.name), ("deplayer", layer.name), ("onjob", job.name),
                              ("onlayer", dep)):
                Et.SubElement(d, tag).text = text
    root.append(depends)
    return ('<?xml version="1.0"?><!DOCTYPE spec PUBLIC "SPI Cue  Specification Language" '
            f'"http://localhost:8080/spcue/dtd/cjsl-{SPEC_VERSION}.dtd">' + Et.tostring(root).decode())


def _uid() -> int:
    """The user id pyoutline writes: ``os.getuid()``, 1 on Windows (which has none)."""
    getuid = getattr(os, "getuid", None)
    return getuid() if getuid is not None else 1


def write_specs(jobs, folder: str | Path, use_pycuerun: bool = False) -> list[Path]:
    """Write each job's spec to ``FOLDER/JOB.xml`` (atomically). Returns the (absolute) paths."""
    from ..media import atomic_output

    folder = Path(os.path.abspath(folder))
    specs = [(folder / f"{job.name}.xml", spec_xml(job, use_pycuerun)) for job in jobs]   # all built before a write
    folder.mkdir(parents=True, exist_ok=True)
    for path, text in specs:
        with atomic_output(path) as tmp:
            tmp.write_text(text)
    return [path for path, _ in specs]


def submit(jobs, use_pycuerun: bool = False) -> list[str]:
    """Launch each job on the Cuebot that pyoutline/pycue is configured for (``CUEBOT_HOSTS`` or opencue.yaml).

    Returns:
        the names of the launched jobs.

    Raises:
        FarmError: pyoutline is missing or the Cuebot cannot be reached (the message says how to set it).
    """
    names = []
    for job in jobs:
        try:
            with _session_folder(use_pycuerun):
                launched = launcher(job).launch(use_pycuerun=use_pycuerun)
        except FarmError:
            raise
        except Exception as exc:
            raise FarmError(f"OpenCue did not take job {job.name}: {type(exc).__name__}: {exc}. Point pycue at your "
                            f"Cuebot (CUEBOT_HOSTS=host or ~/.config/opencue/opencue.yaml), or use --dry-run to "
                            f"write the spec") from None
        names += [getattr(getattr(j, "data", None), "name", job.name) for j in (launched or [])] or [job.name]
    return names
