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


def _run(code: str, env_extra: dict) -> tuple[bool, int]:
    """Run ``code`` in a fresh interpreter with the user's malloc settings cleared and ``env_extra`` set: (tuned,
    the number it printed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "NED_FX_MALLOC"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         check=True).stdout.split()
    return bool(int(out[0])), int(out[1])


def _faults(env_extra: dict) -> tuple[bool, int]:
    return _run(_LOOP, env_extra)


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


_THREADS = """
import threading
import numpy as np
from ned_fx.allocator import keep_freed_memory
tuned = keep_freed_memory()
n = 6                                             # decoder, render threads, encoder, prefetch: one heap each
go, done, stop = [threading.Event() for _ in range(n)], [threading.Event() for _ in range(n)], threading.Event()
def work(k):
    go[k].wait()
    bufs = [np.ones(20 << 20, np.uint8) for _ in range(5)]      # 100 MB of region-sized temporaries, then freed
    del bufs
    done[k].set()
    stop.wait()                                   # alive: a thread keeps its heap
threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
for t in threads:
    t.start()
for k in range(n):                                # one after another: never more than 100 MB live
    go[k].set()
    done[k].wait()
stop.set()
for t in threads:
    t.join()
# this process's own peak (VmHWM, MB): ru_maxrss would also hold the RSS of the process that forked it (a big
# pytest worker's), which Linux carries over exec
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(int(tuned), int(hwm.split()[1]) // 1024)
"""


def _peak(env_extra: dict) -> tuple[bool, int]:
    return _run(_THREADS, env_extra)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_threads_share_the_freed_memory_so_the_peak_follows_what_is_live():
    """Six threads freeing 100 MB each in turn: with a heap per thread each keeps its 100 MB (measured ~465 MB
    peak with the kept-memory thresholds alone, ~365 with glibc's own policy); in ned_fx's 2 heaps ~225 MB."""
    tuned, peak = _peak({})
    assert tuned
    _, own_heaps = _peak({"MALLOC_ARENA_MAX": "8"})          # the user's arena count is kept
    assert peak < 300 and own_heaps > peak + 150, (peak, own_heaps)
