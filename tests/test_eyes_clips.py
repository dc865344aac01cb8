"""The issue's eye floor on talking clips, measured as the eval measures it (tests/believable_measures.py, the
bench's eye_lum column): the whole pipeline's edit (``edit_media``: the shot's eye model, occluders, skin, mouth,
eyes) of a few open-eyed frames, against the same edit with the warp alone."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import footage

#: (clip, emotion, frames): frames where the actor's eyes are open (WDA blinks at 9-11; d3's left eye closes from
#: frame 5 on while the tracker still sees it open: no eyeball is drawn on a closed eye)
CASES = [("WDA_AlexandriaOcasioCortez_000.mp4", "surprised", "0-5"), ("d3.mp4", "fearful", "0-4")]


def _edit(tmp_path, name: str, emotion: str, frames: str, content=None):
    """(source RGB8 frames, output RGB8 frames, source landmarks, target landmarks) of the pipeline's edit."""
    from ned_fx.media import open_media, parse_frame_range, to_display_rgb8
    from ned_fx.pipeline import EditInstruction, edit_media, read_analysis

    out = tmp_path / ("warp" if content is not None else "full")
    out.mkdir()
    kw = {} if content is None else {"content": content}
    edit_media(footage(name), out / "out.####.png", EditInstruction(emotion=emotion, intensity=1.0), frames=frames,
               analysis=out / "analysis.npz", **kw)
    edited = read_analysis(out / "analysis.npz").edited
    with open_media(footage(name), parse_frame_range(frames)) as src:
        src_rgb = [to_display_rgb8(f)[..., :3] for f in src]
    with open_media(str(out / "out.%04d.png")) as res:
        out_rgb = [to_display_rgb8(f)[..., :3] for f in res]
    assert len(src_rgb) == len(out_rgb) == len(edited.target_landmarks)
    return src_rgb, out_rgb, edited.source_landmarks, edited.target_landmarks


def _ratios(src_rgb, out_rgb, src_lms, dst_lms, **kw) -> list[float]:
    import believable_measures as bm

    got = []
    for s, o, a, b in zip(src_rgb, out_rgb, src_lms, dst_lms):
        for side in ("right", "left"):
            e = bm.eye_new_area_ratio(s, o, a, b, side, **kw)
            assert e["n"] >= 40, (side, e)                     # the edit does widen both eyes on every frame
            got.append(e["ratio"])
    return got


@pytest.mark.parametrize("name,emotion,frames", CASES)
def test_widened_eyes_on_a_clip_show_eye_white(tmp_path, name, emotion, frames):
    """Inside the target lid contour (less its lashed margin), the newly uncovered area is >= 0.8 x the visible
    sclera's mean luminance (median over frames and eyes, as the bench reports it; no eye under 0.7), the iris in
    it stays round, and the warp alone (a stretched lid and lash line over the new opening) stays far below."""
    import believable_measures as bm
    from ned_fx.appearance import WARP_ONLY

    src, out, s, d = _edit(tmp_path, name, emotion, frames)
    full = _ratios(src, out, s, d)
    assert np.median(full) >= 0.8 and min(full) >= 0.7, np.round(full, 3)
    # the strict form (the lid margin's row counted too) is reported next to it and stays near
    strict = _ratios(src, out, s, d, margin_px=0)
    assert np.median(strict) >= 0.7, np.round(strict, 3)
    # the iris: more of it shows than in the source (its dark blob's spread across over along the eye rises from
    # the lid-clipped source's), and it is not stretched (a warped iris reads well above 1). Its roundness proper
    # (an ellipse fitted to the limbus away from the lids) is test_eyes.py's; this blob also takes in a shaded
    # eye corner (d3's left eye)
    iris = np.array([bm.iris_ratio(o, b, side) for o, b in zip(out, d) for side in ("right", "left")])
    iris_src = np.array([bm.iris_ratio(o, a, side) for o, a in zip(src, s) for side in ("right", "left")])
    assert np.nanmax(iris) <= 1.1 and np.nanmedian(iris - iris_src) >= 0.1, (np.round(iris_src, 2), np.round(iris, 2))
    _, warp, _, _ = _edit(tmp_path, name, emotion, frames, content=WARP_ONLY)
    plain = _ratios(src, warp, s, d)
    assert np.median(plain) < np.median(full) - 0.15, (np.round(plain, 3), np.round(full, 3))


def test_the_eye_measure_leaves_the_lid_margin_to_the_lid():
    """Why the eval's new-area measure leaves out the target lid's margin (~1 % IOD): a lid moved out by a fraction
    of a pixel (what angry and happy did to the upper lid on WDA, d3, d8, d19) makes a "new area" of lash pixels
    only, which the strict form reads as a dark smear."""
    import believable_measures as bm
    from ned_fx import topology as T
    from ned_fx.media import open_media, parse_frame_range, to_display_rgb8
    from ned_fx.pipeline import track_media

    path = footage("WDA_AlexandriaOcasioCortez_000.mp4")
    lm = track_media(path, frames="0-0").landmarks[0]
    with open_media(path, parse_frame_range("0-0")) as src:
        rgb = to_display_rgb8(next(iter(src)))[..., :3]
    upper = list(T.RIGHT_EYE[1:8])                               # corners 0 and 8 stay
    sliver = lm.copy()
    sliver[upper, 1] -= 0.7                                      # the upper lid out by 0.7 px
    strict = bm.eye_new_area_ratio(rgb, rgb, lm, sliver, "right", margin_px=0)
    assert strict["n"] >= 8 and strict["ratio"] < 0.7, strict   # lash pixels, nothing uncovered ...
    assert np.isnan(bm.eye_new_area_ratio(rgb, rgb, lm, sliver, "right")["ratio"])     # ... and not counted
