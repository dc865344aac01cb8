"""Batch work for pipeline TDs: shot lists (YAML, CSV, OpenTimelineIO) and running them through the daemon.

* :mod:`ned_fx.batch.shotlist` — the shot-list format: ``read_from_file(path) -> ShotList``,
  ``write_to_file(shotlist, path)`` (host bridges build shot lists with it; imports no torch and no stage).
* :mod:`ned_fx.batch.runner` — ``run_batch(shotlist, BatchConfig(...))``: every shot through ``ned-fx serve``,
  several in flight, resumable, with a JSON report and a before/after contact sheet per shot.

Importing this package does no work and loads nothing heavy.
"""

from .shotlist import SHOT_KEYS, Shot, ShotList, ShotListError, read_from_file, write_to_file

__all__ = ["SHOT_KEYS", "Shot", "ShotList", "ShotListError", "read_from_file", "write_to_file"]
