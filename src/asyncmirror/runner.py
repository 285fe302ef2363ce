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
    """Run ``coro`` to completion on a new loop; uvloop's faster I/O shows with many small files."""
    import asyncio

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where supported
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)
