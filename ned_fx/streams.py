"""Frames through a chain of threads: decode, render and encode of neighbouring frames overlap.

A shot's frames are independent once the shot is analysed, and the heavy parts of each step (PyAV's decode and
encode, OpenCV, torch, large numpy operations) release the GIL, so on a machine with two or more cores a
chain of threads — one per step, bounded queues between them — runs at the speed of its slowest step instead
of the sum of all of them. Order is kept (one thread per step, FIFO queues), so the output is identical to a
loop over the same steps. An exception in any step ends the chain and is raised, with its own traceback, where
the results are consumed; a consumer that stops early (an error of its own, Ctrl-C) stops every thread.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, Sequence

_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event):
    while True:
        try:
            return q.get(timeout=0.05)
        except queue.Empty:
            if stop.is_set():
                return _END


def _feed(source: Iterable, out: queue.Queue, stop: threading.Event) -> None:
    try:
        for item in source:
            if not _put(out, item, stop):
                return
    except BaseException as exc:        # noqa: BLE001 - handed to the consumer, raised there
        _put(out, _Failure(exc), stop)
        return
    _put(out, _END, stop)


def _work(step: Callable, inbox: queue.Queue, out: queue.Queue, stop: threading.Event) -> None:
    while True:
        item = _get(inbox, stop)
        if item is _END or isinstance(item, _Failure):
            _put(out, item, stop)
            return
        try:
            result = step(item)
        except BaseException as exc:    # noqa: BLE001 - handed to the consumer, raised there
            _put(out, _Failure(exc), stop)
            return
        if not _put(out, result, stop):
            return


def staged(source: Iterable, steps: Sequence[Callable], depth: int = 2, name: str = "ned-fx") -> Iterator:
    """``step_n(…step_1(item))`` for every item of ``source``, in order, each step (and the source's own
    iteration) in a thread of its own.

    Args:
        source: the items (iterated in a thread: e.g. a decoder).
        steps: one-argument callables, applied in turn.
        depth: items waiting between two threads (bounds memory: about ``depth`` frames per step).
        name: thread name prefix (seen in profilers and tracebacks).

    Yields:
        Each item's last step's result, in the source's order.

    Raises:
        Whatever the source or a step raised (the first one; the chain stops there).
    """
    stop = threading.Event()
    queues = [queue.Queue(maxsize=max(1, depth)) for _ in range(len(steps) + 1)]
    threads = [threading.Thread(target=_feed, args=(source, queues[0], stop), name=f"{name}-source", daemon=True)]
    for i, step in enumerate(steps):
        threads.append(threading.Thread(target=_work, args=(step, queues[i], queues[i + 1], stop),
                                        name=f"{name}-step{i + 1}", daemon=True))
    for t in threads:
        t.start()
    try:
        while True:
            item = _get(queues[-1], stop)
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        for t in threads:
            t.join()


def prefetch(source: Iterable, depth: int = 2, name: str = "ned-fx-prefetch") -> Iterator:
    """The items of ``source``, produced ahead in a thread of its own (a decoder beside its consumer)."""
    return staged(source, (), depth=depth, name=name)
