"""Checking the server's tree after a run: exactly the kept files of the source, byte for byte."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

from benchmarks.errors import BenchError


def expected_tree(src: Path) -> tuple[set[str], set[str]]:
    """Files and directories of ``src`` that the -X '.*' -X '.*/' rules keep."""
    files: set[str] = set()
    dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        rel = "" if rel == "." else rel.replace(os.sep, "/")
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for d in dirnames:
            dirs.add(f"{rel}/{d}" if rel else d)
        for f in filenames:
            if not f.startswith("."):
                files.add(f"{rel}/{f}" if rel else f)
    return files, dirs


def server_tree(root: Path) -> tuple[set[str], set[str]]:
    files: set[str] = set()
    dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel.replace(os.sep, "/")
        for d in dirnames:
            dirs.add(f"{rel}/{d}" if rel else d)
        for f in filenames:
            files.add(f"{rel}/{f}" if rel else f)
    return files, dirs


def verify(
    src: Path, remote_root: Path, what: str, *, allowed: frozenset[str] = frozenset()
) -> None:
    """The server's copy must hold exactly the kept files of ``src``, byte for byte.

    ``allowed``: extra top-level files the tool keeps in DST (asyncmirror's state file).
    """
    want_files, want_dirs = expected_tree(src)
    if not remote_root.is_dir():
        raise BenchError(f"{what}: {remote_root} does not exist on the server")
    got_files, got_dirs = server_tree(remote_root)
    got_files -= allowed
    problems: list[str] = []
    for label, items in (
        ("missing on the server", sorted(want_files - got_files)),
        ("unexpected on the server", sorted(got_files - want_files)),
        ("directory missing on the server", sorted(want_dirs - got_dirs)),
        ("unexpected directory on the server", sorted(got_dirs - want_dirs)),
    ):
        if items:
            problems.append(f"{len(items)} {label}: {', '.join(items[:8])}")
    differ = []
    for rel in sorted(want_files & got_files):
        a, b = src / rel, remote_root / rel
        if a.stat().st_size != b.stat().st_size or not filecmp.cmp(a, b, shallow=False):
            differ.append(
                f"{rel} ({a.stat().st_size} bytes locally, {b.stat().st_size} on the server)"
            )
    if differ:
        problems.append(f"{len(differ)} differ from the source: {', '.join(differ[:8])}")
    if problems:
        raise BenchError(
            f"{what}: the server tree {remote_root} is not a copy of {src}:\n  "
            + "\n  ".join(problems)
        )


def verify_empty(remote_root: Path, what: str) -> None:
    files, dirs = server_tree(remote_root)
    if files or dirs:
        raise BenchError(f"{what}: a dry run changed the server: {sorted(files | dirs)[:8]}")
