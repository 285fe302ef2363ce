"""The one retry policy: what is retried, how often, and the waits between."""

from __future__ import annotations

import pytest

from asyncmirror import errors
from asyncmirror.retry import RetryPolicy


@pytest.mark.parametrize(
    ("exc", "attempt", "again"),
    [
        (errors.NetworkError("cut"), 1, True),
        (errors.OperationTimeout("slow"), 3, True),
        (errors.TransientReplyError("STOR f", "450", "busy"), 3, True),
        (errors.NetworkError("cut"), 4, False),  # the budget is 3 retries
        (errors.PermanentReplyError("STOR f", "553", "denied"), 1, False),
        (errors.AuthError("530 login incorrect"), 1, False),
        (errors.ServerFullError("STOR f", "552", "quota"), 1, False),
    ],
)
def test_only_retryable_errors_within_the_budget_are_retried(
    exc: errors.AsyncMirrorError, attempt: int, again: bool
) -> None:
    assert RetryPolicy(retries=3).again(exc, attempt) is again


@pytest.mark.parametrize(("attempt", "step"), [(1, 0.25), (2, 0.5), (3, 1.0), (6, 8.0), (30, 8.0)])
def test_waits_double_up_to_the_cap_with_half_of_each_random(attempt: int, step: float) -> None:
    policy = RetryPolicy()
    waits = [policy.delay(attempt) for _ in range(200)]
    assert all(step / 2 <= w <= step for w in waits)
    assert max(waits) - min(waits) > 0  # jittered: the sessions' retries spread apart
