"""The machine: its description for RESULTS.md, CPU use read from /proc, where to work."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def proc_cpu(pid: int) -> float:
    """CPU seconds (user+sys) a running process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_tree_cpu(pid: int) -> float:
    """CPU seconds of a process plus the children it has reaped (ProFTPD's sessions)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def wait_quiet(minutes: float, say: Callable[[str], None]) -> bool:
    """Wait until the machine's busy CPU over 10 s is under 0.25 CPU; False on timeout."""
    deadline = time.monotonic() + minutes * 60
    while True:
        before, t0 = machine_busy_cpu(), time.monotonic()
        time.sleep(10)
        busy = (machine_busy_cpu() - before) / (time.monotonic() - t0)
        if busy < 0.25:
            say(f"machine quiet ({busy:.2f} CPU busy)")
            return True
        if time.monotonic() >= deadline:
            say(f"machine still busy ({busy:.2f} CPU); starting anyway")
            return False
        say(f"waiting for a quiet machine: {busy:.2f} CPU busy")


def machine_busy_cpu() -> float:
    """CPU seconds all CPUs have spent busy since boot (/proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def command_version(argv: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(pattern, out.stdout + out.stderr)
    return m.group(1) if m else "?"


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def default_workdir() -> Path | None:
    """/dev/shm when it has room: trees and server homes in RAM, so the disk's
    writeback of the last run's files does not land in the next run's time (it
    scattered the large-file runs by ±30 %).  None: the system's temp directory."""
    shm = Path("/dev/shm")
    try:
        free = shutil.disk_usage(shm).free
    except OSError:
        return None
    return shm if shm.is_dir() and os.access(shm, os.W_OK) and free > 8 << 30 else None


def filesystem_of(path: Path) -> str:
    """The type of the filesystem ``path`` is on (``tmpfs``, ``ext4``, ...), from /proc/mounts."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) >= 3:
            mount = fields[1]
            inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, kind = mount, fields[2]
    return kind


def environment() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    distro = "?"
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                distro = line.split("=", 1)[1].strip('"')
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "os": distro,
        "python": platform.python_version(),
        "asyncmirror": package_version("asyncmirror"),
        "uvloop": package_version("uvloop"),
        "lftp": command_version(["lftp", "--version"], r"Version ([\d.]+)"),
        "proftpd": command_version(["proftpd", "-v"], r"ProFTPD Version ([\d.a-z]+)"),
        "openssl": ssl.OPENSSL_VERSION,
    }
