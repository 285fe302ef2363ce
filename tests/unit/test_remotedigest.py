"""Digest replies of FTP servers, the choice of method, local digests: pure, table-driven."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import pytest

from asyncmirror.remotedigest import DOWNLOAD, METHODS, choose, local_digest, parse_digest
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


def test_the_strongest_method_offered_is_chosen_and_download_is_the_fallback() -> None:
    assert choose(lambda m: True).name == "HASH SHA-256"
    assert choose(lambda m: m.name in ("XMD5", "XSHA1")).name == "XSHA1"
    assert choose(lambda m: False) is DOWNLOAD


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
    }[method.algorithm]
    assert local_digest(str(path), method, chunk=4096) == expected
