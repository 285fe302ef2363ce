"""lftp's recipe (``-X '.*' -X '.*/'``) drops the dotfiles a site needs: say so, once."""

from __future__ import annotations

from pathlib import Path

from tests.integration.clients import run_command
from tests.servers.proftpd import RemoteDir


def test_the_lftp_recipe_names_the_site_dotfiles_it_drops_and_the_i_keeps_them(
    tmp_path: Path, ftp_env: dict[str, str], remote_dir: RemoteDir
) -> None:
    src = tmp_path / "site"
    (src / ".well-known" / "acme-challenge").mkdir(parents=True)
    (src / ".well-known" / "acme-challenge" / "token").write_text("proof\n")
    (src / ".htaccess").write_text("RewriteEngine On\n")
    (src / ".env").write_text("SECRET=1\n")  # not a site file: no word about it
    (src / "index.html").write_text("<h1>hi</h1>\n")

    dropped = run_command(src, remote_dir.name, ftp_env, "-X", ".*", "-X", ".*/")
    assert dropped.returncode == 0, dropped.stderr
    notices = [ln for ln in dropped.stderr.splitlines() if "leave out" in ln]
    assert notices == [
        "asyncmirror: the filters leave out .htaccess, .well-known/, which the site may need "
        "(server settings, well-known URLs); add -I .htaccess -I .well-known/ to upload them"
    ], dropped.stderr
    assert not (remote_dir.path / ".htaccess").exists()

    kept = run_command(
        src,
        remote_dir.name,
        ftp_env,
        "-X",
        ".*",
        "-X",
        ".*/",
        "-I",
        ".htaccess",
        "-I",
        ".well-known/",
    )
    assert kept.returncode == 0, kept.stderr
    assert "leave out" not in kept.stderr
    assert (remote_dir.path / ".htaccess").read_text() == "RewriteEngine On\n"
    assert (remote_dir.path / ".well-known/acme-challenge/token").read_text() == "proof\n"
    assert not (remote_dir.path / ".env").exists()
