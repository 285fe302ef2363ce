"""asyncmirror against a real ProFTPD behind a fault-injecting proxy (control AND data ports).

Every test checks the end state on the server's disk (each file byte for byte against the
local one, nothing partial left), the exit code and report, and the message -- and that
the fault it is about really took effect (the fault's own ``done`` count), so that a
test whose fault never happened fails instead of passing for nothing.

The proxy (``servers.faultproxy``) is a TLS man-in-the-middle on 127.0.0.3 in front of a
ProFTPD that requires TLS session reuse and masquerades as 127.0.0.3 in its PASV/EPSV
replies, so data connections go through the proxy too.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import xxhash

from asyncmirror import Events, Report, mirror
from asyncmirror.planner import Plan
from tests.integration.treebuilders import is_own, snapshot
from tests.servers.common import reap
from tests.servers.faultproxy import (
    CONNECT,
    LISTINGS,
    Answer,
    Call,
    Cut,
    CutControl,
    DropControl,
    FakePlainServer,
    Fault,
    FaultProxy,
    Inject,
    Refuse,
    Replace,
    Restart,
    Silence,
    Stall,
    Truncate,
    fault_server,
)
from tests.servers.proftpd import ProftpdServer

TEMP_PREFIX = ".htasyncmirror-tmp-"
# Maximum total backoff of N retries (RetryPolicy.delay: at most 0.25 * 2**(n-1), cap 8).
_BACKOFF_CAP = 8.0


def max_backoff(retries: int) -> float:
    return sum(min(_BACKOFF_CAP, 0.25 * 2 ** (n - 1)) for n in range(1, retries + 1))


# --- fixtures ---------------------------------------------------------------------------


@dataclass
class Faulty:
    server: ProftpdServer
    proxy: FaultProxy

    @property
    def address(self) -> str:
        return f"{self.proxy.host}:{self.proxy.port}"


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faulty]:
    with fault_server(tmp_path_factory.mktemp("faultftp")) as (server, proxy):
        yield Faulty(server, proxy)


@pytest.fixture
def ftp(faulty: Faulty) -> Iterator[Faulty]:
    """The server and a proxy with no faults and fresh counters."""
    _settle(faulty.proxy)
    faulty.proxy.reset()
    yield faulty
    faulty.proxy.reset()
    _settle(faulty.proxy)


def _settle(proxy: FaultProxy) -> None:
    deadline = time.monotonic() + 10
    while proxy.restarting and time.monotonic() < deadline:
        time.sleep(0.05)


# --- helpers ----------------------------------------------------------------------------


@dataclass
class Remote:
    name: str  # DST as given to asyncmirror (relative to the FTP home)
    path: Path  # the same directory on the server's disk


def fresh_remote(ftp: Faulty, label: str) -> Remote:
    name = f"t-{label}-{uuid.uuid4().hex[:8]}"
    remote = Remote(name, ftp.server.home / name)
    assert not remote.path.exists()
    return remote


def make_tree(root: Path, sizes: dict[str, int], seed: int = 1) -> dict[str, bytes]:
    rng = random.Random(seed)
    out = {}
    for rel, size in sizes.items():
        data = rng.randbytes(size)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out[rel] = data
    return out


def plant(ftp: Faulty, remote: Remote, rel: str, data: bytes, mtime: float = 1_600_000_000) -> None:
    """Put a file on the server's disk behind its back, owned by the FTP user, old mtime."""
    st = ftp.server.home.stat()
    path = remote.path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    for p in [path, *path.relative_to(remote.path).parents]:
        os.chown(remote.path / p, st.st_uid, st.st_gid)
    os.chown(remote.path, st.st_uid, st.st_gid)


def server_files(remote: Remote) -> dict[str, bytes]:
    """Every file in DST on the server's disk, asyncmirror's own files left out."""
    return snapshot(remote.path, skip_own=True) if remote.path.exists() else {}


def leftovers(remote: Remote) -> list[str]:
    """Temporary upload names left anywhere under DST."""
    if not remote.path.exists():
        return []
    return sorted(
        str(p.relative_to(remote.path))
        for p in remote.path.rglob("*")
        if p.name.startswith(TEMP_PREFIX)
    )


def incomplete_uploads(ftp: Faulty, remote: Remote) -> list[str]:
    """Uploads into DST that ProFTPD logged as incomplete (proof that a partial existed)."""
    time.sleep(0.3)  # the session process writes the TransferLog line
    prefix = remote.name + "/"
    return [
        r.path
        for r in ftp.server.transfers()
        if r.direction == "i" and not r.completed and r.path.startswith(prefix)
    ]


@dataclass
class CliRun:
    rc: int
    out: str
    err: str
    elapsed: float
    report: dict[str, Any] = field(default_factory=dict)


def cli_command(
    ftp: Faulty | None,
    src: Path,
    dst: str,
    *args: str,
    env: dict[str, str] | None = None,
    json_report: bool = True,
) -> tuple[list[str], dict[str, str]]:
    """argv and environment of ``asyncmirror SRC DST ARGS`` against ``ftp`` (its CA trusted)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FTP_")}
    if ftp is not None:
        full_env.update(
            FTP_SERVER=ftp.address,
            FTP_USERNAME=ftp.server.user,
            FTP_PASSWORD=ftp.server.password,
        )
    full_env.update(env or {})
    argv = [sys.executable, "-m", "asyncmirror.cli", str(src), dst, "--no-progress", *args]
    if ftp is not None and "--ca-file" not in args:
        argv += ["--ca-file", str(ftp.server.ca_file)]
    if json_report:
        argv.append("--json")
    return argv, full_env


def run_cli(
    ftp: Faulty | None,
    src: Path,
    dst: str,
    *args: str,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    json_report: bool = True,
) -> CliRun:
    """``asyncmirror SRC DST ARGS --json`` in a subprocess; the timeout is the hang guard."""
    argv, full_env = cli_command(ftp, src, dst, *args, env=env, json_report=json_report)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            argv, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"asyncmirror hung: no exit within {timeout} s; stderr so far:\n"
            f"{(exc.stderr or b'')[-3000:]!r}"
        )
    elapsed = time.monotonic() - started
    report: dict[str, Any] = {}
    if json_report and proc.stdout.strip().startswith("{"):
        report = json.loads(proc.stdout)
    return CliRun(proc.returncode, proc.stdout, proc.stderr, elapsed, report)


def describe(run: CliRun, proxy: FaultProxy | None = None) -> str:
    extra = f"\nfaults:\n{proxy.describe()}" if proxy is not None else ""
    return f"rc={run.rc} in {run.elapsed:.1f} s\nstderr:\n{run.err[-4000:]}{extra}"


def assert_mirrored(src_files: dict[str, bytes], remote: Remote, run: CliRun | None = None) -> None:
    context = f"\n{describe(run)}" if run is not None else ""
    on_server = server_files(remote)
    assert sorted(on_server) == sorted(src_files), f"different file sets on the server{context}"
    bad = [p for p, data in src_files.items() if on_server[p] != data]
    assert not bad, f"files differ on the server (truncated or stale): {bad}{context}"
    left = leftovers(remote)
    assert not left, f"temporary files left on the server: {left}{context}"


# --- data connections reset mid-transfer ---------------------------------------------


def test_data_connections_reset_every_third_are_retried_to_a_byte_identical_tree(
    ftp: Faulty, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    files = make_tree(
        src, {f"d{i % 3}/f{i:02d}.bin": 96_000 + 1000 * i for i in range(12)} | {"x.txt": 10}
    )
    remote = fresh_remote(ftp, "cut3")
    cut = Fault("STOR", Cut(after=16_384), every=3)
    ftp.proxy.inject(cut)

    run = run_cli(ftp, src, remote.name, "-j", "4", "--timeout", "5", "--retries", "5")

    assert run.rc == 0, describe(run, ftp.proxy)
    assert cut.done >= 3, describe(run, ftp.proxy)
    assert run.report["retries"] > 0, run.report
    assert run.report["uploaded"] == len(files)
    assert run.report["failed"] == []
    assert_mirrored(files, remote, run)
    # The resets really left partial files on the server at the time (then replaced).
    assert incomplete_uploads(ftp, remote)


def test_a_large_file_cut_mid_transfer_is_resent_and_its_state_digest_is_right(
    ftp: Faulty, tmp_path: Path
) -> None:
    """A cut transfer's partial digest must not reach the state: the retry hashes the
    file from its first byte again, and the state gets the digest of the real bytes."""
    src = tmp_path / "site"
    files = make_tree(src, {"media/big.bin": 5 * 1024 * 1024 + 77_777, "a.txt": 50})
    remote = fresh_remote(ftp, "bigcut")
    cut = Fault("STOR", Cut(after=1 << 20), name="big.bin", times=1)
    ftp.proxy.inject(cut)

    run = run_cli(ftp, src, remote.name, "-j", "2", "--timeout", "5", "--retries", "3")

    assert run.rc == 0, describe(run, ftp.proxy)
    assert cut.done == 1, describe(run, ftp.proxy)
    assert run.report["retries"] == 1, run.report
    assert_mirrored(files, remote, run)
    state = json.loads((remote.path / ".htasyncmirror-state.json").read_bytes())["files"]
    assert state["media/big.bin"]["xxh3_128"] == xxhash.xxh3_128(files["media/big.bin"]).hexdigest()


# --- control connection dropped --------------------------------------------------------


def test_control_connection_dropped_mid_run_reconnects_and_finishes(
    ftp: Faulty, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {f"p/f{i:02d}.html": 3000 + 500 * i for i in range(16)})
    remote = fresh_remote(ftp, "ctrl")
    # The connection carrying the 3rd and the 6th STOR is reset (before it is forwarded)...
    drop = Fault("STOR", DropControl(), every=3, times=2)
    # ...and every control connection at once while verification replies are in flight.
    drop_all = Fault("SIZE", DropControl(every_connection=True), every=5, times=1)
    ftp.proxy.inject(drop, drop_all)

    run = run_cli(ftp, src, remote.name, "-j", "3", "--timeout", "5", "--retries", "5")

    assert run.rc == 0, describe(run, ftp.proxy)
    assert drop.done == 2, describe(run, ftp.proxy)
    assert drop_all.done >= 1, describe(run, ftp.proxy)
    assert ftp.proxy.control_connections > 3  # sessions were replaced
    assert run.report["failed"] == []
    assert run.report["uploaded"] == len(files)
    assert_mirrored(files, remote, run)


# --- 421 beyond N connections ----------------------------------------------------------


def test_421_beyond_three_connections_shrinks_the_pool_and_says_so_once(
    ftp: Faulty, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {f"f{i:02d}.txt": 2000 + 100 * i for i in range(20)})
    remote = fresh_remote(ftp, "421")
    refuse = Fault(CONNECT, Refuse(beyond=3))
    ftp.proxy.inject(refuse)

    run = run_cli(ftp, src, remote.name, "-j", "8", "--timeout", "5", "--retries", "4")

    assert run.rc == 0, describe(run, ftp.proxy)
    assert refuse.done >= 5, describe(run, ftp.proxy)
    assert_mirrored(files, remote, run)
    notes = [n for n in run.report["notes"] if "connections" in n]
    assert len(notes) == 1, run.report["notes"]
    assert "3 of 8" in notes[0], notes
    assert run.err.count(notes[0]) == 1, run.err


# --- transient replies -----------------------------------------------------------------


def test_transient_425_426_450_451_replies_are_retried(ftp: Faulty, tmp_path: Path) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {f"s/f{i:02d}.css": 1500 + 37 * i for i in range(24)})
    remote = fresh_remote(ftp, "4xx")
    faults = {
        "425": Fault(
            "EPSV",
            Answer("425 Unable to build data connection: Address already in use"),
            every=5,
            times=2,
        ),
        "450": Fault("STOR", Answer("450 /x: Resource temporarily unavailable"), every=4, times=2),
        # The transfer happens, then the server says it did not: sent again, verified.
        "426": Fault(
            "STOR", Replace("426 Data connection closed; transfer aborted"), every=5, times=2
        ),
        "451": Fault(
            "STOR", Answer("451 Requested action aborted: local error in processing"), every=7
        ),
    }
    ftp.proxy.inject(*faults.values())

    # (--no-state: the state file's own upload is the subject of the next test.)
    run = run_cli(
        ftp, src, remote.name, "-j", "3", "--timeout", "5", "--retries", "5", "--no-state", "-vv"
    )

    fired = {code: f.done for code, f in faults.items()}  # replies really replaced
    assert all(fired.values()), fired
    assert run.rc == 0, describe(run, ftp.proxy)
    assert run.report["retries"] >= fired["450"] + fired["426"] + fired["451"], run.report
    assert run.report["failed"] == []
    assert_mirrored(files, remote, run)


def test_transient_replies_to_pipelined_mkd_and_dele_are_retried(
    ftp: Faulty, tmp_path: Path
) -> None:
    # MKD and DELE go out pipelined in batches; a 450 on one of them must send that
    # one again, not count it as done.
    src = tmp_path / "site"
    remote = fresh_remote(ftp, "batch4xx")
    make_tree(src, {f"stale{i}.txt": 10 + i for i in range(4)})
    assert run_cli(ftp, src, remote.name, "--no-state").rc == 0  # the server's own files
    for i in range(4):
        (src / f"stale{i}.txt").unlink()
    files = make_tree(src, {f"d{i}/f.txt": 100 + i for i in range(6)})
    faults = [
        Fault("MKD", Answer("450 Directory busy, try again"), name="d3", times=1),
        Fault("DELE", Answer("450 File busy, try again"), name="stale2.txt", times=1),
    ]
    ftp.proxy.inject(*faults)
    run = run_cli(ftp, src, remote.name, "--delete", "--timeout", "5", "--no-state")
    assert [f.done for f in faults] == [1, 1]
    assert run.rc == 0, describe(run, ftp.proxy)
    assert_mirrored(files, remote, run)


@pytest.mark.parametrize(
    ("verb", "reply", "forward"),
    [
        # The server stores the state file's temporary upload, then reports a transient error.
        ("STOR", "426 Data connection closed; transfer aborted", True),
        # RNFR and RNTO go out together: the refused RNFR (never seen by the server)
        # makes the server answer the RNTO with 503, and the state write starts over.
        ("RNFR", "450 Busy, try again", False),
    ],
    ids=["stor-426", "rnfr-450"],
)
def test_state_file_write_failing_once_is_retried_and_leaves_no_temporary_file(
    ftp: Faulty, tmp_path: Path, verb: str, reply: str, forward: bool
) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {"a.txt": 100, "b.txt": 200})
    remote = fresh_remote(ftp, f"state-{verb.lower()}")
    action = Replace(reply) if forward else Answer(reply)
    fault = Fault(verb, action, name=".htasyncmirror-state.json", times=1)
    ftp.proxy.inject(fault)

    run = run_cli(ftp, src, remote.name, "-j", "2", "--timeout", "5", "--retries", "3")

    assert fault.done == 1, describe(run, ftp.proxy)
    assert run.rc == 0, describe(run, ftp.proxy)
    assert "could not write the state file" not in run.err, describe(run, ftp.proxy)
    assert (remote.path / ".htasyncmirror-state.json").is_file()
    assert_mirrored(files, remote, run)  # and no temporary file left


def test_state_file_rename_refused_for_good_says_so_and_leaves_no_temporary(
    ftp: Faulty, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {"a.txt": 100, "b.txt": 200})
    remote = fresh_remote(ftp, "state-rnto")
    # A directory where the state file goes: the server itself refuses the RNTO.
    plant(ftp, remote, ".htasyncmirror-state.json/keep", b"not ours\n")

    run = run_cli(ftp, src, remote.name, "-j", "2", "--timeout", "5", "--retries", "3")

    assert run.rc == 0, describe(run)  # every file is there; only the state is not
    assert "could not write the state file" in run.err, describe(run)
    planted = {".htasyncmirror-state.json/keep": b"not ours\n"}
    assert_mirrored(files | planted, remote, run)  # untouched, and no temporary file left


# --- permanent 553 ------------------------------------------------------------------------


def test_permanent_553_fails_that_file_only_and_leaves_nothing_under_its_name(
    ftp: Faulty, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    files = make_tree(
        src,
        {"ok/a.txt": 1000, "ok/b.txt": 2000, "denied.txt": 3000, "quota.bin": 200_000, "c.js": 50},
    )
    remote = fresh_remote(ftp, "553")
    denied = "553 denied.txt: Permission denied"
    quota = "553 quota.bin: Input/output error"
    truncate = Fault("STOR", Truncate(after=40_000), name="quota.bin")
    ftp.proxy.inject(
        # Refused outright: the server never sees the STOR.
        Fault("STOR", Answer(denied), name="denied.txt"),
        # Refused after the server wrote part of it (a failing disk): a partial file.
        Fault("STOR", Replace(quota), name="quota.bin"),
        truncate,
    )

    run = run_cli(ftp, src, remote.name, "-j", "2", "--timeout", "5", "--retries", "3")

    assert run.rc == 1, describe(run, ftp.proxy)
    assert truncate.done >= 1, describe(run, ftp.proxy)
    failed = {f["path"]: f["error"] for f in run.report["failed"]}
    assert set(failed) == {"denied.txt", "quota.bin"}, failed
    assert denied in failed["denied.txt"]
    assert quota in failed["quota.bin"]
    # The server's words reach the user; a permanent reply is not retried.
    assert f"failed: denied.txt: STOR /{remote.name}/denied.txt: {denied}" in run.err, run.err
    assert len([c for c in ftp.proxy.commands_of("STOR") if c.endswith("/denied.txt")]) == 1
    assert len([c for c in ftp.proxy.commands_of("STOR") if c.endswith("/quota.bin")]) == 1
    # Everything else is there; nothing (neither partial nor stub) under the failed names.
    others = {p: d for p, d in files.items() if p not in failed}
    assert server_files(remote) == others
    assert not (remote.path / "denied.txt").exists()
    assert not (remote.path / "quota.bin").exists(), "the partial quota.bin was left behind"
    assert not leftovers(remote)


def test_delete_deletes_nothing_when_an_upload_failed_for_good(ftp: Faulty, tmp_path: Path) -> None:
    """What SRC lacks may be what the failed file was meant to replace (a page
    renamed): with one upload refused, ``--delete`` removes nothing and says why."""
    src = tmp_path / "site"
    files = make_tree(src, {"index.html": 500, "css/a.css": 800, "denied.html": 300, "b.js": 90})
    remote = fresh_remote(ftp, "nodelete")
    extra = {"old.html": b"<p>the page before its rename</p>\n", "gone/x.txt": b"x\n"}
    for rel, data in extra.items():
        plant(ftp, remote, rel, data)
    denied = "553 denied.html: Permission denied"
    refuse = Fault("STOR", Answer(denied), name="denied.html")
    ftp.proxy.inject(refuse)

    run = run_cli(ftp, src, remote.name, "--delete", "-j", "2", "--timeout", "5")

    assert run.rc == 1, describe(run, ftp.proxy)
    assert refuse.done == 1, describe(run, ftp.proxy)
    assert [f["path"] for f in run.report["failed"]] == ["denied.html"]
    note = "not deleting anything on the server because some files failed"
    assert note in run.report["notes"], run.report["notes"]
    assert run.err.count(note) == 1, run.err
    assert "Traceback" not in run.err
    # (The deploy lock, asyncmirror's own, is removed as usual.)
    removals = ftp.proxy.commands_of("DELE") + ftp.proxy.commands_of("RMD")
    assert [c for c in removals if ".htasyncmirror-lock" not in c] == []
    # Every other file went up; the server's extra files are all still there.
    uploaded = {p: d for p, d in files.items() if p != "denied.html"}
    assert server_files(remote) == {**uploaded, **extra}
    assert not leftovers(remote)


def test_a_server_out_of_space_stops_new_uploads_says_so_once_and_leaves_nothing_cut(
    ftp: Faulty, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    make_tree(src, {f"page{i:02d}.html": 50_000 for i in range(12)})
    remote = fresh_remote(ftp, "full")
    full = "552 Transfer aborted. Disk quota exceeded"
    # Every upload gets part-way, then the quota stops it (as mod_quotatab does): the
    # server holds a cut file under the real name until the run removes it.
    ftp.proxy.inject(Fault("STOR", Replace(full)), Fault("STOR", Truncate(after=20_000)))

    run = run_cli(ftp, src, remote.name, "-j", "2", "--timeout", "5", "--no-state")

    assert run.rc == 1, describe(run, ftp.proxy)
    stors = ftp.proxy.commands_of("STOR")
    # Only what was already in flight when the first 552 came (one per session).
    assert 1 <= len(stors) <= 2, stors
    failed = [f["path"] for f in run.report["failed"]]
    assert len(failed) == len(stors), run.report["failed"]
    assert run.err.count(f"the server is out of space ({full})") == 1, run.err
    assert f"{12 - len(stors)} more uploads not started" in run.err, run.err
    assert "raise the account's quota" in run.err
    assert "Traceback" not in run.err
    assert server_files(remote) == {}, "a cut upload was left on the server"
    assert not leftovers(remote)


def test_a_refused_stor_keeps_the_old_version_on_the_server(ftp: Faulty, tmp_path: Path) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {"page.html": 3000, "other.css": 500})
    remote = fresh_remote(ftp, "refused")
    plant(ftp, remote, "page.html", b"<p>the version the site serves now</p>")
    denied = "553 page.html: Permission denied"
    # Refused before the server opened the file: the old version is intact and must stay
    # (a failed upload is removed only when the server holds a truncated file).
    ftp.proxy.inject(Fault("STOR", Answer(denied), name="page.html"))

    run = run_cli(ftp, src, remote.name, "-j", "2", "--timeout", "5", "--retries", "2")

    assert run.rc == 1, describe(run, ftp.proxy)
    assert [f["path"] for f in run.report["failed"]] == ["page.html"], run.report
    assert server_files(remote) == {
        "page.html": b"<p>the version the site serves now</p>",
        "other.css": files["other.css"],
    }


def test_a_file_whose_size_never_verifies_is_not_left_behind(ftp: Faulty, tmp_path: Path) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {"page.html": 3000, "other.css": 500})
    remote = fresh_remote(ftp, "badsize")
    plant(ftp, remote, "page.html", b"<p>old</p>")
    # Every transfer of page.html ends with a 226, but the server's SIZE disagrees
    # with what was sent: the upload fails for good after its retries.
    size = Fault("SIZE", Replace("213 1"), name="page.html")
    ftp.proxy.inject(size)

    run = run_cli(ftp, src, remote.name, "-j", "2", "--timeout", "5", "--retries", "1")

    assert size.done >= 2, describe(run, ftp.proxy)
    assert run.rc == 1, describe(run, ftp.proxy)
    assert [f["path"] for f in run.report["failed"]] == ["page.html"], run.report
    # What the server holds under page.html could not be verified: it is removed,
    # not left to be served as if it were the uploaded page.
    assert server_files(remote) == {"other.css": files["other.css"]}, describe(run, ftp.proxy)
    assert "removed the partial upload of page.html" in run.err, run.err


# --- a file that fails for good mid-transfer -------------------------------------------


@pytest.mark.parametrize(
    ("existing", "atomic"),
    [(False, False), (True, False), (True, True)],
    ids=["new", "existing", "existing-atomic"],
)
def test_file_failing_for_good_mid_transfer_is_never_left_truncated(
    ftp: Faulty, tmp_path: Path, existing: bool, atomic: bool
) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {"big.bin": 400_000, "a.txt": 100, "sub/b.txt": 200})
    remote = fresh_remote(ftp, "doomed")
    old = b"the previous complete version\n" * 10
    if existing:
        plant(ftp, remote, "big.bin", old)
    cut = Fault("STOR", Cut(after=32_768), name="big.bin")
    ftp.proxy.inject(cut)
    args = ["-j", "2", "--timeout", "5", "--retries", "1"] + (["--atomic"] if atomic else [])

    run = run_cli(ftp, src, remote.name, *args)

    assert run.rc == 1, describe(run, ftp.proxy)
    assert cut.done == 2, describe(run, ftp.proxy)  # first try + 1 retry
    assert [f["path"] for f in run.report["failed"]] == ["big.bin"], run.report["failed"]
    assert "big.bin" in run.err
    assert incomplete_uploads(ftp, remote), "the cut never left a partial file on the server"
    on_server = server_files(remote)
    assert on_server.pop("a.txt") == files["a.txt"]
    assert on_server.pop("sub/b.txt") == files["sub/b.txt"]
    if atomic:
        assert on_server == {"big.bin": old}, "--atomic must keep the previous version"
    elif existing:
        assert on_server in ({}, {"big.bin": old}), (
            f"big.bin left with {len(on_server.get('big.bin', b''))} bytes"
        )
    else:
        assert on_server == {}, f"big.bin left with {len(on_server.get('big.bin', b''))} bytes"
    assert not leftovers(remote)


# --- --atomic never shows a partial file -------------------------------------------------


def _files_now(root: Path) -> list[Path]:
    """Every file under root, tolerating directories the run removes mid-walk.

    Path.rglob raises when a directory (the deploy lock, a temp dir) vanishes between
    listing and descending; os.walk skips it, which is what a watcher racing the run needs.
    """
    return [Path(d, f) for d, _dirs, files in os.walk(root) for f in files]


class _Watcher:
    """Polls DST on the server's disk; every visible file must be complete (new or old)."""

    def __init__(self, remote: Remote, allowed: dict[str, set[bytes]]) -> None:
        self.remote = remote
        self.allowed = allowed
        self.violations: list[str] = []
        self.observed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for path in _files_now(self.remote.path):
                rel = path.relative_to(self.remote.path).as_posix()
                if is_own(rel):
                    continue
                try:
                    if not path.is_file():
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue  # renamed away meanwhile
                self.observed += 1
                if data not in self.allowed.get(rel, set()):
                    self.violations.append(f"{rel}: {len(data)} bytes")
            time.sleep(0.002)


def test_atomic_never_exposes_a_partial_file_even_with_cuts(ftp: Faulty, tmp_path: Path) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {f"w/f{i:02d}.bin": 64_000 + 4000 * i for i in range(16)})
    remote = fresh_remote(ftp, "atomic")
    allowed = {p: {d} for p, d in files.items()}
    for i, rel in enumerate(sorted(files)):
        if i % 2:
            old = f"old version {i}\n".encode() * 50
            plant(ftp, remote, rel, old)
            allowed[rel].add(old)
    cut = Fault("STOR", Cut(after=16_384), every=3)
    ftp.proxy.inject(cut)

    with _Watcher(remote, allowed) as watcher:
        run = run_cli(
            ftp, src, remote.name, "--atomic", "-j", "4", "--timeout", "5", "--retries", "6"
        )
        time.sleep(0.05)

    assert run.rc == 0, describe(run, ftp.proxy)
    assert cut.done >= 3, describe(run, ftp.proxy)
    assert watcher.observed > 0
    assert not watcher.violations, watcher.violations[:10]
    assert_mirrored(files, remote, run)
    # The partial uploads existed -- under temporary names only.
    partial = incomplete_uploads(ftp, remote)
    assert partial
    assert all(p.rpartition("/")[2].startswith(TEMP_PREFIX) for p in partial), partial


@pytest.mark.parametrize("where", ["rename-lost", "mid-transfer"])
def test_atomic_leaves_no_temporary_file_when_the_session_breaks(
    ftp: Faulty, tmp_path: Path, where: str
) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {"big.bin": 300_000, "a.txt": 100, "b.txt": 200})
    remote = fresh_remote(ftp, "atomic-broken")
    if where == "rename-lost":
        # The temporary file is complete; the connection dies before RNFR reaches the server.
        fault = Fault("RNFR", DropControl(), times=1)
    else:
        # The connection dies while the temporary file is being written.
        fault = Fault("STOR", CutControl(after=65_536), name="big.bin", times=1)
    ftp.proxy.inject(fault)

    run = run_cli(ftp, src, remote.name, "--atomic", "-j", "2", "--timeout", "5", "--retries", "3")

    assert fault.done == 1, describe(run, ftp.proxy)
    assert run.rc == 0, describe(run, ftp.proxy)
    assert_mirrored(files, remote, run)


# --- a silent server ---------------------------------------------------------------------


@pytest.mark.parametrize("when", ["from-the-start", "mid-run"])
def test_silent_server_gives_a_clear_timeout_in_bounded_time(
    ftp: Faulty, tmp_path: Path, when: str
) -> None:
    src = tmp_path / "site"
    make_tree(src, {f"f{i}.txt": 5000 for i in range(8)})
    remote = fresh_remote(ftp, "silent")
    timeout, retries = 2, 1
    if when == "from-the-start":
        silence = Fault(CONNECT, Silence())
    else:
        silence = Fault("STOR", Silence(), every=3, times=1)
    ftp.proxy.inject(silence)

    run = run_cli(
        ftp,
        src,
        remote.name,
        "-j",
        "2",
        "--timeout",
        str(timeout),
        "--retries",
        str(retries),
        timeout=60,
    )

    assert silence.done >= 1
    assert run.rc != 0, describe(run, ftp.proxy)
    assert run.rc in (1, 3), describe(run, ftp.proxy)
    assert "timed out" in run.err, run.err
    assert "Traceback" not in run.err
    # Every wait is bounded by --timeout, and there are retries+1 attempts: at most
    # timeout * (retries + 1), plus the backoffs, plus 1.5 s to start Python and upload
    # what went through before the stall.
    bound = timeout * (retries + 1) + max_backoff(retries) + 1.5
    assert run.elapsed <= bound, (
        f"took {run.elapsed:.1f} s, bound {bound:.1f} s; "
        f"{ftp.proxy.control_connections} control connections for -j 2\n{run.err}"
    )


def test_deadline_against_a_stalled_server_exits_3_with_a_deadline_message(
    ftp: Faulty, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    make_tree(src, {"a.txt": 10})
    silence = Fault(CONNECT, Silence())
    ftp.proxy.inject(silence)

    run = run_cli(ftp, src, fresh_remote(ftp, "deadline").name, "--deadline", "3", timeout=30)

    assert silence.done >= 1
    assert run.rc == 3, describe(run, ftp.proxy)
    assert "deadline" in run.err, run.err
    assert "3 s" in run.err, run.err
    assert run.elapsed < 3 + 3, run.elapsed


# --- a stop mid-upload: --deadline, Ctrl-C -------------------------------------------------


def test_the_deadline_mid_upload_leaves_no_partial_file_under_a_real_name(
    ftp: Faulty, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {"new.bin": 3 << 20, "changed.bin": 2 << 20, "same.txt": 50})
    remote = fresh_remote(ftp, "stopdeadline")
    plant(ftp, remote, "same.txt", files["same.txt"], mtime=time.time() + 60)
    plant(ftp, remote, "changed.bin", b"old version")  # older: replaced
    # Each upload stalls after 256 KiB: the server holds a partial file under the real
    # name (STOR truncated the old one) when the deadline stops the run.
    stall = Fault("STOR", Stall(after=256 * 1024))
    ftp.proxy.inject(stall)

    run = run_cli(ftp, src, remote.name, "-j", "2", "--deadline", "3", timeout=40)

    assert stall.done == 2, describe(run, ftp.proxy)
    assert run.rc == 3, describe(run, ftp.proxy)
    assert "deadline" in run.err
    assert run.err.count("removed the partial upload of") == 2, run.err
    # Before the fix both files stayed behind, cut at 256 KiB, looking done.
    assert server_files(remote) == {"same.txt": files["same.txt"]}, describe(run, ftp.proxy)


@pytest.mark.parametrize("server_saw_stor", [True, False], ids=["truncated", "untouched"])
def test_a_stop_between_stor_and_its_150_removes_only_a_truncated_file(
    ftp: Faulty, tmp_path: Path, server_saw_stor: bool
) -> None:
    src = tmp_path / "site"
    make_tree(src, {"page.html": 6000})
    remote = fresh_remote(ftp, "stop150")
    old = b"x" * 5000
    plant(ftp, remote, "page.html", old)  # older, so replaced

    # The client is still waiting for the STOR's answer when the deadline stops it.
    silence = Fault("STOR", Silence(seconds=1.5), times=1)
    ftp.proxy.inject(silence)
    if not server_saw_stor:
        # The proxy answers STOR itself (and that answer is swallowed too): ProFTPD
        # never sees it, and page.html stays the version the site serves.
        ftp.proxy.inject(Fault("STOR", Answer("450 busy"), times=1))
    run = run_cli(ftp, src, remote.name, "-j", "1", "--deadline", "2.5", "--timeout", "10")

    assert silence.done >= 1, describe(run, ftp.proxy)
    assert run.rc == 3, describe(run, ftp.proxy)
    if server_saw_stor:
        # ProFTPD truncated page.html on reading STOR: left alone, the server would
        # serve a 0-byte page as if it were done.
        assert server_files(remote) == {}, describe(run, ftp.proxy)
        assert "removed the partial upload of page.html" in run.err, run.err
    else:
        assert server_files(remote) == {"page.html": old}, describe(run, ftp.proxy)
        assert "removed the partial upload" not in run.err, run.err


def with_ctrl_c(argv: list[str]) -> list[str]:
    """``python -m asyncmirror.cli ...`` as at a terminal, where Ctrl-C raises
    KeyboardInterrupt.  A process started in the background by a non-interactive
    shell inherits SIGINT *ignored* (POSIX; Python then leaves it ignored, as it
    should): run that way, e.g. `.ci/run` started with `&` from a script, the
    command would rightly not react, and this test would measure the harness."""
    assert argv[1:3] == ["-m", "asyncmirror.cli"], argv
    start = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv[0] = 'asyncmirror'; runpy.run_module('asyncmirror.cli', run_name='__main__')"
    )
    return [argv[0], "-c", start, *argv[3:]]


def test_ctrl_c_mid_upload_exits_130_and_removes_the_temporary_files(
    ftp: Faulty, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    make_tree(src, {"a.bin": 2 << 20, "b.bin": 2 << 20})
    remote = fresh_remote(ftp, "stopsigint")
    stall = Fault("STOR", Stall(after=128 * 1024))
    ftp.proxy.inject(stall)
    argv, env = cli_command(ftp, src, remote.name, "--atomic", "-j", "2", json_report=False)
    proc = subprocess.Popen(with_ctrl_c(argv), env=env, stderr=subprocess.PIPE, text=True)
    try:
        stalled = time.monotonic() + 20
        while stall.done < 2 and time.monotonic() < stalled:
            time.sleep(0.05)
        assert stall.done == 2, ftp.proxy.describe()
        assert leftovers(remote), "no temporary file on the server before the stop"
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"still running 20 s after Ctrl-C; what it said:\n{err}")
    finally:
        reap(proc)
    assert proc.returncode == 130, err
    assert err.strip().endswith("asyncmirror: interrupted"), err
    assert "Traceback" not in err
    assert "stopping: removing 2 unfinished uploads from the server" in err, err
    assert not leftovers(remote), err
    assert server_files(remote) == {}


def test_a_server_gone_mid_upload_names_the_files_that_may_be_left_partial(
    ftp: Faulty, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    make_tree(src, {"big.bin": 4 << 20})
    remote = fresh_remote(ftp, "gone")
    # The upload stalls after 256 KiB, then the server goes away for longer than the
    # run waits for it: the run ends with a connection error.  No clean-up session can
    # be opened then; the user is told which file may be partial on the server.
    restart = Fault("STOR", Restart(6.0, delay=0.5), times=1)
    ftp.proxy.inject(Fault("STOR", Stall(after=256 * 1024)), restart)
    run = run_cli(ftp, src, remote.name, "--timeout", "2", "--retries", "1", timeout=40)

    assert restart.done == 1, describe(run, ftp.proxy)
    assert run.rc == 3, describe(run, ftp.proxy)
    assert "may be left partial on the server (the next run replaces them): big.bin" in run.err
    assert "Traceback" not in run.err
    _settle(ftp.proxy)


# --- server restart ---------------------------------------------------------------------


def test_server_restart_refusing_connections_for_two_seconds_is_survived(
    ftp: Faulty, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {f"r/f{i:02d}.txt": 4000 + i for i in range(14)})
    remote = fresh_remote(ftp, "restart")
    restart = Fault("STOR", Restart(2.0), every=4, times=1)
    ftp.proxy.inject(restart)
    timeout, retries = 3, 3

    run = run_cli(
        ftp, src, remote.name, "-j", "3", "--timeout", str(timeout), "--retries", str(retries)
    )

    assert restart.done == 1
    # A 2 s outage is well inside a budget of 3 retries of up to 3 s each.
    assert run.rc == 0, describe(run, ftp.proxy)
    assert run.elapsed >= 2.0  # the gap was really bridged, not missed
    assert run.elapsed < 2.0 + timeout * (retries + 1) + max_backoff(retries) + 2
    assert run.report["failed"] == []
    assert_mirrored(files, remote, run)


def _read_reply_line(tls: ssl.SSLSocket | socket.socket, want: str) -> None:
    data = b""
    while not re.search(rb"(^|\n)\d{3} [^\n]*\n", data):
        chunk = tls.recv(4096)
        assert chunk, f"connection closed before the {want} reply: {data!r}"
        data += chunk
    assert data.splitlines()[-1].startswith(want.encode()), data


def test_the_proxy_closes_a_finished_control_connection_whose_client_stays_silent(
    ftp: Faulty,
) -> None:
    """The restart test's leak, made deterministic.

    A client that QUITs and then neither answers the proxy's TLS close_notify nor
    closes its socket (asyncmirror aborts sessions; a killed run does nothing at all):
    the proxy must still close its socket.  Closing a TLS writer twice used to detach
    asyncio's TLS layer, so the proxy's abort did nothing and the socket stayed open
    for asyncio's 30 s shutdown timer -- or for ever, once the proxy's loop stopped,
    and the garbage collector then reported ``unclosed transport`` in whatever test
    was running.
    """
    ctx = ssl.create_default_context(cafile=str(ftp.server.ca_file))
    with socket.create_connection((ftp.proxy.host, ftp.proxy.port), timeout=10) as raw:
        _read_reply_line(raw, "220")
        raw.sendall(b"AUTH TLS\r\n")
        _read_reply_line(raw, "234")
        with ctx.wrap_socket(raw, server_hostname=ftp.proxy.host) as tls:
            tls.sendall(b"QUIT\r\n")
            _read_reply_line(tls, "221")
            # The proxy ends the TLS session; we stay silent: no close_notify back.
            with contextlib.suppress(ssl.SSLZeroReturnError):
                assert tls.recv(4096) == b""
            # Below TLS, the TCP connection must end well before asyncio's 30 s
            # shutdown timer would end it (the proxy waits 2 s + 2 s for us).
            with socket.socket(fileno=os.dup(tls.fileno())) as below:
                below.settimeout(15)
                try:
                    rest = below.recv(4096)
                except ConnectionResetError:
                    rest = b""
                except TimeoutError:
                    pytest.fail("the proxy left a finished control connection open")
            assert rest == b""


def test_a_connection_accepted_as_the_proxy_restarts_is_closed_not_leaked(
    ftp: Faulty,
) -> None:
    """The restart test's other leak, made deterministic.

    A client connects to a passive port in the very loop tick in which a restart
    closes the listening sockets (asyncmirror's EPSV sent ahead makes this likely).
    asyncio 3.11 accepts the connection, then fails an assertion in the accept's task
    once the server is closed, and drops the socket unclosed: ``unclosed transport``
    in whatever test the garbage collector runs next.  Here the connection is made
    by the command that fires the restart, so the accept and the close always meet.
    """
    clients: list[socket.socket] = []

    def connect_to_a_passive_port() -> None:  # on the proxy's loop: accepted, not handled
        clients.append(socket.create_connection((ftp.proxy.host, ftp.server.passive_ports[0])))

    restart = Fault("NOOP", Restart(0.2), times=1)
    ftp.proxy.inject(Fault("NOOP", Call(connect_to_a_passive_port), times=1), restart)
    try:
        with socket.create_connection((ftp.proxy.host, ftp.proxy.port), timeout=10) as raw:
            _read_reply_line(raw, "220")
            raw.sendall(b"NOOP\r\n")
            with contextlib.suppress(OSError):
                raw.recv(4096)  # cut by the restart
        _settle(ftp.proxy)
        assert restart.done == 1
        assert len(clients) == 1
    finally:
        for client in clients:
            client.close()
    gc.collect()  # a dropped socket warns now, in this test (warnings are errors)


def test_listing_cut_mid_transfer_is_retried_and_the_session_stays_in_step(
    ftp: Faulty, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {f"f{i}.txt": 1000 + i for i in range(6)})
    remote = fresh_remote(ftp, "listcut")
    # Files only on the server (no --delete: left alone) make DST's listing long.
    planted = {f"remote-only-{i:03d}.txt": b"x" * i for i in range(150)}
    for rel, data in planted.items():
        plant(ftp, remote, rel, data)
    # A server without MLST: DST is listed with MLSD, over data connections...
    no_mlst = Fault("MLST", Answer("500 MLST not understood"))
    # ...the first two of which are cut in the middle of the listing.
    cut = Fault("MLSD", Cut(after=1500), times=2)
    ftp.proxy.inject(no_mlst, cut)

    run = run_cli(ftp, src, remote.name, "-j", "2", "--timeout", "5", "--retries", "4")

    assert cut.done == 2, describe(run, ftp.proxy)
    assert run.rc == 0, describe(run, ftp.proxy)
    assert run.report["uploaded"] == len(files), run.report
    assert run.report["failed"] == []
    assert server_files(remote) == files | planted


# --- local files that cannot be read (as root too) ---------------------------------------


def test_a_file_changing_while_it_uploads_is_sent_again_with_its_final_bytes(
    ftp: Faulty, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {"big.bin": 8 << 20, "small.txt": 100})
    remote = fresh_remote(ftp, "changing")
    final = os.urandom(8 << 20)
    changed: list[bool] = []

    def rewrite() -> None:
        # Runs when the first STOR arrives, while the client is still reading big.bin
        # (largest first); same size, new bytes, new mtime.
        (src / "big.bin").write_bytes(final)
        later = time.time() + 5
        os.utime(src / "big.bin", (later, later))
        changed.append(True)

    ftp.proxy.inject(Fault("STOR", Call(rewrite), times=1))
    run = run_cli(ftp, src, remote.name, "-j", "1", "--no-state", "-vv")
    assert changed, "the file was never rewritten"
    assert run.rc == 0, describe(run, ftp.proxy)
    # The change was noticed (size/mtime differ from when the upload began) and the
    # file sent again, rather than trusting what happened to be read.
    assert run.report["retries"] >= 1, describe(run, ftp.proxy)
    assert "changed while it was being uploaded" in run.err
    files["big.bin"] = final
    assert_mirrored(files, remote, run)


def test_unreadable_local_files_are_reported_and_the_others_uploaded(
    ftp: Faulty, tmp_path: Path
) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {"a.txt": 100, "sub/b.txt": 200, "c.txt": 300})
    os.mkfifo(src / "pipe")  # never readable as a file, even by root
    # A "regular file" that fails with EIO on read, even for root.
    (src / "sub" / "mem").symlink_to("/proc/self/mem")
    remote = fresh_remote(ftp, "local")

    run = run_cli(ftp, src, remote.name, "-j", "2", "--timeout", "5", "--retries", "2")

    assert run.rc == 1, describe(run)
    failed = {f["path"]: f["error"] for f in run.report["failed"]}
    # The FIFO was never meant to be uploaded: a notice, not a failure.
    assert set(failed) == {"sub/mem"}, failed
    assert "Input/output error" in failed["sub/mem"], failed
    assert "failed: sub/mem:" in run.err
    assert "not mirrored, as FTP cannot carry them: pipe (a FIFO" in run.err, run.err
    assert server_files(remote) == files  # no stub or partial "mem" on the server
    assert not leftovers(remote)


def test_a_file_that_vanishes_after_the_plan_fails_alone(ftp: Faulty, tmp_path: Path) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {"a.txt": 100, "gone.txt": 200, "c.txt": 300})
    remote = fresh_remote(ftp, "vanish")

    class Vanish(Events):
        def planned(self, plan: Plan) -> None:
            (src / "gone.txt").unlink()

    async def run() -> Report:
        return await mirror(
            str(src),
            remote.name,
            host=ftp.proxy.host,
            port=ftp.proxy.port,
            user=ftp.server.user,
            password=ftp.server.password,
            ca_file=str(ftp.server.ca_file),
            jobs=2,
            timeout=5,
            retries=2,
            events=Vanish(),
        )

    report = asyncio.run(run())

    assert report.exit_code == 1
    assert [f.path for f in report.failed] == ["gone.txt"], report.failed
    assert "No such file" in report.failed[0].error
    assert report.retries == 0  # a local error is not retried
    del files["gone.txt"]
    assert server_files(remote) == files


# --- a USER that needs no password -----------------------------------------------------------


def test_a_user_logged_in_without_a_password_keeps_the_pipelined_replies_in_step(
    ftp: Faulty, tmp_path: Path
) -> None:
    # On ProFTPD, USER, PASS and the set-up go out in one write. A server that logs the
    # user in at USER answers the PASS too (here ProFTPD's real 230 behind the rewritten
    # one): that reply must be read and dropped, or every later reply is one step behind.
    src = tmp_path / "site"
    files = make_tree(src, {"a.txt": 100, "d/b.txt": 200})
    remote = fresh_remote(ftp, "user230")
    fault = Fault("USER", Replace("230 Logged in, no password needed"))
    ftp.proxy.inject(fault)

    run = run_cli(ftp, src, remote.name, "-j", "2", "--timeout", "5")

    assert fault.done >= 1, describe(run, ftp.proxy)
    assert run.rc == 0, describe(run, ftp.proxy)
    assert_mirrored(files, remote, run)


# --- AUTH TLS refused ----------------------------------------------------------------------


def test_auth_tls_refused_exits_3_and_never_sends_credentials(tmp_path: Path) -> None:
    src = tmp_path / "site"
    make_tree(src, {"a.txt": 10})
    with FakePlainServer({"AUTH": "500 AUTH not understood", "USER": "331 go on"}) as fake:
        run = run_cli(
            None,
            src,
            "dst",
            env={
                "FTP_SERVER": f"{fake.host}:{fake.port}",
                "FTP_USERNAME": "someone",
                "FTP_PASSWORD": "never-in-clear-Zx81",
            },
            json_report=False,
        )
        time.sleep(0.1)
        verbs = fake.verbs()

    assert run.rc == 3, describe(run)
    assert "AUTH TLS" in run.err, run.err
    assert "500 AUTH not understood" in run.err, run.err
    assert "AUTH" in verbs, verbs
    assert "USER" not in verbs, verbs
    assert "PASS" not in verbs, verbs
    assert "FEAT" not in verbs, verbs
    assert not any("never-in-clear" in line for line in fake.received)


# --- hostile listing entries ----------------------------------------------------------------


def test_hostile_listing_names_are_never_used_to_build_paths(ftp: Faulty, tmp_path: Path) -> None:
    src = tmp_path / "site"
    files = make_tree(src, {"keep.txt": 100, "sub/x.txt": 200})
    remote = fresh_remote(ftp, "hostile")
    plant(ftp, remote, "keep.txt", files["keep.txt"])
    plant(ftp, remote, "stale.txt", b"only on the server\n")  # --delete removes this one
    # Victims outside DST: next to it in the home, and a sibling directory.
    victim = f"victim-{uuid.uuid4().hex[:6]}.txt"
    sibling = f"sibling-{uuid.uuid4().hex[:6]}"
    home = ftp.server.home
    (home / victim).write_bytes(b"victim\n")
    (home / sibling).mkdir()
    (home / sibling / "inside.txt").write_bytes(b"inside\n")
    fact = "type=file;size=7;modify=20200101000000;"
    dfact = "type=dir;modify=20200101000000;"
    inject = Fault(
        LISTINGS,
        Inject(
            [
                f"{fact} ..",
                f"{dfact} ..",
                f"{dfact} .",
                f"{fact} ../{victim}",
                f"{dfact} ../{sibling}",
                f"{fact} sub/../../{victim}",
                f"{fact} /{victim}",
                f"{dfact} /",
                f"{fact} ..\\..\\{victim}",
                f"{fact} evil\x1b[2Jname",
                f"{fact} bell\x07",
                f"{fact} c1\x85name",
                f"{fact} nul\x00name",
            ]
        ),
    )
    ftp.proxy.inject(inject)

    run = run_cli(ftp, src, remote.name, "--delete", "-v", "-j", "2", "--timeout", "5")

    assert inject.done >= 1
    assert run.rc == 0, describe(run, ftp.proxy)
    assert (home / victim).read_bytes() == b"victim\n"
    assert (home / sibling / "inside.txt").read_bytes() == b"inside\n"
    assert server_files(remote) == files  # stale.txt deleted, nothing else touched
    assert run.report["deleted"] == 1, run.report
    base = f"/{remote.name}"
    for _, command in ftp.proxy.commands:
        verb, _, arg = command.partition(" ")
        if verb.upper() in ("DELE", "RMD", "MKD", "STOR", "RNFR", "RNTO", "MLSD", "SIZE"):
            assert arg == base or arg.startswith(base + "/"), command
            assert ".." not in arg.split("/"), command
            assert not any(ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F for ch in arg), command
        if verb.upper() == "MFMT":
            assert f" {base}/" in command, command
            assert "/../" not in command, command
    # No control character from a listing reaches the terminal.
    assert "\x1b" not in run.err + run.out
    assert "\x07" not in run.err + run.out


@pytest.fixture(autouse=True)
def _cleanup_dirs(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "ftp" in request.fixturenames:
        faulty: Faulty = request.getfixturevalue("faulty")
        for pattern in ("t-*", "victim-*", "sibling-*"):
            for p in faulty.server.home.glob(pattern):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
