"""``ned-fx train-renderer`` (placeholder: being built)."""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``train-renderer`` sub-command."""
    p = subparsers.add_parser("train-renderer", help="train the neural face renderer on an actor's own footage")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..errors import NedFxError

    raise NedFxError("ned-fx train-renderer is not built yet")
