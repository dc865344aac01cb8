"""The Nuke bridge (``host_bridges/nuke``) against a faithful stand-in of the ``nuke`` module
(``tests/stand_ins/nuke.py``: knob types and values checked, node/knob/progress calls only on the main thread,
``executeInMainThread`` queued until the test's event loop runs it) and a real daemon: menu entries, knobs from
``describe``, Analyse (bake, background analysis, frames rendered current-first), cancel from the progress bar,
no daemon -> input passed through with a clear error within 3 s and recovery, command-line renders, install."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, footage
from daemons import Daemon, free_port

from ned_fx.hosts import images

STAND_INS = REPO / "tests" / "stand_ins"
NUKE_DIR = REPO / "host_bridges" / "nuke"
FORMAT = (512, 512)
BBOX_WINDOW = (24, 16, 487, 495)          # the data window the stand-in's Write gives the input (a bbox)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """An identity daemon serving a folder the nodes' caches go under."""
    tmp = tmp_path_factory.mktemp("nuke")
    d = Daemon("--engine", "identity", roots=[tmp], tmp=tmp)
    try:
        yield d, tmp
    finally:
        d.kill()


def _bake_renderer(nuke, clip: str = "d12.mp4", first: int = 1001, compression: str = "zips"):
    """What Nuke's Write does when the bridge executes ``ned_bake``: the input (real footage, an alpha, a bbox
    smaller than the format) as an EXR of the Write's settings."""
    from ned_fx.media import open_media

    src = open_media(footage(clip))

    def render(node, frame):
        path = Path(node["file"].value().replace("%04d", f"{frame:04d}"))
        if node.name() != "ned_bake":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")            # some other Write of the script
            return
        assert (node["file_type"].value(), node["channels"].value(), node["datatype"].value(),
                node["raw"].value()) == ("exr", "rgba", "32 bit float", True)
        rgb = src.read(frame - first).pixels.astype(np.float32) / 255.0
        x0, y0, x1, y1 = BBOX_WINDOW
        rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 0.75, np.float32)], -1)[y0:y1 + 1, x0:x1 + 1]
        images.write_exr(path, rgba, ("R", "G", "B", "A"), data_window=BBOX_WINDOW, display_window=(0, 0, 511, 511),
                         compression=compression)

    return render


@pytest.fixture
def nk(served, monkeypatch, request):
    d, root = served
    monkeypatch.syspath_prepend(str(NUKE_DIR))
    monkeypatch.syspath_prepend(str(STAND_INS))
    import nuke

    nuke._reset()
    monkeypatch.setenv("NED_FX_NUKE_CACHE", str(root / request.node.name))
    monkeypatch.setenv("NED_FX_ENDPOINT", d.endpoint)
    import ned_fx_nuke

    _forget(ned_fx_nuke)
    monkeypatch.setattr(ned_fx_nuke, "SIGNATURE_TTL", 0.0)      # tests change the input and look at once
    runpy.run_path(str(NUKE_DIR / "init.py"))
    runpy.run_path(str(NUKE_DIR / "menu.py"))
    nuke.root()["first_frame"].setValue(1001)
    nuke.root()["last_frame"].setValue(1004)
    nuke._set_write_renderer(_bake_renderer(nuke))
    yield nuke
    _forget(ned_fx_nuke)


def _forget(module) -> None:
    for rt in module._RUNTIME.values():
        for job in (rt.analysis, rt.renderer):
            if job is not None:
                job.cancel()
                job.wait(10)
    module._RUNTIME.clear()
    module._SIGNATURES.clear()
    for link in module._LINKS.values():
        link.close()
    module._LINKS.clear()


def _settle(nuke, node, timeout: float = 60.0) -> None:
    """Run Nuke's event loop until the node's background work is over and every update was delivered."""
    import ned_fx_nuke

    def idle():
        rt = ned_fx_nuke._RUNTIME.get(node.fullName())
        busy = rt is not None and ((rt.analysis is not None and rt.analysis.running)
                                   or (rt.renderer is not None and rt.renderer.running) or rt.task is not None)
        return not busy and nuke._main_queue.empty()

    nuke._pump(timeout, until=idle)


def _switch(nuke, node, frame: int) -> int:
    return int(nuke._eval_expression(node.node("ned_switch")["which"], frame))


# ---- install, init and menu ---------------------------------------------------------------------------------

def test_init_only_makes_ned_fx_importable_and_registers_the_render_hook(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(STAND_INS))
    import nuke

    nuke._reset()
    home = tmp_path / "home"
    (home / ".nuke").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("NED_FX_ROOT", raising=False)
    before = list(sys.path)
    runpy.run_path(str(NUKE_DIR / "init.py"))
    assert str(REPO) in sys.path or str(REPO) in before          # the checkout this folder lives in
    assert [c[0] for c in nuke._calls] == ["addBeforeFrameRender"], "init.py does nothing else"
    (home / ".nuke" / "ned_fx.json").write_text('{"root": "%s"}' % (tmp_path / "site"))
    runpy.run_path(str(NUKE_DIR / "init.py"))
    assert str(tmp_path / "site") in sys.path
    monkeypatch.setenv("NED_FX_ROOT", str(tmp_path / "env_root"))
    runpy.run_path(str(NUKE_DIR / "init.py"))
    assert str(tmp_path / "env_root") in sys.path
    # the installed endpoint and shared cache are defaults; a blade's environment wins
    (home / ".nuke" / "ned_fx.json").write_text(json.dumps({"root": str(tmp_path / "site"), "endpoint":
                                                            "tcp://10.0.0.5:5557", "cache": "/shows/tmp/nk"}))
    monkeypatch.delenv("NED_FX_ENDPOINT", raising=False)
    monkeypatch.setenv("NED_FX_NUKE_CACHE", "/farm/cache")
    runpy.run_path(str(NUKE_DIR / "init.py"))
    assert os.environ["NED_FX_ENDPOINT"] == "tcp://10.0.0.5:5557" and os.environ["NED_FX_NUKE_CACHE"] == "/farm/cache"
    sys.path[:] = [p for p in sys.path if not p.startswith(str(tmp_path))]


def test_menu_puts_emotion_director_under_nodes_and_the_menu_bar(nk):
    create = "import ned_fx_nuke; ned_fx_nuke.create_node()"
    assert nk.toolbar("Nodes").findItem("ned_fx/Emotion Director") == ("Emotion Director", create)
    assert nk.menu("Nuke").findItem("ned_fx/Emotion Director") == ("Emotion Director", create)
    assert nk.menu("Nuke").findItem("ned_fx/Check daemon") is not None
    exec(create, {"nuke": nk})                                  # what clicking the entry does
    node = nk.toNode("EmotionDirector1")
    assert node is not None and node.Class() == "Group" and node.knob("ned_fx_version").value() == "1"
    exec(create, {"nuke": nk})
    assert nk.toNode("EmotionDirector2") is not None, "a second node gets its own name"


def test_knobs_are_built_from_the_daemons_describe(nk):
    import ned_fx_nuke

    node = ned_fx_nuke.create_node()
    k = node.knobs()
    kinds = {name: k[name].Class() for name in ("emotion", "blend", "intensity", "regions", "speech", "face",
                                                "face_on", "neutral_frame", "reference", "keys", "mix", "consent",
                                                "analyse", "render", "check", "status", "endpoint", "source",
                                                "first_frame", "last_frame", "cache_dir", "strict")}
    assert kinds == {"emotion": "Enumeration_Knob", "blend": "String_Knob", "intensity": "Double_Knob",
                     "regions": "String_Knob", "speech": "Enumeration_Knob", "face": "Int_Knob",
                     "face_on": "Boolean_Knob", "neutral_frame": "Int_Knob", "reference": "File_Knob",
                     "keys": "String_Knob", "mix": "Double_Knob", "consent": "String_Knob",
                     "analyse": "PyScript_Knob", "render": "PyScript_Knob", "check": "PyScript_Knob",
                     "status": "Text_Knob", "endpoint": "String_Knob", "source": "Enumeration_Knob",
                     "first_frame": "Int_Knob", "last_frame": "Int_Knob", "cache_dir": "File_Knob",
                     "strict": "Boolean_Knob"}
    assert k["emotion"].values() == ["neutral", "happy", "sad", "surprised", "fearful", "angry", "disgusted",
                                     "reference"]
    assert k["emotion"].value() == "happy" and k["speech"].values() == ["auto", "preserve", "free"]
    assert (k["intensity"].min(), k["intensity"].max(), k["intensity"].value()) == (0.0, 1.5, 1.0)
    assert (k["mix"].min(), k["mix"].max(), k["mix"].value()) == (0.0, 1.0, 1.0)
    assert k["face_on"].value() is False and not k["face_on"].getFlag(nk.STARTLINE)
    assert "intensity" not in k["intensity"].tooltip() and "exaggerated" in k["intensity"].tooltip()
    assert k["analyse"].value() == "import ned_fx_nuke; ned_fx_nuke.analyse(nuke.thisNode())"
    assert (k["first_frame"].value(), k["last_frame"].value()) == (1001, 1004)
    for hidden in ("ned_fx_version", "ned_params", "ned_ok", "ned_cache", "ned_stamped"):
        assert k[hidden].getFlag(nk.INVISIBLE)
    assert "daemon ready" in k["status"].value() and k["tile_color"].value() == 0
    inner = {n.name(): n for n in node.nodes()}
    assert set(inner) == {"Source", "ned_bake", "ned_edit", "ned_copy", "ned_mix", "ned_stamp", "ned_switch",
                          "Output1", "Holdout", "ned_bake_holdout"}
    assert (inner["Source"]["number"].value(), inner["Holdout"]["number"].value()) == (0, 1)
    bake = inner["ned_bake"]
    assert bake["disable"].value() and bake["compression"].value() == "Zip (1 scanline)"
    assert inner["ned_edit"]["raw"].value() and inner["ned_copy"]["bbox"].value() == "B"
    assert [inner["ned_copy"][f"from{i}"].value() for i in range(3)] == ["rgba.red", "rgba.green", "rgba.blue"]
    assert inner["ned_copy"]["from3"].value() == inner["ned_copy"]["to3"].value() == "ned.matte"
    assert "ned" in nk.layers(), "the matte's layer exists before the Copy names its channel"
    assert inner["ned_copy"].input(0) is inner["Source"] and inner["ned_copy"].input(1) is inner["ned_edit"]
    assert inner["ned_stamp"].Class() == "ModifyMetaData" and inner["ned_stamp"].input(0) is inner["ned_mix"]
    assert inner["ned_stamp"]["metadata"].toScript() == "", "nothing to say before Analyse"
    assert inner["ned_switch"].input(0) is inner["Source"] and inner["ned_switch"].input(1) is inner["ned_stamp"]
    assert inner["Output1"].input(0) is inner["ned_switch"]
    k["mix"].setValueAt(0.25, 1002)
    assert nk._eval_expression(inner["ned_mix"]["which"], 1002) == 0.25     # the mix animates, host-side
    assert _switch(nk, node, 1002) == 0, "nothing analysed yet: the input passes through"


def test_knobs_cannot_be_touched_off_the_main_thread(nk):
    import ned_fx_nuke

    node = ned_fx_nuke.create_node()
    errors = []
    t = threading.Thread(target=lambda: errors.append(_try(lambda: node["status"].setValue("x"))))
    t.start()
    t.join()
    assert errors and isinstance(errors[0], RuntimeError), "the stand-in must catch UI work off the main thread"


def _try(fn):
    try:
        fn()
    except Exception as exc:
        return exc
    return None


def test_analyse_bakes_analyses_in_the_background_and_renders_current_frame_first(nk):
    import ned_fx_nuke
    from ned_fx.media import read_image

    node = ned_fx_nuke.create_node()
    node["consent"].setValue("performer release #2026-114")
    nk.frame(1003)
    node["analyse"].execute()                                # the button, on the main thread
    _settle(nk, node)
    assert "frame(s) rendered" in node["status"].value() and node["ned_ok"].value()
    marshalled = [c for c in nk._calls if c[0] == "executeInMainThread"]
    assert marshalled and {c[2] for c in marshalled} <= {"ned-fx-analysis", "ned-fx-render"}
    analysis, render = nk._progress_tasks
    assert any(m.startswith("baking the input") for m in analysis.messages)
    assert any(m.startswith("analysed 1001-1004") for m in analysis.messages) and analysis.progress[-1] == 100
    assert render.progress[-1] == 100 and render.messages[0].startswith("frame 1003")
    order = [int(m.split()[1]) for m in render.messages]
    assert order == [1003, 1004, 1002, 1001]
    pattern = node["ned_cache"].value()
    baked = Path(ned_fx_nuke.cache_root(node)) / "src"
    for f in range(1001, 1005):
        edited, source = read_image(Path(pattern.replace("%04d", f"{f:04d}"))), read_image(baked / f"src.{f}.exr")
        assert edited.data_window == source.data_window == BBOX_WINDOW, "the bbox comes back"
        assert edited.display_window == (0, 0, 511, 511) and edited.channels == ("R", "G", "B", "A", "ned.matte")
        assert np.array_equal(edited.pixels[..., :4], source.pixels)     # identity engine: exactly the input
        assert not edited.pixels[..., 4].any(), "the daemon's matte (ned.matte, for the node's Copy): 0 here"
        assert _switch(nk, node, f) == 1
    assert _switch(nk, node, 1000) == 0 and _switch(nk, node, 1005) == 0, "outside the range: the input"
    edit = node.node("ned_edit")
    assert edit["file"].value() == pattern and (edit["first"].value(), edit["last"].value()) == (1001, 1004)
    assert edit["reload"]._executions >= 1
    # Analyse again with the same settings: the bake keeps unchanged frames (the daemon's cache stays valid)
    mtimes = {p.name: p.stat().st_mtime_ns for p in baked.glob("src.*.exr")}
    node["analyse"].execute()
    _settle(nk, node)
    assert {p.name: p.stat().st_mtime_ns for p in baked.glob("src.*.exr")} == mtimes
    assert "4 already there" in node["status"].value()


def test_changed_settings_pass_the_input_through_until_analysed(nk):
    import ned_fx_nuke

    node = ned_fx_nuke.create_node()
    node["analyse"].execute()
    _settle(nk, node)
    happy = node["ned_cache"].value()
    assert _switch(nk, node, 1002) == 1
    nk._user_set(node["emotion"], "sad")                     # the artist changes the emotion
    assert node["ned_cache"].value() != happy and _switch(nk, node, 1002) == 0
    assert "press Analyse" in node["status"].value()
    nk._user_set(node["emotion"], "happy")                   # back: those frames are cached
    assert node["ned_cache"].value() == happy and _switch(nk, node, 1002) == 1
    with pytest.raises(TypeError):
        nk._user_set(node["intensity"], "lots")              # Nuke refuses a string in a Double_Knob


def test_an_animated_intensity_is_sent_as_keys(nk):
    import ned_fx_nuke
    from ned_fx.hosts.params import evaluate_keys

    node = ned_fx_nuke.create_node()
    nk._user_set(node["intensity"], 0.2, time=1001)
    nk._user_set(node["intensity"], 1.2, time=1004)
    request, bake, _ = ned_fx_nuke.build_request(node)
    keys = request.params["keys"]
    assert keys.startswith("1001:happy:0.2") and keys.endswith("1004:happy:1.2")
    wanted = [node["intensity"].getValueAt(f) for f in range(1001, 1005)]
    assert np.allclose(evaluate_keys(keys, range(1001, 1005)), wanted, atol=0.002)
    node["analyse"].execute()
    _settle(nk, node)
    assert node["ned_ok"].value() and _switch(nk, node, 1004) == 1, node["status"].value()


def test_bad_settings_are_refused_on_the_node_with_the_valid_choices(nk):
    import ned_fx_nuke

    node = ned_fx_nuke.create_node()
    node["emotion"].setValue("reference")
    node["analyse"].execute()
    assert "needs a reference" in node["status"].value() and node["label"].value().startswith("ERROR")
    node["emotion"].setValue("happy")
    node["source"].setValue("upstream Read file")
    node["analyse"].execute()
    assert "valid: connect a Read" in node["status"].value()
    assert not nk._progress_tasks, "nothing started"


def test_no_daemon_passes_the_input_through_with_a_clear_error_then_recovers(nk, served, monkeypatch):
    import ned_fx_nuke

    _, root = served
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    monkeypatch.setenv("NED_FX_ENDPOINT", endpoint)
    t0 = time.monotonic()
    node = ned_fx_nuke.create_node()
    assert time.monotonic() - t0 < 3.0
    assert "no ned-fx daemon answered" in node["status"].value() and node["tile_color"].value() != 0
    assert node["label"].value().startswith("ERROR: no ned-fx daemon")
    assert node.knob("intensity") is not None, "knobs from the built-in list"
    t0 = time.monotonic()
    node["analyse"].execute()
    _settle(nk, node, timeout=10)
    assert time.monotonic() - t0 < 3.0 + 1.0                  # 2 s ping + the local bake
    assert "no ned-fx daemon answered" in node["status"].value() and not node["ned_ok"].value()
    assert all(_switch(nk, node, f) == 0 for f in range(1001, 1005)), "the input passes through"
    # a script saved with edits, opened while the daemon is gone: onCreate checks it and passes through
    node["ned_ok"].setValue(True)
    nk._run_script_knob(node, "onCreate")
    nk._pump(5, until=lambda: not node["ned_ok"].value())
    assert "no ned-fx daemon answered" in node["status"].value()
    # a GUI Write render with strict off passes the input through; strict (the default) fails the frame
    out = nk.nodes.Write(file=str(root / "final.%04d.exr"))
    out.setInput(0, node)
    assert node["strict"].value() is True, "strict is the default"
    node["strict"].setValue(False)
    t0 = time.monotonic()
    nk.execute(out, 1001, 1004)
    assert time.monotonic() - t0 < 3.0, "one liveness check for the whole render, not one per frame"
    node["strict"].setValue(True)
    with pytest.raises(RuntimeError, match="no ned-fx daemon"):
        nk.execute(out, 1002, 1002)
    d = Daemon("--engine", "identity", port=port, roots=[root], tmp=root)
    try:
        node["check"].execute()
        nk._pump(10, until=lambda: "daemon ready" in node["status"].value())
        assert node["tile_color"].value() == 0 and node["label"].value() == ""
        node["analyse"].execute()
        _settle(nk, node)
        assert all(_switch(nk, node, f) == 1 for f in range(1001, 1005)), node["status"].value()
    finally:
        d.kill()


def test_command_line_renders_edit_missing_frames_before_each_frame(nk, served):
    import ned_fx_nuke

    _, root = served
    node = ned_fx_nuke.create_node()
    node["analyse"].execute()
    _settle(nk, node)
    missing = Path(node["ned_cache"].value().replace("%04d", "1002"))
    missing.unlink()
    assert _switch(nk, node, 1002) == 0
    out = nk.nodes.Write(file=str(root / "comp.%04d.exr"))
    out.setInput(0, node)
    rendered = {}
    nk._set_write_renderer(lambda w, f: rendered.setdefault(f, w.input(0)._image_at(f)))
    nk.execute(out, 1001, 1004)                     # the render hook (registered by init.py) runs per frame
    assert missing.is_file() and _switch(nk, node, 1002) == 1
    assert rendered[1002] == f"file:{missing}", "the Write renders the edited frame"


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nuke_real")
    d = Daemon("--cache", str(tmp / "cache"), roots=[tmp], tmp=tmp)
    try:
        yield d, tmp
    finally:
        d.kill()


def test_cancel_from_the_progress_bar_stops_bake_and_analysis(nk, real, monkeypatch):
    import ned_fx_nuke

    d, root = real
    monkeypatch.setenv("NED_FX_ENDPOINT", d.endpoint)
    monkeypatch.setenv("NED_FX_NUKE_CACHE", str(root / "cache_nodes"))
    nk.root()["last_frame"].setValue(1030)
    node = ned_fx_nuke.create_node()
    bake = _bake_renderer(nk, "d3.mp4", compression="none")
    calls = {"n": 0}

    def cancelling(n, f):                           # the artist presses Cancel while frame 1003 bakes
        bake(n, f)
        calls["n"] += 1
        if calls["n"] == 3:
            nk._progress_tasks[-1]._cancel()

    nk._set_write_renderer(cancelling)
    node["analyse"].execute()
    assert calls["n"] == 3 and "cancelled while baking" in node["status"].value()
    nk._set_write_renderer(bake)
    node["analyse"].execute()
    task = nk._progress_tasks[-1]
    nk._pump(60, until=lambda: any(m.startswith("analysing: ") and not m.startswith("analysing: 0/")
                                   for m in task.messages))
    task._cancel()
    _settle(nk, node)
    assert "analysis cancelled" in node["status"].value() and not node["ned_ok"].value()
    assert _switch(nk, node, 1010) == 0


def test_nuke_installer_puts_the_bridge_on_the_plugin_path(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    script = str(REPO / "install" / "nuke.sh")
    line = f"import nuke; nuke.pluginAddPath(r'{NUKE_DIR}')  # ned_fx (install/nuke.sh)"
    dry = subprocess.run([script, "--dry-run", "--nuke-python", sys.executable], capture_output=True, text=True,
                         env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"would write {home}/.nuke/init.py: {line}" in dry.stdout
    assert f"would run: {sys.executable} -m pip install --user pyzmq>=25 msgpack>=1.0 numpy>=1.24" in dry.stdout
    assert not (home / ".nuke").exists()
    (home / ".nuke").mkdir()
    (home / ".nuke" / "init.py").write_text("import nuke\nnuke.pluginAddPath('/studio/tools')\n")
    for expected in ("wrote", "unchanged"):
        run = subprocess.run([script, "--endpoint", "tcp://10.0.0.5:5557"], capture_output=True, text=True, env=env)
        assert run.returncode == 0 and run.stdout.startswith(f"{expected} {home}/.nuke/init.py"), run.stdout
    text = (home / ".nuke" / "init.py").read_text().splitlines()
    assert text == ["import nuke", "nuke.pluginAddPath('/studio/tools')", line], "the studio's lines are kept"
    assert json.loads((home / ".nuke" / "ned_fx.json").read_text()) == {"root": str(REPO),
                                                                       "endpoint": "tcp://10.0.0.5:5557"}
    printed = subprocess.run([script, "--print"], capture_output=True, text=True, env=env).stdout
    assert f'export NUKE_PATH="{NUKE_DIR}${{NUKE_PATH:+:$NUKE_PATH}}"' in printed
    assert "# export NED_FX_NUKE_CACHE=" in printed, "the farm is told to declare a shared cache"
    shared = subprocess.run([script, "--cache", "/shows/tmp/ned_fx_nuke"], capture_output=True, text=True, env=env)
    assert shared.returncode == 0, shared.stderr
    assert json.loads((home / ".nuke" / "ned_fx.json").read_text())["cache"] == "/shows/tmp/ned_fx_nuke"
    printed = subprocess.run([script, "--print", "--cache", "/shows/tmp/ned_fx_nuke"], capture_output=True,
                             text=True, env=env).stdout
    assert 'export NED_FX_NUKE_CACHE="/shows/tmp/ned_fx_nuke"' in printed
    bad = subprocess.run([script, "--nuke-python", str(tmp_path / "nope")], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "not an executable" in bad.stderr


# ---- the edit record on the node's output (issue 9: the bridges pass provenance through) --------------------------

#: A consent text that TCL would mangle if it were not quoted: braces (unbalanced too), quotes, spaces, brackets,
#: a dollar, a backslash and a non-ASCII name.
AWKWARD_CONSENT = 'release {A-12 "Zoë Lee"} [signed] $5 \\ ok }{'


def _stamped_record(metadata):
    from ned_fx.provenance import EditRecord

    text = metadata.get("exr/ned_fx/provenance")
    return None if text is None else EditRecord.from_json(text)


def _plate(nk, node):
    """A Read of the plate feeding the node, with the metadata Nuke reads from its file."""
    read = nk.nodes.Read(file="/shows/sh040/plates/sh040_plate.%04d.exr")
    nk._set_metadata(read, {"exr/owner": "plates dept", "exr/comments": "scan v2", "input/width": 512})
    node.setInput(0, read)
    return read


def test_analyse_stamps_the_edit_record_on_the_edited_frames(nk):
    import ned_fx_nuke
    from ned_fx.hosts import stamps

    node = ned_fx_nuke.create_node()
    read = _plate(nk, node)
    nk._user_set(node["emotion"], "sad")
    nk._user_set(node["intensity"], 0.8)
    nk._user_set(node["consent"], AWKWARD_CONSENT)
    node["analyse"].execute()
    _settle(nk, node)
    assert node["ned_ok"].value() and _switch(nk, node, 1003) == 1, node["status"].value()
    script = node.node("ned_stamp")["metadata"].toScript()
    assert script.startswith("{set exr/ned_fx/provenance ") and "[frame]" in script
    for frame in (1001, 1003, 1004):
        out = node.metadata(time=frame)                  # the Group's output, as a Write downstream sees it
        record = _stamped_record(out)
        assert record is not None, f"frame {frame} is edited but its output does not say so"
        assert (record.edited, record.emotion, record.intensity, record.consent) == (True, "sad", 0.8,
                                                                                      AWKWARD_CONSENT)
        assert (record.source, record.source_frame, record.frames) == ("sh040_plate.%04d.exr", frame, "1001-1004")
        assert record.renderer == "identity" and record.application.startswith("Nuke 15.1")
        assert record.summary.startswith("The facial expression in this image was edited with ned_fx")
        assert out["exr/comments"] == record.summary and out["exr/ned_fx/source_frame"] == str(frame)
        assert out["exr/ned_fx/consent"] == AWKWARD_CONSENT and out["exr/ned_fx/edited"] == "true"
        assert out["exr/owner"] == "plates dept" and out["input/width"] == 512, "the input's metadata is kept"
        # the host-agnostic reader evaluates the knob exactly as the stand-in's (independent) TCL does
        assert stamps.parse_nuke_metadata(script, frame, incoming=read.metadata(time=frame)) == out
    kept = Path(node["ned_cache"].value()).parent / "provenance.json"
    assert _stamped_record({"exr/ned_fx/provenance": kept.read_text()}).for_frame(1003) == \
        _stamped_record(node.metadata(time=1003))


def test_frames_passed_through_are_not_stamped(nk, served, monkeypatch):
    import ned_fx_nuke

    node = ned_fx_nuke.create_node()
    read = _plate(nk, node)
    plate = read.metadata(time=1002)
    assert node.metadata(time=1002) == plate, "not analysed: the input, unstamped"
    node["analyse"].execute()
    _settle(nk, node)
    happy = _stamped_record(node.metadata(time=1002))
    assert happy is not None and happy.emotion == "happy"
    assert node.metadata(time=1005) == read.metadata(time=1005), "outside the range: the input, unstamped"
    nk._user_set(node["emotion"], "sad")                     # settings changed: the input until analysed
    assert _switch(nk, node, 1002) == 0 and node.metadata(time=1002) == plate
    assert node["ned_stamped"].value() == "" and node.node("ned_stamp")["metadata"].toScript() == ""
    nk._user_set(node["emotion"], "happy")                   # back: its frames and its record come back
    assert _stamped_record(node.metadata(time=1002)) == happy
    # a deleted record: the cached frames are not shown unstamped
    (Path(node["ned_cache"].value()).parent / "provenance.json").unlink()
    nk._user_set(node["emotion"], "sad")
    nk._user_set(node["emotion"], "happy")
    assert "press Analyse" in node["status"].value()
    assert _switch(nk, node, 1002) == 0 and node.metadata(time=1002) == plate
    node["analyse"].execute()
    _settle(nk, node)
    assert _stamped_record(node.metadata(time=1002)).emotion == "happy"
    # no daemon: the node passes its input through, and says nothing about an edit
    node["endpoint"].setValue(f"tcp://127.0.0.1:{free_port()}")
    node["check"].execute()
    nk._pump(5, until=lambda: not node["ned_ok"].value())
    assert all(node.metadata(time=f) == read.metadata(time=f) for f in range(1001, 1005))


def test_writes_that_would_drop_the_record_are_named_on_the_node(nk, served):
    import ned_fx_nuke

    _, root = served
    node = ned_fx_nuke.create_node()
    exr = nk.nodes.Write(name="WriteComp", file=str(root / "comp.%04d.exr"), file_type="exr")
    exr.setInput(0, node)
    review = nk.nodes.Write(name="WriteReview", file=str(root / "review.%04d.png"))
    review.setInput(0, exr)
    other = nk.nodes.Write(name="WriteOther", file=str(root / "other.%04d.exr"), file_type="exr")
    assert exr["metadata"].value() == "default metadata", "Nuke's default drops exr/* keys"
    node["analyse"].execute()
    _settle(nk, node)
    status = node["status"].value()
    assert "WriteComp, WriteReview would write the edit without its record" in status, status
    assert "default metadata and exr/*" in status and "WriteOther" not in status
    assert any("WriteComp" in w for w in nk._warnings)
    exr["metadata"].setValue("default metadata and exr/*")
    review["disable"].setValue(True)
    node["render"].execute()
    _settle(nk, node)
    assert "warning" not in node["status"].value() and "4 already there" in node["status"].value()
    assert other.input(0) is None


def test_a_record_becomes_nuke_metadata_lines_that_an_exr_write_carries(tmp_path):
    """Host-agnostic: record -> ModifyMetaData lines -> evaluated per frame (as Nuke does) -> the EXR header
    attributes Nuke's Write makes of exr/* keys -> ned_fx's own reader finds the record."""
    from ned_fx.errors import InvalidParameterError
    from ned_fx.hosts import stamps
    from ned_fx.media import Frame, read_image, write_image
    from ned_fx.media.readers import read_provenance
    from ned_fx.provenance import build_record

    record = build_record("/shows/sh040/plates/sh040_plate.%04d.exr",
                          {"emotion": "happy:0.7,surprised:0.3", "intensity": 1.2, "regions": "mouth,brows"},
                          face_id=1, frames="1001-1100", consent=AWKWARD_CONSENT + "\nline two\t$x [y]",
                          user="ann", host="ws07", application="Nuke 15.1v3")
    lines = stamps.nuke_metadata_lines(record)
    assert lines.count("\n") == len(lines.splitlines()) - 1 and all(
        line.startswith("{set exr/") and line.endswith('"}') for line in lines.splitlines())
    pixels = np.full((8, 8, 3), 0.5, np.float32)
    for frame in (1001, 1042):
        metadata = stamps.parse_nuke_metadata(lines, frame, incoming={"exr/owner": "plates", "input/width": 8})
        assert metadata["exr/owner"] == "plates" and metadata["input/width"] == 8
        header = stamps.exr_header_from_metadata(metadata, "default metadata and exr/*")
        assert "owner" in header and "input/width" not in header and "width" not in header
        path = write_image(tmp_path / f"comp.{frame:04d}.exr", Frame(frame, pixels, ("R", "G", "B")),
                           metadata=header)
        assert read_provenance(path) == record.for_frame(frame)
        written = read_image(path).metadata
        assert written["comments"] == record.for_frame(frame).summary
        assert written["ned_fx/consent"] == record.consent and written["ned_fx/source_frame"] == str(frame)
        assert stamps.record_from_nuke_metadata(metadata) == record.for_frame(frame)
    assert stamps.exr_header_from_metadata(metadata, "default metadata") == {}
    assert stamps.exr_header_from_metadata(metadata, "all metadata") == header
    with pytest.raises(InvalidParameterError, match="valid: no metadata, default metadata, default metadata and"):
        stamps.exr_header_from_metadata(metadata, "everything")
    # the shot's record without a frame, and frames the edit passed through
    shot = stamps.record_from_nuke_metadata(stamps.parse_nuke_metadata(
        stamps.nuke_metadata_lines(record, frame_expression=None), 7))
    assert shot.source_frame is None and shot.frames == "1001-1100" and shot.edited
    passed = stamps.record_from_nuke_metadata(stamps.parse_nuke_metadata(
        stamps.nuke_metadata_lines(record.to_dict(), passed_through="no face"), 1050))
    assert (passed.edited, passed.passed_through, passed.source_frame) == (False, "no face", 1050)
    assert "passed through unchanged: no face" in passed.summary
    with pytest.raises(InvalidParameterError, match="not one TCL command"):
        stamps.nuke_metadata_lines(record, frame_expression="frame")
    assert stamps.write_keeps_record("exr", "all metadata except input/*")
    assert not stamps.write_keeps_record("exr", "default metadata") and not stamps.write_keeps_record(
        "png", "all metadata")


def test_the_lines_are_what_nukes_modifymetadata_evaluates(nk):
    """The same lines through the stand-in's own TCL (list parsing, then per-frame evaluation), as a script or
    ``nuke.nodes.ModifyMetaData(metadata=...)`` gives them; a malformed script is refused."""
    from ned_fx.errors import InvalidParameterError
    from ned_fx.hosts import stamps
    from ned_fx.provenance import EditRecord, build_record

    record = build_record("sh040.%04d.exr", {"emotion": "angry", "intensity": 0.5}, frames="1-3",
                          consent=AWKWARD_CONSENT, hash_source=False)
    lines = stamps.nuke_metadata_lines(record)
    node = nk.nodes.ModifyMetaData(metadata=lines)
    for f in (1, 3):
        md = node.metadata(time=f)
        assert EditRecord.from_json(md["exr/ned_fx/provenance"]) == record.for_frame(f)
        assert md == stamps.parse_nuke_metadata(lines, f)
    with pytest.raises(TypeError):
        node["metadata"].setValue(lines)
    for bad in ("{set exr/a {unbalanced}", '{set exr/a "x}', "{frob exr/a 1}"):
        with pytest.raises(ValueError):
            node["metadata"].fromScript(bad)
        with pytest.raises(InvalidParameterError):
            stamps.parse_nuke_metadata(bad, 1)


def test_a_gui_render_analyses_in_the_background_and_cancel_stops_it(nk, real, monkeypatch, tmp_path):
    """A Write render that needs a session runs the analysis in its thread under a progress bar whose Cancel
    stops it (the daemon is told), instead of blocking Nuke in ``controller.wait()``."""
    import ned_fx_nuke
    from ned_fx.media import open_media

    d, root = real
    monkeypatch.setenv("NED_FX_ENDPOINT", d.endpoint)
    monkeypatch.setenv("NED_FX_NUKE_CACHE", str(root / "cache_render"))
    plates = root / "render_plates"
    plates.mkdir(exist_ok=True)
    with open_media(footage("d3.mp4"), "0-29") as src:
        for i, fr in enumerate(src):
            images.write_exr(plates / f"plate.{1001 + i:04d}.exr", fr.pixels.astype(np.float32) / 255.0,
                             ("R", "G", "B"))
    nk.root()["last_frame"].setValue(1030)
    read = nk.nodes.Read(file=str(plates / "plate.%04d.exr"))
    node = ned_fx_nuke.create_node()
    node.setInput(0, read)
    nk._user_set(node["source"], "upstream Read file")
    comp = nk.nodes.Write(file=str(root / "render_comp.%04d.exr"))
    comp.setInput(0, node)
    nk._set_write_renderer(lambda w, f: None)

    class ArtistCancels(nk.ProgressTask):
        def setMessage(self, message):
            super().setMessage(message)
            if message.startswith("analysing: ") and not message.startswith("analysing: 0/"):
                self._cancel()

    monkeypatch.setattr(nk, "ProgressTask", ArtistCancels)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="cancelled from the progress bar"):
        nk.execute(comp, 1001, 1001)
    task = nk._progress_tasks[-1]
    assert task.name.startswith("Emotion Director: analysing") and task.progress
    assert time.monotonic() - t0 < 60
    assert not any(r.analysis is not None and r.analysis.running for r in ned_fx_nuke._RUNTIME.values())


# ---- the Holdout input -------------------------------------------------------------------------------------------

def _holdout_renderer(nuke, clip: str = "d12.mp4", compression: str = "zips"):
    """Writes as Nuke would: ``ned_bake`` the input (as :func:`_bake_renderer`), ``ned_bake_holdout`` the Holdout
    input's alpha alone: a roto holding the left half of the frame, its bounding box the EXR's data window."""
    import ned_fx_nuke

    source = _bake_renderer(nuke, clip, compression=compression)

    def render(node, frame):
        if node.name() != ned_fx_nuke.HOLDOUT_BAKE:
            return source(node, frame)
        assert (node["file_type"].value(), node["channels"].value(), node["raw"].value()) == ("exr", "alpha", True)
        alpha = np.ones((512, 256, 1), np.float32)
        images.write_exr(Path(node["file"].value().replace("%04d", f"{frame:04d}")), alpha, ("A",),
                         data_window=(0, 0, 255, 511), display_window=(0, 0, 511, 511), compression=compression)

    return render


def test_a_holdout_input_is_baked_and_sent_as_the_holdout_matte(nk):
    """Input 1 (Holdout): its alpha is baked beside the source at Analyse and sent as the session's holdout matte
    (over the knob's file); it keys the cache (another edit than without it) and its upstream is part of the
    input signature (a changed roto makes the edited frames stale); disconnected, the node is as before."""
    import ned_fx_nuke
    from ned_fx.media import read_image

    node = ned_fx_nuke.create_node()
    assert node.node(ned_fx_nuke.HOLDOUT_BAKE)["disable"].value(), "baked only at Analyse"
    _, _, plain = ned_fx_nuke.build_request(node)
    assert ned_fx_nuke.holdout_of(node) is None
    roto = nk.nodes.Read(name="roto", file="/mattes/roto.%04d.exr")
    node.setInput(1, roto)
    nk._set_write_renderer(_holdout_renderer(nk))
    held = str(ned_fx_nuke.cache_root(node) / "holdout" / "hold.%04d.exr")
    request, _, pattern = ned_fx_nuke.build_request(node)
    assert request.params["holdout_matte"] == held and pattern != plain
    node["holdout_matte"].setValue("/somewhere/else.%04d.png")     # the connected input wins over the knob
    assert ned_fx_nuke.build_request(node)[0].params["holdout_matte"] == held
    node["holdout_matte"].setValue("")
    nk.frame(1001)
    node["analyse"].execute()
    _settle(nk, node)
    assert node["ned_ok"].value(), node["status"].value()
    assert any(m.startswith("baking the holdout matte") for m in nk._progress_tasks[0].messages)
    for f in range(1001, 1005):
        matte = read_image(Path(held.replace("%04d", f"{f:04d}")))
        assert matte.channels == ("A",) and matte.data_window == (0, 0, 255, 511) and matte.pixels.min() == 1.0
        assert _switch(nk, node, f) == 1
    rt = ned_fx_nuke._RUNTIME[node.fullName()]
    assert rt.handle.request.params["holdout_matte"] == held, "the daemon was asked with the baked matte"
    # the roto changes upstream: the edited frames were made with another matte and are no longer shown
    roto["file"].setValue("/mattes/roto_v2.%04d.exr")
    assert _switch(nk, node, 1001) == 0
    # a command-line render of a frame that is missing finds the baked matte and sends it with the frame's session
    roto["file"].setValue("/mattes/roto.%04d.exr")
    missing = Path(node["ned_cache"].value().replace("%04d", "1002"))
    missing.unlink()
    rt.handle = None
    out = nk.nodes.Write(file=str(Path(held).parent.parent / "comp.%04d.exr"))
    out.setInput(0, node)
    nk._set_write_renderer(lambda w, f: None)
    nk.execute(out, 1002, 1002)
    assert missing.is_file() and rt.handle.request.params["holdout_matte"] == held
    Path(held.replace("%04d", "1003")).unlink()                     # ... and fails a frame whose matte is gone
    Path(node["ned_cache"].value().replace("%04d", "1003")).unlink()
    with pytest.raises(RuntimeError, match="holdout matte was never baked"):
        nk.execute(out, 1003, 1003)
    node.setInput(1, None)
    request, _, pattern = ned_fx_nuke.build_request(node)
    assert pattern == plain and "holdout_matte" not in request.params


def test_a_holdout_input_keeps_the_plate_under_its_alpha(nk, real, monkeypatch):
    """With the real engine: the half of the frame the Holdout input's alpha holds comes back as the input's
    pixels, the other half is edited."""
    import ned_fx_nuke
    from ned_fx.media import read_image

    d, root = real
    monkeypatch.setenv("NED_FX_ENDPOINT", d.endpoint)
    monkeypatch.setenv("NED_FX_NUKE_CACHE", str(root / "cache_holdout"))
    nk.root()["last_frame"].setValue(1002)
    node = ned_fx_nuke.create_node()
    node["emotion"].setValue("happy")
    node.setInput(1, nk.nodes.Read(name="roto", file="/mattes/roto.%04d.exr"))
    nk._set_write_renderer(_holdout_renderer(nk, "d12.mp4"))
    nk.frame(1001)
    node["analyse"].execute()
    _settle(nk, node, timeout=180)
    assert node["ned_ok"].value(), node["status"].value()
    baked = ned_fx_nuke.cache_root(node) / "src"
    for f in (1001, 1002):
        edited = read_image(Path(node["ned_cache"].value().replace("%04d", f"{f:04d}"))).pixels[..., :3]
        source = np.zeros((512, 512, 3), np.float32)
        x0, y0, x1, y1 = BBOX_WINDOW
        source[y0:y1 + 1, x0:x1 + 1] = read_image(baked / f"src.{f}.exr").pixels[..., :3]
        edited_full = np.zeros_like(source)
        edited_full[y0:y1 + 1, x0:x1 + 1] = edited
        diff = np.abs(edited_full - source).max(axis=2)
        assert diff[:, :254].max() == 0, "the held half is the input's"
        assert diff[:, 258:].max() > 0.08, "the other half is edited"
