"""Content digests for the state file.  Pure (no I/O beyond reading a file).

The state file records a digest of every uploaded file so that a fresh
checkout -- new mtimes, same bytes -- uploads nothing.  What it has to tell is
whether a file still holds the bytes asyncmirror sent, which is what rsync's
checksums tell too, and it uses the same function: xxHash's XXH3-128.  It is
not cryptographic, and does not need to be (whoever can edit SRC can deploy
anything anyway); 128 bits make an accidental match out of the question.  It
runs at memory speed (~40 GB/s here), where SHA-256 (1.2 GB/s with the CPU's
SHA extensions) cost more CPU than the TLS encryption of the same bytes and
held large uploads back on a machine the server shares.

State entries written by asyncmirror 0.1 carry SHA-256; they are still
compared with SHA-256, so an upgrade does not re-upload a site.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Protocol

import xxhash


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


#: What new state entries use.
DEFAULT = "xxh3_128"

_MAKERS: dict[str, Callable[[], Hasher]] = {
    "xxh3_128": xxhash.xxh3_128,
    "sha256": hashlib.sha256,
}

#: Every algorithm a state entry may name, newest first.
ALGORITHMS = tuple(_MAKERS)

_BLOCK = 1024 * 1024


def new(algorithm: str = DEFAULT) -> Hasher:
    """A fresh hasher; ``algorithm`` is one of :data:`ALGORITHMS`."""
    return _MAKERS[algorithm]()


def of_file(path: str, algorithm: str = DEFAULT) -> str:
    """The hex digest of the file at ``path`` (raises ``OSError``)."""
    hasher = new(algorithm)
    buf = bytearray(_BLOCK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            hasher.update(view[:n])
    return hasher.hexdigest()
