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
    # (an ellipse fitted to the limbus away from the lids, below) is also test_eyes.py's; this blob also takes in
    # a shaded eye corner (d3's left eye)
    iris = np.array([bm.iris_ratio(o, b, side) for o, b in zip(out, d) for side in ("right", "left")])
    iris_src = np.array([bm.iris_ratio(o, a, side) for o, a in zip(src, s) for side in ("right", "left")])
    assert np.nanmax(iris) <= 1.1 and np.nanmedian(iris - iris_src) >= 0.1, (np.round(iris_src, 2), np.round(iris, 2))
    # the floor: an ellipse fitted to the limbus (away from the lids) on frontal frames
    fitted = np.array([bm.iris_roundness(o, b, side) for o, a, b in zip(out, s, d) if bm.frontal(a)
                       for side in ("right", "left")])
    assert np.isfinite(fitted).sum() >= 4 and np.nanmedian(fitted) >= 0.9, np.round(fitted, 2)
    _, warp, _, _ = _edit(tmp_path, name, emotion, frames, content=WARP_ONLY)
    plain = _ratios(src, warp, s, d)
    assert np.median(plain) < np.median(full) - 0.15, (np.round(plain, 3), np.round(full, 3))


def test_a_small_iris_seen_between_lids_is_drawn_round(tmp_path, monkeypatch):
    """d12 (behind glasses, an iris ~8 px across its radius) surprised: the iris texture's rings took their colour
    from every cell seen, and the lids cover his iris's top and bottom in most frames, so the cells seen there near
    the rim (lid skin, the lid's shade, the sclera past a soft rim) brightened the rings from half the radius out
    and passed as iris against them: the iris was drawn squashed, its limbus ellipse 0.87 of the radius high
    against 0.96 wide (the bench's iris_round 0.894, under the issue's 0.9; a perfect disc between the same lids
    reads 0.99). Each ring's colour is now its sides' (``EyeConfig.iris_side_angle``) and cells brighter than it
    fade out (``iris_detail_bright``): >= 0.9 on his first 20 frames (0.940), rounder than with both off (0.927;
    0.896 while the white at the iris disc's edge was still pasted on as a catchlight, before ``catch_inside``)."""
    import dataclasses

    import believable_measures as bm
    from ned_fx.rendering.eyes import EyeConfig, EyeModelBuilder

    def roundness(where):
        src, out, s, d = _edit(where, "d12.mp4", "surprised", "0-19")
        fitted = np.array([bm.iris_roundness(o, b, side) for o, a, b in zip(out, s, d) if bm.frontal(a)
                           for side in ("right", "left")])
        assert np.isfinite(fitted).sum() >= 20, np.round(fitted, 2)
        return float(np.nanmedian(fitted))

    now = roundness(tmp_path)
    plain = EyeModelBuilder.__init__

    def every_cell(self, config=None):
        plain(self, dataclasses.replace(config or EyeConfig(), iris_side_angle=90.0, iris_detail_bright=1.0))

    monkeypatch.setattr(EyeModelBuilder, "__init__", every_cell)
    (tmp_path / "before").mkdir()
    before = roundness(tmp_path / "before")
    print("d12 surprised iris roundness", round(now, 3), "every cell's colour", round(before, 3))
    assert now >= 0.9 and now > before + 0.005, (now, before)


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


def test_a_wink_the_tracker_misses_keeps_its_lids(tmp_path):
    """d3.mp4 winks (her left eye over frames 5-21, her right over 35-53, both shut from 56) while the tracker
    follows both eyes open. The shot's eye evidence (how bright the tracked opening's "sclera" is against the same
    eye around then) finds each shut eye, and surprise keeps its lids as the source has them, where before it
    stretched the lashes and lid into a dark smear; the open eye beside it still widens."""
    from ned_fx import topology as T
    from ned_fx.pipeline import ShotRenderer, read_analysis

    src, out, s, d = _edit(tmp_path, "d3.mp4", "surprised", "0-59")
    shot = read_analysis(tmp_path / "full" / "analysis.npz")
    opened = shot.models.eyes_open
    assert opened.shape == (60, 2)
    assert opened[:4].min() > 0.9, opened[:4]                          # both open at the start
    assert opened[7:20, 1].max() < 0.05, opened[7:20, 1]               # the left eye's wink
    assert opened[37:46, 0].max() < 0.15, opened[37:46, 0]             # the right eye's
    assert opened[57:, 1].max() < 0.05 and opened[37:46, 1].min() > 0.95

    pinned = ShotRenderer(shot.track, shot.edited, models=shot.models).edited.target_landmarks

    def opening(lm, eye, k):
        up, low, a, b = (386, 374, 362, 263) if eye == "left" else (159, 145, 33, 133)
        return np.linalg.norm(lm[k, up, :2] - lm[k, low, :2]) / np.linalg.norm(lm[k, a, :2] - lm[k, b, :2])

    for k in range(8, 20):
        assert abs(opening(pinned, "left", k) - opening(s, "left", k)) < 0.01, k      # kept
        assert opening(d, "left", k) > opening(s, "left", k) + 0.05, k                # the plan widened it
        assert opening(pinned, "right", k) > opening(s, "right", k) + 0.02, k          # the open eye widens
    # the picture: where the plan widened the shut eye, the lashes and lid are not stretched over it (the output
    # stays near the source there; the brow's rise above still shows), against the same shot's render without
    # the shut-eye weights; an open eye renders the same either way
    import cv2
    from dataclasses import replace

    from ned_fx.media import open_media, to_display_rgb8

    plain = ShotRenderer(shot.track, shot.edited, models=replace(shot.models, eyes_open=None))
    pinning = ShotRenderer(shot.track, shot.edited, models=shot.models)
    cases = {2: T.LEFT_EYE, 12: T.LEFT_EYE, 16: T.LEFT_EYE, 40: T.RIGHT_EYE, 45: T.RIGHT_EYE}
    with open_media(footage("d3.mp4"), "0-45") as frames:
        for frame in frames:
            if frame.number not in cases:
                continue
            k, eye = frame.number, cases[frame.number]
            masks = []
            for lm in (s[k], d[k]):
                m = np.zeros(frame.pixels.shape[:2], np.uint8)
                cv2.fillPoly(m, [np.round(lm[list(eye), :2]).astype(np.int32)], 1)
                masks.append(m > 0)
            band = masks[1] & ~masks[0]
            assert band.sum() > 300, k
            before = to_display_rgb8(frame).astype(float)
            diff = [np.abs(to_display_rgb8(r.render(frame)[0]).astype(float) - before)[band].mean()
                    for r in (plain, pinning)]
            if k == 2:
                assert diff[1] == diff[0] and diff[0] > 20, diff           # open: widened either way
            else:
                assert diff[1] < 0.6 * diff[0], (k, diff)


def test_an_eye_turned_from_the_light_still_widens(tmp_path):
    """d3.mp4 turns her head over frames 266-290: her right eye's white falls to about half of its own brightness
    around then (the light), so the sclera test judged that eye shut while the picture plainly shows its iris
    and the tracker its lid up, and surprise widened her left eye alone (one wide eye ringed in white beside one
    as it was). The iris seen under a raised lid opens it again (0.0 -> 0.6-0.9); the shut and lowered lids just
    before (256-264: a blink, then a look down) stay kept."""
    from dataclasses import replace

    import cv2

    from ned_fx import topology as T
    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import ShotRenderer, read_analysis

    src, out, s, d = _edit(tmp_path, "d3.mp4", "surprised", "250-309")
    shot = read_analysis(tmp_path / "full" / "analysis.npz")
    opened = shot.models.eyes_open
    assert opened[6:15].max() < 0.05, opened[6:15]                    # 256-264: kept
    assert opened[27:37, 0].min() > 0.5 and opened[27:37, 1].min() > 0.95, opened[27:37]     # 277-286: open
    # the picture at 286: her right eye now widens (against the same render with that eye kept, as before)
    kept = opened.copy()
    kept[:, 0] = 0.0
    with open_media(footage("d3.mp4"), "286-286") as frames:
        frame = next(iter(frames))
    k = 36
    band = np.zeros(src[k].shape[:2], np.uint8)
    cv2.fillPoly(band, [np.round(d[k][list(T.RIGHT_EYE), :2]).astype(np.int32)], 1)
    cv2.fillPoly(band, [np.round(s[k][list(T.RIGHT_EYE), :2]).astype(np.int32)], 0)
    assert band.sum() > 100                                            # what the plan uncovers there
    before = to_display_rgb8(frame)[..., :3].astype(float)
    change = [float(np.abs(to_display_rgb8(ShotRenderer(shot.track, shot.edited, models=m).render(frame)[0])[..., :3]
                           .astype(float) - before)[band > 0].mean())
              for m in (replace(shot.models, eyes_open=kept), shot.models)]
    print("frame 286, mean change where her right eye widens, kept / opened:", change)
    assert np.array_equal(to_display_rgb8(ShotRenderer(shot.track, shot.edited, models=shot.models).render(frame)[0])
                          [..., :3], out[k])
    assert change[1] > 1.3 * change[0], change


def test_open_eyes_are_not_judged_shut_behind_glasses_or_looking_up():
    """d12.mp4 (clear thick glasses; he laughs looking up over frames 31-46, his irises under the lids, which the
    renderer's per-frame "is there an eye" test reads as no eye) and the stills: no eye whose upper lid is up is
    judged shut. d12 also blinks (47-54: his upper lids at 0.05-0.08 of the eye's width at 49-51, 0.22 open;
    134-137) and squints laughing (71-73): those lowered lids are kept (surprise had drawn an eyeball on a shut
    lid at 49, then on the other at 50)."""
    from ned_fx.appearance import build_shot_models
    from ned_fx.pipeline import EditInstruction, plan_edit, track_media
    from ned_fx.rendering.eyes import EyeConfig
    from ned_fx.rendering.eyes.openness import lid_heights

    for name in ("d12.mp4", "d8.jpg", "people_0.png"):
        track = track_media(footage(name))
        edited = plan_edit(track, EditInstruction(emotion="surprised"))
        opened = build_shot_models(footage(name), track, edited).eyes_open
        assert opened.shape == (len(track.frame_numbers), 2)
        h = lid_heights(edited.source_landmarks)
        up = h >= EyeConfig().lid_lowered[1] * np.maximum(np.nanpercentile(h, 90, axis=0), EyeConfig().lid_open_height)
        assert up.mean() > 0.7, (name, up.mean())
        assert opened[up].min() > 0.5, (name, np.argwhere(up & (opened <= 0.5))[:10])
        if name == "d12.mp4":
            assert opened[31:45].min() > 0.85, opened[31:45]          # looking up, laughing: open
            assert opened[49:52].max() < 0.05, opened[47:55]          # the blink: shut


def test_a_look_down_keeps_its_lids(tmp_path):
    """d3.mp4 looks down over frames 110-160, her upper lids at 0.12-0.14 of the eye's width (0.27 when she looks
    ahead), and the lids' pale skin is as bright as her shaded sclera: the sclera test read those eyes open, and
    surprise raised the lids over a dark, flat, hard-edged dome. The lowered lids keep their place (judged
    against an open eye's height, ``EyeConfig.lid_open_height``: the shot here holds no open frame), and the
    picture there stays near the source while the brows still rise."""
    from dataclasses import replace

    import cv2

    from ned_fx import topology as T
    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import ShotRenderer, read_analysis
    from ned_fx.rendering.eyes.openness import lid_heights

    src, out, s, d = _edit(tmp_path, "d3.mp4", "surprised", "110-160")
    shot = read_analysis(tmp_path / "full" / "analysis.npz")
    opened = shot.models.eyes_open
    assert np.nanpercentile(lid_heights(s), 90) < 0.16                # no open frame in the shot
    assert opened[5:22].max() < 0.1, opened[5:22]                     # 115-131: lids at 0.12-0.13
    pinned = ShotRenderer(shot.track, shot.edited, models=shot.models).edited.target_landmarks
    brow = list(T.RIGHT_BROW) + list(T.LEFT_BROW)
    rise = (s[:, brow, 1] - pinned[:, brow, 1]).mean()
    assert rise > 2.0, rise                                           # the brows still rise (px)
    held = opened < 0.02                                              # lids kept where fully pinned
    assert held.sum() >= 12 and np.abs(lid_heights(pinned) - lid_heights(s))[held].max() < 0.005
    plain = ShotRenderer(shot.track, shot.edited, models=replace(shot.models, eyes_open=None))
    pinning = ShotRenderer(shot.track, shot.edited, models=shot.models)
    with open_media(footage("d3.mp4"), "118-118") as frames:
        frame = next(iter(frames))
    k = 8
    before = to_display_rgb8(frame).astype(float)
    for eye in (T.RIGHT_EYE, T.LEFT_EYE):
        band = np.zeros(before.shape[:2], np.uint8)
        cv2.fillPoly(band, [np.round(d[k][list(eye), :2]).astype(np.int32)], 1)
        src_eye = np.zeros_like(band)
        cv2.fillPoly(src_eye, [np.round(s[k][list(eye), :2]).astype(np.int32)], 1)
        band = (band > 0) & (src_eye == 0)                            # what the plan would have uncovered
        assert band.sum() > 150
        # the dome: a flat dark grey where the lid's skin was (pixels changed by more than 25 levels)
        moved = [int((np.abs(to_display_rgb8(r.render(frame)[0]).astype(float) - before).max(axis=2)[band] > 25).sum())
                 for r in (plain, pinning)]
        print("pixels changed by > 25 levels, without and with the lid rule:", moved, "of", band.sum())
        # (without the rule 119 and 38 pixels: the smaller eye's dome is near 40 since the eyeball takes the
        # sclera's colour along the eye)
        assert moved[0] > 30 and moved[1] < 0.2 * moved[0], moved


def test_pinning_a_shut_eye_moves_only_its_lids_and_iris():
    """pin_shut_lids: an open eye (weight 1) and an unchanged target are left bit-exact; a shut eye's contour and
    iris go where the warp carries the source's (its corners' similarity), nothing else moves."""
    from ned_fx import topology as T
    from ned_fx.rendering.eyes.openness import pin_shut_lids

    rng = np.random.default_rng(3)
    src = rng.uniform(100, 300, (478, 3))
    dst = src + rng.normal(0, 2, src.shape)
    assert np.array_equal(pin_shut_lids(src, dst, np.ones(2)), dst)
    assert np.array_equal(pin_shut_lids(src, src, np.zeros(2)), src)
    got = pin_shut_lids(src, dst, np.array([1.0, 0.0]))
    left = sorted((set(T.LEFT_EYE) | set(T.LEFT_IRIS)) - {362, 263})
    others = np.setdiff1d(np.arange(478), left)
    assert np.array_equal(got[others], dst[others]) and not np.allclose(got[left], dst[left])
    # the left eye's shape relative to its corners is the source's
    rel = lambda lm: (lm[left, :2] - lm[362, :2]) @ np.linalg.inv(np.array(  # noqa: E731
        [[lm[263, 0] - lm[362, 0], lm[263, 1] - lm[362, 1]], [lm[362, 1] - lm[263, 1], lm[263, 0] - lm[362, 0]]]))
    assert np.allclose(rel(got), rel(src), atol=1e-9)


def test_a_look_down_holds_both_eyes_alike():
    """d3.mp4 looks down over frames 76-100, both upper lids at 0.56-0.62 of their open height; her right eye shows
    a little sclera and its iris, her left only lid, so the sclera test let surprise open the right eye part way
    (0.15-0.49) beside the pinned left one: one eye widened into a dark dome (looked at). An eye whose own lid is
    not up is held to at most ``EyeConfig.pair_spread`` more open than the other; a lid that is up (a wink's open
    eye) is never held, and the rule only ever holds an eye, never opens one."""
    from dataclasses import replace

    from conftest import decode_rgb, our_track
    from ned_fx.rendering.eyes import EyeConfig
    from ned_fx.rendering.eyes.openness import _lid_share, eye_evidence, open_weights

    frames, fps = decode_rgb("d3.mp4")
    lm = our_track("d3.mp4").landmarks
    ev = np.array([eye_evidence(f, lm[k]) for k, f in enumerate(frames)])
    c = EyeConfig()
    paired = open_weights(ev, fps, c, landmarks=lm)
    apart = open_weights(ev, fps, replace(c, pair_spread=1.0), landmarks=lm)
    look = slice(80, 97)
    print("look down, apart:", apart[look].round(2).tolist())
    print("look down, paired:", paired[look].round(2).tolist())
    assert (apart[look, 0] - apart[look, 1]).max() > 0.3                  # the right eye opened alone
    share = _lid_share(lm, c)
    for e in range(2):
        not_up = share[:, e] < c.pair_lid[0]
        assert (paired[not_up, e] <= paired[not_up, 1 - e] + c.pair_spread + 1e-6).all()
        up = share[:, e] >= c.pair_lid[1]
        np.testing.assert_array_equal(paired[up, e], apart[up, e])
    assert (paired <= apart + 1e-7).all()
