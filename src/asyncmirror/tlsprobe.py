"""TLS handshakes that ``--doctor`` tries beside the run's own, at the transport boundary.

Each probe opens a fresh control connection, sends ``AUTH TLS`` (never
``FEAT``), completes one handshake under a context made for the question
asked -- only TLS 1.3, only TLS 1.2, or the default trust store -- reports
what happened and hangs up.  No credentials are ever sent on these
connections.  ``ssl`` and ``OSError`` stay in here: callers get a
:class:`Handshake` record with the error as text.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Literal, NamedTuple

from .transport import STREAM_LIMIT, _read_reply_code, _reason

__all__ = ["Handshake", "connection_info", "try_handshake"]


class Handshake(NamedTuple):
    ok: bool
    version: str | None = None
    cipher: str | None = None
    der: bytes | None = None
    error: str = ""


def _context(version: Literal["TLSv1.3", "TLSv1.2"] | None, verify: bool) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context()  # the system's trust store, host name checked
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the question is the protocol, not trust
    if version is not None:
        pinned = ssl.TLSVersion.TLSv1_3 if version == "TLSv1.3" else ssl.TLSVersion.TLSv1_2
        ctx.minimum_version = ctx.maximum_version = pinned
    return ctx


async def try_handshake(
    host: str,
    port: int,
    timeout: float,
    *,
    version: Literal["TLSv1.3", "TLSv1.2"] | None = None,
    verify: bool = False,
) -> Handshake:
    """One ``AUTH TLS`` handshake; ``ok`` says whether it completed.

    ``version`` pins the protocol; ``verify`` checks the certificate against
    the default trust store and the host name (``error`` says why not).
    The whole exchange is bounded by ``timeout``.
    """
    ctx = _context(version, verify)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=STREAM_LIMIT)
            await _read_reply_code(reader)
            writer.write(b"AUTH TLS\r\n")
            code = await _read_reply_code(reader)
            if code != "234":
                return Handshake(False, error=f"AUTH TLS answered {code}")
            await writer.start_tls(ctx, server_hostname=host)
            version_seen, cipher, der = connection_info(writer)
            return Handshake(True, version_seen, cipher, der)
    except ssl.SSLCertVerificationError as exc:
        return Handshake(False, error=str(exc.verify_message or _reason(exc)))
    except ssl.SSLError as exc:
        return Handshake(False, error=_reason(exc))
    except TimeoutError:
        return Handshake(False, error=f"no answer within {timeout:g} s")
    except (OSError, EOFError) as exc:
        return Handshake(False, error=_reason(exc))
    finally:
        if writer is not None:
            writer.transport.abort()


def connection_info(writer: asyncio.StreamWriter) -> tuple[str | None, str | None, bytes | None]:
    """(TLS version, cipher name, peer certificate DER) of a TLS stream."""
    obj = writer.get_extra_info("ssl_object")
    if obj is None:
        return None, None, None
    cipher = obj.cipher()
    return obj.version(), cipher[0] if cipher else None, obj.getpeercert(binary_form=True)
