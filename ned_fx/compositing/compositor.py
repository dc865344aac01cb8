"""The compositor: blends a rendered face region back into the plate.

Only the colour channels (R, G, B, or Y for grey) inside the region box are edited; every pixel outside the
box, and alpha and any extra channel (EXR "Z", "mask.R", ...) everywhere, are bit-exact copies of the input.
The work happens in the plate's own values (scene-linear floats stay float and unclipped; uint8/uint16 are
rounded and clipped on the way back).
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError, UnsupportedFormatError
from ..media.frames import DEFAULT_CHANNELS, Frame
from ..scratch import per_thread
from .blend import _cv, color_match, laplacian_blend_delta, weigh
from .config import CompositorConfig
from .mask import face_mask

Box = tuple[int, int, int, int]


def color_channel_indices(channels: tuple[str, ...] | None, count: int | None = None) -> tuple[int, ...]:
    """Indices of the colour channels the renderer and compositor edit: R, G, B if present, else Y.

    Args:
        channels: the plate's channel names (``Frame.channels``), or None for a plain array.
        count: the array's channel count when ``channels`` is None (1..4: Y, YA, RGB, RGBA).

    Returns:
        The indices, in R, G, B order (or the Y index).

    Raises:
        UnsupportedFormatError: neither R, G, B nor Y is there.
        InvalidParameterError: a plain array with more than 4 channels and no names.
    """
    if channels is None:
        if count not in DEFAULT_CHANNELS:
            raise InvalidParameterError(f"an array with {count} channels needs channel names (1 to 4 channels "
                                        f"are read as Y, YA, RGB, RGBA)")
        channels = DEFAULT_CHANNELS[count]
    names = tuple(channels)
    if all(c in names for c in ("R", "G", "B")):
        return names.index("R"), names.index("G"), names.index("B")
    if "Y" in names:
        return (names.index("Y"),)
    raise UnsupportedFormatError(f"the plate has channels {', '.join(names)}; a face edit needs R, G and B "
                                 f"channels or a grey Y channel")


def _plate(plate, channels) -> tuple[np.ndarray, tuple[str, ...] | None]:
    if isinstance(plate, Frame):
        return plate.pixels, plate.channels
    arr = np.asarray(plate)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise InvalidParameterError(f"the plate must be a Frame or an (H, W) / (H, W, C) array, got shape {arr.shape}")
    if arr.dtype not in (np.uint8, np.uint16, np.float16, np.float32):
        raise InvalidParameterError(f"plate pixels have dtype {arr.dtype}; valid: uint8, uint16, float16, float32")
    return arr, (tuple(channels) if channels is not None else None)


def _finite(values: np.ndarray) -> bool:
    """Whether every value is finite: two fast reductions (NaN and inf show in the minimum or the maximum)."""
    return bool(np.isfinite(values.min()) and np.isfinite(values.max()))


def _matte(hold: np.ndarray) -> np.ndarray | None:
    """A keep matte as the blend uses it: NaN as 0, clipped to 0..1 (a clean matte as it is, no copy); None when
    it keeps nothing."""
    lo, hi = hold.min(), hold.max()
    if not (lo >= 0.0 and hi <= 1.0):              # NaN, inf or out of range (a clean matte needs no copies)
        hold = np.clip(np.nan_to_num(hold, nan=0.0), 0.0, 1.0)
        hi = hold.max()
    return hold if hi > 0 else None


def _box(box) -> Box:
    try:
        x0, y0, x1, y1 = (int(v) for v in box)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"region_box must be (x0, y0, x1, y1) integers, got {box!r}") from None
    if x1 <= x0 or y1 <= y0:
        raise InvalidParameterError(f"region_box {box} is empty; it is (x0, y0, x1, y1) with the end exclusive")
    return x0, y0, x1, y1


def extract_region(plate, region_box, channels: tuple[str, ...] | None = None) -> np.ndarray:
    """The renderer's input: the plate's colour channels inside the box, as float32 in the plate's own values.

    Args:
        plate: a Frame or an (H, W[, C]) array (native dtype).
        region_box: (x0, y0, x1, y1), end exclusive (from ``ned_fx.rendering.face_region_box``); clipped to
            the plate.
        channels: channel names of an array plate (default by count: Y, YA, RGB, RGBA).

    Returns:
        hxwxK float32 (K = 3 for RGB, 1 for grey), C-contiguous.
    """
    pixels, names = _plate(plate, channels)
    height, width = pixels.shape[:2]
    x0, y0, x1, y1 = _box(region_box)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        raise InvalidParameterError(f"region_box {tuple(region_box)} lies outside the {width}x{height} plate")
    idx = list(color_channel_indices(names, pixels.shape[2]))
    return np.ascontiguousarray(pixels[y0:y1, x0:x1][:, :, idx], dtype=np.float32)


class Compositor:
    """Blends rendered face regions back into plates. Build once, call :meth:`composite` per frame.

    Args:
        config: a :class:`CompositorConfig` (defaults when None).
    """

    def __init__(self, config: CompositorConfig | None = None):
        self.config = config or CompositorConfig()

    def mask(self, region_box, target, source=None) -> np.ndarray:
        """The soft face mask over the region box (for previews and debugging).

        Args:
            region_box: (x0, y0, x1, y1), end exclusive; target, source: Px2 landmarks in PLATE pixels.

        Returns:
            hxw float32 in 0..1.
        """
        x0, y0, x1, y1 = _box(region_box)
        offset = np.array([x0, y0], dtype=np.float64)
        src = None if source is None else np.asarray(source, np.float64)[:, :2] - offset
        return face_mask((y1 - y0, x1 - x0), np.asarray(target, np.float64)[:, :2] - offset, src, self.config)

    def composite(self, plate, rendered_region: np.ndarray, region_box, target_landmarks,
                  source_landmarks=None, channels: tuple[str, ...] | None = None,
                  keep: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Blend a rendered face region into a plate.

        Args:
            plate: a :class:`~ned_fx.media.Frame` or an (H, W[, C]) array in its native dtype (uint8, uint16,
                float16, float32). Not modified.
            rendered_region: hxwxK float32 from the renderer, in the plate's values: K = the colour channels
                (3 for R, G, B in that order, 1 for Y; see :func:`color_channel_indices`), or all C channels of
                the plate (the colour ones are taken).
            region_box: (x0, y0, x1, y1) of ``rendered_region`` in the plate, end exclusive (the box the
                renderer worked on, from ``face_region_box``). Parts outside the plate are cut off (and the
                rendered region with them).
            target_landmarks: Px2/Px3 target landmarks in plate pixels (coordinates of ``plate.pixels``: for
                an EXR whose data window differs from its display window, subtract the data window's origin
                from display-window coordinates).
            source_landmarks: the tracked (source) landmarks in plate pixels, or None; the mask covers both
                faces' ovals.
            channels: channel names of an array plate (default by count: Y, YA, RGB, RGBA).
            keep: hxw float32 matte over the region box (the rendered region's size), 1 where the plate's
                pixel must stay exactly as it is (occluders: glasses frames, hair, a holdout), 0 where the edit
                shows; the edit fades out over its soft edge (``out = plate + (1 - keep) * blend``). None:
                nothing is kept.
            out: where to write the result: an array of the plate's shape and dtype, which may be the plate's own
                pixels (then only the box's colour channels are written, after every check has passed: on an
                error the plate is as it was). A 1080p plate's fresh copy costs more CPU than the blend (its
                pages are new to the process every frame); a caller that no longer needs the plate passes it.
                None: a new array.

        Returns:
            A new array (``out`` when given) of the plate's shape and dtype: colour channels blended inside the
            box; everything else (outside the box, alpha and extra channels, and the pixels where ``keep`` is 1)
            bit-identical to the input.

        Raises:
            InvalidParameterError: shapes or box that do not fit, a bad dtype.
            UnsupportedFormatError: the plate has no R, G, B or Y channels.
            NoFaceError: NaN landmarks.
        """
        import cv2

        pixels, names = _plate(plate, channels)
        height, width = pixels.shape[:2]
        idx = list(color_channel_indices(names, pixels.shape[2]))
        bx0, by0, bx1, by1 = _box(region_box)
        rendered = np.asarray(rendered_region)
        if rendered.ndim == 2:
            rendered = rendered[:, :, None]
        if rendered.ndim != 3 or rendered.shape[:2] != (by1 - by0, bx1 - bx0):
            raise InvalidParameterError(
                f"rendered_region is {rendered.shape} but region_box {tuple(region_box)} is "
                f"{bx1 - bx0}x{by1 - by0}; pass the box the region was rendered for")
        if rendered.shape[2] == pixels.shape[2] and rendered.shape[2] != len(idx):
            rendered = rendered[:, :, idx]
        if rendered.shape[2] != len(idx):
            raise InvalidParameterError(f"rendered_region has {rendered.shape[2]} channels; the plate has "
                                        f"{len(idx)} colour channels ({pixels.shape[2]} in all)")
        x0, y0, x1, y1 = max(bx0, 0), max(by0, 0), min(bx1, width), min(by1, height)
        if x1 <= x0 or y1 <= y0:
            raise InvalidParameterError(f"region_box {tuple(region_box)} lies outside the {width}x{height} plate")
        rendered = rendered[y0 - by0: y1 - by0, x0 - bx0: x1 - bx0].astype(np.float32, copy=False)
        hold = None
        if keep is not None:
            hold = np.asarray(keep, dtype=np.float32)
            if hold.shape != (by1 - by0, bx1 - bx0):
                raise InvalidParameterError(f"keep is {hold.shape} but region_box {tuple(region_box)} is "
                                            f"{bx1 - bx0}x{by1 - by0}; pass a matte over the region box (h, w)")
            hold = _matte(hold[y0 - by0: y1 - by0, x0 - bx0: x1 - bx0])

        if out is None:
            out = pixels.copy()
        elif not isinstance(out, np.ndarray) or out.shape != pixels.shape or out.dtype != pixels.dtype:
            raise InvalidParameterError(f"out must be an array of the plate's shape {pixels.shape} and dtype "
                                        f"{pixels.dtype}, got {getattr(out, 'shape', None)} "
                                        f"{getattr(out, 'dtype', type(out).__name__)}")
        elif out is not pixels:
            if np.shares_memory(out, pixels):
                raise InvalidParameterError("out overlaps the plate's pixels without being them; pass the plate's "
                                            "own pixels array or a separate one")
            np.copyto(out, pixels)
        box = out[y0:y1, x0:x1]                                      # a view: writing it writes `out`
        # the colour channels as a slice when they are adjacent (RGB, RGBA, Y...): no gather/scatter copies
        cols = slice(idx[0], idx[-1] + 1) if idx == list(range(idx[0], idx[-1] + 1)) else idx
        space = per_thread(self)                 # the frame's temporaries, in the last frame's memory
        plate_region = space.take("plate", (y1 - y0, x1 - x0, len(idx)))
        np.copyto(plate_region, box[:, :, cols])
        bad = None                                                   # non-finite plate values (floats only)
        if pixels.dtype.kind == "f" and not _finite(plate_region):
            bad = ~np.isfinite(plate_region)
        base = plate_region if bad is None else np.where(bad, np.float32(0.0), plate_region)
        rend = rendered if _finite(rendered) else np.where(np.isfinite(rendered), rendered, base)
        offset = np.array([x0, y0], dtype=np.float64)
        tgt = np.asarray(target_landmarks, np.float64)[:, :2] - offset
        src = None if source_landmarks is None else np.asarray(source_landmarks, np.float64)[:, :2] - offset
        mask = face_mask((y1 - y0, x1 - x0), tgt, src, self.config, space)
        if self.config.color_match:
            gain, shift = color_match(rend, base, mask, self.config.color_match_max_gain)
            if not (np.all(gain == 1.0) and np.all(shift == 0.0)):
                rend = rend * gain + shift
        delta = np.subtract(rend, base, out=space.take("delta", base.shape))
        if bad is not None:
            delta[bad] = 0.0
        blended = laplacian_blend_delta(delta, mask, self.config.levels, space)
        if hold is not None:                 # the kept pixels get exactly nothing added
            weigh(blended, np.subtract(1.0, hold, out=space.take("free", hold.shape)), blended, space)
        if pixels.dtype.kind == "u":         # plate + blend, rounded to nearest and saturated, in one pass
            depth = cv2.CV_8U if pixels.dtype == np.uint8 else cv2.CV_16U
            result = cv2.add(blended, plate_region, dtype=depth,
                             dst=_cv(space.take("result", blended.shape, pixels.dtype))).reshape(blended.shape)
        else:
            result = np.add(blended, plate_region, out=blended)
        box[:, :, cols] = result
        return out

    def weights(self, plate_size, region_box, target_landmarks, source_landmarks=None,
                keep: np.ndarray | None = None) -> np.ndarray:
        """The per-pixel weights :meth:`composite` blends with, over the whole plate: the soft face mask times
        ``1 - keep`` inside the region box (clipped to the plate), 0 elsewhere. The same steps as
        :meth:`composite` (same box clipping, same mask, same ``keep`` clean-up), so a matte written from them is
        what the blend used.

        Args:
            plate_size: ``(height, width)`` of the plate's pixels (or a plate array / Frame, whose pixels' size
                is taken).
            region_box, target_landmarks, source_landmarks, keep: as for :meth:`composite`.

        Returns:
            (height, width) float32 in 0..1.

        Raises:
            InvalidParameterError: a box outside the plate, or a ``keep`` that does not fit the box.
        """
        if isinstance(plate_size, Frame):
            plate_size = plate_size.pixels.shape
        elif isinstance(plate_size, np.ndarray):
            plate_size = plate_size.shape
        height, width = int(plate_size[0]), int(plate_size[1])
        bx0, by0, bx1, by1 = _box(region_box)
        x0, y0, x1, y1 = max(bx0, 0), max(by0, 0), min(bx1, width), min(by1, height)
        if x1 <= x0 or y1 <= y0:
            raise InvalidParameterError(f"region_box {tuple(region_box)} lies outside the {width}x{height} plate")
        offset = np.array([x0, y0], dtype=np.float64)
        tgt = np.asarray(target_landmarks, np.float64)[:, :2] - offset
        src = None if source_landmarks is None else np.asarray(source_landmarks, np.float64)[:, :2] - offset
        mask = face_mask((y1 - y0, x1 - x0), tgt, src, self.config).astype(np.float32, copy=False)
        if keep is not None:
            hold = np.asarray(keep, dtype=np.float32)
            if hold.shape != (by1 - by0, bx1 - bx0):
                raise InvalidParameterError(f"keep is {hold.shape} but region_box {tuple(region_box)} is "
                                            f"{bx1 - bx0}x{by1 - by0}; pass a matte over the region box (h, w)")
            hold = _matte(hold[y0 - by0: y1 - by0, x0 - bx0: x1 - bx0])
            if hold is not None:
                mask = mask * (1.0 - hold)
        out = np.zeros((height, width), np.float32)
        out[y0:y1, x0:x1] = mask
        return out

    def composite_frame(self, frame: Frame, rendered_region: np.ndarray, region_box, target_landmarks,
                        source_landmarks=None, keep: np.ndarray | None = None, in_place: bool = False) -> Frame:
        """:meth:`composite` on a Frame, returning a Frame (windows, channels and metadata kept); ``in_place``:
        the frame's own pixels are written (``out=frame.pixels``) instead of a copy."""
        return frame.with_pixels(self.composite(frame, rendered_region, region_box, target_landmarks,
                                                source_landmarks, keep=keep,
                                                out=frame.pixels if in_place else None))
