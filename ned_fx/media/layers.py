"""Layer-ready outputs: the edit's matte, and a patch with premultiplied alpha that goes ``over`` the host's plate.

* The **matte** is the weight the compositor blended each pixel with (the soft face mask times ``1 - keep``):
  an extra channel (``ned.matte`` or a name the user gives) of EXR outputs, a matte file beside other outputs
  (:func:`matte_path`).
* A **patch** holds only what the edit changed, premultiplied over transparent black, at the plate's size and
  position: ``over(patch, plate) = patch + (1 - alpha) * plate`` gives back the full-frame edit (float: bit for
  bit, computed as :func:`over` does, save the sign of a zero; 8/16-bit: within one code value). Its alpha is
  the matte where the edit changed a pixel, raised where the multi-band blend reaches a little past the mask's
  soft edge (a premultiplied colour must lie between 0 and alpha), and 0 where the plate was left as it was —
  so the host's own decode of the plate shows everywhere outside the edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidParameterError, UnsupportedFormatError
from .frames import Frame
from .paths import MOVIE_EXTENSIONS, is_sequence_pattern

#: what an edit's output holds: the whole frame, or the edited region with alpha
LAYERS: tuple[str, ...] = ("full", "patch")
#: the matte's default EXR channel name
MATTE_CHANNEL = "ned.matte"
#: extensions a patch can be written as (stills and sequences; movies: ProRes 4444 in .mov/.mkv)
PATCH_IMAGE_EXTENSIONS: tuple[str, ...] = (".exr", ".png", ".tif", ".tiff")


@dataclass(frozen=True)
class LayerConfig:
    """What an edit delivers besides the pixels: layer kind, matte, the movie decode and codec.

    Attributes:
        layer: ``"full"`` (default: the whole frame) or ``"patch"`` (the edited region, premultiplied alpha).
        matte: write the compositor's weights (an EXR channel, else a matte file beside the output).
        matte_channel: the EXR channel name of the matte.
        yuv_conversion: a movie source's YUV to RGB conversion: ``"exact"`` (default) or ``"ffmpeg"``.
        codec: a movie output's codec (one of :data:`~ned_fx.media.MOVIE_CODECS`); None: ProRes 4444 for a patch
            movie, else the source movie's own (:meth:`movie_codec`).
    """

    layer: str = "full"
    matte: bool = False
    matte_channel: str = MATTE_CHANNEL
    yuv_conversion: str = "exact"
    codec: str | None = None

    def __post_init__(self):
        from .readers import check_yuv_conversion
        from .writers import MOVIE_CODECS

        if self.layer not in LAYERS:
            raise InvalidParameterError(f"layer {self.layer!r} is not known; valid: {', '.join(LAYERS)}")
        name = self.matte_channel
        if not isinstance(name, str) or not name.strip() or any(c in name for c in "\0\n\r\t ") \
                or name in ("R", "G", "B", "A", "Y") or len(name) > 255:
            raise InvalidParameterError(f"matte channel name {name!r} is not valid: give a name such as "
                                        f"{MATTE_CHANNEL} (no spaces, not R, G, B, A or Y)")
        check_yuv_conversion(self.yuv_conversion)
        if self.codec is not None and self.codec not in MOVIE_CODECS:
            raise InvalidParameterError(f"movie codec {self.codec!r} is not supported; valid: "
                                        f"{', '.join(MOVIE_CODECS)}")

    def key(self) -> dict:
        """What of this config changes the files written (part of a sequence's resume key)."""
        return {"layer": self.layer, "matte": self.matte_channel if self.matte else None,
                "yuv_conversion": self.yuv_conversion, "codec": self.codec}

    def movie_codec(self, output: str | Path | None = None, source: str | Path | None = None) -> str:
        """The codec a movie output is written with: the one asked for; else ProRes 4444 for a patch; else the
        source movie's own (``source``: ProRes in, ProRes out at its profile, 10-bit kept; DNxHR; HEVC; VP9) where
        the ``output``'s container holds it; else the container's usual one (H.264; VP9 for .webm, MPEG-4 for
        .avi, DNxHR HQ for .mxf)."""
        from .readers import movie_codec_of
        from .writers import MOVIE_CODECS

        if self.codec is not None:
            return self.codec
        if self.layer == "patch":
            return "prores_4444"
        ext = Path(output).suffix.lower() if output is not None else ".mov"
        own = movie_codec_of(source) if source is not None else None
        if own is not None and ext in MOVIE_CODECS[own][1]:
            return own
        return _CONTAINER_CODEC.get(ext, "libx264")


#: a movie container's usual codec where neither the user nor the source says (H.264 elsewhere)
_CONTAINER_CODEC = {".webm": "libvpx-vp9", ".avi": "mpeg4", ".mxf": "dnxhr_hq"}


def check_layer_output(output: str | Path, kind: str, config: LayerConfig, source: str | Path | None = None) -> None:
    """Refuse, before any work, a layer/matte/codec choice the output cannot hold.

    Args:
        output: the output path (file or sequence pattern); kind: ``"movie"``, ``"sequence"`` or ``"image"``.

    Raises:
        UnsupportedFormatError: a patch to a format without alpha (JPEG, BMP, DPX; a movie codec other than
            ProRes 4444), or a codec for an image output.
        InvalidParameterError: a codec the movie's container cannot hold.
    """
    out = Path(output)
    ext = out.suffix.lower()
    if kind != "movie":
        if config.codec is not None:
            raise InvalidParameterError(f"--codec applies to movie outputs, not to {out.name}")
        if config.layer == "patch" and ext not in PATCH_IMAGE_EXTENSIONS:
            raise UnsupportedFormatError(
                f"a patch needs an alpha channel, which {ext or 'this format'} cannot hold ({out.name}); write "
                f"{', '.join(PATCH_IMAGE_EXTENSIONS)} (or a ProRes 4444 .mov)")
        return
    from .writers import ALPHA_CODECS, MOVIE_CODECS

    codec = config.movie_codec(output, source)
    _, extensions, _ = MOVIE_CODECS[codec]
    if ext not in extensions:
        raise InvalidParameterError(f"codec {codec} cannot be written to a {ext} file; use {' or '.join(extensions)}"
                                    + (" (a patch movie is ProRes 4444 with alpha)" if config.layer == "patch"
                                       else ""))
    if config.layer == "patch" and codec not in ALPHA_CODECS:
        raise UnsupportedFormatError(f"a patch movie needs alpha: codec {codec} has none; use "
                                     f"{' or '.join(ALPHA_CODECS)} (.mov)")


def matte_path(output: str | Path) -> Path:
    """Where the matte of an output that cannot hold it as a channel goes: beside it, ``.matte`` before the
    extension (``shot.####.png`` -> ``shot.matte.####.png``; a movie keeps its extension; a JPEG/BMP/DPX
    output's matte is a 16-bit PNG, a TIFF's a float TIFF)."""
    out = Path(output)
    ext = out.suffix.lower()
    keep_ext = ext in MOVIE_EXTENSIONS or ext in (".png", ".tif", ".tiff")
    new_ext = out.suffix if keep_ext else ".png"
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    if is_sequence_pattern(out):
        import re

        token = re.search(r"%0?\d*d|#+|@+", stem)
        if token is not None:
            head = stem[: token.start()].rstrip("._") or "matte"
            return out.with_name(f"{head}.matte.{stem[token.start():]}{new_ext}")
    return out.with_name(f"{stem}.matte{new_ext}")


def _colour_indices(channels: tuple[str, ...]) -> list[int]:
    if all(c in channels for c in ("R", "G", "B")):
        return [channels.index(c) for c in ("R", "G", "B")]
    if "Y" in channels:
        return [channels.index("Y")]
    raise UnsupportedFormatError(f"channels {', '.join(channels)} have no picture (R, G, B or Y) for a patch")


def matte_frame(weights: np.ndarray, like: Frame, ext: str) -> Frame:
    """The matte as a one-channel (Y) frame for a separate file: float32 for EXR/TIFF, else 16-bit."""
    w = np.clip(np.asarray(weights, np.float32), 0.0, 1.0)
    if ext in (".exr", ".tif", ".tiff"):
        px = w[..., None]
    else:
        px = np.round(w * 65535.0).astype(np.uint16)[..., None]
    return Frame(number=like.number, pixels=np.ascontiguousarray(px), channels=("Y",),
                 data_window=like.data_window, display_window=like.display_window)


def with_matte_channel(frame: Frame, weights: np.ndarray, name: str = MATTE_CHANNEL) -> Frame:
    """``frame`` (float pixels, for EXR) with the matte added as channel ``name``, stored as 32-bit float
    (the other channels keep their own type)."""
    if frame.pixels.dtype.kind != "f":
        raise InvalidParameterError(f"a matte channel goes into a float (EXR) frame, not {frame.pixels.dtype}")
    if name in frame.channels:
        raise InvalidParameterError(f"the plate already has a channel {name!r}; give the matte another name")
    types = frame.channel_dtypes or (str(frame.pixels.dtype),) * len(frame.channels)
    px = np.concatenate([frame.pixels.astype(np.float32, copy=False),
                         np.asarray(weights, np.float32)[..., None]], axis=2)
    return Frame(number=frame.number, pixels=np.ascontiguousarray(px), channels=tuple(frame.channels) + (name,),
                 data_window=frame.data_window, display_window=frame.display_window, metadata=frame.metadata,
                 channel_dtypes=tuple(types) + ("float32",))


def _changed(out: np.ndarray, plate: np.ndarray) -> np.ndarray:
    same = out == plate
    if out.dtype.kind == "f":
        same |= np.isnan(out) & np.isnan(plate)
    return ~np.all(same, axis=2)


def _needed_alpha(o: np.ndarray, p: np.ndarray, w: np.ndarray, white: float | None) -> np.ndarray:
    """The least alpha >= w for which ``o - (1 - a) p`` is a valid premultiplied colour: >= 0, and <= a * white
    (integer pictures; float ones where plate and edit are both within 0..1: scene-linear highlights may add
    light over alpha 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.where((p > 0) & (o >= 0), 1.0 - o / p, 0.0)                    # the patch stays >= 0
        a = np.maximum(w, np.nan_to_num(low.max(axis=2), nan=0.0, posinf=1.0, neginf=0.0))
        if white is not None:                                                   # ... and <= alpha * white
            high = np.where(p < white, (o - p) / (white - p), np.where(o > p, 1.0, 0.0))
        else:
            high = np.where((p < 1.0) & (o <= 1.0), (o - p) / (1.0 - p), 0.0)
        a = np.maximum(a, np.nan_to_num(high.max(axis=2), nan=1.0, posinf=1.0, neginf=0.0))
    return np.clip(a, 0.0, 1.0)


def patch_frame(plate: Frame, out: Frame, weights: np.ndarray | None) -> Frame:
    """The patch of an edited frame: its colour channels premultiplied over transparent black, plus ``A``.

    Args:
        plate: the frame as decoded (converted for the output format as ``out`` was).
        out: the full-frame edit of it (same shape and channels).
        weights: (H, W) the compositor's weights (:meth:`~ned_fx.compositing.Compositor.weights`); None
            without them (a full frame made elsewhere): alpha is then the least that keeps the patch a valid
            premultiplied colour — still exact ``over`` the plate, but not a soft matte.

    Returns:
        A frame with the colour channels (R, G, B or Y) and A, at the plate's windows: float32 when the plate is
        float (``over`` then gives ``out`` back bit for bit), else uint16 (an 8-bit plate's codes times 257;
        ``over`` within one code value).

    Raises:
        InvalidParameterError: frames of different shapes or types.
    """
    if out.pixels.shape != plate.pixels.shape or out.pixels.dtype != plate.pixels.dtype:
        raise InvalidParameterError(f"the edit {out.pixels.shape} {out.pixels.dtype} and its plate "
                                    f"{plate.pixels.shape} {plate.pixels.dtype} differ in shape or type")
    idx = _colour_indices(tuple(out.channels))
    changed_full = _changed(out.pixels[..., idx], plate.pixels[..., idx])
    if weights is not None and np.shape(weights) != changed_full.shape:
        raise InvalidParameterError(f"weights of shape {np.shape(weights)} do not cover the frame's pixels "
                                    f"{changed_full.shape}")
    names = ("R", "G", "B", "A") if len(idx) == 3 else ("Y", "A")
    kind = np.float32 if out.pixels.dtype.kind == "f" else np.uint16
    px = np.zeros(out.pixels.shape[:2] + (len(idx) + 1,), kind)
    rows, cols = np.nonzero(changed_full.any(axis=1))[0], np.nonzero(changed_full.any(axis=0))[0]
    if rows.size:                         # the work happens in the changed pixels' box; the rest stays 0
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        o_native, p_native = out.pixels[box][..., idx], plate.pixels[box][..., idx]
        changed = changed_full[box]
        weights = np.zeros(changed.shape, np.float32) if weights is None else np.asarray(weights)[box]
        w = np.where(changed, np.clip(np.nan_to_num(np.asarray(weights, np.float64), nan=0.0), 0.0, 1.0), 0.0)
        px[box] = _float_patch_px(o_native, p_native, w, changed) if kind is np.float32 else \
            _integer_patch_px(o_native, p_native, w, changed)
    return Frame(number=out.number, pixels=np.ascontiguousarray(px), channels=names,
                 data_window=out.data_window, display_window=out.display_window, metadata=out.metadata)


def _float_patch_px(o_native: np.ndarray, p_native: np.ndarray, w: np.ndarray, changed: np.ndarray) -> np.ndarray:
    colour, alpha = _float_patch(o_native.astype(np.float32), p_native.astype(np.float32), w, changed)
    return np.concatenate([colour, alpha[..., None]], axis=2)


def _integer_patch_px(o_native: np.ndarray, p_native: np.ndarray, w: np.ndarray, changed: np.ndarray
                      ) -> np.ndarray:
    scale = 257.0 if o_native.dtype == np.uint8 else 1.0
    o = o_native.astype(np.float64) * scale
    p = p_native.astype(np.float64) * scale
    a = np.where(changed, _needed_alpha(o, p, w, 65535.0), 0.0)
    a16 = np.ceil(a * 65535.0 - 1e-9).clip(0, 65535)
    colour = np.clip(np.round(o - (1.0 - a16 / 65535.0)[..., None] * p), 0, a16[..., None])
    colour[~changed] = 0
    return np.concatenate([colour, a16[..., None]], axis=2).astype(np.uint16)


def _float_patch(o: np.ndarray, p: np.ndarray, w: np.ndarray, changed: np.ndarray):
    a = np.where(changed, _needed_alpha(o.astype(np.float64), p.astype(np.float64), w, None), 0.0).astype(np.float32)
    x = (np.float32(1.0) - a)[..., None] * p
    colour = o - x
    colour[~changed] = 0.0
    # float rounding: nudge the few pixels whose sum misses by an ulp; where none fits, alpha 1 carries the edit
    for _ in range(2):
        miss = (colour + x != o) & changed[..., None] & ~(np.isnan(o) & np.isnan(colour + x))
        if not miss.any():
            break
        toward = np.where(colour + x < o, np.float32(np.inf), np.float32(-np.inf))
        colour = np.where(miss, np.nextafter(colour, toward), colour)
    miss = np.any((colour + x != o) & ~(np.isnan(o) & np.isnan(colour + x)), axis=2) & changed
    if miss.any():
        a[miss] = 1.0
        colour[miss] = o[miss]
    return colour, a


def over(patch: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """``patch over plate`` for premultiplied alpha: ``colour + (1 - alpha) * plate``, in float32 for float
    patches (the arithmetic :func:`patch_frame` is exact for), in float64 of 16-bit units for integer ones.

    Args:
        patch: (H, W, K+1) colour channels then alpha (a patch frame's pixels); plate: (H, W, K) colour.

    Returns:
        (H, W, K): float32 for a float patch; for a uint16 patch, float64 in the plate's own code units (round
        it to compare with an integer output).
    """
    if patch.dtype.kind == "f":
        a = patch[..., -1:].astype(np.float32)
        return patch[..., :-1].astype(np.float32) + (np.float32(1.0) - a) * plate.astype(np.float32)
    scale = 257.0 if plate.dtype == np.uint8 else 1.0
    a = patch[..., -1:].astype(np.float64) / 65535.0
    return (patch[..., :-1].astype(np.float64) + (1.0 - a) * plate.astype(np.float64) * scale) / scale
