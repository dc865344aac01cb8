"""Stage occlusion: the detector flags glasses frames (d8.jpg, d12.mp4) and leaves faces without occluders alone
(people_0.png, the WDA clip); a still gets a glasses model from its one frame (d8.jpg) and faces without glasses
get none (people_0, d19, the astronaut, d3, WDA); an edit of d8 keeps its frames' pixels to 2 code values; the
fill replaces occluder pixels by skin; a composite with the matte as ``keep`` leaves the occluders exactly as they
were; a holdout matte is read from an image (8/16-bit) still or sequence."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import footage
from ned_fx import topology as T
from ned_fx.errors import InputNotFoundError, InvalidParameterError, NoFaceError
from ned_fx.occlusion import OcclusionConfig, OcclusionDetector, fill, load_holdout


def _regions(name: str, frames: str | None = None, emotion: str = "surprised"):
    """[(frame, box, region, src, dst)] of a shared clip/photo: the pipeline's own steps up to the render."""
    from ned_fx.compositing import extract_region
    from ned_fx.media import open_media
    from ned_fx.pipeline import EditInstruction, locate_face, plan_edit, track_media

    path = footage(name)
    track = track_media(path, frames=frames)
    edited = plan_edit(track, EditInstruction(emotion=emotion, intensity=1.0))
    index = {int(n): k for k, n in enumerate(track.frame_numbers)}
    out = []
    with open_media(path, frames) as source:
        for frame in source:
            where = locate_face(track, edited, index, frame)
            assert where.reason is None, where.reason
            off = np.array([where.box[0], where.box[1], 0.0])
            out.append((frame, where.box, extract_region(frame, where.box), where.src - off, where.dst - off))
    return out


@pytest.fixture(scope="module")
def shots():
    return {"d8": _regions("d8.jpg"), "d12": _regions("d12.mp4", "0-60x30"), "people": _regions("people_0.png"),
            "wda": _regions("WDA_AlexandriaOcasioCortez_000.mp4", "0-100x50")}


@pytest.fixture(scope="module")
def detector():
    return OcclusionDetector()


def _frame_axes(p):
    iod = float(np.linalg.norm(p[T.EYE_OUTER_LEFT, :2] - p[T.EYE_OUTER_RIGHT, :2]))
    u = (p[T.EYE_OUTER_LEFT, :2] - p[T.EYE_OUTER_RIGHT, :2]) / iod
    v = np.array([-u[1], u[0]])
    c = 0.5 * (p[T.EYE_OUTER_LEFT, :2] + p[T.EYE_OUTER_RIGHT, :2])
    return iod, u, (v if (p[152, :2] - c) @ v > 0 else -v), c


def _rim_zone(region, p):
    """Below-the-eye cheek band where the lower rims of glasses run (0.15..0.35 IOD under the eye line, away
    from the nose), and its dark thin lines (black-hat > 12 code values): the frames, on d8."""
    import cv2

    iod, u, v, c = _frame_axes(p)
    grey = region @ np.float32([0.2126, 0.7152, 0.0722])
    k = max(3, int(0.06 * iod)) | 1
    hat = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    yy, xx = np.mgrid[0:grey.shape[0], 0:grey.shape[1]] + 0.5
    depth = (xx - c[0]) * v[0] + (yy - c[1]) * v[1]
    across = np.abs((xx - c[0]) * u[0] + (yy - c[1]) * u[1])
    zone = (depth > 0.15 * iod) & (depth < 0.35 * iod) & (across > 0.12 * iod) & (across < 0.6 * iod)
    return zone, zone & (hat > 12)


def _inner_face(region, p, shrink=0.1):
    import cv2

    iod = _frame_axes(p)[0]
    m = np.zeros(region.shape[:2], np.uint8)
    cv2.fillPoly(m, [np.rint(p[list(T.FACE_OVAL), :2]).astype(np.int32)], 1)
    k = 2 * int(shrink * iod) + 1
    return cv2.erode(m, np.ones((k, k), np.uint8)) > 0


def test_glasses_frames_of_d8_are_flagged(shots, detector):
    _, _, region, src, _ = shots["d8"][0]
    matte = detector.detect(region, src, 255.0)
    assert matte.shape == region.shape[:2] and matte.dtype == np.float32
    assert 0.0 <= matte.min() and matte.max() == 1.0
    zone, rim = _rim_zone(region, src)
    assert rim.sum() > 150, "the test needs the d8 rims under the eyes"
    assert (matte[rim] > 0.5).mean() > 0.45, "most of the dark rim pixels under the eyes are frames"
    # the matte is thin structures, not the whole band
    assert (matte[zone] > 0.5).mean() < 0.3
    # the lenses' insides (the eyes themselves) stay editable
    for eye in (T.RIGHT_EYE, T.LEFT_EYE):
        x, y = np.rint(src[list(eye), :2].mean(axis=0)).astype(int)
        assert matte[y - 3: y + 4, x - 3: x + 4].max() < 0.5


def test_glasses_of_d12_are_found_in_some_frames(shots, detector):
    """d12's clear plastic frames are faint (a few code values): the detector finds parts of them near the
    eyes, and nothing much elsewhere inside the face."""
    found = []
    for _, _, region, src, _ in shots["d12"]:
        matte = detector.detect(region, src, 255.0)
        zone, _ = _rim_zone(region, src)
        found.append((matte[zone] > 0.5).mean())
    assert max(found) > 0.02 and np.mean(found) > 0.01, found


@pytest.mark.parametrize("which", ["people", "wda"])
def test_faces_without_occluders_are_left_alone(shots, detector, which):
    """No glasses, no hair over the face: lids, lashes, brows, lips, nostrils and teeth are not occluders."""
    for _, _, region, src, _ in shots[which]:
        matte = detector.detect(region, src, 255.0)
        inner = _inner_face(region, src)
        assert (matte[inner] > 0.5).mean() < 0.02


def test_detect_checks_its_inputs(shots, detector):
    # its cost is a benchmark's column (bench/edit.py: occlusion_ms), not a timed test: a 50 ms bound here
    # failed on a loaded 2-core machine and passed on a quiet one
    _, _, region, src, _ = shots["d8"][0]
    with pytest.raises(InvalidParameterError):
        detector.detect(region[..., :2], src, 255.0)
    with pytest.raises(NoFaceError):
        detector.detect(region, np.full_like(src, np.nan), 255.0)
    with pytest.raises(InvalidParameterError):
        OcclusionConfig(line_low=0.1, line_high=0.05)
    # float plates: the same matte from values scaled to white = 1
    assert np.abs(detector.detect(region / 255.0, src, 1.0) - detector.detect(region, src, 255.0)).mean() < 0.01
    assert not OcclusionDetector(OcclusionConfig(glasses=False, hair=False, forehead_hair=False)).detect(
        region, src, 255.0).any()


def test_fill_replaces_thin_occluders_by_skin(shots, detector):
    _, _, region, src, _ = shots["d8"][0]
    matte = detector.detect(region, src, 255.0)
    filled = fill(region, matte)
    assert filled.shape == region.shape and filled.dtype == np.float32
    untouched = matte <= 0.01
    assert np.array_equal(filled[untouched], region[untouched])
    zone, rim = _rim_zone(region, src)
    rim &= matte >= 1.0
    assert rim.sum() > 100
    _, still = _rim_zone(filled, src)
    # (where a rim meets a wide occluder, e.g. hair at the temple, the fill leaves the wide part's own pixels)
    assert (still & rim).sum() < 0.35 * rim.sum(), "the dark rim lines under the eyes are gone after the fill"
    assert fill(region, np.zeros(region.shape[:2], np.float32)) is region
    # wide occluders keep their own pixels unless asked
    import cv2

    blob = cv2.circle(np.zeros(region.shape[:2], np.float32), (70, 70), 30, 1.0, -1)
    assert np.array_equal(fill(region, blob), region)
    assert not np.array_equal(fill(region, blob, max_width=None)[60:80, 60:80], region[60:80, 60:80])


def test_composite_keeps_the_occluders_exactly(shots, detector):
    """detect -> fill -> render -> composite(keep=matte): the occluder's pixels are the plate's, to the code
    value, while the face around them is edited."""
    from ned_fx.compositing import Compositor
    from ned_fx.rendering import GeometryRenderer, build_render_mesh

    frame, box, region, src, dst = shots["d8"][0]
    matte = detector.detect(region, src, 255.0)
    renderer = GeometryRenderer()
    mesh = build_render_mesh(src)
    rendered = renderer.render(fill(region, matte), src, dst, mesh)
    off = np.array([box[0], box[1], 0.0])
    out = Compositor().composite_frame(frame, rendered, box, dst + off, src + off, keep=matte).pixels
    plate = frame.pixels
    crop = (slice(box[1], box[3]), slice(box[0], box[2]))
    kept = matte >= 1.0
    diff = np.abs(out[crop].astype(int) - plate[crop].astype(int)).max(axis=2)
    assert kept.sum() > 500
    assert diff[kept].max() == 0
    assert (diff[~kept & _inner_face(region, src)] > 2).sum() > 500, "the face beneath is still edited"


def test_load_holdout_reads_8_and_16_bit_stills_and_sequences(tmp_path):
    import cv2

    matte = np.zeros((40, 60), np.uint8)
    matte[10:20, 5:25] = 255
    matte[30, 40] = 128
    cv2.imwrite(str(tmp_path / "hold.png"), matte)
    got = load_holdout(tmp_path / "hold.png", 1001, (40, 60))
    assert got.dtype == np.float32 and got.shape == (40, 60)
    assert got[15, 10] == 1.0 and got[0, 0] == 0.0 and abs(got[30, 40] - 128 / 255) < 1e-6
    # a proxy-size matte is scaled to the plate
    assert load_holdout(tmp_path / "hold.png", 0, (80, 120))[30, 20] == 1.0
    # a 16-bit RGBA sequence: the alpha channel of frame 1002's file
    rgba = np.zeros((40, 60, 4), np.uint16)
    rgba[..., 3] = 0
    rgba[5:8, 5:8, 3] = 65535
    cv2.imwrite(str(tmp_path / "seq.1002.png"), rgba)
    seq = load_holdout(tmp_path / "seq.####.png", 1002, (40, 60))
    assert seq[6, 6] == 1.0 and seq.sum() == 9
    with pytest.raises(InputNotFoundError):
        load_holdout(tmp_path / "seq.####.png", 1003, (40, 60))
    with pytest.raises(InvalidParameterError):
        load_holdout(tmp_path / "hold.png", 0, (0, 60))


def test_a_holdout_exr_with_a_bounding_box_is_placed_by_its_windows(tmp_path):
    """Nuke writes a roto's alpha with its bounding box as the EXR's data window: the matte is 0 outside that box,
    never stretched from it over the frame; a plate with a data window of its own (a bbox) gets the matte's pixels
    at the same image positions; a proxy (another display size) is scaled by its display window."""
    from ned_fx.hosts import images

    box = np.ones((100, 50, 1), np.float32)
    images.write_exr(tmp_path / "roto.exr", box, ("A",), data_window=(200, 100, 249, 199),
                     display_window=(0, 0, 511, 511))
    full = load_holdout(tmp_path / "roto.exr", 1, (512, 512))
    assert full.sum() == 5000 and full[100:200, 200:250].min() == 1.0, "the box, at its place (stretched: 262144)"
    plate = load_holdout(tmp_path / "roto.exr", 1, (464, 480), (24, 16, 503, 479), (0, 0, 511, 511))
    assert plate.shape == (464, 480) and plate.sum() == 5000 and plate[100 - 16, 200 - 24] == 1.0
    assert plate[100 - 17, 200 - 24] == 0.0 and plate[100 - 16, 200 - 25] == 0.0
    proxy = load_holdout(tmp_path / "roto.exr", 1, (1024, 1024))
    assert proxy[201:399, 401:499].min() == 1.0 and proxy[:198].max() == 0.0 and proxy[402:].max() == 0.0
    # a plate's data window reaching past its display window (overscan): 0 there
    over = load_holdout(tmp_path / "roto.exr", 1, (532, 532), (-10, -10, 521, 521), (0, 0, 511, 511))
    assert over.sum() == 5000 and over[110, 210] == 1.0
    with pytest.raises(InvalidParameterError, match="data_window"):
        load_holdout(tmp_path / "roto.exr", 1, (10, 10), (0, 0, 19, 19))


# ---- the per-shot glasses model --------------------------------------------------------------------------------

#: d12's clear plastic rims, picked by eye on the plate (x, y pixels): frame 0's lens tops and outer sides and the
#: bridge; on frames 60 and 120 only their highlights can be told apart by eye.
D12_RIMS = {
    0: ([(191, 212), (190, 200), (191, 190), (200, 173), (214, 172), (230, 173), (242, 176), (250, 182), (254, 190)],
        [(290, 184), (294, 176), (306, 172), (324, 172), (342, 176), (352, 188), (354, 200), (352, 212)],
        [(258, 188), (270, 184), (286, 180)]),
    60: ([(225, 210), (231, 210)], [(355, 212), (362, 215), (369, 219)], [(283, 224), (300, 223)]),
    120: ([(311, 192), (316, 195), (322, 199)], [(238, 207), (249, 204)], [(332, 202), (332, 216)]),
}


def _build_model(name: str, frames: str | None):
    from ned_fx.media import open_media
    from ned_fx.occlusion import GlassesModelBuilder
    from ned_fx.pipeline import track_media

    path = footage(name)
    track = track_media(path, frames=frames)
    index = {int(n): k for k, n in enumerate(track.frame_numbers)}
    builder = GlassesModelBuilder()
    with open_media(path, frames) as source:
        for frame in source:
            k = index[int(frame.number)]
            if track.found[k]:
                builder.add(k, frame.pixels.astype(np.float32), track.landmarks[k])
    return builder.finish()


@pytest.fixture(scope="module")
def d12_model():
    return _build_model("d12.mp4", "0-182x4")


def _rim_points(number: int, box) -> np.ndarray:
    """Points every pixel along the hand-picked rims of a d12 frame, in region pixels."""
    pts = []
    for line in D12_RIMS[number]:
        line = np.array(line, float) - [box[0], box[1]]
        for a, b in zip(line[:-1], line[1:]):
            for t in np.linspace(0.0, 1.0, max(2, int(np.linalg.norm(b - a))), endpoint=False):
                pts.append(a + t * (b - a))
        pts.append(line[-1])
    return np.array(pts)


def _covered(matte: np.ndarray, pts: np.ndarray, tol: int = 2) -> float:
    import cv2

    near = cv2.dilate((matte > 0.5).astype(np.uint8), np.ones((2 * tol + 1, 2 * tol + 1), np.uint8))
    return float(near[pts[:, 1].astype(int), pts[:, 0].astype(int)].mean())


@pytest.fixture(scope="module")
def d12_frames():
    return _regions("d12.mp4", "0-120x60")


def test_glasses_model_of_d12_covers_its_clear_rims(d12_model, d12_frames, detector):
    """One frame finds d12's clear plastic rims only in fragments; the shot's model covers them on every frame."""
    assert d12_model is not None and not d12_model.empty and d12_model.frames == 46
    for frame, box, region, src, _ in d12_frames:
        pts = _rim_points(frame.number, box)
        with_model = detector.detect(region, src, 255.0, glasses=d12_model)
        alone = detector.detect(region, src, 255.0)
        assert _covered(with_model, pts) >= 0.6, (frame.number, _covered(with_model, pts))
        assert _covered(alone, pts) < 0.3, "the test needs rims a single frame misses"
        # still thin structures: the lenses' insides (the eyes) stay editable, the band is not all matte
        for eye in (T.RIGHT_EYE, T.LEFT_EYE):
            x, y = np.rint(src[list(eye), :2].mean(axis=0)).astype(int)
            assert with_model[y - 2: y + 3, x - 2: x + 3].max() < 0.5
        assert (with_model[_inner_face(region, src)] > 0.5).mean() < 0.2


def test_d12_lower_bars_are_kept_whole_and_the_lids_stay_free(d12_model, d12_frames, detector):
    """d12's thick clear frames show two edges on their lower bars; the model traced the outer one only, and a happy
    cheek raise bent the inner one into a wave. Under the eyes the kept rim now reaches ``model_rim_inner`` further
    in: the kept run below each eye (at its centre and 0.1 IOD either side) is 0.07-0.17 IOD tall (0.05-0.09
    before), and it starts well below the lower lid (the lid's own edit stays free). The whole lower arc is kept,
    out to 0.17 IOD either side of each eye's centre: the right lens's lower outer side, too faint to trace, had
    gone up with the cheek into a pale wave."""
    for frame, box, region, src, _ in d12_frames:
        kept = detector.detect(region, src, 255.0, glasses=d12_model) >= 1.0
        iod = float(np.linalg.norm(src[33, :2] - src[263, :2]))
        runs = []
        for eye, lid in ((T.RIGHT_EYE, 145), (T.LEFT_EYE, 374)):
            c = src[list(eye), :2].mean(axis=0)
            for dx in (-0.17, -0.1, 0.0, 0.1, 0.17):
                x, top = int(round(c[0] + dx * iod)), int(round(c[1] + 0.15 * iod))
                col = kept[top: int(c[1] + 0.6 * iod), x]
                edges = np.diff(np.concatenate([[0], col.astype(np.int8), [0]]))
                starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
                assert len(starts), (frame.number, dx)
                longest = int(np.argmax(ends - starts))
                runs.append((ends - starts)[longest] / iod)
                assert top + starts[longest] >= src[lid, 1] + 0.05 * iod, (frame.number, dx)   # below the lid
        assert np.median(runs) >= 0.09, (frame.number, np.round(runs, 3))


def test_surprised_edit_leaves_d12_rims_where_they_are(d12_model, d12_frames, detector):
    """detect(glasses=model) -> fill -> render -> composite(keep): the kept pixels are the plate's to 2 code
    values and the rims do not go up with the brows (without the matte they do)."""
    import cv2

    from ned_fx.compositing import Compositor
    from ned_fx.rendering import GeometryRenderer, build_render_mesh

    renderer, comp = GeometryRenderer(), Compositor()
    for frame, box, region, src, dst in d12_frames:
        matte = detector.detect(region, src, 255.0, glasses=d12_model)
        mesh = build_render_mesh(src)
        off = np.array([box[0], box[1], 0.0])
        crop = (slice(box[1], box[3]), slice(box[0], box[2]))
        out = comp.composite_frame(frame, renderer.render(fill(region, matte), src, dst, mesh), box, dst + off,
                                   src + off, keep=matte).pixels[crop]
        plain = comp.composite_frame(frame, renderer.render(region, src, dst, mesh), box, dst + off,
                                     src + off).pixels[crop]
        plate = frame.pixels[crop].astype(int)
        diff = np.abs(out.astype(int) - plate).max(axis=2)
        moved = np.abs(plain.astype(int) - plate).max(axis=2)
        assert diff[matte >= 1.0].max() <= 2
        pts = _rim_points(frame.number, box).astype(int)
        top = pts[pts[:, 1] < np.percentile(pts[:, 1], 60)]                  # the rims above the eyes
        near = cv2.dilate(np.minimum(moved, 255).astype(np.uint8), np.ones((3, 3), np.uint8))
        assert (near[top[:, 1], top[:, 0]] > 2).mean() > 0.5, "surprised moves this skin: the test can fail"
        assert (diff[top[:, 1], top[:, 0]] <= 2).mean() >= 0.6


@pytest.mark.parametrize("name,frames", [("WDA_AlexandriaOcasioCortez_000.mp4", "0-199x20"), ("d3.mp4", "0-353x30")])
def test_no_glasses_no_model(name, frames):
    """Talking and frowning faces without glasses: brows, lid creases, the nose and the face's outline make no
    lens pair."""
    assert _build_model(name, frames) is None


def test_glasses_model_arrays_stills_and_extra_footage(d12_model, d12_frames, shots, detector):
    from ned_fx.occlusion import GlassesModel, GlassesModelBuilder

    back = GlassesModel.from_arrays(d12_model.to_arrays())
    assert np.array_equal(back.mask, d12_model.mask) and np.allclose(back.canon, d12_model.canon)
    assert back.depth == d12_model.depth and np.allclose(back.lenses, d12_model.lenses)
    _, _, region, src, _ = d12_frames[0]
    assert np.array_equal(detector.detect(region, src, 255.0, glasses=back),
                          detector.detect(region, src, 255.0, glasses=d12_model))
    # other footage of the actor (index -1) is not the shot: it adds nothing
    frame, box, region, src, _ = shots["d8"][0]
    builder = GlassesModelBuilder()
    for _ in range(6):
        builder.add(-1, region, src)
    assert builder.finish() is None
    with pytest.raises(InvalidParameterError):
        GlassesModel.from_arrays({"mask": np.zeros((4, 4), np.uint8)})
    with pytest.raises(InvalidParameterError):
        OcclusionConfig(model_support=0.0)


def test_detect_with_a_model_is_cheap(d12_model, d12_frames, detector):
    import time

    _, _, region, src, _ = d12_frames[1]
    detector.detect(region, src, 255.0, glasses=d12_model)
    t = time.perf_counter()
    for _ in range(5):
        detector.detect(region, src, 255.0, glasses=d12_model)
    assert (time.perf_counter() - t) / 5 < 0.05


def _forehead_skin(region, p):
    """The forehead's skin: above the brows' upper edges (+0.04 IOD) and below the oval's top (-0.06 IOD), between
    the brows' outer ends pulled in by 0.1 IOD."""
    iod, u, v, c = _frame_axes(p)
    yy, xx = np.mgrid[0:region.shape[0], 0:region.shape[1]] + 0.5
    q = np.stack([xx - c[0], yy - c[1]], -1)
    across, depth = q @ u, q @ v
    brows = p[[70, 63, 105, 66, 107, 300, 293, 334, 296, 336], :2] - c
    top = (p[10, :2] - c) @ v
    return ((depth < (brows @ v).min() - 0.04 * iod) & (depth > top + 0.06 * iod)
            & (across > (brows @ u).min() + 0.1 * iod) & (across < (brows @ u).max() - 0.1 * iod))


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    from skimage import data

    from ned_fx.media import write_image

    return write_image(tmp_path_factory.mktemp("astronaut") / "astronaut.png", data.astronaut())


def test_hair_over_the_forehead_is_kept_and_forehead_skin_is_not(shots, detector, astronaut):
    """The fringe over the astronaut's forehead (a raised brow drew skin and brow over its edge) is an occluder,
    found above the brows and reaching in from the hairline; the bare foreheads of people_0 and WDA are not."""
    from ned_fx.compositing import extract_region
    from ned_fx.media import open_media
    from ned_fx.pipeline import EditInstruction, locate_face, plan_edit, track_media

    track = track_media(astronaut)
    edited = plan_edit(track, EditInstruction(emotion="surprised", intensity=1.5))
    with open_media(astronaut) as source:
        frame = next(iter(source))
    where = locate_face(track, edited, {0: 0}, frame)
    region = extract_region(frame, where.box)
    src = where.src - np.array([where.box[0], where.box[1], 0.0])
    matte = detector.detect_in_shot(region, src, 255.0)
    assert matte is not None
    iod, u, v, c = _frame_axes(src)
    yy, xx = np.mgrid[0:region.shape[0], 0:region.shape[1]] + 0.5
    q = np.stack([xx - c[0], yy - c[1]], -1)
    top = (src[10, :2] - c) @ v
    # the fringe's lower edge lies on the oval's top here (the brows rise into it); its light-blonde upper part
    # is close to her skin's colour and is found only in part (measured: 0.82 of this band, 0.55 up to 0.2 IOD)
    fringe = ((q @ v > top - 0.06 * iod) & (q @ v < top + 0.02 * iod) & (np.abs(q @ u) < 0.5 * iod))
    assert fringe.sum() > 100 and (matte[fringe] > 0.5).mean() > 0.7, (matte[fringe] > 0.5).mean()
    eyes = _inner_face(region, src, shrink=0.2)
    assert (matte[eyes] > 0.5).mean() < 0.01                    # nothing on the face below the brows
    for which in ("people", "wda"):
        for _, _, region, src, _ in shots[which]:
            m = detector.detect_in_shot(region, src, 255.0)
            skin = _forehead_skin(region, src)
            assert skin.sum() > 200
            assert m is None or (m[skin] > 0.5).mean() < 0.01, which
    # the pipeline's contract: glasses frames only with the shot's glasses model, so a face without glasses
    # gets no rims from its brows and lid creases (the astronaut's did)
    only_frames = OcclusionDetector(OcclusionConfig(forehead_hair=False))
    assert only_frames.detect_in_shot(region, src, 255.0) is None


def test_shaded_temple_skin_under_a_dark_hairline_is_not_hair():
    """WDA frames 55-90: where her head turns, the skin at the forehead's sides under her black hairline lies in
    shade, the same hue as her lit skin but more saturated; the hair cue (chroma far from the skin model) took it
    for hair and the matte reached into the forehead (before: 5.1-5.2 % of the forehead band on frames 60 and 70
    here; tracked every 5th frame of the clip, up to 17 % on frame 85). Shaded skin is allowed ``skin_shade`` more
    saturation now: < 3 % on every frame, on the source face's box (where the pipeline looks) and the edit's."""

    from ned_fx.rendering import face_region_box

    worst = []
    for frame, box, region, src, _ in _regions("WDA_AlexandriaOcasioCortez_000.mp4", "55-90x5"):
        src_full = src + np.array([box[0], box[1], 0.0])
        own = face_region_box(src_full, frame.width, frame.height)
        for b in (box, own):
            r = np.asarray(frame.pixels, np.float32)[b[1]:b[3], b[0]:b[2]]
            p = src_full - np.array([b[0], b[1], 0.0])
            m = OcclusionDetector().detect_in_shot(r, p, 255.0)
            skin = _forehead_skin(r, p)
            assert skin.sum() > 200
            worst.append(0.0 if m is None else float((m[skin] > 0.5).mean()))
    assert max(worst) < 0.03, np.round(worst, 3)
    # and the config's check
    with pytest.raises(InvalidParameterError):
        OcclusionConfig(skin_shade=-0.1)


def test_lit_temple_skin_beside_the_hairline_is_not_hair():
    """d12 frames 10-45: a warm light from his left tints the forehead's side under his hairline yellow, far from
    the skin model's chroma; the hair cue took it for hair, and under surprised the matte kept a block of unmoved
    skin that cut the raised brow's tail off (frames 10-45 of the clip, looked at). Hair over a face is darker than
    the skin it covers: skin at least as bright as the model's median is hair only twice as far from its chroma
    (``lit_skin``). Measured: matte pixels at least as bright as his skin within 0.05 IOD of the face oval, summed
    over these 8 frames, 1301 at ``lit_skin=(1, 1)`` (the old rule), 80 now; his hair above the brows (pixels
    under half the skin's luma inside the oval: 0.97 of them) stays kept."""
    import cv2

    luma = np.array([0.2126, 0.7152, 0.0722])
    shots = _regions("d12.mp4", "10-45x5")
    found = {}
    for lit in ((1.0, 1.0), OcclusionConfig().lit_skin):
        detector = OcclusionDetector(OcclusionConfig(glasses=False, lit_skin=lit))
        bright, hair = 0, []
        for _, _, region, src, _ in shots:
            m = detector.detect(region, src, 255.0, frames=False) >= 0.5
            y = np.asarray(region, np.float64) @ luma
            iod = _frame_axes(src)[0]
            oval = np.zeros(m.shape, np.uint8)
            cv2.fillPoly(oval, [np.rint(src[list(T.FACE_OVAL), :2]).astype(np.int32)], 1)
            skin = np.median(y[oval > 0])
            r = int(round(0.05 * iod))
            near = cv2.dilate(oval, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
            bright += int(((y >= skin) & m & near).sum())
            above = np.arange(m.shape[0])[:, None] < src[list(T.LEFT_BROW + T.RIGHT_BROW), 1].min()
            dark = (y < 0.5 * skin) & (oval > 0) & above
            hair.append(float(m[dark].mean()))
        found[lit] = bright, float(np.mean(hair))
    old, new = found.values()
    assert old[0] > 800 and new[0] < 200, found             # the lit skin: kept before, not now
    assert new[1] >= 0.9 and new[1] >= old[1] - 0.01, found  # the hair: kept as before
    with pytest.raises(InvalidParameterError):
        OcclusionConfig(lit_skin=(0.9, 0.5))


def test_a_raised_brow_goes_under_the_fringe(astronaut):
    """Surprised at 1.5 on the astronaut: the fringe's pixels (the detector's matte at 1) are the plate's to 2 code
    values while the brows rise by >= 8 % IOD in the picture."""
    from ned_fx.appearance import build_shot_models
    from ned_fx.compositing import extract_region
    from ned_fx.media import open_media
    from ned_fx.pipeline import EditInstruction, ShotRenderer, locate_face, plan_edit, track_media

    track = track_media(astronaut)
    edited = plan_edit(track, EditInstruction(emotion="surprised", intensity=1.5))
    with open_media(astronaut) as source:
        frame = next(iter(source))
    out = ShotRenderer(track, edited, models=build_shot_models(astronaut, track, edited, None)).render(frame)[0]
    where = locate_face(track, edited, {0: 0}, frame)
    x0, y0, x1, y1 = where.source_box            # where the pipeline looks for occluders: the source face's box
    src = where.src - np.array([x0, y0, 0.0])
    matte = OcclusionDetector().detect_in_shot(extract_region(frame, where.source_box), src, 255.0)
    kept = matte >= 0.999
    assert kept.sum() > 500
    before = np.asarray(frame.pixels, np.int32)[y0:y1, x0:x1]
    after = np.asarray(out.pixels, np.int32)[y0:y1, x0:x1]
    assert np.abs(after - before)[kept].max() <= 2
    iod = float(np.linalg.norm(src[33, :2] - src[263, :2]))
    rise = (edited.source_landmarks[0][[105, 334], 1] - edited.target_landmarks[0][[105, 334], 1]).min() / iod
    assert rise >= 0.08, rise


def _disc(shape, centre, radius):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    return np.hypot(xx - centre[0], yy - centre[1]) < radius


def test_a_fringe_of_the_skins_own_colour_is_kept():
    """d8.jpg: brown curls of his skin's own colour hang over his forehead down to his glasses. The colour cue alone
    kept a patch at one side (none of the forehead's centre) and surprised dragged the rest up in streaks; the
    texture cue (a fringe: the forehead's centre 2.6 times as textured as the cheeks) keeps it: nearly all of the
    centre, and the edit leaves the kept pixels to 2 code values while the brows under the fringe rise."""
    from ned_fx.appearance import build_shot_models
    from ned_fx.compositing import extract_region
    from ned_fx.media import open_media
    from ned_fx.pipeline import EditInstruction, ShotRenderer, locate_face, plan_edit, track_media

    path = footage("d8.jpg")
    track = track_media(path)
    edited = plan_edit(track, EditInstruction(emotion="surprised", intensity=1.0))
    models = build_shot_models(path, track, edited)
    assert models.fringe > 2.3, models.fringe
    with open_media(path) as source:
        frame = next(iter(source))
    out = ShotRenderer(track, edited, models=models).render(frame)[0]
    where = locate_face(track, edited, {0: 0}, frame)
    x0, y0, x1, y1 = where.source_box
    src = where.src - np.array([x0, y0, 0.0])
    region = extract_region(frame, where.source_box)
    matte = OcclusionDetector().detect_in_shot(region, src, 255.0, fringe=models.fringe)
    colour = OcclusionDetector(OcclusionConfig(hair_texture=0)).detect_in_shot(region, src, 255.0)
    iod = _frame_axes(src)[0]
    centre = _disc(region.shape, src[151, :2], 0.1 * iod)
    assert (matte[centre] > 0.5).mean() > 0.9
    assert colour is None or (colour[centre] > 0.5).mean() < 0.1
    # this frame's own measure gives the same matte as the shot's (a still is its one frame)
    assert np.array_equal(OcclusionDetector().detect_in_shot(region, src, 255.0), matte)
    kept = matte >= 0.999
    assert kept.sum() > 0.5 * iod * iod
    added = kept & ~(colour >= 0.999) if colour is not None else kept
    assert added.sum() > 0.5 * kept.sum()              # most of what is kept, the colour cue alone did not keep
    before = np.asarray(frame.pixels, np.int32)[y0:y1, x0:x1]
    after = np.asarray(out.pixels, np.int32)[y0:y1, x0:x1]
    assert np.abs(after - before)[kept].max() <= 2
    rise = (edited.source_landmarks[0][[105, 334], 1] - edited.target_landmarks[0][[105, 334], 1]).min() / iod
    assert rise >= 0.03, rise


def test_a_fringe_is_the_shots_not_a_frames(astronaut):
    """The texture cue is used as far as the shot's forehead is textured (``FringeBuilder``: the median over its
    frames): bare foreheads read 0.5-1.1, where the cue is off and the matte is the colour cue's alone, and the
    astronaut's fringe ~2. A strand of d12's fringe crosses his forehead now and then: a fifth of his frames read
    above 1.5 (the cue would switch on and off there from frame to frame), the shot 0.6."""
    from ned_fx.occlusion import FringeBuilder

    detector, colour = OcclusionDetector(), OcclusionDetector(OcclusionConfig(hair_texture=0))
    low, _ = OcclusionConfig().hair_fringe
    for name, frames in (("people_0.png", None), ("d19.jpg", None), ("WDA_AlexandriaOcasioCortez_000.mp4", "0-199x10"),
                         ("d3.mp4", "0-353x15"), ("d12.mp4", "0-182x2")):
        builder, each = FringeBuilder(), []
        shots = _regions(name, frames)
        for k, (_, _, region, src, _) in enumerate(shots):
            builder.add(k, region / 255.0, src)              # (any white: the measure is relative to the cheeks)
            each.append(detector.forehead_texture(region, src, 255.0))
        shot = builder.finish()
        assert shot is not None and shot < 1.25, (name, shot)
        if name == "d12.mp4":
            assert np.mean(np.array(each) > low) > 0.1, np.round(each, 2)
        for _, _, region, src, _ in shots[:3]:
            got = detector.detect_in_shot(region, src, 255.0, fringe=shot)
            plain = colour.detect_in_shot(region, src, 255.0)
            assert (got is None and plain is None) or np.array_equal(got, plain), name
    from ned_fx.media import open_media
    from ned_fx.pipeline import track_media

    track = track_media(astronaut)
    with open_media(astronaut) as source:
        frame = next(iter(source))
    builder = FringeBuilder()
    builder.add(0, np.asarray(frame.pixels, np.float32), track.landmarks[0])
    builder.add(-1, np.asarray(frame.pixels, np.float32) * 0.0, track.landmarks[0])     # other footage: not counted
    builder.add(1, np.asarray(frame.pixels, np.float32), np.full((478, 3), np.nan))      # no face: not counted
    assert 1.8 < builder.finish() < 2.5
    assert FringeBuilder().finish() is None
    with pytest.raises(InvalidParameterError, match="hair_fringe"):
        OcclusionConfig(hair_fringe=(2.0, 1.0))
    with pytest.raises(InvalidParameterError, match="hair_texture"):
        OcclusionConfig(hair_texture=0.5)


# ---- glasses on a still (one frame: no shot to add the rims up over) --------------------------------------------

@pytest.fixture(scope="module")
def d8_model():
    return _build_model("d8.jpg", None)


def _sides(region, p):
    """Bool maps of the image's left and right of the face's midline (the face's right eye, then its left)."""
    iod, u, v, c = _frame_axes(p)
    yy, xx = np.mgrid[0:region.shape[0], 0:region.shape[1]] + 0.5
    across = (xx - c[0]) * u[0] + (yy - c[1]) * u[1]
    return across < 0, across > 0


def test_a_still_s_double_bridge_keeps_both_bars(shots, detector):
    """d8's round frames have two bars between the lenses (the bridge and a brow bar over it, ~0.06 IOD apart):
    the still's glasses cover both (the brows' lift bent the upper one into a squiggle when only one was kept)."""
    _, _, region, src, _ = shots["d8"][0]
    mask = detector.find_glasses(region, src, 255.0)
    assert mask is not None
    iod, u, v, c = _frame_axes(src)
    mid = 0.5 * (src[T.RIGHT_EYE[8], :2] + src[T.LEFT_EYE[8], :2])        # between the inner eye corners
    bars = []
    for du in np.linspace(-0.04, 0.04, 9) * iod:                           # columns over the nose's bridge
        depth = np.arange(-0.4, 0.1, 0.002) * iod
        pts = mid + du * u + depth[:, None] * v
        hit = mask[np.clip(pts[:, 1].astype(int), 0, mask.shape[0] - 1), np.clip(pts[:, 0].astype(int), 0,
                                                                              mask.shape[1] - 1)]
        runs = np.flatnonzero(np.diff(np.concatenate([[0], hit.astype(int), [0]])) == 1)
        bars.append(len(runs))
    assert np.median(bars) >= 2, bars


def test_a_still_s_bridge_bar_stays_where_it_meets_the_lens(tmp_path):
    """d8 sad: the brow bar over the bridge runs on into his left lens's top beside the inner end of his left brow;
    kept only between the lenses, the brows' lift bent it into a hook there (mean change 10 code values within
    0.08 IOD of the brow's inner corner; kept on into the lens and up the lens's inner side between the brows:
    4.3)."""
    from ned_fx.media import open_media, to_display_rgb8
    from ned_fx.pipeline import EditInstruction, edit_media, track_media

    out = tmp_path / "sad.png"
    edit_media(footage("d8.jpg"), out, EditInstruction(emotion="sad", intensity=1.0))
    lm = track_media(footage("d8.jpg")).landmarks[0]
    with open_media(footage("d8.jpg")) as a, open_media(out) as b:
        before, after = (to_display_rgb8(next(iter(m))).astype(np.int16) for m in (a, b))
    iod = float(np.linalg.norm(lm[33, :2] - lm[263, :2]))
    yy, xx = np.mgrid[0:before.shape[0], 0:before.shape[1]] + 0.5
    corner = np.hypot(xx - lm[285, 0], yy - lm[285, 1]) < 0.08 * iod
    change = np.abs(after - before).max(axis=-1)[corner]
    assert change.mean() < 6.5, change.mean()


def test_a_still_with_glasses_gets_a_model_that_covers_its_rims(d8_model, shots, detector):
    """d8.jpg (one frame, thin metal frames): the rims under both eyes are real thin lines, so the still gets a
    glasses model; mapped back, it covers the dark rim pixels under both eyes and little else. Measured: 0.32 of
    the rim under his right eye (the outer side of that lens is missed), 0.90 under his left."""
    assert d8_model is not None and not d8_model.empty and d8_model.frames == 1
    _, _, region, src, _ = shots["d8"][0]
    with_model = detector.detect(region, src, 255.0, glasses=d8_model)
    without = detector.detect(region, src, 255.0, frames=False)
    zone, rim = _rim_zone(region, src)
    for side, least in zip(_sides(region, src), (0.25, 0.7)):
        assert (rim & side).sum() > 50, "the test needs the rims under both eyes"
        assert (with_model[rim & side] > 0.5).mean() >= least, (with_model[rim & side] > 0.5).mean()
        assert (without[rim & side] > 0.5).mean() < 0.05, "without the model nothing keeps the rims"
        assert (with_model[zone & side] > 0.5).mean() < 0.35                # thin structures, not the band
    # (the face below the brows' upper edges: his fringe above them is hair, kept by the same matte)
    iod, u, v, c = _frame_axes(src)
    yy, xx = np.mgrid[0:region.shape[0], 0:region.shape[1]] + 0.5
    depth = np.stack([xx - c[0], yy - c[1]], -1) @ v
    below = depth > ((src[[70, 63, 105, 66, 107, 300, 293, 334, 296, 336], :2] - c) @ v).min()
    assert (with_model[_inner_face(region, src) & below] > 0.5).mean() < 0.1
    for eye in (T.RIGHT_EYE, T.LEFT_EYE):                                    # the eyes stay editable
        x, y = np.rint(src[list(eye), :2].mean(axis=0)).astype(int)
        assert with_model[y - 3: y + 4, x - 3: x + 4].max() < 0.5


@pytest.mark.parametrize("name", ["people_0.png", "d19.jpg", "astronaut", "d3.mp4", "wda"])
def test_a_still_without_glasses_gets_no_model(name, astronaut, detector, shots):
    """One frame of a face without glasses: brows, lid creases, eye bags and socket shading make no verified pair of
    rims (the astronaut's did make a lens pair for the per-frame fit: the rims' thin-line check refuses it)."""
    from ned_fx.occlusion import GlassesModelBuilder

    if name == "wda":                                       # single frames of the talking clip, as stills
        for _, _, region, src, _ in shots["wda"]:
            builder = GlassesModelBuilder()
            builder.add(0, region, src)
            assert builder.finish() is None
            assert detector.find_glasses(region, src, 255.0) is None
        return
    if name == "astronaut":
        from ned_fx.media import open_media
        from ned_fx.pipeline import track_media

        track = track_media(astronaut)
        with open_media(astronaut) as source:
            frame = next(iter(source))
        builder = GlassesModelBuilder()
        builder.add(0, frame.pixels.astype(np.float32), np.asarray(track.landmarks[0]))
        assert builder.finish() is None
        return
    assert _build_model(name, "0-1" if name.endswith(".mp4") else None) is None       # d3: a 2-frame shot


def test_find_glasses_does_not_hang_on_where_the_region_starts(shots, detector):
    """The same face cut at other offsets gets the same verdict and the same frames (the still's working copy is
    anchored on the face, so resampling sees the same pixels)."""
    frame, box, region, src, _ = shots["d8"][0]
    first = detector.find_glasses(region, src, 255.0)
    assert first is not None
    px = np.asarray(frame.pixels, np.float32)
    for dx, dy in ((7, 3), (-11, 5)):
        x0, y0 = box[0] + dx, box[1] + dy
        other = detector.find_glasses(px[y0: y0 + region.shape[0], x0: x0 + region.shape[1]],
                                      src - [dx, dy, 0.0], 255.0)
        assert other is not None
        # the same frame pixels where both crops see them (the anchored crop fits inside both)
        a = first[max(dy, 0): region.shape[0] + min(dy, 0), max(dx, 0): region.shape[1] + min(dx, 0)]
        b = other[max(-dy, 0): region.shape[0] + min(-dy, 0), max(-dx, 0): region.shape[1] + min(-dx, 0)]
        assert np.array_equal(a, b)
    with pytest.raises(NoFaceError):
        detector.find_glasses(region, np.full_like(src, np.nan), 255.0)


@pytest.mark.parametrize("emotion", ["happy", "surprised"])
def test_an_edit_of_d8_keeps_its_glasses_to_2_code_values(emotion, d8_model):
    """The floor: pixels of the detected glasses change by at most 2 code values after the edit (happy raises the
    cheeks under the lower rims, surprised raises the brows and opens the eyes inside them). Without the model the
    same edit moves those pixels (the test can fail)."""
    import dataclasses

    from ned_fx.appearance import build_shot_models
    from ned_fx.compositing import extract_region
    from ned_fx.media import open_media
    from ned_fx.pipeline import EditInstruction, ShotRenderer, locate_face, plan_edit, track_media

    path = footage("d8.jpg")
    track = track_media(path)
    edited = plan_edit(track, EditInstruction(emotion=emotion, intensity=1.0))
    models = build_shot_models(path, track, edited, None)
    assert models.glasses is not None and np.array_equal(models.glasses.mask, d8_model.mask)
    with open_media(path) as source:
        frame = next(iter(source))
    where = locate_face(track, edited, {0: 0}, frame)
    x0, y0, x1, y1 = where.source_box            # where the pipeline looks for occluders
    src = where.src - np.array([x0, y0, 0.0])
    glasses = OcclusionDetector(OcclusionConfig(forehead_hair=False)).detect_in_shot(
        extract_region(frame, where.source_box), src, 255.0, glasses=models.glasses)
    kept = glasses >= 0.999
    assert kept.sum() > 800
    before = np.asarray(frame.pixels, np.int32)[y0:y1, x0:x1]
    after = np.asarray(ShotRenderer(track, edited, models=models).render(frame)[0].pixels, np.int32)[y0:y1, x0:x1]
    assert np.abs(after - before).max(axis=2)[kept].max() <= 2
    plain = ShotRenderer(track, edited, models=dataclasses.replace(models, glasses=None)).render(frame)[0]
    moved = np.abs(np.asarray(plain.pixels, np.int32)[y0:y1, x0:x1] - before).max(axis=2)[kept]
    assert (moved > 2).mean() > 0.1, (moved > 2).mean()



def test_a_reused_detector_gives_a_fresh_ones_mattes(shots, d12_model, d12_frames, detector):
    """The detector keeps its working copies in per-thread work arrays from frame to frame: over faces of other
    sizes (WDA's hair, d12 with its glasses model, d8's still), every matte equals a fresh detector's, and a
    matte it returned is never written by a later call."""
    calls = [(shots["wda"][0], None), (d12_frames[0], d12_model), (shots["wda"][1], None),
             (d12_frames[1], d12_model), (shots["d8"][0], None), (d12_frames[0], d12_model)]
    kept = []
    for (frame, box, region, src, _), model in calls:
        got = detector.detect(region, src, 255.0, glasses=model)
        assert np.array_equal(got, OcclusionDetector().detect(region, src, 255.0, glasses=model))
        kept.append((got, got.copy()))
    assert any(got.any() for got, _ in kept[1::2]), "the test needs glasses found"
    assert all(np.array_equal(got, first) for got, first in kept), "a returned matte was written later"
    still = shots["d8"][0]
    found = detector.find_glasses(still[2], still[3], 255.0)
    assert found is not None and np.array_equal(found, OcclusionDetector().find_glasses(still[2], still[3], 255.0))


def _reference_fill(region, matte, levels=8, threshold=0.01, max_width=12.0):
    """:func:`fill`'s arithmetic written plainly (whole-region opening, numpy broadcasting, fresh arrays)."""
    import cv2

    img = np.asarray(region, np.float32)
    hole = matte > threshold
    r = max(1, int(round(max_width / 2)))
    wide = cv2.morphologyEx(hole.astype(np.uint8), cv2.MORPH_OPEN,
                            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
    hole &= ~cv2.dilate(wide.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if not hole.any():
        return region                                              # only wide occluders: nothing to fill
    ys, xs = np.nonzero(hole)
    m = 2 ** min(levels, 5)
    y0, y1, x0, x1 = max(ys.min() - m, 0), min(ys.max() + 1 + m, hole.shape[0]), max(xs.min() - m, 0), \
        min(xs.max() + 1 + m, hole.shape[1])
    sub, h = img[y0:y1, x0:x1], hole[y0:y1, x0:x1]
    weight = (~h).astype(np.float32)
    data, weights = [sub * weight[..., None]], [weight]
    for _ in range(levels):
        if min(weights[-1].shape) < 4:
            break
        data.append(cv2.pyrDown(data[-1]).reshape(-1, (data[-1].shape[1] + 1) // 2, 3))
        weights.append(cv2.pyrDown(weights[-1]))
    acc = data[-1] / np.maximum(weights[-1], 1e-6)[..., None]
    for k in range(len(data) - 2, 0, -1):
        up = cv2.pyrUp(acc, dstsize=(data[k].shape[1], data[k].shape[0])).reshape(data[k].shape)
        alpha = np.clip(weights[k] * 2.0, 0.0, 1.0)[..., None]
        acc = data[k] / np.maximum(weights[k], 1e-6)[..., None] * alpha + up * (1.0 - alpha)
    up = cv2.pyrUp(acc, dstsize=(sub.shape[1], sub.shape[0])).reshape(sub.shape)
    out = img.copy()
    out[y0:y1, x0:x1][h] = up[h]
    return out


def test_fill_gives_the_plain_arithmetic_bit_for_bit(shots, d12_model, d12_frames, detector):
    """The fill works on the holes' box (the opening too) and writes only the holes: the same pixels as the
    whole-region arithmetic, on d12 (glasses, with its model), d8 (glasses, a still) and WDA (hair)."""
    cases = [(d12_frames[0], d12_model), (d12_frames[1], d12_model), (shots["d8"][0], None), (shots["wda"][0], None)]
    for (_, _, region, src, _), model in cases:
        matte = detector.detect(region, src, 255.0, glasses=model)
        assert (matte > 0.01).any(), "the test needs a matte"
        got = fill(region, matte)
        assert np.array_equal(got, _reference_fill(region, matte))
        assert not np.array_equal(got, region) or model is None


def test_growing_a_filled_polygon_by_its_runs_is_the_kernel_pass():
    """The hair cue grows the face oval by a large elliptical kernel from each row's run (no per-pixel pass): the
    same pixels as the kernel pass on convex polygons at the image's edges, and on masks it cannot take (two runs
    in a row, rows whose grown runs leave a gap, other values) it hands over to the kernel pass."""
    import cv2

    from ned_fx.occlusion.detector import _grow, _grow_runs

    rng = np.random.default_rng(5)
    for i in range(300):
        h, w = (int(v) for v in rng.integers(8, 90, 2))
        m = np.zeros((h, w), np.uint8)
        ang = np.sort(rng.random(int(rng.integers(3, 12))) * 2 * np.pi)
        size = np.array([w, h], float)
        c, rad = rng.random(2) * size, rng.random(2) * size * 0.7 + 1
        pts = np.stack([c[0] + rad[0] * np.cos(ang), c[1] + rad[1] * np.sin(ang)], 1)
        if i % 4 == 0:
            pts = rng.random((len(ang), 2)) * size * 1.4 - size * 0.2           # often not convex
        cv2.fillPoly(m, [np.rint(pts * 16).astype(np.int32)], 1, shift=4)
        if i % 7 == 0:
            m[int(rng.integers(0, h)), int(rng.integers(0, w))] = 1             # a stray pixel
        radius = float(rng.integers(0, 22)) + rng.random() - 0.5
        assert np.array_equal(_grow_runs(m, radius), _grow(m, radius)), f"case {i}"
    assert np.array_equal(_grow_runs(m * 3, 5), _grow(m * 3, 5))
