"""Recipe: export every engine to ONNX (dynamic batch) and check each against PyTorch in onnxruntime.

    .venv/bin/python engines/export_onnx.py [--out engines/build] [--only face_mesh ...]

The ONNX files are build outputs (git-ignored); TensorRT engines are built from them (issue 7).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ned_fx.engines import engine_specs, export_onnx, onnx_parity


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).parent / "build"))
    parser.add_argument("--only", nargs="*", choices=sorted(engine_specs()))
    args = parser.parse_args()
    print(f"{'engine':<14} {'file':<40} max |onnxruntime - torch| per output")
    for name in args.only or engine_specs():
        path = export_onnx(name, Path(args.out) / f"{name}.onnx")
        diffs = onnx_parity(name, path)
        print(f"{name:<14} {str(path):<40} " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
