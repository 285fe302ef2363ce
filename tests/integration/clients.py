"""asyncmirror as its users run it, against a test server: the library call and the
command.  One place, so a test says what it checks, not how it calls."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

from asyncmirror import Report, mirror


class _Server(Protocol):
    host: str
    port: int
    user: str
    password: str
    ca_file: Path


def mirror_to(
    server: _Server, src: Path, dst: str, *, jobs: int = 4, timeout: float = 20, **kwargs: Any
) -> Report:
    """``asyncmirror.mirror(src, dst, ...)`` against ``server``, its CA trusted."""
    return asyncio.run(
        mirror(
            str(src),
            dst,
            host=server.host,
            port=server.port,
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
