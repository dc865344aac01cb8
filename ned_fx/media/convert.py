"""Pixel types across output formats: an 8/16-bit plate written to EXR, a float plate written to PNG/JPEG.

EXR stores half/float, PNG 8/16-bit integers, JPEG 8-bit. When the output's format cannot hold the plate's pixel
type, :func:`convert_for_output` converts the edited frame the way a compositor expects:

* integer -> EXR: ``value / white`` (display-referred: 255 -> 1.0), or with ``linearize`` the sRGB curve decoded
  (scene-linear, as Nuke's Read of an sRGB PNG gives it). 8-bit becomes half (exact: every 8-bit code has a
  half value within its rounding), 16-bit becomes float (half would lose codes).
* float -> PNG (16-bit) / JPEG (8-bit): clipped to 0..1 and scaled, rounded to nearest; with ``linearize`` the
  values are taken as scene-linear and encoded with the sRGB curve first (the inverse of the above).
* 16-bit -> JPEG: rounded to 8 bits.

Alpha and extra channels are scaled, never passed through a transfer curve. TIFF, EXR and DPX outputs of their own
pixel types are left as they are.
"""

from __future__ import annotations

import numpy as np

from .frames import Frame

#: formats and the pixel dtypes they store (kinds): what is not listed keeps the frame's type
_STORES = {".exr": "f", ".png": "u", ".jpg": "u8", ".jpeg": "u8"}
_COLOUR = ("R", "G", "B", "Y")


def _srgb_decode(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _srgb_encode(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1.0 / 2.4) - 0.055)


def needs_conversion(dtype, ext: str) -> bool:
    """Whether a plate of ``dtype`` must be converted to be written as ``ext``."""
    kind = np.dtype(dtype).kind
    want = _STORES.get(ext.lower())
    if want is None:
        return False
    if want == "f":
        return kind != "f"
    if want == "u8":
        return np.dtype(dtype) != np.uint8
    return kind != "u"


def convert_for_output(frame: Frame, ext: str, linearize: bool = False) -> Frame:
    """``frame`` with pixels the format ``ext`` stores (the frame itself when no conversion is needed)."""
    px = frame.pixels
    if not needs_conversion(px.dtype, ext):
        return frame
    colour = np.array([c.split(".")[-1] in _COLOUR for c in frame.channels])
    want = _STORES[ext.lower()]
    if want == "f":
        white = float(np.iinfo(px.dtype).max)
        out = px.astype(np.float32) / np.float32(white)
        if linearize:
            out[..., colour] = _srgb_decode(out[..., colour].astype(np.float64)).astype(np.float32)
        dtype = np.float16 if px.dtype == np.uint8 else np.float32
        return frame.with_pixels(out.astype(dtype))
    target = np.uint8 if want == "u8" else np.uint16
    top = float(np.iinfo(target).max)
    if px.dtype.kind == "u":                       # 16-bit -> 8-bit (JPEG)
        v = px.astype(np.float64) / float(np.iinfo(px.dtype).max)
    else:
        v = np.nan_to_num(px.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        if linearize:
            v[..., colour] = _srgb_encode(v[..., colour])
    return frame.with_pixels(np.rint(np.clip(v, 0.0, 1.0) * top).astype(target))
