"""Content digests of files on the server: by its digest command, or by download.

``--verify`` compares content, not sizes and times.  The server computes the
digest when it has a command for it -- ProFTPD's mod_digest answers ``HASH``
(draft-bryan-ftpext-hash, algorithm chosen with ``OPTS HASH``) and the older
``XSHA256``/``XSHA1``/``XMD5``/``XCRC`` -- and those commands pipeline like
``MLST``: hundreds cost about one round trip per session.  Without one, each
file is downloaded over the pool and hashed as it arrives.

The reply parsing and the choice of method are pure; :class:`DigestMethod` is
one way of asking, strongest first in :data:`METHODS`.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from .replies import Reply


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


class _Crc32:
    """zlib.crc32 behind the hashlib interface (XCRC's digest, as 8 hex digits)."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes, /) -> None:
        self.value = zlib.crc32(data, self.value)

    def hexdigest(self) -> str:
        return f"{self.value:08x}"


class DigestMethod(NamedTuple):
    """One way to ask the server for a file's digest."""

    name: str  # what the user reads: "HASH SHA-256", "XMD5", "download"
    setup: tuple[str, ...]  # commands sent once per session first (OPTS HASH ...)
    command: str  # the command, followed by the path; "" for a download
    algorithm: str  # hashlib's name, or "crc32"

    def new(self) -> _Hasher:
        if self.algorithm == "crc32":
            return _Crc32()
        h: _Hasher = hashlib.new(self.algorithm)
        return h

    def line(self, path: str) -> str:
        return f"{self.command} {path}"


#: Strongest first.  HASH with SHA-256 is the standard command; the X* ones predate it.
METHODS: tuple[DigestMethod, ...] = (
    DigestMethod("HASH SHA-256", ("OPTS HASH SHA-256",), "HASH", "sha256"),
    DigestMethod("XSHA256", (), "XSHA256", "sha256"),
    DigestMethod("XSHA1", (), "XSHA1", "sha1"),
    DigestMethod("XMD5", (), "XMD5", "md5"),
    DigestMethod("XCRC", (), "XCRC", "crc32"),
)
#: Hash what a download of the file brings (no digest command on the server).
DOWNLOAD = DigestMethod("download", (), "", "sha256")

_HEX = re.compile(r"\b([0-9A-Fa-f]{8,128})\b")
# HASH's final line: "<algorithm> <start>-<end> <hex> <path>" (draft-bryan-ftpext-hash).
_HASH_LINE = re.compile(r"^\S+\s+\d+-\d+\s+([0-9A-Fa-f]+)\s")
_LENGTHS = {"sha256": 64, "sha1": 40, "md5": 32, "crc32": 8}


def parse_digest(method: DigestMethod, reply: Reply) -> str | None:
    """The lowercase hex digest in ``reply`` to ``method``'s command, or ``None``.

    ``None`` when the server refused (no such file, not supported) or the reply
    holds no digest of the expected length.
    """
    if not reply.is_complete or not reply.lines:
        return None
    last = reply.lines[-1].strip()
    want = _LENGTHS.get(method.algorithm)
    if method.command == "HASH":
        m = _HASH_LINE.match(last)
        found = m.group(1) if m else None
    else:
        found = next((h for h in _HEX.findall(last) if len(h) == want), None)
    if found is None or (want is not None and len(found) != want):
        return None
    return found.lower()


def choose(supported: Callable[[DigestMethod], bool]) -> DigestMethod:
    """The strongest method ``supported`` accepts; downloading when none is."""
    return next((m for m in METHODS if supported(m)), DOWNLOAD)


def local_digest(path: str, method: DigestMethod, chunk: int = 1 << 20) -> str:
    """``method``'s digest of the local file at ``path`` (raises OSError)."""
    h = method.new()
    with open(path, "rb") as fh:
        while data := fh.read(chunk):
            h.update(data)
    return h.hexdigest()


def lines_for(method: DigestMethod, paths: Sequence[str]) -> list[str]:
    """The command lines asking for the digests of ``paths`` (absolute remote paths)."""
    return [method.line(p) for p in paths]
