"""Shared fixtures: the real footage in ../shared/footage (never copied into the repo), a warm tracker, and
MediaPipe's own runtime as the test-only reference."""

from __future__ import annotations

import functools
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _track_cache_of_the_test_run(tmp_path_factory):
    """`ned-fx edit` caches tracks: the test run keeps its own cache, never the user's."""
    old = os.environ.get("NED_FX_CACHE")
    os.environ["NED_FX_CACHE"] = str(tmp_path_factory.mktemp("cache") / "cache")
    yield
    if old is None:
        os.environ.pop("NED_FX_CACHE", None)
    else:
        os.environ["NED_FX_CACHE"] = old


@pytest.fixture(scope="session", autouse=True)
def _audit_log_of_the_test_run(tmp_path_factory):
    """Edits and daemons audit by default: the test run writes its own log, never the user's."""
    import os

    path = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    old = os.environ.get("NED_FX_AUDIT_LOG")
    os.environ["NED_FX_AUDIT_LOG"] = str(path)
    yield path
    if old is None:
        os.environ.pop("NED_FX_AUDIT_LOG", None)
    else:
        os.environ["NED_FX_AUDIT_LOG"] = old


@pytest.fixture(autouse=True)
def _torch_threads_kept():
    """A test that changes torch's thread count must put it back: the cached tracks (``our_track``) and every
    bit-for-bit comparison depend on it (a float sum's order changes with the threads), so a leaked count makes
    a later test fail in whatever order the tests run. A leak is put right and fails the test that made it."""
    import sys

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None and before is not None and torch.get_num_threads() != before:
        now = torch.get_num_threads()
        torch.set_num_threads(before)
        pytest.fail(f"the test left torch on {now} thread(s), not {before}")


#: the shared real footage: $NED_FX_FOOTAGE, else ../shared/footage beside the repo (dev machines and CI)
FOOTAGE = Path(os.environ.get("NED_FX_FOOTAGE") or REPO.parent / "shared" / "footage").resolve()
#: the reason of every skip for want of footage (the run's last line counts them)
NO_FOOTAGE = "shared footage"
CLIPS = ("WDA_AlexandriaOcasioCortez_000.mp4", "d12.mp4", "d3.mp4")
TALKING_CLIPS = ("WDA_AlexandriaOcasioCortez_000.mp4", "d12.mp4")
PHOTOS = ("d19.jpg", "d8.jpg", "people_0.png")


def footage(name: str) -> Path:
    """A shared clip or photo. Missing: the test is skipped (counted in the run's last line), or fails under CI
    (``CI`` set), where a run without the footage would pass without testing anything real."""
    path = FOOTAGE / name
    if not path.is_file():
        message = (f"{NO_FOOTAGE} {path} is not here (set NED_FX_FOOTAGE to the folder that holds "
                   f"{name}; it sits beside the repo at ../shared/footage on dev machines and CI)")
        if os.environ.get("CI"):
            pytest.fail(message + "; CI needs it", pytrace=False)
        pytest.skip(message)
    return path


def pytest_terminal_summary(terminalreporter):
    """One clear line at the end when tests were skipped for want of the shared footage; the stacks of a test the
    hang watchdog ended."""
    folder = os.environ.get("NED_FX_TEST_HANGS")
    for dump in sorted(Path(folder).glob("*.txt")) if folder and not os.environ.get("PYTEST_XDIST_WORKER") else []:
        terminalreporter.write_line(dump.read_text(errors="replace"), red=True)
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if NO_FOOTAGE in str(getattr(r, "longrepr", ""))]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} test(s) skipped: the shared footage is not at {FOOTAGE}. Point NED_FX_FOOTAGE at the "
            f"folder with the clips and photos (see ../shared/footage/SOURCES.md) and run again.", yellow=True)


@pytest.fixture
def start_daemon():
    """``start_daemon(*args, **kwargs)`` starts a :class:`daemons.Daemon`; every one it started is killed when the
    test ends, on every path (a skip or a failure included)."""
    import daemons

    made = []

    def start(*args, **kwargs):
        d = daemons.Daemon(*args, **kwargs)
        made.append(d)
        return d

    yield start
    for d in made:
        d.kill()


@pytest.fixture(scope="session", autouse=True)
def _no_daemon_outlives_the_run():
    """Every daemon a test starts is stopped on every path: at the end of the run none may still be alive."""
    yield
    import daemons

    alive = [d for d in daemons.STARTED if d.proc.poll() is None]
    for d in alive:
        d.kill()
    assert not alive, f"{len(alive)} test daemon(s) were still running at the end of the run: " + \
        ", ".join(" ".join(d.proc.args[3:6]) for d in alive)


@functools.lru_cache(maxsize=None)
def decode_rgb(name: str) -> tuple[np.ndarray, float]:
    """All frames of a shared clip or photo as RGB8 (FxHxWx3) and its fps (0 for photos)."""
    from ned_fx.media import open_media, to_display_rgb8

    with open_media(footage(name)) as src:
        return np.stack([to_display_rgb8(f) for f in src]), float(src.fps or 0.0)


def encoded_movie(path: Path, pictures, codec: str = "libx264", pix_fmt: str = "yuv420p", times_ms=None,
                  rotation: int = 0, pixel_aspect=None, audio_from: Path | None = None, options=None,
                  colour=None) -> Path:
    """A movie made with PyAV's own encoder and muxer (not ned_fx's writer), as a camera, a phone or a finishing
    house delivers one: ``pictures`` (RGB8, or uint16 RGB for a 10-bit ``pix_fmt``) shown at ``times_ms``
    (milliseconds at a 1/1000 time base: a variable frame rate; None: 25 frames/s), stored turned against a display
    ``rotation`` (degrees counter-clockwise) that shows them upright, tagged with ``pixel_aspect`` (a Fraction), and
    with ``audio_from``'s audio (from its start, as long as the pictures last) as AAC; ``colour``: FFmpeg's
    ``(matrix, primaries, transfer)`` numbers to encode with and tag (e.g. ``(9, 9, 18)``, BT.2020 HLG)."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as out:
        video, audio = None, None
        for i, up in enumerate(pictures):
            coded = np.ascontiguousarray(np.rot90(up, -(rotation // 90)))
            if video is None:
                video = out.add_stream(codec, rate=25)
                video.width, video.height, video.pix_fmt = coded.shape[1], coded.shape[0], pix_fmt
                video.options = dict(options or {})
                video.set_display_rotation(rotation)
                if pixel_aspect is not None:
                    video.codec_context.sample_aspect_ratio = pixel_aspect
                if times_ms is not None:
                    video.codec_context.time_base = Fraction(1, 1000)
                if colour is not None:
                    cc = video.codec_context
                    cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = (*colour, 1)
                if audio_from is not None:
                    with av.open(str(audio_from)) as a:
                        rate = a.streams.audio[0].codec_context.sample_rate
                    audio = out.add_stream("aac", rate=rate, layout="stereo")
            frame = av.VideoFrame.from_ndarray(coded, format="rgb48le" if coded.dtype == np.uint16 else "rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = int(times_ms[i]), Fraction(1, 1000)
            else:
                frame.pts = i
            if codec != "png":
                from ned_fx.media.readers import swscale_matrix

                matrix = swscale_matrix(colour[0] if colour else 1)
                frame = frame.reformat(format=pix_fmt, src_colorspace=matrix, dst_colorspace=matrix,
                                       src_color_range=2, dst_color_range=1)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None:
            end = ((times_ms[-1] + 40) / 1000) if times_ms is not None else len(pictures) / 25
            with av.open(str(audio_from)) as a:
                for frame in a.decode(audio=0):
                    if frame.pts * frame.time_base >= end:
                        break
                    frame.pts = None
                    for packet in audio.encode(frame):
                        out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
    return path


def phone_movie(path: Path, pictures, rotation: int, codec: str = "libx264", pixel_aspect=None) -> Path:
    """A phone's portrait video: upright ``pictures`` stored turned, tagged with the display ``rotation`` that shows
    them upright (``codec="png"``: lossless RGB)."""
    return encoded_movie(path, pictures, codec, "rgb24" if codec == "png" else "yuv420p", rotation=rotation,
                         pixel_aspect=pixel_aspect)


def ten_bit_levels(pictures) -> list:
    """8-bit RGB ``pictures`` as uint16 10-bit-style pictures with sub-8-bit steps across them (a ramp of 0-180 of
    65535 from left to right): what an 8-bit path would band."""
    return [np.clip(pic.astype(np.float64) * 257 + np.linspace(0.0, 180.0, pic.shape[1])[None, :, None], 0, 65535)
            .astype(np.uint16) for pic in pictures]


def ten_bit_prores(path: Path, pictures16, colour=None) -> Path:
    """A 10-bit ProRes 422 HQ movie of uint16 RGB pictures (``colour``: its tags, as :func:`encoded_movie`)."""
    return encoded_movie(path, pictures16, "prores_ks", "yuv422p10le", options={"profile": "3"}, colour=colour)


def vfr_movie(path: Path, pictures, times_ms, audio_from: Path | None = None) -> Path:
    """A phone's variable-frame-rate movie: ``pictures`` (RGB8) shown at ``times_ms`` (H.264), with
    ``audio_from``'s audio."""
    return encoded_movie(path, pictures, times_ms=times_ms, audio_from=audio_from)


@functools.lru_cache(maxsize=None)
def mediapipe_landmarks(name: str) -> np.ndarray:
    """MediaPipe's own face mesh (0.10.21 runtime, refine off) on a shared clip (video mode) or photo
    (static mode): Fx468x3 in pixels, NaN where it found no face."""
    frames, fps = decode_rgb(name)
    return mediapipe_on_frames(frames, video=fps != 0)


def mediapipe_on_frames(frames: np.ndarray, video: bool = True, refine: bool = False) -> np.ndarray:
    """MediaPipe's face mesh on RGB8 frames (FxHxWx3): Fx468x3 pixels (Fx478x3 with ``refine``: its attention
    mesh, irises included), NaN where no face. An independent tracker for judging our outputs."""
    try:
        import mediapipe as mp
    except ImportError as exc:  # the README's test command installs it; without it these tests cannot judge
        raise RuntimeError("MediaPipe's runtime is the tests' reference: run `install/setup.sh --test`") from exc
    h, w = frames.shape[1:3]
    out = np.full((len(frames), 478 if refine else 468, 3), np.nan)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=not video, max_num_faces=1,
                                         refine_landmarks=refine) as mesh:
        for i, rgb in enumerate(frames):
            result = mesh.process(np.ascontiguousarray(rgb))
            if result.multi_face_landmarks:
                out[i] = [[p.x * w, p.y * h, p.z * w] for p in result.multi_face_landmarks[0].landmark]
    return out


@pytest.fixture(scope="session")
def tracker():
    from ned_fx.tracking import FaceTracker, TrackerConfig

    return FaceTracker(TrackerConfig(device="cpu"))


@functools.lru_cache(maxsize=None)
def our_track(name: str, batch_size: int = 1, smoothing: float | None = None, first_crop_passes: int | None = None):
    """Our tracker on a shared clip/photo (default config unless told), cached for the session.
    ``first_crop_passes=0``: MediaPipe's own procedure (a face's first crop is the detector's box only)."""
    from ned_fx.tracking import TrackerConfig
    from ned_fx.tracking.tracker import assemble_track

    cfg = TrackerConfig(device="cpu", batch_size=batch_size,
                        **({} if smoothing is None else {"smoothing": smoothing}))
    frames, fps = decode_rgb(name)
    # smoothing is applied when the per-frame detections are assembled (tracker.assemble_track), never to what the
    # next frame's crop is taken from: one tracking pass serves every smoothing strength
    seen = _seen(name, batch_size, first_crop_passes)
    return assemble_track(seen, np.arange(len(frames)), frames.shape[2], frames.shape[1], fps, cfg)


@functools.lru_cache(maxsize=None)
def _seen(name: str, batch_size: int, first_crop_passes: int | None = None) -> list:
    from ned_fx.tracking import FaceTracker, TrackerConfig

    cfg = TrackerConfig(device="cpu", batch_size=batch_size,
                        **({} if first_crop_passes is None else {"first_crop_passes": first_crop_passes}))
    tr = _trackers.setdefault(cfg, FaceTracker(cfg, engines=_engines()))
    return list(tr.iter_track(iter(decode_rgb(name)[0])))


_trackers: dict = {}


#: Seconds a test may run before the hang watchdog ends its process: past pytest-timeout's own limit (pyproject),
#: which raises in the main thread, for a hang that outlives that (a teardown that joins a thread stuck for good).
HANG_S = 420.0
_running: dict = {}


def pytest_runtest_logstart(nodeid, location):
    _running.update(nodeid=nodeid, since=time.monotonic())
    if "watchdog" not in _running:
        _running["watchdog"] = threading.Thread(target=_watch_for_hangs, name="test-hang-watchdog", daemon=True)
        _running["watchdog"].start()


def pytest_runtest_logfinish(nodeid, location):
    _running.update(nodeid=None, since=None)


def _watch_for_hangs() -> None:
    """A test that runs past HANG_S: every thread's stack on stderr, then this (worker) process ends, so that the
    run reports it (xdist: "worker crashed", the test failed) and goes on instead of hanging until CI's limit."""
    import faulthandler
    import sys

    while True:
        time.sleep(5.0)
        since, nodeid = _running.get("since"), _running.get("nodeid")
        if since is not None and time.monotonic() - since > HANG_S:
            folder = os.environ.get("NED_FX_TEST_HANGS") if os.environ.get("PYTEST_XDIST_WORKER") else None
            with open(Path(folder) / f"{os.getpid()}.txt" if folder else "/dev/stderr", "w") as out:
                out.write(f"HANG: {nodeid} ran past {HANG_S:g}s; every thread's stack:\n")
                out.flush()
                faulthandler.dump_traceback(file=out, all_threads=True)
            sys.stderr.flush()
            os._exit(70)


@functools.lru_cache(maxsize=None)
def _engines():
    from ned_fx.tracking.engine import load_engines

    return load_engines("cpu")


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): one worker per core this process may run on, at most 4 (each holds torch,
    the engines and its files' decoded clips: ~1-2 GB)."""
    return max(1, min(4, _cores()))


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # pragma: no cover - not Linux
        return os.cpu_count() or 1


def pytest_unconfigure(config):
    folder = os.environ.get("NED_FX_TEST_HANGS")
    if folder and not os.environ.get("PYTEST_XDIST_WORKER"):
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def pytest_configure(config):
    """In a worker of ``-n`` (pyproject's addopts) the libraries' thread pools take this worker's share of the cores
    (``OMP_NUM_THREADS``, read when torch starts; a value the user set is kept): workers x threads = cores, as the
    product itself keeps to half the cores by default (ned_fx.threads)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):          # the hang watchdog's stack dumps (see HANG_S)
        import tempfile

        os.environ["NED_FX_TEST_HANGS"] = tempfile.mkdtemp(prefix="ned-fx-test-hangs-")
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, _cores() // int(workers)))
