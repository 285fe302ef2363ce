"""How the benchmark stops: a failure it reports, or a signal it cleans up after."""

from __future__ import annotations


class BenchError(RuntimeError):
    """A tool failed or a server tree is wrong: the benchmark stops, loudly."""


class Interrupted(BaseException):
    """SIGTERM/SIGINT: unwind so every server, proxy and temp dir is cleaned up."""
