"""The analysis cache's files (``$NED_FX_CACHE``, else ``$NED_FX_HOME/cache``): which files are ned_fx's, what they
hold, clearing them, and keeping the folder under a size limit (``$NED_FX_CACHE_LIMIT_GB``, default
:data:`DEFAULT_LIMIT_GB`: least recently used analyses go first, never one the running edit uses).

Shared by ``ned-fx cache`` (:mod:`ned_fx.commands.cache`), the edit pipeline and the daemon's sessions. Only the
files ned_fx writes there are touched (named by kind, regular files of this user; a link is never followed); a file
in use by a running edit or daemon is safe to remove: it is read whole or not at all, and a missing file is only a
cache miss. Nothing at import time.
"""

from __future__ import annotations

import functools
import os
import stat
import time
from pathlib import Path

from .errors import InvalidParameterError

#: kind -> file name pattern inside the cache folder (``onnx``: in its ``onnx/`` sub-folder)
KINDS = {"track": "track-*.npz", "edit": "edit-*.npz", "fit": "fit-*.npz", "models": "models-*.npz",
         "mattes": "mattes-*.npz", "mesh": "mesh-*.npz", "onnx": "onnx/*.onnx"}
#: the kinds made from footage (cleared by default): everything but the tracker's ONNX exports
FOOTAGE = ("track", "edit", "fit", "models", "mattes", "mesh")
#: a temporary file (``.name.<pid>.tmp``) older than this (seconds) was left by a writer that died
STALE_TMP = 3600.0
#: the size limit when ``$NED_FX_CACHE_LIMIT_GB`` is not set (GB: 10^9 bytes)
DEFAULT_LIMIT_GB = 20.0
LIMIT_ENV = "NED_FX_CACHE_LIMIT_GB"


def files(folder: Path) -> dict[str, list[tuple[Path, os.stat_result]]]:
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


def check_folder(folder: Path) -> bool:
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


def status(folder: Path) -> dict[str, dict]:
    """Per kind: ``files``, ``bytes``, ``oldest`` and ``newest`` (modification times, or None)."""
    found = files(folder) if check_folder(folder) else {kind: [] for kind in (*KINDS, "partial")}
    return {kind: {"files": len(entries), "bytes": sum(st.st_size for _, st in entries),
                   "oldest": min((st.st_mtime for _, st in entries), default=None),
                   "newest": max((st.st_mtime for _, st in entries), default=None)}
            for kind, entries in found.items()}


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
    if not check_folder(folder):
        return 0, 0
    now = time.time() if now is None else now
    limit = None if older_than_days is None else now - older_than_days * 86400.0
    found = files(folder)
    kinds = (*FOOTAGE, "onnx") if everything else FOOTAGE
    doomed = [(p, st) for kind in kinds for p, st in found[kind] if limit is None or st.st_mtime < limit]
    doomed += [(p, st) for p, st in found["partial"] if st.st_mtime < now - STALE_TMP]
    return _remove(doomed)


def _remove(doomed) -> tuple[int, int]:
    """Unlink ``(path, stat)`` pairs: ``(files removed, bytes freed)`` (a file that vanished is not counted)."""
    removed = freed = 0
    for path, st in doomed:
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        removed += 1
        freed += st.st_size
    return removed, freed


def limit_bytes() -> int | None:
    """The cache's size limit in bytes: ``$NED_FX_CACHE_LIMIT_GB`` (``0`` or ``none``: no limit), else
    :data:`DEFAULT_LIMIT_GB`.

    Raises:
        InvalidParameterError: not a number of GB >= 0.
    """
    text = os.environ.get(LIMIT_ENV, "").strip()
    if not text:
        return int(DEFAULT_LIMIT_GB * 1e9)
    if text.lower() == "none":
        return None
    try:
        gb = float(text)
    except ValueError:
        gb = -1.0
    if not gb >= 0:
        raise InvalidParameterError(f"${LIMIT_ENV} must be a number of GB >= 0 (0 or none: no limit), got {text!r}")
    return None if gb == 0 else int(gb * 1e9)


def trim(folder: Path, limit: int | None, since: float | None = None) -> tuple[int, int]:
    """Keep the footage analyses in ``folder`` under ``limit`` bytes: the least recently used go first (a file's
    modification time: an edit touches what it reads), never one used at or after ``since`` (the running edit's:
    a shot larger than the limit keeps its own analysis). The tracker's ONNX exports are not counted. Returns
    ``(files removed, bytes freed)``.

    Raises:
        InvalidParameterError: the folder is not this user's folder.
    """
    if limit is None or not check_folder(folder):
        return 0, 0
    listed = files(folder)
    found = sorted(((p, st) for kind in FOOTAGE for p, st in listed[kind]), key=lambda e: e[1].st_mtime)
    excess = sum(st.st_size for _, st in found) - limit
    doomed = []
    for path, st in found:
        if excess <= 0 or (since is not None and st.st_mtime >= since):
            break
        doomed.append((path, st))
        excess -= st.st_size
    return _remove(doomed)


def trim_to_limit(folder: Path | None = None, since: float | None = None) -> tuple[int, int]:
    """:func:`trim` of the cache folder (default ``$NED_FX_CACHE``, else ``$NED_FX_HOME/cache``) to
    :func:`limit_bytes`, for an edit that has just used it: never fails (a cache that cannot be trimmed costs disk,
    not the edit)."""
    try:
        from .tracking.cache import cache_dir

        return trim(Path(folder) if folder is not None else cache_dir(), limit_bytes(), since)
    except Exception:
        return 0, 0


def hash_package_sources(h, package: str, root: Path | None = None) -> None:
    """Hash into ``h`` the source files of one of ned_fx's packages (``"occlusion"``, ``"manipulation"``, ...; under
    ``root``, default ned_fx's own folder): a cached product of its code is never read by a changed one (a patched
    install keeps its version). ned_fx's own packages are read once per process (the code that runs is the code
    it imported; every edit's cache keys hashed ~0.5 MB of sources again)."""
    h.update(_own_package_digest(package) if root is None else _package_digest(Path(root) / package))


@functools.lru_cache(maxsize=None)
def _own_package_digest(package: str) -> bytes:
    return _package_digest(Path(__file__).parent / package)


def _package_digest(folder: Path) -> bytes:
    import hashlib

    h = hashlib.sha256()
    for f in sorted(folder.glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.digest()
