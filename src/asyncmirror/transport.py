"""The boundary between asyncmirror and sockets, ``ssl`` and asyncio streams.

Everything that can raise ``OSError``, ``ssl.SSLError`` or ``TimeoutError`` is
called inside :func:`translate_errors`, which turns them into the families of
:mod:`asyncmirror.errors`.  Nothing above the connection modules (``control``,
``login``, ``session``, ``datachannel``) imports ``ssl`` or catches ``OSError``.

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
from typing import TYPE_CHECKING, NamedTuple

from . import errors

if TYPE_CHECKING:
    from .early import EarlyConnection

#: Stream buffer for the fingerprint probe's control connection.
STREAM_LIMIT = 1 << 20


class TLSPolicy(NamedTuple):
    """How the server's certificate is checked."""

    ca_file: str | None = None
    fingerprint: str | None = None  # "SHA256:HEX" or plain hex, colons optional
    insecure: bool = False

    def pinned_digest(self) -> str | None:
        if not self.fingerprint:
            return None
        return normalise_fingerprint(self.fingerprint)


def tls_library() -> str:
    """``OpenSSL 3.0.19``: the TLS library every connection uses (for --version)."""
    return " ".join(ssl.OPENSSL_VERSION.split()[:2])


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
    except (
        OSError,
        ssl.SSLError,
        TimeoutError,
        EOFError,
        ValueError,
    ):  # ValueError: a line over the limit
        return None


async def _read_reply_code(reader: asyncio.StreamReader) -> str:
    while True:
        line = await reader.readline()
        if not line:
            raise EOFError
        if len(line) >= 4 and line[:3].isdigit() and line[3:4] == b" ":
            return line[:3].decode()


async def open_control(
    host: str, port: int, timeout: float, early: EarlyConnection | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to ``(host, port)`` for a control connection, within ``timeout``.

    With ``early`` (a connection begun in advance, see :mod:`asyncmirror.early`)
    it waits for that one within the same bound instead of dialling; whatever
    happens, ``early`` is closed on the way out, so a socket that connects after
    we gave up does not hold a server process.  Raises what a fresh connect
    would (``OSError``, ``TimeoutError``): call it inside :func:`translate_errors`.
    """
    if early is not None:
        try:
            sock = await _wait_early(early, timeout)
        finally:
            early.close()
        if sock is not None:
            try:
                return await asyncio.open_connection(sock=sock)
            except BaseException:
                sock.close()
                raise
    async with asyncio.timeout(timeout):
        return await asyncio.open_connection(host, port)


async def _wait_early(early: EarlyConnection, timeout: float) -> socket.socket | None:
    """The early connection's socket, or ``None`` to connect the usual way: its
    connect failed with something other than a network error, which the usual
    way says better (an ``OSError`` is raised as a fresh connect would)."""
    loop = asyncio.get_running_loop()
    connected = loop.create_future()

    def wake() -> None:  # from the connecting thread, or right here
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            loop.call_soon_threadsafe(
                lambda: None if connected.done() else connected.set_result(None)
            )

    early.when_done(wake)
    async with asyncio.timeout(timeout):
        await connected
    try:
        return early.take()
    except OSError:
        raise
    except Exception:
        return None


def tls_session(control: asyncio.StreamWriter) -> ssl.SSLSession | None:
    """The control connection's TLS session, for data connections to resume.

    ProFTPD and vsftpd refuse data connections that do not resume it.  Read
    at each use: under TLS 1.3 the ticket arrives after the handshake.
    """
    obj = control.get_extra_info("ssl_object")
    return obj.session if obj is not None else None


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
    except UnicodeError:  # the resolver's IDNA encoding of the name (e.g. "a..b")
        raise errors.ConnectError(f"{what}: not a valid host name") from None
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


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class DataTLS:
    """TLS over a plain non-blocking socket, driven through memory BIOs.

    Data connections do not use asyncio's TLS transport, for two reasons
    measured on ProFTPD: the transport sends its TCP FIN only after the peer's
    close_notify, and ProFTPD waits for our FIN before its ``226`` -- one whole
    extra round trip per file; and it offers no way to pass the TLS session to
    resume.  Here the session goes straight to ``wrap_bio`` and :meth:`close`
    sends close_notify and FIN back to back.  Every wait is bounded by
    ``timeout``; callers wrap calls in :func:`translate_errors`.
    """

    def __init__(
        self,
        sock: socket.socket,
        ctx: ssl.SSLContext,
        server_hostname: str,
        session: ssl.SSLSession | None,
        timeout: float,
    ) -> None:
        self.sock = sock
        self.timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(
            self._in, self._out, server_hostname=server_hostname, session=session
        )

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        ctx: ssl.SSLContext,
        server_hostname: str,
        session: ssl.SSLSession | None,
        timeout: float,
    ) -> DataTLS:
        """TCP connect only; :meth:`handshake` is separate so it can overlap ``STOR``."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            async with asyncio.timeout(timeout):
                await asyncio.get_running_loop().sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        return cls(sock, ctx, server_hostname, session, timeout)

    @property
    def session_reused(self) -> bool:
        return bool(self._obj.session_reused)

    async def handshake(self) -> None:
        while True:
            try:
                self._obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
        await self._flush()

    async def send(self, data: bytes | memoryview) -> None:
        """Encrypt all of ``data`` and send it; ``data`` may be reused once this returns."""
        self._obj.write(data)  # a memory BIO takes it all: never a partial write
        await self._flush()

    async def recv(self) -> bytes:
        """Some plaintext, or ``b""`` at the end of the stream."""
        while True:
            try:
                return self._obj.read(1 << 18)
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    return b""  # EOF without close_notify: the 226 says if all came
            except ssl.SSLZeroReturnError:
                return b""

    async def close(self) -> None:
        """close_notify, then FIN at once (not after the peer's close_notify)."""
        with contextlib.suppress(ssl.SSLError):
            self._obj.unwrap()  # queues close_notify; "want read" is expected here
        await self._flush()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    async def _flush(self) -> None:
        data = self._out.read()
        if not data:
            return
        # Most writes fit in the socket buffer: send at once, and arm the timeout
        # (a timer on the loop) only for what has to wait for room.
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            async with asyncio.timeout(self.timeout):
                await self._loop.sock_sendall(self.sock, memoryview(data)[sent:])

    async def _fill(self) -> bool:
        async with asyncio.timeout(self.timeout):
            data = await self._loop.sock_recv(self.sock, 1 << 18)
        if not data:
            self._in.write_eof()
            return False
        self._in.write(data)
        return True
