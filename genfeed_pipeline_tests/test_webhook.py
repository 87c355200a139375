"""The signed webhook sender against a real HTTP receiver, and the shapes of the catalog events."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from genfeed_pipeline.alerts import (
    CATALOG,
    DeliveryResult,
    WebhookSender,
    change_event,
    check_failure_event,
    is_overdue,
    overdue_event,
    redact_url,
    run_failure_event,
    verify_signature,
)
from genfeed_pipeline_tests.webhook_receiver import WebhookReceiver

SECRET = "whsec-test-5b1f0c9e2d7a4c3e"
URL_TOKEN = "tok-q7Zx91LmNPa3"
EVENT = {"type": "catalog.changed", "summary": "1 new model", "price": Decimal("0.025")}


def fast_sender(urls: list[str], secret: str | None = SECRET, **options: float) -> WebhookSender:
    settings = {"timeout_seconds": 2.0, "max_attempts": 4, "backoff_initial_seconds": 0.01}
    settings.update(options)
    return WebhookSender(urls, secret, backoff_max_seconds=1.0, **settings)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as running:
        yield running


@pytest.fixture
def other_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET, path="/other") as running:
        yield running


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/genfeed"


# -- signing ------------------------------------------------------------------------------------------------


def test_signature_recomputed_by_the_receiver_matches(receiver: WebhookReceiver) -> None:
    [result] = fast_sender([receiver.url]).send(EVENT)

    assert result == DeliveryResult(redact_url(receiver.url), True, 1, 200, None)
    [request] = receiver.wait_for(1)
    assert request.signature_valid
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-genfeed-signature"] == expected
    assert verify_signature(SECRET, request.body, request.headers["x-genfeed-signature"])
    assert not verify_signature(SECRET, request.body + b" ", request.headers["x-genfeed-signature"])
    assert not verify_signature(SECRET, request.body, None)
    assert request.method == "POST"
    assert request.path == "/hooks/genfeed"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-genfeed-event"] == "catalog.changed"
    assert len(request.headers["x-genfeed-delivery"]) == 36
    assert request.body == json.dumps(EVENT, sort_keys=True, separators=(",", ":"), default=str).encode()


def test_a_wrong_secret_gives_an_invalid_signature(receiver: WebhookReceiver) -> None:
    [result] = fast_sender([receiver.url], secret="not-the-receivers-secret").send(EVENT)

    assert result.delivered
    [request] = receiver.wait_for(1)
    assert not request.signature_valid


def test_no_secret_sends_unsigned_and_warns_once(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sender = fast_sender([receiver.url], secret=None)
    sender.send(EVENT)
    sender.send(EVENT)

    requests = receiver.wait_for(2)
    assert all("x-genfeed-signature" not in request.headers for request in requests)
    assert all(not request.signature_valid for request in requests)
    unsigned = [record for record in caplog.records if "unsigned" in record.getMessage()]
    assert len(unsigned) == 1
    assert unsigned[0].levelno == logging.WARNING


def test_two_urls_receive_the_same_bytes(receiver: WebhookReceiver, other_receiver: WebhookReceiver) -> None:
    results = fast_sender([receiver.url, other_receiver.url]).send(EVENT)

    assert [result.delivered for result in results] == [True, True]
    [first] = receiver.wait_for(1)
    [second] = other_receiver.wait_for(1)
    assert first.body == second.body
    assert first.headers["x-genfeed-signature"] == second.headers["x-genfeed-signature"]
    assert first.signature_valid and second.signature_valid


# -- retries ------------------------------------------------------------------------------------------------


def test_server_errors_are_retried_until_delivered(receiver: WebhookReceiver) -> None:
    receiver.respond_with(500, times=2)

    [result] = fast_sender([receiver.url]).send(EVENT)

    assert result.delivered
    assert result.attempts == 3
    assert result.status == 200
    requests = receiver.wait_for(3)
    assert [request.answered_status for request in requests] == [500, 500, 200]
    assert len({request.body for request in requests}) == 1
    assert len({request.headers["x-genfeed-delivery"] for request in requests}) == 1


def test_retry_after_is_honoured(receiver: WebhookReceiver) -> None:
    receiver.respond_with(429, headers={"Retry-After": "0.2"})

    [result] = fast_sender([receiver.url]).send(EVENT)

    assert result.delivered and result.attempts == 2
    first, second = receiver.wait_for(2)
    assert second.received_at - first.received_at >= 0.2


def test_a_client_error_is_not_retried(receiver: WebhookReceiver) -> None:
    receiver.respond_with(400, body=b"bad signature")

    [result] = fast_sender([receiver.url]).send(EVENT)

    assert not result.delivered
    assert result.attempts == 1
    assert result.status == 400
    assert result.error is not None and "400" in result.error
    assert len(receiver.requests) == 1


def test_persistent_failure_gives_up_after_max_attempts(receiver: WebhookReceiver) -> None:
    receiver.respond_with(503, times=10)

    [result] = fast_sender([receiver.url], max_attempts=3).send(EVENT)

    assert (result.delivered, result.attempts, result.status) == (False, 3, 503)
    assert len(receiver.requests) == 3


def test_an_unreachable_url_fails_without_stopping_the_others(receiver: WebhookReceiver) -> None:
    dead = closed_port_url()

    results = fast_sender([dead, receiver.url]).send(EVENT)

    assert results[0].url_redacted == dead
    assert not results[0].delivered
    assert results[0].attempts == 4
    assert results[0].status is None
    assert results[0].error
    assert results[1].delivered
    assert receiver.wait_for(1)[0].signature_valid


def test_an_invalid_url_is_a_failed_result() -> None:
    [result] = fast_sender(["not a url"]).send(EVENT)

    assert not result.delivered
    assert result.attempts == 1
    assert result.error and "invalid webhook URL" in result.error


def test_no_urls_sends_nothing(receiver: WebhookReceiver) -> None:
    assert fast_sender([]).send(EVENT) == []
    assert WebhookSender.from_env({}).send(EVENT) == []
    assert WebhookSender.from_env({"GENFEED_WEBHOOK_URLS": " , ,"}).send(EVENT) == []
    assert receiver.requests == []


def test_from_env_reads_urls_and_secret(receiver: WebhookReceiver, other_receiver: WebhookReceiver) -> None:
    environ = {
        "GENFEED_WEBHOOK_URLS": f" {receiver.url}, ,{other_receiver.url} ",
        "GENFEED_WEBHOOK_SECRET": SECRET,
    }

    sender = WebhookSender.from_env(environ, backoff_initial_seconds=0.01)

    assert sender.urls_redacted == [receiver.url, other_receiver.url]
    assert [result.delivered for result in sender.send(EVENT)] == [True, True]
    assert receiver.wait_for(1)[0].signature_valid and other_receiver.wait_for(1)[0].signature_valid


# -- secrets stay out of logs and results -------------------------------------------------------------------


def test_secret_and_url_tokens_never_appear_in_logs_or_results(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with_token = f"http://hook-user:{URL_TOKEN}-pw@127.0.0.1:{receiver.port}/hooks/genfeed?token={URL_TOKEN}"
    dead_with_token = closed_port_url() + f"?token={URL_TOKEN}"
    receiver.respond_with(500)
    receiver.respond_with(400, body=f"rejected token={URL_TOKEN} secret={SECRET}".encode())

    sender = fast_sender([with_token, dead_with_token], max_attempts=3)
    results = sender.send(EVENT)

    assert results[0].url_redacted == f"http://127.0.0.1:{receiver.port}/hooks/genfeed"
    assert results[0].status == 400 and results[0].attempts == 2
    assert not results[1].delivered and "?" not in results[1].url_redacted
    assert receiver.wait_for(2)[0].path == f"/hooks/genfeed?token={URL_TOKEN}"
    assert caplog.records, "the sender logs its retries and failures"
    exposed = [repr(sender), *(repr(result) for result in results)]
    exposed += [record.getMessage() for record in caplog.records]
    exposed += [caplog.text]
    for text in exposed:
        assert SECRET not in text
        assert URL_TOKEN not in text
        assert "hook-user" not in text


def test_redact_url_keeps_scheme_host_port_and_path() -> None:
    assert (
        redact_url("https://u:p@hooks.example.com:8443/a/b?token=x#frag")
        == "https://hooks.example.com:8443/a/b"
    )
    assert redact_url("https://hooks.example.com/a") == "https://hooks.example.com/a"
    assert redact_url("http://[::1]:9000/h?k=v") == "http://[::1]:9000/h"


# -- serialisation ------------------------------------------------------------------------------------------


def test_decimal_and_datetime_values_serialise(receiver: WebhookReceiver) -> None:
    moment = datetime(2026, 4, 1, 12, 30, tzinfo=UTC)
    event = {"type": "catalog.changed", "unit_price": Decimal("0.0834"), "at": moment, "n": 3}

    [result] = fast_sender([receiver.url]).send(event)

    assert result.delivered
    parsed = receiver.wait_for(1)[0].json
    assert parsed == {"type": "catalog.changed", "unit_price": "0.0834", "at": str(moment), "n": 3}


# -- messages -----------------------------------------------------------------------------------------------


def assert_common_fields(event: dict, event_type: str) -> None:
    assert event["type"] == event_type
    assert event["catalog"] == CATALOG == "genfeed-fal"
    sent_at = datetime.fromisoformat(event["sent_at"])
    assert sent_at.utcoffset() == timedelta(0)
    assert isinstance(event["summary"], str) and event["summary"] and "\n" not in event["summary"]
    json.dumps(event)


def test_change_event_shape() -> None:
    new = [
        {
            "endpoint_id": "fal-ai/flux/dev",
            "name": "FLUX.1 [dev]",
            "unit_price": Decimal("0.025"),
            "unit": "mp",
        }
    ]
    price_changes = [
        {
            "endpoint_id": "bria/bg-remove",
            "old_unit_price": Decimal("0.018"),
            "new_unit_price": Decimal("0.02"),
            "unit": "image",
            "change_pct": 11.11,
        }
    ]
    held = [{"endpoint_id": "fal-ai/crystal-upscaler", "reason": "output Image.file_data removed"}]

    event = change_event(
        run_id="r-1", deployment="cloud", new=new, removed=[], price_changes=price_changes, held=held
    )

    assert_common_fields(event, "catalog.changed")
    assert event["run_id"] == "r-1" and event["deployment"] == "cloud"
    assert event["counts"] == {"new": 1, "removed": 0, "price_changes": 1, "held": 1}
    assert event["new"] == [{**new[0], "unit_price": "0.025"}]
    assert event["removed"] == []
    assert event["price_changes"][0] == {
        **price_changes[0],
        "old_unit_price": "0.018",
        "new_unit_price": "0.02",
    }
    assert event["held"] == held
    assert "1 new model" in event["summary"] and "1 price change" in event["summary"]

    quiet = change_event(run_id="r-2", deployment="core", new=[], removed=[], price_changes=[], held=[])
    assert "no changes" in quiet["summary"]


def test_check_failure_event_shape() -> None:
    failed = [
        {
            "check_name": "pricing_drift",
            "asset": "priced_models",
            "severity": "WARN",
            "description": "2 models drifted more than 5%",
            "endpoint_ids": ["fal-ai/flux/dev", "bria/bg-remove"],
        }
    ]

    event = check_failure_event(run_id="r-3", job_name="refresh_fal_catalog", failed_checks=failed)

    assert_common_fields(event, "catalog.check_failed")
    assert event["run_id"] == "r-3" and event["job_name"] == "refresh_fal_catalog"
    assert event["failed_checks"] == failed
    assert "pricing_drift" in event["summary"]


def test_run_failure_event_truncates_the_error() -> None:
    error = "dagster._core.errors.DagsterExecutionStepExecutionError: boom\n" + "x" * 5000

    event = run_failure_event(run_id="r-4", job_name="refresh_fal_catalog", error=error)

    assert_common_fields(event, "catalog.run_failed")
    assert event["run_id"] == "r-4" and event["job_name"] == "refresh_fal_catalog"
    assert len(event["error"]) == 2000 and event["error_truncated"] is True
    assert event["error"].startswith("dagster._core.errors.DagsterExecutionStepExecutionError: boom")
    short = run_failure_event(run_id="r-5", job_name="refresh_fal_catalog", error="boom")
    assert short["error"] == "boom" and short["error_truncated"] is False


def test_overdue_event_and_is_overdue() -> None:
    now = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
    limit = timedelta(hours=7)
    last = now - timedelta(hours=9)

    assert is_overdue(None, now, limit)
    assert is_overdue(last, now, limit)
    assert not is_overdue(now - timedelta(hours=6), now, limit)
    assert not is_overdue(now - limit, now, limit)
    assert is_overdue(last.replace(tzinfo=None), now, limit)

    event = overdue_event(asset="models_table", last_materialized_at=last, now=now, overdue_after=limit)
    assert_common_fields(event, "catalog.overdue")
    assert event["sent_at"] == "2026-04-01T12:00:00+00:00"
    assert event["asset"] == "models_table"
    assert event["last_materialized_at"] == "2026-04-01T03:00:00+00:00"
    assert event["overdue_after_seconds"] == 7 * 3600
    assert event["overdue_by_seconds"] == 2 * 3600
    assert "models_table" in event["summary"]

    never = overdue_event(asset="models_table", last_materialized_at=None, now=now, overdue_after=limit)
    assert never["last_materialized_at"] is None and never["overdue_by_seconds"] is None
    assert "never" in never["summary"]


def test_built_events_are_delivered(receiver: WebhookReceiver) -> None:
    event = run_failure_event(run_id="r-6", job_name="refresh_fal_catalog", error="boom")

    [result] = fast_sender([receiver.url]).send(event)

    assert result.delivered
    [request] = receiver.wait_for(1)
    assert request.json == event
    assert request.headers["x-genfeed-event"] == "catalog.run_failed"


def test_a_retry_after_beyond_the_backoff_limit_gives_up(receiver: WebhookReceiver) -> None:
    receiver.respond_with(429, headers={"Retry-After": "3600"})

    [result] = fast_sender([receiver.url]).send(EVENT)

    assert (result.delivered, result.attempts, result.status) == (False, 1, 429)
    assert result.error and "Retry-After" in result.error


def test_an_event_that_cannot_be_serialised_is_a_failed_result(receiver: WebhookReceiver) -> None:
    event: dict = {"type": "catalog.changed"}
    event["self"] = event

    [result] = fast_sender([receiver.url]).send(event)

    assert (result.delivered, result.attempts) == (False, 0)
    assert result.error and "serialised" in result.error
    assert receiver.requests == []
