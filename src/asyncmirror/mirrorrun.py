"""One mirror run: the phase sequence (``MirrorRun._phases``), from the scan
and the logins to the switch and the lock's release.

Each phase's work lives in its own module: the scan and the logins
:mod:`~asyncmirror.startphase`, reading DST and deciding
:mod:`~asyncmirror.planphase` (the decision: :mod:`~asyncmirror.planner`),
the deploy lock :mod:`~asyncmirror.lockphase`, the state file
:mod:`~asyncmirror.statestore`, the uploads :mod:`~asyncmirror.uploads`,
directories and deletions :mod:`~asyncmirror.dstwrites`, ``--swap``
:mod:`~asyncmirror.swapphases`, ``--site-symlink``
:mod:`~asyncmirror.linkphases`, clean-up after a stop
:mod:`~asyncmirror.leftovers`, the report and events
:mod:`~asyncmirror.recorder`; what the options mean to each,
:mod:`~asyncmirror.runconfig`.  This module builds them, decides their order,
and what the run does when it fails or is stopped.
"""

from __future__ import annotations

import posixpath
import time

from . import dstwrites, errors, releases, remote, runconfig
from .dstwrites import dst_chain
from .entries import RemoteTree
from .keepalive import kept_alive
from .leftovers import Leftovers
from .linkphases import SiteLinks
from .lockphase import RunLock
from .names import LOCK_DIR
from .options import Options
from .planphase import PlanPhase
from .pool import Pool
from .recorder import Recorder
from .report import Report
from .retry import RetryPolicy
from .session import Session
from .startphase import scan_and_log_in
from .statestore import StateStore
from .swapphases import SwapPhases
from .uploads import Uploads


class MirrorRun:
    """One run of :func:`~asyncmirror.mirroring.run_mirror`: its parts, built
    from the options, and the order of their phases."""

    def __init__(self, src: str, dst: str, options: Options) -> None:
        self.src = src
        self.dst = dst
        self.options = options
        self.filters = runconfig.filter_set(options)
        self.config = runconfig.server_config(options)
        self.base = "/"
        self.rec = Recorder(options.events, dry_run=options.dry_run)
        self.report = self.rec.report
        self.pool = Pool(
            self.config, options.jobs, retry=RetryPolicy(options.retries), note=self.rec.note
        )
        self.leftovers = Leftovers(self.pool, self.rec)
        self.store = StateStore(
            self.pool,
            self.rec,
            self.leftovers,
            enabled=options.state,
            local_file=options.state_file,
        )
        #: The phases of --site-symlink and of --swap, when asked for.
        self.links = (
            SiteLinks(
                self.pool,
                self.rec,
                tz=options.remote_timezone,
                make_dirs=self._make_dirs,
                uploads=self._uploads,
            )
            if options.site_symlink
            else None
        )
        self.planning = PlanPhase(
            self.pool,
            self.store,
            self.links,
            self.filters,
            runconfig.plan_options(options, self.filters),
            verify=options.verify,
            locking=options.lock,
            tz=options.remote_timezone,
        )
        self.swap = (
            SwapPhases(
                self.pool,
                self.rec,
                options,
                self.filters,
                self.leftovers,
                state_in_dst=self.store.in_dst,
                look=self.planning.look,
            )
            if options.swap
            else None
        )
        self.lock = RunLock(
            options,
            self.pool,
            self.rec,
            run_id=self.store.run_id,
            copies=self.swap.lock_copies if self.swap is not None else list,
        )

    async def run(self) -> Report:
        started = time.monotonic()
        try:
            await self._phases()
        except GeneratorExit:  # the coroutine is being closed: it may not await
            raise
        except errors.FatalError:
            # The server cannot be used -- that is the error: a clean-up session
            # would only wait for its own timeout.  Say what may be left instead.
            self.pool.abort_all()
            self.leftovers.note()
            self.lock.note_left()
            raise
        except BaseException:
            # Stopped mid-run (Ctrl-C, --deadline, a cancel, a bug): the sessions go
            # first, at once (a host may allow no extra connection; QUIT could wait
            # seconds behind a transfer), then one fresh session removes what is
            # half-written (with nothing to remove, no session is opened).
            self.pool.abort_all()
            await self.leftovers.remove_after_stop(
                self.base, self.config.timeout, then=self.lock.release if self.lock.held else None
            )
            raise
        finally:
            duration = time.monotonic() - started
            await self.pool.close_all()
            self.rec.finished(duration)
        return self.report

    async def _phases(self) -> None:
        tree, sessions = await scan_and_log_in(
            self.pool,
            self.rec,
            self.src,
            self.filters,
            count_dirs=self.options.delete,
            links=self.options.site_symlink,
        )
        base = self.base = self.store.base = self._remote_base()
        planning = self.planning
        if self.links is not None:
            planning.plan_options = self.links.place(base, tree, planning.plan_options)
        if self.swap is not None:
            refusal = releases.why_not_switchable(base, self.pool.quirks.home)
            if refusal is not None:
                raise errors.UsageError(
                    f"--swap: {refusal}",
                    hint="give a DST below the login directory, or deploy without --swap",
                )
            if self.lock.wanted:
                # Before the staging rename: that already changes the server.
                async with kept_alive(sessions[1:]):  # sessions[0] waits for the lock
                    await self.lock.take(sessions[0], base)
            base = self.base = self.store.base = await self.swap.stage(sessions, base, tree)
        plan, remote_tree, sessions = await planning.plan(sessions, base, tree)
        if self.lock.needed(remote_tree, writes=planning.changes_anything(plan, remote_tree)):
            # Taken only now, so an unchanged rerun costs no round trip -- unless
            # another run held it while DST was read: then DST was changing, and
            # (as when we waited for it) what was read is read again.
            async with kept_alive(sessions[1:]):  # sessions[0] waits for the lock
                waited = await self.lock.take(sessions[0], base)
            if waited or LOCK_DIR in remote_tree.dirs:
                plan, remote_tree, sessions = await planning.plan(sessions, base, tree)
        if planning.verification is not None:
            self.rec.compared(planning.verification)
        self.rec.planned(plan)

        mkdirs = ([] if remote_tree.exists else dst_chain(base)) + [
            remote.remote_join(base, d) for d in plan.mkdirs
        ]
        if self.options.dry_run:
            self.rec.dry_run(plan, mkdirs)
            return
        if mkdirs:
            clear = [remote.remote_join(base, f) for f in plan.clear_first]
            sessions[0] = await self._make_dirs(sessions[0], mkdirs, clear)
        sessions = await self._uploads(base, remote_tree).run(sessions, plan.uploads)
        if not sessions:
            sessions = [await self.pool.open_session(replacing=True)]
        if plan.links or plan.links_as_copies:
            assert self.links is not None  # links are planned only with --site-symlink
            sessions = await self.links.make(sessions, base, plan, remote_tree)
        if plan.delete_files or plan.delete_dirs:
            sessions[0] = await dstwrites.delete(
                self.pool, self.rec, sessions[0], base, plan, max_delete=self.options.max_delete
            )
        if self.leftovers.temp_names:
            sessions[0] = await self.leftovers.remove_temporaries(sessions[0])
        if self.store.needs_final_write(remote_tree):
            self.store.keep_only(set(tree.files))
            sessions[0] = await self.store.write(sessions[0])
        if self.swap is not None and self.swap.layout is not None:
            await self.swap.switch(sessions, tree, self.lock.deploy)
        if self.lock.held:
            if not sessions:
                sessions = [await self.pool.open_session(replacing=True)]
            await self.lock.release(sessions[0])

    def _remote_base(self) -> str:
        home = self.pool.quirks.home or "/"
        dst = self.dst.strip() or "."
        base = posixpath.normpath(posixpath.join(home, dst))
        return base if base.startswith("/") else "/" + base

    async def _make_dirs(self, session: Session, paths: list[str], clear: list[str]) -> Session:
        return await dstwrites.make_dirs(self.pool, self.rec, session, paths, clear)

    def _uploads(self, base: str, remote_tree: RemoteTree) -> Uploads:
        """The uploads into ``base`` with this run's options."""
        return Uploads(
            self.pool,
            self.rec,
            self.store,
            self.leftovers,
            base=base,
            remote_tree=remote_tree,
            atomic=self.options.atomic,
            set_mtime=self.options.set_mtime,
            checksum=self.options.checksum,
        )
