"""``--verify``: adopting a site lftp uploaded, and finding drift, against real ProFTPD.

The site is uploaded by lftp itself (no state file).  Then one file is edited on the
server and one locally, each keeping its size and a time that says "up to date": a
run that trusts the listing uploads nothing.  ``--verify`` must upload exactly those
two -- by the server's digest command (ProFTPD with mod_digest: ``HASH``) and, on a
ProFTPD without one, by downloading -- and a second run must upload nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncmirror import Report
from tests.integration.clients import mirror_to
from tests.servers.common import client_env
from tests.servers.faultproxy import DropControl, Fault, FaultProxy, fault_server
from tests.servers.lftp import lftp_mirror
from tests.servers.proftpd import ProftpdServer

SITE: dict[str, bytes] = {
    "index.html": b"<h1>hello</h1>\n" * 40,
    "css/site.css": b"body { color: #333 }\n" * 200,
    "img/logo.png": bytes(range(256)) * 300,
    "docs/read me.txt": b"plain words\n" * 90,
    "docs/deep/x.js": b"let x = 1;\n" * 10,
    "empty.txt": b"",
}
EDITED_THERE = "css/site.css"
EDITED_HERE = "docs/read me.txt"


@pytest.fixture(params=["HASH SHA-256", "download"])
def server(
    request: pytest.FixtureRequest, proftpd: ProftpdServer, digest_proftpd: ProftpdServer
) -> ProftpdServer:
    """ProFTPD with mod_digest (compared by HASH), and without (compared by download)."""
    return digest_proftpd if request.param == "HASH SHA-256" else proftpd


def run(server: ProftpdServer, src: Path, dst: str, **kwargs: Any) -> Report:
    return mirror_to(server, src, dst, **kwargs)


def write_site(root: Path) -> None:
    for rel, data in SITE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def same_size_edit(path: Path, *, mtime: float) -> None:
    """Other bytes, same size, and the given time: nothing a listing can see."""
    data = path.read_bytes()
    path.write_bytes(data[::-1] if data[::-1] != data else bytes(b ^ 1 for b in data))
    os.utime(path, (mtime, mtime))


def server_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".ht")
    }


def local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def adopted_site_with_drift(
    server: ProftpdServer, tmp_path: Path, name: str, extra: dict[str, bytes] | None = None
) -> tuple[Path, Path]:
    """SRC (``SITE``, and ``extra`` files), and DST on the server's disk, as
    described at the top."""
    src = tmp_path / "site"
    write_site(src)
    for rel, data in (extra or {}).items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    dst_name = f"verify-{name}-{tmp_path.name}"
    lftp_mirror(server, src, dst_name)
    dst = server.home / dst_name
    assert server_files(dst) == {**SITE, **(extra or {})}
    there = dst / EDITED_THERE
    same_size_edit(there, mtime=there.stat().st_mtime)
    here = src / EDITED_HERE
    same_size_edit(
        here, mtime=min(here.stat().st_mtime, (dst / EDITED_HERE).stat().st_mtime) - 3600
    )
    return src, dst


def test_verify_uploads_exactly_what_differs_and_a_rerun_uploads_nothing(
    server: ProftpdServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    method = request.node.callspec.params["server"]
    src, dst = adopted_site_with_drift(server, tmp_path, "run")
    drifted = server_files(dst)

    # Trusting sizes and times, nothing looks changed.
    assert run(server, src, dst.name, dry_run=True).uploaded == 0

    # --verify --dry-run reports both and changes nothing.
    stors = server.stor_count()
    report = run(server, src, dst.name, verify=True, dry_run=True)
    assert report.verification is not None
    assert report.verification.method == method
    assert report.verification.differ == tuple(sorted([EDITED_HERE, EDITED_THERE]))
    assert report.verification.compared == len(SITE)
    assert report.uploaded == 2
    assert server.stor_count() == stors
    assert server_files(dst) == drifted

    # --verify uploads those two, and nothing else.
    report = run(server, src, dst.name, verify=True)
    assert report.failed == []
    assert report.uploaded == 2
    assert report.plan is not None
    assert sorted(u.path for u in report.plan.uploads) == sorted([EDITED_HERE, EDITED_THERE])
    assert server.stor_count() - stors == 3  # the two files and the state file
    assert server_files(dst) == local_files(src)
    assert (dst / ".htasyncmirror-state.json").exists()

    # A second run uploads nothing: trusting the state file, or comparing again.
    stors = server.stor_count()
    again = run(server, src, dst.name)
    assert (again.uploaded, again.failed) == (0, [])
    verified = run(server, src, dst.name, verify=True)
    assert (verified.uploaded, verified.failed) == (0, [])
    assert verified.verification is not None
    assert verified.verification.differ == ()
    assert server.stor_count() == stors


def test_verify_from_the_command_line_names_each_difference(
    digest_proftpd: ProftpdServer, tmp_path: Path
) -> None:
    src, dst = adopted_site_with_drift(digest_proftpd, tmp_path, "cli")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "asyncmirror.cli",
            str(src),
            dst.name,
            "--verify",
            "--dry-run",
            "--json",
            "--no-progress",
        ],
        env=client_env(digest_proftpd),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verify"]["method"] == "HASH SHA-256"
    assert doc["verify"]["differ"] == sorted([EDITED_HERE, EDITED_THERE])
    assert f"differs: {EDITED_THERE} (content, by HASH SHA-256)" in proc.stderr
    assert "--verify: compared 6 files by HASH SHA-256: 2 differ" in proc.stderr


def test_verify_by_download_reads_each_file_once_over_few_connections(
    proftpd: ProftpdServer, tmp_path: Path
) -> None:
    """Many files per connection: each download sends the next EPSV ahead of its
    226 (ProFTPD may answer it 450 and it is sent again); every file must still
    be read once and compared with its own bytes."""
    src = tmp_path / "many"
    for i in range(40):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i:02}.txt").write_bytes(f"file {i}\n".encode() * (50 + 37 * i))
    dst_name = f"verify-many-{tmp_path.name}"
    assert run(proftpd, src, dst_name, state=False).uploaded == 40
    dst = proftpd.home / dst_name
    there = dst / "d1" / "f37.txt"
    same_size_edit(there, mtime=there.stat().st_mtime)

    def reads() -> int:
        prefix = dst_name + "/"
        return sum(
            1
            for rec in proftpd.transfers()
            if rec.direction == "o" and rec.completed and rec.path.startswith(prefix)
        )

    before, stors = reads(), proftpd.stor_count()
    report = run(proftpd, src, dst_name, verify=True, jobs=2)
    assert report.verification is not None
    assert report.verification.method == "download"
    assert report.verification.compared == 40
    assert report.verification.differ == ("d1/f37.txt",)
    assert reads() - before == 40
    assert report.uploaded == 1
    assert proftpd.stor_count() - stors == 2  # that file and the state file
    assert server_files(dst) == local_files(src)


@pytest.fixture(scope="module")
def digest_behind_proxy(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ProftpdServer, FaultProxy]]:
    """ProFTPD with mod_digest behind the fault proxy (control and data through it)."""
    with fault_server(
        tmp_path_factory.mktemp("digest_faults"), extra_modules=("mod_digest.c",)
    ) as both:
        yield both


def test_a_connection_cut_mid_digest_batch_asks_again_and_uploads_exactly_what_differs(
    digest_behind_proxy: tuple[ProftpdServer, FaultProxy], tmp_path: Path
) -> None:
    """The control connection carrying the 8th ``HASH`` (inside a pipelined batch)
    is reset: a new session asks again for what was not answered, by digest (no
    download), and exactly the two drifted files go up."""
    server, proxy = digest_behind_proxy
    proxy.reset()
    extra = {f"more/f{i:02}.txt": f"file {i}\n".encode() * (20 + i) for i in range(30)}
    src, dst = adopted_site_with_drift(server, tmp_path, "cut", extra)
    stors = server.stor_count()
    cut = Fault("HASH", DropControl(), every=8, times=1)
    proxy.inject(cut)

    report = mirror_to(server, src, dst.name, via=(proxy.host, proxy.port), verify=True, jobs=3)

    assert cut.done == 1, proxy.describe()
    assert proxy.control_connections > 3, "the cut session was not replaced"
    assert report.exit_code == 0, report.failed
    assert report.failed == []
    assert report.verification is not None
    assert report.verification.method == "HASH SHA-256"
    assert report.verification.compared == len(SITE) + len(extra)
    assert report.verification.unknown == ()
    assert report.verification.differ == tuple(sorted([EDITED_HERE, EDITED_THERE]))
    # Every file's digest was asked again by HASH, none downloaded instead.
    assert proxy.commands_of("RETR") == []
    assert report.uploaded == 2
    assert server.stor_count() - stors == 3  # the two files and the state file
    assert server_files(dst) == local_files(src)
