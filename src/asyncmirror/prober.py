"""What every ``--doctor`` probe shares: the sessions, and the bounds of one probe.

A :class:`Prober` holds the main session (opened again when a probe broke
it), the extra sessions the connection-limit probe opened, and the
:class:`~asyncmirror.diagnosis.Findings` the probes fill in.  Every command
it sends waits at most the configured timeout; a probe run through
:meth:`Prober.attempt` that fails leaves a note, not the end of the diagnosis.
The probes themselves are in :mod:`connectionprobes`, :mod:`passiveprobes`
and :mod:`dstprobes`; their order is :func:`asyncmirror.doctor.diagnose`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from . import datachannel, errors, transport
from .diagnosis import Findings
from .login import LoginGate, ServerConfig
from .quirks import ServerQuirks
from .replies import Reply
from .session import Session


class Prober:
    """The doctor's sessions and findings; the probes' way to send, fetch and fail softly."""

    def __init__(self, config: ServerConfig, findings: Findings) -> None:
        self.config = config
        self.f = findings
        self.ctx = transport.make_ssl_context(config.tls)
        self.quirks = ServerQuirks()
        self.logins = LoginGate()
        self.main: Session | None = None
        #: The connection-limit probe's sessions, until :meth:`close_extra`.
        self.extra: list[Session] = []

    @property
    def timeout(self) -> float:
        return self.config.timeout

    def note(self, text: str) -> None:
        self.f.notes.append(text)

    async def open_session(self) -> Session:
        """One more session, logged in as a run logs in."""
        return await Session.open(self.config, self.ctx, self.quirks, self.logins)

    async def session(self) -> Session:
        """The main session, opened again if a probe broke it."""
        if self.main is None or self.main.broken:
            if self.main is not None:
                self.main.abort()
            self.main = await self.open_session()
        return self.main

    async def attempt(self, what: str, probe: Callable[[], Awaitable[None]]) -> None:
        """Run one probe; its failure is a note, the diagnosis goes on."""
        try:
            await probe()
        except (errors.RetryableError, errors.ReplyError, errors.ProtocolError) as exc:
            self.note(f"{what}: {exc.user_line()}")
        except TimeoutError:
            self.note(f"{what}: no answer within {self.timeout:g} s")

    async def ask(self, line: str) -> Reply:
        """One command on the main session and its final reply, within the timeout."""
        session = await self.session()
        try:
            async with asyncio.timeout(self.timeout):
                return await session.command(line)
        except TimeoutError:
            session.mark_broken()  # its reply may still come: out of step
            raise errors.OperationTimeout(f"{line.split()[0]}: no answer") from None

    async def fetch(self, command: str) -> bytes:
        """What a listing command sends over a data connection, on the main session."""
        session = await self.session()
        address = await session.passive()
        return await datachannel.fetch(session, command, address)

    async def close_extra(self) -> None:
        """Give back the limit probe's sessions: a reopened main session needs a slot."""
        extra, self.extra = self.extra, []
        await asyncio.gather(*(s.quit() for s in extra))

    async def close(self) -> None:
        sessions = [*self.extra, *([self.main] if self.main is not None else [])]
        self.extra, self.main = [], None
        await asyncio.gather(*(s.quit() for s in sessions))
