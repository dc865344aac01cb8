"""``ned-fx serve``: the inference daemon hosts (Nuke, Resolve, batch tools) talk to over ZeroMQ.

    ned-fx serve                                  # tcp://127.0.0.1:5557, the real engines
    ned-fx serve --port 0 --engine identity       # frames come back unchanged (transport tests, benchmarks)
    ned-fx serve --bind ipc:///tmp/ned_fx.sock --root /shows
    ned-fx serve --require-consent --audit-log /shows/audit/ned_fx.jsonl
    ned-fx serve --grant bob                      # a key for user bob (hand him a copy): he may use the daemon

Who gets in: clients of the daemon's own user (they read its key from a private 0600 file by themselves) and
clients presenting a key the owner granted (``--grant NAME``, ``$NED_FX_DAEMON_KEY`` on their side); anyone else
is refused. See docs/protocol.md, "Threat model".

Audit log: one JSON line per ``open`` (who, shot, instruction, consent), per refused open, and one summary per
session when it ends (frames rendered as ranges, renders, frames passed through and why): not a line per
rendered frame, which would flood the log while artists scrub. Hosts write the output files (and stamp the
provenance the daemon hands them), so output hashes are in their own audit lines (``ned-fx edit``, batch).
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_PORT = 5557


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``serve`` sub-command."""
    p = subparsers.add_parser("serve", help="run the inference daemon (engines stay warm; hosts connect over "
                              "ZeroMQ)", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(p)
    p.set_defaults(func=run)
    return p


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"loopback TCP port (default {DEFAULT_PORT}; 0 picks a free one and prints it)")
    p.add_argument("--bind", help="full endpoint instead of --port: tcp://HOST:PORT or ipc:///path")
    p.add_argument("--engine", choices=("ned_fx", "identity"), default="ned_fx",
                   help="ned_fx (default) or identity (returns frames unchanged, loads no models)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--root", action="append", default=None,
                   help="folder request paths must lie under (repeatable; default the current folder)")
    p.add_argument("--max-sessions", type=int, default=16, help="open sessions at most (default 16)")
    p.add_argument("--max-message-mb", type=int, default=1024, help="largest message part in MiB (default 1024)")
    p.add_argument("--session-idle", type=float, default=600.0,
                   help="close sessions unused this many seconds (default 600: a host killed with its sessions open "
                   "frees them within ten minutes; a live host's shot reopens itself from the cache)")
    p.add_argument("--lease", type=float, default=60.0,
                   help="close a session this many seconds after its client's connection dropped with no request "
                   "since (a host killed with kill -9; default 60)")
    p.add_argument("--grace", type=float, default=30.0,
                   help="seconds to finish in-flight work after SIGTERM or a shutdown request (default 30)")
    p.add_argument("--grant", metavar="NAME",
                   help="write a key for another user or machine ($NED_FX_HOME/grants/NAME.key), print its path "
                   "and exit; give that user a copy (chmod 600, their own) and set $NED_FX_DAEMON_KEY to it; "
                   "restart the daemon to let it in")
    p.add_argument("--cache", help="folder of cached shot analyses (default $NED_FX_HOME/cache)")
    p.add_argument("--curve-keys", metavar="DIR",
                   help="CurveZMQ: encrypt, and admit only clients whose public key is in DIR/clients/ (needed to "
                   "bind a non-loopback interface)")
    p.add_argument("--make-keys", metavar="DIR", help="write server and client CurveZMQ keys to DIR and exit")
    p.add_argument("--insecure", action="store_true",
                   help="allow binding a non-loopback interface without CurveZMQ (trusted networks only)")
    p.add_argument("--require-consent", action="store_true",
                   help="refuse every edit whose open request carries no consent reference (params.consent)")
    p.add_argument("--render-path", choices=("auto", "opencv", "fast"), default="auto",
                   help="how sessions render: opencv = ShotRenderer with the face content (mouth interior, eyeballs, "
                   "occluders kept); fast = the device fast path, the warp alone (no face content), frames of all "
                   "clients batched per engine call; auto (default) = opencv")
    p.add_argument("--batch-size", type=int, default=8, help="frames per engine call on the fast path (default 8)")
    p.add_argument("--fast-box", choices=("frame", "bucket"), default="frame",
                   help="fast path regions: frame = the edit command's boxes and pixels (default); bucket = sizes "
                   "rounded up to 64 px, so frames of different clients' shots share engine calls")
    p.add_argument("--no-local-lane", action="store_true",
                   help="no Unix-domain socket for same-host shared-memory renders (they then use the ZeroMQ socket)")
    p.add_argument("--parent-pid", type=int, metavar="PID",
                   help="stop (finishing in-flight work) when process PID ends, e.g. the batch that started this "
                   "daemon, even if it was killed")
    audit = p.add_mutually_exclusive_group()
    audit.add_argument("--audit-log", metavar="FILE",
                       help="append-only JSON-lines audit log (default $NED_FX_HOME/audit.jsonl); shared safely "
                       "with other daemons and batch runs")
    audit.add_argument("--no-audit-log", action="store_true", help="keep no audit log")


def run(args) -> int:
    from ..daemon.server import Daemon, is_loopback, make_keys
    from ..errors import InvalidParameterError

    if args.grant:
        from ..daemon.auth import make_grant

        try:
            path = make_grant(args.grant)
        except ValueError as exc:
            raise InvalidParameterError(str(exc)) from None
        print(f"grant key: {path}")
        print(f"give {args.grant} a copy they own, readable by them only (e.g. install -m 600 -o {args.grant} "
              f"{path} ~{args.grant}/.ned_fx/daemon.key), have their clients set $NED_FX_DAEMON_KEY to it, and "
              f"restart the daemon")
        return 0
    if args.make_keys:
        for what, path in make_keys(args.make_keys).items():
            print(f"{what}: {path}")
        print(f"start the daemon with --curve-keys {args.make_keys}; give hosts server.key and the client's "
              f".key_secret; add more clients' public keys to {args.make_keys}/clients/")
        return 0
    endpoint = args.bind or f"tcp://127.0.0.1:{args.port}"
    if not is_loopback(endpoint) and not args.insecure and not args.curve_keys:
        raise InvalidParameterError(
            f"{endpoint} is reachable from other machines: give --curve-keys DIR (make them with --make-keys DIR), "
            f"or --insecure on a trusted network only, or bind tcp://127.0.0.1:PORT / ipc://")
    if args.port == 0 and not args.bind:
        endpoint = "tcp://127.0.0.1:*"
    from ..provenance import AuditLog, ConsentPolicy

    audit = None
    if not args.no_audit_log:
        audit = AuditLog(args.audit_log, application="ned-fx serve")
        audit.check()                        # fail now, not at the first open
    daemon = Daemon(endpoint, engine=args.engine, roots=args.root, max_sessions=args.max_sessions,
                    max_message=args.max_message_mb << 20, device=args.device, cache=args.cache,
                    session_idle=args.session_idle, curve_keys=args.curve_keys, grace=args.grace, lease=args.lease,
                    consent=ConsentPolicy(required=args.require_consent), audit=audit,
                    local_lane=not args.no_local_lane, render_path=args.render_path, batch_size=args.batch_size,
                    fast_box=args.fast_box)
    info = daemon.load()
    bound = daemon.bind()
    daemon.install_signals()
    if args.parent_pid:
        daemon.watch_parent(args.parent_pid)
    print(f"ned-fx serve: ready on {bound} engine={info['engine']} backend={info['backend']} "
          f"device={info['device']} render={info.get('renderer', {}).get('path', 'none')}", flush=True)
    if daemon.lane is not None:
        daemon.log(f"local lane for same-host shared-memory renders: {daemon.lane.path}")
    daemon.log(f"consent reference {'required' if args.require_consent else 'optional'}; audit log "
               f"{audit.path if audit is not None else 'off'}")
    rc = daemon.serve()
    _exit_if_wedged(daemon, rc)
    return rc


def _exit_if_wedged(daemon, rc: int) -> None:
    """After the loop stopped: a worker thread stuck in a read that never returns (a FIFO, a hung network mount)
    would keep the process alive forever (Python joins its pool threads at exit), so SIGTERM would not end it.
    Give the threads a moment, then leave without waiting for them."""
    import os
    import threading
    import time

    end = time.monotonic() + 2.0
    stuck = []
    for t in threading.enumerate():
        if t is threading.main_thread() or t.daemon:
            continue
        t.join(max(0.0, end - time.monotonic()))
        if t.is_alive():
            stuck.append(t.name)
    if stuck:
        daemon.log(f"exiting without waiting for {len(stuck)} stuck worker thread(s): {', '.join(stuck)}")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def main(argv: list[str] | None = None) -> int:
    """``python -m ned_fx.commands.serve …`` (the same as ``ned-fx serve …``)."""
    from ..errors import NedFxError

    p = argparse.ArgumentParser(prog="ned-fx serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(p)
    args = p.parse_args(argv)
    try:
        from ..threads import configure

        configure()                       # $NED_FX_THREADS, else half the cores
        return run(args)
    except NedFxError as exc:
        print(f"ned-fx: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
