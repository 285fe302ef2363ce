#!/usr/bin/env python3
"""asyncmirror against lftp 4.9.2, on a real ProFTPD, with an emulated WAN round trip.

    python3 benchmarks/run.py [--files 2000] [--repeat 3] [--rtt 50] [--seed 1]

One command, self-contained and self-cleaning (see benchmarks/README.md):

1. writes a deterministic website-like tree (``treegen.py``) and a 100,000-file
   tiny-file tree for the scale test;
2. starts two ProFTPD 1.3.8 servers (TLS required, TLS session reuse required on data
   connections): "wan", whose ``MasqueradeAddress`` is the delay proxy
   (``delayproxy.py`` on 127.0.0.2, forwarding the control port and the whole passive
   range with ``--rtt`` ms added), and "direct" (loopback, no added delay) for the
   large-file and scale runs;
3. runs asyncmirror (its CLI, ``-j 8``) and lftp (``mirror -R --only-newer -P 8``) one
   after the other against the same server, into different directories, and checks
   every server tree byte for byte against the source after every run;
4. measures for each tool and scenario: wall time, files/s, MB/s, CPU seconds
   (user+sys of the child, from ``os.wait4``), peak RSS (the tool's ``ru_maxrss``, via GNU time)
   and the number of uploads the server logged; reports medians over ``--repeat`` runs
   and the ratio asyncmirror/lftp;
5. writes RESULTS.md, ratios.png and results.json to ``--output`` (default: this
   directory).

It stops with a non-zero status and a loud message when a tool fails or a server tree
differs from the source.  Nothing is timed in the test suite: benchmarks live here.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import datetime as dt
import filecmp
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

if __name__ == "__main__" and not __package__:
    # Started as `python3 benchmarks/run.py`: the benchmark imports `benchmarks` and
    # `tests.servers` by name, so run it again as `python3 -m benchmarks.run` with the
    # repository on the import path (the children inherit that; it holds no asyncmirror).
    _path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    os.execve(
        sys.executable,
        [sys.executable, "-m", "benchmarks.run", *sys.argv[1:]],
        {**os.environ, "PYTHONPATH": _path},
    )

from benchmarks import treegen  # noqa: E402
from tests.servers.proftpd import ProftpdServer, start_proftpd  # noqa: E402

TOOLS = ("asyncmirror", "lftp")
PROXY_HOST = "127.0.0.2"
EXCLUDES = (".*", ".*/")  # the users' recipe: -X '.*' -X '.*/'
MB = 1_000_000
MIB = 1 << 20
PASSIVE_RANGE = 300
SETTLE = 0.3  # seconds between runs once the server's sessions are gone (see measure())
#: What asyncmirror keeps in DST besides the mirrored files (allowed by the tree check).
STATE_FILES = {"asyncmirror": frozenset({".asyncmirror-state.json"}), "lftp": frozenset()}


class BenchError(RuntimeError):
    """A tool failed or a server tree is wrong: the benchmark stops, loudly."""


class Interrupted(BaseException):
    """SIGTERM/SIGINT: unwind so every server, proxy and temp dir is cleaned up."""


SCENARIOS: dict[str, str] = {
    "first": "First upload",
    "unchanged": "Unchanged rerun",
    "changed": "Rerun, 1% changed",
    "large": "Large files (2 × 64 MiB, no delay)",
    "dryrun": "Dry run, 100k files (no delay)",
}


def name_scenarios(large_count: int, large_mib: int, scale_files: int) -> None:
    """Label the large-file and dry-run scenarios with the sizes this run used."""
    SCENARIOS["large"] = f"Large files ({large_count} × {large_mib} MiB, no delay)"
    scale = f"{scale_files // 1000}k" if scale_files % 1000 == 0 else str(scale_files)
    SCENARIOS["dryrun"] = f"Dry run, {scale} files (no delay)"


# ---------------------------------------------------------------------------
# measuring one child process


@dataclass
class Sample:
    tool: str
    scenario: str
    repeat: int
    wall: float  # seconds
    user: float  # CPU seconds, user
    sys: float  # CPU seconds, system
    maxrss_kb: int  # peak resident set of the tool (KiB; -1 unknown)
    files: int  # files in the tree the run mirrored (all are checked)
    upload_files: int  # files that had to be uploaded
    upload_bytes: int  # bytes that had to be uploaded
    stors: int  # uploads of tree files the server logged during the run
    own_stors: int  # uploads of the tool's own files (asyncmirror's state file)
    proxy_cpu: float = 0.0  # CPU seconds the delay proxy used during the run
    server_cpu: float = 0.0  # CPU seconds ProFTPD (master and reaped sessions) used
    other_cpu: float = 0.0  # CPU seconds everything else on the machine used

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    @property
    def rss_mb(self) -> float:
        return self.maxrss_kb * 1024 / MB if self.maxrss_kb >= 0 else float("nan")


@dataclass
class ChildResult:
    returncode: int
    wall: float
    rusage: resource.struct_rusage | None
    maxrss_kb: int  # the tool's peak RSS in KiB (from GNU time), -1 if unknown
    timed_out: bool
    log: Path


_current_child: list[int] = []  # pid of the child being measured, for the signal handler
GNU_TIME = "/usr/bin/time"


def run_measured(
    argv: Sequence[str], *, env: dict[str, str], log: Path, timeout: float
) -> ChildResult:
    """Run ``argv`` to completion (bounded by ``timeout``) and measure it.

    CPU time comes from ``os.wait4``: user+sys of the child and what it reaped.

    Peak RSS cannot come from that same ``wait4``: Linux records, at ``execve``, the
    high-water RSS of the memory the process had *before* the exec -- that of this
    script, which forked it -- so every child would show this script's RSS as a floor
    (measured: ``/bin/true`` started from a 300 MB Python shows 321 MB).  So the tool is
    started by GNU time (a ~1 MB C program), whose own ``wait4`` on the tool gives the
    tool's ``ru_maxrss`` (``%M``) with a floor of about 1 MB.
    """
    timed_out = threading.Event()
    rss_file = log.with_suffix(".rss")
    wrapped = list(argv)
    if os.access(GNU_TIME, os.X_OK):
        wrapped = [GNU_TIME, "-q", "-f", "%M", "-o", str(rss_file), *wrapped]
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            wrapped,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: a timeout kills all of it
        )
        _current_child.append(proc.pid)

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
        except BaseException:
            kill()
            with contextlib.suppress(ChildProcessError):
                os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise
        finally:
            timer.cancel()
            _current_child.remove(proc.pid)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    maxrss_kb = -1  # unknown
    with contextlib.suppress(OSError, ValueError, IndexError):
        maxrss_kb = int(rss_file.read_text().split()[-1])
    return ChildResult(proc.returncode, wall, rusage, maxrss_kb, timed_out.is_set(), log)


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------
# checking the server's tree


def expected_tree(src: Path) -> tuple[set[str], set[str]]:
    """Files and directories of ``src`` that the -X '.*' -X '.*/' rules keep."""
    files: set[str] = set()
    dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        rel = "" if rel == "." else rel.replace(os.sep, "/")
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for d in dirnames:
            dirs.add(f"{rel}/{d}" if rel else d)
        for f in filenames:
            if not f.startswith("."):
                files.add(f"{rel}/{f}" if rel else f)
    return files, dirs


def server_tree(root: Path) -> tuple[set[str], set[str]]:
    files: set[str] = set()
    dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel.replace(os.sep, "/")
        for d in dirnames:
            dirs.add(f"{rel}/{d}" if rel else d)
        for f in filenames:
            files.add(f"{rel}/{f}" if rel else f)
    return files, dirs


def verify(
    src: Path, remote_root: Path, what: str, *, allowed: frozenset[str] = frozenset()
) -> None:
    """The server's copy must hold exactly the kept files of ``src``, byte for byte.

    ``allowed``: extra top-level files the tool keeps in DST (asyncmirror's state file).
    """
    want_files, want_dirs = expected_tree(src)
    if not remote_root.is_dir():
        raise BenchError(f"{what}: {remote_root} does not exist on the server")
    got_files, got_dirs = server_tree(remote_root)
    got_files -= allowed
    problems: list[str] = []
    for label, items in (
        ("missing on the server", sorted(want_files - got_files)),
        ("unexpected on the server", sorted(got_files - want_files)),
        ("directory missing on the server", sorted(want_dirs - got_dirs)),
        ("unexpected directory on the server", sorted(got_dirs - want_dirs)),
    ):
        if items:
            problems.append(f"{len(items)} {label}: {', '.join(items[:8])}")
    differ = []
    for rel in sorted(want_files & got_files):
        a, b = src / rel, remote_root / rel
        if a.stat().st_size != b.stat().st_size or not filecmp.cmp(a, b, shallow=False):
            differ.append(
                f"{rel} ({a.stat().st_size} bytes locally, {b.stat().st_size} on the server)"
            )
    if differ:
        problems.append(f"{len(differ)} differ from the source: {', '.join(differ[:8])}")
    if problems:
        raise BenchError(
            f"{what}: the server tree {remote_root} is not a copy of {src}:\n  "
            + "\n  ".join(problems)
        )


def verify_empty(remote_root: Path, what: str) -> None:
    files, dirs = server_tree(remote_root)
    if files or dirs:
        raise BenchError(f"{what}: a dry run changed the server: {sorted(files | dirs)[:8]}")


# ---------------------------------------------------------------------------
# servers and the proxy


def remote_path(server: ProftpdServer, name: str) -> str:
    """The path a client uses for ``home/name``."""
    return f"/{name}" if server.chroot else str(server.home / name)


def stor_counts(server: ProftpdServer, name: str) -> tuple[int, int]:
    """Completed uploads under ``home/name``: (tree files, asyncmirror's own files).

    asyncmirror keeps a state file in DST (and writes it through a temporary name);
    those uploads are counted apart from the mirrored files.
    """
    prefix = name + "/"
    files = own = 0
    for rec in server.transfers():
        if rec.direction == "i" and rec.completed and rec.path.startswith(prefix):
            if rec.path.rsplit("/", 1)[-1].startswith(".asyncmirror"):
                own += 1
            else:
                files += 1
    return files, own


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


def wait_sessions_gone(pid: int, timeout: float) -> None:
    """Wait (bounded) until the ProFTPD master ``pid`` has no session processes left."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not children.read_text().split():
                return
        except OSError:
            return  # no such file (old kernel) or the server is gone
        time.sleep(0.02)


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


def loopback_alias_usable(host: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


@dataclass
class Proxy:
    process: subprocess.Popen[bytes]
    log: Path
    rtt: float

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout:
            self.process.stdout.close()
        return tail(self.log, 3)


def start_proxy(server: ProftpdServer, rtt: float, connect_delay: bool, log: Path) -> Proxy:
    lo, hi = server.passive_ports
    argv = [
        sys.executable,
        str(HERE / "delayproxy.py"),
        "--listen",
        PROXY_HOST,
        "--target",
        server.host,
        "--port",
        str(server.port),
        "--port",
        f"{lo}-{hi}",
        "--rtt",
        str(rtt),
    ]
    if not connect_delay:
        argv.append("--no-connect-delay")
    with log.open("ab") as err:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    proxy = Proxy(proc, log, rtt)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 20
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        if not sel.select(max(0.0, deadline - time.monotonic())):
            break
        chunk = os.read(proc.stdout.fileno(), 256)
        if not chunk:
            break
        line += chunk
    sel.close()
    if not line.startswith(b"READY"):
        proxy.stop()
        raise BenchError(f"the delay proxy did not start: {line!r}\n{tail(log)}")
    return proxy


# ---------------------------------------------------------------------------
# the two tools


def asyncmirror_argv() -> list[str]:
    """The installed console script (not a pyenv/venv shim, whose start-up would be timed)."""
    beside = Path(sys.executable).parent / "asyncmirror"
    found = str(beside) if beside.is_file() else shutil.which("asyncmirror")
    if not found:
        raise BenchError("the asyncmirror command is not installed (pip install -e .)")
    return [found]


@dataclass
class Tools:
    workdir: Path
    jobs: int
    timeout: float
    lftp: str
    asyncmirror: list[str]
    pythonpath: str = ""  # the asyncmirror snapshot, put first on the child's sys.path
    home: Path = field(init=False)

    def __post_init__(self) -> None:
        # A clean HOME: no ~/.lftprc, ~/.netrc or lftp history from the machine's user.
        self.home = self.workdir / "home"
        self.home.mkdir(parents=True, exist_ok=True)

    def _env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("FTP_", "LFTP_")) and k not in ("NETRC",)
        }
        env["HOME"] = str(self.home)
        env["LC_ALL"] = "C.UTF-8"
        return env

    def run(
        self,
        tool: str,
        server: ProftpdServer,
        host: str,
        port: int,
        src: Path,
        dst: str,
        log: Path,
        *,
        dry_run: bool = False,
        check_hostname: bool = True,
    ) -> ChildResult:
        env = self._env()
        if tool == "asyncmirror":
            if self.pythonpath:
                env["PYTHONPATH"] = os.pathsep.join(
                    p for p in (self.pythonpath, env.get("PYTHONPATH", "")) if p
                )
            env.update(
                FTP_SERVER=f"{host}:{port}", FTP_USERNAME=server.user, FTP_PASSWORD=server.password
            )
            argv = [*self.asyncmirror, str(src), dst, "-j", str(self.jobs)]
            for pattern in EXCLUDES:
                argv += ["-X", pattern]
            argv += ["--ca-file", str(server.ca_file), "--no-progress"]
            if dry_run:
                argv.append("--dry-run")
        else:
            env["LFTP_PASSWORD"] = server.password  # read by `open --env-password`
            script = log.with_suffix(".lftp")
            lines = [
                "set cmd:fail-exit yes",
                "set ftp:ssl-auth TLS",
                "set ftp:ssl-force yes",
                "set ftp:use-feat no",
                f"set ssl:ca-file {server.ca_file}",
                f"set ssl:check-hostname {'yes' if check_hostname else 'no'}",
                "set net:max-retries 5",  # bounded: lftp's default is 1000 retries
                "set net:timeout 60",
                f"open --env-password -u {server.user} ftp://{host}:{port}",
                "mirror -R --only-newer -P {} {}{} {} {}".format(
                    self.jobs,
                    " ".join(f"-X {p}" for p in EXCLUDES),
                    " --dry-run" if dry_run else "",
                    _lftp_quote(str(src)),
                    _lftp_quote(dst),
                ),
                "exit",
            ]
            script.write_text("\n".join(lines) + "\n")
            script.chmod(0o600)
            argv = [self.lftp, "-f", str(script)]
        result = run_measured(argv, env=env, log=log, timeout=self.timeout)
        if result.timed_out:
            raise BenchError(
                f"{tool} did not finish within {self.timeout:g} s (killed); log {log}:\n{tail(log)}"
            )
        if result.returncode != 0:
            raise BenchError(
                f"{tool} exited with status {result.returncode}; log {log}:\n{tail(log)}"
            )
        return result


def _lftp_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lftp_hostname_check_works(
    tools: Tools, server: ProftpdServer, host: str, port: int, logdir: Path
) -> bool:
    """Whether lftp (GnuTLS) accepts the certificate's IP subjectAltName for ``host``."""
    env = tools._env()
    env["LFTP_PASSWORD"] = server.password
    script = logdir / "lftp-hostcheck.lftp"
    script.write_text(
        "set cmd:fail-exit yes\nset ftp:ssl-auth TLS\nset ftp:ssl-force yes\n"
        f"set ftp:use-feat no\nset ssl:ca-file {server.ca_file}\nset ssl:check-hostname yes\n"
        "set net:max-retries 1\nset net:timeout 15\n"
        f"open --env-password -u {server.user} ftp://{host}:{port}\ncls /\nexit\n"
    )
    proc = subprocess.run(
        [tools.lftp, "-f", str(script)], env=env, capture_output=True, timeout=60, check=False
    )
    return proc.returncode == 0


# ---------------------------------------------------------------------------
# the benchmark


@dataclass
class Params:
    files: int
    seed: int
    rtt: float
    repeat: int
    jobs: int
    connect_delay: bool
    large_count: int
    large_mib: int
    scale_files: int
    timeout: float
    large_repeat: int = 0  # 0: as many as ``repeat`` (results.json from before the option)


class Bench:
    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        self.args = args
        self.stack = stack
        self.params = Params(
            args.files,
            args.seed,
            args.rtt,
            args.repeat,
            args.jobs,
            args.connect_delay,
            args.large_count,
            args.large_mib,
            args.scale_files,
            args.timeout,
            args.large_repeat,
        )
        name_scenarios(args.large_count, args.large_mib, args.scale_files)
        self.samples: list[Sample] = []
        self.notes: list[str] = []
        self.planner: dict[str, Any] = {}
        self.info: dict[str, Any] = {}

    def say(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"[{stamp}] {message}", file=sys.stderr, flush=True)

    # -- setup -----------------------------------------------------------------

    def setup(self) -> None:
        a = self.args
        base = Path(a.workdir) if a.workdir else default_workdir()
        self.work = Path(tempfile.mkdtemp(prefix="asyncmirror-bench-", dir=base))
        self.info["workdir_fs"] = filesystem_of(self.work)
        if not a.keep:
            self.stack.callback(shutil.rmtree, self.work, True)
        self.work.chmod(0o755)  # ProFTPD's user must reach the homes below it
        self.logs = self.work / "logs"
        self.logs.mkdir()
        self.say(f"work directory {self.work}")

        lftp = shutil.which("lftp")
        if lftp is None:
            raise BenchError("lftp is not installed (apt-get install lftp)")
        self.source_dir = installed_package_dir()
        self.git = git_state()
        snapshot = snapshot_asyncmirror(self.work / "asyncmirror-snapshot")
        self.fingerprint = source_fingerprint(snapshot / "asyncmirror")
        sys.path.insert(0, str(snapshot))  # the in-process planner uses the snapshot too
        self.tools = Tools(
            self.work / "client", a.jobs, a.timeout, lftp, asyncmirror_argv(), str(snapshot)
        )
        self.check_snapshot_used(snapshot)
        self.say(f"asyncmirror from {self.source_dir} ({self.git}), snapshot {self.fingerprint}")
        if not os.access(GNU_TIME, os.X_OK):
            self.notes.append(
                f"{GNU_TIME} (GNU time) is missing: peak RSS was not measured "
                "(apt-get install time)"
            )
            self.say(f"warning: {self.notes[-1]}")
        if not loopback_alias_usable(PROXY_HOST):
            raise BenchError(f"cannot bind {PROXY_HOST}: the proxy needs a second loopback address")

        self.say(f"generating a {a.files}-file tree (seed {a.seed})")
        self.site = treegen.generate(self.work / "site", a.files, a.seed)
        self.info["site"] = {
            "files": len(self.site.files),
            "dirs": len(self.site.dirs),
            "bytes": self.site.total_bytes,
            "hidden": len(self.site.hidden),
        }
        self.large_src = self.work / "large"
        self.large_src.mkdir()
        for i in range(a.large_count):
            p = self.large_src / f"large-{i + 1}.bin"
            p.write_bytes(treegen.file_content(a.seed, 10_000_000 + i, a.large_mib * MIB))
            os.utime(p, (treegen.BASE_MTIME, treegen.BASE_MTIME))

        self.say("starting ProFTPD (wan: behind the delay proxy; direct: no delay)")
        self.wan, self.proxy = self._start_wan()
        self.direct = start_proftpd(self.work / "srv-direct", passive_range_size=PASSIVE_RANGE)
        self.stack.callback(self.direct.stop)
        self.check_hostname = lftp_hostname_check_works(
            self.tools, self.wan, PROXY_HOST, self.wan.port, self.logs
        )
        self.info["lftp_check_hostname"] = self.check_hostname
        if not self.check_hostname:
            self.notes.append(
                f"lftp rejected the certificate's IP address {PROXY_HOST} with "
                "ssl:check-hostname yes, so it ran with ssl:check-hostname no (the CA is "
                "still checked)"
            )

    def check_snapshot_used(self, snapshot: Path) -> None:
        """The asyncmirror command must import the snapshot, not the live source tree."""
        env = self.tools._env()
        env["PYTHONPATH"] = str(snapshot)
        script = self.tools.asyncmirror[0]
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

    def _start_wan(self) -> tuple[ProftpdServer, Proxy]:
        last: Exception | None = None
        for attempt in range(3):
            server = start_proftpd(
                self.work / f"srv-wan-{attempt}",
                masquerade_address=PROXY_HOST,
                passive_range_size=PASSIVE_RANGE,
            )
            try:
                proxy = start_proxy(
                    server, self.args.rtt, self.args.connect_delay, self.logs / "delayproxy.log"
                )
            except BenchError as exc:  # a port taken on 127.0.0.2: try other ports
                server.stop()
                last = exc
                continue
            self.stack.callback(server.stop)
            self.stack.callback(self._stop_proxy, proxy)
            return server, proxy
        raise BenchError(f"could not start the proxy: {last}")

    def _stop_proxy(self, proxy: Proxy) -> None:
        self.info["proxy_final"] = proxy.stop()

    # -- one run ----------------------------------------------------------------

    def measure(
        self,
        tool: str,
        scenario: str,
        rep: int,
        server: ProftpdServer,
        src: Path,
        name: str,
        *,
        files: int,
        upload_files: int,
        upload_bytes: int,
        via_proxy: bool,
        dry_run: bool = False,
    ) -> Sample:
        host, port = (PROXY_HOST, server.port) if via_proxy else (server.host, server.port)
        log = self.logs / f"{scenario}-{tool}-r{rep}.log"
        before = stor_counts(server, name)
        proxy_before = proc_cpu(self.proxy.pid)
        server_pid = server.process.pid if server.process else 0
        server_before = proc_tree_cpu(server_pid)
        busy_before = machine_busy_cpu()
        result = self.tools.run(
            tool,
            server,
            host,
            port,
            src,
            remote_path(server, name),
            log,
            dry_run=dry_run,
            check_hostname=self.check_hostname or not via_proxy,
        )
        busy = machine_busy_cpu() - busy_before
        proxy_cpu = proc_cpu(self.proxy.pid) - proxy_before
        # Let ProFTPD reap the run's sessions: their CPU then counts here, and the next
        # run starts on an idle server.
        wait_sessions_gone(server_pid, timeout=5.0)
        # ProFTPD's master pauses ~200 ms after reaping a session before it accepts
        # again (seen with strace): without this the next run's logins would wait.
        time.sleep(SETTLE)
        server_cpu = proc_tree_cpu(server_pid) - server_before
        ru = result.rusage
        assert ru is not None
        other_cpu = max(0.0, busy - ru.ru_utime - ru.ru_stime - proxy_cpu - server_cpu)
        after = stor_counts(server, name)
        sample = Sample(
            tool,
            scenario,
            rep,
            result.wall,
            ru.ru_utime,
            ru.ru_stime,
            result.maxrss_kb,
            files,
            upload_files,
            upload_bytes,
            after[0] - before[0],
            after[1] - before[1],
            proxy_cpu,
            server_cpu,
            other_cpu,
        )
        self.samples.append(sample)
        self.say(
            f"  {SCENARIOS[scenario]:<36} {tool:<11} {sample.wall:7.2f} s  "
            f"cpu {sample.cpu:6.2f} s  rss {sample.rss_mb:6.1f} MB  uploads {sample.stors}"
        )
        return sample

    # -- scenarios ----------------------------------------------------------------

    def run(self) -> None:
        p = self.params
        entries = self.site.files
        n = len(entries)
        total = self.site.total_bytes
        for rep in range(1, p.repeat + 1):
            order = TOOLS if rep % 2 else TOOLS[::-1]  # alternate who goes first
            self.say(f"repeat {rep}/{p.repeat} (order: {', '.join(order)})")
            treegen.reset_mtimes(self.site.root, entries)
            names = {tool: f"{'am' if tool == 'asyncmirror' else 'lftp'}-r{rep}" for tool in order}
            for tool in order:
                self.measure(
                    tool,
                    "first",
                    rep,
                    self.wan,
                    self.site.root,
                    names[tool],
                    files=n,
                    upload_files=n,
                    upload_bytes=total,
                    via_proxy=True,
                )
                verify(
                    self.site.root,
                    self.wan.home / names[tool],
                    f"{tool} first upload",
                    allowed=STATE_FILES[tool],
                )
            for tool in order:
                self.measure(
                    tool,
                    "unchanged",
                    rep,
                    self.wan,
                    self.site.root,
                    names[tool],
                    files=n,
                    upload_files=0,
                    upload_bytes=0,
                    via_proxy=True,
                )
                verify(
                    self.site.root,
                    self.wan.home / names[tool],
                    f"{tool} unchanged rerun",
                    allowed=STATE_FILES[tool],
                )
            changed = treegen.change_files(
                self.site.root, entries, fraction=0.01, seed=p.seed, generation=rep
            )
            changed_bytes = sum(f.size for f in changed)
            for tool in order:
                s = self.measure(
                    tool,
                    "changed",
                    rep,
                    self.wan,
                    self.site.root,
                    names[tool],
                    files=n,
                    upload_files=len(changed),
                    upload_bytes=changed_bytes,
                    via_proxy=True,
                )
                verify(
                    self.site.root,
                    self.wan.home / names[tool],
                    f"{tool} 1% changed rerun",
                    allowed=STATE_FILES[tool],
                )
                if s.stors < len(changed):
                    raise BenchError(
                        f"{tool} uploaded {s.stors} files after {len(changed)} changed"
                    )
            for name in names.values():
                shutil.rmtree(self.wan.home / name, ignore_errors=True)

        if p.large_count:
            self.run_large()

        if p.scale_files:
            self.run_scale()

    def run_large(self) -> None:
        """Two large files on loopback: runs take a second, so take more of them.

        Half a second of either tool is start-up and login, and the server
        shares the machine's two CPUs with the client: single runs scatter by
        tens of percent, a median of many does not.
        """
        p = self.params
        repeat = p.large_repeat or p.repeat
        large_bytes = p.large_count * p.large_mib * MIB
        for rep in range(1, repeat + 1):
            order = TOOLS if rep % 2 else TOOLS[::-1]
            self.say(f"large files {rep}/{repeat} (order: {', '.join(order)})")
            for tool in order:
                name = f"large-{tool}-r{rep}"
                self.measure(
                    tool,
                    "large",
                    rep,
                    self.direct,
                    self.large_src,
                    name,
                    files=p.large_count,
                    upload_files=p.large_count,
                    upload_bytes=large_bytes,
                    via_proxy=False,
                )
                verify(
                    self.large_src,
                    self.direct.home / name,
                    f"{tool} large files",
                    allowed=STATE_FILES[tool],
                )
                shutil.rmtree(self.direct.home / name, ignore_errors=True)

    def run_scale(self) -> None:
        p = self.params
        self.say(f"generating the {p.scale_files}-file scale tree")
        started = time.monotonic()
        scale = treegen.generate(self.work / "scale", p.scale_files, p.seed, scale=True)
        self.info["scale"] = {
            "files": len(scale.files),
            "dirs": len(scale.dirs),
            "bytes": scale.total_bytes,
            "generate_s": round(time.monotonic() - started, 1),
        }
        empty = self.direct.home / "scale-empty"
        empty.mkdir()
        if os.geteuid() == 0 and self.direct.chroot:
            os.chown(empty, 65534, 65534)
        n = len(scale.files)
        for rep in range(1, p.repeat + 1):
            order = TOOLS if rep % 2 else TOOLS[::-1]
            self.say(f"scale dry run {rep}/{p.repeat}")
            for tool in order:
                self.measure(
                    tool,
                    "dryrun",
                    rep,
                    self.direct,
                    scale.root,
                    "scale-empty",
                    files=n,
                    upload_files=n,
                    upload_bytes=scale.total_bytes,
                    via_proxy=False,
                    dry_run=True,
                )
                verify_empty(empty, f"{tool} dry run")
        self.run_planner(scale)
        shutil.rmtree(scale.root, ignore_errors=True)

    def run_planner(self, scale: treegen.TreeInfo) -> None:
        """make_plan on 100k local files against a same-sized remote listing, in-process."""
        from asyncmirror.entries import LocalFile, LocalTree, RemoteFile, RemoteTree
        from asyncmirror.planner import PlanOptions, make_plan

        p = self.params
        root = str(scale.root)
        all_dirs: set[str] = set()
        for d in scale.dirs:
            parts = d.split("/")
            all_dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))

        def build() -> tuple[LocalTree, RemoteTree]:
            local = LocalTree(root=root, dirs=set(all_dirs))
            remote = RemoteTree(exists=True, dirs=set(all_dirs))
            for f in scale.files:
                local.files[f.path] = LocalFile(f.path, f.size, float(f.mtime), f"{root}/{f.path}")
                # 1 % of the remote copies are older: they are planned for upload.
                older = 3600.0 if f.index % 100 == 0 else 0.0
                remote.files[f.path] = RemoteFile(f.path, f.size, float(f.mtime) - older, 0.0)
            return local, remote

        tracemalloc.start()
        local, remote = build()
        inputs_bytes = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        options = PlanOptions()
        times = []
        plan = None
        for _ in range(max(1, p.repeat)):
            started = time.perf_counter()
            plan = make_plan(local, remote, options)
            times.append(time.perf_counter() - started)
        assert plan is not None
        tracemalloc.start()
        tracemalloc.reset_peak()
        plan = make_plan(local, remote, options)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        self.planner = {
            "local_files": len(local.files),
            "remote_files": len(remote.files),
            "uploads": len(plan.uploads),
            "skipped": len(plan.skipped),
            "seconds": statistics.median(times),
            "runs": times,
            "peak_bytes": peak,
            "inputs_bytes": inputs_bytes,
        }
        self.say(
            f"  planner: {len(local.files)} vs {len(remote.files)} files in "
            f"{statistics.median(times):.3f} s, tracemalloc peak {peak / MB:.1f} MB"
        )


# ---------------------------------------------------------------------------
# summary, report, chart


def median_of(samples: list[Sample], tool: str, scenario: str) -> dict[str, float] | None:
    chosen = [s for s in samples if s.tool == tool and s.scenario == scenario]
    if not chosen:
        return None
    wall = statistics.median(s.wall for s in chosen)
    first = chosen[0]
    return {
        "wall": wall,
        "files_per_s": first.files / wall if wall else 0.0,
        "mb_per_s": first.upload_bytes / MB / wall if wall else 0.0,
        "cpu": statistics.median(s.cpu for s in chosen),
        "rss_mb": statistics.median(s.rss_mb for s in chosen),
        "stors": statistics.median(s.stors for s in chosen),
        "runs": len(chosen),
        "files": first.files,
        "upload_files": first.upload_files,
        "upload_bytes": first.upload_bytes,
        "proxy_cpu": statistics.median(s.proxy_cpu for s in chosen),
    }


def summarize(samples: list[Sample]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for scenario in SCENARIOS:
        am = median_of(samples, "asyncmirror", scenario)
        lf = median_of(samples, "lftp", scenario)
        if am is None or lf is None:
            continue
        ratio = {
            k: (am[k] / lf[k] if lf[k] else float("nan"))
            for k in ("wall", "files_per_s", "mb_per_s", "cpu", "rss_mb")
        }
        out[scenario] = {"asyncmirror": am, "lftp": lf, "ratio": ratio}
    return out


@dataclass
class Target:
    text: str
    scenario: str
    metric: str  # key of the ratio dict, or "am_rss_mb"
    op: str  # "<=" or ">="
    limit: float
    applies: bool = True
    why_not: str = ""
    value: float | None = None

    @property
    def met(self) -> bool | None:
        if self.value is None or self.value != self.value:
            return None
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit


def evaluate_targets(summary: dict[str, dict[str, Any]], params: Params) -> list[Target]:
    reference = params.files >= 1000 and abs(params.rtt - 50) < 1e-9
    why = (
        ""
        if reference
        else (
            f"the target is for ≥1000 files at 50 ms RTT; this run: {params.files} files at "
            f"{params.rtt:g} ms"
        )
    )
    targets = [
        Target(
            "First upload (≥1000 files, 50 ms RTT): time ≤ 0.50× lftp's",
            "first",
            "wall",
            "<=",
            0.50,
            reference,
            why,
        ),
        Target(
            "Unchanged rerun: time ≤ 0.15× lftp's", "unchanged", "wall", "<=", 0.15, reference, why
        ),
        Target("Large files: throughput ≥ 1.0× lftp's", "large", "mb_per_s", ">=", 1.0),
        Target(
            "Dry run of 100k files: no slower than lftp",
            "dryrun",
            "wall",
            "<=",
            1.0,
            params.scale_files >= 100_000,
            "" if params.scale_files >= 100_000 else f"ran with {params.scale_files} files",
        ),
        Target(
            "Dry run of 100k files: peak RSS ≤ 100 MB",
            "dryrun",
            "am_rss_mb",
            "<=",
            100.0,
            params.scale_files >= 100_000,
            "" if params.scale_files >= 100_000 else f"ran with {params.scale_files} files",
        ),
        Target("First upload: CPU ≤ 2× lftp's", "first", "cpu", "<=", 2.0),
    ]
    for t in targets:
        row = summary.get(t.scenario)
        if row is None:
            continue
        t.value = (
            row["asyncmirror"]["rss_mb"] if t.metric == "am_rss_mb" else row["ratio"][t.metric]
        )
    return targets


def _cmd_version(argv: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(pattern, out.stdout + out.stderr)
    return m.group(1) if m else "?"


def _pkg_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


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


def git_state() -> str:
    """``git abc1234`` plus whether src/ has uncommitted changes."""
    commit = _cmd_version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], r"(\S+)")
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
        "asyncmirror": _pkg_version("asyncmirror"),
        "aioftp": _pkg_version("aioftp"),
        "uvloop": _pkg_version("uvloop"),
        "lftp": _cmd_version(["lftp", "--version"], r"Version ([\d.]+)"),
        "proftpd": _cmd_version(["proftpd", "-v"], r"ProFTPD Version ([\d.a-z]+)"),
        "openssl": ssl.OPENSSL_VERSION,
    }


def _fmt(x: float, digits: int = 2) -> str:
    if x != x:
        return "–"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def machine_load_line(samples: list[Sample]) -> str:
    if not samples:
        return ""
    share = [s.other_cpu / s.wall for s in samples if s.wall > 0]
    worst = max(samples, key=lambda s: s.other_cpu / s.wall if s.wall > 0 else 0.0)
    return (
        f"Machine load besides the tool, proxy and server: median {statistics.median(share):.2f} "
        f"CPU over the runs, at most {worst.other_cpu / worst.wall:.2f} CPU "
        f"({SCENARIOS[worst.scenario]}, {worst.tool}, repeat {worst.repeat})."
    )


def _times(x: float) -> str:
    return "–" if x != x else f"{_fmt(x)}×"


def write_chart(
    summary: dict[str, dict[str, Any]], targets: list[Target], path: Path, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(summary)
    metrics = [("wall", "wall time"), ("cpu", "CPU time"), ("rss_mb", "peak RSS")]
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    width = 0.26
    fig, ax = plt.subplots(figsize=(10, 5.2), dpi=120)
    for i, (key, label) in enumerate(metrics):
        xs = [j + (i - 1) * width for j in range(len(scenarios))]
        ys = [summary[s]["ratio"][key] for s in scenarios]
        bars = ax.bar(xs, ys, width, label=f"{label} (asyncmirror / lftp)", color=colors[i])
        for bar, y in zip(bars, ys, strict=True):
            ax.annotate(
                f"{y:.2f}",
                (bar.get_x() + bar.get_width() / 2, y),
                ha="center",
                va="bottom",
                fontsize=7,
                xytext=(0, 2),
                textcoords="offset points",
            )
    # Target lines over the bar they apply to (throughput ≥ 1 is time ≤ 1).
    drew = False
    for t in targets:
        if t.scenario not in summary or t.metric == "am_rss_mb":
            continue
        key = {"mb_per_s": "wall"}.get(t.metric, t.metric)
        limit = 1 / t.limit if t.metric == "mb_per_s" else t.limit
        i = [m for m, _ in metrics].index(key)
        x = scenarios.index(t.scenario) + (i - 1) * width
        ax.hlines(
            limit,
            x - width / 2,
            x + width / 2,
            colors="red",
            linewidth=2,
            label="_nolegend_" if drew else "target (at most)",
        )
        drew = True
    ax.axhline(1.0, color="gray", linewidth=0.8, linestyle="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels([SCENARIOS[s].replace(" (", "\n(") for s in scenarios], fontsize=8)
    ax.set_ylabel("ratio asyncmirror / lftp (log scale; below 1 = asyncmirror better)")
    ax.set_title(title, fontsize=10)
    top = max(summary[sc]["ratio"][k] for sc in scenarios for k, _ in metrics)
    ax.set_ylim(top=top * 4)  # room for the legend above the bars
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_results(
    bench: Bench | Rendered,
    summary: dict[str, dict[str, Any]],
    targets: list[Target],
    env: dict[str, str],
    out: Path,
    started: dt.datetime,
    elapsed: float,
    command: str,
) -> None:
    p = bench.params
    site = bench.info["site"]
    lines = [
        "# asyncmirror vs lftp: benchmark results",
        "",
        f"Generated by `{command}` on {started:%Y-%m-%d %H:%M} UTC in {elapsed / 60:.1f} min. "
        "See [README.md](README.md) for what is measured and how.",
        "",
        "## Machine and versions",
        "",
        f"- Machine: {env['nproc']} CPUs ({env['cpu']}), {env['memory']} memory, "
        f"kernel {env['kernel']}, {env['os']}",
        f"- Python {env['python']}, asyncmirror {env['asyncmirror']}, aioftp {env['aioftp']}, "
        f"uvloop {env['uvloop']}",
        f"- lftp {env['lftp']}, ProFTPD {env['proftpd']} (mod_tls; TLS required, data "
        f"connections must reuse the control connection's TLS session), {env['openssl']}",
        "",
        "## Parameters",
        "",
        f"- Tree: {site['files']} files, {site['bytes'] / MB:.1f} MB, {site['dirs']} "
        f"directories (seed {p.seed}; plus {site['hidden']} hidden files that both tools "
        "exclude with `-X '.*' -X '.*/'`)",
        f"- Emulated round trip: {p.rtt:g} ms (userspace delay proxy on {PROXY_HOST}, "
        + ("TCP handshake charged one round trip" if p.connect_delay else "no handshake delay")
        + "); large files and scale runs: loopback, no added delay",
        f"- Parallelism: asyncmirror `-j {p.jobs}`, lftp `mirror -P {p.jobs}`",
        f"- Repeats: {p.repeat} (medians reported; tools alternate who goes first); "
        f"large files: {p.large_repeat or p.repeat}",
        f"- Large files: {p.large_count} × {p.large_mib} MiB",
        f"- Work directory (trees, server homes): {bench.info.get('workdir_fs', 'unknown')}; "
        f"the server's sessions are gone and {SETTLE:g} s have passed before each run starts; "
        "asyncmirror runs byte-compiled, as `pip install` leaves it",
        f"- Scale: {p.scale_files} tiny files"
        + (f" ({bench.info['scale']['dirs']} directories)" if "scale" in bench.info else ""),
        "- Commands: `asyncmirror SRC DST -j {0} -X '.*' -X '.*/' --ca-file CA --no-progress`; "
        "lftp `-f` script: `set ftp:ssl-auth TLS; set ftp:ssl-force yes; set ftp:use-feat no; "
        "set ssl:ca-file CA; set ssl:check-hostname {1}; set net:max-retries 5; "
        "set net:timeout 60; open --env-password -u USER ftp://HOST:PORT; "
        "mirror -R --only-newer -P {0} -X .* -X .*/ SRC DST`".format(
            p.jobs, "yes" if bench.check_hostname else "no"
        ),
        "",
        "## Results (medians)",
        "",
        "Ratios are asyncmirror / lftp: below 1 is better for times, CPU and memory; above 1 "
        "is better for files/s and MB/s. *Uploads* is what the server's transfer log recorded.",
        "",
        "| Scenario | Tool | Wall (s) | Files/s | MB/s | CPU (s) | Peak RSS (MB) | Uploads |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for scenario, row in summary.items():
        for i, tool in enumerate(TOOLS):
            m = row[tool]
            lines.append(
                f"| {SCENARIOS[scenario] if i == 0 else ''} | {tool} | {_fmt(m['wall'])} | "
                f"{_fmt(m['files_per_s'], 1)} | {_fmt(m['mb_per_s'])} | {_fmt(m['cpu'])} | "
                f"{_fmt(m['rss_mb'], 1)} | {m['stors']:.0f} |"
            )
        r = {k: _times(v) for k, v in row["ratio"].items()}
        lines.append(
            f"| | **asyncmirror / lftp** | **{r['wall']}** | {r['files_per_s']} | "
            f"{r['mb_per_s']} | {r['cpu']} | {r['rss_mb']} | |"
        )
    lines += [
        "",
        "For the dry run, *Uploads* is 0 by definition (nothing is sent); MB/s there is the "
        "size of what would be uploaded divided by the time.",
        "",
        "![ratios](ratios.png)",
        "",
        "## Targets",
        "",
        "| Target | Measured | Status |",
        "| --- | ---: | --- |",
    ]
    for t in targets:
        if t.value is None:
            measured, status = "–", "not run"
        else:
            measured = f"{t.value:.1f} MB" if t.metric == "am_rss_mb" else f"{t.value:.3f}×"
            status = "met" if t.met else "**not met**"
            if not t.applies:
                status += f" (but not at the target's conditions: {t.why_not})"
        lines.append(f"| {t.text} | {measured} | {status} |")
    if bench.planner:
        pl = bench.planner
        lines += [
            "",
            "## Planning in-process (no network)",
            "",
            f"`asyncmirror.planner.make_plan` on {pl['local_files']} local files "
            f"(`LocalFile`) against a remote listing of {pl['remote_files']} files "
            f"(`RemoteFile`), 1% of them older on the server: {pl['uploads']} uploads, "
            f"{pl['skipped']} skipped.",
            "",
            f"- Time: {pl['seconds'] * 1000:.0f} ms (median of {len(pl['runs'])})",
            f"- tracemalloc peak during `make_plan`: {pl['peak_bytes'] / MB:.1f} MB "
            f"(the input trees themselves: {pl['inputs_bytes'] / MB:.1f} MB)",
        ]
    lines += [
        "",
        "## Every run",
        "",
        "| Scenario | Tool | Repeat | Wall (s) | CPU user+sys (s) | Peak RSS (MB) | "
        "Uploads | State-file uploads | Proxy CPU (s) | ProFTPD CPU (s) | Other CPU (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in sorted(
        bench.samples,
        key=lambda s: (list(SCENARIOS).index(s.scenario), TOOLS.index(s.tool), s.repeat),
    ):
        lines.append(
            f"| {SCENARIOS[s.scenario]} | {s.tool} | {s.repeat} | {s.wall:.2f} | "
            f"{s.user:.2f}+{s.sys:.2f} | {s.rss_mb:.1f} | {s.stors} | "
            f"{s.own_stors} | {s.proxy_cpu:.2f} | {s.server_cpu:.2f} | {s.other_cpu:.2f} |"
        )
    lines += [
        "",
        "*Uploads* counts files of the tree; *State-file uploads* counts asyncmirror's "
        "`.asyncmirror-state.json` (its record of what it uploaded, kept in DST and "
        "allowed there by the tree check). "
        "Proxy CPU and ProFTPD CPU are what the delay proxy and the server (its master "
        "process and the sessions it reaped) used during the run; *Other CPU* is the rest "
        "of the machine's busy time during the run (this script, the kernel's softirq work, "
        "and any other process): large values there mean the machine was not quiet. "
        f"This machine has {env['nproc']} CPUs for the tool, the proxy and ProFTPD together.",
        "",
        machine_load_line(bench.samples),
    ]
    if bench.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in bench.notes]
    (out / "RESULTS.md").write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------
# main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark asyncmirror against lftp 4.9.2 on a real ProFTPD with an "
        "emulated WAN round trip."
    )
    p.add_argument("--files", type=int, default=2000, help="files in the website tree (2000)")
    p.add_argument("--seed", type=int, default=1, help="tree seed (1)")
    p.add_argument(
        "--rtt", type=float, default=50.0, metavar="MS", help="emulated round-trip time in ms (50)"
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="K",
        help="runs per scenario; medians are reported (3)",
    )
    p.add_argument("-j", "--jobs", type=int, default=8, help="parallel connections, both tools (8)")
    p.add_argument("--large-count", type=int, default=2, help="large files (2; 0 skips)")
    p.add_argument("--large-mib", type=int, default=64, help="size of each large file (64 MiB)")
    p.add_argument(
        "--large-repeat",
        type=int,
        default=9,
        metavar="K",
        help="runs of the large-file scenario, which is short and noisy (9)",
    )
    p.add_argument(
        "--scale-files",
        type=int,
        default=100_000,
        help="files in the dry-run scale tree (100000; 0 skips)",
    )
    p.add_argument(
        "--no-connect-delay",
        dest="connect_delay",
        action="store_false",
        help="do not charge a round trip for each TCP handshake through the proxy",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="bound on each tool run (900)",
    )
    p.add_argument(
        "--output",
        default=str(HERE),
        metavar="DIR",
        help="where RESULTS.md, ratios.png and results.json go (benchmarks/)",
    )
    p.add_argument("--workdir", metavar="DIR", help="parent of the temporary work directory")
    p.add_argument("--keep", action="store_true", help="keep the work directory (trees, logs)")
    p.add_argument(
        "--from-json",
        metavar="FILE",
        help="run nothing: write RESULTS.md and ratios.png again from a results.json",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="first wait (at most this long) until other processes use under 0.25 CPU",
    )
    args = p.parse_args(argv)
    if args.files < 1 or args.repeat < 1 or args.jobs < 1:
        p.error("--files, --repeat and --jobs must be at least 1")
    return args


def _on_signal(signum: int, frame: object) -> None:
    for pid in list(_current_child):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    raise Interrupted(f"signal {signum}")


@dataclass
class Rendered:
    """What write_results needs, loaded back from results.json."""

    params: Params
    info: dict[str, Any]
    notes: list[str]
    planner: dict[str, Any]
    samples: list[Sample]
    check_hostname: bool


def render_from_json(path: Path, out: Path) -> int:
    raw = json.loads(path.read_text())
    fields = set(Sample.__dataclass_fields__)
    samples = [Sample(**{k: v for k, v in s.items() if k in fields}) for s in raw["samples"]]
    info = raw["info"]
    params = Params(**raw["params"])
    name_scenarios(params.large_count, params.large_mib, params.scale_files)
    bench = Rendered(
        params,
        info,
        raw["notes"],
        raw["planner"],
        samples,
        bool(info.get("lftp_check_hostname", True)),
    )
    summary = summarize(samples)
    targets = evaluate_targets(summary, bench.params)
    started = dt.datetime.fromisoformat(raw["started"])
    write_results(
        bench, summary, targets, raw["environment"], out, started, raw["elapsed_s"], raw["command"]
    )
    write_chart(summary, targets, out / "ratios.png", chart_title(bench.params, info))
    print(f"wrote {out / 'RESULTS.md'} and {out / 'ratios.png'} from {path}", file=sys.stderr)
    return 0


def chart_title(params: Params, info: dict[str, Any]) -> str:
    return (
        f"asyncmirror / lftp, {info['site']['files']} files, {params.rtt:g} ms RTT, "
        f"-j {params.jobs}, medians of {params.repeat} (ProFTPD 1.3.8, FTPS)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        return render_from_json(Path(args.from_json), Path(args.output))
    command = "python3 benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    command = command.strip()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    env = environment()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with contextlib.ExitStack() as stack:
        bench = Bench(args, stack)
        try:
            if args.wait_quiet > 0 and not wait_quiet(args.wait_quiet, bench.say):
                bench.notes.append(
                    f"the machine was still busy after waiting {args.wait_quiet:g} min for it "
                    "to be quiet (see Other CPU)"
                )
            started = dt.datetime.now(dt.UTC)  # the time spent waiting does not count
            t0 = time.monotonic()
            bench.setup()
            bench.run()
        except BenchError as exc:
            print(f"\nBENCHMARK FAILED: {exc}\n", file=sys.stderr, flush=True)
            if args.keep:
                print(f"(work directory kept: {bench.work})", file=sys.stderr)
            return 1
        except Interrupted as exc:
            print(f"\nbenchmark interrupted ({exc}); cleaning up", file=sys.stderr)
            return 130
        finally:
            bench.say("stopping servers and proxy, removing temporary files")
    elapsed = time.monotonic() - t0
    summary = summarize(bench.samples)
    targets = evaluate_targets(summary, bench.params)
    env["asyncmirror"] += f" ({bench.git}; source fingerprint {bench.fingerprint})"
    if source_fingerprint(bench.source_dir) != bench.fingerprint:
        bench.notes.append(
            f"asyncmirror's source in {bench.source_dir} changed while the benchmark ran; "
            "every run used the copy taken at the start (the version named above)"
        )
    write_results(bench, summary, targets, env, out, started, elapsed, command)
    write_chart(summary, targets, out / "ratios.png", chart_title(bench.params, bench.info))
    raw = {
        "command": command,
        "started": started.isoformat(),
        "elapsed_s": elapsed,
        "environment": env,
        "params": asdict(bench.params),
        "info": bench.info,
        "notes": bench.notes,
        "summary": summary,
        "targets": [
            {
                "text": t.text,
                "value": t.value,
                "limit": t.limit,
                "op": t.op,
                "met": t.met,
                "applies": t.applies,
            }
            for t in targets
        ],
        "planner": bench.planner,
        "samples": [asdict(s) | {"cpu": s.cpu, "rss_mb": s.rss_mb} for s in bench.samples],
    }
    (out / "results.json").write_text(json.dumps(raw, indent=1, default=str) + "\n")
    print_summary(summary, targets)
    print(
        f"\nwrote {out / 'RESULTS.md'}, {out / 'ratios.png'}, {out / 'results.json'}",
        file=sys.stderr,
    )
    return 0


def print_summary(summary: dict[str, dict[str, Any]], targets: list[Target]) -> None:
    print(
        f"\n{'scenario':<36} {'tool':<11} {'wall s':>8} {'files/s':>8} {'MB/s':>7} "
        f"{'cpu s':>7} {'rss MB':>7} {'uploads':>7}"
    )
    for scenario, row in summary.items():
        for tool in TOOLS:
            m = row[tool]
            print(
                f"{SCENARIOS[scenario]:<36} {tool:<11} {m['wall']:8.2f} "
                f"{m['files_per_s']:8.1f} {m['mb_per_s']:7.2f} {m['cpu']:7.2f} "
                f"{m['rss_mb']:7.1f} {m['stors']:7.0f}"
            )
        r = row["ratio"]
        print(
            f"{'':<36} {'ratio':<11} {r['wall']:8.2f} {r['files_per_s']:8.2f} "
            f"{r['mb_per_s']:7.2f} {r['cpu']:7.2f} {r['rss_mb']:7.2f}"
        )
    print()
    for t in targets:
        state = "not run" if t.met is None else ("met" if t.met else "NOT MET")
        if t.value is not None and not t.applies:
            state += " (not at the target's conditions)"
        print(f"  {t.text}: {'' if t.value is None else f'{t.value:.2f}'} {state}")


if __name__ == "__main__":
    sys.exit(main())
