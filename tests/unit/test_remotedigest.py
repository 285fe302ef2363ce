"""Digest replies of FTP servers, the choice of method, local digests: pure, table-driven."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import pytest

from asyncmirror import digests
from asyncmirror.remotedigest import (
    DOWNLOAD,
    METHODS,
    all_lines,
    answered,
    local_digests,
    none_known,
    parse_digest,
)
from asyncmirror.replies import Reply

BY_NAME = {m.name: m for m in METHODS}
SHA256 = hashlib.sha256(b"hello\n").hexdigest()


@pytest.mark.parametrize(
    ("method", "reply", "digest"),
    [
        pytest.param(  # ProFTPD mod_digest, as seen on the wire
            "HASH SHA-256",
            Reply("213", ("Computing SHA-256 digest", f"SHA-256 0-6 {SHA256} /f.txt")),
            SHA256,
            id="proftpd-hash",
        ),
        pytest.param(
            "HASH SHA-256", Reply("213", (f"SHA-256 0-6 {SHA256} /a b.txt",)), SHA256, id="space"
        ),
        pytest.param(
            "XSHA256",
            Reply("250", ("Computing SHA256 digest", SHA256.upper())),
            SHA256,
            id="proftpd-xsha256",
        ),
        pytest.param(
            "XMD5",
            Reply("250", ("Computing MD5 digest", "B1946AC92492D2347C6235B4D2611184")),
            "b1946ac92492d2347c6235b4d2611184",
            id="xmd5",
        ),
        pytest.param(
            "XCRC", Reply("250", ("Computing CRC32 digest", "363A3020")), "363a3020", id="xcrc"
        ),
        pytest.param(
            "HASH SHA-256", Reply("550", ("/nope: No such file or directory",)), None, id="550"
        ),
        pytest.param("XSHA256", Reply("500", ("XSHA256 not understood",)), None, id="500"),
        pytest.param("XSHA1", Reply("250", ("deadbeef",)), None, id="wrong-length"),
        pytest.param("HASH SHA-256", Reply("213", ("garbage",)), None, id="no-digest"),
    ],
)
def test_digest_replies_are_read_or_refused(method: str, reply: Reply, digest: str | None) -> None:
    assert parse_digest(BY_NAME[method], reply) == digest


def test_the_setup_goes_with_every_command() -> None:
    assert BY_NAME["HASH SHA-256"].lines("/d/a b") == ["OPTS HASH SHA-256", "HASH /d/a b"]
    assert BY_NAME["XMD5"].lines("/x") == ["XMD5 /x"]


@pytest.mark.parametrize("name", [m.name for m in METHODS] + ["download"])
def test_local_digests_match_what_servers_compute(tmp_path: Path, name: str) -> None:
    data = b"hello\n" * 100_000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    method = BY_NAME.get(name, DOWNLOAD)
    expected = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
        "crc32": f"{zlib.crc32(data):08x}",
        digests.DEFAULT: digests.of_file(str(path)),
    }[method.algorithm]
    # The second digest is the state file's, from the same read.
    assert local_digests(str(path), method, chunk=4096) == (expected, digests.of_file(str(path)))


# --- asking every method at once (detection without a round trip per method) -----------

ALL = METHODS  # HASH (with its OPTS), XSHA256, XSHA1, XMD5, XCRC: 6 lines
UNKNOWN = Reply("500", ("not understood",))
SHA1 = hashlib.sha1(b"hello\n").hexdigest()


def replies_for(**by_command: Reply) -> list[Reply]:
    """Replies to all_lines(METHODS, path): OPTS, HASH, XSHA256, XSHA1, XMD5, XCRC."""
    out = [by_command.get("OPTS", Reply("200", ("OPTS HASH SHA-256",)))]
    for m in METHODS:
        out.append(by_command.get(m.command, UNKNOWN))
    return out


@pytest.mark.parametrize(
    ("replies", "found", "none"),
    [
        pytest.param(
            replies_for(HASH=Reply("213", (f"SHA-256 0-6 {SHA256} /f",))),
            ("HASH SHA-256", SHA256),
            False,
            id="hash-first",
        ),
        pytest.param(
            replies_for(
                OPTS=Reply("501", ("bad",)),
                HASH=Reply("213", (f"SHA-1 0-6 {SHA1} /f",)),
                XSHA1=Reply("250", (SHA1,)),
            ),
            ("XSHA1", SHA1),
            False,
            id="hash-without-sha256-falls-to-xsha1",
        ),
        pytest.param(replies_for(), None, True, id="none-known"),
        pytest.param(
            replies_for(XMD5=Reply("550", ("/f: No such file",))), None, False, id="known-no-file"
        ),
    ],
)
def test_answered_picks_the_strongest_reply_with_a_digest(
    replies: list[Reply], found: tuple[str, str] | None, none: bool
) -> None:
    assert len(replies) == len(all_lines(ALL, "/f"))
    got = answered(ALL, replies)
    assert (None if got is None else (got[0].name, got[1])) == found
    assert none_known(ALL, replies) is none
