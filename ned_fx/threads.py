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
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import InvalidParameterError

ENV = "NED_FX_THREADS"


def default_threads(cores: int | None = None) -> int:
    """Half the cores, at least 1, at most 8."""
    cores = cores or os.cpu_count() or 1
    return max(1, min(8, cores // 2))


def count_setting(value: int | str | None, env: str, default: int, upper: int, what: str, given: str) -> int:
    """A count from ``value`` if given (named ``given`` in errors: a flag), else ``$env``, else ``default``: a whole
    number between 0 and ``upper``.

    Raises:
        InvalidParameterError: not such a number (the message says where it came from).
    """
    source = given if value is not None else "$" + env
    value = value if value is not None else os.environ.get(env)
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{what} must be a whole number >= 0, got {value!r} (from {source})") from None
    if n < 0 or n > upper:
        raise InvalidParameterError(f"{what} must be between 0 and {upper}, got {n} (from {source})")
    return n


def resolve(threads: int | str | None = None) -> int:
    """The thread count to use: ``threads`` if given, else ``$NED_FX_THREADS``, else :func:`default_threads`
    (0 = the libraries' own defaults)."""
    return count_setting(threads, ENV, default_threads(), 1024, "threads", "--threads")


def configure(threads: int | str | None = None) -> int:
    """Apply the thread count to torch (if loaded or loadable cheaply later: through the environment too) and
    OpenCV, and tune the C allocator (:func:`ned_fx.allocator.keep_freed_memory`); returns the thread count.
    Call once, before the engines run."""
    n = resolve(threads)
    _apply(n)
    return n


@contextmanager
def configured(threads: int | str | None = None) -> Iterator[int]:
    """:func:`configure` for the length of a ``with`` block (``ned_fx.cli.main`` called from a caller's own Python,
    a test): the thread pools and the environment variables it set are as they were afterwards, so the caller's
    torch keeps its own thread count (the allocator's tuning stays: it is process-wide and harmless)."""
    env = {k: os.environ.get(k) for k in _THREAD_ENV}
    n = resolve(threads)
    restore = _apply(n)
    try:
        yield n
    finally:
        restore()
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


#: what torch reads when it starts its pools
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _apply(n: int) -> Callable[[], None]:
    """:func:`configure`'s work for a resolved count ``n``; returns what restores the thread pools (not the
    environment, nor the allocator's tuning)."""
    from .allocator import keep_freed_memory

    keep_freed_memory()       # the same process-wide moment: freed frame buffers stay for the next frame
    if n == 0:
        return lambda: None
    # torch reads these when it starts its pools; set them for this process (and the daemon's children)
    for k in _THREAD_ENV:
        os.environ[k] = str(n)
    return set_library_threads(n)


def set_library_threads(n: int) -> Callable[[], None]:
    """Size the thread pools of torch (if loaded), OpenCV and the BLAS already loaded in this process (numpy's
    OpenBLAS, through threadpoolctl; nothing where it is missing) to ``n``; returns what restores the previous
    sizes."""
    import sys

    undo = []
    torch = sys.modules.get("torch")
    if torch is not None:
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        undo.append(lambda: torch.set_num_threads(before))
    try:
        import cv2

        cv_before = cv2.getNumThreads()
        cv2.setNumThreads(n)
        undo.append(lambda: cv2.setNumThreads(cv_before))
    except ImportError:          # pragma: no cover - cv2 is a dependency
        pass
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:          # pragma: no cover - a dependency; an older install without it keeps the default
        pass
    else:
        undo.append(threadpool_limits(limits=n, user_api="blas").restore_original_limits)

    def restore() -> None:
        for step in reversed(undo):
            step()

    return restore
