"""Which runtime runs the tracker's networks (named in the track cache's key: another runtime, another key)."""

from __future__ import annotations

from .config import TrackerConfig


def runtime_name(config: TrackerConfig) -> str:
    """The runtime ``config`` runs the networks on, without loading anything."""
    return "torch"
