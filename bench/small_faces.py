"""Small faces: a shared clip's frames set, pixel for pixel, into larger plates (a medium shot on a 1080p or 4K
plate), tracked with the whole-frame detector only (MediaPipe's procedure, ``TrackerConfig.small_faces`` 0) and
with the window search (the default), and what the search costs.

    .venv/bin/python bench/small_faces.py [--clip d12.mp4] [--frames 60] [--plates 1920x1080@0.5 3840x2160@1]

Each ``--plates`` entry is a plate size and the scale the clip's frames are set into it at (0.5: resized
with area averaging, a face half as large). Per plate and tracker: ``found`` the share of frames with the face,
``err_iod`` the mean distance of the 468 mesh points from the same tracker's on the clip's own frames (% of the
inter-ocular distance, in the clip's pixels; the face is the same, only the crop's sub-pixel phase differs),
``ms_per_frame`` tracking time a frame (CPU, onnxruntime where installed, one thread a net as ``ned-fx edit``).
Rows ``search``: one window search on a plate holding nothing (flat grey: every level runs, the worst case; the
tracker repeats it every ``small_faces_interval`` frames of a run without a face) and on the plate with the face
(the search stops at the first level that finds it), against the whole-frame detector on the same frame
(``whole_ms``; ``vs_whole``: the search's time over the whole frame's). No footage is written anywhere. Prints a
table and writes JSON to bench/results/small_faces-<machine>-<time>.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import table, write_results


def placed(frames: np.ndarray, width: int, height: int) -> tuple[np.ndarray, int, int]:
    h, w = frames.shape[1:3]
    y, x = (height - h) // 2, (width - w) // 3
    out = np.full((len(frames), height, width, 3), 60, np.uint8)
    out[:, y:y + h, x:x + w] = frames
    return out, x, y


def track(tracker, frames) -> tuple[list, float]:
    start = time.perf_counter()
    seen = list(tracker.iter_track(iter(frames)))
    return seen, time.perf_counter() - start


def first_face(seen) -> np.ndarray:
    return np.stack([next(iter(s.faces.values()))[0] if s.faces else np.full((478, 3), np.nan) for s in seen])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default="d12.mp4")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--plates", nargs="*", default=["1920x1080@0.5", "3840x2160@1"],
                        help="WIDTHxHEIGHT@SCALE: the plate, and the scale of the clip's frames in it")
    args = parser.parse_args()
    from ned_fx.threads import configure

    configure(None)
    import torch

    from ned_fx import topology as T
    from ned_fx.tracking import FaceTracker, TrackerConfig

    from track import decode

    clip = decode(args.clip, args.frames)
    trackers = {"whole frame (MediaPipe)": FaceTracker(TrackerConfig(small_faces=0.0)),
                "windows (default)": FaceTracker(TrackerConfig())}
    own = first_face(track(trackers["windows (default)"], clip)[0])
    iod = T.inter_ocular(own)
    rows = []
    import cv2

    for plate in args.plates:
        size, _, scale = plate.partition("@")
        scale = float(scale or 1)
        width, height = (int(v) for v in size.split("x"))
        frames = clip if scale == 1 else np.stack([cv2.resize(f, None, fx=scale, fy=scale,
                                                              interpolation=cv2.INTER_AREA) for f in clip])
        plates, x, y = placed(frames, width, height)
        for name, tracker in trackers.items():
            track(tracker, plates[:2])                        # warm-up (the windows' batch shape included)
            seen, seconds = track(tracker, plates)
            lm = first_face(seen)
            lm[..., 0] = (lm[..., 0] - x) / scale
            lm[..., 1] = (lm[..., 1] - y) / scale
            ok = ~np.isnan(lm[:, 0, 0]) & ~np.isnan(own[:, 0, 0])
            err = (np.linalg.norm(lm[ok, :468, :2] - own[ok, :468, :2], axis=2).mean(1) / iod[ok]).mean() \
                if ok.any() else None
            rows.append({"what": "track", "plate": size, "scale": scale, "tracker": name, "frames": len(plates),
                         "found": float(ok.mean()), "err_iod": None if err is None else float(100 * err),
                         "ms_per_frame": 1000 * seconds / len(plates)})
        tracker = trackers["windows (default)"]
        for label, frame in (("nothing (flat grey)", np.full((height, width, 3), 60, np.uint8)),
                             ("the face", plates[0])):
            batch = torch.from_numpy(frame[None]).permute(0, 3, 1, 2)
            tracker.detect(batch, [0])
            tracker.detect_small(batch, 0)
            t0 = time.perf_counter()
            for _ in range(3):
                tracker.detect(batch, [0])
            t1 = time.perf_counter()
            for _ in range(3):
                found = tracker.detect_small(batch, 0)
            t2 = time.perf_counter()
            rows.append({"what": "search", "plate": size, "scale": scale, "tracker": label, "frames": 1,
                         "found": float(bool(found)),
                         "ms_per_frame": 1000 * (t2 - t1) / 3, "whole_ms": 1000 * (t1 - t0) / 3,
                         "vs_whole": (t2 - t1) / max(t1 - t0, 1e-9)})
    columns = ["what", "plate", "scale", "tracker", "frames", "found", "err_iod", "ms_per_frame", "whole_ms",
               "vs_whole"]
    print(table(rows, columns))
    path = write_results("small_faces", rows, {"clip": args.clip, "frames_per_clip": args.frames,
                                               "small_faces": TrackerConfig().small_faces,
                                               "small_faces_interval": TrackerConfig().small_faces_interval})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
