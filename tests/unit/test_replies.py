"""Control-channel reply parsing: pure, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from asyncmirror import errors
from asyncmirror.errors import ProtocolError, RetryableError
from asyncmirror.replies import (
    MAX_REPLY_LINES,
    Reply,
    ReplyReader,
    format_mfmt,
    is_connection_limit,
    is_out_of_space,
    mask_command,
    parse_epsv,
    parse_mdtm,
    parse_pasv,
    parse_pwd,
    parse_size,
    reply_error,
)


def feed_all(lines: list[str]) -> list[Reply]:
    reader = ReplyReader()
    replies = [reply for line in lines if (reply := reader.feed_line(line)) is not None]
    assert not reader.pending
    return replies


# --- ReplyReader -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(
            ["220 ProFTPD Server ready."],
            [Reply("220", ("ProFTPD Server ready.",))],
            id="single",
        ),
        pytest.param(["220"], [Reply("220", ("",))], id="bare-code"),
        pytest.param(["200 "], [Reply("200", ("",))], id="code-space"),
        pytest.param(
            ["230-Welcome", "  to the server", "230 Login successful."],
            [Reply("230", ("Welcome", "  to the server", "Login successful."))],
            id="multi",
        ),
        pytest.param(
            ["211-Features:", " MDTM", " SIZE", " UTF8", "211 End"],
            [Reply("211", ("Features:", " MDTM", " SIZE", " UTF8", "End"))],
            id="feat",
        ),
        pytest.param(
            ["220-first", "220-second", "220 last"],
            [Reply("220", ("first", "second", "last"))],
            id="code-dash-middle-lines",
        ),
        pytest.param(
            ["220-banner", "200 not the end", "550 nor this", "221-still going", "220 done"],
            [
                Reply(
                    "220", ("banner", "200 not the end", "550 nor this", "221-still going", "done")
                )
            ],
            id="other-codes-in-middle",
        ),
        pytest.param(
            ["220-banner", "", "x", "220"],
            [Reply("220", ("banner", "", "x", ""))],
            id="blank-middle-bare-end",
        ),
        pytest.param(
            ["150 Opening data connection", "226 Transfer complete"],
            [Reply("150", ("Opening data connection",)), Reply("226", ("Transfer complete",))],
            id="two-in-a-row",
        ),
        pytest.param(['257 "/" is current\r'], [Reply("257", ('"/" is current',))], id="stray-cr"),
    ],
)
def test_reader_assembles_replies(lines: list[str], expected: list[Reply]) -> None:
    assert feed_all(lines) == expected


def test_reader_reports_pending_mid_reply() -> None:
    reader = ReplyReader()
    assert reader.feed_line("230-Welcome") is None
    assert reader.pending
    assert reader.feed_line("230 ok") == Reply("230", ("Welcome", "ok"))
    assert not reader.pending


@pytest.mark.parametrize(
    "line",
    [
        "",
        "hello",
        "22 short",
        "2200 four digits",
        "220text",
        "abc def",
        "020 leading zero",
        "620 out of family",
        "\u0662\u0662\u0660 arabic digits",
        " 220 leading space",
    ],
)
def test_reader_rejects_malformed_start(line: str) -> None:
    with pytest.raises(ProtocolError):
        ReplyReader().feed_line(line)


def test_protocol_error_is_retryable_and_breaks_session() -> None:
    with pytest.raises(RetryableError) as info:
        ReplyReader().feed_line("garbage")
    assert info.value.broken_session


def test_reader_bounds_multiline_replies() -> None:
    reader = ReplyReader()
    reader.feed_line("211-start")
    for _ in range(MAX_REPLY_LINES - 1):
        assert reader.feed_line("x") is None
    with pytest.raises(ProtocolError):
        reader.feed_line("x")
    assert not reader.pending  # the reader is reset; the session is dropped anyway


@pytest.mark.parametrize(
    ("reply", "kind", "flags"),
    [
        (Reply("150", ("ok",)), 1, (True, False, False, False, False)),
        (Reply("226", ("ok",)), 2, (False, True, False, False, False)),
        (Reply("331", ("ok",)), 3, (False, False, True, False, False)),
        (Reply("421", ("ok",)), 4, (False, False, False, True, False)),
        (Reply("550", ("ok",)), 5, (False, False, False, False, True)),
    ],
)
def test_reply_kind(reply: Reply, kind: int, flags: tuple[bool, ...]) -> None:
    assert reply.kind == kind
    assert (
        reply.is_preliminary,
        reply.is_complete,
        reply.is_intermediate,
        reply.is_transient,
        reply.is_permanent,
    ) == flags


@pytest.mark.parametrize(
    ("lines", "text"),
    [
        (("Login successful.",), "Login successful."),
        (("Welcome", "  to the server", "ok"), "Welcome / to the server / ok"),
        (("",), ""),
        (("banner", "", "end"), "banner / end"),
    ],
)
def test_reply_text(lines: tuple[str, ...], text: str) -> None:
    assert Reply("230", lines).text == text


# --- PASV / EPSV -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Entering Passive Mode (192,168,1,2,19,137).", ("192.168.1.2", 19 * 256 + 137)),
        ("Entering Passive Mode 192,168,1,2,19,137", ("192.168.1.2", 5001)),
        ("Entering Passive Mode (10, 0, 0, 1, 0, 21)", ("10.0.0.1", 21)),
        ("=127,0,0,1,255,255", ("127.0.0.1", 65535)),
        ("Entering Passive Mode (0,0,0,0,4,1)", ("0.0.0.0", 1025)),
        ("Entering Passive Mode (010,000,000,001,4,1)", ("10.0.0.1", 1025)),
    ],
)
def test_parse_pasv(text: str, expected: tuple[str, int]) -> None:
    assert parse_pasv(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Entering Passive Mode",
        "Entering Passive Mode (192,168,1,2,19)",
        "Entering Passive Mode (256,168,1,2,19,137)",
        "Entering Passive Mode (192,168,1,2,300,1)",
        "Entering Passive Mode (192,168,1,2,0,0)",
        "Entering Passive Mode (1,192,168,1,2,19,137)",
        "Entering Passive Mode (192.168.1.2,19,137)",
        "",
    ],
)
def test_parse_pasv_rejects(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_pasv(text)


@pytest.mark.parametrize(
    ("text", "port"),
    [
        ("Entering Extended Passive Mode (|||6446|)", 6446),
        ("Entering Extended Passive Mode (!!!1!)", 1),
        ("Entering extended passive mode (###65535#).", 65535),
        ("(|||21|)", 21),
    ],
)
def test_parse_epsv(text: str, port: int) -> None:
    assert parse_epsv(text) == port


@pytest.mark.parametrize(
    "text",
    [
        "Entering Extended Passive Mode",
        "Entering Extended Passive Mode (|||0|)",
        "Entering Extended Passive Mode (|||70000|)",
        "Entering Extended Passive Mode (|!|6446|)",
        "Entering Extended Passive Mode (||6446|)",
        "Entering Extended Passive Mode (|||6446!)",
    ],
)
def test_parse_epsv_rejects(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_epsv(text)


# --- PWD / SIZE / MDTM / MFMT ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('"/the/dir" is current directory', "/the/dir"),
        ('"/" is the current directory', "/"),
        ('"/say ""hi""/x" created', '/say "hi"/x'),
        ('"/""" ok', '/"'),
        ('"/with spaces/ü"', "/with spaces/ü"),
        ('  "/lead"', "/lead"),
    ],
)
def test_parse_pwd(text: str, path: str) -> None:
    assert parse_pwd(text) == path


@pytest.mark.parametrize(
    "text", ["/no/quotes is current", '"/unterminated', '"" is current', "", 'x "/dir"']
)
def test_parse_pwd_rejects(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_pwd(text)


@pytest.mark.parametrize(("text", "size"), [("1234", 1234), ("0", 0), (" 42 ", 42)])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", "12 bytes", "1.5", "\u0661\u0662", "File not found"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("19700101000000", 0.0),
        ("20240101120000", datetime(2024, 1, 1, 12, tzinfo=UTC).timestamp()),
        ("20240229235959", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC).timestamp()),
        ("20240101120000.5", datetime(2024, 1, 1, 12, tzinfo=UTC).timestamp() + 0.5),
        ("20240101120000.250", datetime(2024, 1, 1, 12, tzinfo=UTC).timestamp() + 0.25),
        ("19691231235959", -1.0),
        ("20161231235960", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()),
    ],
)
def test_parse_mdtm(text: str, epoch: float) -> None:
    assert parse_mdtm(text) == pytest.approx(epoch)


@pytest.mark.parametrize(
    "text",
    ["", "2024010112000", "202401011200000", "20241301120000", "20240230120000", "20240101120000.",
     "20240101250000", "2024-01-01 12:00:00", "abcdefghijklmn"],
)  # fmt: skip
def test_parse_mdtm_rejects(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_mdtm(text)


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (0.0, "19700101000000"),
        (1704110400.0, "20240101120000"),
        (1704110400.999, "20240101120000"),
        (-0.5, "19691231235959"),
        (253402300799.0, "99991231235959"),
    ],
)
def test_format_mfmt(ts: float, text: str) -> None:
    assert format_mfmt(ts) == text


@pytest.mark.parametrize("ts", [0.0, 1704110400.0, 1709251199.0, 1234567890.0, 4102444800.0])
def test_mdtm_mfmt_round_trip(ts: float) -> None:
    assert parse_mdtm(format_mfmt(ts)) == ts


@pytest.mark.parametrize("ts", [1704110400.75, 1234567890.001])
def test_mfmt_truncates_sub_seconds(ts: float) -> None:
    assert parse_mdtm(format_mfmt(ts)) == float(int(ts))


@pytest.mark.parametrize("ts", [float("nan"), float("inf"), float("-inf")])
def test_format_mfmt_rejects_non_finite(ts: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        format_mfmt(ts)


# --- logging -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("PASS s3cret", "PASS ****"),
        ("pass s3cret", "pass ****"),
        ("Pass with spaces in it", "Pass ****"),
        ("PASS", "PASS ****"),
        ("PASS ", "PASS ****"),
        ("USER alice", "USER alice"),
        ("PASV", "PASV"),
        ("PASSWORD x", "PASSWORD x"),
        ("STOR PASS", "STOR PASS"),
        ("", ""),
    ],
)
def test_mask_command(line: str, masked: str) -> None:
    assert mask_command(line) == masked


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("Sorry, the maximum number of clients (3) for this user are already connected.", True),
        ("Sorry, the maximum number of clients (8) from your host are already connected.", True),
        ("There are too many connected users, please try later.", True),
        ("Too many connections (4) from this IP", True),
        ("Too many users - please try again later", True),
        ("Connection limit reached for this account", True),
        ("Login incorrect.", False),
        ("Login authentication failed", False),
        ("Password incorrect for user mirror", False),
        ("Not logged in, only one user account is allowed", False),
        ("", False),
    ],
)
def test_a_login_refusal_naming_a_limit_is_told_from_bad_credentials(
    text: str, limit: bool
) -> None:
    assert is_connection_limit(text) is limit


@pytest.mark.parametrize(
    ("code", "text", "full"),
    [
        ("552", "Transfer aborted. Disk quota exceeded", True),  # ProFTPD mod_quotatab
        ("451", "Transfer aborted. No space left on device", True),  # ProFTPD, ENOSPC
        ("452", "Insufficient storage space in system.", True),  # RFC 959's wording
        ("452", "Error writing file", True),  # the code alone says it
        ("552", "Requested file action aborted.", True),
        ("426", "Quota exceeded", True),  # pure-ftpd
        ("451", "There is not enough space on the disk.", True),  # IIS
        ("552", "big.bin: File too large", False),  # one file over a size limit
        ("552", "Transfer aborted: file size limit reached", False),
        ("451", "Transfer aborted. Broken pipe", False),
        ("553", "quota.bin: Input/output error", False),  # the file's name says nothing
        ("450", "data transfer in progress", False),
        ("550", "page.html: Permission denied", False),
    ],
)
def test_an_upload_refused_for_want_of_space_is_told_from_other_refusals(
    code: str, text: str, full: bool
) -> None:
    assert is_out_of_space(code, text) is full


@pytest.mark.parametrize(
    ("command", "code", "text", "error", "drops_session"),
    [
        ("connect", "421", "Too many connections", errors.TooManyConnectionsError, True),
        (
            "STOR a",
            "452",
            "Transfer aborted. No space left on device",
            errors.ServerFullError,
            False,
        ),
        ("STOR a", "552", "Disk quota exceeded", errors.ServerFullError, False),
        ("STOR a", "552", "File too large", errors.PermanentReplyError, False),
        ("MKD a", "452", "No space left on device", errors.TransientReplyError, False),
        ("PASV", "425", "PASV: Address already in use", errors.TransientReplyError, False),
        ("DELE a", "550", "No such file", errors.PermanentReplyError, False),
        ("login", "200", "what?", errors.ProtocolError, True),
    ],
)
def test_reply_error_says_what_a_refusal_means(
    command: str, code: str, text: str, error: type[Exception], drops_session: bool
) -> None:
    exc = reply_error(command, Reply(code, (text,)))
    assert type(exc) is error
    assert (isinstance(exc, RetryableError) and exc.broken_session) == drops_session
    assert f"{code} {text}" in str(exc)


def test_reply_error_never_shows_a_password() -> None:
    exc = reply_error("PASS s3cret", Reply("421", ("bye",)))
    assert "s3cret" not in str(exc)
