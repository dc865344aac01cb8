"""How the C allocator hands memory back: kept for the next frame instead of returned to the system.

Every frame of an edit allocates and frees the same region-sized temporaries (numpy, OpenCV and torch buffers of
0.1-30 MB). glibc serves blocks above its mmap threshold (128 KB at start, raised as blocks are freed) with fresh
pages from the kernel and gives them back when they are freed, and it trims a heap's free top back to the system;
each new page then costs a page fault and zero-filling when it is first touched. With the mmap threshold at its
largest (32 MB) and the trim threshold at 128 MB, freed blocks stay in the process for the next frame: a second edit
of WDA (60 frames, one thread) took ~150-165 faults a frame instead of 400-560 at 512² (at 1080p, padded: ~2000
instead of ~2700; with a 1 GB trim threshold 470-820, but a 100-frame 4K edit then peaked ~200 MB higher than with
glibc's own policy, bench/memory.py); the total CPU moved by less than the machine's noise (load 2-4): a few per
cent. Freed memory a thread's heap keeps is bounded by the trim threshold; blocks above 32 MB (a 4K frame) are
mapped and returned as before.

Each thread that allocates gets a heap (an "arena") of its own, up to 8 per core, and the freed blocks a heap keeps
serve only the threads on it: the decoder, the two render threads, the encoder and the tracker's prefetch each kept
their own frame's worth, so the peak grew with the threads, not with what was live. ned_fx caps the arenas at 2
(``M_ARENA_MAX``): a 300-frame 4K EXR edit (``bench/memory.py``) peaked at 1935 MB instead of 2130 MB (1000 frames:
2170 MB, 2238-2478 before), at the same speed (``bench/edit.py`` interleaved with 2, 4 and 16 arenas: the same
frames/s within the machine's noise); six threads that each free 100 MB in turn peak at ~225 MB instead of ~465
(``tests/test_allocator.py``).

Linux with glibc only (elsewhere nothing changes); a ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` the
user set, or ``NED_FX_MALLOC=system``, leaves the allocator as it is; a ``MALLOC_ARENA_MAX`` the user set keeps
their arena count.
"""

from __future__ import annotations

import os
import sys

ENV = "NED_FX_MALLOC"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8     # glibc's mallopt parameter numbers (malloc.h)


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 128 << 20, arena_max: int = 2) -> bool:
    """Ask glibc to keep freed blocks up to ``mmap_threshold`` bytes in the process, in at most ``arena_max`` heaps
    shared by all threads (see the module's doc). Call it before the threads that allocate start.

    Returns:
        True when the allocator was tuned; False where it is not glibc's or the user chose its settings.
    """
    if os.environ.get(ENV, "").lower() == "system" or not sys.platform.startswith("linux"):
        return False
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):          # musl or another libc: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # the mmap threshold first: setting either one stops glibc moving the threshold by itself
    tuned = bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                                    int(trim_threshold)))
    if tuned and not os.environ.get("MALLOC_ARENA_MAX"):
        tuned = bool(mallopt(_M_ARENA_MAX, int(arena_max)))
    return tuned
