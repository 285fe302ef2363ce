"""The command line's grammar: -X/-I/-x/-i keep their order, seconds must be positive and
finite, no option takes a password, --version says what a bug report needs."""

from __future__ import annotations

import argparse
import importlib.metadata

import pytest

import asyncmirror
from asyncmirror.arguments import build_parser, filter_rules
from asyncmirror.filters import FilterSet


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["site", *argv] if argv else ["site", "www"])


def test_the_password_is_not_an_option() -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["site", "www", "--password", "x"])
    assert info.value.code == 2


# --- -X/-I/-x/-i keep their command-line order -------------------------------------------------


def test_rule_options_keep_their_order() -> None:
    args = parse(
        "www", "-X", "a", "-I", "b", "-x", "c", "-i", "d", "-X", "e", "--exclude-glob", "f"
    )
    assert args.rules == [
        ("-X", "a"),
        ("-I", "b"),
        ("-x", "c"),
        ("-i", "d"),
        ("-X", "e"),
        ("--exclude-glob", "f"),
    ]
    rules = filter_rules(args)
    assert [(r.action, r.pattern, r.syntax) for r in rules] == [
        ("exclude", "a", "glob"),
        ("include", "b", "glob"),
        ("exclude", "c", "regex"),
        ("include", "d", "regex"),
        ("exclude", "e", "glob"),
        ("exclude", "f", "glob"),
    ]


@pytest.mark.parametrize(
    ("argv", "secret_txt_excluded"),
    [
        # lftp: the last matching rule decides.
        (["-I", "*.txt", "-X", "secret*"], True),
        (["-X", "secret*", "-I", "*.txt"], False),
        (["-x", r"\.txt$", "-i", "^secret"], False),
        (["-i", "^secret", "-x", r"\.txt$"], True),
    ],
)
def test_rule_order_changes_what_is_mirrored(argv: list[str], secret_txt_excluded: bool) -> None:
    filters = FilterSet.from_rules(filter_rules(parse("www", *argv)))
    assert filters.excludes("secret.txt", is_dir=False) is secret_txt_excluded


def test_no_rule_options_means_no_rules() -> None:
    assert filter_rules(parse("www")) == []


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
@pytest.mark.parametrize("option", ["--timeout", "--deadline"])
def test_timeouts_must_be_positive_finite_seconds(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["src", "dst", option, value])
    assert exited.value.code == 2
    assert option in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0.5", "30", "1e3"])
def test_timeouts_accept_positive_seconds(value: str) -> None:
    args = build_parser().parse_args(["src", "dst", "--timeout", value, "--deadline", value])
    assert args.timeout == args.deadline == float(value)


def test_version_prints_the_release_and_what_it_runs_on(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["--version"])  # no SRC/DST needed
    assert stop.value.code == 0
    out = capsys.readouterr().out
    installed = importlib.metadata.version("asyncmirror")
    assert out.startswith(f"asyncmirror {installed} (Python "), out
    assert "OpenSSL" in out, out
    assert asyncmirror.__version__ == installed  # pyproject.toml and the package agree
