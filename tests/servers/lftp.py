"""The reference client: lftp, run as users run it (the recipe in the README).

Used where a test needs a site as lftp leaves it (no state file, upload-time
mtimes) or compares with lftp.  Under ``CI=true`` a missing lftp fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .common import Reachable


def lftp_binary() -> str:
    """lftp's path; fails under CI (``.ci/run`` installs it), else skips."""
    lftp = shutil.which("lftp")
    if lftp is None:
        message = "lftp is not installed (apt-get install lftp)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return lftp


def lftp_mirror(
    server: Reachable,
    src: Path,
    dst: str,
    *,
    via: tuple[str, int] | None = None,
    timeout: float = 60,
) -> str:
    """``lftp mirror -X .* -X .*/ --reverse --only-newer --verbose src dst``
    with the recipe's settings, to ``server`` or through a proxy at ``via``;
    its output (it must succeed)."""
    host, port = via or (server.host, server.port)
    script = (
        "set ftp:ssl-auth TLS; set ftp:ssl-force yes; set ftp:use-feat no; "
        f"set ssl:ca-file {server.ca_file}; set net:max-retries 1; set net:timeout 10; "
        f"open --env-password -u {server.user} ftp://{host}:{port}; "
        f"mirror -X .* -X .*/ --reverse --only-newer --verbose {src} {dst}"
    )
    proc = subprocess.run(
        [lftp_binary(), "-c", script],
        env={**os.environ, "LFTP_PASSWORD": server.password},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout
