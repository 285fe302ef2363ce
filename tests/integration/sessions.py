"""One logged-in asyncmirror Session on the test ProFTPD, for tests below mirror()."""

from __future__ import annotations

from asyncmirror.control import Trace
from asyncmirror.login import ServerConfig
from asyncmirror.quirks import ServerQuirks
from asyncmirror.session import Session
from asyncmirror.transport import TLSPolicy, make_ssl_context
from tests.servers.proftpd import ProftpdServer


async def open_session(
    proftpd: ProftpdServer, *, timeout: float = 5, trace: Trace | None = None
) -> Session:
    config = ServerConfig(
        host=proftpd.host,
        port=proftpd.port,
        user=proftpd.user,
        password=proftpd.password,
        tls=TLSPolicy(ca_file=str(proftpd.ca_file)),
        timeout=timeout,
        trace=trace,
    )
    return await Session.open(config, make_ssl_context(config.tls), ServerQuirks())
