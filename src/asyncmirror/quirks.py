"""What a run learns about the server by trying, shared by all its sessions.

FEAT is never sent (the reference shared host swallows it before ``AUTH TLS``),
so whether the server knows EPSV, MLSD, MLST, MFMT or a digest command is found
out by the first session that tries, and remembered here for the others.  One
object per run (``pool.quirks``), written only by the code that tries (and by
the login, which knows ProFTPD by its greeting: ``passive_ahead``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .remotedigest import DigestMethod


class ServerQuirks:
    """``None`` means not tried yet; ``True``/``False`` what the trying found."""

    def __init__(self) -> None:
        self.epsv: bool | None = None
        self.mlsd: bool | None = None
        self.mlst: bool | None = None
        #: May the next EPSV/PASV go out ahead of a transfer's 226?  Only where
        #: measured safe: ProFTPD answers one that arrives mid-transfer with
        #: 450 and nothing else; pyftpdlib acts on it and stalls the transfer.
        self.passive_ahead = False
        self.mtime_command: str | None = None  # "MFMT", "SITE UTIME" or "" (none works)
        #: How file digests are asked for (--verify, --checksum); DOWNLOAD: no command.
        self.digest: DigestMethod | None = None
        #: The login's home directory (``PWD`` right after the login, asked once).
        self.home: str | None = None
