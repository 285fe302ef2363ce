"""A stop at the start of a run, while SRC is still being scanned in its thread.

The scan cannot be cancelled: it is told to stop, and the run waits for it to
notice (a few entries) before it returns -- whether the stop lands during the
logins or once they are done.  A refused login is the same case, see
``test_mirror_e2e.test_a_refused_login_stops_the_scan_of_a_large_tree``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from asyncmirror import Events, mirror
from tests.servers.featsilent import FeatSilentProxy
from tests.servers.proftpd import ProftpdServer


class ScanWatch(Events):
    def __init__(self) -> None:
        self.stopped_at: list[int] = []

    def scan_stopped(self, kept: int) -> None:
        self.stopped_at.append(kept)


def slow_tree(root: Path) -> int:
    """2,000 names that the exclude regex ``(a|aa)+b`` takes ~10 ms each to
    reject: a scan of some 20 s, which no stop here waits for."""
    total = 0
    for d in range(20):
        (root / f"d{d:03}").mkdir(parents=True)
        for f in range(100):
            (root / f"d{d:03}" / f"{'a' * 22}{f:03}").touch()
            total += 1
    return total


@pytest.mark.parametrize(
    "stop_at",
    [
        "USER",  # during the login
        "NOOP",  # logged in: kept alive while the scan goes on
    ],
)
async def test_a_cancel_while_scanning_a_large_tree_stops_the_scan_and_returns(
    tmp_path: Path, proftpd: ProftpdServer, featsilent: FeatSilentProxy, stop_at: str
) -> None:
    total = slow_tree(tmp_path / "large")
    watch = ScanWatch()
    runs: list[asyncio.Task[object]] = []

    def trace(direction: str, line: str) -> None:
        if direction == "->" and line.startswith(stop_at) and runs:
            runs.pop().cancel()

    run = asyncio.create_task(
        mirror(
            str(tmp_path / "large"),
            "never-created",
            host=featsilent.host,
            port=featsilent.port,
            user=proftpd.user,
            password=proftpd.password,
            ca_file=str(proftpd.ca_file),
            exclude_regex=["(a|aa)+b"],
            events=watch,
            trace=trace,
            jobs=1,
            timeout=20,
        )
    )
    runs.append(run)
    done, _ = await asyncio.wait([run], timeout=15)
    assert done, f"mirror() had not returned 15 s after {stop_at}; the scan takes ~20 s"
    assert not runs, f"the run never sent {stop_at}"
    assert run.cancelled(), f"mirror() ended with {run.exception()!r}, not CancelledError"
    # Told before mirror() returned: the scan's thread had ended by then, part way.
    assert len(watch.stopped_at) == 1, "the scan was not stopped, or not waited for"
    assert watch.stopped_at[0] < total
