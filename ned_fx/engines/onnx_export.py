"""ONNX export of the engines, and a parity check against PyTorch in onnxruntime."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InvalidParameterError, OutputWriteError

OPSET = 18


@dataclass(frozen=True)
class EngineSpec:
    """One engine: how to build its torch module, an example input (batch first), and I/O names."""

    name: str
    build: Callable[[], "object"]
    input_shape: tuple[int, ...]          # without the batch axis
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]


def engine_specs() -> dict[str, EngineSpec]:
    """Every engine that exports to ONNX, by name."""
    from ..tracking.engine import (DETECTOR_SIZE, IRIS_SIZE, MESH_SIZE, FaceDetectorEngine, FaceMeshEngine,
                                   IrisEngine, load_graph)

    return {
        "face_detector": EngineSpec("face_detector", lambda: FaceDetectorEngine(load_graph("face_detector")).eval(),
                                    (3, DETECTOR_SIZE, DETECTOR_SIZE), ("images",), ("points", "prob")),
        "face_mesh": EngineSpec("face_mesh", lambda: FaceMeshEngine(load_graph("face_mesh")).eval(),
                                (3, MESH_SIZE, MESH_SIZE), ("crops",), ("landmarks", "score")),
        "iris": EngineSpec("iris", lambda: IrisEngine(load_graph("iris")).eval(),
                           (3, IRIS_SIZE, IRIS_SIZE), ("crops",), ("contour", "iris")),
    }


def export_onnx(name: str, path: str | Path, batch: int = 2) -> Path:
    """Export engine ``name`` to ONNX (opset 18, dynamic batch axis), atomically.

    Args:
        name: an engine name from :func:`engine_specs`; path: the ``.onnx`` file to write;
        batch: batch size of the example used for tracing (any batch runs afterwards).

    Raises:
        InvalidParameterError: unknown engine (the message lists the valid names).
        OutputWriteError: the file could not be written.
    """
    import torch

    specs = engine_specs()
    if name not in specs:
        raise InvalidParameterError(f"unknown engine {name!r}; engines: {', '.join(specs)}")
    spec = specs[name]
    module = spec.build()
    example = torch.rand(batch, *spec.input_shape)
    path = Path(path)
    from ..media import atomic_output

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"could not write {path}: {exc.strerror or exc}") from None
    axes = {n: {0: "batch"} for n in (*spec.input_names, *spec.output_names)}
    with atomic_output(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), tmp, input_names=list(spec.input_names),
                          output_names=list(spec.output_names), dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False)
    return path


def onnx_parity(name: str, path: str | Path, batch: int = 3, seed: int = 0,
                inputs: np.ndarray | None = None) -> dict[str, float]:
    """Run an exported engine in onnxruntime (CPU) and PyTorch on the same input.

    Args:
        inputs: Bx… float32 input (default: uniform random 0..1 of ``batch``, seeded).

    Returns:
        output name -> max absolute difference.
    """
    import onnxruntime as ort
    import torch

    spec = engine_specs()[name]
    if inputs is None:
        inputs = np.random.default_rng(seed).random((batch, *spec.input_shape), dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {spec.input_names[0]: inputs})
    with torch.no_grad():
        ref = spec.build()(torch.from_numpy(inputs))
    return {n: float(np.abs(g - r.numpy()).max()) for n, g, r in zip(spec.output_names, got, ref)}
