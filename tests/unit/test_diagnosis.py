"""The pure half of --doctor: recommended flags, the time model, the table and the JSON."""

from __future__ import annotations

import json

import pytest

from asyncmirror.diagnosis import (
    CertificateInfo,
    Findings,
    TreeSize,
    estimate,
    recommended_flags,
    render_table,
    to_json,
)

NOW = 1_800_000_000.0  # 2027-01-15
FP = "ab" * 32
CERT = CertificateInfo("CN=ftp.example.com", "CN=Example CA", NOW + 30 * 86400, FP)


def healthy(**changes: object) -> Findings:
    f = Findings(
        host="ftp.example.com",
        port=21,
        dst="/www",
        banner="ProFTPD Server",
        logged_in=True,
        tls_version="TLSv1.3",
        cipher="TLS_AES_256_GCM_SHA384",
        certificate=CERT,
        trusted_by_default=True,
        tls13=True,
        tls12=True,
        session_reuse_required=True,
        epsv=True,
        pasv=True,
        pasv_address="203.0.113.5",
        data_refused=False,
        mlst=True,
        mlsd=True,
        list_=True,
        mfmt=True,
        site_utime=True,
        size=True,
        digests=("HASH", "XSHA256"),
        mode_z=False,
        jobs=8,
        connections_tried=8,
        rtt=0.05,
        clock_skew=0.4,
        writable=True,
    )
    for name, value in changes.items():
        setattr(f, name, value)
    return f


@pytest.mark.parametrize(
    ("changes", "flags"),
    [
        ({}, []),
        ({"connection_limit": 3}, ["-j 3"]),
        ({"connection_limit": 8}, []),  # the limit is -j itself: nothing to change
        ({"trusted_by_default": False}, [f"--fingerprint SHA256:{FP.upper()}"]),
        ({"trusted_by_default": False, "trust_given": True}, []),  # --ca-file given already
        (
            {"mlsd": False, "mlst": False, "list_utc_offset": 9.0},
            ["--remote-timezone Etc/GMT-9"],
        ),
        ({"mlsd": False, "mlst": False, "list_utc_offset": -5.0}, ["--remote-timezone Etc/GMT+5"]),
        ({"mlsd": False, "mlst": False, "list_utc_offset": 5.5}, []),  # no Etc zone for it
        ({"mlsd": True, "list_utc_offset": 9.0}, []),  # MLSD times are UTC: LIST's do not matter
        ({"mfmt": False, "site_utime": False}, ["--no-set-mtime"]),
        ({"mfmt": False, "site_utime": True}, []),
        ({"mfmt": None, "site_utime": None}, []),  # unknown is not "no"
        (
            {
                "connection_limit": 2,
                "trusted_by_default": False,
                "mfmt": False,
                "site_utime": False,
            },
            ["-j 2", f"--fingerprint SHA256:{FP.upper()}", "--no-set-mtime"],
        ),
    ],
)
def test_recommended_flags(changes: dict[str, object], flags: list[str]) -> None:
    assert recommended_flags(healthy(**changes)) == flags


@pytest.mark.parametrize(
    ("tree", "rtt", "jobs", "first", "rerun"),
    [
        # ftps-facts: 2000 files x 3 round trips x 50 ms / 8 = 37.5 s, plus logins and MKDs.
        (TreeSize(2000, 122_700_000, 100), 0.05, 8, 37.5 + 0.25 + 100 * 0.05 / 8, 0.25 + 13 * 0.15),
        (TreeSize(1, 10, 0), 0.1, 8, 0.5 + 0.3, 0.5 + 0.3),
        (TreeSize(0, 0, 0), 0.1, 8, 0.5, 0.5 + 0.3),
        (TreeSize(10, 0, 3), 0.01, 1, 0.05 + 0.03 + 0.3, 0.05 + 4 * 0.03),
    ],
)
def test_estimate(tree: TreeSize, rtt: float, jobs: int, first: float, rerun: float) -> None:
    got = estimate(tree, rtt, jobs)
    assert got.first_upload == pytest.approx(first)
    assert got.unchanged_rerun == pytest.approx(rerun)


def test_fewer_jobs_take_longer() -> None:
    tree = TreeSize(500, 1, 20)
    assert estimate(tree, 0.05, 3).first_upload > estimate(tree, 0.05, 8).first_upload


def table_rows(f: Findings) -> dict[str, str]:
    out = {}
    for line in render_table(f, NOW).splitlines():
        name, _, value = line.partition("  ")
        out[name.strip()] = value.strip()
    return out


@pytest.mark.parametrize(
    ("changes", "row", "expected"),
    [
        ({}, "TLS", "TLSv1.3, TLS_AES_256_GCM_SHA384"),
        ({}, "expires", "2027-02-14 (in 30 days)"),
        (
            {"certificate": CERT._replace(not_after=NOW - 2 * 86400)},
            "expires",
            "2027-01-13 (EXPIRED 2 days ago)",
        ),
        ({}, "fingerprint", "SHA256:" + ":".join(["AB"] * 32)),
        (
            {"trusted_by_default": False, "trust_error": "self-signed certificate"},
            "trusted by default",
            "no (self-signed certificate)",
        ),
        ({}, "session reuse", "required"),
        ({"session_reuse_required": None}, "session reuse", "?"),
        ({}, "EPSV / PASV", "yes / yes (names 203.0.113.5)"),
        (
            {"epsv": False, "pasv_address": "10.0.0.7", "pasv_problem": "private"},
            "EPSV / PASV",
            "no / yes (names 10.0.0.7: private; asyncmirror dials the control address)",
        ),
        (
            {"data_refused": True},
            "data connections",
            "REFUSED (login works, data does not: a foreign-IP filter?)",
        ),
        (
            {"mlst": False, "mlsd": False, "list_utc_offset": 9.0},
            "listing",
            "MLSD no, MLST no, LIST yes (LIST times in UTC+9)",
        ),
        (
            {"list_utc_offset": 5.5},
            "listing",
            "MLSD yes, MLST yes, LIST yes (LIST times in UTC+5:30)",
        ),
        ({"mfmt": False, "site_utime": False}, "set times", "MFMT no, SITE UTIME no"),
        ({}, "digests", "HASH, XSHA256"),
        ({"digests": ()}, "digests", "none"),
        ({"digests": None}, "digests", "?"),
        ({"connection_limit": 3, "limit_reply": "530 Sorry"}, "connections", "limit 3 (530 Sorry)"),
        ({}, "connections", "no limit up to 8"),
        ({}, "round trip", "50 ms"),
        ({"rtt": 0.0004}, "round trip", "0.4 ms"),
        ({}, "clock skew", "0 s"),
        ({"clock_skew": 2.6}, "clock skew", "+3 s"),
        ({"clock_skew": -75.2}, "clock skew", "-75 s (large: times compare wrong)"),
        ({}, "DST writable", "yes (/www)"),
        (
            {"src": TreeSize(2000, 122_700_000, 100)},
            "estimate",
            "first upload 38 s + 122.7 MB at your bandwidth, unchanged rerun 2.2 s "
            "(2000 files, 100 dirs, -j 8)",
        ),
    ],
)
def test_table_rows(changes: dict[str, object], row: str, expected: str) -> None:
    assert table_rows(healthy(**changes))[row] == expected


def test_table_ends_with_flags() -> None:
    text = render_table(healthy(connection_limit=3, notes=["MODE Z: 501 no"]), NOW)
    assert text.splitlines()[-2:] == ["note: MODE Z: 501 no", "recommended flags: -j 3"]


def test_no_login_shows_only_what_was_learnt_before_it() -> None:
    rows = table_rows(healthy(logged_in=False, trusted_by_default=False))
    assert rows["login"] == "no"
    assert "digests" not in rows


@pytest.mark.parametrize(("limit", "expected"), [(None, None), (3, 3)])
def test_json_connection_limit_is_null_when_none_was_hit(
    limit: int | None, expected: int | None
) -> None:
    data = json.loads(json.dumps(to_json(healthy(connection_limit=limit), NOW)))
    assert data["connection_limit"] == expected
    assert data["tls"]["certificate"]["sha256"] == FP
    assert data["tls"]["certificate"]["days_left"] == 30
    assert data["digests"] == ["HASH", "XSHA256"]


def test_json_estimate() -> None:
    data = to_json(healthy(src=TreeSize(10, 1000, 2), connection_limit=2), NOW)
    assert data["estimate"]["jobs"] == 2
    assert data["estimate"]["files"] == 10
    assert data["recommended_flags"] == ["-j 2"]
