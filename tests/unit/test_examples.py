"""The CI recipes users copy: every ``asyncmirror`` command in them parses with the real
command line, the composite action builds a command that parses, and the job summary
says what the report says."""

from __future__ import annotations

import itertools
import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from asyncmirror.cli import build_parser
from asyncmirror.jobsummary import markdown

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yml"))


def shell_scripts(node: Any) -> list[str]:
    """Every shell snippet in a workflow: GitHub's ``run:`` and GitLab's ``script:`` lists."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "run" and isinstance(value, str):
                found.append(value)
            elif key in ("script", "after_script", "before_script") and isinstance(value, list):
                found += [v for v in value if isinstance(v, str)]
            else:
                found += shell_scripts(value)
    elif isinstance(node, list):
        for item in node:
            found += shell_scripts(item)
    return found


def asyncmirror_commands(script: str) -> list[list[str]]:
    """The argv of each ``asyncmirror`` command in a shell snippet, up to a redirection."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["asyncmirror"]:
            argv = []
            for word in words[1:]:
                if word in (">", ">>", "|", "&&", "||", ";") or word.startswith(">"):
                    break
                argv.append(word)
            commands.append(argv)
    return commands


def test_there_are_recipes_for_github_and_gitlab() -> None:
    names = {p.name for p in EXAMPLES}
    assert any("github" in n for n in names), names
    assert any("gitlab" in n for n in names), names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_command_in_a_recipe_parses_with_the_real_cli(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    commands = [c for s in shell_scripts(workflow) for c in asyncmirror_commands(s)]
    assert commands, f"{path.name} runs no asyncmirror command"
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)  # an unknown or malformed option exits 2
        assert args.src
        assert args.dst
        assert args.json, "a CI recipe keeps the report for the job summary"


def fake_asyncmirror(bin_dir: Path, record: Path, exit_code: int) -> None:
    """An ``asyncmirror`` that parses its argv with the real parser, records it, and
    prints a report as the real one does with --json."""
    script = bin_dir / "asyncmirror"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "from asyncmirror.cli import build_parser\n"
        "build_parser().parse_args(sys.argv[1:])\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        "print(json.dumps({'ok': False, 'dry_run': False, 'uploaded': 3, 'skipped': 1,\n"
        "    'bytes_sent': 4500, 'mkdirs': 1, 'deleted': 0, 'retries': 0, 'duration': 1.25,\n"
        "    'failed': [{'path': 'a|b.html', 'error': '553 not allowed'}], 'notes': []}))\n"
        f"sys.exit({exit_code})\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_the_composite_action_passes_its_inputs_and_the_exit_code(tmp_path: Path) -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    inputs = action["inputs"]
    deploy = next(s for s in action["runs"]["steps"] if s.get("id") == "deploy")
    # Every input reaches the script (as INPUT_*), and the script reads every INPUT_*.
    script_text = (ROOT / "scripts" / "action-deploy.sh").read_text()
    for name in inputs:
        if name == "python-version":
            continue
        var = "INPUT_" + name.upper().replace("-", "_")
        assert deploy["env"][var] == "${{ inputs." + name + " }}"
        assert var in script_text, var

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "argv.json"
    fake_asyncmirror(bin_dir, record, exit_code=1)
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(output),
        "INPUT_SRC": "public",
        "INPUT_DST": "www",
        "INPUT_JOBS": "4",
        "INPUT_EXCLUDE": ".*\n.*/\n",
        "INPUT_INCLUDE": ".htaccess",
        "INPUT_DELETE": "true",
        "INPUT_MAX_DELETE": "100",
        "INPUT_SWAP": "true",
        "INPUT_LOCK_WAIT": "600",
        "INPUT_DRY_RUN": "false",
        "INPUT_EXTRA_ARGS": "--atomic --timeout 60",
    }
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "action-deploy.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr  # asyncmirror's own exit code
    argv = json.loads(record.read_text())
    assert argv[:2] == ["public", "www"]
    assert argv[argv.index("-j") + 1] == "4"
    pairs = list(itertools.pairwise(argv))
    assert ("-X", ".*") in pairs
    assert ("-X", ".*/") in pairs
    assert ("-I", ".htaccess") in pairs
    assert ("--max-delete", "100") in pairs
    assert "--delete" in argv
    assert "--atomic" in argv
    assert "--swap" in argv
    assert ("--lock-wait", "600") in pairs
    assert "--dry-run" not in argv
    assert "exit-code=1" in output.read_text()
    assert "1 failed" in summary.read_text()


REPORT: dict[str, Any] = {
    "ok": True,
    "dry_run": False,
    "uploaded": 12,
    "skipped": 1988,
    "bytes_sent": 2_500_000,
    "mkdirs": 2,
    "deleted": 1,
    "retries": 3,
    "duration": 4.21,
    "failed": [],
    "notes": [],
}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, ["✅ deployed", "| uploaded | 12 files, 2.5 MB |", "| unchanged | 1988 |", "4.2 s"]),
        ({"dry_run": True}, ["dry run: nothing was changed", "| would upload | 12 files"]),
        (
            {"failed": [{"path": "x|y.html", "error": "553 Permission\ndenied"}]},
            ["❌ 1 failed", "| `x\\|y.html` | 553 Permission denied |"],
        ),
        ({"notes": ["the server accepted 3 of 8 connections"]}, ["- the server accepted 3 of 8"]),
        ({"bytes_sent": 999}, ["12 files, 999 B"]),
    ],
)
def test_the_job_summary_says_what_the_report_says(
    changes: dict[str, Any], expected: list[str]
) -> None:
    text = markdown({**REPORT, **changes})
    for piece in expected:
        assert piece in text, text
