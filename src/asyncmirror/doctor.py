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
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from . import datachannel, errors, tlsprobe, transport, x509info
from .diagnosis import CertificateInfo, Findings, TreeSize
from .listing import parse_list_line, parse_mlst_reply
from .replies import Reply, format_mfmt, parse_mdtm, parse_pasv
from .session import LoginGate, ServerConfig, ServerQuirks, Session

__all__ = ["DIGEST_COMMANDS", "TEMP_PREFIX", "diagnose"]

#: Name prefix of the temporary file: ``.ht`` so Apache refuses to serve it.
TEMP_PREFIX = ".htasyncmirror-doctor-"
#: Tried on the temporary file, strongest first.
DIGEST_COMMANDS = ("HASH", "XSHA256", "XSHA1", "XMD5", "XCRC")
NOOPS = 5
#: The time MFMT / SITE UTIME are asked to set (any past time will do).
PAST = 1_600_000_000.0
#: Replies that mean "this server does not have that command".
_UNKNOWN = ("500", "502", "504")


def _supported(reply: Reply) -> bool | None:
    if reply.is_complete:
        return True
    if reply.code in _UNKNOWN or reply.code == "501":
        return False
    return None


def _join(dst: str, name: str) -> str:
    if not dst or dst == ".":
        return name
    return dst.rstrip("/") + "/" + name


def pasv_problem(named: str, peer: str) -> str:
    """Why the address a PASV reply names is of no use to this client ("" if it is).

    asyncmirror always dials the control connection's peer instead, but other
    clients (and lftp by default) dial what PASV says.
    """
    try:
        address = ipaddress.ip_address(named)
        dialled = ipaddress.ip_address(peer)
    except ValueError:
        return ""
    if address == dialled:
        return ""
    if address.is_unspecified or address.is_reserved or address.is_link_local:
        return "unroutable"
    if address.is_private:  # 10/8, 192.168/16, 127/8 ... and not the one we reach
        return "private"
    return ""


class _Doctor:
    def __init__(self, config: ServerConfig, findings: Findings) -> None:
        self.config = config
        self.f = findings
        self.ctx = transport.make_ssl_context(config.tls)
        self.quirks = ServerQuirks()
        self.logins = LoginGate()
        self.main: Session | None = None
        self.extra: list[Session] = []

    @property
    def timeout(self) -> float:
        return self.config.timeout

    def note(self, text: str) -> None:
        self.f.notes.append(text)

    async def session(self) -> Session:
        """The main session, opened again if a probe broke it."""
        if self.main is None or self.main.broken:
            if self.main is not None:
                self.main.abort()
            self.main = await Session.open(self.config, self.ctx, self.quirks, self.logins)
        return self.main

    async def attempt(self, what: str, probe: Callable[[], Awaitable[None]]) -> None:
        """Run one probe; its failure is a note, the diagnosis goes on."""
        try:
            await probe()
        except (errors.RetryableError, errors.ReplyError, errors.ProtocolError) as exc:
            self.note(f"{what}: {exc.user_line()}")
        except TimeoutError:
            self.note(f"{what}: no answer within {self.timeout:g} s")

    async def ask(self, line: str) -> Reply:
        session = await self.session()
        try:
            async with asyncio.timeout(self.timeout):
                return await session.command(line)
        except TimeoutError:
            session.mark_broken()  # its reply may still come: out of step
            raise errors.OperationTimeout(f"{line.split()[0]}: no answer") from None

    # --- 1-3: the login, TLS, RTT, the limit -------------------------------------

    async def login(self) -> None:
        main = await self.session()
        f = self.f
        f.logged_in = True
        f.banner = main.banner
        version, cipher, der = tlsprobe.connection_info(main.writer)
        f.tls_version, f.cipher = version, cipher
        if der:
            self.describe_certificate(der)

    def describe_certificate(self, der: bytes) -> None:
        try:
            cert = x509info.parse_certificate(der)
        except errors.ProtocolError as exc:
            self.note(str(exc))
            return
        self.f.certificate = CertificateInfo(cert.subject, cert.issuer, cert.not_after, cert.sha256)

    async def round_trip(self) -> None:
        samples = []
        for _ in range(NOOPS):
            started = time.monotonic()
            reply = await self.ask("NOOP")
            samples.append(time.monotonic() - started)
            if not reply.is_complete:
                self.note(f"NOOP: {reply.code} {reply.text}")
                return
        self.f.rtt = statistics.median(samples)

    async def connection_limit(self, wanted: int) -> None:
        """Open sessions up to ``wanted`` in all (the main one counts) at once."""
        self.f.connections_tried = max(1, wanted)
        more = max(0, wanted - 1)
        if not more:
            return
        results = await asyncio.gather(
            *(Session.open(self.config, self.ctx, self.quirks, self.logins) for _ in range(more)),
            return_exceptions=True,
        )
        self.extra = [r for r in results if isinstance(r, Session)]
        refused: list[errors.TooManyConnectionsError] = []
        for result in results:
            if isinstance(result, Session):
                continue
            elif isinstance(result, errors.TooManyConnectionsError):
                refused.append(result)
            elif isinstance(result, errors.AsyncMirrorError):
                self.note(f"extra session: {result.user_line()}")
            elif isinstance(result, BaseException):
                raise result
        if refused:
            self.f.connection_limit = 1 + len(self.extra)
            self.f.limit_reply = refused[0].reply

    # --- 4-6: passive mode, data connections, listings ---------------------------

    async def passive_mode(self) -> None:
        f = self.f
        reply = await self.ask("EPSV")
        f.epsv = reply.code == "229"
        reply = await self.ask("PASV")
        f.pasv = reply.code == "227"
        if f.pasv:
            named, _ = parse_pasv(reply.text)
            f.pasv_address = named
            f.pasv_problem = pasv_problem(named, (await self.session()).peer_host)
        # The transfers below use what works.
        self.quirks.epsv = bool(f.epsv) if (f.epsv or f.pasv) else None

    async def fetch(self, command: str) -> bytes:
        session = await self.session()
        address = await session.passive()
        return await datachannel.fetch(session, command, address)

    async def data_connections(self) -> None:
        f = self.f
        try:
            await self.fetch("LIST")
            resumed = True
        except (errors.RetryableError, errors.ReplyError) as exc:
            self.note(f"data connection: {exc.user_line()}")
            resumed = False
        other = self.extra[0] if self.extra else await self.session()
        fresh = await self.without_reuse(other)
        if resumed:
            f.data_refused = False
            f.session_reuse_required = None if fresh is None else not fresh
        else:
            f.data_refused = not fresh

    async def without_reuse(self, session: Session) -> bool | None:
        """Whether a listing works over a data connection with a fresh TLS session."""
        try:
            async with asyncio.timeout(self.timeout * 2):
                host, port = await session.passive()
                await session.send("LIST")
                ok = True
                data: transport.DataTLS | None = None
                try:
                    with transport.translate_errors("data connection without session reuse"):
                        data = await transport.DataTLS.connect(
                            host, port, session.tls_context, self.config.host, None, self.timeout
                        )
                        await data.handshake()
                        while await data.recv():
                            pass
                        await data.close()
                except errors.AsyncMirrorError:
                    ok = False
                finally:
                    if data is not None:
                        data.abort()
                reply = await session.read_reply()
                while reply.is_preliminary:
                    reply = await session.read_reply()
                return ok and reply.is_complete
        except (errors.AsyncMirrorError, TimeoutError) as exc:
            session.mark_broken()
            self.note(f"data connection without session reuse: {exc}")
            return None

    async def listings(self) -> None:
        f = self.f
        target = f.dst or "."
        f.mlst = _supported(await self.ask(f"MLST {target}"))
        try:
            await self.fetch(f"MLSD {target}")
            f.mlsd = True
        except errors.ReplyError as exc:
            f.mlsd = False if exc.code in (*_UNKNOWN, "501") else None
        try:
            await self.fetch(f"LIST {f.dst}" if f.dst else "LIST")
            f.list_ = True
        except errors.ReplyError as exc:
            f.list_ = False if exc.code in _UNKNOWN else None
        reply = await self.ask("MODE Z")
        f.mode_z = _supported(reply)
        if f.mode_z:
            await self.ask("MODE S")  # back to what transfers use

    # --- 7: the temporary file ---------------------------------------------------

    async def temporary_file(self) -> None:
        f = self.f
        name = TEMP_PREFIX + secrets.token_hex(6)
        path = _join(f.dst, name)
        body = b"asyncmirror --doctor: a temporary file, removed at once\n"
        session = await self.session()
        address = await session.passive()
        try:
            before = time.time()
            try:
                await datachannel.upload(session, path, body, address)
            except errors.PermanentReplyError as exc:
                f.writable = False
                self.note(f"DST is not writable: {exc.reply}")
                return
            local = (before + time.time()) / 2
            f.writable = True
            await self.attempt("remote time", lambda: self.remote_time(path, name, local))
            await self.attempt("SIZE", lambda: self.size(path, len(body)))
            await self.attempt("set times", lambda: self.set_times(path))
            await self.attempt("digests", lambda: self.digests(path))
        finally:
            await self.remove(path)  # even a failed STOR may have left a partial file

    async def remote_time(self, path: str, name: str, local: float) -> None:
        f = self.f
        remote: float | None = None
        if f.mlst:
            entry = parse_mlst_reply((await self.ask(f"MLST {path}")).lines)
            remote = entry.mtime if entry is not None else None
        if remote is None:
            reply = await self.ask(f"MDTM {path}")
            if reply.code == "213":
                remote = parse_mdtm(reply.text)
        if remote is not None:
            f.clock_skew = remote - local
        if f.list_:
            # ProFTPD and vsftpd hide dotfiles unless asked with -a; stock
            # pyftpdlib takes "-a path" for a path (550) but shows dotfiles anyway.
            try:
                listing = await self.fetch(f"LIST -a {path}")
            except errors.ReplyError:
                listing = b""
            if name.encode() not in listing:
                listing = await self.fetch(f"LIST {path}")
            now = datetime.now(UTC)
            for line in listing.decode("utf-8", errors="replace").splitlines():
                if line.endswith(path):  # some servers print the path as asked
                    line = line[: -len(path)] + name
                entry = parse_list_line(line, now=now, tz=UTC)
                if entry is not None and entry.name == name and entry.mtime is not None:
                    truth = remote if remote is not None else local
                    quarters = round((entry.mtime - truth) / 900)
                    f.list_utc_offset = quarters / 4
                    break

    async def size(self, path: str, expected: int) -> None:
        reply = await self.ask(f"SIZE {path}")
        self.f.size = _supported(reply)
        if reply.code == "213" and reply.text.strip() != str(expected):
            self.note(f"SIZE says {reply.text.strip()} for a file of {expected} bytes")

    async def set_times(self, path: str) -> None:
        stamp = format_mfmt(PAST)
        self.f.mfmt = _supported(await self.ask(f"MFMT {stamp} {path}"))
        self.f.site_utime = _supported(await self.ask(f"SITE UTIME {stamp} {path}"))

    async def digests(self, path: str) -> None:
        found = []
        for command in DIGEST_COMMANDS:
            if _supported(await self.ask(f"{command} {path}")):
                found.append(command)
        self.f.digests = tuple(found)

    async def remove(self, path: str) -> None:
        """Delete the temporary file; bounded, and said out loud if it stays."""
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self.ask(f"DELE {path}")
            if not reply.is_complete and reply.code != "550":
                self.note(f"could not remove {path}: {reply.code} {reply.text}")
        except (errors.AsyncMirrorError, TimeoutError) as exc:
            self.note(f"could not remove {path}: {exc}")

    # --- 8: handshakes without credentials ---------------------------------------

    async def handshakes(self) -> None:
        cfg, f = self.config, self.f
        t13, t12, trust = await asyncio.gather(
            tlsprobe.try_handshake(cfg.host, cfg.port, self.timeout, version="TLSv1.3"),
            tlsprobe.try_handshake(cfg.host, cfg.port, self.timeout, version="TLSv1.2"),
            tlsprobe.try_handshake(cfg.host, cfg.port, self.timeout, verify=True),
        )
        f.tls13, f.tls12 = t13.ok, t12.ok
        f.trusted_by_default = trust.ok
        f.trust_error = trust.error
        if f.certificate is None:
            der = next((h.der for h in (t13, t12) if h.der), None)
            if der:
                self.describe_certificate(der)
        if not (t13.ok or t12.ok):
            self.note(f"TLS 1.3: {t13.error}; TLS 1.2: {t12.error}")

    async def close_extra(self) -> None:
        """Give back the limit probe's sessions: a reopened main session needs a slot."""
        extra, self.extra = self.extra, []
        await asyncio.gather(*(s.quit() for s in extra))

    async def close(self) -> None:
        sessions = [*self.extra, *([self.main] if self.main is not None else [])]
        self.extra, self.main = [], None
        await asyncio.gather(*(s.quit() for s in sessions))


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
    doctor = _Doctor(config, findings)
    try:
        try:
            await doctor.login()
        except errors.CertificateError as exc:
            findings.notes.append(exc.message)
            await doctor.handshakes()
            return findings
        await doctor.attempt("round trip", doctor.round_trip)
        await doctor.attempt(
            "connection limit",
            lambda: doctor.connection_limit(max_probe if max_probe is not None else jobs),
        )
        await doctor.attempt("passive mode", doctor.passive_mode)
        await doctor.attempt("data connections", doctor.data_connections)
        await doctor.close_extra()
        if findings.data_refused:
            findings.notes.append(
                "the server accepts the login but refuses every data connection: "
                "a filter on foreign IP addresses? allow this machine's address in the "
                "host's control panel"
            )
        else:
            await doctor.attempt("listings", doctor.listings)
            await doctor.attempt("temporary file", doctor.temporary_file)
    finally:
        with contextlib.suppress(errors.AsyncMirrorError):
            await doctor.close()
    await doctor.handshakes()
    return findings
