"""An interlaced movie (broadcast 1080i, an XDCAM or H.264 field-coded plate) is seen as interlaced: its field order
is read, the edit says that each frame was edited whole, and the movie written keeps the field order (tagged; H.264
coded in fields, top or bottom first), so a host conforms it into an interlaced timeline as it did the source. A
progressive plate gets no such tag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import decode_rgb, footage
from ned_fx.cli import main
from ned_fx.errors import InvalidParameterError
from ned_fx.media import MovieWriter, open_media


def _interlaced(path: Path, order: str, frames: int = 6) -> Path:
    """The first frames of a shared clip, written as a field-coded H.264 movie with the given field order."""
    rgb = decode_rgb("d12.mp4")[0][:frames]
    with MovieWriter(path, 25, rgb.shape[2], rgb.shape[1], field_order=order) as w:
        for pic in rgb:
            w.write(pic)
    return path


def _coded(path: Path) -> tuple[int, bool]:
    import av

    with av.open(str(path)) as c:
        order = int(c.streams.video[0].codec_context.field_order or 0)
        first = next(c.decode(video=0))
        return order, bool(first.interlaced_frame)


@pytest.mark.parametrize("order, code", [("tt", 2), ("bb", 3)])
def test_an_interlaced_plate_is_read_as_such_and_its_edit_keeps_the_field_order(tmp_path, capsys, order, code):
    src = _interlaced(tmp_path / f"plate_{order}.mp4", order)
    assert _coded(src) == (code, True), "the writer did not code the test plate in fields"
    with open_media(src) as s:
        assert s.field_order == order and s.presentation().field_order == order
    out = tmp_path / "edit.mov"
    assert main(["edit", str(src), "-o", str(out), "--emotion", "happy", "--no-audit-log"]) == 0
    said = capsys.readouterr().out
    assert "interlaced" in said and ("top field first" if order == "tt" else "bottom field first") in said
    assert _coded(out) == (code, True)
    with open_media(out) as s:
        assert s.field_order == order


def test_a_progressive_plate_stays_progressive_and_a_wrong_field_order_is_refused(tmp_path, capsys):
    with open_media(footage("d12.mp4")) as s:
        assert s.field_order is None and s.presentation().field_order is None
    out = tmp_path / "edit.mp4"
    assert main(["edit", str(footage("d12.mp4")), "--frames", "0-2", "-o", str(out), "--emotion", "sad",
                 "--no-audit-log"]) == 0
    assert "interlaced" not in capsys.readouterr().out
    order, interlaced = _coded(out)
    assert order in (0, 1) and not interlaced
    with pytest.raises(InvalidParameterError):
        MovieWriter(tmp_path / "x.mp4", 25, 64, 64, field_order="top")
    assert not (tmp_path / "x.mp4").exists()
