"""Recipe: build the TensorRT engines for this GPU into the engine cache (``$NED_FX_HOME/engines``).

    .venv/bin/python engines/build_trt.py [--precision fp16|fp32] [--batch 1 8] [--only face_mesh ...]
                                          [--out DIR] [--force] [--workspace-gb 4]

Each engine goes ONNX export (checked against PyTorch in onnxruntime) -> TensorRT, through the composable steps
of ``ned_fx.engines.trt``::

    bundle = network_from_onnx(onnx_file)                                    # parse
    config = build_config(bundle, precision, profiles_for(spec, batches),   # precision, one profile per batch
                          load_timing_cache(cache_file), workspace_gb)       # size, the timing cache
    save_engine(build_engine(bundle, config), engine_file)                   # build, save (atomic)
    save_timing_cache(config, cache_file)

and the manifest records what each engine was built from and for (weights and code hashes, opset, TensorRT
version, GPU compute capability, precision, profiles), so only what is stale is rebuilt and an engine built for
another GPU or TensorRT is never loaded. Needs an NVIDIA GPU and ``pip install tensorrt``; the same as
``ned-fx engines build``.
"""

from __future__ import annotations

import argparse
import sys

from ned_fx.engines import ENGINE_NAMES, PRECISIONS, EnginesConfig
from ned_fx.engines.cache import build_engines
from ned_fx.errors import NedFxError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=ENGINE_NAMES)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--out", help="engine cache (default $NED_FX_HOME/engines)")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--workspace-gb", type=float, default=4.0)
    parser.add_argument("--checkpoint", help="the actor's neural renderer (ned-fx train-renderer) for neural_renderer")
    args = parser.parse_args()
    config = EnginesConfig(cache=args.out, precision=args.precision, batches=tuple(args.batch),
                           workspace_gb=args.workspace_gb)
    try:
        steps = build_engines(args.only, config, force=args.force, device=args.device,
                              say=lambda line: print(line, file=sys.stderr, flush=True),
                              weights={"neural_renderer": args.checkpoint} if args.checkpoint else None)
    except NedFxError as exc:
        print(f"build_trt: error: {exc}", file=sys.stderr)
        return exc.exit_code
    for s in steps:
        print(f"{s.engine:<18} {s.kind:<9} {s.precision or '-':<5} {s.action:<11} {s.seconds:6.1f}s  {s.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
