"""The tracker's networks in onnxruntime on the CPU (2-4x eager PyTorch there; the tracker without iris about as
fast as MediaPipe's own runtime: bench/track.py).

Each engine of :mod:`.engine` is exported to ONNX once (dynamic batch) into ``$NED_FX_HOME/cache/onnx/``, named by
a fingerprint of its weights, the code that defines the graph, torch's version and the opset, rewritten so that
onnxruntime keeps its blocked (NCHWc) layout from end to end (PReLU as convolutions, zero pads inside the
convolutions: :func:`.ort_export._blocked_friendly`), and checked against PyTorch on a fixed random batch before
first use (an export that does not match is not kept: the tracker runs in PyTorch). :class:`OrtEngine` then stands in for the
torch module: numpy arrays in, numpy arrays out (the tracker's onnxruntime path, which imports no torch: ~2 s of a
first edit's process), or torch tensors in and out, same shapes (``FaceTracker(engines=...)`` takes either).

This module imports no torch; exporting (:mod:`.ort_export`, on first use of a net) does.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from . import weights
from .netspec import DETECTOR_SIZE, IRIS_SIZE, MESH_SIZE, engine_names

OPSET = 18
#: engine -> (input name, output names, input size)
_IO = {"face_detector": ("images", ("points", "prob"), DETECTOR_SIZE),
       "face_mesh": ("crops", ("landmarks", "score"), MESH_SIZE),
       "iris": ("crops", ("contour", "iris"), IRIS_SIZE),
       "face_mesh_attention": ("crops", ("landmarks", "score"), MESH_SIZE)}
#: largest |ORT - torch| accepted on the parity batch (crop pixels; scores 0..1)
_TOLERANCE = 5e-3


class OrtEngine:
    """One exported engine in an onnxruntime CPU session. ``engine(x)`` takes float32 NCHW crops, a numpy array
    (numpy arrays out) or a torch tensor (the torch module's outputs: torch tensors on the CPU)."""

    def __init__(self, name: str, path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.name = name
        self.input, self.outputs, self.size = _IO[name]
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(list(self.outputs), {self.input: np.ascontiguousarray(x, np.float32)})

    def __call__(self, x) -> tuple:
        if isinstance(x, np.ndarray):
            return tuple(self.run(x))
        import torch

        return tuple(torch.from_numpy(o) for o in self.run(x.detach().cpu().float().numpy()))

    # the torch-module surface the tracker and tools may touch
    def eval(self) -> "OrtEngine":
        return self

    def to(self, *args, **kwargs) -> "OrtEngine":
        return self


def load_ort_engines(iris: bool = True, threads: int | None = None,
                     iris_model: str | None = None) -> dict[str, OrtEngine]:
    """The tracker's engines in onnxruntime (exported on first use, then read from the cache); ``iris`` and
    ``iris_model`` (None: TrackerConfig's default) choose them as in :func:`.engine.engine_names`.

    Raises:
        WeightsMissingError: the converted weights are not installed.
        RuntimeError: an export does not match PyTorch (the caller falls back to PyTorch).
    """
    if not threads:
        from .config import library_threads

        threads = library_threads()
    return {name: OrtEngine(name, onnx_file(name), threads) for name in engine_names(iris, iris_model)}


def onnx_file(name: str) -> Path:
    """The ONNX export of engine ``name`` for the installed weights and this code (exported now if missing)."""
    from .weights import home

    path = home() / "cache" / "onnx" / f"{name}-{_fingerprint(name)}.onnx"
    if path.is_file():
        return path
    _export(name, path)
    return path


def _fingerprint(name: str) -> str:
    h = hashlib.sha256()
    h.update(Path(weights.require(name)).read_bytes())
    here = Path(__file__).parent
    for source in ("engine.py", "netspec.py", "graph_net.py", "geometry.py", "tflite_convert.py", "ort.py",
                   "ort_export.py"):
        h.update((here / source).read_bytes())
    h.update(f"{torch_version()} {OPSET}".encode())
    return h.hexdigest()[:20]


def torch_version() -> str:
    """torch's version (the export's), told without importing torch when it is not loaded: its installed
    package's version, which is ``torch.__version__`` (``2.13.0+cpu`` both)."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "__version__"):
        return str(torch.__version__)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return "none"


def _export(name: str, path: Path) -> None:
    """Export engine ``name`` to ``path`` (:func:`.ort_export.export`: PyTorch and the onnx package)."""
    from .ort_export import export

    export(name, path)
