"""Symbolic links to directories in SRC become directories on the server (as rsync -L).

A real tree (a Debian documentation folder) had 77 links, 55 of them to directories
elsewhere in the tree: each used to be a failure, so every run exited 1 and a site's
``latest -> v2`` became a broken URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncmirror import Report
from tests.integration.clients import mirror_to, run_command
from tests.servers.proftpd import ProftpdServer, RemoteDir, require_proftpd, start_proftpd


def test_linked_directories_are_uploaded_under_the_links_path_and_a_loop_is_one_notice(
    tmp_path: Path, ftp_env: dict[str, str], remote_dir: RemoteDir
) -> None:
    src = tmp_path / "site"
    (src / "v2" / "css").mkdir(parents=True)
    (src / "v2" / "index.html").write_text("<h1>v2</h1>\n")
    (src / "v2" / "css" / "site.css").write_text("body{}\n")
    (src / "latest").symlink_to("v2", target_is_directory=True)
    (src / "v2" / "self").symlink_to("..", target_is_directory=True)  # a loop
    run = subprocess.run(
        [sys.executable, "-m", "asyncmirror.cli", str(src), remote_dir.name, "--no-progress"],
        env={**os.environ, **ftp_env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "failed 0" in run.stderr
    notices = [ln for ln in run.stderr.splitlines() if "not mirrored" in ln]
    assert notices == [
        "asyncmirror: not mirrored, as FTP cannot carry them: latest/self (symbolic link to "
        "SRC itself, which holds it: a loop); v2/self (symbolic link to SRC itself, which "
        "holds it: a loop)"
    ], run.stderr
    served = remote_dir.path / "latest"
    assert served.is_dir()
    assert not served.is_symlink()
    assert (served / "index.html").read_text() == "<h1>v2</h1>\n"
    assert (served / "css" / "site.css").read_text() == "body{}\n"
    assert (remote_dir.path / "v2" / "index.html").read_text() == "<h1>v2</h1>\n"


# --- --site-symlink --------------------------------------------------------------------


def _linked_site(tmp_path: Path) -> Path:
    """``latest -> v2``, ``home.html -> index.html``, and two links out of SRC."""
    src = tmp_path / "site"
    (src / "v2" / "css").mkdir(parents=True)
    (src / "v2" / "index.html").write_text("<h1>v2</h1>\n")
    (src / "v2" / "css" / "site.css").write_text("body{}\n")
    (src / "index.html").write_text("<h1>home</h1>\n")
    (src / "latest").symlink_to("v2", target_is_directory=True)
    (src / "home.html").symlink_to("index.html")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "logo.svg").write_text("<svg/>\n")
    (tmp_path / "terms.txt").write_text("terms\n")
    (src / "assets").symlink_to("../shared", target_is_directory=True)
    (src / "terms.txt").symlink_to(tmp_path / "terms.txt")  # absolute, outside
    return src


@pytest.fixture(scope="module")
def unjailed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProftpdServer]:
    """ProFTPD (mod_site_misc loaded) whose logins are not chrooted: the login
    directory is the home's real path, so absolute link targets resolve on disk."""
    require_proftpd()
    server = start_proftpd(tmp_path_factory.mktemp("unjailed"), chroot=False)
    try:
        yield server
    finally:
        server.stop()


def _env(server: ProftpdServer) -> dict[str, str]:
    return {
        "FTP_SERVER": f"{server.host}:{server.port}",
        "FTP_USERNAME": server.user,
        "FTP_PASSWORD": server.password,
        "SSL_CERT_FILE": str(server.ca_file),
    }


def test_site_symlink_makes_links_inside_src_and_uploads_what_points_outside(
    tmp_path: Path, unjailed: ProftpdServer
) -> None:
    src = _linked_site(tmp_path)
    name, env = "linked", _env(unjailed)
    served = unjailed.home / name
    before = unjailed.stor_count()
    dry = run_command(src, name, env, "--site-symlink", "--dry-run", "-v")
    assert dry.returncode == 0, dry.stderr
    assert f"Making symbolic link `latest' to `{served}/v2'" in dry.stderr
    assert "latest/index.html" not in dry.stderr
    assert not served.exists()
    run = run_command(src, name, env, "--site-symlink", "-v")
    assert run.returncode == 0, run.stderr
    assert "failed 0" in run.stderr
    assert f"Making symbolic link `home.html' to `{served}/index.html'" in run.stderr
    # Real links on the server's disk, which the web server follows too.
    assert os.readlink(served / "latest") == str(served / "v2")
    assert os.readlink(served / "home.html") == str(served / "index.html")
    assert (served / "latest" / "css" / "site.css").read_text() == "body{}\n"
    assert (served / "home.html").read_text() == "<h1>home</h1>\n"
    # Pointing outside SRC: the content, as without the option.
    assert not (served / "assets").is_symlink()
    assert (served / "assets" / "logo.svg").read_text() == "<svg/>\n"
    assert not (served / "terms.txt").is_symlink()
    assert (served / "terms.txt").read_text() == "terms\n"
    stored = [p.removeprefix(name + "/") for p in unjailed.stored_paths()[before:]]
    assert sorted(p for p in stored if not p.startswith(".ht")) == [  # not the state file
        "assets/logo.svg",
        "index.html",
        "terms.txt",
        "v2/css/site.css",
        "v2/index.html",
    ]

    # A rerun uploads nothing and leaves the links as they are (same inodes).
    inodes = {n: os.lstat(served / n).st_ino for n in ("latest", "home.html")}
    again = run_command(src, name, env, "--site-symlink")
    assert again.returncode == 0, again.stderr
    assert "uploaded 0 files" in again.stderr
    assert len(unjailed.stored_paths()) == before + len(stored)
    assert {n: os.lstat(served / n).st_ino for n in inodes} == inodes

    # A link that points elsewhere now is replaced.
    (src / "v1").mkdir()
    (src / "v1" / "index.html").write_text("<h1>v1</h1>\n")
    (src / "latest").unlink()
    (src / "latest").symlink_to("v1", target_is_directory=True)
    mark = len(unjailed.stored_paths())
    moved = run_command(src, name, env, "--site-symlink")
    assert moved.returncode == 0, moved.stderr
    assert os.readlink(served / "latest") == str(served / "v1")
    site_stored = [p for p in unjailed.stored_paths()[mark:] if "/.ht" not in p]
    assert site_stored == [f"{name}/v1/index.html"]  # v1's page, not a copy under latest/
    assert (served / "v2" / "index.html").read_text() == "<h1>v2</h1>\n"

    # Links gone from SRC go from the server with --delete -- the links, not
    # what they point at.
    (src / "latest").unlink()
    (src / "home.html").unlink()
    pruned = run_command(src, name, env, "--site-symlink", "--delete")
    assert pruned.returncode == 0, pruned.stderr
    assert not os.path.lexists(served / "latest")
    assert not os.path.lexists(served / "home.html")
    assert (served / "v1" / "index.html").read_text() == "<h1>v1</h1>\n"
    assert (served / "v2" / "css" / "site.css").read_text() == "body{}\n"
    assert (served / "index.html").read_text() == "<h1>home</h1>\n"


def test_site_symlink_on_a_chrooted_login_mirrors_copies_with_one_note(
    tmp_path: Path, ftp_env: dict[str, str], remote_dir: RemoteDir, proftpd: ProftpdServer
) -> None:
    """ProFTPD writes "/DST/v2" there: a web server outside the jail would not find it."""
    assert proftpd.chroot
    src = _linked_site(tmp_path)
    run = run_command(src, remote_dir.name, ftp_env, "--site-symlink")
    assert run.returncode == 0, run.stderr
    notes = [ln for ln in run.stderr.splitlines() if "--site-symlink" in ln]
    assert len(notes) == 1, run.stderr
    assert "chrooted" in notes[0]
    served = remote_dir.path
    assert not (served / "latest").is_symlink()
    assert (served / "latest" / "index.html").read_text() == "<h1>v2</h1>\n"
    assert not (served / "home.html").is_symlink()
    assert (served / "home.html").read_text() == "<h1>home</h1>\n"


def test_without_site_symlink_links_inside_src_still_go_up_as_content(
    tmp_path: Path, ftp_env: dict[str, str], remote_dir: RemoteDir
) -> None:
    src = _linked_site(tmp_path)
    run = run_command(src, remote_dir.name, ftp_env)
    assert run.returncode == 0, run.stderr
    served = remote_dir.path
    assert not (served / "latest").is_symlink()
    assert (served / "latest" / "css" / "site.css").read_text() == "body{}\n"
    assert not (served / "home.html").is_symlink()
    assert (served / "home.html").read_text() == "<h1>home</h1>\n"


@pytest.mark.parametrize(
    ("config", "code"),
    [
        pytest.param({"site_misc": False}, "500", id="no-mod_site_misc"),
        pytest.param(
            {"extra_config": "<Limit SITE_SYMLINK>\n  DenyAll\n</Limit>"}, "550", id="denied"
        ),
    ],
)
def test_site_symlink_on_a_server_without_it_uploads_the_content_with_one_note(
    tmp_path: Path, config: dict[str, Any], code: str
) -> None:
    require_proftpd()
    server = start_proftpd(tmp_path / "server", chroot=False, **config)
    try:
        src = _linked_site(tmp_path)

        def go() -> Report:
            return mirror_to(server, src, "site", jobs=2, retries=1, site_symlink=True)

        report = go()
        assert report.exit_code == 0, report.failed
        assert len(report.notes) == 1, report.notes
        assert f"refused SITE SYMLINK ({code} " in report.notes[0]
        assert (
            "2 links uploaded as copies of their targets instead: home.html, latest"
            in (report.notes[0])
        )
        served = server.home / "site"
        assert not (served / "latest").is_symlink()
        assert (served / "latest" / "index.html").read_text() == "<h1>v2</h1>\n"
        assert (served / "latest" / "css" / "site.css").read_text() == "body{}\n"
        assert not (served / "home.html").is_symlink()
        assert (served / "home.html").read_text() == "<h1>home</h1>\n"
        site_files = [p for p in server.stored_paths() if "/.ht" not in p]
        assert len(site_files) == 8, site_files  # 5 files; latest's 2 and home.html as copies

        again = go()
        assert again.exit_code == 0, again.failed
        assert again.uploaded == 0
        assert not [n for n in again.notes if "refused SITE SYMLINK" in n]
    finally:
        server.stop()
