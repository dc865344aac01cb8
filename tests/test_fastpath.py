"""The fast path (``ned_fx.fastpath``) renders the pixels ShotRenderer renders, on real footage, in batches.

Tolerances (8-bit code values unless said; ShotRenderer is the reference):

* ``box="frame"`` (ShotRenderer's boxes): at most 2 values anywhere, mean over the face box <= 0.02 (the renderer's
  torch resampling against its OpenCV one: <= 1 value; the mask's exact signed distance against OpenCV's distance
  transform of a rasterised polygon). Measured: max 1, mean ~0.0005 over the plate.
* ``box="shot"`` (one region size per shot): the renderer's field grid falls on other cells, so the openings'
  anti-aliased lid/lip edges move: max <= 64, 99.9th percentile over the box <= 8, mean over the box <= 0.1.
  Measured: max 43, mean ~0.02.
* Everywhere: pixels outside the box, and alpha, are the input's own bytes; uint16, float16/float32 (NaN kept,
  values above 1 kept) and grey plates match ShotRenderer alike (uint16 in 1/257 steps of 8-bit values).
* The torch compositor against the numpy one: pyrDown/pyrUp within 2e-5 of OpenCV; the Laplacian blend within
  1e-3 on 0..255 differences; colour match gain/offset within 1e-4; the face mask max <= 0.1, mean <= 0.005
  (OpenCV rasterises the ovals on the mask grid; the torch mask uses the exact distance).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from conftest import footage
from ned_fx.appearance import WARP_ONLY
from ned_fx.compositing import CompositorConfig, face_mask
from ned_fx.compositing.mask import mask_polygons
from ned_fx.compositing import color_match as np_color_match
from ned_fx.compositing import laplacian_blend_delta as np_blend
from ned_fx.errors import InvalidParameterError
from ned_fx.fastpath import (FastPathConfig, FastShotRenderer, color_match, face_masks, laplacian_blend_delta,
                             pyr_down, pyr_up, stack_polygons)

FRAMES = "0-2"


@pytest.fixture(scope="module")
def shot(tracker):
    """d12.mp4, frames 0-2: analysis (track + happy at 1), the plates, and ShotRenderer's renders."""
    from ned_fx.media import open_media
    from ned_fx.pipeline import EditInstruction, ShotRenderer, plan_edit, track_media

    path = footage("d12.mp4")
    track = track_media(path, tracker.config, frames=FRAMES, tracker=tracker)
    edited = plan_edit(track, EditInstruction(emotion="happy", intensity=1.0))
    with open_media(path, FRAMES) as src:
        frames = list(src)
    ref = ShotRenderer(track, edited, content=WARP_ONLY)
    return track, edited, frames, ref, [ref.render(f) for f in frames]


def _box_stats(a: np.ndarray, b: np.ndarray, box) -> tuple[float, float, float]:
    x0, y0, x1, y1 = box
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    inside = d[y0:y1, x0:x1]
    return float(d.max()), float(inside.mean()), float(np.percentile(inside, 99.9))


def _outside_equal(a: np.ndarray, b: np.ndarray, box) -> bool:
    x0, y0, x1, y1 = box
    mask = np.ones(a.shape[:2], bool)
    mask[y0:y1, x0:x1] = False
    return np.array_equal(a[mask], b[mask])


@pytest.fixture(scope="module")
def frame_mode(shot):
    track, edited, frames, _, _ = shot
    fast = FastShotRenderer(track, edited, config=FastPathConfig(device="cpu", batch_size=3, box="frame",
                                                                 timing=True))
    return fast, list(fast.render_many(frames))


def test_frame_boxes_reproduce_shot_renderer(shot, frame_mode):
    _, _, frames, ref, refs = shot
    fast, outs = frame_mode
    assert len(outs) == len(frames)
    for frame, (want, why), (got, why_fast) in zip(frames, refs, outs):
        assert why is None and why_fast is None, (why, why_fast)
        plan = fast.plan(frame)
        assert got.number == frame.number and got.pixels.dtype == np.uint8
        worst, mean, _ = _box_stats(got.pixels, want.pixels, plan.box)
        assert worst <= 2 and mean <= 0.02, (frame.number, worst, mean)
        assert _outside_equal(got.pixels, frame.pixels, plan.box), "pixels outside the box must be the input's"
        assert not np.array_equal(got.pixels, frame.pixels), "the edit must change the face"
    assert all(v >= 0 for v in fast.seconds.values()) and fast.seconds["render"] > 0 and fast.seconds["composite"] > 0
    assert fast.describe()["renderer"]["backend"] == "torch-cpu"


def test_shot_boxes_batch_into_one_shape_within_the_stated_tolerance(shot):
    track, edited, frames, _, refs = shot
    fast = FastShotRenderer(track, edited, config=FastPathConfig(device="cpu", batch_size=4, box="shot"))
    plans = [fast.plan(f) for f in frames]
    sizes = {(p.box[2] - p.box[0], p.box[3] - p.box[1]) for p in plans}
    assert sizes == {fast.shot_size}, "every frame of the shot gets the shot's one region size"
    for frame, plan, (want, _), (got, why) in zip(frames, plans, refs, fast.render_many(frames)):
        assert why is None
        worst, mean, p999 = _box_stats(got.pixels, want.pixels, plan.box)
        assert worst <= 64 and mean <= 0.1 and p999 <= 8, (frame.number, worst, mean, p999)
        assert _outside_equal(got.pixels, frame.pixels, plan.box)


def test_a_batch_renders_what_single_frames_render(shot, frame_mode):
    track, edited, frames, _, _ = shot
    single = FastShotRenderer(track, edited, config=FastPathConfig(device="cpu", batch_size=1))
    clock = type("Clock", (), {"seconds": {}})()            # the pipeline's per-stage clock
    for (batched, _), frame in zip(frame_mode[1][:2], frames[:2]):
        one, why = single.render(frame, clock)
        assert why is None
        assert np.abs(one.pixels.astype(int) - batched.pixels.astype(int)).max() <= 1
    assert clock.seconds["render"] > 0


def _small_shot(shot, scale: float = 0.5):
    """The shot at half size (cheaper plates for the format checks); landmarks scaled alike."""
    import cv2

    track, edited, frames, _, _ = shot
    f = frames[1]
    pixels = cv2.resize(f.pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)

    def s(lm):
        return np.asarray(lm, np.float64) * scale

    track2 = dataclasses.replace(track, landmarks=s(track.landmarks), landmarks_raw=s(track.landmarks_raw),
                                 width=pixels.shape[1], height=pixels.shape[0])
    edited2 = dataclasses.replace(edited, source_landmarks=s(edited.source_landmarks),
                                  target_landmarks=s(edited.target_landmarks))
    return track2, edited2, dataclasses.replace(f, pixels=pixels, data_window=None, display_window=None)


@pytest.mark.parametrize("kind", ["uint16", "float32", "float16", "rgba", "grey"])
def test_plate_formats_match_shot_renderer(shot, kind):
    from ned_fx.pipeline import ShotRenderer

    track, edited, base = _small_shot(shot)
    rgb = base.pixels
    if kind == "uint16":
        frame = dataclasses.replace(base, pixels=rgb.astype(np.uint16) * 257)
        tol = 2 * 257
    elif kind in ("float32", "float16"):
        px = (rgb.astype(np.float32) / 255).astype(kind)
        px[0, 0, 0] = 7.5                                    # a highlight above 1 (outside the box) survives
        frame = dataclasses.replace(base, pixels=px)
        tol = 2 / 255
    elif kind == "rgba":
        alpha = np.random.default_rng(0).integers(0, 256, rgb.shape[:2], dtype=np.uint8)[..., None]
        frame = dataclasses.replace(base, pixels=np.concatenate([rgb, alpha], axis=2), channels=("R", "G", "B", "A"))
        tol = 2
    else:
        grey = rgb.mean(axis=2, keepdims=True).round().astype(np.uint8)
        frame = dataclasses.replace(base, pixels=grey, channels=("Y",))
        tol = 2
    want, why = ShotRenderer(track, edited, content=WARP_ONLY).render(frame)
    fast = FastShotRenderer(track, edited, config=FastPathConfig(device="cpu", batch_size=2))
    got, why_fast = fast.render(frame)
    assert why is None and why_fast is None
    assert got.pixels.dtype == frame.pixels.dtype and got.channels == frame.channels
    diff = np.abs(got.pixels.astype(np.float64) - want.pixels.astype(np.float64))
    assert diff.max() <= tol, (kind, diff.max())
    assert not np.array_equal(got.pixels, frame.pixels)
    assert _outside_equal(got.pixels, frame.pixels, fast.plan(frame).box)
    if kind == "rgba":
        assert np.array_equal(got.pixels[..., 3], frame.pixels[..., 3]), "alpha passes through bit-exact"
    if kind.startswith("float"):
        assert got.pixels[0, 0, 0] == frame.pixels[0, 0, 0]


def test_nan_in_a_float_plate_stays_where_it_was(shot):
    track, edited, base = _small_shot(shot)
    px = base.pixels.astype(np.float32) / 255
    fast = FastShotRenderer(track, edited, config=FastPathConfig(device="cpu", batch_size=1))
    x0, y0, x1, y1 = fast.plan(dataclasses.replace(base, pixels=px)).box
    px[(y0 + y1) // 2, x0 + 3, 1] = np.nan                   # a dead pixel inside the face box
    got, why = fast.render(dataclasses.replace(base, pixels=px))
    assert why is None
    bad = ~np.isfinite(got.pixels)
    assert bad.sum() == 1 and bad[(y0 + y1) // 2, x0 + 3, 1], "NaN stays, and does not spread"


def test_frames_without_an_edit_pass_through_untouched(shot):
    track, edited, frames, _, _ = shot
    found = edited.found.copy()
    found[1] = False
    same = edited.target_landmarks.copy()
    same[2] = edited.source_landmarks[2]
    ed = dataclasses.replace(edited, found=found, target_landmarks=same)
    fast = FastShotRenderer(track, ed, config=FastPathConfig(device="cpu", batch_size=4, box="shot"))
    outs = list(fast.render_many(frames[:3]))
    assert [why for _, why in outs] == [None, "no face", "no change at this frame"]
    assert outs[1][0] is frames[1] and outs[2][0] is frames[2]


def test_bad_input_is_refused_with_the_options(shot):
    track, edited, frames, _, _ = shot
    with pytest.raises(InvalidParameterError, match="frame, shot"):
        FastPathConfig(box="plate")
    with pytest.raises(InvalidParameterError, match="between 1 and 64"):
        FastPathConfig(batch_size=0)
    with pytest.raises(InvalidParameterError, match="tensorrt"):
        FastPathConfig(backend="cuda-magic")
    fast = FastShotRenderer(track, edited, config=FastPathConfig(device="cpu", batch_size=1))
    with pytest.raises(InvalidParameterError, match="not in the analysed shot"):
        fast.render(dataclasses.replace(frames[0], number=999))


# ---- the torch compositor against the numpy one -----------------------------------------------------------------

@pytest.mark.parametrize("h,w", [(37, 52), (64, 63), (121, 98)])
def test_pyramid_steps_match_opencv(h, w):
    import cv2

    x = np.random.default_rng(h).normal(0, 40, (h, w, 3)).astype(np.float32)
    t = torch.from_numpy(x.transpose(2, 0, 1).copy())[None]
    down = pyr_down(t)[0].permute(1, 2, 0).numpy()
    assert down.shape == cv2.pyrDown(x).shape
    assert np.abs(down - cv2.pyrDown(x)).max() <= 2e-5 * 40
    small = cv2.pyrDown(x)
    up = pyr_up(torch.from_numpy(small.transpose(2, 0, 1).copy())[None], (h, w))[0].permute(1, 2, 0).numpy()
    assert np.abs(up - cv2.pyrUp(small, dstsize=(w, h))).max() <= 2e-5 * 40


def test_blend_and_colour_match_match_the_numpy_compositor(shot):
    _, _, frames, _, _ = shot
    rng = np.random.default_rng(3)
    plate = frames[0].pixels[100:300, 120:300].astype(np.float32)
    rendered = plate * 1.1 + 4 + rng.normal(0, 2, plate.shape).astype(np.float32)
    yy, xx = np.mgrid[0:200, 0:180]
    mask = np.clip(1.2 - np.hypot(yy - 100, xx - 90) / 70, 0, 1).astype(np.float32)
    t = lambda a: torch.from_numpy(a.transpose(2, 0, 1).copy())[None]  # noqa: E731
    got = laplacian_blend_delta(t(rendered - plate), torch.from_numpy(mask)[None, None], 5)[0]
    want = np_blend(rendered - plate, mask, 5)
    assert np.abs(got.permute(1, 2, 0).numpy() - want).max() <= 1e-3
    gain, offset = color_match(t(rendered), t(plate), torch.from_numpy(mask)[None])
    g_np, o_np = np_color_match(rendered, plate, mask)
    assert np.abs(gain[0].numpy() - g_np).max() <= 1e-4 and np.abs(offset[0].numpy() - o_np).max() <= 1e-4 * 255
    assert not np.allclose(g_np, 1.0), "the check needs a real grade to recover"


def test_face_mask_matches_the_numpy_compositor(shot):
    from ned_fx import topology as T
    from ned_fx.rendering import face_region_box

    _, edited, _, _, _ = shot
    cfg = CompositorConfig()
    for k in (0, 2):
        s, d = edited.source_landmarks[k], edited.target_landmarks[k]
        x0, y0, x1, y1 = face_region_box(np.concatenate([s, d]), 512, 512)
        off = np.array([x0, y0, 0.0])
        want = face_mask((y1 - y0, x1 - x0), d - off, s - off, cfg)
        iod = float(np.linalg.norm(d[T.EYE_OUTER_RIGHT, :2] - d[T.EYE_OUTER_LEFT, :2]))
        polys = stack_polygons([mask_polygons(d - off, cfg, iod) + mask_polygons(s - off, cfg, iod)])
        got = face_masks(polys, [iod], (y1 - y0, x1 - x0), cfg, "cpu")[0].numpy()
        diff = np.abs(got - want)
        assert diff.max() <= 0.1 and diff.mean() <= 0.005, (k, diff.max(), diff.mean())
        assert got.max() == 1.0 and got.min() == 0.0


# ---- on a GPU ---------------------------------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (this machine has none); the "
                          "GPU fast path runs on an NVIDIA GPU with the CUDA build of torch")


@cuda
@pytest.mark.parametrize("box", ["frame", "shot"])
def test_cuda_fast_path_matches_the_cpu_one(shot, box):
    track, edited, frames, _, _ = shot
    cpu = FastShotRenderer(track, edited, config=FastPathConfig(device="cpu", batch_size=4, box=box))
    gpu = FastShotRenderer(track, edited, config=FastPathConfig(device="cuda", backend="torch-cuda", batch_size=4,
                                                                box=box, timing=True))
    for (a, _), (b, why) in zip(cpu.render_many(frames), gpu.render_many(frames)):
        assert why is None
        assert np.abs(a.pixels.astype(int) - b.pixels.astype(int)).max() <= 2
    assert gpu.seconds["upload"] > 0 and gpu.seconds["download"] > 0
    # the matte comes down with the frame (a second download on the copy stream): the CPU's masks
    for (a, _, ma), (b, why, mb) in zip(cpu.render_many(frames, matte=True), gpu.render_many(frames, matte=True)):
        assert why is None and mb.dtype == np.float32 and mb.shape == b.pixels.shape[:2]
        assert np.abs(ma - mb).max() <= 1e-3 and mb.max() == 1.0
        assert np.abs(a.pixels.astype(int) - b.pixels.astype(int)).max() <= 2
    gpu.close()


@cuda
def test_cuda_fast_path_overlaps_batches_and_keeps_order(shot):
    track, edited, frames, _, refs = shot
    many = frames * 5                                   # 15 frames: several batches in flight
    gpu = FastShotRenderer(track, edited, config=FastPathConfig(device="cuda", backend="torch-cuda", batch_size=3))
    outs = list(gpu.render_many(many))
    assert [o.number for o, _ in outs] == [f.number for f in many]
    for (o, _), (want, _) in zip(outs, refs * 5):
        assert np.abs(o.pixels.astype(int) - want.pixels.astype(int)).max() <= 2


def test_fastpath_imports_nothing_heavy_at_import():
    import subprocess
    import sys

    from conftest import REPO

    code = "import sys, ned_fx.fastpath; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_frames_of_different_shots_share_one_engine_call(shot):
    """``render_across`` (the daemon's cross-client batches): frames of shots with other edits and another
    triangulation go through one engine call — each frame's labels point into its own shot's triangles — and
    every frame comes out exactly as it does rendered alone."""
    from ned_fx.fastpath import render_across
    from ned_fx.pipeline import EditInstruction, plan_edit
    from ned_fx.rendering import build_render_mesh

    track, edited, frames, _, _ = shot
    config = FastPathConfig(device="cpu", batch_size=8)
    happy = FastShotRenderer(track, edited, config=config)
    sad = FastShotRenderer(track, plan_edit(track, EditInstruction(emotion="sad", intensity=1.0)), config=config,
                           runner=happy.runner)
    other = FastShotRenderer(track, edited, config=config, runner=happy.runner)
    other.mesh = build_render_mesh(track.landmarks[1])           # another shot's triangulation (same outline)
    other.triangles = torch.as_tensor(np.asarray(other.mesh.triangles), dtype=torch.int32)
    assert other.triangles.shape != happy.triangles.shape or not torch.equal(other.triangles, happy.triangles)
    items = [(happy, frames[0]), (sad, frames[0]), (other, frames[0]), (sad, frames[1])]
    alone = [r.render(f) for r, f in items]
    calls = []
    infer = happy.runner.infer
    happy.runner.infer = lambda feeds: calls.append(feeds["images"].shape[0]) or infer(feeds)
    try:
        together = render_across(items)
    finally:
        happy.runner.infer = infer
    # one call per face-box size, whatever shot a frame is of (happy's and the other triangulation's frame 0 share
    # one; sad's boxes are a pixel larger or smaller, as it happens)
    from collections import Counter

    from ned_fx.pipeline import locate_face

    sizes = []
    for r, f in items:
        box = locate_face(r.track, r.edited, r.index, f).box
        sizes.append((box[2] - box[0], box[3] - box[1]))
    assert sorted(calls) == sorted(Counter(sizes).values()), (calls, sizes)
    assert max(calls) >= 2 and sizes[0] == sizes[2], "frames of two shots (two triangulations) in one call"
    for (want, why), (got, why_got) in zip(alone, together):
        assert why is None and why_got is None
        np.testing.assert_array_equal(got.pixels, want.pixels)
    assert not np.array_equal(alone[0][0].pixels, alone[2][0].pixels), "the other triangulation renders otherwise"
    assert not np.array_equal(alone[0][0].pixels, alone[1][0].pixels), "happy and sad differ"
    with pytest.raises(InvalidParameterError):
        render_across([(happy, frames[0]), (sad, dataclasses.replace(frames[1], number=99))])


def test_bucket_boxes_let_frames_of_different_shots_share_calls(shot):
    """``box="bucket"``: box sizes rounded up to 64 px, so frames 0-2 of a happy and a sad edit (six boxes of
    four sizes with ``box="frame"``) go through one engine call, within the ``box="shot"`` tolerance of
    ShotRenderer's pixels."""
    from ned_fx.fastpath import render_across
    from ned_fx.pipeline import EditInstruction, ShotRenderer, plan_edit

    track, edited, frames, _, refs = shot
    sad_edit = plan_edit(track, EditInstruction(emotion="sad", intensity=1.0))
    frame_boxes = FastShotRenderer(track, edited, config=FastPathConfig(device="cpu"))
    sizes = {(p.box[2] - p.box[0], p.box[3] - p.box[1]) for p in map(frame_boxes.plan, frames)}
    assert len(sizes) > 1, "the test needs frames whose own boxes differ in size"
    config = FastPathConfig(device="cpu", batch_size=8, box="bucket")
    happy = FastShotRenderer(track, edited, config=config)
    sad = FastShotRenderer(track, sad_edit, config=config, runner=happy.runner)
    plans = [happy.plan(f) for f in frames]
    assert all((p.box[2] - p.box[0]) % 64 == 0 and (p.box[3] - p.box[1]) % 64 == 0 for p in plans)
    calls = []
    infer = happy.runner.infer
    happy.runner.infer = lambda feeds: calls.append(feeds["images"].shape[0]) or infer(feeds)
    try:
        out = render_across([(happy, f) for f in frames] + [(sad, f) for f in frames])
    finally:
        happy.runner.infer = infer
    assert calls == [6]
    sad_refs = [ShotRenderer(track, sad_edit, content=WARP_ONLY).render(f) for f in frames]
    for frame, plan, (want, _), (got, why) in zip(frames * 2, plans * 2, refs + sad_refs, out):
        assert why is None
        worst, mean, p999 = _box_stats(got.pixels, want.pixels, plan.box)
        assert worst <= 64 and mean <= 0.1 and p999 <= 8, (frame.number, worst, mean, p999)
        assert _outside_equal(got.pixels, frame.pixels, plan.box)
    with pytest.raises(InvalidParameterError):
        FastPathConfig(box="bucket", bucket=4)


# ---- the matte (issue 20): the weights the device compositor blended with ----------------------------------------

def test_fast_path_matte_is_what_it_blended_with(shot):
    """Without the pyramid (levels=0) the blend is ``plate*(1-m) + rendered*m``: on a float plate (no rounding)
    the returned matte ``m`` reproduces the output from the renderer's own output, and it is 0 outside the box."""
    track, edited, frames, _, _ = shot
    frame = dataclasses.replace(frames[0], pixels=frames[0].pixels.astype(np.float32) / 255)
    fast = FastShotRenderer(track, edited, compositor_config=CompositorConfig(levels=0, color_match=False),
                            config=FastPathConfig(device="cpu", batch_size=2))
    rendered = []
    infer = fast.runner.infer
    fast.runner.infer = lambda feeds: rendered.append(infer(feeds)["rendered"]) or {"rendered": rendered[-1]}
    try:
        out, why, matte = fast.render_with_matte(frame)
    finally:
        fast.runner.infer = infer
    assert why is None and matte.shape == frame.pixels.shape[:2] and matte.dtype == np.float32
    x0, y0, x1, y1 = fast.plan(frame).box
    inside = np.zeros(matte.shape, bool)
    inside[y0:y1, x0:x1] = True
    assert np.all(matte[~inside] == 0) and matte.max() == 1.0 and 0.05 < (matte > 0).mean() < 0.9
    assert ((matte > 0) & (matte < 1)).sum() > 1000, "a soft edge, not a hard cut"
    face = rendered[0][0].permute(1, 2, 0).numpy()
    plate = frame.pixels[y0:y1, x0:x1]
    m = matte[y0:y1, x0:x1, None]
    np.testing.assert_allclose(out.pixels[y0:y1, x0:x1], plate * (1 - m) + face * m, atol=2e-6)
    assert np.array_equal(out.pixels[~inside], frame.pixels[~inside])
    # a wrong matte does not: the test can fail (a matte 10 % softer misses by far more than the tolerance)
    assert np.abs(out.pixels[y0:y1, x0:x1] - (plate * (1 - 0.9 * m) + face * 0.9 * m)).max() > 1e-3


def test_fast_path_matte_with_the_default_blend(shot, frame_mode):
    """With the multi-band blend the matte is the mask every band is weighted by: the frame is the one
    rendered without the matte, the matte matches ShotRenderer's weights within the masks' tolerance, and
    the edit lives where it is > 0 (the coarse bands reach a little past it, as on the CPU path)."""
    from ned_fx.pipeline import ShotRenderer, blend_weights

    track, edited, frames, _, _ = shot
    fast, outs = frame_mode
    ref = ShotRenderer(track, edited, content=WARP_ONLY)
    with_matte = list(fast.render_many(frames, matte=True))
    for frame, (want, _), (got, why, matte) in zip(frames, outs, with_matte):
        assert why is None
        np.testing.assert_array_equal(got.pixels, want.pixels)          # asking for the matte changes nothing
        cpu = blend_weights(ref, ref.begin(frame))
        assert np.abs(matte - cpu).max() <= 0.1 and np.abs(matte - cpu).mean() <= 0.005
        change = np.abs(got.pixels.astype(int) - frame.pixels).max(axis=2)
        assert change[matte > 0.5].mean() > 20 * max(change[matte == 0].mean(), 1e-3)
        assert change[matte == 0].max() <= 1                          # measured: 0


def test_matte_across_shots_and_for_frames_passed_through(shot):
    from ned_fx.fastpath import render_across

    track, edited, frames, _, _ = shot
    found = edited.found.copy()
    found[1] = False
    fast = FastShotRenderer(track, dataclasses.replace(edited, found=found),
                            config=FastPathConfig(device="cpu", batch_size=4))
    out = render_across([(fast, frames[0]), (fast, frames[1]), (fast, frames[2])], mattes=[True, True, False])
    assert [len(o) for o in out] == [3, 3, 3]
    (f0, why0, m0), (f1, why1, m1), (_, why2, m2) = out
    assert why0 is None and m0.max() == 1.0
    assert why1 == "no face" and f1 is frames[1] and m1.shape == frames[1].pixels.shape[:2] and not m1.any()
    assert why2 is None and m2 is None, "no matte where none was asked for"
    assert [len(o) for o in render_across([(fast, frames[0])])] == [2], "without mattes: (frame, reason)"
    np.testing.assert_array_equal(fast.render_with_matte(frames[0])[2], m0)
