"""``ned-fx engines`` (placeholder: being built)."""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``engines`` sub-command."""
    p = subparsers.add_parser("engines", help="build, list and verify the compiled engines")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..errors import NedFxError

    raise NedFxError("ned-fx engines is not built yet")
