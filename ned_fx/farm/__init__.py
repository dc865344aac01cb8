"""Render-farm submission: shot lists become jobs of frame chunks with a GPU requirement.

* :mod:`ned_fx.farm.jobs` — the neutral job model (frozen :class:`Job` → :class:`Layer` → :class:`Task`) and
  :func:`build_jobs` (per shot: an ``analysis`` layer, ``render`` chunks depending on it, and for movie outputs an
  ``assemble`` layer); every task runs ``ned-fx edit`` (or ``ned-fx farm assemble``).
* :mod:`ned_fx.farm.opencue` — OpenCue through its Python API (pyoutline): job spec XML, ``cuerun.launch``.
* :mod:`ned_fx.farm.deadline` — Deadline job/plugin info files (CommandLine plugin), ``deadlinecommand``.

Importing this package does no work; pyoutline is imported only when an OpenCue spec is built.
"""

from .jobs import FarmConfig, FarmError, Job, Layer, Task, build_jobs

__all__ = ["FarmConfig", "FarmError", "Job", "Layer", "Task", "build_jobs"]
