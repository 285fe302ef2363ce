"""A fault-injecting FTPS proxy in front of a real ProFTPD, for the control AND the data ports.

:class:`FaultProxy` listens on its own loopback address (``127.0.0.3`` by default) on a
control port and on every port of the server's passive range.  ProFTPD is started with
``MasqueradeAddress`` set to that address (see :func:`start_fault_server`), so its
``227``/``229`` replies send the client to the proxy, which forwards each data connection
to the same port on the server.

It is a TLS man-in-the-middle on purpose: the faults need to see and change commands and
replies, which travel inside TLS after ``AUTH TLS``.  Towards the client it presents the
server's own certificate (issued for the proxy's address too, so the client's checks
pass); towards ProFTPD it is an ordinary FTPS client, and it resumes its upstream control
connection's TLS session on every upstream data connection, because this ProFTPD refuses
data connections that do not.  The client likewise resumes its session with the proxy.

Faults (all changeable at runtime with :meth:`FaultProxy.configure`, counted in
:attr:`FaultProxy.injected` so a test can assert that the fault really happened):

* ``data_faults`` -- :class:`DataFault`: cut (TCP RST, ``SO_LINGER 0``, both sides) every
  Nth data connection (optionally only those of one file name, or listings) after K
  bytes; or ``truncate`` it: pass K bytes to the server and silently drop the rest (a
  server whose disk write failed); or ``drop_control``: after K bytes reset the control
  connection the transfer belongs to;
* ``drop_control_after`` (with ``drop_control_verb``, ``drop_control_times``): reset the
  control connection that carries the Mth (matching) command, before forwarding it;
  :meth:`FaultProxy.drop_control_connections` does it "now" from any thread;
* ``max_control_connections``: answer ``421 Too many connections`` beyond N concurrent
  control connections;
* ``reply_faults`` -- :class:`ReplyFault`: answer the Nth ``PASV``/``EPSV``/``STOR`` (or any
  verb, optionally for one file name) with a chosen reply in place of the server
  (``forward=False``: the command never reaches the server) or replace the server's
  final reply to it (``forward=True``: e.g. the transfer happened, then ``426``);
* ``stall_replies``: swallow every server reply (banner included) on every control
  connection: a silent server;
* :meth:`FaultProxy.restart`: cut every connection and refuse new ones (nothing listens)
  for T seconds, like a server restart;
* ``inject_listing``: lines appended to every ``MLSD``/``LIST`` data stream (hostile
  names);
* :meth:`FaultProxy.at_command`: run an action when the Nth command with a verb arrives
  (counted over all connections), e.g. restart or stall the server mid-run.

Everything a client sent on control connections is recorded in ``commands`` (``PASS``
masked), with the connection number.

Use it on its own event loop in a background thread (``start_in_thread()`` /
``stop_thread()``), like :mod:`servers.featsilent`: the client under test may run on
another loop or in a subprocess.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import posixpath
import re
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from aioftp.common import SSLSessionBoundContext

from .common import LoopThread
from .proftpd import ProftpdServer, start_proftpd

__all__ = [
    "DataFault",
    "FakePlainServer",
    "FaultProxy",
    "ReplyFault",
    "fault_server",
    "start_fault_server",
]

_CHUNK = 65536
_LIMIT = 1 << 20
_HANDSHAKE_TIMEOUT = 15.0
_STALL_LIMIT = 30.0  # a "stall" data fault holds the transfer at most this long
_TRANSFER_VERBS = frozenset({"STOR", "STOU", "APPE", "RETR", "MLSD", "LIST", "NLST"})
_LISTING_VERBS = frozenset({"MLSD", "LIST", "NLST"})
_TEMP_PREFIX = ".htasyncmirror-tmp-"  # asyncmirror's --atomic temporary names
_PASV_RE = re.compile(rb"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)")
_EPSV_RE = re.compile(rb"\(\|\|\|(\d+)\|\)")


def _name_matches(name: str | None, argument: str) -> bool:
    """``name`` is a file's base name; a temporary ``--atomic`` name for it matches too."""
    if name is None:
        return True
    base = posixpath.basename(argument)
    return base == name or (base.startswith(_TEMP_PREFIX) and base.endswith("-" + name))


@dataclasses.dataclass
class ReplyFault:
    """Answer matching commands with ``reply`` (one line, e.g. ``"553 Permission denied"``).

    Fires on every ``every``-th matching command (``verb``, and ``name`` when given: the
    base name of the argument), at most ``times`` times.  ``forward=False`` answers in
    place of the server (which never sees the command); ``forward=True`` forwards it and
    replaces the server's final reply.
    """

    verb: str
    reply: str
    every: int = 1
    times: int | None = None
    name: str | None = None
    forward: bool = False
    seen: int = 0
    fired: int = 0

    def _check(self, verb: str, argument: str) -> bool:
        if verb != self.verb.upper() or not _name_matches(self.name, argument):
            return False
        self.seen += 1
        exhausted = self.times is not None and self.fired >= self.times
        return self.seen % self.every == 0 and not exhausted


@dataclasses.dataclass
class DataFault:
    """Break every ``every``-th data connection of ``verbs`` (for file ``name`` if given).

    ``action="cut"``: after ``after`` bytes (both directions counted) reset both sides.
    ``action="truncate"``: forward only the first ``after`` bytes towards the server,
    drop the rest, and end the connection normally.
    ``action="drop_control"``: after ``after`` bytes reset the *control* connection the
    transfer belongs to (the server then aborts the transfer, leaving a partial file).
    ``action="stall"``: after ``after`` bytes stop reading from the client (its sends
    block; the server holds a partial file) until the client's control connection
    closes, at most ``_STALL_LIMIT`` seconds; then end the transfer normally.
    """

    after: int
    action: str = "cut"
    every: int = 1
    times: int | None = None
    name: str | None = None
    verbs: tuple[str, ...] = ("STOR",)
    seen: int = 0
    fired: int = 0
    missed: int = 0  # chosen, but the transfer ended before ``after`` bytes

    def __post_init__(self) -> None:
        if self.action not in ("cut", "truncate", "drop_control", "stall"):
            raise ValueError(f"unknown data fault action {self.action!r}")

    def _check(self, verb: str, argument: str) -> bool:
        if verb not in self.verbs or not _name_matches(self.name, argument):
            return False
        self.seen += 1
        exhausted = self.times is not None and self.fired >= self.times
        return self.seen % self.every == 0 and not exhausted


@dataclasses.dataclass
class _Pending:
    """A command waiting for its final reply (or a reply we make up for it)."""

    command: str
    rewrite: str | None = None  # replace the server's final reply with this
    synthetic: str | None = None  # answered by the proxy; never sent to the server


class _Control:
    """One proxied control connection."""

    def __init__(
        self, number: int, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter
    ) -> None:
        self.number = number
        self.creader = creader
        self.cwriter = cwriter
        self.ureader: asyncio.StreamReader | None = None
        self.uwriter: asyncio.StreamWriter | None = None
        self.tls = False
        self.pending: collections.deque[_Pending] = collections.deque()
        self.transfer: tuple[str, str] = ("", "")  # the last transfer command (verb, argument)
        self.closed = False  # reset by the proxy (dropped, restart): abort, no goodbye

    def upstream_session(self) -> ssl.SSLSession | None:
        if self.uwriter is None:
            return None
        obj = self.uwriter.get_extra_info("ssl_object")
        return obj.session if obj is not None else None

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.cwriter, self.uwriter) if w is not None]


class _Data:
    """One proxied data connection (its two sockets, for a reset)."""

    def __init__(self, cwriter: asyncio.StreamWriter) -> None:
        self.cwriter = cwriter
        self.uwriter: asyncio.StreamWriter | None = None
        self.sockets: list[Any] = [cwriter.get_extra_info("socket")]

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.cwriter, self.uwriter) if w is not None]


def _reset(sockets: Sequence[Any], writers: Sequence[asyncio.StreamWriter]) -> None:
    """Close with RST: SO_LINGER on, timeout 0, then drop the transports at once."""
    for sock in sockets:
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    for writer in writers:
        _abort(writer)


def _quiet_handler(
    sink: list[str],
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """A loop exception handler that records one line instead of logging a traceback.

    Formatting tracebacks in this thread while pytest parses source in the main one
    trips a CPython 3.11 race ("AST constructor recursion depth mismatch").
    """

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        sink.append(f"{context.get('message')}: {context.get('exception')!r}")

    return handler


async def _start_tls(
    writer: asyncio.StreamWriter, ctx: ssl.SSLContext, *, server_hostname: str | None = None
) -> None:
    """``writer.start_tls`` that fails cleanly when the connection is cut meanwhile.

    asyncio (3.11) then leaves the writer without a transport (``None``), and the
    writer's ``__del__`` raises; put the plain transport back and raise a reset.
    """
    plain = writer.transport
    with contextlib.suppress(AttributeError):
        await writer.start_tls(
            ctx, server_hostname=server_hostname, ssl_handshake_timeout=_HANDSHAKE_TIMEOUT
        )
    if writer.transport is None:
        writer._transport = plain  # type: ignore[attr-defined]
        plain.abort()
        raise ConnectionResetError("connection cut during the TLS handshake")


def _close(writer: asyncio.StreamWriter) -> None:
    """Start a graceful close (TLS close_notify, then FIN), once.

    A second ``close()`` of a TLS writer detaches asyncio's (3.11) TLS transport from
    its socket: a later :func:`_abort` then does nothing, and the socket stays open
    until the peer answers close_notify or asyncio's 30 s shutdown timer fires -- or,
    if the proxy's loop stops first, is never closed and surfaces as ``unclosed
    transport <_SelectorSocketTransport>`` whenever the garbage collector runs.
    """
    with contextlib.suppress(Exception):  # a start_tls cut short: no transport
        if not writer.is_closing():
            writer.close()


def _abort(writer: asyncio.StreamWriter) -> None:
    # A start_tls cut short leaves a writer without a transport: nothing to abort then.
    with contextlib.suppress(Exception):
        writer.transport.abort()


async def _read_reply(reader: asyncio.StreamReader) -> list[bytes] | None:
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


def _dbg(*args: object) -> None:
    """Trace the proxy's decisions on stderr when FAULTPROXY_DEBUG is set."""
    if os.environ.get("FAULTPROXY_DEBUG"):
        print(f"{time.monotonic():.3f} faultproxy:", *args, file=sys.stderr, flush=True)


def _code(reply: list[bytes]) -> str:
    return reply[0][:3].decode("ascii", "replace")


class FaultProxy(LoopThread):
    """See the module docstring.  ``target_*`` is the real server; ``host`` our address."""

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

        self._server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_ctx.load_cert_chain(str(cert_file), str(key_file))
        self._upstream_ctx = ssl.create_default_context(cafile=str(ca_file))

        self._lock = threading.Lock()
        self._reset_state()

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._controls: set[_Control] = set()
        self._datas: set[_Data] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._port_owner: dict[int, _Control] = {}
        #: What asyncio would have logged (handshakes cut short...), one line each.
        self.loop_errors: list[str] = []
        self._active_controls = 0
        self._refusing = False

    # -- configuration and records ---------------------------------------------------

    _FAULTS = (
        "data_faults",
        "reply_faults",
        "drop_control_after",
        "drop_control_verb",
        "drop_control_times",
        "max_control_connections",
        "stall_replies",
        "inject_listing",
    )

    def _reset_state(self) -> None:
        self.data_faults: list[DataFault] = []
        self.reply_faults: list[ReplyFault] = []
        self.drop_control_after: int | None = None
        self.drop_control_verb: str | None = None
        self.drop_control_times = 1
        self.max_control_connections: int | None = None
        self.stall_replies = False
        self.inject_listing: list[str] = []
        self._drop_seen = 0
        self._drops_done = 0
        self._verb_counts: collections.Counter[str] = collections.Counter()
        # (verb, the value of its count that fires it, action)
        self._triggers: list[tuple[str, int, Callable[[], Any]]] = []
        #: What the proxy did: data_cut, data_cut_missed, data_truncated, data_stalled,
        #: control_drop,
        #: refused_421, reply_synthetic, reply_rewritten, stalled_replies,
        #: listing_injected, restart.
        self.injected: collections.Counter[str] = collections.Counter()
        self.commands: list[tuple[int, str]] = []  # (control connection number, command)
        self.control_connections = 0
        self.data_connections = 0

    def configure(self, **faults: Any) -> None:
        """Set faults (names as in the module docstring); the rest stay as they are."""
        unknown = set(faults) - set(self._FAULTS)
        if unknown:
            raise TypeError(f"unknown faults: {sorted(unknown)}")
        with self._lock:
            for name, value in faults.items():
                if name in ("data_faults", "reply_faults", "inject_listing"):
                    value = list(value)
                setattr(self, name, value)
            if "drop_control_after" in faults or "drop_control_verb" in faults:
                self._drop_seen = 0
                self._drops_done = 0

    def reset(self) -> None:
        """Remove every fault and forget every record (open connections stay)."""
        with self._lock:
            self._reset_state()

    def count(self, what: str) -> int:
        with self._lock:
            return self.injected[what]

    def _inc(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.injected[what] += n

    def commands_of(self, verb: str) -> list[str]:
        with self._lock:
            return [c for _, c in self.commands if c.split(" ", 1)[0].upper() == verb.upper()]

    def at_command(self, verb: str, nth: int, action: Callable[[], Any]) -> None:
        """Call ``action()`` (on the proxy's loop) when the ``nth`` ``verb`` command arrives.

        Counted over all control connections from now on; an awaitable result is run
        as its own task.  The command itself is then handled as usual.
        """
        with self._lock:
            verb = verb.upper()
            self._triggers.append((verb, self._verb_counts[verb] + nth, action))

    # -- lifecycle -----------------------------------------------------------------

    def new_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_quiet_handler(self.loop_errors))
        return loop

    async def start(self) -> int:
        await self._listen()
        return self.port

    async def _listen(self) -> None:
        control = await asyncio.start_server(
            self._handle_control, self.host, self.port, limit=_LIMIT, reuse_address=True
        )
        self.port = control.sockets[0].getsockname()[1]
        servers = [control]
        try:
            for p in range(self.passive_ports[0], self.passive_ports[1] + 1):
                # Data connections are TLS from their first byte (PROT P): let asyncio
                # do the handshake before the handler runs, so no byte of it can land in
                # a plaintext buffer first.
                servers.append(
                    await asyncio.start_server(
                        self._data_handler(p),
                        self.host,
                        p,
                        limit=_LIMIT,
                        reuse_address=True,
                        ssl=self._server_ctx,
                        ssl_handshake_timeout=_HANDSHAKE_TIMEOUT,
                    )
                )
        except BaseException:
            for s in servers:
                s.close()
            raise
        self._servers = servers

    async def _unlisten(self) -> None:
        servers, self._servers = self._servers, []
        for s in servers:
            s.close()
        self._cut_everything()
        for s in servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(s.wait_closed(), 5)

    def _cut_everything(self) -> None:
        for conn in list(self._controls):
            conn.closed = True
            _reset([w.get_extra_info("socket") for w in conn.writers()], conn.writers())
        for data in list(self._datas):
            _reset(data.sockets, data.writers())

    async def close(self) -> None:
        await self._unlisten()
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)

    def _call(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the proxy's loop, from any thread (or from the loop itself)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the proxy is not running in a thread")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._run_action(fn)
        else:
            loop.call_soon_threadsafe(self._run_action, fn)

    def _run_action(self, fn: Callable[[], Any]) -> None:
        result = fn()
        if isinstance(result, Awaitable):
            self._spawn(result)

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- faults triggered from outside ------------------------------------------------

    def drop_control_connections(self) -> None:
        """Reset every open control connection now (both sides).  Any thread."""
        self._call(self._drop_all_controls)

    def _drop_all_controls(self) -> None:
        for conn in list(self._controls):
            self._drop(conn)

    def _drop(self, conn: _Control) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._inc("control_drop")
        _reset([w.get_extra_info("socket") for w in conn.writers()], conn.writers())

    def restart(self, seconds: float) -> None:
        """Cut all connections; refuse new ones for ``seconds``; then listen again."""
        self._call(lambda: self._restart(seconds))

    async def _restart(self, seconds: float) -> None:
        if self._refusing:
            return
        self._refusing = True
        self._inc("restart")
        try:
            await self._unlisten()
            await asyncio.sleep(seconds)
            for _ in range(50):
                try:
                    await self._listen()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
        finally:
            self._refusing = False

    @property
    def restarting(self) -> bool:
        """True while a :meth:`restart` refuses connections."""
        return self._refusing

    def stall(self, on: bool = True) -> None:
        """Start (or stop) swallowing every server reply.  Any thread."""
        with self._lock:
            self.stall_replies = on

    # -- control connections --------------------------------------------------------

    async def _handle_control(
        self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        with self._lock:
            self.control_connections += 1
            number = self.control_connections
            limit = self.max_control_connections
        conn = _Control(number, creader, cwriter)
        try:
            if limit is not None and self._active_controls >= limit:
                self._inc("refused_421")
                cwriter.write(b"421 Too many connections (%d) from this IP\r\n" % limit)
                with contextlib.suppress(OSError):
                    await cwriter.drain()
                return
            self._active_controls += 1
            self._controls.add(conn)
            try:
                await self._serve_control(conn)
            finally:
                self._active_controls -= 1
                self._controls.discard(conn)
        except Exception as exc:  # a cut connection, usually: never let asyncio log it
            _dbg("control connection ended:", repr(exc))
        except asyncio.CancelledError:
            pass  # only close() cancels; do not let asyncio log it
        finally:
            if not conn.closed:
                conn.closed = True
                for writer in conn.writers():
                    _close(writer)
                for writer in conn.writers():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(writer.wait_closed(), 2)
            for writer in conn.writers():
                _abort(writer)
            for port, owner in list(self._port_owner.items()):
                if owner is conn:
                    del self._port_owner[port]
            self._tasks.discard(task)

    async def _serve_control(self, conn: _Control) -> None:
        ureader, uwriter = await asyncio.open_connection(
            self.target_host, self.target_port, limit=_LIMIT
        )
        conn.ureader, conn.uwriter = ureader, uwriter
        banner = await _read_reply(ureader)
        if banner is None:
            return
        await self._to_client(conn, banner)
        # Plaintext: one command, one reply, until AUTH TLS succeeds.
        while not conn.tls:
            raw = await conn.creader.readline()
            if not raw.endswith(b"\n"):
                return
            command = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
            if self._on_command(conn, command):
                return
            uwriter.write(raw)
            await uwriter.drain()
            reply = await _read_reply(ureader)
            while reply is not None and _code(reply).startswith("1"):
                await self._to_client(conn, reply)
                reply = await _read_reply(ureader)
            if reply is None:
                return
            if command.split(" ", 1)[0].upper() == "AUTH" and _code(reply) == "234":
                await _start_tls(uwriter, self._upstream_ctx, server_hostname=self.target_host)
                # Nothing the client sends after 234 may land in the plaintext reader.
                conn.cwriter.transport.pause_reading()
                await self._to_client(conn, reply)
                await _start_tls(conn.cwriter, self._server_ctx)
                conn.tls = True
            else:
                await self._to_client(conn, reply)
        commands = asyncio.ensure_future(self._pump_commands(conn))
        replies = asyncio.ensure_future(self._pump_replies(conn))
        try:
            await asyncio.wait({commands, replies}, return_when=asyncio.FIRST_COMPLETED)
            # One side ended: give the other a moment to pass on what is in flight.
            await asyncio.wait({commands, replies}, timeout=2)
        finally:
            for t in (commands, replies):
                t.cancel()
            await asyncio.gather(commands, replies, return_exceptions=True)

    def _on_command(self, conn: _Control, command: str) -> bool:
        """Record a command, run triggers; True when the connection was dropped for it."""
        verb = command.split(" ", 1)[0].upper()
        shown = "PASS ****" if verb == "PASS" else command
        actions: list[Callable[[], Any]] = []
        drop = False
        with self._lock:
            self.commands.append((conn.number, shown))
            self._verb_counts[verb] += 1
            for t_verb, nth, action in list(self._triggers):
                if t_verb == verb and self._verb_counts[verb] == nth:
                    actions.append(action)
                    self._triggers.remove((t_verb, nth, action))
            if self.drop_control_after is not None and (
                self.drop_control_verb is None or self.drop_control_verb.upper() == verb
            ):
                self._drop_seen += 1
                if (
                    self._drop_seen >= self.drop_control_after
                    and self._drops_done < self.drop_control_times
                ):
                    self._drops_done += 1
                    self._drop_seen = 0
                    drop = True
        for action in actions:
            self._run_action(action)
        if drop:
            self._drop(conn)
        return drop or conn.closed

    async def _to_client(self, conn: _Control, reply: list[bytes]) -> None:
        if self.stall_replies:
            self._inc("stalled_replies")
            return
        conn.cwriter.write(b"".join(reply))
        await conn.cwriter.drain()

    def _reply_fault(self, verb: str, argument: str) -> ReplyFault | None:
        chosen = None
        with self._lock:
            for fault in self.reply_faults:
                if fault._check(verb, argument) and chosen is None:
                    fault.fired += 1
                    chosen = fault
        return chosen

    async def _pump_commands(self, conn: _Control) -> None:
        assert conn.uwriter is not None
        try:
            while True:
                raw = await conn.creader.readline()
                if not raw.endswith(b"\n"):
                    break
                command = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
                verb, _, argument = command.partition(" ")
                verb = verb.upper()
                _dbg("cmd", conn.number, command)
                if self._on_command(conn, command):
                    return
                if verb in _TRANSFER_VERBS:
                    conn.transfer = (verb, argument)
                fault = self._reply_fault(verb, argument)
                if fault is not None and not fault.forward:
                    self._inc("reply_synthetic")
                    conn.pending.append(_Pending(command, synthetic=fault.reply))
                    await self._flush_synthetic(conn)
                    continue
                conn.pending.append(_Pending(command, rewrite=fault.reply if fault else None))
                conn.uwriter.write(raw)
                await conn.uwriter.drain()
        finally:
            if not conn.closed:
                _close(conn.uwriter)

    async def _flush_synthetic(self, conn: _Control) -> None:
        while conn.pending and conn.pending[0].synthetic is not None:
            entry = conn.pending.popleft()
            assert entry.synthetic is not None
            await self._to_client(conn, [entry.synthetic.encode() + b"\r\n"])

    async def _pump_replies(self, conn: _Control) -> None:
        assert conn.ureader is not None
        try:
            while True:
                reply = await _read_reply(conn.ureader)
                if reply is None:
                    break
                code = _code(reply)
                _dbg("reply", conn.number, reply)
                if code.startswith("1"):
                    await self._to_client(conn, reply)
                    continue
                entry = conn.pending.popleft() if conn.pending else None
                if entry is not None and entry.rewrite is not None:
                    self._inc("reply_rewritten")
                    reply = [entry.rewrite.encode() + b"\r\n"]
                elif code in ("227", "229"):
                    self._learn_port(conn, reply[0])
                await self._to_client(conn, reply)
                await self._flush_synthetic(conn)
        finally:
            if not conn.closed:
                _close(conn.cwriter)

    def _learn_port(self, conn: _Control, line: bytes) -> None:
        m = _EPSV_RE.search(line)
        if m is not None:
            port = int(m.group(1))
        else:
            m = _PASV_RE.search(line)
            if m is None:
                return
            port = int(m.group(5)) * 256 + int(m.group(6))
        self._port_owner[port] = conn

    # -- data connections --------------------------------------------------------------

    def _data_handler(
        self, port: int
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
            await self._handle_data(port, creader, cwriter)

        return handle

    async def _handle_data(
        self, port: int, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        data = _Data(cwriter)
        self._datas.add(data)
        with self._lock:
            self.data_connections += 1
        try:
            conn = self._port_owner.get(port)
            _dbg("data accept", port, conn and conn.number)
            if conn is None or conn.closed:
                _reset(data.sockets, data.writers())
                return
            await self._serve_data(conn, data, port, creader, cwriter)
        except (Exception, asyncio.CancelledError) as exc:  # never let asyncio log it
            _dbg("data connection ended:", repr(exc))
            _reset(data.sockets, data.writers())
        finally:
            for writer in data.writers():
                _abort(writer)
            self._datas.discard(data)
            self._tasks.discard(task)

    async def _serve_data(
        self,
        conn: _Control,
        data: _Data,
        port: int,
        creader: asyncio.StreamReader,
        cwriter: asyncio.StreamWriter,
    ) -> None:
        session = conn.upstream_session()
        ctx: ssl.SSLContext = self._upstream_ctx
        if session is not None:
            ctx = SSLSessionBoundContext(
                ssl.PROTOCOL_TLS_CLIENT, context=self._upstream_ctx, session=session
            )
        # TLS from the first byte; the server answers the handshake once it has the
        # transfer command.
        ureader, uwriter = await asyncio.wait_for(
            asyncio.open_connection(
                self.target_host,
                port,
                limit=_LIMIT,
                ssl=ctx,
                server_hostname=self.target_host,
                ssl_handshake_timeout=_HANDSHAKE_TIMEOUT,
            ),
            _HANDSHAKE_TIMEOUT + 1,
        )
        data.uwriter = uwriter
        data.sockets.append(uwriter.get_extra_info("socket"))

        verb, argument = conn.transfer
        _dbg("data handshakes done", port, verb, argument)
        fault: DataFault | None = None
        with self._lock:
            for candidate in self.data_faults:
                if candidate._check(verb, argument) and fault is None:
                    candidate.fired += 1
                    fault = candidate
        inject = list(self.inject_listing) if verb in _LISTING_VERBS else []
        state = {"total": 0, "cut": False, "dropped": 0}

        async def pump(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upward: bool
        ) -> None:
            while True:
                chunk = await reader.read(_CHUNK)
                if not chunk:
                    break
                if fault is not None and fault.action == "cut":
                    room = fault.after - state["total"]
                    if len(chunk) >= room:
                        if room > 0:
                            writer.write(chunk[:room])
                            await writer.drain()
                        state["total"] += max(room, 0)
                        state["cut"] = True
                        self._inc("data_cut")
                        _reset(data.sockets, data.writers())
                        return
                elif fault is not None and fault.action == "drop_control":
                    if state["total"] + len(chunk) >= fault.after and not conn.closed:
                        writer.write(chunk[: max(0, fault.after - state["total"])])
                        await writer.drain()
                        self._drop(conn)
                        state["cut"] = True
                        self._inc("data_control_drop")
                        return
                elif fault is not None and fault.action == "stall" and upward:
                    room = max(0, fault.after - state["total"])
                    if len(chunk) >= room:
                        writer.write(chunk[:room])
                        await writer.drain()
                        state["total"] += room
                        state["cut"] = True
                        self._inc("data_stalled")
                        stop = time.monotonic() + _STALL_LIMIT
                        # conn.closed is a plain flag that several paths set: poll it.
                        while not conn.closed and time.monotonic() < stop:  # noqa: ASYNC110
                            await asyncio.sleep(0.02)
                        break
                elif fault is not None and upward:  # truncate
                    room = max(0, fault.after - state["total"])
                    if len(chunk) > room:
                        state["dropped"] += len(chunk) - room
                        chunk = chunk[:room]
                state["total"] += len(chunk)
                if chunk:
                    writer.write(chunk)
                    await writer.drain()
            if inject and not upward:
                writer.write("".join(line + "\r\n" for line in inject).encode("utf-8"))
                await writer.drain()
                self._inc("listing_injected")
            _close(writer)
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
        if fault is not None and fault.action != "truncate" and not state["cut"]:
            self._inc("data_cut_missed")
            with self._lock:
                fault.missed += 1
        if fault is not None and fault.action == "truncate" and state["dropped"]:
            self._inc("data_truncated")


# --- a server with a fault proxy in front of it --------------------------------------


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


# --- a tiny plaintext FTP server ------------------------------------------------------


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
        loop.set_exception_handler(_quiet_handler([]))
        return loop

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            _abort(w)
        await asyncio.sleep(0)

    def __enter__(self) -> FakePlainServer:
        self.start_in_thread()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_thread()


@contextlib.contextmanager
def fault_server(workdir: Path, **kwargs: Any) -> Iterator[tuple[ProftpdServer, FaultProxy]]:
    """:func:`start_fault_server` as a context manager."""
    server, proxy = start_fault_server(workdir, **kwargs)
    try:
        yield server, proxy
    finally:
        proxy.stop_thread()
        server.stop()
