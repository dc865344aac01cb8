"""The neural renderer, trained on the shot itself: a few hundred CPU steps on the first 60 frames of d12 lower
the reconstruction of held-back frames of that clip far below the untrained generator's (and below a flat
mean-colour fill), the trained checkpoint runs inside `ned-fx edit` (pixels outside the face region bit-exact,
the face changed, and changed differently from the geometry renderer alone) and keeps the actor's speech as
the geometry renderer does while the emotion shows, the ONNX export matches PyTorch,
the conditioning images say what they should, and bad input gets named errors.

Training runs with one torch thread: on a shared 2-core machine two OpenMP threads spin against other
processes and run the same steps many times slower.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import decode_rgb, footage

CLIP = "d12.mp4"
FRAMES = 60
STEPS = 240


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _configs():
    from ned_fx.rendering.neural import NeuralRendererConfig, TrainerConfig

    renderer = NeuralRendererConfig(crop_size=128, base_channels=12, levels=3, bottleneck_blocks=1,
                                    disc_channels=16, device="cpu")
    # refine_pairs 4 with the default identity_pairs 1: production's share of identity pairs
    trainer = TrainerConfig(steps=STEPS, batch_size=4, lr=1e-3, refine_pairs=4, holdout=10,
                            adversarial_start=STEPS // 2, validate_every=0, preview_every=0, checkpoint_every=0,
                            device="cpu")
    return renderer, trainer


@pytest.fixture(scope="module")
def shot():
    """d12's first 60 frames: the track (our tracker through the pipeline) and the training dataset."""
    from ned_fx.pipeline import track_media
    from ned_fx.rendering import build_render_mesh
    from ned_fx.rendering.neural import DatasetBuilder
    from ned_fx.rendering.neural.conditioning import PlateEncoding, mean_face_colours

    rgb, _ = decode_rgb(CLIP)
    track = track_media(footage(CLIP), frames=f"0-{FRAMES - 1}")
    assert track.found.all()
    renderer, trainer = _configs()
    builder = DatasetBuilder(build_render_mesh(track.mean_shape), mean_face_colours(track.mean_shape), renderer,
                             trainer)
    encoding = PlateEncoding.for_dtype(np.uint8)
    builder.add_clip((encoding.to_working(p.astype(np.float32)) for p in rgb[:FRAMES]), track.landmarks,
                     track.found, track.frame_numbers)
    return track, builder.build(), encoding


@pytest.fixture(scope="module")
def trained(shot, tmp_path_factory):
    """The trainer after STEPS steps, the held-back reconstruction before and after, and its checkpoint."""
    from ned_fx.rendering.neural import Trainer
    from ned_fx.tracking.engine import load_graph

    track, dataset, encoding = shot
    _, config = _configs()
    trainer = Trainer(dataset, config, feature_net=load_graph("face_mesh"), feature_size=128, encoding=encoding,
                      mean_shape=track.mean_shape, footage=({"path": CLIP, "frames": FRAMES},))
    before = trainer.evaluate()
    folder = tmp_path_factory.mktemp("neural")
    report = trainer.train(checkpoint=folder / "actor.ckpt", previews=folder / "previews")
    return trainer, before, report, folder


def test_a_few_hundred_cpu_steps_lower_the_held_back_reconstruction(shot, trained):
    trainer, before, report, _ = trained
    _, dataset, _ = shot
    after = report.validation
    assert report.steps == STEPS and len(dataset.holdout) == 10
    assert set(dataset.holdout).isdisjoint(dataset.train)
    # refine pairs 0-2 come from other frames, pair 3 is the frame itself (identity_pairs=1): input = target
    n = len(dataset)
    assert (dataset.refine_from[:, :3] != np.arange(n)[:, None]).all()
    assert (dataset.refine_from[:, 3] == np.arange(n)).all() and np.array_equal(dataset.refine[:, 3], dataset.crops)
    # replace input (face masked): the generator must paint the actor's face from the conditioning alone.
    # Measured: 0.48 untrained (it passes its black input through) -> 0.058 after 240 steps.
    assert after.replace <= 0.25 * before.replace, (before, after)
    # ... and better than filling the face with the actor's mean face colour, which a net that learnt only a
    # colour would do (measured 0.058 vs 0.079; over training seeds 0-3 0.040-0.067: at 240 steps the replace
    # mode, which shares the generator with refine, still swings with the seed)
    assert after.replace < 0.9 * _mean_colour_fill(dataset), (after, _mean_colour_fill(dataset))
    # refine input (another frame warped by the geometry renderer): it must not be worse than the warp alone
    # (measured 0.9 % better after 240 steps, 0.5-2.9 % over seeds 0-3; an untrained generator equals the warp.
    # Without identity pairs it gains ~3 %, partly with a mean correction that hurts same-frame edits: see
    # test_the_neural_edit_keeps_speech_and_shows_the_emotion)
    assert after.refine <= after.geometry * 1.01, after
    assert np.isfinite([report.losses["loss"], report.losses["perceptual"], report.losses["adversarial"]]).all()
    first, last = trainer.history[0]["face"], np.mean([h["face"] for h in trainer.history[-5:]])
    assert last < 0.6 * first, (first, last)


def _mean_colour_fill(dataset) -> float:
    """Held-back face-area L1 of a flat fill with the training frames' mean face colour."""
    train, hold = dataset.train, dataset.holdout
    area_t = dataset.areas[train].astype(bool)
    colour = dataset.crops[train].astype(np.float32)[area_t].mean(axis=0)
    crops = dataset.crops[hold].astype(np.float32)
    area = dataset.areas[hold].astype(np.float32)[..., None]
    return float((np.abs(crops - colour) * area).sum() / (area.sum() * 3))


def test_previews_loss_curve_and_checkpoint_are_written(trained):
    from ned_fx.media import read_image
    from ned_fx.rendering.neural import read_checkpoint

    trainer, _, report, folder = trained
    preview = read_image(report.previews[0]).pixels
    assert preview.shape == (4 * 128, 6 * 128, 3)      # 4 frames x condition/refine in/out/replace in/out/target
    assert (folder / "previews" / "loss.png").is_file()
    ckpt = read_checkpoint(report.checkpoint)
    assert ckpt.step == STEPS and ckpt.renderer == trainer.renderer_config and ckpt.trainer == trainer.config
    assert ckpt.history[-1]["step"] == STEPS and ckpt.validation[-1]["step"] == STEPS
    assert ckpt.optim_g["state"] and ckpt.encoding.white == 255.0
    # never pickle: the file is a plain .npz that loads with allow_pickle=False
    with np.load(report.checkpoint, allow_pickle=False) as data:
        assert "meta" in data.files and any(k.startswith("generator/") for k in data.files)
        arrays = {k: data[k] for k in data.files}
    # a checkpoint written before identity refine pairs existed resumes without them
    import json

    meta = json.loads(str(arrays["meta"]))
    assert meta["trainer"].pop("identity_pairs") == 1
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(folder / "older.ckpt.npz", **arrays)
    assert read_checkpoint(folder / "older.ckpt.npz").trainer.identity_pairs == 0


def test_resume_continues_exactly_where_the_checkpoint_stopped(shot, trained):
    import torch

    from ned_fx.rendering.neural import NeuralRenderer, Trainer, read_checkpoint

    trainer, _, report, _ = trained
    _, dataset, _ = shot
    ckpt = read_checkpoint(report.checkpoint)
    resumed = Trainer(dataset, trainer.config, resume=ckpt)
    assert resumed.step == STEPS and resumed.history == trainer.history
    for a, b in zip(trainer.generator.state_dict().values(), resumed.generator.state_dict().values()):
        assert torch.equal(a, b)
    state_a, state_b = trainer.opt_g.state_dict()["state"], resumed.opt_g.state_dict()["state"]
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k]["exp_avg_sq"], state_b[k]["exp_avg_sq"]) for k in state_a)
    resumed.train(STEPS + 2)
    assert resumed.step == STEPS + 2
    # the renderer loads the same generator
    renderer = NeuralRenderer(ckpt)
    batch, out = trainer.generate(dataset.holdout[:2])
    assert torch.allclose(renderer.generate(batch.inputs), out, atol=1e-5)


def test_the_trained_renderer_runs_inside_ned_fx_edit(trained, tmp_path):
    from ned_fx.cli import main
    from ned_fx.media import find_sequence_frames, read_image
    from ned_fx.pipeline import read_analysis
    from ned_fx.rendering import face_region_box

    _, _, report, _ = trained
    rgb, _ = decode_rgb(CLIP)
    common = [str(footage(CLIP)), "--frames", "0-3", "--emotion", "happy", "-q", "--analysis",
              str(tmp_path / "shot.analysis.npz")]
    assert main(["edit", *common, "-o", str(tmp_path / "neural.####.png"), "--renderer", "neural",
                 "--checkpoint", report.checkpoint]) == 0
    assert main(["edit", *common, "-o", str(tmp_path / "geometry.####.png")]) == 0
    shot = read_analysis(tmp_path / "shot.analysis.npz")
    neural = {n: read_image(p).pixels for n, p in find_sequence_frames(tmp_path / "neural.####.png").items()}
    geometry = {n: read_image(p).pixels for n, p in find_sequence_frames(tmp_path / "geometry.####.png").items()}
    assert sorted(neural) == [0, 1, 2, 3]
    for k, n in enumerate(sorted(neural)):
        src, dst = shot.edited.source_landmarks[k], shot.edited.target_landmarks[k]
        x0, y0, x1, y1 = face_region_box(np.concatenate([src, dst]), rgb.shape[2], rgb.shape[1])
        outside = np.ones(rgb.shape[1:3], bool)
        outside[y0:y1, x0:x1] = False
        source = rgb[n]
        assert np.array_equal(neural[n][outside], source[outside]), "pixels outside the face region changed"
        face = np.abs(neural[n][y0:y1, x0:x1].astype(np.int16) - source[y0:y1, x0:x1])
        assert face.mean() > 0.5 and face.max() >= 20, "the face did not change"
        # the generator did something on top of the warp (not a pass-through of the geometry renderer): measured
        # 0.039-0.042 over the frame, ~20k pixels changed (0.12-0.13 before identity refine pairs taught it to
        # leave what the warp already got right alone)
        assert np.abs(neural[n].astype(np.int16) - geometry[n]).mean() > 0.02
    from ned_fx.media.readers import read_provenance

    assert read_provenance(tmp_path / "neural.0000.png").renderer == "neural"


SPEECH_FRAMES = ("0-23", "56-79")     # frames it trained on (and 4 of the 10 held back), then 20 it never saw


def _edit_frames(tmp_path, emotion: str, frames: str, *extra) -> np.ndarray:
    """`ned-fx edit` of d12's ``frames`` to a PNG sequence, read back (FxHxWx3 uint8); the shot's analysis is
    made once per emotion and range, so the neural and the geometry edit of it render the same plan."""
    from ned_fx.cli import main
    from ned_fx.media import find_sequence_frames, read_image

    name = f"{emotion}.{frames}.{'neural' if extra else 'geometry'}"
    out = tmp_path / name / "e.####.png"
    assert main(["edit", str(footage(CLIP)), "--frames", frames, "--emotion", emotion, "-q", "-o", str(out),
                 "--analysis", str(tmp_path / f"{emotion}.{frames}.analysis.npz"), *extra]) == 0
    found = find_sequence_frames(out)
    first, last = (int(v) for v in frames.split("-"))
    assert sorted(found) == list(range(first, last + 1))
    return np.stack([read_image(found[n]).pixels for n in sorted(found)])


@pytest.mark.parametrize("emotion", ["happy", "sad"])
def test_the_neural_edit_keeps_speech_and_shows_the_emotion(trained, tmp_path, emotion):
    """`ned-fx edit --renderer neural --checkpoint` keeps the actor's speech: MediaPipe's runtime (an
    independent tracker) re-tracking the output finds the mouth opening of the source frame by frame, on
    frames the renderer trained on and on frames it never saw; the mouth corners move as the emotion says,
    and every pixel outside the compositor's face region is the source's, bit for bit."""
    import edit_measures as M
    from conftest import mediapipe_on_frames
    from ned_fx.pipeline import read_analysis
    from ned_fx.rendering import face_region_box

    _, _, report, _ = trained
    rgb, _ = decode_rgb(CLIP)
    got, geo, ref = [], [], []
    for frames in SPEECH_FRAMES:
        first, last = (int(v) for v in frames.split("-"))
        source = rgb[first:last + 1]
        neural = _edit_frames(tmp_path, emotion, frames, "--renderer", "neural", "--checkpoint", report.checkpoint)
        geometry = _edit_frames(tmp_path, emotion, frames)
        plan = read_analysis(tmp_path / f"{emotion}.{frames}.analysis.npz").edited
        for k in range(len(source)):
            box = face_region_box(np.concatenate([plan.source_landmarks[k], plan.target_landmarks[k]]),
                                  rgb.shape[2], rgb.shape[1])
            outside = np.ones(rgb.shape[1:3], bool)
            outside[box[1]:box[3], box[0]:box[2]] = False
            assert np.array_equal(neural[k][outside], source[k][outside]), f"frame {first + k}: outside changed"
        got.append(mediapipe_on_frames(neural))
        geo.append(mediapipe_on_frames(geometry))
        ref.append(mediapipe_on_frames(source))
    # Speech: Pearson r of the re-tracked mouth opening against the source's, over all 48 frames. The geometry
    # renderer's edit of the same frames (same plan) sets the floor: test_edit asserts r >= 0.95 for it over the
    # whole of d12 (183 frames; measured 0.963 happy, 0.977 sad), whose wide-open stretches (frames 110-180)
    # spread the series far more than these windows do, so here it reaches 0.937 happy / 0.955 sad (0.949 / 0.965
    # on 0-23, 0.920 / 0.938 on 56-79). The neural edit measured 0.931 / 0.949 (0.934 / 0.956 on 0-23, 0.924 /
    # 0.936 on 56-79); over training seeds 0-3 it stayed within 0.003-0.012 of geometry. Trained without identity
    # refine pairs (TrainerConfig.identity_pairs=0) the generator brightened every mouth opening and measured
    # 0.919 / 0.927 (0.905 / 0.930 on the frames it trained on): 0.018 / 0.028 below geometry.
    opening = {name: [M.mouth_opening(x) for x in lm] for name, lm in (("neural", got), ("geometry", geo),
                                                                       ("source", ref))}
    assert not np.isnan(np.concatenate(opening["neural"])).any(), "the edited face must still be a face"

    def r(name, part=None):
        a, b = ((opening[name][part], opening["source"][part]) if part is not None else
                (np.concatenate(opening[name]), np.concatenate(opening["source"])))
        return float(np.corrcoef(a, b)[0, 1])

    assert r("neural") >= r("geometry") - 0.02, (r("neural"), r("geometry"))
    # per window: no more than 0.03 under the geometry renderer's own r there, and never under 0.85 (the sad
    # recipe of 2026-12-03 pulls the corners down harder: geometry itself reads 0.903 on 0-23, neural 0.885;
    # test_edit keeps the geometry edit's whole-clip r >= 0.95)
    for part, frames in enumerate(SPEECH_FRAMES):
        assert r("neural", part) >= max(0.85, min(0.90, r("geometry", part) - 0.03)), (
            frames, r("neural", part), r("geometry", part))
    # the edit is visible: the corners move as the emotion says (test_edit's floors for the geometry renderer,
    # which measured +0.042 happy / -0.030 sad here) and as much as the geometry renderer moves them (neural
    # measured +0.0425 / -0.0304)
    corner = {name: float(np.mean(M.corner_lift(np.concatenate(lm)) - M.corner_lift(np.concatenate(ref))))
              for name, lm in (("neural", got), ("geometry", geo))}
    if emotion == "happy":
        assert corner["neural"] >= 0.03, corner
    else:
        assert corner["neural"] <= -0.02, corner
    assert abs(corner["neural"] - corner["geometry"]) <= 0.25 * abs(corner["geometry"]), corner


def test_onnx_export_matches_pytorch(trained, tmp_path):
    from ned_fx.rendering.neural import export_onnx, onnx_parity

    _, _, report, _ = trained
    path = export_onnx(report.checkpoint, tmp_path / "actor.onnx")
    assert onnx_parity(report.checkpoint, path) <= 1e-4                     # measured ~2e-7
    assert onnx_parity(report.checkpoint, path, batch=1, size=64) <= 1e-4   # dynamic batch and size


def test_conditioning_images_show_the_face_its_openings_and_are_differentiable(shot):
    import torch

    from ned_fx.rendering.neural import Conditioner
    from ned_fx.topology import mouth_opening

    track, dataset, _ = shot
    conditioner = Conditioner(dataset.mesh, dataset.colours, 128)
    lm = torch.from_numpy(dataset.landmarks[:, 0]).requires_grad_(True)
    labels = torch.from_numpy(dataset.labels[:, 0].astype(np.int64))
    maps = conditioner(lm, labels)
    assert maps.shape == (len(dataset), 7, 128, 128)
    assert torch.allclose(maps[:, :7].detach(), torch.from_numpy(dataset.maps[:, 0].astype(np.float32)), atol=2e-3)
    m = maps.detach()
    nmfc, face, eyes, iris, mouth = m[:, :3], m[:, 3], m[:, 4], m[:, 5], m[:, 6]
    # every face pixel gets an NMFC colour in 0..1, nothing outside the face does
    assert float(nmfc.min()) >= 0 and float(nmfc.max()) <= 1
    assert torch.all((nmfc.sum(1) > 0) <= (face > 0))
    assert 0.15 < float(face.mean()) < 0.6
    # the crop is aligned: the subject's right eye (image left) on the left, the mouth below the eyes
    ys, xs = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    eye_y = (eyes * ys).sum((1, 2)) / eyes.sum((1, 2))
    assert torch.all(eyes.sum((1, 2)) > 20) and torch.all(iris.sum((1, 2)) > 5)
    assert torch.all(iris <= eyes + 1e-6)
    opening = mouth_opening(dataset.landmarks[:, 0])
    open_, closed = int(np.argmax(opening)), int(np.argmin(opening))
    assert mouth[open_].sum() > 5 * max(float(mouth[closed].sum()), 1.0)
    mouth_y = (mouth[open_] * ys).sum() / mouth[open_].sum()
    assert mouth_y > eye_y[open_] + 20
    # differentiable in the landmark positions (barycentric interpolation and iris discs)
    (maps[:, :3].sum() + maps[:, 5].sum()).backward()
    assert torch.isfinite(lm.grad).all() and float(lm.grad.abs().sum()) > 0


def test_plate_encodings_round_trip_and_a_16_bit_plate_renders_like_its_8_bit_self(shot, trained):
    from ned_fx.errors import InvalidParameterError
    from ned_fx.pipeline import EditInstruction, plan_edit
    from ned_fx.rendering import build_render_mesh, face_region_box
    from ned_fx.rendering.neural import NeuralRenderer, PlateEncoding

    linear = PlateEncoding.for_dtype(np.float32)
    values = np.array([-0.5, 0.0, 0.001, 0.18, 1.0, 4.0, 60.0], np.float32)
    assert np.allclose(linear.from_working(linear.to_working(values)), values, rtol=1e-5, atol=1e-7)
    assert PlateEncoding.for_dtype(np.uint16).white == 65535.0
    track, _, _ = shot
    _, _, report, _ = trained
    edited = plan_edit(track, EditInstruction(emotion="happy"))
    rgb, _ = decode_rgb(CLIP)
    k = 20
    src, dst = edited.source_landmarks[k], edited.target_landmarks[k]
    x0, y0, x1, y1 = face_region_box(np.concatenate([src, dst]), rgb.shape[2], rgb.shape[1])
    region8 = rgb[k, y0:y1, x0:x1].astype(np.float32)
    mesh = build_render_mesh(track.mean_shape)
    renderer = NeuralRenderer(report.checkpoint)
    off = np.array([x0, y0, 0.0])
    previous = [edited.target_landmarks[k - 1] - off, edited.target_landmarks[k - 2] - off]
    out8 = renderer.render(region8, src - off, dst - off, mesh, previous=previous, plate_dtype=np.uint8)
    out16 = renderer.render(region8 * 257.0, src - off, dst - off, mesh, previous=previous, plate_dtype=np.uint16)
    assert np.abs(out16 / 257.0 - out8).max() < 0.05
    assert np.abs(out8 - region8).mean() > 0.3
    # the previous frames' targets are an input: without them (a still) the result differs
    still = renderer.render(region8, src - off, dst - off, mesh, plate_dtype=np.uint8)
    assert np.abs(still - out8).max() > 0
    with pytest.raises(InvalidParameterError, match="white level"):
        renderer.render(region8 * 257.0, src - off, dst - off, mesh)    # a 16-bit plate, 8-bit footage


def test_bad_input_gets_named_errors(trained, tmp_path):
    from ned_fx.cli import main
    from ned_fx.errors import InputNotFoundError, InvalidParameterError, UnreadableMediaError
    from ned_fx.rendering.neural import NeuralRenderer, NeuralRendererConfig, TrainerConfig, read_checkpoint

    _, _, report, _ = trained
    with pytest.raises(InvalidParameterError, match="refine, replace"):
        NeuralRendererConfig(mode="paint")
    with pytest.raises(InvalidParameterError, match="multiple of 16"):
        NeuralRendererConfig(crop_size=100, levels=3)
    with pytest.raises(InvalidParameterError, match="auto .*cpu, cuda"):
        TrainerConfig(device="tpu")
    with pytest.raises(InputNotFoundError, match="train-renderer"):
        read_checkpoint(tmp_path / "missing.ckpt")
    np.savez(tmp_path / "other.ckpt.npz", meta=np.array('{"format": "something else"}'))
    with pytest.raises(UnreadableMediaError, match="not a neural renderer checkpoint"):
        read_checkpoint(tmp_path / "other.ckpt.npz")
    renderer = NeuralRenderer(report.checkpoint)
    with pytest.raises(InvalidParameterError, match="float32"):
        renderer.render(np.zeros((64, 64, 3), np.uint8), np.zeros((478, 3)), np.zeros((478, 3)))
    args = [str(footage(CLIP)), "--frames", "0-1", "-o", str(tmp_path / "o.png"), "--emotion", "happy", "-q"]
    assert main(["edit", *args, "--renderer", "neural"]) == 2                      # no checkpoint
    assert main(["edit", *args, "--checkpoint", report.checkpoint]) == 2           # a checkpoint, no neural
    assert main(["edit", *args, "--renderer", "neural", "--checkpoint", str(tmp_path / "nope.ckpt")]) == 2
    assert not (tmp_path / "o.png").exists()
    # train-renderer: an existing checkpoint is not overwritten without --resume; --resume needs one
    existing = tmp_path / "actor.ckpt"
    existing.write_bytes(b"keep me")
    assert main(["train-renderer", str(footage(CLIP)), "-o", str(existing), "--steps", "1", "-q"]) == 2
    assert existing.read_bytes() == b"keep me"
    assert main(["train-renderer", str(footage(CLIP)), "-o", str(tmp_path / "none.ckpt"), "--resume", "-q"]) == 2


def test_train_renderer_command_writes_checkpoint_previews_and_resumes(tmp_path, capsys):
    from ned_fx.cli import main
    from ned_fx.rendering.neural import read_checkpoint

    out = tmp_path / "actor.ckpt"
    args = [str(footage(CLIP)), "--frames", "0-11", "-o", str(out), "--crop-size", "64", "--channels", "8",
            "--levels", "2", "--train-batch", "2", "--holdout", "2", "--preview-every", "4", "--threads", "1",
            "--device", "cpu", "-q"]
    assert main(["train-renderer", *args, "--steps", "6", "--refine-pairs", "3", "--identity-pairs", "2"]) == 0
    text = capsys.readouterr().out
    assert "estimated time to step 6" in text and "held-back frames" in text and "wrote" in text
    ckpt = read_checkpoint(out)
    assert ckpt.step == 6 and ckpt.renderer.crop_size == 64 and ckpt.footage[0]["frames"] == 12
    assert (ckpt.trainer.refine_pairs, ckpt.trainer.identity_pairs) == (3, 2)
    previews = sorted((tmp_path / "actor_previews").glob("preview_*.png"))
    assert [p.name for p in previews] == ["preview_0000004.png", "preview_0000006.png"]
    assert (tmp_path / "actor_previews" / "loss.png").is_file()
    assert main(["train-renderer", *args, "--steps", "8", "--resume", "--onnx", str(tmp_path / "a.onnx")]) == 0
    assert read_checkpoint(out).step == 8 and (tmp_path / "a.onnx").is_file()
    assert read_checkpoint(out).trainer.identity_pairs == 2, "a resumed run keeps its own pairs"
    assert "max abs difference" in capsys.readouterr().out
    # the networks of a resumed run are the checkpoint's
    assert main(["train-renderer", *args, "--steps", "9", "--resume", "--channels", "16"]) == 2


def test_the_daemon_renders_with_the_actors_neural_renderer(trained, tmp_path):
    """``open(renderer="neural", checkpoint=…)``: hosts get the neural renderer through the daemon (the Nuke knobs
    come from describe); without a checkpoint the open is refused with what to do."""
    from daemons import Daemon
    from ned_fx.client import Client, DaemonError

    _, _, report, folder = trained
    d = Daemon(roots=[folder], tmp=tmp_path)
    try:
        with Client(d.endpoint, timeout=60) as c:
            names = [p["name"] for p in c.describe()["parameters"]]
            assert "renderer" in names and "checkpoint" in names
            with pytest.raises(DaemonError, match="checkpoint"):
                c.open(str(footage(CLIP)), frames="0-3", emotion="happy", renderer="neural")
            neural = c.open(str(footage(CLIP)), frames="0-3", emotion="happy", renderer="neural",
                            checkpoint=str(report.checkpoint))
            info = neural.wait(timeout=600)
            assert info["provenance"]["renderer"] == "neural"
            geometry = c.open(str(footage(CLIP)), frames="0-3", emotion="happy")
            geometry.wait(timeout=600)
            a, ra = neural.render(2, with_info=True)
            b, rb = geometry.render(2, with_info=True)
            assert ra.result["reason"] is None and rb.result["reason"] is None
            assert np.abs(a.astype(np.int16) - b).mean() > 0.02        # the generator refined the warp (0.041)
    finally:
        d.kill()
