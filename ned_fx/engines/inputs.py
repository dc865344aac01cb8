"""Real engine feeds from real footage: what each engine sees when the pipeline runs on a clip.

``verify`` holds compiled engines to PyTorch on these, not on noise: the detector sees the letterboxed frames,
the mesh and iris nets the crops the tracker takes, the manipulator the shot's fitted action units, the
renderer the shot's face regions with their edit (``happy`` unless told), and the neural renderer's generator
its input for those frames: the edit's conditioning images (and the previous frames') over the aligned face
crop of the plate (refine mode's layout; the crop is the plate's, not the geometry renderer's warp of it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import NoFaceError


def real_feeds(path: str | Path, frames: str | None = None, names: tuple[str, ...] | None = None,
               emotion: str = "happy", max_frames: int = 8, tracker=None,
               weights=None) -> dict[str, dict[str, np.ndarray]]:
    """Track a clip (or photo), plan an edit, and build every engine's feed from it.

    Args:
        path: a movie, image or sequence; frames: its frame range (default: the first ``max_frames``);
        names: which engines (default all); emotion: the edit for the manipulator and renderer feeds;
        max_frames: at most this many frames are read; tracker: a ready CPU
        :class:`~ned_fx.tracking.FaceTracker` to reuse (default: a new one); weights: ``{engine: weights file}``
        (the neural renderer's checkpoint fixes its crop size, frames of history and NMFC colours).

    Returns:
        ``{engine: {input: array}}``.

    Raises:
        InputNotFoundError, UnreadableMediaError, UnsupportedFormatError: the clip cannot be read.
        NoFaceError: no face in the clip.
    """
    import torch

    from ..media import open_media, parse_frame_range
    from ..pipeline import EditInstruction, display_plate, plan_edit, track_media
    from ..tracking import TrackerConfig
    from .specs import ENGINE_NAMES

    names = tuple(names or ENGINE_NAMES)
    with open_media(path, parse_frame_range(frames)) as source:
        pictures, plates = [], []
        for frame in source:
            if len(pictures) == max_frames:
                break
            pictures.append(display_plate(frame))
            plates.append(frame)
    count = len(pictures)
    if frames is None:
        frames = f"{plates[0].number}-{plates[-1].number}" if count > 1 else None
    track = track_media(path, tracker.config if tracker else TrackerConfig(device="cpu"), frames=frames,
                        tracker=tracker)
    found = np.flatnonzero(track.found[:count])
    if not len(found):
        raise NoFaceError(f"no face was found in the first {count} frame(s) of {path}; verify needs a face")
    out: dict[str, dict[str, np.ndarray]] = {}
    rgb = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2)
    if set(names) & {"face_detector", "face_mesh", "iris"}:
        out.update(_tracker_feeds(rgb, track.landmarks_raw[found], found, names))
    if set(names) & {"manipulator", "geometry_renderer", "neural_renderer"}:
        edited = plan_edit(track, EditInstruction(emotion=emotion))
        if "manipulator" in names:
            ok = np.isfinite(edited.au_source).all(axis=1)
            out["manipulator"] = {
                "params": np.where(ok[:, None], edited.au_source, 0.0)[None].astype(np.float32),
                "style": np.asarray(edited.style, np.float32)[None],
                "weights": np.asarray(edited.intensity, np.float32)[None, :, None],
                "gate": np.asarray(edited.speech_gate, np.float32)[None, :, None],
                "region": np.asarray(edited.region_weights, np.float32)}
        if "geometry_renderer" in names:
            out["geometry_renderer"] = _renderer_feed(track, edited, plates, found)
        if "neural_renderer" in names:
            out["neural_renderer"] = _neural_feed(track, edited, plates, found, weights)
    return {n: out[n] for n in names if n in out}


def _tracker_feeds(rgb, landmarks: np.ndarray, which: np.ndarray, names) -> dict:
    import torch

    from ..tracking import geometry as g
    from ..tracking.config import TrackerConfig
    from ..tracking.engine import DETECTOR_SIZE, IRIS_SIZE, MESH_SIZE

    cfg = TrackerConfig()
    _, _, h, w = rgb.shape
    out = {}
    index = torch.as_tensor(which, dtype=torch.long)
    if "face_detector" in names:       # the whole frame, letterboxed into the detector's square
        side = max(w, h)
        affines = np.repeat(g.roi_to_affine(np.array([[w / 2, h / 2, side, 0.0]]), DETECTOR_SIZE), len(which), 0)
        out["face_detector"] = {"images": g.crop_images(rgb, index, affines, DETECTOR_SIZE,
                                                        padding_mode="zeros").numpy()}
    if "face_mesh" in names:           # the tracker's crops around each frame's face
        rois = np.stack([g.roi_from_landmarks(p, cfg.roi_scale) for p in landmarks])
        out["face_mesh"] = {"crops": g.crop_images(rgb, index, g.roi_to_affine(rois, MESH_SIZE), MESH_SIZE).numpy()}
    if "iris" in names:                # both eyes of every face, the subject's left eye mirrored
        crops = []
        for a, b, flip in ((g.EYE_OUTER_RIGHT, g.EYE_INNER_RIGHT, False), (g.EYE_INNER_LEFT, g.EYE_OUTER_LEFT, True)):
            rois = np.stack([g.roi_from_points(p[[a, b]], 0, 1, cfg.iris_roi_scale) for p in landmarks])
            crops.append(g.crop_images(rgb, index, g.roi_to_affine(rois, IRIS_SIZE, flip=flip), IRIS_SIZE))
        out["iris"] = {"crops": torch.cat(crops).numpy()}
    return out


def _renderer_feed(track, edited, plates, found: np.ndarray) -> dict:
    """The shot's face regions (one size: the largest box, centred on each frame's face) and their edit."""
    from ..compositing import extract_region
    from ..rendering import build_render_mesh, face_region_box
    from .specs import renderer_feed

    mesh = build_render_mesh(track.mean_shape)
    boxes, keep = [], []
    for k in found:
        src, dst = edited.source_landmarks[k], edited.target_landmarks[k]
        if not (np.isfinite(dst).all() and np.isfinite(src).all()):
            continue
        boxes.append(face_region_box(np.concatenate([src, dst]), plates[k].width, plates[k].height))
        keep.append(k)
    if not keep:
        raise NoFaceError("no frame with a face and an edit to render")
    bw = max(b[2] - b[0] for b in boxes)
    bh = max(b[3] - b[1] for b in boxes)
    regions, srcs, dsts = [], [], []
    for k, (x0, y0, x1, y1) in zip(keep, boxes):
        width, height = plates[k].width, plates[k].height
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        bx = int(np.clip(cx - bw // 2, 0, max(0, width - bw)))
        by = int(np.clip(cy - bh // 2, 0, max(0, height - bh)))
        box = (bx, by, min(width, bx + bw), min(height, by + bh))
        regions.append(extract_region(plates[k], box).transpose(2, 0, 1))
        offset = np.array([bx, by, 0.0])
        srcs.append(edited.source_landmarks[k] - offset)
        dsts.append(edited.target_landmarks[k] - offset)
    return renderer_feed(np.stack(srcs), dsts, np.stack(regions).astype(np.float32), mesh)


def _neural_feed(track, edited, plates, found: np.ndarray, weights) -> dict:
    """The generator's input for each frame with a face and an edit: conditioning of the target landmarks (and
    of the previous frames'), the plate's aligned face crop in working space, known = 1."""
    import torch

    from ..compositing import extract_region
    from ..rendering import RenderMesh, build_render_mesh
    from ..rendering.neural import NeuralRendererConfig, read_checkpoint
    from ..rendering.neural.conditioning import (Conditioner, PlateEncoding, crop_image, face_similarity,
                                                 label_maps, mean_face_colours, to_rgb, transform_points)
    from .specs import check_weights

    checkpoint = check_weights(weights).get("neural_renderer")
    if checkpoint is not None:          # the actor's architecture, colours and triangulation
        ckpt = read_checkpoint(checkpoint)
        cfg, colours, mesh = ckpt.renderer, np.asarray(ckpt.colours, np.float32), \
            RenderMesh.from_triangles(ckpt.triangles)
    else:
        cfg, colours = NeuralRendererConfig(), mean_face_colours(track.mean_shape)
        mesh = build_render_mesh(track.mean_shape)
    size = cfg.crop_size
    conditioner = Conditioner(mesh, colours, size)
    rows = []
    for i, k in enumerate(found):
        src, dst = edited.source_landmarks[k], edited.target_landmarks[k]
        if not (np.isfinite(dst).all() and np.isfinite(src).all()):
            continue
        affine = face_similarity(src, size, cfg.crop_extent)
        history = [edited.target_landmarks[found[max(0, i - j)]] for j in range(1, cfg.temporal_frames + 1)]
        history = [p if np.isfinite(p).all() else dst for p in history]        # no motion where unknown
        frames = [transform_points(p, affine) for p in (dst, *history)]
        labels = np.stack([label_maps(p, mesh, size) for p in frames])
        with torch.no_grad():
            maps = conditioner(torch.as_tensor(np.stack(frames), dtype=torch.float32),
                               torch.as_tensor(labels, dtype=torch.int64)).reshape(-1, size, size).numpy()
        plate = plates[k]
        region = extract_region(plate, (0, 0, plate.width, plate.height))
        working = PlateEncoding.for_dtype(plate.pixels.dtype).to_working(to_rgb(region))
        crop = crop_image(working, affine, size).transpose(2, 0, 1)
        rows.append(np.concatenate([maps, crop, np.ones((1, size, size), np.float32)]).astype(np.float32))
    if not rows:
        raise NoFaceError("no frame with a face and an edit to render")
    return {"inputs": np.ascontiguousarray(np.stack(rows), np.float32)}
