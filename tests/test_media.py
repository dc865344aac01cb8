"""Tests of ned_fx.media: readers, writers, sequences, frame ranges, display conversion and atomic writes."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ned_fx.errors import (InputNotFoundError, InvalidParameterError, OutputWriteError, UnreadableMediaError,
                           UnsupportedFormatError)
from ned_fx.media import (Frame, FrameRange, MovieWriter, ensure_not_input, is_sequence_pattern, open_media,
                          parse_frame_range, read_image, sequence_path, to_display_rgb8, write_image)
from ned_fx.media import writers as writers_module

# the one place that says where the footage is
from conftest import FOOTAGE, encoded_movie, footage, phone_movie, ten_bit_prores, vfr_movie  # noqa: E402
D12 = FOOTAGE / "d12.mp4"

RNG = np.random.default_rng(1234)


def _random(shape, dtype):
    if np.dtype(dtype).kind == "u":
        return RNG.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True, dtype=dtype)
    values = RNG.standard_normal(shape).astype(np.float32) * 4.0
    return values.astype(dtype)


def _bits(a: np.ndarray) -> np.ndarray:
    """Exact bit pattern (so NaN payloads and -0.0 compare too)."""
    return a.view({2: np.uint16, 4: np.uint32, 1: np.uint8}[a.dtype.itemsize])


def _smooth_rgb(height, width, shift=0):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 255) // max(width - 1, 1), (y * 255) // max(height - 1, 1),
                     ((x + y + shift * 7) * 3) % 256], axis=-1).astype(np.uint8)


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# ---- frame ranges and patterns -----------------------------------------------------------------------------------

def test_frame_range_parsing():
    assert FrameRange.parse("1001").numbers() == (1001,)
    r = FrameRange.parse("1001-1100")
    assert (r.first, r.last, r.step, len(r)) == (1001, 1100, 1, 100)
    assert FrameRange.parse("1001-1010x3").numbers() == (1001, 1004, 1007, 1010)
    assert FrameRange.parse(" 5 - 9 x 2 ").numbers() == (5, 7, 9)
    assert FrameRange.parse("-3--1").numbers() == (-3, -2, -1)
    assert str(FrameRange.parse("1001-1100x2")) == "1001-1100x2"
    assert 1003 in FrameRange.parse("1001-1100x2") and 1002 not in FrameRange.parse("1001-1100x2")
    assert parse_frame_range(None) is None
    assert parse_frame_range(7).numbers() == (7,)
    assert parse_frame_range(r) is r


@pytest.mark.parametrize("text", ["", "abc", "1001-", "1100-1001", "1001-1100x0", "1001x2", "10-20x-1", "1.5"])
def test_frame_range_errors(text):
    with pytest.raises(InvalidParameterError) as info:
        FrameRange.parse(text)
    assert "1001-1100" in str(info.value) or "before it starts" in str(info.value) or "step" in str(info.value)


def test_frame_range_constructor_errors():
    with pytest.raises(InvalidParameterError):
        FrameRange(10, 5)
    with pytest.raises(InvalidParameterError):
        FrameRange(1, 5, 0)
    with pytest.raises(InvalidParameterError):
        parse_frame_range(3.5)


def test_sequence_path_and_patterns():
    assert sequence_path("/a/shot.%04d.exr", 7) == Path("/a/shot.0007.exr")
    assert sequence_path("shot.####.exr", 1001) == Path("shot.1001.exr")
    assert sequence_path("shot.@@@.png", 12345) == Path("shot.12345.png")
    assert sequence_path("shot_%d.tif", 42) == Path("shot_42.tif")
    assert sequence_path("shot.####.exr", -5) == Path("shot.-005.exr")
    assert is_sequence_pattern("x/shot.%04d.exr") and is_sequence_pattern("shot.####.exr")
    assert is_sequence_pattern("shot.@@@@.exr")
    assert not is_sequence_pattern("shot.1001.exr") and not is_sequence_pattern("/my#dir/shot.exr")
    with pytest.raises(InvalidParameterError):
        sequence_path("shot.exr", 1)
    with pytest.raises(InvalidParameterError):
        sequence_path("v##.shot.####.exr", 1)


# ---- still images: bit-exact round trips --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_round_trip_bit_exact(tmp_path, dtype, channels):
    pixels = _random((23, 37, channels), dtype)
    out = write_image(tmp_path / "a.png", pixels)
    frame = read_image(out)
    assert frame.pixels.dtype == dtype
    assert frame.channels == {1: ("Y",), 3: ("R", "G", "B"), 4: ("R", "G", "B", "A")}[channels]
    np.testing.assert_array_equal(frame.pixels, pixels)
    assert frame.data_window == frame.display_window == (0, 0, 36, 22)


def test_png_channel_order_is_rgb(tmp_path):
    pixels = np.zeros((4, 5, 3), np.uint8)
    pixels[..., 0] = 200  # red
    write_image(tmp_path / "red.png", pixels)
    import cv2
    bgr = cv2.imread(str(tmp_path / "red.png"), cv2.IMREAD_UNCHANGED)
    assert bgr[0, 0].tolist() == [0, 0, 200]  # other tools see red too
    assert read_image(tmp_path / "red.png").pixels[0, 0].tolist() == [200, 0, 0]


@pytest.mark.parametrize("dtype,channels", [(np.uint16, 3), (np.uint16, 4), (np.uint16, 1), (np.uint8, 3),
                                            (np.float32, 3), (np.float16, 4)])
def test_tiff_round_trip_bit_exact(tmp_path, dtype, channels):
    pixels = _random((19, 31, channels), dtype)
    frame = read_image(write_image(tmp_path / "a.tif", pixels))
    assert frame.pixels.dtype == dtype and frame.pixels.shape == pixels.shape
    assert frame.channels == {1: ("Y",), 3: ("R", "G", "B"), 4: ("R", "G", "B", "A")}[channels]
    np.testing.assert_array_equal(_bits(frame.pixels), _bits(pixels))


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("windows", [
    None,                                          # data window = display window
    ((-8, -4, 47, 35), (0, 0, 39, 29)),            # data window larger than the display window (overscan)
    ((10, 5, 29, 20), (0, 0, 63, 47)),             # data window smaller (a crop)
])
def test_exr_round_trip_bit_exact(tmp_path, dtype, windows):
    data_window, display_window = windows if windows else (None, None)
    if data_window:
        width, height = data_window[2] - data_window[0] + 1, data_window[3] - data_window[1] + 1
    else:
        width, height = 40, 30
    pixels = _random((height, width, 5), dtype)
    pixels[0, 0, 0] = np.nan
    pixels[0, 1, 0] = np.inf
    pixels[0, 2, 0] = -0.0
    frame = Frame(number=1001, pixels=pixels, channels=("R", "G", "B", "A", "Z"), data_window=data_window,
                  display_window=display_window, metadata={"comment": "plate v3", "owner": "comp dept"})
    out = write_image(tmp_path / "plate.1001.exr", frame)
    back = read_image(out, 1001)
    assert back.number == 1001
    assert back.pixels.dtype == dtype
    assert back.channels == ("R", "G", "B", "A", "Z")
    assert back.data_window == frame.data_window
    assert back.display_window == frame.display_window
    np.testing.assert_array_equal(_bits(back.pixels), _bits(pixels))
    assert back.metadata["comment"] == "plate v3" and back.metadata["owner"] == "comp dept"
    # writing what was read reproduces the file's content exactly
    again = read_image(write_image(tmp_path / "copy.exr", back))
    np.testing.assert_array_equal(_bits(again.pixels), _bits(pixels))
    assert (again.data_window, again.display_window) == (back.data_window, back.display_window)
    assert again.metadata["comment"] == "plate v3"


def test_exr_mixed_half_and_float_channels(tmp_path):
    pixels = _random((8, 9, 4), np.float32)
    pixels[..., :3] = pixels[..., :3].astype(np.float16)  # values a half can hold
    frame = Frame(0, pixels, ("R", "G", "B", "depth.Z"), channel_dtypes=("float16", "float16", "float16",
                                                                           "float32"))
    back = read_image(write_image(tmp_path / "m.exr", frame))
    assert back.pixels.dtype == np.float32
    assert back.channel_dtypes == ("float16", "float16", "float16", "float32")
    np.testing.assert_array_equal(back.pixels, pixels)
    import OpenEXR
    with OpenEXR.File(str(tmp_path / "m.exr"), separate_channels=True) as exr:
        stored = {name: ch.pixels.dtype for name, ch in exr.channels().items()}
    assert stored == {"R": np.float16, "G": np.float16, "B": np.float16, "depth.Z": np.float32}


def test_exr_pixel_type_conversion_and_compression(tmp_path):
    pixels = _random((6, 7, 3), np.float32)
    back = read_image(write_image(tmp_path / "h.exr", pixels, pixel_type="half", compression="piz"))
    assert back.pixels.dtype == np.float16
    np.testing.assert_array_equal(back.pixels, pixels.astype(np.float16))
    assert "PIZ" in str(back.metadata["compression"])


def test_jpeg_and_bmp(tmp_path):
    pixels = _smooth_rgb(32, 48)
    jpg = read_image(write_image(tmp_path / "a.jpg", pixels, jpeg_quality=95))
    assert jpg.pixels.shape == (32, 48, 3) and jpg.pixels.dtype == np.uint8
    assert np.abs(jpg.pixels.astype(int) - pixels).mean() < 3
    bmp = read_image(write_image(tmp_path / "a.bmp", pixels))
    np.testing.assert_array_equal(bmp.pixels, pixels)


def test_write_errors_before_anything_is_written(tmp_path):
    with pytest.raises(InvalidParameterError, match="EXR"):
        write_image(tmp_path / "f.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InvalidParameterError, match="half or float"):
        write_image(tmp_path / "i.exr", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InvalidParameterError, match="8-bit"):
        write_image(tmp_path / "j.jpg", np.zeros((4, 4, 3), np.uint16))
    with pytest.raises(UnsupportedFormatError, match=r"\.png"):
        write_image(tmp_path / "x.gif", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(OutputWriteError, match="does not exist"):
        write_image(tmp_path / "nope" / "x.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InvalidParameterError, match="compression"):
        write_image(tmp_path / "c.exr", np.zeros((4, 4, 3), np.float16), compression="lzma")
    assert _listing(tmp_path) == []


def test_exr_header_attributes_that_cannot_be_stored(tmp_path):
    frame = Frame.from_array(np.zeros((4, 4, 3), np.float16))
    with pytest.raises(InvalidParameterError, match="'notes'"):
        write_image(tmp_path / "a.exr", frame, metadata={"notes": {"a": 1}})
    with pytest.raises(InvalidParameterError, match="EXR only"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8), metadata={"notes": "x"})
    assert _listing(tmp_path) == []
    write_image(tmp_path / "b.exr", frame, metadata={"shot": "sq010_0040", "take": 3, "tags": ["plate", "v2"]})
    back = read_image(tmp_path / "b.exr").metadata
    assert (back["shot"], back["take"], back["tags"]) == ("sq010_0040", 3, ["plate", "v2"])


def test_frame_validation():
    with pytest.raises(InvalidParameterError):
        Frame(0, np.zeros((4, 4, 3), np.uint8), ("R", "G"))
    with pytest.raises(InvalidParameterError):
        Frame(0, np.zeros((4, 4, 3), np.float64), ("R", "G", "B"))
    with pytest.raises(InvalidParameterError):
        Frame(0, np.zeros((4, 4, 3), np.uint8), ("R", "G", "B"), data_window=(0, 0, 9, 9))
    frame = Frame(3, np.zeros((4, 5, 3), np.uint8), ("R", "G", "B"), metadata={"a": "b"})
    assert frame.data_window == frame.display_window == (0, 0, 4, 3)
    with pytest.raises(TypeError):
        frame.metadata["a"] = "c"  # read-only


# ---- grey images and the display conversion ----------------------------------------------------------------------

def test_grey_png_reads_as_y_and_displays_as_rgb(tmp_path):
    import cv2
    grey = _random((12, 14), np.uint8)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    frame = read_image(tmp_path / "grey.png")
    assert frame.channels == ("Y",) and frame.pixels.shape == (12, 14, 1) and frame.pixels.dtype == np.uint8
    rgb = to_display_rgb8(frame)
    assert rgb.shape == (12, 14, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], grey)


def test_display_rgb8_of_uint16(tmp_path):
    pixels = np.zeros((2, 3, 4), np.uint16)
    pixels[0, :, 0] = [0, 65535, 257 * 100]     # exact levels 0, 255, 100
    pixels[0, :, 1] = [32768, 32767, 128]       # 127.502 -> 128, 127.498 -> 127, 0.498 -> 0
    pixels[0, :, 2] = [129, 65381, 65408]       # 0.502 -> 1, 254.4 -> 254, 254.506 -> 255
    pixels[..., 3] = 1234                        # alpha ignored
    frame = read_image(write_image(tmp_path / "a.png", pixels))
    rgb = to_display_rgb8(frame)
    assert rgb.shape == (2, 3, 3)
    assert rgb[0, :, 0].tolist() == [0, 255, 100]
    assert rgb[0, :, 1].tolist() == [128, 127, 0]
    assert rgb[0, :, 2].tolist() == [1, 254, 255]


def test_display_rgb8_of_float_exr(tmp_path):
    values = np.array([0.0, 1.0, 0.18, 0.75, 0.002, 2.5, -1.0, np.nan, np.inf], np.float32)
    # by hand: sRGB(0.18) = 1.055 * 0.18 ** (1/2.4) - 0.055 = 0.4613 -> 117.6 -> 118
    #          sRGB(0.75) = 0.8808 -> 224.6 -> 225;  0.002 is in the linear toe: 12.92 * 0.002 * 255 = 6.6 -> 7
    expected = [0, 255, 118, 225, 7, 255, 0, 0, 0]
    for dtype in (np.float16, np.float32):
        pixels = np.stack([values, values[::-1], np.zeros_like(values)], axis=-1)[None].astype(dtype)
        frame = read_image(write_image(tmp_path / f"v{np.dtype(dtype).itemsize}.exr", pixels))
        assert frame.pixels.dtype == dtype
        rgb = to_display_rgb8(frame)
        assert rgb.dtype == np.uint8 and rgb.shape == (1, 9, 3)
        assert rgb[0, :, 0].tolist() == expected
        assert rgb[0, :, 1].tolist() == expected[::-1]
        assert rgb[0, :, 2].tolist() == [0] * 9


def test_display_rgb8_of_a_cropped_exr_keeps_the_data_window_size(tmp_path):
    pixels = np.full((10, 20, 4), 1.0, np.float16)
    frame = Frame(0, pixels, ("R", "G", "B", "A"), data_window=(5, 5, 24, 14), display_window=(0, 0, 99, 99))
    back = read_image(write_image(tmp_path / "c.exr", frame))
    assert to_display_rgb8(back).shape == (10, 20, 3)
    with open_media(tmp_path / "c.exr") as src:
        assert (src.width, src.height) == (100, 100)


def test_display_rgb8_needs_picture_channels():
    frame = Frame(0, np.zeros((2, 2, 1), np.float32), ("Z",))
    with pytest.raises(UnsupportedFormatError, match="Z"):
        to_display_rgb8(frame)


# ---- errors a user can cause -------------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(InputNotFoundError, match="does not exist"):
        open_media(tmp_path / "nothing.mp4")
    with pytest.raises(InputNotFoundError, match="nothing.png"):
        open_media(tmp_path / "nothing.png")
    with pytest.raises(InputNotFoundError, match="folder"):
        open_media(tmp_path / "no_dir" / "shot.####.exr")


def test_unknown_extension(tmp_path):
    path = tmp_path / "notes.xyz"
    path.write_text("hello")
    with pytest.raises(UnsupportedFormatError) as info:
        open_media(path)
    message = str(info.value)
    assert "notes.xyz" in message and ".exr" in message and ".mp4" in message


def test_truncated_png(tmp_path):
    good = write_image(tmp_path / "good.png", _random((64, 64, 3), np.uint8))
    data = good.read_bytes()
    bad = tmp_path / "bad.png"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableMediaError, match="bad.png"):
        open_media(bad)
    bad.write_bytes(b"")
    with pytest.raises(UnreadableMediaError, match="empty"):
        read_image(bad)


def test_truncated_exr_in_a_sequence_names_file_and_frame(tmp_path):
    for n in (1, 2, 3):
        write_image(tmp_path / f"s.{n:04d}.exr", _random((64, 64, 3), np.float32), compression="none")
    data = (tmp_path / "s.0002.exr").read_bytes()
    (tmp_path / "s.0002.exr").write_bytes(data[: len(data) // 2])
    with open_media(tmp_path / "s.####.exr") as src:
        assert (src.width, src.height) == (64, 64)  # from the first frame's header
        assert src.read(1).number == 1
        with pytest.raises(UnreadableMediaError) as info:
            list(src)
    assert "s.0002.exr" in str(info.value) and "frame 2" in str(info.value)


def test_corrupt_and_truncated_movies(tmp_path):
    out = tmp_path / "clip.mp4"
    with MovieWriter(out, 25, 64, 48) as writer:
        for i in range(30):
            writer.write(_smooth_rgb(48, 64, i))
    data = out.read_bytes()
    # cut in the middle of the frames (the index is at the front): the missing frames are detected at open
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(UnreadableMediaError, match="cut.mp4"):
        open_media(cut)
    # not a movie at all
    junk = tmp_path / "junk.mov"
    junk.write_bytes(os.urandom(2000))
    with pytest.raises(UnreadableMediaError, match="junk.mov"):
        open_media(junk)


@pytest.mark.skipif(not D12.exists(), reason=f"shared test footage not found at {D12}")
def test_truncated_real_movie(tmp_path):
    data = D12.read_bytes()  # its index (moov) is at the end: a cut file has none
    cut = tmp_path / "d12_cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableMediaError, match="d12_cut.mp4"):
        open_media(cut)


# ---- sequences ---------------------------------------------------------------------------------------------------

def _make_sequence(folder: Path, numbers, name="shot.{:04d}.png"):
    frames = {}
    for n in numbers:
        pixels = np.full((6, 8, 3), n % 251, np.uint8)
        write_image(folder / name.format(n), pixels)
        frames[n] = pixels
    return frames


@pytest.mark.parametrize("pattern", ["shot.%04d.png", "shot.####.png", "shot.@@@@.png"])
def test_sequence_discovery(tmp_path, pattern):
    made = _make_sequence(tmp_path, range(1001, 1006))
    (tmp_path / "shot.101.png").write_bytes((tmp_path / "shot.1001.png").read_bytes())  # other padding: not a member
    (tmp_path / "other.1001.png").write_bytes((tmp_path / "shot.1001.png").read_bytes())
    with open_media(tmp_path / pattern) as src:
        assert src.kind == "sequence" and src.fps is None
        assert src.frame_numbers == (1001, 1002, 1003, 1004, 1005)
        assert len(src) == 5 and (src.width, src.height) == (8, 6)
        frames = list(src)
        assert [f.number for f in frames] == [1001, 1002, 1003, 1004, 1005]
        for f in frames:
            np.testing.assert_array_equal(f.pixels, made[f.number])
        assert src.read(1003).number == 1003
        with pytest.raises(InvalidParameterError, match="1001-1005"):
            src.read(999)
    with open_media(tmp_path / pattern, frames="1002-1005x2") as src:
        assert src.frame_numbers == (1002, 1004)
        assert [f.number for f in src] == [1002, 1004]


def test_sequence_member_path_is_a_single_image(tmp_path):
    _make_sequence(tmp_path, [1001, 1002])
    with open_media(tmp_path / "shot.1002.png") as src:
        assert src.kind == "image" and src.frame_numbers == (0,)
        assert [f.number for f in src] == [0]


def test_sequence_missing_frames_are_reported_before_work(tmp_path):
    _make_sequence(tmp_path, [1001, 1002, 1004, 1005, 1008])
    with pytest.raises(InputNotFoundError) as info:
        open_media(tmp_path / "shot.####.png", frames="1001-1008")
    message = str(info.value)
    assert "1003" in message and "1006-1007" in message and "shot.####.png" in message
    # without a range, the frames on disk are read
    with open_media(tmp_path / "shot.####.png") as src:
        assert src.frame_numbers == (1001, 1002, 1004, 1005, 1008)


def test_sequence_with_no_match_names_pattern_and_folder(tmp_path):
    _make_sequence(tmp_path, [7, 8], name="shot.{:03d}.png")
    with pytest.raises(InputNotFoundError) as info:
        open_media(tmp_path / "shot.####.png")
    message = str(info.value)
    assert "shot.####.png" in message and str(tmp_path) in message and "padding" in message
    with open_media(tmp_path / "shot.###.png") as src:
        assert src.frame_numbers == (7, 8)


def test_single_image_source(tmp_path):
    write_image(tmp_path / "one.png", _smooth_rgb(10, 12))
    with open_media(tmp_path / "one.png") as src:
        assert src.kind == "image" and len(src) == 1 and (src.width, src.height) == (12, 10)
        assert src.read(0).pixels.shape == (10, 12, 3)
    with pytest.raises(InvalidParameterError):
        open_media(tmp_path / "one.png", frames="1001-1010")


# ---- movies ------------------------------------------------------------------------------------------------------

def test_movie_writer_round_trip(tmp_path):
    out = tmp_path / "out.mp4"
    originals = [_smooth_rgb(48, 64, i) for i in range(12)]
    with MovieWriter(out, 25, 64, 48) as writer:
        for rgb in originals:
            writer.write(rgb)
    assert _listing(tmp_path) == ["out.mp4"]
    with open_media(out) as src:
        assert src.kind == "movie" and src.fps == 25.0 and len(src) == 12
        assert (src.width, src.height) == (64, 48) and src.codec == "h264" and not src.has_audio
        frames = list(src)
    assert [f.number for f in frames] == list(range(12))
    for frame, original in zip(frames, originals):
        assert frame.pixels.shape == (48, 64, 3) and frame.pixels.dtype == np.uint8 and frame.channels == ("R", "G",
                                                                                                         "B")
        assert np.abs(frame.pixels.astype(int) - original).mean() < 4.0


@pytest.mark.parametrize("deep", [False, True])
def test_movie_writer_wraps_one_kept_buffer_and_writes_the_same_movie(tmp_path, monkeypatch, deep):
    """Each frame is copied into one buffer the writer keeps and handed to swscale without another copy (a new
    buffer per frame, as ``from_ndarray`` made, cost more than the conversion at 1080p): the movie is the same
    as the one written through ``from_ndarray`` (real frames of d12, 8-bit H.264 and 16-bit into 10-bit ProRes),
    the caller's arrays are never wrapped (changing one after ``write`` changes nothing), and no frame is made
    by ``from_ndarray``."""
    import av

    with open_media(footage("d12.mp4"), "0-5") as src:
        rgb = [f.pixels for f in src]
    if deep:
        rgb = [(p.astype(np.uint16) * 257) for p in rgb]
    h, w = rgb[0].shape[:2]
    kw = dict(codec="prores_ks") if deep else {}
    name = "out.mov" if deep else "out.mp4"

    def write(path, frames):
        with MovieWriter(path, 25, w, h, **kw) as writer:
            for p in frames:
                mine = p.copy()
                writer.write(mine)
                mine[:] = 0                                   # the caller's array, reused after write
        with open_media(path) as out:
            return [f.pixels for f in out]

    made = []
    real = av.VideoFrame.from_ndarray
    monkeypatch.setattr(av.VideoFrame, "from_ndarray", staticmethod(lambda *a, **k: made.append(1) or real(*a, **k)))
    kept = write(tmp_path / name, rgb)
    assert not made
    monkeypatch.setattr(writers_module, "_video_frame", lambda arr, fmt, held: real(np.ascontiguousarray(arr),
                                                                                   format=fmt))
    (tmp_path / "old").mkdir()
    old = write(tmp_path / "old" / name, rgb)
    assert len(kept) == len(old) == len(rgb)
    for a, b, src in zip(kept, old, rgb):
        assert np.array_equal(a, b)
        assert np.abs(a.astype(np.float64) - src).mean() < (0.02 * 65535 if deep else 4.0)


def test_movie_writer_odd_size_and_ntsc_rate(tmp_path):
    out = tmp_path / "odd.mov"
    with MovieWriter(out, 23.976, 33, 21) as writer:
        for i in range(3):
            writer.write(_smooth_rgb(21, 33, i))
    with open_media(out) as src:
        assert (src.width, src.height) == (34, 22)  # padded to even for 4:2:0
        assert src.frame_rate.numerator == 24000 and src.frame_rate.denominator == 1001
        assert len(src) == 3


def test_movie_writer_rejects_bad_parameters(tmp_path):
    with pytest.raises(InvalidParameterError, match="libx264"):
        MovieWriter(tmp_path / "a.mp4", 25, 64, 48, codec="h263p")
    with pytest.raises(InvalidParameterError, match=r"\.mov"):
        MovieWriter(tmp_path / "a.mp4", 25, 64, 48, codec="prores_ks")
    with pytest.raises(InvalidParameterError, match="fps"):
        MovieWriter(tmp_path / "a.mp4", 0, 64, 48)
    with pytest.raises(UnsupportedFormatError):
        MovieWriter(tmp_path / "a.png", 25, 64, 48)
    with MovieWriter(tmp_path / "a.mp4", 25, 64, 48) as writer:
        with pytest.raises(InvalidParameterError, match="uint8"):
            writer.write(np.zeros((48, 64, 3), np.float32))
        writer.write(np.zeros((48, 64, 3), np.uint8))
    assert _listing(tmp_path) == ["a.mp4"]


def test_movie_frame_range(tmp_path):
    out = tmp_path / "r.mp4"
    originals = [_smooth_rgb(32, 32, i) for i in range(20)]
    with MovieWriter(out, 24, 32, 32) as writer:
        for rgb in originals:
            writer.write(rgb)
    with open_media(out) as src:
        every = {f.number: f.pixels for f in src}
    with open_media(out, frames="5-15x5") as src:
        assert src.frame_numbers == (5, 10, 15)
        got = list(src)
        assert [f.number for f in got] == [5, 10, 15]
        for f in got:
            np.testing.assert_array_equal(f.pixels, every[f.number])
        np.testing.assert_array_equal(src.read(10).pixels, every[10])
    with pytest.raises(InvalidParameterError, match="0-19"):
        open_media(out, frames="15-25")


@pytest.mark.skipif(not D12.exists(), reason=f"shared test footage not found at {D12}")
def test_real_clip():
    with open_media(D12) as src:
        assert src.kind == "movie"
        assert len(src) == 183 and src.frame_numbers[-1] == 182
        assert src.fps == 25.0
        assert (src.width, src.height) == (512, 512)
        assert src.has_audio
        frames = list(src)
        assert len(frames) == 183 and frames[100].number == 100
        assert frames[0].pixels.shape == (512, 512, 3) and frames[0].pixels.dtype == np.uint8
        np.testing.assert_array_equal(src.read(100).pixels, frames[100].pixels)
        np.testing.assert_array_equal(src.read(7).pixels, frames[7].pixels)      # backwards: seeks
        np.testing.assert_array_equal(src.read(182).pixels, frames[182].pixels)  # last frame
        assert not np.array_equal(frames[0].pixels, frames[100].pixels)


def _coded(path: Path):
    """(width, height, display rotation) of a movie's first coded picture, as FFmpeg decodes it."""
    import av

    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        return frame.width, frame.height, round(frame.rotation)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_a_portrait_phone_movie_reads_upright(tmp_path, rotation):
    """A phone's portrait video is stored sideways with a display rotation: its frames come upright, as a player
    shows them, the size is the upright picture's, and random access gives the same pixels as reading through."""
    originals = [_smooth_rgb(48, 64, i) for i in range(8)]        # 64 wide, 48 high: a quarter turn shows
    originals[0][:6, :10] = 255                                    # a white corner: top left when upright
    movie = phone_movie(tmp_path / "phone.mov", originals, rotation, codec="png")
    assert _coded(movie)[2] == (rotation + 180) % 360 - 180        # FFmpeg says -90 for 270
    with open_media(movie) as src:
        assert src.rotation == rotation and (src.width, src.height) == (64, 48)
        frames = list(src)
        for frame, original in zip(frames, originals):
            np.testing.assert_array_equal(frame.pixels, original)
        np.testing.assert_array_equal(src.read(5).pixels, originals[5])
        np.testing.assert_array_equal(src.read(0).pixels, originals[0])
    plain = phone_movie(tmp_path / "plain.mov", originals, 0, codec="png")
    with open_media(plain) as src:
        assert src.rotation == 0 and (src.width, src.height) == (64, 48)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_photo_tagged_with_an_exif_orientation_reads_upright(tmp_path, orientation):
    """A phone or camera stores a picture taken sideways as the sensor saw it and tags how to show it (EXIF
    orientation 1-8, in a JPEG or a PNG; TIFF's Orientation tag the same): it reads as a viewer shows it -- PIL's
    own mapping of each tag, applied to the stored pixels -- with the upright size."""
    import cv2
    import tifffile
    from PIL import Image

    from ned_fx.media import probe_image_size

    stored = _smooth_rgb(48, 64, 3)
    stored[:6, :10] = 255                                           # a white corner: tells every turn and mirror
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "photo.jpg", exif=exif.tobytes(), quality=95)
    decoded = cv2.cvtColor(cv2.imread(str(tmp_path / "photo.jpg"), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    turn = {2: Image.FLIP_LEFT_RIGHT, 3: Image.ROTATE_180, 4: Image.FLIP_TOP_BOTTOM, 5: Image.TRANSPOSE,
            6: Image.ROTATE_270, 7: Image.TRANSVERSE, 8: Image.ROTATE_90}
    shown = np.asarray(Image.fromarray(decoded).transpose(turn[orientation])) if orientation in turn else decoded
    got = read_image(tmp_path / "photo.jpg").pixels
    np.testing.assert_array_equal(got, shown)
    assert probe_image_size(tmp_path / "photo.jpg") == (shown.shape[1], shown.shape[0])
    Image.fromarray(stored).save(tmp_path / "photo.png", exif=exif.tobytes())          # PNG's eXIf chunk
    np.testing.assert_array_equal(read_image(tmp_path / "photo.png").pixels,
                                  np.asarray(Image.fromarray(stored).transpose(turn[orientation]))
                                  if orientation in turn else stored)
    tifffile.imwrite(tmp_path / "photo.tif", stored, photometric="rgb", extratags=[(274, 3, 1, orientation, False)])
    np.testing.assert_array_equal(read_image(tmp_path / "photo.tif").pixels,
                                  np.asarray(Image.fromarray(stored).transpose(turn[orientation]))
                                  if orientation in turn else stored)


def test_a_still_s_icc_profile_travels_to_a_jpeg_png_or_tiff_output(tmp_path):
    """A phone photo's colour profile (Display P3; here lcms's sRGB) is kept on the frame and written into a JPEG,
    PNG or TIFF output with the pixels unchanged, so the output shows in the input's colours; a CMYK profile is
    not put on the RGB it decodes to, and a damaged profile segment reads as none."""
    from PIL import Image, ImageCms

    from ned_fx.media.stillmeta import icc_profile, profile_for

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgb = _smooth_rgb(40, 52, 1)
    Image.fromarray(rgb).save(tmp_path / "in.jpg", icc_profile=profile, quality=95)
    Image.fromarray(rgb).save(tmp_path / "in.png", icc_profile=profile)
    for source in ("in.jpg", "in.png"):
        frame = read_image(tmp_path / source)
        assert frame.icc_profile == profile, source
        for ext in (".jpg", ".png", ".tif"):
            out = write_image(tmp_path / f"{source}{ext}", frame)
            assert Image.open(out).info.get("icc_profile") == profile, (source, ext)
            assert read_image(out).icc_profile == profile
            if ext != ".jpg":
                np.testing.assert_array_equal(read_image(out).pixels, frame.pixels)
    plain = write_image(tmp_path / "plain.png", Frame.from_array(rgb))
    assert "icc_profile" not in Image.open(plain).info and read_image(plain).icc_profile is None
    cmyk = profile[:16] + b"CMYK" + profile[20:]
    assert profile_for(cmyk, 3) is None and profile_for(profile, 3) == profile and profile_for(profile, 1) is None
    damaged = (tmp_path / "in.jpg").read_bytes().replace(b"ICC_PROFILE\x00", b"ICC_PROFILE\x00\x01\x01xx", 1)
    assert profile_for(icc_profile(damaged), 3) is None


def test_a_movie_s_rotation_is_read_once_per_version_of_the_file(tmp_path, monkeypatch):
    """An edit asks for the rotation up to 8 times (the source and each cache key's fingerprint), and each read
    opened the movie and decoded a frame: it is read once per file version; a file rewritten in place (another
    rotation) is read again, and its fingerprint changes with it."""
    import os

    from ned_fx.media import readers
    from ned_fx.media.paths import source_fingerprint

    originals = [_smooth_rgb(48, 64, i) for i in range(3)]
    movie = phone_movie(tmp_path / "phone.mov", originals, 90, codec="png")
    opened = []
    real = readers._open_container
    monkeypatch.setattr(readers, "_open_container", lambda path, *a, **k: opened.append(path) or real(path, *a, **k))
    first = source_fingerprint(movie)
    for _ in range(3):
        assert source_fingerprint(movie) == first and readers.movie_rotation(movie) == 90
    with open_media(movie) as src:
        assert src.rotation == 90
    rotation_reads = len(opened) - 1                # (the source itself opens it once more to read its frames)
    assert rotation_reads == 1, opened
    stat = movie.stat()
    phone_movie(movie, originals, 270, codec="png")             # rewritten in place: another version
    os.utime(movie, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert readers.movie_rotation(movie) == 270 and source_fingerprint(movie) != first


@pytest.mark.parametrize("rotation", [90, 270])
def test_movie_writer_gives_back_the_coded_orientation_and_the_rotation(tmp_path, rotation):
    """Upright frames written with the source's rotation are stored as the source was (sideways, tagged), so a
    player or a host shows the output as it showed the source; a container that cannot hold the tag (AVI) gets the
    upright pictures untagged, which is what a player showed."""
    originals = [_smooth_rgb(48, 64, i) for i in range(6)]
    out = tmp_path / "out.mp4"
    with MovieWriter(out, 25, 64, 48, rotation=rotation) as writer:
        for rgb in originals:
            writer.write(rgb)
    assert _coded(out) == (48, 64, (rotation + 180) % 360 - 180)
    with open_media(out) as src:
        assert src.rotation == rotation and (src.width, src.height) == (64, 48)
        for frame, original in zip(src, originals):          # x264's own loss (2.5-4 levels); turned wrong: ~80
            assert np.abs(frame.pixels.astype(int) - original).mean() < 5.0
    avi = tmp_path / "out.avi"
    with MovieWriter(avi, 25, 64, 48, codec="mpeg4", rotation=rotation) as writer:
        assert writer.rotation == 0
        for rgb in originals:
            writer.write(rgb)
    assert _coded(avi) == (64, 48, 0)
    with open_media(avi) as src:
        assert np.abs(next(iter(src)).pixels.astype(int) - originals[0]).mean() < 8.0
    with pytest.raises(InvalidParameterError, match="multiple of 90"):
        MovieWriter(tmp_path / "bad.mp4", 25, 64, 48, rotation=45)


def test_an_anamorphic_movie_keeps_its_pixel_aspect(tmp_path):
    """An anamorphic plate (pixels 4/3 wide) is read with its stored pixels and says its pixel aspect; a movie
    written with it is tagged so (shown as wide as the source) where the container holds the tag."""
    from fractions import Fraction

    import av

    from ned_fx.media.readers import movie_presentation

    originals = [_smooth_rgb(48, 64, i) for i in range(3)]
    plate = phone_movie(tmp_path / "hdv.mov", originals, 0, codec="png", pixel_aspect=Fraction(4, 3))
    with open_media(plate) as src:
        assert src.pixel_aspect == Fraction(4, 3) and (src.width, src.height) == (64, 48)
        np.testing.assert_array_equal(next(iter(src)).pixels, originals[0])
    shown = movie_presentation(plate)
    assert (shown.rotation, shown.pixel_aspect, shown.times) == (0, Fraction(4, 3), None)
    assert shown.writer_options() == {"rotation": 0, "pixel_aspect": Fraction(4, 3), "time_base": None,
                                      "colour": None, "field_order": None}
    with open_media(phone_movie(tmp_path / "square.mov", originals, 0, codec="png")) as src:
        assert src.pixel_aspect == 1
    for name, codec in (("out.mp4", "libx264"), ("out.mov", "prores_ks"), ("out.mkv", "libx264"),
                        ("out.avi", "mpeg4")):
        with MovieWriter(tmp_path / name, 25, 64, 48, codec=codec, pixel_aspect=Fraction(4, 3)) as writer:
            for rgb in originals:
                writer.write(rgb)
        with open_media(tmp_path / name) as src:
            assert src.pixel_aspect == Fraction(4, 3), name
    with MovieWriter(tmp_path / "sq.mp4", 25, 64, 48) as writer:
        writer.write(originals[0])
    with av.open(str(tmp_path / "sq.mp4")) as c:
        assert not c.streams.video[0].sample_aspect_ratio or c.streams.video[0].sample_aspect_ratio == 1
    with pytest.raises(InvalidParameterError, match="pixel aspect"):
        MovieWriter(tmp_path / "bad.mp4", 25, 64, 48, pixel_aspect=-1)


def _deep_ramp(i: int) -> np.ndarray:
    """A 64x256 uint16 picture whose levels an 8-bit frame cannot hold (a gentle ramp: ~220 10-bit levels)."""
    ramp = np.linspace(16000, 16000 + 16384, 256)[None, :, None] + i * 300
    return np.tile(ramp, (64, 1, 3)).astype(np.uint16)


def test_a_ten_bit_movie_is_read_and_written_deep(tmp_path):
    """A 10-bit ProRes plate is read as uint16 (its levels, not 8-bit bands) and a uint16 frame written to a 10-bit
    codec keeps them; an 8-bit codec takes uint16 frames too."""
    from ned_fx.media.writers import DEEP_CODECS

    pictures = [_deep_ramp(i) for i in range(3)]
    plate = ten_bit_prores(tmp_path / "plate.mov", pictures)
    with open_media(plate) as src:
        frames = [f.pixels for f in src]
    assert frames[0].dtype == np.uint16
    assert len(np.unique(frames[0][32, :, 1])) > 150, "10-bit levels, not the 8-bit frame's ~60"
    assert np.abs(frames[0].astype(int) - pictures[0]).mean() < 200          # 65535 scale: < 1 8-bit level
    assert "prores_ks" in DEEP_CODECS and "libx264" not in DEEP_CODECS
    with MovieWriter(tmp_path / "deep.mov", 25, 256, 64, codec="prores_ks") as writer:
        for pic in frames:
            writer.write(pic)
    with open_media(tmp_path / "deep.mov") as src:
        again = next(iter(src)).pixels
    assert again.dtype == np.uint16 and len(np.unique(again[32, :, 1])) > 150
    assert np.abs(again.astype(int) - frames[0]).mean() < 100
    with MovieWriter(tmp_path / "hevc.mp4", 25, 256, 64, codec="libx265", deep=True) as writer:
        assert writer.deep                  # HEVC in its 10-bit form for a 10-bit source (a phone's HDR video)
        for pic in frames:
            writer.write(pic)
    with open_media(tmp_path / "hevc.mp4") as src:
        hevc = next(iter(src)).pixels
    assert hevc.dtype == np.uint16 and len(np.unique(hevc[32, :, 1])) > 150
    with MovieWriter(tmp_path / "eight.mp4", 25, 256, 64) as writer:
        writer.write(frames[0])
    with open_media(tmp_path / "eight.mp4") as src:
        eight = next(iter(src)).pixels
    assert eight.dtype == np.uint8 and np.abs(eight.astype(int) * 257 - frames[0]).mean() < 3 * 257


@pytest.mark.parametrize("ext,codec,audio", [(".webm", "libvpx-vp9", "opus"), (".mxf", "dnxhr_hq", "pcm_s16le"),
                                             (".mp4", "libx264", "aac")])
def test_the_source_audio_is_encoded_where_the_container_cannot_hold_it(tmp_path, ext, codec, audio):
    """d12's 44.1 kHz AAC cannot go into WebM (Opus/Vorbis only) or MXF (48 kHz PCM only) as it is: it is encoded to
    what the container holds, trimmed to the range as a copy is; elsewhere it is copied."""
    import av

    out = tmp_path / f"out{ext}"
    with MovieWriter(out, 25, 256, 144, codec=codec, audio_from=footage("d12.mp4"),
                     audio_range=(2.0, 2.8)) as writer:
        for i in range(20):             # (DNxHR takes no picture under 256x120)
            writer.write(_smooth_rgb(144, 256, i))
    with av.open(str(out)) as c:
        stream = c.streams.audio[0]
        rate = stream.codec_context.sample_rate
        seconds = sum(f.samples for f in c.decode(stream)) / rate
        assert stream.codec_context.name == audio
    assert rate == (44100 if ext == ".mp4" else 48000)
    assert 0.75 <= seconds <= 0.9, seconds


#: a phone's variable frame rate: mostly 25 frames/s, a long frame (low light) and a short one now and then (ms)
VFR_TIMES = [0, 40, 80, 160, 200, 233, 353, 393, 433, 493, 533, 573]


def test_a_variable_frame_rate_movie_says_when_each_frame_shows(tmp_path):
    """A phone's variable-frame-rate movie gives each frame's time; a movie at a constant rate gives none (its frame
    n is at n / fps); a writer given the times and the time base puts each frame where it was."""
    pictures = [_smooth_rgb(48, 64, i) for i in range(len(VFR_TIMES))]
    movie = vfr_movie(tmp_path / "phone.mp4", pictures, VFR_TIMES)
    with open_media(movie) as src:
        times = src.frame_times()
        base = src.time_base
        assert [round(float(times[i]) * 1000) for i in range(len(src))] == VFR_TIMES
    steady = tmp_path / "steady.mp4"
    with MovieWriter(steady, 25, 64, 48) as writer:
        for pic in pictures:
            writer.write(pic)
    with open_media(steady) as src:
        assert src.frame_times() is None
    out = tmp_path / "out.mp4"
    with MovieWriter(out, 25, 64, 48, time_base=base) as writer:
        for i, pic in enumerate(pictures[2:], 2):
            writer.write(pic, times[i] - times[2])
    with open_media(out) as src:
        again = src.frame_times()
        assert [round(float(again[i]) * 1000) for i in range(len(src))] == [t - 80 for t in VFR_TIMES[2:]]


def _two_track_master(path: Path) -> Path:
    """A .mov as a finishing house masters one: picture plus two 48 kHz PCM tracks (a stereo mix at 440 Hz, a mono
    stem at 1 kHz), 2 s."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        mix = out.add_stream("pcm_s24le", rate=48000, layout="stereo")
        stem = out.add_stream("pcm_s16le", rate=48000, layout="mono")
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(_smooth_rgb(48, 64, i), format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        t = np.arange(96000) / 48000
        for stream, hz, layout in ((mix, 440, "stereo"), (stem, 1000, "mono")):
            tone = (np.sin(2 * np.pi * hz * t) * 0.3 * 2 ** 31).astype(np.int32)
            channels = 2 if layout == "stereo" else 1      # packed: the channels' samples interleaved
            frame = av.AudioFrame.from_ndarray(np.repeat(tone, channels)[None], format="s32", layout=layout)
            frame.sample_rate, frame.pts = 48000, 0
            for packet in stream.encode(frame):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    return path


@pytest.mark.parametrize("ext,codec,audio", [(".mov", "prores_ks", ("pcm_s24le", "pcm_s16le")),
                                             (".mxf", "dnxhr_hq", ("pcm_s24le", "pcm_s16le")),
                                             (".webm", "libvpx-vp9", ("opus", "opus"))])
def test_every_audio_track_of_the_source_comes_along(tmp_path, ext, codec, audio):
    """A master's mix and its stem both come along (not only the first track), each trimmed to the range, each
    still its own sound; copied where the container holds them, encoded where not (WebM)."""
    import av

    master = _two_track_master(tmp_path / "master.mov")
    out = tmp_path / f"out{ext}"
    with MovieWriter(out, 25, 256, 144, codec=codec, audio_from=master, audio_range=(0.4, 1.2)) as writer:
        for i in range(20):
            writer.write(_smooth_rgb(144, 256, i))
    with av.open(str(out)) as c:
        tracks = list(c.streams.audio)
        assert tuple(t.codec_context.name for t in tracks) == audio
        assert [t.codec_context.channels for t in tracks] == [2, 1]
    for k, hz in enumerate((440, 1000)):
        with av.open(str(out)) as c:
            stream = c.streams.audio[k]
            channels = stream.codec_context.channels
            # the first channel: planar frames hold one row a channel, packed ones interleave them
            samples = np.concatenate([f.to_ndarray()[0] if f.format.is_planar else f.to_ndarray()[0, ::channels]
                                      for f in c.decode(stream)]).astype(np.float64)
        rate = stream.codec_context.sample_rate
        assert 0.78 <= len(samples) / rate <= 0.85, (k, len(samples) / rate)
        spectrum = np.abs(np.fft.rfft(samples - samples.mean()))
        assert abs(np.argmax(spectrum) * rate / len(samples) - hz) < 5, k


def test_a_movie_s_colour_tags_are_read_and_written_back(tmp_path):
    """A phone's BT.2020 HLG video says so (matrix, primaries, transfer as FFmpeg numbers them), its frames are its
    own RGB, and a writer given its tags encodes with its matrix and tags the same: the pictures read back equal
    (a BT.709 matrix on BT.2020 pictures would shift every colour); without tags a movie is BT.709."""
    import av

    originals = [_smooth_rgb(48, 64, i) for i in range(3)]
    hlg = encoded_movie(tmp_path / "hlg.mp4", originals, colour=(9, 9, 18))
    with open_media(hlg) as src:
        assert src.colour == (9, 9, 18)
        frames = [f.pixels for f in src]
    for frame, original in zip(frames, originals):
        assert np.abs(frame.astype(int) - original).mean() < 4.0
    out = tmp_path / "out.mp4"
    with MovieWriter(out, 25, 64, 48, colour=(9, 9, 18)) as writer:
        for frame in frames:
            writer.write(frame)
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_primaries, cc.color_trc) == (9, 9, 18)
    with open_media(out) as src:
        assert np.abs(next(iter(src)).pixels.astype(int) - frames[0]).mean() < 4.0
    with MovieWriter(tmp_path / "plain.mp4", 25, 64, 48) as writer:
        writer.write(frames[0])
    with open_media(tmp_path / "plain.mp4") as src:
        assert src.colour == (1, 1, 1)
    with open_media(footage("d12.mp4"), "0") as src:
        assert src.colour == (6, 6, 1)                  # SD-style BT.601 matrix and primaries, BT.709 transfer
    # a clip that names its primaries and transfer but no matrix (2: unspecified) keeps them: it was tagged BT.709
    # throughout, an HLG picture then shown with the wrong transfer
    unnamed = encoded_movie(tmp_path / "unnamed.mp4", originals, colour=(2, 9, 18))
    with open_media(unnamed) as src:
        assert src.colour == (2, 9, 18)
        presentation = src.presentation()
        first = next(iter(src)).pixels
    with MovieWriter(tmp_path / "unnamed-out.mp4", 25, 64, 48, **presentation.writer_options()) as writer:
        writer.write(first)
    with av.open(str(tmp_path / "unnamed-out.mp4")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_primaries, cc.color_trc) == (1, 9, 18)
    with open_media(tmp_path / "unnamed-out.mp4") as src:
        assert np.abs(next(iter(src)).pixels.astype(int) - first).mean() < 4.0


def test_a_few_frames_of_hevc_in_mp4_and_mov_are_always_written(tmp_path):
    """A movie of a few HEVC frames in MP4/MOV is written every time (FFmpeg's MP4 muxer failed now and then at the
    end of 2-3 frames with B-frames: 7-15 times in 20), with every frame's picture."""
    frames = [np.repeat(_smooth_rgb(48, 64, i), 4, axis=0).repeat(4, axis=1) for i in range(3)]
    for k in range(12):
        out = tmp_path / f"few{k}{('.mp4', '.mov')[k % 2]}"
        with MovieWriter(out, 25, 256, 192, codec="libx265") as writer:
            for pic in frames[:2 + k % 2]:
                writer.write(pic)
        with open_media(out) as src:
            got = [f.pixels for f in src]
        assert len(got) == 2 + k % 2
        assert all(np.abs(a.astype(int) - b).mean() < 4 for a, b in zip(got, frames))


def test_the_fingerprint_of_a_rotated_movie_says_so(tmp_path, monkeypatch):
    """A track, analysis or matte cached from a portrait movie read sideways (before frames were turned upright)
    is never taken for the upright one: the rotation is part of the movie's fingerprint (and only a rotated
    movie's fingerprint has it: every other source keeps its cached work)."""
    from ned_fx.media import paths, readers, source_fingerprint

    movie = phone_movie(tmp_path / "phone.mov", [_smooth_rgb(48, 64, i) for i in range(3)], 90, codec="png")
    turned = source_fingerprint(movie)
    monkeypatch.setattr(readers, "movie_rotation", lambda path: 0)
    assert source_fingerprint(movie) != turned
    monkeypatch.undo()
    assert source_fingerprint(movie) == turned
    assert paths.MOVIE_EXTENSIONS and readers.movie_rotation(movie) == 90


# ---- atomic writes -----------------------------------------------------------------------------------------------

def test_failed_image_write_leaves_nothing(tmp_path, monkeypatch):
    def full_disk(path, data):
        with open(path, "wb") as fh:
            fh.write(data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writers_module, "_write_bytes", full_disk)
    with pytest.raises(OutputWriteError, match="disk is full"):
        write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    assert _listing(tmp_path) == []


def test_failed_rewrite_keeps_the_existing_file(tmp_path, monkeypatch):
    target = tmp_path / "a.png"
    write_image(target, np.full((8, 8, 3), 7, np.uint8))
    before = target.read_bytes()

    def interrupted(path, data):
        with open(path, "wb") as fh:
            fh.write(data[:5])
        raise KeyboardInterrupt

    monkeypatch.setattr(writers_module, "_write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(target, np.full((8, 8, 3), 200, np.uint8))
    assert _listing(tmp_path) == ["a.png"] and target.read_bytes() == before


def test_failed_exr_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "a.exr"
    write_image(target, np.ones((4, 4, 3), np.float16))
    before = target.read_bytes()

    def fail_replace(src, dst):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(writers_module.os, "replace", fail_replace)
    with pytest.raises(OutputWriteError, match="permission denied"):
        write_image(target, np.zeros((4, 4, 3), np.float16))
    assert _listing(tmp_path) == ["a.exr"] and target.read_bytes() == before


def test_failed_movie_write_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "m.mp4"
    original_encode = MovieWriter._encode
    calls = {"n": 0}

    def failing_encode(self, arr, time=None):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        original_encode(self, arr)

    monkeypatch.setattr(MovieWriter, "_encode", failing_encode)
    with pytest.raises(OutputWriteError, match="disk is full"):
        with MovieWriter(out, 25, 32, 32) as writer:
            for i in range(10):
                writer.write(_smooth_rgb(32, 32, i))
    assert _listing(tmp_path) == []


def test_exception_in_movie_block_keeps_existing_output(tmp_path):
    out = tmp_path / "m.mp4"
    with MovieWriter(out, 25, 32, 32) as writer:
        writer.write(_smooth_rgb(32, 32))
    before = out.read_bytes()
    with pytest.raises(RuntimeError, match="user code"):
        with MovieWriter(out, 25, 32, 32) as writer:
            writer.write(_smooth_rgb(32, 32, 3))
            raise RuntimeError("user code failed")
    assert _listing(tmp_path) == ["m.mp4"] and out.read_bytes() == before
    with pytest.raises(OutputWriteError, match="no frames"):
        with MovieWriter(out, 25, 32, 32):
            pass
    assert _listing(tmp_path) == ["m.mp4"] and out.read_bytes() == before


def test_abandoned_movie_writer_removes_its_temporary_file(tmp_path):
    import gc
    writer = MovieWriter(tmp_path / "m.mp4", 25, 32, 32, options={"tune": "zerolatency"})  # packets at once
    for i in range(3):
        writer.write(_smooth_rgb(32, 32, i))
    assert len(_listing(tmp_path)) == 1 and _listing(tmp_path)[0].startswith(".m.mp4.")
    assert _listing(tmp_path)[0].endswith(".tmp.mp4")
    del writer
    gc.collect()
    assert _listing(tmp_path) == []


def test_ensure_not_input(tmp_path):
    src = tmp_path / "in.mp4"
    src.write_bytes(b"x")
    with pytest.raises(InvalidParameterError, match="overwrite"):
        ensure_not_input(tmp_path / "." / "in.mp4", [src])
    with pytest.raises(InvalidParameterError):
        ensure_not_input(tmp_path / "plate.1001.exr", [tmp_path / "plate.####.exr"])
    with pytest.raises(InvalidParameterError):
        ensure_not_input(tmp_path / "plate.%04d.exr", [tmp_path / "plate.####.exr"])
    ensure_not_input(tmp_path / "out.mp4", [src, tmp_path / "plate.####.exr"])
    ensure_not_input(tmp_path / "comp.####.exr", [tmp_path / "plate.####.exr"])


def test_import_is_cheap():
    code = ("import sys, ned_fx.media; heavy = [m for m in ('torch', 'cv2', 'av', 'OpenEXR', 'tifffile') "
            "if m in sys.modules]; print(','.join(heavy))")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env,
                            check=True)
    assert result.stdout.strip() == ""


def test_movie_writer_copies_and_trims_the_source_audio(tmp_path):
    """An edit of frames 10-49 of a 25 fps clip keeps 1.6 s of the source's audio, starting at 0."""
    import av

    from ned_fx.media import MovieWriter, open_media, to_display_rgb8

    clip = FOOTAGE / "d12.mp4"
    if not clip.is_file():
        pytest.skip("shared footage is not here")
    out = tmp_path / "cut.mp4"
    with open_media(clip) as src:
        assert src.has_audio
        with MovieWriter(out, src.frame_rate, src.width, src.height, audio_from=clip, audio_range=(0.4, 2.0)) as w:
            for frame in src:
                if 10 <= frame.number < 50:
                    w.write(to_display_rgb8(frame))
    with av.open(str(out)) as c:
        video = c.streams.video[0]
        audio = c.streams.audio[0]
        assert video.frames == 40
        assert abs(float(audio.duration * audio.time_base) - 1.6) < 0.05
        assert audio.codec_context.name == "aac"
    with open_media(out) as back:
        assert back.has_audio and len(back) == 40


def test_one_swscale_context_for_a_run_of_frames_converts_as_a_fresh_one_does():
    """The reader keeps one swscale context for the frames of one pass over a movie; whatever it converted before
    (another size, matrix, range or conversion), each frame comes out as a context of its own makes it."""
    import av
    from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

    from conftest import footage
    from ned_fx.media.readers import _rgb_from_video_frame

    frames = []
    for name in ("d12.mp4", "d3.mp4"):          # BT.601 tagged / untagged (-> 601 at 512²), both limited range
        with av.open(str(footage(name))) as c:
            for i, f in enumerate(c.decode(c.streams.video[0])):
                frames.append(f)
                if i == 1:
                    break
    frames.append(frames[0].reformat(width=200, height=120))           # another size
    frames.append(frames[1].reformat(format="yuvj444p"))                # full range, no subsampling
    accurate = Interpolation.FAST_BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
    kept = VideoReformatter()
    for conversion in ("exact", "ffmpeg", "exact"):
        for f in frames + frames[::-1]:
            got = _rgb_from_video_frame(f, conversion, kept)
            if conversion == "ffmpeg":
                want = f.to_ndarray(format="rgb24", interpolation=Interpolation.BICUBIC)
            else:
                full = f.format.name.startswith("yuvj")
                want = f.to_ndarray(format="rgb24", src_colorspace=Colorspace.ITU601, dst_colorspace=Colorspace.ITU601,
                                    src_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
                                    dst_color_range=ColorRange.JPEG, interpolation=accurate)
            assert got.shape == (f.height, f.width, 3) and np.array_equal(got, want), (conversion, f)
            assert np.array_equal(_rgb_from_video_frame(f, conversion), got)          # a fresh context


_FORK_WHILE_READING = """
import subprocess, sys, threading
from ned_fx.media import open_media

reading, stop = threading.Event(), threading.Event()


def read():
    with open_media(sys.argv[1], "0-40") as src:
        for _ in src:
            reading.set()
            if stop.wait(0.02):
                break


worker = threading.Thread(target=read)
worker.start()
assert reading.wait(30)
for _ in range(3):                  # preexec_fn: subprocess's fork runs Python in the child, as ned-fx batch's does
    run = subprocess.run([sys.executable, "-c", "print('started')"], capture_output=True, text=True,
                         preexec_fn=lambda: None)
    assert run.stdout.strip() == "started", run.stderr
stop.set()
worker.join()
print("ok")
"""


def test_a_process_forked_while_a_movie_is_read_in_another_thread_starts():
    """A daemon or a render worker is forked while another thread reads a movie (a batch's private daemon restarted
    mid-shot): the reader's swscale context must not be freed in the child (freeing it there deadlocked in swscale's
    slice-thread teardown when it was kept in thread-local storage), so the child's program starts at once."""
    import os
    import signal

    from conftest import footage

    proc = subprocess.Popen([sys.executable, "-c", _FORK_WHILE_READING, str(footage("d12.mp4"))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("a process forked while a movie was being read never started (deadlocked in the fork's child)")
    assert proc.returncode == 0 and out.strip() == "ok", err[-2000:]
