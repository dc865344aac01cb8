"""Tracks cached by content, so a shot is tracked once whatever is asked of it later (another emotion, intensity,
region): ``$NED_FX_HOME/cache/track-<key>.npz``.

The key is what a track depends on: the source's content fingerprint (the caller computes it, see
:func:`ned_fx.media.source_fingerprint`), the frame range, the face asked for, the tracker's config, the runtime
that ran the networks, the ned_fx version and its tracking and decoding code (:func:`code_digest`). Face tracks are
biometric data of real people: the folder is made 0700 and each file 0600 whatever the umask, written through a
temporary file renamed into place. A cache that cannot be read or written only costs a new tracking run, never the
edit.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .config import TrackerConfig
from .track import REQUIRED, Track, from_arrays, to_arrays

#: bump when what a cached track holds changes meaning
CACHE_VERSION = 1


#: tracker settings that change how fast the points come, never the points (left out of the key)
_SAME_POINTS = ("overlap_iris",)


def cache_dir() -> Path:
    """``$NED_FX_CACHE`` if set, else ``$NED_FX_HOME/cache`` (default ``~/.cache/ned_fx/cache``)."""
    from .weights import home

    return Path(os.environ.get("NED_FX_CACHE") or home() / "cache")


def track_key(fingerprint: str, frames: str | None, face_id: int | None, config: TrackerConfig,
              runtime: str = "") -> str:
    """The cache key of a track: 32 hex digits over everything the track depends on."""
    from .. import __version__

    settings = sorted((k, v) for k, v in asdict(config).items() if k not in _SAME_POINTS)
    parts = (CACHE_VERSION, __version__, fingerprint, frames, face_id, settings, runtime, os.environ.get("OCIO", ""),
             code_digest())
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


#: the packages whose code makes a track: the tracker, and the readers that decode and convert the frames it sees
TRACK_CODE = ("tracking", "media")


def code_digest(root: Path | None = None) -> str:
    """A digest of the source files of :data:`TRACK_CODE` under ``root`` (default: ned_fx's own folder): a track
    cached by one tracker is never read by a changed one (a patched install or a newer commit keeps the version
    string; the fit, mesh and model caches hash their packages the same way). Read once per process."""
    if root is None:
        return _own_code_digest()
    from ..cachefiles import hash_package_sources

    h = hashlib.sha256()
    for package in TRACK_CODE:
        h.update(package.encode())
        hash_package_sources(h, package, root)
    return h.hexdigest()[:32]


@functools.lru_cache(maxsize=1)
def _own_code_digest() -> str:
    return code_digest(Path(__file__).resolve().parent.parent)


def find_track(fingerprint: str, frames: str | None, face_id: int | None, config: TrackerConfig, tracker=None,
               folder: Path | None = None) -> tuple[Track | None, str, object]:
    """The cached track of a shot, as ``ned-fx edit`` and a daemon session look it up: ``(track or None, key,
    tracker)``. It is keyed by the runtime that runs the networks: ``tracker``'s (a warm one), else ``config``'s;
    on a miss without a tracker, the one made here (returned, for the tracking run), whose runtime may have
    fallen back (onnxruntime -> PyTorch: their tracks differ within the tracker's tolerance, so that key is looked
    up instead)."""
    from .runtime import runtime_name

    key = track_key(fingerprint, frames, face_id, config, getattr(tracker, "runtime", None) or runtime_name(config))
    track = load_track(key, folder)
    if track is None and tracker is None:
        from .tracker import FaceTracker

        tracker = FaceTracker(config)
        if tracker.runtime != runtime_name(config):
            key = track_key(fingerprint, frames, face_id, config, tracker.runtime)
            track = load_track(key, folder)
    return track, key, tracker


def track_path(key: str, folder: Path | None = None) -> Path:
    return Path(folder or cache_dir()) / f"track-{key}.npz"


def load_track(key: str, folder: Path | None = None) -> Track | None:
    """The cached track of ``key``, or None (absent, unreadable, or not the owner's private file)."""
    def read(data):
        if any(k not in data.files for k in REQUIRED):
            return None
        return from_arrays({k: data[k] for k in data.files})

    return load_private(track_path(key, folder), read)


def load_private(path: Path, read):
    """``read(data)`` of the ``.npz`` at ``path`` (numpy's NpzFile, no pickles), or None when it is absent, not a
    regular file the user owns, or unreadable or corrupt: a cache miss, never a failed edit (the reading half of
    :func:`store_private`)."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            return None
        with np.load(path, allow_pickle=False) as data:
            got = read(data)
    except Exception:       # absent (OSError), not an npz, zip/json errors, missing keys
        return None
    if got is not None:
        mark_used(path)
    return got


def mark_used(*paths) -> None:
    """Mark cache files read now (their time touched): ``ned-fx cache clear --older-than`` keeps what edits and
    daemon sessions still read. A file that cannot be touched is left as it is."""
    for path in paths:
        try:
            os.utime(path)
        except OSError:
            pass


def as_cached(track: Track) -> Track:
    """The track exactly as a cache file holds it (its arrays' precision), so a fresh and a cached edit of the
    same shot render the same pixels."""
    return from_arrays(to_arrays(track))


def store_track(key: str, track: Track, folder: Path | None = None) -> Path | None:
    """Write ``track`` under ``key``: folder 0700, file 0600, atomically. Returns the path, or None when the
    cache cannot be written (nothing half-written is left). Stored uncompressed, as :func:`~ned_fx.npzfile.write_npz`
    writes (float32 landmarks barely deflate; the deflate costs more than the bytes it saves)."""
    folder = Path(folder or cache_dir())
    return store_private(track_path(key, folder), lambda fh: np.savez(fh, **to_arrays(track)))


def store_private(final: Path, write, fsync: bool = True) -> Path | None:
    """Write a cache file as the caches hold biometric data: ``write(fh)`` fills a temporary file beside ``final``
    (folder 0700 and this user's, file 0600 whatever the umask), which then replaces ``final``. Returns ``final``,
    or None when it cannot be written (nothing half-written is left); Ctrl-C still propagates."""
    folder = final.parent
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    try:
        _private_dir(folder)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.fchmod(fd, 0o600)            # the umask may have taken bits away; never more than 0600
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                if fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
        except BaseException:
            _remove(tmp)
            raise
        os.replace(tmp, final)
        return final
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:
        _remove(tmp)
        return None


def _private_dir(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PermissionError(f"{folder} is not a folder of this user")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(folder, 0o700)


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
