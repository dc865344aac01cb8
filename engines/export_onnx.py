"""Recipe: export every engine to ONNX (dynamic batch, and frames / resolution where they apply) and check each
against PyTorch in onnxruntime on its example feed.

    .venv/bin/python engines/export_onnx.py [--out engines/build] [--only face_mesh ...] [--opset 18]
                                            [--checkpoint ACTOR.ckpt]

Six engines: face_detector, face_mesh, iris (the tracker), manipulator, geometry_renderer, neural_renderer (an
actor's weights with --checkpoint; fixed-seed stand-in weights without). The ONNX files are
build outputs (git-ignored). ``ned-fx engines build`` does the same into the engine cache, with a manifest, and
then builds the TensorRT engines (``engines/build_trt.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ned_fx.engines import ENGINE_NAMES, export_onnx, get_spec, onnx_parity


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).parent / "build"))
    parser.add_argument("--only", nargs="*", choices=ENGINE_NAMES)
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--checkpoint", help="the actor's neural renderer (ned-fx train-renderer) for neural_renderer")
    args = parser.parse_args()
    weights = {"neural_renderer": args.checkpoint} if args.checkpoint else None
    print(f"{'engine':<18} {'file':<44} max |onnxruntime - torch| per output (tolerance)")
    worst = 0
    for name in args.only or ENGINE_NAMES:
        w = weights if name == "neural_renderer" else None
        path = export_onnx(name, Path(args.out) / f"{name}.onnx", opset=args.opset, weights=w)
        diffs = onnx_parity(name, path, batch=3, seed=1, weights=w)
        tol = get_spec(name, weights=w).tolerance["fp32"]
        worst |= any(v > tol[k] for k, v in diffs.items())
        print(f"{name:<18} {str(path):<44} " + ", ".join(f"{k} {v:.2e} ({tol[k]:g})" for k, v in diffs.items()))
    return 1 if worst else 0


if __name__ == "__main__":
    raise SystemExit(main())
