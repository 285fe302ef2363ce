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
  directory is followed, but every real directory (``st_dev``, ``st_ino``) is
  scanned at most once: a second way in -- a loop back to an ancestor, or a
  second link to the same place -- is reported and skipped.  Links are entered
  after all plain directories, so a directory is always scanned under its real
  path when it has one; among links, the smallest relpath wins.
* Excluded paths are dropped silently, and excluded directories are not
  entered: nothing below them is looked at.
* Everything else becomes a ``(path, why)`` line in ``tree.problems`` and is
  skipped: broken or looping links, sockets, FIFOs and devices, names FTP
  cannot carry (CR or LF in them), names that are not valid UTF-8, and
  directories that cannot be read.  Paths in problem lines are made printable
  (undecodable bytes as ``\\xNN``, CR/LF as ``\\r``/``\\n``).

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

from asyncmirror.entries import LocalFile, LocalTree
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
) -> LocalTree:
    """Scan the directory *root* and return what :class:`LocalTree` holds.

    Keys of ``tree.files`` and members of ``tree.dirs`` are relative POSIX
    paths (``"a/b.txt"``); ``tree.root`` is *root* made absolute.  Raises
    :class:`~asyncmirror.errors.UsageError` when *root* is missing, is not a
    directory, or cannot be read at all -- an empty result there would look
    like "SRC is empty" and let ``--delete`` wipe the server.  Any other
    trouble is a line in ``tree.problems`` and the scan goes on.

    ``on_enough`` is called once (from this thread), as soon as *enough* files
    (and directories, with ``count_dirs``) have been kept: the caller can size
    its work before the whole tree is known.

    ``stop``, once set (from any thread), ends the scan within a few entries
    with :class:`~asyncmirror.errors.ScanStopped`: a thread cannot be
    cancelled, and a run that ends early (a refused login) must not wait for
    a large tree.
    """
    top, top_st = _root_dir(root)
    tree = LocalTree(root=top)
    files = tree.files
    dirs = tree.dirs
    problems = tree.problems
    excludes = filters.excludes
    # Every real directory met so far, by identity -> the relpath it was scanned as.
    seen: dict[tuple[int, int], str] = {(top_st.st_dev, top_st.st_ino): ""}
    # Directories to list: (absolute path, relpath prefix with its trailing "/", or
    # "" for the root).
    stack: list[tuple[str, str]] = [(top, "")]
    # Symbolic links to directories, entered only once no plain directory is left:
    # then a directory reachable both ways is always scanned under its real path,
    # whatever order readdir() gives, and only the link is reported.
    links: list[tuple[str, str]] = []  # (relpath, absolute path of the link)

    def notify_if_enough() -> None:
        nonlocal on_enough
        if on_enough is not None and len(files) + (len(dirs) if count_dirs else 0) >= enough:
            on_enough()
            on_enough = None  # once

    stopped = stop.is_set if stop is not None else _never
    while stack or links:
        if stopped():
            raise ScanStopped(len(files) + len(dirs))
        if not stack:
            links.sort(reverse=True)  # smallest relpath first: a stable outcome
            rel, link_path = links.pop()
            try:
                st = os.stat(link_path)
            except FileNotFoundError:
                continue  # removed since it was listed
            except OSError as exc:
                problems.append((display_path(rel), _why(exc)))
                continue
            first = seen.get((st.st_dev, st.st_ino))
            if first is not None:
                where = display_path(first) if first else "SRC itself"
                problems.append(
                    (
                        display_path(rel),
                        f"symbolic link to a directory already scanned as {where}; skipped",
                    )
                )
                continue
            seen[st.st_dev, st.st_ino] = rel
            dirs.add(rel)
            stack.append((link_path, rel + "/"))
        abs_dir, prefix = stack.pop()
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
                        if entry.is_symlink():
                            links.append((rel, entry.path))
                            continue
                        # Its identity, so that a link to it is known for a second way
                        # in: one stat per directory, not per file.
                        st = entry.stat()
                        if (st.st_dev, st.st_ino) in seen:
                            # Only a bind mount can show one directory twice here.
                            where = display_path(seen[st.st_dev, st.st_ino]) or "SRC itself"
                            problems.append((display_path(rel), f"already scanned as {where}"))
                            continue
                        seen[st.st_dev, st.st_ino] = rel
                        dirs.add(rel)
                        stack.append((entry.path, rel + "/"))
                        notify_if_enough()
                    elif _is_file(entry):
                        st = entry.stat()  # cached on the entry; follows a symlink
                        files[rel] = LocalFile(rel, st.st_size, st.st_mtime, entry.path)
                        notify_if_enough()
                    else:
                        why = _other_kind(entry)
                        if why is not None:
                            problems.append((display_path(rel), why))
                except FileNotFoundError:
                    # Vanished since the listing: leave it out, as a later scan would.
                    continue
                except OSError as exc:
                    problems.append((display_path(rel), _why(exc)))
    notify_if_enough()
    return tree


def _is_file(entry: os.DirEntry[str]) -> bool:
    """``entry.is_file()``, False for a link that cannot be followed (ELOOP, EACCES):
    :func:`_other_kind` then says why."""
    try:
        return entry.is_file()
    except OSError:
        return False


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
