"""Progress bars for ``ned-fx batch``: one overall bar (frames of the whole list) and one bar per shot in flight,
fed by the runner's ``progress(shot, stage, done, total)`` calls from its worker threads."""

from __future__ import annotations

import sys
import threading

from .config import STATUSES


class BatchBars:
    """tqdm bars: ``overall`` at the top, a line per shot in flight below it; a line per finished shot.

    Args:
        jobs: shots in flight at most (the number of shot lines); stream: where the bars go (stderr).
    """

    def __init__(self, jobs: int, stream=None):
        from tqdm import tqdm

        self._tqdm = tqdm
        self.stream = stream or sys.stderr
        self.lock = threading.RLock()
        tqdm.set_lock(self.lock)
        self.overall = tqdm(desc="batch", unit="frame", total=0, position=0, dynamic_ncols=True, file=self.stream,
                            mininterval=0.3)
        self.free = list(range(1, jobs + 1))
        self.bars: dict[str, tuple] = {}       # shot -> (bar, position, stage)

    def __call__(self, shot: str, stage: str, done: int, total: int) -> None:
        with self.lock:
            if stage == "total":
                self.overall.total = total
                self.overall.refresh()
                return
            if stage in STATUSES:
                self._finish(shot, stage, done, total)
                return
            bar = self._bar(shot, stage, total)
            if stage == "resumed":
                self.overall.update(done)
                return
            step = done - bar.n
            if step > 0:
                bar.update(step)
                if stage == "rendering":
                    self.overall.update(step)

    def _bar(self, shot: str, stage: str, total: int):
        entry = self.bars.get(shot)
        if entry is None:
            position = self.free.pop(0) if self.free else len(self.bars) + 1
            bar = self._tqdm(desc=f"{shot} {stage}", unit="frame", total=total, position=position, leave=False,
                             dynamic_ncols=True, file=self.stream, mininterval=0.3)
            self.bars[shot] = (bar, position, stage)
            return bar
        bar, position, old = entry
        if stage != old and stage != "resumed":
            bar.reset(total=total)
            bar.set_description(f"{shot} {stage}")
            self.bars[shot] = (bar, position, stage)
        return bar

    def _finish(self, shot: str, status: str, done: int, total: int) -> None:
        entry = self.bars.pop(shot, None)
        if entry is not None:
            bar, position, _ = entry
            bar.close()
            self.free.append(position)
            self.free.sort()
        self._tqdm.write(f"{shot}: {status}", file=self.stream)

    def close(self) -> None:
        with self.lock:
            for bar, _, _ in self.bars.values():
                bar.close()
            self.bars.clear()
            self.overall.close()
