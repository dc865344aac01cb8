"""The mouth bank: the actor's own open-mouth interiors (teeth, tongue, shading), built once per shot.

:class:`MouthBankBuilder` sees every frame of the shot with a face (and optional extra footage of the actor),
keeps the frames whose inner lips are open, unwarps each interior to the canonical mouth space
(:mod:`.shape`) and keeps the most diverse ``max_entries`` by inner-lip shape. :class:`MouthBank` is the frozen
result, stored as plain arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ... import topology as T
from ...errors import InvalidParameterError
from ..sampling import remap_points
from . import shape as S
from .config import MouthConfig

_KEYS = ("mouth_textures", "mouth_shapes", "mouth_openings", "mouth_widths", "mouth_index", "mouth_ring",
         "mouth_teeth", "mouth_teeth_ring")
#: optional keys (analysis files written before they existed lack them: NaN)
_OPTIONAL = ("mouth_sclera", "mouth_sclera_ring")


@dataclass(frozen=True)
class MouthBank:
    """The shot's open-mouth interiors (N may be 0: a bank with nothing in it is valid).

    Attributes:
        textures: NxHxWxK float32 interiors in the canonical mouth space (plate values, colour channels).
        shapes: Nx20x2 float32 normalised inner-lip shapes (:func:`~.shape.normalised_shape`).
        openings: Nx11 float32 gaps at the 11 facing inner-lip pairs, x mouth width.
        widths: N float32 mouth width (inner-lip corners) x the inter-ocular distance (the interior's scale on
            the face: teeth keep their size when laid into a wider or taller mouth).
        index: N int64 the frame each interior comes from (-1: extra footage).
        ring: NxK float32 mean colour of the lips and the skin around them in that frame (the lighting the
            interior was seen under).
        teeth: K float32 the actor's teeth colour wherever teeth showed in the shot (NaN: never seen; used by the
            synthetic interior when there is no open-mouth frame); teeth_ring: K float32 the ring colour of the
            frames it was measured in.
        sclera: K float32 the actor's eye whites over the shot (NaN: not measured; the synthetic teeth's colour
            when no teeth showed anywhere); sclera_ring: K float32 the ring colour of the frames it was measured in.
    """

    textures: np.ndarray
    shapes: np.ndarray
    openings: np.ndarray
    widths: np.ndarray
    index: np.ndarray
    ring: np.ndarray
    teeth: np.ndarray
    teeth_ring: np.ndarray
    sclera: np.ndarray | None = None
    sclera_ring: np.ndarray | None = None

    def __post_init__(self) -> None:
        k = self.teeth.shape[0]
        for name in ("sclera", "sclera_ring"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.full(k, np.nan, np.float32))

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @classmethod
    def empty(cls, config: MouthConfig | None = None, channels: int = 3) -> "MouthBank":
        """A bank with no interior and no teeth colour."""
        config = config or MouthConfig()
        nan = np.full(channels, np.nan, np.float32)
        return cls(np.zeros((0, config.texture_height, config.texture_width, channels), np.float32),
                   np.zeros((0, 20, 2), np.float32), np.zeros((0, S.PAIRS), np.float32), np.zeros(0, np.float32),
                   np.zeros(0, np.int64), np.zeros((0, channels), np.float32), nan, nan.copy())

    def to_arrays(self) -> dict[str, np.ndarray]:
        return dict(zip(_KEYS + _OPTIONAL, (self.textures, self.shapes, self.openings, self.widths, self.index,
                                            self.ring, self.teeth, self.teeth_ring, self.sclera, self.sclera_ring)))

    @classmethod
    def from_arrays(cls, arrays) -> "MouthBank":
        """Rebuild from :meth:`to_arrays`' dict (or an npz mapping holding those keys).

        Raises:
            InvalidParameterError: a key is missing or the arrays disagree.
        """
        missing = [k for k in _KEYS if k not in arrays]
        if missing:
            raise InvalidParameterError(f"not a mouth bank: {', '.join(missing)} missing")
        tex, shp, opn, wid, idx, ring, teeth, teeth_ring = (np.asarray(arrays[k]) for k in _KEYS)
        n = len(idx)
        k = tex.shape[3] if tex.ndim == 4 else -1
        if (tex.ndim != 4 or tex.shape[0] != n or shp.shape != (n, 20, 2) or opn.shape != (n, S.PAIRS)
                or wid.shape != (n,) or ring.shape != (n, k) or teeth.shape != (k,) or teeth_ring.shape != (k,)):
            raise InvalidParameterError(f"mouth bank arrays disagree: textures {tex.shape}, shapes {shp.shape}, "
                                        f"openings {opn.shape}, index {idx.shape}, ring {ring.shape}, teeth "
                                        f"{teeth.shape}, teeth_ring {teeth_ring.shape}")
        extra = [np.asarray(arrays[key], np.float32) if key in arrays else np.full(k, np.nan, np.float32)
                 for key in _OPTIONAL]
        if any(e.shape != (k,) for e in extra):
            raise InvalidParameterError(f"mouth bank sclera arrays are {[e.shape for e in extra]}, expected ({k},)")
        return cls(tex.astype(np.float32), shp.astype(np.float32), opn.astype(np.float32), wid.astype(np.float32),
                   idx.astype(np.int64), ring.astype(np.float32), teeth.astype(np.float32),
                   teeth_ring.astype(np.float32), *extra)


def sample(image: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` (HxWxK) at continuous pixel ``positions`` (...x2): ...xK float32."""
    shape = positions.shape[:-1]
    pos = positions.reshape(-1, 2).astype(np.float32)
    mx, my = pos[:, 0] - 0.5, pos[:, 1] - 0.5           # OpenCV's pixel centres are at integers
    return remap_points(np.asarray(image, np.float32), mx, my).reshape(*shape, image.shape[2])


_RING_OFFSETS = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])


def ring_colour(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Mean colour (K) of the lips and the skin around them (:func:`~.shape.ring_points`, 5 taps each)."""
    pts = S.ring_points(landmarks)
    return sample(image, pts[:, None, :] + _RING_OFFSETS[None]).reshape(-1, image.shape[2]).mean(0)


def teeth_colour(image: np.ndarray, points: np.ndarray, lips: np.ndarray) -> np.ndarray | None:
    """The colour of the teeth inside inner-lip ``points`` (20x2) where the mouth shows them (brighter and less
    saturated than the ``lips`` colour, K), or None (a closed mouth, or no teeth in view)."""
    if S.gaps(points)[3:8].mean() < 2.0:
        return None
    pix = sample(image, S.canonical_positions(points, 12, 32)[2:-2]).reshape(-1, image.shape[2])
    lum = pix.mean(-1)
    lip_lum = float(lips.mean())
    if image.shape[2] >= 3:
        sat = (pix.max(-1) - pix.min(-1)) / np.maximum(pix.max(-1), 1e-6)
        lip_sat = float((lips.max() - lips.min()) / max(lips.max(), 1e-6))
        teeth = (lum > 1.1 * lip_lum) & (sat < 0.75 * lip_sat + 0.05)
    else:
        teeth = lum > 1.3 * lip_lum
    if teeth.sum() < max(4, 0.05 * len(lum)):
        return None
    return np.median(pix[teeth], axis=0)


_EYES = ((33, 133, 468, (469, 470, 471, 472)), (263, 362, 473, (474, 475, 476, 477)))


def sclera_colour(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """The eye whites' colour (K), or None (no iris points, eyes too small or closed): samples between each
    iris's edge and both corners of its eye, the brighter half of them (lashes, lids and the caruncle are not
    sclera)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape[0] < 478 or not np.isfinite(lm[:478, :2]).all():
        return None
    taps = []
    for outer, inner, centre, ring in _EYES:
        c = lm[centre, :2]
        r = float(np.linalg.norm(lm[list(ring), :2] - c, axis=1).mean())
        for corner in (outer, inner):
            to = lm[corner, :2] - c
            span = float(np.linalg.norm(to))
            if r < 1.0 or span < 1.6 * r + 2.0:
                continue
            start = c + to / span * 1.3 * r
            for f in (0.2, 0.35, 0.5, 0.65):
                taps.append(start + f * (lm[corner, :2] - start))
    if len(taps) < 4:
        return None
    pix = sample(image, np.asarray(taps)).reshape(-1, image.shape[2])
    lum = pix.mean(-1)
    keep = lum >= np.median(lum)
    return np.median(pix[keep], axis=0)


def extract_interior(image: np.ndarray, points: np.ndarray, height: int, width: int) -> np.ndarray:
    """The interior inside inner-lip ``points`` (20x2, image pixels) unwarped to a ``height x width`` canonical
    texture (HxWxK float32). A mouth much larger than the texture is first area-averaged (no aliasing)."""
    import cv2

    pos = S.canonical_positions(points, height, width)
    span = float(S.mouth_width(points))
    scale = min(1.0, 1.5 * width / max(span, 1e-6))
    if scale >= 0.999:
        return sample(image, pos)
    h, w = image.shape[:2]
    lo = np.floor(pos.reshape(-1, 2).min(0) - 4).astype(int)
    hi = np.ceil(pos.reshape(-1, 2).max(0) + 4).astype(int)
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), w), min(int(hi[1]), h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return sample(image, pos)
    crop = np.ascontiguousarray(image[y0:y1, x0:x1], dtype=np.float32)
    nw, nh = max(2, round((x1 - x0) * scale)), max(2, round((y1 - y0) * scale))
    small = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA).reshape(nh, nw, -1)
    sx, sy = nw / (x1 - x0), nh / (y1 - y0)
    return sample(small, (pos - [x0, y0]) * [sx, sy])


def _sharpness(texture: np.ndarray) -> float:
    lum = texture.mean(-1)
    lap = lum[1:-1, 1:-1] * 4 - lum[:-2, 1:-1] - lum[2:, 1:-1] - lum[1:-1, :-2] - lum[1:-1, 2:]
    return float(lap.var() / max(float(lum.mean()) ** 2, 1e-12))


def _diverse(shapes: np.ndarray, openness: np.ndarray, quality: np.ndarray, count: int) -> np.ndarray:
    """Farthest-point sampling of ``count`` of the entries by normalised shape (seeded with the most open one;
    sharper entries win near-ties). Returns the chosen indices."""
    n = len(shapes)
    if n <= count:
        return np.arange(n)
    feats = shapes.reshape(n, -1)
    q = quality / max(float(quality.max()), 1e-12)
    bonus = 0.85 + 0.15 * q
    chosen = [int(np.argmax(openness))]
    dist = np.linalg.norm(feats - feats[chosen[0]], axis=1)
    for _ in range(count - 1):
        k = int(np.argmax(dist * bonus))
        chosen.append(k)
        dist = np.minimum(dist, np.linalg.norm(feats - feats[k], axis=1))
    return np.sort(np.asarray(chosen))


class MouthBankBuilder:
    """Builds a shot's :class:`MouthBank` (the ShotModelBuilder protocol of :mod:`..layers`).

    Usage: ``add(index, pixels, landmarks)`` for every frame of the shot with a face (``index`` >= 0) and for
    frames of extra footage of the same actor (``index`` = -1), then ``finish()`` once.

    Args:
        config: a :class:`MouthConfig` (defaults when None).
    """

    def __init__(self, config: MouthConfig | None = None):
        self.config = config or MouthConfig()
        self._tex: list[np.ndarray] = []
        self._shape: list[np.ndarray] = []
        self._open: list[np.ndarray] = []
        self._width: list[float] = []
        self._index: list[int] = []
        self._ring: list[np.ndarray] = []
        self._sharp: list[float] = []
        self._channels: int | None = None
        self._teeth: list[np.ndarray] = []
        self._teeth_ring: list[np.ndarray] = []
        self._sclera: list[np.ndarray] = []
        self._sclera_ring: list[np.ndarray] = []

    def add(self, index: int, pixels: np.ndarray, landmarks: np.ndarray) -> None:
        """One frame: its index in the shot (-1: extra footage), HxWxK float32 plate values, 478x3 landmarks
        in plate pixels. Frames whose inner lips are (nearly) closed add nothing.

        Raises:
            InvalidParameterError: wrong shapes, or a channel count that differs from earlier frames.
        """
        pixels = np.asarray(pixels)
        lm = np.asarray(landmarks, dtype=np.float64)
        if pixels.ndim != 3 or min(pixels.shape[:2]) < 2:
            raise InvalidParameterError(f"pixels must be HxWxK, got shape {pixels.shape}")
        if lm.ndim != 2 or lm.shape[0] < 468 or lm.shape[1] < 2:
            raise InvalidParameterError(f"landmarks must be Px3 (P >= 468) plate pixels, got shape {lm.shape}")
        if self._channels is None:
            self._channels = pixels.shape[2]
        elif pixels.shape[2] != self._channels:
            raise InvalidParameterError(f"frame {index} has {pixels.shape[2]} channels, earlier frames "
                                        f"{self._channels}")
        pts = S.inner_points(lm)
        if not np.isfinite(pts).all():
            return
        cfg = self.config
        width = float(S.mouth_width(pts))
        gap = S.gaps(pts)
        ring = None
        if len(self._sclera) < cfg.pool_size and width >= 4 and (index % 5 == 0 or index < 0):
            sclera = sclera_colour(pixels, lm)
            if sclera is not None and np.isfinite(sclera).all():
                ring = ring_colour(pixels, lm).astype(np.float32)
                self._sclera.append(sclera.astype(np.float32))
                self._sclera_ring.append(ring)
        if width >= 4 and gap[3:8].mean() >= 2.0 and len(self._teeth) < cfg.pool_size:
            teeth = teeth_colour(pixels, pts, sample(pixels, S.ring_points(lm)[:20]).mean(0))
            if teeth is not None and np.isfinite(teeth).all():
                ring = ring if ring is not None else ring_colour(pixels, lm).astype(np.float32)
                self._teeth.append(teeth.astype(np.float32))
                self._teeth_ring.append(ring)
        if width < 4 or gap[4:7].mean() < max(cfg.min_open * width, cfg.min_open_px):
            return
        tex = extract_interior(pixels, pts, cfg.texture_height, cfg.texture_width)
        if not np.isfinite(tex).all():
            return
        self._tex.append(tex.astype(np.float32))
        self._shape.append(S.normalised_shape(pts).astype(np.float32))
        self._open.append((gap / width).astype(np.float32))
        self._width.append(width / max(float(T.inter_ocular(lm)), 1e-6))
        self._index.append(int(index))
        self._ring.append(ring if ring is not None else ring_colour(pixels, lm).astype(np.float32))
        self._sharp.append(_sharpness(tex))
        if len(self._index) > cfg.pool_size:
            self._keep(_diverse(np.asarray(self._shape), np.asarray(self._open)[:, 4:7].mean(1),
                                np.asarray(self._sharp), 2 * cfg.max_entries))

    def _keep(self, chosen: np.ndarray) -> None:
        for name in ("_tex", "_shape", "_open", "_width", "_index", "_ring", "_sharp"):
            items = getattr(self, name)
            setattr(self, name, [items[i] for i in chosen])

    def finish(self) -> MouthBank:
        """The bank: the ``max_entries`` most diverse interiors seen, in frame order (may be empty)."""
        cfg = self.config
        channels = self._channels or 3
        teeth = np.full(channels, np.nan, np.float32)
        teeth_ring = teeth.copy()
        if self._teeth:
            teeth = np.median(np.stack(self._teeth), axis=0).astype(np.float32)
            teeth_ring = np.median(np.stack(self._teeth_ring), axis=0).astype(np.float32)
        sclera = np.full(channels, np.nan, np.float32)
        sclera_ring = sclera.copy()
        if self._sclera:
            sclera = np.median(np.stack(self._sclera), axis=0).astype(np.float32)
            sclera_ring = np.median(np.stack(self._sclera_ring), axis=0).astype(np.float32)
        if not self._index:
            return replace(MouthBank.empty(cfg, channels), teeth=teeth, teeth_ring=teeth_ring, sclera=sclera,
                           sclera_ring=sclera_ring)
        self._keep(_diverse(np.asarray(self._shape), np.asarray(self._open)[:, 4:7].mean(1),
                            np.asarray(self._sharp), cfg.max_entries))
        order = np.argsort(np.asarray(self._index), kind="stable")
        self._keep(order)
        return MouthBank(np.stack(self._tex), np.stack(self._shape), np.stack(self._open),
                         np.asarray(self._width, np.float32), np.asarray(self._index, np.int64), np.stack(self._ring),
                         teeth, teeth_ring, sclera, sclera_ring)
