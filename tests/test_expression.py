"""The expression model: mesh facts, the authored AU basis, the per-frame fit, the neutral estimate, on a real
face's geometry with synthetic expressions (known activations)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from conftest import our_track
from ned_fx import topology as topo
from ned_fx.manipulation import ManipulatorConfig
from ned_fx.manipulation import expression as E
from ned_fx.manipulation.prototypes import PROTOTYPES, prototype

K = len(E.AU_NAMES)
AU = {n: i for i, n in enumerate(E.AU_NAMES)}


@functools.lru_cache(maxsize=None)
def _face():
    """A real neutral face (the studio portrait, head frame) and its basis."""
    track = our_track("people_0.png")
    neutral = E.head_frame(track.landmarks, track.pose)[0]
    return neutral, E.build_basis(neutral)


@pytest.fixture()
def face():
    return _face()


def _up(field, points):
    """Mean upward motion (head frame: -y) of points, inter-ocular units."""
    return -field[list(points), 1].mean()


# ---------------------------------------------------------------------------------------------------------------
# mesh facts


def test_mirror_table_is_an_involution_matching_the_contours():
    mirror = np.asarray(E.MIRROR)
    assert mirror.shape == (topo.NUM_MESH,)
    assert np.array_equal(mirror[mirror], np.arange(topo.NUM_MESH))
    for right, left in ((topo.RIGHT_EYE, topo.LEFT_EYE), (topo.RIGHT_BROW, topo.LEFT_BROW)):
        assert [E.MIRROR[p] for p in right] == list(left)
    assert E.MIRROR[topo.MOUTH_CORNER_RIGHT] == topo.MOUTH_CORNER_LEFT
    assert E.MIRROR[topo.EYE_OUTER_RIGHT] == topo.EYE_OUTER_LEFT
    for midline in (0, 1, 4, 13, 14, 17, 152, 10):
        assert E.MIRROR[midline] == midline


def test_mirror_table_holds_on_a_real_face(face):
    neutral, basis = face
    mid_x = neutral[[10, 152, 1, 13], 0].mean()
    mirrored = neutral[:topo.NUM_MESH].copy()
    mirrored[:, 0] = 2 * mid_x - mirrored[:, 0]
    err = np.linalg.norm(neutral[:topo.NUM_MESH] - mirrored[list(E.MIRROR)], axis=1) / basis.iod
    assert np.median(err) < 0.03 and err.max() < 0.12


def test_head_frame_inverts_the_pose():
    rng = np.random.default_rng(3)
    head = rng.normal(size=(4, topo.NUM_POINTS, 3))
    pose = np.zeros((4, 3, 4))
    for i in range(4):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        pose[i, :, :3] = rng.uniform(50, 200) * q * np.sign(np.linalg.det(q))
        pose[i, :, 3] = rng.uniform(0, 500, 3)
    frame = np.einsum("fij,fpj->fpi", pose[:, :, :3], head) + pose[:, None, :, 3]
    assert np.allclose(E.head_frame(frame, pose), head, atol=1e-9)
    pose[2] = np.nan
    assert np.isnan(E.head_frame(frame, pose)[2]).all()


# ---------------------------------------------------------------------------------------------------------------
# the basis


def test_basis_shape_rigid_points_and_iris(face):
    neutral, basis = face
    assert basis.fields.shape == (K, topo.NUM_POINTS, 3) == basis.edit_fields.shape
    assert np.isfinite(basis.fields).all()
    assert np.all(basis.fields[:, list(E.RIGID_POINTS)] == 0)          # an edit never moves the pose's points
    for iris, corners in ((topo.RIGHT_IRIS, (33, 133)), (topo.LEFT_IRIS, (263, 362))):
        assert np.allclose(basis.fields[:, list(iris)], basis.fields[:, list(corners)].mean(1, keepdims=True))
    # every AU moves something, by a natural amount (inter-ocular units at activation 1)
    peak = np.linalg.norm(basis.fields[:, :topo.NUM_MESH], axis=2).max(axis=1) / basis.iod
    assert np.all(peak > 0.02) and np.all(peak < 0.35), dict(zip(E.AU_NAMES, peak.round(3)))


def test_basis_is_well_conditioned(face):
    _, basis = face
    a = basis.fields[:, :topo.NUM_MESH].reshape(K, -1)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    assert np.linalg.cond(a @ a.T) < 500                          # unit-norm fields: independent enough
    assert E.basis_condition(basis) < 1e4


def test_action_units_move_the_face_as_facs_says(face):
    _, basis = face
    f = basis.fields / basis.iod
    corners = (topo.MOUTH_CORNER_RIGHT, topo.MOUTH_CORNER_LEFT)
    inner_r, inner_l = E.BROW_INNER_R, E.mirrored(E.BROW_INNER_R)
    brows = topo.RIGHT_BROW + topo.LEFT_BROW
    upper_lid, lower_lid = E.both_sides(E.UPPER_LID_R), E.both_sides(E.LOWER_LID_R)

    def width(field, a, b):                                      # change of x-distance between point sets
        return field[list(b), 0].mean() - field[list(a), 0].mean()

    assert _up(f[AU["AU1"]], inner_r + inner_l) > 0.07
    assert _up(f[AU["AU1"]], inner_r + inner_l) > 2 * _up(f[AU["AU1"]], E.both_sides(E.BROW_OUTER_R))
    assert _up(f[AU["AU2"]], E.both_sides(E.BROW_OUTER_R)) > 0.07
    assert _up(f[AU["AU4"]], brows) < -0.03 and width(f[AU["AU4"]], inner_r, inner_l) < -0.05
    assert _up(f[AU["AU5"]], upper_lid) > 0.02 and abs(_up(f[AU["AU5"]], lower_lid)) < 0.005
    assert _up(f[AU["AU6"]], E.both_sides(E.INFRAORBITAL_R)) > 0.02
    assert _up(f[AU["AU12"]], corners) > 0.08 and width(f[AU["AU12"]], corners[:1], corners[1:]) > 0.1
    assert _up(f[AU["AU15"]], corners) < -0.06
    assert width(f[AU["AU20"]], corners[:1], corners[1:]) > 0.12
    assert width(f[AU["AU18"]], corners[:1], corners[1:]) < -0.12
    assert _up(f[AU["AU26"]], [14, 17, 152]) < -0.15                    # jaw drop: lower lip and chin down
    assert abs(_up(f[AU["AU26"]], [10, 151, 9])) < 1e-9                 # forehead still
    gap = lambda fld: (fld[14, 1] - fld[13, 1])                          # noqa: E731  inner-lip gap change
    assert gap(f[AU["AU25"]]) > 0.05 and gap(f[AU["AU26"]]) > 0.15 and gap(f[AU["AU24"]]) < -0.04
    # the blink closes this actor's eyes: the upper lid meets the lower lid
    neutral, _ = face
    closed = neutral + basis.fields[AU["AU45"]]
    lid_gap = closed[list(lower_lid), 1] - closed[list(upper_lid), 1]
    assert np.abs(lid_gap).max() / basis.iod < 0.01


def test_a_raised_upper_lip_moves_as_one_piece_and_a_lowered_one_keeps_the_split(face):
    """AU10 added (a sneer): each upper-lip column moves as one and the lower lip's columns follow the gap's change
    as one, so neither lip's red grows (split, the upper lip's grew 1 % IOD and more); AU10 taken away (negative offset) decodes with the split fields as before."""
    neutral, basis = face
    up = basis.decode(np.eye(len(E.AU_NAMES))[AU["AU10"]], edit=True)
    down = basis.decode(-np.eye(len(E.AU_NAMES))[AU["AU10"]], edit=True)
    assert np.array_equal(down, -basis.edit_fields_down[AU["AU10"]])
    for rings, most in ((E.UPPER_LIP_RINGS_R, 1e-9), (E.LOWER_LIP_RINGS_R, 0.025)):
        for side in (tuple, E.mirrored):
            red = up[list(side(rings[-1])), 1] - up[list(side(rings[0])), 1]
            # (the lower lip: only the raw AU10's own reach around the corner, 2 % IOD in its corner column)
            assert np.abs(red).max() < most * basis.iod, red / basis.iod
    assert -up[13, 1] >= 0.04 * basis.iod and abs(up[13, 1] - up[14, 1]) < 1e-12     # the mouth rises together
    # the split fields thicken the upper lip (the inner edge held while the outer rises)
    split = -basis.edit_fields_down[AU["AU10"]]
    assert (split[0, 1] - split[13, 1]) / basis.iod >= 0.01


def test_edit_fields_keep_the_inner_lip_gap(face):
    neutral, basis = face
    for k, name in enumerate(E.AU_NAMES):
        f = basis.edit_fields[k]
        diff = np.array([f[u] - f[l] for u, l in E.INNER_LIP_PAIRS]) / basis.iod
        if name in E.SPEECH_AUS:
            continue
        assert np.abs(diff).max() < 1e-9, name
    # the correction is local: the upper face is what the raw field says
    far = [i for i in range(topo.NUM_MESH) if neutral[i, 1] < neutral[1, 1]]
    assert np.allclose(basis.edit_fields[:, far], basis.fields[:, far], atol=1e-6 * basis.iod)
    # and the speech channels are applied as authored
    for name in E.SPEECH_AUS:
        assert np.array_equal(basis.edit_fields[AU[name]], basis.fields[AU[name]])


# ---------------------------------------------------------------------------------------------------------------
# the fit


def _synthetic_activations(rng, repeats=10):
    """Realistic frames: each emotion's prototype at a random intensity, with speech and some blinks."""
    rows = []
    for emotion in PROTOTYPES:
        for _ in range(repeats):
            # a fitted activation is >= 0; sad's lid droop is a negative lid raise in the STYLE (an offset the
            # manipulator applies), never something the fit reads off a face
            a = np.maximum(prototype(emotion), 0.0) * rng.uniform(0.3, 1.2)
            a[AU["AU25"]] = max(a[AU["AU25"]], rng.uniform(0, 1))
            a[AU["AU26"]] = max(a[AU["AU26"]], rng.uniform(0, 0.8))
            if rng.random() < 0.25:
                a[AU["AU45"]] = rng.uniform(0.5, 1)
            rows.append(a)
    return np.array(rows)


def test_fit_recovers_known_activations(face):
    neutral, basis = face
    rng = np.random.default_rng(7)
    truth = _synthetic_activations(rng)
    shapes = neutral + basis.decode(truth)
    fitted = E.fit_activations(shapes, neutral, basis)
    err = np.abs(fitted - truth)
    assert err.max() < 0.05, (E.AU_NAMES[int(err.max(0).argmax())], err.max())
    assert err.mean() < 0.005
    # with tracker-like noise (0.2% of the inter-ocular distance per coordinate)
    noisy = shapes + rng.normal(0, 0.002 * basis.iod, shapes.shape)
    err = np.abs(E.fit_activations(noisy, neutral, basis) - truth)
    assert err.mean() < 0.015 and np.percentile(err, 99) < 0.08


def test_fit_respects_bounds_and_residual_reproduces_the_face(face):
    neutral, basis = face
    rng = np.random.default_rng(8)
    shapes = neutral + rng.normal(0, 0.05 * basis.iod, (12, topo.NUM_POINTS, 3))
    shapes[3] = np.nan
    model = E.ExpressionModel(neutral, basis)
    act = model.fit(shapes)
    assert np.isnan(act[3]).all() and np.isfinite(np.delete(act, 3, axis=0)).all()
    ok = np.isfinite(act).all(axis=1)
    assert (act[ok] >= 0).all() and (act[ok] <= basis.upper + 1e-12).all()
    residual = model.residual(shapes[ok], act[ok])
    assert np.abs(model.decode(act[ok], residual) - shapes[ok]).max() < 1e-9


def test_fit_pins_an_au_left_out(face):
    neutral, basis = face
    truth = prototype("surprised")
    upper = basis.upper.copy()
    upper[AU["AU45"]] = 0.0
    act = E.fit_activations((neutral + basis.decode(truth))[None], neutral, basis, upper=upper)[0]
    assert act[AU["AU45"]] == 0.0 and np.abs(act - truth).max() < 0.05


def test_sparse_fit_option_reads_few_aus(face):
    neutral, basis = face
    truth = np.zeros(K)
    truth[[AU["AU12"], AU["AU6"], AU["AU26"]]] = (1.0, 0.6, 0.5)
    shapes = (neutral + basis.decode(truth))[None]
    dense = E.fit_activations(shapes, neutral, basis)[0]
    sparse = E.fit_activations(shapes, neutral, basis, ManipulatorConfig(sparsity=0.2))[0]
    assert np.abs(sparse - truth).max() < 0.05
    assert (sparse > 0.01).sum() <= (dense > 0.01).sum()


# ---------------------------------------------------------------------------------------------------------------
# the neutral


def test_neutral_estimate_survives_speech_blinks_and_transient_expressions(face):
    neutral, basis = face
    rng = np.random.default_rng(9)
    t = np.arange(240)
    act = np.zeros((240, K))
    act[:, AU["AU26"]] = np.clip(0.5 * np.sin(t / 2.0) + 0.25 * np.sin(t / 0.7), 0, None)   # talking
    act[:, AU["AU25"]] = np.clip(0.6 * np.sin(t / 1.3 + 1), 0, None)
    act[60:110, AU["AU4"]] = 0.8                                                              # a frown
    act[150:175, AU["AU12"]] = 1.0                                                            # a smile
    act[::23, AU["AU45"]] = 1.0                                                               # blinks
    shapes = neutral + basis.decode(act) + rng.normal(0, 0.002 * basis.iod, (240, topo.NUM_POINTS, 3))
    shapes[5] = np.nan
    est = E.estimate_neutral(shapes)
    rms = np.sqrt(((est - neutral)[:topo.NUM_MESH] ** 2).sum(1).mean()) / basis.iod
    median = np.sqrt(((np.nanmedian(shapes, 0) - neutral)[:topo.NUM_MESH] ** 2).sum(1).mean()) / basis.iod
    assert rms < 0.003 and rms < median / 3
    assert E.mouth_opening_iod(est) < E.mouth_opening_iod(neutral) + 0.01


def test_neutral_of_a_single_frame_is_that_frame(face):
    neutral, _ = face
    assert np.array_equal(E.estimate_neutral(neutral[None]), neutral)
    from ned_fx.errors import NoFaceError

    with pytest.raises(NoFaceError):
        E.estimate_neutral(np.full((3, topo.NUM_POINTS, 3), np.nan))
