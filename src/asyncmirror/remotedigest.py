"""Content digests of files on the server: by its digest command, or by download.

``--verify`` and ``--checksum`` compare content, not sizes and times.  The
server computes the digest when it has a command for it -- ProFTPD's
mod_digest answers ``HASH`` (draft-bryan-ftpext-hash, algorithm chosen with
``OPTS HASH``) and the older ``XSHA256``/``XSHA1``/``XMD5``/``XCRC`` -- and
those commands pipeline like ``MLST``: hundreds cost about one round trip per
session.  Without one, each file is downloaded and hashed as it arrives.

The reply parsing and the choice of method are pure; :class:`DigestMethod` is
one way of asking, strongest first in :data:`METHODS`.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Sequence
from typing import NamedTuple

from . import digests
from .digests import Hasher
from .replies import Reply


class _Crc32:
    """zlib.crc32 behind the hashlib interface (XCRC's digest, as 8 hex digits)."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes | memoryview, /) -> None:
        self.value = zlib.crc32(data, self.value)

    def hexdigest(self) -> str:
        return f"{self.value:08x}"


class DigestMethod(NamedTuple):
    """One way to ask the server for a file's digest."""

    name: str  # what the user reads: "HASH SHA-256", "XMD5", "download"
    setup: tuple[str, ...]  # sent before the command (OPTS HASH ...)
    command: str  # the command, followed by the path; "" for a download
    algorithm: str  # hashlib's name, "crc32", or one of digests.ALGORITHMS

    def new(self) -> Hasher:
        if self.algorithm == "crc32":
            return _Crc32()
        if self.algorithm in digests.ALGORITHMS:
            return digests.new(self.algorithm)
        h: Hasher = hashlib.new(self.algorithm)
        return h

    def lines(self, path: str) -> list[str]:
        """The commands asking for ``path``'s digest.  The setup goes with every
        file: a session that replaced a broken one has not had it, and pipelined
        it costs no round trip."""
        return [*self.setup, f"{self.command} {path}"]


#: Strongest first.  HASH with SHA-256 is the standard command; the X* ones predate it.
METHODS: tuple[DigestMethod, ...] = (
    DigestMethod("HASH SHA-256", ("OPTS HASH SHA-256",), "HASH", "sha256"),
    DigestMethod("XSHA256", (), "XSHA256", "sha256"),
    DigestMethod("XSHA1", (), "XSHA1", "sha1"),
    DigestMethod("XMD5", (), "XMD5", "md5"),
    DigestMethod("XCRC", (), "XCRC", "crc32"),
)
#: Hash what a download of the file brings (no digest command on the server):
#: both ends are hashed here, so the state file's fast hash serves.
DOWNLOAD = DigestMethod("download", (), "", digests.DEFAULT)

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


def all_lines(methods: Sequence[DigestMethod], path: str) -> list[str]:
    """Every method's commands for ``path``, to be sent in one pipelined burst."""
    return [line for m in methods for line in m.lines(path)]


def answered(
    methods: Sequence[DigestMethod], replies: Sequence[Reply]
) -> tuple[DigestMethod, str] | None:
    """The first of ``methods`` whose reply (in ``replies``, answering
    :func:`all_lines`) holds a digest, and that digest; ``None`` if none does."""
    i = 0
    for m in methods:
        i += len(m.setup) + 1
        found = parse_digest(m, replies[i - 1])
        if found is not None:
            return m, found
    return None


def none_known(methods: Sequence[DigestMethod], replies: Sequence[Reply]) -> bool:
    """Whether every command was refused as unknown (500/501/502/504): the server
    has none of them, as opposed to failing on one file."""
    i = 0
    for m in methods:
        i += len(m.setup) + 1
        if replies[i - 1].code not in _UNKNOWN:
            return False
    return True


_UNKNOWN = ("500", "501", "502", "504")


def local_digests(path: str, method: DigestMethod, chunk: int = 1 << 20) -> tuple[str, str]:
    """``method``'s digest of the local file at ``path`` and the state file's
    (:data:`digests.DEFAULT`), from one read (raises OSError)."""
    mine = method.new()
    state = mine if method.algorithm == digests.DEFAULT else digests.new()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            mine.update(view[:n])
            if state is not mine:
                state.update(view[:n])
    return mine.hexdigest(), state.hexdigest()
