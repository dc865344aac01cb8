"""Engines: the stages' torch modules as deployable artefacts, and the runners that execute them.

* :mod:`.specs` — every engine as data (:func:`engine_specs`): named inputs and outputs with dynamic axes,
  an example feed, TensorRT profile ranges, precisions and tolerances; ``weights={engine: file}`` names the
  per-actor weights of the engines that take them (:data:`WEIGHTED_ENGINES`: the neural renderer's checkpoint).
* :mod:`.onnx_export` — :func:`export_onnx`, :func:`onnx_parity` (onnxruntime against PyTorch).
* :mod:`.trt` — the TensorRT build as composable steps (``network_from_onnx`` -> ``build_config`` ->
  ``build_engine`` -> ``save_engine``) and :class:`~.trt.TensorRTRunner`.
* :mod:`.manifest` — the cache's manifest and its staleness rules (weights, code, opset, GPU, TensorRT).
* :mod:`.runners` — the runner contract (activate, infer, deactivate) for TensorRT, torch on CUDA (eager,
  ``torch.compile``, CUDA graphs), torch on the CPU and onnxruntime; :func:`select_backend`.
* :mod:`.cache` — build / list / verify (``ned-fx engines``).

This package sits above the stages (like the pipeline) and imports them, torch and TensorRT only on use.
"""

from .config import BACKENDS, PRECISIONS, EnginesConfig
from .errors import BackendUnavailableError, EngineBuildError, StaleEngineError
from .onnx_export import ErrorStats, compare_outputs, export_onnx, onnx_parity, torch_reference
from .runners import (BackendChoice, OnnxRuntimeRunner, Runner, TorchRunner, make_runner, resolve_device,
                      select_backend)
from .specs import ENGINE_NAMES, WEIGHTED_ENGINES, EngineSpec, TensorSpec, engine_specs, get_spec

__all__ = ["EngineSpec", "TensorSpec", "engine_specs", "get_spec", "ENGINE_NAMES", "WEIGHTED_ENGINES", "export_onnx", "onnx_parity",
           "compare_outputs", "torch_reference", "ErrorStats", "EnginesConfig", "PRECISIONS", "BACKENDS",
           "BackendChoice", "select_backend", "resolve_device", "Runner", "TorchRunner", "OnnxRuntimeRunner",
           "make_runner", "BackendUnavailableError", "StaleEngineError", "EngineBuildError"]
