"""Decide what to do: (local tree, remote tree, options) -> plan.  Pure.

The transfer rule is :func:`need_transfer`, in one place, like rclone's
``NeedTransfer``.  With the default newer-only policy (lftp's ``--only-newer``),
a file is uploaded when it is missing on the server, when its size differs, or
when the local copy is newer than the remote one by more than the remote time's
precision (one second for MLSD, a minute or a day for LIST).  A remote time
that is unknown leaves the decision to the size.  A file that only looks newer
(a fresh checkout) is not uploaded when the state file (:mod:`~asyncmirror.state`)
proves its bytes are the ones already there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum, StrEnum
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple

from .entries import LocalFile, LocalLink, LocalTree, RemoteFile, RemoteTree

if TYPE_CHECKING:
    from .state import StateEntry


class Reason(StrEnum):
    NEW = "new"
    NEWER = "newer"
    SIZE = "size differs"
    ALL = "forced"
    CONTENT = "content differs"  # --verify: same size, other bytes


class Pending(Enum):
    """:func:`need_transfer` cannot tell yet: ask again with the local file's digest."""

    DIGEST = "digest"


# The members as module names for the per-file code: on Python 3.11 ``Reason.NEW``
# goes through ``EnumType.__getattr__`` (~0.1 us, ten times a global's lookup),
# which over 100,000 files and a few lookups each was ~8% of a dry run's instructions.
_NEW, _NEWER, _SIZE = Reason.NEW, Reason.NEWER, Reason.SIZE
_DIGEST = Pending.DIGEST


class Upload(NamedTuple):
    path: str
    size: int
    reason: Reason
    local: LocalFile


class Conflict(NamedTuple):
    path: str
    why: str


class Link(NamedTuple):
    """A symbolic link to make with ``SITE SYMLINK target path`` (``--site-symlink``)."""

    path: str  # relative to DST
    target: str  # absolute on the server: what SITE SYMLINK gets and ProFTPD writes
    replace: bool  # a link to elsewhere is there: DELE it first


class PlanOptions(NamedTuple):
    only_newer: bool = True  # False: upload whenever size or time differ at all
    delete: bool = False
    #: ``excluded(path, is_dir)``: paths the rules leave out are never deleted.
    excluded: Callable[[str, bool], bool] | None = None
    #: Paths (and what is under them) never deleted: SRC paths that could not
    #: be read, whose contents are unknown.
    protected: tuple[str, ...] = ()
    #: ``--site-symlink``: DST's absolute path on the server, which the links'
    #: targets are written under; None makes no links (their content goes up).
    link_root: str | None = None


DEFAULTS = PlanOptions()


class Plan:
    __slots__ = (
        "clear_first",
        "conflicts",
        "delete_dirs",
        "delete_files",
        "held",
        "links",
        "links_as_copies",
        "links_kept",
        "mkdirs",
        "skipped",
        "uploads",
    )

    def __init__(self) -> None:
        self.mkdirs: list[str] = []  # parents before children
        self.clear_first: list[str] = []  # remote files where a dir must go
        self.uploads: list[Upload] = []  # largest first
        self.skipped: list[str] = []
        self.delete_files: list[str] = []
        self.delete_dirs: list[str] = []  # children before parents
        self.conflicts: list[Conflict] = []
        #: --site-symlink: links to make, after the uploads (their targets exist then)
        self.links: list[Link] = []
        #: links already on the server with the right target: nothing to do
        self.links_kept: list[str] = []
        #: (path, why) of links inside SRC that go up as copies all the same
        self.links_as_copies: list[tuple[str, str]] = []
        #: the content under ``links``, planned as new: what goes up for a link
        #: the server refuses to make (see :meth:`fallback`)
        self.held: Plan | None = None

    def fallback(self, refused: Iterable[str]) -> Plan:
        """The part of ``held`` under the ``refused`` link paths: what goes up instead."""
        out = Plan()
        gone = set(refused)
        if self.held is None or not gone:
            return out
        out.mkdirs = [d for d in self.held.mkdirs if _at_or_under_any(d, gone)]
        out.uploads = [u for u in self.held.uploads if _at_or_under_any(u.path, gone)]
        return out

    def __repr__(self) -> str:
        deletions = len(self.delete_files) + len(self.delete_dirs)
        return (
            f"<Plan: {len(self.uploads)} uploads, {len(self.skipped)} skipped, "
            f"{len(self.mkdirs)} mkdirs, {deletions} deletions>"
        )

    @property
    def upload_bytes(self) -> int:
        return sum(map(_BY_SIZE, self.uploads))  # a C-level loop: 100,000 uploads at scale

    def skip(self, paths: Iterable[str]) -> None:
        """Move these uploads into ``skipped`` (proven unchanged after planning)."""
        gone = set(paths)
        if gone:
            self.uploads = [u for u in self.uploads if u.path not in gone]
            self.skipped = sorted([*self.skipped, *gone])

    def settle(self, same: Iterable[str], differ: Iterable[Upload]) -> None:
        """Apply what a comparison of contents found: ``same`` is up to date
        whatever the listing said; ``differ`` goes up whatever it said."""
        self.skip(same)
        again = {u.path: u for u in differ}
        if again:
            self.skipped = [p for p in self.skipped if p not in again]
            kept = [u for u in self.uploads if u.path not in again]
            self.uploads = [*kept, *again.values()]
            _sort_largest_first(self.uploads)


def content_candidates(plan: Plan, remote: RemoteTree) -> list[str]:
    """The files whose content ``--verify`` compares: those the server holds at
    the local size (or an unknown one), whatever their times say.  A size
    difference is a change for sure; a file the server lacks has nothing to
    compare."""
    out = list(plan.skipped)
    for u in plan.uploads:
        there = remote.files.get(u.path)
        if there is not None and there.size in (None, u.size):
            out.append(u.path)
    return sorted(out)


def _sort_largest_first(uploads: list[Upload]) -> None:
    """Sort by size, largest first, then by path: as ``key=(-size, path)``, in two
    stable sorts by C-level keys (no tuple made per upload: 100,000 of them in a
    first upload of a large tree)."""
    uploads.sort(key=_BY_PATH)
    uploads.sort(key=_BY_SIZE, reverse=True)  # reverse keeps equal sizes in path order


_BY_PATH = itemgetter(0)  # Upload.path
_BY_SIZE = itemgetter(1)  # Upload.size


def need_transfer(
    local: LocalFile,
    remote: RemoteFile | None,
    *,
    only_newer: bool,
    state: StateEntry | None = None,
    digest: str | None = None,
) -> Reason | Pending | None:
    """The one transfer rule.  ``None`` means the remote copy is up to date.

    ``state`` is what the state file recorded for the path; ``digest`` the
    local file's, with the state entry's algorithm, when it has been read.
    A file that only looks newer, whose size equals both the recorded one and
    the server's, is up to date when its mtime is the recorded one (the
    recorded digest is trusted, the file is not read) or when its digest is
    the recorded one; :attr:`Pending.DIGEST` asks for the digest to tell.
    """
    reason = _by_listing(local, remote, only_newer=only_newer)
    if state is None or not state_may_settle(reason, local, remote):
        return reason
    if state.size != local.size:
        return reason  # a size difference is a change for sure
    if state.mtime == local.mtime:
        return None
    if digest is None:
        return _DIGEST
    return None if digest == state.digest else reason


def state_may_settle(reason: Reason | None, local: LocalFile, remote: RemoteFile | None) -> bool:
    """Could a state entry prove this transfer unnecessary?  Only for a file
    that looks newer and has the server's size; anything else is a change."""
    return reason is _NEWER and remote is not None and remote.size == local.size


def _by_listing(local: LocalFile, remote: RemoteFile | None, *, only_newer: bool) -> Reason | None:
    """The rule from the listing alone (sizes and times)."""
    if remote is None:
        return _NEW
    if remote.size is not None and remote.size != local.size:
        return _SIZE
    if remote.mtime is None:
        return None if remote.size is not None else _NEWER
    # Times within the remote precision are equal: MFMT keeps whole seconds,
    # LIST shows minutes.  The extra second absorbs rounding on either side.
    window = max(remote.precision, 1.0)
    if local.mtime > remote.mtime + window:
        return _NEWER
    if not only_newer and local.mtime < remote.mtime - window:
        # Without --only-newer a remote copy whose time differs either way is
        # replaced (plain mirror semantics).
        return _NEWER
    return None


def make_plan(local: LocalTree, remote: RemoteTree, options: PlanOptions = DEFAULTS) -> Plan:
    """Compare the trees.  Never touches the network, the disk or the clock.

    With ``options.link_root`` (``--site-symlink``) the links in ``local.links``
    are planned as links (:func:`plan_links`): their content is left out of the
    uploads (kept in ``plan.held`` for a server that refuses), what the server
    holds under them is never deleted, and with ``delete`` the server's links
    that SRC does not have are deleted like files.
    """
    if options.link_root is None or not (local.links or remote.links):
        return _make_plan(local, remote, options)
    links, kept, copies = plan_links(local, remote, options.link_root)
    as_links = [lk.path for lk in links] + kept
    own, held = _split(local, as_links)
    plan = _make_plan(own, remote, options._replace(protected=(*options.protected, *as_links)))
    plan.links, plan.links_kept, plan.links_as_copies = links, kept, copies
    if links:
        made = {lk.path for lk in links}
        plan.held = _make_plan(
            _split(held, made)[1], _without_under(remote, made), options._replace(delete=False)
        )
    return plan


def plan_links(
    local: LocalTree, remote: RemoteTree, root: str
) -> tuple[list[Link], list[str], list[tuple[str, str]]]:
    """Each link of ``local.links``: to make (or replace), already right, or a copy.

    A link goes up as a copy of its target (as without ``--site-symlink``) when
    its target is not mirrored, when the server holds a real file or directory
    at its path, or when its path or target has white space (``SITE SYMLINK``
    takes two space-separated words).  A link inside another link's content
    needs nothing of its own.
    """
    links: list[Link] = []
    kept: list[str] = []
    copies: list[tuple[str, str]] = []
    taken: set[str] = set()  # link paths made or kept: what is under them comes along
    for lk in sorted(local.links.values()):
        if _under_any(lk.path, taken):
            continue
        why = _why_copy(lk, local, remote, root)
        if why is not None:
            copies.append((lk.path, why))
            continue
        taken.add(lk.path)
        target = _server_target(root, lk.target)
        if lk.path not in remote.links:
            links.append(Link(lk.path, target, replace=False))
        elif remote.links[lk.path] == target:
            kept.append(lk.path)
        else:  # elsewhere, or a listing that does not show targets
            links.append(Link(lk.path, target, replace=True))
    return links, kept, copies


def _server_target(root: str, target: str) -> str:
    return f"{root.rstrip('/')}/{target}"


def _why_copy(lk: LocalLink, local: LocalTree, remote: RemoteTree, root: str) -> str | None:
    if lk.target not in (local.dirs if lk.is_dir else local.files):
        return "its target is not mirrored"
    if any(c.isspace() for c in lk.path + _server_target(root, lk.target)):
        return "SITE SYMLINK cannot take white space in a path"
    if lk.path not in remote.links and (
        lk.path in remote.files or lk.path in remote.dirs or lk.path in remote.others
    ):
        return "the server holds a real file or directory there; remove it to get a link"
    if _under_any(lk.path, set(remote.links)):
        return "a link on the server is above it"
    return None


def _at_or_under_any(path: str, tops: set[str]) -> bool:
    return path in tops or _under_any(path, tops)


def _split(local: LocalTree, tops: Iterable[str]) -> tuple[LocalTree, LocalTree]:
    """``local`` without what is at or under ``tops``, and that part alone."""
    top_set = set(tops)
    own = LocalTree(local.root, problems=local.problems, notices=local.notices)
    part = LocalTree(local.root)
    for path, lf in local.files.items():
        (part if _at_or_under_any(path, top_set) else own).files[path] = lf
    for d in local.dirs:
        (part if _at_or_under_any(d, top_set) else own).dirs.add(d)
    for path, lk in local.links.items():
        (part if _at_or_under_any(path, top_set) else own).links[path] = lk
    return own, part


def _without_under(remote: RemoteTree, tops: set[str]) -> RemoteTree:
    """``remote`` as it will be once the links at ``tops`` are gone."""
    out = RemoteTree(
        remote.exists,
        files={p: f for p, f in remote.files.items() if not _at_or_under_any(p, tops)},
        dirs={d for d in remote.dirs if not _at_or_under_any(d, tops)},
        others={o for o in remote.others if not _at_or_under_any(o, tops)},
    )
    out.links = {p: t for p, t in remote.links.items() if not _at_or_under_any(p, tops)}
    return out


def _make_plan(local: LocalTree, remote: RemoteTree, options: PlanOptions) -> Plan:
    plan = Plan()
    excluded = _protecting(options.excluded or _nothing_excluded, options.protected)

    plan.mkdirs = _sorted_parents_first(d for d in local.dirs if d not in remote.dirs)
    blocked_dirs: set[str] = set()
    for d in plan.mkdirs:
        if d in remote.files or d in remote.others:
            if options.delete and d in remote.files:
                plan.clear_first.append(d)  # must go before its directory can be made
            else:
                plan.conflicts.append(Conflict(d, "a file on the server is in the way"))
                blocked_dirs.add(d)

    # This loop runs once per file of SRC: names bound once, and no call or
    # check that cannot matter (no blocked directory, nothing listed).
    remote_files = remote.files
    in_the_way = remote.dirs | remote.others
    only_newer = options.only_newer
    skipped = plan.skipped
    uploads = plan.uploads
    new_upload = tuple.__new__  # Upload(...) without NamedTuple's Python-level __new__
    for path, lf in local.files.items():
        if blocked_dirs and _under_any(path, blocked_dirs):
            plan.conflicts.append(Conflict(path, "its directory cannot be created"))
            continue
        if path in in_the_way:
            plan.conflicts.append(Conflict(path, "a directory or link on the server is in the way"))
            continue
        reason = need_transfer(lf, remote_files.get(path), only_newer=only_newer)
        assert reason is not _DIGEST  # only with a state entry
        if reason is None:
            skipped.append(path)
        else:
            uploads.append(new_upload(Upload, (path, lf.size, reason, lf)))

    if options.delete:
        for path in remote.files:
            if (
                path not in local.files
                and path not in local.dirs
                and not excluded(path, False)
                and not _under_any_excluded(path, excluded)
            ):
                plan.delete_files.append(path)
        if options.link_root is not None:
            # --site-symlink: the server's links that SRC lacks go like files.
            # Nothing is deleted *through* a link: that would reach its target.
            for path in remote.links:
                if (
                    path not in local.links
                    and path not in local.files
                    and path not in local.dirs
                    and not excluded(path, False)
                    and not _under_any_excluded(path, excluded)
                ):
                    plan.delete_files.append(path)
            links_above = set(remote.links)
            plan.delete_files = [f for f in plan.delete_files if not _under_any(f, links_above)]
        gone_dirs = [
            d
            for d in remote.dirs
            if d not in local.dirs
            and not excluded(d, True)
            and not _under_any_excluded(d, excluded)
            and not (options.link_root is not None and _under_any(d, set(remote.links)))
        ]
        # A directory can only go when nothing is left in it: not when it
        # holds excluded entries that we must leave alone.
        keep = _dirs_holding_kept(remote, set(plan.delete_files), set(gone_dirs))
        plan.delete_dirs = sorted(
            (d for d in gone_dirs if d not in keep), key=lambda d: (-d.count("/"), d)
        )

    # Large files first keeps every connection busy until the end.
    _sort_largest_first(plan.uploads)
    plan.delete_files.sort()
    plan.skipped.sort()
    return plan


def _nothing_excluded(path: str, is_dir: bool) -> bool:
    return False


def _protecting(
    excluded: Callable[[str, bool], bool], protected: tuple[str, ...]
) -> Callable[[str, bool], bool]:
    if not protected:
        return excluded

    def either(path: str, is_dir: bool) -> bool:
        if any(path == p or path.startswith(p + "/") for p in protected):
            return True
        return excluded(path, is_dir)

    return either


def _sorted_parents_first(dirs: Iterable[str]) -> list[str]:
    return sorted(dirs, key=lambda d: (d.count("/"), d))


def _parents(path: str) -> Iterable[str]:
    parts = path.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def _under_any(path: str, dirs: set[str]) -> bool:
    return bool(dirs) and any(p in dirs for p in _parents(path))


def _under_any_excluded(path: str, excluded: Callable[[str, bool], bool]) -> bool:
    return any(excluded(p, True) for p in _parents(path))


def _dirs_holding_kept(
    remote: RemoteTree, deleted_files: set[str], gone_dirs: set[str]
) -> set[str]:
    keep: set[str] = set()
    survivors = [p for p in remote.files if p not in deleted_files]
    survivors += [d for d in remote.dirs if d not in gone_dirs]
    survivors += [o for o in remote.others if o not in deleted_files]
    for p in survivors:
        keep.update(_parents(p))
    return keep
