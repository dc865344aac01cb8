"""Shared helpers of the benchmarks: machine description, commit, results JSON, a printed table."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOOTAGE = Path(os.environ.get("NED_FX_FOOTAGE") or REPO.parent / "shared" / "footage")
RESULTS = REPO / "bench" / "results"


def machine() -> dict:
    info = {"host": platform.node(), "platform": platform.platform(), "python": platform.python_version(),
            "cpu": _cpu_name(), "cores": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def commit() -> str:
    """``$NED_FX_COMMIT`` when the sender of a tree gives it (a copy sent to a lent GPU machine: the ``.git`` there
    may be an older state than the files, seen 2026-12-04), else HEAD (``+dirty`` with uncommitted changes to
    tracked files), else "unknown"."""
    given = os.environ.get("NED_FX_COMMIT")
    if given:
        return given
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        if sha:
            return sha + ("+dirty" if dirty else "")
    except OSError:
        pass
    return "unknown"


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    return "" if v is None else str(v)


def write_results(name: str, rows: list[dict], extra: dict | None = None) -> Path:
    """Write ``bench/results/<name>-<host>-<time>.json`` with machine, command and commit."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    info = machine()
    path = RESULTS / f"{name}-{info['host'] or 'host'}-{stamp}.json"
    doc = {"benchmark": name, "command": " ".join([Path(sys.executable).name, *sys.argv]), "commit": commit(),
           "machine": info, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rows": rows, **(extra or {})}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, path)
    return path
