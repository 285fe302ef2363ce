"""``asyncmirror SRC DST [-j N] [options]``: the command-line front end.

Credentials come from ``FTP_SERVER``/``FTP_USERNAME``/``FTP_PASSWORD`` (as in
the lftp recipe this replaces), ``--host``/``--port``/``--user``, an
``ftps://user@host:port/path`` DST, ``~/.netrc``, or a prompt on a TTY.  The
password is never accepted as an argument: argv is visible to every user of
the machine.

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
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TextIO
from urllib.parse import unquote, urlsplit

from . import errors, runner
from .early import EarlyConnection
from .filters import Rule

if TYPE_CHECKING:
    from .options import Options, Trace
    from .report import Events, Report
    from .session import ServerConfig

# The heavy imports (asyncio, ssl) happen in
# main() only after the first control connection has been started, so that
# they overlap its TCP handshake and the server's greeting (see early.py).

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_FATAL = 0, 1, 2, 3


class _OrderedRule(argparse.Action):
    """Keep -X/-I/-x/-i in command-line order: lftp applies them in order."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        rules: list[tuple[str, str]] = getattr(namespace, "rules", None) or []
        rules.append((option_string or "", str(values)))
        namespace.rules = rules


def _seconds(text: str) -> float:
    """A positive, finite number of seconds (argparse turns the ValueError into exit 2)."""
    value = float(text)
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


class _Version(argparse.Action):
    """``--version``: computed only when asked (importlib.metadata costs start-up time)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        print(version_line())  # on stdout, as argparse's own version action does
        parser.exit(0)


def version_line() -> str:
    """``asyncmirror 0.1.0 (Python 3.11.7, OpenSSL 3.0.15, uvloop 0.23.0)``: what a
    bug report needs (the TLS library and the event loop asyncmirror runs on)."""
    import ssl
    from importlib import metadata

    from . import __version__

    try:
        loop = f"uvloop {metadata.version('uvloop')}"
    except metadata.PackageNotFoundError:
        loop = "asyncio"
    python = ".".join(map(str, sys.version_info[:3]))
    openssl = " ".join(ssl.OPENSSL_VERSION.split()[:2])
    return f"asyncmirror {__version__} (Python {python}, {openssl}, {loop})"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="asyncmirror",
        description="Mirror a local directory to an FTPS server (explicit TLS), fast and safely.",
        epilog="Server and login come from FTP_SERVER, FTP_USERNAME and FTP_PASSWORD "
        "(or --host/--user, ~/.netrc, a prompt). `asyncmirror demo` runs a local demonstration.",
    )
    p.add_argument("--version", action=_Version)
    # Optional for --rollback DST and --doctor [SRC] [DST]: parse_args() checks.
    p.add_argument("src", metavar="SRC", nargs="?", help="local directory to upload")
    p.add_argument(
        "dst", metavar="DST", nargs="?", help="remote directory, or ftps://user@host:port/path"
    )
    p.add_argument(
        "-j",
        "--jobs",
        "-P",
        "--parallel",
        type=int,
        default=8,
        metavar="N",
        help="parallel connections (default 8)",
    )
    g = p.add_argument_group("selecting files (lftp mirror compatible, applied in order)")
    g.add_argument("-X", "--exclude-glob", action=_OrderedRule, metavar="GLOB")
    g.add_argument("-I", "--include-glob", action=_OrderedRule, metavar="GLOB")
    g.add_argument("-x", "--exclude", action=_OrderedRule, metavar="REGEX")
    g.add_argument("-i", "--include", action=_OrderedRule, metavar="REGEX")
    g = p.add_argument_group("what to do")
    g.add_argument(
        "-R",
        "--reverse",
        action="store_true",
        help="accepted for lftp compatibility (asyncmirror always uploads)",
    )
    g.add_argument(
        "-n",
        "--only-newer",
        dest="only_newer",
        action="store_true",
        default=True,
        help="upload only files newer than the server's (default)",
    )
    g.add_argument(
        "--no-only-newer",
        dest="only_newer",
        action="store_false",
        help="also replace remote files that are newer but differ in time",
    )
    g.add_argument("--delete", action="store_true", help="delete remote files absent locally")
    g.add_argument(
        "--max-delete",
        type=int,
        metavar="N",
        help="with --delete: delete nothing (exit 1) if more than N deletions are planned",
    )
    g.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    g.add_argument(
        "--swap",
        action="store_true",
        help="prepare the new release beside DST and switch to it in one burst of renames",
    )
    g.add_argument(
        "--lock-wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="when another run holds DST's deploy lock, wait this long for it (default: "
        "don't wait, exit 1)",
    )
    g.add_argument(
        "--lock-stale",
        type=_seconds,
        default=3 * 3600.0,
        metavar="SECONDS",
        help="take over a deploy lock older than this (default 10800: 3 hours)",
    )
    g.add_argument(
        "--break-lock", action="store_true", help="take over DST's deploy lock whoever holds it"
    )
    g.add_argument(
        "--rollback",
        action="store_true",
        help="asyncmirror --rollback DST: switch back to the release before the last --swap",
    )
    g.add_argument(
        "--no-state",
        dest="state",
        action="store_false",
        help="do not keep the content-hash state file (.htasyncmirror-state.json) in DST",
    )
    g.add_argument("--state-file", metavar="PATH", help="keep the state file locally at PATH")
    g.add_argument(
        "--atomic", action="store_true", help="upload to a temporary name and rename into place"
    )
    g.add_argument(
        "--verify",
        action="store_true",
        help="compare contents, not times: by the server's digest command (HASH, XSHA256, ...) "
        "or by downloading; upload only what differs, report each difference",
    )
    g.add_argument(
        "--checksum",
        action="store_true",
        help="check each upload by the server's digest command, not by its size alone",
    )
    g.add_argument(
        "--site-symlink",
        action="store_true",
        help="make links to paths inside SRC as links on the server (SITE SYMLINK, ProFTPD's "
        "mod_site_misc) instead of uploading their targets again; where the server refuses, "
        "upload the content as without it",
    )
    g.add_argument(
        "--no-set-mtime",
        dest="set_mtime",
        action="store_false",
        help="do not set remote modification times (MFMT / SITE UTIME)",
    )
    g = p.add_argument_group("server and security")
    g.add_argument("--host", help="server host (default: FTP_SERVER)")
    g.add_argument("--port", type=int, help="server port (default 21)")
    g.add_argument("--user", help="user name (default: FTP_USERNAME)")
    g.add_argument("--ca-file", metavar="PATH", help="trust this CA or self-signed certificate")
    g.add_argument(
        "--fingerprint",
        metavar="SHA256:HEX",
        help="pin the server certificate (default: FTP_FINGERPRINT)",
    )
    g.add_argument(
        "--insecure", action="store_true", help="do not verify the server certificate (unsafe)"
    )
    g.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="bound on every network wait (default 30)",
    )
    g.add_argument("--deadline", type=_seconds, metavar="SECONDS", help="bound on the whole run")
    g.add_argument("--retries", type=int, default=5, help="attempts per file after the first")
    g.add_argument(
        "--remote-timezone",
        metavar="TZ",
        default="UTC",
        help="time zone of LIST times on servers without MLSD (e.g. Asia/Tokyo)",
    )
    g = p.add_argument_group("diagnosis")
    g.add_argument(
        "--doctor",
        action="store_true",
        help="probe the server (TLS, passive mode, commands, limits, clock) and print what "
        "it found and the flags it recommends; changes nothing (DST optional, SRC for a "
        "time estimate)",
    )
    g.add_argument(
        "--max-probe",
        type=int,
        metavar="N",
        help="with --doctor: open at most N sessions to find a connection limit (default -j)",
    )
    g = p.add_argument_group("output")
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="print each action (like lftp --verbose); twice for retries",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--json", action="store_true", help="print the report (or plan) as JSON")
    g.add_argument(
        "--debug",
        action="store_true",
        help="print the protocol exchange (password masked) and tracebacks",
    )
    return p


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; SRC and DST are both required, except for ``--rollback DST`` and
    ``--doctor [SRC] [DST]``."""
    args = parser.parse_args(argv)
    if args.doctor:
        from .doctorcommand import split_positionals

        split_positionals(args)
        return args
    if args.rollback:
        if args.dst is None:
            args.src, args.dst = None, args.src
        if args.dst is None or args.src is not None:
            parser.error("--rollback takes DST only: asyncmirror --rollback DST")
        if args.swap or args.dry_run or args.delete:
            parser.error("--rollback switches releases only: drop --swap, --dry-run, --delete")
    elif args.src is None or args.dst is None:
        parser.error("the following arguments are required: SRC, DST")
    return args


class Target(NamedTuple):
    host: str
    port: int
    user: str
    password: str
    path: str

    def __repr__(self) -> str:  # never show the password
        return (
            f"Target(host={self.host!r}, port={self.port}, user={self.user!r}, path={self.path!r})"
        )


def resolve_target(args: argparse.Namespace, env: dict[str, str], *, stdin_tty: bool) -> Target:
    """Work out host, port, user, password and remote path from every source."""
    path = args.dst
    url_user = url_host = None
    url_port: int | None = None
    if "://" in args.dst:
        parts = urlsplit(args.dst)
        if parts.scheme not in ("ftps", "ftp", "ftpes"):
            raise errors.UsageError(
                f"DST scheme {parts.scheme!r} is not supported",
                hint="use ftps://user@host:port/path or a plain path",
            )
        if parts.password:
            raise errors.UsageError(
                "a password in DST is not accepted (it would show in the process list)",
                hint="set FTP_PASSWORD or use ~/.netrc",
            )
        url_user = unquote(parts.username) if parts.username else None
        url_host = parts.hostname
        try:
            url_port = parts.port
        except ValueError:
            raise errors.UsageError(f"the port in {args.dst!r} is not a number") from None
        path = unquote(parts.path) or "/"

    host = args.host or url_host
    port = args.port if args.port is not None else url_port
    server = env.get("FTP_SERVER", "").strip()
    if not host and server:
        host, _, env_port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
        if env_port:
            try:
                port = port if port is not None else int(env_port)
            except ValueError:
                raise errors.UsageError(
                    f"FTP_SERVER={server!r}: the port is not a number"
                ) from None
    if not host:
        raise errors.UsageError(
            "no server given", hint="set FTP_SERVER=host[:port], or use --host or an ftps:// DST"
        )
    port = 21 if port is None else port
    if not 0 < port < 65536:
        raise errors.UsageError(f"port {port} is out of range")

    user = args.user or url_user or env.get("FTP_USERNAME") or None
    password = env.get("FTP_PASSWORD")
    if user is None or password is None:
        auth = _netrc_lookup(host, env)
        if auth is not None:
            user = user or auth[0]
            if password is None and auth[0] == user:
                password = auth[1]
    if user is None:
        raise errors.UsageError("no user name given", hint="set FTP_USERNAME or use --user")
    if password is None:
        if not stdin_tty:
            raise errors.UsageError(
                "no password given",
                hint="set FTP_PASSWORD, add the host to ~/.netrc, or run on a terminal",
            )
        import getpass  # only for the prompt

        password = getpass.getpass(f"Password for {user}@{host}: ")
    return Target(host, port, user, password, path)


def _netrc_lookup(host: str, env: dict[str, str]) -> tuple[str, str] | None:
    import netrc  # only when no password was given

    path = env.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.exists(path):
        return None
    try:
        auth = netrc.netrc(path).authenticators(host)
    except netrc.NetrcParseError as exc:
        # exc.msg quotes the offending token, which may well be a password.
        raise errors.UsageError(
            f"cannot parse {path} (line {exc.lineno})", hint="fix the syntax of that line"
        ) from None
    except OSError as exc:
        raise errors.UsageError(f"cannot read {path}: {exc.strerror}") from None
    if not auth:
        return None
    login, _, password = auth
    return (login or "", password or "")


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


def _rules(args: argparse.Namespace) -> list[Rule]:
    names = {"-X": "--exclude-glob", "-I": "--include-glob", "-x": "--exclude", "-i": "--include"}
    out = []
    for option, pattern in getattr(args, "rules", None) or []:
        out.append(Rule.from_option(names.get(option, option), pattern))
    return out


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
    filters = FilterSet.from_rules(_rules(args))
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


def _make_trace(stream: TextIO) -> Trace:
    def trace(direction: str, line: str) -> None:
        print(f"{direction} {line}", file=stream, flush=True)

    return trace


#: Parser destinations that are not run options: the operands, output settings,
#: a flag accepted for lftp compatibility, and -X/-I/-x/-i (they fill ``rules``,
#: in command-line order; their own destinations stay empty).
CLI_ONLY = frozenset(
    {"src", "dst", "reverse", "verbose", "no_progress", "json", "debug", "rules"}
    | {"rollback", "doctor", "max_probe", "version"}
    | {"exclude_glob", "include_glob", "exclude", "include"}
)


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
        rules=_rules(args),
        fingerprint=args.fingerprint or os.environ.get("FTP_FINGERPRINT") or None,
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
        trace=_make_trace(stream) if args.debug else None,
        early=early,
    )
    if options.insecure and not options.fingerprint:
        events.note(
            "warning: --insecure: the server's certificate is not checked; "
            "anyone on the path can read your password"
        )
    if args.rollback:
        from .switch import rollback_site

        return await rollback_site(
            _server_config(args, target, options.fingerprint, stream, early),
            target.path,
            timezone=_timezone(args.remote_timezone),
            events=events,
            lock_wait=options.lock_wait,
            lock_stale=options.lock_stale,
            break_lock=options.break_lock,
        )
    return await run_mirror(args.src, target.path, options)


def _server_config(
    args: argparse.Namespace,
    target: Target,
    fingerprint: str | None,
    stream: TextIO,
    early: Sequence[EarlyConnection],
) -> ServerConfig:
    from .session import ServerConfig
    from .transport import TLSPolicy

    return ServerConfig(
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        tls=TLSPolicy(ca_file=args.ca_file, fingerprint=fingerprint, insecure=args.insecure),
        timeout=args.timeout,
        trace=_make_trace(stream) if args.debug else None,
        early=tuple(early),
    )


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

            return doctor_main(args, target, sys.stdout, stderr)
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
