"""The few ``scipy.ndimage`` filters an edit uses, in numpy, giving scipy's values bit for bit.

Importing ``scipy.ndimage`` costs a process 0.2-0.6 s (its array-API layer imports much of scipy), paid by every
``ned-fx edit`` for a handful of one-dimensional filters over a shot's frames and a distance transform of an eye's
box -- a tenth of a second edit of a cached 100-frame shot. Each function here computes what its scipy namesake
computes, in the same arithmetic and order where there is arithmetic (``tests/test_filters.py`` holds them to
scipy bit for bit), for the arguments ned_fx passes: the ``"nearest"`` border (the edge value repeated) and origin
0. Shared by the stages (manipulation, the eye layer), as :mod:`ned_fx.npzfile` is.
"""

from __future__ import annotations

import numpy as np


def _edge_padded(x: np.ndarray, axis: int, before: int, after: int) -> np.ndarray:
    """``x`` with ``axis`` moved first and padded by its edge values (the ``"nearest"`` border): ``before`` copies
    of the first, ``after`` of the last."""
    x = np.moveaxis(np.asarray(x), axis, 0)
    if not before and not after:
        return x
    return np.concatenate([np.repeat(x[:1], before, axis=0), x, np.repeat(x[-1:], after, axis=0)])


def _window(size) -> tuple[int, int, int]:
    """A window of ``size`` samples at origin 0, as scipy places it: ``(size, before, after)`` (an even size has
    one more sample before than after).

    Raises:
        ValueError: a size under 1.
    """
    size = int(size)
    if size < 1:
        raise ValueError("incorrect filter size")
    return size, size // 2, size - 1 - size // 2


def gaussian_filter1d(x, sigma: float, axis: int = -1, truncate: float = 4.0) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter1d(x, sigma, axis=axis, mode="nearest", truncate=truncate)`` of a float64
    array: the same kernel (``exp(-x^2 / 2 sigma^2)`` over ``int(truncate * sigma + 0.5)`` samples each side,
    normalised) summed as scipy's symmetric correlation sums it (the centre, then the pairs from the outermost in)."""
    x = np.asarray(x, np.float64)
    if x.size == 0:
        return x.copy()
    r = int(truncate * float(sigma) + 0.5)
    k = np.arange(-r, r + 1)
    phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * k ** 2)
    phi = phi / phi.sum()
    n = x.shape[axis]
    p = _edge_padded(x, axis, r, r)
    out = p[r:r + n] * phi[r]
    for j in range(r, 0, -1):
        out += (p[r - j:r - j + n] + p[r + j:r + j + n]) * phi[r - j]
    return np.moveaxis(out, 0, axis)


def maximum_filter1d(x, size: int, axis: int = -1) -> np.ndarray:
    """``scipy.ndimage.maximum_filter1d(x, size, axis=axis, mode="nearest")`` (origin 0: the window of an odd size
    is centred; of an even size, one more sample before than after)."""
    x = np.asarray(x)
    size, before, after = _window(size)
    n = x.shape[axis]
    p = _edge_padded(x, axis, before, after)
    out = p[:n].copy()
    for j in range(1, size):
        np.maximum(out, p[j:j + n], out=out)
    return np.moveaxis(out, 0, axis)


def percentile_filter1d(x, percentile: float, size: int) -> np.ndarray:
    """``scipy.ndimage.percentile_filter(x, percentile, size=size, mode="nearest")`` of a 1-D array: the value of
    rank ``int(size * percentile / 100)`` (no interpolation; the largest at 100) in each window."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError("percentile_filter1d filters a 1-D array")
    size, before, after = _window(size)
    q = float(percentile) + (100.0 if percentile < 0 else 0.0)
    rank = size - 1 if q == 100.0 else int(float(size) * q / 100.0)
    windows = np.lib.stride_tricks.sliding_window_view(_edge_padded(x, 0, before, after), size)
    return np.partition(windows, rank, axis=1)[:, rank]


def distance_transform_edt(mask) -> np.ndarray:
    """``scipy.ndimage.distance_transform_edt(mask)`` of a 1-D or 2-D array (float64): each non-zero element's
    Euclidean distance, in samples, to the nearest zero element (0 at the zeros). The squared distances are found
    in integers (the nearest zero along each column, then the nearest of those along each row) and their square
    roots taken as scipy takes them, so the values are scipy's exactly. A mask without any zero has no distances
    (scipy's values then are not distances either): refused."""
    m = np.asarray(mask).astype(bool)
    if m.ndim not in (1, 2):
        raise ValueError("distance_transform_edt takes a 1-D or 2-D mask")
    if m.size == 0:
        return np.zeros(m.shape)
    if m.all():
        raise ValueError("distance_transform_edt needs a zero element to measure to")
    grid = m[:, None] if m.ndim == 1 else m
    h, w = grid.shape
    far = h + w                 # farther than any distance in the array (int32 holds far ** 2 for h + w < 46,000)
    # down each column: rows to the nearest zero above and below (far and more where there is none)
    rows = np.arange(h, dtype=np.int32)[:, None]
    zero_above = np.where(grid, np.int32(-far), rows)
    np.maximum.accumulate(zero_above, axis=0, out=zero_above)
    g = rows - zero_above
    zero_below = np.where(grid, np.int32(h + far), rows)[::-1]
    zero_below = np.minimum.accumulate(zero_below, axis=0)[::-1]
    zero_below -= rows
    np.minimum(g, zero_below, out=g)
    g2 = g * g
    # along each row: the least g2 + dx^2 over the row, dx growing until dx^2 passes every distance found so far
    d2 = g2.copy()
    top = int(d2.max())
    for dx in range(1, w):
        step = dx * dx
        if step >= top:
            break
        np.minimum(d2[:, dx:], g2[:, :-dx] + step, out=d2[:, dx:])
        np.minimum(d2[:, :-dx], g2[:, dx:] + step, out=d2[:, :-dx])
        if dx % 4 == 0:
            top = int(d2.max())
    return np.sqrt(d2.astype(np.float64)).reshape(m.shape)
