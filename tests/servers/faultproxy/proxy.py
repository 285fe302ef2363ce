"""The proxy itself: its listening sockets (the control port and every passive port), the
connections open through it, the records a test reads, and the faults' effects on the
whole proxy (silence, restart, drops).  Runs on its own loop in a daemon thread
(:class:`~tests.servers.common.LoopThread`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import ssl
import threading
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

from ..common import LoopThread
from ..proftpd import ProftpdServer, require_proftpd, start_proftpd
from .control import Control, handle_control
from .data import DataConn, handle_data
from .faults import Call, DropControl, Fault, FaultBook, Restart, Silence
from .relay import HANDSHAKE_TIMEOUT, LIMIT, quiet_handler, reset, reset_writers


class FaultProxy(LoopThread):
    """A fault-injecting FTPS proxy (see the package docstring).

    ``target_*`` is the real server, ``host`` the proxy's own address.  From any thread:
    :meth:`inject` faults, :meth:`reset` them, read the records (``commands``,
    ``control_connections``, ``data_connections``, each fault's counters).
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        passive_ports: tuple[int, int],
        *,
        cert_file: Path,
        key_file: Path,
        ca_file: Path,
        host: str = "127.0.0.3",
        port: int = 0,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.passive_ports = passive_ports
        self.host = host
        self.port = port

        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(str(cert_file), str(key_file))
        self.upstream_ctx = ssl.create_default_context(cafile=str(ca_file))

        self.book = FaultBook()
        self._lock = threading.Lock()  # the records
        self.commands: list[tuple[int, str]] = []  # (control connection number, command)
        self.control_connections = 0
        self.data_connections = 0
        #: What asyncio would have logged (handshakes cut short...), one line each.
        self.loop_errors: list[str] = []

        # Owned by the proxy's loop.
        self._servers: list[asyncio.Server] = []
        self.controls: set[Control] = set()
        self.datas: set[DataConn] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.port_owner: dict[int, Control] = {}
        self._silence: tuple[Fault, float] | None = None  # (the Silence, until when)
        self._restarts = 0  # fired and not finished (their delay included)

    # -- faults and records (any thread) -------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        """Add ``faults`` after those already in force."""
        self.book.add(faults)

    @property
    def faults(self) -> list[Fault]:
        return self.book.all()

    def reset(self) -> None:
        """Remove every fault and forget every record (open connections stay)."""
        self.book.clear()
        self._silence = None
        with self._lock:
            self.commands = []
            self.control_connections = 0
            self.data_connections = 0

    def describe(self) -> str:
        """The faults in force with their counters, one a line (for failure messages)."""
        return "\n".join(repr(f) for f in self.faults) or "no faults"

    def commands_of(self, verb: str) -> list[str]:
        with self._lock:
            return [c for _, c in self.commands if c.split(" ", 1)[0].upper() == verb.upper()]

    @property
    def restarting(self) -> bool:
        """True from a :class:`Restart` firing until it listens again."""
        return self._restarts > 0

    # -- used by the control and data sides (the proxy's loop) ----------------------------

    def record(self, conn: Control, command: str) -> None:
        with self._lock:
            self.commands.append((conn.number, command))

    def count_control(self) -> int:
        with self._lock:
            self.control_connections += 1
            return self.control_connections

    def count_data(self) -> None:
        with self._lock:
            self.data_connections += 1

    def forget_ports(self, conn: Control) -> None:
        for port, owner in list(self.port_owner.items()):
            if owner is conn:
                del self.port_owner[port]

    async def to_client(self, conn: Control, reply: list[bytes]) -> None:
        silence = self._silence
        if silence is not None and time.monotonic() < silence[1]:
            self.book.credit(silence[0])
            return
        conn.cwriter.write(b"".join(reply))
        await conn.cwriter.drain()

    def fire(self, fault: Fault) -> None:
        """Start an effect (:class:`Silence`, :class:`Restart`, :class:`Call`)."""
        action = fault.do
        if isinstance(action, Silence):
            until = math.inf if action.seconds is None else time.monotonic() + action.seconds
            self._silence = (fault, until)
        elif isinstance(action, Restart):
            self._restarts += 1
            self._spawn(self._restart(fault, action))
        elif isinstance(action, Call):
            result = action.fn()
            if isinstance(result, Awaitable):
                self._spawn(result)
            self.book.credit(fault)
        else:
            raise TypeError(f"not an effect: {fault!r}")

    def drop_for(self, fault: Fault, conn: Control) -> None:
        """Reset ``conn`` (every control connection for ``DropControl(every_connection)``)."""
        every = isinstance(fault.do, DropControl) and fault.do.every_connection
        for victim in list(self.controls) if every else [conn]:
            if not victim.closed:
                victim.closed = True
                reset_writers(victim.writers())
                self.book.credit(fault)

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(awaitable)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _restart(self, fault: Fault, action: Restart) -> None:
        try:
            await asyncio.sleep(action.delay)
            if not self._servers:
                return  # restarting already
            self.book.credit(fault)
            await self._unlisten()
            await asyncio.sleep(action.seconds)
            for _ in range(50):
                try:
                    await self._listen()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
        finally:
            self._restarts -= 1

    # -- lifecycle -------------------------------------------------------------------------

    def new_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(quiet_handler(self.loop_errors))
        return loop

    async def start(self) -> int:
        await self._listen()
        return self.port

    async def _listen(self) -> None:
        servers: list[asyncio.Server] = []
        try:
            for p in range(self.passive_ports[0], self.passive_ports[1] + 1):
                # Data connections are TLS from their first byte (PROT P): let asyncio
                # do the handshake before the handler runs, so no byte of it can land in
                # a plaintext buffer first.
                servers.append(
                    await asyncio.start_server(
                        functools.partial(handle_data, self, p),
                        self.host,
                        p,
                        limit=LIMIT,
                        reuse_address=True,
                        ssl=self.server_ctx,
                        ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
                    )
                )
            # The control port last: if a port above could not be had, no client has
            # been able to connect yet, so closing what was opened races no accept.
            control = await asyncio.start_server(
                functools.partial(handle_control, self),
                self.host,
                self.port,
                limit=LIMIT,
                reuse_address=True,
            )
        except BaseException:
            for s in servers:
                s.close()
            raise
        self.port = control.sockets[0].getsockname()[1]
        self._servers = [*servers, control]

    async def _unlisten(self) -> None:
        servers, self._servers = self._servers, []
        # asyncio 3.11 drops a connection accepted just before Server.close(): the
        # accept's task then fails an assertion (Server._attach) and the socket is never
        # closed -- "unclosed transport" in whichever test the garbage collector runs
        # next.  Stop accepting, let the accepts under way attach, then close.
        loop = asyncio.get_running_loop()
        for s in servers:
            for sock in s.sockets:
                loop.remove_reader(sock.fileno())
        await asyncio.sleep(0)
        for s in servers:
            s.close()
        for conn in list(self.controls):
            conn.closed = True
            reset_writers(conn.writers())
        for data in list(self.datas):
            reset(data.sockets, data.writers())
        for s in servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(s.wait_closed(), 5)

    async def close(self) -> None:
        await self._unlisten()
        tasks = [t for t in self.tasks if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)


def start_fault_server(
    workdir: Path, *, proxy_host: str = "127.0.0.3", passive_range_size: int = 24, **kwargs: Any
) -> tuple[ProftpdServer, FaultProxy]:
    """Start ProFTPD (``kwargs`` go to :func:`start_proftpd`) masquerading as ``proxy_host``,
    and a :class:`FaultProxy` on that address, on its own thread.  Stop both when done:
    ``proxy.stop_thread(); server.stop()``."""
    server = start_proftpd(
        workdir,
        masquerade_address=proxy_host,
        passive_range_size=passive_range_size,
        **kwargs,
    )
    try:
        proxy = FaultProxy(
            server.host,
            server.port,
            server.passive_ports,
            cert_file=server.workdir / "server-cert.pem",
            key_file=server.workdir / "server-key.pem",
            ca_file=server.ca_file,
            host=proxy_host,
        )
        proxy.start_in_thread()
    except BaseException:
        server.stop()
        raise
    return server, proxy


@contextlib.contextmanager
def fault_server(workdir: Path, **kwargs: Any) -> Iterator[tuple[ProftpdServer, FaultProxy]]:
    """:func:`start_fault_server` for a ``with`` block (a fixture's body): ProFTPD is
    required (see :func:`~tests.servers.proftpd.require_proftpd`), both stopped after."""
    require_proftpd()
    server, proxy = start_fault_server(workdir, **kwargs)
    try:
        yield server, proxy
    finally:
        proxy.stop_thread()
        server.stop()
