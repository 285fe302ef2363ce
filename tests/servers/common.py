"""Helpers shared by the extra test servers (vsftpd, pure-ftpd, pyftpdlib).

* ports outside the kernel's ephemeral range (a passive range there would collide with
  the test's own client sockets);
* a throw-away CA and server certificate (trustme);
* where ``scripts/install-servers.sh`` unpacked the servers;
* xferlog parsing, waiting for a banner, stopping a process group.

Nothing here imports pytest or the code under test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import random
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "INSTALL_SERVERS_HINT",
    "Certificates",
    "ServerStartError",
    "XferRecord",
    "client_env",
    "ephemeral_port_range",
    "make_certificates",
    "parse_xferlog",
    "pick_ports",
    "read_text",
    "servers_dir",
    "tail",
    "terminate_group",
    "unpacked_version",
    "wait_for_banner",
]

INSTALL_SERVERS_HINT = "run `bash scripts/install-servers.sh` (apt-get download + dpkg -x)"

REPO_ROOT = Path(__file__).resolve().parents[2]
_PREFERRED_PORT_REGION = (20000, 30000)


class ServerStartError(RuntimeError):
    """A test server did not start (the message carries the tail of its logs)."""


def servers_dir() -> Path:
    """Where ``scripts/install-servers.sh`` unpacks servers (``ASYNCMIRROR_SERVERS_DIR``)."""
    override = os.environ.get("ASYNCMIRROR_SERVERS_DIR")
    return Path(override) if override else REPO_ROOT / ".servers"


def unpacked_version(name: str) -> str | None:
    try:
        return (servers_dir() / name / "VERSION").read_text().strip() or None
    except OSError:
        return None


# --- ports -------------------------------------------------------------------------------


def ephemeral_port_range() -> tuple[int, int]:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        lo, hi = (int(x) for x in text.split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def port_is_free(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_windows() -> list[tuple[int, int]]:
    eph_lo, eph_hi = ephemeral_port_range()
    out: list[tuple[int, int]] = []
    for lo, hi in (_PREFERRED_PORT_REGION, (10000, 65535), (1025, 65535)):
        if lo < eph_lo:
            out.append((lo, min(hi, eph_lo - 1)))
        if hi > eph_hi:
            out.append((max(lo, eph_hi + 1), hi))
    return [(a, b) for a, b in out if a <= b]


def pick_ports(passive_size: int = 50, host: str = "127.0.0.1") -> tuple[int, tuple[int, int]]:
    """A free control port and a free passive range (inclusive), none of them ephemeral."""
    rng = random.SystemRandom()
    for lo, hi in port_windows():
        if hi - lo + 1 < passive_size + 1:
            continue
        for _ in range(50):
            start = rng.randint(lo, hi - passive_size + 1)
            passive = (start, start + passive_size - 1)
            control = rng.randint(lo, hi)
            if passive[0] <= control <= passive[1] or not port_is_free(control, host):
                continue
            if all(port_is_free(p, host) for p in range(passive[0], passive[1] + 1)):
                return control, passive
    raise ServerStartError(f"no free ports outside the ephemeral range {ephemeral_port_range()}")


# --- certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca_file: Path  # the CA to trust (PEM)
    cert_file: Path  # the server certificate chain (PEM)
    key_file: Path  # its private key (PEM, mode 0600)
    combined_file: Path  # key + chain in one PEM (pure-ftpd, pyftpdlib, vsftpd)


def make_certificates(
    workdir: Path, names: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> Certificates:
    import trustme

    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    cert = ca.issue_cert(*names, key_type=trustme.KeyType.RSA)
    certs = Certificates(
        ca_file=workdir / "ca.pem",
        cert_file=workdir / "server-cert.pem",
        key_file=workdir / "server-key.pem",
        combined_file=workdir / "server.pem",
    )
    ca.cert_pem.write_to_path(str(certs.ca_file))
    certs.cert_file.write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(certs.key_file))
    cert.private_key_and_cert_chain_pem.write_to_path(str(certs.combined_file))
    for secret in (certs.key_file, certs.combined_file):
        secret.chmod(0o600)
    return certs


# --- logs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class XferRecord:
    """One xferlog line: ``path`` as the server wrote it (whitespace often as ``_``)."""

    path: str
    size: int
    direction: str  # "i" upload, "o" download
    completed: bool
    raw: str


def parse_xferlog(text: str) -> list[XferRecord]:
    """wu-ftpd xferlog lines (vsftpd ``xferlog_std_format``, pure-ftpd ``xferlog:``)."""
    out = []
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) < 18:
            continue
        try:
            size = int(tokens[7])
        except ValueError:
            continue
        tail = tokens[-9:]
        out.append(
            XferRecord(
                path=" ".join(tokens[8:-9]),
                size=size,
                direction=tail[2],
                completed=tail[8] == "c",
                raw=line,
            )
        )
    return out


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(read_text(path).splitlines()[-lines:])


# --- processes ---------------------------------------------------------------------------


def wait_for_banner(
    host: str,
    port: int,
    proc: subprocess.Popen[Any] | None,
    timeout: float,
    describe: str,
    logs: tuple[Path, ...] = (),
) -> None:
    """Return once ``host:port`` answers ``220``; raise :class:`ServerStartError` otherwise."""
    deadline = time.monotonic() + timeout
    last = "no connection attempt"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            last = f"exited with status {proc.returncode}"
            break
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                sock.settimeout(max(0.5, deadline - time.monotonic()))
                banner = b""
                while not banner.endswith(b"\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    banner += chunk
                if banner.startswith(b"220"):
                    with contextlib.suppress(OSError):
                        sock.sendall(b"QUIT\r\n")
                    return
                last = f"unexpected banner {banner[:200]!r}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.05)
    shown = "\n".join(f"--- {p}:\n{tail(p)}" for p in logs)
    raise ServerStartError(f"{describe} did not answer 220 on {host}:{port} ({last})\n{shown}")


def terminate_group(proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """Stop a server started with ``start_new_session=True`` and all its children."""
    pgid = proc.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
        break
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class LoopThread:
    """An asyncio server run on an event loop of its own, in a daemon thread.

    For the test servers and proxies that synchronous tests start: subclasses
    provide ``async start() -> int`` (the port they listen on) and
    ``async close()``; :meth:`new_loop` may install an exception handler.
    """

    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    async def start(self) -> int:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def new_loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.new_event_loop()

    def start_in_thread(self, timeout: float = 10.0) -> int:
        """Run :meth:`start` on a new loop in a daemon thread; returns its port."""
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} thread already running")
        loop = self.new_loop()
        started: concurrent.futures.Future[int] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                try:
                    started.set_result(loop.run_until_complete(self.start()))
                except BaseException as exc:
                    started.set_exception(exc)
                    return
                loop.run_forever()
                loop.run_until_complete(self.close())
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(
            target=run, name=f"{type(self).__name__}-{id(self)}", daemon=True
        )
        self._thread.start()
        try:
            return started.result(timeout)
        except BaseException:
            self.stop_thread(timeout)
            raise

    def stop_thread(self, timeout: float = 10.0) -> None:
        """Stop the loop started by :meth:`start_in_thread` (runs ``close()``). Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
        self._loop = None
        self._thread = None


class Reachable(Protocol):
    """What a client needs of a test server: where it is, the login, the CA."""

    host: str
    port: int
    user: str
    password: str
    ca_file: Path


def client_env(server: Reachable) -> dict[str, str]:
    """This process's environment for an ``asyncmirror`` command against ``server``:
    its ``FTP_*`` variables (any of the caller's removed) and its CA trusted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTP_")}
    env.update(
        FTP_SERVER=f"{server.host}:{server.port}",
        FTP_USERNAME=server.user,
        FTP_PASSWORD=server.password,
        SSL_CERT_FILE=str(server.ca_file),
    )
    return env


def reap(proc: subprocess.Popen[Any]) -> None:
    """Kill ``proc`` if it still runs and wait for it, reading its pipes to the end:
    a test that failed half-way must leave no process (nor its ResourceWarnings, which
    would fail whichever test runs next) behind."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)
