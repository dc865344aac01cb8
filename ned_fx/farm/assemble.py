"""The farm's last step for a movie output: encode the rendered frame sequence as the movie (the source's frame rate,
its audio trimmed to the shot), then remove the frames. ``ned-fx farm assemble`` runs it.

The frames were written by ``ned-fx edit`` and each carries the edit's provenance record; the movie carries the
shot's record as a video (edited when any frame was), so the delivered movie says it was edited like every other
ned_fx output."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

from ..errors import InvalidParameterError


def assemble_movie(frames: str | os.PathLike, output: str | os.PathLike, frame_range: str | None, fps: float,
                   audio_from: str | os.PathLike | None = None, clean: bool = False) -> Path:
    """Encode an image sequence as a movie, atomically.

    Args:
        frames: the sequence pattern (``out/sh010.mov.frames/sh010.####.png``); output: the movie to write;
        frame_range: its frames (movies made from movies: the source's 0-based indices); fps: frame rate;
        audio_from: the source movie: its audio track is copied, trimmed to ``frame_range`` at ``fps``; its
            codec (where the output's container holds it; 10-bit frames kept at 10 bits), display rotation (a
            portrait phone video), pixel aspect (an anamorphic plate) and a variable frame rate's frame times
            carried, as ``ned-fx edit`` carries them;
        clean: remove the frames (and their folder when it is left empty) once the movie is written.

    The movie carries the provenance record of the frames (see the module doc); frames that carry none make a
    movie without one.

    Returns:
        the movie's path.

    Raises:
        InputNotFoundError: frames are missing (the numbers are listed); OutputWriteError: the movie could not be
        written (nothing half-written is left); InvalidParameterError: a bad fps or output.
    """
    import numpy as np

    from ..media import MOVIE_EXTENSIONS, MovieWriter, ensure_not_input, open_media, parse_sequence_pattern
    from ..media.layers import LayerConfig
    from ..media.readers import Presentation, movie_presentation
    from ..media.writers import deep_pixels
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
        record = movie_record([src.path_for(n) for n in numbers] if hasattr(src, "path_for") else [frames])
        audio = audio_from if audio_from and Path(audio_from).suffix.lower() in MOVIE_EXTENSIONS else None
        # shown as the source was (rotation, pixel aspect, a variable frame rate), in its own codec
        shown = movie_presentation(audio) if audio else Presentation()
        try:
            for frame in src:
                rgb = display_plate(frame)
                if movie is None:
                    movie = MovieWriter(out, fps, rgb.shape[1], rgb.shape[0],
                                        codec=LayerConfig().movie_codec(out, audio), audio_from=audio,
                                        audio_range=shown.audio_span(numbers[0], numbers[-1], len(numbers), fps),
                                        provenance=record, deep=frame.pixels.dtype == np.uint16,
                                        **shown.writer_options())
                deep = deep_pixels(frame, movie)
                movie.write(rgb if deep is None else deep, shown.time_of(frame.number, numbers[0]))
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


def movie_record(frame_files):
    """The record a movie made of these frames carries: the frames' shot record as a video (no source frame; the
    source's SHA-256 when every frame names the same source file, as frames of a movie plate do), edited when any
    frame was. None when no frame carries a record.

    Raises:
        ProvenanceError: a frame carries a malformed record.
    """
    from ..media.readers import read_provenance
    from ..provenance import sentence

    records = [r for r in (read_provenance(f) for f in frame_files) if r is not None]
    if not records:
        return None
    edited = [r for r in records if r.edited]
    base = edited[0] if edited else records[0]
    hashes = {r.source_sha256 for r in records}
    reasons = sorted({r.passed_through for r in records if r.passed_through})
    video = replace(base, kind="video", source_frame=None, edited=bool(edited),
                    source_sha256=hashes.pop() if len(hashes) == 1 else None,
                    passed_through=None if edited else ("; ".join(reasons) or None))
    return replace(video, summary=sentence(video))
