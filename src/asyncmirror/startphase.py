"""The start of a run: SRC scanned in a thread while the sessions log in.

Both take disk time or round trips and neither needs the other.  The logins
are as many as the tree can keep busy (``Pool.start``'s ``useful``): the scan
says so once it has kept enough entries, or by ending smaller.  A thread
cannot be cancelled: :class:`SrcScan` owns it, tells it to stop and waits for
it, so a refused login or a stop does not wait for the rest of a large tree.
Then what is said about SRC: what FTP cannot carry, the site dotfiles the
filters drop, the paths that could not be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from types import TracebackType

from . import errors, local
from .entries import LocalTree
from .filters import SITE_DOTFILES, FilterSet, left_out_site_dotfiles
from .keepalive import kept_alive
from .pool import Pool
from .recorder import Recorder, named
from .session import Session


async def scan_and_log_in(
    pool: Pool,
    rec: Recorder,
    src: str,
    filters: FilterSet,
    *,
    count_dirs: bool,
    links: bool,
) -> tuple[LocalTree, list[Session]]:
    """SRC's tree and the run's first sessions, as many as the tree needs.

    ``count_dirs`` (with --delete): each directory is worth a session too, as
    each is listed; ``links`` records SRC's links (--site-symlink).
    """
    scan = SrcScan(
        src,
        filters,
        rec,
        enough=pool.size,
        count_dirs=count_dirs,
        links=links,
        timeout=pool.config.timeout,
    )
    async with scan:
        sessions = await pool.start(scan.sessions_useful())
        async with kept_alive(sessions):  # a large tree may still be scanning
            tree = await scan.tree()
    _note_left_out_dotfiles(rec, src, filters)
    _note_not_mirrored(rec, tree.notices)
    for path, why in tree.problems:
        rec.failed(path, why)
    return tree, sessions


class SrcScan:
    """:func:`local.scan` in a thread, owned by an ``async with`` block.

    The thread starts on entry.  On leaving, it is told to stop (a no-op once
    it has ended) and waited for, up to ``timeout``: it is a few entries from
    noticing.  A scan it stopped part way is said (``Events.scan_stopped``);
    the error that ended the block is the one raised.
    """

    def __init__(
        self,
        src: str,
        filters: FilterSet,
        rec: Recorder,
        *,
        enough: int,
        count_dirs: bool,
        links: bool,
        timeout: float,
    ) -> None:
        self._src = src
        self._filters = filters
        self._rec = rec
        self._enough = enough
        self._count_dirs = count_dirs
        self._links = links
        self._timeout = timeout
        self._stop = threading.Event()  # a thread cannot be cancelled: it is told to stop
        #: Set once the size of the work is known: enough entries kept, or the scan over.
        self._sized = asyncio.Event()
        self._task: asyncio.Task[LocalTree] | None = None

    async def __aenter__(self) -> SrcScan:
        loop = asyncio.get_running_loop()
        sized = self._sized

        def enough() -> None:  # called from the scan's thread
            with contextlib.suppress(RuntimeError):  # the run ended (loop closed) first
                loop.call_soon_threadsafe(sized.set)

        self._task = asyncio.create_task(
            asyncio.to_thread(
                local.scan,
                self._src,
                self._filters,
                enough=self._enough,
                on_enough=enough,
                count_dirs=self._count_dirs,
                stop=self._stop,
                links=self._links,
            )
        )
        # The scan's end sizes the work too (a tree smaller than ``enough``, or a
        # failed scan): one event to wait for, not a race of two.
        self._task.add_done_callback(lambda _: sized.set())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._task
        assert task is not None
        self._stop.set()
        if not task.done():
            await asyncio.wait({task}, timeout=self._timeout)
        if task.done() and not task.cancelled():
            failure = task.exception()  # the run's own error is the one raised
            if isinstance(failure, errors.ScanStopped):
                self._rec.scan_stopped(failure.kept)

    async def sessions_useful(self) -> int:
        """Sessions worth opening: every one, unless the tree turns out smaller.

        A session is worth its login for each file to upload and, with
        ``count_dirs``, each directory to list; empty directories are created
        by one session in one pipelined batch.
        """
        await self._sized.wait()
        task = self._task
        assert task is not None
        if not task.done():
            return self._enough
        small = task.result()  # a failed scan raises here and stops the logins
        return len(small.files) + (len(small.dirs) if self._count_dirs else 0)

    async def tree(self) -> LocalTree:
        """The whole tree, once scanned."""
        assert self._task is not None
        # Shielded: a cancel here would cancel only the wait for the thread, and
        # leave it running; the block's end stops it and waits for it instead.
        return await asyncio.shield(self._task)


def _note_not_mirrored(rec: Recorder, notices: list[tuple[str, str]]) -> None:
    """One note for what FTP cannot carry (FIFOs, link loops...): not failures."""
    if notices:
        paths = [f"{path} ({why})" for path, why in sorted(notices)]
        rec.note(f"not mirrored, as FTP cannot carry them: {named(paths)}")


def _note_left_out_dotfiles(rec: Recorder, src: str, filters: FilterSet) -> None:
    """One notice when the filters drop .htaccess & co (lftp's -X '.*' does)."""
    present = [
        (name, is_dir)
        for name, is_dir in SITE_DOTFILES
        if (os.path.isdir if is_dir else os.path.isfile)(os.path.join(src, name))
    ]
    dropped = left_out_site_dotfiles(filters, present)
    if dropped:
        keep = " ".join(f"-I {name}" for name in dropped)
        rec.note(
            f"the filters leave out {', '.join(dropped)}, which the site may need "
            f"(server settings, well-known URLs); add {keep} to upload them"
        )
