"""Skin that follows the expression (ned_fx.rendering.skin): folds shaded over the warped skin of real footage.

Each emotion is planned on a real still and a real movie frame, warped by the geometry renderer, and the skin
layer is measured where the fold must appear (along the target's fold line, read from the target landmarks
independently of the sub-stage's own curves) and where nothing may change."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import footage

EMOTIONS = ("happy", "angry", "surprised", "neutral")


def _inputs_for(name: str, frames: str | None, emotions: tuple = EMOTIONS + ("happy@0",)):
    from ned_fx.appearance import white_of
    from ned_fx.compositing import extract_region
    from ned_fx.media import open_media, parse_frame_range
    from ned_fx.pipeline import EditInstruction, locate_face, plan_edit, track_media
    from ned_fx.rendering import GeometryRenderer, build_render_mesh
    from ned_fx.rendering.layers import RegionInputs
    from ned_fx.tracking import TrackerConfig

    path = footage(name)
    track = track_media(path, TrackerConfig(device="cpu"), frames=frames)
    with open_media(path, parse_frame_range(frames)) as src:
        frame = next(iter(src))
    mesh = build_render_mesh(track.mean_shape)
    renderer = GeometryRenderer()
    index = {int(n): t for t, n in enumerate(track.frame_numbers)}
    out = {}
    for emotion in emotions:
        emo, _, level = emotion.partition("@")
        edited = plan_edit(track, EditInstruction(emotion=emo, intensity=float(level or 1.0)))
        k = index[int(frame.number)]
        where = locate_face(track, edited, index, frame)
        if where.reason is not None:       # intensity 0: nothing moves; give the sub-stage the untouched face
            box = (0, 0, frame.width, frame.height)
            s = d = edited.source_landmarks[k]
        else:
            box, s, d = where.box, where.src, where.dst
        region = extract_region(frame, box)
        off = np.array([box[0], box[1], 0.0])
        warped = region if where.reason is not None else renderer.render(region, s - off, d - off, mesh)
        out[emotion] = (RegionInputs(region, np.asarray(warped, np.float32), s - off, d - off, None, k,
                                     white_of(frame.pixels.dtype)),
                        edited.au_names, edited.au_source[k], edited.au_target[k])
    return out


@pytest.fixture(scope="module")
def still():
    return _inputs_for("people_0.png", None)


@pytest.fixture(scope="module")
def movie():
    return _inputs_for("WDA_AlexandriaOcasioCortez_000.mp4", "1-1")


def _render(case, config=None):
    from ned_fx.rendering.layers import stack
    from ned_fx.rendering.skin import SkinRenderer

    inputs, names, a_src, a_dst = case
    layer = SkinRenderer(None, config).render(inputs, names, a_src, a_dst)
    return layer, (inputs.warped if layer is None else stack(inputs.warped, [layer]))


def _luma(px):
    return px @ np.array([0.2126, 0.7152, 0.0722], np.float32) if px.shape[2] == 3 else px[:, :, 0]


def _iod(lm):
    return float(np.linalg.norm(lm[33, :2] - lm[263, :2]))


def _along(img, a, b, n=40):
    """Bilinear samples of ``img`` (HxW) along the segment a -> b."""
    from scipy.ndimage import map_coordinates

    t = np.linspace(0, 1, n)[:, None]
    p = a[None, :2] * (1 - t) + b[None, :2] * t
    return map_coordinates(img, [p[:, 1], p[:, 0]], order=1)


def _across(img, a, b, half, n=40, m=9):
    """Along the segment a -> b (n samples), the darkest of ``m`` bilinear samples across it within ``half``
    pixels either side."""
    a, b = np.asarray(a[:2], np.float64), np.asarray(b[:2], np.float64)
    normal = np.array([-(b - a)[1], (b - a)[0]]) / max(np.linalg.norm(b - a), 1e-9)
    return np.min([_along(img, a + o * normal, b + o * normal, n) for o in np.linspace(-half, half, m)], axis=0)


def _log_change(case, out):
    before = _luma(case[0].warped)
    return np.log(np.maximum(_luma(out), 1e-6)) - np.log(np.maximum(before, 1e-6))


@pytest.mark.parametrize("clip", ["still", "movie"])
def test_happy_darkens_the_nasolabial_fold_and_leaves_the_rest(clip, request):
    case = request.getfixturevalue(clip)["happy"]
    inputs = case[0]
    layer, out = _render(case)
    assert layer is not None and layer.name == "skin"
    change = _log_change(case, out)
    d = inputs.dst
    iod = _iod(d)
    # the fold runs from beside the nose wing (129) down and out to beside the mouth (212), both sides: read it
    # there, its darkest value across that line within 0.04 IOD. A smile lifts 206 and 216 with the cheek (the fold
    # had followed them out level with the nose wing, a dark bar under the nose, before turning down: along this
    # line -0.02..-0.03); it leaves the nose wing downwards now (SkinConfig.nasolabial_slope): -0.05..-0.07
    folds = [_across(change, d[a], d[b], 0.04 * iod).mean() for a, b in ((129, 212), (358, 432))]
    assert max(folds) < -0.04, f"fold line darkened by only {folds} (log luminance)"
    # ... and a narrow crease: a bit further toward the mouth it is much weaker
    mid = [_across(change, d[a] + 0.35 * (d[c] - d[a]), d[b] + 0.35 * (d[c] - d[b]), 0.02 * iod).mean()
           for a, b, c in ((129, 212, 0), (358, 432, 0))]
    assert min(mid) > min(folds) / 2, f"the darkening is not a crease: {folds} on the line, {mid} beside it"
    # far from every fold: the chin, the forehead, the eyes are the warp's own pixels, bit for bit
    for p in (152, 151, 159, 386, 14):
        x, y = int(round(d[p, 0])), int(round(d[p, 1]))
        r = max(2, int(0.04 * iod))
        np.testing.assert_array_equal(out[y - r:y + r, x - r:x + r], inputs.warped[y - r:y + r, x - r:x + r])
    assert np.all(layer.coverage[:int(d[151, 1])] == 0), "a smile touched the forehead"


@pytest.mark.parametrize("clip", ["still", "movie"])
def test_anger_furrows_the_glabella(clip, request):
    case = request.getfixturevalue(clip)["angry"]
    layer, out = _render(case)
    assert layer is not None
    change = _log_change(case, out)
    d = case[0].dst
    # vertical furrows between the inner brow heads (55, 285) and the midline (8 .. 9)
    lines = [_along(change, 0.55 * d[8] + 0.45 * d[b], 0.5 * d[9] + 0.5 * d[t]).min() for b, t in ((55, 107), (285, 336))]
    assert max(lines) < -0.045, f"the brow furrows darken by only {lines}"
    # no smile fold comes with anger (AU12 is unchanged)
    folds = [_along(change, d[a], d[b]).mean() for a, b in ((206, 216), (426, 436))]
    assert min(folds) > -0.01, folds


@pytest.mark.parametrize("clip", ["still", "movie"])
def test_surprise_lines_the_forehead(clip, request):
    case = request.getfixturevalue(clip)["surprised"]
    layer, out = _render(case)
    assert layer is not None
    change = _log_change(case, out)
    d = case[0].dst
    # up the forehead's midline and halfway to the outer brow: dark lines alternating with lighter ridges
    for lo, hi in ((d[9], d[10]), (0.5 * (d[9] + d[105]), 0.5 * (d[10] + d[67]))):
        prof = _along(change, lo, hi, 120)
        minima = [i for i in range(1, len(prof) - 1) if prof[i] < prof[i - 1] and prof[i] <= prof[i + 1]
                  and prof[i] < -0.02]
        assert len(minima) >= 2, f"expected several forehead lines, got minima at {minima} in {prof.round(3)}"
        assert prof.max() > 0.005, "no lighter skin between the lines"
    # but no brow furrow: AU4 does not rise
    lines = [_along(change, 0.55 * d[8] + 0.45 * d[b], 0.5 * d[9] + 0.5 * d[t]).min() for b, t in ((55, 107), (285, 336))]
    assert min(lines) > -0.02, lines


@pytest.mark.parametrize("emotion", ["surprised", "happy", "angry"])
def test_no_shading_inside_the_mouth_and_eye_openings(still, emotion):
    """The openings are the mouth and eye sub-stages' content (teeth, eyeballs): the skin layer leaves them."""
    import cv2

    from ned_fx import topology as topo

    inputs, names, a_src, a_dst = still[emotion]
    layer, _ = _render(still[emotion])
    assert layer is not None
    for contour in (topo.LIPS_INNER, topo.RIGHT_EYE, topo.LEFT_EYE):
        mask = np.zeros(inputs.size, np.uint8)
        cv2.fillPoly(mask, [np.round(inputs.dst[list(contour), :2]).astype(np.int32)], 1)
        mask = cv2.erode(mask, np.ones((3, 3), np.uint8))     # pixels well inside the opening
        if mask.any():
            assert not layer.coverage[mask.astype(bool)].any(), f"{emotion}: shading inside {contour[:3]}..."


def test_no_au_change_gives_no_layer(still, movie):
    from ned_fx.rendering.skin import SkinRenderer

    for case in (still["happy@0"], movie["happy@0"], still["neutral"]):
        inputs, names, a_src, a_dst = case
        if case is not still["neutral"]:
            np.testing.assert_array_equal(a_src, a_dst)
        if np.allclose(a_src, a_dst, atol=0.02, equal_nan=True):
            assert SkinRenderer().render(inputs, names, a_src, a_dst) is None
    inputs, names, a_src, _ = still["happy"]
    assert SkinRenderer().render(inputs, names, a_src, a_src.copy()) is None
    # a zero-strength config switches the sub-stage off
    from ned_fx.rendering.skin import SkinConfig

    assert _render(still["happy"], SkinConfig(strength=0.0))[0] is None


def test_occluded_skin_gets_no_folds(still):
    from dataclasses import replace

    inputs, names, a_src, a_dst = still["happy"]
    valid = np.ones(inputs.size, np.float32)
    valid[:, : inputs.size[1] // 2] = 0.0           # the image-left half is behind an occluder
    layer, out = _render((replace(inputs, valid=valid), names, a_src, a_dst))
    assert layer is not None
    np.testing.assert_array_equal(out[:, : inputs.size[1] // 2], inputs.warped[:, : inputs.size[1] // 2])
    assert layer.coverage[:, inputs.size[1] // 2:].any()
    hidden = replace(inputs, valid=np.zeros(inputs.size, np.float32))
    assert _render((hidden, names, a_src, a_dst))[0] is None


def test_float_8bit_and_16bit_plates_change_alike(movie):
    from dataclasses import replace

    inputs, names, a_src, a_dst = movie["happy"]
    _, out8 = _render(movie["happy"])
    ratio8 = out8 / np.maximum(inputs.warped, 1e-6)
    for white in (1.0, 65535.0):
        s = np.float32(white / 255.0)
        scaled = replace(inputs, region=inputs.region * s, warped=inputs.warped * s, white=white)
        _, out = _render((scaled, names, a_src, a_dst))
        ratio = out / np.maximum(scaled.warped, 1e-6 * s)
        lit = (inputs.warped > 2) & (out8 < 250)     # where the 8-bit plate is neither black nor clipped
        np.testing.assert_allclose(ratio[lit], ratio8[lit], rtol=1e-4, atol=1e-4)
    # the shading is multiplicative: one luminance ratio per pixel, the same hue shift on every plate
    assert np.ptp(np.log(ratio8[lit].clip(1e-3))) > 0.05


def test_a_neutralised_smile_only_softens(movie):
    """A negative change (the source's smile taken away) lifts the existing fold a little, never draws one."""
    inputs, names, a_src, a_dst = movie["happy"]
    k12, k6 = names.index("AU12"), names.index("AU6")
    smiling, neutral = a_dst.copy(), a_dst.copy()
    neutral[[k12, k6]] = 0.0
    smiling[[k12, k6]] = [1.0, 0.8]
    from ned_fx.rendering.skin import SkinRenderer

    logr = SkinRenderer().log_shading(inputs, names, smiling, neutral)
    if logr is not None:
        assert logr.min() >= 0.0, "softening darkened something"
        assert logr.max() <= 0.25, f"softening lifted by {logr.max()}"


def test_config_is_validated():
    from ned_fx.errors import InvalidParameterError
    from ned_fx.rendering.skin import SkinConfig

    for bad in ({"strength": -1}, {"nasolabial_width": 0}, {"forehead_lines": 9}, {"soften": 2.0},
                {"drives": (("elbow", (("AU12", 1.0),)),)}, {"warmth": (1.0, 1.0)}):
        with pytest.raises(InvalidParameterError):
            SkinConfig(**bad)


# ---------------------------------------------------------------------------------------------------------------
# The learned per-actor model

@pytest.fixture(scope="module")
def d3_frames():
    """40 frames of d3 (plate values and tracked landmarks) and their fitted AU activations."""
    from ned_fx.appearance import _face_crop
    from ned_fx.media import open_media, parse_frame_range
    from ned_fx.pipeline import EditInstruction, plan_edit, track_media
    from ned_fx.tracking import TrackerConfig

    path, frames = footage("d3.mp4"), "1-118x3"
    track = track_media(path, TrackerConfig(device="cpu"), frames=frames)
    edited = plan_edit(track, EditInstruction(emotion="happy"))
    index = {int(n): t for t, n in enumerate(track.frame_numbers)}
    out = []
    with open_media(path, parse_frame_range(frames)) as src:
        for frame in src:
            k = index[int(frame.number)]
            if edited.found[k]:
                out.append((k, *_face_crop(frame, edited.source_landmarks[k] + frame.display_to_data)))
    return out, edited


def _injected(frames, edited, au="AU12", depth=0.2, seed=3):
    """The real frames with a made-up AU whose only effect is a darker cheek patch (around landmark 205): what a
    learned model must find, and only there."""
    import cv2

    rng = np.random.default_rng(seed)
    k = edited.au_names.index(au)
    acts = np.array(edited.au_source, np.float64)
    acts[:, k] = rng.uniform(0.0, 1.0, len(acts))
    shaded = []
    for idx, px, lm in frames:
        iod = _iod(lm)
        mask = np.zeros(px.shape[:2], np.float32)
        cv2.circle(mask, (int(lm[205, 0]), int(lm[205, 1])), int(0.1 * iod), 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 0.03 * iod)
        shaded.append((idx, px * np.exp(-depth * acts[idx, k] * mask)[:, :, None], lm))
    return shaded, acts


def test_the_learned_model_finds_the_actors_own_shading(d3_frames):
    from ned_fx.rendering.skin import SkinModel, SkinModelBuilder

    frames, edited = d3_frames
    shaded, acts = _injected(frames, edited)
    b = SkinModelBuilder(acts, edited.au_names)
    for idx, px, lm in shaded:
        b.add(idx, px, lm)
        b.add(-1, px, lm)                       # extra footage without activations: skipped
    model = b.finish()
    assert model is not None and "AU12" in list(model.au_names), getattr(model, "au_names", None)
    k = list(model.au_names).index("AU12")
    lm = frames[0][2]
    pts = np.einsum("sk,skd->sd", model.sample_weight, lm[model.sample_index][:, :, :2])
    d = np.linalg.norm(pts - lm[205, :2], axis=1) / _iod(lm)
    near, far = model.coef[k][d < 0.05], model.coef[k][d > 0.3]
    assert near.mean() < -0.1, f"the injected cheek darkening was learned as {near.mean():.3f} per unit"
    assert np.abs(far).mean() < 0.01, f"AU12 learned {np.abs(far).mean():.3f} away from the cheek"
    # stored as plain arrays and read back alike
    again = SkinModel.from_arrays(model.to_arrays())
    np.testing.assert_array_equal(again.coef, model.coef)
    assert list(again.au_names) == list(model.au_names)


def test_the_renderer_shades_covered_aus_with_the_model(d3_frames, movie):
    from ned_fx.rendering.layers import RegionInputs
    from ned_fx.rendering.skin import SkinModelBuilder, SkinRenderer

    frames, edited = d3_frames
    shaded, acts = _injected(frames, edited)
    b = SkinModelBuilder(acts, edited.au_names)
    for idx, px, lm in shaded:
        b.add(idx, px, lm)
    model = b.finish()
    idx, px, lm = frames[0]
    names = edited.au_names
    a_src = np.zeros(len(names))
    a_dst = a_src.copy()
    a_dst[names.index("AU12")] = 1.0
    x0, y0 = np.floor(lm[:468, :2].min(axis=0) - 20).astype(int).clip(0)
    region = np.ascontiguousarray(px[y0:, x0:])
    off = np.array([x0, y0, 0.0])
    inputs = RegionInputs(region, region, lm - off, lm - off, None, 0, 255.0)
    learned = SkinRenderer(model).log_shading(inputs, names, a_src, a_dst)
    c = (lm[205, :2] - off[:2]).round().astype(int)
    assert learned[c[1], c[0]] < -0.06, learned[c[1], c[0]]        # 0.2 injected; the model is broad
    # the in-range part is the model's: the procedural smile fold is not drawn on top of it
    plain = SkinRenderer().log_shading(inputs, names, a_src, a_dst)
    fold = (0.5 * (lm[206, :2] + lm[216, :2]) - off[:2]).round().astype(int)
    assert plain[fold[1], fold[0]] < learned[fold[1], fold[0]] - 0.02
    # too few frames: no model
    few = SkinModelBuilder(acts, names)
    for idx, px, lm in shaded[:5]:
        few.add(idx, px, lm)
    assert few.finish() is None


def _plain_blurred(self, strokes, sigma, margin):
    """The fold map's reference blur: every stroke drawn on one canvas reaching ``margin`` past their box and the
    whole canvas blurred by cv2.GaussianBlur (what the renderer's cropped, split blurs must equal bit for bit)."""
    import cv2

    from ned_fx.rendering.skin.procedural import _box

    h, w = self.shape
    box = _box([p for p, _ in strokes], margin, h, w)
    if box is None:
        return
    x0, y0, x1, y1 = box
    ext0 = int(np.ceil(margin))
    canvas = np.zeros((y1 - y0 + 2 * ext0, x1 - x0 + 2 * ext0), np.float32)
    norm = np.sqrt(2 * np.pi) * np.sqrt(sigma ** 2 + 1.0 / 6.0)
    for pts, vals in strokes:
        values = vals * norm
        d = np.diff(pts, axis=0)
        v = 0.5 * (values[:-1] + values[1:]) * np.abs(d).max(axis=1) / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
        q = np.round((pts - [x0 - ext0, y0 - ext0]) * 16).astype(np.int64).tolist()
        for i, val in enumerate(v.tolist()):
            if val != 0.0:
                cv2.line(canvas, q[i], q[i + 1], val, 1, cv2.LINE_AA, 4)
    k = int(2 * np.ceil(3 * sigma) + 1)
    blurred = cv2.GaussianBlur(canvas, (k, k), sigma, borderType=cv2.BORDER_CONSTANT)
    ox, oy = self.origin
    vh, vw = self.values.shape
    bx0, by0, bx1, by1 = max(x0 - ox, 0), max(y0 - oy, 0), min(x1 - ox, vw), min(y1 - oy, vh)
    self.values[by0:by1, bx0:bx1] += blurred[by0 + oy - y0 + ext0:by1 + oy - y0 + ext0,
                                             bx0 + ox - x0 + ext0:bx1 + ox - x0 + ext0]
    self.touch((bx0 + ox, by0 + oy, bx1 + ox, by1 + oy))


@pytest.mark.parametrize("emotion", ["happy", "angry", "surprised"])
def test_cropped_fold_blurs_are_the_whole_canvas_blur_bit_for_bit(movie, emotion, monkeypatch):
    """The renderer blurs each fold canvas only where a blur can reach (strokes far apart on crops of their own,
    columns keeping OpenCV's vector/scalar split, the row pass only on rows with strokes): on a real frame's folds
    the shading is bit for bit the plain whole-canvas GaussianBlur's, creases and softening alike."""
    from ned_fx.rendering.skin import SkinRenderer
    from ned_fx.rendering.skin.procedural import ShadingMap

    inputs, names, a_src, a_dst = movie[emotion]
    fast = SkinRenderer().log_shading(inputs, names, a_src, a_dst)
    soft = SkinRenderer().log_shading(inputs, names, a_dst, a_src)        # the reverse change: softening
    monkeypatch.setattr(ShadingMap, "_blurred", _plain_blurred)
    plain = SkinRenderer().log_shading(inputs, names, a_src, a_dst)
    plain_soft = SkinRenderer().log_shading(inputs, names, a_dst, a_src)
    assert fast is not None and soft is not None
    assert np.abs(fast).max() > 0.02 and np.abs(soft).max() > 0.005
    np.testing.assert_array_equal(fast, plain)
    np.testing.assert_array_equal(soft, plain_soft)


def _glabella_depth(rgb, lm) -> float:
    from ned_fx.rendering.skin import furrow_depth

    return furrow_depth(np.asarray(rgb, np.float32)[..., :3] @ np.float32([0.2126, 0.7152, 0.0722]), lm)


def test_the_brow_furrow_is_measured_where_the_mesh_misses_it():
    """d3.mp4 frowns over frames 110-160 (two vertical furrows between brows drawn down and together) while the
    mesh's brow lowerer fits ~0: the picture's furrow depth reads it (0.11-0.16 log luminance) against her relaxed
    brow (< 0.02) and a talker's (WDA, d12 behind glasses: < 0.01); over a shot, only what lies beyond the shot's
    relaxed brow counts, and a still gets none."""
    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import track_media
    from ned_fx.rendering.skin import furrow_activation

    track = track_media(footage("d3.mp4"), frames="100-160")
    with open_media(footage("d3.mp4"), "100-160") as frames:
        depth = np.array([_glabella_depth(to_display_rgb8(f), lm) for f, lm in zip(frames, track.landmarks)])
    assert depth[:6].max() < 0.03 and np.median(depth[20:50]) > 0.09, depth.round(3)
    act = furrow_activation(depth)
    assert act[:6].max() == 0.0 and np.median(act[20:50]) > 0.6, act.round(2)
    assert furrow_activation(depth[:5]) is None                                   # too few frames: none
    assert np.array_equal(furrow_activation(depth + 0.05), act)                   # a wrinkle always there: no frown
    for name in ("WDA_AlexandriaOcasioCortez_000.mp4", "d12.mp4"):
        track = track_media(footage(name), frames="0-30x10")
        with open_media(footage(name), "0-30x10") as frames:
            got = [_glabella_depth(to_display_rgb8(f), lm) for f, lm in zip(frames, track.landmarks)]
        assert max(got) < 0.01, (name, got)


def test_an_edit_lifts_a_frown_the_mesh_did_not_see(tmp_path):
    """Neutral on d3's frown (frames 100-160): the skin's folds start from the furrow the picture shows
    (``ShotModels.furrow``), so neutral flattens most of it (``SkinConfig.relax``: the glabella's vertical lines
    flattened in proportion to the drive); from the mesh's AU4 of ~0.2 alone it flattens little. Intensity 0
    changes nothing (the furrow is added to source and target alike)."""
    from dataclasses import replace

    from ned_fx.appearance import FaceContent
    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import EditInstruction, ShotRenderer, edit_media, lift_hidden_frown, read_analysis

    edit_media(footage("d3.mp4"), tmp_path / "o.####.png", EditInstruction(emotion="neutral", intensity=1.0),
               frames="100-160", analysis=tmp_path / "a.npz", analysis_only=True)
    shot = read_analysis(tmp_path / "a.npz")
    furrow = shot.models.furrow
    assert furrow is not None and furrow.shape == (61,) and np.median(furrow[20:50]) > 0.6, furrow
    with open_media(footage("d3.mp4"), "135-135") as frames:
        frame = next(iter(frames))
    lm = shot.edited.target_landmarks[35]
    depth = [_glabella_depth(to_display_rgb8(ShotRenderer(shot.track, shot.edited, models=m).render(frame)[0]), lm)
             for m in (replace(shot.models, furrow=None), shot.models)]
    source = _glabella_depth(to_display_rgb8(frame), shot.edited.source_landmarks[35])
    print("furrow depth at 135: source, neutral without / with the picture's furrow:", source, depth)
    # measured 0.94 and 0.55 of it (0.98 and 0.87 when the glabella creases were softened as the other folds are)
    assert depth[0] > 0.9 * source and depth[1] < 0.7 * source, (source, depth)
    # intensity 0: the skin's drive of AU4 is the edit's exactly
    still = replace(shot.edited, intensity=np.zeros_like(shot.edited.intensity),
                    au_target=shot.edited.au_source.copy())
    names, src, dst = FaceContent(shot.models).skin_aus(still, 35)
    assert src[names.index("AU4")] > shot.edited.au_source[35, names.index("AU4")] + 0.5
    assert np.array_equal(dst - src, np.zeros_like(src))
    assert lift_hidden_frown(still, shot.models.furrow, 0.35) is still         # nor the brows' geometry


def test_a_frown_taken_away_flattens_its_furrows_not_the_brows():
    """The glabella relax on d3's frown (frame 135: two vertical furrows between brows drawn down), upright and
    with the head rolled 25 degrees: a drive of -1 flattens most of the furrows' depth (the band-pass across the
    face, per channel) while the brows (their outlines, inside) and the skin outside the glabella keep their
    pixels; a drive of 0, a small one (a talker's neutralised brow, under ``relax_from``) or a frown added adds
    nothing."""
    import cv2

    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import track_media
    from ned_fx.rendering.skin import SkinConfig, furrow_depth
    from ned_fx.rendering.skin.procedural import _BROW_OUTLINES, ShadingMap, add_glabella_relax, face_frame

    track = track_media(footage("d3.mp4"), frames="135-135")
    with open_media(footage("d3.mp4"), "135-135") as frames:
        rgb = to_display_rgb8(next(iter(frames))).astype(np.float32)
    luma = np.float32([0.2126, 0.7152, 0.0722])
    for roll in (0.0, 25.0):
        h, w = rgb.shape[:2]
        turn = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), roll, 1.0)
        img = cv2.warpAffine(rgb, turn, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        lm = np.array(track.landmarks[0], np.float64)
        lm[:, :2] = lm[:, :2] @ turn[:, :2].T + turn[:, 2]
        frame = face_frame(lm)
        config = SkinConfig()
        for small in (0.0, -0.1, 0.2):      # no frown taken away (a talker's neutralised brow: below relax_from)
            none = ShadingMap((h, w))
            add_glabella_relax(none, lambda b: img[b[1]:b[3], b[0]:b[2]], lm, frame, small, config)
            assert none.box is None and none.colour is None
        shading = ShadingMap((h, w))
        add_glabella_relax(shading, lambda b: img[b[1]:b[3], b[0]:b[2]], lm, frame, -1.0, config)
        out = img * np.exp(shading.colour)
        before, after = furrow_depth(img @ luma, lm), furrow_depth(out @ luma, lm)
        print(f"roll {roll}: furrow depth {before:.3f} -> {after:.3f}")
        assert before > 0.09 and after < 0.5 * before, (roll, before, after)
        brows = np.zeros((h, w), np.uint8)
        for outline in _BROW_OUTLINES:
            cv2.fillPoly(brows, [np.round(lm[list(outline), :2]).astype(np.int32)], 1)
        brows = cv2.erode(brows, np.ones((3, 3), np.uint8)).astype(bool)
        change = np.abs(out - img).max(axis=2)
        print(f"brows: max {change[brows].max():.2f}, mean {change[brows].mean():.3f} levels")
        assert change[brows].max() < 4.0 and change[brows].mean() < 0.2, roll        # 8-bit levels
        x0, y0, x1, y1 = shading.box
        outside = np.ones((h, w), bool)
        outside[y0:y1, x0:x1] = False
        assert not change[outside].any() and (y1 - y0) * (x1 - x0) < 0.5 * frame.iod ** 2, (roll, shading.box)


def test_the_glabella_relax_reads_the_skin_not_an_occluder_over_it():
    """A dark strand of hair falling over d3's glabella (frame 135, an occluder the matte keeps: ``valid`` 0 there):
    the relax's low-pass reads the skin only, so the skin beside the strand changes as it does without the strand
    (her ridges between the furrows darken) and is not darkened further as if it were a ridge beside a fold (it was,
    by ~12 levels more, with the strand read as a furrow's dark)."""
    import cv2

    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import track_media
    from ned_fx.rendering.skin import SkinConfig
    from ned_fx.rendering.skin.procedural import ShadingMap, add_glabella_relax, face_frame

    track = track_media(footage("d3.mp4"), frames="135-135")
    with open_media(footage("d3.mp4"), "135-135") as frames:
        img = to_display_rgb8(next(iter(frames))).astype(np.float32)
    lm = np.asarray(track.landmarks[0], np.float64)
    frame = face_frame(lm)
    h, w = img.shape[:2]
    x = int(round(lm[9, 0]))                          # the glabella's middle, a strand 5 px wide down to the nose
    y0, y1 = int(round(lm[9, 1] - 0.3 * frame.iod)), int(round(lm[168, 1]))
    strand = np.zeros((h, w), bool)
    strand[y0:y1, x - 2:x + 3] = True
    hair = img.copy()
    hair[strand] = 25.0
    valid = np.where(cv2.dilate(strand.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0, 0.0, 1.0).astype(np.float32)
    beside = np.zeros((h, w), bool)
    beside[y0 + 5:y1 - 5, x - 12:x - 4] = True
    beside[y0 + 5:y1 - 5, x + 5:x + 13] = True
    got = []
    for pic, seen in ((img, None), (hair, None), (hair, valid)):
        shading = ShadingMap((h, w))
        add_glabella_relax(shading, lambda b: pic[b[1]:b[3], b[0]:b[2]], lm, frame, -1.0, SkinConfig(), seen)
        out = pic * np.exp(shading.colour)
        got.append(float((out - pic).mean(axis=2)[beside].mean()))
    print("skin beside the strand, mean change (levels): no strand / the strand read / not read:", got)
    assert got[1] < got[0] - 5.0 and abs(got[2] - got[0]) < 1.5, got


def test_a_pout_taken_away_takes_its_chin_and_folds_with_it(tmp_path):
    """d8.jpg's pout (lips pushed up by the chin raiser, corners pulled down: a dimpled chin and deep marionette
    folds) under neutral and happy: the warp moves his lips and corners, and the chin relax (``SkinConfig.relax``,
    the chin drive: AU17 and AU15 taken away) flattens the folds and the dimpling it carried along; looked at, his
    neutral reads neutral and his smile no longer as a grimace. Measured against the same render without it
    (``relax=0``): the chin's fold energy (the band-pass's spread over the chin) falls by more than 40 %, the
    marionette lines' depth by more than 15 %, and nothing outside the face oval changes by more than a level."""
    import cv2

    from ned_fx import topology as T
    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import EditInstruction, ShotRenderer, edit_media, read_analysis
    from ned_fx.rendering.skin import SkinConfig, SkinRenderer, marionette_depth
    from ned_fx.rendering.skin.procedural import _CHIN_OUTLINE

    path = footage("d8.jpg")
    with open_media(path) as src:
        frame = next(iter(src))

    def chin_folds(rgb, lm) -> float:
        luma = np.log(np.maximum(np.asarray(rgb, np.float32)[..., :3] @ np.float32([0.2126, 0.7152, 0.0722]), 1.0))
        iod = float(np.linalg.norm(lm[33, :2] - lm[263, :2]))
        band = cv2.GaussianBlur(luma, (0, 0), 0.05 * iod) - cv2.GaussianBlur(luma, (0, 0), 0.007 * iod)
        mask = np.zeros(luma.shape, np.uint8)
        cv2.fillPoly(mask, [np.round(lm[list(_CHIN_OUTLINE), :2]).astype(np.int32)], 1)
        return float(band[mask.astype(bool)].std())

    for emotion in ("neutral", "happy"):
        edit_media(path, tmp_path / f"{emotion}.png", EditInstruction(emotion=emotion, intensity=1.0),
                   analysis=tmp_path / f"{emotion}.npz", analysis_only=True)
        shot = read_analysis(tmp_path / f"{emotion}.npz")
        renders = []
        for relax in (0.0, 1.0):
            r = ShotRenderer(shot.track, shot.edited, models=shot.models)
            r.content.skin = SkinRenderer(r.content.skin.model, SkinConfig(relax=relax))
            renders.append(to_display_rgb8(r.render(frame)[0]).astype(np.int16))
        lm = shot.edited.target_landmarks[0]
        depth = [marionette_depth(p, lm) for p in renders]
        folds = [chin_folds(p, lm) for p in renders]
        print(f"d8 {emotion}: marionette depth {depth}, chin fold energy {folds}")
        # measured: neutral 0.051 -> 0.042 and 0.112 -> 0.045 (the lines' course reaches past the chin's outline)
        assert depth[1] < 0.85 * depth[0] and folds[1] < 0.6 * folds[0], (emotion, depth, folds)
        oval = np.zeros(renders[0].shape[:2], np.uint8)
        cv2.fillPoly(oval, [np.round(lm[list(T.FACE_OVAL), :2]).astype(np.int32)], 1)
        oval = cv2.dilate(oval, np.ones((5, 5), np.uint8)).astype(bool)
        change = np.abs(renders[0] - renders[1]).max(axis=2)          # (the compositor's blend spreads a level)
        assert change[~oval].max() <= 1 and change[oval].max() > 20, (change[~oval].max(), change[oval].max())


def _brow_edge(rgb, x: float, y: float, half: int = 20) -> float:
    """The row (display pixels) where a 5-pixel column at ``x`` first falls from the forehead's brightness (the
    top of a window of rows ``y`` +- ``half``) half way to the brow's darkness: the brow's upper edge."""
    lum = np.asarray(rgb, np.float32)[..., :3] @ np.float32([0.2126, 0.7152, 0.0722])
    ix, iy = int(round(x)), int(round(y))
    col = lum[iy - half:iy + half + 1, ix - 2:ix + 3].mean(axis=1)
    mid = 0.5 * (col[:4].mean() + col.min())
    j = int(np.argmax(col < mid))
    return float(iy - half + j - 1 + (col[j - 1] - mid) / (col[j - 1] - col[j]))


def test_neutral_raises_and_parts_brows_the_mesh_kept_down(tmp_path):
    """The mesh keeps d3's brows 0.02 IOD under their rest while she frowns hard (frames 110-160): the brows
    follow ``RendererConfig.frown_lift`` of the furrow the picture shows (``lift_hidden_frown``) as the skin's
    folds do: neutral raises her inner brows ~4 px and parts them, in the plan and in the picture; frames without
    a frown, ``frown_lift`` 0 and intensity 0 keep the plan's targets."""
    from dataclasses import replace

    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import EditInstruction, ShotRenderer, edit_media, lift_hidden_frown, read_analysis
    from ned_fx.rendering import RendererConfig

    edit_media(footage("d3.mp4"), tmp_path / "o.####.png", EditInstruction(emotion="neutral", intensity=1.0),
               frames="100-160", analysis=tmp_path / "a.npz", analysis_only=True)
    shot = read_analysis(tmp_path / "a.npz")
    lifted = ShotRenderer(shot.track, shot.edited, models=shot.models)
    kept = ShotRenderer(shot.track, shot.edited, models=shot.models, renderer_config=RendererConfig(frown_lift=0))
    assert lift_hidden_frown(shot.edited, shot.models.furrow, 0.0) is shot.edited
    moved = lifted.edited.target_landmarks - kept.edited.target_landmarks
    quiet = np.flatnonzero(shot.models.furrow == 0)
    assert quiet.size >= 3 and np.abs(moved[quiet]).max() == 0.0                 # no frown there: the plan's
    assert (moved[35, [55, 285], 1] < -2.5).all(), moved[35, [55, 285]]            # up (~4 px) ...
    assert moved[35, 55, 0] < -1.0 and moved[35, 285, 0] > 1.0, moved[35, [55, 285]]   # ... and apart
    assert np.abs(moved[35, 152]).max() < 0.5                                      # the chin stays
    with open_media(footage("d3.mp4"), "135-135") as frames:
        frame = next(iter(frames))
    src = shot.edited.source_landmarks[35]
    rows = [[_brow_edge(to_display_rgb8(r.render(frame)[0]), *src[i, :2]) for i in (55, 285, 65, 295)]
            for r in (kept, lifted)]
    print("inner brows' upper edges at 135 without / with the lift:", rows)
    up = np.subtract(rows[1], rows[0])                  # the brows' hair moved up: heads ~1.1-1.7 px, middles ~3.6
    assert (up[:2] < -0.8).all() and (up[2:] < -2.5).all(), rows


def test_the_edit_shades_with_the_actor_s_learned_skin_and_never_the_lids():
    """ned-fx edit learns the shot's skin model (``ShotModels.skin``, in the analysis file) and the skin layer
    shades the AUs it covers as the actor's own frames show them: d3 sneers over her first 60 frames (the nose
    wrinkle AU9, the raised upper lip AU10) and sad takes that shading away with the sneer. The model learns
    nothing over the eyes' lid band (the lids and the gaze, not skin: on WDA, a first version darkened her lids
    by up to 108 levels under sad) and is not carried into it."""
    from dataclasses import replace

    import cv2

    from ned_fx import topology as T
    from ned_fx.appearance import ShotModels, build_shot_models
    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import EditInstruction, ShotRenderer, plan_edit, track_media

    for name, emotion, k, learned in (("d3.mp4", "sad", 20, "AU9"), ("WDA_AlexandriaOcasioCortez_000.mp4", "sad",
                                                                       20, None)):
        track = track_media(footage(name), frames="0-59")
        edited = plan_edit(track, EditInstruction(emotion=emotion, intensity=1.0))
        models = build_shot_models(footage(name), track, edited, "0-59")
        assert models.skin is not None, name
        again = ShotModels.from_arrays(models.to_arrays())
        np.testing.assert_array_equal(again.skin.coef, models.skin.coef)
        if learned:
            assert learned in list(models.skin.au_names), list(models.skin.au_names)
        with open_media(footage(name), f"{k}-{k}") as frames:
            frame = next(iter(frames))
        a, b = (to_display_rgb8(ShotRenderer(track, edited, models=m).render(frame)[0]).astype(float)
                for m in (models, replace(models, skin=None)))
        diff = np.abs(a - b).max(axis=2)
        lm = edited.source_landmarks[k]
        lids = np.zeros(diff.shape, np.uint8)
        for eye, brow in ((T.RIGHT_EYE, T.RIGHT_BROW), (T.LEFT_EYE, T.LEFT_BROW)):
            hull = cv2.convexHull(lm[list(eye) + list(brow), :2].astype(np.float32)).astype(np.int32)
            cv2.fillConvexPoly(lids, hull, 1)
        lids = cv2.erode(lids, np.ones((5, 5), np.uint8)) > 0
        print(name, "learned", list(models.skin.au_names), "changes: face max", diff.max(), "lid band max",
              diff[lids].max(), "mean", diff[~lids].mean())
        assert diff[lids].max() <= 12, (name, diff[lids].max())
        if learned:
            assert (diff > 3).sum() > 500, (name, (diff > 3).sum())      # the sneer's shading goes


def test_a_furrow_of_another_shot_is_refused():
    """The brows' lift reads the shot models' furrow frame by frame: models of another shot (another length) are a
    clear error, as the shut-eye weights are, never a silent misalignment."""
    from types import SimpleNamespace

    from ned_fx.errors import InvalidParameterError
    from ned_fx.pipeline import lift_hidden_frown

    edited = SimpleNamespace(au_names=("AU4",), found=np.ones(5, bool))
    with pytest.raises(InvalidParameterError, match="another shot"):
        lift_hidden_frown(edited, np.zeros(4), 0.35)
    assert lift_hidden_frown(edited, np.zeros(5), 0.0) is edited


def test_the_folds_shade_the_brows_strip_not_the_warp_beneath_it():
    """Raised brows get a strip layer (the brow's fringe rigid, the lid skin drawn out), and the same edit's
    forehead lines and furrows a fold layer (``picture x ratio``). The folds shade the picture with the strip in
    it: taken from the plain warp, they brought the warp's drawn-out brow back wherever a fold reached, cut off
    hard at the fold's edge (d19's sad brows: stair-stepped lower edges, looked at). Where both cover, the edit
    is the strip's picture times a fold's ratio (within a few percent), not the warp's. Surprise: since the lid
    skin is held above the lashes (ManipulatorConfig.lid_fold_kept) sad's strip differs from the warp under a
    fold on 11 of d19's pixels, surprise's raised brows on 37."""
    from ned_fx.appearance import ContentConfig, FaceContent
    from ned_fx.rendering.brows import BrowRenderer
    from ned_fx.rendering.layers import stack

    emotion = "surprised"
    inputs, names, a_src, a_dst = _inputs_for("d19.jpg", None, (emotion,))[emotion]
    content = FaceContent(None, ContentConfig(mouth=False, eyes=False, occluders=False))
    out = content.layers(inputs, (names, a_src, a_dst))
    brows = BrowRenderer().render(inputs)
    folds = _folds_over_strip(inputs, names, a_src, a_dst)
    assert brows is not None and folds is not None
    under = stack(inputs.warped, [brows])
    both = (brows.coverage > 0.99) & (np.abs(folds) > 1e-5)          # the fold layer covers even a faint fold
    apart = np.abs(_luma(under) - _luma(inputs.warped)) > 8          # where the strip differs from the warp
    sel = both & apart
    print(emotion, "pixels under both layers where the strip differs from the warp:", int(sel.sum()))
    assert sel.sum() >= 20
    ratio = _luma(out)[sel] / np.maximum(_luma(under)[sel], 1e-3)
    expected = np.exp(folds[sel])
    assert np.percentile(np.abs(ratio / expected - 1.0), 95) < 0.05
    # ... and not the plain warp's picture there
    assert np.median(np.abs(_luma(out)[sel] - _luma(inputs.warped)[sel] * expected)) > 4.0


def _folds_over_strip(inputs, names, a_src, a_dst):
    """The fold layer's natural-log luminance change over the strip's picture (what the pipeline shades)."""
    from dataclasses import replace

    from ned_fx.rendering.brows import BrowRenderer
    from ned_fx.rendering.layers import stack
    from ned_fx.rendering.skin import SkinRenderer

    under = stack(inputs.warped, [BrowRenderer().render(inputs)])
    return SkinRenderer().log_shading(replace(inputs, warped=under), names, a_src, a_dst)


def _socket_masks(shape, lm, eye: int):
    """Eye ``eye``'s socket in the picture (from the landmarks, independently of the sub-stage's own curves): the
    polygon between the upper lid margin and the brow's lower edge, its middle (at least 2 px and a fifth of its
    height from either edge) and the band just above the lid margin (within 1.5 px: the lashes and liner)."""
    import cv2

    from ned_fx.topology import LEFT_BROW, LEFT_EYE, RIGHT_BROW, RIGHT_EYE

    lid = np.asarray(lm)[list((RIGHT_EYE, LEFT_EYE)[eye][:9]), :2]
    brow = np.asarray(lm)[list((RIGHT_BROW, LEFT_BROW)[eye][:5]), :2]
    poly = np.concatenate([lid, brow[::-1]])
    inside = np.zeros(shape, np.uint8)
    cv2.fillPoly(inside, [np.round(poly * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    lines = []
    for pts in (lid, brow):
        line = np.full(shape, 255, np.uint8)
        cv2.polylines(line, [np.round(pts * 16).astype(np.int32)], False, 0, 1, cv2.LINE_8, 4)
        lines.append(cv2.distanceTransform(line, cv2.DIST_L2, 5))
    d_lid, d_brow = lines
    height = float(np.median(np.abs(brow[:, 1] - np.interp(brow[:, 0], np.sort(lid[:, 0]),
                                                              lid[np.argsort(lid[:, 0]), 1]))))
    middle = inside.astype(bool) & (np.minimum(d_lid, d_brow) >= max(2.0, 0.2 * height))
    lashes = inside.astype(bool) & (d_lid <= 1.5)
    return middle, lashes


def test_a_stretched_socket_is_lifted_not_bruised():
    """Sadness raises d3.mp4's inner brows over lowered lids: the warp stretches her deep-set sockets 1.5-1.8x
    (landmarks) and spread their shadow over the taller socket, a dark patch under each brow like a bruise (looked
    at, frames 0 and 176). The skin layer lifts it (``SkinConfig.socket_lift``): the socket's middle is brighter
    than without the lift by >= 6 code values on average (measured 8.8-11.6), no redder (the lift moves each channel toward the
    forehead's colour), the lashes and liner on the lid margin change by at most 4; where no socket is stretched
    (angry lowers the brows) the edit is bit for bit the same with the lift off."""
    from dataclasses import replace

    from conftest import decode_rgb, our_track
    from ned_fx.appearance import build_shot_models
    from ned_fx.media import Frame
    from ned_fx.pipeline import EditInstruction, ShotRenderer, plan_edit

    name = "d3.mp4"
    frames, _ = decode_rgb(name)
    track = our_track(name)
    lum = np.array([0.2126, 0.7152, 0.0722])
    for emotion, ks in (("sad", (0, 176)), ("angry", (0,))):
        edited = plan_edit(track, EditInstruction(emotion=emotion))
        shot = ShotRenderer(track, edited, models=build_shot_models(footage(name), track, edited, None))
        for k in ks:
            outs = []
            for lift in (0.0, 1.0):
                shot.content.skin.config = replace(shot.content.skin.config, socket_lift=lift)
                px = shot.render(Frame.from_array(frames[k], number=k))[0].pixels
                outs.append(np.clip(px, 0, 255).astype(np.float64))
            off, on = outs
            if emotion == "angry":
                np.testing.assert_array_equal(on, off)
                continue
            for eye in range(2):
                middle, lashes = _socket_masks(off.shape[:2], edited.target_landmarks[k], eye)
                assert middle.sum() > 100 and lashes.sum() > 20
                gain = float((on[middle] @ lum).mean() - (off[middle] @ lum).mean())
                red = lambda im: float(im[middle][:, 0].mean() / im[middle][:, 1].mean())  # noqa: E731
                print(f"{emotion} frame {k} eye {eye}: socket +{gain:.1f}, R/G {red(off):.3f} -> {red(on):.3f}, "
                      f"lashes max {np.abs(on - off)[lashes].max():.0f}")
                assert gain >= 6.0
                assert red(on) <= red(off) + 0.01
                assert np.abs(on - off)[lashes].max() <= 4


@pytest.mark.parametrize("bad", [dict(socket_band=(0.3, 0.1, 0.8, 1.0)), dict(socket_band=(0.1, 0.35, 0.8)),
                                 dict(socket_lift_max=1.5), dict(socket_lift=-1.0), dict(socket_sigma=0.0),
                                 dict(socket_reference=(0.12, 0.03)), dict(socket_lift_limit=float("nan"))])
def test_socket_lift_settings_are_checked(bad):
    from ned_fx.errors import InvalidParameterError
    from ned_fx.rendering.skin import SkinConfig

    with pytest.raises(InvalidParameterError):
        SkinConfig(**bad)
    SkinConfig(socket_lift=0.0)         # off is a valid setting


def _marionette(path: str, frames: str | None = None):
    """Per frame of a shared input: (the marionette lines' depth with the turn's fade, without it)."""
    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import track_media
    from ned_fx.rendering.skin import fold_depth, marionette_depth

    track = track_media(path, frames=frames)
    with open_media(path, frames) as src:
        pics = [to_display_rgb8(f) for f in src]
    return np.array([(marionette_depth(p, lm), fold_depth(p, lm, "marionette"))
                     for p, lm in zip(pics, track.landmarks)])


def test_a_pout_the_mesh_did_not_see_is_measured():
    """d8.jpg pouts hard (deep marionette lines from his corners toward the jaw, the chin pushed up) while the mesh
    fits AU15 at ~0.07, his corners put inside and above the real ones: the marionette lines read 0.09 log
    luminance, where relaxed faces, talkers and a broad smile read at most ~0.015 (people_0, d19's gasp, WDA,
    d12); so a still gets the AU15 the mesh missed (``pout_activation``, ~0.8) and the others none. d3.mp4 turned
    ~20 degrees (frames 260-275) reads as deep as d8 along the lines' course (her far cheek's silhouette lies
    on it), with her mouth relaxed: the turn fades the measure out (``SkinConfig.pout_yaw``); a goatee's edges
    along the course are hair, not skin (``SkinConfig.pout_skin``); lines on a mouth the mesh sees relaxed are an
    older face's own (``SkinConfig.pout_fitted``)."""
    from ned_fx.errors import InvalidParameterError
    from ned_fx.rendering.skin import SkinConfig, pout_activation

    d8 = _marionette(footage("d8.jpg"))
    assert d8[0, 0] > 0.07, d8
    act = pout_activation(d8[:, 0])
    assert act is not None and 0.6 < act[0] < 1.0, act
    # only as far as the mesh pulls the mouth that way too (d8 fits AU15 + AU17 0.43): lines as deep on a relaxed
    # mouth (an older face's, at rest) are not a pout
    np.testing.assert_array_equal(pout_activation(d8[:, 0], fitted=np.array([0.43])), act)
    assert pout_activation(d8[:, 0], fitted=np.array([0.0])) is None
    assert 0.3 * act[0] < pout_activation(d8[:, 0], fitted=np.array([0.2]))[0] < 0.7 * act[0]
    for name, frames in (("people_0.png", None), ("d19.jpg", None), ("WDA_AlexandriaOcasioCortez_000.mp4", "0-59"),
                         ("d12.mp4", "0-59")):
        got = _marionette(footage(name), frames)
        assert np.nanmax(got[:, 0]) < 0.02, (name, got)
        assert pout_activation(got[:, 0]) is None, name
    turned = _marionette(footage("d3.mp4"), "260-275x5")
    assert turned[:, 1].min() > 0.06 and turned[:, 0].max() < 0.02, turned
    # a goatee (people_0 with her chin darkened to 0.4-0.25, textured): its edges run along the lines' course and
    # read 0.16-0.34 deep, but the course is hair, not skin (SkinConfig.pout_skin): no pout
    import cv2

    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import track_media
    from ned_fx.rendering.skin import fold_depth, marionette_depth

    lm = track_media(footage("people_0.png")).landmarks[0]
    with open_media(footage("people_0.png")) as src:
        rgb = to_display_rgb8(next(iter(src))).astype(np.float32)
    chin = np.zeros(rgb.shape[:2], np.float32)
    ring = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 287, 422, 430, 394, 379, 378, 400, 377, 152, 148, 176,
            149, 150, 169, 210, 202, 57]
    cv2.fillPoly(chin, [np.round(lm[ring, :2]).astype(np.int32)], 1.0)
    chin = cv2.GaussianBlur(chin, (0, 0), 3)[..., None]
    grain = 1 + 0.15 * cv2.GaussianBlur(np.random.default_rng(0).standard_normal(chin.shape[:2]).astype(np.float32),
                                        (0, 0), 1)[..., None]
    for dark in (0.4, 0.25):
        goatee = np.clip(rgb * (1 - chin * (1 - dark * grain)), 0, 255).astype(np.uint8)
        assert fold_depth(goatee, lm, "marionette") > 0.12, dark
        assert marionette_depth(goatee, lm) < 0.02, dark
    # a clip's lines the actor always has are his face: only what lies beyond the shot's own rest counts
    lines = np.full(12, 0.09)
    lines[6:] = 0.2
    act = pout_activation(lines)
    assert act[:3].max() == 0.0 and act[-3:].min() > 1.0, act
    for bad in (dict(pout_yaw=(16.0, 10.0)), dict(pout_skin=(0.8, 0.6)), dict(pout_rest=-0.1),
                dict(pout_fitted=(0.3, 0.1))):
        with pytest.raises(InvalidParameterError):
            SkinConfig(**bad)


def test_neutral_and_happy_lift_the_corners_of_a_pout_the_mesh_missed(tmp_path):
    """Neutral on d8.jpg's pout had left it as it was (AU15 0.07 fitted, nothing to take away). With the pout the
    picture shows (``ShotModels.pout``) the corners follow ``RendererConfig.pout_lift`` of it, as the brows follow a
    hidden frown, and the skin's folds start from it: the corners rise ~13 px, the marionette lines are lifted (0.086
    -> 0.052); happy starts from the real corners and reads as a smile where it had read as a frown easing. Sad
    pulls them down itself and keeps them where they are; intensity 0 changes nothing; ``pout_lift`` 0 keeps the
    plan's corners."""
    from dataclasses import replace

    from ned_fx.appearance import FaceContent
    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import EditInstruction, ShotRenderer, edit_media, lift_hidden, read_analysis
    from ned_fx.rendering import RendererConfig
    from ned_fx.rendering.skin import marionette_depth

    path = footage("d8.jpg")
    with open_media(path) as src:
        frame = next(iter(src))
    source = to_display_rgb8(frame)
    out = {}
    for emotion in ("neutral", "happy", "sad"):
        edit_media(path, tmp_path / f"{emotion}.png", EditInstruction(emotion=emotion, intensity=1.0),
                   analysis=tmp_path / f"{emotion}.npz", analysis_only=True)
        shot = read_analysis(tmp_path / f"{emotion}.npz")
        assert shot.models.pout is not None and shot.models.pout[0] > 0.6, shot.models.pout
        lifted = ShotRenderer(shot.track, shot.edited, models=shot.models)
        kept = ShotRenderer(shot.track, shot.edited, models=replace(shot.models, pout=None),
                            renderer_config=RendererConfig(pout_lift=0.0))
        out[emotion] = (shot, lifted, kept)
    shot, lifted, kept = out["neutral"]
    moved = lifted.edited.target_landmarks[0] - kept.edited.target_landmarks[0]
    assert (moved[[61, 291], 1] < -2.0).all(), moved[[61, 291]]                  # the corners up
    assert np.abs(moved[[10, 152, 1]]).max() < 0.5                                # brow, chin tip, nose stay
    lm = shot.edited.target_landmarks[0]
    depth = [marionette_depth(to_display_rgb8(r.render(frame)[0]), lm) for r in (kept, lifted)]
    print("d8 marionette lines: source", marionette_depth(source, shot.edited.source_landmarks[0]),
          "neutral without / with the pout:", depth)
    assert depth[1] < 0.85 * depth[0], depth
    # happy: the smile starts from the real corners (looked at: a closed smile, where the plan's read as a frown
    # easing): its corners end ~14 px higher than the plan's, as high over the lips' middle again
    happy = [r.edited.target_landmarks[0] for r in out["happy"][1:]]
    over = [t[13, 1] - t[[61, 291], 1] for t in happy]
    print("happy: corners over the upper lip's middle (px), with / without the pout:", over)
    assert (over[0] - over[1] > 10.0).all(), over
    # sad pulls the corners down itself: from the source, they move less than under neutral
    rise = {e: (out[e][1].edited.target_landmarks[0] - out[e][0].edited.source_landmarks[0])[[61, 291], 1]
            for e in ("neutral", "sad")}
    print("corners' move from the source (px, up < 0):", rise)
    assert (rise["sad"] > rise["neutral"] + 2.0).all(), rise
    # intensity 0: nothing moves, the skin's drive is the edit's
    still = replace(shot.edited, intensity=np.zeros_like(shot.edited.intensity),
                    au_target=shot.edited.au_source.copy())
    assert lift_hidden(still, "AU15", shot.models.pout, 1.0) is still
    names, src, dst = FaceContent(shot.models).skin_aus(still, 0)
    assert src[names.index("AU15")] > shot.edited.au_source[0, names.index("AU15")] + 0.5
    assert np.array_equal(dst - src, np.zeros_like(src))
    assert lift_hidden(shot.edited, "AU15", shot.models.pout, 0.0) is shot.edited
