"""Stream helpers shared by the control and the data side: how the proxy reads an FTP
reply, starts TLS, and ends a connection (gracefully, or with a reset)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

CHUNK = 65536
LIMIT = 1 << 20
HANDSHAKE_TIMEOUT = 15.0


def reset(sockets: Sequence[Any], writers: Sequence[asyncio.StreamWriter]) -> None:
    """Close with RST: SO_LINGER on, timeout 0, then drop the transports at once."""
    for sock in sockets:
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    for writer in writers:
        abort(writer)


def reset_writers(writers: Sequence[asyncio.StreamWriter]) -> None:
    """:func:`reset` for streams whose sockets the writers know."""
    reset([w.get_extra_info("socket") for w in writers], writers)


def close(writer: asyncio.StreamWriter) -> None:
    """Start a graceful close (TLS close_notify, then FIN), once.

    A second ``close()`` of a TLS writer detaches asyncio's (3.11) TLS transport from
    its socket: a later :func:`abort` then does nothing, and the socket stays open
    until the peer answers close_notify or asyncio's 30 s shutdown timer fires -- or,
    if the proxy's loop stops first, is never closed and surfaces as ``unclosed
    transport <_SelectorSocketTransport>`` whenever the garbage collector runs.
    """
    with contextlib.suppress(Exception):  # a start_tls cut short: no transport
        if not writer.is_closing():
            writer.close()


def abort(writer: asyncio.StreamWriter) -> None:
    # A start_tls cut short leaves a writer without a transport: nothing to abort then.
    with contextlib.suppress(Exception):
        writer.transport.abort()


async def start_tls(
    writer: asyncio.StreamWriter, ctx: ssl.SSLContext, *, server_hostname: str | None = None
) -> None:
    """``writer.start_tls`` that fails cleanly when the connection is cut meanwhile.

    asyncio (3.11) then leaves the writer without a transport (``None``), and the
    writer's ``__del__`` raises; put the plain transport back and raise a reset.
    """
    plain = writer.transport
    with contextlib.suppress(AttributeError):
        await writer.start_tls(
            ctx, server_hostname=server_hostname, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
        )
    if writer.transport is None:
        writer._transport = plain  # see the docstring
        plain.abort()
        raise ConnectionResetError("connection cut during the TLS handshake")


async def read_reply(reader: asyncio.StreamReader) -> list[bytes] | None:
    """One complete FTP reply (all lines of a multi-line one), or None at EOF."""
    first = await reader.readline()
    if not first.endswith(b"\n"):
        return None
    lines = [first]
    if len(first) >= 4 and first[:3].isdigit() and first[3:4] == b"-":
        end = first[:3] + b" "
        while True:
            line = await reader.readline()
            if not line.endswith(b"\n"):
                return None
            lines.append(line)
            if line.startswith(end):
                break
    return lines


def reply_code(reply: list[bytes]) -> str:
    return reply[0][:3].decode("ascii", "replace")


def quiet_handler(
    sink: list[str],
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """A loop exception handler that records one line instead of logging a traceback.

    Formatting tracebacks in this thread while pytest parses source in the main one
    trips a CPython 3.11 race ("AST constructor recursion depth mismatch").
    """

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        sink.append(f"{context.get('message')}: {context.get('exception')!r}")

    return handler


def debug(*args: object) -> None:
    """Trace the proxy's decisions on stderr when FAULTPROXY_DEBUG is set."""
    if os.environ.get("FAULTPROXY_DEBUG"):
        print(f"{time.monotonic():.3f} faultproxy:", *args, file=sys.stderr, flush=True)
