"""The data connection's TLS stream (transport.DataTLS) against a real TLS peer.

Uploads reuse one read buffer and send straight to the socket while it has room;
what does not fit waits for the loop under the timeout.  These tests make the
peer read slowly (or not at all) so both paths run, over a real TLS connection
on a socket pair: every byte must arrive in order although the caller
overwrites its buffer after each send, and a peer that stops reading ends in a
timeout, not a hang.  The last test uploads to the real ProFTPD and checks that
an upload whose sends never wait still lets other tasks on the loop run.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from asyncmirror import datachannel, digests
from asyncmirror.transport import DataTLS
from tests.integration.sessions import open_session
from tests.servers.proftpd import ProftpdServer, RemoteDir


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


class SlowReader:
    """The server end: TLS in a thread, reading ``pace`` bytes at a time with pauses."""

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, *, pace: int, stall: bool):
        self.digest = hashlib.sha256()
        self.received = 0
        self.error: BaseException | None = None
        self._sock, self._ctx, self._pace, self._stall = sock, ctx, pace, stall
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._ctx.wrap_socket(self._sock, server_side=True) as tls:
                if self._stall:
                    time.sleep(5)  # never reads: the client's buffer fills and stays full
                    return
                while data := tls.recv(self._pace):
                    self.digest.update(data)
                    self.received += len(data)
                    time.sleep(0.0005)
        except (ssl.SSLError, OSError) as exc:
            self.error = exc

    def join(self) -> None:
        self._thread.join(timeout=10)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    client, server = socket.socketpair()
    # Small buffers, so that sends fill them long before the data is all written.
    for s in (client, server):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    client.setblocking(False)
    yield client, server
    client.close()
    server.close()


async def test_every_byte_arrives_in_order_although_the_buffer_is_reused(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], pair: tuple[socket.socket, socket.socket]
) -> None:
    server_ctx, client_ctx = contexts
    client, server = pair
    reader = SlowReader(server, server_ctx, pace=100_000, stall=False)
    stream = DataTLS(client, client_ctx, "localhost", None, timeout=10)
    await stream.handshake()

    sent = hashlib.sha256()
    buffer = bytearray(256 * 1024)
    total = 0
    for _ in range(24):  # 6 MiB, far more than the socket buffers hold
        buffer[:] = os.urandom(len(buffer))  # overwrite what the last send() was given
        await stream.send(memoryview(buffer))
        sent.update(buffer)
        total += len(buffer)
    await stream.close()
    reader.join()

    assert reader.error is None, reader.error
    assert reader.received == total
    assert reader.digest.hexdigest() == sent.hexdigest()


async def test_a_peer_that_stops_reading_ends_in_the_timeout_not_a_hang(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], pair: tuple[socket.socket, socket.socket]
) -> None:
    server_ctx, client_ctx = contexts
    client, server = pair
    SlowReader(server, server_ctx, pace=0, stall=True)
    stream = DataTLS(client, client_ctx, "localhost", None, timeout=0.5)
    await stream.handshake()

    async def send_16_mib() -> None:
        for _ in range(64):  # the buffers are full long before
            await stream.send(bytes(256 * 1024))

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await send_16_mib()
    assert time.monotonic() - started < 5
    stream.abort()


async def test_a_large_upload_lets_the_other_sessions_run(
    proftpd: ProftpdServer, remote_dir: RemoteDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On loopback the socket always has room, so no send ever waits: without a
    # yield the upload kept the loop for the whole file, and the other sessions'
    # replies, data connections and timers waited for it (seen as two uploads
    # running one after the other).  A task on the same loop must get turns.
    # A small share makes the margin wide: at most 768 KiB between turns with the
    # yield, several MiB without it (the socket rarely fills on loopback).
    monkeypatch.setattr(datachannel, "FAIR_SHARE", 512 * 1024)
    size = 48 * 1024 * 1024
    source = tmp_path / "large.bin"
    source.write_bytes(os.urandom(size))
    session = await open_session(proftpd)
    await session.expect(f"MKD /{remote_dir.name}", "257")
    stats = datachannel.DataStats()
    seen: list[int] = []

    async def watch() -> None:
        while True:
            seen.append(stats.bytes)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    try:
        await datachannel.upload(
            session, f"/{remote_dir.name}/large.bin", str(source), await session.passive(), stats
        )
    finally:
        watcher.cancel()
        await session.quit()
    assert (remote_dir.path / "large.bin").read_bytes() == source.read_bytes()
    steps = [b - a for a, b in itertools.pairwise(seen)]
    assert max(steps) <= 1024 * 1024, f"{max(steps)} bytes were sent while the other task waited"


async def test_files_at_the_read_buffer_edges_arrive_byte_for_byte(
    proftpd: ProftpdServer, remote_dir: RemoteDir, tmp_path: Path
) -> None:
    # The read buffer is sized to the file (plus the byte that says end of file)
    # and reused: sizes around a chunk are where an off-by-one would show.
    chunk = datachannel.CHUNK
    sizes = [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 7]
    session = await open_session(proftpd)
    await session.expect(f"MKD /{remote_dir.name}", "257")
    try:
        for size in sizes:
            data = os.urandom(size)
            source = tmp_path / f"f{size}.bin"
            source.write_bytes(data)
            stats = await datachannel.upload(
                session, f"/{remote_dir.name}/f{size}.bin", str(source), await session.passive()
            )
            assert stats.bytes == size
            expected = digests.new()
            expected.update(data)
            assert stats.digest == expected.hexdigest(), size  # what the state file records
            assert (remote_dir.path / f"f{size}.bin").read_bytes() == data, size
    finally:
        await session.quit()
