"""Emotion Director for Nuke: a Group node whose knobs come from the daemon, rendering through EXR files.

The node (Nodes > ned_fx > Emotion Director) is a Group::

    Source ─┬────────────────────────────────────────────────────────────── Switch ── Output
            ├─ ned_bake (Write, EXR, rgba, raw, disabled)                   │    ▲ which: the edited frame
            │                                                               │    │ exists (and is stamped)?
    ned_edit (Read, raw) ─ ned_copy (rgb of A into Source) ─ ned_mix (Dissolve by `mix`) ─ ned_stamp
                                                                  (ModifyMetaData: the edit record)
    Holdout (input 1) ── ned_bake_holdout (Write, EXR, alpha, raw, disabled)

* The optional **Holdout** input's alpha (a roto of a hand, a prop, hair) is baked at Analyse beside the source and
  sent as the session's ``holdout_matte`` (over that knob's file): the plate is kept wherever it is 1. It keys the
  cache, and its upstream is part of the input signature (a changed roto asks for Analyse again).

* Its knobs are built from the daemon's ``describe`` (:func:`ned_fx.hosts.params.knob_specs`; a built-in list
  while no daemon answers): emotion, intensity (animatable), reference, face, regions, speech, keys, mix; plus
  consent, the frame range, the endpoint and the cache folder.
* **Analyse** bakes the input range to EXR through ``ned_bake`` (main thread, a cancellable ``ProgressTask``;
  frames whose pixels did not change keep their files, so the daemon's cached analysis stays valid), then runs
  the daemon's analysis in a background thread (:class:`ned_fx.hosts.analysis.AnalysisController`) and renders
  the frames into the cache (:class:`ned_fx.hosts.frames.FrameRenderer`), current frame first. Background
  threads never touch a node: every update reaches the node through ``nuke.executeInMainThread``.
* The edited frames are EXRs the daemon made from the baked ones: bbox (data window), format, frame numbers and
  alpha are the input's; only rgb is copied from them (``ned_copy``), so extra channels and metadata come
  straight from the input — and the edit's matte, ``ned.matte`` (the ``ned`` layer: the compositor's blend
  weights, in the frames when the daemon returns them; black until then), for grading, eroding or holding out
  the edit region downstream. ``mix`` is a Dissolve, so it animates without re-rendering.
* The edited branch says it was edited: ``ned_stamp`` (ModifyMetaData) sets the daemon's edit record on it per
  frame (:func:`ned_fx.hosts.stamps.nuke_metadata_lines`: ``exr/ned_fx/provenance``, the flat ``exr/ned_fx/*``
  keys, ``exr/comments``), which an EXR Write set to "default metadata and exr/*" writes as the header
  attributes ``ned_fx``'s own writer uses. Where the node passes its input through, nothing is stamped. The
  record is kept beside the edited frames (``provenance.json``), so going back to earlier settings restores it.
* An animated intensity becomes the daemon's keyframes (:func:`ned_fx.hosts.params.keys_from_samples`) when
  Analyse is pressed; changing any edit knob points the node at another cache folder (frames already rendered
  for those settings show again at once) and asks for Analyse.
* The Switch shows an edited frame only where it was made from the input the node has now (a signature of the
  upstream graph and Read files per frame, kept beside each frame) and asks for it at the frame being evaluated
  (TCL ``[frame]``), so upstream changes and TimeOffset/FrameHold downstream are right without a knob change.
* With no daemon, the node passes its input through, turns red and says why (status knob and label) within 2 s;
  it recovers on the next Analyse or Check daemon. Write renders get the frames the Write pulls from the node in
  a before-frame-render callback — from the (shared) cache, or rendered through the daemon (a farm blade's own,
  or one it starts with ``$NED_FX_PYTHON``) — and fail a frame they cannot edit (always on the farm; in the GUI
  unless ``strict`` is off). Nothing that came from the daemon is TCL-evaluated.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import json
import os
import re
import socket
import tempfile
import threading
import time
from pathlib import Path

import nuke

from ned_fx.errors import InvalidParameterError, NedFxError
from ned_fx.hosts.analysis import AnalysisController, AnalysisUpdate, ShotHandle, ShotRequest
from ned_fx.hosts.frames import FrameDone, FrameRenderer, RenderSummary, frame_path, ordered_frames, render_to_file
from ned_fx.hosts.images import atomic_write_bytes, same_exr_content
from ned_fx.hosts.link import DEFAULT_ENDPOINT, DaemonLink, LinkConfig
from ned_fx.hosts.params import KnobSpec, REFERENCE_OPTION, keys_from_samples, knob_specs, open_params
from ned_fx.hosts.stamps import RECOMMENDED_WRITE_SETTING, frame_expression, nuke_metadata_lines, write_keeps_record
from ned_fx.hosts.wire import MISSING, DaemonError, DaemonUnavailableError
from ned_fx.provenance import EditRecord, ProvenanceError

VERSION = "1"
NODE_NAME = "EmotionDirector1"
SOURCE_MODES = ("bake input", "upstream Read file")
#: The Switch shows the edited branch (1) only where the edited frame exists for the current settings and was
#: made from the input the node has now. ``[frame]`` is substituted by TCL before the Python runs (the word is in
#: double quotes, not braces): it is the frame being evaluated — under a TimeOffset or FrameHold downstream not
#: the root's frame that ``nuke.frame()`` returns.
SWITCH_EXPRESSION = "[python \"__import__('ned_fx_nuke').show_edit(nuke.thisParent(), [frame])\"]"
#: The Write inside the node that bakes the Holdout input's alpha (input 1), and where it goes under the cache.
HOLDOUT_BAKE = "ned_bake_holdout"
HOLDOUT_FOLDER, HOLDOUT_NAME = "holdout", "hold.%04d.exr"
#: Beside each edited (and baked) frame: the signature of the input it was made from (``edit.1001.exr.input``).
SIGNATURE_SUFFIX = ".input"
#: Knobs that change how a node looks in the DAG, not its pixels (left out of the input signature).
_UI_KNOBS = frozenset({"xpos", "ypos", "selected", "label", "note_font", "note_font_size", "note_font_color",
                       "tile_color", "gl_color", "hide_input", "postage_stamp", "icon", "indicators", "help",
                       "onCreate", "onDestroy", "knobChanged", "updateUI", "autolabel", "panel", "name",
                       "bookmark", "dope_sheet", "cached", "status", "ned_ok", "ned_cache", "ned_stamped",
                       "ned_offset",
                       "reload"})
#: Characters TCL acts on in an eval-string knob (label, file…): text from the daemon never reaches one with them.
_TCL_ACTIVE = re.compile(r"[\[\]$\\]")
#: The shot's edit record beside its edited frames (what ``ned_stamp`` stamps for those settings).
PROVENANCE_FILE = "provenance.json"
#: Knobs whose change alters the edit (and so its cache folder).
_SETTINGS = ("blend", "consent", "first_frame", "last_frame", "source", "cache_dir")
OK_COLOUR, ERROR_COLOUR = 0, 0xC03030FF
#: Knob names the node uses itself (a daemon parameter of the same name is skipped with a warning), and Nuke's
#: own knobs every node has.
RESERVED_KNOBS = frozenset({"status", "blend", "consent", "analyse", "render", "check", "endpoint", "source",
                            "first_frame", "last_frame", "cache_dir", "strict", "ned_fx_version", "ned_params",
                            "ned_ok", "ned_cache", "ned_stamped", "ned_offset", "name", "label", "disable",
                            "tile_color",
                            "knobChanged", "help", "onCreate", "note_font", "selected", "hide_input", "postage_stamp"})


# ---- per-node runtime (never stored in the script) ---------------------------------------------------------------

@dataclasses.dataclass
class _Runtime:
    analysis: AnalysisController | None = None
    renderer: FrameRenderer | None = None
    task: object | None = None
    handle: ShotHandle | None = None
    key: str = ""
    last_reload: float = 0.0
    #: frame -> signature of the input the open session was analysed from (a changed input needs a new session)
    inputs: dict = dataclasses.field(default_factory=dict)


_RUNTIME: dict[str, _Runtime] = {}
_BAKING = [False]
#: A render hook trusts a failed liveness check this long (a farm frame without a daemon costs 2 s once, not
#: once per frame and node).
STATUS_MAX_AGE = 10.0
_LINKS: dict[str, DaemonLink] = {}
_LINKS_LOCK = threading.Lock()


def _runtime(node) -> _Runtime:
    return _RUNTIME.setdefault(node.fullName(), _Runtime())


def link_for(endpoint: str) -> DaemonLink:
    """The shared link to ``endpoint`` (one per endpoint for the whole session)."""
    endpoint = endpoint.strip() or LinkConfig.from_env().endpoint
    with _LINKS_LOCK:
        if endpoint not in _LINKS:
            _LINKS[endpoint] = DaemonLink(LinkConfig.from_env(endpoint))
        return _LINKS[endpoint]


def _main(fn, *args) -> None:
    """Run ``fn(*args)`` on Nuke's main thread (the only place nodes and progress tasks are touched)."""
    nuke.executeInMainThread(fn, args)


def is_emotion_director(node) -> bool:
    return node is not None and node.knob("ned_fx_version") is not None


# ---- creating the node -----------------------------------------------------------------------------------------

def create_node(endpoint: str | None = None):
    """Create an Emotion Director node (the menu command). Knobs come from the daemon's ``describe`` when it
    answers within 2 s, else from the built-in list (the node says so)."""
    link = link_for(endpoint or "")
    described = link.describe()
    warnings: list[str] = []
    specs = knob_specs(described.get("parameters") if described else None, warn=warnings.append)
    for spec in specs:
        if spec.name in RESERVED_KNOBS:
            warnings.append(f"skipped parameter {spec.name!r}: the node uses that knob name itself")
    specs = tuple(_without_tcl(s, warnings.append) for s in specs if s.name not in RESERVED_KNOBS)
    for w in warnings:
        nuke.warning(f"Emotion Director: {w}")
    group = nuke.createNode("Group", inpanel=False)
    group.setName(NODE_NAME, uncollide=True)
    build_node(group, specs, endpoint or "")
    if described is None:
        show_status(group, False, link.status.message)
    else:
        show_status(group, True, f"{link.status.message}: set the edit, then press Analyse")
    return group


def _without_tcl(spec: KnobSpec, warn) -> KnobSpec:
    """The spec with a default that TCL would act on dropped: a File knob evaluates its text as TCL when read,
    so a ``[python …]`` default from the daemon would run in Nuke. Nothing from the daemon is TCL-evaluated."""
    if isinstance(spec.default, str) and _TCL_ACTIVE.search(spec.default):
        warn(f"parameter {spec.name!r}: ignored the daemon's default {spec.default[:40]!r} (brackets, dollars and "
             f"backslashes would be run as TCL by Nuke)")
        return dataclasses.replace(spec, default="")
    return spec


def _knob_for(spec: KnobSpec):
    """One Nuke knob for one spec (a kind maps to exactly one knob class)."""
    if spec.kind == "choice":
        knob = nuke.Enumeration_Knob(spec.name, spec.label, list(spec.options))
        knob.setValue(spec.default)
    elif spec.kind == "double":
        knob = nuke.Double_Knob(spec.name, spec.label)
        if spec.minimum is not None and spec.maximum is not None:
            knob.setRange(spec.minimum, spec.maximum)
        knob.setValue(spec.default if spec.default is not None else (spec.minimum or 0.0))
    elif spec.kind == "integer":
        knob = nuke.Int_Knob(spec.name, spec.label)
        knob.setValue(int(spec.default if spec.default is not None else (spec.minimum or 0)))
    elif spec.kind == "boolean":
        knob = nuke.Boolean_Knob(spec.name, spec.label, bool(spec.default))
    elif spec.kind == "file":
        knob = nuke.File_Knob(spec.name, spec.label)
        knob.setValue(spec.default or "")       # checked by create_node: no TCL from the daemon
    else:
        knob = nuke.String_Knob(spec.name, spec.label)
        knob.setValue(spec.default or "")
    knob.setTooltip(spec.hint)
    return knob


def _hidden(knob):
    knob.setFlag(nuke.INVISIBLE)
    return knob


def build_node(group, specs, endpoint: str = "") -> None:
    """Add the knobs and the internal graph to a fresh Group. ``endpoint`` empty: ``$NED_FX_ENDPOINT`` where the
    script runs (a farm blade's own), else the default."""
    root = nuke.root()
    first, last = int(root["first_frame"].value()), int(root["last_frame"].value())
    group.addKnob(nuke.Tab_Knob("ned_fx_tab", "Emotion Director"))
    group.addKnob(nuke.Text_Knob("status", "status", ""))
    for spec in specs:
        group.addKnob(_knob_for(spec))
        if spec.optional and spec.kind == "integer":
            toggle = nuke.Boolean_Knob(f"{spec.name}_on", "set", False)
            toggle.clearFlag(nuke.STARTLINE)
            toggle.setTooltip(f"use {spec.label.lower()}; off: {spec.hint}")
            group.addKnob(toggle)
        if spec.name == "emotion":
            blend = nuke.String_Knob("blend", "blend")
            blend.setTooltip("optional: a blend such as happy:0.7,surprised:0.3 (overrides the emotion)")
            group.addKnob(blend)
    group.addKnob(nuke.Text_Knob("ned_div1", ""))
    consent = nuke.String_Knob("consent", "consent")
    consent.setTooltip("the performer's consent reference (release id); recorded with the edit")
    group.addKnob(consent)
    group.addKnob(nuke.PyScript_Knob("analyse", "Analyse", "import ned_fx_nuke; ned_fx_nuke.analyse(nuke.thisNode())"))
    render = nuke.PyScript_Knob("render", "Render frames", "import ned_fx_nuke; ned_fx_nuke.render_frames(nuke.thisNode())")
    render.clearFlag(nuke.STARTLINE)
    group.addKnob(render)
    check = nuke.PyScript_Knob("check", "Check daemon", "import ned_fx_nuke; ned_fx_nuke.check_daemon(nuke.thisNode())")
    check.clearFlag(nuke.STARTLINE)
    group.addKnob(check)

    group.addKnob(nuke.Tab_Knob("ned_fx_setup", "Setup"))
    ep = nuke.String_Knob("endpoint", "daemon")
    ep.setValue(endpoint)
    ep.setTooltip(f"the daemon; empty: $NED_FX_ENDPOINT where the script runs (farm blades set their own), else "
                  f"{DEFAULT_ENDPOINT}")
    group.addKnob(ep)
    source = nuke.Enumeration_Knob("source", "source", list(SOURCE_MODES))
    source.setTooltip("bake input: the node writes its input to EXR for the daemon (any input); upstream Read "
                      "file: the daemon reads the EXR sequence of the Read connected to the node (no bake)")
    group.addKnob(source)
    f0 = nuke.Int_Knob("first_frame", "frame range")
    f0.setValue(first)
    group.addKnob(f0)
    f1 = nuke.Int_Knob("last_frame", "")
    f1.setValue(last)
    f1.clearFlag(nuke.STARTLINE)
    group.addKnob(f1)
    cache = nuke.File_Knob("cache_dir", "cache folder")
    cache.setTooltip("where baked and edited frames go (must be under a folder the daemon serves, "
                     "ned-fx serve --root); empty: $NED_FX_NUKE_CACHE or the temp folder")
    group.addKnob(cache)
    strict = nuke.Boolean_Knob("strict", "fail renders that cannot edit", True)
    strict.setTooltip("a Write render fails a frame this node cannot edit (no daemon, input changed since the "
                      "bake…) instead of writing the input unedited; off: GUI renders pass the input through "
                      "(unstamped). Command-line and farm renders (nuke -x) are always strict")
    group.addKnob(strict)
    group.addKnob(_hidden(nuke.String_Knob("ned_fx_version", "", VERSION)))
    params = nuke.String_Knob("ned_params", "")
    params.setValue(json.dumps([dict(dataclasses.asdict(s), options=list(s.options)) for s in specs]))
    group.addKnob(_hidden(params))
    group.addKnob(_hidden(nuke.Boolean_Knob("ned_ok", "", False)))
    group.addKnob(_hidden(nuke.String_Knob("ned_cache", "")))
    group.addKnob(_hidden(nuke.String_Knob("ned_stamped", "")))     # the cache pattern ned_stamp's record is for
    group.addKnob(_hidden(nuke.Int_Knob("ned_offset", "")))         # source (file) frame - node frame
    group["knobChanged"].setValue("import ned_fx_nuke; ned_fx_nuke.knob_changed()")
    group["onCreate"].setValue("import ned_fx_nuke; ned_fx_nuke.on_create()")

    group.begin()
    try:
        inp = nuke.nodes.Input(name="Source")
        bake = nuke.nodes.Write(name="ned_bake", file_type="exr", channels="rgba", datatype="32 bit float",
                                compression="Zip (1 scanline)", raw=True, create_directories=True,
                                disable=True)
        bake.setInput(0, inp)
        # the optional holdout matte (input 1): its alpha, baked beside the source at Analyse, keeps the plate
        # where it is 1 (a hand, a prop, hair: what the occluder detection would miss)
        hold = nuke.nodes.Input(name="Holdout", number=1)
        hold_bake = nuke.nodes.Write(name=HOLDOUT_BAKE, file_type="exr", channels="alpha", datatype="32 bit float",
                                     compression="Zip (1 scanline)", raw=True, create_directories=True,
                                     disable=True)
        hold_bake.setInput(0, hold)
        # a missing edited frame is an error, never black: the Switch only pulls this branch where the frame
        # exists, so an error here means the cache changed under the render, and the frame must fail
        edit = nuke.nodes.Read(name="ned_edit", raw=True, on_error="error")
        matte = ensure_matte_layer()
        copy = nuke.nodes.Copy(name="ned_copy", from0="rgba.red", to0="rgba.red", from1="rgba.green",
                               to1="rgba.green", from2="rgba.blue", to2="rgba.blue", from3=matte, to3=matte,
                               bbox="B")
        copy.setInput(0, inp)
        copy.setInput(1, edit)
        mix = nuke.nodes.Dissolve(name="ned_mix")
        mix.setInput(0, inp)
        mix.setInput(1, copy)
        mix["which"].setExpression("parent.mix" if group.knob("mix") is not None else "1")
        stamp_node = nuke.nodes.ModifyMetaData(name="ned_stamp")   # the edit record, set after Analyse
        stamp_node.setInput(0, mix)
        switch = nuke.nodes.Switch(name="ned_switch")
        switch.setInput(0, inp)
        switch.setInput(1, stamp_node)
        switch["which"].setExpression(SWITCH_EXPRESSION)
        out = nuke.nodes.Output(name="Output1")
        out.setInput(0, switch)
    finally:
        group.end()
    update_cache_pattern(group)


def ensure_matte_layer() -> str:
    """The ``ned`` layer with the edit's matte channel (``ned.matte``: the compositor's blend weights, carried
    in the edited frames when the daemon returns them); returns the channel name."""
    from ned_fx.hosts.frames import MATTE_CHANNEL

    layer = MATTE_CHANNEL.split(".")[0]
    if layer not in nuke.layers():
        if hasattr(nuke, "Layer"):
            nuke.Layer(layer, [MATTE_CHANNEL])
        else:                                   # Nukes before the Layer class
            nuke.tcl("add_layer", "{%s %s}" % (layer, MATTE_CHANNEL))
    return MATTE_CHANNEL


def specs_of(node) -> tuple[KnobSpec, ...]:
    """The specs the node was built from (kept in a hidden knob; only known fields are read back)."""
    try:
        raw = json.loads(node["ned_params"].value() or "[]")
    except ValueError:
        raw = []
    fields = {f.name for f in dataclasses.fields(KnobSpec)}
    specs = []
    for d in raw if isinstance(raw, list) else []:
        if isinstance(d, dict) and {"name", "kind", "label"} <= set(d):
            kw = {k: v for k, v in d.items() if k in fields}
            kw["options"] = tuple(kw.get("options") or ())
            specs.append(KnobSpec(**kw))
    return tuple(specs) or knob_specs()


# ---- status on the node ----------------------------------------------------------------------------------------

def show_status(node, ok: bool, message: str) -> None:
    """The node's status: the status knob (red when not ok), the label in the DAG, the tile colour. Main
    thread only."""
    safe = message.replace("<", "&lt;").replace(">", "&gt;")
    node["status"].setValue(safe if ok else f"<font color='#ff6060'>{safe}</font>")
    short = message[:60] + ("…" if len(message) > 60 else "")
    # the label is TCL-evaluated in the DAG: messages (some from the daemon) lose the characters TCL acts on
    short = short.replace("[", "(").replace("]", ")").replace("$", "S").replace("\\", "/")
    node["label"].setValue("" if ok else "ERROR: " + short)
    node["tile_color"].setValue(OK_COLOUR if ok else ERROR_COLOUR)
    if not ok:
        node["ned_ok"].setValue(False)


def on_create() -> None:
    """The node's onCreate (also when a script is opened): check the daemon in the background, so a node whose
    daemon is gone turns red and passes its input through instead of showing stale edits without a word."""
    node = nuke.thisNode()
    if is_emotion_director(node) and nuke.env.get("gui", False):
        check_daemon(node)


def check_daemon(node) -> None:
    """Check daemon button: ping in the background (2 s at most), report on the main thread."""
    link = link_for(node["endpoint"].value())
    name = node.fullName()

    def work():
        status = link.check()
        _main(_report_link, name, status.ok, status.message)

    threading.Thread(target=work, name="ned-fx-check", daemon=True).start()


def _report_link(name: str, ok: bool, message: str) -> None:
    node = nuke.toNode(name)
    if node is None:
        return
    show_status(node, ok, message if not ok else f"{message}: press Analyse to edit")
    if ok and _runtime(node).handle is not None:
        node["ned_ok"].setValue(True)


# ---- settings -> request -------------------------------------------------------------------------------------

def cache_root(node) -> Path:
    folder = node["cache_dir"].value().strip() if node.knob("cache_dir") else ""
    if not folder:
        folder = os.environ.get("NED_FX_NUKE_CACHE") or os.path.join(tempfile.gettempdir(),
                                                                       f"ned_fx_nuke-{getpass.getuser()}")
    script = Path(nuke.root().name() or "untitled").stem or "untitled"
    return Path(folder) / re.sub(r"[^A-Za-z0-9._-]+", "_", script) / re.sub(r"[^A-Za-z0-9._-]+", "_",
                                                                           node.fullName())


def frame_range(node) -> tuple[int, int]:
    first, last = int(node["first_frame"].value()), int(node["last_frame"].value())
    if last < first:
        raise InvalidParameterError(f"the frame range {first}-{last} is empty: last must be >= first")
    return first, last


def source_of(node) -> tuple[str, bool]:
    """``(the daemon's source path, whether the node must bake it)`` (see :func:`source_frames`)."""
    path, bake, _ = source_frames(node)
    return path, bake


def source_frames(node) -> tuple[str, bool, int]:
    """``(the daemon's source path, whether the node must bake it, source frame minus node frame)``.

    Raises:
        InvalidParameterError: upstream-Read mode without a Read of an EXR sequence, or one that converts colour.
    """
    if node["source"].value() == SOURCE_MODES[0]:
        return str(cache_root(node) / "src" / "src.%04d.exr"), True, 0
    read = node.input(0)
    if read is None or read.Class() != "Read":
        raise InvalidParameterError("source 'upstream Read file' needs a Read node connected to the input; "
                                    "valid: connect a Read of an EXR sequence, or choose 'bake input'")
    first, last = frame_range(node)
    path, offset = read_sequence(read, first, last)
    if not path.lower().endswith(".exr"):
        raise InvalidParameterError(f"the upstream Read's file {path!r} is not an EXR sequence; choose 'bake input'")
    converts = read_converts_colour(read)
    if converts:
        raise InvalidParameterError(f"the upstream Read converts colour ({converts}); the daemon would edit "
                                    f"other values than Nuke shows: choose 'bake input' or set the Read to raw")
    return path, False, offset


def holdout_of(node) -> str | None:
    """Where the node bakes its Holdout input (input 1, its alpha) when one is connected: the holdout matte the
    daemon reads, numbered like the source (None: nothing connected, or a node made before the input existed).
    It replaces the ``holdout_matte`` knob's file."""
    if node.node(HOLDOUT_BAKE) is None or node.inputs() < 2 or node.input(1) is None:
        return None
    return str(cache_root(node) / HOLDOUT_FOLDER / HOLDOUT_NAME)


def read_sequence(read, first: int, last: int) -> tuple[str, int]:
    """The Read's sequence as the daemon must see it: ``(pattern, offset)`` — the ``file`` knob evaluated as Nuke
    does (TCL such as ``[getenv SHOW]``, then the frame number) at the file frame the Read reads for each node
    frame (its ``frame`` knob: an offset, a start frame or an expression), as a ``%0Nd`` pattern, and the constant
    ``file frame - node frame``.

    Raises:
        InvalidParameterError: not a sequence, or a frame mapping that is not a constant shift (``frame*2``…).
    """
    raw = read["file"].value()
    m = re.search(r"%0?(\d*)d|#+", raw)
    if not m:
        raise InvalidParameterError(f"the upstream Read's file {raw!r} is not an image sequence "
                                    f"(%04d or ####); choose 'bake input'")
    files = {f: _read_file_at_node_time(read, f) for f in sorted({first, (first + last) // 2, last})}
    number = re.search(r"(\d+)(?!.*\d)", Path(files[first]).name)
    pattern, offset = "", 0
    if number:
        head = files[first][:len(files[first]) - len(Path(files[first]).name)]
        name = Path(files[first]).name
        digits = number.group(1)
        pattern = head + name[:number.start()] + f"%0{len(digits)}d" + name[number.end():]
        offset = int(digits) - first
    if not pattern or any(str(frame_path(pattern, f + offset)) != path for f, path in files.items()):
        raise InvalidParameterError(f"the upstream Read reads {files[first]!r} at frame {first}: its frame knob "
                                    f"maps frames other than by a constant shift, or it names files another way; "
                                    f"the edited frames would not line up: choose 'bake input'")
    return pattern, offset


def _read_file_at_node_time(read, frame: int) -> str:
    """The file a Read reads at node time ``frame``, with its ``frame`` knob (offset/expression) applied."""
    mode = read["frame_mode"].value() if read.knob("frame_mode") is not None else ""
    text = str(read["frame"].value()).strip() if read.knob("frame") is not None else ""
    file_frame = frame
    if text:
        if mode == "offset":                # moves the sequence in time: -499 reads image.0500 at frame 1
            file_frame = frame - int(float(text))
        elif mode == "start at":
            file_frame = int(read["first"].value()) + frame - int(float(text))
        else:
            file_frame = int(nuke.expr(text.replace("frame", str(frame)))) if hasattr(nuke, "expr") else frame
    return _read_file_at(read, file_frame)


def read_converts_colour(read) -> str:
    """The conversion a Read applies ("" when none): none when ``raw`` is on or its colourspace is the script's
    working space (``default (X)`` is X; the ``scene_linear`` role and ``linear`` name the working space in
    Nuke's default config). Names are OCIO's, e.g. "ACES - ACEScg" — compared whole, never by substring."""
    if read.knob("raw") is not None and read["raw"].value():
        return ""
    colorspace = str(read["colorspace"].value()) if read.knob("colorspace") is not None else "default (linear)"
    inner = re.fullmatch(r"default \((.*)\)", colorspace)
    space = inner.group(1) if inner else colorspace
    root = nuke.root()
    working = str(root["workingSpaceLUT"].value()) if root.knob("workingSpaceLUT") is not None else "linear"
    if space == working or space in ("scene_linear", "linear") and working in ("scene_linear", "linear"):
        return ""
    return f"{colorspace} to the working space {working}"


def _shift_keys(keys: str, offset: int) -> str:
    """Typed keys ``FRAME:EMOTION[:INTENSITY],…`` (node frames) in the source's frame numbers."""
    if not offset or not keys:
        return keys
    return ",".join(re.sub(r"^\s*(-?\d+)", lambda m: str(int(m.group(1)) + offset), item) for item in keys.split(","))


def _instruction_values(node, specs, frames: list[int], offset: int = 0) -> dict:
    values = {}
    for spec in specs:
        if spec.host_side:
            continue
        knob = node.knob(spec.name)
        if knob is None:
            continue
        if spec.kind in ("string", "file"):
            value = knob.evaluate() if spec.kind == "file" and hasattr(knob, "evaluate") else knob.value()
        elif hasattr(knob, "isAnimated") and knob.isAnimated() and frames:
            # value() follows the current frame: an animated knob is read at the range's first frame (the
            # animation itself is sent as keys), so the settings — and the cache key — do not move with the
            # playhead or with the frame a render is on
            value = knob.getValueAt(frames[0])
        else:
            value = knob.value()
        if spec.optional and node.knob(f"{spec.name}_on") is not None and not node[f"{spec.name}_on"].value():
            value = None
        values[spec.name] = value
    params = open_params(specs, {k: v for k, v in values.items() if k != "emotion"})
    blend = node["blend"].value().strip() if node.knob("blend") else ""
    emotion = blend or values.get("emotion") or ""
    if emotion == REFERENCE_OPTION:
        if not params.get("reference"):
            raise InvalidParameterError("emotion 'reference' needs a reference image or clip")
        emotion = ""
    if emotion:
        params["emotion"] = emotion
    if params.get("keys"):
        params["keys"] = _shift_keys(params["keys"], offset)
    if params.get("neutral_frame") is not None and offset:
        params["neutral_frame"] = int(params["neutral_frame"]) + offset
    intensity = node.knob("intensity")
    if intensity is not None and intensity.isAnimated() and not params.get("keys"):
        samples = [float(intensity.getValueAt(f)) for f in frames]       # sampled at node frames,
        params["keys"] = keys_from_samples([f + offset for f in frames], samples,   # keyed at source frames
                                           emotion or REFERENCE_OPTION)
    return params


def request_offset(node, request: ShotRequest) -> int:
    """The source-minus-node frame offset ``request`` was built with."""
    return int(str(request.frames).split("-")[0]) - frame_range(node)[0]


def build_request(node) -> tuple[ShotRequest, bool, str]:
    """``(request, needs_bake, edited frames pattern)`` from the node's knobs (main thread).

    Raises:
        InvalidParameterError: a knob value the daemon would refuse (the message lists the valid ones).
    """
    first, last = frame_range(node)
    path, bake, offset = source_frames(node)
    params = _instruction_values(node, specs_of(node), list(range(first, last + 1)), offset)
    holdout = holdout_of(node)
    if holdout is not None:
        params["holdout_matte"] = holdout          # the connected input wins over the knob's file
    consent = node["consent"].value().strip() or None
    # the daemon's frames are the source's numbers (node frame + offset); the cache is numbered the same way
    request = ShotRequest(path, f"{first + offset}-{last + offset}", params, consent, getpass.getuser(),
                          socket.gethostname(), f"Nuke {getattr(nuke, 'NUKE_VERSION_STRING', '')}".strip())
    # the key names the settings, not where the cache is: a blade with another cache root finds the same key
    keyed = dict(params, **({"holdout_matte": "<holdout bake>"} if holdout is not None else {}))
    key = hashlib.sha256(json.dumps(["<bake>" if bake else request.path, request.frames, sorted(keyed.items()),
                                     consent], default=str).encode()).hexdigest()[:16]
    return request, bake, str(cache_root(node) / key / "edit.%04d.exr")


def update_cache_pattern(node) -> str:
    """Point the node at the edited frames of its current settings (pass-through where they do not exist)."""
    try:
        request, _, pattern = build_request(node)
        offset = request_offset(node, request)
    except NedFxError as exc:
        node["ned_cache"].setValue("")
        clear_stamp(node)
        show_status(node, False, str(exc))
        return ""
    if pattern != node["ned_cache"].value() or offset != offset_of(node):
        point_at(node, pattern, offset)
    return pattern


def point_at(node, pattern: str, offset: int = 0) -> bool:
    """Show ``pattern``'s frames: ``ned_cache``, the inner Read (file, range, frame offset) and the stamp move
    together — the only place they change, so the Read never reads another folder or frame than the one the node
    checks. The cache is numbered like the source: with a source ``offset`` frames later than the node's frames,
    the inner Read reads frame t + offset at node frame t (its ``frame`` knob in offset mode, which moves the
    sequence in time: -offset). Returns whether the node is stamped for it."""
    if node.knob("ned_offset") is not None and offset_of(node) != offset:
        node["ned_offset"].setValue(int(offset))
        node["ned_stamped"].setValue("")          # the stamp's source frame expression changes with it
    node["ned_cache"].setValue(pattern)
    first, last = frame_range(node)
    inner = node.node("ned_edit")
    inner["file"].setValue(pattern)
    for k, v in (("first", first + offset), ("last", last + offset), ("origfirst", first + offset),
                 ("origlast", last + offset)):
        inner[k].setValue(v)
    if inner.knob("frame_mode") is not None:
        inner["frame_mode"].setValue("offset")
        inner["frame"].setValue(str(-offset) if offset else "")
    return node["ned_stamped"].value() == pattern or restore_stamp(node, pattern)


# ---- the edit record on the output -------------------------------------------------------------------------------

def _record_path(pattern: str) -> Path:
    return Path(pattern).parent / PROVENANCE_FILE


def shot_record(node, provenance) -> EditRecord:
    """The record to stamp, from the daemon's ``progress`` reply: in ``bake input`` mode the daemon's source is
    the bake, so a Read feeding the node directly is named instead (what the artist's plate is called).

    Raises:
        ProvenanceError: the daemon sent no record, or a malformed one.
    """
    if provenance is None:
        raise ProvenanceError("the daemon sent no edit record with the analysis (update ned-fx where the daemon "
                              "runs); the edit is not shown without it")
    record = EditRecord.from_dict(provenance)
    read = node.input(0)
    if node["source"].value() == SOURCE_MODES[0] and read is not None and read.Class() == "Read":
        try:                              # the file as Nuke evaluates it (TCL, frame numbers), as a pattern
            first, last = frame_range(node)
            name = Path(read_sequence(read, first, last)[0]).name
        except NedFxError:
            name = Path(read["file"].value()).name
        if name:
            record = dataclasses.replace(record, source=name)
    return record


def stamp(node, provenance, pattern: str) -> None:
    """Keep the shot's record beside the edited frames of ``pattern`` and, if the node shows those settings,
    stamp it on the edited branch (main thread).

    Raises:
        ProvenanceError: no or a malformed record; OutputWriteError: the cache folder is not writable.
    """
    record = shot_record(node, provenance)
    Path(pattern).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(_record_path(pattern), record.to_json().encode("ascii"))
    if node["ned_cache"].value() == pattern:
        _apply_stamp(node, record, pattern)


def _apply_stamp(node, record: EditRecord, pattern: str) -> None:
    node.node("ned_stamp")["metadata"].fromScript(nuke_metadata_lines(record, frame_expression(offset_of(node))))
    node["ned_stamped"].setValue(pattern)


def clear_stamp(node) -> None:
    """Take the record off the edited branch (it is shown only where ``ned_stamped`` is the current pattern)."""
    node.node("ned_stamp")["metadata"].fromScript("")
    node["ned_stamped"].setValue("")


def restore_stamp(node, pattern: str) -> bool:
    """Stamp the record kept beside ``pattern``'s frames; without one (or an unreadable one), clear the stamp so
    those frames are not shown unstamped. Returns whether the node is stamped."""
    try:
        record = EditRecord.from_json(_record_path(pattern).read_bytes())
    except (OSError, ProvenanceError):
        clear_stamp(node)
        return False
    _apply_stamp(node, record, pattern)
    return True


def _feeds(write, node, limit: int = 10000) -> bool:
    """Whether ``node`` is upstream of ``write`` (walking inputs, at most ``limit`` nodes)."""
    seen, todo = set(), [write]
    while todo and len(seen) < limit:
        n = todo.pop()
        for i in range(n.inputs()):
            up = n.input(i)
            if up is None or id(up) in seen:
                continue
            if up is node:
                return True
            seen.add(id(up))
            todo.append(up)
    return False


def writes_dropping_record(node) -> list[str]:
    """The Write nodes downstream of ``node`` that would write its output without the edit record: not EXR, or
    an EXR Write whose ``metadata`` is not "default metadata and exr/*" (or "all metadata…")."""
    inside = node.fullName() + "."
    out = []
    for write in nuke.allNodes("Write", group=nuke.root(), recurseGroups=True):
        if write.fullName().startswith(inside) or write["disable"].value() or not _feeds(write, node):
            continue
        kind = write["file_type"].value().strip() if write.knob("file_type") else ""
        kind = kind or Path(write["file"].value()).suffix
        setting = write["metadata"].value() if write.knob("metadata") is not None else ""
        if not write_keeps_record(kind, setting):
            out.append(write.fullName())
    return out


def _write_warning(node) -> str:
    names = writes_dropping_record(node)
    if not names:
        return ""
    text = (f"{', '.join(names[:3])}{' …' if len(names) > 3 else ''} would write the edit without its record: "
            f"write EXR with metadata '{RECOMMENDED_WRITE_SETTING}'")
    nuke.warning(f"Emotion Director {node.name()}: {text}")
    return text


def knob_changed() -> None:
    """The node's knobChanged: a change of the edit re-points the cache and asks for Analyse."""
    node, knob = nuke.thisNode(), nuke.thisKnob()
    names = {s.name for s in specs_of(node) if not s.host_side} | set(_SETTINGS) | {
        f"{s.name}_on" for s in specs_of(node)}
    if knob is None or knob.name() not in names:
        return
    before = node["ned_cache"].value()
    pattern = update_cache_pattern(node)
    if pattern and pattern != before:
        done = first_missing(node) is None and node["ned_stamped"].value() == pattern
        show_status(node, True, "edited frames for these settings are cached" if done else
                    "settings changed: press Analyse (the track is cached, so it is quick)")
        if done:
            node["ned_ok"].setValue(True)


def show_edit(node, frame) -> int:
    """The Switch's expression at ``frame`` (the frame being evaluated): 1 where the edited frame for the current
    settings exists, was made from the input the node has now (its signature, :func:`input_signature`) and the
    edited branch carries the record, else 0 (the input, unstamped). Reads knobs and files only."""
    try:
        if node is None or not node["ned_ok"].value():
            return 0
        pattern = node["ned_cache"].value()
        t = int(float(frame))
        f = t + offset_of(node)             # the source's frame number (the cache is numbered like the source)
        return int(bool(pattern) and node["ned_stamped"].value() == pattern and frame_path(pattern, f).is_file()
                   and made_from(pattern, f) == input_signature(node, t))
    except Exception:
        return 0


# ---- what the input is: its content signature per frame -----------------------------------------------------------

def _upstream(node, limit: int = 5000) -> list:
    """Every node the input depends on (inputs, recursively; a Group's insides too), nearest first."""
    seen, out, todo = set(), [], [node.input(i) for i in range(node.inputs())]
    while todo and len(out) < limit:
        n = todo.pop(0)
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        out.append(n)
        todo.extend(n.input(i) for i in range(n.inputs()))
        if n.Class() == "Group" and hasattr(n, "nodes"):
            todo.extend(n.nodes())
    return out


#: Seconds a frame's input signature is reused (the Switch's expression is evaluated many times per redraw).
SIGNATURE_TTL = 0.25
_SIGNATURES: dict = {}


def input_signature(node, frame: int) -> str:
    """The signature of the node's input at ``frame`` (:func:`compute_input_signature`), reused for
    :data:`SIGNATURE_TTL` seconds."""
    key, now = (node.fullName(), int(frame)), time.monotonic()
    hit = _SIGNATURES.get(key)
    if hit is not None and now - hit[0] < SIGNATURE_TTL:
        return hit[1]
    if len(_SIGNATURES) > 4096:
        _SIGNATURES.clear()
    signature = compute_input_signature(node, frame)
    _SIGNATURES[key] = (now, signature)
    return signature


def compute_input_signature(node, frame: int) -> str:
    """What the node's input at ``frame`` is made of: every upstream node's class and knob values (animation and
    expressions as saved, so a change anywhere upstream changes it), and each upstream Read's file for the frame
    (size and modification time: a re-delivered plate changes it). Nuke's Python has no node hash, and
    ``knobChanged`` only fires for the node's own panel, so this is checked wherever a frame is shown or
    rendered."""
    h = hashlib.sha256()
    for n in _upstream(node):
        h.update(f"\0{n.Class()}".encode())
        for name, knob in sorted(n.knobs().items()):
            if name not in _UI_KNOBS:
                try:
                    h.update(f"\0{name}={knob.toScript()}".encode())
                except Exception:
                    continue
        if n.Class() == "Read":
            try:
                path = _read_file_at_node_time(n, frame)
            except Exception:               # an expression Nuke itself could not evaluate: the knob text counts
                path = str(n["file"].value())
            try:
                st = os.stat(path)
                h.update(f"\0{path}:{st.st_size}:{st.st_mtime_ns}".encode())
            except OSError:
                h.update(f"\0{path}:missing".encode())
    return h.hexdigest()[:24]


def _read_file_at(read, frame: int) -> str:
    """The file a Read reads at ``frame``: its ``file`` knob evaluated as Nuke does (TCL, then the frame number)."""
    oc = nuke.OutputContext()
    oc.setFrame(frame)
    return read["file"].getEvaluatedValue(oc)


def _signature_path(pattern: str, frame: int) -> Path:
    path = frame_path(pattern, frame)
    return path.with_name(path.name + SIGNATURE_SUFFIX)


def made_from(pattern: str, frame: int) -> str:
    """The signature of the input ``pattern``'s frame was made from ("" when unknown)."""
    try:
        return _signature_path(pattern, frame).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _remember_input(pattern: str, frame: int, signature: str) -> None:
    atomic_write_bytes(_signature_path(pattern, frame), signature.encode("ascii"))


def first_missing(node) -> int | None:
    pattern = node["ned_cache"].value()
    if not pattern:
        return None
    first, last = frame_range(node)
    offset = offset_of(node)
    for t in range(first, last + 1):
        if not frame_path(pattern, t + offset).is_file() or made_from(pattern, t + offset) != input_signature(node, t):
            return t
    return None


def offset_of(node) -> int:
    """Source frame minus node frame for the settings shown (an upstream Read that shifts frame numbers)."""
    knob = node.knob("ned_offset")
    return int(knob.value()) if knob is not None else 0


# ---- Analyse ---------------------------------------------------------------------------------------------------

def bake(node, request: ShotRequest, task, source: bool = True) -> bool:
    """Write the input range through ``ned_bake`` (main thread; ``source`` False: not the source, an upstream
    Read is read as it is), and the Holdout input's alpha through ``ned_bake_holdout`` when one is connected
    (numbered like the source: node frame + the source's offset). Frames whose pixels did not change keep their
    files (and mtimes: the daemon's cached analysis stays valid). Returns False when cancelled."""
    bakes = [("ned_bake", request.path, "the input", 0)] if source else []
    holdout = holdout_of(node)
    if holdout is not None:
        bakes.append((HOLDOUT_BAKE, holdout, "the holdout matte", request_offset(node, request)))
    return all(_bake_through(node, *b, task) for b in bakes)


def _bake_through(node, write_name: str, pattern: str, what: str, offset: int, task) -> bool:
    first, last = frame_range(node)
    final = Path(pattern)
    incoming = final.parent / "incoming" / final.name
    incoming.parent.mkdir(parents=True, exist_ok=True)
    write = node.node(write_name)
    write["file"].setValue(str(incoming))
    write["disable"].setValue(False)
    _BAKING[0] = True                    # our own Write: the before-render hook has nothing to do
    try:
        for i, f in enumerate(range(first, last + 1)):
            if task.isCancelled():
                return False
            task.setMessage(f"baking {what}: frame {f}")
            task.setProgress(int(100 * i / (last - first + 1)))
            nuke.execute(write, f, f)
            new, old = frame_path(incoming, f), frame_path(final, f + offset)
            if old.is_file() and same_exr_content(new, old):
                new.unlink()
            else:
                os.replace(new, old)
            _remember_input(str(final), f + offset, input_signature(node, f))
    finally:
        _BAKING[0] = False
        write["disable"].setValue(True)
    return True


def analyse(node) -> None:
    """The Analyse button: bake (if needed), analyse in the background, then render the frames."""
    rt = _runtime(node)
    if rt.analysis is not None and rt.analysis.running:
        show_status(node, True, "already analysing (cancel it from the progress bar)")
        return
    if rt.renderer is not None and rt.renderer.running:
        rt.renderer.cancel()
    try:
        request, needs_bake, pattern = build_request(node)
        update_cache_pattern(node)
    except NedFxError as exc:
        show_status(node, False, str(exc))
        return
    link = link_for(node["endpoint"].value())
    task = nuke.ProgressTask(f"Emotion Director: {node.name()}")
    rt.task = task
    if needs_bake or holdout_of(node) is not None:
        try:
            if not bake(node, request, task, source=needs_bake):
                rt.task = None
                show_status(node, False, "cancelled while baking the input")
                return
        except (RuntimeError, OSError, NedFxError) as exc:      # nuke.execute raises RuntimeError
            rt.task = None
            show_status(node, False, f"could not bake the input: {exc}")
            return
    task.setMessage(f"connecting to {link.config.endpoint}")
    name = node.fullName()
    rt.key = pattern
    controller = AnalysisController(link, request, on_update=lambda u: _on_analysis(name, u), post=_main)
    rt.analysis = controller
    controller.start()


def _on_analysis(name: str, update: AnalysisUpdate) -> None:
    """Main thread: one analysis update -> progress bar and status; ready -> render."""
    node = nuke.toNode(name)
    rt = _RUNTIME.get(name)
    if node is None or rt is None:
        return
    task = rt.task
    if task is not None:
        if task.isCancelled() and rt.analysis is not None and not rt.analysis.cancelled:
            rt.analysis.cancel()
        task.setMessage(update.message)
        task.setProgress(update.percent)
    if not update.final:
        show_status(node, True, update.message)
        return
    rt.task = None
    if update.state != "ready":
        show_status(node, False, update.message if update.state != "cancelled" else "analysis cancelled")
        return
    rt.handle = update.handle
    try:
        stamp(node, update.handle.provenance, rt.key)
    except NedFxError as exc:
        show_status(node, False, str(exc))
        return
    node["ned_ok"].setValue(True)
    show_status(node, True, f"{update.message}; rendering")
    render_frames(node)


# ---- rendering ---------------------------------------------------------------------------------------------------

def render_frames(node) -> None:
    """Render every missing frame of the range into the cache, current frame first (background)."""
    rt = _runtime(node)
    pattern = node["ned_cache"].value()
    if rt.handle is None or not pattern or rt.key != pattern:
        show_status(node, True, "press Analyse first (these settings have no analysis yet)")
        return
    if rt.renderer is not None and rt.renderer.running:
        return
    Path(pattern).parent.mkdir(parents=True, exist_ok=True)
    first, last = frame_range(node)
    offset = offset_of(node)                    # the cache and the daemon count frames like the source
    order = ordered_frames(range(first + offset, last + offset + 1), int(nuke.frame()) + offset)
    source = rt.handle.request.path
    bake_mode = node["source"].value() == SOURCE_MODES[0]
    signatures = {f: made_from(source, f) if bake_mode else input_signature(node, f - offset) for f in order}
    rt.inputs = dict(signatures)
    task = nuke.ProgressTask(f"Emotion Director: rendering {node.name()}")
    rt.task = task
    name = node.fullName()
    total = len(order)
    counter = {"n": 0}

    def on_frame(done: FrameDone) -> None:
        n = nuke.toNode(name)
        counter["n"] += 1
        if done.path is not None:
            _remember_input(pattern, done.frame, signatures[done.frame])
        if n is None or rt.task is None:
            return
        if rt.task.isCancelled() and rt.renderer is not None:
            rt.renderer.cancel()
        rt.task.setProgress(int(100 * counter["n"] / total))
        rt.task.setMessage(f"frame {done.frame}" + (f": {done.error}" if done.error else
                                                    f" (passed through: {done.reason})" if done.reason else ""))
        now = time.monotonic()
        if now - rt.last_reload > 0.5:
            rt.last_reload = now
            n.node("ned_edit")["reload"].execute()

    def on_done(summary: RenderSummary) -> None:
        n = nuke.toNode(name)
        rt.task = None
        if n is None:
            return
        n.node("ned_edit")["reload"].execute()
        ok = not summary.unavailable and not summary.failed
        warning = _write_warning(n) if ok else ""
        show_status(n, ok, summary.message + (f"; warning: {warning}" if warning else "") if ok
                    or not summary.unavailable else link_for(n["endpoint"].value()).status.message)
        if ok:
            n["ned_ok"].setValue(True)

    for f in order:                     # frames made from another input than the node's now are stale
        if frame_path(pattern, f).is_file() and made_from(pattern, f) != signatures[f]:
            frame_path(pattern, f).unlink()
    rt.renderer = FrameRenderer(link_for(node["endpoint"].value()), rt.handle, pattern, order, on_frame, on_done,
                                post=_main).start()


def before_frame_render() -> None:
    """Before each frame of a Write render (the callback's ``nuke.thisNode()`` is that Write): every Emotion
    Director the Write depends on gets the edited frames this Write frame needs (through TimeOffset/FrameHold
    nodes in between), from its cache or rendered now through the daemon (the knob's endpoint, else
    ``$NED_FX_ENDPOINT`` where the render runs). A frame that cannot be edited fails the render — always in
    command-line/farm renders, and in GUI renders unless the node's ``strict`` is off (then the input passes
    through, unstamped). Writes that do not depend on an Emotion Director are never touched."""
    if _BAKING[0]:
        return
    write = nuke.thisNode()
    frame = int(nuke.frame())            # in a render callback: the frame the Write renders
    farm = not nuke.env.get("gui", False)
    failures = []
    for node in nuke.allNodes("Group", group=nuke.root(), recurseGroups=True):
        if not is_emotion_director(node) or node["disable"].value():
            continue
        frames = frames_needed(write, node, frame) if write is not None else {frame}
        for f in sorted(frames):
            try:
                first, last = frame_range(node)
            except NedFxError:
                break
            if not first <= f <= last:
                continue
            try:
                ensure_frame(node, f)
            except (NedFxError, OSError) as exc:
                show_status(node, False, f"frame {f}: {exc}")
                if farm or node["strict"].value():
                    failures.append(f"Emotion Director {node.fullName()}: frame {f}: {exc}")
    if failures:
        raise RuntimeError("; ".join(failures))


def frames_needed(write, node, frame: int) -> set[int]:
    """The frames of ``node`` that ``write``'s frame ``frame`` pulls: through TimeOffset (``time_offset``) and
    FrameHold (``first_frame``) nodes on the way; empty when the Write does not depend on the node."""
    found, seen, todo = set(), set(), [(write, frame)]
    while todo and len(seen) < 20000:
        n, f = todo.pop()
        if (id(n), f) in seen:
            continue
        seen.add((id(n), f))
        if n is not write and n.Class() in ("TimeOffset", "FrameHold") and not n["disable"].value():
            f = f - int(n["time_offset"].value()) if n.Class() == "TimeOffset" else int(n["first_frame"].value())
        ups = []
        outputs = [c for c in n.nodes() if c.Class() == "Output"] if n.Class() == "Group" and n is not write else []
        if outputs:                                          # into a group: through its insides
            todo.extend((c, f) for c in outputs)
            continue
        if n.Class() == "Input" and "." in n.fullName():    # out of a group: to the group's input
            parent = nuke.toNode(n.fullName().rpartition(".")[0])
            number = int(n["number"].value()) if n.knob("number") is not None else 0
            ups = [parent.input(number)] if parent is not None else []
        else:
            ups = [n.input(i) for i in range(n.inputs())]
        for up in ups:
            if up is None:
                continue
            if up is node:
                found.add(f)
            else:
                todo.append((up, f))
    return found


def ensure_frame(node, frame: int) -> str:
    """Make the node show its edited ``frame`` for the current settings and input; returns the pattern.

    Looks first where the node's saved cache is (a shared, declared ``NED_FX_NUKE_CACHE`` or cache folder: the
    artist's frames), then under this machine's cache root; otherwise renders the frame through the daemon into
    the first of those it can write. A bake can only come from the GUI (a render cannot run another Write), so
    in ``bake input`` mode the bake must be in a cache this machine sees.

    Raises:
        NedFxError: no daemon, the input changed since the bake, never baked (the message says what to do);
        OSError: the cache cannot be written.
    """
    request, needs_bake, local = build_request(node)
    offset = request_offset(node, request)
    source_frame = frame + offset                # the cache and the daemon count frames like the source
    key = Path(local).parent.name
    saved = node["ned_cache"].value()
    candidates = [p for p in dict.fromkeys([saved if saved and Path(saved).parent.name == key else "", local]) if p]
    signature = input_signature(node, frame)
    for pattern in candidates:
        if frame_path(pattern, source_frame).is_file() and made_from(pattern, source_frame) == signature and \
                _record_path(pattern).is_file():
            if point_at(node, pattern, offset):
                node["ned_ok"].setValue(True)
                return pattern
    target = next((p for p in candidates if Path(p).parent.is_dir() and os.access(Path(p).parent, os.W_OK)), local)
    link = daemon_link(node)
    if needs_bake:
        baked = _baked(candidates, "src/src.%04d.exr", frame, signature, "the input",
                       "(NED_FX_NUKE_CACHE or the cache folder knob) before a farm render, or use source "
                       "'upstream Read file'")
        request = dataclasses.replace(request, path=baked)
    if holdout_of(node) is not None:             # the Holdout input's bake, found the same way
        held = _baked(candidates, f"{HOLDOUT_FOLDER}/{HOLDOUT_NAME}", source_frame, signature, "the holdout matte",
                      "before a farm render")
        request = dataclasses.replace(request, params=dict(request.params, holdout_matte=held))
    _render_now(node, link, source_frame, request, target, signature, offset)
    return target


def _baked(candidates: list[str], name: str, frame: int, signature: str, what: str, advice: str) -> str:
    """The pattern of a bake (``name`` under a candidate cache's root) that has ``frame``, made from the input
    ``signature`` names.

    Raises:
        InvalidParameterError: never baked where this machine sees it, or baked from another input.
    """
    bakes = [str(Path(p).parent.parent / name) for p in candidates]
    baked = next((b for b in bakes if frame_path(b, frame).is_file()), None)
    if baked is None:
        raise InvalidParameterError(f"{what} was never baked where this machine can see it "
                                    f"({Path(bakes[0]).parent}): press Analyse in the GUI with the cache on shared "
                                    f"storage {advice}")
    if made_from(baked, frame) != signature:
        since = "it" if what == "the input" else what
        raise InvalidParameterError(f"the input changed since {since} was baked: press Analyse again (a render "
                                    f"cannot bake)")
    return baked


#: The daemon this Nuke process started (a farm blade with none to reach), shared by every node.
_LOCAL: dict = {}


def daemon_link(node) -> DaemonLink:
    """The link a render uses: the node's endpoint (the knob, else ``$NED_FX_ENDPOINT``); on a command-line
    render that finds no daemon there and has ``$NED_FX_PYTHON`` (the Python of a ned_fx install on the blade),
    a private daemon this process starts once (``$NED_FX_NUKE_DAEMON_ARGS`` adds ``serve`` options, e.g.
    ``--device cuda``) and stops when it exits.

    Raises:
        DaemonUnavailableError: no daemon, and none could be started (the message says why).
    """
    link = link_for(node["endpoint"].value())
    if link.check(max_age=STATUS_MAX_AGE).ok:
        return link
    python = os.environ.get("NED_FX_PYTHON", "").strip()
    if nuke.env.get("gui", False) or not python or MISSING:
        raise DaemonUnavailableError(link.status.message + ("" if nuke.env.get("gui", False) or MISSING else
                                                            "; or set NED_FX_PYTHON on the blade to start one"))
    local = _LOCAL.get("daemon")
    if local is None or not local.running:
        import shlex

        from ned_fx.hosts import local_daemon

        roots = set()
        for n in nuke.allNodes("Group", group=nuke.root(), recurseGroups=True):
            if is_emotion_director(n):
                roots.add(str(cache_root(n)))
                try:
                    roots.add(str(Path(source_of(n)[0]).parent))
                except NedFxError:
                    pass
        try:
            extra = shlex.split(os.environ.get("NED_FX_NUKE_DAEMON_ARGS", ""))
            local = local_daemon.start(python, sorted(roots), extra)
        except NedFxError as exc:
            raise DaemonUnavailableError(f"{link.status.message}; starting one with {python} failed: {exc}") from None
        _LOCAL["daemon"] = local
    started = link_for(local.endpoint)
    if not started.check().ok:
        raise DaemonUnavailableError(started.status.message)
    return started


def stop_local_daemon() -> None:
    """Stop the daemon this process started, if any (also done at exit)."""
    local = _LOCAL.pop("daemon", None)
    if local is not None:
        local.stop()


def _render_now(node, link: DaemonLink, frame: int, request: ShotRequest, pattern: str, signature: str,
                offset: int = 0) -> None:
    """Render source ``frame`` into ``pattern`` synchronously (a render waits for its frame); the analysis, when
    the session is not open yet, runs in its background thread while a cancellable progress bar (GUI) waits."""
    rt = _runtime(node)
    key = f"{pattern}|{request.path}|{link.config.endpoint}"
    reuse = (rt.handle is not None and rt.key in (key, pattern) and rt.handle.request.path == request.path
             and rt.inputs.get(frame) == signature)
    if not reuse:
        first, last = frame_range(node)
        bake_mode = node["source"].value() == SOURCE_MODES[0]
        inputs = {t + offset: made_from(request.path, t) if bake_mode else input_signature(node, t)
                  for t in range(first, last + 1)}
        controller = AnalysisController(link, request).start()
        task = nuke.ProgressTask(f"Emotion Director: analysing {node.name()}") if nuke.env.get("gui") else None
        while controller.running:
            update = controller.wait(0.2)
            if task is not None:
                if task.isCancelled():
                    controller.cancel()
                task.setMessage(update.message)
                task.setProgress(update.percent)
        update = controller.wait()
        if update.state == "cancelled":
            raise DaemonError("cancelled", "the analysis was cancelled from the progress bar")
        if update.state != "ready":
            raise DaemonError(update.code or update.state, update.message)
        rt.handle, rt.key, rt.inputs = update.handle, key, inputs
    Path(pattern).parent.mkdir(parents=True, exist_ok=True)
    if not _record_path(pattern).is_file():
        stamp(node, rt.handle.provenance, pattern)
    link.call(lambda c: render_to_file(rt.handle.bind(c), frame, pattern))
    _remember_input(pattern, frame, signature)
    if not point_at(node, pattern, offset):
        raise ProvenanceError(f"no edit record beside {pattern}: the frame is not shown unstamped")
    node["ned_ok"].setValue(True)
    node.node("ned_edit")["reload"].execute()
