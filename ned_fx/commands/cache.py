"""``ned-fx cache``: what the analysis cache holds, and clearing it.

    ned-fx cache status                      # the folder; per kind: files, bytes, oldest and newest
    ned-fx cache clear                       # every cached analysis of footage (tracks, plans, fits, models,
                                             # mattes, meshes)
    ned-fx cache clear --older-than 30       # ... not used for 30 days
    ned-fx cache clear --all                 # ... and the tracker's ONNX exports (made again on next use)
    ned-fx cache status --cache DIR          # another folder (a daemon's --cache)

The cache (``$NED_FX_CACHE``, else ``$NED_FX_HOME/cache``) is what lets a second edit of a shot skip the analysis;
it holds face tracks and models of real people (biometric data: the folder is 0700, each file 0600) and grows with
every shot analysed -- up to ``$NED_FX_CACHE_LIMIT_GB`` (default 20 GB; 0: no limit), beyond which each edit
removes the least recently used analyses (:mod:`ned_fx.cachefiles`). ``clear`` removes only the files ned_fx writes
there (named by kind, regular files of this user; a link is never followed) and the temporary files a killed writer
left (older than an hour: a running edit's are left alone); anything else in the folder is left as it is. A file in
use by a running edit or daemon is safe to remove: it is read whole or not at all, and a missing file is only a
cache miss.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..cachefiles import FOOTAGE, KINDS, STALE_TMP, clear, limit_bytes, status  # noqa: F401 (the command's API)
from ..errors import InvalidParameterError


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``cache`` sub-command."""
    p = subparsers.add_parser("cache", help="list or clear the cached shot analyses (tracks, fits, models, mattes, "
                                            "meshes)",
                              description="status: what the analysis cache holds; clear: remove it (only the files "
                              "ned_fx writes there).", epilog=__doc__.split("\n\n")[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["status", "clear"])
    p.add_argument("--cache", metavar="DIR", help="the cache folder (default $NED_FX_CACHE, else "
                                                  "$NED_FX_HOME/cache)")
    p.add_argument("--older-than", type=float, metavar="DAYS",
                   help="clear: only files not written or read by an edit for DAYS days")
    p.add_argument("--all", action="store_true", help="clear: the tracker's ONNX exports too")
    p.set_defaults(func=run)
    return p


def _folder(cache: str | None) -> Path:
    from ..tracking.cache import cache_dir

    return Path(cache) if cache else cache_dir()


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(t))


def run(args) -> int:
    folder = _folder(args.cache)
    if args.action == "clear":
        removed, freed = clear(folder, args.older_than, args.all)
        age = "" if args.older_than is None else f" unused for {args.older_than:g} days"
        print(f"removed {removed} file(s){age}, {_size(freed)}, from {folder}")
        return 0
    if args.older_than is not None or args.all:
        raise InvalidParameterError("--older-than and --all go with `ned-fx cache clear`")
    table = status(folder)
    print(f"cache: {folder}" + ("" if folder.is_dir() else " (none yet)"))
    for kind, row in table.items():
        if not row["files"] and kind == "partial":
            continue
        span = f", {_day(row['oldest'])} .. {_day(row['newest'])}" if row["files"] else ""
        print(f"  {kind:<8} {row['files']:>6} file(s) {_size(row['bytes']):>10}{span}")
    total = sum(r["bytes"] for r in table.values())
    print(f"  {'total':<8} {sum(r['files'] for r in table.values()):>6} file(s) {_size(total):>10}")
    limit = limit_bytes()
    print("  limit: none ($NED_FX_CACHE_LIMIT_GB=0)" if limit is None else
          f"  limit: {limit / 1e9:g} GB of analyses ($NED_FX_CACHE_LIMIT_GB): after each edit the least recently "
          f"used go first")
    return 0
