"""The edit record on a host's image stream: Nuke ``ModifyMetaData`` lines, and what a Write makes of them.

A host that composites the daemon's edited frames must say so in the files its artists write (issue 9: every
output carries its provenance, and the host bridges pass it through). Nuke carries metadata with the image
stream; its EXR Write writes every key prefixed ``exr/`` as an EXR header attribute (the prefix dropped) when the
Write's ``metadata`` knob is ``default metadata and exr/*``, ``all metadata except input/*`` or ``all metadata``.
So the bridge stamps the edited stream with exactly the attributes ``ned_fx``'s own EXR writer uses
(:func:`ned_fx.provenance.embed.exr_attributes`): the JSON record ``ned_fx/provenance``, the flat ``ned_fx/*``
copies and ``comments`` (the sentence), and :func:`ned_fx.media.read_provenance` reads a Nuke-written EXR like
one of ours.

* :func:`nuke_metadata_lines` — a record as the ``metadata`` knob script of a ``ModifyMetaData`` node (one
  ``{set key value}`` line per key), the source frame left to Nuke's ``[frame]`` so every frame is stamped
  with its own number;
* :func:`parse_nuke_metadata` — those lines evaluated at a frame, as Nuke does (TCL list parsing, then the
  value's substitution): ``key -> value``;
* :func:`exr_header_from_metadata` — the header attributes a Nuke EXR Write makes of a stream's metadata;
* :func:`write_keeps_record` — whether a Write (file type, ``metadata`` setting) keeps the record.

Quoting. Each value goes through two TCL layers: the knob's list parsing (a double-quoted word: backslash
substitution, and braces must not unbalance the ``{set …}`` line, so ``\\ " { }`` and control characters are
backslash-escaped) and the per-frame evaluation of the value (``\\ [ ] $`` escaped, so a consent text or file
name with brackets or dollars stays text). Only the frame expression is left for Nuke to evaluate.

Standard library only (plus :mod:`ned_fx.provenance`, itself standard library only).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..errors import InvalidParameterError
from ..provenance import embed
from ..provenance.record import EditRecord

#: Nuke's metadata prefix for keys its EXR Write writes as header attributes (and its EXR Read shows them under).
EXR_METADATA_PREFIX = "exr/"
#: The TCL expression ModifyMetaData evaluates per frame to the frame number.
FRAME_EXPRESSION = "[frame]"
#: The source-frame expressions a stamp may use: ``[frame]``, or ``[expr [frame]+N]`` for a source numbered N
#: frames after the node's frames (an upstream Read that shifts frame numbers).
_SHIFTED_FRAME = re.compile(r"expr \[frame\]([+-]\d+)")


def frame_expression(offset: int = 0) -> str:
    """The TCL of the source frame number at a node frame, for a source numbered ``offset`` frames later."""
    return FRAME_EXPRESSION if not offset else f"[expr [frame]{int(offset):+d}]"
#: The values of a Nuke Write's ``metadata`` knob (EXR), and those that write the ``exr/*`` keys.
WRITE_METADATA_SETTINGS = ("no metadata", "default metadata", "default metadata and exr/*",
                           "all metadata except input/*", "all metadata")
WRITE_SETTINGS_KEEPING_EXR = ("default metadata and exr/*", "all metadata except input/*", "all metadata")
#: The setting the bridge tells artists to use.
RECOMMENDED_WRITE_SETTING = "default metadata and exr/*"
#: Header attributes an EXR writer sets itself from the image (never taken from ``exr/*`` metadata).
EXR_STRUCTURE = frozenset({"channels", "compression", "dataWindow", "displayWindow", "lineOrder",
                           "pixelAspectRatio", "screenWindowCenter", "screenWindowWidth", "type", "tiles",
                           "chunkCount", "version", "name"})

#: Stands in for the frame number while the lines are built (replaced by the frame expression).
_FRAME_PLACEHOLDER = -2147480611
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./:-]*$")
_EVAL_ESCAPES = str.maketrans({"\\": "\\\\", "[": "\\[", "]": "\\]", "$": "\\$"})
_LIST_ESCAPES = {"\\": "\\\\", '"': '\\"', "{": "\\{", "}": "\\}", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_SPACE = " \t\n\r\v\f"


# ---- record -> ModifyMetaData lines -------------------------------------------------------------------------------

def _list_escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in _LIST_ESCAPES:
            out.append(_LIST_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def tcl_value(text: str, expressions: Mapping[str, str] | None = None) -> str:
    """``text`` as the double-quoted value word of a ModifyMetaData line: evaluates back to ``text`` exactly.

    Args:
        expressions: ``placeholder -> TCL expression`` pairs: each placeholder in ``text`` becomes the (raw)
            expression, which Nuke evaluates (``{"-2147480611": "[frame]"}``).
    """
    escaped = text.translate(_EVAL_ESCAPES)
    for placeholder, expression in (expressions or {}).items():
        escaped = escaped.replace(placeholder, expression)
    return '"' + _list_escape(escaped) + '"'


def nuke_metadata_lines(record: EditRecord | Mapping[str, Any], frame_expression: str | None = FRAME_EXPRESSION,
                        passed_through: str | None = None) -> str:
    """The ``metadata`` knob script of a ModifyMetaData node that stamps ``record`` on a Nuke stream.

    One ``{set exr/<attribute> "<value>"}`` line per attribute :func:`ned_fx.provenance.embed.exr_attributes`
    writes: ``exr/ned_fx/provenance`` (the JSON record), the flat ``exr/ned_fx/*`` keys and ``exr/comments``
    (the sentence). Set it with ``node["metadata"].fromScript(lines)``.

    Args:
        record: the shot's record (an :class:`EditRecord` or the dict the daemon's ``progress`` reply carries).
        frame_expression: the TCL expression of the source frame (default ``[frame]``: each frame is stamped
            with its own number, as :meth:`EditRecord.for_frame` does); None keeps the shot's record without a
            frame (its ``frames`` range still says which frames the edit covers).
        passed_through: stamp the frames as passed through unchanged for this reason (``edited`` false).

    Returns:
        the lines, joined by newlines.

    Raises:
        ProvenanceError: ``record`` is not a valid record; InvalidParameterError: a frame expression that is
        not one TCL command substitution (``[…]``).
    """
    rec = embed.as_record(record)
    if frame_expression is not None and not (re.fullmatch(r"\[[^\[\]\"{}\\$]+\]", frame_expression) or
                                             re.fullmatch(r"\[" + _SHIFTED_FRAME.pattern + r"\]", frame_expression)):
        raise InvalidParameterError(f"frame expression {frame_expression!r} is not one TCL command such as "
                                    f"{FRAME_EXPRESSION}")
    rec = rec.for_frame(_FRAME_PLACEHOLDER if frame_expression else None, passed_through=passed_through)
    lines = []
    for name, value in embed.exr_attributes(rec).items():
        key = EXR_METADATA_PREFIX + name
        if not _KEY.match(key):                        # attribute names are ours: never user text
            raise InvalidParameterError(f"metadata key {key!r} needs quoting; keys are letters, digits, _ . / : -")
        expressions = {}
        if frame_expression:
            if name == embed.EXR_ATTRIBUTE:
                expressions = {f'"source_frame":{_FRAME_PLACEHOLDER}': f'"source_frame":{frame_expression}'}
            elif value == str(_FRAME_PLACEHOLDER):
                expressions = {value: frame_expression}
        lines.append(f"{{set {key} {tcl_value(value, expressions)}}}")
    return "\n".join(lines)


# ---- ModifyMetaData lines -> metadata (what Nuke does with them) --------------------------------------------------

def _backslash(text: str, i: int) -> tuple[str, int]:
    """TCL backslash substitution at ``text[i] == '\\'``: ``(replacement, index after it)``."""
    if i + 1 >= len(text):
        return "\\", i + 1
    c = text[i + 1]
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
    if c in simple:
        return simple[c], i + 2
    if c == "\n":                                     # backslash-newline + leading white space: one space
        j = i + 2
        while j < len(text) and text[j] in " \t":
            j += 1
        return " ", j
    if c in "xuU":
        width = {"x": 2, "u": 4, "U": 8}[c]
        m = re.match(r"[0-9A-Fa-f]{1,%d}" % width, text[i + 2:])
        if m:
            return chr(int(m.group(0), 16)), i + 2 + len(m.group(0))
        return c, i + 2
    m = re.match(r"[0-7]{1,3}", text[i + 1:])
    if m:
        return chr(int(m.group(0), 8) & 0xFF), i + 1 + len(m.group(0))
    return c, i + 2


def _substituted(text: str, j: int, stop) -> tuple[str, int]:
    """The backslash-substituted characters of ``text`` from ``j`` up to (not including) the first character in
    ``stop``, and where that is (``len(text)`` if none)."""
    out, n = [], len(text)
    while j < n and text[j] not in stop:
        if text[j] == "\\":
            s, j = _backslash(text, j)
            out.append(s)
        else:
            out.append(text[j])
            j += 1
    return "".join(out), j


def _split_list(text: str) -> list[str]:
    """TCL list parsing (``Tcl_SplitList``): braced words literal, quoted and bare words backslash-substituted.

    Raises:
        InvalidParameterError: unbalanced braces or quotes, or junk after a closing brace/quote.
    """
    words, i, n = [], 0, len(text)
    while True:
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            return words
        if text[i] == "{":
            j = _past_closing(text, i, "{", "}")
            if j is None:
                raise InvalidParameterError(f"unbalanced braces in TCL list: {text[i:i + 60]!r}")
            words.append(text[i + 1:j - 1])
            i = j
        elif text[i] == '"':
            word, j = _substituted(text, i + 1, '"')
            if j >= n:
                raise InvalidParameterError(f"unclosed quote in TCL list: {text[i:i + 60]!r}")
            words.append(word)
            i = j + 1
        else:
            word, i = _substituted(text, i, _SPACE)
            words.append(word)
            continue
        if i < n and text[i] not in _SPACE:
            raise InvalidParameterError(f"TCL list element followed by {text[i]!r} instead of a space")


def _past_closing(text: str, i: int, opening: str, closing: str) -> int | None:
    """The index just past the ``closing`` that matches the ``opening`` at ``text[i]`` (nesting counted,
    backslash-escaped characters skipped), or None when it is never closed."""
    depth, j, n = 1, i + 1, len(text)
    while j < n and depth:
        if text[j] == "\\":
            j += 2
            continue
        depth += {opening: 1, closing: -1}.get(text[j], 0)
        j += 1
    return None if depth else j


def _evaluate(value: str, frame: int) -> str:
    """A ModifyMetaData value evaluated at ``frame``: backslash and ``[frame]`` substitution (the only command
    this reader runs; any other command or a ``$`` variable is refused)."""
    out, i, n = [], 0, len(value)
    while i < n:
        c = value[i]
        if c == "\\":
            s, i = _backslash(value, i)
            out.append(s)
        elif c == "[":
            j = _past_closing(value, i, "[", "]")
            command = value[i + 1:(j or n + 1) - 1].strip()
            shifted = _SHIFTED_FRAME.fullmatch(command)
            if j is None or command != "frame" and not shifted:
                raise InvalidParameterError(f"cannot evaluate [{command}] here: only [frame] and [expr [frame]+N] "
                                            f"are evaluated")
            out.append(str(int(frame) + (int(shifted.group(1)) if shifted else 0)))
            i = j
        elif c == "$":
            raise InvalidParameterError(f"cannot evaluate the TCL variable in {value[i:i + 30]!r}")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_nuke_metadata(script: str, frame: int, incoming: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The metadata a ModifyMetaData node with this ``metadata`` knob script outputs at ``frame``.

    Args:
        script: the knob script (``{set key value}`` / ``{remove key}`` lines, as :func:`nuke_metadata_lines`
            makes them); frame: the frame number ``[frame]`` evaluates to.
        incoming: the metadata of the node's input (kept, then set/removed by the lines).

    Raises:
        InvalidParameterError: malformed TCL, an action other than set/remove, or an expression other than
        ``[frame]``.
    """
    out = dict(incoming or {})
    for line in _split_list(script):
        words = _split_list(line)
        if len(words) == 3 and words[0] == "set":
            out[words[1]] = _evaluate(words[2], frame)
        elif len(words) in (2, 3) and words[0] == "remove":
            out.pop(words[1], None)
        else:
            raise InvalidParameterError(f"ModifyMetaData line {line!r}: expected {{set key value}} or {{remove key}}")
    return out


# ---- metadata -> what a Write writes ------------------------------------------------------------------------------

def exr_header_from_metadata(metadata: Mapping[str, Any], setting: str = RECOMMENDED_WRITE_SETTING) -> dict[str, Any]:
    """The header attributes a Nuke EXR Write with ``metadata`` knob ``setting`` writes from ``metadata``'s
    ``exr/*`` keys (the prefix dropped; the attributes it sets from the image itself are not taken).

    Raises:
        InvalidParameterError: an unknown setting (the valid ones are listed).
    """
    if setting not in WRITE_METADATA_SETTINGS:
        raise InvalidParameterError(f"Write metadata setting {setting!r} is not known; valid: "
                                    f"{', '.join(WRITE_METADATA_SETTINGS)}")
    if setting not in WRITE_SETTINGS_KEEPING_EXR:
        return {}
    return {k[len(EXR_METADATA_PREFIX):]: v for k, v in metadata.items()
            if k.startswith(EXR_METADATA_PREFIX) and k[len(EXR_METADATA_PREFIX):] not in EXR_STRUCTURE}


def record_from_nuke_metadata(metadata: Mapping[str, Any]) -> EditRecord | None:
    """The record a stream's metadata carries (``exr/ned_fx/provenance``), or None.

    Raises:
        ProvenanceError: the key is there but malformed.
    """
    return embed.record_from_exr_header(exr_header_from_metadata(metadata, "all metadata"))


def write_keeps_record(file_type: str, setting: str) -> bool:
    """Whether a Nuke Write of ``file_type`` (``exr``, ``png`` …; the file's extension) with ``metadata`` knob
    ``setting`` writes the record: EXR only, with a setting that writes ``exr/*`` keys."""
    return file_type.strip().lower().lstrip(".") == "exr" and setting in WRITE_SETTINGS_KEEPING_EXR
