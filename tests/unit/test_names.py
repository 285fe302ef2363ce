from __future__ import annotations

from asyncmirror.filters import FilterSet
from asyncmirror.names import TEMP_PREFIX, temporary


def test_temporary_name_stays_in_the_directory_and_ends_with_the_name() -> None:
    assert temporary("/www/a/b.html", "1a2b") == f"/www/a/{TEMP_PREFIX}1a2b-b.html"


def test_temporary_names_differ_between_calls() -> None:
    assert temporary("/x") != temporary("/x")


def test_the_filters_never_mirror_a_temporary_name() -> None:
    assert FilterSet.empty().excludes(temporary("a/b.html").lstrip("/"), is_dir=False)
