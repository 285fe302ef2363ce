"""The names asyncmirror gives its own files on the server.  Pure constants.

The filters keep these out of every mirror (never uploaded from SRC, never
deleted as strays on DST); uploads and the state store make them.
"""

from __future__ import annotations

import os
import posixpath

#: The state file asyncmirror keeps at the root of DST (and never uploads from SRC).
STATE_NAME = ".asyncmirror-state.json"
#: Prefix of asyncmirror's temporary upload names, at any depth.
TEMP_PREFIX = ".asyncmirror-tmp-"


def temporary(path: str, tag: str | None = None) -> str:
    """The temporary name ``path`` is uploaded under before its rename into place.

    Same directory (the rename must not cross file systems), the final name at
    the end (a reader of a leftover sees what it was), a random ``tag`` unless
    one is given, so two runs never write the same temporary file.
    """
    tag = tag if tag is not None else os.urandom(4).hex()
    head, name = posixpath.split(path)
    return posixpath.join(head, f"{TEMP_PREFIX}{tag}-{name}")
