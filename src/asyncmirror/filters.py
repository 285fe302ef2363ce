"""lftp-compatible include/exclude rules for ``mirror``: which paths are left out.

This module is pure: no file system access, no I/O.  It answers one question,
:meth:`FilterSet.excludes`, for a relative POSIX path such as ``"a/b/c.txt"``.

The semantics are lftp's (``mirror -x/-i/-X/-I``), read from lftp's own source
(``src/PatternSet.cc``, ``src/FileSet.cc``, ``src/MirrorJob.cc``) and checked
against lftp 4.9 itself:

* **What is matched.**  The path relative to the mirror root, with a ``/``
  appended when it is a directory (``FileSet.cc: do_exclude_match``).  So a
  pattern that ends in ``/`` can only ever match directories.
* **Regexes** (``-x``/``-i``) are POSIX extended regexes searched *unanchored*
  in that path (``regexec`` without anchors): ``-x foo`` hits ``a/foo.txt``
  and ``food/``; anchor with ``^``/``$`` yourself.
* **Globs** (``-X``/``-I``) are matched with ``fnmatch(FNM_PATHNAME)`` against
  the *tail* of the path that has as many ``/`` as the pattern has
  (``PatternSet::Glob::Match``): ``*.zip`` is tried on the last component,
  ``def/g*`` on the last two.  Because a directory's path ends in ``/``, a glob
  without ``/`` is tried on the empty string after that slash for a directory:
  ``-X '.*'`` therefore never matches a directory (hence lftp users add
  ``-X '.*/'``), while ``-X '*'`` matches every directory.  ``*``, ``?`` and
  ``[...]`` never match ``/``; a leading ``/`` anchors nothing (such a glob
  can never match).
* **Order.**  The *last* rule that matches decides (``PatternSet::Match`` walks
  the rules newest first).  When no rule matches, the path is excluded if and
  only if the *first* rule is an include (lftp man page: "mirrored if it
  matches an include and does not match to excludes after the include, or
  does not match anything and the first check is exclude").
* **Directories when the first rule is an include.**  ``mirror`` then adds a
  lowest-priority include for ``/$`` (``MirrorJob.cc``: "Users usually don't
  want to exclude all directories when recursing"), so ``-I '*.txt'`` still
  descends into every directory; a directory is excluded only by a rule that
  matches it.
* **lftp's built-in default** ``mirror:exclude-regex`` = ``(^|/)(\\.in\\.|\\.nfs)``
  is put first when the first rule is an exclude (lftp 4.9.2 applies it then,
  and -- whatever its source comment says -- not when there are no rules).  It
  is opt-in here (``lftp_default_excludes=True``).

On top of the rules, asyncmirror's own files are always left out (see
:func:`always_excluded`).

Where this implementation deliberately differs from lftp, it refuses input
that lftp would accept but that can only surprise: an empty pattern (lftp's
``-x ''`` matches -- and with ``--delete-excluded`` deletes -- everything), and
the patterns :mod:`asyncmirror.patterns` refuses while translating them into
Python regexes (how globs and POSIX EREs are read is described there).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Literal

from asyncmirror.errors import UsageError
from asyncmirror.names import (
    LEGACY_STATE_NAME,
    LEGACY_TEMP_PREFIX,
    LOCK_DIR,
    STATE_NAME,
    TEMP_PREFIX,
)
from asyncmirror.patterns import PatternError, compile_regex, ere_to_python, glob_to_regex

Action = Literal["include", "exclude"]
Syntax = Literal["glob", "regex"]

#: lftp's default ``mirror:exclude-regex``: its own partial downloads and NFS silly-renames.
LFTP_DEFAULT_EXCLUDE_REGEX = r"(^|/)(\.in\.|\.nfs)"

# lftp's option letters and long names (MirrorJob.cc, mirror_opts) -> what they mean.
_OPTIONS: dict[str, tuple[Action, Syntax]] = {
    "-x": ("exclude", "regex"),
    "--exclude": ("exclude", "regex"),
    "-i": ("include", "regex"),
    "--include": ("include", "regex"),
    "-X": ("exclude", "glob"),
    "--exclude-glob": ("exclude", "glob"),
    "-I": ("include", "glob"),
    "--include-glob": ("include", "glob"),
}

_OWN_AT_ROOT = frozenset({STATE_NAME, LEGACY_STATE_NAME, LOCK_DIR})


def always_excluded(relpath: str) -> bool:
    """True for asyncmirror's own files, which no rule can bring back in.

    That is the state file :data:`STATE_NAME` and the deploy lock
    :data:`LOCK_DIR` (with what is in it) at the root, and any name
    starting with :data:`TEMP_PREFIX` at any depth (uploads in progress).  They
    must never be uploaded from SRC nor be deleted as strays on DST, whatever
    the user's rules say, so the check comes before the rules.
    """
    if relpath in _OWN_AT_ROOT or relpath.partition("/")[0] == LOCK_DIR:
        return True
    # rpartition gives the whole string when there is no "/": the basename either way.
    return relpath.rpartition("/")[2].startswith((TEMP_PREFIX, LEGACY_TEMP_PREFIX))


def _tail(path: str, slashes: int) -> str:
    """The end of *path* holding *slashes* slashes, or all of it (PatternSet::Glob::Match)."""
    end = len(path)
    for _ in range(slashes + 1):
        end = path.rfind("/", 0, end)
        if end < 0:
            return path
    return path[end + 1 :]


class Rule:
    """One ``-x``/``-i``/``-X``/``-I`` option: an action, a pattern and its syntax.

    The pattern is compiled when the rule is made, so a bad pattern fails at
    once with a :class:`~asyncmirror.errors.UsageError` naming it.  Rules are
    immutable, and compare and hash by ``(action, pattern, syntax)``.  (Written
    out rather than a frozen dataclass, which costs 1 ms of start-up to create:
    see :mod:`asyncmirror.entries`.)
    """

    # Read-only properties over private slots: setting a field fails (and mypy
    # says so), while copy and pickle rebuild a rule from its slots as usual.
    __slots__ = ("_action", "_compiled", "_pattern", "_slashes", "_syntax")

    def __init__(self, action: Action, pattern: str, syntax: Syntax) -> None:
        if action not in ("include", "exclude"):
            raise UsageError(f"unknown filter action {action!r}")
        if syntax not in ("glob", "regex"):
            raise UsageError(f"unknown pattern syntax {syntax!r}")
        kind = "regular expression" if syntax == "regex" else "glob pattern"
        if not pattern:
            raise UsageError(
                f"empty {kind}",
                hint="an empty pattern would match every path; remove the option",
            )
        try:
            if syntax == "regex":
                compiled = compile_regex(ere_to_python(pattern))
                slashes = -1
            else:
                compiled = compile_regex(glob_to_regex(pattern))
                # lftp counts every "/" in the raw pattern, even escaped or in brackets.
                slashes = pattern.count("/")
        except (PatternError, re.error) as exc:
            problem = exc.msg if isinstance(exc, re.error) else str(exc)
            hint = (
                "-x/-i take POSIX extended regular expressions, e.g. -x '\\.bak$'"
                if syntax == "regex"
                else "-X/-I take shell globs, e.g. -X '*.bak' or -X 'cache/' for a directory"
            )
            raise UsageError(f"invalid {kind} {pattern!r}: {problem}", hint=hint) from None
        self._action: Action = action
        self._pattern = pattern
        self._syntax: Syntax = syntax
        self._compiled = compiled
        self._slashes = slashes

    @property
    def action(self) -> Action:
        return self._action

    @property
    def pattern(self) -> str:
        return self._pattern

    @property
    def syntax(self) -> Syntax:
        return self._syntax

    @property
    def compiled(self) -> re.Pattern[str]:
        """The matcher: searched in the path for a regex, fullmatched on its tail for a glob."""
        return self._compiled

    @property
    def slashes(self) -> int:
        """For a glob, how many "/" it has (how much of the path's tail it sees); -1 for a regex."""
        return self._slashes

    def _key(self) -> tuple[str, str, str]:
        return (self._action, self._pattern, self._syntax)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rule):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Rule(action={self.action!r}, pattern={self.pattern!r}, syntax={self.syntax!r})"

    @classmethod
    def from_option(cls, option: str, pattern: str) -> Rule:
        """The rule for an lftp mirror option: ``-x``/``--exclude``, ``-i``/``--include``,
        ``-X``/``--exclude-glob`` or ``-I``/``--include-glob``."""
        try:
            action, syntax = _OPTIONS[option]
        except KeyError:
            raise UsageError(f"unknown filter option {option!r}") from None
        return cls(action, pattern, syntax)

    def matches(self, path: str) -> bool:
        """Whether this rule's pattern matches *path*, given the lftp way.

        *path* is relative, with a trailing ``/`` for a directory -- the string
        lftp matches, not a bare relpath (see :meth:`FilterSet.excludes`).
        """
        if self._slashes < 0:
            return self._compiled.search(path) is not None
        return self._compiled.fullmatch(_tail(path, self._slashes)) is not None


class FilterSet:
    """An ordered list of :class:`Rule` with lftp's mirror semantics.

    Immutable once built.  ``FilterSet.empty()`` excludes nothing but
    asyncmirror's own files.
    """

    __slots__ = ("_checks", "_file_checks", "_first_include", "_rules")

    # Re-exported so callers holding a FilterSet can ask without importing the module.
    always_excluded = staticmethod(always_excluded)

    def __init__(self, rules: Iterable[Rule] = (), *, lftp_default_excludes: bool = False) -> None:
        """Build from *rules* in command-line order (the last matching rule wins).

        With *lftp_default_excludes*, lftp's ``mirror:exclude-regex`` default
        (:data:`LFTP_DEFAULT_EXCLUDE_REGEX`) is put first, exactly when lftp 4.9
        does: when the first rule is an exclude (not with no rules at all, nor
        when the first rule is an include: then what no rule matches is
        excluded anyway).
        """
        self._rules: tuple[Rule, ...] = tuple(rules)
        effective = list(self._rules)
        if lftp_default_excludes and effective and effective[0].action == "exclude":
            effective.insert(0, Rule("exclude", LFTP_DEFAULT_EXCLUDE_REGEX, "regex"))
        # Checked newest first; kept as plain tuples so the per-path loop does no
        # attribute lookups (it runs once per file in the tree).
        checks: list[
            tuple[tuple[bool, Callable[[str], re.Match[str] | None], int, bool], bool]
        ] = []
        for rule in reversed(effective):
            method = rule.compiled.search if rule.slashes < 0 else rule.compiled.fullmatch
            # A glob without "/" sees "" for every directory (what follows its final
            # "/"): whether it matches "" is the same for all of them.
            hits_dir = rule.slashes == 0 and rule.compiled.fullmatch("") is not None
            check = (rule.action == "exclude", method, rule.slashes, hits_dir)
            # A glob ending in "/" matches only a string ending in "/": never a
            # file's path (lftp's '-X .*/' recipe), so files skip it.
            checks.append((check, rule.syntax == "glob" and rule.pattern.endswith("/")))
        self._checks = tuple(c for c, _ in checks)
        self._file_checks = tuple(c for c, dirs_only in checks if not dirs_only)
        # No rule matched: excluded iff the first rule is an include (PatternSet::Match).
        self._first_include = bool(effective) and effective[0].action == "include"

    @classmethod
    def from_rules(cls, rules: Iterable[Rule], *, lftp_default_excludes: bool = False) -> FilterSet:
        """Same as the constructor: *rules* in command-line order."""
        return cls(rules, lftp_default_excludes=lftp_default_excludes)

    @classmethod
    def empty(cls) -> FilterSet:
        """A set with no rules: only :func:`always_excluded` paths are left out."""
        return cls(())

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules as given (without lftp's optional defaults)."""
        return self._rules

    def excludes(self, relpath: str, *, is_dir: bool) -> bool:
        """True when *relpath* is left out of the mirror.

        *relpath* is relative and POSIX (``"a/b/c.txt"``): no leading ``/``, no
        trailing ``/`` -- pass *is_dir* instead; the ``/`` that lftp appends to
        a directory's path before matching is added here.  A directory that is excluded must
        not be descended into: what lies below it is excluded with it, whatever
        the rules would say of those paths on their own (lftp never lists them).
        """
        # always_excluded(), with a substring test first: this runs once per path.
        if relpath in _OWN_AT_ROOT or (("asyncmirror-" in relpath) and always_excluded(relpath)):
            return True
        if not self._checks:
            return False
        path = relpath + "/" if is_dir else relpath
        base: str | None = None
        for is_exclude, match, slashes, hits_dir in self._checks if is_dir else self._file_checks:
            if slashes == 0:
                # The common case (-X '*.bak'): the part after the last "/" -- which
                # for a directory is "", so the answer was worked out in advance.
                if is_dir:
                    if hits_dir:
                        return is_exclude
                    continue
                if base is None:
                    base = relpath[relpath.rfind("/") + 1 :]
                hit = match(base)
            elif slashes < 0:
                hit = match(path)
            else:
                hit = match(_tail(path, slashes))
            if hit is not None:
                return is_exclude
        # lftp's AddFirst(INCLUDE, "/$") when the first rule is an include: a directory
        # no rule matched is kept, so that recursion still finds the included files.
        return self._first_include and not is_dir

    def __repr__(self) -> str:
        return f"FilterSet({list(self._rules)!r})"


#: Dotfiles a website needs (Apache settings, PHP settings, ACME and other
#: well-known URLs) that lftp's ``-X '.*' -X '.*/'`` recipe leaves out.
SITE_DOTFILES: tuple[tuple[str, bool], ...] = (
    (".htaccess", False),
    (".user.ini", False),
    (".well-known", True),
)


def left_out_site_dotfiles(filters: FilterSet, present: Iterable[tuple[str, bool]]) -> list[str]:
    """Which of ``present`` (SRC's site dotfiles: name, is_dir) the filters leave out.

    Directories are named with a trailing ``/``, as the ``-I`` that keeps them takes it.
    """
    return [
        name + ("/" if is_dir else "")
        for name, is_dir in present
        if filters.excludes(name, is_dir=is_dir)
    ]
