"""``ned-fx gallery``: one contact sheet of the actor's face under every emotion, to judge the edits at a glance.

    ned-fx gallery portrait.png -o sheet.png                        # rows: emotions; columns: source, 0.5, 1, 1.5
    ned-fx gallery shot.mov -o sheet.png --frames 4                 # rows: source, then each emotion at 1
    ned-fx gallery --astronaut -o astronaut_gallery.png             # the embedded default face
    ned-fx gallery portrait.png -o sheet.png --emotions happy,sad --intensities 1,1.5

A still: every emotion at every intensity. A clip: evenly spaced frames, before and after each emotion (at
``--intensity``, default 1); the clip is tracked once, each emotion is planned on the whole track and rendered
only on the frames shown. The tiles are square face crops (one box per column, so a column compares like with
like) with a label above each. The sheet says in its caption and in its provenance metadata that it shows edited
faces; it is written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import InvalidParameterError

CAPTION = "EDITED FACES: expressions changed by ned_fx"


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``gallery`` sub-command."""
    from ..cli import add_tracker_options

    p = subparsers.add_parser("gallery", help="contact sheet of the face under every emotion and intensity",
                              description="A labelled grid of face crops: for a still, every emotion (rows) at "
                              "every intensity (columns) beside the source; for a clip, evenly spaced frames before "
                              "and after each emotion.", epilog=__doc__.split("\n\n")[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", help="still, movie or sequence (or --astronaut); never modified")
    p.add_argument("--astronaut", action="store_true",
                   help="use the embedded default face (scikit-image's astronaut, as `ned-fx demo`)")
    p.add_argument("-o", "--output", required=True, help="the sheet: .png, .jpg or .tif")
    p.add_argument("--emotions", help="comma-separated (default: every emotion: neutral, happy, sad, surprised, "
                                      "fearful, angry, disgusted)")
    p.add_argument("--intensities", default="0.5,1,1.5", help="a still's columns (default 0.5,1,1.5)")
    p.add_argument("--intensity", type=float, default=1.0, help="a clip's intensity (default 1)")
    p.add_argument("--frames", type=int, default=4, help="a clip's evenly spaced frames shown (default 4)")
    p.add_argument("--range", dest="frame_range", metavar="RANGE",
                   help="the frames analysed, e.g. 0-99 (default the whole shot; movies: 0-based indices)")
    p.add_argument("--face", type=int, help="face id (default the main face)")
    p.add_argument("--tile", type=int, default=256, help="tile size in pixels (default 256)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    add_tracker_options(p)
    p.set_defaults(func=run)
    return p


def parse_emotions(text: str | None) -> list[str]:
    from ..manipulation.prototypes import EMOTIONS

    if not text:
        return list(EMOTIONS)
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in EMOTIONS]
    if bad or not names:
        raise InvalidParameterError(f"unknown emotion(s) {', '.join(bad) or repr(text)}; valid: {', '.join(EMOTIONS)}")
    return names


def parse_intensities(text: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise InvalidParameterError(f"--intensities must be numbers separated by commas, e.g. 0.5,1,1.5; got "
                                    f"{text!r}") from None
    if not values:
        raise InvalidParameterError("--intensities is empty; e.g. 0.5,1,1.5")
    return values


def crop_box(landmarks: np.ndarray, width: int, height: int, margin: float = 0.2) -> tuple[int, int, int]:
    """A square ``(x0, y0, side)`` around the face oval (and brows) plus ``margin`` of its size on each side."""
    from ..topology import FACE_OVAL

    pts = np.asarray(landmarks, np.float64)[list(FACE_OVAL), :2]
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = int(round(min(side, max(width, height))))
    return int(round(cx - side / 2)), int(round(cy - side / 2)), max(side, 1)


#: the gallery's fill where a tile's box leaves the picture (8-bit grey)
OUTSIDE = 48


def tile(rgb: np.ndarray, box: tuple[int, int, int], size: int, label: str) -> np.ndarray:
    """The crop, resized to ``size``, under a label strip; where the box leaves the picture a flat dark grey
    (``OUTSIDE``: edge-replicated rows read as smeared pixels under a chin at the frame's edge)."""
    import cv2

    x0, y0, side = box
    h, w = rgb.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
    src = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), constant_values=OUTSIDE) if pad else rgb
    crop = src[y0 + pad: y0 + pad + side, x0 + pad: x0 + pad + side]
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
    return np.vstack([label_strip(label, size), crop])


def label_strip(text: str, width: int, height: int | None = None, scale: float | None = None) -> np.ndarray:
    import cv2

    height = height or max(18, width // 9)
    scale = scale or height / 40
    strip = np.full((height, width, 3), 24, np.uint8)
    thick = max(1, int(round(scale * 1.6)))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    while tw > width - 8 and scale > 0.3:
        scale *= 0.9
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.putText(strip, text, (max(4, (width - tw) // 2), (height + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (240, 240, 240), thick, cv2.LINE_AA)
    return strip


def grid(rows: list[list[np.ndarray]], caption: str, gap: int = 4) -> np.ndarray:
    """Tiles (equal sizes) in rows, a gap between them, one caption line on top."""
    th, tw = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    width = cols * tw + (cols + 1) * gap
    body = np.full((len(rows) * th + (len(rows) + 1) * gap, width, 3), 8, np.uint8)
    for i, row in enumerate(rows):
        for j, t in enumerate(row):
            y, x = gap + i * (th + gap), gap + j * (tw + gap)
            body[y:y + th, x:x + tw] = t
    head = label_strip(caption, width, height=max(24, tw // 7))
    head[..., 1:] //= 2                                 # a red-tinted line: this sheet shows edited faces
    return np.vstack([head, body])


def _say(args, text: str) -> None:
    if not args.quiet:
        print(text, flush=True)


def run(args) -> int:
    import tempfile

    from ..cli import demo_image, tracker_config
    from ..media import ensure_not_input, write_image

    if args.astronaut == bool(args.input):
        raise InvalidParameterError("give an INPUT or --astronaut (the embedded default face), not both or neither")
    emotions = parse_emotions(args.emotions)
    intensities = parse_intensities(args.intensities)
    if args.frames < 1:
        raise InvalidParameterError(f"--frames must be 1 or more, got {args.frames}")
    if args.tile < 32:
        raise InvalidParameterError(f"--tile must be at least 32 pixels, got {args.tile}")
    out = Path(args.output)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        raise InvalidParameterError(f"the sheet {out.name} must be .png, .jpg or .tif (pictures that carry the "
                                    f"provenance saying it shows edited faces)")
    from ..pipeline import EditInstruction, check_instruction

    for value in intensities + [args.intensity]:
        check_instruction(EditInstruction(emotion=emotions[0], intensity=value))
    with tempfile.TemporaryDirectory(prefix="ned-fx-gallery-") as tmp:
        if args.astronaut:
            path = write_image(Path(tmp) / "astronaut.png", demo_image())
        else:
            path = Path(args.input)
            ensure_not_input(out, [path])
        sheet, record, number = make_sheet(path, emotions, intensities, args, tracker_config(args))
        name = "the embedded astronaut" if args.astronaut else path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        write_image(out, sheet, provenance=record.for_frame(number))
    _say(args, f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]}): {len(emotions)} emotion(s) of {name}")
    return 0


def make_sheet(path: Path, emotions: list[str], intensities: list[float], args, tracker_config):
    """Track once, plan and render each edit on the frames shown; returns (sheet RGB8, provenance record, frame)."""
    from ..errors import NoFaceError
    from ..media import open_media, parse_frame_range
    from ..pipeline import EditInstruction, check_one_shot, display_plate, track_media
    from ..provenance import build_record

    _say(args, f"tracking {path.name}")
    track = track_media(path, tracker_config, frames=args.frame_range, face_id=args.face)
    check_one_shot(track, path)
    found = np.flatnonzero(track.found)
    if not len(found):
        raise NoFaceError(f"no face was found in {path.name}; nothing to show")
    still = track.num_frames == 1
    picks = found[:1] if still else found[np.unique(np.linspace(0, len(found) - 1, args.frames).round().astype(int))]
    wanted = {int(track.frame_numbers[k]): int(k) for k in picks}
    frames = {}
    with open_media(path, parse_frame_range(args.frame_range)) as source:
        for frame in source:
            if int(frame.number) in wanted:
                frames[int(frame.number)] = frame
    numbers = sorted(frames)
    plates = {n: display_plate(frames[n]) for n in numbers}
    boxes = {n: crop_box(track.landmarks[wanted[n]], plates[n].shape[1], plates[n].shape[0]) for n in numbers}
    size = args.tile

    def render(emotion: str, intensity: float) -> dict:
        edits = _render(path, track, EditInstruction(emotion=emotion, intensity=intensity), args.frame_range,
                        [frames[n] for n in numbers])
        return {n: display_plate(f) for n, f in zip(numbers, edits)}

    rows = []
    if still:
        n = numbers[0]
        for emotion in emotions:
            row = [tile(plates[n], boxes[n], size, "source")]
            for intensity in intensities:
                _say(args, f"  {emotion} {intensity:g}")
                row.append(tile(render(emotion, intensity)[n], boxes[n], size, f"{emotion} {intensity:g}"))
            rows.append(row)
        what = f"intensities {', '.join(f'{i:g}' for i in intensities)}"
    else:
        rows.append([tile(plates[n], boxes[n], size, f"source #{n}") for n in numbers])
        for emotion in emotions:
            _say(args, f"  {emotion} {args.intensity:g}")
            edited = render(emotion, args.intensity)
            rows.append([tile(edited[n], boxes[n], size, f"{emotion} {args.intensity:g} #{n}") for n in numbers])
        what = f"intensity {args.intensity:g}, frames {', '.join(str(n) for n in numbers)}"
    from .. import __version__

    caption = f"{CAPTION} {__version__} (ned-fx gallery, {what})"
    # one record for the sheet: every emotion shown, and its intensities (a still's several go in the emotion text)
    shown = ",".join(emotions) + (f" (contact sheet at intensities {'/'.join(f'{i:g}' for i in intensities)})"
                                  if still and len(intensities) > 1 else " (contact sheet)")
    record = build_record(path, {"emotion": shown,
                                 "intensity": intensities[0] if still and len(intensities) == 1 else
                                 None if still else args.intensity},
                          face_id=int(track.face_id), frames=None if still else ",".join(str(n) for n in numbers),
                          application="ned-fx gallery", kind="image", hash_source=Path(path).is_file())
    return grid(rows, caption), record, numbers[0]


def _render(path: Path, track, instruction, frame_range, frames) -> list:
    """One edit planned on the whole track, rendered on ``frames`` (Frames of the shot) as the pipeline does."""
    from ..appearance import build_shot_models
    from ..pipeline import ShotRenderer, plan_edit

    edited = plan_edit(track, instruction)
    models = build_shot_models(path, track, edited, frame_range)
    shot = ShotRenderer(track, edited, models=models)
    return [shot.render(frame)[0] for frame in frames]
