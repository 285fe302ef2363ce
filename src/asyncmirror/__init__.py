"""asyncmirror: mirror a directory tree to an FTPS server, fast and safely.

``await mirror(src, dst, host=..., user=..., password=...)`` returns a
:class:`Report`; the error families are re-exported here.
"""

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
from .mirror import mirror
from .report import Events, Failure, Report

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
    "mirror",
]
__version__ = "0.1.0"
