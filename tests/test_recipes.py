"""The emotion recipes on real footage: each emotion at intensity 1 moves the face as FACS says, by an amount that
reads at a glance, symmetrically; happy squints moderately; neutral relaxes a smiling or pouting still; a
reference's expression carries over to a talking clip; a talker's mouth opening is kept for every emotion; and
intensity 0 (constant or at a key) is the source, bit for bit.

Measures are in % of the inter-ocular distance, on the target landmarks against the source's (head frame, or
frame pixels for symmetry: what a viewer sees)."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest

import believable_measures as bm
from conftest import decode_rgb, footage, our_track
from ned_fx import manipulation as M
from ned_fx import topology as topo
from ned_fx.manipulation import expression as E
from ned_fx.manipulation.prototypes import EMOTIONS

WDA = "WDA_AlexandriaOcasioCortez_000.mp4"
TALKERS = (WDA, "d12.mp4")
SHOTS = ("people_0.png", WDA, "d12.mp4")
FRAMES = 60
UPPER, LOWER = list(E.UPPER_LID_R), list(E.LOWER_LID_R)
UPPER_L, LOWER_L = list(E.mirrored(E.UPPER_LID_R)), list(E.mirrored(E.LOWER_LID_R))
INNER_R, INNER_L = list(E.BROW_INNER_R), list(E.mirrored(E.BROW_INNER_R))
OUTER_BROWS = list(E.both_sides(E.BROW_OUTER_R))
NOSTRIL_WINGS = [129, 358]


@functools.lru_cache(maxsize=None)
def _shot(name: str):
    """The first FRAMES frames of a clip (or a still), tracked, and its fit."""
    footage(name)
    frames, fps = decode_rgb(name)
    if len(frames) == 1:
        track = our_track(name)
    else:
        from ned_fx.tracking import TrackerConfig
        from ned_fx.tracking.tracker import assemble_track

        from conftest import _engines, _trackers

        from ned_fx.tracking import FaceTracker

        cfg = TrackerConfig(device="cpu")
        tr = _trackers.setdefault(cfg, FaceTracker(cfg, engines=_engines()))
        seen = list(tr.iter_track(iter(frames[:FRAMES])))
        track = assemble_track(seen, np.arange(FRAMES), frames.shape[2], frames.shape[1], fps, cfg)
    return track, M.fit_track(track)


@functools.lru_cache(maxsize=None)
def _edit(name: str, emotion: str, intensity: float = 1.0):
    track, fit = _shot(name)
    return M.manipulate(track, emotion, intensity, fit=fit)


def _heads(edited):
    ok = edited.found
    return (E.head_frame(edited.source_landmarks[ok], edited.pose[ok]),
            E.head_frame(edited.target_landmarks[ok], edited.pose[ok]))


def _iod(x):
    return np.linalg.norm(x[:, topo.EYE_OUTER_LEFT, :2] - x[:, topo.EYE_OUTER_RIGHT, :2], axis=1)


def _measures(x) -> dict:
    """Per frame, % IOD (head frame: y down; 'up' measures are positive upward)."""
    i = _iod(x) / 100
    y = x[..., 1]
    eyes = y[:, [33, 133, 263, 362]].mean(1)
    centre = 0.5 * (y[:, topo.MOUTH_UPPER_INNER] + y[:, topo.MOUTH_LOWER_INNER])
    return {
        "eye_r": (y[:, LOWER] - y[:, UPPER]).mean(1) / i, "eye_l": (y[:, LOWER_L] - y[:, UPPER_L]).mean(1) / i,
        "upper_lid": -(y[:, UPPER + UPPER_L]).mean(1) / i, "lower_lid": -(y[:, LOWER + LOWER_L]).mean(1) / i,
        "corner_r": (centre - y[:, topo.MOUTH_CORNER_RIGHT]) / i,
        "corner_l": (centre - y[:, topo.MOUTH_CORNER_LEFT]) / i,
        "corners_up": -(y[:, [topo.MOUTH_CORNER_RIGHT, topo.MOUTH_CORNER_LEFT]]).mean(1) / i,
        "width": (x[:, topo.MOUTH_CORNER_LEFT, 0] - x[:, topo.MOUTH_CORNER_RIGHT, 0]) / i,
        "inner_brow": (eyes - y[:, INNER_R + INNER_L].mean(1)) / i,
        "outer_brow": (eyes - y[:, OUTER_BROWS].mean(1)) / i,
        "brow_gap": (x[:, INNER_L, 0].mean(1) - x[:, INNER_R, 0].mean(1)) / i,
        "nostril_up": -y[:, NOSTRIL_WINGS].mean(1) / i, "upper_lip_up": -y[:, 0] / i,
        "lower_lip_up": -y[:, 17] / i,
        "red": ((y[:, 13] - y[:, 0]) + (y[:, 17] - y[:, 14])) / i,
        "opening": E.mouth_opening_iod(x) * 100,
    }


def _change(edited) -> dict:
    src, dst = _heads(edited)
    a, b = _measures(src), _measures(dst)
    return {k: float(np.mean(b[k] - a[k])) for k in a} | {"red_src": float(np.mean(a["red"])),
                                                         "eye_src": float(np.mean(a["eye_r"] + a["eye_l"]) / 2)}


@functools.lru_cache(maxsize=None)
def _astronaut():
    """The embedded demo face (scikit-image's astronaut, a broad grin), tracked once: a one-frame Track."""
    import skimage.data

    from ned_fx.tracking import FaceTracker, TrackerConfig
    from ned_fx.tracking.tracker import assemble_track

    from conftest import _engines

    cfg = TrackerConfig(device="cpu")
    rgb = skimage.data.astronaut()
    seen = list(FaceTracker(cfg, engines=_engines()).iter_track(iter([rgb])))
    return assemble_track(seen, np.arange(1), rgb.shape[1], rgb.shape[0], 0.0, cfg)


# ---------------------------------------------------------------------------------------------------------------
# each recipe at 1


@pytest.mark.parametrize("shot", SHOTS)
def test_each_emotion_moves_the_face_as_facs_says_by_a_clear_amount(shot):
    c = {e: _change(_edit(shot, e)) for e in EMOTIONS if e != "neutral"}
    happy, angry, disgusted = c["happy"], c["angry"], c["disgusted"]
    surprised, fearful, sad = c["surprised"], c["fearful"], c["sad"]
    # happy 6+12: corners up and out, the lower lid rises a little, the upper lid barely moves, the nose stays
    # (d12's talker grins through the shot: his neutral is relaxed, the grin read as expression, and happy widens
    # his mouth less than a relaxed mouth's)
    assert happy["corner_r"] >= 7 and happy["corner_l"] >= 7, happy
    assert happy["width"] >= (4.5 if shot == "d12.mp4" else 10), happy
    assert happy["lower_lid"] >= 1.0 and abs(happy["upper_lid"]) <= 0.6, happy
    assert happy["nostril_up"] <= 2.5, happy
    # angry 4+7+10+23+24(+15): brows down and drawn together strongly (as far as the lid skin beneath allows:
    # see test_brows_never_reach_the_lashes), lids tight (the eye narrows from below more than from above, and
    # never shuts: see test_lids_never_shut), the red of the lips narrower (a fifth of it at least: the small
    # upper lip raise, AU10, thins it a little less), the corners a little down
    assert angry["inner_brow"] <= -6 and angry["brow_gap"] <= -7 and angry["outer_brow"] <= -4, angry
    assert angry["lower_lid"] >= 0.8, angry
    assert -0.5 * angry["eye_src"] <= angry["eye_r"] <= -1.5 and -0.5 * angry["eye_src"] <= angry["eye_l"] <= -1.5, angry
    assert angry["red"] <= -0.2 * angry["red_src"] and angry["width"] <= -2.5, angry
    assert angry["corners_up"] <= -0.3, angry
    # disgusted 9+10+15+16: nostril wings and upper lip up, corners down (the upper lip rises 3.6-4.3 % IOD with
    # AU10 0.4: at 0.8, 6.2-6.7 %, MediaPipe's re-tracked opening of WDA's talker lost r 0.95; see prototypes.py)
    assert disgusted["nostril_up"] >= 6 and disgusted["upper_lip_up"] >= 3.3, disgusted
    assert disgusted["corner_r"] <= -1 and disgusted["corner_l"] <= -1 and disgusted["inner_brow"] <= -2, disgusted
    # surprised 1+2+5(+26): brows high (~10-12 % IOD; more stretched the lid skin under them into a smear),
    # upper lids raised
    assert surprised["inner_brow"] >= 7.5 and surprised["outer_brow"] >= 9 and surprised["upper_lid"] >= 2, surprised
    # fearful 1+2+4+5+20(+26): inner brows up and together, upper lids raised, lips stretched wide
    assert fearful["inner_brow"] >= 4 and fearful["brow_gap"] <= -5 and fearful["upper_lid"] >= 2
    assert fearful["width"] >= (7 if shot == "d12.mp4" else 10)
    # sad 1+4+15: inner brows up and together, corners down
    # (oblique: the inner ends up, the outer ends down, drawn together hard)
    assert sad["inner_brow"] >= 4 and sad["inner_brow"] - sad["outer_brow"] >= 8 and sad["brow_gap"] <= -6, sad
    assert sad["corner_r"] <= -6 and sad["corner_l"] <= -6, sad


@pytest.mark.parametrize("shot", SHOTS)
def test_happy_squints_moderately(shot):
    for intensity, kept in ((1.0, (0.6, 0.9)), (1.5, (0.5, 0.85))):
        c = _change(_edit(shot, "happy", intensity))
        share = 1 + (c["eye_r"] + c["eye_l"]) / 2 / c["eye_src"]
        assert kept[0] <= share <= kept[1], (intensity, share)


@pytest.mark.parametrize("shot", SHOTS)
def test_every_emotion_is_symmetric_in_the_frame(shot):
    """Left and right eye opening and mouth-corner height change alike in frame pixels (what a viewer sees, with
    the picture's tilt levelled): within 20 % of the change."""
    for emotion in EMOTIONS:
        edited = _edit(shot, emotion)
        ok = edited.found
        src, dst = edited.source_landmarks[ok], edited.target_landmarks[ok]
        eye_line = src[:, topo.EYE_OUTER_LEFT, :2] - src[:, topo.EYE_OUTER_RIGHT, :2]
        roll = np.arctan2(eye_line[:, 1], eye_line[:, 0])                   # the picture's in-plane tilt only
        c, s = np.cos(-roll)[:, None], np.sin(-roll)[:, None]

        def level(x):
            out = x.copy()
            out[..., 0], out[..., 1] = c * x[..., 0] - s * x[..., 1], s * x[..., 0] + c * x[..., 1]
            return out

        a, b = _measures(level(src)), _measures(level(dst))
        for right, left in (("eye_r", "eye_l"), ("corner_r", "corner_l")):
            dr, dl = np.mean(b[right] - a[right]), np.mean(b[left] - a[left])
            size = max(abs(dr), abs(dl))
            # (0.5 % IOD: a pixel at this size; the head's turn alone makes the near side's change larger, the
            # more so for a large change: d12's grin taken away under disgust)
            # the floor holds for the eyes (15 %); the corners get 25 % (a turned head's corners)
            if size > 0.5:
                share = 0.15 if right == "eye_r" else 0.25
                assert abs(dr - dl) <= max(share * size, 0.5), (emotion, right, dr, dl)


# ---------------------------------------------------------------------------------------------------------------
# neutral on a still


def test_neutral_relaxes_a_smiling_or_pouting_still_and_leaves_a_neutral_one():
    astronaut = _astronaut()
    smile = _change(M.manipulate(astronaut, "neutral", 1.0))
    assert smile["corner_r"] <= -2 and smile["corner_l"] <= -2 and smile["width"] <= -8, smile
    # the smile's parted lips close over the teeth (a still holds no speech: its lips part is expression), to the
    # neutral's own near-closed gap, never through each other
    src, dst = _heads(M.manipulate(astronaut, "neutral", 1.0))
    gap_src, gap_dst = E.mouth_opening_iod(src)[0], E.mouth_opening_iod(dst)[0]
    assert gap_src >= 0.1 and 0.0 <= gap_dst <= 0.05, (gap_src, gap_dst)
    footage("d8.jpg")
    pout = _change(M.manipulate(our_track("d8.jpg"), "neutral", 1.0))
    assert pout["lower_lip_up"] <= -1.0, pout                             # the pushed-up lower lip relaxes
    portrait = M.manipulate(*_shot("people_0.png")[:1], "neutral", 1.0)
    assert np.array_equal(portrait.target_landmarks, portrait.source_landmarks)


def test_a_still_s_parted_lips_are_expression_and_a_clip_s_are_speech():
    """On a still the lips part and jaw drop of a grin are taken away like the smile itself (sad and angry close the
    astronaut's grin over her teeth, by ``min(w, 1)``; happy keeps them; surprise's own jaw drop opens it), while a
    talking clip keeps every frame's opening (test_a_talker_keeps_his_jaw_for_every_emotion) and ``--speech
    preserve`` keeps a still's."""
    astronaut = _astronaut()

    def gaps(emotion, intensity=1.0, speech=None, config=None):
        src, dst = _heads(M.manipulate(astronaut, emotion, intensity, speech=speech, config=config))
        return E.mouth_opening_iod(src)[0], E.mouth_opening_iod(dst)[0]

    src, _ = gaps("neutral")
    for emotion in ("sad", "angry"):
        assert 0.0 <= gaps(emotion)[1] <= 0.05, emotion
    assert gaps("happy")[1] >= 0.6 * src and gaps("happy")[1] >= gaps("sad")[1] + 0.03, "a grin stays parted"
    # a still's gasp (d19) is not a grin: test_a_still_s_gasp_stays_under_a_style_that_opens_the_mouth
    # the AUs are linear in the intensity; the lips sealed at the end of a closing edit (ManipulatorConfig.lip_seal)
    # are not: half of neutral takes away half of the opening, as without the seal
    unsealed = M.ManipulatorConfig(lip_seal=(0.0, 0.0))
    half = gaps("neutral", 0.5)[1]
    assert abs(half - 0.5 * (src + gaps("neutral", config=unsealed)[1])) <= 0.01 * src + 1e-3, (src, half)
    assert half == gaps("neutral", 0.5, config=unsealed)[1]
    assert gaps("surprised")[1] >= src + 0.05
    assert gaps("sad", speech="preserve")[1] == pytest.approx(src, abs=1e-9)
    assert gaps("sad", 0.0)[1] == src


def test_happy_keeps_a_broad_grin_at_every_intensity():
    """The astronaut's grin reads AU12 0.49 with AU10 0.54 (her upper lip raised off her teeth), AU20 0.18 and her
    lips parted: under happy those are the grin's own (engine.GRIN_COMPANIONS) and stay, at any intensity, so
    happy makes her smile wider, never closes it. (Taken away as any emotion AU the style does not use, happy at 1
    brought her upper lip 2.5 % IOD down over her teeth and closed the gap 0.116 -> 0.081 IOD: the gallery's
    "happy 1" smiled less than the source.) Neutral and sad still close the grin."""
    astronaut = _astronaut()
    for intensity in (0.5, 1.0, 1.5):
        edited = M.manipulate(astronaut, "happy", intensity)
        src, dst = _heads(edited)
        i = _iod(src)[0] / 100
        gap_src, gap_dst = E.mouth_opening_iod(src)[0], E.mouth_opening_iod(dst)[0]
        assert gap_dst >= 0.97 * gap_src, (intensity, gap_src, gap_dst)
        assert dst[0, 13, 1] <= src[0, 13, 1], intensity                      # the upper lip never comes down
        c = _change(edited)
        assert c["width"] >= 3.5 * intensity and min(c["corner_r"], c["corner_l"]) >= 7 * intensity, (intensity, c)
    for emotion in ("neutral", "sad"):
        src, dst = _heads(M.manipulate(astronaut, emotion))
        assert E.mouth_opening_iod(dst)[0] <= 0.4 * E.mouth_opening_iod(src)[0], emotion
        assert (dst[0, 13, 1] - src[0, 13, 1]) / (_iod(src)[0] / 100) >= 4, emotion     # her upper lip comes down


# ---------------------------------------------------------------------------------------------------------------
# reference


def test_a_reference_smile_carries_over_to_a_talking_clip_and_the_speech_stays():
    track, fit = _shot(WDA)
    ref = _astronaut()
    style = M.reference_style(ref.landmarks, ref.pose, ref.found, fit.model.neutral, name="astronaut.png")
    edited = M.manipulate(track, reference=style, fit=fit)
    assert edited.params["talking"]
    c = _change(edited)
    assert c["corner_r"] >= 3 and c["corner_l"] >= 3 and c["width"] >= 8, c            # the smile
    assert c["lower_lid"] >= 1.5, c                                                     # its cheeks and eyes
    src, dst = _heads(edited)
    a, b = E.mouth_opening_iod(src), E.mouth_opening_iod(dst)
    # the clip's speech: the reference's parted lips (a little jaw drop) and its smile scale every opening alike
    # (ManipulatorConfig.talking_jaw_gain, smile_lip_gain), so the lips meet where the source's meet
    jaw, smile = style.style[E.AU_NAMES.index("AU26")], style.style[E.AU_NAMES.index("AU12")]
    cfg = M.ManipulatorConfig()
    gain = 1 + cfg.talking_jaw_gain * jaw + cfg.smile_lip_gain * smile
    assert np.abs(b - gain * a).max() < 0.004 and np.corrcoef(a, b)[0, 1] > 0.999, (jaw, gain)


# ---------------------------------------------------------------------------------------------------------------
# speech


@pytest.mark.parametrize("clip", TALKERS)
def test_a_talker_keeps_his_jaw_for_every_emotion(clip):
    for emotion in EMOTIONS:
        for intensity in (1.0, 1.5):
            edited = _edit(clip, emotion, intensity)
            assert edited.params["talking"] and np.all(edited.speech_gate == 0), emotion
            ok = edited.found
            r = np.corrcoef(topo.mouth_opening(edited.source_landmarks[ok]),
                            topo.mouth_opening(edited.target_landmarks[ok]))[0, 1]
            assert r >= 0.95, (emotion, intensity, r)


def _lip_heights(x) -> np.ndarray:
    """F x columns: the upper lip's red (outer edge to inner edge), column by column from the right corner to the
    left one, % IOD (head frame)."""
    outer, inner = ([*ring, *E.mirrored(ring[:-1])[::-1]] for ring in (E.UPPER_LIP_OUTER_R, E.UPPER_LIP_INNER_R))
    return (x[:, inner, 1] - x[:, outer, 1]) / (_iod(x)[:, None] / 100)


def test_a_sneer_raises_the_upper_lip_as_one_piece_on_a_talker():
    """Disgusted on a talker: the upper lip rises (its inner edge too), the lower lip follows it up, so the gap is
    the source's and neither lip's red grows. (Split between the lips, the gap-keeping held the upper lip's inner
    edge down while AU10 raised its outer edge: the upper lip's red grew 3.3-5.6 % IOD, the lower's 4.3 %, and
    MediaPipe re-tracking WDA's edit read the mouth 0.064 IOD more open; now within 1.3 % and 1.3 %.)"""
    edited = _edit(WDA, "disgusted")
    src, dst = _heads(edited)
    i = _iod(src)[:, None] / 100
    assert np.abs(E.mouth_opening_iod(dst) - E.mouth_opening_iod(src)).max() < 1e-9       # the gap exactly
    # the upper lip's red kept where the sneer acts (the corner columns are the lip corner depressor's: -1.3 %);
    # split between the lips, AU9 and AU10 made it 3.3-5.6 % thicker
    thicker = (_lip_heights(dst) - _lip_heights(src))[:, 1:-1]
    assert np.abs(thicker.mean(0)).max() <= 1.0 and np.abs(thicker).max() <= 1.5, np.round(thicker.mean(0), 2)
    up = -(dst[..., 1] - src[..., 1]) / i
    # (AU10 0.4 since MediaPipe's opening r on this clip: inner edge 4.0, outer 4.2 % IOD; at 0.8, 6.2-6.7)
    assert up[:, 13].mean() >= 3.5 and up[:, 0].mean() >= 3.7, (up[:, 13].mean(), up[:, 0].mean())
    assert up[:, 14].mean() >= 3.5 and up[:, 17].mean() >= 2.5, (up[:, 14].mean(), up[:, 17].mean())  # lower follows
    lower = [list(E.LOWER_LIP_INNER_R), list(E.LOWER_LIP_OUTER_R)]
    red = np.mean(dst[:, lower[1], 1] - dst[:, lower[0], 1] - (src[:, lower[1], 1] - src[:, lower[0], 1]), axis=1)
    assert np.abs(red / i[:, 0]).max() <= 2.0                        # nor the lower lip's much (AU16 everts it)


def test_the_jaw_gate_closes_where_a_mostly_silent_shot_speaks():
    track, fit = _shot("people_0.png")
    neutral = fit.model.neutral
    basis = fit.model.basis
    f = 100
    act = np.zeros((f, len(E.AU_NAMES)))
    t = np.arange(f)
    act[70:, E.AU_NAMES.index("AU26")] = np.clip(0.6 * np.sin(t[70:] / 1.5), 0, None)    # speaks at the end
    shapes = neutral + basis.decode(act)
    pose = np.tile(np.concatenate([100 * np.eye(3), [[300], [300], [0]]], axis=1), (f, 1, 1))
    lm = np.einsum("fij,fpj->fpi", pose[:, :, :3], shapes) + pose[:, None, :, 3]
    shot = SimpleNamespace(landmarks=lm, pose=pose, found=np.ones(f, bool), frame_numbers=t, fps=25.0)
    edited = M.manipulate(shot, "surprised", 1.0, neutral=neutral)
    assert not edited.params["talking"]                                   # a silent shot: the jaw may open ...
    assert edited.speech_gate[:30].min() == 1.0
    assert np.all(edited.speech_gate[70:] == 0.0)                         # ... but never over the line
    assert np.all(np.diff(edited.speech_gate[:70]) <= 0)                  # eased shut before it


# ---------------------------------------------------------------------------------------------------------------
# intensity 0


def test_intensity_zero_and_keys_at_zero_are_the_source_bit_for_bit():
    track, fit = _shot(WDA)
    for emotion in EMOTIONS:
        edited = M.manipulate(track, emotion, 0.0, fit=fit)
        assert np.array_equal(edited.target_landmarks, edited.source_landmarks, equal_nan=True), emotion
    keyed = M.manipulate(track, keys="0:happy:1,20:happy:0,21:angry:1,40:angry:0,59:surprised:1.5", fit=fit)
    for frame in (20, 40):
        assert keyed.intensity[frame] == 0
        assert np.array_equal(keyed.target_landmarks[frame], keyed.source_landmarks[frame]), frame
    for frame in (10, 30, 55):
        assert np.abs(keyed.target_landmarks[frame] - keyed.source_landmarks[frame]).max() > 1.0, frame
    curve = M.manipulate(track, "disgusted", curve=(np.array([0, 25, 26, 59]), np.array([1.0, 0.0, 0.0, 1.0])),
                         fit=fit)
    for frame in (25, 26):
        assert np.array_equal(curve.target_landmarks[frame], curve.source_landmarks[frame]), frame


def _brow_ratio(edited, points) -> float:
    """The brow's lower edge straight above each of ``points``, its smallest height over them over the found
    frames, target over source (``believable_measures.brow_lid_ratio``)."""
    ok = edited.found
    return bm.brow_lid_ratio(edited.source_landmarks[ok], edited.target_landmarks[ok], points)


@pytest.mark.parametrize("shot", SHOTS + ("d3.mp4",))
@pytest.mark.parametrize("emotion,intensity", [("angry", 1.0), ("angry", 1.5), ("fearful", 1.5), ("sad", 1.5)])
def test_brows_never_reach_the_lashes(shot, emotion, intensity):
    """A lowered brow and a raised upper lid keep skin between them (ManipulatorConfig.brow_lid_gap,
    brow_margin_gap): angry at 1 used to set the brows on the lashes and at 1.5 cross them into the eyes, and
    with the lash band carried down by the brow lowerer, d3's angry brows went below her lid margin (-0.2 of their
    height). Measured in the picture: the brow's lower edge straight above each upper-lid margin point and each
    point of the lash band's outer ring, their distance along the face's up direction, target over source.
    Without the margin rule d3's angry brows cross the margin again (checked), so the measure can fail."""
    edited = _edit(shot, emotion, intensity)
    floor = 0.03 if intensity <= 1 else 0.0     # at 1.5 a brow may be pressed onto the lid, never through it
    assert _brow_ratio(edited, E.UPPER_LID_R[1:-1]) > floor, (emotion, intensity)
    assert _brow_ratio(edited, E.LASH_RING_R[1:-1]) > floor, (emotion, intensity)
    if shot == "d3.mp4" and (emotion, intensity) == ("angry", 1.0):
        track, fit = _shot(shot)
        off = M.manipulate(track, emotion, intensity, fit=fit, config=M.ManipulatorConfig(brow_margin_gap=0.0))
        assert _brow_ratio(off, E.UPPER_LID_R[1:-1]) < 0.0


def _lid_skin_ratio(edited) -> float:
    """The smallest height of the crease ring and of the lash band's outer ring over the upper lid margin beneath
    them over the found frames, target over source (``believable_measures.lid_skin_ratio``)."""
    ok = edited.found
    return bm.lid_skin_ratio(edited.source_landmarks[ok], edited.target_landmarks[ok])


@pytest.mark.parametrize("shot", SHOTS + ("d3.mp4",))
@pytest.mark.parametrize("emotion,intensity", [("sad", 1.0), ("angry", 1.0), ("angry", 1.5)])
def test_lid_skin_stays_above_the_lashes(shot, emotion, intensity):
    """The skin above an upper lid (its crease and the lash band's outer ring) never comes down past the lid
    margin (ManipulatorConfig.lid_fold_kept): the brow lowerer moves it 5-8x as far as the lid, and sad and angry
    at 1 put it below the lid on most faces (d3 sad: -1.4 of its own height, WDA angry -0.6; the warp then
    folded lid skin over her lashes). Without the rule the same edits cross (checked below on the shots where
    they did), so the measure can fail."""
    edited = _edit(shot, emotion, intensity)
    floor = 0.03 if intensity <= 1 else 0.0     # at 1.5 squeezed under a brow pressed onto the lid, never through
    assert _lid_skin_ratio(edited) > floor, (shot, emotion, intensity)
    if shot in ("d3.mp4", WDA) and emotion == "angry":
        track, fit = _shot(shot)
        off = M.manipulate(track, emotion, intensity, fit=fit, config=M.ManipulatorConfig(lid_fold_kept=(0.0, 0.0)))
        assert _lid_skin_ratio(off) < 0.0


def test_a_shut_eye_pinned_by_the_renderer_keeps_its_lid_skin_above_it():
    """The renderer pins a shut eye's lids where the source has them (``pipeline.pin_shut_eyes``: d3 winks over
    frames 4-15, which the tracker follows open); the lid skin the style moved down then lay through the pinned lid
    (sad: 1.1 times its height), and ``pipeline.hold_lid_folds`` holds it above again, as the plan does."""
    from ned_fx.pipeline import hold_lid_folds, pin_shut_eyes

    edited = _edit("d3.mp4", "sad")
    opened = np.ones((len(edited.found), 2))
    opened[4:16] = 0.0
    pinned = pin_shut_eyes(edited, opened)
    assert _lid_skin_ratio(pinned) < 0.0                   # the pin alone folds it through (the measure fails)
    held = hold_lid_folds(pinned)
    assert _lid_skin_ratio(held) > 0.2
    assert hold_lid_folds(edited) is edited                # the plan itself is left as it is


def test_a_brow_stays_above_a_lid_the_renderer_pins():
    """d3 winks over frames 30-55 (the shot models' ``eyes_open`` reads her eye shut, the tracker follows it partly
    open) and the renderer pins the tracked lid there, above where angry's plan lowered it; the plan's lowered brow
    then lay up to 1.2 px under the pinned lid (the brow measure -0.05 on the bench) and the warp folded the skin
    between them into a stepped line (frame 44, looked at). ``pipeline.hold_lid_folds`` lifts the brow back to the
    plan's ``brow_margin_gap`` over the lid (0.05 of the source's height) before it holds the lid skin, on the
    frames the renderer moved."""
    from ned_fx.appearance import build_shot_models
    from ned_fx.pipeline import ShotRenderer, hold_lid_folds, pin_shut_eyes

    track, _ = _shot("d3.mp4")
    edited = _edit("d3.mp4", "angry")
    models = build_shot_models(footage("d3.mp4"), track, edited, f"0-{len(edited.found) - 1}")
    assert (models.eyes_open[30:56].min(axis=1) < 0.5).sum() >= 10, "the test needs d3's wink"
    pinned = pin_shut_eyes(edited, models.eyes_open)
    assert _brow_ratio(pinned, E.UPPER_LID_R[1:-1]) < 0.0              # the pin alone puts a brow through the lid
    drawn = ShotRenderer(track, edited, models=models).edited
    assert _brow_ratio(drawn, E.UPPER_LID_R[1:-1]) >= 0.04
    assert _lid_skin_ratio(drawn) > 0.0
    assert _brow_ratio(edited, E.UPPER_LID_R[1:-1]) > 0.03             # what the plan keeps itself (test_brows_never_reach_the_lashes)
    assert hold_lid_folds(edited, edited) is edited                     # frames the renderer did not move stay


@pytest.mark.parametrize("shot", SHOTS)
@pytest.mark.parametrize("emotion,intensity", [("angry", 1.0), ("angry", 1.5), ("happy", 1.5), ("sad", 1.5)])
def test_lids_never_shut(shot, emotion, intensity):
    """An emotion's lid tightening, squint or droop acts on the frame's own eye (ManipulatorConfig.
    lid_opening_kept): on a frame where the actor looks down or is half-lidded, angry used to make slits that read
    as a wince. Measured in the picture: the middle lid pairs' opening along the face's up direction, target over
    source, on every frame whose source eye is open (a blink is the actor's)."""
    edited = _edit(shot, emotion, intensity)
    pairs = ((160, 144), (159, 145), (158, 153), (387, 373), (386, 374), (385, 380))   # the middle of each eye
    worst, moved = np.inf, 0.0
    for k in np.nonzero(edited.found)[0]:
        src, dst = edited.source_landmarks[k], edited.target_landmarks[k]
        up = src[10, :2] - src[152, :2]
        up /= np.linalg.norm(up)
        iod = np.linalg.norm(src[33, :2] - src[263, :2])
        for u, l in pairs:
            g0 = float((src[u, :2] - src[l, :2]) @ up)
            g1 = float((dst[u, :2] - dst[l, :2]) @ up)
            if g0 > 0.03 * iod:
                worst = min(worst, g1 / g0)
                moved = max(moved, 1 - g1 / g0)
    # only the lids' own AUs give way: a strong smile's cheek push (AU12's field on the lower lid) and, at 1.5, a
    # brow lowered hard pushing the upper lid down (sad on d12's narrowest frames) are the smile's and the brow's
    floor = 0.45 if intensity <= 1.0 or emotion == "angry" else 0.3
    assert worst >= floor, (emotion, intensity, worst)
    assert moved >= 0.1, (emotion, intensity, moved)     # the style still narrows the eye


def _lid_over_pupil(edited, landmarks) -> np.ndarray:
    """Per found frame and eye: the middle upper-lid point's height over the source's iris centre along the
    face's up direction, in iris radii (F x 2)."""
    out = []
    for k in np.nonzero(edited.found)[0]:
        src, dst = edited.source_landmarks[k], landmarks[k]
        up = src[10, :2] - src[152, :2]
        up /= np.linalg.norm(up)
        row = []
        for lid, centre, ring in ((159, 468, [469, 470, 471, 472]), (386, 473, [474, 475, 476, 477])):
            radius = np.linalg.norm(src[ring, :2] - src[centre, :2], axis=1).mean()
            row.append(float((dst[lid, :2] - src[centre, :2]) @ up) / radius)
        out.append(row)
    return np.array(out)


@pytest.mark.parametrize("shot", SHOTS)
@pytest.mark.parametrize("emotion", ["surprised", "fearful"])
def test_raised_lids_clear_the_iris(shot, emotion):
    """A raised upper lid reads by the white it shows above the iris (ManipulatorConfig.lid_iris_boost): on WDA's
    heavy lids AU5 as authored left the lid on the iris on many frames (the eye layer then drew iris where the
    new eye white should be). In the picture: the target's middle upper-lid point above the tracked iris's top by
    >= 0.25 x its radius on nearly every frame (the clearance is 0.3; the boost's cap may hold a few back); where
    the authored raise already clears it by the clearance, the boost adds nothing. (At a clearance of 0.15 WDA's
    new area over the sclera read 0.78, under the issue's 0.8: the raised lid showed the iris top and a sliver of
    white; at 0.3, 0.82.)"""
    track, fit = _shot(shot)
    edited = _edit(shot, emotion)
    authored = M.manipulate(track, emotion, 1.0, fit=fit, config=M.ManipulatorConfig(lid_iris_boost=0.0))

    def clearance(lms):             # the lid over the iris's top, in iris radii
        return _lid_over_pupil(edited, lms) - 1.0

    boosted, plain = clearance(edited.target_landmarks), clearance(authored.target_landmarks)
    assert (boosted >= 0.25).mean() >= 0.9, np.percentile(boosted, [5, 50])
    assert (boosted >= plain - 1e-6).all()
    # frames (and their neighbours, the boost is smoothed over time) that already cleared it are left alone
    wanted = M.ManipulatorConfig().lid_iris_clearance
    clear = np.convolve((plain.min(axis=1) >= wanted + 0.05).astype(float), np.ones(25), mode="same") >= 25
    if clear.any():
        assert np.abs(boosted - plain)[clear].max() <= 0.02, np.abs(boosted - plain)[clear].max()
    if shot == WDA:
        # the case it is for: the authored raise fell short on some frames here, and the boost mends them
        assert (plain < 0.25).mean() > 0.05 and (boosted >= 0.25).mean() > (plain >= 0.25).mean()


def test_the_lids_grow_at_half_rate_past_intensity_1():
    """Past intensity 1 the upper lid's raise (AU5 > 0) grows at ``ManipulatorConfig.lid_exaggeration`` (0.5) of
    the rest's rate: at 1.5 the astronaut's surprise made round doll's eyes. At 1 the plan is the same bit for bit;
    at 1.5 surprise opens the lids less than at the full rate (still more than at 1), sadness's droop is as it
    was, and the brows move as much."""
    track = _astronaut()
    fit = M.fit_track(track)
    full = M.ManipulatorConfig(lid_exaggeration=1.0)
    for emotion in ("surprised", "sad"):
        at1 = M.manipulate(track, emotion, 1.0, fit=fit)
        np.testing.assert_array_equal(at1.target_landmarks,
                                      M.manipulate(track, emotion, 1.0, fit=fit, config=full).target_landmarks)
        damped = M.manipulate(track, emotion, 1.5, fit=fit)
        undamped = M.manipulate(track, emotion, 1.5, fit=fit, config=full)
        lid = lambda e: _lid_over_pupil(e, e.target_landmarks).mean()             # the upper lids' height
        heights = (lid(at1), lid(damped), lid(undamped))
        if emotion == "surprised":
            assert heights[0] < heights[1] < heights[2] - 0.05, heights
        else:
            np.testing.assert_array_equal(damped.target_landmarks, undamped.target_landmarks)
        brows = list(E.both_sides(E.BROW_INNER_R))
        np.testing.assert_allclose(damped.target_landmarks[0, brows, 1], undamped.target_landmarks[0, brows, 1],
                                   atol=0.25)


def test_a_glare_keeps_the_pupil_of_an_eye_looking_up():
    """d3 looks up wide-eyed over frames 294-353 (white below the iris): angry takes her raised lids away, and
    with them the lid came down to the iris centre (pale slits of white under pressed brows, the pupil gone).
    The upper lid's raise now gives way where the lid would come within ``ManipulatorConfig.pupil_kept`` (0.6) of
    the source's height over the iris centre (only AU5 gives way, so the tightener's share stays: >= 0.38 on every
    frame, 0.22 without), and angry still lowers it."""
    from ned_fx.pipeline import track_media

    track = track_media(footage("d3.mp4"), frames="294-353")
    fit = M.fit_track(track)
    guarded = M.manipulate(track, "angry", 1.0, fit=fit)
    free = M.manipulate(track, "angry", 1.0, fit=fit, config=M.ManipulatorConfig(pupil_kept=0.0))
    source = _lid_over_pupil(guarded, guarded.source_landmarks)
    kept, was = _lid_over_pupil(guarded, guarded.target_landmarks), _lid_over_pupil(free, free.target_landmarks)
    open_ = source > 0.2
    assert open_.mean() > 0.9
    assert (kept / source)[open_].min() >= 0.38, (kept / source)[open_].min()         # 0.22 without
    assert (was / source)[open_].min() < 0.3, (was / source)[open_].min()              # the case it is for
    assert (kept >= was - 1e-9).all()                                                # it only ever lifts
    assert np.median((kept / source)[open_]) < 0.9                                   # still a glare: lowered


def test_a_drooping_style_lets_the_lid_go_in_proportion():
    """Sad droops the lids itself (AU5 < 0): from a droop of ``ManipulatorConfig.pupil_droop`` (sad at 0.5) on, the
    pupil guard lets its lid go entirely (a heavy lid reads sad), below that in proportion, so a blend with a
    little sadness, or a keyed turn into it, is held partly, never switched from held to free in one frame. d3
    294-353 (looking up wide-eyed): anger 0.8 + sadness 0.2 takes her raised lids away; the lids sit between the
    fully held and the free plan's."""
    from ned_fx.pipeline import track_media

    track = track_media(footage("d3.mp4"), frames="294-353")
    fit = M.fit_track(track)

    def lids(emotion, droop):
        e = M.manipulate(track, emotion, 1.0, fit=fit, config=M.ManipulatorConfig(pupil_droop=droop))
        return _lid_over_pupil(e, e.target_landmarks)

    blend = "angry*0.8+sad*0.2"                                              # AU5 -0.1: droop 0.4 of 0.25
    held, free, mid = lids(blend, 0.0), lids(blend, 1e-6), lids(blend, 0.25)
    assert (held - free).max() > 0.1, (held - free).max()                   # the guard binds here
    assert (mid >= free - 1e-9).all() and (mid <= held + 1e-9).all()
    between = (held - free) > 0.05
    share = ((mid - free) / np.where(between, held - free, 1.0))[between]
    assert 0.3 < np.median(share) < 0.8, np.median(share)
    np.testing.assert_array_equal(lids("sad", 0.25), lids("sad", 1e-6))      # sad at 1: free, as before


def test_a_still_s_gasp_stays_under_a_style_that_opens_the_mouth():
    """d19 gasps (a still: his open mouth is expression, not speech; AU26 1.56). A style that opens the mouth itself
    keeps a wider mouth as it is (surprised at 1 had closed it to its own standard jaw, the gasp gone from a
    surprised face). Every other style keeps it too, neutral included (``ManipulatorConfig.still_gasp_kept``): a
    2-D warp cannot close a gasp believably (closed under happy, sad, angry and disgusted, his lower lip stretched
    into a thick band over a lumpy fold; under neutral, a pale seam along the raised jaw, pale wedges beside the
    nose and a smeared upper lip over a dark slit: looked at); with the rule off every style closes it."""
    from ned_fx import topology as T

    track, fit = _shot("d19.jpg")
    src = track.landmarks[0]
    gap = lambda lm: float(T.mouth_opening(lm) / T.inter_ocular(lm))
    for emotion in ("surprised", "fearful"):
        got = gap(M.manipulate(track, emotion, 1.0, fit=fit).target_landmarks[0])
        assert got >= 0.9 * gap(src), (emotion, gap(src), got)
    for emotion in ("neutral", "happy", "sad", "angry", "disgusted"):
        got = gap(M.manipulate(track, emotion, 1.0, fit=fit).target_landmarks[0])
        assert got >= 0.85 * gap(src), (emotion, gap(src), got)
    never = M.ManipulatorConfig(still_gasp_kept=(float("inf"), float("inf")))
    for emotion in ("neutral", "happy", "sad"):
        got = gap(M.manipulate(track, emotion, 1.0, fit=fit, config=never).target_landmarks[0])
        assert got <= 0.6 * gap(src), (emotion, gap(src), got)
    # a smaller held opening closes as before: the astronaut's grin under sad
    # (test_a_still_s_parted_lips_are_expression_and_a_clip_s_are_speech)


def test_a_still_s_closed_smile_seals_its_lips():
    """Neutral and sad take the astronaut's open smile away; her estimated neutral keeps a relaxed neutral's
    parted lips (0.032 IOD at the centre: a line of teeth between her lips in the picture). A closing edit that
    takes most of the opening away now seals the lips (< 0.005 IOD at the centre), smoothly: at intensity 0.5 the
    lips are where the AUs put them, and a talking clip's lips are never sealed (speech)."""
    astronaut = _astronaut()
    unsealed = M.ManipulatorConfig(lip_seal=(0.0, 0.0))

    def centre_gap(edited):
        s, d = edited.source_landmarks[0, :, :2], edited.target_landmarks[0, :, :2]
        up = (s[10] - s[152]) / np.linalg.norm(s[10] - s[152])
        return float((d[13] - d[14]) @ up) / float(np.linalg.norm(s[33] - s[263]))

    for emotion in ("neutral", "sad"):
        before = centre_gap(M.manipulate(astronaut, emotion, 1.0, config=unsealed))
        after = centre_gap(M.manipulate(astronaut, emotion, 1.0))
        assert before > 0.02 and 0.0 <= after < 0.005, (emotion, before, after)
    assert M.ManipulatorConfig().lip_seal == (0.25, 0.6)
    with pytest.raises(Exception):
        M.ManipulatorConfig(lip_seal=(0.7, 0.6))
    footage("WDA_AlexandriaOcasioCortez_000.mp4")
    clip = our_track("WDA_AlexandriaOcasioCortez_000.mp4")
    a, b = M.manipulate(clip, "sad", 1.0), M.manipulate(clip, "sad", 1.0, config=unsealed)
    assert np.array_equal(a.target_landmarks, b.target_landmarks, equal_nan=True)


def test_lips_never_pass_through_each_other():
    """Closing AUs add up (a still's open smile or gasp taken away, anger's lip presser): before, they brought the
    target's inner lips through each other (the astronaut's angry by 2 % IOD, d19's by up to 9 %) and the warp
    folded both lips' red into a thin line. Every inner-lip column of the target now keeps its lips apart, or as far
    through each other as the source's are; the column moves as one (a lip keeps its thickness); a target that does
    not close is untouched."""
    from ned_fx.manipulation.manipulator import lips_uncrossed

    footage("d19.jpg")
    footage("d3.mp4")
    pairs = np.array(E.INNER_LIP_PAIRS)

    def gaps(lm):
        lm = np.asarray(lm)[..., :2]
        up = lm[:, 10] - lm[:, 152]
        up /= np.linalg.norm(up, axis=1, keepdims=True)
        iod = np.linalg.norm(lm[:, 33] - lm[:, 263], axis=1)[:, None]
        return np.einsum("fcx,fx->fc", lm[:, pairs[:, 0]] - lm[:, pairs[:, 1]], up) / iod

    met = 0
    for track, emotions in ((_astronaut(), ("neutral", "sad", "angry", "happy")),
                            (our_track("d19.jpg"), ("neutral", "sad", "angry", "happy")),
                            (our_track("d3.mp4"), ("angry", "disgusted"))):
        for emotion in emotions:
            edited = M.manipulate(track, emotion, 1.0)
            ok = edited.found
            gap_s, gap_t = gaps(edited.source_landmarks[ok]), gaps(edited.target_landmarks[ok])
            assert (gap_t >= np.minimum(gap_s, 0.0) - 1e-4).all(), (emotion, float(gap_t.min()))
            met += int((gap_t < 1e-6).any())
    assert met >= 4, "the test needs targets whose lips meet"
    # a crossing made by hand on a real face: the lower lip raised 5 % IOD through the upper one
    src = edited.source_landmarks[:1]
    iod = float(np.linalg.norm(src[0, 33, :2] - src[0, 263, :2]))
    crossed = src.copy()
    crossed[0, list(E.both_sides(E.LOWER_LIP_INNER_R + E.LOWER_LIP_OUTER_R + E.LOWER_LIP_ROWS_R)), 1] -= 0.05 * iod
    fixed = lips_uncrossed(src, crossed, np.array([True]))
    assert gaps(crossed).min() < -0.01 and (gaps(fixed) >= np.minimum(gaps(src), 0.0) - 1e-4).all()
    for rings in (E.UPPER_LIP_RINGS_R, E.LOWER_LIP_RINGS_R):
        for col in E._lip_columns(rings):              # each column moved as one piece
            moved = fixed[0, list(col), :2] - crossed[0, list(col), :2]
            assert np.abs(moved - moved[:1]).max() < 1e-9
    assert lips_uncrossed(src, src, np.array([True])) is src
