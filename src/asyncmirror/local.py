"""Scan SRC: every regular file and directory under it that the filters keep.

:func:`scan` walks the tree once with :func:`os.scandir`, iteratively (a deep
tree cannot hit Python's recursion limit) and with one directory handle open
at a time.  It is synchronous and does blocking I/O: run it in a thread.

What it keeps and what it reports:

* Regular files, with ``st_size`` and ``st_mtime`` (float seconds).
* Symbolic links to files, with the *target's* size and mtime; ``abspath`` is
  the link itself, which ``open()`` follows.  (lftp's ``mirror -R`` needs
  ``-L`` for this; asyncmirror always uploads what a link points to.)
* Directories, including empty ones, in ``tree.dirs``.  A symbolic link to a
  directory is scanned under the link's own path, as ``rsync -L`` and lftp's
  ``--dereference`` do: FTP cannot make links, and on a website a link such
  as ``latest -> v2`` must become a directory.  Only a link (or bind mount) to
  a directory it is inside is a loop: a notice, and skipped.
* With ``links=True`` (``--site-symlink``), a symbolic link whose target
  resolves inside SRC is also recorded in ``tree.links`` (its target relative
  to SRC), to be made as a link on the server; it is followed all the same, so
  its content is there for a server that cannot make links.
* Excluded paths are dropped silently, and excluded directories are not
  entered: nothing below them is looked at.
* What FTP cannot carry and nobody meant to upload -- sockets, FIFOs, devices,
  broken or looping links -- is a ``(path, why)`` line in ``tree.notices``.
* What was meant to be uploaded and cannot be is a line in ``tree.problems``
  (a failure of the run): names FTP cannot carry (CR or LF in them), names that
  are not valid UTF-8, and files or directories that cannot be read.  Paths in
  both are made printable (undecodable bytes as ``\\xNN``, CR/LF as ``\\r``/``\\n``).

A directory that could not be read is still listed in ``tree.dirs`` (it
exists; lftp would create it too) but its contents are unknown: a planner that
deletes remote strays must leave everything under a problem path alone.

Files that vanish between the directory listing and their ``stat`` are left
out without a problem line: they are gone, which is what the mirror should
reflect.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable

from asyncmirror.entries import LocalFile, LocalLink, LocalTree
from asyncmirror.errors import ScanStopped, UsageError
from asyncmirror.filters import FilterSet

# Kinds of non-regular files, for the problem line (S_IFMT value -> description).
_SPECIAL_KINDS = {
    stat.S_IFSOCK: "a socket",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


#: Entries of one directory between two looks at the stop flag.
_STOP_EVERY = 16


def _never() -> bool:
    return False


def display_path(relpath: str) -> str:
    """*relpath* made safe to print on one line: ``\\xNN`` for bytes that are not
    UTF-8 (``os.fsdecode`` surrogates) and ``\\r``/``\\n`` for line breaks."""
    if not relpath.isascii():
        relpath = relpath.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return relpath.replace("\r", "\\r").replace("\n", "\\n")


def _name_problem(name: str) -> str | None:
    """Why *name* cannot be mirrored as it is, or None when it can."""
    if "\n" in name or "\r" in name:
        # FTP commands are lines: a CR or LF would end the command mid-name.
        return "name contains a line break (CR or LF), which FTP cannot send"
    if not name.isascii():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            # os.fsdecode turned undecodable bytes into lone surrogates: the name is
            # not UTF-8, and the server (UTF8 ON) would get a different name.
            return "name is not valid UTF-8"
    return None


def _root_dir(root: str) -> tuple[str, os.stat_result]:
    """Check that *root* is a directory; return it as an absolute path and its stat."""
    hint = "check the SRC argument; a relative path is taken from the current directory"
    try:
        st = os.stat(root)
    except (FileNotFoundError, NotADirectoryError):
        raise UsageError(f"source directory {root!r} does not exist", hint=hint) from None
    except OSError as exc:
        raise UsageError(f"source directory {root!r} cannot be read: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(
            f"source directory {root!r} is not a directory",
            hint="SRC must be a directory; to upload a single file, put it in one",
        )
    # Absolute, so LocalFile.abspath still works after a chdir; joined rather than
    # normalized, because ".." after a symlink must keep its file-system meaning.
    return (root if os.path.isabs(root) else os.path.join(os.getcwd(), root)), st


def scan(
    root: str,
    filters: FilterSet,
    *,
    enough: int = 0,
    on_enough: Callable[[], None] | None = None,
    count_dirs: bool = True,
    stop: threading.Event | None = None,
    links: bool = False,
) -> LocalTree:
    """Scan the directory *root* and return what :class:`LocalTree` holds.

    Keys of ``tree.files`` and members of ``tree.dirs`` are relative POSIX
    paths (``"a/b.txt"``); ``tree.root`` is *root* made absolute.  Raises
    :class:`~asyncmirror.errors.UsageError` when *root* is missing, is not a
    directory, or cannot be read at all -- an empty result there would look
    like "SRC is empty" and let ``--delete`` wipe the server.  Any other
    trouble is a line in ``tree.problems`` or ``tree.notices`` and the scan goes on.

    ``on_enough`` is called once (from this thread), as soon as *enough* files
    (and directories, with ``count_dirs``) have been kept: the caller can size
    its work before the whole tree is known.

    ``stop``, once set (from any thread), ends the scan within a few entries
    with :class:`~asyncmirror.errors.ScanStopped`: a thread cannot be
    cancelled, and a run that ends early (a refused login) must not wait for
    a large tree.

    ``links`` records links to paths inside SRC in ``tree.links`` (see above).
    """
    top, top_st = _root_dir(root)
    tree = LocalTree(root=top)
    files = tree.files
    dirs = tree.dirs
    problems = tree.problems
    notices = tree.notices
    excludes = filters.excludes
    # Directories to list: (absolute path, relpath prefix with its trailing "/" or "" for
    # the root, the identities of the directories above it and of itself).  A symbolic
    # link to a directory is scanned under the link's own path, as rsync -L and lftp's
    # --dereference do (FTP cannot make links; on a website, "latest -> v2" must become
    # a directory).  Only a link to a directory it is inside is a loop.
    stack: list[tuple[str, str, tuple[tuple[int, int], ...]]] = [
        (top, "", ((top_st.st_dev, top_st.st_ino),))
    ]

    def notify_if_enough() -> None:
        nonlocal on_enough
        if on_enough is not None and len(files) + (len(dirs) if count_dirs else 0) >= enough:
            on_enough()
            on_enough = None  # once

    stopped = stop.is_set if stop is not None else _never
    inside = _Inside(top) if links else None
    # The loop below runs once per entry of SRC (100,000 times in a large site):
    # names are bound once, and LocalFile is built without NamedTuple's
    # Python-level __new__.
    new_file = tuple.__new__
    while stack:
        if stopped():
            raise ScanStopped(len(files) + len(dirs))
        abs_dir, prefix, above = stack.pop()
        try:
            it = os.scandir(abs_dir)
        except OSError as exc:
            if not prefix:
                raise UsageError(
                    f"source directory {root!r} cannot be read: {exc.strerror}"
                ) from None
            problems.append((display_path(prefix[:-1]), f"directory cannot be read: {_why(exc)}"))
            continue
        with it:
            listed = 0
            while True:
                listed += 1
                if not listed % _STOP_EVERY and stopped():
                    raise ScanStopped(len(files) + len(dirs))
                try:
                    entry = next(it, None)
                except OSError as exc:  # an I/O error part way through the listing
                    if not prefix:
                        raise UsageError(
                            f"source directory {root!r} cannot be read: {exc.strerror}"
                        ) from None
                    failed = f"directory listing failed part way: {_why(exc)}"
                    problems.append((display_path(prefix[:-1]), failed))
                    break
                if entry is None:
                    break
                name = entry.name
                rel = prefix + name
                try:
                    # is_dir()/is_file() follow symlinks; for plain entries they
                    # use d_type and cost no system call.
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False  # a link that cannot be followed: reported below
                try:
                    if excludes(rel, is_dir=is_dir):
                        continue
                    # The cheap tests inline; _name_problem only for suspect names.
                    if not name.isascii() or "\n" in name or "\r" in name:
                        why = _name_problem(name)
                        if why is not None:
                            problems.append((display_path(rel), why))
                            continue
                    if is_dir:
                        # Its identity (through a link: the target's): one stat per
                        # directory, not per file.
                        st = entry.stat()
                        me = (st.st_dev, st.st_ino)
                        if me in above:
                            where = _ancestor(prefix, above, me)
                            what = "symbolic link" if entry.is_symlink() else "directory"
                            notices.append(
                                (display_path(rel), f"{what} to {where}, which holds it: a loop")
                            )
                            continue
                        dirs.add(rel)
                        stack.append((entry.path, rel + "/", (*above, me)))
                        if inside is not None and entry.is_symlink():
                            inside.record(tree, rel, entry.path, is_dir=True)
                    else:
                        try:
                            is_file = entry.is_file()
                        except OSError:  # ELOOP, EACCES: _other_kind says why
                            is_file = False
                        if not is_file:
                            why = _other_kind(entry)
                            if why is not None:
                                notices.append((display_path(rel), why))
                            continue
                        st = entry.stat()  # cached on the entry; follows a symlink
                        path = entry.path
                        files[rel] = new_file(LocalFile, (rel, st.st_size, st.st_mtime, path))
                        if inside is not None and entry.is_symlink():
                            inside.record(tree, rel, path, is_dir=False)
                    if on_enough is not None:
                        notify_if_enough()
                except FileNotFoundError:
                    # Vanished since the listing: leave it out, as a later scan would.
                    continue
                except OSError as exc:
                    problems.append((display_path(rel), _why(exc)))
    notify_if_enough()
    return tree


class _Inside:
    """Which links point inside SRC, and where (``--site-symlink``)."""

    __slots__ = ("real_top",)

    def __init__(self, top: str) -> None:
        self.real_top = os.path.realpath(top)

    def record(self, tree: LocalTree, rel: str, link: str, *, is_dir: bool) -> None:
        # realpath resolves the whole chain (a link to a link), and ".." after a
        # link as the kernel does; an absolute link into SRC counts as inside.
        target = os.path.realpath(link)
        try:
            inner = os.path.relpath(target, self.real_top)
        except ValueError:  # another drive (Windows)
            return
        if inner == "." or inner == ".." or inner.startswith(".." + os.sep):
            return  # outside SRC (or SRC itself): its content goes up, as without the option
        tree.links[rel] = LocalLink(rel, inner.replace(os.sep, "/"), is_dir)


def _ancestor(prefix: str, above: tuple[tuple[int, int], ...], me: tuple[int, int]) -> str:
    """How to name the directory ``me`` among those ``above`` a path under ``prefix``."""
    parts = prefix.rstrip("/").split("/") if prefix else []
    depth = above.index(me)  # 0 is SRC itself
    return "SRC itself" if depth == 0 else display_path("/".join(parts[:depth]))


def _other_kind(entry: os.DirEntry[str]) -> str | None:
    """Why *entry* (neither a file nor a directory, even through a link) is skipped.

    None when it vanished in the meantime.
    """
    try:
        lst = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(lst.st_mode):
        try:
            target = entry.stat()
        except FileNotFoundError:
            return "broken symbolic link"
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "symbolic link loop (too many levels of links)"
            return f"symbolic link cannot be followed: {exc.strerror}"
        kind = _SPECIAL_KINDS.get(stat.S_IFMT(target.st_mode), "not a regular file")
        return f"symbolic link to {kind}; only regular files and directories are mirrored"
    kind = _SPECIAL_KINDS.get(stat.S_IFMT(lst.st_mode), "not a regular file")
    return f"{kind}; only regular files and directories are mirrored"


def _why(exc: OSError) -> str:
    """A short problem text for an OSError (no path: the caller pairs it with one)."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or type(exc).__name__
