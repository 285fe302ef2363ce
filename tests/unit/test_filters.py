"""lftp mirror -x/-i/-X/-I semantics, table-driven.

Expected values come from lftp itself: each row was checked against lftp 4.9.2
(``mirror -R --dry-run`` between two local directories) or follows from its
source (PatternSet.cc, FileSet.cc, MirrorJob.cc) and man page.  How a single
pattern is translated into a Python regex (and checked against glibc) is in
test_patterns.py.
"""

from __future__ import annotations

import copy
import pickle
import re
from collections.abc import Callable
from typing import Any

import pytest

from asyncmirror.errors import UsageError
from asyncmirror.filters import (
    LFTP_DEFAULT_EXCLUDE_REGEX,
    FilterSet,
    Rule,
    always_excluded,
    left_out_site_dotfiles,
)
from asyncmirror.names import LOCK_DIR, STATE_NAME, TEMP_PREFIX

Opts = tuple[tuple[str, str], ...]

SEED: Opts = (("-X", ".*"), ("-X", ".*/"))  # lftp -X '.*' -X '.*/'


def fs(opts: Opts, *, defaults: bool = False) -> FilterSet:
    return FilterSet.from_rules(
        [Rule.from_option(o, p) for o, p in opts], lftp_default_excludes=defaults
    )


# (rules, relpath, is_dir, excluded)
CASES: list[tuple[Opts, str, bool, bool]] = [
    # --- no rules: everything is mirrored
    ((), "a.txt", False, False),
    ((), ".env", False, False),
    ((), "a/b", True, False),
    # --- the seed: dotfiles and dot-directories at any depth
    (SEED, ".env", False, True),
    (SEED, "a/.hidden", False, True),
    (SEED, "a/b/c/.htaccess", False, True),
    (SEED, ".git", True, True),
    (SEED, "a/b/.cache", True, True),
    (SEED, ".git", False, True),  # a file named .git (a submodule's gitfile)
    (SEED, "a.txt", False, False),
    (SEED, "a/b.c/d.e", False, False),
    (SEED, "dir.with.dots", True, False),
    (SEED, "a/x.", False, False),
    # --- -X '.*' alone: a glob without "/" sees "" for a directory, so dot-dirs stay
    ((("-X", ".*"),), ".git", True, False),
    ((("-X", ".*"),), ".env", False, True),
    # --- -X '.*/' alone: directories only
    ((("-X", ".*/"),), ".git", True, True),
    ((("-X", ".*/"),), ".env", False, False),
    # --- "*" matches the empty tail of a directory: -X '*' excludes everything
    ((("-X", "*"),), "a", True, True),
    ((("-X", "*"),), "a.txt", False, True),
    ((("-X", "*/"),), "a", True, True),
    ((("-X", "*/"),), "a.txt", False, False),
    # --- PatternSet.cc: "abc/def.zip matches *.zip", "abc/def/ghi matches def/g*"
    ((("-X", "*.zip"),), "abc/def.zip", False, True),
    ((("-X", "def/g*"),), "abc/def/ghi", False, True),
    ((("-X", "def/g*"),), "abc/xdef/ghi", False, False),
    ((("-X", "def/g*"),), "ghi", False, False),
    # --- a glob with "/" sees as many trailing components
    ((("-X", "a/*"),), "a", True, True),  # "a/" matches "a/*": the directory goes too
    ((("-X", "a/*"),), "a/x", False, True),
    ((("-X", "a/*"),), "b/a/x", False, True),
    ((("-X", "a/*"),), "a/b", True, False),  # tail "b/" (moot: a/ itself is excluded)
    ((("-X", "b/c.txt"),), "a/b/c.txt", False, True),
    ((("-X", "b/c.txt"),), "c.txt", False, False),
    ((("-X", "cache/"),), "cache", True, True),
    ((("-X", "cache/"),), "tmp/cache", True, True),
    ((("-X", "cache/"),), "cache", False, False),
    ((("-X", "tmp/cache/"),), "tmp/cache", True, True),
    ((("-X", "tmp/cache/"),), "x/tmp/cache", True, True),
    ((("-X", "tmp/cache/"),), "cache", True, False),
    ((("-X", "*/*/*"),), "a/b/c", False, True),
    ((("-X", "*/*/*"),), "a/b", True, True),  # "a/b/" has the three parts a, b, ""
    ((("-X", "*/*/*"),), "a/b", False, False),
    # --- a leading "/" anchors nothing in lftp: such a glob never matches
    ((("-X", "/a"),), "a", False, False),
    ((("-X", "/a"),), "a", True, False),
    ((("-X", "/a/"),), "a", True, False),
    # --- brackets, "?" and escapes (fnmatch with FNM_PATHNAME)
    ((("-X", "[a-c]*"),), "beta", False, True),
    ((("-X", "[a-c]*"),), "delta", False, False),
    ((("-X", "[!a-c]*"),), "delta", False, True),
    ((("-X", "[^a-c]*"),), "delta", False, True),
    ((("-X", "[]]x"),), "]x", False, True),
    ((("-X", "[[:upper:]]*"),), "Makefile", False, True),
    ((("-X", "[[:upper:]]*"),), "makefile", False, False),
    ((("-X", "*[[:space:]]*"),), "file one.txt", False, True),
    ((("-X", "?"),), "a", False, True),
    ((("-X", "?"),), "ab", False, False),
    ((("-X", "\\*"),), "*", False, True),
    ((("-X", "\\*"),), "a", False, False),
    ((("-X", "-*"),), "-dash", False, True),
    ((("-X", "\\-dash/"),), "-dash", True, True),
    ((("-X", "[a"),), "[a", False, True),  # an unclosed "[" is an ordinary character
    ((("-X", "dir with space/"),), "dir with space", True, True),
    ((("-X", "*.TXT"),), "a.txt", False, False),  # case-sensitive
    # --- UTF-8 names: "?" is one character, not one byte
    ((("-X", "caf?"),), "café", True, False),
    ((("-X", "caf?/"),), "café", True, True),
    ((("-X", "menü.txt"),), "café/menü.txt", False, True),
    ((("-X", "[é]*"),), "été", False, True),
    ((("-X", "???"),), "日本語", False, True),
    ((("-x", "é"),), "café/x", False, True),
    ((("-x", "^日本"),), "日本語/a.txt", False, True),
    # --- regexes are unanchored searches in the relative path (+ "/" for a directory)
    ((("-x", "foo"),), "foo.txt", False, True),
    ((("-x", "foo"),), "x/foo/y.txt", False, True),
    ((("-x", "foo"),), "food", True, True),
    ((("-x", "foo"),), "bar", False, False),
    ((("-x", "^foo"),), "foo.txt", False, True),
    ((("-x", "^foo"),), "x/foo/y.txt", False, False),
    ((("-x", "^a/"),), "a", True, True),
    ((("-x", "^a/"),), "a/x", False, True),
    ((("-x", "^a/"),), "ba/x", False, False),
    ((("-x", "\\.txt$"),), "a.txt", False, True),
    ((("-x", "\\.txt$"),), "a.txt", True, False),  # "a.txt/" does not end in .txt
    ((("-x", "/$"),), "sub", True, True),
    ((("-x", "/$"),), "sub/x", False, False),
    ((("-x", "(^|/)\\."),), "a/.env", False, True),
    ((("-x", "(^|/)\\."),), "a.b", False, False),
    ((("-x", "\\<foo\\>"),), "x/foo/y.txt", False, True),
    ((("-x", "\\<foo\\>"),), "food", True, False),
    ((("-x", "[[:digit:]]{4}"),), "logs/2024/app.log", False, True),
    ((("-x", "[[:digit:]]{4}"),), "logs/app.log", False, False),
    ((("-x", "ab+?c"),), "ac", False, True),  # POSIX: (b+)? -- not a lazy b+
    ((("-x", "x{2}?y"),), "y", False, True),  # POSIX: (x{2})?
    ((("-x", "a)"),), "a)", False, True),  # an unmatched ")" is an ordinary character
    ((("-x", "[\\]"),), "a\\b", False, True),  # "\" is ordinary inside a POSIX bracket
    ((("-x", "[^]]{2}é"),), "$]é1", False, False),
    # --- the first rule is an include: unmatched files are excluded, directories kept
    ((("-I", "*.txt"),), "x.txt", False, False),
    ((("-I", "*.txt"),), "sub/x.txt", False, False),
    ((("-I", "*.txt"),), "x.log", False, True),
    ((("-I", "*.txt"),), "sub", True, False),
    ((("-i", "\\.txt$"),), "sub", True, False),
    ((("-i", "\\.txt$"),), "x.log", False, True),
    ((("-I", "logs/"),), "logs", True, False),
    ((("-I", "logs/"),), "logs/a.txt", False, True),
    # ... unless a rule excludes the directory: -x . before the include (lavv17/lftp#192)
    ((("-x", "."), ("-i", "\\.txt$")), "sub", True, True),
    ((("-x", "."), ("-i", "\\.txt$")), "x.txt", False, False),
    ((("-x", "."), ("-i", "\\.txt$")), "x.log", False, True),
    # --- include then exclude: the later rule wins where both match
    ((("-I", "*.txt"), ("-X", "secret*")), "secret.txt", False, True),
    ((("-I", "*.txt"), ("-X", "secret*")), "sub/secret.txt", False, True),
    ((("-I", "*.txt"), ("-X", "secret*")), "public.txt", False, False),
    ((("-I", "*.txt"), ("-X", "secret*")), "x.log", False, True),
    ((("-i", "^logs/"), ("-x", "\\.log$")), "logs/a.log", False, True),
    ((("-i", "^logs/"), ("-x", "\\.log$")), "logs/a.txt", False, False),
    ((("-i", "^logs/"), ("-x", "\\.log$")), "other.txt", False, True),
    # --- exclude then include: the include brings a path back
    ((("-X", "*.log"), ("-I", "keep.log")), "keep.log", False, False),
    ((("-X", "*.log"), ("-I", "keep.log")), "sub/keep.log", False, False),
    ((("-X", "*.log"), ("-I", "keep.log")), "a.log", False, True),
    ((("-X", "*.log"), ("-I", "keep.log")), "a.txt", False, False),
    ((("-X", "*"), ("-I", "*/"), ("-I", "*.txt")), "sub", True, False),
    ((("-X", "*"), ("-I", "*/"), ("-I", "*.txt")), "sub/a.txt", False, False),
    ((("-X", "*"), ("-I", "*/"), ("-I", "*.txt")), "sub/a.log", False, True),
    ((("-x", "secret"), ("-i", "sub/"), ("-x", "public")), "sub", True, False),
    ((("-x", "secret"), ("-i", "sub/"), ("-x", "public")), "sub/public.txt", False, True),
    ((("-x", "secret"), ("-i", "sub/"), ("-x", "public")), "sub/secret.txt", False, False),
    ((("-x", "secret"), ("-i", "sub/"), ("-x", "public")), "secret.txt", False, True),
    # --- asyncmirror's own files, whatever the rules
    ((), STATE_NAME, False, True),
    ((("-I", "*"),), STATE_NAME, False, True),
    ((), "sub/" + STATE_NAME, False, False),  # only the root one is the state file
    ((), TEMP_PREFIX + "1a2b-x.txt", False, True),
    ((("-i", "."),), "a/b/" + TEMP_PREFIX + "1a2b-x.txt", False, True),
    ((), "a/x" + TEMP_PREFIX, False, False),
]


@pytest.mark.parametrize(("opts", "relpath", "is_dir", "excluded"), CASES)
def test_excludes(opts: Opts, relpath: str, is_dir: bool, excluded: bool) -> None:
    assert fs(opts).excludes(relpath, is_dir=is_dir) is excluded


# lftp's mirror:exclude-regex default, (^|/)(\.in\.|\.nfs): (rules, relpath, excluded)
DEFAULT_CASES: list[tuple[Opts, str, bool]] = [
    ((("-X", "*.bak"),), ".in.part", True),
    ((("-X", "*.bak"),), "sub/.nfs0001", True),
    ((("-X", "*.bak"),), "a.in.x", False),  # ".in." must start a component
    ((("-X", "*.bak"),), "x.txt", False),
    ((("-X", "*.bak"), ("-I", ".in.keep")), ".in.keep", False),  # an include overrides it
    ((("-I", "*"),), ".in.part", False),  # not added before an include
    ((), ".in.part", False),  # lftp 4.9.2 does not add it when there are no rules
]


@pytest.mark.parametrize(("opts", "relpath", "excluded"), DEFAULT_CASES)
def test_lftp_default_excludes(opts: Opts, relpath: str, excluded: bool) -> None:
    assert fs(opts, defaults=True).excludes(relpath, is_dir=False) is excluded
    assert not fs(opts).excludes(relpath, is_dir=False)  # off by default


@pytest.mark.parametrize(
    ("relpath", "hit"),
    [
        (".in.page.html", True),  # lftp's own partial download, at any depth
        ("a/b/.in.x", True),
        (".nfs000123", True),  # an NFS silly-rename
        ("a/.nfsABC", True),
        ("a.in.x", False),  # only at the start of a name
        ("x/page.nfs", False),
        ("in.txt", False),
        ("a/nfs1", False),
    ],
)
def test_default_exclude_regex_is_lftps(relpath: str, hit: bool) -> None:
    assert (re.search(LFTP_DEFAULT_EXCLUDE_REGEX, relpath) is not None) is hit


@pytest.mark.parametrize(
    ("relpath", "expected"),
    [
        (STATE_NAME, True),
        ("a/" + STATE_NAME, False),
        (TEMP_PREFIX + "x", True),
        ("a/b/" + TEMP_PREFIX + "x", True),
        ("a/b/x" + TEMP_PREFIX, False),
        (TEMP_PREFIX.rstrip("-"), False),
        (LOCK_DIR, True),
        (LOCK_DIR + "/.htholder.json", True),
        ("a/" + LOCK_DIR, False),
        (LOCK_DIR + "-not", False),
        ("a.txt", False),
    ],
)
def test_always_excluded(relpath: str, expected: bool) -> None:
    assert always_excluded(relpath) is expected
    assert FilterSet.always_excluded(relpath) is expected
    assert FilterSet.empty().excludes(relpath, is_dir=False) is expected


# --- invalid patterns ------------------------------------------------------------

BAD: list[tuple[str, str, str]] = [
    ("-x", "(", "missing )"),
    ("-x", "[a-", "unmatched ["),
    ("-x", "*.bak", "nothing to repeat"),  # a glob given to -x: glibc refuses it too
    ("-x", "a\\", "trailing backslash"),
    ("-x", "[z-a]", "invalid range"),
    ("-x", "[[:nope:]]", "unknown character class"),
    ("-x", "", "empty regular expression"),
    ("-X", "", "empty glob pattern"),
    ("-X", "abc\\", "lone backslash"),
    ("-X", "[[:nope:]]", "unknown character class"),
    ("-X", "[a-[:digit:]]", "cannot end a range"),
    ("-X", "[[.ab.]]", "collating element"),
]


@pytest.mark.parametrize(("option", "pattern", "problem"), BAD)
def test_invalid_pattern(option: str, pattern: str, problem: str) -> None:
    with pytest.raises(UsageError) as info:
        Rule.from_option(option, pattern)
    line = info.value.user_line()
    assert problem in line
    assert "\n" not in line
    if pattern:
        assert repr(pattern) in line  # the message names the pattern
    assert info.value.exit_code == 2


def test_invalid_rule_fields() -> None:
    with pytest.raises(UsageError, match="unknown filter option"):
        Rule.from_option("--exclude-regex", "x")
    with pytest.raises(UsageError, match="action"):
        Rule("drop", "x", "glob")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="syntax"):
        Rule("exclude", "x", "pcre")  # type: ignore[arg-type]


# --- the API ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "action", "syntax"),
    [
        ("-x", "exclude", "regex"),
        ("--exclude", "exclude", "regex"),
        ("-i", "include", "regex"),
        ("--include", "include", "regex"),
        ("-X", "exclude", "glob"),
        ("--exclude-glob", "exclude", "glob"),
        ("-I", "include", "glob"),
        ("--include-glob", "include", "glob"),
    ],
)
def test_from_option(option: str, action: str, syntax: str) -> None:
    rule = Rule.from_option(option, "a")
    assert (rule.action, rule.pattern, rule.syntax) == (action, "a", syntax)


def test_rule_value_semantics() -> None:
    a = Rule("exclude", ".*", "glob")
    b = Rule("exclude", ".*", "glob")
    assert a == b
    assert hash(a) == hash(b)
    assert a != Rule("include", ".*", "glob")
    assert "compiled" not in repr(a)
    assert a.matches(".env")
    assert not a.matches("a/")  # the directory form
    with pytest.raises(AttributeError):
        a.pattern = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "clone", [copy.copy, copy.deepcopy, lambda x: pickle.loads(pickle.dumps(x))]
)
def test_rules_and_filter_sets_copy_and_pickle(clone: Callable[[Any], Any]) -> None:
    rules = [Rule("exclude", "*.bak", "glob"), Rule("include", r"keep\.bak$", "regex")]
    for rule in rules:
        twin = clone(rule)
        assert twin == rule
        assert hash(twin) == hash(rule)
        assert twin.slashes == rule.slashes
        assert twin.matches("a.bak") == rule.matches("a.bak")
    filters = clone(FilterSet.from_rules(rules))
    assert filters.rules == tuple(rules)
    assert filters.excludes("old.bak", is_dir=False)
    assert not filters.excludes("keep.bak", is_dir=False)


def test_filterset_keeps_rules_in_order() -> None:
    rules = [Rule("exclude", "*.log", "glob"), Rule("include", "keep.log", "glob")]
    f = FilterSet.from_rules(iter(rules))  # any iterable, consumed once
    assert f.rules == tuple(rules)
    assert "keep.log" in repr(f)
    assert FilterSet.empty().rules == ()


def test_empty_filterset_excludes_nothing_else() -> None:
    f = FilterSet.empty()
    assert not f.excludes("a", is_dir=True)
    assert not f.excludes(".git", is_dir=True)
    assert not f.excludes("a/.env", is_dir=False)


@pytest.mark.parametrize(
    ("opts", "present", "dropped"),
    [
        (
            SEED,
            [(".htaccess", False), (".user.ini", False), (".well-known", True)],
            [".htaccess", ".user.ini", ".well-known/"],
        ),
        ((*SEED, ("-I", ".htaccess")), [(".htaccess", False)], []),
        ((*SEED, ("-I", ".well-known/")), [(".well-known", True)], []),
        ((), [(".htaccess", False), (".well-known", True)], []),
        ((("-X", ".htaccess"),), [(".htaccess", False), (".well-known", True)], [".htaccess"]),
        (SEED, [], []),
    ],
)
def test_site_dotfiles_left_out_by_the_filters_are_named_as_the_i_that_keeps_them(
    opts: Opts, present: list[tuple[str, bool]], dropped: list[str]
) -> None:
    filters = fs(opts)
    assert left_out_site_dotfiles(filters, present) == dropped
    # The -I the notice suggests, appended to the same options, keeps every one.
    kept = fs((*opts, *(("-I", name) for name in dropped)))
    assert left_out_site_dotfiles(kept, present) == []
