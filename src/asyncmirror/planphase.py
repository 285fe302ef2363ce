"""A run's plan: DST read, the state file when it can help, ``--verify``'s digests.

:meth:`PlanPhase.plan` may run twice in one run: when the deploy lock was
waited for (or another run held it while DST was read), DST was changing and
is read again.  :meth:`PlanPhase.look` is also ``--swap``'s way of reading the
live copy.  The decision itself is :mod:`~asyncmirror.planner`'s (pure).
"""

from __future__ import annotations

from datetime import tzinfo

from . import remote, verify
from .entries import LocalTree, RemoteTree
from .filters import FilterSet
from .keepalive import kept_alive
from .linkphases import SiteLinks
from .names import LEGACY_STATE_NAME, LOCK_DIR, STATE_NAME
from .planner import Plan, PlanOptions, make_plan
from .pool import Pool
from .report import Verification
from .session import Session
from .statestore import StateStore


class PlanPhase:
    """Reading DST and deciding what to do, with this run's options."""

    def __init__(
        self,
        pool: Pool,
        store: StateStore,
        links: SiteLinks | None,
        filters: FilterSet,
        plan_options: PlanOptions,
        *,
        verify: bool,
        locking: bool,
        tz: tzinfo,
    ) -> None:
        self.pool = pool
        self.store = store
        self.links = links
        self.filters = filters
        #: The planner's options (``--site-symlink`` places its link root once DST is known).
        self.plan_options = plan_options
        self.verify = verify
        self.locking = locking
        self.tz = tz
        #: What --verify found (the last comparison, when DST was read twice).
        self.verification: Verification | None = None

    async def plan(
        self, sessions: list[Session], base: str, tree: LocalTree
    ) -> tuple[Plan, RemoteTree, list[Session]]:
        """Read DST (and the state file when it can help) and decide what to do."""
        remote_tree, sessions = await self.look(sessions, base, tree)
        if self.links is not None and self.plan_options.link_root is not None:
            sessions = await self.links.read_remote(sessions, base, tree, remote_tree)
        options = self.plan_options
        if tree.problems:
            # Never delete under a path we could not read: its contents are unknown.
            options = options._replace(protected=tuple(p for p, _ in tree.problems))
        plan = make_plan(tree, remote_tree, options)
        store = self.store
        if store.enabled and (
            LEGACY_STATE_NAME in remote_tree.files
            # --verify rewrites the state from what it compares: read to tell
            # whether that changes it.  Else only worth a round trip when some
            # upload may prove unchanged.
            or (STATE_NAME in remote_tree.files or not store.in_dst if self.verify else False)
            or (not self.verify and store.may_settle(plan, remote_tree))
        ):
            sessions = await store.load(sessions, base, remote_tree)
            if not self.verify:
                async with kept_alive(sessions):  # hashing large files takes a while
                    await store.apply(plan, tree, remote_tree, only_newer=options.only_newer)
        if self.verify:
            # Contents decide, whatever the listing and the state file said.
            sessions = await self._compare_contents(sessions, base, tree, remote_tree, plan)
        return plan, remote_tree, sessions

    async def look(
        self, sessions: list[Session], base: str, tree: LocalTree
    ) -> tuple[RemoteTree, list[Session]]:
        """What DST holds of SRC's paths (and asyncmirror's own entries)."""
        return await remote.read_tree(
            self.pool,
            sessions,
            base,
            tree,
            whole=self.plan_options.delete,
            extra_files=[
                *([STATE_NAME, LEGACY_STATE_NAME] if self.store.in_dst else []),
                *([LOCK_DIR] if self.locking else []),
            ],
            tz=self.tz,
            skip_dir=lambda d: self.filters.excludes(d, is_dir=True),
        )

    def changes_anything(self, plan: Plan, remote_tree: RemoteTree) -> bool:
        """Whether carrying out ``plan`` writes to DST (what the deploy lock guards)."""
        store = self.store
        return bool(
            plan.uploads
            or plan.mkdirs
            or plan.clear_first
            or plan.delete_files
            or plan.delete_dirs
            or plan.links
            or not remote_tree.exists
            or (store.in_dst and (store.dirty or STATE_NAME not in remote_tree.files))
        )

    async def _compare_contents(
        self,
        sessions: list[Session],
        base: str,
        tree: LocalTree,
        remote_tree: RemoteTree,
        plan: Plan,
    ) -> list[Session]:
        """``--verify``: contents settle the plan; the state file follows them."""
        verdict, self.verification, sessions = await verify.settle(
            self.pool, sessions, base, tree, remote_tree, plan
        )
        self.store.adopt(verdict.same, tree)
        return sessions
