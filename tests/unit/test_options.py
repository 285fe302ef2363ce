"""The option list is written once: mirror(), the command line and Options agree."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from datetime import UTC
from pathlib import Path

import pytest

from asyncmirror import mirror
from asyncmirror.arguments import build_parser
from asyncmirror.cli import CLI_ONLY, options_from
from asyncmirror.credentials import Target
from asyncmirror.errors import UsageError
from asyncmirror.filters import Rule
from asyncmirror.options import Options


def test_mirror_takes_exactly_the_options_with_the_same_defaults() -> None:
    params = inspect.signature(mirror).parameters
    keyword = {n: p.default for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    fields = {f.name: f.default for f in dataclasses.fields(Options)}
    assert list(keyword) == list(fields)
    for name, default in fields.items():
        expected = inspect.Parameter.empty if default is dataclasses.MISSING else default
        assert keyword[name] == expected, name
    assert [n for n, p in params.items() if p.kind is not inspect.Parameter.KEYWORD_ONLY] == [
        "src",
        "dst",
    ]


def test_every_command_line_flag_is_an_option_or_listed_as_cli_only() -> None:
    dests = {a.dest for a in build_parser()._actions if a.dest != "help"}
    fields = {f.name for f in dataclasses.fields(Options)}
    assert dests - CLI_ONLY <= fields, dests - CLI_ONLY - fields
    assert dests | {"rules"} >= CLI_ONLY


def test_options_from_the_command_line() -> None:
    args = build_parser().parse_args(
        [
            *("site", "www", "-j", "3", "--delete", "-X", "*.tmp", "-i", r"\.html$", "--atomic"),
            *("--no-set-mtime", "--timeout", "7", "--max-delete", "9", "--state-file", "s.json"),
        ]
    )
    target = Target("ftp.example", 2121, "me", "secret", "/www")
    options = options_from(args, target)
    assert (options.host, options.port, options.user, options.password) == (
        "ftp.example",
        2121,
        "me",
        "secret",
    )
    assert options.jobs == 3
    assert (options.delete, options.atomic, options.set_mtime) == (True, True, False)
    assert (options.timeout, options.max_delete) == (7.0, 9)
    assert (options.state_file, options.state) == ("s.json", True)
    assert options.rules == (
        Rule("exclude", "*.tmp", "glob"),
        Rule("include", r"\.html$", "regex"),
    )
    assert (options.remote_timezone, options.only_newer, options.dry_run) == (UTC, True, False)


def test_the_password_is_not_in_the_repr() -> None:
    options = Options(host="h", user="u", password="hunter2-secret")
    assert "hunter2-secret" not in repr(options)


def test_options_are_frozen_and_keep_no_caller_list() -> None:
    excludes = ["*.tmp"]
    options = Options(host="h", user="u", password="p", exclude=excludes)
    excludes.append("*.bak")
    assert options.exclude == ("*.tmp",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.jobs = 2  # type: ignore[misc]


def test_site_symlink_with_swap_is_refused_before_any_connection(tmp_path: Path) -> None:
    # Port 9 (discard) on a TEST-NET address: a connection attempt would fail differently.
    with pytest.raises(UsageError, match="--site-symlink cannot be used with --swap"):
        asyncio.run(
            mirror(
                str(tmp_path),
                "www",
                host="192.0.2.1",
                port=9,
                user="u",
                password="p",
                swap=True,
                site_symlink=True,
            )
        )
    args = build_parser().parse_args(["site", "www", "--site-symlink"])
    assert options_from(args, Target("h", 21, "u", "p", "www")).site_symlink is True
