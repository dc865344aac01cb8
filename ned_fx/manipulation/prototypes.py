"""Emotions as AU prototypes (EMFACS), blends of them, and how an instruction changes over a shot (keyframes
with ease in/out, or a per-frame intensity curve).

A prototype is the AU pattern of a strong but natural expression at intensity 1; intensity scales it (up to
``ManipulatorConfig.max_intensity`` for exaggeration). Prototypes may hold speech channels (surprise opens the
jaw); the manipulator decides per shot whether those may be added (see its speech rule).

Instruction syntax (the CLI's, also accepted by the functions here):

* emotion blend: ``happy``, ``happy:0.7,surprised:0.3`` or ``happy*0.7+surprised*0.3`` (weights normalised to
  sum 1); ``reference`` names the reference's style when one is given.
* keyframes: ``FRAME:BLEND[:INTENSITY]`` separated by commas, e.g. ``1001:happy:0.0,1020:happy:1.0,1080:sad:0.6``
  (a blend inside a key uses ``+`` and ``*``); smoothstep ease in/out between keys, held before the first and
  after the last.
* intensity curve file: CSV (``frame,intensity`` rows, optional header) or JSON (``{"1001": 0.5, ...}``, a list of
  ``[frame, intensity]`` pairs or of ``{"frame": ..., "intensity": ...}``); linear between given frames, held
  outside.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import InputNotFoundError, InvalidParameterError, UnreadableMediaError
from .expression import AU_NAMES

EMOTIONS = ("neutral", "happy", "sad", "surprised", "fearful", "angry", "disgusted")
#: The name a blend uses for the reference's style.
REFERENCE = "reference"
#: Accepted spellings -> the canonical class.
ALIASES = {"happiness": "happy", "joy": "happy", "sadness": "sad", "surprise": "surprised", "fear": "fearful",
           "afraid": "fearful", "anger": "angry", "disgust": "disgusted", "calm": "neutral"}

#: EMFACS prototypes (AU -> activation at intensity 1: a clear, natural, symmetric expression; 1.5 is strong).
#: The jaw/lips-part parts are speech channels (added only where the speech rule allows).
#:
#: * happy 6+12: the corners pulled up and out, the cheeks lifted; the lower lid rises by a share of the eye's own
#:   opening (a moderate squint: at 1 about 3/4 of the opening is kept, at 1.5 about 2/3), the upper lid stays.
#:   On a talking shot the smile parts every syllable a little wider (``ManipulatorConfig.smile_lip_gain``).
#: * sad 1+4+15+20 with drooping upper lids (AU41, here a negative upper lid raiser: the lids sink by about a
#:   third of their opening; heavy lids are what reads sad on a talker whose mouth keeps moving) and the inner
#:   brows raised hard (AU1 1.6): on a grinning talker behind glasses (d12) that is what an independent
#:   classifier reads as sad (1.2/0.6/-0.3/0.8: +0.08; now +0.14 over his first 60 frames, +0.17 on 12 of
#:   them; the frames where he grins up at the ceiling, 33-52, stay near +0.05). The lids' negative value also
#:   takes away the actor's slower swings of the lid raise (the engine's rule for an AU a style pushes below
#:   rest: eyes thrown wide while he looks up no longer undo the heavy lids; +0.007). The brow lowerer stays
#:   moderate (at 1.0 MediaPipe read d12's inner brows as lowered, not raised) and the corners' pull is held at
#:   0.9 (at 1.1 WDA's re-tracked mouth opening followed the source at r 0.946). Tried on d12's 60 frames and
#:   dropped, each for another floor: the outer brows lowered (AU2 -0.6, the oblique brow of grief: +0.16, but
#:   MediaPipe then reads d12's inner brows 0.019 IOD lower, -0.3: 0.009); the corners drawn in against the
#:   grin (AU12 -0.3: +0.16, WDA's mouth r 0.933 on the whole clip); the chin raiser (AU17 0.3 with it: +0.17,
#:   WDA 0.925; alone +0.15); deeper lids (AU5 -0.7: +0.145). The lips stretched sideways (AU20 0.4, the
#:   sobbing mouth of distress: 1+4+15+20) with the corners' pull eased to 0.7: the grin's teeth then sit in a
#:   wide, flat, down-turned mouth and d12's 60 frames read +0.160 (his grinning frames 36-48: +0.035 -> +0.045;
#:   WDA +0.37 -> +0.50, d3 +0.35 -> +0.48), WDA's whole-clip opening r 0.955 -> 0.956, d12's 0.968 -> 0.967.
#:   Near it (d12 dP / WDA r): AU15 0.9 + AU20 0.3 +0.168 / 0.947; 0.8 + 0.3 +0.161 / 0.950; 0.7 + 0.3
#:   +0.154 / 0.959 (MediaPipe's re-tracked opening moves by ~0.005 between neighbours: not a trend).
#: * surprised 1+2+5+26 (+25, the lips part with the jaw); the inner brows at 1.1: since a shut eye keeps its
#:   lids (d3's winks, ``rendering/eyes/openness.py``), the widened eyes carry less of d3's first 60 frames, and the
#:   classifier's rise on 12 of them fell to +0.149 (AU1 1.0) -> +0.155 (WDA/d12 +0.387/+0.404). Tried: both brows 1.1 (+0.16, but a
#:   raised brow's fringe thickens past test_brows' floor); the jaw 0.65/0.7 (+0.156/+0.172, but the stills'
#:   re-tracked eye symmetry fell, people_0 0.86 -> 0.82, and at 0.7 the taller face region moved the occluder
#:   detector's forehead hair onto WDA's temple skin, test_occlusion); AU5 1.2 (+0.158).
#: * fearful 1+2+4+5+20+26 (+25).
#: * angry 4+7+10+23+24 (+15): brows down and drawn together hard, the lids tightened into a narrowed, hard stare,
#:   the lips pressed thin (AU23 0.8: at 1.0 WDA's re-tracked mouth opening followed the source at r 0.949) with
#:   the corners pulled down a little (AU15 0.4: the pressed mouth alone still read as a talker's resting smile). EMFACS's 4+5+7+23 was tried first: the upper lid raise (AU5, the glare) fought the
#:   tightening and the lowered brow (the manipulator's ``brow_lid_gap`` took most of it back) and an independent
#:   classifier read d12 +0.06 and d3 +0.05; 4+7 is EMFACS's own partial anger. The lids never shut: the
#:   manipulator keeps ``lid_opening_kept`` of each frame's opening (a downcast eye made slits that read as a
#:   wince), and the brows come down only as far as the lid skin beneath allows (``brow_lid_gap``) and never
#:   past the lid margin (``brow_margin_gap``): d3's brows had gone below it on a tenth of her frames, and held
#:   off it her anger read +0.13 (0.175 with the brows in her eyes); the upper lip raised a little (AU10 0.15,
#:   EMFACS's 4+5+7+10+23: a snarl's edge on the pressed mouth) brings it to +0.16 (the margin at 0.08, her first
#:   60 frames; WDA +0.45, d12 +0.18; the margin now 0.05: see ``brow_margin_gap``). 0.1:
#:   d3 +0.156; 0.2: +0.164, but WDA's re-tracked mouth opening followed the source at r 0.949 (the raised mouth
#:   reads less open); 0.3: +0.17; 0.4 with the margin at 0.15: +0.15, d12 +0.17. The raised upper lip thins the
#:   pressed red a little less (d12: by 23 % of its height, 29 % without it; WDA and people_0 as before).
#: * disgusted 9+10+15+16: the nose wrinkles, raising the nostril wings and the upper lip, the corners and the
#:   lower lip go down. On a talker (the gap kept) the upper lip rises as one piece and the lower lip follows it up,
#:   as a chin raiser pushes it. How far the whole mouth rises is what MediaPipe's re-tracked opening loses (not the
#:   plan: its gap is the source's exactly; the re-tracker reads a raised mouth's gap with an error of ~0.017 IOD
#:   a frame, 0.009 for an edit that leaves the mouth where it was). WDA's whole-clip opening r by (AU10, AU9):
#:   (0.8, 1.0) 0.942 (upper lip +6.2-6.7 % IOD), (0.5, 1.0) 0.952, (0.4, 1.0) 0.955, (0.6, 0.6) 0.956,
#:   (0.4, 0.8) 0.960, (0, 1.0) 0.963. The nose wrinkle is what reads as disgust and costs least: AU9 stays 1.0,
#:   AU10 is 0.4 (upper lip +3.6-4.3 % IOD, nostril wings +6.4-7.0 %; d12 0.980).
PROTOTYPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"AU6": 1.0, "AU12": 1.0},
    "sad": {"AU1": 1.6, "AU4": 0.8, "AU5": -0.5, "AU15": 0.7, "AU20": 0.4},
    "surprised": {"AU1": 1.1, "AU2": 1.0, "AU5": 1.0, "AU25": 0.4, "AU26": 0.6},
    "fearful": {"AU1": 1.15, "AU2": 0.6, "AU4": 0.7, "AU5": 1.0, "AU20": 0.8, "AU25": 0.4, "AU26": 0.3},
    "angry": {"AU4": 1.4, "AU7": 1.5, "AU10": 0.15, "AU15": 0.4, "AU23": 0.8, "AU24": 0.5},
    "disgusted": {"AU9": 1.0, "AU10": 0.4, "AU15": 0.5, "AU16": 0.5},
}


def canonical_emotion(name: str, allow_reference: bool = False) -> str:
    """The canonical class of an emotion name (case-insensitive; aliases accepted).

    Raises:
        InvalidParameterError: unknown name; the message lists the valid ones.
    """
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key in EMOTIONS or (allow_reference and key == REFERENCE):
        return key
    valid = ", ".join(EMOTIONS + ((REFERENCE,) if allow_reference else ()))
    hint = "" if allow_reference or key != REFERENCE else " (\"reference\" needs a reference image or clip)"
    raise InvalidParameterError(f"unknown emotion {name!r}{hint}; valid emotions: {valid}")


def prototype(name: str) -> np.ndarray:
    """The K-vector (``AU_NAMES`` order) of an emotion's prototype at intensity 1."""
    vec = np.zeros(len(AU_NAMES))
    for au, value in PROTOTYPES[canonical_emotion(name)].items():
        vec[AU_NAMES.index(au)] = value
    return vec


def check_intensity(value: float, max_intensity: float = 1.5, what: str = "intensity") -> float:
    """A finite intensity in ``0 .. max_intensity``.

    Raises:
        InvalidParameterError: not a number, or out of range.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{what} must be a number, got {value!r}") from None
    if not np.isfinite(v) or not 0.0 <= v <= max_intensity:
        raise InvalidParameterError(f"{what} must be between 0 and {max_intensity:g} (1 = full emotion, above 1 "
                                    f"exaggerates), got {value}")
    return v


def parse_blend(spec: str | Mapping[str, float], allow_reference: bool = False) -> dict[str, float]:
    """An emotion blend -> {canonical emotion: weight}, weights normalised to sum 1.

    Args:
        spec: ``"happy"``, ``"happy:0.7,surprised:0.3"``, ``"happy*0.7+surprised*0.3"`` or a mapping.
        allow_reference: ``reference`` is a valid name (a reference style was given).

    Raises:
        InvalidParameterError: unknown emotion (listing the valid ones), negative or all-zero weights.
    """
    if isinstance(spec, Mapping):
        items = list(spec.items())
    else:
        text = str(spec).strip()
        if not text:
            raise InvalidParameterError(f"empty emotion; valid emotions: {', '.join(EMOTIONS)}")
        parts = [p for p in text.replace("+", ",").split(",") if p.strip()]
        items = []
        for part in parts:
            sep = "*" if "*" in part else ":"
            name, _, weight = part.partition(sep)
            items.append((name, weight.strip() or "1"))
    blend: dict[str, float] = {}
    for name, weight in items:
        emo = canonical_emotion(name, allow_reference)
        try:
            w = float(weight)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"blend weight of {name!r} must be a number, got {weight!r}") from None
        if not np.isfinite(w) or w < 0:
            raise InvalidParameterError(f"blend weight of {name!r} must be >= 0, got {weight}")
        blend[emo] = blend.get(emo, 0.0) + w
    total = sum(blend.values())
    if total <= 0:
        raise InvalidParameterError(f"blend weights of {spec!r} are all zero")
    return {k: v / total for k, v in blend.items()}


def blend_style(blend: Mapping[str, float], reference: np.ndarray | None = None) -> np.ndarray:
    """The K-vector of a normalised blend (``reference`` = the reference's style vector, if any)."""
    vec = np.zeros(len(AU_NAMES))
    for name, w in blend.items():
        if name == REFERENCE:
            if reference is None:
                raise InvalidParameterError("the emotion \"reference\" needs a reference image or clip")
            vec += w * np.asarray(reference, np.float64)
        else:
            vec += w * prototype(name)
    return vec


def describe_blend(blend: Mapping[str, float]) -> str:
    """``{"happy": 0.7, "surprised": 0.3}`` -> ``"happy*0.7+surprised*0.3"`` (``"happy"`` for a single one)."""
    if len(blend) == 1:
        return next(iter(blend))
    return "+".join(f"{k}*{v:.3g}" for k, v in blend.items())


@dataclass(frozen=True)
class Keyframe:
    """One key of an animated instruction: at frame number ``frame``, ``blend`` at ``intensity``."""

    frame: int
    blend: tuple[tuple[str, float], ...]
    intensity: float


def parse_keys(spec: str, default_intensity: float = 1.0, max_intensity: float = 1.5,
               allow_reference: bool = False) -> tuple[Keyframe, ...]:
    """``"1001:happy:0.0,1020:happy:1.0,1080:sad+surprised*0.5:0.6"`` -> sorted keyframes.

    Raises:
        InvalidParameterError: malformed key, unknown emotion, intensity out of range, duplicate frame.
    """
    keys = []
    for item in [s for s in str(spec).split(",") if s.strip()]:
        fields = item.strip().split(":")
        if len(fields) not in (2, 3):
            raise InvalidParameterError(f"keyframe {item!r} is not FRAME:EMOTION[:INTENSITY]")
        try:
            frame = int(fields[0])
        except ValueError:
            raise InvalidParameterError(f"keyframe {item!r}: frame {fields[0]!r} is not an integer") from None
        blend = parse_blend(fields[1], allow_reference)
        intensity = check_intensity(fields[2] if len(fields) == 3 else default_intensity, max_intensity,
                                    f"intensity of keyframe {item!r}")
        keys.append(Keyframe(frame, tuple(blend.items()), intensity))
    if not keys:
        raise InvalidParameterError("no keyframes given (FRAME:EMOTION[:INTENSITY],...)")
    keys.sort(key=lambda k: k.frame)
    frames = [k.frame for k in keys]
    if len(set(frames)) != len(frames):
        raise InvalidParameterError(f"two keyframes on one frame in {spec!r}")
    return tuple(keys)


def smoothstep(u: np.ndarray) -> np.ndarray:
    """Ease in/out on 0..1 (``3u² - 2u³``), clamped."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def evaluate_keys(keys: tuple[Keyframe, ...], frame_numbers: np.ndarray,
                  reference: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame target style and intensity of a keyframed instruction.

    The scaled pattern (intensity x style) and the intensity are eased between keys, so a change of emotion is a
    smooth cross-fade and a change of intensity a smooth ramp.

    Args:
        keys: sorted keyframes; frame_numbers: F frame numbers of the shot; reference: K style vector of the
        reference, if any.

    Returns:
        ``(pattern FxK, intensity F)``: pattern = intensity x style (the AU pattern the edit aims at).
    """
    f = np.asarray(frame_numbers, np.float64)
    pats = np.stack([k.intensity * blend_style(dict(k.blend), reference) for k in keys])
    ints = np.array([k.intensity for k in keys])
    kf = np.array([k.frame for k in keys], np.float64)
    j = np.clip(np.searchsorted(kf, f, side="right") - 1, 0, len(keys) - 1)
    j1 = np.minimum(j + 1, len(keys) - 1)
    span = np.where(j1 > j, kf[j1] - kf[j], 1.0)
    u = smoothstep(np.where(j1 > j, (f - kf[j]) / span, 0.0))
    u = np.where(f < kf[0], 0.0, u)
    pattern = (1 - u)[:, None] * pats[j] + u[:, None] * pats[j1]
    intensity = (1 - u) * ints[j] + u * ints[j1]
    return pattern, intensity


def read_curve(path: str | Path, max_intensity: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Read a per-frame intensity curve (CSV or JSON, see the module docstring).

    Returns:
        ``(frames, intensities)`` sorted by frame.

    Raises:
        InputNotFoundError: no such file. UnreadableMediaError: not a curve file.
        InvalidParameterError: an intensity out of range.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"intensity curve not found: {path}")
    text = path.read_text(encoding="utf-8", errors="replace")
    pairs: list[tuple[float, float]] = []
    try:
        if path.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
            data = json.loads(text)
            if isinstance(data, dict):
                pairs = [(float(k), float(v)) for k, v in data.items()]
            else:
                for row in data:
                    if isinstance(row, dict):
                        pairs.append((float(row["frame"]), float(row["intensity"])))
                    else:
                        pairs.append((float(row[0]), float(row[1])))
        else:
            for n, line in enumerate(text.splitlines()):
                cells = [c.strip() for c in line.replace(";", ",").split(",")]
                if not cells or not cells[0] or cells[0].startswith("#"):
                    continue
                try:
                    pairs.append((float(cells[0]), float(cells[1])))
                except (ValueError, IndexError):
                    if n == 0 and pairs == []:
                        continue            # header
                    raise
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise UnreadableMediaError(f"{path} is not an intensity curve (frame,intensity rows or JSON): {exc}") from None
    if not pairs:
        raise UnreadableMediaError(f"{path} holds no frame,intensity pairs")
    pairs.sort()
    frames = np.array([p[0] for p in pairs])
    values = np.array([check_intensity(p[1], max_intensity, f"intensity at frame {p[0]:g} of {path.name}")
                       for p in pairs])
    return frames, values


def curve_on_frames(frames: np.ndarray, values: np.ndarray, frame_numbers: np.ndarray) -> np.ndarray:
    """A curve's intensity at each frame number (linear between given frames, held outside)."""
    return np.interp(np.asarray(frame_numbers, np.float64), np.asarray(frames, np.float64),
                     np.asarray(values, np.float64))
