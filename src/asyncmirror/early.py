"""A control connection begun before the heavy imports: the command's head start.

Starting the ``asyncmirror`` command costs Python about a tenth of a second of
imports (asyncio, ssl) before the first byte goes out.  The TCP
handshake and the server's greeting -- a round trip, and on ProFTPD a forked
process setting up its session, ~35 ms even on loopback -- need no Python at
all.  So the CLI opens the first control connections in threads as soon as
it knows the host -- as many as SRC's top level proves the run will use --
imports meanwhile, and the first sessions start from those sockets with the
``220`` greeting already waiting in them.

This module imports only :mod:`socket` and :mod:`threading`, so that creating
an :class:`EarlyConnection` costs nothing before the imports it overlaps.  It
sends nothing: no command, no credential; a run that ends before using it
just closes it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


class EarlyConnection:
    """One TCP connection to ``(host, port)``, opened by a daemon thread.

    :meth:`claim` hands it to exactly one caller, which waits for it with
    :meth:`when_done` (from any thread: the event loop does not exist yet when
    the connect starts) and then collects it with :meth:`take`.
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._done = False
        self._callbacks: list[Callable[[], None]] = []
        self._sock: socket.socket | None = None
        self._error: Exception | None = None
        self._claimed = False
        self._closed = False
        threading.Thread(
            target=self._connect, args=(timeout,), name="asyncmirror-connect", daemon=True
        ).start()

    def _connect(self, timeout: float) -> None:
        sock: socket.socket | None = None
        error: Exception | None = None
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except Exception as exc:  # e.g. UnicodeError for a name IDNA cannot encode
            error = exc  # handed to the session, which says what it means
        with self._lock:
            if self._closed and sock is not None:
                sock.close()  # nobody will take it any more
                sock = None
            self._sock, self._error, self._done = sock, error, True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def claim(self, host: str, port: int) -> bool:
        """True once, for the first caller connecting to the same place."""
        with self._lock:
            if self._claimed or self._closed or (host, port) != (self.host, self.port):
                return False
            self._claimed = True
            return True

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the connect has finished (at once if it has)."""
        with self._lock:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback()

    def take(self) -> socket.socket:
        """The connected socket, once :meth:`when_done` said so; or the connect's error
        (an ``OSError`` as a fresh connect would raise it, or what went wrong before)."""
        with self._lock:
            if not self._done:
                raise BlockingIOError("the connection is not established yet")
            if self._error is not None:
                raise self._error
            sock, self._sock = self._sock, None
        if sock is None:
            raise ConnectionAbortedError(f"the connection to {self.host}:{self.port} was closed")
        return sock

    def close(self) -> None:
        """Close the socket if nobody took it (now, or when the connect finishes)."""
        with self._lock:
            self._closed = True
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
