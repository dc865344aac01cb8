"""`ned-fx track` end to end: formats, bad input (clear message, no traceback, nothing lost), multi-face ids,
the track file and the preview."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, decode_rgb, footage
from ned_fx import topology
from ned_fx.cli import main
from ned_fx.media import write_image
from ned_fx.tracking import read_from_file


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_track_photo_writes_documented_file_and_preview(tmp_path, capsys):
    out = tmp_path / "t.npz"
    code, stdout, err = run_cli(capsys, "track", footage("people_0.png"), "-o", out, "--preview", tmp_path / "p.png")
    assert code == 0, err
    t = read_from_file(out)
    assert t.landmarks.shape == (1, 478, 3) and t.found.tolist() == [True]
    assert t.pose.shape == (1, 3, 4) and list(t.face_ids) == [0]
    assert (t.width, t.height) == (474, 474)
    # landmarks are in the input's pixel coordinates, inside the picture, eyes above the mouth
    lm = t.landmarks[0]
    assert (lm[:, :2] > 0).all() and (lm[:, :2] < 474).all()
    assert lm[33, 1] < lm[13, 1] and lm[263, 1] < lm[14, 1]
    assert lm[33, 0] < lm[263, 0], "the subject's right eye is at image left"
    preview = (tmp_path / "p.png")
    assert preview.stat().st_size > 10_000
    from ned_fx.media import read_image
    pic = read_image(preview).pixels
    src = decode_rgb("people_0.png")[0][0]
    changed = np.any(pic != src, axis=2)
    ys, xs = np.nonzero(changed)
    # the drawing covers the face (around the landmarks), not the picture's corners
    assert changed.mean() > 0.02 and not changed[:20, :20].any()
    assert xs.min() >= lm[:, 0].min() - 20 and xs.max() <= lm[:, 0].max() + 20
    assert "wrote" in stdout


def test_track_movie_range_and_mp4_preview(tmp_path, capsys):
    out = tmp_path / "t.npz"
    code, stdout, err = run_cli(capsys, "track", footage("d12.mp4"), "-o", out, "--frames", "10-29",
                                "--preview", tmp_path / "p.mp4", "-q")
    assert code == 0, err
    t = read_from_file(out)
    assert t.frame_numbers.tolist() == list(range(10, 30)) and t.found.all() and t.fps == 25.0
    from ned_fx.media import open_media
    with open_media(tmp_path / "p.mp4") as src:
        assert len(src) == 20 and (src.width, src.height) == (512, 512)


def _sequence(tmp_path: Path, frames: np.ndarray, first: int, pattern: str = "shot.{:04d}.png") -> Path:
    for i, f in enumerate(frames):
        write_image(tmp_path / pattern.format(first + i), f)
    return tmp_path / pattern.replace("{:04d}", "%04d")


def test_sequence_with_black_frames_reports_them_and_keeps_numbers(tmp_path, capsys):
    frames = decode_rgb("d12.mp4")[0][:6].copy()
    frames[2] = 0       # an all-black plate
    frames[3] = 0
    seq = _sequence(tmp_path, frames, 1001)
    out = tmp_path / "t.npz"
    hashes = {p: p.read_bytes() for p in tmp_path.glob("shot.*.png")}
    code, stdout, err = run_cli(capsys, "track", str(seq).replace("%04d", "####"), "-o", out, "-q")
    assert code == 0, err
    t = read_from_file(out)
    assert t.frame_numbers.tolist() == list(range(1001, 1007))
    assert t.found.tolist() == [True, True, False, False, True, True]
    assert np.isnan(t.landmarks[2]).all() and not np.isnan(t.landmarks[4]).any()
    assert "no face in 2 frame(s)" in stdout and "1003" in stdout
    assert all(p.read_bytes() == b for p, b in hashes.items()), "inputs must never be touched"


def test_high_bit_depth_float_and_grey_plates_track_like_8bit(tmp_path, capsys):
    rgb = decode_rgb("people_0.png")[0][0]
    ref_code, _, _ = run_cli(capsys, "track", footage("people_0.png"), "-o", tmp_path / "ref.npz", "-q")
    ref = read_from_file(tmp_path / "ref.npz").landmarks[0]
    iod = topology.inter_ocular(ref)
    linear = ((rgb / 255.0) ** 2.2).astype(np.float32)          # approximately scene-linear
    write_image(tmp_path / "p16.png", (rgb.astype(np.uint16) * 257))
    write_image(tmp_path / "pf.exr", linear, pixel_type="float")
    write_image(tmp_path / "ph.exr", linear.astype(np.float16), pixel_type="half")
    grey = (rgb @ np.array([0.299, 0.587, 0.114])).round().astype(np.uint8)[:, :, None]
    write_image(tmp_path / "grey.png", grey)
    for name, tol in (("p16.png", 0.01), ("pf.exr", 0.05), ("ph.exr", 0.05), ("grey.png", 0.05)):
        code, _, err = run_cli(capsys, "track", tmp_path / name, "-o", tmp_path / f"{name}.npz", "-q")
        assert code == 0, f"{name}: {err}"
        lm = read_from_file(tmp_path / f"{name}.npz").landmarks[0]
        err_iod = np.linalg.norm(lm[:468, :2] - ref[:468, :2], axis=1).mean() / iod
        assert err_iod < tol, f"{name}: {err_iod:.2%} from the 8-bit result"


@pytest.mark.parametrize("make,needle,code", [
    (lambda d: d / "missing.mov", "does not exist", 2),
    (lambda d: d / "nothing.%04d.exr", "nothing", 2),
    (lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt", "supported", 2),
])
def test_bad_inputs_give_a_clear_message(tmp_path, capsys, make, needle, code):
    path = make(tmp_path)
    got, out, err = run_cli(capsys, "track", path, "-o", tmp_path / "t.npz", "-q")
    assert got == code
    assert err.startswith("ned-fx: error:") and needle in err.lower() and "Traceback" not in err
    assert not (tmp_path / "t.npz").exists()


def test_corrupt_movie_and_truncated_image(tmp_path, capsys):
    data = footage("d12.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 5000)
    png = footage("people_0.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(png[: len(png) // 2])
    for name in ("cut.mp4", "junk.mp4", "cut.png"):
        code, out, err = run_cli(capsys, "track", tmp_path / name, "-o", tmp_path / "t.npz", "-q")
        assert code != 0 and err.startswith("ned-fx: error:") and name in err, err
        assert not (tmp_path / "t.npz").exists()


def test_output_may_not_overwrite_input(tmp_path, capsys):
    src = tmp_path / "x.npz"
    src.write_bytes(b"keep me")
    code, _, err = run_cli(capsys, "track", src, "-o", src, "-q")
    assert code == 2 and src.read_bytes() == b"keep me"


def test_two_faces_get_stable_ids_and_face_selection(tmp_path, capsys):
    """Two actors side by side for 12 frames: two ids, each staying on its own actor; --face picks one."""
    a = decode_rgb("d3.mp4")[0][:12]
    b = decode_rgb("WDA_AlexandriaOcasioCortez_000.mp4")[0][:12]
    seq = _sequence(tmp_path, np.concatenate([a, b], axis=2), 1)
    code, _, err = run_cli(capsys, "track", seq, "-o", tmp_path / "t.npz", "-q")
    assert code == 0, err
    t = read_from_file(tmp_path / "t.npz")
    assert sorted(t.face_ids.tolist()) == [0, 1]
    assert t.all_found.all()
    x = np.nanmean(t.all_landmarks[:, :, :468, 0], axis=2)          # N x F mean x per face per frame
    left = int(np.argmin(x[:, 0]))
    assert (x[left] < 512).all() and (x[1 - left] > 512).all(), "an id must stay on its actor"
    code, _, _ = run_cli(capsys, "track", seq, "-o", tmp_path / "t1.npz", "--face", str(t.face_ids[1 - left]), "-q")
    t1 = read_from_file(tmp_path / "t1.npz")
    assert np.nanmean(t1.landmarks[:, :468, 0]) > 512
    code, _, err = run_cli(capsys, "track", seq, "-o", tmp_path / "t2.npz", "--face", "7", "-q")
    assert code == 2 and "face ids in this shot: [0, 1]" in err


def test_console_script_reports_missing_weights_without_traceback(tmp_path):
    exe = REPO / ".venv" / "bin" / "ned-fx"
    assert exe.is_file(), "install/setup.sh makes .venv/bin/ned-fx"
    img = tmp_path / "x.png"
    write_image(img, np.zeros((64, 64, 3), np.uint8))
    result = subprocess.run([str(exe), "track", str(img), "-o", str(tmp_path / "t.npz")], capture_output=True,
                            text=True, env={"NED_FX_HOME": str(tmp_path / "empty"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 4
    assert "ned-fx weights install" in result.stderr and "Traceback" not in result.stderr
