"""One runner contract for every back end, and the choice of back end.

A runner holds one engine on one device (Polygraphy's runner contract)::

    with make_runner("face_mesh", "torch-cuda-graphs", device="cuda:0") as runner:   # activate()
        out = runner.infer({"crops": crops})          # {output name: tensor on the runner's device}
                                                      # deactivate() on leaving the block

* ``activate()`` loads the module / deserialises the engine, moves it to the device, compiles or captures
  (whatever makes ``infer`` ready); ``infer(feeds)`` runs one batch (named tensors in, named tensors out,
  any batch size); ``deactivate()`` frees what activate took. Calling a runner like a module
  (``runner(crops)``) is ``infer`` with positional inputs and the outputs in the spec's order, so a runner can
  stand in for a torch module (``FaceTracker(engines={name: runner, …})``).
* Back ends: ``torch-cpu``, ``torch-cuda`` (eager), ``torch-compile`` (``torch.compile``), ``torch-cuda-graphs``
  (one CUDA graph per batch size, replayed), ``tensorrt`` (:mod:`ned_fx.engines.trt`) and ``onnxruntime``
  (the CPU parity reference).
* On CUDA, runners work on a stream: the one given, else the current stream at ``infer`` time, so the daemon
  can run several engines on its own streams. Inputs on another device are copied (non-blocking).

:func:`select_backend` picks the fastest back end this machine can run and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import InvalidParameterError
from .config import BACKENDS, EnginesConfig
from .errors import BackendUnavailableError
from .specs import EngineSpec, get_spec

#: The engines a ``tensorrt`` choice needs fresh in the cache (the manipulator runs once per shot, on torch).
PER_FRAME_ENGINES = ("face_detector", "face_mesh", "iris", "geometry_renderer")


@dataclass(frozen=True)
class BackendChoice:
    """The back end the daemon runs its engines on, and why.

    Attributes:
        name: one of :data:`~ned_fx.engines.config.BACKENDS`.
        device: ``"cpu"`` or ``"cuda:N"``.
        precision: ``"fp32"`` or ``"fp16"`` (engines that cannot run in half precision run fp32 regardless).
        reason: one line a person can read (what was found, what was missing).
    """

    name: str
    device: str
    precision: str
    reason: str

    def as_dict(self) -> dict:
        return {"backend": self.name, "device": self.device, "precision": self.precision, "reason": self.reason}


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda:0`` when CUDA is available else ``cpu``; ``cuda`` -> ``cuda:0``; checks the rest.

    Raises:
        InvalidParameterError: not ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        BackendUnavailableError: a CUDA device was asked for and is not there.
    """
    text = str(device or "auto").strip().lower()
    if text == "cpu":
        return "cpu"
    if text == "auto":                  # the tracker's rule (no GPU driver loaded: the CPU, without importing torch)
        from ..tracking.runtime import cuda_available

        return "cuda:0" if cuda_available() else "cpu"
    import torch

    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        index = int(text[5:]) if ":" in text else 0
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if index >= count:
            raise BackendUnavailableError(
                f"device {device!r} is not available: this machine has {count} CUDA device(s) "
                f"(torch {torch.__version__}); use --device cpu or auto")
        return f"cuda:{index}"
    raise InvalidParameterError(f"unknown device {device!r}; devices: auto, cpu, cuda, cuda:N")


def select_backend(device: str = "auto", config: EnginesConfig | None = None) -> BackendChoice:
    """The best back end this machine offers for the per-frame engines, and why.

    On the CPU: ``torch-cpu``. On a CUDA device, the first of ``config.preference`` that is ready:
    ``tensorrt`` when TensorRT imports and the cache holds fresh engines for this GPU and TensorRT version (the
    reason names them, or says what is missing), then ``torch-cuda-graphs``, then ``torch-cuda``.

    Args:
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        config: an :class:`EnginesConfig` (cache folder, precision, preference; defaults when None).

    Raises:
        InvalidParameterError, BackendUnavailableError: see :func:`resolve_device`.
    """
    config = config or EnginesConfig()
    dev = resolve_device(device)
    if dev == "cpu":
        import sys

        torch = sys.modules.get("torch")
        why = ("asked for the CPU" if str(device).lower() == "cpu" else
               f"no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False)"
               if torch is not None else "no CUDA device (no GPU driver loaded)")
        return BackendChoice("torch-cpu", "cpu", "fp32", why)
    import torch

    gpu = torch.cuda.get_device_name(torch.device(dev))
    notes = []
    for backend in config.preference:
        if backend == "tensorrt":
            ready, why = tensorrt_ready(dev, config)
            if ready:
                return BackendChoice("tensorrt", dev, config.precision, f"{gpu}: {why}")
            notes.append(why)
        elif backend in ("torch-cuda-graphs", "torch-cuda", "torch-compile"):
            what = {"torch-cuda-graphs": "tracker engines replay CUDA graphs, the renderer runs eager",
                    "torch-cuda": "eager PyTorch", "torch-compile": "torch.compile"}[backend]
            return BackendChoice(backend, dev, "fp32", "; ".join([f"{gpu}: {what}", *notes]))
    return BackendChoice("torch-cuda", dev, "fp32", "; ".join([f"{gpu}: eager PyTorch", *notes]))


def tensorrt_ready(device: str, config: EnginesConfig | None = None,
                   names: tuple[str, ...] = PER_FRAME_ENGINES) -> tuple[bool, str]:
    """Whether TensorRT can run ``names`` on ``device`` from the cache now: ``(ready, why)``."""
    from . import manifest as M

    config = config or EnginesConfig()
    env = M.environment(device)
    if env.tensorrt is None:
        return False, "TensorRT is not installed (pip install tensorrt; see README)"
    folder = config.cache_dir()
    try:
        man = M.read_manifest(folder)
    except Exception as exc:     # an unreadable manifest means: not ready; build says how to fix it
        return False, f"the engine manifest in {folder} is unreadable ({exc})"
    stale = []
    for name in names:
        spec = get_spec(name)
        precision = spec.build_precision(config.precision)
        problems = M.trt_problems(folder, man, spec, precision, env, config.batches)
        if problems:
            stale.append(f"{name} ({problems[0]})")
    if stale:
        return False, (f"TensorRT {env.tensorrt} has no usable engines for {env.gpu} in {folder}: "
                       f"{'; '.join(stale)} — run `ned-fx engines build`")
    return True, f"TensorRT {env.tensorrt} engines for sm_{env.compute_capability.replace('.', '')} from {folder}"


# ---- the contract ------------------------------------------------------------------------------------------------

class Runner:
    """Base of every runner: activate -> infer … -> deactivate; a context manager.

    Attributes:
        backend: the back end's name; spec: the engine's :class:`~ned_fx.engines.specs.EngineSpec`;
        device: ``"cpu"`` / ``"cuda:N"``; precision: what it really runs in.
    """

    backend = "?"

    def __init__(self, spec: EngineSpec, device: str = "cpu", precision: str = "fp32"):
        self.spec, self.device, self.precision = spec, device, precision
        self.active = False

    # -- the contract -----------------------------------------------------------------------------------------
    def activate(self) -> "Runner":
        if not self.active:
            self._activate()
            self.active = True
        return self

    def infer(self, feeds: Mapping[str, object]) -> dict:
        """Run one batch.

        Args:
            feeds: ``{input name: tensor or array}`` (every input of the spec; any batch size).

        Returns:
            ``{output name: tensor}`` on the runner's device (float32 for float outputs).

        Raises:
            InvalidParameterError: missing/unknown inputs or wrong ranks; the runner is not active.
        """
        if not self.active:
            raise InvalidParameterError(f"the {self.backend} runner of {self.spec.name} is not active; call "
                                        f"activate() or use it in a with block")
        return self._infer(self._check(feeds))

    def deactivate(self) -> None:
        if self.active:
            self._deactivate()
            self.active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def __call__(self, *inputs):
        """Module-style call: positional inputs in spec order -> outputs in spec order (one output unwrapped)."""
        if len(inputs) != len(self.spec.inputs):
            raise InvalidParameterError(f"{self.spec.name} takes {len(self.spec.inputs)} inputs "
                                        f"({', '.join(self.spec.input_names)}), got {len(inputs)}")
        out = self.infer(dict(zip(self.spec.input_names, inputs)))
        values = tuple(out[n] for n in self.spec.output_names)
        return values[0] if len(values) == 1 else values

    def describe(self) -> dict:
        return {"engine": self.spec.name, "backend": self.backend, "device": self.device,
                "precision": self.precision}

    # -- for subclasses ---------------------------------------------------------------------------------------
    def _check(self, feeds: Mapping[str, object]) -> dict:
        names = self.spec.input_names
        unknown = sorted(set(feeds) - set(names))
        missing = [n for n in names if n not in feeds]
        if unknown or missing:
            raise InvalidParameterError(f"{self.spec.name} takes inputs {', '.join(names)}; missing "
                                        f"{missing or 'none'}, unknown {unknown or 'none'}")
        for t in self.spec.inputs:
            ndim = len(getattr(feeds[t.name], "shape", ()))
            if ndim != len(t.shape):
                raise InvalidParameterError(f"{self.spec.name}.{t.name} must have shape {t.shape}, got "
                                            f"{tuple(getattr(feeds[t.name], 'shape', ()))}")
        return dict(feeds)

    def _activate(self) -> None:
        raise NotImplementedError

    def _infer(self, feeds: dict) -> dict:
        raise NotImplementedError

    def _deactivate(self) -> None:
        pass


def _torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "int32": torch.int32}[name]


class TorchRunner(Runner):
    """PyTorch on the CPU or a CUDA device: eager, ``torch.compile`` or CUDA graphs.

    Args:
        spec: the engine; device: ``"cpu"`` / ``"cuda:N"``; precision: ``"fp32"`` or ``"fp16"`` (CUDA only; the
            module runs in half precision, outputs come back float32; engines that cannot are run fp32);
        mode: ``"eager"``, ``"compile"`` or ``"cuda-graphs"``;
        batches: the batch sizes to warm up (compile) or capture (CUDA graphs); bigger batches are split;
        stream: a ``torch.cuda.Stream`` to run on (default: the current stream at each call);
        module: a ready torch module instead of ``spec.build()`` (e.g. the daemon's own);
        compile_backend / compile_mode: passed to ``torch.compile``.

    Raises:
        InvalidParameterError: unknown mode; fp16 on the CPU.
        BackendUnavailableError: CUDA graphs on the CPU, or of an engine with data-dependent shapes.
    """

    MODES = ("eager", "compile", "cuda-graphs")

    def __init__(self, spec: EngineSpec, device: str = "cpu", precision: str = "fp32", mode: str = "eager",
                 batches: tuple[int, ...] = (1, 8), stream=None, module=None, compile_backend: str = "inductor",
                 compile_mode: str | None = None):
        if mode not in self.MODES:
            raise InvalidParameterError(f"unknown torch mode {mode!r}; modes: {', '.join(self.MODES)}")
        precision = spec.build_precision(precision) if precision == "fp16" else precision
        if precision not in ("fp32", "fp16"):
            raise InvalidParameterError(f"precision must be fp32 or fp16, got {precision!r}")
        if precision == "fp16" and not device.startswith("cuda"):
            raise InvalidParameterError("fp16 needs a CUDA device; on the CPU run fp32")
        if mode == "cuda-graphs":
            if not spec.static:
                raise BackendUnavailableError(
                    f"{spec.name} has data-dependent shapes inside its graph, which CUDA graphs cannot capture; "
                    f"run it with torch-cuda or tensorrt")
            if not device.startswith("cuda"):
                raise BackendUnavailableError("CUDA graphs need a CUDA device; on the CPU use torch-cpu")
        super().__init__(spec, device, precision)
        self.mode, self.batches, self.stream = mode, tuple(sorted(batches)), stream
        self.compile_backend, self.compile_mode = compile_backend, compile_mode
        self.backend = {"eager": "torch-cuda" if device.startswith("cuda") else "torch-cpu",
                        "compile": "torch-compile", "cuda-graphs": "torch-cuda-graphs"}[mode]
        self._given = module
        self.module = None
        self._graphs: dict[int, tuple] = {}

    def _activate(self) -> None:
        import torch

        module = self._given if self._given is not None else self.spec.build()
        module = module.to(torch.device(self.device)).eval()
        if self.precision == "fp16":
            module = module.half()
        self.module = module
        if self.mode == "compile":
            self._call = torch.compile(module, backend=self.compile_backend, mode=self.compile_mode)
            for b in self.batches:           # compile now, not on the first frame
                self._run(self._example(b))
        else:
            self._call = module
        if self.mode == "cuda-graphs":
            for b in self.batches:
                self._capture(b)

    def _example(self, batch: int) -> dict:
        import torch

        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device)
                for k, v in self.spec.example(batch, 0).items()}

    def _prepare(self, feeds: dict) -> list:
        """Inputs in spec order, on the device, in the precision the module runs in."""
        import torch

        dev = torch.device(self.device)
        out = []
        for t in self.spec.inputs:
            x = feeds[t.name]
            x = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
            want = _torch_dtype(t.dtype)
            if want.is_floating_point and self.precision == "fp16":
                want = torch.float16
            out.append(x.to(dev, want, non_blocking=True))
        return out

    def _outputs(self, outs) -> dict:
        import torch

        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        return {t.name: (o.float() if o.is_floating_point() and o.dtype != torch.float32 else o)
                for t, o in zip(self.spec.outputs, outs)}

    def _run(self, feeds: dict) -> dict:
        import torch

        with torch.inference_mode():
            return self._outputs(self._call(*self._prepare(feeds)))

    def _stream_ctx(self):
        import contextlib

        import torch

        if self.device.startswith("cuda") and self.stream is not None:
            return torch.cuda.stream(self.stream)
        return contextlib.nullcontext()

    def _infer(self, feeds: dict) -> dict:
        with self._stream_ctx():
            if self.mode != "cuda-graphs":
                return self._run(feeds)
            return self._replay(feeds)

    # -- CUDA graphs ------------------------------------------------------------------------------------------
    def _capture(self, batch: int) -> None:
        import torch

        dev = torch.device(self.device)
        static_in = self._prepare(self._example(batch))
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):                     # warm up (cuDNN autotuning, lazy init) off the graph
                self.module(*static_in)
        torch.cuda.current_stream(dev).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            static_out = self.module(*static_in)
        static_out = static_out if isinstance(static_out, (tuple, list)) else (static_out,)
        self._graphs[batch] = (graph, static_in, tuple(static_out))

    def _replay(self, feeds: dict) -> dict:
        import torch

        args = self._prepare(feeds)
        batched = [bool(t.shape) and t.shape[0] == "batch" for t in self.spec.inputs]
        n = int(next(a for a, b in zip(args, batched) if b).shape[0])
        biggest = self.batches[-1]
        if n > biggest:                            # split into captured sizes
            parts = [self._replay({t.name: a[i: i + biggest] if b else a
                                   for t, a, b in zip(self.spec.inputs, args, batched)})
                     for i in range(0, n, biggest)]
            return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        batch = next(b for b in self.batches if b >= n)
        graph, static_in, static_out = self._graphs[batch]
        for t, src, dst, b in zip(self.spec.inputs, args, static_in, batched):
            fixed = tuple(dst.shape[1:]) if b else tuple(dst.shape)
            if (tuple(src.shape[1:]) if b else tuple(src.shape)) != fixed:
                raise InvalidParameterError(
                    f"the CUDA graph of {self.spec.name} was captured for {t.name} of shape "
                    f"{('(batch, ' + ', '.join(map(str, fixed)) + ')') if b else fixed}, got {tuple(src.shape)}")
            (dst[:n] if b else dst).copy_(src, non_blocking=True)
        graph.replay()
        # the graph's outputs are overwritten by the next replay: hand out copies
        return self._outputs(tuple(o[:n].clone() for o in static_out))

    def _deactivate(self) -> None:
        import torch

        self._graphs.clear()
        self.module = self._call = None
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


class OnnxRuntimeRunner(Runner):
    """An exported ``.onnx`` file in onnxruntime (CPU by default): the parity reference where no GPU is.

    Args:
        spec: the engine; path: its ``.onnx`` file; providers: onnxruntime execution providers.

    Raises:
        BackendUnavailableError: onnxruntime is not installed.
    """

    backend = "onnxruntime"

    def __init__(self, spec: EngineSpec, path: str | Path, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                 threads: int = 0):
        super().__init__(spec, "cpu", "fp32")
        self.path, self.providers, self.threads = Path(path), tuple(providers), int(threads)
        self.session = None

    def _activate(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailableError("onnxruntime is not installed (pip install onnxruntime, or "
                                          "install/setup.sh --test)") from None
        from ..errors import InputNotFoundError

        if not self.path.is_file():
            raise InputNotFoundError(f"{self.path} does not exist; export it first (ned-fx engines build "
                                     f"--onnx-only)")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.threads > 0:            # e.g. the cores ned_fx was given (ned_fx.threads), not every core
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(self.path), options, providers=list(self.providers))

    def infer_numpy(self, feeds: Mapping[str, object]) -> dict[str, np.ndarray]:
        """:meth:`infer` with numpy arrays out."""
        if not self.active:
            self.activate()
        arrays = {}
        for t in self.spec.inputs:
            x = self._check(feeds)[t.name]
            x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
            arrays[t.name] = np.ascontiguousarray(x, dtype=np.dtype(t.dtype))
        got = self.session.run(list(self.spec.output_names), arrays)
        return dict(zip(self.spec.output_names, got))

    def _infer(self, feeds: dict) -> dict:
        import torch

        return {k: torch.from_numpy(v) for k, v in self.infer_numpy(feeds).items()}

    def _deactivate(self) -> None:
        self.session = None


def make_runner(name: str, backend: str, device: str = "auto", precision: str = "fp32",
                config: EnginesConfig | None = None, stream=None, module=None, weights=None) -> Runner:
    """A (not yet active) runner for engine ``name`` on ``backend``.

    Args:
        name: an engine name; backend: one of :data:`~ned_fx.engines.config.BACKENDS`;
        device: where it runs (``auto``, ``cpu``, ``cuda:N``); precision: ``fp32`` / ``fp16``;
        config: cache folder and batch sizes (defaults when None); stream: a CUDA stream to run on;
        module: a ready torch module for the torch back ends;
        weights: ``{engine: weights file}`` for engines that take one (the neural renderer's checkpoint).

    Raises:
        InvalidParameterError: unknown engine, back end or device.
        BackendUnavailableError: the back end cannot run here (the message says what is missing).
        StaleEngineError: (tensorrt) no fresh engine for this GPU / TensorRT version in the cache.
    """
    config = config or EnginesConfig()
    spec = get_spec(name, weights)
    if backend not in BACKENDS:
        raise InvalidParameterError(f"unknown back end {backend!r}; back ends: {', '.join(BACKENDS)}")
    if backend == "onnxruntime":
        from . import manifest as M

        return OnnxRuntimeRunner(spec, M.onnx_path(config.cache_dir(), name))
    dev = resolve_device(device)
    if backend == "torch-cpu":
        return TorchRunner(spec, "cpu", precision, "eager", config.batches, module=module)
    if not dev.startswith("cuda"):
        raise BackendUnavailableError(f"{backend} needs a CUDA device and this machine has none; back ends "
                                      f"here: torch-cpu, onnxruntime")
    if backend == "tensorrt":
        from .trt import TensorRTRunner

        return TensorRTRunner.from_cache(spec, config, dev, precision, stream=stream)
    mode = {"torch-cuda": "eager", "torch-compile": "compile", "torch-cuda-graphs": "cuda-graphs"}[backend]
    if mode == "cuda-graphs" and not spec.static:
        mode = "eager"              # the renderer cannot be captured: it runs eager inside a graphs back end
    return TorchRunner(spec, dev, precision, mode, config.batches, stream=stream, module=module)
