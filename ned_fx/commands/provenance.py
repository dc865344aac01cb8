"""``ned-fx provenance`` (placeholder: being built)."""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``provenance`` sub-command."""
    p = subparsers.add_parser("provenance", help="print what a file says about its edit")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..errors import NedFxError

    raise NedFxError("ned-fx provenance is not built yet")
