"""Running one tool as a child process and measuring it: wall time, CPU, peak RSS."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ChildResult:
    returncode: int
    wall: float
    rusage: resource.struct_rusage | None
    maxrss_kb: int  # the tool's peak RSS in KiB (from GNU time), -1 if unknown
    timed_out: bool
    log: Path


_current_child: list[int] = []  # pid of the child being measured, for the signal handler
GNU_TIME = "/usr/bin/time"


def run_measured(
    argv: Sequence[str], *, env: dict[str, str], log: Path, timeout: float
) -> ChildResult:
    """Run ``argv`` to completion (bounded by ``timeout``) and measure it.

    CPU time comes from ``os.wait4``: user+sys of the child and what it reaped.

    Peak RSS cannot come from that same ``wait4``: Linux records, at ``execve``, the
    high-water RSS of the memory the process had *before* the exec -- that of this
    script, which forked it -- so every child would show this script's RSS as a floor
    (measured: ``/bin/true`` started from a 300 MB Python shows 321 MB).  So the tool is
    started by GNU time (a ~1 MB C program), whose own ``wait4`` on the tool gives the
    tool's ``ru_maxrss`` (``%M``) with a floor of about 1 MB.
    """
    timed_out = threading.Event()
    rss_file = log.with_suffix(".rss")
    wrapped = list(argv)
    if os.access(GNU_TIME, os.X_OK):
        wrapped = [GNU_TIME, "-q", "-f", "%M", "-o", str(rss_file), *wrapped]
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            wrapped,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: a timeout kills all of it
        )
        _current_child.append(proc.pid)

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
        except BaseException:
            kill()
            with contextlib.suppress(ChildProcessError):
                os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise
        finally:
            timer.cancel()
            _current_child.remove(proc.pid)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    maxrss_kb = -1  # unknown
    with contextlib.suppress(OSError, ValueError, IndexError):
        maxrss_kb = int(rss_file.read_text().split()[-1])
    return ChildResult(proc.returncode, wall, rusage, maxrss_kb, timed_out.is_set(), log)


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def kill_measured_children() -> None:
    """Kill the process group of the child being measured (from a signal handler)."""
    for pid in list(_current_child):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
