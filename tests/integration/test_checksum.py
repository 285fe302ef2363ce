"""``--checksum``: an upload is checked by the server's digest, not its size alone.

A pyftpdlib server changes one byte of ``data.bin`` as it lands (same size) and
answers ``XSHA256`` from the file on disk, as ProFTPD's mod_digest does.  Checked
by ``SIZE`` the upload passes; with ``--checksum`` it fails, says why, exits 1, and
leaves no altered copy under the real name.  On ProFTPD: with mod_digest the
check uses ``HASH`` and passes; without it the run says the uploads were checked
by size only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncmirror import Report
from tests.integration.clients import mirror_to
from tests.servers.proftpd import ProftpdServer
from tests.servers.pyftpd import PyftpdServer, start_pyftpd

DATA = bytes(range(256)) * 200  # 51,200 bytes
PAGE = b"<p>fine</p>\n" * 50


@pytest.fixture
def altering(tmp_path: Path) -> Iterator[PyftpdServer]:
    server = start_pyftpd(tmp_path / "server", xsha256=True, corrupt_uploads="data.bin")
    try:
        yield server
    finally:
        server.stop()


def site(root: Path) -> Path:
    root.mkdir()
    (root / "data.bin").write_bytes(DATA)
    (root / "page.html").write_bytes(PAGE)
    return root


def run(server: Any, src: Path, dst: str, trace: list[str] | None = None, **kw: Any) -> Report:
    sink = None if trace is None else (lambda _d, line: trace.append(line))
    return mirror_to(server, src, dst, jobs=2, retries=1, trace=sink, **kw)


def test_size_alone_passes_an_altered_upload(altering: PyftpdServer, tmp_path: Path) -> None:
    src = site(tmp_path / "site")
    report = run(altering, src, "plain")
    assert (report.uploaded, report.failed) == (2, [])
    landed = (altering.home / "plain" / "data.bin").read_bytes()
    assert len(landed) == len(DATA)
    assert landed != DATA  # what --checksum is for


def test_checksum_catches_the_altered_upload_and_leaves_no_altered_copy(
    altering: PyftpdServer, tmp_path: Path
) -> None:
    src = site(tmp_path / "site")
    report = run(altering, src, "checked", checksum=True)
    assert report.exit_code == 1
    assert [f.path for f in report.failed] == ["data.bin"]
    assert "XSHA256" in report.failed[0].error
    assert "not that of the bytes sent" in report.failed[0].error
    dst = altering.home / "checked"
    assert (dst / "page.html").read_bytes() == PAGE  # checked too, and right
    assert not (dst / "data.bin").exists()
    asked = [c for c in altering.snapshot_commands() if c.verb == "XSHA256"]
    assert {Path(c.arg).name for c in asked} == {"data.bin", "page.html"}


def test_checksum_on_proftpd_with_and_without_a_digest_command(
    proftpd: ProftpdServer, digest_proftpd: ProftpdServer, tmp_path: Path
) -> None:
    with_digest = digest_proftpd
    sent: list[str] = []
    report = run(with_digest, site(tmp_path / "a"), "checksum-hash", sent, checksum=True)
    assert (report.uploaded, report.failed, report.notes) == (2, [], [])
    assert sum(line.startswith("HASH ") for line in sent) >= 2
    assert (with_digest.home / "checksum-hash" / "data.bin").read_bytes() == DATA

    report = run(proftpd, site(tmp_path / "b"), "checksum-none", checksum=True)
    assert (report.uploaded, report.failed) == (2, [])
    assert any("checked by size only" in n for n in report.notes), report.notes
