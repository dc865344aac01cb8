"""ned_fx Emotion Director for DaVinci Resolve: edit the picked clips of the current timeline through the daemon.

Run it from Workspace > Scripts > Utility (``install/resolve.sh`` copies it there), or outside Resolve with
external scripting enabled (``python ned_fx_emotion.py [--config FILE] [--no-dialog]``; Resolve's
``DaVinciResolveScript`` module must be importable, see Resolve's scripting README).

For each picked clip (clips marked with a clip colour — the scripting API cannot read the timeline selection —,
the clip under the playhead, or every clip of a video track) it takes the source file and the used range, runs
the edit with the daemon (the venv's Python does that part: ``ned_fx.hosts.runner``), writes an image sequence
next to the project's render location, imports it into a ``ned_fx`` bin and places it on a new video track at
the same record frames. Settings come from a dialog (Fusion's UIManager) when Resolve offers one, else from
``ned_fx_emotion.json`` beside this script. A clip that cannot be edited is reported; the others go on.

Only Resolve API calls live here; the planning and running is ``ned_fx.hosts.resolve`` (standard library only).
"""

from __future__ import annotations

import json
import os
import sys
import time

CONFIG_NAME = "ned_fx_emotion.json"


def _here() -> str:
    path = globals().get("__file__") or (sys.argv[0] if sys.argv and sys.argv[0] else "")
    return os.path.dirname(os.path.abspath(path)) if path else os.getcwd()


def find_root(here: str | None = None) -> str:
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


def get_resolve(namespace: dict | None = None):
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
    start = _int_or_none(getattr(item, "GetSourceStartFrame", lambda: None))
    end = _int_or_none(getattr(item, "GetSourceEndFrame", lambda: None)) if start is not None else None
    if start is None:
        start = int(item.GetLeftOffset())
    kind_index = _int_or_none(lambda: item.GetTrackTypeAndIndex()[1])
    uid = ""
    try:
        uid = str(item.GetUniqueId())
    except Exception:
        pass
    return TimelineClip(str(item.GetName()), path, int(start), int(item.GetDuration()), int(item.GetStart()),
                        kind_index or track, end, uid)


def collect_clips(timeline, config) -> list:
    """The timeline items the settings pick, as TimelineClips (in track, then record order)."""
    clips = []
    if config.select == "current":
        item = timeline.GetCurrentVideoItem()
        return [clip_of(item, config.track or 1)] if item else []
    tracks = [config.track] if config.select == "track" else range(1, int(timeline.GetTrackCount("video")) + 1)
    for t in tracks:
        for item in timeline.GetItemListInTrack("video", t) or []:
            if config.select == "color" and item.GetClipColor() != config.clip_color:
                continue
            clips.append(clip_of(item, t))
    return sorted(clips, key=lambda c: (c.track, c.record_start))


def render_target(project) -> str | None:
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


def import_results(project, timeline, results: list, config) -> list[str]:
    """Import each finished shot into the ``ned_fx`` bin and place it on one new video track at its record frame.

    Returns:
        messages for the artist (one per problem; empty when everything landed where it should).
    """
    done = [r for r in results if r.get("ok")]
    if not done:
        return []
    messages = []
    media_pool = project.GetMediaPool()
    previous = media_pool.GetCurrentFolder()
    folder = _bin(media_pool, config.media_folder)
    if folder is not None:
        media_pool.SetCurrentFolder(folder)
    project.SetCurrentTimeline(timeline)
    if not timeline.AddTrack("video"):
        return [f"could not add a video track to {timeline.GetName()}; the results are in the media pool bin "
                f"{config.media_folder!r} and on disk"]
    track = int(timeline.GetTrackCount("video"))
    name = config.track_name or f"ned_fx {config.label}"
    timeline.SetTrackName("video", track, name)
    try:
        for r in done:
            items = media_pool.ImportMedia([{"FilePath": r["output"], "StartIndex": int(r["first"]),
                                             "EndIndex": int(r["last"])}])
            if not items:
                messages.append(f"{r['name']}: Resolve did not import {r['output']} ({r['first']}-{r['last']})")
                continue
            duration = int(r["last"]) - int(r["first"]) + 1
            placed = media_pool.AppendToTimeline([{"mediaPoolItem": items[0], "startFrame": 0,
                                                   "endFrame": duration - 1, "trackIndex": track,
                                                   "recordFrame": int(r["record_frame"]), "mediaType": 1}])
            if not placed:
                messages.append(f"{r['name']}: imported, but Resolve would not place it on V{track} at "
                                f"{r['record_frame']}")
                continue
            got = placed[0].GetStart()
            if got != int(r["record_frame"]) or placed[0].GetDuration() != duration:
                messages.append(f"{r['name']}: placed at {got} for {placed[0].GetDuration()} frames, expected "
                                f"{r['record_frame']} for {duration}")
    finally:
        if previous is not None:
            media_pool.SetCurrentFolder(previous)
    return messages


# ---- the dialog ----------------------------------------------------------------------------------------------

def ask(fusion, bmd, config):
    """Fusion UIManager dialog built from the daemon's parameter specs; returns the new config, or None when
    the artist cancels."""
    from ned_fx.hosts.link import DaemonLink, LinkConfig
    from ned_fx.hosts.params import knob_specs
    from ned_fx.hosts.resolve import config_from_dialog, dialog_fields

    try:
        described = DaemonLink(LinkConfig.from_env(config.endpoint)).describe()
    except ImportError:                   # this Python lacks pyzmq/numpy: the built-in list
        described = None
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

def main(argv=None, namespace: dict | None = None, out=print) -> int:
    """Run the pass. ``namespace`` holds what Resolve injects (``resolve``, ``fusion``, ``bmd``)."""
    import argparse

    _bootstrap()
    from ned_fx.errors import NedFxError
    from ned_fx.hosts import resolve as R

    parser = argparse.ArgumentParser(description="ned_fx Emotion Director for the current Resolve timeline")
    parser.add_argument("--config", help=f"settings file (default: {CONFIG_NAME} beside this script)")
    parser.add_argument("--no-dialog", action="store_true", help="use the settings file, show no dialog")
    args = parser.parse_args([] if argv is None else argv)
    ns = namespace if namespace is not None else globals()

    try:
        config_path = args.config or os.path.join(_here(), CONFIG_NAME)
        config = R.read_config(config_path) if os.path.isfile(config_path) else R.ResolveConfig()
        resolve = get_resolve(ns)
        if resolve is None:
            out("ned_fx: no Resolve to talk to: run this from Workspace > Scripts, or enable external scripting "
                "and make DaVinciResolveScript importable (see Resolve's scripting README)")
            return 2
        project = resolve.GetProjectManager().GetCurrentProject()
        timeline = project.GetCurrentTimeline() if project else None
        if timeline is None:
            out("ned_fx: open a project and a timeline first")
            return 2
        fusion, bmd = ns.get("fusion"), ns.get("bmd")
        if not args.no_dialog and fusion is not None and bmd is not None:
            config = ask(fusion, bmd, config)
            if config is None:
                out("ned_fx: cancelled")
                return 1
        clips = collect_clips(timeline, config)
        if not clips:
            how = {"color": f"clips marked {config.clip_color}", "current": "a clip under the playhead",
                   "track": f"clips on V{config.track}"}[config.select]
            out(f"ned_fx: no {how} on {timeline.GetName()}: nothing to edit")
            return 1
        plan = R.plan_shots(clips, config, render_target(project), timeline.GetName())
        for clip, reason in plan.skipped:
            out(f"ned_fx: skipped {clip}: {reason}")
        if not plan.shots:
            return 1
        folder = os.path.dirname(os.path.dirname(plan.shots[0].output))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        plan_path = R.write_plan(plan, os.path.join(folder, f"ned_fx_plan-{stamp}.json"))
        shotlist = R.write_shotlist(plan, os.path.join(folder, f"ned_fx_shots-{stamp}.yaml"))
        out(f"ned_fx: {len(plan.shots)} shot(s); plan {plan_path}; shot list for ned-fx batch: {shotlist}")

        def event(e):
            kind = e.get("event")
            if kind == "shot":
                out(f"ned_fx: {e['name']}: {e['input']} frames {e['frames']}")
            elif kind == "result":
                out(f"ned_fx: {e['name']}: " + (f"done, {e.get('written', 0)} frame(s) written -> {e.get('output')}"
                                                if e.get("ok") else f"FAILED: {e.get('error')}"))

        results = R.run_plan(plan_path, config.python or R.default_python(find_root() or None), event,
                             endpoint=config.endpoint, via=config.runner, start_daemon=config.start_daemon)
        for message in import_results(project, timeline, results, config):
            out(f"ned_fx: {message}")
        failed = [r for r in results if not r.get("ok")]
        out(f"ned_fx: {len(results) - len(failed)} of {len(results)} shot(s) edited and placed"
            + (f"; {len(failed)} failed" if failed else ""))
        return 0 if not failed and not plan.skipped else 1
    except NedFxError as exc:
        out(f"ned_fx: error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
