"""Where the server, the user and the password come from -- never from argv.

Each value comes from the first source that gives it, in this order:
``--host``/``--port``/``--user``, an ``ftps://user@host:port/path`` DST,
``FTP_SERVER``/``FTP_USERNAME``/``FTP_PASSWORD`` (as in the lftp recipe this
replaces), ``~/.netrc`` (or ``$NETRC``; its password only for its own login),
and last, for the password, a prompt on a TTY.  The
password is never accepted as an argument or in DST: argv is visible to every
user of the machine.  :class:`Target`'s repr leaves the password out.
"""

from __future__ import annotations

import argparse
import os
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from . import errors


class Target(NamedTuple):
    """The server, the login and the remote path of one command."""

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


def fingerprint_from(args: argparse.Namespace) -> str | None:
    """The pinned certificate: ``--fingerprint``, else ``FTP_FINGERPRINT``."""
    return args.fingerprint or os.environ.get("FTP_FINGERPRINT") or None
