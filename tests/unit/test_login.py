"""The login sequence's refusals, against a scripted peer on localhost (no FTP server).

What a user relies on: no credential goes out before TLS, a greeting that
refuses says so, and the server sees only what it should.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from asyncmirror import errors
from asyncmirror.login import ServerConfig
from asyncmirror.quirks import ServerQuirks
from asyncmirror.session import Session
from asyncmirror.transport import TLSPolicy, make_ssl_context


class ScriptedPeer:
    """Greets, then answers every command line with ``answer``; records what it read.
    With ``greeting=None`` it hangs up at once."""

    def __init__(self, greeting: bytes | None, answer: bytes = b"") -> None:
        self.greeting = greeting
        self.answer = answer
        self.received: list[str] = []
        self.closed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.greeting is not None:
                writer.write(self.greeting)
                while line := await reader.readline():
                    self.received.append(line.decode().rstrip("\r\n"))
                    writer.write(self.answer)
        except ConnectionError:
            pass
        finally:
            writer.close()
            self.closed.set()


Serve = Callable[[ScriptedPeer], Awaitable[int]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start a listener for a peer on a free port; its port."""
    servers: list[asyncio.Server] = []

    async def start(peer: ScriptedPeer) -> int:
        server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def open_session(port: int) -> Session:
    cfg = ServerConfig("127.0.0.1", port, "alice", "s3cret", TLSPolicy(), timeout=10)
    return await Session.open(cfg, make_ssl_context(cfg.tls), ServerQuirks())


async def test_auth_tls_refused_stops_before_any_credential(serve: Serve) -> None:
    peer = ScriptedPeer(b"120 wait a moment\r\n220 ready\r\n", b"500 AUTH not understood\r\n")
    with pytest.raises(errors.TLSRefusedError, match="refused AUTH TLS"):
        await open_session(await serve(peer))
    async with asyncio.timeout(10):
        await peer.closed.wait()  # the session hung up
    assert peer.received == ["AUTH TLS"]  # the 120 waited out; no USER, no PASS in clear


async def test_a_greeting_that_refuses_is_a_connection_limit(serve: Serve) -> None:
    peer = ScriptedPeer(b"421 Too many connections (8) from this IP\r\n")
    with pytest.raises(errors.TooManyConnectionsError, match="421 Too many connections") as raised:
        await open_session(await serve(peer))
    assert raised.value.broken_session
    async with asyncio.timeout(10):
        await peer.closed.wait()
    assert peer.received == []


async def test_a_server_that_hangs_up_before_its_greeting_is_a_network_error(
    serve: Serve,
) -> None:
    with pytest.raises(errors.NetworkError, match="closed the control connection"):
        await open_session(await serve(ScriptedPeer(None)))


async def test_replies_sent_in_clear_after_234_are_refused_not_taken_as_tls(
    serve: Serve,
) -> None:
    # A man in the middle appends forged replies to the 234, before the handshake:
    # read after it, they would pass for the server's own over TLS.
    peer = ScriptedPeer(b"220 ready\r\n", b"234 go ahead\r\n230 forged in clear\r\n")
    with pytest.raises(errors.TLSError, match="sent more after accepting AUTH TLS"):
        await open_session(await serve(peer))
    async with asyncio.timeout(10):
        await peer.closed.wait()
    assert peer.received == ["AUTH TLS"]  # nothing else, and no credentials


async def test_a_peer_that_is_not_an_ftp_server_is_said_at_once(serve: Serve) -> None:
    # Port 22 by mistake: a fatal error naming it, not retries of a protocol error.
    peer = ScriptedPeer(b"SSH-2.0-OpenSSH_9.2\r\n")
    with pytest.raises(errors.ConnectError, match="is not an FTP server") as raised:
        await open_session(await serve(peer))
    assert "SSH-2.0" in str(raised.value)
    assert peer.received == []
