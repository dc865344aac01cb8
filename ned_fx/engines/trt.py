"""TensorRT: the build, as small composable steps (like Polygraphy's loaders), and the runner.

Build::

    bundle = network_from_onnx("onnx/face_mesh.onnx")                  # builder + network + parser
    config = build_config(bundle, "fp16", profiles_for(spec, (1, 8)), load_timing_cache(cache_file))
    data = build_engine(bundle, config)                                # serialised engine (bytes)
    save_engine(data, "tensorrt/face_mesh.fp16.sm90.trt10.8.0.engine")
    save_timing_cache(config, cache_file)

:func:`build_trt` runs those steps for one engine. Run: :class:`TensorRTRunner` deserialises an engine and runs
it with its inputs and outputs in **torch-allocated device buffers** on the caller's CUDA stream
(``set_tensor_address`` + ``execute_async_v3``): no pycuda, no extra copies, and frames stay where the rest of
the GPU pipeline (torch) has them. TensorRT is imported only when one of these is called; without it they raise
:class:`~ned_fx.engines.errors.BackendUnavailableError` with the install line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import InvalidParameterError, NedFxError, OutputWriteError
from .errors import BackendUnavailableError, EngineBuildError, StaleEngineError
from .runners import Runner
from .specs import EngineSpec

INSTALL_HINT = ("TensorRT is not installed: on a Linux machine with an NVIDIA GPU and the CUDA build of torch, "
                "`.venv/bin/pip install tensorrt` (TensorRT 10 for CUDA 12)")
_LOGGER = []


def _trt():
    try:
        import tensorrt
    except ImportError:
        raise BackendUnavailableError(INSTALL_HINT) from None
    return tensorrt


def trt_logger():
    """One TensorRT logger per process (warnings and errors go to stderr)."""
    trt = _trt()
    if not _LOGGER:
        _LOGGER.append(trt.Logger(trt.Logger.WARNING))
    return _LOGGER[0]


@dataclass(frozen=True)
class Profile:
    """One optimisation profile: ``{input name: (min shape, opt shape, max shape)}``."""

    shapes: Mapping[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


def profiles_for(spec: EngineSpec, batches: tuple[int, ...]) -> tuple[Profile, ...]:
    """One profile per batch size: profile k covers batches ``batches[k-1] + 1 .. batches[k]`` (tuned for
    ``batches[k]``); every other dynamic axis spans the spec's ``dims`` range.

    Raises:
        InvalidParameterError: batch sizes not increasing, or a dynamic axis without a range in the spec.
    """
    batches = tuple(int(b) for b in batches)
    if not batches or list(batches) != sorted(set(batches)) or batches[0] < 1:
        raise InvalidParameterError(f"batches must be increasing whole numbers >= 1, got {batches}")
    out = []
    for k, b in enumerate(batches):
        lo = batches[k - 1] + 1 if k else 1
        shapes = {}
        for t in spec.inputs:
            dims = []
            for d in t.shape:
                if d == "batch":
                    dims.append((lo, b, b))
                elif isinstance(d, str):
                    if d not in spec.dims:
                        raise InvalidParameterError(f"{spec.name}.{t.name} has a dynamic axis {d!r} without a "
                                                    f"profile range")
                    dims.append(tuple(int(v) for v in spec.dims[d]))
                else:
                    dims.append((int(d),) * 3)
            shapes[t.name] = tuple(tuple(x[i] for x in dims) for i in range(3))
        out.append(Profile(shapes))
    return tuple(out)


@dataclass
class NetworkBundle:
    """What :func:`network_from_onnx` loads: the builder, the parsed network and its parser (kept alive
    together: the network refers to the parser's weights)."""

    builder: object
    network: object
    parser: object
    source: Path


def network_from_onnx(path: str | Path) -> NetworkBundle:
    """Parse an ONNX file into a TensorRT network (explicit batch).

    Raises:
        BackendUnavailableError: TensorRT is not installed. EngineBuildError: the parser rejected the file.
    """
    trt = _trt()
    path = Path(path)
    builder = trt.Builder(trt_logger())
    flags = 0
    if int(str(trt.__version__).split(".")[0]) < 10:     # explicit batch is the only mode from TensorRT 10 on
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger())
    if not parser.parse_from_file(str(path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT's ONNX parser rejected {path}: {errors or 'no detail given'}")
    return NetworkBundle(builder, network, parser, path)


def build_config(bundle: NetworkBundle, precision: str, profiles: tuple[Profile, ...],
                 timing_cache: bytes | None = None, workspace_gb: float = 4.0):
    """A builder config: precision, optimisation profiles, timing cache, workspace.

    ``fp16`` enables half-precision kernels (TensorRT keeps float32 where it must); ``fp32`` also switches
    TF32 off, so the engine computes what PyTorch's float32 computes.

    Raises:
        InvalidParameterError: unknown precision.
    """
    trt = _trt()
    if precision not in ("fp16", "fp32"):
        raise InvalidParameterError(f"precision must be fp16 or fp32, got {precision!r}")
    config = bundle.builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    else:
        config.clear_flag(trt.BuilderFlag.TF32)
    for p in profiles:
        profile = bundle.builder.create_optimization_profile()
        for name, (lo, opt, hi) in p.shapes.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    cache = config.create_timing_cache(timing_cache or b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    return config


def build_engine(bundle: NetworkBundle, config) -> bytes:
    """Build and serialise the engine.

    Raises:
        EngineBuildError: the builder failed (its messages went to the log).
    """
    data = bundle.builder.build_serialized_network(bundle.network, config)
    if data is None:
        raise EngineBuildError(f"TensorRT could not build an engine from {bundle.source} (its messages are "
                               f"above)")
    return bytes(data)


def _write_atomic(path: Path, data: bytes) -> Path:
    from ..media import atomic_output

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            Path(tmp).write_bytes(data)
    except OSError as exc:
        raise OutputWriteError(f"could not write {path}: {exc.strerror or exc}") from None
    return path


def save_engine(data: bytes, path: str | Path) -> Path:
    """Write a serialised engine atomically."""
    return _write_atomic(Path(path), data)


def load_timing_cache(path: str | Path) -> bytes | None:
    """The timing cache's bytes, or None when there is none yet."""
    path = Path(path)
    return path.read_bytes() if path.is_file() else None


def save_timing_cache(config, path: str | Path) -> Path:
    """Write the config's (updated) timing cache atomically, for the next build on this GPU."""
    return _write_atomic(Path(path), bytes(config.get_timing_cache().serialize()))


@dataclass(frozen=True)
class BuildResult:
    """One TensorRT build: the engine file, the profiles, the seconds it took."""

    path: Path
    profiles: tuple[Profile, ...]
    seconds: float


def build_trt(spec: EngineSpec, onnx_file: str | Path, engine_file: str | Path, precision: str,
              batches: tuple[int, ...], timing_cache_file: str | Path | None = None,
              workspace_gb: float = 4.0) -> BuildResult:
    """The whole build of one engine: parse, configure, build, save (and update the timing cache).

    Raises:
        BackendUnavailableError: TensorRT is not installed. EngineBuildError: parse or build failed.
        OutputWriteError: a file could not be written (nothing half-written is left).
    """
    started = time.perf_counter()
    bundle = network_from_onnx(onnx_file)
    profiles = profiles_for(spec, batches)
    config = build_config(bundle, precision, profiles,
                          load_timing_cache(timing_cache_file) if timing_cache_file else None, workspace_gb)
    data = build_engine(bundle, config)
    path = save_engine(data, engine_file)
    if timing_cache_file:
        save_timing_cache(config, timing_cache_file)
    return BuildResult(path, profiles, time.perf_counter() - started)


# ---- the runner ----------------------------------------------------------------------------------------------------

def _torch_dtype(trt_dtype):
    import torch

    trt = _trt()
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.INT32: torch.int32,
             trt.DataType.INT8: torch.int8, trt.DataType.BOOL: torch.bool}
    for name, dtype in (("INT64", torch.int64), ("BF16", torch.bfloat16), ("UINT8", torch.uint8)):
        if hasattr(trt.DataType, name):
            table[getattr(trt.DataType, name)] = dtype
    return table[trt_dtype]


class TensorRTRunner(Runner):
    """A TensorRT engine on one CUDA device, I/O in torch tensors on the caller's stream.

    Args:
        spec: the engine's spec; engine_file: the serialised engine (from the cache: use :meth:`from_cache`,
            which refuses stale engines); device: ``cuda:N``; precision: what it was built in (recorded);
        stream: a ``torch.cuda.Stream`` (default: the current stream at each call).
    """

    backend = "tensorrt"

    def __init__(self, spec: EngineSpec, engine_file: str | Path, device: str = "cuda:0", precision: str = "fp16",
                 stream=None):
        super().__init__(spec, device, precision)
        self.path, self.stream = Path(engine_file), stream
        self.engine = self.context = self.runtime = None
        self._profile = None

    @classmethod
    def from_cache(cls, spec: EngineSpec, config, device: str, precision: str, stream=None) -> "TensorRTRunner":
        """The runner of the cache's fresh engine for this GPU and TensorRT version.

        Raises:
            BackendUnavailableError: TensorRT is not installed. StaleEngineError: no fresh engine (why, and
                the build command, in the message).
        """
        from . import manifest as M

        _trt()
        env = M.environment(device)
        built = spec.build_precision(precision)
        path, _ = M.require_fresh_trt(config.cache_dir(), spec, built, env, config.batches)
        return cls(spec, path, device, built, stream)

    def _activate(self) -> None:
        import torch

        trt = _trt()
        with torch.cuda.device(torch.device(self.device)):
            self.runtime = trt.Runtime(trt_logger())
            self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                raise StaleEngineError(f"TensorRT could not load {self.path} (built by another TensorRT version "
                                       f"or for another GPU?); rebuild it with `ned-fx engines build "
                                       f"{self.spec.name} --force`")
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        missing = [n for n in self.spec.input_names if n not in self.inputs]
        if missing or [n for n in self.spec.output_names if n not in self.outputs]:
            raise StaleEngineError(f"{self.path} has inputs {self.inputs} and outputs {self.outputs}, the spec of "
                                   f"{self.spec.name} wants {self.spec.input_names} -> {self.spec.output_names}; "
                                   f"rebuild it")
        self.dtypes = {n: _torch_dtype(self.engine.get_tensor_dtype(n)) for n in names}
        self.ranges = [{n: self.engine.get_tensor_profile_shape(n, k) for n in self.inputs}
                       for k in range(self.engine.num_optimization_profiles)]
        self._profile = None

    def _pick_profile(self, shapes: Mapping[str, tuple[int, ...]]) -> int:
        for k, ranges in enumerate(self.ranges):
            if all(all(lo <= s <= hi for s, lo, hi in zip(shapes[n], ranges[n][0], ranges[n][2]))
                   for n in self.inputs):
                return k
        spans = "; ".join(", ".join(f"{n} {tuple(r[n][0])}..{tuple(r[n][2])}" for n in self.inputs)
                          for r in self.ranges)
        raise InvalidParameterError(f"the TensorRT engine of {self.spec.name} was built for {spans}; got "
                                    f"{', '.join(f'{n} {s}' for n, s in shapes.items())} (rebuild with other "
                                    f"--batch sizes)")

    def _infer(self, feeds: dict) -> dict:
        import torch

        batched = [t.name for t in self.spec.inputs if t.shape and t.shape[0] == "batch"]
        if batched:
            n = int(feeds[batched[0]].shape[0])
            limit = max(int(r[batched[0]][2][0]) for r in self.ranges)
            if n > limit:                               # more than the largest profile: in pieces
                parts = [self._infer({k: (v[i: i + limit] if k in batched else v) for k, v in feeds.items()})
                         for i in range(0, n, limit)]
                return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        return self._run(feeds)

    def _run(self, feeds: dict) -> dict:
        import numpy as np
        import torch

        dev = torch.device(self.device)
        stream = self.stream if self.stream is not None else torch.cuda.current_stream(dev)
        with torch.cuda.device(dev), torch.cuda.stream(stream):
            tensors = {}
            for name in self.inputs:
                x = feeds[name]
                x = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
                tensors[name] = x.to(dev, self.dtypes[name], non_blocking=True).contiguous()
            k = self._pick_profile({n: tuple(t.shape) for n, t in tensors.items()})
            if k != self._profile:
                self.context.set_optimization_profile_async(k, stream.cuda_stream)
                self._profile = k
            for name, t in tensors.items():
                self.context.set_input_shape(name, tuple(t.shape))
                self.context.set_tensor_address(name, t.data_ptr())
            outs = {}
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                if any(s < 0 for s in shape):
                    raise NedFxError(f"{self.spec.name}.{name} has a data-dependent shape {shape}; this runner "
                                     f"needs output shapes that follow from the input shapes")
                outs[name] = torch.empty(shape, dtype=self.dtypes[name], device=dev)
                self.context.set_tensor_address(name, outs[name].data_ptr())
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise NedFxError(f"TensorRT failed to run {self.spec.name} (see the log above)")
            return {n: (outs[n].float() if outs[n].is_floating_point() and outs[n].dtype != torch.float32
                        else outs[n]) for n in self.spec.output_names}

    def _deactivate(self) -> None:
        import torch

        self.context = self.engine = self.runtime = None
        self._profile = None
        torch.cuda.empty_cache()
