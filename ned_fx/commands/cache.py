"""``ned-fx cache``: what the analysis cache holds, and clearing it.

    ned-fx cache status                      # the folder; per kind: files, bytes, oldest and newest
    ned-fx cache clear                       # every cached analysis of footage (tracks, plans, fits, models, mattes)
    ned-fx cache clear --older-than 30       # ... not used for 30 days
    ned-fx cache clear --all                 # ... and the tracker's ONNX exports (made again on next use)
    ned-fx cache status --cache DIR          # another folder (a daemon's --cache)

The cache (``$NED_FX_CACHE``, else ``$NED_FX_HOME/cache``) is what lets a second edit of a shot skip the analysis;
it holds face tracks and models of real people (biometric data: the folder is 0700, each file 0600) and grows with
every shot analysed. ``clear`` removes only the files ned_fx writes there (named by kind, regular files of this
user; a link is never followed) and the temporary files a killed writer left (older than an hour: a running edit's
are left alone); anything else in the folder is left as it is. A file in use by a running edit or daemon is safe to
remove: it is read whole or not at all, and a missing file is only a cache miss.
"""

from __future__ import annotations

import argparse
import os
import stat
import time
from pathlib import Path

from ..errors import InvalidParameterError

#: kind -> file name pattern inside the cache folder (``onnx``: in its ``onnx/`` sub-folder)
KINDS = {"track": "track-*.npz", "edit": "edit-*.npz", "fit": "fit-*.npz", "models": "models-*.npz",
         "mattes": "mattes-*.npz", "onnx": "onnx/*.onnx"}
#: the kinds made from footage (cleared by default): everything but the tracker's ONNX exports
FOOTAGE = ("track", "edit", "fit", "models", "mattes")
#: a temporary file (``.name.<pid>.tmp``) older than this (seconds) was left by a writer that died
STALE_TMP = 3600.0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``cache`` sub-command."""
    p = subparsers.add_parser("cache", help="list or clear the cached shot analyses (tracks, fits, models, mattes)",
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


def _files(folder: Path) -> dict[str, list[tuple[Path, os.stat_result]]]:
    """Per kind (and ``"partial"``: temporary files), the cache's files: regular files of this user only."""
    out: dict[str, list] = {kind: [] for kind in (*KINDS, "partial")}
    uid = os.getuid()

    def own(path: Path):
        try:
            st = os.lstat(path)
        except OSError:
            return None
        return st if stat.S_ISREG(st.st_mode) and st.st_uid == uid else None

    for kind, pattern in KINDS.items():
        for path in sorted(folder.glob(pattern)):
            st = own(path)
            if st is not None:
                out[kind].append((path, st))
    for where in (folder, folder / "onnx"):
        for path in sorted(where.glob(".*.tmp")):
            st = own(path)
            if st is not None:
                out["partial"].append((path, st))
    return out


def _check_folder(folder: Path) -> bool:
    """True when ``folder`` is a folder of this user, False when there is none.

    Raises:
        InvalidParameterError: it is something else, or another user's.
    """
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise InvalidParameterError(f"cannot read the cache folder {folder}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidParameterError(f"{folder} is not a folder (the cache folder must be a folder of this user; "
                                    f"links are not followed)")
    if st.st_uid != os.getuid():
        raise InvalidParameterError(f"{folder} belongs to another user: ned-fx only lists or clears its own cache")
    return True


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(t))


def status(folder: Path) -> dict[str, dict]:
    """Per kind: ``files``, ``bytes``, ``oldest`` and ``newest`` (modification times, or None)."""
    files = _files(folder) if _check_folder(folder) else {kind: [] for kind in (*KINDS, "partial")}
    return {kind: {"files": len(entries), "bytes": sum(st.st_size for _, st in entries),
                   "oldest": min((st.st_mtime for _, st in entries), default=None),
                   "newest": max((st.st_mtime for _, st in entries), default=None)}
            for kind, entries in files.items()}


def clear(folder: Path, older_than_days: float | None = None, everything: bool = False,
          now: float | None = None) -> tuple[int, int]:
    """Remove the cache's files of the footage kinds (``everything``: the ONNX exports too) last written or read
    by an edit (the file's modification time: ``ned-fx edit`` touches what it reads) more than ``older_than_days``
    ago (None: all of them), and temporary files older than :data:`STALE_TMP`. Returns
    ``(files removed, bytes freed)``; a file that vanished meanwhile is not counted.

    Raises:
        InvalidParameterError: a negative age; the folder is not this user's folder.
    """
    if older_than_days is not None and not older_than_days >= 0:
        raise InvalidParameterError(f"--older-than must be a number of days >= 0, got {older_than_days}")
    if not _check_folder(folder):
        return 0, 0
    now = time.time() if now is None else now
    limit = None if older_than_days is None else now - older_than_days * 86400.0
    files = _files(folder)
    kinds = (*FOOTAGE, "onnx") if everything else FOOTAGE
    doomed = [(p, st) for kind in kinds for p, st in files[kind] if limit is None or st.st_mtime < limit]
    doomed += [(p, st) for p, st in files["partial"] if st.st_mtime < now - STALE_TMP]
    removed = freed = 0
    for path, st in doomed:
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        removed += 1
        freed += st.st_size
    return removed, freed


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
    return 0
