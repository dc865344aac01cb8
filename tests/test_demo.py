"""The README's first command: `ned-fx demo` edits the embedded default face (scikit-image's astronaut) and writes
what it says, in a process that imports neither torch nor scikit-image (~2 s and ~0.5 s of a ~1.7 s demo)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ned_fx.media import read_image

_PROGRAM = """
import sys

from ned_fx.cli import main

code = main(sys.argv[2:])
loaded = [m for m in sys.argv[1].split(",") if m in sys.modules]
if loaded:
    print("the demo imported " + ", ".join(loaded), file=sys.stderr)
sys.exit(code or (3 if loaded else 0))
"""


def test_the_demo_edits_the_embedded_face_without_torch_or_scikit_image(tmp_path):
    from skimage import data

    from ned_fx.cli import demo_image
    from ned_fx.tracking import TrackerConfig
    from ned_fx.tracking.runtime import runtime_name

    astronaut = data.astronaut()
    assert np.array_equal(demo_image(), astronaut) and demo_image().flags["C_CONTIGUOUS"]
    heavy = "skimage"
    if runtime_name(TrackerConfig()) == "onnxruntime":
        from ned_fx.tracking.ort import load_ort_engines

        load_ort_engines()              # the nets' exports (made with torch on first use, as a first edit makes them)
        heavy = "torch,skimage"         # (a machine whose tracker runs PyTorch needs torch)
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-c", _PROGRAM, heavy, "demo", "-o", str(out)], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    names = ["astronaut.png", "astronaut_happy.png", "astronaut_before_after.png", "astronaut_tracked.png",
             "astronaut_track.npz"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for name in names:
        assert f"wrote {out / name}" in run.stdout or name == "astronaut.png", name
    source = read_image(out / "astronaut.png").pixels
    edit = read_image(out / "astronaut_happy.png").pixels
    assert np.array_equal(source, astronaut)
    changed = np.abs(edit.astype(int) - source.astype(int)).max(axis=2) > 0
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 2000, "the demo's smile changed too little"
    # the edit stays on her face (the face spans ~x 150-260, y 40-190 of the 512² picture)
    assert 100 < xs.min() and xs.max() < 330 and ys.max() < 260, (xs.min(), xs.max(), ys.min(), ys.max())
    before_after = read_image(out / "astronaut_before_after.png").pixels
    assert before_after.shape[0] == 512 and before_after.shape[1] > 1000
