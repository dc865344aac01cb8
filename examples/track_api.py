"""Use the tracker from Python: track a shot, then read per-frame head pose and mouth opening.

    .venv/bin/python examples/track_api.py shot.mov        # or a still, or shot.####.exr
"""

from __future__ import annotations

import sys

from ned_fx import topology
from ned_fx.pipeline import track_media
from ned_fx.tracking import TrackerConfig, write_to_file


def main(path: str) -> None:
    track = track_media(path, TrackerConfig(smoothing=0.3))
    print(f"{track.num_frames} frames, faces {track.face_ids.tolist()}, selected {track.face_id}")
    opening = topology.mouth_opening(track.landmarks) / topology.inter_ocular(track.landmarks)
    for number, found, (yaw, pitch, roll), mouth in zip(track.frame_numbers, track.found, track.pose_euler, opening):
        if found:
            print(f"frame {number}: yaw {yaw:6.1f}°  pitch {pitch:6.1f}°  roll {roll:6.1f}°  mouth {mouth:.2f} IOD")
        else:
            print(f"frame {number}: no face")
    write_to_file(track, "example_track.npz")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/footage/people_0.png")
