"""asyncmirror: mirror a directory tree to an FTPS server, fast and safely.

``await mirror(src, dst, host=..., user=..., password=...)`` returns a
:class:`Report`; the error families are re-exported here.
"""

from typing import TYPE_CHECKING

from .errors import (
    AsyncMirrorError,
    AuthError,
    CertificateError,
    ConnectError,
    FatalError,
    PermanentReplyError,
    RetryableError,
    TimeoutExpired,
    TLSError,
    TLSRefusedError,
    UsageError,
)

if TYPE_CHECKING:
    from .mirroring import mirror, rollback
    from .report import Events, Failure, Report, Verification


def __getattr__(name: str) -> object:
    # Loaded on first use, not on ``import asyncmirror``: the command imports
    # the package before it starts its first connection, and these pull in
    # asyncio and ssl (see cli.py and early.py).
    if name in ("mirror", "rollback"):
        from . import mirroring

        return getattr(mirroring, name)
    if name in ("Events", "Failure", "Report", "Verification"):
        from . import report

        return getattr(report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "AsyncMirrorError",
    "AuthError",
    "CertificateError",
    "ConnectError",
    "Events",
    "Failure",
    "FatalError",
    "PermanentReplyError",
    "Report",
    "RetryableError",
    "TLSError",
    "TLSRefusedError",
    "TimeoutExpired",
    "UsageError",
    "Verification",
    "mirror",
    "rollback",
]
__version__ = "0.1.0"
