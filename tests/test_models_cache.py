"""Analyse once, appearance included (issue 18): with the track cache, a shot's edit-independent appearance models
(mouth bank, eye model, glasses model) are cached beside its track, so a second edit of the same plate with another
emotion decodes the plate once (the render) instead of twice; the mouth's plan follows each edit's target; the
files are private; --no-cache, another frame range or another source miss. The occluder mattes are kept the same
way (MatteMemo): read back bit for bit wherever the face region's box is the same."""

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


def test_a_second_edit_reads_the_models_and_renders_what_a_fresh_edit_renders(tmp_path, builds, monkeypatch):
    folder, runs = builds
    from ned_fx.occlusion import OcclusionDetector

    # counted here, in this process: the render in this process's threads (the forked workers' edit stores the
    # same mattes and pixels: tests/test_forked.py)
    monkeypatch.setenv("NED_FX_RENDER_PROCESSES", "1")

    detections = []
    real_detect = OcclusionDetector.detect_in_shot

    def counted_detect(self, *args, **kwargs):
        detections.append(1)
        return real_detect(self, *args, **kwargs)

    monkeypatch.setattr(OcclusionDetector, "detect_in_shot", counted_detect)
    stored = []                 # per matte lookup: did an earlier edit store this frame's (number, box)?
    real_get = appearance.MatteMemo.get

    def looked_up(self, number, box, *args):
        stored.append((int(number), tuple(int(v) for v in box)) in self.entries)
        return real_get(self, number, box, *args)

    monkeypatch.setattr(appearance.MatteMemo, "get", looked_up)
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
    first = len(detections)
    mattes = list(folder.glob("mattes-*.npz"))     # the occluder mattes: emotion-independent, kept too
    assert first == 6 and len(mattes) == 1 and stat.S_IMODE(os.stat(mattes[0]).st_mode) == 0o600
    import zipfile

    with zipfile.ZipFile(mattes[0]) as z:           # deflated (mostly zeros: ~12x smaller), read back exactly (b == c)
        values = z.getinfo("values.npy")
        assert values.compress_type == zipfile.ZIP_DEFLATED and values.compress_size < values.file_size / 3
    _edit(clip, tmp_path / "b.####.png", "sad", "--frames", "0-5")
    assert len(runs) == 1, "the second edit of the same plate built the appearance models again"
    # the detector looks at the source face's own box, whatever the emotion: every frame of the sad edit reads the
    # matte the happy one stored and never detects it again (and b == c below: the very same pixels as detecting it)
    assert len(stored) == 12 and all(stored[6:]), stored
    assert len(detections) == first, len(detections) - first
    # tracked and built afresh (an empty cache): the same pixels as the edit that read the models
    os.environ["NED_FX_CACHE"] = str(tmp_path / "fresh")
    _edit(clip, tmp_path / "c.####.png", "sad", "--frames", "0-5")
    os.environ["NED_FX_CACHE"] = str(folder)
    assert len(runs) == 2
    b, c = _frames(tmp_path / "b.####.png", 6), _frames(tmp_path / "c.####.png", 6)
    assert all(np.array_equal(x, y) for x, y in zip(b, c))
    a = _frames(tmp_path / "a.####.png", 6)
    assert not all(np.array_equal(x, y) for x, y in zip(a, b)), "the second emotion was not rendered"
    # another range is another key
    _edit(clip, tmp_path / "d.####.png", "surprised", "--frames", "0-4")
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
        au_source = np.zeros((3, 20))

    base = _models_key(clip, Edited, "0-2", (), ContentConfig(), None)
    assert base == _models_key(clip, Edited, "0-2", (), ContentConfig(), None)
    moved = type("Moved", (Edited,), {"source_landmarks": np.full((3, 478, 3), 0.5)})
    refit = type("Refit", (Edited,), {"au_source": np.full((3, 20), 0.5)})     # the skin model learns on these
    for other in (_models_key(footage("d12.mp4"), Edited, "0-2", (), ContentConfig(), None),
                  _models_key(clip, Edited, "0-1", (), ContentConfig(), None),
                  _models_key(clip, moved, "0-2", (), ContentConfig(), None),
                  _models_key(clip, refit, "0-2", (), ContentConfig(), None),
                  _models_key(clip, Edited, "0-2", (), ContentConfig(skin=False), None),
                  _models_key(clip, Edited, "0-2", (), ContentConfig(mouth=False), None),
                  _models_key(clip, Edited, "0-2", (footage("d8.jpg"),), ContentConfig(), None)):
        assert other != base


def test_the_models_key_holds_the_builders_defaults(monkeypatch):
    """A changed default of a builder's config (the glasses model's ``model_rim_inner``, an eye, mouth or skin
    knob) gives another key: an old cached model is never read for it (the matte cache's key did this already; the
    models' held only the version)."""
    from ned_fx.appearance import ContentConfig, _models_key
    from ned_fx.occlusion import OcclusionConfig
    from ned_fx.rendering.eyes import EyeConfig
    from ned_fx.rendering.mouth import MouthConfig
    from ned_fx.rendering.skin import SkinConfig

    class Edited:
        frame_numbers = np.arange(2)
        found = np.ones(2, bool)
        source_landmarks = np.zeros((2, 478, 3))
        au_source = np.zeros((2, 20))

    clip = footage("d3.mp4")
    base = _models_key(clip, Edited, "0-1", (), ContentConfig(), None)
    for cls in (OcclusionConfig, EyeConfig, MouthConfig, SkinConfig):
        monkeypatch.setattr(cls, "__repr__", lambda self: "a changed default")      # what a new default changes
        assert _models_key(clip, Edited, "0-1", (), ContentConfig(), None) != base, cls.__name__
        monkeypatch.undo()
    assert _models_key(clip, Edited, "0-1", (), ContentConfig(), None) == base


def test_the_tracking_pass_keeps_the_crops_the_models_need_and_they_are_the_same_models(monkeypatch):
    """One decode for tracking and the appearance models: the crops kept while tracking give the very models a
    second decode gives; a keeper over its memory budget keeps nothing and the models decode again."""
    from ned_fx import pipeline
    from ned_fx.appearance import ContentConfig, FrameKeeper, build_shot_models

    decodes = []
    real = appearance._decode_for_models
    monkeypatch.setattr(appearance, "_decode_for_models", lambda *a, **k: (decodes.append(1), real(*a, **k))[1])
    clip, frames = footage("d12.mp4"), "0-11"       # glasses: all three builders
    made = []
    track, edited = pipeline._analyse(clip, pipeline.EditInstruction(emotion="happy"), frames, None, None, None,
                                      None, pipeline._Clock(), keep=pipeline._keeper(ContentConfig(), made))
    keeper = made[0]
    assert sorted(keeper.crops) == list(range(12)) and 0 < keeper.bytes <= 512 * 512 * 3 * 12
    kept = build_shot_models(clip, track, edited, frames, kept=keeper).to_arrays()
    assert not decodes, "the models decoded the shot although the tracking pass kept its crops"
    decoded = build_shot_models(clip, track, edited, frames).to_arrays()
    assert decodes == [1]
    assert kept.keys() == decoded.keys() and len(kept) > 10
    for key in kept:
        assert np.array_equal(kept[key], decoded[key], equal_nan=kept[key].dtype.kind == "f"), key
    small = FrameKeeper(12, ContentConfig(), max_bytes=1000)
    pipeline.track_media(clip, frames=frames, keep=small)
    assert small.full and not small.crops
    again = build_shot_models(clip, track, edited, frames, kept=small).to_arrays()
    assert decodes == [1, 1] and all(np.array_equal(again[k], decoded[k], equal_nan=again[k].dtype.kind == "f")
                                     for k in decoded)


def test_one_decode_renders_what_three_decodes_render(tmp_path, monkeypatch):
    """The first edit of a short shot decodes it once: the tracking pass keeps the frames for the render and the
    crops for the models; the pixels are those of an edit that decodes the shot for each pass."""
    from ned_fx import pipeline

    monkeypatch.setenv("NED_FX_CACHE", str(tmp_path / "cache"))
    handed, decodes = [], []
    real_hand, real_decode = pipeline._handed_over, appearance._decode_for_models
    monkeypatch.setattr(pipeline, "_handed_over", lambda frames: (handed.append(len(frames)), real_hand(frames))[1])
    monkeypatch.setattr(appearance, "_decode_for_models", lambda *a, **k: (decodes.append(1), real_decode(*a, **k))[1])
    clip = footage("d12.mp4")
    _edit(clip, tmp_path / "one.####.png", "surprised", "--frames", "0-5", "--no-cache")
    assert handed == [6] and not decodes
    monkeypatch.setattr(pipeline, "_keeper", lambda *a, **k: None)
    _edit(clip, tmp_path / "three.####.png", "surprised", "--frames", "0-5", "--no-cache")
    assert handed == [6] and decodes == [1]
    one, three = _frames(tmp_path / "one.####.png", 6), _frames(tmp_path / "three.####.png", 6)
    assert all(np.array_equal(x, y) for x, y in zip(one, three))


def test_a_shot_that_does_not_fit_is_never_kept_in_part():
    """Whether the frames (and the crops) fit is judged on the first one: a long shot keeps nothing at all."""
    from ned_fx.appearance import FrameKeeper
    from ned_fx.media.frames import Frame

    frame = Frame.from_array(np.zeros((64, 64, 3), np.uint8), number=0)
    fits = FrameKeeper(10, frame_bytes=10 * frame.pixels.nbytes)
    for i in range(10):
        fits.offer(i, Frame.from_array(frame.pixels, number=i))
    got = fits.decoded_frames(10)
    assert [f.number for f in got] == list(range(10)) and fits.decoded_frames(10) is None    # handed over once
    long = FrameKeeper(11, frame_bytes=10 * frame.pixels.nbytes)
    long.offer(0, frame)
    assert long.frames is None and long.decoded_frames(11) is None
    lm = np.zeros((478, 3))
    lm[:, :2] = np.random.default_rng(0).uniform(28, 36, (478, 2))
    crops = FrameKeeper(200, frame_bytes=0, max_bytes=frame.pixels.nbytes * 3)    # 2+ crops wanted of the size
    crops.offer(0, frame)
    crops.located(0, {0: (lm, 1.0)})
    assert crops.full and not crops.crops


def test_frames_are_held_for_their_eyes_only_while_small(monkeypatch):
    """The keeper measures every frame's eyes (the shut-eye weights), brow furrow and marionette lines (a pout),
    holding each frame until its face is found; a plate larger than EVIDENCE_FRAME_BYTES (a 4K float EXR) is never
    held for it (only the builders' sample is): the evidence is dropped and the models pass measures them in its
    own decode."""
    import ned_fx.appearance as appearance
    from ned_fx.appearance import FrameKeeper
    from ned_fx.media.frames import Frame

    lm = np.zeros((478, 3))
    lm[:, :2] = np.random.default_rng(0).uniform(28, 36, (478, 2))
    small = FrameKeeper(4000, frame_bytes=0)            # the builders sample frames 0, 34, 68, ...: not 1, 2
    big = Frame.from_array(np.zeros((64, 64, 3), np.uint8), number=1)
    monkeypatch.setattr(appearance, "EVIDENCE_FRAME_BYTES", big.pixels.nbytes)
    for i in range(3):
        small.offer(i, Frame.from_array(big.pixels, number=i))
    assert sorted(small._frames) == [0, 1, 2]                         # held until located
    for i in range(3):
        small.located(i, {7: (lm, 1.0)})
    assert not small._frames and sorted(small.evidence[7]) == [0, 1, 2]
    eyes, (furrow, marionette) = small.evidence[7][1]
    assert eyes.shape == (2, 2) and isinstance(furrow, float)         # per eye: sclera, iris over it; the brows
    assert isinstance(marionette, float)                              # the mouth's corners
    monkeypatch.setattr(appearance, "EVIDENCE_FRAME_BYTES", big.pixels.nbytes - 1)
    large = FrameKeeper(4000, frame_bytes=0)
    for i in range(3):
        large.offer(i, Frame.from_array(big.pixels, number=i))
    assert large.evidence is None and sorted(large._frames) == [0]     # only the builders' sample (frame 0)


def test_the_matte_memo_gives_back_the_very_matte_and_misses_on_any_other_frame(tmp_path, monkeypatch):
    """A matte held by MatteMemo comes back bit for bit (a -0.0 too) after a store and a load; another box,
    other pixels, other landmarks or another white miss; a full budget stops recording; no key: nothing stored."""
    from ned_fx.appearance import _MISS, MatteMemo

    monkeypatch.setenv("NED_FX_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(3)
    region = rng.random((40, 30, 3), dtype=np.float32)
    src = rng.random((478, 3)) * 30
    matte = np.zeros((40, 30), np.float32)
    matte[5:12, 7:20] = rng.random((7, 13), dtype=np.float32)
    matte[30, 2] = -0.0
    memo = MatteMemo("k" * 32)
    memo.put(7, (1, 2, 31, 42), region, src, 255.0, matte)
    memo.put(8, (1, 2, 31, 42), region, src, 255.0, None)
    assert memo.save() is not None
    again = MatteMemo("k" * 32)
    got = again.get(7, (1, 2, 31, 42), region, src, 255.0)
    assert got.dtype == np.float32 and np.array_equal(got.view(np.uint32), matte.view(np.uint32))
    assert again.get(8, (1, 2, 31, 42), region, src, 255.0) is None
    other = region.copy()
    other[0, 0, 0] += 0.5
    moved = src.copy()
    moved[10, 0] += 0.25
    for args in ((7, (1, 2, 31, 41), region, src, 255.0), (7, (1, 2, 31, 42), other, src, 255.0),
                 (7, (1, 2, 31, 42), region, moved, 255.0), (7, (1, 2, 31, 42), region, src, 1.0),
                 (9, (1, 2, 31, 42), region, src, 255.0)):
        assert again.get(*args) is _MISS
    assert again.hits == 2 and again.save() is None          # nothing new: nothing written
    full = MatteMemo("f" * 32, budget=1)
    full.put(1, (0, 0, 30, 40), region, src, 1.0, matte)
    full.put(2, (0, 0, 30, 40), region, src, 1.0, matte)
    assert full.added == 1
    assert MatteMemo(None).save() is None and MatteMemo(None).get(7, (1, 2, 31, 42), region, src, 255.0) is _MISS


def test_the_shots_fringe_is_stored_with_its_models():
    """The shot's forehead texture (one value, ``ShotModels.fringe``) goes through the analysis file's arrays as it
    is; a malformed one is refused with a clear error."""
    from ned_fx.appearance import ShotModels
    from ned_fx.errors import InvalidParameterError

    models = ShotModels(fringe=2.61875)
    back = ShotModels.from_arrays(models.to_arrays())
    assert back.fringe == 2.61875
    assert ShotModels.from_arrays(ShotModels().to_arrays()).fringe is None
    for bad in (np.array([1.0, 2.0]), np.array(np.nan)):
        with pytest.raises(InvalidParameterError, match="fringe"):
            ShotModels.from_arrays({"fringe": bad})


def test_the_daemons_cached_models_are_keyed_by_their_builders(tmp_path, builds, monkeypatch):
    """A daemon session reads its shot's models from its cache folder when the shot is opened again, with the same
    instruction or another (they do not depend on it: its key held the edit, so each new emotion on a shot in a
    host decoded the plate for them again), and reads the models `ned-fx edit` stored for the shot (the same key, in
    the same folder); models that builders of another version, code or default config stored
    (``appearance.models_fingerprint``) are built again, never read (a new cue, such as the fringe's)."""
    from ned_fx.daemon.sessions import Session
    from ned_fx.pipeline import EditInstruction

    folder, runs = builds

    def opened(emotion="happy", path=footage("d8.jpg")):
        session = Session(path, None, None, EditInstruction(emotion=emotion), False, cache=folder)
        session.analyse(None)
        assert session.renderer is not None
        return session

    first = opened()
    again = opened()
    assert runs == [1]
    assert again.renderer.content.models.fringe == first.renderer.content.models.fringe > 2.0
    opened("surprised")
    assert runs == [1], "another instruction on the shot built its models again"
    other = footage("people_0.png")
    _edit(other, tmp_path / "sad.png", "sad")
    assert runs == [1, 1]
    opened("happy", other)
    assert runs == [1, 1], "a session built the models an edit of the shot had stored"
    monkeypatch.setattr(appearance, "models_fingerprint", lambda: "another builder")
    opened()
    assert runs == [1, 1, 1]
    # ... and its plan by the planner's code (a patched manipulation package plans again)
    from ned_fx import pipeline
    from ned_fx.daemon import sessions

    plans = []
    real_plan = pipeline.plan_edit
    monkeypatch.setattr(pipeline, "plan_edit", lambda *a, **k: (plans.append(1), real_plan(*a, **k))[1])
    opened()
    assert plans == []
    monkeypatch.setattr(sessions, "_code", lambda package: "another planner")
    opened()
    assert plans == [1]


def test_a_daemon_session_reads_the_occluder_mattes_of_the_shot(tmp_path, builds, monkeypatch):
    """The occluder mattes depend on the plate only: a daemon session stores those it found when it closes (0600,
    in its cache folder, as `ned-fx edit` stores its own), and a session with another emotion on the shot, or after
    an edit of it, reads them instead of running the detector (d12: ~12 ms a frame at 512²), rendering the same
    pixels as the detector's mattes give."""
    from ned_fx.daemon.sessions import Session
    from ned_fx.occlusion import OcclusionDetector
    from ned_fx.pipeline import EditInstruction

    folder, _ = builds
    calls = []
    real = OcclusionDetector.detect_in_shot
    monkeypatch.setattr(OcclusionDetector, "detect_in_shot",
                        lambda self, *a, **k: (calls.append(1), real(self, *a, **k))[1])
    clip, numbers = footage("d12.mp4"), (0, 3, 5)

    def rendered(emotion, memo=True):
        session = Session(clip, "0-5", None, EditInstruction(emotion=emotion), False, cache=folder)
        session.analyse(None)
        if not memo:
            session.renderer.content.mattes = None
        out = [session.render(session.read_frame(n))[0].pixels.copy() for n in numbers]
        session.close()
        return out

    rendered("happy")
    assert len(calls) == 3
    stored = list(folder.glob("mattes-*.npz"))
    assert len(stored) == 1 and stat.S_IMODE(stored[0].stat().st_mode) == 0o600
    second = rendered("sad")
    assert len(calls) == 3, "another emotion on the shot ran the detector again"
    fresh = rendered("sad", memo=False)
    assert len(calls) == 6
    assert all(np.array_equal(a, b) for a, b in zip(second, fresh))
    # sessions of the shot open at once share them at once (an artist's second emotion while the first is open)
    folder = tmp_path / "live"
    first = Session(clip, "0-5", None, EditInstruction(emotion="happy"), False, cache=folder)
    first.analyse(None)
    calls.clear()
    for n in numbers:
        first.render(first.read_frame(n))
    assert len(calls) == 3
    later = Session(clip, "0-5", None, EditInstruction(emotion="fearful"), False, cache=folder)
    later.analyse(None)
    for n in numbers:
        later.render(later.read_frame(n))
    assert len(calls) == 3, "a second session of an open shot ran the detector again"
    later.close()
    first.close()
    # ... and the mattes an edit of the shot found
    other = tmp_path / "other"
    monkeypatch.setenv("NED_FX_CACHE", str(other))
    _edit(clip, tmp_path / "e.####.png", "angry", "--frames", "0-5")
    folder = other
    calls.clear()
    rendered("surprised")
    assert calls == [], "a session ran the detector on frames an edit of the shot had found mattes for"
