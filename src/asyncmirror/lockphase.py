"""The deploy lock as a mirror run holds it (``--lock``).

Taken only when the plan writes to DST, so an unchanged rerun costs no round
trip -- or, with ``--swap``, before the staging rename, which already changes
the server.  A first deploy to a new DST makes DST first.  Released at the end
of the run; after a stop, on the leftovers' fresh session; after a fatal error
it is left on the server, with a note.  The lock itself (``MKD``, holder,
wait, take-over) is :mod:`~asyncmirror.deploylock`'s.
"""

from __future__ import annotations

from collections.abc import Callable

from . import errors
from .deploylock import DeployLock
from .dstwrites import dst_chain
from .entries import RemoteTree
from .names import LOCK_DIR
from .options import Options
from .pool import Pool
from .recorder import Recorder
from .scheduler import run_batch
from .session import Session


class RunLock:
    """A run's hold on DST's deploy lock; does nothing without ``--lock``."""

    def __init__(
        self,
        options: Options,
        pool: Pool,
        rec: Recorder,
        *,
        run_id: str,
        copies: Callable[[], list[str]] = list,
    ) -> None:
        self.pool = pool
        self.rec = rec
        #: With --swap, where copies of the lock may be (they go with it).
        self.copies = copies
        self.deploy: DeployLock | None = None
        #: Whether this run takes the lock at all (never for a dry run).
        self.wanted = options.lock and not options.dry_run
        if options.lock:
            from . import __version__

            self.deploy = DeployLock(
                "/",  # placed in DST once the login says where that is
                run_id=run_id,
                version=__version__,
                wait=options.lock_wait,
                stale_after=options.lock_stale,
                break_lock=options.break_lock,
                note=rec.note,
            )

    @property
    def held(self) -> bool:
        return self.deploy is not None and self.deploy.held

    def needed(self, remote_tree: RemoteTree, *, writes: bool) -> bool:
        """Whether to take the lock now that DST was read: when the plan ``writes``,
        or another run held it meanwhile (then DST may have been changing)."""
        return self.wanted and not self.held and (writes or LOCK_DIR in remote_tree.dirs)

    async def take(self, session: Session, base: str) -> bool:
        """Hold the deploy lock of ``base``; True when another run had it first."""
        lock = self.deploy
        assert lock is not None
        lock.place(base)
        try:
            return await lock.acquire(session)
        except errors.RemoteTargetError:
            pass
        # A first deploy to a new DST: make it (and its parents), then lock it.  If
        # DST was there all along (or another run just made it), the MKD are
        # refused and the second try says why DST takes no lock.
        await run_batch(
            self.pool,
            session,
            [(f"MKD {d}", d) for d in dst_chain(base)],
            on_reply=lambda _d, _r: None,
        )
        return await lock.acquire(session)

    async def release(self, session: Session) -> None:
        """Remove the lock (and its copies) if held; a refusal is a note."""
        lock = self.deploy
        if lock is None or not lock.held:
            return
        # With --swap a copy went with the new release: wherever the burst left
        # the two, both go, each only if it holds this run's entry alone.
        try:
            await lock.release(session, copies_in=self.copies())
        except errors.FatalError:
            raise
        except errors.AsyncMirrorError as exc:
            self.rec.note(f"could not remove the deploy lock {lock.dir}: {exc.user_line()}")

    def note_left(self) -> None:
        """After a fatal error: no session to remove it with, so say where it is."""
        if self.deploy is not None and self.deploy.held:
            self.rec.note(
                f"the deploy lock {self.deploy.dir} is left on the server: the next run "
                "takes it over once this one is known to be gone (--break-lock: at once)"
            )
