"""Pinning a self-signed certificate with --fingerprint / FTP_FINGERPRINT (issue 4)."""

from __future__ import annotations

import hashlib
import os
import ssl
import subprocess
import sys
from pathlib import Path

from tests.servers.featsilent import FeatSilentProxy
from tests.servers.proftpd import ProftpdServer, RemoteDir

TIMEOUT = 60


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncmirror.cli", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def server_fingerprint(proftpd: ProftpdServer) -> str:
    """As `openssl x509 -noout -fingerprint -sha256` prints it: AB:CD:..."""
    pem = (proftpd.workdir / "server-cert.pem").read_text()
    # The file may hold the chain: the server's own certificate comes first.
    first = pem[: pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(first)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def untrusting_env(ftp_env: dict[str, str]) -> dict[str, str]:
    """No CA for the test server anywhere: only a pin can make it trusted."""
    env = {**os.environ, **ftp_env}
    env.pop("SSL_CERT_FILE", None)
    env.pop("FTP_FINGERPRINT", None)
    return env


def test_untrusted_certificate_message_shows_the_fingerprint_and_the_fixes(
    proftpd: ProftpdServer, ftp_env: dict[str, str], tmp_path: Path, remote_dir: RemoteDir
) -> None:
    (tmp_path / "a.txt").write_bytes(b"a")
    proc = cli(str(tmp_path), remote_dir.name, "--no-progress", env=untrusting_env(ftp_env))
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    assert f"SHA256:{server_fingerprint(proftpd)}" in proc.stderr
    for fix in ("--fingerprint", "--ca-file", "--insecure"):
        assert fix in proc.stderr
    assert not (proftpd.home / remote_dir.name).exists()


def test_pinned_fingerprint_is_accepted_from_option_and_environment(
    proftpd: ProftpdServer,
    featsilent: FeatSilentProxy,
    ftp_env: dict[str, str],
    tmp_path: Path,
    remote_dir: RemoteDir,
) -> None:
    (tmp_path / "a.txt").write_bytes(b"pinned")
    env = untrusting_env(ftp_env)
    fp = server_fingerprint(proftpd)
    proc = cli(str(tmp_path), remote_dir.name, "--no-progress", "--fingerprint", fp, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (proftpd.home / remote_dir.name / "a.txt").read_bytes() == b"pinned"

    # Colons optional, "SHA256:" prefix optional, from the environment.
    (tmp_path / "b.txt").write_bytes(b"env")
    env["FTP_FINGERPRINT"] = "sha256:" + fp.replace(":", "").lower()
    proc = cli(str(tmp_path), remote_dir.name, "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    assert (proftpd.home / remote_dir.name / "b.txt").read_bytes() == b"env"


def test_changed_certificate_is_refused_before_any_credential(
    proftpd: ProftpdServer,
    featsilent: FeatSilentProxy,
    ftp_env: dict[str, str],
    tmp_path: Path,
    remote_dir: RemoteDir,
) -> None:
    (tmp_path / "a.txt").write_bytes(b"a")
    env = untrusting_env(ftp_env)
    featsilent.reset()
    proc = cli(str(tmp_path), remote_dir.name, "--no-progress", "--fingerprint", "00" * 32, env=env)
    assert proc.returncode == 3
    assert "not the pinned one" in proc.stderr
    assert server_fingerprint(proftpd) in proc.stderr.replace("SHA256:", "")
    assert ftp_env["FTP_PASSWORD"] not in proc.stderr + proc.stdout
    # Nothing but AUTH TLS went out in clear, and nothing reached the server's disk.
    assert all(c.upper().startswith("AUTH") for c in featsilent.plaintext_commands)
    assert not (proftpd.home / remote_dir.name).exists()


def test_malformed_fingerprint_is_a_usage_error(
    ftp_env: dict[str, str], tmp_path: Path, remote_dir: RemoteDir
) -> None:
    proc = cli(
        str(tmp_path), remote_dir.name, "--fingerprint", "SHA256:XYZ", env=untrusting_env(ftp_env)
    )
    assert proc.returncode == 2
    assert "fingerprint" in proc.stderr
    assert "Traceback" not in proc.stderr
