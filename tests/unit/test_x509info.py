"""x509info reads subject, issuer and expiry from certificates made here by ``cryptography``."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from asyncmirror.errors import ProtocolError
from asyncmirror.x509info import parse_certificate

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def make_der(subject_cn: str, issuer_cn: str, not_after: datetime, *, org: str = "") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject_attrs = [x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]
    if org:
        subject_attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject_attrs))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("not_after", "subject_cn", "org", "subject"),
    [
        # UTCTime (before 2050) and GeneralizedTime (2050 on) are both used by RFC 5280.
        (datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC), "ftp.example.com", "", "CN=ftp.example.com"),
        (datetime(2051, 1, 2, 3, 4, 5, tzinfo=UTC), "サーバー", "", "CN=サーバー"),
        (datetime(2027, 1, 1, tzinfo=UTC), "www", "Example Ltd", "CN=www, O=Example Ltd"),
    ],
)
def test_fields_match_what_was_issued(
    not_after: datetime, subject_cn: str, org: str, subject: str
) -> None:
    der = make_der(subject_cn, "Test CA", not_after, org=org)
    cert = parse_certificate(der)
    assert cert.subject == subject
    assert cert.issuer == "CN=Test CA"
    assert cert.not_after == not_after.timestamp()
    assert cert.not_before == datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    assert cert.sha256 == hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize("cut", [1, 10, 100])
def test_truncated_certificate_is_a_protocol_error(cut: int) -> None:
    der = make_der("a", "b", datetime(2030, 1, 1, tzinfo=UTC))
    with pytest.raises(ProtocolError):
        parse_certificate(der[:cut])


def test_not_a_certificate() -> None:
    with pytest.raises(ProtocolError):
        parse_certificate(b"\x02\x01\x05")
