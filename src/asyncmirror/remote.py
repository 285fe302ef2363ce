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
from datetime import UTC, datetime, tzinfo
from itertools import chain
from typing import NamedTuple

from . import datachannel, errors
from .entries import Kind, ListedEntry, LocalTree, RemoteFile, RemoteTree
from .listing import parse_listing, parse_mlst_reply
from .pool import Pool
from .replies import Reply
from .scheduler import Workers, run_batch
from .session import Session
from .taskgroups import task_group

#: Replies that mean "I do not know this command" (rather than "no such directory").
UNKNOWN_COMMAND = ("500", "501", "502", "504")


class DirJob(NamedTuple):
    rel: str  # "" for DST itself


# For the per-entry code: on Python 3.11 ``Kind.FILE`` goes through
# ``EnumType.__getattr__``, ten times the cost of a global's lookup.
_FILE, _DIR, _LINK = Kind.FILE, Kind.DIR, Kind.LINK


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
        quirks = session.quirks
        use_mlsd = quirks.mlsd is not False
        if use_mlsd:
            command = f"MLSD {path}"
        else:
            # "LIST -a PATH" is unreliable (pyftpdlib reads "-a PATH" as one
            # path or lists the working directory; vsftpd lists a missing
            # directory as empty), so: CWD, pipelined in the same write as a
            # plain "LIST -a" (dotfiles included) of the working directory.
            session.send_with_next_transfer(job, [f"CWD {path}"])
            command = "LIST -a"
        try:
            data = await datachannel.fetch(session, command, address)
        except errors.PermanentReplyError as exc:
            if use_mlsd and exc.code in UNKNOWN_COMMAND:
                quirks.mlsd = False
                raise errors.TransientReplyError(
                    exc.command, exc.code, "retrying with LIST"
                ) from None
            data = None
        finally:
            _, cwd = session.take_riders(job)
        if not use_mlsd and not (cwd and cwd[0].is_complete):
            data = None  # the directory is not there (what was listed is another one)
        if data is None:
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
            if entry.kind is _FILE:
                tree.files[rel] = RemoteFile(rel, entry.size, entry.mtime, entry.precision)
            elif entry.kind is _DIR:
                tree.dirs.add(rel)
                if recurse_unknown and rel not in queued and not skip_dir(rel):
                    queued.add(rel)
                    workers.queue.add(DirJob(rel))
            else:
                _record(tree, rel, entry)

    workers = Workers(
        pool,
        handle,
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
            hint=errors.IP_FILTER_HINT
            if errors.is_data_connection_failure(exc)
            else "without a listing asyncmirror cannot tell what is up to date",
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


class MlstUnsupported(Exception):
    """The server does not know MLST: list directories instead."""


async def read_tree(
    pool: Pool,
    sessions: list[Session],
    base: str,
    local: LocalTree,
    *,
    whole: bool,
    extra_files: Iterable[str],
    tz: tzinfo,
    skip_dir: Callable[[str], bool],
) -> tuple[RemoteTree, list[Session]]:
    """What ``base`` holds of ``local``'s paths, by the cheapest way the server
    allows: pipelined ``MLST`` of exactly those paths; else listings (``MLSD``,
    else ``CWD`` + ``LIST -a``), which ``whole`` (``--delete``: what only the
    server has matters too) always needs.  Every capability fallback of reading
    DST is here, learnt on ``pool.quirks``."""
    quirks = pool.quirks
    if not whole and quirks.mlst is not False:
        try:
            return await probe_tree(
                pool,
                sessions,
                base,
                local.dirs,
                local.files,
                extra_files=extra_files,
            )
        except MlstUnsupported:
            quirks.mlst = False
    return await list_tree(
        pool,
        sessions,
        base,
        local.dirs,
        recurse_unknown=whole,
        tz=tz,
        now=datetime.now(UTC),
        skip_dir=skip_dir,
    )


async def probe_tree(
    pool: Pool,
    sessions: list[Session],
    base: str,
    local_dirs: Iterable[str],
    local_files: Iterable[str],
    *,
    extra_files: Iterable[str] = (),
) -> tuple[RemoteTree, list[Session]]:
    """Ask the server about exactly the paths SRC has, with pipelined ``MLST``.

    ``MLST`` answers on the control connection, so no data connection is
    opened and the commands pipeline: hundreds of paths per round trip, spread
    over every session.  Directories are asked first, so files whose directory
    is missing are not asked at all.  This cannot see files that exist only on
    the server, so ``--delete`` lists directories instead (:func:`list_tree`).
    Raises :class:`MlstUnsupported` when the server does not know ``MLST``.
    """
    tree = RemoteTree()
    dirs = ["", *sorted(local_dirs, key=lambda d: (d.count("/"), d))]
    # A large tree asks its shallowest directories first, and the rest only
    # where no ancestor is known to be missing: a first upload does not ask
    # about thousands of directories under a DST that is not there.  (A small
    # tree is asked in one round: a second round trip would cost more.)  A
    # directory whose MLST is refused though it exists (ProFTPD's HideNoAccess)
    # hides what is below it then, and that is uploaded again: the safe side.
    missing: set[str] = set()
    first = _DIRS_AT_ONCE + 1  # and "", DST itself
    for rnd, asked in enumerate((dirs[:first], dirs[first:])):
        if rnd:
            asked = [d for d in asked if not _parent_missing(d, missing)]
        answers = await _mlst_many(pool, sessions, base, asked) if asked else {}
        for rel, entry in answers.items():
            if entry is None:
                missing.add(rel)
            elif rel == "":
                if entry.kind is not Kind.DIR:
                    tree.exists = False
            else:
                _record(tree, rel, entry)
        if "" in missing or not tree.exists:
            tree.exists = False
            return tree, sessions
    # A file is asked when its directory is there ("" is base itself).  Paths are
    # relative, without "//": rpartition's head is posixpath.dirname, at a
    # fraction of its cost over 100,000 files.
    present = {"", *tree.dirs}
    wanted = [f for f in chain(local_files, extra_files) if f.rpartition("/")[0] in present]
    answers = await _mlst_many(pool, sessions, base, wanted)
    for rel, entry in answers.items():
        if entry is not None:
            _record(tree, rel, entry)
    return tree, sessions


#: Directories asked in the first round of probe_tree (the shallowest).
_DIRS_AT_ONCE = 500


def _record(tree: RemoteTree, rel: str, entry: ListedEntry) -> None:
    if entry.kind is _FILE:
        tree.files[rel] = RemoteFile(rel, entry.size, entry.mtime, entry.precision)
    elif entry.kind is _DIR:
        tree.dirs.add(rel)
    else:
        tree.others.add(rel)
        if entry.kind is _LINK:
            tree.links[rel] = entry.target


async def read_links(
    pool: Pool,
    session: Session,
    base: str,
    tree: RemoteTree,
    paths: Iterable[str],
    *,
    tz: tzinfo,
    now: datetime,
) -> Session:
    """Learn which of ``paths`` are symbolic links on the server, and their targets.

    ``MLST`` follows a link (ProFTPD shows the target's ``type=dir``) and
    ``MLSD`` shows no target, so the parents of ``paths`` are asked with
    ``STAT DIR``, whose ``ls -l`` lines come on the control connection
    (pipelined: one round trip) and show ``name -> target``.  What they show
    to be a link moves to ``tree.links`` (and ``tree.others``).  A server
    without ``STAT DIR`` teaches nothing: the links are then taken as unknown.
    """
    parents = sorted(
        {
            p
            for p in (posixpath.dirname(path) for path in paths)
            if (p == "" and tree.exists) or p in tree.dirs
        }
    )
    wanted = set(paths)

    def on_reply(parent: str, reply: Reply) -> None:
        if not reply.is_complete or len(reply.lines) < 2:
            return
        # "212-Status of DIR:", one " ls -l" line each, "212 End of status".
        lines = [line[1:] if line.startswith(" ") else line for line in reply.lines[1:-1]]
        for entry in parse_listing(lines, fmt="list", now=now, tz=tz):
            rel = f"{parent}/{entry.name}" if parent else entry.name
            if entry.kind is Kind.LINK and rel in wanted:
                tree.files.pop(rel, None)
                tree.dirs.discard(rel)
                tree.others.add(rel)
                tree.links[rel] = entry.target

    commands = [(f"STAT {remote_join(base, p)}", p) for p in parents]
    return await run_batch(pool, session, commands, on_reply=on_reply)


async def _mlst_many(
    pool: Pool, sessions: list[Session], base: str, rels: list[str]
) -> dict[str, ListedEntry | None]:
    """``MLST`` every path, split over the sessions; ``None`` for "no such path"."""
    out: dict[str, ListedEntry | None] = {}
    if not rels:
        return out
    n = len(sessions)
    parts = [rels[i::n] for i in range(n)]

    async def run(index: int, part: list[str]) -> None:
        attempt = 0
        while part:
            try:
                session = sessions[index] = await pool.usable(sessions[index])
                replies = await session.pipeline([f"MLST {remote_join(base, r)}" for r in part])
                for rel, reply in zip(part, replies, strict=True):
                    if reply.code in UNKNOWN_COMMAND:
                        raise MlstUnsupported()
                    if reply.is_transient:
                        raise errors.TransientReplyError(f"MLST {rel}", reply.code, reply.text)
            except errors.RetryableError as exc:
                attempt += 1
                if not pool.retry.again(exc, attempt):
                    raise
                await pool.retry.wait(attempt)
                continue
            for rel, reply in zip(part, replies, strict=True):
                out[rel] = parse_mlst_reply(reply.lines) if reply.is_complete else None
            return

    async with task_group(prefer=(MlstUnsupported, errors.FatalError)) as tg:
        for i, part in enumerate(parts):
            if part:
                tg.start(run(i, part))
    return out
