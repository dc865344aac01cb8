"""Stage 4, compositing: identity is exact in every pixel type, only the colour channels inside the region box
change (outside it, and alpha/extra channels everywhere, are bit-exact copies), floats stay float and
unclipped, the mask covers the face (both positions) but not the hairline, the colour match and the
multi-band blend behave, and a 4K plate only touches its face box.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, decode_rgb, our_track
from ned_fx import topology as T
from ned_fx.compositing import (Compositor, CompositorConfig, color_channel_indices, color_match, extract_region,
                                face_mask, laplacian_blend_delta)
from ned_fx.errors import InvalidParameterError, UnsupportedFormatError
from ned_fx.media import Frame
from ned_fx.rendering import GeometryRenderer, build_render_mesh, face_region_box


def _iod(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[T.EYE_OUTER_RIGHT, :2] - lm[T.EYE_OUTER_LEFT, :2]))


def _smile(src: np.ndarray) -> np.ndarray:
    """Mouth corners up 4% IOD, brows up 3% IOD (smooth Gaussian weights)."""
    dst = src.copy()
    iod = _iod(src)

    def bump(i, r):
        return np.exp(-(np.linalg.norm(src[:, :2] - src[i, :2], axis=1) / (r * iod)) ** 2)

    dst[:, 1] -= 0.04 * iod * np.maximum(bump(61, 0.18), bump(291, 0.18))
    dst[:, 1] -= 0.03 * iod * np.clip(bump(105, 0.22) + bump(334, 0.22), 0, 1)
    return dst


@pytest.fixture(scope="module")
def face():
    """people_0: RGB8 picture, tracked landmarks, a smile target, the renderer and the shot's mesh."""
    img = decode_rgb("people_0.png")[0][0]
    src = our_track("people_0.png").landmarks[0]
    return img, src, _smile(src), GeometryRenderer(), build_render_mesh(src)


def _edit(plate, src, dst, renderer, mesh, channels=None, compositor=None):
    """The pipeline's steps on any plate: box, crop (colour channels, float32), render, composite."""
    pixels = plate.pixels if isinstance(plate, Frame) else plate
    h, w = pixels.shape[:2]
    box = face_region_box(np.concatenate([src, dst]), w, h)
    off = np.array([box[0], box[1], 0.0])
    region = extract_region(plate, box, channels)
    rendered = renderer.render(region, src - off, dst - off, mesh)
    out = (compositor or Compositor()).composite(plate, rendered, box, dst, src, channels=channels)
    return out, box, region, rendered


def _outside(shape, box) -> np.ndarray:
    keep = np.ones(shape[:2], bool)
    keep[box[1]:box[3], box[0]:box[2]] = False
    return keep


def _plates(img: np.ndarray) -> dict[str, np.ndarray]:
    """The same picture as uint8, uint16, and scene-linear float16/float32 with highlights above 1."""
    linear = (img.astype(np.float32) / 255.0) ** 2.2 * 4.0
    return {"uint8": img, "uint16": img.astype(np.uint16) * 257, "float16": linear.astype(np.float16),
            "float32": linear}


# ---- identity and exactness ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["uint8", "uint16", "float16", "float32"])
def test_identity_edit_gives_the_plate_back_exactly(face, kind):
    img, src, _, renderer, mesh = face
    plate = _plates(img)[kind]
    out, _, region, rendered = _edit(plate, src, src, renderer, mesh)
    assert np.array_equal(rendered, region)
    assert out.dtype == plate.dtype and out.shape == plate.shape
    assert np.array_equal(out, plate)


@pytest.mark.parametrize("kind", ["uint8", "uint16", "float16", "float32"])
def test_real_edit_changes_only_colour_channels_inside_the_box(face, kind):
    """RGBA + Z frame: the edit changes R, G, B inside the box; outside the box every channel, and A and Z
    everywhere, are bit-identical. Floats stay float, values above 1 survive (no clipping); uint16 stays
    uint16 and agrees with the uint8 edit (within 1 level of 8 bits)."""
    img, src, dst, renderer, mesh = face
    base = _plates(img)[kind]
    rng = np.random.default_rng(7)
    h, w = img.shape[:2]
    alpha = rng.integers(0, 255, (h, w, 1)).astype(base.dtype) if base.dtype.kind == "u" else \
        rng.random((h, w, 1)).astype(base.dtype)
    depth = (rng.random((h, w, 1)) * 100).astype(base.dtype) if base.dtype.kind == "f" else alpha[..., ::-1]
    frame = Frame(number=1001, pixels=np.concatenate([base, alpha, depth], axis=2), channels=("R", "G", "B", "A", "Z"))
    before = frame.pixels.copy()
    out, box, _, _ = _edit(frame, src, dst, renderer, mesh)
    assert np.array_equal(frame.pixels, before), "the input must not be modified"
    assert out.dtype == base.dtype and out.shape == frame.pixels.shape
    keep = _outside(out.shape, box)
    assert np.array_equal(out[keep], before[keep])
    assert np.array_equal(out[..., 3:], before[..., 3:])
    changed = np.abs(out[..., :3].astype(np.float64) - before[..., :3]).max(axis=2) > 0
    assert changed.sum() > 500, "the edit should show"
    if kind.startswith("float"):
        inside = out[box[1]:box[3], box[0]:box[2], :3].astype(np.float32)
        assert np.isfinite(inside).all()
        assert inside.max() > 1.5, "scene-linear highlights must not be clipped"
        assert inside.min() >= -0.05 * float(base.max())          # multi-band ringing stays tiny
    if kind == "uint16":
        out8, _, _, _ = _edit(img, src, dst, renderer, mesh)
        assert np.abs(out[..., :3] / 257.0 - out8).max() <= 1.0 + 1e-6


def test_composite_frame_keeps_windows_and_metadata(face):
    img, src, dst, renderer, mesh = face
    h, w = img.shape[:2]
    frame = Frame(number=5, pixels=img.copy(), channels=("R", "G", "B"), data_window=(10, 20, 10 + w - 1, 20 + h - 1),
                  display_window=(0, 0, 600, 600), metadata={"owner": "test"})
    box = face_region_box(np.concatenate([src, dst]), w, h)
    off = np.array([box[0], box[1], 0.0])
    rendered = renderer.render(extract_region(frame, box), src - off, dst - off, mesh)
    new = Compositor().composite_frame(frame, rendered, box, dst, src)
    assert isinstance(new, Frame)
    assert (new.number, new.data_window, new.display_window, dict(new.metadata)) == \
        (5, frame.data_window, frame.display_window, {"owner": "test"})
    assert not np.array_equal(new.pixels, frame.pixels)


def test_grey_plate_edits_its_y_channel(face):
    img, src, dst, renderer, mesh = face
    grey = img.astype(np.float32).mean(axis=2, keepdims=True).astype(np.uint8)
    ya = np.concatenate([grey, np.full_like(grey, 200)], axis=2)
    assert color_channel_indices(None, 2) == (0,)
    out, box, region, _ = _edit(ya, src, dst, renderer, mesh)
    assert region.shape[2] == 1
    assert np.array_equal(out[..., 1], ya[..., 1])
    assert not np.array_equal(out[..., 0], ya[..., 0])
    assert np.array_equal(out[_outside(out.shape, box)], ya[_outside(out.shape, box)])


def test_nan_in_a_float_plate_does_not_spread(face):
    img, src, dst, renderer, mesh = face
    plate = _plates(img)["float32"].copy()
    y, x = src[1, :2].astype(int)[::-1]
    plate[y - 2:y + 2, x - 2:x + 2] = np.nan                     # a few bad pixels on the nose
    out, box, _, _ = _edit(plate, src, dst, renderer, mesh)
    bad = ~np.isfinite(out)
    assert bad[y - 2:y + 2, x - 2:x + 2].all()
    assert bad.sum() == 16 * 3, "NaN stays where it was and goes nowhere else"
    # NaN/inf from a renderer (a neural one may produce them) never reach the plate: the plate shows there
    h, w = img.shape[:2]
    box = face_region_box(np.concatenate([src, dst]), w, h)
    rendered = extract_region(img, box)
    rendered[40:44, 60:64] = np.nan
    rendered[50, 50] = np.inf
    clean = Compositor().composite(img, rendered, box, dst, src)
    assert np.array_equal(clean, img)


def test_box_partly_outside_the_plate_is_cut(face):
    img, src, dst, renderer, mesh = face
    h, w = img.shape[:2]
    box = face_region_box(np.concatenate([src, dst]), w, h)
    off = np.array([box[0], box[1], 0.0])
    rendered = renderer.render(extract_region(img, box), src - off, dst - off, mesh)
    wider = np.pad(rendered, ((5, 0), (5, 0), (0, 0)), mode="edge")  # the same region, 5 px more up and left
    out_a = Compositor().composite(img, rendered, box, dst, src)
    out_b = Compositor().composite(img[5:, 5:], wider[5:, 5:], (box[0] - 5, box[1] - 5, box[2] - 5, box[3] - 5),
                                   dst - [5, 5, 0], src - [5, 5, 0])
    assert out_b.shape == img[5:, 5:].shape
    edge = Compositor().composite(img, np.pad(rendered, ((0, 0), (0, 3), (0, 0)), mode="edge"),
                                  (box[0], box[1], box[2] + 3, box[3]), dst, src)
    assert edge.shape == img.shape
    assert np.abs(out_a.astype(int) - edge.astype(int)).max() <= 1


def test_errors_are_named_and_actionable(face):
    img, src, dst, renderer, mesh = face
    h, w = img.shape[:2]
    box = face_region_box(np.concatenate([src, dst]), w, h)
    region = extract_region(img, box)
    with pytest.raises(InvalidParameterError, match="region_box"):
        Compositor().composite(img, region[:-1], box, dst, src)
    with pytest.raises(InvalidParameterError):
        Compositor().composite(img, region, (10, 10, 5, 5), dst, src)
    zonly = Frame(number=0, pixels=np.zeros((8, 8, 1), np.float32), channels=("Z",))
    with pytest.raises(UnsupportedFormatError):
        extract_region(zonly, (0, 0, 4, 4))
    with pytest.raises(InvalidParameterError):
        CompositorConfig(feather=0)
    with pytest.raises(InvalidParameterError):
        Compositor().composite(img.astype(np.float64), region, box, dst, src)


# ---- the mask ------------------------------------------------------------------------------------------------------

def test_mask_covers_the_face_and_both_positions_but_not_the_hairline(face):
    img, src, _, _, _ = face
    h, w = img.shape[:2]
    moved = src.copy()
    moved[:, 0] += 0.4 * _iod(src)                                 # the target face somewhere else
    box = face_region_box(np.concatenate([src, moved]), w, h)
    compositor = Compositor()
    mask = compositor.mask(box, moved, src)
    off = np.array(box[:2])

    def at(p):
        x, y = (np.asarray(p[:2]) - off).astype(int)
        return mask[y, x]

    for lm in (src, moved):
        for i in (1, 13, 33, 263):                                 # nose, lips, eye corners: inside
            assert at(lm[i]) == 1.0
        top = lm[10, :2] + 0.02 * (lm[10, :2] - lm[152, :2])     # just above the oval's top: hairline
        assert at(top) < 0.2
    assert mask[0, 0] == 0.0 and mask[-1, -1] == 0.0
    only_target = compositor.mask(box, moved)
    cheek = tuple((src[234, :2] - off).astype(int)[::-1])           # the source's cheek: only the union has it
    assert only_target[cheek] < mask[cheek]
    # the soft edge is a smoothstep `feather` wide (25% IOD): it rises from 0.1 to 0.9 over ~61% of that
    row = mask[int(src[1, 1] - off[1]), : int(src[1, 0] - off[0])]
    rise = np.argmax(row > 0.9) - np.argmax(row > 0.1)
    assert 0.4 * 0.25 * _iod(src) <= rise <= 1.2 * 0.25 * _iod(src), rise
    small = face_mask((40, 30), src * 0.05, None, CompositorConfig(mask_cells=16))
    assert small.shape == (40, 30)


def test_forehead_shrink_moves_the_top_edge_down(face):
    img, src, _, _, _ = face
    h, w = img.shape[:2]
    box = face_region_box(src, w, h)
    off = np.array(box[:2])
    x, y = (src[10, :2] - off).astype(int)
    column = lambda cfg: Compositor(cfg).mask(box, src)[:, x]     # noqa: E731
    top_none = np.argmax(column(CompositorConfig(forehead_shrink=0.0, brow_margin=0.0)) > 0.5)
    top_some = np.argmax(column(CompositorConfig(forehead_shrink=0.15, brow_margin=0.0)) > 0.5)
    assert top_some - top_none >= 0.1 * np.linalg.norm(src[10, :2] - src[152, :2])


def test_raised_brows_stay_inside_the_full_strength_mask(face):
    """Brows raised by a fifth of the IOD (surprise at 1.5) lie where the mask is 1 in every band of the blend,
    so they show as rendered, not faded into the forehead's soft edge; without the brow margin they do not. (The
    outer parts, near the face's outline at the temples, fade with the outline's own soft edge.)"""
    from ned_fx.compositing.mask import _BROW_TOPS

    img, src, _, _, _ = face
    h, w = img.shape[:2]
    dst = src.copy()
    up = (src[10, :2] - src[152, :2]) / np.linalg.norm(src[10, :2] - src[152, :2])
    brows = list(_BROW_TOPS) + [46, 53, 52, 65, 55, 276, 283, 282, 295, 285]
    dst[brows, :2] += 0.2 * _iod(src) * up
    box = face_region_box(np.concatenate([src, dst]), w, h)
    off = np.array(box[:2], float)
    body = [105, 66, 107, 336, 296, 334]     # the brows' middles and heads (the outer parts reach the outline)
    tops = np.round(dst[body, :2] - off).astype(int)

    def at_brows(cfg, blur: int):      # the mask as the blend's band `blur` levels down sees it
        import cv2

        m = Compositor(cfg).mask(box, dst, src)
        for _ in range(blur):
            m = cv2.pyrUp(cv2.pyrDown(m), dstsize=(m.shape[1], m.shape[0]))
        return m[tops[:, 1], tops[:, 0]]

    assert at_brows(CompositorConfig(), 0).min() >= 0.99 and at_brows(CompositorConfig(), 2).min() >= 0.9
    assert at_brows(CompositorConfig(brow_margin=0.0), 0).min() < 0.8


# ---- blend and colour match ------------------------------------------------------------------------------------

def test_laplacian_blend_of_a_difference():
    rng = np.random.default_rng(3)
    delta = rng.normal(size=(97, 130, 3)).astype(np.float32)
    assert np.abs(laplacian_blend_delta(delta, np.ones((97, 130), np.float32), 5) - delta).max() < 1e-4
    assert not laplacian_blend_delta(delta, np.zeros((97, 130), np.float32), 5).any()
    assert not laplacian_blend_delta(np.zeros_like(delta), rng.random((97, 130)).astype(np.float32), 5).any()
    half = np.zeros((97, 130), np.float32)
    half[:, :65] = 1
    out = laplacian_blend_delta(np.ones_like(delta), half, 4)
    assert out[:, :50].min() > 0.95 and out[:, 80:].max() < 0.05   # a smooth seam between the halves
    assert laplacian_blend_delta(delta[:5, :5], np.ones((5, 5), np.float32), 5).shape == (5, 5, 3)


def test_color_match_recovers_a_grade(face):
    """A rendered region graded by gain 1.1 and offset +6 (what a neural renderer might do): the match finds
    the inverse from the ring and the composite lands within 2 levels (mean) of an ungraded edit."""
    img, src, dst, renderer, mesh = face
    h, w = img.shape[:2]
    box = face_region_box(np.concatenate([src, dst]), w, h)
    off = np.array([box[0], box[1], 0.0])
    rendered = renderer.render(extract_region(img, box), src - off, dst - off, mesh)
    graded = rendered * 1.1 + 6.0
    mask = Compositor().mask(box, dst, src)
    gain, offset = color_match(graded, extract_region(img, box), mask)
    assert np.allclose(gain, 1 / 1.1, atol=0.03) and np.allclose(offset, -6 / 1.1, atol=3)
    plain = Compositor().composite(img, rendered, box, dst, src)
    matched = Compositor(CompositorConfig(color_match=True)).composite(img, graded, box, dst, src)
    unmatched = Compositor(CompositorConfig(color_match=False)).composite(img, graded, box, dst, src)
    face_px = mask > 0.5
    err = lambda a: np.abs(a[box[1]:box[3], box[0]:box[2]].astype(float)      # noqa: E731
                           - plain[box[1]:box[3], box[0]:box[2]])[face_px].mean()
    assert err(matched) < 2.0 < 5.0 < err(unmatched)
    ones, zeros = color_match(rendered, rendered, mask)
    assert (ones == 1).all() and (zeros == 0).all()


# ---- 4K and performance report ---------------------------------------------------------------------------------

def test_4k_plate_only_touches_the_face_box(face):
    """people_0 padded into a 3840x2160 plate: the edit touches only the face box (checked bit for bit);
    the time is printed, not asserted."""
    img, src, dst, renderer, mesh = face
    plate = np.pad(img, ((1200, 2160 - 1200 - img.shape[0]), (2000, 3840 - 2000 - img.shape[1]), (0, 0)),
                   mode="reflect")
    shift = np.array([2000.0, 1200.0, 0.0])
    start = time.perf_counter()
    out, box, _, _ = _edit(plate, src + shift, dst + shift, renderer, mesh)
    took = time.perf_counter() - start
    keep = _outside(out.shape, box)
    assert np.array_equal(out[keep], plate[keep])
    ref, _, _, _ = _edit(img, src, dst, renderer, mesh)
    assert np.array_equal(out[1200:1200 + img.shape[0], 2000:2000 + img.shape[1]], ref)
    print(f"\n4K plate (face box {box[2] - box[0]}x{box[3] - box[1]}): render+composite {took * 1000:.1f} ms")


def test_import_does_not_load_torch():
    code = "import sys, ned_fx.compositing; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


# ---- the keep matte (occluders) ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["uint8", "uint16", "float32"])
def test_keep_matte_leaves_its_pixels_exactly_and_fades_the_edit(face, kind):
    """A keep matte over the eyes' band: where it is 1 the plate comes back bit-exact, on its soft edge the edit
    is partly there, elsewhere the result is the plain composite's; keep=None and an all-zero keep change
    nothing."""
    import cv2

    img, src, dst, renderer, mesh = face
    plate = _plates(img)[kind]
    h, w = plate.shape[:2]
    # a strong edit: the whole face moves, so the blend touches every pixel near the eyes
    dst = src.copy()
    dst[:, 1] -= 0.05 * _iod(src)
    box = face_region_box(np.concatenate([src, dst]), w, h)
    off = np.array([box[0], box[1], 0.0])
    rendered = renderer.render(extract_region(plate, box), src - off, dst - off, mesh)
    comp = Compositor()
    plain = comp.composite(plate, rendered, box, dst, src)
    rh, rw = box[3] - box[1], box[2] - box[0]
    hard = np.zeros((rh, rw), np.float32)
    eye_y = int(round(src[T.EYE_OUTER_RIGHT, 1] - box[1]))
    hard[eye_y - 6: eye_y + 6, :] = 1.0                             # a horizontal bar through both eyes
    keep = np.clip(cv2.GaussianBlur(hard, (0, 0), 1.5) * 2.0, 0.0, 1.0)
    out = comp.composite(plate, rendered, box, dst, src, keep=keep)
    region = lambda a: a[box[1]:box[3], box[0]:box[2]].astype(np.float64)      # noqa: E731
    full = keep >= 1.0
    assert full.sum() > 1000
    assert np.array_equal(region(out)[full], region(plate)[full]), "kept pixels must be the plate's exactly"
    moved = np.abs(region(plain) - region(plate)).max(axis=2)
    assert moved[full].max() > 0, "the test needs an edit under the matte"
    free = keep == 0.0
    assert np.array_equal(region(out)[free], region(plain)[free])
    edge = (keep > 0.2) & (keep < 0.8) & (moved > moved.max() * 0.3)
    assert edge.sum() > 20
    part = np.abs(region(out) - region(plate)).max(axis=2)[edge] / moved[edge]
    assert 0.05 < np.median(part) < 0.95, "the edit fades out over the matte's soft edge"
    assert np.array_equal(comp.composite(plate, rendered, box, dst, src, keep=np.zeros_like(keep)), plain)
    frame = Frame(number=3, pixels=plate if plate.ndim == 3 else plate[..., None], channels=("R", "G", "B"))
    assert np.array_equal(comp.composite_frame(frame, rendered, box, dst, src, keep=keep).pixels, out)
    with pytest.raises(InvalidParameterError, match="keep"):
        comp.composite(plate, rendered, box, dst, src, keep=keep[1:])


# ---- one compositor over a shot: its reused work arrays change nothing ------------------------------------------

def _reference_composite(plate, rendered, box, dst, src, keep, cfg):
    """The compositor's arithmetic written plainly (fresh arrays, numpy broadcasting, the mask's ramp over the
    whole padded grid): what :meth:`Compositor.composite` must give bit for bit (integer plates, box in the
    plate, all finite)."""
    import cv2

    from ned_fx.compositing.blend import pyramid_levels
    from ned_fx.compositing.mask import _SHIFT, mask_polygons

    x0, y0, x1, y1 = box
    h, w = y1 - y0, x1 - x0
    off = np.array([x0, y0], np.float64)
    shapes = [np.asarray(dst, np.float64)[:, :2] - off, np.asarray(src, np.float64)[:, :2] - off]
    iod = max(float(np.linalg.norm(shapes[0][T.EYE_OUTER_RIGHT] - shapes[0][T.EYE_OUTER_LEFT])), 1.0)
    scale = min(1.0, cfg.mask_cells / max(h, w))
    gh, gw = max(2, int(round(h * scale))), max(2, int(round(w * scale)))
    sx, sy = gw / w, gh / h
    pad = int(np.ceil(cfg.feather * iod * max(sx, sy))) + 2
    inside = np.zeros((gh + 2 * pad, gw + 2 * pad), np.uint8)
    for pts in shapes:
        for poly in mask_polygons(pts, cfg, iod):
            g = (poly * [sx, sy] - 0.5 + pad) * (1 << _SHIFT)
            cv2.fillPoly(inside, [np.rint(g).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_5)
    d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_5)
    signed = np.where(inside > 0, d_in - 0.5, 0.5 - d_out) * (0.5 * (1 / sx + 1 / sy)) + cfg.grow * iod
    x = np.clip(0.5 + signed / (cfg.feather * iod), 0.0, 1.0)
    soft = (x * x * (3.0 - 2.0 * x)).astype(np.float32)[pad: pad + gh, pad: pad + gw]
    mask = cv2.resize(soft, (w, h), interpolation=cv2.INTER_LINEAR)
    base = plate[y0:y1, x0:x1].astype(np.float32)
    levels = pyramid_levels(h, w, cfg.levels)
    gd, gm = [rendered - base], [mask]
    for _ in range(levels):
        gd.append(cv2.pyrDown(gd[-1]).reshape(-1, (gd[-1].shape[1] + 1) // 2, base.shape[2]))
        gm.append(cv2.pyrDown(gm[-1]))
    acc = gd[-1] * gm[-1][..., None]
    for k in range(levels - 1, -1, -1):
        size = (gd[k].shape[1], gd[k].shape[0])
        band = gd[k] - cv2.pyrUp(gd[k + 1], dstsize=size).reshape(gd[k].shape)
        acc = cv2.pyrUp(acc, dstsize=size).reshape(gd[k].shape) + band * gm[k][..., None]
    if keep is not None:
        acc = acc * (1.0 - np.clip(np.nan_to_num(keep, nan=0.0), 0.0, 1.0))[..., None]
    out = plate.copy()
    depth = cv2.CV_8U if plate.dtype == np.uint8 else cv2.CV_16U
    out[y0:y1, x0:x1] = cv2.add(acc, base, dtype=depth).reshape(acc.shape)
    return out


def test_a_reused_compositor_gives_the_plain_arithmetic_bit_for_bit(face):
    """One Compositor over several frames whose face boxes shrink and grow (its work arrays are reused, views of
    other sizes over the same memory), RGB and grey, 8 and 16 bit, with and without a keep matte (one with NaN and
    values past 0..1): every frame equals the plain arithmetic exactly, and equals a fresh compositor's."""
    import cv2

    img, src, _, renderer, mesh = face
    h, w = img.shape[:2]
    centre = src[:, :2].mean(axis=0)
    comp = Compositor()
    plates = {"uint8": img, "uint16": img.astype(np.uint16) * 257,
              "grey": img.astype(np.float32).mean(axis=2, keepdims=True).astype(np.uint8)}
    for n, (grow, kind) in enumerate([(1.0, "uint8"), (1.12, "uint8"), (0.9, "uint16"), (1.05, "grey"),
                                      (1.12, "uint8")]):
        plate = plates[kind]
        dst = _smile(src)
        dst[:, :2] = centre + (dst[:, :2] - centre) * grow                   # a bigger or smaller face: another box
        box = face_region_box(np.concatenate([src, dst]), w, h)
        off = np.array([box[0], box[1], 0.0])
        rendered = renderer.render(extract_region(plate, box), src - off, dst - off, mesh)
        keep = None
        if n % 2:
            keep = np.zeros((box[3] - box[1], box[2] - box[0]), np.float32)
            eye_y = int(round(src[T.EYE_OUTER_RIGHT, 1] - box[1]))
            keep[eye_y - 5: eye_y + 5] = 1.0
            keep = cv2.GaussianBlur(keep, (0, 0), 1.5) * 1.5                # past 1 on the bar: clipped
            if n == 3:
                keep[0, :4] = np.nan                                        # NaN: nothing kept there
        out = comp.composite(plate, rendered, box, dst, src, keep=keep)
        want = _reference_composite(plate, rendered, box, dst, src, keep, comp.config)
        assert np.array_equal(out, want), f"frame {n} ({kind}, box {box}) differs from the plain arithmetic"
        assert np.array_equal(out, Compositor().composite(plate, rendered, box, dst, src, keep=keep))
        assert np.abs(out.astype(np.int64) - plate).max() > 0, "the test needs an edit"


def test_scratch_reuses_its_arrays_within_its_limit():
    """A name's array is the same memory next time (any shape that fits), another name's is not; past the limit
    a name gets fresh arrays."""
    from ned_fx.scratch import Scratch

    space = Scratch(limit=64 * 64 * 4 * 2)
    a = space.take("a", (40, 50, 3))
    assert a.shape == (40, 50, 3) and a.dtype == np.float32 and a.flags["C_CONTIGUOUS"]
    assert np.shares_memory(a, space.take("a", (30, 60)))
    assert not np.shares_memory(a, space.take("b", (40, 50, 3)))
    assert space.take("a", (8, 8), np.uint8).dtype == np.uint8
    big = space.take("big", (64, 64, 3))
    assert not np.shares_memory(big, space.take("big", (64, 64, 3))), "past the limit nothing is kept"


def test_composite_into_the_plates_own_pixels(face):
    """``out=`` the plate's pixels gives the same array as a fresh composite and writes only the box (a plate
    that no longer needs keeping skips the full-frame copy); a separate ``out`` gets the whole result; a bad or
    overlapping ``out`` is refused before anything is written."""
    img, src, dst, renderer, mesh = face
    h, w = img.shape[:2]
    box = face_region_box(np.concatenate([src, dst]), w, h)
    off = np.array([box[0], box[1], 0.0])
    rendered = renderer.render(extract_region(img, box), src - off, dst - off, mesh)
    comp = Compositor()
    want = comp.composite(img, rendered, box, dst, src)
    plate = img.copy()
    assert comp.composite(plate, rendered, box, dst, src, out=plate) is plate
    assert np.array_equal(plate, want)
    other = np.zeros_like(img)
    assert np.array_equal(comp.composite(img, rendered, box, dst, src, out=other), want)
    frame = Frame(number=1, pixels=img.copy(), channels=("R", "G", "B"))
    moved = comp.composite_frame(frame, rendered, box, dst, src, in_place=True)
    assert moved.pixels is frame.pixels and np.array_equal(moved.pixels, want)
    plate = img.copy()
    for bad in (plate[1:], plate.astype(np.uint16), plate[:, ::-1]):
        with pytest.raises(InvalidParameterError, match="out"):
            comp.composite(plate, rendered, box, dst, src, out=bad)
    assert np.array_equal(plate, img)
