"""One control connection on the wire: command bytes out, replies in, every wait bounded.

The I/O half of a session, and nothing of what the commands mean: it opens
the TCP connection (or takes one begun in advance, :mod:`asyncmirror.early`),
upgrades it to TLS, writes what the :class:`~asyncmirror.pipeline.Pipeline`
packed, and reads complete replies.  Every wait is bounded by ``timeout``;
every ``OSError``/``ssl`` error goes through
:func:`~asyncmirror.transport.translate_errors`, and one that leaves the
connection unusable marks it :attr:`~ControlConnection.broken`.

Replies are read from the asyncio stream's reader under ``asyncio.timeout``
and assembled by :class:`~asyncmirror.replies.ReplyReader`, the sessions'
one reply parser (the greeting included).  Not under ``asyncio.wait_for``: on Python
3.11 it loses a cancel (Ctrl-C, SIGTERM) that lands as the line arrives, and
a stopped run went on to the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Iterator

from . import errors, transport
from .early import EarlyConnection
from .pipeline import Write
from .replies import Reply, ReplyReader, mask_command

#: ``trace(direction, line)``: ``direction`` is ``"->"`` (sent) or ``"<-"`` (received).
Trace = Callable[[str, str], None]


class ControlConnection:
    """The stream of one control connection to ``host:port``; :meth:`connect` first."""

    def __init__(self, host: str, port: int, timeout: float, trace: Trace | None = None) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._trace = trace
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._replies = ReplyReader()
        #: The connection can no longer be trusted (cut, timed out, out of step).
        self.broken = False

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    async def connect(self, early: EarlyConnection | None = None) -> None:
        """Open the TCP connection (from ``early`` if given), within ``timeout``."""
        with transport.translate_errors(f"connect to {self.where}", connecting=True):
            self._reader, self._writer = await transport.open_control(
                self.host, self.port, self.timeout, early
            )

    async def start_tls(self, ctx: ssl.SSLContext) -> None:
        """The TLS handshake on the open connection (after ``AUTH TLS`` / ``234``).

        Raises :class:`~asyncmirror.errors.CertificateError` for a certificate
        the context does not trust; pinned fingerprints are checked by the caller.
        """
        # Bytes that came in clear after the 234 would be read afterwards as if
        # the server had sent them over TLS: a man in the middle could forge the
        # login's replies (STARTTLS injection).  asyncio has no public way to
        # ask a StreamReader what it holds, hence its private buffer.
        if self._reader is not None and len(getattr(self._reader, "_buffer", b"")):
            self.broken = True
            raise errors.TLSError(
                f"{self.where} sent more after accepting AUTH TLS, before the TLS handshake",
                hint="something on the path is tampering with the connection; "
                "nothing was sent in clear",
            )
        with transport.translate_errors(f"TLS handshake with {self.where}", connecting=True):
            # asyncio.timeout, armed first, ends a stalled handshake as a timeout;
            # the handshake's own limit is only a backstop (its default is 60 s).
            async with asyncio.timeout(self.timeout):
                await self.writer.start_tls(
                    ctx, server_hostname=self.host, ssl_handshake_timeout=self.timeout + 1
                )

    @property
    def writer(self) -> asyncio.StreamWriter:
        if self._writer is None:
            raise errors.NetworkError(f"{self.where}: not connected")
        return self._writer

    @property
    def peer_host(self) -> str:
        """The address the connection dialled (used instead of the one in PASV's reply)."""
        peer = self.writer.get_extra_info("peername")
        return str(peer[0]) if peer else self.host

    @property
    def tls_session(self) -> ssl.SSLSession | None:
        return transport.tls_session(self.writer)

    async def write(self, write: Write) -> None:
        """Send what the pipeline packed: one TLS record per record, then drain."""
        for line in write.lines:
            self.trace("->", mask_command(line))
        writer = self.writer
        with self._guard(f"send {mask_command(write.lines[0]).split(' ')[0]}"):
            for record in write.records:
                writer.write(record)  # one TLS record per write() call
            async with asyncio.timeout(self.timeout):
                await writer.drain()

    async def read_reply(self) -> Reply:
        """Read one complete reply (all lines of a multi-line one)."""
        if self._reader is None:
            raise errors.NetworkError(f"{self.where}: not connected")
        reader = self._reader
        with self._guard("read reply"):
            while True:
                try:
                    async with asyncio.timeout(self.timeout):
                        raw = await reader.readline()
                except ValueError:  # asyncio's "line too long" (LimitOverrunError)
                    self.broken = True
                    raise errors.ProtocolError(
                        f"{self.host} sent a reply line longer than 64 KiB"
                    ) from None
                if not raw:
                    raise errors.NetworkError(f"{self.host} closed the control connection")
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                self.trace("<-", line)
                reply = self._replies.feed_line(line)
                if reply is not None:
                    return reply

    def abort(self) -> None:
        """Drop the connection at once, without a TLS goodbye; never raises."""
        self.broken = True
        transport.abort(self._writer)

    def trace(self, direction: str, line: str) -> None:
        if self._trace is not None:
            self._trace(direction, line)

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """translate_errors() that also marks the connection broken when the link is."""
        try:
            with transport.translate_errors(f"{what} ({self.host})"):
                yield
        except errors.RetryableError as exc:
            if exc.broken_session:
                self.broken = True
            raise
