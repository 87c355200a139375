"""fal's billed usage and request counts through the client, against the emulator over real HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest

from genfeed_pipeline.fal.client import (
    FalApiError,
    FalClientSettings,
    FalPlatformClient,
    FalUsageAccessError,
    FalUsageReport,
)
from genfeed_pipeline_tests.conftest import TEST_FAL_KEY
from genfeed_pipeline_tests.fal_emulator import (
    ANALYTICS_PATH,
    DEFAULT_ADMIN_KEY,
    USAGE_PATH,
    EmulatedCatalog,
    EmulatorSettings,
    FalEmulator,
    Fault,
)

FAST_RETRIES = {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}
MAY_1 = date(2026, 5, 1)
T = TypeVar("T")
DAY = {"timeframe": "day", "start": "2026-05-01", "end": "2026-05-02"}


@pytest.fixture
def fal() -> Iterator[FalEmulator]:
    with FalEmulator(EmulatedCatalog(), EmulatorSettings(), api_key=TEST_FAL_KEY) as emulator:
        yield emulator


def run(
    emulator: FalEmulator,
    call: Callable[[FalPlatformClient], Awaitable[T]],
    *,
    key: str | None = TEST_FAL_KEY,
    admin_key: str | None = DEFAULT_ADMIN_KEY,
    **overrides: Any,
) -> tuple[T, FalPlatformClient]:
    settings = FalClientSettings(base_url=emulator.base_url, **{**FAST_RETRIES, **overrides})

    async def go() -> tuple[T, FalPlatformClient]:
        async with FalPlatformClient(settings, key, admin_key=admin_key) as client:
            return await call(client), client

    return asyncio.run(go())


def usage(emulator: FalEmulator, start: date, end: date, **kwargs: Any) -> FalUsageReport:
    return run(emulator, lambda client: client.fetch_usage(start, end), **kwargs)[0]


def lines(report: FalUsageReport) -> list[tuple[date, str, str, Decimal, Decimal | None, Decimal | None]]:
    return sorted(
        (bucket.bucket.date(), item.endpoint_id, item.unit, item.quantity, item.percent_discount, item.cost)
        for bucket in report.buckets
        for item in bucket.results
    )


def served(emulator: FalEmulator, days: list[date]) -> list[tuple[Any, ...]]:
    return sorted(
        (day, item["endpoint_id"], item["unit"], item["quantity"], item.get("percent_discount"), item["cost"])
        for day in days
        for item in emulator.usage.items(day)
    )


def test_usage_asks_for_utc_day_buckets_with_an_exclusive_end(fal: FalEmulator) -> None:
    for offset in range(4):
        fal.usage.add_line(
            MAY_1 + timedelta(days=offset), "fal-ai/flux/dev", "megapixels", 10 + offset, "0.025"
        )

    report = usage(fal, MAY_1, date(2026, 5, 4))

    (request,) = fal.requests
    assert request.path == USAGE_PATH and request.key == "admin"
    assert request.query == {
        "timeframe": ["day"],
        "start": ["2026-05-01"],
        "end": ["2026-05-04"],
        "timezone": ["UTC"],
        "expand": ["time_series"],
        "limit": ["1000"],
    }
    assert [bucket.bucket for bucket in report.buckets] == [
        datetime(2026, 5, day, tzinfo=UTC) for day in (1, 2, 3)
    ]
    assert [item.quantity for bucket in report.buckets for item in bucket.results] == [10, 11, 12]
    assert report.pages == 1


def test_usage_follows_the_cursor_across_pages(fal: FalEmulator) -> None:
    days = [MAY_1 + timedelta(days=n) for n in range(5)]
    endpoints = [(f"acme/model-{n}", "images", Decimal("0.04")) for n in range(3)]
    fal.usage.generate(days, endpoints, seed=7)
    fal.usage.max_page_size = 4

    report, client = run(fal, lambda client: client.fetch_usage(days[0], days[-1] + timedelta(days=1)))

    requests = fal.requests_to(USAGE_PATH)
    assert report.pages == len(requests) == client.requests_by_kind["usage"] >= 4
    cursors = [request.query.get("cursor") for request in requests]
    assert cursors[0] is None and all(cursors[1:]) and len({c[0] for c in cursors[1:]}) == len(cursors) - 1
    assert [bucket.bucket.date() for bucket in report.buckets] == days
    assert lines(report) == served(fal, days)


def test_request_counts_come_50_endpoints_a_request_and_count_successes(fal: FalEmulator) -> None:
    endpoints = [f"acme/model-{n:03d}" for n in range(120)]
    for n, endpoint_id in enumerate(endpoints[:-1]):
        fal.usage.set_requests(MAY_1, endpoint_id, success_count=n + 1, request_count=n + 5)
        fal.usage.set_requests(MAY_1 + timedelta(days=1), endpoint_id, success_count=2 * n)
    fal.usage.set_requests(MAY_1 + timedelta(days=2), endpoints[0], success_count=1000)  # outside the range

    counts, client = run(
        fal, lambda client: client.fetch_request_counts(endpoints, MAY_1, MAY_1 + timedelta(days=2))
    )

    assert counts == {endpoint_id: 3 * n + 1 for n, endpoint_id in enumerate(endpoints[:-1])}
    assert endpoints[-1] not in counts
    requests = fal.requests_to(ANALYTICS_PATH)
    assert sorted(len(request.query["endpoint_id"]) for request in requests) == [20, 50, 50]
    assert sorted(eid for request in requests for eid in request.query["endpoint_id"]) == endpoints
    assert client.requests_by_kind["analytics"] == 3
    for request in requests:
        assert request.key == "api"
        assert sorted(request.query["expand"]) == ["request_count", "success_count", "time_series"]
        assert request.query["timeframe"] == ["day"] and request.query["timezone"] == ["UTC"]
        assert request.query["start"] == ["2026-05-01"] and request.query["end"] == ["2026-05-03"]


def test_request_count_batches_run_side_by_side_within_the_in_flight_limit(fal: FalEmulator) -> None:
    endpoints = [f"acme/model-{n:03d}" for n in range(200)]
    for endpoint_id in endpoints:
        fal.usage.set_requests(MAY_1, endpoint_id, success_count=1)
    fal.settings.latency = 0.2

    counts, _ = run(
        fal,
        lambda client: client.fetch_request_counts(endpoints, MAY_1, MAY_1 + timedelta(days=1)),
        max_in_flight=2,
    )

    assert len(counts) == 200
    assert len(fal.requests_to(ANALYTICS_PATH)) == 4
    assert fal.max_in_flight == 2


def test_request_counts_follow_the_cursor(fal: FalEmulator) -> None:
    endpoints = [f"acme/model-{n}" for n in range(5)]
    days = [MAY_1 + timedelta(days=n) for n in range(3)]
    for day in days:
        for endpoint_id in endpoints:
            fal.usage.set_requests(day, endpoint_id, success_count=2, request_count=3)
    fal.usage.max_page_size = 4

    counts, _ = run(
        fal, lambda client: client.fetch_request_counts(endpoints, days[0], days[-1] + timedelta(days=1))
    )

    assert counts == dict.fromkeys(endpoints, 6)
    assert len(fal.requests_to(ANALYTICS_PATH)) == 4  # 15 rows, 4 a page


def test_legacy_items_are_read(fal: FalEmulator) -> None:
    fal.usage.add_line(MAY_1, "fal-ai/minimax/video-01", "videos", 3, "0.5", legacy=True)

    (bucket,) = usage(fal, MAY_1, MAY_1 + timedelta(days=1)).buckets

    (item,) = bucket.results
    assert (item.endpoint_id, item.unit, item.quantity, item.unit_price) == (
        "fal-ai/minimax/video-01",
        "videos",
        Decimal(3),
        Decimal("0.5"),
    )
    assert item.cost == Decimal("1.5") and item.currency == "USD"
    assert item.cost_subtotal is item.cost_discount is item.cost_total is item.percent_discount is None


def test_lines_at_different_discounts_stay_separate_items(fal: FalEmulator) -> None:
    fal.usage.add_line(MAY_1, "fal-ai/flux/dev", "megapixels", 100, "0.025")
    fal.usage.add_line(MAY_1, "fal-ai/flux/dev", "megapixels", 40, "0.025", 20)

    (bucket,) = usage(fal, MAY_1, MAY_1 + timedelta(days=1)).buckets

    figures = [
        (
            item.quantity,
            item.percent_discount,
            item.cost_subtotal,
            item.cost_discount,
            item.cost_total,
            item.cost,
        )
        for item in bucket.results
    ]
    assert figures == [
        (Decimal(100), None, Decimal("2.5"), Decimal(0), Decimal("2.5"), Decimal("2.5")),
        (Decimal(40), Decimal(20), Decimal(1), Decimal("0.2"), Decimal("0.8"), Decimal("0.8")),
    ]


def test_a_429_on_the_second_page_is_retried_at_the_same_cursor(fal: FalEmulator) -> None:
    days = [MAY_1 + timedelta(days=n) for n in range(4)]
    fal.usage.generate(days, [("acme/painter", "images", Decimal("0.03"))], seed=1)
    fal.usage.max_page_size = 2
    fal.inject(
        Fault(path=USAGE_PATH, status=429, retry_after=0.1, match=lambda request: "cursor" in request.query)
    )

    report = usage(fal, days[0], days[-1] + timedelta(days=1))

    requests = fal.requests_to(USAGE_PATH)
    assert [request.status for request in requests][:3] == [200, 429, 200]
    assert requests[1].query["cursor"] == requests[2].query["cursor"]
    assert lines(report) == served(fal, days)


def test_usage_gives_up_on_a_lasting_server_error(fal: FalEmulator) -> None:
    fal.usage.add_line(MAY_1, "acme/painter", "images", 1, "0.03")
    fal.inject(Fault(path=USAGE_PATH, status=503, times=None))

    with pytest.raises(FalApiError) as raised:
        usage(fal, MAY_1, MAY_1 + timedelta(days=1), max_attempts=3)

    assert not isinstance(raised.value, FalUsageAccessError)
    assert raised.value.status_code == 503
    assert len(fal.requests_to(USAGE_PATH)) == 3


def assert_names_the_admin_key(error: FalUsageAccessError, *secrets: str) -> None:
    text = str(error)
    assert "FAL_ADMIN_KEY" in text and "billing:usage:read" in text
    assert "GET /models/usage" in text
    assert not error.retryable
    for secret in secrets:
        assert secret not in text and secret not in repr(error.args)


def test_a_key_without_admin_scope_is_refused_with_403(
    fal: FalEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FalUsageAccessError) as raised:
        usage(fal, MAY_1, MAY_1 + timedelta(days=1), admin_key=TEST_FAL_KEY)

    assert raised.value.status_code == 403
    assert_names_the_admin_key(raised.value, TEST_FAL_KEY)
    assert [request.status for request in fal.requests] == [403]  # not retried
    assert TEST_FAL_KEY not in caplog.text


def test_a_401_names_the_admin_key(fal: FalEmulator) -> None:
    fal.inject(Fault(path=USAGE_PATH, status=401))

    with pytest.raises(FalUsageAccessError) as raised:
        usage(fal, MAY_1, MAY_1 + timedelta(days=1))

    assert raised.value.status_code == 401
    assert_names_the_admin_key(raised.value, DEFAULT_ADMIN_KEY, TEST_FAL_KEY)


def test_without_an_admin_key_usage_is_not_asked(fal: FalEmulator) -> None:
    with pytest.raises(FalUsageAccessError) as raised:
        usage(fal, MAY_1, MAY_1 + timedelta(days=1), admin_key=None)

    assert_names_the_admin_key(raised.value, TEST_FAL_KEY)
    assert fal.requests == []


def test_the_emulator_wants_an_admin_key_for_usage(fal: FalEmulator) -> None:
    url = f"{fal.base_url}/models/usage"
    with httpx.Client(timeout=10) as http:
        missing = http.get(url, params=DAY)
        api_key = http.get(url, params=DAY, headers={"Authorization": f"Key {TEST_FAL_KEY}"})
        admin = http.get(url, params=DAY, headers={"Authorization": f"Key {DEFAULT_ADMIN_KEY}"})

    assert (missing.status_code, api_key.status_code, admin.status_code) == (401, 403, 200)
    assert missing.json()["error"]["type"] == api_key.json()["error"]["type"] == "authorization_error"
    assert [request.key for request in fal.requests] == ["none", "api", "admin"]


def test_request_counts_fall_back_to_the_admin_key(fal: FalEmulator) -> None:
    fal.usage.set_requests(MAY_1, "acme/painter", success_count=9, request_count=10)

    counts, _ = run(
        fal,
        lambda client: client.fetch_request_counts(["acme/painter"], MAY_1, MAY_1 + timedelta(days=1)),
        key=None,
    )

    assert counts == {"acme/painter": 9}
    assert [request.key for request in fal.requests] == ["admin"]


def test_request_counts_refused_name_the_key_used(fal: FalEmulator) -> None:
    with pytest.raises(FalUsageAccessError) as raised:
        run(
            fal,
            lambda client: client.fetch_request_counts(["acme/painter"], MAY_1, MAY_1 + timedelta(days=1)),
            key="not-a-fal-key",
            admin_key=None,
        )

    assert raised.value.status_code == 401
    assert "FAL_KEY" in str(raised.value) and "not-a-fal-key" not in str(raised.value)


def test_no_endpoints_no_request(fal: FalEmulator) -> None:
    counts, _ = run(fal, lambda client: client.fetch_request_counts([], MAY_1, MAY_1 + timedelta(days=1)))

    assert counts == {}
    assert fal.requests == []


def test_analytics_needs_1_to_50_endpoint_ids(fal: FalEmulator) -> None:
    url = f"{fal.base_url}/models/analytics"
    auth = {"Authorization": f"Key {TEST_FAL_KEY}"}
    days = {**DAY, "expand": "time_series,success_count"}
    with httpx.Client(timeout=10) as http:
        none = http.get(url, params=days, headers=auth)
        too_many = http.get(
            url, params=[*days.items(), *(("endpoint_id", f"acme/m{n}") for n in range(51))], headers=auth
        )
        fifty = http.get(
            url, params=[*days.items(), *(("endpoint_id", f"acme/m{n}") for n in range(50))], headers=auth
        )

    assert (none.status_code, too_many.status_code, fifty.status_code) == (400, 400, 200)
    assert none.json()["error"]["type"] == "validation_error"
    assert fifty.json() == {
        "time_series": [{"bucket": "2026-05-01T00:00:00+00:00", "results": []}],
        "next_cursor": None,
        "has_more": False,
    }


def test_generated_usage_is_deterministic_and_prices_as_told(fal: FalEmulator) -> None:
    days = [MAY_1 + timedelta(days=n) for n in range(10)]
    endpoints = [("acme/painter", "images", Decimal("0.04")), ("acme/filmer", "seconds", Decimal("0.1"))]
    twin = type(fal.usage)()
    fal.usage.generate(days, endpoints, seed=3, billed_price_factor={"acme/filmer": Decimal("1.2")})
    twin.generate(days, endpoints, seed=3, billed_price_factor={"acme/filmer": Decimal("1.2")})

    items = [item for day in days for item in fal.usage.items(day)]
    assert items == [item for day in days for item in twin.items(day)]
    assert {(item["endpoint_id"], item["unit_price"]) for item in items} == {
        ("acme/painter", Decimal("0.04")),
        ("acme/filmer", Decimal("0.12")),
    }
    assert any(item["percent_discount"] for item in items)
    assert all(set(fal.usage.request_counts(day)) == {"acme/painter", "acme/filmer"} for day in days)
    assert all(
        success <= requests for day in days for success, requests in fal.usage.request_counts(day).values()
    )
