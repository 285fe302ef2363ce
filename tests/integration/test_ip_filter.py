"""A host that refuses data connections from abroad (Sakura's foreign-IP filter).

The login works; every data connection is refused with ``425``.  The run must say
that this looks like the host's IP filter, not leave the user with a list of 425s.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.common import client_env
from tests.servers.pyftpd import PyftpdServer, start_pyftpd

HINT = "the host may filter data connections by client IP address"


@pytest.fixture(scope="module")
def filtered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyftpdServer]:
    server = start_pyftpd(tmp_path_factory.mktemp("filtered"), refuse_data=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("delete", [False, True], ids=["upload", "listing"])
def test_every_data_connection_refused_after_a_good_login_names_the_ip_filter(
    filtered: PyftpdServer, tmp_path: Path, delete: bool
) -> None:
    src = tmp_path / "site"
    (src / "sub").mkdir(parents=True)
    (src / "index.html").write_text("<h1>hi</h1>\n")
    (src / "sub" / "page.html").write_text("<p>page</p>\n")
    env = client_env(filtered)
    argv = [sys.executable, "-m", "asyncmirror.cli", str(src), f"www-{delete}", "--no-progress"]
    argv += ["--retries", "1", "--no-state"] + (["--delete"] if delete else [])
    run = subprocess.run(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert "Traceback" not in run.stderr
    assert run.stderr.count(HINT) == 1, run.stderr
    # --delete lists DST first (a data connection): that failure ends the run (exit 3);
    # otherwise each upload fails (exit 1).
    assert run.returncode == (3 if delete else 1), run.stderr
    assert filtered.received == []
