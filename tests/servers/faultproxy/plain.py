"""A tiny plaintext "FTP server" that answers from a table: a server that refuses
``AUTH TLS`` (or anything else), to check what a client sends it."""

from __future__ import annotations

import asyncio
import threading

from ..common import LoopThread
from .relay import abort, quiet_handler


class FakePlainServer(LoopThread):
    """A plaintext "FTP server" answering from a table; records every line it receives.

    ``replies`` maps a verb to its reply line (default ``500 <VERB> not understood``).
    Runs on its own loop in a daemon thread: ``start_in_thread()`` / ``stop_thread()``.
    """

    def __init__(
        self,
        replies: dict[str, str] | None = None,
        *,
        banner: str = "220 fake FTP server ready",
        host: str = "127.0.0.1",
    ) -> None:
        self.replies = {k.upper(): v for k, v in (replies or {}).items()}
        self.banner = banner
        self.host = host
        self.port = 0
        self.received: list[str] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def verbs(self) -> list[str]:
        with self._lock:
            return [line.split(" ", 1)[0].upper() for line in self.received]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with self._lock:
            self.connections += 1
        try:
            writer.write(self.banner.encode() + b"\r\n")
            await writer.drain()
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                with self._lock:
                    self.received.append(line)
                verb = line.split(" ", 1)[0].upper()
                writer.write(
                    self.replies.get(verb, f"500 {verb} not understood").encode() + b"\r\n"
                )
                await writer.drain()
                if verb == "QUIT":
                    break
        except (Exception, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def new_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(quiet_handler([]))
        return loop

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            abort(w)
        await asyncio.sleep(0)

    def __enter__(self) -> FakePlainServer:
        self.start_in_thread()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_thread()
