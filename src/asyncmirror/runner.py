"""The event loop a command runs on: uvloop where installed, else asyncio's.

Shared by the command (cli.py) and the demo (demo.py), so neither imports the
other.  asyncio and uvloop are imported on the first call, not with this
module: the command starts its first connection before the heavy imports.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a new loop; uvloop's faster I/O shows with many small files.

    SIGTERM and SIGHUP stop it as Ctrl-C does (:class:`StoppedBySignal` once it
    has cleaned up).
    """
    import asyncio

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where supported
        return asyncio.run(_stoppable(coro))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_stoppable(coro))


class StoppedBySignal(Exception):
    """SIGTERM or SIGHUP stopped the run (after its clean-up, as Ctrl-C does)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        import signal

        return signal.Signals(self.signum).name


async def _stoppable(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro``; SIGTERM (docker stop, a CI cancel) and SIGHUP (a closed terminal)
    cancel it as Ctrl-C does, so a stop removes what it cut instead of killing the
    process with half-written files on the server.  A second signal skips that clean-up.
    """
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[int] = []

    def stop(signum: int) -> None:
        received.append(signum)
        if task is not None:
            task.cancel()

    handled = []
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            loop.add_signal_handler(sig, stop, sig)
            handled.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Windows
            pass
    try:
        return await coro
    except asyncio.CancelledError:
        if received:
            raise StoppedBySignal(received[0]) from None
        raise
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
