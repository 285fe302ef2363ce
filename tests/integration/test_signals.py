"""SIGTERM and SIGHUP stop a run as Ctrl-C does: clean-up first, then a clear exit.

``docker stop``, a cancelled CI job and a closed terminal send these.  Killed
outright, a run would leave half-written files under their real names on the
server; stopped like Ctrl-C, it removes what it cut.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.common import client_env, reap
from tests.servers.proftpd import ProftpdServer, start_proftpd


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProftpdServer]:
    """ProFTPD taking uploads at 64 KB/s per session: a stop lands mid-transfer."""
    server = start_proftpd(tmp_path_factory.mktemp("slow"), extra_config="TransferRate STOR 64")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_mid_upload_removes_the_cut_files_and_exits_128_plus_its_number(
    slow: ProftpdServer, tmp_path: Path, sig: signal.Signals
) -> None:
    src = tmp_path / "site"
    src.mkdir()
    for name in ("a.bin", "b.bin"):
        (src / name).write_bytes(os.urandom(1 << 20))
    dst = f"stop-{sig.name.lower()}"
    env = client_env(slow)
    argv = [sys.executable, "-m", "asyncmirror.cli", str(src), dst, "-j", "2", "--no-progress"]
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    remote = slow.home / dst
    try:
        # Both uploads under way: their first bytes are on the server's disk.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sizes = [p.stat().st_size for p in remote.glob("*.bin")] if remote.exists() else []
            if len(sizes) == 2 and min(sizes) > 0:
                break
            time.sleep(0.02)
        assert len(sizes) == 2, f"the uploads never started: {sizes}"
        assert proc.poll() is None
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        reap(proc)
    assert proc.returncode == 128 + sig, err
    assert err.strip().endswith(f"asyncmirror: stopped by {sig.name}"), err
    assert "Traceback" not in err
    assert "stopping: removing 2 unfinished uploads from the server" in err, err
    left = sorted(p.name for p in remote.iterdir() if not p.name.startswith(".ht"))
    assert left == [], f"half-written files left on the server: {left}"
