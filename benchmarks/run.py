#!/usr/bin/env python3
"""asyncmirror against lftp 4.9.2, on a real ProFTPD, with an emulated WAN round trip.

    python3 benchmarks/run.py [--files 2000] [--repeat 3] [--rtt 50] [--seed 1]

One command, self-contained and self-cleaning (see benchmarks/README.md):

1. writes a deterministic website-like tree (``treegen.py``) and a 100,000-file
   tiny-file tree for the scale test;
2. starts two ProFTPD 1.3.8 servers (TLS required, TLS session reuse required on data
   connections): "wan", whose ``MasqueradeAddress`` is the delay proxy
   (``delayproxy.py`` on 127.0.0.2, forwarding the control port and the whole passive
   range with ``--rtt`` ms added), and "direct" (loopback, no added delay) for the
   start-up, large-file and scale runs;
3. runs asyncmirror (its CLI, ``-j 8``) and lftp (``mirror -R --only-newer -P 8``) one
   after the other against the same server, into different directories, and checks
   every server tree byte for byte against the source after every run;
4. measures for each tool and scenario: wall time, files/s, MB/s, CPU seconds
   (user+sys of the child, from ``os.wait4``), peak RSS (the tool's ``ru_maxrss``, via GNU time)
   and the number of uploads the server logged; reports medians over ``--repeat`` runs
   and the ratio asyncmirror/lftp;
5. writes RESULTS.md, ratios.png and results.json to ``--output`` (default: this
   directory).

It stops with a non-zero status and a loud message when a tool fails or a server tree
differs from the source.  Nothing is timed in the test suite: benchmarks live here.

This module is the command line; each concern has its module in this package:
``bench`` (set-up and measuring one run), ``scenarios`` (what runs, in which order),
``tools`` (asyncmirror's command, lftp's script), ``network`` (ProFTPD and the delay
proxy), ``measuring`` (one child: wall, CPU, RSS), ``treecheck`` (the server's tree after
a run), ``planning`` (the planner in-process), ``snapshot`` (the asyncmirror copy under
test), ``machine`` (the machine's description and load), ``results`` (samples, medians,
ratios, targets: pure), ``report`` (RESULTS.md, results.json), ``chart`` (ratios.png).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

if __name__ == "__main__" and not __package__:
    # Started as `python3 benchmarks/run.py`: the benchmark imports `benchmarks` and
    # `tests.servers` by name, so run it again as `python3 -m benchmarks.run` with the
    # repository on the import path (the children inherit that; it holds no asyncmirror).
    _path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    os.execve(
        sys.executable,
        [sys.executable, "-m", "benchmarks.run", *sys.argv[1:]],
        {**os.environ, "PYTHONPATH": _path},
    )

from benchmarks.bench import Bench  # noqa: E402
from benchmarks.chart import chart_title, write_chart  # noqa: E402
from benchmarks.errors import BenchError, Interrupted  # noqa: E402
from benchmarks.machine import environment, wait_quiet  # noqa: E402
from benchmarks.measuring import kill_measured_children  # noqa: E402
from benchmarks.report import Rendered, print_summary, write_json, write_results  # noqa: E402
from benchmarks.results import Params, Sample, evaluate_targets, name_scenarios, summarize  # noqa: E402
from benchmarks.scenarios import run_all  # noqa: E402
from benchmarks.snapshot import source_fingerprint  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark asyncmirror against lftp 4.9.2 on a real ProFTPD with an "
        "emulated WAN round trip."
    )
    p.add_argument("--files", type=int, default=2000, help="files in the website tree (2000)")
    p.add_argument("--seed", type=int, default=1, help="tree seed (1)")
    p.add_argument(
        "--rtt", type=float, default=50.0, metavar="MS", help="emulated round-trip time in ms (50)"
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="K",
        help="runs per scenario; medians are reported (3)",
    )
    p.add_argument("-j", "--jobs", type=int, default=8, help="parallel connections, both tools (8)")
    p.add_argument("--large-count", type=int, default=2, help="large files (2; 0 skips)")
    p.add_argument("--large-mib", type=int, default=512, help="size of each large file (512 MiB)")
    p.add_argument(
        "--large-repeat",
        type=int,
        default=9,
        metavar="K",
        help="runs of the large-file scenario, which is noisy (9)",
    )
    p.add_argument(
        "--startup-files",
        type=int,
        default=10,
        help="files in the start-up scenario's tree (10; 0 skips)",
    )
    p.add_argument(
        "--startup-repeat",
        type=int,
        default=9,
        metavar="K",
        help="runs of the start-up scenario, which is short and noisy (9)",
    )
    p.add_argument(
        "--scale-files",
        type=int,
        default=100_000,
        help="files in the dry-run scale tree (100000; 0 skips)",
    )
    p.add_argument(
        "--no-connect-delay",
        dest="connect_delay",
        action="store_false",
        help="do not charge a round trip for each TCP handshake through the proxy",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="bound on each tool run (900)",
    )
    p.add_argument(
        "--output",
        default=str(HERE),
        metavar="DIR",
        help="where RESULTS.md, ratios.png and results.json go (benchmarks/)",
    )
    p.add_argument("--workdir", metavar="DIR", help="parent of the temporary work directory")
    p.add_argument("--keep", action="store_true", help="keep the work directory (trees, logs)")
    p.add_argument(
        "--from-json",
        metavar="FILE",
        help="run nothing: write RESULTS.md and ratios.png again from a results.json",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="first wait (at most this long) until other processes use under 0.25 CPU",
    )
    args = p.parse_args(argv)
    if args.files < 1 or args.repeat < 1 or args.jobs < 1:
        p.error("--files, --repeat and --jobs must be at least 1")
    return args


def _on_signal(signum: int, frame: object) -> None:
    kill_measured_children()
    raise Interrupted(f"signal {signum}")


def render_from_json(path: Path, out: Path) -> int:
    raw = json.loads(path.read_text())
    fields = set(Sample.__dataclass_fields__)
    samples = [Sample(**{k: v for k, v in s.items() if k in fields}) for s in raw["samples"]]
    info = raw["info"]
    params = Params(**raw["params"])
    name_scenarios(params.large_count, params.large_mib, params.scale_files, params.startup_files)
    bench = Rendered(
        params,
        info,
        raw["notes"],
        raw["planner"],
        samples,
        bool(info.get("lftp_check_hostname", True)),
    )
    summary = summarize(samples)
    targets = evaluate_targets(summary, bench.params)
    started = dt.datetime.fromisoformat(raw["started"])
    write_results(
        bench, summary, targets, raw["environment"], out, started, raw["elapsed_s"], raw["command"]
    )
    write_chart(summary, targets, out / "ratios.png", chart_title(bench.params, info))
    print(f"wrote {out / 'RESULTS.md'} and {out / 'ratios.png'} from {path}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        return render_from_json(Path(args.from_json), Path(args.output))
    command = "python3 benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    command = command.strip()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    env = environment()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with contextlib.ExitStack() as stack:
        bench = Bench(args, stack)
        try:
            if args.wait_quiet > 0 and not wait_quiet(args.wait_quiet, bench.say):
                bench.notes.append(
                    f"the machine was still busy after waiting {args.wait_quiet:g} min for it "
                    "to be quiet (see Other CPU)"
                )
            started = dt.datetime.now(dt.UTC)  # the time spent waiting does not count
            t0 = time.monotonic()
            bench.setup()
            run_all(bench)
        except BenchError as exc:
            print(f"\nBENCHMARK FAILED: {exc}\n", file=sys.stderr, flush=True)
            if args.keep:
                print(f"(work directory kept: {bench.work})", file=sys.stderr)
            return 1
        except Interrupted as exc:
            print(f"\nbenchmark interrupted ({exc}); cleaning up", file=sys.stderr)
            return 130
        finally:
            bench.say("stopping servers and proxy, removing temporary files")
    elapsed = time.monotonic() - t0
    summary = summarize(bench.samples)
    targets = evaluate_targets(summary, bench.params)
    env["asyncmirror"] += f" ({bench.git}; source fingerprint {bench.fingerprint})"
    if source_fingerprint(bench.source_dir) != bench.fingerprint:
        bench.notes.append(
            f"asyncmirror's source in {bench.source_dir} changed while the benchmark ran; "
            "every run used the copy taken at the start (the version named above)"
        )
    write_results(bench, summary, targets, env, out, started, elapsed, command)
    write_chart(summary, targets, out / "ratios.png", chart_title(bench.params, bench.info))
    write_json(bench, summary, targets, env, out / "results.json", started, elapsed, command)
    print_summary(summary, targets)
    print(
        f"\nwrote {out / 'RESULTS.md'}, {out / 'ratios.png'}, {out / 'results.json'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
