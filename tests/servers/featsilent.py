"""A control-connection proxy that behaves like the reference shared host on FEAT.

The reference host (ProFTPD on a shared FreeBSD server) never answers ``FEAT`` sent before
``AUTH TLS``: the connection just stalls. :class:`FeatSilentProxy` sits in front of a real
server's control port and reproduces that:

* while the connection is plaintext (until the server's ``234`` reply to ``AUTH``), it
  parses the client's command lines, records them in ``plaintext_commands`` and forwards
  them, except ``FEAT``: that is recorded (``feat_seen``) and neither answered nor
  forwarded. By default (``blackhole_after_feat``) everything the client sends afterwards on
  that connection is swallowed as well, so the connection stays stalled;
* after ``234`` it is a transparent byte pipe (the TLS session is end-to-end).

Data connections do not go through it: PASV replies name the server's own address.

Optionally (``max_connections``) it refuses connections beyond a number of concurrent ones
with ``421 Too many connections`` like many shared hosts do (ProFTPD itself answers 530).

Use it from async code (``await proxy.start()`` / ``await proxy.close()``) or, when the
client runs on another event loop or in a subprocess, on its own loop in a background
thread (``proxy.start_in_thread()`` / ``proxy.stop_thread()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from .common import LoopThread

__all__ = ["FeatSilentProxy"]

_CHUNK = 65536


class _Conn:
    """State of one proxied control connection."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.tls = False  # True once the server answered 234 to AUTH
        self.stalled = False  # True once FEAT was swallowed (blackhole mode)
        self.commands: list[str] = []


class FeatSilentProxy(LoopThread):
    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        blackhole_after_feat: bool = True,
        max_connections: int | None = None,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = port  # the listening port once started
        self.blackhole_after_feat = blackhole_after_feat
        self.max_connections = max_connections

        self._lock = threading.Lock()
        self.feat_seen = False
        self.feat_count = 0
        self.plaintext_commands: list[str] = []  # all connections, in arrival order (PASS masked)
        self.connections = 0  # connections accepted (including refused ones)
        self.refused_connections = 0  # answered 421 because of max_connections
        self.active_connections = 0

        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- recording ---------------------------------------------------------------

    def reset(self) -> None:
        """Forget what was recorded (open connections keep their own state)."""
        with self._lock:
            self.feat_seen = False
            self.feat_count = 0
            self.plaintext_commands = []
            self.connections = 0
            self.refused_connections = 0

    def _record(self, conn: _Conn, line: str) -> None:
        verb = line.split(" ", 1)[0].upper()
        shown = "PASS ****" if verb == "PASS" else line
        with self._lock:
            conn.commands.append(shown)
            self.plaintext_commands.append(shown)
            if verb == "FEAT":
                self.feat_seen = True
                self.feat_count += 1

    # -- asyncio API -------------------------------------------------------------

    async def start(self) -> int:
        """Listen on ``host:port`` (port 0: any free port); returns the port."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop listening and cut every proxied connection."""
        if self._server is not None:
            self._server.close()
        # Cutting the sockets ends the pumps; cancel only what is still left after that.
        for writer in list(self._writers):
            writer.transport.abort()
        handlers = list(self._handlers)
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=5)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def __aenter__(self) -> FeatSilentProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(cwriter)
        with self._lock:
            self.connections += 1
            number = self.connections
        swriter: asyncio.StreamWriter | None = None
        try:
            if self.max_connections is not None and self.active_connections >= self.max_connections:
                with self._lock:
                    self.refused_connections += 1
                cwriter.write(
                    f"421 Too many connections ({self.max_connections}) from this IP\r\n".encode()
                )
                with contextlib.suppress(OSError):
                    await cwriter.drain()
                return
            self.active_connections += 1
            try:
                try:
                    sreader, swriter = await asyncio.open_connection(
                        self.target_host, self.target_port
                    )
                except OSError:
                    return
                self._writers.add(swriter)
                conn = _Conn(number)
                await asyncio.gather(
                    self._client_to_server(conn, creader, swriter, cwriter),
                    self._server_to_client(conn, sreader, cwriter, swriter),
                )
            finally:
                self.active_connections -= 1
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Only close() cancels handlers; ending normally keeps asyncio's
            # client_connected_cb callback from reporting the cancellation as an error.
            pass
        finally:
            for writer in (cwriter, swriter):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.close()
            self._handlers.discard(task)

    async def _client_to_server(
        self,
        conn: _Conn,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        other: asyncio.StreamWriter,
    ) -> None:
        buffer = b""
        try:
            while True:
                chunk = await reader.read(_CHUNK)
                if not chunk:
                    break
                if conn.tls:
                    writer.write(chunk)
                    await writer.drain()
                    continue
                # Plaintext: handle complete command lines; keep a partial one buffered.
                buffer += chunk
                forward = b""
                while not conn.tls and b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    line = raw.rstrip(b"\r").decode("latin-1")
                    self._record(conn, line)
                    if conn.stalled:
                        continue
                    if line.split(" ", 1)[0].upper() == "FEAT":
                        # Never answered, never forwarded: the client waits forever.
                        conn.stalled = self.blackhole_after_feat
                        continue
                    forward += raw + b"\n"
                if conn.tls and buffer:  # bytes after the switch belong to the TLS stream
                    forward += buffer
                    buffer = b""
                if forward:
                    writer.write(forward)
                    await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            other.transport.abort()
            writer.transport.abort()

    async def _server_to_client(
        self,
        conn: _Conn,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        other: asyncio.StreamWriter,
    ) -> None:
        lines = b""
        try:
            while True:
                chunk = await reader.read(_CHUNK)
                if not chunk:
                    break
                if not conn.tls:
                    lines += chunk
                    while b"\n" in lines:
                        raw, lines = lines.split(b"\n", 1)
                        if raw.startswith(b"234 "):
                            # Set before the client can see 234 (and start its handshake).
                            conn.tls = True
                            break
                writer.write(chunk)
                await writer.drain()
            # The server is gone: flush what it said, then end the client's connection.
            writer.close()
        except OSError:
            other.transport.abort()
            writer.transport.abort()
