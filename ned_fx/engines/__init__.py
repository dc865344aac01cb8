"""Engines: the stages' torch modules as deployable artefacts (ONNX now; TensorRT recipes in ``engines/``).

:func:`engine_specs` lists every engine with an example input; :func:`export_onnx` writes one to ONNX with a
dynamic batch axis. This package sits above the stages (like the pipeline) and imports them on demand.
"""

from .onnx_export import EngineSpec, engine_specs, export_onnx, onnx_parity

__all__ = ["EngineSpec", "engine_specs", "export_onnx", "onnx_parity"]
