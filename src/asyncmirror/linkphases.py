"""``--site-symlink`` within a mirror run: where links may be made, which are on
the server already, and the one batch of ``SITE SYMLINK`` after the uploads
(with copies uploaded for what the server refuses).

What to do with each link is the planner's (``plan_links``, pure); this module
is the run's side of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, tzinfo

from . import remote
from .entries import LocalTree, RemoteTree
from .planner import Link, Plan, PlanOptions
from .pool import Pool
from .recorder import Recorder, named
from .replies import Reply
from .scheduler import run_batch
from .session import Session
from .uploads import Uploads

MakeDirs = Callable[[Session, list[str], list[str]], Awaitable[Session]]
MakeUploads = Callable[[str, RemoteTree], Uploads]


class SiteLinks:
    """The links of one run."""

    def __init__(
        self,
        pool: Pool,
        rec: Recorder,
        *,
        tz: tzinfo,
        make_dirs: MakeDirs,
        uploads: MakeUploads,
    ) -> None:
        self.pool = pool
        self.rec = rec
        self.tz = tz
        self.make_dirs = make_dirs
        self.uploads = uploads

    def place(self, base: str, tree: LocalTree, options: PlanOptions) -> PlanOptions:
        """Links are made under ``base`` -- unless the login is chrooted: SITE
        SYMLINK (ProFTPD) writes absolute targets in the FTP namespace, which a
        web server outside the FTP root would resolve elsewhere."""
        if (self.pool.quirks.home or "/") != "/":
            return options._replace(link_root=base)
        if tree.links:
            self.rec.note(
                f"--site-symlink: {len(tree.links)} links mirrored as copies: the login "
                "directory is / (a chrooted login), and SITE SYMLINK writes absolute targets "
                "that a web server outside the FTP root would not find"
            )
        return options

    async def read_remote(
        self, sessions: list[Session], base: str, tree: LocalTree, remote_tree: RemoteTree
    ) -> list[Session]:
        """Which of SRC's links are links on the server already (into ``remote_tree``)."""
        if not tree.links or not remote_tree.exists:
            return sessions
        sessions[0] = await remote.read_links(
            self.pool,
            sessions[0],
            base,
            remote_tree,
            tree.links,
            tz=self.tz,
            now=datetime.now(UTC),
        )
        return sessions

    async def make(
        self, sessions: list[Session], base: str, plan: Plan, remote_tree: RemoteTree
    ) -> list[Session]:
        """Make the planned links (after the uploads, so that every target is
        complete when a link to it appears); what the server refuses goes up
        as a copy, said once."""
        if plan.links_as_copies:
            self._note_as_copies(plan.links_as_copies)
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
        self.rec.note(
            f"the server refused SITE SYMLINK ({first}): {len(refused)} links uploaded as "
            f"copies of their targets instead: {named(sorted(refused), ', ')}"
        )
        instead = plan.fallback(refused)
        if instead.mkdirs:
            paths = [remote.remote_join(base, d) for d in instead.mkdirs]
            sessions[0] = await self.make_dirs(sessions[0], paths, [])
        if instead.uploads:
            sessions = await self.uploads(base, remote_tree).run(sessions, instead.uploads)
            if not sessions:
                sessions = [await self.pool.usable(None)]
        return sessions

    def _note_as_copies(self, copies: list[tuple[str, str]]) -> None:
        paths = [f"{path} ({why})" for path, why in copies]
        self.rec.note(f"--site-symlink: mirrored as copies, not links: {named(paths)}")
