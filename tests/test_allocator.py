"""ned_fx.allocator: freed frame-sized buffers stay in the process (fewer page faults), and the user can opt out."""

import os
import subprocess
import sys

import pytest

_LOOP = """
import resource, sys
import numpy as np
from ned_fx.allocator import keep_freed_memory
tuned = keep_freed_memory()
a = np.ones(10 << 20, np.uint8); del a            # glibc raises its own mmap threshold past this once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):                               # a frame's temporaries: the same sizes every frame
    a, b, c = (np.ones(10 << 20, np.uint8) for _ in range(3)); del a, b, c
print(int(tuned), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(env_extra: dict) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "NED_FX_MALLOC"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", _LOOP], env=env, capture_output=True, text=True, timeout=120,
                         check=True).stdout.split()
    return bool(int(out[0])), int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_buffers_are_reused_without_page_faults_and_system_opts_out():
    tuned, faults = _faults({})
    untouched, faults_system = _faults({"NED_FX_MALLOC": "system"})
    assert tuned and not untouched
    # 20 rounds of 30 MB: with the system's policy the heap's free top is trimmed and each round faults its
    # pages in again (~1500 pages a round here)
    assert faults_system > 20 * 1000
    assert faults < faults_system / 10


def test_a_users_malloc_settings_are_left_alone():
    tuned, _ = _faults({"MALLOC_TRIM_THRESHOLD_": "1000000"})
    assert not tuned
