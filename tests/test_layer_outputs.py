"""Layer-ready outputs (issue 20): the movie decode that matches FFmpeg/OpenCV, the edit's matte, a patch with
premultiplied alpha that goes `over` the plate, and finishing-house movie codecs with the source's timecode.

Edits run on a few frames of the shared footage, each shot analysed once (an analysis file per source).
"""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest

from conftest import footage
from ned_fx.errors import InvalidParameterError, UnsupportedFormatError
from ned_fx.media import Frame, MovieWriter, open_media, read_image, write_image
from ned_fx.media.layers import LayerConfig, matte_path, over, patch_frame
from ned_fx.media.readers import read_provenance
from ned_fx.pipeline import EditInstruction, edit_media

os.environ.setdefault("OMP_NUM_THREADS", "1")
HAPPY = EditInstruction(emotion="happy", intensity=1.0)


def _opencv_frames(path, count: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        for _ in range(count):
            ok, bgr = cap.read()
            assert ok
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    return frames


# ---- 1. the decode -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["WDA_AlexandriaOcasioCortez_000.mp4", "d12.mp4", "d3.mp4"])
def test_ffmpeg_conversion_is_opencvs_decode_bit_for_bit(name):
    path = footage(name)
    reference = _opencv_frames(path, 4)
    with open_media(path, "0-3", yuv_conversion="ffmpeg") as src:
        ours = [f.pixels for f in src]
    with open_media(path, "0-3") as src:
        exact = [f.pixels for f in src]
    for ref, got, ex in zip(reference, ours, exact):
        assert got.shape == ref.shape and np.array_equal(got, ref)
        # the default stays the exact conversion, which differs from the usual decode at most pixels
        assert np.mean(np.any(ex != ref, axis=2)) > 0.3


def test_ffmpeg_conversion_follows_the_files_own_matrix(tmp_path):
    """A movie tagged BT.709 (as ned-fx writes them) is decoded with 709, as OpenCV does; the footage is 601."""
    with open_media(footage("d3.mp4"), "0-2") as src:
        frames = [f.pixels for f in src]
    out = tmp_path / "bt709.mp4"
    with MovieWriter(out, 25, 512, 512) as w:
        for f in frames:
            w.write(f)
    with open_media(out, yuv_conversion="ffmpeg") as src:
        ours = [f.pixels for f in src]
    assert all(np.array_equal(a, b) for a, b in zip(ours, _opencv_frames(out, 3)))


def test_unknown_yuv_conversion_is_refused():
    with pytest.raises(InvalidParameterError, match="exact, ffmpeg"):
        open_media(footage("d3.mp4"), "0", yuv_conversion="fast")
    with pytest.raises(InvalidParameterError, match="exact, ffmpeg"):
        LayerConfig(yuv_conversion="bt709")


# ---- 2. the compositor's weights -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def d19_face():
    from ned_fx.pipeline import track_media

    track = track_media(footage("d19.jpg"))
    src = track.landmarks[0].astype(np.float64)
    dst = src.copy()
    dst[:, 1] -= 3.0 * (src[:, 1] > np.median(src[:, 1]))     # the lower face moves up: a real change
    return read_image(footage("d19.jpg")), src, dst


def test_weights_are_what_the_compositor_blended(d19_face):
    from ned_fx.compositing import Compositor, CompositorConfig
    from ned_fx.rendering import face_region_box

    frame, src, dst = d19_face
    plate = frame.pixels.astype(np.float32) / 255.0
    box = face_region_box(np.concatenate([src, dst]), plate.shape[1], plate.shape[0])
    h, w = box[3] - box[1], box[2] - box[0]
    keep = np.zeros((h, w), np.float32)
    keep[: h // 3, : w // 2] = 1.0                              # a holdout over part of the box
    keep[h // 3: h // 2] = 0.5
    comp = Compositor(CompositorConfig(levels=0))               # no pyramid: the blend is delta * weight itself
    rendered = plate[box[1]:box[3], box[0]:box[2]] + 0.25
    out = comp.composite(plate, rendered, box, dst, src, keep=keep)
    weights = comp.weights(plate.shape, box, dst, src, keep=keep)
    assert weights.shape == plate.shape[:2] and weights.dtype == np.float32
    assert 0.0 < weights.max() <= 1.0 and np.all(weights[: box[1]] == 0)
    np.testing.assert_allclose((out - plate)[..., 0], 0.25 * weights, atol=1e-6)
    assert np.all(weights[box[1]: box[1] + h // 3, box[0]: box[0] + w // 2] == 0), "held-out pixels weigh 0"
    # the default (multi-band) compositor is unchanged by the new method and its weights are the same mask
    default = Compositor()
    a = default.composite(frame, rendered * 255.0, box, dst, src, keep=keep)
    default.weights(frame, box, dst, src, keep=keep)
    assert np.array_equal(a, default.composite(frame, rendered * 255.0, box, dst, src, keep=keep))
    assert np.array_equal(default.weights(frame, box, dst, src), Compositor(CompositorConfig(levels=0)).weights(
        frame, box, dst, src))


# ---- the patch construction ----------------------------------------------------------------------------------

def test_patch_over_plate_gives_the_edit_back_for_every_pixel_type():
    rng = np.random.default_rng(3)
    for dtype in (np.uint8, np.uint16, np.float16, np.float32):
        if dtype in (np.uint8, np.uint16):
            top = np.iinfo(dtype).max
            plate = rng.integers(0, top + 1, (40, 50, 3)).astype(dtype)
        else:
            plate = (rng.random((40, 50, 3)) * 4 - 0.5).astype(dtype)      # HDR and negative values
            plate[12:14, 0:5] = rng.random((2, 5, 3)) * 0.5
        weights = np.zeros((40, 50), np.float32)
        weights[10:30, 10:40] = rng.random((20, 30)).astype(np.float32)
        edit = plate.astype(np.float64) + (rng.random((40, 50, 3)) - 0.5) * 2 * weights[..., None] * \
            (top if dtype in (np.uint8, np.uint16) else 1.0)
        edit[12:14, 0:5] = plate[12:14, 0:5] + (3 if dtype in (np.uint8, np.uint16) else 0.1)   # spill past w
        if dtype in (np.uint8, np.uint16):
            edit = np.clip(np.round(edit), 0, top)
        edit = edit.astype(dtype)
        patch = patch_frame(Frame.from_array(plate), Frame.from_array(edit), weights)
        assert patch.channels == ("R", "G", "B", "A")
        changed = np.any(edit != plate, axis=2)
        assert np.all(patch.pixels[~changed] == 0), "transparent black where nothing changed"
        display = np.all((plate >= 0) & (plate < 1) & (edit <= 1), axis=2) if dtype in (np.float16, np.float32) \
            else True
        assert np.all(patch.pixels[changed & display, 3] > 0), "alpha wherever the edit shows"
        assert (changed & display)[12:14, 0:5].sum() >= 3, "the spill past the weights is tested"
        back = over(patch.pixels, plate)
        if dtype in (np.uint8, np.uint16):
            assert patch.pixels.dtype == np.uint16
            assert np.all(patch.pixels[..., :3] <= patch.pixels[..., 3:]), "a valid premultiplied colour"
            assert np.abs(np.round(back) - edit).max() <= 1
        else:
            assert np.array_equal(back.astype(dtype), edit), dtype


# ---- an edited shot, layer by layer ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def d12_png(tmp_path_factory):
    """Frames 20-22 of d12 edited as a full-frame PNG sequence, analysed once."""
    folder = tmp_path_factory.mktemp("d12")
    analysis = folder / "d12.analysis.npz"
    edit_media(footage("d12.mp4"), folder / "full" / "f.####.png", HAPPY, frames="20-22", analysis=analysis)
    return folder, analysis


def test_png_patch_over_the_plate_is_the_full_frame_edit(d12_png):
    folder, analysis = d12_png
    out = folder / "patch" / "p.####.png"
    summary = edit_media(footage("d12.mp4"), out, HAPPY, frames="20-22", analysis=analysis,
                         layers=LayerConfig(layer="patch", matte=True))
    assert summary.layer == "patch" and summary.matte == str(matte_path(out))
    with open_media(footage("d12.mp4"), "20-22") as src:
        for plate in src:
            n = plate.number
            full = read_image(folder / "full" / f"f.{n:04d}.png").pixels
            patch = read_image(folder / "patch" / f"p.{n:04d}.png")
            matte = read_image(folder / "patch" / f"p.matte.{n:04d}.png")
            assert patch.channels == ("R", "G", "B", "A") and patch.pixels.dtype == np.uint16
            assert matte.channels == ("Y",) and matte.pixels.dtype == np.uint16
            assert np.abs(np.round(over(patch.pixels, plate.pixels)) - full).max() <= 1
            alpha = patch.pixels[..., 3]
            changed = np.any(full != plate.pixels, axis=2)
            assert np.array_equal(alpha > 0, changed), "alpha exactly where the edit changed the plate"
            assert 0.02 < changed.mean() < 0.5, "the patch is the face, not the frame"
            m = matte.pixels[..., 0].astype(np.float64) / 65535
            a = alpha.astype(np.float64) / 65535
            assert np.abs(a - m)[changed].mean() < 0.01, "alpha is the matte where the edit shows"
            assert m.max() == 1.0 and np.all(m[:20] == 0), "the matte: full strength on the face, 0 far off"
            record = read_provenance(folder / "patch" / f"p.{n:04d}.png")
            assert record.layer == "patch" and record.yuv_conversion == "exact"


def test_a_sequence_in_another_layer_is_not_resumed_from_the_full_frames(d12_png):
    folder, analysis = d12_png
    out = folder / "again" / "f.####.png"
    edit_media(footage("d12.mp4"), out, HAPPY, frames="20-22", analysis=analysis)
    assert edit_media(footage("d12.mp4"), out, HAPPY, frames="20-22", analysis=analysis).resumed == (20, 21, 22)
    summary = edit_media(footage("d12.mp4"), out, HAPPY, frames="20-22", analysis=analysis,
                         layers=LayerConfig(layer="patch"))
    assert summary.resumed == () and read_image(folder / "again" / "f.0020.png").channels[-1] == "A"


def test_ffmpeg_decode_edit_matches_opencv_outside_the_face(d12_png):
    folder, analysis = d12_png
    out = folder / "ff" / "f.####.png"
    edit_media(footage("d12.mp4"), out, HAPPY, frames="20-22", analysis=analysis,
               layers=LayerConfig(yuv_conversion="ffmpeg", matte=True))
    cv = _opencv_frames(footage("d12.mp4"), 23)[20:]
    for n, ref in zip((20, 21, 22), cv):
        got = read_image(folder / "ff" / f"f.{n:04d}.png").pixels
        matte = read_image(folder / "ff" / f"f.matte.{n:04d}.png").pixels[..., 0]
        outside = np.ones(matte.shape, bool)
        ys, xs = np.nonzero(matte)
        outside[max(ys.min() - 16, 0): ys.max() + 16, max(xs.min() - 16, 0): xs.max() + 16] = False
        assert np.array_equal(got[outside], ref[outside]), "the background is OpenCV's decode, bit for bit"
        assert np.any(got[~outside] != ref[~outside])
    assert read_provenance(folder / "ff" / "f.0020.png").yuv_conversion == "ffmpeg"


def _exr_plate(folder, count=3):
    """A half-float scene-linear EXR sequence of d12 frames 40-42 with alpha, depth and a data window."""
    with open_media(footage("d12.mp4"), f"40-{39 + count}") as src:
        for i, f in enumerate(src):
            lin = ((f.pixels / 255.0) ** 2.2).astype(np.float32) * 1.5
            alpha = np.ones((512, 512, 1), np.float32)
            depth = np.full((512, 512, 1), 7.25 + i, np.float32)
            px = np.concatenate([lin, alpha, depth], axis=2)[40:480, 60:470]
            frame = Frame(number=1001 + i, pixels=np.ascontiguousarray(px.astype(np.float16)),
                          channels=("R", "G", "B", "A", "Z"), data_window=(60, 40, 469, 479),
                          display_window=(0, 0, 511, 511))
            write_image(folder / f"in.{1001 + i}.exr", frame)
    return folder / "in.####.exr"


def test_exr_matte_channel_and_patch_are_exact(tmp_path):
    seq = _exr_plate(tmp_path)
    analysis = tmp_path / "exr.analysis.npz"
    full = edit_media(seq, tmp_path / "full" / "f.####.exr", HAPPY, analysis=analysis,
                      layers=LayerConfig(matte=True, matte_channel="edit.matte"))
    assert full.edited == (1001, 1002, 1003) and full.matte == "EXR channel edit.matte"
    edit_media(seq, tmp_path / "patch" / "p.####.exr", HAPPY, analysis=analysis,
               layers=LayerConfig(layer="patch", matte=True))
    for n in (1001, 1002, 1003):
        plate = read_image(tmp_path / f"in.{n}.exr")
        f = read_image(tmp_path / "full" / f"f.{n}.exr")
        p = read_image(tmp_path / "patch" / f"p.{n}.exr")
        assert f.channels == ("R", "G", "B", "A", "Z", "edit.matte")
        assert f.channel_dtypes == ("float16",) * 5 + ("float32",), "the plate's channels stay half"
        assert p.channels == ("R", "G", "B", "A", "ned.matte") and p.data_window == plate.data_window
        assert p.display_window == plate.display_window
        edit = f.pixels[..., :3].astype(np.float16)
        back = over(p.pixels[..., :4], plate.pixels[..., :3]).astype(np.float16)
        # bit for bit, but for the sign of a zero (the blend may leave -0.0 where the plate has 0.0: equal values,
        # and `over` on a +0 plate cannot make a -0)
        same = back.view(np.uint16) == edit.view(np.uint16)
        assert np.all(same | ((back == 0) & (edit == 0))), "patch over plate: bit for bit"
        assert np.array_equal(p.pixels[..., 4], f.pixels[..., 5]), "the same matte in both"
        changed = np.any(edit != plate.pixels[..., :3], axis=2)
        assert changed.any() and np.all(p.pixels[~changed, :4] == 0)
        matte = f.pixels[..., 5]
        change = np.abs(edit.astype(np.float32) - plate.pixels[..., :3].astype(np.float32)).max(axis=2)
        # the multi-band blend's coarse levels reach a little past the mask: faint changes where the matte is 0
        assert matte.max() == 1.0 and change[matte == 0].max() < 0.01 * change.max()
        assert change[matte > 0.5].mean() > 20 * change[(matte == 0) & changed].mean()


def test_patch_refused_for_formats_without_alpha(tmp_path):
    for name, layers in (("o.jpg", LayerConfig(layer="patch")), ("o.mp4", LayerConfig(layer="patch")),
                         ("o.mov", LayerConfig(layer="patch", codec="prores_ks")),
                         ("o.png", LayerConfig(codec="prores_ks"))):
        with pytest.raises((UnsupportedFormatError, InvalidParameterError)):
            edit_media(footage("d19.jpg"), tmp_path / name, HAPPY, layers=layers)
        assert not (tmp_path / name).exists()
    with pytest.raises(InvalidParameterError):
        LayerConfig(matte_channel="R")


# ---- movies: ProRes/DNxHR, alpha, timecode ---------------------------------------------------------------------

@pytest.mark.parametrize("codec,profile,pix", [("prores_ks", "HQ", "yuv422p10le"),
                                                ("prores_4444", "4444", "yuva444p"),
                                                ("dnxhr_hq", "DNXHR HQ", "yuv422p"),
                                                ("dnxhr_hqx", "DNXHR HQX", "yuv422p10le"),
                                                ("dnxhr_444", "DNXHR 444", "yuv444p10le")])
def test_finishing_codecs_carry_timecode_and_reel(tmp_path, codec, profile, pix):
    import av

    with open_media(footage("d3.mp4"), "0-2") as src:
        frames = [f.pixels for f in src]
    out = tmp_path / "deliver.mov"
    with MovieWriter(out, Fraction(24000, 1001), 512, 512, codec=codec, timecode="01:00:10:05",
                     reel_name="A003C012") as w:
        for f in frames:
            w.write(f)
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert v.codec_context.profile == profile and v.codec_context.pix_fmt.startswith(pix)
    with open_media(out) as back:
        assert back.timecode == "01:00:10:05" and back.reel_name == "A003C012" and len(back) == 3
        pics = [f.pixels for f in back]
    from ned_fx.media.writers import DEEP_CODECS

    deep = codec in DEEP_CODECS     # a 10-bit movie reads back as uint16 (its levels kept): compared in 8-bit levels
    assert pics[1].dtype == (np.uint16 if deep else np.uint8)
    assert np.abs(pics[1].astype(float) / (257.0 if deep else 1.0) - frames[1]).mean() < 2.0


def test_timecode_and_reel_are_refused_when_malformed(tmp_path):
    with pytest.raises(InvalidParameterError, match="HH:MM:SS:FF"):
        MovieWriter(tmp_path / "x.mov", 25, 64, 64, codec="prores_ks", timecode="1:00")
    with pytest.raises(InvalidParameterError, match="reel"):
        MovieWriter(tmp_path / "x.mov", 25, 64, 64, codec="prores_ks", reel_name="A001")
    assert not list(tmp_path.iterdir())


def test_timecode_arithmetic():
    from ned_fx.media.timecode import add_frames, to_frames

    assert add_frames("01:00:00:00", 100, 25) == "01:00:04:00"
    assert add_frames("00:00:59;29", 1, Fraction(30000, 1001)) == "00:01:00;02"     # drop-frame skips ;00 ;01
    assert add_frames("00:09:59;29", 1, Fraction(30000, 1001)) == "00:10:00;00"     # ... but not every 10th
    assert to_frames("00:10:00;00", Fraction(30000, 1001)) == 17982


def test_patch_movie_is_prores_4444_and_carries_the_sources_timecode(tmp_path):
    import av

    # a source plate as a finishing house sends it: ProRes with a timecode track and a reel name
    with open_media(footage("d12.mp4"), "20-25") as src:
        frames = [f.pixels for f in src]
    plate = tmp_path / "plate.mov"
    with MovieWriter(plate, 25, 512, 512, codec="prores_ks", timecode="10:00:00:00", reel_name="B002") as w:
        for f in frames:
            w.write(f)
    analysis = tmp_path / "a.npz"
    full = tmp_path / "full.mov"
    edit_media(plate, full, HAPPY, frames="2-4", analysis=analysis, layers=LayerConfig(codec="dnxhr_hqx"))
    out = tmp_path / "patch.mov"
    summary = edit_media(plate, out, HAPPY, frames="2-4", analysis=analysis,
                         layers=LayerConfig(layer="patch", matte=True))
    assert summary.edited == (2, 3, 4) and summary.matte == str(tmp_path / "patch.matte.mov")
    for movie in (full, out, tmp_path / "patch.matte.mov"):
        with open_media(movie) as m:
            assert m.timecode == "10:00:00:02" and m.reel_name == "B002", movie
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.profile == "4444"
        rgba = [f.to_ndarray(format="rgba64le") for f in c.decode(video=0)]
    with open_media(plate, "2-4") as p, open_media(full) as f:
        for pic, plate_frame, full_frame in zip(rgba, p, f):
            alpha = pic[..., 3]
            assert alpha.max() > 60000 and np.mean(alpha > 0) < 0.5
            assert np.all(alpha[:32] == 0) and np.all(alpha[-32:] == 0), "transparent away from the face"
            back = over(pic, plate_frame.pixels)
            # ProRes 4444 and DNxHR are near-lossless, not lossless (10-bit plates read as uint16: 257 a level)
            assert plate_frame.pixels.dtype == full_frame.pixels.dtype == np.uint16
            assert np.abs(back - full_frame.pixels).mean() < 257.0
    assert read_provenance(out).layer == "patch"


def test_a_ten_bit_plate_s_patch_keeps_its_ten_bit_levels(tmp_path, monkeypatch):
    """A 10-bit plate's patch movie was made from its 8-bit picture: over the plate it gave a banded edit (8-bit
    steps, ~71 of 65535 off on average where it covers). Made from the plate's own levels, the patch over the plate
    is the full-frame 10-bit edit (compared as they go to the encoder: ProRes itself is near-lossless); its matte
    movie's soft edge is no longer cut to 8 bits either."""
    from conftest import ten_bit_levels, ten_bit_prores

    with open_media(footage("d12.mp4"), "40-41") as src:
        deep = ten_bit_levels([f.pixels for f in src])            # sub-8-bit steps across the picture
    plate = ten_bit_prores(tmp_path / "plate.mov", deep)
    written: dict[str, list] = {}
    real = MovieWriter.write

    def keep(self, frame, time=None):
        written.setdefault(self.path.name, []).append(np.array(frame))
        return real(self, frame, time)

    monkeypatch.setattr(MovieWriter, "write", keep)
    analysis = tmp_path / "a.npz"
    edit_media(plate, tmp_path / "full.mov", HAPPY, analysis=analysis)
    edit_media(plate, tmp_path / "patch.mov", HAPPY, analysis=analysis,
               layers=LayerConfig(layer="patch", matte=True))
    with open_media(plate) as p:
        plates = [f.pixels for f in p]
    for patch, full, plate_px in zip(written["patch.mov"], written["full.mov"], plates):
        assert patch.dtype == full.dtype == np.uint16 and patch.shape[2] == 4
        covered = patch[..., 3] > 0
        assert covered.mean() > 0.02
        back = over(patch, plate_px)
        assert np.abs(back[covered] - full[covered].astype(float)).mean() < 4.0
    for matte in written["patch.matte.mov"]:       # the matte movie (ProRes: 10-bit) keeps its soft edge finer too
        edge = (matte[..., 0] > 2000) & (matte[..., 0] < 63000)
        assert matte.dtype == np.uint16 and edge.sum() > 200 and np.mean(matte[..., 0][edge] % 257 != 0) > 0.5


def test_cli_flags(d12_png, capsys):
    from ned_fx.cli import main

    folder, analysis = d12_png
    out = folder / "cli" / "c.####.tif"
    code = main(["edit", str(footage("d12.mp4")), "-o", str(out), "--emotion", "happy", "--intensity", "1",
                 "--frames", "20-21", "--analysis", str(analysis), "--layer", "patch", "--matte",
                 "--yuv-conversion", "ffmpeg", "-q", "--no-audit-log"])
    stdout = capsys.readouterr().out
    assert code == 0 and "(a patch: premultiplied alpha)" in stdout and "c.matte.####.tif" in stdout
    patch = read_image(folder / "cli" / "c.0020.tif")
    assert patch.channels == ("R", "G", "B", "A") and patch.pixels.dtype == np.uint16
    import tifffile

    with tifffile.TiffFile(str(folder / "cli" / "c.0020.tif")) as tif:
        assert list(tif.pages[0].extrasamples) == [tifffile.EXTRASAMPLE.ASSOCALPHA], "premultiplied, and says so"
    assert read_image(folder / "cli" / "c.matte.0020.tif").pixels.dtype == np.float32
    from ned_fx.commands.edit import layers_from_args
    from types import SimpleNamespace

    assert layers_from_args(SimpleNamespace(matte="holdout")).matte_channel == "holdout.matte"
    assert layers_from_args(SimpleNamespace(matte="comp.edit_w")).matte_channel == "comp.edit_w"
    assert not layers_from_args(SimpleNamespace(matte=None)).matte
    assert main(["edit", str(footage("d12.mp4")), "-o", str(folder / "x.png"), "--emotion", "happy",
                 "--frames", "20", "--codec", "dnxhr_hq", "-q", "--no-audit-log"]) != 0
    assert "--codec applies to movie outputs" in capsys.readouterr().err


def test_host_patches_of_full_frames_made_elsewhere(d12_png):
    """The Resolve pass gets full frames from the daemon and makes the patches itself (no matte: the least
    alpha that gives the edit back), decoding the plate as the daemon does."""
    from ned_fx.hosts.patches import make_patches

    folder, _ = d12_png
    full = str(folder / "full" / "f.%04d.png")
    seen = []
    pattern = make_patches(str(footage("d12.mp4")), full, 20, 22, lambda done, total: seen.append((done, total)))
    assert pattern == str(folder / "full" / "f.patch.%04d.png") and seen[-1] == (3, 3)
    with open_media(footage("d12.mp4"), "20-22") as src:
        for plate in src:
            f = read_image(folder / "full" / f"f.{plate.number:04d}.png").pixels
            p = read_image(folder / "full" / f"f.patch.{plate.number:04d}.png").pixels
            assert np.abs(np.round(over(p, plate.pixels)) - f).max() <= 1
            assert np.array_equal(p[..., 3] > 0, np.any(f != plate.pixels, axis=2))
            assert read_provenance(folder / "full" / f"f.patch.{plate.number:04d}.png").edited
    seen.clear()
    make_patches(str(footage("d12.mp4")), full, 20, 22, lambda done, total: seen.append(done))
    assert seen == [], "fresh patches are kept"


def test_host_patches_take_the_matte_the_daemon_returned(tmp_path):
    """A full EXR frame carrying ``ned.matte`` (as render_to_file keeps a matte the daemon returns): the patch's
    alpha is that matte where the edit shows, and the patch over the plate is still exact."""
    from ned_fx.hosts.patches import make_patches

    seq = _exr_plate(tmp_path, count=2)
    edit_media(seq, tmp_path / "full" / "f.####.exr", HAPPY, layers=LayerConfig(matte=True))
    pattern = make_patches(str(seq).replace("####", "%04d"), str(tmp_path / "full" / "f.%04d.exr"), 1001, 1002)
    for n in (1001, 1002):
        plate, full = read_image(tmp_path / f"in.{n}.exr"), read_image(tmp_path / "full" / f"f.{n}.exr")
        patch = read_image(pattern.replace("%04d", str(n)))
        assert patch.channels == ("R", "G", "B", "A", "ned.matte")
        matte = full.pixels[..., 5]
        edit = full.pixels[..., :3].astype(np.float16)
        back = over(patch.pixels[..., :4], plate.pixels[..., :3]).astype(np.float16)
        assert np.all((back == edit) | ((back == 0) & (edit == 0)))
        changed = np.any(edit != plate.pixels[..., :3], axis=2)
        alpha = patch.pixels[..., 3]
        assert np.mean(np.abs(alpha - matte)[changed & (matte > 0)] < 1e-3) > 0.95, "alpha is the matte"


class _Reply:
    def __init__(self, specs, arrays):
        self.specs, self.arrays, self.result = specs, arrays, {"reason": None}


class _Spec:
    def __init__(self, channels, data_window=None, display_window=None):
        self.channels, self.data_window, self.display_window = channels, data_window, display_window


class _Shot:
    """What a daemon answering a render with the matte returns: the frame, then (H, W, 1) float32 weights."""

    def __init__(self, pixels, matte):
        self.pixels, self.matte = pixels, matte

    def render(self, frame, with_info=False, matte=False):
        specs, arrays = [_Spec(("R", "G", "B"))], [self.pixels]
        if matte:                        # only when asked, as the daemon's render option will
            specs.append(_Spec(("ned.matte",)))
            arrays.append(self.matte[..., None])
        reply = _Reply(specs, arrays)
        return (self.pixels, reply) if with_info else self.pixels


def test_render_to_file_keeps_a_returned_matte(tmp_path):
    from ned_fx.hosts.frames import matte_pattern, render_to_file

    with open_media(footage("d3.mp4"), "0") as src:
        rgb = next(iter(src)).pixels
    matte = np.zeros(rgb.shape[:2], np.float32)
    matte[100:300, 150:350] = np.linspace(0, 1, 200, dtype=np.float32)[None, :]
    (tmp_path / "png").mkdir()
    (tmp_path / "exr").mkdir()
    path, _ = render_to_file(_Shot(rgb, matte), 7, tmp_path / "png" / "e.%04d.png")
    assert np.array_equal(read_image(path).pixels, rgb)
    beside = read_image(matte_pattern(tmp_path / "png" / "e.%04d.png").replace("%04d", "0007"))
    assert beside.pixels.dtype == np.uint16 and np.abs(beside.pixels[..., 0] / 65535 - matte).max() < 1e-4
    half = (rgb / 255.0).astype(np.float16)
    path, _ = render_to_file(_Shot(half, matte), 7, tmp_path / "exr" / "e.%04d.exr")
    back = read_image(path)
    assert back.channels == ("R", "G", "B", "ned.matte") and np.array_equal(back.pixels[..., :3], half)
    assert np.abs(back.pixels[..., 3].astype(np.float32) - matte).max() < 1e-3


def test_still_patch_and_matte(tmp_path):
    """A JPEG still: its matte beside a PNG output, and an EXR patch of the 8-bit plate (converted to float as
    the full-frame EXR is) that goes over the converted plate exactly."""
    from ned_fx.media.convert import convert_for_output

    analysis = tmp_path / "d19.npz"
    full = edit_media(footage("d19.jpg"), tmp_path / "f.exr", HAPPY, analysis=analysis)
    edit_media(footage("d19.jpg"), tmp_path / "p.exr", HAPPY, analysis=analysis, layers=LayerConfig(layer="patch"))
    s = edit_media(footage("d19.jpg"), tmp_path / "m.png", HAPPY, analysis=analysis, layers=LayerConfig(matte=True))
    assert full.edited == (0,) and s.matte == str(tmp_path / "m.matte.png")
    plate = convert_for_output(read_image(footage("d19.jpg")), ".exr", False)
    f, p = read_image(tmp_path / "f.exr"), read_image(tmp_path / "p.exr")
    back = over(p.pixels, plate.pixels).astype(f.pixels.dtype)
    assert np.all((back == f.pixels) | ((back == 0) & (f.pixels == 0)))
    matte = read_image(tmp_path / "m.matte.png")
    assert matte.pixels.shape[:2] == plate.pixels.shape[:2] and matte.pixels.max() == 65535
    assert read_provenance(tmp_path / "m.matte.png").edited


def test_a_real_daemon_returns_the_matte_hosts_keep(tmp_path):
    """End to end with a real daemon (real engines, CPU): ``render_to_file`` (the Nuke node's and the Resolve
    pass's renders) asks for the matte, which arrives as ``ned.matte`` in the frame's data window and is the
    matte ``ned-fx edit --matte`` writes for the same edit; shared memory and bottom-up rows give the same matte
    flipped; the Resolve patches' alpha is that matte and the patch over the plate is the daemon's edit."""
    from daemons import Daemon
    from ned_fx.client import Client
    from ned_fx.hosts.frames import render_to_file
    from ned_fx.hosts.patches import make_patches

    seq = _exr_plate(tmp_path, count=2)
    edit_media(seq, tmp_path / "cli" / "c.####.exr", HAPPY, layers=LayerConfig(matte=True))
    (tmp_path / "full").mkdir()
    plate = read_image(tmp_path / "in.1002.exr")
    d = Daemon("--device", "cpu", roots=[tmp_path], tmp=tmp_path)
    try:
        with Client(d.endpoint, timeout=300, retries=0) as c:
            assert {o["name"]: o for o in c.describe()["render_options"]}["matte"]["available"] is True
            shot = c.open(str(seq), frames="1001-1002", emotion="happy", intensity=1.0)
            shot.wait(timeout=600)
            for n in (1001, 1002):
                _, reason = render_to_file(shot, n, tmp_path / "full" / "f.%04d.exr")
                assert reason is None
            up, up_matte = shot.render(1002, np.ascontiguousarray(plate.pixels[::-1]), plate.channels,
                                       row_order="bottom_up", data_window=plate.data_window,
                                       display_window=plate.display_window, shm=True, matte=True)
            up, up_matte = np.array(up), np.array(up_matte)
    finally:
        d.kill()
    for n in (1001, 1002):
        full, cli = read_image(tmp_path / "full" / f"f.{n}.exr"), read_image(tmp_path / "cli" / f"c.{n}.exr")
        assert full.channels == ("R", "G", "B", "A", "Z", "ned.matte") and full.data_window == plate.data_window
        matte = full.pixels[..., 5].astype(np.float32)
        assert matte.max() > 0.99 and matte.min() == 0.0 and np.mean(matte > 0) > 0.02
        assert np.array_equal(full.pixels[..., :5], cli.pixels[..., :5]), "the daemon's edit is the CLI's"
        assert np.abs(matte - cli.pixels[..., cli.channels.index("ned.matte")]).max() < 1e-3, "and so its matte"
        moved = np.abs(full.pixels[..., :3].astype(np.float32) - read_image(tmp_path / f"in.{n}.exr").pixels[..., :3])
        assert np.all(matte[moved.max(axis=2) > 0.02] > 0), "the edit shows only where the matte is"
    full = read_image(tmp_path / "full" / "f.1002.exr")
    assert up_matte.shape == (*plate.pixels.shape[:2], 1) and up_matte.dtype == np.float32
    assert np.array_equal(up_matte[::-1, :, 0].astype(np.float16), full.pixels[..., 5])
    assert np.array_equal(up[::-1], full.pixels[..., :5])
    pattern = make_patches(str(seq).replace("####", "%04d"), str(tmp_path / "full" / "f.%04d.exr"), 1001, 1002)
    for n in (1001, 1002):
        patch, full = read_image(pattern.replace("%04d", str(n))), read_image(tmp_path / "full" / f"f.{n}.exr")
        matte, alpha = full.pixels[..., 5].astype(np.float32), patch.pixels[..., 3].astype(np.float32)
        edit = full.pixels[..., :3]
        back = over(patch.pixels[..., :4], read_image(tmp_path / f"in.{n}.exr").pixels[..., :3]).astype(np.float16)
        assert np.all((back == edit) | ((back == 0) & (edit == 0)))
        changed = np.any(edit != read_image(tmp_path / f"in.{n}.exr").pixels[..., :3], axis=2)
        assert np.mean(np.abs(alpha - matte)[changed & (matte > 0)] < 1e-3) > 0.95, "alpha is the daemon's matte"
