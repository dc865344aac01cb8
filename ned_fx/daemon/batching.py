"""Batching render requests of different clients on the device.

With the fast path (:mod:`ned_fx.fastpath`) a GPU renders eight frames in one engine call for little more than
the price of one, so the daemon does not render each request as it comes: render threads prepare their frames
(decode, flip Nuke's rows) and hand them to one :class:`RenderBatcher`, which takes what is queued — frames of any
sessions — and renders them together with :func:`ned_fx.fastpath.render_across`.

It never holds a lone client back: it waits for more only while other render requests are already in the daemon's
hands (being decoded: at most ``hold`` seconds, and no longer than the last batch took to render), or while
other sessions rendered within the last ``active`` seconds and have nothing in this batch yet (at most ``window``
seconds, and half the last batch's time) — two hosts scrubbing
at once each send their next frame a moment after their last reply, so without that wait they would take turns
and never share a batch. A batch that fails is retried frame by frame, so one bad request (a frame outside its
shot) fails alone.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable

from .. import protocol as P


class RenderBatcher:
    """One thread rendering queued frames of any sessions in batches.

    Args:
        batch_size: frames per engine call at most.
        in_flight: how many render requests the daemon holds right now (queued here or being prepared).
        window: seconds at most to wait for the next frame of a session that is streaming frames;
        hold: seconds at most to wait for requests the daemon already holds (see the module docstring).
        active: seconds after its last render during which a session counts as streaming frames.
        render: ``render([(renderer, frame), …]) -> [(frame, reason), …]`` (default
            :func:`ned_fx.fastpath.render_across`); called with ``mattes=[bool, …]`` when a frame of the batch
            asks for its matte, then returning ``(frame, reason, weights)`` per item.
    """

    def __init__(self, batch_size: int, in_flight: Callable[[], int], window: float = 0.005, active: float = 1.0,
                 hold: float = 0.05, render: Callable | None = None):
        self.hold = float(hold)
        self.batch_size, self.in_flight, self.window = int(batch_size), in_flight, float(window)
        self.active = float(active)
        self._seen: dict[int, float] = {}      # id(renderer) -> when it last rendered
        self._took = 0.0                       # seconds the last batch took
        self._render = render
        self._queue: "queue.Queue" = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self.stats = {"batches": 0, "frames": 0, "largest": 0, "multi_session_batches": 0, "retried_singly": 0}
        self._thread = threading.Thread(target=self._loop, name="ned-fx-batcher", daemon=True)
        self._thread.start()

    def render(self, renderer, frame, matte: bool = False):
        """Render ``frame`` with ``renderer`` in the next batch; blocks until done.

        Returns:
            ``(frame, reason)`` as the renderer's own ``render`` does; with ``matte``, ``(frame, reason,
            weights)`` as its ``render_with_matte`` does.

        Raises:
            whatever rendering this frame alone raises; ProtocolError (``shutting_down``): the batcher was
            closed (the daemon is stopping).
        """
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise P.ProtocolError("the daemon is shutting down and renders no more frames: start it again",
                                      "shutting_down")
            self._queue.put((renderer, frame, future, bool(matte)))
        return future.result()

    def close(self) -> None:
        """Stop after rendering what is queued (no frame is left waiting: later ``render`` calls are refused)."""
        self._queue.put(None)

    def describe(self) -> dict:
        with self._lock:
            return {"batch_size": self.batch_size, "window_ms": self.window * 1e3, **self.stats}

    # -- the batching thread ------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                with self._lock:           # from here on nothing is queued: render what is, then stop
                    self._closed = True
                rest = []
                while True:
                    try:
                        rest.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                rest = [r for r in rest if r is not None]
                for k in range(0, len(rest), self.batch_size):
                    self._run(rest[k:k + self.batch_size])
                return
            batch = [item]
            now = time.monotonic()
            expect_until = now + min(self.window, max(0.001, 0.5 * self._took))
            hold_until = now + min(self.hold, max(0.001, self._took))
            streaming = {k for k, t in self._seen.items() if now - t < self.active}
            while len(batch) < self.batch_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    now = time.monotonic()
                    held = self.in_flight() > len(batch)
                    missing = bool(streaming - {id(item[0]) for item in batch})
                    left = max(hold_until - now if held else 0.0, expect_until - now if missing else 0.0)
                    if left <= 0:
                        break                  # nothing else is coming (soon): do not hold these back
                    try:
                        nxt = self._queue.get(timeout=min(left, 0.0005))
                    except queue.Empty:
                        continue
                if nxt is None:
                    self._queue.put(None)      # the close: handled after this batch
                    break
                batch.append(nxt)
            self._run(batch)

    def _run(self, batch: list) -> None:
        started = time.monotonic()
        render = self._render
        if render is None:
            from ..fastpath import render_across

            render = self._render = render_across
        mattes = [item[3] for item in batch]
        try:
            if any(mattes):
                results = render([(r, f) for r, f, _, _ in batch], mattes=mattes)
                results = [res if want else tuple(res[:2]) for res, want in zip(results, mattes)]
            else:
                results = render([(r, f) for r, f, _, _ in batch])
        except BaseException as exc:
            if len(batch) > 1:                 # find the bad one: each alone
                with self._lock:
                    self.stats["retried_singly"] += len(batch)
                for item in batch:
                    self._run([item])
                return
            batch[0][2].set_exception(exc)
            return
        done = time.monotonic()
        self._took = done - started
        for item in batch:
            self._seen[id(item[0])] = done
        if len(self._seen) > 256:
            self._seen = {k: t for k, t in self._seen.items() if done - t < self.active}
        with self._lock:
            self.stats["batches"] += 1
            self.stats["frames"] += len(batch)
            self.stats["largest"] = max(self.stats["largest"], len(batch))
            if len({id(item[0]) for item in batch}) > 1:
                self.stats["multi_session_batches"] += 1
        for item, result in zip(batch, results):
            item[2].set_result(result)
