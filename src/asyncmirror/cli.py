"""``asyncmirror SRC DST [-j N] [options]``: the command-line front end.

Here: :func:`main` (parse, resolve, run, print), the exit codes and what a
signal or an error prints, and :func:`options_from` (the parsed command line
to :class:`~asyncmirror.options.Options`).  The grammar is
:mod:`asyncmirror.arguments`; the server, user and password come from
:mod:`asyncmirror.credentials` (never from argv).

Exit codes: 0 all done, 1 some files failed, 2 usage or local error,
3 connection, TLS or login failure.  Errors are one line; ``--debug`` adds the
traceback and the protocol trace (password masked).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING, NoReturn, TextIO

from . import errors, runner
from .arguments import build_parser, filter_rules, parse_args
from .credentials import Target, fingerprint_from, resolve_target
from .early import EarlyConnection

if TYPE_CHECKING:
    from .options import Options, Trace
    from .report import Events, Report

# The heavy imports (asyncio, ssl) happen in
# main() only after the first control connection has been started, so that
# they overlap its TCP handshake and the server's greeting (see early.py).

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_FATAL = 0, 1, 2, 3


def _timezone(name: str) -> tzinfo:
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # only for old servers' LIST times

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise errors.UsageError(
            f"unknown time zone {name!r}", hint="use an IANA name such as Asia/Tokyo"
        ) from None


def _sure_sessions(args: argparse.Namespace) -> int:
    """How many sessions the run will surely use, from SRC's top level alone.

    A run opens a session per file (and, with --delete, per directory to list),
    up to -j; every regular file the filters keep at the top level is one, so
    that many connections can be begun before the imports without one idling.
    0 when SRC is not a readable directory: mirror() says what is wrong, and a
    typo does not bother the server.
    """
    from .filters import FilterSet

    if args.src is None:  # --rollback: one session
        return 1
    kept = 0
    filters = FilterSet.from_rules(filter_rules(args))
    try:
        with os.scandir(args.src) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    is_dir = entry.is_dir()
                    counts = entry.is_file() or (is_dir and args.delete)
                    if counts and not filters.excludes(entry.name, is_dir=is_dir):
                        kept += 1
                if kept >= args.jobs:
                    break
    except OSError:
        return 0
    return max(1, min(kept, args.jobs)) if args.jobs >= 1 else 0


#: Parser destinations that are not run options: the operands, output settings,
#: a flag accepted for lftp compatibility, and -X/-I/-x/-i (they fill ``rules``,
#: in command-line order; their own destinations stay empty).
CLI_ONLY = frozenset(
    {"src", "dst", "reverse", "verbose", "no_progress", "json", "debug", "rules"}
    | {"rollback", "doctor", "max_probe", "version"}
    | {"exclude_glob", "include_glob", "exclude", "include"}
)


def make_trace(stream: TextIO) -> Trace:
    """``--debug``: each command and reply on ``stream`` (the password already masked)."""

    def trace(direction: str, line: str) -> None:
        print(f"{direction} {line}", file=stream, flush=True)

    return trace


def options_from(
    args: argparse.Namespace,
    target: Target,
    *,
    events: Events | None = None,
    trace: Trace | None = None,
    early: Sequence[EarlyConnection] = (),
) -> Options:
    """The run's :class:`Options` from the parsed command line and the resolved target.

    A flag whose destination is an ``Options`` field is passed as parsed; the
    rest are worked out here (the target from every credential source, the
    rules in command-line order, the time zone by name).
    """
    from .options import FIELDS, Options  # dataclasses: not before the first connection

    given = {k: v for k, v in vars(args).items() if k in FIELDS and k not in CLI_ONLY}
    given.update(
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        rules=filter_rules(args),
        fingerprint=fingerprint_from(args),
        remote_timezone=_timezone(args.remote_timezone),
        events=events,
        trace=trace,
        early_connections=tuple(early),
    )
    return Options(**given)


async def run(
    args: argparse.Namespace,
    target: Target,
    events: Events,
    stream: TextIO,
    early: Sequence[EarlyConnection] = (),
) -> Report:
    from .mirroring import run_mirror

    # The imports are done (entry() paused the collector for them): what they made
    # lives as long as the process, so later collections need not walk it.
    gc.freeze()
    gc.enable()
    options = options_from(
        args,
        target,
        events=events,
        trace=make_trace(stream) if args.debug else None,
        early=early,
    )
    if options.insecure and not options.fingerprint:
        events.note(
            "warning: --insecure: the server's certificate is not checked; "
            "anyone on the path can read your password"
        )
    if args.rollback:
        from .runconfig import server_config
        from .switch import rollback_site

        return await rollback_site(
            server_config(options),
            target.path,
            timezone=_timezone(args.remote_timezone),
            events=events,
            lock_wait=options.lock_wait,
            lock_stale=options.lock_stale,
            break_lock=options.break_lock,
        )
    return await run_mirror(args.src, target.path, options)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        from . import demo

        # The demo takes no operand: `asyncmirror demo www` mirrors a directory
        # named "demo" to www.
        if demo.is_demo(argv[1:]):
            gc.enable()  # a longer-lived process with a server in it
            return demo.main(argv[1:])
    stderr = sys.stderr
    parser = build_parser()
    args = parse_args(parser, argv)  # argparse exits 2 with a usage line on bad options
    early: list[EarlyConnection] = []
    try:
        target = resolve_target(args, dict(os.environ), stdin_tty=sys.stdin.isatty())
        if args.doctor:
            from .doctorcommand import doctor_main
            from .runconfig import server_config

            trace = make_trace(stderr) if args.debug else None
            config = server_config(options_from(args, target, trace=trace))
            return doctor_main(args, config, target.path, sys.stdout)
        early = [
            EarlyConnection(target.host, target.port, args.timeout)
            for _ in range(_sure_sessions(args))
        ]
        from .progress import ConsoleEvents

        events = ConsoleEvents(
            stream=stderr,
            verbose=args.verbose,
            bars=not args.no_progress and not args.json and stderr.isatty(),
        )
        report = runner.run(run(args, target, events, stderr, early))
    except errors.AsyncMirrorError as exc:
        if args.debug:
            traceback.print_exc(file=stderr)
        print(f"asyncmirror: error: {exc.user_line()}", file=stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("asyncmirror: interrupted", file=stderr)
        return 130
    except runner.StoppedBySignal as stop:
        print(f"asyncmirror: stopped by {stop.name}", file=stderr)
        return 128 + stop.signum
    except Exception as exc:  # a bug: still one line unless --debug
        if args.debug:
            traceback.print_exc(file=stderr)
        print(
            f"asyncmirror: internal error: {type(exc).__name__}: {exc} (run with --debug)",
            file=stderr,
        )
        return EXIT_FATAL
    finally:
        for connection in early:
            connection.close()  # if never used (the run failed first): do not leak it
    if args.json:
        import json

        print(json.dumps(report.to_json(), indent=2))
    if args.rollback:
        return report.exit_code  # its notes said what happened
    for failure in report.failed:
        print(f"asyncmirror: failed: {failure.path}: {failure.error}", file=stderr)
    print(
        ("asyncmirror: dry run: " if report.dry_run else "asyncmirror: ") + report.summary(),
        file=stderr,
    )
    return report.exit_code


def entry() -> NoReturn:
    """The ``asyncmirror`` command: :func:`main`, then exit at once.

    Tearing the interpreter down (freeing every module and object) took about
    25 ms of each run, measured; once the output is flushed nothing is left to
    clean up -- the loop, its threads and every connection are closed by then.
    """
    # Start-up allocates a lot and frees little: collections during the imports
    # cost ~7 ms per run, measured.  run() turns the collector back on.
    gc.disable()
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to lose
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover - how the tests run the command
    entry()
