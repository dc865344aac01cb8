"""The audit log: an append-only JSON-lines file of who edited which shot, how, into which outputs (and their hashes).

Each record is one line: ``{"schema": "ned_fx.audit/1", "time", "event", "who": {user, host, pid, application},
…}`` plus what the event has: ``shot`` (source, frames, face), ``params`` (the edit instruction), ``consent``,
``outputs`` (``[{path, sha256}]``), a summary. Writers from many processes (the daemon, batch workers on a farm
node, ``ned-fx edit``) may share one file:

* the file is opened with ``O_APPEND`` and each record goes out as **one** ``write`` of the whole line under an
  exclusive ``flock`` (so lines never interleave, whatever their size), then ``fsync`` (a record that was
  acknowledged survives a crash of the machine);
* a writer killed (or a machine crashing) in the middle of a line can leave a torn last line; the next writer sees
  the file does not end with a newline and starts on a fresh line, so no complete record is ever glued to a torn
  one;
* :func:`read_audit_log` returns every complete record and skips torn or foreign lines with a warning
  (:class:`AuditLogWarning`) naming the line.

The default file is ``$NED_FX_HOME/audit.jsonl`` (``~/.cache/ned_fx/audit.jsonl``). File locks hold on local
disks and on NFSv4; on other network file systems give every node its own file.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..media.writers import describe_os_error
from .errors import AuditLogError
from .record import file_sha256, now_utc, who

#: The schema of an audit line.
AUDIT_SCHEMA = "ned_fx.audit/1"
#: Events ned_fx writes (others may add their own names).
EVENTS = ("open", "refused", "close", "edit", "batch", "batch_shot")


class AuditLogWarning(UserWarning):
    """A line of the audit log was skipped (torn by a crash, or not a JSON object)."""


def default_audit_path() -> Path:
    """``$NED_FX_AUDIT_LOG`` if set, else ``$NED_FX_HOME/audit.jsonl`` (``~/.cache/ned_fx/audit.jsonl`` when
    ``NED_FX_HOME`` is not set)."""
    if os.environ.get("NED_FX_AUDIT_LOG"):
        return Path(os.environ["NED_FX_AUDIT_LOG"])
    # the same folder rule as ned_fx.tracking.weights.home(), without importing a stage package
    return Path(os.environ.get("NED_FX_HOME") or Path.home() / ".cache" / "ned_fx") / "audit.jsonl"


def output_entry(path: str | os.PathLike) -> dict[str, str]:
    """``{"path": absolute path, "sha256": hex}`` of an output file, for a record's ``outputs``."""
    return {"path": os.path.abspath(path), "sha256": file_sha256(path)}


class AuditLog:
    """An append-only JSON-lines audit file, safe to share between processes.

    Args:
        path: the file (created with its folder on the first write; default :func:`default_audit_path`).
        application: who writes (``"ned-fx serve"``, ``"ned-fx edit"``, ``"ned-fx batch"``), in every record's
            ``who``.
        fsync: flush every record to the disk before :meth:`write` returns (default).
    """

    def __init__(self, path: str | os.PathLike | None = None, application: str = "ned-fx", fsync: bool = True):
        self.path = Path(path) if path is not None else default_audit_path()
        self.application = application
        self.fsync = fsync
        self._who = {**who(), "pid": os.getpid(), "application": application}

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def check(self) -> Path:
        """Make sure the log can be appended to (creating it and its folder), before any work is done.

        Raises:
            AuditLogError: it cannot be created or written (the reason and the path are named).
        """
        fd = self._open()
        os.close(fd)
        return self.path

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one record: ``schema``, ``time``, ``event``, ``who``, then ``fields``.

        ``who`` is this process (user, host, pid, application) unless the caller gives ``who=`` (the daemon gives
        the user/host/application its client declared and the peer address it saw); then this process goes in
        ``writer``.

        Returns:
            the record written.

        Raises:
            AuditLogError: it could not be written (nothing partial is left behind as a complete line).
        """
        declared = fields.pop("who", None)
        me = dict(self._who, pid=os.getpid())
        record: dict[str, Any] = {"schema": AUDIT_SCHEMA, "time": now_utc(), "event": str(event)}
        if declared is None:
            record["who"] = me
        else:
            record["who"] = {k: v for k, v in dict(declared).items() if v is not None}
            record["writer"] = me
        record.update(fields)
        self.append(record)
        return record

    def append(self, record: Mapping[str, Any]) -> None:
        """Append a record as one line (one ``write`` under an exclusive lock, then ``fsync``).

        Raises:
            AuditLogError: not JSON-serialisable, or the file cannot be written.
        """
        try:
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_plain)
        except (TypeError, ValueError) as exc:
            raise AuditLogError(f"an audit record could not be written as JSON ({exc})") from None
        data = (line + "\n").encode("utf-8")
        fd = self._open()
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data        # a torn last line (a crashed writer): start a fresh one
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if self.fsync:
                    os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:
            raise AuditLogError(f"could not append to the audit log {self.path}: {describe_os_error(exc)}") from None
        finally:
            os.close(fd)

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o640)
        except OSError as exc:
            raise AuditLogError(f"cannot open the audit log {self.path}: {describe_os_error(exc)}; give a writable file "
                                f"(--audit-log FILE)") from None


def _plain(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "item"):          # numpy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def read_audit_log(path: str | os.PathLike, strict: bool = False) -> list[dict[str, Any]]:
    """Every complete record of an audit log, in order.

    A torn line (a writer that crashed mid-line) or a line that is not a JSON object is skipped with an
    :class:`AuditLogWarning` naming its line number; complete lines are never lost.

    Args:
        path: the log; strict: raise instead of skipping.

    Returns:
        the records (dicts).

    Raises:
        InputNotFoundError: no such file. AuditLogError: ``strict`` and a line is not a record.
    """
    from ..errors import InputNotFoundError

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputNotFoundError(f"the audit log {path} does not exist") from None
    except OSError as exc:
        raise AuditLogError(f"cannot read the audit log {path}: {describe_os_error(exc)}") from None
    return list(parse_lines(data.split(b"\n"), str(path), strict))


def parse_lines(lines: Iterable[bytes], name: str = "audit log", strict: bool = False):
    """Records from raw lines (see :func:`read_audit_log`)."""
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            message = f"{name}: line {number} is not a complete record (torn by a crash, or foreign): {exc}"
            if strict:
                raise AuditLogError(message) from None
            warnings.warn(message, AuditLogWarning, stacklevel=3)
            continue
        yield record
