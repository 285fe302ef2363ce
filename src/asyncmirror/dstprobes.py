"""``--doctor``'s probes of what the account can do in DST.

* :func:`listings`: ``MLST``, ``MLSD``, ``LIST`` and ``MODE Z``;
* :func:`temporary_file`: a file ``.htasyncmirror-doctor-<random>`` stored in
  DST (is DST writable?), whose remote time gives the clock skew and LIST's
  time zone, and on which ``SIZE``, ``MFMT``, ``SITE UTIME`` and the digest
  commands are tried.  It is deleted in a ``finally`` (``.ht``: Apache never
  serves it meanwhile).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from . import datachannel, errors
from .listing import parse_list_line, parse_mlst_reply
from .replies import Reply, format_mfmt, parse_mdtm

if TYPE_CHECKING:
    from .prober import Prober

#: Name prefix of the temporary file: ``.ht`` so Apache refuses to serve it.
TEMP_PREFIX = ".htasyncmirror-doctor-"
#: Tried on the temporary file, strongest first.
DIGEST_COMMANDS = ("HASH", "XSHA256", "XSHA1", "XMD5", "XCRC")
#: The time MFMT / SITE UTIME are asked to set (any past time will do).
PAST = 1_600_000_000.0
#: Replies that mean "this server does not have that command".
_UNKNOWN = ("500", "502", "504")


def _supported(reply: Reply) -> bool | None:
    if reply.is_complete:
        return True
    if reply.code in _UNKNOWN or reply.code == "501":
        return False
    return None


def _join(dst: str, name: str) -> str:
    if not dst or dst == ".":
        return name
    return dst.rstrip("/") + "/" + name


async def listings(p: Prober) -> None:
    f = p.f
    target = f.dst or "."
    f.mlst = _supported(await p.ask(f"MLST {target}"))
    try:
        await p.fetch(f"MLSD {target}")
        f.mlsd = True
    except errors.ReplyError as exc:
        f.mlsd = False if exc.code in (*_UNKNOWN, "501") else None
    try:
        await p.fetch(f"LIST {f.dst}" if f.dst else "LIST")
        f.list_ = True
    except errors.ReplyError as exc:
        f.list_ = False if exc.code in _UNKNOWN else None
    reply = await p.ask("MODE Z")
    f.mode_z = _supported(reply)
    if f.mode_z:
        await p.ask("MODE S")  # back to what transfers use


async def temporary_file(p: Prober) -> None:
    f = p.f
    name = TEMP_PREFIX + secrets.token_hex(6)
    path = _join(f.dst, name)
    body = b"asyncmirror --doctor: a temporary file, removed at once\n"
    session = await p.session()
    address = await session.passive()
    try:
        before = time.time()
        try:
            await datachannel.upload(session, path, body, address)
        except errors.PermanentReplyError as exc:
            f.writable = False
            p.note(f"DST is not writable: {exc.reply}")
            return
        local = (before + time.time()) / 2
        f.writable = True
        await p.attempt("remote time", lambda: remote_time(p, path, name, local))
        await p.attempt("SIZE", lambda: size(p, path, len(body)))
        await p.attempt("set times", lambda: set_times(p, path))
        await p.attempt("digests", lambda: digests(p, path))
    finally:
        await remove(p, path)  # even a failed STOR may have left a partial file


async def remote_time(p: Prober, path: str, name: str, local: float) -> None:
    f = p.f
    remote: float | None = None
    if f.mlst:
        entry = parse_mlst_reply((await p.ask(f"MLST {path}")).lines)
        remote = entry.mtime if entry is not None else None
    if remote is None:
        reply = await p.ask(f"MDTM {path}")
        if reply.code == "213":
            remote = parse_mdtm(reply.text)
    if remote is not None:
        f.clock_skew = remote - local
    if f.list_:
        # ProFTPD and vsftpd hide dotfiles unless asked with -a; stock
        # pyftpdlib takes "-a path" for a path (550) but shows dotfiles anyway.
        try:
            listing = await p.fetch(f"LIST -a {path}")
        except errors.ReplyError:
            listing = b""
        if name.encode() not in listing:
            listing = await p.fetch(f"LIST {path}")
        now = datetime.now(UTC)
        for line in listing.decode("utf-8", errors="replace").splitlines():
            if line.endswith(path):  # some servers print the path as asked
                line = line[: -len(path)] + name
            entry = parse_list_line(line, now=now, tz=UTC)
            if entry is not None and entry.name == name and entry.mtime is not None:
                truth = remote if remote is not None else local
                quarters = round((entry.mtime - truth) / 900)
                f.list_utc_offset = quarters / 4
                break


async def size(p: Prober, path: str, expected: int) -> None:
    reply = await p.ask(f"SIZE {path}")
    p.f.size = _supported(reply)
    if reply.code == "213" and reply.text.strip() != str(expected):
        p.note(f"SIZE says {reply.text.strip()} for a file of {expected} bytes")


async def set_times(p: Prober, path: str) -> None:
    stamp = format_mfmt(PAST)
    p.f.mfmt = _supported(await p.ask(f"MFMT {stamp} {path}"))
    p.f.site_utime = _supported(await p.ask(f"SITE UTIME {stamp} {path}"))


async def digests(p: Prober, path: str) -> None:
    found = []
    for command in DIGEST_COMMANDS:
        if _supported(await p.ask(f"{command} {path}")):
            found.append(command)
    p.f.digests = tuple(found)


async def remove(p: Prober, path: str) -> None:
    """Delete the temporary file; bounded, and said out loud if it stays."""
    try:
        async with asyncio.timeout(p.timeout):
            reply = await p.ask(f"DELE {path}")
        if not reply.is_complete and reply.code != "550":
            p.note(f"could not remove {path}: {reply.code} {reply.text}")
    except (errors.AsyncMirrorError, TimeoutError) as exc:
        p.note(f"could not remove {path}: {exc}")
