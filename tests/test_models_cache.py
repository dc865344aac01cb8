"""Analyse once, appearance included (issue 18): with the track cache, a shot's edit-independent appearance models
(mouth bank, eye model, glasses model) are cached beside its track, so a second edit of the same plate with another
emotion decodes the plate once (the render) instead of twice; the mouth's plan follows each edit's target; the
files are private; --no-cache, another frame range or another source miss."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from conftest import footage
from ned_fx import appearance
from ned_fx.cli import main
from ned_fx.media import read_image


@pytest.fixture
def builds(tmp_path, monkeypatch):
    """A private cache folder, and a count of the appearance passes (decodes of the plate for the models)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NED_FX_CACHE", str(folder))
    runs = []
    real = appearance._build_models

    def counted(*args, **kwargs):
        runs.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(appearance, "_build_models", counted)
    return folder, runs


def _edit(src, out, emotion, *extra):
    assert main(["edit", str(src), "-o", str(out), "--emotion", emotion, "-q", "--no-audit-log", *extra]) == 0


def _frames(path, n):
    return [read_image(str(path).replace("####", f"{i:04d}")).pixels for i in range(n)]


def test_a_second_edit_reads_the_models_and_renders_what_a_fresh_edit_renders(tmp_path, builds):
    folder, runs = builds
    clip = footage("d12.mp4")                   # glasses: every model is built (glasses, mouth bank, eyes)
    old = os.umask(0o022)
    try:
        _edit(clip, tmp_path / "a.####.png", "happy", "--frames", "0-5")
    finally:
        os.umask(old)
    assert len(runs) == 1
    files = list(folder.glob("models-*.npz"))
    assert len(files) == 1 and stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    with np.load(files[0]) as data:
        assert any(k.startswith("mouth.") for k in data.files) and any(k.startswith("glasses.") for k in data.files)
        assert not any(k.startswith("mouth_plan.") for k in data.files), "the plan follows the edit: not cached"
    _edit(clip, tmp_path / "b.####.png", "surprised", "--frames", "0-5")
    assert len(runs) == 1, "the second edit of the same plate built the appearance models again"
    # tracked and built afresh (an empty cache): the same pixels as the edit that read the models
    os.environ["NED_FX_CACHE"] = str(tmp_path / "fresh")
    _edit(clip, tmp_path / "c.####.png", "surprised", "--frames", "0-5")
    os.environ["NED_FX_CACHE"] = str(folder)
    assert len(runs) == 2
    b, c = _frames(tmp_path / "b.####.png", 6), _frames(tmp_path / "c.####.png", 6)
    assert all(np.array_equal(x, y) for x, y in zip(b, c))
    a = _frames(tmp_path / "a.####.png", 6)
    assert not all(np.array_equal(x, y) for x, y in zip(a, b)), "the second emotion was not rendered"
    # another range is another key
    _edit(clip, tmp_path / "d.####.png", "sad", "--frames", "0-4")
    assert len(runs) == 3 and len(list(folder.glob("models-*.npz"))) == 2


def test_bad_cache_files_are_misses_and_the_key_follows_the_source(tmp_path, builds):
    folder, runs = builds
    clip = footage("d3.mp4")
    _edit(clip, tmp_path / "a.####.png", "happy", "--frames", "0-3")
    files = list(folder.glob("models-*.npz"))
    assert len(runs) == 1 and len(files) == 1
    files[0].write_bytes(b"not a zip")
    _edit(clip, tmp_path / "b.####.png", "sad", "--frames", "0-3")
    assert len(runs) == 2, "a corrupt cache file was used"
    # the key covers the source's content and the sub-stages asked for
    from ned_fx.appearance import ContentConfig, _models_key

    class Edited:
        frame_numbers = np.arange(3)
        found = np.ones(3, bool)
        source_landmarks = np.zeros((3, 478, 3))

    base = _models_key(clip, Edited, "0-2", (), ContentConfig(), None)
    assert base == _models_key(clip, Edited, "0-2", (), ContentConfig(), None)
    moved = type("Moved", (Edited,), {"source_landmarks": np.full((3, 478, 3), 0.5)})
    for other in (_models_key(footage("d12.mp4"), Edited, "0-2", (), ContentConfig(), None),
                  _models_key(clip, Edited, "0-1", (), ContentConfig(), None),
                  _models_key(clip, moved, "0-2", (), ContentConfig(), None),
                  _models_key(clip, Edited, "0-2", (), ContentConfig(mouth=False), None),
                  _models_key(clip, Edited, "0-2", (footage("d8.jpg"),), ContentConfig(), None)):
        assert other != base
