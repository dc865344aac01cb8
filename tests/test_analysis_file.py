"""Shot analysis files: a shot analysed once (``ned-fx edit --analysis F --analysis-only``) and rendered in chunks
by separate processes (the farm's layout) gives exactly the frames of one whole run; an analysis made for another
source, instruction or range is refused with a message saying what differs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import decode_rgb, footage
from ned_fx.errors import InvalidParameterError, UnreadableMediaError
from ned_fx.media import find_sequence_frames, read_image
from ned_fx.pipeline import EditInstruction, edit_media, read_analysis

HAPPY = EditInstruction(emotion="happy", intensity=1.0)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("analysis")
    analysis = tmp / "d12.analysis.npz"
    summary = edit_media(footage("d12.mp4"), tmp / "unused.####.png", HAPPY, frames="0-9", analysis=analysis,
                         analysis_only=True)
    assert summary.frames == 0 and summary.analysis == str(analysis)
    assert not list(tmp.glob("unused.*.png"))          # analysis only: nothing rendered
    return tmp, analysis


def _frames(pattern) -> dict[int, np.ndarray]:
    return {n: read_image(p).pixels for n, p in find_sequence_frames(pattern).items()}


def test_chunks_render_exactly_what_one_run_renders(analysed):
    tmp, analysis = analysed
    shot = read_analysis(analysis)
    assert list(shot.track.frame_numbers) == list(range(10)) and shot.key["instruction"]["emotion"] == "happy"
    whole = edit_media(footage("d12.mp4"), tmp / "whole.####.png", HAPPY, analysis=analysis)
    assert whole.frames == 10 and len(whole.edited) == 10
    for chunk in ("0-3", "4-7", "8-9"):
        s = edit_media(footage("d12.mp4"), tmp / "chunks.####.png", HAPPY, frames=chunk, analysis=analysis)
        assert s.frames == len(s.edited) == (2 if chunk == "8-9" else 4)
    a, b = _frames(tmp / "whole.####.png"), _frames(tmp / "chunks.####.png")
    assert sorted(a) == sorted(b) == list(range(10))
    for n in a:
        np.testing.assert_array_equal(a[n], b[n])
    # and the edit did something: the face changed
    src = decode_rgb("d12.mp4")[0][5].astype(int)
    assert np.abs(a[5][..., :3].astype(int) - src).max() > 20


def test_an_edit_without_an_analysis_file_renders_what_one_with_it_renders(analysed):
    """The analysis file stores its arrays at its own precision; an edit without ``--analysis`` renders from the
    same values (not the full-precision ones in memory), so plain edits, farm chunks and the daemon agree to the
    bit (they differed by a code value at a few pixels per frame)."""
    tmp, _ = analysed
    plain = edit_media(footage("d12.mp4"), tmp / "plain.####.png", HAPPY, frames="0-9")
    assert plain.frames == 10
    a, b = _frames(tmp / "whole.####.png"), _frames(tmp / "plain.####.png")
    assert sorted(a) == sorted(b) == list(range(10))
    for n in a:
        np.testing.assert_array_equal(a[n], b[n])


def test_a_chunk_takes_the_render_mesh_from_the_analysis_file(analysed, tmp_path):
    """The analysis file holds the shot's render mesh (keyed by the mean shape and the triangulation's code): a farm
    chunk in a fresh process neither triangulates nor imports scipy.spatial (no mesh cache there), and renders the
    frames the whole run rendered; a file whose stored mesh another code made is read without it (built on use)."""
    import subprocess
    import sys

    from conftest import REPO
    from ned_fx.npzfile import read_npz, write_npz
    from ned_fx.pipeline import mesh_key
    from ned_fx.rendering import build_render_mesh

    tmp, analysis = analysed
    shot = read_analysis(analysis)
    assert shot.mesh is not None
    np.testing.assert_array_equal(shot.mesh.triangles, build_render_mesh(shot.track.mean_shape).triangles)
    program = ("import sys; from pathlib import Path; from ned_fx.pipeline import EditInstruction, edit_media; "
               "edit_media(sys.argv[1], sys.argv[2], EditInstruction(emotion='happy', intensity=1.0), frames='4-5', "
               "analysis=sys.argv[3]); print('scipy.spatial' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", program, str(footage("d12.mp4")), str(tmp_path / "c.####.png"),
                          str(analysis)], cwd=REPO, capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "NED_FX_CACHE": str(tmp_path / "empty-cache")})
    assert out.stdout.split()[-1] == "False", out.stdout
    whole, chunk = _frames(tmp / "whole.####.png"), _frames(tmp_path / "c.####.png")
    assert sorted(chunk) == [4, 5]
    for n in chunk:
        np.testing.assert_array_equal(chunk[n], whole[n])
    # a mesh another rendering code stored is not taken (its key differs): the analysis reads without it
    arrays = read_npz(analysis, (), "analysis")
    assert str(arrays["mesh.key"]) == mesh_key(shot.track.mean_shape)
    arrays["mesh.key"] = np.array("0" * 32)
    other = write_npz(tmp_path / "other.analysis.npz", arrays)
    assert read_analysis(other).mesh is None


def test_analysis_for_another_instruction_or_range_is_refused(analysed):
    tmp, analysis = analysed
    with pytest.raises(InvalidParameterError, match="another edit instruction"):
        edit_media(footage("d12.mp4"), tmp / "sad.####.png", EditInstruction(emotion="sad"), frames="0-3",
                   analysis=analysis)
    with pytest.raises(InvalidParameterError, match="another face id"):
        edit_media(footage("d12.mp4"), tmp / "f1.####.png", HAPPY, frames="0-3", face_id=1, analysis=analysis)
    with pytest.raises(InvalidParameterError, match="not all in the analysed shot"):
        edit_media(footage("d12.mp4"), tmp / "late.####.png", HAPPY, frames="8-12", analysis=analysis)
    assert not list(tmp.glob("sad.*")) and not list(tmp.glob("late.*"))


def test_analysis_of_a_changed_source_is_refused(tmp_path):
    clip = tmp_path / "clip.mp4"
    shutil.copyfile(footage("d12.mp4"), clip)
    analysis = tmp_path / "clip.analysis.npz"
    edit_media(clip, tmp_path / "o.####.png", HAPPY, frames="0-2", analysis=analysis, analysis_only=True)
    with open(clip, "r+b") as fh:        # same size, different bytes
        fh.seek(100)
        fh.write(b"\0\0\0\0")
    with pytest.raises(InvalidParameterError, match="another source"):
        edit_media(clip, tmp_path / "o.####.png", HAPPY, frames="0-2", analysis=analysis)


def test_bad_analysis_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(UnreadableMediaError):
        read_analysis(bad)
    with pytest.raises(InvalidParameterError, match="needs the analysis file"):
        edit_media(footage("d12.mp4"), tmp_path / "o.####.png", HAPPY, analysis_only=True)
    with pytest.raises(InvalidParameterError, match=r"must end in \.npz"):
        edit_media(footage("d12.mp4"), tmp_path / "o.####.png", HAPPY, analysis=tmp_path / "a.json")
