"""The retry policy shared by the fal client and the webhook sender."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from tenacity import RetryCallState

from genfeed_pipeline.alerts import WebhookSender
from genfeed_pipeline.fal.client import FalApiError, FalClientSettings
from genfeed_pipeline.retry import AttemptError, RetryPolicy, parse_retry_after

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2", 2.0),
        (" 0.25 ", 0.25),
        ("-5", 0.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def failed_attempt(attempt: int, exc: BaseException) -> RetryCallState:
    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_backoff_grows_exponentially_with_jitter_under_its_cap() -> None:
    policy = RetryPolicy(backoff_initial_seconds=0.5, backoff_max_seconds=3.0)
    for attempt, low in [(1, 0.5), (2, 1.0), (3, 2.0)]:
        waits = [policy.backoff(attempt) for _ in range(50)]
        assert all(low <= wait <= min(low + 0.5, 3.0) for wait in waits)
    assert {policy.backoff(10) for _ in range(10)} == {3.0}


def test_a_wait_is_never_shorter_than_retry_after_and_never_beyond_its_limit() -> None:
    policy = RetryPolicy(backoff_initial_seconds=0.01, backoff_max_seconds=0.02, max_retry_after_seconds=5.0)
    asked = FalApiError("HTTP 429", request="fal GET /models", status_code=429, retry_after=2.0)
    assert policy.wait(failed_attempt(1, asked)) == 2.0
    too_long = FalApiError("HTTP 429", request="fal GET /models", status_code=429, retry_after=3600.0)
    assert policy.wait(failed_attempt(1, too_long)) == 5.0
    assert policy.asks_too_long(3600.0) and not policy.asks_too_long(5.0)
    assert policy.wait(failed_attempt(1, AttemptError("no header"))) <= 0.02


def test_only_retryable_attempts_are_retried_up_to_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3, backoff_initial_seconds=0.0, backoff_max_seconds=0.0)
    calls: list[int] = []

    def fails(error: AttemptError) -> None:
        calls.append(1)
        raise error

    server_error = FalApiError("HTTP 503", request="fal GET /models", status_code=503)
    with pytest.raises(FalApiError):
        policy.retrying()(fails, server_error)
    assert len(calls) == 3

    calls.clear()
    refused = FalApiError("HTTP 401", request="fal GET /models/pricing", status_code=401)
    with pytest.raises(FalApiError):
        policy.retrying()(fails, refused)
    assert len(calls) == 1


def test_the_fal_client_and_the_webhook_sender_share_the_policy() -> None:
    fal = FalClientSettings(max_attempts=4, backoff_initial_seconds=0.2, backoff_max_seconds=9.0)
    assert fal.retry_policy() == RetryPolicy(4, 0.2, 9.0, fal.max_retry_after_seconds)
    sender = WebhookSender(["https://hooks.test/genfeed"], "secret", max_attempts=3, backoff_max_seconds=7.0)
    # A receiver asking for longer than the backoff's cap is given up on rather than waited for.
    assert sender.retry_policy == RetryPolicy(3, 0.5, 7.0, 7.0)
