"""``ned-fx gallery``: a labelled contact sheet of edited faces (a still: emotions x intensities beside the source;
a clip: frames before/after each emotion), written atomically, saying it shows edited faces."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import footage
from ned_fx.cli import main

TILE = 96
GAP = 4
STRIP = max(18, TILE // 9)
CAPTION = max(24, TILE // 7)


def _read(path) -> np.ndarray:
    from ned_fx.media import open_media, to_display_rgb8

    with open_media(path) as src:
        return to_display_rgb8(next(iter(src)))


def _tiles(sheet: np.ndarray, rows: int, cols: int) -> list[list[np.ndarray]]:
    """The face crops (label strips left out) of a sheet laid out by ned_fx.commands.gallery.grid."""
    out = []
    for i in range(rows):
        y = CAPTION + GAP + i * (TILE + STRIP + GAP) + STRIP
        out.append([sheet[y:y + TILE, GAP + j * (TILE + GAP): GAP + j * (TILE + GAP) + TILE].astype(int)
                    for j in range(cols)])
    return out


def test_still_gallery_grid(tmp_path, capsys):
    from ned_fx.media.readers import read_provenance

    out = tmp_path / "sheet.png"
    assert main(["gallery", str(footage("people_0.png")), "-o", str(out), "--emotions", "happy,surprised",
                 "--intensities", "0.5,1.5", "--tile", str(TILE), "-q"]) == 0
    sheet = _read(out)
    rows, cols = 2, 3                                   # source, 0.5, 1.5
    assert sheet.shape == (CAPTION + rows * (TILE + STRIP) + (rows + 1) * GAP, cols * TILE + (cols + 1) * GAP, 3)
    tiles = _tiles(sheet, rows, cols)
    assert np.array_equal(tiles[0][0], tiles[1][0])     # every row starts from the same source crop
    for row in tiles:
        source, weak, strong = row
        d_weak, d_strong = np.abs(weak - source).mean(), np.abs(strong - source).mean()
        assert d_weak > 0.8, d_weak                     # edited: the tile differs from the source
        assert d_strong > d_weak, (d_weak, d_strong)    # more intensity, more change
    assert np.abs(tiles[0][2] - tiles[1][2]).mean() > 1.0      # happy and surprised are different faces
    record = read_provenance(out)
    assert record is not None and record.edited and "happy" in (record.emotion or "")
    assert list(tmp_path.iterdir()) == [out]            # written atomically: no temporary left


def test_clip_gallery_runs(tmp_path):
    out = tmp_path / "clip.png"
    assert main(["gallery", str(footage("WDA_AlexandriaOcasioCortez_000.mp4")), "-o", str(out), "--frames", "2",
                 "--range", "0-19", "--emotions", "happy", "--tile", str(TILE), "-q"]) == 0
    sheet = _read(out)
    rows, cols = 2, 2                                   # source row, happy row; 2 frames
    assert sheet.shape == (CAPTION + rows * (TILE + STRIP) + (rows + 1) * GAP, cols * TILE + (cols + 1) * GAP, 3)
    tiles = _tiles(sheet, rows, cols)
    assert np.abs(tiles[0][0] - tiles[0][1]).mean() > 0.5     # two different frames
    for j in range(cols):
        assert np.abs(tiles[1][j] - tiles[0][j]).mean() > 1.5  # each frame edited


@pytest.mark.parametrize("argv, message", [
    (["--emotions", "smug"], "unknown emotion"),
    (["--intensities", "a,b"], "--intensities"),
    (["--astronaut"], "not both"),
])
def test_gallery_refuses_bad_options(tmp_path, capsys, argv, message):
    code = main(["gallery", str(footage("people_0.png")), "-o", str(tmp_path / "s.png"), *argv])
    assert code != 0 and message in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()


def test_a_tile_leaving_the_picture_is_filled_flat():
    """A face at the frame's edge (d3.mp4's chin sits on its bottom row): the tile's part outside the picture is a
    flat grey, not the edge's pixels repeated into streaks that read as a smear under the chin."""
    from ned_fx.commands.gallery import OUTSIDE, tile

    rgb = np.random.default_rng(0).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    out = tile(rgb, (20, 40, 80), 80, "x")              # the box's last 20 rows lie below the picture
    crop = out[-80:]
    assert np.array_equal(crop[:60], rgb[40:100, 20:100])
    assert (crop[60:] == OUTSIDE).all()
