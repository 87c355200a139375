"""The emulator answers in fal's shapes: every route it serves on the Platform API, checked against the
response schemas of fal's own spec (OpenAPI 3.1, i.e. JSON Schema 2020-12).

The schemas are vendored in `data/fal_platform_api_schemas.json` by `scripts/vendor_fal_spec.py`, so these
tests run in a clone without `../shared`; the last test checks, where `../shared` is present, that the
vendored file is what the script makes of the spec today.

Two deviations from the spec are fal's own and are asserted exactly, not hidden: usage lines from before
mid-2026 lack the discount breakdown the spec now requires, and some endpoints of the bundled catalog
lack `metadata` fields the spec requires because the sources the snapshot was built from lacked them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from genfeed_pipeline_tests.conftest import TEST_FAL_KEY
from genfeed_pipeline_tests.fal_emulator import (
    DEFAULT_ADMIN_KEY,
    SERVED_ANALYTICS_METRICS,
    FalEmulator,
    Fault,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
VENDORED = REPO_ROOT / "genfeed_pipeline_tests" / "data" / "fal_platform_api_schemas.json"
VENDOR_SCRIPT = REPO_ROOT / "scripts" / "vendor_fal_spec.py"
SERVED_OPERATIONS = {
    "GET /models",
    "GET /models/pricing",
    "POST /models/pricing/estimate",
    "GET /models/usage",
    "GET /models/analytics",
}
API = {"Authorization": f"Key {TEST_FAL_KEY}"}
ADMIN = {"Authorization": f"Key {DEFAULT_ADMIN_KEY}"}
MAY_1 = date(2026, 5, 1)
DAYS = {"timeframe": "day", "start": "2026-05-01", "end": "2026-05-08", "timezone": "UTC"}
LEGACY_MISSING = {"percent_discount", "cost_subtotal", "cost_discount", "cost_total"}
"""What a usage line from before mid-2026 lacks of what the spec requires (shared/fal-api.md §1)."""
SNAPSHOT_GAPS = {"description", "tags", "thumbnail_url", "model_url", "updated_at", "date"}
"""`metadata` fields the spec requires that some sources of the bundled snapshot did not carry."""


@cache
def vendored() -> dict[str, Any]:
    return json.loads(VENDORED.read_text(encoding="utf-8"))


def validator(operation: str, status: int) -> Draft202012Validator:
    responses = vendored()["operations"][operation]["responses"]
    assert str(status) in responses, f"fal's spec defines no {status} answer for {operation}"
    return Draft202012Validator(responses[str(status)])


def errors(operation: str, response: httpx.Response) -> list[ValidationError]:
    assert response.headers["content-type"].startswith("application/json")
    return list(validator(operation, response.status_code).iter_errors(response.json()))


def assert_valid(operation: str, response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    found = errors(operation, response)
    assert not found, [f"{list(error.absolute_path)}: {error.message}" for error in found[:10]]
    return response.json()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def fal(fal_emulator: FalEmulator) -> FalEmulator:
    fal_emulator.settings.estimate_min_interval = 0.0
    return fal_emulator


def priced(emulator: FalEmulator, n: int) -> list[str]:
    """The first `n` priced endpoints whose metadata is whole (see SNAPSHOT_GAPS)."""
    models = emulator.catalog.models
    return [eid for eid in sorted(emulator.catalog.prices) if set(models[eid] or {}) >= SNAPSHOT_GAPS][:n]


def test_the_vendored_schemas_are_json_schema_and_cover_every_served_route() -> None:
    document = vendored()
    assert document["dialect"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["source"]["openapi"].startswith("3.1")
    assert set(document["operations"]) == SERVED_OPERATIONS
    for operation in document["operations"].values():
        assert "200" in operation["responses"]
        for schema in operation["responses"].values():
            Draft202012Validator.check_schema(schema)


def test_the_schemas_can_fail() -> None:
    usage = validator("GET /models/usage", 200)
    assert not usage.is_valid({"time_series": [], "has_more": False})  # next_cursor is required
    assert not usage.is_valid(
        {"next_cursor": None, "has_more": False, "time_series": [{"bucket": "x", "results": [{"unit": "a"}]}]}
    )
    assert not validator("GET /models", 200).is_valid({"models": [{"metadata": {}}], "has_more": False})


def test_list_pages_are_fals_shape(fal: FalEmulator, http: httpx.Client) -> None:
    """Every list page; the only gaps are fields the snapshot's sources did not carry for an endpoint."""
    gaps: dict[str, set[str]] = {}
    for status in ("active", "deprecated"):
        params: dict[str, Any] = {"status": status, "limit": 400}
        while True:
            response = http.get(f"{fal.base_url}/models", params=params)
            assert response.status_code == 200
            page = response.json()
            for error in errors("GET /models", response):
                path = list(error.absolute_path)
                assert error.validator == "required" and path[0] == "models" and path[2:] == ["metadata"], (
                    path,
                    error.message,
                )
                endpoint_id = page["models"][path[1]]["endpoint_id"]
                missing = {name for name in error.validator_value if name not in error.instance}
                gaps.setdefault(endpoint_id, set()).update(missing)
            if not page["has_more"]:
                break
            params["cursor"] = page["next_cursor"]

    for endpoint_id, missing in gaps.items():
        held = fal.catalog.models[endpoint_id] or {}
        assert missing <= SNAPSHOT_GAPS and not missing & set(held), endpoint_id
    complete = [eid for eid, metadata in fal.catalog.models.items() if set(metadata or {}) >= SNAPSHOT_GAPS]
    assert len(complete) >= 1000 and not set(complete) & set(gaps)


def test_find_mode_with_schemas_and_failed_expansions_is_fals_shape(
    fal: FalEmulator, http: httpx.Client
) -> None:
    ids = sorted(fal.catalog.openapi)[:9]
    fal.settings.expansion_failed_ids = {ids[0]}
    fal.settings.metadata_missing_ids = {ids[1]}
    params = [*(("endpoint_id", eid) for eid in [*ids, "acme/unknown"]), ("expand", "openapi-3.0")]

    answer = assert_valid("GET /models", http.get(f"{fal.base_url}/models", params=params))

    by_id = {item["endpoint_id"]: item for item in answer["models"]}
    assert by_id[ids[0]]["openapi"]["error"]["code"] == "expansion_failed"
    assert "metadata" not in by_id[ids[1]] and "paths" in by_id[ids[2]]["openapi"]
    enterprise = http.get(
        f"{fal.base_url}/models", params={"endpoint_id": ids[2], "expand": "enterprise_status"}
    )
    assert assert_valid("GET /models", enterprise)["models"][0]["enterprise_status"] == "ready"


def test_pricing_is_fals_shape(fal: FalEmulator, http: httpx.Client) -> None:
    ids = priced(fal, 50)
    answer = assert_valid(
        "GET /models/pricing",
        http.get(f"{fal.base_url}/models/pricing", params=[("endpoint_id", eid) for eid in ids], headers=API),
    )
    assert len(answer["prices"]) == 50


@pytest.mark.parametrize(
    ("estimate_type", "quantity"),
    [("unit_price", {"unit_quantity": 2.5}), ("historical_api_price", {"call_quantity": 3})],
)
def test_estimates_are_fals_shape(
    fal: FalEmulator, http: httpx.Client, estimate_type: str, quantity: dict[str, Any]
) -> None:
    body = {"estimate_type": estimate_type, "endpoints": {eid: quantity for eid in priced(fal, 3)}}
    answer = assert_valid(
        "POST /models/pricing/estimate",
        http.post(f"{fal.base_url}/models/pricing/estimate", json=body, headers=API),
    )
    assert answer["estimate_type"] == estimate_type


def test_usage_pages_are_fals_shape(fal: FalEmulator, http: httpx.Client) -> None:
    days = [MAY_1 + timedelta(days=n) for n in range(7) if n != 3]  # May 4 has no usage
    endpoints = [
        (eid, fal.catalog.prices[eid]["unit"], Decimal(fal.catalog.prices[eid]["unit_price"]))
        for eid in priced(fal, 8)
    ]
    fal.usage.generate(days, endpoints, seed=5, billed_price_factor={endpoints[0][0]: Decimal("1.25")})
    fal.usage.max_page_size = 10

    params: dict[str, Any] = dict(DAYS)
    buckets: list[str] = []
    items = 0
    while True:
        answer = assert_valid(
            "GET /models/usage", http.get(f"{fal.base_url}/models/usage", params=params, headers=ADMIN)
        )
        for bucket in answer["time_series"]:
            assert datetime.fromisoformat(bucket["bucket"]).utcoffset() == timedelta(0)
            if not buckets or buckets[-1] != bucket["bucket"]:
                buckets.append(bucket["bucket"])
            items += len(bucket["results"])
        if not answer["has_more"]:
            assert answer["next_cursor"] is None
            break
        params["cursor"] = answer["next_cursor"]

    assert buckets == [f"2026-05-0{n}T00:00:00+00:00" for n in range(1, 8)]
    assert items == sum(len(fal.usage.items(day)) for day in days) > 48


def test_legacy_usage_lines_lack_exactly_the_discount_breakdown(fal: FalEmulator, http: httpx.Client) -> None:
    fal.usage.add_line(MAY_1, "fal-ai/flux/dev", "megapixels", 4, "0.1", 20)
    fal.usage.add_line(MAY_1, "fal-ai/flux/dev", "megapixels", 3, "0.1", legacy=True)

    response = http.get(f"{fal.base_url}/models/usage", params={**DAYS, "end": "2026-05-02"}, headers=ADMIN)

    found = errors("GET /models/usage", response)
    assert {tuple(error.absolute_path) for error in found} == {("time_series", 0, "results", 1)}
    assert {error.validator for error in found} == {"required"}
    assert {
        name for error in found for name in error.validator_value if name not in error.instance
    } == LEGACY_MISSING
    (current, legacy) = response.json()["time_series"][0]["results"]
    assert current["cost_total"] == current["cost"] == 0.32 and legacy["cost"] == 0.3


def test_analytics_pages_are_fals_shape(fal: FalEmulator, http: httpx.Client) -> None:
    ids = priced(fal, 12)
    for n, endpoint_id in enumerate(ids[:-2]):
        fal.usage.set_requests(MAY_1, endpoint_id, success_count=n, request_count=2 * n + 1)
        fal.usage.set_requests(MAY_1 + timedelta(days=2), endpoint_id, success_count=n)
    fal.usage.max_page_size = 7
    params: dict[str, Any] = {
        **DAYS,
        "endpoint_id": ids,
        "expand": ["time_series", *SERVED_ANALYTICS_METRICS],
    }
    rows = 0
    while True:
        answer = assert_valid(
            "GET /models/analytics", http.get(f"{fal.base_url}/models/analytics", params=params, headers=API)
        )
        for bucket in answer["time_series"]:
            for row in bucket["results"]:
                assert set(row) == {"endpoint_id", *SERVED_ANALYTICS_METRICS}
                rows += 1
        if not answer["has_more"]:
            break
        params["cursor"] = answer["next_cursor"]
    assert rows == 20


def ok_request(fal: FalEmulator, operation: str) -> tuple[str, str, dict[str, Any]]:
    """A request the emulator answers with 200: (method, path, httpx options)."""
    eid = priced(fal, 1)[0]
    return {
        "GET /models": ("GET", "/models", {"params": {"endpoint_id": eid}}),
        "GET /models/pricing": ("GET", "/models/pricing", {"params": {"endpoint_id": eid}, "headers": API}),
        "POST /models/pricing/estimate": (
            "POST",
            "/models/pricing/estimate",
            {
                "json": {"estimate_type": "unit_price", "endpoints": {eid: {"unit_quantity": 1}}},
                "headers": API,
            },
        ),
        "GET /models/usage": ("GET", "/models/usage", {"params": DAYS, "headers": ADMIN}),
        "GET /models/analytics": (
            "GET",
            "/models/analytics",
            {"params": {**DAYS, "endpoint_id": eid}, "headers": API},
        ),
    }[operation]


def error_cases(fal: FalEmulator) -> list[tuple[str, int, dict[str, Any]]]:
    """(operation, status, what to change in its good request) for every error status the spec defines
    that the emulator gives on its own; the other statuses are injected."""
    analytics_params = {**DAYS, "endpoint_id": priced(fal, 1)[0]}
    unknown_estimate = {"estimate_type": "unit_price", "endpoints": {"acme/unknown": {"unit_quantity": 1}}}
    return [
        ("GET /models", 400, {"params": {"expand": "everything"}}),
        ("GET /models/pricing", 400, {"params": {}}),
        ("GET /models/pricing", 401, {"headers": {}}),
        ("GET /models/pricing", 404, {"params": {"endpoint_id": "acme/unknown"}}),
        ("POST /models/pricing/estimate", 400, {"json": {}}),
        ("POST /models/pricing/estimate", 401, {"headers": {}}),
        ("POST /models/pricing/estimate", 404, {"json": unknown_estimate}),
        ("GET /models/usage", 400, {"params": {**DAYS, "end": "2026-04-01"}}),
        ("GET /models/usage", 401, {"headers": {}}),
        ("GET /models/usage", 403, {"headers": API}),
        ("GET /models/analytics", 400, {"params": DAYS}),
        ("GET /models/analytics", 401, {"headers": {}}),
        (
            "GET /models/analytics",
            401,
            {"params": analytics_params, "headers": {"Authorization": "Key wrong"}},
        ),
    ]


def test_error_answers_are_fals_shape(fal: FalEmulator, http: httpx.Client) -> None:
    for operation, status, change in error_cases(fal):
        method, path, options = ok_request(fal, operation)
        response = http.request(method, f"{fal.base_url}{path}", **{**options, **change})
        assert response.status_code == status, (operation, response.text)
        assert_valid(operation, response, status)
        assert (
            response.json()["error"]["type"]
            == {
                400: "validation_error",
                401: "authorization_error",
                403: "authorization_error",
                404: "not_found",
            }[status]
        )


@pytest.mark.parametrize(
    ("operation", "status"),
    [
        ("GET /models", 429),
        ("GET /models", 500),
        ("GET /models/pricing", 429),
        ("POST /models/pricing/estimate", 429),
        ("GET /models/usage", 429),
        ("GET /models/analytics", 403),
        ("GET /models/analytics", 404),
        ("GET /models/analytics", 429),
        ("GET /models/analytics", 500),
    ],
)
def test_injected_errors_are_fals_shape(
    fal: FalEmulator, http: httpx.Client, operation: str, status: int
) -> None:
    method, path, options = ok_request(fal, operation)
    served = f"/v1{path}"
    fal.inject(Fault(path=served, status=status, retry_after=1, match=lambda request: request.path == served))

    response = http.request(method, f"{fal.base_url}{path}", **options)

    assert_valid(operation, response, status)
    assert response.headers["retry-after"] == "1"


def test_every_good_request_is_fals_shape(fal: FalEmulator, http: httpx.Client) -> None:
    for operation in sorted(SERVED_OPERATIONS):
        method, path, options = ok_request(fal, operation)
        assert_valid(operation, http.request(method, f"{fal.base_url}{path}", **options))


def test_the_vendored_schemas_are_up_to_date(fal_data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "fal_platform_api_schemas.json"
    subprocess.run(
        [
            sys.executable,
            str(VENDOR_SCRIPT),
            "--spec",
            str(fal_data_dir / "platform-api-openapi-v1.json"),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.read_bytes() == VENDORED.read_bytes(), "run scripts/vendor_fal_spec.py and commit the result"
