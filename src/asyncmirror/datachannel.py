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
4. move the bytes, close the TLS stream properly (``close_notify``), and read
   the final ``226``.

Every wait is bounded by the session's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from . import errors, transport
from .replies import Reply
from .session import Session

#: Chunk size for file data: large writes keep TLS record overhead and syscalls low.
CHUNK = 256 * 1024


@dataclass(slots=True)
class DataStats:
    bytes: int = 0
    reused: bool = False
    sha256: str = ""
    opened: bool = False


@contextlib.asynccontextmanager
async def _open(
    session: Session, command: str, address: tuple[str, int], stats: DataStats | None = None
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, DataStats]]:
    """Send ``command`` and bring up its TLS data connection concurrently."""
    timeout = session.config.timeout
    host, port = address
    stats = stats if stats is not None else DataStats()

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await transport.open_tcp(host, port, timeout)
        try:
            with transport.translate_errors(f"TLS on data connection for {command.split()[0]}"):
                await writer.start_tls(
                    session.data_tls_context(),
                    server_hostname=session.config.host,
                    ssl_handshake_timeout=timeout,
                )
        except BaseException:
            transport.abort(writer)
            raise
        return reader, writer

    await session.send(command)
    reply_task: asyncio.Task[Reply] = asyncio.ensure_future(_preliminary(session))
    data_task = asyncio.ensure_future(connect())
    writer: asyncio.StreamWriter | None = None
    try:
        done, _ = await asyncio.wait({reply_task, data_task}, return_when=asyncio.FIRST_COMPLETED)
        if reply_task in done:
            reply = reply_task.result()  # a lost control connection raises here
            if not reply.is_preliminary:
                # The server refused the command; it will never accept TLS on data.
                data_task.cancel()
                session.check(command, reply, "1")
        try:
            reader, writer = await data_task
        except errors.AsyncMirrorError as data_error:
            # The server explains a failed data connection on the control
            # connection (e.g. 425); prefer its words, and keep the replies in step.
            explained = await _settle(reply_task)
            if explained is not None and explained.is_preliminary:
                explained = await _next_final(session)
            if explained is not None and not explained.is_complete:
                session.check(command, explained, "2")
            session.broken = True
            raise data_error from None
        reply = await reply_task
        session.check(command, reply, "1")
        stats.reused = transport.session_reused(writer)
        stats.opened = True  # from here on the server may hold a partial file
        yield reader, writer, stats
    except BaseException:
        for task in (reply_task, data_task):
            task.cancel()
        transport.abort(writer)
        if data_task.done() and not data_task.cancelled() and data_task.exception() is None:
            # Connected just as we were cancelled: the result was never taken.
            transport.abort(data_task.result()[1])
        raise


async def _preliminary(session: Session) -> Reply:
    return await session.read_reply()


async def _settle(task: asyncio.Task[Reply]) -> Reply | None:
    try:
        return await task
    except errors.AsyncMirrorError:
        return None


async def _next_final(session: Session) -> Reply | None:
    try:
        return await session.read_reply()
    except errors.AsyncMirrorError:
        return None


async def _finish(session: Session, command: str, writer: asyncio.StreamWriter) -> Reply:
    """Close the data stream (TLS close_notify) and read the transfer's final reply."""
    timeout = session.config.timeout
    writer.close()
    try:
        reply = await session.read_reply()
    finally:
        # The server has already replied; give the TLS goodbye a moment, then drop it.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(min(timeout, 2.0)):
                await writer.wait_closed()
        transport.abort(writer)
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

    The file is read as it is at upload time and hashed on the way (SHA-256,
    for the state file).  If it changes while it is being read, the upload is
    reported as a retryable :class:`~errors.VerifyError` and sent again.
    The caller verifies the size on the server afterwards.
    """
    command = f"STOR {remote_path}"
    digest = hashlib.sha256()
    if isinstance(source, bytes):
        async with _open(session, command, address, stats) as (_, writer, stats):
            with transport.translate_errors(f"upload {remote_path}"):
                writer.write(source)
                stats.bytes = len(source)
                async with asyncio.timeout(session.config.timeout):
                    await writer.drain()
            await _finish(session, command, writer)
        digest.update(source)
        stats.sha256 = digest.hexdigest()
        return stats
    try:
        fd = os.open(source, os.O_RDONLY)
        before = os.fstat(fd)
    except OSError as exc:
        raise errors.LocalFileError(f"cannot read {source}: {exc.strerror}") from None
    try:
        async with _open(session, command, address, stats) as (_, writer, stats):
            with transport.translate_errors(f"upload {remote_path}"):
                while True:
                    try:
                        chunk = os.read(fd, CHUNK)
                    except OSError as exc:
                        raise errors.LocalFileError(
                            f"cannot read {source}: {exc.strerror}"
                        ) from None
                    if not chunk:
                        break
                    writer.write(chunk)
                    digest.update(chunk)
                    stats.bytes += len(chunk)
                    async with asyncio.timeout(session.config.timeout):
                        await writer.drain()
            await _finish(session, command, writer)
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
    stats.sha256 = digest.hexdigest()
    return stats


async def fetch(session: Session, command: str, address: tuple[str, int]) -> bytes:
    """Run a listing command (``MLSD dir``, ``LIST``) and return its data."""
    chunks: list[bytes] = []
    async with _open(session, command, address) as (reader, writer, _):
        with transport.translate_errors(f"{command.split()[0]} data"):
            while True:
                async with asyncio.timeout(session.config.timeout):
                    chunk = await reader.read(CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
        await _finish(session, command, writer)
    return b"".join(chunks)
