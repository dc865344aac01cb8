"""The chain of threads the edit's render runs on (ned_fx.streams): order kept, errors raised where the results
are consumed, every thread stopped when the consumer stops, and the work really overlaps."""

from __future__ import annotations

import threading
import time

import pytest

from ned_fx.streams import prefetch, staged


def _alive(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


def test_results_come_in_order_through_every_step():
    def slow_odd(x):            # uneven step times must not reorder anything
        time.sleep(0.002 if x % 2 else 0.0)
        return x * 10

    got = list(staged(range(50), (slow_odd, lambda x: x + 1), name="t-order"))
    assert got == [10 * x + 1 for x in range(50)]
    assert not _alive("t-order")


def test_an_error_in_a_step_is_raised_to_the_consumer_and_stops_the_chain():
    seen = []

    def step(x):
        seen.append(x)
        if x == 5:
            raise ValueError("frame 5 is corrupt")
        return x

    out = []
    with pytest.raises(ValueError, match="frame 5 is corrupt"):
        for x in staged(range(1000), (step,), depth=2, name="t-error"):
            out.append(x)
    assert out == [0, 1, 2, 3, 4]
    assert max(seen) < 20, "the source must stop soon after the failure, not decode the whole shot"
    assert not _alive("t-error")


def test_an_error_in_the_source_is_raised_too():
    def source():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(prefetch(source(), name="t-src"))
    assert not _alive("t-src")


def test_a_consumer_that_stops_early_stops_every_thread():
    produced = []

    def source():
        for i in range(10_000):
            produced.append(i)
            yield i

    gen = staged(source(), (lambda x: x,), depth=2, name="t-early")
    assert next(gen) == 0
    gen.close()                       # what a `break`, an exception or Ctrl-C in the consumer does
    assert not _alive("t-early")
    assert len(produced) < 20


def test_the_steps_really_overlap():
    """Three steps that each wait 20 ms (sleep releases the GIL, as PyAV, OpenCV and torch do) take about one
    step's time per item, not three."""
    def wait(x):
        time.sleep(0.02)
        return x

    start = time.perf_counter()
    assert list(staged(range(20), (wait, wait, wait), name="t-overlap")) == list(range(20))
    wall = time.perf_counter() - start
    assert wall < 0.6 * 20 * 3 * 0.02, f"{wall:.2f} s: the steps ran one after another"
