"""Subject, issuer and expiry of an X.509 certificate, from its DER bytes.

Pure.  Python's ``ssl`` parses the peer certificate into a dict only when it
was verified; ``--doctor`` must describe unverified (self-signed) ones too, and
the ``cryptography`` package is not a dependency.  So this walks just enough
DER (RFC 5280's ``tbsCertificate``) to reach the issuer, the validity and the
subject.  Anything malformed raises :class:`~asyncmirror.errors.ProtocolError`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import NamedTuple

from .errors import ProtocolError

__all__ = ["Certificate", "parse_certificate"]

_SEQUENCE, _SET, _OID = 0x30, 0x31, 0x06
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18
_VERSION_TAG = 0xA0  # [0] EXPLICIT, optional

#: Attribute types shown by name (RFC 4514's short names).
_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "1.2.840.113549.1.9.1": "emailAddress",
}


class Certificate(NamedTuple):
    subject: str  # "CN=ftp.example.com, O=Example" (most specific first)
    issuer: str
    not_before: float  # epoch seconds
    not_after: float
    sha256: str  # hex, lower case, of the whole DER certificate


class _Reader:
    """Tag-length-value items of one DER buffer, read in order."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def peek_tag(self) -> int:
        if self.at_end():
            raise ProtocolError("certificate: truncated DER")
        return self.data[self.pos]

    def read(self) -> tuple[int, bytes]:
        data, pos = self.data, self.pos
        if pos + 2 > len(data):
            raise ProtocolError("certificate: truncated DER")
        tag, first = data[pos], data[pos + 1]
        pos += 2
        if tag & 0x1F == 0x1F:
            raise ProtocolError("certificate: multi-byte DER tags are not expected")
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4 or pos + count > len(data):
                raise ProtocolError("certificate: bad DER length")
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        if pos + length > len(data):
            raise ProtocolError("certificate: DER item runs past its end")
        self.pos = pos + length
        return tag, data[pos : pos + length]

    def expect(self, tag: int) -> bytes:
        got, value = self.read()
        if got != tag:
            raise ProtocolError(f"certificate: expected DER tag {tag:#x}, found {got:#x}")
        return value


def _oid(value: bytes) -> str:
    if not value:
        raise ProtocolError("certificate: empty OID")
    parts = [*divmod(value[0], 40)] if value[0] < 80 else [2, value[0] - 80]
    n = 0
    for byte in value[1:]:
        n = (n << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(n)
            n = 0
    return ".".join(map(str, parts))


def _text(tag: int, value: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return value.decode("utf-16-be", errors="replace")
    # UTF8String, PrintableString, IA5String, T61String (latin-1 is close enough)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _name(value: bytes) -> str:
    parts: list[str] = []
    rdns = _Reader(value)
    while not rdns.at_end():
        attrs = _Reader(rdns.expect(_SET))
        while not attrs.at_end():
            pair = _Reader(attrs.expect(_SEQUENCE))
            oid = _oid(pair.expect(_OID))
            tag, raw = pair.read()
            parts.append(f"{_NAMES.get(oid, oid)}={_text(tag, raw)}")
    return ", ".join(reversed(parts))  # RFC 4514 order: most specific first


def _time(tag: int, value: bytes) -> float:
    text = value.decode("ascii", errors="replace")
    try:
        if tag == _UTC_TIME:  # YYMMDDHHMMSSZ; RFC 5280: 50-99 are 19xx
            year = int(text[:2])
            moment = datetime.strptime(text, "%y%m%d%H%M%SZ").replace(
                year=(1900 if year >= 50 else 2000) + year
            )
        elif tag == _GENERALIZED_TIME:
            moment = datetime.strptime(text, "%Y%m%d%H%M%SZ")
        else:
            raise ValueError(text)
    except ValueError:
        raise ProtocolError(f"certificate: bad time {text!r}") from None
    return moment.replace(tzinfo=UTC).timestamp()


def parse_certificate(der: bytes) -> Certificate:
    """Subject, issuer, validity and SHA-256 fingerprint of a DER certificate."""
    cert = _Reader(_Reader(der).expect(_SEQUENCE))
    tbs = _Reader(cert.expect(_SEQUENCE))
    if tbs.peek_tag() == _VERSION_TAG:
        tbs.read()
    tbs.read()  # serialNumber
    tbs.expect(_SEQUENCE)  # signature algorithm
    issuer = _name(tbs.expect(_SEQUENCE))
    validity = _Reader(tbs.expect(_SEQUENCE))
    not_before = _time(*validity.read())
    not_after = _time(*validity.read())
    subject = _name(tbs.expect(_SEQUENCE))
    return Certificate(subject, issuer, not_before, not_after, hashlib.sha256(der).hexdigest())
