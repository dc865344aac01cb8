"""``ned-fx engines``: build, list and verify the compiled engines.

    ned-fx engines build                              # ONNX exports + TensorRT engines for this GPU (fp16, batches 1 8)
    ned-fx engines build --onnx-only                  # machines without TensorRT (CI): the ONNX exports only
    ned-fx engines build face_mesh iris --precision fp32 --batch 1 4 16 --force
    ned-fx engines list                               # what the cache holds, whether this machine can use it
                                                      # (exit status 1 when something is missing or stale)
    ned-fx engines verify --input shot.mov --frames 0-7   # each engine against PyTorch on real frames
    ned-fx engines build neural_renderer --checkpoint actor.ckpt --onnx-only   # an actor's neural renderer

The cache is ``$NED_FX_HOME/engines`` (``--out`` moves it). Only stale artefacts are rebuilt: another GPU or
TensorRT version, changed weights or code, a missing or altered file (see ``ned_fx/engines/manifest.py``).
``verify`` runs each engine on TensorRT where it can (else onnxruntime on the ONNX exports) and in PyTorch
float32 on the same real feeds, and prints the error per output with the tolerance it is held to.

The neural renderer is trained per actor: ``--checkpoint ACTOR.ckpt`` gives its weights to build, list and
verify (the manifest records the checkpoint's hash, so a new checkpoint makes the export stale). Without it the
neural renderer is the default configuration's generator with fixed-seed stand-in weights (export and parity
checks only). One cache holds one actor's neural renderer: use ``--out`` per actor to keep several built.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``engines`` sub-command."""
    from ..engines.config import BACKENDS, PRECISIONS
    from ..engines.specs import ENGINE_NAMES

    p = subparsers.add_parser("engines", help="build, list and verify the compiled engines (ONNX, TensorRT)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    names = f"engines (default all): {', '.join(ENGINE_NAMES)}"

    def common(q):
        q.add_argument("--out", "--cache", dest="out", metavar="DIR",
                       help="engine cache folder (default $NED_FX_HOME/engines)")
        q.add_argument("--device", default="cuda:0", help="the CUDA device whose GPU engines are for (default cuda:0)")
        q.add_argument("--checkpoint", metavar="ACTOR.ckpt", help="the neural_renderer's weights: an actor's "
                       "checkpoint from `ned-fx train-renderer` (default: seeded stand-in weights)")

    b = sub.add_parser("build", help="export to ONNX and build TensorRT engines where stale")
    b.add_argument("names", nargs="*", metavar="ENGINE", help=names)
    b.add_argument("--precision", choices=PRECISIONS, help="TensorRT precision (default fp16; the renderer is "
                   "always fp32)")
    b.add_argument("--batch", type=int, nargs="+", metavar="N", help="batch sizes, one optimisation profile each "
                   "(default 1 8)")
    b.add_argument("--onnx-only", action="store_true", help="export and check ONNX only (no TensorRT needed)")
    b.add_argument("--force", action="store_true", help="rebuild even what is up to date")
    b.add_argument("--opset", type=int, help="ONNX opset (default 18)")
    b.add_argument("--workspace-gb", type=float, help="TensorRT builder workspace in GiB (default 4)")
    common(b)

    ls = sub.add_parser("list", help="list the cache and whether this machine can use each artefact")
    common(ls)

    v = sub.add_parser("verify", help="compare each engine with PyTorch on real frames, error per output")
    v.add_argument("names", nargs="*", metavar="ENGINE", help=names)
    v.add_argument("--input", help="movie, image or sequence with a face (default: the embedded demo face)")
    v.add_argument("--frames", help="frame range of the input (default: its first 8 frames)")
    v.add_argument("--backend", default="auto", choices=("auto", *BACKENDS),
                   help="what to check (default auto: tensorrt where built for this GPU, else onnxruntime)")
    v.add_argument("--precision", choices=PRECISIONS, help="precision of the engines checked (default fp16)")
    v.add_argument("--batch", type=int, nargs="+", metavar="N", help="batch sizes the engines were built for")
    v.add_argument("--emotion", default="happy", help="the edit the manipulator/renderer feeds carry (default happy)")
    common(v)
    p.set_defaults(func=run, _parser=p)
    return p


def _config(args):
    from ..engines import EnginesConfig

    given = {"cache": args.out, "precision": getattr(args, "precision", None),
             "batches": tuple(args.batch) if getattr(args, "batch", None) else None,
             "opset": getattr(args, "opset", None), "workspace_gb": getattr(args, "workspace_gb", None)}
    return EnginesConfig(**{k: v for k, v in given.items() if v is not None})


def _weights(args) -> dict:
    """``--checkpoint`` as the engine layer's ``{engine: weights file}``."""
    checkpoint = getattr(args, "checkpoint", None)
    if not checkpoint:
        return {}
    names = getattr(args, "names", None)
    if names and "neural_renderer" not in names:
        from ..errors import InvalidParameterError

        raise InvalidParameterError(f"--checkpoint is the neural_renderer's weights and the engines asked for are "
                                    f"{', '.join(names)}; add neural_renderer or leave --checkpoint out")
    return {"neural_renderer": checkpoint}


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def run(args) -> int:
    action = getattr(args, "action", None)
    if action is None:
        args._parser.print_help()
        return 2
    return {"build": _build, "list": _list, "verify": _verify}[action](args)


def _build(args) -> int:
    import sys

    from ..engines.cache import build_engines

    config = _config(args)
    steps = build_engines(args.names, config, onnx_only=args.onnx_only, force=args.force, device=args.device,
                          say=lambda line: print(line, file=sys.stderr, flush=True), weights=_weights(args))
    rows = [[s.engine, s.kind, s.precision or "-", s.action, f"{s.seconds:.1f}s", s.path, s.why] for s in steps]
    print(_table(rows, ["engine", "kind", "precision", "result", "time", "file", "why / check"]))
    print(f"cache: {config.cache_dir()}")
    return 0


def _list(args) -> int:
    from ..engines.cache import list_engines

    config = _config(args)
    rows = list_engines(config, args.device, weights=_weights(args))
    print(_table([[r.engine, r.kind, r.precision or "-", r.target or "-", r.status, r.detail or ""] for r in rows],
                 ["engine", "kind", "precision", "built for", "status", "detail"]))
    print(f"cache: {config.cache_dir()}")
    return 0 if all(r.status in ("ok", "other machine") for r in rows) else 1


def _verify(args) -> int:
    import tempfile

    from ..engines.cache import default_verify_input, verify_engines
    from ..engines.inputs import real_feeds
    from ..engines.specs import check_names

    names = check_names(args.names)
    weights = _weights(args)
    config = _config(args)
    with tempfile.TemporaryDirectory(prefix="ned_fx_verify_") as tmp:
        source = args.input or default_verify_input(tmp)
        feeds = real_feeds(source, args.frames, names, emotion=args.emotion, weights=weights)
    checks = verify_engines(feeds, args.backend, config, args.device if args.backend != "auto" else "auto",
                            weights=weights)
    rows = [[c.engine, c.output, c.backend, c.precision, str(c.batch), f"{c.max_abs:.3g}", f"{c.rel_l2:.3g}",
             f"{c.tolerance:.3g}", "ok" if c.ok else "FAIL", c.units] for c in checks]
    print(f"real frames: {source if args.input else 'the embedded demo face'}"
          f"{' ' + args.frames if args.frames else ''}; reference: PyTorch float32 on the CPU")
    print(_table(rows, ["engine", "output", "backend", "precision", "batch", "max |err|", "rel L2", "tolerance",
                        "", "units"]))
    bad = [c for c in checks if not c.ok]
    if bad:
        print(f"{len(bad)} output(s) over tolerance: {', '.join(f'{c.engine}.{c.output}' for c in bad)}")
        return 1
    return 0
