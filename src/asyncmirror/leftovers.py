"""What a run may leave on the server, and its removal.

Two kinds: temporary names (``--atomic`` uploads, the state file) not yet
renamed into place, and files whose upload broke after ``STOR`` went out --
the server may hold them truncated under the real name.  Uploads and the
state store add to both; the run removes them when an upload fails for good,
at its end, or after a stop (on one fresh session, bounded in time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from . import errors, remote
from .pool import Pool
from .recorder import Recorder
from .replies import Reply, parse_size
from .scheduler import run_batch
from .session import Session

#: path -> the sizes it may rightly have on the server (see ``Leftovers.partial``).
Sizes = tuple[int | None, int | None]


class Leftovers:
    """The temporary and possibly partial uploads of one run."""

    def __init__(self, pool: Pool, rec: Recorder) -> None:
        self.pool = pool
        self.rec = rec
        #: Temporary names uploaded but not (yet) renamed; removed at the end.
        self.temp_names: set[str] = set()
        #: Files (relative paths) whose upload broke after STOR went out, until a
        #: retry succeeds: the server may hold a truncated file under the real name.
        #: The value holds the sizes the file may rightly have there: the old
        #: version's (a server may refuse STOR before opening the file, or upload
        #: to a hidden name) and, after a stop, the local one (every byte may have
        #: arrived).  Checked with SIZE when the file fails for good or the run stops.
        self.partial: dict[str, Sizes] = {}

    def note(self) -> None:
        """Say what may be left on the server (when it cannot be reached to remove it)."""
        if self.partial:
            self.rec.note(
                "these uploads were cut and may be left partial on the server "
                f"(the next run replaces them): {', '.join(sorted(self.partial))}"
            )
        if self.temp_names:
            self.rec.note(
                "temporary files may be left on the server (safe to delete): "
                + ", ".join(sorted(self.temp_names))
            )

    async def remove_after_stop(
        self,
        base: str,
        timeout: float,
        *,
        then: Callable[[Session], Awaitable[None]] | None = None,
    ) -> None:
        """After a stop: remove partial and temporary uploads, on a fresh session,
        then run ``then`` on it (the deploy lock's release) when given.

        Bounded by ``--timeout`` (at most 15 s: someone is waiting for the stop);
        never raises but for another cancel (a second Ctrl-C leaves them).  A STOR
        still unread in an aborted session's socket could, in theory, reach the
        server after this session's SIZE; a new login takes several round trips
        and the server reads the STOR at once, so that window is left open.
        """
        count = len(self.partial) + len(self.temp_names)
        if not count and then is None:
            return
        if count:
            some = f"{count} unfinished upload" + ("s" if count > 1 else "")
            self.rec.note(f"stopping: removing {some} from the server")
        try:
            async with asyncio.timeout(min(timeout, 15.0)):
                session = await self.pool.open_session()
                try:
                    # Each step turns its own failures into a note: one does not
                    # keep the other from running.
                    if self.partial:
                        session = await self.remove_partial(session, base, self.partial)
                    if self.temp_names:
                        session = await self.remove_temporaries(session)
                    if then is not None:
                        await then(session)
                finally:
                    await self.pool.close_all()
        except (errors.AsyncMirrorError, TimeoutError) as exc:
            why = exc.user_line() if isinstance(exc, errors.AsyncMirrorError) else "timed out"
            what = "the unfinished uploads" if count else "the deploy lock"
            self.rec.note(f"could not remove {what}: {why}")

    async def remove_temporaries(self, session: Session) -> Session:
        """Delete temporary uploads that were never renamed (cut connections)."""
        names = sorted(self.temp_names)
        self.temp_names.clear()
        # 550 just means the temporary file was never created.
        return await self._clean_up(session, [(n, n) for n in names], "temporary uploads")

    async def remove_partial(
        self, session: Session, base: str, partial: dict[str, Sizes]
    ) -> Session:
        """Never leave a truncated file behind as if it were done.

        ``partial`` maps each path to the sizes it may rightly have on the server
        (its old version's, the local file's): one ``SIZE`` each, then ``DELE``
        of those whose size is neither -- what the STOR truncated.
        """
        doomed: list[str] = []
        unknown: list[str] = []

        def on_size(key: tuple[str, Sizes], reply: Reply) -> None:
            path, sizes = key
            if reply.code == "550":
                return  # nothing under that name
            if reply.code != "213":
                unknown.append(path)
                return
            try:
                size: int | None = parse_size(reply.text)
            except errors.ProtocolError:
                size = None  # cannot tell: do not leave what may be truncated
            if size is None or size not in sizes:
                doomed.append(path)

        try:
            session = await run_batch(
                self.pool,
                session,
                [(f"SIZE {remote.remote_join(base, p)}", (p, partial[p])) for p in sorted(partial)],
                on_reply=on_size,
            )
        except errors.RetryableError as exc:
            self.rec.note(f"could not check the partial uploads: {exc.user_line()}")
            return session
        if unknown:
            self.rec.note(f"could not check whether these uploads are whole: {', '.join(unknown)}")

        def on_reply(path: str, reply: Reply) -> None:
            if reply.is_complete:
                self.rec.note(f"removed the partial upload of {path} from the server")

        targets = [(remote.remote_join(base, p), p) for p in sorted(doomed)]
        return await self._clean_up(session, targets, "partial uploads", on_reply)

    async def _clean_up(
        self,
        session: Session,
        targets: list[tuple[str, str]],
        what: str,
        on_reply: Callable[[str, Reply], None] = lambda _path, _reply: None,
    ) -> Session:
        """DELE each (remote path, name) in one pipelined batch; a failure is a note only."""
        try:
            return await run_batch(
                self.pool,
                session,
                [(f"DELE {target}", name) for target, name in targets],
                on_reply=on_reply,
            )
        except errors.RetryableError as exc:
            self.rec.note(f"could not remove {what}: {exc.user_line()}")
            return session
