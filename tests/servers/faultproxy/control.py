"""The control side: one proxied control connection, from the banner through ``AUTH TLS``
to its end, and the faults on its commands (made-up replies, drops, effects).

Before ``AUTH TLS`` succeeds it is one command, one reply; after, commands and replies
flow on two pumps, and a queue of the commands owed a reply says which reply is whose
(a made-up one goes out in its turn, after the server's replies to earlier commands).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import re
import ssl
from typing import TYPE_CHECKING, cast

from .faults import CONNECT, TRANSFERS, Answer, Fault, Refuse, Replace
from .relay import LIMIT, abort, close, debug, read_reply, reply_code, start_tls

if TYPE_CHECKING:
    from .proxy import FaultProxy

_PASV_RE = re.compile(rb"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)")
_EPSV_RE = re.compile(rb"\(\|\|\|(\d+)\|\)")


@dataclasses.dataclass
class _Owed:
    """A command waiting for its final reply (or for a reply the proxy makes up)."""

    command: str
    replace: Fault | None = None  # the server's final reply is replaced (Replace)
    answer: bytes | None = None  # answered by the proxy; never sent to the server


class Control:
    """One proxied control connection: its streams on both sides, the commands owed a
    reply, and the transfer its next data connection belongs to."""

    def __init__(
        self, number: int, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter
    ) -> None:
        self.number = number
        self.creader = creader
        self.cwriter = cwriter
        self.ureader: asyncio.StreamReader | None = None
        self.uwriter: asyncio.StreamWriter | None = None
        self.tls = False
        self.owed: collections.deque[_Owed] = collections.deque()
        self.transfer: tuple[str, str] = ("", "")  # the last transfer command (verb, argument)
        self.closed = False  # reset by the proxy (dropped, restart): abort, no goodbye

    def upstream_session(self) -> ssl.SSLSession | None:
        if self.uwriter is None:
            return None
        obj = self.uwriter.get_extra_info("ssl_object")
        return obj.session if obj is not None else None

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.cwriter, self.uwriter) if w is not None]


def passive_port(line: bytes) -> int | None:
    """The port of a ``227``/``229`` reply line."""
    m = _EPSV_RE.search(line)
    if m is not None:
        return int(m.group(1))
    m = _PASV_RE.search(line)
    return None if m is None else int(m.group(5)) * 256 + int(m.group(6))


def _made_up(fault: Fault) -> bytes:
    assert isinstance(fault.do, Answer | Replace)
    return fault.do.reply.encode() + b"\r\n"


async def handle_control(
    hub: FaultProxy, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter
) -> None:
    """The control port's connection handler."""
    task = asyncio.current_task()
    assert task is not None
    hub.tasks.add(task)
    conn = Control(hub.count_control(), creader, cwriter)
    try:
        refusal: str | None = None
        for fault in hub.book.due(
            CONNECT, "", ("refuse", "effect"), open_controls=len(hub.controls)
        ):
            if isinstance(fault.do, Refuse):
                hub.book.credit(fault)
                refusal = fault.do.reply
            else:
                hub.fire(fault)
        if refusal is not None:
            cwriter.write(refusal.encode() + b"\r\n")
            with contextlib.suppress(OSError):
                await cwriter.drain()
            return
        hub.controls.add(conn)
        try:
            await _serve(hub, conn)
        finally:
            hub.controls.discard(conn)
    except Exception as exc:  # a cut connection, usually: never let asyncio log it
        debug("control connection ended:", repr(exc))
    except asyncio.CancelledError:
        pass  # only close() cancels; do not let asyncio log it
    finally:
        if not conn.closed:
            conn.closed = True
            for writer in conn.writers():
                close(writer)
            for writer in conn.writers():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 2)
        for writer in conn.writers():
            abort(writer)
        hub.forget_ports(conn)
        hub.tasks.discard(task)


async def _next_command(
    hub: FaultProxy, conn: Control
) -> tuple[bytes, str, Fault | None, bytes | None] | None:
    """The client's next command, its faults fired: (the raw line, the command, the
    fault that replaces its reply, the proxy's own answer when a fault answers it
    instead of the server); ``None`` once the client is gone or a fault dropped it."""
    raw = await conn.creader.readline()
    if not raw.endswith(b"\n"):
        return None
    command = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
    gone, fault = _on_command(hub, conn, command)
    if gone:
        return None
    if fault is not None and isinstance(fault.do, Answer):
        hub.book.credit(fault)
        return raw, command, None, _made_up(fault)
    return raw, command, fault, None


def _on_command(hub: FaultProxy, conn: Control, command: str) -> tuple[bool, Fault | None]:
    """Record a command and fire its faults: (the connection is gone, its reply fault)."""
    verb, _, argument = command.partition(" ")
    verb = verb.upper()
    debug("cmd", conn.number, command)
    hub.record(conn, "PASS ****" if verb == "PASS" else command)
    drop: Fault | None = None
    for fault in hub.book.due(verb, argument, ("drop", "effect")):
        if fault.do.kind == "effect":
            hub.fire(fault)
        else:
            drop = fault
    if drop is not None:
        hub.drop_for(drop, conn)
    if conn.closed:
        return True, None
    if verb in TRANSFERS:
        conn.transfer = (verb, argument)
    replies = hub.book.due(verb, argument, ("reply",))
    return False, replies[0] if replies else None


async def _serve(hub: FaultProxy, conn: Control) -> None:
    ureader, uwriter = await asyncio.open_connection(hub.target_host, hub.target_port, limit=LIMIT)
    conn.ureader, conn.uwriter = ureader, uwriter
    banner = await read_reply(ureader)
    if banner is None:
        return
    await hub.to_client(conn, banner)
    # Plaintext: one command, one reply, until AUTH TLS succeeds.
    while not conn.tls:
        nxt = await _next_command(hub, conn)
        if nxt is None:
            return
        raw, command, fault, answer = nxt
        if answer is not None:
            await hub.to_client(conn, [answer])
            continue
        uwriter.write(raw)
        await uwriter.drain()
        reply = await read_reply(ureader)
        while reply is not None and reply_code(reply).startswith("1"):
            await hub.to_client(conn, reply)
            reply = await read_reply(ureader)
        if reply is None:
            return
        real = reply_code(reply)
        if fault is not None:
            hub.book.credit(fault)
            reply = [_made_up(fault)]
        if command.split(" ", 1)[0].upper() == "AUTH" and real == reply_code(reply) == "234":
            await start_tls(uwriter, hub.upstream_ctx, server_hostname=hub.target_host)
            # Nothing the client sends after 234 may land in the plaintext reader.
            cast(asyncio.Transport, conn.cwriter.transport).pause_reading()
            await hub.to_client(conn, reply)
            await start_tls(conn.cwriter, hub.server_ctx)
            conn.tls = True
        else:
            await hub.to_client(conn, reply)
    commands = asyncio.ensure_future(_pump_commands(hub, conn))
    replies = asyncio.ensure_future(_pump_replies(hub, conn))
    try:
        await asyncio.wait({commands, replies}, return_when=asyncio.FIRST_COMPLETED)
        # One side ended: give the other a moment to pass on what is in flight.
        await asyncio.wait({commands, replies}, timeout=2)
    finally:
        for t in (commands, replies):
            t.cancel()
        await asyncio.gather(commands, replies, return_exceptions=True)


async def _pump_commands(hub: FaultProxy, conn: Control) -> None:
    assert conn.uwriter is not None
    try:
        while (nxt := await _next_command(hub, conn)) is not None:
            raw, command, fault, answer = nxt
            if answer is not None:
                conn.owed.append(_Owed(command, answer=answer))
                await _flush_answers(hub, conn)
                continue
            conn.owed.append(_Owed(command, replace=fault))
            conn.uwriter.write(raw)
            await conn.uwriter.drain()
    finally:
        if not conn.closed:
            close(conn.uwriter)


async def _flush_answers(hub: FaultProxy, conn: Control) -> None:
    """Send the proxy's own answers that are next in line."""
    while conn.owed and conn.owed[0].answer is not None:
        answer = conn.owed.popleft().answer
        assert answer is not None
        await hub.to_client(conn, [answer])


async def _pump_replies(hub: FaultProxy, conn: Control) -> None:
    assert conn.ureader is not None
    try:
        while True:
            reply = await read_reply(conn.ureader)
            if reply is None:
                break
            code = reply_code(reply)
            debug("reply", conn.number, reply)
            if code.startswith("1"):
                await hub.to_client(conn, reply)
                continue
            owed = conn.owed.popleft() if conn.owed else None
            if owed is not None and owed.replace is not None:
                hub.book.credit(owed.replace)
                reply = [_made_up(owed.replace)]
            elif code in ("227", "229"):
                port = passive_port(reply[0])
                if port is not None:
                    hub.port_owner[port] = conn
            await hub.to_client(conn, reply)
            await _flush_answers(hub, conn)
    finally:
        if not conn.closed:
            close(conn.cwriter)
