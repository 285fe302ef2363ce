"""In-process FTPS servers on pyftpdlib's ``TLS_FTPHandler``, each on its own thread.

They require TLS on the control and the data connections (``tls_control_required``,
``tls_data_required``) and can be bent into the shapes real servers come in:

* ``mlsd=False``: no ``MLSD``/``MLST`` (removed from ``proto_cmds``, so ``500``), the
  client must list with ``LIST``;
* ``list_timezone=ZoneInfo(...)``: ``LIST`` renders times in that zone instead of UTC,
  as servers whose LIST shows local time do;
* ``epsv=False``: no ``EPSV`` (``500``), the client must use ``PASV``;
* ``masquerade_address``: the address put in ``PASV`` replies (an unroutable one shows
  whether the client dials it instead of the control connection's peer);
* ``pbsz_requires_login=True``: ``PBSZ``/``PROT`` before ``USER``/``PASS`` answer ``530``;
* ``refuse_data=True``: every data connection is refused as if it came from a foreign
  address (``425 Rejected data connection from foreign address``), as hosts that filter
  data connections by client IP do while the login works;
* ``xsha256=True``: an ``XSHA256 PATH`` command answering ``250 <hex>`` from the
  file on disk, as ProFTPD's mod_digest does;
* ``corrupt_uploads="name"``: every received file of that base name has one byte
  changed as it lands (same size), so only a content check can tell;
* ``list_accepts_options=True``: ``LIST -a PATH`` lists PATH, as ProFTPD, vsftpd and
  pure-ftpd do. Stock pyftpdlib only understands a bare ``LIST -a``: it takes
  ``-a PATH`` for a path (``550``).

Every server records the commands it received (with whether the session was logged in
at the time) and every file it received (``on_file_received``), to count uploads.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from .common import ServerStartError, make_certificates, pick_ports

__all__ = ["PyftpdServer", "ReceivedCommand", "start_pyftpd"]


@dataclass(frozen=True)
class ReceivedCommand:
    verb: str
    arg: str
    logged_in: bool
    session: int  # which control connection (1, 2, ...)


@dataclass
class PyftpdServer:
    host: str
    port: int
    user: str
    password: str
    home: Path  # the FTP root on disk ("/" for the client)
    ca_file: Path
    passive_ports: tuple[int, int]
    version: str
    commands: list[ReceivedCommand] = field(default_factory=list)
    received: list[str] = field(default_factory=list)  # uploaded paths, relative to home
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _server: Any = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def snapshot_commands(self) -> list[ReceivedCommand]:
        with self.lock:
            return list(self.commands)

    def snapshot_received(self) -> list[str]:
        with self.lock:
            return list(self.received)

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=10)
        self._thread = None


class _ZoneView:
    """The filesystem as ``format_list`` sees it, with mtimes shifted into a time zone.

    ``format_list`` renders with ``time.gmtime`` (``use_gmt_times``); adding the zone's
    UTC offset at each file's time makes that render the zone's wall-clock time,
    without touching the process's ``TZ`` (which the client under test shares).
    """

    def __init__(self, fs: Any, tz: tzinfo) -> None:
        self._fs = fs
        self._tz = tz

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)

    def lstat(self, path: str) -> Any:
        st = self._fs.lstat(path)
        offset = datetime.fromtimestamp(st.st_mtime, self._tz).utcoffset()
        shift = offset.total_seconds() if offset is not None else 0.0
        return _Stat(st, st.st_mtime + shift)


class _Stat:
    def __init__(self, st: os.stat_result, mtime: float) -> None:
        self.st_mode = st.st_mode
        self.st_nlink = st.st_nlink
        self.st_size = st.st_size
        self.st_uid = st.st_uid
        self.st_gid = st.st_gid
        self.st_mtime = mtime


def start_pyftpd(
    workdir: Path,
    *,
    user: str = "mirror",
    password: str = "pyftpd-secret-1",
    mlsd: bool = True,
    epsv: bool = True,
    list_timezone: tzinfo | None = None,
    masquerade_address: str | None = None,
    pbsz_requires_login: bool = False,
    list_accepts_options: bool = False,
    passive_range_size: int = 40,
    refuse_data: bool = False,
    xsha256: bool = False,
    corrupt_uploads: str | None = None,
) -> PyftpdServer:
    """Start a pyftpdlib FTPS server on a thread; ``stop()`` it when done."""
    with warnings.catch_warnings():
        # pyftpdlib still imports asyncore/asynchat (deprecated since Python 3.11).
        warnings.simplefilter("ignore", DeprecationWarning)
        import pyftpdlib
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.filesystems import AbstractedFS
        from pyftpdlib.handlers import TLS_FTPHandler
        from pyftpdlib.ioloop import IOLoop
        from pyftpdlib.servers import FTPServer

    # pyftpdlib configures its own chatty logging unless a handler exists.
    quiet = logging.getLogger("pyftpdlib")
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
    quiet.propagate = False

    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    certs = make_certificates(workdir)
    authorizer = DummyAuthorizer()
    authorizer.add_user(user, password, str(home), perm="elradfmwMT")

    proto_cmds = dict(TLS_FTPHandler.proto_cmds)
    if not mlsd:
        proto_cmds.pop("MLSD", None)
        proto_cmds.pop("MLST", None)
    if not epsv:
        proto_cmds.pop("EPSV", None)
    if xsha256:
        proto_cmds["XSHA256"] = {
            "perm": "r",
            "auth": True,
            "arg": True,
            "help": "Syntax: XSHA256 <SP> pathname (SHA-256 digest).",
        }
    if pbsz_requires_login:
        for verb in ("PBSZ", "PROT"):
            proto_cmds[verb] = {**proto_cmds[verb], "auth": True}

    port, passive = pick_ports(passive_range_size)
    server_record = PyftpdServer(
        host="127.0.0.1",
        port=port,
        user=user,
        password=password,
        home=home,
        ca_file=certs.ca_file,
        passive_ports=passive,
        version=pyftpdlib.__ver__,
    )
    sessions = iter(range(1, 1_000_000))

    class ZoneFS(AbstractedFS):  # type: ignore[misc]
        def format_list(self, basedir: str, listing: list[str], ignore_err: bool = True) -> Any:
            if list_timezone is None:
                return super().format_list(basedir, listing, ignore_err)
            return AbstractedFS.format_list(
                _ZoneView(self, list_timezone), basedir, listing, ignore_err
            )

    class Handler(TLS_FTPHandler):  # type: ignore[misc]
        def on_connect(self) -> None:
            self._test_session = next(sessions)

        def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
            if list_accepts_options and cmd == "LIST" and arg.startswith("-"):
                options, _, rest = arg.partition(" ")
                if rest or options.lower() not in ("-a", "-l", "-al", "-la"):
                    arg = rest
            with server_record.lock:
                server_record.commands.append(
                    ReceivedCommand(
                        cmd, arg, bool(self.authenticated), getattr(self, "_test_session", 0)
                    )
                )
            super().pre_process_command(line, cmd, arg)

        def ftp_XSHA256(self, path: str) -> None:
            # pyftpdlib has already mapped the argument to a checked local path
            # (the command has a permission, like RETR).
            if not os.path.isfile(path):
                self.respond(f"550 {self.fs.fs2ftp(path)}: No such file.")
                return
            with open(path, "rb") as fh:
                self.respond(f"250 {hashlib.sha256(fh.read()).hexdigest().upper()}")

        def on_file_received(self, file: str) -> None:
            # Runs on the server's one thread before it reads the next command:
            # whatever asks about the file next sees it changed.
            if corrupt_uploads is not None and os.path.basename(file) == corrupt_uploads:
                with open(file, "r+b") as fh:
                    data = fh.read()
                    if data:
                        fh.seek(len(data) // 2)
                        fh.write(bytes([data[len(data) // 2] ^ 0xFF]))
            rel = os.path.relpath(file, home)
            with server_record.lock:
                server_record.received.append(Path(rel).as_posix())

    if refuse_data:
        from pyftpdlib.handlers.ftp.dispatchers import PassiveDTP

        class ForeignFilter(PassiveDTP):  # type: ignore[misc]
            def handle_accepted(self, sock: Any, addr: Any) -> None:
                sock.close()  # pyftpdlib's own answer to a foreign address, for every one
                channel = self.cmd_channel
                channel.respond_w_warning(
                    f"425 Rejected data connection from foreign address {addr[0]}:{addr[1]}."
                )
                queued = channel._in_dtp_queue
                if queued is not None:  # the STOR came first: its file is open, waiting
                    channel._in_dtp_queue = None
                    queued[0].close()
                elif channel._out_dtp_queue is None:
                    channel.refused_ahead = True  # the 425 answers the command to come
                channel._out_dtp_queue = None
                self.close()

        def answered_by_the_refusal(name: str) -> None:
            original = getattr(Handler, name)

            def command(self: Any, *args: Any) -> Any:
                if getattr(self, "refused_ahead", False):
                    self.refused_ahead = False
                    return None  # stock pyftpdlib would open the file and wait forever
                return original(self, *args)

            setattr(Handler, name, command)

        for name in ("ftp_STOR", "ftp_APPE", "ftp_STOU", "ftp_RETR", "ftp_LIST", "ftp_MLSD"):
            answered_by_the_refusal(name)
        Handler.passive_dtp = ForeignFilter
    Handler.proto_cmds = proto_cmds
    Handler.authorizer = authorizer
    Handler.abstracted_fs = ZoneFS
    Handler.certfile = str(certs.combined_file)
    Handler.keyfile = None
    Handler.ssl_context = None  # its own context, not one cached on a parent class
    Handler.tls_control_required = True
    Handler.tls_data_required = True
    Handler.passive_ports = list(range(passive[0], passive[1] + 1))
    Handler.masquerade_address = masquerade_address
    Handler.use_gmt_times = True
    Handler.banner = "asyncmirror test pyftpdlib ready"

    ioloop = IOLoop()
    try:
        server = FTPServer((server_record.host, port), Handler, ioloop=ioloop)
    except OSError as exc:
        ioloop.close()
        raise ServerStartError(f"pyftpdlib could not listen on {port}: {exc}") from exc
    server.max_cons = 100
    server.max_cons_per_ip = 100
    server_record._server = server
    stop = server_record._stop

    def run() -> None:
        try:
            while not stop.is_set():
                server.serve_forever(timeout=0.02, blocking=False, handle_exit=False)
        finally:
            server.close_all()

    thread = threading.Thread(target=run, name=f"pyftpd-{port}", daemon=True)
    server_record._thread = thread
    thread.start()
    # The listening socket exists already; give the loop one turn.
    time.sleep(0.01)
    return server_record
