"""The pattern translation, table-driven and against glibc: a shell glob (``-X``/``-I``)
or a POSIX ERE (``-x``/``-i``) into a Python regex that matches what glibc's fnmatch()
and regcomp()/regexec() -- which lftp calls -- match.  What a pattern is matched
against (the path's tail, a directory's ``/``) is test_filters.py.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import random
import re
import sys
import warnings

import pytest

from asyncmirror.patterns import PatternError, compile_regex, ere_to_python, glob_to_regex

# --- differential checks against glibc, which lftp uses ---------------------------

_LIBC_NAME = ctypes.util.find_library("c")
glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or _LIBC_NAME is None,
    reason="compares with glibc's fnmatch/regcomp",
)


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(_LIBC_NAME)
    if not hasattr(libc, "gnu_get_libc_version"):
        pytest.skip("not glibc")
    return libc


@glibc_only
def test_glob_translation_matches_glibc_fnmatch() -> None:
    libc = _libc()
    fnm_pathname = 1
    tokens = ["a", "b", ".", "/", "*", "?", "[", "]", "!", "^", "-", "\\", "[:alpha:]", "1"]
    chars = ["a", "b", ".", "/", "1", "-", "]", "[", "!", "\\", "^", "*"]
    rng = random.Random(1)
    checked = 0
    for _ in range(4000):
        pattern = "".join(rng.choice(tokens) for _ in range(rng.randint(1, 6)))
        if "\\/" in pattern:
            continue  # glibc quirk: "*\/" never matches; nobody escapes a "/"
        try:
            rx = compile_regex(glob_to_regex(pattern))
        except PatternError:
            continue  # patterns refused here never match in glibc either
        for _ in range(5):
            s = "".join(rng.choice(chars) for _ in range(rng.randint(0, 5)))
            expected = libc.fnmatch(pattern.encode(), s.encode(), fnm_pathname) == 0
            assert (rx.fullmatch(s) is not None) is expected, (pattern, s)
            checked += 1
    assert checked > 10000


@glibc_only
def test_regex_translation_matches_glibc_regexec() -> None:
    libc = _libc()
    reg_extended, reg_nosub = 1, 8
    tokens = ["a", "b", ".", "/", "^", "$", "[", "]", "(", ")", "|", "*", "+", "?", "-"]
    tokens += ["[:alpha:]", "1", "\\.", "\\<", "\\>", "{2}", "é"]
    chars = ["a", "b", ".", "/", "1", "-", "]", "[", "é", "ab", "^", "$"]
    rng = random.Random(2)
    checked = 0
    for _ in range(3000):
        pattern = "".join(rng.choice(tokens) for _ in range(rng.randint(1, 6)))
        compiled = ctypes.create_string_buffer(1024)  # larger than any regex_t
        if libc.regcomp(compiled, pattern.encode(), reg_extended | reg_nosub) != 0:
            continue
        try:
            # Everything glibc accepts must be accepted here.
            rx = compile_regex(ere_to_python(pattern))
            for _ in range(5):
                s = "".join(rng.choice(chars) for _ in range(rng.randint(0, 5)))
                expected = libc.regexec(compiled, s.encode(), 0, None, 0) == 0
                assert (rx.search(s) is not None) is expected, (pattern, s)
                checked += 1
        finally:
            libc.regfree(compiled)
    assert checked > 5000


@pytest.mark.parametrize(
    ("pattern", "hits", "misses"),
    [
        ("[[]", "[", "]a"),
        ("[a-]", "a-", "b["),
        ("[&&]", "&", "a|"),
        ("[--]", "-", "a&"),
        ("[~~]", "~", "a-"),
        ("[||]", "|", "a&"),
    ],
)
def test_translation_output_is_plain_python_regex(pattern: str, hits: str, misses: str) -> None:
    # Nothing in a translated bracket may look like a nested set or a set
    # operation to Python (it warns, and may one day mean something else).
    for translate in (glob_to_regex, ere_to_python):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            compiled = re.compile(translate(pattern))
        assert all(compiled.fullmatch(c) for c in hits), (translate.__name__, pattern)
        assert not any(compiled.fullmatch(c) for c in misses), (translate.__name__, pattern)
