"""Geometry of MediaPipe's face pipeline, reimplemented: SSD anchors, box decoding, weighted NMS, regions of
interest (rotated squares) from detections and from landmarks, and batched crops by affine sampling.

Coordinates are continuous pixel coordinates of the frame: (0, 0) is the top-left corner of the top-left pixel,
pixel (i, j) has its centre at (i + 0.5, j + 0.5); x right, y down. A region of interest (ROI) is a row
``(cx, cy, size, angle)``: a square of side ``size`` pixels centred on (cx, cy), rotated by ``angle`` radians
(positive turns the square's x axis towards +y).
"""

from __future__ import annotations

import math

import numpy as np

from ..scratch import per_thread

# Landmark indices the ROI logic uses (MediaPipe's face mesh topology).
EYE_OUTER_RIGHT = 33     # the subject's right eye, outer corner (image left on a frontal face)
EYE_OUTER_LEFT = 263     # the subject's left eye, outer corner
EYE_INNER_RIGHT = 133
EYE_INNER_LEFT = 362


def ssd_anchors(input_size: int = 128, strides: tuple[int, ...] = (8, 16, 16, 16)) -> np.ndarray:
    """Anchor centres of BlazeFace short-range (MediaPipe's SsdAnchorsCalculator, fixed anchor size).

    Returns:
        Nx2 float32 anchor centres in 0..1 (N = 896 for the defaults), in the network's output order.
    """
    anchors = []
    i = 0
    while i < len(strides):
        stride = strides[i]
        per_cell = 0
        while i < len(strides) and strides[i] == stride:
            per_cell += 2          # aspect ratio 1.0 plus the interpolated scale, per layer
            i += 1
        cells = math.ceil(input_size / stride)
        for y in range(cells):
            for x in range(cells):
                anchors.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell)
    return np.asarray(anchors, dtype=np.float32)


def decode_detections(regressors, scores, anchors, input_size: int = 128) -> tuple:
    """Decode BlazeFace outputs into boxes + keypoints.

    Args:
        regressors: BxNx16 raw regressors; scores: BxNx1 raw logits; anchors: Nx2 centres in 0..1.

    Returns:
        ``(points, prob)``: points BxNx8x2 in 0..1 of the detector input — rows 0,1 the box's min and max
        corners, rows 2..7 the keypoints (right eye, left eye, nose tip, mouth, right ear, left ear);
        prob BxN detection probabilities.
    """
    import torch

    r = regressors / input_size
    centre = r[..., 0:2] + anchors
    half = r[..., 2:4] / 2
    keypoints = r[..., 4:16].reshape(*r.shape[:-1], 6, 2) + anchors[:, None, :]
    points = torch.cat([(centre - half)[..., None, :], (centre + half)[..., None, :], keypoints], dim=-2)
    prob = torch.sigmoid(scores[..., 0].clamp(-100.0, 100.0))
    return points, prob


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda b: np.prod(np.clip(b[..., 2:] - b[..., :2], 0, None), axis=-1)  # noqa: E731
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boxes ``(x0, y0, x1, y1)``."""
    return float(_iou(np.asarray(a, np.float64), np.asarray(b, np.float64)[None])[0])


def weighted_nms(points: np.ndarray, prob: np.ndarray, min_score: float, iou: float,
                 max_out: int) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression for one image.

    Args:
        points: Nx8x2 decoded points (see :func:`decode_detections`); prob: N probabilities.

    Returns:
        Up to ``max_out`` ``(points 8x2, score)`` pairs, best first; overlapping candidates are averaged,
        weighted by score.
    """
    keep = prob >= min_score
    pts, scores = points[keep].astype(np.float64), prob[keep].astype(np.float64)
    order = np.argsort(-scores)
    pts, scores = pts[order], scores[order]
    out: list[tuple[np.ndarray, float]] = []
    remaining = np.arange(len(scores))
    while len(remaining) and len(out) < max_out:
        boxes = pts[remaining][:, :2, :].reshape(-1, 4)
        merge = _iou(boxes[0], boxes) > iou
        merge[0] = True
        group = remaining[merge]
        w = scores[group]
        merged = (pts[group] * w[:, None, None]).sum(0) / w.sum()
        out.append((merged.astype(np.float32), float(scores[remaining[0]])))
        remaining = remaining[~merge]
    return out


def detection_tiles(width: int, height: int, smallest: float, step: float = 0.6, fill: float = 0.2,
                    min_side: float = 128.0) -> list[np.ndarray]:
    """The overlapping square windows a frame is searched in for faces too small for the detector on the whole
    frame, coarse to fine: per level a Kx4 array of ROIs ``(cx, cy, side, 0)`` (see :func:`roi_to_affine`).

    Each level's side is ``step`` times the last's (the whole frame's longer side first, not listed), its windows
    at most half a side apart along each axis and spread evenly from edge to edge, so a face box up to half a
    side lies wholly inside one of them; the levels go down to the side in which a face box of ``smallest`` x the
    frame's longer side fills ``fill`` of the window (BlazeFace's short-range model finds boxes down to ~0.14-0.18
    of its window), and no smaller than ``min_side`` pixels (the detector's input: smaller would upsample).
    """
    side = float(max(width, height))
    floor = max(smallest * side / fill, min_side)
    levels = []
    size = side * step
    while size >= floor * 0.999 and smallest > 0:
        axes = []
        for extent in (width, height):
            if extent <= size:
                axes.append(np.array([extent / 2.0]))
            else:
                n = int(math.ceil((extent - size) / (size / 2.0) - 1e-9)) + 1
                axes.append(np.linspace(size / 2.0, extent - size / 2.0, n))
        cx, cy = np.meshgrid(axes[0], axes[1])
        rois = np.stack([cx.ravel(), cy.ravel(), np.full(cx.size, size), np.zeros(cx.size)], axis=1)
        levels.append(rois)
        size *= step
    return levels


def tile_owns(roi: np.ndarray, centre: np.ndarray, width: int, height: int) -> bool:
    """Whether a detection centred at ``centre`` (frame pixels) belongs to the window ``roi`` of
    :func:`detection_tiles`: its centre lies in the window's middle half (a face box up to half a side is then
    wholly inside it, not cut by the window's edge), or beyond it toward the frame's edge where the window is the
    last one on that side."""
    cx, cy, size = float(roi[0]), float(roi[1]), float(roi[2])
    for c, mid, extent in ((centre[0], cx, width), (centre[1], cy, height)):
        lo, hi = mid - size / 4.0, mid + size / 4.0
        if mid - size / 2.0 <= 0.5:
            lo = -math.inf
        if mid + size / 2.0 >= extent - 0.5:
            hi = math.inf
        if not lo <= c <= hi:
            return False
    return True


def _rotation(p0: np.ndarray, p1: np.ndarray) -> float:
    angle = -math.atan2(-(p1[1] - p0[1]), p1[0] - p0[0])
    return (angle + math.pi) % (2 * math.pi) - math.pi


def roi_from_detection(points_px: np.ndarray, scale: float = 1.5) -> np.ndarray:
    """ROI of the face mesh from a detection (box + keypoints in pixels): eyes set the angle.

    Returns:
        ``(cx, cy, size, angle)`` float64.
    """
    (x0, y0), (x1, y1) = points_px[0], points_px[1]
    angle = _rotation(points_px[2], points_px[3])
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * scale, angle])


def _bounds(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column min and max of Nx2 points (a strided view of landmarks): reduced along contiguous rows of a
    transposed copy, ~4 us where numpy's reduction down the strided columns took ~27 (once a frame)."""
    rows = xy.T.copy()
    return rows.min(1), rows.max(1)


def roi_from_landmarks(landmarks_px: np.ndarray, scale: float = 1.5) -> np.ndarray:
    """ROI of the face mesh from the previous frame's 468 landmarks (MediaPipe's tracking ROI)."""
    xy = landmarks_px[:468, :2]
    lo, hi = _bounds(xy)
    angle = _rotation(xy[EYE_OUTER_RIGHT], xy[EYE_OUTER_LEFT])
    return np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, max(hi - lo) * scale, angle])


def roi_from_points(points_px: np.ndarray, start: int, end: int, scale: float) -> np.ndarray:
    """ROI around a set of points whose ``start``->``end`` vector sets the angle (the iris crops)."""
    lo, hi = _bounds(points_px[:, :2])
    angle = _rotation(points_px[start], points_px[end])
    return np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, max(hi - lo) * scale, angle])


def roi_box(roi: np.ndarray) -> np.ndarray:
    """Axis-aligned box ``(x0, y0, x1, y1)`` around a ROI (for overlap tests)."""
    cx, cy, size, angle = roi
    half = size / 2 * (abs(math.cos(angle)) + abs(math.sin(angle)))
    return np.array([cx - half, cy - half, cx + half, cy + half])


def roi_to_affine(rois: np.ndarray, crop: int, flip: bool = False) -> np.ndarray:
    """Affine maps from crop pixel coordinates to frame pixel coordinates.

    Args:
        rois: Kx4 ``(cx, cy, size, angle)``; crop: side of the square crop in pixels;
        flip: mirror the crop horizontally (MediaPipe feeds the second eye mirrored to the iris net).

    Returns:
        Kx2x3 float64 ``A`` with ``frame_xy = A[:, :2] @ crop_xy + A[:, 2]``.
    """
    rois = np.asarray(rois, np.float64).reshape(-1, 4)
    cos, sin = np.cos(rois[:, 3]), np.sin(rois[:, 3])
    s = rois[:, 2] / crop
    sx = -s if flip else s
    a = np.zeros((len(rois), 2, 3))
    a[:, 0, 0], a[:, 0, 1] = cos * sx, -sin * s
    a[:, 1, 0], a[:, 1, 1] = sin * sx, cos * s
    half = crop / 2
    a[:, 0, 2] = rois[:, 0] - (a[:, 0, 0] * half + a[:, 0, 1] * half)
    a[:, 1, 2] = rois[:, 1] - (a[:, 1, 0] * half + a[:, 1, 1] * half)
    return a


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map Px2 (or PxD, the first two columns) points through a 2x3 affine; other columns pass through."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[:, :2] = points[:, :2] @ affine[:, :2].T + affine[:, 2]
    return out


def crop_images(frames, frame_index, affines: np.ndarray, crop: int, padding_mode: str = "border"):
    """Sample square crops from frames, bilinear.

    Only the pixels under each crop (its bounding box plus a 2-pixel margin) are converted to float, so a 4K
    uint8 plate costs the same as a 512² one.

    Args:
        frames: FxCxHxW, a torch tensor (any device), uint8 (0..255, scaled to 0..1 here) or float (0..1), or a
            uint8 numpy array (the onnxruntime tracker's: no torch);
        frame_index: K ints (a sequence, or a long tensor), which frame each crop reads; affines: Kx2x3
            crop->frame maps (see :func:`roi_to_affine`); crop: output side; padding_mode: ``"border"``
            (replicate) or ``"zeros"``.

    Returns:
        KxCxcropxcrop float32: a torch tensor for tensor frames, else a numpy array (a view of NHWC memory).
    """
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8:
            raise TypeError(f"numpy frames to crop must be uint8, got {frames.dtype}")
        return _crop_images_cv2(frames, frame_index, affines, crop, padding_mode)
    import torch
    from torch.nn import functional as F

    if frames.device.type == "cpu" and frames.dtype == torch.uint8 and len(frame_index):
        return _crop_images_cv2(frames, frame_index, affines, crop, padding_mode)
    frame_index = torch.as_tensor(frame_index, dtype=torch.long)
    _, _, h, w = frames.shape
    dev = frames.device
    centres = torch.arange(crop, device=dev, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(centres, centres, indexing="ij")
    grid = torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(-1, 3)                  # Px3
    corners = np.array([[0.0, 0.0, 1.0], [crop, 0.0, 1.0], [0.0, crop, 1.0], [crop, crop, 1.0]])
    out = []
    for k, i in enumerate(frame_index.tolist()):
        a = np.asarray(affines[k], np.float64)
        x0, y0, x1, y1 = _sub_box(corners @ a.T, w, h)
        sub = frames[i: i + 1, :, y0:y1, x0:x1]
        sub = sub.float().div_(255.0) if sub.dtype == torch.uint8 else sub.float()
        xy = grid @ torch.as_tensor(a.T, dtype=torch.float32, device=dev)                 # Px2 frame pixels
        norm = torch.stack([(xy[:, 0] - x0) * (2.0 / (x1 - x0)) - 1.0, (xy[:, 1] - y0) * (2.0 / (y1 - y0)) - 1.0], -1)
        # the sub-box holds every sample (+ margin) and meets the frame's edge wherever samples leave the
        # frame, so its padding is the frame's
        out.append(F.grid_sample(sub, norm.reshape(1, crop, crop, 2), mode="bilinear", padding_mode=padding_mode,
                                 align_corners=False))
    return torch.cat(out) if out else torch.zeros(0, frames.shape[1], crop, crop, device=dev)


def _sub_box(pts: np.ndarray, w: int, h: int) -> tuple[int, int, int, int]:
    """The frame's box (end exclusive, never empty) under a crop whose corners land at ``pts``, 2 px of margin."""
    x0 = int(min(max(np.floor(pts[:, 0].min()) - 2, 0), w - 1))
    y0 = int(min(max(np.floor(pts[:, 1].min()) - 2, 0), h - 1))
    x1 = int(max(min(np.ceil(pts[:, 0].max()) + 2, w), x0 + 1))
    y1 = int(max(min(np.ceil(pts[:, 1].max()) + 2, h), y0 + 1))
    return x0, y0, x1, y1


class _Crops:
    """The owner of the CPU crops' per-thread work arrays (:func:`ned_fx.scratch.per_thread`)."""


_CROPS = _Crops()


def _as_float(pixels: np.ndarray) -> np.ndarray:
    """``pixels.astype(np.float32)`` in this thread's work array (a detector's crop reads the whole frame: a new
    1080p float frame costs ~8 ms, mostly page faults; the reused one ~2). Valid until this thread's next call.
    A 4K frame's 100 MB is over the work arrays' limit: a fresh array, as ``astype`` gives."""
    out = per_thread(_CROPS).take("float_frame", pixels.shape)
    np.copyto(out, pixels, casting="unsafe")
    return out


def _crop_images_cv2(frames, frame_index, affines: np.ndarray, crop: int, padding_mode: str):
    """:func:`crop_images` on the CPU in one OpenCV warp per crop (the sub-box under the crop converted to float
    first, so values are not rounded; sample positions to 1/32 pixel, as OpenCV's and MediaPipe's CPU crops), of
    uint8 frames (a CPU tensor: a tensor back; a numpy array: numpy back)."""
    import cv2

    _, _, h, w = frames.shape
    host = isinstance(frames, np.ndarray)
    # the tracker's frames are NHWC in memory: a free view
    hwc = frames.transpose(0, 2, 3, 1) if host else frames.permute(0, 2, 3, 1).numpy()
    index = frame_index.tolist() if hasattr(frame_index, "tolist") else list(frame_index)
    corners = np.array([[0.0, 0.0, 1.0], [crop, 0.0, 1.0], [0.0, crop, 1.0], [crop, crop, 1.0]])
    border = cv2.BORDER_REPLICATE if padding_mode == "border" else cv2.BORDER_CONSTANT
    out = np.empty((len(frame_index), crop, crop, frames.shape[1]), np.float32)
    for k, i in enumerate(index):
        a = np.asarray(affines[k], np.float64)
        x0, y0, x1, y1 = _sub_box(corners @ a.T, w, h)
        sub = _as_float(hwc[i, y0:y1, x0:x1])      # code values, not rounded by the warp
        # crop pixel centre (c + 0.5) -> frame position A (c + 0.5) -> sub-box pixel index (minus the origin, - 0.5)
        m = a.copy()
        m[:, 2] = a[:, 2] + a[:, :2].sum(1) * 0.5 - 0.5 - np.array([x0, y0])
        # the sub-box meets the frame's edge wherever samples leave the frame, so its border is the frame's
        out[k] = cv2.warpAffine(sub, m, (crop, crop), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=border, borderValue=0).reshape(crop, crop, -1)
    # scaled to 0..1 once, on the crops (fewer pixels than the sub-boxes under them; the same values to rounding)
    out *= np.float32(1 / 255)
    if host:
        return out.transpose(0, 3, 1, 2)
    import torch

    return torch.from_numpy(out).permute(0, 3, 1, 2)
