"""The deploy lock: one run at a time changes a DST.

Two pushes in a row start two deploys at once; interleaved, they leave a mix of
both.  Before changing anything a run creates ``DST/.htasyncmirror-lock`` with
``MKD`` -- atomic on every FTP server: of two runs exactly one gets ``257`` --
and writes who holds it (host, pid, start time, version, run id) into
``.htholder.json`` inside.  Apache refuses ``.ht*`` names by default, so nobody
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
import base64
import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from datetime import datetime as _datetime
from enum import Enum
from typing import Literal, NamedTuple

from . import datachannel, errors
from .listing import parse_listing
from .names import LOCK_DIR
from .session import Session

#: The holder record is the name of a directory inside the lock: ``.htholder.``
#: and the record in URL-safe base64.  A name, not a file: taking and releasing
#: the lock needs no data connection (2 and 1 round trips), and a name is all
#: the lock shows on the web (``.ht*`` too: Apache's rule matches the last
#: component only).
HOLDER_PREFIX = ".htholder."
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

    def name(self) -> str:
        return HOLDER_PREFIX + base64.urlsafe_b64encode(self.encode()).decode().rstrip("=")

    @classmethod
    def from_name(cls, name: str) -> Holder | None:
        """The record a holder entry's name carries, or ``None`` for any other name."""
        if not name.startswith(HOLDER_PREFIX):
            return None
        body = name[len(HOLDER_PREFIX) :]
        try:
            data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError:
            return None
        return cls.decode(data)

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


def decide(
    holder: Holder | None,
    *,
    now: float,
    stale_after: float,
    break_lock: bool,
    gone: bool = False,
) -> Verdict:
    """What to do about a lock someone else holds.

    ``holder`` is ``None`` for a lock with no readable record after
    :data:`EMPTY_GRACE`: its run died between ``MKD`` and writing the record.
    ``gone``: the holder ran on this machine and its process has exited.
    """
    if break_lock or gone or holder is None or now - holder.started > stale_after:
        return Verdict.TAKE_OVER
    return Verdict.WAIT


def exited_here(holder: Holder | None) -> bool:
    """True when ``holder`` ran on this machine and its process is gone (a killed run)."""
    if holder is None or holder.host != socket.gethostname() or holder.pid == os.getpid():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, as another user's process
        return False
    return False


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
        self.me = Holder.of_this_run(run_id, version)
        self.place(base)
        self.wait = wait
        self.stale_after = stale_after
        self.break_lock = break_lock
        self._note = note
        self.held = False

    def place(self, base: str) -> None:
        """Lock ``base`` (DST, as an absolute path) rather than the one given first."""
        self.dir = self._in(base)
        self.record = f"{self.dir}/{self.me.name()}"

    async def acquire(self, session: Session) -> bool:
        """Hold the lock, waiting for it up to ``wait`` seconds.

        Returns True when another run held it first (waited for or taken over):
        what was read of DST before may be stale.  Raises
        :class:`~errors.LockHeldError` when another run keeps it, and
        :class:`~errors.RemoteTargetError` when DST refuses the lock directory
        (not writable, or a file): nothing has been changed then.
        """
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.wait
        said_waiting = False
        contended = False
        while True:
            reply = await session.command(f"MKD {self.dir}")
            if reply.is_complete:
                self.held = True
                await self._write_record(session)
                return contended
            session.check(f"MKD {self.dir}", reply, "5")  # a 4xx is raised: retried
            holder, exists = await self._look(session)
            if not exists:
                base = self.dir.rpartition("/")[0] or "/"
                raise errors.RemoteTargetError(
                    f"cannot write to DST {base}: the server refused to create the deploy "
                    f"lock in it ({reply.code} {reply.text})",
                    hint="DST must be a directory the FTP user may write to",
                )
            contended = True
            now = time.time()
            gone = exited_here(holder)
            verdict = decide(
                holder,
                now=now,
                stale_after=self.stale_after,
                break_lock=self.break_lock,
                gone=gone,
            )
            if verdict is Verdict.TAKE_OVER:
                self._note(self._take_over_line(holder, now, gone=gone))
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

    async def hold_also(self, session: Session, base: str) -> None:
        """Put this run's lock in ``base`` too: a directory about to be renamed to DST.

        The lock lives inside DST, so DST's renames carry it.  A release that
        goes live with a copy of the lock inside keeps DST locked across the
        switch: whenever DST exists, another run's ``MKD`` meets a lock.  This
        run holds DST's lock, which every run takes before it touches the
        releases beside DST, so a lock already in ``base`` is a leftover of a
        run that died: it is replaced.  Raises
        :class:`~errors.RemoteTargetError` when the copy cannot be made.
        """
        where = self._in(base)
        lines = [f"MKD {where}", f"MKD {where}/{self.me.name()}"]
        made, record = await session.pipeline(lines)
        if not made.is_complete:
            session.check(lines[0], made, "5")  # a 4xx is raised: retried
            await self._remove(session, where)  # our record too, if it went in
            made, record = await session.pipeline(lines)
        if made.is_complete:
            session.check(lines[1], record, "2")
            return
        session.check(lines[0], made, "5")
        raise errors.RemoteTargetError(
            f"cannot put the deploy lock in {base} ({made.code} {made.text})",
            hint=f"remove {where} on the server and try again",
        )

    async def release(self, session: Session, *, copies_in: Sequence[str] = ()) -> None:
        """Remove the lock if this run still holds it (it may have been taken over).

        Two ``RMD`` in one write: this run's holder entry, then the lock.  When
        another run took the lock over, the first finds nothing and the second
        a directory holding the new holder's entry: both refused, the new
        holder's lock stays.  ``copies_in``: directories where a copy of the
        lock (:meth:`hold_also`) may be; each is removed in the same write, the
        same way, so only a lock holding this run's entry alone goes.
        """
        if not self.held:
            return
        self.held = False
        lines = [line for b in copies_in for line in self._removal(self._in(b))]
        lines += self._removal(self.dir)
        replies = await session.pipeline(lines)
        for line, reply in zip(lines, replies, strict=True):
            if reply.is_transient:
                session.check(line, reply)
        mine = replies[-2]
        if not mine.is_complete:
            self._note(f"the deploy lock {self.dir} was taken over during the run")

    # --- internals --------------------------------------------------------------

    def _in(self, base: str) -> str:
        return f"{base.rstrip('/')}/{LOCK_DIR}"

    def _removal(self, where: str) -> list[str]:
        return [f"RMD {where}/{self.me.name()}", f"RMD {where}"]

    async def _write_record(self, session: Session) -> None:
        reply = await session.command(f"MKD {self.record}")
        session.check(f"MKD {self.record}", reply, "2")

    async def _names(self, session: Session, where: str | None = None) -> list[str] | None:
        """The names inside the lock directory (or ``where``), ``None`` when it does not exist."""
        where = where or self.dir
        quirks = session.quirks
        fmt: Literal["mlsd", "list"] = "mlsd"
        data = b""
        if quirks.mlsd is not False:
            address = await session.passive()
            try:
                data = await datachannel.fetch(session, f"MLSD {where}", address)
            except errors.PermanentReplyError as exc:
                if exc.code not in ("500", "501", "502", "504"):
                    return None  # 550: no such directory
                quirks.mlsd = False
        if quirks.mlsd is False:
            # "LIST -a PATH" is unreliable across servers: list the directory itself.
            if not (await session.command(f"CWD {where}")).is_complete:
                return None
            try:
                address = await session.passive()
                data = await datachannel.fetch(session, "LIST -a", address)
                fmt = "list"
            finally:
                await session.command(f"CWD {quirks.home or '/'}")
        text = data.decode("utf-8", errors="replace")
        lines = [line.rstrip("\r") for line in text.split("\n")]
        return [e.name for e in parse_listing(lines, fmt=fmt, now=_datetime.now(UTC), tz=UTC)]

    async def _look(self, session: Session, *, grace: bool = True) -> tuple[Holder | None, bool]:
        """(the holder record, whether the lock directory exists)."""
        names = await self._names(session)
        if names is None:
            return None, False
        holders = [h for h in map(Holder.from_name, names) if h is not None]
        if not holders and grace:
            # Its run may be between its two MKD right now.
            await asyncio.sleep(EMPTY_GRACE)
            names = await self._names(session)
            if names is None:
                return None, False
            holders = [h for h in map(Holder.from_name, names) if h is not None]
        return (max(holders, key=lambda h: h.started) if holders else None), True

    async def _remove(self, session: Session, where: str | None = None) -> None:
        """Take a lock over: remove what is in it (holder entries), then the lock."""
        where = where or self.dir
        names = await self._names(session, where) or []
        lines = [f"RMD {where}/{n}" for n in names if n.startswith(HOLDER_PREFIX)]
        replies = await session.pipeline([*lines, f"RMD {where}"])
        rmd = replies[-1]
        if not rmd.is_complete and rmd.is_transient:
            session.check(f"RMD {where}", rmd)

    def _take_over_line(self, holder: Holder | None, now: float, *, gone: bool) -> str:
        if holder is None:
            return f"taking over the deploy lock {self.dir}: it has no holder record"
        if self.break_lock:
            why = "--break-lock"
        elif gone:
            why = "its run on this machine has exited"
        else:
            why = f"older than --lock-stale {self.stale_after:g} s"
        return f"taking over the deploy lock ({why}) from {holder.describe(now)}"
