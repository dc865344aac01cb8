"""The engine layer's named errors (all :class:`~ned_fx.errors.NedFxError`, so the CLI prints one line)."""

from __future__ import annotations

from ..errors import NedFxError


class BackendUnavailableError(NedFxError):
    """A back end was asked for that this machine cannot run (no CUDA device, TensorRT not installed, …);
    the message says what is missing and which back ends are available."""

    exit_code = 7


class StaleEngineError(NedFxError):
    """A built engine does not fit this machine or these weights (another GPU, another TensorRT version,
    changed weights or code, missing file); it is never loaded. The message lists the reasons and the fix
    (``ned-fx engines build``)."""

    exit_code = 7


class EngineBuildError(NedFxError):
    """Exporting or compiling an engine failed (the ONNX parser's or the TensorRT builder's own message is
    included); nothing half-built is left in the cache."""

    exit_code = 7
