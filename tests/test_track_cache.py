"""Analyse once on the CLI: `ned-fx edit` caches the shot's track by content, so another edit of the same plate
(another emotion) skips tracking; `--no-cache` opts out; a changed source misses; the files are private."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import decode_rgb, footage
from ned_fx.cli import main
from ned_fx.media import read_image, write_image
from ned_fx.tracking import cache as track_cache
from ned_fx.tracking import TrackerConfig
from ned_fx.tracking.tracker import FaceTracker


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder for the test, and a count of the tracking runs."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NED_FX_CACHE", str(folder))
    runs = []
    real = FaceTracker.iter_track

    def counted(self, frames):
        runs.append(1)
        return real(self, frames)

    monkeypatch.setattr(FaceTracker, "iter_track", counted)
    return folder, runs


def _edit(src, out, emotion, *extra):
    assert main(["edit", str(src), "-o", str(out), "--emotion", emotion, "-q", "--no-audit-log", *extra]) == 0


def _plate(tmp_path, n=4):
    rgb = decode_rgb("d12.mp4")[0][:n]
    (tmp_path / "src").mkdir()
    for i, pic in enumerate(rgb):
        write_image(tmp_path / "src" / f"s.{i + 1:04d}.png", pic)
    return tmp_path / "src" / "s.####.png"


def test_second_edit_reads_the_cache_not_the_tracker(tmp_path, cache, capsys):
    folder, runs = cache
    clip = footage("d12.mp4")
    old = os.umask(0o022)           # a permissive umask: the cache stays private anyway
    try:
        _edit(clip, tmp_path / "a.####.png", "happy", "--frames", "0-5")
    finally:
        os.umask(old)
    assert len(runs) == 1
    files = list(folder.glob("track-*.npz"))
    assert len(files) == 1
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert "read from the analysis cache" not in capsys.readouterr().out
    _edit(clip, tmp_path / "b.####.png", "sad", "--frames", "0-5")
    assert len(runs) == 1, "the second edit of the same plate tracked again"
    assert "the shot's track was read from the analysis cache" in capsys.readouterr().out   # the user is told
    _edit(clip, tmp_path / "c.####.png", "happy", "--frames", "0-5")
    assert len(runs) == 1
    # the cached track renders exactly what the first (tracked) edit rendered
    a, b, c = ([read_image(tmp_path / f"{x}.{n:04d}.png").pixels for n in range(6)] for x in "abc")
    assert all(np.array_equal(x, y) for x, y in zip(a, c))
    assert not all(np.array_equal(x, y) for x, y in zip(a, b)), "the second emotion was not rendered"
    # other frames or another face are another key
    _edit(clip, tmp_path / "d.####.png", "sad", "--frames", "0-4")
    assert len(runs) == 2 and len(list(folder.glob("track-*.npz"))) == 2


def _refusing(*heavy: str) -> str:
    """A Python program that refuses to import the modules ``heavy`` (and their sub-modules), then runs the CLI."""
    return f"""
import sys


class _Refuse:
    def find_spec(self, name, path=None, target=None):
        for heavy in {heavy!r}:
            if name == heavy or name.startswith(heavy + "."):
                raise ImportError(f"the edit imported {{heavy}}")


sys.meta_path.insert(0, _Refuse())
from ned_fx.cli import main
sys.exit(main(sys.argv[1:]))
"""


#: a second edit of a cached shot needs none of these
_NO_TORCH = _refusing("torch", "scipy.ndimage", "scipy.spatial")


def test_a_second_edit_of_a_cached_shot_never_imports_torch(tmp_path, cache):
    """Importing torch costs a `ned-fx edit` process ~1.7 s (about a quarter of a second edit of a 100-frame shot):
    with the shot's track and fit cached, nothing else needs it (the plan's rule runs in numpy, the per-frame field
    too, the tracker's runtime is told without it). Nor scipy.ndimage and scipy.spatial (~0.4 s together: the
    filters are numpy's, :mod:`ned_fx.filters`; the render mesh is cached). A second edit in a Python that refuses
    all three succeeds and writes exactly what the same edit writes in a process that has them loaded."""
    clip = footage("d12.mp4")
    _edit(clip, tmp_path / "a.####.png", "happy", "--frames", "0-5")
    run = subprocess.run([sys.executable, "-c", _NO_TORCH, "edit", str(clip), "-o", str(tmp_path / "b.####.png"),
                          "--emotion", "surprised", "--frames", "0-5", "-q", "--no-audit-log"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    import torch  # noqa: F401  (this process has torch, as a process with PyTorch engines, a daemon, a GPU has)

    assert "scipy.spatial" in sys.modules               # ... and this (its Delaunay made the first edit's mesh)
    _edit(clip, tmp_path / "c.####.png", "surprised", "--frames", "0-5")
    a, b, c = ([read_image(tmp_path / f"{x}.{n:04d}.png").pixels for n in range(6)] for x in "abc")
    assert all(np.array_equal(x, y) for x, y in zip(b, c))
    assert not all(np.array_equal(x, y) for x, y in zip(a, b)), "the second emotion was not rendered"


def test_a_first_edit_on_the_cpu_never_imports_torch(tmp_path, cache):
    """The onnxruntime tracker (the CPU default) runs on numpy arrays from frame to landmarks, and nothing else a
    first edit does needs torch (~2 s of its process; ``ned-fx demo`` 4.1 -> 1.7 s). A first edit (nothing cached)
    in a Python that refuses torch succeeds and writes exactly what the same edit writes in a process with torch
    loaded (the exports of the nets made before, as the first use of the tracker makes them)."""
    from ned_fx.tracking import TrackerConfig
    from ned_fx.tracking.runtime import runtime_name

    if runtime_name(TrackerConfig()) != "onnxruntime":
        pytest.skip("the CPU default is not onnxruntime here")
    folder, runs = cache
    clip = footage("d3.mp4")
    import torch  # noqa: F401  (the edit here runs in a process that has torch)

    _edit(clip, tmp_path / "a.####.png", "surprised", "--frames", "0-4")
    assert len(runs) == 1
    env = dict(os.environ, NED_FX_CACHE=str(tmp_path / "empty"))                    # nothing cached there
    run = subprocess.run([sys.executable, "-c", _refusing("torch"), "edit", str(clip), "-o",
                          str(tmp_path / "b.####.png"), "--emotion", "surprised", "--frames", "0-4", "-q",
                          "--no-audit-log"], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert list((tmp_path / "empty").glob("track-*.npz")), "the edit did not track"
    for n in range(5):
        a, b = (read_image(tmp_path / f"{x}.{n:04d}.png").pixels for x in "ab")
        assert np.array_equal(a, b), n


def test_no_cache_neither_reads_nor_writes(tmp_path, cache):
    folder, runs = cache
    src = _plate(tmp_path)
    _edit(src, tmp_path / "o1" / "e.####.png", "happy", "--no-cache")
    assert len(runs) == 1 and not folder.exists()
    _edit(src, tmp_path / "o2" / "e.####.png", "happy")
    assert len(runs) == 2 and len(list(folder.glob("track-*.npz"))) == 1
    for a, b in zip(sorted((tmp_path / "o1").glob("e.*.png")), sorted((tmp_path / "o2").glob("e.*.png")), strict=True):
        assert np.array_equal(read_image(a).pixels, read_image(b).pixels), f"{a.name}: --no-cache rendered other pixels"
    _edit(src, tmp_path / "o3" / "e.####.png", "sad", "--no-cache")
    assert len(runs) == 3, "--no-cache read the cache"


def test_a_changed_source_misses_the_cache(tmp_path, cache):
    folder, runs = cache
    src = _plate(tmp_path)
    _edit(src, tmp_path / "o1" / "e.####.png", "happy")
    _edit(src, tmp_path / "o2" / "e.####.png", "surprised")
    assert len(runs) == 1
    frame = tmp_path / "src" / "s.0003.png"
    pic = read_image(frame).pixels.copy()
    pic[:40] = 255 - pic[:40]
    write_image(frame, pic)
    _edit(src, tmp_path / "o3" / "e.####.png", "surprised")
    assert len(runs) == 2, "a changed frame reused the old track"
    assert len(list(folder.glob("track-*.npz"))) == 2


def test_cache_files_are_private_whatever_the_umask_and_bad_files_are_misses(tmp_path, our_track_d12):
    folder = tmp_path / "c"
    old = os.umask(0o000)
    try:
        path = track_cache.store_track("k" * 32, our_track_d12, folder)
    finally:
        os.umask(old)
    assert path is not None and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    got = track_cache.load_track("k" * 32, folder)
    assert got is not None and np.allclose(got.landmarks, our_track_d12.landmarks, atol=1e-3, equal_nan=True)
    assert track_cache.load_track("x" * 32, folder) is None
    path.write_bytes(b"not a zip")
    assert track_cache.load_track("k" * 32, folder) is None
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert track_cache.store_track("k" * 32, our_track_d12, blocked / "cache") is None   # cannot write: a miss


def test_the_key_follows_every_input():
    from ned_fx.tracking import TrackerConfig

    base = track_cache.track_key("fp", "0-9", None, TrackerConfig(), "torch")
    assert base == track_cache.track_key("fp", "0-9", None, TrackerConfig(), "torch")
    for other in (track_cache.track_key("fp2", "0-9", None, TrackerConfig(), "torch"),
                  track_cache.track_key("fp", "0-8", None, TrackerConfig(), "torch"),
                  track_cache.track_key("fp", "0-9", 1, TrackerConfig(), "torch"),
                  track_cache.track_key("fp", "0-9", None, TrackerConfig(smoothing=0.5), "torch"),
                  track_cache.track_key("fp", "0-9", None, TrackerConfig(), "onnxruntime")):
        assert other != base


def test_a_changed_tracker_or_decoder_misses_the_cache(tmp_path, cache, monkeypatch):
    """The key holds the tracking and media packages' code (a patched install, or a newer commit, keeps the version
    string): a track made by one tracker is never read by a changed one (``ned-fx edit``; a daemon session's key
    holds the same digest). The fit, mesh and model caches already hashed their code."""
    import shutil

    import ned_fx

    # the digest follows every source file of both packages
    root = tmp_path / "pkg"
    for package in track_cache.TRACK_CODE:
        shutil.copytree(Path(ned_fx.__file__).parent / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    base = track_cache.code_digest(root)
    assert base == track_cache.code_digest(Path(ned_fx.__file__).parent) == track_cache.code_digest()
    for package, name in (("tracking", "geometry.py"), ("media", "readers.py")):
        f = root / package / name
        text = f.read_text()
        f.write_text(text + "\n# changed\n")
        assert track_cache.code_digest(root) != base, name
        f.write_text(text)
    assert track_cache.code_digest(root) == base
    # a changed tracker's edit tracks again instead of reading the old track
    folder, runs = cache
    src = _plate(tmp_path)
    _edit(src, tmp_path / "o1" / "e.####.png", "happy")
    _edit(src, tmp_path / "o2" / "e.####.png", "surprised")
    assert len(runs) == 1
    monkeypatch.setattr(track_cache, "_own_code_digest", lambda: "another tracker")
    _edit(src, tmp_path / "o3" / "e.####.png", "surprised")
    assert len(runs) == 2, "a changed tracker read the old tracker's track"
    assert len(list(folder.glob("track-*.npz"))) == 2


def test_an_edit_and_a_daemon_session_share_the_shot_s_track(tmp_path, cache):
    """`ned-fx edit` and the daemon key a track alike (``tracking.cache.track_key``), in the same folder: a shot an
    edit tracked opens in a host without tracking again, and an edit of a shot a host opened reads the session's
    track (the daemon had a key of its own: each tracked the same plate once, and its key left out the OCIO config
    the decoding follows)."""
    from ned_fx.daemon.sessions import Session
    from ned_fx.pipeline import EditInstruction

    folder, runs = cache
    still = footage("d8.jpg")
    _edit(still, tmp_path / "happy.png", "happy")
    assert len(runs) == 1 and len(list(folder.glob("track-*.npz"))) == 1

    def opened(path, emotion, tracker=None):
        session = Session(path, None, None, EditInstruction(emotion=emotion), False, cache=folder)
        session.analyse(tracker)
        assert session.renderer is not None
        return session

    opened(still, "sad")
    assert len(runs) == 1, "the daemon tracked a shot an edit had tracked"
    assert len(list(folder.glob("track-*.npz"))) == 1
    other = footage("people_0.png")
    # (with the warm tracker `ned-fx serve` loads by default)
    opened(other, "happy", FaceTracker(TrackerConfig(device="auto")))
    assert len(runs) == 2 and len(list(folder.glob("track-*.npz"))) == 2
    _edit(other, tmp_path / "sad.png", "sad")
    assert len(runs) == 2, "an edit tracked a shot a daemon session had tracked"
    for path in folder.glob("track-*.npz"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.fixture
def our_track_d12():
    from ned_fx.pipeline import track_media

    return track_media(footage("d12.mp4"), frames="0-2")


def test_the_render_mesh_is_stored_and_read_back_exactly(tmp_path, monkeypatch):
    """The shot's render mesh (a Delaunay of its mean shape) is stored in the cache folder, 0600, and read back as
    the same triangles; another shape is another file; a corrupt file is built again; without the cache nothing is
    stored."""
    from ned_fx import rendering
    from ned_fx.pipeline import shot_mesh, track_media

    folder = tmp_path / "c"
    shape = track_cache.as_cached(track_media(footage("d3.mp4"), frames="0-4")).mean_shape
    built = []
    real = rendering.build_render_mesh
    monkeypatch.setattr(rendering, "build_render_mesh", lambda *a: built.append(1) or real(*a))
    fresh = shot_mesh(shape, cache=True, folder=folder)
    files = list(folder.glob("mesh-*.npz"))
    assert len(built) == 1 and len(files) == 1 and stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    again = shot_mesh(shape, cache=True, folder=folder)
    assert len(built) == 1, "the second edit triangulated again"
    want = real(shape)
    for mesh in (fresh, again):
        assert np.array_equal(mesh.triangles, want.triangles) and mesh.triangles.dtype == want.triangles.dtype
        assert np.array_equal(mesh.outer_edges, want.outer_edges) and mesh.holes == want.holes
    moved = shape.copy()
    moved[0, 0] += 0.5
    shot_mesh(moved, cache=True, folder=folder)
    assert len(built) == 2 and len(list(folder.glob("mesh-*.npz"))) == 2
    files[0].write_bytes(b"not a zip")
    assert np.array_equal(shot_mesh(shape, cache=True, folder=folder).triangles, want.triangles) and len(built) == 3
    shot_mesh(shape, folder=tmp_path / "none")
    assert len(built) == 4 and not (tmp_path / "none").exists()


def test_the_shots_fit_is_made_once_and_read_back_bit_for_bit(tmp_path, monkeypatch):
    """The track's expression fit (its neutral, AU basis and per-frame activations: what planning every edit of the
    shot shares) is stored beside the cached track, 0600, and read back exactly (the plan from it equals the plan
    fitted afresh, array for array; its head-frame shapes remade from the track); another manipulator config or
    neutral frame is another fit; a corrupt fit file is fitted again; a key that is not given stores nothing."""
    from dataclasses import fields

    from ned_fx import manipulation as manip
    from ned_fx.pipeline import EditInstruction, plan_edit, track_fit, track_media

    folder = tmp_path / "c"
    track = track_cache.as_cached(track_media(footage("d3.mp4"), frames="0-9"))
    fitted = []
    real = manip.fit_track
    monkeypatch.setattr(manip, "fit_track", lambda *a, **k: fitted.append(1) or real(*a, **k))
    fresh = track_fit(track, None, None, track_key="k" * 32, folder=folder)
    files = list(folder.glob("fit-*.npz"))
    assert len(fitted) == 1 and len(files) == 1 and stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    again = track_fit(track, None, None, track_key="k" * 32, folder=folder)
    assert len(fitted) == 1, "the second edit fitted the track again"
    for name, a in fresh.to_arrays().items():
        assert np.array_equal(a, again.to_arrays()[name], equal_nan=a.dtype.kind == "f"), name
    assert again.model.basis.names == fresh.model.basis.names and again.neutral_source == fresh.neutral_source
    # the head-frame shapes are remade from the track, not stored (they were 95 % of the file)
    assert np.array_equal(again.shapes, fresh.shapes, equal_nan=True)
    with np.load(files[0]) as stored:
        assert "fit_shapes" not in stored.files and "fit_activations" in stored.files
    for emotion in ("happy", "surprised"):
        one = plan_edit(track, EditInstruction(emotion=emotion))
        two = plan_edit(track, EditInstruction(emotion=emotion), fit=again)
        for f in fields(one):
            a, b = getattr(one, f.name), getattr(two, f.name)
            if isinstance(a, np.ndarray):
                assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), (emotion, f.name)
    fitted.clear()                  # (each plan above without a fit fitted the track itself)
    track_fit(track, manip.ManipulatorConfig(offset_smoothing=0.3), None, track_key="k" * 32, folder=folder)
    track_fit(track, None, 3, track_key="k" * 32, folder=folder)
    assert len(fitted) == 2 and len(list(folder.glob("fit-*.npz"))) == 3
    files[0].write_bytes(b"not a zip")
    assert np.array_equal(track_fit(track, None, None, track_key="k" * 32, folder=folder).activations,
                          fresh.activations, equal_nan=True)
    assert len(fitted) == 3
    track_fit(track, None, None, folder=tmp_path / "none")
    assert len(fitted) == 4 and not (tmp_path / "none").exists()
