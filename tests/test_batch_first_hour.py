"""``ned-fx batch`` and ``ned-fx farm`` as a new user meets them in the first hour: Ctrl-C in the middle of a batch
(the report and the table say what was done, what was interrupted with the frames on disk, what never started),
``--check``'s exit code, the walkthrough's commands run exactly as written, absolute paths in every farm message and
job, and the private daemon's log kept under ``$NED_FX_HOME/logs`` (rotated), not left in /tmp."""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ned_fx.batch import Shot, ShotList, read_from_file
from ned_fx.batch.runner import BatchConfig, run_batch

from conftest import FOOTAGE, REPO, footage
from daemons import free_port

DOC = REPO / "examples" / "BATCH_AND_FARM.md"


from test_batch import identity  # noqa: E402,F401  (the same identity daemon fixture, defined once)


def table(stdout: str) -> dict[str, dict]:
    """The rows of the batch's printed table: shot -> status and counts (columns are 2+ spaces apart)."""
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["shot", "status"])
    rows = {}
    for line in lines[head + 1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) < 6 or not cells[2].isdigit():
            break
        rows[cells[0]] = {"status": cells[1], "edited": int(cells[2]), "passed": int(cells[3]),
                          "resumed": int(cells[4])}
    return rows


def test_ctrl_c_reports_interrupted_not_started_and_the_frames_on_disk(identity, tmp_path):
    """SIGINT once the first shot has written frames: that shot is ``interrupted`` with exactly the frames on disk,
    the shots after it are ``not started`` (one with its still already on disk from an earlier run), the printed
    table agrees with the JSON report, the exit code is 130, and running again resumes."""
    d12, d3, d19 = footage("d12.mp4"), footage("d3.mp4"), footage("d19.jpg")
    (tmp_path / "shots.yaml").write_text(
        "shots:\n"
        f"  - {{name: first, input: {d12}, output: out/first.####.png, emotion: happy}}\n"
        f"  - {{name: second, input: {d3}, output: out/second.####.png, frames: 0-9, emotion: sad}}\n"
        f"  - {{name: third, input: {d19}, output: out/third.png, emotion: sad}}\n")
    cmd = [sys.executable, "-m", "ned_fx.cli", "batch", str(tmp_path / "shots.yaml"), "--daemon", identity.endpoint,
           "--no-start", "-q", "--jobs", "1", "--no-contact-sheets", "--no-audit-log"]
    # an earlier run wrote the still: a shot that is not started still counts its frame on disk
    done = subprocess.run(cmd + ["--shot", "third"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    # a shell without job control starts a background job (`pytest ... &`) with SIGINT ignored, and a child
    # inherits an ignored signal: Python then leaves Ctrl-C ignored, as a background job should. The user's
    # batch runs in the foreground: give it Python's own Ctrl-C handling whatever started pytest (in the child
    # itself: a preexec_fn would run Python between fork and exec in this threaded process)
    foreground = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                  "sys.argv[0] = 'ned-fx'; runpy.run_module('ned_fx.cli', run_name='__main__', alter_sys=True)")
    proc = subprocess.Popen([sys.executable, "-c", foreground, *cmd[3:]], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        # as soon as the first shot has frames on disk (the identity engine is fast: waiting for 10 let a warm
        # daemon finish the whole batch before the signal landed, exit 0, in one full-suite run)
        while len(list(out.glob("first.*.png"))) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the batch wrote no frames"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    on_disk = sorted(int(p.name.split(".")[1]) for p in out.glob("first.*.png"))
    assert 2 <= len(on_disk) < 183, "interrupted mid-shot"
    assert on_disk == list(range(len(on_disk))), "the frames on disk are the first ones, complete"
    assert not list(out.glob("second.*")), "the second shot never began"

    doc = json.loads((tmp_path / "shots_report.json").read_text())
    assert doc["interrupted"] is True
    assert doc["summary"] == {"done": 0, "failed": 0, "skipped": 0, "interrupted": 1, "not started": 2}
    by = {s["name"]: s for s in doc["shots"]}
    first, second, third = by["first"], by["second"], by["third"]
    assert first["status"] == "interrupted" and "error" not in first and first["frames_total"] == 183
    # the identity engine passes every frame through: the frames it wrote are counted there, and only those
    assert first["passed_through"]["identity engine"]["count"] == len(on_disk)
    assert first["edited"]["count"] == 0 and first["resumed"]["count"] == 0
    assert first["outputs"] == [str(out / "first.####.png")] and "run the batch again" in first["reason"]
    assert second["status"] == "not started" and second["frames_total"] == 10
    assert (second["edited"]["count"], second["passed_through"], second["resumed"]["count"]) == (0, {}, 0)
    assert third["status"] == "not started" and third["resumed"]["count"] == 1

    # the printed table says the same as the report
    rows = table(stdout)
    assert rows == {s["name"]: {"status": s["status"], "edited": s["edited"]["count"],
                                "passed": sum(v["count"] for v in s["passed_through"].values()),
                                "resumed": s["resumed"]["count"]} for s in doc["shots"]}, stdout
    assert "0 done, 0 failed, 0 skipped, 1 interrupted, 2 not started" in stdout
    assert "interrupted" in stderr and "run the same command again to resume" in stderr

    # the same command again: the frames on disk are kept, the rest rendered
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    by = {s["name"]: s for s in json.loads((tmp_path / "shots_report.json").read_text())["shots"]}
    assert by["first"]["status"] == "done" and by["first"]["resumed"]["count"] == len(on_disk)
    assert by["first"]["passed_through"]["identity engine"]["count"] == 183 - len(on_disk)
    assert (by["second"]["status"], by["third"]["status"]) == ("done", "skipped")


def test_check_exit_codes_are_documented(tmp_path):
    """``--check`` exits 0 when every shot is ready and 2 (a bad shot list's code) when one is not; both the
    --help epilog and the walkthrough list it."""
    from ned_fx.cli import main

    (tmp_path / "good.yaml").write_text(f"shots:\n  - {{input: {footage('d12.mp4')}, output: o.####.png, "
                                        f"frames: 0-3}}\n")
    (tmp_path / "bad.yaml").write_text(f"shots:\n  - {{input: {footage('d12.mp4')}, output: o.####.png, "
                                       f"frames: 0-3}}\n  - {{input: {tmp_path / 'gone.mov'}, output: g.mov}}\n")
    assert main(["batch", str(tmp_path / "good.yaml"), "--check"]) == 0
    result = subprocess.run([sys.executable, "-m", "ned_fx.cli", "batch", str(tmp_path / "bad.yaml"), "--check"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result
    assert "gone: not_found" in result.stdout and "1 shot(s) ready, 1 with problems" in result.stdout
    helptext = subprocess.run([sys.executable, "-m", "ned_fx.cli", "batch", "--help"], cwd=REPO,
                              capture_output=True, text=True, timeout=60).stdout
    block = helptext[helptext.index("exit codes:"):].split("\n\n")[0]
    codes = dict(re.findall(r"^  (\d+) +(.+)$", block, re.M))
    assert set(codes) == {"0", "2", "6", "8", "9", "130"} and "--check" in codes["2"], helptext
    doc = DOC.read_text()
    assert re.search(r"exit code is 2 when .*--check", doc.replace("\n", " ")), "the walkthrough lists --check's code"


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    """The walkthrough's layout in a temporary folder: ``repo/`` with the examples and the venv (linked), the shared
    footage beside it at ``shared/footage`` (linked), as the doc assumes; no ``out/`` folder yet."""
    footage("d12.mp4")
    base = tmp_path_factory.mktemp("walkthrough")
    repo = base / "repo"
    (repo / "examples").mkdir(parents=True)
    for name in ("shots.yaml", "shots.csv"):
        (repo / "examples" / name).write_text((REPO / "examples" / name).read_text())
    (repo / ".venv").symlink_to(REPO / ".venv")
    (base / "shared").mkdir()
    (base / "shared" / "footage").symlink_to(FOOTAGE)
    return repo


def doc_commands(section: str) -> list[str]:
    """The shell lines of a section's code block in the walkthrough, exactly as written."""
    text = DOC.read_text()
    body = text[text.index(section):]
    block = body[body.index("```bash") + len("```bash"):]
    return [line for line in block[:block.index("```")].strip().splitlines() if line.strip()]


def run_doc_line(line: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", "-c", line], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def test_the_otio_example_runs_as_written(walkthrough):
    """§5 of the walkthrough, line by line, in a folder without ``out/``: no traceback, every line exits 0."""
    lines = doc_commands("## 5. CSV and OpenTimelineIO")
    assert any("out/shots.otio" in line for line in lines)
    assert not (walkthrough / "out").exists()
    for line in lines:
        result = run_doc_line(line, walkthrough)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (line, result.stderr)
    assert (walkthrough / "out" / "shots.otio").is_file()
    assert [s.name for s in read_from_file(walkthrough / "out" / "shots.otio")] == ["sh010", "sh020", "sh030"]


def test_farm_messages_and_jobs_use_absolute_paths(walkthrough, tmp_path, monkeypatch):
    """§6 of the walkthrough as written: every path it prints is absolute (and the file is there); a shot list
    with relative paths, a relative --audit-log and a relative --ned-fx make jobs of absolute paths only."""
    lines = doc_commands("## 6. The farm")
    assert len(lines) == 3 and all("--out out/farm/" in line or "-o out/farm/" in line for line in lines)
    for line in lines:
        result = run_doc_line(line, walkthrough)
        assert result.returncode == 0, (line, result.stderr)
        if "--to openjd" in line:     # a template: its own test (test_farm_engines) runs it with openjd
            assert (walkthrough / "out" / "farm" / "openjd" / "template.yaml").is_file(), result.stdout
            continue
        printed = []
        for text in result.stdout.splitlines():
            if text.startswith("wrote "):
                printed.append(text[len("wrote "):])
            elif m := re.match(r"job \S+: .*; (\S+) -> (\S+)$", text):
                printed += [m.group(1), m.group(2)]
            elif m := re.search(r"submit with (\S+) where", text):
                printed.append(m.group(1))
            elif m := re.search(r"launch later with `ned-fx farm submit (\S+) ", text):
                printed.append(m.group(1))
        assert len(printed) > 6, result.stdout
        for path in printed:
            assert os.path.isabs(path), (path, result.stdout)
        assert all(Path(p).is_file() for p in printed if p.endswith((".xml", ".job", ".plugin", ".sh", ".yaml")))
    script = (walkthrough / "out" / "farm" / "deadline" / "submit.sh").read_text()
    assert all(os.path.isabs(a) for line in script.splitlines() if line.startswith('"$DEADLINECOMMAND"')
               for a in shlex.split(line)[1:] if a.endswith((".job", ".plugin")))

    # a shot list made in Python with relative paths, relative --audit-log and --ned-fx
    from ned_fx.cli import main
    from ned_fx.farm import FarmConfig, build_jobs

    monkeypatch.chdir(tmp_path)
    os.symlink(footage("d3.mp4"), tmp_path / "d3.mp4")
    shots = ShotList((Shot(name="rel", input="d3.mp4", output="renders/rel.mov", frames="0-11", emotion="sad"),),
                     name="rel")
    (job,) = build_jobs(shots, FarmConfig(executable=("bin/ned-fx",), audit_log="logs/audit.jsonl"))
    for layer in job.layers:
        for task in layer.tasks:
            cmd = task.command
            assert cmd[0] == str(tmp_path / "bin" / "ned-fx")
            values = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-o"]
            values += [a.split("=", 1)[1] for a in cmd if a.startswith(("--analysis=", "--audit-log=",
                                                                          "--audio-from="))]
            values += [cmd[cmd.index("edit") + 1]] if "edit" in cmd else [cmd[cmd.index("assemble") + 1]]
            assert values and all(os.path.isabs(v) for v in values), cmd
    assert job.input == str(tmp_path / "d3.mp4") and job.output == str(tmp_path / "renders" / "rel.mov")
    assert f"--audit-log={tmp_path / 'logs' / 'audit.jsonl'}" in job.layer("render").tasks[0].command
    # the command line: --audit-log and --ned-fx given relative are made absolute in the files it writes
    (tmp_path / "s.yaml").write_text("shots:\n  - {name: rel, input: d3.mp4, output: renders/rel.####.png, "
                                     "frames: 0-3}\n")
    assert main(["farm", "submit", "s.yaml", "--to", "deadline", "--dry-run", "--out", "specs", "--audit-log",
                 "logs/audit.jsonl", "--ned-fx", "bin/ned-fx"]) == 0
    plugin = dict(line.split("=", 1) for line in (tmp_path / "specs" / "s_rel_render.plugin").read_text().splitlines())
    assert plugin["Executable"] == str(tmp_path / "bin" / "ned-fx")
    assert f"--audit-log={tmp_path / 'logs' / 'audit.jsonl'}" in shlex.split(plugin["Arguments"])


def daemon_logs_in_tmp() -> set[str]:
    return set(glob.glob("/tmp/ned-fx-batch-daemon-*"))


def test_a_private_daemon_logs_under_ned_fx_home_with_rotation(tmp_path, monkeypatch):
    """The private daemon's log goes to $NED_FX_HOME/logs (never /tmp), the report names it, and only the newest
    ten daemon logs are kept there (other files are left alone)."""
    import tempfile

    from ned_fx.batch.connect import logs_folder

    home = tmp_path / "home"
    monkeypatch.setenv("NED_FX_HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))     # a log made with tempfile would land here
    (tmp_path / "tmp").mkdir()
    # the daemon's key lives in the runtime folder, which falls back to the temp folder: one folder for the
    # daemon (a child process, the real temp folder) and this test's client (the patched one)
    (tmp_path / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    logs = home / "logs"
    logs.mkdir(parents=True)
    old = []
    for i in range(12):                                 # twelve older runs' logs, oldest first
        p = logs / f"batch-daemon-20260101-0000{i:02d}-1-0.log"
        p.write_text(f"old {i}\n")
        os.utime(p, (1_700_000_000 + i, 1_700_000_000 + i))
        old.append(p)
    (logs / "notes.txt").write_text("not a daemon log")
    assert logs_folder() == logs
    before = daemon_logs_in_tmp()

    (tmp_path / "shots.yaml").write_text(f"shots:\n  - {{input: {footage('d12.mp4')}, output: out/a.####.png, "
                                         f"frames: 0-1}}\n")
    config = BatchConfig(endpoint=f"tcp://127.0.0.1:{free_port()}", engine="identity", ping_timeout=0.5,
                         contact_sheets="")
    report = run_batch(read_from_file(tmp_path / "shots.yaml"), config)
    assert report.shots[0].status == "done"
    log = Path(report.daemon["log"])
    assert log.parent == logs and log.name.startswith("batch-daemon-") and "ready on" in log.read_text()
    assert daemon_logs_in_tmp() == before, "no ned-fx-batch-daemon-* log is left in /tmp"
    assert list((tmp_path / "tmp").iterdir()) == []
    kept = sorted(logs.glob("batch-daemon-*.log"))
    assert len(kept) == 10 and log in kept
    assert [p for p in old if not p.exists()] == old[:3], "the three oldest were removed to keep ten"
    assert (logs / "notes.txt").is_file()


def test_the_summary_names_the_daemon_log_when_the_daemon_failed(tmp_path, monkeypatch, capsys):
    """A private daemon that dies twice (it is restarted once) fails the shot; the printed summary says where its
    logs are."""
    from ned_fx.batch.connect import DaemonLink
    from ned_fx.commands.batch import _print_summary

    monkeypatch.setenv("NED_FX_HOME", str(tmp_path / "home"))
    (tmp_path / "shots.yaml").write_text(f"shots:\n  - {{name: s, input: {footage('d12.mp4')}, "
                                         f"output: out/s.####.png, frames: 0-59}}\n")
    config = BatchConfig(endpoint=f"tcp://127.0.0.1:{free_port()}", engine="identity", ping_timeout=0.5,
                         contact_sheets="", audit=False)
    link = DaemonLink.connect(config, [str(footage("d12.mp4"))])
    killed = []

    def progress(shot, stage, done, total):
        if stage == "rendering" and done == 5 and link.pid not in killed and len(killed) < 2:
            killed.append(link.pid)
            os.kill(link.pid, signal.SIGKILL)

    try:
        report = run_batch(read_from_file(tmp_path / "shots.yaml"), config, progress=progress, link=link)
    finally:
        link.stop()
    (shot,) = report.shots
    assert len(killed) == 2 and shot.status == "failed" and shot.error["code"] == "daemon_unavailable"
    logs = report.daemon["logs"]
    assert len(logs) == 2 and all(Path(p).parent == tmp_path / "home" / "logs" for p in logs)
    _print_summary(report)
    out = capsys.readouterr().out
    assert f"daemon log (restarted once): {logs[0]}, {logs[1]}" in out, out
