"""One retry policy for the pipeline's HTTP calls: fal's API and the webhook receivers (plain Python).

An attempt that fails raises an `AttemptError` saying whether another attempt may succeed and how long
the server asked to wait (`Retry-After`). The policy retries such errors a fixed number of times, each
wait an exponential backoff with jitter under a cap, and never shorter than the server asked, up to
`max_retry_after_seconds`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

from genfeed_pipeline.clock import utc_now


class AttemptError(Exception):
    """One failed attempt of a request. Subclasses say when it may be retried."""

    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return False


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date; None when unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or utc_now())).total_seconds())


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, AttemptError) and exc.retryable


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and after how long, a retryable `AttemptError` is tried again."""

    max_attempts: int = 5
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    max_retry_after_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.backoff_initial_seconds, self.backoff_max_seconds, self.max_retry_after_seconds) < 0:
            raise ValueError("the backoff and Retry-After limits must be non-negative")

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (from 1): initial × 2^(attempt − 1), plus up to
        the initial backoff of jitter, at most `backoff_max_seconds`."""
        exponential = self.backoff_initial_seconds * 2 ** min(attempt - 1, 64)
        return min(exponential + random.uniform(0, self.backoff_initial_seconds), self.backoff_max_seconds)

    def wait(self, state: RetryCallState) -> float:
        """tenacity's wait: the backoff, never shorter than the failed attempt's `Retry-After`."""
        backoff = self.backoff(state.attempt_number)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, AttemptError) and exc.retry_after is not None:
            return min(max(exc.retry_after, backoff), self.max_retry_after_seconds)
        return backoff

    def asks_too_long(self, retry_after: float) -> bool:
        """Whether a `Retry-After` asks for more than this policy ever waits."""
        return retry_after > self.max_retry_after_seconds

    def retrying(self, before_sleep: Callable[[RetryCallState], None] | None = None) -> Retrying:
        return Retrying(**self._arguments(before_sleep))

    def async_retrying(self, before_sleep: Callable[[RetryCallState], None] | None = None) -> AsyncRetrying:
        return AsyncRetrying(**self._arguments(before_sleep))

    def _arguments(self, before_sleep: Callable[[RetryCallState], None] | None) -> dict:
        arguments: dict = {
            "retry": retry_if_exception(_retryable),
            "stop": stop_after_attempt(self.max_attempts),
            "wait": self.wait,
            "reraise": True,
        }
        if before_sleep is not None:
            arguments["before_sleep"] = before_sleep
        return arguments
