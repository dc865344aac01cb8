"""A new user's first hour: every output and option is checked before any decoding or tracking, a failed edit
leaves nothing it made behind, and a missing input is told at once (before the heavy imports)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, footage
from ned_fx.errors import InputNotFoundError, InvalidParameterError, NoFaceError
from ned_fx.media import write_image
from ned_fx import pipeline
from ned_fx.pipeline import EditInstruction, edit_media

HAPPY = EditInstruction(emotion="happy")


@pytest.fixture
def no_tracking(monkeypatch):
    """Any tracking fails the test: the checks must come first."""
    def tracked(*args, **kwargs):
        raise AssertionError("the shot was analysed before the options were checked")

    monkeypatch.setattr(pipeline, "_analyse", tracked)


def test_outputs_and_options_are_checked_before_any_tracking(tmp_path, no_tracking):
    clip = footage("d12.mp4")
    with pytest.raises(InvalidParameterError, match=r"\.xyz is not an output format; valid: stills .*\.png") as e:
        edit_media(clip, tmp_path / "x.xyz", HAPPY)
    assert ".bmp" not in str(e.value)                    # only formats that can carry provenance are offered
    with pytest.raises(InvalidParameterError, match="is a still but 6 frames"):
        edit_media(clip, tmp_path / "x.png", HAPPY, frames="0-5")
    with pytest.raises(InvalidParameterError, match=r"--preview .*a\.mp4 is the same file as the output"):
        edit_media(clip, tmp_path / "a.mp4", HAPPY, preview=tmp_path / "a.mp4")
    with pytest.raises(InvalidParameterError, match="cannot write the preview"):
        edit_media(clip, tmp_path / "a.mp4", HAPPY, preview=tmp_path / "a.txt")
    with pytest.raises(InvalidParameterError, match="cannot say it was edited"):
        edit_media(clip, tmp_path / "x.bmp", HAPPY, frames="0-0")
    with pytest.raises(InputNotFoundError):
        edit_media(tmp_path / "missing.mp4", tmp_path / "o.mp4", HAPPY)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_failed_edit_removes_the_folders_it_made(tmp_path):
    grey = tmp_path / "grey.png"
    write_image(grey, np.full((96, 96, 3), 128, np.uint8))           # no face in it
    with pytest.raises(NoFaceError):
        edit_media(grey, tmp_path / "out" / "deep" / "x.####.png", HAPPY)
    with pytest.raises(NoFaceError):
        edit_media(grey, tmp_path / "still" / "x.png", HAPPY, preview=tmp_path / "prev" / "p.png")
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(NoFaceError):
        edit_media(grey, kept / "x.####.png", HAPPY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grey.png", "kept"]
    assert list(kept.iterdir()) == []                    # no resume manifest of a sequence never written


def test_a_missing_input_is_told_before_the_heavy_imports(tmp_path):
    code = ("import sys\nfrom ned_fx.cli import main\n"
            f"rc = main(['edit', {str(tmp_path / 'nothere.mov')!r}, '-o', {str(tmp_path / 'o.mov')!r}, "
            "'--emotion', 'happy'])\nprint(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["2", "False"], out.stdout + out.stderr
    assert "nothere.mov" in out.stderr and "does not exist" in out.stderr


def test_integer_plates_write_to_exr_and_float_plates_to_png(tmp_path):
    """An 8-bit still edited to EXR is display-referred code / 255 (or sRGB-decoded with linearize); a float EXR
    edited to PNG comes back as 16-bit. Outside the face the values are the conversion of the plate's exactly."""
    from ned_fx.media import read_image

    photo = footage("people_0.png")
    src = read_image(photo).pixels
    out = edit_media(photo, tmp_path / "p.exr", HAPPY)
    assert out.edited
    exr = read_image(tmp_path / "p.exr").pixels
    assert exr.dtype == np.float16
    corner = (slice(0, 40), slice(0, 40))
    np.testing.assert_array_equal(exr[corner], (src[corner] / np.float32(255)).astype(np.float16))
    edit_media(photo, tmp_path / "lin.exr", HAPPY, linearize=True)
    lin = read_image(tmp_path / "lin.exr").pixels.astype(np.float64)
    v = src[corner] / 255.0
    want = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    np.testing.assert_allclose(lin[corner], want, atol=1e-3)
    edit_media(tmp_path / "lin.exr", tmp_path / "back.png", HAPPY, linearize=True)
    back = read_image(tmp_path / "back.png").pixels
    assert back.dtype == np.uint16
    np.testing.assert_allclose(back[corner] / 257.0, src[corner], atol=0.6)   # the round trip returns the codes


def test_serve_on_a_taken_port_says_which_and_by_whom():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "ned_fx.cli", "serve", "--port", str(port), "--engine",
                              "identity"], cwd=REPO, capture_output=True, text=True, timeout=120)
    err = out.stderr.strip().splitlines()
    assert out.returncode == 8 and len(err) == 1, out.stderr
    assert err[0].startswith("ned-fx: error:") and f"127.0.0.1:{port} is in use by process" in err[0]
    assert "Traceback" not in out.stderr


def test_the_regions_help_lists_every_name_regions_accepts():
    from ned_fx.cli import build_parser
    from ned_fx.manipulation import parse_regions
    from ned_fx.manipulation.expression import REGION_ALIASES, REGIONS

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for command in ("edit", "manipulate"):
        text = " ".join(sub[command].format_help().split())
        for name in (*REGIONS, *REGION_ALIASES):
            parse_regions(name)                          # accepted ...
            assert name in text, f"{command} --help does not list the region {name!r}"   # ... and listed


def test_every_failed_attempt_is_audited(tmp_path):
    from ned_fx.errors import UnreadableMediaError
    from ned_fx.provenance import AuditLog, read_audit_log

    log = AuditLog(tmp_path / "audit.jsonl", application="test")
    grey = tmp_path / "grey.png"
    write_image(grey, np.full((96, 96, 3), 128, np.uint8))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(NoFaceError):
        edit_media(grey, tmp_path / "o.png", HAPPY, audit=log)
    with pytest.raises(UnreadableMediaError):
        edit_media(bad, tmp_path / "o.png", HAPPY, audit=log)
    with pytest.raises(InvalidParameterError):        # a refused option is not an attempt: no line
        edit_media(grey, tmp_path / "o.xyz", HAPPY, audit=log)
    lines = read_audit_log(tmp_path / "audit.jsonl", strict=True)
    assert [(r["event"], r["status"]) for r in lines] == [("edit", "failed")] * 2
    assert "NoFaceError" in lines[0]["error"] and "UnreadableMediaError" in lines[1]["error"]
    assert lines[1]["shot"]["source"].endswith("bad.png") and lines[0]["params"]["emotion"] == "happy"


def test_every_command_has_a_description():
    from ned_fx.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name, parser in sub.items():
        assert parser.description, f"ned-fx {name} --help has no description"
