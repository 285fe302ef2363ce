"""One upload, start to finish, and the workers that run them all.

An upload goes to its real name, or with ``--atomic`` to a temporary name
renamed into place.  Its checks (rename, time, ``SIZE``) go out behind the
next transfer (see :mod:`asyncmirror.scheduler`).  From the moment ``STOR``
goes out until those checks pass, the file may be partial on the server:
:class:`~asyncmirror.leftovers.Leftovers` holds it until then, with the sizes
it may rightly have.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import datachannel, errors, remote
from .digests import Hasher
from .entries import RemoteTree
from .leftovers import Leftovers
from .names import temporary
from .planner import Upload
from .pool import Pool
from .quirks import ServerQuirks
from .recorder import Recorder
from .remotedigest import DOWNLOAD, METHODS, DigestMethod, all_lines, answered, none_known
from .replies import Reply, format_mfmt, parse_size
from .scheduler import Deferred, Workers
from .session import Session
from .statestore import Snapshot, StateStore

Job = Upload | Snapshot


class Uploads:
    """The uploads of one run into ``base`` (DST's absolute path)."""

    def __init__(
        self,
        pool: Pool,
        rec: Recorder,
        store: StateStore,
        leftovers: Leftovers,
        *,
        base: str,
        remote_tree: RemoteTree,
        atomic: bool,
        set_mtime: bool,
        checksum: bool = False,
    ) -> None:
        self.pool = pool
        self.rec = rec
        self.store = store
        self.leftovers = leftovers
        self.base = base
        self.remote_tree = remote_tree
        self.atomic = atomic
        self.set_mtime = set_mtime
        self.checksum = checksum
        self.unchecked = 0  # --checksum: uploads the server gave no digest for
        self.quirks = pool.quirks
        self.snapshot_queued = False
        #: Uploads failed for want of a data connection, and for other reasons.
        self.refused = [0, 0]
        self.workers: Workers[Job] = Workers(
            pool,
            self._handle,
            on_done=self._done,
            on_failed=self._failed,
            on_retry=self._retrying,
        )

    async def run(self, sessions: list[Session], uploads: Sequence[Upload]) -> list[Session]:
        """Upload all; then remove what the uploads that failed for good left partial."""
        if self.set_mtime and self.quirks.mtime_command is None:
            self.quirks.mtime_command = "MFMT"  # tried first; _learn_mtime falls back
        sessions = await self.workers.run(sessions, list(uploads))
        if self.checksum and self.rec.report.uploaded:
            self._note_unchecked()
        if self.refused[0] and not self.refused[1] and not self.rec.report.uploaded:
            self.rec.note(errors.IP_FILTER_HINT)
        full = self.workers.out_of_space
        if full is not None:
            unstarted = sorted(u.path for u in self.workers.not_started if isinstance(u, Upload))
            for path in unstarted:
                self.store.forget(path)
            if any(isinstance(u, Snapshot) for u in self.workers.not_started):
                self.store.snapshot_failed()  # written at the end, if it can be
            self.rec.note(
                f"the server is out of space ({full.reply}): "
                + (f"{len(unstarted)} more uploads not started; " if unstarted else "")
                + full.advice
            )
        partial = self.leftovers.partial
        failed_for_good = {f.path for f in self.rec.report.failed}
        doomed = {p: sizes for p, sizes in partial.items() if p in failed_for_good}
        if doomed:
            if not sessions:
                sessions = [await self.pool.open_session(replacing=True)]
            sessions[0] = await self.leftovers.remove_partial(sessions[0], self.base, doomed)
            for p in doomed:
                del partial[p]
        return sessions

    async def _handle(self, session: Session, up: Job, address: tuple[str, int]) -> Deferred | None:
        if isinstance(up, Snapshot):
            await self.store.store(session, address)
            return None
        atomic = self.atomic
        partial = self.leftovers.partial
        temp_names = self.leftovers.temp_names
        target = remote.remote_join(self.base, up.path)
        stored = temporary(target) if atomic else target
        methods = self._digest_methods()
        ours = {m.algorithm: m.new() for m in methods}
        stats = datachannel.DataStats(tuple(ours.values()))
        if atomic:
            temp_names.add(stored)
        try:
            await datachannel.upload(session, stored, up.local.abspath, address, stats)
        except BaseException as exc:
            # A temporary file (--atomic) is removed at the end of the run.  Under
            # the real name, ProFTPD truncates the old file as soon as it reads
            # STOR, even if no data connection follows: measured, a STOR and a
            # dropped connection leave a 0-byte file.
            stopped = not isinstance(exc, errors.AsyncMirrorError)
            if atomic:
                pass
            elif stopped and stats.replied:
                partial.pop(up.path, None)  # the 226 came before the stop: it is whole
            elif stats.sent:
                old = self.remote_tree.files.get(up.path)
                # Stopped, every byte may have arrived with the 226 not yet read:
                # the local size is then right.  Failed, it proves nothing (the
                # bytes may be short, or a mix if the file changed as it was read).
                # After a 226 the old version is gone.
                old_size = old.size if old is not None and not stats.stored else None
                partial[up.path] = (old_size, up.size if stopped else None)
            raise
        if not atomic:
            # Sent and stored, but not yet checked (SIZE, MFMT follow): until
            # _done(), what the server holds is right only at the size sent.
            partial[up.path] = (None, stats.bytes)
        lines: list[str] = []
        expect: list[tuple[str, str]] = []
        if atomic:
            lines += [f"RNFR {stored}", f"RNTO {target}"]
            expect += [("RNFR", "350"), ("RNTO", "2")]
        mtime_line = (
            _mtime_line(self.quirks.mtime_command, target, up.local.mtime)
            if self.set_mtime
            else None
        )
        if mtime_line:
            lines.append(mtime_line)
            expect.append(("MTIME", "2"))
        lines.append(f"SIZE {target}")
        expect.append(("SIZE", "213"))
        checked = len(lines)
        lines += all_lines(methods, target)

        def check(replies: list[Reply]) -> None:
            replies, digest_replies = replies[:checked], replies[checked:]
            for (what, code), reply in zip(expect, replies, strict=True):
                if what == "MTIME":
                    _learn_mtime(self.quirks, mtime_line or "", reply)
                    continue
                if not reply.code.startswith(code):
                    session.check(f"{what} {target}", reply, code)
            if atomic:
                temp_names.discard(stored)  # renamed into place
            remote_size = parse_size(replies[-1].text)
            if remote_size != stats.bytes:
                raise errors.VerifyError(
                    f"{target}: {remote_size} bytes on the server after sending {stats.bytes}"
                )
            if methods:
                self._check_digest(up, target, methods, digest_replies, ours)
            self.rec.verified(stats.bytes)
            self.store.record(up, stats.digest)

        return Deferred(lines, check)

    def _digest_methods(self) -> tuple[DigestMethod, ...]:
        """--checksum: the digest commands to send after an upload.  All of
        them (pipelined, no extra round trip) until one has answered."""
        if not self.checksum:
            return ()
        known = self.quirks.digest
        if known is None:
            return METHODS
        return () if known is DOWNLOAD else (known,)

    def _check_digest(
        self,
        up: Upload,
        target: str,
        methods: tuple[DigestMethod, ...],
        replies: list[Reply],
        ours: dict[str, Hasher],
    ) -> None:
        found = answered(methods, replies)
        if found is None:
            if self.quirks.digest is None and none_known(methods, replies):
                self.quirks.digest = DOWNLOAD  # the server has no digest command
            self.unchecked += 1
            return
        method, theirs = found
        if self.quirks.digest is None:
            self.quirks.digest = method
        if theirs != ours[method.algorithm].hexdigest():
            # The server holds other bytes at the right size: never leave them
            # under the real name as if they were the file.
            self.leftovers.partial[up.path] = (None, None)
            raise errors.VerifyError(
                f"{target}: the server's {method.name} of the upload is not that of the bytes sent"
            )

    def _note_unchecked(self) -> None:
        if self.quirks.digest is DOWNLOAD or self.quirks.digest is None:
            self.rec.note(
                "--checksum: the server answers none of HASH, XSHA256, XSHA1, XMD5, XCRC; "
                "uploads were checked by size only (asyncmirror --doctor lists what it offers)"
            )
        elif self.unchecked:
            self.rec.note(
                f"--checksum: the server gave no {self.quirks.digest.name} for "
                f"{self.unchecked} uploads; those were checked by size only"
            )

    def _done(self, up: Job) -> None:
        if isinstance(up, Snapshot):
            self.snapshot_queued = False
            return
        self.leftovers.partial.pop(up.path, None)
        self.rec.uploaded(up)
        if self.store.after_upload() and not self.snapshot_queued:
            self.snapshot_queued = True
            self.workers.queue.add(Snapshot())

    def _failed(self, up: Job, exc: errors.AsyncMirrorError) -> None:
        if isinstance(up, Snapshot):
            self.snapshot_queued = False
            self.store.snapshot_failed()
            return
        self.store.forget(up.path)
        self.rec.failed(up.path, exc.user_line())
        self.refused[not errors.is_data_connection_failure(exc)] += 1

    def _retrying(self, up: Job, exc: errors.AsyncMirrorError, n: int) -> None:
        if isinstance(up, Snapshot):
            return
        self.rec.retrying(up.path, exc.user_line(), n)


def _mtime_line(command: str | None, path: str, mtime: float) -> str | None:
    stamp = format_mfmt(mtime)
    if command == "MFMT":
        return f"MFMT {stamp} {path}"
    if command == "SITE UTIME":
        return f"SITE UTIME {stamp} {path}"
    return None


def _learn_mtime(quirks: ServerQuirks, line: str, reply: Reply) -> None:
    """Remember which time-setting command works; a refusal is not a failure."""
    current = quirks.mtime_command
    if reply.is_complete:
        return
    if reply.code in remote.UNKNOWN_COMMAND or reply.is_permanent:
        if current == "MFMT" and line.startswith("MFMT"):
            quirks.mtime_command = "SITE UTIME"
        elif current == "SITE UTIME" and line.startswith("SITE"):
            quirks.mtime_command = ""
