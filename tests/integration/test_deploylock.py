"""The deploy lock against a real ProFTPD: MKD is the atomic step, the record says who.

These drive :class:`DeployLock` over real sessions; the runs' behaviour (two
``asyncmirror`` commands started together) is tested with the command itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from asyncmirror import errors
from asyncmirror.deploylock import HOLDER_FILE, LOCK_DIR, DeployLock, Holder
from tests.integration.sessions import open_session
from tests.servers.proftpd import ProftpdServer, RemoteDir


@pytest.fixture
def dst(proftpd: ProftpdServer, remote_dir: RemoteDir) -> str:
    """An existing DST owned by the FTP user, as the server names it."""
    remote_dir.path.mkdir()
    st = proftpd.home.stat()
    os.chown(remote_dir.path, st.st_uid, st.st_gid)
    return f"/{remote_dir.name}" if proftpd.chroot else str(remote_dir.path)


def holder_of(path: Path) -> str:
    """The run id in the lock's record on the server's disk."""
    record = Holder.decode((path / LOCK_DIR / HOLDER_FILE).read_bytes())
    assert record is not None, "the lock's record is not readable"
    return record.run_id


def lock(
    dst: str, run_id: str, notes: list[str] | None = None, **kwargs: float | bool
) -> DeployLock:
    sink = notes.append if notes is not None else (lambda _m: None)
    return DeployLock(dst, run_id=run_id, version="0.1.0", note=sink, **kwargs)  # type: ignore[arg-type]


def plant(path: Path, holder: Holder, proftpd: ProftpdServer) -> None:
    st = proftpd.home.stat()
    (path / LOCK_DIR).mkdir()
    (path / LOCK_DIR / HOLDER_FILE).write_bytes(holder.encode())
    for p in (path / LOCK_DIR, path / LOCK_DIR / HOLDER_FILE):
        os.chown(p, st.st_uid, st.st_gid)


async def test_acquire_writes_who_holds_it_and_release_removes_it(
    proftpd: ProftpdServer, remote_dir: RemoteDir, dst: str
) -> None:
    session = await open_session(proftpd)
    try:
        mine = lock(dst, "run-one")
        await mine.acquire(session)
        record = json.loads((remote_dir.path / LOCK_DIR / HOLDER_FILE).read_bytes())
        assert record["run_id"] == "run-one"
        assert record["pid"] == os.getpid()
        assert abs(record["started"] - time.time()) < 60
        await mine.release(session)
        assert not (remote_dir.path / LOCK_DIR).exists()
    finally:
        await session.quit()


async def test_a_second_run_is_told_who_holds_the_lock(
    proftpd: ProftpdServer, remote_dir: RemoteDir, dst: str
) -> None:
    first, second = await open_session(proftpd), await open_session(proftpd)
    try:
        await lock(dst, "run-one").acquire(first)
        with pytest.raises(errors.LockHeldError) as info:
            await lock(dst, "run-two").acquire(second)
        line = info.value.user_line()
        assert f"pid {os.getpid()}" in line
        assert "--lock-wait" in line
        assert info.value.exit_code == 1
        assert (
            Holder.decode((remote_dir.path / LOCK_DIR / HOLDER_FILE).read_bytes()).run_id
            == "run-one"
        )  # type: ignore[union-attr]
    finally:
        await first.quit()
        await second.quit()


async def test_a_waiting_run_gets_the_lock_once_it_is_released(
    proftpd: ProftpdServer, remote_dir: RemoteDir, dst: str
) -> None:
    first, second = await open_session(proftpd), await open_session(proftpd)
    notes: list[str] = []
    try:
        holder = lock(dst, "run-one")
        await holder.acquire(first)

        async def release_soon() -> None:
            await asyncio.sleep(0.5)
            await holder.release(first)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(release_soon())
            await lock(dst, "run-two", notes, wait=10.0).acquire(second)
        assert holder_of(remote_dir.path) == "run-two"
        assert len(notes) == 1, notes
        assert notes[0].startswith("waiting up to 10 s for the deploy lock")
    finally:
        await first.quit()
        await second.quit()


@pytest.mark.parametrize("how", ["stale", "break-lock", "no-record"])
async def test_a_stale_or_broken_lock_is_taken_over_with_a_warning(
    proftpd: ProftpdServer, remote_dir: RemoteDir, dst: str, how: str
) -> None:
    age = 4 * 3600 if how == "stale" else 60
    plant(remote_dir.path, Holder("old-ci", 99, time.time() - age, "0.1.0", "dead-run"), proftpd)
    if how == "no-record":
        (remote_dir.path / LOCK_DIR / HOLDER_FILE).unlink()
    notes: list[str] = []
    session = await open_session(proftpd)
    try:
        await lock(dst, "run-new", notes, break_lock=how == "break-lock").acquire(session)
    finally:
        await session.quit()
    assert holder_of(remote_dir.path) == "run-new"
    assert len(notes) == 1, notes
    assert notes[0].startswith("taking over the deploy lock"), notes
    expected = {"stale": "older than --lock-stale", "break-lock": "--break-lock"}
    if how in expected:
        assert expected[how] in notes[0]
        assert "old-ci" in notes[0]


async def test_release_leaves_a_lock_another_run_took_over(
    proftpd: ProftpdServer, remote_dir: RemoteDir, dst: str
) -> None:
    first, second = await open_session(proftpd), await open_session(proftpd)
    notes: list[str] = []
    try:
        mine = lock(dst, "run-one", notes)
        await mine.acquire(first)
        await lock(dst, "run-two", break_lock=True).acquire(second)
        await mine.release(first)
    finally:
        await first.quit()
        await second.quit()
    assert holder_of(remote_dir.path) == "run-two"
    assert any("taken over during the run" in n for n in notes), notes


async def test_a_dst_nobody_may_write_to_is_one_clear_error(
    proftpd: ProftpdServer, remote_dir: RemoteDir, dst: str
) -> None:
    if not proftpd.chroot:
        pytest.skip("needs ProFTPD running its sessions as another user (tests run as root)")
    remote_dir.path.chmod(0o555)
    session = await open_session(proftpd)
    try:
        with pytest.raises(errors.RemoteTargetError) as info:
            await lock(dst, "run-one").acquire(session)
    finally:
        await session.quit()
        remote_dir.path.chmod(0o755)
    assert "cannot create the deploy lock" in info.value.user_line()
    assert "550" in info.value.user_line()
