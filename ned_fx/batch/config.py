"""The batch's settings: :class:`BatchConfig`, the only home of ``ned-fx batch``'s defaults (standard library only,
so the command line reads its defaults without loading the client)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidParameterError

#: Shot statuses in the report (and the audit log): ``done``, ``failed``, ``skipped`` (already written, or not
#: selected), and after an interrupt (Ctrl-C, SIGTERM) ``interrupted`` (in flight when it came) and ``not started``.
STATUSES = ("done", "failed", "skipped", "interrupted", "not started")
INTERRUPTED, NOT_STARTED = "interrupted", "not started"


@dataclass(frozen=True)
class BatchConfig:
    """How a batch runs (the only home of its defaults).

    Attributes:
        endpoint: the daemon to use; start_daemon: start a private one when none answers there;
        keep_daemon: leave a started daemon running at the end; engine, device: a started daemon's engine
            (``ned_fx`` or ``identity``) and device.
        jobs: shots in flight at once; resume: keep sequence frames already written by the same edit.
        timeout: seconds to wait for one reply; retries: resends after a timeout (Lazy Pirate);
        ping_timeout: how long the first ping waits before a daemon is started; start_timeout: how long a started
            daemon may take to load its engines; analysis_timeout: the longest one shot's analysis may take.
        report: the JSON report (None: ``<shot list>_report.json`` beside the shot list);
        contact_sheets: folder of the per-shot contact sheets (None: ``<report stem>_contact`` beside the report;
            ``""``: none); samples: frames per contact sheet; sheet_width: width of each picture in it.
        curve: ``(client .key_secret, server .key)`` for a daemon started with ``--curve-keys``.
        user, host: who asks (None: this user and machine); shots: only these shot names (others are skipped).
        daemon_logs: folder of a started daemon's log files (None: ``$NED_FX_HOME/logs``, ``~/.cache/ned_fx/logs``
            when ``NED_FX_HOME`` is not set); keep_logs: daemon logs kept there (the oldest are removed as new ones
            are made).
        audit: write the audit log (one ``batch_shot`` line per shot, one ``batch`` line per run); audit_log: its
            file (None: :func:`ned_fx.provenance.default_audit_path`, ``$NED_FX_AUDIT_LOG`` or
            ``$NED_FX_HOME/audit.jsonl``).
    """

    endpoint: str = "tcp://127.0.0.1:5557"
    start_daemon: bool = True
    keep_daemon: bool = False
    engine: str = "ned_fx"
    device: str = "auto"
    jobs: int = 2
    resume: bool = True
    timeout: float = 60.0
    retries: int = 2
    ping_timeout: float = 1.5
    start_timeout: float = 600.0
    analysis_timeout: float = 24 * 3600.0
    report: str | None = None
    contact_sheets: str | None = None
    samples: int = 4
    sheet_width: int = 480
    curve: tuple | None = None
    user: str | None = None
    host: str | None = None
    shots: tuple[str, ...] = ()
    daemon_logs: str | None = None
    keep_logs: int = 10
    audit: bool = True
    audit_log: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise InvalidParameterError(f"jobs (shots in flight) must be 1 or more, got {self.jobs!r}")
        if self.engine not in ("ned_fx", "identity"):
            raise InvalidParameterError(f"engine {self.engine!r}; valid: ned_fx, identity")
        if not isinstance(self.samples, int) or self.samples < 1:
            raise InvalidParameterError(f"samples (contact-sheet frames) must be 1 or more, got {self.samples!r}")
        if not isinstance(self.sheet_width, int) or not 64 <= self.sheet_width <= 4096:
            raise InvalidParameterError(f"sheet_width must be 64…4096 pixels, got {self.sheet_width!r}")
        if not isinstance(self.keep_logs, int) or self.keep_logs < 1:
            raise InvalidParameterError(f"keep_logs (daemon logs kept) must be 1 or more, got {self.keep_logs!r}")
        for name in ("timeout", "ping_timeout", "start_timeout", "analysis_timeout"):
            if not getattr(self, name) > 0:
                raise InvalidParameterError(f"{name} must be more than 0 seconds, got {getattr(self, name)!r}")
