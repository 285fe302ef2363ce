"""A userspace TCP proxy that adds a round-trip time: WAN emulation without netem.

``tc qdisc netem`` needs kernel modules this machine does not have, so the benchmark
puts this proxy between the clients and ProFTPD.  It listens on ``listen_host`` at
every given port (the FTP control port and the whole passive range) and forwards each
connection to the same port on ``target_host``.  ProFTPD's ``MasqueradeAddress``
points at ``listen_host``, so data connections come through the proxy as well.

How the delay works: each direction of each connection has its own FIFO queue of
``(due time, chunk)``.  A reader task takes every chunk as soon as it arrives and
queues it due ``rtt/2`` later; a writer task sleeps until the head of the queue is due
and writes it.  Order is kept, and since reading never waits for writing, a bulk
transfer is not slowed to one chunk per ``rtt/2``: throughput is only bounded by
``buffer_limit`` bytes in flight per direction (like a TCP window), i.e. by
``buffer_limit / (rtt/2)``.  End of stream (FIN) is forwarded the same way
(half-close), a reset as an abort.

Connection setup costs a round trip on a real link (SYN, SYN-ACK) before the client
can send anything, but here the kernel completes the client's ``connect()`` at once.
With ``connect_delay`` (the default) the proxy charges it: it connects to the server
only ``1.5 × rtt`` after accepting (when the server would see the handshake complete)
and holds the client's first bytes until ``rtt`` after the accept plus the one-way
delay.  So the first reply to the first bytes a client sends arrives ``2 × rtt`` after
its ``connect()``, as on a WAN.

Use it as a library (:class:`DelayProxy`) or as a process::

    python3 benchmarks/delayproxy.py --listen 127.0.0.2 --target 127.0.0.1 \\
        --port 2121 --port 20000-20199 --rtt 50

which prints one ``READY`` line on stdout once every port listens and runs until
SIGTERM/SIGINT; it prints its counters to stderr when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import signal
import socket
import sys
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["DelayProxy", "ProxyStats", "parse_ports"]

_CHUNK = 65536
_RESET = object()  # queued instead of data when the source broke off (reset)


@dataclass
class ProxyStats:
    connections: int = 0
    active: int = 0
    upstream_failures: int = 0
    bytes_up: int = 0  # client -> server
    bytes_down: int = 0  # server -> client
    resets: int = 0
    max_queued: int = 0  # largest number of bytes held in one direction

    def line(self) -> str:
        return (
            f"connections={self.connections} active={self.active} "
            f"upstream_failures={self.upstream_failures} resets={self.resets} "
            f"bytes_up={self.bytes_up} bytes_down={self.bytes_down} max_queued={self.max_queued}"
        )


@dataclass
class _Direction:
    """One direction of one connection: a timestamped FIFO between a reader and a writer."""

    proxy: DelayProxy
    upstream: bool  # client -> server
    queue: deque[tuple[float, object]] = field(default_factory=deque)
    queued: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # queue became non-empty
    room: asyncio.Event = field(default_factory=asyncio.Event)  # queued fell below the limit

    def put(self, due: float, item: object) -> None:
        self.queue.append((due, item))
        if isinstance(item, bytes):
            self.queued += len(item)
            self.proxy.stats.max_queued = max(self.proxy.stats.max_queued, self.queued)
        self.ready.set()

    async def pump_in(self, reader: asyncio.StreamReader, not_before: float) -> None:
        loop = asyncio.get_running_loop()
        delay = self.proxy.one_way
        limit = self.proxy.buffer_limit
        while True:
            try:
                data = await reader.read(_CHUNK)
            except (ConnectionError, OSError):
                self.put(max(loop.time(), not_before) + delay, _RESET)
                return
            self.put(max(loop.time(), not_before) + delay, data)
            if not data:
                return
            if self.upstream:
                self.proxy.stats.bytes_up += len(data)
            else:
                self.proxy.stats.bytes_down += len(data)
            while self.queued > limit:
                self.room.clear()
                await self.room.wait()

    async def pump_out(self, writer: asyncio.StreamWriter) -> bool:
        """Deliver the queue in order, each item when due.  False if the stream was reset."""
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.ready.clear()
                await self.ready.wait()
            due, item = self.queue[0]
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.queue.popleft()
            if item is _RESET:
                return False
            assert isinstance(item, bytes)
            if not item:  # end of stream: half-close towards the destination
                if writer.can_write_eof():
                    writer.write_eof()
                return True
            writer.write(item)
            await writer.drain()
            self.queued -= len(item)
            if self.queued <= self.proxy.buffer_limit:
                self.room.set()


class DelayProxy:
    """Forward ``listen_host:port`` to ``target_host:port`` for every port, adding ``rtt_ms``."""

    def __init__(
        self,
        listen_host: str,
        target_host: str,
        ports: Iterable[int],
        rtt_ms: float,
        *,
        connect_delay: bool = True,
        buffer_limit: int = 4 << 20,
    ) -> None:
        self.listen_host = listen_host
        self.target_host = target_host
        self.ports = sorted(set(ports))
        self.rtt = rtt_ms / 1000.0
        self.one_way = self.rtt / 2
        self.connect_delay = connect_delay
        self.buffer_limit = buffer_limit
        self.stats = ProxyStats()
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        try:
            for port in self.ports:
                server = await asyncio.start_server(
                    functools.partial(self._accept, port),
                    self.listen_host,
                    port,
                    backlog=256,
                    reuse_address=True,
                )
                self._servers.append(server)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self._servers.clear()

    def _accept(
        self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.ensure_future(self._connection(port, reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection(
        self, port: int, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        self.stats.connections += 1
        self.stats.active += 1
        _nodelay(cwriter)
        up = _Direction(self, upstream=True)
        down = _Direction(self, upstream=False)
        # The client's bytes may leave only once its handshake would have completed.
        not_before = accepted + (self.rtt if self.connect_delay else 0.0)
        tasks: list[asyncio.Task[object]] = [
            asyncio.ensure_future(up.pump_in(creader, not_before)),
        ]
        swriter: asyncio.StreamWriter | None = None
        try:
            if self.connect_delay:
                await asyncio.sleep(1.5 * self.rtt)
            try:
                sreader, connected = await asyncio.wait_for(
                    asyncio.open_connection(self.target_host, port), 30
                )
            except (OSError, TimeoutError):
                self.stats.upstream_failures += 1
                _abort(cwriter)
                return
            swriter = connected
            _nodelay(connected)
            tasks += [
                asyncio.ensure_future(down.pump_in(sreader, 0.0)),
                asyncio.ensure_future(up.pump_out(connected)),
                asyncio.ensure_future(down.pump_out(cwriter)),
            ]
            outs = set(tasks[2:])
            broken = False
            while outs and not broken:
                done, outs = await asyncio.wait(outs, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if t.exception() is not None or t.result() is False:
                        broken = True  # a reset or a write error: reset both sides
            if broken:
                self.stats.resets += 1
                _abort(cwriter)
                _abort(swriter)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in (cwriter, swriter):
                if w is not None:
                    w.close()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(w.wait_closed(), 5)
            self.stats.active -= 1


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _abort(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.transport.abort()


def parse_ports(specs: Iterable[str]) -> list[int]:
    """``["2121", "20000-20199"]`` -> every port, sorted."""
    ports: set[int] = set()
    for spec in specs:
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            a, b = int(lo), int(hi or lo)
            if not (0 < a <= b < 65536):
                raise ValueError(f"bad port range {part!r}")
            ports.update(range(a, b + 1))
    return sorted(ports)


async def _serve(args: argparse.Namespace) -> None:
    proxy = DelayProxy(
        args.listen,
        args.target,
        parse_ports(args.port),
        args.rtt,
        connect_delay=args.connect_delay,
        buffer_limit=args.buffer_limit,
    )
    await proxy.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {len(proxy.ports)} ports rtt={args.rtt}ms", flush=True)
    await stop.wait()
    print(f"delayproxy: {proxy.stats.line()}", file=sys.stderr, flush=True)
    await proxy.stop()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="TCP proxy adding a round-trip time (WAN emulation).")
    p.add_argument("--listen", default="127.0.0.2", help="address to listen on")
    p.add_argument("--target", default="127.0.0.1", help="address to forward to (same port)")
    p.add_argument(
        "--port",
        action="append",
        required=True,
        help="port or range LO-HI (repeat, or comma-separate)",
    )
    p.add_argument("--rtt", type=float, default=50.0, help="round-trip time to add, in ms")
    p.add_argument(
        "--no-connect-delay",
        dest="connect_delay",
        action="store_false",
        help="do not charge a round trip for the TCP handshake",
    )
    p.add_argument(
        "--buffer-limit",
        type=int,
        default=4 << 20,
        help="bytes held per direction before reading pauses (default 4 MiB)",
    )
    p.add_argument("--no-uvloop", dest="uvloop", action="store_false")
    args = p.parse_args(argv)
    runner_kw: dict[str, object] = {}
    if args.uvloop:
        try:
            import uvloop

            runner_kw["loop_factory"] = uvloop.new_event_loop
        except ImportError:
            pass
    with asyncio.Runner(**runner_kw) as runner:  # type: ignore[arg-type]
        runner.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
