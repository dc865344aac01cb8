"""A private daemon for a host process that finds none — a render blade running ``nuke -x`` on a script with an
Emotion Director: ``PYTHON -m ned_fx.commands.serve --port 0`` on loopback (a free port), allowed to read only
the folders the host names, stopped when the host process exits (it watches the host's pid: also when the host
is killed).

``PYTHON`` is the Python of a ned_fx install on that machine (its venv: the engines load there, never in the
host's Python). Standard library only.
"""

from __future__ import annotations

import atexit
import os
import queue
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import NedFxError

_READY = re.compile(r"ned-fx serve: ready on (\S+)")


class LocalDaemonError(NedFxError):
    """The private daemon did not start (the message quotes its log's last lines)."""

    exit_code = 8


@dataclass
class LocalDaemon:
    """A started daemon: its ``endpoint``, process and log file."""

    endpoint: str
    proc: subprocess.Popen
    log: Path
    _drain: threading.Thread | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the daemon's clean stop), then SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)


def start(python: str, roots: Sequence[str | os.PathLike], extra_args: Sequence[str] = (),
          timeout: float = 600.0, log_dir: str | os.PathLike | None = None) -> LocalDaemon:
    """Start ``python -m ned_fx.commands.serve --port 0 --root R…`` and wait until it is ready.

    Args:
        python: the ned_fx install's Python; roots: folders the daemon may read (sources, the host's cache).
        extra_args: more ``serve`` options (``--engine``, ``--device``, ``--cache``…).
        timeout: seconds to wait for the engines to load.

    Raises:
        LocalDaemonError: the Python cannot start, the daemon exited, or it was not ready in time.
    """
    folder = Path(log_dir or tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"ned_fx_local_daemon-{os.getpid()}-{time.time_ns()}.log"
    # --parent-pid: the daemon stops when this host process ends, even killed (a farm manager's SIGKILL of a blade
    # runs no atexit): no daemon is left holding the blade's memory and GPU
    command = [python, "-m", "ned_fx.commands.serve", "--port", "0",
               *[a for r in dict.fromkeys(str(r) for r in roots) for a in ("--root", r)],
               "--parent-pid", str(os.getpid()), *extra_args]
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    err = open(log, "w")
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True,
                                env=env, start_new_session=True)
    except OSError as exc:
        err.close()
        raise LocalDaemonError(f"cannot start {python}: {exc.strerror}; set NED_FX_PYTHON to the Python of a "
                               f"ned_fx install on this machine") from None
    err.close()
    lines: "queue.Queue[str | None]" = queue.Queue()

    def drain() -> None:                    # stdout keeps being read: a full pipe would block the daemon
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=drain, name="ned-fx-local-daemon", daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
        except queue.Empty:
            line = ""
        if line:
            m = _READY.search(line)
            if m:
                daemon = LocalDaemon(m.group(1), proc, log, reader)
                atexit.register(daemon.stop)
                return daemon
        if line is None or proc.poll() is not None:
            proc.wait()
            raise LocalDaemonError(f"the private ned-fx daemon exited at start (code {proc.returncode}): "
                                   f"{_tail(log)} (log: {log})")
        if time.monotonic() > deadline:
            daemon = LocalDaemon("", proc, log, reader)
            daemon.stop()
            raise LocalDaemonError(f"the private ned-fx daemon was not ready within {timeout:g}s: {_tail(log)} "
                                   f"(log: {log})")


def _tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:]) or "no output"
    except OSError:
        return "no log"
