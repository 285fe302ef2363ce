"""Deterministic website-like trees for the benchmarks.

A tree is described by :func:`layout` (paths and sizes, no I/O) and written by
:func:`generate`.  The same ``files``/``seed`` always give the same names, sizes,
contents and modification times.

Website mode (the default):

* sizes: 85 % of the files 0.2-20 KB (pages, styles, scripts, icons), 14 %
  20-400 KB (images, fonts), 1 % 0.4-3 MB (PDFs, videos, archives), uniform
  within each class; the class counts are exact (rounded), their order shuffled;
* about 25 files per directory, in sections nested two to three levels deep
  (``blog/``, ``blog/2019/``, ``blog/2019/photos/``), plus a few files at the
  top (``index.html``, ``robots.txt``, ...);
* contents are pseudo-random bytes (FTP does not compress, so what the bytes
  are does not matter, only how many);
* every file's mtime is a fixed time in the past (2023-11-14), a second apart.

Hidden entries -- ``.htaccess``, ``.git/...``, ``.DS_Store`` in some directories
-- are added on top (``hidden=True``, the default) and are *not* counted in
``files``: the benchmark excludes them with ``-X '.*' -X '.*/'``, as the
users' lftp recipe does, and checks that no tool uploads them.

Scale mode (``scale=True``): the same layout with tiny files (1-64 bytes), for
the 100,000-file dry-run test.

Command line::

    python3 benchmarks/treegen.py DEST [--files 2000] [--seed 1] [--scale] [--no-hidden]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BASE_MTIME",
    "FILES_PER_DIR",
    "TreeFile",
    "TreeInfo",
    "change_files",
    "file_content",
    "generate",
    "hidden_entries",
    "is_hidden",
    "layout",
    "reset_mtimes",
]

FILES_PER_DIR = 25
#: mtime of the first generated file (2023-11-14 22:13:20 UTC); file i gets BASE_MTIME + i.
BASE_MTIME = 1_700_000_000
#: (share, smallest, largest) in bytes.
SIZE_CLASSES: tuple[tuple[float, int, int], ...] = (
    (0.85, 200, 20_000),
    (0.14, 20_000, 400_000),
    (0.01, 400_000, 3_000_000),
)
SCALE_SIZES = (1, 64)

_SECTIONS = (
    "blog",
    "docs",
    "assets",
    "products",
    "news",
    "about",
    "shop",
    "help",
    "events",
    "gallery",
    "press",
    "careers",
    "support",
    "community",
    "legal",
    "media",
)
_SUBDIRS = (
    "2019",
    "2020",
    "2021",
    "2022",
    "2023",
    "2024",
    "archive",
    "drafts",
    "en",
    "ja",
    "img",
    "css",
    "js",
    "fonts",
    "downloads",
    "team",
    "faq",
    "guides",
    "api",
    "tags",
)
_LEAVES = ("photos", "thumbs", "attachments", "old", "print", "amp", "static", "v2")
_KINDS = (
    # (size class index, stems, extensions)
    (
        0,
        ("page", "post", "article", "style", "app", "icon", "data", "note"),
        ("html", "html", "html", "css", "js", "svg", "json", "txt"),
    ),
    (
        1,
        ("photo", "image", "banner", "font", "hero", "thumb"),
        ("jpg", "png", "webp", "woff2", "jpg", "png"),
    ),
    (2, ("brochure", "video", "bundle", "manual"), ("pdf", "mp4", "zip", "pdf")),
)
_TOP_FILES = ("index.html", "robots.txt", "sitemap.xml", "favicon.ico", "404.html")


@dataclass(frozen=True, slots=True)
class TreeFile:
    path: str  # relative POSIX path
    size: int
    mtime: int
    index: int  # position in the layout (also seeds the content)


@dataclass(frozen=True)
class TreeInfo:
    root: Path
    files: list[TreeFile]
    dirs: list[str]
    hidden: list[str]  # hidden files written (relative paths), not in ``files``

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def _directories(count: int, rng: random.Random) -> list[str]:
    """``count`` directories, each listed after its parent, 2-3 levels deep below sections."""
    dirs: list[str] = []
    i = 0
    while len(dirs) < count:
        top = _SECTIONS[i % len(_SECTIONS)]
        if i >= len(_SECTIONS):
            top = f"{top}-{i // len(_SECTIONS):03d}"
        dirs.append(top)
        for sub in rng.sample(_SUBDIRS, rng.randint(3, 6)):
            dirs.append(f"{top}/{sub}")
            if rng.random() < 0.5:
                for leaf in rng.sample(_LEAVES, rng.randint(1, 3)):
                    dirs.append(f"{top}/{sub}/{leaf}")
        i += 1
    return dirs[:count]


def _sizes(files: int, rng: random.Random, scale: bool) -> list[tuple[int, int]]:
    """``(class index, size)`` per file."""
    if scale:
        return [(0, rng.randint(*SCALE_SIZES)) for _ in range(files)]
    n_large = round(files * SIZE_CLASSES[2][0])
    n_mid = round(files * SIZE_CLASSES[1][0])
    classes = [2] * n_large + [1] * n_mid + [0] * (files - n_large - n_mid)
    rng.shuffle(classes)
    out = []
    for c in classes:
        _, lo, hi = SIZE_CLASSES[c]
        out.append((c, rng.randint(lo, hi)))
    return out


def layout(
    files: int = 2000, seed: int = 1, *, scale: bool = False
) -> tuple[list[TreeFile], list[str]]:
    """The files (path, size, mtime) and directories of a tree, without touching the disk."""
    if files < 1:
        raise ValueError("files must be at least 1")
    rng = random.Random(f"asyncmirror-treegen:{seed}:{'scale' if scale else 'site'}")
    top = min(len(_TOP_FILES), max(0, files - FILES_PER_DIR))
    n_dirs = max(1, math.ceil((files - top) / FILES_PER_DIR))
    dirs = _directories(n_dirs, rng)
    sizes = _sizes(files, rng, scale)
    out: list[TreeFile] = []
    for i in range(top):
        out.append(TreeFile(_TOP_FILES[i], sizes[i][1], BASE_MTIME + i, i))
    for i in range(top, files):
        cls, size = sizes[i]
        d = dirs[min((i - top) // FILES_PER_DIR, len(dirs) - 1)]
        _, stems, exts = _KINDS[cls]
        k = rng.randrange(len(stems))
        name = f"{stems[k]}-{i:06d}.{exts[k]}"
        out.append(TreeFile(f"{d}/{name}", size, BASE_MTIME + i, i))
    return out, dirs


#: randbytes() makes one integer of 8 × size bits: above 256 MiB that overflows.
_CONTENT_PIECE = 64 * 1024 * 1024


def file_content(seed: int, index: int, size: int, generation: int = 0) -> bytes:
    """The bytes of file ``index``; ``generation`` > 0 gives the content after a change."""
    rng = random.Random(f"asyncmirror-content:{seed}:{index}:{generation}")
    if size <= _CONTENT_PIECE:
        return rng.randbytes(size)
    return b"".join(
        rng.randbytes(min(_CONTENT_PIECE, size - start)) for start in range(0, size, _CONTENT_PIECE)
    )


def write_content(path: Path, seed: int, index: int, size: int) -> None:
    """Write :func:`file_content` to ``path`` a piece at a time (large files: no 2× copy)."""
    rng = random.Random(f"asyncmirror-content:{seed}:{index}:0")
    with open(path, "wb") as f:
        if size <= _CONTENT_PIECE:
            f.write(rng.randbytes(size))
            return
        for start in range(0, size, _CONTENT_PIECE):
            f.write(rng.randbytes(min(_CONTENT_PIECE, size - start)))


def hidden_entries(dirs: Sequence[str]) -> list[tuple[str, bytes]]:
    """Dot files a real site tree carries; excluded by -X '.*' -X '.*/'."""
    out = [
        (".htaccess", b"RewriteEngine On\nRewriteRule ^old/(.*)$ /new/$1 [R=301,L]\n"),
        (".git/HEAD", b"ref: refs/heads/main\n"),
        (".git/config", b"[core]\n\trepositoryformatversion = 0\n"),
        (".git/objects/ab/cdef0123456789", bytes(range(256)) * 4),
    ]
    for d in list(dirs)[:: max(1, len(dirs) // 5)][:5]:
        out.append((f"{d}/.DS_Store", b"\0\0\0\1Bud1" + bytes(100)))
    out.append((f"{dirs[0]}/.cache/thumb.db", b"x" * 300))
    return out


def is_hidden(relpath: str) -> bool:
    """Whether any component of ``relpath`` starts with a dot (what the -X rules drop)."""
    return any(part.startswith(".") for part in relpath.split("/"))


def generate(
    root: str | os.PathLike[str],
    files: int = 2000,
    seed: int = 1,
    *,
    scale: bool = False,
    hidden: bool = True,
) -> TreeInfo:
    """Write the tree under ``root`` (created; must be empty or missing)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty")
    entries, dirs = layout(files, seed, scale=scale)
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    for f in entries:
        p = root / f.path
        p.write_bytes(file_content(seed, f.index, f.size))
        os.utime(p, (f.mtime, f.mtime))
    written: list[str] = []
    if hidden:
        for rel, data in hidden_entries(dirs):
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            written.append(rel)
    return TreeInfo(root, entries, dirs, written)


def reset_mtimes(root: str | os.PathLike[str], entries: Iterable[TreeFile]) -> None:
    """Put every file's mtime back to its generated value (contents are left alone)."""
    root = Path(root)
    for f in entries:
        os.utime(root / f.path, (f.mtime, f.mtime))


def change_files(
    root: str | os.PathLike[str],
    entries: Sequence[TreeFile],
    *,
    fraction: float = 0.01,
    seed: int = 1,
    generation: int = 1,
    mtime: float | None = None,
) -> list[TreeFile]:
    """Rewrite ``fraction`` of the files (same size, new bytes) and set their mtime.

    ``mtime`` defaults to two minutes from now: newer than anything uploaded so far
    even for a client that reads remote times to the minute only (LIST), as after
    an edit made some minutes after the last upload.  Returns the changed files.
    """
    root = Path(root)
    count = max(1, round(len(entries) * fraction))
    rng = random.Random(f"asyncmirror-change:{seed}:{generation}")
    chosen = sorted(rng.sample(range(len(entries)), count))
    stamp = time.time() + 120 if mtime is None else mtime
    changed = []
    for i in chosen:
        f = entries[i]
        p = root / f.path
        p.write_bytes(file_content(seed, f.index, f.size, generation))
        os.utime(p, (stamp, stamp))
        changed.append(f)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write a deterministic website-like tree.")
    p.add_argument("dest", help="directory to create (must be empty or missing)")
    p.add_argument(
        "--files",
        type=int,
        default=None,
        help="number of files (default 2000; 100000 with --scale)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--scale", action="store_true", help="tiny files (1-64 bytes), for the dry-run scale test"
    )
    p.add_argument(
        "--no-hidden",
        dest="hidden",
        action="store_false",
        help="leave out .htaccess, .git/ and .DS_Store entries",
    )
    args = p.parse_args(argv)
    files = args.files if args.files is not None else (100_000 if args.scale else 2000)
    started = time.monotonic()
    info = generate(args.dest, files, args.seed, scale=args.scale, hidden=args.hidden)
    print(
        f"{len(info.files)} files ({info.total_bytes / 1e6:.1f} MB) in {len(info.dirs)} "
        f"directories, {len(info.hidden)} hidden files, under {info.root} "
        f"({time.monotonic() - started:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
