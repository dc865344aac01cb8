"""A faithful stand-in of the parts of Nuke's ``nuke`` module the ned_fx bridge uses (Nuke cannot be installed
on development and CI machines).

Names, signatures and return conventions follow Foundry's Python API reference (learn.foundry.com/nuke/
developers): knob classes (``Double_Knob``, ``Int_Knob``, ``Enumeration_Knob``, ``PyScript_Knob`` …) with
``setValue``/``value``/``setRange``/``setFlag``/``setExpression``/animation (``setValueAt``, ``getValueAt``,
``isAnimated``), nodes with ``knob()``/``[]``/``addKnob``/``setInput``/``begin``/``end``, ``nuke.nodes.X(**knobs)``,
``createNode``, ``toNode``, ``allNodes``, ``root``, ``frame``, ``execute``, ``ProgressTask``,
``executeInMainThread(call, args=(), kwargs={})``, ``menu``/``toolbar`` with ``addMenu``/``addCommand``,
``addBeforeFrameRender``, ``message``, ``warning``.

What it checks, as Nuke would fail: knob values of the wrong type, an enumeration value that is not one of its
options, unknown knob names in ``nuke.nodes.X(...)``, ``executeInMainThread`` arguments that are not a tuple,
``execute`` of a disabled or non-Write node, a ModifyMetaData ``metadata`` script that is not a TCL list of
``{set key value}``/``{remove key}`` lines — and, stricter than Nuke (which crashes or corrupts instead), any
node, knob or progress-task call from a thread other than the main thread raises ``RuntimeError``.

It also behaves like Nuke where the bridge's correctness depends on it (each with its source beside the code):
eval-string knobs (``label``, ``file``…) run their TCL when evaluated — ``[python …]`` really runs Python, so text
that reaches one unescaped is caught; a knob expression's ``[frame]`` is the frame being evaluated while
``nuke.frame()`` stays the root's (Foundry, nuke.frame); ``File_Knob.getEvaluatedValue(OutputContext)`` gives the
file for a frame; render callbacks run with the Write as ``nuke.thisNode()`` and an exception aborts the render
(Foundry dev guide, Callbacks; Write reference); ``Node._image_at(frame)`` is what a Write renders — a Read's file,
an error for a missing frame (``on_error`` "error", Nuke's default) or black (``on_error`` "black"), through
Copy/Dissolve/Switch/TimeOffset/FrameHold/Groups; a Read's ``frame`` knob shifts file numbers; Root has a
``workingSpaceLUT`` and Reads OCIO colourspace names; ``toScript`` of an animated knob is its curve.

Test-only helpers (not Nuke API) start with ``_``: ``_reset()``, ``_pump()`` runs queued main-thread calls,
``_set_write_renderer(fn)`` decides what ``execute`` writes, ``_eval_expression(knob, frame)`` evaluates the
``[python …]`` TCL expressions the bridge sets, ``_set_metadata(node, dict)`` gives a Read (or a node with no
input) the metadata Nuke would read from its file, ``_calls`` records every call. ``Node.metadata(key, time)``
follows the stream as Nuke does: a Read's file metadata, ModifyMetaData's lines applied to its input's (TCL list
parsing, then the value evaluated at the frame: backslashes and ``[frame]``, the only command it runs), a
Switch's chosen input, a Group's Output, everything else its input 0 (Copy and Dissolve: the B input).
"""

from __future__ import annotations

import queue
import re
import sys
import threading
from typing import Any, Callable

NUKE_VERSION_STRING = "15.1v3"
NUKE_VERSION_MAJOR = 15
INVISIBLE = 0x00000400
STARTLINE = 0x00001000
ENDLINE = 0x00002000
NO_ANIMATION = 0x00000100
REPLACE = 1
env: dict[str, Any] = {"gui": True, "NukeVersionString": NUKE_VERSION_STRING}

_calls: list[tuple] = []
_main_queue: "queue.Queue[tuple]" = queue.Queue()
_context: list["Group"] = []
_this: list[tuple] = []
_frame = [1]
_callbacks: dict[str, list] = {"beforeFrameRender": []}
_menus: dict[str, "Menu"] = {}
_progress_tasks: list["ProgressTask"] = []
_messages: list[str] = []
_warnings: list[str] = []
_write_renderer: list[Callable] = []


def _main_only(what: str) -> None:
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(f"{what} called from thread {threading.current_thread().name!r}: Nuke's nodes, knobs and "
                           f"progress tasks may only be used on the main thread (use nuke.executeInMainThread)")


def _record(*call) -> None:
    _calls.append(call)


# ---- knobs ------------------------------------------------------------------------------------------------------

class Knob:
    _kind: Any = object

    def __init__(self, name: str, label: str | None = None, *args):
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise ValueError(f"invalid knob name {name!r}")
        self._name, self._label = name, name if label is None else label
        self._value = self._default()
        self._flags = STARTLINE
        self._tooltip = ""
        self._enabled = True
        self._expression: str | None = None
        self._keys: dict[float, Any] = {}
        self.node = None
        _record("Knob", type(self).__name__, name, label)

    def _default(self):
        return None

    def Class(self) -> str:
        return type(self).__name__

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def _check(self, value):
        return value

    def setValue(self, value, *args) -> bool:
        _main_only(f"{self._name}.setValue")
        self._value = self._check(value)
        self._keys.clear()
        return True

    def _changed(self) -> None:
        """Run the node's knobChanged script, as Nuke does when an artist changes this knob."""
        node = self.node
        if node is not None and node._in_knob_changed is False and "knobChanged" in node._knobs:
            script = node._knobs["knobChanged"]._value
            if script:
                node._in_knob_changed = True
                _this.append((node, self))
                try:
                    exec(script, _script_globals())
                finally:
                    _this.pop()
                    node._in_knob_changed = False

    def value(self, *args):
        _main_only(f"{self._name}.value")
        if self._keys:
            return self.getValueAt(_frame[0])
        return self._value

    def getValue(self, *args):
        return self.value()

    def toScript(self, quote: bool = False, context=None) -> str:
        """The knob as a script saves it: an expression or animation curve in braces (the whole curve, so two
        scripts with different keys differ), else the value."""
        _main_only(f"{self._name}.toScript")
        if self._expression is not None:
            return "{" + self._expression + "}"
        if self._keys:
            return "{curve " + " ".join(f"x{t:g} {v}" for t, v in sorted(self._keys.items())) + "}"
        return "" if self._value is None else str(self._value)

    def fromScript(self, script: str) -> bool:
        _main_only(f"{self._name}.fromScript")
        self._value = self._check(script)
        self._keys.clear()
        return True

    def setFlag(self, flag: int) -> None:
        _main_only("setFlag")
        self._flags |= int(flag)

    def clearFlag(self, flag: int) -> None:
        _main_only("clearFlag")
        self._flags &= ~int(flag)

    def getFlag(self, flag: int) -> bool:
        return bool(self._flags & int(flag))

    def setTooltip(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError("setTooltip takes a string")
        self._tooltip = text

    def tooltip(self) -> str:
        return self._tooltip

    def setEnabled(self, enabled: bool) -> None:
        self._enabled = bool(enabled)

    def enabled(self) -> bool:
        return self._enabled

    def setExpression(self, expression: str, channel: int = -1, view=None) -> bool:
        _main_only("setExpression")
        if not isinstance(expression, str):
            raise TypeError("setExpression takes a string")
        self._expression = expression
        return True

    def hasExpression(self, index: int = -1) -> bool:
        return self._expression is not None

    # animation (Array_Knob API)
    def isAnimated(self, channel: int = -1, view=None) -> bool:
        return bool(self._keys) or self._expression is not None

    def setAnimated(self, channel: int = -1, view=None) -> bool:
        self._keys.setdefault(float(_frame[0]), self._value)
        return True

    def setValueAt(self, value, time, channel: int = -1, view=None) -> bool:
        _main_only("setValueAt")
        self._keys[float(time)] = self._check(value)
        return True

    def getValueAt(self, time, channel: int = -1, view=None):
        _main_only("getValueAt")
        if not self._keys:
            return self._value
        ts = sorted(self._keys)
        t = float(time)
        if t <= ts[0]:
            return self._keys[ts[0]]
        if t >= ts[-1]:
            return self._keys[ts[-1]]
        for a, b in zip(ts, ts[1:]):        # linear between keys (Nuke's default is smooth; fine for tests)
            if a <= t <= b:
                return self._keys[a] + (self._keys[b] - self._keys[a]) * (t - a) / (b - a)

    def clearAnimated(self, channel: int = -1, view=None) -> bool:
        self._keys.clear()
        self._expression = None
        return True


class Array_Knob(Knob):
    def __init__(self, name, label=None, *args):
        super().__init__(name, label)
        self._range = (0.0, 1.0)

    def setRange(self, minimum, maximum) -> None:
        _main_only("setRange")
        if minimum > maximum:
            raise ValueError("setRange: min > max")
        self._range = (minimum, maximum)

    def min(self):
        return self._range[0]

    def max(self):
        return self._range[1]


class Double_Knob(Array_Knob):
    def _default(self):
        return 0.0

    def _check(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"Double_Knob {self._name}: a number is required, got {type(value).__name__}")
        return float(value)


class Int_Knob(Array_Knob):
    def _default(self):
        return 0

    def _check(self, value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"Int_Knob {self._name}: an integer is required, got {value!r}")
        return value


class Boolean_Knob(Knob):
    def __init__(self, name, label=None, default=False):
        super().__init__(name, label)
        self._value = bool(default)

    def _check(self, value):
        if not isinstance(value, (bool, int)):
            raise TypeError(f"Boolean_Knob {self._name}: a bool is required")
        return bool(value)


class Disable_Knob(Boolean_Knob):
    pass


class Enumeration_Knob(Knob):
    def __init__(self, name, label, values):
        super().__init__(name, label)
        if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
            raise TypeError("Enumeration_Knob takes a list of strings")
        self._values = list(values)
        self._value = self._values[0] if self._values else ""

    def values(self) -> list[str]:
        return list(self._values)

    def _check(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return self._values[value]
        if value not in self._values:
            raise ValueError(f"Enumeration_Knob {self._name}: {value!r} is not one of {self._values}")
        return value


class String_Knob(Knob):
    def __init__(self, name, label=None, text=""):
        super().__init__(name, label)
        self._value = text

    def _check(self, value):
        if not isinstance(value, str):
            raise TypeError(f"{type(self).__name__} {self._name}: a string is required, got {type(value).__name__}")
        return value


class EvalString_Knob(String_Knob):
    """"A string-valued knob which evaluates its value as a TCL expression" (Foundry, nuke.EvalString_Knob):
    ``evaluate()`` runs the TCL — ``[python …]`` included, so Python inside the text really runs, as in Nuke."""

    def evaluate(self, *args) -> str:
        _main_only(f"{self._name}.evaluate")
        return _tcl_eval(self._value, _frame[0], self.node)


class File_Knob(EvalString_Knob):
    def getEvaluatedValue(self, oc=None) -> str:
        """The file for ``oc``'s frame: TCL evaluated at that frame, then the ``%0Nd``/``####`` frame number
        filled in (Foundry, nuke.File_Knob.getEvaluatedValue(oc); used per frame with an OutputContext as in
        public pipeline code, e.g. gist dbr/8016555)."""
        _main_only(f"{self._name}.getEvaluatedValue")
        frame_number = _frame[0] if oc is None else oc.frame()
        text = _tcl_eval(self._value, frame_number, self.node)
        m = re.search(r"%0?(\d*)d", text)
        if m:
            return text[:m.start()] + f"{frame_number:0{int(m.group(1) or 0)}d}" + text[m.end():]
        m = re.search(r"#+", text)
        if m:
            return text[:m.start()] + f"{frame_number:0{len(m.group(0))}d}" + text[m.end():]
        return text


class OutputContext:
    """nuke.OutputContext: the frame (and view) a knob is evaluated at."""

    def __init__(self):
        self._frame = float(_frame[0])

    def setFrame(self, f) -> None:
        self._frame = float(f)

    def frame(self) -> int:
        return int(self._frame)

    def viewcount(self) -> int:
        return 1


class Multiline_Eval_String_Knob(EvalString_Knob):
    pass


class ChannelMask_Knob(String_Knob):
    pass


class Channel_Knob(String_Knob):
    pass


class ColorChip_Knob(Int_Knob):
    pass


class Text_Knob(Knob):
    def __init__(self, name, label=None, text=""):
        super().__init__(name, label)
        self._value = text

    def _check(self, value):
        if not isinstance(value, str):
            raise TypeError("Text_Knob: a string is required")
        return value


class Tab_Knob(Knob):
    pass


class Script_Knob(Knob):
    def __init__(self, name, label=None, command=""):
        super().__init__(name, label)
        self._value = command
        self._executions = 0

    def execute(self) -> None:
        _main_only(f"{self._name}.execute")
        self._executions += 1
        if self._value:
            _this.append((self.node, self))
            try:
                exec(self._value, _script_globals())
            finally:
                _this.pop()


class PyScript_Knob(Script_Knob):
    pass


def _script_globals() -> dict:
    """The namespace Nuke runs knob scripts in (``__main__``'s: ``nuke`` is there, other modules are imported by
    the script itself)."""
    return {"nuke": sys.modules[__name__], "__builtins__": __builtins__}


class MetaData_Knob(Knob):
    """ModifyMetaData's ``metadata`` knob: a TCL list of ``{set key value}`` / ``{remove key}`` lines, set with
    ``fromScript`` (as scripts and ``nuke.nodes.ModifyMetaData(metadata=...)`` do). The class name is this
    stand-in's; the bridge uses only ``fromScript``/``toScript``."""

    def _default(self):
        return ""

    def setValue(self, value, *args) -> bool:
        raise TypeError(f"{self._name}: the ModifyMetaData metadata knob takes a script: use fromScript")

    def fromScript(self, script: str) -> bool:
        _main_only(f"{self._name}.fromScript")
        if not isinstance(script, str):
            raise TypeError("fromScript takes a string")
        for line in _tcl_list(script):
            words = _tcl_list(line)
            if not (len(words) == 3 and words[0] == "set" or len(words) in (2, 3) and words[0] == "remove"):
                raise ValueError(f"ModifyMetaData: {line!r} is not {{set key value}} or {{remove key}}")
        self._value = script.strip()
        return True

    def _apply(self, incoming: dict, frame_number: int) -> dict:
        out = dict(incoming)
        for line in _tcl_list(self._value):
            words = _tcl_list(line)
            if words[0] == "set":
                out[words[1]] = _tcl_subst(words[2], frame_number)
            else:
                out.pop(words[1], None)
        return out


_TCL_SPACE = " \t\n\r\v\f"
_TCL_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _tcl_backslash(text: str, i: int) -> tuple[str, int]:
    nxt = text[i + 1:i + 2]
    if not nxt:
        return "\\", i + 1
    if nxt in _TCL_SIMPLE:
        return _TCL_SIMPLE[nxt], i + 2
    if nxt == "\n":
        j = i + 2
        while j < len(text) and text[j] in " \t":
            j += 1
        return " ", j
    if nxt in ("x", "u", "U"):
        digits = re.match("[0-9a-fA-F]{1,%d}" % {"x": 2, "u": 4, "U": 8}[nxt], text[i + 2:])
        return (chr(int(digits.group(), 16)), i + 2 + len(digits.group())) if digits else (nxt, i + 2)
    octal = re.match("[0-7]{1,3}", text[i + 1:])
    if octal:
        return chr(int(octal.group(), 8) & 0xFF), i + 1 + len(octal.group())
    return nxt, i + 2


def _tcl_list(text: str) -> list[str]:
    """Tcl_SplitList: ``{braced}`` words verbatim (escaped braces not counted), ``"quoted"`` and bare words with
    backslash substitution; anything else (unbalanced, junk after a closing brace or quote) is an error."""
    words: list[str] = []
    i = 0
    while i < len(text):
        if text[i] in _TCL_SPACE:
            i += 1
            continue
        start = text[i]
        if start == "{":
            depth, j = 0, i
            while j < len(text):
                ch = text[j]
                if ch == "\\":
                    j += 2
                    continue
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            else:
                raise ValueError(f"TCL: missing close-brace in {text[i:i + 40]!r}")
            words.append(text[i + 1:j])
            i = j + 1
        elif start == '"':
            buf, j = [], i + 1
            while True:
                if j >= len(text):
                    raise ValueError(f"TCL: missing close-quote in {text[i:i + 40]!r}")
                ch = text[j]
                if ch == '"':
                    break
                if ch == "\\":
                    piece, j = _tcl_backslash(text, j)
                    buf.append(piece)
                else:
                    buf.append(ch)
                    j += 1
            words.append("".join(buf))
            i = j + 1
        else:
            buf, j = [], i
            while j < len(text) and text[j] not in _TCL_SPACE:
                if text[j] == "\\":
                    piece, j = _tcl_backslash(text, j)
                    buf.append(piece)
                else:
                    buf.append(text[j])
                    j += 1
            words.append("".join(buf))
            i = j
            continue
        if i < len(text) and text[i] not in _TCL_SPACE:
            raise ValueError(f"TCL: list element in {start} followed by {text[i]!r} instead of space")
    return words


def _tcl_subst(value: str, frame_number: int) -> str:
    """A ModifyMetaData value evaluated at a frame (what Nuke does per frame): backslash substitution and
    command substitution, of which this stand-in runs ``[frame]`` only (anything else raises)."""
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            piece, i = _tcl_backslash(value, i)
            out.append(piece)
        elif ch == "[":
            end = _tcl_close_bracket(value, i)
            command = value[i + 1:end].strip()
            # [expr [frame]+N]: Tcl's expr over the substituted frame (a source numbered N frames later)
            shifted = re.fullmatch(r"expr \[frame\]([+-]\d+)", command)
            if command != "frame" and not shifted:
                raise ValueError(f"stand-in: cannot evaluate {value[i:i + 40]!r} (only [frame], [expr [frame]+N])")
            out.append(str(frame_number + (int(shifted.group(1)) if shifted else 0)))
            i = end + 1
        elif ch == "$":
            raise ValueError(f"stand-in: no TCL variables ({value[i:i + 40]!r})")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _tcl_close_bracket(text: str, i: int) -> int:
    """The index of the ``]`` closing the ``[`` at ``i`` (nested brackets, braces and backslashes respected)."""
    depth, brace, j = 0, 0, i
    while j < len(text):
        ch = text[j]
        if ch == "\\":
            j += 2
            continue
        if ch == "{":
            brace += 1
        elif ch == "}" and brace:
            brace -= 1
        elif ch == "[" and not brace:
            depth += 1
        elif ch == "]" and not brace:
            depth -= 1
            if depth == 0:
                return j
        j += 1
    raise ValueError(f"TCL: missing close-bracket in {text[i:i + 40]!r}")


def _tcl_words(command: str, frame_number: int, node) -> list[str]:
    """A TCL command's words: braces verbatim, quotes and bare words with substitution (Tcl's rules 1-9)."""
    words, i = [], 0
    while i < len(command):
        if command[i] in _TCL_SPACE:
            i += 1
            continue
        if command[i] == "{":
            depth, j = 0, i
            while j < len(command):
                if command[j] == "\\":
                    j += 2
                    continue
                depth += {"{": 1, "}": -1}.get(command[j], 0)
                if depth == 0:
                    break
                j += 1
            words.append(command[i + 1:j])
            i = j + 1
        elif command[i] == '"':
            j, buf = i + 1, []
            while command[j] != '"':
                if command[j] == "[":
                    end = _tcl_close_bracket(command, j)
                    buf.append(command[j:end + 1])
                    j = end + 1
                elif command[j] == "\\":
                    buf.append(command[j:j + 2])
                    j += 2
                else:
                    buf.append(command[j])
                    j += 1
            words.append(_tcl_eval("".join(buf), frame_number, node))
            i = j + 1
        else:
            j = i
            while j < len(command) and command[j] not in _TCL_SPACE:
                j = _tcl_close_bracket(command, j) + 1 if command[j] == "[" else j + 1
            words.append(_tcl_eval(command[i:j], frame_number, node))
            i = j
    return words


def _tcl_command(command: str, frame_number: int, node) -> str:
    """The TCL commands Nuke knobs use here: ``frame`` (the frame the knob is evaluated at), ``python
    ?-exec? code`` (runs the Python: what makes TCL text from outside dangerous), ``value knob``, ``getenv``."""
    words = _tcl_words(command, frame_number, node)
    if not words:
        return ""
    name, args = words[0], words[1:]
    if name == "frame":
        return str(frame_number)
    if name == "python":
        code = args[-1]
        g = {"nuke": sys.modules[__name__], "__builtins__": __builtins__}
        _this.append((node, None))
        try:
            if args[0] == "-exec":
                exec(code, g)
                return ""
            result = eval(code, g)
        finally:
            _this.pop()
        return "" if result is None else str(result)
    if name == "value":
        owner = node
        path = args[0].split(".")
        for part in path[:-1]:
            owner = owner._parent if part == "parent" else owner.node(part)
        return str(owner[path[-1]].value())
    if name == "getenv":
        import os

        return os.environ.get(args[0], "")
    raise ValueError(f"stand-in TCL: unknown command {name!r}")


def _tcl_eval(text: str, frame_number: int, node=None) -> str:
    """TCL substitution as Nuke applies it to eval-string knobs (``label``, ``file``…) and ``[…]`` knob
    expressions: ``[command]`` is run, ``$env(NAME)`` read, backslash escapes resolved; text in braces inside a
    command is not substituted."""
    import os

    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            piece, i = _tcl_backslash(text, i)
            out.append(piece)
        elif ch == "[":
            end = _tcl_close_bracket(text, i)
            out.append(_tcl_command(text[i + 1:end], frame_number, node))
            i = end + 1
        elif ch == "$":
            m = re.match(r"\$env\((\w+)\)", text[i:])
            if not m:
                raise ValueError(f"stand-in TCL: no variable in {text[i:i + 40]!r}")
            out.append(os.environ.get(m.group(1), ""))
            i += m.end()
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# ---- nodes ------------------------------------------------------------------------------------------------------

_BUILTIN: dict[str, list[tuple[str, Callable[[], Knob]]]] = {
    "*": [("name", lambda: String_Knob("name")), ("label", lambda: Multiline_Eval_String_Knob("label")),
          ("tile_color", lambda: ColorChip_Knob("tile_color")), ("disable", lambda: Disable_Knob("disable")),
          ("knobChanged", lambda: String_Knob("knobChanged")), ("onCreate", lambda: String_Knob("onCreate"))],
    "Write": [("file", lambda: File_Knob("file")),
              ("file_type", lambda: Enumeration_Knob("file_type", "file type", [" ", "exr", "tiff", "png", "dpx",
                                                                                "jpeg", "mov"])),
              ("channels", lambda: ChannelMask_Knob("channels")),
              ("datatype", lambda: Enumeration_Knob("datatype", "datatype", ["16 bit half", "32 bit float"])),
              ("compression", lambda: Enumeration_Knob("compression", "compression", [
                  "none", "Zip (1 scanline)", "Zip (16 scanlines)", "PIZ Wavelet (32 scanlines)", "RLE",
                  "B44", "DWAA", "DWAB"])),
              ("raw", lambda: Boolean_Knob("raw")), ("create_directories", lambda: Boolean_Knob("create_directories")),
              ("autocrop", lambda: Boolean_Knob("autocrop")),
              ("metadata", lambda: Enumeration_Knob("metadata", "metadata", [
                  "default metadata", "default metadata and exr/*", "all metadata except input/*",
                  "all metadata", "no metadata"]))],
    "Read": [("file", lambda: File_Knob("file")), ("first", lambda: Int_Knob("first")),
             ("last", lambda: Int_Knob("last")), ("origfirst", lambda: Int_Knob("origfirst")),
             ("origlast", lambda: Int_Knob("origlast")), ("raw", lambda: Boolean_Knob("raw")),
             # OCIO colourspace names contain spaces and dashes ("ACES - ACEScg"); "default (X)" is the
             # default for the file type, X being the space Nuke uses (Foundry Read reference, colorspace)
             ("colorspace", lambda: Enumeration_Knob("colorspace", "colorspace", [
                 "default (linear)", "linear", "sRGB", "rec709", "Cineon", "scene_linear", "ACES - ACEScg",
                 "default (ACES - ACEScg)", "ACES - ACES2065-1", "Output - sRGB"])),
             # Read "missing frames": error is Nuke's default; black silently renders black (Foundry Read reference)
             ("on_error", lambda: Enumeration_Knob("on_error", "missing frames", [
                 "error", "black", "checkerboard", "nearest frame"])),
             # Read "frame": an expression/offset mapping the node's time to the file's frame number
             ("frame_mode", lambda: Enumeration_Knob("frame_mode", "frame", ["expression", "start at", "offset"])),
             ("frame", lambda: String_Knob("frame", "")),
             ("reload", lambda: Script_Knob("reload", "Reload"))],
    "Copy": [(f"{d}{i}", lambda d=d, i=i: Channel_Knob(f"{d}{i}")) for i in range(4) for d in ("from", "to")]
    + [("bbox", lambda: Enumeration_Knob("bbox", "set bbox to", ["union", "intersection", "A", "B"]))],
    "Dissolve": [("which", lambda: Double_Knob("which"))],
    "ModifyMetaData": [("metadata", lambda: MetaData_Knob("metadata"))],
    "Switch": [("which", lambda: Double_Knob("which"))],
    "Input": [("number", lambda: Int_Knob("number"))],
    # TimeOffset "time_offset" (frames): output frame t shows input frame t - offset; FrameHold "first_frame":
    # every output frame shows that input frame (Foundry reference guide: TimeOffset, FrameHold)
    "TimeOffset": [("time_offset", lambda: Int_Knob("time_offset"))],
    "FrameHold": [("first_frame", lambda: Int_Knob("first_frame"))],
    "Grade": [("white", lambda: Double_Knob("white"))],
    "Output": [],
    "Group": [],
    "Root": [("first_frame", lambda: Int_Knob("first_frame")), ("last_frame", lambda: Int_Knob("last_frame")),
             # Project Settings > Color > working space (OCIO: a colourspace name or the scene_linear role)
             ("workingSpaceLUT", lambda: Enumeration_Knob("workingSpaceLUT", "working space", [
                 "linear", "scene_linear", "ACES - ACEScg", "ACES - ACES2065-1"]))],
}


class Node:
    def __init__(self, cls: str, parent: "Group | None"):
        self._class = cls
        self._knobs: dict[str, Knob] = {}
        self._inputs: list[Node | None] = []
        self._parent = parent
        self._in_knob_changed = False
        self._deleted = False
        self._meta: dict = {}
        for name, make in _BUILTIN["*"] + _BUILTIN.get(cls, []):
            k = make()
            k.node = self
            self._knobs[name] = k

    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return self._knobs["name"]._value

    def fullName(self) -> str:
        names = [self.name()]
        p = self._parent
        while p is not None and p._class != "Root":
            names.append(p.name())
            p = p._parent
        return ".".join(reversed(names))

    def setName(self, name: str, uncollide: bool = False, updateExpressions: bool = False) -> None:
        _main_only("setName")
        siblings = {n.name() for n in (self._parent._children if self._parent else []) if n is not self}
        if name in siblings:
            if not uncollide:
                raise ValueError(f"a node named {name} exists")
            m = re.match(r"^(.*?)(\d*)$", name)
            base, i = m.group(1), int(m.group(2) or 1)
            while f"{base}{i}" in siblings:
                i += 1
            name = f"{base}{i}"
        self._knobs["name"]._value = name

    def knob(self, name):
        _main_only("knob")
        if isinstance(name, int):
            return list(self._knobs.values())[name]
        return self._knobs.get(name)

    def __getitem__(self, name: str) -> Knob:
        k = self.knob(name)
        if k is None:
            raise NameError(f"knob {name} does not exist")
        return k

    def knobs(self) -> dict[str, Knob]:
        _main_only("knobs")
        return dict(self._knobs)

    def addKnob(self, knob: Knob) -> None:
        _main_only("addKnob")
        if not isinstance(knob, Knob):
            raise TypeError("addKnob takes a knob")
        if knob.name() in self._knobs:
            raise ValueError(f"{self.name()} already has a knob named {knob.name()}")
        knob.node = self
        self._knobs[knob.name()] = knob
        _record("addKnob", self.name(), knob.name(), type(knob).__name__)

    def setInput(self, i: int, node: "Node | None") -> bool:
        _main_only("setInput")
        while len(self._inputs) <= i:
            self._inputs.append(None)
        self._inputs[i] = node
        return True

    def input(self, i: int) -> "Node | None":
        _main_only("input")
        return self._inputs[i] if i < len(self._inputs) else None

    def inputs(self) -> int:
        return len(self._inputs)

    def dependencies(self) -> list:
        return [n for n in self._inputs if n is not None]

    def metadata(self, key: str | None = None, time: float | None = None, view=None):
        """The metadata of the node's output at ``time`` (default: the current frame): a dict, or one key's
        value (None when absent)."""
        _main_only("metadata")
        md = self._metadata_at(int(_frame[0] if time is None else time))
        return md if key is None else md.get(key)

    def _metadata_at(self, t: int) -> dict:
        def upstream(i: int) -> dict:
            n = self._inputs[i] if i < len(self._inputs) else None
            return n._metadata_at(t) if n is not None else {}

        cls = self._class
        if cls == "Read":
            return {"input/filename": self._knobs["file"]._value, **self._meta}
        if cls == "Input":
            group = self._parent
            n = group._inputs[self._knobs["number"]._value] if group is not None and \
                self._knobs["number"]._value < len(group._inputs) else None
            return n._metadata_at(t) if n is not None else dict(self._meta)
        if cls in ("Group", "Root"):
            out = next((c for c in self._children if c.Class() == "Output"), None)
            return out._metadata_at(t) if out is not None else {}
        if self._knobs["disable"]._value:
            return upstream(0)
        if cls == "ModifyMetaData":
            return self._knobs["metadata"]._apply(upstream(0), t)
        if cls in ("TimeOffset", "FrameHold"):
            n = self._inputs[0] if self._inputs else None
            return n._metadata_at(self._upstream_time(t)) if n is not None else {}
        if cls == "Switch":
            which = int(float(_eval_expression(self._knobs["which"], t)))
            return upstream(max(0, min(which, len(self._inputs) - 1)))
        return upstream(0) if self._inputs else dict(self._meta)


    def _file_frame(self, t: int) -> int:
        """A Read's file frame for time ``t`` (Foundry, "Changing the Relation Between the Current Frame and the
        Frame Read In", learn.foundry.com/nuke/8.0/content/getting_started/managing_scripts/changing_read_frames):
        ``expression`` mode evaluates ``frame+499``-style expressions; ``start at`` N reads the sequence's first
        frame at N; ``offset`` moves the sequence in time (-499 shows image.0500 at frame 1: the file is
        ``t - offset``); empty: ``t``."""
        text = str(self._knobs["frame"]._value or "").strip()
        if not text:
            return t
        if self._knobs["frame_mode"]._value == "offset":
            return t - int(text)
        if self._knobs["frame_mode"]._value == "start at":
            return int(self._knobs["first"]._value) + t - int(text)
        return int(eval(text, {"__builtins__": {}}, {"frame": t, "t": t, "x": t}))

    def _upstream_time(self, t: int) -> int:
        if self._knobs["disable"]._value:
            return t
        if self._class == "TimeOffset":
            return t - int(self._knobs["time_offset"]._value)
        if self._class == "FrameHold":
            return int(self._knobs["first_frame"]._value)
        return t

    def _image_at(self, t: int) -> str:
        """Where the rgb this node outputs at frame ``t`` comes from, as a Write downstream would render it:
        ``file:PATH`` (a Read's file for that frame), ``black`` (a Read with missing frames set to black), or
        RuntimeError (a Read missing its frame with on_error "error": the render fails, as in Nuke). Copy takes
        rgb from A (input 1), Dissolve blends by ``which``, Switch shows its chosen input."""
        _main_only("render")
        cls = self._class

        def up(i: int, time: int = t) -> str:
            n = self._inputs[i] if i < len(self._inputs) else None
            if n is None:
                return "black"
            return n._image_at(time)

        if cls == "Read":
            path = self._knobs["file"].getEvaluatedValue(_oc(self._file_frame(t)))
            import os

            if os.path.isfile(path):
                return f"file:{path}"
            if self._knobs["on_error"]._value == "black":
                return "black"
            raise RuntimeError(f"{self.fullName()}: missing frame {t}: {path}")
        if cls == "Input":
            group = self._parent
            number = self._knobs["number"]._value
            n = group._inputs[number] if group is not None and number < len(group._inputs) else None
            return n._image_at(t) if n is not None else "black"
        if cls in ("Group", "Root"):
            out = next((c for c in self._children if c.Class() == "Output"), None)
            return out._image_at(t) if out is not None else "black"
        if self._knobs["disable"]._value:
            return up(0)
        if cls in ("TimeOffset", "FrameHold"):
            return up(0, self._upstream_time(t))
        if cls == "Copy":
            return up(1)
        if cls == "Dissolve":
            which = float(_eval_expression(self._knobs["which"], t))
            return up(1) if which >= 1.0 else up(0) if which <= 0.0 else f"mix({up(0)}, {up(1)}, {which:g})"
        if cls == "Switch":
            which = int(float(_eval_expression(self._knobs["which"], t)))
            return up(max(0, min(which, len(self._inputs) - 1)))
        return up(0)


class Group(Node):
    def __init__(self, cls: str = "Group", parent: "Group | None" = None):
        super().__init__(cls, parent)
        self._children: list[Node] = []

    def begin(self) -> "Group":
        _main_only("begin")
        _context.append(self)
        return self

    def end(self) -> None:
        _main_only("end")
        if _context and _context[-1] is self:
            _context.pop()

    def nodes(self) -> list[Node]:
        return list(self._children)

    def node(self, name: str) -> Node | None:
        for n in self._children:
            if n.name() == name:
                return n
        return None



class Root(Group):
    def __init__(self):
        super().__init__("Root", None)
        self._knobs["name"]._value = ""
        self._knobs["first_frame"]._value = 1
        self._knobs["last_frame"]._value = 100

    def fullName(self) -> str:
        return "root"


_root = [Root()]


def _current() -> Group:
    return _context[-1] if _context else _root[0]


def _make(cls: str, knobs: dict) -> Node:
    _main_only(f"nuke.nodes.{cls}")
    parent = _current()
    node = Group(cls, parent) if cls == "Group" else Node(cls, parent)
    base = cls
    node._knobs["name"]._value = ""
    node.setName(f"{base}1", uncollide=True)
    for key, value in knobs.items():
        if key == "inputs":
            for i, n in enumerate(value):
                node.setInput(i, n)
            continue
        k = node._knobs.get(key)
        if k is None:
            raise ValueError(f"{cls} has no knob named {key!r}")
        if key == "name":
            node.setName(value, uncollide=False)
        elif isinstance(k, MetaData_Knob):
            k.fromScript(value)
        else:
            k.setValue(value)
    parent._children.append(node)
    _record("node", cls, node.name(), tuple(sorted(knobs)))
    return node


class _Nodes:
    def __getattr__(self, cls: str) -> Callable[..., Node]:
        if cls.startswith("_"):
            raise AttributeError(cls)
        return lambda **knobs: _make(cls, knobs)


nodes = _Nodes()


def createNode(node: str, args: str = "", inpanel: bool = True) -> Node:
    _record("createNode", node, args, inpanel)
    return _make(node, {})


def root() -> Root:
    return _root[0]


def toNode(name: str) -> Node | None:
    _main_only("toNode")
    parts = name.split(".")
    group: Group = _root[0]
    found = None
    for i, part in enumerate(parts):
        found = group.node(part) if isinstance(group, Group) else None
        if found is None or found._deleted:
            return None
        group = found
    return found


def delete(node: Node) -> None:
    _main_only("delete")
    node._deleted = True
    if node._parent is not None and node in node._parent._children:
        node._parent._children.remove(node)


_LAYERS: dict[str, list[str]] = {}
_BUILTIN_LAYERS = ("rgb", "rgba", "alpha", "depth", "forward", "backward", "motion", "mask")


def layers(node: "Node | None" = None) -> list[str]:
    """The layer names of the script (Foundry, nuke.layers): the built-in ones, then those added."""
    return list(_BUILTIN_LAYERS) + list(_LAYERS)


class Layer:
    """``nuke.Layer(name, channels)`` adds a layer of ``layer.channel`` channels (Foundry, nuke.Layer)."""

    def __init__(self, name: str, channels: list):
        _main_only("Layer")
        _record("Layer", name, list(channels))
        bad = [c for c in channels if not str(c).startswith(name + ".")]
        if bad:
            raise ValueError(f"channels {bad} are not in layer {name!r} (name them {name}.x)")
        _LAYERS.setdefault(name, [])
        _LAYERS[name] += [c for c in channels if c not in _LAYERS[name]]


def allNodes(filter: str | None = None, group: Group | None = None, recurseGroups: bool = False) -> list[Node]:
    _main_only("allNodes")
    out = []

    def walk(g: Group):
        for n in g._children:
            if filter is None or n.Class() == filter:
                out.append(n)
            if recurseGroups and isinstance(n, Group):
                walk(n)

    walk(group or _current())
    return out


def selectedNodes(filter: str | None = None) -> list[Node]:
    return []


def selectedNode() -> Node:
    raise ValueError("no node selected")


def thisNode() -> Node | None:
    return _this[-1][0] if _this else None


def thisKnob() -> Knob | None:
    return _this[-1][1] if _this else None


def thisParent() -> Node | None:
    node = thisNode()
    return node._parent if node is not None else None


def thisGroup() -> Group:
    return _current()


def frame(f: int | None = None) -> int:
    if f is not None:
        _frame[0] = f
    return _frame[0]


def execute(node, first: int, last: int, incr: int = 1, views=None, continueOnError: bool = False) -> None:
    """Render ``node`` (a Write) for frames first..last: the test's write renderer produces the files."""
    _main_only("nuke.execute")
    if isinstance(node, str):
        node = toNode(node)
    if node is None or node.Class() != "Write":
        raise ValueError("nuke.execute needs a Write node")
    if node["disable"]._value:
        raise RuntimeError(f"{node.name()} is disabled")
    if not node["file"]._value:
        raise RuntimeError(f"{node.name()}: no file name")
    _record("execute", node.fullName(), first, last)
    for f in range(first, last + 1, incr):
        old = _frame[0]
        _frame[0] = f
        _this.append((node, None))        # "During the callback, there is a context node (the affected node),
        try:                              # examined using nuke.thisNode()" (Foundry dev guide, Callbacks)
            for cb in _callbacks["beforeFrameRender"]:
                cb()                      # "If they throw an exception, the render aborts" (Write reference)
            if not _write_renderer:
                raise RuntimeError("no write renderer set (tests: nuke._set_write_renderer)")
            _write_renderer[0](node, f)
        finally:
            _this.pop()
            _frame[0] = old


def expr(s: str) -> float:
    """nuke.expr: Nuke's expression parser (floats; ``frame``/``t``/``x`` is the context frame). The stand-in
    evaluates arithmetic only."""
    return float(eval(str(s), {"__builtins__": {}}, {"frame": _frame[0], "t": _frame[0], "x": _frame[0]}))


def executeInMainThread(call: Callable, args=(), kwargs=None) -> None:
    if not isinstance(args, tuple):
        raise TypeError("executeInMainThread: args must be a tuple")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError("executeInMainThread: kwargs must be a dict")
    _record("executeInMainThread", getattr(call, "__name__", repr(call)), threading.current_thread().name)
    _main_queue.put((call, args, kwargs or {}))


def executeInMainThreadWithResult(call: Callable, args=(), kwargs=None):
    if threading.current_thread() is threading.main_thread():
        return call(*args, **(kwargs or {}))
    raise RuntimeError("stand-in: executeInMainThreadWithResult from a thread is not supported")


class ProgressTask:
    def __init__(self, name: str):
        _main_only("ProgressTask")
        self.name = name
        self.messages: list[str] = []
        self.progress: list[int] = []
        self._cancelled = False
        self.closed = False
        _progress_tasks.append(self)

    def setMessage(self, message: str) -> None:
        _main_only("ProgressTask.setMessage")
        if not isinstance(message, str):
            raise TypeError("setMessage takes a string")
        self.messages.append(message)

    def setProgress(self, value: int) -> None:
        _main_only("ProgressTask.setProgress")
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("setProgress takes an int")
        self.progress.append(value)

    def isCancelled(self) -> bool:
        _main_only("ProgressTask.isCancelled")
        return self._cancelled

    def _cancel(self) -> None:          # test-only: the artist presses Cancel
        self._cancelled = True

    def __del__(self):
        self.closed = True


class Menu:
    def __init__(self, name: str):
        self._name = name
        self.items: list = []

    def name(self) -> str:
        return self._name

    def addMenu(self, name: str, icon: str | None = None, tooltip: str | None = None, index: int = -1) -> "Menu":
        for item in self.items:
            if isinstance(item, Menu) and item._name == name:
                return item
        m = Menu(name)
        self.items.append(m)
        _record("addMenu", self._name, name)
        return m

    def addCommand(self, name: str, command: Any = None, shortcut: str = "", icon: str = "", tooltip: str = "",
                   index: int = -1, readonly: bool = False):
        if not isinstance(name, str) or not isinstance(command, (str, type(None))) and not callable(command):
            raise TypeError("addCommand(name, command: str or callable)")
        self.items.append((name, command))
        _record("addCommand", self._name, name, command)
        return (name, command)

    def findItem(self, name: str):
        head, _, rest = name.partition("/")
        for item in self.items:
            item_name = item._name if isinstance(item, Menu) else item[0]
            if item_name == head:
                return item.findItem(rest) if rest and isinstance(item, Menu) else item
        return None


def menu(name: str) -> Menu:
    return _menus.setdefault(name, Menu(name))


def toolbar(name: str, create: bool = True) -> Menu:
    return _menus.setdefault(f"toolbar:{name}", Menu(name))


def addBeforeFrameRender(call: Callable, args=(), kwargs=None, nodeClass: str = "Write") -> None:
    _callbacks["beforeFrameRender"].append(call)
    _record("addBeforeFrameRender", getattr(call, "__name__", repr(call)))


def message(text: str) -> None:
    _messages.append(text)


def warning(text: str) -> None:
    _warnings.append(text)


def tprint(*values) -> None:
    _messages.append(" ".join(str(v) for v in values))


def filename(node, i: int | None = None) -> str | None:
    return node["file"].value() if node.knob("file") is not None else None


# ---- test-only helpers ----------------------------------------------------------------------------------------

def _reset() -> None:
    _calls.clear()
    while not _main_queue.empty():
        _main_queue.get_nowait()
    _context.clear()
    _this.clear()
    _frame[0] = 1
    for v in _callbacks.values():
        v.clear()
    _menus.clear()
    _progress_tasks.clear()
    _messages.clear()
    _warnings.clear()
    _write_renderer.clear()
    _LAYERS.clear()
    _root[0] = Root()
    _calls.clear()


def _pump(timeout: float = 10.0, until: Callable[[], bool] | None = None) -> int:
    """Run queued main-thread calls (what Nuke's event loop does) until ``until()`` or the queue stays empty
    for a moment; returns how many ran."""
    import time

    _main_only("_pump")
    ran = 0
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if until is not None and until():
            return ran
        try:
            call, args, kwargs = _main_queue.get(timeout=0.05)
        except queue.Empty:
            if until is None:
                return ran
            continue
        call(*args, **kwargs)
        ran += 1
    if until is not None and not until():
        raise TimeoutError("the main-thread queue did not reach the expected state")
    return ran


def _user_set(knob: Knob, value, time: float | None = None) -> None:
    """An artist changes a knob in the panel (a value, or a key at ``time``): the node's knobChanged runs."""
    if time is None:
        knob.setValue(value)
    else:
        knob.setValueAt(value, time)
    knob._changed()


def _run_script_knob(node: Node, name: str) -> None:
    """Run a node's callback knob (``onCreate`` when a script is opened, ``knobChanged``…) as Nuke does."""
    script = node[name]._value
    if script:
        _this.append((node, node[name]))
        try:
            exec(script, _script_globals())
        finally:
            _this.pop()


def _set_metadata(node: Node, metadata: dict) -> None:
    """The metadata a Read's file (or an input-less node) carries, as Nuke would read it."""
    node._meta = dict(metadata)


def _set_write_renderer(fn: Callable[[Node, int], None]) -> None:
    _write_renderer.clear()
    _write_renderer.append(fn)


def _oc(frame_number: int) -> OutputContext:
    oc = OutputContext()
    oc.setFrame(frame_number)
    return oc


def _eval_expression(knob: Knob, frame_number: int):
    """Evaluate a knob's expression at ``frame_number`` the way Nuke does: TCL first (``[frame]`` is the frame
    being evaluated — under a TimeOffset or FrameHold downstream that is not the root's frame — and ``[python
    …]`` runs with ``nuke.thisNode()`` = the knob's node), then the number; ``parent.knob`` reads the parent's
    knob at that frame. ``nuke.frame()`` stays the root's frame during the evaluation: "Normally this is the
    frame number set in the root node" (Foundry, nuke.frame, deprecated: "Use Root.frame")."""
    expr = knob._expression
    if expr is None:
        return knob._value
    ref = re.fullmatch(r"parent\.(\w+)", expr.strip())
    if ref:
        return knob.node._parent[ref.group(1)].getValueAt(frame_number)
    return float(_tcl_eval(expr.strip(), frame_number, knob.node))
