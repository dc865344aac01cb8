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


@pytest.mark.skipif(not ort_available(), reason="onnxruntime not installed")
def test_auto_runtime_is_told_without_torch_and_a_gpu_it_missed_still_runs_torch(monkeypatch):
    """`runtime_name` must not import torch (a second edit of a cached shot needs none: ~1.7 s): it looks for a GPU
    driver's traces instead (torch's own answer where torch is loaded). A GPU that look misses (a driver it does
    not know) must not break the tracker: with ``auto`` on a CUDA device it runs PyTorch, as before, and says so."""
    import subprocess
    import sys

    import torch

    from ned_fx.tracking import runtime, tracker as tracker_mod

    code = ("import sys; from ned_fx.tracking import TrackerConfig; from ned_fx.tracking.runtime import runtime_name;"
            " runtime_name(TrackerConfig()); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if not runtime.cuda_possible():         # (on a machine with a GPU driver torch is asked, as it must be)
        assert out[-1] == "False"
    assert runtime.cuda_possible() == torch.cuda.is_available() or "torch" not in sys.modules
    # a GPU the quick look missed: auto resolves to onnxruntime, the tracker's device is CUDA -> PyTorch, no error
    monkeypatch.setattr(runtime, "cuda_possible", lambda: False)
    monkeypatch.setattr(tracker_mod, "pick_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(tracker_mod, "load_engines", lambda device, **kw: {"loaded on": str(device)})
    if ort_available():
        assert runtime_name(TrackerConfig()) == "onnxruntime"
    got = FaceTracker(TrackerConfig())
    assert got.runtime == "torch" and got.engines == {"loaded on": "cuda"}
    with pytest.raises(Exception, match="runs on the CPU"):           # asked for explicitly: still refused
        FaceTracker(TrackerConfig(runtime="onnxruntime"))


def test_auto_device_is_one_rule_for_the_tracker_and_the_engines():
    """"auto" picks the same device for the tracker (``pick_device``), the engines (``runners.resolve_device``) and
    the runtime (``runtime_name``): ``runtime.cuda_available``, which asks torch only where a GPU driver may be."""
    import subprocess
    import sys

    from ned_fx.tracking import runtime

    code = ("import sys; from ned_fx.engines.runners import resolve_device; from ned_fx.tracking.tracker import "
            "pick_device; from ned_fx.tracking.runtime import cuda_available; "
            "print(resolve_device('auto'), str(pick_device('auto')), cuda_available(), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if runtime.cuda_possible():                  # a GPU driver here: torch is asked, and both say CUDA or the CPU
        assert (out[0], out[1]) in {("cuda:0", "cuda"), ("cpu", "cpu")} and out[2] == str(out[0] != "cpu"), out
    else:
        assert out == ["cpu", "cpu", "False", "False"], out


def test_frame_by_frame_overlaps_the_iris_net_and_gives_the_same_points():
    """Frame by frame with the iris net on eye crops: each frame's iris net runs in a worker while the next frame's
    mesh runs (``overlap_iris``, the next crop needs only the 468 mesh points) and each onnxruntime net has one
    thread (``threads`` 0: auto). The points are bit for bit those of running one after the other; a caller that
    stops early gets its frames complete and nothing left running; the track cache key ignores the overlap (the
    same points) and keeps the threads (another thread count may round differently)."""
    import numpy as np

    frames, _ = decode_rgb("WDA_AlexandriaOcasioCortez_000.mp4")
    frames = frames[:24]

    def run(**kw):
        tracker = FaceTracker(TrackerConfig(device="cpu", runtime="onnxruntime", **kw))
        return tracker, [{k: v[0].copy() for k, v in ff.faces.items()} for ff in tracker.iter_track(iter(frames))]

    tracker, ours = run()
    assert tracker.config.ort_threads() == 1
    assert all(e.session.get_session_options().intra_op_num_threads == 1 for e in tracker.engines.values())
    _, plain = run(overlap_iris=False)
    assert len(ours) == len(plain) == len(frames) and all(f for f in ours)
    for a, b in zip(ours, plain):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
            assert np.ptp(a[k][468:, 0]) > 1.0          # the irises are filled in, not the eye centres' copies
    # stopping early: the frames handed out are complete, and closing waits for the iris passes in flight
    first, frames_out = [], tracker.iter_track(iter(frames))
    for ff in frames_out:
        first.append({k: v[0].copy() for k, v in ff.faces.items()})
        if len(first) == 3:
            break
    frames_out.close()
    for a, b in zip(first, plain):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    assert tracker._workers[0].submit(lambda: None).result(timeout=5) is None
    key = lambda cfg: track_cache.track_key("f", None, None, cfg, "onnxruntime")       # noqa: E731
    assert key(TrackerConfig(overlap_iris=False)) == key(TrackerConfig())
    assert key(TrackerConfig(threads=2)) != key(TrackerConfig())
    assert TrackerConfig(batch_size=4).ort_threads() >= 1 and TrackerConfig(threads=3).ort_threads() == 3
    with pytest.raises(Exception):
        TrackerConfig(threads=-1)


@pytest.mark.skipif(not ort_available(), reason="onnxruntime not installed")
def test_attention_irises_keep_the_plain_mesh_and_take_the_attention_meshs_irises():
    """``iris_model`` "attention_irises": the 468 points are the plain face mesh's, bit for bit the eye crops'
    tracker's (the same crops: the next frame's crop needs only them); the 10 iris points are the attention mesh's
    on that crop — within 1 % IOD of the attention tracker's own (d12 behind glasses: 0.35 %), where the eye crops'
    iris net sits ~2 % away — and the same whether overlapped with the next frame's mesh or run in place."""
    import numpy as np

    frames, _ = decode_rgb("d12.mp4")
    frames = frames[:30]

    def run(model, **kw):
        tracker = FaceTracker(TrackerConfig(device="cpu", runtime="onnxruntime", iris_model=model, **kw))
        return tracker, np.array([list(ff.faces.values())[0][0] for ff in tracker.iter_track(iter(frames))])

    tracker, ours = run("attention_irises")
    assert tracker.attention_irises and not tracker.uses_attention
    assert sorted(tracker.engines) == ["face_detector", "face_mesh", "face_mesh_attention"]
    _, crops = run("eye_crops")
    _, attention = run("attention")
    _, in_place = run("attention_irises", overlap_iris=False)
    np.testing.assert_array_equal(ours[:, :468], crops[:, :468])
    np.testing.assert_array_equal(ours, in_place)
    iod = np.linalg.norm(attention[:, 33, :2] - attention[:, 263, :2], axis=1).mean()
    off = lambda pts: float(np.linalg.norm(pts[:, 468:, :2] - attention[:, 468:, :2], axis=2).mean() / iod)  # noqa
    assert off(ours) < 0.01 and off(crops) > 1.5 * off(ours), (off(ours), off(crops))


def test_a_first_crop_is_taken_again_from_its_own_landmarks():
    """A face's first crop is the detector's box, which cut d19's dropped jaw short: his tracked lips read 0.22 of
    the inter-ocular distance apart (the picture: ~0.43, the dark opening ending where his lower lip's red begins).
    Two more passes of the mesh (the default), each cropped from its own landmarks as every later frame of a shot
    is, read 0.3 and more: a neutral then closes the real lips. Where the passes do not open the mouth by
    ``first_crop_gain`` the detector's crop stays, as MediaPipe has it: a closed-mouthed still is bit-exact
    (people_0; the passes alone moved its points 0.4 % IOD)."""
    import numpy as np

    from ned_fx import topology as T
    from ned_fx.media import read_image, to_display_rgb8

    def lips_and_points(name, passes):
        rgb = np.ascontiguousarray(to_display_rgb8(read_image(footage(name)))[..., :3])
        tracker = FaceTracker(TrackerConfig(device="cpu", first_crop_passes=passes, smoothing=0.0))
        lm = next(iter(tracker.iter_track([rgb]))).faces[0][0]
        iod = float(np.linalg.norm(lm[T.EYE_OUTER_RIGHT, :2] - lm[T.EYE_OUTER_LEFT, :2]))
        return float(T.mouth_opening(lm)) / iod, lm, iod

    once, _, _ = lips_and_points("d19.jpg", 0)
    again, lm, iod = lips_and_points("d19.jpg", 2)
    assert once < 0.25 and again > 0.3, (once, again)
    # the picture: below the tracked lower inner lip the dark opening goes on, then the lip's red begins
    from ned_fx.media import read_image as _read

    rgb = to_display_rgb8(_read(footage("d19.jpg")))[..., :3].astype(float)
    x = int(round(lm[T.MOUTH_LOWER_INNER, 0]))
    col = rgb[:, x] @ [0.299, 0.587, 0.114]
    top, bottom = int(lm[T.MOUTH_UPPER_INNER, 1]) + 3, int(lm[152, 1])
    lip = top + int(np.argmax(np.diff(col[top:bottom])))                 # the sharpest dark -> bright step
    assert abs(lip - lm[T.MOUTH_LOWER_INNER, 1]) / iod < 0.12, (lip, lm[T.MOUTH_LOWER_INNER, 1])
    assert TrackerConfig().first_crop_passes == 2
    _, a, _ = lips_and_points("people_0.png", 0)
    _, b, _ = lips_and_points("people_0.png", 2)
    np.testing.assert_array_equal(a, b)


def test_first_crop_passes_from_the_command_line_close_a_gasp(tmp_path):
    """``--first-crop-passes N`` reaches the tracker, and on d19's gasp closed under neutral (the plan's
    ``still_gasp_kept`` rule off: by default every style keeps his gasp) the passes close his real mouth in the
    picture, not only under the tracked lips (dark pixels in the mouth's box, darker than 60 % of the face's mean:
    the "V" of the real interior below the tracked lips goes, a dark gap between the lips stays); a bad count is
    a clear error."""
    import numpy as np

    from ned_fx import topology as T
    from ned_fx.errors import InvalidParameterError
    from ned_fx.manipulation import ManipulatorConfig
    from ned_fx.media import read_image, to_display_rgb8
    from ned_fx.pipeline import EditInstruction, edit_media, track_media

    parser = build_parser()
    for passes in (0, 2, 3):
        args = parser.parse_args(["edit", "in.png", "-o", "out.png", "--emotion", "neutral",
                                  "--first-crop-passes", str(passes)])
        assert tracker_config(args).first_crop_passes == passes
    src = footage("d19.jpg")
    lm = track_media(src, TrackerConfig(device="cpu", first_crop_passes=2)).landmarks[0]
    iod = float(np.linalg.norm(lm[T.EYE_OUTER_RIGHT, :2] - lm[T.EYE_OUTER_LEFT, :2]))
    (x0, y0), (x1, y1) = ((lm[list(T.LIPS_OUTER), :2].min(0) - 0.1 * iod).astype(int),
                          (lm[list(T.LIPS_OUTER), :2].max(0) + 0.1 * iod).astype(int))
    face = to_display_rgb8(read_image(src))[..., :3].astype(float) @ [0.2126, 0.7152, 0.0722]
    level = 0.6 * face[int(lm[10, 1]):int(lm[152, 1]), int(lm[234, 0]):int(lm[454, 0])].mean()

    def dark(path):
        lum = to_display_rgb8(read_image(path))[..., :3].astype(float) @ [0.2126, 0.7152, 0.0722]
        return int((lum[y0:y1, x0:x1] < level).sum())

    closing = ManipulatorConfig(still_gasp_kept=(float("inf"), float("inf")))
    for passes in (0, 2):
        edit_media(src, tmp_path / f"n{passes}.png", EditInstruction(emotion="neutral"),
                   tracker_config=TrackerConfig(device="cpu", first_crop_passes=passes), manipulator_config=closing)
    before, once, again = dark(src), dark(tmp_path / "n0.png"), dark(tmp_path / "n2.png")
    print(f"dark mouth pixels: source {before}, neutral {once}, neutral with 2 more first-crop passes {again}")
    assert again < 0.7 * once and once > 0.3 * before          # 3606 -> 2180 -> 1331 (the gap between the lips stays)
    assert main(["edit", str(src), "-o", str(tmp_path / "kept.png"), "--emotion", "neutral", "-q",
                 "--no-audit-log", "--device", "cpu", "--no-cache"]) == 0
    assert dark(tmp_path / "kept.png") >= 0.85 * before         # the default keeps his gasp open
    with pytest.raises(InvalidParameterError, match="first_crop_passes"):
        TrackerConfig(first_crop_passes=-1)


def test_eye_contours_are_the_iris_net_s_lids_where_the_mesh_has_them(tracker):
    """``FaceTracker.eye_contours``: the iris net's 71-point eye contour on one frame, in frame pixels; its lid
    points 12 and 4 sit near the mesh's 159/145 and 386/374 (d19's and people_0's eyes within 4 % of the
    inter-ocular distance). A tracker without the iris net, or a frame that is not RGB8, is refused."""
    import numpy as np

    from ned_fx import topology as T
    from ned_fx.errors import InvalidParameterError
    from ned_fx.pipeline import track_media

    for name in ("d19.jpg", "people_0.png"):
        rgb = decode_rgb(name)[0][0]
        lm = track_media(footage(name), tracker=tracker).landmarks[0]
        contours = tracker.eye_contours(rgb, lm)
        assert contours.shape == (2, 71, 3) and np.isfinite(contours).all()
        iod = float(T.inter_ocular(lm))
        for e, (upper, lower) in enumerate(((159, 145), (386, 374))):
            off = max(np.linalg.norm(contours[e, 12, :2] - lm[upper, :2]),
                      np.linalg.norm(contours[e, 4, :2] - lm[lower, :2])) / iod
            assert off < 0.04, (name, e, off)
        with pytest.raises(InvalidParameterError):
            tracker.eye_contours(rgb.astype(np.float32), lm)
    with pytest.raises(InvalidParameterError):
        FaceTracker(TrackerConfig(iris_model="attention")).eye_contours(rgb, lm)
