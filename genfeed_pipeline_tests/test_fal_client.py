"""The fal client against the emulator, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal

import pytest

from genfeed_pipeline.fal.catalog import PriceStatus, SchemaStatus
from genfeed_pipeline.fal.client import FalApiError, FalClientSettings, FalPlatformClient
from genfeed_pipeline_tests.conftest import TEST_FAL_KEY
from genfeed_pipeline_tests.fal_emulator import FalEmulator, Fault

FAST_RETRIES = {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}


def settings_for(emulator: FalEmulator, **overrides: object) -> FalClientSettings:
    return FalClientSettings(
        base_url=emulator.base_url, openapi_url=emulator.openapi_url, **{**FAST_RETRIES, **overrides}
    )


def run(emulator: FalEmulator, call, key: str | None = TEST_FAL_KEY, **overrides: object):
    async def go():
        async with FalPlatformClient(settings_for(emulator, **overrides), key) as fal:
            return await call(fal)

    return asyncio.run(go())


def test_list_walks_every_page_and_both_statuses(fal_emulator: FalEmulator) -> None:
    catalog = fal_emulator.catalog
    deprecated = sorted(catalog.models)[:3]
    for endpoint_id in deprecated:
        catalog.deprecate(endpoint_id)

    items = run(fal_emulator, lambda fal: fal.list_models(), list_page_size=100)

    ids = [item.endpoint_id for item in items]
    assert len(ids) == len(set(ids)) == len(catalog.models) == 1182
    assert set(ids) == set(catalog.models)
    listed = [r for r in fal_emulator.requests if r.path == "/v1/models"]
    assert {r.query["status"][0] for r in listed} == {"active", "deprecated"}
    assert any(r.query.get("cursor") == ["Mg=="] for r in listed)
    assert len(listed) == 12 + 1  # 1,179 active in pages of 100, 3 deprecated in one page
    by_id = {item.endpoint_id: item for item in items}
    assert all(by_id[e].metadata.status == "deprecated" for e in deprecated)


def test_items_without_metadata_are_kept(fal_emulator: FalEmulator) -> None:
    bare = sorted(fal_emulator.catalog.models)[5]
    fal_emulator.settings.metadata_missing_ids = {bare}
    items = run(fal_emulator, lambda fal: fal.list_models())
    by_id = {item.endpoint_id: item for item in items}
    assert bare in by_id and by_id[bare].metadata is None
    assert len(by_id) == 1182


def test_schemas_come_in_parallel_batches_of_at_most_ten(fal_emulator: FalEmulator) -> None:
    ids = sorted(fal_emulator.catalog.openapi)[:95]
    fal_emulator.settings.latency = 0.05
    fetched = run(fal_emulator, lambda fal: fal.fetch_openapi(ids))

    assert set(fetched) == set(ids)
    assert all(f.document_json is not None and f.status == SchemaStatus.FETCHED for f in fetched.values())
    schema_requests = [r for r in fal_emulator.requests if "openapi-3.0" in r.query.get("expand", [])]
    assert len(schema_requests) == 10
    assert max(len(r.query["endpoint_id"]) for r in schema_requests) == 10
    assert fal_emulator.max_in_flight >= 4


def test_schema_batch_steps_down_to_the_cap_fal_names(fal_emulator: FalEmulator) -> None:
    ids = sorted(fal_emulator.catalog.openapi)[:60]
    fal_emulator.settings.schema_batch_cap = 7
    fetched = run(fal_emulator, lambda fal: fal.fetch_openapi(ids), schema_batch_size=25)

    assert set(fetched) == set(ids) and all(f.document_json for f in fetched.values())
    accepted = [r for r in fal_emulator.requests if r.status == 200]
    assert max(len(r.query["endpoint_id"]) for r in accepted) == 7
    rejected = [r for r in fal_emulator.requests if r.status == 400]
    assert 1 <= len(rejected) <= 3  # batches already in flight when the cap was learned


def test_expansion_failure_falls_back_to_the_queue_schema(fal_emulator: FalEmulator) -> None:
    catalog = fal_emulator.catalog
    with_docs = sorted(catalog.openapi)[:4]
    without_doc = next(e for e in sorted(catalog.models) if e not in catalog.openapi)
    fal_emulator.settings.expansion_failed_ids = set(with_docs[:2])

    fetched = run(fal_emulator, lambda fal: fal.fetch_openapi([*with_docs, without_doc]))

    assert [fetched[e].status for e in with_docs] == [
        SchemaStatus.FALLBACK,
        SchemaStatus.FALLBACK,
        SchemaStatus.FETCHED,
        SchemaStatus.FETCHED,
    ]
    assert json.loads(fetched[with_docs[0]].document_json) == catalog.openapi[with_docs[0]]
    assert fetched[without_doc].document_json is None and fetched[without_doc].status == SchemaStatus.MISSING
    assert not fetched[without_doc].failed  # fal has no schema: marked, not an error


def test_prices_bisect_around_an_unknown_id(fal_emulator: FalEmulator) -> None:
    catalog = fal_emulator.catalog
    priced = sorted(catalog.prices)[:60]
    unpriced = next(e for e in sorted(catalog.models) if e not in catalog.prices)
    ids = [*priced[:30], "no-such/endpoint", *priced[30:], unpriced]

    fetched = run(fal_emulator, lambda fal: fal.fetch_prices(ids))

    assert fetched["no-such/endpoint"].status == PriceStatus.NOT_FOUND
    assert fetched[unpriced].status == PriceStatus.NO_PRICE
    assert all(fetched[e].status == PriceStatus.PRICED for e in priced)
    assert all(len(r.query["endpoint_id"]) <= 50 for r in fal_emulator.requests)
    assert all(r.authorized for r in fal_emulator.requests)
    flux = (
        fetched.get("fal-ai/flux/dev")
        or run(fal_emulator, lambda fal: fal.fetch_prices(["fal-ai/flux/dev"]))["fal-ai/flux/dev"]
    )
    assert flux.price.unit_price == Decimal("0.025") and flux.price.unit == "megapixels"


@pytest.mark.parametrize("as_strings", [False, True])
def test_prices_are_exact_decimals_from_numbers_and_strings(
    fal_emulator: FalEmulator, as_strings: bool
) -> None:
    fal_emulator.settings.prices_as_strings = as_strings
    fal_emulator.catalog.set_price("fal-ai/flux/dev", "0.0125", "megapixels ")
    fetched = run(fal_emulator, lambda fal: fal.fetch_prices(["fal-ai/flux/dev", "fal-ai/flux/schnell"]))
    assert fetched["fal-ai/flux/dev"].price.unit_price == Decimal("0.0125")
    assert fetched["fal-ai/flux/dev"].price.unit == "megapixels "  # verbatim, trailing space and all
    assert fetched["fal-ai/flux/schnell"].price.unit_price == Decimal("0.003")


def test_pricing_fails_clearly_without_a_valid_key(fal_emulator: FalEmulator) -> None:
    with pytest.raises(FalApiError, match="401 authorization_error"):
        run(fal_emulator, lambda fal: fal.fetch_prices(["fal-ai/flux/dev"]), key="wrong-key")
    with pytest.raises(FalApiError, match="needs an API key"):
        run(fal_emulator, lambda fal: fal.fetch_prices(["fal-ai/flux/dev"]), key=None)


@pytest.mark.parametrize(
    "fault",
    [
        Fault(path="/v1/models", kind="status", status=429, times=2, retry_after=0.2),
        Fault(path="/v1/models", kind="status", status=500, times=2),
        Fault(path="/v1/models", kind="status", status=503, times=1),
        Fault(path="/v1/models", kind="truncate", times=2),
        Fault(path="/v1/models", kind="html", times=1),
        Fault(path="/v1/models", kind="reset", times=1),
        Fault(path="/v1/models", kind="delay", delay=5.0, times=1),
    ],
    ids=lambda f: f.kind + (str(f.status) if f.kind == "status" else ""),
)
def test_transient_failures_are_retried_then_succeed(fal_emulator: FalEmulator, fault: Fault) -> None:
    fault_count = fault.times
    fal_emulator.inject(fault)
    # The client's timeout ends the delayed answer; every other answer, on a busy machine too, comes well
    # within it.
    timeout = 2.0 if fault.kind == "delay" else 10.0
    items = run(fal_emulator, lambda fal: fal.list_models(statuses=("active",)), timeout_seconds=timeout)
    assert len(items) == 1182
    assert len(fal_emulator.requests) == 2 + fault_count, "two pages, plus one retry per injected fault"
    if fault.retry_after:
        failed = [r for r in fal_emulator.requests if r.status == 429]
        retried = next(r for r in fal_emulator.requests if r.status == 200)
        assert retried.started - failed[-1].ended >= fault.retry_after * 0.9


def test_retry_exhaustion_names_the_request_and_the_error(fal_emulator: FalEmulator) -> None:
    fal_emulator.inject(Fault(path="/v1/models/pricing", kind="status", status=500, times=None))
    fetched = run(fal_emulator, lambda fal: fal.fetch_prices(["fal-ai/flux/dev"]), max_attempts=3)
    outcome = fetched["fal-ai/flux/dev"]
    assert outcome.status == PriceStatus.FAILED
    assert "fal GET" in outcome.error and "/models/pricing" in outcome.error
    assert "fal-ai%2Fflux%2Fdev" in outcome.error or "fal-ai/flux/dev" in outcome.error
    assert "HTTP 500 server_error" in outcome.error
    assert len([r for r in fal_emulator.requests if r.path == "/v1/models/pricing"]) == 3

    fal_emulator.inject(Fault(path="/v1/models", kind="status", status=502, times=None))
    with pytest.raises(FalApiError, match=r"model list, status=(active|deprecated), page 1\): HTTP 502"):
        run(fal_emulator, lambda fal: fal.list_models(), max_attempts=2)


def test_non_json_answer_is_an_error_not_data(fal_emulator: FalEmulator) -> None:
    fal_emulator.inject(Fault(path="/v1/models", kind="html", times=None))
    with pytest.raises(FalApiError, match="not JSON"):
        run(fal_emulator, lambda fal: fal.list_models(), max_attempts=2)


def test_estimates_both_forms_within_fal_rate_limit(fal_emulator: FalEmulator) -> None:
    async def estimates(fal: FalPlatformClient):
        by_units = await fal.estimate({"fal-ai/flux/dev": 4})
        by_calls = await fal.estimate({"fal-ai/flux/dev": 2}, estimate_type="historical_api_price")
        return by_units, by_calls

    by_units, by_calls = run(fal_emulator, estimates)
    assert by_units.total_cost == Decimal("0.1") and by_units.estimate_type == "unit_price"
    assert by_calls.estimate_type == "historical_api_price"
    assert [r.status for r in fal_emulator.requests] == [200, 200]  # paced, never rate-limited


def test_the_key_appears_in_no_log_and_no_error(fal_emulator: FalEmulator, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    fal_emulator.inject(
        Fault(path="/v1/models/pricing", kind="status", status=429, times=2, retry_after=0.01)
    )
    fal_emulator.inject(Fault(path="/v1/models/pricing", kind="status", status=500, times=None))
    fetched = run(fal_emulator, lambda fal: fal.fetch_prices(["fal-ai/flux/dev"]), max_attempts=4)
    fal_emulator.clear_faults()
    with pytest.raises(FalApiError) as error:
        run(fal_emulator, lambda fal: fal.fetch_prices(["fal-ai/flux/dev"]), key="sk-wrong-" + TEST_FAL_KEY)
    secret_part = TEST_FAL_KEY.split(":")[1]
    assert caplog.records, "the retries were logged"
    assert secret_part not in caplog.text
    assert secret_part not in str(error.value) and secret_part not in repr(error.value)
    assert secret_part not in fetched["fal-ai/flux/dev"].error
    client = FalPlatformClient(FalClientSettings(), TEST_FAL_KEY)
    assert secret_part not in repr(vars(client))
