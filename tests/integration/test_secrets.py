"""The password never shows: not on stdout, not on stderr (``--debug`` included), not in any
file a run leaves behind -- whatever goes wrong.

Each failure mode runs the CLI in a subprocess with a distinctive password against a real
ProFTPD behind the fault proxy (``servers.faultproxy``), then looks for the password (and
for a long piece of it, to catch a truncated or escaped echo) in everything the run
produced: its output, and every file under the test's temporary directories, the
subprocess's HOME and TMPDIR, and DST on the server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.faultproxy import (
    Answer,
    FakePlainServer,
    Fault,
    FaultProxy,
    Silence,
    fault_server,
)
from tests.servers.proftpd import ProftpdServer

#: The server's real password, and a wrong one: both must stay secret.
SECRET = "Qx7-s3cr3t-ZEBRA-41f9"
WRONG = "Wr0ng-s3cr3t-OKAPI-9c2e"
#: Pieces long enough to be unmistakable, short enough to catch a cut-off echo.
PIECES = ("s3cr3t-ZEBRA", "s3cr3t-OKAPI", "Qx7-s3cr3t", "Wr0ng-s3cr3t")


@dataclass
class Env:
    server: ProftpdServer
    proxy: FaultProxy


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with fault_server(tmp_path_factory.mktemp("secretftp"), password=SECRET) as (server, proxy):
        yield Env(server, proxy)


@pytest.fixture
def proxy(env: Env) -> Iterator[FaultProxy]:
    env.proxy.reset()
    yield env.proxy
    env.proxy.reset()


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Run:
    rc: int
    out: str
    err: str
    dst: Path


def run_cli(
    env: Env,
    tmp_path: Path,
    *args: str,
    password: str | None = SECRET,
    server: str | None = None,
    ca: bool = True,
    extra_env: dict[str, str] | None = None,
) -> Run:
    src = tmp_path / "site"
    if not src.exists():
        src.mkdir()
        (src / "index.html").write_text("<h1>hello</h1>\n")
        (src / "denied.txt").write_text("refused by the server in one test\n")
        (src / "sub").mkdir()
        (src / "sub" / "app.js").write_text("console.log(1)\n")
    home = tmp_path / "home"
    tmpdir = tmp_path / "tmp"
    home.mkdir(exist_ok=True)
    tmpdir.mkdir(exist_ok=True)
    dst = f"t-secret-{uuid.uuid4().hex[:8]}"
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FTP_", "SSL_CERT", "NETRC", "HOME", "TMPDIR"))
    }
    full_env.update(
        HOME=str(home),
        TMPDIR=str(tmpdir),
        FTP_SERVER=server or f"{env.proxy.host}:{env.proxy.port}",
        FTP_USERNAME=env.server.user,
    )
    if password is not None:
        full_env["FTP_PASSWORD"] = password
    full_env.update(extra_env or {})
    argv = [sys.executable, "-m", "asyncmirror.cli", str(src), dst, "--no-progress", *args]
    if ca:
        argv += ["--ca-file", str(env.server.ca_file)]
    try:
        proc = subprocess.run(
            argv, env=full_env, capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"asyncmirror hung; stderr so far: {(exc.stderr or b'')[-2000:]!r}")
    return Run(proc.returncode, proc.stdout, proc.stderr, env.server.home / dst)


def assert_no_secret(run: Run, tmp_path: Path, *, planted: tuple[Path, ...] = ()) -> None:
    """Neither password (nor a long piece of one) in the output or in any file left."""
    for name, text in (("stdout", run.out), ("stderr", run.err)):
        for piece in PIECES:
            assert piece not in text, f"the password leaked on {name}:\n{text[-3000:]}"
    roots = [tmp_path, run.dst]
    for root in roots:
        if not root.exists():
            continue
        for path in root.rglob("*"):
            if path in planted or not path.is_file():
                continue
            data = path.read_bytes()
            for piece in PIECES:
                assert piece.encode() not in data, f"the password leaked into {path}"


DEBUG = ("--debug", "-vv", "--json")


# --- the failure modes -------------------------------------------------------------------


@pytest.mark.parametrize("flags", [(), DEBUG], ids=["plain", "debug"])
def test_wrong_password(
    env: Env, proxy: FaultProxy, tmp_path: Path, flags: tuple[str, ...]
) -> None:
    run = run_cli(env, tmp_path, *flags, password=WRONG)
    assert run.rc == 3, run.err
    assert "refused the login" in run.err, run.err
    assert_no_secret(run, tmp_path)


def test_connection_refused(env: Env, tmp_path: Path) -> None:
    port = _free_port(env.proxy.host)
    run = run_cli(env, tmp_path, *DEBUG, server=f"{env.proxy.host}:{port}")
    assert run.rc == 3, run.err
    assert "refused" in run.err, run.err
    assert_no_secret(run, tmp_path)


def test_untrusted_certificate(env: Env, proxy: FaultProxy, tmp_path: Path) -> None:
    run = run_cli(env, tmp_path, *DEBUG, ca=False)
    assert run.rc == 3, run.err
    assert "SHA256:" in run.err, run.err  # the fingerprint, to pin it
    assert "USER" not in run.err  # nothing was sent before the certificate was trusted
    assert_no_secret(run, tmp_path)


def test_silent_server_timeouts(env: Env, proxy: FaultProxy, tmp_path: Path) -> None:
    # Logged in, then the server goes silent: the PASS went out; its echo must not.
    silence = Fault("EPSV", Silence(), times=1)
    proxy.inject(silence)
    started = time.monotonic()
    run = run_cli(env, tmp_path, *DEBUG, "--timeout", "1", "--retries", "1")
    assert silence.done >= 1
    assert run.rc != 0, run.err
    assert "timed out" in run.err, run.err
    assert time.monotonic() - started < 30
    assert_no_secret(run, tmp_path)


def test_permanent_553(env: Env, proxy: FaultProxy, tmp_path: Path) -> None:
    proxy.inject(Fault("STOR", Answer("553 Permission denied"), name="denied.txt"))
    run = run_cli(env, tmp_path, *DEBUG)
    assert run.rc == 1, run.err
    assert "553 Permission denied" in run.err
    assert_no_secret(run, tmp_path)


def test_421_at_login(env: Env, proxy: FaultProxy, tmp_path: Path) -> None:
    refused = Fault("PASS", Answer("421 Too many users, try later"))
    proxy.inject(refused)
    run = run_cli(env, tmp_path, *DEBUG, "--timeout", "2", "--retries", "1")
    assert refused.done >= 1
    assert run.rc == 3, run.err
    assert "421" in run.err
    assert_no_secret(run, tmp_path)


def test_success_with_debug_trace_masks_the_password(
    env: Env, proxy: FaultProxy, tmp_path: Path
) -> None:
    run = run_cli(env, tmp_path, *DEBUG)
    assert run.rc == 0, run.err
    assert "-> PASS ****" in run.err  # the trace is on, and masked
    assert (run.dst / "index.html").is_file()
    assert_no_secret(run, tmp_path)


def test_auth_tls_refused(tmp_path: Path, env: Env) -> None:
    with FakePlainServer({"AUTH": "500 AUTH not understood", "USER": "331 go on"}) as fake:
        run = run_cli(env, tmp_path, *DEBUG, server=f"{fake.host}:{fake.port}", ca=False)
        received = list(fake.received)
    assert run.rc == 3, run.err
    assert received, "the fake server got nothing"
    assert {line.split(" ")[0] for line in received} <= {"AUTH", "QUIT"}, received
    assert_no_secret(run, tmp_path)


def test_password_with_a_carriage_return_from_a_crlf_env_file(
    env: Env, proxy: FaultProxy, tmp_path: Path
) -> None:
    # `docker --env-file` and friends keep the \r of a file saved with CRLF line ends.
    run = run_cli(env, tmp_path, *DEBUG, password=SECRET + "\r")
    assert run.rc != 0, run.err
    assert_no_secret(run, tmp_path)


def test_malformed_netrc(env: Env, proxy: FaultProxy, tmp_path: Path) -> None:
    # The "password" keyword forgotten: the password is then a stray token.
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {env.proxy.host} login {env.server.user} {SECRET}\n")
    netrc.chmod(0o600)
    run = run_cli(env, tmp_path, *DEBUG, password=None, extra_env={"NETRC": str(netrc)})
    assert run.rc == 2, run.err
    assert "netrc" in run.err, run.err
    assert_no_secret(run, tmp_path, planted=(netrc,))
