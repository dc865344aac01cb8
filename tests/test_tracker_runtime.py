"""Which runtime runs the tracker (issue 18): `--runtime auto|torch|onnxruntime` on the CLI sets
TrackerConfig.runtime, and a track cached after auto fell back from onnxruntime to PyTorch is keyed by PyTorch
(the runtime that ran), so it is found again by the next run that falls back, and never passed off as an
onnxruntime track."""

from __future__ import annotations

import pytest

from conftest import decode_rgb, footage
from ned_fx.cli import build_parser, main, tracker_config
from ned_fx.media import source_fingerprint, write_image
from ned_fx.tracking import TrackerConfig
from ned_fx.tracking import cache as track_cache
from ned_fx.tracking.runtime import ort_available, runtime_name
from ned_fx.tracking.tracker import FaceTracker


def _plate(tmp_path, n=3):
    (tmp_path / "src").mkdir()
    for i, pic in enumerate(decode_rgb("d12.mp4")[0][:n]):
        write_image(tmp_path / "src" / f"s.{i + 1:04d}.png", pic)
    return tmp_path / "src" / "s.####.png"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("NED_FX_CACHE", str(folder))
    runs = []
    real = FaceTracker.iter_track

    def counted(self, frames):
        runs.append(self.runtime)
        return real(self, frames)

    monkeypatch.setattr(FaceTracker, "iter_track", counted)
    return folder, runs


def _edit(src, out, *extra):
    assert main(["edit", str(src), "-o", str(out), "--emotion", "happy", "-q", "--no-audit-log", "--device", "cpu",
                 *extra]) == 0


def test_runtime_option_maps_to_the_tracker_config(capsys):
    parser = build_parser()
    for value in ("auto", "torch", "onnxruntime"):
        args = parser.parse_args(["edit", "in.mp4", "-o", "o.mov", "--emotion", "happy", "--runtime", value])
        assert tracker_config(args).runtime == value
    args = parser.parse_args(["edit", "in.mp4", "-o", "o.mov", "--emotion", "happy"])
    assert tracker_config(args).runtime == TrackerConfig().runtime == "auto"
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["edit", "in.mp4", "-o", "o.mov", "--emotion", "happy", "--runtime", "tensorrt"])
    assert e.value.code == 2 and "onnxruntime" in capsys.readouterr().err


def test_edit_runs_the_runtime_asked_for(tmp_path, cache):
    if not ort_available():
        pytest.skip("onnxruntime is not installed here")
    folder, runs = cache
    src = _plate(tmp_path)
    _edit(src, tmp_path / "t" / "o.####.png", "--runtime", "torch")
    _edit(src, tmp_path / "x" / "o.####.png", "--runtime", "onnxruntime")
    assert runs == ["torch", "onnxruntime"], "each run tracked with the runtime it was given"
    fp = source_fingerprint(src)
    for runtime in ("torch", "onnxruntime"):        # each track under its own runtime's key
        key = track_cache.track_key(fp, None, None, TrackerConfig(device="cpu", runtime=runtime), runtime)
        assert track_cache.load_track(key, folder) is not None, runtime
    _edit(src, tmp_path / "t2" / "o.####.png", "--runtime", "torch")
    assert len(runs) == 2, "the torch track is found again"


def test_a_track_made_after_a_fallback_is_keyed_by_what_ran(tmp_path, cache, monkeypatch):
    from ned_fx.tracking import ort

    folder, runs = cache
    if runtime_name(TrackerConfig(device="cpu")) != "onnxruntime":
        pytest.skip("auto does not pick onnxruntime here")

    def broken(**kwargs):
        raise RuntimeError("no usable export")             # e.g. a read-only cache: auto falls back to PyTorch

    monkeypatch.setattr(ort, "load_ort_engines", broken)
    src = _plate(tmp_path)
    _edit(src, tmp_path / "a" / "o.####.png")
    assert runs == ["torch"]
    fp, config = source_fingerprint(src), TrackerConfig(device="cpu")
    assert track_cache.load_track(track_cache.track_key(fp, None, None, config, "torch"), folder) is not None
    assert track_cache.load_track(track_cache.track_key(fp, None, None, config, "onnxruntime"), folder) is None
    _edit(src, tmp_path / "b" / "o.####.png")                 # falls back again: finds the PyTorch track
    assert runs == ["torch"]
    monkeypatch.undo()                                        # onnxruntime works again: its own track
    monkeypatch.setenv("NED_FX_CACHE", str(folder))
    monkeypatch.setattr(FaceTracker, "iter_track", _counting(runs))
    _edit(src, tmp_path / "c" / "o.####.png")
    assert runs == ["torch", "onnxruntime"]


def _counting(runs):
    real = FaceTracker.iter_track

    def counted(self, frames):
        runs.append(self.runtime)
        return real(self, frames)

    return counted
