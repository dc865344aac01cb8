"""The neural face renderer (part of stage 3, rendering), trained per actor on the shot itself.

NED's and Deep Video Portraits' renderer: a network that turns a rendered face description (conditioning
images from the target mesh) into a photoreal face of *this* actor, so an edit can show what the source frame
never had -- teeth in a wider smile, creases of a frown, lids over a narrowed eye. It is trained on the actor's
own footage by self-reenactment (no dataset), and refines the geometry renderer's warp or replaces it.

Public contract:

* configs: :class:`NeuralRendererConfig` (networks, how an edit applies them), :class:`TrainerConfig` (a run);
* data: :class:`DatasetBuilder` -> :class:`ShotDataset` (aligned crops of the actor's frames);
* training: :class:`Trainer` (``train``, ``evaluate``, ``preview``, ``save``), :func:`write_loss_curve`;
* files: :func:`read_checkpoint`, :func:`write_checkpoint` (:class:`Checkpoint`; ``.npz``, never pickle);
* rendering: :class:`NeuralRenderer` (``render(region, src, dst, mesh)``, the geometry renderer's call);
* engines: :func:`export_onnx`, :func:`onnx_parity`;
* pieces: :class:`Conditioner`, :class:`PlateEncoding`, :func:`face_similarity`, :func:`mean_face_colours`,
  :class:`Generator`, :class:`MouthDiscriminator`, :class:`FeatureTap`.

Importing this package loads nothing but the configs; torch comes with the classes.
"""

from .config import NeuralRendererConfig, TrainerConfig

_LAZY = {
    "Conditioner": "conditioning", "PlateEncoding": "conditioning", "face_similarity": "conditioning",
    "mean_face_colours": "conditioning", "MAP_NAMES": "conditioning",
    "Generator": "networks", "MouthDiscriminator": "networks", "input_channels": "networks",
    "FeatureTap": "losses", "PerceptualLoss": "losses",
    "DatasetBuilder": "dataset", "ShotDataset": "dataset",
    "Trainer": "trainer", "TrainingReport": "trainer", "Validation": "trainer", "write_loss_curve": "trainer",
    "Checkpoint": "checkpoint", "read_checkpoint": "checkpoint", "write_checkpoint": "checkpoint",
    "NeuralRenderer": "renderer",
    "export_onnx": "export", "onnx_parity": "export",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)


__all__ = ["NeuralRendererConfig", "TrainerConfig", *_LAZY]
