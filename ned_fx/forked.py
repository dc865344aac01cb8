"""A shot's frames edited in forked worker processes: each its own interpreter, so the render's many small Python
steps run on every core at once instead of taking turns on one GIL.

The threads of :mod:`ned_fx.streams` overlap decode, render and encode, but the render itself is thousands of
small numpy/OpenCV calls a frame that hold the GIL between them: two render threads on a 2-core machine ran a
d12 shot 1.2x as fast as one, two forked processes 1.9x (``bench/edit.py``; the render pass of a 512² edit is
~30 ms of such work a frame). A worker is forked once the shot's renderer is built, so it inherits it (models,
meshes, mattes) without copying or pickling; frames go to it through slots of one shared anonymous memory
mapping (no ``/dev/shm`` needed), it edits the slot in place and answers with a small message. Order is kept:
frame ``i`` goes to worker ``i % n`` and results are read back in the same turn, so the output is the loop's,
bit for bit (each frame's render depends on that frame alone: the daemon renders any frame on request).

Linux only (``fork`` elsewhere is unsafe or missing: :func:`available`); callers fall back to their threads.
A worker ignores Ctrl-C and SIGTERM (the caller stops it), never runs the parent's exit handlers (multiprocessing ends a
forked child with ``os._exit``: a parent's temporary output files are not removed by a child) and ends when the
parent's pipe closes (the parent was killed).

A worker never collects what it inherited: the parent's objects are frozen (``gc.freeze``) across the forks. The
parent's uncollected garbage may hold native threads (a PyAV decoder left in a reference cycle by an earlier edit
in the same process: FFmpeg's frame threads) that do not exist in a child; freed there, its teardown waits for
them for good (seen: a render worker hung at its first collection after a neural edit in the same process, and
``tests/test_forked.py`` hangs a child so without the freeze). The parent collects them later, where the threads
are.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .errors import NedFxError

ENV = "NED_FX_RENDER_PROCESSES"

#: the largest frame (pixels) whose shot is rendered in workers: up to 2K / 1080p. A 4K frame's render holds
#: ~100 MB arrays per frame in flight (float32), and every worker would hold its own: one process peaked at
#: 2.07 GB on a 4K EXR sequence (``bench/memory.py``; the floor is 2.5 GB), so 4K renders in one process.
MAX_PIXELS = 2048 * 1152


class RenderWorkerError(NedFxError):
    """A render worker process ended without answering (killed, e.g. by the system when memory ran out)."""


def available() -> bool:
    """Whether frames can be edited in forked workers here (Linux, ``fork`` start method)."""
    import multiprocessing

    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def processes(value: int | str | None = None, cores: int | None = None) -> int:
    """How many worker processes render a shot's frames: ``value`` if given, else ``$NED_FX_RENDER_PROCESSES``,
    else one per core (at most 8); 0 or 1 = none (the render runs in this process's threads).

    Raises:
        NedFxError (InvalidParameterError): not a whole number between 0 and 64.
    """
    from .threads import count_setting

    return count_setting(value, ENV, min(cores or os.cpu_count() or 1, 8), 64, "render processes", "the argument")


class Edited:
    """One item's result: ``item`` as the source gave it, ``pixels`` (the edited pixels, in a shared slot valid
    until the next result is taken; None for an item that needed no work) and ``payload`` (what the work function
    returned beside the pixels)."""

    __slots__ = ("item", "pixels", "payload")

    def __init__(self, item, pixels, payload):
        self.item, self.pixels, self.payload = item, pixels, payload


def forked(source: Iterable, split: Callable[[Any], tuple], work: Callable[[Any, np.ndarray], tuple],
           workers: int, depth: int = 2, name: str = "ned-fx-forked") -> Iterator[Edited]:
    """``work(message, pixels)`` for every item of ``source`` that has pixels, in forked workers, in order.

    ``split(item)`` gives ``(pixels or None, message)``: the pixels go to the worker through shared memory, the
    message (small, picklable: e.g. a frame's number and channel names) through a pipe. The first item with
    pixels fixes the slot size; the workers are forked when it arrives (after anything the parent built, which
    they share). ``work`` runs in a worker on a writable copy of the pixels in shared memory: it edits them in
    place (or returns an array of the same shape and dtype, copied back) and returns ``(array or None,
    payload)``; the payload must pickle. An item whose pixels differ in shape or type from the first one's is
    worked on in this process (the same result, no parallelism).

    Args:
        source: the items (iterated in a thread of this process: e.g. a decoder).
        split: ``split(item) -> (pixels or None, message)``; None pixels: the item passes through (yielded with
            ``pixels`` None).
        work: ``work(message, pixels) -> (array or None, payload)``.
        workers: processes (>= 1).
        depth: items in flight per worker.
        name: the feeding thread's name.

    Yields:
        :class:`Edited` per item, in the source's order.

    Raises:
        Whatever the source or ``work`` raised (a worker's error with the worker's traceback as a note);
        RenderWorkerError: a worker died.
    """
    import gc
    import mmap
    import multiprocessing
    import queue

    from .streams import prefetch
    from .threads import set_library_threads

    ctx = multiprocessing.get_context("fork")
    items = iter(source)
    first = None
    for item in items:
        px, message = split(item)
        if px is not None:
            first = (item, px, message)
            break
        yield Edited(item, None, None)
    if first is None:
        return
    shape, dtype = first[1].shape, first[1].dtype
    slot_bytes = int(first[1].nbytes)
    slots = max(1, workers) * max(1, depth) + 1
    buf = mmap.mmap(-1, slot_bytes * slots)
    views = [np.ndarray(shape, dtype, buffer=buf, offset=i * slot_bytes) for i in range(slots)]
    conns, procs = [], []
    stop = threading.Event()
    free: queue.Queue = queue.Queue()
    for i in range(slots):
        free.put(i)

    def tasks():
        """(item, slot, worker) in order, each task's pixels copied into its slot and sent (in this thread)."""
        turn = 0
        for item, px, message in itertools.chain((first,), ((i, *split(i)) for i in items)):
            if px is None:
                yield item, None, None
                continue
            if px.shape != shape or px.dtype != dtype:
                yield item, -1, None          # worked on in this process
                continue
            while True:
                try:
                    slot = free.get(timeout=0.05)
                    break
                except queue.Empty:
                    if stop.is_set():
                        return
            np.copyto(views[slot], px)
            w = turn % len(conns)
            turn += 1
            conns[w][0].send((slot, message))
            yield item, slot, w

    feed = None
    # one thread per library from now on (the workers are the parallelism), set before the fork so the workers
    # inherit it: a forked child that resizes a thread pool its parent had started waits for threads it does not
    # have (OpenCV hung in ``setNumThreads`` so)
    restore = set_library_threads(1)
    try:
        # nothing the workers inherit is collected in them (see the module's docs); a caller's own freeze is kept
        thawed = gc.get_freeze_count() == 0
        gc.freeze()
        try:
            for w in range(max(1, workers)):
                task_r, task_w = ctx.Pipe(duplex=False)
                res_r, res_w = ctx.Pipe(duplex=False)
                # the child closes the parent's ends it inherits (its own task pipe's writer among them: held open,
                # its reader would never see the parent go)
                theirs = [task_w, res_r, *(end for pair in conns for end in pair)]
                p = ctx.Process(target=_worker, args=(task_r, res_w, views, work, w, theirs), name=f"{name}-{w}",
                                daemon=True)
                p.start()
                task_r.close()
                res_w.close()
                conns.append((task_w, res_r))
                procs.append(p)
        finally:
            if thawed:
                gc.unfreeze()
        feed = prefetch(tasks(), depth=slots, name=name)
        for item, slot, w in feed:
            if slot is None:
                yield Edited(item, None, None)
                continue
            if slot < 0:
                px, message = split(item)
                px = np.array(px)
                out, payload = work(message, px)
                yield Edited(item, px if out is None else out, payload)
                continue
            try:
                status, value = conns[w][1].recv()
            except (EOFError, OSError):
                procs[w].join(1.0)
                raise RenderWorkerError(f"render worker {w} ended without a result (exit code "
                                        f"{procs[w].exitcode}; out of memory? {ENV}=1 renders in one process)") \
                    from None
            if status == "error":
                raise value
            try:
                yield Edited(item, views[slot], value)
            finally:
                free.put(slot)
    finally:
        restore()
        stop.set()
        if feed is not None:
            feed.close()
        for task_w, _ in conns:
            try:
                task_w.send(None)
            except (OSError, ValueError):
                pass
        for p in procs:
            p.join(2.0)
            if p.is_alive():
                p.kill()
                p.join(1.0)
        for task_w, res_r in conns:
            task_w.close()
            res_r.close()
        # the mapping is not closed here: a caller may still hold a result's pixels (a view of it), and an
        # unmapped view would crash; it is unmapped when the last view goes
        del views, buf


def _worker(tasks, results, views, work, index: int, parents_ends=()) -> None:
    """A worker's loop: (slot, message) in, ``("ok", payload)`` or ``("error", exception)`` out; None or a closed
    pipe (the parent gone) ends it. ``parents_ends``: the pipe ends the parent keeps, closed here."""
    import signal
    import traceback

    # the parent stops the workers: Ctrl-C and a farm's SIGTERM reach the whole process group, and a worker killed
    # by one before its parent saw it would turn a clean stop into "a render worker died"; a killed parent's
    # workers end when its pipes close
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for end in parents_ends:
        end.close()
    while True:
        try:
            msg = tasks.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        slot, message = msg
        view = views[slot]
        try:
            out, payload = work(message, view)
            if out is not None and out is not view and not np.shares_memory(out, view):
                np.copyto(view, out)
            answer = ("ok", payload)
        except BaseException as exc:        # noqa: BLE001 - handed to the parent, raised there
            exc.add_note(f"in render worker {index}:\n{traceback.format_exc()}")
            answer = ("error", exc)
        try:
            results.send(answer)
        except OSError:                     # the parent is gone (killed): nobody to answer
            return
        except Exception as unsent:         # an exception or a payload that does not pickle: its text
            what = answer[1] if answer[0] == "error" else unsent
            try:
                results.send(("error", RenderWorkerError(f"render worker {index}: {type(what).__name__}: {what}")))
            except OSError:
                pass
            return
        if answer[0] == "error":
            return

