"""Which runtime runs the tracker's networks: ``TrackerConfig.runtime`` resolved for this machine (also named in
the track cache's key: another runtime, another key)."""

from __future__ import annotations

from .config import TrackerConfig


def runtime_name(config: TrackerConfig) -> str:
    """``"torch"`` or ``"onnxruntime"``: what ``config`` runs the networks on here (nothing is loaded).

    ``auto`` is onnxruntime when the tracker runs on the CPU and onnxruntime is installed, else PyTorch.
    """
    if config.runtime != "auto":
        return config.runtime
    device = str(config.device).lower()
    if device not in ("auto", "cpu") or not ort_available():
        return "torch"
    if device == "auto":
        import torch

        if torch.cuda.is_available():
            return "torch"
    return "onnxruntime"


def ort_available() -> bool:
    """Whether onnxruntime can be imported here (without importing it)."""
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None
