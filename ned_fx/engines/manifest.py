"""The engine cache's manifest (``manifest.json``) and its staleness rules.

The cache folder (``$NED_FX_HOME/engines`` by default)::

    manifest.json                               what was built from what, for which GPU and TensorRT
    onnx/<engine>.onnx                          the exports (one per engine)
    tensorrt/<engine>.<precision>.sm<CC>.trt<version>.engine
    tensorrt/timing.sm<CC>.trt<version>.cache   TensorRT's timing cache (rebuilds take seconds, not minutes)

An ONNX export is stale when its file is missing or changed, or it was made from other weights, other code
(the modules that define the graph) or another opset. A TensorRT engine is stale when its file is missing or
changed, it was built from another export, or for another GPU compute capability, TensorRT version, precision
or set of batch sizes. Stale artefacts are rebuilt by ``ned-fx engines build`` and never loaded: a cache may
hold engines for several GPUs (a shared home folder), each keyed by compute capability and TensorRT version.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Mapping

from .errors import StaleEngineError
from .specs import EngineSpec

FORMAT = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class OnnxRecord:
    """One ONNX export.

    Attributes:
        engine: its name; file: path relative to the cache folder; sha256: of the file;
        opset: ONNX opset; weights_sha256 / source_sha256: fingerprints of the weights and of the code;
        ned_fx: the package version; created: when (ISO 8601); parity: max |onnxruntime - torch| per output
        on the spec's example feed (empty when onnxruntime was not installed).
    """

    engine: str
    file: str
    sha256: str
    opset: int
    weights_sha256: str
    source_sha256: str
    ned_fx: str = ""
    created: str = ""
    parity: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrtRecord:
    """One TensorRT engine.

    Attributes:
        engine: its name; precision: ``fp16`` / ``fp32`` as built; file: relative path; sha256: of the file;
        onnx_sha256: the export it was built from; tensorrt: TensorRT version; compute_capability: ``"9.0"``;
        gpu: the device name; batches: the profile batch sizes; profiles: per profile
        ``{input: (min, opt, max) shapes}``; timing_cache: relative path; created: when; build_seconds: how long.
    """

    engine: str
    precision: str
    file: str
    sha256: str
    onnx_sha256: str
    tensorrt: str
    compute_capability: str
    gpu: str
    batches: tuple[int, ...]
    profiles: tuple = ()
    timing_cache: str = ""
    created: str = ""
    build_seconds: float = 0.0


@dataclass(frozen=True)
class Manifest:
    """Everything in a cache folder: ``onnx`` by engine, ``tensorrt`` by :func:`trt_key`."""

    onnx: Mapping[str, OnnxRecord] = field(default_factory=dict)
    tensorrt: Mapping[str, TrtRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class Environment:
    """What this machine offers a TensorRT engine: TensorRT version, GPU compute capability and name (None
    where absent)."""

    tensorrt: str | None
    compute_capability: str | None
    gpu: str | None


def environment(device: str = "cuda:0") -> Environment:
    """The installed TensorRT's version and ``device``'s compute capability and name (None where absent)."""
    try:
        import tensorrt

        version = str(tensorrt.__version__)
    except ImportError:
        version = None
    cc = gpu = None
    try:
        import torch

        if str(device).startswith("cuda") and torch.cuda.is_available():
            dev = torch.device(device)
            major, minor = torch.cuda.get_device_capability(dev)
            cc, gpu = f"{major}.{minor}", torch.cuda.get_device_name(dev)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return Environment(version, cc, gpu)


# ---- paths and keys ------------------------------------------------------------------------------------------------

def onnx_path(folder: str | Path, engine: str) -> Path:
    return Path(folder) / "onnx" / f"{engine}.onnx"


def _tag(env: Environment) -> str:
    return f"sm{(env.compute_capability or '0.0').replace('.', '')}.trt{env.tensorrt}"


def trt_key(engine: str, precision: str, env: Environment) -> str:
    """The manifest key of an engine built on ``env``: ``engine/precision/sm90/trt10.8.0``."""
    return f"{engine}/{precision}/sm{(env.compute_capability or '0.0').replace('.', '')}/trt{env.tensorrt}"


def trt_path(folder: str | Path, engine: str, precision: str, env: Environment) -> Path:
    return Path(folder) / "tensorrt" / f"{engine}.{precision}.{_tag(env)}.engine"


def timing_cache_path(folder: str | Path, env: Environment) -> Path:
    return Path(folder) / "tensorrt" / f"timing.{_tag(env)}.cache"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# ---- reading and writing -------------------------------------------------------------------------------------------

def read_manifest(folder: str | Path, strict: bool = True) -> Manifest:
    """The manifest of a cache folder (empty when there is none).

    Args:
        strict: raise on an unreadable manifest (else start from an empty one, as a rebuild does).

    Raises:
        StaleEngineError: the manifest is unreadable or of an unknown format (strict only); the message says
            to rebuild.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return Manifest()
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, this ned_fx reads format {FORMAT}")
        onnx = {k: OnnxRecord(**v) for k, v in doc.get("onnx", {}).items()}
        trt = {}
        for k, v in doc.get("tensorrt", {}).items():
            v = dict(v, batches=tuple(v["batches"]),
                     profiles=tuple({n: tuple(tuple(s) for s in dims) for n, dims in p.items()}
                                    for p in v.get("profiles", ())))
            trt[k] = TrtRecord(**v)
        return Manifest(onnx, trt)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        if not strict:
            return Manifest()
        raise StaleEngineError(f"the engine manifest {path} is unreadable ({exc}); rebuild the cache with "
                               f"`ned-fx engines build --force`") from None


def _to_json(manifest: Manifest) -> dict:
    trt = {}
    for k, r in manifest.tensorrt.items():
        d = asdict(r)
        d["batches"] = list(r.batches)
        d["profiles"] = [{name: [list(s) for s in dims] for name, dims in p.items()} for p in r.profiles]
        trt[k] = d
    return {"format": FORMAT, "onnx": {k: {**asdict(r), "parity": dict(r.parity)} for k, r in manifest.onnx.items()},
            "tensorrt": trt}


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically."""
    from ..media import atomic_output

    path = Path(folder) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(_to_json(manifest), indent=2, sort_keys=True))
    return path


@contextlib.contextmanager
def locked(folder: str | Path):
    """An exclusive lock on the cache folder (two builds at once take turns; readers need none: every file
    is replaced atomically)."""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def record(folder: str | Path, onnx: OnnxRecord | None = None, trt: tuple[str, TrtRecord] | None = None) -> Manifest:
    """Add or replace one record (read-modify-write; call under :func:`locked`)."""
    man = read_manifest(folder, strict=False)
    if onnx is not None:
        man = replace(man, onnx={**man.onnx, onnx.engine: onnx})
    if trt is not None:
        man = replace(man, tensorrt={**man.tensorrt, trt[0]: trt[1]})
    write_manifest(folder, man)
    return man


# ---- staleness -----------------------------------------------------------------------------------------------------

def onnx_problems(folder: str | Path, manifest: Manifest, spec: EngineSpec, weights_sha256: str,
                  source_sha256: str, opset: int) -> list[str]:
    """Why the ONNX export of ``spec`` in ``folder`` cannot be used as is (empty: it is fresh)."""
    rec = manifest.onnx.get(spec.name)
    if rec is None:
        return ["not exported yet"]
    path = Path(folder) / rec.file
    problems = []
    if not path.is_file():
        return [f"{rec.file} is missing"]
    if file_sha256(path) != rec.sha256:
        problems.append(f"{rec.file} changed on disk since it was exported")
    if rec.weights_sha256 != weights_sha256:
        problems.append("the weights changed since the export")
    if rec.source_sha256 != source_sha256:
        problems.append(f"the code of {', '.join(spec.sources)} changed since the export")
    if rec.opset != opset:
        problems.append(f"exported with opset {rec.opset}, asked for {opset}")
    return problems


def trt_problems(folder: str | Path, manifest: Manifest, spec: EngineSpec, precision: str, env: Environment,
                 batches: tuple[int, ...] | None = None, onnx_fresh: bool = True) -> list[str]:
    """Why no TensorRT engine of ``spec`` in ``precision`` for this machine (``env``) can be used (empty: fresh).

    Args:
        batches: the batch sizes the caller needs (None: any).
        onnx_fresh: whether the export it must have been built from is itself fresh.
    """
    if env.tensorrt is None:
        return ["TensorRT is not installed"]
    if env.compute_capability is None:
        return ["no CUDA device"]
    rec = manifest.tensorrt.get(trt_key(spec.name, precision, env))
    if rec is None:
        others = [r for r in manifest.tensorrt.values() if r.engine == spec.name and r.precision == precision]
        if others:
            r = others[0]
            return [f"only built for compute capability {r.compute_capability} ({r.gpu}) with TensorRT "
                    f"{r.tensorrt}; this machine: {env.compute_capability} ({env.gpu}), TensorRT {env.tensorrt}"]
        return [f"no {precision} engine built yet"]
    problems = []
    # belt and braces: the key says it, the record must too
    if rec.tensorrt != env.tensorrt:
        problems.append(f"built with TensorRT {rec.tensorrt}, this machine has {env.tensorrt}")
    if rec.compute_capability != env.compute_capability:
        problems.append(f"built for compute capability {rec.compute_capability} ({rec.gpu}), this GPU is "
                        f"{env.compute_capability} ({env.gpu})")
    path = Path(folder) / rec.file
    if not path.is_file():
        return problems + [f"{rec.file} is missing"]
    if file_sha256(path) != rec.sha256:
        problems.append(f"{rec.file} changed on disk since it was built")
    onnx = manifest.onnx.get(spec.name)
    if onnx is None or onnx.sha256 != rec.onnx_sha256:
        problems.append("built from another ONNX export than the current one")
    elif not onnx_fresh:
        problems.append("its ONNX export is stale")
    if batches is not None and max(batches) > max(rec.batches):
        problems.append(f"built for batches up to {max(rec.batches)}, asked for {max(batches)}")
    return problems


def require_fresh_trt(folder: str | Path, spec: EngineSpec, precision: str, env: Environment,
                      batches: tuple[int, ...] | None = None) -> tuple[Path, TrtRecord]:
    """The engine file to load for ``spec`` on this machine, or a clear refusal.

    Raises:
        StaleEngineError: there is no fresh engine (the reasons are listed, with the command that fixes it).
    """
    man = read_manifest(folder)
    problems = trt_problems(folder, man, spec, precision, env, batches)
    if problems:
        raise StaleEngineError(f"no usable TensorRT engine for {spec.name} ({precision}) in {folder}: "
                               f"{'; '.join(problems)}. Run `ned-fx engines build {spec.name} --precision "
                               f"{precision}`")
    rec = man.tensorrt[trt_key(spec.name, precision, env)]
    return Path(folder) / rec.file, rec
