"""ned_fx Emotion Director for DaVinci Resolve: edit the picked clips of the current timeline through the daemon.

Run it from Workspace > Scripts > Utility (``install/resolve.sh`` copies it there), or outside Resolve with
external scripting enabled (``python ned_fx_emotion.py [--config FILE] [--no-dialog]``; Resolve's
``DaVinciResolveScript`` module must be importable, see Resolve's scripting README).

For each picked clip (the timeline's selection where Resolve offers ``GetSelectedClips`` — 21.0.4 and newer —,
else the clips under timeline markers; or clips marked with a clip colour, the clip under the playhead, or every
clip of a video track) it takes
the source file and the used range, runs
the edit with the daemon (the venv's Python does that part: ``ned_fx.hosts.runner``), writes an image sequence
next to the project's render location, imports it into a ``ned_fx`` bin and places it on a new video track at
the same record frames, checking each landed on its frames. Settings come from a dialog (Fusion's UIManager)
in DaVinci Resolve Studio, else from ``ned_fx_emotion.json`` (or ``.yaml``) beside this script; the settings of
the last run are kept in ``ned_fx_emotion.last.json``. A clip that cannot be edited is reported; the others go on.

What needs Studio: the dialog (Resolve (free) 19.1+ gives scripts no UIManager) and running from a shell
(external scripting). The free edition runs the pass from Workspace > Scripts with the settings file and reports
progress in the console (Workspace > Console).

Only Resolve API calls live here; the planning and running is ``ned_fx.hosts.resolve`` (standard library only).
This file imports on Python 3.6 (Resolve's oldest scripting Python) and says what it needs there; the pass
itself needs 3.7+.
"""

import json
import os
import sys
import time

CONFIG_NAME = "ned_fx_emotion.json"
LAST_USED_NAME = "ned_fx_emotion.last.json"
INSTALL_HINT = ("set NED_FX_ROOT, or ned_fx_root in {config}, to the ned_fx checkout (install/resolve.sh writes it); "
                "the pass needs Python 3.7+ as Resolve's scripting Python")


def _here():
    path = globals().get("__file__") or (sys.argv[0] if sys.argv and sys.argv[0] else "")
    return os.path.dirname(os.path.abspath(path)) if path else os.getcwd()


def find_root(here=None):
    """Where the ned_fx package is: ``$NED_FX_ROOT``, the config's ``ned_fx_root``, or the checkout this
    script lives in."""
    here = here or _here()
    root = os.environ.get("NED_FX_ROOT", "").strip()
    if not root:
        try:
            with open(os.path.join(here, CONFIG_NAME), encoding="utf-8") as fh:
                root = str(json.load(fh).get("ned_fx_root", "")).strip()
        except (OSError, ValueError, AttributeError):
            root = ""
    if not root:
        candidate = os.path.dirname(os.path.dirname(here))
        if os.path.isfile(os.path.join(candidate, "ned_fx", "__init__.py")):
            root = candidate
    return root


def _bootstrap() -> None:
    root = find_root()
    if root and root not in sys.path:
        sys.path.insert(0, root)


def get_resolve(namespace=None):
    """The Resolve object: the ``resolve`` the Scripts menu provides, else ``DaVinciResolveScript.scriptapp``."""
    ns = namespace if namespace is not None else globals()
    if ns.get("resolve") is not None:
        return ns["resolve"]
    app = ns.get("app")
    if app is not None and hasattr(app, "GetResolve"):
        return app.GetResolve()
    try:
        import DaVinciResolveScript as dvr
    except ImportError:
        return None
    return dvr.scriptapp("Resolve")


# ---- reading the timeline ------------------------------------------------------------------------------------

def _int_or_none(fn):
    try:
        value = fn()
    except Exception:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def clip_of(item, track: int):
    """A :class:`~ned_fx.hosts.resolve.TimelineClip` of a TimelineItem."""
    from ned_fx.hosts.resolve import TimelineClip

    mpi = item.GetMediaPoolItem()
    path = (mpi.GetClipProperty("File Path") or None) if mpi is not None else None
    # GetLeftOffset (timeline frames before the used part) is the source start. GetSourceStart/EndFrame are off
    # by one or in the media's rate on some items and 0/0 on XML-imported timelines: only their span is used,
    # to see a retime, and only when they agree with the left offset
    start = int(item.GetLeftOffset())
    s0 = _int_or_none(getattr(item, "GetSourceStartFrame", lambda: None))
    s1 = _int_or_none(getattr(item, "GetSourceEndFrame", lambda: None))
    end = None
    if s0 is not None and s1 is not None and (s0, s1) != (0, 0) and abs(s0 - start) <= 1:
        end = start + (s1 - s0)
    kind_index = _int_or_none(lambda: item.GetTrackTypeAndIndex()[1])
    uid = ""
    try:
        uid = str(item.GetUniqueId())
    except Exception:
        pass
    return TimelineClip(str(item.GetName()), path, int(start), int(item.GetDuration()), int(item.GetStart()),
                        kind_index or track, end, uid)


def selected_items(timeline):
    """The timeline's selected video items (Resolve 21.0.4+: ``Timeline.GetSelectedClips()``), or None where this
    Resolve cannot tell."""
    get = getattr(timeline, "GetSelectedClips", None)
    if get is None:
        return None
    try:
        picked = get()
    except Exception:
        return None
    if isinstance(picked, dict):
        picked = list(picked.values())
    out = []
    for item in picked or []:
        try:
            kind, index = item.GetTrackTypeAndIndex()[:2]
        except Exception:
            kind, index = "video", 1
        if kind == "video":
            out.append((item, int(index)))
    return out


def marker_spans(timeline, config):
    """The record frames the timeline markers the settings name cover (``Timeline.GetMarkers()``: frames are
    offsets from ``GetStartFrame()``); none where this Resolve cannot list them."""
    from ned_fx.hosts.resolve import marker_spans as spans

    try:
        markers = timeline.GetMarkers()
        start = int(timeline.GetStartFrame())
    except Exception:
        return ()
    return spans(markers if isinstance(markers, dict) else {}, start, config.marker_name, config.marker_color)


def collect_clips(timeline, config, out=None):
    """The timeline items the settings pick, as TimelineClips (in track, then record order). ``selection`` falls
    back to the timeline markers where this Resolve cannot read the selection (it says so through ``out``)."""
    from ned_fx.hosts.resolve import under_markers

    clips = []
    select = config.select
    if select == "selection":
        picked = selected_items(timeline)
        if picked is not None:
            return sorted((clip_of(item, t) for item, t in picked), key=lambda c: (c.track, c.record_start))
        select = "markers"
        if out is not None:
            out("ned_fx: this Resolve cannot read the timeline selection (Timeline.GetSelectedClips needs "
                "21.0.4+): editing the clips of {} under {}".format(
                    "V{}".format(config.track) if config.track else "every video track", config.markers_wanted))
    if select == "current":
        item = timeline.GetCurrentVideoItem()
        return [clip_of(item, config.track or 1)] if item else []
    spans = marker_spans(timeline, config) if select == "markers" else ()
    if select == "markers" and not spans:
        return []
    every = range(1, int(timeline.GetTrackCount("video")) + 1)
    tracks = [config.track] if select == "track" or (select == "markers" and config.track) else every
    for t in tracks:
        for item in timeline.GetItemListInTrack("video", t) or []:
            if select == "color" and item.GetClipColor() != config.clip_color:
                continue
            if select == "markers" and not under_markers(int(item.GetStart()), int(item.GetEnd()), spans):
                continue
            clips.append(clip_of(item, t))
    return sorted(clips, key=lambda c: (c.track, c.record_start))


def render_target(project):
    """The project's render location: the TargetDir of the most recent render job that has one."""
    for job in reversed(project.GetRenderJobList() or []):
        target = (job or {}).get("TargetDir")
        if target:
            return str(target)
    return None


# ---- bringing the results back -------------------------------------------------------------------------------

def _bin(media_pool, name: str):
    root = media_pool.GetRootFolder()
    for folder in root.GetSubFolderList() or []:
        if folder.GetName() == name:
            return folder
    return media_pool.AddSubFolder(root, name)


def place(media_pool, timeline, item, duration, track, record):
    """Place ``duration`` frames of ``item`` on video ``track`` at ``record`` and check where they landed.

    ``endFrame`` is inclusive in Resolve's README but measured exclusive on current Studio builds: the inclusive
    reading is tried first and, when the clip lands one frame short, taken out (``Timeline.DeleteClips``) and
    placed again with the exclusive one. A clip still off — start or length — is taken out: one frame of slip
    drifts the edit against the lips.

    Returns:
        ``(timeline item, None)``, or ``(None, why)``.
    """
    got = None
    for end in (duration - 1, duration):
        placed = media_pool.AppendToTimeline([{"mediaPoolItem": item, "startFrame": 0, "endFrame": end,
                                               "trackIndex": track, "recordFrame": int(record), "mediaType": 1}])
        if not placed:
            if got is None:
                return None, "Resolve would not place it on V{} at {}".format(track, record)
            break
        start, length = int(placed[0].GetStart()), int(placed[0].GetDuration())
        if start == int(record) and length == duration:
            return placed[0], None
        got = (start, length)
        removed = _delete(timeline, placed[0])
        if not removed:
            return None, ("Resolve placed it at {} for {} frames, expected {} for {}: REMOVE IT from V{} by hand (this "
                          "Resolve cannot delete timeline clips from a script); a frame of slip drifts the edit "
                          "against the lips".format(start, length, record, duration, track))
        if start != int(record) or length != duration - 1:
            break                       # not the endFrame convention: trying the other one would not fix it
    return None, ("Resolve placed it at {} for {} frames, expected {} for {}: taken off the timeline (a frame of "
                  "slip drifts the edit against the lips)".format(got[0], got[1], record, duration))


def _delete(timeline, item):
    """Take ``item`` off the timeline (``Timeline.DeleteClips``, Resolve 17+); False where that is not possible."""
    delete = getattr(timeline, "DeleteClips", None)
    if delete is None:
        return False
    try:
        return bool(delete([item], False))
    except Exception:
        return False


def premultiplied(item):
    """Tell Resolve a patch's alpha is premultiplied (Clip Attributes > Alpha Mode); None when it took, else
    what the artist should do. With it, the new track's Normal composite shows the original clip's own decode
    everywhere the patch is transparent."""
    setter = getattr(item, "SetClipProperty", None)
    try:
        ok = bool(setter("Alpha mode", "Premultiplied")) if setter is not None else False
        ok = ok and str(item.GetClipProperty("Alpha mode")) == "Premultiplied"
    except Exception:
        ok = False
    if ok:
        return None
    return ("set its Alpha Mode to Premultiplied by hand (Clip Attributes): this Resolve did not take it from "
            "the script")


def import_results(project, timeline, results, config):
    """Import each finished shot into the ``ned_fx`` bin and place it on one new video track at its record frame.

    Returns:
        ``(messages, failed)``: one message per problem for the artist, and the names of the shots that could
        not be placed exactly (they count as failed).
    """
    done = [r for r in results if r.get("ok")]
    if not done:
        return [], set()
    messages, failed = [], set()
    media_pool = project.GetMediaPool()
    previous = media_pool.GetCurrentFolder()
    folder = _bin(media_pool, config.media_folder)
    if folder is not None:
        media_pool.SetCurrentFolder(folder)
    project.SetCurrentTimeline(timeline)
    if not timeline.AddTrack("video"):
        return (["could not add a video track to {}; the results are in the media pool bin {!r} and on disk"
                 .format(timeline.GetName(), config.media_folder)], {r["name"] for r in done})
    track = int(timeline.GetTrackCount("video"))
    name = config.track_name or f"ned_fx {config.label}"
    timeline.SetTrackName("video", track, name)
    try:
        for r in done:
            items = media_pool.ImportMedia([{"FilePath": r["output"], "StartIndex": int(r["first"]),
                                             "EndIndex": int(r["last"])}])
            if not items:
                messages.append("{}: Resolve did not import {} ({}-{})".format(r["name"], r["output"], r["first"],
                                                                              r["last"]))
                failed.add(r["name"])
                continue
            if r.get("layer") == "patch":
                why = premultiplied(items[0])
                if why:
                    messages.append("{}: {}".format(r["name"], why))
            duration = int(r["last"]) - int(r["first"]) + 1
            placed, why = place(media_pool, timeline, items[0], duration, track, int(r["record_frame"]))
            if placed is None:
                messages.append("{}: imported, but {}".format(r["name"], why))
                failed.add(r["name"])
    finally:
        if previous is not None:
            media_pool.SetCurrentFolder(previous)
    return messages, failed


# ---- the dialog ----------------------------------------------------------------------------------------------

def ui_manager(fusion):
    """Fusion's UIManager, or None (Resolve (free) 19.1+ gives scripts none; no Fusion object at all from a
    shell)."""
    try:
        return getattr(fusion, "UIManager", None) if fusion is not None else None
    except Exception:
        return None


def describe(endpoint, out=print):
    """The daemon's ``describe`` for the dialog, or None (the built-in list is used): also when this Python
    lacks pyzmq/numpy, which only the dialog's parameter list needs (the edits run in the venv's Python) — the
    artist is told how to install them."""
    try:
        from ned_fx.hosts.link import DaemonLink, LinkConfig
        from ned_fx.hosts.wire import MISSING
    except ImportError as exc:
        MISSING = "this Python cannot load the daemon link ({})".format(exc)
    if MISSING:
        out("ned_fx: note: the dialog uses the built-in parameter list: " + MISSING)
        return None
    try:
        return DaemonLink(LinkConfig.from_env(endpoint or None)).describe()
    except Exception as exc:              # never let the dialog die on the daemon link
        out("ned_fx: note: the dialog uses the built-in parameter list ({}: {})".format(type(exc).__name__, exc))
        return None


def ask(fusion, bmd, config, out=print):
    """Fusion UIManager dialog built from the daemon's parameter specs; returns the new config, or None when
    the artist cancels."""
    from ned_fx.hosts.params import knob_specs
    from ned_fx.hosts.resolve import config_from_dialog, dialog_fields

    described = describe(config.endpoint, out)
    specs = knob_specs(described.get("parameters") if described else None)
    fields = dialog_fields(specs, config)
    ui = fusion.UIManager
    dispatcher = bmd.UIDispatcher(ui)
    rows = []
    for f in fields:
        props = {"ID": f.id, "ToolTip": f.hint}
        if f.widget in ("SpinBox", "DoubleSpinBox"):
            props.update({"Minimum": f.minimum if f.minimum is not None else -1e9,
                          "Maximum": f.maximum if f.maximum is not None else 1e9, "Value": f.value})
            if f.widget == "DoubleSpinBox":
                props["SingleStep"] = 0.05
        elif f.widget == "CheckBox":
            props["Checked"] = bool(f.value)
        elif f.widget == "LineEdit":
            props["Text"] = "" if f.value is None else str(f.value)
        rows.append(ui.HGroup([ui.Label({"Text": f.label, "Weight": 0.3}), getattr(ui, f.widget)(props)]))
    rows.append(ui.HGroup([ui.Button({"ID": "run", "Text": "Edit clips"}), ui.Button({"ID": "cancel",
                                                                                        "Text": "Cancel"})]))
    window = dispatcher.AddWindow({"ID": "ned_fx", "WindowTitle": "ned_fx Emotion Director",
                                   "Geometry": [200, 200, 460, 40 + 30 * len(rows)]}, ui.VGroup(rows))
    items = window.GetItems()
    for f in fields:
        if f.widget == "ComboBox":
            items[f.id].AddItems(list(f.options))
            items[f.id].CurrentIndex = list(f.options).index(f.value) if f.value in f.options else 0
    answer = {}

    def on_run(ev):
        for f in fields:
            w = items[f.id]
            answer[f.id] = (w.CurrentText if f.widget == "ComboBox" else w.Value if "SpinBox" in f.widget
                            else w.Checked if f.widget == "CheckBox" else w.Text)
        dispatcher.ExitLoop()

    def on_cancel(ev):
        dispatcher.ExitLoop()

    window.On.run.Clicked = on_run
    window.On.cancel.Clicked = on_cancel
    window.On.ned_fx.Close = on_cancel
    window.Show()
    dispatcher.RunLoop()
    window.Hide()
    if not answer:
        return None
    return config_from_dialog(fields, answer, config)


# ---- main ---------------------------------------------------------------------------------------------------

def _settings_path(here, given):
    """``--config``, else ``ned_fx_emotion.json`` (or ``.yaml``/``.yml``) beside the script."""
    if given:
        return given
    for name in (CONFIG_NAME, "ned_fx_emotion.yaml", "ned_fx_emotion.yml"):
        if os.path.isfile(os.path.join(here, name)):
            return os.path.join(here, name)
    return os.path.join(here, CONFIG_NAME)


def _save_last_used(R, config, path, out):
    """Keep the settings this run used beside the settings file (``ned_fx_emotion.last.json``, atomically)."""
    import dataclasses

    try:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(dataclasses.asdict(config), fh, indent=2)
        os.replace(tmp, path)
    except OSError as exc:
        out("ned_fx: note: could not keep the settings in {}: {}".format(path, exc))


#: Settings the dialog starts from the last run with; the rest (where ned_fx and its Python are, the daemon) stay
#: the settings file's, so an updated install is not overridden by an old run.
LAST_USED_KEYS = ("emotion", "intensity", "reference", "regions", "speech", "face", "keys", "consent", "select",
                  "marker_name", "marker_color", "clip_color", "track", "output_root", "image_format", "layer")


def last_used(R, config, path, out):
    """``config`` with the dialog's settings of the last run (``ned_fx_emotion.last.json``) when there is one."""
    if not os.path.isfile(path):
        return config
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return R.config_from_mapping({k: v for k, v in data.items() if k in LAST_USED_KEYS}, config)
    except Exception as exc:              # unreadable, or a setting this ned_fx refuses: the settings file's
        out("ned_fx: note: ignored {}: {}".format(path, exc))
        return config


def main(argv=None, namespace=None, out=print):
    """Run the pass. ``namespace`` holds what Resolve injects (``resolve``, ``fusion``, ``bmd``)."""
    import argparse

    _bootstrap()
    try:
        from ned_fx.errors import NedFxError
        from ned_fx.hosts import resolve as R
    except (ImportError, SyntaxError) as exc:
        out("ned_fx: cannot load ned_fx in this Python {} ({}): {}".format(
            sys.version.split()[0], exc, INSTALL_HINT.format(config=CONFIG_NAME)))
        return 2

    parser = argparse.ArgumentParser(description="ned_fx Emotion Director for the current Resolve timeline")
    parser.add_argument("--config", help="settings file (default: {} beside this script)".format(CONFIG_NAME))
    parser.add_argument("--no-dialog", action="store_true", help="use the settings file, show no dialog")
    args = parser.parse_args([] if argv is None else argv)
    ns = namespace if namespace is not None else globals()

    try:
        here = _here()
        config_path = _settings_path(here, args.config)
        config = R.read_config(config_path) if os.path.isfile(config_path) else R.ResolveConfig()
        last_path = os.path.join(os.path.dirname(os.path.abspath(config_path)), LAST_USED_NAME)
        resolve = get_resolve(ns)
        if resolve is None:
            out("ned_fx: no Resolve to talk to: run this from Workspace > Scripts inside Resolve, or — DaVinci "
                "Resolve Studio only — enable external scripting (Preferences > System > General) and make "
                "DaVinciResolveScript importable (see Resolve's scripting README)")
            return 2
        product = _call(resolve, "GetProductName") or "DaVinci Resolve"
        project = resolve.GetProjectManager().GetCurrentProject()
        timeline = project.GetCurrentTimeline() if project else None
        if timeline is None:
            out("ned_fx: open a project and a timeline first")
            return 2
        fusion, bmd = ns.get("fusion"), ns.get("bmd")
        if not args.no_dialog:
            if ui_manager(fusion) is not None and bmd is not None:
                start = last_used(R, config, last_path, out)
                config = ask(fusion, bmd, start, out)
                if config is None:
                    out("ned_fx: cancelled")
                    return 1
            else:
                out("ned_fx: {} gives scripts no dialog (the dialog needs DaVinci Resolve Studio; the free edition "
                    "has none since 19.1): settings come from {}{}; the settings of each run are kept in {}".format(
                        product, config_path, "" if os.path.isfile(config_path) else
                        " (not there: the defaults — write it to choose the emotion, see host_bridges/README.md)",
                        last_path))
        clips = collect_clips(timeline, config, out)
        if not clips:
            on = "V{}".format(config.track) if config.track else "any video track"
            how = {"color": "clips marked {}".format(config.clip_color),
                   "markers": "clips of {} under {}".format(on, config.markers_wanted),
                   "selection": "selected clips (or clips of {} under {})".format(on, config.markers_wanted),
                   "current": "a clip under the playhead", "track": "clips on V{}".format(config.track)}[config.select]
            out("ned_fx: no {} on {}: nothing to edit".format(how, timeline.GetName()))
            return 1
        plan = R.plan_shots(clips, config, render_target(project), timeline.GetName())
        for clip, reason in plan.skipped:
            out("ned_fx: skipped {}: {}".format(clip, reason))
        if not plan.shots:
            return 1
        _save_last_used(R, config, last_path, out)
        folder = os.path.dirname(os.path.dirname(plan.shots[0].output))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        plan_path = R.write_plan(plan, os.path.join(folder, "ned_fx_plan-{}.json".format(stamp)))
        shotlist = R.write_shotlist(plan, os.path.join(folder, "ned_fx_shots-{}.yaml".format(stamp)))
        out("ned_fx: {} shot(s); plan {}; shot list for ned-fx batch: {}".format(len(plan.shots), plan_path, shotlist))
        reported = {}

        def event(e):
            kind = e.get("event")
            if kind == "shot":
                out("ned_fx: {}: {} frames {}".format(e["name"], e["input"], e["frames"]))
            elif kind == "progress" and e.get("total"):
                step = int(4 * int(e.get("done", 0)) / max(1, int(e["total"])))     # the console: every 25 %
                key = (e.get("name"), e.get("stage", ""))
                if reported.get(key) != step:
                    reported[key] = step
                    out("ned_fx: {}: {} {}/{}".format(e.get("name"), e.get("stage") or "analysing", e.get("done"),
                                                     e["total"]))
            elif kind == "result":
                out("ned_fx: {}: ".format(e["name"]) + (
                    "done, {} frame(s) written -> {}".format(e.get("written", 0), e.get("output")) if e.get("ok")
                    else "FAILED: {}".format(e.get("error"))))

        results = R.run_plan(plan_path, config.python or R.default_python(find_root() or None), event,
                             endpoint=config.endpoint, via=config.runner, start_daemon=config.start_daemon)
        messages, misplaced = import_results(project, timeline, results, config)
        for message in messages:
            out("ned_fx: {}".format(message))
        failed = [r for r in results if not r.get("ok") or r.get("name") in misplaced]
        out("ned_fx: {} of {} shot(s) edited and placed".format(len(results) - len(failed), len(results))
            + ("; {} failed".format(len(failed)) if failed else ""))
        return 0 if not failed and not plan.skipped else 1
    except NedFxError as exc:
        out("ned_fx: error: {}".format(exc))
        return 2


def _call(obj, name):
    try:
        return getattr(obj, name)()
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
