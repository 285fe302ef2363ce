"""The value types that flow between the scanner, the lister and the planner.

Paths are relative POSIX strings (``"css/site.css"``), never starting with ``/``
and never containing ``..``: the same key on both sides of the comparison.
The tree root itself is ``""``.

Records are ``NamedTuple`` classes and the mutable trees plain classes with
``__slots__``, here and across the package, rather than dataclasses: the
command creates every class of the package at start-up, and on Python 3.11 a
frozen, slotted dataclass costs about 1 ms to create (its methods are written
and compiled with ``exec``) where a ``NamedTuple`` costs 0.1 ms.  The package's
twenty dataclasses took ~20 ms of the command's ~150 ms of start-up CPU.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Kind(StrEnum):
    FILE = "file"
    DIR = "dir"
    LINK = "link"  # a remote symlink whose target kind is unknown
    OTHER = "other"


class LocalFile(NamedTuple):
    """A regular file (or a symlink to one) under SRC."""

    path: str
    size: int
    mtime: float  # seconds since the epoch, UTC
    abspath: str  # what to open; for a symlink, the link (open() follows it)


class LocalLink(NamedTuple):
    """A symbolic link under SRC whose target is under SRC too (``--site-symlink``).

    The scan still follows it (its content is in ``files``/``dirs`` under
    ``path``): that content is what goes up where the server cannot make links.
    """

    path: str
    target: str  # the target's path relative to SRC (links resolved), never ""
    is_dir: bool


class LocalTree:
    """What the scan of SRC found, already filtered by the exclude rules."""

    __slots__ = ("dirs", "files", "links", "notices", "problems", "root")

    def __init__(
        self,
        root: str,
        files: dict[str, LocalFile] | None = None,
        dirs: set[str] | None = None,
        problems: list[tuple[str, str]] | None = None,
        notices: list[tuple[str, str]] | None = None,
    ) -> None:
        self.root = root
        self.files: dict[str, LocalFile] = {} if files is None else files
        self.dirs: set[str] = set() if dirs is None else dirs  # relative dirs, never ""
        #: (path, why it was skipped): meant to be uploaded and could not be -- failures
        self.problems: list[tuple[str, str]] = [] if problems is None else problems
        #: (path, why) of what FTP cannot carry and was not meant to (a FIFO, a
        #: link to its own ancestor, a broken link): said, not counted as failures
        self.notices: list[tuple[str, str]] = [] if notices is None else notices
        #: links to paths inside SRC, by path: only when the scan was asked for them
        self.links: dict[str, LocalLink] = {}

    def __repr__(self) -> str:
        # Short on purpose: asyncio may repr a finished future holding a tree
        # of 100,000 files, and a full repr costs seconds.
        return f"<LocalTree {self.root!r}: {len(self.files)} files, {len(self.dirs)} dirs>"


class ListedEntry(NamedTuple):
    """One line of a directory listing, parsed: a name inside one directory."""

    name: str
    kind: Kind
    size: int | None
    mtime: float | None  # seconds since the epoch, UTC (LIST times shifted by --remote-timezone)
    precision: float  # how far ``mtime`` may be from the truth, in seconds (0 = exact)
    #: a symbolic link's target, when the listing shows it (LIST, MLSD's slink:)
    target: str | None = None


class RemoteFile(NamedTuple):
    path: str
    size: int | None
    mtime: float | None
    precision: float


class RemoteTree:
    """What the listing of DST found.  ``exists`` is False when DST itself is missing."""

    __slots__ = ("dirs", "exists", "files", "links", "others")

    def __init__(
        self,
        exists: bool = True,
        files: dict[str, RemoteFile] | None = None,
        dirs: set[str] | None = None,
        others: set[str] | None = None,
    ) -> None:
        self.exists = exists
        self.files: dict[str, RemoteFile] = {} if files is None else files
        self.dirs: set[str] = set() if dirs is None else dirs
        #: symlinks and specials: never touched (but see ``links``)
        self.others: set[str] = set() if others is None else others
        #: the symlinks among ``others``, with their target when the listing showed
        #: it; ``--site-symlink`` makes, replaces and deletes these
        self.links: dict[str, str | None] = {}

    def __repr__(self) -> str:
        return f"<RemoteTree: {len(self.files)} files, {len(self.dirs)} dirs>"
