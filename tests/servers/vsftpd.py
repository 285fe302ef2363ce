"""Start a real vsftpd 3.0.3 (Debian's) requiring TLS and TLS session reuse.

vsftpd's package conflicts with proftpd-core, so ``scripts/install-servers.sh`` unpacks it
into ``.servers/vsftpd`` (``apt-get download vsftpd && dpkg -x``) and installs its runtime
library ``libwrap0``. It has no virtual users without extra PAM modules, so it logs in a
*system* user through its own PAM service:

* the user ``amftptest`` (created here with ``useradd`` if missing; home ``/``, no shell)
  gets the test password with ``chpasswd`` on every start;
* ``/etc/pam.d/asyncmirror-test-vsftpd`` checks that password with ``pam_unix``;
* ``local_root`` points the login directory at the test's home.

All of that needs root: as another user :func:`vsftpd_unavailable_reason` says so.

The configuration is the shared-host one: ``ssl_enable``, ``force_local_logins_ssl``,
``force_local_data_ssl``, ``require_ssl_reuse``, a passive range, ``listen=YES`` in the
foreground. ``debug_ssl=YES`` makes vsftpd log every TLS handshake with "reused" or
"not reused", which is how the tests check session resumption.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .common import (
    INSTALL_SERVERS_HINT,
    ServerStartError,
    XferRecord,
    make_certificates,
    parse_xferlog,
    pick_ports,
    read_text,
    servers_dir,
    terminate_group,
    unpacked_version,
    wait_for_banner,
)

__all__ = [
    "VSFTPD_INSTALL_HINT",
    "VsftpdServer",
    "start_vsftpd",
    "vsftpd_binary",
    "vsftpd_unavailable_reason",
]

VSFTPD_INSTALL_HINT = f"vsftpd is unpacked by scripts/install-servers.sh: {INSTALL_SERVERS_HINT}"
TEST_USER = "amftptest"
PAM_SERVICE = "asyncmirror-test-vsftpd"
PAM_FILE = Path("/etc/pam.d") / PAM_SERVICE
PAM_TEXT = (
    "# asyncmirror tests (tests/servers/vsftpd.py): the test user's password only\n"
    "auth required pam_unix.so\n"
    "account required pam_permit.so\n"
    "session required pam_permit.so\n"
)


def vsftpd_binary() -> str | None:
    candidate = servers_dir() / "vsftpd" / "usr" / "sbin" / "vsftpd"
    if os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("vsftpd") or (
        "/usr/sbin/vsftpd" if os.access("/usr/sbin/vsftpd", os.X_OK) else None
    )


def vsftpd_version() -> str:
    return unpacked_version("vsftpd") or "3.0.3"


def vsftpd_unavailable_reason() -> str | None:
    binary = vsftpd_binary()
    if binary is None:
        return f"vsftpd was not found in {servers_dir() / 'vsftpd'} nor on PATH"
    if os.geteuid() != 0:
        return "vsftpd needs root here (system user, PAM service file, setuid to the user)"
    if shutil.which("useradd") is None or shutil.which("chpasswd") is None:
        return "useradd/chpasswd are missing (apt-get install passwd)"
    if not any(
        Path(d, "pam_unix.so").exists()
        for d in ("/lib/x86_64-linux-gnu/security", "/usr/lib/x86_64-linux-gnu/security")
    ) and not list(Path("/").glob("usr/lib/*/security/pam_unix.so")):
        return "pam_unix.so is missing (apt-get install libpam-modules)"
    proc = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
    if "not found" in proc.stdout:
        missing = [ln.split()[0] for ln in proc.stdout.splitlines() if "not found" in ln]
        return f"vsftpd lacks shared libraries {missing} (apt-get install libwrap0)"
    return None


@dataclass
class VsftpdServer:
    host: str
    port: int
    user: str
    password: str
    home: Path  # the login directory on disk (local_root); the client sees absolute paths
    ca_file: Path
    uid: int
    gid: int
    workdir: Path
    log_file: Path  # vsftpd_log_file: protocol + debug_ssl lines
    xferlog: Path
    config_file: Path
    passive_ports: tuple[int, int]
    version: str = "3.0.3"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def uploads(self) -> list[XferRecord]:
        """Completed or not, every upload vsftpd logged (non-ASCII bytes become ``?``)."""
        return [r for r in parse_xferlog(read_text(self.xferlog)) if r.direction == "i"]

    def log_text(self) -> str:
        return read_text(self.log_file)

    @staticmethod
    def tls_handshakes(log_slice: str) -> tuple[int, int]:
        """(handshakes that resumed a session, handshakes that did not) in a log slice."""
        lines = [ln for ln in log_slice.splitlines() if "SSL version:" in ln]
        not_reused = sum(1 for ln in lines if ", not reused," in ln)
        return len(lines) - not_reused, not_reused

    @staticmethod
    def connects(log_slice: str) -> int:
        return len(re.findall(r"\] CONNECT: Client", log_slice))

    def stop(self) -> None:
        if self.process is not None:
            terminate_group(self.process)
            self.process = None
            atexit.unregister(self.stop)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _ensure_user(password: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/",
                "--shell",
                "/usr/sbin/nologin",
                TEST_USER,
            ],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(TEST_USER)
    if entry.pw_dir != "/":
        # vsftpd enters the home before local_root: it must exist.
        subprocess.run(["usermod", "-d", "/", TEST_USER], check=True, capture_output=True)
    subprocess.run(
        ["chpasswd"], input=f"{TEST_USER}:{password}\n".encode(), check=True, capture_output=True
    )
    if read_text(PAM_FILE) != PAM_TEXT:
        PAM_FILE.write_text(PAM_TEXT)
    return entry.pw_uid, entry.pw_gid


def start_vsftpd(
    *,
    password: str = "vsftpd-secret-1",
    require_ssl_reuse: bool = True,
    passive_range_size: int = 40,
    start_timeout: float = 10.0,
) -> VsftpdServer:
    """Configure and start vsftpd in the foreground; returns once it answers 220."""
    binary = vsftpd_binary()
    reason = vsftpd_unavailable_reason()
    if binary is None or reason is not None:
        raise ServerStartError(f"vsftpd is not available: {reason}; {VSFTPD_INSTALL_HINT}")
    uid, gid = _ensure_user(password)

    # The user must be able to traverse to local_root: not under pytest's 0700 basetemp.
    workdir = Path(tempfile.mkdtemp(prefix="asyncmirror-vsftpd-"))
    workdir.chmod(0o755)
    home = workdir / "home"
    home.mkdir()
    os.chown(home, uid, gid)
    empty = workdir / "empty"  # secure_chroot_dir: root-owned, not writable by others
    empty.mkdir(mode=0o755)
    certs = make_certificates(workdir)
    log_file = workdir / "vsftpd.log"
    xferlog = workdir / "xferlog"
    config_file = workdir / "vsftpd.conf"
    stderr_file = workdir / "stderr.log"

    last_error: ServerStartError | None = None
    for _ in range(3):
        port, passive = pick_ports(passive_range_size)
        config = "\n".join(
            [
                "# Generated by tests/servers/vsftpd.py",
                "listen=YES",
                "listen_ipv6=NO",
                "listen_address=127.0.0.1",
                f"listen_port={port}",
                "background=NO",
                "anonymous_enable=NO",
                "local_enable=YES",
                "write_enable=YES",
                "local_umask=022",
                f"local_root={home}",
                f"pam_service_name={PAM_SERVICE}",
                f"secure_chroot_dir={empty}",
                "seccomp_sandbox=NO",
                "utf8_filesystem=YES",
                # TLS, as on the shared hosts; no ssl_tlsv1_2 (3.0.3 does not know it).
                "ssl_enable=YES",
                "allow_anon_ssl=NO",
                "force_local_logins_ssl=YES",
                "force_local_data_ssl=YES",
                f"require_ssl_reuse={'YES' if require_ssl_reuse else 'NO'}",
                "ssl_sslv2=NO",
                "ssl_sslv3=NO",
                "ssl_tlsv1=NO",
                "ssl_ciphers=HIGH",
                f"rsa_cert_file={certs.cert_file}",
                f"rsa_private_key_file={certs.key_file}",
                "pasv_enable=YES",
                f"pasv_min_port={passive[0]}",
                f"pasv_max_port={passive[1]}",
                "xferlog_enable=YES",
                "xferlog_std_format=YES",
                f"xferlog_file={xferlog}",
                "dual_log_enable=YES",
                f"vsftpd_log_file={log_file}",
                "log_ftp_protocol=YES",
                "debug_ssl=YES",
                "max_clients=100",
                "max_per_ip=100",
                "idle_session_timeout=600",
                "",
            ]
        )
        config_file.write_text(config)
        server = VsftpdServer(
            host="127.0.0.1",
            port=port,
            user=TEST_USER,
            password=password,
            home=home,
            ca_file=certs.ca_file,
            uid=uid,
            gid=gid,
            workdir=workdir,
            log_file=log_file,
            xferlog=xferlog,
            config_file=config_file,
            passive_ports=passive,
            version=vsftpd_version(),
        )
        with stderr_file.open("ab") as err:
            server.process = subprocess.Popen(
                [binary, str(config_file)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        atexit.register(server.stop)
        try:
            wait_for_banner(
                server.host,
                port,
                server.process,
                start_timeout,
                "vsftpd",
                (stderr_file, log_file),
            )
        except ServerStartError as exc:
            terminate_group(server.process)
            server.process = None
            atexit.unregister(server.stop)
            last_error = exc
            continue
        return server
    shutil.rmtree(workdir, ignore_errors=True)
    assert last_error is not None
    raise last_error
