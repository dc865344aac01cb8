"""Patches for a host's timeline: a shot's full-frame edit as only what changed, premultiplied alpha over
transparent black, so the host's own decode of the original clip shows everywhere else.

The Resolve pass renders full frames through the daemon (``ned-fx batch``'s runner or the plain loop), then
:func:`make_patches` turns each into a patch beside it (``NAME.patch.%04d.EXT``): the plate is decoded here
exactly as the daemon decodes it (``ned_fx.media``, the default exact YUV conversion), so ``patch over plate``
is the full-frame edit (EXR bit for bit; PNG within a code value). Where the daemon returned the compositor's
weights with a frame (``ned.matte``: an EXR channel or ``NAME.matte.%04d.png``, see
:func:`ned_fx.hosts.frames.render_to_file`) the alpha is that matte; otherwise it is the least alpha that
reproduces the edit (:func:`ned_fx.media.layers.patch_frame` with no weights): 0 wherever the plate is
unchanged, not a soft matte.

Runs in the venv's Python (numpy, OpenEXR, PyAV), never inside Resolve's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from ..errors import InvalidParameterError, NedFxError
from .frames import MATTE_CHANNEL, frame_path, matte_pattern


def patch_pattern(output: str) -> str:
    """``NAME.%04d.EXT`` -> ``NAME.patch.%04d.EXT`` (a PNG output's patch is a 16-bit RGBA PNG, an EXR's a
    float RGBA EXR)."""
    m = re.search(r"%0?\d*d|#+|@+", output)
    if m is None:
        raise InvalidParameterError(f"{output} is not a sequence pattern")
    head = output[: m.start()].rstrip("._")
    return f"{head}.patch.{output[m.start():]}"


def make_patches(source: str, output: str, first: int, last: int,
                 progress: Callable[[int, int], None] | None = None) -> str:
    """Write the patch of every frame ``first..last`` of a full-frame ``output`` sequence of ``source``.

    A patch newer than its full frame is kept (a resumed pass). The patch carries the full frame's provenance
    record and, for EXR, its header attributes.

    Args:
        source: the shot's input (movie or sequence pattern) the daemon edited; output: the full-frame pattern.
        progress: called with ``(done, total)``.

    Returns:
        the patch pattern (:func:`patch_pattern`).

    Raises:
        InputNotFoundError, UnreadableMediaError: a full frame or the plate cannot be read.
        InvalidParameterError: a full frame whose size or pixel type is not the plate's.
        OutputWriteError: a patch cannot be written (nothing half-written is left).
    """
    from ..media import open_media, read_image, write_image
    from ..media.convert import convert_for_output
    from ..media.layers import patch_frame, with_matte_channel
    from ..media.readers import read_provenance

    pattern = patch_pattern(output)
    total = last - first + 1
    todo = [n for n in range(first, last + 1) if not _fresh(frame_path(pattern, n), frame_path(output, n))]
    if not todo:
        return pattern
    done = total - len(todo)
    ext = Path(output).suffix.lower()
    with open_media(source, f"{todo[0]}-{todo[-1]}") as src:
        wanted = set(todo)
        for plate in src:
            if plate.number not in wanted:
                continue
            full_path = frame_path(output, plate.number)
            full = read_image(full_path, plate.number)
            weights = _matte_beside(output, plate.number)
            if MATTE_CHANNEL in full.channels:           # the matte rides along; the plate has no such channel
                weights = full.pixels[..., full.channels.index(MATTE_CHANNEL)].astype("float32")
                keep = [i for i, c in enumerate(full.channels) if c != MATTE_CHANNEL]
                types = {full.channel_dtypes[i] for i in keep} if full.channel_dtypes else {str(full.pixels.dtype)}
                px = full.pixels[..., keep]
                full = full.with_pixels(px.astype(types.pop()) if len(types) == 1 else px,
                                        tuple(full.channels[i] for i in keep))
            plate = convert_for_output(plate, ext, False)
            if full.pixels.shape != plate.pixels.shape or full.pixels.dtype != plate.pixels.dtype:
                raise InvalidParameterError(
                    f"{full_path}: {full.pixels.shape} {full.pixels.dtype} is not the plate's "
                    f"{plate.pixels.shape} {plate.pixels.dtype}; render it again")
            patch = patch_frame(plate, full, weights)
            if weights is not None and ext == ".exr":
                patch = with_matte_channel(patch, weights, MATTE_CHANNEL)
            write_image(frame_path(pattern, plate.number), patch, provenance=read_provenance(full_path),
                        metadata=(dict(full.metadata) or None) if ext == ".exr" else None)
            done += 1
            if progress:
                progress(done, total)
    return pattern


def _matte_beside(output: str, number: int):
    """The compositor's weights of a PNG frame when the daemon returned them (``NAME.matte.%04d.png``), or None."""
    beside = frame_path(matte_pattern(output), number).with_suffix(".png")
    if not beside.is_file():
        return None
    from ..media import read_image

    return read_image(beside, number).pixels[..., 0].astype("float32") / 65535.0


def _fresh(patch: Path, full: Path) -> bool:
    try:
        return patch.stat().st_mtime_ns >= full.stat().st_mtime_ns
    except OSError:
        return False


def layer_result(result: dict, source: str, emit: Callable[[dict], None]) -> dict:
    """A runner's ``result`` event for a shot placed as a patch: the patches made, ``output`` now their
    pattern (``full_output`` the full frames'); a shot whose patches fail is reported failed."""
    if not result.get("ok"):
        return result
    name = result.get("name")
    try:
        pattern = make_patches(source, result["output"], int(result["first"]), int(result["last"]),
                               lambda done, total: emit({"event": "progress", "name": name, "stage": "patch",
                                                         "done": done, "total": total}))
    except (NedFxError, OSError) as exc:
        return {**result, "ok": False, "error": f"the full frames are at {result['output']}, but the patches "
                                                f"failed: {exc}", "code": type(exc).__name__}
    return {**result, "output": pattern, "full_output": result["output"], "layer": "patch"}
