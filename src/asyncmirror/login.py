"""The login sequence of one session: connect, ``AUTH TLS``, credentials, set-up.

Theory of operation
-------------------
What real shared hosts need, in this order:

* The greeting (``220``; a ``120`` "ready in n minutes" first is waited out),
  within ``--timeout`` like every wait.
* ``AUTH TLS`` is the first command.  ``FEAT`` is never sent: the reference
  shared host swallows a plaintext ``FEAT`` and the client would stall.  If
  ``AUTH TLS`` is refused the session stops before ``USER``: credentials never
  travel in clear.  An untrusted certificate is explained (its fingerprint,
  the ways out) from a second, credential-free connection.
* ``USER``/``PASS`` one session at a time until one login has worked
  (:class:`LoginGate`: a typo costs one refused login, not one per session).
* ``PBSZ 0`` / ``PROT P`` / ``TYPE I`` go *after* the login, in one pipelined
  write (some servers reject ``PBSZ`` before login; one round trip instead of
  three).  ``TYPE I`` is set once per connection, not once per file.  On
  ProFTPD, which reads commands in order as they come, the credentials go in
  that same write.

It drives a session through :class:`Commands` (what
:class:`~asyncmirror.session.Session` offers), so it imports no session.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import NamedTuple, Protocol

from . import errors, transport
from .control import ControlConnection, Trace
from .early import EarlyConnection
from .quirks import ServerQuirks
from .replies import Reply, is_connection_limit, parse_pwd, reply_error


class ServerConfig(NamedTuple):
    """Where and how to log in.  ``password`` is left out of ``repr``."""

    host: str
    port: int = 21
    user: str = "anonymous"
    password: str = ""
    tls: transport.TLSPolicy = transport.TLSPolicy()
    timeout: float = 30.0
    trace: Trace | None = None
    #: Connections to (host, port) begun in advance (the CLI's head start):
    #: the first sessions to open start from them, one each.
    early: tuple[EarlyConnection, ...] = ()

    def __repr__(self) -> str:  # never the password; the trace and connections say nothing
        return (
            f"ServerConfig(host={self.host!r}, port={self.port}, user={self.user!r}, "
            f"tls={self.tls!r}, timeout={self.timeout})"
        )


class LoginGate:
    """One login at a time, until one has worked.

    A pool's sessions open in parallel.  With a wrong password every one of
    them would be refused, and shared hosts lock an account out after a few
    refused logins (fail2ban, mod_ban).  So the sessions connect and start TLS
    together, but send their credentials one after another until a login has
    succeeded -- a typo costs one refused login -- and all together after that.
    """

    def __init__(self) -> None:
        self.proven = False
        #: The message of a refused login (530): the sessions still waiting give up.
        self.refused: str | None = None
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        if self.proven:
            yield
            return
        async with self._lock:
            if self.refused is not None:
                raise errors.AuthError(self.refused)
            if not self.proven:
                yield  # log in holding the lock: the others wait for the outcome
                return
        yield  # proven while this one waited: log in alongside the others


class Commands(Protocol):
    """What the login needs of a session: its connection, and commands through its pipeline."""

    @property
    def connection(self) -> ControlConnection: ...

    async def send(self, *lines: str) -> None: ...

    async def read_reply(self) -> Reply: ...

    async def command(self, line: str) -> Reply: ...


async def log_in(
    session: Commands,
    config: ServerConfig,
    ctx: ssl.SSLContext,
    quirks: ServerQuirks,
    logins: LoginGate,
) -> str:
    """Connect, ``AUTH TLS``, verify, log in, protect the data channel; the greeting's text.

    Raises :class:`~errors.ConnectError`, :class:`~errors.TLSRefusedError`,
    :class:`~errors.CertificateError`, :class:`~errors.AuthError`,
    :class:`~errors.TooManyConnectionsError` or a retryable error; the caller
    drops the connection then.
    """
    conn = session.connection
    banner = await _greeting(conn, config)
    if "ProFTPD" in banner:
        quirks.passive_ahead = True
    await _start_tls(session, config, ctx)
    ask_home = quirks.home is None
    setup = ("PBSZ 0", "PROT P", "TYPE I") + (("PWD",) if ask_home else ())
    # ProFTPD (the reference) reads commands in order as they come: there the
    # login and the set-up go in one write, one round trip instead of three
    # (100 ms of every run at 50 ms RTT).  Elsewhere each waits for its turn.
    pipelined = "ProFTPD" in banner
    async with logins.turn():
        reply = await _credentials(session, config, setup if pipelined else ())
        _check_login(reply, config, conn.where, logins)
        logins.proven = True
    # One round trip for all of these; PWD only while the home is unknown.
    if not pipelined:
        await session.send(*setup)
    for command in setup:
        reply = await session.read_reply()
        if command == "PWD":
            if reply.code == "257" and quirks.home is None:
                quirks.home = parse_pwd(reply.text)
            continue
        if reply.code == "421":
            raise reply_error(command, reply)
        if not reply.is_complete and command != "PBSZ 0":
            raise errors.TLSError(
                f"{conn.where} refused {command} ({reply.code} {reply.text})",
                hint="the server does not protect data connections with TLS",
            )
    return banner


async def _greeting(conn: ControlConnection, config: ServerConfig) -> str:
    early = next((e for e in config.early if e.claim(config.host, config.port)), None)
    try:
        await conn.connect(early)
        reply = await conn.read_reply()
        while reply.is_preliminary:  # 120: "ready in n minutes", then 220
            reply = await conn.read_reply()
    except errors.OperationTimeout:
        raise errors.OperationTimeout(
            f"{conn.where} timed out: no greeting within {config.timeout:g} s (--timeout)"
        ) from None
    except errors.ProtocolError as exc:
        # Not an FTP server at all (an SSH or web port): no retry will change that.
        raise errors.ConnectError(f"{conn.where} is not an FTP server ({exc.message})") from None
    if reply.code != "220":
        raise reply_error("connect", reply)
    return reply.text


async def _start_tls(session: Commands, config: ServerConfig, ctx: ssl.SSLContext) -> None:
    conn = session.connection
    reply = await session.command("AUTH TLS")
    if reply.code != "234":
        if reply.code == "421":
            raise reply_error("AUTH TLS", reply)
        raise errors.TLSRefusedError(f"{conn.where} refused AUTH TLS ({reply.code} {reply.text})")
    try:
        await conn.start_tls(ctx)
    except errors.CertificateError as exc:
        raise await _explain_certificate(exc, config) from None
    transport.check_peer(conn.writer, config.tls, config.host)


async def _credentials(session: Commands, config: ServerConfig, setup: tuple[str, ...]) -> Reply:
    """``USER`` and ``PASS`` (only now, on the encrypted channel); the login's reply.

    With ``setup``, everything goes in one write and the replies are read in order.
    """
    user, password = f"USER {config.user}", f"PASS {config.password}"
    if setup:
        await session.send(user, password, *setup)
        reply = await session.read_reply()
        if reply.code == "331":
            return await session.read_reply()
        if reply.code in ("230", "202"):
            await session.read_reply()  # PASS was not needed: its "503" says nothing
        # Otherwise the USER reply is raised and the session dropped, the rest unread.
        return reply
    reply = await session.command(user)
    if reply.code == "331":
        reply = await session.command(password)
    return reply


def _check_login(reply: Reply, config: ServerConfig, where: str, logins: LoginGate) -> None:
    if reply.code == "530" and (logins.proven or is_connection_limit(reply.text)):
        # Once a session of this run has logged in, the same credentials
        # refused mean the host allows no more sessions: a connection limit
        # (ProFTPD's MaxClientsPerUser answers 530 at PASS), not a typo.  The
        # pool shrinks to what the host allows.
        raise errors.TooManyConnectionsError("login", reply.code, reply.text)
    if reply.code == "530":
        logins.refused = f"{where} refused the login for user {config.user!r} ({reply.text})"
        raise errors.AuthError(logins.refused)
    if reply.code not in ("230", "202"):
        raise reply_error("login", reply)


async def _explain_certificate(
    exc: errors.CertificateError, config: ServerConfig
) -> errors.CertificateError:
    """Add the server certificate's fingerprint and the ways out to the error."""
    digest = await transport.fetch_fingerprint(config.host, config.port, config.timeout)
    shown = transport.format_fingerprint(digest) if digest else "unknown"
    return errors.CertificateError(
        f"{exc.message}; its SHA-256 fingerprint is {shown}",
        fingerprint=digest,
        hint="if that is your server's certificate, pass --fingerprint with it (or "
        "FTP_FINGERPRINT), or --ca-file with its CA; --insecure turns checking off",
    )
