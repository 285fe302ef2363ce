"""The deploy lock against a real ProFTPD: MKD is the atomic step, a name says who.

These drive :class:`DeployLock` over real sessions; the runs' behaviour (two
``asyncmirror`` commands started together) is tested with the command itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncmirror import errors
from asyncmirror.deploylock import LOCK_DIR, DeployLock, Holder
from tests.integration.sessions import open_session
from tests.servers.common import client_env, reap
from tests.servers.proftpd import ProftpdServer, RemoteDir, start_proftpd


@pytest.fixture
def dst(proftpd: ProftpdServer, remote_dir: RemoteDir) -> str:
    """An existing DST owned by the FTP user, as the server names it."""
    remote_dir.path.mkdir()
    st = proftpd.home.stat()
    os.chown(remote_dir.path, st.st_uid, st.st_gid)
    return f"/{remote_dir.name}" if proftpd.chroot else str(remote_dir.path)


def record_of(path: Path) -> Holder:
    """The holder the lock names on the server's disk (exactly one)."""
    names = os.listdir(path / LOCK_DIR)
    assert len(names) == 1, names
    record = Holder.from_name(names[0])
    assert record is not None, f"the lock's entry {names[0]!r} is not a holder record"
    return record


def holder_of(path: Path) -> str:
    return record_of(path).run_id


def lock(
    dst: str, run_id: str, notes: list[str] | None = None, **kwargs: float | bool
) -> DeployLock:
    sink = notes.append if notes is not None else (lambda _m: None)
    return DeployLock(dst, run_id=run_id, version="0.1.0", note=sink, **kwargs)  # type: ignore[arg-type]


def plant(path: Path, holder: Holder | None, proftpd: ProftpdServer) -> None:
    """A lock left by another run (``None``: one that died between its two MKD)."""
    st = proftpd.home.stat()
    (path / LOCK_DIR).mkdir()
    os.chown(path / LOCK_DIR, st.st_uid, st.st_gid)
    if holder is not None:
        (path / LOCK_DIR / holder.name()).mkdir()
        os.chown(path / LOCK_DIR / holder.name(), st.st_uid, st.st_gid)


async def test_acquire_writes_who_holds_it_and_release_removes_it(
    proftpd: ProftpdServer, remote_dir: RemoteDir, dst: str
) -> None:
    session = await open_session(proftpd)
    try:
        mine = lock(dst, "run-one")
        await mine.acquire(session)
        record = record_of(remote_dir.path)
        assert record.run_id == "run-one"
        assert record.pid == os.getpid()
        assert abs(record.started - time.time()) < 60
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
        assert holder_of(remote_dir.path) == "run-one"
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
    old = Holder("old-ci", 99, time.time() - age, "0.1.0", "dead-run")
    plant(remote_dir.path, None if how == "no-record" else old, proftpd)
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
    assert f"cannot write to DST {dst}" in info.value.user_line()
    assert "550" in info.value.user_line()


# --- the command: two deploys at once ---------------------------------------------------


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProftpdServer]:
    """ProFTPD taking uploads at 128 KB/s per session: a deploy lasts seconds, not a blink."""
    server = start_proftpd(tmp_path_factory.mktemp("slow"), extra_config="TransferRate STOR 128")
    try:
        yield server
    finally:
        server.stop()


def site_tree(root: Path) -> dict[str, bytes]:
    files = {f"page{i}.html": bytes([i]) * 300_000 for i in range(4)}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def command(server: ProftpdServer, src: Path, dst: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "asyncmirror.cli",
        str(src),
        dst,
        "--no-progress",
        "--json",
        *args,
    ]


def one_after_the_other_holds_the_lock(
    server: ProftpdServer, lock_dir: Path, *argvs: list[str]
) -> list[subprocess.CompletedProcess[str]]:
    """Start the first command; once it holds the lock (seen on disk), the second.

    The first then still has seconds of throttled uploads ahead: the second meets
    its lock whatever the machine's load.
    """

    def start(argv: list[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            argv,
            env=client_env(server),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    procs = [start(argvs[0])]
    deadline = time.monotonic() + 60
    while not lock_dir.exists() and procs[0].poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lock_dir.exists(), "the first deploy never took the lock"
    procs.append(start(argvs[1]))
    results = []
    for proc, argv in zip(procs, argvs, strict=True):
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return results


def server_tree(path: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes() for p in path.iterdir() if p.is_file() and p.name.endswith(".html")
    }


def test_two_deploys_started_together_one_deploys_the_other_names_the_holder(
    slow: ProftpdServer, tmp_path: Path
) -> None:
    files = site_tree(tmp_path / "site")
    dst = "www-race"
    first, second = one_after_the_other_holds_the_lock(
        slow,
        slow.home / dst / LOCK_DIR,
        command(slow, tmp_path / "site", dst),
        command(slow, tmp_path / "site", dst),
    )
    assert first.returncode == 0, first.stderr
    assert second.returncode == 1, second.stderr
    assert "another deploy to this DST is running: host " in second.stderr, second.stderr
    assert "(pid " in second.stderr  # names the holder's process
    assert "--lock-wait" in second.stderr
    assert json.loads(second.stdout or "{}") == {}, "the refused run must report nothing done"
    assert server_tree(slow.home / dst) == files
    assert not (slow.home / dst / LOCK_DIR).exists(), "the lock must be released"


def test_with_lock_wait_the_second_deploy_waits_and_nothing_is_uploaded_twice(
    slow: ProftpdServer, tmp_path: Path
) -> None:
    files = site_tree(tmp_path / "site")
    dst = "www-wait"
    runs = one_after_the_other_holds_the_lock(
        slow,
        slow.home / dst / LOCK_DIR,
        command(slow, tmp_path / "site", dst, "--lock-wait", "60"),
        command(slow, tmp_path / "site", dst, "--lock-wait", "60"),
    )
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    uploads = [json.loads(r.stdout)["uploaded"] for r in runs]
    # The waiting run read DST again once it had the lock: everything was there.
    assert uploads == [len(files), 0], uploads
    waiter = runs[1]
    assert "waiting up to 60 s for the deploy lock" in waiter.stderr, waiter.stderr
    assert server_tree(slow.home / dst) == files
    assert not (slow.home / dst / LOCK_DIR).exists()


def test_a_stale_lock_is_taken_over_and_a_dry_run_takes_none(
    proftpd: ProftpdServer, remote_dir: RemoteDir, dst: str, tmp_path: Path
) -> None:
    files = site_tree(tmp_path / "site")
    live = Holder("ci-elsewhere", 4242, time.time() - 60, "0.1.0", "busy-run")
    plant(remote_dir.path, live, proftpd)
    dry = subprocess.run(
        command(proftpd, tmp_path / "site", dst, "--dry-run"),
        env=client_env(proftpd),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert dry.returncode == 0, dry.stderr
    assert holder_of(remote_dir.path) == "busy-run"  # untouched by a dry run

    held = subprocess.run(
        command(proftpd, tmp_path / "site", dst),
        env=client_env(proftpd),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert held.returncode == 1, held.stderr
    assert "host ci-elsewhere (pid 4242)" in held.stderr, held.stderr
    assert server_tree(remote_dir.path) == {}

    taken = subprocess.run(
        command(proftpd, tmp_path / "site", dst, "--lock-stale", "30"),
        env=client_env(proftpd),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert taken.returncode == 0, taken.stderr
    assert "taking over the deploy lock (older than --lock-stale 30 s)" in taken.stderr
    assert server_tree(remote_dir.path) == files
    assert not (remote_dir.path / LOCK_DIR).exists()


def test_two_deploys_started_at_once_to_a_new_dst_upload_each_file_once(
    slow: ProftpdServer, tmp_path: Path
) -> None:
    files = site_tree(tmp_path / "site")
    dst = "www-new"
    argv = command(slow, tmp_path / "site", dst, "--lock-wait", "60")
    procs = [
        subprocess.Popen(
            argv,
            env=client_env(slow),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    # However they overlap (both creating DST, one waiting for the other's lock, or
    # one done before the other starts), each file goes up exactly once.
    uploads = sorted(json.loads(out)["uploaded"] for out, _ in outs)
    assert uploads == [0, len(files)], uploads
    assert server_tree(slow.home / dst) == files
    assert not (slow.home / dst / LOCK_DIR).exists()


@pytest.mark.parametrize("what", ["a file", "read-only", "below a file"])
def test_a_dst_that_cannot_take_uploads_is_one_fatal_line_before_any_upload(
    proftpd: ProftpdServer, remote_dir: RemoteDir, tmp_path: Path, what: str
) -> None:
    site_tree(tmp_path / "site")
    st = proftpd.home.stat()
    dst = remote_dir.name
    if what == "read-only":
        remote_dir.path.mkdir(mode=0o555)
        remote_dir.path.chmod(0o555)  # whatever the umask
    else:
        remote_dir.path.write_bytes(b"a file where DST should be\n")
        os.chown(remote_dir.path, st.st_uid, st.st_gid)
        if what == "below a file":
            dst += "/www"
    before = len(proftpd.stored_paths())
    try:
        run = subprocess.run(
            command(proftpd, tmp_path / "site", dst),
            env=client_env(proftpd),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        if what == "read-only":
            remote_dir.path.chmod(0o755)
    assert run.returncode == 3, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    shown = f"/{dst}" if proftpd.chroot else str(proftpd.home / dst)
    assert lines[0].startswith(f"asyncmirror: error: cannot write to DST {shown}"), lines[0]
    assert "DST must be a directory the FTP user may write to" in lines[0]
    assert len(proftpd.stored_paths()) == before, "nothing may be uploaded"


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProftpdServer]:
    """ProFTPD dropping a control connection idle for 3 s (``TimeoutIdle 3``)."""
    server = start_proftpd(tmp_path_factory.mktemp("impatient"), timeout_idle=3)
    try:
        yield server
    finally:
        server.stop()


def test_sessions_waiting_for_the_lock_are_kept_alive_on_a_host_with_a_short_idle_timeout(
    impatient: ProftpdServer, tmp_path: Path
) -> None:
    files = site_tree(tmp_path / "site")
    dst = impatient.home / "www-idle"
    dst.mkdir()
    st = impatient.home.stat()
    os.chown(dst, st.st_uid, st.st_gid)
    plant(dst, Holder("ci-other", 4242, time.time() - 30, "0.1.0", "other-run"), impatient)
    argv = command(impatient, tmp_path / "site", "www-idle", "--lock-wait", "60", "-j", "4")
    proc = subprocess.Popen(
        [*argv, "--debug"],
        env=client_env(impatient),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The other run holds the lock for 7 s: more than twice the server's idle limit.
        time.sleep(7)
        for entry in (dst / LOCK_DIR).iterdir():
            entry.rmdir()
        (dst / LOCK_DIR).rmdir()
        out, err = proc.communicate(timeout=60)
    finally:
        reap(proc)
    assert proc.returncode == 0, err
    assert "waiting up to 60 s for the deploy lock" in err
    assert json.loads(out)["uploaded"] == len(files)
    assert server_tree(dst) == files
    # Each of the 4 sessions logged in once: none was dropped while it waited.
    logins = [ln for ln in err.splitlines() if ln.startswith("<- 230")]
    assert len(logins) == 4, "\n".join(ln for ln in err.splitlines() if not ln.startswith("->"))


async def test_a_copy_of_the_lock_replaces_a_leftover_and_release_removes_only_this_runs(
    proftpd: ProftpdServer, remote_dir: RemoteDir, dst: str
) -> None:
    """--rollback puts a copy of DST's lock in the release going live (see switch.py)."""
    st = proftpd.home.stat()
    release, elsewhere = (remote_dir.path.parent / f"{remote_dir.name}-{n}" for n in "ab")
    for path in (release, elsewhere):
        path.mkdir()
        os.chown(path, st.st_uid, st.st_gid)
    base = dst.rpartition("/")[0]
    plant(release, Holder("ci-gone", 99, time.time() - 60, "0.1.0", "died-here"), proftpd)
    plant(elsewhere, Holder("ci-other", 98, time.time() - 60, "0.1.0", "other-run"), proftpd)
    session = await open_session(proftpd)
    try:
        mine = lock(dst, "run-one")
        await mine.acquire(session)
        await mine.hold_also(session, f"{base}/{release.name}")
        assert holder_of(release) == "run-one", "the leftover must be replaced"
        copies = [f"{base}/{release.name}", f"{base}/{elsewhere.name}", f"{base}/missing"]
        await mine.release(session, copies_in=copies)
    finally:
        await session.quit()
    assert not (remote_dir.path / LOCK_DIR).exists()
    assert not (release / LOCK_DIR).exists()
    assert holder_of(elsewhere) == "other-run", "another run's lock is not this run's to remove"
