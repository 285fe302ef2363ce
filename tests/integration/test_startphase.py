"""A stop at the start of a run, while SRC is still being scanned in its thread.

The scan cannot be cancelled: it is told to stop, and the run waits for it to
notice (a few entries) before it returns -- whether the stop lands during the
logins or once they are done; a refused login and ``--deadline`` are the same
case.  No test here times the run: each checks that the scan's thread ended part
way before mirror() returned (the whole scan would take ~20 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

import asyncmirror
from asyncmirror import Events, Report, mirror
from tests.servers.featsilent import FeatSilentProxy
from tests.servers.proftpd import ProftpdServer, RemoteDir


class ScanWatch(Events):
    def __init__(self) -> None:
        self.stopped_at: list[int] = []

    def scan_stopped(self, kept: int) -> None:
        self.stopped_at.append(kept)


#: An exclude regex that backtracks for ~10 ms on each of slow_tree()'s names.
SLOW_TO_FILTER = ["(a|aa)+b"]


def slow_tree(root: Path) -> int:
    """2,000 names that ``SLOW_TO_FILTER`` takes ~10 ms each to reject: a scan of
    some 20 s, which no stop here waits for.  (A warm tree of 20,000 files scans
    about as fast as a login is refused here, and takes seconds to create.)"""
    total = 0
    for d in range(20):
        (root / f"d{d:03}").mkdir(parents=True)
        for f in range(100):
            (root / f"d{d:03}" / f"{'a' * 22}{f:03}").touch()
            total += 1
    return total


def scan_slowly(
    tree: Path,
    dst: str,
    proftpd: ProftpdServer,
    featsilent: FeatSilentProxy,
    watch: ScanWatch,
    **kwargs: Any,
) -> Coroutine[Any, Any, Report]:
    """mirror() of ``tree`` (:func:`slow_tree`) through the proxy, the filter that makes
    its scan slow, ``watch`` told when the scan stops; ``kwargs`` on top."""
    given: dict[str, Any] = {
        "host": featsilent.host,
        "port": featsilent.port,
        "user": proftpd.user,
        "password": proftpd.password,
        "ca_file": str(proftpd.ca_file),
        "exclude_regex": SLOW_TO_FILTER,
        "events": watch,
        "timeout": 20,
    }
    return mirror(str(tree), dst, **{**given, **kwargs})


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
        scan_slowly(
            tmp_path / "large", "never-created", proftpd, featsilent, watch, trace=trace, jobs=1
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


async def test_a_refused_login_stops_the_scan_of_a_large_tree(
    tmp_path: Path, proftpd: ProftpdServer, featsilent: FeatSilentProxy
) -> None:
    """The scan runs in a thread while the sessions log in; a wrong password used to
    wait for the whole tree before the error came out."""
    total = slow_tree(tmp_path / "large")
    watch = ScanWatch()
    with pytest.raises(asyncmirror.AuthError):
        await scan_slowly(
            tmp_path / "large",
            "never-created",
            proftpd,
            featsilent,
            watch,
            password="Wr0ng-scan-stop",
        )
    # Told before mirror() raised: the scan's thread had ended by then, part way.
    assert len(watch.stopped_at) == 1, "the scan was not stopped"
    assert watch.stopped_at[0] < total


async def test_the_deadline_during_the_scan_stops_it(
    tmp_path: Path, proftpd: ProftpdServer, featsilent: FeatSilentProxy, remote_dir: RemoteDir
) -> None:
    """``--deadline`` passing while the scan runs ends the run with its own error, the
    scan's thread stopped part way rather than waited for."""
    total = slow_tree(tmp_path / "large")
    watch = ScanWatch()
    with pytest.raises(asyncmirror.errors.TimeoutExpired, match=r"deadline of 1\.5 s"):
        await scan_slowly(
            tmp_path / "large", remote_dir.name, proftpd, featsilent, watch, deadline=1.5
        )
    assert len(watch.stopped_at) == 1, "the scan was not stopped"
    assert watch.stopped_at[0] < total
    assert not remote_dir.path.exists()
