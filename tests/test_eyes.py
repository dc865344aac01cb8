"""The eye sub-stage (ned_fx.rendering.eyes) on real footage: an eyeball behind the lids where the target opens an
eye beyond the source, nothing where it does not."""

from __future__ import annotations


import numpy as np
import pytest

from conftest import footage
from ned_fx.appearance import WARP_ONLY
from ned_fx import topology as T
from ned_fx.rendering.eyes import EyeConfig, EyeModel, EyeModelBuilder, EyeRenderer
from ned_fx.rendering.layers import RegionInputs, RenderedLayer, stack

EYES = ((T.RIGHT_EYE, (33, 133), T.RIGHT_IRIS), (T.LEFT_EYE, (362, 263), T.LEFT_IRIS))


class Shot:
    """A tracked shot, its frames' colour pixels and an eye model built from them."""

    def __init__(self, name: str, frames: str | None, tracker):
        from ned_fx.compositing import extract_region
        from ned_fx.media import open_media, parse_frame_range
        from ned_fx.pipeline import track_media

        path = footage(name)
        self.track = track_media(path, frames=frames, tracker=tracker)
        with open_media(path, parse_frame_range(frames)) as src:
            self.frames = [f for f in src]
        self.pixels = [extract_region(f, (0, 0, f.width, f.height)) for f in self.frames]
        builder = EyeModelBuilder()
        for k, px in enumerate(self.pixels):
            if self.track.found[k]:
                builder.add(k, px, self.track.landmarks[k])
        self.model = builder.finish()
        self.edits: dict = {}

    def edited(self, emotion: str, intensity: float):
        from ned_fx.pipeline import EditInstruction, plan_edit

        key = (emotion, intensity)
        if key not in self.edits:
            self.edits[key] = plan_edit(self.track, EditInstruction(emotion=emotion, intensity=intensity))
        return self.edits[key]

    def inputs(self, emotion: str, intensity: float, k: int = 0) -> RegionInputs:
        """The frame's region, the geometry renderer's warp and the landmarks, as the pipeline hands them over."""
        from ned_fx.compositing import extract_region
        from ned_fx.pipeline import ShotRenderer, locate_face

        edited = self.edited(emotion, intensity)
        shot = ShotRenderer(self.track, edited, content=WARP_ONLY)
        where = locate_face(self.track, edited, shot.index, self.frames[k])
        assert where.reason is None, where.reason
        offset = np.array([where.box[0], where.box[1], 0.0])
        region = extract_region(self.frames[k], where.box)
        src, dst = where.src - offset, where.dst - offset
        warped = shot.renderer.render(region, src, dst, shot.mesh)
        return RegionInputs(region, warped, src, dst, None, k, 255.0)


@pytest.fixture(scope="module")
def still(tracker):
    return Shot("people_0.png", None, tracker)


@pytest.fixture(scope="module")
def clip(tracker):
    return Shot("WDA_AlexandriaOcasioCortez_000.mp4", "0-5", tracker)


def _mask(poly: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2

    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round((poly - 0.5) * 16).astype(np.int32)], 1, shift=4)
    return m.astype(bool)


def _lum(img: np.ndarray) -> np.ndarray:
    return img.mean(axis=-1)


def _disc(h: int, w: int, centre, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    return np.hypot(xx - centre[0], yy - centre[1]) < radius


# ---- the model --------------------------------------------------------------------------------------------------
def test_a_single_still_makes_a_complete_model(still):
    m = still.model
    assert isinstance(m, EyeModel)
    assert list(m.frames) == [1, 1]
    assert m.iris_texture.shape == (2, EyeConfig().iris_rings, EyeConfig().iris_angles, 3)
    assert np.isfinite(m.iris_texture).all()
    assert np.all((0.15 < m.iris_ratio) & (m.iris_ratio < 0.28)), m.iris_ratio
    # the iris is far darker than the sclera, the pupil darker than the iris around it
    for e in range(2):
        iris = _lum(m.iris_texture[e]).mean()
        assert iris < 0.7 * _lum(m.sclera_colour[e]), (iris, m.sclera_colour[e])
        assert _lum(m.pupil_colour[e]) < _lum(m.iris_texture[e, -4:]).mean()
    # completed round: every angle of every ring has a value near the ring's (no holes, no lashes, no black cells)
    ring = _lum(m.iris_texture)
    assert (ring.min(axis=2) > 0.6 * np.median(ring, axis=2)).all()


def test_model_arrays_round_trip(still):
    d = still.model.to_arrays()
    assert all(isinstance(v, np.ndarray) for v in d.values())
    back = EyeModel.from_arrays({k: v.copy() for k, v in d.items()})
    for k, v in d.items():
        np.testing.assert_array_equal(np.asarray(getattr(back, k)), v)
    from ned_fx.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="missing"):
        EyeModel.from_arrays({k: v for k, v in d.items() if k != "iris_texture"})
    # an analysis file written before the sclera's colour along the eye: one colour, as it was rendered then
    old = EyeModel.from_arrays({k: v for k, v in d.items() if k != "sclera_tint"})
    assert np.asarray(old.sclera_tint).shape == np.asarray(still.model.sclera_tint).shape
    assert (np.asarray(old.sclera_tint) == 1.0).all()
    with pytest.raises(InvalidParameterError, match="sclera_tint"):
        EyeModel(**{**{k: getattr(still.model, k) for k in d}, "sclera_tint": np.ones((2, 3, 3))})


def test_eyes_never_seen_open_give_an_empty_eye():
    frame = np.full((64, 64, 3), 128, np.float32)
    lm = np.zeros((478, 3))             # every point on one spot: no opening at all
    builder = EyeModelBuilder()
    builder.add(0, frame, lm)
    model = builder.finish()
    assert list(model.frames) == [0, 0] and model.usable(0) is None


# ---- nothing to add ---------------------------------------------------------------------------------------------
def test_target_equal_to_source_adds_nothing(still, clip):
    for shot in (still, clip):
        inp = shot.inputs("surprised", 1.0)
        same = RegionInputs(inp.region, inp.region, inp.src, inp.src.copy(), None, 0, 255.0)
        assert EyeRenderer(shot.model).render(same) is None
        assert EyeRenderer(None).render(same) is None


def test_a_narrowed_eye_adds_nothing(still, clip):
    for shot in (still, clip):
        assert EyeRenderer(shot.model).render(shot.inputs("happy", 1.0)) is None      # a squint
    # lids brought towards each other (about the eye's centre line) in an otherwise unchanged face
    inp = clip.inputs("surprised", 1.0)
    dst = inp.src.copy()
    for contour, _, _ in EYES:
        idx = list(contour)
        mid = dst[idx, 1].mean()
        dst[idx, 1] = mid + 0.6 * (dst[idx, 1] - mid)
    narrowed = RegionInputs(inp.region, inp.region, inp.src, dst, None, 0, 255.0)
    assert EyeRenderer(clip.model).render(narrowed) is None


# ---- widened eyes -----------------------------------------------------------------------------------------------
def _measure(shot, emotion, intensity, k=0):
    """(layer, inputs, final, per-eye [(new-area mask, source sclera mean, final new-area sclera mean,
    warped new-area sclera mean)])."""
    inp = shot.inputs(emotion, intensity, k)
    layer = EyeRenderer(shot.model).render(inp)
    assert isinstance(layer, RenderedLayer)
    final = stack(inp.warped, [layer])
    h, w = inp.region.shape[:2]
    out = []
    for e, (contour, corners, iris) in enumerate(EYES):
        width_s = np.linalg.norm(inp.src[corners[0], :2] - inp.src[corners[1], :2])
        width_t = np.linalg.norm(inp.dst[corners[0], :2] - inp.dst[corners[1], :2])
        src_eye = _mask(inp.src[list(contour), :2], h, w)
        src_iris = _disc(h, w, inp.src[iris[0], :2], shot.model.iris_ratio[e] * width_s)
        sclera = _lum(inp.region)[src_eye & ~src_iris].mean()
        dst_eye = _mask(inp.dst[list(contour), :2], h, w)
        dst_iris = _disc(h, w, inp.dst[iris[0], :2], shot.model.iris_ratio[e] * width_t)
        new = dst_eye & (layer.coverage > 0.5) & ~dst_iris
        out.append((new, sclera, _lum(final)[new].mean(), _lum(inp.warped)[new].mean()))
    return layer, inp, final, out


@pytest.mark.parametrize("which,emotion,intensity", [("still", "surprised", 1.0), ("still", "fearful", 1.5),
                                                     ("clip", "surprised", 1.0), ("clip", "fearful", 1.5)])
def test_newly_uncovered_eye_is_white_not_a_smeared_lid(which, emotion, intensity, still, clip):
    shot = still if which == "still" else clip
    layer, inp, final, eyes = _measure(shot, emotion, intensity)
    for new, sclera, got, warped in eyes:
        assert new.sum() >= 8, "the widened eye shows new sclera"
        assert got >= 0.8 * sclera, (got, sclera)
        assert got > warped + 0.1 * sclera, (got, warped)        # the warp alone shows a dark smear there
    assert layer.pixels.shape == inp.region.shape and layer.coverage.shape == inp.region.shape[:2]
    assert layer.coverage.min() >= 0 and layer.coverage.max() <= 1 and layer.name == "eyes"


def test_coverage_stays_inside_the_target_lids(still, clip):
    # (the lash band's mended specks aside: test_catchlights_carried_into_the_lashes_are_mended)
    for shot in (still, clip):
        inp = shot.inputs("surprised", 1.0)
        layer = EyeRenderer(shot.model, EyeConfig(lash_specks=0.0)).render(inp)
        h, w = inp.region.shape[:2]
        inside = np.zeros((h, w), bool)
        for contour, corners, _ in EYES:
            width = np.linalg.norm(inp.dst[corners[0], :2] - inp.dst[corners[1], :2])
            import cv2

            m = _mask(inp.dst[list(contour), :2], h, w).astype(np.uint8)
            # the lid margin (lashes, make-up) keeps the warp: nothing within the inset of the contour
            inset = max(EyeConfig().lid_inset * width, 1.0) - 0.75
            inside |= cv2.distanceTransform(np.pad(m, 1), cv2.DIST_L2, 5)[1:-1, 1:-1] > inset
        assert layer.coverage[~inside].max() == 0


def test_catchlights_carried_into_the_lashes_are_mended(clip):
    """WDA surprised: the tracked upper lid runs through her catchlights, so where the lid rises the warp carries
    them up with the lashes: white dots in the lash band over the iris (frames 0-55 of the clip at 6x, looked at).
    The eye layer mends them with the lashes around them (``EyeConfig.lash_specks``); everywhere else outside the
    target lids it leaves the warp's lashes and liner alone."""
    import cv2

    from ned_fx.rendering.eyes._geometry import UPPER, polyline_distance

    for k in (0, 3):
        inp = clip.inputs("surprised", 1.0, k)
        layer = EyeRenderer(clip.model).render(inp)
        final = stack(inp.warped, [layer])
        h, w = inp.region.shape[:2]
        bright = {"warp": 0, "final": 0}
        outside = np.ones((h, w), bool)
        for e, (contour, corners, iris) in enumerate(EYES):
            width = np.linalg.norm(inp.dst[corners[0], :2] - inp.dst[corners[1], :2])
            m = _mask(inp.dst[list(contour), :2], h, w).astype(np.uint8)
            inset = max(EyeConfig().lid_inset * width, 1.0) - 0.75
            outside &= ~(cv2.distanceTransform(np.pad(m, 1), cv2.DIST_L2, 5)[1:-1, 1:-1] > inset)
            # the lash band over the iris: 0.01-0.06 eye widths above the target's upper lid, outside the opening
            c = inp.dst[iris[0], :2]
            r = float(np.linalg.norm(inp.dst[list(iris[1:]), :2] - c, axis=1).mean())
            yy, xx = np.mgrid[0:h, 0:w]
            near = (np.abs(xx + 0.5 - c[0]) < r) & (yy + 0.5 < c[1])
            pts = np.stack([xx[near] + 0.5, yy[near] + 0.5], 1)
            d = polyline_distance(pts, inp.dst[list(contour[:UPPER]), :2])
            band = np.zeros((h, w), bool)
            band[near] = (d > 0.01 * width) & (d < 0.06 * width)
            band &= ~m.astype(bool)
            sclera = np.percentile(_lum(inp.region)[_mask(inp.src[list(contour), :2], h, w)], 90)
            for name, img in (("warp", inp.warped), ("final", final)):
                # a dot: much brighter than its 7x7 neighbourhood's median (lid skin above the lashes is bright
                # all over)
                lum = _lum(img).astype(np.float32)
                dots = lum - cv2.medianBlur(np.clip(lum, 0, 255).astype(np.uint8), 7) > 0.3 * sclera
                bright[name] += int(dots[band].sum())
        assert bright["warp"] >= 5 and bright["final"] <= 1, (k, bright)         # measured 8 and 7 -> 0
        # outside the target lids the layer only darkens: the mended specks, nothing drawn over the lashes
        changed = outside & (np.abs(final - inp.warped).max(axis=2) > 0.5)
        assert changed.any() and (_lum(final)[changed] < _lum(inp.warped)[changed]).all()
        assert changed.sum() < 0.2 * (layer.coverage > 0).sum()
        # deeper inside the opening than the lid margin the mending changes nothing (a bright sliver there is the
        # eye's own white)
        plain = stack(inp.warped, [EyeRenderer(clip.model, EyeConfig(lash_specks=0.0)).render(inp)])
        mended = np.abs(final - plain).max(axis=2) > 0.5
        deep = np.zeros((h, w), bool)
        for contour, corners, _ in EYES:
            width = np.linalg.norm(inp.dst[corners[0], :2] - inp.dst[corners[1], :2])
            m = _mask(inp.dst[list(contour), :2], h, w).astype(np.uint8)
            c = EyeConfig()
            deep |= cv2.distanceTransform(np.pad(m, 1), cv2.DIST_L2, 5)[1:-1, 1:-1] > (
                c.lid_inset * width + max(c.edge_softness * width, c.min_soft_px) + 1.0)
        assert mended.any() and not (mended & deep).any()


def test_the_limbus_is_the_iris_s_dark_edge_not_a_pale_ring(clip):
    """WDA's iris texture had sampled her bright sclera in its last rings (a soft edge, a radius a pixel large): the
    eyeball drew a pale ring just inside the limbus, tinted cyan or violet by the colour match (surprised, frames
    30-32 at 8x; looked at, gone). An outer ring brighter than the iris takes the colour inside it
    (``EyeConfig.limbus_rise``): on her frames the last rings read 1.8x and 3.4-4.2x the iris's brightest ring
    between 0.5 and 0.85 radii without it, the iris's own level with it; the rings inside are untouched."""
    models = {}
    for rise in (0.0, EyeConfig().limbus_rise):
        builder = EyeModelBuilder(EyeConfig(limbus_rise=rise))
        for k, px in enumerate(clip.pixels):
            builder.add(k, px, clip.track.landmarks[k])
        models[rise] = builder.finish()
    before, now = (np.asarray(m.iris_texture, np.float64) for m in models.values())
    rings = before.shape[1]
    rho = (np.arange(rings) + 0.5) / rings
    body = (rho > 0.5) & (rho <= 0.85)

    def ratio(tex):                     # each ring's brightness over the body's brightest ring, per eye
        lum = _lum(tex).mean(axis=2)
        return lum / lum[:, body].max(axis=1, keepdims=True)

    assert ratio(before)[:, -1].min() > 3.0 and ratio(now)[:, rho > 0.85].max() <= EyeConfig().limbus_rise
    np.testing.assert_array_equal(now[:, rho <= 0.85], before[:, rho <= 0.85])
    from ned_fx.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError):
        EyeConfig(limbus_rise=-1.0)


def test_the_whole_iris_is_drawn_from_the_frame_s_own_iris(clip):
    """Where the lids open, the eyeball covers the whole iris (the warp stretches the source's iris between the
    parting lids), drawn from the frame's own iris where the lids left it: its middle is the source's colour, not
    the shot texture's (paler on a clip: it averages the frames)."""
    inp = clip.inputs("surprised", 1.0)
    own = EyeRenderer(clip.model).render(inp)
    texture = EyeRenderer(clip.model, EyeConfig(iris_own=0.0)).render(inp)
    part = EyeRenderer(clip.model, EyeConfig(iris_whole=0.0)).render(inp)
    h, w = inp.region.shape[:2]
    src_eye_mask = [_mask(inp.src[list(contour), :2], h, w) for contour, _, _ in EYES]
    for e, (contour, _, iris) in enumerate(EYES):
        radius = float(np.linalg.norm(inp.dst[list(iris[1:]), :2] - inp.dst[iris[0], :2], axis=1).mean())
        middle = _disc(h, w, inp.dst[iris[0], :2], 0.5 * radius)
        assert own.coverage[middle].min() > 0.9, own.coverage[middle].min()
        assert part.coverage[middle].mean() < 0.5          # the new part alone leaves the warp's stretched middle
        seen = _disc(h, w, inp.src[iris[0], :2], 0.5 * radius) & src_eye_mask[e]
        real = inp.region[seen].mean(axis=0)
        got, tex = own.pixels[middle].mean(axis=0), texture.pixels[middle].mean(axis=0)
        # within 3 code values of the frame's own iris (measured 0.4 and 1.9), nearer than the texture (4.4-7.2)
        assert np.abs(got - real).max() < min(3.0, np.abs(tex - real).max()), (real, got, tex)


def test_the_rendered_iris_is_round(still, clip):
    """The iris boundary (sub-pixel iso-line halfway between iris and sclera) inside the target opening, away
    from the lids: an ellipse fitted to it is round on the eyeball layer (and stretched by the warp alone)."""
    import cv2
    from skimage.measure import find_contours

    ratios = {"final": [], "warped": []}
    for shot, emotion in ((still, "surprised"), (clip, "surprised"), (clip, "fearful")):
        layer, inp, final, eyes = _measure(shot, emotion, 1.0)
        h, w = inp.region.shape[:2]
        for e, (contour, corners, iris) in enumerate(EYES):
            width = np.linalg.norm(inp.dst[corners[0], :2] - inp.dst[corners[1], :2])
            radius = shot.model.iris_ratio[e] * width
            centre = inp.dst[iris[0], :2]
            eye = _mask(inp.dst[list(contour), :2], h, w).astype(np.uint8)
            away = cv2.distanceTransform(np.pad(eye, 1), cv2.DIST_L2, 5)[1:-1, 1:-1] > 0.1 * width
            # halfway between the limbus (the iris's dark outer rings) and the sclera
            level = 0.5 * (_lum(shot.model.iris_texture[e, -4:]).mean() + eyes[e][1])
            for name, img in (("final", final), ("warped", inp.warped)):
                pts = np.concatenate([c for c in find_contours(_lum(img), level)] or [np.zeros((0, 2))])[:, ::-1]
                pts = pts + 0.5                                              # pixel centres
                r = np.hypot(*(pts - centre).T)
                ix, iy = np.clip(pts.astype(int).T, 0, [[w - 1], [h - 1]])
                keep = (r > 0.6 * radius) & (r < 1.3 * radius) & away[iy, ix]   # not a catchlight, not a lid
                if keep.sum() < 12:
                    continue
                (_, _), (a, b), _ = cv2.fitEllipse(pts[keep].astype(np.float32))
                ratios[name].append(min(a, b) / max(a, b))
    assert len(ratios["final"]) >= 5
    assert min(ratios["final"]) >= 0.9, ratios
    assert np.mean(ratios["warped"]) < np.mean(ratios["final"]) - 0.1, ratios


def test_occluded_pixels_are_left_to_the_occluder(clip):
    inp = clip.inputs("surprised", 1.0)
    valid = np.ones(inp.region.shape[:2], np.float32)
    valid[:, : valid.shape[1] // 2] = 0.0              # the image-left half (the right eye) is behind something
    layer = EyeRenderer(clip.model).render(RegionInputs(inp.region, inp.warped, inp.src, inp.dst, valid, 0, 255.0))
    assert layer is not None
    assert layer.coverage[:, : valid.shape[1] // 2].max() == 0
    assert layer.coverage[:, valid.shape[1] // 2:].max() > 0.9


def test_a_lone_still_without_a_model_renders_from_its_own_frame(still):
    inp = still.inputs("surprised", 1.0)
    alone = EyeRenderer(None).render(inp)
    built = EyeRenderer(still.model).render(inp)
    assert alone is not None
    np.testing.assert_allclose(alone.coverage, built.coverage)
    np.testing.assert_allclose(alone.pixels, built.pixels, atol=1e-2)


def test_a_blink_the_tracker_missed_gets_no_eyeball(clip, tracker):
    """WDA frame 10: the eyes are shut, the tracked lids still show an opening; the eyeball must not appear on
    the closed lids (the warp alone shows them)."""
    blink = Shot("WDA_AlexandriaOcasioCortez_000.mp4", "10-10", tracker)
    inp = blink.inputs("surprised", 1.0)
    layer = EyeRenderer(clip.model).render(inp)
    assert layer is None or layer.coverage.max() < 0.05
    # the same renderer does draw on the open eyes of frame 0
    assert EyeRenderer(clip.model).render(clip.inputs("surprised", 1.0)).coverage.max() > 0.9


def test_a_pale_iris_is_an_eye_not_a_blink(tracker):
    """d19 surprised: his pale blue-grey irises are nearly as bright as the whites in his shaded right eye (0.83 of
    them: the blink guard's 'an iris as bright as its sclera'), and that eye's eyeball came in at 0.42 (a grey veil
    over his stretched lid, the other eye white). An iris whose colour differs from its sclera's is an eye: both eyes
    are now covered alike. Lid skin in both places has one colour: WDA's missed blink stays without an eyeball (the
    test above), and with the colour rule off d19's right eye is veiled again."""
    import dataclasses

    from ned_fx.rendering.eyes._geometry import EYES

    shot = Shot("d19.jpg", None, tracker)
    inp = shot.inputs("surprised", 1.0)
    h, w = inp.region.shape[:2]

    def per_eye(config):
        layer = EyeRenderer(shot.model, config).render(inp)
        assert layer is not None
        out = []
        for contour, _, _ in EYES:
            inside = _mask(np.asarray(inp.dst)[list(contour), :2], h, w) & (layer.coverage > 0)
            out.append(float(np.percentile(layer.coverage[inside], 90)))
        return out

    now = per_eye(EyeConfig())
    before = per_eye(dataclasses.replace(EyeConfig(), iris_hue=(5.0, 6.0)))
    print("eyeball coverage (90th pct) per eye:", np.round(now, 2), "without the colour rule:", np.round(before, 2))
    assert min(now) >= 0.9, now
    assert min(before) < 0.6 < max(before), before


def test_grey_and_16_bit_plates(still):
    """One colour channel and 16-bit plate values: the same eyeball, in the plate's own values."""
    inp = still.inputs("surprised", 1.0)
    scale = 65535.0 / 255.0
    grey = lambda a: (a.mean(axis=2, keepdims=True) * scale).astype(np.float32)      # noqa: E731
    builder = EyeModelBuilder()
    builder.add(0, grey(still.pixels[0]), still.track.landmarks[0])
    model = builder.finish()
    assert model.channels == 1
    layer = EyeRenderer(model).render(RegionInputs(grey(inp.region), grey(inp.warped), inp.src, inp.dst, None, 0,
                                                   65535.0))
    colour = EyeRenderer(still.model).render(inp)
    assert layer.pixels.shape == inp.region.shape[:2] + (1,)
    # the coverage is the same where it comes from the lids' geometry; where it covers the old lash line it
    # reads brightness, which one channel and three weigh a little differently
    np.testing.assert_allclose(layer.coverage, colour.coverage, atol=0.15)
    assert np.mean(np.abs(layer.coverage - colour.coverage) > 1e-5) < 0.01
    seen = colour.coverage > 0.5
    np.testing.assert_allclose(layer.pixels[seen, 0] / scale, colour.pixels[seen].mean(axis=1), rtol=0.05, atol=3)


def test_a_plate_with_more_than_four_channels(clip):
    """Six channels (RGB and a copy, as an EXR's extra layers), the lash band's mending among the steps (WDA frame 0
    needs it): the eyeball and its coverage are the RGB plate's."""
    six = lambda a: np.concatenate([a, a], axis=2).astype(np.float32)      # noqa: E731
    builder = EyeModelBuilder()
    for k, px in enumerate(clip.pixels):
        builder.add(k, six(px), clip.track.landmarks[k])
    inp = clip.inputs("surprised", 1.0)
    layer = EyeRenderer(builder.finish()).render(RegionInputs(six(inp.region), six(inp.warped), inp.src, inp.dst,
                                                              None, 0, 255.0))
    colour = EyeRenderer(clip.model).render(inp)
    assert layer.pixels.shape == inp.region.shape[:2] + (6,)
    # (the same geometry; the model's few samples at a threshold may fall the other way: 7 of 208749 pixels)
    np.testing.assert_allclose(layer.coverage, colour.coverage, atol=0.15)
    assert np.mean(np.abs(layer.coverage - colour.coverage) > 1e-5) < 0.001
    seen = colour.coverage > 0.5
    for half in (layer.pixels[..., :3], layer.pixels[..., 3:]):
        np.testing.assert_allclose(half[seen], colour.pixels[seen], atol=3)


# ---- the floor on the whole edit: small and shadowed eyes ------------------------------------------------
def _still_edit(path, emotion: str, intensity: float, content=None):
    """The full pipeline's edit of a still (the shot's models, occluders, skin, mouth, eyes) as RGB8, with the
    source and target landmarks."""
    from ned_fx.appearance import build_shot_models
    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import EditInstruction, ShotRenderer, plan_edit, track_media

    track = track_media(path)
    edited = plan_edit(track, EditInstruction(emotion=emotion, intensity=intensity))
    with open_media(path) as media:
        frame = next(iter(media))
    if content is None:
        shot = ShotRenderer(track, edited, models=build_shot_models(path, track, edited))
    else:
        shot = ShotRenderer(track, edited, content=content)
    out, reason = shot.render(frame)
    assert reason is None

    def rgb8(px):
        return px[..., :3] if px.dtype == np.uint8 else to_display_rgb8(px)[..., :3]

    return rgb8(frame.pixels), rgb8(out.pixels), edited.source_landmarks[0], edited.target_landmarks[0]


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory):
    import skimage.data
    from PIL import Image

    path = tmp_path_factory.mktemp("astro") / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(path)
    return path


@pytest.mark.parametrize("name", ["d8.jpg", "astronaut"])
@pytest.mark.parametrize("emotion,intensity", [("surprised", 1.0), ("fearful", 1.0), ("surprised", 1.5)])
def test_whole_edit_uncovers_eye_white_on_small_and_shadowed_eyes(name, emotion, intensity, astronaut_png):
    """The issue's eye floor as the eval measures it (the whole newly uncovered area inside the target lid contour,
    lid edge and any iris included, over the source's visible sclera) on the eyes it was missed on: d8's right eye
    (in the shadow of his glasses, 0.77 before) and the astronaut's (20 pixels wide: the lid margin's row is a third
    of the new area; 0.54-0.67 before). The warp alone (a stretched lid and lash line) stays far below."""
    import believable_measures as bm
    from ned_fx.appearance import WARP_ONLY

    path = astronaut_png if name == "astronaut" else footage(name)
    src, out, s, d = _still_edit(path, emotion, intensity)
    _, warp, _, _ = _still_edit(path, emotion, intensity, content=WARP_ONLY)
    for side in ("right", "left"):
        # the strict form: the lid margin's row counted too (the eval's default leaves it out)
        got = bm.eye_new_area_ratio(src, out, s, d, side, margin_px=0)
        plain = bm.eye_new_area_ratio(src, warp, s, d, side, margin_px=0)
        assert got["n"] >= 40, (side, got)                               # the edit does widen the eye
        assert got["ratio"] >= 0.8, (side, got)
        assert plain["ratio"] < got["ratio"] - 0.1, (side, plain, got)
        # a natural eye white: no brighter than the brightest of the source's own sclera
        assert got["new_mean"] <= 1.1 * np.percentile(bm.luminance(src)[bm.sclera_mask(src.shape, s, side)], 95)


@pytest.mark.parametrize("which", ["still", "clip"])
def test_new_eye_white_has_the_scleras_colour_and_shading(which, still, clip):
    """The rendered eye white is the visible sclera's colour (its chromaticity, not a flat grey) and shaded: darker
    right under the upper lid and toward the eye's corners than in the open middle."""
    shot = still if which == "still" else clip
    layer, inp, final, eyes = _measure(shot, "surprised", 1.0)
    h, w = inp.region.shape[:2]
    for e, (contour, corners, iris) in enumerate(EYES):
        src_eye = _mask(inp.src[list(contour), :2], h, w)
        width_s = np.linalg.norm(inp.src[corners[0], :2] - inp.src[corners[1], :2])
        src_iris = _disc(h, w, inp.src[iris[0], :2], 1.3 * shot.model.iris_ratio[e] * width_s)
        seen = inp.region[src_eye & ~src_iris]
        seen = seen[_lum(seen) >= np.percentile(_lum(seen), 80)]            # the sclera, not lashes or lids
        new = eyes[e][0] & (layer.coverage > 0.9)
        got = layer.pixels[new]
        chroma = lambda px: px.mean(0) / px.mean()                            # noqa: E731
        assert np.abs(chroma(got) - chroma(seen)).max() < 0.06, (chroma(got), chroma(seen))
        # shading: the rendered eyeball (layer pixels over the whole target opening, iris excluded) is darker in
        # the band under the upper lid and toward the corners than in the middle
        from ned_fx.rendering.eyes._geometry import EyeFrame, polyline_distance

        ft = EyeFrame(inp.dst[:, :2], corners)
        dst_eye = _mask(inp.dst[list(contour), :2], h, w) & (layer.coverage > 0.5)
        width_t = np.linalg.norm(inp.dst[corners[0], :2] - inp.dst[corners[1], :2])
        dst_eye &= ~_disc(h, w, inp.dst[iris[0], :2], 1.2 * shot.model.iris_ratio[e] * width_t)
        ys, xs = np.nonzero(dst_eye)
        pts = np.stack([xs + 0.5, ys + 0.5], 1)
        lum = _lum(layer.pixels[ys, xs])
        d_up = polyline_distance(pts, inp.dst[list(contour[:9]), :2]) / ft.w
        d_low = polyline_distance(pts, inp.dst[list(contour[8:]) + [contour[0]], :2]) / ft.w
        # (the open middle: away from the lower lid too, whose own shade is on the old lash line it covers)
        middle = (d_up > 0.12) & (d_low > 0.08)
        assert lum[d_up < 0.05].mean() < 0.97 * lum[middle].mean(), "no shadow under the upper lid"


@pytest.fixture(scope="module")
def shadowed(tracker):
    return Shot("d19.jpg", None, tracker)


def test_a_narrow_eye_s_new_white_is_white_not_skin(shadowed):
    """d19's narrow, shadowed eyes show a few pixels of sclera between lid skin, and the JPEG's half-resolution
    chroma bleeds the skin's colour into them (the model's sclera read 0.55 and 0.27 of chroma, his skin 0.5):
    kept, surprise opened a skin-brown eyeball on his right eye and a pink one on his left (1.04 and 0.57 of the
    skin's chroma, chroma = (max - min) / mean of the channels). The new white is at most half as coloured as the
    skin under the eye (0.35 of it where it is rendered whole, up to the real sclera's colour where it meets it:
    ``EyeConfig.seam_tint_limits``), keeps the plate's warm side (red over blue), and is no darker than the
    source's own sclera."""
    layer, inp, final, eyes = _measure(shadowed, "surprised", 1.0)
    h, w = inp.region.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    chroma = lambda px: float((px.max(-1) - px.min(-1)).mean() / px.mean())      # noqa: E731
    for e, (contour, corners, iris) in enumerate(EYES):
        src = inp.src[:, :2]
        width = float(np.linalg.norm(src[corners[0]] - src[corners[1]]))
        lids = src[list(contour)]
        # the skin under the eye: a box 0.15-0.35 eye widths below its lowest point, the eye's width wide
        below = (ys > lids[:, 1].max() + 0.15 * width) & (ys < lids[:, 1].max() + 0.35 * width) \
            & (xs > lids[:, 0].min()) & (xs < lids[:, 0].max())
        skin = chroma(inp.region[below])
        white = layer.pixels[eyes[e][0] & (layer.coverage > 0.9)]
        assert len(white) >= 100, len(white)
        got = chroma(white)
        print(f"eye {e}: new white chroma {got:.3f}, skin {skin:.3f}, colour {white.mean(0).round(0)}")
        assert got <= 0.5 * skin, (got, skin)
        assert white[:, 0].mean() > white[:, 2].mean()
        assert _lum(white).mean() >= 0.95 * eyes[e][1], (_lum(white).mean(), eyes[e][1])


def _eye_and_iris(inp, e: int, model) -> tuple[np.ndarray, np.ndarray]:
    """Eye ``e``'s target opening and its iris disc x 1.3 (the model's iris ratio), as region masks."""
    contour, corners, iris = EYES[e]
    h, w = inp.region.shape[:2]
    width = float(np.linalg.norm(inp.dst[corners[0], :2] - inp.dst[corners[1], :2]))
    return (_mask(inp.dst[list(contour), :2], h, w),
            _disc(h, w, inp.dst[iris[0], :2], 1.3 * model.iris_ratio[e] * width))


def _colour_step(layer, inp, e: int, model) -> float:
    """The sharpest change of colour inside eye ``e``'s rendered white (coverage > 0.9, outside the iris disc x 1.3,
    3 px in from its edge): the 99th percentile of the gradient of red-minus-blue over brightness, smoothed by a
    1-pixel Gaussian, per eye width. A band drawn along an old lid line is a step; a sclera's shading is a slope."""
    import cv2

    eye, iris = _eye_and_iris(inp, e, model)
    white = eye & (layer.coverage > 0.9) & ~iris
    inner = cv2.erode(white.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    width = float(np.linalg.norm(inp.dst[EYES[e][1][0], :2] - inp.dst[EYES[e][1][1], :2]))
    px = layer.pixels.astype(np.float64)
    rb = np.where(white, (px[..., 0] - px[..., 2]) / np.maximum(px.mean(-1), 1e-6), 0.0).astype(np.float32)
    rb = cv2.GaussianBlur(rb, (0, 0), 1.0)
    grad = np.hypot(cv2.Sobel(rb, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(rb, cv2.CV_32F, 0, 1, ksize=3)) / 8.0
    assert np.count_nonzero(inner) >= 50, np.count_nonzero(inner)
    return float(np.percentile(grad[inner], 99)) * width


@pytest.mark.parametrize("e", [0, 1])
def test_a_widened_eye_s_white_draws_no_old_lid_line(shadowed, e):
    """Surprise on d19's narrow eyes: the real sclera's colour (pink, skin-tinged) that the rendered white is
    matched to where the two meet held to the source's old lid line and stopped within 0.08 eye widths beyond it,
    so a pink band sat under a grey-blue arc with a line between them: the old lid line drawn across the new white
    (his right eye at 5x; d8's left eye too). The tint now fades across that line, ``EyeConfig.seam_tint_reach``
    either side: the sharpest colour change in the white is under 2 (red-minus-blue over brightness, per eye
    width; 4.7 and 2.7 before, 1.2 and 0.9 now); faded over 0.02 eye widths, the step is back and this measure
    sees it."""
    import dataclasses

    layer, inp, _, _ = _measure(shadowed, "surprised", 1.0)
    step = _colour_step(layer, inp, e, shadowed.model)
    sharp = EyeRenderer(shadowed.model, dataclasses.replace(EyeConfig(), seam_tint_reach=0.02)).render(inp)
    before = _colour_step(sharp, inp, e, shadowed.model)
    print(e, "colour step", round(step, 3), "sharp", round(before, 3))
    assert step < 2.0, step
    assert before > 2.0 > step, (before, step)


def _lash_dark_in_white(layer, inp, model) -> int:
    """Pixels of the composite inside both target openings (a pixel in from the lids), outside the iris disc x 1.3,
    darker than 0.6 x the rendered white's median: a lash line or lid left in the new white."""
    import cv2

    y = _lum(stack(inp.warped, [layer]))
    dark = 0
    for e in range(len(EYES)):
        eye, iris = _eye_and_iris(inp, e, model)
        white = (cv2.erode(eye.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & ~iris
        dark += int((y[white] < 0.6 * np.median(_lum(layer.pixels)[white & (layer.coverage > 0.9)])).sum())
    return dark


def test_the_old_lash_line_between_new_white_and_iris_is_covered(still, clip):
    """people_0 surprised and fearful: near her eyes' corners the upper lid barely moves, so the eyeball's coverage
    there fades out with the lid's movement, and the old lash line the warp leaves showed as a thin grey line
    across the new white between the iris disc and the white beyond the old lid (10x crops: her right eye's outer
    corner, her left eye's inner corner). Where the eyeball covers the pixels around (``EyeConfig.old_lid_near``),
    the old lid line is covered as they are: no lash-dark pixel is left in her new whites (a pixel in from the
    lids); gated by the lid's movement alone, the line's darkest pixels stay. WDA's widened eyes (frame 0, 10x)
    had the same line at her inner corner and a dark notch of the old lid at the outer corners: 82 and 74 such
    pixels (surprised, fearful), 52 and 40 now; her liner on the moved lid stays (looked at)."""
    import dataclasses

    def counts(shot, emotion):
        inp = shot.inputs(emotion, 1.0)
        gated = EyeRenderer(shot.model, dataclasses.replace(EyeConfig(), old_lid_near=0.0)).render(inp)
        return (_lash_dark_in_white(EyeRenderer(shot.model).render(inp), inp, shot.model),
                _lash_dark_in_white(gated, inp, shot.model))

    now, before = np.sum([counts(still, emotion) for emotion in ("surprised", "fearful")], axis=0)
    print("people_0: lash-dark pixels in the new whites", now, "gated by the movement alone", before)
    assert now == 0 < before, (now, before)
    for emotion in ("surprised", "fearful"):
        now, before = counts(clip, emotion)
        print("WDA frame 0", emotion, now, before)
        assert now < 0.8 * before, (emotion, now, before)


def test_points_sample_alike_however_many():
    """OpenCV's remap takes maps under 32767 columns; an eye on a 4K plate covers more pixels than that (a
    surprised edit of WDA scaled to 3840x2160 crashed in the eyeball's iris lookup). The points go in rows: each
    point's value is the one a small map gives it."""
    import cv2

    from ned_fx.rendering.sampling import remap_points

    rng = np.random.default_rng(3)
    image = rng.random((40, 60, 3)).astype(np.float32)
    n = 70001
    mx = (rng.random(n) * 70 - 5).astype(np.float32)
    my = (rng.random(n) * 50 - 5).astype(np.float32)
    got = remap_points(image, mx, my)
    assert got.shape == (n, 3)
    want = np.concatenate([cv2.remap(image, mx[i:i + 1000].reshape(1, -1), my[i:i + 1000].reshape(1, -1),
                                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1, 3)
                           for i in range(0, n, 1000)])
    np.testing.assert_array_equal(got, want)
    assert remap_points(image[..., 0], mx[:5], my[:5]).shape == (5, 1)


def test_a_4k_plate_s_widened_eyes_render(tmp_path):
    """WDA's frames scaled up to 3840x2160 (a 1500-px face, as bench/memory.py makes them), surprised: the edit
    runs (it crashed in the eyeball's iris lookup) and the eyes widen with white, as at 512²."""
    import cv2

    from conftest import decode_rgb
    from ned_fx.pipeline import EditInstruction, edit_media

    rgb = decode_rgb("WDA_AlexandriaOcasioCortez_000.mp4")[0][:2]
    big_src = []
    for i, f in enumerate(rgb):
        s = 2160 / f.shape[0]
        big = cv2.resize(f, (int(round(f.shape[1] * s)), 2160), interpolation=cv2.INTER_CUBIC)
        pad = 3840 - big.shape[1]
        big = np.pad(big, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)), mode="edge")
        big_src.append(big.astype(np.float64))
        cv2.imwrite(str(tmp_path / f"in.{i:04d}.png"), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    analysis = tmp_path / "a.npz"
    edit_media(tmp_path / "in.####.png", tmp_path / "out.####.png", EditInstruction(emotion="surprised"),
               analysis=analysis)
    from ned_fx.pipeline import read_analysis

    shot = read_analysis(analysis)
    src, dst = shot.edited.source_landmarks[1], shot.edited.target_landmarks[1]
    out = cv2.cvtColor(cv2.imread(str(tmp_path / "out.0001.png")), cv2.COLOR_BGR2RGB).astype(np.float64)
    for contour in (T.RIGHT_EYE, T.LEFT_EYE):
        new = np.zeros(out.shape[:2], np.uint8)
        cv2.fillPoly(new, [np.round(dst[list(contour), :2]).astype(np.int32)], 1)
        old = np.zeros_like(new)
        cv2.fillPoly(old, [np.round(src[list(contour), :2]).astype(np.int32)], 1)
        uncovered = (new > 0) & (old == 0)
        assert uncovered.sum() > 2000, "the eye should widen"
        lum = out @ [0.2126, 0.7152, 0.0722]
        src_lum = big_src[1] @ [0.2126, 0.7152, 0.0722]
        sclera = np.percentile(src_lum[old > 0], 80)            # the source eye's white (its brighter fifth)
        # the floor for the new white (0.8 x the visible sclera's; measured 0.91 and 0.99)
        assert np.median(lum[uncovered]) >= 0.8 * sclera, (np.median(lum[uncovered]), sclera)


def test_the_lid_interior_by_erosion_is_the_distance_transform_s_exactly():
    """``farther_than`` (one erosion with the disk of offsets within r) is ``inner_distance(mask) > r`` (or
    ``>= r``) bit for bit, on blobs and noise of every size, at radii on and between the lattice's distances."""
    from ned_fx.rendering.eyes._geometry import farther_than, inner_distance

    rng = np.random.default_rng(7)
    for t in range(600):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        if t % 2:
            m = rng.random((h, w)) < rng.uniform(0.3, 1.0)
        else:
            yy, xx = np.mgrid[:h, :w]
            m = ((yy - rng.uniform(0, h)) / max(h / 3, 1)) ** 2 + ((xx - rng.uniform(0, w)) / max(w / 3, 1)) ** 2 < 1
        r = float(rng.choice([rng.uniform(0, 6), np.sqrt(rng.integers(0, 30)), float(rng.integers(0, 5)),
                              np.float32(np.sqrt(rng.integers(1, 30)))]))
        d = inner_distance(m)
        np.testing.assert_array_equal(farther_than(m, r), d > r)
        np.testing.assert_array_equal(farther_than(m, r, or_equal=True), d >= r)
    m = np.ones((5, 5), bool)
    assert farther_than(m, -1).all() and not farther_than(m, 100).any() and not farther_than(m, np.nan).any()


def test_the_old_lash_line_left_in_a_widened_eye_is_covered(still):
    """people_0's inner corners: the tracked upper lid runs inside her lash line and make-up, and where the lid
    rose the warp left that part behind as a dark notch in the new white. The render covers the pixels of the
    source's opening near its lid that are far darker than the eyeball there (``lash_depth``, ``old_lid``);
    without that rule (lash_depth 0) they stay dark."""
    import dataclasses

    inp = still.inputs("surprised", 1.0)
    h, w = inp.region.shape[:2]
    now = EyeRenderer(still.model).render(inp)
    before = EyeRenderer(still.model, dataclasses.replace(EyeConfig(), lash_depth=0.0)).render(inp)
    sclera = np.percentile(_lum(inp.region)[_mask(inp.src[list(EYES[0][0]), :2], h, w)], 80)
    covered = now.coverage - before.coverage > 0.2
    out_now, out_before = _lum(stack(inp.warped, [now])), _lum(stack(inp.warped, [before]))
    # the dark ones where the rendered eyeball is white (an old lash over the iris is covered with iris, as dark
    # as it was; a real sclera in the lid's shade, a little darker than the render, is covered too)
    dark = covered & (_lum(now.pixels) > 0.7 * sclera) & (out_before < 0.6 * sclera)
    print("old lash pixels:", int(dark.sum()), "of", int(covered.sum()), "covered; brightness",
          out_before[dark].mean().round(1), "->", out_now[dark].mean().round(1), "sclera", sclera.round(1))
    assert dark.sum() >= 3
    # covered by the eyeball: as bright as it is rendered there, which in the eye's corner is the sphere's falloff
    # (EyeConfig.corner_shading: ~0.72 of the white beside the iris, whose brightness ``sclera`` is)
    assert out_now[dark].mean() > 0.75 * sclera
    assert out_now[dark].mean() > 0.85 * _lum(now.pixels)[dark].mean()
    assert (out_now[covered] >= out_before[covered] - 1.0).all()       # only ever brighter: no darker than it was
    # more coverage (the lid's movement is smoothed over a few more pixels: a hair less elsewhere), and only
    # inside the target opening
    less = before.coverage - now.coverage
    assert less.max() < 0.2 and np.count_nonzero(less > 0.05) <= 0.02 * np.count_nonzero(now.coverage)
    inside = np.zeros((h, w), bool)
    for contour, _, _ in EYES:
        inside |= _mask(inp.dst[list(contour), :2], h, w)
    assert not (covered & ~inside).any()


def test_a_shot_s_sclera_is_whiter_beside_the_iris_and_pinker_toward_the_corners(still, clip):
    """The sclera's colour along the eye, from the shot's frames: beside the iris a real white is whiter (less red
    over blue) than toward the corners, where vessels and the caruncle redden it (WDA, both eyes). A still's few
    sclera pixels barely move it from one colour (``profile_prior``). The rendered new white follows: bluer over
    red above the iris than toward the corners."""
    tint = np.asarray(clip.model.sclera_tint)                        # 2xUxK (RGB)
    u = tint.shape[1]
    middle, ends = slice(u // 2 - 1, u // 2 + 1), [0, u - 1]
    for e in range(2):
        br = tint[e, :, 2] / tint[e, :, 0]
        print(f"eye {e}: blue/red along the eye", br.round(3))
        assert br[middle].mean() > 1.05 * br[ends].mean(), br
    assert np.abs(np.asarray(still.model.sclera_tint) - 1.0).max() < 0.05
    assert np.abs(np.asarray(clip.model.sclera_tint) - 1.0).max() > 0.04
    layer, inp, final, eyes = _measure(clip, "surprised", 1.0)
    from ned_fx.rendering.eyes._geometry import EyeFrame

    h, w = inp.region.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    for e, (contour, corners, iris) in enumerate(EYES):
        new = eyes[e][0] & (layer.coverage > 0.9)
        along = EyeFrame(inp.dst[:, :2], corners).u(np.stack([xs[new], ys[new]], 1))
        px = layer.pixels[new]
        ratio = lambda sel: px[sel, 2].mean() / px[sel, 0].mean()         # noqa: E731
        centre, side = np.abs(along) < 0.3, np.abs(along) > 0.55
        assert centre.sum() >= 5 and side.sum() >= 5, (centre.sum(), side.sum())
        print(f"eye {e}: rendered blue/red beside the iris {ratio(centre):.3f}, toward the corners {ratio(side):.3f}")
        assert ratio(centre) > ratio(side) + 0.02


@pytest.mark.parametrize("emotion", ["surprised", "fearful"])
def test_a_shaded_sclera_s_new_iris_is_round(emotion):
    """The issue's iris floor (an ellipse fitted to the limbus, axis ratio >= 0.9) on both of d19's widened eyes
    (a still, frontal): his left eye's white is shaded toward the nose as the real one is (its visible sclera
    90-97 beside the iris, 124-135 on the temple's side, the iris's rim ~75), the hardest limbus of the shared
    footage to see. The eval read it at 0.83 while it placed one luminance level for the whole eye, which ran the
    nasal side's iso-line out into the shaded white; halfway between iris and sclera beside it at each angle, the
    rendered circle reads round."""
    import believable_measures as bm

    _, out, _, d = _still_edit(footage("d19.jpg"), emotion, 1.0)
    rounds = [bm.iris_roundness(out, d, side) for side in ("right", "left")]
    assert min(rounds) >= 0.9, np.round(rounds, 3)


def test_a_lowered_lid_keeps_the_eye_s_own_white_under_it(clip):
    """WDA sad: her upper lids come down over the eyeball while her lower lids move a fraction of a pixel out, so
    the eye layer draws (a sliver at the bottom) and its lash-speck mending ran along the upper lid too: the
    eye's own white and catchlights right under the lowered lid read as specks and were filled with the lashes
    around them, a blocky black band over the iris (frame 20 at 6x, looked at). The mending follows the upper
    lid's rise only: where the lid came down the layer is what it is with the mending off."""
    from ned_fx.rendering.eyes._geometry import UPPER

    checked = 0
    for k in range(6):
        inp = clip.inputs("sad", 1.0, k)
        for e, (contour, corners, _) in enumerate(EYES):
            # the upper lid came down on every middle point (lower in the region than the source's: the head
            # hardly moves over these frames)
            s, d = inp.src[list(contour[:UPPER]), :2], inp.dst[list(contour[:UPPER]), :2]
            assert (d[1:-1, 1] > s[1:-1, 1]).all(), (k, e)
        layer = EyeRenderer(clip.model).render(inp)
        plain = EyeRenderer(clip.model, EyeConfig(lash_specks=0.0)).render(inp)
        if layer is None:
            assert plain is None
            continue
        checked += 1
        np.testing.assert_array_equal(layer.coverage, plain.coverage)
        np.testing.assert_array_equal(layer.pixels, plain.pixels)
    assert checked >= 1, "no frame drew an eye layer: the test measures nothing"


def test_a_still_that_shows_no_sclera_under_its_lids_takes_the_lid_shadow_prior(still, clip):
    """people_0's still shows no sclera near her upper lids, so the model measured nothing there and its widened
    whites were flat right up to the lid (0.96 of her brightest sclera in the band under it; her own eyes 0.70-0.76):
    a doll's eye. The model takes ``EyeConfig.lid_prior`` there: 0.8 of the brightness right under the lid, rising
    to all of it at ``shadow_reach``; a clip that measures its own keeps it (WDA's), and ``lid_prior=1`` is the
    flat profile of before. The edited still's white is shaded under the lid (``lid_shade`` < 0.95 on both eyes)."""
    import believable_measures as bm

    prof = np.asarray(still.model.lid_shading, np.float64)
    assert np.all(np.diff(prof, axis=1) > 0) and np.all(prof[:, 0] < 0.9) and np.all(prof[:, -1] < 1.0), prof
    flat = EyeModelBuilder(EyeConfig(lid_prior=1.0))
    for k, px in enumerate(still.pixels):
        flat.add(k, px, still.track.landmarks[k])
    np.testing.assert_array_equal(np.asarray(flat.finish().lid_shading), 1.0)
    measured = np.asarray(clip.model.lid_shading, np.float64)
    prior = 1.0 - 0.2 * (1.0 - (np.arange(measured.shape[1]) + 0.5) / measured.shape[1])
    assert np.abs(measured - prior[None]).max() > 0.05, measured          # its own, not the prior
    src, out, s, d = _still_edit(footage("people_0.png"), "surprised", 1.0)
    for side in ("right", "left"):
        shade = bm.lid_shade(out, d, side)
        print(side, "lid_shade", round(shade, 3))
        assert shade < 0.95, (side, shade)


@pytest.mark.parametrize("bad", [0.0, -0.2, 1.5, float("nan")])
def test_the_lid_prior_is_checked(bad):
    from ned_fx.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError):
        EyeConfig(lid_prior=bad)


@pytest.mark.parametrize("name", ["d19.jpg", "d8.jpg"])
def test_a_widened_eye_keeps_the_colour_of_its_iris(name, monkeypatch):
    """Grey-blue and blue irises stay that colour when the lids open: the eyeball's match to the real sclera on
    the blend seam (gain and tint) holds on the white only. Over the iris too, the pink of d19's small, skin-tinged
    whites turned his irises brown (blue over red of the iris's middle -0.10 and -0.11 against the source's,
    d8's -0.05 and -0.08; now d19 +0.01-0.02, d8 +0.04), looked at at 3-10x. And with the seam's match on the
    iris, this test fails."""
    import dataclasses

    import believable_measures as bm

    def blue_over_red(img, lm, side):
        c, r = bm.iris_circle(lm, side)
        yy, xx = np.mgrid[:img.shape[0], :img.shape[1]]
        px = img[np.hypot(xx + 0.5 - c[0], yy + 0.5 - c[1]) < 0.7 * r].astype(np.float64).mean(0)
        return px[2] / px[0]

    def shifts():
        src, out, s, d = _still_edit(footage(name), "surprised", 1.0)
        return [blue_over_red(out, d, side) - blue_over_red(src, s, side) for side in ("right", "left")]

    now = shifts()
    print(name, "blue/red of the iris, edit - source:", np.round(now, 3))
    assert max(abs(v) for v in now) <= 0.04, now
    plain = EyeRenderer.__init__

    def seam_on_iris(self, model=None, config=None):
        plain(self, model, config)
        self.config = dataclasses.replace(self.config, seam_iris=False)

    monkeypatch.setattr(EyeRenderer, "__init__", seam_on_iris)
    before = shifts()
    print(name, "with the seam's match on the iris:", np.round(before, 3))
    # the seam's match on the iris turns each iris redder by at least 0.05 (d19 0.09-0.1, d8 0.06-0.07)
    assert all(b < n - 0.05 for b, n in zip(before, now)), (before, now)


def test_seam_iris_is_checked():
    from ned_fx.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="seam_iris"):
        EyeConfig(seam_iris=1)


@pytest.fixture(scope="module")
def dim_catchlights(tracker):
    return Shot("WDA_AlexandriaOcasioCortez_000.mp4", "29-31", tracker)


def test_the_drawn_iris_keeps_the_source_s_catchlight_and_no_white_from_its_edge(dim_catchlights):
    """WDA's footage is dark: around frame 30 her catchlights are small spots a quarter of the way from her irises'
    near-black to her whites (60 against 5 and 150 of 255). The catchlight finder took only spots half way up to
    the white (with the whole clip's eye model her frame-30 catchlights were not found: surprise drew her irises
    as flat black discs, looked at 4x), and it took the white inside the tracked iris disc at its edge (under or
    beside the iris: small and bright against the iris) for a catchlight and pasted it onto the drawn iris's rim
    (d3 frame 40, 5x: a white crescent on her iris). Now a spot counts from ``EyeConfig.catch_level`` of the way
    to the white, and only whole inside ``catch_inside`` of the iris radius: the catchlight stays (the iris's
    core: its brightest spot 4-17x its median), the rim is iris (its 95th percentile 0.30-0.53 of the white, mean
    0.40; 0.53-0.98, mean 0.74, with the white pasted on)."""
    rims = []
    for k in range(len(dim_catchlights.frames)):
        inp = dim_catchlights.inputs("surprised", 1.0, k)
        lum = _lum(stack(inp.warped, [EyeRenderer(dim_catchlights.model).render(inp)]))
        h, w = lum.shape
        yy, xx = np.mgrid[0:h, 0:w] + 0.5
        src_lum = _lum(inp.region)
        for contour, corners, iris in EYES:
            c = inp.dst[iris[0], :2]
            r = float(np.linalg.norm(inp.dst[list(iris[1:]), :2] - c, axis=1).mean())
            d = np.hypot(xx - c[0], yy - c[1])
            sclera = np.percentile(src_lum[_mask(inp.src[list(contour), :2], h, w)], 90)
            core = d < 0.6 * r
            assert lum[core].max() > 3.0 * np.median(lum[core]), (k, lum[core].max(), np.median(lum[core]))
            rims.append(np.percentile(lum[(d > 0.5 * r) & (d < 0.9 * r)], 95) / sclera)
    assert np.mean(rims) < 0.55 and max(rims) < 0.65, rims


def test_a_still_s_white_falls_off_into_the_corners_as_real_whites_do(still, clip):
    """Where a still shows too little sclera to fit how its brightness falls along the eye (people_0), the eyeball
    takes the fall-off that clips measure: WDA's wide-open whites (fitted over its frames) are darker toward the
    corners than beside the iris, and the prior falls as far (``EyeConfig.corner_shading``; it was nearly flat, 0.91
    of the middle at the corners: the new whites of a widened eye looked like flat discs), at 1 where the visible
    sclera is measured, half way to the corner (``corner_reference``)."""
    from ned_fx.errors import InvalidParameterError

    prior = np.asarray(still.model.sclera_shading)              # 2xU
    fitted = np.asarray(clip.model.sclera_shading)
    u = prior.shape[1]
    ends, middle = [0, u - 1], slice(u // 2 - 1, u // 2 + 1)
    for e in range(2):
        fall = prior[e, ends].mean() / prior[e, middle].mean()
        real = fitted[e, ends].mean() / fitted[e, middle].mean()
        assert 0.6 < fall < 0.8 and abs(fall - real) < 0.1, (fall, real)
        half = np.interp(0.5, (np.arange(u) + 0.5) / u * 2.0 - 1.0, prior[e])
        assert abs(half - 1.0) < 0.02, half
    for bad in (-0.1, 1.0):
        with pytest.raises(InvalidParameterError, match="corner_reference"):
            EyeConfig(corner_reference=bad)
