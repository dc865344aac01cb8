"""How many CPU threads the engines use: one setting for torch, OpenCV and numpy's BLAS, chosen to hold up on a
shared machine.

torch's default (one intra-op thread per core, spinning while it waits) is fastest on an idle machine and
collapses when the cores are busy with something else — Nuke, a daemon, a batch, another render: every
parallel region waits for its slowest thread, and a thread that lost its core stalls them all (measured by
``bench/threads.py``: see its results). ned_fx therefore uses half the cores by default (at least 1, at most
8), which keeps most of the idle speed and degrades gracefully under load; ``--threads N`` (every command) or
``$NED_FX_THREADS`` sets it, ``0`` leaves the libraries' own defaults.

numpy's BLAS (OpenBLAS) starts one thread per core when numpy is imported, before any setting can reach it
through the environment; its idle threads spin after every call, and the render makes many small ones (a 2-core
edit spent ~7 % of its CPU in ``blas_thread_server``: ``perf``, 512² and 1080p). :func:`configure` resizes that
pool through threadpoolctl, as it sets torch's.
"""

from __future__ import annotations

import os

from .errors import InvalidParameterError

ENV = "NED_FX_THREADS"


def default_threads(cores: int | None = None) -> int:
    """Half the cores, at least 1, at most 8."""
    cores = cores or os.cpu_count() or 1
    return max(1, min(8, cores // 2))


def resolve(threads: int | str | None = None) -> int:
    """The thread count to use: ``threads`` if given, else ``$NED_FX_THREADS``, else :func:`default_threads`
    (0 = the libraries' own defaults)."""
    value = threads if threads is not None else os.environ.get(ENV)
    if value is None or value == "":
        return default_threads()
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"threads must be a whole number >= 0, got {value!r} (from "
                                    f"{'--threads' if threads is not None else '$' + ENV})") from None
    if n < 0 or n > 1024:
        raise InvalidParameterError(f"threads must be between 0 and 1024, got {n}")
    return n


def configure(threads: int | str | None = None) -> int:
    """Apply the thread count to torch (if loaded or loadable cheaply later: through the environment too) and
    OpenCV, and tune the C allocator (:func:`ned_fx.allocator.keep_freed_memory`); returns the thread count.
    Call once, before the engines run."""
    n = resolve(threads)
    from .allocator import keep_freed_memory

    keep_freed_memory()       # the same process-wide moment: freed frame buffers stay for the next frame
    if n == 0:
        return 0
    # torch reads these when it starts its pools; set them for this process (and the daemon's children)
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ["MKL_NUM_THREADS"] = str(n)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:          # pragma: no cover - cv2 is a dependency
        pass
    limit_blas(n)
    return n


def limit_blas(n: int) -> None:
    """Resize the BLAS pools already loaded in this process (numpy's OpenBLAS) to ``n`` threads (threadpoolctl;
    nothing where it is missing: the libraries keep their defaults)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:          # pragma: no cover - a dependency; an older install without it keeps the default
        return
    threadpool_limits(limits=n, user_api="blas")
