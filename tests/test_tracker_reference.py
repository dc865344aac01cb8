"""The tracker against MediaPipe's own runtime on every shared clip and photo (the issue's acceptance bar):
mean landmark error <= 2% of the inter-ocular distance, face found on >= 99% of the frames where MediaPipe finds
one, no more frame-to-frame jitter than MediaPipe, and mouth opening that follows speech (r >= 0.95)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import CLIPS, PHOTOS, TALKING_CLIPS, mediapipe_landmarks, our_track
from ned_fx import topology


def _agreement(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    both = ~np.isnan(ours[:, 0, 0]) & ~np.isnan(ref[:, 0, 0])
    iod = topology.inter_ocular(ref[both])
    err = np.linalg.norm(ours[both, :468, :2] - ref[both, :, :2], axis=2).mean(1) / iod
    return float(err.mean()), float(err.max())


def _found_ratio(ours: np.ndarray, ref: np.ndarray) -> float:
    ref_found = ~np.isnan(ref[:, 0, 0])
    return float((~np.isnan(ours[ref_found, 0, 0])).mean())


def _acceleration(lm: np.ndarray) -> float:
    xy = lm[:, :468, :2]
    acc = xy[2:] - 2 * xy[1:-1] + xy[:-2]
    return float(np.nanmean(np.linalg.norm(acc, axis=2)))


@pytest.mark.parametrize("name", CLIPS + PHOTOS)
def test_landmarks_agree_with_mediapipe(name):
    """Like for like (MediaPipe's procedure: a face's first crop is the detector's box alone,
    ``first_crop_passes=0``); and with the default, which crops a face's first frame again from its own landmarks
    where that opens the mouth (TrackerConfig.first_crop_passes/first_crop_gain), the same on every shot but
    d19.jpg, whose dropped jaw MediaPipe reads short from the detector's box
    (test_tracker_runtime.py: test_a_first_crop_is_taken_again_from_its_own_landmarks)."""
    ref = mediapipe_landmarks(name)
    assert (~np.isnan(ref[:, 0, 0])).mean() > 0.9, "the reference itself should see this face"
    track = our_track(name, first_crop_passes=0)
    assert _found_ratio(track.landmarks, ref) >= 0.99
    mean_smoothed, _ = _agreement(track.landmarks, ref)
    mean_raw, max_raw = _agreement(track.landmarks_raw, ref)
    assert mean_smoothed <= 0.02, f"{name}: mean error {mean_smoothed:.2%} of the inter-ocular distance"
    assert mean_raw <= 0.02, f"{name}: raw mean error {mean_raw:.2%}"
    assert max_raw <= 0.06, f"{name}: worst frame {max_raw:.2%}"
    default, _ = _agreement(our_track(name).landmarks_raw, ref)
    print(f"{name}: mean error {mean_raw:.2%} like for like, {default:.2%} with the default")
    if name == "d19.jpg":
        assert default > 0.025, default                 # his jaw read open further than MediaPipe's first crop
    else:
        np.testing.assert_array_equal(our_track(name).landmarks_raw, track.landmarks_raw)


@pytest.mark.parametrize("batch_size", [8, 16])
def test_batched_tracking_agrees_with_mediapipe(batch_size):
    """Batched (GPU-style) tracking on the clip with the fastest head motion (d12 moves ~150 px in 8 frames)."""
    ref = mediapipe_landmarks("d12.mp4")
    track = our_track("d12.mp4", batch_size=batch_size)
    assert _found_ratio(track.landmarks, ref) >= 0.99
    assert list(track.face_ids) == [0], "one face in the clip must keep one id through the chunks"
    mean, worst = _agreement(track.landmarks_raw, ref)
    assert mean <= 0.02, f"batched mean error {mean:.2%}"
    assert worst <= 0.06, f"batched worst frame {worst:.2%}"


@pytest.mark.parametrize("name", TALKING_CLIPS)
def test_no_added_jitter_and_mouth_follows_speech(name):
    ref = mediapipe_landmarks(name)
    track = our_track(name)
    ours_acc, ref_acc = _acceleration(track.landmarks), _acceleration(ref)
    assert ours_acc <= ref_acc, f"acceleration {ours_acc:.3f}px/frame² vs MediaPipe's {ref_acc:.3f}"
    r = np.corrcoef(topology.mouth_opening(track.landmarks), topology.mouth_opening(ref))[0, 1]
    assert r >= 0.95, f"mouth opening correlation {r:.3f}"


def test_smoothing_strength_is_monotonic_and_keeps_speech():
    """More smoothing, less jitter; the strongest setting still keeps the mouth on the speech."""
    ref = mediapipe_landmarks("d12.mp4")
    accs = []
    for s in (0.0, 0.3, 0.8):
        t = our_track("d12.mp4", smoothing=s)
        accs.append(_acceleration(t.landmarks))
        r = np.corrcoef(topology.mouth_opening(t.landmarks), topology.mouth_opening(ref))[0, 1]
        assert r >= 0.95, f"smoothing {s}: mouth correlation {r:.3f}"
    assert accs[0] > accs[1] > accs[2]


def test_iris_points_sit_in_the_eyes():
    """The iris centres (468, 473) lie between their eye's corners, nearer the eye's centre than its width."""
    track = our_track("people_0.png")
    lm = track.landmarks[0]
    for iris, (a, b) in ((468, (33, 133)), (473, (362, 263))):
        centre = (lm[a, :2] + lm[b, :2]) / 2
        width = np.linalg.norm(lm[a, :2] - lm[b, :2])
        assert np.linalg.norm(lm[iris, :2] - centre) < 0.35 * width
        rim = np.linalg.norm(lm[iris + 1: iris + 5, :2] - lm[iris, :2], axis=1)
        assert 0.1 * width < rim.mean() < 0.5 * width
        assert rim.std() < 0.2 * rim.mean(), "an iris should be round"
