"""Reusable work arrays for per-frame steps (numpy only; imports no stage).

A per-frame step that allocates its temporaries afresh gets, for arrays above glibc's mmap threshold, fresh pages
from the kernel every frame, each zero-filled on first touch: on the compositor that was half its CPU time. A
:class:`Scratch` keeps each named temporary's memory for the next frame.
"""

from __future__ import annotations

import numpy as np


class Scratch:
    """Reusable work arrays, by name. One per thread (an array it hands out is valid until the same name is taken
    again); what leaves the step that uses it must be a copy.

    Args:
        limit: the most bytes it keeps (a 1080p plate's face box needs ~6 MB per float32 RGB temporary, a 4K
            one's ~30 MB): past it, a name gets a fresh array each time, as if there were no scratch. Kept arrays
            add to the peak memory (each owner's and thread's at once): at 256 MB a 100-frame 4K edit peaked
            ~600 MB higher (bench/memory.py), so a 4K frame's larger temporaries are not kept.
    """

    def __init__(self, limit: int = 64 << 20):
        self._buffers: dict[str, np.ndarray] = {}
        self._limit = int(limit)

    def take(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        """A C-contiguous array of ``shape`` (contents undefined) over the buffer called ``name``."""
        dtype = np.dtype(dtype)
        size = int(np.prod(shape))
        buf = self._buffers.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            self._buffers.pop(name, None)
            buf = np.empty(size + size // 8, dtype)        # a little room: the face's box changes a little per frame
            if sum(b.nbytes for b in self._buffers.values()) + buf.nbytes > self._limit:
                return buf[:size].reshape(shape)           # not kept
            self._buffers[name] = buf
        return buf[:size].reshape(shape)


def per_thread(owner) -> Scratch:
    """``owner``'s :class:`Scratch` for the calling thread (kept in ``owner._scratch_local``, made on first use)."""
    import threading

    local = owner.__dict__.get("_scratch_local")
    if local is None:
        local = owner.__dict__.setdefault("_scratch_local", threading.local())
    space = getattr(local, "scratch", None)
    if space is None:
        space = local.scratch = Scratch()
    return space
