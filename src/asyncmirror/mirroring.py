"""The public entry points: ``mirror()``, ``run_mirror()`` and ``rollback()``.

They check what can be checked before any connection (SRC, line breaks in
credentials, options that exclude each other) and hand over to
:class:`~asyncmirror.mirrorrun.MirrorRun` (the phase sequence) or
:func:`~asyncmirror.switch.rollback_site`, bounded by ``deadline``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from datetime import UTC, tzinfo

from . import errors, switch
from .control import Trace
from .early import EarlyConnection
from .filters import Rule
from .login import ServerConfig
from .mirrorrun import MirrorRun
from .options import Options
from .report import Events, Report
from .transport import TLSPolicy


async def mirror(
    src: str,
    dst: str,
    *,
    host: str,
    port: int = 21,
    user: str,
    password: str,
    jobs: int = 8,
    exclude: Sequence[str] = (),
    include: Sequence[str] = (),
    exclude_regex: Sequence[str] = (),
    include_regex: Sequence[str] = (),
    rules: Sequence[Rule] | None = None,
    delete: bool = False,
    dry_run: bool = False,
    only_newer: bool = True,
    atomic: bool = False,
    set_mtime: bool = True,
    ca_file: str | None = None,
    fingerprint: str | None = None,
    insecure: bool = False,
    timeout: float = 30.0,
    deadline: float | None = None,
    retries: int = 5,
    max_delete: int | None = None,
    state: bool = True,
    state_file: str | None = None,
    remote_timezone: tzinfo = UTC,
    events: Events | None = None,
    trace: Trace | None = None,
    early_connections: Sequence[EarlyConnection] = (),
    swap: bool = False,
    lock: bool = True,
    lock_wait: float = 0.0,
    lock_stale: float = 3 * 3600.0,
    break_lock: bool = False,
    verify: bool = False,
    checksum: bool = False,
    site_symlink: bool = False,
) -> Report:
    """Mirror the local directory ``src`` to ``dst`` on an FTPS server.

    Uploads what is missing on the server, differs in size, or is newer
    locally (``only_newer``); with ``delete`` also removes what exists only on
    the server.  ``exclude``/``include`` are lftp ``-X``/``-I`` globs,
    ``exclude_regex``/``include_regex`` lftp ``-x``/``-i`` regexes (or pass
    ordered ``rules``).

    Runs in the caller's event loop (asyncio), prints nothing unless ``events``
    or ``trace`` are given, and is cancellable: a cancel (or the ``deadline``)
    first removes the uploads it cut from the server, on one fresh session within
    ``min(timeout, 15)`` seconds (a second cancel skips that).  Returns a :class:`Report`;
    files that failed are listed in ``report.failed`` (``report.exit_code`` is
    1).  Raises :class:`~errors.UsageError` for bad input and
    :class:`~errors.FatalError` when the server cannot be used (connection,
    TLS, login); ``deadline`` seconds bound the whole run
    (:class:`~errors.TimeoutExpired`).  ``early_connections`` are connections
    to ``host:port`` the caller began in advance (see :mod:`asyncmirror.early`),
    no more than the run will use: the first sessions start from them.

    With ``swap`` the live ``dst`` is not touched until the new release is
    complete: the run brings a staging copy beside it up to date, then
    switches with renames sent in one burst (see :mod:`asyncmirror.releases`);
    when anything fails first, the live site stays as it was.

    A run that changes DST first takes its deploy lock (see
    :mod:`asyncmirror.deploylock`): another run holding it makes this one wait
    up to ``lock_wait`` seconds, then raise :class:`~errors.LockHeldError`; a
    lock older than ``lock_stale`` seconds, or any with ``break_lock``, is
    taken over.  ``lock=False`` takes none.

    ``verify`` compares contents instead of trusting sizes and times: by the
    server's digest command (``HASH``, ``XSHA256``, ... pipelined), else by
    downloading; only what differs is uploaded, each difference is in
    ``report.verification``, and the state file is rewritten from what was
    compared.  ``checksum`` checks each upload by the server's digest command
    (when it has one) instead of its size alone.

    ``site_symlink`` makes each symbolic link in ``src`` whose target is in
    ``src`` too as a link on the server (``SITE SYMLINK``, ProFTPD's
    mod_site_misc), after the uploads, instead of uploading its target's
    content again; a server that refuses gets the content (one note).  ProFTPD
    writes the target as an absolute path in the FTP namespace.  Not with
    ``swap``, whose renames would leave such targets pointing at the old names.
    """
    return await run_mirror(src, dst, Options.from_mapping(locals()))


async def run_mirror(src: str, dst: str, options: Options) -> Report:
    """:func:`mirror` with its keyword arguments gathered in one :class:`Options`."""
    _check_src(src)  # before any connection: a typo in SRC should not cost a login
    for what, value in (
        ("user name", options.user),
        ("password", options.password),
        ("host", options.host),
    ):
        if "\r" in value or "\n" in value:
            # Typically a value read from a file with Windows line ends.
            raise errors.UsageError(
                f"the {what} contains a line break (CR or LF)",
                hint="strip the line ends from where it comes from (e.g. a CRLF .env file)",
            )
    if options.site_symlink and options.swap:
        raise errors.UsageError(
            "--site-symlink cannot be used with --swap",
            hint="SITE SYMLINK writes absolute targets, which the switch's renames would "
            "leave pointing into the staging name; drop one of them",
        )
    run = MirrorRun(src, dst, options)
    if options.deadline is None:
        return await run.run()
    try:
        async with asyncio.timeout(options.deadline):
            return await run.run()
    except TimeoutError:
        raise errors.TimeoutExpired(
            f"the run did not finish within the deadline of {options.deadline:g} s",
            hint="raise --deadline, or check the connection to the server",
        ) from None


async def rollback(
    dst: str,
    *,
    host: str,
    port: int = 21,
    user: str,
    password: str,
    ca_file: str | None = None,
    fingerprint: str | None = None,
    insecure: bool = False,
    timeout: float = 30.0,
    remote_timezone: tzinfo = UTC,
    events: Events | None = None,
    trace: Trace | None = None,
    lock_wait: float = 0.0,
    lock_stale: float = 3 * 3600.0,
    break_lock: bool = False,
) -> Report:
    """Switch ``dst`` back to the release before the last ``mirror(..., swap=True)``.

    One burst of renames on one session; what only the server holds in the live
    release moves along (see :mod:`asyncmirror.switch`).  The release it leaves
    becomes the previous one, so calling it again goes forward.  Raises
    :class:`~errors.RemoteTargetError` when there is nothing to roll back to.

    It holds DST's deploy lock as a mirror run does, across the renames:
    another run holding it makes this one wait up to ``lock_wait`` seconds,
    then raise :class:`~errors.LockHeldError` with nothing renamed; a lock
    older than ``lock_stale`` seconds, or any with ``break_lock``, is taken
    over.  The lock is removed at the end, after a failure or a cancel.
    """
    config = ServerConfig(
        host=host,
        port=port,
        user=user,
        password=password,
        tls=TLSPolicy(ca_file=ca_file, fingerprint=fingerprint, insecure=insecure),
        timeout=timeout,
        trace=trace,
    )
    return await switch.rollback_site(
        config,
        dst,
        timezone=remote_timezone,
        events=events or Events(),
        lock_wait=lock_wait,
        lock_stale=lock_stale,
        break_lock=break_lock,
    )


def _check_src(src: str) -> None:
    if not os.path.isdir(src):
        what = "is not a directory" if os.path.exists(src) else "does not exist"
        raise errors.UsageError(
            f"source directory {src!r} {what}", hint="give the local directory to upload as SRC"
        )
