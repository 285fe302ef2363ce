"""Pool.start: the logins and the wait for the scan's count, owned by one task group.

The logins are scripted (no server): what is checked is who waits for whom.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from asyncmirror import errors
from asyncmirror.login import ServerConfig
from asyncmirror.pool import Pool
from asyncmirror.session import Session

Login = Callable[[], Awaitable[Session]]


class ScriptedPool(Pool):
    """A pool whose logins are the given coroutines, in order."""

    def __init__(self, size: int, logins: list[Login]) -> None:
        super().__init__(ServerConfig(host="127.0.0.1"), size)
        self._script = iter(logins)

    async def _open_once(self) -> Session:
        return await next(self._script)()


async def wrong_password() -> Session:
    raise errors.AuthError("login refused: 530 Login incorrect")


def hanging(cancelled: list[str], name: str, started: asyncio.Event | None = None) -> Login:
    async def login() -> Session:
        if started is not None:
            started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(name)
            raise
        raise AssertionError("unreachable")

    return login


async def test_a_wrong_password_returns_without_waiting_for_the_scan() -> None:
    cancelled: list[str] = []

    async def scan_count() -> int:  # a large tree: never done during this test
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append("scan count")
            raise
        return 1

    pool = ScriptedPool(4, [wrong_password])
    with pytest.raises(errors.AuthError):
        await pool.start(scan_count())
    assert cancelled == ["scan count"]
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_wrong_password_ends_the_other_logins_at_once() -> None:
    cancelled: list[str] = []
    pool = ScriptedPool(
        3, [hanging(cancelled, "first"), wrong_password, hanging(cancelled, "third")]
    )
    with pytest.raises(errors.AuthError):
        await pool.start()
    assert sorted(cancelled) == ["first", "third"]
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_failed_scan_ends_the_logins() -> None:
    cancelled: list[str] = []
    logging_in = asyncio.Event()

    async def scan_count() -> int:
        await logging_in.wait()
        raise errors.LocalFileError("cannot read SRC: Permission denied")

    pool = ScriptedPool(2, [hanging(cancelled, "first", logging_in)])
    with pytest.raises(errors.LocalFileError):
        await pool.start(scan_count())
    assert cancelled == ["first"]
    assert asyncio.all_tasks() == {asyncio.current_task()}
