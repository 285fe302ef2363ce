"""The scenarios: which tool runs what against which server, and what must hold after."""

from __future__ import annotations

import os
import shutil
import time
from typing import TYPE_CHECKING

from benchmarks import treegen
from benchmarks.errors import BenchError
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

    if p.large_count:
        run_large(bench)

    if p.scale_files:
        run_scale(bench)


def run_large(bench: Bench) -> None:
    """Two large files on loopback: runs take a second, so take more of them.

    Half a second of either tool is start-up and login, and the server
    shares the machine's two CPUs with the client: single runs scatter by
    tens of percent, a median of many does not.
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
