"""The shot-list format (YAML, CSV, OpenTimelineIO): what is read, what is refused and with which message, and that
each format writes back what it reads."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio
import pytest

from ned_fx.batch import SHOT_KEYS, ShotListError, read_from_file, write_to_file
from ned_fx.batch.shotlist import read_from_string
from ned_fx.errors import InputNotFoundError, InvalidParameterError, NedFxError, UnsupportedFormatError

from conftest import footage

YAML = """\
version: 1
defaults:
  emotion: happy
  intensity: 0.8
  consent: "performer release #2026-114"
  output: out/{name}_{emotion}.####.exr
shots:
  - name: sh010
    input: plates/sh010.####.exr
    frames: 1001-1100
    regions: all,-mouth
    face: 0
  - input: plates/sh020.%04d.exr
    frames: 1001
    emotion: "happy:0.7,surprised:0.3"
    reference: refs/smile.jpg
  - input: takes/take3.mov
    output: out/take3_sad.mov
    emotion: sad
    intensity: 1.2
    speech: preserve
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_defaults_names_templates_and_paths(tmp_path):
    sl = read_from_file(write(tmp_path, "shots.yaml", YAML))
    assert [s.name for s in sl] == ["sh010", "sh020", "take3"]          # names from the inputs' file names
    a, b, c = sl.shots
    assert a.input == str(tmp_path / "plates" / "sh010.####.exr")      # relative to the shot list's folder
    assert a.output == str(tmp_path / "out" / "sh010_happy.####.exr")  # template filled per shot
    assert (a.frames, a.emotion, a.intensity, a.regions, a.face) == ("1001-1100", "happy", 0.8, "all,-mouth", 0)
    assert a.consent == "performer release #2026-114"
    assert b.frames == "1001" and b.output.endswith("sh020_happy_0.7_surprised_0.3.####.exr")
    assert b.reference == str(tmp_path / "refs" / "smile.jpg") and b.emotion == "happy:0.7,surprised:0.3"
    assert (c.output, c.intensity, c.speech, c.frames) == (str(tmp_path / "out" / "take3_sad.mov"), 1.2,
                                                            "preserve", None)
    assert (a.output_kind, c.output_kind) == ("sequence", "movie")
    assert a.instruction() == {"emotion": "happy", "intensity": 0.8, "regions": "all,-mouth"}
    assert sl.name == "shots" and sl.source.endswith("shots.yaml")


def test_csv_reads_the_same_shots_as_yaml(tmp_path):
    yaml_list = read_from_file(write(tmp_path, "shots.yaml", YAML))
    csv_text = (
        "# comment rows and blank lines are skipped\n"
        "name,input,output,frames,emotion,intensity,reference,regions,speech,face,consent\n"
        'sh010,plates/sh010.####.exr,out/sh010_happy.####.exr,1001-1100,happy,0.8,,"all,-mouth",,0,'
        "performer release #2026-114\n"
        '\n'
        'sh020,plates/sh020.%04d.exr,out/sh020_happy_0.7_surprised_0.3.####.exr,1001,"happy:0.7,surprised:0.3",'
        '0.8,refs/smile.jpg,,,,performer release #2026-114\n'
        "take3,takes/take3.mov,out/take3_sad.mov,,sad,1.2,,,preserve,,performer release #2026-114\n")
    csv_list = read_from_file(write(tmp_path, "shots.csv", csv_text))
    assert csv_list.shots == yaml_list.shots


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_spreadsheet_s_csv_with_semicolons_or_tabs_and_decimal_commas(tmp_path, sep):
    """What Excel or LibreOffice writes where the decimal mark is a comma (cells separated by ";", 0,8 for 0.8, a
    byte-order mark first), or a tab-separated export: the same shots as the comma CSV; a region list's commas
    are kept."""
    comma = ("name,input,output,frames,emotion,intensity,regions,shutter_angle\n"
             'sh010,plates/sh010.####.exr,out/sh010.####.exr,1001-1005x2,happy,0.8,"all,-mouth",172.8\n'
             "take3,takes/take3.mov,out/take3_sad.mov,,sad,1,,\n")
    other = ("\ufeff" + f"name{sep}input{sep}output{sep}frames{sep}emotion{sep}intensity{sep}regions{sep}"
             f"shutter_angle\n"
             f"sh010{sep}plates/sh010.####.exr{sep}out/sh010.####.exr{sep}1001-1005x2{sep}happy{sep}0,8{sep}"
             f"all,-mouth{sep}172,8\n"
             f"take3{sep}takes/take3.mov{sep}out/take3_sad.mov{sep}{sep}sad{sep}1{sep}{sep}\n")
    expected = read_from_file(write(tmp_path, "comma.csv", comma))
    got = read_from_file(write(tmp_path, "spreadsheet.csv", other))
    assert got.shots == expected.shots
    assert got.shots[0].intensity == 0.8 and got.shots[0].shutter_angle == 172.8
    assert got.shots[0].regions == expected.shots[0].regions and "," in str(got.shots[0].regions)


@pytest.mark.parametrize("ext", ["yaml", "csv", "otio"])
def test_each_format_writes_back_what_it_reads(tmp_path, ext):
    original = read_from_file(write(tmp_path, "shots.yaml", YAML))
    path = write_to_file(original, tmp_path / f"copy.{ext}")
    again = read_from_file(path)
    assert again.shots == original.shots
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name], "written atomically, no temporary left"
    if ext == "yaml":                      # paths inside the folder are written relative to it
        assert "input: plates/sh010.####.exr" in path.read_text()


def test_otio_timeline_clips_become_shots(tmp_path):
    """A timeline as an editor would export it: a movie clip whose media starts at a timecode, an image-sequence
    clip, a gap and a disabled clip; instruction keys in the clips' metadata, the output template in the
    timeline's."""
    rate = 24
    tl = otio.schema.Timeline(name="reel1")
    tl.metadata["ned_fx"] = {"defaults": {"emotion": "happy", "intensity": 0.7,
                                          "output": "renders/{name}.####.exr"}}
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    movie = otio.schema.Clip(
        name="sh010",
        media_reference=otio.schema.ExternalReference(
            target_url="file://" + str(tmp_path / "takes" / "take 3.mov").replace(" ", "%20"),
            available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(86400, rate),
                                                    otio.opentime.RationalTime(500, rate))),
        source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(86400 + 10, rate),
                                             otio.opentime.RationalTime(20, rate)))
    movie.metadata["ned_fx"] = {"emotion": "sad", "face": 1, "output": "renders/sh010_sad.mov"}
    track.append(movie)
    track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(duration=otio.opentime.RationalTime(5, rate))))
    seq = otio.schema.Clip(
        name="sh020",
        media_reference=otio.schema.ImageSequenceReference(
            target_url_base="plates/sh020/", name_prefix="sh020.", name_suffix=".exr", start_frame=1001,
            frame_zero_padding=4, rate=rate,
            available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                                    otio.opentime.RationalTime(100, rate))),
        source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(5, rate), otio.opentime.RationalTime(10, rate)))
    track.append(seq)
    off = otio.schema.Clip(name="unused", media_reference=otio.schema.ExternalReference(target_url="x.mov"),
                           source_range=otio.opentime.TimeRange(duration=otio.opentime.RationalTime(3, rate)))
    off.enabled = False
    track.append(off)
    path = tmp_path / "reel1.otio"
    otio.adapters.write_to_file(tl, str(path))

    sl = read_from_file(path)
    assert [s.name for s in sl] == ["sh010", "sh020"]                  # the gap and the disabled clip are not shots
    a, b = sl.shots
    assert a.input == str(tmp_path / "takes" / "take 3.mov")            # file URL decoded
    assert a.frames == "10-29"                                          # movie: 0-based index from the media start
    assert (a.emotion, a.intensity, a.face, a.output) == ("sad", 0.7, 1, str(tmp_path / "renders" / "sh010_sad.mov"))
    assert b.input == str(tmp_path / "plates" / "sh020" / "sh020.####.exr")
    assert b.frames == "1006-1015"                                      # sequence: the files' own frame numbers
    assert b.output == str(tmp_path / "renders" / "sh020.####.exr") and b.emotion == "happy"


def test_otio_clip_without_media_is_refused(tmp_path):
    tl = otio.schema.Timeline(name="t")
    tr = otio.schema.Track()
    tl.tracks.append(tr)
    tr.append(otio.schema.Clip(name="orphan", source_range=otio.opentime.TimeRange(
        duration=otio.opentime.RationalTime(10, 24))))
    tl.metadata["ned_fx"] = {"defaults": {"output": "o/{name}.####.png"}}
    path = tmp_path / "t.otio"
    otio.adapters.write_to_file(tl, str(path))
    with pytest.raises(ShotListError, match="orphan.*no media reference"):
        read_from_file(path)


@pytest.mark.parametrize("text, pattern", [
    ("shots:\n  - input: a.mov\n    output: b.mov\n    emotoin: happy\n", r"unknown key\(s\) 'emotoin'; valid: name, input"),
    ("shot:\n  - input: a.mov\n", r"unknown top-level key\(s\) 'shot'; valid: version, defaults, shots"),
    ("shots:\n  - output: b.mov\n", r"shot 1 has no input"),
    ("shots:\n  - input: a.mov\n", r"shot 1 \(a\) has no output"),
    ("shots:\n  - input: a.mov\n    output: b.mov\n    frames: 100-10\n", r"ends before it starts"),
    ("shots:\n  - input: a.mov\n    output: b.mov\n    frames: ten\n", r"not valid; use \"1001\""),
    ("shots:\n  - input: a.mov\n    output: b.png\n    frames: 1-10\n", r"is a still but frames 1-10"),
    ("shots:\n  - input: a.mov\n    output: b.mov\n    intensity: loud\n", r"intensity must be a number"),
    ("shots:\n  - input: a.mov\n    output: b.mov\n    face: first\n", r"face must be a whole number"),
    ("shots:\n  - input: a.mov\n    output: b.mov\n    speech: mumble\n", r"valid: auto, preserve, free"),
    ("shots:\n  - input: a.mov\n    output: b.txt\n", r"not a movie, still or image sequence; valid: movies"),
    ("shots:\n  - input: a.mov\n    output: a.mov\n", r"would overwrite the input"),
    ("shots:\n  - input: a.mov\n    output: o/{shot}.mov\n", r"uses \{shot\}; valid fields: \{name\}, \{stem\}"),
    ("shots:\n  - {name: x, input: a.mov, output: b.mov}\n  - {name: x, input: c.mov, output: d.mov}\n",
     r"both called 'x'"),
    ("shots:\n  - {input: a.mov, output: o.mov}\n  - {input: c.mov, output: o.mov}\n", r"both write"),
    ("shots:\n  - {input: a.mov, output: b.####.png}\n  - {input: b.####.png, output: c.mov}\n",
     r"which is the input of shot"),
    ("version: 2\nshots: []\n", r"version 2 is not supported; valid: 1"),
    ("shots: []\n", r"non-empty list"),
    ("defaults: {input: a.mov}\nshots:\n  - {input: a.mov, output: b.mov}\n", r"defaults cannot set input"),
    ("shots:\n  - input: a.mov\n    output: [b.mov]\n", r"output must be text"),
    ("shots: [\n", r"not valid YAML"),
])
def test_bad_yaml_is_refused_with_a_named_error(tmp_path, text, pattern):
    with pytest.raises(ShotListError, match=pattern) as err:
        read_from_file(write(tmp_path, "bad.yaml", text))
    assert isinstance(err.value, InvalidParameterError) and err.value.exit_code == 2
    assert "bad.yaml" in str(err.value)


def test_bad_csv_is_refused(tmp_path):
    with pytest.raises(ShotListError, match=r"unknown column\(s\) 'mood'; valid: name, input, output"):
        read_from_file(write(tmp_path, "a.csv", "input,output,mood\na.mov,b.mov,happy\n"))
    with pytest.raises(ShotListError, match=r"row 2: frames: frame range '5-1' ends before it starts"):
        read_from_file(write(tmp_path, "b.csv", "input,output,frames\na.mov,b.mov,5-1\n"))
    with pytest.raises(ShotListError, match="header but no shots"):
        read_from_file(write(tmp_path, "c.csv", "input,output\n"))


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(InputNotFoundError):
        read_from_file(tmp_path / "nope.yaml")
    with pytest.raises(UnsupportedFormatError, match=r"valid: \.yaml, \.yml, \.csv, \.otio"):
        read_from_file(write(tmp_path, "shots.json", "{}"))


def test_default_names_do_not_clash_and_selection(tmp_path):
    sl = read_from_string("shots:\n  - {input: a.mov, output: o1.mov}\n  - {input: a.mov, output: o2.mov}\n"
                          "  - {name: a_2, input: a.mov, output: o3.mov}\n", "yaml", base=tmp_path)
    assert [s.name for s in sl] == ["a", "a_3", "a_2"]
    assert [s.name for s in sl.select(["a_2"])] == ["a_2"]
    with pytest.raises(ShotListError, match="no shot called 'zz'.*shots: a, a_3, a_2"):
        sl.select(["zz"])


def test_every_documented_key_is_accepted(tmp_path):
    values = {"name": "s", "input": "a.mov", "output": "b.mov", "frames": "0-9", "emotion": "reference",
              "intensity": 1, "reference": "r.mov", "reference_frames": "3-8", "reference_neutral_frame": 3,
              "keys": "0:neutral:0,9:happy:1", "curve": "c.csv", "regions": "brows", "speech": "free",
              "neutral_frame": 2, "face": 0, "consent": "c", "actor_footage": "x.mov", "holdout_matte": "m.png",
              "shutter_angle": 90, "renderer": "neural", "checkpoint": "actor.ckpt", "colorspace": "ARRI LogC4",
              "ignore_cuts": True}
    assert set(values) == set(SHOT_KEYS)
    text = "shots:\n  - " + "\n    ".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {v}" for k, v in values.items())
    (shot,) = read_from_string(text, "yaml", base=tmp_path).shots
    assert shot.as_dict()["keys"] == "0:neutral:0,9:happy:1" and shot.reference_neutral_frame == 3
    assert shot.curve == str(tmp_path / "c.csv") and shot.intensity == 1.0
    assert (shot.actor_footage, shot.holdout_matte, shot.shutter_angle) == (
        (str(tmp_path / "x.mov"),), str(tmp_path / "m.png"), 90.0)
    assert (shot.renderer, shot.checkpoint) == ("neural", str(tmp_path / "actor.ckpt"))
    assert shot.session_options()["checkpoint"] == str(tmp_path / "actor.ckpt")
    assert shot.session_options()["colorspace"] == "ARRI LogC4" and "colorspace" not in shot.instruction()
    assert shot.session_options()["ignore_cuts"] is True


CONTENT_YAML = """defaults:
  shutter_angle: 90
shots:
  - name: sh010
    input: plates/sh010.####.exr
    output: out/sh010.####.exr
    actor_footage: [takes/a.mov, /abs/elsewhere/b.####.exr]
    holdout_matte: mattes/sh010_hands.####.png
  - name: sh020
    input: plates/sh020.mov
    output: out/sh020.mov
    shutter_angle: 172.8
    ignore_cuts: false
  - name: sh030
    input: plates/sh030.mov
    output: out/sh030.mov
    ignore_cuts: yes
"""


def test_render_keys_per_shot(tmp_path):
    """actor_footage (a list), holdout_matte and shutter_angle (and renderer/checkpoint, above): paths made absolute,
    the session parameters the daemon takes, and each format writes them back (CSV: paths separated by ';')."""
    sl = read_from_file(write(tmp_path, "shots.yaml", CONTENT_YAML))
    a, b, c = sl.shots
    assert (a.ignore_cuts, b.ignore_cuts, c.ignore_cuts) == (None, None, True)     # false is the default: unset
    assert c.session_options() == {"shutter_angle": 90.0, "ignore_cuts": True}
    assert "ignore_cuts" not in b.session_options()
    assert a.actor_footage == (str(tmp_path / "takes" / "a.mov"), "/abs/elsewhere/b.####.exr")
    assert a.holdout_matte == str(tmp_path / "mattes" / "sh010_hands.####.png")
    assert (a.shutter_angle, b.shutter_angle, b.actor_footage, b.holdout_matte) == (90.0, 172.8, None, None)
    assert a.session_options() == {"actor_footage": [str(tmp_path / "takes" / "a.mov"), "/abs/elsewhere/b.####.exr"],
                           "holdout_matte": str(tmp_path / "mattes" / "sh010_hands.####.png"), "shutter_angle": 90.0}
    assert "holdout_matte" not in a.instruction() and b.session_options() == {"shutter_angle": 172.8}
    for ext in ("yaml", "csv", "otio"):
        again = read_from_file(write_to_file(sl, tmp_path / f"copy.{ext}"))
        assert again.shots == sl.shots, ext
    assert "takes/a.mov;/abs/elsewhere/b.####.exr" in (tmp_path / "copy.csv").read_text()
    csv = read_from_string("input,output,actor_footage\na.mov,o.mov, x.mov ; y.mov \n", "csv", base=tmp_path)
    assert csv.shots[0].actor_footage == (str(tmp_path / "x.mov"), str(tmp_path / "y.mov"))
    csv = read_from_string("input,output,ignore_cuts\na.mov,o.mov,TRUE\nb.mov,p.mov,no\nc.mov,q.mov,\n", "csv",
                           base=tmp_path)
    assert [s.ignore_cuts for s in csv.shots] == [True, None, None]


@pytest.mark.parametrize("extra, pattern", [
    ("shutter_angle: 400", r"shot 1: shutter_angle must be a shutter angle in degrees \(0..360\), got 400"),
    ("shutter_angle: wide", "shutter_angle must be a shutter angle"),
    ("shutter_angle: true", "shutter_angle must be a shutter angle"),
    ("ignore_cuts: maybe", r"shot 1: ignore_cuts must be true or false, got 'maybe'"),
    ("ignore_cuts: 2", "ignore_cuts must be true or false, got 2"),
    ("holdout_matte: mattes/hands", r"holdout_matte .*mattes/hands is not a movie, still or image sequence"),
    ("actor_footage: {a: 1}", "actor_footage must be a list of paths"),
    ("actor_footage: [a.mov, 3]", "actor_footage must be a list of paths"),
    ("holdout_matte: o.mov", "o.mov"),                      # the shot's output would overwrite its own matte
    ("renderer: fancy", r"renderer 'fancy' is not valid; valid: geometry, neural"),
    ("renderer: neural", "renderer neural needs a checkpoint"),
    ("checkpoint: a.ckpt", "a checkpoint is for renderer: neural"),
])
def test_bad_render_keys_are_refused(tmp_path, extra, pattern):
    with pytest.raises(ShotListError, match=pattern):
        read_from_string(f"shots:\n  - {{input: a.mov, output: o.mov, {extra}}}\n", "yaml", base=tmp_path)


def test_an_output_may_not_overwrite_another_shots_matte_or_actor_footage(tmp_path):
    for key, what in (("holdout_matte: m.png", "the holdout matte"), ("actor_footage: [x.mov, m.png]",
                                                                      "actor footage")):
        with pytest.raises(ShotListError, match=f"shot b writes .*m.png, which is {what} of shot a"):
            read_from_string(f"shots:\n  - {{name: a, input: a.mov, output: o.mov, {key}}}\n"
                             f"  - {{name: b, input: b.png, output: m.png}}\n", "yaml", base=tmp_path)


def test_cli_reports_a_bad_shot_list_in_one_line(tmp_path, capsys):
    from ned_fx.cli import main

    path = write(tmp_path, "bad.yaml", "shots:\n  - input: a.mov\n    output: b.mov\n    mood: happy\n")
    assert main(["batch", str(path), "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ned-fx: error:") and "unknown key(s) 'mood'" in err[0]


def test_check_reads_real_inputs_without_a_daemon(tmp_path, capsys):
    from ned_fx.cli import main

    clip = footage("d12.mp4")
    path = write(tmp_path, "shots.yaml", f"shots:\n  - {{name: a, input: {clip}, output: o/a.####.png, frames: 0-9, "
                 f"shutter_angle: 90, actor_footage: [{footage('d3.mp4')}]}}\n"
                 f"  - {{name: b, input: {clip}, output: o/b.####.png, emotion: hapy}}\n"
                 f"  - {{name: c, input: {tmp_path / 'missing.mov'}, output: o/c.mov}}\n")
    assert main(["batch", str(path), "--check"]) == 2          # a shot list with a shot that cannot run: 2 (documented)
    out = capsys.readouterr().out
    assert "a: ok: movie" in out and "0-9 (10 frames)" in out
    assert f"; actor_footage {footage('d3.mp4')}; shutter_angle 90.0" in out, out     # the session's options shown
    assert "b: invalid_parameter:" in out and "happy" in out          # the valid emotions are listed
    assert "c: not_found:" in out
    assert not (tmp_path / "o").exists(), "--check writes nothing"
    assert isinstance(ShotListError("x"), NedFxError)


def test_every_daemon_session_parameter_has_a_shot_list_key():
    """The hosts run their shots through ``ned-fx batch`` (the Resolve bridge's runner builds a shot list from the
    dialog's values): a parameter the daemon takes that a shot list cannot hold would be dropped without a word
    (the renderer, the holdout matte, the shutter angle… were, before they became shot keys). ``keys`` and the
    emotion are the instruction; host-side knobs (``mix``) never reach the daemon."""
    from ned_fx.daemon.server import describe
    from ned_fx.daemon.sessions import OPEN_KEYS
    from ned_fx.hosts.params import knob_specs

    specs = knob_specs(describe({"engine": "pytorch"})["parameters"])
    assert {s.name for s in specs if s.host_side} == {"mix"}
    assert {s.name for s in specs if not s.host_side} - set(SHOT_KEYS) == set()
    # ... and every option an open request may carry (the shot's source and who asks are the runner's own)
    assert set(OPEN_KEYS) - {"path", "user", "host", "application"} - set(SHOT_KEYS) == set()
