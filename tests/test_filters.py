"""ned_fx.filters gives scipy.ndimage's values bit for bit (the edit uses it so as not to import scipy.ndimage)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from conftest import REPO
from ned_fx import filters


@pytest.mark.parametrize("sigma", [0.1, 0.7, 1.0, 2.5, 3.0, 6.25])
@pytest.mark.parametrize("n", [1, 2, 5, 40, 183])
def test_gaussian_filter1d_is_scipys(sigma, n):
    rng = np.random.default_rng(n + int(sigma * 100))
    x = rng.normal(size=(n, 9)).cumsum(axis=0) * 10.0 ** rng.integers(-3, 3)
    for axis in (0, 1, -1):
        ours = filters.gaussian_filter1d(x, sigma, axis=axis)
        theirs = ndimage.gaussian_filter1d(x, sigma, axis=axis, mode="nearest")
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        assert np.array_equal(ours, theirs), np.abs(ours - theirs).max()
    one = rng.normal(size=n)
    assert np.array_equal(filters.gaussian_filter1d(one, sigma), ndimage.gaussian_filter1d(one, sigma, mode="nearest"))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 25])
def test_maximum_and_percentile_filters_are_scipys(size):
    rng = np.random.default_rng(size)
    for n in (1, 3, 30, 101):
        x = rng.normal(size=n)
        x[rng.random(n) < 0.2] = 0.0            # ties
        assert np.array_equal(filters.maximum_filter1d(x, size), ndimage.maximum_filter1d(x, size, mode="nearest"))
        for q in (0, 10, 50, 90, 99.9, 100, -10):
            ours = filters.percentile_filter1d(x, q, size)
            assert np.array_equal(ours, ndimage.percentile_filter(x, q, size=size, mode="nearest")), (n, q)
    with pytest.raises(ValueError):
        filters.maximum_filter1d(np.zeros(3), 0)
    with pytest.raises(ValueError):
        filters.percentile_filter1d(np.zeros((3, 3)), 50, 3)


def test_distance_transform_is_scipys_on_eye_like_and_random_masks():
    import cv2

    rng = np.random.default_rng(7)
    masks = []
    for h, w in ((1, 1), (1, 9), (5, 1), (24, 41), (70, 130), (260, 400)):
        masks.append(rng.random((h, w)) < 0.9)
        eye = np.zeros((h, w), np.uint8)            # an almond: one blob, a wide flat distance
        if h > 4 and w > 4:
            cv2.ellipse(eye, (w // 2, h // 2), (max(w // 2 - 2, 1), max(h // 3, 1)), 7, 0, 360, 1, -1)
            masks += [eye.astype(bool), ~eye.astype(bool)]
    masks.append(np.r_[np.zeros(3, bool), np.ones(40, bool), np.zeros(1, bool), np.ones(7, bool)])     # 1-D
    masks.append(np.pad(np.ones((30, 50), bool), 1))        # the eye layer pads its box with zeros
    for m in masks:
        if m.all():
            with pytest.raises(ValueError):
                filters.distance_transform_edt(m)
            continue
        ours = filters.distance_transform_edt(m)
        theirs = ndimage.distance_transform_edt(m)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), m.shape


def test_no_module_of_ned_fx_imports_scipy_ndimage():
    """Nothing in the package imports it, at any depth (the point of this module); it stays a test tool."""
    import ast

    for py in (REPO / "ned_fx").rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            assert not any(n == "scipy.ndimage" or n.startswith("scipy.ndimage.") for n in names), \
                f"{py.relative_to(REPO)}:{node.lineno} imports scipy.ndimage"


def test_the_eye_boxes_signed_distance_is_the_two_transforms():
    """EyeDistance's one transform of both padded boxes equals the two transforms it replaces, exactly."""
    import cv2

    from ned_fx.rendering.eyes._geometry import inner_distance, signed_distance

    for h, w in ((1, 1), (3, 40), (27, 51), (64, 120)):
        eye = np.zeros((h, w), np.uint8)
        cv2.ellipse(eye, (w // 2, h // 2), (max(w // 2 - 2, 1), max(h // 3, 1)), 9, 0, 360, 1, -1)
        for m in (eye.astype(bool), np.ones((h, w), bool), np.zeros((h, w), bool)):
            want = inner_distance(m) - inner_distance(~m)
            got = signed_distance(m)
            assert got.dtype == np.float32 and np.array_equal(got, want)
            padded = np.pad(m, 1)
            theirs = ndimage.distance_transform_edt(padded).astype(np.float32)[1:-1, 1:-1]
            assert np.array_equal(inner_distance(m), theirs)


def test_the_layers_median_is_numpys_value_and_dtype():
    """rendering.sampling.median (the layers' per-frame medians without np.median's Python layers) gives
    np.median's value and scalar type: odd and even counts, ties, float32/64, 2-D (flattened), NaN."""
    from ned_fx.rendering.sampling import median

    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 4, 7, 100, 101):
        for dtype in (np.float32, np.float64):
            for trial in range(20):
                a = rng.normal(size=n).astype(dtype)
                if trial % 4 == 0:
                    a[rng.integers(0, n)] = a[0]
                if trial == 5:
                    a[rng.integers(0, n)] = np.nan
                got, want = median(a), np.median(a)
                assert type(got) is type(want), (n, dtype)
                assert (np.isnan(got) and np.isnan(want)) or got == want, (n, dtype, got, want)
            b = rng.normal(size=(3, n)).astype(dtype)
            assert median(b) == np.median(b) and type(median(b)) is type(np.median(b))
    assert median([1.0, 4.0]) == 2.5 and median(np.array([3, 1, 2])) == 2.0          # lists; integers (np.median)
