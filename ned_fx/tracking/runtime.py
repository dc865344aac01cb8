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
    if device == "auto" and cuda_available():
        return "torch"
    return "onnxruntime"


def cuda_available() -> bool:
    """Whether a CUDA device is there (what ``"auto"`` picks, for the tracker and the engines alike): torch is
    asked only where :func:`cuda_possible` says one may be (a CPU-only machine imports no torch)."""
    if not cuda_possible():
        return False
    import torch

    return bool(torch.cuda.is_available())


def cuda_possible() -> bool:
    """Whether this machine may have a CUDA device, told without importing torch (~1.7 s: a second edit of a
    cached shot needs no torch at all): torch's answer where it is already imported; on Linux, a GPU driver's
    traces (NVIDIA's ``/proc/driver/nvidia`` or ``/dev/nvidia*``, WSL2's ``/dev/dxg``, ROCm's ``/dev/kfd``); never on
    macOS; elsewhere assumed (torch asks). A GPU it misses is still used: the tracker asks torch when it loads."""
    import os
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "cuda"):
        return bool(torch.cuda.is_available())
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return any(os.path.exists(p) for p in ("/proc/driver/nvidia", "/dev/nvidia0", "/dev/nvidiactl", "/dev/dxg",
                                               "/dev/kfd"))
    return True


def ort_available() -> bool:
    """Whether onnxruntime can be imported here (without importing it)."""
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None
