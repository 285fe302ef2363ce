"""The data side: one proxied data connection, and the faults on it (cut, truncate, stall,
cut the control connection, lines injected into a listing).

The client's data connection is TLS from its first byte (PROT P); the proxy's own
connection to the server resumes the upstream control connection's TLS session, as
ProFTPD requires.  The data connection belongs to the control connection whose
``227``/``229`` reply named its port, and to that connection's last transfer command.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import TYPE_CHECKING, Any

from aioftp.common import SSLSessionBoundContext

from .control import Control
from .faults import Cut, CutControl, Inject, Stall, Truncate
from .relay import CHUNK, HANDSHAKE_TIMEOUT, LIMIT, abort, close, debug, reset

if TYPE_CHECKING:
    from .proxy import FaultProxy

_STALL_LIMIT = 30.0  # a Stall holds the transfer at most this long


class DataConn:
    """One proxied data connection (its two sockets, for a reset)."""

    def __init__(self, cwriter: asyncio.StreamWriter) -> None:
        self.cwriter = cwriter
        self.uwriter: asyncio.StreamWriter | None = None
        self.sockets: list[Any] = [cwriter.get_extra_info("socket")]

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.cwriter, self.uwriter) if w is not None]


async def handle_data(
    hub: FaultProxy, port: int, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter
) -> None:
    """The handler of passive port ``port`` (after the client's TLS handshake)."""
    task = asyncio.current_task()
    assert task is not None
    hub.tasks.add(task)
    data = DataConn(cwriter)
    hub.datas.add(data)
    hub.count_data()
    try:
        conn = hub.port_owner.get(port)
        debug("data accept", port, cwriter.get_extra_info("peername"), conn and conn.number)
        if conn is None or conn.closed:
            reset(data.sockets, data.writers())
            return
        await _serve(hub, conn, data, port, creader, cwriter)
    except (Exception, asyncio.CancelledError) as exc:  # never let asyncio log it
        debug("data connection ended:", repr(exc))
        reset(data.sockets, data.writers())
    finally:
        for writer in data.writers():
            abort(writer)
        debug("data end", port, cwriter.get_extra_info("peername"))
        hub.datas.discard(data)
        hub.tasks.discard(task)


async def _serve(
    hub: FaultProxy,
    conn: Control,
    data: DataConn,
    port: int,
    creader: asyncio.StreamReader,
    cwriter: asyncio.StreamWriter,
) -> None:
    session = conn.upstream_session()
    ctx: ssl.SSLContext = hub.upstream_ctx
    if session is not None:
        ctx = SSLSessionBoundContext(
            ssl.PROTOCOL_TLS_CLIENT, context=hub.upstream_ctx, session=session
        )
    # TLS from the first byte; the server answers the handshake once it has the
    # transfer command.
    ureader, uwriter = await asyncio.wait_for(
        asyncio.open_connection(
            hub.target_host,
            port,
            limit=LIMIT,
            ssl=ctx,
            server_hostname=hub.target_host,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
        ),
        HANDSHAKE_TIMEOUT + 1,
    )
    data.uwriter = uwriter
    data.sockets.append(uwriter.get_extra_info("socket"))

    verb, argument = conn.transfer
    debug("data handshakes done", port, verb, argument)
    faults = hub.book.due(verb, argument, ("data", "listing"))
    brk = next((f for f in faults if f.do.kind == "data"), None)
    inject = next((f for f in faults if isinstance(f.do, Inject)), None)
    state = {"total": 0, "cut": False, "dropped": 0}

    async def pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upward: bool
    ) -> None:
        action = brk.do if brk is not None else None
        while True:
            chunk = await reader.read(CHUNK)
            if not chunk:
                break
            if isinstance(action, Cut):
                room = action.after - state["total"]
                if len(chunk) >= room:
                    if room > 0:
                        writer.write(chunk[:room])
                        await writer.drain()
                    state["total"] += max(room, 0)
                    state["cut"] = True
                    assert brk is not None
                    hub.book.credit(brk)
                    reset(data.sockets, data.writers())
                    return
            elif isinstance(action, CutControl):
                if state["total"] + len(chunk) >= action.after and not conn.closed:
                    writer.write(chunk[: max(0, action.after - state["total"])])
                    await writer.drain()
                    assert brk is not None
                    hub.drop_for(brk, conn)
                    state["cut"] = True
                    return
            elif isinstance(action, Stall) and upward:
                room = max(0, action.after - state["total"])
                if len(chunk) >= room:
                    writer.write(chunk[:room])
                    await writer.drain()
                    state["total"] += room
                    state["cut"] = True
                    assert brk is not None
                    hub.book.credit(brk)
                    stop = time.monotonic() + _STALL_LIMIT
                    # conn.closed is a plain flag that several paths set: poll it.
                    while not conn.closed and time.monotonic() < stop:  # noqa: ASYNC110
                        await asyncio.sleep(0.02)
                    break
            elif isinstance(action, Truncate) and upward:
                room = max(0, action.after - state["total"])
                if len(chunk) > room:
                    state["dropped"] += len(chunk) - room
                    chunk = chunk[:room]
            state["total"] += len(chunk)
            if chunk:
                writer.write(chunk)
                await writer.drain()
        if inject is not None and not upward:
            assert isinstance(inject.do, Inject)
            writer.write("".join(line + "\r\n" for line in inject.do.lines).encode("utf-8"))
            await writer.drain()
            hub.book.credit(inject)
        close(writer)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 5)

    tasks = [
        asyncio.ensure_future(pump(creader, uwriter, True)),
        asyncio.ensure_future(pump(ureader, cwriter, False)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if not state["cut"]:
            await asyncio.wait(tasks, timeout=5)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if brk is not None and isinstance(brk.do, Truncate) and state["dropped"]:
        hub.book.credit(brk)
