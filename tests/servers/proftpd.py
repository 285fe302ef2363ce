"""Start a real ProFTPD (1.3.8, mod_tls) for tests and benchmarks.

The server is configured like the shared hosts asyncmirror targets: explicit FTPS
(``AUTH TLS``), TLS required on control and data connections, and (by default) data
connections must resume the control connection's TLS session.

Typical use::

    server = start_proftpd(tmp_path)
    try:
        ...  # connect to server.host:server.port, trust server.ca_file
    finally:
        server.stop()

It needs the ``proftpd`` binary with ``mod_tls`` (Debian: ``apt-get install proftpd-core
proftpd-mod-crypto``) and works best as root (chroot, ``User nobody``); as a normal user
it runs without chroot, as that user.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import random
import re
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .common import (
    ServerStartError,
    ephemeral_port_range,
    port_is_free,
    port_windows,
    read_text,
    terminate_group,
    wait_for_banner,
)

__all__ = [
    "ProftpdServer",
    "ProftpdStartError",
    "RemoteDir",
    "TransferRecord",
    "proftpd_available",
    "proftpd_binary",
    "proftpd_unavailable_reason",
    "start_proftpd",
]

INSTALL_HINT = (
    "install ProFTPD with mod_tls: "
    "sudo apt-get install -y proftpd-core proftpd-mod-crypto lftp "
    "(or run `bash scripts/test.sh`, which installs it)"
)

_NOBODY_UID = 65534
_NOGROUP_GID = 65534
# Where to look for the port ranges we use: outside the kernel's ephemeral range.
_DEFAULT_PASSIVE_RANGE_SIZE = 200
_START_TIMEOUT = 10.0


class ProftpdStartError(ServerStartError):
    """ProFTPD did not start (the message carries the tail of its logs)."""


class TransferRecord(NamedTuple):
    """One line of the xferlog-format TransferLog."""

    path: str  # relative to the FTP home, e.g. "t-x/a.txt" (the log has the disk path)
    size: int
    direction: str  # "i" upload (STOR/APPE), "o" download, "d" delete
    completed: bool  # completion status "c" (True) or "i" incomplete (False)
    user: str
    raw: str


@dataclass(frozen=True)
class RemoteDir:
    """A directory on the test server: ``name`` relative to the FTP home, ``path`` on disk."""

    name: str
    path: Path


@dataclass
class ProftpdServer:
    """A running ProFTPD; see :func:`start_proftpd`."""

    host: str
    port: int
    user: str
    password: str
    home: Path  # the FTP user's home on disk (the chroot: "/" for the client)
    ca_file: Path  # PEM of the CA that signed the server certificate
    transfer_log: Path
    tls_log: Path
    passive_ports: tuple[int, int] = (0, 0)
    workdir: Path = field(default_factory=Path)
    config_file: Path = field(default_factory=Path)
    system_log: Path = field(default_factory=Path)
    chroot: bool = True
    external_home: bool = False  # home was created outside workdir: stop() removes it
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # -- logs -----------------------------------------------------------------

    def transfers(self) -> list[TransferRecord]:
        """Parsed TransferLog lines, oldest first (``path`` relative to ``home``)."""
        try:
            text = self.transfer_log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        records = []
        for line in text.splitlines():
            rec = _parse_xferlog_line(line)
            if rec is not None:
                records.append(rec._replace(path=self._relative_to_home(rec.path)))
        return records

    def stor_count(self, *, completed_only: bool = False) -> int:
        """Number of uploads logged (TransferLog lines with direction ``i``).

        A STOR that the server rejected or that broke off is logged too (status ``i``,
        incomplete) unless ``completed_only``.
        """
        return len(self.stored_paths(completed_only=completed_only))

    def stored_paths(self, *, completed_only: bool = False) -> list[str]:
        """Paths of logged uploads, relative to ``home`` (``"dir/a.txt"``), oldest first.

        ProFTPD logs the real path on disk; it is made relative to ``home`` here. Note that
        its xferlog replaces whitespace in names with ``_``.
        """
        return [
            rec.path
            for rec in self.transfers()
            if rec.direction == "i" and (rec.completed or not completed_only)
        ]

    def _relative_to_home(self, logged: str) -> str:
        for base in dict.fromkeys([str(self.home), os.path.realpath(self.home)]):
            if logged.startswith(base.rstrip("/") + "/"):
                return logged[len(base.rstrip("/")) + 1 :]
        return logged

    def tls_log_text(self) -> str:
        return read_text(self.tls_log)

    def system_log_text(self) -> str:
        return read_text(self.system_log)

    # -- clients ---------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def path_on_disk(self, remote_path: str) -> Path:
        """Map a path as the FTP client sees it (absolute or relative to home) to disk."""
        return self.home / remote_path.lstrip("/")

    # -- lifecycle -------------------------------------------------------------

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_sessions_gone(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until the master has no session processes left: a session
        just closed still holds its slot (MaxClientsPerUser counts it) until its
        process exits, which a loaded machine makes take a while."""
        if self.process is None:
            return
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not children.read_text().split():
                    return
            except OSError:
                return  # no such file (old kernel) or the server is gone
            time.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate ProFTPD and its session processes (its own process group). Idempotent."""
        proc = self.process
        if proc is None:
            return
        terminate_group(proc, timeout)
        self.process = None
        atexit.unregister(self.stop)
        if self.external_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> ProftpdServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------
# availability


def proftpd_binary() -> str | None:
    found = shutil.which("proftpd")
    if found:
        return found
    for candidate in ("/usr/sbin/proftpd", "/usr/local/sbin/proftpd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


@functools.cache
def _compiled_in_modules(binary: str) -> frozenset[str]:
    out = _run_quiet([binary, "-l"])
    return frozenset(m for m in re.findall(r"\bmod_\w+\.c\b", out))


@functools.cache
def _module_dir(binary: str) -> Path | None:
    out = _run_quiet([binary, "-V"])
    m = re.search(r"Shared Module Directory:\s*(\S+)", out)
    candidates = [Path(m.group(1))] if m else []
    candidates += [
        Path("/usr/lib/proftpd"),
        Path("/usr/libexec/proftpd"),
        Path("/usr/local/libexec/proftpd"),
        Path("/usr/lib64/proftpd"),
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def _module_lines(binary: str, modules: Sequence[str]) -> tuple[list[str], list[str]]:
    """Config lines loading ``modules`` (``mod_x.c``), and the modules that are missing."""
    compiled = _compiled_in_modules(binary)
    moddir = _module_dir(binary)
    lines: list[str] = []
    missing: list[str] = []
    for module in modules:
        if module in compiled:
            continue
        if moddir is not None and (moddir / (module[:-2] + ".so")).is_file():
            lines.append(f"LoadModule {module}")
        else:
            missing.append(module)
    if lines:
        lines.insert(0, f"ModulePath {moddir}")
    return lines, missing


@functools.cache
def proftpd_unavailable_reason() -> str | None:
    """``None`` when ProFTPD with a loadable mod_tls is present, else why not."""
    binary = proftpd_binary()
    if binary is None:
        return "the proftpd binary was not found"
    try:
        load, missing = _module_lines(binary, ["mod_tls.c"])
    except OSError as exc:
        return f"cannot run {binary}: {exc}"
    if missing:
        return f"{binary} has no mod_tls (neither compiled in nor in its module directory)"
    # Let proftpd itself check that the module loads.
    with tempfile.TemporaryDirectory(prefix="proftpd-check-") as tmp:
        conf = Path(tmp) / "check.conf"
        conf.write_text(
            "\n".join(
                [
                    "ServerType standalone",
                    "Port 0",
                    "DefaultAddress 127.0.0.1",
                    "WtmpLog off",
                    "DelayTable none",
                    f"ScoreboardFile {tmp}/scoreboard",
                    f"PidFile {tmp}/pid",
                    *load,
                    "<IfModule !mod_tls.c>",
                    "  NoSuchDirectiveMeansModTlsDidNotLoad on",
                    "</IfModule>",
                    "TLSEngine off",
                    "",
                ]
            )
        )
        try:
            proc = subprocess.run(
                [binary, "-t", "-c", str(conf)],
                capture_output=True,
                timeout=20,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot run {binary} -t: {exc}"
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).decode(errors="replace").strip()
            return f"{binary} cannot load mod_tls: {out[-500:]}"
    return None


def require_proftpd() -> None:
    """For a test that needs ProFTPD: fail under ``CI=true`` (never skip there), else skip,
    saying what is missing and how to install it."""
    import pytest  # not at the top: benchmarks import this module without pytest

    reason = proftpd_unavailable_reason()
    if reason is None:
        return
    message = f"real-server tests need ProFTPD with mod_tls ({reason}); {INSTALL_HINT}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def proftpd_available() -> bool:
    """True when a ProFTPD binary is present and mod_tls loads."""
    return proftpd_unavailable_reason() is None


# ---------------------------------------------------------------------------
# ports


def _pick_ports(
    passive_size: int, host: str, fixed_passive: tuple[int, int] | None
) -> tuple[int, tuple[int, int]]:
    rng = random.SystemRandom()
    for lo, hi in port_windows():
        span = hi - lo + 1
        if span < passive_size + 1:
            continue
        for _ in range(50):
            if fixed_passive is None:
                start = rng.randint(lo, hi - passive_size + 1)
                passive = (start, start + passive_size - 1)
                if not all(port_is_free(p, host) for p in range(passive[0], passive[1] + 1)):
                    continue
            else:
                passive = fixed_passive
            control = rng.randint(lo, hi)
            if passive[0] <= control <= passive[1] or not port_is_free(control, host):
                continue
            return control, passive
    raise ProftpdStartError(f"no free ports outside the ephemeral range {ephemeral_port_range()}")


# ---------------------------------------------------------------------------
# start


def _sha512_crypt(password: str) -> str:
    openssl = shutil.which("openssl")
    if openssl:
        proc = subprocess.run(
            [openssl, "passwd", "-6", "-stdin"],
            input=password.encode() + b"\n",
            capture_output=True,
            check=True,
            timeout=20,
        )
        return proc.stdout.decode().strip()
    import warnings  # pragma: no cover - only without openssl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # type: ignore[import-not-found,unused-ignore]  # removed in Python 3.13

        return str(crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512)))


def start_proftpd(
    workdir: Path,
    *,
    tls_protocols: str = "TLSv1.2 TLSv1.3",
    session_reuse_required: bool = True,
    passive_ports: tuple[int, int] | None = None,
    masquerade_address: str | None = None,
    max_clients: int | None = None,
    extra_config: str = "",
    port: int | None = None,
    user: str = "mirror",
    password: str = "mirror-secret",
    cert_hostnames: Sequence[str] = (),
    timeout_idle: int = 600,
    passive_range_size: int = _DEFAULT_PASSIVE_RANGE_SIZE,
    debug_level: int = 1,
    start_timeout: float = _START_TIMEOUT,
    extra_modules: Sequence[str] = (),
    chroot: bool = True,
    site_misc: bool = True,
) -> ProftpdServer:
    """Write a config under ``workdir`` and start ProFTPD in the foreground.

    Returns once the control port answers with its ``220`` banner; raises
    :class:`ProftpdStartError` (with the log tail) otherwise. Call ``stop()`` when done.

    ``masquerade_address`` is put in PASV replies (and in the certificate), for a proxy
    in front of the server. ``max_clients`` sets ``MaxClients``/``MaxClientsPerUser``.
    ``extra_config`` is appended verbatim to the configuration; ``extra_modules``
    (``"mod_digest.c"``) are loaded besides mod_tls.  ``chroot=False`` leaves out
    ``DefaultRoot ~``: the login directory is then the home's real path, as on hosts
    that do not jail FTP logins (only matters as root; otherwise there is no chroot).
    ``site_misc=False`` does not load mod_site_misc: no ``SITE SYMLINK``/``UTIME``.
    """
    binary = proftpd_binary()
    reason = proftpd_unavailable_reason()
    if binary is None or reason is not None:
        raise ProftpdStartError(f"ProFTPD is not available: {reason}; {INSTALL_HINT}")

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if workdir.stat().st_mode & 0o002:
        # ProFTPD refuses logs/scoreboards in world-writable directories.
        workdir = Path(tempfile.mkdtemp(prefix="proftpd-", dir=workdir))
    workdir.chmod(0o755)

    is_root = os.geteuid() == 0
    host = "127.0.0.1"
    uid, gid = (_NOBODY_UID, _NOGROUP_GID) if is_root else (os.getuid(), os.getgid())
    home = workdir / "home"
    external_home = False
    if _traversable(workdir, uid, gid):
        home.mkdir(exist_ok=True)
    else:
        # ProFTPD enters (chroots to) the home as the FTP user: every parent directory must
        # be searchable by it. pytest's basetemp (/tmp/pytest-of-root) is 0700, so put the
        # home in a fresh directory under the system temp dir, linked from workdir/home.
        home = Path(tempfile.mkdtemp(prefix="asyncmirror-ftp-home-"))
        external_home = True
        with contextlib.suppress(OSError):
            (workdir / "home").unlink()
        (workdir / "home").symlink_to(home)
        if not _traversable(home.parent, uid, gid):
            raise ProftpdStartError(f"{home.parent} is not searchable by uid {uid}")
    home.chmod(0o755)
    if is_root:
        os.chown(home, uid, gid)

    # Certificates.
    import trustme

    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    names = ["127.0.0.1", "localhost", *cert_hostnames]
    if masquerade_address and masquerade_address not in names:
        names.append(masquerade_address)
    cert = ca.issue_cert(*names, key_type=trustme.KeyType.RSA)
    ca_file = workdir / "ca.pem"
    cert_file = workdir / "server-cert.pem"
    key_file = workdir / "server-key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    key_file.chmod(0o600)
    chain_lines = []
    if len(cert.cert_chain_pems) > 1:
        chain_file = workdir / "server-chain.pem"
        chain_file.write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems[1:]))
        chain_lines.append(f"TLSCertificateChainFile {chain_file}")

    # Users.
    passwd_file = workdir / "ftpd.passwd"
    group_file = workdir / "ftpd.group"
    group_name = "nogroup" if is_root else "ftpusers"
    passwd_file.write_text(f"{user}:{_sha512_crypt(password)}:{uid}:{gid}::{home}:/bin/sh\n")
    group_file.write_text(f"{group_name}:x:{gid}:{user}\n")
    passwd_file.chmod(0o600)
    group_file.chmod(0o644)

    transfer_log = workdir / "xferlog"
    tls_log = workdir / "tls.log"
    # With -n (foreground) ProFTPD ignores SystemLog and logs to stderr: capture that.
    system_log = workdir / "proftpd.log"
    config_file = workdir / "proftpd.conf"

    modules = ["mod_tls.c", *(["mod_site_misc.c"] if site_misc else []), *extra_modules]
    load_lines, missing = _module_lines(binary, modules)
    if set(extra_modules) & set(missing):
        raise ProftpdStartError(
            f"ProFTPD modules missing: {sorted(set(extra_modules) & set(missing))}"
        )
    if "mod_tls.c" in missing:  # pragma: no cover - checked by proftpd_unavailable_reason
        raise ProftpdStartError(f"mod_tls is missing; {INSTALL_HINT}")

    attempts = 1 if port is not None else 3
    last_error: ProftpdStartError | None = None
    for _ in range(attempts):
        if port is None:
            control_port, passive = _pick_ports(passive_range_size, host, passive_ports)
        else:
            control_port = port
            passive = passive_ports or _pick_ports(passive_range_size, host, None)[1]

        process_lines = (
            ["User nobody", "Group nogroup"]
            if is_root
            else [f"User {_current_user_name()}", f"Group {_current_group_name()}"]
        )
        config = "\n".join(
            [
                "# Generated by tests/servers/proftpd.py",
                *load_lines,
                'ServerName "asyncmirror test ProFTPD"',
                "ServerType standalone",
                f"DefaultAddress {host}",
                "SocketBindTight on",
                "UseIPv6 off",
                f"Port {control_port}",
                f"PassivePorts {passive[0]} {passive[1]}",
                *([f"MasqueradeAddress {masquerade_address}"] if masquerade_address else []),
                *process_lines,
                "Umask 022",
                "UseReverseDNS off",
                "<IfModule mod_ident.c>",
                "  IdentLookups off",
                "</IfModule>",
                "WtmpLog off",
                "DelayTable none",
                "<IfModule mod_delay.c>",
                "  DelayEngine off",
                "</IfModule>",
                f"PidFile {workdir}/proftpd.pid",
                f"ScoreboardFile {workdir}/proftpd.scoreboard",
                f"TransferLog {transfer_log}",
                "MaxInstances 100",
                f"TimeoutIdle {timeout_idle}",
                "TimeoutLogin 60",
                "<IfModule mod_auth_pam.c>",
                "  AuthPAM off",
                "</IfModule>",
                "AuthOrder mod_auth_file.c",
                f"AuthUserFile {passwd_file}",
                f"AuthGroupFile {group_file}",
                "RequireValidShell off",
                "UseFtpUsers off",
                *(["DefaultRoot ~"] if is_root and chroot else []),
                "AllowOverwrite on",
                "AllowStoreRestart on",
                *(
                    [
                        f'MaxClients {max_clients} "Sorry, the maximum number of clients (%m) '
                        'is already connected"',
                        f'MaxClientsPerUser {max_clients} "Sorry, the maximum number of '
                        'clients (%m) for this user is already connected"',
                    ]
                    if max_clients is not None
                    else []
                ),
                "<IfModule mod_tls.c>",
                "  TLSEngine on",
                "  TLSRequired on",
                f"  TLSProtocol {tls_protocols}",
                f"  TLSRSACertificateFile {cert_file}",
                f"  TLSRSACertificateKeyFile {key_file}",
                *(f"  {line}" for line in chain_lines),
                "  TLSVerifyClient off",
                "  TLSRenegotiate none",
                f"  TLSLog {tls_log}",
                *([] if session_reuse_required else ["  TLSOptions NoSessionReuseRequired"]),
                "</IfModule>",
                extra_config,
                "",
            ]
        )
        config_file.write_text(config)

        server = ProftpdServer(
            host=host,
            port=control_port,
            user=user,
            password=password,
            home=home,
            ca_file=ca_file,
            transfer_log=transfer_log,
            tls_log=tls_log,
            passive_ports=passive,
            workdir=workdir,
            config_file=config_file,
            system_log=system_log,
            chroot=is_root and chroot,
            external_home=external_home,
        )
        with system_log.open("ab") as err:
            server.process = subprocess.Popen(
                [binary, "-n", "-d", str(debug_level), "-c", str(config_file)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,  # own process group: stop() reaches session processes
            )
        atexit.register(server.stop)  # in case the caller never gets to stop() it
        try:
            _wait_for_banner(server, start_timeout)
        except ProftpdStartError as exc:
            server.stop()
            last_error = exc
            if "in use" in str(exc).lower() and port is None:
                continue  # lost a race for the port: pick others
            raise
        return server
    assert last_error is not None
    raise last_error


def _wait_for_banner(server: ProftpdServer, timeout: float) -> None:
    try:
        wait_for_banner(
            server.host, server.port, server.process, timeout, "ProFTPD", (server.system_log,)
        )
    except ServerStartError as exc:
        raise ProftpdStartError(f"{exc}\nconfig {server.config_file}") from None


def _parse_xferlog_line(line: str) -> TransferRecord | None:
    # "Sat Nov 28 02:01:00 2026 0 127.0.0.1 2 /home/dir/a.txt b _ i r mirror ftps 0 * c"
    tokens = line.split()
    if len(tokens) < 18:
        return None
    try:
        size = int(tokens[7])
    except ValueError:
        return None
    tail = tokens[-9:]
    return TransferRecord(
        path=" ".join(tokens[8:-9]),
        size=size,
        direction=tail[2],
        completed=tail[8] == "c",
        user=tail[4],
        raw=line,
    )


def _run_quiet(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, timeout=20, check=False)
    return (proc.stdout + proc.stderr).decode(errors="replace")


def _traversable(path: Path, uid: int, gid: int) -> bool:
    """Whether ``uid``/``gid`` can search ``path`` and all its parents (mode bits only)."""
    for p in [path, *path.parents]:
        st = p.stat()
        if uid == 0:
            continue
        if st.st_uid == uid:
            bit = 0o100
        elif st.st_gid == gid:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


def _current_user_name() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _current_group_name() -> str:
    import grp

    return grp.getgrgid(os.getgid()).gr_name
