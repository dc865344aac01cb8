"""Issue 16, Resolve: the menu script in the Resolves studios run, against the corrected stand-in
(``tests/stand_ins/resolve_api.py``: ``endFrame`` exclusive on current Studio builds, GetSourceStartFrame off or
0/0, GetSelectedClips only from 21.0.4, no UIManager in the free edition) — a stock Resolve Python without numpy
and pyzmq, the free edition, placement checked and fixed, the selection, a chatty runner, the oldest Python."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import REPO
from test_resolve_bridge import RECORD, RESOLVE_DIR, STAND_INS, _timeline, rv, served  # noqa: F401 (fixtures)

from ned_fx.errors import InvalidParameterError
from ned_fx.hosts import resolve as R

STOCK_RESOLVE_PYTHON = r"""
import sys
sys.modules["numpy"] = None                    # a stock Resolve Python: no numpy, no pyzmq
sys.modules["zmq"] = None
sys.path[:0] = [{stand_ins!r}, {bridge!r}]
import resolve_api as ra
import ned_fx_emotion
project = ra.Project("show")
project._add_timeline(ra.Timeline("reel1"))
ra.UIDispatcher.on_run_loop = lambda window: window.On.cancel.Clicked(None)
code = ned_fx_emotion.main([], namespace={{"resolve": ra.Resolve(project), "fusion": ra.Fusion(), "bmd": ra.Bmd()}})
print("exit", code)
"""


def test_a_stock_resolve_python_gets_install_instructions_not_a_traceback(tmp_path):
    script = STOCK_RESOLVE_PYTHON.format(stand_ins=str(STAND_INS), bridge=str(RESOLVE_DIR))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["NED_FX_ROOT"] = str(REPO)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                         cwd=str(tmp_path))
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.returncode == 0 and "exit 1" in run.stdout and "ned_fx: cancelled" in run.stdout
    note = next(line for line in run.stdout.splitlines() if "built-in parameter list" in line)
    assert "numpy" in note and "pip install" in note and "pyzmq" in note


def test_the_free_edition_runs_from_the_settings_file_and_reports_in_the_console(rv, served, tmp_path):
    ra, bridge = rv
    d, root = served
    work = root / "free"
    project, tl = _timeline(ra, work, work / "renders")
    config = work / "settings.json"
    config.write_text(json.dumps({"endpoint": d.endpoint, "emotion": "sad", "python": sys.executable,
                                  "select": "track", "track": 1}))
    lines: list[str] = []
    ra.UIDispatcher.on_run_loop = lambda window: pytest.fail("the free edition has no dialog")
    try:
        code = bridge.main(["--config", str(config)], out=lines.append, namespace={
            "resolve": ra.Resolve(project, studio=False), "fusion": ra.Fusion(ui=False), "bmd": ra.Bmd()})
    finally:
        ra.UIDispatcher.on_run_loop = None
    text = "\n".join(lines)
    assert code == 0, text
    assert "DaVinci Resolve gives scripts no dialog (the dialog needs DaVinci Resolve Studio" in text
    assert f"settings come from {config}" in text
    progress = [line for line in lines if re.fullmatch(r"ned_fx: d12_sad: [\w ]+ \d+/\d+", line)]
    assert progress, f"progress in the console: {lines}"
    assert "4 of 4 shot(s) edited and placed" in text
    kept = json.loads((work / "ned_fx_emotion.last.json").read_text())
    assert kept["emotion"] == "sad" and kept["select"] == "track"
    assert R.read_config(work / "ned_fx_emotion.last.json").emotion == "sad"


def test_the_studio_dialog_starts_from_the_last_run(rv, tmp_path):
    ra, bridge = rv
    project, tl = _timeline(ra, tmp_path, None)
    settings = tmp_path / "ned_fx_emotion.json"
    settings.write_text(json.dumps({"endpoint": "tcp://10.0.0.9:5557", "python": "/new/venv/python"}))
    (tmp_path / "ned_fx_emotion.last.json").write_text(json.dumps(
        {"emotion": "angry", "intensity": 0.4, "endpoint": "tcp://old:1", "python": "/old/python"}))
    seen = {}

    def artist(window):
        items = window.GetItems()
        seen.update(emotion=items["emotion"].CurrentText, intensity=items["intensity"].Value,
                    endpoint=items["endpoint"].Text)
        window.On.cancel.Clicked(None)

    ra.UIDispatcher.on_run_loop = artist
    try:
        code = bridge.main(["--config", str(settings)], out=lambda line: None, namespace={
            "resolve": ra.Resolve(project), "fusion": ra.Fusion(), "bmd": ra.Bmd()})
    finally:
        ra.UIDispatcher.on_run_loop = None
    assert code == 1
    assert seen == {"emotion": "angry", "intensity": 0.4, "endpoint": "tcp://10.0.0.9:5557"}


def test_the_source_start_comes_from_the_left_offset(rv):
    ra, bridge = rv
    movie = ra.MediaPoolItem("d12.mp4", {"File Path": "/shows/d12.mp4"})
    off_by_one = ra.TimelineItem("a", movie, RECORD, 4, left_offset=10, source_start=11, source_end=14)
    from_xml = ra.TimelineItem("b", movie, RECORD, 4, left_offset=10, source_start=0, source_end=0)
    media_rate = ra.TimelineItem("c", movie, RECORD, 4, left_offset=10, source_start=20, source_end=27)
    retimed = ra.TimelineItem("d", movie, RECORD, 4, left_offset=10, source_span=8)
    clips = [bridge.clip_of(i, 1) for i in (off_by_one, from_xml, media_rate, retimed)]
    assert [c.source_start for c in clips] == [10, 10, 10, 10]
    plan = R.plan_shots(clips, R.ResolveConfig(), None, "reel")
    assert [(s.clip, s.first, s.last) for s in plan.shots] == [("a", 10, 13), ("b", 10, 13), ("c", 10, 13)]
    assert [name for name, _ in plan.skipped] == ["d"], "only the real retime is refused"


def _results(folder: Path, ra, count: int = 4) -> list[dict]:
    pattern = folder / "shot.%04d.png"
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(10, 10 + count):
        Path(str(pattern).replace("%04d", f"{n:04d}")).write_bytes(b"png")
    return [{"ok": True, "name": "shot", "output": str(pattern), "first": 10, "last": 9 + count,
             "record_frame": RECORD}]


def test_placement_is_checked_and_a_clip_a_frame_off_fails(rv, tmp_path):
    ra, bridge = rv
    # current Studio builds read endFrame as exclusive: the inclusive try lands a frame short, is taken off and
    # placed again
    project = ra.Project("show", end_exclusive=True)
    tl = project._add_timeline(ra.Timeline("reel1"))
    messages, failed = bridge.import_results(project, tl, _results(tmp_path / "a", ra), R.ResolveConfig())
    assert messages == [] and failed == set()
    placed = tl.GetItemListInTrack("video", 2)
    assert [(i.GetStart(), i.GetDuration()) for i in placed] == [(RECORD, 4)]
    assert [c for c in ra.calls if c[0] == "DeleteClips"], "the short one was taken off"
    # the README's inclusive reading (older builds): placed at once
    project = ra.Project("show")
    tl = project._add_timeline(ra.Timeline("reel1"))
    ra.calls.clear()
    assert bridge.import_results(project, tl, _results(tmp_path / "b", ra), R.ResolveConfig()) == ([], set())
    assert [(i.GetStart(), i.GetDuration()) for i in tl.GetItemListInTrack("video", 2)] == [(RECORD, 4)]
    assert not [c for c in ra.calls if c[0] == "DeleteClips"]
    # a clip that lands a frame late fails loudly and is not left on the timeline
    project = ra.Project("show")
    tl = project._add_timeline(ra.Timeline("reel1"))
    pool = project.GetMediaPool()
    append = pool.AppendToTimeline

    def late(infos):
        return append([dict(i, recordFrame=i["recordFrame"] + 1) for i in infos])

    pool.AppendToTimeline = late
    messages, failed = bridge.import_results(project, tl, _results(tmp_path / "c", ra), R.ResolveConfig())
    assert failed == {"shot"} and "placed it at 86401 for 4 frames, expected 86400 for 4" in messages[0]
    assert "drifts the edit against the lips" in messages[0]
    assert tl.GetItemListInTrack("video", 2) == []


def test_the_selection_is_edited_where_resolve_can_read_it(rv, tmp_path):
    ra, bridge = rv
    project, tl = _timeline(ra, tmp_path, None)
    unmarked = tl.GetItemListInTrack("video", 1)[2]              # Blue: not marked
    selecting = ra.Timeline("reel2", tracks=1, selection=[unmarked])   # Resolve 21.0.4+
    selecting._add(unmarked, 1)
    config = R.ResolveConfig()
    assert config.select == "selection"
    assert [(c.name, c.record_start) for c in bridge.collect_clips(selecting, config)] == [("d12.mp4", RECORD + 7)]
    lines: list[str] = []
    assert tl.AddMarker(4.0, "Green", "", "", 1.0)                 # on V1's second clip (offset 4 = RECORD + 4)
    marked = bridge.collect_clips(tl, config, lines.append)        # an older Resolve: the timeline markers
    assert [(c.track, c.record_start) for c in marked] == [(1, RECORD + 4)]
    assert "cannot read the timeline selection" in lines[0] and "V1 under timeline markers" in lines[0]


def _marked_timeline(ra, selection=None):
    """V1: four 10-frame clips a b c d from RECORD (a marked with the Orange clip colour), V2: e over b. Timeline
    markers (frames are offsets from the timeline's start): Green "ned_fx" on b's first frame (= a's GetEnd(),
    exclusive), a two-frame Blue "review" marker over c's last and d's first frame."""
    movie = ra.MediaPoolItem("d12.mp4", {"File Path": "/shows/d12.mp4"})
    tl = ra.Timeline("reel3", tracks=2, start_frame=RECORD, selection=selection)
    items = [tl._add(ra.TimelineItem(n, movie, RECORD + 10 * i, 10, left_offset=20 * i,
                                     color="Orange" if n == "a" else ""), 1) for i, n in enumerate("abcd")]
    tl._add(ra.TimelineItem("e", movie, RECORD + 10, 10, left_offset=100), 2)
    assert tl.AddMarker(10.0, "Green", "ned_fx", "", 1.0, "")
    assert tl.AddMarker(29.0, "Blue", "review", "fix the sky", 2.0, "")
    assert not tl.AddMarker(29.0, "Red", "again", "", 1.0), "one marker per frame"
    assert not tl.AddMarker(40.0, "Orange", "x", "", 1.0), "Orange is a clip colour, not a marker colour"
    return tl, items


def test_timeline_markers_pick_the_clips_where_the_selection_cannot_be_read(rv, tmp_path):
    ra, bridge = rv
    tl, _ = _marked_timeline(ra)                                   # before 21.0.4: no GetSelectedClips
    assert not hasattr(tl, "GetSelectedClips")

    def picked(**settings):
        lines: list[str] = []
        return [(c.name, c.track) for c in bridge.collect_clips(tl, R.ResolveConfig(**settings), lines.append)]

    # any marker on a clip's frames, GetStart() .. GetEnd() exclusive; the clip colour no longer picks
    assert picked() == [("b", 1), ("c", 1), ("d", 1)]
    assert picked(select="markers") == picked()
    assert picked(marker_name=" NED_FX ") == [("b", 1)], "the name, any case"
    assert picked(marker_color="Blue") == [("c", 1), ("d", 1)]
    assert picked(marker_name="ned_fx", marker_color="Blue") == []
    assert picked(marker_name="ned_fx", track=0) == [("b", 1), ("e", 2)], "track 0: every video track"
    assert picked(select="color") == [("a", 1)], "the colour marks stay an option"
    # where Resolve reads the selection, the selection; markers when asked for
    selecting, items = _marked_timeline(ra, selection=[])
    selecting._selection = [items[0]]
    assert [c.name for c in bridge.collect_clips(selecting, R.ResolveConfig())] == ["a"]
    assert [c.name for c in bridge.collect_clips(selecting, R.ResolveConfig(select="markers"))] == ["b", "c", "d"]
    with pytest.raises(InvalidParameterError, match="marker_color 'Orange'; valid: Any, Blue, Cyan"):
        R.ResolveConfig(marker_color="Orange")
    # nothing under the named markers: said so, nothing run
    project = ra.Project("show")
    project._add_timeline(_marked_timeline(ra)[0])
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"marker_name": "ned_fx", "marker_color": "Blue", "python": sys.executable}))
    lines: list[str] = []
    code = bridge.main(["--config", str(settings), "--no-dialog"], namespace={"resolve": ra.Resolve(project)},
                       out=lines.append)
    assert code == 1 and lines[-1] == ("ned_fx: no selected clips (or clips of V1 under timeline markers named "
                                       "'ned_fx' coloured Blue) on reel3: nothing to edit"), lines
    assert "cannot read the timeline selection" in lines[0]


FAKE_RUNNER = r"""
import json, signal, sys
signal.alarm(60)                               # never outlive the test
sys.stderr.write("warning: chatty library\n" * 50000)    # ~1 MB: more than a pipe holds
sys.stderr.flush()
print(json.dumps({"event": "result", "name": "a", "ok": True}), flush=True)
print(json.dumps({"event": "done", "ok": True}), flush=True)
"""


def test_a_runner_with_a_chatty_stderr_does_not_hang_the_pass(tmp_path):
    fake = tmp_path / "fake_runner.py"
    fake.write_text(FAKE_RUNNER)
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} {fake}\n")
    python.chmod(0o755)
    plan = R.write_plan(R.Plan((), (), "reel", ""), tmp_path / "plan.json")
    box: dict = {}
    t = threading.Thread(target=lambda: box.setdefault("results", R.run_plan(plan, str(python))), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "run_plan deadlocked on the runner's stderr"
    assert box["results"] == [{"event": "result", "name": "a", "ok": True}]


def _future_annotations(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and
               any(a.name == "annotations" for a in n.names) for n in tree.body)


def test_the_menu_script_imports_on_resolves_oldest_python():
    """Resolve's README lists Python 3.6 (64-bit): the menu script parses as 3.6 and evaluates no annotation
    that needs a newer Python; the modules the pass loads inside Resolve parse as 3.7 (dataclasses)."""
    source = (RESOLVE_DIR / "ned_fx_emotion.py").read_text()
    tree = ast.parse(source, feature_version=(3, 6))
    assert not _future_annotations(tree), "'from __future__ import annotations' needs Python 3.7"
    for node in ast.walk(tree):
        for ann in [getattr(node, "returns", None)] + [a.annotation for a in getattr(getattr(node, "args", None),
                                                                                       "args", []) or []]:
            assert ann is None or not any(isinstance(n, ast.BinOp) for n in ast.walk(ann)), \
                f"line {node.lineno}: 'X | Y' annotations are evaluated before Python 3.10"
    for module in ("errors.py", "hosts/__init__.py", "hosts/params.py", "hosts/resolve.py", "hosts/wire.py"):
        ast.parse((REPO / "ned_fx" / module).read_text(), feature_version=(3, 7))
