"""The run's side of the state file: load it, apply it to the plan, keep it
up to date as uploads finish, and write it (mid-run snapshots and at the end).

:mod:`asyncmirror.state` is the file format (pure); this module does the I/O:
``RETR``/``STOR`` + rename on DST, or a local ``--state-file``.
"""

from __future__ import annotations

import asyncio
import os
import time

from . import datachannel, digests, errors, remote
from . import state as state_mod
from .entries import LocalFile, LocalTree, RemoteTree
from .leftovers import Leftovers
from .names import LEGACY_STATE_NAME, STATE_NAME, temporary
from .planner import Pending, Plan, Reason, Upload, need_transfer, state_may_settle
from .pool import Pool
from .recorder import Recorder
from .session import Session
from .state import StateEntry

#: Seconds between state snapshots during a run.
STATE_EVERY = 20.0


class Snapshot:
    """The job of writing the state to DST mid-run.

    It rides the upload queue because it needs what an upload needs: a
    session and a data connection, which the upload workers own.
    """


class StateStore:
    """What is known to be on the server, per file, and where it is kept."""

    def __init__(
        self,
        pool: Pool,
        rec: Recorder,
        leftovers: Leftovers,
        *,
        enabled: bool,
        local_file: str | None,
    ) -> None:
        self.pool = pool
        self.rec = rec
        self.leftovers = leftovers
        self.enabled = enabled
        #: ``--state-file``: kept locally instead of in DST.
        self.local_file = local_file
        self.entries: dict[str, StateEntry] = {}
        self.dirty = False
        self.written_at = time.monotonic()
        #: DST's absolute path, once known.
        self.base = "/"
        #: DST still holds the state file under its old, downloadable name: read it,
        #: and remove it with the next write.
        self.legacy = False
        self.run_id = os.urandom(4).hex()

    @property
    def in_dst(self) -> bool:
        """Is the state file kept in DST (to be looked for in its listing)?"""
        return self.enabled and not self.local_file

    async def load(
        self, sessions: list[Session], base: str, remote_tree: RemoteTree
    ) -> list[Session]:
        data: bytes | None = None
        self.legacy = self.in_dst and LEGACY_STATE_NAME in remote_tree.files
        name = LEGACY_STATE_NAME if STATE_NAME not in remote_tree.files else STATE_NAME
        where = self.local_file or remote.remote_join(base, name)
        if self.local_file:
            try:
                data = _read_file(self.local_file)
            except OSError as exc:
                self.rec.note(
                    f"cannot read state file {self.local_file}: {exc.strerror}; "
                    "comparing by the listing only"
                )
        elif name in remote_tree.files:
            session = sessions[0]
            try:
                address = await session.passive()
                data = await datachannel.fetch(session, f"RETR {where}", address)
            except errors.FatalError:
                raise
            except errors.AsyncMirrorError as exc:
                self.rec.note(
                    f"cannot read the state file {where} ({exc.user_line()}); "
                    "comparing by the listing only"
                )
                sessions[0] = await self.pool.usable(session)
        if data is not None:
            try:
                self.entries = state_mod.load(data)
            except state_mod.StateError as exc:
                self.rec.note(
                    f"ignoring the state file {where}: {exc}; comparing by the listing only"
                )
        return sessions

    @staticmethod
    def may_settle(plan: Plan, remote_tree: RemoteTree) -> bool:
        """Is there an upload the state file could prove unnecessary (worth reading it)?"""
        # Only a file that looks newer can be settled: the reason is tested first, so
        # a first upload of 100,000 new files costs no call per file.
        files = remote_tree.files
        newer = Reason.NEWER  # bound once: a member's lookup on its class is slow on 3.11
        return any(
            state_may_settle(u.reason, u.local, files.get(u.path))
            for u in plan.uploads
            if u.reason is newer
        )

    async def apply(
        self, plan: Plan, tree: LocalTree, remote_tree: RemoteTree, *, only_newer: bool
    ) -> None:
        """Move the uploads the state proves unchanged into ``plan.skipped``.

        Files are read (hashed) only when :func:`~asyncmirror.planner.need_transfer`
        asks for their digest.
        """
        if not self.entries:
            return
        unchanged: list[str] = []
        to_hash: list[str] = []
        for u in plan.uploads:
            verdict = need_transfer(
                u.local,
                remote_tree.files.get(u.path),
                only_newer=only_newer,
                state=self.entries.get(u.path),
            )
            if verdict is None:
                unchanged.append(u.path)
            elif verdict is Pending.DIGEST:
                to_hash.append(u.path)
        hashes = await asyncio.to_thread(
            _hash_files, [(tree.files[p], self.entries[p].algorithm) for p in to_hash]
        )
        for path, digest in hashes.items():
            local, entry = tree.files[path], self.entries[path]
            verdict = need_transfer(
                local,
                remote_tree.files.get(path),
                only_newer=only_newer,
                state=entry,
                digest=digest,
            )
            if verdict is None:
                unchanged.append(path)
                # Same bytes, new mtime (a fresh checkout): remember the new
                # mtime so the next run trusts it without reading the file.
                self.entries[path] = entry._replace(mtime=local.mtime)
                self.dirty = True
        plan.skip(unchanged)

    def adopt(self, same: dict[str, str], tree: LocalTree) -> None:
        """Start again from what a comparison of contents proved (``--verify``):
        ``same`` maps each identical file to its digest; nothing else is trusted."""
        entries = {
            p: StateEntry(tree.files[p].size, tree.files[p].mtime, digest)
            for p, digest in same.items()
        }
        if entries != self.entries:
            self.entries = entries
            self.dirty = True

    def record(self, up: Upload, digest: str) -> None:
        """``up`` is on the server, verified, with content ``digest``."""
        self.entries[up.path] = StateEntry(up.size, up.local.mtime, digest)
        self.dirty = True

    def forget(self, path: str) -> None:
        """What the server holds at ``path`` is no longer known."""
        self.entries.pop(path, None)

    def due(self) -> bool:
        """Is a snapshot due (something new, and the last one a while ago)?"""
        return self.enabled and self.dirty and (time.monotonic() - self.written_at > STATE_EVERY)

    def after_upload(self) -> bool:
        """Keep the state close to the truth during long runs: a local state file
        is written at once when due; True when a snapshot to DST is due (it needs
        a session and a data connection: the caller queues a :class:`Snapshot`)."""
        if not self.due():
            return False
        if self.local_file:
            self.store_locally()
            return False
        return True

    def snapshot_failed(self) -> None:
        self.dirty = True  # not written: the next snapshot or the end tries again

    def needs_final_write(self, remote_tree: RemoteTree) -> bool:
        if not self.enabled:
            return False
        if self.in_dst and LEGACY_STATE_NAME in remote_tree.files:
            self.legacy = True  # even when nothing else needed reading it
        missing = (
            not os.path.exists(self.local_file)
            if self.local_file
            else STATE_NAME not in remote_tree.files
        )
        return self.dirty or missing

    def keep_only(self, paths: set[str]) -> None:
        """Forget files no longer in SRC."""
        self.entries = {p: e for p, e in self.entries.items() if p in paths}

    async def store(self, session: Session, address: tuple[str, int] | None = None) -> None:
        """Write the state: to the local --state-file, or to DST by temp name + rename."""
        if self.local_file:
            self.store_locally()
            return
        data = state_mod.dump(self.entries)
        self.dirty = False
        self.written_at = time.monotonic()
        final = remote.remote_join(self.base, STATE_NAME)
        tmp = temporary(final, self.run_id)
        if address is None:
            address = await session.passive()
        self.leftovers.temp_names.add(tmp)
        await datachannel.upload(session, tmp, data, address)
        # One round trip for both: a refused RNFR makes the server answer the
        # RNTO with 503, and the RNFR's reply is the one reported.
        rnfr, rnto = f"RNFR {tmp}", f"RNTO {final}"
        old = remote.remote_join(self.base, LEGACY_STATE_NAME)
        legacy = [f"DELE {old}"] if self.legacy else []
        replies = await session.pipeline([rnfr, rnto, *legacy])
        session.check(rnfr, replies[0], "350")
        session.check(rnto, replies[1], "2")
        self.leftovers.temp_names.discard(tmp)
        # The old name is gone once the new one is written (a 550: already removed).
        self.legacy = False

    def store_locally(self) -> None:
        assert self.local_file is not None
        data = state_mod.dump(self.entries)
        self.dirty = False
        self.written_at = time.monotonic()
        tmp = f"{self.local_file}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self.local_file)  # atomic: never a half-written state
        except OSError as exc:
            self.rec.note(f"cannot write state file {self.local_file}: {exc.strerror}")

    async def write(self, session: Session) -> Session:
        """The final write, retried; a failure is a note (the next run compares by listing)."""
        retry, attempt = self.pool.retry, 0
        while True:
            try:
                session = await self.pool.usable(session)
                await self.store(session)
                return session
            except errors.FatalError:
                raise
            except errors.AsyncMirrorError as exc:
                attempt += 1
                if not retry.again(exc, attempt):
                    self.rec.note(f"could not write the state file: {exc.user_line()}")
                    break
                await retry.wait(attempt)
        if self.leftovers.temp_names:
            session = await self.leftovers.remove_temporaries(await self.pool.usable(session))
        return session


def _hash_files(files: list[tuple[LocalFile, str]]) -> dict[str, str]:
    """The digest of each readable file with the algorithm its state entry used
    (runs in a worker thread: whole files are read here, off the event loop)."""
    out: dict[str, str] = {}
    for f, algorithm in files:
        try:
            out[f.path] = digests.of_file(f.abspath, algorithm)
        except OSError:
            continue  # unreadable now: it will be uploaded (and fail) as usual
    return out


def _read_file(path: str) -> bytes | None:
    """A small local file's bytes, or ``None`` when it does not exist."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
