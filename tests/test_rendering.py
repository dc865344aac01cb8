"""Stage 3, rendering: the render mesh keeps mouth and eyes open, identity is exact, real edits move the
re-tracked face toward the target while untouched parts stay, the mouth interior is filled (not stretched)
and moves rigidly, irises stay round, the OpenCV and torch paths agree, and the module exports to ONNX.

Edits are built from the tracked landmarks of the shared footage; outputs are re-tracked with our tracker
(tests may import it; the stage packages may not). Tolerances are stated where they are asserted.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import REPO, decode_rgb, our_track
from ned_fx import topology as T
from ned_fx.errors import InvalidParameterError, NoFaceError
from ned_fx.rendering import (GeometryRenderer, GeometryRendererModule, RendererConfig, RenderMesh,
                              build_render_mesh, face_region_box, field_grid_size, rasterize_labels)
from ned_fx.rendering.mesh import HOLE_CORNERS, LOWER_LIP_RINGS, UPPER_LID_RINGS, UPPER_LIP_RINGS


# ---- helpers ------------------------------------------------------------------------------------------------------

def _iod(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[T.EYE_OUTER_RIGHT, :2] - lm[T.EYE_OUTER_LEFT, :2]))


def _bump(src: np.ndarray, centre: int, radius: float) -> np.ndarray:
    """Smooth 0..1 weight around landmark ``centre`` (Gaussian, radius x IOD)."""
    d = np.linalg.norm(src[:, :2] - src[centre, :2], axis=1)
    return np.exp(-(d / (radius * _iod(src))) ** 2)


def smile_and_brows(src: np.ndarray, corners: float = 0.04, brows: float = 0.03) -> np.ndarray:
    """Mouth corners (61, 291 and neighbours, smoothly) up by ``corners`` x IOD, brows up by ``brows`` x IOD."""
    dst = src.copy()
    iod = _iod(src)
    dst[:, 1] -= corners * iod * np.maximum(_bump(src, 61, 0.18), _bump(src, 291, 0.18))
    dst[:, 1] -= brows * iod * np.clip(_bump(src, 105, 0.22) + _bump(src, 334, 0.22), 0, 1)
    return dst


def open_mouth(src: np.ndarray, amount: float) -> np.ndarray:
    """Lower lip and jaw down by ``amount`` x IOD at the centre, a lens-shaped opening (corners stay)."""
    dst = src.copy()
    iod = _iod(src)
    a, b = src[78, :2], src[308, :2]
    centre, half = (a + b) / 2, np.linalg.norm(b - a) / 2
    ex = (b - a) / (2 * half)
    down = np.array([-ex[1], ex[0]])
    if down @ (src[152, :2] - centre) < 0:
        down = -down
    t = (src[:, :2] - centre) @ ex / half
    below = (src[:, :2] - centre) @ down / iod
    lens = np.sqrt(np.cos(np.pi / 2 * np.clip(np.abs(t), 0, 1)))
    jaw = np.clip(below / 0.08, 0, 1) * np.exp(-(t / 3.0) ** 2)
    weight = np.where(np.abs(t) < 1, np.maximum(lens * (below > 0), jaw), jaw)
    lower = list(sum(LOWER_LIP_RINGS, ()))
    weight[lower] = lens[lower]
    weight[list(sum(UPPER_LIP_RINGS, ())) + [78, 308, 62, 292, 76, 306, 61, 291]] = 0
    dst[:, :2] += np.outer(amount * iod * weight, down)
    return dst


def lid_edit(src: np.ndarray, amount: float) -> np.ndarray:
    """Upper lids down (amount > 0) or up by ``amount`` x IOD at their middle, zero at the eye corners."""
    dst = src.copy()
    iod = _iod(src)
    for eye, (ia, ib) in enumerate(HOLE_CORNERS[1:]):
        a, b = src[ia, :2], src[ib, :2]
        for ring, k in zip(UPPER_LID_RINGS[eye], (1.0, 0.5)):
            idx = list(ring)
            t = np.clip((src[idx, :2] - a) @ (b - a) / np.sum((b - a) ** 2), 0, 1)
            dst[idx, 1] += amount * iod * k * np.sin(np.pi * t)
    return dst


def region_edit(tracker, name: str, edit, *args):
    """A still tracked, its target made by ``edit(src, *args)``, and the face region's box: (plate, src, dst,
    offset of the region, the region as float32)."""
    img = decode_rgb(name)[0][0]
    src = track_image(tracker, img)
    dst = edit(src, *args)
    h, w = img.shape[:2]
    box = face_region_box(np.concatenate([src, dst]), w, h)
    off = np.array([box[0], box[1], 0.0])
    return img, src, dst, off, img[box[1]:box[3], box[0]:box[2]].astype(np.float32)


def render_plate(plate: np.ndarray, src: np.ndarray, dst: np.ndarray, renderer=None, mesh=None):
    """Render + composite a uint8 RGB plate the way the pipeline will: box, crop, render, blend."""
    from ned_fx.compositing import Compositor, extract_region

    renderer = renderer or GeometryRenderer()
    mesh = mesh if mesh is not None else build_render_mesh(src)
    h, w = plate.shape[:2]
    box = face_region_box(np.concatenate([src, dst]), w, h)
    off = np.array([box[0], box[1], 0.0])[: src.shape[1]]
    rendered = renderer.render(extract_region(plate, box), src - off, dst - off, mesh)
    return Compositor().composite(plate, rendered, box, dst, src), box


def track_image(tracker, rgb: np.ndarray) -> np.ndarray:
    """Our tracker on one RGB8 picture (static: detect + mesh + iris): 478x3."""
    faces = list(tracker.iter_track(iter([rgb])))[0].faces
    assert faces, "the tracker lost the face"
    return max(faces.values(), key=lambda f: f[1])[0]


def _region(name: str, frame: int = 0):
    img = decode_rgb(name)[0][frame]
    src = our_track(name).landmarks[frame]
    box = face_region_box(src, img.shape[1], img.shape[0])
    off = np.array([box[0], box[1], 0.0])
    return img[box[1]:box[3], box[0]:box[2]].astype(np.float32), src - off, box


# ---- the mesh ------------------------------------------------------------------------------------------------------

def _boundary_edges(tri: np.ndarray) -> set:
    e = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    edges, count = np.unique(e, axis=0, return_counts=True)
    assert count.max() <= 2, "an edge shared by more than two triangles"
    return set(map(tuple, edges[count == 1].tolist()))


@pytest.mark.parametrize("name", ["people_0.png", "d8.jpg", "d19.jpg", "d12.mp4"])
def test_render_mesh_keeps_mouth_and_eyes_open(tracker, name):
    """Every inner-lip and eye contour edge is a hole boundary, whatever the reference's expression (closed
    mouths: people_0, d8; open: d19; talking clips: several frames)."""
    frames = decode_rgb(name)[0]
    for f in range(0, len(frames), 61):
        mesh = build_render_mesh(track_image(tracker, frames[f]))
        boundary = _boundary_edges(mesh.triangles)
        for contour in (T.LIPS_INNER, T.RIGHT_EYE, T.LEFT_EYE):
            n = len(contour)
            missing = [(contour[i], contour[(i + 1) % n]) for i in range(n)
                       if tuple(sorted((contour[i], contour[(i + 1) % n]))) not in boundary]
            assert not missing, f"{name}[{f}]: contour edges inside the mesh: {missing}"
        assert 800 <= len(mesh.triangles) <= 900
        used = set(mesh.outer_edges.reshape(-1).tolist())
        assert len(used & set(T.FACE_OVAL)) >= 25, "the outline follows the face oval"


def test_render_mesh_from_mean_shape_and_topology_triangles():
    track = our_track("people_0.png")
    mesh = build_render_mesh(track.mean_shape)          # head frame, unit scale, y up: still fine
    assert len(mesh.triangles) > 800
    wrapped = RenderMesh.from_triangles(T.triangulate(track.landmarks[0]))
    assert len(wrapped.outer_edges) > 0
    with pytest.raises(InvalidParameterError):
        RenderMesh.from_triangles(np.array([[0, 1, 500]]))
    with pytest.raises(NoFaceError):
        build_render_mesh(np.full((478, 2), np.nan))


def test_face_region_box_margin_clipping_and_errors():
    lm = our_track("people_0.png").landmarks[0]
    x0, y0, x1, y1 = face_region_box(lm, 474, 474)
    lo, hi = lm[:, :2].min(0), lm[:, :2].max(0)
    pad = 0.25 * (hi - lo).max()
    assert all(isinstance(v, int) for v in (x0, y0, x1, y1))
    assert x0 <= lo[0] - pad + 1 and y0 <= lo[1] - pad + 1 and x1 >= hi[0] + pad - 1 and y1 >= hi[1] + pad - 1
    assert face_region_box(lm, 474, 474, margin=0.0)[0] == int(np.floor(lo[0]))
    shifted = lm.copy()
    shifted[:, 0] -= 200                                  # face partly off the left edge
    assert face_region_box(shifted, 474, 474)[0] == 0
    with_nan = lm.copy()
    with_nan[:10] = np.nan
    assert face_region_box(with_nan, 474, 474)
    with pytest.raises(NoFaceError):
        face_region_box(np.full((478, 3), np.nan), 474, 474)
    with pytest.raises(InvalidParameterError):
        face_region_box(lm + 2000, 474, 474)


def test_config_validates():
    with pytest.raises(InvalidParameterError):
        RendererConfig(interpolation="nearest")
    with pytest.raises(InvalidParameterError):
        RendererConfig(field_cells=4)
    with pytest.raises(InvalidParameterError):
        RendererConfig(mouth_fill_gain=2.0)
    with pytest.raises(InvalidParameterError):
        RendererConfig(refine_cell_px=0.1)
    with pytest.raises(InvalidParameterError):
        RendererConfig(refine_max_cells=10)


def test_labels_cover_the_face_and_mark_the_openings():
    region, src, _ = _region("people_0.png")
    mesh = build_render_mesh(src)
    h, w = region.shape[:2]
    grid = field_grid_size(h, w, 128)
    assert max(grid) == 128 and field_grid_size(10, 7, 128) == (10, 7)
    labels = rasterize_labels(src, mesh, (h, w), grid)
    n = len(mesh.triangles)
    assert labels.shape == grid and labels.dtype == np.int64
    assert ((labels >= 0) & (labels < n)).mean() > 0.3
    opened = open_mouth(src, 0.2)                # people_0's own mouth is closed: no opening to label
    labels_open = rasterize_labels(opened, mesh, (h, w), grid)
    for k, contour in enumerate((T.LIPS_INNER, T.RIGHT_EYE, T.LEFT_EYE)):
        centre = opened[list(contour), :2].mean(0) * [grid[1] / w, grid[0] / h]
        assert labels_open[int(centre[1]), int(centre[0])] == n + k, f"opening {k} not labelled at its centre"
    centre = src[list(T.LIPS_INNER), :2].mean(0) * [grid[1] / w, grid[0] / h]
    assert labels[int(centre[1]), int(centre[0])] < n, "a closed mouth is all lips"
    assert labels[0, 0] == -1


def _labels_cell_by_cell(dst: np.ndarray, mesh: RenderMesh, region: tuple[int, int], grid: tuple[int, int]):
    """rasterize_labels' rule, one cell and one shape at a time: even-odd per cell centre for the openings, then
    every triangle (far to near) over the cells of its box whose barycentrics are all >= -1e-7."""
    from ned_fx.rendering.mesh import polygon_contains

    (h, w), (gh, gw) = region, grid
    g = dst[:T.NUM_MESH, :2] * [gw / w, gh / h] - 0.5
    cy, cx = np.mgrid[0:gh, 0:gw]
    labels = np.full((gh, gw), -1, np.int64)
    n = len(mesh.triangles)
    for k, contour in enumerate(mesh.holes):
        poly = g[list(contour)]
        near = np.flatnonzero(((cx >= poly[:, 0].min()) & (cx <= poly[:, 0].max()) & (cy >= poly[:, 1].min())
                               & (cy <= poly[:, 1].max())).ravel())      # the rest is outside the polygon
        inside = polygon_contains(poly, np.stack([cx.ravel()[near], cy.ravel()[near]], 1).astype(np.float64))
        labels.reshape(-1)[near[inside]] = n + k
    for t in np.argsort(-dst[mesh.triangles, 2].mean(axis=1), kind="stable"):
        a, b, c = g[mesh.triangles[t]]
        x0, y0 = np.clip(np.ceil(np.minimum(np.minimum(a, b), c) - 1e-9), 0, [gw - 1, gh - 1]).astype(int)
        x1, y1 = np.clip(np.floor(np.maximum(np.maximum(a, b), c) + 1e-9), -1, [gw - 1, gh - 1]).astype(int)
        e1, e2 = b - a, c - a
        det = e1[0] * e2[1] - e1[1] * e2[0]
        if abs(det) <= 1e-12 or x1 < x0 or y1 < y0:
            continue
        px, py = cx[y0:y1 + 1, x0:x1 + 1] - a[0], cy[y0:y1 + 1, x0:x1 + 1] - a[1]
        l1 = (px * e2[1] - py * e2[0]) / det
        l2 = (e1[0] * py - e1[1] * px) / det
        box = labels[y0:y1 + 1, x0:x1 + 1]
        box[(l1 >= -1e-7) & (l2 >= -1e-7) & (l1 + l2 <= 1 + 1e-7)] = t
    return labels


def test_grid_inside_polygon_answers_as_the_point_by_point_test():
    """The scanline even-odd test (rasterize_labels' openings, the renderer's opening cover) gives every grid
    point the answer of the point-by-point test, in float64 and float32, on grids whose points fall exactly on
    vertices and edges (integer polygons) and on a real inner-lip contour."""
    from ned_fx.rendering.mesh import polygon_contains, grid_inside_polygon

    rng = np.random.default_rng(3)
    lips = our_track("people_0.png").landmarks[0][list(T.LIPS_INNER), :2]
    polys = [rng.integers(0, 12, (9, 2)).astype(np.float64), rng.uniform(0, 12, (20, 2)), lips - lips.min(0)]
    for poly in polys:
        for dtype in (np.float64, np.float32):
            q = poly.astype(dtype)
            xs = rng.uniform(-1, q[:, 0].max() + 1, 40)
            xs[::3] = np.round(xs[::3])
            xs = np.sort(xs).astype(dtype)
            ys = np.concatenate([np.arange(-1, int(q[:, 1].max()) + 2), rng.uniform(0, q[:, 1].max(), 20)])
            ys = ys.astype(dtype)
            got = grid_inside_polygon(q, xs, ys)
            pts = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
            assert np.array_equal(got.reshape(-1), polygon_contains(q, pts)), (poly, dtype)
            if dtype == np.float32:   # the renderer's own float32 test (torch) on the same points
                from ned_fx.rendering.geometry_module import _inside_polygon

                ref = _inside_polygon(torch.from_numpy(pts)[None], torch.from_numpy(q)[None])[0].numpy()
                assert np.array_equal(got.reshape(-1), ref)
            assert 0 < got.sum() < got.size


@pytest.mark.parametrize("threads", [2, 1])
def test_one_frame_numpy_field_and_labels_equal_the_batched_graph(threads):
    """The per-frame CPU field (numpy, :func:`~ned_fx.rendering.field.one_frame_field`: what every CPU edit
    renders, with no torch) computes what the batched, exportable torch graph computes: on two frames of d12 with a
    smile, an opened mouth and raised/lowered lids, each output agrees with the same frame's in a batch of two
    (torch on 2 and on 1 thread): the offsets to 1e-3 px (the same float32 arithmetic, but sums and matrix products
    blocked differently; near an outline vertex the Shepard weights' expanded |p|^2 + |q|^2 - 2 p.q cancels, and
    the two differ there by up to 2.2e-4 px; elsewhere <= 3e-5), the openings' covers and the mouth fill to 1e-6
    (the same sub-sample counts), the layers' affine maps to 1e-4 (their translations are hundreds of pixels: a
    float32 step is 3e-5); and the label maps equal a cell-by-cell
    rasterisation. A wrong rule anywhere is off by far more (a cell's offset is pixels)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _one_frame_equals_the_batch()
    finally:
        torch.set_num_threads(before)


def _one_frame_equals_the_batch() -> None:
    track = our_track("d12.mp4")
    frames = decode_rgb("d12.mp4")[0]
    renderer = GeometryRenderer()
    checked = 0
    for f in (0, 150):
        src = track.landmarks[f]
        box = face_region_box(src, frames.shape[2], frames.shape[1])
        off = np.array([box[0], box[1], 0.0])
        src = src - off
        mesh = build_render_mesh(src)
        h, w = box[3] - box[1], box[2] - box[0]
        dsts = [smile_and_brows(src), open_mouth(src, 0.25), lid_edit(src, 0.03), lid_edit(src, -0.03)]
        labels = [renderer.labels(d, mesh, h, w) for d in dsts]
        for d, lab in zip(dsts, labels):
            assert np.array_equal(lab, _labels_cell_by_cell(d, mesh, (h, w), lab.shape))
        module = renderer.module(mesh)
        as_t = lambda a: torch.as_tensor(np.stack(a)[..., :2], dtype=torch.float32)   # noqa: E731
        for i in range(0, len(dsts), 2):
            pair = slice(i, i + 2)
            with torch.no_grad():
                batch = module.field(as_t([src, src]), as_t(dsts[pair]), torch.from_numpy(np.stack(labels[pair])),
                                     h, w)
            for j in range(2):
                one = renderer.field((h, w), src, dsts[i + j], mesh)
                offset = batch.offset[j].permute(1, 2, 0).numpy()
                assert np.abs(one.offset - offset).max() <= 1e-3, (f, i + j, float(np.abs(one.offset - offset).max()))
                assert np.abs(one.offset).max() > 1.0                       # a real edit, not a zero field
                for name, tol in (("cover", 1e-6), ("mouth_fill", 1e-6), ("affine", 1e-4)):
                    a, b = getattr(one, name), getattr(batch, name)[j].numpy().reshape(getattr(one, name).shape)
                    assert np.abs(a - b).max() <= tol, (f, i + j, name, float(np.abs(a - b).max()))
                assert float(one.cover.max()) > 0.5
                checked += 1
    assert checked == 8


# ---- identity and paths ----------------------------------------------------------------------------------------

def test_identity_render_is_exact_and_torch_path_within_1e4():
    region, src, _ = _region("people_0.png")
    mesh = build_render_mesh(src)
    renderer = GeometryRenderer()
    out = renderer.render(region, src, src, mesh)
    assert out.dtype == np.float32 and out.shape == region.shape
    assert np.array_equal(out, region), "dst == src must give the input back exactly (OpenCV path)"
    unit = region / 255.0                                 # torch path on 0..1 floats: max diff <= 1e-4
    out_t = renderer.render(torch.from_numpy(unit), src, src, mesh)
    assert isinstance(out_t, torch.Tensor)
    assert float((out_t - torch.from_numpy(unit)).abs().max()) <= 1e-4


def test_opencv_and_torch_paths_agree_and_batch_is_consistent():
    """The per-frame OpenCV path and the batched torch module render the same pixels (OpenCV quantises
    sampling positions to 1/32 px: max 1.0, mean 0.02 on 0..255 values), and a batch equals its frames."""
    region, src, _ = _region("people_0.png")
    mesh = build_render_mesh(src)
    renderer = GeometryRenderer()
    dsts = [smile_and_brows(src), open_mouth(src, 0.2)]
    outs = [renderer.render(region, src, d, mesh) for d in dsts]
    images = torch.from_numpy(region.transpose(2, 0, 1).copy())[None].repeat(2, 1, 1, 1)
    batch = renderer.render_batch(images, np.stack([src, src]), np.stack(dsts), mesh)
    for i, out in enumerate(outs):
        t = batch[i].permute(1, 2, 0).numpy()
        diff = np.abs(t - out)
        assert diff.max() <= 1.0 and diff.mean() <= 0.02, (i, diff.max(), diff.mean())
    single = renderer.render_batch(images[:1], src[None], dsts[1][None], mesh)
    assert torch.allclose(single[0], batch[1], atol=1e-3)


# ---- real edits, re-tracked ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,frame,brows", [("people_0.png", 0, 0.6), ("d12.mp4", 150, 0.3)])
def test_real_edit_moves_retracked_face_toward_target(tracker, name, frame, brows):
    """Mouth corners up 4% IOD and brows up 3% IOD: the re-tracked corners follow >= 60% of the command (brows
    >= 60% on the photo; d12 wears glasses over the brows, where the tracker's brows barely respond: >= 30%),
    untouched points (nose tip, chin) stay within 2.5% IOD (the tracker's own coupling between regions), and
    their pixels stay (mean change <= 1 level)."""
    img = decode_rgb(name)[0][frame]
    src = track_image(tracker, img)
    dst = smile_and_brows(src)
    out, _ = render_plate(img, src, dst)
    got = track_image(tracker, out)
    iod = _iod(src)
    commanded, moved = dst[:, :2] - src[:, :2], got[:, :2] - src[:, :2]
    for ids, need in (([61, 291], 0.6), ([105, 334, 66, 296], brows)):
        c, m = commanded[ids, 1].mean(), moved[ids, 1].mean()
        assert c < 0 and m / c >= need, f"{name}: points {ids} moved {m:+.2f} px of {c:+.2f} commanded"
    for ids in ([1, 4], [152, 175]):
        assert np.abs(commanded[ids]).max() < 0.01 * iod
        assert np.abs(moved[ids]).max() <= 0.025 * iod, f"{name}: untouched {ids} moved {moved[ids]}"
    for i in (4, 152, 175):
        x, y = src[i, :2].astype(int)
        r = int(0.06 * iod)
        patch = (slice(y - r, y + r), slice(x - r, x + r))
        assert np.abs(out[patch].astype(float) - img[patch]).mean() <= 1.0, f"{name}: pixels at {i} changed"


def test_opening_a_closed_mouth_fills_dark_without_stretching(tracker):
    """people_0 has a closed mouth; opening it (lower lip and jaw down 25% IOD) shows a dark interior (mean
    below 45% of the lips' brightness), every pixel within the source region's value range, no NaN, and the
    re-tracked mouth opens by at least half the commanded amount."""
    img, src, dst, off, region = region_edit(tracker, "people_0.png", open_mouth, 0.25)
    out = GeometryRenderer().render(region, src - off, dst - off, build_render_mesh(src))
    assert np.isfinite(out).all()
    assert out.min() >= region.min() and out.max() <= region.max()
    import cv2

    inner = np.zeros(region.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.rint(dst[list(T.LIPS_INNER), :2] - off[:2]).astype(np.int32)], 1)
    inner = cv2.erode(inner, np.ones((3, 3), np.uint8))
    lips = np.zeros_like(inner)
    cv2.fillPoly(lips, [np.rint(src[list(T.LIPS_OUTER), :2] - off[:2]).astype(np.int32)], 1)
    assert inner.sum() > 100, "the target mouth should be open"
    assert out[inner > 0].mean() <= 0.45 * region[lips > 0].mean()
    # no stretched lip texture: the interior is flat (a fill), not streaks of lip colour
    assert out[inner > 0].std(axis=0).max() <= 25
    composite, _ = render_plate(img, src, dst)
    got = track_image(tracker, composite)
    assert T.mouth_opening(got) - T.mouth_opening(src) >= 0.5 * (T.mouth_opening(dst) - T.mouth_opening(src))


def _gasp_closed():
    """A plan config that closes a still's held gasp under every style (``ManipulatorConfig.still_gasp_kept`` off):
    the styles keep d19's gasp open by default, but a renderer must still draw a large closing where one asks."""
    from ned_fx.manipulation import ManipulatorConfig

    return ManipulatorConfig(still_gasp_kept=(float("inf"), float("inf")))


def _planned_region(name: str, emotion: str, frame: int = 0, config=None):
    """A shared input's frame, its face region and the pipeline's plan for ``emotion`` in region pixels
    (``config``: the plan's :class:`~ned_fx.manipulation.ManipulatorConfig`)."""
    from ned_fx.pipeline import EditInstruction, plan_edit

    rgb = decode_rgb(name)[0][frame]
    edited = plan_edit(our_track(name), EditInstruction(emotion=emotion, intensity=1.0), config)
    src, dst = edited.source_landmarks[frame], edited.target_landmarks[frame]
    x0, y0, x1, y1 = face_region_box(np.concatenate([src, dst]), rgb.shape[1], rgb.shape[0])
    off = np.array([x0, y0, 0.0])[: src.shape[1]]
    return rgb[y0:y1, x0:x1].astype(np.float32), src - off, dst - off


@pytest.mark.parametrize("emotion", ["neutral"])
def test_a_lip_moved_far_on_a_large_face_is_refined_not_stair_stepped(emotion):
    """d19's gasp closed (by neutral with ``ManipulatorConfig.still_gasp_kept`` off, which now keeps a gasp under
    every style; happy and angry closed it too before the rule): on his 609x544 region the coarse field's cells are
    3.2 px and the upper inner lip's new edge came out stair-stepped (looked at, 3x). Around the mouth the
    refined field renders what a 4x finer field (768 cells) renders, within 0.1 code values on average (the
    coarse one: ~1.1), and nothing changes away from the mouth (the eyes are not refined)."""
    region, src, dst = _planned_region("d19.jpg", emotion, config=_gasp_closed())
    mesh = build_render_mesh(src)
    refined = GeometryRenderer().render(region, src, dst, mesh)
    coarse = GeometryRenderer(RendererConfig(refine_above_px=0)).render(region, src, dst, mesh)
    fine = GeometryRenderer(RendererConfig(field_cells=768, refine_above_px=0)).render(region, src, dst, mesh)
    lip = dst[list(T.LIPS_INNER), :2]
    pad = 0.1 * _iod(dst)
    (a0, b0), (a1, b1) = np.floor(lip.min(0) - pad).astype(int), np.ceil(lip.max(0) + pad).astype(int)
    err_refined = np.abs(refined - fine)[b0:b1, a0:a1].mean()
    err_coarse = np.abs(coarse - fine)[b0:b1, a0:a1].mean()
    assert err_coarse >= 0.5, "the coarse field should differ visibly here (else this test measures nothing)"
    assert err_refined <= 0.1, (err_refined, err_coarse)
    # only the mouth's box (grown by 6 coarse cells) is refined: eyes, brows, cheeks and chin are not
    changed = np.abs(refined - coarse).max(axis=2) > 0
    near = np.zeros_like(changed)
    grow = 6 * max(region.shape[:2]) / 192 + 1
    (a0, b0), (a1, b1) = np.floor(lip.min(0) - grow).astype(int), np.ceil(lip.max(0) + grow).astype(int)
    near[max(b0, 0):b1, max(a0, 0):a1] = True
    assert changed.any() and not (changed & ~near).any()


def test_a_512_clip_is_not_refined():
    """The shared 512² clips' coarse cells (2.0-2.8 px) are under ``refine_above_px``: the same pixels as with
    the refinement off (it would cost ~40 % of a frame's render there)."""
    region, src, dst = _planned_region("WDA_AlexandriaOcasioCortez_000.mp4", "surprised", 30)
    mesh = build_render_mesh(src)
    assert max(region.shape[:2]) / 192 > 2.0
    assert np.array_equal(GeometryRenderer().render(region, src, dst, mesh),
                          GeometryRenderer(RendererConfig(refine_above_px=0)).render(region, src, dst, mesh))
    # ... and it would be refined (the surprised mouth bends) were the threshold under its cell
    low = GeometryRenderer(RendererConfig(refine_above_px=1.0)).render(region, src, dst, mesh)
    assert not np.array_equal(low, GeometryRenderer().render(region, src, dst, mesh))


def test_teeth_move_rigidly_with_a_translated_mouth():
    """d19's mouth is wide open: moving the whole mouth by (5%, 4%) IOD moves the interior by exactly that
    (patch inside the mouth matches the shifted source within 2 levels mean, 6 at the 99th percentile) and
    paints no fill."""
    region, src, _ = _region("d19.jpg")
    iod = _iod(src)
    shift = np.array([0.05 * iod, 0.04 * iod])
    dst = src.copy()
    mouth = sorted(set(sum(UPPER_LIP_RINGS + LOWER_LIP_RINGS, ())) | {78, 308, 62, 292, 76, 306, 61, 291})
    dst[mouth, :2] += shift
    renderer = GeometryRenderer()
    mesh = build_render_mesh(src)
    out = renderer.render(region, src, dst, mesh)
    res = renderer.field(region.shape[:2], src, dst, mesh)
    assert float(res.mouth_fill.max()) < 1e-3, "a merely moved mouth needs no fill"
    import cv2

    inside = np.zeros(region.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.rint(src[list(T.LIPS_INNER), :2]).astype(np.int32)], 1)
    inside = cv2.erode(inside, np.ones((9, 9), np.uint8)) > 0
    assert inside.sum() > 500
    expected = cv2.warpAffine(region, np.array([[1, 0, shift[0]], [0, 1, shift[1]]]), region.shape[1::-1],
                              flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(inside)
    ys, xs = np.rint(ys + shift[1]).astype(int), np.rint(xs + shift[0]).astype(int)
    diff = np.abs(out[ys, xs] - expected[ys, xs])
    assert diff.mean() <= 2.0 and np.percentile(diff, 99) <= 6.0, (diff.mean(), np.percentile(diff, 99))


def test_a_lowered_lid_carries_its_margin(tracker):
    """d19's tracked upper lids run along the top of his lash band (dark for ~6 px below them, the iris under
    it): the eyeball layer cut at the lowered target lid showed the eyeball where the lid's margin should be,
    and his sad and angry lids came out as bare skin meeting the iris. Inside a lid that moved over the eyeball
    the face layer now shows the lid's own margin (``RendererConfig.lid_margin``): the first pixels under each
    lowered lid point are the source's first pixels under its lid, and without the margin they are not."""
    from ned_fx.tracking import FaceTracker, TrackerConfig

    tracker = FaceTracker(TrackerConfig(device="cpu", first_crop_passes=0), engines=tracker.engines)
    _, src, dst, off, region = region_edit(tracker, "d19.jpg", lid_edit, 0.03)
    lum = lambda px: px @ np.array([0.299, 0.587, 0.114], np.float32)       # noqa: E731
    plate = lum(region)
    errors = {}
    for margin in (0.06, 0.0):
        out = lum(GeometryRenderer(RendererConfig(lid_margin=margin)).render(region, src - off, dst - off,
                                                                              build_render_mesh(src)))
        err = []
        for eye in (T.RIGHT_EYE, T.LEFT_EYE):
            for p in eye[2:7]:                                  # the lid's middle, where it moved most
                (xs, ys), (xt, yt) = src[p, :2] - off[:2], dst[p, :2] - off[:2]
                for dy in (0.5, 1.5):
                    err.append(abs(float(out[int(yt + dy), int(xt)]) - float(plate[int(ys + dy), int(xs)])))
        errors[margin] = float(np.median(err))
    # (measured: 1.3 levels with the margin, 7.3 without)
    assert errors[0.06] <= 3.0 and errors[0.0] >= errors[0.06] + 4.0, errors


@pytest.mark.parametrize("amount", [0.03, -0.03])
def test_lids_move_and_irises_stay_round(tracker, amount):
    """Upper lids lowered/raised by 3% IOD on d19 (a large face). The renderer's field at the target lid
    contour is the commanded motion within 25% + 0.3 px (exact at the cell centres; the rest is the bilinear
    reconstruction of the coarse field, ~1 px with d19's 3.2 px cells) while the eyeball under it stays put;
    the re-tracked iris rims stay round
    (radius std/mean <= 0.06 and at most 0.02 above the source's) and keep their size within 5%. (The
    tracker's own lid points follow only ~30-40% of such an edit, so they are not asserted.) The tracker runs as
    MediaPipe does (one crop from the detector's box): the first crop taken again from the landmarks (the default,
    which d19's open jaw takes) read the rendered irises 5.3 % smaller than the source's, the plain one alike."""
    from ned_fx.tracking import FaceTracker, TrackerConfig

    tracker = FaceTracker(TrackerConfig(device="cpu", first_crop_passes=0), engines=tracker.engines)
    img = decode_rgb("d19.jpg")[0][0]
    src = track_image(tracker, img)
    dst = lid_edit(src, amount)
    h, w = img.shape[:2]
    box = face_region_box(np.concatenate([src, dst]), w, h)
    off = np.array([box[0], box[1], 0.0])
    renderer = GeometryRenderer()
    res = renderer.field((box[3] - box[1], box[2] - box[0]), src - off, dst - off, build_render_mesh(src))
    grid = np.ascontiguousarray(res.offset.transpose(2, 0, 1))     # 2xGhxGw
    gh, gw = grid.shape[1:]
    lid = [i for ring in UPPER_LID_RINGS for i in ring[0]]
    pos = (dst[lid, :2] - off[:2]) * [gw / (box[2] - box[0]), gh / (box[3] - box[1])] - 0.5
    import cv2

    sampled = np.stack([cv2.remap(grid[k], pos[:, 0].astype(np.float32)[None], pos[:, 1].astype(np.float32)[None],
                                  cv2.INTER_LINEAR)[0] for k in range(2)], axis=1)
    commanded = src[lid, :2] - dst[lid, :2]
    err = np.abs(sampled - commanded).max(axis=1)
    assert (err <= 0.25 * np.abs(commanded).max(axis=1) + 0.3).all(), np.c_[commanded, sampled]
    # the eyeball moves rigidly with the eye corners (here: not at all), whatever the lids do: the iris below
    # its centre (under neither the source's nor the target's lid and its margin) is unchanged (mean <= 1 level;
    # a band that stretched the eye with the lid would move it by ~half the lid's motion). The lowered lid ends
    # ~5 px above the iris centre here, and its margin (RendererConfig.lid_margin: 0.06 x the eye's width,
    # 2.7 px, and one 3.2-px field cell of feathering) reaches ~1 px below the centre: the patch starts 0.25 iris
    # radii (3.5 px) below it
    region = img[box[1]:box[3], box[0]:box[2]].astype(np.float32)
    out_region = renderer.render(region, src - off, dst - off, build_render_mesh(src))
    for c in (468, 473):
        radius = np.linalg.norm(src[c + 1: c + 5, :2] - src[c, :2], axis=1).mean()
        x, y = src[c, :2] - off[:2]
        patch = (slice(int(y + 0.25 * radius), int(y + 0.75 * radius)),
                 slice(int(x - 0.5 * radius), int(x + 0.5 * radius)))
        assert np.abs(out_region[patch] - region[patch]).mean() <= 1.0, c
    out, _ = render_plate(img, src, dst, renderer)
    got = track_image(tracker, out)

    def rim(lm, c):
        r = np.linalg.norm(lm[c + 1: c + 5, :2] - lm[c, :2], axis=1)
        return r.std() / r.mean(), r.mean()

    for c in (468, 473):
        (ro_s, size_s), (ro_g, size_g) = rim(src, c), rim(got, c)
        assert ro_g <= 0.06 and ro_g <= ro_s + 0.02, (c, ro_s, ro_g)
        assert abs(size_g / size_s - 1) <= 0.05, (c, size_s, size_g)


def test_pixel_convention_a_translated_face_moves_exactly():
    """Every landmark moved by (+3, -2) px: inside the face (away from the outline, where the field fades)
    the output is the input shifted by exactly that, pixel for pixel: coordinates, the half-pixel centres and
    the openings' similarities all agree."""
    region, src, _ = _region("people_0.png")
    dst = src.copy()
    dst[:, :2] += [3.0, -2.0]
    out = GeometryRenderer().render(region, src, dst, build_render_mesh(src))
    import cv2

    inner = np.zeros(region.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.rint(dst[list(T.FACE_OVAL), :2]).astype(np.int32)], 1)
    inner = cv2.erode(inner, np.ones((25, 25), np.uint8)) > 0
    ys, xs = np.nonzero(inner)
    assert len(ys) > 5000
    assert np.abs(out[ys, xs] - region[ys + 2, xs - 3]).max() <= 1e-3      # float rounding of the fits


def test_face_partly_outside_the_frame():
    """A face cut by the frame's left edge: the box is clipped, the render has no NaN, and the composite only
    touches the box."""
    img = decode_rgb("people_0.png")[0][0]
    src = our_track("people_0.png").landmarks[0]
    cut = 200
    plate = np.ascontiguousarray(img[:, cut:])
    src = src.copy()
    src[:, 0] -= cut
    dst = smile_and_brows(src)
    out, box = render_plate(plate, src, dst)
    assert box[0] == 0
    keep = np.ones(plate.shape[:2], bool)
    keep[box[1]:box[3], box[0]:box[2]] = False
    assert np.array_equal(out[keep], plate[keep])
    assert not np.array_equal(out, plate)


def test_bicubic_option_and_more_channels():
    region, src, _ = _region("people_0.png")
    mesh = build_render_mesh(src)
    dst = smile_and_brows(src)
    five = np.concatenate([region, region[..., :2] * 0.5], axis=2)       # e.g. RGB + two extra layers
    out = GeometryRenderer().render(five, src, dst, mesh)
    assert out.shape == five.shape
    assert np.allclose(out[..., 3:], out[..., :2] * 0.5, atol=1e-3)
    cubic = GeometryRenderer(RendererConfig(interpolation="bicubic")).render(region, src, dst, mesh)
    assert np.abs(cubic - out[..., :3]).mean() < 1.0
    with pytest.raises(InvalidParameterError):
        GeometryRenderer().render(region.astype(np.float64), src, dst, mesh)


# ---- ONNX ----------------------------------------------------------------------------------------------------------

def test_module_exports_to_onnx_and_matches_pytorch(tmp_path):
    """Opset 18, dynamic batch, image size and field-grid size; the label map is an input (rasterised on
    the CPU). onnxruntime matches PyTorch within 0.01 (max) on 0..255 values, at another batch and size
    than traced."""
    import warnings

    import onnxruntime as ort

    region, src, _ = _region("people_0.png")
    mesh = build_render_mesh(src)
    renderer = GeometryRenderer()
    module = GeometryRendererModule(mesh, renderer.config).eval()

    def inputs(dsts, h, w):
        imgs = torch.from_numpy(region[:h, :w].transpose(2, 0, 1).copy())[None].repeat(len(dsts), 1, 1, 1)
        s = torch.tensor(np.stack([src[:, :2]] * len(dsts)), dtype=torch.float32)
        d = torch.tensor(np.stack([x[:, :2] for x in dsts]), dtype=torch.float32)
        labels = torch.from_numpy(np.stack([renderer.labels(x, mesh, h, w) for x in dsts]))
        return imgs, s, d, labels

    h, w = region.shape[:2]
    path = tmp_path / "geometry_renderer.onnx"
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "src": {0: "batch"}, "dst": {0: "batch"},
            "labels": {0: "batch", 1: "grid_h", 2: "grid_w"}, "rendered": {0: "batch", 2: "height", 3: "width"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, inputs([smile_and_brows(src), open_mouth(src, 0.2)], h, w), str(path),
                          input_names=["images", "src", "dst", "labels"], output_names=["rendered"],
                          dynamic_axes=axes, opset_version=18, dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for dsts, size in (([open_mouth(src, 0.25)], (h - 20, w - 9)),
                       ([smile_and_brows(src), lid_edit(src, 0.03), open_mouth(src, 0.15)], (h, w))):
        args = inputs(dsts, *size)
        got = session.run(None, dict(zip(["images", "src", "dst", "labels"], (a.numpy() for a in args))))[0]
        with torch.no_grad():
            ref = module(*args).numpy()
        assert got.shape == ref.shape == (len(dsts), 3, *size)
        assert np.abs(got - ref).max() <= 0.01, np.abs(got - ref).max()


def test_import_is_light():
    code = "import sys, ned_fx.rendering; print('torch' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_render_timing_is_reported(tracker):
    """Not asserted (a shared CI machine): prints the per-frame render time of a 512² clip's face region."""
    frame = decode_rgb("d12.mp4")[0][10]
    src = track_image(tracker, frame)
    dst = smile_and_brows(src)
    box = face_region_box(np.concatenate([src, dst]), 512, 512)
    off = np.array([box[0], box[1], 0.0])
    region = frame[box[1]:box[3], box[0]:box[2]].astype(np.float32)
    renderer, mesh = GeometryRenderer(), build_render_mesh(src)
    renderer.render(region, src - off, dst - off, mesh)
    start = time.perf_counter()
    for _ in range(5):
        renderer.render(region, src - off, dst - off, mesh)
    print(f"\nrender d12 {region.shape[1]}x{region.shape[0]} region: "
          f"{(time.perf_counter() - start) / 5 * 1000:.1f} ms/frame")


def test_stack_lays_each_layer_only_where_it_covers():
    """Layers are laid over the box their coverage spans (speed); what lies outside their coverage never reaches
    the output, not even a NaN in a layer's unused pixels."""
    from ned_fx.rendering.layers import RenderedLayer, stack

    rng = np.random.default_rng(3)
    warped = rng.uniform(0, 255, (20, 30, 3)).astype(np.float32)
    before = warped.copy()
    pixels = warped + np.float32(10.0)
    pixels[0, 0] = np.nan                       # outside the coverage: "not meaningful"
    cov = np.zeros((20, 30), np.float32)
    cov[5:9, 10:14] = 0.5
    cov[12, 3] = 1.0
    out = stack(warped, [RenderedLayer(pixels, cov, "a"), None, RenderedLayer(pixels, np.zeros_like(cov), "b")])
    expected = warped.copy()
    expected += cov[..., None] * (np.nan_to_num(pixels) - expected)
    assert np.array_equal(out, expected) and np.isfinite(out).all()
    assert np.array_equal(warped, before), "stack changed its input"
    assert stack(warped, [RenderedLayer(pixels, np.zeros_like(cov))]) is warped     # nothing covered: no copy


# ---- large folds ------------------------------------------------------------------------------------------------
_HELD = list(set(T.LIPS_INNER) | set(T.LIPS_OUTER) | set(T.RIGHT_EYE) | set(T.LEFT_EYE))


def _turned_area(src, dst, mesh, skin_only: bool = False) -> float:
    """Area of the triangles the target turns over (x IOD²); ``skin_only``: those with a vertex off the lips,
    lids and outline."""
    from ned_fx.rendering.mesh import _signed_areas

    s, d = np.asarray(src)[:T.NUM_MESH, :2], np.asarray(dst)[:T.NUM_MESH, :2]
    a_s, a_d = _signed_areas(s, mesh.triangles), _signed_areas(d, mesh.triangles)
    iod2 = _iod(src) ** 2
    over = (np.abs(a_s) > 1e-4 * iod2) & (np.sign(a_s) != np.sign(a_d))
    if skin_only:
        over &= ~np.isin(mesh.triangles, _HELD).all(axis=1)
    return float(np.abs(a_d[over]).sum() / iod2)


def test_a_large_fold_is_relaxed_and_the_lips_go_where_the_edit_says():
    """d19.jpg (a gasp, tracked with ``first_crop_passes`` 2: jaw dropped 0.32 IOD) under neutral with
    ``ManipulatorConfig.still_gasp_kept`` off (the styles keep his gasp by default): closing it
    turned 0.07 IOD² of the skin over beside the nose and cheeks, and the warp tore the cheeks at the nostrils'
    height (a jump of tens of pixels between two rows of the field). Relaxed, a third of that is left (along the
    lips, where the warp hides it), the field is smooth there, and the lips and lids are exactly where the plan put
    them (the mouth still closes). The shared clips' edits turn only brow, lid and lip slivers over (below the
    limit): their targets are left as they are, the same object."""
    from ned_fx.pipeline import EditInstruction, plan_edit, untangle_targets
    from ned_fx.rendering.mesh import untangle

    track = our_track("d19.jpg", first_crop_passes=2)
    edited = plan_edit(track, EditInstruction(emotion="neutral"), _gasp_closed())
    mesh = build_render_mesh(track.mean_shape)
    src, dst = edited.source_landmarks[0], edited.target_landmarks[0]
    before = _turned_area(src, dst, mesh, skin_only=True)
    assert before > 2 * RendererConfig().fold_limit
    out = untangle(src, dst, mesh, RendererConfig().fold_limit)
    after = _turned_area(src, out, mesh, skin_only=True)
    print(f"skin turned over: {before:.3f} IOD² planned, {after:.3f} relaxed (the rest along the lips)")
    assert after < 0.35 * before
    np.testing.assert_array_equal(out[_HELD], dst[_HELD])
    np.testing.assert_array_equal(out[T.NUM_MESH:], dst[T.NUM_MESH:])
    assert T.mouth_opening(out) / _iod(src) < 0.02                     # closed, as planned

    def largest_jump(target):
        """The largest jump of the field's vertical offset between two grid rows on the cheeks (left and right of
        the mouth corners by 0.1 IOD: the closing mouth's own jump is between its lips)."""
        h, w = 720, 720
        field = GeometryRenderer().field((h, w), src[:, :2], target[:, :2], mesh)
        dy = field.offset[..., 1]
        xs = (np.arange(dy.shape[1]) + 0.5) * w / dy.shape[1]
        margin = 0.1 * _iod(src)
        cheeks = (xs < src[61, 0] - margin) | (xs > src[291, 0] + margin)
        return float(np.abs(np.diff(dy, axis=0))[:, cheeks].max())

    torn, smooth = largest_jump(dst), largest_jump(out)
    print(f"largest jump of the field between two rows on the cheeks: {torn:.1f} px torn, {smooth:.1f} px relaxed")
    assert torn > 30 and smooth < 0.5 * torn
    assert untangle_targets(edited, mesh, RendererConfig().fold_limit).target_landmarks[0] is not dst
    for name in ("WDA_AlexandriaOcasioCortez_000.mp4", "d12.mp4"):
        clip = our_track(name)
        for emotion in ("happy", "angry", "surprised"):
            e = plan_edit(clip, EditInstruction(emotion=emotion))
            assert untangle_targets(e, build_render_mesh(clip.mean_shape), RendererConfig().fold_limit) is e
    # above the eyes the warp shows a bunched forehead well: the astronaut's surprise at 1.5 turns 0.04 IOD² of it
    # over (relaxed, her fringe got a flat, notched lower edge) and is left as it is
    import tempfile
    from pathlib import Path

    from skimage import data

    from ned_fx.media import write_image
    from ned_fx.pipeline import track_media

    with tempfile.TemporaryDirectory() as tmp:
        write_image(Path(tmp) / "astronaut.png", data.astronaut())
        astronaut = track_media(Path(tmp) / "astronaut.png")
    e = plan_edit(astronaut, EditInstruction(emotion="surprised", intensity=1.5))
    mesh = build_render_mesh(astronaut.mean_shape)
    assert _turned_area(e.source_landmarks[0], e.target_landmarks[0], mesh, skin_only=True) > 0.03
    assert untangle_targets(e, mesh, RendererConfig().fold_limit) is e
