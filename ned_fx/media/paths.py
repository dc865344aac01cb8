"""File kinds by extension, and image-sequence patterns (``shot.%04d.exr``, ``shot.####.exr``, ``shot.@@@@.exr``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputNotFoundError, InvalidParameterError, NedFxError, UnsupportedFormatError

#: Still-image extensions read and written (lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".dpx", ".bmp")
#: Movie extensions read through PyAV (lower case).
MOVIE_EXTENSIONS: tuple[str, ...] = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mxf", ".mpg", ".mpeg",
                                     ".ts", ".mts", ".m2ts", ".wmv", ".flv", ".3gp", ".ogv")

# One frame-number token in a file name: %04d / %d, a run of '#', or a run of '@'.
_TOKEN_RE = re.compile(r"%(0?\d+)?d|#+|@+")


def media_kind_for(path: str | os.PathLike) -> str:
    """Say whether a file name is an image or a movie by its extension.

    Args:
        path: a file name or path.

    Returns:
        ``"image"`` or ``"movie"``.

    Raises:
        UnsupportedFormatError: the extension is neither; the message lists the supported ones.
    """
    ext = Path(path).suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in MOVIE_EXTENSIONS:
        return "movie"
    raise UnsupportedFormatError(
        f"{path}: the file type {ext or '(no extension)'!r} is not supported. Images: "
        f"{' '.join(IMAGE_EXTENSIONS)}; movies: {' '.join(MOVIE_EXTENSIONS)}; image sequences as "
        f"name.%04d.ext, name.####.ext or name.@@@@.ext")


@dataclass(frozen=True)
class SequencePattern:
    """A parsed sequence pattern.

    Attributes:
        folder: the folder holding the frames.
        prefix: file-name text before the frame number.
        suffix: file-name text after the frame number (includes the extension).
        padding: minimum digits of the number (0 = no padding).
        text: the pattern as given.
    """

    folder: Path
    prefix: str
    suffix: str
    padding: int
    text: str

    def name_for(self, number: int) -> str:
        """File name of frame ``number``."""
        return f"{self.prefix}{str(int(number)).zfill(self.padding)}{self.suffix}"

    def path_for(self, number: int) -> Path:
        """Path of frame ``number``."""
        return self.folder / self.name_for(number)

    def number_of(self, name: str) -> int | None:
        """The frame number a file name stands for, or None when it is not a member (other text or padding).

        Args:
            name: a file name (no folder).

        Returns:
            The frame number, or None.
        """
        if not (name.startswith(self.prefix) and name.endswith(self.suffix)):
            return None
        middle = name[len(self.prefix):len(name) - len(self.suffix)]
        if not re.fullmatch(r"-?\d+", middle):
            return None
        number = int(middle)
        return number if self.name_for(number) == name else None


def is_sequence_pattern(path: str | os.PathLike) -> bool:
    """Whether a path's file name holds a frame-number token (``%04d``, ``%d``, ``####`` or ``@@@@``).

    Args:
        path: the path.

    Returns:
        True for a pattern.
    """
    return _TOKEN_RE.search(Path(path).name) is not None


def parse_sequence_pattern(path: str | os.PathLike) -> SequencePattern:
    """Split a sequence pattern into folder, prefix, padding and suffix.

    ``%04d`` pads to 4 digits, ``%d`` does not pad, and a run of ``#`` or ``@`` pads to its length.

    Args:
        path: e.g. ``/shots/a/plate.####.exr``.

    Returns:
        The SequencePattern.

    Raises:
        InvalidParameterError: no token, or more than one token in the file name.
    """
    p = Path(path)
    tokens = list(_TOKEN_RE.finditer(p.name))
    if not tokens:
        raise InvalidParameterError(
            f"{path} is not an image-sequence pattern; write the frame number as %04d, #### or @@@@ "
            f"(e.g. shot.####.exr)")
    if len(tokens) > 1:
        raise InvalidParameterError(
            f"{path} has {len(tokens)} frame-number tokens ({', '.join(t.group(0) for t in tokens)}); a sequence "
            f"pattern must have exactly one, e.g. shot.####.exr")
    token = tokens[0]
    text = token.group(0)
    if text.startswith("%"):
        if text != "%d" and not text.startswith("%0"):
            raise InvalidParameterError(
                f"{path}: {text!r} pads with spaces; use %0Nd (e.g. %04d) or %d for frame numbers")
        padding = int(token.group(1)) if token.group(1) else 0
    else:
        padding = len(text)
    return SequencePattern(folder=p.parent, prefix=p.name[:token.start()], suffix=p.name[token.end():],
                           padding=padding, text=str(path))


def sequence_path(pattern: str | os.PathLike, number: int) -> Path:
    """Expand a sequence pattern for one frame: ``shot.####.exr`` and 1001 -> ``shot.1001.exr``.

    Args:
        pattern: a path whose file name holds ``%04d``, ``%d``, ``####`` or ``@@@@``.
        number: the frame number (negative numbers get a leading minus inside the padding, like printf).

    Returns:
        The frame's path.

    Raises:
        InvalidParameterError: the path is not a pattern (or has more than one token).
    """
    return parse_sequence_pattern(pattern).path_for(number)


def find_sequence_frames(pattern: str | os.PathLike) -> dict[int, Path]:
    """List the files of an image sequence on disk.

    Args:
        pattern: the sequence pattern.

    Returns:
        frame number -> path, for every file that matches the pattern exactly (same padding).

    Raises:
        InputNotFoundError: the folder does not exist, or no file matches (the message names the pattern and
            folder, and mentions files that match all but the padding).
        UnsupportedFormatError: the pattern's extension is not an image type.
        InvalidParameterError: the pattern is malformed.
    """
    seq = parse_sequence_pattern(pattern)
    ext = Path("frame" + seq.suffix).suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise UnsupportedFormatError(
            f"image sequence {pattern}: {ext or '(no extension)'!r} is not an image type; supported: "
            f"{' '.join(IMAGE_EXTENSIONS)}")
    folder = seq.folder
    shown = os.path.abspath(folder)  # "." in a message helps nobody
    if not folder.is_dir():
        raise InputNotFoundError(f"image sequence {pattern}: the folder {shown} does not exist")
    found: dict[int, Path] = {}
    near_misses: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise InputNotFoundError(f"image sequence {pattern}: cannot list the folder {shown} ({exc.strerror})") \
            from None
    loose = re.compile(re.escape(seq.prefix) + r"-?\d+" + re.escape(seq.suffix) + r"\Z")
    for entry in entries:
        number = seq.number_of(entry.name)
        if number is not None:
            if entry.is_file():
                found[number] = folder / entry.name
        elif loose.match(entry.name):
            near_misses.append(entry.name)
    if not found:
        hint = ""
        if near_misses:
            near_misses.sort()
            hint = (f"; {len(near_misses)} file(s) differ only in the number's padding, e.g. {near_misses[0]} — "
                    f"use as many # as the digits in the names")
        raise InputNotFoundError(
            f"image sequence {pattern}: no files match {seq.prefix}{'#' * max(seq.padding, 1)}{seq.suffix} "
            f"in the folder {shown} (expected names like {seq.name_for(1001)}){hint}")
    return dict(sorted(found.items()))


def source_files(path: str | os.PathLike) -> list[Path]:
    """The files a source is made of: the file itself, or every frame file of a sequence pattern (sorted).

    Raises:
        InputNotFoundError: no such file, or no frame of the sequence.
    """
    if is_sequence_pattern(path):
        return list(find_sequence_frames(path).values())
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"input not found: {p}")
    return [p]


def source_fingerprint(path: str | os.PathLike) -> str:
    """A content fingerprint of a source, cheap enough for 4K sequences: every file's name, size and mtime, plus the
    SHA-256 of the first and last MiB of its first and last file. A movie with a display rotation (a portrait phone
    video) adds it: its frames are read upright (:class:`~.readers.MovieSource`), and a track, analysis or matte
    cached when they were read as coded (sideways) must not be taken for theirs.

    Raises:
        InputNotFoundError: the source is not there.
    """
    import hashlib

    h = hashlib.sha256()
    files = source_files(path)
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    for f in dict.fromkeys(files[:1] + files[-1:]):
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
            if f.stat().st_size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read(1 << 20))
    if len(files) == 1 and files[0].suffix.lower() in MOVIE_EXTENSIONS:
        from .readers import movie_rotation

        try:
            rotation = movie_rotation(files[0])
        except NedFxError:          # not readable as a movie: reading its frames says why
            rotation = 0
        if rotation:
            h.update(f"rotation:{rotation}\n".encode())
    return h.hexdigest()
