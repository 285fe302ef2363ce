"""lftp's patterns in Python's ``re``: shell globs and POSIX extended regexes.

Pure: text in, a Python regex out.  :func:`glob_to_regex` gives a regex that
fullmatches what glibc's ``fnmatch(pattern, s, FNM_PATHNAME)`` matches (the
call lftp's ``-X``/``-I`` make); :func:`ere_to_python` rewrites a POSIX ERE
(lftp's ``-x``/``-i``, glibc's ``regcomp``) so that :mod:`re` reads it the same
way.  What a pattern is matched *against* (the path's tail, a trailing ``/``
for a directory) is :mod:`asyncmirror.filters`' business.

Input that lftp would accept but that can only surprise is refused with a
:class:`PatternError`: a glob ending in a lone backslash or naming an unknown
``[:class:]`` (lftp's never match anything).  Regexes are run by Python's
:mod:`re` after POSIX bracket expressions (``[[:alpha:]]``, ``[\\]``), stacked
quantifiers, an unmatched ``)`` and GNU ``\\<``/``\\>`` have been given their
POSIX meaning; the remaining differences (e.g. ``\\d`` means a digit, where glibc
reads a literal ``d``; ``(?i)`` is accepted) only add constructs lftp users do
not write.  Names are matched as Unicode text: ``?`` is one character (glibc
2.36 also lets ``??`` match a two-byte UTF-8 character), ranges are by code point.
Both translations are checked against glibc itself in ``tests/unit/test_patterns.py``.
"""

from __future__ import annotations

import re
import warnings

__all__ = ["PatternError", "compile_regex", "ere_to_python", "glob_to_regex"]

# POSIX character classes as Python regex alternatives.  ``alpha``/``alnum``/``space``
# follow Unicode (as glibc does in a UTF-8 locale); the rest use their C-locale
# (ASCII) definitions, since Python's ``re`` has no Unicode case or punctuation classes.
_POSIX_CLASSES: dict[str, str] = {
    "alpha": r"[^\W\d_]",
    "alnum": r"[^\W_]",
    "digit": r"[0-9]",
    "xdigit": r"[0-9A-Fa-f]",
    "upper": r"[A-Z]",
    "lower": r"[a-z]",
    "space": r"\s",
    "blank": r"[ \t]",
    "punct": r"[!-/:-@\[-`{-~]",
    "cntrl": r"[\x00-\x1f\x7f]",
    "print": r"[ -~]",
    "graph": r"[!-~]",
}


class PatternError(Exception):
    """A problem found while translating a pattern (``filters.Rule`` makes it a usage error)."""


def _bracket_atom(p: str, i: int, *, escapes: bool) -> tuple[str, int] | None:
    """One character of a bracket expression at ``p[i]``: ``(char, next_index)``.

    Handles ``[.c.]``/``[=c=]`` (single characters only) and, in globs, a
    backslash escape.  None when the pattern ends first (unterminated bracket).
    """
    if i >= len(p):
        return None
    c = p[i]
    if c == "[" and i + 1 < len(p) and p[i + 1] in ".=":
        kind = p[i + 1]
        end = p.find(kind + "]", i + 2)
        if end < 0:
            # glibc takes "[." as the start of a collating symbol, unterminated: no match.
            raise PatternError(f"unterminated [{kind} in a bracket expression")
        name = p[i + 2 : end]
        if len(name) != 1:
            raise PatternError(f"unsupported collating element [{kind}{name}{kind}]")
        return name, end + 2
    if c == "\\" and escapes:
        if i + 1 >= len(p):
            return None
        return p[i + 1], i + 2
    return c, i + 1


def _bracket(p: str, i: int, *, glob: bool) -> tuple[str, int] | None:
    """Translate the bracket expression whose ``[`` is at ``p[i - 1]``.

    Returns ``(python_regex, index_after_closing_bracket)``, or None when there
    is no closing ``]``.  Every member is escaped, so nothing in the set can be
    read by Python as a nested set or set operation (``[[``, ``--``, ``&&``),
    which Python would warn about -- and this project turns warnings into errors.

    Glob rules (glibc fnmatch): ``!`` or ``^`` negates, ``\\`` escapes, and with
    FNM_PATHNAME a bracket never matches ``/``.  Regex rules (POSIX ERE): only
    ``^`` negates and ``\\`` is an ordinary character.
    """
    n = len(p)
    negate = False
    if i < n and (p[i] == "^" or (glob and p[i] == "!")):
        negate = True
        i += 1
    singles: list[str] = []
    classes: list[str] = []
    first = True
    while True:
        if i >= n:
            return None
        if p[i] == "]" and not first:
            i += 1
            break
        first = False
        if p.startswith("[:", i):
            end = p.find(":]", i + 2)
            if end >= 0:
                name = p[i + 2 : end]
                if name not in _POSIX_CLASSES:
                    raise PatternError(f"unknown character class [:{name}:]")
                classes.append(_POSIX_CLASSES[name])
                i = end + 2
                continue
        atom = _bracket_atom(p, i, escapes=glob)
        if atom is None:
            return None
        lo, i = atom
        # "a-z" is a range unless the "-" is the last member ("[a-]").
        if i + 1 < n and p[i] == "-" and p[i + 1] != "]":
            if p.startswith("[:", i + 1):
                raise PatternError("a character class cannot end a range")
            hi_atom = _bracket_atom(p, i + 1, escapes=glob)
            if hi_atom is None:
                return None
            hi, i = hi_atom
            if lo > hi:
                if not glob:
                    raise PatternError(f"invalid range {lo}-{hi} (start is after end)")
                continue  # glibc fnmatch: a reversed range matches nothing
            singles.append(f"{re.escape(lo)}-{re.escape(hi)}")
        else:
            singles.append(re.escape(lo))
    members = classes[:]
    if singles:
        members.insert(0, "[" + "".join(singles) + "]")
    alternatives = "|".join(members) if members else "(?!)"
    if negate:
        # Compiled with DOTALL, so "." also takes a newline, as POSIX does.
        # One group, so that a quantifier after it covers the lookahead too.
        body = f"(?:(?!{alternatives})" + ("[^/]" if glob else ".") + ")"
    else:
        body = ("(?!/)" if glob else "") + f"(?:{alternatives})"
    return body, i


def glob_to_regex(pattern: str) -> str:
    """A Python regex that fullmatches what ``fnmatch(pattern, s, FNM_PATHNAME)`` matches."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if not out or out[-1] != "[^/]*":  # "**" is just "*" in fnmatch
                out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i >= n:
                raise PatternError("it ends with a lone backslash")
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "[":
            translated = _bracket(pattern, i, glob=True)
            if translated is None:
                out.append(re.escape(c))  # glibc: an unclosed "[" is an ordinary character
            else:
                body, i = translated
                out.append(body)
        else:
            out.append(re.escape(c))
    return "".join(out)


# GNU regex word and buffer anchors, which Python spells differently.
_GNU_ESCAPES = {"<": r"\b(?=\w)", ">": r"\b(?<=\w)", "`": r"\A", "'": r"\Z"}
# A POSIX interval: {m}, {m,}, {m,n} (and glibc's {,n}).
_INTERVAL = re.compile(r"\{\d*(?:,\d*)?\}")


def ere_to_python(pattern: str) -> str:
    """Rewrite a POSIX ERE so that Python's ``re`` reads it the way glibc's regcomp does.

    Beyond bracket expressions (see :func:`_bracket`), two things differ: POSIX
    lets quantifiers stack (``a+?`` is ``(a+)?``, ``a**`` is fine) where Python
    reads a lazy or possessive quantifier or refuses, and an unmatched ``)`` is
    an ordinary character.  Everything else goes to Python unchanged.
    """
    out: list[str] = []
    groups: list[int] = []  # where in ``out`` each open group starts
    atom = -1  # where in ``out`` the last atom (what a quantifier applies to) starts
    quantified = False  # whether that atom already carries a quantifier
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        interval = _INTERVAL.match(pattern, i) if c == "{" else None
        if c in "*+?" or interval is not None:
            q = interval.group() if interval is not None else c
            if quantified and atom >= 0:
                # POSIX applies the new quantifier to the quantified atom: make it a group.
                out[atom:] = ["(?:" + "".join(out[atom:]) + ")"]
            out.append(q)
            quantified = True
            i += len(q)
            continue
        quantified = False
        if c == "\\":
            if i + 1 >= n:
                raise PatternError("trailing backslash")
            d = pattern[i + 1]
            atom = len(out)
            out.append(_GNU_ESCAPES.get(d, "\\" + d))
            i += 2
        elif c == "[":
            translated = _bracket(pattern, i + 1, glob=False)
            if translated is None:
                raise PatternError("unmatched [ or [^")
            atom = len(out)
            body, i = translated
            out.append(body)
        elif c == "(":
            groups.append(len(out))
            out.append(c)
            atom = -1
            i += 1
        elif c == ")":
            if groups:
                atom = groups.pop()
                out.append(c)
            else:
                atom = len(out)
                out.append(r"\)")
            i += 1
        else:
            # "|", "^" and "$" start nothing a quantifier could stack on.
            atom = -1 if c in "|^$" else len(out)
            out.append(c)
            i += 1
    return "".join(out)


def compile_regex(source: str) -> re.Pattern[str]:
    """Compile a translated pattern (DOTALL: POSIX's ``.`` and negated brackets take a newline)."""
    with warnings.catch_warnings():
        # Translation escapes everything Python warns about; belt and braces, since
        # a compile-time warning must not become an error under filterwarnings=error.
        warnings.simplefilter("ignore")
        return re.compile(source, re.DOTALL)
