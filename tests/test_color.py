"""The tracker's picture of scene-linear and log plates through OpenColorIO (issue 4: "the tracker may look at a
display-referred copy, via OpenColorIO where the plate is scene-linear"). A real photo is re-encoded into ACEScg
(float EXR) and ARRI LogC4 (16-bit TIFF) with OpenColorIO's built-in studio config; read back and shown through the
config's un-tone-mapped sRGB view it must look like the photo again, and the tracker must find the same face."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import decode_rgb
from ned_fx.errors import InvalidParameterError
from ned_fx.media import Frame, open_media, write_image
from ned_fx.media.color import BUILTIN_CONFIG, colorspaces, display_view_for
from ned_fx.pipeline import track_media
from ned_fx.tracking import TrackerConfig

VIEW = "sRGB - Display/Un-tone-mapped"


def _encode(rgb8: np.ndarray, colorspace: str) -> np.ndarray:
    """sRGB picture → ``colorspace`` values (float32), the inverse of the display view."""
    import PyOpenColorIO as ocio

    config = ocio.Config.CreateFromFile(BUILTIN_CONFIG)
    t = ocio.DisplayViewTransform(src=colorspace, display="sRGB - Display", view="Un-tone-mapped",
                                  direction=ocio.TRANSFORM_DIR_INVERSE)
    cpu = config.getProcessor(t).getDefaultCPUProcessor()
    values = np.ascontiguousarray(rgb8.astype(np.float32) / 255.0)
    cpu.applyRGB(values)
    return values


@pytest.fixture(scope="module")
def photo():
    return decode_rgb("people_0.png")[0][0]


@pytest.fixture(autouse=True)
def _no_studio_ocio(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)


def test_acescg_exr_through_ocio_looks_like_the_photo_and_tracks_the_same(tmp_path, photo):
    plate = tmp_path / "plate.exr"
    write_image(plate, Frame.from_array(_encode(photo, "ACEScg").astype(np.float16)))
    cfg = TrackerConfig(colorspace="ACEScg", display_view=VIEW)
    view = display_view_for(cfg.colorspace, cfg.ocio_config, cfg.display_view)
    with open_media(plate) as src:
        frame = next(iter(src))
    assert frame.pixels.dtype == np.float16
    shown = view(frame.pixels[..., :3])
    assert np.abs(shown.astype(int) - photo).mean() < 1.5 and np.percentile(np.abs(shown.astype(int) - photo), 99) <= 6
    # taken as linear Rec.709 (the default without OCIO) the colours are wrong: ACEScg primaries are wider
    from ned_fx.media import to_display_rgb8

    naive = to_display_rgb8(frame)
    assert np.abs(naive.astype(int) - photo).mean() > 3 * np.abs(shown.astype(int) - photo).mean()
    ours = track_media(plate, cfg)
    ref = track_media(_png(tmp_path, photo))
    iod = np.linalg.norm(ref.landmarks[0, 33, :2] - ref.landmarks[0, 263, :2])
    assert ours.found[0] and np.abs(ours.landmarks[0, :, :2] - ref.landmarks[0, :, :2]).mean() < 0.01 * iod


def test_log_tiff_with_explicit_colorspace(tmp_path, photo):
    plate = tmp_path / "plate.tif"
    log = np.clip(_encode(photo, "ARRI LogC4"), 0, 1)
    write_image(plate, Frame.from_array((log * 65535 + 0.5).astype(np.uint16)))
    view = display_view_for("ARRI LogC4", "", VIEW)
    with open_media(plate) as src:
        frame = next(iter(src))
    shown = view(frame.pixels[..., :3])
    assert np.abs(shown.astype(int) - photo).mean() < 2.0
    # a log plate taken as display-referred is flat and pale: far from the photo
    from ned_fx.media import to_display_rgb8

    assert np.abs(to_display_rgb8(frame).astype(int) - photo).mean() > 15
    assert view.applies_to(np.uint16) and not display_view_for("auto", BUILTIN_CONFIG).applies_to(np.uint16)


def test_auto_without_ocio_is_the_builtin_path_and_names_are_checked(monkeypatch):
    assert display_view_for("auto", "", "") is None
    monkeypatch.setenv("OCIO", BUILTIN_CONFIG)
    auto = display_view_for("auto", "", "")
    assert auto is not None and auto.colorspace == "ACEScg" and auto.float_only      # the config's scene_linear
    with pytest.raises(InvalidParameterError, match="ACEScg"):                         # lists the valid names
        display_view_for("ACEScgg", "", "")
    with pytest.raises(InvalidParameterError, match="views: "):
        display_view_for("ACEScg", "", "sRGB - Display/Nope")
    with pytest.raises(InvalidParameterError, match="cannot read the OpenColorIO config"):
        display_view_for("ACEScg", "/nonexistent/config.ocio", "")
    assert "ARRI LogC4" in colorspaces()


def _png(tmp_path, photo):
    path = tmp_path / "photo.png"
    write_image(path, Frame.from_array(photo))
    return path


def test_the_daemon_tracks_a_shot_in_its_colour_space(tmp_path, photo):
    """``open(colorspace=…)``: a Nuke comp in ACEScg is analysed through OpenColorIO; an unknown name is refused."""
    from daemons import Daemon
    from ned_fx.client import Client, DaemonError

    plate = tmp_path / "plate.exr"
    write_image(plate, Frame.from_array(_encode(photo, "ACEScg").astype(np.float16)))
    d = Daemon(roots=[tmp_path], tmp=tmp_path)
    try:
        with Client(d.endpoint, timeout=60) as c:
            best = c.describe()["engine"]["best_available"]     # under the default --device auto: why the CPU
            assert best["backend"] == "torch-cpu" and "no CUDA device" in best["reason"], best
            with pytest.raises(DaemonError, match="ACEScg"):
                c.open(str(plate), colorspace="ACEScgg", emotion="happy")
            shot = c.open(str(plate), colorspace="ACEScg", emotion="happy")
            shot.wait(timeout=300)
            out, reply = shot.render(0, with_info=True)
            assert reply.result["reason"] is None and out.dtype == np.float16
            # the colour space is part of the analysis: the same shot opened again in it is the cached analysis,
            # opened without it (read as linear Rec.709) is another analysis
            again = c.open(str(plate), colorspace="ACEScg", emotion="happy")
            assert again.wait(timeout=300)["cached"]
            plain = c.open(str(plate), emotion="happy")
            assert not plain.wait(timeout=300)["cached"]
    finally:
        d.kill()
