"""Directory-listing lines (MLSD or LIST) -> :class:`~asyncmirror.entries.ListedEntry`.

Pure functions: the caller passes the lines, the current time and the server's
time zone; nothing here reads the clock, the locale or the network.

Every name that comes out has passed :func:`is_safe_name`.  Names come from the
server and are later joined into paths that we delete and overwrite, so a name
like ``..`` or ``a/../../b`` must never get through: such entries are dropped,
as if the server had not listed them.

Lines that cannot be parsed are dropped too (``None``), never guessed at: a
listing is advisory (a missing entry only costs a re-upload), while a wrongly
parsed name or kind could make us touch the wrong file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

from asyncmirror.entries import Kind, ListedEntry
from asyncmirror.errors import ProtocolError
from asyncmirror.replies import parse_mdtm

__all__ = ["is_safe_name", "parse_list_line", "parse_listing", "parse_mlsd_line"]

# The kinds as module names: on Python 3.11 ``Kind.FILE`` goes through
# ``EnumType.__getattr__`` (ten times a global's lookup), and these run once per
# listed name -- 100,000 of them in a large site.
_FILE, _DIR, _LINK, _OTHER = Kind.FILE, Kind.DIR, Kind.LINK, Kind.OTHER

# Control characters (C0, DEL and C1: Unicode category Cc) could forge log lines
# or terminal output (0x9b is a one-byte CSI), and a NUL or a newline can cut a
# path or a command line short.
_UNSAFE_CHARS_RE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")


def is_safe_name(name: str) -> bool:
    """True if ``name`` is a plain name inside its directory.

    Rejected: empty, ``.``, ``..``, any ``/``, any control character (C0, DEL,
    C1), and any backslash -- a Windows server treats ``\\`` as a separator, so
    ``a\\..\\..\\b`` could escape there.
    """
    if name in ("", ".", ".."):
        return False
    return _UNSAFE_CHARS_RE.search(name) is None


def _strip_eol(line: str) -> str:
    # Only the line terminator: spaces at either end may be part of a name.
    return line.rstrip("\r\n")


# --- MLSD (RFC 3659) ---------------------------------------------------------------


def _mlsd_kind(facts: dict[str, str]) -> Kind | None:
    """The kind from the facts; None for the ``cdir``/``pdir`` entries we skip."""
    kind = facts.get("type", "").lower()
    if kind in ("cdir", "pdir"):
        return None
    # Symlinks have no standard type; servers write type=OS.unix=slink:/target,
    # type=OS.unix=symlink, or a separate OS.unix=symlink fact.  Checked before
    # "file"/"dir": a link must never be mistaken for what it points to, since
    # we would then overwrite or delete through it.
    if kind.startswith(("os.unix=slink", "os.unix=symlink")) or kind in ("link", "symlink"):
        return _LINK
    if facts.get("os.unix", "").lower().startswith(("slink", "symlink")):
        return _LINK
    if kind == "file":
        return _FILE
    if kind == "dir":
        return _DIR
    return _OTHER


def parse_mlsd_line(line: str) -> ListedEntry | None:
    """One ``MLSD`` line (``fact=value;...; name``) -> an entry, or None to skip it."""
    line = _strip_eol(line)
    # The facts end with ";" and ONE space starts the name.  Splitting on the
    # first "; " (not the first space) keeps names with spaces or semicolons
    # intact and survives fact values with spaces in them (owner names).  A
    # line with no facts at all starts with the space.
    if line.startswith(" "):
        facts_text, name = "", line[1:]
    else:
        facts_text, sep, name = line.partition("; ")
        if not sep:
            return None
    if not is_safe_name(name):
        return None

    facts: dict[str, str] = {}
    for fact in facts_text.split(";"):
        key, eq, value = fact.partition("=")
        if eq:
            facts[key.strip().lower()] = value  # fact names are case-insensitive

    kind = _mlsd_kind(facts)
    if kind is None:
        return None
    target = _slink_target(facts) if kind is _LINK else None

    size: int | None = None
    if kind in (_FILE, _DIR):  # a link's or device's size says nothing useful
        raw_size = facts.get("size", facts.get("sizd", ""))
        if raw_size.isascii() and raw_size.isdigit():
            size = int(raw_size)

    mtime: float | None = None
    precision = 1.0  # whole seconds unless the server sends a fraction
    modify = facts.get("modify")
    if modify is not None:
        try:
            mtime = parse_mdtm(modify)
        except ProtocolError:
            mtime = None  # keep the entry: a bad time only means "compare by size"
        else:
            _, dot, fraction = modify.strip().partition(".")
            if dot and fraction:
                precision = 10.0 ** -len(fraction)
    return ListedEntry(
        name=name, kind=kind, size=size, mtime=mtime, precision=precision, target=target
    )


def _slink_target(facts: dict[str, str]) -> str | None:
    """The target in ``type=OS.unix=slink:/t`` (or ``OS.unix=slink:/t``), if shown."""
    for value in (facts.get("type", ""), facts.get("os.unix", "")):
        kind, colon, target = value.partition(":")
        if colon and target and kind.lower() in ("os.unix=slink", "slink"):
            return target
    return None


# --- LIST: Unix "ls -l" style ------------------------------------------------------

# Fixed English tables: servers print C-locale month names, and the process
# locale must not be changed to parse them.
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_MONTH_ALT = "|".join(_MONTHS)

# Anchored on what every variant shares: the mode at the start, and
# "size month day time-or-year" right before the name.  The columns between
# (link count, owner, group: any of them may be missing or numeric) are skipped
# lazily, so the first date in the line wins and the name may contain anything,
# even text that looks like a date.
_UNIX_RE = re.compile(
    r"(?P<type>[-a-zA-Z?])[-a-zA-Z?]{9}[+.@]?"  # mode, with ACL/SELinux/xattr marker
    r"\s+(?:.*?\s+)?"  # link count, owner, group
    r"(?P<size>[0-9]+,\s*[0-9]+|[0-9]+)"  # size, or "major, minor" for devices
    rf"\s+(?P<month>{_MONTH_ALT})\s+(?P<day>[0-9]{{1,2}})"
    r"\s+(?:(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})|(?P<year>[0-9]{4}))"
    r" (?P<name>.+)",  # exactly one space: more would be part of the name
    # DOTALL and fullmatch: a stray newline stays in the name (and gets it
    # rejected) instead of silently cutting the name short.
    re.IGNORECASE | re.ASCII | re.DOTALL,
)

_UNIX_KINDS = {"-": _FILE, "d": _DIR, "l": _LINK}

# ls prints "HH:MM" instead of the year for recent entries.  A timestamp up to a
# day ahead of our clock is still "this year": server clocks and zone settings
# are often off by hours.
_FUTURE_SLACK = timedelta(days=1)


def _infer_year(month: int, day: int, hour: int, minute: int, now: datetime, tz: tzinfo) -> float:
    """Epoch seconds of the most recent month/day/time not past ``now`` + slack."""
    limit = now + _FUTURE_SLACK
    # Start a year ahead (near New Year the server's local date may already be
    # in the next year) and go back far enough to find a Feb 29.
    this_year = now.astimezone(tz).year
    for year in range(this_year + 1, this_year - 9, -1):
        try:
            moment = datetime(year, month, day, hour, minute, tzinfo=tz)
        except ValueError:  # Feb 29 in a common year
            continue
        if moment <= limit:
            return moment.timestamp()
    raise ValueError(f"no year has {month:02d}-{day:02d}")


def _parse_unix(line: str, now: datetime, tz: tzinfo) -> ListedEntry | None:
    match = _UNIX_RE.fullmatch(line)
    if match is None:
        return None
    kind = _UNIX_KINDS.get(match["type"].lower(), _OTHER)
    name = match["name"]
    target: str | None = None
    if kind is _LINK:
        # "name -> target": ls has no escaping, so the first arrow is the best guess.
        name, arrow, target = name.partition(" -> ")
        target = target if arrow and target else None
    if not is_safe_name(name):
        return None

    size = int(match["size"]) if kind in (_FILE, _DIR) and "," not in match["size"] else None
    month = _MONTHS[match["month"].lower()]
    day = int(match["day"])
    try:
        if match["year"] is not None:
            mtime = datetime(int(match["year"]), month, day, tzinfo=tz).timestamp()
            precision = 86400.0
        else:
            hour, minute = int(match["hour"]), int(match["minute"])
            mtime = _infer_year(month, day, hour, minute, now, tz)
            precision = 60.0
    except (ValueError, OverflowError):  # "Feb 30", "25:00": not a real listing line
        return None
    return ListedEntry(
        name=name, kind=kind, size=size, mtime=mtime, precision=precision, target=target
    )


# --- LIST: DOS / IIS style ---------------------------------------------------------

# "01-05-24  12:34PM       1234 name" or "... <DIR>          name".  IIS can also
# be set to four-digit years and a 24-hour clock.
_DOS_RE = re.compile(
    r"(?P<month>[0-9]{1,2})[-/](?P<day>[0-9]{1,2})[-/](?P<year>[0-9]{4}|[0-9]{2})"
    r"\s+(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})\s*(?P<ampm>[AP]M)?"
    r"\s+(?:(?P<dir><DIR>)|(?P<size>[0-9]+))"
    r"\s+(?P<name>.+)",  # Windows names cannot usefully start with a space
    re.IGNORECASE | re.ASCII | re.DOTALL,
)


def _parse_dos(line: str, tz: tzinfo) -> ListedEntry | None:
    match = _DOS_RE.fullmatch(line)
    if match is None:
        return None
    name = match["name"]
    if not is_safe_name(name):
        return None
    year = int(match["year"])
    if len(match["year"]) == 2:
        year += 2000 if year < 69 else 1900  # the POSIX %y pivot
    hour, minute = int(match["hour"]), int(match["minute"])
    ampm = (match["ampm"] or "").upper()
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "PM" else 0)
    try:
        mtime = datetime(year, int(match["month"]), int(match["day"]), hour, minute, tzinfo=tz)
    except ValueError:
        return None
    if match["dir"] is not None:
        return ListedEntry(name=name, kind=_DIR, size=None, mtime=mtime.timestamp(), precision=60.0)
    return ListedEntry(
        name=name, kind=_FILE, size=int(match["size"]), mtime=mtime.timestamp(), precision=60.0
    )


def parse_list_line(line: str, *, now: datetime, tz: tzinfo) -> ListedEntry | None:
    """One ``LIST`` line (Unix ``ls -l`` or DOS/IIS style) -> an entry, or None to skip it.

    Times in LIST are the server's local time: ``tz`` is that zone.  ``now``
    (aware; naive is taken as UTC) decides the year of recent entries, which
    ``ls`` prints without one.
    """
    line = _strip_eol(line)
    if now.tzinfo is None or now.utcoffset() is None:
        now = now.replace(tzinfo=UTC)
    if line[:1].isdigit():
        return _parse_dos(line, tz)
    if line.lower().startswith("total"):  # "total 12": the block count, not an entry
        return None
    return _parse_unix(line, now, tz)


def parse_listing(
    lines: Iterable[str],
    *,
    fmt: Literal["mlsd", "list"],
    now: datetime,
    tz: tzinfo,
) -> list[ListedEntry]:
    """Parse a whole listing; skipped lines (headers, ``.``/``..``, garbage) are left out."""
    if fmt == "mlsd":
        parsed = (parse_mlsd_line(line) for line in lines)
    elif fmt == "list":
        parsed = (parse_list_line(line, now=now, tz=tz) for line in lines)
    else:
        raise ValueError(f"unknown listing format {fmt!r}")
    return [entry for entry in parsed if entry is not None]


def parse_mlst_reply(lines: Sequence[str]) -> ListedEntry | None:
    """The facts of a ``250`` reply to ``MLST path``; ``None`` when there are none.

    RFC 3659 puts the facts on a line of their own that starts with a space,
    followed by the path we asked for (which we know already, so the name in
    the result is a placeholder).
    """
    for line in lines:
        if line.startswith(" ") and "=" in line:
            facts, sep, _ = line[1:].partition("; ")
            if sep:
                return parse_mlsd_line(f"{facts}; entry")
    return None
