"""`ned-fx cache status|clear`: the analysis cache (face tracks, fits, models, mattes of real people) can be seen and
cleared; clear removes only what ned_fx writes there, never follows a link, keeps the ONNX exports unless --all and a
running writer's temporary file, and an edit after a clear analyses the shot again."""

from __future__ import annotations

import os
import time

import pytest

from conftest import footage
from ned_fx.cli import main
from ned_fx.commands import cache as C


def _edit(out, emotion="happy"):
    assert main(["edit", str(footage("d12.mp4")), "--frames", "0-3", "-o", str(out), "--emotion", emotion, "-q",
                 "--no-audit-log"]) == 0


def test_status_lists_what_an_edit_cached_and_clear_removes_only_ned_fx_files(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "cache"
    monkeypatch.setenv("NED_FX_CACHE", str(folder))
    assert main(["cache", "status"]) == 0
    assert "(none yet)" in capsys.readouterr().out
    _edit(tmp_path / "a.####.png")
    table = C.status(folder)
    for kind in ("track", "fit", "models", "mattes", "mesh"):
        assert table[kind]["files"] == 1 and table[kind]["bytes"] > 0, (kind, table[kind])
    assert main(["cache", "status"]) == 0
    out = capsys.readouterr().out
    assert str(folder) in out and "track" in out and "fit" in out
    # what clear must leave: a file of the user's own, a link to a file outside, an ONNX export, a running
    # writer's temporary file; what it must take: a dead writer's temporary file
    mine = folder / "notes.txt"
    mine.write_text("keep me")
    outside = tmp_path / "outside.npz"
    outside.write_bytes(b"not ned_fx's")
    (folder / f"track-{'0' * 32}.npz").symlink_to(outside)
    (folder / "onnx").mkdir(exist_ok=True)
    export = folder / "onnx" / "face_mesh-0123.onnx"
    export.write_bytes(b"onnx")
    fresh_tmp = folder / ".track-x.npz.123.tmp"
    fresh_tmp.write_bytes(b"being written")
    dead_tmp = folder / ".fit-y.npz.456.tmp"
    dead_tmp.write_bytes(b"left behind")
    old = time.time() - 2 * C.STALE_TMP
    os.utime(dead_tmp, (old, old))
    assert main(["cache", "clear", "--older-than", "1"]) == 0          # all written just now: none is that old
    assert "removed 1 file(s)" in capsys.readouterr().out                 # (the dead writer's file only)
    assert not dead_tmp.exists() and C.status(folder)["track"]["files"] == 1
    assert main(["cache", "clear"]) == 0
    assert "removed 5 file(s)" in capsys.readouterr().out
    after = C.status(folder)
    assert all(after[k]["files"] == 0 for k in C.FOOTAGE), after
    assert mine.read_text() == "keep me" and outside.read_bytes() == b"not ned_fx's"
    assert (folder / f"track-{'0' * 32}.npz").is_symlink() and export.exists() and fresh_tmp.exists()
    assert main(["cache", "clear", "--all"]) == 0
    assert not export.exists() and mine.exists()
    # the next edit analyses the shot again and caches it again
    _edit(tmp_path / "b.####.png", "sad")
    assert C.status(folder)["track"]["files"] == 1


def test_older_than_counts_from_the_last_edit_that_used_a_file(tmp_path, monkeypatch, capsys):
    """An analysis an edit still reads is not "old": reading it from the cache marks it used, so `clear --older-than`
    takes what no edit has touched for that long and keeps the shot being worked on."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NED_FX_CACHE", str(folder))
    _edit(tmp_path / "a.####.png")
    month = time.time() - 30 * 86400
    for path in folder.glob("*.npz"):
        os.utime(path, (month, month))
    _edit(tmp_path / "b.####.png", "sad")            # reads the track, its fit, the models, the mattes and the mesh
    assert main(["cache", "clear", "--older-than", "7"]) == 0
    assert "removed 0 file(s)" in capsys.readouterr().out
    assert all(C.status(folder)[k]["files"] == 1 for k in ("track", "fit", "models", "mattes", "mesh"))
    for path in folder.glob("*.npz"):
        os.utime(path, (month, month))
    assert main(["cache", "clear", "--older-than", "7"]) == 0
    assert "removed 5 file(s) unused for 7 days" in capsys.readouterr().out


def test_clear_refuses_what_is_not_the_users_cache_folder(tmp_path, capsys):
    assert C.clear(tmp_path / "none") == (0, 0)
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert main(["cache", "clear", "--cache", str(a_file)]) != 0
    assert "not a folder" in capsys.readouterr().err
    assert main(["cache", "clear", "--older-than", "-1", "--cache", str(tmp_path)]) != 0
    assert main(["cache", "status", "--all"]) != 0
    if os.geteuid() != 0:
        pytest.skip("another user's folder needs root to make")
    other = tmp_path / "other"
    other.mkdir()
    (other / "track-x.npz").write_bytes(b"theirs")
    os.chown(other, 65534, 65534)
    assert main(["cache", "clear", "--cache", str(other)]) != 0
    assert "another user" in capsys.readouterr().err and (other / "track-x.npz").exists()


def test_the_cache_stays_under_its_limit_least_recently_used_first(tmp_path, monkeypatch, capsys):
    """A TD's cache grows with every shot: past ``$NED_FX_CACHE_LIMIT_GB`` each edit removes the analyses no edit
    has used for longest, never the running edit's own (a shot bigger than the limit keeps its analysis), never a
    file that is not ned_fx's; 0 is no limit; a malformed limit is refused by `ned-fx cache status`."""
    import numpy as np

    folder = tmp_path / "cache"
    monkeypatch.setenv("NED_FX_CACHE", str(folder))
    monkeypatch.setenv("NED_FX_CACHE_LIMIT_GB", "0")              # no limit while the scene is set up
    _edit(tmp_path / "a.####.png")
    shot = {p.name for p in folder.glob("*.npz")}
    assert len(shot) == 5                            # track, fit, models, mattes, mesh
    # three older shots' analyses (1 MB each; the oldest first) and a file of the user's own
    days = {"track-" + "1" * 32 + ".npz": 30, "models-" + "2" * 32 + ".npz": 20, "fit-" + "3" * 32 + ".npz": 10}
    for name, age in days.items():
        (folder / name).write_bytes(np.random.default_rng(age).bytes(1_000_000))
        t = time.time() - age * 86400
        os.utime(folder / name, (t, t))
    mine = folder / "notes.bin"
    mine.write_bytes(b"x" * 3_000_000)
    t = time.time() - 60 * 86400
    for p in folder.glob("*.npz"):
        if p.name in shot:
            os.utime(p, (t - 86400, t - 86400))           # the shot itself is older still: the next edit reads it
    own = sum(p.stat().st_size for p in folder.glob("*.npz") if p.name in shot)
    # room for the shot and 1.5 of the older analyses: the two least recently used go
    monkeypatch.setenv("NED_FX_CACHE_LIMIT_GB", str((own + 1_500_000) / 1e9))
    _edit(tmp_path / "b.####.png", "sad")
    left = {p.name for p in folder.glob("*.npz")}
    assert left == shot | {"fit-" + "3" * 32 + ".npz"}, sorted(left)
    assert mine.stat().st_size == 3_000_000
    # a limit below the shot's own analysis keeps the shot (and takes every other analysis)
    monkeypatch.setenv("NED_FX_CACHE_LIMIT_GB", "0.000001")
    _edit(tmp_path / "c.####.png", "surprised")
    assert {p.name for p in folder.glob("*.npz")} == shot
    assert main(["cache", "status"]) == 0
    assert "limit: 1e-06 GB" in capsys.readouterr().out
    monkeypatch.setenv("NED_FX_CACHE_LIMIT_GB", "lots")
    assert main(["cache", "status"]) != 0
    assert "NED_FX_CACHE_LIMIT_GB" in capsys.readouterr().err
