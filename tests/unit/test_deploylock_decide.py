"""The deploy lock's record and decision: pure, table-driven."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from asyncmirror.deploylock import Holder, Verdict, decide, exited_here

NOW = 1_800_000_000.0
HOUR = 3600.0


def holder(age: float) -> Holder:
    return Holder("ci-runner-7", 4242, NOW - age, "0.1.0", "ab12cd34")


def test_a_record_survives_the_round_trip() -> None:
    h = holder(60)
    assert Holder.decode(h.encode()) == h


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"[]",
        b'{"host": "x"}',
        b'{"host":1,"pid":"x","started":0,"version":1,"run_id":2}',
        b"\xff\xfe",
        b"null",
    ],
)
def test_a_torn_or_foreign_record_reads_as_none(data: bytes) -> None:
    assert Holder.decode(data) is None


@pytest.mark.parametrize(
    ("age", "stale_after", "break_lock", "verdict"),
    [
        (60, 3 * HOUR, False, Verdict.WAIT),  # a live run
        (3 * HOUR - 1, 3 * HOUR, False, Verdict.WAIT),
        (3 * HOUR + 1, 3 * HOUR, False, Verdict.TAKE_OVER),  # its run died
        (60, 3 * HOUR, True, Verdict.TAKE_OVER),  # --break-lock
        (-120, 3 * HOUR, False, Verdict.WAIT),  # the holder's clock is ahead: not stale
    ],
)
def test_decide(age: float, stale_after: float, break_lock: bool, verdict: Verdict) -> None:
    assert decide(holder(age), now=NOW, stale_after=stale_after, break_lock=break_lock) is verdict


def test_a_fresh_lock_whose_run_exited_on_this_machine_is_taken_over() -> None:
    assert decide(holder(60), now=NOW, stale_after=HOUR, break_lock=False, gone=True) is (
        Verdict.TAKE_OVER
    )


def test_exited_here_knows_a_dead_local_run_from_a_live_or_remote_one() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no process now
    here = socket.gethostname()
    assert exited_here(Holder(here, child.pid, NOW, "0.1.0", "x")) is True
    assert exited_here(Holder(here, os.getppid(), NOW, "0.1.0", "x")) is False  # alive
    assert exited_here(Holder(here, os.getpid(), NOW, "0.1.0", "x")) is False  # this run
    assert exited_here(Holder("elsewhere", child.pid, NOW, "0.1.0", "x")) is False
    assert exited_here(None) is False


def test_a_lock_without_a_record_is_taken_over() -> None:
    assert decide(None, now=NOW, stale_after=3 * HOUR, break_lock=False) is Verdict.TAKE_OVER


@pytest.mark.parametrize(
    ("age", "shown"),
    [(5, "5 s ago"), (600, "10 min ago"), (5 * HOUR, "5.0 h ago"), (-10, "in the future")],
)
def test_describe_says_who_and_since_when(age: float, shown: str) -> None:
    line = holder(age).describe(NOW)
    assert "host ci-runner-7 (pid 4242)" in line
    assert shown in line
    assert "asyncmirror 0.1.0" in line


def test_a_record_survives_as_an_entry_name() -> None:
    h = holder(60)
    name = h.name()
    assert name.startswith(".ht"), "Apache must refuse to serve it"
    assert "/" not in name
    assert len(name) < 255
    assert Holder.from_name(name) == h


@pytest.mark.parametrize(
    "name", ["", ".htholder.", ".htholder.!!!", ".htholder.e30", "holder.e30", "index.html"]
)
def test_a_foreign_entry_name_is_no_holder(name: str) -> None:
    assert Holder.from_name(name) is None
