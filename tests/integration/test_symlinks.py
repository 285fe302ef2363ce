"""Symbolic links to directories in SRC become directories on the server (as rsync -L).

A real tree (a Debian documentation folder) had 77 links, 55 of them to directories
elsewhere in the tree: each used to be a failure, so every run exited 1 and a site's
``latest -> v2`` became a broken URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers.proftpd import RemoteDir


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
