"""The farm, executed by the farm engines' own runtimes on real footage (issue 17).

* Open Job Description: ``ned-fx farm submit --to openjd`` writes a template that ``openjd check`` accepts and
  ``openjd run`` (openjd-cli, the runtime Deadline Cloud's workers use) runs whole: the frames are bit-exact with one
  ``ned-fx edit`` of the shot, carry the provenance, and every chunk writes its audit line;
* OpenCue: the outline runs on pyoutline's own local backend (through pycuerun, pyoutline's default), and the
  serialised spec without pycuerun runs layer by layer with Cuebot's chunk tokens substituted;
* Deadline: the chunk tokens expand to the frames each chunk must render;
* chunks are retry-safe: killed midway and rerun, racing on one frame, a missing analysis;
* a failed chunk names its shot, frames and reason in the engine's log, and ``ned-fx batch --from-farm`` reads a
  farm run back into the batch report.

The reference is one ``ned-fx edit`` of the whole shot that writes (and renders from) its own analysis file, as a
farm's analysis task does. (An edit without ``--analysis`` renders from the in-memory analysis, which differs from
the stored one by one code value at a few pixels per frame: see the issue note.)
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree as Et

import numpy as np
import pytest

from ned_fx.batch import read_from_file
from ned_fx.farm import FarmConfig, build_jobs, deadline, opencue
from ned_fx.media import open_media, sequence_path
from ned_fx.media.frames import FrameRange
from ned_fx.media.readers import read_provenance
from ned_fx.provenance import file_sha256

from conftest import footage

OPENJD = Path(sys.executable).parent / "openjd"
FRAMES = (5, 10)                     # sh010: six frames of d3.mp4, in chunks of 3
CONSENT = "release 114"


@pytest.fixture(autouse=True)
def _openjd_cli():
    """openjd-cli comes with the test extra; without it the Open Job Description checks cannot run (CI: fail)."""
    if not OPENJD.is_file():
        message = f"openjd-cli is not installed ({OPENJD}): pip install -e '.[test]' (or pip install openjd-cli)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "NED_FX_THREADS": "1"}


def write_shots(folder: Path, movie: bool = False) -> Path:
    d3 = footage("d3.mp4")
    text = (f"version: 1\ndefaults: {{consent: {CONSENT}}}\nshots:\n"
            f"  - {{name: sh010, input: {d3}, output: out/sh010.####.png, frames: {FRAMES[0]}-{FRAMES[1]}, "
            f"emotion: happy, intensity: 0.8}}\n")
    if movie:
        text += f"  - {{name: sh020, input: {d3}, output: out/sh020.mov, frames: 0-2, emotion: sad}}\n"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shots.yaml").write_text(text)
    return folder / "shots.yaml"


@pytest.fixture
def reference(tmp_path_factory):
    """One ``ned-fx edit`` of sh010 (its own analysis file): frame number -> pixels. Run as its own process, like the
    farm's tasks, just before them: both run the code on disk at the time (a working tree others edit included)."""
    from ned_fx.farm.jobs import default_executable

    out = tmp_path_factory.mktemp("reference")
    result = subprocess.run([*default_executable(), "edit", str(footage("d3.mp4")), "-o", str(out / "sh010.####.png"),
                             f"--frames={FRAMES[0]}-{FRAMES[1]}", "--emotion=happy", "--intensity=0.8",
                             f"--consent={CONSENT}", f"--analysis={out / 'own.npz'}", "-q", "--no-audit-log"],
                            capture_output=True, text=True, env=env(), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return frames_of(out / "sh010.####.png")


def frames_of(pattern) -> dict:
    with open_media(str(pattern)) as src:
        return {f.number: f.pixels.copy() for f in src}


def assert_bit_exact(pattern, reference) -> None:
    got = frames_of(pattern)
    assert sorted(got) == sorted(reference)
    for n, px in reference.items():
        assert np.array_equal(got[n], px), f"frame {n} differs from one ned-fx edit of the shot"


def audit_lines(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.is_file() else []


# ---- Open Job Description ---------------------------------------------------------------------------------------

def test_openjd_template_runs_whole_with_openjd_run(tmp_path, reference):
    import yaml

    from ned_fx.cli import main

    shots = write_shots(tmp_path, movie=True)
    audit = tmp_path / "logs" / "audit.jsonl"
    template = tmp_path / "bundle" / "template.yaml"
    assert main(["farm", "submit", str(shots), "--to", "openjd", "-o", str(template), "--chunk", "3", "--gpu", "0",
                 "--audit-log", str(audit)]) == 0
    check = subprocess.run([str(OPENJD), "check", str(template)], capture_output=True, text=True)
    assert check.returncode == 0 and "passes validation" in check.stdout, check.stdout + check.stderr
    doc = yaml.safe_load(template.read_text())
    assert doc["specificationVersion"] == "jobtemplate-2023-09"
    assert [p["name"] for p in doc["parameterDefinitions"]] == ["ShotList", "OutputRoot", "Consent"]
    assert doc["parameterDefinitions"][2]["default"] == CONSENT
    steps = {s["name"]: s for s in doc["steps"]}
    assert list(steps) == ["sh010 analysis", "sh010 render", "sh020 analysis", "sh020 render", "sh020 assemble",
                           "report"]
    space = steps["sh010 render"]["parameterSpace"]
    assert [d["range"] for d in space["taskParameterDefinitions"]] == [[5, 8], [7, 10]]
    assert space["combination"] == "(First, Last)"
    assert steps["sh010 render"]["dependencies"] == [{"dependsOn": "sh010 analysis"}]
    assert steps["sh020 assemble"]["dependencies"] == [{"dependsOn": "sh020 render"}]
    assert steps["report"]["dependencies"] == [{"dependsOn": "sh010 render"}, {"dependsOn": "sh020 assemble"}]

    # the outputs go under the OutputRoot given at submission, not the shot list's own
    root = tmp_path / "farm_out"
    run = subprocess.run([str(OPENJD), "run", str(template), "-p", f"ShotList={shots}", "-p", f"OutputRoot={root}"],
                         capture_output=True, text=True, env=env(), timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert not (tmp_path / "out").exists()
    assert_bit_exact(root / "sh010.####.png", reference)
    for n in range(FRAMES[0], FRAMES[1] + 1):
        rec = read_provenance(sequence_path(root / "sh010.####.png", n))
        assert (rec.edited, rec.emotion, rec.consent, rec.source_frame) == (True, "happy", CONSENT, n)
    with open_media(str(root / "sh020.mov")) as mov:
        assert len(mov) == 3
    rec = read_provenance(root / "sh020.mov")
    assert (rec.kind, rec.edited, rec.consent) == ("video", True, CONSENT)
    assert not (root / "sh020.mov.frames").exists()
    # one audit line per render chunk, with the consent and every frame it wrote (their SHA-256)
    edits = [l for l in audit_lines(audit) if l["event"] == "edit"]
    assert sorted(l["shot"]["frames"] for l in edits) == ["0-2", "5-7", "8-10"]
    assert all(l["consent"] == CONSENT and l["status"] == "done" for l in edits)
    written = {o["path"]: o["sha256"] for l in edits for o in l["outputs"]}
    for n in range(FRAMES[0], FRAMES[1] + 1):
        path = sequence_path(root / "sh010.####.png", n)
        assert written[str(path)] == file_sha256(path)
    # the report step read the farm run back into a batch report
    report = json.loads((root / "shots_report.json").read_text())
    assert report["summary"]["done"] == 2 and report["daemon"]["farm"] is True
    assert [(s["name"], s["status"], s["edited"]["count"]) for s in report["shots"]] == [
        ("sh010", "done", 6), ("sh020", "done", 3)]


def test_a_failed_chunk_names_its_shot_frames_and_reason_in_the_openjd_log(tmp_path):
    from ned_fx.cli import main

    shots = write_shots(tmp_path)
    template = tmp_path / "job.yaml"
    assert main(["farm", "submit", str(shots), "--to", "openjd", "-o", str(template), "--chunk", "3", "--gpu",
                 "0"]) == 0
    # the render step alone, without its analysis: each chunk fails at once and says why; nothing is analysed
    run = subprocess.run([str(OPENJD), "run", str(template), "--step", "sh010 render", "--no-run-dependencies",
                          "-p", f"ShotList={shots}", "-p", f"OutputRoot={tmp_path / 'out'}"],
                         capture_output=True, text=True, env=env(), timeout=600)
    log = run.stdout + run.stderr
    assert run.returncode != 0
    assert "ned-fx farm: shot sh010 render frames 5-7 failed (exit 10): the shot's analysis" in log, log[-3000:]
    assert "is missing: the analysis task runs first" in log
    assert not (tmp_path / "out" / "sh010.analysis.npz").exists()
    assert not list((tmp_path / "out").glob("sh010.*.png"))


def test_openjd_consent_parameters_per_shot_and_none(tmp_path):
    import yaml

    from ned_fx.farm import openjd

    d3 = footage("d3.mp4")
    (tmp_path / "s.yaml").write_text(
        f"shots:\n  - {{name: sh010, input: {d3}, output: out/a.####.png, frames: 0-3, consent: REL-1}}\n"
        f"  - {{name: sh-020, input: {d3}, output: out/b.####.png, frames: 0-3, consent: REL-2}}\n"
        f"  - {{name: sh030, input: {d3}, output: out/c.####.png, frames: 0-3}}\n")
    jobs = build_jobs(read_from_file(tmp_path / "s.yaml"), FarmConfig(chunk=2, executable=("/farm/ned-fx",)))
    path = openjd.write_template(jobs, tmp_path / "s.yaml", tmp_path / "template.yaml")
    check = subprocess.run([str(OPENJD), "check", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    doc = yaml.safe_load(path.read_text())
    params = {p["name"]: p for p in doc["parameterDefinitions"]}
    # the shots' references differ: one parameter per shot, defaulting to its own (empty: none); the shot list lies
    # in the template's folder, so its default is relative to it (OpenJD's rule); the outputs' root too
    assert [(n, params[n]["default"]) for n in ("Consent_sh010", "Consent_sh_020", "Consent_sh030")] == [
        ("Consent_sh010", "REL-1"), ("Consent_sh_020", "REL-2"), ("Consent_sh030", "")]
    assert (params["ShotList"]["default"], params["OutputRoot"]["default"]) == ("s.yaml", "out")
    steps = {s["name"]: s["script"]["actions"]["onRun"]["args"] for s in doc["steps"]}
    assert "--consent={{Param.Consent_sh_020}}" in steps["sh-020 render"]
    assert steps["sh030 analysis"][-2:] == ["--consent={{Param.Consent_sh030}}", "-q"]
    assert "-o" in steps["sh010 render"] and "{{Param.OutputRoot}}/a.####.png" in steps["sh010 render"]


# ---- OpenCue ----------------------------------------------------------------------------------------------------

LOCAL_WRAP = """#!/bin/sh
# pyoutline's local_wrap_frame less SPI's studio set-up: DIR SHOW SHOT COMMAND...
dir=$1; shift 3
[ -d "$dir" ] && cd "$dir"
eval "$@"
"""


def test_opencue_outline_runs_on_pyoutlines_local_backend(tmp_path, reference, monkeypatch):
    """pyoutline's own local backend (``outline.backend.local``) dispatches every layer frame through pycuerun, as a
    Cuebot node does with pyoutline's default wrapper. Two things of SPI's studio set-up are replaced, nothing
    else: the ``local_wrap_frame`` wrapper (tcsh sourcing ``/usr/local/stdenv/.cshrc`` and running ``setshot``, which
    exist only at SPI) by the same steps in ``/bin/sh``, and the empty versions repository pycuerun is told of
    (``-r`` with no value) by an empty folder."""
    pytest.importorskip("outline.backend.local")
    import outline
    import outline.versions.main as versions
    from outline.cuerun import OutlineLauncher

    shots = write_shots(tmp_path, movie=True)
    jobs = build_jobs(read_from_file(shots), FarmConfig(chunk=3, gpus=0, audit_log=str(tmp_path / "audit.jsonl")))
    wrappers = tmp_path / "wrappers"
    wrappers.mkdir()
    (wrappers / "local_wrap_frame").write_text(LOCAL_WRAP)
    (wrappers / "local_wrap_frame").chmod(0o755)
    (tmp_path / "repos").mkdir()
    for key, value in (("wrapper_dir", wrappers), ("session_dir", tmp_path / "sessions"), ("user_dir", tmp_path)):
        monkeypatch.setattr(outline.config, "get", _config_get(outline.config.get, key, str(value)), raising=False)
    monkeypatch.setattr(versions.Settings, "repos_path", str(tmp_path / "repos"), raising=False)
    for key, value in env().items():
        monkeypatch.setenv(key, value)
    bin_dir = tmp_path / "bin"                       # pycuerun starts with `#!/usr/bin/env python`: this python
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    (bin_dir / "python").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for job in jobs:
        OutlineLauncher(opencue.to_outline(job), backend="local", show=job.show, shot=job.shot,
                        user=job.user).launch()
    assert_bit_exact(tmp_path / "out" / "sh010.####.png", reference)
    # pycuerun ran the render command once per frame; only each chunk's first frame rendered it
    edits = [l for l in audit_lines(tmp_path / "audit.jsonl") if l["event"] == "edit"]
    assert sorted(l["shot"]["frames"] for l in edits) == ["0-2", "5-7", "8-10"]
    # the local dispatcher orders work by frame, not by dependency: the movie's assemble runs as the shot's last
    # frame, so it comes after every render chunk
    with open_media(str(tmp_path / "out" / "sh020.mov")) as mov:
        assert len(mov) == 3
    assert read_provenance(tmp_path / "out" / "sh020.mov").edited


def test_opencue_spec_with_pycuerun_wraps_the_same_command(tmp_path, monkeypatch):
    pytest.importorskip("outline.modules.shell")
    import outline

    monkeypatch.setattr(outline.config, "get", _config_get(outline.config.get, "session_dir",
                                                            str(tmp_path / "sessions")), raising=False)
    (job,) = build_jobs(read_from_file(write_shots(tmp_path)), FarmConfig(chunk=3, executable=("/farm/ned-fx",)))
    spec = opencue.spec_xml(job, use_pycuerun=True)
    cmds = {l.get("name"): l.findtext("cmd") for l in Et.fromstring(spec[spec.index("<spec>"):]).iter("layer")}
    assert all("pycuerun" in c and "-e #IFRAME#-" + name in c for name, c in cmds.items()), cmds
    # pycuerun loads the outline from its session folder and runs the layer's own command there
    from outline import load_outline

    (session,) = (tmp_path / "sessions").glob("*/*/outline.yaml") or (tmp_path / "sessions").glob("**/outline*")
    layer = load_outline(str(session)).get_layer("render")
    assert "--pyoutline-frame=%{FRAME}" in layer.get_arg("command")
    assert "#FRAME_START#-#FRAME_END#" in layer.get_arg("command")


def _config_get(get, key, value):
    def patched(section, option, *args, **kwargs):
        return value if (section, option) == ("outline", key) else get(section, option, *args, **kwargs)

    return patched


def test_opencue_spec_without_pycuerun_runs_layer_by_layer_as_cuebot_cuts_it(tmp_path, reference):
    """Without pycuerun (ned_fx's default) nodes run the spec's ``cmd`` directly. Cuebot and RQD are Java/gRPC
    services that cannot run here, so their part is done by the test: the layers run in the order of the spec's
    ``depends``, each cut into chunks of ``chunk`` frames of its ``range`` with ``#FRAME_START#``/``#FRAME_END#``
    (and ``#IFRAME#``, ``#LAYER#``, ``#JOB#``) substituted as Cuebot does, each command run by ``/bin/sh -c``."""
    shots = write_shots(tmp_path)
    (job,) = build_jobs(read_from_file(shots), FarmConfig(chunk=3, gpus=0))
    (spec_path,) = opencue.write_specs([job], tmp_path / "cue")
    text = spec_path.read_text()
    spec = Et.fromstring(text[text.index("<spec>"):])
    layers = {l.get("name"): l for l in spec.findall("job/layers/layer")}
    after = {name: {d.findtext("onlayer") for d in spec.findall("depends/depend") if d.findtext("deplayer") == name}
             for name in layers}
    order = []
    while len(order) < len(layers):
        ready = [n for n in layers if n not in order and after[n] <= set(order)]
        assert ready, "the spec's dependencies form a cycle"
        order += ready
    assert order == ["analysis", "render"]
    ran = []
    for name in order:
        layer = layers[name]
        frames = FrameRange.parse(layer.findtext("range")).numbers()
        size = int(layer.findtext("chunk"))
        for i in range(0, len(frames), size):
            chunk = frames[i:i + size]
            cmd = (layer.findtext("cmd").replace("#FRAME_START#", str(chunk[0])).replace("#FRAME_END#", str(chunk[-1]))
                   .replace("#IFRAME#", str(chunk[0])).replace("#LAYER#", name).replace("#JOB#", job.name))
            result = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, env=env(), timeout=600)
            assert result.returncode == 0, result.stdout + result.stderr
            ran.append((name, chunk[0], chunk[-1]))
    assert ran == [("analysis", 5, 5), ("render", 5, 7), ("render", 8, 10)]
    assert_bit_exact(tmp_path / "out" / "sh010.####.png", reference)


def test_opencue_plain_spec_on_windows_has_no_getuid(tmp_path, monkeypatch):
    (job,) = build_jobs(read_from_file(write_shots(tmp_path)), FarmConfig(chunk=3, executable=("ned-fx",)))
    monkeypatch.delattr(os, "getuid", raising=False)
    spec = opencue._spec_xml_plain(job)
    assert Et.fromstring(spec[spec.index("<spec>"):]).findtext("uid") == "1"      # as pyoutline writes it there


# ---- Deadline ---------------------------------------------------------------------------------------------------

def deadline_tasks(frames: str, chunk: int) -> list[list[int]]:
    """Deadline's tasks of a job: its frame list (``a-b``, ``a-bxN``) in chunks of ``ChunkSize`` frames."""
    numbers = list(FrameRange.parse(frames).numbers())
    return [numbers[i:i + chunk] for i in range(0, len(numbers), chunk)]


@pytest.mark.parametrize("frames,chunk", [("5-12", 3), ("0-10x2", 2)])
def test_deadline_chunk_tokens_expand_to_the_frames_of_each_chunk(tmp_path, frames, chunk):
    d3 = footage("d3.mp4")
    (tmp_path / "s.yaml").write_text(f"shots:\n  - {{name: sh, input: {d3}, output: out/sh.####.png, "
                                     f"frames: {frames}, emotion: sad}}\n")
    (job,) = build_jobs(read_from_file(tmp_path / "s.yaml"),
                        FarmConfig(chunk=chunk, executable=("/farm/ned-fx",), limits=("ned_fx",)))
    written = deadline.write_files([job], tmp_path / "dl")
    (_, _), (ji, pi) = written[job.name]
    info = dict(l.split("=", 1) for l in ji.read_text().splitlines())
    plugin = dict(l.split("=", 1) for l in pi.read_text().splitlines())
    # documented keys only: GPUs go to the GPU workers' group one task at a time; GPUsPerTask is for the renderer
    # plugins and the CommandLine plugin does not read it; limits are LimitGroups
    assert "GPUsPerTask" not in plugin and set(plugin) == {"Executable", "Arguments", "ShellExecute",
                                                           "SingleFramesOnly"}
    assert (info["Group"], info["ConcurrentTasks"], info["LimitGroups"]) == ("gpu", "1", "ned_fx")
    for task in deadline_tasks(info["Frames"], int(info["ChunkSize"])):
        args = shlex.split(plugin["Arguments"].replace("<STARTFRAME>", str(task[0]))
                           .replace("<ENDFRAME>", str(task[-1])))
        edit_frames = [a.split("=", 1)[1] for a in args if a.startswith("--frames=")]
        assert len(edit_frames) == 1
        assert list(FrameRange.parse(edit_frames[0]).numbers()) == task, (edit_frames, task)
    covered = [n for t in deadline_tasks(info["Frames"], int(info["ChunkSize"])) for n in t]
    assert covered == list(FrameRange.parse(frames).numbers())


# ---- retries and races ------------------------------------------------------------------------------------------

def _commands(tmp_path):
    shots = write_shots(tmp_path)
    (job,) = build_jobs(read_from_file(shots), FarmConfig(chunk=6, gpus=0, audit_log=str(tmp_path / "audit.jsonl")))
    return shots, job.layer("analysis").tasks[0].command, job.layer("render").tasks[0].command


def test_a_chunk_killed_midway_and_rerun_leaves_every_frame_whole_and_never_reanalyses(tmp_path, reference):
    from ned_fx.cli import main

    shots, analysis, render = _commands(tmp_path)
    exe = render.index("farm")
    assert main(list(analysis[exe:])) == 0
    npz = tmp_path / "out" / "sh010.analysis.npz"
    before = (npz.stat().st_mtime_ns, file_sha256(npz))
    pattern = tmp_path / "out" / "sh010.####.png"
    paths = [sequence_path(pattern, n) for n in range(FRAMES[0], FRAMES[1] + 1)]
    proc = subprocess.Popen(list(render), env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline_at = time.monotonic() + 300
    while sum(p.exists() for p in paths) < 2 and proc.poll() is None and time.monotonic() < deadline_at:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [p for p in paths if p.exists()]
    assert 2 <= len(done) < len(paths), "the chunk was killed midway"
    for p in done:                      # each frame on disk is whole
        n = int(p.name.split(".")[1])
        assert np.array_equal(_pixels(p), reference[n])
    # a killed run's hidden temporary file, old enough to be a leftover, and a live racer's fresh one
    stale = paths[-1].with_name(f".{paths[-1].name}.0123abcd.tmp.png")
    stale.write_bytes(b"half a frame")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    fresh = paths[-1].with_name(f".{paths[-1].name}.4567cdef.tmp.png")
    fresh.write_bytes(b"being written")
    kept = {p: p.stat().st_mtime_ns for p in done}
    rerun = subprocess.run(list(render), env=env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"kept {len(done)} frame(s) already written by the same edit" in rerun.stdout
    assert (npz.stat().st_mtime_ns, file_sha256(npz)) == before, "the retry analysed the shot again"
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items()), "frames already written were written again"
    assert_bit_exact(pattern, reference)
    assert not stale.exists() and fresh.exists()
    fresh.unlink()
    # the farm run read back: complete, then one frame lost
    assert main(["batch", str(shots), "--from-farm", "--report", str(tmp_path / "r.json")]) == 0
    paths[2].unlink()
    assert main(["batch", str(shots), "--from-farm", "--report", str(tmp_path / "r.json")]) == 9
    shot = json.loads((tmp_path / "r.json").read_text())["shots"][0]
    assert (shot["status"], shot["error"]["code"], shot["edited"]["count"]) == ("failed", "incomplete", 5)
    assert ": 7 (1 frame);" in shot["error"]["message"], shot["error"]


def _pixels(path):
    from ned_fx.media import read_image

    return read_image(path).pixels


def test_two_chunks_racing_on_the_same_frames_never_leave_a_torn_file(tmp_path, reference):
    import cv2

    from ned_fx.cli import main

    _, analysis, render = _commands(tmp_path)
    assert main(list(analysis[render.index("farm"):])) == 0
    pattern = tmp_path / "out" / "sh010.####.png"
    racers = [subprocess.Popen([*render, "--no-resume"], env=env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE) for _ in range(2)]
    seen = 0
    while any(r.poll() is None for r in racers):
        for n in range(FRAMES[0], FRAMES[1] + 1):
            path = sequence_path(pattern, n)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None and np.array_equal(image[..., ::-1], reference[n]), f"frame {n} was torn"
            seen += 1
        time.sleep(0.01)
    assert [r.returncode for r in racers] == [0, 0], [r.stderr.read() for r in racers]
    assert seen > 0
    assert_bit_exact(pattern, reference)
    assert not list(pattern.parent.glob(".*.tmp.png")), "a racer left a temporary file"


def test_the_farm_report_reads_passed_through_frames_and_stills(tmp_path):
    """``ned-fx batch --from-farm`` reads each frame's provenance: edited, or passed through and why (a sequence
    and a still, as the farm's chunks write them)."""
    from ned_fx.cli import main
    from ned_fx.media import write_image
    from ned_fx.provenance import build_record

    d3, photo = footage("d3.mp4"), footage("d8.jpg")
    (tmp_path / "s.yaml").write_text(
        f"shots:\n  - {{name: seq, input: {d3}, output: out/seq.####.png, frames: 0-3, emotion: sad}}\n"
        f"  - {{name: still, input: {photo}, output: out/still.png, emotion: happy}}\n")
    shot = build_record(d3, {"emotion": "sad"}, face_id=0, frames="0-3", application="ned-fx edit", hash_source=False)
    (tmp_path / "out").mkdir()
    with open_media(str(d3), "0-3") as src:
        for f in src:
            write_image(sequence_path(tmp_path / "out" / "seq.####.png", f.number), f.pixels,
                        provenance=shot.for_frame(f.number, None, "no face" if f.number == 2 else None))
    with open_media(str(photo)) as src:
        still = next(iter(src))
    write_image(tmp_path / "out" / "still.png", still.pixels, provenance=build_record(
        photo, {"emotion": "happy"}, face_id=0, application="ned-fx edit", hash_source=False).for_frame(None))
    assert main(["batch", str(tmp_path / "s.yaml"), "--from-farm", "--report", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    seq, one = report["shots"]
    assert (seq["status"], seq["edited"]["count"], seq["passed_through"]) == (
        "done", 3, {"no face": {"count": 1, "frames": "2 (1 frame)"}})
    assert (one["status"], one["edited"]["count"], one["frames_total"]) == ("done", 1, 1)
    assert report["summary"]["done"] == 2 and report["shotlist"] == str(tmp_path / "s.yaml")
    # --output-root without --from-farm is refused; a farm run written elsewhere is found there
    assert main(["batch", str(tmp_path / "s.yaml"), "--output-root", str(tmp_path)]) == 2
    os.rename(tmp_path / "out", tmp_path / "moved")
    assert main(["batch", str(tmp_path / "s.yaml"), "--from-farm", "--output-root", str(tmp_path / "moved"),
                 "--report", str(tmp_path / "r2.json")]) == 0
