"""Compatibility matrix: ``await mirror(...)`` against real FTPS servers of several kinds.

Each server is real, started by a fixture on free ports outside the kernel's ephemeral
range, requires TLS, and trusts a throw-away trustme CA:

=================================  =====================================================
``proftpd-tls13``                  ProFTPD 1.3.8, TLS 1.3 only, session reuse required
``proftpd-tls12``                  ProFTPD 1.3.8, TLS 1.2 only, session reuse required
``vsftpd``                         vsftpd 3.0.3, ``require_ssl_reuse=YES``, no MLSD/MFMT
``pure-ftpd``                      pure-ftpd 1.0.50, ``--tls=3``
``pyftpdlib``                      pyftpdlib ``TLS_FTPHandler`` (in-process thread)
``pyftpdlib-list-tokyo``           no MLSD; LIST times in Asia/Tokyo (stock LIST parsing)
``pyftpdlib-pasv-masq-no-epsv``    no EPSV; PASV names 10.255.255.1 (never dialled)
``pyftpdlib-pbsz-after-login``     PBSZ/PROT before login answer 530
=================================  =====================================================

For each: a tree with odd names (spaces, UTF-8, leading dashes, ``%&()[]``, empty files,
a dotfile, nested and empty directories) is mirrored into an existing directory and must
land byte for byte on the server's disk; an unchanged rerun uploads nothing and a run
after two edits uploads exactly those two files -- counted from the server's *own*
record (its xferlog, or pyftpdlib's ``on_file_received``), not from asyncmirror's report.
Where the server logs TLS session resumption, every data connection must have resumed.
A second test mirrors into a DST that does not exist yet (with a missing parent).

vsftpd and pure-ftpd come from ``scripts/install-servers.sh``; under ``CI=true`` a missing
server fails its tests, elsewhere they are skipped with the install hint.

Every TCP connection asyncmirror opens for data goes through a guard that refuses any
address outside 127.0.0.0/8, so a client that trusted the masqueraded PASV address would
fail here instead of sending traffic to 10.255.255.1.

Set ``ASYNCMIRROR_COMPAT_TABLE=FILE`` to have the README compatibility table written there.
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import json
import os
import random
import shutil
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import asyncmirror.transport
from asyncmirror import Report, mirror, rollback
from tests.servers.common import INSTALL_SERVERS_HINT
from tests.servers.proftpd import (
    INSTALL_HINT,
    ProftpdServer,
    proftpd_unavailable_reason,
    start_proftpd,
)
from tests.servers.pureftpd import PureftpdServer, pureftpd_unavailable_reason, start_pureftpd
from tests.servers.pyftpd import PyftpdServer, start_pyftpd
from tests.servers.vsftpd import VsftpdServer, start_vsftpd, vsftpd_unavailable_reason

TOKYO = ZoneInfo("Asia/Tokyo")
UNROUTABLE = "10.255.255.1"
OWN_PREFIX = ".htasyncmirror-"  # the state file and temporary uploads
#: Parallel sessions per run. ``ASYNCMIRROR_COMPAT_JOBS=1`` separates bugs that need
#: several sessions (races between them) from the rest.
JOBS = int(os.environ.get("ASYNCMIRROR_COMPAT_JOBS", "4"))
TIMEOUT = 15.0
IN_CI = os.environ.get("CI") == "true"

#: Facts for the README table, filled in by the tests (server key -> column -> value).
ROWS: dict[str, dict[str, str]] = {}


def require(reason: str | None, what: str, hint: str) -> None:
    """Skip (outside CI) or fail (under CI=true) when a server is not available."""
    if reason is None:
        return
    message = f"{what} is not available ({reason}); {hint}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


# --- the tree ----------------------------------------------------------------------------

FILES: dict[str, int] = {
    "index.html": 2000,
    "read me.txt": 900,
    "-rf": 0,
    "-leading dash.txt": 321,
    "日本語のファイル.html": 1500,
    "café crème.css": 640,
    "100% done & (final) [v2].txt": 77,
    "empty.txt": 0,
    ".htaccess": 55,
    "with space/page 1.html": 3000,
    "with space/deeper/empty file": 0,
    "日本語/空.txt": 0,
    "日本語/説明.txt": 2500,
    "-dash dir/-x.txt": 12,
    "crème brûlée/recette.txt": 444,
    "a/b/c/d/deep.txt": 9,
    "assets/img/logo.png": 50_000,
    "assets/big.bin": 600_000,  # more than one 256 KiB chunk
    **{f"site/section {i % 4}/page-{i:02d}.html": 100 + 97 * i for i in range(16)},
}
EMPTY_DIRS = ("empty dir", "nested/only/empty")
#: The two files edited between runs: one keeps its size (only its time tells), one grows.
SAME_SIZE_EDIT = "read me.txt"
GROWING_EDIT = "日本語/説明.txt"


def build_tree(root: Path, seed: int = 2718) -> Path:
    rng = random.Random(seed)
    for rel, size in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    for d in EMPTY_DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    # A stable past time (whole seconds) so that "newer" means what the test says.
    past = time.time() - 3 * 86400
    past = float(int(past))
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (past, past))
    return root


def edit(root: Path, *, mtime: float | None = None) -> list[str]:
    """Change SAME_SIZE_EDIT (same size: only its time tells) and GROWING_EDIT (appended).

    Their new time is ``mtime``, by default two minutes from now: an edit made after the
    deploy, later than the upload by more than LIST's one-minute precision even on a
    server that cannot set remote times (there the remote time is the upload's).
    """
    rng = random.Random(99)
    when = time.time() + 120 if mtime is None else mtime
    for rel, grow in ((SAME_SIZE_EDIT, 0), (GROWING_EDIT, 333)):
        path = root / rel
        st = path.stat()
        path.write_bytes(rng.randbytes(st.st_size + grow))
        os.utime(path, (when, when))
    return [SAME_SIZE_EDIT, GROWING_EDIT]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (asyncmirror's own files left out) -> bytes."""
    out = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith(OWN_PREFIX):
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def directories(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}


def assert_same_tree(local: Path, remote: Path) -> None:
    mine, theirs = snapshot(local), snapshot(remote)
    assert sorted(theirs) == sorted(mine), "file names differ on the server"
    assert [p for p in mine if mine[p] != theirs[p]] == [], "contents differ"
    assert directories(remote) == directories(local)


# --- the targets -------------------------------------------------------------------------


@dataclass
class Run:
    report: Report
    trace: list[str]
    dials: list[tuple[str, int]]  # data connections opened (host, port)
    reused: list[bool]  # per data connection: TLS session resumed, as the client saw it
    seconds: float


@dataclass
class Target:
    """One running server, as the tests use it."""

    key: str
    server: str  # for the table: name
    version: str
    tls: str  # configured protocol(s)
    reuse_required: bool
    host: str
    port: int
    user: str
    password: str
    ca_file: Path
    home: Path  # the FTP login directory on disk
    owner: tuple[int, int] | None  # uid/gid the FTP user writes as (for pre-made dirs)
    sets_mtime: bool  # whether the server supports a time-setting command
    stop: Callable[[], None]
    mirror_kwargs: dict[str, Any] = field(default_factory=dict)

    # -- what the server itself recorded ---------------------------------------------

    def mark(self) -> Any:
        """An opaque mark of the server's logs, for :meth:`uploads_since`/:meth:`check`."""
        return len(self.uploads())

    def uploads(self) -> list[str]:
        """Completed uploads the server recorded, oldest first, relative to ``home``
        and written the way its log writes names (see :meth:`log_name`)."""
        raise NotImplementedError

    def uploads_since(self, mark: Any, *, own: bool = False) -> list[str]:
        # Session processes write their logs on their own time: let them settle.
        deadline = time.monotonic() + 2.0
        last: list[str] | None = None
        while True:
            now = self.uploads()[self._count(mark) :]
            if now == last or time.monotonic() > deadline:
                break
            last = now
            time.sleep(0.15)
        return now if own else [p for p in now if not p.rpartition("/")[2].startswith(OWN_PREFIX)]

    def _count(self, mark: Any) -> int:
        return int(mark)

    def log_name(self, rel: str) -> str:
        return rel

    def check(self, mark: Any, run: Run) -> None:
        """Server-specific expectations about one run (session reuse, commands...)."""

    def make_dir(self, name: str) -> Path:
        path = self.home / name
        path.mkdir()
        if self.owner is not None:
            os.chown(path, *self.owner)
        return path


def data_connections(run: Run) -> int:
    """Data connections the server accepted: one 1xx reply to a transfer command each.

    (asyncmirror dials the passive port while it sends the command, so a refused
    command -- MLSD of a missing directory -- leaves a dial without a data connection.)
    """
    return sum(1 for line in run.trace if line.startswith(("<- 150", "<- 125")))


def _whitespace_as_underscore(rel: str) -> str:
    return "".join("_" if ch.isspace() else ch for ch in rel)


@dataclass
class ProftpdTarget(Target):
    proftpd: ProftpdServer | None = None

    def mark(self) -> Any:
        assert self.proftpd is not None
        return (len(self.uploads()), len(self.proftpd.tls_log_text()))

    def _count(self, mark: Any) -> int:
        return int(mark[0])

    def uploads(self) -> list[str]:
        assert self.proftpd is not None
        return self.proftpd.stored_paths(completed_only=True)

    def log_name(self, rel: str) -> str:
        return _whitespace_as_underscore(rel)

    def check(self, mark: Any, run: Run) -> None:
        assert self.proftpd is not None
        text = self.proftpd.tls_log_text()[mark[1] :]
        reused = text.count("reused TLS session")
        assert "did not reuse" not in text
        assert reused >= data_connections(run), (reused, data_connections(run))


@dataclass
class VsftpdTarget(Target):
    vsftpd: VsftpdServer | None = None

    def mark(self) -> Any:
        assert self.vsftpd is not None
        return (len(self.uploads()), len(self.vsftpd.log_text()))

    def _count(self, mark: Any) -> int:
        return int(mark[0])

    def uploads(self) -> list[str]:
        assert self.vsftpd is not None
        prefix = str(self.home).rstrip("/") + "/"
        return [r.path.removeprefix(prefix) for r in self.vsftpd.uploads() if r.completed]

    def log_name(self, rel: str) -> str:
        # vsftpd writes spaces as "_" and every non-ASCII byte as "?".
        return "".join(
            "_" if ch.isspace() else ch if ch.isascii() else "?" * len(ch.encode()) for ch in rel
        )

    def check(self, mark: Any, run: Run) -> None:
        assert self.vsftpd is not None
        time.sleep(0.2)  # the session processes' last lines
        text = self.vsftpd.log_text()[mark[1] :]
        reused, not_reused = VsftpdServer.tls_handshakes(text)
        connects = VsftpdServer.connects(text)
        # Only control connections may start a fresh TLS session; every data
        # connection resumed it (require_ssl_reuse=YES would refuse it otherwise).
        assert not_reused == connects, (not_reused, connects)
        assert reused >= data_connections(run), (reused, data_connections(run))
        assert "session reuse required" not in text


@dataclass
class PureftpdTarget(Target):
    pureftpd: PureftpdServer | None = None

    def uploads(self) -> list[str]:
        assert self.pureftpd is not None
        prefix = str(self.home).rstrip("/") + "/"
        return [r.path.removeprefix(prefix) for r in self.pureftpd.uploads() if r.completed]

    def log_name(self, rel: str) -> str:
        return _whitespace_as_underscore(rel)


@dataclass
class PyftpdTarget(Target):
    pyftpd: PyftpdServer | None = None
    expect_pasv: bool = False
    expect_list: bool = False
    pbsz_after_login: bool = False

    def mark(self) -> Any:
        assert self.pyftpd is not None
        return (len(self.pyftpd.snapshot_received()), len(self.pyftpd.snapshot_commands()))

    def _count(self, mark: Any) -> int:
        return int(mark[0])

    def uploads(self) -> list[str]:
        assert self.pyftpd is not None
        return self.pyftpd.snapshot_received()

    def check(self, mark: Any, run: Run) -> None:
        assert self.pyftpd is not None
        commands = self.pyftpd.snapshot_commands()[mark[1] :]
        verbs = [c.verb for c in commands]
        assert "FEAT" not in verbs
        if self.expect_pasv:
            assert {host for host, _ in run.dials} <= {"127.0.0.1"}, run.dials
            # EPSV is tried until the first 500 (a few sessions at once), then PASV only.
            assert verbs.count("EPSV") <= JOBS, verbs.count("EPSV")
            assert verbs.count("PASV") >= len(run.dials) - verbs.count("EPSV")
        if self.expect_list:
            assert verbs.count("MLSD") <= JOBS
            assert "LIST" in verbs
        if self.pbsz_after_login:
            early = [c for c in commands if c.verb in ("PBSZ", "PROT") and not c.logged_in]
            assert early == [], early
            assert verbs.count("PBSZ") >= 1


# --- fixtures ----------------------------------------------------------------------------

MATRIX = (
    "proftpd-tls13",
    "proftpd-tls12",
    "vsftpd",
    "pure-ftpd",
    "pyftpdlib",
    "pyftpdlib-list-tokyo",
    "pyftpdlib-pasv-masq-no-epsv",
    "pyftpdlib-pbsz-after-login",
)


def _start(key: str, workdir: Path) -> Target:
    common: dict[str, Any] = {}
    if key.startswith("proftpd"):
        require(proftpd_unavailable_reason(), "ProFTPD with mod_tls", INSTALL_HINT)
        protocol = "TLSv1.3" if key == "proftpd-tls13" else "TLSv1.2"
        pro = start_proftpd(workdir, tls_protocols=protocol, passive_range_size=60)
        st = pro.home.stat()
        return ProftpdTarget(
            key=key,
            server="ProFTPD",
            version="1.3.8",
            tls=f"TLSProtocol {protocol}",
            reuse_required=True,
            host=pro.host,
            port=pro.port,
            user=pro.user,
            password=pro.password,
            ca_file=pro.ca_file,
            home=pro.home,
            owner=(st.st_uid, st.st_gid),
            sets_mtime=True,
            stop=pro.stop,
            proftpd=pro,
        )
    if key == "vsftpd":
        require(vsftpd_unavailable_reason(), "vsftpd", INSTALL_SERVERS_HINT)
        vs = start_vsftpd()
        return VsftpdTarget(
            key=key,
            server="vsftpd",
            version=vs.version,
            tls="ssl_enable, sslv2/sslv3/tlsv1 off",
            reuse_required=True,
            host=vs.host,
            port=vs.port,
            user=vs.user,
            password=vs.password,
            ca_file=vs.ca_file,
            home=vs.home,
            owner=(vs.uid, vs.gid),
            sets_mtime=False,
            stop=vs.stop,
            vsftpd=vs,
        )
    if key == "pure-ftpd":
        require(pureftpd_unavailable_reason(), "pure-ftpd", INSTALL_SERVERS_HINT)
        pure = start_pureftpd()
        return PureftpdTarget(
            key=key,
            server="pure-ftpd",
            version=pure.version,
            tls="--tls=3 (control and data)",
            reuse_required=False,
            host=pure.host,
            port=pure.port,
            user=pure.user,
            password=pure.password,
            ca_file=pure.ca_file,
            home=pure.home,
            owner=(pure.uid, pure.gid),
            sets_mtime=True,
            stop=pure.stop,
            pureftpd=pure,
        )
    options: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    name = "pyftpdlib TLS_FTPHandler"
    if key == "pyftpdlib-list-tokyo":
        options = {"mlsd": False, "list_timezone": TOKYO}
        extra = {"expect_list": True}
        common["mirror_kwargs"] = {"remote_timezone": TOKYO}
        name += ", no MLSD, LIST in Asia/Tokyo"
    elif key == "pyftpdlib-pasv-masq-no-epsv":
        options = {"epsv": False, "masquerade_address": UNROUTABLE}
        extra = {"expect_pasv": True}
        name += f", no EPSV, PASV says {UNROUTABLE}"
    elif key == "pyftpdlib-pbsz-after-login":
        options = {"pbsz_requires_login": True}
        extra = {"pbsz_after_login": True}
        name += ", PBSZ/PROT only after login"
    py = start_pyftpd(workdir, **options)
    return PyftpdTarget(
        key=key,
        server=name,
        version=py.version,
        tls="TLS_SERVER_METHOD, control and data required",
        reuse_required=False,
        host=py.host,
        port=py.port,
        user=py.user,
        password=py.password,
        ca_file=py.ca_file,
        home=py.home,
        owner=None,
        sets_mtime=True,
        stop=py.stop,
        pyftpd=py,
        **common,
        **extra,
    )


@pytest.fixture(scope="module", params=MATRIX)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    key = request.param
    started = _start(key, tmp_path_factory.mktemp(key))
    row = ROWS.setdefault(key, {})
    row.update(
        server=started.server,
        version=started.version,
        tls=started.tls,
        reuse="required" if started.reuse_required else "not required",
    )
    with contextlib.suppress(OSError, ssl.SSLError):
        row["tls"] += f"; negotiates {probe_tls_version(started)}"
    try:
        yield started
    finally:
        started.stop()


def probe_tls_version(t: Target) -> str:
    """The TLS version the server negotiates with Python's default client context."""
    with socket.create_connection((t.host, t.port), timeout=5) as sock:
        reader = sock.makefile("rb")
        while reader.readline()[3:4] != b" ":
            pass
        sock.sendall(b"AUTH TLS\r\n")
        reply = reader.readline()
        if not reply.startswith(b"234"):
            return f"AUTH TLS answered {reply[:40]!r}"
        context = ssl.create_default_context(cafile=str(t.ca_file))
        with context.wrap_socket(sock, server_hostname=t.host) as tls:
            return str(tls.version())


@dataclass
class Wire:
    """What asyncmirror did on the wire, seen from inside the process."""

    dials: list[tuple[str, int]] = field(default_factory=list)  # data connections opened
    reused: list[bool] = field(default_factory=list)  # TLS session resumed, per data conn.

    def clear(self) -> None:
        self.dials.clear()
        self.reused.clear()


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    """Record every data connection asyncmirror opens, and whether its TLS session was
    resumed; refuse any address outside 127/8 (nothing may leave this machine)."""
    seen = Wire()
    data_tls = asyncmirror.transport.DataTLS
    connect = data_tls.connect
    handshake = data_tls.handshake

    async def guarded(cls: Any, host: str, port: int, *args: Any) -> Any:
        seen.dials.append((host, port))
        if not ipaddress.ip_address(host).is_loopback:
            with asyncmirror.transport.translate_errors(f"connect to {host}:{port}"):
                raise ConnectionRefusedError(f"test guard: {host} is not on this machine")
        return await connect.__func__(cls, host, port, *args)  # type: ignore[attr-defined]

    async def recording_handshake(self: Any) -> None:
        await handshake(self)
        seen.reused.append(self.session_reused)

    monkeypatch.setattr(data_tls, "connect", classmethod(guarded))
    monkeypatch.setattr(data_tls, "handshake", recording_handshake)
    return seen


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect after each test, so that a connection asyncmirror leaked (ResourceWarning
    on an unclosed transport) is reported against the test that leaked it."""
    yield
    gc.collect()


@pytest.fixture(scope="module", autouse=True)
def _write_table() -> Iterator[None]:
    yield
    out = os.environ.get("ASYNCMIRROR_COMPAT_TABLE")
    if out and ROWS:
        Path(out).write_text(json.dumps(ROWS, ensure_ascii=False, indent=1))


async def run_mirror(t: Target, src: Path, dst: str, wire: Wire, **kwargs: Any) -> Run:
    trace: list[str] = []
    wire.clear()
    started = time.monotonic()
    options = {"jobs": JOBS, **t.mirror_kwargs, **kwargs}
    report = await mirror(
        str(src),
        dst,
        host=t.host,
        port=t.port,
        user=t.user,
        password=t.password,
        ca_file=str(t.ca_file),
        timeout=TIMEOUT,
        deadline=60,
        trace=lambda direction, line: trace.append(f"{direction} {line}"),
        **options,
    )
    return Run(report, trace, list(wire.dials), list(wire.reused), time.monotonic() - started)


def listing_used(trace: list[str]) -> str:
    """The ways of looking at DST that a run tried, in order: the last one served."""
    sent = [line.split()[1] for line in trace if line.startswith("-> ") and len(line.split()) > 1]
    tried = [verb for verb in dict.fromkeys(sent) if verb in ("MLST", "MLSD", "LIST")]
    return " -> ".join("LIST -a" if verb == "LIST" else verb for verb in tried) or "none"


def mtime_used(trace: list[str], worked: bool) -> str:
    sent = [line[3:] for line in trace if line.startswith("-> ")]
    tried = [c for c in ("MFMT", "SITE UTIME") if any(s.startswith(c + " ") for s in sent)]
    if worked and tried:
        return tried[-1] + (" (MFMT refused)" if tried == ["MFMT", "SITE UTIME"] else "")
    return "none (" + " and ".join(tried) + " refused)" if tried else "none"


def logged(t: Target, dst: str, rels: list[str]) -> list[str]:
    """How the server's own record names these uploads into ``dst``, sorted."""
    return sorted(t.log_name(f"{dst}/{rel}") for rel in rels)


def report_ok(report: Report) -> None:
    assert report.failed == [], report.failed
    assert report.exit_code == 0


# --- the matrix --------------------------------------------------------------------------


async def test_mirror_cycle(target: Target, tmp_path: Path, wire: Wire) -> None:
    """First upload byte-identical, unchanged rerun uploads nothing, two edits upload two."""
    row = ROWS[target.key]
    src = build_tree(tmp_path / "site")
    name = f"cycle-{uuid.uuid4().hex[:6]}"
    remote = target.make_dir(name)
    uploadable = sorted(FILES)

    mark = target.mark()
    first = await run_mirror(target, src, name, wire)
    row["listing"] = listing_used(first.trace)
    row["passive"] = "EPSV" if any(s.startswith("<- 229") for s in first.trace) else "PASV"
    remote_mtime = (remote / "index.html").stat().st_mtime
    local_mtime = (src / "index.html").stat().st_mtime
    mtime_set = abs(remote_mtime - local_mtime) < 1
    row["mtime"] = mtime_used(first.trace, mtime_set)
    report_ok(first.report)
    assert_same_tree(src, remote)
    assert data_connections(first) >= len(uploadable)
    assert sorted(target.uploads_since(mark)) == logged(target, name, uploadable)
    assert first.report.uploaded == len(uploadable)
    assert mtime_set == target.sets_mtime, (remote_mtime, local_mtime)
    target.check(mark, first)
    row["first run"] = f"{len(uploadable)} files, {first.seconds:.2f} s"
    row["client saw reuse"] = f"{sum(first.reused)}/{len(first.reused)} data connections"
    if target.reuse_required:
        assert all(first.reused), first.reused

    mark = target.mark()
    again = await run_mirror(target, src, name, wire)
    report_ok(again.report)
    assert target.uploads_since(mark, own=True) == [], "an unchanged rerun uploaded files"
    assert again.report.uploaded == 0
    target.check(mark, again)
    row["unchanged rerun"] = "0 uploads"

    changed = edit(src)
    mark = target.mark()
    third = await run_mirror(target, src, name, wire)
    report_ok(third.report)
    assert sorted(target.uploads_since(mark)) == logged(target, name, changed)
    assert third.report.uploaded == len(changed)
    assert_same_tree(src, remote)
    target.check(mark, third)
    row["after 2 edits"] = "2 uploads"


async def test_first_deploy_creates_missing_dst(target: Target, tmp_path: Path, wire: Wire) -> None:
    """DST and its parent do not exist yet: asyncmirror creates them, then uploads.

    With several sessions, as users run it: each session that meets an unknown MLSD
    falls back to CWD + LIST on its own, so none can read DST's absence wrongly.
    """
    src = tmp_path / "small"
    for rel in ("index.html", "sub dir/日本語.txt", "-rf"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(rel.encode() * 3)
    parent = f"new-{uuid.uuid4().hex[:6]}"
    dst = f"{parent}/www"
    assert not (target.home / parent).exists()
    run = await run_mirror(target, src, dst, wire)
    ROWS[target.key]["missing DST"] = "created" if not run.report.failed else "FAILED"
    report_ok(run.report)
    assert_same_tree(src, target.home / dst)


async def test_swap_switches_releases_and_rollback_brings_the_last_one_back(
    target: Target, tmp_path: Path, wire: Wire
) -> None:
    """--swap and --rollback work by renaming directories: every server must allow it."""
    v1 = build_tree(tmp_path / "v1")
    v2 = tmp_path / "v2"
    shutil.copytree(v1, v2)
    edit(v2)  # same paths, two files changed: the trees compare whole
    dst = f"swap-{uuid.uuid4().hex[:6]}"
    target.make_dir(dst)
    (target.home / dst / "uploads").mkdir()
    (target.home / dst / "uploads" / "photo.jpg").write_bytes(b"written by the web app")
    if target.owner is not None:
        for p in (target.home / dst / "uploads", target.home / dst / "uploads" / "photo.jpg"):
            os.chown(p, *target.owner)
    server_only = {"uploads/photo.jpg": b"written by the web app"}

    def live() -> dict[str, bytes]:
        return snapshot(target.home / dst)

    first = await run_mirror(target, v1, dst, wire, swap=True)
    report_ok(first.report)
    assert live() == {**snapshot(v1), **server_only}
    second = await run_mirror(target, v2, dst, wire, swap=True)
    report_ok(second.report)
    assert live() == {**snapshot(v2), **server_only}
    back = await rollback(
        dst,
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        ca_file=str(target.ca_file),
        timeout=TIMEOUT,
        **{k: v for k, v in target.mirror_kwargs.items() if k == "remote_timezone"},
    )
    assert back.failed == [], back.failed
    assert live() == {**snapshot(v1), **server_only}
    ROWS[target.key]["--swap"] = "ok"


# --- LIST-only server in a non-UTC zone ---------------------------------------------------


@pytest.fixture
def tokyo_list_server(tmp_path: Path) -> Iterator[PyftpdTarget]:
    """No MLSD, LIST in Asia/Tokyo, and LIST -a PATH understood (as ProFTPD/vsftpd do),
    so that the time-zone handling is tested on its own."""
    py = start_pyftpd(
        tmp_path / "server", mlsd=False, list_timezone=TOKYO, list_accepts_options=True
    )
    try:
        yield PyftpdTarget(
            key="tokyo",
            server="pyftpdlib, no MLSD, LIST in Asia/Tokyo",
            version=py.version,
            tls="TLS 1.3",
            reuse_required=False,
            host=py.host,
            port=py.port,
            user=py.user,
            password=py.password,
            ca_file=py.ca_file,
            home=py.home,
            owner=None,
            sets_mtime=True,
            stop=py.stop,
            pyftpd=py,
            expect_list=True,
        )
    finally:
        py.stop()


#: The time-zone tests use one session: they test the zone arithmetic on its own, while the
#: matrix above (``pyftpdlib-list-tokyo``, ``vsftpd``) covers MLSD-less servers in parallel.
ONE = {"jobs": 1}


async def test_list_only_tokyo_with_remote_timezone(
    tokyo_list_server: PyftpdTarget, tmp_path: Path, wire: Wire
) -> None:
    t = tokyo_list_server
    src = build_tree(tmp_path / "site")
    first = await run_mirror(t, src, "www", wire, remote_timezone=TOKYO, **ONE)
    report_ok(first.report)
    assert listing_used(first.trace).endswith("LIST -a")
    assert_same_tree(src, t.home / "www")

    mark = t.mark()
    again = await run_mirror(t, src, "www", wire, remote_timezone=TOKYO, **ONE)
    report_ok(again.report)
    assert t.uploads_since(mark, own=True) == []

    changed = edit(src)
    mark = t.mark()
    third = await run_mirror(t, src, "www", wire, remote_timezone=TOKYO, **ONE)
    report_ok(third.report)
    assert sorted(t.uploads_since(mark)) == logged(t, "www", changed)
    assert_same_tree(src, t.home / "www")


async def test_list_only_tokyo_without_remote_timezone(
    tokyo_list_server: PyftpdTarget, tmp_path: Path, wire: Wire
) -> None:
    """Without --remote-timezone the Tokyo LIST times are read as UTC: every remote file
    looks 9 hours newer than it is. Unchanged reruns stay quiet and an edit that changes
    the size is still uploaded, but an edit that keeps the size is missed until the local
    file is more than 9 hours newer than the server's copy. README's
    ``--remote-timezone`` row is the way out; this pins the consequence."""
    t = tokyo_list_server
    src = build_tree(tmp_path / "site")
    first = await run_mirror(t, src, "www", wire, **ONE)
    report_ok(first.report)
    assert_same_tree(src, t.home / "www")

    mark = t.mark()
    again = await run_mirror(t, src, "www", wire, **ONE)
    report_ok(again.report)
    assert t.uploads_since(mark, own=True) == []

    # An edit an hour after the deployed version (whose time MFMT copied to the server):
    # less than Tokyo's 9 hours ahead of UTC.
    edit(src, mtime=(src / SAME_SIZE_EDIT).stat().st_mtime + 3600)
    mark = t.mark()
    third = await run_mirror(t, src, "www", wire, **ONE)
    report_ok(third.report)
    assert t.uploads_since(mark) == logged(t, "www", [GROWING_EDIT])
    assert (t.home / "www" / SAME_SIZE_EDIT).read_bytes() != (src / SAME_SIZE_EDIT).read_bytes()

    # With the zone given, the same run sees the missed edit.
    mark = t.mark()
    fixed = await run_mirror(t, src, "www", wire, remote_timezone=TOKYO, **ONE)
    report_ok(fixed.report)
    assert t.uploads_since(mark) == logged(t, "www", [SAME_SIZE_EDIT])
    assert_same_tree(src, t.home / "www")
