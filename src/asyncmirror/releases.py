"""Whole-site releases for ``--swap`` and ``--rollback``: names, what moves, the burst.  Pure.

Three directories sit side by side in DST's parent::

    www                                  the live site (DST)
    .htasyncmirror-next.www              the release being prepared (staging)
    .htasyncmirror-prev.www              the release that was live before the last switch

A ``--swap`` run turns the previous release into the staging copy (a rename:
it already holds most of the site, so only what changed since goes up),
brings it up to date with SRC as a normal run would, then switches with
renames sent in one write (one round trip, one server-side step between the
two renames that matter)::

    RNFR www/uploads  RNTO .htasyncmirror-next.www/uploads   server-only paths move along
    RNFR www          RNTO .htasyncmirror-prev.www           the live site steps aside
    RNFR .htasyncmirror-next.www  RNTO www                   the new release goes live

The first ``--swap`` has no previous release: the staging copy starts empty,
unless the server copies files itself (ProFTPD's mod_copy: ``SITE CPFR`` /
``SITE CPTO``).  Then every file of SRC the live site holds is copied into it
under a temporary name, given the live file's time (``MFMT``: a copy is
stamped "now", which would make the planner trust it), and renamed into place
only once both worked -- so the planner sees the live site's sizes and times,
and only the differences go up.

``--rollback`` is the same burst the other way, through a third name
(``.htasyncmirror-out.www``) because the previous release must keep a name.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from .entries import RemoteTree
from .names import temporary
from .replies import Reply, format_mfmt

PREFIX = ".htasyncmirror-"
#: asyncmirror's own entries in DST (state file, lock, temporary uploads, and the
#: names used before they moved under ``.ht``): never moved as server-only content.
OWN_PREFIXES = (".htasyncmirror", ".asyncmirror")


class Layout(NamedTuple):
    """The absolute remote paths of one DST's releases."""

    live: str
    next: str
    prev: str
    out: str

    @classmethod
    def of(cls, dst: str) -> Layout:
        live = posixpath.normpath(dst)
        parent, name = posixpath.split(live)
        return cls(
            live=live,
            next=posixpath.join(parent, f"{PREFIX}next.{name}"),
            prev=posixpath.join(parent, f"{PREFIX}prev.{name}"),
            out=posixpath.join(parent, f"{PREFIX}out.{name}"),
        )


def why_not_switchable(dst: str, home: str | None) -> str | None:
    """Why DST cannot be switched by renames, or ``None`` when it can be tried."""
    live = posixpath.normpath(dst)
    if not live.startswith("/"):
        return f"DST {dst!r} is not an absolute path"
    if live == "/":
        return "DST is the server's root directory, which cannot be renamed"
    if home is not None and live == posixpath.normpath(home):
        return "DST is the login's home directory, which cannot be renamed safely"
    return None


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def server_only(
    live: RemoteTree,
    release_files: Iterable[str],
    release_dirs: Iterable[str],
    *,
    movable: Callable[[str, bool], bool] = lambda _p, _d: True,
) -> list[str]:
    """The top-most paths of ``live`` that the release does not bring: they move along.

    ``live`` was listed inside the release's directories only, so every entry
    not in the release sits directly in a directory the release has (or at the
    top).  ``movable(path, is_dir)`` narrows the choice: with ``--delete`` only
    excluded paths move -- the others are meant to go.  asyncmirror's own
    entries never move here.
    """
    files, dirs = set(release_files), set(release_dirs)
    out: list[str] = []
    entries = [(p, False) for p in live.files] + [(p, True) for p in live.dirs]
    entries += [(p, False) for p in live.others]
    for path, is_dir in entries:
        if path in files or path in dirs:
            continue
        parent = _parent(path)
        if parent and parent not in dirs:
            continue  # inside a server-only directory, which moves whole
        if path.rpartition("/")[2].startswith(OWN_PREFIXES):
            continue
        if movable(path, is_dir):
            out.append(path)
    return sorted(out)


def release_dirs_of(files: Iterable[str]) -> set[str]:
    """Every directory holding a release file (the release's directories)."""
    dirs: set[str] = set()
    for path in files:
        parent = _parent(path)
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = _parent(parent)
    return dirs


class Rename(NamedTuple):
    source: str
    target: str

    def lines(self) -> list[str]:
        return [f"RNFR {self.source}", f"RNTO {self.target}"]


def _join(base: str, rel: str) -> str:
    return f"{base}/{rel}" if rel else base


def switch_burst(layout: Layout, moves: Sequence[str], *, live_exists: bool) -> list[Rename]:
    """The renames that put the staging copy live, in the order they must run."""
    renames = [Rename(_join(layout.live, p), _join(layout.next, p)) for p in moves]
    if live_exists:
        renames.append(Rename(layout.live, layout.prev))
    renames.append(Rename(layout.next, layout.live))
    return renames


def rollback_burst(layout: Layout, moves: Sequence[str]) -> list[Rename]:
    """The renames that put the previous release back (and keep the current one as previous)."""
    renames = [Rename(_join(layout.live, p), _join(layout.prev, p)) for p in moves]
    renames += [
        Rename(layout.live, layout.out),
        Rename(layout.prev, layout.live),
        Rename(layout.out, layout.prev),
    ]
    return renames


class BurstResult(NamedTuple):
    """Which renames of a burst the server carried out (``done[i]`` for ``renames[i]``)."""

    renames: tuple[Rename, ...]
    done: tuple[bool, ...]
    why: tuple[str, ...]  # the refusal, "" where done

    @property
    def failed(self) -> list[tuple[Rename, str]]:
        return [(r, w) for r, d, w in zip(self.renames, self.done, self.why, strict=True) if not d]


def read_burst(renames: Sequence[Rename], replies: Sequence[Reply]) -> BurstResult:
    """Pair a burst's replies (RNFR, RNTO per rename) with its renames.

    A rename is done when its ``RNFR`` got ``350`` and its ``RNTO`` a 2xx.
    """
    if len(replies) != 2 * len(renames):
        raise ValueError(f"{len(renames)} renames need {2 * len(renames)} replies")
    done: list[bool] = []
    why: list[str] = []
    for i, _ in enumerate(renames):
        rnfr, rnto = replies[2 * i], replies[2 * i + 1]
        if rnfr.code != "350":
            done.append(False)
            why.append(f"{rnfr.code} {rnfr.text}".strip())
        elif not rnto.is_complete:
            done.append(False)
            why.append(f"{rnto.code} {rnto.text}".strip())
        else:
            done.append(True)
            why.append("")
    return BurstResult(tuple(renames), tuple(done), tuple(why))


class Copy(NamedTuple):
    """One live file copied on the server into the staging copy (mod_copy)."""

    source: str
    temp: str
    target: str
    mtime: float

    def lines(self) -> list[str]:
        """Copy under the temporary name, then give it the live file's time."""
        return [
            f"SITE CPFR {self.source}",
            f"SITE CPTO {self.temp}",
            f"MFMT {format_mfmt(self.mtime)} {self.temp}",
        ]

    @staticmethod
    def copied(replies: Sequence[Reply]) -> bool:
        """Whether the three replies to :meth:`lines` say it is copied and stamped."""
        cpfr, cpto, mfmt = replies
        return cpfr.code == "350" and cpto.is_complete and mfmt.is_complete


def seed_copies(layout: Layout, live: RemoteTree, files: Iterable[str], tag: str) -> list[Copy]:
    """The copies that seed a first staging copy: each of ``files`` (SRC's, and
    asyncmirror's state file) the live site holds with a known time."""
    out: list[Copy] = []
    for rel in sorted(files):
        there = live.files.get(rel)
        if there is None or there.mtime is None:
            continue
        target = _join(layout.next, rel)
        out.append(Copy(_join(layout.live, rel), temporary(target, tag), target, there.mtime))
    return out


def seed_dirs(live: RemoteTree, dirs: Iterable[str]) -> list[str]:
    """SRC's directories the live site has, parents first: made before the copies."""
    return sorted((d for d in dirs if d in live.dirs), key=lambda d: (d.count("/"), d))


def no_server_copy(reply: Reply) -> bool:
    """Whether the reply to ``SITE CPFR`` says the server has no such command."""
    return reply.code in ("500", "502", "504")
