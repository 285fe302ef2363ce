"""``--swap`` within a mirror run: ready the staging copy beside DST (seeded
from the live site on the server when it can copy), and switch to it at the end.

The names and bursts are :mod:`asyncmirror.releases` (pure); the round trips
:mod:`asyncmirror.switch`; this module is the run's side: when each happens,
what is said, and the deploy lock's copy that goes live with the new release.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from . import errors, releases, remote, switch
from .deploylock import DeployLock
from .entries import LocalTree, RemoteTree
from .filters import FilterSet
from .leftovers import Leftovers
from .names import STATE_NAME
from .options import Options
from .pool import Pool
from .recorder import Recorder
from .session import Session

#: How the run reads what a directory holds of SRC's paths.
Look = Callable[[list[Session], str, LocalTree], Awaitable[tuple[RemoteTree, list[Session]]]]


class SwapPhases:
    """The staging copy of one run and its switch."""

    def __init__(
        self,
        pool: Pool,
        rec: Recorder,
        options: Options,
        filters: FilterSet,
        leftovers: Leftovers,
        *,
        state_in_dst: bool,
        look: Look,
    ) -> None:
        self.pool = pool
        self.rec = rec
        self.options = options
        self.filters = filters
        self.leftovers = leftovers
        self.state_in_dst = state_in_dst
        self.look = look
        #: Where the releases are (once the staging copy is ready).
        self.layout: releases.Layout | None = None
        self.live_exists = True

    async def stage(self, sessions: list[Session], base: str, tree: LocalTree) -> str:
        """Ready the staging copy; the base to upload to."""
        layout = releases.Layout.of(base)
        if self.options.dry_run:
            # Changes nothing: plan against the copy the real run would start from.
            _, nxt, prev = await switch.exists(sessions[0], [layout.live, layout.next, layout.prev])
            return layout.prev if prev and not nxt else layout.next
        staged = await switch.prepare(sessions[0], layout, self.rec.note)
        self.live_exists = staged.live
        self.layout = layout
        if staged.fresh and staged.live:
            await self._seed(sessions, layout, tree)
        return layout.next

    async def _seed(
        self, sessions: list[Session], layout: releases.Layout, tree: LocalTree
    ) -> None:
        """A first --swap: copy the live site into the staging copy on the server
        when it can (mod_copy), so only the differences go up."""
        live, sessions[:] = await self.look(sessions, layout.live, tree)
        own = [STATE_NAME] if self.state_in_dst else []
        try:
            placed = await switch.seed(
                sessions, layout, live, [*tree.files, *own], tree.dirs, self.leftovers.temp_names
            )
        except errors.RetryableError as exc:
            # The copies only save uploads: a cut connection ends them, and what
            # is not in place goes up (copies still under temporary names are
            # removed with the run's other temporaries).
            for s in sessions:
                if s.broken:
                    self.pool.discard(s)  # its slot freed: the uploads regrow to -j
            sessions[:] = [s for s in sessions if not s.broken] or [await self.pool.usable(None)]
            self.rec.note(
                f"first --swap deploy: copying the live site on the server stopped "
                f"({exc.message}); what was not copied goes up to {layout.next}"
            )
            return
        if placed is None:
            self.rec.note(f"first --swap deploy: the whole site goes up to {layout.next}")
        elif placed:
            self.rec.note(
                f"first --swap deploy: {placed} files copied from the live site on the server "
                f"(SITE CPFR/CPTO) into {layout.next}; only the differences go up"
            )

    async def switch(
        self, sessions: list[Session], tree: LocalTree, lock: DeployLock | None
    ) -> None:
        """Put the staging copy live, taking along what only the live DST holds."""
        layout = self.layout
        assert layout is not None
        failed = len(self.rec.report.failed)
        if failed:
            self.rec.note(
                f"the live site is unchanged: {failed} failed; "
                f"the new release stays in {layout.next} for the next try"
            )
            return
        moves: list[str] = []
        if self.live_exists:
            live, sessions[:] = await remote.list_tree(
                self.pool,
                sessions,
                layout.live,
                tree.dirs,
                recurse_unknown=False,
                tz=self.options.remote_timezone,
                now=datetime.now(UTC),
            )
            if not sessions:
                sessions.append(await self.pool.usable(None))

            def movable(path: str, is_dir: bool) -> bool:
                # With --delete only what the filters protect goes along; the rest
                # was meant to go and stays with the previous release.
                return not self.options.delete or self.filters.excludes(path, is_dir=is_dir)

            moves = releases.server_only(live, tree.files, tree.dirs, movable=movable)
        if lock is not None and lock.held:
            # The lock lives inside DST: a copy in the new release goes live with it,
            # so DST is locked whenever it exists (no rename of the lock in the burst,
            # hence no moment when DST is there without it).
            await lock.hold_also(sessions[0], layout.next)
        moved = await switch.switch(
            sessions[0], layout, moves, live_exists=self.live_exists, note=self.rec.note
        )
        along = f", {moved} server-only paths moved along" if moved else ""
        self.rec.note(
            f"switched {layout.live} to the new release{along}; the previous release is "
            f"kept in {layout.prev} (asyncmirror --rollback {layout.live} switches back)"
        )

    def lock_copies(self) -> list[str]:
        """Where a copy of the deploy lock may be (see :meth:`switch`)."""
        return [self.layout.prev, self.layout.next] if self.layout is not None else []
