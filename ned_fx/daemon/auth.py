"""Who may talk to the daemon: keys, grants and the ZAP handler (ZeroMQ's PLAIN mechanism).

By default the daemon authenticates every connection (``docs/protocol.md``, "Threat model"):

* At its first start the daemon makes its user's key: ``daemon.key`` (one line ``owner SECRET``, 0600) in the
  user's private runtime folder (:func:`ned_fx.protocol.runtime_folder`: ``$XDG_RUNTIME_DIR/ned_fx`` or
  ``<tmp>/ned_fx-<uid>``, 0700). Clients of the same user read it there and present it (ZeroMQ PLAIN through
  the daemon's ZAP handler); another user cannot read it, so cannot get in.
* The owner may grant another user (or a machine) access: ``ned-fx serve --grant NAME`` writes
  ``$NED_FX_HOME/grants/NAME.key``; the owner hands a copy to that user (``install -m 600 -o bob …``), whose
  clients present it through ``$NED_FX_DAEMON_KEY``. A granted client sees and touches only its own sessions,
  never renders through shared memory, is never told the local lane, and may not shut the daemon down.
* ``--curve-keys DIR`` replaces all this with CurveZMQ (encryption, and only clients whose public key is in
  ``DIR/clients/``); every such client counts as the owner (the keys are the owner's to hand out).

The PLAIN secret crosses the socket in the clear: on loopback and ``ipc://`` only processes of root could read
it; across a network use ``--curve-keys``.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from .. import protocol as P


def owner_key() -> tuple[str, str]:
    """This user's daemon key ``(name, secret)``, made (0600, in the private runtime folder) if missing."""
    P.runtime_folder(create=True)
    path = P.owner_key_path()
    if os.path.lexists(path):
        return P.read_key(path)
    return P.write_key(path, P.OWNER)


def grant_folder(create: bool = False) -> Path:
    """``$NED_FX_HOME/grants``: the keys this user granted (0700)."""
    from ..tracking.weights import home

    folder = home() / "grants"
    if create:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    return folder


def make_grant(name: str) -> Path:
    """Write (or keep) the grant key of ``name``; returns its path (hand a copy to that user)."""
    if not P.KEY_NAME.fullmatch(name) or name == P.OWNER:
        raise ValueError(f"grant name {name!r}: letters, digits, '_', '.', '-' (1 to 64), not {P.OWNER!r}")
    path = grant_folder(create=True) / f"{name}.key"
    P.write_key(path, name)
    return path


def passwords(log=None) -> dict[str, str]:
    """``{name: secret}`` the daemon accepts: its owner's key and every grant (a grant file that is not private
    or not a key is skipped, and said so on the log)."""
    name, secret = owner_key()
    accepted = {name: secret}
    folder = grant_folder()
    if folder.is_dir():
        for path in sorted(folder.glob("*.key")):
            try:
                gname, gsecret = P.read_key(path)
            except (OSError, ValueError) as exc:
                if log:
                    log(f"grant {path.name} skipped: {exc}")
                continue
            if gname != P.OWNER:
                accepted[gname] = gsecret
    return accepted


class Secret:
    """A key's secret that compares in constant time (the ZAP handler compares ``password == secret``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value.encode()

    def __eq__(self, other) -> bool:
        if isinstance(other, (bytes, str)):
            return secrets.compare_digest(self._value, other.encode() if isinstance(other, str) else other)
        return NotImplemented

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return "Secret(…)"              # never on a log


def private_dir(folder: Path) -> Path:
    """Make ``folder`` (and its missing parents) and make it 0700 whatever the umask (cached face tracks are
    biometric data of real people)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    st = os.lstat(folder)
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and st.st_mode & 0o077:
        os.chmod(folder, 0o700)
    return folder


def private_file(path: Path) -> None:
    """Make a file this process just wrote 0600 (its folder is already 0700: no window for others)."""
    try:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError:
        pass
