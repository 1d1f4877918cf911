"""Command line for the sandboxes.

    python -m espcore.sandbox serve sendpulse --port 8701 --state data/sandbox/sendpulse.json
    python -m espcore.sandbox reset pakat --state data/sandbox/pakat.json        # fresh demo account
    python -m espcore.sandbox reset litestartup --state ... --empty              # fresh empty account
    python -m espcore.sandbox advance sendpulse --state ... --seconds 3600       # move the sandbox clock
    python -m espcore.sandbox token sendpulse --state ...                        # the admin token
    python -m espcore.sandbox serve litestartup --dialect current                # LiteStartup's newer API

The same commands are ``esp-warehouse sandbox serve|reset|advance|token`` (the project's command line calls
:func:`main` with its own program name).

Servers bind to 127.0.0.1 only. Several servers (and embedded sandboxes in Dagster runs) may share one state
file: they then serve one account. The control surface (``/__sandbox/reset``, ``clock``, ``faults``, ``state``,
``hooks/<name>``) answers only requests carrying the account's admin token in the ``X-Sandbox-Admin-Token``
header; ``serve`` prints it when it starts, ``token`` prints it alone (for scripts), and a reset keeps it.
"""

import argparse
import signal
import sys
import threading

from espcore.sandbox.base import ADMIN_HEADER, ADMIN_PREFIX
from espcore.sandbox.embedded import SANDBOXES, build_sandbox, sandbox_class
from espcore.sandbox.server import LOOPBACK, SandboxServer


def main(argv: list[str] | None = None, *, prog: str = "python -m espcore.sandbox") -> int:
    """Run one sandbox command (``argv`` without the program name; default: the process's arguments) and return
    its exit code; ``prog`` is the program name help and usage errors show."""
    parser = argparse.ArgumentParser(prog=prog, description="Run, reset or move the clock of a provider sandbox.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "serve a sandbox over HTTP on 127.0.0.1"),
        ("reset", "reset an account (demo seed unless --empty)"),
        ("advance", "advance the sandbox clock"),
        ("token", "print the admin token that opens /__sandbox/ (header X-Sandbox-Admin-Token)"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("provider", choices=sorted(SANDBOXES))
        p.add_argument("--state", help="state file shared by processes (default: in memory)")
        p.add_argument(
            "--dialect",
            help="the API dialect a new account serves, for providers with several (litestartup: seed or current); "
            "an existing state file keeps its own",
        )
        if name == "serve":
            p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
        if name == "reset":
            p.add_argument("--empty", action="store_true", help="no demo credentials, senders or templates")
        if name == "advance":
            p.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    if args.command == "token" and not args.state:
        parser.error("token needs --state: an in-memory account lives only in the process that serves it")
    options: dict[str, object] = {}
    if args.dialect is not None:
        dialects = sandbox_class(args.provider).dialects
        if args.dialect not in dialects:
            known = ", ".join(dialects) if dialects else "none: it has one"
            parser.error(f"{args.provider} has no API dialect {args.dialect!r} (dialects: {known})")
        options["dialect"] = args.dialect
    sandbox = build_sandbox(args.provider, args.state, **options)
    if args.command == "reset":
        sandbox.reset(demo=not args.empty)
        print(f"{args.provider}: account reset ({'empty' if args.empty else 'demo'}) in {args.state or 'memory'}")
        return 0
    if args.command == "advance":
        print(f"{args.provider}: sandbox time is now {sandbox.advance(args.seconds).isoformat()}")
        return 0
    if args.command == "token":
        print(sandbox.admin_token)
        return 0
    server = SandboxServer(sandbox.app, args.port or None, log_level="info")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(f"{args.provider} sandbox on {server.url} (state: {args.state or 'memory'}); Ctrl-C to stop", flush=True)
    print(f"admin: {ADMIN_PREFIX}/... with header {ADMIN_HEADER}: {sandbox.admin_token}", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    assert LOOPBACK == "127.0.0.1"
    sys.exit(main())
