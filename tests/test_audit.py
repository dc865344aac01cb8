"""The audit log (issue 9): append-only JSON lines that stay valid with several concurrent writers and after a
killed writer (and after a crash that tore a line), records that say who, which shot, which parameters, which
outputs with their SHA-256, and the daemon's lines for open/close/expiry/shutdown."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from conftest import REPO, footage
from ned_fx.client import Client
from ned_fx.errors import InputNotFoundError
from ned_fx.provenance import (AUDIT_SCHEMA, AuditLog, AuditLogError, AuditLogWarning, default_audit_path,
                               output_entry, read_audit_log)

WRITERS, RECORDS = 8, 200


def _writer(path: str, writer: int, count: int) -> None:
    log = AuditLog(path, application=f"test-writer-{writer}")
    for n in range(count):
        # sizes from a few bytes to well over PIPE_BUF (4096): large lines must not interleave either
        size = (n * 977 + writer * 131) % 9000
        log.write("edit", writer=writer, n=n, payload="é" * (size // 2) + "x" * (size % 7),
                  outputs=[{"path": f"/out/{writer}/{n}.exr", "sha256": "0" * 64}])


def test_concurrent_writers_keep_every_line_whole(tmp_path):
    path = tmp_path / "audit.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), w, RECORDS)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    assert len(lines) == WRITERS * RECORDS
    records = [json.loads(line) for line in lines]        # every line is valid JSON on its own
    seen = {(r["writer"], r["n"]) for r in records}
    assert seen == {(w, n) for w in range(WRITERS) for n in range(RECORDS)}
    for r in records:
        assert r["schema"] == AUDIT_SCHEMA and r["event"] == "edit"
        assert r["who"]["application"] == f"test-writer-{r['writer']}" and r["who"]["pid"] > 0
        size = (r["n"] * 977 + r["writer"] * 131) % 9000
        assert r["payload"] == "é" * (size // 2) + "x" * (size % 7)
    # each writer's lines are in its own order
    for w in range(WRITERS):
        assert [r["n"] for r in records if r["writer"] == w] == list(range(RECORDS))
    assert read_audit_log(path, strict=True) == records


_FOREVER = """
import sys
from ned_fx.provenance import AuditLog
log = AuditLog(sys.argv[1], application="doomed")
n = 0
while True:
    log.write("edit", n=n, payload="y" * (n * 37 % 6000))
    n += 1
"""


def test_a_killed_writer_leaves_only_whole_lines_and_a_torn_line_loses_nothing(tmp_path):
    path = tmp_path / "audit.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", _FOREVER, str(path)], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not path.exists() or path.read_bytes().count(b"\n") < 40):
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # SIGKILL mid-stream: every line the writer finished is whole and in order, and at most the last is torn (the
    # kernel may end a write() of a record longer than a page at a page boundary when a fatal signal arrives: CI
    # once saw line 90 torn); the next writer starts on a fresh line and the reader skips the torn one (below)
    done, _, torn = path.read_bytes().rpartition(b"\n")
    records = [json.loads(line) for line in done.split(b"\n")]
    assert len(records) >= 40 and [r["n"] for r in records] == list(range(len(records)))
    assert not torn or torn.startswith(b'{"schema":"ned_fx.audit/1"'), torn[:80]
    if not torn:
        assert read_audit_log(path, strict=True) == records

    # a crash of the machine can still tear the last line (a partial write); simulate one
    whole = len(records)
    with open(path, "ab") as fh:
        fh.write(b'{"schema":"ned_fx.audit/1","event":"edit","n":9999,"payload":"yyyy')
    AuditLog(path, application="after-the-crash").write("edit", n=whole)
    with pytest.warns(AuditLogWarning, match=r"line %d is not a complete record" % (whole + 1)):
        after = read_audit_log(path)
    assert [r["n"] for r in after] == list(range(whole + 1))          # nothing complete was lost
    assert after[-1]["who"]["application"] == "after-the-crash"
    with pytest.raises(AuditLogError, match="line"):
        read_audit_log(path, strict=True)


def test_a_record_says_who_what_and_the_outputs_hashes(tmp_path, monkeypatch):
    out = tmp_path / "shot_happy.png"
    out.write_bytes(footage("people_0.png").read_bytes())
    log = AuditLog(tmp_path / "logs" / "audit.jsonl", application="ned-fx edit")
    written = log.write("edit", shot={"source": str(footage("d19.jpg")), "frames": None},
                        params={"emotion": "happy", "intensity": 0.8}, consent="REL-7",
                        outputs=[output_entry(out)])
    (back,) = read_audit_log(log.path)
    assert back == written
    assert back["outputs"] == [{"path": str(out), "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}]
    assert back["who"]["pid"] == os.getpid() and back["who"]["application"] == "ned-fx edit"
    assert back["time"].endswith("Z") and back["consent"] == "REL-7"
    monkeypatch.delenv("NED_FX_AUDIT_LOG", raising=False)
    monkeypatch.setenv("NED_FX_HOME", str(tmp_path / "home"))
    assert default_audit_path() == tmp_path / "home" / "audit.jsonl"
    assert AuditLog().path == default_audit_path()
    monkeypatch.setenv("NED_FX_AUDIT_LOG", str(tmp_path / "elsewhere.jsonl"))
    assert AuditLog().path == tmp_path / "elsewhere.jsonl"


def test_unwritable_logs_and_bad_records_are_clear_errors(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(AuditLogError, match="not_a_folder"):
        AuditLog(blocker / "audit.jsonl").check()
    log = AuditLog(tmp_path / "a.jsonl")
    with pytest.raises(AuditLogError, match="JSON"):
        log.write("edit", intensity=float("nan"))
    with pytest.raises(AuditLogError, match="JSON"):
        log.write("edit", thing=object())
    assert not (tmp_path / "a.jsonl").exists() or read_audit_log(tmp_path / "a.jsonl") == []
    with pytest.raises(InputNotFoundError):
        read_audit_log(tmp_path / "missing.jsonl")
    # the daemon refuses to start on a log it cannot write, before loading anything
    result = subprocess.run([sys.executable, "-m", "ned_fx.commands.serve", "--engine", "identity", "--port", "0",
                             "--audit-log", str(blocker / "audit.jsonl")], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 6 and "audit log" in result.stderr and "ready" not in result.stdout


def test_daemon_audits_each_session_once_at_its_end(tmp_path, start_daemon):
    path = tmp_path / "audit.jsonl"
    src = str(footage("d12.mp4"))
    d = start_daemon("--engine", "identity", "--audit-log", str(path), "--session-idle", "1", roots=[tmp_path],
                     tmp=tmp_path)           # the fixture stops it on every path
    try:
        with Client(d.endpoint, timeout=10) as c:
            kept = c.open(src, frames="0-9", emotion="happy", intensity=0.5, consent="REL-1", user="ana",
                          application="batch")
            kept.wait(timeout=30)
            idle = c.open(src, frames="0-3", emotion="sad")
            idle.wait(timeout=30)
            pixels = np.zeros((4, 4, 3), np.uint8)
            for frame in (0, 1, 2, 5, 2):
                kept.render(frame, pixels)
            deadline = time.monotonic() + 20                 # `idle` expires; `kept` is pinged to stay open
            while time.monotonic() < deadline and len(read_audit_log(path)) < 3:
                kept.progress()
                time.sleep(0.2)
            c.shutdown()
        d.proc.wait(30)
    finally:
        d.kill()
    log = read_audit_log(path, strict=True)
    assert [(r["event"], r.get("reason")) for r in log] == [("open", None), ("open", None), ("close", "expired"),
                                                           ("close", "shutdown")]
    expired, final = log[2], log[3]
    assert expired["params"] == {"emotion": "sad", "intensity": 1.0} and expired["renders"] == 0
    assert final["session"] == log[0]["session"] and final["consent"] == "REL-1"
    assert final["rendered"].startswith("0-2, 5") and final["rendered_count"] == 4 and final["renders"] == 5
    assert final["who"]["user"] == "ana" and final["writer"]["application"] == "ned-fx serve"
    assert final["shot"] == {"source": src, "frames": "0-9", "face": None} and final["engine"] == "identity"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_audit_log(path)
