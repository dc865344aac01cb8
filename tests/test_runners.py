"""The runner contract (activate, infer, deactivate) on every back end this machine has, and the back-end choice.

On the CPU: torch-cpu runners compute exactly what the module computes; onnxruntime matches within the
engines' fp32 tolerances; ``torch.compile`` (dynamo, eager backend) matches eager exactly; a runner stands in
for a module inside the tracker and tracks a real photo identically. GPU tests (CUDA eager, CUDA graphs,
fp16, TensorRT) skip with their reason where there is no CUDA device or no TensorRT; their tolerances are the
specs' (``ned_fx/engines/specs.py``: fp16 face mesh landmarks <= 1 crop pixel of 192, …).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import decode_rgb
from ned_fx.engines import (BackendUnavailableError, OnnxRuntimeRunner, TorchRunner, compare_outputs, export_onnx,
                            get_spec, make_runner, select_backend, torch_reference)
from ned_fx.errors import InvalidParameterError

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (this machine has none): "
                          "torch-cuda, CUDA-graph and TensorRT runners run on an NVIDIA GPU")


def _feeds(name: str, batch: int, seed: int = 1) -> dict:
    return {k: torch.from_numpy(v) for k, v in get_spec(name).example(batch, seed).items()}


# ---- the contract on the CPU ------------------------------------------------------------------------------------

def test_torch_cpu_runner_follows_the_contract():
    spec = get_spec("face_mesh")
    runner = make_runner("face_mesh", "torch-cpu", "cpu")
    feeds = _feeds("face_mesh", 3)
    with pytest.raises(InvalidParameterError, match="not active"):
        runner.infer(feeds)
    with runner as active:
        assert active is runner and runner.active
        out = runner.infer(feeds)
        assert set(out) == {"landmarks", "score"}
        assert out["landmarks"].shape == (3, 468, 3) and out["score"].shape == (3,)
        ref = torch_reference(spec, {k: v.numpy() for k, v in feeds.items()})
        assert np.array_equal(out["landmarks"].numpy(), ref["landmarks"]), "the same module computes the same"
        lm, score = runner(feeds["crops"])                  # module-style call: outputs in spec order
        assert torch.equal(lm, out["landmarks"]) and torch.equal(score, out["score"])
        with pytest.raises(InvalidParameterError, match="crops"):
            runner.infer({"images": feeds["crops"]})
        with pytest.raises(InvalidParameterError, match="shape"):
            runner.infer({"crops": feeds["crops"][0]})
    assert not runner.active and runner.module is None
    assert runner.describe() == {"engine": "face_mesh", "backend": "torch-cpu", "device": "cpu", "precision": "fp32"}


def test_onnxruntime_runner_matches_pytorch_within_tolerance(tmp_path):
    spec = get_spec("manipulator")
    path = export_onnx("manipulator", tmp_path / "manipulator.onnx")
    feeds = {k: v.numpy() for k, v in _feeds("manipulator", 2, seed=4).items()}
    with OnnxRuntimeRunner(spec, path) as runner:
        got = {k: v.numpy() for k, v in runner.infer(feeds).items()}
    errors = compare_outputs(got, torch_reference(spec, feeds))
    assert errors["target"].within(spec.tolerance["fp32"]["target"]), errors
    assert errors["target"].max_abs > 0 or errors["target"].rel_l2 == 0


def test_missing_onnx_file_is_a_named_error(tmp_path):
    from ned_fx.errors import InputNotFoundError

    with pytest.raises(InputNotFoundError, match="engines build"):
        OnnxRuntimeRunner(get_spec("iris"), tmp_path / "nope.onnx").activate()


def test_compiled_runner_matches_eager():
    """torch.compile's graph capture (dynamo) with its eager backend: the same numbers as eager (inductor is
    what a GPU uses; compiling it on two shared CPU cores would take minutes)."""
    feeds = _feeds("manipulator", 2)
    with TorchRunner(get_spec("manipulator"), "cpu", mode="compile", batches=(2,), compile_backend="eager") as r:
        assert r.backend == "torch-compile"
        got = r.infer(feeds)["target"]
    with make_runner("manipulator", "torch-cpu", "cpu") as r:
        want = r.infer(feeds)["target"]
    assert torch.allclose(got, want, atol=1e-6)


def test_runner_stands_in_for_a_module_inside_the_tracker(tracker):
    from dataclasses import replace

    from ned_fx.tracking import FaceTracker

    frame = decode_rgb("people_0.png")[0][0]
    runners = {n: make_runner(n, "torch-cpu", "cpu").activate() for n in ("face_detector", "face_mesh", "iris")}
    with_runners = list(FaceTracker(tracker.config, engines=runners).iter_track([frame]))[0]
    # against the tracker's own PyTorch modules (the CPU default runs them in onnxruntime, within its tolerances)
    plain = list(FaceTracker(replace(tracker.config, runtime="torch")).iter_track([frame]))[0]
    assert with_runners.faces and set(with_runners.faces) == set(plain.faces)
    for fid, (lm, score) in plain.faces.items():
        assert np.abs(with_runners.faces[fid][0] - lm).max() <= 1e-3     # channels-last vs default layout
        assert abs(with_runners.faces[fid][1] - score) <= 1e-5


class _FakeGraph:
    """Stands in for torch.cuda.CUDAGraph on the CPU: replay() runs the module from the static inputs into the
    static outputs, as a captured graph does (what CUDA adds is the capture, tested on a GPU)."""

    def __init__(self, module, static_in, static_out):
        self.module, self.static_in, self.static_out = module, static_in, static_out

    def replay(self):
        with torch.no_grad():
            outs = self.module(*self.static_in)
        for dst, src in zip(self.static_out, outs if isinstance(outs, tuple) else (outs,)):
            dst.copy_(src)


@pytest.mark.parametrize("name", ["iris", "manipulator"])
def test_graph_replay_pads_splits_and_keeps_unbatched_inputs(name):
    """The CUDA-graph runner's batching on the CPU (a fake graph): batches below a captured size are padded,
    above the largest are split, inputs without a batch axis (the manipulator's region) are copied whole."""
    runner = make_runner(name, "torch-cpu", "cpu").activate()
    runner.mode, runner.batches = "cuda-graphs", (2, 4)
    for b in runner.batches:
        static_in = runner._prepare({k: v.clone() for k, v in _feeds(name, b, seed=0).items()})
        outs = runner.module(*static_in)
        static_out = tuple(o.clone() for o in (outs if isinstance(outs, tuple) else (outs,)))
        runner._graphs[b] = (_FakeGraph(runner.module, static_in, static_out), static_in, static_out)
    eager = make_runner(name, "torch-cpu", "cpu").activate()
    window = {k: v for k, v in _feeds(name, 6, seed=0).items()}
    for n in (1, 3, 4, 6):
        feeds = {k: (v[:n] if k != "region" else v) for k, v in window.items()}
        got, want = runner.infer(feeds), eager.infer(feeds)
        for k in want:
            assert got[k].shape == want[k].shape and torch.allclose(got[k], want[k], atol=1e-5), (n, k)
    if name == "manipulator":
        with pytest.raises(InvalidParameterError, match="captured for params"):
            runner.infer({k: (v[:2, :10] if k != "region" else v) for k, v in window.items()})


def test_refusals_say_what_is_missing():
    with pytest.raises(InvalidParameterError, match="fp16 needs a CUDA device"):
        TorchRunner(get_spec("face_mesh"), "cpu", precision="fp16")
    with pytest.raises(InvalidParameterError, match="eager, compile, cuda-graphs"):
        TorchRunner(get_spec("face_mesh"), "cpu", mode="jit")
    with pytest.raises(BackendUnavailableError, match="data-dependent shapes"):
        TorchRunner(get_spec("geometry_renderer"), "cpu", mode="cuda-graphs")
    with pytest.raises(InvalidParameterError, match="tensorrt, torch-cuda-graphs"):
        make_runner("iris", "tvm", "cpu")
    with pytest.raises(InvalidParameterError, match="face_detector, face_mesh, iris, manipulator, geometry_renderer"):
        make_runner("renderer9000", "torch-cpu", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="CUDA device"):
            TorchRunner(get_spec("face_mesh"), "cpu", mode="cuda-graphs")
        with pytest.raises(BackendUnavailableError, match="needs a CUDA device"):
            make_runner("iris", "tensorrt", "cpu")
        with pytest.raises(BackendUnavailableError, match="0 CUDA device"):
            make_runner("iris", "torch-cuda", "cuda:0")


def test_select_backend_names_the_choice_and_why():
    choice = select_backend("cpu")
    assert (choice.name, choice.device, choice.precision) == ("torch-cpu", "cpu", "fp32")
    assert "asked for the CPU" in choice.reason
    assert set(choice.as_dict()) == {"backend", "device", "precision", "reason"}
    auto = select_backend("auto")
    if torch.cuda.is_available():
        assert auto.device.startswith("cuda") and auto.name in ("tensorrt", "torch-cuda-graphs", "torch-cuda")
        assert torch.cuda.get_device_name(0) in auto.reason
    else:
        assert auto.name == "torch-cpu" and "no CUDA device" in auto.reason
    with pytest.raises(InvalidParameterError, match="auto, cpu, cuda, cuda:N"):
        select_backend("gpu0")
    with pytest.raises(BackendUnavailableError, match="CUDA device"):
        select_backend("cuda:7")


def test_engines_package_imports_no_torch():
    import subprocess
    import sys

    from conftest import REPO

    code = "import sys, ned_fx.engines, ned_fx.engines.trt, ned_fx.engines.cache; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


# ---- on a GPU ---------------------------------------------------------------------------------------------------

def _cpu_reference(name: str, feeds: dict) -> dict:
    return torch_reference(get_spec(name), {k: v.cpu().numpy() for k, v in feeds.items()})


@cuda
@pytest.mark.parametrize("name", ["face_detector", "face_mesh", "iris", "manipulator", "geometry_renderer"])
def test_cuda_eager_runner_matches_the_cpu(name):
    spec = get_spec(name)
    feeds = _feeds(name, 3)
    stream = torch.cuda.Stream()
    with make_runner(name, "torch-cuda", "cuda:0", stream=stream) as r:
        got = r.infer(feeds)
        stream.synchronize()
        assert all(v.device.type == "cuda" for v in got.values())
    errors = compare_outputs({k: v.cpu().numpy() for k, v in got.items()}, _cpu_reference(name, feeds))
    tol = spec.tolerance["fp32"]
    for out, e in errors.items():
        assert e.within(tol[out] * _tf32_slack(name)), (out, e)


def _tf32_slack(name: str) -> float:
    """cuDNN runs float32 convolutions on TF32 tensor cores (torch's default, ``cudnn.allow_tf32``): the conv nets
    get 25x their fp32 bound. Measured on an H200 (bench/h200.sh, 2026-12-04): face_mesh's landmarks 0.028 px
    from the CPU on a 192-px crop (relative L2 8.6e-5), graphs against eager up to ~0.01 px (another algorithm
    for a padded batch) — 1/50 of a pixel, far under the tracker's 2 % of the inter-ocular distance (~1.4 px)."""
    return 25.0 if name in ("face_detector", "face_mesh", "iris") else 1.0


@cuda
@pytest.mark.parametrize("name", ["face_mesh", "iris", "manipulator"])
def test_cuda_graph_runner_replays_what_eager_computes(name):
    with make_runner(name, "torch-cuda", "cuda:0") as eager, \
            make_runner(name, "torch-cuda-graphs", "cuda:0") as graphs:
        assert graphs.backend == "torch-cuda-graphs" and sorted(graphs._graphs) == [1, 8]
        for batch in (1, 3, 8, 17):                    # exact, padded, exact, split
            feeds = _feeds(name, batch, seed=batch)
            if name == "manipulator":                  # graphs were captured at the example's window length
                feeds = {k: v[:, :48] if v.ndim == 3 else v for k, v in _feeds(name, batch, seed=0).items()}
            a, b = eager.infer(feeds), graphs.infer(feeds)
            if name == "manipulator":                  # no convolutions: the same float32 arithmetic
                for k in a:
                    assert a[k].shape == b[k].shape and torch.allclose(a[k], b[k], atol=1e-4, rtol=1e-4), (k, batch)
                continue
            errors = compare_outputs({k: v.cpu().numpy() for k, v in b.items()},
                                     {k: v.cpu().numpy() for k, v in a.items()})
            for k, e in errors.items():                # a padded batch may get another (TF32) conv algorithm
                assert e.within(get_spec(name).tolerance["fp32"][k] * _tf32_slack(name)), (k, batch, e)
        def two(seed):
            if name == "manipulator":
                return {k: v[seed % 2 * 2: seed % 2 * 2 + 2] if v.ndim == 3 else v
                        for k, v in _feeds(name, 4, seed=0).items()}
            return _feeds(name, 2, seed=seed)

        first = graphs.infer(two(1))
        kept = {k: v.clone() for k, v in first.items()}
        graphs.infer(two(2))                           # the next replay must not change what was handed out
        assert all(torch.equal(first[k], kept[k]) for k in first)


@cuda
@pytest.mark.parametrize("name", ["face_detector", "face_mesh", "iris"])
def test_fp16_runner_within_the_fp16_tolerance(name):
    spec = get_spec(name)
    feeds = _feeds(name, 4)
    with make_runner(name, "torch-cuda", "cuda:0", precision="fp16") as r:
        assert r.precision == "fp16"
        got = {k: v.cpu().numpy() for k, v in r.infer(feeds).items()}
    for out, e in compare_outputs(got, _cpu_reference(name, feeds)).items():
        assert e.within(spec.tolerance["fp16"][out]), (out, e)


@cuda
def test_tensorrt_runner_matches_pytorch(tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install tensorrt on a GPU machine)")
    from ned_fx.engines import EnginesConfig
    from ned_fx.engines.cache import build_engines

    config = EnginesConfig(cache=str(tmp_path), precision="fp16", batches=(1, 8))
    build_engines(["face_mesh", "manipulator"], config)
    for name in ("face_mesh", "manipulator"):
        spec = get_spec(name)
        stream = torch.cuda.Stream()
        with make_runner(name, "tensorrt", "cuda:0", "fp16", config, stream=stream) as r:
            for batch in (1, 5, 8, 11):                 # 11: more than the largest profile, run in pieces
                feeds = _feeds(name, batch)
                got = r.infer(feeds)
                stream.synchronize()
                errors = compare_outputs({k: v.cpu().numpy() for k, v in got.items()}, _cpu_reference(name, feeds))
                for out, e in errors.items():
                    assert e.within(spec.tolerance["fp16"][out]), (name, out, batch, e)
            wrong = {"crops": torch.rand(2, 3, 64, 64)} if name == "face_mesh" else \
                {k: (torch.rand(1, 2500, v.shape[2]) if v.ndim == 3 else v) for k, v in _feeds(name, 1).items()}
            with pytest.raises(InvalidParameterError, match="built for"):
                r.infer(wrong)
    choice = select_backend("cuda:0", EnginesConfig(cache=str(tmp_path)))
    assert choice.name != "tensorrt" and "geometry_renderer" in choice.reason   # not every per-frame engine built
