"""The daemon client as the host modules see it: :mod:`ned_fx.client`, or — in a host Python that lacks pyzmq or
msgpack (a render blade nobody ran ``install/nuke.sh`` on, a stock Resolve Python) — error classes of the same
names and :data:`MISSING`, the install instructions.

Host modules import the client only through here, so a missing package never breaks an import: the link reports
:data:`MISSING` as its status (the node turns red and says what to install) and every request raises
:class:`DaemonUnavailableError` with that text, instead of a traceback that stops unrelated work in the host.
"""

from __future__ import annotations

import sys

from ..errors import NedFxError

#: Empty when the client loads; else what to install, for the artist.
MISSING = ""

try:
    from ..client import Client, DaemonError, DaemonUnavailableError, Shot
except ImportError as exc:             # pyzmq / msgpack / numpy absent from this host's Python
    _name = getattr(exc, "name", None) or str(exc)
    MISSING = (f"this Python ({sys.executable}) lacks {_name}, which the ned_fx daemon link needs: "
               f"install pyzmq, msgpack and numpy into it (Nuke: install/nuke.sh --nuke-python "
               f"/path/to/Nuke/python3; Resolve: python -m pip install --user pyzmq msgpack numpy with the "
               f"Python Resolve uses)")
    Client = None                      # type: ignore[assignment,misc]
    Shot = None                        # type: ignore[assignment,misc]

    class DaemonError(NedFxError):     # type: ignore[no-redef]
        """The daemon answered with an error (same name and ``code`` as :class:`ned_fx.client.DaemonError`)."""

        exit_code = 7

        def __init__(self, code: str, message: str):
            super().__init__(message)
            self.code = code

    class DaemonUnavailableError(NedFxError):   # type: ignore[no-redef]
        """No daemon can be reached (here: the client cannot even load)."""

        exit_code = 8

__all__ = ["MISSING", "Client", "DaemonError", "DaemonUnavailableError", "Shot"]
