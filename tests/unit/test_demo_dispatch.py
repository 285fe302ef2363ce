"""`asyncmirror demo ...` is the demo unless an operand says it is a mirror of ./demo."""

from __future__ import annotations

import pytest

from asyncmirror.demo import is_demo


@pytest.mark.parametrize(
    ("argv", "demo"),
    [
        ([], True),
        (["--files", "30", "--no-progress"], True),
        (["-j", "3", "--keep"], True),
        (["--files", "x"], True),  # the demo's own error to report
        (["www"], False),
        (["www", "-j", "4", "--delete"], False),
        (["--delete", "www"], False),
        (["ftps://me@host/www"], False),
    ],
)
def test_the_demo_word_dispatch(argv: list[str], demo: bool) -> None:
    assert is_demo(argv) is demo
