"""The round trips of ``--swap`` and ``--rollback``: ready the staging copy, switch, undo.

What moves and in which order is decided in :mod:`asyncmirror.releases`; this
module sends it.  The rules it keeps:

* nothing touches the live DST before the switch: the staging copy is made
  from the previous release (a rename) or created empty (``MKD``), and that
  step also proves the parent directory writable -- before any upload;
* the switch is one write of ``RNFR``/``RNTO`` pairs, so the site is never
  half old, half new, and lacks DST only between two renames the server runs
  back to back;
* when the burst goes wrong the live site is put back as it was before this
  module says anything, and the error says what happened.
"""

from __future__ import annotations

import os
import posixpath
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import NamedTuple

from . import datachannel, errors
from . import state as state_mod
from .deploylock import DeployLock
from .entries import RemoteTree
from .leftovers import Leftovers
from .login import ServerConfig
from .names import STATE_NAME
from .pool import Pool
from .recorder import Recorder
from .releases import (
    BurstResult,
    Copy,
    Layout,
    Rename,
    no_server_copy,
    read_burst,
    release_dirs_of,
    rollback_burst,
    seed_copies,
    seed_dirs,
    server_only,
    switch_burst,
    why_not_switchable,
)
from .remote import list_tree
from .report import Events, Report
from .session import Session
from .taskgroups import task_group


async def exists(session: Session, paths: Sequence[str]) -> list[bool]:
    """Which of ``paths`` are directories, in one round trip (``CWD``, then back home)."""
    home = session.quirks.home or "/"
    replies = await session.pipeline([*(f"CWD {p}" for p in paths), f"CWD {home}"])
    for path, reply in zip(paths, replies, strict=False):
        if reply.is_transient:
            session.check(f"CWD {path}", reply)  # a 4xx: try again later
    return [r.is_complete for r in replies[: len(paths)]]


class Staged(NamedTuple):
    live: bool  # the live DST exists
    fresh: bool  # the staging copy was just created, empty


async def prepare(session: Session, layout: Layout, note: Callable[[str], None]) -> Staged:
    """Make the staging copy ready; say whether the live DST exists and whether
    the staging copy is new (empty: :func:`seed` may fill it from the live site).

    Raises :class:`~errors.RemoteTargetError` when the staging copy cannot be
    made next to DST (the parent is not writable): nothing was changed then.
    """
    live, nxt, prev = await exists(session, [layout.live, layout.next, layout.prev])
    if nxt and prev:
        raise errors.RemoteTargetError(
            f"both {layout.next} and {layout.prev} exist on the server",
            hint=f"remove {layout.next} (an unfinished release) and run again",
        )
    if nxt:
        note(f"continuing the unfinished release in {layout.next}")
        return Staged(live, fresh=False)
    if prev:
        await _rename_or_fail(session, Rename(layout.prev, layout.next))
        return Staged(live, fresh=False)
    reply = await session.command(f"MKD {layout.next}")
    if not reply.is_complete:
        session.check(f"MKD {layout.next}", reply, "5")  # a 4xx is retried
        raise errors.RemoteTargetError(
            f"--swap cannot create the staging copy {layout.next} ({reply.code} {reply.text})",
            hint="--swap needs write access to the directory that holds DST; "
            "deploy without --swap, or choose a DST one level deeper",
        )
    return Staged(live, fresh=True)


async def seed(
    sessions: list[Session],
    layout: Layout,
    live: RemoteTree,
    files: Iterable[str],
    dirs: Iterable[str],
    temp_names: set[str],
) -> int | None:
    """Fill a new, empty staging copy from the live site on the server (mod_copy).

    ``files``/``dirs`` are SRC's (and the state file); ``live`` what the live
    site holds of them.  Returns how many files are in place, or ``None`` when
    the server cannot copy (then nothing was copied).  Temporary names are in
    ``temp_names`` until renamed or removed, so a stop cleans them up.
    """
    copies = seed_copies(layout, live, files, os.urandom(4).hex())
    if not copies:
        return 0
    made = [f"MKD {layout.next}/{d}" for d in seed_dirs(live, dirs)]
    first, rest = copies[0], copies[1:]
    temp_names.add(first.temp)
    replies = await sessions[0].pipeline([*made, *first.lines()])  # dirs first: copies go in
    done = {first: Copy.copied(replies[len(made) :])}
    if no_server_copy(replies[len(made)]):
        temp_names.discard(first.temp)
        return None

    async def copy(session: Session, share: list[Copy]) -> None:
        temp_names.update(c.temp for c in share)
        answers = await session.pipeline([line for c in share for line in c.lines()])
        for i, c in enumerate(share):
            done[c] = Copy.copied(answers[3 * i : 3 * i + 3])

    live_sessions = [s for s in sessions if not s.broken] or [sessions[0]]
    # One error for the run to report; the temporary names are removed by the
    # clean-up that follows a failure or a stop.
    async with task_group() as tg:
        for i, session in enumerate(live_sessions):
            share = rest[i :: len(live_sessions)]
            if share:
                tg.start(copy(session, share))
    # Into place only when copied and stamped; else away (a copy without the
    # live file's time would look newer than SRC and never be replaced).
    lines: list[str] = []
    for c, ok in done.items():
        lines += [f"RNFR {c.temp}", f"RNTO {c.target}"] if ok else [f"DELE {c.temp}"]
    replies = await sessions[0].pipeline(lines)
    placed, i = 0, 0
    for c, ok in done.items():
        if ok:
            if replies[i].code == "350" and replies[i + 1].is_complete:
                placed += 1
                temp_names.discard(c.temp)
            i += 2
        else:
            if replies[i].is_complete or replies[i].code == "550":  # 550: never created
                temp_names.discard(c.temp)
            i += 1
    return placed


async def _rename_or_fail(session: Session, rename: Rename) -> None:
    replies = await session.pipeline(rename.lines())
    result = read_burst([rename], replies)
    if result.failed:
        _, why = result.failed[0]
        raise errors.RemoteTargetError(
            f"cannot rename {rename.source} to {rename.target} ({why})",
            hint="--swap needs write access to the directory that holds DST",
        )


async def _burst(session: Session, renames: Sequence[Rename]) -> BurstResult:
    lines = [line for r in renames for line in r.lines()]
    return read_burst(renames, await session.pipeline(lines))


async def switch(
    session: Session,
    layout: Layout,
    moves: Sequence[str],
    *,
    live_exists: bool,
    note: Callable[[str], None],
) -> int:
    """Put the staging copy live, with the live DST's server-only ``moves``.

    Returns how many of ``moves`` are in the live site now.  Raises
    :class:`~errors.RemoteTargetError` when the switch could not be made; the
    live site is then as it was (what was moved is moved back).
    """
    renames = switch_burst(layout, moves, live_exists=live_exists)
    result = await _burst(session, renames)
    n = len(moves)
    if result.done[-1]:
        # A server-only path that did not move stayed with the old site, now the
        # previous release: bring it over, or say where it is.
        missed = [p for p, done in zip(moves, result.done[:n], strict=True) if not done]
        if not missed:
            return n
        again = [Rename(f"{layout.prev}/{p}", f"{layout.live}/{p}") for p in missed]
        repaired = await _burst(session, again)
        for rename, why in repaired.failed:
            note(f"server-only {rename.source} stayed in the previous release ({why})")
        return n - len(repaired.failed)
    moved = [r for r, done in zip(renames[:n], result.done[:n], strict=True) if done]
    why = result.why[-1] or "not attempted"
    if live_exists and result.done[-2]:
        # The live site stepped aside but the new one did not take its place.
        await _put_back(session, layout.prev, layout.live, f"the switch failed ({why})")
    elif live_exists:
        why = result.why[-2] or why
    await _undo(session, moved)
    raise errors.RemoteTargetError(
        f"the switch to the new release failed ({why}); the live site is unchanged",
        hint=f"the new release stays in {layout.next} for the next try",
    )


async def _put_back(
    session: Session,
    aside: str,
    live: str,
    failed: str,
    error: type[errors.FatalError] = errors.FatalError,
) -> None:
    """The live site stepped aside to ``aside`` and nothing took its place: put it
    back first; if even that fails, say where the live site is now."""
    restore = await _burst(session, [Rename(aside, live)])
    if restore.failed:
        raise error(
            f"{failed} and {live} could not be put back ({restore.why[0]}): "
            f"the live site is at {aside}",
            hint=f"rename {aside} to {live} on the server now",
        )


async def _undo(session: Session, done: Sequence[Rename]) -> None:
    """Move back what a failed burst had moved."""
    if done:
        await _burst(session, [Rename(r.target, r.source) for r in done])


async def check_rollback(session: Session, layout: Layout) -> None:
    """Raise :class:`~errors.RemoteTargetError` unless DST and its previous release exist."""
    live, prev = await exists(session, [layout.live, layout.prev])
    if not prev:
        raise errors.RemoteTargetError(
            f"there is no previous release to roll back to ({layout.prev} does not exist)",
            hint="--rollback needs a DST deployed at least twice with --swap",
        )
    if not live:
        raise errors.RemoteTargetError(f"{layout.live} does not exist on the server")


async def rollback(
    session: Session, layout: Layout, moves: Sequence[str], note: Callable[[str], None]
) -> int:
    """Put the previous release back live; the current one becomes the previous.

    Returns how many of ``moves`` went along.  Raises
    :class:`~errors.RemoteTargetError` when the rollback could not be made; the
    live site is then as it was (what was moved is moved back).
    """
    renames = rollback_burst(layout, moves)
    result = await _burst(session, renames)
    n = len(moves)
    step_aside, go_live, keep = result.done[n], result.done[n + 1], result.done[n + 2]
    if go_live:
        if not keep:
            note(
                f"the release rolled away from stays in {layout.out} ({result.why[n + 2]}); "
                f"rename it to {layout.prev} to be able to switch back"
            )
        stayed = 0
        for rename, done, why in zip(renames[:n], result.done[:n], result.why[:n], strict=True):
            if not done:
                stayed += 1
                note(f"server-only {rename.source} stayed with the release left ({why})")
        return n - stayed
    why = result.why[n + 1] or result.why[n]
    if step_aside:
        await _put_back(
            session,
            layout.out,
            layout.live,
            f"the rollback failed ({why})",
            errors.RemoteTargetError,
        )
    await _undo(session, [r for r, done in zip(renames[:n], result.done[:n], strict=True) if done])
    raise errors.RemoteTargetError(
        f"the rollback failed ({why}); the live site is unchanged",
        hint="check that the FTP user may rename directories next to DST",
    )


async def rollback_site(
    config: ServerConfig,
    dst: str,
    *,
    timezone: tzinfo,
    events: Events,
    lock_wait: float = 0.0,
    lock_stale: float = 3 * 3600.0,
    break_lock: bool = False,
) -> Report:
    """``asyncmirror --rollback DST``: one session, the deploy lock, the state file, one burst.

    DST's deploy lock (see :mod:`asyncmirror.deploylock`; ``lock_wait``,
    ``lock_stale`` and ``break_lock`` as for a mirror run) is held from before
    the state file is read until after the burst, and a copy of it goes live
    inside the previous release, so DST is never unlocked while it exists.  The
    lock is removed at the end, after a failure and after a stop.  What the
    server alone holds in the live DST (files the release did not bring: the
    state file lists those it did) moves into the release going live.
    """
    from . import __version__

    rec = Recorder(events, dry_run=False)
    pool = Pool(config, 1, note=rec.note)
    lock = DeployLock(
        "/",  # placed in DST once the login says where that is
        run_id=os.urandom(4).hex(),
        version=__version__,
        wait=lock_wait,
        stale_after=lock_stale,
        break_lock=break_lock,
        note=rec.note,
    )
    layout: Layout | None = None
    started = time.monotonic()
    try:
        sessions = await pool.start()
        home = pool.quirks.home or "/"
        base = posixpath.normpath(posixpath.join(home, dst.strip() or "."))
        why = why_not_switchable(base, home)
        if why is not None:
            raise errors.UsageError(f"--rollback: {why}", hint="give the DST deployed with --swap")
        layout = Layout.of(base)
        session = sessions[0]
        # The lock first: while a --swap deploy holds it, its staging copy is the
        # previous release renamed, and DST is not what it will be once it is done.
        lock.place(layout.live)
        try:
            await lock.acquire(session)
        except errors.RemoteTargetError:
            await check_rollback(session, layout)  # DST missing: say that, not "cannot lock"
            raise
        try:
            await check_rollback(session, layout)
        except errors.RemoteTargetError:
            await _unlock(session, lock, layout, rec.note)
            raise
        session = await _roll_back(pool, session, layout, lock, timezone, rec.note)
        await _unlock(session, lock, layout, rec.note)
    except GeneratorExit:  # the coroutine is being closed: it may not await
        raise
    except BaseException as exc:
        pool.abort_all()
        if lock.held and layout is not None:
            if isinstance(exc, errors.FatalError) and not isinstance(exc, errors.RemoteTargetError):
                # The server cannot be used: a clean-up session would only wait
                # for its own timeout.
                rec.note(
                    f"the deploy lock {lock.dir} is left on the server: the next run takes "
                    "it over once this one is known to be gone (--break-lock: at once)"
                )
            else:
                # A failed burst, a cut connection or a stop (Ctrl-C, SIGTERM): one
                # fresh session, bounded in time, removes the lock wherever it went.
                placed = layout
                leftovers = Leftovers(pool, rec)
                await leftovers.remove_after_stop(
                    placed.live,
                    config.timeout,
                    then=lambda s: _unlock(s, lock, placed, rec.note),
                )
        raise
    finally:
        await pool.close_all()
        rec.finished(time.monotonic() - started)
    return rec.report


async def _roll_back(
    pool: Pool,
    session: Session,
    layout: Layout,
    lock: DeployLock,
    timezone: tzinfo,
    note: Callable[[str], None],
) -> Session:
    """Under DST's lock: read what the live release brought, lock the previous one, switch."""
    release = await _release_files(session, layout.live, note)
    moves: list[str] = []
    if release is not None:
        live, sessions = await list_tree(
            pool,
            [session],
            layout.live,
            release_dirs_of(release),
            recurse_unknown=False,
            tz=timezone,
            now=datetime.now(UTC),
        )
        session = sessions[0] if sessions else await pool.open_session(replacing=True)
        moves = server_only(live, release, release_dirs_of(release))
    # DST's own lock leaves with the release rolled away from; the copy put in the
    # previous release goes live with it, so DST is locked whenever it exists.
    await lock.hold_also(session, layout.prev)
    moved = await rollback(session, layout, moves, note)
    along = f", {moved} server-only paths moved along" if moved else ""
    note(
        f"rolled back {layout.live} to the previous release{along}; the release left is "
        f"kept in {layout.prev} (--rollback again switches back)"
    )
    return session


async def _unlock(
    session: Session, lock: DeployLock, layout: Layout, note: Callable[[str], None]
) -> None:
    """Remove DST's lock and its copy, wherever the burst left them (a note if it cannot)."""
    try:
        await lock.release(session, copies_in=[layout.prev, layout.out])
    except errors.FatalError:
        raise
    except errors.AsyncMirrorError as exc:
        note(f"could not remove the deploy lock {lock.dir}: {exc.user_line()}")


async def _release_files(
    session: Session, live: str, note: Callable[[str], None]
) -> set[str] | None:
    """The paths the live release brought (its state file), or ``None`` when unknown."""
    try:
        address = await session.passive()
        data = await datachannel.fetch(session, f"RETR {live}/{STATE_NAME}", address)
        return set(state_mod.load(data))
    except errors.FatalError:
        raise
    except (errors.AsyncMirrorError, state_mod.StateError) as exc:
        why = exc.user_line() if isinstance(exc, errors.AsyncMirrorError) else str(exc)
        note(
            f"cannot read the live release's state file ({why}): files only the server "
            "has stay with the release rolled away from"
        )
        return None
