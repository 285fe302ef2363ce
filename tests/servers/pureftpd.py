"""Start a real pure-ftpd 1.0.50 (Debian's) that requires TLS on control and data.

pure-ftpd's package conflicts with proftpd-core, so ``scripts/install-servers.sh`` unpacks
it into ``.servers/pure-ftpd`` (``apt-get download pure-ftpd && dpkg -x``); its runtime
library ``libsodium23`` is installed with apt-get.

It runs as root in the foreground with a virtual user in a PureDB file: ``pure-pw mkdb``
compiles a text passwd file whose hash is SHA-512 crypt (``openssl passwd -6``) -- the
argon2 hash ``pure-pw useradd`` makes costs pure-ftpd 2.5 s per login. ``--tls=3``
requires TLS on the control *and* the data connections; ``--certfile`` names the PEM
(key and chain). ``--altlog xferlog:FILE`` records every transfer.

pure-ftpd does not require (nor log) TLS session resumption on data connections.
"""

from __future__ import annotations

import atexit
import os
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
    "PUREFTPD_INSTALL_HINT",
    "PureftpdServer",
    "pureftpd_unavailable_reason",
    "start_pureftpd",
]

PUREFTPD_INSTALL_HINT = (
    f"pure-ftpd is unpacked by scripts/install-servers.sh: {INSTALL_SERVERS_HINT}"
)
_NOBODY = 65534


def _binaries() -> tuple[str, str] | None:
    base = servers_dir() / "pure-ftpd" / "usr"
    daemon, pw = base / "sbin" / "pure-ftpd", base / "bin" / "pure-pw"
    if os.access(daemon, os.X_OK) and os.access(pw, os.X_OK):
        return str(daemon), str(pw)
    found_daemon, found_pw = shutil.which("pure-ftpd"), shutil.which("pure-pw")
    if found_daemon and found_pw:
        return found_daemon, found_pw
    return None


def pureftpd_version() -> str:
    return unpacked_version("pure-ftpd") or "1.0.50"


def pureftpd_unavailable_reason() -> str | None:
    binaries = _binaries()
    if binaries is None:
        return f"pure-ftpd was not found in {servers_dir() / 'pure-ftpd'} nor on PATH"
    if os.geteuid() != 0:
        return "pure-ftpd needs root here (it switches to the virtual user's uid)"
    if shutil.which("openssl") is None:
        return "openssl is missing (for the test user's password hash)"
    proc = subprocess.run(["ldd", binaries[0]], capture_output=True, text=True, check=False)
    if "not found" in proc.stdout:
        missing = [ln.split()[0] for ln in proc.stdout.splitlines() if "not found" in ln]
        return f"pure-ftpd lacks shared libraries {missing} (apt-get install libsodium23)"
    return None


@dataclass
class PureftpdServer:
    host: str
    port: int
    user: str
    password: str
    home: Path  # the virtual user's home; chrooted, so the client sees it as "/"
    ca_file: Path
    uid: int
    gid: int
    workdir: Path
    xferlog: Path
    passive_ports: tuple[int, int]
    version: str = "1.0.50"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def uploads(self) -> list[XferRecord]:
        return [r for r in parse_xferlog(read_text(self.xferlog)) if r.direction == "i"]

    def stop(self) -> None:
        if self.process is not None:
            terminate_group(self.process)
            self.process = None
            atexit.unregister(self.stop)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_pureftpd(
    *,
    user: str = "amtest",
    password: str = "pure-secret-1",
    tls_mode: int = 3,
    passive_range_size: int = 40,
    start_timeout: float = 10.0,
) -> PureftpdServer:
    """Configure and start pure-ftpd in the foreground; returns once it answers 220."""
    binaries = _binaries()
    reason = pureftpd_unavailable_reason()
    if binaries is None or reason is not None:
        raise ServerStartError(f"pure-ftpd is not available: {reason}; {PUREFTPD_INSTALL_HINT}")
    daemon, pure_pw = binaries

    workdir = Path(tempfile.mkdtemp(prefix="asyncmirror-pureftpd-"))
    workdir.chmod(0o755)
    home = workdir / "home"
    home.mkdir()
    os.chown(home, _NOBODY, _NOBODY)
    certs = make_certificates(workdir)
    xferlog = workdir / "xferlog"
    stderr_file = workdir / "stderr.log"
    passwd_file = workdir / "pureftpd.passwd"
    pdb_file = workdir / "pureftpd.pdb"

    digest = (
        subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"],
            input=password.encode() + b"\n",
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    # login:hash:uid:gid:gecos:home/./ (the "/./" chroots there) and the unused limits.
    passwd_file.write_text(f"{user}:{digest}:{_NOBODY}:{_NOBODY}::{home}/./" + ":" * 12 + "\n")
    passwd_file.chmod(0o600)
    subprocess.run(
        [pure_pw, "mkdb", str(pdb_file), "-f", str(passwd_file)], check=True, capture_output=True
    )

    last_error: ServerStartError | None = None
    for _ in range(3):
        port, passive = pick_ports(passive_range_size)
        argv = [
            daemon,
            f"--bind=127.0.0.1,{port}",
            f"--passiveportrange={passive[0]}:{passive[1]}",
            f"--tls={tls_mode}",
            f"--certfile={certs.combined_file}",
            f"--login=puredb:{pdb_file}",
            "--noanonymous",
            "--dontresolve",
            "--chrooteveryone",
            "--minuid=1",
            "--maxclientsnumber=100",
            "--maxclientsperip=100",
            f"--altlog=xferlog:{xferlog}",
            "--syslogfacility=none",
            f"--pidfile={workdir / 'pure-ftpd.pid'}",
            "--ipv4only",
        ]
        server = PureftpdServer(
            host="127.0.0.1",
            port=port,
            user=user,
            password=password,
            home=home,
            ca_file=certs.ca_file,
            uid=_NOBODY,
            gid=_NOBODY,
            workdir=workdir,
            xferlog=xferlog,
            passive_ports=passive,
            version=pureftpd_version(),
        )
        with stderr_file.open("ab") as err:
            server.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        atexit.register(server.stop)
        try:
            wait_for_banner(
                server.host, port, server.process, start_timeout, "pure-ftpd", (stderr_file,)
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
