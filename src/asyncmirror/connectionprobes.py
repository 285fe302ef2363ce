"""``--doctor``'s probes of the connection itself: TLS, round trip, how many sessions.

* :func:`login`: the TLS version, cipher and certificate of a session logged
  in exactly as a run logs in;
* :func:`round_trip`: the median of a few ``NOOP``;
* :func:`connection_limit`: more sessions at once, up to ``-j`` (or
  ``--max-probe``); a refusal after a good login (``530``/``421``) is the limit;
* :func:`handshakes`: separate handshakes without credentials, pinned to TLS 1.3
  and to TLS 1.2, and one checked against the default trust store.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import TYPE_CHECKING

from . import errors, tlsprobe, x509info
from .diagnosis import CertificateInfo

if TYPE_CHECKING:
    from .prober import Prober

#: How many NOOPs the round trip is the median of.
NOOPS = 5


async def login(p: Prober) -> None:
    main = await p.session()
    f = p.f
    f.logged_in = True
    f.banner = main.banner
    version, cipher, der = tlsprobe.connection_info(main.writer)
    f.tls_version, f.cipher = version, cipher
    if der:
        describe_certificate(p, der)


def describe_certificate(p: Prober, der: bytes) -> None:
    try:
        cert = x509info.parse_certificate(der)
    except errors.ProtocolError as exc:
        p.note(str(exc))
        return
    p.f.certificate = CertificateInfo(cert.subject, cert.issuer, cert.not_after, cert.sha256)


async def round_trip(p: Prober) -> None:
    samples = []
    for _ in range(NOOPS):
        started = time.monotonic()
        reply = await p.ask("NOOP")
        samples.append(time.monotonic() - started)
        if not reply.is_complete:
            p.note(f"NOOP: {reply.code} {reply.text}")
            return
    p.f.rtt = statistics.median(samples)


async def connection_limit(p: Prober, wanted: int) -> None:
    """Open sessions up to ``wanted`` in all (the main one counts), one after another.

    One at a time, not all at once: in a burst, each login may be counted
    against ``MaxClients`` with the others still in progress, and the limit
    measured can come out below the host's (seen once in CI: 2 on a server
    allowing 3).  An extra session that fails otherwise is noted and ends the
    probe (one after another, a dead server would cost a timeout per session);
    the count tried is then what worked.  They stay open (``p.extra``) for the
    data-connection probe, until :meth:`Prober.close_extra`.
    """
    p.f.connections_tried = max(1, wanted)
    p.extra = []
    for _ in range(max(0, wanted - 1)):
        try:
            p.extra.append(await p.open_session())
        except errors.TooManyConnectionsError as exc:
            p.f.connection_limit = 1 + len(p.extra)
            p.f.limit_reply = exc.reply
            return
        except errors.AsyncMirrorError as exc:
            p.note(f"extra session: {exc.user_line()}")
            p.f.connections_tried = 1 + len(p.extra)
            return


async def handshakes(p: Prober) -> None:
    cfg, f = p.config, p.f
    t13, t12, trust = await asyncio.gather(
        tlsprobe.try_handshake(cfg.host, cfg.port, p.timeout, version="TLSv1.3"),
        tlsprobe.try_handshake(cfg.host, cfg.port, p.timeout, version="TLSv1.2"),
        tlsprobe.try_handshake(cfg.host, cfg.port, p.timeout, verify=True),
    )
    f.tls13, f.tls12 = t13.ok, t12.ok
    f.trusted_by_default = trust.ok
    f.trust_error = trust.error
    if f.certificate is None:
        der = next((h.der for h in (t13, t12) if h.der), None)
        if der:
            describe_certificate(p, der)
    if not (t13.ok or t12.ok):
        p.note(f"TLS 1.3: {t13.error}; TLS 1.2: {t12.error}")
