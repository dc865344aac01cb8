"""``ned-fx batch`` (placeholder: being built)."""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``batch`` sub-command."""
    p = subparsers.add_parser("batch", help="run a shot list (YAML/CSV/OTIO) through the daemon")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..errors import NedFxError

    raise NedFxError("ned-fx batch is not built yet")
