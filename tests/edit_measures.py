"""Measures of an expression on landmarks (any tracker's), in inter-ocular units, used by the edit tests."""

from __future__ import annotations

import numpy as np

from ned_fx import topology as T

INNER_BROWS = (107, 336)
BROWS = T.RIGHT_BROW + T.LEFT_BROW


def _iod(lm):
    return T.inter_ocular(lm)


def corner_lift(lm: np.ndarray) -> np.ndarray:
    """How far the mouth corners sit above the mouth centre (F,), IOD units (up is positive)."""
    centre = (lm[:, 13, 1] + lm[:, 14, 1]) / 2
    corners = (lm[:, T.MOUTH_CORNER_RIGHT, 1] + lm[:, T.MOUTH_CORNER_LEFT, 1]) / 2
    return (centre - corners) / _iod(lm)


def _eye_y(lm):
    return lm[:, list(T.RIGHT_EYE + T.LEFT_EYE), 1].mean(1)


def brow_height(lm: np.ndarray) -> np.ndarray:
    """Mean brow height above the eyes (F,), IOD units."""
    return (_eye_y(lm) - lm[:, list(BROWS), 1].mean(1)) / _iod(lm)


def inner_brow_height(lm: np.ndarray) -> np.ndarray:
    return (_eye_y(lm) - lm[:, list(INNER_BROWS), 1].mean(1)) / _iod(lm)


def inner_brow_gap(lm: np.ndarray) -> np.ndarray:
    return np.linalg.norm(lm[:, INNER_BROWS[0], :2] - lm[:, INNER_BROWS[1], :2], axis=1) / _iod(lm)


def mouth_opening(lm: np.ndarray) -> np.ndarray:
    return T.mouth_opening(lm) / _iod(lm)


def acceleration(lm: np.ndarray) -> float:
    xy = lm[:, :468, :2]
    return float(np.nanmean(np.linalg.norm(xy[2:] - 2 * xy[1:-1] + xy[:-2], axis=2)))
