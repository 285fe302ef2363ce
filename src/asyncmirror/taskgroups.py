"""Task groups that fail with one error and never drop a stop.

Every task race of asyncmirror runs in one (the workers, the logins, a
transfer command beside its data connection, a pipeline's writer beside its
reader, the fan-outs of MLST, seed copies and digests): no task outlives the
block that made it.  The few tasks that are not children here are owned by a
block of their own (design.md, Concurrency).
A group fails with an exception group; :func:`first_error` turns it into the
one ``errors`` exception the code above expects, so ``except
errors.RetryableError`` keeps working around a group.

Two traps of Python 3.11's :class:`asyncio.TaskGroup`, both closed here:

- a child that fails while ``__aexit__`` waits for the others cancels the
  parent task and never takes that cancel back (``uncancel()`` ran before the
  wait; CPython gh-116720, fixed after 3.11).  The parent's count of pending
  cancels stays raised, so a later ``asyncio.timeout`` (``--deadline``) no
  longer turns its expiry into ``TimeoutError``, and a worker checking
  ``cancelling()`` would stop.
  :func:`task_group` therefore waits for the children in the block's body,
  where the group's cancel is taken back;
- a group whose children fail loses a cancel of its parent that lands while
  it waits for them (it raises their errors instead): a Ctrl-C or a
  ``--deadline`` would become, say, a refused STOR.  :func:`task_group`
  notices that the parent's count of pending cancels rose while it ran --
  against the count at entry, so a clean-up that runs while a stop is already
  under way is not taken for a new stop -- and raises the cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

from . import errors

T = TypeVar("T")


class Children:
    """The tasks of one :func:`task_group`: started here, awaited by the block."""

    def __init__(self, group: asyncio.TaskGroup) -> None:
        self._group = group
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = self._group.create_task(coro)
        self._tasks.append(task)
        return task

    async def join(self) -> None:
        # A loop: a child may start more children (the workers' regrow does).
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.wait(pending)


@contextlib.asynccontextmanager
async def task_group(
    prefer: tuple[type[BaseException], ...] = (errors.FatalError,),
) -> AsyncIterator[Children]:
    """A task group that owns the children started in the block and ends after
    them; its failure is one error (:func:`first_error`), a stop stays a stop."""
    me = asyncio.current_task()
    assert me is not None, "task_group() runs inside a task"
    stops = me.cancelling()
    try:
        async with asyncio.TaskGroup() as group:
            children = Children(group)
            yield children
            await children.join()  # in the body: see the module's first trap
    except BaseExceptionGroup as failed:
        if me.cancelling() > stops:
            # Our task was cancelled while the children failed: the stop wins.
            raise asyncio.CancelledError from None
        raise first_error(failed, prefer) from None


def first_error(
    group: BaseExceptionGroup[BaseException],
    prefer: tuple[type[BaseException], ...] = (errors.FatalError,),
) -> BaseException:
    """Unwrap a task group's failure into the one error its caller raises: the first
    of the ``prefer`` kinds (a fatal error), else the first that is not a
    cancellation."""
    flat: list[BaseException] = []

    def walk(g: BaseException) -> None:
        if isinstance(g, BaseExceptionGroup):
            for e in g.exceptions:
                walk(e)
        else:
            flat.append(g)

    walk(group)
    for e in flat:
        if isinstance(e, prefer):
            return e
    for e in flat:
        if not isinstance(e, asyncio.CancelledError):
            return e
    return flat[0] if flat else group
