"""N logged-in sessions: opened all at once (as many as the work can use),
replaced when broken, fewer when the host limits connections.

Bookkeeping (how many sessions the host allows) is plain synchronous state; the
I/O happens in :meth:`Pool.open_session`.  A fatal error (wrong password,
untrusted certificate, AUTH TLS refused) is raised at once and ends the run; a
``421 Too many connections`` shrinks the pool instead, and is said once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from . import errors, transport
from .login import LoginGate, ServerConfig
from .quirks import ServerQuirks
from .retry import RetryPolicy
from .session import Session
from .taskgroups import task_group


class Retired(Exception):
    """A slot gave up its session because the host allows fewer connections."""


class Pool:
    def __init__(
        self,
        config: ServerConfig,
        size: int,
        *,
        retry: RetryPolicy | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        if size < 1:
            raise errors.UsageError(f"-j must be at least 1, not {size}")
        self.config = config
        self.size = size
        #: The run's one retry policy: every retry loop asks it.
        self.retry = retry or RetryPolicy()
        self.ctx = transport.make_ssl_context(config.tls)
        self.quirks = ServerQuirks()
        self.logins = LoginGate()  # one refused login per typo, not one per session
        self._tried = size  # sessions the last start() tried to open, for the notes
        self._note = note or (lambda _msg: None)
        self._alive = 0
        self._opening = 0
        self._shrunk_said = False
        self._sessions: set[Session] = set()

    # --- opening ----------------------------------------------------------------

    async def start(self, useful: Coroutine[Any, Any, int] | None = None) -> list[Session]:
        """Open up to ``size`` sessions concurrently; at least one must succeed.

        With ``useful`` (how many sessions the work can keep busy, known once
        the source tree has been scanned), one session logs in at once (or one
        per connection begun in advance) and the rest only up to that number:
        two files never cost eight logins, which on a shared host are eight
        forked server processes and TLS handshakes.
        """
        # Connections begun in advance are known to be useful: log in on all
        # of them at once, with the first session.
        initial = max(1, min(self.size, len(self.config.early)))
        results: dict[int, Session | errors.AsyncMirrorError] = {}

        async def login(slot: int) -> None:
            try:
                results[slot] = await self._open_once()
            except errors.FatalError:
                # Wrong password, bad certificate: the group ends the other logins
                # and the wait for the scan at once.  (A login that already
                # succeeded is closed with the pool at the end of the run.)
                raise
            except errors.AsyncMirrorError as exc:
                results[slot] = exc  # 421, a timeout: the pool carries on smaller

        count = self.size
        async with task_group() as tg:
            for slot in range(initial):
                tg.start(login(slot))
            if useful is not None:
                # A child of its own: whatever it runs (the scan's wait) cannot
                # touch this task's cancel count.
                count = max(initial, min(self.size, await tg.start(useful)))
            self._tried = count
            for slot in range(initial, count):
                tg.start(login(slot))
        ordered = [results[slot] for slot in sorted(results)]
        sessions = [r for r in ordered if isinstance(r, Session)]
        failures = [r for r in ordered if isinstance(r, errors.AsyncMirrorError)]
        if not sessions:
            # Nothing fatal but nothing open either (421 or timeouts everywhere):
            # keep trying with one, counting this round as its first attempt.
            sessions = [await self.open_session(failed=failures[0])]
        if len(sessions) < count:
            self._shrink_note(len(sessions), count, list(failures))
        return sessions

    async def _open_once(self) -> Session:
        self._opening += 1
        try:
            session = await Session.open(self.config, self.ctx, self.quirks, self.logins)
        finally:
            self._opening -= 1
        self._sessions.add(session)
        self._alive += 1
        return session

    async def open_session(
        self, *, replacing: bool = False, failed: errors.AsyncMirrorError | None = None
    ) -> Session:
        """Open one session, retrying transient failures with backoff.

        While other sessions are alive, a 421 retires the caller's slot
        (:class:`Retired`) rather than waiting for room.  A connection refused
        while *replacing* a session is retried for at least ``timeout`` seconds:
        the server may be restarting.  ``failed`` is an attempt already made
        (it counts against the retry budget).
        """
        attempt = 0 if failed is None else 1
        error: errors.AsyncMirrorError | None = failed
        first_refusal: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            if error is not None:
                still_restarting = (
                    first_refusal is not None and loop.time() - first_refusal < self.config.timeout
                )
                # What is worth retrying here is decided by the except clauses
                # below (a refused connection too, while the server restarts).
                if not (self.retry.allows(attempt) or still_restarting):
                    raise errors.PoolExhaustedError(
                        f"could not open a session to {self.config.host}:{self.config.port} "
                        f"after {attempt} attempts: {error.message}",
                        hint="check that the server is up and reachable, or raise --timeout "
                        "and --retries",
                    )
                await self.retry.wait(attempt)
            try:
                return await self._open_once()
            except errors.TooManyConnectionsError as exc:
                if self._alive > 0:
                    self._shrink_note(self._alive, self._tried, [exc])
                    raise Retired() from None
                error = exc
            except errors.ConnectError as exc:
                if not replacing:
                    raise
                error = exc
                if first_refusal is None:
                    first_refusal = loop.time()
            except errors.RetryableError as exc:
                error = exc
            attempt += 1

    @property
    def has_room(self) -> bool:
        """Fewer sessions open (or opening) than the work can use: worth growing."""
        return self._alive + self._opening < self._tried

    async def grow(self) -> Session | None:
        """One attempt at one more session; ``None`` while the host still refuses.

        A host's connection limit counts other clients too (a second deploy, an
        FTP client left open): the slots they free are taken back this way.
        """
        try:
            return await self._open_once()
        except (errors.RetryableError, errors.ConnectError):
            return None

    async def usable(self, session: Session | None) -> Session:
        """``session`` while it can be used; else a new one in its place (the
        broken one dropped).  Callers never replace sessions by hand."""
        if session is not None and not session.broken:
            return session
        if session is not None:
            self.discard(session)
        return await self.open_session(replacing=True)

    def discard(self, session: Session) -> None:
        """Forget a session (broken or retired) and drop its connection."""
        if session in self._sessions:
            self._sessions.discard(session)
            self._alive -= 1
        session.abort()

    def _shrink_note(self, alive: int, tried: int, failures: list[BaseException]) -> None:
        if self._shrunk_said:
            return
        self._shrunk_said = True
        why = next((e.user_line() for e in failures if isinstance(e, errors.AsyncMirrorError)), "")
        self._note(
            f"the server accepted {alive} of {tried} connections; "
            f"continuing with {alive}" + (f" ({why})" if why else "")
        )

    # --- closing ----------------------------------------------------------------

    def abort_all(self) -> None:
        """Drop every session's connection at once: a stop does not wait for goodbyes."""
        for s in list(self._sessions):
            self.discard(s)

    async def close_all(self, sessions: list[Session] | None = None) -> None:
        """QUIT every session, concurrently and bounded; never raises but a stop.

        A stop during the goodbyes (a second Ctrl-C) drops every connection at
        once: the QUITs are not left running without an owner.
        """
        targets = list(self._sessions) if sessions is None else sessions
        try:
            await asyncio.gather(*(s.quit() for s in targets), return_exceptions=True)
        finally:
            for s in targets:
                self.discard(s)
