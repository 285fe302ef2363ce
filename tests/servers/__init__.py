"""Real servers for integration tests and benchmarks: ProFTPD and a FEAT-swallowing proxy."""

from .featsilent import FeatSilentProxy
from .proftpd import (
    INSTALL_HINT,
    ProftpdServer,
    ProftpdStartError,
    RemoteDir,
    TransferRecord,
    proftpd_available,
    proftpd_unavailable_reason,
    start_proftpd,
)

__all__ = [
    "INSTALL_HINT",
    "FeatSilentProxy",
    "ProftpdServer",
    "ProftpdStartError",
    "RemoteDir",
    "TransferRecord",
    "proftpd_available",
    "proftpd_unavailable_reason",
    "start_proftpd",
]
