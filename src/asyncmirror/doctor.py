"""``asyncmirror --doctor``: learn a server by trying, the way a mirror run would.

Theory of operation
-------------------
One session logs in exactly as a run does (``AUTH TLS`` first, never
``FEAT``; the same TLS policy and credentials).  Then, in this order:

1. the TLS facts of that session (version, cipher, certificate);
2. the round-trip time, as the median of a few ``NOOP``;
3. the connection limit: more sessions are opened at once, up to ``-j`` (or
   ``--max-probe``) in all, and a refusal after the good login (``530``/``421``)
   is the limit.  Done early, while nothing else of ours holds a slot;
4. passive mode: ``EPSV``, then ``PASV`` and the address it names;
5. data connections: a listing resuming the control connection's TLS
   session, then one that does not (on another session) -- "reuse required"
   when only the first works, "refused" (a foreign-IP filter) when neither;
6. listings (``MLST``, ``MLSD``, ``LIST``) and ``MODE Z``;
7. a temporary file ``.htasyncmirror-doctor-<random>`` stored in DST (is DST
   writable?), whose remote time gives the clock skew and LIST's time zone,
   and on which ``SIZE``, ``MFMT``, ``SITE UTIME`` and the digest commands are
   tried.  It is deleted in a ``finally`` (``.ht``: Apache never serves it
   meanwhile);
8. separate handshakes, without credentials, pinned to TLS 1.3 and to TLS 1.2,
   and one checked against the default trust store.

Every wait is bounded by the configured timeout; a probe that fails is a
``?`` in the table and a note, not the end of the diagnosis.  Only a failure
to log in ends it early (a certificate that is not trusted still gets its
facts reported).

This module is the order; the probes are grouped by what they look at:
:mod:`connectionprobes` (1-3 and 8: TLS, round trip, connection limit),
:mod:`passiveprobes` (4-5: passive mode, data connections) and
:mod:`dstprobes` (6-7: what the account can do in DST), over the sessions a
:class:`~asyncmirror.prober.Prober` holds.
"""

from __future__ import annotations

import contextlib

from . import connectionprobes, dstprobes, errors, passiveprobes
from .diagnosis import Findings, TreeSize
from .dstprobes import DIGEST_COMMANDS, TEMP_PREFIX
from .login import ServerConfig
from .prober import Prober

__all__ = ["DIGEST_COMMANDS", "TEMP_PREFIX", "diagnose"]


async def diagnose(
    config: ServerConfig,
    dst: str | None,
    *,
    src: TreeSize | None = None,
    jobs: int = 8,
    max_probe: int | None = None,
) -> Findings:
    """Probe the server of ``config`` (and DST on it) and say what was found.

    Raises the login's fatal errors (:class:`~errors.ConnectError`,
    :class:`~errors.AuthError`, :class:`~errors.TLSRefusedError`); a
    certificate that does not verify is reported in the findings instead
    (``logged_in`` false).  Leaves nothing on the server.
    """
    findings = Findings(host=config.host, port=config.port, dst=dst or "", jobs=jobs, src=src)
    findings.trust_given = bool(config.tls.ca_file or config.tls.fingerprint)
    p = Prober(config, findings)
    try:
        try:
            await connectionprobes.login(p)
        except errors.CertificateError as exc:
            findings.notes.append(exc.message)
            await connectionprobes.handshakes(p)
            return findings
        await p.attempt("round trip", lambda: connectionprobes.round_trip(p))
        wanted = max_probe if max_probe is not None else jobs
        await p.attempt("connection limit", lambda: connectionprobes.connection_limit(p, wanted))
        await p.attempt("passive mode", lambda: passiveprobes.passive_mode(p))
        await p.attempt("data connections", lambda: passiveprobes.data_connections(p))
        await p.close_extra()
        if findings.data_refused:
            findings.notes.append(
                "the server accepts the login but refuses every data connection: "
                "a filter on foreign IP addresses? allow this machine's address in the "
                "host's control panel"
            )
        else:
            await p.attempt("listings", lambda: dstprobes.listings(p))
            await p.attempt("temporary file", lambda: dstprobes.temporary_file(p))
    finally:
        with contextlib.suppress(errors.AsyncMirrorError):
            await p.close()
    await connectionprobes.handshakes(p)
    return findings
