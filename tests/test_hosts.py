"""The host-agnostic bridge logic (``ned_fx.hosts``) against a real daemon: knob specs from ``describe``, analysis
in a background thread (progress, cancel), frames rendered out of order in a host's layout (bottom-up rows, a
data window, alpha and extra channels), the mix, no daemon -> a clear answer within 3 s and recovery, the EXR/PNG
files the bridges write, the plain runner, import hygiene, and the systemd service installer."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, footage
from daemons import Daemon, free_port

from ned_fx.errors import InvalidParameterError, UnsupportedFormatError
from ned_fx.hosts import images
from ned_fx.hosts.analysis import AnalysisController, ShotRequest
from ned_fx.hosts.frames import (FrameRenderer, HostImage, apply_mix, from_nuke, nuke_bbox, ordered_frames,
                                 render_image, render_to_file, to_planes)
from ned_fx.hosts.link import DaemonLink, LinkConfig
from ned_fx.hosts.params import (FALLBACK_PARAMETERS, REFERENCE_OPTION, blend_for_keys, evaluate_keys,
                                 keys_from_samples, knob_specs, open_params)

CHANNELS = ("R", "G", "B", "A", "depth.Z")


def _plate(folder: Path, numbers=range(1001, 1005)) -> str:
    """An EXR sequence from real footage: RGB of d12, an alpha ramp, a depth channel, a data window inside a
    larger display window (as a Nuke bbox makes)."""
    from ned_fx.media import open_media

    folder.mkdir(parents=True, exist_ok=True)
    with open_media(footage("d12.mp4"), "0-3") as src:
        frames = list(src)
    for n, fr in zip(numbers, frames):
        rgb = fr.pixels[40:440, 30:480].astype(np.float32) / 255.0
        h, w = rgb.shape[:2]
        alpha = np.linspace(0, 1, w, dtype=np.float32)[None, :, None].repeat(h, 0)
        depth = np.full((h, w, 1), 10.0 + n, np.float32)
        images.write_exr(folder / f"plate.{n:04d}.exr", np.concatenate([rgb, alpha, depth], -1), CHANNELS,
                         data_window=(30, 40, 30 + w - 1, 40 + h - 1), display_window=(0, 0, 511, 511))
    return str(folder / "plate.%04d.exr")


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hosts")
    d = Daemon("--engine", "identity", roots=[tmp], tmp=tmp)
    try:
        yield d, tmp
    finally:
        d.kill()


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The real engine (CPU: keep clips to a few frames), with its analysis cache in a temp folder."""
    tmp = tmp_path_factory.mktemp("hosts_real")
    d = Daemon("--cache", str(tmp / "cache"), roots=[tmp], tmp=tmp)
    try:
        yield d, tmp
    finally:
        d.kill()


# ---- parameters ---------------------------------------------------------------------------------------------

def test_knob_specs_come_from_the_daemons_describe(identity):
    d, _ = identity
    link = DaemonLink(LinkConfig(d.endpoint))
    described = link.describe()
    assert described is not None
    # the built-in list hosts use without a daemon is what a version-1 daemon describes
    assert [dict(p) for p in described["parameters"]] == [dict(p) for p in FALLBACK_PARAMETERS]
    specs = {s.name: s for s in knob_specs(described["parameters"])}
    assert list(specs) == [p["name"] for p in described["parameters"]]
    assert specs["emotion"].kind == "choice" and specs["emotion"].default == "happy"
    assert specs["emotion"].options[-1] == REFERENCE_OPTION and "disgusted" in specs["emotion"].options
    i = specs["intensity"]
    assert (i.kind, i.minimum, i.maximum, i.default, i.animatable) == ("double", 0.0, 1.5, 1.0, True)
    assert specs["face"].optional and specs["face"].minimum == 0 and not specs["face"].animatable
    assert specs["reference"].kind == "file" and specs["speech"].options == ("auto", "preserve", "free")
    assert specs["mix"].host_side and not specs["intensity"].host_side
    link.close()


def test_unknown_or_malformed_descriptors_are_skipped_with_a_warning():
    warnings: list[str] = []
    specs = knob_specs([
        {"name": "intensity", "kind": "double", "min": 0, "max": 1.5, "default": 1.0},
        {"name": "curve_editor", "kind": "curve2d", "default": None},        # a kind this host does not know
        {"name": "__class__", "kind": "string"},                              # not a parameter name
        {"kind": "double"},                                                   # no name
        {"name": "emotion", "kind": "choice", "options": []},                # a choice with no options
        {"name": "intensity", "kind": "double", "min": 0, "max": 1},         # a second one
        "not a mapping",
    ], warn=warnings.append)
    assert [s.name for s in specs] == ["intensity"]
    assert len(warnings) == 6
    assert any("curve_editor" in w and "curve2d" in w and "choice, double" in w for w in warnings)


def test_open_params_check_names_kinds_and_ranges():
    specs = knob_specs()
    params = open_params(specs, {"emotion": "sad", "intensity": 0.7, "regions": "  ", "face": None,
                                 "reference": "", "mix": 0.5, "neutral_frame": 12.0})
    assert params == {"emotion": "sad", "intensity": 0.7, "neutral_frame": 12}      # mix is host-side
    with pytest.raises(InvalidParameterError, match=r"unknown parameter.*'colour'.*valid: emotion, intensity"):
        open_params(specs, {"colour": "red"})
    with pytest.raises(InvalidParameterError, match=r"between 0 and 1.5"):
        open_params(specs, {"intensity": 2.0})
    with pytest.raises(InvalidParameterError, match=r"valid: neutral, happy, sad"):
        open_params(specs, {"emotion": "joyful"})
    with pytest.raises(InvalidParameterError, match=r"must be a number"):
        open_params(specs, {"intensity": "lots"})
    with pytest.raises(InvalidParameterError, match=r"whole number"):
        open_params(specs, {"face": 1.5})


def test_an_animated_intensity_becomes_keys_the_daemon_eases_back_to_the_curve():
    from ned_fx.manipulation.prototypes import evaluate_keys as daemon_evaluate, parse_keys

    frames = list(range(1001, 1101))
    curve = [0.2] * 20 + list(np.linspace(0.2, 1.2, 40)) + [1.2] * 10 + list(0.7 + 0.5 * np.cos(np.linspace(0, 3, 30)))
    keys = keys_from_samples(frames, curve, "happy:0.7,surprised:0.3", tolerance=0.002)
    assert keys.split(",")[0].startswith("1001:happy*0.7+surprised*0.3:")
    n_keys = len(keys.split(","))
    assert n_keys < 60, f"{n_keys} keys for 100 frames: the flat stretches should cost two keys each"
    _, intensity = daemon_evaluate(parse_keys(keys, 1.0, 1.5), np.array(frames))
    assert np.abs(intensity - np.round(curve, 4)).max() <= 0.002 + 1e-9
    assert np.allclose(evaluate_keys(keys, frames), intensity)
    flat = keys_from_samples(frames, [0.5] * 100, "sad")
    assert flat == "1001:sad:0.5,1100:sad:0.5"
    assert blend_for_keys("happy") == "happy"
    with pytest.raises(InvalidParameterError):
        keys_from_samples([3, 2], [0.1, 0.2], "sad")


# ---- analysis and frames against a real daemon ---------------------------------------------------------------

def test_analysis_then_frames_out_of_order_round_trip_exactly(identity):
    d, tmp = identity
    plate = _plate(tmp / "plate")
    link = DaemonLink(LinkConfig(d.endpoint))
    updates, threads = [], []

    def post(fn, *args):                  # a host's "run on my main thread": here, record who called
        threads.append(threading.current_thread().name)
        fn(*args)

    controller = AnalysisController(link, ShotRequest(plate, "1001-1004", {"emotion": "happy"}, "release 114"),
                                    on_update=updates.append, post=post).start()
    final = controller.wait(20)
    assert final.state == "ready" and final.percent == 100 and final.handle is not None
    assert [u.state for u in updates][0] == "connecting" and updates[-1] is final
    assert set(threads) == {"ned-fx-analysis"}, "updates come from the worker; the host decides where they run"
    assert final.handle.wire_params["consent"] == "release 114"

    shot = final.handle.bind(link.client())
    rng = np.random.default_rng(7)
    fmt = (512, 512)
    for frame in (1004, 1001, 1003, 1002):            # any order
        bbox = (30, 72, 480, 472)                     # Nuke: x, y, r, t (y up, exclusive)
        pixels = rng.random((bbox[3] - bbox[1], bbox[2] - bbox[0], 5)).astype(np.float32)
        image = from_nuke(pixels, CHANNELS, bbox, fmt, colorspace="linear")
        assert image.data_window == (30, 40, 479, 439) and image.display_window == (0, 0, 511, 511)
        assert nuke_bbox(image.data_window, fmt) == bbox
        planes = {c: np.ascontiguousarray(pixels[:, :, i]) for i, c in enumerate(CHANNELS)}
        assert np.array_equal(from_nuke(planes, None, bbox, fmt).pixels, pixels)        # NDK-style planes
        assert np.array_equal(from_nuke(np.moveaxis(pixels, -1, 0), CHANNELS, bbox, fmt, planar=True).pixels,
                              pixels)
        out, reason = render_image(shot, frame, image)
        assert reason == "identity engine"
        assert all(np.array_equal(to_planes(out)[c], planes[c]) for c in CHANNELS)
        assert out.row_order == "bottom_up" and out.channels == CHANNELS and out.data_window == image.data_window
        assert out.pixels.dtype == np.float32 and np.array_equal(out.pixels, pixels)
        half, _ = render_image(shot, frame, image, mix=0.5)     # identity: any mix gives the source back
        assert np.array_equal(half.pixels, pixels)

    out_dir = tmp / "edited"
    out_dir.mkdir()
    order = ordered_frames(range(1001, 1005), current=1003)
    assert order == [1003, 1004, 1002, 1001]
    done = []
    renderer = FrameRenderer(link, final.handle, out_dir / "edit.%04d.exr", order, on_frame=done.append).start()
    summary = renderer.wait(20)
    assert summary.rendered == tuple(order) and not summary.failed and [x.frame for x in done] == order
    from ned_fx.media import read_image

    for n in range(1001, 1005):
        src, got = read_image(Path(plate.replace("%04d", f"{n:04d}"))), read_image(out_dir / f"edit.{n:04d}.exr")
        assert got.channels == src.channels + ("ned.matte",) and src.channels == CHANNELS   # the daemon's matte
        assert got.data_window == src.data_window == (30, 40, 479, 439)
        assert got.display_window == (0, 0, 511, 511)
        assert np.array_equal(got.pixels[..., :-1], src.pixels)
        assert not got.pixels[..., -1].any(), "the identity engine edits nothing: its matte is 0"
    again = FrameRenderer(link, final.handle, out_dir / "edit.%04d.exr", order).start().wait(20)
    assert again.skipped == tuple(order) and not again.rendered       # a resumed render keeps what is there
    with pytest.raises(InvalidParameterError, match="do not fill the bbox"):
        from_nuke(np.zeros((10, 10, 3), np.float32), ("R", "G", "B"), (0, 0, 11, 10), fmt)
    with pytest.raises(Exception, match="not in the session"):
        render_image(shot, 1010, HostImage(np.zeros((4, 4, 3), np.float32), ("R", "G", "B")))
    link.close()


def test_host_pixels_bottom_up_give_the_same_edit_as_the_daemons_own_read(real):
    """Real engine, 3 frames of d12: the host's bottom-up rows are flipped for the engines and back."""
    d, tmp = real
    link = DaemonLink(LinkConfig(d.endpoint, timeout=300.0))
    controller = AnalysisController(link, ShotRequest(str(footage("d12.mp4")), "0-2",
                                                      {"emotion": "happy", "intensity": 1.0})).start()
    final = controller.wait(300)
    assert final.state == "ready", final.message
    shot = final.handle.bind(link.client())
    out = tmp / "own"
    out.mkdir()
    path, reason = render_to_file(shot, 1, out / "f.%04d.png")
    assert reason is None
    from ned_fx.media import open_media, read_image

    own = read_image(path).pixels
    with open_media(footage("d12.mp4"), "1") as src:
        source = next(iter(src)).pixels
    assert np.abs(own.astype(int) - source.astype(int)).max() > 20, "the face must actually change"
    host = from_nuke(source[::-1].copy(), ("R", "G", "B"), (0, 0, 512, 512), (512, 512))
    edited, _ = render_image(shot, 1, host)
    assert np.array_equal(edited.pixels[::-1], own)
    unchanged, _ = render_image(shot, 1, host, mix=0.0)
    assert np.array_equal(unchanged.pixels, host.pixels)
    half, _ = render_image(shot, 1, host, mix=0.5)
    expect = apply_mix(host.pixels, edited.pixels, 0.5)
    assert np.array_equal(half.pixels, expect)
    assert np.abs(half.pixels.astype(int) - edited.pixels.astype(int)).max() > 5
    link.close()


def test_cancel_a_running_analysis(real):
    d, _ = real
    link = DaemonLink(LinkConfig(d.endpoint))
    seen = []
    controller = AnalysisController(link, ShotRequest(str(footage("d3.mp4")), None, {"emotion": "sad"}),
                                    on_update=seen.append, poll=0.1).start()
    deadline = time.monotonic() + 60
    while not any(u.state == "analysing" and u.done > 0 for u in seen):
        assert time.monotonic() < deadline, f"no progress reported: {seen[-1:]}"
        time.sleep(0.05)
    started = time.monotonic()
    controller.cancel()
    final = controller.wait(30)
    assert final.state == "cancelled" and final.code == "cancelled"
    assert time.monotonic() - started < 10
    assert 0 < final.done < final.total == 354
    link.close()


def test_no_daemon_answers_within_3s_then_recovers(tmp_path):
    port = free_port()
    link = DaemonLink(LinkConfig(f"tcp://127.0.0.1:{port}"))
    t0 = time.monotonic()
    status = link.check()
    assert time.monotonic() - t0 < 3.0
    assert not status.ok and "no ned-fx daemon answered" in status.message and "passed through" in status.message
    plate = _plate(tmp_path / "plate", range(1, 3))
    t0 = time.monotonic()
    update = AnalysisController(link, ShotRequest(plate, "1-2", {"emotion": "happy"})).start().wait(10)
    assert time.monotonic() - t0 < 3.0
    assert update.state == "unavailable" and update.final and "ned-fx serve" in update.message
    d = Daemon("--engine", "identity", port=port, roots=[tmp_path], tmp=tmp_path)
    try:
        assert link.check().ok and link.status.engine == "identity"
        update = AnalysisController(link, ShotRequest(plate, "1-2", {"emotion": "happy"})).start().wait(10)
        assert update.state == "ready"
    finally:
        d.kill()
        link.close()


# ---- files the bridges write -------------------------------------------------------------------------------

@pytest.mark.parametrize("compression", ["none", "zips", "zip"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_exr_files_round_trip_with_openexr(tmp_path, compression, dtype):
    from ned_fx.media import Frame, read_image, write_image

    rng = np.random.default_rng(3)
    px = (rng.standard_normal((37, 53, 5)) * 4).astype(dtype)           # values above 1 and below 0 too
    path = tmp_path / "a.exr"
    images.write_exr(path, px, CHANNELS, data_window=(10, -3, 62, 33), display_window=(0, 0, 99, 49),
                     compression=compression, attributes={"owner": "sh010", "nuke/frame": 1001})
    theirs = read_image(path)
    assert theirs.channels == CHANNELS and theirs.pixels.dtype == dtype and np.array_equal(theirs.pixels, px)
    assert theirs.data_window == (10, -3, 62, 33) and theirs.display_window == (0, 0, 99, 49)
    assert theirs.metadata["owner"] == "sh010" and theirs.metadata["nuke/frame"] == 1001
    # and OpenEXR's files read back here, attributes carried
    write_image(tmp_path / "b.exr", Frame(1, px, CHANNELS, (10, -3, 62, 33), (0, 0, 99, 49),
                                          metadata={"camera": "A"}), compression=compression)
    ours = images.read_exr(tmp_path / "b.exr")
    assert ours.channels == CHANNELS and np.array_equal(ours.pixels, px) and ours.data_window == (10, -3, 62, 33)
    assert images.attribute_value(*ours.attributes["camera"]) == "A"
    assert images.same_exr_content(path, tmp_path / "b.exr")


def test_image_files_refuse_what_they_cannot_hold(tmp_path):
    from ned_fx.media import Frame, read_image, write_image

    write_image(tmp_path / "p.exr", Frame(1, np.zeros((4, 4, 3), np.float16), ("R", "G", "B")), compression="piz")
    with pytest.raises(UnsupportedFormatError, match="valid: none, rle, zips, zip"):
        images.read_exr(tmp_path / "p.exr")
    with pytest.raises(InvalidParameterError, match="PNG has no data window"):
        images.write_frame(tmp_path / "x.0001.png", np.zeros((4, 4, 3), np.uint8), ("R", "G", "B"),
                           (1, 1, 4, 4), (0, 0, 9, 9))
    with pytest.raises(UnsupportedFormatError, match="valid: .exr .png"):
        images.write_frame(tmp_path / "x.tif", np.zeros((4, 4, 3), np.uint8), ("R", "G", "B"))
    for dtype in (np.uint8, np.uint16):
        px = (np.random.default_rng(1).random((9, 11, 4)) * np.iinfo(dtype).max).astype(dtype)
        images.write_png(tmp_path / "a.png", px)
        got = read_image(tmp_path / "a.png")
        assert got.channels == ("R", "G", "B", "A") and np.array_equal(got.pixels, px)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary file left behind"


def test_the_plain_runner_writes_every_frame_and_reports_each_shot(identity, tmp_path):
    from ned_fx.hosts.resolve import Plan, PlannedShot
    from ned_fx.hosts.runner import run
    from ned_fx.media import open_media, read_image

    d, served = identity
    good = PlannedShot("d12_happy", "d12.mp4", str(footage("d12.mp4")), 5, 8,
                       str(tmp_path / "d12" / "d12_happy.%04d.png"), 86400, 1, {"emotion": "happy"}, "rel 1")
    bad = PlannedShot("gone", "gone.mov", str(served / "missing.mov"), 0, 3, str(tmp_path / "gone.%04d.png"),
                      86500, 1, {"emotion": "happy"})
    events = []
    link = DaemonLink(LinkConfig(d.endpoint))
    results = run(Plan((good, bad), (), "tl", d.endpoint), link, events.append)
    assert [r["ok"] for r in results] == [True, False]
    assert results[0]["written"] == 4 and results[1]["name"] == "gone" and "missing.mov" in results[1]["error"]
    with open_media(footage("d12.mp4"), "5-8") as src:
        for fr in src:
            assert np.array_equal(read_image(tmp_path / "d12" / f"d12_happy.{fr.number:04d}.png").pixels, fr.pixels)
    assert [e["frame"] for e in events if e["event"] == "frame"] == [5, 6, 7, 8]
    again = run(Plan((good,), (), "tl", d.endpoint), link, events.append)
    assert again[0]["kept"] == 4 and again[0]["written"] == 0
    link.close()


# ---- hygiene -----------------------------------------------------------------------------------------------------

FORBIDDEN = ("torch", "ned_fx.pipeline", "ned_fx.tracking", "ned_fx.manipulation", "ned_fx.rendering",
             "ned_fx.compositing")


def test_host_modules_import_no_torch_no_stages_and_do_nothing_at_import(tmp_path):
    stand_ins = REPO / "tests" / "stand_ins"
    code = (
        "import sys\n"
        f"sys.path[:0] = [{str(stand_ins)!r}, {str(REPO / 'host_bridges' / 'nuke')!r}, "
        f"{str(REPO / 'host_bridges' / 'resolve')!r}]\n"
        "import ned_fx.hosts\n"
        "assert 'numpy' not in sys.modules, 'ned_fx.hosts itself must load nothing'\n"
        "import ned_fx.hosts.params, ned_fx.hosts.resolve\n"
        "assert 'numpy' not in sys.modules and 'zmq' not in sys.modules, 'Resolve-side modules: stdlib only'\n"
        "import ned_fx.hosts.link, ned_fx.hosts.analysis, ned_fx.hosts.frames, ned_fx.hosts.images\n"
        "import ned_fx.hosts.runner\n"
        "import nuke, ned_fx_nuke, ned_fx_emotion\n"
        "print(' '.join(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO), "NED_FX_HOME": str(tmp_path / "home")})
    assert out.returncode == 0, out.stderr
    loaded = set(out.stdout.split())
    bad = sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert not bad, f"host modules loaded {bad}"
    assert list(tmp_path.iterdir()) == [], "importing must write nothing"


def test_service_installer_writes_a_user_unit_running_the_venvs_daemon(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    script = REPO / "install" / "service.sh"
    dry = subprocess.run([str(script), "--dry-run", "--root", str(tmp_path), "--root", "/shows/a b",
                          "--bind", "tcp://127.0.0.1:6000"], capture_output=True, text=True, env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"would write {home}/.config/systemd/user/ned-fx.service" in dry.stdout
    exec_line = next(line for line in dry.stdout.splitlines() if line.startswith("ExecStart="))
    assert exec_line == (f'ExecStart="{REPO}/.venv/bin/ned-fx" serve --bind "tcp://127.0.0.1:6000" --device "auto" '
                         f'--engine ned_fx --root "{tmp_path}" --root "/shows/a b"')
    assert "systemctl --user daemon-reload && systemctl --user enable --now ned-fx.service" in dry.stdout
    assert not (home / ".config").exists(), "--dry-run changes nothing"
    unit_dir = tmp_path / "units"
    if not (REPO / ".venv" / "bin" / "ned-fx").exists():
        pytest.skip("no .venv/bin/ned-fx: run install/setup.sh")
    for expected in ("wrote", "unchanged"):                     # idempotent
        run = subprocess.run([str(script), "--no-start", "--unit-dir", str(unit_dir), "--root", str(tmp_path)],
                             capture_output=True, text=True, env=env)
        assert run.returncode == 0 and run.stdout.startswith(expected), run.stdout + run.stderr
    unit = (unit_dir / "ned-fx.service").read_text()
    assert "@EXEC@" not in unit and "@REPO@" not in unit and "WantedBy=default.target" in unit
    assert f"WorkingDirectory={REPO}" in unit and "Restart=on-failure" in unit
    bad = subprocess.run([str(script), "--engine", "tensorrt"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "valid: ned_fx, identity" in bad.stderr
    assert subprocess.run([str(script), "--help"], capture_output=True, text=True, env=env).stdout.startswith("usage")
