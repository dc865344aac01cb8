"""``ned-fx farm``: a two-shot list becomes OpenCue and Deadline jobs. The generated specs are parsed back and the
farms' own chunking is replayed on them: every task must run exactly the command of the neutral job model
(analysis once, render chunks after it, assemble after the render for a movie), with the GPU requirement."""

from __future__ import annotations

import shlex
from pathlib import Path
from xml.etree import ElementTree as Et

import numpy as np
import pytest

from ned_fx.batch import read_from_file
from ned_fx.errors import InputNotFoundError, InvalidParameterError
from ned_fx.farm import FarmConfig, FarmError, build_jobs, deadline, opencue
from ned_fx.media import open_media, sequence_path, write_image

from conftest import REPO, footage

EXE = ("/opt/ned_fx/bin/ned-fx",)


def task(shot: str, layer: str) -> tuple[str, ...]:
    """What every farm task starts with: ``ned-fx farm task --shot=SHOT --layer=LAYER --``."""
    return (*EXE, "farm", "task", f"--shot={shot}", f"--layer={layer}", "--")


@pytest.fixture()
def shots(tmp_path):
    d12, d3 = footage("d12.mp4"), footage("d3.mp4")
    path = tmp_path / "shots.yaml"
    path.write_text(
        "version: 1\ndefaults: {consent: release 114}\nshots:\n"
        f"  - {{name: sh010, input: {d12}, output: out/sh010.####.png, frames: 0-24, emotion: happy, "
        f"intensity: 0.8, regions: 'all,-mouth', face: 0}}\n"
        f"  - {{name: sh020, input: {d3}, output: out/sh020.mov, frames: 5-16, emotion: sad}}\n")
    return read_from_file(path)


def chunks(first: int, last: int, step: int, size: int) -> list[tuple[int, int]]:
    """How OpenCue and Deadline cut a frame range into tasks of ``size`` frames."""
    frames = list(range(first, last + 1, step))
    return [(frames[i], frames[min(i + size, len(frames)) - 1]) for i in range(0, len(frames), size)]


def parse_range(text: str) -> tuple[int, int, int]:
    body, _, step = text.partition("x")
    a, _, b = body.partition("-")
    return int(a), int(b or a), int(step or 1)


def test_the_job_model(shots, tmp_path):
    a, b = build_jobs(shots, FarmConfig(chunk=10, executable=EXE))
    out = tmp_path / "out"
    assert (a.name, b.name) == ("shots_sh010", "shots_sh020")
    assert [l.name for l in a.layers] == ["analysis", "render"]
    assert [l.name for l in b.layers] == ["analysis", "render", "assemble"]
    analysis = str(out / "sh010.analysis.npz")
    assert a.layer("analysis").command == (
        *task("sh010", "analysis"), "edit", str(footage("d12.mp4")), "-o", str(out / "sh010.####.png"), "--frames=0-24",
        f"--analysis={analysis}", "--analysis-only", "--emotion=happy", "--intensity=0.8", "--regions=all,-mouth",
        "--face=0", "--consent=release 114", "-q")
    render = a.layer("render")
    assert render.depends_on == ("analysis",) and render.gpus == 1 and render.chunk == 10
    assert [(t.first, t.last) for t in render.tasks] == [(0, 9), (10, 19), (20, 24)]
    assert render.tasks[1].command == (
        *task("sh010", "render"), "edit", str(footage("d12.mp4")), "-o", str(out / "sh010.####.png"), "--frames=10-19",
        f"--analysis={analysis}", "--emotion=happy", "--intensity=0.8", "--regions=all,-mouth", "--face=0",
        "--consent=release 114", "-q")
    # a movie output: chunks render a sequence beside it, one assemble task encodes it after the render
    frames = str(out / "sh020.mov.frames" / "sh020.####.png")
    assert b.layer("render").outputs == (frames,) and "-o" in b.layer("render").command
    assert [(t.first, t.last) for t in b.layer("render").tasks] == [(5, 14), (15, 16)]
    assemble = b.layer("assemble")
    assert assemble.command == (*task("sh020", "assemble"), "farm", "assemble", frames, "-o", str(out / "sh020.mov"),
                                "--frames=5-16",
                                "--fps=30", f"--audio-from={footage('d3.mp4')}", "--clean")
    assert assemble.depends_on == ("render",) and assemble.gpus == 0 and len(assemble.tasks) == 1
    # one task, run as the shot's last frame: a farm that orders work by frame reaches it after every chunk
    assert (assemble.frames, assemble.tasks[0].first) == ("16", 16)
    assert b.metadata["consent"] == "release 114" and b.group == "gpu"
    # the consent reference goes to every ned-fx edit of the shot (the analysis and each chunk)
    assert all("--consent=release 114" in t.command for l in b.layers[:2] for t in l.tasks)
    assert not any("--audit-log" in a for l in a.layers for t in l.tasks for a in t.command)
    # an audit log the nodes share: every render chunk appends its edit line there (the analysis writes none)
    c, _ = build_jobs(shots, FarmConfig(chunk=10, executable=EXE, audit_log="/farm/logs/audit.jsonl"))
    assert all("--audit-log=/farm/logs/audit.jsonl" in t.command for t in c.layer("render").tasks)
    assert not any("--audit-log" in x for x in c.layer("analysis").command)


def test_a_shot_without_consent_and_a_bad_consent(tmp_path):
    (tmp_path / "s.yaml").write_text(f"shots:\n  - {{input: {footage('d12.mp4')}, output: out/a.####.png, "
                                     f"frames: 0-3}}\n")
    (job,) = build_jobs(read_from_file(tmp_path / "s.yaml"), FarmConfig(executable=EXE))
    assert not any(a.startswith("--consent") for l in job.layers for t in l.tasks for a in t.command)
    assert "consent" not in job.metadata
    (tmp_path / "t.yaml").write_text(f"shots:\n  - {{name: x, input: {footage('d12.mp4')}, output: out/a.####.png, "
                                     f"consent: \"REL-1\\tsigned\"}}\n")
    with pytest.raises(InvalidParameterError, match=r"shot x: a consent reference is one line of text"):
        build_jobs(read_from_file(tmp_path / "t.yaml"), FarmConfig(executable=EXE))


def test_opencue_specs_replay_to_the_model(shots, tmp_path):
    jobs = build_jobs(shots, FarmConfig(chunk=10, executable=EXE, show="demo", user="td", gpu_memory="6g"))
    paths = opencue.write_specs(jobs, tmp_path / "cue")
    assert [p.name for p in paths] == ["shots_sh010.xml", "shots_sh020.xml"]
    for job, path in zip(jobs, paths):
        text = path.read_text()
        assert "cjsl-1.15.dtd" in text
        spec = Et.fromstring(text[text.index("<spec>"):])
        assert (spec.findtext("show"), spec.findtext("shot"), spec.findtext("user")) == ("demo", job.shot, "td")
        el = spec.find("job")
        assert el.get("name") == job.name and el.findtext("priority") == "50" and el.findtext("paused") == "False"
        layers = el.findall("layers/layer")
        assert [l.get("name") for l in layers] == [l.name for l in job.layers]
        for xml_layer, layer in zip(layers, job.layers):
            first, last, step = parse_range(xml_layer.findtext("range"))
            size = int(xml_layer.findtext("chunk"))
            cmd = xml_layer.findtext("cmd")
            replay = [shlex.split(cmd.replace("#FRAME_START#", str(a)).replace("#FRAME_END#", str(b)))
                      for a, b in chunks(first, last, step, size)]
            # OpenCue's commands carry pyoutline's frame token for ned-fx farm task (what lets them run under
            # pycuerun too); the rest is the job model's command, chunk by chunk
            assert all(r.pop(len(EXE) + 2) == "--pyoutline-frame=%{FRAME}" for r in replay)
            assert [tuple(r) for r in replay] == [t.command for t in layer.tasks]
            # cores as pyoutline 1.37 writes an override of the service's cores; threadable as CueSubmit sets it
            assert xml_layer.findtext("cores") == "%0.1f" % layer.cores
            assert xml_layer.findtext("threadable") == str(layer.cores >= 2)
            if layer.gpus:
                assert (xml_layer.findtext("gpus"), xml_layer.findtext("gpu_memory")) == ("1", "6g")
            else:
                assert xml_layer.find("gpus") is None
        deps = {(d.findtext("deplayer"), d.findtext("onlayer"), d.get("type")) for d in spec.findall("depends/depend")}
        want = {(l.name, dep, "LAYER_ON_LAYER") for l in job.layers for dep in l.depends_on}
        assert deps == want and ("render", "analysis", "LAYER_ON_LAYER") in deps


def test_pyoutline_and_the_plain_writer_agree(shots):
    if not opencue.have_pyoutline():
        pytest.skip("pyoutline (opencue-pyoutline) is not installed; the plain writer is used")
    for job in build_jobs(shots, FarmConfig(executable=EXE, user="td")):
        made = opencue.spec_xml(job)
        plain = opencue._spec_xml_plain(job)
        assert Et.canonicalize(made[made.index("<spec>"):]) == Et.canonicalize(plain[plain.index("<spec>"):])


def read_info(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


def test_deadline_files_replay_to_the_model(shots, tmp_path):
    jobs = build_jobs(shots, FarmConfig(chunk=10, executable=EXE, pool="gpu_pool", priority=70))
    written = deadline.write_files(jobs, tmp_path / "dl")
    for job in jobs:
        pairs = written[job.name]
        assert [p[0].name for p in pairs] == [f"{job.name}_{l.name}.job" for l in job.layers]
        for (ji, pi), layer in zip(pairs, job.layers):
            info, plugin = read_info(ji), read_info(pi)
            assert (info["Plugin"], info["BatchName"], info["Pool"], info["Priority"]) == (
                "CommandLine", "shots", "gpu_pool", "70")
            assert info["Name"] == f"{job.shot} {layer.name}"
            assert info.get("Group") == ("gpu" if layer.gpus else None)
            assert info.get("IsFrameDependent") == ("false" if layer.depends_on else None)
            assert "ExtraInfoKeyValue2" in info and info["ExtraInfoKeyValue2"] == f"ned_fx_gpus={layer.gpus}"
            assert "ned_fx_consent=release 114" in info.values()
            first, last, step = parse_range(info["Frames"])
            replay = [(plugin["Executable"], *shlex.split(plugin["Arguments"].replace("<STARTFRAME>", str(a))
                                                          .replace("<ENDFRAME>", str(b))))
                      for a, b in chunks(first, last, step, int(info["ChunkSize"]))]
            assert replay == [t.command for t in layer.tasks]
            assert info["OutputFilename0"] == Path(layer.outputs[0]).name
    # one submission per shot; -dependent chains its jobs in layer order
    lines = [shlex.split(l) for l in (tmp_path / "dl" / "submit.sh").read_text().splitlines()
             if l.startswith('"$DEADLINECOMMAND"')]
    assert len(lines) == 2
    for line, job in zip(lines, jobs):
        assert line[1:3] == ["-SubmitMultipleJobs", "-dependent"]
        jobs_files = [Path(line[i + 1]).name for i, a in enumerate(line) if a == "-job"]
        assert jobs_files == [f"{job.name}_{l.name}.job" for l in job.layers]


def test_cli_dry_runs(shots, tmp_path, capsys):
    from ned_fx.cli import main

    src = shots.source
    assert main(["farm", "submit", src, "--to", "deadline", "--dry-run", "--out", str(tmp_path / "d"), "--chunk",
                 "4", "--gpu", "2", "--group", "rtx", "--ned-fx", "/farm/bin/ned-fx"]) == 0
    out = capsys.readouterr().out
    assert "render: frames 0-24, 7 task(s) of up to 4 frame(s), 2 GPU, after analysis" in out
    info = read_info(tmp_path / "d" / "shots_sh010_render.job")
    assert (info["ChunkSize"], info["Group"]) == ("4", "rtx")
    assert read_info(tmp_path / "d" / "shots_sh010_render.plugin")["Executable"] == "/farm/bin/ned-fx"
    assert main(["farm", "submit", src, "--to", "opencue", "--dry-run", "--shot", "sh020", "--gpu", "0"]) == 0
    spec = (Path(src).parent / "shots_farm" / "opencue" / "shots_sh020.xml").read_text()
    assert "<gpus>" not in spec and "#FRAME_START#" in spec
    assert not (Path(src).parent / "shots_farm" / "opencue" / "shots_sh010.xml").exists()
    # Open Job Description: the template goes to --out (or -o FILE); the PATH values to give are printed
    assert main(["farm", "submit", src, "--to", "openjd", "--out", str(tmp_path / "oj"), "--gpu", "0"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "oj" / "template.yaml").is_file()
    assert f"-p ShotList={src}" in out and "deadline bundle submit" in out


def test_bad_requests_are_named_errors(shots, tmp_path, capsys, monkeypatch):
    from ned_fx.cli import main

    src = shots.source
    assert main(["farm", "submit", src, "--to", "deadline", "--dry-run", "--chunk", "0"]) == 2
    assert "chunk (frames per task) must be 1 or more" in capsys.readouterr().err
    assert main(["farm", "submit", src, "--to", "deadline", "--dry-run", "--priority", "101"]) == 10
    assert "Deadline priorities are 0…100" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("DEADLINE_PATH", raising=False)
    assert main(["farm", "submit", src, "--to", "deadline", "--out", str(tmp_path / "x")]) == 10
    assert "deadlinecommand was not found" in capsys.readouterr().err
    assert main(["farm"]) == 2


def test_shots_the_farm_cannot_split(tmp_path):
    plates = tmp_path / "plates"
    plates.mkdir()
    for n in (1, 2, 4, 5):
        write_image(plates / f"p.{n:04d}.png", np.zeros((16, 16, 3), np.uint8))
    (tmp_path / "s.yaml").write_text("shots:\n  - {input: plates/p.####.png, output: out/p.####.png}\n"
                                     f"  - {{input: {footage('d12.mp4')}, output: out/m.####.exr}}\n")
    sl = read_from_file(tmp_path / "s.yaml")
    with pytest.raises(FarmError, match=r"shot p: .* has gaps \(3 \(1 frame\) missing\)"):
        build_jobs(sl.select(["p"]))
    with pytest.raises(FarmError, match=r"shot d12: m.####.exr: a movie's frames are 8- or 16-bit"):
        build_jobs(sl.select(["d12"]))
    (tmp_path / "t.yaml").write_text("shots:\n  - {input: plates/p.####.png, output: out/q.####.png, frames: 1-2}\n")
    (job,) = build_jobs(read_from_file(tmp_path / "t.yaml"), FarmConfig(chunk=1))
    assert [(t.first, t.last) for t in job.layer("render").tasks] == [(1, 1), (2, 2)]


def test_assemble_encodes_the_rendered_frames_with_audio(tmp_path):
    from ned_fx.cli import main

    d3 = footage("d3.mp4")
    pattern = tmp_path / "out" / "sh020.mov.frames" / "sh020.####.png"
    pattern.parent.mkdir(parents=True)
    with open_media(d3, "5-16") as src:
        originals = {f.number: f.pixels.copy() for f in src}
    from ned_fx.provenance import build_record, file_sha256

    shot = build_record(d3, {"emotion": "sad", "intensity": 0.5}, face_id=0, frames="5-16", kind="video",
                        consent="release 114", application="ned-fx edit")
    for n, px in originals.items():         # as ned-fx edit writes them: the first frame had no face
        write_image(sequence_path(pattern, n), px, provenance=shot.for_frame(n, None, "no face" if n == 5 else None))
    (pattern.parent / ".sh020.####.png.ned_fx.json").write_text("{}")      # ned-fx edit's resume sidecar
    movie = tmp_path / "out" / "sh020.mov"
    assert main(["farm", "assemble", str(pattern), "-o", str(movie), "--frames", "5-16", "--fps", "30",
                 "--audio-from", str(d3), "--clean"]) == 0
    with open_media(movie) as mov:
        assert len(mov) == 12 and mov.fps == pytest.approx(30.0) and mov.has_audio
        for i, frame in enumerate(mov):
            assert np.abs(frame.pixels.astype(int) - originals[5 + i]).mean() < 3.0
    import av

    with av.open(str(movie)) as c:
        audio = c.streams.audio[0]
        seconds = float(audio.duration * audio.time_base) if audio.duration else float(c.duration) / 1e6
    assert seconds < 0.6, "the audio is trimmed to the 12 frames (0.4 s), not the whole clip"
    from ned_fx.media.readers import read_provenance

    rec = read_provenance(movie)        # the delivered movie says it was edited, like its frames
    assert (rec.kind, rec.edited, rec.source_frame, rec.emotion, rec.consent) == ("video", True, None, "sad",
                                                                                  "release 114")
    assert rec.source_sha256 == file_sha256(d3) and "video was edited" in rec.summary
    assert not pattern.parent.exists(), "--clean removed the frames and their folder"


def test_assemble_gives_a_portrait_phone_movie_its_rotation_back(tmp_path):
    """The chunks of a portrait phone video are upright frames (as ``ned-fx edit`` reads the movie); the assembled
    movie is stored as the source was (sideways, tagged with its rotation), as ``ned-fx edit`` delivers it."""
    import av

    from conftest import phone_movie
    from ned_fx.cli import main

    with open_media(footage("d12.mp4"), "0-2") as src:
        pictures = [f.pixels[:, 64:448].copy() for f in src]            # 384 wide, 512 high: a portrait picture
    phone = phone_movie(tmp_path / "phone.mov", pictures, 270, codec="png")
    pattern = tmp_path / "out" / "sh.####.png"
    pattern.parent.mkdir()
    with open_media(phone) as src:
        assert src.rotation == 270
        for frame in src:
            write_image(sequence_path(pattern, frame.number), frame.pixels)
    movie = tmp_path / "out" / "sh.mov"
    assert main(["farm", "assemble", str(pattern), "-o", str(movie), "--frames", "0-2", "--fps", "25",
                 "--audio-from", str(phone)]) == 0
    with av.open(str(movie)) as c:
        coded = next(c.decode(video=0))
        assert (coded.width, coded.height, round(coded.rotation)) == (512, 384, -90)
    with open_media(movie) as mov:
        assert (mov.width, mov.height) == (384, 512)
        assert np.abs(next(iter(mov)).pixels.astype(int) - pictures[0]).mean() < 3.0


def test_assemble_keeps_a_variable_frame_rate_and_a_ten_bit_source_s_codec(tmp_path):
    """The frames of a phone's variable-frame-rate movie show at their own times in the assembled movie (the lips in
    step with the voice), and a 10-bit ProRes source's chunks (16-bit PNGs) are assembled as 10-bit ProRes."""
    import av

    from conftest import ten_bit_prores, vfr_movie
    from ned_fx.cli import main

    with open_media(footage("d12.mp4"), "0-5") as src:
        pictures = [f.pixels.copy() for f in src]
    times = [0, 40, 120, 160, 193, 313]
    phone = vfr_movie(tmp_path / "phone.mp4", pictures, times, audio_from=footage("d12.mp4"))
    deep = ten_bit_prores(tmp_path / "plate.mov", [p.astype(np.uint16) * 257 + 128 for p in pictures])
    for source, name in ((phone, "a.mp4"), (deep, "b.mov")):
        pattern = tmp_path / name / "f.####.png"
        pattern.parent.mkdir()
        with open_media(source) as src:
            for frame in src:
                write_image(sequence_path(pattern, frame.number), frame.pixels)
        assert main(["farm", "assemble", str(pattern), "-o", str(tmp_path / name.replace(".", "_out.")),
                     "--frames", "1-5", "--fps", "25", "--audio-from", str(source)]) == 0
    with av.open(str(tmp_path / "a_out.mp4")) as c:
        assert [round(float(f.pts * f.time_base) * 1000) for f in c.decode(video=0)] == [t - 40 for t in times[1:]]
    with av.open(str(tmp_path / "b_out.mov")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.name, cc.pix_fmt) == ("prores", "yuv422p10le")
    with open_media(tmp_path / "b_out.mov") as mov, open_media(deep, "1-5") as src:
        for a, b in zip(mov, src):
            assert a.pixels.dtype == np.uint16 and np.abs(a.pixels.astype(int) - b.pixels).mean() < 60


def test_the_examples_parse_and_make_farm_specs(tmp_path):
    footage("d12.mp4")
    yaml_list = read_from_file(REPO / "examples" / "shots.yaml")
    csv_list = read_from_file(REPO / "examples" / "shots.csv")
    assert len(yaml_list) >= 2 and [s.input for s in yaml_list] == [s.input for s in csv_list]
    for shot in yaml_list:
        assert Path(shot.input).is_file() or "#" in shot.input, shot.input
    jobs = build_jobs(yaml_list, FarmConfig(executable=EXE))
    assert all(job.layer("render").tasks for job in jobs)
    assert opencue.write_specs(jobs, tmp_path / "cue") and deadline.write_files(jobs, tmp_path / "dl")


def test_opencue_submit_without_a_cuebot_is_a_clear_error(shots, tmp_path, capsys, monkeypatch):
    from ned_fx.cli import main

    from daemons import free_port

    if not opencue.have_pyoutline():
        pytest.skip("pyoutline (opencue-pyoutline) is not installed")
    monkeypatch.setenv("CUEBOT_HOSTS", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("HOME", str(tmp_path))               # pyoutline/pycue write nothing in the user's home
    assert main(["farm", "submit", shots.source, "--to", "opencue", "--shot", "sh010", "--out",
                 str(tmp_path / "cue")]) == 10
    err = capsys.readouterr().err
    assert "OpenCue did not take job shots_sh010" in err and "CUEBOT_HOSTS" in err
    assert (tmp_path / "cue" / "shots_sh010.xml").is_file()
    assert not (tmp_path / ".opencue").exists()


def test_session_options_reach_every_edit_of_the_shot(tmp_path):
    """A shot's actor footage, holdout matte and shutter angle go to the analysis (the models are built there from
    the footage) and to every render chunk (the matte's pixels kept, the folds blurred), as ``ned-fx edit`` parses
    them."""
    from ned_fx.cli import build_parser, tracker_config
    from ned_fx.commands.edit import content_from_args

    d12, d3 = footage("d12.mp4"), footage("d3.mp4")
    path = tmp_path / "shots.yaml"
    path.write_text(f"shots:\n  - {{name: sh010, input: {d12}, output: out/sh010.####.png, frames: 0-24, "
                    f"emotion: happy, actor_footage: [{d3}, takes/extra.mov], holdout_matte: mattes/h.####.png, "
                    f"shutter_angle: 172.8, ignore_cuts: true, face: 0}}\n")
    with pytest.raises(InputNotFoundError, match=r"shot sh010: actor footage .*extra.mov does not exist"):
        build_jobs(read_from_file(path), FarmConfig(chunk=10, executable=EXE))     # checked before submitting
    (tmp_path / "takes").mkdir()
    (tmp_path / "takes" / "extra.mov").write_bytes(b"")       # only its existence is checked here
    with pytest.raises(InputNotFoundError, match=r"shot sh010: .*mattes.* does not exist"):
        build_jobs(read_from_file(path), FarmConfig(chunk=10, executable=EXE))
    (tmp_path / "mattes").mkdir()
    write_image(tmp_path / "mattes" / "h.0000.png", np.zeros((8, 8, 3), np.uint8))
    (job,) = build_jobs(read_from_file(path), FarmConfig(chunk=10, executable=EXE))
    commands = [job.layer("analysis").command] + [t.command for t in job.layer("render").tasks]
    matte = str(tmp_path / "mattes" / "h.####.png")
    for command in commands:
        argv = list(command[command.index("--") + 1:])
        assert argv[argv.index("--actor-footage"):argv.index("--actor-footage") + 3] == [
            "--actor-footage", str(d3), str(tmp_path / "takes" / "extra.mov")]
        assert f"--holdout-matte={matte}" in argv and "--shutter-angle=172.8" in argv
        args = build_parser().parse_args(argv)
        assert args.ignore_cuts and tracker_config(args).cut_threshold == 0.0     # tracked as one shot
        assert tuple(args.actor_footage) == (str(d3), str(tmp_path / "takes" / "extra.mov"))
        assert args.face == 0 and args.quiet, "the options after the footage list are still options"
        content = content_from_args(args)
        assert (content.holdout, content.shutter) == (matte, pytest.approx(0.48))
    assert job.metadata["session"].startswith("actor_footage=")
    # a neural renderer's checkpoint: checked before submitting, then every edit renders with it
    path.write_text(path.read_text().replace("face: 0}", "face: 0, renderer: neural, checkpoint: actor.ckpt, "
                                                         "colorspace: ACEScg}"))
    with pytest.raises(InputNotFoundError, match=r"shot sh010: neural renderer checkpoint .*actor.ckpt does not exist"):
        build_jobs(read_from_file(path), FarmConfig(chunk=10, executable=EXE))
    (tmp_path / "actor.ckpt").write_bytes(b"")
    (job,) = build_jobs(read_from_file(path), FarmConfig(chunk=10, executable=EXE))
    for t in [job.layer("analysis")] + list(job.layer("render").tasks):
        args = build_parser().parse_args(list(t.command[t.command.index("--") + 1:]))
        assert (args.renderer, args.checkpoint, args.colorspace) == ("neural", str(tmp_path / "actor.ckpt"), "ACEScg")
    # a shot without them: no such option (its edits take the defaults, as before)
    (plain,) = build_jobs(_plain(tmp_path, d12), FarmConfig(chunk=10, executable=EXE))
    assert not any(a.startswith(("--actor-footage", "--holdout-matte", "--shutter-angle", "--ignore-cuts"))
                   for l in plain.layers for t in l.tasks for a in t.command)


def _plain(tmp_path, d12):
    path = tmp_path / "plain.yaml"
    path.write_text(f"shots:\n  - {{name: sh020, input: {d12}, output: out/sh020.####.png, frames: 0-9}}\n")
    return read_from_file(path)
