"""``--rollback`` takes DST's deploy lock, as a deploy does, and holds it across the burst.

Against ProFTPD: a rollback meeting another run's lock renames nothing and names
the holder; it waits with ``--lock-wait``, takes over with ``--break-lock``, and
leaves no lock anywhere once done -- neither in the live DST nor in the release
it rolled away from -- also when it is stopped with SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from asyncmirror.deploylock import LOCK_DIR, Holder
from asyncmirror.names import STATE_NAME
from tests.integration.test_swap import (
    ALONG,
    SERVER_ONLY,
    V0,
    V1,
    V2,
    give_to_ftp_user,
    read_tree,
    write_tree,
)
from tests.servers.common import client_env, reap
from tests.servers.proftpd import ProftpdServer, RemoteDir, start_proftpd

TIMEOUT = 90


class Site(NamedTuple):
    """A DST deployed twice with ``--swap``: v2 live, v1 the previous release."""

    server: ProftpdServer
    name: str
    live: Path
    prev: Path
    out: Path

    def releases(self) -> dict[str, dict[str, bytes | None]]:
        """Every entry of both releases, asyncmirror's own included: nothing may change."""
        return {"live": everything(self.live), "prev": everything(self.prev)}

    def siblings(self) -> list[str]:
        return sorted(p.name for p in self.live.parent.iterdir() if self.name in p.name)

    def locked(self) -> list[str]:
        """Which of DST and the releases beside it hold a deploy lock."""
        places = {"live": self.live, "prev": self.prev, "out": self.out}
        return [k for k, path in places.items() if (path / LOCK_DIR).exists()]


def everything(root: Path) -> dict[str, bytes | None]:
    """Each path under ``root`` with its bytes (``None`` for a directory)."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirs:
            out[os.path.normpath(os.path.join(rel, name))] = None
        for name in files:
            out[os.path.normpath(os.path.join(rel, name))] = Path(dirpath, name).read_bytes()
    return out


def deployed_twice(server: ProftpdServer, name: str, tmp_path: Path) -> Site:
    """A site put there by another tool, then deployed with --swap as v1 and as v2."""
    live = server.home / name
    write_tree(live, {**V0, **SERVER_ONLY}, mtime=1_600_000_000)
    give_to_ftp_user(live, server.home)
    for version, files in (("v1", V1), ("v2", V2)):
        write_tree(tmp_path / version, files)
        proc = run_cli(server, tmp_path / version, f"/{name}", "--swap")
        assert proc.returncode == 0, proc.stderr
    site = Site(
        server,
        name,
        live,
        live.parent / f".htasyncmirror-prev.{name}",
        live.parent / f".htasyncmirror-out.{name}",
    )
    assert read_tree(site.live) == {**V2, **ALONG}
    assert read_tree(site.prev) == V1
    assert site.locked() == []
    return site


def run_cli(server: ProftpdServer, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        env=client_env(server),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "asyncmirror.cli", *map(str, args), "--no-progress", "--json"]


def start(server: ProftpdServer, *args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(*args),
        env=client_env(server),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def plant(site: Site, holder: Holder) -> Path:
    """DST's lock as another run takes it: the directory, and its holder entry inside."""
    st = site.server.home.stat()
    lock = site.live / LOCK_DIR
    (lock / holder.name()).mkdir(parents=True)
    for path in (lock, lock / holder.name()):
        os.chown(path, st.st_uid, st.st_gid)
    return lock


def wait_until(
    what: str, done: Callable[[], object], *, within: float = 60.0, pause: float = 0.01
) -> None:
    """Poll ``done()`` every ``pause`` seconds until it is true, at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(pause)


def busy_holder() -> Holder:
    """Another machine's run, started a minute ago: neither stale nor known to be gone."""
    return Holder("ci-elsewhere", 4242, time.time() - 60, "0.1.0", "busy-run")


@pytest.fixture
def site(tmp_path: Path, proftpd: ProftpdServer, remote_dir: RemoteDir) -> Site:
    return deployed_twice(proftpd, remote_dir.name, tmp_path)


def test_a_rollback_while_another_run_holds_the_lock_names_it_and_renames_nothing(
    site: Site,
) -> None:
    plant(site, busy_holder())
    before, siblings = site.releases(), site.siblings()

    proc = run_cli(site.server, "--rollback", f"/{site.name}")

    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        "asyncmirror: error: another deploy to this DST is running: "
        "host ci-elsewhere (pid 4242), started "
    ), lines[0]
    assert "--lock-wait" in lines[0]
    assert proc.stdout.strip() == "", "a refused rollback reports nothing done"
    assert site.releases() == before, "both releases must stay exactly as they were"
    assert site.siblings() == siblings
    assert site.locked() == ["live"], "the other run's lock is its own"


def test_with_lock_wait_a_rollback_waits_for_the_lock_then_rolls_back(site: Site) -> None:
    lock = plant(site, busy_holder())
    before = site.releases()
    proc = start(site.server, "--rollback", f"/{site.name}", "--lock-wait", "60")
    try:
        assert proc.stderr is not None
        waiting = proc.stderr.readline()  # the note comes before the first pause
        assert "waiting up to 60 s for the deploy lock: host ci-elsewhere" in waiting, waiting
        assert site.releases() == before, "nothing may be renamed while it waits"
        for entry in lock.iterdir():  # the other run is done
            entry.rmdir()
        lock.rmdir()
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        reap(proc)
    assert proc.returncode == 0, err
    assert "rolled back" in err, err
    assert json.loads(out)["failed"] == []
    assert read_tree(site.live) == {**V1, **ALONG}
    assert read_tree(site.prev) == V2
    assert site.locked() == []


def test_a_rollback_holds_the_lock_across_the_burst_and_leaves_none_behind(site: Site) -> None:
    proc = run_cli(site.server, "--rollback", f"/{site.name}", "--debug")

    assert proc.returncode == 0, proc.stderr
    assert read_tree(site.live) == {**V1, **ALONG}
    assert read_tree(site.prev) == V2
    assert site.locked() == [], "no lock may stay in DST or in the release left"
    assert site.siblings() == sorted([site.name, site.prev.name])
    sent = [ln[3:] for ln in proc.stderr.splitlines() if ln.startswith("-> ")]
    live, prev = f"/{site.name}", f"/{site.prev.name}"
    taken = sent.index(f"MKD {live}/{LOCK_DIR}")
    copied = sent.index(f"MKD {prev}/{LOCK_DIR}")  # goes live with the previous release
    burst = [i for i, ln in enumerate(sent) if ln.startswith(("RNFR ", "RNTO "))]
    released = sent.index(f"RMD {live}/{LOCK_DIR}")
    assert taken < sent.index(f"RETR {live}/{STATE_NAME}"), "the lock comes before reading DST"
    assert taken < copied < burst[0], sent
    assert burst[-1] < released, sent


def test_break_lock_takes_the_lock_over_and_rolls_back(site: Site) -> None:
    plant(site, busy_holder())

    proc = run_cli(site.server, "--rollback", f"/{site.name}", "--break-lock")

    assert proc.returncode == 0, proc.stderr
    assert "taking over the deploy lock (--break-lock) from host ci-elsewhere (pid 4242)" in (
        proc.stderr
    )
    assert read_tree(site.live) == {**V1, **ALONG}
    assert read_tree(site.prev) == V2
    assert site.locked() == []


# --- against a run in progress, and a stop ---------------------------------------------


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProftpdServer]:
    """ProFTPD taking uploads at 128 KB/s and sending files past their first 4 KB at 1 KB/s
    per session: a deploy lasts seconds, and a large state file holds a rollback up."""
    server = start_proftpd(
        tmp_path_factory.mktemp("throttled"),
        extra_config="TransferRate STOR 128\nTransferRate RETR 1:4096",
    )
    try:
        yield server
    finally:
        server.stop()


def test_a_rollback_during_a_swap_deploy_exits_1_naming_it_and_nothing_interleaves(
    throttled: ProftpdServer, tmp_path: Path
) -> None:
    site = deployed_twice(throttled, "www-during-deploy", tmp_path)
    # v2 and four large pages: the whole of v2 is in SRC, so none of it moves along.
    v3 = {**V2, **{f"page{i}.html": bytes([i]) * 400_000 for i in range(4)}}
    write_tree(tmp_path / "v3", v3)

    deploy = start(throttled, tmp_path / "v3", f"/{site.name}", "--swap", "-j", "2")
    try:
        # Each of its two sessions has seconds of throttled uploads ahead.
        wait_until("the deploy takes the lock", lambda: site.locked() or deploy.poll() is not None)
        assert site.locked() == ["live"], "the deploy ended before it took the lock"
        rollback = run_cli(throttled, "--rollback", f"/{site.name}")
        out, err = deploy.communicate(timeout=TIMEOUT)
    finally:
        reap(deploy)
    assert rollback.returncode == 1, rollback.stderr
    assert f"another deploy to this DST is running: host {socket.gethostname()} " in (
        rollback.stderr
    )
    assert f"(pid {deploy.pid})" in rollback.stderr, rollback.stderr
    assert deploy.returncode == 0, err
    assert json.loads(out)["uploaded"] >= 4, out
    assert read_tree(site.live) == {**v3, **ALONG}
    assert read_tree(site.prev) == V2
    assert site.locked() == []


def test_a_rollback_stopped_by_sigterm_while_it_holds_the_lock_removes_it(
    throttled: ProftpdServer, tmp_path: Path
) -> None:
    site = deployed_twice(throttled, "www-stopped", tmp_path)
    # A state file far larger than the first 4 KB that go at full speed: reading it takes
    # minutes, and the rollback reads it holding the lock, before any rename.
    state = site.live / STATE_NAME
    state.write_bytes(b" " * 200_000 + state.read_bytes())
    before, siblings = site.releases(), site.siblings()

    proc = start(throttled, "--rollback", f"/{site.name}", "--debug")
    try:
        # Signalled the moment its holder entry is on disk: the server's 257 is on its
        # way then, and a stop that lands as a reply arrives must not be lost.
        wait_until(
            "the rollback holds the lock",
            lambda: any(p.name.startswith(".htholder.") for p in (site.live / LOCK_DIR).glob("*")),
            pause=0,
        )
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        reap(proc)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().endswith("asyncmirror: stopped by SIGTERM"), err
    assert site.locked() == [], "the stop must remove the lock"
    assert site.releases() == before
    assert site.siblings() == siblings


def test_a_swap_killed_before_the_switch_leaves_the_live_site_byte_identical(
    throttled: ProftpdServer, tmp_path: Path
) -> None:
    site = deployed_twice(throttled, "www-killed", tmp_path)
    before = everything(site.live)
    v3 = {**V2, **{f"page{i}.html": bytes([i]) * 400_000 for i in range(4)}}
    write_tree(tmp_path / "v3", v3)
    staging = site.live.parent / f".htasyncmirror-next.{site.name}"

    deploy = start(throttled, tmp_path / "v3", f"/{site.name}", "--swap", "-j", "2")
    try:
        wait_until(
            "an upload into the staging copy has begun",
            lambda: any(staging.glob("page*.html")) or deploy.poll() is not None,
        )
        assert deploy.poll() is None, "the deploy ended before it could be killed"
        deploy.kill()  # SIGKILL: no clean-up of any kind
        deploy.communicate(timeout=TIMEOUT)
    finally:
        reap(deploy)

    # The live site is exactly as it was; only the dead run's lock was added to it.
    after = {p: d for p, d in everything(site.live).items() if not p.startswith(LOCK_DIR)}
    assert after == before
    assert staging.is_dir(), "the staging copy is kept for the next try"
    # The next deploy takes the dead run's lock over and finishes the release.
    again = run_cli(throttled, tmp_path / "v3", f"/{site.name}", "--swap", "-j", "2")
    assert again.returncode == 0, again.stderr
    assert read_tree(site.live) == {**v3, **ALONG}
    assert read_tree(site.prev) == V2
    assert site.locked() == []
