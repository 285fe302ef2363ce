"""The planner in-process: ``make_plan`` on a large tree, no network."""

from __future__ import annotations

import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import treegen
from benchmarks.results import MB


def run_planner(
    scale: treegen.TreeInfo, repeat: int, snapshot: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    """make_plan on 100k local files against a same-sized remote listing, in-process.

    The planner is imported from ``snapshot``, the copy every tool run uses, not from the
    live source tree that others may be editing (the one path entry the benchmark adds).
    """
    if str(snapshot) not in sys.path:
        sys.path.insert(0, str(snapshot))
    from asyncmirror.entries import LocalFile, LocalTree, RemoteFile, RemoteTree
    from asyncmirror.planner import PlanOptions, make_plan

    root = str(scale.root)
    all_dirs: set[str] = set()
    for d in scale.dirs:
        parts = d.split("/")
        all_dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))

    def build() -> tuple[LocalTree, RemoteTree]:
        local = LocalTree(root=root, dirs=set(all_dirs))
        remote = RemoteTree(exists=True, dirs=set(all_dirs))
        for f in scale.files:
            local.files[f.path] = LocalFile(f.path, f.size, float(f.mtime), f"{root}/{f.path}")
            # 1 % of the remote copies are older: they are planned for upload.
            older = 3600.0 if f.index % 100 == 0 else 0.0
            remote.files[f.path] = RemoteFile(f.path, f.size, float(f.mtime) - older, 0.0)
        return local, remote

    tracemalloc.start()
    local, remote = build()
    inputs_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    options = PlanOptions()
    times = []
    plan = None
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        plan = make_plan(local, remote, options)
        times.append(time.perf_counter() - started)
    assert plan is not None
    tracemalloc.start()
    tracemalloc.reset_peak()
    plan = make_plan(local, remote, options)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result = {
        "local_files": len(local.files),
        "remote_files": len(remote.files),
        "uploads": len(plan.uploads),
        "skipped": len(plan.skipped),
        "seconds": statistics.median(times),
        "runs": times,
        "peak_bytes": peak,
        "inputs_bytes": inputs_bytes,
    }
    say(
        f"  planner: {len(local.files)} vs {len(remote.files)} files in "
        f"{statistics.median(times):.3f} s, tracemalloc peak {peak / MB:.1f} MB"
    )
    return result
