"""The daemon analyses a shot once: a shot opened in a session, then opened again with another emotion.

    OMP_NUM_THREADS=1 .venv/bin/python bench/sessions.py [--clips ...] [--frames 100] [--emotion happy]
                                                       [--second-emotion sad]

Runs what ``ned-fx serve`` runs for a host, in this process (``ned_fx.daemon.sessions.Session`` with the warm
tracker the daemon loads by default, an empty cache folder): open the shot (``analyse``: track, fit, plan, the
appearance models), render every frame of the range (the daemon reads the plate itself), close; then the same
shot with the second emotion. A second session reads the first one's track, fit, models and occluder mattes and
plans its own edit. Emotions cost unlike renders (sad's folds and lids more than happy's), so the second emotion
is also run alone on an empty cache (``cold_``): ``cached_vs_cold`` is what the first session's analysis saves the
second. Columns (same run): ``open_s`` (the analysis), ``render_ms`` (a frame's render, wall), ``detector_ms`` (the
occluder detector's share of it, per frame) and ``total_s`` of each run; ``second_vs_first`` and
``cached_vs_cold`` (total over total).

Prints a table and writes JSON to bench/results/sessions-<machine>-<time>.json (machine, command, commit).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import FOOTAGE, table, write_results  # noqa: E402

CLIPS = ("WDA_AlexandriaOcasioCortez_000.mp4", "d12.mp4", "d3.mp4")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="*", default=list(CLIPS))
    parser.add_argument("--frames", type=int, default=100, help="frames per clip (from the start)")
    parser.add_argument("--emotion", default="happy")
    parser.add_argument("--second-emotion", default="sad")
    args = parser.parse_args()
    from ned_fx.threads import configure

    configure(None)
    from ned_fx.daemon.sessions import Session
    from ned_fx.occlusion import OcclusionDetector
    from ned_fx.pipeline import EditInstruction
    from ned_fx.tracking import FaceTracker, TrackerConfig

    spent: list[float] = []
    real = OcclusionDetector.detect_in_shot

    def timed(self, *a, **k):
        t = time.perf_counter()
        try:
            return real(self, *a, **k)
        finally:
            spent.append(time.perf_counter() - t)

    OcclusionDetector.detect_in_shot = timed
    tracker = FaceTracker(TrackerConfig(device="auto"))          # what `ned-fx serve` loads
    rows = []
    for name in args.clips:
        path = FOOTAGE / name
        row = {"input": name, "frames": args.frames}
        runs = (("", args.emotion, "shot"), ("second_", args.second_emotion, "shot"),
                ("cold_", args.second_emotion, "cold"))
        with tempfile.TemporaryDirectory() as tmp:
            for prefix, emotion, folder in runs:
                spent.clear()
                t0 = time.perf_counter()
                session = Session(path, f"0-{args.frames - 1}", None, EditInstruction(emotion=emotion), False,
                                  cache=Path(tmp) / folder)
                session.analyse(tracker)
                t1 = time.perf_counter()
                frames = [session.read_frame(n) for n in session.frame_numbers]
                t2 = time.perf_counter()
                for frame in frames:
                    session.render(frame)
                t3 = time.perf_counter()
                session.close()
                t4 = time.perf_counter()
                n = len(frames)
                row[prefix + "open_s"] = t1 - t0
                row[prefix + "render_ms"] = 1000 * (t3 - t2) / n
                row[prefix + "detector_ms"] = 1000 * sum(spent) / n
                row[prefix + "total_s"] = (t1 - t0) + (t3 - t2) + (t4 - t3)
        row["second_vs_first"] = row["total_s"] / row["second_total_s"]
        row["cached_vs_cold"] = row["cold_total_s"] / row["second_total_s"]
        rows.append(row)
        print(name, {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    columns = ["input", "frames", "open_s", "second_open_s", "cold_open_s", "render_ms", "second_render_ms",
               "cold_render_ms", "detector_ms", "second_detector_ms", "total_s", "second_total_s", "cold_total_s",
               "second_vs_first", "cached_vs_cold"]
    print(table(rows, columns))
    print("wrote", write_results("sessions", rows, {"emotions": [args.emotion, args.second_emotion]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
