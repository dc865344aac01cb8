"""The believability floors on the edits ned-fx ships (the full pipeline: the shot's appearance models, occluders,
skin, mouth interior, eyeballs), judged on the shared footage by the measures of believable_measures.py (and
the independent classifier in fer_classifier.py, test-only):

* a mouth opened where the source was closed shows an interior, never a flat dark hole;
* widened eyes show eye white: the newly uncovered eyeball (outside the iris, away from the lash line) is at least
  0.8 x as bright as the source's visible sclera;
* an intensity-0 edit (and a frame keyed at 0) is bit-exact, face content and all;
* the shot's models travel in the analysis file: a chunk renders the pixels the whole shot renders.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import believable_measures as BM
from conftest import footage, our_track
from ned_fx.appearance import build_shot_models
from ned_fx.media import open_media, read_image
from ned_fx.pipeline import EditInstruction, ShotRenderer, edit_media, plan_edit


@functools.lru_cache(maxsize=None)
def _still_edit(name: str, emotion: str):
    path = footage(name)
    track = our_track(name)
    edited = plan_edit(track, EditInstruction(emotion=emotion, intensity=1.0))
    with open_media(path) as media:
        frame = next(iter(media))
    out, reason = ShotRenderer(track, edited, models=build_shot_models(path, track, edited)).render(frame)
    assert reason is None
    return frame.pixels, out.pixels, edited.source_landmarks[0], edited.target_landmarks[0]


@pytest.mark.parametrize("name", ["people_0.png", "d19.jpg"])
@pytest.mark.parametrize("emotion", ["surprised", "fearful"])
def test_widened_eyes_show_eye_white(name, emotion):
    src, out, s, d = _still_edit(name, emotion)
    for side in ("right", "left"):
        e = BM.eye_new_area_ratio(src, out, s, d, side, exclude_iris=True)
        assert e["n"] >= 20, (side, e)                                  # the edit does widen the eye
        assert e["ratio"] >= 0.8, (side, e)


@pytest.mark.parametrize("name", ["people_0.png", "d8.jpg"])          # closed mouths opened on a lone still
@pytest.mark.parametrize("emotion", ["surprised", "fearful"])
def test_a_mouth_opened_on_a_still_is_never_a_flat_hole(name, emotion):
    src, out, s, d = _still_edit(name, emotion)
    stats = BM.mouth_new_opening(out, s, d)
    assert stats["n"] >= 100, stats                                       # the edit opens the mouth
    assert not BM.flat_black_hole(stats), stats
    assert stats["dark_share"] <= 0.10 and stats["std"] >= 10, stats    # shaded, not a black fill


def test_intensity_zero_and_keys_at_zero_are_bit_exact(tmp_path):
    clip = footage("WDA_AlexandriaOcasioCortez_000.mp4")
    edit_media(clip, tmp_path / "zero.####.png", EditInstruction(emotion="surprised", intensity=0.0), frames="0-5")
    edit_media(clip, tmp_path / "keys.####.png", EditInstruction(keys="0:surprised:0,3:surprised:0,5:surprised:1"),
               frames="0-5")
    with open_media(clip, "0-5") as media:
        plates = {f.number: f.pixels for f in media}
    for n, plate in plates.items():
        np.testing.assert_array_equal(read_image(tmp_path / f"zero.{n:04d}.png").pixels, plate)
    for n in (0, 1, 2, 3):                                                # keyed at 0: untouched
        np.testing.assert_array_equal(read_image(tmp_path / f"keys.{n:04d}.png").pixels, plates[n])
    assert not np.array_equal(read_image(tmp_path / "keys.0005.png").pixels, plates[5])


def test_the_analysis_file_holds_the_models_and_renders_the_same(tmp_path):
    from ned_fx.pipeline import read_analysis

    clip = footage("d12.mp4")
    analysis = tmp_path / "shot.analysis.npz"
    surprised = EditInstruction(emotion="surprised")
    edit_media(clip, tmp_path / "a.####.png", surprised, frames="0-7", analysis=analysis, analysis_only=True)
    shot = read_analysis(analysis)
    assert shot.models is not None and shot.models.mouth is not None and shot.models.eyes is not None
    assert shot.models.glasses is not None and not shot.models.glasses.empty     # d12 wears glasses
    edit_media(clip, tmp_path / "a.####.png", surprised, frames="2-3", analysis=analysis)     # a farm chunk
    whole = edit_media(clip, tmp_path / "b.####.png", surprised, analysis=analysis)            # the whole shot
    assert whole.edited
    for n in (2, 3):
        np.testing.assert_array_equal(read_image(tmp_path / f"a.{n:04d}.png").pixels,
                                      read_image(tmp_path / f"b.{n:04d}.png").pixels)


def test_a_holdout_matte_keeps_its_pixels_exactly(tmp_path):
    """``--holdout-matte``: where the user's matte is 1 (here a hand-sized block over one eye and brow) the edit
    leaves the plate exactly as it was; the rest of the face is still edited."""
    from ned_fx.media import write_image

    photo = footage("people_0.png")
    plate = read_image(photo).pixels
    s = our_track("people_0.png").landmarks[0]
    x0, y0 = (int(v) for v in s[[33, 105], :2].min(axis=0) - 6)
    x1, y1 = (int(v) for v in s[[133, 145], :2].max(axis=0) + 6)
    matte = np.zeros(plate.shape[:2], np.uint8)
    matte[y0:y1, x0:x1] = 255
    write_image(tmp_path / "hold.png", matte)
    from ned_fx.appearance import ContentConfig

    edit_media(photo, tmp_path / "out.png", EditInstruction(emotion="surprised"),
               content=ContentConfig(holdout=str(tmp_path / "hold.png")))
    out = read_image(tmp_path / "out.png").pixels
    np.testing.assert_array_equal(out[y0:y1, x0:x1], plate[y0:y1, x0:x1])
    assert np.abs(out.astype(int) - plate.astype(int)).max() > 40        # the other eye and the mouth moved
