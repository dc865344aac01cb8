"""Stage 2, manipulation: decide *what* the face should do. From a tracked face and an instruction (an emotion and
intensity, a reference image or clip, region control, keyframes) to target landmarks for every frame, with the
actor's speech (lip motion), identity and head pose untouched. NED's "3D-based emotion manipulator", rule-based
on a FACS action-unit model so it needs no training data; the torch engine's contract leaves room for a learned
one.

Public contract: :class:`ManipulatorConfig`, :func:`manipulate`, :func:`reference_style`, :func:`fit_track`,
:class:`EditedTrack`, :func:`read_from_file`, :func:`write_to_file`, :func:`plot_activations`, and the expression
model (:class:`ExpressionModel`, :func:`build_basis`, :func:`fit_activations`, :func:`estimate_neutral`,
:func:`still_neutral`).
Importing this package does not import torch or scipy; the engine (:mod:`.engine`) is loaded on use.
"""

from .config import ManipulatorConfig
from .edited import EditedTrack, read_from_file, write_to_file
from .expression import (AU_LABELS, AU_NAMES, EMOTION_AUS, REGIONS, SPEECH_AUS, ExpressionBasis, ExpressionModel,
                         build_basis, estimate_neutral, fit_activations, head_frame, still_neutral)
from .manipulator import (ReferenceStyle, TrackFit, fit_track, manipulate, parse_regions, reference_style,
                          speech_frames, talking_share)
from .prototypes import EMOTIONS, PROTOTYPES, parse_blend, parse_keys, read_curve


def __getattr__(name: str):
    # the torch modules and the plot pull in torch / matplotlib; keep `import ned_fx.manipulation` light
    if name in ("ManipulatorEngine", "ExpressionDecoder", "export_onnx", "onnx_parity"):
        from . import engine

        return getattr(engine, name)
    if name == "plot_activations":
        from .plot import plot_activations

        return plot_activations
    raise AttributeError(name)


__all__ = ["ManipulatorConfig", "EditedTrack", "read_from_file", "write_to_file", "AU_NAMES", "AU_LABELS",
           "EMOTION_AUS", "SPEECH_AUS", "REGIONS", "ExpressionBasis", "ExpressionModel", "build_basis",
           "estimate_neutral", "still_neutral", "fit_activations", "head_frame", "ReferenceStyle", "TrackFit",
           "fit_track", "manipulate", "speech_frames", "parse_regions", "reference_style", "talking_share",
           "EMOTIONS", "PROTOTYPES", "parse_blend", "parse_keys", "read_curve", "ManipulatorEngine",
           "ExpressionDecoder", "export_onnx", "onnx_parity", "plot_activations"]
