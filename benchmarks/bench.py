"""One benchmark: the work directory, trees, servers and tools, and measuring one run."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import treegen
from benchmarks.errors import BenchError
from benchmarks.machine import (
    default_workdir,
    filesystem_of,
    machine_busy_cpu,
    proc_cpu,
    proc_tree_cpu,
)
from benchmarks.measuring import GNU_TIME
from benchmarks.network import (
    PASSIVE_RANGE,
    PROXY_HOST,
    SETTLE,
    Proxy,
    loopback_alias_usable,
    remote_path,
    retr_count,
    start_wan,
    stor_counts,
)
from benchmarks.results import MIB, SCENARIOS, Params, Sample, name_scenarios
from benchmarks.snapshot import (
    check_snapshot_used,
    git_state,
    installed_package_dir,
    snapshot_asyncmirror,
    source_fingerprint,
)
from benchmarks.tools import Tools, asyncmirror_argv, lftp_hostname_check_works
from tests.servers.proftpd import ProftpdServer, start_proftpd


class Bench:
    """One benchmark run: sets up the work directory, trees, servers and tools, measures
    each tool run into ``samples``, and holds what the report needs (``params``, ``info``,
    ``notes``, ``planner``).  The scenarios (``scenarios.py``) drive it."""

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
            args.startup_files,
            args.startup_repeat,
        )
        name_scenarios(args.large_count, args.large_mib, args.scale_files, args.startup_files)
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
        self.snapshot = snapshot  # the in-process planner imports it too
        self.tools = Tools(
            self.work / "client", a.jobs, a.timeout, lftp, asyncmirror_argv(), str(snapshot)
        )
        check_snapshot_used(self.tools, snapshot)
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
            treegen.write_content(p, a.seed, 10_000_000 + i, a.large_mib * MIB)
            os.utime(p, (treegen.BASE_MTIME, treegen.BASE_MTIME))
        if a.startup_files:
            self.startup = treegen.generate(self.work / "startup", a.startup_files, a.seed)

        self.say("starting ProFTPD (wan: behind the delay proxy; direct: no delay)")
        self.wan, self.proxy = start_wan(
            self.work, a.rtt, a.connect_delay, self.logs / "delayproxy.log", self.stack
        )
        self.stack.callback(self._stop_proxy, self.proxy)
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

    def _stop_proxy(self, proxy: Proxy) -> None:
        self.info["proxy_final"] = proxy.stop()

    # -- one run ----------------------------------------------------------------

    def log_path(self, tool: str, scenario: str, rep: int) -> Path:
        """Where ``measure`` keeps the output of one run."""
        return self.logs / f"{scenario}-{tool}-r{rep}.log"

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
        verify: bool = False,
        record: bool = True,
    ) -> Sample:
        """Run ``tool`` once, check nothing, and return (with ``record``: keep) the sample."""
        host, port = (PROXY_HOST, server.port) if via_proxy else (server.host, server.port)
        log = self.log_path(tool, scenario, rep)
        before = stor_counts(server, name)
        retrs_before = retr_count(server, name)
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
            verify=verify,
        )
        busy = machine_busy_cpu() - busy_before
        proxy_cpu = proc_cpu(self.proxy.pid) - proxy_before
        # Let ProFTPD reap the run's sessions: their CPU then counts here, and the next
        # run starts on an idle server.
        server.wait_sessions_gone(timeout=5.0)
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
            retr_count(server, name) - retrs_before,
        )
        if record:
            self.samples.append(sample)
        self.say(
            f"  {SCENARIOS[scenario] if record else 'set-up':<36} {tool:<11} {sample.wall:7.2f} s  "
            f"cpu {sample.cpu:6.2f} s  rss {sample.rss_mb:6.1f} MB  uploads {sample.stors}"
            + (f"  downloads {sample.retrs}" if sample.retrs else "")
        )
        return sample
