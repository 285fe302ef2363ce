"""What ``asyncmirror --doctor`` learnt about a server, and what it makes of it.

Pure: no sockets, no clock (``now`` is passed in).  :mod:`asyncmirror.doctor`
fills a :class:`Findings` by trying things on the server; this module derives
the flags to recommend, estimates run times from a round-trip time, and renders
the table a person reads and the JSON a machine reads.

``None`` in a field means "not found out" (the probe could not run, e.g. DST
is not writable so there was no file to try ``MFMT`` on), never "no".

Dataclasses here, unlike the rest of the package (see entries.py): this module
is imported only by ``--doctor``, so their creation cost is not paid by a run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "CertificateInfo",
    "Estimate",
    "Findings",
    "TreeSize",
    "estimate",
    "recommended_flags",
    "render_table",
    "to_json",
]

#: Round trips one small file costs on one connection, measured on ProFTPD:
#: PASV; STOR with the data connect and TLS resumption overlapped; close and 226.
ROUND_TRIPS_PER_FILE = 3
#: One listing of a directory: PASV, MLSD (data connect overlapped), 226.
ROUND_TRIPS_PER_LISTING = 3
#: Connect, AUTH TLS + handshake (2), login and set-up pipelined (1-2).
ROUND_TRIPS_PER_LOGIN = 5
#: Clock skew worth a word: beyond LIST's one-minute precision, times compare wrong.
SKEW_WARNING = 60.0


class CertificateInfo(NamedTuple):
    """What a person checks of the server's certificate."""

    subject: str  # e.g. "CN=ftp.example.com"
    issuer: str
    not_after: float | None  # epoch seconds, UTC
    fingerprint: str  # SHA-256, hex, lower case


class TreeSize(NamedTuple):
    """SRC, as far as an estimate needs it."""

    files: int
    bytes: int
    dirs: int


class Estimate(NamedTuple):
    """Seconds, excluding the time to move ``bytes`` at the user's bandwidth."""

    first_upload: float
    unchanged_rerun: float


@dataclass
class Findings:
    """Everything ``--doctor`` found out; see the module docstring for ``None``."""

    host: str
    port: int
    dst: str = ""
    banner: str = ""
    logged_in: bool = False
    # TLS
    tls_version: str | None = None
    cipher: str | None = None
    certificate: CertificateInfo | None = None
    #: Verifies with the default trust store (no --ca-file / --fingerprint).
    trusted_by_default: bool | None = None
    trust_error: str = ""
    #: The user already told us whom to trust (--ca-file or --fingerprint).
    trust_given: bool = False
    tls13: bool | None = None
    tls12: bool | None = None
    session_reuse_required: bool | None = None
    # passive mode
    epsv: bool | None = None
    pasv: bool | None = None
    pasv_address: str | None = None
    #: "private", "unroutable" or "" when PASV names a usable address.
    pasv_problem: str = ""
    #: Login works but every data connection is refused or never completes.
    data_refused: bool | None = None
    # commands
    mlst: bool | None = None
    mlsd: bool | None = None
    list_: bool | None = None
    #: LIST times minus true UTC times, in hours (a guess, to the quarter hour).
    list_utc_offset: float | None = None
    mfmt: bool | None = None
    site_utime: bool | None = None
    size: bool | None = None
    digests: tuple[str, ...] | None = None
    mode_z: bool | None = None
    # capacity and timing
    jobs: int = 8
    connections_tried: int = 0
    connection_limit: int | None = None
    limit_reply: str = ""
    rtt: float | None = None  # seconds, median of several NOOPs
    clock_skew: float | None = None  # server time minus local time, seconds
    writable: bool | None = None
    src: TreeSize | None = None
    #: What went wrong while probing, one line each (never a credential).
    notes: list[str] = field(default_factory=list)


def estimate(tree: TreeSize, rtt: float, jobs: int) -> Estimate:
    """Expected seconds for a first upload and an unchanged rerun of ``tree``.

    A latency model, the floor measured on ProFTPD (docs in ftps-facts): each
    file costs ``ROUND_TRIPS_PER_FILE`` round trips on one of ``jobs``
    connections, each directory one ``MKD`` round trip on the first upload and
    one listing on a rerun; the sessions log in in parallel.  Bytes are left
    out: their time depends on a bandwidth the doctor does not measure.
    """
    jobs = max(1, jobs)
    lanes = min(jobs, max(1, tree.files))
    login = ROUND_TRIPS_PER_LOGIN * rtt
    first = (
        login + tree.dirs * rtt / jobs + math.ceil(tree.files / lanes) * ROUND_TRIPS_PER_FILE * rtt
    )
    listings = tree.dirs + 1
    rerun = login + math.ceil(listings / min(jobs, listings)) * ROUND_TRIPS_PER_LISTING * rtt
    return Estimate(first, rerun)


def _etc_zone(hours: float) -> str | None:
    """``9`` -> ``Etc/GMT-9`` (POSIX signs are inverted); None when not whole hours."""
    if hours != int(hours) or not -14 <= hours <= 12:
        return None
    whole = int(hours)
    if whole == 0:
        return "UTC"
    return f"Etc/GMT{-whole:+d}"


def recommended_flags(f: Findings) -> list[str]:
    """The command-line flags this server calls for, in a fixed order.

    Only flags that change what asyncmirror does: what it works out by itself
    (EPSV vs PASV, the PASV address, MLSD vs LIST, session reuse) needs none.
    """
    flags: list[str] = []
    if f.connection_limit is not None and f.connection_limit < f.jobs:
        flags.append(f"-j {max(1, f.connection_limit)}")
    if f.trusted_by_default is False and f.certificate is not None and not f.trust_given:
        flags.append(f"--fingerprint SHA256:{f.certificate.fingerprint.upper()}")
    if f.mlsd is False and f.mlst is False and f.list_utc_offset:
        zone = _etc_zone(f.list_utc_offset)
        if zone is not None:
            flags.append(f"--remote-timezone {zone}")
    if f.mfmt is False and f.site_utime is False:
        flags.append("--no-set-mtime")
    return flags


def _yes(value: bool | None, yes: str = "yes", no: str = "no") -> str:
    return "?" if value is None else yes if value else no


def _date(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _seconds(value: float) -> str:
    if value < 10:
        return f"{value:.1f} s"
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.0f} min"


def _milliseconds(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _utc_offset(hours: float) -> str:
    if hours == 0:
        return "UTC"
    sign = "+" if hours > 0 else "-"
    whole, minutes = divmod(round(abs(hours) * 60), 60)
    return f"UTC{sign}{whole}" + (f":{minutes:02d}" if minutes else "")


def rows(f: Findings, now: float) -> list[tuple[str, str]]:
    """(check, result) pairs, in the order a person reads them."""
    out: list[tuple[str, str]] = [
        ("server", f"{f.host}:{f.port}" + (f"  {f.banner}" if f.banner else ""))
    ]
    if f.tls_version:
        out.append(("TLS", f"{f.tls_version}, {f.cipher or '?'}"))
    out.append(("TLS 1.3 / 1.2", f"{_yes(f.tls13)} / {_yes(f.tls12)}"))
    cert = f.certificate
    if cert is not None:
        out.append(
            ("certificate", f"{cert.subject or '(no subject)'}, issued by {cert.issuer or '?'}")
        )
        if cert.not_after is not None:
            days = math.floor((cert.not_after - now) / 86400)
            left = f"in {days} days" if days >= 0 else f"EXPIRED {-days} days ago"
            out.append(("expires", f"{_date(cert.not_after)} ({left})"))
        out.append(
            (
                "fingerprint",
                "SHA256:"
                + ":".join(
                    cert.fingerprint[i : i + 2].upper() for i in range(0, len(cert.fingerprint), 2)
                ),
            )
        )
    if f.trusted_by_default is not None:
        trusted = "yes" if f.trusted_by_default else f"no ({f.trust_error or 'not verified'})"
        out.append(("trusted by default", trusted))
    out.append(("login", "yes" if f.logged_in else "no"))
    if not f.logged_in:
        return out
    out.append(("session reuse", _yes(f.session_reuse_required, "required", "not required")))
    pasv = _yes(f.pasv)
    if f.pasv and f.pasv_address:
        pasv += f" (names {f.pasv_address}"
        pasv += (
            f": {f.pasv_problem}; asyncmirror dials the control address)" if f.pasv_problem else ")"
        )
    out.append(("EPSV / PASV", f"{_yes(f.epsv)} / {pasv}"))
    if f.data_refused:
        out.append(
            ("data connections", "REFUSED (login works, data does not: a foreign-IP filter?)")
        )
    elif f.data_refused is False:
        out.append(("data connections", "ok"))
    listing = f"MLSD {_yes(f.mlsd)}, MLST {_yes(f.mlst)}, LIST {_yes(f.list_)}"
    if f.list_utc_offset is not None:
        listing += f" (LIST times in {_utc_offset(f.list_utc_offset)})"
    out.append(("listing", listing))
    out.append(("set times", f"MFMT {_yes(f.mfmt)}, SITE UTIME {_yes(f.site_utime)}"))
    out.append(("SIZE", _yes(f.size)))
    if f.digests is None:
        out.append(("digests", "?"))
    else:
        out.append(("digests", ", ".join(f.digests) if f.digests else "none"))
    out.append(("MODE Z", _yes(f.mode_z)))
    if f.connection_limit is not None:
        limit = (
            f"limit {f.connection_limit} ({f.limit_reply})"
            if f.limit_reply
            else (f"limit {f.connection_limit}")
        )
    else:
        limit = f"no limit up to {f.connections_tried}" if f.connections_tried else "?"
    out.append(("connections", limit))
    out.append(("round trip", "?" if f.rtt is None else _milliseconds(f.rtt)))
    if f.clock_skew is None:
        out.append(("clock skew", "?"))
    else:
        whole = round(f.clock_skew)
        skew = f"{whole:+d} s" if whole else "0 s"
        if abs(f.clock_skew) >= SKEW_WARNING:
            skew += " (large: times compare wrong)"
        out.append(("clock skew", skew))
    out.append(("DST writable", _yes(f.writable) + (f" ({f.dst})" if f.dst else "")))
    if f.src is not None and f.rtt is not None:
        est = estimate(f.src, f.rtt, f.connection_limit or f.jobs)
        out.append(
            (
                "estimate",
                f"first upload {_seconds(est.first_upload)} + {_size(f.src.bytes)} at your "
                f"bandwidth, unchanged rerun {_seconds(est.unchanged_rerun)} "
                f"({f.src.files} files, {f.src.dirs} dirs, -j {f.connection_limit or f.jobs})",
            )
        )
    return out


def render_table(f: Findings, now: float) -> str:
    """The human report: one row per fact, then notes and the recommended flags."""
    table = rows(f, now)
    width = max(len(name) for name, _ in table)
    lines = [f"{name.ljust(width)}  {value}" for name, value in table]
    lines += [f"note: {note}" for note in f.notes]
    flags = recommended_flags(f)
    lines.append("recommended flags: " + (" ".join(flags) if flags else "none"))
    return "\n".join(lines) + "\n"


def to_json(f: Findings, now: float) -> dict[str, Any]:
    """The machine report; ``connection_limit`` is null when no limit was hit."""
    cert = f.certificate
    est = (
        estimate(f.src, f.rtt, f.connection_limit or f.jobs)
        if f.src is not None and f.rtt is not None
        else None
    )
    return {
        "host": f.host,
        "port": f.port,
        "dst": f.dst,
        "banner": f.banner,
        "logged_in": f.logged_in,
        "tls": {
            "version": f.tls_version,
            "cipher": f.cipher,
            "tls13": f.tls13,
            "tls12": f.tls12,
            "session_reuse_required": f.session_reuse_required,
            "trusted_by_default": f.trusted_by_default,
            "trust_error": f.trust_error or None,
            "certificate": None
            if cert is None
            else {
                "subject": cert.subject,
                "issuer": cert.issuer,
                "not_after": None if cert.not_after is None else _iso(cert.not_after),
                "days_left": None
                if cert.not_after is None
                else math.floor((cert.not_after - now) / 86400),
                "sha256": cert.fingerprint,
            },
        },
        "epsv": f.epsv,
        "pasv": f.pasv,
        "pasv_address": f.pasv_address,
        "pasv_problem": f.pasv_problem or None,
        "data_refused": f.data_refused,
        "mlst": f.mlst,
        "mlsd": f.mlsd,
        "list": f.list_,
        "list_utc_offset_hours": f.list_utc_offset,
        "mfmt": f.mfmt,
        "site_utime": f.site_utime,
        "size": f.size,
        "digests": None if f.digests is None else list(f.digests),
        "mode_z": f.mode_z,
        "connections_tried": f.connections_tried,
        "connection_limit": f.connection_limit,
        "limit_reply": f.limit_reply or None,
        "rtt_ms": None if f.rtt is None else round(f.rtt * 1000, 1),
        "clock_skew_s": None if f.clock_skew is None else round(f.clock_skew, 1),
        "writable": f.writable,
        "estimate": None
        if est is None or f.src is None
        else {
            "files": f.src.files,
            "bytes": f.src.bytes,
            "dirs": f.src.dirs,
            "jobs": f.connection_limit or f.jobs,
            "first_upload_s": round(est.first_upload, 1),
            "unchanged_rerun_s": round(est.unchanged_rerun, 1),
        },
        "notes": list(f.notes),
        "recommended_flags": recommended_flags(f),
    }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
