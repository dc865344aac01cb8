"""ONNX export of the engines (named inputs, dynamic axes), and a parity check against PyTorch in onnxruntime."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import OutputWriteError
from .errors import EngineBuildError
from .specs import EngineSpec, engine_specs, get_spec

OPSET = 18

__all__ = ["OPSET", "EngineSpec", "engine_specs", "export_onnx", "onnx_parity", "ErrorStats", "compare_outputs",
           "torch_reference"]


def export_onnx(name: str, path: str | Path, batch: int = 2, opset: int = OPSET, weights=None) -> Path:
    """Export engine ``name`` to ONNX with its dynamic axes (batch, and frames / resolution where they apply),
    atomically.

    Args:
        name: an engine name from :func:`~ned_fx.engines.engine_specs`; path: the ``.onnx`` file to write;
        batch: batch size of the example traced (any batch runs afterwards); opset: the ONNX opset;
        weights: ``{engine: weights file}`` for engines that take one (the neural renderer's checkpoint).

    Returns:
        ``path``.

    Raises:
        InvalidParameterError: unknown engine (the message lists the valid names).
        InputNotFoundError, UnreadableMediaError: a weights file cannot be read.
        WeightsMissingError: the tracker's weights are not installed.
        OutputWriteError: the file could not be written. EngineBuildError: the exporter failed.
    """
    import torch

    spec = get_spec(name, weights)
    module = spec.build()
    feeds = spec.example(batch, 0)
    args = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in spec.feed_args(feeds))
    path = Path(path)
    from ..media import atomic_output

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"could not write {path}: {exc.strerror or exc}") from None
    axes = {t.name: t.dynamic_axes for t in (*spec.inputs, *spec.outputs) if t.dynamic_axes}
    try:
        with atomic_output(path) as tmp, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, tmp, input_names=list(spec.input_names),
                              output_names=list(spec.output_names), dynamic_axes=axes, opset_version=opset,
                              dynamo=False)
    except OutputWriteError as exc:     # the exporter's own failure is not a disk problem: say what it was
        cause = exc.__cause__
        if isinstance(cause, (RuntimeError, ValueError, TypeError)):
            raise EngineBuildError(f"exporting {name} to ONNX (opset {opset}) failed: {cause}") from cause
        raise
    return path


@dataclass(frozen=True)
class ErrorStats:
    """How far one output is from its reference.

    Attributes:
        max_abs: largest absolute difference; rel_l2: ``||out - ref|| / ||ref||``; finite: no NaN/inf in out;
        shape_ok: same shape as the reference.
    """

    max_abs: float
    rel_l2: float
    finite: bool = True
    shape_ok: bool = True

    def within(self, tolerance: float) -> bool:
        return self.finite and self.shape_ok and self.max_abs <= tolerance


def compare_outputs(got: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray]) -> dict[str, ErrorStats]:
    """Per output (the reference's names): max absolute and relative L2 error (float64)."""
    out = {}
    for name, r in ref.items():
        r = np.asarray(r, np.float64)
        g = np.asarray(got[name], np.float64)
        if g.shape != r.shape:
            out[name] = ErrorStats(float("inf"), float("inf"), bool(np.isfinite(g).all()), False)
            continue
        finite = bool(np.isfinite(g).all())
        diff = np.abs(g - r)
        norm = float(np.linalg.norm(r))
        out[name] = ErrorStats(float(diff.max()) if diff.size else 0.0,
                               float(np.linalg.norm(g - r) / norm) if norm > 0 else float(diff.max(initial=0.0)),
                               finite)
    return out


def torch_reference(spec: EngineSpec, feeds: Mapping[str, np.ndarray], module=None) -> dict[str, np.ndarray]:
    """The engine's PyTorch float32 outputs on the CPU for a feed (the reference compiled engines are held to)."""
    import torch

    module = module if module is not None else spec.build()
    with torch.no_grad():
        outs = module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in spec.feed_args(feeds)))
    outs = outs if isinstance(outs, (tuple, list)) else (outs,)
    return {t.name: o.detach().float().numpy() for t, o in zip(spec.outputs, outs)}


def onnx_parity(name: str, path: str | Path, batch: int = 3, seed: int = 0,
                inputs: np.ndarray | Mapping[str, np.ndarray] | None = None, weights=None) -> dict[str, float]:
    """Run an exported engine in onnxruntime (CPU) and PyTorch on the same feed.

    Args:
        name: the engine; path: its ``.onnx`` file.
        batch, seed: the example feed's batch and seed (when ``inputs`` is None).
        inputs: the feed: ``{input name: array}``, or one array for a single-input engine.
        weights: ``{engine: weights file}`` (the PyTorch reference's weights; see :func:`export_onnx`).

    Returns:
        output name -> max absolute difference.
    """
    from .runners import OnnxRuntimeRunner

    spec = get_spec(name, weights)
    if inputs is None:
        feeds = spec.example(batch, seed)
    elif isinstance(inputs, Mapping):
        feeds = dict(inputs)
    else:
        feeds = {spec.input_names[0]: np.asarray(inputs, np.float32)}
    with OnnxRuntimeRunner(spec, path) as runner:
        got = runner.infer_numpy(feeds)
    return {k: v.max_abs for k, v in compare_outputs(got, torch_reference(spec, feeds)).items()}
