"""EnginesConfig: the one home of the engine build and runtime defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidParameterError

#: TensorRT precisions ``ned-fx engines build --precision`` accepts.
PRECISIONS = ("fp16", "fp32")
#: Every back end a runner can be made for, fastest first where several apply.
BACKENDS = ("tensorrt", "torch-cuda-graphs", "torch-compile", "torch-cuda", "torch-cpu", "onnxruntime")


@dataclass(frozen=True)
class EnginesConfig:
    """Every knob of the engine build (ONNX -> TensorRT) and of the back-end choice at run time.

    Attributes:
        cache: folder of the built engines and their manifest; None means ``$NED_FX_HOME/engines``
            (``~/.cache/ned_fx/engines``).
        precision: TensorRT build precision, ``"fp16"`` (default: Tensor Cores, half the bytes) or ``"fp32"``
            (true float32: TF32 is switched off so the engine matches PyTorch's float32). Engines whose outputs
            cannot be carried in half precision (the geometry renderer: pixel coordinates up to 4096 would
            move in 2-pixel steps) are built in fp32 whatever is asked; the manifest records what was built.
        batches: the batch sizes the daemon uses; the TensorRT engine gets one optimisation profile per size
            (profile k covers batches ``batches[k-1] + 1 .. batches[k]``, tuned for ``batches[k]``) and the
            CUDA-graph runner captures one graph per size.
        opset: ONNX opset of the exports.
        workspace_gb: TensorRT builder workspace (GiB of device memory tactics may use).
        preference: the order in which :func:`~ned_fx.engines.select_backend` tries back ends on a CUDA device
            (``torch-cpu`` is the answer without one). ``torch-compile`` is left out of the automatic choice:
            it compiles for minutes at start-up; ask for it by name.
    """

    cache: str | None = None
    precision: str = "fp16"
    batches: tuple[int, ...] = (1, 8)
    opset: int = 18
    workspace_gb: float = 4.0
    preference: tuple[str, ...] = ("tensorrt", "torch-cuda-graphs", "torch-cuda")

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InvalidParameterError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        batches = tuple(self.batches)
        if not batches or any(not isinstance(b, int) or b < 1 or b > 1024 for b in batches) or \
                list(batches) != sorted(set(batches)):
            raise InvalidParameterError(f"batches must be increasing whole numbers between 1 and 1024 "
                                        f"(e.g. 1 8), got {self.batches!r}")
        object.__setattr__(self, "batches", batches)
        if not 13 <= self.opset <= 21:
            raise InvalidParameterError(f"opset must be between 13 and 21, got {self.opset}")
        if not 0.25 <= self.workspace_gb <= 256:
            raise InvalidParameterError(f"workspace_gb must be between 0.25 and 256, got {self.workspace_gb}")
        unknown = [b for b in self.preference if b not in BACKENDS]
        if unknown or not self.preference:
            raise InvalidParameterError(f"preference lists unknown back ends {unknown}; back ends: "
                                        f"{', '.join(BACKENDS)}")

    def cache_dir(self) -> Path:
        """The engine folder (``cache`` or ``$NED_FX_HOME/engines``)."""
        if self.cache:
            return Path(self.cache).expanduser()
        from ..tracking.weights import home

        return home() / "engines"
