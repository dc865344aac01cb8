"""The camera's motion blur on drawn content (ned_fx.rendering.motion): folds smeared along the
face's movement as the plate smears it, on a real fast-moving frame, and nothing changed where the face rests."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import footage
from ned_fx.errors import InvalidParameterError
from ned_fx.rendering.motion import face_motion, motion_kernel, smear


def test_the_kernel_is_a_line_along_the_motion_as_long_as_the_exposure():
    k = motion_kernel((20.0, 0.0), 0.5)                 # 10 px along x
    assert k.dtype == np.float32 and abs(float(k.sum()) - 1.0) < 1e-5
    rows, cols = np.nonzero(k > 1e-6)
    c = k.shape[0] // 2
    assert set(rows) == {c}                             # one row: no smear across the motion
    assert 9 <= cols.max() - cols.min() + 1 <= 12       # ~10 px (anti-aliased ends)
    diag = motion_kernel((0.0, -8.0), 1.0)              # 8 px along y, a full shutter
    assert set(np.nonzero(diag > 1e-6)[1]) == {diag.shape[1] // 2}
    assert motion_kernel((1.5, 0.0), 0.5) is None       # 0.75 px: under a pixel, nothing to blur
    assert motion_kernel((30.0, 0.0), 0.0) is None      # a shutter of 0: drawn sharp
    assert motion_kernel((float("nan"), 0.0), 0.5) is None


def test_a_drawn_line_smears_along_the_motion_and_stays_sharp_across_it():
    drawn = np.zeros((60, 60), np.float32)
    drawn[30, 10:50] = -0.4                             # a horizontal crease (a log-luminance change)
    drawn[10:50, 30] = -0.4                             # a vertical one
    out = drawn.copy()
    box = smear(out, (10, 10, 50, 50), motion_kernel((16.0, 0.0), 0.5))      # 8 px to the side
    assert box == (5, 5, 55, 55)                        # grown by the kernel's reach
    # the vertical crease (across the motion) spreads over ~8 columns and fades; the horizontal one keeps its
    # one-row profile away from its ends
    row = out[40]
    assert (row < -0.01).sum() >= 7 and row.min() > -0.1
    col = out[:, 20]
    assert col[30] < -0.38 and col[28] == 0.0 and col[32] == 0.0
    # what is drawn is kept in all (the smear moves it, it does not add or take any)
    assert abs(float(out.sum()) - float(drawn.sum())) < 1e-3
    colour = np.zeros((60, 60, 3), np.float32)
    colour[20:22, 20:22] = (0.1, 0.2, 0.3)
    assert smear(colour, (20, 20, 22, 22), motion_kernel((0.0, 12.0), 0.5))[1] < 20     # channels alike, along y
    assert np.allclose(colour.sum(axis=(0, 1)), [0.4, 0.8, 1.2], atol=1e-4) and colour[18, 20, 2] > 0
    again = drawn.copy()
    assert smear(again, (10, 10, 50, 50), None) == (10, 10, 50, 50) and np.array_equal(again, drawn)
    assert smear(again, None, motion_kernel((16.0, 0.0), 0.5)) is None


def test_face_motion_is_the_points_median_velocity_and_zero_without_neighbours():
    f, p = 6, 478
    rng = np.random.default_rng(0)
    lm = rng.uniform(100, 200, (1, p, 3)).repeat(f, axis=0)
    lm[:, :, 0] += 4.0 * np.arange(f)[:, None]          # 4 px a frame to the right
    lm[3, :5, :2] += 50.0                               # a few stray points do not move the median
    found = np.ones(f, bool)
    found[5] = False
    m = face_motion(lm, found)
    assert np.allclose(m[:5, 0], 4.0) and np.allclose(m[:5, 1], 0.0)
    assert np.array_equal(m[5], [0.0, 0.0])             # no face
    numbers = np.array([0, 1, 2, 4, 5, 6])              # a gap of one frame between index 2 and 3
    m = face_motion(lm, np.ones(f, bool), numbers)
    assert np.isclose(m[3, 0], (4.0 * 4 - 4.0 * 2) / 3)
    assert np.array_equal(face_motion(lm[:1], np.ones(1, bool)), [[0.0, 0.0]])       # a still


def test_the_shutter_is_validated():
    from ned_fx.appearance import ContentConfig

    assert ContentConfig().shutter == 0.5
    for bad in (-0.1, 1.5, "half", True, float("nan")):
        with pytest.raises(InvalidParameterError):
            ContentConfig(shutter=bad)
    with pytest.raises(InvalidParameterError):
        ContentConfig(min_blur_px=-1)


def test_the_shutter_angle_of_the_command_line():
    from ned_fx.cli import build_parser
    from ned_fx.commands.edit import content_from_args

    parser = build_parser()
    args = parser.parse_args(["edit", "in.mp4", "-o", "out.mp4", "--shutter-angle", "90"])
    assert content_from_args(args).shutter == 0.25
    args = parser.parse_args(["edit", "in.mp4", "-o", "out.mp4"])
    assert content_from_args(args).shutter == 0.5                # the ContentConfig's default: 180 degrees
    for bad in ("-10", "400", "wide"):
        with pytest.raises(SystemExit):
            parser.parse_args(["edit", "in.mp4", "-o", "out.mp4", "--shutter-angle", bad])   # argparse: exit 2


@pytest.fixture(scope="module")
def d12_sad(tmp_path_factory):
    """d12 frames 40-60 analysed for sad (his head jerks sideways around frame 51: the plate is smeared)."""
    from ned_fx.media import open_media
    from ned_fx.pipeline import EditInstruction, edit_media, read_analysis

    tmp = tmp_path_factory.mktemp("motion")
    edit_media(footage("d12.mp4"), tmp / "o.####.png", EditInstruction(emotion="sad", intensity=1.0),
               frames="40-60", analysis=tmp / "a.npz", analysis_only=True)
    with open_media(footage("d12.mp4"), "40-60") as frames:
        return read_analysis(tmp / "a.npz"), list(frames)


def _render(shot, frame, turn=False, push=None, **content):
    from ned_fx.appearance import ContentConfig
    from ned_fx.pipeline import ShotRenderer

    r = ShotRenderer(shot.track, shot.edited, models=shot.models, content=ContentConfig(**content))
    motion = r.motion.copy()
    if turn:                                            # the smear turned 90 degrees (what the test must tell)
        r.motion = np.stack([-r.motion[:, 1], r.motion[:, 0]], axis=1)
    if push is not None:                                # a movement the frame does not have
        r.motion = r.motion + np.asarray(push, np.float64)
    return np.asarray(r.render(frame)[0].pixels, np.float64) @ [0.299, 0.587, 0.114], motion     # 8-bit values


def test_forehead_lines_on_a_smeared_frame_are_smeared_with_it(d12_sad):
    """Sad's forehead lines on d12's frame 51, where his face moves ~45 px a frame sideways and the plate is
    smeared: drawn sharp, they were the only crisp lines on his face (looked at, 2.6x). With the default
    180-degree shutter the lines' change is smeared over ~22 px along the motion: its slopes' energy falls by
    more than half, and it falls alike along and across the motion (wavy lines smeared sideways), where a smear
    turned 90 degrees would take the slope across the lines and leave the slope along them. Frames where the
    face rests keep their drawn content bit for bit."""
    shot, frames = d12_sad
    k = 11                                                       # frame 51
    lm = shot.edited.target_landmarks[k]
    x0, x1 = int(lm[[70, 300], 0].min()), int(lm[[70, 300], 0].max())
    y1 = int(lm[[105, 334], 1].min())
    y0 = max(int(lm[10, 1]) - 5, 0)
    slopes = {}
    for case, kw in (("sharp", {"shutter": 0.0}), ("180", {"shutter": 0.5}), ("turned", {"shutter": 0.5, "turn": True})):
        on, motion = _render(shot, frames[k], **kw)
        off = _render(shot, frames[k], skin=False, **kw)[0]
        change = (on - off)[y0:y1, x0:x1]                                              # the folds' own change
        assert np.abs(change).max() > 3                                                # the lines are there
        slopes[case] = (np.mean(np.diff(change, axis=1) ** 2), np.mean(np.diff(change, axis=0) ** 2))
    assert abs(motion[k][0]) > 30 and abs(motion[k][1]) < 0.3 * abs(motion[k][0]), motion[k]     # sideways
    print("forehead lines' slope energy (along, across the motion):", slopes)
    ratio = {case: a / b for case, (a, b) in slopes.items()}
    assert sum(slopes["180"]) < 0.5 * sum(slopes["sharp"]), slopes          # smeared (1.05 -> 0.45)
    assert ratio["180"] < 1.5 * ratio["sharp"], ratio                        # along the motion ...
    assert ratio["turned"] > 2.0 * ratio["sharp"], ratio                     # ... not across it


def test_a_face_at_rest_keeps_its_drawn_content_bit_for_bit(tmp_path):
    """d3 frames 12-24 (she holds still): surprised's forehead lines and widened eyes, where her face moves under
    2 px a frame (a smear under a pixel), are the same with the shutter as without it."""
    from ned_fx.media import open_media
    from ned_fx.pipeline import EditInstruction, edit_media, read_analysis

    edit_media(footage("d3.mp4"), tmp_path / "o.####.png", EditInstruction(emotion="surprised", intensity=1.0),
               frames="12-24", analysis=tmp_path / "a.npz", analysis_only=True)
    shot = read_analysis(tmp_path / "a.npz")
    with open_media(footage("d3.mp4"), "18-18") as frames:
        frame = next(iter(frames))
    sharp, motion = _render(shot, frame, shutter=0.0)
    assert 0.5 * np.hypot(*motion[6]) < 1.0, motion[6]
    assert np.array_equal(_render(shot, frame, shutter=0.5)[0], sharp)
    # ... and there is drawn content to smear: the same frame moving 24 px a frame is changed
    moved = _render(shot, frame, shutter=0.5, push=(0.0, 24.0))[0]
    assert np.abs(moved - sharp).max() > 2
