"""A real ``ned-fx serve`` subprocess for tests (daemon, bridges, batch): ``Daemon("--engine", "identity",
roots=[tmp_path])`` starts one on a free loopback port; always ``kill()`` it (fixture or ``finally``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import FOOTAGE, REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: every daemon the tests started (conftest checks at the end of the run that none is still alive)
STARTED: list = []


class Daemon:
    """A ``serve`` subprocess; always killed by the fixture or the test's ``finally``."""

    def __init__(self, *args: str, port: int | None = None, tmp: Path | None = None, wait: float = 60.0,
                 roots: tuple = (), env: dict | None = None, umask: int | None = None):
        self.port = port or free_port()
        extra = [a for root in roots for a in ("--root", str(root))]
        if tmp is not None and "--cache" not in args:      # the test's own analysis cache, not the user's
            extra += ["--cache", str(tmp / "daemon-cache")]
        self.log = open((tmp or Path("/tmp")) / f"daemon-{self.port}-{time.time_ns()}.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ned_fx.commands.serve", "--port", str(self.port), "--root", str(FOOTAGE.parent),
             *extra, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={**os.environ, **env} if env else None,
            umask=-1 if umask is None else umask)        # set by subprocess in C: no Python between fork and exec
        STARTED.append(self)
        line = self.proc.stdout.readline()   # "ned-fx serve: ready on tcp://…" once the engines are loaded
        if "ready on" not in line:
            self.kill()
            self.log.seek(0)
            raise RuntimeError(f"the daemon did not start: {line!r} {self.log.read()[-2000:]}")
        self.endpoint = f"tcp://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stderr(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


def ended(pid: int, within: float) -> bool:
    """Whether process ``pid`` (not this process's child) has ended, or is a zombie, within ``within`` seconds
    (Linux: read from /proc)."""
    deadline = time.monotonic() + within
    while True:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def keyed(sock):
    """A raw ZeroMQ socket made to present this user's daemon key (ZeroMQ PLAIN), as ``ned_fx.client`` does."""
    from ned_fx.protocol import client_key

    name, secret = client_key()
    sock.plain_username, sock.plain_password = name.encode(), secret.encode()
    return sock
