"""``ned-fx edit`` resume keyed on the source's content, and the output's free space checked before any work
(issue 15): a plate re-delivered under the same names is another source, so no frame rendered from the old one is
kept, even after a run that started over and stopped; an output that clearly cannot fit is refused before any
tracking, and a disk that fills anyway leaves no half-written file."""

from __future__ import annotations

import json
import os
import shutil
from collections import namedtuple

import numpy as np
import pytest

from conftest import decode_rgb
from ned_fx.cli import main
from ned_fx.errors import OutputWriteError
from ned_fx.media import read_image, write_image
from ned_fx.pipeline import EditInstruction, check_free_space, edit_media, estimated_output_bytes

os.environ.setdefault("OMP_NUM_THREADS", "1")
HAPPY = EditInstruction(emotion="happy")


@pytest.fixture(scope="module")
def pictures():
    rgb = decode_rgb("d12.mp4")[0]
    return rgb[:4], rgb[20:24]          # a first delivery, and frames of another moment of the same shot


def _deliver(folder, frames) -> None:
    """Write a sequence s.0001.png… as a plate delivery does (same names each time)."""
    for i, pic in enumerate(frames):
        write_image(folder / f"s.{i + 1:04d}.png", pic)


def test_resume_after_the_source_changed_renders_every_frame_again(tmp_path, capsys, pictures):
    first, second = pictures
    _deliver(tmp_path, first)
    args = ["edit", str(tmp_path / "s.####.png"), "-o", str(tmp_path / "o" / "e.####.png"), "-q", "--emotion",
            "happy"]
    assert main(args) == 0
    old = {n: read_image(tmp_path / "o" / f"e.{n:04d}.png").pixels for n in (1, 2, 3, 4)}
    manifest = json.loads((tmp_path / "o" / ".e.####.png.ned_fx.json").read_text())
    assert len(manifest["fingerprint"]) == 64, "the manifest beside the output names the source's content"
    (tmp_path / "o" / "e.0003.png").unlink()               # a crash before frame 3 ...
    _deliver(tmp_path, second)                             # ... and the plate is re-delivered under the same names
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "kept" not in out and "the source changed" in out and "edited 4 of 4" in out
    for n in (1, 2, 4):
        new = read_image(tmp_path / "o" / f"e.{n:04d}.png").pixels
        assert not np.array_equal(new, old[n]), f"frame {n} is rendered from the new plate"
        assert np.mean(np.abs(new.astype(int) - second[n - 1].astype(int))) < np.mean(
            np.abs(new.astype(int) - first[n - 1].astype(int))), f"frame {n} looks like the new delivery"
    capsys.readouterr()
    assert main(args) == 0                                  # the same source again: everything is kept
    assert "kept 4 frame(s)" in capsys.readouterr().out


def test_frames_of_another_face_content_setting_are_not_kept(tmp_path, capsys, pictures):
    """A second run with other face-content options (a shutter angle, a sub-stage off) is another edit: the frames
    the first wrote are rendered again, not kept; the same options again keep them."""
    first, _ = pictures
    _deliver(tmp_path, first)
    args = ["edit", str(tmp_path / "s.####.png"), "-o", str(tmp_path / "o" / "e.####.png"), "-q", "--emotion",
            "happy"]
    assert main(args) == 0
    for extra in (["--shutter-angle", "90"], ["--no-content", "skin"], []):
        capsys.readouterr()
        assert main(args + extra) == 0
        out = capsys.readouterr().out
        assert "kept" not in out and "another edit" in out and "edited 4 of 4" in out, (extra, out)
    capsys.readouterr()
    assert main(args) == 0
    assert "kept 4 frame(s)" in capsys.readouterr().out


def test_a_restart_that_stopped_keeps_no_frame_of_the_old_source(tmp_path, monkeypatch, pictures):
    """The run for the new delivery stops after its first frame (a full disk): the next run keeps that frame and
    renders the rest again, though the old source's frames are still on disk under the same names."""
    import ned_fx.media.writers as writers

    first, second = pictures
    _deliver(tmp_path, first)
    seq, out = tmp_path / "s.####.png", tmp_path / "o" / "e.####.png"
    assert edit_media(seq, out, HAPPY).edited == (1, 2, 3, 4)
    _deliver(tmp_path, second)
    real, calls = writers._write_bytes, {"n": 0}

    def flaky(path, data):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(writers, "_write_bytes", flaky)
    with pytest.raises(OutputWriteError, match="disk is full"):
        edit_media(seq, out, HAPPY)
    monkeypatch.setattr(writers, "_write_bytes", real)
    again = edit_media(seq, out, HAPPY)
    assert again.resumed == (1,) and again.edited == (2, 3, 4), (again.resumed, again.edited)
    assert not list((tmp_path / "o").glob("*.tmp*")), "no temporary files are left"


def test_an_output_that_clearly_cannot_fit_is_refused_before_any_work(tmp_path, monkeypatch, capsys, pictures):
    import ned_fx.pipeline as pipeline

    _deliver(tmp_path, pictures[0])
    seq = tmp_path / "s.####.png"
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, 10 << 30, 4096))
    tracked = []
    monkeypatch.setattr(pipeline, "_analyse", lambda *a, **k: tracked.append(1) or pytest.fail("tracked"))
    for target in ("o/e.####.exr", "o/e.mp4"):
        with pytest.raises(OutputWriteError, match="not enough free space") as e:
            edit_media(seq, tmp_path / target, HAPPY)
        assert "4 frame(s) of 512x512" in str(e.value) and "nothing was written" in str(e.value)
        assert not (tmp_path / "o").exists(), "no folder, no manifest, no frame"
    assert main(["edit", str(seq), "-o", str(tmp_path / "o" / "e.mp4"), "-q", "--emotion", "happy"]) == 6
    assert "ned-fx: error: not enough free space" in capsys.readouterr().err
    assert not tracked


def test_frames_already_written_are_not_counted(tmp_path, monkeypatch, pictures):
    """Frames of a sequence output already on disk are overwritten in place: only the others need new space."""
    _deliver(tmp_path, pictures[0])
    seq, out = tmp_path / "s.####.png", tmp_path / "o" / "e.####.exr"
    one = estimated_output_bytes(out, "sequence", 512, 512, 1)
    assert one > 0 and estimated_output_bytes(out, "movie", 512, 512, 1) < one
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, 10 << 30, 2 * one))
    with pytest.raises(OutputWriteError, match="4 frame"):
        check_free_space(seq, out, "sequence", None, 4)
    (tmp_path / "o").mkdir()
    for n in (1, 2, 3):
        (tmp_path / "o" / f"e.{n:04d}.exr").write_bytes(b"x")
    check_free_space(seq, out, "sequence", None, 4)        # one frame to write: it fits
    movie = tmp_path / "o" / "m.mp4"
    check_free_space(seq, movie, "movie", None, 4)         # a movie is far smaller per frame
    with pytest.raises(OutputWriteError, match="1000 frame"):
        check_free_space(seq, movie, "movie", None, 1000)


def test_a_disk_that_fills_during_a_movie_leaves_no_half_written_file(tmp_path, monkeypatch, pictures):
    from ned_fx.media.writers import MovieWriter

    _deliver(tmp_path, pictures[0])
    real, calls = MovieWriter.write, {"n": 0}

    def full(self, rgb, time=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real(self, rgb, time)

    monkeypatch.setattr(MovieWriter, "write", full)
    with pytest.raises((OutputWriteError, OSError)):
        edit_media(tmp_path / "s.####.png", tmp_path / "o" / "e.mp4", HAPPY)
    assert calls["n"] == 3
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir()), "nothing half-written is left"


def test_the_summary_splits_the_render_into_warp_and_says_each_stage_s_own_cpu(tmp_path, pictures):
    """bench/edit.py's accounting: the warp's share of "render" is named (``content_seconds["warp"]``), and the CPU
    of the threads that ran render / composite / encode is given beside their wall seconds (a stage's own thread
    cannot spend more CPU than the wall time it took)."""
    _deliver(tmp_path, pictures[0][:2])
    summary = edit_media(tmp_path / "s.####.png", tmp_path / "o" / "e.####.png", HAPPY)
    assert summary.edited == (1, 2)
    assert 0 < summary.content_seconds["warp"] <= summary.seconds["render"]
    assert set(summary.cpu_seconds) == {"render", "composite", "encode"}
    for stage, cpu in summary.cpu_seconds.items():
        assert 0 < cpu <= summary.seconds[stage] + 0.005, (stage, cpu, summary.seconds[stage])
