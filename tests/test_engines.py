"""``ned-fx engines build|list|verify``, the engine manifest and its staleness rules, the TensorRT profiles.

On the CPU: builds are ONNX-only (TensorRT needs a GPU; without it ``build`` refuses before doing anything and
says ``--onnx-only``), the manifest records hashes and versions, only stale artefacts are rebuilt, TensorRT
records built for another GPU or TensorRT version are never usable, and ``verify`` compares onnxruntime with
PyTorch on real frames (d12.mp4) printing the error per output against the specs' fp32 tolerances (max abs:
face mesh landmarks 2e-3 crop px, score 1e-4; manipulator 1e-5; renderer 0.05 on 0..255 values), and fails an
engine that does not match. TensorRT builds and runs are tested where TensorRT and a CUDA device are present.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import footage
from ned_fx.cli import main as cli
from ned_fx.engines import EnginesConfig, get_spec
from ned_fx.engines import manifest as M
from ned_fx.engines.cache import build_engines, list_engines, verify_engines
from ned_fx.engines.errors import StaleEngineError
from ned_fx.engines.specs import ENGINE_NAMES, engine_specs, source_hash, weights_hash
from ned_fx.errors import InvalidParameterError

BUILT = ("face_mesh", "manipulator", "geometry_renderer")


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache with three engines exported (ONNX only) through the CLI."""
    folder = tmp_path_factory.mktemp("engines")
    assert cli(["engines", "build", *BUILT, "--onnx-only", "--out", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def feeds(tracker):
    from ned_fx.engines.inputs import real_feeds

    return real_feeds(footage("d12.mp4"), "0-3", BUILT, tracker=tracker)


# ---- build ------------------------------------------------------------------------------------------------------

def test_build_writes_exports_and_a_manifest_of_what_they_came_from(cache):
    man = M.read_manifest(cache)
    assert sorted(man.onnx) == sorted(BUILT) and not man.tensorrt
    for name in BUILT:
        rec, spec = man.onnx[name], get_spec(name)
        path = cache / rec.file
        assert path.is_file() and M.file_sha256(path) == rec.sha256
        assert rec.opset == 18 and rec.weights_sha256 == weights_hash(spec) and rec.source_sha256 == source_hash(spec)
        assert rec.parity and all(v <= spec.tolerance["fp32"][k] for k, v in rec.parity.items()), rec.parity
        import onnx

        model = onnx.load(str(path))
        dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
        for t in spec.inputs:
            assert dims[t.name] == [d if isinstance(d, str) else d for d in t.shape], (name, t.name, dims[t.name])
    assert M.onnx_problems(cache, man, get_spec("iris"), "w", "s", 18) == ["not exported yet"]


def test_only_stale_artefacts_are_rebuilt(cache, tmp_path, capsys):
    folder = tmp_path / "c"
    shutil.copytree(cache, folder)
    capsys.readouterr()
    assert cli(["engines", "build", *BUILT, "--onnx-only", "--out", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.count("up to date") == 3 and " built " not in out
    # an export altered on disk, and one recorded from other weights: both are rebuilt, the third is not
    (folder / "onnx" / "manipulator.onnx").write_bytes(b"not an onnx file")
    man = M.read_manifest(folder)
    spec = get_spec("manipulator")
    assert M.onnx_problems(folder, man, spec, weights_hash(spec), source_hash(spec), 18) == \
        ["onnx/manipulator.onnx changed on disk since it was exported"]
    assert "exported with opset 18, asked for 17" in \
        M.onnx_problems(folder, man, spec, weights_hash(spec), source_hash(spec), 17)
    doc = json.loads((folder / "manifest.json").read_text())
    doc["onnx"]["face_mesh"]["weights_sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(doc))
    steps = build_engines(BUILT, EnginesConfig(cache=str(folder)), onnx_only=True)
    assert {s.engine: s.action for s in steps} == {"face_mesh": "built", "manipulator": "built",
                                                   "geometry_renderer": "up to date"}
    assert "weights changed" in next(s.why for s in steps if s.engine == "face_mesh")
    man = M.read_manifest(folder)
    assert M.onnx_problems(folder, man, spec, weights_hash(spec), source_hash(spec), 18) == []


@pytest.mark.skipif(_has_tensorrt(), reason="TensorRT is installed here: the refusal is for machines without it")
def test_build_without_tensorrt_refuses_before_any_work(tmp_path, capsys):
    folder = tmp_path / "none"
    assert cli(["engines", "build", "--out", str(folder)]) == 7
    err = capsys.readouterr().err
    assert "TensorRT is not installed" in err and "--onnx-only" in err and "pip install tensorrt" in err
    assert not folder.exists() or not any(folder.iterdir()), "nothing is written when the build cannot run"


def test_bad_arguments_are_refused_with_the_options(tmp_path, capsys):
    assert cli(["engines", "build", "renderer9000", "--onnx-only", "--out", str(tmp_path)]) == 2
    assert ", ".join(ENGINE_NAMES) in capsys.readouterr().err
    assert cli(["engines", "build", "--batch", "8", "1", "--onnx-only", "--out", str(tmp_path)]) == 2
    assert "increasing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["engines", "build", "--precision", "fp8"])
    assert "fp16" in capsys.readouterr().err
    assert cli(["engines"]) == 2
    with pytest.raises(InvalidParameterError, match="precision must be one of fp16, fp32"):
        EnginesConfig(precision="int8")


def test_a_corrupt_manifest_is_a_named_error_and_a_rebuild_recovers(tmp_path, capsys):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(StaleEngineError, match="unreadable.*--force"):
        M.read_manifest(folder)
    assert cli(["engines", "list", "--out", str(folder)]) == 7
    assert "unreadable" in capsys.readouterr().err
    build_engines(["manipulator"], EnginesConfig(cache=str(folder)), onnx_only=True)
    assert list(M.read_manifest(folder).onnx) == ["manipulator"]


# ---- TensorRT records: staleness without a GPU ------------------------------------------------------------------

H200 = M.Environment("10.8.0", "9.0", "NVIDIA H200")


def _with_trt_record(cache: Path, tmp_path: Path, env: M.Environment = H200) -> tuple[Path, M.Manifest]:
    folder = tmp_path / "c"
    shutil.copytree(cache, folder)
    man = M.read_manifest(folder)
    engine = M.trt_path(folder, "geometry_renderer", "fp32", env)
    engine.parent.mkdir(parents=True, exist_ok=True)
    engine.write_bytes(b"serialised engine bytes")
    rec = M.TrtRecord("geometry_renderer", "fp32", str(engine.relative_to(folder)), M.file_sha256(engine),
                      man.onnx["geometry_renderer"].sha256, env.tensorrt, env.compute_capability, env.gpu, (1, 8),
                      ({"images": ((1, 1, 16, 16), (1, 3, 512, 512), (1, 4, 2560, 2560))},), "", M.now(), 1.0)
    return folder, M.record(folder, trt=(M.trt_key("geometry_renderer", "fp32", env), rec))


def test_tensorrt_staleness_rules(cache, tmp_path):
    folder, man = _with_trt_record(cache, tmp_path)
    spec = get_spec("geometry_renderer")
    assert M.read_manifest(folder).tensorrt == man.tensorrt, "the manifest round-trips through JSON"
    assert M.trt_problems(folder, man, spec, "fp32", H200, (1, 8)) == []
    other_gpu = dataclasses.replace(H200, compute_capability="8.9", gpu="NVIDIA L4")
    assert M.trt_problems(folder, man, spec, "fp32", other_gpu) == [
        "only built for compute capability 9.0 (NVIDIA H200) with TensorRT 10.8.0; this machine: 8.9 (NVIDIA L4), "
        "TensorRT 10.8.0"]
    other_trt = dataclasses.replace(H200, tensorrt="10.9.0")
    assert "TensorRT 10.8.0" in M.trt_problems(folder, man, spec, "fp32", other_trt)[0]
    assert M.trt_problems(folder, man, spec, "fp32", dataclasses.replace(H200, tensorrt=None)) == \
        ["TensorRT is not installed"]
    assert M.trt_problems(folder, man, spec, "fp32", H200, (1, 16)) == ["built for batches up to 8, asked for 16"]
    assert M.trt_problems(folder, man, spec, "fp16", H200) == ["no fp16 engine built yet"]
    # a record that lies about its target is caught too
    key = M.trt_key("geometry_renderer", "fp32", H200)
    liar = M.Manifest(man.onnx, {key: dataclasses.replace(man.tensorrt[key], compute_capability="8.0")})
    assert any("compute capability 8.0" in p for p in M.trt_problems(folder, liar, spec, "fp32", H200))
    engine = folder / man.tensorrt[key].file
    engine.write_bytes(b"tampered")
    assert M.trt_problems(folder, man, spec, "fp32", H200) == [f"{man.tensorrt[key].file} changed on disk since it "
                                                               f"was built"]
    moved = M.Manifest({**man.onnx, "geometry_renderer": dataclasses.replace(man.onnx["geometry_renderer"],
                                                                              sha256="f" * 64)}, man.tensorrt)
    assert "built from another ONNX export than the current one" in M.trt_problems(folder, moved, spec, "fp32", H200)
    engine.unlink()
    assert M.trt_problems(folder, man, spec, "fp32", H200)[-1].endswith("is missing")
    with pytest.raises(StaleEngineError, match=r"is missing.*ned-fx engines build geometry_renderer --precision fp32"):
        M.require_fresh_trt(folder, spec, "fp32", H200)


def test_list_shows_each_artefact_and_whether_this_machine_can_use_it(cache, tmp_path, capsys):
    folder, _ = _with_trt_record(cache, tmp_path)
    rows = list_engines(EnginesConfig(cache=str(folder)), "cpu")
    onnx = {r.engine: r.status for r in rows if r.kind == "onnx"}
    assert onnx == {"face_detector": "missing", "iris": "missing", "face_mesh": "ok", "manipulator": "ok",
                    "geometry_renderer": "ok", "neural_renderer": "missing"}
    trt = [r for r in rows if r.kind == "tensorrt"]
    assert len(trt) == 1 and trt[0].status == "other machine" and "NVIDIA H200 sm_90 TensorRT 10.8.0" in trt[0].target
    assert cli(["engines", "list", "--out", str(folder)]) == 1          # missing exports: not all usable
    out = capsys.readouterr().out
    assert "other machine" in out and "missing" in out and "run `ned-fx engines build --onnx-only`" in out
    assert any(line.split()[:2] == ["neural_renderer", "onnx"] for line in out.splitlines()), out


# ---- profiles ---------------------------------------------------------------------------------------------------

def test_tensorrt_profiles_cover_each_batch_size_once():
    from ned_fx.engines.trt import profiles_for

    mesh = profiles_for(get_spec("face_mesh"), (1, 8))
    assert [p.shapes["crops"] for p in mesh] == [((1, 3, 192, 192),) * 3,
                                                ((2, 3, 192, 192), (8, 3, 192, 192), (8, 3, 192, 192))]
    renderer = profiles_for(get_spec("geometry_renderer"), (1, 4, 16))
    assert [p.shapes["images"][0][0] for p in renderer] == [1, 2, 5] and renderer[2].shapes["images"][2] == \
        (16, 4, 2560, 2560)
    assert renderer[0].shapes["triangles"] == ((1, 3), (860, 3), (1200, 3))      # no batch axis: the mesh
    manip = profiles_for(get_spec("manipulator"), (8,))
    assert manip[0].shapes["region"] == ((20,), (20,), (20,)) and manip[0].shapes["params"][2] == (8, 2000, 20)
    with pytest.raises(InvalidParameterError, match="increasing"):
        profiles_for(get_spec("iris"), (8, 1))


def test_every_spec_describes_its_module(feeds):
    """The declared outputs are what the modules return (fixed sizes and ranks), on the real feeds."""
    from ned_fx.engines import torch_reference

    specs = engine_specs()
    assert tuple(specs) == ENGINE_NAMES
    for name, feed in feeds.items():
        spec = specs[name]
        out = torch_reference(spec, feed)
        assert tuple(out) == spec.output_names
        for t in spec.outputs:
            assert out[t.name].ndim == len(t.shape)
            assert all(s == d for s, d in zip(out[t.name].shape, t.shape) if isinstance(d, int)), (name, t.name)
    with pytest.raises(InvalidParameterError, match="missing"):
        specs["manipulator"].feed_args({"params": feeds["manipulator"]["params"]})


# ---- verify on real frames --------------------------------------------------------------------------------------

def test_verify_prints_the_error_per_output_on_real_frames(cache, capsys):
    code = cli(["engines", "verify", *BUILT, "--input", str(footage("d12.mp4")), "--frames", "0-3",
                "--backend", "onnxruntime", "--out", str(cache)])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0] in BUILT]
    assert [(r[0], r[1]) for r in rows] == [("face_mesh", "landmarks"), ("face_mesh", "score"),
                                            ("manipulator", "target"), ("geometry_renderer", "rendered")]
    assert all(r[2] == "onnxruntime" and r[8] == "ok" for r in rows)
    assert rows[0][4] == "4" and rows[2][4] == "1", "four real frames: 4 mesh crops, one manipulator window"
    assert "reference: PyTorch float32" in out


def test_verify_fails_an_engine_that_does_not_match(cache, feeds, tmp_path):
    """An export of another manipulator (its action units in another order) in place of the cache's: verify
    says FAIL for it and ok for the others."""
    from ned_fx.manipulation.engine import ManipulatorEngine, export_onnx
    from ned_fx.manipulation.expression import AU_NAMES

    folder = tmp_path / "c"
    shutil.copytree(cache, folder)
    export_onnx(folder / "onnx" / "manipulator.onnx", ManipulatorEngine(names=tuple(reversed(AU_NAMES))))
    checks = verify_engines({"manipulator": feeds["manipulator"], "face_mesh": feeds["face_mesh"]}, "onnxruntime",
                            EnginesConfig(cache=str(folder)))
    result = {(c.engine, c.output): c.ok for c in checks}
    assert result == {("manipulator", "target"): False, ("face_mesh", "landmarks"): True, ("face_mesh", "score"): True}
    bad = next(c for c in checks if c.engine == "manipulator")
    assert bad.max_abs > bad.tolerance and bad.rel_l2 > 1e-4


# ---- TensorRT on a GPU ------------------------------------------------------------------------------------------

gpu_trt = pytest.mark.skipif(not (torch.cuda.is_available() and _has_tensorrt()),
                             reason="needs a CUDA device and TensorRT (pip install tensorrt on an NVIDIA GPU machine)")


@gpu_trt
def test_tensorrt_build_list_verify_and_refusal(cache, feeds, tmp_path, capsys):
    folder = tmp_path / "c"
    shutil.copytree(cache, folder)
    assert cli(["engines", "build", "face_mesh", "manipulator", "geometry_renderer", "--out", str(folder)]) == 0
    capsys.readouterr()
    env = M.environment("cuda:0")
    man = M.read_manifest(folder)
    for name, precision in (("face_mesh", "fp16"), ("manipulator", "fp16"), ("geometry_renderer", "fp32")):
        rec = man.tensorrt[M.trt_key(name, precision, env)]
        assert rec.tensorrt == env.tensorrt and rec.compute_capability == env.compute_capability
        assert (folder / rec.timing_cache).is_file()
    assert cli(["engines", "build", "face_mesh", "--out", str(folder)]) == 0
    assert "up to date" in capsys.readouterr().out
    checks = verify_engines(feeds, "tensorrt", EnginesConfig(cache=str(folder)), "cuda:0")
    assert checks and all(c.ok for c in checks), [(c.engine, c.output, c.max_abs, c.tolerance) for c in checks]
    # the same engine claimed for another GPU is refused, never loaded
    key = M.trt_key("face_mesh", "fp16", env)
    doc = json.loads((folder / "manifest.json").read_text())
    doc["tensorrt"][key]["compute_capability"] = "7.5"
    (folder / "manifest.json").write_text(json.dumps(doc))
    from ned_fx.engines import make_runner

    with pytest.raises(StaleEngineError, match="compute capability 7.5"):
        make_runner("face_mesh", "tensorrt", "cuda:0", "fp16", EnginesConfig(cache=str(folder)))
    assert np.isfinite([c.max_abs for c in checks]).all()


def test_an_exporter_failure_is_a_named_error_and_leaves_nothing(tmp_path, monkeypatch):
    from ned_fx.engines import export_onnx
    from ned_fx.engines.errors import EngineBuildError

    def broken(*args, **kwargs):
        raise RuntimeError("Unsupported: ONNX export of operator foo")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(EngineBuildError, match="manipulator.*operator foo"):
        export_onnx("manipulator", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


# ---- the neural renderer: per-actor weights -----------------------------------------------------------------

def _actor_checkpoint(path: Path, seed: int) -> Path:
    """A small untrained generator (seeded) written as an actor's checkpoint: no training, real file format."""
    from ned_fx.engines.specs import canonical_face
    from ned_fx.rendering import build_render_mesh
    from ned_fx.rendering.neural import NeuralRendererConfig, TrainerConfig
    from ned_fx.rendering.neural.checkpoint import Checkpoint, write_checkpoint
    from ned_fx.rendering.neural.conditioning import mean_face_colours
    from ned_fx.rendering.neural.networks import Generator

    cfg = NeuralRendererConfig(crop_size=64, base_channels=8, levels=2, bottleneck_blocks=1, temporal_frames=1)
    torch.manual_seed(seed)
    gen = Generator(cfg)
    with torch.no_grad():                      # a trained generator's residual is not small: make it show
        gen.head.weight.mul_(10.0)
    face = canonical_face()
    return write_checkpoint(Checkpoint(cfg, TrainerConfig(), 0, {k: v.numpy() for k, v in gen.state_dict().items()},
                                       {}, {}, {}, mean_face_colours(face), face,
                                       build_render_mesh(face).triangles), path)


def test_a_checkpoint_gives_the_neural_renderer_its_weights_and_its_hash(tmp_path, capsys):
    from ned_fx.engines import onnx_parity

    a, b = _actor_checkpoint(tmp_path / "a.ckpt", 1), _actor_checkpoint(tmp_path / "b.ckpt", 2)
    folder = tmp_path / "c"
    spec_a = get_spec("neural_renderer", {"neural_renderer": a})
    assert spec_a.inputs[0].shape == ("batch", 7 * 2 + 4, "height", "width") and spec_a.dims["height"] == (64, 64, 512)
    assert cli(["engines", "build", "neural_renderer", "--onnx-only", "--checkpoint", str(a), "--out",
                str(folder)]) == 0
    rec = M.read_manifest(folder).onnx["neural_renderer"]
    hashes = {weights_hash(spec_a), weights_hash(get_spec("neural_renderer", {"neural_renderer": b})),
              weights_hash(get_spec("neural_renderer"))}
    assert rec.weights_sha256 == weights_hash(spec_a) and len(hashes) == 3
    assert rec.parity["image"] <= spec_a.tolerance["fp32"]["image"]
    # the export holds a's weights: it matches a's generator, not b's (max |diff| far above the tolerance)
    onnx = folder / rec.file
    for batch in (1, 3):
        assert onnx_parity("neural_renderer", onnx, batch=batch, weights={"neural_renderer": a})["image"] <= 1e-4
    assert onnx_parity("neural_renderer", onnx, batch=1, weights={"neural_renderer": b})["image"] > 1e-2
    capsys.readouterr()
    assert cli(["engines", "list", "--checkpoint", str(a), "--out", str(folder)]) == 1     # others missing
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("neural_renderer"))
    assert row.split()[5] == "ok", row
    rows = {r.engine: r for r in list_engines(EnginesConfig(cache=str(folder)), "cpu", {"neural_renderer": b})}
    assert rows["neural_renderer"].status == "stale" and "weights changed" in rows["neural_renderer"].detail
    plain = {r.engine: r for r in list_engines(EnginesConfig(cache=str(folder)), "cpu")}["neural_renderer"]
    assert plain.status == "stale" and "--checkpoint" in plain.detail
    # a new checkpoint: the export is rebuilt from it and the manifest carries its hash
    steps = build_engines(["neural_renderer"], EnginesConfig(cache=str(folder)), onnx_only=True,
                          weights={"neural_renderer": b})
    assert [(s.action, "weights changed" in s.why) for s in steps] == [("built", True)]
    assert M.read_manifest(folder).onnx["neural_renderer"].weights_sha256 == \
        weights_hash(get_spec("neural_renderer", {"neural_renderer": b}))
    # bad uses are refused with the options
    assert cli(["engines", "build", "manipulator", "--onnx-only", "--checkpoint", str(a), "--out",
                str(folder)]) == 2
    assert "add neural_renderer" in capsys.readouterr().err
    with pytest.raises(InvalidParameterError, match="take no weights file; engines that do: neural_renderer"):
        get_spec("manipulator", {"manipulator": a})
    assert cli(["engines", "build", "neural_renderer", "--onnx-only", "--checkpoint", str(tmp_path / "no.ckpt"),
                "--out", str(folder)]) != 0
    assert "no.ckpt" in capsys.readouterr().err


def test_verify_holds_the_neural_renderer_to_pytorch_on_real_frames(tmp_path, tracker):
    from ned_fx.engines.inputs import real_feeds

    a = _actor_checkpoint(tmp_path / "a.ckpt", 1)
    weights = {"neural_renderer": a}
    folder = tmp_path / "c"
    build_engines(["neural_renderer"], EnginesConfig(cache=str(folder)), onnx_only=True, weights=weights)
    feeds = real_feeds(footage("d12.mp4"), "0-2", ("neural_renderer",), tracker=tracker, weights=weights)
    x = feeds["neural_renderer"]["inputs"]
    assert x.shape == (3, 18, 64, 64) and np.isfinite(x).all() and (x[:, -1] == 1).all()
    assert x[:, :7].std() > 0.05 and x[:, -4:-1].std() > 0.05, "conditioning and a real face crop"
    checks = verify_engines(feeds, "onnxruntime", EnginesConfig(cache=str(folder)), weights=weights)
    assert [(c.engine, c.output, c.ok, c.batch) for c in checks] == [("neural_renderer", "image", True, 3)]
    other = verify_engines(feeds, "onnxruntime", EnginesConfig(cache=str(folder)),
                           weights={"neural_renderer": _actor_checkpoint(tmp_path / "b.ckpt", 2)})
    assert not other[0].ok, "an export of other weights fails verify"
