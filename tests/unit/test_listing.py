"""Directory-listing parsing: MLSD and LIST lines from real servers, pure and table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from asyncmirror.entries import Kind, ListedEntry
from asyncmirror.listing import is_safe_name, parse_list_line, parse_listing, parse_mlsd_line

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: tzinfo = UTC) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=tz).timestamp()


# --- is_safe_name ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("file.txt", True),
        ("with space", True),
        (" leading and trailing ", True),
        ("-rf", True),
        ("a;b", True),
        ("ünïcødé ファイル", True),
        ("...", True),
        (".hidden", True),
        ("", False),
        (".", False),
        ("..", False),
        ("a/b", False),
        ("/", False),
        ("a\\..\\b", False),
        ("nul\0byte", False),
        ("new\nline", False),
        ("carriage\r", False),
        ("tab\there", False),
        ("esc\x1b[31m", False),
        ("del\x7f", False),
        ("c1-csi\x9b2J", False),
        ("c1-nel\x85", False),
        ("latin-1 \xa0nbsp é", True),
        ("undecodable \udcff", True),
    ],
)
def test_is_safe_name(name: str, safe: bool) -> None:
    assert is_safe_name(name) is safe


# --- MLSD --------------------------------------------------------------------------

MOD = ts(2024, 11, 28, 1, 54)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            "modify=20241128015400;perm=adfrw;size=1024;type=file;unique=FE03U2A0E2;"
            "UNIX.group=65534;UNIX.mode=0644;UNIX.owner=65534; my file.txt",
            ListedEntry("my file.txt", Kind.FILE, 1024, MOD, 1.0),
            id="proftpd-file",
        ),
        pytest.param(
            "modify=20241128015400;perm=flcdmpe;type=dir;unique=FE03U2A0E3;UNIX.group=0;"
            "UNIX.mode=0755;UNIX.owner=0; sub dir",
            ListedEntry("sub dir", Kind.DIR, None, MOD, 1.0),
            id="proftpd-dir",
        ),
        pytest.param(
            "modify=20241128015400;perm=adfrw;size=7;type=OS.unix=slink:/etc/passwd;"
            "unique=1U2;UNIX.mode=0777; link",
            ListedEntry("link", Kind.LINK, None, MOD, 1.0, target="/etc/passwd"),
            id="proftpd-symlink",
        ),
        pytest.param(
            "type=file;size=156;perm=r;modify=20241128015400;unique=8012; music.mp3",
            ListedEntry("music.mp3", Kind.FILE, 156, MOD, 1.0),
            id="pyftpdlib-file",
        ),
        pytest.param(
            "type=dir;perm=elc;modify=20241128015400;unique=8013; docs",
            ListedEntry("docs", Kind.DIR, None, MOD, 1.0),
            id="pyftpdlib-dir",
        ),
        pytest.param(
            "Type=file;Size=3;Modify=20241128015400.123; x",
            ListedEntry("x", Kind.FILE, 3, MOD + 0.123, 0.001),
            id="case-insensitive-fraction",
        ),
        pytest.param(
            "type=file;size=3;modify=20241128015400.5; y",
            ListedEntry("y", Kind.FILE, 3, MOD + 0.5, 0.1),
            id="one-digit-fraction",
        ),
        pytest.param(
            "type=dir;sizd=4096;modify=20241128015400; d",
            ListedEntry("d", Kind.DIR, 4096, MOD, 1.0),
            id="sizd",
        ),
        pytest.param(
            "type=OS.unix=symlink;modify=20241128015400; l",
            ListedEntry("l", Kind.LINK, None, MOD, 1.0),
            id="os-unix-symlink-type",
        ),
        pytest.param(
            "type=file;OS.unix=symlink;size=3; l2",
            ListedEntry("l2", Kind.LINK, None, None, 1.0),
            id="os-unix-symlink-fact",
        ),
        pytest.param(
            "type=OS.unix=chr-1/3;modify=20241128015400; null",
            ListedEntry("null", Kind.OTHER, None, MOD, 1.0),
            id="device",
        ),
        pytest.param(
            "type=file;size=1; a; b ;c",
            ListedEntry("a; b ;c", Kind.FILE, 1, None, 1.0),
            id="semicolons-in-name",
        ),
        pytest.param(
            "type=file;size=1;  two leading spaces",
            ListedEntry(" two leading spaces", Kind.FILE, 1, None, 1.0),
            id="leading-space-in-name",
        ),
        pytest.param(
            "type=file;size=1; -rf",
            ListedEntry("-rf", Kind.FILE, 1, None, 1.0),
            id="leading-dash",
        ),
        pytest.param(
            "type=file;size=9;modify=20241128015400; naïve ファイル.txt",
            ListedEntry("naïve ファイル.txt", Kind.FILE, 9, MOD, 1.0),
            id="utf8",
        ),
        pytest.param(
            "type=file;size=1;UNIX.ownername=John Smith; owned",
            ListedEntry("owned", Kind.FILE, 1, None, 1.0),
            id="space-in-fact-value",
        ),
        pytest.param(
            "type=file;size=big;modify=yesterday; bad facts",
            ListedEntry("bad facts", Kind.FILE, None, None, 1.0),
            id="bad-values-kept-as-unknown",
        ),
        pytest.param(
            "type=file;size=5;modify=20241128015400; inner\rcr",
            None,
            id="cr-inside-name",
        ),
        pytest.param(
            "type=file;size=5;modify=20241128015400; eol\r\n",
            ListedEntry("eol", Kind.FILE, 5, MOD, 1.0),
            id="crlf-stripped",
        ),
        pytest.param(
            " no facts", ListedEntry("no facts", Kind.OTHER, None, None, 1.0), id="no-facts"
        ),
    ],
)
def test_parse_mlsd_line(line: str, expected: ListedEntry | None) -> None:
    assert parse_mlsd_line(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "type=cdir;modify=20241128015400; /home/user",
        "type=cdir;modify=20241128015400; .",
        "type=pdir;modify=20241128015400; ..",
        "type=dir;modify=20241128015400; ..",
        "type=dir;modify=20241128015400; .",
        "type=file;size=1; a/b",
        "type=file;size=1; ../../etc/passwd",
        "type=file;size=1; evil\x1b[2J",
        "type=file;size=1; nul\0",
        "type=file;size=1; evil\nname",
        "type=file;size=1; ",
        "type=file;size=1;",
        "type=file;size=1",
        "",
        "garbage without facts separator",
    ],
)
def test_parse_mlsd_line_skips(line: str) -> None:
    assert parse_mlsd_line(line) is None


# --- LIST: Unix --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            "-rw-r--r--   1 user     group        1234 Jan  5 12:34 name with spaces",
            ListedEntry("name with spaces", Kind.FILE, 1234, ts(2024, 1, 5, 12, 34), 60.0),
            id="proftpd",
        ),
        pytest.param(
            "drwxr-xr-x   2 user     group        4096 Jan  5  2023 old dir",
            ListedEntry("old dir", Kind.DIR, 4096, ts(2023, 1, 5), 86400.0),
            id="proftpd-year",
        ),
        pytest.param(
            "-rw-r--r--    1 1000     1000          123 Mar 09 08:07 vsftpd.txt",
            ListedEntry("vsftpd.txt", Kind.FILE, 123, ts(2024, 3, 9, 8, 7), 60.0),
            id="vsftpd-numeric",
        ),
        pytest.param(
            "-rw-r--r--    1 1000       1000              123 Jun 15 11:00 pure.txt",
            ListedEntry("pure.txt", Kind.FILE, 123, ts(2024, 6, 15, 11, 0), 60.0),
            id="pure-ftpd",
        ),
        pytest.param(
            "-rw-rw-rw-   1 owner    group         5550 Feb 10 09:30 py.txt",
            ListedEntry("py.txt", Kind.FILE, 5550, ts(2024, 2, 10, 9, 30), 60.0),
            id="pyftpdlib",
        ),
        pytest.param(
            "-rw-rw-rw-   1 owner    group         5550 Nov 01  2022 pyold.txt",
            ListedEntry("pyold.txt", Kind.FILE, 5550, ts(2022, 11, 1), 86400.0),
            id="pyftpdlib-year",
        ),
        pytest.param(
            "-rw-r--r--   1 user  1234 Jan  5 12:34 nogroup",
            ListedEntry("nogroup", Kind.FILE, 1234, ts(2024, 1, 5, 12, 34), 60.0),
            id="missing-group",
        ),
        pytest.param(
            "-rw-r--r-- 1234 Jan  5 12:34 nothing",
            ListedEntry("nothing", Kind.FILE, 1234, ts(2024, 1, 5, 12, 34), 60.0),
            id="missing-owner-and-group",
        ),
        pytest.param(
            "-rw-r--r--+  1 user group 10 Jan  5 12:34 acl",
            ListedEntry("acl", Kind.FILE, 10, ts(2024, 1, 5, 12, 34), 60.0),
            id="acl-marker",
        ),
        pytest.param(
            "-rw-r--r--.  1 user group 10 Jan  5 12:34 selinux",
            ListedEntry("selinux", Kind.FILE, 10, ts(2024, 1, 5, 12, 34), 60.0),
            id="selinux-marker",
        ),
        pytest.param(
            "lrwxrwxrwx   1 user group 11 Jan  5 12:34 link name -> ../target",
            ListedEntry(
                "link name", Kind.LINK, None, ts(2024, 1, 5, 12, 34), 60.0, target="../target"
            ),
            id="symlink",
        ),
        pytest.param(
            "crw-rw-rw-   1 root     root       1,   3 Jan  5 12:34 null",
            ListedEntry("null", Kind.OTHER, None, ts(2024, 1, 5, 12, 34), 60.0),
            id="char-device",
        ),
        pytest.param(
            "brw-rw----   1 root disk 8, 0 Jan  5  2023 sda",
            ListedEntry("sda", Kind.OTHER, None, ts(2023, 1, 5), 86400.0),
            id="block-device",
        ),
        pytest.param(
            "prw-r--r--   1 user group 0 Jan  5 12:34 fifo",
            ListedEntry("fifo", Kind.OTHER, None, ts(2024, 1, 5, 12, 34), 60.0),
            id="fifo",
        ),
        pytest.param(
            "-rw-r--r--   1 user group 1 Jan  5 12:34 Feb  3 10:00 looks like a date",
            ListedEntry(
                "Feb  3 10:00 looks like a date", Kind.FILE, 1, ts(2024, 1, 5, 12, 34), 60.0
            ),
            id="date-like-name",
        ),
        pytest.param(
            "-rw-r--r--   1 user group 1 Jan  5 12:34  leading space ",
            ListedEntry(" leading space ", Kind.FILE, 1, ts(2024, 1, 5, 12, 34), 60.0),
            id="leading-trailing-spaces",
        ),
        pytest.param(
            "-rw-r--r--   1 user group 1 jan  5 12:34 -rf",
            ListedEntry("-rf", Kind.FILE, 1, ts(2024, 1, 5, 12, 34), 60.0),
            id="leading-dash-lowercase-month",
        ),
        pytest.param(
            "-rw-r--r--   1 user group 9 Jan  5 12:34 naïve ファイル;x.txt",
            ListedEntry("naïve ファイル;x.txt", Kind.FILE, 9, ts(2024, 1, 5, 12, 34), 60.0),
            id="utf8-semicolon",
        ),
        pytest.param(
            "-rw-r--r--   1 user group 9 Jan  5 12:34 eol\r\n",
            ListedEntry("eol", Kind.FILE, 9, ts(2024, 1, 5, 12, 34), 60.0),
            id="crlf",
        ),
        pytest.param(
            "-rw-r--r--   1 user group 9 Jun 16 11:00 tomorrow",
            ListedEntry("tomorrow", Kind.FILE, 9, ts(2024, 6, 16, 11, 0), 60.0),
            id="less-than-a-day-ahead",
        ),
        pytest.param(
            "-rw-r--r--   1 user group 9 Jun 17 12:00 two days ahead",
            ListedEntry("two days ahead", Kind.FILE, 9, ts(2023, 6, 17, 12, 0), 60.0),
            id="more-than-a-day-ahead-is-last-year",
        ),
    ],
)
def test_parse_list_line_unix(line: str, expected: ListedEntry) -> None:
    assert parse_list_line(line, now=NOW, tz=UTC) == expected


@pytest.mark.parametrize(
    ("now", "line", "expected"),
    [
        pytest.param(
            datetime(2024, 1, 2, 9, 0, tzinfo=UTC),
            "-rw-r--r-- 1 u g 1 Dec 31 23:00 f",
            ts(2023, 12, 31, 23, 0),
            id="new-year-previous-year",
        ),
        pytest.param(
            datetime(2024, 1, 2, 9, 0, tzinfo=UTC),
            "-rw-r--r-- 1 u g 1 Jan  1 00:10 f",
            ts(2024, 1, 1, 0, 10),
            id="new-year-this-year",
        ),
        pytest.param(
            datetime(2023, 12, 31, 23, 50, tzinfo=UTC),
            "-rw-r--r-- 1 u g 1 Jan  1 00:10 f",
            ts(2024, 1, 1, 0, 10),
            id="server-already-in-next-year",
        ),
        pytest.param(
            datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
            "-rw-r--r-- 1 u g 1 Feb 29 10:00 f",
            ts(2024, 2, 29, 10, 0),
            id="feb-29-previous-leap-year",
        ),
        pytest.param(
            datetime(2024, 1, 2, 9, 0),
            "-rw-r--r-- 1 u g 1 Dec 31 23:00 f",
            ts(2023, 12, 31, 23, 0),
            id="naive-now-is-utc",
        ),
    ],
)
def test_list_year_inference(now: datetime, line: str, expected: float) -> None:
    entry = parse_list_line(line, now=now, tz=UTC)
    assert entry is not None
    assert entry.mtime == expected


TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.mark.parametrize(
    ("line", "now", "expected"),
    [
        pytest.param(
            "-rw-r--r-- 1 u g 1 Jan  5 12:34 f",
            NOW,
            ts(2024, 1, 5, 3, 34),
            id="hhmm",
        ),
        pytest.param(
            "-rw-r--r-- 1 u g 1 Jan  5  2023 f",
            NOW,
            ts(2023, 1, 4, 15, 0),
            id="year",
        ),
        pytest.param(
            "01-05-24  12:34PM       1 f",
            NOW,
            ts(2024, 1, 5, 3, 34),
            id="dos",
        ),
        pytest.param(
            # 00:30 on Jan 1 in Tokyo is still Dec 31 in UTC: the year comes from
            # the server's calendar, not ours.
            "-rw-r--r-- 1 u g 1 Jan  1 00:30 f",
            datetime(2023, 12, 31, 16, 0, tzinfo=UTC),
            ts(2023, 12, 31, 15, 30),
            id="year-from-server-calendar",
        ),
    ],
)
def test_list_timezone(line: str, now: datetime, expected: float) -> None:
    entry = parse_list_line(line, now=now, tz=TOKYO)
    assert entry is not None
    assert entry.mtime == expected
    # The same wall-clock time read as UTC is 9 hours later.
    in_utc = parse_list_line(line, now=now, tz=UTC)
    assert in_utc is not None
    assert in_utc.mtime is not None
    assert in_utc.mtime - expected == timedelta(hours=9).total_seconds()


# --- LIST: DOS / IIS ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            "01-05-24  12:34PM       1234 name",
            ListedEntry("name", Kind.FILE, 1234, ts(2024, 1, 5, 12, 34), 60.0),
            id="iis-file",
        ),
        pytest.param(
            "01-05-24  12:34AM       <DIR>          dir name",
            ListedEntry("dir name", Kind.DIR, None, ts(2024, 1, 5, 0, 34), 60.0),
            id="iis-dir-midnight",
        ),
        pytest.param(
            "11-30-98  03:21PM                 1234 old.txt",
            ListedEntry("old.txt", Kind.FILE, 1234, ts(1998, 11, 30, 15, 21), 60.0),
            id="iis-1900s",
        ),
        pytest.param(
            "02-14-2024  15:21               99 four digit year.txt",
            ListedEntry("four digit year.txt", Kind.FILE, 99, ts(2024, 2, 14, 15, 21), 60.0),
            id="iis-24h-4digit",
        ),
        pytest.param(
            "06-01-24  11:59am       0 lower;case.txt",
            ListedEntry("lower;case.txt", Kind.FILE, 0, ts(2024, 6, 1, 11, 59), 60.0),
            id="iis-lowercase-ampm",
        ),
    ],
)
def test_parse_list_line_dos(line: str, expected: ListedEntry) -> None:
    assert parse_list_line(line, now=NOW, tz=UTC) == expected


# --- LIST: skipped lines -----------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "total 12",
        "total 0",
        "",
        "drwxr-xr-x   2 user group 4096 Jan  5 12:34 .",
        "drwxr-xr-x   2 user group 4096 Jan  5 12:34 ..",
        "lrwxrwxrwx   1 user group 4096 Jan  5 12:34 .. -> /",
        "-rw-r--r--   1 user group 1 Jan  5 12:34 a/b",
        "-rw-r--r--   1 user group 1 Jan  5 12:34 bell\x07",
        "-rw-r--r--   1 user group 1 Jan  5 12:34 del\x7f",
        "-rw-r--r--   1 user group 1 Jan  5 12:34 evil\nname",
        "01-05-24  12:34PM       1 evil\nname",
        "-rw-r--r--   1 user group 1 Jan  5 12:34 a\\..\\..\\b",
        "-rw-r--r--   1 user group 1 Jan  5 12:34 ",
        "-rw-r--r--   1 user group 1 Foo  5 12:34 bad month",
        "-rw-r--r--   1 user group 1 Feb 30 12:34 bad day",
        "-rw-r--r--   1 user group 1 Jan  5 25:99 bad time",
        "-rw-r--r--   1 user group 1 Jan  5  2023",
        "-rw-r--r--   1 user group Jan  5 12:34 no size",
        "-rw-r--r--   1 user group 1 5 Jan 12:34 day first",
        "01-05-24  12:34PM       <DIR>          ..",
        "13-05-24  12:34PM       1 bad month",
        "01-05-24  13:34PM       1 bad hour",
        "01-05-24  12:34PM       1 a/b",
        "ls: cannot open directory .: Permission denied",
        "Mar  1 12:00 no mode",
    ],
)
def test_parse_list_line_skips(line: str) -> None:
    assert parse_list_line(line, now=NOW, tz=UTC) is None


# --- parse_listing -----------------------------------------------------------------


def test_parse_listing_list() -> None:
    lines = [
        "total 8",
        "drwxr-xr-x   2 user group 4096 Jan  5 12:34 .",
        "drwxr-xr-x   2 user group 4096 Jan  5 12:34 ..",
        "-rw-r--r--   1 user group 1 Jan  5 12:34 a",
        "drwxr-xr-x   2 user group 4096 Jan  5 12:34 d",
        "lrwxrwxrwx   1 user group 1 Jan  5 12:34 l -> a",
        "-rw-r--r--   1 user group 1 Jan  5 12:34 ../escape",
    ]
    entries = parse_listing(lines, fmt="list", now=NOW, tz=UTC)
    assert [(e.name, e.kind) for e in entries] == [
        ("a", Kind.FILE),
        ("d", Kind.DIR),
        ("l", Kind.LINK),
    ]


def test_parse_listing_mlsd() -> None:
    lines = [
        "type=cdir;modify=20241128015400; .",
        "type=pdir;modify=20241128015400; ..",
        "type=file;size=1;modify=20241128015400; a",
        "type=dir;modify=20241128015400; d",
        "garbage",
    ]
    entries = parse_listing(lines, fmt="mlsd", now=NOW, tz=UTC)
    assert entries == [
        ListedEntry("a", Kind.FILE, 1, MOD, 1.0),
        ListedEntry("d", Kind.DIR, None, MOD, 1.0),
    ]


def test_parse_listing_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="format"):
        parse_listing([], fmt="nlst", now=NOW, tz=UTC)  # type: ignore[arg-type]
