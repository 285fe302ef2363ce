"""The servers and the emulated WAN: two ProFTPD and the delay proxy (``delayproxy.py``)."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.errors import BenchError
from benchmarks.measuring import tail
from tests.servers.proftpd import ProftpdServer, start_proftpd

HERE = Path(__file__).resolve().parent

PROXY_HOST = "127.0.0.2"
PASSIVE_RANGE = 300
SETTLE = 0.3  # seconds between runs once the server's sessions are gone (see measure())
#: The directory of the wan server's home where its digest commands are off
#: (``DigestEnable off``): ``--verify`` there has to download.
NO_DIGEST_DIR = "nodigest"


def remote_path(server: ProftpdServer, name: str) -> str:
    """The path a client uses for ``home/name``."""
    return f"/{name}" if server.chroot else str(server.home / name)


def retr_count(server: ProftpdServer, name: str) -> int:
    """Completed downloads of tree files under ``home/name`` (``--verify`` without a
    digest command); asyncmirror's reads of its state file are not counted."""
    prefix = name + "/"
    return sum(
        1
        for rec in server.transfers()
        if rec.direction == "o"
        and rec.completed
        and rec.path.startswith(prefix)
        and not _own_file(rec.path)
    )


def _own_file(path: str) -> bool:
    return path.rsplit("/", 1)[-1].startswith((".htasyncmirror", ".asyncmirror"))


def stor_counts(server: ProftpdServer, name: str) -> tuple[int, int]:
    """Completed uploads under ``home/name``: (tree files, asyncmirror's own files).

    asyncmirror keeps a state file in DST (and writes it through a temporary name);
    those uploads are counted apart from the mirrored files.
    """
    prefix = name + "/"
    files = own = 0
    for rec in server.transfers():
        if rec.direction == "i" and rec.completed and rec.path.startswith(prefix):
            if _own_file(rec.path):
                own += 1
            else:
                files += 1
    return files, own


def loopback_alias_usable(host: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


@dataclass
class Proxy:
    process: subprocess.Popen[bytes]
    log: Path
    rtt: float

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout:
            self.process.stdout.close()
        return tail(self.log, 3)


def start_proxy(server: ProftpdServer, rtt: float, connect_delay: bool, log: Path) -> Proxy:
    lo, hi = server.passive_ports
    argv = [
        sys.executable,
        str(HERE / "delayproxy.py"),
        "--listen",
        PROXY_HOST,
        "--target",
        server.host,
        "--port",
        str(server.port),
        "--port",
        f"{lo}-{hi}",
        "--rtt",
        str(rtt),
    ]
    if not connect_delay:
        argv.append("--no-connect-delay")
    with log.open("ab") as err:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    proxy = Proxy(proc, log, rtt)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 20
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        if not sel.select(max(0.0, deadline - time.monotonic())):
            break
        chunk = os.read(proc.stdout.fileno(), 256)
        if not chunk:
            break
        line += chunk
    sel.close()
    if not line.startswith(b"READY"):
        proxy.stop()
        raise BenchError(f"the delay proxy did not start: {line!r}\n{tail(log)}")
    return proxy


def start_wan(
    work: Path, rtt: float, connect_delay: bool, log: Path, stack: contextlib.ExitStack
) -> tuple[ProftpdServer, Proxy]:
    """ProFTPD behind the delay proxy; ``stack`` stops the server (the caller, the proxy).

    It has mod_digest (``HASH``, ``XSHA256``, ...: what ``--verify`` asks for) except
    under :data:`NO_DIGEST_DIR`.  ``NoTransferCache`` keeps the module from hashing
    every upload and download as it passes (its default): the other scenarios then
    run on the same server as before the module was loaded, and lftp never asks for
    a digest.
    """
    last: Exception | None = None
    for attempt in range(3):
        srv_dir = work / f"srv-wan-{attempt}"
        server = start_proftpd(
            srv_dir,
            masquerade_address=PROXY_HOST,
            passive_range_size=PASSIVE_RANGE,
            extra_modules=("mod_digest.c",),
            extra_config=(
                "DigestOptions NoTransferCache\n"
                f"<Directory {_no_digest_path(srv_dir)}>\n"
                "  DigestEnable off\n"
                "</Directory>\n"
            ),
        )
        no_digest = server.home / NO_DIGEST_DIR
        no_digest.mkdir()
        if os.geteuid() == 0 and server.chroot:
            os.chown(no_digest, 65534, 65534)
        try:
            proxy = start_proxy(server, rtt, connect_delay, log)
        except BenchError as exc:  # a port taken on 127.0.0.2: try other ports
            server.stop()
            last = exc
            continue
        stack.callback(server.stop)
        return server, proxy
    raise BenchError(f"could not start the proxy: {last}")


def _no_digest_path(srv_dir: Path) -> str:
    """:data:`NO_DIGEST_DIR` as ProFTPD's ``<Directory>`` names it: chrooted (as root)
    the path the client sees, else the path on disk.  (The verify scenario checks
    which method asyncmirror used, so a path that does not match fails loudly.)"""
    if os.geteuid() == 0:
        return f"/{NO_DIGEST_DIR}"
    return str(srv_dir.resolve() / "home" / NO_DIGEST_DIR)
