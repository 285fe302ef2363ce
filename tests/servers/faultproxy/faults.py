"""The fault vocabulary: a :class:`Fault` is *when* (``on``, ``name``, ``every``, ``times``)
plus *what* (one action).  Pure: no sockets, no clock; the proxy asks a :class:`FaultBook`
which faults are due for each event it sees and carries out their actions.

An action's ``kind`` says where it acts and how faults of that kind share an event:
every due ``effect`` fires; of the other kinds (``reply``, ``drop``, ``refuse``, ``data``,
``listing``) only the first due fault in the book fires for one event, so a command gets
at most one made-up reply and a data connection at most one break.
"""

from __future__ import annotations

import dataclasses
import posixpath
import threading
from collections.abc import Callable, Collection, Sequence
from typing import ClassVar

__all__ = [
    "CONNECT",
    "LISTINGS",
    "TRANSFERS",
    "Action",
    "Answer",
    "Call",
    "Cut",
    "CutControl",
    "DropControl",
    "Fault",
    "FaultBook",
    "Inject",
    "Refuse",
    "Replace",
    "Restart",
    "Silence",
    "Stall",
    "Truncate",
]

#: ``on`` for a new control connection (before the banner), instead of a command verb.
CONNECT = "CONNECT"
#: The listing commands, whose data connections carry a directory listing.
LISTINGS = ("MLSD", "LIST", "NLST")
#: The commands that use a data connection (data actions need one of these in ``on``).
TRANSFERS = frozenset({"STOR", "STOU", "APPE", "RETR", *LISTINGS})
_TEMP_PREFIX = ".htasyncmirror-tmp-"  # asyncmirror's --atomic temporary names


class Action:
    """What a fault does; ``kind`` says where (see the module docstring)."""

    kind: ClassVar[str]


# --- on a command, before it reaches the server -----------------------------------------


@dataclasses.dataclass(frozen=True)
class Answer(Action):
    """The proxy answers the command with ``reply`` (one line); the server never sees it."""

    reply: str
    kind: ClassVar[str] = "reply"


@dataclasses.dataclass(frozen=True)
class Replace(Action):
    """The command reaches the server; its final reply is replaced with ``reply``
    (e.g. the transfer happened, then ``426``)."""

    reply: str
    kind: ClassVar[str] = "reply"


@dataclasses.dataclass(frozen=True)
class DropControl(Action):
    """Reset (TCP RST, both sides) the control connection that carries the command,
    before the command is forwarded; with ``every_connection``, every open one."""

    every_connection: bool = False
    kind: ClassVar[str] = "drop"


# --- on a new control connection -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Refuse(Action):
    """A control connection beyond ``beyond`` open ones gets ``421`` and is closed."""

    beyond: int
    kind: ClassVar[str] = "refuse"

    @property
    def reply(self) -> str:
        return f"421 Too many connections ({self.beyond}) from this IP"


# --- effects: on a command or a new connection, then for the whole proxy --------------------


@dataclasses.dataclass(frozen=True)
class Silence(Action):
    """Swallow every server reply (banners too) on every control connection, for
    ``seconds`` (``None``: until the faults are reset): a server gone silent."""

    seconds: float | None = None
    kind: ClassVar[str] = "effect"


@dataclasses.dataclass(frozen=True)
class Restart(Action):
    """``delay`` seconds later, cut every connection and refuse new ones (nothing
    listens) for ``seconds``, then listen again: a server restart."""

    seconds: float
    delay: float = 0.0
    kind: ClassVar[str] = "effect"


@dataclasses.dataclass(frozen=True)
class Call(Action):
    """Call ``fn()`` on the proxy's loop (an awaitable result runs as a task of its
    own), then handle the command as usual: for a change the proxy cannot make itself."""

    fn: Callable[[], object]
    kind: ClassVar[str] = "effect"


# --- on the data connection of a matching transfer command ---------------------------------


@dataclasses.dataclass(frozen=True)
class Cut(Action):
    """After ``after`` bytes (both directions counted) reset the data connection, both sides."""

    after: int
    kind: ClassVar[str] = "data"


@dataclasses.dataclass(frozen=True)
class Truncate(Action):
    """Pass the first ``after`` bytes towards the server, drop the rest silently and end
    the transfer normally: a server whose disk write failed."""

    after: int
    kind: ClassVar[str] = "data"


@dataclasses.dataclass(frozen=True)
class Stall(Action):
    """After ``after`` bytes stop reading from the client (its sends block; the server
    holds a partial file) until its control connection closes, at most 30 s; then end
    the transfer normally."""

    after: int
    kind: ClassVar[str] = "data"


@dataclasses.dataclass(frozen=True)
class CutControl(Action):
    """After ``after`` bytes reset the *control* connection the transfer belongs to (the
    server then aborts the transfer, leaving a partial file)."""

    after: int
    kind: ClassVar[str] = "data"


@dataclasses.dataclass(frozen=True)
class Inject(Action):
    """Append ``lines`` to the listing sent to the client (hostile names)."""

    lines: Sequence[str]
    kind: ClassVar[str] = "listing"


_DATA_KINDS = frozenset({"data", "listing"})


def name_matches(name: str | None, argument: str) -> bool:
    """``name`` is a file's base name; a temporary ``--atomic`` name for it matches too."""
    if name is None:
        return True
    base = posixpath.basename(argument)
    return base == name or (base.startswith(_TEMP_PREFIX) and base.endswith("-" + name))


@dataclasses.dataclass(eq=False)
class Fault:
    """Do ``do`` on every ``every``-th event that matches, at most ``times`` times.

    An event matches when its verb is ``on`` (a verb, several, or :data:`CONNECT`) and,
    with ``name``, the base name of the command's argument is ``name``.  For a data
    action the events are the data connections of the matching transfer commands; for
    the others, the commands (or new connections) themselves.  "The Nth STOR" is
    ``every=N, times=1``.  Events are counted over all connections.

    The proxy keeps the records: ``seen`` matching events, ``fired`` the times the
    action was started, ``done`` the times it took effect (a cut reached its byte
    count, a reply was swallowed or replaced, a connection dropped, refused...).  A test
    asserts on ``done`` (or ``fired``), so a test whose fault never happened fails.
    """

    on: str | Collection[str]
    do: Action
    name: str | None = None
    every: int = 1
    times: int | None = None
    seen: int = dataclasses.field(default=0, init=False)
    fired: int = dataclasses.field(default=0, init=False)
    done: int = dataclasses.field(default=0, init=False)
    verbs: frozenset[str] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        verbs = [self.on] if isinstance(self.on, str) else list(self.on)
        self.verbs = frozenset(v.upper() for v in verbs)
        kind = self.do.kind
        if not self.verbs or self.every < 1:
            raise ValueError(f"{self!r}: needs a verb in `on` and every >= 1")
        if (CONNECT in self.verbs) != (kind == "refuse") and kind != "effect":
            raise ValueError(f"{self!r}: {type(self.do).__name__} cannot act on {self.on!r}")
        if CONNECT in self.verbs and len(self.verbs) > 1:
            raise ValueError(f"{self!r}: CONNECT is an event of its own, not a verb")
        if kind in _DATA_KINDS and not self.verbs <= TRANSFERS:
            raise ValueError(f"{self!r}: a data action needs transfer verbs in `on`")
        if kind == "listing" and not self.verbs <= set(LISTINGS):
            raise ValueError(f"{self!r}: Inject acts on listings only")


class FaultBook:
    """The faults in force.  Thread-safe: a test adds faults and reads their records
    while the proxy's loop asks which are due."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, faults: Sequence[Fault]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def all(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def due(
        self, verb: str, argument: str, kinds: Collection[str], *, open_controls: int = 0
    ) -> list[Fault]:
        """The faults of ``kinds`` that fire for one event, in the book's order: every
        due effect, and the first due fault of each other kind.  Counts them."""
        chosen: list[Fault] = []
        taken: set[str] = set()
        with self._lock:
            for fault in self._faults:
                kind = fault.do.kind
                if kind not in kinds or verb not in fault.verbs:
                    continue
                if not name_matches(fault.name, argument):
                    continue
                fault.seen += 1
                if fault.seen % fault.every or (
                    fault.times is not None and fault.fired >= fault.times
                ):
                    continue
                if isinstance(fault.do, Refuse) and open_controls < fault.do.beyond:
                    continue
                if kind != "effect" and kind in taken:
                    continue  # one made-up reply per command, one break per connection
                taken.add(kind)
                fault.fired += 1
                chosen.append(fault)
        return chosen

    def credit(self, fault: Fault, n: int = 1) -> None:
        """Record that ``fault``'s action took effect ``n`` more times."""
        with self._lock:
            fault.done += n
