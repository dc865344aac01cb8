"""The one thread setting (ned_fx.threads) reaches every pool an edit uses, numpy's BLAS included."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_PROBE = """
import json, numpy
from threadpoolctl import threadpool_info
before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
from ned_fx.threads import configure
n = configure({threads})
import cv2, torch
after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
print(json.dumps({{"n": n, "before": before, "after": after, "torch": torch.get_num_threads(),
                  "cv2": cv2.getNumThreads()}}))
"""


def _probe(threads) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                             "MKL_NUM_THREADS", "NED_FX_THREADS")}
    out = subprocess.run([sys.executable, "-c", _PROBE.format(threads=threads)], capture_output=True, text=True,
                         env=env, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: BLAS starts with one thread anyway")
def test_configure_sizes_numpy_s_blas_pool_with_torch_and_opencv():
    # numpy's OpenBLAS starts a thread per core at import; its idle threads spin after every call (an edit on
    # this 2-core machine spent ~7 % of its CPU there). configure(1) leaves one, as for torch and OpenCV.
    got = _probe(1)
    assert got["before"] and max(got["before"]) >= 2, got          # the pool as numpy loads it: one per core
    assert set(got["after"]) == {1}, got                           # (torch brings a second pool: sized too)
    assert got["torch"] == 1 and got["cv2"] == 1, got


def test_zero_leaves_the_libraries_defaults():
    got = _probe(0)
    assert got["n"] == 0 and set(got["after"]) == set(got["before"]), got


_CALLER = """
import json, os, signal, sys
import torch
torch.set_num_threads(2)
mine = lambda signum, frame: None
signal.signal(signal.SIGTERM, mine)
from ned_fx.cli import main
code = main(["--threads", "1", "edit", sys.argv[1], "-o", sys.argv[2], "--emotion", "happy", "-q"])
print(json.dumps({"code": code, "torch": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS"),
                  "sigterm_kept": signal.getsignal(signal.SIGTERM) is mine}))
"""


def test_main_called_from_a_caller_s_python_leaves_its_threads_and_sigterm_as_they_were(tmp_path):
    # a TD's script (or a test) calling ned_fx.cli.main: the edit runs on --threads 1, the caller's torch keeps
    # its 2 threads after it (a leaked count changed every later torch result in that process by float rounding)
    from conftest import footage

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NED_FX_THREADS")}
    out = subprocess.run([sys.executable, "-c", _CALLER, str(footage("people_0.png")), str(tmp_path / "out.png")],
                         capture_output=True, text=True, env=env, timeout=240, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"code": 0, "torch": 2, "omp": None, "sigterm_kept": True}, (got, out.stderr[-2000:])
    assert (tmp_path / "out.png").is_file()
