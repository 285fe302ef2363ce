"""Idle sessions kept alive with ``NOOP`` while the run does something long elsewhere.

Shared hosts drop a control connection idle for a few seconds to a few minutes
(ProFTPD's ``TimeoutIdle``).  A run's sessions idle while it scans a large
tree, hashes large files or waits for another run's deploy lock; a dropped
session costs a new login (and, on a host with a connection limit, maybe its
slot).  :func:`kept_alive` owns one task that pings the sessions it is given --
only sessions nobody else uses meanwhile -- and ends it cleanly: a ``NOOP``
already sent is answered before the block is left, so no reply is left owed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from . import errors
from .session import Session

#: Seconds between two NOOPs on an idle session: below the shortest idle timeouts
#: seen on shared hosts (ProFTPD's TimeoutIdle is often set to 10 s or more).
EVERY = 2.0


@contextlib.asynccontextmanager
async def kept_alive(sessions: Sequence[Session], every: float = EVERY) -> AsyncIterator[None]:
    """Ping ``sessions`` every ``every`` seconds until the block ends."""
    if not sessions:
        yield
        return
    stop = asyncio.Event()

    async def ping() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await stop.wait()
            if stop.is_set():
                return
            for session in sessions:
                if session.broken:
                    continue
                try:
                    await session.command("NOOP")
                except errors.AsyncMirrorError:
                    session.mark_broken()  # replaced by whoever uses it next

    task = asyncio.create_task(ping())
    try:
        yield
    finally:
        stop.set()
        # Not cancelled: a NOOP in flight is answered first (one round trip, bounded
        # by the session's timeout), so its reply is not left for the next command.
        try:
            await task
        except BaseException:
            task.cancel()
            raise
