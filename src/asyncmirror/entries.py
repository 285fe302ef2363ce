"""The value types that flow between the scanner, the lister and the planner.

Paths are relative POSIX strings (``"css/site.css"``), never starting with ``/``
and never containing ``..``: the same key on both sides of the comparison.
The tree root itself is ``""``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    FILE = "file"
    DIR = "dir"
    LINK = "link"  # a remote symlink whose target kind is unknown
    OTHER = "other"


@dataclass(slots=True)  # not frozen: a scan makes 100,000 of them, frozen __init__ is slow
class LocalFile:
    """A regular file (or a symlink to one) under SRC."""

    path: str
    size: int
    mtime: float  # seconds since the epoch, UTC
    abspath: str  # what to open; for a symlink, the link (open() follows it)


@dataclass(slots=True, repr=False)
class LocalTree:
    """What the scan of SRC found, already filtered by the exclude rules."""

    root: str
    files: dict[str, LocalFile] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)  # relative dirs, never ""
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, why skipped)

    def __repr__(self) -> str:
        # Short on purpose: asyncio may repr a finished future holding a tree
        # of 100,000 files, and a full repr costs seconds.
        return f"<LocalTree {self.root!r}: {len(self.files)} files, {len(self.dirs)} dirs>"


@dataclass(frozen=True, slots=True)
class ListedEntry:
    """One line of a directory listing, parsed: a name inside one directory."""

    name: str
    kind: Kind
    size: int | None
    mtime: float | None  # seconds since the epoch, UTC (LIST times shifted by --remote-timezone)
    precision: float  # how far ``mtime`` may be from the truth, in seconds (0 = exact)


@dataclass(frozen=True, slots=True)
class RemoteFile:
    path: str
    size: int | None
    mtime: float | None
    precision: float


@dataclass(slots=True, repr=False)
class RemoteTree:
    """What the listing of DST found.  ``exists`` is False when DST itself is missing."""

    exists: bool = True
    files: dict[str, RemoteFile] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    others: set[str] = field(default_factory=set)  # symlinks and specials: never touched

    def __repr__(self) -> str:
        return f"<RemoteTree: {len(self.files)} files, {len(self.dirs)} dirs>"
