"""The manipulator's result for one shot (:class:`EditedTrack`) and its file format (``EDITED.npz``).

File format, version 1 (a NumPy ``.npz``; F frames, P = 478 points, K action units):

=================  ===========  ==================================================================================
key                shape        meaning
=================  ===========  ==================================================================================
source_landmarks   FxPx3        the track's landmarks (frame pixels, as ``TRACK.npz`` ``landmarks``; NaN where no
                                face)
target_landmarks   FxPx3        the edited face in the same frame pixels: what the renderer should produce
found              F            bool, a face was tracked (frames without one are passed through unchanged)
frame_numbers      F            the input's frame numbers
pose               Fx3x4        head pose ``[sR | t]`` of the track (unchanged by the edit)
au_names           K            action unit names (``AU1`` … ``AU45``), the order of every K axis
au_source          FxK          fitted AU activations of the source (NaN where no face)
au_target          FxK          target AU activations (``au_source`` where nothing changes)
neutral            Px3          the actor's neutral shape in the head frame
basis              KxPx3        the actor's speech-safe AU fields (head frame, per unit activation): target =
                                source + pose-linear(basis · max(au_target - au_source, 0)
                                + basis_down · min(au_target - au_source, 0))
basis_down         KxPx3        optional: the fields of negative offsets (absent: ``basis``; see
                                :attr:`ned_fx.manipulation.expression.ExpressionBasis.edit_fields_down`)
intensity          F            intensity per frame (0 = no edit)
style              FxK          target AU pattern per frame (intensity applied)
speech_gate        F            how much a style may add to the speech channels (0 on talking shots)
region_weights     K            per-AU region weight used
width, height      ()           frame size in pixels; ``fps`` () frame rate (0 for stills)
face_id            ()           face id of the track that was edited
source             ()           path of the track (or media) the edit was made from
params             ()           JSON: format_version, emotion / keys / curve, intensity, regions, reference,
                                speech mode and whether the shot was taken as talking, neutral source, config,
                                ned_fx version
=================  ===========  ==================================================================================

Landmarks and AU arrays are stored as float32 (like ``TRACK.npz``); files are written atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..npzfile import read_npz, write_npz
from ..errors import InvalidParameterError

FORMAT_VERSION = 1
REQUIRED = ("source_landmarks", "target_landmarks", "found", "frame_numbers", "au_names", "au_source", "au_target")


@dataclass(frozen=True)
class EditedTrack:
    """One shot's edit. Arrays as in the module docstring (float64 in memory)."""

    source_landmarks: np.ndarray
    target_landmarks: np.ndarray
    found: np.ndarray
    frame_numbers: np.ndarray
    pose: np.ndarray
    au_names: tuple[str, ...]
    au_source: np.ndarray
    au_target: np.ndarray
    neutral: np.ndarray
    basis: np.ndarray
    intensity: np.ndarray
    style: np.ndarray
    speech_gate: np.ndarray
    region_weights: np.ndarray
    width: int = 0
    height: int = 0
    fps: float = 0.0
    face_id: int = 0
    source: str = ""
    params: dict = field(default_factory=dict)
    basis_down: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return len(self.frame_numbers)

    @property
    def offsets(self) -> np.ndarray:
        """FxPx3 target - source, in frame pixels (NaN where no face)."""
        return self.target_landmarks - self.source_landmarks

    def replaced(self, k: int, name: str) -> float:
        """How much of the source's own activation of AU ``name`` the edit replaces at frame ``k`` (0..1): an
        emotion at intensity ``w`` replaces ``min(w, 1)`` of it, times that AU's region weight. What the picture
        shows beyond the fitted AU (a frown the mesh missed) is taken away as far as this."""
        i = tuple(self.au_names).index(name)
        return min(float(self.intensity[k]), 1.0) * float(self.region_weights[i])


def to_arrays(edited: EditedTrack) -> dict[str, np.ndarray]:
    """The arrays an edit file holds (what :func:`write_to_file` stores; :func:`from_arrays` reads them back)."""
    params = dict(edited.params, format_version=FORMAT_VERSION)
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return {
        "source_landmarks": f32(edited.source_landmarks), "target_landmarks": f32(edited.target_landmarks),
        "found": np.asarray(edited.found, bool), "frame_numbers": np.asarray(edited.frame_numbers, np.int64),
        "pose": f32(edited.pose), "au_names": np.array(list(edited.au_names), dtype=str),
        "au_source": f32(edited.au_source), "au_target": f32(edited.au_target), "neutral": f32(edited.neutral),
        "basis": f32(edited.basis), "intensity": f32(edited.intensity), "style": f32(edited.style),
        "speech_gate": f32(edited.speech_gate), "region_weights": f32(edited.region_weights),
        "width": np.int64(edited.width), "height": np.int64(edited.height), "fps": np.float64(edited.fps),
        "face_id": np.int64(edited.face_id), "source": np.array(str(edited.source)),
        "params": np.array(json.dumps(params)),
    } | ({} if edited.basis_down is None else {"basis_down": f32(edited.basis_down)})


def as_stored(edited: EditedTrack) -> EditedTrack:
    """The edit exactly as an edit file holds it (its arrays' precision), so an edit rendered from memory and one
    read back from its file render the same pixels (the track's twin: ``tracking.cache.as_cached``)."""
    return from_arrays(to_arrays(edited))


def write_to_file(edited: EditedTrack, path: str | Path) -> Path:
    """Write an edit to ``path`` (``.npz``) atomically.

    Raises:
        InvalidParameterError: the name does not end in ``.npz``.
        OutputWriteError: the file could not be written (nothing half-written is left).
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise InvalidParameterError(f"an edit file must end in .npz, got {path.name}")
    write_npz(path, to_arrays(edited))
    return path


def read_from_file(path: str | Path) -> EditedTrack:
    """Read an edit written by :func:`write_to_file`.

    Raises:
        InputNotFoundError: no such file. UnreadableMediaError: not an edit file (names the missing keys).
    """
    return from_arrays(read_npz(path, REQUIRED, "edit"))


def from_arrays(d: dict[str, np.ndarray]) -> EditedTrack:
    """An edit from the arrays of :func:`to_arrays` (the caller checked that the :data:`REQUIRED` keys exist)."""
    f64 = lambda k: d[k].astype(np.float64)  # noqa: E731
    return EditedTrack(
        source_landmarks=f64("source_landmarks"), target_landmarks=f64("target_landmarks"), found=d["found"],
        frame_numbers=d["frame_numbers"], pose=f64("pose"), au_names=tuple(str(n) for n in d["au_names"]),
        au_source=f64("au_source"), au_target=f64("au_target"), neutral=f64("neutral"), basis=f64("basis"),
        intensity=f64("intensity"), style=f64("style"), speech_gate=f64("speech_gate"),
        region_weights=f64("region_weights"), width=int(d["width"]), height=int(d["height"]), fps=float(d["fps"]),
        face_id=int(d["face_id"]), source=str(d["source"]), params=json.loads(str(d["params"])),
        basis_down=f64("basis_down") if "basis_down" in d else None)
