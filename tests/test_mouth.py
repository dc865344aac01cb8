"""The mouth interior (ned_fx.rendering.mouth) on real footage: where the target opens the mouth beyond the source,
the new opening shows a real interior from the actor's own frames (teeth, tongue, shading) whose darkness and
texture match the actor's own open mouths, the choice does not pop from frame to frame, a talking mouth kept as
it is keeps its own interior (no layer at all), and a closed-mouth still gets a shaded synthetic interior.

Measures: tests/believable_measures.py (new opening = target inner-lip polygon minus the source's; near-black =
luminance under 10 % of the face's mean)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import believable_measures as bm
from conftest import decode_rgb, our_track
from ned_fx.appearance import WARP_ONLY
from ned_fx.errors import InvalidParameterError
from ned_fx.media.frames import Frame
from ned_fx.pipeline import EditInstruction, ShotRenderer, locate_face, plan_edit
from ned_fx.rendering.layers import RegionInputs, stack
from ned_fx.rendering.mouth import MouthBank, MouthBankBuilder, MouthConfig, MouthPlan, MouthRenderer, plan_mouth
from ned_fx.rendering.mouth import shape as S
from ned_fx.rendering.mouth.bank import sample, teeth_colour
from ned_fx.rendering.mouth.plan import match_costs

WDA = "WDA_AlexandriaOcasioCortez_000.mp4"
D12 = "d12.mp4"
D3 = "d3.mp4"
STILL = "people_0.png"

_shots: dict = {}


def shot(name: str, emotion: str, intensity: float = 1.0, speech: str | None = "free", upto: int | None = None,
         config: MouthConfig | None = None, since: int = 0):
    """Track, edit, bank and plan of a shared clip/still (cached for the module); ``since``, ``upto``: the bank
    sees only the frames in that range (as ``ned-fx edit --frames since-(upto-1)`` builds it); ``config``: the
    mouth's."""
    key = (name, emotion, intensity, speech, upto, config, since)
    if key not in _shots:
        track = our_track(name)
        edited = plan_edit(track, EditInstruction(emotion=emotion, intensity=intensity, speech=speech))
        frames, _ = decode_rgb(name)
        builder = MouthBankBuilder(config)
        for i in np.flatnonzero(edited.found):
            if since <= i and (upto is None or i < upto):
                builder.add(int(i), frames[i].astype(np.float32), edited.source_landmarks[i])
        bank = builder.finish()
        plan = plan_mouth(bank, edited.source_landmarks, edited.target_landmarks, edited.found, config)
        _shots[key] = SimpleNamespace(track=track, edited=edited, frames=frames, bank=bank, plan=plan,
                                      renderer=ShotRenderer(track, edited, content=WARP_ONLY),
                                      mouth=MouthRenderer(bank, plan, config))
    return _shots[key]


def render(s, i: int):
    """Frame ``i`` of shot ``s``: (warp alone, warp + mouth layer) as RGB8 frames, the layer, its inputs."""
    from ned_fx.compositing import extract_region
    from ned_fx.media import to_display_rgb8

    frame = Frame(i, s.frames[i], ("R", "G", "B"))
    where = locate_face(s.track, s.edited, s.renderer.index, frame)
    assert where.reason is None, where.reason
    off = np.array([where.box[0], where.box[1], 0.0])
    region = extract_region(frame, where.box)
    warped = s.renderer.renderer.render(region, where.src - off, where.dst - off, s.renderer.mesh)
    inputs = RegionInputs(region, warped, where.src - off, where.dst - off, None, where.index, 255.0)
    layer = s.mouth.render(inputs)
    outs = [to_display_rgb8(s.renderer.compositor.composite_frame(frame, reg, where.box, where.dst, where.src))
            for reg in (warped, stack(warped, [layer]))]
    return outs[0], outs[1], layer, inputs


def pooled(stats: list[dict]) -> dict:
    stats = [s for s in stats if s["n"]]
    n = sum(s["n"] for s in stats)
    return {"frames": len(stats), "dark_share": sum(s["dark_share"] * s["n"] for s in stats) / n,
            "std": float(np.median([s["std"] for s in stats]))}


# ---- the bank and the plan ------------------------------------------------------------------------------------

def test_bank_keeps_diverse_open_interiors_and_round_trips():
    s = shot(WDA, "surprised")
    bank, cfg = s.bank, MouthConfig()
    assert 16 <= len(bank) <= cfg.max_entries
    assert bank.textures.shape[1:] == (cfg.texture_height, cfg.texture_width, 3)
    assert np.isfinite(bank.textures).all()
    # only frames whose own mouth is open, and a spread of openings (diverse, not the same frame 48 times)
    pts = S.inner_points(s.edited.source_landmarks[bank.index])
    assert (S.centre_opening(pts) >= cfg.min_open - 1e-6).all()
    assert len(np.unique(bank.index)) == len(bank)
    opening = bank.openings[:, 4:7].mean(1)
    assert opening.max() - opening.min() > 0.2
    again = MouthBank.from_arrays(bank.to_arrays())
    for k, v in bank.to_arrays().items():
        np.testing.assert_array_equal(again.to_arrays()[k], v)
    empty = MouthBankBuilder().finish()
    assert len(empty) == 0 and len(MouthBank.from_arrays(empty.to_arrays())) == 0
    with pytest.raises(InvalidParameterError):
        MouthBank.from_arrays({"mouth_textures": bank.textures})


@pytest.mark.parametrize("name,emotion", [(WDA, "surprised"), (WDA, "fearful"), (D12, "fearful")])
def test_plan_does_not_pop(name, emotion):
    s = shot(name, emotion)
    plan = s.plan
    found = s.edited.found
    assert (plan.first[found] >= 0).all() and (plan.first[~found] < 0).all()
    assert ((plan.weight >= 0) & (plan.weight <= 1)).all()
    # few switches over the whole shot, and none in quick succession (each one is a cross-fade, never a flip)
    assert plan.switches() <= 5, plan.switches()
    dom = np.where(plan.weight >= 0.5, np.where(plan.second >= 0, plan.second, plan.first), plan.first)
    changes = np.flatnonzero(dom[1:] != dom[:-1]) + 1
    assert (np.diff(changes) >= 12).all(), changes
    during = (plan.second >= 0) & (plan.weight > 0)
    # (a switch a few frames into a run has a shorter cross-fade: it starts no earlier than half-way back to the
    # run's start; WDA fearful switched at frame 3: frames 2-5)
    h = MouthConfig().crossfade
    assert during.sum() >= (min(h - 1, h - h // 2 + int(changes[0]) // 2 - 1) if len(changes) else 0)
    # never a frame's own interior where that frame's source shows none: close the source mouth of a bank frame
    # and ask for exactly its own open shape there; its own entry (otherwise the perfect match) is not taken
    k = len(s.bank) // 2
    t = int(s.bank.index[k])
    src, dst = s.edited.source_landmarks.copy(), s.edited.target_landmarks.copy()
    dst[t] = src[t]
    assert int(np.argmin(match_costs(s.bank, src, dst, MouthConfig())[t])) == k
    src[t, S.INNER[S.LOWER]] = src[t, S.INNER[S.UPPER]]
    assert np.isinf(match_costs(s.bank, src, dst, MouthConfig())[t, k])
    closed = plan_mouth(s.bank, src, dst, found)
    assert k not in [e for e, _ in closed.entries(t)]
    again = MouthPlan.from_arrays(plan.to_arrays())
    np.testing.assert_array_equal(again.first, plan.first)
    np.testing.assert_array_equal(again.weight, plan.weight)


# ---- the new opening looks like the actor's own open mouth ----------------------------------------------------

@pytest.mark.parametrize("name,emotion", [(WDA, "surprised"), (WDA, "fearful"), (D12, "surprised")])
def test_new_opening_matches_the_actors_own_open_mouths(name, emotion):
    """Every frame the target opens beyond the source: the new opening's near-black share at most the actor's own
    real open mouths' + 5 points, its luminance spread within 25 % of theirs, and no frame a flat hole (where a
    bank interior as open as the target exists, it replaces the source's teeth over a synthetic cavity: WDA
    surprised frames 105 and 165 were flat dark cavities, std 40 and 32 against her 82; d12 frame 60 std 14), and
    the plan does not lay a far more open interior (all cavity) into a half-open mouth (WDA fearful was 0.218
    near-black against her 0.162 + 0.05)."""
    s = shot(name, emotion)
    real = bm.real_open_mouth(s.frames, s.edited.source_landmarks)
    assert real is not None and real["frames_used"] >= 20
    ours, warp_only = [], []
    for i in range(0, len(s.frames), 15):
        if not s.edited.found[i]:
            continue
        plain, out, layer, _ = render(s, i)
        assert layer is not None            # speech "free": every frame opens beyond the source
        ours.append(bm.mouth_new_opening(out, s.edited.source_landmarks[i], s.edited.target_landmarks[i]))
        warp_only.append(bm.mouth_new_opening(plain, s.edited.source_landmarks[i], s.edited.target_landmarks[i]))
    got, plain = pooled(ours), pooled(warp_only)
    assert got["frames"] >= 10
    assert got["dark_share"] <= real["dark_share"] + 0.05, (got, real)
    assert abs(got["std"] - real["std"]) <= 0.25 * real["std"], (got, real)
    assert not any(bm.flat_black_hole(st, real) for st in ours if st["n"])
    # the measure tells the difference: the warp's dark fill alone is a flat hole in some frame
    assert sum(bm.flat_black_hole(st, real) for st in warp_only if st["n"]) >= 1, plain


def test_talking_mouth_kept_as_it_is_gets_no_layer():
    """Speech kept (the default on a talking shot) and an emotion without a jaw drop (a jaw emotion scales the
    talker's own opening, and may open beyond it), or a smile that narrows the mouth: the source shows its own
    interior and the target opens nothing further, so there is no layer at all (coverage exactly 0)."""
    s = shot(WDA, "angry", 1.0, speech=None)
    for i in range(0, len(s.frames), 20):
        if s.edited.found[i] and not np.array_equal(s.edited.source_landmarks[i], s.edited.target_landmarks[i]):
            assert render(s, i)[2] is None, i
    # a smile on a talker parts each syllable a little (ManipulatorConfig.smile_lip_gain): a layer only where the
    # target opens beyond the source, and none where they are nearly closed (under 10 px: measured 3.8-9.7 px
    # on frames 60-180; a layer shows from ~30 px, where the 1.2 x gain opens 6-11 px more)
    s = shot(WDA, "happy", 1.5, speech=None)
    src, dst = bm.T.mouth_opening(s.edited.source_landmarks), bm.T.mouth_opening(s.edited.target_landmarks)
    closed = 0
    for i in range(0, len(s.frames), 10):
        if s.edited.found[i] and render(s, i)[2] is not None:
            assert dst[i] > src[i] + 0.5, (i, src[i], dst[i])
        if s.edited.found[i] and src[i] < 10:
            closed += 1
            assert render(s, i)[2] is None, i
    assert closed >= 3, "the sample holds nearly closed frames"


def test_unchanged_target_gives_no_layer():
    s = shot(WDA, "surprised")
    for i in (0, 50, 120):
        *_, inputs = render(s, i)
        same = RegionInputs(inputs.region, inputs.region.copy(), inputs.src, inputs.src.copy(), None, i, 255.0)
        assert s.mouth.render(same) is None
        assert MouthRenderer().render(same) is None


def test_without_a_plan_each_frame_takes_its_best_match():
    s = shot(WDA, "surprised")
    *_, inputs = render(s, 100)
    alone = MouthRenderer(s.bank).render(inputs)
    planned = s.mouth.render(inputs)
    np.testing.assert_array_equal(alone.coverage, planned.coverage)
    best = MouthRenderer(s.bank)._entries(inputs)
    assert len(best) == 1 and 0 <= best[0][0] < len(s.bank)
    # a real interior, not the synthetic one
    synthetic = MouthRenderer().render(inputs)
    inside = alone.coverage > 0.9
    assert np.abs(alone.pixels[inside] - synthetic.pixels[inside]).mean() > 20


# ---- no open-mouth footage: a shaded synthetic interior -------------------------------------------------------

def _interior(layer, threshold: float = 0.9, dst=None):
    """Luminance (code values) of the layer's pixels where it fully covers (and, given the target landmarks
    ``dst``, inside its inner lip: not the lips' colour laid around a new opening)."""
    inside = layer.coverage >= threshold
    if dst is not None:
        inside &= bm.polygon_mask(layer.coverage.shape, S.inner_points(dst))
    return bm.luminance(layer.pixels[inside]), inside


@pytest.mark.parametrize("emotion", ["surprised", "fearful"])
def test_closed_mouth_still_gets_a_shaded_interior(emotion):
    s = shot(STILL, emotion, speech=None)
    assert len(s.bank) == 0 and s.plan.entries(0) == []
    plain, out, layer, inputs = render(s, 0)
    assert layer is not None
    face = bm.face_mean_luminance(out, s.edited.source_landmarks[0])
    lum, _ = _interior(layer)
    assert lum.size > 100
    assert lum.std() > 0.02 * face, "a flat fill"
    assert (lum < 0.1 * face).mean() < 0.3, "near-black"
    assert 0.05 * face < lum.mean() < 0.6 * face           # (the upper teeth band lifts the mean)
    got = bm.mouth_new_opening(out, s.edited.source_landmarks[0], s.edited.target_landmarks[0])
    assert got["n"] > 100 and not bm.flat_black_hole(got)
    assert bm.flat_black_hole(bm.mouth_new_opening(plain, s.edited.source_landmarks[0],
                                                   s.edited.target_landmarks[0]))


def test_empty_bank_closed_mouth_is_shaded_not_flat():
    """Unit: a closed mouth opened by hand (lower inner lip moved down), no bank: the interior darkens toward the
    middle and is lighter near the lower lip than under the upper lip (no teeth: none show in a closed mouth)."""
    frames, _ = decode_rgb(STILL)
    lm = our_track(STILL).landmarks[0].astype(np.float64)
    x0, y0 = np.floor(lm[:, :2].min(0)).astype(int) - 10
    x1, y1 = np.ceil(lm[:, :2].max(0)).astype(int) + 10
    region = np.ascontiguousarray(frames[0, y0:y1, x0:x1], dtype=np.float32)
    src = lm - [x0, y0, 0]
    dst = src.copy()
    pts = S.inner_points(src)
    width = float(S.mouth_width(pts))
    for k in range(11, 20):                                    # the lower inner lip, down by up to 0.35 width
        j = S.INNER[k]
        dst[j, 1] += 0.35 * width * np.sin(np.pi * (20 - k) / 10)
    assert teeth_colour(region, pts, region.mean((0, 1))) is None      # no teeth of its own in view
    layer = MouthRenderer().render(RegionInputs(region, region.copy(), src, dst, None, 0, 255.0))
    assert layer is not None and layer.name == "mouth"
    assert layer.coverage.max() == pytest.approx(1.0, abs=1e-3)
    # beyond the inner lip: only the lips' colour laid over its crease, no farther than the rim reaches (further,
    # lip_rim_corner, only within two columns of a corner)
    from ned_fx import topology as T
    outside = ~bm.polygon_mask(region.shape, S.inner_points(dst))
    ys, xs = np.nonzero(outside & (layer.coverage > 0))
    iod = T.inter_ocular(dst)
    dist, seg, _ = S.nearest_on_polygon(S.inner_points(dst), xs + 0.5, ys + 0.5)
    assert len(ys) and dist.max() <= MouthConfig().lip_rim_corner * iod + 1.0
    far = dist > MouthConfig().lip_rim * iod + 1.0
    assert np.isin(seg[far], [0, 1, 8, 9, 10, 11, 18, 19]).all(), "beyond lip_rim only at the corners"
    lum, inside = _interior(layer)
    assert lum.std() > 0.1 * lum.mean(), "a flat fill"
    ys, xs = np.nonzero(inside)
    top, bottom = ys < np.percentile(ys, 15), ys > np.percentile(ys, 80)
    middle = (ys > np.percentile(ys, 35)) & (ys < np.percentile(ys, 60))
    # the upper teeth (their colour from the eye whites) under the upper lip, the tongue lighter at the bottom,
    # the cavity dark between
    assert lum[top].mean() > 1.5 * lum[middle].mean()
    assert lum[bottom].mean() > lum[middle].mean()
    # without the lip rim, nothing beyond or on the lip line itself: the lips stay the warp's
    bare = MouthRenderer(config=MouthConfig(lip_rim=0.0)).render(RegionInputs(region, region.copy(), src, dst,
                                                                             None, 0, 255.0))
    assert (bare.coverage[outside] == 0).all()
    for x, y in S.inner_points(dst).astype(int):
        assert bare.coverage[y, x] < 0.5


def test_synthetic_interior_draws_the_shots_teeth_under_the_upper_lip():
    """No open-mouth frame in the bank but teeth seen somewhere in the shot: the synthetic interior of a closed
    mouth opened shows a band of the actor's teeth colour under the upper lip, darker below (the throat)."""
    from dataclasses import replace

    s = shot(WDA, "surprised")
    assert np.isfinite(s.bank.teeth).all() and s.bank.teeth.mean() > 150        # WDA shows her teeth
    no_interiors = replace(MouthBank.empty(), teeth=s.bank.teeth, teeth_ring=s.bank.teeth_ring)
    closed = [i for i in range(len(s.frames)) if s.edited.found[i]
              and S.centre_opening(S.inner_points(s.edited.source_landmarks[i])) < 0.04]
    assert closed
    *_, inputs = render(s, closed[0])
    layer = MouthRenderer(no_interiors).render(inputs)
    lum, inside = _interior(layer, 0.5, inputs.dst)
    ys, _ = np.nonzero(inside)
    top, rest = ys < np.percentile(ys, 20), ys > np.percentile(ys, 50)
    assert lum[top].mean() > 1.5 * lum[rest].mean()
    # without teeth anywhere (an empty bank, a frame whose mouth is closed), teeth are still drawn: their colour
    # estimated from the eye whites (a surprised open mouth shows the upper teeth)
    bare = MouthRenderer(MouthBank.empty()).render(inputs)
    lum, inside = _interior(bare, 0.5, inputs.dst)
    ys, _ = np.nonzero(inside)
    top, rest = ys < np.percentile(ys, 20), ys > np.percentile(ys, 50)
    assert lum[top].mean() > 1.3 * lum[rest].mean()


def test_config_is_validated():
    with pytest.raises(InvalidParameterError):
        MouthConfig(max_entries=0)
    with pytest.raises(InvalidParameterError):
        MouthConfig(cover_ratio_start=2.0, cover_ratio_full=1.5)
    with pytest.raises(InvalidParameterError):
        MouthConfig(min_gain=1.5)


# ---- teeth never stretch -------------------------------------------------------------------------------------

def _column_band(img: np.ndarray, lm: np.ndarray, threshold: float) -> tuple[float, float]:
    """Along the mouth's centre columns (3, averaged) of an RGB image: the height (pixels) of the bright band
    that starts under the upper inner lip (luminance above ``threshold``), and the gap (upper to lower inner lip)."""
    pts = S.inner_points(lm)
    x = int(round((pts[5, 0] + pts[15, 0]) / 2))
    y0, y1 = float(pts[5, 1]), float(pts[15, 1])
    col = bm.luminance(img[:, x - 1:x + 2].astype(np.float32)).mean(1)
    rows = np.arange(int(np.floor(y0)), int(np.ceil(y1)) + 1)
    bright = col[rows] > threshold
    start = int(np.argmax(bright))
    run = bright[start:]
    height = int(np.argmin(run)) if not run.all() else len(run)
    return float(height), y1 - y0


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    """The astronaut's toothy smile opened by surprise: track, edit, bank and plan of the still."""
    import skimage.data
    from PIL import Image

    from ned_fx.pipeline import track_media

    img = skimage.data.astronaut()
    path = tmp_path_factory.mktemp("astro") / "astronaut.png"
    Image.fromarray(img).save(path)
    track = track_media(path)
    edited = plan_edit(track, EditInstruction(emotion="surprised", intensity=1.0))
    builder = MouthBankBuilder()
    builder.add(0, img.astype(np.float32), edited.source_landmarks[0])
    bank = builder.finish()
    plan = plan_mouth(bank, edited.source_landmarks, edited.target_landmarks, edited.found)
    return SimpleNamespace(track=track, edited=edited, frames=img[None], bank=bank, plan=plan,
                           renderer=ShotRenderer(track, edited, content=WARP_ONLY), mouth=MouthRenderer(bank, plan))


def test_open_mouth_opened_further_keeps_its_upper_teeth_at_their_size(astronaut):
    """The astronaut smiles with her upper teeth showing; surprise opens her mouth about twice as far. The warp
    alone stretches the teeth with the opening (tall "horse teeth"); with the mouth layer the bright band under
    the upper lip keeps its height (within 25 %) and the rest of the new opening is darker (the cavity)."""
    s = astronaut
    src_lm, dst_lm = s.edited.source_landmarks[0], s.edited.target_landmarks[0]
    assert S.centre_opening(S.inner_points(dst_lm)) > 1.8 * S.centre_opening(S.inner_points(src_lm))
    plain, out, layer, _ = render(s, 0)
    assert layer is not None
    lips = float(bm.luminance(sample(s.frames[0].astype(np.float32), S.ring_points(src_lm)[:20])).mean())
    threshold = 1.08 * lips                                        # teeth: brighter than the lips
    h_src, g_src = _column_band(s.frames[0], src_lm, threshold)
    h_out, g_out = _column_band(out, dst_lm, threshold)
    h_warp, _ = _column_band(plain, dst_lm, threshold)
    assert h_src >= 3 and g_out > 1.6 * g_src, (h_src, g_src, g_out)
    print(f"teeth band: source {h_src:.0f} px, ours {h_out:.0f} px, warp alone {h_warp:.0f} px")
    assert abs(h_out - h_src) <= 0.25 * h_src + 0.5, (h_out, h_src)
    assert h_warp > 1.4 * h_src, (h_warp, h_src)                 # the measure tells: the warp stretches them
    # below the teeth: the cavity, far darker than the teeth
    pts = S.inner_points(dst_lm)
    x = int(round((pts[5, 0] + pts[15, 0]) / 2))
    below = bm.luminance(out[int(pts[5, 1] + h_out + 2):int(pts[15, 1] - 1), x - 1:x + 2].astype(np.float32))
    assert below.size and below.mean() < 0.6 * threshold


def test_closed_mouth_still_opened_shows_upper_teeth():
    """people_0's closed mouth opened by surprise (no teeth anywhere in the shot): a band of teeth (colour from
    her eye whites) under the upper lip, at least 1.5x as bright as the cavity below, and the rest not flat."""
    s = shot(STILL, "surprised", speech=None)
    assert not np.isfinite(s.bank.teeth).any() and np.isfinite(s.bank.sclera).all()
    plain, out, layer, inputs = render(s, 0)
    dst_lm = s.edited.target_landmarks[0]
    pts = S.inner_points(dst_lm)
    x = int(round((pts[5, 0] + pts[15, 0]) / 2))
    y0, y1 = pts[5, 1], pts[15, 1]
    gap = y1 - y0
    col = bm.luminance(out[:, x - 1:x + 2].astype(np.float32)).mean(1)
    band = col[int(y0) + 1:int(y0 + 0.35 * gap) + 1]
    cavity = col[int(y0 + 0.4 * gap):int(y0 + 0.7 * gap)]
    assert band.max() >= 1.5 * cavity.mean(), (band, cavity)
    face = bm.face_mean_luminance(out, s.edited.source_landmarks[0])
    lum, inside = _interior(layer)
    ys, _ = np.nonzero(inside)
    rest = lum[ys > np.percentile(ys, 40)]
    assert rest.std() > 0.02 * face, "a flat cavity"


# ---- a jaw drop opens a clenched interior: upper teeth up, lower down, the dark between --------------------------

def _middle_profile(img: np.ndarray, lm: np.ndarray, samples: int, t0: float = 0.0, t1: float = 1.0) -> np.ndarray:
    """Luminance down the middle of the inner-lip opening of ``lm``: the three central facing pairs, ``samples``
    points each from the upper inner lip (t0) to the lower one (t1), averaged over the pairs."""
    pts = S.inner_points(lm)
    t = np.linspace(t0, t1, samples)
    rows = []
    for a in (4, 5, 6):
        (x0, y0), (x1, y1) = pts[S.UPPER[a]], pts[S.LOWER[a]]
        pos = np.stack([x0 + t * (x1 - x0), y0 + t * (y1 - y0)], -1)
        rows.append(bm.luminance(sample(img.astype(np.float32), pos[:, None])[None, :, 0])[0])
    return np.mean(rows, 0)


def _teeth_gap(img: np.ndarray, lm: np.ndarray) -> float:
    """Down the middle of the inner-lip opening of ``lm`` (the three central facing pairs, 25 samples each from
    the upper inner lip to the lower one, averaged) in an RGB image: the darkest luminance of the middle half
    over the brightest of the upper third (the upper teeth). ~1: teeth all the way down; low: a dark band (the
    cavity) between the upper teeth and the lower lip."""
    prof = _middle_profile(img, lm, 25, 0.04, 0.96)
    return float(prof[8:20].min() / max(float(prof[:9].max()), 1e-6))


def test_jaw_drop_opens_a_clenched_interior_with_a_dark_gap():
    """d3's open mouths in her first 60 frames are a posed grimace, upper teeth bared down to the lower lip, no dark
    between them (what ``ned-fx edit d3.mp4 --frames 0-59`` banks); surprise drops her jaw to 2-3x that opening.
    Stretched over the whole opening, that interior read as a clenched grimace in an open jaw (the middle as bright as
    the teeth: 1.0 on 9 of 12 frames). Opened as a jaw drop instead (the upper teeth at their size under the upper
    lip, a shaded cavity down to the lower lip and a hint of the lower teeth), the middle of every new opening is a
    dark band, and the new openings meet the floors against her own real open mouths over the whole clip (the
    stretched teeth: spread 15 against her 22.6, one frame a flat hole)."""
    s = shot(D3, "surprised", upto=60)
    stretched = shot(D3, "surprised", upto=60, config=MouthConfig(jaw_ratio_start=50.0, jaw_ratio_full=60.0))
    assert len(s.bank) >= 10 and (s.bank.index < 60).all()
    together, split = s.mouth._teeth_rows()
    assert (together[s.bank.openings[:, 4:7].mean(1) > 0.15] == 1.0).all()      # the grimace: teeth together
    real = bm.real_open_mouth(s.frames, s.edited.source_landmarks)
    assert real is not None and real["frames_used"] >= 20
    ours, gaps, before = [], [], []
    for i in range(0, 60, 5):
        if not s.edited.found[i]:
            continue
        _, out, layer, inputs = render(s, i)
        assert layer is not None
        src_lm, dst_lm = s.edited.source_landmarks[i], s.edited.target_landmarks[i]
        ours.append(bm.mouth_new_opening(out, src_lm, dst_lm))
        gaps.append(_teeth_gap(out, dst_lm))
        before.append(_teeth_gap(render(stretched, i)[1], dst_lm))
        entries = s.mouth._entries(inputs)
        if S.centre_opening(S.inner_points(src_lm)) < MouthConfig().own_open_start:
            # a closed source mouth: the whole interior is the bank's, opened as a jaw drop
            assert entries and all(s.mouth.jaw_weight(k, dst_lm, i) == 1.0 for k, _ in entries)
    assert len(gaps) >= 10
    print("middle / upper teeth:", np.round(gaps, 2), "stretched:", np.round(before, 2))
    assert max(gaps) < 0.5, gaps
    # the measure tells the difference: the stretched clenched teeth fill the middle
    assert sum(g > 0.9 for g in before) >= len(before) // 2, before
    got = pooled(ours)
    assert got["dark_share"] <= real["dark_share"] + 0.05, (got, real)
    assert abs(got["std"] - real["std"]) <= 0.25 * real["std"], (got, real)
    assert not any(bm.flat_black_hole(st, real) for st in ours if st["n"])


def test_morph_slides_one_row_of_teeth_instead_of_showing_two():
    """Unit (:func:`morph`): a row of teeth (8 rows bright, a darker line between teeth every 10 columns, soft
    edges) at rows 10-17 of a 40x80 box and the same row 5 rows lower, half-way: one row of teeth 2.5 rows down at
    nearly full brightness with at most 2 rows of mid-tones (dissolved: a 13-row smear, its ends at half strength,
    10 rows of mid-tones); at 0 and 1 each image exactly; a per-pixel share moves each half its own way."""
    import cv2

    from ned_fx.rendering.mouth.renderer import morph

    h, w = 40, 80
    flat = np.arange(h * w)
    rows, cols = flat // w, flat % w

    def teeth(top):
        x = np.where((rows >= top) & (rows < top + 8), 220.0, 40.0) * np.where(cols % 10 < 1, 0.8, 1.0)
        x = cv2.GaussianBlur(x.reshape(h, w).astype(np.float32), (0, 0), 1.0).ravel()
        return np.repeat(x[:, None], 3, 1).astype(np.float32)

    a, b = teeth(10), teeth(15)
    half = morph(a, b, 0.5, flat, w, h).reshape(h, w, 3)[:, 20:60].mean((1, 2))
    dissolved = (0.5 * (a + b)).reshape(h, w, 3)[:, 20:60].mean((1, 2))
    mid = lambda profile: int(((profile > 80) & (profile < 170)).sum())
    print("morphed:", np.round(half), "dissolved:", np.round(dissolved))
    assert mid(dissolved) >= 8 and mid(half) <= 2, (mid(half), mid(dissolved))
    assert half[14:19].min() > 200 and abs(float(np.argmax(half)) - 16.0) <= 1.5
    assert half[:9].max() < 45 and half[25:].max() < 45              # no trace beyond either row
    np.testing.assert_array_equal(morph(a, b, 0.0, flat, w, h), a)
    np.testing.assert_array_equal(morph(a, b, 1.0, flat, w, h), b)
    share = np.where(cols < w // 2, 0.0, 1.0).astype(np.float32)
    mixed = morph(a, b, share, flat, w, h).reshape(h, w, 3)
    assert mixed[11, 5, 0] > 200 > mixed[21, 5, 0] and mixed[21, w - 5, 0] > 200 > mixed[11, w - 5, 0]


def _mid_tones(img: np.ndarray, lm: np.ndarray) -> float:
    """Share of the target opening's inner part (canonical 24x48, 3 rows and 4 columns in from the lips) whose
    luminance lies between 30 % and 70 % of the way from its 5th to its 95th percentile: neither the mouth's dark
    nor its teeth (a grey band of two rows of teeth dissolved)."""
    pos = S.canonical_positions(S.inner_points(lm), 24, 48)[3:-3, 4:-4].reshape(-1, 2)
    lum = sample(img.astype(np.float32), pos).mean(-1)
    lo, hi = np.percentile(lum, 5), np.percentile(lum, 95)
    return float(((lum > lo + 0.3 * (hi - lo)) & (lum < lo + 0.7 * (hi - lo))).mean())


def test_a_partly_covered_opening_morphs_her_teeth_instead_of_greying_them():
    """WDA surprised with the pipeline's speech rule (her gap kept, the mouth ~1.3x as open): on frames where the
    bank's interior covers the opening only partly (0.25-0.65), laying it at that opacity over the warp showed her
    teeth and the interior's at part strength: a grey band across her upper teeth (frames 27-35). The warp's teeth
    are now morphed that far toward the interior's: fewer grey mid-tones inside the opening (0.27 vs 0.31 of it on
    average, measured 0.87x)."""
    import dataclasses

    from ned_fx.rendering.mouth.renderer import column_coverage

    s = shot(WDA, "surprised", speech=None, upto=150)
    dissolve = MouthRenderer(s.bank, s.plan, dataclasses.replace(s.mouth.config, morph=False))
    ours, before = [], []
    for i in range(0, 150, 6):
        src, dst = S.inner_points(s.edited.source_landmarks[i]), S.inner_points(s.edited.target_landmarks[i])
        share = column_coverage(src, dst, s.mouth.config, s.mouth.own_weight(src)).max()
        if not 0.25 <= share <= 0.65:
            continue
        ours.append(_mid_tones(render(s, i)[1], s.edited.target_landmarks[i]))
        kept, s.mouth = s.mouth, dissolve
        try:
            before.append(_mid_tones(render(s, i)[1], s.edited.target_landmarks[i]))
        finally:
            s.mouth = kept
    print("mid-tones morphed:", np.round(ours, 3), "dissolved:", np.round(before, 3))
    assert len(ours) >= 6, len(ours)
    assert np.mean(ours) <= 0.92 * np.mean(before), (np.mean(ours), np.mean(before))


def test_short_mid_word_range_opens_without_stretched_teeth():
    """WDA surprised 1.5 edited over frames 80-109 only (mid-word, her mouth nearly closed, teeth peeking): the bank
    holds only small openings with teeth and no dark gap; laid 2-3x taller into the surprised mouth they stretched
    into vertical streaks of teeth down the whole opening ("twisted teeth"; the middle as bright as the teeth).
    Opened as a jaw drop, the middle of each new opening is darker than half its upper teeth."""
    s = shot(WDA, "surprised", 1.5, since=80, upto=110)
    stretched = shot(WDA, "surprised", 1.5, since=80, upto=110,
                     config=MouthConfig(jaw_ratio_start=50.0, jaw_ratio_full=60.0))
    assert len(s.bank) and ((s.bank.index >= 80) & (s.bank.index < 110)).all()
    ours, before = [], []
    for i in range(80, 110, 6):
        _, out, layer, inputs = render(s, i)
        assert layer is not None
        ours.append(_teeth_gap(out, s.edited.target_landmarks[i]))
        before.append(_teeth_gap(render(stretched, i)[1], s.edited.target_landmarks[i]))
    print("middle / upper teeth:", np.round(ours, 2), "stretched:", np.round(before, 2))
    assert max(ours) < 0.5, ours
    assert sum(b > 0.6 for b in before) >= 3, before


def test_teeth_rows_tell_a_gap_from_teeth_together():
    """Unit: a synthetic interior with bright upper teeth, a dark band and lower teeth has a gap (together 0),
    the same with the band as bright as the teeth is together and splits where the rows meet (a faint line),
    one with teeth down to a darker lower lip edge splits where the teeth end, and a dark interior has no
    teeth at all."""
    from ned_fx.rendering.mouth.renderer import gap_bands, teeth_rows

    cfg = MouthConfig()
    h, w = cfg.texture_height, cfg.texture_width
    v = (np.arange(h) + 0.5) / h
    def tex(profile):
        return np.repeat(np.repeat(np.asarray(profile, np.float32)[:, None, None], w, 1), 3, 2)
    gap = np.where(v < 0.35, 200.0, np.where(v < 0.7, 30.0, 180.0))
    assert teeth_rows(tex(gap), 100.0, cfg)[0] == 0.0
    together = np.where(np.abs(v - 0.5) < 0.03, 170.0, 200.0)
    t, sp = teeth_rows(tex(together), 100.0, cfg)
    assert t == 1.0 and abs(sp - 0.5) < 0.05
    to_lip = np.where(v < 0.8, 200.0, 90.0)
    t, sp = teeth_rows(tex(to_lip), 100.0, cfg)
    assert t == 1.0 and abs(sp - 0.8) < 0.05
    assert teeth_rows(tex(np.full(h, 60.0)), 100.0, cfg)[0] == 0.0
    # the source's own interior kept where it opens further (:func:`_split`): upper teeth over 60 % of the opening,
    # 1.4 x the lips, then the darker lower part: split where they end (d12 laughing; called 'no upper teeth'
    # before, the rest of the opening being as bright as they); a lip's lit edge over a dark cavity: none
    from ned_fx.rendering.mouth.renderer import _split

    laugh = np.where(v < 0.6, 160.0, 100.0)
    assert abs(float(_split(tex(laugh), 114.0).max()) - 0.6) < 0.05
    assert _split(tex(np.where(v < 0.1, 118.0, 50.0)), 114.0).max() == 0.0
    # the bands kept at size when an interior with a gap is laid into a more open mouth: its teeth above and below
    # the dark (capped at 0.45 each); teeth together or no teeth: teeth_band
    wide = np.where(v < 0.2, 200.0, np.where(v < 0.6, 20.0, 210.0))
    top, bottom = gap_bands(tex(wide), 100.0, cfg)
    assert abs(top - 0.2) < 0.04 and abs(bottom - 0.4) < 0.04, (top, bottom)
    assert gap_bands(tex(together), 100.0, cfg) == (cfg.teeth_band, cfg.teeth_band)
    assert gap_bands(tex(np.full(h, 60.0)), 100.0, cfg) == (cfg.teeth_band, cfg.teeth_band)
    with pytest.raises(InvalidParameterError):
        MouthConfig(jaw_ratio_start=2.0, jaw_ratio_full=1.5)


# ---- a sneer: the upper teeth under the raised upper lip -----------------------------------------------------

def _teeth_reach(img: np.ndarray, lm: np.ndarray) -> float:
    """Down the middle of the inner-lip opening of ``lm`` (the three central facing pairs, 41 samples each from the
    upper inner lip to the lower one, averaged) in an RGB image: how far the upper teeth reach (pixels): from the
    upper lip to the first sample below the first teeth-bright one (1.15 x the lips' luminance) that is not."""
    pts = S.inner_points(lm)
    t = np.linspace(0.0, 1.0, 41)
    prof = _middle_profile(img, lm, len(t))
    lips = bm.luminance(sample(img.astype(np.float32), S.ring_points(lm)[:20])[None])[0].mean()
    bright = prof >= 1.15 * lips
    if not bright[:20].any():
        return 0.0
    first = int(np.argmax(bright))
    end = first + int(np.argmin(bright[first:])) if not bright[first:].all() else len(t) - 1
    return float(t[end] * S.gaps(pts)[4:7].mean())


def test_sneer_shows_the_upper_teeth_at_their_size():
    """d12 disgusted (AU10 raises her upper lip; speech free: the sneer parts the lips). Her closed mouth at the
    start gets a bank interior from her laughing frames (upper teeth down to the lower teeth, no dark between)
    that is more open than the sneer: it was laid in by narrowing the middle of the opening, so the lower half of
    her teeth and the lower part were squashed into a dark line under a thin strip of teeth (the upper teeth reached
    half of their length, or of the opening: 0.50, 0.52). Now the upper teeth keep their size under the upper lip,
    in front, and what is below them shows above the lower lip: they reach down to the lower lip's soft edge (0.75
    is all of a 9 px sneer). With her laughing frames (the source's own teeth, or the bank's as open) the interior
    meets the floor against her own open mouths. With speech auto (the pipeline's default on this talking clip)
    the plan keeps her gap: no layer, and the interior is her own (the bench's 'flat' d12 disgusted interior is
    her nearly closed mouth moved up by a pixel or two: her own spread on those frames)."""
    s = shot(D12, "disgusted", upto=60)
    real = bm.real_open_mouth(s.frames, s.edited.source_landmarks)
    assert real is not None and real["frames_used"] >= 20
    together, split = s.mouth._teeth_rows()
    whole, closed = [], []
    for i in (0, 12, 40, 50):
        src_lm, dst_lm = s.edited.source_landmarks[i], s.edited.target_landmarks[i]
        _, out, layer, inputs = render(s, i)
        assert layer is not None, i
        whole.append(bm.mouth_interior(out, dst_lm))
        if S.centre_opening(S.inner_points(src_lm)) < MouthConfig().own_open_start:
            (k, _), = s.mouth._entries(inputs)
            gap = float(S.gaps(S.inner_points(dst_lm))[4:7].mean())
            teeth = float(split[k]) * float(s.bank.openings[k, 4:7].mean()) * float(s.bank.widths[k]) \
                * float(bm.iod(dst_lm))
            assert together[k] == 1.0 and teeth * 1.2 > gap, (i, teeth, gap)      # a less open laughing interior
            closed.append(_teeth_reach(out, dst_lm) / min(teeth, gap))
    print("teeth reach / their length:", np.round(closed, 2))
    assert len(closed) == 2 and min(closed) >= 0.65, closed
    got = pooled(whole)
    assert got["dark_share"] <= real["dark_share"] + 0.05, (got, real)
    assert abs(got["std"] - real["std"]) <= 0.25 * real["std"], (got, real)
    kept = shot(D12, "disgusted", speech=None, upto=60)
    seen = 0
    for i in range(2, 10):
        src_lm, dst_lm = kept.edited.source_landmarks[i], kept.edited.target_landmarks[i]
        np.testing.assert_allclose(S.gaps(S.inner_points(dst_lm)), S.gaps(S.inner_points(src_lm)), atol=0.5)
        _, out, layer, _ = render(kept, i)
        assert layer is None, i
        own, edited = bm.mouth_interior(kept.frames[i], src_lm), bm.mouth_interior(out, dst_lm)
        if min(own["n"], edited["n"]) >= 200:          # (a lip line of 40 pixels is the warp's resampling)
            seen += 1
            assert edited["std"] >= 0.75 * own["std"], (i, edited, own)
    assert seen >= 2


def test_synthetic_teeth_are_brighter_than_the_lips():
    """d8 (a still, her mouth closed, her eyes narrowed behind glasses): the eye-white samples are lids and lenses
    (skin-red, darker than her lips), and the synthetic upper teeth made from them were grey-brown, 0.7 x her lips.
    Teeth made from the eye whites are now at least 1.2 x the lips (warm off-white where the samples are not):
    her surprised mouth shows a teeth-bright band under the upper lip."""
    s = shot("d8.jpg", "surprised", speech=None)
    assert len(s.bank) == 0 and s.plan.entries(0) == []
    _, out, layer, _ = render(s, 0)
    assert layer is not None
    dst = s.edited.target_landmarks[0]
    gap = float(S.gaps(S.inner_points(dst))[4:7].mean())
    reach = _teeth_reach(out, dst)
    print("teeth reach", round(reach, 1), "of a", round(gap, 1), "px opening")
    assert 0.1 * gap <= reach <= 0.5 * gap


def _around_the_mouth(image: np.ndarray, landmarks: np.ndarray, around: np.ndarray, margin: float) -> SimpleNamespace:
    """The pixels of the box around ``around`` (Nx2) grown by ``margin`` x IOD, flattened: their centres ``px``,
    ``py``, distance to and nearest segment of the target inner lip (``dist``, ``seg``), ``inside`` it,
    luminance ``lum``, the box, the inner-lip points ``pin`` and ``iod``."""
    from ned_fx import topology as T

    lm = np.asarray(landmarks, np.float64)
    pin, iod = S.inner_points(lm), float(T.inter_ocular(lm))
    x0, y0 = np.floor(around.min(0) - margin * iod).astype(int)
    x1, y1 = np.ceil(around.max(0) + margin * iod).astype(int)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    px, py = xs.ravel() + 0.5, ys.ravel() + 0.5
    dist, seg, _ = S.nearest_on_polygon(pin, px, py)
    inside = bm.polygon_mask(image.shape, pin)[y0:y1, x0:x1].ravel()
    lum = bm.luminance(image[y0:y1, x0:x1].reshape(-1, image.shape[2]).astype(np.float32))
    return SimpleNamespace(px=px, py=py, dist=dist, seg=seg, inside=inside, lum=lum, box=(x0, y0, x1, y1), pin=pin,
                           iod=iod)


def _rim_over_lip(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Per lip (upper, lower; away from the corners): the mean luminance of the band within 1 % IOD of the inner
    lip contour (either side of it) over that of the lip body (3-5 % IOD outside the contour)."""
    m = _around_the_mouth(image, landmarks, S.inner_points(np.asarray(landmarks, np.float64)), 0.08)
    signed = np.where(m.inside, -m.dist, m.dist) / m.iod
    out = []
    for segments in ([2, 3, 4, 5, 6, 7], [12, 13, 14, 15, 16, 17]):
        on = np.isin(m.seg, segments)
        out.append(m.lum[on & (np.abs(signed) <= 0.01)].mean()
                   / m.lum[on & (signed >= 0.03) & (signed <= 0.05)].mean())
    return np.array(out)


@pytest.mark.parametrize("name", ["d8.jpg", STILL])
def test_new_opening_is_not_ringed_by_the_stretched_crease(name):
    """A closed mouth opened (stills, surprised): the warp stretches the closed lips' dark crease along the new inner
    lip, and the interior sat inside a dark ring a few pixels wide (an ink line: the band within 1 % IOD of the
    inner lip at 0.61 x the lower lip's body on d8, 0.41 x on people_0). The layer now lays the lips' own colour
    there, a soft shadow at the opening: at least 0.7 x (real open mouths, d12 and WDA, 128 frames opened over 0.15
    width: 0.67 at the darkest, 0.86-1.15 typically)."""
    s = shot(name, "surprised", speech=None)
    plain, out, layer, _ = render(s, 0)
    dst = s.edited.target_landmarks[0]
    before, after = _rim_over_lip(plain, dst), _rim_over_lip(out, dst)
    print(name, "band / lip body (upper, lower): warp", before.round(2), "with the layer", after.round(2))
    assert after.min() >= 0.7, after


def _corner_strokes(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Per corner (right, left): the darkest lip there — the 10th-percentile luminance of the pixels between the
    target's inner and outer lip contours within 8 % IOD of the inner-lip corner — over the lip body's mean (the band
    3-5 % IOD outside the inner contour, away from the corners, as :func:`_rim_over_lip`)."""
    outer = np.asarray(landmarks, np.float64)[S.OUTER, :2]
    m = _around_the_mouth(image, landmarks, outer, 0.1)
    x0, y0, x1, y1 = m.box
    lips = bm.polygon_mask(image.shape, outer)[y0:y1, x0:x1].ravel() & ~m.inside
    body = m.lum[np.isin(m.seg, [2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 16, 17]) & ~m.inside
                 & (m.dist >= 0.03 * m.iod) & (m.dist <= 0.05 * m.iod)].mean()
    out = []
    for k in (0, 10):
        near = lips & (np.hypot(m.px - m.pin[k, 0], m.py - m.pin[k, 1]) <= 0.08 * m.iod)
        out.append(np.percentile(m.lum[near], 10) / body)
    return np.array(out)


@pytest.mark.parametrize("name,emotion", [(STILL, "surprised"), (STILL, "fearful"), ("d8.jpg", "surprised")])
def test_a_new_opening_leaves_no_dark_stroke_at_the_corners(name, emotion):
    """A closed mouth opened (a still): the closed lips' crease runs on past the inner-lip corner, through the thin
    lip at the commissure, and the warp stretches it into a dark stroke from each corner down to the new opening,
    beside the opening's own edge (people_0: the darkest lip within 8 % IOD of a corner at 0.22-0.47 x the lip
    body's luminance). The layer lays the lips' colour there too (``MouthConfig.lip_rim_corner``, the colour a
    column in): where the warp left such a stroke on a lit corner the darkest lip there is lifted by at least 0.15
    x the body (without the corner rim: by 0.01-0.09), and no corner is darker than the warp left it (d8's right
    corner is in the face's shadow: dark lip, not a stroke)."""
    s = shot(name, emotion, speech=None)
    plain, out, layer, _ = render(s, 0)
    dst = s.edited.target_landmarks[0]
    before, after = _corner_strokes(plain, dst), _corner_strokes(out, dst)
    print(name, emotion, "darkest corner lip / lip body (right, left): warp", before.round(2), "with the layer",
          after.round(2))
    assert (after >= before - 0.01).all(), (before, after)
    if name == STILL:
        assert (after - before >= 0.15).all() and after.min() >= 0.4, (before, after)


def _sine_mouth(width: float = 300.0, up: float = 25.0, down: float = 45.0) -> np.ndarray:
    """20 inner-lip points of a smooth open mouth (the layout of :data:`ned_fx.topology.LIPS_INNER`)."""
    u = np.linspace(0.0, 1.0, 11)
    upper = np.stack([100 + width * u, 100 - up * np.sin(np.pi * u)], -1)
    lower = np.stack([100 + width * u, 100 + down * np.sin(np.pi * u)], -1)
    return np.concatenate([upper, lower[::-1][1:-1]])


def _iso_line(v: np.ndarray, flat: np.ndarray, box, level: float) -> np.ndarray:
    """Per column of ``box``, the sub-pixel row where ``v`` (given at the box's flat pixels) crosses ``level``."""
    x0, y0, x1, y1 = box
    grid = np.full((y1 - y0, x1 - x0), np.nan)
    grid.ravel()[flat] = v
    rows = []
    for col in grid.T:
        ok = np.flatnonzero(np.isfinite(col[:-1]) & np.isfinite(col[1:]) & (col[:-1] < level) & (col[1:] >= level))
        if not len(ok):
            rows.append(np.nan)
            continue
        i = ok[0]
        rows.append(i + (level - col[i]) / (col[i + 1] - col[i]))
    return np.asarray(rows)


def test_the_opening_is_drawn_into_a_smooth_outline_of_the_lips():
    """The inner lip's 20 points: the layer's outline is a smooth curve through them (the corners kept), and its
    canonical v (what the bands over each lip are laid by) bends nowhere: the triangles' piecewise-affine v bent at
    every lip point, and on a large face the band over the lower lip showed the straight pieces (a jagged,
    cut-out edge)."""
    pts = _sine_mouth()
    outline = S.smooth_outline(pts)
    assert outline.shape == (20 * S.OUTLINE_STEPS, 2)
    np.testing.assert_allclose(outline[::S.OUTLINE_STEPS], pts)              # through every lip point
    # the curve's turn is spread along it: no vertex turns much more than its neighbours (a polygon's all at 20)
    def turns(poly):
        d = np.diff(np.concatenate([poly, poly[:1]]), axis=0)
        ang = np.arctan2(d[:, 1], d[:, 0])
        return np.abs((np.diff(np.concatenate([ang, ang[:1]])) + np.pi) % (2 * np.pi) - np.pi)
    inner = [j for j in range(len(outline)) if j % (10 * S.OUTLINE_STEPS)]        # not at the two corners
    assert turns(outline)[np.array(inner) - 1].max() < 0.3 * turns(pts)[[1, 2, 3, 7, 8, 12, 13, 17, 18]].max()
    box = (90, 60, 410, 160)
    uv, flat = S.pixel_uv(pts, box, outline)
    xs, ys = flat % (box[2] - box[0]) + box[0] + 0.5, flat // (box[2] - box[0]) + box[1] + 0.5
    smooth = S.smooth_v(outline, xs, ys)
    assert smooth.min() >= 0 and smooth.max() <= 1
    piecewise, flat_p = S.pixel_uv(pts, box)
    for level in (0.15, 0.85):                              # a band under the upper lip, one over the lower
        old = _iso_line(piecewise[:, 1], flat_p, box, level)[40:280]
        new = _iso_line(smooth, flat, box, level)[40:280]
        bend_old, bend_new = np.nanmax(np.abs(np.diff(old, 2))), np.nanmax(np.abs(np.diff(new, 2)))
        assert bend_new < 0.35 * bend_old, (level, bend_new, bend_old)
    # the outline's pixels outside the polygon (the curve's bulge) get the nearest triangle's (u, v)
    assert len(flat) > len(flat_p) * 0.98 and np.isfinite(uv).all()


def test_a_large_faces_new_opening_has_a_smooth_lower_edge(tmp_path):
    """The astronaut's face, cropped and scaled up to a close-up (her mouth ~300 pixels wide, as on a 4K plate),
    opened by surprise: the cavity under her upper teeth ends at a smooth curve over the lower lip. Drawn by the
    piecewise-affine v its lower edge bent by 1.6 pixels between neighbouring columns at the lip points (0.66
    now: the noise of the sub-pixel edge)."""
    import skimage.data
    from PIL import Image

    from ned_fx.pipeline import edit_media

    img = np.asarray(Image.fromarray(skimage.data.astronaut()[40:240, 120:320]).resize((1024, 1024),
                                                                                         Image.BICUBIC))
    src = tmp_path / "close_up.png"
    Image.fromarray(img).save(src)
    out = tmp_path / "surprised.png"
    edit_media(src, out, EditInstruction(emotion="surprised"))
    got = np.asarray(Image.open(out)).astype(np.float32)
    lum = bm.luminance(got)
    import cv2

    cavity = ((np.abs(got - img).max(2) > 30) & (lum < 90)).astype(np.uint8)   # dark where the plate was not
    n, lab, stats, _ = cv2.connectedComponentsWithStats(cavity)
    assert n > 1
    cav = lab == 1 + np.argmax(stats[1:, cv2.CC_STAT_AREA])
    assert cav.sum() > 1200                                 # a real opening, ~300 px wide
    xs = np.flatnonzero(cav.any(0))
    edge = []
    for x in range(int(np.percentile(xs, 10)), int(np.percentile(xs, 90))):
        y = np.flatnonzero(cav[:, x]).max()                  # the cavity's last row; sub-pixel by the crossing below
        a, b = lum[y, x], lum[y + 1, x]
        edge.append(y + (float(np.clip((90 - a) / (b - a), 0, 1)) if b > a else 0.0))
    bend = np.abs(np.diff(np.asarray(edge), 2))
    assert len(edge) > 80 and bend.max() < 1.0, bend.max()
