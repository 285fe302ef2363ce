"""The scenarios: which tool runs what against which server, and what must hold after."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import treegen
from benchmarks.errors import BenchError
from benchmarks.network import NO_DIGEST_DIR
from benchmarks.planning import run_planner
from benchmarks.results import MIB, TOOLS
from benchmarks.tools import STATE_FILES
from benchmarks.treecheck import verify, verify_empty

if TYPE_CHECKING:
    from benchmarks.bench import Bench


def run_all(bench: Bench) -> None:
    p = bench.params
    entries = bench.site.files
    n = len(entries)
    total = bench.site.total_bytes
    for rep in range(1, p.repeat + 1):
        order = TOOLS if rep % 2 else TOOLS[::-1]  # alternate who goes first
        bench.say(f"repeat {rep}/{p.repeat} (order: {', '.join(order)})")
        treegen.reset_mtimes(bench.site.root, entries)
        names = {tool: f"{'am' if tool == 'asyncmirror' else 'lftp'}-r{rep}" for tool in order}
        for tool in order:
            bench.measure(
                tool,
                "first",
                rep,
                bench.wan,
                bench.site.root,
                names[tool],
                files=n,
                upload_files=n,
                upload_bytes=total,
                via_proxy=True,
            )
            verify(
                bench.site.root,
                bench.wan.home / names[tool],
                f"{tool} first upload",
                allowed=STATE_FILES[tool],
            )
        for tool in order:
            bench.measure(
                tool,
                "unchanged",
                rep,
                bench.wan,
                bench.site.root,
                names[tool],
                files=n,
                upload_files=0,
                upload_bytes=0,
                via_proxy=True,
            )
            verify(
                bench.site.root,
                bench.wan.home / names[tool],
                f"{tool} unchanged rerun",
                allowed=STATE_FILES[tool],
            )
        run_verify(bench, rep, names["lftp"])
        changed = treegen.change_files(
            bench.site.root, entries, fraction=0.01, seed=p.seed, generation=rep
        )
        changed_bytes = sum(f.size for f in changed)
        for tool in order:
            s = bench.measure(
                tool,
                "changed",
                rep,
                bench.wan,
                bench.site.root,
                names[tool],
                files=n,
                upload_files=len(changed),
                upload_bytes=changed_bytes,
                via_proxy=True,
            )
            verify(
                bench.site.root,
                bench.wan.home / names[tool],
                f"{tool} 1% changed rerun",
                allowed=STATE_FILES[tool],
            )
            if s.stors < len(changed):
                raise BenchError(f"{tool} uploaded {s.stors} files after {len(changed)} changed")
        for name in names.values():
            shutil.rmtree(bench.wan.home / name, ignore_errors=True)

    if p.startup_files:
        run_startup(bench)

    if p.large_count:
        run_large(bench)

    if p.scale_files:
        run_scale(bench)


#: asyncmirror's summary of a --verify run (report.Verification.line()).
VERIFIED = re.compile(r"--verify: compared (\d+) files by ([^:]+): (\d+) differ(.*)")


def run_verify(bench: Bench, rep: int, lftp_name: str) -> None:
    """``--verify`` adopting the site lftp uploaded in this repeat: by digest, by download.

    The case issue 14 describes: lftp uploaded the site (times on the server are upload
    times), asyncmirror has no state file, and must find by content that nothing
    differs.  Each run gets a copy of lftp's upload (same bytes and times, made on the
    server's disk), so lftp's own directory stays lftp's: one where the server answers
    ``HASH``, one under :data:`NO_DIGEST_DIR`, where it does not and asyncmirror has
    to download every file.  What must hold after: no upload, the tree identical, every
    file compared, by the method the directory allows (downloads counted by the server).
    """
    n = len(bench.site.files)
    lftp_tree = bench.wan.home / lftp_name
    for scenario, name in (
        ("verify_digest", f"verify-r{rep}"),
        ("verify_download", f"{NO_DIGEST_DIR}/verify-r{rep}"),
    ):
        copy_as_server(lftp_tree, bench.wan.home / name, chown=bench.wan.chroot)
        s = bench.measure(
            "asyncmirror",
            scenario,
            rep,
            bench.wan,
            bench.site.root,
            name,
            files=n,
            upload_files=0,
            upload_bytes=0,
            via_proxy=True,
            verify=True,
        )
        what = f"asyncmirror --verify ({scenario})"
        verify(bench.site.root, bench.wan.home / name, what, allowed=STATE_FILES["asyncmirror"])
        if s.stors:
            raise BenchError(f"{what} uploaded {s.stors} files of an identical site")
        log = bench.log_path("asyncmirror", scenario, rep)
        found = VERIFIED.search(log.read_text(errors="replace"))
        if found is None:
            raise BenchError(f"{what} did not say what it compared; log {log}")
        compared, method, differ = int(found[1]), found[2], int(found[3])
        by_download = scenario == "verify_download"
        if compared != n or differ or found[4].strip() or (method == "download") != by_download:
            raise BenchError(
                f"{what} said {found[0]!r}; "
                f"expected all {n} {'downloaded' if by_download else 'by a digest command'}, "
                "none differing"
            )
        if s.retrs != (n if by_download else 0):
            raise BenchError(f"{what}: the server logged {s.retrs} downloads for {n} files")
        shutil.rmtree(bench.wan.home / name, ignore_errors=True)


def copy_as_server(src: Path, dst: Path, *, chown: bool) -> None:
    """Copy a tree on the server's disk, times kept, owned by the server's user
    (``chown``: ProFTPD runs as nobody and writes asyncmirror's state file there)."""
    shutil.copytree(src, dst, copy_function=shutil.copy2)
    if chown and os.geteuid() == 0:
        for dirpath, _dirs, filenames in os.walk(dst):
            for entry in (dirpath, *(os.path.join(dirpath, f) for f in filenames)):
                os.chown(entry, 65534, 65534)


def run_startup(bench: Bench) -> None:
    """Start-up on its own: an unchanged rerun of a small tree on loopback.

    Each tool starts, logs in, lists DST, finds nothing to do and exits: what a user
    waits for on a site with nothing new, without the network's round trips.  The
    upload before it is set-up, not measured.  Runs this short scatter, so take many.
    """
    p = bench.params
    tree = bench.startup
    n = len(tree.files)
    repeat = p.startup_repeat or p.repeat
    names = {tool: f"startup-{tool}" for tool in TOOLS}
    for tool in TOOLS:
        bench.measure(
            tool,
            "startup",
            0,
            bench.direct,
            tree.root,
            names[tool],
            files=n,
            upload_files=n,
            upload_bytes=tree.total_bytes,
            via_proxy=False,
            record=False,
        )
    for rep in range(1, repeat + 1):
        order = TOOLS if rep % 2 else TOOLS[::-1]
        bench.say(f"start-up {rep}/{repeat} (order: {', '.join(order)})")
        for tool in order:
            s = bench.measure(
                tool,
                "startup",
                rep,
                bench.direct,
                tree.root,
                names[tool],
                files=n,
                upload_files=0,
                upload_bytes=0,
                via_proxy=False,
            )
            verify(
                tree.root,
                bench.direct.home / names[tool],
                f"{tool} start-up rerun",
                allowed=STATE_FILES[tool],
            )
            if s.stors:
                raise BenchError(f"{tool} uploaded {s.stors} files of an unchanged tree")
    for name in names.values():
        shutil.rmtree(bench.direct.home / name, ignore_errors=True)


def run_large(bench: Bench) -> None:
    """Large files on loopback: the transfer itself, client and server CPU per byte.

    At 2 × 64 MiB half of either tool's time was start-up and login (the start-up
    scenario measures that on its own); at 2 × 512 MiB the transfer dominates.  The
    server shares the machine's CPUs with the client: single runs scatter, so the
    median of several is reported.
    """
    p = bench.params
    repeat = p.large_repeat or p.repeat
    large_bytes = p.large_count * p.large_mib * MIB
    for rep in range(1, repeat + 1):
        order = TOOLS if rep % 2 else TOOLS[::-1]
        bench.say(f"large files {rep}/{repeat} (order: {', '.join(order)})")
        for tool in order:
            name = f"large-{tool}-r{rep}"
            bench.measure(
                tool,
                "large",
                rep,
                bench.direct,
                bench.large_src,
                name,
                files=p.large_count,
                upload_files=p.large_count,
                upload_bytes=large_bytes,
                via_proxy=False,
            )
            verify(
                bench.large_src,
                bench.direct.home / name,
                f"{tool} large files",
                allowed=STATE_FILES[tool],
            )
            shutil.rmtree(bench.direct.home / name, ignore_errors=True)


def run_scale(bench: Bench) -> None:
    p = bench.params
    bench.say(f"generating the {p.scale_files}-file scale tree")
    started = time.monotonic()
    scale = treegen.generate(bench.work / "scale", p.scale_files, p.seed, scale=True)
    bench.info["scale"] = {
        "files": len(scale.files),
        "dirs": len(scale.dirs),
        "bytes": scale.total_bytes,
        "generate_s": round(time.monotonic() - started, 1),
    }
    empty = bench.direct.home / "scale-empty"
    empty.mkdir()
    if os.geteuid() == 0 and bench.direct.chroot:
        os.chown(empty, 65534, 65534)
    n = len(scale.files)
    for rep in range(1, p.repeat + 1):
        order = TOOLS if rep % 2 else TOOLS[::-1]
        bench.say(f"scale dry run {rep}/{p.repeat}")
        for tool in order:
            bench.measure(
                tool,
                "dryrun",
                rep,
                bench.direct,
                scale.root,
                "scale-empty",
                files=n,
                upload_files=n,
                upload_bytes=scale.total_bytes,
                via_proxy=False,
                dry_run=True,
            )
            verify_empty(empty, f"{tool} dry run")
    bench.planner = run_planner(scale, p.repeat, bench.snapshot, bench.say)
    shutil.rmtree(scale.root, ignore_errors=True)
