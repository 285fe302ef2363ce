"""The boundary between asyncmirror and sockets, ``ssl`` and asyncio streams.

Everything that can raise ``OSError``, ``ssl.SSLError``, ``TimeoutError`` or an
aioftp exception is called inside :func:`translate_errors`, which turns them
into the families of :mod:`asyncmirror.errors`.  Nothing above ``session.py``
and ``datachannel.py`` imports ``ssl`` or catches ``OSError``.

TLS policy lives here too: certificates and host names are verified by default;
``ca_file`` adds a trust anchor, ``fingerprint`` pins one certificate (useful for
the self-signed certificates of shared hosts) and ``insecure`` turns checks off.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import aioftp

from . import errors

#: Generous stream buffer: MLSD replies of large directories arrive in one go.
STREAM_LIMIT = 1 << 20


@dataclass(frozen=True, slots=True)
class TLSPolicy:
    """How the server's certificate is checked."""

    ca_file: str | None = None
    fingerprint: str | None = None  # "SHA256:HEX" or plain hex, colons optional
    insecure: bool = False

    def pinned_digest(self) -> str | None:
        if not self.fingerprint:
            return None
        return normalise_fingerprint(self.fingerprint)


def normalise_fingerprint(text: str) -> str:
    """``SHA256:AB:CD..``, ``ab cd ..`` or ``abcd..`` -> ``abcd..`` (64 hex digits)."""
    body = text.strip()
    if body.lower().startswith("sha256:"):
        body = body[7:]
    elif body.lower().startswith("sha256 fingerprint="):
        body = body[len("sha256 fingerprint=") :]
    digits = re.sub(r"[\s:]", "", body).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digits):
        raise errors.UsageError(
            f"fingerprint {text!r} is not a SHA-256 fingerprint",
            hint="give 64 hex digits as 'openssl x509 -noout -fingerprint -sha256' prints them",
        )
    return digits


def format_fingerprint(digest_hex: str) -> str:
    return "SHA256:" + ":".join(digest_hex[i : i + 2].upper() for i in range(0, 64, 2))


def make_ssl_context(policy: TLSPolicy) -> ssl.SSLContext:
    """The client context every connection of a run shares (sessions need one context)."""
    if policy.insecure or policy.fingerprint:
        # A pinned fingerprint replaces chain and name checks: it is checked by
        # ``check_peer`` right after the handshake, before any credential is sent.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        try:
            ctx = ssl.create_default_context(cafile=policy.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise errors.UsageError(
                f"cannot load CA file {policy.ca_file!r}: {_reason(exc)}",
                hint="give a PEM file with the certificate(s) to trust",
            ) from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def peer_fingerprint(writer: asyncio.StreamWriter) -> str | None:
    obj = writer.get_extra_info("ssl_object")
    if obj is None:
        return None
    der = obj.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest() if der else None


def check_peer(writer: asyncio.StreamWriter, policy: TLSPolicy, host: str) -> None:
    """Enforce a pinned fingerprint (the context cannot do that itself)."""
    pinned = policy.pinned_digest()
    if pinned is None:
        return
    seen = peer_fingerprint(writer)
    if seen != pinned:
        shown = format_fingerprint(seen) if seen else "none"
        raise errors.CertificateError(
            f"the certificate of {host} has fingerprint {shown}, not the pinned one",
            fingerprint=seen,
            hint="if the server's certificate was renewed, check it and update --fingerprint",
        )


async def fetch_fingerprint(host: str, port: int, timeout: float) -> str | None:
    """Best effort: the server's certificate fingerprint, for the error message.

    Only called after verification failed; opens a fresh connection, sends
    ``AUTH TLS``, completes an unverified handshake and hangs up.  No
    credentials are ever sent on it.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=STREAM_LIMIT)
            try:
                await _read_reply_code(reader)
                writer.write(b"AUTH TLS\r\n")
                if await _read_reply_code(reader) != "234":
                    return None
                await writer.start_tls(ctx, server_hostname=host)
                return peer_fingerprint(writer)
            finally:
                writer.transport.abort()
    except (OSError, ssl.SSLError, TimeoutError, EOFError):
        return None


async def _read_reply_code(reader: asyncio.StreamReader) -> str:
    while True:
        line = await reader.readline()
        if not line:
            raise EOFError
        if len(line) >= 4 and line[:3].isdigit() and line[3:4] == b" ":
            return line[:3].decode()


def session_context(ctx: ssl.SSLContext, control: asyncio.StreamWriter) -> ssl.SSLContext:
    """A context that makes a data connection resume the control connection's TLS session.

    ProFTPD and vsftpd refuse data connections that do not; asyncio has no
    parameter for it, so aioftp's wrapper injects the session into ``wrap_bio``.
    """
    obj = control.get_extra_info("ssl_object")
    session = obj.session if obj is not None else None
    if session is None:
        return ctx
    bound: ssl.SSLContext = aioftp.common.SSLSessionBoundContext(
        ssl.PROTOCOL_TLS_CLIENT, context=ctx, session=session
    )
    return bound


def session_reused(writer: asyncio.StreamWriter) -> bool:
    obj = writer.get_extra_info("ssl_object")
    return bool(obj is not None and obj.session_reused)


async def open_tcp(
    host: str, port: int, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A plain TCP connection, bounded by ``timeout``."""
    with translate_errors(f"connect to {host}:{port}", connecting=True):
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=STREAM_LIMIT)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


def abort(writer: asyncio.StreamWriter | None) -> None:
    """Drop a connection at once, without a TLS goodbye (used on error paths)."""
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.transport.abort()


@contextlib.contextmanager
def translate_errors(what: str, *, connecting: bool = False) -> Iterator[None]:
    """Map raw network exceptions into asyncmirror's families.

    ``what`` names the operation for the message (never a credential).
    ``connecting`` makes a refused or unresolvable connection fatal: if the
    first connection to a host fails, retrying does not fix a wrong host name.
    """
    try:
        yield
    except errors.AsyncMirrorError:
        raise
    except ssl.SSLCertVerificationError as exc:
        raise errors.CertificateError(
            f"{what}: the server's certificate is not trusted ({exc.verify_message})",
        ) from None
    except ssl.SSLError as exc:
        raise errors.NetworkError(f"{what}: TLS error ({_reason(exc)})") from None
    except TimeoutError:
        raise errors.OperationTimeout(f"{what}: timed out") from None
    except socket.gaierror as exc:
        raise errors.ConnectError(f"{what}: cannot resolve host ({exc.strerror})") from None
    except ConnectionRefusedError:
        if connecting:
            raise errors.ConnectError(f"{what}: connection refused") from None
        raise errors.NetworkError(f"{what}: connection refused") from None
    except (ConnectionError, EOFError, asyncio.IncompleteReadError) as exc:
        raise errors.NetworkError(f"{what}: connection lost ({_reason(exc)})") from None
    except OSError as exc:
        if connecting:
            raise errors.ConnectError(f"{what}: {_reason(exc)}") from None
        raise errors.NetworkError(f"{what}: {_reason(exc)}") from None
    except aioftp.AIOFTPException as exc:  # pragma: no cover - defensive
        raise errors.ProtocolError(f"{what}: {exc}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
