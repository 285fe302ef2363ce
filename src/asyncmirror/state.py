"""The state file: what asyncmirror last uploaded, kept on the server.  Pure.

A fresh checkout gives every file a new mtime, so times alone would send the
whole site again.  The state records, per uploaded file, its size, mtime and
a content digest (:mod:`~asyncmirror.digests`).  A file that looks newer but
has the recorded size and digest -- and whose size on the server still
matches -- is unchanged and skipped (the rule: ``planner.need_transfer``).

The file lives in DST (``.htasyncmirror-state.json``; the filters never mirror or
delete it), is replaced atomically (temporary name, then rename) and is written
during the run too, so an interrupted run keeps what it finished.  A missing or
unreadable state only means falling back to the listing comparison.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import NamedTuple

from . import digests

#: 2: each entry names its digest's algorithm (its key); 1 (asyncmirror 0.1):
#: always "sha256".  Both are read; 2 is written.
VERSION = 2
_READABLE = (1, 2)


class StateEntry(NamedTuple):
    size: int
    mtime: float
    digest: str
    algorithm: str = digests.DEFAULT


class StateError(ValueError):
    """The state file is not one we wrote (corrupt or from the future)."""


def load(data: bytes) -> dict[str, StateEntry]:
    try:
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("version") not in _READABLE:
            raise StateError("unknown state format")
        files = doc["files"]
        if not isinstance(files, dict):
            raise StateError("unknown state format")
        out: dict[str, StateEntry] = {}
        for path, e in files.items():
            if not isinstance(path, str) or not isinstance(e, dict):
                raise StateError("unknown state format")
            size, mtime = e["size"], e["mtime"]
            named = [a for a in digests.ALGORITHMS if a in e]
            if len(named) != 1:
                raise StateError(f"bad entry for {path!r}")
            algorithm = named[0]
            digest = e[algorithm]
            if not (
                isinstance(size, int) and isinstance(mtime, int | float) and isinstance(digest, str)
            ):
                raise StateError(f"bad entry for {path!r}")
            out[path] = StateEntry(size, float(mtime), digest, algorithm)
        return out
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise StateError(f"unreadable state ({type(exc).__name__})") from None


def dump(entries: Mapping[str, StateEntry]) -> bytes:
    doc = {
        "version": VERSION,
        "tool": "asyncmirror",
        "files": {
            p: {"size": e.size, "mtime": e.mtime, e.algorithm: e.digest}
            for p, e in sorted(entries.items())
        },
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
