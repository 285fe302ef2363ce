"""taskgroups.task_group: children are owned, a failure is one error, a stop stays a stop.

No clock: every step waits for an event the test controls.
"""

from __future__ import annotations

import asyncio

import pytest

from asyncmirror import errors
from asyncmirror.taskgroups import first_error, task_group


async def fail_after(started: asyncio.Event, exc: BaseException) -> None:
    await started.wait()
    raise exc


async def wait_forever(started: asyncio.Event, cancelled: list[str]) -> None:
    started.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        cancelled.append("sibling")
        raise


async def test_a_failed_child_cancels_its_sibling_and_surfaces_alone() -> None:
    started = asyncio.Event()
    cancelled: list[str] = []
    refused = errors.PermanentReplyError("STOR a", "553", "not allowed")

    async def both() -> None:
        async with task_group() as tg:
            tg.start(wait_forever(started, cancelled))
            tg.start(fail_after(started, refused))

    with pytest.raises(errors.PermanentReplyError) as caught:
        await both()
    assert caught.value is refused  # the error itself, not an exception group
    assert cancelled == ["sibling"]
    assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing outlives the block


async def test_a_failed_child_leaves_no_cancel_pending_on_its_parent() -> None:
    # Python 3.11's TaskGroup, left to wait in __aexit__, cancels its parent when
    # a child fails and never takes that back: a later asyncio.timeout would then
    # not turn its expiry into TimeoutError (--deadline).
    me = asyncio.current_task()
    assert me is not None
    with pytest.raises(errors.NetworkError):
        async with task_group() as tg:
            tg.start(cut())  # fails on its first step: after the block's body has ended
    assert me.cancelling() == 0


async def cut() -> None:
    raise errors.NetworkError("cut")


async def test_a_fatal_error_is_preferred_to_a_retryable_one() -> None:
    group = BaseExceptionGroup(
        "g", [errors.NetworkError("cut"), errors.AuthError("530 Login incorrect")]
    )
    assert isinstance(first_error(group), errors.AuthError)


async def test_a_stop_during_failing_children_stays_a_stop() -> None:
    # A child that answers its cancel with an error (as a read cut by the stop
    # may) would, in a plain 3.11 TaskGroup, replace the cancel with that error.
    started = asyncio.Event()

    async def turns_cancel_into_error() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise errors.NetworkError("connection lost") from None

    async def owner() -> None:
        async with task_group() as tg:
            tg.start(turns_cancel_into_error())

    task = asyncio.create_task(owner())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_a_group_run_during_a_stop_reports_its_own_error() -> None:
    # Clean-up after a stop runs with the stop's cancel still counted; its
    # failures are its own errors, not a second stop.
    me = asyncio.current_task()
    assert me is not None
    me.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.Event().wait()
    assert me.cancelling() == 1
    try:
        with pytest.raises(errors.NetworkError):
            async with task_group() as tg:
                tg.start(cut())
    finally:
        me.uncancel()
