"""Data connections, done in the order real FTPS servers need.

This replaces aioftp's ``get_stream()``/``upload_stream()``, which open the
passive connection *with* TLS and wait for the handshake before sending
``STOR``.  ProFTPD and vsftpd only start the data connection's TLS after they
have received the transfer command, so that order deadlocks until a timeout.

The order used here, for one transfer:

1. the passive address is already known (``EPSV``/``PASV`` was answered);
2. send the transfer command (``STOR``, ``MLSD``, ``LIST``) on the control
   connection and, *at the same time*, connect TCP to the passive port and run
   the TLS handshake on it, resuming the control connection's TLS session
   (servers reject data connections that do not);
3. whichever finishes first decides: an error reply (e.g. ``553``) cancels the
   handshake at once instead of waiting for it to time out;
4. move the bytes, send ``close_notify`` and the TCP FIN back to back, and
   read the final ``226``.

TLS runs on memory BIOs over a plain socket (:class:`transport.DataTLS`):
asyncio's TLS transport holds the FIN until the server's close_notify, which
ProFTPD only sends after our FIN -- a round trip lost per file.

Every wait is bounded by the session's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Sequence

from . import digests, errors, transport
from .replies import Reply
from .session import Session
from .taskgroups import task_group

#: Chunk size for file data: large writes keep TLS record overhead and syscalls low.
CHUNK = 256 * 1024
#: An upload whose socket always has room never waits, so it would keep the event
#: loop to itself: other sessions' replies, data connections and timers would
#: wait for the whole file.  It lets the others run after this many bytes.
FAIR_SHARE = 4 * 1024 * 1024


class DataStats:
    """What one transfer got to; filled in as it goes."""

    __slots__ = ("also", "bytes", "digest", "opened", "replied", "reused", "sent", "stored")

    def __init__(self, also: Sequence[digests.Hasher] = ()) -> None:
        self.bytes = 0
        self.reused = False
        self.digest = ""  # of the bytes sent (digests.DEFAULT), for the state file
        #: More hashers fed the bytes sent (--checksum: the server's algorithms).
        self.also = tuple(also)
        self.sent = False  # the transfer command went out: ProFTPD truncates on STOR
        self.opened = False
        self.replied = False  # the transfer's final reply has been read
        self.stored = False  # ... and it was a 2xx: the server holds what was sent


@contextlib.asynccontextmanager
async def _open(
    session: Session, command: str, address: tuple[str, int], stats: DataStats | None = None
) -> AsyncIterator[tuple[transport.DataTLS, DataStats]]:
    """Send ``command`` and bring up its TLS data connection concurrently.

    Both run in one task group: a refusal of the command (or a lost control
    connection) cancels the handshake at once.  A failed data connection does
    not cancel the reply: the server explains it there (e.g. ``425``), and
    reading that reply keeps the control connection in step.
    """
    timeout = session.config.timeout
    host, port = address
    stats = stats if stats is not None else DataStats()
    what = f"data connection for {command.split()[0]}"
    data: transport.DataTLS | None = None  # owned by this block from the TCP connect on
    data_error: errors.AsyncMirrorError | None = None

    async def connect() -> None:
        nonlocal data, data_error
        try:
            with transport.translate_errors(what):
                data = await transport.DataTLS.connect(
                    host,
                    port,
                    session.tls_context,
                    session.config.host,
                    session.tls_session,
                    timeout,
                )
                await data.handshake()
        except errors.AsyncMirrorError as exc:
            data_error = exc  # the control connection says why: see below

    async def first_reply() -> Reply | None:
        try:
            reply = await session.read_reply()
        except errors.AsyncMirrorError:
            if data_error is not None:
                return None  # the data connection's failure is the one to report
            raise  # a lost control connection: the group cancels the handshake
        if not reply.is_preliminary and data_error is None:
            # The server refused the command; it will never accept TLS on data.
            session.check(command, reply, "1")
        return reply

    stats.sent = True  # before the write: a send that fails may still have sent it
    # Commands riding with this one (session.send_with_next_transfer) go in the
    # same write; the session files their replies for their owner as it reads.
    await session.send_transfer(command)
    try:
        async with task_group() as tg:
            replied = tg.start(first_reply())
            tg.start(connect())
        reply = replied.result()
        if data_error is not None:
            # Prefer the server's words for the failure, and keep the replies in step.
            if reply is not None and reply.is_preliminary:
                reply = await _next_final(session)
            if reply is not None and not reply.is_complete:
                session.check(command, reply, "2")
            session.mark_broken()
            raise data_error from None
        # Here the reply is a 1xx (first_reply raised for any other) and data is up.
        assert reply is not None
        assert data is not None
        stats.reused = data.session_reused
        stats.opened = True  # from here on the server may hold a partial file
        try:
            yield data, stats
        except errors.AsyncMirrorError:
            # The transfer broke after the 150: the server still owes its final
            # reply (426/451).  Read it, or the next command would read it.
            data.abort()
            if not stats.replied:
                await _drain_final(session)
            raise
    except BaseException as exc:
        if not isinstance(exc, errors.AsyncMirrorError):
            # Cancelled mid-transfer: the server owes replies nobody will read, and
            # may not read a QUIT before the transfer ends.  Close, do not say goodbye.
            session.mark_broken()
        raise
    finally:
        if data is not None:
            data.abort()


async def _drain_final(session: Session) -> None:
    if session.broken:
        return
    try:
        async with asyncio.timeout(min(session.config.timeout, 5.0)):
            reply = await session.read_reply()
            while reply.is_preliminary:
                reply = await session.read_reply()
    except (errors.AsyncMirrorError, TimeoutError):
        session.mark_broken()


async def _next_final(session: Session) -> Reply | None:
    try:
        return await session.read_reply()
    except errors.AsyncMirrorError:
        return None


#: Pause between the end of an upload and its passive command sent ahead: long
#: enough for the server to see the end of the data first, short next to any
#: round trip.
AHEAD_GAP = 0.002


async def _finish(
    session: Session,
    command: str,
    data: transport.DataTLS,
    stats: DataStats,
    *,
    passive_ahead: bool = False,
) -> Reply:
    """Close the data stream (close_notify + FIN) and read the transfer's final reply.

    With ``passive_ahead`` the next transfer's EPSV/PASV goes out right after
    the data, before the ``226``: if the server has finished by the time it
    arrives, the next passive address comes one round trip sooner.  ProFTPD
    answers one that arrives mid-transfer with ``450 ... data transfer in
    progress``; then it is simply sent again later (nothing lost).  The
    session's pipeline pairs those replies (:mod:`asyncmirror.pipeline`) and
    drops the session when a failure leaves them unpairable.  Only the
    passive command goes ahead: ProFTPD would *execute* MFMT or SIZE
    mid-transfer.
    """
    with transport.translate_errors(f"closing the data connection for {command.split()[0]}"):
        await data.close()
    if passive_ahead:
        await asyncio.sleep(AHEAD_GAP)
        await session.send_passive_ahead()
    reply = await session.read_reply()
    stats.replied = True
    stats.stored = reply.is_complete
    session.check(command, reply, "2")
    return reply


async def upload(
    session: Session,
    remote_path: str,
    source: str | bytes,
    address: tuple[str, int],
    stats: DataStats | None = None,
) -> DataStats:
    """``STOR`` a local file (``source`` is its path) or in-memory bytes to ``remote_path``.

    The file is read as it is at upload time and hashed on the way (for the
    state file: :mod:`~asyncmirror.digests`, at memory speed, so the bytes
    hashed are exactly the bytes sent).  If it changes while it is being
    read, the upload is reported as a retryable :class:`~errors.VerifyError`
    and sent again.
    The caller verifies the size on the server afterwards.
    """
    command = f"STOR {remote_path}"
    digest = digests.new()
    if isinstance(source, bytes):
        async with _open(session, command, address, stats) as (data, stats):
            with transport.translate_errors(f"upload {remote_path}"):
                await data.send(source)
            stats.bytes = len(source)
            await _finish(session, command, data, stats)
        for h in (digest, *stats.also):
            h.update(source)
        stats.digest = digest.hexdigest()
        return stats
    try:
        fd = os.open(source, os.O_RDONLY)
        before = os.fstat(fd)
    except OSError as exc:
        raise errors.LocalFileError(f"cannot read {source}: {exc.strerror}") from None
    try:
        async with _open(session, command, address, stats) as (data, stats):
            with transport.translate_errors(f"upload {remote_path}"):
                # One buffer for the whole file: a fresh 256 KiB object per read came
                # from mmap and cost a page fault per 4 KiB (~8 % of the CPU of a large
                # upload, measured).  send() encrypts it before it returns, so the next
                # read may overwrite it.  Small files get a small one (+1: the read
                # that says end of file).
                buffer = bytearray(min(CHUNK, before.st_size + 1))
                view = memoryview(buffer)
                share = FAIR_SHARE
                while True:
                    try:
                        n = os.readv(fd, (buffer,))
                    except OSError as exc:
                        raise errors.LocalFileError(
                            f"cannot read {source}: {exc.strerror}"
                        ) from None
                    if not n:
                        break
                    chunk = view[:n]
                    if n == len(buffer) < CHUNK:  # it grew since fstat: read in full chunks
                        buffer = bytearray(CHUNK)
                        view = memoryview(buffer)
                    await data.send(chunk)
                    digest.update(chunk)
                    for h in stats.also:
                        h.update(chunk)
                    stats.bytes += n
                    share -= n
                    if share <= 0:
                        share = FAIR_SHARE
                        await asyncio.sleep(0)
            await _finish(session, command, data, stats, passive_ahead=session.passive_ahead_wanted)
        try:
            after: os.stat_result | None = os.stat(source)
        except OSError:
            after = None  # deleted meanwhile: also a change
    finally:
        os.close(fd)
    if (
        after is None
        or (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns)
        or stats.bytes != after.st_size
    ):
        raise errors.VerifyError(f"{source} changed while it was being uploaded")
    stats.digest = digest.hexdigest()
    return stats


async def fetch(session: Session, command: str, address: tuple[str, int]) -> bytes:
    """Run a listing or download command (``MLSD dir``, ``LIST``, ``RETR``); its data."""
    chunks: list[bytes] = []
    await fetch_into(session, command, address, chunks.append)
    return b"".join(chunks)


async def fetch_into(
    session: Session, command: str, address: tuple[str, int], sink: Callable[[bytes], object]
) -> int:
    """Run a download command, handing each chunk to ``sink`` as it arrives
    (a file of any size in constant memory); the number of bytes.

    Like an upload, it sends the next EPSV/PASV ahead of its ``226`` when the
    worker running it asks for that (``--verify``'s downloads, one file after
    another on each session)."""
    total = 0
    async with _open(session, command, address) as (data, stats):
        with transport.translate_errors(f"{command.split()[0]} data"):
            while chunk := await data.recv():
                sink(chunk)
                total += len(chunk)
        await _finish(session, command, data, stats, passive_ahead=session.passive_ahead_wanted)
    return total
