"""Issue 16, Nuke: the Emotion Director in real-host conditions, against the corrected stand-in (``[frame]`` is the
frame being evaluated while ``nuke.frame()`` stays the root's, TCL really runs in eval-string knobs, render
callbacks see the Write as ``nuke.thisNode()``, a Write renders what its inputs output — a Read's file, black, or
an error) and a real identity daemon: farm blades with their own cache and daemon, no daemon, no pyzmq, stale
input, TimeOffset/FrameHold, TCL from the daemon, Read paths with TCL, frame offsets and OCIO colourspaces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, footage
from daemons import ended, free_port
from test_nuke_bridge import NUKE_DIR, STAND_INS, _forget, _settle, _switch, nk, served  # noqa: F401 (fixtures)

from ned_fx.hosts import images

FRAMES = range(1001, 1005)


def _plate(folder: Path, offset: int = 0) -> Path:
    """An EXR plate 1001-1004 from real footage (``offset`` shifts the pixels: a re-delivered plate)."""
    from ned_fx.media import open_media

    folder.mkdir(parents=True, exist_ok=True)
    with open_media(footage("d12.mp4"), "0-3") as src:
        for i, fr in enumerate(src):
            rgb = np.roll(fr.pixels, offset, axis=1).astype(np.float32) / 255.0
            images.write_exr(folder / f"plate.{1001 + i:04d}.exr", rgb, ("R", "G", "B"))
    return folder / "plate.%04d.exr"


def _comp(nk, root: Path, source: str = "upstream Read file"):
    """Read (the plate) -> Emotion Director -> WriteComp, plus WriteOther fed by the Read alone."""
    import ned_fx_nuke

    plate = _plate(root / "plates")
    read = nk.nodes.Read(file=str(plate))
    node = ned_fx_nuke.create_node()
    node.setInput(0, read)
    nk._user_set(node["source"], source)
    comp = nk.nodes.Write(name="WriteComp", file=str(root / "comp.%04d.exr"), file_type="exr",
                          metadata="default metadata and exr/*")
    comp.setInput(0, node)
    other = nk.nodes.Write(name="WriteOther", file=str(root / "other.%04d.exr"), file_type="exr")
    other.setInput(0, read)
    return read, node, comp, other


def _recording(nk):
    """A Write renderer that records what each rendered frame is made of (rgb source and metadata)."""
    out: dict = {}

    def render(write, frame):
        out[(write.name(), frame)] = (write.input(0)._image_at(frame), write.input(0).metadata(time=frame))

    nk._set_write_renderer(render)
    return out


def _as_blade(nk, monkeypatch, cache: Path, endpoint: str | None = None) -> None:
    """The script opened by ``nuke -x`` on a render blade: no GUI, its own cache root and daemon, a fresh
    process (no session in memory)."""
    import ned_fx_nuke

    _forget(ned_fx_nuke)
    monkeypatch.setitem(nk.env, "gui", False)
    monkeypatch.setenv("NED_FX_NUKE_CACHE", str(cache))
    if endpoint is not None:
        monkeypatch.setenv("NED_FX_ENDPOINT", endpoint)


@pytest.fixture
def gui(nk, monkeypatch):
    monkeypatch.setitem(nk.env, "gui", True)
    return nk


# ---- farm renders: never black, never the plate unedited without failing ---------------------------------------

def test_a_blade_renders_the_frames_itself_and_the_write_gets_them(gui, served, monkeypatch, request):
    nk = gui
    _, root = served
    work = root / request.node.name
    monkeypatch.setenv("NED_FX_NUKE_CACHE", str(work / "artist_cache"))
    read, node, comp, other = _comp(nk, work)
    node["analyse"].execute()
    _settle(nk, node)
    assert all(_switch(nk, node, f) == 1 for f in FRAMES), node["status"].value()
    artist = node["ned_cache"].value()
    # the blade cannot see the artist's cache (the default temp folder, another user): it renders the frames
    shutil.move(str(work / "artist_cache"), str(work / "artist_cache_elsewhere"))
    _as_blade(nk, monkeypatch, work / "blade_cache")
    rendered = _recording(nk)
    nk.execute(comp, 1001, 1004)
    pattern = node["ned_cache"].value()
    assert pattern != artist and pattern.startswith(str(work / "blade_cache"))
    assert node.node("ned_edit")["file"].value() == pattern, "the inner Read moves with the cache"
    for f in FRAMES:
        rgb, metadata = rendered[("WriteComp", f)]
        assert rgb == f"file:{pattern.replace('%04d', f'{f:04d}')}", f"frame {f}: {rgb}"
        assert json.loads(metadata["exr/ned_fx/provenance"])["source_frame"] == f
    nk.execute(other, 1001, 1002)
    assert rendered[("WriteOther", 1001)][0] == f"file:{read['file'].value().replace('%04d', '1001')}"


def test_a_blade_without_a_daemon_fails_the_frame_instead_of_writing_the_plate(gui, served, monkeypatch, request):
    nk = gui
    _, root = served
    work = root / request.node.name
    monkeypatch.setenv("NED_FX_NUKE_CACHE", str(work / "artist_cache"))
    read, node, comp, other = _comp(nk, work)
    node["strict"].setValue(False)                  # an old script saved with strict off
    node["analyse"].execute()
    _settle(nk, node)
    shutil.move(str(work / "artist_cache"), str(work / "artist_cache_elsewhere"))
    _as_blade(nk, monkeypatch, work / "blade_cache", endpoint=f"tcp://127.0.0.1:{free_port()}")
    rendered = _recording(nk)
    with pytest.raises(RuntimeError, match="no ned-fx daemon answered"):
        nk.execute(comp, 1001, 1001)
    assert ("WriteComp", 1001) not in rendered, "nothing written for the frame"
    nk.execute(other, 1001, 1004)                   # a Write that does not need the node renders as usual
    assert len([k for k in rendered if k[0] == "WriteOther"]) == 4
    # a shared, declared cache (the artist's NED_FX_NUKE_CACHE on shared storage): no daemon needed
    shutil.move(str(work / "artist_cache_elsewhere"), str(work / "artist_cache"))
    nk.execute(comp, 1001, 1004)
    assert all(rendered[("WriteComp", f)][0].startswith(f"file:{work / 'artist_cache'}") for f in FRAMES)


def test_a_blade_with_no_daemon_to_reach_starts_its_own(gui, served, monkeypatch, request):
    import ned_fx_nuke

    nk = gui
    _, root = served
    work = root / request.node.name
    monkeypatch.setenv("NED_FX_NUKE_CACHE", str(work / "artist_cache"))
    read, node, comp, other = _comp(nk, work)
    _as_blade(nk, monkeypatch, work / "blade_cache", endpoint=f"tcp://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NED_FX_PYTHON", sys.executable)          # the blade's ned_fx install
    monkeypatch.setenv("NED_FX_NUKE_DAEMON_ARGS", f"--engine identity --cache {work / 'daemon_cache'}")
    rendered = _recording(nk)
    try:
        nk.execute(comp, 1001, 1004)
        local = ned_fx_nuke._LOCAL["daemon"]
        assert local.running and local.endpoint.startswith("tcp://127.0.0.1:")
        pattern = node["ned_cache"].value()
        assert all(rendered[("WriteComp", f)][0] == f"file:{pattern.replace('%04d', f'{f:04d}')}" for f in FRAMES)
    finally:
        ned_fx_nuke.stop_local_daemon()
    assert not local.running


def test_a_blade_cannot_bake_and_says_where_the_bake_must_be(gui, served, monkeypatch, request):
    nk = gui
    _, root = served
    work = root / request.node.name
    monkeypatch.setenv("NED_FX_NUKE_CACHE", str(work / "artist_cache"))
    read, node, comp, other = _comp(nk, work, source="bake input")
    nk._set_write_renderer(_bake_from(nk, read))
    node["analyse"].execute()
    _settle(nk, node)
    assert _switch(nk, node, 1002) == 1, node["status"].value()
    shutil.move(str(work / "artist_cache"), str(work / "artist_cache_elsewhere"))
    _as_blade(nk, monkeypatch, work / "blade_cache")
    with pytest.raises(RuntimeError, match="never baked where this machine can see it.*NED_FX_NUKE_CACHE"):
        nk.execute(comp, 1002, 1002)
    # the bake in a shared cache: the blade edits a missing frame from it, into the shared cache
    shutil.move(str(work / "artist_cache_elsewhere"), str(work / "artist_cache"))
    shared = node["ned_cache"].value()
    assert shared.startswith(str(work / "artist_cache")), "a failed frame does not re-point the node"
    missing = Path(shared.replace("%04d", "1002"))
    missing.unlink()
    rendered = _recording(nk)
    nk.execute(comp, 1002, 1002)
    assert missing.is_file() and rendered[("WriteComp", 1002)][0] == f"file:{missing}"


def _bake_from(nk, read):
    """What Nuke's Write does when the bridge executes ``ned_bake``: the plate frame as an RGBA EXR."""
    from ned_fx.media import read_image

    def render(write, frame):
        path = Path(write["file"].value().replace("%04d", f"{frame:04d}"))
        if write.name() != "ned_bake":
            return
        src = read_image(Path(read["file"].value().replace("%04d", f"{frame:04d}"))).pixels
        rgba = np.concatenate([src, np.ones(src.shape[:2] + (1,), np.float32)], -1)
        images.write_exr(path, rgba, ("R", "G", "B", "A"))

    return render


# ---- the endpoint knob -------------------------------------------------------------------------------------------

def test_an_empty_endpoint_knob_means_the_environment_then_the_default(nk, served, monkeypatch):
    import ned_fx_nuke
    from ned_fx.hosts.link import DEFAULT_ENDPOINT

    d, _ = served
    node = ned_fx_nuke.create_node()
    assert node["endpoint"].value() == "", "the knob does not pin the artist's endpoint into the script"
    assert "daemon ready" in node["status"].value()
    assert ned_fx_nuke.link_for(node["endpoint"].value()).config.endpoint == d.endpoint
    monkeypatch.setenv("NED_FX_ENDPOINT", "tcp://10.1.2.3:5557")         # a blade's own daemon
    assert ned_fx_nuke.link_for(node["endpoint"].value()).config.endpoint == "tcp://10.1.2.3:5557"
    monkeypatch.delenv("NED_FX_ENDPOINT")
    assert ned_fx_nuke.link_for(node["endpoint"].value()).config.endpoint == DEFAULT_ENDPOINT
    monkeypatch.setenv("NED_FX_ENDPOINT", d.endpoint)
    assert ned_fx_nuke.create_node(endpoint="tcp://10.9.9.9:1")["endpoint"].value() == "tcp://10.9.9.9:1"


# ---- a blade without pyzmq ------------------------------------------------------------------------------------------

BLADE_WITHOUT_PYZMQ = r"""
import runpy, sys
sys.modules["zmq"] = None                      # this Nuke's Python has no pyzmq: "import zmq" fails
sys.path[:0] = [{stand_ins!r}, {nuke_dir!r}, {repo!r}]
import nuke
nuke._reset()
nuke.env["gui"] = False
runpy.run_path({init!r})
nuke.root()["first_frame"].setValue(1)
nuke.root()["last_frame"].setValue(2)
import ned_fx_nuke
node = ned_fx_nuke.create_node()
read = nuke.nodes.Read(file={plate!r})
node.setInput(0, read)
other = nuke.nodes.Write(name="WriteOther", file="/tmp/other.%04d.exr")
other.setInput(0, read)
comp = nuke.nodes.Write(name="WriteComp", file="/tmp/comp.%04d.exr")
comp.setInput(0, node)
nuke._set_write_renderer(lambda w, f: print("wrote", w.name(), f))
nuke.execute(other, 1, 2)
try:
    nuke.execute(comp, 1, 1)
except RuntimeError as exc:
    print("comp failed:", exc)
print("status:", node["status"].value())
"""


def test_a_blade_without_pyzmq_fails_only_the_writes_that_need_the_node(tmp_path):
    script = BLADE_WITHOUT_PYZMQ.format(stand_ins=str(STAND_INS), nuke_dir=str(NUKE_DIR), repo=str(REPO),
                                        init=str(NUKE_DIR / "init.py"), plate=str(tmp_path / "p.%04d.exr"))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "NED_FX_NUKE_CACHE": str(tmp_path / "cache")})
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "wrote WriteOther 1" in out and "wrote WriteOther 2" in out, "unrelated Writes are not broken"
    assert "comp failed:" in out and "pyzmq" in out.split("comp failed:")[1] and "wrote WriteComp" not in out
    assert "status:" in out and "zmq" in out.split("status:")[1], "the node says what to install"


# ---- the frame being evaluated, and the input's content -----------------------------------------------------------

def test_the_switch_shows_the_frame_being_evaluated_under_timeoffset_and_framehold(nk, served):
    import ned_fx_nuke

    node = ned_fx_nuke.create_node()
    node["analyse"].execute()
    _settle(nk, node)
    pattern = node["ned_cache"].value()
    nk.frame(1)                                     # the artist's viewer is elsewhere: root frame 1
    shift = nk.nodes.TimeOffset(time_offset=10)
    shift.setInput(0, node)
    hold = nk.nodes.FrameHold(first_frame=1002)
    hold.setInput(0, node)
    assert shift._image_at(1013) == f"file:{pattern.replace('%04d', '1003')}"
    assert hold._image_at(1) == f"file:{pattern.replace('%04d', '1002')}"
    # a render through the TimeOffset edits the frames the node is asked for, not the Write's frame numbers
    Path(pattern.replace("%04d", "1004")).unlink()
    write = nk.nodes.Write(file=str(Path(pattern).parent / "shifted.%04d.exr"))
    write.setInput(0, shift)
    rendered = _recording(nk)
    nk.execute(write, 1014, 1014)
    assert rendered[(write.name(), 1014)][0] == f"file:{pattern.replace('%04d', '1004')}"


def test_a_node_inside_a_group_is_edited_for_the_writes_below_the_group(gui, served, monkeypatch, request):
    nk = gui
    _, root = served
    work = root / request.node.name
    monkeypatch.setenv("NED_FX_NUKE_CACHE", str(work / "cache"))
    read, node, comp, other = _comp(nk, work)
    node["analyse"].execute()
    _settle(nk, node)
    pattern = node["ned_cache"].value()
    # a comp Group whose insides hold a TimeOffset reading the Emotion Director through the group's Input
    group = nk.nodes.Group(name="CompGroup")
    group.setInput(0, node)
    group.begin()
    inner_input = nk.nodes.Input(name="Input1")
    shift = nk.nodes.TimeOffset(time_offset=1)
    shift.setInput(0, inner_input)
    nk.nodes.Output(name="Output1").setInput(0, shift)
    group.end()
    comp.setInput(0, group)
    Path(pattern.replace("%04d", "1003")).unlink()
    rendered = _recording(nk)
    nk.execute(comp, 1004, 1004)                    # pulls the node's frame 1003 through the group
    assert rendered[("WriteComp", 1004)][0] == f"file:{pattern.replace('%04d', '1003')}"


def test_an_upstream_change_is_seen_without_a_knob_change(gui, served, monkeypatch, request):
    nk = gui
    _, root = served
    work = root / request.node.name
    monkeypatch.setenv("NED_FX_NUKE_CACHE", str(work / "cache"))
    # bake mode: a Grade between the plate and the node is changed (no knobChanged reaches the node)
    plate = _plate(work / "plates")
    read = nk.nodes.Read(file=str(plate))
    grade = nk.nodes.Grade()
    grade.setInput(0, read)
    node = ned_fx_nuke_node(nk)
    node.setInput(0, grade)
    nk._set_write_renderer(_bake_from(nk, read))
    node["analyse"].execute()
    _settle(nk, node)
    assert all(_switch(nk, node, f) == 1 for f in FRAMES), node["status"].value()
    grade["white"].setValue(2.0)
    assert all(_switch(nk, node, f) == 0 for f in FRAMES), "the edit was made from another input"
    comp = nk.nodes.Write(file=str(work / "comp.%04d.exr"))
    comp.setInput(0, node)
    with pytest.raises(RuntimeError, match="input changed since it was baked"):
        nk.execute(comp, 1002, 1002)
    grade["white"].setValue(0.0)
    node["check"].execute()                         # the node went red; Check daemon recovers it
    nk._pump(5, until=lambda: node["ned_ok"].value())
    assert _switch(nk, node, 1002) == 1, "back to the input it was made from"
    # upstream Read mode: the plate is re-delivered under the same name (new pixels)
    node.setInput(0, read)
    nk._user_set(node["source"], "upstream Read file")
    node["analyse"].execute()
    _settle(nk, node)
    assert _switch(nk, node, 1002) == 1, node["status"].value()
    edited = Path(node["ned_cache"].value().replace("%04d", "1002"))
    before = edited.read_bytes()
    _plate(work / "plates", offset=5)
    assert _switch(nk, node, 1002) == 0
    rendered = _recording(nk)
    nk.execute(comp, 1002, 1002)                    # the render edits the new plate
    assert _switch(nk, node, 1002) == 1 and edited.read_bytes() != before
    assert rendered[(comp.name(), 1002)][0] == f"file:{edited}"


def ned_fx_nuke_node(nk):
    import ned_fx_nuke

    return ned_fx_nuke.create_node()


# ---- TCL ---------------------------------------------------------------------------------------------------------

def test_nothing_from_the_daemon_is_tcl_evaluated(nk, served, monkeypatch, tmp_path):
    import ned_fx_nuke
    from ned_fx.hosts.link import DaemonLink

    marker = tmp_path / "ran"
    payload = f"[python __import__('pathlib').Path(r'{marker}').touch()]"
    real = DaemonLink.describe

    def describe(self):
        reply = real(self)
        for p in reply["parameters"]:
            if p["name"] == "reference":
                p["default"] = payload
        return reply

    monkeypatch.setattr(DaemonLink, "describe", describe)
    node = ned_fx_nuke.create_node()
    assert any("reference" in w and "TCL" in w for w in nk._warnings)
    assert node["reference"].value() == ""
    ned_fx_nuke.build_request(node)                 # reads the File knob (Nuke evaluates its TCL)
    ned_fx_nuke.show_status(node, False, f"the daemon said: {payload} $env(HOME) \\x")
    node["label"].evaluate()                        # the DAG draws the label through TCL
    assert not marker.exists(), "text from the daemon ran as TCL"
    # the stand-in does run TCL: the test would see it
    node["reference"].setValue(payload)
    node["reference"].evaluate()
    assert marker.exists()


# ---- Read paths as Nuke evaluates them -----------------------------------------------------------------------------

def test_upstream_read_paths_are_evaluated_as_nuke_does(nk, served, monkeypatch, tmp_path):
    import ned_fx_nuke
    from ned_fx.errors import InvalidParameterError

    show = tmp_path / "show"
    _plate(show / "plates")
    monkeypatch.setenv("NED_TEST_SHOW", str(show))
    read = nk.nodes.Read(file="[getenv NED_TEST_SHOW]/plates/plate.####.exr", colorspace="ACES - ACEScg")
    nk.root()["workingSpaceLUT"].setValue("ACES - ACEScg")
    node = ned_fx_nuke.create_node()
    node.setInput(0, read)
    nk._user_set(node["source"], "upstream Read file")
    assert ned_fx_nuke.source_of(node) == (str(show / "plates" / "plate.%04d.exr"), False)
    read["colorspace"].setValue("default (ACES - ACEScg)")
    assert ned_fx_nuke.source_of(node)[0] == str(show / "plates" / "plate.%04d.exr")
    read["colorspace"].setValue("Output - sRGB")
    with pytest.raises(InvalidParameterError, match="converts colour .Output - sRGB"):
        ned_fx_nuke.source_of(node)
    read["colorspace"].setValue("ACES - ACEScg")
    read["frame_mode"].setValue("expression")
    read["frame"].setValue("frame*2")               # not a constant shift: the edit could not line up
    with pytest.raises(InvalidParameterError, match="constant shift"):
        ned_fx_nuke.source_of(node)


def _shifted_read(nk, served, monkeypatch, request):
    """Frames 1-4 of a script whose Read of plate.1001-1004.exr is shifted by 1000 (node frame 1 reads 1001), into
    an Emotion Director reading it in place ('upstream Read file'): (work folder, plate pattern, read, node)."""
    import ned_fx_nuke

    _, root = served
    work = root / request.node.name
    monkeypatch.setenv("NED_FX_NUKE_CACHE", str(work / "cache"))
    nk.root()["first_frame"].setValue(1)
    nk.root()["last_frame"].setValue(4)
    plate = _plate(work / "plates")
    read = nk.nodes.Read(file=str(plate), frame_mode="offset", frame="-1000")
    node = ned_fx_nuke.create_node()
    node.setInput(0, read)
    nk._user_set(node["source"], "upstream Read file")
    return work, plate, read, node


def test_a_read_that_shifts_frame_numbers_is_edited_on_the_files_it_reads(gui, served, monkeypatch, request):
    import ned_fx_nuke

    nk = gui
    work, plate, read, node = _shifted_read(nk, served, monkeypatch, request)
    nk._user_set(node["intensity"], 0.2, time=1)
    nk._user_set(node["intensity"], 1.2, time=4)
    request, _, _ = ned_fx_nuke.build_request(node)
    assert (request.path, request.frames) == (str(plate), "1001-1004")
    start_at = nk.nodes.Read(file=str(plate), first=1001, last=1004, frame_mode="start at", frame="1")
    expression = nk.nodes.Read(file=str(plate), frame_mode="expression", frame="frame+1000")
    assert ned_fx_nuke.read_sequence(start_at, 1, 4) == ned_fx_nuke.read_sequence(expression, 1, 4) == \
        (str(plate), 1000)
    assert request.params["keys"].startswith("1001:") and request.params["keys"].split(",")[-1].startswith("1004:")
    node["analyse"].execute()
    _settle(nk, node)
    pattern = node["ned_cache"].value()
    for t in range(1, 5):
        assert node._image_at(t) == f"file:{pattern.replace('%04d', f'{1000 + t:04d}')}", node["status"].value()
        assert json.loads(node.metadata(time=t)["exr/ned_fx/provenance"])["source_frame"] == 1000 + t
    _plate(work / "plates", offset=3)               # re-delivered: the files the shifted Read reads changed
    assert all(_switch(nk, node, t) == 0 for t in range(1, 5))
    Path(pattern.replace("%04d", "1003")).unlink()
    comp = nk.nodes.Write(file=str(work / "comp.%04d.exr"))
    comp.setInput(0, node)
    rendered = _recording(nk)
    nk.execute(comp, 3, 3)
    assert rendered[(comp.name(), 3)][0] == f"file:{pattern.replace('%04d', '1003')}"


def test_a_holdout_beside_a_read_that_shifts_frame_numbers_is_baked_at_the_sources_numbers(gui, served, monkeypatch,
                                                                                           request):
    """Source 'upstream Read file' (nothing of the source is baked) with a Read shifted by 1000 frames and a Holdout
    input: the matte is still baked, at the numbers the daemon reads the source at (node frame 1 -> 1001), and
    re-baked only where it changed."""
    import ned_fx_nuke

    nk = gui
    work, plate, read, node = _shifted_read(nk, served, monkeypatch, request)
    node.setInput(1, nk.nodes.Read(name="roto", file=str(work / "roto.%04d.exr")))
    baked = []

    def render(write, frame):
        assert write.name() == ned_fx_nuke.HOLDOUT_BAKE, "the source is read where it is, not baked"
        baked.append(frame)
        alpha = np.zeros((512, 512, 1), np.float32)
        alpha[:, : 100 * frame] = 1.0                  # another matte per frame
        images.write_exr(Path(write["file"].value().replace("%04d", f"{frame:04d}")), alpha, ("A",))

    nk._set_write_renderer(render)
    node["analyse"].execute()
    _settle(nk, node)
    assert node["ned_ok"].value(), node["status"].value()
    held = ned_fx_nuke.holdout_of(node)
    assert baked == [1, 2, 3, 4] and ned_fx_nuke._RUNTIME[node.fullName()].handle.request.params["holdout_matte"] == held
    from ned_fx.media import read_image

    for t in range(1, 5):
        matte = read_image(Path(held.replace("%04d", f"{1000 + t:04d}"))).pixels[..., 0]
        assert matte[:, : 100 * t].min() == 1.0 and matte[:, 100 * t:].max() == 0.0, "frame t's matte at 1000 + t"
    stamps = {p.name: p.stat().st_mtime_ns for p in Path(held).parent.glob("hold.*.exr")}
    node["analyse"].execute()
    _settle(nk, node)
    assert {p.name: p.stat().st_mtime_ns for p in Path(held).parent.glob("hold.*.exr")} == stamps, "unchanged: kept"


_HOST = """
import sys, time
from ned_fx.hosts import local_daemon

d = local_daemon.start(sys.executable, [sys.argv[1]], ["--engine", "identity", "--no-audit-log"], log_dir=sys.argv[1])
print(d.proc.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="watches the daemon through /proc")
def test_a_blade_killed_by_its_farm_manager_takes_its_daemon_down(tmp_path):
    """A farm manager SIGKILLs a blade (no atexit runs): the daemon the blade started stops by itself (it watches
    the blade's pid) instead of holding the blade's memory and GPU."""
    import signal

    host = subprocess.Popen([sys.executable, "-c", _HOST, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        daemon = int(host.stdout.readline())
        os.kill(daemon, 0)
        host.send_signal(signal.SIGKILL)
        host.wait(10)
    finally:
        if host.poll() is None:
            host.kill()
    assert ended(daemon, within=20), "the blade's daemon outlived it"
    log = next(tmp_path.glob("ned_fx_local_daemon-*.log")).read_text()
    assert "that started this daemon ended" in log, log[-2000:]
