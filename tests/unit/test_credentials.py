"""Where host, port, user, password and path come from (options, an ftps:// DST, the
environment, ~/.netrc, a prompt), and that the password shows nowhere.  No network:
``resolve_target`` only reads its inputs (and NETRC).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from asyncmirror.arguments import build_parser
from asyncmirror.credentials import Target, resolve_target
from asyncmirror.errors import UsageError
from asyncmirror.login import ServerConfig
from asyncmirror.transport import TLSPolicy


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["site", *argv] if argv else ["site", "www"])


@pytest.fixture
def no_netrc(tmp_path: Path) -> dict[str, str]:
    """An environment whose NETRC points at a file that does not exist."""
    return {"NETRC": str(tmp_path / "no-netrc")}


@pytest.fixture
def creds(no_netrc: dict[str, str]) -> dict[str, str]:
    return {**no_netrc, "FTP_USERNAME": "alice", "FTP_PASSWORD": "pw-alice"}


def write_netrc(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "netrc"
    path.write_text(text)
    path.chmod(0o600)
    return {"NETRC": str(path)}


# --- host and port ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "host", "port"),
    [
        ("ftp.example.com", "ftp.example.com", 21),
        ("ftp.example.com:2121", "ftp.example.com", 2121),
        ("  ftp.example.com  ", "ftp.example.com", 21),
        ("127.0.0.1:990", "127.0.0.1", 990),
    ],
)
def test_ftp_server_gives_host_and_port(
    creds: dict[str, str], server: str, host: str, port: int
) -> None:
    t = resolve_target(parse("www"), {**creds, "FTP_SERVER": server}, stdin_tty=False)
    assert t == Target(host=host, port=port, user="alice", password="pw-alice", path="www")


def test_host_and_port_options_win_over_ftp_server(creds: dict[str, str]) -> None:
    env = {**creds, "FTP_SERVER": "env.example.com:2121"}
    t = resolve_target(
        parse("www", "--host", "cli.example.com", "--port", "21021"), env, stdin_tty=False
    )
    assert (t.host, t.port) == ("cli.example.com", 21021)
    t = resolve_target(parse("www", "--port", "3000"), env, stdin_tty=False)
    assert (t.host, t.port) == ("env.example.com", 3000)


@pytest.mark.parametrize(
    ("options", "server"),
    [
        pytest.param([], "host:notaport", id="env-not-a-number"),
        pytest.param([], "host:70000", id="env-too-big"),
        pytest.param(["--port", "70000"], "host", id="option-too-big"),
        # Port 0 is not a port: it must not silently become 21 (or FTP_SERVER's port).
        pytest.param([], "host:0", id="env-zero"),
        pytest.param(["--port", "0"], "host", id="option-zero"),
        pytest.param(["--port", "0"], "host:2121", id="option-zero-env-port"),
    ],
)
def test_bad_port_is_a_usage_error(creds: dict[str, str], options: list[str], server: str) -> None:
    with pytest.raises(UsageError, match="port"):
        resolve_target(parse("www", *options), {**creds, "FTP_SERVER": server}, stdin_tty=False)


def test_no_server_is_a_usage_error(creds: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="no server") as info:
        resolve_target(parse("www"), creds, stdin_tty=False)
    assert "FTP_SERVER" in info.value.user_line()


# --- ftps:// URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftps://bob@ftp.example.com/www", ("ftp.example.com", 21, "bob", "/www")),
        ("ftps://bob@ftp.example.com:2121/a/b", ("ftp.example.com", 2121, "bob", "/a/b")),
        ("ftps://ftp.example.com", ("ftp.example.com", 21, "alice", "/")),
        ("ftpes://bob@h/x", ("h", 21, "bob", "/x")),
        ("ftps://me%40example.com@h/my%20site", ("h", 21, "me@example.com", "/my site")),
    ],
)
def test_ftps_url_gives_host_port_user_and_path(
    creds: dict[str, str], url: str, expected: tuple[str, int, str, str]
) -> None:
    env = {**creds, "FTP_SERVER": "ignored.example.com:1"}
    t = resolve_target(parse(url), env, stdin_tty=False)
    assert (t.host, t.port, t.user, t.path) == expected
    assert t.password == "pw-alice"


def test_password_in_url_is_refused(creds: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="password") as info:
        resolve_target(parse("ftps://u:hunter2@h/x"), creds, stdin_tty=False)
    assert "hunter2" not in info.value.user_line()


def test_other_url_schemes_are_refused(creds: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="scheme"):
        resolve_target(parse("sftp://u@h/x"), creds, stdin_tty=False)


# --- user and password -----------------------------------------------------------------------


def test_netrc_gives_user_and_password(tmp_path: Path) -> None:
    env = write_netrc(
        tmp_path,
        "machine other.example.com login nobody password nope\n"
        "machine ftp.example.com login carol password pw-from-netrc\n",
    )
    env["FTP_SERVER"] = "ftp.example.com"
    t = resolve_target(parse("www"), env, stdin_tty=False)
    assert (t.user, t.password) == ("carol", "pw-from-netrc")


def test_netrc_password_only_for_its_own_login(tmp_path: Path) -> None:
    env = write_netrc(tmp_path, "machine h login carol password pw-carol\n")
    # Same user as in netrc: its password is used.
    t = resolve_target(
        parse("www"), {**env, "FTP_SERVER": "h", "FTP_USERNAME": "carol"}, stdin_tty=False
    )
    assert t.password == "pw-carol"
    # Another user: carol's password is not sent for dave.
    with pytest.raises(UsageError, match="no password"):
        resolve_target(
            parse("www"), {**env, "FTP_SERVER": "h", "FTP_USERNAME": "dave"}, stdin_tty=False
        )


def test_environment_wins_over_netrc(tmp_path: Path) -> None:
    env = write_netrc(tmp_path, "machine h login carol password pw-carol\n")
    env |= {"FTP_SERVER": "h", "FTP_USERNAME": "erin", "FTP_PASSWORD": "pw-erin"}
    t = resolve_target(parse("www"), env, stdin_tty=False)
    assert (t.user, t.password) == ("erin", "pw-erin")


def test_unreadable_netrc_is_a_usage_error(tmp_path: Path) -> None:
    env = write_netrc(tmp_path, "machine h login carol password pw\nnonsense here\n")
    with pytest.raises(UsageError, match="netrc"):
        resolve_target(parse("www"), {**env, "FTP_SERVER": "h"}, stdin_tty=False)


def test_missing_password_without_a_terminal_is_a_usage_error(no_netrc: dict[str, str]) -> None:
    env = {**no_netrc, "FTP_SERVER": "h", "FTP_USERNAME": "alice"}
    with pytest.raises(UsageError, match="no password") as info:
        resolve_target(parse("www"), env, stdin_tty=False)
    assert "FTP_PASSWORD" in info.value.user_line()


def test_missing_password_on_a_terminal_prompts(
    no_netrc: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return "typed-pw"

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    env = {**no_netrc, "FTP_SERVER": "h", "FTP_USERNAME": "alice"}
    t = resolve_target(parse("www"), env, stdin_tty=True)
    assert t.password == "typed-pw"
    assert prompts == ["Password for alice@h: "]


def test_missing_user_is_a_usage_error(no_netrc: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="user"):
        resolve_target(
            parse("www"), {**no_netrc, "FTP_SERVER": "h", "FTP_PASSWORD": "x"}, stdin_tty=False
        )


def test_target_repr_never_shows_the_password(creds: dict[str, str]) -> None:
    t = resolve_target(parse("www"), {**creds, "FTP_SERVER": "h"}, stdin_tty=False)
    assert "pw-alice" not in repr(t)
    assert "pw-alice" not in str(t)


def test_server_config_repr_never_shows_the_password() -> None:
    config = ServerConfig("h", 990, "alice", "pw-alice", TLSPolicy(ca_file="/ca.pem"))
    assert "pw-alice" not in repr(config)
    assert "pw-alice" not in str(config)
    assert "alice" in repr(config)
    assert "/ca.pem" in repr(config)
