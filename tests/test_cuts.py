"""A plate that holds a shot cut: the tracker looks for the face afresh at the cut, smoothing stops there, and an
edit refuses the range (naming each shot's frames) instead of building one actor's neutral, speech gate and mouth,
eye and skin models from two shots.

The multi-shot plate is made in the test from the shared clips' own frames (d12, then WDA, then d3, as a timeline
render would join them), never written into the project.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from conftest import decode_rgb, our_track
from ned_fx import topology as T
from ned_fx.errors import InvalidParameterError, ShotCutError
from ned_fx.tracking import FaceTracker, TrackerConfig
from ned_fx.tracking.cuts import CutWatch, change, find_cuts, shots, thumbnail
from ned_fx.tracking.smoothing import smooth_landmarks
from ned_fx.tracking.tracker import assemble_track

CLIPS = ("d12.mp4", "WDA_AlexandriaOcasioCortez_000.mp4", "d3.mp4")
SHOT = 24          # frames taken from each clip


@functools.lru_cache(maxsize=None)
def _tracker(cut_threshold: float | None = None) -> FaceTracker:
    from conftest import _engines

    cfg = TrackerConfig(device="cpu", **({} if cut_threshold is None else {"cut_threshold": cut_threshold}))
    return FaceTracker(cfg, engines=_engines())


def _joined() -> np.ndarray:
    """Three shots: the first SHOT frames of each clip, one after the other."""
    return np.concatenate([decode_rgb(name)[0][:SHOT] for name in CLIPS])


@functools.lru_cache(maxsize=None)
def _track(cut_threshold: float | None = None, first: int = 0, count: int | None = None):
    frames = _joined()[first:first + count if count else None]
    tracker = _tracker(cut_threshold)
    seen = list(tracker.iter_track(iter(frames)))
    return assemble_track(seen, np.arange(first, first + len(frames)), frames.shape[2], frames.shape[1], 30.0,
                          tracker.config)


def _error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per frame: mean distance of the 468 mesh points over the inter-ocular distance of ``b``."""
    iod = np.linalg.norm(b[:, T.EYE_OUTER_RIGHT, :2] - b[:, T.EYE_OUTER_LEFT, :2], axis=1)
    return np.linalg.norm(a[:, :468, :2] - b[:, :468, :2], axis=2).mean(1) / iod


# ---- the detector on thumbnails ----------------------------------------------------------------------------------

def test_a_cut_between_two_clips_is_found_and_a_shared_clip_has_none():
    thumbs = [thumbnail(f) for f in _joined()]
    assert find_cuts(thumbs, 30.0, 3.0) == [SHOT, 2 * SHOT]
    assert change(thumbs[SHOT - 1], thumbs[SHOT]) > 50          # 68-70 measured
    for name in CLIPS:                                          # every frame of the clips: no cut anywhere
        frames = decode_rgb(name)[0]
        thumbs = [thumbnail(f) for f in frames]
        assert find_cuts(thumbs, 30.0, 3.0) == [], name
        # d12's hands and turns change a thumbnail by ~20 at most: the threshold has room on both sides
        assert max(change(a, b) for a, b in zip(thumbs, thumbs[1:])) < 25, name
    assert find_cuts([thumbnail(f) for f in _joined()], 0.0, 3.0) == []      # 0: no detection


def test_a_flash_frame_or_a_steady_pan_is_not_a_cut():
    frames = decode_rgb("d12.mp4")[0][:30].astype(np.float32)
    flashed = frames.copy()
    flashed[12] = np.clip(flashed[12] * 2.2 + 40, 0, 255)      # one over-exposed frame (a flash, a glitch)
    thumbs = [thumbnail(f.astype(np.uint8)) for f in flashed]
    assert change(thumbs[11], thumbs[12]) > 30                 # it changes as much as a cut does ...
    watch = CutWatch(30.0, 3.0)
    # ... and is suspected at once, as is the frame after it: but the picture comes back, so neither is a cut
    assert [t for t, th in enumerate(thumbs) if watch.see(th)] == [12, 13]
    assert find_cuts(thumbs, 30.0, 3.0) == []
    # a whip pan from a still camera, 4 px a frame faster each frame up to 48: the fast frames change as much as a
    # cut, but no frame much more than the ones before it (a pan that starts at full speed is a cut to this test:
    # --ignore-cuts)
    wide = decode_rgb("d3.mp4")[0][0]
    strip = np.concatenate([wide, wide[:, ::-1], wide, wide[:, ::-1]], axis=1)
    x = np.concatenate([np.zeros(4), np.cumsum(np.minimum(4 * np.arange(1, 31), 48))]).astype(int)
    pan = [thumbnail(np.ascontiguousarray(strip[:, p:p + 512])) for p in x]
    assert max(change(a, b) for a, b in zip(pan, pan[1:])) > 30
    assert find_cuts(pan, 30.0, 3.0) == []
    # the last frame of a range may start a shot (no next frame to confirm it)
    assert find_cuts([thumbnail(f) for f in _joined()[: SHOT + 1]], 30.0, 3.0) == [SHOT]


def test_shots_split_at_cuts():
    assert shots(10, []) == [(0, 9)]
    assert shots(10, [4, 7]) == [(0, 3), (4, 6), (7, 9)]
    assert shots(3, [0, 5]) == [(0, 2)]


def test_smoothing_does_not_blend_across_a_cut():
    lm = np.zeros((40, 478, 3))
    lm[:, :, :2] = np.random.default_rng(0).uniform(80, 120, (478, 2))       # a still face ...
    lm[:, T.EYE_OUTER_LEFT, 0] += 60
    lm[20:, :, 0] += 6                                          # ... and another shot's, 6 px (10 % IOD) aside
    found = np.ones(40, bool)
    apart = smooth_landmarks(lm, found, 30.0, 0.3, breaks=[20])
    across = smooth_landmarks(lm, found, 30.0, 0.3)
    np.testing.assert_allclose(apart, lm, atol=1e-9)            # each shot as it is
    assert np.abs(across[19:21, :, 0] - lm[19:21, :, 0]).mean() > 0.2    # one run: the step smeared into both
    np.testing.assert_array_equal(smooth_landmarks(lm, found, 30.0, 0.3, breaks=[]), across)


# ---- the tracker -------------------------------------------------------------------------------------------------

def test_the_tracker_looks_for_the_face_afresh_at_a_cut():
    track = _track()
    assert track.meta["cuts"] == [SHOT, 2 * SHOT]
    blind = _track(0.0)                                         # cut detection off: one shot
    assert "cuts" not in blind.meta
    for k in (1, 2):                                            # each later shot tracked on its own
        alone = _track(None, k * SHOT, SHOT)
        assert "cuts" not in alone.meta
        mine = slice(k * SHOT, (k + 1) * SHOT)
        np.testing.assert_array_equal(track.landmarks_raw[mine], alone.landmarks_raw)    # found as on its own
        np.testing.assert_array_equal(track.landmarks[mine], alone.landmarks)            # smoothed on its own
    # followed from the last shot's face, WDA's first frame was read 6.8 % of the inter-ocular distance off (d3's
    # 1.4 %), the next one 3.0 %
    assert _error(blind.landmarks_raw[SHOT:SHOT + 2], _track(None, SHOT, SHOT).landmarks_raw[:2]).min() > 0.02


def test_a_tracker_variant_shares_the_engines_and_tracks_as_its_config_says():
    """The daemon's warm tracker, for one session without cut detection: the same networks, nothing loaded."""
    warm = _tracker()
    blind = warm.variant(cut_threshold=0.0)
    assert blind.engines is warm.engines and blind._workers is warm._workers
    assert (blind.config.cut_threshold, warm.config.cut_threshold) == (0.0, TrackerConfig().cut_threshold)
    assert warm.variant(cut_threshold=warm.config.cut_threshold) is warm
    with pytest.raises(InvalidParameterError, match="not iris_model"):
        warm.variant(iris_model="attention")
    frames = _joined()[SHOT - 4:SHOT + 4]
    got = assemble_track(list(blind.iter_track(iter(frames))), np.arange(SHOT - 4, SHOT + 4), 512, 512, 30.0,
                         blind.config)
    assert "cuts" not in got.meta
    np.testing.assert_array_equal(got.landmarks_raw, _track(0.0, SHOT - 4, 8).landmarks_raw)
    assert _track(None, SHOT - 4, 8).meta["cuts"] == [SHOT]             # the warm one still finds it


def test_shared_clips_track_as_one_shot():
    for name in CLIPS:
        assert "cuts" not in our_track(name).meta, name


# ---- the edit ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def joined_movie(tmp_path_factory):
    from ned_fx.media import MovieWriter

    path = tmp_path_factory.mktemp("cuts") / "three_shots.mp4"
    with MovieWriter(path, 30, 512, 512, crf=10) as w:
        for frame in _joined():
            w.write(frame)
    return path


def test_an_edit_refuses_a_range_that_holds_a_cut(joined_movie, tmp_path):
    from ned_fx.pipeline import EditInstruction, edit_media

    out = tmp_path / "out.mp4"
    with pytest.raises(ShotCutError) as caught:
        edit_media(joined_movie, out, EditInstruction(emotion="happy"), track_cache=True)
    assert isinstance(caught.value, InvalidParameterError)      # a typed error: exit code 2, "invalid_parameter"
    assert caught.value.shots == ((0, SHOT - 1), (SHOT, 2 * SHOT - 1), (2 * SHOT, 3 * SHOT - 1))
    message = str(caught.value)
    assert f"--frames 0-{SHOT - 1}, --frames {SHOT}-{2 * SHOT - 1}" in message and "--ignore-cuts" in message
    assert not out.exists() and not list(tmp_path.iterdir())   # nothing written
    with pytest.raises(ShotCutError):                           # a cached track still knows its cuts
        edit_media(joined_movie, out, EditInstruction(emotion="happy"), track_cache=True)
    # one shot of it edits, and so does the whole range tracked as one shot
    one = edit_media(joined_movie, tmp_path / "one.mp4", EditInstruction(emotion="happy"),
                     frames=f"{SHOT}-{SHOT + 5}")
    assert len(one.edited) == 6
    whole = edit_media(joined_movie, tmp_path / "whole.mp4", EditInstruction(emotion="happy"), frames="20-27",
                       tracker_config=TrackerConfig(cut_threshold=0.0))
    assert len(whole.edited) == 8


def test_the_cli_names_the_shots_and_takes_ignore_cuts(joined_movie, tmp_path, capsys):
    from ned_fx.cli import build_parser, main, tracker_config

    args = build_parser().parse_args(["edit", str(joined_movie), "-o", str(tmp_path / "o.mp4"), "--ignore-cuts"])
    assert tracker_config(args).cut_threshold == 0.0
    args = build_parser().parse_args(["edit", str(joined_movie), "-o", str(tmp_path / "o.mp4"),
                                      "--cut-threshold", "50"])
    assert tracker_config(args).cut_threshold == 50.0
    with pytest.raises(InvalidParameterError):
        TrackerConfig(cut_threshold=-1.0)
    code = main(["edit", str(joined_movie), "-o", str(tmp_path / "o.mp4"), "--emotion", "sad", "-q",
                 "--frames", f"{SHOT - 4}-{SHOT + 3}"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"--frames {SHOT - 4}-{SHOT - 1}, --frames {SHOT}-{SHOT + 3}" in err
    assert not (tmp_path / "o.mp4").exists()
    # a contact sheet of the whole plate would show one shot's edit planned from three
    assert main(["gallery", str(joined_movie), "-o", str(tmp_path / "sheet.png"), "--emotions", "happy"]) == 2
    assert "3 shots" in capsys.readouterr().err and not (tmp_path / "sheet.png").exists()


def test_a_daemon_session_over_a_cut_is_a_typed_error(joined_movie, tmp_path):
    """A host's shot (Nuke's Analyse, a Resolve pass) over a cut gets the same answer as the CLI, as an
    ``invalid_parameter`` error naming the shots; a range inside one shot analyses."""
    from daemons import Daemon
    from ned_fx.client import Client, DaemonError

    d = Daemon("--device", "cpu", tmp=tmp_path, roots=(joined_movie.parent,))
    try:
        with Client(d.endpoint, timeout=60, retries=0) as c:
            shot = c.open(str(joined_movie), frames=f"{SHOT - 3}-{SHOT + 2}", emotion="happy")
            with pytest.raises(DaemonError) as caught:
                shot.wait()
            assert caught.value.code == "invalid_parameter"
            assert f"--frames {SHOT - 3}-{SHOT - 1}, --frames {SHOT}-{SHOT + 2}" in str(caught.value)
            shot = c.open(str(joined_movie), frames=f"{SHOT}-{SHOT + 2}", emotion="happy")
            assert shot.wait()["state"] == "ready"
            # ignore_cuts (the hosts' "Ignore cuts" box, a shot list's key): the range tracked as one shot, with
            # the daemon's warm tracker's engines; its own config keeps finding cuts for the next session
            with pytest.raises(DaemonError, match="ignore_cuts must be true or false"):
                c.open(str(joined_movie), frames=f"{SHOT - 3}-{SHOT + 2}", emotion="happy", ignore_cuts="yes")
            shot = c.open(str(joined_movie), frames=f"{SHOT - 3}-{SHOT + 2}", emotion="happy", ignore_cuts=True)
            assert shot.wait()["state"] == "ready"
            assert len(shot.render(SHOT).shape) == 3                     # the frame after the cut renders
            shot = c.open(str(joined_movie), frames=f"{SHOT - 3}-{SHOT + 2}", emotion="happy", ignore_cuts=False)
            with pytest.raises(DaemonError, match="hold 2 shots"):
                shot.wait()
    finally:
        d.kill()
