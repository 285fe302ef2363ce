"""scheduler.JobQueue: retry timers are owned by the queue; no clock, no server."""

from __future__ import annotations

from asyncmirror.scheduler import JobQueue


async def test_a_retry_comes_back_when_its_timer_is_due() -> None:
    queue: JobQueue[str] = JobQueue(["a"])
    assert queue.get_nowait() == "a"
    queue.put_later("a", 0)  # a retry: still outstanding, not yet queued
    assert not queue.has_items()
    assert await queue.get() == "a"


async def test_a_cancelled_retry_timer_never_fires() -> None:
    queue: JobQueue[str] = JobQueue(["cancelled", "due"])
    queue.get_nowait()
    queue.get_nowait()
    queue.put_later("cancelled", 0)
    queue.cancel_timers()  # what Workers.run does when it ends, however it ends
    queue.put_later("due", 0)
    # Both timers were due at once: had the first not been cancelled, it would
    # have run in the same turn of the loop as the second, before get() returns.
    assert await queue.get() == "due"
    assert not queue.has_items()
    assert queue.get_nowait() is None
