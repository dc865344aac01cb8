"""The farm's last step for a movie output: encode the rendered frame sequence as the movie (the source's frame rate,
its audio trimmed to the shot), then remove the frames. ``ned-fx farm assemble`` runs it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import InvalidParameterError


def assemble_movie(frames: str | os.PathLike, output: str | os.PathLike, frame_range: str | None, fps: float,
                   audio_from: str | os.PathLike | None = None, clean: bool = False) -> Path:
    """Encode an image sequence as a movie, atomically.

    Args:
        frames: the sequence pattern (``out/sh010.mov.frames/sh010.####.png``); output: the movie to write;
        frame_range: its frames (movies made from movies: the source's 0-based indices); fps: frame rate;
        audio_from: a movie whose audio track is copied, trimmed to ``frame_range`` at ``fps``;
        clean: remove the frames (and their folder when it is left empty) once the movie is written.

    Returns:
        the movie's path.

    Raises:
        InputNotFoundError: frames are missing (the numbers are listed); OutputWriteError: the movie could not be
        written (nothing half-written is left); InvalidParameterError: a bad fps or output.
    """
    from ..media import MOVIE_EXTENSIONS, MovieWriter, ensure_not_input, open_media, parse_sequence_pattern
    from ..pipeline import display_plate

    out = Path(output)
    if out.suffix.lower() not in MOVIE_EXTENSIONS:
        raise InvalidParameterError(f"{out.name} is not a movie; valid: {' '.join(MOVIE_EXTENSIONS)}")
    if not fps > 0:
        raise InvalidParameterError(f"fps must be more than 0, got {fps}")
    ensure_not_input(out, [frames] + ([audio_from] if audio_from else []))
    out.parent.mkdir(parents=True, exist_ok=True)
    movie = None
    with open_media(frames, frame_range) as src:
        numbers = list(src.frame_numbers)
        start = numbers[0] / fps
        audio = audio_from if audio_from and Path(audio_from).suffix.lower() in MOVIE_EXTENSIONS else None
        try:
            for frame in src:
                rgb = display_plate(frame)
                if movie is None:
                    movie = MovieWriter(out, fps, rgb.shape[1], rgb.shape[0], audio_from=audio,
                                        audio_range=(start, start + len(numbers) / fps))
                movie.write(rgb)
            movie.close()
        except BaseException:
            if movie is not None:
                movie.abort()
            raise
    if clean:
        seq = parse_sequence_pattern(frames)
        for n in numbers:
            try:
                os.unlink(seq.path_for(n))
            except OSError:
                pass
        for leftover in seq.folder.glob(".*.ned_fx.json"):       # ned-fx edit's resume sidecar
            if re.match(r"\." + re.escape(Path(str(frames)).name), leftover.name):
                leftover.unlink(missing_ok=True)
        try:
            seq.folder.rmdir()
        except OSError:
            pass
    return out
