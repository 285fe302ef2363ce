"""One logged-in FTPS control connection.

Theory of operation
-------------------
A session is an :class:`aioftp.Client` used for what it does right -- open the
control connection with a bounded connect, read the banner, hold the stream with
per-read timeouts, upgrade it to TLS -- and driven by asyncmirror's own command
and reply handling, which adds what real servers need and aioftp lacks:

* ``AUTH TLS`` is the first command.  ``FEAT`` is never sent: the reference
  shared host swallows a plaintext ``FEAT`` and the client would stall.  If
  ``AUTH TLS`` is refused the session stops before ``USER``: credentials never
  travel in clear.
* ``PBSZ 0`` / ``PROT P`` / ``TYPE I`` go *after* the login, in one pipelined
  write (some servers reject ``PBSZ`` before login; one round trip instead of
  three).  ``TYPE I`` is set once per connection, not once per file.
* Commands may be pipelined: :meth:`send` writes several lines at once and
  :meth:`read_reply` reads their replies in order.  Which reply is whose --
  including the passive command sent ahead of a transfer's ``226`` and the
  checks that ride with the next ``STOR`` -- is kept by a
  :class:`~asyncmirror.pipeline.Pipeline`, the session's only protocol state;
  other modules change it through the session's methods only.
* Every wait is bounded by ``timeout``; a timeout or a cut connection marks the
  session broken so the pool replaces it.

Data connections are in :mod:`asyncmirror.datachannel`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

import aioftp

from . import errors, transport
from .early import EarlyConnection
from .pipeline import AheadAnswered, Answer, Kind, Pipeline, Progress, Write
from .replies import (
    Reply,
    ReplyReader,
    is_connection_limit,
    is_out_of_space,
    mask_command,
    parse_epsv,
    parse_pasv,
    parse_pwd,
)

if TYPE_CHECKING:
    from .remotedigest import DigestMethod

#: ``trace(direction, line)``: ``direction`` is ``"->"`` (sent) or ``"<-"`` (received).
Trace = Callable[[str, str], None]


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


class _Client(aioftp.Client):
    """aioftp's client, able to start from a connection begun in advance.

    It overrides ``_open_connection``, aioftp's own hook for opening a stream
    (private, hence the pinned aioftp version); with no early connection it is
    aioftp's code unchanged.
    """

    early: EarlyConnection | None = None

    async def _open_connection(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        early, self.early = self.early, None
        if early is None:
            return await super()._open_connection(host, port)
        loop = asyncio.get_running_loop()
        connected = loop.create_future()

        def wake() -> None:  # from the connecting thread, or right here
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(
                    lambda: None if connected.done() else connected.set_result(None)
                )

        try:
            early.when_done(wake)
            async with asyncio.timeout(self.connection_timeout):
                await connected
            try:
                sock = early.take()  # an OSError is raised as a fresh connect would
            except OSError:
                raise
            except Exception:  # not a network error: connect the usual way, which says it
                return await super()._open_connection(host, port)
            try:
                return await asyncio.open_connection(sock=sock)
            except BaseException:
                sock.close()
                raise
        finally:
            early.close()  # gave up (timeout, cancel): a late socket must not idle


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


class ServerQuirks:
    """What the run learned about the server by trying, shared by all sessions.

    FEAT is never used, so support for EPSV or MFMT is discovered by the first
    session that tries it and remembered for the others.
    """

    def __init__(self) -> None:
        self.epsv: bool | None = None
        self.mlsd: bool | None = None
        self.mlst: bool | None = None
        #: May the next EPSV/PASV go out ahead of a transfer's 226?  Only where
        #: measured safe: ProFTPD answers one that arrives mid-transfer with
        #: 450 and nothing else; pyftpdlib acts on it and stalls the transfer.
        self.passive_ahead = False
        self.mtime_command: str | None = None  # "MFMT", "SITE UTIME" or "" (none works)
        #: How file digests are asked for (--verify, --checksum); DOWNLOAD: no command.
        self.digest: DigestMethod | None = None
        self.home: str | None = None


class Session:
    """A logged-in, TLS-protected control connection.  Open it with :meth:`open`."""

    def __init__(
        self,
        config: ServerConfig,
        ctx: ssl.SSLContext,
        quirks: ServerQuirks,
        logins: LoginGate | None = None,
    ) -> None:
        self.config = config
        self.quirks = quirks
        self._ctx = ctx
        self._logins = logins if logins is not None else LoginGate()
        self._client = _Client(
            socket_timeout=config.timeout,
            connection_timeout=config.timeout,
            encoding="utf-8",
        )
        self._client.early = next(
            (e for e in config.early if e.claim(config.host, config.port)), None
        )
        self._replies = ReplyReader()
        self._pipeline = Pipeline()
        #: Set by the scheduler while more work follows: a transfer that ends may
        #: send the next EPSV/PASV ahead of its 226.
        self._ahead_wanted = False
        self.broken = False
        self.banner = ""

    # --- opening ----------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        config: ServerConfig,
        ctx: ssl.SSLContext,
        quirks: ServerQuirks,
        logins: LoginGate | None = None,
    ) -> Session:
        """Connect, ``AUTH TLS``, verify, log in, protect the data channel.

        Raises :class:`~errors.ConnectError`, :class:`~errors.TLSRefusedError`,
        :class:`~errors.CertificateError`, :class:`~errors.AuthError`,
        :class:`~errors.TooManyConnectionsError` or a retryable error.
        """
        session = cls(config, ctx, quirks, logins)
        try:
            await session._open()
        except BaseException:
            session.abort()
            raise
        return session

    async def _open(self) -> None:
        cfg = self.config
        where = f"{cfg.host}:{cfg.port}"
        try:
            with transport.translate_errors(f"connect to {where}", connecting=True):
                try:
                    info = await self._client.connect(cfg.host, cfg.port)
                except aioftp.StatusCodeError as exc:
                    code = str(exc.received_codes[0]) if exc.received_codes else "???"
                    self._raise_reply("connect", Reply(code, tuple(exc.info)))
        except errors.OperationTimeout:
            raise errors.OperationTimeout(
                f"{where} timed out: no greeting within {cfg.timeout:g} s (--timeout)"
            ) from None
        self.banner = " ".join(info).strip()
        if "ProFTPD" in self.banner:
            self.quirks.passive_ahead = True
        self._trace("<-", f"220 {self.banner}")

        reply = await self.command("AUTH TLS")
        if reply.code != "234":
            if reply.code == "421":
                self._raise_reply("AUTH TLS", reply)
            raise errors.TLSRefusedError(f"{where} refused AUTH TLS ({reply.code} {reply.text})")
        try:
            with transport.translate_errors(f"TLS handshake with {where}", connecting=True):
                await self._client.stream.start_tls(self._ctx, server_hostname=cfg.host)
        except errors.CertificateError as exc:
            raise await self._explain_certificate(exc) from None
        transport.check_peer(self.writer, cfg.tls, cfg.host)

        ask_home = self.quirks.home is None
        setup = ("PBSZ 0", "PROT P", "TYPE I") + (("PWD",) if ask_home else ())
        # ProFTPD (the reference) reads commands in order as they come: there the
        # login and the set-up go in one write, one round trip instead of three
        # (100 ms of every run at 50 ms RTT).  Elsewhere each waits for its turn.
        pipelined = "ProFTPD" in self.banner
        user, password = f"USER {cfg.user}", f"PASS {cfg.password}"
        # Credentials only now, on the encrypted channel.
        async with self._logins.turn():
            if pipelined:
                await self.send(user, password, *setup)
                reply = await self.read_reply()
                if reply.code == "331":
                    reply = await self.read_reply()
                elif reply.code in ("230", "202"):
                    await self.read_reply()  # PASS was not needed: its "503" says nothing
                # Otherwise the USER reply is raised below and the session dropped,
                # the rest unread.
            else:
                reply = await self.command(user)
                if reply.code == "331":
                    reply = await self.command(password)
            if reply.code == "530" and (self._logins.proven or is_connection_limit(reply.text)):
                # Once a session of this run has logged in, the same credentials
                # refused mean the host allows no more sessions: a connection
                # limit (ProFTPD's MaxClientsPerUser answers 530 at PASS), not a
                # typo.  The pool shrinks to what the host allows.
                raise errors.TooManyConnectionsError("login", reply.code, reply.text)
            if reply.code == "530":
                self._logins.refused = (
                    f"{where} refused the login for user {cfg.user!r} ({reply.text})"
                )
                raise errors.AuthError(self._logins.refused)
            if reply.code not in ("230", "202"):
                self._raise_reply("login", reply)
            self._logins.proven = True

        # One round trip for all of these; PWD only while the home is unknown.
        if not pipelined:
            await self.send(*setup)
        for command in setup:
            reply = await self.read_reply()
            if command == "PWD":
                if reply.code == "257" and self.quirks.home is None:
                    self.quirks.home = parse_pwd(reply.text)
                continue
            if reply.code == "421":
                self._raise_reply(command, reply)
            if not reply.is_complete and command != "PBSZ 0":
                raise errors.TLSError(
                    f"{where} refused {command} ({reply.code} {reply.text})",
                    hint="the server does not protect data connections with TLS",
                )

    async def _explain_certificate(self, exc: errors.CertificateError) -> errors.CertificateError:
        """Add the server certificate's fingerprint and the ways out to the error."""
        cfg = self.config
        digest = await transport.fetch_fingerprint(cfg.host, cfg.port, cfg.timeout)
        shown = transport.format_fingerprint(digest) if digest else "unknown"
        return errors.CertificateError(
            f"{exc.message}; its SHA-256 fingerprint is {shown}",
            fingerprint=digest,
            hint="if that is your server's certificate, pass --fingerprint with it (or "
            "FTP_FINGERPRINT), or --ca-file with its CA; --insecure turns checking off",
        )

    # --- commands and replies ---------------------------------------------------

    @property
    def writer(self) -> asyncio.StreamWriter:
        writer: asyncio.StreamWriter = self._client.stream.writer
        return writer

    @property
    def peer_host(self) -> str:
        """The address the control connection dialled (used instead of PASV's)."""
        peer = self.writer.get_extra_info("peername")
        return str(peer[0]) if peer else self.config.host

    @property
    def tls_context(self) -> ssl.SSLContext:
        return self._ctx

    @property
    def tls_session(self) -> ssl.SSLSession | None:
        """The control connection's TLS session; data connections resume it."""
        return transport.tls_session(self.writer)

    def mark_broken(self) -> None:
        """The connection can no longer be trusted: the pool replaces it."""
        self.broken = True

    async def send(self, *lines: str) -> None:
        """Write one or more command lines in a single segment (pipelining)."""
        await self._write(self._pipeline.send(*lines))

    async def _write(self, write: Write) -> None:
        for line in write.lines:
            self._trace("->", mask_command(line))
        writer = self.writer
        with self._guard(f"send {mask_command(write.lines[0]).split(' ')[0]}"):
            for record in write.records:
                writer.write(record)  # one TLS record per write() call
            async with asyncio.timeout(self.config.timeout):
                await writer.drain()

    async def read_reply(self) -> Reply:
        """Read the next reply (a 1xx or a final one) to the commands sent, in order.

        Replies that belong elsewhere are filed by the pipeline on the way:
        those of commands riding with a transfer (:meth:`take_riders`) and of
        a passive command sent ahead (:meth:`read_passive`).
        """
        return (await self._next_answer()).reply

    async def _next_answer(self) -> Answer | Progress:
        while True:
            event = self._pipeline.receive(await self._read_wire_reply())
            if not self._pipeline.in_step:
                self.broken = True  # replies can no longer be paired with commands
            if isinstance(event, Answer | Progress) and event.owed.kind is not Kind.RIDER:
                return event

    async def _read_wire_reply(self) -> Reply:
        """Read one complete reply (all lines of a multi-line one)."""
        with self._guard("read reply"):
            while True:
                try:
                    # Not aioftp's stream.readline(): its asyncio.wait_for() loses a
                    # cancel (Ctrl-C, SIGTERM) that lands as the line arrives, on
                    # Python 3.11, and the stopped run went on to the end.
                    async with asyncio.timeout(self.config.timeout):
                        raw = await self._client.stream.reader.readline()
                except ValueError:  # asyncio's "line too long" (LimitOverrunError)
                    self.broken = True
                    raise errors.ProtocolError(
                        f"{self.config.host} sent a reply line longer than 64 KiB"
                    ) from None
                if not raw:
                    raise errors.NetworkError(f"{self.config.host} closed the control connection")
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                self._trace("<-", line)
                reply = self._replies.feed_line(line)
                if reply is not None:
                    return reply

    async def pipeline(self, lines: Sequence[str], *, chunk: int = 100) -> list[Reply]:
        """Send all ``lines`` and return their final replies, in order.

        Writing and reading run at the same time, so neither side's socket
        buffer can fill up and deadlock the exchange however many commands
        there are: hundreds of ``MLST`` or ``MKD`` cost about one round trip.
        """

        async def write_all() -> None:
            for i in range(0, len(lines), chunk):
                await self.send(*lines[i : i + chunk])

        async def read_all() -> None:
            for _ in lines:
                reply = await self.read_reply()
                while reply.is_preliminary:
                    reply = await self.read_reply()
                replies.append(reply)

        # Imported here: this method's body is all this change touches of session.py.
        from .taskgroups import task_group

        replies: list[Reply] = []
        try:
            # Either side's failure cancels the other: a failed write must not
            # leave us waiting for replies never asked for.
            async with task_group() as tg:
                tg.start(write_all())
                tg.start(read_all())
        finally:
            if len(replies) < len(lines):
                # Replies are still on their way: this connection is out of step.
                self.broken = True
        return replies

    async def command(self, line: str) -> Reply:
        """Send one command and return its final (non-1xx) reply."""
        await self.send(line)
        reply = await self.read_reply()
        while reply.is_preliminary:
            reply = await self.read_reply()
        return reply

    async def expect(self, line: str, *codes: str) -> Reply:
        """Send ``line``; raise unless the reply code starts with one of ``codes``."""
        reply = await self.command(line)
        self.check(line, reply, *codes)
        return reply

    def check(self, line: str, reply: Reply, *codes: str) -> None:
        if not any(reply.code.startswith(c) for c in codes or ("2",)):
            self._raise_reply(mask_command(line), reply)

    def _raise_reply(self, command: str, reply: Reply) -> None:
        if reply.code == "421":
            self.broken = True
            raise errors.TooManyConnectionsError(command, reply.code, reply.text)
        verb = command.split(" ", 1)[0].upper()
        if verb in ("STOR", "APPE") and is_out_of_space(reply.code, reply.text):
            raise errors.ServerFullError(command, reply.code, reply.text)
        if reply.is_transient:
            raise errors.TransientReplyError(command, reply.code, reply.text)
        if reply.is_permanent:
            raise errors.PermanentReplyError(command, reply.code, reply.text)
        self.broken = True
        raise errors.ProtocolError(f"{command}: unexpected reply {reply.code} {reply.text}")

    # --- transfers: riders and the passive command ahead -------------------------

    def send_with_next_transfer(self, owner: object, lines: Sequence[str]) -> None:
        """Send ``lines`` in the same write as the next transfer command (no round trip).

        Their replies are read before that command's own and kept for
        ``owner``: take them with :meth:`take_riders`.
        """
        self._pipeline.ride(owner, lines)

    def take_riders(self, owner: object) -> tuple[list[str], list[Reply]]:
        """``owner``'s lines that never went out (no transfer followed), and their replies."""
        return self._pipeline.take_riders(owner)

    async def send_transfer(self, command: str) -> None:
        """Send a transfer command (``STOR``, ``LIST`` ...) with the lines riding with it."""
        await self._write(self._pipeline.send_transfer(command))

    @contextlib.contextmanager
    def passive_ahead_allowed(self, allowed: bool) -> Iterator[None]:
        """Inside, an upload that ends sends the next EPSV/PASV ahead of its 226."""
        self._ahead_wanted = allowed
        try:
            yield
        finally:
            self._ahead_wanted = False

    @property
    def passive_ahead_wanted(self) -> bool:
        """Inside :meth:`passive_ahead_allowed` with ``True``: an upload should send it."""
        return self._ahead_wanted

    @property
    def passive_ahead_pending(self) -> bool:
        """A passive command went out ahead and :meth:`read_passive` has not taken its reply."""
        return self._pipeline.ahead_pending

    async def send_passive_ahead(self) -> None:
        """Send the next passive command before the transfer's final reply is read."""
        await self._write(self._pipeline.send_ahead(self._passive_command()))

    # --- passive mode -----------------------------------------------------------

    def _passive_command(self) -> str:
        # The pipeline remembers which one each session sent: another session
        # may switch the shared quirk from EPSV to PASV while a reply is in flight.
        return "PASV" if self.quirks.epsv is False else "EPSV"

    async def send_passive(self, *before: str) -> None:
        """Send ``before`` (plain commands) and the passive command in one write."""
        await self._write(self._pipeline.send_passive(self._passive_command(), before))

    async def read_passive(self) -> tuple[str, int]:
        """Read the reply to the passive command; fall back from EPSV to PASV once."""
        held: AheadAnswered | None = self._pipeline.take_held_passive()
        if held is not None:
            sent, reply = held.owed.command, held.reply
        else:
            answer = await self._next_answer()
            sent, reply = answer.owed.command, answer.reply
        if sent == "EPSV" and reply.code != "229":
            if reply.is_permanent:
                self.quirks.epsv = False  # remembered for every session of the run
                await self.send_passive()
                reply = await self.read_reply()
                while reply.is_preliminary:
                    reply = await self.read_reply()
            else:
                self.check("EPSV", reply, "229")
        if reply.code == "229":
            self.quirks.epsv = True
            return self.peer_host, parse_epsv(reply.text)
        self.check("PASV", reply, "227")
        _, port = parse_pasv(reply.text)
        # The address in a PASV reply is often private or wrong behind NAT; the
        # address we already reach the server at is the one that works.
        return self.peer_host, port

    async def passive(self) -> tuple[str, int]:
        await self.send_passive()
        return await self.read_passive()

    # --- closing ----------------------------------------------------------------

    async def quit(self) -> None:
        """Say goodbye politely (bounded); never raises."""
        if not self.broken:
            try:
                async with asyncio.timeout(min(self.config.timeout, 5.0)):
                    await self.send("QUIT")
                    await self.read_reply()
            except (errors.AsyncMirrorError, TimeoutError):
                pass
        self.abort()

    def abort(self) -> None:
        self.broken = True
        stream = self._client._stream
        transport.abort(stream.writer if stream is not None else None)

    # --- internals --------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """translate_errors() that also marks the session broken when the link is."""
        try:
            with transport.translate_errors(f"{what} ({self.config.host})"):
                yield
        except errors.RetryableError as exc:
            if exc.broken_session:
                self.broken = True
            raise

    def _trace(self, direction: str, line: str) -> None:
        if self.config.trace is not None:
            self.config.trace(direction, line)
