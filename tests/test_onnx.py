"""Every tracker engine exports to ONNX with a dynamic batch axis and matches PyTorch in onnxruntime.

Tolerances (max absolute difference): detector points 1e-4 (units of the 128 px input, 0..1), probabilities
1e-4; face mesh landmarks 2e-3 crop pixels (of 192), score 1e-4; iris points 2e-3 crop pixels (of 64).
Checked on real crops of a shared photo (what the engines see in use) at batch 1 and 5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import decode_rgb
from ned_fx.engines import engine_specs, export_onnx, onnx_parity
from ned_fx.tracking import geometry as g

TOLERANCE = {"face_detector": {"points": 1e-4, "prob": 1e-4},
             "face_mesh": {"landmarks": 2e-3, "score": 1e-4},
             "iris": {"contour": 2e-3, "iris": 2e-3}}


def _real_crops(size: int, batch: int) -> np.ndarray:
    """``batch`` crops of people_0.png around its face at slightly different scales/angles."""
    rgb = decode_rgb("people_0.png")[0][0]
    frame = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    rois = np.array([[237 + 3 * k, 215, 240 * (0.6 if size == 64 else 1) + 8 * k, 0.05 * k] for k in range(batch)])
    crops = g.crop_images(frame, torch.zeros(batch, dtype=torch.long), g.roi_to_affine(rois, size), size)
    return crops.numpy()


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


@pytest.mark.parametrize("name", sorted(engine_specs()))
@pytest.mark.parametrize("batch", [1, 5])
def test_engine_onnx_matches_pytorch(onnx_dir, name, batch):
    path = onnx_dir / f"{name}.onnx"
    if not path.exists():
        export_onnx(name, path)
    import onnx

    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch", "batch axis must be dynamic"
    size = engine_specs()[name].input_shape[-1]
    diffs = onnx_parity(name, path, inputs=_real_crops(size, batch))
    for output, diff in diffs.items():
        assert diff <= TOLERANCE[name][output], f"{name}.{output}: max |diff| {diff:.2e}"


def test_unknown_engine_lists_valid_names(tmp_path):
    from ned_fx.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="face_detector, face_mesh, iris"):
        export_onnx("renderer9000", tmp_path / "x.onnx")
