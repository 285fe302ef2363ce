"""Which reply answers which command on one control connection: bookkeeping, no I/O.

Theory of operation
-------------------
FTP answers commands in the order they were sent, so a client may write many
commands at once and pair the replies up by counting.  :class:`Pipeline` does
the counting for a :class:`~asyncmirror.session.Session`, h11-style: the session
tells it what it sends (and gets back the lines and the bytes to write, in one
write), feeds it every complete :class:`~asyncmirror.replies.Reply`, and gets
back an event saying whose reply it is.  No sockets, no clock, no asyncio.

Commands are owed in five kinds (:class:`Kind`):

* ``COMMAND`` -- a plain command: the login and set-up sent in one write,
  pipelined batches (``MKD``, ``MLST``), the checks of a finished upload sent
  with the next ``EPSV``.  The next reader gets its reply.
* ``PASSIVE`` -- the ``EPSV``/``PASV`` of the next transfer.  The event says
  which of the two was sent: another session may switch the shared choice
  while this one's reply is in flight.
* ``RIDER`` -- commands that ride in the same write as the next transfer
  command: the checks of the previous upload (``RNTO``, ``MFMT``, ``SIZE``) or
  the ``CWD`` of a ``LIST``.  Their replies are kept for their owner, who takes
  them (and, if the transfer never went out, the unsent lines) with
  :meth:`Pipeline.take_riders`.
* ``TRANSFER`` -- ``STOR``, ``RETR``, ``LIST``, ``MLSD``: a 1xx, then a final reply.
* ``AHEAD`` -- the next transfer's passive command sent *ahead*, right after a
  transfer's data and before its final reply (``226``): one round trip saved
  per file.  ProFTPD answers it out of order: ``450 ... in progress``
  (:class:`AheadRejected`: nothing owed any more, send it again) or, at times,
  ``227``/``229`` before the ``226`` (:class:`AheadAnswered`: held until
  :meth:`Pipeline.take_held_passive`).  Sent after the ``226``, its reply comes
  in order like any other.  A transfer that *fails* while its ``AHEAD`` is
  still unanswered leaves the replies unpairable (the error could be either
  command's): the pipeline goes out of step and the session must be dropped.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from . import errors
from .replies import Reply, mask_command

__all__ = [
    "RECORD_LIMIT",
    "AheadAnswered",
    "AheadRejected",
    "Answer",
    "Event",
    "Kind",
    "Owed",
    "Pipeline",
    "Progress",
    "Write",
    "pack_records",
]

#: Largest control-channel write.  ProFTPD reads commands into a small buffer
#: and then waits on the socket: commands left inside one larger TLS record
#: stay unread and the session stalls (seen with 4.8 KB of pipelined MLST).
RECORD_LIMIT = 1024


class Kind(enum.Enum):
    COMMAND = "command"
    PASSIVE = "passive"
    RIDER = "rider"
    TRANSFER = "transfer"
    AHEAD = "ahead"


class Owed(NamedTuple):
    """A command whose final reply has not come yet (``command`` has the password masked)."""

    kind: Kind
    command: str
    #: Who gets the reply of a ``RIDER`` (compared by identity); ``None`` otherwise.
    owner: object = None


class Answer(NamedTuple):
    """The final (2xx-5xx) reply to the oldest owed command, ``owed``."""

    owed: Owed
    reply: Reply


class Progress(NamedTuple):
    """A 1xx to ``owed``: it is under way, its final reply is still owed."""

    owed: Owed
    reply: Reply


class AheadAnswered(NamedTuple):
    """The passive command sent ahead was answered before the transfer's final reply."""

    owed: Owed
    reply: Reply


class AheadRejected(NamedTuple):
    """``450 ... in progress``: the passive command came mid-transfer; nothing is owed for it."""

    owed: Owed
    reply: Reply


Event = Answer | Progress | AheadAnswered | AheadRejected


class Write(NamedTuple):
    """What to send in one go: the lines (for the trace) and the bytes, one record each."""

    lines: tuple[str, ...]
    records: tuple[bytes, ...]


def pack_records(lines: Sequence[str]) -> tuple[bytes, ...]:
    """Pack command lines into writes of at most RECORD_LIMIT bytes each."""
    out: list[bytes] = []
    buf = b""
    for line in lines:
        data = f"{line}\r\n".encode()
        if buf and len(buf) + len(data) > RECORD_LIMIT:
            out.append(buf)
            buf = b""
        buf += data
    if buf:
        out.append(buf)
    return tuple(out)


def _is_ahead_rejection(reply: Reply) -> bool:
    return reply.code == "450" and "progress" in reply.text.lower()


class Pipeline:
    """The replies owed on one control connection, in order, and whose they are."""

    def __init__(self) -> None:
        self._owed: deque[Owed] = deque()
        #: Waiting to go out in the same write as the next transfer command.
        self._riders: list[Owed] = []
        #: Replies to riders, kept until their owner takes them.
        self._rider_replies: list[tuple[object, Reply]] = []
        #: The passive command sent ahead, while its reply is owed ...
        self._ahead: Owed | None = None
        #: ... or its reply, come before the transfer's final one.
        self._held: AheadAnswered | None = None
        self._in_step = True

    # --- state ------------------------------------------------------------------

    @property
    def owed(self) -> tuple[Owed, ...]:
        """The commands whose final reply is still to come, oldest first."""
        return tuple(self._owed)

    @property
    def in_step(self) -> bool:
        """False once a reply cannot be paired with its command: drop the connection."""
        return self._in_step

    @property
    def ahead_pending(self) -> bool:
        """A passive command was sent ahead and nobody has taken its reply yet."""
        return self._ahead is not None or self._held is not None

    # --- what is sent -----------------------------------------------------------

    def send(self, *lines: str) -> Write:
        """Plain commands, in one write; each owes one final reply."""
        return self._write([(Kind.COMMAND, line, None) for line in lines])

    def send_passive(self, command: str, before: Sequence[str] = ()) -> Write:
        """``before`` (plain commands) and the passive ``command``, in one write."""
        return self._write(
            [(Kind.COMMAND, line, None) for line in before] + [(Kind.PASSIVE, command, None)]
        )

    def ride(self, owner: object, lines: Iterable[str]) -> None:
        """Send ``lines`` in the same write as the next transfer; replies kept for ``owner``."""
        self._riders += [Owed(Kind.RIDER, line, owner) for line in lines]

    def send_transfer(self, command: str) -> Write:
        """The riders waiting, then the transfer ``command``, in one write."""
        riders = [(o.kind, o.command, o.owner) for o in self._riders]
        write = self._write([*riders, (Kind.TRANSFER, command, None)])
        self._riders = []
        return write

    def send_ahead(self, command: str) -> Write:
        """The next passive ``command``, sent before the transfer's final reply."""
        if not any(o.kind is Kind.TRANSFER for o in self._owed):
            raise ValueError("a passive command goes ahead only of a transfer's final reply")
        if self.ahead_pending:
            raise ValueError("one passive command ahead at a time")
        write = self._write([(Kind.AHEAD, command, None)])
        self._ahead = self._owed[-1]
        return write

    def take_riders(self, owner: object) -> tuple[list[str], list[Reply]]:
        """``owner``'s riders never sent (the transfer did not go out) and the replies so far."""
        unsent = [o.command for o in self._riders if o.owner is owner]
        self._riders = [o for o in self._riders if o.owner is not owner]
        replies = [r for who, r in self._rider_replies if who is owner]
        self._rider_replies = [(who, r) for who, r in self._rider_replies if who is not owner]
        return unsent, replies

    def take_held_passive(self) -> AheadAnswered | None:
        """The passive reply that came before the 226, once."""
        held, self._held = self._held, None
        return held

    # --- what is received -------------------------------------------------------

    def receive(self, reply: Reply) -> Event:
        """Say whose ``reply`` is (one complete reply, in the order received)."""
        ahead = self._ahead
        if ahead is not None and self._owed and self._owed[0] is not ahead:
            # Something sent before the passive command is still owed (the
            # transfer's final reply): only these replies can be the one sent ahead's.
            if _is_ahead_rejection(reply):
                self._forget(ahead)
                return AheadRejected(ahead, reply)
            if reply.code in ("227", "229"):
                self._forget(ahead)
                self._held = AheadAnswered(ahead, reply)
                return self._held
        if not self._owed:
            self._in_step = False  # a reply to nothing: the server is not in step with us
            return Answer(Owed(Kind.COMMAND, ""), reply)
        head = self._owed[0]
        if reply.is_preliminary:
            return Progress(head, reply)
        self._owed.popleft()
        if head is ahead:
            self._ahead = None
        elif head.kind is Kind.RIDER:
            self._rider_replies.append((head.owner, reply))
        elif head.kind is Kind.TRANSFER and not reply.is_complete and self._ahead is not None:
            # A failure with the passive command ahead unanswered: this reply may
            # be that command's, and the next one the transfer's.
            self._in_step = False
        return Answer(head, reply)

    # --- internals --------------------------------------------------------------

    def _write(self, items: Sequence[tuple[Kind, str, object]]) -> Write:
        lines = tuple(line for _, line, _ in items)
        for line in lines:
            if "\r" in line or "\n" in line:
                # A CR or LF would let a file name inject a second command.
                shown = mask_command(line)[:40]
                raise errors.UsageError(f"refusing to send a command with CR/LF: {shown!r}")
        self._owed.extend(Owed(kind, mask_command(line), owner) for kind, line, owner in items)
        return Write(lines, pack_records(lines))

    def _forget(self, owed: Owed) -> None:
        self._owed = deque(o for o in self._owed if o is not owed)  # by identity
        self._ahead = None
