"""Every engine exports to ONNX with its dynamic axes and matches PyTorch in onnxruntime.

Tolerances (max absolute difference, the specs' fp32 bounds): detector points 1e-4 (units of the 128 px input,
0..1), probabilities 1e-4; face mesh landmarks 2e-3 crop pixels (of 192), score 1e-4; iris points 2e-3 crop
pixels (of 64); manipulator target activations 1e-5; geometry renderer 0.05 on 0..255 plate values. The tracker
engines are checked on real crops of a shared photo at batch 1 and 5; the manipulator and the renderer on a
real shot (d12.mp4: its fitted action units, its face regions and their edit) at other batch sizes, window
lengths and resolutions than the ones traced. Measured: ~8e-5 (detector), ~1e-4 (mesh), ~4e-5 (iris), ~1e-7
(manipulator), ~2e-3 (renderer). The neural renderer's generator (default config, seeded stand-in weights, traced at
batch 2 on 256 px crops) is held to 1e-4 in working-space units (0..1) at batch 1 and 4, and at 512 px; measured
~1.2e-7.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import decode_rgb, footage
from ned_fx.engines import ENGINE_NAMES, engine_specs, export_onnx, get_spec, onnx_parity
from ned_fx.tracking import geometry as g
from ned_fx.tracking.engine import load_engine

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


@pytest.mark.parametrize("name", ["face_detector", "face_mesh", "iris"])
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


@pytest.fixture(scope="module")
def shot_feeds(tracker):
    from ned_fx.engines.inputs import real_feeds

    return real_feeds(footage("d12.mp4"), "0-3", ("manipulator", "geometry_renderer"), tracker=tracker)


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_exports_declare_the_dynamic_axes(onnx_dir, name):
    import onnx

    path = onnx_dir / f"{name}.onnx"
    if not path.exists():
        export_onnx(name, path)
    model = onnx.load(str(path))
    spec = get_spec(name)
    inputs = {t.name: [d.dim_param or d.dim_value for d in t.type.tensor_type.shape.dim] for t in model.graph.input}
    for t in spec.inputs:
        assert inputs[t.name] == list(t.shape), (name, t.name, inputs[t.name])
    # outputs: the named axes by name (a reshape may leave fixed sizes symbolic in the graph's shape info)
    outputs = {t.name: [d.dim_param or d.dim_value for d in t.type.tensor_type.shape.dim] for t in model.graph.output}
    for t in spec.outputs:
        assert len(outputs[t.name]) == len(t.shape)
        assert all(g == d for g, d in zip(outputs[t.name], t.shape) if isinstance(d, str)), (name, t.name)


@pytest.mark.parametrize("name", ["manipulator", "geometry_renderer"])
def test_shot_engines_match_pytorch_on_a_real_shot_and_other_shapes(onnx_dir, shot_feeds, name):
    path = onnx_dir / f"{name}.onnx"
    if not path.exists():
        export_onnx(name, path)                        # traced at batch 2 on the example feed
    tol = get_spec(name).tolerance["fp32"]
    real = shot_feeds[name]
    traced = get_spec(name).example(2, 0)
    first = next(iter(real.values()))
    assert first.shape != next(iter(traced.values())).shape, "the real feed must have another shape than traced"
    for feed in (real, get_spec(name).example(3, 4) if name == "manipulator" else get_spec(name).example(1, 4)):
        diffs = onnx_parity(name, path, inputs=feed)
        for output, diff in diffs.items():
            assert diff <= tol[output], f"{name}.{output}: max |diff| {diff:.2e}"


def test_neural_renderer_spec_exports_and_matches_pytorch_at_two_batch_sizes(onnx_dir):
    """The generator of the default config with its seeded stand-in weights: dynamic batch and crop size, and a
    residual far above the tolerance (an export that passed its input through would fail)."""
    import onnx

    from ned_fx.engines import torch_reference

    spec = get_spec("neural_renderer")
    path = onnx_dir / "neural_renderer.onnx"
    if not path.exists():
        export_onnx("neural_renderer", path)                    # traced at batch 2, 256 px
    dims = [d.dim_param or d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 25, "height", "width"]
    tol = spec.tolerance["fp32"]["image"]
    assert tol == 1e-4
    for batch, seed in ((1, 3), (4, 5)):
        assert onnx_parity("neural_renderer", path, batch=batch, seed=seed)["image"] <= tol
    big = spec.example(1, 7)["inputs"]
    big = np.ascontiguousarray(np.tile(big, (1, 1, 2, 2)))        # 512 px crops
    assert onnx_parity("neural_renderer", path, inputs=big)["image"] <= tol
    feed = spec.example(1, 3)
    residual = np.abs(torch_reference(spec, feed)["image"] - feed["inputs"][:, -4:-1]).max()
    assert residual > 100 * tol, residual


@pytest.mark.parametrize("name", ["face_detector", "face_mesh", "iris"])
def test_tracker_runtime_exports_match_pytorch_and_stay_in_the_blocked_layout(tmp_path, name):
    """The tracker's own onnxruntime exports (PReLU as convolutions, zero pads folded into convolutions: the
    speed of the CPU default) give PyTorch's values on real crops at batch 1 and 5, and hold no PReLU and no
    zero Pad in front of a convolution (each would make onnxruntime re-order the activations)."""
    pytest.importorskip("onnxruntime")
    import onnx

    from ned_fx.tracking import ort

    path = tmp_path / f"{name}.onnx"
    ort._export(name, path)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "PRelu" not in ops
    graph = onnx.load(str(path)).graph
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    assert not [n for n in graph.node if n.op_type == "Conv" and made_by.get(n.input[0]) == "Pad"]
    engine = ort.OrtEngine(name, path, threads=1)
    module = load_engine(name, "cpu")
    size = engine_specs()[name].input_shape[-1]
    for batch in (1, 5):
        crops = torch.from_numpy(_real_crops(size, batch))
        with torch.no_grad():
            ref = module(crops)
        got = engine(crops)
        for output, a, b in zip(ort._IO[name][1], got, ref):
            assert a.shape == b.shape
            diff = float((a - b).abs().max())
            assert diff <= TOLERANCE[name][output], f"{name}.{output}: max |diff| {diff:.2e}"
