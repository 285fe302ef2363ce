"""The real-server fixtures are real: ProFTPD speaks FTPS and requires TLS session reuse on
data connections, the FEAT-silent proxy stalls FEAT, and the seed's lftp recipe works.

The client here is a minimal blocking FTPS client written on ``socket`` + ``ssl``, so these
tests do not depend on the code under test.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import ssl
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.servers.featsilent import FeatSilentProxy
from tests.servers.lftp import lftp_mirror
from tests.servers.proftpd import ProftpdServer, RemoteDir, start_proftpd

TIMEOUT = 10.0


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    # Without it, small writes (a data record, then close_notify) meet delayed ACKs on
    # loopback: ~40 ms per transfer. asyncio sets TCP_NODELAY on its own.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class FtpReplyError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


class RawFtps:
    """Just enough explicit FTPS: AUTH TLS, login, PROT P, PASV transfers with TLS reuse."""

    def __init__(self, host: str, port: int, ca_file: Path, *, server_hostname: str = "127.0.0.1"):
        self.context = ssl.create_default_context(cafile=str(ca_file))
        self.server_hostname = server_hostname
        self.sock: socket.socket = _connect(host, port)
        self._buf = b""
        self.banner = self.expect(220)

    # -- control connection ---------------------------------------------------------

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawFtps:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _readline(self) -> str:
        while b"\n" not in self._buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"control connection closed; buffered {self._buf!r}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self) -> tuple[int, str]:
        first = self._readline()
        lines = [first]
        if first[3:4] == "-":
            while not (lines[-1][:3] == first[:3] and lines[-1][3:4] == " "):
                lines.append(self._readline())
        return int(first[:3]), "\n".join(lines)

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def cmd(self, line: str) -> tuple[int, str]:
        self.send(line)
        return self.reply()

    def expect(self, code: int, line: str | None = None) -> str:
        got, text = self.cmd(line) if line is not None else self.reply()
        if got != code:
            raise FtpReplyError(got, text)
        return text

    def login(self, user: str, password: str) -> None:
        self.expect(234, "AUTH TLS")
        assert not self._buf, "bytes after 234 before the TLS handshake"
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.server_hostname)
        self.expect(331, f"USER {user}")
        self.expect(230, f"PASS {password}")
        self.expect(200, "PBSZ 0")
        self.expect(200, "PROT P")
        self.expect(200, "TYPE I")

    @property
    def tls_session(self) -> ssl.SSLSession | None:
        assert isinstance(self.sock, ssl.SSLSocket)
        return self.sock.session

    # -- data connections -------------------------------------------------------------

    def pasv(self) -> tuple[str, int]:
        text = self.expect(227, "PASV")
        match = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", text)
        assert match, text
        nums = [int(x) for x in match.groups()]
        return ".".join(map(str, nums[:4])), nums[4] * 256 + nums[5]

    def _transfer(
        self, command: str, payload: bytes | None, *, reuse: bool
    ) -> tuple[int, str, bytes, bool | None, BaseException | None]:
        """PASV, plain TCP connect, send the command, *then* the data TLS handshake.

        Returns (final code, text, received bytes, session_reused, data-side error).
        """
        host, port = self.pasv()
        received = b""
        reused: bool | None = None
        error: BaseException | None = None
        with _connect(host, port) as raw:
            self.send(command)
            try:
                with self.context.wrap_socket(
                    raw,
                    server_hostname=self.server_hostname,
                    session=self.tls_session if reuse else None,
                ) as data:
                    reused = data.session_reused
                    if payload is not None:
                        data.sendall(payload)
                    else:
                        while chunk := data.recv(65536):
                            received += chunk
                    with contextlib.suppress(ssl.SSLError, OSError):
                        data.unwrap()  # close_notify, so the server sees a clean end
            except (ssl.SSLError, OSError) as exc:
                error = exc
        code, text = self.reply()
        while 100 <= code < 200:
            code, text = self.reply()
        return code, text, received, reused, error

    def stor(self, path: str, payload: bytes, *, reuse: bool = True) -> tuple[int, str]:
        code, text, _, reused, error = self._transfer(f"STOR {path}", payload, reuse=reuse)
        if reuse and code == 226:
            assert reused, "the data connection did not resume the control TLS session"
            assert error is None, error
        return code, text

    def mlsd(self, path: str = "") -> dict[str, dict[str, str]]:
        code, text, received, _, error = self._transfer(f"MLSD {path}".rstrip(), None, reuse=True)
        assert code == 226, (text, error)
        entries: dict[str, dict[str, str]] = {}
        for line in received.decode().splitlines():
            facts, _, name = line.partition(" ")
            entries[name] = {
                k.lower(): v for k, _, v in (f.partition("=") for f in facts.split(";") if f)
            }
        return entries


def _client(server: ProftpdServer | FeatSilentProxy, ca_file: Path) -> RawFtps:
    return RawFtps(server.host, server.port, ca_file)


def _mtime_utc(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y%m%d%H%M%S")


# ---------------------------------------------------------------------------------


def test_stor_with_session_reuse(proftpd: ProftpdServer, remote_dir: RemoteDir) -> None:
    payload = os.urandom(300_000)
    with _client(proftpd, proftpd.ca_file) as ftp:
        ftp.login(proftpd.user, proftpd.password)
        assert ftp.tls_session is not None
        assert ftp.cmd(f"MKD {remote_dir.name}")[0] == 257
        code, text = ftp.stor(f"{remote_dir.name}/data.bin", payload)
        assert code == 226, text
        ftp.cmd("QUIT")

    assert (remote_dir.path / "data.bin").read_bytes() == payload
    assert f"{remote_dir.name}/data.bin" in proftpd.stored_paths(completed_only=True)
    assert "client reused TLS session for data connection" in proftpd.tls_log_text()


def test_stor_without_session_reuse_is_rejected(
    proftpd: ProftpdServer, remote_dir: RemoteDir
) -> None:
    before = proftpd.tls_log_text().count("client did not reuse TLS session")
    with _client(proftpd, proftpd.ca_file) as ftp:
        ftp.login(proftpd.user, proftpd.password)
        assert ftp.cmd(f"MKD {remote_dir.name}")[0] == 257
        code, text = ftp.stor(f"{remote_dir.name}/fresh.bin", b"x" * 1000, reuse=False)
        assert code in (425, 426, 450), text
        # The control connection survives the rejection, and reuse still works on it.
        code, text = ftp.stor(f"{remote_dir.name}/reused.bin", b"y" * 1000)
        assert code == 226, text

    assert proftpd.tls_log_text().count("client did not reuse TLS session") == before + 1
    completed = proftpd.stored_paths(completed_only=True)
    assert f"{remote_dir.name}/fresh.bin" not in completed
    assert f"{remote_dir.name}/reused.bin" in completed


def test_mlsd_mfmt_and_site_utime(proftpd: ProftpdServer, remote_dir: RemoteDir) -> None:
    with _client(proftpd, proftpd.ca_file) as ftp:
        ftp.login(proftpd.user, proftpd.password)
        assert ftp.cmd(f"MKD {remote_dir.name}")[0] == 257
        assert ftp.stor(f"{remote_dir.name}/a.txt", b"hello")[0] == 226
        assert ftp.stor(f"{remote_dir.name}/b.txt", b"world!")[0] == 226

        code, text = ftp.cmd(f"MFMT 20200102030405 {remote_dir.name}/a.txt")
        assert code == 213, text
        code, text = ftp.cmd(f"SITE UTIME 20210102030405 {remote_dir.name}/b.txt")
        assert code == 200, text

        entries = ftp.mlsd(remote_dir.name)
        assert entries["a.txt"]["type"] == "file"
        assert entries["a.txt"]["size"] == "5"
        assert entries["a.txt"]["modify"] == "20200102030405"
        assert entries["b.txt"]["modify"] == "20210102030405"
        assert entries["."]["type"] == "cdir"

    assert _mtime_utc(remote_dir.path / "a.txt") == "20200102030405"
    assert _mtime_utc(remote_dir.path / "b.txt") == "20210102030405"


def test_featsilent_swallows_feat_before_auth(featsilent: FeatSilentProxy) -> None:
    with socket.create_connection((featsilent.host, featsilent.port), timeout=TIMEOUT) as sock:
        assert sock.recv(4096).startswith(b"220")
        sock.sendall(b"FEAT\r\n")
        sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            sock.recv(4096)
        # Like the real host, the connection stays stalled.
        sock.sendall(b"AUTH TLS\r\n")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(4096)

    assert featsilent.feat_seen
    assert featsilent.plaintext_commands == ["FEAT", "AUTH TLS"]
    assert featsilent.connections == 1


def test_featsilent_is_transparent_after_auth_tls(
    featsilent: FeatSilentProxy, proftpd: ProftpdServer, remote_dir: RemoteDir
) -> None:
    with _client(featsilent, proftpd.ca_file) as ftp:
        ftp.login(proftpd.user, proftpd.password)
        assert ftp.cmd(f"MKD {remote_dir.name}")[0] == 257
        code, text = ftp.stor(f"{remote_dir.name}/via-proxy.txt", b"through the proxy")
        assert code == 226, text
        ftp.cmd("QUIT")

    assert (remote_dir.path / "via-proxy.txt").read_bytes() == b"through the proxy"
    assert not featsilent.feat_seen
    assert featsilent.plaintext_commands == ["AUTH TLS"]  # USER/PASS went inside TLS
    assert featsilent.connections == 1


def test_lftp_seed_recipe_through_featsilent(
    featsilent: FeatSilentProxy,
    proftpd: ProftpdServer,
    remote_dir: RemoteDir,
    tmp_path: Path,
) -> None:
    src = tmp_path / "site"
    (src / "sub").mkdir(parents=True)
    (src / "index.html").write_text("<h1>hi</h1>")
    (src / "sub" / "page.html").write_text("page")
    (src / ".htaccess").write_text("hidden")
    lftp_mirror(proftpd, src, remote_dir.name, via=(featsilent.host, featsilent.port))
    assert (remote_dir.path / "index.html").read_text() == "<h1>hi</h1>"
    assert (remote_dir.path / "sub" / "page.html").read_text() == "page"
    assert not (remote_dir.path / ".htaccess").exists()
    assert not featsilent.feat_seen
    assert "client reused TLS session for data connection" in proftpd.tls_log_text()


def test_max_clients_and_proxy_421(tmp_path: Path, proftpd: ProftpdServer) -> None:
    # ProFTPD refuses the login beyond MaxClientsPerUser with 530 (never 421) ...
    server = start_proftpd(tmp_path / "limited", max_clients=1)
    try:
        with _client(server, server.ca_file) as first:
            first.login(server.user, server.password)
            with _client(server, server.ca_file) as second, pytest.raises(FtpReplyError) as info:
                second.login(server.user, server.password)
            assert info.value.code == 530
            assert "maximum number of clients" in info.value.text
    finally:
        server.stop()

    # ... while many shared hosts answer 421 on connect: the proxy can emulate that.
    proxy = FeatSilentProxy(proftpd.host, proftpd.port, max_connections=1)
    proxy.start_in_thread()
    try:
        with _client(proxy, proftpd.ca_file) as first:
            first.login(proftpd.user, proftpd.password)
            with socket.create_connection((proxy.host, proxy.port), timeout=TIMEOUT) as sock:
                assert sock.recv(4096).startswith(b"421 ")
        deadline = time.monotonic() + 5
        while proxy.active_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        with _client(proxy, proftpd.ca_file) as again:  # the slot is free again
            again.login(proftpd.user, proftpd.password)
        assert proxy.refused_connections == 1
    finally:
        proxy.stop_thread()
