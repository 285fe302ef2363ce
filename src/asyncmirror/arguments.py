"""The command line's grammar: the ``argparse`` parser, its actions, and the checks
argparse cannot express (which operands each mode takes).

No I/O beyond printing ``--help``/``--version``; nothing here connects or reads
credentials (:mod:`asyncmirror.credentials` does, and never from argv).  A new
option is one entry in :func:`build_parser` and one field of
:class:`~asyncmirror.options.Options` (or a name in ``cli.CLI_ONLY``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .filters import Rule


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
    from importlib import metadata

    from . import __version__
    from .transport import tls_library

    try:
        loop = f"uvloop {metadata.version('uvloop')}"
    except metadata.PackageNotFoundError:
        loop = "asyncio"
    python = ".".join(map(str, sys.version_info[:3]))
    return f"asyncmirror {__version__} (Python {python}, {tls_library()}, {loop})"


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
        # One positional is DST (SRC is optional); none means the login directory.
        if args.dst is None:
            args.src, args.dst = None, args.src if args.src is not None else ""
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


def filter_rules(args: argparse.Namespace) -> list[Rule]:
    """-X/-I/-x/-i as :class:`Rule` objects, in command-line order (lftp applies them so)."""
    names = {"-X": "--exclude-glob", "-I": "--include-glob", "-x": "--exclude", "-i": "--include"}
    out = []
    for option, pattern in getattr(args, "rules", None) or []:
        out.append(Rule.from_option(names.get(option, option), pattern))
    return out
