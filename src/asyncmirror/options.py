"""Every option of a run, written once: :class:`Options`.

``mirror()`` keeps its keyword arguments for users (a unit test checks they
are exactly these fields, with the same defaults); the command line builds an
``Options`` in ``cli.options_from``; the run reads nothing else.  Light on
purpose: the command imports it before the heavy imports (see early.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING, Any

from .early import EarlyConnection
from .filters import Rule

if TYPE_CHECKING:
    from .report import Events

#: ``trace(direction, line)``: the protocol exchange, password masked.
Trace = Callable[[str, str], None]


@dataclass(frozen=True, kw_only=True)
class Options:
    """One run's settings (see :func:`asyncmirror.mirror` for what each means)."""

    host: str
    port: int = 21
    user: str
    password: str = field(repr=False)
    jobs: int = 8
    exclude: Sequence[str] = ()
    include: Sequence[str] = ()
    exclude_regex: Sequence[str] = ()
    include_regex: Sequence[str] = ()
    #: Ordered rules; when given, the four lists above are not used.
    rules: Sequence[Rule] | None = None
    delete: bool = False
    dry_run: bool = False
    only_newer: bool = True
    atomic: bool = False
    set_mtime: bool = True
    ca_file: str | None = None
    fingerprint: str | None = None
    insecure: bool = False
    timeout: float = 30.0
    deadline: float | None = None
    retries: int = 5
    max_delete: int | None = None
    state: bool = True
    state_file: str | None = None
    remote_timezone: tzinfo = UTC
    events: Events | None = None
    trace: Trace | None = None
    early_connections: Sequence[EarlyConnection] = ()
    #: A whole-site switch: upload to a staging copy beside DST, then rename.
    swap: bool = False
    #: The deploy lock (see deploylock.py): taken by a run that changes DST.
    lock: bool = True
    lock_wait: float = 0.0
    lock_stale: float = 3 * 3600.0
    break_lock: bool = False
    #: Compare contents (server digest command, else download) instead of trusting times.
    verify: bool = False
    #: Check each upload by the server's digest command, not its size alone.
    checksum: bool = False
    #: Make links to paths inside SRC as links on the server (SITE SYMLINK).
    site_symlink: bool = False

    def __post_init__(self) -> None:
        # Frozen means frozen: a caller's list changed later must not change the run.
        for name in ("exclude", "include", "exclude_regex", "include_regex", "early_connections"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.rules is not None:
            object.__setattr__(self, "rules", tuple(self.rules))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Options:
        """The fields found in ``values`` (e.g. a function's ``locals()``); the rest ignored."""
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


FIELDS = tuple(f.name for f in dataclasses.fields(Options))
