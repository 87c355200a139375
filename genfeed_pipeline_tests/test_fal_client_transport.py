"""The fal client's own logic through an injected `httpx.MockTransport`: no server, every answer scripted.

The emulator (`test_fal_client.py`, the fault suite) checks the client against fal's behaviour over real
HTTP; these check the client's decisions one at a time: waiting out a `Retry-After`, bisecting a batch
that fal fails with 404, falling back to the queue schema when expansion fails.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx

from genfeed_pipeline.fal.catalog import PriceStatus, SchemaStatus
from genfeed_pipeline.fal.client import FalClientSettings, FalPlatformClient

BASE_URL = "https://fal.test/v1"
OPENAPI_URL = "https://fal.test/api/openapi/queue/openapi.json"
KEY = "key-id:key-secret-for-mock"


def fal_error(status: int, error_type: str, message: str, headers: dict[str, str] | None = None):
    return httpx.Response(status, json={"error": {"type": error_type, "message": message}}, headers=headers)


def document(endpoint_id: str) -> dict[str, Any]:
    return {"openapi": "3.0.4", "info": {"title": endpoint_id}, "paths": {f"/{endpoint_id}": {}}}


class Script:
    """A MockTransport handler that records each request (with its time) and answers with `answer`."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.requests: list[tuple[float, httpx.Request]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((time.monotonic(), request))
        return self.answer(request)

    def ids(self, path: str) -> list[list[str]]:
        return [r.url.params.get_list("endpoint_id") for _, r in self.requests if r.url.path == path]


def run(script: Script, call, **settings: Any):
    options = {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.02, **settings}
    client_settings = FalClientSettings(base_url=BASE_URL, openapi_url=OPENAPI_URL, **options)

    async def go():
        async with FalPlatformClient(client_settings, KEY, transport=httpx.MockTransport(script)) as fal:
            return await call(fal)

    return asyncio.run(go())


def test_a_429_with_retry_after_is_waited_out_then_succeeds() -> None:
    page = {"models": [{"endpoint_id": "fal-ai/flux/dev", "metadata": {"display_name": "FLUX.1 [dev]"}}]}

    def answer(request: httpx.Request) -> httpx.Response:
        if len(script.requests) == 1:
            return fal_error(429, "rate_limited", "slow down", headers={"Retry-After": "0.3"})
        return httpx.Response(200, json=page)

    script = Script(answer)
    items = run(script, lambda fal: fal.list_models(statuses=("active",)))

    assert [item.endpoint_id for item in items] == ["fal-ai/flux/dev"]
    (first, _), (second, _) = script.requests
    assert second - first >= 0.3, "the retry waited what fal asked, not the 10 ms backoff"


def test_a_price_batch_failing_with_404_is_bisected_around_the_unknown_id() -> None:
    known = {f"fal-ai/model-{i}": f"0.00{i}" for i in range(1, 8)}
    unknown = "no-such/endpoint"

    def answer(request: httpx.Request) -> httpx.Response:
        ids = request.url.params.get_list("endpoint_id")
        assert request.headers["Authorization"] == f"Key {KEY}"
        if unknown in ids:
            return fal_error(404, "not_found", f"endpoint {unknown} not found")
        prices = [{"endpoint_id": i, "unit_price": known[i], "unit": "image"} for i in ids]
        return httpx.Response(200, json={"prices": prices, "has_more": False})

    script = Script(answer)
    ids = [*list(known)[:3], unknown, *list(known)[3:]]
    fetched = run(script, lambda fal: fal.fetch_prices(ids))

    assert fetched[unknown].status == PriceStatus.NOT_FOUND
    assert all(fetched[i].status == PriceStatus.PRICED for i in known)
    assert fetched["fal-ai/model-4"].price.unit_price == Decimal("0.004")
    batches = script.ids("/v1/models/pricing")
    assert batches[0] == ids
    assert [unknown] in batches, "bisected down to the unknown id alone"
    # 8 ids: the batch, its two halves, and the halves of each half holding the unknown id
    assert len(batches) == 1 + 2 + 2 + 2


def test_expansion_failed_falls_back_to_the_queue_schema_and_a_missing_one_is_marked() -> None:
    expanded, fell_back, nowhere = "fal-ai/flux/dev", "fal-ai/flux/schnell", "fal-ai/no-schema"

    def answer(request: httpx.Request) -> httpx.Response:
        endpoint_ids = request.url.params.get_list("endpoint_id")
        if str(request.url).startswith(OPENAPI_URL):
            assert "Authorization" not in request.headers, "the public queue schema is asked without the key"
            [endpoint_id] = endpoint_ids
            if endpoint_id == nowhere:
                return fal_error(404, "not_found", "no such endpoint")
            return httpx.Response(200, json=document(endpoint_id))
        assert request.url.params["expand"] == "openapi-3.0"
        failed = {"error": {"code": "expansion_failed", "message": "OpenAPI expansion failed"}}
        models = [
            {"endpoint_id": e, "openapi": document(e) if e == expanded else failed} for e in endpoint_ids
        ]
        return httpx.Response(200, json={"models": models, "has_more": False})

    script = Script(answer)
    fetched = run(script, lambda fal: fal.fetch_openapi([expanded, fell_back, nowhere]))

    assert fetched[expanded].status == SchemaStatus.FETCHED
    assert fetched[fell_back].status == SchemaStatus.FALLBACK
    assert json.loads(fetched[fell_back].document_json) == document(fell_back)
    assert fetched[nowhere].status == SchemaStatus.MISSING and fetched[nowhere].document_json is None
    assert not fetched[nowhere].failed
    queue_requests = [r for _, r in script.requests if str(r.url).startswith(OPENAPI_URL)]
    assert sorted(r.url.params["endpoint_id"] for r in queue_requests) == sorted([fell_back, nowhere])


def test_a_schema_batch_fal_calls_too_large_steps_down_to_the_named_cap() -> None:
    ids = [f"fal-ai/model-{i}" for i in range(7)]

    def answer(request: httpx.Request) -> httpx.Response:
        endpoint_ids = request.url.params.get_list("endpoint_id")
        if len(endpoint_ids) > 3:
            return fal_error(400, "validation_error", "expand accepts at most 3 endpoint ids")
        models = [{"endpoint_id": e, "openapi": document(e)} for e in endpoint_ids]
        return httpx.Response(200, json={"models": models, "has_more": False})

    script = Script(answer)
    fetched = run(script, lambda fal: fal.fetch_openapi(ids), schema_batch_size=7)

    assert all(fetched[e].status == SchemaStatus.FETCHED for e in ids)
    assert [len(batch) for batch in script.ids("/v1/models")] == [7, 3, 3, 1]


def test_the_key_is_in_no_error_after_retries_run_out() -> None:
    script = Script(lambda request: fal_error(503, "server_error", "down for maintenance"))
    fetched = run(script, lambda fal: fal.fetch_prices(["fal-ai/flux/dev"]), max_attempts=3)

    outcome = fetched["fal-ai/flux/dev"]
    assert outcome.status == PriceStatus.FAILED and "HTTP 503 server_error" in outcome.error
    assert KEY.split(":")[1] not in outcome.error
    assert len(script.requests) == 3
