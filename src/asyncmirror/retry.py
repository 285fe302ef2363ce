"""The one retry policy: what is worth another try, how many tries, how long between.

Uploads, listings, pipelined batches, logins and the state write all ask the
same :class:`RetryPolicy` (``pool.retry``, built from ``--retries``), so
``--retries 5`` means the same everywhere: five more attempts after the
first, each after a jittered, exponentially growing wait.
"""

from __future__ import annotations

import asyncio
import random
from typing import NamedTuple

from . import errors


class RetryPolicy(NamedTuple):
    #: Attempts after the first (``--retries``).
    retries: int = 5
    #: The first wait, doubled each time up to ``cap`` (seconds).
    base: float = 0.25
    cap: float = 8.0

    def allows(self, attempt: int) -> bool:
        """Is retry number ``attempt`` (1 for the first) within the budget?"""
        return attempt <= self.retries

    def again(self, exc: BaseException, attempt: int) -> bool:
        """May retry number ``attempt`` follow ``exc``?  Only a
        :class:`~errors.RetryableError` (a 4xx, a cut connection, a timeout) is
        worth it; a refusal or a fatal error is not."""
        return isinstance(exc, errors.RetryableError) and self.allows(attempt)

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt``: "equal jitter", half fixed,
        half random.  The random half spreads the sessions' retries apart; the
        fixed half makes sure the retry budget really spans the time it promises."""
        step = min(self.cap, self.base * 2.0 ** max(0, attempt - 1))
        return step / 2 + random.uniform(0, step / 2)

    async def wait(self, attempt: int) -> None:
        await asyncio.sleep(self.delay(attempt))
