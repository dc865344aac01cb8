"""The tracker's networks by name and input size, torch-free: the PyTorch engines (:mod:`.engine`), their
onnxruntime exports (:mod:`.ort`) and the tracker share them, and the onnxruntime tracker runs without torch."""

from __future__ import annotations

DETECTOR_SIZE = 128
MESH_SIZE = 192
IRIS_SIZE = 64


def engine_names(iris: bool = True, iris_model: str | None = None) -> tuple[str, ...]:
    """The engines a tracker config runs: the face detector and a face mesh; with ``iris``, either the attention
    mesh (``iris_model`` "attention": ``face_mesh_attention`` instead of ``face_mesh``), the iris net run on eye
    crops beside the face mesh ("eye_crops": ``face_mesh`` and ``iris``), or both meshes ("attention_irises":
    ``face_mesh`` for the 468 points, ``face_mesh_attention`` for the irises); None: TrackerConfig's default."""
    if iris_model is None:
        from .config import TrackerConfig

        iris_model = TrackerConfig().iris_model
    if not iris:
        return ("face_detector", "face_mesh")
    if iris_model == "attention":
        return ("face_detector", "face_mesh_attention")
    if iris_model == "attention_irises":
        return ("face_detector", "face_mesh", "face_mesh_attention")
    return ("face_detector", "face_mesh", "iris")
