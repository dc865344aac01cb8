"""The edit record: what an output of ned_fx says about the edit that made it (schema ``ned_fx.edit/1``).

A record is small and flat (strings, numbers, booleans, null) so every format can carry it: an EXR string
attribute, a PNG text chunk, a TIFF/JPEG XMP packet, a movie container tag, a C2PA assertion. It says that the
facial expression was edited, in a sentence a person reads (``summary``) and field by field for machines: the
tool and version, the edit parameters, the face, the renderer, the source file (its name, not its folder:
delivered files leave the studio) and frame, the source's SHA-256, the time (UTC) and the consent reference.

    record = build_record("plates/sh040.####.exr", {"emotion": "happy", "intensity": 0.8}, face_id=0,
                          consent="REL-2231")
    frame_record = record.for_frame(1042, source_sha256=file_sha256("plates/sh040.1042.exr"))
    write_image(path, frame, provenance=frame_record)
"""

from __future__ import annotations

import dataclasses
import datetime
import getpass
import hashlib
import json
import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from .errors import ProvenanceError

#: The schema family and the version this module writes.
SCHEMA_NAME = "ned_fx.edit"
SCHEMA_VERSION = 1
SCHEMA = f"{SCHEMA_NAME}/{SCHEMA_VERSION}"
#: IPTC digital source type the record declares (also in XMP and in the C2PA ``c2pa.edited`` action): the edit
#: is driven by trained models (tracker, expression model) and composited into captured footage.
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
#: The renderers a record may name (``identity``: the daemon's test engine, frames unchanged).
RENDERERS = ("geometry", "neural", "identity")
#: Kinds of output: a still (or one frame of a sequence) or a movie.
KINDS = ("image", "video")
#: Longest text field accepted (consent references, file names, keys …): records stay small.
MAX_TEXT = 2000

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class EditRecord:
    """What an output says about its edit. Every field is a string, number, boolean or None (see the module doc).

    Attributes:
        schema: ``ned_fx.edit/1``; tool, version: ``ned_fx`` and its version.
        edited: True when this output's face was changed; False for a frame the edit passed through unchanged
            (``passed_through`` says why: ``no face``, ``no change at this frame`` …).
        summary: the sentence a person reads ("The facial expression in this image was edited with ned_fx …").
        kind: ``image`` or ``video``.
        emotion, intensity, reference, reference_sha256, keys, curve, curve_sha256, regions, speech,
        neutral_frame: the edit instruction (files by name and SHA-256).
        face_id: the edited face; renderer: ``geometry`` (or ``neural``, ``identity``).
        source: the source's file name (or sequence pattern's name); source_frame: its frame number (None for a
        movie, which covers ``frames``); source_sha256: SHA-256 of the source file (a sequence: that frame's file).
        frames: the shot's frame range (``"1001-1100"``).
        time: UTC ISO 8601 time of the edit; consent: the performer's consent reference (free text or id).
        user, host, application: who ran the edit.
        yuv_conversion: a movie source's YUV to RGB conversion (``exact`` or ``ffmpeg``); None for images.
        layer: what the output holds: ``full`` (the whole frame) or ``patch`` (the edited region with
            premultiplied alpha over transparent black); None: full (records from before layers).
    """

    schema: str = SCHEMA
    tool: str = "ned_fx"
    version: str = ""
    edited: bool = True
    summary: str = ""
    kind: str = "image"
    emotion: str | None = None
    intensity: float | None = None
    reference: str | None = None
    reference_sha256: str | None = None
    keys: str | None = None
    curve: str | None = None
    curve_sha256: str | None = None
    regions: str | None = None
    speech: str | None = None
    neutral_frame: int | None = None
    face_id: int | None = None
    renderer: str = "geometry"
    source: str | None = None
    source_frame: int | None = None
    source_sha256: str | None = None
    frames: str | None = None
    passed_through: str | None = None
    time: str = ""
    consent: str | None = None
    user: str | None = None
    host: str | None = None
    application: str | None = None
    yuv_conversion: str | None = None
    layer: str | None = None

    # -- conversions -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The record as a flat dict (None fields left out; ``schema`` first)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}

    def to_json(self) -> str:
        """Compact, ASCII-only JSON (safe in every container, stable key order)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EditRecord":
        """A record from :meth:`to_dict`'s form (or a newer minor form: unknown keys are ignored).

        Raises:
            ProvenanceError: not a mapping, another schema family or a newer major version, or a field of the
                wrong type (the field is named).
        """
        if not isinstance(data, Mapping):
            raise ProvenanceError(f"a provenance record must be a JSON object, got {type(data).__name__}")
        schema = data.get("schema")
        if not isinstance(schema, str) or not schema.startswith(SCHEMA_NAME + "/"):
            raise ProvenanceError(f"not a ned_fx edit record (schema {schema!r}; expected {SCHEMA})")
        try:
            major = int(schema.split("/", 1)[1].split(".")[0])
        except ValueError:
            raise ProvenanceError(f"malformed schema version {schema!r}; expected {SCHEMA}") from None
        if major > SCHEMA_VERSION:
            raise ProvenanceError(f"record schema {schema} is newer than this ned_fx reads ({SCHEMA}); update ned_fx")
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in data or data[f.name] is None:
                continue
            values[f.name] = _checked(f.name, data[f.name], _TYPES[f.name])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> "EditRecord":
        """A record from :meth:`to_json`'s text.

        Raises:
            ProvenanceError: not JSON, or not a valid record.
        """
        if len(text) > 64 * MAX_TEXT:
            raise ProvenanceError(f"a provenance record of {len(text)} bytes is too large to be ours")
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProvenanceError(f"the provenance record is not valid JSON ({exc})") from None
        return cls.from_dict(data)

    # -- per output ---------------------------------------------------------------------------------------------
    def for_frame(self, number: int | None, source_sha256: str | None = None,
                  passed_through: str | None = None) -> "EditRecord":
        """This shot's record for one output frame: its source frame number (and that frame file's SHA-256 for a
        sequence), edited unless ``passed_through`` gives the reason it was left unchanged."""
        edited = passed_through is None
        rec = replace(self, source_frame=None if number is None else int(number),
                      source_sha256=source_sha256 or self.source_sha256, edited=edited,
                      passed_through=passed_through, kind="image")
        return replace(rec, summary=sentence(rec))


def _checked(name: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ProvenanceError(f"provenance field {name!r} must be {kind.__name__}, got {type(value).__name__}")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise ProvenanceError(f"provenance field {name!r} is longer than {MAX_TEXT} characters")
    return value


_TYPES: dict[str, type] = {"schema": str, "tool": str, "version": str, "edited": bool, "summary": str, "kind": str,
                           "emotion": str, "intensity": float, "reference": str, "reference_sha256": str,
                           "keys": str, "curve": str, "curve_sha256": str, "regions": str, "speech": str,
                           "neutral_frame": int, "face_id": int, "renderer": str, "source": str, "source_frame": int,
                           "source_sha256": str, "frames": str, "passed_through": str, "time": str, "consent": str,
                           "user": str, "host": str, "application": str, "yuv_conversion": str, "layer": str}


def sentence(record: EditRecord) -> str:
    """The sentence a person reads: what was edited, with which settings (and why a frame was left unchanged)."""
    what = "video" if record.kind == "video" else "image"
    bits = []
    if record.keys:
        bits.append(f"keyframes {record.keys}")
    elif record.reference and (not record.emotion or "reference" in record.emotion):
        bits.append(f"expression of the reference {record.reference}")
        if record.emotion and record.emotion != "reference":
            bits.append(f"blend {record.emotion}")
    elif record.emotion:
        bits.append(f"emotion {record.emotion}")
    if record.intensity is not None and not record.keys:
        bits.append(f"intensity {record.intensity:g}")
    if record.curve:
        bits.append(f"intensity curve {record.curve}")
    if record.regions:
        bits.append(f"regions {record.regions}")
    settings = f" ({', '.join(bits)})" if bits else ""
    tool = f"{record.tool} {record.version}".strip()
    if not record.edited:
        why = f": {record.passed_through}" if record.passed_through else ""
        return (f"This {what} is part of a facial-expression edit made with {tool}{settings}; this frame was "
                f"passed through unchanged{why}.")
    return f"The facial expression in this {what} was edited with {tool}{settings}."


# ---- building a record --------------------------------------------------------------------------------------------

def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks.

    Raises:
        InputNotFoundError: the file does not exist; UnreadableMediaError: it cannot be read.
    """
    from ..errors import InputNotFoundError, UnreadableMediaError

    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                h.update(chunk)
    except FileNotFoundError:
        raise InputNotFoundError(f"{path}: the file does not exist (cannot hash it)") from None
    except OSError as exc:
        raise UnreadableMediaError(f"{path}: cannot be read to hash it ({exc.strerror or exc})") from None
    return h.hexdigest()


def now_utc() -> str:
    """The current time, UTC, ISO 8601 with milliseconds and a ``Z`` (``2026-03-01T12:00:00.123Z``)."""
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def who() -> dict[str, str | None]:
    """This process's user and host (None where the system does not say)."""
    try:
        user = getpass.getuser()
    except Exception:       # no login name (containers without a passwd entry)
        user = None
    try:
        host = socket.gethostname() or None
    except OSError:
        host = None
    return {"user": user, "host": host}


def _is_file(path: str | None) -> bool:
    return bool(path) and Path(path).is_file()


def build_record(source: str | os.PathLike, instruction: Mapping[str, Any] | Any | None = None, *,
                 face_id: int | None = None, frames: str | None = None, renderer: str = "geometry",
                 kind: str = "image", consent: str | None = None, user: str | None = None,
                 host: str | None = None, application: str | None = None, hash_source: bool = True,
                 time: str | None = None) -> EditRecord:
    """The record of one shot's edit (the writers stamp it per frame with :meth:`EditRecord.for_frame`).

    Args:
        source: the source file or sequence pattern. A file is hashed (SHA-256) when ``hash_source``; a
            sequence's frames are hashed per frame by whoever writes them.
        instruction: the edit instruction's parameters (``EditInstruction.as_params()`` or an object with
            ``as_params``): emotion, intensity, reference, keys, curve, regions, speech, neutral_frame.
            Reference and curve files are named and hashed.
        face_id, frames: the edited face and the shot's frame range; renderer: one of :data:`RENDERERS`;
        kind: ``image`` or ``video``; consent: the consent reference; user, host, application: who (default:
        this process's user and host).
        time: UTC ISO 8601 (default now).

    Returns:
        the :class:`EditRecord`.

    Raises:
        InvalidParameterError: an unknown renderer or kind (valid ones listed).
    """
    from .. import __version__
    from ..errors import InvalidParameterError

    if renderer not in RENDERERS:
        raise InvalidParameterError(f"renderer {renderer!r} is not known; valid: {', '.join(RENDERERS)}")
    if kind not in KINDS:
        raise InvalidParameterError(f"kind {kind!r} is not valid; valid: {', '.join(KINDS)}")
    params = dict(instruction.as_params() if hasattr(instruction, "as_params") else (instruction or {}))
    src = Path(source)
    me = who()
    ref, curve = params.get("reference"), params.get("curve")
    intensity = params.get("intensity")
    rec = EditRecord(
        version=__version__, kind=kind,
        emotion=_text(params.get("emotion")), intensity=None if intensity is None else float(intensity),
        reference=Path(ref).name if ref else None,
        reference_sha256=file_sha256(ref) if _is_file(ref) else None,
        keys=_text(params.get("keys")), curve=Path(curve).name if curve else None,
        curve_sha256=file_sha256(curve) if _is_file(curve) else None,
        regions=_text(params.get("regions")), speech=_text(params.get("speech")),
        neutral_frame=None if params.get("neutral_frame") is None else int(params["neutral_frame"]),
        face_id=None if face_id is None else int(face_id), renderer=renderer,
        source=src.name, source_sha256=file_sha256(src) if hash_source and src.is_file() else None,
        frames=_text(frames), time=time or now_utc(), consent=_text(consent),
        user=_text(user if user is not None else me["user"]), host=_text(host if host is not None else me["host"]),
        application=_text(application))
    return replace(rec, summary=sentence(rec))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text[:MAX_TEXT] if text else None
