"""The Resolve bridge (``host_bridges/resolve/ned_fx_emotion.py``) against a faithful stand-in of Resolve's
scripting objects (``tests/stand_ins/resolve_api.py``) and a real daemon: picked clips -> shots with the right
source ranges, the edits run by the venv's Python, results imported and placed on a new track at the same record
frames, a clip without a file reported while the others go on, the dialog built from the daemon's parameters,
settings files, no daemon, and the installer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, footage
from daemons import Daemon, free_port

from ned_fx.errors import InvalidParameterError
from ned_fx.hosts import images
from ned_fx.hosts import resolve as R

STAND_INS = REPO / "tests" / "stand_ins"
RESOLVE_DIR = REPO / "host_bridges" / "resolve"
RECORD = 86400                       # 01:00:00:00 at 24 fps


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resolve")
    d = Daemon("--engine", "identity", roots=[tmp], tmp=tmp)
    try:
        yield d, tmp
    finally:
        d.kill()


@pytest.fixture
def rv(monkeypatch):
    monkeypatch.syspath_prepend(str(RESOLVE_DIR))
    monkeypatch.syspath_prepend(str(STAND_INS))
    import resolve_api

    resolve_api.calls.clear()
    import ned_fx_emotion

    return resolve_api, ned_fx_emotion


def _exr_plate(folder: Path) -> Path:
    """An EXR sequence 1001-1010 from real footage (Resolve shows it as plate.[1001-1010].exr)."""
    from ned_fx.media import open_media

    folder.mkdir(parents=True, exist_ok=True)
    with open_media(footage("d3.mp4"), "0-9") as src:
        for i, fr in enumerate(src):
            images.write_exr(folder / f"plate.{1001 + i:04d}.exr", fr.pixels.astype(np.float16) / np.float16(255),
                             ("R", "G", "B"))
    return folder


def _timeline(ra, tmp: Path, render_dir: Path | None):
    """V1: two marked d12 clips, an unmarked one, a marked EXR-sequence clip; V2: a marked title (no file) and a
    marked retimed clip."""
    project = ra.Project("show", render_jobs=[{"JobId": "1", "TargetDir": str(render_dir)}] if render_dir else [])
    tl = project._add_timeline(ra.Timeline("reel1_v3", tracks=2, start_frame=RECORD))
    movie = ra.MediaPoolItem("d12.mp4", {"File Path": str(footage("d12.mp4"))})
    plate = _exr_plate(tmp / "plates")
    seq = ra.MediaPoolItem("plate.[1001-1010].exr", {"File Path": str(plate / "plate.[1001-1010].exr")})
    tl._add(ra.TimelineItem("d12.mp4", movie, RECORD, 4, left_offset=10, color="Orange"), 1)
    tl._add(ra.TimelineItem("d12.mp4", movie, RECORD + 4, 3, left_offset=50, color="Orange"), 1)
    tl._add(ra.TimelineItem("d12.mp4", movie, RECORD + 7, 5, left_offset=0, color="Blue"), 1)
    tl._add(ra.TimelineItem("plate.[1001-1010].exr", seq, RECORD + 12, 5, left_offset=2, color="Orange"), 1)
    tl._add(ra.TimelineItem("Text+", None, RECORD, 6, color="Orange"), 2)
    tl._add(ra.TimelineItem("d12.mp4", movie, RECORD + 20, 4, left_offset=80, color="Orange", source_span=8), 2)
    return project, tl


def test_picked_clips_become_shots_with_the_right_ranges(rv, tmp_path):
    ra, bridge = rv
    project, tl = _timeline(ra, tmp_path, tmp_path / "renders")
    config = R.ResolveConfig(emotion="happy:0.7,surprised:0.3", intensity=0.8, consent="release 7", select="color")
    clips = bridge.collect_clips(tl, config)
    assert [(c.name, c.track, c.record_start) for c in clips] == [
        ("d12.mp4", 1, RECORD), ("d12.mp4", 1, RECORD + 4), ("plate.[1001-1010].exr", 1, RECORD + 12),
        ("Text+", 2, RECORD), ("d12.mp4", 2, RECORD + 20)]
    assert [c.name for c in bridge.collect_clips(tl, R.ResolveConfig(select="track", track=1))] == [
        "d12.mp4", "d12.mp4", "d12.mp4", "plate.[1001-1010].exr"]
    tl._current = tl.GetItemListInTrack("video", 1)[2]
    assert [c.record_start for c in bridge.collect_clips(tl, R.ResolveConfig(select="current"))] == [RECORD + 7]
    plan = R.plan_shots(clips, config, bridge.render_target(project), tl.GetName())
    shots = {s.name: s for s in plan.shots}
    assert list(shots) == ["d12_happy-surprised", "d12_happy-surprised_2", "plate_happy-surprised"]
    a, b, seq = shots.values()
    assert (a.input, a.first, a.last, a.record_frame) == (str(footage("d12.mp4")), 10, 13, RECORD)
    assert (b.first, b.last, b.record_frame) == (50, 52, RECORD + 4)
    assert seq.input == str(tmp_path / "plates" / "plate.%04d.exr") and (seq.first, seq.last) == (1003, 1007)
    assert a.output == str(tmp_path / "renders" / "ned_fx" / "reel1_v3" / "d12_happy-surprised" /
                           "d12_happy-surprised.%04d.png")
    assert seq.output.endswith("plate_happy-surprised.%04d.exr"), "EXR plates stay EXR"
    assert a.params == {"emotion": "happy:0.7,surprised:0.3", "intensity": 0.8} and a.consent == "release 7"
    skipped = dict(plan.skipped)
    assert "no source file" in skipped["Text+"] and "retimed" in skipped["d12.mp4"]
    # no render job: outputs go beside each source
    beside = R.plan_shots(clips[:1], config, None, "reel1_v3")
    assert beside.shots[0].output.startswith(str(Path(footage("d12.mp4")).parent / "ned_fx" / "reel1_v3"))
    with pytest.raises(InvalidParameterError, match="between 0 and 1.5"):
        R.plan_shots(clips, R.ResolveConfig(intensity=3.0), None, "x")
    with pytest.raises(InvalidParameterError, match="past the sequence's last frame"):
        R.source_range("/p/plate.[1001-1010].exr", 8, 5)


def test_the_pass_edits_imports_and_places_results_at_the_same_record_frames(rv, served, tmp_path):
    ra, bridge = rv
    d, root = served
    work = root / "pass"
    project, tl = _timeline(ra, work, work / "renders")
    config = work / "settings.json"
    config.write_text(json.dumps({"endpoint": d.endpoint, "emotion": "sad", "intensity": 0.6,
                                  "consent": "release 7", "python": sys.executable, "select": "color"}))
    lines: list[str] = []
    code = bridge.main(["--config", str(config), "--no-dialog"], namespace={"resolve": ra.Resolve(project)},
                       out=lines.append)
    assert code == 1, "two clips were skipped"
    text = "\n".join(lines)
    assert "skipped Text+: has no source file" in text and "skipped d12.mp4: is retimed" in text
    assert "3 of 3 shot(s) edited and placed" in text
    # the edited frames (identity engine: the source's own pixels), numbered like the source
    from ned_fx.media import open_media, read_image

    out = work / "renders" / "ned_fx" / "reel1_v3"
    with open_media(footage("d12.mp4"), "10-13") as src:
        for fr in src:
            assert np.array_equal(read_image(out / "d12_sad" / f"d12_sad.{fr.number:04d}.png").pixels, fr.pixels)
    for n in range(1003, 1008):
        edited = read_image(out / "plate_sad" / f"plate_sad.{n:04d}.exr")
        assert np.array_equal(edited.pixels, read_image(work / "plates" / f"plate.{n:04d}.exr").pixels)
    assert not (out / "plate_sad" / "plate_sad.1002.exr").exists(), "only the used range"
    # imported into a ned_fx bin, placed on a new track at the same record frames
    assert tl.GetTrackCount("video") == 3 and tl.GetTrackName("video", 3) == "ned_fx sad"
    # by default as patches: premultiplied alpha over the original clip (the identity engine changes nothing, so
    # every patch is transparent black and Resolve's own decode of V1 shows through everywhere)
    placed = [(i.GetName(), i.GetStart(), i.GetDuration()) for i in tl.GetItemListInTrack("video", 3)]
    assert placed == [("d12_sad.patch.[0010-0013].png", RECORD, 4),
                      ("d12_sad_2.patch.[0050-0052].png", RECORD + 4, 3),
                      ("plate_sad.patch.[1003-1007].exr", RECORD + 12, 5)]
    imports = [c[1][0] for c in ra.calls if c[0] == "ImportMedia"]
    assert imports[0] == {"FilePath": str(out / "d12_sad" / "d12_sad.patch.%04d.png"), "StartIndex": 10,
                          "EndIndex": 13}
    alpha_modes = [c[1:] for c in ra.calls if c[0] == "SetClipProperty"]
    assert alpha_modes == [("d12_sad.patch.[0010-0013].png", "Alpha mode", "Premultiplied"),
                           ("d12_sad_2.patch.[0050-0052].png", "Alpha mode", "Premultiplied"),
                           ("plate_sad.patch.[1003-1007].exr", "Alpha mode", "Premultiplied")]
    patch = read_image(out / "d12_sad" / "d12_sad.patch.0011.png")
    assert patch.channels == ("R", "G", "B", "A") and patch.pixels.dtype == np.uint16 and not patch.pixels.any()
    assert not read_image(out / "plate_sad" / "plate_sad.patch.1004.exr").pixels.any()
    pool = project.GetMediaPool()
    assert [f.GetName() for f in pool.GetRootFolder().GetSubFolderList()] == ["ned_fx"]
    assert len(pool.GetRootFolder().GetSubFolderList()[0].GetClipList()) == 3
    assert pool.GetCurrentFolder() is pool.GetRootFolder(), "the artist's current bin is restored"
    # a shot list to re-run the pass with ned-fx batch (or the farm), and the batch report
    shotlists = list(out.glob("ned_fx_shots-*.*"))
    assert len(shotlists) == 1
    from ned_fx.batch.shotlist import read_from_file

    again = read_from_file(shotlists[0])
    assert [s.name for s in again] == ["d12_sad", "d12_sad_2", "plate_sad"]
    assert again.shot("plate_sad").frames == "1003-1007" and again.shot("d12_sad").consent == "release 7"
    report = json.loads(next(out.glob("ned_fx_plan-*_report.json")).read_text())
    assert [s["status"] for s in report["shots"]] == ["done", "done", "done"]


def test_full_frames_are_placed_when_asked(rv, served, tmp_path):
    """``layer: full`` keeps the whole edited frame on the new track (no patches, no alpha mode set); a plan
    written before layers (no ``layer`` key) reads as full frames."""
    ra, bridge = rv
    d, root = served
    work = root / "full"
    project, tl = _timeline(ra, work, work / "renders")
    config = work / "settings.json"
    config.write_text(json.dumps({"endpoint": d.endpoint, "emotion": "sad", "python": sys.executable,
                                  "layer": "full", "select": "track", "track": 1}))
    lines: list[str] = []
    assert bridge.main(["--config", str(config), "--no-dialog"], namespace={"resolve": ra.Resolve(project)},
                       out=lines.append) == 0, "\n".join(lines)
    placed = [i.GetName() for i in tl.GetItemListInTrack("video", 3)]
    assert placed[0] == "d12_sad.[0010-0013].png" and not any(".patch." in n for n in placed)
    assert not [c for c in ra.calls if c[0] == "SetClipProperty"]
    assert not list((work / "renders").rglob("*.patch.*"))
    plan = R.plan_to_dict(R.plan_shots([], R.ResolveConfig(), None, "x"))
    shot = dict(R.PlannedShot("a", "a", "/p/a.mov", 0, 1, "/o/a.%04d.png", 0, 1).__dict__)
    shot.pop("layer")
    assert R.plan_from_dict({**plan, "shots": [shot]}).shots[0].layer == "full"
    with pytest.raises(InvalidParameterError, match="patch, full"):
        R.ResolveConfig(layer="alpha")


def test_no_daemon_is_reported_and_nothing_is_placed(rv, tmp_path):
    ra, bridge = rv
    project, tl = _timeline(ra, tmp_path, tmp_path / "renders")
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"endpoint": f"tcp://127.0.0.1:{free_port()}", "python": sys.executable,
                                  "select": "track", "track": 1}))
    lines: list[str] = []
    code = bridge.main(["--config", str(config), "--no-dialog"], namespace={"resolve": ra.Resolve(project)},
                       out=lines.append)
    text = "\n".join(lines)
    assert code == 1 and "FAILED: no ned-fx daemon answered" in text and "0 of 4 shot(s)" in text
    assert tl.GetTrackCount("video") == 2 and not [c for c in ra.calls if c[0] in ("ImportMedia", "AddTrack")]


def test_the_dialog_is_built_from_the_daemons_parameters(rv, served, tmp_path):
    ra, bridge = rv
    d, _ = served
    project, tl = _timeline(ra, tmp_path, tmp_path / "renders")
    base = R.ResolveConfig(endpoint=d.endpoint)
    seen = {}

    def artist(window):                       # fills in the dialog and presses "Edit clips"
        items = window.GetItems()
        seen.update({k: (w.kind, w.items, w.props) for k, w in items.items()})
        items["emotion"].CurrentIndex = items["emotion"].items.index("surprised")
        items["intensity"].Value = 0.6
        items["consent"].Text = "release 9"
        items["face"].Value = 1.0
        items["select"].CurrentIndex = items["select"].items.index("track")
        items["ignore_cuts"].Checked = True           # a clip holding a false cut (a whip pan): one shot
        window.On.run.Clicked(None)

    ra.UIDispatcher.on_run_loop = artist
    try:
        config = bridge.ask(ra.Fusion(), ra.Bmd(), base)
    finally:
        ra.UIDispatcher.on_run_loop = None
    assert seen["emotion"][0] == "ComboBox" and seen["emotion"][1][-1] == "reference"
    assert seen["intensity"][0] == "DoubleSpinBox" and (seen["intensity"][2]["Minimum"],
                                                         seen["intensity"][2]["Maximum"]) == (0.0, 1.5)
    assert seen["speech"][1] == ["auto", "preserve", "free"] and seen["reference"][0] == "LineEdit"
    assert "mix" not in seen and seen["face"][0] == "SpinBox" and seen["face"][2]["Value"] == -1
    assert (config.emotion, config.intensity, config.consent, config.face, config.select) == (
        "surprised", 0.6, "release 9", 1, "track")
    assert seen["ignore_cuts"][0] == "CheckBox" and seen["ignore_cuts"][2]["Checked"] is False
    assert config.ignore_cuts and config.instruction()["ignore_cuts"] is True       # sent to the daemon's open
    assert "ignore_cuts" not in base.instruction()                                  # off: not sent at all
    ra.UIDispatcher.on_run_loop = lambda window: window.On.cancel.Clicked(None)
    try:
        lines: list[str] = []
        code = bridge.main([], namespace={"resolve": ra.Resolve(project), "fusion": ra.Fusion(), "bmd": ra.Bmd()},
                           out=lines.append)
    finally:
        ra.UIDispatcher.on_run_loop = None
    assert code == 1 and lines == ["ned_fx: cancelled"]


def test_settings_files_and_external_scripting(rv, tmp_path):
    ra, bridge = rv
    bad = tmp_path / "bad.json"
    bad.write_text('{"emotoin": "sad"}')
    with pytest.raises(InvalidParameterError, match=r"unknown setting\(s\) 'emotoin'; valid: endpoint, emotion"):
        R.read_config(bad)
    bad.write_text('{"select": "selected"}')
    with pytest.raises(InvalidParameterError, match="valid: selection, markers, color, current, track"):
        R.read_config(bad)
    bad.write_text('{"intensity": "high"}')
    with pytest.raises(InvalidParameterError, match="must be a number"):
        R.read_config(bad)
    yaml_file = tmp_path / "s.yaml"
    yaml_file.write_text("emotion: angry\nintensity: 1\nface: 2\nned_fx_root: /x\n")
    assert R.read_config(yaml_file) == R.ResolveConfig(emotion="angry", intensity=1.0, face=2)
    lines: list[str] = []
    assert bridge.main(["--config", str(bad)], namespace={}, out=lines.append) == 2
    assert "must be a number" in lines[0]
    import DaVinciResolveScript

    project, _ = _timeline(ra, tmp_path, None)
    DaVinciResolveScript._install(ra.Resolve(project))
    try:
        assert bridge.get_resolve({}) is not None, "external scripting: scriptapp('Resolve')"
    finally:
        DaVinciResolveScript._install(None)
    lines.clear()
    assert bridge.main(["--no-dialog"], namespace={}, out=lines.append) == 2 and "no Resolve" in lines[0]


def test_resolve_installer_copies_the_script_and_keeps_settings(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    script = str(REPO / "install" / "resolve.sh")
    dest = home / ".local/share/DaVinciResolve/Fusion/Scripts/Utility"
    dry = subprocess.run([script, "--dry-run", "--os", "linux"], capture_output=True, text=True, env=env)
    assert dry.returncode == 0 and f"would copy {RESOLVE_DIR}/ned_fx_emotion.py -> {dest}/ned_fx_emotion.py" in dry.stdout
    assert not dest.exists()
    mac = subprocess.run([script, "--dry-run", "--os", "macos"], capture_output=True, text=True, env=env).stdout
    assert f"{home}/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Utility" in mac
    system = subprocess.run([script, "--dry-run", "--os", "linux", "--system"], capture_output=True, text=True,
                            env=env).stdout
    assert "/opt/resolve/Fusion/Scripts/Utility/ned_fx_emotion.py" in system
    run = subprocess.run([script, "--os", "linux", "--endpoint", "tcp://10.0.0.5:5557"], capture_output=True,
                         text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert (dest / "ned_fx_emotion.py").read_bytes() == (RESOLVE_DIR / "ned_fx_emotion.py").read_bytes()
    settings = json.loads((dest / "ned_fx_emotion.json").read_text())
    assert settings["ned_fx_root"] == str(REPO) and settings["endpoint"] == "tcp://10.0.0.5:5557"
    assert R.read_config(dest / "ned_fx_emotion.json").endpoint == "tcp://10.0.0.5:5557"
    (dest / "ned_fx_emotion.json").write_text('{"emotion": "sad"}')           # the artist's own settings
    again = subprocess.run([script, "--os", "linux"], capture_output=True, text=True, env=env)
    assert "kept" in again.stdout and json.loads((dest / "ned_fx_emotion.json").read_text()) == {"emotion": "sad"}
    bad = subprocess.run([script, "--os", "beos"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "valid: linux, macos, windows" in bad.stderr
