"""Every exception asyncmirror raises, in families that say what to do next.

The families answer the one question a caller has when something fails:

* :class:`UsageError` -- the input is wrong; fix the command line or SRC (exit 2).
* :class:`FatalError` -- the run cannot go on: the server cannot be reached, TLS
  cannot be trusted, the login is refused.  Retrying will not help (exit 3).
* :class:`RetryableError` -- this attempt failed but the next one may work: a 4xx
  reply, a cut connection, a timeout.  The scheduler retries these with backoff.
* :class:`PermanentReplyError` -- the server refused this one operation (5xx); the
  file fails, the run goes on (exit 1 at the end).

``ssl`` and ``OSError`` are mapped to these where they enter
(``transport.translate_errors``), and refusing replies by
``replies.reply_error``; nothing above the session layer sees them raw.  No
message built here ever contains the password: callers pass only hosts, paths
and server replies, and the replies to ``PASS`` are not echoed back by servers.
"""

from __future__ import annotations


class AsyncMirrorError(Exception):
    """Base of every asyncmirror error.  ``str(err)`` is one line for the user."""

    exit_code: int = 1
    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__

    def user_line(self) -> str:
        """The single line shown to the user: what is wrong, then what to do."""
        return f"{self.message}; {self.hint}" if self.hint else self.message


# --- the input is wrong -----------------------------------------------------------


class UsageError(AsyncMirrorError):
    """Bad options, a missing SRC, an unusable pattern: fix the input."""

    exit_code = 2


class LocalFileError(AsyncMirrorError):
    """One local file could not be read (or changed while it was read)."""

    exit_code = 1


# --- the run cannot go on -------------------------------------------------------


class FatalError(AsyncMirrorError):
    """The run cannot continue; retrying would not help."""

    exit_code = 3


class ConnectError(FatalError):
    """The server could not be reached at all (DNS, refused, unreachable)."""

    hint = "check the host name and port, and that the server accepts connections"


class TLSError(FatalError):
    """TLS could not be set up or the server's certificate is not trusted."""


class CertificateError(TLSError):
    """The server's certificate failed verification."""

    def __init__(self, message: str, *, fingerprint: str | None = None, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.fingerprint = fingerprint


class TLSRefusedError(TLSError):
    """The server refused ``AUTH TLS``; no credentials were sent."""

    hint = (
        "the server does not offer explicit FTPS (AUTH TLS); asyncmirror never logs in without TLS"
    )


class AuthError(FatalError):
    """The server refused the user name or password (530)."""

    hint = "check FTP_USERNAME and FTP_PASSWORD (or ~/.netrc)"


class TimeoutExpired(FatalError):
    """The overall ``--deadline`` for the run passed."""


class RemoteTargetError(FatalError):
    """DST cannot be used: it is a file, or the FTP user may not write there."""

    hint = "check DST: it must be a directory the FTP user may write to"


class PoolExhaustedError(FatalError):
    """No session could be kept open: the server refuses every connection."""


class LockHeldError(AsyncMirrorError):
    """Another run holds the deploy lock of this DST (exit 1: nothing was changed)."""

    exit_code = 1


# --- this attempt failed; another may work ---------------------------------------


class RetryableError(AsyncMirrorError):
    """A failure the scheduler retries with backoff before giving up on a file."""

    #: ``True`` when the control connection is no longer usable and must be replaced.
    broken_session: bool = False


class ReplyError(AsyncMirrorError):
    """Mixin for errors carrying an FTP reply."""

    def __init__(self, command: str, code: str, text: str) -> None:
        super().__init__(f"{command}: {code} {text}".strip())
        self.command = command
        self.code = code
        self.text = text

    @property
    def reply(self) -> str:
        return f"{self.code} {self.text}".strip()


class TransientReplyError(ReplyError, RetryableError):
    """A 4xx reply (425, 426, 450, 451, ...): try again later."""


class TooManyConnectionsError(ReplyError, RetryableError):
    """The host allows no more sessions: shrink the pool.

    ``421`` at connect or login, or a ``530`` at login once another session of
    the run has logged in (or whose text names a limit).
    """

    broken_session = True


class PermanentReplyError(ReplyError):
    """A 5xx reply to a file operation: this file fails, the run goes on."""

    exit_code = 1


class ServerFullError(ReplyError):
    """The server or the account's quota is out of space (452/552 to an upload).

    The run starts no more uploads -- each would fail the same way -- removes
    what it cut short and ends with exit 1.
    """

    exit_code = 1
    #: Said once for the run (in its note), not on every file's failure line.
    advice = "free space on the server (or raise the account's quota), then run again"


class NetworkError(RetryableError):
    """The connection was reset, closed or broke mid-operation."""

    broken_session = True


class OperationTimeout(RetryableError):
    """One network wait passed ``--timeout``: the session is dropped and replaced."""

    broken_session = True


class ProtocolError(RetryableError):
    """The server sent something that is not valid FTP; the session is dropped."""

    broken_session = True


class VerifyError(RetryableError):
    """The uploaded file's size on the server is not the local size."""


#: Said when a run logged in but no data connection ever worked: shared hosts
#: (Sakura's rental servers by default) refuse data connections, or STOR, from
#: addresses abroad -- a CI runner outside Japan, for one.
IP_FILTER_HINT = (
    "the login works but every data connection was refused: the host may filter data "
    "connections by client IP address (Sakura's foreign-IP filter is on by default); "
    "allow this machine's address in the host's control panel, or deploy from an "
    "allowed network"
)


def is_data_connection_failure(exc: AsyncMirrorError) -> bool:
    """True when ``exc`` is a data connection that could not be made or was refused."""
    if isinstance(exc, ReplyError):
        return exc.code == "425"
    return isinstance(exc, NetworkError | OperationTimeout) and exc.message.startswith(
        "data connection"
    )


class ScanStopped(Exception):
    """Internal, never shown: the local scan was told to stop because the run
    ended first (a refused login, a cancel).  ``kept`` entries had been found."""

    def __init__(self, kept: int) -> None:
        super().__init__(f"scan stopped after {kept} entries")
        self.kept = kept
