"""Where the tracker's converted weights live, and how they are installed.

The networks are MediaPipe's BlazeFace short-range detector, face-landmark (mesh), iris-landmark and attention-mesh
(face landmarks with refined lips, eyes and irises: MediaPipe's ``refine_landmarks=True``) models.
Their weights come from the ``.tflite`` files inside the ``mediapipe`` wheel on PyPI — fetched with
``pip download --no-deps`` (nothing else is downloaded, and mediapipe itself is never installed for this) —
and are converted by :mod:`.tflite_convert` into ``.npz`` files under the weights folder:
``$NED_FX_HOME/weights`` (default ``~/.cache/ned_fx/weights``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..errors import InputNotFoundError, UnreadableMediaError, WeightsMissingError

MEDIAPIPE_VERSION = "0.10.21"

#: net name -> path of its .tflite inside the mediapipe wheel
NETS = {
    "face_detector": "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "face_mesh": "mediapipe/modules/face_landmark/face_landmark.tflite",
    "iris": "mediapipe/modules/iris_landmark/iris_landmark.tflite",
    "face_mesh_attention": "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite",
}


def home() -> Path:
    """The ned_fx data folder: ``$NED_FX_HOME`` or ``~/.cache/ned_fx``."""
    return Path(os.environ.get("NED_FX_HOME") or Path.home() / ".cache" / "ned_fx")


def weights_dir() -> Path:
    return home() / "weights"


def weights_path(name: str) -> Path:
    """Path of the converted weights of one net (``face_detector``, ``face_mesh``, ``iris`` or
    ``face_mesh_attention``)."""
    if name not in NETS:
        raise KeyError(f"unknown net {name!r}; nets: {', '.join(NETS)}")
    return weights_dir() / f"{name}.npz"


def require(name: str) -> Path:
    """Path of a net's weights.

    Raises:
        WeightsMissingError: they are not installed (the message gives the command that installs them).
    """
    path = weights_path(name)
    if not path.is_file():
        raise WeightsMissingError(
            f"the {name} weights are not installed ({path} is missing). Install them with "
            f"`ned-fx weights install` (downloads the mediapipe=={MEDIAPIPE_VERSION} wheel from PyPI and "
            "converts its .tflite files), or `ned-fx weights install --wheel PATH` with a wheel you have.")
    return path


def download_wheel(dest: Path) -> Path:
    """``pip download --no-deps mediapipe==VERSION`` into ``dest``; returns the wheel's path."""
    dest.mkdir(parents=True, exist_ok=True)
    existing = sorted(dest.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if existing:
        return existing[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
           f"mediapipe=={MEDIAPIPE_VERSION}", "-d", str(dest)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if result.returncode != 0 or not wheels:
        raise WeightsMissingError(
            f"could not download mediapipe=={MEDIAPIPE_VERSION} from PyPI ({' '.join(cmd)}):\n"
            f"{result.stderr.strip()[-2000:]}\nDownload the wheel elsewhere and run "
            "`ned-fx weights install --wheel PATH`.")
    return wheels[0]


def install(wheel: Path | None = None, force: bool = False) -> dict[str, Path]:
    """Convert the nets from a mediapipe wheel into the weights folder (only those not converted yet, unless
    ``force``: an install from before a net was added gains it without converting the others again).

    Args:
        wheel: a ``mediapipe-0.10.21-*.whl`` file; downloaded from PyPI when None.
        force: convert again even where a converted file exists.

    Returns:
        net name -> path of its converted weights.

    Raises:
        InputNotFoundError: ``wheel`` does not exist.
        UnreadableMediaError: the wheel is not a zip or lacks one of the models.
        WeightsMissingError: the wheel could not be downloaded.
    """
    from .tflite_convert import convert_tflite, save_net

    targets = {name: weights_path(name) for name in NETS}
    if not force and all(p.is_file() for p in targets.values()):
        return targets
    if wheel is None:
        wheel = download_wheel(home() / "wheels")
    wheel = Path(wheel)
    if not wheel.is_file():
        raise InputNotFoundError(f"wheel not found: {wheel}")
    try:
        with zipfile.ZipFile(wheel) as zf:
            for name, member in NETS.items():
                if not force and targets[name].is_file():
                    continue
                try:
                    data = zf.read(member)
                except KeyError:
                    raise UnreadableMediaError(f"{wheel.name} does not contain {member}; use the "
                                               f"mediapipe=={MEDIAPIPE_VERSION} wheel") from None
                spec, arrays = convert_tflite(data)
                source = {"wheel": wheel.name, "member": member, "sha256": hashlib.sha256(data).hexdigest()}
                save_net(targets[name], spec, arrays, source)
    except zipfile.BadZipFile:
        raise UnreadableMediaError(f"{wheel} is not a wheel (zip) file") from None
    manifest = weights_dir() / "manifest.json"
    fd, tmp = tempfile.mkstemp(dir=manifest.parent, prefix=".manifest", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump({"mediapipe": MEDIAPIPE_VERSION, "wheel": wheel.name,
                   "nets": {n: str(p) for n, p in targets.items()}}, fh, indent=2)
    os.replace(tmp, manifest)
    return targets
