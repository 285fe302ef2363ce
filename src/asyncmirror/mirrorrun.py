"""One mirror run: the phase sequence (``MirrorRun._phases``), from the scan
and the logins to the switch and the lock's release.

Each phase's work lives in its own module: reading DST :mod:`~asyncmirror.remote`,
the plan :mod:`~asyncmirror.planner`, ``--verify`` :mod:`~asyncmirror.verify`,
the state file :mod:`~asyncmirror.statestore`, the uploads
:mod:`~asyncmirror.uploads`, directories and deletions
:mod:`~asyncmirror.dstwrites`, ``--swap`` :mod:`~asyncmirror.swapphases`,
``--site-symlink`` :mod:`~asyncmirror.linkphases`, clean-up after a stop
:mod:`~asyncmirror.leftovers`, the report and events
:mod:`~asyncmirror.recorder`.  This module decides their order, and what the
run does when it fails or is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import threading
import time
from collections.abc import Callable, Iterable

from . import dstwrites, errors, local, releases, remote, verify
from .deploylock import DeployLock
from .dstwrites import dst_chain
from .entries import LocalTree, RemoteTree
from .filters import SITE_DOTFILES, FilterSet, Rule, left_out_site_dotfiles
from .keepalive import kept_alive
from .leftovers import Leftovers
from .linkphases import SiteLinks
from .names import LEGACY_STATE_NAME, LOCK_DIR, STATE_NAME
from .options import Options
from .planner import Plan, PlanOptions, make_plan
from .pool import Pool
from .recorder import Recorder, named
from .report import Report, Verification
from .retry import RetryPolicy
from .scheduler import run_batch
from .session import ServerConfig, Session
from .statestore import StateStore
from .swapphases import SwapPhases
from .transport import TLSPolicy
from .uploads import Uploads


def _rules_from(
    exclude: Iterable[str],
    include: Iterable[str],
    exclude_regex: Iterable[str],
    include_regex: Iterable[str],
) -> list[Rule]:
    rules = [Rule("include", p, "glob") for p in include]
    rules += [Rule("include", p, "regex") for p in include_regex]
    rules += [Rule("exclude", p, "glob") for p in exclude]
    rules += [Rule("exclude", p, "regex") for p in exclude_regex]
    return rules


def _excluder(filters: FilterSet) -> Callable[[str, bool], bool]:
    def excluded(path: str, is_dir: bool) -> bool:
        return filters.excludes(path, is_dir=is_dir)

    return excluded


class MirrorRun:
    """One run of :func:`~asyncmirror.mirroring.run_mirror`."""

    def __init__(self, src: str, dst: str, options: Options) -> None:
        self.src = src
        self.dst = dst
        self.options = options
        rules = options.rules
        if rules is None:
            rules = _rules_from(
                options.exclude, options.include, options.exclude_regex, options.include_regex
            )
        self.filters = filters = FilterSet.from_rules(rules)
        self.config = config = ServerConfig(
            host=options.host,
            port=options.port,
            user=options.user,
            password=options.password,
            tls=TLSPolicy(
                ca_file=options.ca_file, fingerprint=options.fingerprint, insecure=options.insecure
            ),
            timeout=options.timeout,
            trace=options.trace,
            early=tuple(options.early_connections),
        )
        self.plan_options = PlanOptions(
            only_newer=options.only_newer, delete=options.delete, excluded=_excluder(filters)
        )
        self.base = "/"
        self.rec = Recorder(options.events, dry_run=options.dry_run)
        self.report = self.rec.report
        self.pool = Pool(
            config, options.jobs, retry=RetryPolicy(options.retries), note=self.rec.note
        )
        self.leftovers = Leftovers(self.pool, self.rec)
        self.store = StateStore(
            self.pool,
            self.rec,
            self.leftovers,
            enabled=options.state,
            local_file=options.state_file,
        )
        #: The phases of --swap and of --site-symlink, when asked for.
        self.swap = (
            SwapPhases(
                self.pool,
                self.rec,
                options,
                filters,
                self.leftovers,
                state_in_dst=self.store.in_dst,
                look=self._look_at_remote,
            )
            if options.swap
            else None
        )
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
        self.lock: DeployLock | None = None
        #: What --verify found (the last comparison, when DST was read twice).
        self.verification: Verification | None = None
        if options.lock:
            from . import __version__

            self.lock = DeployLock(
                "/",  # placed in DST once the login says where that is
                run_id=self.store.run_id,
                version=__version__,
                wait=options.lock_wait,
                stale_after=options.lock_stale,
                break_lock=options.break_lock,
                note=self.rec.note,
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
            if self.lock is not None and self.lock.held:
                self.rec.note(
                    f"the deploy lock {self.lock.dir} is left on the server: the next run "
                    "takes it over once this one is known to be gone (--break-lock: at once)"
                )
            raise
        except BaseException:
            # Stopped mid-run (Ctrl-C, --deadline, a cancel, a bug): the sessions go
            # first, at once (a host may allow no extra connection; QUIT could wait
            # seconds behind a transfer), then one fresh session removes what is
            # half-written (with nothing to remove, no session is opened).
            self.pool.abort_all()
            held = self.lock is not None and self.lock.held
            await self.leftovers.remove_after_stop(
                self.base, self.config.timeout, then=self._release_lock if held else None
            )
            raise
        finally:
            duration = time.monotonic() - started
            await self.pool.close_all()
            self.rec.finished(duration)
        return self.report

    async def _phases(self) -> None:
        # Scan in a thread while the sessions log in: both take round trips or
        # disk time, neither needs the other.
        loop = asyncio.get_running_loop()
        found_enough = asyncio.Event()
        stop = threading.Event()  # a thread cannot be cancelled: it is told to stop

        def enough() -> None:  # called from the scan's thread
            with contextlib.suppress(RuntimeError):  # the run ended (loop closed) first
                loop.call_soon_threadsafe(found_enough.set)

        scan = asyncio.ensure_future(
            asyncio.to_thread(
                local.scan,
                self.src,
                self.filters,
                enough=self.pool.size,
                on_enough=enough,
                count_dirs=self.plan_options.delete,
                stop=stop,
                links=self.options.site_symlink,
            )
        )

        async def useful() -> int:
            """Sessions worth opening: every one, unless the tree turns out smaller.

            A session is worth its login for each file to upload and, with
            --delete, each directory to list; empty directories are created by
            one session in one pipelined batch.
            """
            found = asyncio.ensure_future(found_enough.wait())
            try:
                await asyncio.wait({scan, found}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                found.cancel()
            if not scan.done():
                return self.pool.size
            small = scan.result()  # a failed scan raises here and stops the logins
            return len(small.files) + (len(small.dirs) if self.plan_options.delete else 0)

        try:
            sessions = await self.pool.start(useful())
            async with kept_alive(sessions):  # a large tree may still be scanning
                # Shielded: a stop must not cancel the waiting task and leave the
                # thread unwaited; _stop_scan tells the thread to stop and waits.
                tree = await asyncio.shield(scan)
        except BaseException:
            # A refused login or a stop must not wait for the rest of a large tree.
            await self._stop_scan(scan, stop)
            raise
        self._note_left_out_dotfiles()
        self._note_not_mirrored(tree.notices)
        for path, why in tree.problems:
            self.rec.failed(path, why)

        base = self.base = self.store.base = self._remote_base()
        if self.links is not None:
            self.plan_options = self.links.place(base, tree, self.plan_options)
        if self.swap is not None:
            refusal = releases.why_not_switchable(base, self.pool.quirks.home)
            if refusal is not None:
                raise errors.UsageError(
                    f"--swap: {refusal}",
                    hint="give a DST below the login directory, or deploy without --swap",
                )
            if self.lock is not None and not self.options.dry_run:
                # Before the staging rename: that already changes the server.
                async with kept_alive(sessions[1:]):  # sessions[0] waits for the lock
                    await self._take_lock(sessions[0], base)
            base = self.base = self.store.base = await self.swap.stage(sessions, base, tree)
        plan, remote_tree, sessions = await self._plan(sessions, base, tree)
        if (
            self.lock is not None
            and not self.lock.held
            and not self.options.dry_run
            and (LOCK_DIR in remote_tree.dirs or self._changes_anything(plan, remote_tree))
        ):
            # Taken only now, so an unchanged rerun costs no round trip -- unless
            # another run held it while DST was read: then DST was changing, and
            # (as when we waited for it) what was read is read again.
            async with kept_alive(sessions[1:]):  # sessions[0] waits for the lock
                waited = await self._take_lock(sessions[0], base)
            if waited or LOCK_DIR in remote_tree.dirs:
                plan, remote_tree, sessions = await self._plan(sessions, base, tree)
        if self.verification is not None:
            self.rec.compared(self.verification)
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
            count = len(plan.delete_files) + len(plan.delete_dirs)
            if self.report.failed:
                self.rec.note("not deleting anything on the server because some files failed")
            elif self.options.max_delete is not None and count > self.options.max_delete:
                msg = (
                    f"{count} deletions planned, more than --max-delete {self.options.max_delete}; "
                    "deleted nothing"
                )
                self.rec.failed(base, msg)
            else:
                sessions[0] = await dstwrites.delete(self.pool, self.rec, sessions[0], base, plan)
        if self.leftovers.temp_names:
            sessions[0] = await self.leftovers.remove_temporaries(sessions[0])
        if self.store.needs_final_write(remote_tree):
            self.store.keep_only(set(tree.files))
            sessions[0] = await self.store.write(sessions[0])
        if self.swap is not None and self.swap.layout is not None:
            await self.swap.switch(sessions, tree, self.lock)
        if self.lock is not None and self.lock.held:
            if not sessions:
                sessions = [await self.pool.open_session(replacing=True)]
            await self._release_lock(sessions[0])

    async def _plan(
        self, sessions: list[Session], base: str, tree: LocalTree
    ) -> tuple[Plan, RemoteTree, list[Session]]:
        """Read DST (and the state file when it can help) and decide what to do."""
        remote_tree, sessions = await self._look_at_remote(sessions, base, tree)
        if self.links is not None and self.plan_options.link_root is not None:
            sessions = await self.links.read_remote(sessions, base, tree, remote_tree)
        options = self.plan_options
        if tree.problems:
            # Never delete under a path we could not read: its contents are unknown.
            options = options._replace(protected=tuple(p for p, _ in tree.problems))
        plan = make_plan(tree, remote_tree, options)
        verify = self.options.verify
        if self.store.enabled and (
            LEGACY_STATE_NAME in remote_tree.files
            # --verify rewrites the state from what it compares: read to tell
            # whether that changes it.  Else only worth a round trip when some
            # upload may prove unchanged.
            or (STATE_NAME in remote_tree.files or not self.store.in_dst if verify else False)
            or (not verify and self.store.may_settle(plan, remote_tree))
        ):
            sessions = await self.store.load(sessions, base, remote_tree)
            if not verify:
                async with kept_alive(sessions):  # hashing large files takes a while
                    await self.store.apply(plan, tree, remote_tree, only_newer=options.only_newer)
        if verify:
            # Contents decide, whatever the listing and the state file said.
            sessions = await self._compare_contents(sessions, base, tree, remote_tree, plan)
        return plan, remote_tree, sessions

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

    def _changes_anything(self, plan: Plan, remote_tree: RemoteTree) -> bool:
        """Whether carrying out ``plan`` writes to DST (what the deploy lock guards)."""
        return bool(
            plan.uploads
            or plan.mkdirs
            or plan.clear_first
            or plan.delete_files
            or plan.delete_dirs
            or plan.links
            or not remote_tree.exists
            or (self.store.in_dst and (self.store.dirty or STATE_NAME not in remote_tree.files))
        )

    # --- what is said about SRC -----------------------------------------------

    def _note_not_mirrored(self, notices: list[tuple[str, str]]) -> None:
        """One note for what FTP cannot carry (FIFOs, link loops...): not failures."""
        if notices:
            paths = [f"{path} ({why})" for path, why in sorted(notices)]
            self.rec.note(f"not mirrored, as FTP cannot carry them: {named(paths)}")

    def _note_left_out_dotfiles(self) -> None:
        """One notice when the filters drop .htaccess & co (lftp's -X '.*' does)."""
        present = [
            (name, is_dir)
            for name, is_dir in SITE_DOTFILES
            if (os.path.isdir if is_dir else os.path.isfile)(os.path.join(self.src, name))
        ]
        dropped = left_out_site_dotfiles(self.filters, present)
        if dropped:
            keep = " ".join(f"-I {name}" for name in dropped)
            self.rec.note(
                f"the filters leave out {', '.join(dropped)}, which the site may need "
                f"(server settings, well-known URLs); add {keep} to upload them"
            )

    # --- the deploy lock --------------------------------------------------------

    async def _take_lock(self, session: Session, base: str) -> bool:
        """Hold the deploy lock of ``base``; True when another run had it first."""
        lock = self.lock
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

    async def _release_lock(self, session: Session) -> None:
        if self.lock is None or not self.lock.held:
            return
        # With --swap a copy went with the new release: wherever the burst left
        # the two, both go, each only if it holds this run's entry alone.
        copies = self.swap.lock_copies() if self.swap is not None else []
        try:
            await self.lock.release(session, copies_in=copies)
        except errors.FatalError:
            raise
        except errors.AsyncMirrorError as exc:
            self.rec.note(f"could not remove the deploy lock {self.lock.dir}: {exc.user_line()}")

    async def _stop_scan(self, scan: asyncio.Future[LocalTree], stop: threading.Event) -> None:
        """Stop the scan's thread and wait for it: it is a few entries from noticing."""
        stop.set()
        if not scan.done():
            await asyncio.wait({scan}, timeout=self.config.timeout)
        if scan.done() and not scan.cancelled():
            exc = scan.exception()  # the run's own error is the one raised
            if isinstance(exc, errors.ScanStopped):
                self.rec.scan_stopped(exc.kept)

    async def _look_at_remote(
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
                *([LOCK_DIR] if self.lock is not None else []),
            ],
            tz=self.options.remote_timezone,
            skip_dir=lambda d: self.filters.excludes(d, is_dir=True),
        )

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
