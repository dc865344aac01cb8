"""The tracker's result for one shot (:class:`Track`) and its file format (``TRACK.npz``).

File format, version 1 (a NumPy ``.npz``; F frames, N face ids, P = 478 points):

=================  ===========  ==================================================================================
key                shape        meaning
=================  ===========  ==================================================================================
landmarks          FxPx3        the selected face, smoothed: x, y in the input's pixels (x right, y down,
                                (0,0) = top-left corner of the top-left pixel), z in pixels towards the viewer
                                negative; points 0..467 the face mesh (MediaPipe topology), 468..472 the iris of
                                the subject's right eye (centre first), 473..477 the left; NaN where not found
landmarks_raw      FxPx3        the same before temporal smoothing
found              F            bool, the selected face was found in the frame
scores             F            face-presence score of the selected face (0 where not found)
pose               Fx3x4        head pose ``[sR | t]``: ``landmarks ≈ pose[:, :, :3] @ mean_shape + pose[:, :, 3]``
pose_euler         Fx3          yaw, pitch, roll in degrees; ``pose_scale`` F: s
mean_shape         Px3          the shot's mean shape in the head frame (centred, unit RMS on rigid points)
frame_numbers      F            the input's frame numbers (sequence numbers, movie frame indices from 0)
face_id            ()           id of the selected face
face_ids           N            every face id seen
all_landmarks      NxFxPx3      smoothed landmarks of every face id (NaN where absent)
all_found          NxF          bool
width, height      ()           input size in pixels; ``fps`` () frame rate (0 for stills)
source             ()           input path; ``meta`` (): JSON with version, tracker config and more
=================  ===========  ==================================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..npzfile import read_npz, write_npz
from ..errors import InvalidParameterError

FORMAT_VERSION = 1
REQUIRED = ("landmarks", "found", "pose", "face_ids", "frame_numbers")


@dataclass(frozen=True)
class Track:
    """One shot's tracking result. Arrays as in the module docstring."""

    landmarks: np.ndarray
    landmarks_raw: np.ndarray
    found: np.ndarray
    scores: np.ndarray
    pose: np.ndarray
    pose_euler: np.ndarray
    pose_scale: np.ndarray
    mean_shape: np.ndarray
    frame_numbers: np.ndarray
    face_id: int
    face_ids: np.ndarray
    all_landmarks: np.ndarray
    all_found: np.ndarray
    width: int
    height: int
    fps: float
    source: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.frame_numbers)

    def select_face(self, face_id: int) -> "Track":
        """The same track with another face id selected (smoothing kept, pose refitted)."""
        from .pose import fit_poses

        ids = [int(i) for i in self.face_ids]
        if face_id not in ids:
            raise InvalidParameterError(f"face id {face_id} is not in this track; face ids: {ids}")
        k = ids.index(face_id)
        lm, found = self.all_landmarks[k], self.all_found[k]
        poses = fit_poses(lm, found)
        return Track(landmarks=lm, landmarks_raw=lm, found=found, scores=found.astype(float), pose=poses["matrix"],
                     pose_euler=poses["euler"], pose_scale=poses["scale"], mean_shape=poses["mean_shape"],
                     frame_numbers=self.frame_numbers, face_id=face_id, face_ids=self.face_ids,
                     all_landmarks=self.all_landmarks, all_found=self.all_found, width=self.width,
                     height=self.height, fps=self.fps, source=self.source, meta=self.meta)


def to_arrays(track: Track) -> dict[str, np.ndarray]:
    """The arrays a track file holds (what :func:`write_to_file` stores; :func:`from_arrays` reads them back)."""
    meta = dict(track.meta, format_version=FORMAT_VERSION)
    return {
        "landmarks": track.landmarks.astype(np.float32), "landmarks_raw": track.landmarks_raw.astype(np.float32),
        "found": track.found.astype(bool), "scores": track.scores.astype(np.float32),
        "pose": track.pose.astype(np.float32), "pose_euler": track.pose_euler.astype(np.float32),
        "pose_scale": track.pose_scale.astype(np.float32), "mean_shape": track.mean_shape.astype(np.float32),
        "frame_numbers": track.frame_numbers.astype(np.int64), "face_id": np.int64(track.face_id),
        "face_ids": track.face_ids.astype(np.int64), "all_landmarks": track.all_landmarks.astype(np.float32),
        "all_found": track.all_found.astype(bool), "width": np.int64(track.width),
        "height": np.int64(track.height), "fps": np.float64(track.fps), "source": np.array(str(track.source)),
        "meta": np.array(json.dumps(meta)),
    }


def write_to_file(track: Track, path: str | Path) -> Path:
    """Write a track to ``path`` (``.npz``) atomically.

    Raises:
        OutputWriteError: the file could not be written (nothing half-written is left).
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise InvalidParameterError(f"a track file must end in .npz, got {path.name}")
    write_npz(path, to_arrays(track))
    return path


def read_from_file(path: str | Path) -> Track:
    """Read a track written by :func:`write_to_file`.

    Raises:
        InputNotFoundError: no such file. UnreadableMediaError: not a track file (names the missing keys).
    """
    return from_arrays(read_npz(path, REQUIRED, "track"))


def from_arrays(d: dict[str, np.ndarray]) -> Track:
    """A track from the arrays of :func:`to_arrays` (the caller checked that the :data:`REQUIRED` keys exist)."""
    meta = json.loads(str(d["meta"]))
    return Track(landmarks=d["landmarks"].astype(np.float64), landmarks_raw=d["landmarks_raw"].astype(np.float64),
                 found=d["found"], scores=d["scores"], pose=d["pose"].astype(np.float64),
                 pose_euler=d["pose_euler"], pose_scale=d["pose_scale"], mean_shape=d["mean_shape"].astype(np.float64),
                 frame_numbers=d["frame_numbers"], face_id=int(d["face_id"]), face_ids=d["face_ids"],
                 all_landmarks=d["all_landmarks"].astype(np.float64), all_found=d["all_found"],
                 width=int(d["width"]), height=int(d["height"]), fps=float(d["fps"]), source=str(d["source"]),
                 meta=meta)
