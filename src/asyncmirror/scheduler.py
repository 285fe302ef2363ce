"""Run work over the pool: one worker per session, retries with backoff, pipelining.

Theory of operation
-------------------
Jobs that need a data connection (uploads, directory listings) go through
:class:`Workers`: each worker owns one session and takes the next job from a
shared queue, so no session idles while work remains.  A job's handler may
return a :class:`Deferred` -- commands whose replies finish the job (``RNTO``,
``MFMT``, ``SIZE`` to verify the upload).  The worker sends them *in the same
write* as the ``EPSV``/``PASV`` of its next job, so checking an upload costs no
extra round trip.  On ProFTPD that passive command goes out even sooner, ahead
of the upload's ``226`` (:attr:`ServerQuirks.passive_ahead
<asyncmirror.quirks.ServerQuirks.passive_ahead>`).  The checks cannot go with
it -- ProFTPD would run them mid-transfer -- so they ride in the same write as
the next ``STOR`` instead.  :mod:`asyncmirror.pipeline` pairs the replies,
including ProFTPD's ``450 ... in progress`` for a passive command that came
while the transfer was still running.

Failures are classified by :mod:`asyncmirror.errors`: a retryable error puts
the job back after an exponential, jittered backoff (bounded by ``pool.retry``);
a permanent reply or a local read error fails that job only; a server out of
space fails that job and starts no other (:attr:`Workers.not_started`); a fatal error
propagates and the task group cancels every worker at once.  A worker whose
session broke opens a new one; one that meets ``421`` retires and the pool
carries on smaller.

Commands that need no data connection (``MKD``, ``DELE``, ``RMD``) are sent by
:func:`run_batch`, pipelined in chunks on one session: a connection processes
them in order, so parents are created before children without a round trip
per directory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, NamedTuple, TypeVar

from . import errors
from .pool import Pool, Retired
from .replies import Reply
from .session import Session
from .taskgroups import Children, task_group

J = TypeVar("J")

#: Commands per pipelined chunk: small enough that neither side's socket
#: buffer fills up while the other is still writing.
BATCH = 40

#: First and longest wait between attempts to take back a connection slot.
REGROW_FIRST = 1.0
REGROW_CAP = 30.0


class Deferred(NamedTuple):
    """Commands to send after a transfer; ``check(replies)`` raises if the job failed."""

    lines: list[str]
    check: Callable[[list[Reply]], None]


Handler = Callable[[Session, J, tuple[str, int]], Awaitable[Deferred | None]]


class JobQueue(Generic[J]):
    """A queue that knows when all work is finished, retries included."""

    def __init__(self, jobs: Sequence[J]) -> None:
        self._items: deque[J] = deque(jobs)
        self.outstanding = len(self._items)
        self._changed = asyncio.Event()
        self.finished = asyncio.Event()
        if self.outstanding <= 0:
            self.finished.set()
        self._timers: set[asyncio.TimerHandle] = set()  # put_later's, not yet due

    def add(self, job: J) -> None:
        self.outstanding += 1
        self._items.append(job)
        self._changed.set()

    def has_items(self) -> bool:
        return bool(self._items)

    def get_nowait(self) -> J | None:
        return self._items.popleft() if self._items else None

    async def get(self) -> J | None:
        """The next job, waiting for retries in flight; ``None`` when all is done."""
        while True:
            if self._items:
                return self._items.popleft()
            if self.outstanding <= 0:
                return None
            self._changed.clear()
            await self._changed.wait()

    def finish(self) -> None:
        self.outstanding -= 1
        if self.outstanding <= 0:
            self.finished.set()
        self._changed.set()

    def put_later(self, job: J, delay: float) -> None:
        """Queue ``job`` again after ``delay`` seconds (a retry's backoff).

        The timer is a loop handle the queue owns, not a task: nothing runs
        until it fires, and :meth:`cancel_timers` (when the workers end, however
        they end) makes sure it never does.
        """

        def due() -> None:
            self._timers.discard(handle)
            self._items.append(job)
            self._changed.set()

        handle = asyncio.get_running_loop().call_later(delay, due)
        self._timers.add(handle)

    def give_back(self, job: J) -> None:
        """Return an unstarted job (its worker retired)."""
        self._items.appendleft(job)
        self._changed.set()

    def cancel_timers(self) -> None:
        """Cancel every retry not yet due: its job is not queued again."""
        for t in self._timers:
            t.cancel()
        self._timers.clear()


class Workers(Generic[J]):
    """Run ``handler`` for every job, one worker per session."""

    def __init__(
        self,
        pool: Pool,
        handler: Handler[J],
        *,
        on_done: Callable[[J], None],
        on_failed: Callable[[J, errors.AsyncMirrorError], None],
        on_retry: Callable[[J, errors.AsyncMirrorError, int], None] | None = None,
        skip: Callable[[J], bool] | None = None,
    ) -> None:
        self.pool = pool
        self.handler = handler
        self.on_done = on_done
        self.on_failed = on_failed
        self.on_retry = on_retry or (lambda _j, _e, _n: None)
        #: ``skip(job)``: decided without I/O that the job has nothing to do.
        self.skip = skip or (lambda _j: False)
        self._attempts: dict[int, int] = {}
        self.queue: JobQueue[J] = JobQueue(())
        #: The first "out of space" reply: no job starts after it ...
        self.out_of_space: errors.ServerFullError | None = None
        #: ... and the jobs it kept from starting.
        self.not_started: list[J] = []

    async def run(self, sessions: list[Session], jobs: Sequence[J]) -> list[Session]:
        """Run all jobs; returns the sessions still open afterwards."""
        self.queue = JobQueue(jobs)
        if not jobs:
            return sessions
        survivors: list[Session] = []
        try:
            async with task_group() as tg:
                for s in sessions:
                    tg.start(self._worker(s, survivors))
                tg.start(self._regrow(tg, survivors))
        finally:
            self.queue.cancel_timers()
        return survivors

    async def _regrow(self, tg: Children, survivors: list[Session]) -> None:
        """While the pool is below its size, try for one more session now and then.

        A host's connection limit is shared with other clients: a slot they free
        during the run gets a worker again.  The attempts back off (1 s up to
        REGROW_CAP) so a host that stays full sees few refused logins.
        """
        delay = REGROW_FIRST
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.queue.finished.wait()
                return
            if not (self.pool.has_room and self.queue.has_items()):
                continue
            session = await self.pool.grow()
            if session is None:
                delay = min(REGROW_CAP, delay * 2)
                continue
            tg.start(self._worker(session, survivors))

    async def _worker(self, session: Session | None, survivors: list[Session]) -> None:
        current: list[Session | None] = [session]  # the worker's session, as replaced
        try:
            session = await self._work(current)
        except BaseException:
            # Cancelled or failed mid-operation: the session's state is unknown,
            # so drop it at once instead of waiting for a polite QUIT.
            if current[0] is not None:
                self.pool.discard(current[0])
            raise
        if session is not None and not session.broken:
            survivors.append(session)
        elif session is not None:
            self.pool.discard(session)

    async def _work(self, current: list[Session | None]) -> Session | None:
        session = current[0]
        pending: tuple[J, Deferred] | None = None
        broke_with: errors.AsyncMirrorError | None = None
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():
                # Defensive: on Python 3.11 asyncio.wait_for and a plain TaskGroup
                # can lose a cancel that races with a result (neither is on this
                # path now); a pending one is honoured here instead of taking more
                # work.  Sound only while nothing leaves a worker's count raised by
                # itself: its task groups are taskgroups.task_group (see there).
                raise asyncio.CancelledError
            job = self.queue.get_nowait()
            while job is not None and self.skip(job):
                self._succeeded(job)
                job = self.queue.get_nowait()
            if job is None and pending is None:
                job = await self.queue.get()
                if job is None:
                    break
            if job is not None and self.out_of_space is not None:
                self._not_started(job)  # e.g. a retry whose backoff ended after the 552
                continue
            unsettled: list[J] = [pending[0]] if pending else []
            if job is not None:
                unsettled.append(job)
            try:
                if session is None or session.broken:
                    if session is not None:
                        self.pool.discard(session)
                    session = current[0] = None
                    # The failure that broke the session counts as the first attempt.
                    session = current[0] = await self.pool.open_session(
                        replacing=True, failed=broke_with
                    )
                    broke_with = None
                lines = pending[1].lines if pending else []
                ahead = session.passive_ahead_pending
                address = None
                handed_over: tuple[J, Deferred] | None = None
                if ahead:
                    # The passive command went out ahead of the transfer's 226.
                    try:
                        address = await session.read_passive()
                    except errors.TransientReplyError:
                        # e.g. "425 Address already in use": the session is
                        # fine; ask again below, with the checks still due.
                        ahead = False
                if ahead:
                    if job is not None and pending is not None:
                        # The finished job's checks ride in the same write as the
                        # next STOR: no round trip of their own.
                        handed_over, pending = pending, None
                        session.send_with_next_transfer(handed_over, handed_over[1].lines)
                    elif lines:
                        await session.send(*lines)
                elif job is not None:
                    await session.send_passive(*lines)
                elif lines:
                    await session.send(*lines)
                if pending is not None:
                    done_job, deferred = pending
                    pending = None
                    replies = [await session.read_reply() for _ in deferred.lines]
                    unsettled.remove(done_job)
                    self._settle(done_job, deferred, replies)
                if job is None:
                    continue
                if address is None:
                    address = await session.read_passive()
                quirks = session.quirks
                ahead_next = (
                    quirks.passive_ahead and quirks.epsv is not None and self.queue.has_items()
                )
                try:
                    with session.passive_ahead_allowed(ahead_next):
                        result = await self.handler(session, job, address)
                finally:
                    if handed_over is not None:
                        unsent, replies = session.take_riders(handed_over)
                        if unsent:
                            # The handler failed before its STOR went out: the
                            # checks were never sent; they are still due.
                            pending, handed_over = handed_over, None
                            unsettled.remove(pending[0])
                        elif len(replies) == len(handed_over[1].lines):
                            unsettled.remove(handed_over[0])
                            self._settle(handed_over[0], handed_over[1], replies)
                unsettled.remove(job)
                if result is None:
                    self._succeeded(job)
                else:
                    pending = (job, result)
            except Retired:
                for j in unsettled:
                    self.queue.give_back(j)
                return None
            except errors.FatalError:
                raise
            except errors.AsyncMirrorError as exc:
                if session is not None and session.passive_ahead_pending:
                    session.mark_broken()  # replies out of step: start afresh
                if pending is not None and pending[0] not in unsettled:
                    # Checks handed back by a handler that failed before its STOR:
                    # still due on a healthy session, else the job is retried.
                    if session is None or session.broken:
                        unsettled.append(pending[0])
                        pending = None
                else:
                    pending = None
                if session is not None and session.broken:
                    broke_with = exc
                for j in unsettled:
                    self._attempt_failed(j, exc)
        if session is not None and session.passive_ahead_pending:
            # A passive command sent ahead that nobody needs any more: take its
            # reply off the wire so the next user of this session reads its own.
            try:
                await session.read_passive()
            except errors.AsyncMirrorError:
                session.mark_broken()
        return session

    def _settle(self, job: J, deferred: Deferred, replies: list[Reply]) -> None:
        try:
            deferred.check(replies)
        except errors.FatalError:
            raise
        except errors.AsyncMirrorError as exc:
            self._attempt_failed(job, exc)
        else:
            self._succeeded(job)

    def _succeeded(self, job: J) -> None:
        self._attempts.pop(id(job), None)
        self.on_done(job)
        self.queue.finish()

    def _not_started(self, job: J) -> None:
        self._attempts.pop(id(job), None)
        self.not_started.append(job)
        self.queue.finish()

    def _attempt_failed(self, job: J, exc: errors.AsyncMirrorError) -> None:
        if isinstance(exc, errors.ServerFullError):
            # Every other upload would fail the same way: this one fails, the
            # queued ones are not started, the ones in flight end as they end.
            if self.out_of_space is None:
                self.out_of_space = exc
            while (queued := self.queue.get_nowait()) is not None:
                self._not_started(queued)
        n = self._attempts.get(id(job), 0) + 1
        if self.pool.retry.again(exc, n):
            self._attempts[id(job)] = n
            self.on_retry(job, exc, n)
            self.queue.put_later(job, self.pool.retry.delay(n))
            return
        self._attempts.pop(id(job), None)
        self.on_failed(job, exc)
        self.queue.finish()


async def run_batch(
    pool: Pool,
    session: Session,
    commands: Sequence[tuple[str, J]],
    *,
    on_reply: Callable[[J, Reply], None],
) -> Session:
    """Send ``commands`` pipelined in chunks, in order, on one session.

    ``on_reply(key, reply)`` sees the final reply of every command.  A command
    answered with a transient reply (4xx) is sent again after a backoff -- only
    that one: the others of its chunk were done -- and ``on_reply`` sees its
    4xx only when the retries are used up.  A broken connection is replaced and
    the unanswered rest re-sent.
    """
    retry = pool.retry
    todo = [(i, line, key) for i, (line, key) in enumerate(commands)]
    attempts: dict[int, int] = {}  # command index -> transient replies so far
    failures = 0
    while todo:
        chunk, rest = todo[:BATCH], todo[BATCH:]
        again: list[tuple[int, str, J]] = []
        answered = 0
        try:
            session = await pool.usable(session)
            await session.send(*(line for _, line, _ in chunk))
            for index, line, key in chunk:
                reply = await session.read_reply()
                answered += 1
                tries = attempts.get(index, 0)
                if reply.is_transient and retry.allows(tries + 1):
                    attempts[index] = tries + 1
                    again.append((index, line, key))
                else:
                    on_reply(key, reply)
        except errors.RetryableError as exc:
            failures += 1
            if not retry.again(exc, failures):
                raise
            session.mark_broken()
            again += chunk[answered:]
        if again:
            await retry.wait(max(attempts.get(i, 1) for i, _, _ in again))
        todo = again + rest
    return session
