"""The shot-list format shared by ``ned-fx batch``, ``ned-fx farm submit`` and the Resolve bridge.

A shot list is YAML (``.yaml``/``.yml``), CSV (``.csv``, one row per shot, the same keys as columns; cells
separated by ``,``, or by ``;`` with decimal commas, or tabs, as the header row shows) or an OpenTimelineIO
timeline (``.otio``/``.otioz``). Relative paths are relative to the shot list's folder::

    version: 1
    defaults:                         # optional: applied to every shot that does not set the key
      emotion: happy
      intensity: 0.8
      output: out/{name}_{emotion}.####.exr      # {name} {stem} {emotion} are filled in per shot
    shots:
      - name: sh010                   # optional; default from the input's file name
        input: plates/sh010.####.exr  # movie, still or sequence (%04d or ####)
        output: out/sh010_happy.####.exr
        frames: 1001-1100             # optional (movies: 0-based indices)
        emotion: happy                # or a blend "happy:0.7,surprised:0.3"
        reference: refs/smile.jpg     # optional instead of/with emotion
        face: 0
        regions: all,-mouth
        consent: "release 114"

An OpenTimelineIO timeline gives one shot per enabled clip of its video tracks: the clip's name, its media
(a movie, a still, or an image sequence) and its trimmed range; the other keys come from the clip's metadata
``{"ned_fx": {...}}`` and the timeline's ``{"ned_fx": {"defaults": {...}}}`` (``output`` usually as a template).

The parsed form is a frozen :class:`ShotList` of frozen :class:`Shot` s with absolute paths. Reading checks the
structure (keys, types, frame ranges, output kinds, clashes between shots) but touches no media; instruction
values (emotion names, region names) are checked where the work starts (``ned_fx.pipeline.check_instruction``).
This module imports no torch and no stage package.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputNotFoundError, InvalidParameterError, UnsupportedFormatError

__all__ = ["SHOT_KEYS", "INSTRUCTION_KEYS", "SESSION_KEYS", "FORMATS", "TEMPLATE_FIELDS", "Shot", "ShotList",
           "ShotListError", "read_from_file", "write_to_file", "read_from_string", "output_kind", "output_problem",
           "input_stem"]

#: Every key a shot may set, in the order they are written.
SHOT_KEYS: tuple[str, ...] = ("name", "input", "output", "frames", "emotion", "intensity", "reference",
                              "reference_frames", "reference_neutral_frame", "keys", "curve", "regions", "speech",
                              "neutral_frame", "face", "consent", "colorspace", "renderer", "checkpoint",
                              "actor_footage", "holdout_matte", "shutter_angle", "ignore_cuts")
#: The keys that make up the edit instruction (``ned_fx.pipeline.EditInstruction``'s fields).
INSTRUCTION_KEYS: tuple[str, ...] = ("emotion", "intensity", "reference", "reference_frames",
                                     "reference_neutral_frame", "keys", "curve", "regions", "speech", "neutral_frame")
#: The daemon session's options besides the instruction: how the plate is read (its OpenColorIO colour space), the
#: renderer (and a neural one's checkpoint), the face-content options and whether the frames are tracked as one
#: shot where a cut is found (``ned-fx edit``'s --colorspace, --renderer, --checkpoint, --actor-footage,
#: --holdout-matte, --shutter-angle, --ignore-cuts; the session parameters of the same names).
SESSION_KEYS: tuple[str, ...] = ("colorspace", "renderer", "checkpoint", "actor_footage", "holdout_matte",
                                 "shutter_angle", "ignore_cuts")
#: Keys holding paths (made absolute against the shot list's folder); ``actor_footage`` holds several.
PATH_KEYS: tuple[str, ...] = ("input", "output", "reference", "curve", "checkpoint", "holdout_matte", "actor_footage")
#: What separates the paths of ``actor_footage`` in a CSV cell (YAML and OpenTimelineIO: a list).
LIST_SEPARATOR = ";"
#: Top-level keys of a YAML shot list.
TOP_KEYS: tuple[str, ...] = ("version", "defaults", "shots")
#: Shot-list versions this module reads.
VERSIONS: tuple[int, ...] = (1,)
#: File extension -> format.
FORMATS: dict[str, str] = {".yaml": "yaml", ".yml": "yaml", ".csv": "csv", ".otio": "otio", ".otioz": "otio"}
#: Fields an ``output`` may use as ``{field}``: the shot's name, the input's name without frame token and
#: extension, and the emotion (``neutral`` when none; a blend's punctuation becomes ``_``).
TEMPLATE_FIELDS: tuple[str, ...] = ("name", "stem", "emotion")
#: The OpenTimelineIO metadata namespace.
OTIO_NAMESPACE = "ned_fx"

_INT_KEYS = ("reference_neutral_frame", "neutral_frame", "face")
_FLOAT_KEYS = ("intensity",)
_SPEECH = ("auto", "preserve", "free")
_RENDERERS = ("geometry", "neural")
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")
_TEMPLATE_RE = re.compile(r"\{([^{}]*)\}")


class ShotListError(InvalidParameterError):
    """A shot list that cannot be used: unknown keys, a missing input or output, a bad frame range, two shots
    writing the same output… The message names the file, the shot and the valid choices."""


@dataclass(frozen=True)
class Shot:
    """One shot of a shot list: what to read, what to write and what the face should do.

    Attributes:
        name: unique within the list (file-name safe; default from the input's name).
        input: the plate (movie, still or sequence pattern), absolute; output: where to write, absolute (a sequence
            pattern keeps the input's frame numbers, a movie keeps fps and audio, a still is one frame).
        frames: frame range text (``"1001-1100"``; movies: 0-based indices) or None for every frame.
        emotion … neutral_frame: the edit instruction (see ``ned_fx.pipeline.EditInstruction``); None = not set.
        face: the face id to edit (None: the main face); consent: the performer's consent reference (free text).
        colorspace: the plate's OpenColorIO colour space for what the tracker looks at (None: auto; the daemon
        refuses a name its config does not have);
        renderer: ``geometry`` (None: the default) or ``neural``, which needs checkpoint: the actor's neural renderer
        (``ned-fx train-renderer``);
        actor_footage: more footage of the same actor (absolute paths: real mouth interiors and eyes for the shot);
        holdout_matte: a holdout matte (still or sequence pattern, 1 = keep the plate) replacing occluder detection;
        shutter_angle: the camera's shutter in degrees, 0..360 (the drawn folds' motion blur; None: 180).
        ignore_cuts: True tracks the frames as one shot where the tracker finds a cut (a flash or a whip pan taken
        for one); None (false): a shot whose frames hold a cut fails, naming each shot's frames.
    """

    name: str
    input: str
    output: str
    frames: str | None = None
    emotion: str | None = None
    intensity: float | None = None
    reference: str | None = None
    reference_frames: str | None = None
    reference_neutral_frame: int | None = None
    keys: str | None = None
    curve: str | None = None
    regions: str | None = None
    speech: str | None = None
    neutral_frame: int | None = None
    face: int | None = None
    consent: str | None = None
    colorspace: str | None = None
    renderer: str | None = None
    checkpoint: str | None = None
    actor_footage: tuple[str, ...] | None = None
    holdout_matte: str | None = None
    shutter_angle: float | None = None
    ignore_cuts: bool | None = None

    def __post_init__(self) -> None:
        # (a host's dialog sends what its fields hold: an empty field is a key not set, one path is a list of one)
        if self.actor_footage is not None:
            paths = (self.actor_footage,) if isinstance(self.actor_footage, str) else tuple(self.actor_footage)
            object.__setattr__(self, "actor_footage", tuple(p for p in paths if p) or None)
        for key in ("colorspace", "renderer", "checkpoint", "holdout_matte"):
            if getattr(self, key) == "":
                object.__setattr__(self, key, None)
        if self.ignore_cuts is not True:       # false is the default: not set (the shot's keys stay as they were)
            object.__setattr__(self, "ignore_cuts", None)

    def instruction(self) -> dict:
        """The edit instruction as wire parameters (only the keys that are set)."""
        return {k: getattr(self, k) for k in INSTRUCTION_KEYS if getattr(self, k) is not None}

    def session_options(self) -> dict:
        """The session's options (:data:`SESSION_KEYS`) as the daemon's parameters (only the keys that are set;
        ``actor_footage`` as a list)."""
        out = {k: getattr(self, k) for k in SESSION_KEYS if getattr(self, k) is not None}
        if "actor_footage" in out:
            out["actor_footage"] = list(out["actor_footage"])
        return out

    def session_files(self) -> tuple[str, ...]:
        """The files the session options read besides the plate: actor footage, the holdout matte, a checkpoint."""
        return (*(self.actor_footage or ()), *(p for p in (self.holdout_matte, self.checkpoint) if p))

    def as_dict(self) -> dict:
        """Every key that is set, in :data:`SHOT_KEYS` order."""
        return {k: getattr(self, k) for k in SHOT_KEYS if getattr(self, k) is not None}

    @property
    def output_kind(self) -> str:
        """``"sequence"``, ``"movie"`` or ``"image"`` (a still)."""
        return output_kind(self.output)

    @property
    def input_kind(self) -> str:
        """``"sequence"``, ``"movie"`` or ``"image"``."""
        return output_kind(self.input)


@dataclass(frozen=True)
class ShotList:
    """A parsed shot list.

    Attributes:
        shots: the shots, in file order; name: the list's name (the file's stem; farm job names use it);
        source: the file it was read from (None when built in memory); version: the format version.
    """

    shots: tuple[Shot, ...]
    name: str = "shots"
    source: str | None = None
    version: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "shots", tuple(self.shots))
        _check_clashes(self.shots, self.source or self.name)

    def __iter__(self) -> Iterator[Shot]:
        return iter(self.shots)

    def __len__(self) -> int:
        return len(self.shots)

    def shot(self, name: str) -> Shot:
        """The shot called ``name``.

        Raises:
            ShotListError: no such shot (the names are listed).
        """
        for s in self.shots:
            if s.name == name:
                return s
        raise ShotListError(f"no shot called {name!r} in {self.source or self.name}; shots: "
                            f"{', '.join(s.name for s in self.shots)}")

    def select(self, names) -> "ShotList":
        """Only the named shots (in list order).

        Raises:
            ShotListError: a name that is not in the list (the names are listed).
        """
        wanted = list(names)
        for n in wanted:
            self.shot(n)
        return ShotList(tuple(s for s in self.shots if s.name in wanted), self.name, self.source, self.version)


# ---- reading -------------------------------------------------------------------------------------------------

def read_from_file(path: str | os.PathLike) -> ShotList:
    """Read a shot list.

    Args:
        path: a ``.yaml``/``.yml``, ``.csv`` or ``.otio``/``.otioz`` file.

    Returns:
        the :class:`ShotList` (paths absolute, defaults applied, output templates filled in).

    Raises:
        InputNotFoundError: no such file. UnsupportedFormatError: another extension (the valid ones listed).
        ShotListError: the file is malformed (unknown keys, missing input/output, bad ranges or types, clashing
            names or outputs); the message names the shot and lists the valid choices.
    """
    p = Path(path)
    fmt = _format_of(p)
    if not p.is_file():
        raise InputNotFoundError(f"shot list {p} does not exist")
    base = p.resolve().parent
    if fmt == "otio":
        return _read_otio(p, base)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ShotListError(f"shot list {p} cannot be read: {exc}") from None
    return read_from_string(text, fmt, base=base, source=str(p), name=p.stem)


def read_from_string(text: str, fmt: str, base: str | os.PathLike = ".", source: str | None = None,
                     name: str = "shots") -> ShotList:
    """Parse a YAML or CSV shot list held in a string.

    Args:
        text: the document; fmt: ``"yaml"`` or ``"csv"``; base: the folder relative paths are resolved against;
        source: what to call the document in messages; name: the list's name.

    Raises:
        ShotListError: as :func:`read_from_file`; InvalidParameterError: another ``fmt``.
    """
    where = source or f"<{fmt} shot list>"
    base = Path(os.path.abspath(base))
    if fmt == "yaml":
        return _read_yaml(text, base, where, name)
    if fmt == "csv":
        return _read_csv(text, base, where, name)
    raise InvalidParameterError(f"shot-list format {fmt!r}; valid: yaml, csv (OpenTimelineIO: read_from_file)")


def _format_of(p: Path) -> str:
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise UnsupportedFormatError(f"shot list {p}: {p.suffix or '(no extension)'!r} is not a shot-list format; "
                                     f"valid: {', '.join(FORMATS)}")
    return fmt


def _read_yaml(text: str, base: Path, where: str, name: str) -> ShotList:
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ShotListError(f"{where} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ShotListError(f"{where}: a shot list is a mapping with {', '.join(TOP_KEYS)} (shots: a list of "
                            f"mappings with {', '.join(SHOT_KEYS)})")
    unknown = [k for k in doc if k not in TOP_KEYS]
    if unknown:
        raise ShotListError(f"{where}: unknown top-level key(s) {', '.join(map(repr, map(str, unknown)))}; valid: "
                            f"{', '.join(TOP_KEYS)}")
    version = doc.get("version", 1)
    if version not in VERSIONS or isinstance(version, bool):
        raise ShotListError(f"{where}: shot-list version {version!r} is not supported; valid: "
                            f"{', '.join(map(str, VERSIONS))}")
    defaults = _defaults(doc.get("defaults"), where)
    raw = doc.get("shots")
    if not isinstance(raw, list) or not raw:
        raise ShotListError(f"{where}: 'shots' must be a non-empty list of shots (mappings with "
                            f"{', '.join(SHOT_KEYS)})")
    entries = []
    for i, item in enumerate(raw, 1):
        if not isinstance(item, dict):
            raise ShotListError(f"{where}: shot {i} is not a mapping of keys ({', '.join(SHOT_KEYS)})")
        entries.append((f"shot {i}", item))
    return _build(entries, defaults, base, where, name, int(version))


def _read_csv(text: str, base: Path, where: str, name: str) -> ShotList:
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ShotListError(f"{where}: the CSV is empty; its first row names the columns ({', '.join(SHOT_KEYS)})")
    delimiter = _csv_delimiter(lines[0])
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)
    rows = list(reader)
    header = [h.strip() for h in rows[0]]
    unknown = [h for h in header if h not in SHOT_KEYS]
    if unknown:
        raise ShotListError(f"{where}: unknown column(s) {', '.join(map(repr, unknown))}; valid: "
                            f"{', '.join(SHOT_KEYS)}")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ShotListError(f"{where}: column(s) {', '.join(dupes)} appear more than once")
    entries = []
    for i, row in enumerate(rows[1:], 2):
        if len(row) > len(header):
            raise ShotListError(f"{where}: row {i} has {len(row)} cells but the header names {len(header)} columns")
        values = {k: (v.strip() or None) for k, v in zip(header, row)}
        if delimiter != ",":        # a spreadsheet that separates cells with ";" writes 0,8 for 0.8
            for k in _FLOAT_KEYS + ("shutter_angle",):
                if values.get(k) and re.fullmatch(r"-?\d+,\d+", values[k]):
                    values[k] = values[k].replace(",", ".")
        if any(v is not None for v in values.values()):
            entries.append((f"row {i}", values))
    if not entries:
        raise ShotListError(f"{where}: the CSV has a header but no shots")
    return _build(entries, {}, base, where, name, 1)


def _csv_delimiter(header: str) -> str:
    """The cell separator of a CSV shot list, read off its header row (column names only): ``,``, or ``;`` (what a
    spreadsheet writes where the decimal mark is a comma) or a tab, where that one splits the row into columns
    and the comma does not."""
    def cells(sep: str) -> list[str]:
        return [c.strip().strip('"').strip() for c in header.split(sep)]

    if len(cells(",")) > 1 or header.count(";") + header.count("\t") == 0:
        return ","
    for sep in (";", "\t"):
        if len(cells(sep)) > 1 and all(c in SHOT_KEYS for c in cells(sep)):
            return sep
    return ";" if header.count(";") >= header.count("\t") else "\t"


def _read_otio(p: Path, base: Path) -> ShotList:
    import opentimelineio as otio

    where = str(p)
    try:
        timeline = otio.adapters.read_from_file(str(p))
    except Exception as exc:
        raise ShotListError(f"{where} is not a readable OpenTimelineIO file: {exc}") from None
    if not isinstance(timeline, otio.schema.Timeline):
        raise ShotListError(f"{where}: expected an OpenTimelineIO Timeline, got {type(timeline).__name__}")
    meta = _namespace(timeline.metadata, where, "the timeline")
    unknown = [k for k in meta if k != "defaults"]
    if unknown:
        raise ShotListError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} in the timeline's "
                            f"{OTIO_NAMESPACE} metadata; valid: defaults")
    defaults = _defaults(meta.get("defaults"), where)
    entries = []
    for t, track in enumerate(timeline.video_tracks(), 1):
        for clip in track.find_clips():
            if not clip.enabled:
                continue
            label = f"clip {clip.name!r} (video track {t})"
            entries.append((label, _clip_entry(clip, base, where, label)))
    if not entries:
        raise ShotListError(f"{where}: the timeline has no enabled clips on its video tracks")
    return _build(entries, defaults, base, where, p.stem, 1)


def _namespace(metadata, where: str, what: str) -> dict:
    value = metadata.get(OTIO_NAMESPACE, {}) if metadata is not None else {}
    if not hasattr(value, "items"):
        raise ShotListError(f"{where}: the {OTIO_NAMESPACE} metadata of {what} must be a mapping")
    return {str(k): _plain(v) for k, v in value.items()}


def _plain(value):
    """OTIO's AnyDictionary/AnyVector values as plain Python."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "AnyVector":
        return [_plain(v) for v in value]
    return value


def _clip_entry(clip, base: Path, where: str, label: str) -> dict:
    import opentimelineio as otio

    meta = _namespace(clip.metadata, where, label)
    if "input" in meta:
        raise ShotListError(f"{where}: {label}: 'input' comes from the clip's media reference, not its metadata")
    ref = clip.media_reference
    if ref is None or ref.is_missing_reference:
        raise ShotListError(f"{where}: {label} has no media reference; link the clip to its media (movie, still "
                            f"or image sequence)")
    entry: dict[str, Any] = {"name": clip.name or None}
    entry.update(meta)
    rng = clip.source_range
    if isinstance(ref, otio.schema.ImageSequenceReference):
        token = "#" * ref.frame_zero_padding if ref.frame_zero_padding > 0 else "%d"
        entry["input"] = _url_to_path(ref.target_url_base.rstrip("/") + "/" + ref.name_prefix + token
                                      + ref.name_suffix, base)
        if rng is not None and "frames" not in meta:
            first = ref.frame_for_time(rng.start_time)
            last = ref.frame_for_time(rng.end_time_inclusive())
            entry["frames"] = f"{first}-{last}" if last != first else str(first)
    elif isinstance(ref, otio.schema.ExternalReference):
        entry["input"] = _url_to_path(ref.target_url, base)
        kind = output_kind(entry["input"]) if _has_known_form(entry["input"]) else "movie"
        if rng is not None and "frames" not in meta and kind != "image":
            start = rng.start_time
            if kind == "movie" and ref.available_range is not None:   # movies: 0-based frame indices
                start = start - ref.available_range.start_time
            first = int(round(start.value))
            count = int(round(rng.duration.value))
            if count < 1:
                raise ShotListError(f"{where}: {label} has an empty range")
            entry["frames"] = f"{first}-{first + count - 1}" if count > 1 else str(first)
    else:
        raise ShotListError(f"{where}: {label}: media reference {ref.schema_name()} is not supported; valid: "
                            f"ExternalReference (movie, still, sequence pattern), ImageSequenceReference")
    return entry


def _url_to_path(url: str, base: Path) -> str:
    from urllib.parse import unquote, urlparse

    if url.startswith("file:"):
        parsed = urlparse(url)
        path = unquote(parsed.path)
        if parsed.netloc and parsed.netloc != "localhost":
            path = f"//{parsed.netloc}{path}"
        return path
    return url if os.path.isabs(url) else str(base / url)


def _defaults(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ShotListError(f"{where}: 'defaults' must be a mapping of shot keys")
    bad = [k for k in value if k in ("name", "input")]
    if bad:
        raise ShotListError(f"{where}: defaults cannot set {', '.join(bad)} (each shot has its own)")
    _check_keys(value, where, "defaults")
    return dict(value)


def _check_keys(values: dict, where: str, label: str) -> None:
    unknown = [str(k) for k in values if k not in SHOT_KEYS]
    if unknown:
        raise ShotListError(f"{where}: {label}: unknown key(s) {', '.join(map(repr, unknown))}; valid: "
                            f"{', '.join(SHOT_KEYS)}")


def _build(entries: list[tuple[str, dict]], defaults: dict, base: Path, where: str, name: str,
           version: int) -> ShotList:
    merged = []
    for label, values in entries:
        _check_keys(values, where, label)
        values = {**{k: v for k, v in defaults.items()}, **{k: v for k, v in values.items() if v is not None}}
        merged.append((label, {k: _coerce(k, v, where, label) for k, v in values.items()}))
    names = _names(merged, where)
    shots = []
    for (label, values), shot_name in zip(merged, names):
        shots.append(_shot(values, shot_name, base, where, f"{label} ({shot_name})"))
    return ShotList(tuple(shots), name=name, source=where, version=version)


def _coerce(key: str, value, where: str, label: str):
    """One value of a shot, typed (YAML gives numbers, CSV gives text)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    bad = f"{where}: {label}: {key}"
    if key == "actor_footage":
        return _coerce_paths(value, bad)
    if key == "shutter_angle":             # the range is ned-fx edit's and the daemon's (shutter_from_angle)
        from ..appearance import shutter_from_angle

        try:
            number = float(value)
            if isinstance(value, bool):
                raise ValueError(value)
            shutter_from_angle(number)
        except (TypeError, ValueError, InvalidParameterError):
            raise ShotListError(f"{bad} must be a shutter angle in degrees (0..360), got {value!r}") from None
        return number
    if key == "ignore_cuts":               # YAML and OpenTimelineIO give a boolean, CSV text
        text = str(value).strip().lower()
        if value is True or text in _TRUE:
            return True
        if value is False or text in _FALSE:
            return False
        raise ShotListError(f"{bad} must be true or false, got {value!r}")
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise ShotListError(f"{bad} must be {_expected(key)}, got {value!r}")
    if key in _INT_KEYS:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            value = int(value)
        if not isinstance(value, int):
            raise ShotListError(f"{bad} must be {_expected(key)}, got {value!r}")
        if key == "face" and value < 0:
            raise ShotListError(f"{bad} must be 0 or more, got {value}")
        return value
    if key in _FLOAT_KEYS:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ShotListError(f"{bad} must be {_expected(key)}, got {value!r}") from None
        if not math.isfinite(number) or number < 0:
            raise ShotListError(f"{bad} must be a number 0 (no change) … 1 (full) … 1.5, got {value!r}")
        return number
    if key in ("frames", "reference_frames", "name") and isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise ShotListError(f"{bad} must be {_expected(key)}, got {value!r}")
    value = value.strip()
    if key in ("frames", "reference_frames"):
        from ..media.frames import FrameRange

        try:
            FrameRange.parse(value)
        except InvalidParameterError as exc:
            raise ShotListError(f"{bad}: {exc}") from None
    if key == "speech" and value not in _SPEECH:
        raise ShotListError(f"{bad} {value!r} is not valid; valid: {', '.join(_SPEECH)}")
    if key == "renderer" and value not in _RENDERERS:
        raise ShotListError(f"{bad} {value!r} is not valid; valid: {', '.join(_RENDERERS)}")
    return value


def _coerce_paths(value, bad: str) -> tuple[str, ...] | None:
    """``actor_footage``: a list of paths (YAML, OpenTimelineIO) or text with paths separated by ``;`` (CSV)."""
    if isinstance(value, str):
        value = value.split(LIST_SEPARATOR)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ShotListError(f"{bad} must be a list of paths (a CSV cell: paths separated by "
                            f"{LIST_SEPARATOR!r}), got {value!r}")
    paths = tuple(v.strip() for v in value if v.strip())
    if len(paths) > 64:
        raise ShotListError(f"{bad} names {len(paths)} files; at most 64")
    return paths or None


def _expected(key: str) -> str:
    if key in _INT_KEYS:
        return "a whole number"
    if key in _FLOAT_KEYS:
        return "a number"
    if key in ("frames", "reference_frames"):
        return 'a frame range such as "1001-1100"'
    return "text"


def _names(merged: list[tuple[str, dict]], where: str) -> list[str]:
    """Each shot's name: given, or from its input's file name (``_2``, ``_3``… when two would clash)."""
    given = [values.get("name") for _, values in merged]
    seen: dict[str, str] = {}
    for (label, _), n in zip(merged, given):
        if n is None:
            continue
        _check_name(n, where, label)
        if n in seen:
            raise ShotListError(f"{where}: {label} and {seen[n]} are both called {n!r}; shot names must be unique")
        seen[n] = label
    out = []
    taken = set(seen)
    for (label, values), n in zip(merged, given):
        if n is None:
            if not values.get("input"):
                raise ShotListError(f"{where}: {label} has no input; every shot needs 'input' (a movie, still or "
                                    f"sequence such as plates/sh010.####.exr)")
            stem = input_stem(values["input"]) or "shot"
            n, k = stem, 2
            while n in taken:
                n, k = f"{stem}_{k}", k + 1
            taken.add(n)
        out.append(n)
    return out


def _check_name(name: str, where: str, label: str) -> None:
    if not name or name in (".", "..") or re.search(r"[/\\\x00-\x1f]", name):
        raise ShotListError(f"{where}: {label}: name {name!r} is not usable: names become file names (no slashes "
                            f"or control characters)")


def input_stem(path: str) -> str:
    """A plate's name without folder, frame token and extension: ``plates/sh010.####.exr`` -> ``sh010``."""
    name = Path(path).name
    from ..media.paths import is_sequence_pattern, parse_sequence_pattern

    if is_sequence_pattern(name):
        try:
            seq = parse_sequence_pattern(name)
            name = (seq.prefix.rstrip("._- ") or Path(path).parent.name)
            return name
        except InvalidParameterError:
            pass
    return Path(name).stem


def _shot(values: dict, name: str, base: Path, where: str, label: str) -> Shot:
    for key in ("input", "output"):
        if not values.get(key):
            example = "plates/sh010.####.exr" if key == "input" else "out/sh010_happy.####.exr"
            raise ShotListError(f"{where}: {label} has no {key}; every shot needs '{key}' (e.g. {example})")
    values = dict(values)
    values["name"] = name
    values["output"] = _fill_template(values["output"], values, where, label)
    for key in PATH_KEYS:
        if values.get(key):
            values[key] = (tuple(_absolute(v, base) for v in values[key]) if key == "actor_footage"
                           else _absolute(values[key], base))
    if (values.get("renderer") == "neural") != bool(values.get("checkpoint")):
        raise ShotListError(f"{where}: {label}: " + ("renderer neural needs a checkpoint (the actor's neural "
                                                     "renderer, from ned-fx train-renderer)"
                                                     if values.get("renderer") == "neural" else
                                                     "a checkpoint is for renderer: neural; set it, or drop the "
                                                     "checkpoint"))
    for key in ("input", "output", "holdout_matte"):
        if values.get(key) and not _has_known_form(values[key]):
            raise ShotListError(f"{where}: {label}: {key} {values[key]} is not a movie, still or image sequence; "
                                f"valid: {_forms()}")
    try:
        kind = output_kind(values["output"])
        if kind == "sequence":
            from ..media.paths import parse_sequence_pattern

            parse_sequence_pattern(values["output"])
            _check_image_ext(values["output"], where, label)
        if output_kind(values["input"]) == "sequence":
            from ..media.paths import parse_sequence_pattern

            parse_sequence_pattern(values["input"])
    except InvalidParameterError as exc:
        raise ShotListError(f"{where}: {label}: {exc}") from None
    if kind == "image" and values.get("frames"):
        from ..media.frames import FrameRange

        if len(FrameRange.parse(values["frames"])) != 1:
            raise ShotListError(f"{where}: {label}: the output {Path(values['output']).name} is a still but frames "
                                f"{values['frames']} are several; write a sequence (name.####.exr) or a movie")
    from ..media.writers import ensure_not_input

    known = {f.name for f in fields(Shot)}
    shot = Shot(**{k: v for k, v in values.items() if k in known})
    try:
        ensure_not_input(shot.output, [shot.input, *shot.session_files()])
    except InvalidParameterError as exc:
        raise ShotListError(f"{where}: {label}: {exc}") from None
    return shot


def _fill_template(text: str, values: dict, where: str, label: str) -> str:
    def field(match: re.Match) -> str:
        key = match.group(1)
        if key == "name":
            return values["name"]
        if key == "stem":
            return input_stem(values["input"])
        if key == "emotion":
            emotion = values.get("emotion") or ("reference" if values.get("reference") else "neutral")
            return re.sub(r"[^A-Za-z0-9.]+", "_", emotion).strip("_")
        raise ShotListError(f"{where}: {label}: output {text!r} uses {{{key}}}; valid fields: "
                            f"{', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}")

    return _TEMPLATE_RE.sub(field, text)


def _absolute(path: str, base: Path) -> str:
    p = os.path.expanduser(path)
    return os.path.normpath(p if os.path.isabs(p) else os.path.join(base, p))


def _forms() -> str:
    from ..media.paths import IMAGE_EXTENSIONS, MOVIE_EXTENSIONS

    return (f"movies {' '.join(MOVIE_EXTENSIONS)}; stills {' '.join(IMAGE_EXTENSIONS)}; sequences name.####.ext or "
            f"name.%04d.ext")


def _has_known_form(path: str) -> bool:
    from ..media.paths import IMAGE_EXTENSIONS, MOVIE_EXTENSIONS, is_sequence_pattern

    ext = Path(path).suffix.lower()
    return ext in MOVIE_EXTENSIONS or ext in IMAGE_EXTENSIONS or (is_sequence_pattern(path) and bool(ext))


def _check_image_ext(path: str, where: str, label: str) -> None:
    from ..media.paths import IMAGE_EXTENSIONS

    if Path(path).suffix.lower() not in IMAGE_EXTENSIONS:
        raise ShotListError(f"{where}: {label}: the sequence {Path(path).name} needs an image extension; valid: "
                            f"{' '.join(IMAGE_EXTENSIONS)}")


def output_kind(path: str | os.PathLike) -> str:
    """``"sequence"`` (a frame token in the name), ``"movie"`` (a movie extension) or ``"image"`` (a still)."""
    from ..media.paths import MOVIE_EXTENSIONS, is_sequence_pattern

    if is_sequence_pattern(path):
        return "sequence"
    if Path(path).suffix.lower() in MOVIE_EXTENSIONS:
        return "movie"
    return "image"


def output_problem(shot: Shot, input_kind: str, frame_count: int) -> str | None:
    """Why a shot's output cannot hold its frames, once the input is known (None when it can).

    Args:
        shot: the shot; input_kind: ``movie``, ``image`` or ``sequence`` (the opened input's kind);
        frame_count: frames in the shot.
    """
    from ..media.paths import IMAGE_EXTENSIONS
    from ..provenance.embed import FORMATS

    name = Path(shot.output).name
    ext = Path(shot.output).suffix.lower()
    if shot.output_kind != "movie" and ext not in FORMATS:
        return (f"{name}: {ext} files have no metadata for the provenance every ned_fx output carries; valid: "
                f"{' '.join(e for e in FORMATS if e in IMAGE_EXTENSIONS)}")
    if shot.output_kind == "image" and frame_count != 1:
        return (f"{name} is a still but the shot has {frame_count} frames; write a sequence (name.####.exr) or a "
                f"movie (.mov/.mp4)")
    if input_kind == "movie" and shot.output_kind != "movie" and Path(shot.output).suffix.lower() == ".exr":
        return (f"{name}: a movie's frames are 8- or 16-bit RGB and EXR stores half or float; write .png/.tif "
                f"(sequence or still) or a movie")
    return None


def _check_clashes(shots: tuple[Shot, ...], where: str) -> None:
    """Two shots never write the same output, and no shot writes another's input."""
    from ..media.writers import ensure_not_input

    names: dict[str, str] = {}
    for s in shots:
        if s.name in names:
            raise ShotListError(f"{where}: two shots are called {s.name!r}; shot names must be unique")
        names[s.name] = s.name
    for i, a in enumerate(shots):
        for b in shots[i + 1:]:
            if os.path.normpath(a.output) == os.path.normpath(b.output):
                raise ShotListError(f"{where}: shots {a.name} and {b.name} both write {a.output}; give each its own "
                                    f"output")
        for b in shots:
            if b is a:
                continue
            for what, paths in (("the input", [b.input]), ("the holdout matte", [b.holdout_matte or ""]),
                                ("actor footage", list(b.actor_footage or ())),
                                ("the checkpoint", [b.checkpoint or ""])):
                try:
                    ensure_not_input(a.output, [p for p in paths if p])
                except InvalidParameterError:
                    raise ShotListError(f"{where}: shot {a.name} writes {a.output}, which is {what} of shot "
                                        f"{b.name}; outputs must not overwrite inputs") from None


# ---- writing -------------------------------------------------------------------------------------------------

def write_to_file(shotlist: ShotList, path: str | os.PathLike) -> Path:
    """Write a shot list (atomically); the format follows the extension.

    Paths inside the file's folder are written relative to it, others absolute. YAML and CSV keep every key;
    an OpenTimelineIO file has one clip per shot (media = the input, source range = the frames at 24 fps, the other
    keys in the clip's ``ned_fx`` metadata), which :func:`read_from_file` reads back to the same shots.

    Args:
        shotlist: the shots; path: ``.yaml``/``.yml``, ``.csv`` or ``.otio``.

    Returns:
        the path written.

    Raises:
        UnsupportedFormatError: another extension. OutputWriteError: the file (or its missing folders, which are
        created) cannot be written.
    """
    from ..errors import OutputWriteError
    from ..media.writers import atomic_output

    p = Path(path)
    fmt = _format_of(p)
    if p.suffix.lower() == ".otioz":
        raise UnsupportedFormatError(f"{p.name}: .otioz bundles the media into the file; write .otio (the clips "
                                     f"reference the plates where they are)")
    folder = Path(os.path.abspath(p.parent))
    rows = [_relative_row(s, folder) for s in shotlist.shots]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"cannot create the folder {folder} for {p.name}: {exc.strerror or exc}") from None
    with atomic_output(p) as tmp:
        if fmt == "yaml":
            import yaml

            doc = {"version": shotlist.version, "shots": rows}
            tmp.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
        elif fmt == "csv":
            columns = [k for k in SHOT_KEYS if any(k in r for r in rows)]
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            for r in rows:
                writer.writerow({k: (LIST_SEPARATOR.join(r[k]) if isinstance(r.get(k), list) else r.get(k, ""))
                                 for k in columns})
            tmp.write_text(buf.getvalue(), encoding="utf-8")
        else:
            _write_otio(shotlist, rows, tmp)
    return p


def _relative_row(shot: Shot, folder: Path) -> dict:
    def relative(path: str) -> str:
        rel = os.path.relpath(path, folder)
        return rel if not rel.startswith("..") else path

    row = shot.as_dict()
    for key in PATH_KEYS:
        if key in row:
            row[key] = [relative(v) for v in row[key]] if key == "actor_footage" else relative(row[key])
    return row


def _write_otio(shotlist: ShotList, rows: list[dict], tmp: Path, rate: float = 24.0) -> None:
    import opentimelineio as otio
    from ..media.frames import FrameRange

    timeline = otio.schema.Timeline(name=shotlist.name)
    track = otio.schema.Track(name="ned_fx shots", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    for shot, row in zip(shotlist.shots, rows):
        meta = {k: v for k, v in row.items() if k not in ("name", "input", "frames")}
        source_range = None
        if shot.frames is not None:
            fr = FrameRange.parse(shot.frames)
            if fr.step == 1 and shot.input_kind != "image":
                source_range = otio.opentime.TimeRange(otio.opentime.RationalTime(fr.first, rate),
                                                       otio.opentime.RationalTime(len(fr), rate))
            else:
                meta["frames"] = shot.frames
        clip = otio.schema.Clip(name=shot.name, media_reference=otio.schema.ExternalReference(target_url=row["input"]),
                                source_range=source_range)
        clip.metadata[OTIO_NAMESPACE] = meta
        track.append(clip)
    otio.adapters.write_to_file(timeline, str(tmp))
