"""What a run's :class:`~asyncmirror.options.Options` mean to the parts below it.

No I/O: the filter rules (lftp's four lists, or the ordered rules the command
line gathers), the server to log in to, and the planner's options -- each
built in one place, so a new option touches one function here.
"""

from __future__ import annotations

from collections.abc import Callable

from .filters import FilterSet, Rule
from .login import ServerConfig
from .options import Options
from .planner import PlanOptions
from .transport import TLSPolicy


def filter_set(options: Options) -> FilterSet:
    """The rules: ``options.rules`` in their order, else includes before excludes."""
    rules = options.rules
    if rules is None:
        rules = [Rule("include", p, "glob") for p in options.include]
        rules += [Rule("include", p, "regex") for p in options.include_regex]
        rules += [Rule("exclude", p, "glob") for p in options.exclude]
        rules += [Rule("exclude", p, "regex") for p in options.exclude_regex]
    return FilterSet.from_rules(rules)


def server_config(options: Options) -> ServerConfig:
    """Where and how the run's sessions log in."""
    return ServerConfig(
        host=options.host,
        port=options.port,
        user=options.user,
        password=options.password,
        tls=TLSPolicy(
            ca_file=options.ca_file, fingerprint=options.fingerprint, insecure=options.insecure
        ),
        timeout=options.timeout,
        trace=options.trace,
        early=tuple(options.early_connections),
    )


def plan_options(options: Options, filters: FilterSet) -> PlanOptions:
    """The planner's options; what the filters leave out is never deleted."""
    return PlanOptions(
        only_newer=options.only_newer, delete=options.delete, excluded=_excluder(filters)
    )


def _excluder(filters: FilterSet) -> Callable[[str, bool], bool]:
    def excluded(path: str, is_dir: bool) -> bool:
        return filters.excludes(path, is_dir=is_dir)

    return excluded
