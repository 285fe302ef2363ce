"""The control channel's reply bookkeeping, driven with Reply values only (no sockets)."""

from __future__ import annotations

import pytest

from asyncmirror import errors
from asyncmirror.pipeline import (
    RECORD_LIMIT,
    Answer,
    Event,
    Kind,
    Pipeline,
)
from asyncmirror.replies import Reply


def r(code: str, text: str = "") -> Reply:
    return Reply(code, (text,))


def whose(event: Event) -> tuple[str, Kind, str, str]:
    """(event type, kind, command, reply code): what a reader of the event acts on."""
    return (type(event).__name__, event.owed.kind, event.owed.command, event.reply.code)


def feed(p: Pipeline, *replies: Reply) -> list[tuple[str, Kind, str, str]]:
    return [whose(p.receive(reply)) for reply in replies]


def uploading(p: Pipeline, path: str = "/a") -> None:
    """An upload under way: its EPSV answered, its STOR sent and answered with 150."""
    p.send_passive("EPSV")
    p.receive(r("229", "(|||5000|)"))
    p.send_transfer(f"STOR {path}")
    p.receive(r("150", "Opening"))


# --- plain commands -------------------------------------------------------------------


def test_pipelined_login_and_set_up_are_answered_in_order_with_the_password_masked() -> None:
    p = Pipeline()
    write = p.send("USER u", "PASS secret", "PBSZ 0", "PROT P", "TYPE I", "PWD")
    assert write.records == (b"USER u\r\nPASS secret\r\nPBSZ 0\r\nPROT P\r\nTYPE I\r\nPWD\r\n",)
    assert "secret" not in repr(p.owed)
    events = feed(p, r("331"), r("230"), r("200"), r("200"), r("200"), r("257", '"/" is cwd'))
    assert [(e[0], e[2], e[3]) for e in events] == [
        ("Answer", "USER u", "331"),
        ("Answer", "PASS ****", "230"),
        ("Answer", "PBSZ 0", "200"),
        ("Answer", "PROT P", "200"),
        ("Answer", "TYPE I", "200"),
        ("Answer", "PWD", "257"),
    ]
    assert p.owed == ()
    assert p.in_step


def test_a_preliminary_reply_keeps_the_command_owed() -> None:
    p = Pipeline()
    p.send("RETR x", "NOOP")
    assert feed(p, r("150"), r("226"), r("200")) == [
        ("Progress", Kind.COMMAND, "RETR x", "150"),
        ("Answer", Kind.COMMAND, "RETR x", "226"),
        ("Answer", Kind.COMMAND, "NOOP", "200"),
    ]


def test_a_reply_to_nothing_puts_the_pipeline_out_of_step() -> None:
    p = Pipeline()
    event = p.receive(r("421", "Idle timeout"))
    assert isinstance(event, Answer)
    assert event.reply.code == "421"
    assert not p.in_step


def test_a_command_with_cr_or_lf_is_refused_and_nothing_is_owed() -> None:
    p = Pipeline()
    with pytest.raises(errors.UsageError):
        p.send("MKD a", "DELE b\r\nDELE c")
    assert p.owed == ()


def test_long_batches_are_cut_into_records_of_at_most_the_limit() -> None:
    p = Pipeline()
    lines = [f"MLST /{'n' * 80}-{i}" for i in range(100)]
    write = p.send(*lines)
    assert all(len(rec) <= RECORD_LIMIT for rec in write.records)
    assert b"".join(write.records) == "".join(f"{line}\r\n" for line in lines).encode()
    assert len(p.owed) == 100


# --- passive commands -------------------------------------------------------------------


@pytest.mark.parametrize("sent", ["EPSV", "PASV"])
def test_the_passive_answer_says_which_command_was_sent(sent: str) -> None:
    p = Pipeline()
    write = p.send_passive(sent, before=["SIZE /a"])
    assert write.lines == ("SIZE /a", sent)
    assert feed(p, r("213", "5"), r("229")) == [
        ("Answer", Kind.COMMAND, "SIZE /a", "213"),
        ("Answer", Kind.PASSIVE, sent, "229"),
    ]


# --- the passive command sent ahead of a transfer's 226 ----------------------------------

#: name: (replies after the STOR's 150 and the ahead EPSV, the events they give,
#: still in step, a reply owed or held for read_passive afterwards)
AHEAD_CASES: dict[str, tuple[list[Reply], list[tuple[str, Kind, str, str]], bool, bool]] = {
    "answered after the 226": (
        [r("226"), r("229", "(|||5001|)")],
        [("Answer", Kind.TRANSFER, "STOR /a", "226"), ("Answer", Kind.AHEAD, "EPSV", "229")],
        True,
        False,
    ),
    "answered before the 226": (
        [r("229", "(|||5001|)"), r("226")],
        [("AheadAnswered", Kind.AHEAD, "EPSV", "229"), ("Answer", Kind.TRANSFER, "STOR /a", "226")],
        True,
        True,
    ),
    "answered with 227 before the 226": (
        [r("227", "(127,0,0,1,19,137)"), r("226")],
        [("AheadAnswered", Kind.AHEAD, "EPSV", "227"), ("Answer", Kind.TRANSFER, "STOR /a", "226")],
        True,
        True,
    ),
    "rejected with 450 in progress": (
        [r("450", "EPSV: data transfer in progress"), r("226")],
        [("AheadRejected", Kind.AHEAD, "EPSV", "450"), ("Answer", Kind.TRANSFER, "STOR /a", "226")],
        True,
        False,
    ),
    "transfer failed, the ahead unanswered: out of step": (
        [r("451", "Transfer aborted")],
        [("Answer", Kind.TRANSFER, "STOR /a", "451")],
        False,
        True,
    ),
    "transfer failed after the ahead was answered": (
        [r("229", "(|||5001|)"), r("452", "No space left on device")],
        [("AheadAnswered", Kind.AHEAD, "EPSV", "229"), ("Answer", Kind.TRANSFER, "STOR /a", "452")],
        True,
        True,
    ),
    "transfer failed after the ahead was rejected": (
        [r("450", "EPSV: data transfer in progress"), r("426", "Transfer aborted")],
        [("AheadRejected", Kind.AHEAD, "EPSV", "450"), ("Answer", Kind.TRANSFER, "STOR /a", "426")],
        True,
        False,
    ),
}


@pytest.mark.parametrize("case", AHEAD_CASES)
def test_passive_ahead_of_the_226(case: str) -> None:
    replies, events, in_step, pending = AHEAD_CASES[case]
    p = Pipeline()
    uploading(p)
    assert p.send_ahead("EPSV").records == (b"EPSV\r\n",)
    assert feed(p, *replies) == events
    assert p.in_step is in_step
    assert p.ahead_pending is pending
    held = p.take_held_passive()
    if events[0][0] == "AheadAnswered":
        assert held is not None
        assert held.reply == replies[0]
        assert not p.ahead_pending
        assert p.take_held_passive() is None
    else:
        assert held is None


def test_an_unanswered_ahead_is_owed_after_the_226_and_pending_until_read() -> None:
    p = Pipeline()
    uploading(p)
    p.send_ahead("PASV")
    assert feed(p, r("226")) == [("Answer", Kind.TRANSFER, "STOR /a", "226")]
    assert p.ahead_pending
    assert [o.kind for o in p.owed] == [Kind.AHEAD]
    # After the 226 a 450 is the passive command's own answer, not a rejection of it.
    event = p.receive(r("425", "Address already in use"))
    assert isinstance(event, Answer)
    assert event.owed.command == "PASV"
    assert not p.ahead_pending
    assert p.in_step


def test_the_ahead_goes_only_behind_a_transfer_and_one_at_a_time() -> None:
    p = Pipeline()
    with pytest.raises(ValueError, match="only of a transfer"):
        p.send_ahead("EPSV")
    uploading(p)
    p.send_ahead("EPSV")
    with pytest.raises(ValueError, match="one passive command ahead"):
        p.send_ahead("EPSV")


def test_replies_look_like_a_rejection_only_while_the_transfer_is_owed() -> None:
    p = Pipeline()
    p.send("MKD /x")
    event = p.receive(r("450", "data transfer in progress"))
    assert isinstance(event, Answer)
    assert event.owed.command == "MKD /x"
    assert p.in_step


# --- checks riding with the next STOR ------------------------------------------------------


def test_checks_ride_with_the_next_stor_and_their_replies_go_to_their_owner() -> None:
    p = Pipeline()
    uploading(p, "/a")
    p.send_ahead("EPSV")
    assert feed(p, r("226"), r("229", "(|||5001|)"))[1][0] == "Answer"
    job_a = object()
    p.ride(job_a, ["MFMT 20200101000000 /a", "SIZE /a"])
    write = p.send_transfer("STOR /b")
    assert write.records == (b"MFMT 20200101000000 /a\r\nSIZE /a\r\nSTOR /b\r\n",)
    assert feed(p, r("213", "modify=..."), r("213", "5"), r("150")) == [
        ("Answer", Kind.RIDER, "MFMT 20200101000000 /a", "213"),
        ("Answer", Kind.RIDER, "SIZE /a", "213"),
        ("Progress", Kind.TRANSFER, "STOR /b", "150"),
    ]
    assert p.take_riders(job_a) == ([], [r("213", "modify=..."), r("213", "5")])
    assert p.take_riders(job_a) == ([], [])  # taken once


def test_checks_of_a_handler_that_failed_before_its_stor_are_handed_back_unsent() -> None:
    p = Pipeline()
    job_a = object()
    p.ride(job_a, ["RNFR /.tmp-a", "RNTO /a", "SIZE /a"])
    # The handler failed before its STOR (the local file could not be read).
    assert p.take_riders(job_a) == (["RNFR /.tmp-a", "RNTO /a", "SIZE /a"], [])
    # The next transfer carries nothing of job_a.
    assert p.send_transfer("STOR /b").lines == ("STOR /b",)


def test_riders_of_two_owners_go_in_order_and_each_gets_its_own() -> None:
    p = Pipeline()
    checks, listing = object(), object()
    p.ride(checks, ["SIZE /a"])
    p.ride(listing, ["CWD /dir"])
    assert p.send_transfer("LIST -a").lines == ("SIZE /a", "CWD /dir", "LIST -a")
    feed(p, r("213", "5"), r("550", "No such directory"), r("150"), r("226"))
    assert p.take_riders(listing) == ([], [r("550", "No such directory")])
    assert p.take_riders(checks) == ([], [r("213", "5")])


def test_a_transfer_refused_at_once_still_delivers_the_riders_replies() -> None:
    p = Pipeline()
    job_a = object()
    p.ride(job_a, ["SIZE /a"])
    p.send_transfer("STOR /forbidden")
    assert feed(p, r("213", "5"), r("553", "Permission denied")) == [
        ("Answer", Kind.RIDER, "SIZE /a", "213"),
        ("Answer", Kind.TRANSFER, "STOR /forbidden", "553"),
    ]
    assert p.take_riders(job_a) == ([], [r("213", "5")])
    assert p.in_step
    assert p.owed == ()


def test_a_bad_rider_line_refuses_the_whole_write_and_keeps_the_riders() -> None:
    p = Pipeline()
    job_a = object()
    p.ride(job_a, ["SIZE /a\nDELE /b"])
    with pytest.raises(errors.UsageError):
        p.send_transfer("STOR /b")
    assert p.owed == ()
    assert p.take_riders(job_a) == (["SIZE /a\nDELE /b"], [])
