"""The picture the tracker looks at, through OpenColorIO where the plate is scene-linear or log.

Edits always happen in the plate's own colour space; only the tracker (and previews) look at a display-referred
8-bit copy. :func:`display_view_for` decides how that copy is made:

* ``colorspace="auto"`` and no ``$OCIO``: 8-bit plates as they are, 16-bit scaled, float plates taken as
  scene-linear Rec.709 with the sRGB transfer (built in, fast; equal to OCIO's "Linear Rec.709 (sRGB)" through
  the un-tone-mapped sRGB view within one code value).
* ``colorspace="auto"`` with ``$OCIO`` set (a studio's config): float plates are the config's ``scene_linear``
  role, shown through the config's default display and view; integer plates as above.
* an explicit ``colorspace`` (e.g. ``ACEScg``, ``ARRI LogC4``, ``S-Log3 S-Gamut3.Cine``): every plate, float or
  integer (a 10-bit log DPX arrives as 16-bit), goes through OpenColorIO from that space to the display/view.

The config is ``ocio_config`` if given (a path or a built-in URI such as ``ocio://studio-config-latest``), else
``$OCIO``, else OpenColorIO's built-in studio config (no file, nothing downloaded).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError

#: The config used when neither ``ocio_config`` nor ``$OCIO`` names one (ships inside OpenColorIO >= 2.2).
BUILTIN_CONFIG = "ocio://studio-config-latest"


@dataclass(frozen=True)
class DisplayView:
    """An OpenColorIO transform from a plate's colour space to an 8-bit display picture.

    Attributes:
        config: the config's path or URI; colorspace: the plate's colour space; display, view: where it goes.
        float_only: apply to float plates only (the ``auto`` rule); integer plates then keep the built-in path.
    """

    config: str
    colorspace: str
    display: str
    view: str
    float_only: bool = False

    def applies_to(self, dtype: np.dtype) -> bool:
        return not self.float_only or np.dtype(dtype).kind == "f"

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb``: HxWx3 float (any scale) or uint8/uint16 (normalised to 0..1 first). Returns HxWx3 uint8."""
        if rgb.dtype == np.uint8:
            src = rgb.astype(np.float32) / 255.0
        elif rgb.dtype == np.uint16:
            src = rgb.astype(np.float32) / 65535.0
        else:
            src = np.ascontiguousarray(rgb, dtype=np.float32)
            if not np.isfinite(src).all():
                src = np.nan_to_num(src, nan=0.0, posinf=0.0, neginf=0.0)
        h, w = src.shape[:2]
        out = np.empty((h, w, 3), np.uint8)
        _apply(_processor(self.config, self.colorspace, self.display, self.view), src, out)
        return out


def display_view_for(colorspace: str = "auto", ocio_config: str = "", display_view: str = "") -> DisplayView | None:
    """How the tracker's picture is made (see the module's doc); None: the built-in path, no OpenColorIO.

    Args:
        colorspace: ``auto`` or a colour space name of the config; ocio_config: a config path/URI ("" = ``$OCIO``
            or the built-in studio config); display_view: ``"DISPLAY/VIEW"`` ("" = the config's defaults).

    Raises:
        InvalidParameterError: an unreadable config, or a colour space / display / view it does not have (the
            message lists the valid names).
    """
    env = os.environ.get("OCIO", "")
    if colorspace == "auto" and not ocio_config and not env:
        return None
    config_name = ocio_config or env or BUILTIN_CONFIG
    config = _config(config_name)
    float_only = colorspace == "auto"
    if float_only:
        role = config.getColorSpace("scene_linear")
        if role is None:
            raise InvalidParameterError(f"the OpenColorIO config {config_name} has no scene_linear role; name the "
                                        f"plates' colour space with --colorspace")
        colorspace = role.getName()
    elif config.getColorSpace(colorspace) is None:
        names = [cs.getName() for cs in config.getColorSpaces()]
        raise InvalidParameterError(f"colour space {colorspace!r} is not in the OpenColorIO config {config_name}; "
                                    f"it has: {', '.join(names)}")
    display, _, view = display_view.partition("/")
    display = display or config.getDefaultDisplay()
    displays = list(config.getDisplays())
    if display not in displays:
        raise InvalidParameterError(f"display {display!r} is not in {config_name}; displays: {', '.join(displays)}")
    views = list(config.getViews(display))
    view = view or config.getDefaultView(display)
    if view not in views:
        raise InvalidParameterError(f"view {view!r} of display {display!r} is not in {config_name}; views: "
                                    f"{', '.join(views)}")
    return DisplayView(config_name, colorspace, display, view, float_only)


def colorspaces(ocio_config: str = "") -> list[str]:
    """The colour space names of a config ("" = ``$OCIO`` or the built-in studio config)."""
    config = _config(ocio_config or os.environ.get("OCIO", "") or BUILTIN_CONFIG)
    return [cs.getName() for cs in config.getColorSpaces()]


@functools.lru_cache(maxsize=8)
def _config(name: str):
    try:
        import PyOpenColorIO as ocio
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise InvalidParameterError(f"OpenColorIO is not installed ({exc}); `pip install opencolorio`") from None
    try:
        return ocio.Config.CreateFromFile(name)
    except Exception as exc:
        raise InvalidParameterError(f"cannot read the OpenColorIO config {name}: {exc}") from None


@functools.lru_cache(maxsize=16)
def _processor(config: str, colorspace: str, display: str, view: str):
    import PyOpenColorIO as ocio

    t = ocio.DisplayViewTransform(src=colorspace, display=display, view=view)
    return _config(config).getProcessor(t).getOptimizedCPUProcessor(ocio.BIT_DEPTH_F32, ocio.BIT_DEPTH_UINT8,
                                                                    ocio.OPTIMIZATION_DEFAULT)


def _apply(cpu, src: np.ndarray, out: np.ndarray) -> None:
    import PyOpenColorIO as ocio

    h, w = src.shape[:2]
    cpu.apply(ocio.PackedImageDesc(src, w, h, 3, ocio.BIT_DEPTH_F32, 4, 12, w * 12),
              ocio.PackedImageDesc(out, w, h, 3, ocio.BIT_DEPTH_UINT8, 1, 3, w * 3))
