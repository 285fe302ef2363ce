"""The asyncmirror under test: a byte-compiled copy of the installed package, and its version."""

from __future__ import annotations

import compileall
import hashlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.errors import BenchError
from benchmarks.machine import command_version
from benchmarks.tools import Tools

REPO = Path(__file__).resolve().parent.parent


def installed_package_dir() -> Path:
    """Where ``import asyncmirror`` would load from (without importing it)."""
    spec = importlib.util.find_spec("asyncmirror")
    if spec is None or spec.origin is None:
        raise BenchError("asyncmirror is not installed (pip install -e .)")
    return Path(spec.origin).parent


def source_fingerprint(root: Path) -> str:
    """SHA-256 over the package's source files (first 12 hex digits)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def snapshot_asyncmirror(dest: Path) -> Path:
    """Copy the installed (editable) package to ``dest/asyncmirror``; returns ``dest``.

    The source tree is shared with ongoing work; every run (and the in-process planner)
    uses this copy, so a benchmark measures one version from start to end.
    """
    shutil.copytree(
        installed_package_dir(),
        dest / "asyncmirror",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    # Byte-compile it as `pip install` does: with PYTHONDONTWRITEBYTECODE set (as on
    # these machines) every run would otherwise compile the whole package (~60 ms).
    if not compileall.compile_dir(str(dest), quiet=1):
        raise BenchError(f"could not byte-compile the snapshot in {dest}")
    return dest


def git_state() -> str:
    """``git abc1234`` plus whether src/ has uncommitted changes."""
    commit = command_version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], r"(\S+)")
    try:
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        dirty = ""
    return f"git {commit}" + (", with uncommitted changes in src/" if dirty else "")


def check_snapshot_used(tools: Tools, snapshot: Path) -> None:
    """The asyncmirror command must import the snapshot, not the live source tree."""
    env = tools._env()
    env["PYTHONPATH"] = str(snapshot)
    script = tools.asyncmirror[0]
    with open(script, "rb") as f:
        first = f.readline().decode(errors="replace")
    python = first[2:].strip().split()[0] if first.startswith("#!") else sys.executable
    probe = subprocess.run(
        [python, "-c", "import asyncmirror; print(asyncmirror.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    where = probe.stdout.strip()
    if not where.startswith(str(snapshot)):
        raise BenchError(
            f"asyncmirror does not load from the snapshot {snapshot} but from "
            f"{where or probe.stderr.strip()}"
        )
