"""Rigid head pose per frame: a similarity transform (scale, rotation, translation) from the shot's mean shape
to each frame's landmarks, fitted on points that expressions barely move (forehead, nose bridge, face sides,
eye corners), so later stages can separate expression from head motion.
"""

from __future__ import annotations

import numpy as np

from .. import topology

#: Mesh points that expressions move least (:data:`ned_fx.topology.RIGID_POINTS`).
RIGID_POINTS = np.array(topology.RIGID_POINTS)


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ≈ s R src + t`` (Umeyama 1991) between Px3 point sets.

    Returns:
        ``(s, R 3x3, t 3)``, R a proper rotation.
    """
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1
    r = u @ sign @ vt
    var = (a ** 2).sum() / len(src)
    s = float(np.trace(np.diag(d) @ sign) / max(var, 1e-12))
    return s, r, mu_d - s * r @ mu_s


def euler_degrees(r: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of a head rotation ``R = Rz(roll) @ Rx(pitch) @ Ry(yaw)``.

    In the head frame (x to image right, y down, z into the screen): yaw turns about the vertical axis, pitch
    about the ear-to-ear axis, roll in the picture plane.
    """
    pitch = np.degrees(np.arcsin(np.clip(r[2, 1], -1, 1)))
    yaw = np.degrees(np.arctan2(-r[2, 0], r[2, 2]))
    roll = np.degrees(np.arctan2(-r[0, 1], r[1, 1]))
    return np.array([yaw, pitch, roll])


def canonical_orientation(shape: np.ndarray) -> np.ndarray:
    """Rotate a centred shape into the head frame: x from the right to the left outer eye corner (image
    right), y from the forehead down to the chin (image down), z into the screen; so pose angles are absolute
    (a frontal, upright face has yaw = pitch = roll = 0)."""
    x = shape[263] - shape[33]
    x /= np.linalg.norm(x)
    y = shape[152] - shape[10]
    y -= x * (y @ x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    return shape @ np.stack([x, y, z]).T


def fit_poses(landmarks: np.ndarray, found: np.ndarray, iterations: int = 3) -> dict[str, np.ndarray]:
    """Generalised Procrustes over the shot, then one similarity per frame.

    Args:
        landmarks: FxPx3 pixels (P >= 468); found: F bool.

    Returns:
        dict with ``mean_shape`` Px3 (centred, unit RMS radius on the rigid points), ``scale`` F,
        ``rotation`` Fx3x3, ``translation`` Fx3, ``euler`` Fx3 degrees (yaw, pitch, roll), ``matrix`` Fx3x4
        (``[sR | t]``, so ``frame ≈ matrix[:, :3] @ mean + matrix[:, 3]``); NaN where not found.
    """
    f, p, _ = landmarks.shape
    out = {"scale": np.full(f, np.nan), "rotation": np.full((f, 3, 3), np.nan),
           "translation": np.full((f, 3), np.nan), "euler": np.full((f, 3), np.nan),
           "matrix": np.full((f, 3, 4), np.nan), "mean_shape": np.full((p, 3), np.nan)}
    idx = np.flatnonzero(found)
    if not len(idx):
        return out
    rigid = RIGID_POINTS
    mean = landmarks[idx[0]].copy()
    for _ in range(iterations):
        mean = mean - mean[rigid].mean(0)
        mean = mean / np.sqrt((mean[rigid] ** 2).sum(1).mean())
        aligned = []
        for i in idx:
            s, r, t = similarity(landmarks[i, rigid], mean[rigid])
            aligned.append((s * (r @ landmarks[i].T)).T + t)
        mean = np.median(np.stack(aligned), axis=0)
    mean = canonical_orientation(mean - mean[rigid].mean(0))
    mean = mean / np.sqrt((mean[rigid] ** 2).sum(1).mean())
    out["mean_shape"] = mean
    for i in idx:
        s, r, t = similarity(mean[rigid], landmarks[i, rigid])
        out["scale"][i], out["rotation"][i], out["translation"][i] = s, r, t
        out["euler"][i] = euler_degrees(r)
        out["matrix"][i] = np.concatenate([s * r, t[:, None]], axis=1)
    return out
