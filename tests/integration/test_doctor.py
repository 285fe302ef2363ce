"""``--doctor`` against real servers: each fact it reports is the server's configured one.

* ProFTPD with ``mod_digest`` loaded: ``HASH`` (and the X* digests), MLSD, MFMT,
  session reuse required, TLS 1.3 and 1.2 both accepted;
* ProFTPD with ``TLSProtocol TLSv1.2`` only: TLS 1.3 refused;
* ProFTPD with ``MaxClientsPerUser 3``: a limit of 3, and ``-j 3`` recommended;
* vsftpd 3.0.3: no MLST, no MLSD, no MFMT;
* pyftpdlib whose PASV names 10.255.255.1 (never dialled): flagged; no session
  reuse required; LIST times in Asia/Tokyo guessed as UTC+9 on another variant.

Every diagnosis must leave DST as it found it (the temporary file removed), and
the command exits 0 after a login, printing the table or valid JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from asyncmirror.diagnosis import Findings, recommended_flags
from asyncmirror.doctor import TEMP_PREFIX, diagnose
from asyncmirror.login import ServerConfig
from asyncmirror.transport import TLSPolicy
from tests.servers.proftpd import (
    INSTALL_HINT,
    ProftpdServer,
    proftpd_unavailable_reason,
    start_proftpd,
)
from tests.servers.pyftpd import PyftpdServer, start_pyftpd
from tests.servers.vsftpd import VsftpdServer, start_vsftpd, vsftpd_unavailable_reason

TIMEOUT = 10.0
UNROUTABLE = "10.255.255.1"
DST = "site"


def require(reason: str | None, what: str) -> None:
    if reason is None:
        return
    message = f"{what} is not available ({reason}); {INSTALL_HINT}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def config_for(server: Any) -> ServerConfig:
    return ServerConfig(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        tls=TLSPolicy(ca_file=str(server.ca_file)),
        timeout=TIMEOUT,
    )


def make_dst(home: Path, owner: tuple[int, int] | None = None) -> Path:
    """DST with a few files in it, owned by the FTP user."""
    dst = home / DST
    dst.mkdir(exist_ok=True)
    (dst / "index.html").write_bytes(b"<h1>hello</h1>\n")
    (dst / ".htaccess").write_bytes(b"Require all granted\n")
    (dst / "sub").mkdir(exist_ok=True)
    (dst / "sub" / "a.css").write_bytes(b"body{}\n")
    if owner is not None:
        for path in (dst, *dst.rglob("*")):
            os.chown(path, *owner)
    return dst


def listing(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every entry under ``root``: kind, size, mtime (ns) -- what a listing shows."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        kind = "dir" if path.is_dir() else "file"
        out[path.relative_to(root).as_posix()] = (
            kind,
            st.st_size if kind == "file" else 0,
            st.st_mtime_ns if kind == "file" else 0,
        )
    return out


def leftovers(home: Path) -> list[Path]:
    return list(home.rglob(TEMP_PREFIX + "*"))


async def diagnosed(server: Any, home: Path, **kwargs: Any) -> Findings:
    """Diagnose ``server`` and check it left DST exactly as it was."""
    dst = home / DST
    before = listing(dst)
    findings = await diagnose(config_for(server), DST, **kwargs)
    assert listing(dst) == before
    assert leftovers(home) == []
    assert findings.logged_in
    assert findings.notes == [], findings.notes
    return findings


# --- servers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digest_proftpd(digest_proftpd: ProftpdServer) -> ProftpdServer:
    """conftest's ProFTPD with mod_digest, with DST in it."""
    st = digest_proftpd.home.stat()
    make_dst(digest_proftpd.home, (st.st_uid, st.st_gid))
    return digest_proftpd


@pytest.fixture(scope="module")
def limited_proftpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProftpdServer]:
    require(proftpd_unavailable_reason(), "ProFTPD with mod_tls")
    server = start_proftpd(
        tmp_path_factory.mktemp("limit3"), tls_protocols="TLSv1.2", max_clients=3
    )
    st = server.home.stat()
    make_dst(server.home, (st.st_uid, st.st_gid))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def vsftpd() -> Iterator[VsftpdServer]:
    require(vsftpd_unavailable_reason(), "vsftpd")
    server = start_vsftpd()
    make_dst(server.home, (server.uid, server.gid))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def masqueraded(tmp_path: Path) -> Iterator[PyftpdServer]:
    server = start_pyftpd(tmp_path, epsv=False, masquerade_address=UNROUTABLE)
    make_dst(server.home)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tokyo(tmp_path: Path) -> Iterator[PyftpdServer]:
    server = start_pyftpd(tmp_path, mlsd=False, list_timezone=ZoneInfo("Asia/Tokyo"))
    make_dst(server.home)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def filtered(tmp_path: Path) -> Iterator[PyftpdServer]:
    server = start_pyftpd(tmp_path, refuse_data=True)
    make_dst(server.home)
    try:
        yield server
    finally:
        server.stop()


# --- the facts ---------------------------------------------------------------------------


async def test_proftpd_with_mod_digest(digest_proftpd: ProftpdServer) -> None:
    f = await diagnosed(digest_proftpd, digest_proftpd.home)
    assert f.digests == ("HASH", "XSHA256", "XSHA1", "XMD5", "XCRC")
    assert (f.tls13, f.tls12, f.tls_version) == (True, True, "TLSv1.3")
    assert f.session_reuse_required is True
    assert (f.mlst, f.mlsd, f.list_, f.mfmt, f.size, f.writable) == (True,) * 6
    assert f.list_utc_offset == 0.0
    assert (f.epsv, f.pasv, f.pasv_problem, f.data_refused) == (True, True, "", False)
    assert f.connection_limit is None
    assert f.connections_tried == 8
    assert f.mode_z is False  # mod_deflate is not loaded
    assert f.clock_skew is not None
    assert abs(f.clock_skew) < 2
    # trustme's CA is not in the default trust store; the certificate is described anyway.
    assert f.trusted_by_default is False
    assert f.trust_error
    assert f.certificate is not None
    assert "trustme" in f.certificate.issuer


async def test_proftpd_limit_of_3_and_tls12_only(limited_proftpd: ProftpdServer) -> None:
    limited_proftpd.wait_sessions_gone()  # a slot still held by another test's session
    f = await diagnosed(limited_proftpd, limited_proftpd.home, jobs=8)
    assert f.connection_limit == 3
    assert "maximum number of clients" in f.limit_reply
    assert (f.tls13, f.tls12, f.tls_version) == (False, True, "TLSv1.2")
    assert f.digests == ()  # mod_digest not loaded
    assert recommended_flags(f) == ["-j 3"]


async def test_vsftpd_has_no_mlst_and_no_mfmt(vsftpd: VsftpdServer) -> None:
    f = await diagnosed(vsftpd, vsftpd.home)
    assert (f.mlst, f.mlsd, f.mfmt, f.site_utime) == (False, False, False, False)
    assert f.list_ is True
    assert f.size is True
    assert f.session_reuse_required is True  # require_ssl_reuse=YES


async def test_pyftpdlib_unroutable_pasv_is_flagged(masqueraded: PyftpdServer) -> None:
    f = await diagnosed(masqueraded, masqueraded.home, jobs=2)
    assert f.epsv is False
    assert f.pasv is True
    assert f.pasv_address == UNROUTABLE
    assert f.pasv_problem == "private"
    assert f.data_refused is False  # asyncmirror dials the control address instead
    assert f.session_reuse_required is False


async def test_list_time_zone_is_guessed(tokyo: PyftpdServer) -> None:
    f = await diagnosed(tokyo, tokyo.home, jobs=1)
    assert (f.mlst, f.mlsd, f.list_) == (False, False, True)
    assert f.list_utc_offset == 9.0
    assert recommended_flags(f) == ["--remote-timezone Etc/GMT-9"]


async def test_untrusted_certificate_is_described_without_logging_in(
    masqueraded: PyftpdServer,
) -> None:
    config = config_for(masqueraded)._replace(tls=TLSPolicy())  # no --ca-file
    f = await diagnose(config, DST, jobs=2)
    assert f.logged_in is False
    assert f.trusted_by_default is False
    assert f.certificate is not None
    assert (f.tls13, f.tls12) == (True, True)
    assert [c.verb for c in masqueraded.snapshot_commands() if c.verb in ("USER", "PASS")] == []
    assert f.digests is None  # not found out: "?" in the table, not "none"


def test_foreign_ip_filter_pattern(filtered: PyftpdServer) -> None:
    before = listing(filtered.home / DST)
    done = run_doctor(filtered, DST, "-j", "2")
    assert done.returncode == 0, done.stderr  # the login worked
    assert "REFUSED (login works, data does not" in done.stdout
    assert "allow this machine's address" in done.stdout
    assert listing(filtered.home / DST) == before
    verbs = [c.verb for c in filtered.snapshot_commands()]
    assert "STOR" not in verbs  # nothing tried on DST once data is known refused


# --- the command -------------------------------------------------------------------------


def run_doctor(
    server: Any, *args: str, password: str | None = None, ca_file: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTP_")}
    env.update(
        FTP_SERVER=f"{server.host}:{server.port}",
        FTP_USERNAME=server.user,
        FTP_PASSWORD=server.password if password is None else password,
    )
    argv = [sys.executable, "-m", "asyncmirror.cli", "--doctor"]
    if ca_file:
        argv += ["--ca-file", str(server.ca_file)]
    return subprocess.run(
        [*argv, "--timeout", str(TIMEOUT), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_command_prints_the_table(digest_proftpd: ProftpdServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "css").mkdir(parents=True)
    (src / "index.html").write_bytes(b"x" * 1000)
    (src / "css" / "a.css").write_bytes(b"y" * 500)
    before = listing(digest_proftpd.home / DST)
    done = run_doctor(digest_proftpd, str(src), DST, "-j", "4")
    assert done.returncode == 0, done.stderr
    assert listing(digest_proftpd.home / DST) == before
    rows = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition("  ")
        rows[name.strip()] = value.strip()
    assert rows["digests"] == "HASH, XSHA256, XSHA1, XMD5, XCRC"
    assert rows["session reuse"] == "required"
    assert rows["connections"] == "no limit up to 4"
    assert rows["DST writable"] == f"yes ({DST})"
    assert "2 files, 1 dirs, -j 4" in rows["estimate"]
    assert done.stdout.rstrip().splitlines()[-1] == "recommended flags: none"
    assert digest_proftpd.password not in done.stdout + done.stderr


def test_command_prints_json(limited_proftpd: ProftpdServer) -> None:
    limited_proftpd.wait_sessions_gone()  # a slot still held by another test's session
    done = run_doctor(limited_proftpd, "--json", DST)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["connection_limit"] == 3
    assert data["recommended_flags"] == ["-j 3"]
    assert data["tls"]["tls13"] is False


def test_command_without_dst_probes_the_home(masqueraded: PyftpdServer) -> None:
    done = run_doctor(masqueraded, "--json", "-j", "2")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["writable"] is True
    assert data["connection_limit"] is None
    assert leftovers(masqueraded.home) == []


def test_command_exits_3_but_reports_an_untrusted_certificate(
    masqueraded: PyftpdServer,
) -> None:
    done = run_doctor(masqueraded, DST, "--json", ca_file=False)
    assert done.returncode == 3
    data = json.loads(done.stdout)
    assert data["logged_in"] is False
    assert data["tls"]["certificate"]["sha256"]
    assert data["recommended_flags"] == [
        "--fingerprint SHA256:" + data["tls"]["certificate"]["sha256"].upper()
    ]


def test_command_exits_3_when_the_login_is_refused(masqueraded: PyftpdServer) -> None:
    done = run_doctor(masqueraded, DST, password="wrong-password")
    assert done.returncode == 3
    assert "refused the login" in done.stderr
    assert done.stdout == ""
