"""One logged-in FTPS control connection: commands, replies, and which is whose.

Theory of operation
-------------------
A :class:`Session` is three parts, each in its own module:

* the wire -- :class:`~asyncmirror.control.ControlConnection`: the stream,
  its TLS, bounded reads and writes, errors mapped at the boundary;
* the login -- :func:`asyncmirror.login.log_in`, run by :meth:`Session.open`:
  greeting, ``AUTH TLS`` first (never ``FEAT``), credentials only after TLS,
  ``PBSZ``/``PROT``/``TYPE`` pipelined;
* the bookkeeping -- a :class:`~asyncmirror.pipeline.Pipeline`, the session's
  only protocol state: which reply answers which command, including the
  passive command sent ahead of a transfer's ``226`` and the checks that ride
  with the next ``STOR``.  Other modules change it through the session's
  methods only.

Commands may be pipelined: :meth:`Session.send` writes several lines at once
and :meth:`Session.read_reply` reads their replies in order.  Every wait is
bounded by ``timeout``; a timeout or a cut connection marks the session broken
so the pool replaces it.  Data connections are in :mod:`asyncmirror.datachannel`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator, Sequence

from . import errors
from .control import ControlConnection
from .login import LoginGate, ServerConfig, log_in
from .pipeline import AheadAnswered, Answer, Kind, Pipeline, Progress
from .quirks import ServerQuirks
from .replies import Reply, mask_command, parse_epsv, parse_pasv, reply_error
from .taskgroups import task_group


class Session:
    """A logged-in, TLS-protected control connection.  Open it with :meth:`open`."""

    def __init__(self, config: ServerConfig, ctx: ssl.SSLContext, quirks: ServerQuirks) -> None:
        self.config = config
        self.quirks = quirks
        self._ctx = ctx
        self._conn = ControlConnection(config.host, config.port, config.timeout, config.trace)
        self._pipeline = Pipeline()
        #: Set by the scheduler while more work follows: a transfer that ends may
        #: send the next EPSV/PASV ahead of its 226.
        self._ahead_wanted = False
        self.banner = ""

    @classmethod
    async def open(
        cls,
        config: ServerConfig,
        ctx: ssl.SSLContext,
        quirks: ServerQuirks,
        logins: LoginGate | None = None,
    ) -> Session:
        """Connect, ``AUTH TLS``, verify, log in, protect the data channel (:mod:`.login`).

        Raises :class:`~errors.ConnectError`, :class:`~errors.TLSRefusedError`,
        :class:`~errors.CertificateError`, :class:`~errors.AuthError`,
        :class:`~errors.TooManyConnectionsError` or a retryable error.
        """
        session = cls(config, ctx, quirks)
        try:
            session.banner = await log_in(
                session, config, ctx, quirks, logins if logins is not None else LoginGate()
            )
        except BaseException:
            session.abort()
            raise
        return session

    # --- the connection ---------------------------------------------------------

    @property
    def connection(self) -> ControlConnection:
        return self._conn

    @property
    def writer(self) -> asyncio.StreamWriter:
        return self._conn.writer

    @property
    def peer_host(self) -> str:
        """The address the control connection dialled (used instead of PASV's)."""
        return self._conn.peer_host

    @property
    def tls_context(self) -> ssl.SSLContext:
        return self._ctx

    @property
    def tls_session(self) -> ssl.SSLSession | None:
        """The control connection's TLS session; data connections resume it."""
        return self._conn.tls_session

    @property
    def broken(self) -> bool:
        """The connection can no longer be trusted: the pool replaces the session."""
        return self._conn.broken

    def mark_broken(self) -> None:
        """The connection can no longer be trusted: the pool replaces it."""
        self._conn.broken = True

    # --- commands and replies ---------------------------------------------------

    async def send(self, *lines: str) -> None:
        """Write one or more command lines in a single segment (pipelining)."""
        await self._conn.write(self._pipeline.send(*lines))

    async def read_reply(self) -> Reply:
        """Read the next reply (a 1xx or a final one) to the commands sent, in order.

        Replies that belong elsewhere are filed by the pipeline on the way:
        those of commands riding with a transfer (:meth:`take_riders`) and of
        a passive command sent ahead (:meth:`read_passive`).
        """
        return (await self._next_answer()).reply

    async def _next_answer(self) -> Answer | Progress:
        while True:
            event = self._pipeline.receive(await self._conn.read_reply())
            if not self._pipeline.in_step:
                self.mark_broken()  # replies can no longer be paired with commands
            if isinstance(event, Answer | Progress) and event.owed.kind is not Kind.RIDER:
                return event

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
                self.mark_broken()
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
        error = reply_error(command, reply)
        if isinstance(error, errors.RetryableError) and error.broken_session:
            self.mark_broken()
        raise error

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
        await self._conn.write(self._pipeline.send_transfer(command))

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
        await self._conn.write(self._pipeline.send_ahead(self._passive_command()))

    # --- passive mode -----------------------------------------------------------

    def _passive_command(self) -> str:
        # The pipeline remembers which one each session sent: another session
        # may switch the shared quirk from EPSV to PASV while a reply is in flight.
        return "PASV" if self.quirks.epsv is False else "EPSV"

    async def send_passive(self, *before: str) -> None:
        """Send ``before`` (plain commands) and the passive command in one write."""
        await self._conn.write(self._pipeline.send_passive(self._passive_command(), before))

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
        """Drop the connection at once (no ``QUIT``, no TLS goodbye); never raises."""
        self._conn.abort()
