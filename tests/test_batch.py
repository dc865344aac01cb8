"""``ned-fx batch`` against a real daemon process: several shots in flight (sequence, EXR plates, movie), output
frame numbers, the report, contact sheets, the provenance every output carries and the audit log, resume after a
kill, failures that do not stop other shots, a private daemon started and stopped, no daemon with --no-start, and
one short real-engine run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ned_fx.batch import read_from_file
from ned_fx.batch.runner import BatchConfig, run_batch
from ned_fx.media import Frame, open_media, read_image, sequence_path, write_image
from ned_fx.media.readers import read_provenance
from ned_fx.provenance import file_sha256, read_audit_log

from conftest import REPO, footage
from daemons import Daemon, ended, free_port


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    d = Daemon("--engine", "identity", roots=[base], tmp=base)
    try:
        yield d
    finally:
        d.kill()


def source_frames(path, frames=None) -> dict[int, np.ndarray]:
    with open_media(path, frames) as src:
        return {f.number: f.pixels.copy() for f in src}


def make_exr_plates(folder: Path, first: int = 1001, count: int = 4) -> str:
    """A float16 EXR sequence made from d12's frames, with a header attribute to carry."""
    folder.mkdir(parents=True, exist_ok=True)
    with open_media(footage("d12.mp4"), f"0-{count - 1}") as src:
        for i, f in enumerate(src):
            linear = (f.pixels.astype(np.float32) / 255.0) ** 2.2
            frame = Frame(first + i, linear.astype(np.float16), ("R", "G", "B"), metadata={"owner": "plate dept"})
            write_image(sequence_path(folder / "sh020.####.exr", first + i), frame)
    return str(folder / "sh020.####.exr")


def test_three_shots_report_contact_sheets_and_a_rerun(identity, tmp_path):
    d12, d3 = footage("d12.mp4"), footage("d3.mp4")
    plates = make_exr_plates(tmp_path / "plates")
    (tmp_path / "shots.yaml").write_text(
        "version: 1\ndefaults:\n  emotion: happy\n  intensity: 0.8\n  consent: release 114\nshots:\n"
        f"  - {{name: sh010, input: {d12}, output: out/sh010.####.png, frames: 0-7}}\n"
        f"  - {{name: sh020, input: plates/sh020.####.exr, output: out/sh020.####.exr, emotion: sad}}\n"
        f"  - {{name: sh030, input: {d3}, output: out/sh030.mov, frames: 5-16}}\n"
        f"  - {{name: sh040, input: {footage('d19.jpg')}, output: out/sh040.png}}\n")
    shots = read_from_file(tmp_path / "shots.yaml")
    audit = tmp_path / "logs" / "audit.jsonl"
    config = BatchConfig(endpoint=identity.endpoint, start_daemon=False, jobs=2, audit_log=str(audit))
    calls = []
    report = run_batch(shots, config, progress=lambda *a: calls.append(a))

    assert [(s.name, s.status) for s in report.shots] == [("sh010", "done"), ("sh020", "done"), ("sh030", "done"),
                                                          ("sh040", "done")]
    assert np.array_equal(read_image(tmp_path / "out" / "sh040.png").pixels, read_image(footage("d19.jpg")).pixels)
    # sequence from a movie: output numbers are the movie's 0-based indices, pixels exactly the daemon's (identity)
    src = source_frames(d12, "0-7")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("sh010.*.png")) == [f"sh010.{n:04d}.png" for n in range(8)]
    for n, pixels in src.items():
        assert np.array_equal(read_image(out / f"sh010.{n:04d}.png").pixels, pixels)
    # EXR plates keep their numbers, half floats and header attributes; the edit's provenance rides along
    exr_src = source_frames(plates)
    assert sorted(exr_src) == [1001, 1002, 1003, 1004]
    for n, pixels in exr_src.items():
        got = read_image(out / f"sh020.{n}.exr")
        assert got.pixels.dtype == np.float16 and np.array_equal(got.pixels, pixels)
        assert got.metadata["owner"] == "plate dept"
        rec = read_provenance(out / f"sh020.{n}.exr")
        assert (rec.source, rec.source_frame, rec.emotion, rec.intensity) == ("sh020.####.exr", n, "sad", 0.8)
        # each frame names its own plate file by hash
        assert rec.source_sha256 == file_sha256(sequence_path(plates, n))
        assert (rec.consent, rec.application, rec.renderer, rec.kind) == (
            "release 114", "ned-fx batch", "identity", "image")
        # the identity engine changes nothing, and every frame says so
        assert (rec.edited, rec.passed_through) == (False, "identity engine") and "unchanged" in rec.summary
    # every PNG frame too: its own source frame (the movie's index), the movie's hash, the shot's instruction
    d12_hash = file_sha256(d12)
    for n in (0, 7):
        rec = read_provenance(out / f"sh010.{n:04d}.png")
        assert (rec.source, rec.source_frame, rec.source_sha256, rec.emotion) == ("d12.mp4", n, d12_hash, "happy")
        assert (rec.consent, rec.edited, rec.passed_through) == ("release 114", False, "identity engine")
        assert rec.frames.startswith("0-7")
    assert read_provenance(out / "sh040.png").source == "d19.jpg"
    # a movie output: 12 frames, the source's rate, its audio
    with open_media(out / "sh030.mov") as mov:
        assert len(mov) == 12 and mov.fps == pytest.approx(30.0) and mov.has_audio
    rec = read_provenance(out / "sh030.mov")
    assert (rec.kind, rec.source, rec.source_frame, rec.emotion) == ("video", "d3.mp4", None, "happy")
    assert rec.frames.startswith("5-16")
    assert (rec.consent, rec.edited, rec.passed_through) == ("release 114", False, "identity engine")
    # the report on disk
    doc = json.loads(Path(report.path).read_text())
    assert report.path == str(tmp_path / "shots_report.json")
    assert doc["summary"] == {"done": 4, "failed": 0, "skipped": 0, "interrupted": 0, "not started": 0}
    assert doc["daemon"]["started_here"] is False and doc["interrupted"] is False
    by = {s["name"]: s for s in doc["shots"]}
    assert by["sh010"]["frames_total"] == 8 and by["sh010"]["passed_through"]["identity engine"]["count"] == 8
    assert by["sh020"]["frames"] == "1001-1004 (4 frames)" and by["sh030"]["outputs"] == [str(out / "sh030.mov")]
    assert all(s["seconds"]["total"] > 0 for s in doc["shots"])
    # a contact sheet per shot: header + 4 rows of (caption + 480x480 before|after) for the 512x512 clip
    for name in ("sh010", "sh020", "sh030"):
        sheet = read_image(by[name]["contact_sheet"])
        assert sheet.pixels.shape[1] == 2 * 480 + 6
    assert read_image(by["sh010"]["contact_sheet"]).pixels.shape[:2] == (3 * 22 + 10 + 4 * (6 + 22 + 480), 966)
    assert read_image(by["sh020"]["contact_sheet"]).pixels.shape[0] == 3 * 22 + 10 + 4 * (6 + 22 + 480)
    sheet = read_provenance(by["sh020"]["contact_sheet"])        # it shows the edit: it says so
    assert (sheet.kind, sheet.emotion, sheet.consent, sheet.source, sheet.source_frame) == (
        "image", "sad", "release 114", "sh020.####.exr", None)
    assert (sheet.edited, sheet.passed_through) == (False, "identity engine")
    # the audit log: one line per shot (who, shot, parameters, consent, every output with its hash), one per run
    lines = read_audit_log(audit, strict=True)
    assert [l["event"] for l in lines].count("batch_shot") == 4 and lines[-1]["event"] == "batch"
    assert all(l["schema"] == "ned_fx.audit/1" and l["who"]["application"] == "ned-fx batch" for l in lines)
    assert lines[-1]["summary"] == {"done": 4, "failed": 0, "skipped": 0, "interrupted": 0, "not started": 0}
    assert lines[-1]["report"] == report.path
    shot_lines = {l["shot"]["name"]: l for l in lines if l["event"] == "batch_shot"}
    assert {l["run"] for l in lines} == {lines[-1]["run"]}
    for name, line in shot_lines.items():
        assert line["status"] == "done" and line["consent"] == "release 114" and line["engine"] == "identity"
        assert Path(line["contact_sheet"]["path"]) == Path(by[name]["contact_sheet"])
        for entry in line["outputs"] + [line["contact_sheet"]]:
            assert entry["sha256"] == file_sha256(entry["path"]), entry
    assert shot_lines["sh020"]["params"] == {"emotion": "sad", "intensity": 0.8}
    assert shot_lines["sh020"]["shot"]["frames"] == "1001-1004" and shot_lines["sh020"]["passed_through"] == {
        "identity engine": 4}
    assert sorted(e["path"] for e in shot_lines["sh010"]["outputs"]) == [str(out / f"sh010.{n:04d}.png")
                                                                          for n in range(8)]
    assert [e["path"] for e in shot_lines["sh030"]["outputs"]] == [str(out / "sh030.mov")]
    assert shot_lines["sh040"]["source_sha256"] == file_sha256(footage("d19.jpg"))
    stages = {c[1] for c in calls}
    assert {"total", "analysing", "rendering", "done"} <= stages

    # the same list again: sequences and the still are complete (kept, untouched), the movie is redone whole
    before = {p: p.stat().st_mtime_ns for p in out.glob("sh0[124]0.*")}
    assert len(before) == 8 + 4 + 1
    again = run_batch(shots, config)
    assert [(s.name, s.status, len(s.resumed)) for s in again.shots] == [
        ("sh010", "skipped", 8), ("sh020", "skipped", 4), ("sh030", "done", 0), ("sh040", "skipped", 1)]
    assert {p: p.stat().st_mtime_ns for p in out.glob("sh0[124]0.*")} == before
    rerun = [l for l in read_audit_log(audit)[len(lines):] if l["event"] == "batch_shot"]
    assert {l["shot"]["name"]: (l["status"], len(l["outputs"])) for l in rerun} == {
        "sh010": ("skipped", 0), "sh020": ("skipped", 0), "sh030": ("done", 1), "sh040": ("skipped", 0)}
    skipped = {l["shot"]["name"]: l for l in rerun if l["status"] == "skipped"}
    # a kept shot's line still names the renderer and the source of the frames it kept (read off the frames)
    assert {n: l["renderer"] for n, l in skipped.items()} == {n: "identity" for n in ("sh010", "sh020", "sh040")}
    assert skipped["sh040"]["source_sha256"] == file_sha256(footage("d19.jpg"))
    # another instruction is another edit: nothing is kept
    (tmp_path / "shots.yaml").write_text((tmp_path / "shots.yaml").read_text().replace("intensity: 0.8",
                                                                                        "intensity: 0.5"))
    third = run_batch(read_from_file(tmp_path / "shots.yaml"), BatchConfig(endpoint=identity.endpoint,
                                                                          start_daemon=False, shots=("sh010",)))
    assert [(s.name, s.status, len(s.resumed), len(s.passed_through)) for s in third.shots] == [
        ("sh010", "done", 0, 8), ("sh020", "skipped", 0, 0), ("sh030", "skipped", 0, 0), ("sh040", "skipped", 0, 0)]
    assert third.shots[1].reason == "not selected"


def test_a_portrait_phone_movie_comes_back_as_it_came(identity, tmp_path):
    """A shot from a phone's portrait video: the daemon gets the frames upright (as a player shows them) and the
    delivered movie is stored as the source was (sideways, tagged with its rotation)."""
    import av

    from conftest import phone_movie

    with open_media(footage("d12.mp4"), "0-3") as src:
        pictures = [f.pixels[:, 64:448].copy() for f in src]            # 384 wide, 512 high
    phone = phone_movie(tmp_path / "phone.mov", pictures, 90, codec="png")
    (tmp_path / "shots.yaml").write_text(
        f"version: 1\nshots:\n  - {{name: sh050, input: {phone}, output: out/sh050.mov, emotion: happy}}\n")
    report = run_batch(read_from_file(tmp_path / "shots.yaml"),
                       BatchConfig(endpoint=identity.endpoint, start_daemon=False,
                                   audit_log=str(tmp_path / "audit.jsonl")))
    assert [(s.name, s.status) for s in report.shots] == [("sh050", "done")]
    with av.open(str(tmp_path / "out" / "sh050.mov")) as c:
        coded = next(c.decode(video=0))
        assert (coded.width, coded.height, round(coded.rotation)) == (512, 384, 90)
    with open_media(tmp_path / "out" / "sh050.mov") as mov:
        assert (mov.width, mov.height, len(mov)) == (384, 512, 4)
        for frame, picture in zip(mov, pictures):       # the identity engine: the pictures, through x264
            assert np.abs(frame.pixels.astype(int) - picture).mean() < 3.0


def test_a_ten_bit_prores_shot_comes_back_ten_bit_prores_at_its_own_times(identity, tmp_path):
    """A 10-bit ProRes shot goes to the daemon as 16-bit frames and comes back as 10-bit ProRes (its levels kept:
    the identity engine's frames are the plate's), not 8-bit H.264; a phone's variable frame rate keeps its times."""
    import av

    from conftest import ten_bit_prores, vfr_movie

    with open_media(footage("d12.mp4"), "0-3") as src:
        pictures = [f.pixels.copy() for f in src]
    deep = ten_bit_prores(tmp_path / "plate.mov", [p.astype(np.uint16) * 257 + 128 for p in pictures])
    phone = vfr_movie(tmp_path / "phone.mp4", pictures, [0, 40, 140, 180])
    (tmp_path / "shots.yaml").write_text(
        f"version: 1\nshots:\n  - {{name: sh060, input: {deep}, output: out/sh060.mov, emotion: happy}}\n"
        f"  - {{name: sh070, input: {phone}, output: out/sh070.mp4, emotion: happy}}\n")
    report = run_batch(read_from_file(tmp_path / "shots.yaml"),
                       BatchConfig(endpoint=identity.endpoint, start_daemon=False,
                                   audit_log=str(tmp_path / "audit.jsonl")))
    assert [(s.name, s.status) for s in report.shots] == [("sh060", "done"), ("sh070", "done")]
    with av.open(str(tmp_path / "out" / "sh060.mov")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.name, str(cc.profile), cc.pix_fmt) == ("prores", "HQ", "yuv422p10le")
    with open_media(tmp_path / "out" / "sh060.mov") as mov, open_media(deep) as src:
        for a, b in zip(mov, src):
            assert a.pixels.dtype == np.uint16 and np.abs(a.pixels.astype(int) - b.pixels).mean() < 60
    with av.open(str(tmp_path / "out" / "sh070.mp4")) as c:
        assert [round(float(f.pts * f.time_base) * 1000) for f in c.decode(video=0)] == [0, 40, 140, 180]


def test_resume_after_a_kill(identity, tmp_path):
    """Kill the batch mid-shot (SIGKILL), run it again: frames already written are not rewritten, the rest are
    written, and no frame is half-written."""
    d12 = footage("d12.mp4")
    total = 80
    (tmp_path / "shots.yaml").write_text(f"shots:\n  - {{name: long, input: {d12}, output: out/long.####.png, "
                                         f"frames: 0-{total - 1}, emotion: happy}}\n")
    cmd = [sys.executable, "-m", "ned_fx.cli", "batch", str(tmp_path / "shots.yaml"), "--daemon", identity.endpoint,
           "--no-start", "-q", "--no-contact-sheets"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    out = tmp_path / "out"
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("long.*.png"))) < 20:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the batch wrote no frames"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    first_run = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("long.*.png")}
    assert 20 <= len(first_run) < total, "killed mid-shot"
    assert not (tmp_path / "shots_report.json").exists(), "a killed run writes no report"

    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "shots_report.json").read_text())
    (shot,) = doc["shots"]
    assert shot["status"] == "done" and shot["resumed"]["count"] == len(first_run)
    assert shot["passed_through"]["identity engine"]["count"] == total - len(first_run)
    for name, stamp in first_run.items():
        p = out / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == stamp, f"{name} was rewritten"
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == [f"long.{n:04d}.png" for n in range(total)]
    assert [p.name for p in out.iterdir() if ".tmp" in p.name] == [], "stale temporary files were removed"
    src = source_frames(d12, f"0-{total - 1}")
    for n in (0, 19, 20, 50, total - 1):                   # complete and right, before and after the kill
        assert np.array_equal(read_image(out / f"long.{n:04d}.png").pixels, src[n])


def test_a_failed_shot_does_not_stop_the_others(identity, tmp_path, capsys):
    from ned_fx.cli import main

    import shutil
    import tempfile

    d12 = footage("d12.mp4")
    elsewhere = Path(tempfile.mkdtemp(prefix="ned-fx-outside-", dir="/tmp"))   # outside the daemon's --root
    try:
        frame = np.zeros((64, 64, 3), np.uint8)
        write_image(elsewhere / "still.png", frame)
        (tmp_path / "shots.yaml").write_text(
            "shots:\n"
            f"  - {{name: typo, input: {d12}, output: out/typo.####.png, frames: 0-2, emotion: hapy}}\n"
            f"  - {{name: gone, input: {tmp_path / 'gone.mov'}, output: out/gone.mov}}\n"
            f"  - {{name: outside, input: {elsewhere / 'still.png'}, output: out/x.png}}\n"
            f"  - {{name: good, input: {d12}, output: out/good.####.png, frames: 3-5}}\n")
        rc = main(["batch", str(tmp_path / "shots.yaml"), "--daemon", identity.endpoint, "--no-start", "-q",
                   "--report", str(tmp_path / "r" / "report.json"), "--audit-log", str(tmp_path / "audit.jsonl")])
    finally:
        shutil.rmtree(elsewhere)
    captured = capsys.readouterr()
    assert rc == 9
    assert "3 of 4 shot(s) failed" in captured.err and "typo (invalid_parameter)" in captured.err
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    by = {s["name"]: s for s in doc["shots"]}
    assert by["good"]["status"] == "done" and by["good"]["frames_total"] == 3
    assert by["typo"]["error"]["code"] == "invalid_parameter" and "happy" in by["typo"]["error"]["message"]
    assert by["gone"]["error"]["code"] == "not_found" and by["gone"]["error"]["exit_code"] == 2
    assert by["outside"]["error"]["code"] == "forbidden" and "--root" in by["outside"]["error"]["message"]
    assert doc["summary"] == {"done": 1, "failed": 3, "skipped": 0, "interrupted": 0, "not started": 0}
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == [
        "good.0003.png", "good.0004.png", "good.0005.png"]
    assert (tmp_path / "r" / "report_contact" / "good.png").is_file()
    # every shot has its audit line: the failed ones with their error, the good one with its outputs' hashes
    lines = {l["shot"]["name"]: l for l in read_audit_log(tmp_path / "audit.jsonl", strict=True)
             if l["event"] == "batch_shot"}
    assert {n: l["status"] for n, l in lines.items()} == {"typo": "failed", "gone": "failed", "outside": "failed",
                                                          "good": "done"}
    assert lines["typo"]["error"]["code"] == "invalid_parameter" and "hapy" in lines["typo"]["error"]["message"]
    assert lines["outside"]["error"]["code"] == "forbidden" and lines["outside"]["outputs"] == []
    assert [(Path(e["path"]).name, e["sha256"]) for e in lines["good"]["outputs"]] == [
        (f"good.{n:04d}.png", file_sha256(tmp_path / "out" / f"good.{n:04d}.png")) for n in (3, 4, 5)]


def test_an_audit_log_that_cannot_be_written_stops_the_batch_before_any_work(tmp_path, capsys):
    from ned_fx.cli import main

    (tmp_path / "shots.yaml").write_text(f"shots:\n  - {{input: {footage('d12.mp4')}, output: out/a.####.png, "
                                         f"frames: 0-1}}\n")
    (tmp_path / "not_a_folder").write_text("")
    rc = main(["batch", str(tmp_path / "shots.yaml"), "--daemon", f"tcp://127.0.0.1:{free_port()}", "--no-start",
               "-q", "--audit-log", str(tmp_path / "not_a_folder" / "audit.jsonl")])
    err = capsys.readouterr().err
    assert rc == 6 and "cannot open the audit log" in err and "--audit-log FILE" in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "shots_report.json").exists()
    # --no-audit-log: no log is needed (here the missing daemon is the next thing to fail)
    rc = main(["batch", str(tmp_path / "shots.yaml"), "--daemon", f"tcp://127.0.0.1:{free_port()}", "--no-start",
               "-q", "--no-audit-log"])
    assert rc == 8 and "no ned-fx daemon answered" in capsys.readouterr().err


def test_no_daemon_with_no_start_is_a_clear_error(tmp_path, capsys):
    from ned_fx.cli import main

    (tmp_path / "shots.yaml").write_text(f"shots:\n  - {{input: {footage('d12.mp4')}, output: o.mov}}\n")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    t = time.monotonic()
    rc = main(["batch", str(tmp_path / "shots.yaml"), "--daemon", endpoint, "--no-start", "-q"])
    err = capsys.readouterr().err
    assert rc == 8 and time.monotonic() - t < 10
    assert f"no ned-fx daemon answered at {endpoint}" in err and "ned-fx serve" in err and "--no-start" in err
    assert not (tmp_path / "o.mov").exists()


def test_a_private_daemon_is_started_and_stopped(tmp_path, monkeypatch):
    monkeypatch.setenv("NED_FX_HOME", str(tmp_path))                # its log goes to $NED_FX_HOME/logs
    d12 = footage("d12.mp4")
    (tmp_path / "shots.yaml").write_text(f"shots:\n  - {{input: {d12}, output: out/a.####.png, frames: 0-1}}\n")
    config = BatchConfig(endpoint=f"tcp://127.0.0.1:{free_port()}", engine="identity", ping_timeout=0.5)
    report = run_batch(read_from_file(tmp_path / "shots.yaml"), config)
    assert report.shots[0].status == "done"
    daemon = report.daemon
    assert daemon["started_here"] and daemon["engine"]["engine"] == "identity" and not daemon["kept"]
    assert daemon["endpoint"] != config.endpoint                       # its own free port
    with pytest.raises(ProcessLookupError):
        os.kill(daemon["pid"], 0)
    assert "ready on" in Path(daemon["log"]).read_text() and Path(daemon["log"]).parent == tmp_path / "logs"


def test_real_engine_edits_land(tmp_path):
    """One short run through the real engine: the frames come back edited inside the face, untouched far from it,
    with the input's frame numbers."""
    d12 = footage("d12.mp4")
    daemon = Daemon("--cache", str(tmp_path / "cache"), roots=[tmp_path], tmp=tmp_path, wait=180)
    try:
        hold = np.zeros((512, 512, 3), np.uint8)
        hold[:, :256] = 255                                 # 1 = keep the plate: the left half of the frame
        write_image(tmp_path / "hold.png", hold)
        (tmp_path / "shots.yaml").write_text(
            f"shots:\n  - {{name: smile, input: {d12}, output: out/smile.####.png, frames: 20-23, emotion: happy,"
            f" intensity: 1.0}}\n"
            f"  - {{name: held, input: {d12}, output: out/held.####.png, frames: 20-23, emotion: happy,"
            f" holdout_matte: hold.png, shutter_angle: 0}}\n")
        report = run_batch(read_from_file(tmp_path / "shots.yaml"),
                           BatchConfig(endpoint=daemon.endpoint, start_daemon=False, samples=2))
    finally:
        daemon.kill()
    shot, held = report.shots
    assert shot.status == "done", shot.error
    assert held.status == "done", held.error
    assert shot.edited == (20, 21, 22, 23) and not shot.passed_through
    src = source_frames(d12, "20-23")
    for n in range(20, 24):
        got = read_image(tmp_path / "out" / f"smile.{n:04d}.png").pixels.astype(int)
        diff = np.abs(got - src[n]).max(axis=2)
        assert diff.max() > 20, "the face changed"
        assert (diff[:40] == 0).all() and (diff[-40:] == 0).all(), "rows far from the face are bit-exact"
    assert report.daemon["engine"]["engine"] == "ned_fx"
    rec = read_provenance(tmp_path / "out" / "smile.0021.png")       # the daemon's record, per frame
    assert (rec.edited, rec.passed_through, rec.renderer, rec.source_frame, rec.emotion) == (
        True, None, "geometry", 21, "happy")
    assert rec.face_id is not None and "was edited" in rec.summary
    assert read_image(shot.contact_sheet).pixels.shape[1] == 966
    # the second shot's holdout matte reached the daemon: the half of the face it holds is the plate's
    for n in range(20, 24):
        got = read_image(tmp_path / "out" / f"held.{n:04d}.png").pixels.astype(int)
        edit = read_image(tmp_path / "out" / f"smile.{n:04d}.png").pixels.astype(int)
        diff = np.abs(got - src[n]).max(axis=2)
        assert (diff[:, :254] == 0).all(), "the held half is bit-exact"
        assert np.abs(edit - src[n]).max(axis=2)[:, :254].max() > 20, "...where the shot without it is edited"
        assert diff[:, 258:].max() > 20, "the other half is edited"


def test_a_private_daemon_that_dies_is_restarted_and_the_shot_resumes(tmp_path, monkeypatch):
    from ned_fx.batch.connect import DaemonLink

    monkeypatch.setenv("NED_FX_HOME", str(tmp_path))                # the daemons' logs go to the test's folder

    d12 = footage("d12.mp4")
    (tmp_path / "shots.yaml").write_text(f"shots:\n  - {{name: s, input: {d12}, output: out/s.####.png, "
                                         f"frames: 0-39}}\n")
    config = BatchConfig(endpoint=f"tcp://127.0.0.1:{free_port()}", engine="identity", ping_timeout=0.5,
                         contact_sheets="")
    link = DaemonLink.connect(config, [str(d12)])
    killed = []

    def progress(shot, stage, done, total):
        if stage == "rendering" and done == 10 and not killed:
            killed.append(link.pid)
            os.kill(link.pid, signal.SIGKILL)

    t = time.monotonic()
    try:
        report = run_batch(read_from_file(tmp_path / "shots.yaml"), config, progress=progress, link=link)
    finally:
        link.stop()
    (shot,) = report.shots
    assert killed and link.restarts == 1 and link.pid != killed[0]
    assert shot.status == "done" and len(shot.resumed) >= 10 and len(shot.resumed) + len(shot.passed_through) == 40
    assert sorted(p.name for p in (tmp_path / "out").glob("s.*.png")) == [f"s.{n:04d}.png" for n in range(40)]
    assert time.monotonic() - t < 30, "a dead private daemon is noticed at once, not after the request timeout"
    with pytest.raises(ProcessLookupError):
        os.kill(link.pid, 0)


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the daemon through /proc")
def test_a_killed_batch_takes_its_private_daemon_down(tmp_path):
    """SIGKILL a batch that started a private daemon: the daemon stops by itself (it watches the batch's pid; no
    code runs between fork and exec in the batch, which has threads), while a kept one (--keep-daemon) stays."""
    d12 = footage("d12.mp4")
    (tmp_path / "shots.yaml").write_text(f"shots:\n  - {{name: long, input: {d12}, output: out/long.####.png, "
                                         f"frames: 0-182}}\n")
    env = {**os.environ, "NED_FX_HOME": str(tmp_path / "home")}

    def run_and_kill(*extra: str) -> int:
        cmd = [sys.executable, "-m", "ned_fx.cli", "batch", str(tmp_path / "shots.yaml"), "--daemon",
               f"tcp://127.0.0.1:{free_port()}", "--engine", "identity", "-q", "--no-contact-sheets", *extra]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 90
            while not list((tmp_path / "out").glob("long.*.png")):
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "the batch wrote no frames"
                time.sleep(0.02)
            (daemon,) = _children(proc.pid)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        return daemon

    daemon = run_and_kill()
    assert ended(daemon, within=20), "the private daemon outlived its batch"

    for p in (tmp_path / "out").glob("*"):
        p.unlink()
    kept = run_and_kill("--keep-daemon")
    try:
        time.sleep(1.0)
        os.kill(kept, 0)                        # a kept daemon is still there
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(kept, signal.SIGKILL)


def test_a_shots_face_content_options_reach_the_daemon_and_key_its_frames(identity, tmp_path):
    """A shot list's holdout matte, actor footage and shutter angle are the session's: the daemon refuses a bad
    one, the audit line and sidecar name them, and frames written with other options are another edit's (written
    again, not kept), while a rerun with the same options keeps them."""
    d12, d3 = footage("d12.mp4"), footage("d3.mp4")
    matte = tmp_path / "mattes" / "hold.png"
    matte.parent.mkdir()
    write_image(matte, np.zeros((512, 512, 3), np.uint8))
    audit = tmp_path / "audit.jsonl"

    def run(extra: str):
        (tmp_path / "shots.yaml").write_text(
            f"shots:\n  - {{name: sh010, input: {d12}, output: out/sh010.####.png, frames: 0-3, emotion: happy"
            f"{extra}}}\n")
        return run_batch(read_from_file(tmp_path / "shots.yaml"),
                         BatchConfig(endpoint=identity.endpoint, start_daemon=False, contact_sheets="",
                                     audit_log=str(audit))).shots[0]

    first = run(f", holdout_matte: mattes/hold.png, actor_footage: [{d3}], shutter_angle: 90")
    assert (first.status, len(first.resumed)) == ("done", 0), first.error
    line = [l for l in read_audit_log(audit) if "params" in l][-1]          # the shot's line
    assert line["params"] == {"emotion": "happy", "actor_footage": [str(d3)], "holdout_matte": str(matte),
                              "shutter_angle": 90.0}
    sidecar = json.loads((tmp_path / "out" / ".sh010.####.png.ned_fx_batch.json").read_text())
    assert sidecar["session"]["shutter_angle"] == 90.0
    assert (run(f", holdout_matte: mattes/hold.png, actor_footage: [{d3}], shutter_angle: 90").status ==
            "skipped"), "the same options: every frame kept"
    other = run(f", holdout_matte: mattes/hold.png, actor_footage: [{d3}], shutter_angle: 180")
    assert (other.status, len(other.resumed), len(other.passed_through)) == ("done", 0, 4), "another shutter"
    plain = run("")
    assert (plain.status, len(plain.resumed)) == ("done", 0), "no options: another edit again"
    # the daemon checks what the shot list cannot: a matte that is not there
    missing = run(", holdout_matte: mattes/gone.png")
    assert missing.status == "failed" and "gone.png" in missing.error["message"], missing.error
