"""``--verify``: what the server holds, compared by content.

The server's digest command when it has one (the strongest that answers for a
file that is there: :data:`remotedigest.METHODS`), sent pipelined on every
session at once; files it gives no digest for, and every file on a server
without one, are downloaded over the pool and hashed as they arrive.  The
local side is hashed in a thread meanwhile, with the server's algorithm and
the state file's from one read.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from . import datachannel, errors
from .entries import LocalFile, LocalTree, RemoteTree
from .planner import Plan, Reason, Upload, content_candidates
from .pool import Pool, Retired
from .remote import remote_join
from .remotedigest import (
    DOWNLOAD,
    METHODS,
    DigestMethod,
    all_lines,
    answered,
    local_digests,
    parse_digest,
)
from .replies import Reply
from .report import Verification
from .scheduler import Workers, run_batch
from .session import Session
from .taskgroups import task_group


class Verdict(NamedTuple):
    """What a comparison of contents found."""

    method: str  # how the server's side was read: "HASH SHA-256", ..., "download"
    #: Identical files, with the state file's digest of their bytes.
    same: dict[str, str]
    differ: tuple[str, ...]
    #: Neither a digest nor a download could be had (or the local file is unreadable).
    unknown: tuple[str, ...]


async def detect(session: Session, sample: str) -> DigestMethod:
    """The strongest digest method that answers for ``sample`` (a file on the
    server); :data:`DOWNLOAD` when none does.  All are asked in one round trip."""
    replies = await session.pipeline(all_lines(METHODS, sample))
    found = answered(METHODS, replies)
    return DOWNLOAD if found is None else found[0]


async def settle(
    pool: Pool,
    sessions: list[Session],
    base: str,
    tree: LocalTree,
    remote_tree: RemoteTree,
    plan: Plan,
) -> tuple[Verdict, Verification, list[Session]]:
    """Settle every file the server holds at the local size by its content,
    whatever its time says: the same are skipped, the others uploaded."""
    candidates = {p: tree.files[p] for p in content_candidates(plan, remote_tree)}
    verdict, sessions = await compare(pool, sessions, base, candidates)
    plan.settle(
        verdict.same,
        [Upload(p, tree.files[p].size, Reason.CONTENT, tree.files[p]) for p in verdict.differ],
    )
    found = Verification(verdict.method, len(candidates), verdict.differ, verdict.unknown)
    return verdict, found, sessions


async def compare(
    pool: Pool,
    sessions: list[Session],
    base: str,
    files: Mapping[str, LocalFile],
) -> tuple[Verdict, list[Session]]:
    """Compare ``files`` (relative path -> local file) with their copies under ``base``."""
    rels = sorted(files)
    if not rels:
        return Verdict("none", {}, (), ()), sessions
    remote_paths = {rel: remote_join(base, rel) for rel in rels}
    method = pool.quirks.digest
    if method is None:
        method = pool.quirks.digest = await detect(sessions[0], remote_paths[rels[0]])

    stop = threading.Event()

    def hash_local() -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        for rel in rels:
            if stop.is_set():
                break
            try:
                out[rel] = local_digests(files[rel].abspath, method)
            except OSError:
                continue  # unreadable now: unknown (an upload would say why)
        return out

    local_task = asyncio.ensure_future(asyncio.to_thread(hash_local))
    try:
        asked: dict[str, str | None] = {}
        if method is not DOWNLOAD:
            asked, sessions = await _asked(pool, sessions, method, remote_paths)
        # No digest for these (or no command at all): read them instead.
        missing = [rel for rel in rels if asked.get(rel) is None]
        fetched, sessions = await _downloaded(pool, sessions, remote_paths, missing)
        ours = await local_task
    finally:
        stop.set()
        local_task.cancel()
    same: dict[str, str] = {}
    differ: list[str] = []
    unknown: list[str] = []
    for rel in rels:
        mine = ours.get(rel)
        # A download is hashed here with the state file's algorithm (mine[1]);
        # a server's digest is in the server's (mine[0]).
        theirs, kind = (fetched[rel], 1) if rel in fetched else (asked.get(rel), 0)
        if mine is None or theirs is None:
            unknown.append(rel)
        elif theirs == mine[kind]:
            same[rel] = mine[1]
        else:
            differ.append(rel)
    return Verdict(method.name, same, tuple(differ), tuple(unknown)), sessions


async def _asked(
    pool: Pool,
    sessions: list[Session],
    method: DigestMethod,
    remote_paths: Mapping[str, str],
) -> tuple[dict[str, str | None], list[Session]]:
    """Every session asks for its share of the digests, all pipelined at once."""
    out: dict[str, str | None] = {}
    rels = sorted(remote_paths)
    live = []
    for s in sessions:
        if s.broken:
            pool.discard(s)
        else:
            live.append(s)
    if not live:
        live.append(await pool.open_session(replacing=True))
    shares = [rels[i :: len(live)] for i in range(len(live))]
    kept: list[Session] = []

    async def ask(session: Session, share: list[str]) -> None:
        lines = [line for rel in share for line in method.lines(remote_paths[rel])]
        step = len(method.setup) + 1
        try:
            replies = await session.pipeline(lines)
        except errors.RetryableError:
            # The connection broke: a fresh one asks again, in batches that
            # survive another break (only what was not answered is sent again).
            session.mark_broken()
            try:
                session = await pool.usable(session)
            except Retired:
                return  # the host took the slot back: the downloads read these
            answers: dict[str, str | None] = {}

            def on_reply(rel: str | None, reply: Reply) -> None:
                if rel is not None:
                    answers[rel] = parse_digest(method, reply)

            commands: list[tuple[str, str | None]] = []
            for rel in share:
                commands += [(line, None) for line in method.setup]
                commands.append((f"{method.command} {remote_paths[rel]}", rel))
            try:
                session = await run_batch(pool, session, commands, on_reply=on_reply)
            except errors.RetryableError:
                pool.discard(session)
                return  # what was answered counts; the downloads read the rest
            finally:
                out.update(answers)
        else:
            for rel, reply in zip(share, replies[step - 1 :: step], strict=True):
                out[rel] = parse_digest(method, reply)
        kept.append(session)

    async with task_group() as tg:
        for session, share in zip(live, shares, strict=True):
            if share:
                tg.start(ask(session, share))
            else:
                kept.append(session)
    return out, kept


async def _downloaded(
    pool: Pool,
    sessions: list[Session],
    remote_paths: Mapping[str, str],
    rels: Sequence[str],
) -> tuple[dict[str, str | None], list[Session]]:
    """Download each of ``rels`` over the pool, hashing it as it arrives."""
    out: dict[str, str | None] = {}
    if not rels:
        return out, sessions

    async def handle(session: Session, rel: str, address: tuple[str, int]) -> None:
        h = DOWNLOAD.new()
        await datachannel.fetch_into(session, f"RETR {remote_paths[rel]}", address, h.update)
        out[rel] = h.hexdigest()

    def failed(rel: str, exc: errors.AsyncMirrorError) -> None:
        out[rel] = None

    workers: Workers[str] = Workers(pool, handle, on_done=lambda _rel: None, on_failed=failed)
    sessions = await workers.run(sessions, list(rels))
    return out, sessions
