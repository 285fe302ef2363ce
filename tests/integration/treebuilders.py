"""Build local test trees and compare them with what landed on the server's disk.

Everything here is deterministic (seeded contents) so that a failing comparison can be
reproduced, and nothing here uses the code under test.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

MB = 1024 * 1024
#: asyncmirror's own files on the server: its state file and temporary upload names.
STATE_FILE = ".htasyncmirror-state.json"
OWN_PREFIX = ".htasyncmirror-"

#: Names a user's web site really has: spaces, non-ASCII UTF-8, a leading dash.
ODD_FILE_NAMES = (
    "read me.txt",
    "日本語のファイル.html",
    "café crème.css",
    "naïve façade.js",
    "Ünïcödé ßtraße.txt",
    "-rf",
    "-leading dash.txt",
    "  two leading spaces.txt",
    "trailing space .txt",
    "100% done & (final) [v2].txt",
)
ODD_DIR_NAMES = ("with space", "日本語", "crème brûlée", "-dash dir")


@dataclass
class Tree:
    """What a builder made under ``root``: relative POSIX paths."""

    root: Path
    files: list[str] = field(default_factory=list)  # every file, hidden ones included
    dirs: list[str] = field(default_factory=list)  # every directory, hidden ones included
    empty_dirs: list[str] = field(default_factory=list)

    @property
    def hidden_files(self) -> list[str]:
        """Files that ``-X '.*' -X '.*/'`` leaves out (a dot name at any level)."""
        return [f for f in self.files if is_hidden(f)]

    @property
    def visible_files(self) -> list[str]:
        return [f for f in self.files if not is_hidden(f)]

    @property
    def visible_dirs(self) -> list[str]:
        return [d for d in self.dirs if not is_hidden(d)]


def is_hidden(rel: str) -> bool:
    """True when any component of ``rel`` starts with a dot."""
    return any(part.startswith(".") for part in rel.split("/"))


def _content(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def write_file(root: Path, rel: str, data: bytes, tree: Tree | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if tree is not None:
        tree.files.append(rel)
        _note_parents(tree, rel)
    return path


def make_dir(root: Path, rel: str, tree: Tree | None = None) -> None:
    (root / rel).mkdir(parents=True, exist_ok=True)
    if tree is not None:
        _note_parents(tree, rel + "/x")


def _note_parents(tree: Tree, rel: str) -> None:
    parts = rel.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if d not in tree.dirs:
            tree.dirs.append(d)


def build_acceptance_tree(root: Path, *, total_files: int = 300, seed: int = 2024) -> Tree:
    """The acceptance tree: ``total_files`` files in all, hidden ones included.

    It has names with spaces, Japanese and accented letters, leading dashes; empty files;
    nested directories and an empty one; two 4 MB files; dotfiles and dot-directories
    at several depths.
    """
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    tree = Tree(root=root)

    # Hidden things at several depths (all left out by -X '.*' -X '.*/').
    hidden = [
        ".htaccess",
        ".env",
        ".git/config",
        ".git/HEAD",
        ".git/objects/ab/cdef0123",
        "日本語/.hidden file",
        "with space/deeper/.DS_Store",
        "assets/.cache/blob.bin",
        "assets/img/.thumbs/small.png",
        "crème brûlée/.well-known/security.txt",
    ]
    for rel in hidden:
        write_file(root, rel, _content(rng, rng.randint(0, 3000)), tree)

    # Two big files.
    write_file(root, "downloads/big one.bin", _content(rng, 4 * MB), tree)
    write_file(root, "downloads/日本語/大きい.bin", _content(rng, 4 * MB), tree)

    # Empty files, including odd names.
    for rel in ("empty.txt", "日本語/空.txt", "-dash dir/-empty", "with space/deeper/empty file"):
        write_file(root, rel, b"", tree)

    # Odd names at the top and inside odd directories.
    for name in ODD_FILE_NAMES:
        write_file(root, name, _content(rng, rng.randint(1, 5000)), tree)
    for d in ODD_DIR_NAMES:
        for name in ODD_FILE_NAMES[:3]:
            write_file(root, f"{d}/{name}", _content(rng, rng.randint(1, 5000)), tree)

    # An empty directory, and one nested in an otherwise empty parent.
    for d in ("empty dir", "nested/only/empty"):
        make_dir(root, d, tree)
        tree.empty_dirs.append(d)

    # Fill up to total_files with ordinary pages in nested directories.
    i = 0
    while len(tree.files) < total_files:
        depth = i % 4
        parts = ["site", f"section {i % 7}", "sub", "leaf"][: depth + 1]
        rel = "/".join([*parts, f"page-{i:04d}.html"])
        write_file(root, rel, _content(rng, rng.randint(0, 20000)), tree)
        i += 1
    assert len(tree.files) == total_files
    return tree


def build_small_tree(root: Path, *, files: int = 12, seed: int = 7) -> Tree:
    """A small tree: a few files at three depths, one odd name, one dotfile."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    tree = Tree(root=root)
    write_file(root, ".env", b"SECRET=1\n", tree)
    write_file(root, "café/ünï code.txt", _content(rng, 777), tree)
    for i in range(files - 2):
        rel = ["index", "css/site", "js/deep/app"][i % 3] + f"-{i}.txt"
        write_file(root, rel, _content(rng, rng.randint(0, 4000)), tree)
    return tree


def build_flat_tree(root: Path, *, files: int, size: int, seed: int = 11) -> Tree:
    """``files`` files of ``size`` bytes each, spread over a few directories."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    tree = Tree(root=root)
    for i in range(files):
        write_file(root, f"d{i % 10}/f{i:05d}.bin", _content(rng, size), tree)
    return tree


def is_own(rel: str) -> bool:
    """True for asyncmirror's own files (state file, temporary uploads) at any depth."""
    return rel.rpartition("/")[2].startswith(OWN_PREFIX)


def snapshot(root: Path, *, skip_hidden: bool = False, skip_own: bool = False) -> dict[str, bytes]:
    """Every regular file under ``root`` -> its bytes (relative POSIX keys).

    ``skip_own`` leaves out asyncmirror's own files (its state file in DST).
    """
    out: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        if skip_hidden:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if (skip_hidden and name.startswith(".")) or (skip_own and is_own(name)):
                continue
            rel = f"{rel_dir}/{name}" if rel_dir else name
            out[rel] = (Path(dirpath) / name).read_bytes()
    return out


def dirs_under(root: Path, *, skip_hidden: bool = False) -> set[str]:
    """Every directory under ``root`` (relative POSIX paths, root itself excluded)."""
    out: set[str] = set()
    for dirpath, dirnames, _ in os.walk(root):
        if skip_hidden:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for d in dirnames:
            out.add(f"{rel_dir}/{d}" if rel_dir != "." else d)
    return out


def xferlog_name(rel: str) -> str:
    """How ProFTPD's TransferLog writes a path: whitespace replaced by ``_``."""
    return "".join("_" if ch.isspace() else ch for ch in rel)


def bump(root: Path, rels: Iterable[str], *, seconds: float = 5.0, seed: int = 99) -> None:
    """Give each file new content of the same size and an mtime ``seconds`` later.

    Same size on purpose: only the time can tell the planner that the file changed.
    """
    rng = random.Random(seed)
    for rel in rels:
        path = root / rel
        st = path.stat()
        path.write_bytes(_content(rng, st.st_size))
        os.utime(path, (st.st_atime, st.st_mtime + seconds))
