"""A run's ``--json`` report as Markdown, for a CI job's summary page.

    asyncmirror SRC DST --json > report.json
    python3 -m asyncmirror.jobsummary report.json >> "$GITHUB_STEP_SUMMARY"

Pure but for :func:`main`; reads only the report, so it works on a report
written by another version or on another machine.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

#: Failures and notes listed in full up to this many; the rest are counted.
SHOWN = 50


def _cell(text: object) -> str:
    """Table-safe: a ``|`` or a line break would end the cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def markdown(report: dict[str, Any], *, title: str = "asyncmirror") -> str:
    """The summary: an outcome line, the counts, then failures and notes."""
    failed = report.get("failed", [])
    dry = report.get("dry_run", False)
    if failed:
        outcome = f"❌ {len(failed)} failed"
    elif dry:
        outcome = "📝 dry run: nothing was changed"
    else:
        outcome = "✅ deployed"
    verb = "would upload" if dry else "uploaded"
    lines = [
        f"### {title}: {outcome}",
        "",
        "| | |",
        "|---|---:|",
        f"| {verb} | {report.get('uploaded', 0)} files, {_size(report.get('bytes_sent', 0))} |",
        f"| unchanged | {report.get('skipped', 0)} |",
        f"| directories made | {report.get('mkdirs', 0)} |",
        f"| deleted | {report.get('deleted', 0)} |",
        f"| retries | {report.get('retries', 0)} |",
        f"| time | {report.get('duration', 0):.1f} s |",
    ]
    if failed:
        lines += ["", "| failed | why |", "|---|---|"]
        lines += [f"| `{_cell(f['path'])}` | {_cell(f['error'])} |" for f in failed[:SHOWN]]
        if len(failed) > SHOWN:
            lines.append(f"| … | {len(failed) - SHOWN} more |")
    notes = report.get("notes", [])
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {_cell(n)}" for n in notes[:SHOWN]]
        if len(notes) > SHOWN:
            lines.append(f"- … {len(notes) - SHOWN} more")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python3 -m asyncmirror.jobsummary REPORT.json", file=sys.stderr)
        return 2
    try:
        with open(args[0], encoding="utf-8") as fh:
            report = json.load(fh)
    except (OSError, ValueError) as exc:
        # No report (the run failed before writing one): say so in the summary.
        print(f"### asyncmirror: no report ({exc})")
        return 0
    if not isinstance(report, dict):
        print("### asyncmirror: the report is not a JSON object")
        return 0
    sys.stdout.write(markdown(report))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
