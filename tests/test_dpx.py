"""DPX frames (issue 4: "DPX if a maintained library offers it" — OpenImageIO does): 10-bit sequences read and
written at their own depth with their header fields, code values kept exactly outside the face, and an edited
DPX sequence of a real clip keeping frame numbers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import decode_rgb, footage
from ned_fx.errors import UnreadableMediaError, UnsupportedFormatError
from ned_fx.media import Frame, find_sequence_frames, open_media, read_image, write_image
from ned_fx.pipeline import EditInstruction, edit_media


def _ten_bit(rgb8: np.ndarray) -> np.ndarray:
    """A real picture as 10-bit code values in OpenImageIO's 16-bit scaling (bit replication)."""
    code = np.round(rgb8.astype(np.float64) / 255 * 1023).astype(np.uint16)
    return (code << 6) | (code >> 4)


def test_ten_bit_round_trip_keeps_code_values_and_header(tmp_path):
    pic = _ten_bit(decode_rgb("d19.jpg")[0][0])
    meta = {"oiio:BitsPerSample": 10, "dpx:Transfer": "Printing density", "smpte:TimeCode": "01:00:00:00"}
    write_image(tmp_path / "a.dpx", replace(Frame.from_array(pic), metadata=meta))
    back = read_image(tmp_path / "a.dpx")
    assert back.pixels.dtype == np.uint16 and back.channels == ("R", "G", "B")
    np.testing.assert_array_equal(back.pixels, pic)
    assert back.metadata["oiio:BitsPerSample"] == 10 and back.metadata["dpx:Transfer"] == "Printing density"
    assert not list(tmp_path.glob(".*tmp*"))               # atomic: no temporary left


def test_bad_dpx_input_and_output(tmp_path):
    (tmp_path / "bad.dpx").write_bytes(b"SDPX" + b"\0" * 100)
    with pytest.raises(UnreadableMediaError):
        read_image(tmp_path / "bad.dpx")
    with pytest.raises(UnsupportedFormatError, match="EXR"):
        write_image(tmp_path / "f.dpx", Frame.from_array(np.zeros((8, 8, 3), np.float32)))
    assert not (tmp_path / "f.dpx").exists()


def test_edit_a_dpx_sequence(tmp_path):
    rgb, _ = decode_rgb("d12.mp4")
    src = tmp_path / "plate"
    src.mkdir()
    for i in range(4):
        write_image(src / f"sh.{1001 + i:04d}.dpx", replace(Frame.from_array(_ten_bit(rgb[i])),
                                                                    metadata={"oiio:BitsPerSample": 10}))
    summary = edit_media(src / "sh.####.dpx", tmp_path / "out" / "sh_happy.####.dpx",
                         EditInstruction(emotion="happy"))
    assert len(summary.edited) == 4
    out = find_sequence_frames(tmp_path / "out" / "sh_happy.####.dpx")
    assert sorted(out) == [1001, 1002, 1003, 1004]
    first = read_image(out[1001])
    source = read_image(src / "sh.1001.dpx")
    assert first.pixels.dtype == np.uint16 and first.metadata["oiio:BitsPerSample"] == 10
    diff = np.abs(first.pixels.astype(int) - source.pixels).max(axis=2)
    ys, xs = np.nonzero(diff)
    assert len(ys) > 500                                   # the face changed
    # everything outside the changed face region is the source's code values exactly
    h, w = diff.shape
    assert ys.min() > 0.1 * h and ys.max() < 0.95 * h and xs.min() > 0.1 * w and xs.max() < 0.9 * w
    with open_media(tmp_path / "out" / "sh_happy.####.dpx") as seq:
        assert list(seq.frame_numbers) == [1001, 1002, 1003, 1004]
    from ned_fx.media.readers import read_provenance

    record = read_provenance(out[1002])                    # every DPX frame says it was edited
    assert record is not None and record.edited and record.source_frame == 1002 and record.emotion == "happy"
