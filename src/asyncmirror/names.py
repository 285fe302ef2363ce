"""The names asyncmirror gives its own files on the server.  Pure constants.

The filters keep these out of every mirror (never uploaded from SRC, never
deleted as strays on DST); uploads and the state store make them.
"""

from __future__ import annotations

import os
import posixpath

# Every name starts with ".ht": Apache refuses to serve those out of the box
# (<Files ".ht*"> Require all denied), and most nginx setups copy the rule.

#: The state file asyncmirror keeps at the root of DST (and never uploads from SRC).
STATE_NAME = ".htasyncmirror-state.json"
#: Prefix of asyncmirror's temporary upload names, at any depth.
TEMP_PREFIX = ".htasyncmirror-tmp-"
#: The deploy lock directory at the root of DST (see :mod:`asyncmirror.deploylock`).
LOCK_DIR = ".htasyncmirror-lock"
#: The names before 0.2, which any web server served: the state file is read once,
#: then removed; both stay asyncmirror's own (never uploaded, never deleted as strays).
LEGACY_STATE_NAME = ".asyncmirror-state.json"
LEGACY_TEMP_PREFIX = ".asyncmirror-tmp-"


def temporary(path: str, tag: str | None = None) -> str:
    """The temporary name ``path`` is uploaded under before its rename into place.

    Same directory (the rename must not cross file systems), the final name at
    the end (a reader of a leftover sees what it was), a random ``tag`` unless
    one is given, so two runs never write the same temporary file.
    """
    tag = tag if tag is not None else os.urandom(4).hex()
    head, name = posixpath.split(path)
    return posixpath.join(head, f"{TEMP_PREFIX}{tag}-{name}")
