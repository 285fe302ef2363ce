"""``--verify``: what the server holds, compared by content.

The server's digest command when it has one (the strongest that works on a
file that is there: see :mod:`asyncmirror.remotedigest`), sent pipelined on
every session at once; else each file is downloaded over the pool and hashed
as it arrives.  The local side is hashed in a thread meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import NamedTuple

from . import datachannel, errors
from .pool import Pool
from .remote import remote_join
from .remotedigest import DOWNLOAD, METHODS, DigestMethod, lines_for, local_digest, parse_digest
from .scheduler import Workers
from .session import Session


class Verdict(NamedTuple):
    """What a verification found: the files whose content differs, and how it looked."""

    method: str
    checked: int
    differ: tuple[str, ...]
    unknown: tuple[str, ...]  # no digest from the server (refused, vanished)


async def detect(session: Session, sample: str) -> DigestMethod:
    """The strongest digest method that works on ``sample`` (a file on the server)."""
    for method in METHODS:
        replies = await session.pipeline([*method.setup, method.line(sample)])
        if all(r.is_complete for r in replies[:-1]) and parse_digest(method, replies[-1]):
            return method
    return DOWNLOAD


async def _server_digests(
    sessions: Sequence[Session], method: DigestMethod, paths: Sequence[str]
) -> dict[str, str | None]:
    """Ask every session for its share of ``paths`` at once, pipelined."""
    out: dict[str, str | None] = {}
    shares = [list(paths[i :: len(sessions)]) for i in range(len(sessions))]

    async def ask(session: Session, share: list[str]) -> None:
        if not share:
            return
        replies = await session.pipeline([*method.setup, *lines_for(method, share)])
        for path, reply in zip(share, replies[len(method.setup) :], strict=True):
            out[path] = parse_digest(method, reply)

    async with asyncio.TaskGroup() as tg:
        for session, share in zip(sessions, shares, strict=True):
            tg.create_task(ask(session, share))
    return out


async def _downloaded_digests(
    pool: Pool, sessions: list[Session], paths: Sequence[str], retries: int
) -> tuple[dict[str, str | None], list[Session]]:
    out: dict[str, str | None] = {}

    async def handle(session: Session, path: str, address: tuple[str, int]) -> None:
        data = await datachannel.fetch(session, f"RETR {path}", address)
        h = DOWNLOAD.new()
        h.update(data)
        out[path] = h.hexdigest()

    def failed(path: str, exc: errors.AsyncMirrorError) -> None:
        out[path] = None

    workers: Workers[str] = Workers(
        pool, handle, retries=retries, on_done=lambda _p: None, on_failed=failed
    )
    sessions = await workers.run(sessions, list(paths))
    return out, sessions


async def compare(
    pool: Pool,
    sessions: list[Session],
    base: str,
    files: dict[str, str],
    *,
    retries: int,
) -> tuple[Verdict, list[Session]]:
    """Compare ``files`` (relative path -> local path) with their copies under ``base``."""
    rels = sorted(files)
    if not rels:
        return Verdict("none", 0, (), ()), sessions
    remote_paths = {rel: remote_join(base, rel) for rel in rels}
    method = await detect(sessions[0], remote_paths[rels[0]])

    def hash_local() -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for rel in rels:
            try:
                out[rel] = local_digest(files[rel], method)
            except OSError:
                out[rel] = None  # unreadable now: the upload will say why
        return out

    local_task = asyncio.create_task(asyncio.to_thread(hash_local))
    try:
        if method is DOWNLOAD:
            by_path, sessions = await _downloaded_digests(
                pool, sessions, list(remote_paths.values()), retries
            )
        else:
            by_path = await _server_digests(
                [s for s in sessions if not s.broken], method, list(remote_paths.values())
            )
        local = await local_task
    finally:
        local_task.cancel()
    remote = {rel: by_path.get(remote_paths[rel]) for rel in rels}
    differ = tuple(r for r in rels if remote[r] is not None and remote[r] != local[r])
    unknown = tuple(r for r in rels if remote[r] is None)
    return Verdict(method.name, len(rels), differ, unknown), sessions
