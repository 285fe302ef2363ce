"""asyncmirror as its users run it, against a test server: the library call and the
command.  One place, so a test says what it checks, not how it calls."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from asyncmirror import Report, mirror
from tests.servers.common import Reachable


def mirror_to(
    server: Reachable,
    src: Path,
    dst: str,
    *,
    via: tuple[str, int] | None = None,
    jobs: int = 4,
    timeout: float = 20,
    **kwargs: Any,
) -> Report:
    """``asyncmirror.mirror(src, dst, ...)`` against ``server`` (or through a proxy
    in front of it at ``via``), its CA trusted."""
    host, port = via or (server.host, server.port)
    return asyncio.run(
        mirror(
            str(src),
            dst,
            host=host,
            port=port,
            user=server.user,
            password=server.password,
            ca_file=str(server.ca_file),
            jobs=jobs,
            timeout=timeout,
            **kwargs,
        )
    )


def run_command(
    src: Path, dst: str, env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``asyncmirror SRC DST --no-progress ARGS`` in a subprocess, ``env`` on top of
    this process's environment, no terminal on stdin."""
    return subprocess.run(
        [sys.executable, "-m", "asyncmirror.cli", str(src), dst, "--no-progress", *args],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
