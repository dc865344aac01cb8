"""The inference daemon (``ned-fx serve``): engines loaded once, hosts send frames over ZeroMQ.

:class:`~ned_fx.daemon.server.Daemon` serves the protocol of :mod:`ned_fx.protocol`; sessions (one per shot)
live in :mod:`ned_fx.daemon.sessions`. Importing this package loads no models.
"""

from .server import Daemon, describe, is_loopback

__all__ = ["Daemon", "describe", "is_loopback"]
