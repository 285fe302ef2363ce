"""The deploy lock: one run at a time changes a DST.

Two pushes in a row start two deploys at once; interleaved, they leave a mix of
both.  Before changing anything a run creates ``DST/.htasyncmirror-lock`` with
``MKD`` -- atomic on every FTP server: of two runs exactly one gets ``257`` --
and writes who holds it (host, pid, start time, version, run id) into
``holder.json`` inside.  Apache refuses ``.ht*`` names by default, so nobody
downloads it.  The run removes the lock at the end, also after a failure or a
stop.

A second run reads the holder, says who it is, and waits up to ``--lock-wait``
seconds (default: no wait, exit 1).  A lock older than ``--lock-stale`` -- the
run that took it died without its clean-up -- or any lock with
``--break-lock`` is taken over with a warning: remove it, then ``MKD`` again,
so two runs taking over at once still end with one holder.

The record and the decision are pure (:class:`Holder`, :func:`decide`); the
round trips are in :class:`DeployLock`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import NamedTuple

from . import datachannel, errors
from .session import Session

LOCK_DIR = ".htasyncmirror-lock"
HOLDER_FILE = "holder.json"
#: A run writes its holder record right after its MKD; a lock still without
#: one this long after it was first seen belongs to a run that died there.
EMPTY_GRACE = 2.0
#: How often a waiting run looks at the lock again.
POLL = 2.0


class Holder(NamedTuple):
    """Who holds the lock.  ``started`` is seconds since the epoch (UTC)."""

    host: str
    pid: int
    started: float
    version: str
    run_id: str

    @classmethod
    def of_this_run(cls, run_id: str, version: str) -> Holder:
        return cls(socket.gethostname(), os.getpid(), time.time(), version, run_id)

    def encode(self) -> bytes:
        return json.dumps(self._asdict(), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> Holder | None:
        """The record, or ``None`` when it is not one (torn, foreign, garbage)."""
        try:
            raw = json.loads(data)
            return cls(
                host=str(raw["host"]),
                pid=int(raw["pid"]),
                started=float(raw["started"]),
                version=str(raw["version"]),
                run_id=str(raw["run_id"]),
            )
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self, now: float) -> str:
        """``host ci-7 (pid 42), started 2026-12-06 07:31 UTC (5 min ago), asyncmirror 0.2``."""
        when = datetime.fromtimestamp(self.started, UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (
            f"host {self.host} (pid {self.pid}), started {when} "
            f"({_ago(now - self.started)}), asyncmirror {self.version}"
        )


def _ago(seconds: float) -> str:
    if seconds < 0:
        return "in the future: check the clocks"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


class Verdict(Enum):
    WAIT = "wait"  # a live run holds it
    TAKE_OVER = "take over"  # stale, or --break-lock


def decide(holder: Holder | None, *, now: float, stale_after: float, break_lock: bool) -> Verdict:
    """What to do about a lock someone else holds.

    ``holder`` is ``None`` for a lock with no readable record after
    :data:`EMPTY_GRACE`: its run died between ``MKD`` and writing the record.
    """
    if break_lock or holder is None or now - holder.started > stale_after:
        return Verdict.TAKE_OVER
    return Verdict.WAIT


class DeployLock:
    """Take and release ``DST/.htasyncmirror-lock`` over one session."""

    def __init__(
        self,
        base: str,
        *,
        run_id: str,
        version: str,
        wait: float = 0.0,
        stale_after: float = 3 * 3600.0,
        break_lock: bool = False,
        note: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.dir = f"{base.rstrip('/')}/{LOCK_DIR}"
        self.record = f"{self.dir}/{HOLDER_FILE}"
        self.me = Holder.of_this_run(run_id, version)
        self.wait = wait
        self.stale_after = stale_after
        self.break_lock = break_lock
        self._note = note
        self.held = False

    async def acquire(self, session: Session) -> None:
        """Hold the lock, waiting for it up to ``wait`` seconds.

        Raises :class:`~errors.LockHeldError` when another run keeps it, and
        :class:`~errors.RemoteTargetError` when DST refuses the lock directory
        (not writable, or a file): nothing has been changed then.
        """
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.wait
        said_waiting = False
        while True:
            reply = await session.command(f"MKD {self.dir}")
            if reply.is_complete:
                self.held = True
                await self._write_record(session)
                return
            session.check(f"MKD {self.dir}", reply, "5")  # a 4xx is raised: retried
            holder, exists = await self._look(session)
            if not exists:
                raise errors.RemoteTargetError(
                    f"cannot create the deploy lock {self.dir} ({reply.code} {reply.text})",
                    hint="check that DST is a directory the FTP user may write to",
                )
            now = time.time()
            verdict = decide(
                holder, now=now, stale_after=self.stale_after, break_lock=self.break_lock
            )
            if verdict is Verdict.TAKE_OVER:
                self._note(self._take_over_line(holder, now))
                await self._remove(session)
                continue  # MKD again: of two runs taking over, one wins
            assert holder is not None  # WAIT needs a live holder
            left = give_up - loop.time()
            if left <= 0:
                raise errors.LockHeldError(
                    f"another deploy to this DST is running: {holder.describe(now)}",
                    hint="try again when it is done, wait for it with --lock-wait SECONDS, "
                    "or --break-lock if that run is gone",
                )
            if not said_waiting:
                said_waiting = True
                self._note(
                    f"waiting up to {self.wait:g} s for the deploy lock: {holder.describe(now)}"
                )
            await asyncio.sleep(min(POLL, left))

    async def release(self, session: Session) -> None:
        """Remove the lock if this run still holds it (it may have been broken)."""
        if not self.held:
            return
        holder, exists = await self._look(session, grace=False)
        self.held = False
        if not exists:
            return
        if holder is not None and holder.run_id != self.me.run_id:
            self._note(
                f"the deploy lock was taken over during the run by {holder.describe(time.time())}"
            )
            return
        await self._remove(session)

    # --- internals --------------------------------------------------------------

    async def _write_record(self, session: Session) -> None:
        address = await session.passive()
        await datachannel.upload(session, self.record, self.me.encode(), address)

    async def _read_record(self, session: Session) -> bytes | None:
        address = await session.passive()
        try:
            return await datachannel.fetch(session, f"RETR {self.record}", address)
        except errors.PermanentReplyError:
            return None

    async def _look(self, session: Session, *, grace: bool = True) -> tuple[Holder | None, bool]:
        """(the holder record, whether the lock directory exists)."""
        data = await self._read_record(session)
        if data is None:
            if not await self._dir_exists(session):
                return None, False
            if grace:
                # Its run may be writing the record right now.
                await asyncio.sleep(EMPTY_GRACE)
                data = await self._read_record(session)
        return (Holder.decode(data) if data is not None else None), True

    async def _dir_exists(self, session: Session) -> bool:
        reply = await session.command(f"CWD {self.dir}")
        if reply.is_complete:
            # Every path asyncmirror sends is absolute: going back home is tidiness.
            await session.command(f"CWD {session.quirks.home or '/'}")
            return True
        session.check(f"CWD {self.dir}", reply, "5")
        return False

    async def _remove(self, session: Session) -> None:
        replies = await session.pipeline([f"DELE {self.record}", f"RMD {self.dir}"])
        rmd = replies[1]
        if not rmd.is_complete and rmd.is_transient:
            session.check(f"RMD {self.dir}", rmd)

    def _take_over_line(self, holder: Holder | None, now: float) -> str:
        if holder is None:
            return f"taking over the deploy lock {self.dir}: it has no holder record"
        why = (
            "--break-lock" if self.break_lock else f"older than --lock-stale {self.stale_after:g} s"
        )
        return f"taking over the deploy lock ({why}) from {holder.describe(now)}"
