"""A host's connection to the daemon: per-thread clients, a short liveness check, and a status a UI shows.

A host must never hang on a daemon that is not there. :meth:`DaemonLink.check` pings with a short timeout and no
retry (2 s by default) and records a :class:`LinkStatus` whose ``message`` says what to do; every request made
through :meth:`DaemonLink.call` updates the same status, so a UI that shows it recovers by itself once the daemon
answers again. ZeroMQ sockets are not thread-safe: :meth:`DaemonLink.client` gives each thread its own.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from .wire import MISSING, Client, DaemonError, DaemonUnavailableError

#: The endpoint hosts use unless told (``NED_FX_ENDPOINT`` overrides it in :meth:`LinkConfig.from_env`).
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5557"


@dataclass(frozen=True)
class LinkConfig:
    """How a host reaches the daemon (the one home of these defaults).

    Attributes:
        endpoint: ``tcp://host:port`` or ``ipc:///path``.
        ping_timeout: seconds the liveness check waits (no retry): the longest a host ever waits on a daemon
            that is not there.
        timeout: seconds to wait for a request's reply; retries: resends after a timeout.
        curve: ``(client .key_secret, server .key)`` for a daemon with CurveZMQ keys.
    """

    endpoint: str = DEFAULT_ENDPOINT
    ping_timeout: float = 2.0
    timeout: float = 60.0
    retries: int = 0
    curve: tuple[str, str] | None = None

    @classmethod
    def from_env(cls, endpoint: str | None = None) -> "LinkConfig":
        """The defaults, with ``endpoint`` or ``$NED_FX_ENDPOINT`` when given."""
        return cls(endpoint=endpoint or os.environ.get("NED_FX_ENDPOINT") or DEFAULT_ENDPOINT)


@dataclass(frozen=True)
class LinkStatus:
    """What the host last knew of the daemon: ``ok``, a message for the artist, when it was checked."""

    ok: bool
    message: str
    checked: float = 0.0
    engine: str = ""


UNKNOWN = LinkStatus(False, "the daemon has not been checked yet", 0.0)


class DaemonLink:
    """The host's link to one daemon endpoint (thread-safe; one client per thread)."""

    def __init__(self, config: LinkConfig | None = None):
        self.config = config or LinkConfig.from_env()
        self._local = threading.local()
        self._clients: list[Client] = []
        self._lock = threading.Lock()
        self._status = UNKNOWN
        self.server: dict = {}

    @property
    def status(self) -> LinkStatus:
        return self._status

    def _set(self, status: LinkStatus) -> LinkStatus:
        self._status = status
        return status

    def client(self) -> Client:
        """This thread's client (made on first use)."""
        if MISSING:
            raise DaemonUnavailableError(MISSING)
        c = getattr(self._local, "client", None)
        if c is None or c.sock is None:
            c = Client(self.config.endpoint, timeout=self.config.timeout, retries=self.config.retries,
                       curve=self.config.curve)
            if self.server:
                c.server = self.server
            self._local.client = c
            with self._lock:
                self._clients.append(c)
        return c

    def unavailable_message(self) -> str:
        if MISSING:
            return MISSING
        return (f"no ned-fx daemon answered at {self.config.endpoint} within {self.config.ping_timeout:g}s: start "
                f"it (`ned-fx serve`, or install/service.sh for a user service) — the input is passed through")

    def check(self, max_age: float = 0.0) -> LinkStatus:
        """Ping the daemon (``ping_timeout``, no retry) and learn its engine once; never waits longer.

        Args:
            max_age: reuse a status checked less than this many seconds ago instead of pinging again (a render
                loop without a daemon then waits once, not once per frame).

        Returns:
            the new status (also :attr:`status`).
        """
        if max_age > 0 and time.time() - self._status.checked < max_age:
            return self._status
        if MISSING:
            return self._set(LinkStatus(False, MISSING, time.time()))
        c = self.client()
        try:
            c.ping(timeout=self.config.ping_timeout, retries=0)
            if not self.server:
                self.server = c.hello()
                c.server = self.server
        except DaemonUnavailableError:
            return self._set(LinkStatus(False, self.unavailable_message(), time.time()))
        except DaemonError as exc:
            return self._set(LinkStatus(False, f"the daemon refused the connection: {exc}", time.time()))
        engine = (self.server.get("engine") or {}).get("engine", "") if isinstance(self.server, dict) else ""
        return self._set(LinkStatus(True, f"daemon ready at {self.config.endpoint}"
                                          f"{f' (engine {engine})' if engine else ''}", time.time(), engine))

    def call(self, fn: Callable[[Client], Any]) -> Any:
        """Run ``fn(client)``; a daemon that stopped answering marks the status unavailable (and re-raises)."""
        try:
            result = fn(self.client())
        except DaemonUnavailableError:
            self._set(LinkStatus(False, self.unavailable_message(), time.time()))
            raise
        if not self._status.ok:
            self._set(LinkStatus(True, f"daemon ready at {self.config.endpoint}", time.time(),
                                 self._status.engine))
        return result

    def describe(self) -> dict | None:
        """The daemon's ``describe`` reply, or None when it does not answer within ``ping_timeout``."""
        if not self.check().ok:
            return None
        try:
            return self.call(lambda c: c.describe())
        except (DaemonUnavailableError, DaemonError):
            return None

    def close(self) -> None:
        with self._lock:
            for c in self._clients:
                c.close()
            self._clients.clear()
        self._local = threading.local()
