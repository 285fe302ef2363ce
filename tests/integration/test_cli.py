"""The ``asyncmirror`` command as a user runs it: a subprocess, its exit code, what it
prints, and what landed on the real ProFTPD (through the FEAT-silent proxy).

Exit codes: 0 ok, 1 some files failed, 2 usage or local error, 3 connection, TLS or login.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.treebuilders import Tree, build_small_tree, is_own, snapshot
from tests.servers.featsilent import FeatSilentProxy
from tests.servers.proftpd import ProftpdServer, RemoteDir

TIMEOUT = 90
HIDE_DOTFILES = ["-X", ".*", "-X", ".*/"]
SUMMARY = re.compile(
    r"^asyncmirror: uploaded (\d+) files \([^)]*\), skipped (\d+), failed (\d+)"
    r"(?:, deleted \d+)? in [\d.]+ s, [\d.]+ files/s$"
)


def run_cli(
    *args: str | os.PathLike[str], env: dict[str, str], timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncmirror.cli", *map(str, args)],
        env=env,
        stdin=subprocess.DEVNULL,  # not a terminal: never prompts
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The whole of stderr is one ``asyncmirror: error: ...`` line, and no traceback."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("asyncmirror: error: "), lines[0]
    return lines[0]


def stored_since(proftpd: ProftpdServer, before: int) -> list[str]:
    return proftpd.stored_paths()[before:]


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    """A small local tree, only read by these tests."""
    return build_small_tree(tmp_path_factory.mktemp("cli") / "site")


@pytest.fixture
def env(ftp_env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **ftp_env}


@pytest.fixture
def ca(proftpd: ProftpdServer) -> list[str]:
    return ["--ca-file", str(proftpd.ca_file)]


# --- success -------------------------------------------------------------------------


def test_success_prints_the_summary_and_exits_0(
    site: Tree,
    remote_dir: RemoteDir,
    env: dict[str, str],
    ca: list[str],
    proftpd: ProftpdServer,
    featsilent: FeatSilentProxy,
) -> None:
    before = proftpd.stor_count()
    proc = run_cli(site.root, remote_dir.name, *ca, *HIDE_DOTFILES, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    last = proc.stderr.strip().splitlines()[-1]
    m = SUMMARY.match(last)
    assert m, last
    assert (int(m[1]), int(m[2]), int(m[3])) == (len(site.visible_files), 0, 0)

    assert snapshot(remote_dir.path, skip_own=True) == snapshot(site.root, skip_hidden=True)
    assert len([p for p in stored_since(proftpd, before) if not is_own(p)]) == len(
        site.visible_files
    )
    assert not featsilent.feat_seen
    assert set(featsilent.plaintext_commands) == {"AUTH TLS"}, featsilent.plaintext_commands


def test_verbose_prints_lftp_style_transfer_lines(
    site: Tree, remote_dir: RemoteDir, env: dict[str, str], ca: list[str]
) -> None:
    proc = run_cli(site.root, remote_dir.name, "-v", *ca, *HIDE_DOTFILES, env=env)
    assert proc.returncode == 0, proc.stderr
    for rel in site.visible_files:
        assert f"Transferring file `{rel}'" in proc.stderr, rel
    assert ".env" not in proc.stderr
    assert SUMMARY.match(proc.stderr.strip().splitlines()[-1])


def test_dry_run_exits_0_and_stores_nothing(
    site: Tree,
    remote_dir: RemoteDir,
    env: dict[str, str],
    ca: list[str],
    proftpd: ProftpdServer,
) -> None:
    before = proftpd.stor_count()
    proc = run_cli(site.root, remote_dir.name, "--dry-run", "-v", *ca, *HIDE_DOTFILES, env=env)
    assert proc.returncode == 0, proc.stderr
    assert not remote_dir.path.exists()
    assert stored_since(proftpd, before) == []
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"asyncmirror: dry run: would upload {len(site.visible_files)} files")
    for rel in site.visible_files:
        assert f"`{rel}'" in proc.stderr, rel


def test_json_prints_the_report_with_counts(
    site: Tree, remote_dir: RemoteDir, env: dict[str, str], ca: list[str]
) -> None:
    proc = run_cli(site.root, remote_dir.name, "--json", *ca, *HIDE_DOTFILES, env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True
    assert doc["uploaded"] == len(site.visible_files)
    assert doc["failed"] == []
    assert doc["skipped"] == 0
    assert doc["bytes_sent"] == sum(len(b) for b in snapshot(site.root, skip_hidden=True).values())
    assert sorted(u["path"] for u in doc["plan"]["uploads"]) == sorted(site.visible_files)

    again = run_cli(site.root, remote_dir.name, "--json", *ca, *HIDE_DOTFILES, env=env)
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert (doc["uploaded"], doc["skipped"]) == (0, len(site.visible_files))


def test_debug_shows_the_exchange_with_the_password_masked(
    site: Tree, remote_dir: RemoteDir, env: dict[str, str], ca: list[str], proftpd: ProftpdServer
) -> None:
    proc = run_cli(site.root, remote_dir.name, "--debug", "-j", "2", *ca, *HIDE_DOTFILES, env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stderr
    assert "-> PASS ****" in out
    assert proftpd.password not in out + proc.stdout
    assert "-> AUTH TLS" in out
    assert "-> USER " in out
    assert out.index("-> AUTH TLS") < out.index("-> USER ")
    assert "FEAT" not in out


# --- exit 2: usage or local problems ---------------------------------------------------


def test_missing_src_exits_2_and_names_the_path(
    tmp_path: Path,
    remote_dir: RemoteDir,
    env: dict[str, str],
    ca: list[str],
    featsilent: FeatSilentProxy,
) -> None:
    missing = tmp_path / "no such site"
    proc = run_cli(missing, remote_dir.name, *ca, env=env)
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert str(missing) in line
    assert not remote_dir.path.exists()
    assert featsilent.connections == 0  # a typo in SRC does not even connect


@pytest.mark.parametrize(
    ("files", "connections"),
    [
        (["a.html", "b.css"], 2),  # both known from SRC's top level: begun early
        (["site/a.html", "site/b.css", "site/c.js"], 3),  # 1 early, 2 more after the scan
        ([".git/config", "index.html"], 1),  # excluded entries are not counted
    ],
)
def test_connections_begun_before_the_imports_are_sessions_not_extras(
    tmp_path: Path,
    remote_dir: RemoteDir,
    env: dict[str, str],
    ca: list[str],
    featsilent: FeatSilentProxy,
    files: list[str],
    connections: int,
) -> None:
    """The command connects while Python imports (early.py), as many times as SRC's top
    level proves useful; each of those must become a session, none left idle."""
    src = tmp_path / "src"
    for rel in files:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(rel.encode())
    proc = run_cli(src, remote_dir.name, *ca, *HIDE_DOTFILES, env=env)
    assert proc.returncode == 0, proc.stderr
    assert featsilent.connections == connections
    for rel in files:
        if not rel.startswith("."):
            assert (remote_dir.path / rel).read_bytes() == rel.encode()


def test_src_that_is_a_file_exits_2(
    tmp_path: Path, remote_dir: RemoteDir, env: dict[str, str], ca: list[str]
) -> None:
    a_file = tmp_path / "index.html"
    a_file.write_text("<h1>hi</h1>")
    proc = run_cli(a_file, remote_dir.name, *ca, env=env)
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert "not a directory" in line
    assert not remote_dir.path.exists()


def test_no_server_exits_2(site: Tree, env: dict[str, str], ca: list[str]) -> None:
    env = {k: v for k, v in env.items() if k != "FTP_SERVER"}
    proc = run_cli(site.root, "www", *ca, env=env)
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert "server" in line
    assert "FTP_SERVER" in line


def test_password_in_the_url_is_refused_with_exit_2(
    site: Tree, env: dict[str, str], ca: list[str], featsilent: FeatSilentProxy
) -> None:
    secret = "s3cret-in-url"
    url = f"ftps://mirror:{secret}@{featsilent.host}:{featsilent.port}/www"
    proc = run_cli(site.root, url, *ca, env=env)
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert "password" in line
    assert secret not in proc.stderr + proc.stdout
    assert featsilent.connections == 0  # refused before connecting


# --- exit 3: connection, TLS or login ---------------------------------------------------


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_wrong_password_exits_3_and_never_shows_it(
    site: Tree, remote_dir: RemoteDir, env: dict[str, str], ca: list[str], debug: bool
) -> None:
    wrong = "Wr0ng-Passw0rd-xyz"
    env = {**env, "FTP_PASSWORD": wrong}
    proc = run_cli(site.root, remote_dir.name, *ca, *(["--debug"] if debug else []), env=env)
    assert proc.returncode == 3, proc.stderr
    assert wrong not in proc.stdout + proc.stderr
    if debug:
        assert "-> PASS ****" in proc.stderr
        line = proc.stderr.strip().splitlines()[-1]
        assert line.startswith("asyncmirror: error: ")
    else:
        line = one_error_line(proc)
    assert "530" in line or "login" in line.lower(), line
    assert not remote_dir.path.exists()


def test_a_wrong_password_is_tried_once_not_once_per_session(
    tmp_path: Path,
    remote_dir: RemoteDir,
    env: dict[str, str],
    ca: list[str],
    proftpd: ProftpdServer,
    featsilent: FeatSilentProxy,
) -> None:
    """Shared hosts lock an account out after a few refused logins: the sessions of a
    run (eight here, all begun at once) may connect together, but only one of them
    sends the wrong password."""
    src = tmp_path / "many"
    src.mkdir()
    for i in range(12):
        (src / f"f{i}.txt").write_bytes(b"x")
    refused_before = proftpd.system_log_text().count("Login failed")
    proc = run_cli(src, remote_dir.name, *ca, env={**env, "FTP_PASSWORD": "Wr0ng-again"})
    assert proc.returncode == 3, proc.stderr
    assert "refused the login" in one_error_line(proc)
    assert featsilent.connections == 8  # they did connect together ...
    deadline = time.monotonic() + 5
    while proftpd.system_log_text().count("Login failed") == refused_before:
        assert time.monotonic() < deadline, "ProFTPD logged no refused login"
        time.sleep(0.05)
    time.sleep(0.3)  # let any later refusal reach the log too
    assert proftpd.system_log_text().count("Login failed") - refused_before == 1  # ... once


def test_connection_refused_exits_3(site: Tree, env: dict[str, str], ca: list[str]) -> None:
    env = {**env, "FTP_SERVER": f"127.0.0.1:{free_port()}"}
    proc = run_cli(site.root, "www", *ca, "--timeout", "10", env=env)
    assert proc.returncode == 3, proc.stderr
    line = one_error_line(proc)
    assert "refused" in line


def test_untrusted_certificate_exits_3(
    site: Tree, remote_dir: RemoteDir, env: dict[str, str], proftpd: ProftpdServer
) -> None:
    env = {k: v for k, v in env.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    proc = run_cli(site.root, remote_dir.name, env=env)  # no --ca-file
    assert proc.returncode == 3, proc.stderr
    line = one_error_line(proc)
    assert "certificate" in line.lower()
    assert proftpd.password not in proc.stderr + proc.stdout
    assert not remote_dir.path.exists()


def test_unresolvable_host_exits_3(site: Tree, env: dict[str, str], ca: list[str]) -> None:
    env = {**env, "FTP_SERVER": "nonexistent.invalid"}
    proc = run_cli(site.root, "www", *ca, "--timeout", "10", env=env)
    assert proc.returncode == 3, proc.stderr
    line = one_error_line(proc)
    assert "nonexistent.invalid" in line


def test_a_host_name_that_cannot_be_encoded_exits_3_at_once(
    site: Tree, env: dict[str, str], ca: list[str]
) -> None:
    """Not "timed out" after --timeout, nor an internal error: what is wrong, at once."""
    env = {**env, "FTP_SERVER": "a..b"}
    proc = run_cli(site.root, "www", *ca, "--timeout", "10", env=env)
    assert proc.returncode == 3, proc.stderr
    line = one_error_line(proc)
    assert "a..b" in line, line
    assert "not a valid host name" in line, line


# --- the demo ----------------------------------------------------------------------------


def test_a_directory_named_demo_is_mirrored(
    tmp_path: Path, remote_dir: RemoteDir, env: dict[str, str], ca: list[str]
) -> None:
    # `asyncmirror demo www` used to start the demo whatever followed the word.
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "index.html").write_bytes(b"<p>mine</p>")
    proc = subprocess.run(
        [sys.executable, "-m", "asyncmirror.cli", "demo", remote_dir.name, *ca, "--no-progress"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "demo server" not in proc.stderr
    assert (remote_dir.path / "index.html").read_bytes() == b"<p>mine</p>"


@pytest.mark.parametrize("keep", [False, True], ids=["cleans-up", "keep"])
def test_demo_runs_and_says_all_files_are_byte_identical(tmp_path: Path, keep: bool) -> None:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    args = ["demo", "--files", "30", "--no-progress"] + (["--keep"] if keep else [])
    proc = run_cli(*args, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "all byte-identical" in proc.stderr
    assert "Traceback" not in proc.stderr
    left = sorted(p.name for p in tmp_path.iterdir())
    if not keep:
        # Every run of the README's first command used to leave two directories in /tmp.
        assert left == [], left
    else:
        (work,) = left
        kept = tmp_path / work
        assert str(kept) in proc.stderr
        assert (kept / "server-home" / "www" / "page-0000.html").read_bytes() == (
            kept / "site" / "page-0000.html"
        ).read_bytes()
