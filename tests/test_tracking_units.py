"""Unit tests of the tracker's parts: geometry, NMS, converter, weights, pose, smoothing, config."""

from __future__ import annotations

import functools
import math
import zipfile

import numpy as np
import pytest
import torch

from ned_fx.errors import InvalidParameterError, UnreadableMediaError, WeightsMissingError
from ned_fx.tracking import TrackerConfig, geometry as g, weights
from ned_fx.tracking.pose import canonical_orientation, euler_degrees, fit_poses, similarity
from ned_fx.tracking.smoothing import one_euro, smooth_landmarks


def test_anchors_match_blazeface_layout():
    a = g.ssd_anchors(128)
    assert a.shape == (896, 2)
    assert np.allclose(a[0], [0.5 / 16, 0.5 / 16]) and np.allclose(a[1], a[0])      # 2 anchors per 16x16 cell
    assert np.allclose(a[512], [0.5 / 8, 0.5 / 8]) and np.allclose(a[512:518], a[512])  # 6 per 8x8 cell


def test_weighted_nms_merges_overlaps_and_keeps_separate_faces():
    base = np.zeros((8, 2), np.float32)
    base[0], base[1] = (0.1, 0.1), (0.3, 0.3)
    shifted = base + 0.01
    far = base + 0.5
    pts = np.stack([base, shifted, far])
    out = g.weighted_nms(pts, np.array([0.9, 0.6, 0.8]), 0.5, 0.3, 4)
    assert len(out) == 2
    merged, score = out[0]
    assert score == pytest.approx(0.9)
    assert np.allclose(merged, (base * 0.9 + shifted * 0.6) / 1.5, atol=1e-6)
    assert np.allclose(out[1][0], far)
    assert g.weighted_nms(pts, np.array([0.1, 0.2, 0.3]), 0.5, 0.3, 4) == []


def test_roi_affine_maps_crop_corners_and_crops_sample_the_right_pixels():
    roi = np.array([60.0, 40.0, 32.0, math.pi / 2])
    a = g.roi_to_affine(roi[None], 16)[0]
    centre = g.apply_affine(a, np.array([[8.0, 8.0]]))[0]
    assert np.allclose(centre, [60, 40])
    # +x in the crop points along +y in the frame for a quarter turn
    step = g.apply_affine(a, np.array([[9.0, 8.0]]))[0] - centre
    assert np.allclose(step, [0, 2.0], atol=1e-9)
    # an axis-aligned 1:1 crop of a gradient picture returns the same pixels
    frame = torch.arange(100 * 120, dtype=torch.float32).reshape(1, 1, 100, 120)
    a1 = g.roi_to_affine(np.array([[30.0, 20.0, 10.0, 0.0]]), 10)
    crop = g.crop_images(frame, torch.tensor([0]), a1, 10)
    assert torch.allclose(crop[0, 0], frame[0, 0, 15:25, 25:35])
    flipped = g.crop_images(frame, torch.tensor([0]), g.roi_to_affine(np.array([[30.0, 20.0, 10.0, 0.0]]), 10,
                                                                        flip=True), 10)
    assert torch.allclose(flipped[0, 0], frame[0, 0, 15:25, 25:35].flip(-1))


def test_missing_weights_name_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("NED_FX_HOME", str(tmp_path))
    with pytest.raises(WeightsMissingError, match="ned-fx weights install"):
        weights.require("face_mesh")


def test_install_from_a_wrong_wheel_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NED_FX_HOME", str(tmp_path / "home"))
    bogus = tmp_path / "mediapipe-0.10.21-bogus.whl"
    with zipfile.ZipFile(bogus, "w") as zf:
        zf.writestr("mediapipe/__init__.py", "")
    with pytest.raises(UnreadableMediaError, match="does not contain"):
        weights.install(wheel=bogus)
    (tmp_path / "not.whl").write_bytes(b"nope")
    with pytest.raises(UnreadableMediaError, match="not a wheel"):
        weights.install(wheel=tmp_path / "not.whl")


def test_installed_weights_record_their_source():
    from ned_fx.tracking.tflite_convert import load_net

    spec, arrays, source = load_net(weights.require("face_mesh"))
    assert source["member"].endswith("face_landmark.tflite") and len(source["sha256"]) == 64
    n = sum(a.size for a in arrays.values())
    assert 590_000 < n < 620_000, "the face mesh has ~605k weights"
    assert spec[0]["input_shapes"][0] == [1, 192, 192, 3]


def _rot(yaw, pitch, roll):
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(30, 3))
    r = _rot(20, -10, 5)
    dst = 2.5 * src @ r.T + [1, 2, 3]
    s, r2, t = similarity(src, dst)
    assert s == pytest.approx(2.5) and np.allclose(r2, r) and np.allclose(t, [1, 2, 3])
    assert np.allclose(euler_degrees(r2), [20, -10, 5], atol=1e-6)


def test_fit_poses_separates_head_motion_from_shape():
    from conftest import our_track

    shape = canonical_orientation(our_track("people_0.png").landmarks[0] - our_track("people_0.png").landmarks[0].mean(0))
    frames = []
    angles = [(0, 0, 0), (15, 0, 0), (0, 10, 0), (0, 0, -8), (-12, 5, 3)]
    for yaw, pitch, roll in angles:
        frames.append(1.3 * shape @ _rot(yaw, pitch, roll).T + [256, 250, 0])
    poses = fit_poses(np.stack(frames), np.ones(5, bool))
    rel = [euler_degrees(poses["rotation"][i] @ poses["rotation"][0].T) for i in range(5)]
    assert np.allclose(rel, angles, atol=0.5)
    recon = np.einsum("fij,pj->fpi", poses["matrix"][:, :, :3], poses["mean_shape"]) + poses["matrix"][:, None, :, 3]
    assert np.abs(recon - np.stack(frames)).max() < 1e-6 * 1.3 * np.abs(shape).max() + 1e-6


def test_one_euro_zero_phase_follows_a_fast_sine_without_lag():
    fps = 25.0
    t = np.arange(100) / fps
    clean = np.sin(2 * np.pi * 3.0 * t)[:, None]          # 3 Hz: syllable rate
    noisy = clean + np.random.default_rng(0).normal(0, 0.05, clean.shape)
    lm = np.zeros((100, 478, 3))
    lm[:, 33, 0], lm[:, 263, 0] = 0.0, 1.0                  # unit inter-ocular distance
    lm[:, 13, 1] = noisy[:, 0]
    out = smooth_landmarks(lm, np.ones(100, bool), fps, 0.3)[:, 13, 1]
    lags = [np.dot(out[10:-10], clean[10 + k: 90 + k, 0]) for k in range(-3, 4)]
    assert int(np.argmax(lags)) == 3, "zero-phase: best alignment at lag 0"
    assert np.abs(out - clean[:, 0]).mean() < np.abs(noisy[:, 0] - clean[:, 0]).mean()
    causal = one_euro(noisy, fps, 0.5, 0.0)[:, 0]
    assert np.abs(causal - clean[:, 0]).mean() > np.abs(out - clean[:, 0]).mean()


def test_smoothing_leaves_gaps_alone():
    lm = np.random.default_rng(0).normal(size=(10, 478, 3))
    found = np.array([1, 1, 1, 1, 0, 0, 1, 1, 1, 1], bool)
    lm[~found] = np.nan
    out = smooth_landmarks(lm, found, 25, 0.5)
    assert np.isnan(out[~found]).all() and not np.isnan(out[found]).any()


@pytest.mark.parametrize("kwargs", [{"smoothing": 1.5}, {"max_faces": 0}, {"batch_size": 0},
                                    {"min_face_score": -0.1}, {"runtime": "tflite"}, {"iris_model": "iris"}])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(InvalidParameterError):
        TrackerConfig(**kwargs)


# ---- the onnxruntime runtime (the CPU default where onnxruntime is installed) ---------------------------------------

def test_auto_runtime_is_onnxruntime_on_the_cpu_and_torch_elsewhere(monkeypatch):
    from ned_fx.tracking import runtime

    monkeypatch.setattr(runtime, "ort_available", lambda: True)
    assert runtime.runtime_name(TrackerConfig(device="cpu")) == "onnxruntime"
    assert runtime.runtime_name(TrackerConfig(device="cuda")) == "torch"
    assert runtime.runtime_name(TrackerConfig(device="cpu", runtime="torch")) == "torch"
    monkeypatch.setattr(runtime, "ort_available", lambda: False)
    assert runtime.runtime_name(TrackerConfig(device="cpu")) == "torch"


@functools.lru_cache(maxsize=None)
def _tracked(name: str, runtime: str, frames: int = 60, iris_model: str = "eye_crops"):
    from conftest import decode_rgb
    from ned_fx.tracking import FaceTracker

    rgb = decode_rgb(name)[0][:frames]
    tracker = FaceTracker(TrackerConfig(device="cpu", runtime=runtime, iris_model=iris_model))
    assert tracker.runtime == runtime
    seen = list(tracker.iter_track(iter(rgb)))
    return np.stack([ff.faces[0][0] if 0 in ff.faces else np.full((478, 3), np.nan) for ff in seen]), rgb


@pytest.mark.parametrize("name", ["WDA_AlexandriaOcasioCortez_000.mp4", "d12.mp4", "d3.mp4"])
def test_onnxruntime_tracker_agrees_with_mediapipe(name):
    """The CPU runtime's raw landmarks (the plain face mesh: iris_model eye_crops) against MediaPipe's plain face
    mesh on the same frames: mean error <= 2 % IOD (the attention mesh against MediaPipe's refine_landmarks=True:
    test_attention_mesh.py)."""
    pytest.importorskip("onnxruntime")
    from conftest import footage, mediapipe_on_frames
    from ned_fx import topology

    footage(name)
    ours, rgb = _tracked(name, "onnxruntime")
    ref = mediapipe_on_frames(rgb)
    both = ~np.isnan(ours[:, 0, 0]) & ~np.isnan(ref[:, 0, 0])
    assert both.mean() >= 0.99
    err = np.linalg.norm(ours[both, :468, :2] - ref[both, :, :2], axis=2).mean(1) / topology.inter_ocular(ref[both])
    assert err.mean() <= 0.02, f"{name}: mean error {err.mean():.2%} of the inter-ocular distance"


@pytest.mark.parametrize("iris_model", ["eye_crops", "attention"])
def test_onnxruntime_and_torch_track_alike(iris_model):
    pytest.importorskip("onnxruntime")
    from conftest import footage

    footage("d12.mp4")
    ort, _ = _tracked("d12.mp4", "onnxruntime", 30 if iris_model == "eye_crops" else 10, iris_model)
    ref, _ = _tracked("d12.mp4", "torch", 30 if iris_model == "eye_crops" else 10, iris_model)
    assert not np.isnan(ort[:, 0, 0]).any() and not np.isnan(ref[:, 0, 0]).any()
    diff = np.linalg.norm(ort[..., :2] - ref[..., :2], axis=2)
    assert diff.mean() < 0.05 and diff.max() < 1.0, (diff.mean(), diff.max())     # pixels, iris points included


def test_auto_runtime_falls_back_to_torch_when_no_export_is_usable(monkeypatch):
    pytest.importorskip("onnxruntime")
    from ned_fx.tracking import FaceTracker, ort

    def broken(**kwargs):
        raise ImportError("no onnx package")

    monkeypatch.setattr(ort, "load_ort_engines", broken)
    assert FaceTracker(TrackerConfig(device="cpu", iris=False)).runtime == "torch"
    with pytest.raises(ImportError):
        FaceTracker(TrackerConfig(device="cpu", iris=False, runtime="onnxruntime"))


def _iris_tracked(frames: np.ndarray, reuse: float) -> tuple[np.ndarray, int]:
    """Raw landmarks of face 0 (Fx478x3) with TrackerConfig.iris_reuse ``reuse`` (onnxruntime when installed,
    else PyTorch) and the number of eye crops the iris net ran on."""
    from ned_fx.tracking import FaceTracker

    tracker = FaceTracker(TrackerConfig(device="cpu", iris_reuse=reuse, iris_model="eye_crops"))
    net, crops = tracker.engines["iris"], [0]

    def counted(x):
        crops[0] += len(x)
        return net(x)

    tracker.engines["iris"] = counted
    seen = list(tracker.iter_track(iter(frames)))
    return np.stack([ff.faces[0][0] if 0 in ff.faces else np.full((478, 3), np.nan) for ff in seen]), crops[0]


def test_iris_reuse_skips_the_net_only_on_eyes_that_hardly_changed():
    """iris_reuse: the mesh is untouched, the net runs on fewer eye crops, the iris points stay within 0.5 % of the
    inter-ocular distance of the every-frame net on average, and an eye that changed (painted over) runs it again."""
    from conftest import decode_rgb
    from ned_fx import topology

    rgb = decode_rgb("d3.mp4")[0][:40].copy()
    every, n_every = _iris_tracked(rgb, 0.0)
    reused, n_reused = _iris_tracked(rgb, 0.02)
    assert not np.isnan(every[:, 0, 0]).any()
    assert n_every == 2 * len(rgb)
    assert n_reused < 0.9 * n_every, (n_reused, n_every)                      # d3: ~40-60 % of the crops
    assert np.array_equal(reused[:, :468], every[:, :468])                     # the mesh does not depend on it
    dev = np.linalg.norm(reused[:, 468:, :2] - every[:, 468:, :2], axis=2) / topology.inter_ocular(every)[:, None]
    assert dev.mean() < 0.005 and dev.max() < 0.04, (dev.mean(), dev.max())
    # each eye crop the net ran on gives the every-frame net's points (one eye or two per batch: within 1e-3 px)
    per_eye = np.linalg.norm(reused[:, 468:, :2] - every[:, 468:, :2], axis=2).reshape(-1, 2, 5).max(2)
    assert (per_eye < 1e-3).sum() >= n_reused, ((per_eye < 1e-3).sum(), n_reused)
    # the same frame over and over: the net runs once per eye for the first frames only; then an eye painted over
    still = np.repeat(rgb[:1], 8, axis=0)
    _, n_still = _iris_tracked(still, 0.02)
    assert n_still <= 2 * 3, n_still
    painted = still.copy()
    right_eye = every[0, 468, :2].astype(int)
    painted[6:, right_eye[1] - 6: right_eye[1] + 6, right_eye[0] - 6: right_eye[0] + 6] = (40, 140, 40)
    _, n_painted = _iris_tracked(painted, 0.02)
    assert n_painted >= n_still + 1, (n_painted, n_still)


def test_iris_reuse_is_checked():
    with pytest.raises(InvalidParameterError, match="iris_reuse"):
        TrackerConfig(iris_reuse=-0.1)
    with pytest.raises(InvalidParameterError, match="iris_reuse"):
        TrackerConfig(iris_reuse=1.5)
