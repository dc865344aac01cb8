"""Render-farm submission: shot lists become jobs of frame chunks with a GPU requirement.

* :mod:`ned_fx.farm.jobs` — the neutral job model (frozen :class:`Job` → :class:`Layer` → :class:`Task`) and
  :func:`build_jobs` (per shot: an ``analysis`` layer, ``render`` chunks depending on it, and for movie outputs an
  ``assemble`` layer); every task runs ``ned-fx edit`` (or ``ned-fx farm assemble``).
* :mod:`ned_fx.farm.opencue` — OpenCue through its Python API (pyoutline): job spec XML, ``cuerun.launch``.
* :mod:`ned_fx.farm.deadline` — Deadline job/plugin info files (CommandLine plugin), ``deadlinecommand``.
* :mod:`ned_fx.farm.openjd` — an Open Job Description job template (``openjd run``; Deadline Cloud).
* :mod:`ned_fx.farm.task` — what every task runs on a node (``ned-fx farm task``): no re-analysis, retry-safe,
  failures that name the shot, frames and reason; pyoutline's pycuerun wrapper.
* :mod:`ned_fx.farm.collect` — a farm run's outputs read back into a batch report (``ned-fx batch --from-farm``).

Importing this package does no work; pyoutline is imported only when an OpenCue spec is built.
"""

from .jobs import FarmConfig, FarmError, Job, Layer, Task, build_jobs

__all__ = ["FarmConfig", "FarmError", "Job", "Layer", "Task", "build_jobs"]
