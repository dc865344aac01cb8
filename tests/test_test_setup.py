"""The test run itself: where the shared footage is (NED_FX_FOOTAGE), what a run without it says, and that CI
never passes a run that could not see it."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

ONE_FOOTAGE_TEST = "tests/test_audit.py::test_a_record_says_who_what_and_the_outputs_hashes"


def _pytest(tmp_path, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "NED_FX_FOOTAGE", "PYTEST_ADDOPTS")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_FOOTAGE_TEST],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env={**base, **env})


def test_without_footage_the_run_says_so_and_ci_fails(tmp_path):
    empty = tmp_path / "no-footage"
    empty.mkdir()
    local = _pytest(tmp_path, NED_FX_FOOTAGE=str(empty))
    assert local.returncode == 0, local.stdout[-2000:]
    assert f"1 test(s) skipped: the shared footage is not at {empty}" in local.stdout
    assert "NED_FX_FOOTAGE" in local.stdout
    ci = _pytest(tmp_path, NED_FX_FOOTAGE=str(empty), CI="true")
    assert ci.returncode == 1 and "CI needs it" in ci.stdout, ci.stdout[-2000:]


def test_a_hung_test_fails_after_the_per_test_timeout_and_the_run_goes_on(tmp_path):
    """A test that never returns (a client waiting on a daemon that never answers) fails with its stack after the
    per-test timeout (pyproject's ``timeout``, pytest-timeout), and the tests after it still run: the CI reports it
    instead of hanging until its own limit."""
    (tmp_path / "conftest.py").write_text("")
    (tmp_path / "test_hang.py").write_text(
        "import select, socket\n"
        "def test_hangs():\n"
        "    a, b = socket.socketpair()\n"
        "    select.select([a], [], [])   # nothing is ever sent\n"
        "def test_after():\n"
        "    pass\n")
    base = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "timeout=2",
                          "-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path), str(tmp_path)],
                         capture_output=True, text=True, timeout=120, env=base)
    assert run.returncode == 1, run.stdout[-2000:]
    assert "1 failed, 1 passed" in run.stdout and "Timeout" in run.stdout, run.stdout[-2000:]
    import tomllib

    ini = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert 0 < int(ini["timeout"]) <= 600, "the per-test timeout is on, and well inside the CI's budget"
