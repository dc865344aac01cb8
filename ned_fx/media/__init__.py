"""The media layer: every stage reads and writes frames through here.

* :func:`open_media` opens a movie, a single image or an image sequence (``shot.####.exr``) as a
  :class:`MediaSource` that yields :class:`Frame` objects in the file's own pixel type.
* :func:`to_display_rgb8` gives the 8-bit RGB picture a face tracker looks at.
* :func:`write_image` and :class:`MovieWriter` write atomically (temporary file, then rename).

Importing this package is cheap: OpenCV, PyAV, OpenEXR and tifffile are imported only when a file is read or
written, and torch is never imported.
"""

from .frames import (DEFAULT_CHANNELS, PIXEL_DTYPES, Frame, FrameRange, full_window, linear_to_srgb8,
                     parse_frame_range, to_display_rgb8, window_size)
from .paths import (IMAGE_EXTENSIONS, MOVIE_EXTENSIONS, SequencePattern, find_sequence_frames, is_sequence_pattern,
                    media_kind_for, parse_sequence_pattern, sequence_path, source_files, source_fingerprint)
from .readers import ImageSource, MediaSource, MovieSource, SequenceSource, open_media, probe_image_size, read_image
from .writers import (EXR_COMPRESSIONS, MOVIE_CODECS, MovieWriter, atomic_output, ensure_not_input, temp_path_for,
                      write_image)

__all__ = [
    "Frame", "FrameRange", "parse_frame_range", "to_display_rgb8", "linear_to_srgb8", "full_window", "window_size",
    "PIXEL_DTYPES", "DEFAULT_CHANNELS",
    "open_media", "MediaSource", "MovieSource", "ImageSource", "SequenceSource", "read_image", "probe_image_size",
    "IMAGE_EXTENSIONS", "MOVIE_EXTENSIONS", "SequencePattern", "is_sequence_pattern", "parse_sequence_pattern",
    "sequence_path", "find_sequence_frames", "media_kind_for", "source_files", "source_fingerprint",
    "write_image", "MovieWriter", "ensure_not_input", "atomic_output", "temp_path_for", "EXR_COMPRESSIONS",
    "MOVIE_CODECS",
]
