"""``ned-fx farm`` (placeholder: being built)."""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``farm`` sub-command."""
    p = subparsers.add_parser("farm", help="submit a shot list to a render farm (OpenCue, Deadline)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..errors import NedFxError

    raise NedFxError("ned-fx farm is not built yet")
