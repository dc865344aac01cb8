"""Stage 1, tracking: faces -> 478 landmarks per frame, face ids, head pose.

Public contract: :class:`TrackerConfig`, :class:`FaceTracker`, :class:`Track`, :func:`read_from_file`,
:func:`write_to_file`. Nothing is loaded at import time; ``FaceTracker()`` loads the engines.
"""

from .config import TrackerConfig
from .track import Track, read_from_file, write_to_file


def __getattr__(name: str):
    # FaceTracker loads the engines (torch for the PyTorch runtime); keep `import ned_fx.tracking` light for tools
    # that only read track files.
    if name == "FaceTracker":
        from .tracker import FaceTracker

        return FaceTracker
    raise AttributeError(name)


__all__ = ["TrackerConfig", "FaceTracker", "Track", "read_from_file", "write_to_file"]
