"""The daemon's RenderBatcher (``ned_fx.daemon.batching``) with a stand-in render function: frames queued while a
batch renders go together into the next (up to the batch size), a lone request is never held back, a bad frame
fails alone, and closing renders what is queued and refuses the rest. (Real renders: test_daemon.py's
``test_fast_path_batches_frames_of_different_clients`` and test_fastpath.py's ``render_across`` tests.)"""

from __future__ import annotations

import threading
import time

import pytest

from ned_fx.daemon.batching import RenderBatcher
from ned_fx.protocol import ProtocolError


class Renders:
    """A render function that records its batches; the first call waits until ``gate`` is set."""

    def __init__(self):
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()

    def __call__(self, items):
        if not self.batches:
            self.entered.set()
            self.gate.wait(10)
        self.batches.append([f for _, f in items])
        if any(f == "bad" for _, f in items):
            raise ValueError("a bad frame")
        return [(f + "!", None) for _, f in items]


def _send(batcher, frames, held):
    results: dict = {}

    def one(frame):
        held[0] += 1
        try:
            results[frame] = batcher.render(object(), frame)
        except Exception as exc:
            results[frame] = exc
        finally:
            held[0] -= 1

    threads = [threading.Thread(target=one, args=(f,)) for f in frames]
    for t in threads:
        t.start()
        time.sleep(0.01)
    return threads, results


def test_frames_queued_during_a_batch_go_together_and_a_bad_one_fails_alone():
    renders, held = Renders(), [0]
    batcher = RenderBatcher(4, lambda: held[0], render=renders)
    first, results_a = _send(batcher, ["a"], held)
    assert renders.entered.wait(10)
    threads, results = _send(batcher, ["b", "c", "bad", "d", "e"], held)
    time.sleep(0.1)
    renders.gate.set()
    for t in first + threads:
        t.join(10)
    assert renders.batches[0] == ["a"], "the first request was alone: it did not wait"
    assert ["b", "c", "bad", "d"] in renders.batches, "what queued meanwhile went together (up to 4)"
    assert results_a == {"a": ("a!", None)}
    assert {f: r for f, r in results.items() if not isinstance(r, Exception)} == {
        f: (f + "!", None) for f in "bcde"}
    assert isinstance(results["bad"], ValueError), "the bad frame fails alone; the others of its batch render"
    stats = batcher.describe()
    assert stats["largest"] >= 1 and stats["retried_singly"] == 4 and stats["frames"] == 5
    batcher.close()


def test_a_lone_request_is_not_held_back():
    renders, held = Renders(), [0]
    renders.gate.set()
    batcher = RenderBatcher(8, lambda: held[0], window=0.5, hold=0.5, render=renders)
    started = time.perf_counter()
    held[0] = 1
    assert batcher.render(object(), "x") == ("x!", None)
    assert time.perf_counter() - started < 0.25, "nothing else was coming: no wait"
    batcher.close()


def test_close_renders_what_is_queued_and_refuses_the_rest():
    renders, held = Renders(), [0]
    batcher = RenderBatcher(2, lambda: held[0], render=renders)
    first, results = _send(batcher, ["a"], held)
    assert renders.entered.wait(10)
    threads, more = _send(batcher, ["b", "c", "d"], held)
    time.sleep(0.1)
    batcher.close()                                  # queued behind the blocked first batch
    threads += first
    renders.gate.set()
    for t in threads:
        t.join(10)
    results.update(more)
    assert all(results[f] == (f + "!", None) for f in "abcd"), results
    time.sleep(0.05)
    with pytest.raises(ProtocolError, match="shutting down") as e:
        batcher.render(object(), "late")
    assert e.value.code == "shutting_down"
