"""The Resolve pass, host-agnostic: timeline clips -> a plan of shots -> the edits, run by the venv's Python.

DaVinci Resolve's scripting Python may lack numpy and cannot load the engines, so the bridge
(``host_bridges/resolve/ned_fx_emotion.py``) only reads the timeline and calls Resolve; everything else is here:

* :class:`ResolveConfig` — the pass's settings (the one home of their defaults), from the dialog or a JSON/YAML
  file (:func:`read_config`);
* :func:`source_range` — a clip's source file and used range in the daemon's terms (Resolve writes image
  sequences as ``plate.[1001-1100].exr``; movies are 0-based frame indices);
* :func:`plan_shots` — the clips as :class:`PlannedShot` records: input, frame range, output next to the
  project's render location (``TARGET/ned_fx/<timeline>/<clip>_<emotion>/<clip>_<emotion>.%04d.exr|png``), the
  record frame to place the result at; clips that cannot be edited are listed with the reason;
* :func:`write_plan` / :func:`run_plan` — the plan as JSON, run by ``python -m ned_fx.hosts.runner`` in the
  venv (a subprocess reporting JSON lines; it uses ``ned-fx batch``'s runner), plus a shot list in the shared
  batch format (:func:`write_shotlist`) to re-run the pass or send it to the farm.

Standard library only (this module loads inside Resolve's Python). Supported Resolve Pythons: 3.7 and newer
(dataclasses); the menu script itself still imports on 3.6 and says so. Whatever Python Resolve uses, the edits
run in the venv's Python (``python`` in the settings), so Resolve's needs neither numpy nor pyzmq.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import InputNotFoundError, InvalidParameterError, NedFxError
from .params import knob_specs, open_params

#: How the pass picks clips: ``selection`` (the timeline's selected clips where Resolve offers
#: ``Timeline.GetSelectedClips()`` — 21.0.4 and newer — else, said so, the ``markers`` pick), ``markers`` (the
#: clips of video ``track`` — 0: every video track — under a timeline marker, optionally only markers named
#: ``marker_name`` and/or coloured ``marker_color``), ``color`` (clips marked with the clip colour ``clip_color``),
#: ``current`` (the clip under the playhead), ``track`` (every clip on ``track``).
SELECT_MODES = ("selection", "markers", "color", "current", "track")
IMAGE_FORMATS = ("auto", "exr", "png")
#: What the pass places: ``patch`` (the default: only the edited face, premultiplied alpha, over Resolve's own
#: decode of the original clip) or ``full`` (the whole edited frame on top).
LAYERS = ("patch", "full")
RUNNERS = ("auto", "batch", "client")
#: Resolve's clip colours (``TimelineItem.GetClipColor``).
CLIP_COLORS = ("Orange", "Apricot", "Yellow", "Lime", "Olive", "Green", "Teal", "Navy", "Blue", "Purple",
               "Violet", "Pink", "Tan", "Beige", "Brown", "Chocolate")
#: Resolve's marker colours (``Timeline.AddMarker``/``GetMarkers``); ``Any``: a marker of any colour picks.
MARKER_COLORS = ("Any", "Blue", "Cyan", "Green", "Yellow", "Red", "Pink", "Purple", "Fuchsia", "Rose", "Lavender",
                 "Sky", "Mint", "Lemon", "Sand", "Cocoa", "Cream")
PLAN_VERSION = 1
_SEQUENCE = re.compile(r"^(?P<head>.*?)\[(?P<first>\d+)-(?P<last>\d+)\](?P<tail>[^/\\]*)$")


class RunnerError(NedFxError):
    """The edit runner (the venv's Python) could not be started or stopped unexpectedly."""

    exit_code = 9


@dataclass(frozen=True)
class ResolveConfig:
    """Settings of the Resolve pass.

    Attributes:
        endpoint: the daemon; emotion (or a blend ``happy:0.7,surprised:0.3``), intensity (0…1.5), reference
            (an image/clip), regions, speech, face, keys: the edit (see ``ned-fx edit``); ignore_cuts: track each
            clip's frames as one shot where a cut is found (``--ignore-cuts``; off: a clip whose frames hold a cut
            fails, naming each shot's frames).
        consent: the performer's consent reference, recorded by the daemon.
        select: one of :data:`SELECT_MODES`; marker_name, marker_color: for ``markers`` (and ``selection`` where
            Resolve cannot read the selection): only timeline markers with this name (any case; empty: any name)
            and this colour (``Any``: any colour) pick clips; clip_color: for ``color``; track: the video track
            for ``track`` and ``markers`` (0: every video track) and ``current`` (0 = the topmost clip under the
            playhead).
        output_root: where outputs go (default: the project's render folder, else a ``ned_fx`` folder beside
            each source); image_format: ``auto`` (EXR for EXR sources, 16/8-bit PNG otherwise), ``exr``, ``png``.
        layer: ``patch`` (default: the edited face alone with premultiplied alpha, placed over the original
            clip, whose own decode then shows everywhere else) or ``full`` (the whole edited frame).
        python: the Python with ned_fx installed that runs the edits (default: ``NED_FX_PYTHON``, then the
            repo's ``.venv``); track_name: the new track's name (default ``ned_fx <emotion>``); media_folder:
            the media pool bin the results go into.
        runner: ``auto`` (``ned-fx batch``'s runner when installed: parallel shots, resumable, provenance
            records in EXRs), ``batch`` or ``client`` (a plain loop); start_daemon: let the batch start a private daemon
            when none answers (it loads the engines: slow), instead of failing with a clear message.
    """

    endpoint: str = "tcp://127.0.0.1:5557"
    emotion: str = "happy"
    intensity: float = 1.0
    reference: str = ""
    regions: str = ""
    speech: str = ""
    face: int | None = None
    keys: str = ""
    ignore_cuts: bool = False
    consent: str = ""
    select: str = "selection"
    marker_name: str = ""
    marker_color: str = "Any"
    clip_color: str = "Orange"
    track: int = 1
    output_root: str = ""
    image_format: str = "auto"
    layer: str = "patch"
    python: str = ""
    track_name: str = ""
    media_folder: str = "ned_fx"
    runner: str = "auto"
    start_daemon: bool = False

    def __post_init__(self) -> None:
        if self.select not in SELECT_MODES:
            raise InvalidParameterError(f"select {self.select!r}; valid: {', '.join(SELECT_MODES)}")
        if self.image_format not in IMAGE_FORMATS:
            raise InvalidParameterError(f"image_format {self.image_format!r}; valid: {', '.join(IMAGE_FORMATS)}")
        if self.layer not in LAYERS:
            raise InvalidParameterError(f"layer {self.layer!r}; valid: {', '.join(LAYERS)}")
        if self.select == "color" and self.clip_color not in CLIP_COLORS:
            raise InvalidParameterError(f"clip_color {self.clip_color!r}; valid: {', '.join(CLIP_COLORS)}")
        if self.marker_color not in MARKER_COLORS:
            raise InvalidParameterError(f"marker_color {self.marker_color!r}; valid: {', '.join(MARKER_COLORS)}")
        if self.runner not in RUNNERS:
            raise InvalidParameterError(f"runner {self.runner!r}; valid: {', '.join(RUNNERS)}")
        if isinstance(self.track, bool) or not isinstance(self.track, int) or self.track < 0:
            raise InvalidParameterError(f"track must be a video track number (1 = V1), got {self.track!r}")

    def instruction(self) -> dict:
        """The edit as ``open`` parameters (checked against the daemon's parameter specs).

        Raises:
            InvalidParameterError: intensity or face out of range, an unknown speech mode (valid ones listed).
        """
        specs = knob_specs()
        values = {"intensity": self.intensity, "reference": self.reference, "regions": self.regions,
                  "speech": self.speech, "face": self.face, "keys": self.keys,
                  "ignore_cuts": self.ignore_cuts or None}     # (off: not sent, the plans of before stay the same)
        params = open_params(specs, values)
        emotion = self.emotion.strip()
        if self.reference and emotion in ("", "reference"):
            emotion = ""                 # the reference's own expression
        if emotion:
            params["emotion"] = emotion  # names and blends; the daemon checks them and lists the valid ones
        return params

    @property
    def markers_wanted(self) -> str:
        """The timeline markers that pick clips, in words (``timeline markers named 'ned_fx' coloured Green``)."""
        return ("timeline markers" + (f" named {self.marker_name.strip()!r}" if self.marker_name.strip() else "")
                + (f" coloured {self.marker_color}" if self.marker_color != "Any" else ""))

    @property
    def label(self) -> str:
        """A file-name-safe word for the edit (``happy``, ``happy-surprised``, ``reference``)."""
        if self.keys:
            return "keyed"
        if not self.emotion.strip() or self.emotion.strip() == "reference":
            return "reference"
        names = [re.split(r"[:*]", p)[0].strip() for p in self.emotion.replace("+", ",").split(",") if p.strip()]
        return _safe("-".join(names)) or "edit"


def read_config(path: str | os.PathLike, base: ResolveConfig | None = None) -> ResolveConfig:
    """A :class:`ResolveConfig` from a JSON (or, with PyYAML, YAML) file; keys not given keep ``base``'s values.

    Raises:
        InputNotFoundError: no such file; InvalidParameterError: not a mapping, an unknown key (the valid ones
        are listed) or a value of the wrong type.
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"config file not found: {p}")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ImportError:
        raise InvalidParameterError(f"{p}: YAML needs PyYAML, which this Python lacks; write JSON instead") from None
    except Exception as exc:
        raise InvalidParameterError(f"{p} is not valid {p.suffix[1:].upper() or 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidParameterError(f"{p} must hold a mapping of settings")
    data = {k: v for k, v in data.items() if k not in ("ned_fx_root", "comment")}
    return config_from_mapping(data, base)


def config_from_mapping(data: Mapping[str, Any], base: ResolveConfig | None = None) -> ResolveConfig:
    """A :class:`ResolveConfig` from ``{field: value}`` (type-checked per field; unknown keys refused)."""
    base = base or ResolveConfig()
    fields = {f.name: f for f in dataclasses.fields(ResolveConfig)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InvalidParameterError(f"unknown setting(s) {', '.join(map(repr, unknown))}; valid: {', '.join(fields)}")
    values = {}
    for key, value in data.items():
        want = type(getattr(base, key)) if getattr(base, key) is not None else int
        if key == "face":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidParameterError(f"setting 'face' must be a face id (integer) or null, got {value!r}")
        elif want is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidParameterError(f"setting {key!r} must be a number, got {value!r}")
            value = float(value)
        elif not isinstance(value, want) or isinstance(value, bool) != (want is bool):
            raise InvalidParameterError(f"setting {key!r} must be {want.__name__}, got {value!r}")
        values[key] = value
    return dataclasses.replace(base, **values)


@dataclass(frozen=True)
class TimelineClip:
    """One timeline item as the bridge read it.

    Attributes:
        name: the item's name; path: its media's ``File Path`` (None: no file — a generator, title…).
        source_start: the first used source frame, counted from the media's first frame (Resolve's
            ``GetLeftOffset``, in timeline frames: ``GetSourceStartFrame`` is off by one or in the media's rate on
            some items and 0 on XML-imported timelines); duration: frames on the timeline.
        record_start: the timeline frame it starts at (``GetStart``); track: its video track.
        source_end: Resolve's ``GetSourceEndFrame`` when it has one (only used to detect retimed clips: Resolve
            versions differ on whether it is inclusive, so a span of ``duration`` or ``duration - 1`` is 1:1);
            uid: its unique id.
    """

    name: str
    path: str | None
    source_start: int
    duration: int
    record_start: int
    track: int
    source_end: int | None = None
    uid: str = ""


@dataclass(frozen=True)
class PlannedShot:
    """One edit of the pass (JSON-serialisable: the runner reads it back)."""

    name: str
    clip: str
    input: str
    first: int
    last: int
    output: str
    record_frame: int
    track: int
    params: Mapping[str, Any] = field(default_factory=dict)
    consent: str = ""
    layer: str = "full"            # "patch": the runner makes patches of the full frames (ned_fx.hosts.patches)

    @property
    def frames(self) -> str:
        return f"{self.first}-{self.last}"

    @property
    def duration(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class Plan:
    """The pass: shots to run, clips skipped with the reason, where outputs go, which timeline."""

    shots: tuple[PlannedShot, ...]
    skipped: tuple[tuple[str, str], ...]
    timeline: str
    endpoint: str


def marker_spans(markers: Mapping[Any, Any] | None, timeline_start: int, name: str = "",
                 color: str = "Any") -> tuple[tuple[int, int], ...]:
    """The timeline frames the wanted markers cover, as ``(first, end)`` record frames (``end`` exclusive).

    Args:
        markers: ``Timeline.GetMarkers()``: ``{frame: {"color", "name", "note", "duration", "customData"}}``,
            the frame an offset from the timeline's start (Resolve's scripting README: "a single green marker at
            timeline offset 96"), a float; duration in frames (a float, at least 1).
        timeline_start: ``Timeline.GetStartFrame()`` (the record frame of offset 0).
        name: only markers with this name (any case, spaces around ignored); empty: any name.
        color: only markers of this colour; ``Any``: any colour.

    Entries that are not ``frame -> dict`` with a number for a frame are ignored (nothing to pick from them).
    """
    want_name = name.strip().casefold()
    spans = []
    for frame, info in (markers or {}).items():
        if not isinstance(info, Mapping):
            continue
        try:
            first = timeline_start + int(round(float(frame)))
            duration = max(1, int(round(float(info.get("duration") or 1))))
        except (TypeError, ValueError):
            continue
        if want_name and str(info.get("name", "")).strip().casefold() != want_name:
            continue
        if color != "Any" and str(info.get("color", "")) != color:
            continue
        spans.append((first, first + duration))
    return tuple(sorted(spans))


def under_markers(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    """Whether a clip on record frames ``start`` … ``end - 1`` (``TimelineItem.GetStart()``/``GetEnd()``, the end
    exclusive) has one of the marker ``spans`` on one of its frames."""
    return any(first < end and start < stop for first, stop in spans)


def source_range(path: str, source_start: int, duration: int) -> tuple[str, int, int]:
    """The daemon's view of a clip: ``(input path, first frame, last frame)``.

    Resolve shows an image sequence as ``plate.[1001-1100].exr``: the input becomes ``plate.%04d.exr`` and the
    frames are sequence numbers (``1001 + source_start`` …). A movie's frames are 0-based indices.

    Raises:
        InvalidParameterError: a duration below 1 or a negative start.
    """
    if duration < 1 or source_start < 0:
        raise InvalidParameterError(f"{path}: a used range of {duration} frame(s) from {source_start} is empty")
    m = _SEQUENCE.match(path)
    if m:
        digits = len(m.group("first"))
        first = int(m.group("first")) + source_start
        last = first + duration - 1
        if last > int(m.group("last")):
            raise InvalidParameterError(f"{path}: frames {first}-{last} run past the sequence's last frame "
                                        f"{m.group('last')}")
        return f"{m.group('head')}%0{digits}d{m.group('tail')}", first, last
    return path, source_start, source_start + duration - 1


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "clip"


def output_extension(input_path: str, image_format: str) -> str:
    if image_format != "auto":
        return image_format
    return "exr" if input_path.lower().endswith(".exr") else "png"


def plan_shots(clips: Iterable[TimelineClip], config: ResolveConfig, target_dir: str | None,
               timeline: str) -> Plan:
    """Plan the pass.

    Args:
        clips: the picked timeline items; config: the settings.
        target_dir: the project's render folder (None: ``config.output_root``, else beside each source).
        timeline: the timeline's name (a folder level of the outputs).

    Returns:
        the :class:`Plan`; a clip with no file, a retimed clip or an empty range is skipped with the reason,
        the others go on.

    Raises:
        InvalidParameterError: the settings' edit is invalid (nothing can run).
    """
    params = config.instruction()
    root = config.output_root or target_dir
    shots, skipped, names = [], [], set()
    for clip in clips:
        if not clip.path:
            skipped.append((clip.name, "has no source file (a generator, title, compound or Fusion clip?): "
                                       "only clips of movie or image-sequence media can be edited"))
            continue
        if clip.source_end is not None and clip.source_end - clip.source_start not in (clip.duration - 1,
                                                                                        clip.duration):
            skipped.append((clip.name, f"is retimed (source frames {clip.source_start}-{clip.source_end} over "
                                       f"{clip.duration} timeline frames): ned_fx edits source frames 1:1; "
                                       f"render the retime first or set it to 100%"))
            continue
        try:
            input_path, first, last = source_range(clip.path, clip.source_start, clip.duration)
        except InvalidParameterError as exc:
            skipped.append((clip.name, str(exc)))
            continue
        stem = _safe(re.sub(r"\.\[\d+-\d+\]", "", Path(clip.path).stem.split("%")[0]).rstrip("._"))
        name = f"{stem}_{config.label}"
        n = 2
        while name in names:
            name = f"{stem}_{config.label}_{n}"
            n += 1
        names.add(name)
        folder = (Path(root) if root else Path(input_path).parent) / "ned_fx" / _safe(timeline) / name
        ext = output_extension(input_path, config.image_format)
        shots.append(PlannedShot(name, clip.name, input_path, first, last, str(folder / f"{name}.%04d.{ext}"),
                                 clip.record_start, clip.track, dict(params), config.consent, config.layer))
    return Plan(tuple(shots), tuple(skipped), timeline, config.endpoint)


# ---- the dialog, as data -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DialogField:
    """One row of the pass's dialog: a widget kind a host maps to its own (Fusion UIManager: ``ComboBox``,
    ``DoubleSpinBox``, ``SpinBox``, ``CheckBox``, ``LineEdit``), its label, choices, range and value."""

    id: str
    label: str
    widget: str
    value: Any
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    hint: str = ""


_WIDGETS = {"choice": "ComboBox", "double": "DoubleSpinBox", "integer": "SpinBox", "boolean": "CheckBox",
            "string": "LineEdit", "file": "LineEdit"}
#: Daemon parameters the Resolve pass does not offer: ``mix`` (use the new track's opacity), ``neutral_frame``
#: (a source frame number the artist rarely knows in Resolve).
_NOT_IN_DIALOG = ("mix", "neutral_frame")


def dialog_fields(specs, config: ResolveConfig) -> tuple[DialogField, ...]:
    """The dialog's rows: the daemon's parameters (from its specs, current values from ``config``), then the
    pass's own settings. An unset face is ``-1``."""
    fields: list[DialogField] = []
    for spec in specs:
        if spec.name in _NOT_IN_DIALOG or spec.host_side or not hasattr(config, spec.name):
            continue
        value = getattr(config, spec.name)
        if spec.name == "face":
            value = -1 if value is None else value
        options = spec.options
        if spec.kind == "choice" and isinstance(value, str) and value and value not in options:
            options = options + (value,)             # a blend typed in the config file
        fields.append(DialogField(spec.name, spec.label, _WIDGETS[spec.kind], value, options,
                                  -1 if spec.name == "face" else spec.minimum, spec.maximum, spec.hint))
    fields += [
        DialogField("consent", "Consent", "LineEdit", config.consent, hint="the performer's consent reference"),
        DialogField("select", "Clips", "ComboBox", config.select, SELECT_MODES,
                    hint="selection: the selected clips (Resolve 21.0.4+; else as markers); markers: the clips "
                         "of the video track under a timeline marker; color: clips marked with the clip colour; "
                         "current: under the playhead; track: a track"),
        DialogField("marker_name", "Marker name", "LineEdit", config.marker_name,
                    hint="markers: only timeline markers with this name (empty: any)"),
        DialogField("marker_color", "Marker colour", "ComboBox", config.marker_color, MARKER_COLORS),
        DialogField("clip_color", "Clip colour", "ComboBox", config.clip_color, CLIP_COLORS),
        DialogField("track", "Video track", "SpinBox", config.track, minimum=0, maximum=64,
                    hint="track, markers: the video track (markers: 0 = every track); current: 0 = the topmost"),
        DialogField("output_root", "Output folder", "LineEdit", config.output_root,
                    hint="empty: the project's render folder, else beside each source"),
        DialogField("image_format", "Format", "ComboBox", config.image_format, IMAGE_FORMATS),
        DialogField("layer", "Place", "ComboBox", config.layer, LAYERS,
                    hint="patch: the edited face alone (premultiplied alpha) over the original clip; full: the "
                         "whole edited frame"),
        DialogField("endpoint", "Daemon", "LineEdit", config.endpoint),
    ]
    return tuple(fields)


def config_from_dialog(fields: Sequence[DialogField], values: Mapping[str, Any],
                       base: ResolveConfig | None = None) -> ResolveConfig:
    """The config for the values the dialog returned (``id -> value``; numbers from spin boxes may be floats).

    Raises:
        InvalidParameterError: a value of the wrong kind or not one of a field's choices.
    """
    by_id = {f.id: f for f in fields}
    data: dict[str, Any] = {}
    for key, value in values.items():
        f = by_id.get(key)
        if f is None:
            raise InvalidParameterError(f"unknown dialog field {key!r}; valid: {', '.join(by_id)}")
        if f.widget == "SpinBox":
            value = int(round(float(value)))
            if key == "face":
                value = None if value < 0 else value
        elif f.widget == "DoubleSpinBox":
            value = float(value)
        elif f.widget == "CheckBox":
            value = bool(value)
        else:
            value = str(value)
        if f.widget == "ComboBox" and value not in f.options:
            raise InvalidParameterError(f"{f.label}: {value!r}; valid: {', '.join(f.options)}")
        data[key] = value
    return config_from_mapping(data, base)


# ---- the plan as files ---------------------------------------------------------------------------------------

def plan_to_dict(plan: Plan) -> dict:
    return {"version": PLAN_VERSION, "timeline": plan.timeline, "endpoint": plan.endpoint,
            "shots": [dict(dataclasses.asdict(s), params=dict(s.params)) for s in plan.shots],
            "skipped": [list(s) for s in plan.skipped]}


def plan_from_dict(data: Mapping[str, Any]) -> Plan:
    """The inverse of :func:`plan_to_dict` (keys checked; never ``setattr``).

    Raises:
        InvalidParameterError: another plan version, or a shot with unknown or missing keys.
    """
    if data.get("version") != PLAN_VERSION:
        raise InvalidParameterError(f"plan version {data.get('version')!r}; this ned_fx reads {PLAN_VERSION}")
    names = [f.name for f in dataclasses.fields(PlannedShot)]
    shots = []
    for raw in data.get("shots", []):
        if not isinstance(raw, dict) or set(raw) - set(names) or \
                set(names) - set(raw) - {"params", "consent", "layer"}:
            raise InvalidParameterError(f"a planned shot must have the keys {', '.join(names)}; got "
                                        f"{sorted(raw) if isinstance(raw, dict) else raw!r}")
        shots.append(PlannedShot(**raw))
    return Plan(tuple(shots), tuple(tuple(s) for s in data.get("skipped", [])), str(data.get("timeline", "")),
                str(data.get("endpoint", "")))


def write_plan(plan: Plan, path: str | os.PathLike) -> Path:
    """Write the plan as JSON (atomically)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(plan_to_dict(plan), indent=2), encoding="utf-8")
    os.replace(tmp, p)
    return p


#: Columns of the shot list written beside a plan (the shared batch format's keys).
SHOTLIST_KEYS = ("name", "input", "output", "frames", "emotion", "intensity", "reference", "face", "regions",
                 "speech", "keys", "consent", "ignore_cuts")


def write_shotlist(plan: Plan, path: str | os.PathLike) -> Path:
    """The plan as a shot list for ``ned-fx batch`` / ``ned-fx farm submit`` (re-run or send to the farm).

    Uses ``ned_fx.batch.shotlist.write_to_file`` when that module is importable here (YAML, OTIO…); otherwise
    writes the format's CSV form itself (one row per shot, the keys as columns).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"name": s.name, "input": s.input, "output": s.output, "frames": s.frames, "consent": s.consent,
             **{k: v for k, v in s.params.items() if k in SHOTLIST_KEYS}} for s in plan.shots]
    if p.suffix.lower() != ".csv":
        try:
            from ..batch import shotlist as sl

            shots = tuple(sl.Shot(**{k: v for k, v in row.items() if v not in (None, "")}) for row in rows)
            sl.write_to_file(sl.ShotList(shots=shots), p)
            return p
        except Exception:           # not built yet, or another Python without its dependencies: CSV
            p = p.with_suffix(".csv")
    tmp = p.with_name(f".{p.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(SHOTLIST_KEYS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in SHOTLIST_KEYS})
    os.replace(tmp, p)
    return p


def default_python(root: str | os.PathLike | None = None) -> str:
    """The Python that runs the edits: ``$NED_FX_PYTHON``, else ``ROOT/.venv/bin/python`` (Windows:
    ``Scripts/python.exe``) of the ned_fx checkout, else this Python."""
    env = os.environ.get("NED_FX_PYTHON")
    if env:
        return env
    root = Path(root) if root else Path(__file__).resolve().parents[2]
    for cand in (root / ".venv" / "bin" / "python", root / ".venv" / "Scripts" / "python.exe"):
        if cand.is_file():
            return str(cand)
    return sys.executable


def run_plan(plan_path: str | os.PathLike, python: str, on_event: Callable[[dict], None] | None = None,
             endpoint: str | None = None, via: str = "auto", start_daemon: bool = False,
             cwd: str | os.PathLike | None = None) -> list[dict]:
    """Run a written plan with ``python -m ned_fx.hosts.runner`` and follow its JSON-lines report.

    Args:
        plan_path: the plan JSON; python: the venv's interpreter; via, start_daemon: see :class:`ResolveConfig`;
            on_event: called with each event
            (``{"event": "shot" | "progress" | "frame" | "result" | "done", …}``).

    Returns:
        the ``result`` events, one per shot (``ok``, ``output``, ``first``, ``last``, ``error``…).

    Raises:
        RunnerError: the interpreter could not start, or it ended without a final report (its last output is
        quoted).
    """
    root = Path(__file__).resolve().parents[2]
    cmd = ([python, "-m", "ned_fx.hosts.runner", str(plan_path), "--via", via]
           + (["--endpoint", endpoint] if endpoint else []) + (["--start-daemon"] if start_daemon else []))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=str(cwd or root), env=env)
    except OSError as exc:
        raise RunnerError(f"cannot start {python}: {exc.strerror}; set 'python' in the config to the Python of "
                          f"the ned_fx install (e.g. /path/to/ned_fx/.venv/bin/python)") from None
    results, done, tail = [], False, []
    assert proc.stdout is not None and proc.stderr is not None
    err_chunks: list[str] = []
    # stderr is drained by its own thread: a runner that writes more than a pipe holds to stderr (warnings, a
    # chatty library) would otherwise block, while this loop waits on stdout — a deadlock
    drain = threading.Thread(target=lambda: err_chunks.extend(iter(lambda: proc.stderr.read(8192), "")),
                             name="ned-fx-runner-stderr", daemon=True)
    drain.start()
    for line in proc.stdout:
        line = line.strip()
        if not line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            tail.append(line)
            continue
        if not isinstance(event, dict):
            continue
        if event.get("event") == "result":
            results.append(event)
        if event.get("event") == "done":
            done = True
        if on_event:
            on_event(event)
    proc.wait()
    drain.join()
    err = "".join(err_chunks)
    if not done:
        raise RunnerError(f"the edit runner stopped (exit {proc.returncode}) without finishing: "
                          f"{(err or ' '.join(tail))[-800:].strip()}")
    return results
