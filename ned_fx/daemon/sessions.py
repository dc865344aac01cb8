"""Shots as sessions: open (validate), analyse once in a worker thread (cached on disk), render any frame.

An analysis is ``track_media`` → ``plan_edit`` → ``ShotRenderer``; its Track and EditedTrack are cached under
``$NED_FX_HOME/cache/`` keyed by a content fingerprint of the source (for each file: size, mtime and a SHA-256 of
its first and last MiB), the frame range, the face id, the tracker config and the edit instruction.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import stat
import threading
import time
import uuid
import weakref
from pathlib import Path

from ..errors import InvalidParameterError

#: The instruction keys a client may send (the fields of pipeline.EditInstruction) and their wire types.
INSTRUCTION_KEYS = {"emotion": str, "intensity": (int, float), "reference": str, "reference_frames": str,
                    "reference_neutral_frame": int, "keys": str, "curve": str, "regions": str, "speech": str,
                    "neutral_frame": int}
#: The keys of an ``open`` request's params besides the instruction: ``consent`` is the performer's consent
#: reference (free text or id); ``user``/``host``/``application`` say who asks (for the audit log);
#: ``colorspace`` is the plate's OpenColorIO colour space for what the tracker looks at (default "auto");
#: ``renderer`` ``geometry`` (default) or ``neural`` with ``checkpoint``, the actor's trained neural renderer;
#: ``actor_footage`` more footage of the same actor (a list of paths: a library of mouth interiors and eyes);
#: ``holdout_matte`` a holdout matte (still or sequence pattern, 1 = keep the plate) replacing occluder detection;
#: ``shutter_angle`` the camera's shutter in degrees (the drawn content's motion blur, ``ContentConfig.shutter``);
#: ``ignore_cuts`` true tracks the range as one shot where the tracker would find a cut (``ned-fx edit
#: --ignore-cuts``: a flash or a whip pan taken for one); without it a session over a cut fails, naming its shots.
OPEN_KEYS = {"path": str, "frames": str, "face": int,
             "consent": str, "user": str, "host": str, "application": str, "colorspace": str,
             "renderer": str, "checkpoint": str, "actor_footage": list, "holdout_matte": str,
             "shutter_angle": (int, float), "ignore_cuts": bool}
CACHE_VERSION = 2
#: Frame numbers a request may name: ``0 <= n < MAX_FRAME_NUMBER`` (a 24-digit number is refused, not an overflow).
MAX_FRAME_NUMBER = 10 ** 9
#: the occluder mattes of the shots open in this daemon, one memo per (key, cache folder), shared by the sessions
#: of a shot while any is open (each stores it when it closes)
_MEMOS: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()
_MEMOS_LOCK = threading.Lock()


class Cancelled(Exception):
    """Raised from the progress callback to stop an analysis."""


def instruction_from_params(params: dict):
    """Map known wire keys onto an EditInstruction (never setattr blind); unknown keys are refused."""
    from ..pipeline import EditInstruction, check_instruction

    unknown = sorted(set(params) - set(INSTRUCTION_KEYS) - set(OPEN_KEYS))
    if unknown:
        raise InvalidParameterError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; valid: "
                                    f"{', '.join(list(OPEN_KEYS) + list(INSTRUCTION_KEYS))}")
    values = {}
    for key, kind in INSTRUCTION_KEYS.items():
        if key in params and params[key] is not None:
            value = params[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise InvalidParameterError(f"parameter {key!r} has the wrong type {type(value).__name__}")
            values[key] = float(value) if key == "intensity" else value
    instruction = EditInstruction(**values)
    check_instruction(instruction)
    return instruction


def confine(path: str, roots: list[Path], what: str = "path") -> Path:
    """``path`` resolved (symlinks followed), if it lies under one of ``roots``, and, when it exists, a regular
    file (a FIFO, a device or a socket would block or feed a reader forever).

    Raises:
        InvalidParameterError: not a string, a NUL byte, a name that is not UTF-8, not a regular file.
        PermissionError: outside the roots (the daemon replies ``forbidden``).
    """
    if not isinstance(path, str) or not path:
        raise InvalidParameterError(f"{what} must be a non-empty string (a path)")
    if "\0" in path:
        raise InvalidParameterError(f"{what} holds a NUL byte; give a plain path")
    try:
        real = Path(os.path.realpath(path))
        str(real).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParameterError(f"{what} resolves to a file name that is not UTF-8; rename it") from None
    except (OSError, ValueError) as exc:
        raise InvalidParameterError(f"{what} cannot be resolved: {exc}") from None
    for root in roots:
        root = Path(os.path.realpath(root))
        if real == root or root in real.parents:
            try:
                st = os.stat(real)
            except OSError:
                return real                     # not there (a sequence pattern, or a missing file: said later)
            if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
                raise InvalidParameterError(f"{what} {path} is not a regular file (a FIFO, device or socket); "
                                            f"give an image, a movie or a sequence pattern")
            return real
    raise PermissionError(f"{what} {path} is outside the daemon's allowed roots "
                          f"({', '.join(str(r) for r in roots)}); start `ned-fx serve --root DIR` to allow it")


def confine_file(path: str, roots: list[Path], what: str, max_bytes: int) -> Path:
    """:func:`confine` for a file that must exist and be at most ``max_bytes`` (read whole: a curve, a checkpoint).
    """
    real = confine(path, roots, what)
    try:
        st = os.stat(real)
    except OSError:
        raise InvalidParameterError(f"{what} {path} does not exist") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidParameterError(f"{what} {path} is not a file")
    if st.st_size > max_bytes:
        raise InvalidParameterError(f"{what} {path} is {st.st_size} bytes; the daemon reads at most {max_bytes}")
    return real


def confine_media(path: str, roots: list[Path], what: str = "path") -> Path:
    """:func:`confine`, and for a sequence pattern every member on disk too (a member symlinked outside the roots,
    or one that is not a regular file, is refused). Lists a folder: run it off the daemon's socket thread."""
    real = confine(path, roots, what)
    if not real.exists():
        from ..media import find_sequence_frames, is_sequence_pattern

        if is_sequence_pattern(path):
            try:
                members = find_sequence_frames(path)
            except Exception:          # no member at all: open_media says so with the folder's frames
                members = {}
            for member in members.values():
                confine(str(member), roots, f"{what} frame {Path(member).name}")
    return real


def check_frames(frames) -> None:
    """A frame range's syntax and bounds, without listing its numbers (``1-20000000000`` costs nothing here)."""
    from ..media.frames import FrameRange

    if frames is None:
        return
    if not isinstance(frames, str) or len(frames) > 64:
        raise InvalidParameterError("params.frames must be a string such as '1001-1100' (at most 64 characters)")
    r = FrameRange.parse(frames)
    if not (0 <= r.first < MAX_FRAME_NUMBER and 0 <= r.last < MAX_FRAME_NUMBER):
        raise InvalidParameterError(f"frames {frames!r}: frame numbers must be 0 to {MAX_FRAME_NUMBER - 1}")


def bounded_range(path: Path, frames):
    """The FrameRange of ``frames`` once it is known to lie within the source's own frames: a range longer than
    the source, or reaching past its first or last frame, is refused before any list of its numbers is made
    (``1-20000000`` on a 100-frame plate is an error, not a gigabyte of frame numbers)."""
    from ..media import open_media, parse_frame_range
    from ..media.frames import describe_numbers

    wanted = parse_frame_range(frames)
    if wanted is None or len(wanted) <= 10_000:
        return wanted
    with open_media(path) as whole:
        have = whole.frame_numbers
        if not have or len(wanted) > len(have) or wanted.first < min(have) or wanted.last > max(have):
            raise InvalidParameterError(
                f"frames {frames!r} ({len(wanted)} frames) reach outside the source's own frames "
                f"({describe_numbers(list(have)) if have else 'none'})")
    return wanted


def fingerprint(path: Path) -> str:
    """Content fingerprint of a source (see :func:`ned_fx.media.source_fingerprint`)."""
    from ..media import source_fingerprint

    return source_fingerprint(path)


def cache_dir() -> Path:
    from ..tracking.weights import home

    return home() / "cache"


class Session:
    """One shot: its parameters, analysis state and, once ready, its renderer.

    Besides the shot it keeps what the audit log and the outputs' provenance need: the consent reference, who
    asked (``requester``: the user/host/application the client declared, and the peer address ZeroMQ saw), the
    frames rendered and why any were passed through, and once analysed the shot's edit record (``record``).
    """

    def __init__(self, path: Path, frames: str | None, face: int | None, instruction, identity: bool,
                 cache: Path | None = None, consent: str | None = None, requester: dict | None = None,
                 colorspace: str | None = None, checkpoint=None, fast=None, actor_footage: tuple = (),
                 holdout: str | None = None, owner: str = "", roots: list | None = None,
                 shutter: float | None = None, ignore_cuts: bool = False):
        self.id = uuid.uuid4().hex
        self.owner = owner                 # who opened it (the key name or CurveZMQ key the connection proved)
        self.roots = list(roots) if roots else None    # re-checked at every read of a sequence frame
        self.shm_names: set[str] = set()   # the client's shared-memory files this session used
        self.conns: set[int] = set()       # the connections (socket fds) its clients used that are still up
        self.orphaned: float | None = None  # when the last of them dropped (None: one is up, or not known)
        self.actor_footage = tuple(actor_footage)
        self.holdout = holdout
        self.shutter = shutter             # ContentConfig.shutter (a fraction of the frame), None: its default
        self.colorspace = colorspace
        self.ignore_cuts = bool(ignore_cuts)   # track the range as one shot (TrackerConfig.cut_threshold 0)
        self.checkpoint = checkpoint       # a read neural-renderer Checkpoint, or None (geometry renderer)
        self.fast = fast                   # fast(track, edited) -> FastShotRenderer (the daemon's fast path), or None
        self.path, self.frames, self.face, self.instruction = path, frames, face, instruction
        self.identity = identity
        self.consent = consent
        self.requester = dict(requester or {})
        self.record = None                 # the shot's EditRecord, once analysed
        self.rendered: set[int] = set()
        self.renders = 0
        self.passed: dict[str, int] = {}   # reason -> frames passed through unchanged
        self._stats = threading.Lock()
        self.cache = cache or cache_dir()
        self.state = "analysing"          # analysing | ready | failed | cancelled
        self.done, self.total = 0, 0
        self.error: tuple[str, str] | None = None
        self.cached = False
        self.renderer = None
        self.frame_numbers: list[int] = []
        self.cancel = threading.Event()
        self.lock = threading.Lock()      # one render at a time per session (the renderer holds state)
        self.opened = self.touched = time.time()
        self.source = None

    @property
    def batchable(self) -> bool:
        """Its renderer is the fast path's, so its frames join the daemon's cross-session batches."""
        return self.renderer is not None and self.fast is not None and self.checkpoint is None

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self.cancel.is_set():
            raise Cancelled()

    def info(self, brief: bool = False) -> dict:
        d = {"session": self.id, "state": self.state, "done": self.done, "total": self.total,
             "cached": self.cached, "frames": _ranges(self.frame_numbers)}
        if self.error:
            d["error"] = {"code": self.error[0], "message": self.error[1][:300]}
        if brief:                          # status: many sessions in one header
            d["owner"] = self.owner
            return d
        if self.record is not None and self.state == "ready":
            d["provenance"] = self.record.to_dict()   # hosts stamp it on the frames they write
        return d

    def note_render(self, number: int, reason: str | None) -> None:
        """Count a rendered frame (for the session's audit summary)."""
        with self._stats:
            self.renders += 1
            self.rendered.add(int(number))
            if reason is not None:
                self.passed[reason] = self.passed.get(reason, 0) + 1

    def audit_fields(self) -> dict:
        """The shot, the instruction and the consent, as the audit log records them."""
        shot = {"source": str(self.path), "frames": self.frames, "face": self.face,
                **({"ignore_cuts": True} if self.ignore_cuts else {})}
        return {"session": self.id, "shot": shot, "params": self.instruction.as_params(), "consent": self.consent}

    def summary(self, reason: str) -> dict:
        """The session's audit summary at its end: frames rendered (ranges), renders, pass-throughs, times."""
        with self._stats:
            rendered, renders, passed = sorted(self.rendered), self.renders, dict(self.passed)
        now = time.time()
        return {**self.audit_fields(), "reason": reason, "state": self.state, "cached": self.cached,
                "shot_frames": _ranges(self.frame_numbers), "rendered": _ranges(rendered),
                "rendered_count": len(rendered), "renders": renders, "passed_through": passed,
                "opened": _iso(self.opened), "seconds": round(now - self.opened, 3),
                **({"error": {"code": self.error[0], "message": self.error[1]}} if self.error else {})}

    def make_record(self) -> None:
        """The shot's edit record (runs in the analysis thread: it hashes the source file)."""
        from ..media.paths import MOVIE_EXTENSIONS
        from ..provenance import build_record

        track = getattr(self.renderer, "track", None)
        face = int(track.face_id) if track is not None else self.face
        movie = self.path.suffix.lower() in MOVIE_EXTENSIONS
        self.record = build_record(
            self.path, self.instruction, face_id=face, frames=_ranges(self.frame_numbers).split(" (")[0],
            renderer="identity" if self.identity else ("neural" if self.checkpoint is not None else "geometry"),
            kind="video" if movie else "image",
            consent=self.consent, user=self.requester.get("user") or "", host=self.requester.get("host") or "",
            application=self.requester.get("application"), hash_source=self.path.is_file())

    # -- analysis (runs in a worker thread) -----------------------------------------------------------------------
    def analyse(self, tracker) -> None:
        import time

        from ..media import open_media

        started = time.time()

        if self.roots is not None:                       # every member, now (folders change after open)
            confine_media(str(self.path), self.roots)
            extra = [*self.actor_footage, self.holdout, getattr(self.instruction, "reference", None)]
            for other in filter(None, extra):
                confine_media(str(other), self.roots, "a file the shot reads")
        with open_media(self.path, bounded_range(self.path, self.frames)) as src:
            self.frame_numbers = [int(n) for n in src.frame_numbers]
            self.total = len(src)
        if self.identity:
            self.done = self.total
            return
        from .. import manipulation
        from ..pipeline import ShotRenderer, check_one_shot, plan_edit, shot_mesh, track_fit, track_media
        from ..tracking import TrackerConfig
        from ..tracking.cache import find_track, mark_used, store_track

        config = tracker.config if tracker else TrackerConfig()
        if self.ignore_cuts:            # no cut detection, as `ned-fx edit --ignore-cuts` (the warm tracker's engines)
            if tracker is not None:
                tracker = tracker.variant(cut_threshold=0.0)
                config = tracker.config
            else:
                config = dataclasses.replace(config, cut_threshold=0.0)
        if self.colorspace:
            config = dataclasses.replace(config, colorspace=self.colorspace)
        # the track is looked up as `ned-fx edit` looks it up (tracking.cache.find_track: its key holds the source's
        # content, range, face, the tracker's settings, the runtime that runs its networks, the tracking and decoding
        # code), in the same folder: a shot tracked by an edit opens in a host without tracking again, and the other
        # way round
        folder = self.cache
        track, key_track, tracker = find_track(fingerprint(self.path), self.frames, self.face, config, tracker, folder)
        key_edit = _key("edit", key_track, sorted(self.instruction.as_params().items()), _code("manipulation"))
        epath = folder / f"edit-{key_edit}.npz"
        from .auth import private_dir, private_file
        edited = None
        if track is not None and epath.is_file():
            try:
                edited = manipulation.read_from_file(epath)
                mark_used(epath)
                self.cached = True
                self.done = self.total
            except Exception:
                edited = None
        if edited is None:
            fresh = track is None
            if fresh:
                track = track_media(self.path, config, frames=self.frames, face_id=self.face,
                                    progress=self.progress, tracker=tracker)
                # planned from the track at its file's precision, as `ned-fx edit` plans: the same pixels
                from ..tracking.cache import as_cached

                track = as_cached(track)
            if self.cancel.is_set():
                raise Cancelled()
            # rendered from the plan as its cache file holds it (lower precision, as the track above), so a fresh
            # and a cached session, and `ned-fx edit`, give the same pixels
            from ..manipulation.edited import as_stored

            check_one_shot(track, self.path)        # one shot per session: a cut's frames are named in the error
            # the track's expression fit, shared by every instruction on the shot (fit-<key>.npz beside the track)
            fit = track_fit(track, None, self.instruction.neutral_frame, track_key=key_track, folder=folder)
            edited = as_stored(plan_edit(track, self.instruction, fit=fit))
            if fresh:       # face tracks of real people: 0700 / 0600, written atomically (None: unwritable)
                store_track(key_track, track, folder)
            try:
                private_dir(folder)
                manipulation.write_to_file(edited, epath)
                private_file(epath)
            except Exception:   # an unwritable cache only costs the next open a new analysis
                pass
        if self.fast is not None and self.checkpoint is None:
            self.renderer = self.fast(track, edited)      # the device fast path (the warp alone), batched
            self.frame_numbers = [int(n) for n in track.frame_numbers]
            return
        from dataclasses import replace

        from ..appearance import ContentConfig, build_shot_models

        content = ContentConfig(holdout=self.holdout)
        if self.shutter is not None:
            content = replace(content, shutter=self.shutter)
        # the models that do not depend on the edit, cached as `ned-fx edit` caches them (keyed by the shot, its
        # source landmarks and activations, the sub-stages and the builders' code, never the instruction): a
        # session with another emotion on the shot, or an edit of it, builds none of them again
        models = build_shot_models(self.path, track, edited, self.frames, self.actor_footage, content, config,
                                   cache=True, folder=folder)
        if self.cancel.is_set():
            raise Cancelled()
        # the render mesh from the session cache (mesh-<key>.npz, as `ned-fx edit` keeps it): a session of a shot
        # already analysed neither triangulates again nor imports scipy.spatial
        self.renderer = ShotRenderer(track, edited, checkpoint=self.checkpoint, models=models, content=content,
                                     mesh=shot_mesh(track.mean_shape, cache=True, folder=folder))
        if getattr(self.renderer, "content", None) is not None:
            # the occluder mattes depend on the plate only: a session (or an edit) of the shot with another emotion
            # reads those this one finds (stored when it closes; each checked against the frame's own pixels)
            from ..appearance import MatteMemo, matte_cache_key
            from ..media.layers import LayerConfig

            key = matte_cache_key(self.path, edited, self.frames, LayerConfig().yuv_conversion)
            with _MEMOS_LOCK:       # sessions of the shot open at once share one memo: an artist's second emotion
                memo = _MEMOS.get((key, str(folder))) if key is not None else None    # gets the first's at once
                if memo is None:
                    memo = MatteMemo(key, folder=folder)
                    if key is not None:
                        _MEMOS[(key, str(folder))] = memo
            self.renderer.content.mattes = memo
        self.frame_numbers = [int(n) for n in track.frame_numbers]
        from ..cachefiles import trim_to_limit

        trim_to_limit(folder, since=started - 2.0)      # the cache's size limit; never this session's own files

    def read_frame(self, number: int):
        """The plate's own frame ``number`` (render-by-number); the source stays open for the session."""
        from ..media import open_media

        if self.source is None:
            self.source = open_media(self.path, bounded_range(self.path, self.frames))
        path_for = getattr(self.source, "path_for", None)
        if path_for is not None and self.roots is not None and number in self.frame_numbers:
            # a sequence opens each frame's file at read time: the folder (or the file) may have been swapped
            # for a symlink since open, so confinement is checked again now, for this very file
            confine(str(path_for(int(number))), self.roots, f"frame {number}")
        return self.source.read(number)

    def render(self, frame, batcher=None):
        """Edit one frame: ``(frame, reason)``. ``batcher``: a RenderBatcher to render it with frames of other
        sessions (used when this session's renderer is the fast path)."""
        if self.identity:
            if frame.number not in self.frame_numbers:
                raise InvalidParameterError(f"frame {frame.number} is not in the session's shot "
                                            f"({_ranges(self.frame_numbers)})")
            return frame, "identity engine"
        self._check_size(frame)
        if batcher is not None and self.batchable:
            return batcher.render(self.renderer, frame)
        return self.renderer.render(frame)

    def _check_size(self, frame) -> None:
        track = self.renderer.track
        dx0, dy0, dx1, dy1 = frame.display_window
        if (dx1 - dx0 + 1, dy1 - dy0 + 1) != (int(track.width), int(track.height)):
            raise InvalidParameterError(
                f"the frame's display window is {dx1 - dx0 + 1}x{dy1 - dy0 + 1} but the analysed shot is "
                f"{track.width}x{track.height}: send the plate's own pixels (set display_window for a crop)")

    def matte_refusal(self) -> str | None:
        """Why this session cannot return the edit's matte with a frame, or None when it can (the identity engine,
        ShotRenderer and the device fast path can: each keeps the weights it blended with)."""
        if self.identity or hasattr(self.renderer, "begin") or hasattr(self.renderer, "render_with_matte"):
            return None
        return (f"this session's renderer ({type(self.renderer).__name__}) keeps no blend weights and returns no "
                f"matte; start the daemon with --render-path opencv (the default) to get the edit's matte")

    def render_with_matte(self, frame, batcher=None):
        """Edit one frame and return its matte too: ``(frame, reason, weights)``, ``weights`` (H, W) float32 over
        the frame's pixels (its data window, top-down): the exact weights the compositor blended the edit with
        (:func:`ned_fx.pipeline.blend_weights`; on the fast path the device compositor's masks,
        :meth:`ned_fx.fastpath.FastShotRenderer.render_with_matte`), zeros for a frame passed through.
        ``batcher``: as for :meth:`render` (the fast path's frames join other sessions' batches).

        Raises:
            InvalidParameterError: as :meth:`render`. UnsupportedFormatError: a renderer that keeps no weights
                (see :meth:`matte_refusal`).
        """
        import numpy as np

        why = self.matte_refusal()
        if why is not None:
            from ..errors import UnsupportedFormatError

            raise UnsupportedFormatError(why)
        if self.identity:
            out, reason = self.render(frame)
            return out, reason, np.zeros(frame.pixels.shape[:2], np.float32)
        self._check_size(frame)
        if not hasattr(self.renderer, "begin"):            # the device fast path
            if batcher is not None and self.batchable:
                return batcher.render(self.renderer, frame, matte=True)
            return self.renderer.render_with_matte(frame)
        from ..pipeline import blend_weights

        pending = self.renderer.begin(frame)
        weights = blend_weights(self.renderer, pending)
        out, reason = self.renderer.finish(pending)
        return out, reason, np.asarray(weights, np.float32)

    def close(self) -> None:
        self.cancel.set()
        if self.source is not None:
            self.source.close()
            self.source = None
        mattes = getattr(getattr(self.renderer, "content", None), "mattes", None)
        if mattes is not None:      # (it saves a snapshot: a render of this or another session may be adding)
            try:
                mattes.save()
            except Exception:       # an unwritable cache only costs the next session the detector
                pass


def _iso(t: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _key(*parts) -> str:
    from .. import __version__

    return hashlib.sha256(repr((CACHE_VERSION, __version__) + parts).encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=None)
def _code(package: str) -> str:
    """A digest of a package's source files (``"manipulation"``: ``cachefiles.hash_package_sources``)."""
    from ..cachefiles import hash_package_sources

    h = hashlib.sha256()
    hash_package_sources(h, package)
    return h.hexdigest()[:32]


def _ranges(numbers) -> str:
    if not numbers:
        return ""
    from ..media.frames import describe_numbers

    return describe_numbers(list(numbers))


def instruction_dict(instruction) -> dict:
    return {k: v for k, v in dataclasses.asdict(instruction).items() if v is not None}
