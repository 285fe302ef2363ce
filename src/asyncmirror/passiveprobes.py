"""``--doctor``'s probes of the data path: passive mode and data connections.

* :func:`passive_mode`: ``EPSV``, then ``PASV`` and whether the address it
  names is any use (:func:`pasv_problem`);
* :func:`data_connections`: a listing resuming the control connection's TLS
  session, then one that does not (on another session) -- "reuse required"
  when only the first works, "refused" (a filter on foreign IP addresses)
  when neither does.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import TYPE_CHECKING

from . import errors, transport
from .replies import parse_pasv

if TYPE_CHECKING:
    from .prober import Prober
    from .session import Session


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


async def passive_mode(p: Prober) -> None:
    f = p.f
    reply = await p.ask("EPSV")
    f.epsv = reply.code == "229"
    reply = await p.ask("PASV")
    f.pasv = reply.code == "227"
    if f.pasv:
        named, _ = parse_pasv(reply.text)
        f.pasv_address = named
        f.pasv_problem = pasv_problem(named, (await p.session()).peer_host)
    # The transfers below use what works.
    p.quirks.epsv = bool(f.epsv) if (f.epsv or f.pasv) else None


async def data_connections(p: Prober) -> None:
    f = p.f
    try:
        await p.fetch("LIST")
        resumed = True
    except (errors.RetryableError, errors.ReplyError) as exc:
        p.note(f"data connection: {exc.user_line()}")
        resumed = False
    other = p.extra[0] if p.extra else await p.session()
    fresh = await without_reuse(p, other)
    if resumed:
        f.data_refused = False
        f.session_reuse_required = None if fresh is None else not fresh
    else:
        f.data_refused = not fresh


async def without_reuse(p: Prober, session: Session) -> bool | None:
    """Whether a listing works over a data connection with a fresh TLS session."""
    try:
        async with asyncio.timeout(p.timeout * 2):
            host, port = await session.passive()
            await session.send("LIST")
            ok = True
            data: transport.DataTLS | None = None
            try:
                with transport.translate_errors("data connection without session reuse"):
                    data = await transport.DataTLS.connect(
                        host, port, session.tls_context, p.config.host, None, p.timeout
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
        p.note(f"data connection without session reuse: {exc}")
        return None
