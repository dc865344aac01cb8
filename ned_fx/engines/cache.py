"""The engine cache's three jobs: build what is stale, list what is there, verify it against PyTorch.

``ned-fx engines build|list|verify`` and the recipes in ``engines/`` are thin wrappers over these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from .config import EnginesConfig
from .errors import BackendUnavailableError, EngineBuildError
from .specs import check_names, get_spec, source_hash, weights_hash

Say = Callable[[str], None]


@dataclass(frozen=True)
class BuildStep:
    """What the build did for one artefact.

    Attributes:
        engine: the engine; kind: ``"onnx"`` or ``"tensorrt"``; precision: as built (``""`` for ONNX);
        action: ``"built"`` or ``"up to date"``; path: the file; seconds: time spent; why: why it was
        (re)built, or parity numbers.
    """

    engine: str
    kind: str
    precision: str
    action: str
    path: str
    seconds: float
    why: str = ""


def _onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def build_engines(names=None, config: EnginesConfig | None = None, onnx_only: bool = False, force: bool = False,
                  device: str = "cuda:0", say: Say | None = None, weights=None) -> list[BuildStep]:
    """Bring the cache up to date: export each engine to ONNX (checked against PyTorch in onnxruntime), then
    build its TensorRT engine for this GPU, only where the manifest says the artefact is stale.

    Args:
        names: engines (default all); config: precision, batch sizes, cache folder, opset, workspace;
        onnx_only: stop after the exports (machines without TensorRT); force: rebuild even what is fresh;
        device: the CUDA device whose GPU the TensorRT engines are built for; say: progress lines;
        weights: ``{engine: weights file}`` for engines that take one (``{"neural_renderer": "actor.ckpt"}``):
            the export is made from it and the manifest records its hash, so another file makes it stale.

    Returns:
        one :class:`BuildStep` per artefact.

    Raises:
        InvalidParameterError: unknown engine names, weights for an engine that takes none.
        InputNotFoundError, UnreadableMediaError: a weights file cannot be read.
        BackendUnavailableError: TensorRT or a CUDA device is missing and ``onnx_only`` is not set (checked
            before any work).
        EngineBuildError: an export does not match PyTorch, or TensorRT could not build an engine.
        WeightsMissingError: the tracker's weights are not installed.
    """
    import time

    from . import manifest as M
    from .onnx_export import export_onnx, onnx_parity

    config = config or EnginesConfig()
    names = check_names(names)
    specs = {name: get_spec(name, weights) for name in names}        # bad weights fail before any work
    say = say or (lambda line: None)
    env = None
    if not onnx_only:
        env = M.environment(device)
        if env.tensorrt is None:
            from .trt import INSTALL_HINT

            raise BackendUnavailableError(f"{INSTALL_HINT}; or export ONNX only with --onnx-only")
        if env.compute_capability is None:
            raise BackendUnavailableError(f"TensorRT builds for a GPU and {device} is not a CUDA device here; "
                                          f"export ONNX only with --onnx-only")
    folder = config.cache_dir()
    steps: list[BuildStep] = []
    with M.locked(folder):
        for name in names:
            spec = specs[name]
            fingerprint, source = weights_hash(spec), source_hash(spec)
            man = M.read_manifest(folder, strict=False)
            problems = ["--force"] if force else M.onnx_problems(folder, man, spec, fingerprint, source, config.opset)
            path = M.onnx_path(folder, name)
            if problems:
                say(f"{name}: exporting ONNX ({'; '.join(problems)})")
                started = time.perf_counter()
                export_onnx(name, path, opset=config.opset, weights=weights)
                parity = {}
                if _onnxruntime_available():
                    parity = onnx_parity(name, path, batch=3, seed=1, weights=weights)
                    tol = spec.tolerance.get("fp32", {})
                    bad = {k: v for k, v in parity.items() if not v <= tol.get(k, float("inf"))}
                    if bad:
                        path.unlink(missing_ok=True)
                        raise EngineBuildError(f"the ONNX export of {name} does not match PyTorch in onnxruntime: "
                                               + ", ".join(f"{k} max |diff| {v:.3g} > {tol[k]:g}"
                                                           for k, v in bad.items()))
                rec = M.OnnxRecord(name, str(path.relative_to(folder)), M.file_sha256(path), config.opset, fingerprint,
                                   source, __version__, M.now(), parity)
                man = M.record(folder, onnx=rec)
                steps.append(BuildStep(name, "onnx", "", "built", str(path), time.perf_counter() - started,
                                       "; ".join(problems) + (" | parity " + ", ".join(
                                           f"{k} {v:.1e}" for k, v in parity.items()) if parity else "")))
            else:
                steps.append(BuildStep(name, "onnx", "", "up to date", str(path), 0.0))
            if onnx_only:
                continue
            precision = spec.build_precision(config.precision)
            trt_problems = ["--force"] if force else M.trt_problems(folder, man, spec, precision, env, config.batches)
            engine_file = M.trt_path(folder, name, precision, env)
            if not trt_problems:
                steps.append(BuildStep(name, "tensorrt", precision, "up to date", str(engine_file), 0.0))
                continue
            from .trt import build_trt

            say(f"{name}: building TensorRT {precision} for {env.gpu} ({'; '.join(trt_problems)})")
            result = build_trt(spec, path, engine_file, precision, config.batches,
                               M.timing_cache_path(folder, env), config.workspace_gb)
            profiles = tuple({n: s for n, s in p.shapes.items()} for p in result.profiles)
            rec = M.TrtRecord(name, precision, str(engine_file.relative_to(folder)), M.file_sha256(engine_file),
                              man.onnx[name].sha256, env.tensorrt, env.compute_capability, env.gpu, config.batches,
                              profiles, str(M.timing_cache_path(folder, env).relative_to(folder)), M.now(),
                              round(result.seconds, 2))
            M.record(folder, trt=(M.trt_key(name, precision, env), rec))
            steps.append(BuildStep(name, "tensorrt", precision, "built", str(engine_file), result.seconds,
                                   "; ".join(trt_problems)))
    return steps


@dataclass(frozen=True)
class Listing:
    """One artefact of the cache and whether this machine can use it.

    Attributes:
        engine, kind (``onnx`` / ``tensorrt``), precision, target (GPU and TensorRT it was built for),
        status (``ok`` / ``stale`` / ``missing`` / ``other machine``), detail (the reasons), path.
    """

    engine: str
    kind: str
    precision: str
    target: str
    status: str
    detail: str
    path: str


def list_engines(config: EnginesConfig | None = None, device: str = "cuda:0", weights=None) -> list[Listing]:
    """Every engine's ONNX export and TensorRT builds in the cache, with their status on this machine.

    Args:
        weights: ``{engine: weights file}``: the files the exports are judged against (an export made from
            another checkpoint is stale).

    Raises:
        StaleEngineError: the manifest is unreadable.
        InvalidParameterError, InputNotFoundError, UnreadableMediaError: a bad weights file.
    """
    from . import manifest as M
    from .specs import ENGINE_NAMES

    config = config or EnginesConfig()
    folder = config.cache_dir()
    man = M.read_manifest(folder)
    env = M.environment(device)
    specs = {name: get_spec(name, weights) for name in ENGINE_NAMES}
    rows = []
    for name in ENGINE_NAMES:
        spec = specs[name]
        try:
            problems = M.onnx_problems(folder, man, spec, weights_hash(spec), source_hash(spec), config.opset)
        except Exception as exc:          # missing weights: say so in the listing
            problems = [str(exc)]
        if spec.takes_weights and name not in (weights or {}) and \
                "the weights changed since the export" in problems:
            problems.append(f"compared with the stand-in weights: give {spec.takes_weights} to judge the export "
                            f"against it (--checkpoint)")
        rec = man.onnx.get(name)
        status = "missing" if rec is None else ("ok" if not problems else "stale")
        rows.append(Listing(name, "onnx", "", f"opset {rec.opset}" if rec else "", status,
                            "; ".join(problems) if rec else "run `ned-fx engines build --onnx-only`",
                            str(folder / rec.file) if rec else ""))
        for key, trt in sorted(man.tensorrt.items()):
            if trt.engine != name:
                continue
            mine = env.tensorrt == trt.tensorrt and env.compute_capability == trt.compute_capability
            detail = M.trt_problems(folder, man, spec, trt.precision, env, None, onnx_fresh=not problems) \
                if mine else []
            status = ("ok" if not detail else "stale") if mine else "other machine"
            rows.append(Listing(name, "tensorrt", trt.precision,
                                f"{trt.gpu} sm_{trt.compute_capability.replace('.', '')} TensorRT {trt.tensorrt} "
                                f"batches {','.join(map(str, trt.batches))}", status, "; ".join(detail),
                                str(folder / trt.file)))
    return rows


@dataclass(frozen=True)
class Check:
    """One output of one engine on one back end against PyTorch float32 (CPU) on the same real feed.

    Attributes:
        engine, output, backend, precision; max_abs, rel_l2: the errors; tolerance: the spec's bound
        (max abs) for that precision; ok: within it; batch: the feed's batch; units: what the output holds.
    """

    engine: str
    output: str
    backend: str
    precision: str
    max_abs: float
    rel_l2: float
    tolerance: float
    ok: bool
    batch: int
    units: str = ""


def verify_engines(feeds: dict[str, dict[str, np.ndarray]], backend: str = "auto", config: EnginesConfig | None = None,
                   device: str = "auto", precision: str | None = None, weights=None) -> list[Check]:
    """Run each engine on ``backend`` and in PyTorch (float32, CPU) on the same feeds; the error per output.

    Args:
        feeds: ``{engine: {input: array}}``, e.g. from :func:`~ned_fx.engines.inputs.real_feeds`.
        backend: a back end name, or ``auto``: ``tensorrt`` where TensorRT and fresh engines are here, else
            ``onnxruntime`` on the cache's ONNX exports.
        config: cache folder, precision and batch sizes; device: for the GPU back ends;
        precision: overrides ``config.precision``;
        weights: ``{engine: weights file}`` for engines that take one (the PyTorch reference's and the torch
            back ends' weights).

    Raises:
        BackendUnavailableError, StaleEngineError: the back end cannot run here / its engines are stale.
        InputNotFoundError: (onnxruntime) an engine was not exported yet.
    """
    import dataclasses

    from .onnx_export import compare_outputs, torch_reference
    from .runners import make_runner, resolve_device, tensorrt_ready

    config = config or EnginesConfig()
    if precision:
        config = dataclasses.replace(config, precision=precision)
    if backend == "auto":
        dev = resolve_device(device)
        backend = "tensorrt" if dev.startswith("cuda") and tensorrt_ready(dev, config, tuple(feeds))[0] \
            else "onnxruntime"
    checks = []
    for name, feed in feeds.items():
        spec = get_spec(name, weights)
        run_precision = "fp32" if backend in ("onnxruntime", "torch-cpu") else spec.build_precision(config.precision)
        runner = make_runner(name, backend, device, run_precision, config, weights=weights)
        with runner:
            got = runner.infer(feed)
            got = {k: v.detach().float().cpu().numpy() for k, v in got.items()}
        ref = torch_reference(spec, feed)
        tol = spec.tolerance.get(runner.precision, spec.tolerance.get("fp32", {}))
        batch = int(next(iter(feed.values())).shape[0])
        units = {t.name: t.doc for t in spec.outputs}
        for out, stats in compare_outputs(got, ref).items():
            bound = float(tol.get(out, float("inf")))
            checks.append(Check(name, out, runner.backend, runner.precision, stats.max_abs, stats.rel_l2, bound,
                                stats.within(bound), batch, units.get(out, "")))
    return checks


def default_verify_input(folder: Path) -> Path:
    """The embedded demo face (scikit-image's astronaut) written as a PNG into ``folder`` (no user files)."""
    from ..media import write_image

    from skimage import data

    return write_image(Path(folder) / "astronaut.png", data.astronaut())
