"""Nothing asyncmirror keeps in DST can be downloaded through a stock Apache.

DST is normally the web root, and Apache 2.4 serves it.  A reader watches DST on the
server's disk during a slow ``--atomic`` deploy and asks Apache for every file it
sees that did not come from SRC: the state file, the temporary uploads, the lock.
Each must be refused; the site's own files must be served.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.apache import (
    INSTALL_HINT,
    ApacheServer,
    apache_unavailable_reason,
    start_apache,
)
from tests.servers.common import client_env
from tests.servers.proftpd import ProftpdServer, start_proftpd


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProftpdServer]:
    server = start_proftpd(tmp_path_factory.mktemp("slow"), extra_config="TransferRate STOR 128")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def apache(slow: ProftpdServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheServer]:
    reason = apache_unavailable_reason()
    if reason is not None:
        message = f"the web-server test needs Apache ({reason}); {INSTALL_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # never skip in CI
        pytest.skip(message)
    server = start_apache(tmp_path_factory.mktemp("apache"), slow.home)
    try:
        yield server
    finally:
        server.stop()


def test_no_file_asyncmirror_keeps_in_dst_is_served_by_apache(
    slow: ProftpdServer, apache: ApacheServer, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    (src / "css").mkdir(parents=True)
    site = {"index.html": b"<h1>hi</h1>\n" * 20_000, "css/site.css": b"body{}\n" * 40_000}
    for rel, data in site.items():
        (src / rel).write_bytes(data)
    dst = slow.home / "www-served"
    seen: dict[str, int] = {}  # a file of asyncmirror's -> the status Apache gave it
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for dirpath, _dirs, files in os.walk(dst):
                for name in files:
                    rel = os.path.relpath(os.path.join(dirpath, name), slow.home)
                    if os.path.relpath(os.path.join(dirpath, name), dst) not in site:
                        status = apache.status(rel)
                        if status != 404:  # gone before the request: nothing served
                            seen[rel] = status

    env = client_env(slow)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "asyncmirror.cli",
                str(src),
                dst.name,
                "--atomic",
                "--no-progress",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        stop.set()
        watcher.join(30)
    assert run.returncode == 0, run.stderr
    for rel in ("state", "tmp"):
        assert any(f".htasyncmirror-{rel}" in p for p in seen), f"never saw a {rel} file: {seen}"
    assert {p: s for p, s in seen.items() if s != 403} == {}, "served to anyone"
    # After the run: the state file is refused, the site is served.
    assert apache.status(f"{dst.name}/.htasyncmirror-state.json") == 403
    assert apache.status(f"{dst.name}/index.html") == 200
