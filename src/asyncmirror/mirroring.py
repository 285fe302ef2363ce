"""``mirror()``: scan, list, plan, run -- the one orchestration.

The local scan runs in a worker thread while the sessions log in; then DST is
listed over the whole pool, the planner decides, and the scheduler creates
directories (pipelined, parents first), uploads (one worker per session,
verification pipelined behind the next transfer) and, with ``delete``, removes
what is gone -- only when every upload succeeded.

This module owns that sequence (``_Run._phases``) and nothing else: one
upload is :mod:`~asyncmirror.uploads`, the state file
:mod:`~asyncmirror.statestore`, clean-up after a stop
:mod:`~asyncmirror.leftovers`, the report and events
:mod:`~asyncmirror.recorder`, the options :mod:`~asyncmirror.options`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, tzinfo

from . import errors, local, releases, remote, switch, verify
from .deploylock import DeployLock
from .early import EarlyConnection
from .entries import LocalTree, RemoteTree
from .filters import SITE_DOTFILES, FilterSet, Rule, left_out_site_dotfiles
from .keepalive import kept_alive
from .leftovers import Leftovers
from .names import LEGACY_STATE_NAME, LOCK_DIR, STATE_NAME
from .options import Options
from .planner import Link, Plan, PlanOptions, Reason, Upload, content_candidates, make_plan
from .pool import Pool
from .recorder import Recorder
from .replies import Reply
from .report import Events, Report, Verification
from .retry import RetryPolicy
from .scheduler import run_batch
from .session import ServerConfig, Session, Trace
from .statestore import StateStore
from .transport import TLSPolicy
from .uploads import Uploads


async def mirror(
    src: str,
    dst: str,
    *,
    host: str,
    port: int = 21,
    user: str,
    password: str,
    jobs: int = 8,
    exclude: Sequence[str] = (),
    include: Sequence[str] = (),
    exclude_regex: Sequence[str] = (),
    include_regex: Sequence[str] = (),
    rules: Sequence[Rule] | None = None,
    delete: bool = False,
    dry_run: bool = False,
    only_newer: bool = True,
    atomic: bool = False,
    set_mtime: bool = True,
    ca_file: str | None = None,
    fingerprint: str | None = None,
    insecure: bool = False,
    timeout: float = 30.0,
    deadline: float | None = None,
    retries: int = 5,
    max_delete: int | None = None,
    state: bool = True,
    state_file: str | None = None,
    remote_timezone: tzinfo = UTC,
    events: Events | None = None,
    trace: Trace | None = None,
    early_connections: Sequence[EarlyConnection] = (),
    swap: bool = False,
    lock: bool = True,
    lock_wait: float = 0.0,
    lock_stale: float = 3 * 3600.0,
    break_lock: bool = False,
    verify: bool = False,
    checksum: bool = False,
    site_symlink: bool = False,
) -> Report:
    """Mirror the local directory ``src`` to ``dst`` on an FTPS server.

    Uploads what is missing on the server, differs in size, or is newer
    locally (``only_newer``); with ``delete`` also removes what exists only on
    the server.  ``exclude``/``include`` are lftp ``-X``/``-I`` globs,
    ``exclude_regex``/``include_regex`` lftp ``-x``/``-i`` regexes (or pass
    ordered ``rules``).

    Runs in the caller's event loop (asyncio), prints nothing unless ``events``
    or ``trace`` are given, and is cancellable: a cancel (or the ``deadline``)
    first removes the uploads it cut from the server, on one fresh session within
    ``min(timeout, 15)`` seconds (a second cancel skips that).  Returns a :class:`Report`;
    files that failed are listed in ``report.failed`` (``report.exit_code`` is
    1).  Raises :class:`~errors.UsageError` for bad input and
    :class:`~errors.FatalError` when the server cannot be used (connection,
    TLS, login); ``deadline`` seconds bound the whole run
    (:class:`~errors.TimeoutExpired`).  ``early_connections`` are connections
    to ``host:port`` the caller began in advance (see :mod:`asyncmirror.early`),
    no more than the run will use: the first sessions start from them.

    With ``swap`` the live ``dst`` is not touched until the new release is
    complete: the run brings a staging copy beside it up to date, then
    switches with renames sent in one burst (see :mod:`asyncmirror.releases`);
    when anything fails first, the live site stays as it was.

    A run that changes DST first takes its deploy lock (see
    :mod:`asyncmirror.deploylock`): another run holding it makes this one wait
    up to ``lock_wait`` seconds, then raise :class:`~errors.LockHeldError`; a
    lock older than ``lock_stale`` seconds, or any with ``break_lock``, is
    taken over.  ``lock=False`` takes none.

    ``verify`` compares contents instead of trusting sizes and times: by the
    server's digest command (``HASH``, ``XSHA256``, ... pipelined), else by
    downloading; only what differs is uploaded, each difference is in
    ``report.verification``, and the state file is rewritten from what was
    compared.  ``checksum`` checks each upload by the server's digest command
    (when it has one) instead of its size alone.

    ``site_symlink`` makes each symbolic link in ``src`` whose target is in
    ``src`` too as a link on the server (``SITE SYMLINK``, ProFTPD's
    mod_site_misc), after the uploads, instead of uploading its target's
    content again; a server that refuses gets the content (one note).  ProFTPD
    writes the target as an absolute path in the FTP namespace.  Not with
    ``swap``, whose renames would leave such targets pointing at the old names.
    """
    return await run_mirror(src, dst, Options.from_mapping(locals()))


async def run_mirror(src: str, dst: str, options: Options) -> Report:
    """:func:`mirror` with its keyword arguments gathered in one :class:`Options`."""
    _check_src(src)  # before any connection: a typo in SRC should not cost a login
    for what, value in (
        ("user name", options.user),
        ("password", options.password),
        ("host", options.host),
    ):
        if "\r" in value or "\n" in value:
            # Typically a value read from a file with Windows line ends.
            raise errors.UsageError(
                f"the {what} contains a line break (CR or LF)",
                hint="strip the line ends from where it comes from (e.g. a CRLF .env file)",
            )
    if options.site_symlink and options.swap:
        raise errors.UsageError(
            "--site-symlink cannot be used with --swap",
            hint="SITE SYMLINK writes absolute targets, which the switch's renames would "
            "leave pointing into the staging name; drop one of them",
        )
    run = _Run(src, dst, options)
    if options.deadline is None:
        return await run.run()
    try:
        async with asyncio.timeout(options.deadline):
            return await run.run()
    except TimeoutError:
        raise errors.TimeoutExpired(
            f"the run did not finish within the deadline of {options.deadline:g} s",
            hint="raise --deadline, or check the connection to the server",
        ) from None


async def rollback(
    dst: str,
    *,
    host: str,
    port: int = 21,
    user: str,
    password: str,
    ca_file: str | None = None,
    fingerprint: str | None = None,
    insecure: bool = False,
    timeout: float = 30.0,
    remote_timezone: tzinfo = UTC,
    events: Events | None = None,
    trace: Trace | None = None,
    lock_wait: float = 0.0,
    lock_stale: float = 3 * 3600.0,
    break_lock: bool = False,
) -> Report:
    """Switch ``dst`` back to the release before the last ``mirror(..., swap=True)``.

    One burst of renames on one session; what only the server holds in the live
    release moves along (see :mod:`asyncmirror.switch`).  The release it leaves
    becomes the previous one, so calling it again goes forward.  Raises
    :class:`~errors.RemoteTargetError` when there is nothing to roll back to.

    It holds DST's deploy lock as a mirror run does, across the renames:
    another run holding it makes this one wait up to ``lock_wait`` seconds,
    then raise :class:`~errors.LockHeldError` with nothing renamed; a lock
    older than ``lock_stale`` seconds, or any with ``break_lock``, is taken
    over.  The lock is removed at the end, after a failure or a cancel.
    """
    config = ServerConfig(
        host=host,
        port=port,
        user=user,
        password=password,
        tls=TLSPolicy(ca_file=ca_file, fingerprint=fingerprint, insecure=insecure),
        timeout=timeout,
        trace=trace,
    )
    return await switch.rollback_site(
        config,
        dst,
        timezone=remote_timezone,
        events=events or Events(),
        lock_wait=lock_wait,
        lock_stale=lock_stale,
        break_lock=break_lock,
    )


#: How many things that cannot be mirrored one note names.
NOTICES_SHOWN = 10


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


class _Run:
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
        #: With --swap: where the releases are, and whether the live DST exists.
        self.layout: releases.Layout | None = None
        self.live_exists = True
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
                tree = await scan
        except BaseException:
            # A refused login or a stop must not wait for the rest of a large tree.
            await self._stop_scan(scan, stop)
            raise
        self._note_left_out_dotfiles()
        self._note_not_mirrored(tree.notices)
        for path, why in tree.problems:
            self.rec.failed(path, why)

        base = self.base = self.store.base = self._remote_base()
        if self.options.site_symlink:
            self._place_links(base, tree)
        if self.options.swap:
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
            base = self.base = self.store.base = await self._stage(sessions, base, tree)
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

        mkdirs = ([] if remote_tree.exists else _dst_chain(base)) + [
            remote.remote_join(base, d) for d in plan.mkdirs
        ]
        if self.options.dry_run:
            self.rec.dry_run(plan, mkdirs)
            return
        if mkdirs:
            clear = [remote.remote_join(base, f) for f in plan.clear_first]
            sessions[0] = await self._mkdirs(sessions[0], mkdirs, clear)
        sessions = await self._uploads(base, remote_tree).run(sessions, plan.uploads)
        if not sessions:
            sessions = [await self.pool.open_session(replacing=True)]
        if plan.links or plan.links_as_copies:
            sessions = await self._links(sessions, base, plan, remote_tree)
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
                await self._deletes(sessions[0], base, plan)
        if self.leftovers.temp_names:
            sessions[0] = await self.leftovers.remove_temporaries(sessions[0])
        if self.store.needs_final_write(remote_tree):
            self.store.keep_only(set(tree.files))
            sessions[0] = await self.store.write(sessions[0])
        if self.layout is not None:
            await self._switch(sessions, self.layout, tree)
        if self.lock is not None and self.lock.held:
            if not sessions:
                sessions = [await self.pool.open_session(replacing=True)]
            await self._release_lock(sessions[0])

    async def _plan(
        self, sessions: list[Session], base: str, tree: LocalTree
    ) -> tuple[Plan, RemoteTree, list[Session]]:
        """Read DST (and the state file when it can help) and decide what to do."""
        remote_tree, sessions = await self._look_at_remote(sessions, base, tree)
        sessions = await self._read_remote_links(sessions, base, tree, remote_tree)
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
        """``--verify``: settle every file the server holds at the local size by
        its content, whatever its time says."""
        candidates = {p: tree.files[p] for p in content_candidates(plan, remote_tree)}
        verdict, sessions = await verify.compare(self.pool, sessions, base, candidates)
        plan.settle(
            verdict.same,
            [Upload(p, tree.files[p].size, Reason.CONTENT, tree.files[p]) for p in verdict.differ],
        )
        self.store.adopt(verdict.same, tree)
        self.verification = Verification(
            verdict.method, len(candidates), verdict.differ, verdict.unknown
        )
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
        if not notices:
            return
        shown = "; ".join(f"{path} ({why})" for path, why in sorted(notices)[:NOTICES_SHOWN])
        more = len(notices) - NOTICES_SHOWN
        tail = f"; and {more} more" if more > 0 else ""
        self.rec.note(f"not mirrored, as FTP cannot carry them: {shown}{tail}")

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
            [(f"MKD {d}", d) for d in _dst_chain(base)],
            on_reply=lambda _d, _r: None,
        )
        return await lock.acquire(session)

    async def _release_lock(self, session: Session) -> None:
        if self.lock is None or not self.lock.held:
            return
        # With --swap a copy went with the new release (see _switch): wherever the
        # burst left the two, both go, each only if it holds this run's entry alone.
        copies = [self.layout.prev, self.layout.next] if self.layout is not None else []
        try:
            await self.lock.release(session, copies_in=copies)
        except errors.FatalError:
            raise
        except errors.AsyncMirrorError as exc:
            self.rec.note(f"could not remove the deploy lock {self.lock.dir}: {exc.user_line()}")

    # --- --swap ---------------------------------------------------------------

    async def _stage(self, sessions: list[Session], base: str, tree: LocalTree) -> str:
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
        live, sessions[:] = await self._look_at_remote(sessions, layout.live, tree)
        own = [STATE_NAME] if self.store.in_dst else []
        placed = await switch.seed(
            sessions, layout, live, [*tree.files, *own], tree.dirs, self.leftovers.temp_names
        )
        if placed is None:
            self.rec.note(f"first --swap deploy: the whole site goes up to {layout.next}")
        elif placed:
            self.rec.note(
                f"first --swap deploy: {placed} files copied from the live site on the server "
                f"(SITE CPFR/CPTO) into {layout.next}; only the differences go up"
            )

    async def _switch(
        self, sessions: list[Session], layout: releases.Layout, tree: LocalTree
    ) -> None:
        """Put the staging copy live, taking along what only the live DST holds."""
        if self.report.failed:
            self.rec.note(
                f"the live site is unchanged: {len(self.report.failed)} failed; "
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
                sessions.append(await self.pool.open_session(replacing=True))

            def movable(path: str, is_dir: bool) -> bool:
                # With --delete only what the filters protect goes along; the rest
                # was meant to go and stays with the previous release.
                return not self.options.delete or self.filters.excludes(path, is_dir=is_dir)

            moves = releases.server_only(live, tree.files, tree.dirs, movable=movable)
        if self.lock is not None and self.lock.held:
            # The lock lives inside DST: a copy in the new release goes live with it,
            # so DST is locked whenever it exists (no rename of the lock in the burst,
            # hence no moment when DST is there without it).
            await self.lock.hold_also(sessions[0], layout.next)
        moved = await switch.switch(
            sessions[0], layout, moves, live_exists=self.live_exists, note=self.rec.note
        )
        along = f", {moved} server-only paths moved along" if moved else ""
        self.rec.note(
            f"switched {layout.live} to the new release{along}; the previous release is "
            f"kept in {layout.prev} (asyncmirror --rollback {layout.live} switches back)"
        )

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

    # --- --site-symlink ---------------------------------------------------------

    def _place_links(self, base: str, tree: LocalTree) -> None:
        """Links are made under ``base`` -- unless the login is chrooted: SITE
        SYMLINK (ProFTPD) writes absolute targets in the FTP namespace, which a
        web server outside the FTP root would resolve elsewhere."""
        if (self.pool.quirks.home or "/") != "/":
            self.plan_options = self.plan_options._replace(link_root=base)
        elif tree.links:
            self.rec.note(
                f"--site-symlink: {len(tree.links)} links mirrored as copies: the login "
                "directory is / (a chrooted login), and SITE SYMLINK writes absolute targets "
                "that a web server outside the FTP root would not find"
            )

    async def _read_remote_links(
        self, sessions: list[Session], base: str, tree: LocalTree, remote_tree: RemoteTree
    ) -> list[Session]:
        """With --site-symlink: which of SRC's links are links on the server already."""
        if self.plan_options.link_root is None or not tree.links or not remote_tree.exists:
            return sessions
        sessions[0] = await remote.read_links(
            self.pool,
            sessions[0],
            base,
            remote_tree,
            tree.links,
            tz=self.options.remote_timezone,
            now=datetime.now(UTC),
        )
        return sessions

    async def _links(
        self, sessions: list[Session], base: str, plan: Plan, remote_tree: RemoteTree
    ) -> list[Session]:
        """Make the planned links (after the uploads, so that every target is
        complete when a link to it appears); what the server refuses goes up
        as a copy, said once."""
        if plan.links_as_copies:
            self._note_links_as_copies(plan.links_as_copies)
        if not plan.links:
            return sessions
        # Made even when some upload failed: a link to a directory missing a file
        # is no worse than a copy missing it, and a missing target is refused (550)
        # and goes up as a copy, which fails (and is reported) as its target did.
        refused: dict[str, str] = {}  # link path -> the server's reply
        stuck: set[str] = set()  # old links that would not go: no copy through them

        def on_reply(key: tuple[str, Link], reply: Reply) -> None:
            verb, lk = key
            if verb == "DELE":
                if not reply.is_complete:
                    stuck.add(lk.path)
                    why = f"could not remove the link to elsewhere: {reply.code} {reply.text}"
                    self.rec.failed(lk.path, why)
            elif reply.is_complete:
                self.rec.linked(lk.path, lk.target)
            elif lk.path not in stuck:
                refused[lk.path] = f"{reply.code} {reply.text}"

        commands: list[tuple[str, tuple[str, Link]]] = []
        for lk in plan.links:
            if lk.replace:
                commands.append((f"DELE {remote.remote_join(base, lk.path)}", ("DELE", lk)))
            line = f"SITE SYMLINK {lk.target} {remote.remote_join(base, lk.path)}"
            commands.append((line, ("SITE", lk)))
        sessions[0] = await run_batch(self.pool, sessions[0], commands, on_reply=on_reply)
        if not refused:
            return sessions
        first = refused[min(refused)]
        shown = ", ".join(sorted(refused)[:NOTICES_SHOWN])
        more = f" and {len(refused) - NOTICES_SHOWN} more" if len(refused) > NOTICES_SHOWN else ""
        self.rec.note(
            f"the server refused SITE SYMLINK ({first}): {len(refused)} links uploaded as "
            f"copies of their targets instead: {shown}{more}"
        )
        instead = plan.fallback(refused)
        if instead.mkdirs:
            paths = [remote.remote_join(base, d) for d in instead.mkdirs]
            sessions[0] = await self._mkdirs(sessions[0], paths, [])
        if instead.uploads:
            sessions = await self._uploads(base, remote_tree).run(sessions, instead.uploads)
            if not sessions:
                sessions = [await self.pool.open_session(replacing=True)]
        return sessions

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

    def _note_links_as_copies(self, copies: list[tuple[str, str]]) -> None:
        shown = "; ".join(f"{path} ({why})" for path, why in copies[:NOTICES_SHOWN])
        more = len(copies) - NOTICES_SHOWN
        tail = f"; and {more} more" if more > 0 else ""
        self.rec.note(f"--site-symlink: mirrored as copies, not links: {shown}{tail}")

    # --- directories --------------------------------------------------------

    async def _mkdirs(self, session: Session, paths: list[str], clear: list[str]) -> Session:
        """Create directories, parents first, after removing files in their way."""

        def on_reply(key: tuple[str, str], reply: Reply) -> None:
            verb, path = key
            if not reply.is_complete:
                # Usually "exists" (DST's own parents); a real problem shows up
                # as the failure of the uploads into it, with the server's words.
                return
            if verb == "DELE":
                self.rec.deleted(path)
            else:
                self.rec.made_dir(path)

        commands = [(f"DELE {p}", ("DELE", p)) for p in clear]
        commands += [(f"MKD {p}", ("MKD", p)) for p in paths]
        return await run_batch(self.pool, session, commands, on_reply=on_reply)

    # --- deletions ------------------------------------------------------------

    async def _deletes(self, session: Session, base: str, plan: Plan) -> None:
        def on_reply(path: str, reply: Reply) -> None:
            if reply.is_complete:
                self.rec.deleted(path)
            else:  # permanent, or transient with the retries used up
                self.rec.failed(path, f"delete failed: {reply.code} {reply.text}")

        commands = [(f"DELE {remote.remote_join(base, f)}", f) for f in plan.delete_files]
        commands += [(f"RMD {remote.remote_join(base, d)}", d) for d in plan.delete_dirs]
        await run_batch(self.pool, session, commands, on_reply=on_reply)


def _dst_chain(base: str) -> list[str]:
    """``/a/b/c`` -> ``/a``, ``/a/b``, ``/a/b/c``: DST and any missing parents."""
    parts = [p for p in base.split("/") if p]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _check_src(src: str) -> None:
    if not os.path.isdir(src):
        what = "is not a directory" if os.path.exists(src) else "does not exist"
        raise errors.UsageError(
            f"source directory {src!r} {what}", hint="give the local directory to upload as SRC"
        )
