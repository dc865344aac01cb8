"""The daemon's parameters as data a host builds its UI from, and host values back into an ``open`` request.

The daemon's ``describe`` lists OFX-style descriptors (``{"name", "kind", "label", "hint", "options", "min",
"max", "default"}``). :func:`knob_specs` turns them into frozen :class:`KnobSpec` records — one per control a
host shows — skipping (with a warning) any kind it does not know; a host maps each spec's ``kind`` to one
control type of its own (a Nuke knob class, a Fusion UIManager widget). :func:`open_params` goes the other way:
the host's values, checked against the specs by name and kind (never ``setattr``), become the parameters of
``Client.open``. :func:`keys_from_samples` turns an animated intensity into the daemon's keyframe syntax.

Standard library only: this module also loads inside Resolve's Python, which may have no numpy.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import InvalidParameterError

#: Descriptor kinds a host knows how to show. ``file`` is a string holding a path.
KINDS = ("choice", "double", "integer", "boolean", "string", "file")
#: Parameters the host applies itself (never sent to the daemon).
HOST_SIDE = ("mix",)
#: Parameters of ``open`` beside the edit instruction.
OPEN_PARAMS = ("face",)
#: The emotion choice gains this option when the descriptors include a ``reference`` file: the reference's own
#: expression (the daemon's ``emotion="reference"``).
REFERENCE_OPTION = "reference"
#: The longest keyframe string :func:`keys_from_samples` produces (the daemon's header limit is 64 KiB).
MAX_KEYS_CHARS = 48 * 1024

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")

#: What a version-1 daemon's ``describe`` lists; hosts use it to build their controls while no daemon answers
#: (``tests/test_hosts.py`` checks it against a real daemon, so drift is caught).
FALLBACK_PARAMETERS: tuple[dict, ...] = (
    {"name": "emotion", "kind": "choice", "label": "Emotion", "default": "happy",
     "options": ["neutral", "happy", "sad", "surprised", "fearful", "angry", "disgusted"],
     "hint": "the expression to give the actor (blends: happy:0.7,surprised:0.3 as free text)"},
    {"name": "intensity", "kind": "double", "label": "Intensity", "min": 0.0, "max": 1.5, "default": 1.0,
     "hint": "0 no change, 1 full, above 1 exaggerated"},
    {"name": "regions", "kind": "string", "label": "Regions", "default": None,
     "hint": "comma list of brows, eyes, cheeks, nose, corners, lips, jaw (e.g. all,-mouth)"},
    {"name": "speech", "kind": "choice", "label": "Speech", "options": ["auto", "preserve", "free"],
     "default": "auto", "hint": "keep the lips' speech motion"},
    {"name": "renderer", "kind": "choice", "label": "Renderer", "options": ["geometry", "neural"],
     "default": "geometry", "hint": "geometry warp, or the actor's neural renderer (needs a checkpoint)"},
    {"name": "checkpoint", "kind": "file", "label": "Checkpoint", "default": None,
     "hint": "the actor's neural renderer (ned-fx train-renderer)"},
    {"name": "face", "kind": "integer", "label": "Face", "min": 0, "max": None, "default": None,
     "hint": "face id in multi-face shots (default the main face)"},
    {"name": "neutral_frame", "kind": "integer", "label": "Neutral frame", "min": None, "max": None,
     "default": None, "hint": "a frame where the actor is neutral"},
    {"name": "reference", "kind": "file", "label": "Reference", "default": None,
     "hint": "image or clip whose expression is transferred"},
    {"name": "actor_footage", "kind": "file", "label": "Actor footage", "default": None,
     "hint": "more footage of the same actor (mouth interiors, eyes); a list of paths on the wire"},
    {"name": "holdout_matte", "kind": "file", "label": "Holdout matte", "default": None,
     "hint": "still or sequence: 1 keeps the plate (glasses, hands, hair)"},
    {"name": "shutter_angle", "kind": "double", "label": "Shutter angle", "min": 0.0, "max": 360.0, "default": 180.0,
     "hint": "the camera's shutter (degrees): drawn folds take the plate's motion blur; 0 draws them sharp"},
    {"name": "ignore_cuts", "kind": "boolean", "label": "Ignore cuts", "default": False,
     "hint": "track the frames as one shot where a cut is found (a flash or a whip pan taken for one); off: a range "
             "holding a cut fails, naming each shot's frames"},
    {"name": "keys", "kind": "string", "label": "Keys", "default": None,
     "hint": "keyframes FRAME:EMOTION[:INTENSITY],…"},
    {"name": "mix", "kind": "double", "label": "Mix", "min": 0.0, "max": 1.0, "default": 1.0,
     "hint": "host-side mix of the edited plate over the source"},
)


@dataclass(frozen=True)
class KnobSpec:
    """One control a host shows for a daemon parameter.

    Attributes:
        name: the parameter's wire name; kind: one of :data:`KINDS`; label, hint: for the UI.
        options: the choices of a ``choice``; minimum, maximum: the range of a number (None: open).
        default: the value a fresh control holds (None: unset).
        animatable: the host may animate it over frames (numbers: ``double``).
        optional: an ``integer`` whose default is unset: the host pairs it with an on/off toggle.
        host_side: applied by the host itself (e.g. ``mix``), never sent to the daemon.
    """

    name: str
    kind: str
    label: str
    hint: str = ""
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    default: Any = None
    animatable: bool = False
    optional: bool = False
    host_side: bool = False


def knob_specs(descriptors: Iterable[Any] | None = None,
               warn: Callable[[str], None] | None = None) -> tuple[KnobSpec, ...]:
    """Knob specs from ``describe()["parameters"]`` (default :data:`FALLBACK_PARAMETERS`).

    A descriptor of an unknown kind, or a malformed one, is skipped and reported through ``warn``; nothing of
    a descriptor is used except the documented keys.

    Returns:
        the specs, in the daemon's order.
    """
    warn = warn or (lambda message: None)
    descriptors = list(FALLBACK_PARAMETERS if descriptors is None else descriptors)
    specs: list[KnobSpec] = []
    seen: set[str] = set()
    for d in descriptors:
        if not isinstance(d, Mapping) or not isinstance(d.get("name"), str) or not _NAME.match(d["name"]):
            warn(f"skipped a malformed parameter descriptor {str(d)[:80]!r}")
            continue
        name, kind = d["name"], d.get("kind")
        if kind not in KINDS:
            warn(f"skipped parameter {name!r}: kind {str(kind)[:20]!r} is not one this host shows "
                 f"({', '.join(KINDS)}); update the bridge")
            continue
        if name in seen:
            warn(f"skipped a second parameter named {name!r}")
            continue
        try:
            spec = _spec(d, name, kind)
        except (TypeError, ValueError) as exc:
            warn(f"skipped parameter {name!r}: {exc}")
            continue
        seen.add(name)
        specs.append(spec)
    if "reference" in seen:
        specs = [s if not (s.name == "emotion" and s.kind == "choice" and REFERENCE_OPTION not in s.options)
                 else _replace(s, options=s.options + (REFERENCE_OPTION,)) for s in specs]
    return tuple(specs)


def _replace(spec: KnobSpec, **changes) -> KnobSpec:
    from dataclasses import replace

    return replace(spec, **changes)


def _number(value, what: str, integer: bool) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a number")
    return int(value) if integer else float(value)


def _spec(d: Mapping, name: str, kind: str) -> KnobSpec:
    label = str(d.get("label") or name)[:80]
    hint = str(d.get("hint") or "")[:400]
    if kind == "choice":
        options = d.get("options")
        if not isinstance(options, (list, tuple)) or not options or not all(isinstance(o, str) for o in options):
            raise ValueError("a choice needs a non-empty list of string options")
        default = d.get("default")
        default = default if default in options else options[0]
        return KnobSpec(name, kind, label, hint, options=tuple(options), default=default)
    if kind in ("double", "integer"):
        integer = kind == "integer"
        lo, hi = _number(d.get("min"), "min", integer), _number(d.get("max"), "max", integer)
        default = _number(d.get("default"), "default", integer)
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min {lo} > max {hi}")
        return KnobSpec(name, kind, label, hint, minimum=lo, maximum=hi, default=default,
                        animatable=not integer, optional=default is None, host_side=name in HOST_SIDE)
    if kind == "boolean":
        return KnobSpec(name, kind, label, hint, default=bool(d.get("default")))
    default = d.get("default")
    return KnobSpec(name, kind, label, hint, default=default if isinstance(default, str) else None)


def open_params(specs: Sequence[KnobSpec], values: Mapping[str, Any]) -> dict:
    """The ``Client.open`` parameters for the host's control values.

    Args:
        specs: the knob specs; values: ``name -> value`` as the host holds them (numbers, strings, None for
            an unset optional). Empty strings mean unset. Host-side parameters are left out.

    Returns:
        ``{name: value}`` of the set parameters (``face`` included: ``open`` takes it beside the instruction).

    Raises:
        InvalidParameterError: an unknown name (the valid ones are listed), a value of the wrong kind, out of
        range, or not one of a choice's options.
    """
    by_name = {s.name: s for s in specs}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise InvalidParameterError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; valid: "
                                    f"{', '.join(by_name)}")
    out: dict[str, Any] = {}
    for name, value in values.items():
        spec = by_name[name]
        if spec.host_side or value is None or (isinstance(value, str) and not value.strip()):
            continue
        out[name] = check_value(spec, value)
    return out


def check_value(spec: KnobSpec, value: Any) -> Any:
    """``value`` checked and converted for ``spec`` (see :func:`open_params`)."""
    what = f"{spec.label} ({spec.name})"
    if spec.kind == "choice":
        if value not in spec.options:
            raise InvalidParameterError(f"{what} is {value!r}; valid: {', '.join(spec.options)}")
        return str(value)
    if spec.kind in ("double", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidParameterError(f"{what} must be a number, got {value!r}")
        if spec.kind == "integer":
            if float(value) != int(value):
                raise InvalidParameterError(f"{what} must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if (spec.minimum is not None and value < spec.minimum) or (spec.maximum is not None and value > spec.maximum):
            lo = "-inf" if spec.minimum is None else f"{spec.minimum:g}"
            hi = "inf" if spec.maximum is None else f"{spec.maximum:g}"
            raise InvalidParameterError(f"{what} must be between {lo} and {hi}, got {value:g}")
        return value
    if spec.kind == "boolean":
        if not isinstance(value, bool):
            raise InvalidParameterError(f"{what} must be true or false, got {value!r}")
        return value
    if not isinstance(value, str):
        raise InvalidParameterError(f"{what} must be text, got {type(value).__name__}")
    return value.strip()


# ---- animated intensity -> keyframes ------------------------------------------------------------------------------

def blend_for_keys(emotion: str) -> str:
    """An emotion or blend in the syntax a keyframe takes (``happy:0.7,surprised:0.3`` ->
    ``happy*0.7+surprised*0.3``; a plain name stays as it is)."""
    parts = [p.strip() for p in str(emotion).replace("+", ",").split(",") if p.strip()]
    if not parts:
        raise InvalidParameterError("an animated intensity needs an emotion (or a reference) to key")
    out = []
    for part in parts:
        sep = "*" if "*" in part else ":"
        name, _, weight = part.partition(sep)
        out.append(f"{name.strip()}*{weight.strip()}" if weight.strip() else name.strip())
    return "+".join(out)


def _smoothstep(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


def keys_from_samples(frames: Sequence[int], intensities: Sequence[float], emotion: str,
                      tolerance: float = 0.002) -> str:
    """The daemon's keyframe string (``FRAME:BLEND:INTENSITY,…``) reproducing a per-frame intensity.

    The daemon eases between keys with a smoothstep; keys are kept only where that easing would miss a sample by
    more than ``tolerance`` (a constant stretch costs two keys, a linear ramp a handful). If the string would be
    longer than :data:`MAX_KEYS_CHARS`, the tolerance doubles until it fits.

    Args:
        frames: the shot's frame numbers (ascending); intensities: the host's value at each of them;
        emotion: the emotion or blend every key uses.

    Raises:
        InvalidParameterError: no frames, lengths differ, or frames not ascending.
    """
    f = [int(x) for x in frames]
    v = [round(float(x), 4) for x in intensities]
    if not f or len(f) != len(v):
        raise InvalidParameterError("keys need one intensity per frame, and at least one frame")
    if any(b <= a for a, b in zip(f, f[1:])):
        raise InvalidParameterError("the frames of an animated intensity must be ascending")
    blend = blend_for_keys(emotion)
    while True:
        kept = _reduce(f, v, tolerance)
        text = ",".join(f"{f[i]}:{blend}:{v[i]:g}" for i in kept)
        if len(text) <= MAX_KEYS_CHARS:
            return text
        tolerance *= 2


def _reduce(f: list[int], v: list[float], tol: float) -> list[int]:
    kept = [0]
    i = 0
    n = len(f)
    while i < n - 1:
        j = i + 1
        # extend the segment i..j while easing from key i to key j reproduces every sample between them
        while j + 1 < n and _fits(f, v, i, j + 1, tol):
            j += 1
        kept.append(j)
        i = j
    return kept


def _fits(f, v, i, j, tol) -> bool:
    span = f[j] - f[i]
    for k in range(i + 1, j):
        u = _smoothstep((f[k] - f[i]) / span)
        if abs(v[i] + (v[j] - v[i]) * u - v[k]) > tol:
            return False
    return True


def evaluate_keys(keys: str, frames: Sequence[int]) -> list[float]:
    """The intensity the daemon's keyframe easing gives at each of ``frames`` (smoothstep between keys, held
    outside) — the inverse check of :func:`keys_from_samples`."""
    pts = []
    for item in keys.split(","):
        fields = item.split(":")
        pts.append((int(fields[0]), float(fields[2]) if len(fields) == 3 else 1.0))
    pts.sort()
    out = []
    for x in frames:
        if x <= pts[0][0]:
            out.append(pts[0][1])
            continue
        if x >= pts[-1][0]:
            out.append(pts[-1][1])
            continue
        for (a, va), (b, vb) in zip(pts, pts[1:]):
            if a <= x <= b:
                out.append(va + (vb - va) * _smoothstep((x - a) / (b - a)))
                break
    return out
