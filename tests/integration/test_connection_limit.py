"""A host that allows fewer sessions than ``-j``: ProFTPD with ``MaxClientsPerUser 3``.

Shared hosts allow 3 to 8 sessions per account and refuse the next login with
``530 Sorry, the maximum number of clients (3) for this user are already
connected`` -- at ``PASS``, like a wrong password.  lftp ``mirror -P 8`` finishes
on such a host; so must asyncmirror: shrink to what the host allows, say so once,
take back slots freed during the run, and still stop at once on a real typo.
"""

from __future__ import annotations

import contextlib
import ftplib
import os
import random
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.treebuilders import snapshot
from tests.servers.proftpd import (
    INSTALL_HINT,
    ProftpdServer,
    proftpd_unavailable_reason,
    start_proftpd,
)

LIMIT = 3
TIMEOUT = 90


def _require_proftpd() -> None:
    reason = proftpd_unavailable_reason()
    if reason is None:
        return
    message = f"connection-limit tests need ProFTPD with mod_tls ({reason}); {INSTALL_HINT}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)  # never skip in CI
    pytest.skip(message)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProftpdServer]:
    """ProFTPD allowing 3 sessions per user; uploads throttled to 256 KB/s per session,
    so a run lasts long enough for slots freed mid-run to matter."""
    _require_proftpd()
    server = start_proftpd(
        tmp_path_factory.mktemp("limited"),
        max_clients=LIMIT,
        extra_config="TransferRate STOR 256",
    )
    try:
        yield server
    finally:
        server.stop()


def make_tree(root: Path, count: int, size: int) -> dict[str, bytes]:
    rng = random.Random(count * 7919 + size)
    files = {}
    for i in range(count):
        rel = f"d{i % 4}/page{i:03d}.html"
        data = rng.randbytes(size + i)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        files[rel] = data
    return files


def run_cli(
    server: ProftpdServer, src: Path, dst: str, *args: str, password: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTP_")}
    env.update(
        FTP_SERVER=f"{server.host}:{server.port}",
        FTP_USERNAME=server.user,
        FTP_PASSWORD=server.password if password is None else password,
    )
    argv = [sys.executable, "-m", "asyncmirror.cli", str(src), dst, "--no-progress"]
    argv += ["--ca-file", str(server.ca_file), "--timeout", "10", *args]
    return subprocess.run(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@contextlib.contextmanager
def other_clients(server: ProftpdServer, count: int) -> Iterator[list[ftplib.FTP_TLS]]:
    """``count`` logged-in sessions of another FTP client (a second deploy, an open GUI)."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    held: list[ftplib.FTP_TLS] = []
    try:
        for _ in range(count):
            ftp = ftplib.FTP_TLS(context=context, timeout=10)
            ftp.connect(server.host, server.port)
            ftp.login(server.user, server.password)  # AUTH TLS first, then USER/PASS
            held.append(ftp)
        yield held
    finally:
        for ftp in held:
            release(ftp)


def release(ftp: ftplib.FTP_TLS) -> None:
    if ftp.sock is None:  # released already
        return
    with contextlib.suppress(OSError, EOFError, ftplib.Error):
        ftp.quit()
    ftp.close()


def wait_until_free(server: ProftpdServer) -> None:
    """Every earlier session has ended on the server (its slot is free again)."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    deadline = time.monotonic() + 10
    while True:
        probes: list[ftplib.FTP_TLS] = []
        try:
            for _ in range(LIMIT):
                ftp = ftplib.FTP_TLS(context=context, timeout=10)
                probes.append(ftp)
                ftp.connect(server.host, server.port)
                ftp.login(server.user, server.password)
            return
        except ftplib.error_perm:
            assert time.monotonic() < deadline, "the limited server's slots never freed"
            time.sleep(0.05)
        finally:
            for ftp in probes:
                release(ftp)


def logins_in(trace: str) -> int:
    """Successful logins of the run, from its ``--debug`` protocol trace."""
    return sum(1 for line in trace.splitlines() if line.lstrip().startswith("<- 230"))


def limit_notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "connections" in line and "accepted" in line]


@pytest.fixture
def server(limited: ProftpdServer) -> ProftpdServer:
    wait_until_free(limited)
    return limited


def test_j8_on_a_host_allowing_3_finishes_with_one_notice(
    server: ProftpdServer, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    files = make_tree(src, 24, 3000)
    dst = "j8-limit3"

    proc = run_cli(server, src, dst, "-j", "8")

    assert proc.returncode == 0, proc.stderr
    assert "refused the login" not in proc.stderr
    assert snapshot(server.home / dst, skip_own=True) == files
    notes = limit_notes(proc.stderr)
    assert len(notes) == 1, proc.stderr
    assert f"accepted {LIMIT} of 8" in notes[0], notes


def test_two_slots_held_by_another_client_leaves_one_and_the_run_finishes(
    server: ProftpdServer, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    files = make_tree(src, 12, 2000)
    dst = "held-two"

    with other_clients(server, 2):
        proc = run_cli(server, src, dst, "-j", "8")

    assert proc.returncode == 0, proc.stderr
    assert snapshot(server.home / dst, skip_own=True) == files
    notes = limit_notes(proc.stderr)
    assert len(notes) == 1, proc.stderr
    assert "accepted 1 of 8" in notes[0], notes


def test_slots_freed_by_another_client_mid_run_are_taken_back(
    server: ProftpdServer, tmp_path: Path
) -> None:
    """Two slots held until the run's first upload is on the server, then freed: the run
    logs in again on them (at 256 KB/s a session, one session alone would need ~8 s)."""
    src = tmp_path / "site"
    files = make_tree(src, 40, 50_000)
    dst = "freed-mid-run"
    stored_before = len(server.stored_paths(completed_only=True))
    stop = threading.Event()

    with other_clients(server, 2) as held:

        def free_after_first_upload() -> None:
            while not stop.is_set():
                if len(server.stored_paths(completed_only=True)) > stored_before:
                    for ftp in held:
                        release(ftp)
                    return
                time.sleep(0.02)

        watcher = threading.Thread(target=free_after_first_upload)
        watcher.start()
        try:
            proc = run_cli(server, src, dst, "-j", "3", "--debug")
        finally:
            stop.set()
            watcher.join()

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert snapshot(server.home / dst, skip_own=True) == files
    assert len(limit_notes(proc.stderr)) == 1, proc.stderr[-3000:]
    assert logins_in(proc.stderr) >= 2, "no slot was taken back after the other client left"
    assert server.password not in proc.stderr


def test_a_wrong_password_is_still_one_refused_login_and_exit_3(
    server: ProftpdServer, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    make_tree(src, 12, 100)
    failed_before = server.system_log_text().count("Login failed")

    proc = run_cli(server, src, "typo", "-j", "8", password="Wr0ng-Passw0rd")

    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "refused the login" in lines[0]
    assert "FTP_PASSWORD" in lines[0]
    time.sleep(0.3)  # let any later refusal reach the log too
    assert server.system_log_text().count("Login failed") - failed_before == 1
    assert not (server.home / "typo").exists()
