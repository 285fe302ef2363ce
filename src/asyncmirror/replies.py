"""FTP control-channel replies (RFC 959) and the values carried inside them.

Pure functions only: no sockets, no clock.  The transport feeds decoded lines in
and gets :class:`Reply` objects out; the session layer picks values (addresses,
sizes, times) out of reply texts with the ``parse_*`` helpers.  Anything a
server sends that is not valid FTP raises :class:`~asyncmirror.errors.ProtocolError`,
which drops the session: a peer that garbles one reply cannot be trusted with
the next.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from . import errors
from .errors import ProtocolError

__all__ = [
    "MAX_REPLY_LINES",
    "Reply",
    "ReplyReader",
    "format_mfmt",
    "is_connection_limit",
    "mask_command",
    "parse_epsv",
    "parse_mdtm",
    "parse_pasv",
    "parse_pwd",
    "parse_size",
    "reply_error",
]

# A reply line starts with three ASCII digits (the first 1-5), then a space, a
# dash, or nothing at all ("220" alone is seen in the wild).  ``[0-9]`` rather
# than ``\d`` because ``\d`` also matches non-ASCII digits.
_START_RE = re.compile(r"([1-5][0-9][0-9])([ -]|$)")

# A hostile or broken server must not make us buffer without bound while we
# wait for the end of a multi-line reply.  Real replies (FEAT, HELP, STAT) are
# a few dozen lines.
MAX_REPLY_LINES = 10_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _show(line: str) -> str:
    """A bounded, printable rendering of server text for error messages."""
    return repr(line if len(line) <= 80 else line[:77] + "...")


class Reply(NamedTuple):
    """One complete reply: its code and the message text of each of its lines.

    ``lines`` holds the text only: the code and the separator after it are
    removed from the first and last lines (and from middle lines that repeat
    the code with a dash, as ProFTPD does); other middle lines are kept as sent.
    """

    code: str
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """All the message text on one line, for logs and error messages."""
        return " / ".join(part for part in (line.strip() for line in self.lines) if part)

    @property
    def kind(self) -> int:
        """The first digit of the code: 1 preliminary ... 5 permanent failure."""
        return int(self.code[0])

    @property
    def is_preliminary(self) -> bool:
        return self.kind == 1

    @property
    def is_complete(self) -> bool:
        return self.kind == 2

    @property
    def is_intermediate(self) -> bool:
        return self.kind == 3

    @property
    def is_transient(self) -> bool:
        return self.kind == 4

    @property
    def is_permanent(self) -> bool:
        return self.kind == 5


class ReplyReader:
    """Assembles replies from control-channel lines, one line at a time.

    Incremental so the transport can own the reading (and its timeouts) and this
    class owns only the grammar.
    """

    __slots__ = ("_code", "_lines")

    def __init__(self) -> None:
        self._code: str | None = None  # set while inside a multi-line reply
        self._lines: list[str] = []

    @property
    def pending(self) -> bool:
        """True while a multi-line reply has started but not ended.

        Lets the caller tell a clean EOF from a connection cut mid-reply.
        """
        return self._code is not None

    def feed_line(self, line: str) -> Reply | None:
        """Take one line (without CRLF); return the reply it completes, if any."""
        line = line.rstrip("\r\n")  # tolerate a caller that left the terminator on
        if self._code is None:
            return self._start(line)
        return self._continue(self._code, line)

    def _start(self, line: str) -> Reply | None:
        match = _START_RE.match(line)
        if match is None:
            raise ProtocolError(f"malformed FTP reply line {_show(line)}")
        code, sep = match.groups()
        text = line[4:]
        if sep == "-":
            self._code = code
            self._lines = [text]
            return None
        return Reply(code, (text,))

    def _continue(self, code: str, line: str) -> Reply | None:
        # RFC 959: only "<same code><space>" ends the reply; anything else,
        # including other codes, is content.  A bare "<code>" is also accepted
        # as the end, the multi-line twin of the bare single-line form.
        if line.startswith(code) and line[3:4] in (" ", ""):
            self._lines.append(line[4:])
            reply = Reply(code, tuple(self._lines))
            self._code = None
            self._lines = []
            return reply
        if line.startswith(code + "-"):
            line = line[4:]
        self._lines.append(line)
        if len(self._lines) > MAX_REPLY_LINES:
            self._code = None
            self._lines = []
            raise ProtocolError(f"multi-line {code} reply longer than {MAX_REPLY_LINES} lines")
        return None


# --- values inside replies ---------------------------------------------------------

# Six comma-separated numbers, not part of a longer run of numbers.  Found
# anywhere in the text because servers disagree on the parentheses.
_PASV_RE = re.compile(
    r"(?<![0-9,])([0-9]+)" + r"\s*,\s*([0-9]+)" * 5 + r"(?![0-9])(?!\s*,\s*[0-9])"
)


def parse_pasv(text: str) -> tuple[str, int]:
    """``Entering Passive Mode (h1,h2,h3,h4,p1,p2).`` -> ``("h1.h2.h3.h4", port)``.

    The host is returned as the server sent it (it may be ``0.0.0.0`` or a
    private address behind NAT); whether to use it is the caller's decision.
    """
    match = _PASV_RE.search(text)
    if match is None:
        raise ProtocolError(f"no address in PASV reply {_show(text)}")
    numbers = [int(group) for group in match.groups()]
    if any(n > 255 for n in numbers):
        raise ProtocolError(f"number out of range in PASV reply {_show(text)}")
    port = numbers[4] * 256 + numbers[5]
    if port == 0:
        raise ProtocolError(f"port 0 in PASV reply {_show(text)}")
    return ".".join(str(n) for n in numbers[:4]), port


# RFC 2428: (<d><d><d><port><d>) where <d> is any printable ASCII character; a
# digit as delimiter would make the port ambiguous, so it is not allowed.
_EPSV_RE = re.compile(r"([!-/:-~])\1\1([0-9]{1,5})\1")


def parse_epsv(text: str) -> int:
    """``Entering Extended Passive Mode (|||6446|)`` -> ``6446``."""
    match = _EPSV_RE.search(text)
    if match is None:
        raise ProtocolError(f"no port in EPSV reply {_show(text)}")
    port = int(match.group(2))
    if not 0 < port <= 65535:
        raise ProtocolError(f"port out of range in EPSV reply {_show(text)}")
    return port


def parse_pwd(text: str) -> str:
    """``"/the/dir" is current directory`` -> ``/the/dir`` (``""`` is a literal quote)."""
    stripped = text.lstrip()
    if not stripped.startswith('"'):
        raise ProtocolError(f"no quoted directory in PWD reply {_show(text)}")
    chars: list[str] = []
    i = 1
    while i < len(stripped):
        char = stripped[i]
        if char == '"':
            if stripped[i + 1 : i + 2] == '"':  # RFC 959 appendix II: doubled quote
                chars.append('"')
                i += 2
                continue
            path = "".join(chars)
            if not path:
                raise ProtocolError(f"empty directory in PWD reply {_show(text)}")
            return path
        chars.append(char)
        i += 1
    raise ProtocolError(f"unterminated directory in PWD reply {_show(text)}")


_SIZE_RE = re.compile(r"[0-9]+")


def parse_size(text: str) -> int:
    """The text of a ``213`` reply to ``SIZE`` -> the size in bytes."""
    value = text.strip()
    if not _SIZE_RE.fullmatch(value):
        raise ProtocolError(f"malformed SIZE reply {_show(text)}")
    return int(value)


# RFC 3659 time-val: YYYYMMDDHHMMSS with optional fraction, always UTC.
_TIME_VAL_RE = re.compile(
    r"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})(?:\.([0-9]+))?"
)


def parse_mdtm(text: str) -> float:
    """The text of a ``213`` reply to ``MDTM`` (``YYYYMMDDHHMMSS[.sss]``, UTC) -> epoch seconds."""
    value = text.strip()
    match = _TIME_VAL_RE.fullmatch(value)
    if match is None:
        raise ProtocolError(f"malformed time value {_show(text)}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = match.group(7)
    if second == 60:  # RFC 3659 allows a leap second; datetime does not
        second = 59
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise ProtocolError(f"invalid time value {_show(text)}") from None
    seconds = float((moment - _EPOCH) // timedelta(seconds=1))
    if fraction:
        seconds += float("0." + fraction)
    return seconds


def format_mfmt(ts: float) -> str:
    """Epoch seconds -> ``YYYYMMDDHHMMSS`` in UTC for ``MFMT``, sub-seconds truncated.

    Truncated (floored), not rounded: rounding up could put the remote file a
    second *newer* than the local one.
    """
    if not math.isfinite(ts):
        raise ValueError(f"not a finite timestamp: {ts!r}")
    # Epoch plus timedelta rather than fromtimestamp(): works for any year on
    # every platform, and never consults the local zone.
    moment = _EPOCH + timedelta(seconds=math.floor(ts))
    return (
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d}"
        f"{moment.hour:02d}{moment.minute:02d}{moment.second:02d}"
    )


def mask_command(line: str) -> str:
    """The command line as safe to log: the argument of ``PASS`` is hidden."""
    word = line.split(maxsplit=1)[0] if line.strip() else ""
    if word.upper() == "PASS":
        return f"{word} ****"
    return line


# How servers word a refused login that is a connection limit, not bad credentials:
# ProFTPD "Sorry, the maximum number of clients (3) for this user are already
# connected", vsftpd "There are too many connected users", pure-ftpd "Too many
# connections", IIS/FileZilla "Too many users" / "connection limit".
_LIMIT_RE = re.compile(
    r"maximum number of (clients|connections|users|sessions)"
    r"|too many (connections|connected|users|clients|sessions|logins)"
    r"|(connection|session|client|login)s? limit"
    r"|limit of \d+ (connections|clients|users|sessions)",
    re.IGNORECASE,
)


def is_connection_limit(text: str) -> bool:
    """True when a login refusal's text says the host allows no more sessions."""
    return _LIMIT_RE.search(text) is not None


# How servers word a full disk or an exhausted quota in a reply to STOR or to its
# transfer: ProFTPD "No space left on device" / mod_quotatab "Disk quota exceeded",
# vsftpd "Failure writing to local file", pure-ftpd "Quota exceeded", IIS "There is
# not enough space on the disk".  RFC 959's codes for it are 452 and 552; 552 is
# also used for "file too large" limits, which are about one file, not the disk.
_FULL_RE = re.compile(
    r"no space|not enough (disk )?space|disk full|out of (disk )?space"
    r"|quota (exceeded|reached|full)|(over|exceeds?( the)?) quota"
    r"|insufficient (disk |storage )?space|storage allocation",
    re.IGNORECASE,
)
_ONE_FILE_RE = re.compile(r"too (large|big)|file size|size limit", re.IGNORECASE)


def is_out_of_space(code: str, text: str) -> bool:
    """True when a reply to an upload says the server or the account is out of space."""
    if _FULL_RE.search(text):
        return True
    return code in ("452", "552") and not _ONE_FILE_RE.search(text)


def reply_error(command: str, reply: Reply) -> errors.AsyncMirrorError:
    """The error that ``reply``, refusing ``command``, means (to raise; never the password).

    ``421`` is the host closing on us (a connection limit, or going down): shrink
    the pool.  Out of space only counts for uploads.  A code that is not a
    refusal here (a 1xx, 2xx or 3xx where another was owed) is a protocol error.
    Where ``broken_session`` is set, the connection cannot be used again.
    """
    command = mask_command(command)
    if reply.code == "421":
        return errors.TooManyConnectionsError(command, reply.code, reply.text)
    verb = command.split(" ", 1)[0].upper()
    if verb in ("STOR", "APPE") and is_out_of_space(reply.code, reply.text):
        return errors.ServerFullError(command, reply.code, reply.text)
    if reply.is_transient:
        return errors.TransientReplyError(command, reply.code, reply.text)
    if reply.is_permanent:
        return errors.PermanentReplyError(command, reply.code, reply.text)
    return ProtocolError(f"{command}: unexpected reply {reply.code} {reply.text}")
