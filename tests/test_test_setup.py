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
