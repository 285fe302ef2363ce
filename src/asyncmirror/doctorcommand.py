"""``asyncmirror --doctor [SRC] [DST]``: the command-line side of the diagnosis.

Takes the parsed arguments and the login the command line built as for a run
(server, credentials, TLS flags), sizes SRC when given
(for the time estimate), runs :func:`asyncmirror.doctor.diagnose` and prints
the table -- or JSON with ``--json`` -- on stdout.  Exit 0 when the login
worked (whatever the findings), 3 when it did not.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, TextIO

from . import errors

if TYPE_CHECKING:
    from .diagnosis import TreeSize
    from .login import ServerConfig

EXIT_OK, EXIT_FATAL = 0, 3


def tree_size(args: argparse.Namespace) -> TreeSize | None:
    if not args.src:
        return None
    from .arguments import filter_rules
    from .diagnosis import TreeSize
    from .filters import FilterSet
    from .local import scan

    tree = scan(args.src, FilterSet.from_rules(filter_rules(args)))
    return TreeSize(len(tree.files), sum(f.size for f in tree.files.values()), len(tree.dirs))


def doctor_main(args: argparse.Namespace, config: ServerConfig, path: str, stdout: TextIO) -> int:
    from .diagnosis import render_table, to_json
    from .doctor import diagnose
    from .runner import run as run_async

    if args.max_probe is not None and args.max_probe < 1:
        raise errors.UsageError("--max-probe must be at least 1")
    findings = run_async(
        diagnose(
            config,
            path,
            src=tree_size(args),
            jobs=args.jobs,
            max_probe=args.max_probe,
        )
    )
    now = time.time()
    if args.json:
        print(json.dumps(to_json(findings, now), indent=2), file=stdout)
    else:
        print(render_table(findings, now), end="", file=stdout)
    return EXIT_OK if findings.logged_in else EXIT_FATAL
