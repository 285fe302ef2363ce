"""Listing DST over the pool into a :class:`~entries.RemoteTree`.

The counterparts of *all* local directories are listed at once, spread over
every session, instead of level by level after each parent's listing: we know
from the local tree which remote directories matter.  A ``550`` means the
directory does not exist yet.  With ``--delete`` the directories found only on
the server are listed too, as they are discovered.

``MLSD`` is tried first (UTC, second-precise times); a server that does not
know it gets ``LIST -a`` (server-local, minute-precise times, shifted by
``--remote-timezone``).  That is decided by trying once, since FEAT is never sent.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from . import datachannel, errors
from .entries import Kind, RemoteFile, RemoteTree
from .listing import parse_listing
from .pool import Pool
from .scheduler import Workers
from .session import Session

#: Replies that mean "I do not know this command" (rather than "no such directory").
UNKNOWN_COMMAND = ("500", "501", "502", "504")


@dataclass(frozen=True, slots=True)
class DirJob:
    rel: str  # "" for DST itself


def remote_join(base: str, rel: str) -> str:
    return posixpath.join(base, rel) if rel else base


async def list_tree(
    pool: Pool,
    sessions: list[Session],
    base: str,
    local_dirs: Iterable[str],
    *,
    recurse_unknown: bool,
    tz: tzinfo,
    now: datetime,
    retries: int,
    skip_dir: Callable[[str], bool] = lambda _d: False,
) -> tuple[RemoteTree, list[Session]]:
    """List ``base`` and the remote counterparts of ``local_dirs``.

    ``recurse_unknown`` also lists directories that exist only on the server
    (needed for ``--delete``).  ``skip_dir(rel)`` leaves excluded directories
    unlisted.  Returns the tree and the sessions still open.
    """
    tree = RemoteTree()
    missing: set[str] = set()
    queued: set[str] = {""}
    failures: list[tuple[str, errors.AsyncMirrorError]] = []
    jobs = [DirJob("")] + [DirJob(d) for d in sorted(local_dirs, key=lambda d: (d.count("/"), d))]
    queued.update(d.rel for d in jobs)

    workers: Workers[DirJob]

    async def handle(session: Session, job: DirJob, address: tuple[str, int]) -> None:
        path = remote_join(base, job.rel)
        use_mlsd = session.quirks.mlsd is not False
        command = f"MLSD {path}" if use_mlsd else f"LIST -a {path}"
        try:
            data = await datachannel.fetch(session, command, address)
        except errors.PermanentReplyError as exc:
            if use_mlsd and exc.code in UNKNOWN_COMMAND and session.quirks.mlsd is None:
                session.quirks.mlsd = False
                raise errors.TransientReplyError(
                    exc.command, exc.code, "retrying with LIST"
                ) from None
            missing.add(job.rel)
            if job.rel == "":
                tree.exists = False
            return
        if use_mlsd:
            session.quirks.mlsd = True
        text = data.decode("utf-8", errors="surrogateescape")
        entries = parse_listing(
            # Split on LF only: str.splitlines() also splits on U+2028 and
            # friends, which a hostile file name could use to forge entries.
            [line.rstrip("\r") for line in text.split("\n")],
            fmt="mlsd" if use_mlsd else "list",
            now=now,
            tz=tz,
        )
        for entry in entries:
            rel = f"{job.rel}/{entry.name}" if job.rel else entry.name
            if entry.kind is Kind.FILE:
                tree.files[rel] = RemoteFile(rel, entry.size, entry.mtime, entry.precision)
            elif entry.kind is Kind.DIR:
                tree.dirs.add(rel)
                if recurse_unknown and rel not in queued and not skip_dir(rel):
                    queued.add(rel)
                    workers.queue.add(DirJob(rel))
            else:
                tree.others.add(rel)

    workers = Workers(
        pool,
        handle,
        retries=retries,
        on_done=lambda _job: None,
        on_failed=lambda job, exc: failures.append((job.rel, exc)),
        skip=lambda job: _parent_missing(job.rel, missing),
    )
    # Parents first so that a missing parent spares its children a round trip.
    sessions = await workers.run(sessions, jobs)
    if failures:
        rel, exc = failures[0]
        raise errors.FatalError(
            f"cannot list remote directory {remote_join(base, rel)!r}: {exc.user_line()}",
            hint="without a listing asyncmirror cannot tell what is up to date",
        )
    tree.dirs.discard("")
    return tree, sessions


def _parent_missing(rel: str, missing: set[str]) -> bool:
    if not missing:
        return False
    while rel:
        rel = posixpath.dirname(rel)
        if rel in missing:
            return True
    return False
