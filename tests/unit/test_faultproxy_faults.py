"""The fault proxy's vocabulary, without a server: which faults are due for an event.

The integration tests rely on these rules (``every``/``times`` counting, a file's
``--atomic`` temporary name matching, one made-up reply per command); here each is
checked on its own, so a change to the matcher fails here first, with a clear table.
"""

from __future__ import annotations

import pytest

from tests.servers.faultproxy import (
    CONNECT,
    LISTINGS,
    Answer,
    Cut,
    DropControl,
    Fault,
    Inject,
    Refuse,
    Replace,
    Silence,
    Truncate,
)
from tests.servers.faultproxy.faults import Action, FaultBook

COMMAND = ("drop", "effect", "reply")


def fired_on(book: FaultBook, events: list[tuple[str, str]], kinds: tuple[str, ...]) -> list[int]:
    """For each event, how many faults fired."""
    return [len(book.due(verb, arg, kinds)) for verb, arg in events]


@pytest.mark.parametrize(
    ("fault", "events", "expected"),
    [
        # every=3: the 3rd, 6th, 9th matching command.
        (Fault("STOR", Answer("450 busy"), every=3), [("STOR", "/f")] * 9, [0, 0, 1] * 3),
        # every=2, times=2: the 2nd and the 4th, then never again.
        (
            Fault("STOR", Answer("450 busy"), every=2, times=2),
            [("STOR", "/f")] * 8,
            [0, 1, 0, 1, 0, 0, 0, 0],
        ),
        # "the Nth": every=N, times=1; other verbs are not counted.
        (
            Fault("SIZE", DropControl(), every=2, times=1),
            [("SIZE", "a"), ("STOR", "a"), ("SIZE", "b"), ("SIZE", "c"), ("SIZE", "d")],
            [0, 0, 1, 0, 0],
        ),
        # A name matches the argument's base name, and --atomic's temporary name for it.
        (
            Fault("STOR", Answer("553 no"), name="big.bin"),
            [
                ("STOR", "/d/big.bin"),
                ("STOR", "/d/other.bin"),
                ("STOR", "/d/.htasyncmirror-tmp-1a2b-big.bin"),
                ("STOR", "/d/notbig.bin"),
            ],
            [1, 0, 1, 0],
        ),
        # Several verbs in `on`; verbs are compared without case.
        (
            Fault(("mkd", "DELE"), Answer("450 busy")),
            [("MKD", "d"), ("DELE", "f"), ("RMD", "d")],
            [1, 1, 0],
        ),
    ],
    ids=["every", "times", "nth", "name", "verbs"],
)
def test_when_a_fault_fires(
    fault: Fault, events: list[tuple[str, str]], expected: list[int]
) -> None:
    book = FaultBook()
    book.add([fault])
    assert fired_on(book, events, COMMAND) == expected
    assert fault.fired == sum(expected)
    assert fault.done == 0  # the proxy credits what took effect, not the book


def test_one_made_up_reply_per_command_the_first_due_wins() -> None:
    first = Fault("STOR", Answer("450 busy"), every=2)
    second = Fault("STOR", Replace("426 aborted"), every=3)
    book = FaultBook()
    book.add([first, second])
    chosen = [book.due("STOR", "/f", COMMAND) for _ in range(6)]
    assert [[f.do for f in c] for c in chosen] == [
        [],
        [first.do],
        [second.do],
        [first.do],
        [],
        [first.do],  # both due on the 6th: the first in the book; the second waits
    ]
    assert (first.seen, first.fired, second.seen, second.fired) == (6, 3, 6, 1)


def test_every_due_effect_fires_beside_a_reply() -> None:
    silence = Fault("STOR", Silence(seconds=1.5), times=1)
    answer = Fault("STOR", Answer("450 busy"), times=1)
    book = FaultBook()
    book.add([silence, answer])
    assert book.due("STOR", "/f", COMMAND) == [silence, answer]
    assert book.due("STOR", "/f", COMMAND) == []


def test_faults_are_due_only_for_their_own_kind_of_event() -> None:
    cut = Fault("STOR", Cut(after=100))
    truncate = Fault("STOR", Truncate(after=100))
    inject = Fault(LISTINGS, Inject(["type=file; x"]))
    book = FaultBook()
    book.add([cut, truncate, inject])
    # A STOR command is not a data connection: no data fault counts it.
    assert book.due("STOR", "/f", COMMAND) == []
    assert cut.seen == 0
    # A data connection gets at most one break (the first), and its listing lines.
    assert book.due("STOR", "/f", ("data", "listing")) == [cut]
    assert book.due("MLSD", "/d", ("data", "listing")) == [inject]
    assert truncate.fired == 0


def test_refuse_fires_only_beyond_the_limit() -> None:
    refuse = Fault(CONNECT, Refuse(beyond=3))
    book = FaultBook()
    book.add([refuse])
    assert [len(book.due(CONNECT, "", ("refuse",), open_controls=n)) for n in (0, 2, 3, 5)] == [
        0,
        0,
        1,
        1,
    ]
    assert isinstance(refuse.do, Refuse)
    assert refuse.do.reply == "421 Too many connections (3) from this IP"


@pytest.mark.parametrize(
    ("on", "action"),
    [
        ("USER", Cut(after=1)),  # a data action needs a transfer command
        ("STOR", Inject(["x"])),  # lines go into listings only
        (CONNECT, Answer("220 hi")),  # a connection has no command to answer
        ("STOR", Refuse(beyond=1)),  # refusing happens at connect
        ((CONNECT, "STOR"), Silence()),  # CONNECT is an event, not a verb
    ],
)
def test_faults_that_cannot_happen_are_refused_at_once(
    on: str | tuple[str, ...], action: Action
) -> None:
    with pytest.raises(ValueError, match="Fault"):
        Fault(on, action)
