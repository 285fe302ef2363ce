"""The two tools compared: asyncmirror's command and lftp's script, the users' recipe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.errors import BenchError
from benchmarks.measuring import ChildResult, run_measured, tail
from tests.servers.proftpd import ProftpdServer

EXCLUDES = (".*", ".*/")  # the users' recipe: -X '.*' -X '.*/'
#: What asyncmirror keeps in DST besides the mirrored files (allowed by the tree check).
STATE_FILES = {"asyncmirror": frozenset({".htasyncmirror-state.json"}), "lftp": frozenset()}


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
        verify: bool = False,
    ) -> ChildResult:
        """Run ``tool`` once; ``verify`` (asyncmirror only) compares contents."""
        if verify and tool != "asyncmirror":
            raise BenchError("only asyncmirror has --verify")
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
            if verify:
                argv.append("--verify")
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
