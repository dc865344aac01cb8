"""Timecode from image-sequence sources (issue 20): an EXR's ``timeCode``/``reelName`` and a DPX's television-header
timecode reach every output the edit writes — a ProRes/DNxHR movie's timecode track (and reel), an EXR's
``timeCode``, a DPX's header — and a movie source's timecode reaches EXR/DPX headers, frame by frame.

The plates are made here from a few frames of a shared clip (never committed); each is analysed once.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

from conftest import footage
from ned_fx.errors import InvalidParameterError
from ned_fx.media import Frame, MovieWriter, open_media, read_image, write_image
from ned_fx.media.layers import LayerConfig
from ned_fx.media.timecode import (add_frames, carry_timecode, header_timecode, pack_timecode, timecode_fields,
                                   unpack_timecode)
from ned_fx.pipeline import EditInstruction, edit_media

os.environ.setdefault("OMP_NUM_THREADS", "1")
HAPPY = EditInstruction(emotion="happy", intensity=1.0)
START = "01:00:10:05"


def _d12(count: int, first: int = 40) -> list[np.ndarray]:
    with open_media(footage("d12.mp4"), f"{first}-{first + count - 1}") as src:
        return [f.pixels for f in src]


def _ten_bit(rgb8: np.ndarray) -> np.ndarray:
    code = np.round(rgb8.astype(np.float64) / 255 * 1023).astype(np.uint16)
    return (code << 6) | (code >> 4)


def test_packed_timecode_round_trips_and_refuses_junk():
    assert pack_timecode("01:02:03:04") == 0x01020304
    assert pack_timecode("23:59:59;29") == 0x23595969          # drop-frame: bit 6 of the frames byte
    for text in ("00:00:00:00", "10:00:00:00", "23:59:59;29", "07:08:09:23"):
        assert unpack_timecode(pack_timecode(text)) == text
    with pytest.raises(InvalidParameterError):
        unpack_timecode(0x0102030A)                              # a non-decimal digit
    with pytest.raises(InvalidParameterError):
        pack_timecode("1:00")
    # headers this reader does not understand are not carried (None), never an error mid-edit
    assert header_timecode({"smpte:TimeCode": "junk"}) == (None, None)
    assert header_timecode({"reelName": "A001"}) == (None, None), "a reel without a timecode is not carried"
    assert header_timecode({}) == (None, None)


def test_dpx_and_exr_headers_hold_each_others_timecode(tmp_path):
    pic = _ten_bit(_d12(1)[0])
    dpx = replace(Frame.from_array(pic), metadata={"oiio:BitsPerSample": 10, "smpte:TimeCode": "01:00:10;05"})
    write_image(tmp_path / "a.dpx", dpx)
    back = read_image(tmp_path / "a.dpx")
    assert back.metadata["smpte:TimeCode"] == "01:00:10;05" and back.metadata["oiio:BitsPerSample"] == 10
    # the DPX plate's timecode becomes an EXR's timeCode (and not a stray smpte:TimeCode attribute) ...
    write_image(tmp_path / "a.exr", replace(back, pixels=(back.pixels / 65535.0).astype(np.float16)))
    exr = read_image(tmp_path / "a.exr")
    tc = exr.metadata["timeCode"]
    assert (tc.hours, tc.minutes, tc.seconds, tc.frame, tc.dropFrame) == (1, 0, 10, 5, True)
    assert "smpte:TimeCode" not in exr.metadata
    assert header_timecode(exr.metadata) == ("01:00:10;05", None)
    # ... and an EXR's timeCode a DPX's header
    write_image(tmp_path / "b.dpx", replace(exr, pixels=pic, channel_dtypes=()))
    assert read_image(tmp_path / "b.dpx").metadata["smpte:TimeCode"] == "01:00:10;05"
    # the format's own field wins over the other's
    both = {"smpte:TimeCode": "02:00:00:00", **timecode_fields(".exr", "03:00:00:00", "R1")}
    assert header_timecode(carry_timecode(both, ".dpx"))[0] == "02:00:00:00"
    assert header_timecode(carry_timecode(both, ".exr")) == ("03:00:00:00", "R1")


@pytest.fixture(scope="module")
def exr_plate(tmp_path_factory):
    """A half-float EXR sequence 1001-1003 of d12 frames, each frame's header with its timecode and a reel."""
    folder = tmp_path_factory.mktemp("exr_tc")
    for i, rgb in enumerate(_d12(3)):
        lin = ((rgb / 255.0) ** 2.2).astype(np.float16)
        meta = timecode_fields(".exr", add_frames(START, i, 24), "A003C012")
        write_image(folder / f"in.{1001 + i}.exr", replace(Frame.from_array(lin, 1001 + i), metadata=meta))
    return folder / "in.####.exr", folder / "exr.analysis.npz"


def test_exr_sequence_timecode_reaches_movies_and_headers(exr_plate, tmp_path):
    seq, analysis = exr_plate
    # a patch movie and the matte movie beside it: the timecode track and reel of the plate's first frame
    patch = tmp_path / "patch.mov"
    edit_media(seq, patch, HAPPY, analysis=analysis, layers=LayerConfig(layer="patch", matte=True))
    for movie in (patch, tmp_path / "patch.matte.mov"):
        with open_media(movie) as m:
            assert (m.timecode, m.reel_name) == (START, "A003C012"), movie
    # finishing-house movies of part of the shot start at the first edited frame's own timecode
    for codec in ("prores_ks", "dnxhr_hqx"):
        out = tmp_path / f"{codec}.mov"
        summary = edit_media(seq, out, HAPPY, frames="1002-1003", analysis=analysis, layers=LayerConfig(codec=codec))
        assert summary.edited == (1002, 1003)
        with open_media(out) as m:
            assert (m.timecode, m.reel_name) == (add_frames(START, 1, 24), "A003C012"), codec
    # EXR outputs: every frame's header holds that frame's timecode and the reel
    edit_media(seq, tmp_path / "exr" / "o.####.exr", HAPPY, analysis=analysis)
    for i, n in enumerate((1001, 1002, 1003)):
        assert header_timecode(read_image(tmp_path / "exr" / f"o.{n}.exr").metadata) == \
            (add_frames(START, i, 24), "A003C012")


def test_dpx_sequence_timecode_reaches_movies_and_headers(tmp_path):
    src = tmp_path / "plate"
    src.mkdir()
    start = "00:59:59:24"                       # 25 fps: the next frame rolls over the hour
    for i, rgb in enumerate(_d12(2)):
        meta = {"oiio:BitsPerSample": 10, "smpte:TimeCode": add_frames(start, i, 25)}
        write_image(src / f"sh.{1001 + i}.dpx", replace(Frame.from_array(_ten_bit(rgb), 1001 + i), metadata=meta))
    seq, analysis = src / "sh.####.dpx", tmp_path / "dpx.analysis.npz"
    out = tmp_path / "sh.mov"
    edit_media(seq, out, HAPPY, analysis=analysis, layers=LayerConfig(codec="prores_ks"))
    with open_media(out) as m:
        assert m.timecode == start and m.reel_name is None and len(m) == 2
    edit_media(seq, tmp_path / "dpx" / "o.####.dpx", HAPPY, analysis=analysis)
    edit_media(seq, tmp_path / "exr" / "o.####.exr", HAPPY, analysis=analysis)
    for n, want in ((1001, start), (1002, "01:00:00:00")):
        assert read_image(tmp_path / "dpx" / f"o.{n}.dpx").metadata["smpte:TimeCode"] == want
        exr = read_image(tmp_path / "exr" / f"o.{n}.exr").metadata
        assert header_timecode(exr) == (want, None) and "smpte:TimeCode" not in exr


def test_movie_timecode_reaches_exr_and_dpx_headers_frame_by_frame(tmp_path):
    plate = tmp_path / "plate.mov"
    with MovieWriter(plate, 25, 512, 512, codec="prores_ks", timecode="10:00:00:00", reel_name="B002") as w:
        for rgb in _d12(5, first=20):
            w.write(rgb)
    analysis = tmp_path / "a.npz"
    edit_media(plate, tmp_path / "exr" / "o.####.exr", HAPPY, frames="2-4", analysis=analysis)
    edit_media(plate, tmp_path / "dpx" / "o.####.dpx", HAPPY, frames="2-4", analysis=analysis)
    for n in (2, 3, 4):
        want = f"10:00:00:{n:02d}"
        assert header_timecode(read_image(tmp_path / "exr" / f"o.{n:04d}.exr").metadata) == (want, "B002")
        assert read_image(tmp_path / "dpx" / f"o.{n:04d}.dpx").metadata["smpte:TimeCode"] == want
    # a PNG output has no header field for it and is written as before
    edit_media(plate, tmp_path / "png" / "o.####.png", HAPPY, frames="2", analysis=analysis)
    assert (tmp_path / "png" / "o.0002.png").is_file()
