"""The fal emulator itself, exercised over real HTTP with httpx.

The catalog is built here from a dozen synthetic endpoints, so these tests need neither the bundled
snapshot nor ../shared; the tests that do need the snapshot skip with a message when it is missing.
"""

from __future__ import annotations

import base64
import gzip
import importlib.resources
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from genfeed_pipeline_tests.fal_emulator import (
    EmulatedCatalog,
    EmulatorSettings,
    FalEmulator,
    Fault,
    RecordedRequest,
    clone_endpoint_id,
)

API_KEY = "test-fal-key"
AUTH = {"Authorization": f"Key {API_KEY}"}
BOTH_STATUSES = [("status", "active"), ("status", "deprecated")]
EXPAND = ("expand", "openapi-3.0")
REPO_ROOT = Path(__file__).resolve().parents[1]

ACTIVE_IDS = [
    "fal-ai/synth/text-to-image",
    "fal-ai/synth/text-to-image/turbo",
    "fal-ai/synth-video/v1/image-to-video",
    "fal-ai/synth-video/v1/text-to-video",
    "fal-ai/synth-upscaler",
    "acme/painter",
    "acme/painter/lora",
    "acme/speaker/tts",
    "bytedance/synth-2.0/reference-to-video",
]
DEPRECATED_IDS = ["fal-ai/synth/legacy", "acme/old-painter", "fal-ai/synth-video/v0/image-to-video"]
ALL_IDS = ACTIVE_IDS + DEPRECATED_IDS
UNPRICED_ID = "acme/painter/lora"
UNDOCUMENTED_ID = "acme/speaker/tts"
PRICES = {
    "fal-ai/synth/text-to-image": ("0.025", "megapixels"),
    "fal-ai/synth/text-to-image/turbo": ("0.003", "megapixels"),
    "fal-ai/synth-video/v1/image-to-video": ("0.07", "seconds"),
    "fal-ai/synth-video/v1/text-to-video": ("0.1", "videos"),
    "fal-ai/synth-upscaler": ("0.00125", "compute seconds"),
    "acme/painter": ("0.04", "images"),
    "acme/speaker/tts": ("0.05", "1000 characters"),
    "bytedance/synth-2.0/reference-to-video": ("0.3024", "seconds"),
    "fal-ai/synth/legacy": ("0.01", "images"),
    "acme/old-painter": ("0.02", "images"),
    "fal-ai/synth-video/v0/image-to-video": ("0.05", "seconds"),
}


def category_of(endpoint_id: str) -> str:
    if "video" in endpoint_id:
        return "image-to-video" if "image-to-video" in endpoint_id else "text-to-video"
    if "tts" in endpoint_id:
        return "text-to-speech"
    if "upscaler" in endpoint_id:
        return "image-to-image"
    return "text-to-image"


def synthetic_metadata(endpoint_id: str, status: str) -> dict[str, Any]:
    name = endpoint_id.split("/", 1)[1].replace("/", " ").title()
    return {
        "display_name": name,
        "category": category_of(endpoint_id),
        "description": f"Synthetic {category_of(endpoint_id)} endpoint {name} for emulator tests",
        "status": status,
        "tags": [],
        "updated_at": "2026-04-21T17:47:32.206Z",
        "thumbnail_url": "https://fal.media/files/synthetic.jpg",
        "model_url": f"https://fal.run/{endpoint_id}",
        "date": "2025-04-01T18:10:42.284Z",
        "kind": "inference",
    }


def synthetic_document(endpoint_id: str) -> dict[str, Any]:
    """A minimal queue OpenAPI document in fal's shape (see shared/fal-api.md §2)."""
    name = "".join(part.capitalize() for part in endpoint_id.split("/", 1)[1].replace("-", "/").split("/"))
    return {
        "openapi": "3.0.4",
        "info": {
            "title": f"Queue OpenAPI for {endpoint_id}",
            "version": "1.0.0",
            "description": f"The OpenAPI schema for the {endpoint_id} queue.",
            "x-fal-metadata": {
                "endpointId": endpoint_id,
                "category": category_of(endpoint_id),
                "playgroundUrl": f"https://fal.ai/models/{endpoint_id}",
                "documentationUrl": f"https://fal.ai/models/{endpoint_id}/api",
            },
        },
        "servers": [{"url": "https://queue.fal.run"}],
        "components": {
            "schemas": {
                f"{name}Input": {
                    "type": "object",
                    "properties": {"prompt": {"type": "string", "title": "Prompt"}},
                    "required": ["prompt"],
                },
                f"{name}Output": {"type": "object", "properties": {"seed": {"type": "integer"}}},
            }
        },
        "paths": {
            f"/{endpoint_id}": {"post": {"requestBody": {"$ref": f"#/components/schemas/{name}Input"}}},
            f"/{endpoint_id}/requests/{{request_id}}/status": {"get": {}},
            f"/{endpoint_id}/requests/{{request_id}}/cancel": {"put": {}},
            f"/{endpoint_id}/requests/{{request_id}}": {"get": {}},
        },
    }


def synthetic_catalog() -> EmulatedCatalog:
    catalog = EmulatedCatalog()
    for endpoint_id in ALL_IDS:
        status = "deprecated" if endpoint_id in DEPRECATED_IDS else "active"
        price = PRICES.get(endpoint_id)
        catalog.add_model(
            endpoint_id,
            synthetic_metadata(endpoint_id, status),
            price={"unit_price": price[0], "unit": price[1]} if price else None,
            openapi=None if endpoint_id == UNDOCUMENTED_ID else synthetic_document(endpoint_id),
        )
    return catalog


@pytest.fixture
def catalog() -> EmulatedCatalog:
    return synthetic_catalog()


@pytest.fixture
def fal(catalog: EmulatedCatalog) -> Iterator[FalEmulator]:
    with FalEmulator(catalog, EmulatorSettings(estimate_min_interval=0.0), api_key=API_KEY) as emulator:
        yield emulator


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def get_models(http: httpx.Client, fal: FalEmulator, params: list[tuple[str, str]]) -> dict[str, Any]:
    response = http.get(f"{fal.base_url}/models", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def walk(http: httpx.Client, fal: FalEmulator, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Follow `next_cursor` while `has_more`, as fal's own fetch script does."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = get_models(http, fal, params + ([("cursor", cursor)] if cursor else []))
        assert set(page) == {"models", "next_cursor", "has_more"}
        items.extend(page["models"])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return items
        cursor = page["next_cursor"]


def wait_until_idle(fal: FalEmulator) -> None:
    """Until every request the emulator took has been answered or dropped (it counts a request out just
    after its response is sent, so a client may see the answer first)."""
    deadline = time.monotonic() + 10
    while fal.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fal.in_flight == 0


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) >= {"type", "message"}
    return body["error"]


# -- GET /v1/models, list mode -----------------------------------------------------------------------------


def test_list_walks_every_endpoint_once_with_both_statuses(http: httpx.Client, fal: FalEmulator) -> None:
    items = walk(http, fal, [("limit", "5"), *BOTH_STATUSES])

    assert [item["endpoint_id"] for item in items] == ALL_IDS
    assert all(set(item) == {"endpoint_id", "metadata"} for item in items)
    pages = fal.requests_to("/v1/models")
    assert [request.query.get("cursor") for request in pages] == [None, ["Mg=="], ["Mw=="]]
    assert base64.b64decode("Mg==") == b"2"


def test_list_without_status_returns_active_only(http: httpx.Client, fal: FalEmulator) -> None:
    items = walk(http, fal, [("limit", "100")])

    assert [item["endpoint_id"] for item in items] == ACTIVE_IDS
    assert {item["metadata"]["status"] for item in items} == {"active"}
    deprecated = walk(http, fal, [("status", "deprecated")])
    assert [item["endpoint_id"] for item in deprecated] == DEPRECATED_IDS


def test_list_default_statuses_setting_can_follow_fals_docs(http: httpx.Client, fal: FalEmulator) -> None:
    fal.settings.list_default_statuses = ("active", "deprecated")

    assert len(walk(http, fal, [])) == len(ALL_IDS)


def test_list_page_size_default_and_clamp(http: httpx.Client, fal: FalEmulator) -> None:
    fal.settings.list_default_limit = 2
    fal.settings.list_page_max = 4

    assert len(get_models(http, fal, [])["models"]) == 2
    page = get_models(http, fal, [("limit", "1000"), *BOTH_STATUSES])
    assert len(page["models"]) == 4
    assert page["has_more"] is True
    assert page["next_cursor"] == "Mg=="


def test_expand_caps_page_size_and_reports_failed_expansions(http: httpx.Client, fal: FalEmulator) -> None:
    fal.settings.schema_batch_cap = 3
    fal.settings.expansion_failed_ids.add("acme/painter")

    first = get_models(http, fal, [("limit", "1000"), EXPAND])
    items = walk(http, fal, [("limit", "1000"), EXPAND])

    assert len(first["models"]) == 3
    assert [item["endpoint_id"] for item in items] == ACTIVE_IDS
    by_id = {item["endpoint_id"]: item for item in items}
    assert by_id["fal-ai/synth/text-to-image"]["openapi"] == synthetic_document("fal-ai/synth/text-to-image")
    for endpoint_id in ("acme/painter", UNDOCUMENTED_ID):
        assert by_id[endpoint_id]["openapi"] == {
            "error": {"code": "expansion_failed", "message": f"OpenAPI expansion failed for {endpoint_id}"}
        }
        assert by_id[endpoint_id]["metadata"]["status"] == "active"


def test_expand_accepts_comma_separated_values(http: httpx.Client, fal: FalEmulator) -> None:
    page = get_models(http, fal, [("expand", "openapi-3.0,enterprise_status"), ("limit", "2")])

    assert all("openapi" in item and item["enterprise_status"] == "ready" for item in page["models"])


def test_list_filters_by_category_and_free_text(http: httpx.Client, fal: FalEmulator) -> None:
    videos = walk(http, fal, [("category", "image-to-video"), *BOTH_STATUSES])
    painters = walk(http, fal, [("q", "PAINTER"), *BOTH_STATUSES])
    by_description = walk(http, fal, [("q", "text-to-speech endpoint")])

    assert [item["endpoint_id"] for item in videos] == [
        "fal-ai/synth-video/v1/image-to-video",
        "fal-ai/synth-video/v0/image-to-video",
    ]
    assert [item["endpoint_id"] for item in painters] == [
        "acme/painter",
        "acme/painter/lora",
        "acme/old-painter",
    ]
    assert [item["endpoint_id"] for item in by_description] == ["acme/speaker/tts"]


def test_metadata_missing_items_carry_only_the_endpoint_id(http: httpx.Client, fal: FalEmulator) -> None:
    fal.settings.metadata_missing_ids.add("acme/painter")
    fal.catalog.add_model("acme/unregistered", None)

    items = {item["endpoint_id"]: item for item in walk(http, fal, [])}

    assert items["acme/painter"] == {"endpoint_id": "acme/painter"}
    assert items["acme/unregistered"] == {"endpoint_id": "acme/unregistered"}


def test_bad_list_parameters_are_validation_errors(http: httpx.Client, fal: FalEmulator) -> None:
    for params in ([("cursor", "not base64!")], [("cursor", "YWJj")], [("limit", "0")], [("status", "gone")]):
        response = http.get(f"{fal.base_url}/models", params=params)
        assert response.status_code == 400, params
        assert error_of(response)["type"] == "validation_error"


def test_failing_list_page_answers_500_every_time(http: httpx.Client, fal: FalEmulator) -> None:
    fal.settings.failing_list_pages.add(2)

    for _ in range(2):
        response = http.get(f"{fal.base_url}/models", params={"limit": "5", "cursor": "Mg=="})
        assert response.status_code == 500
        assert error_of(response)["type"] == "server_error"
    assert http.get(f"{fal.base_url}/models", params={"limit": "5"}).status_code == 200


# -- GET /v1/models, find mode -----------------------------------------------------------------------------


def test_find_mode_returns_known_ids_and_omits_unknown(http: httpx.Client, fal: FalEmulator) -> None:
    params = [
        ("endpoint_id", "acme/painter"),
        ("endpoint_id", "fal-ai/does-not-exist,fal-ai/synth/legacy"),
        EXPAND,
    ]

    page = get_models(http, fal, params)

    assert [item["endpoint_id"] for item in page["models"]] == ["acme/painter", "fal-ai/synth/legacy"]
    assert page["has_more"] is False
    assert page["next_cursor"] is None
    assert page["models"][1]["metadata"]["status"] == "deprecated"
    assert page["models"][0]["openapi"]["info"]["title"] == "Queue OpenAPI for acme/painter"
    assert fal.requests[-1].query["endpoint_id"] == [
        "acme/painter",
        "fal-ai/does-not-exist",
        "fal-ai/synth/legacy",
    ]


def test_find_mode_with_expand_rejects_more_ids_than_the_schema_cap(
    http: httpx.Client, fal: FalEmulator
) -> None:
    fal.settings.schema_batch_cap = 7
    ids = [f"fal-ai/x-{n}" for n in range(8)]

    rejected = http.get(f"{fal.base_url}/models", params=[*(("endpoint_id", i) for i in ids), EXPAND])
    accepted = http.get(f"{fal.base_url}/models", params=[*(("endpoint_id", i) for i in ids[:7]), EXPAND])
    without_expand = http.get(f"{fal.base_url}/models", params=[("endpoint_id", ",".join(ids))])

    assert rejected.status_code == 400
    assert error_of(rejected) == {
        "type": "validation_error",
        "message": "At most 7 endpoint_id values are allowed when expand=openapi-3.0 (got 8)",
    }
    assert accepted.status_code == 200
    assert without_expand.status_code == 200


def test_find_mode_rejects_more_than_max_endpoint_ids(http: httpx.Client, fal: FalEmulator) -> None:
    ids = ",".join(f"fal-ai/x-{n}" for n in range(51))

    response = http.get(f"{fal.base_url}/models", params={"endpoint_id": ids})

    assert response.status_code == 400
    assert "50" in error_of(response)["message"]


# -- GET /v1/models/pricing --------------------------------------------------------------------------------


def test_pricing_requires_the_exact_key(http: httpx.Client, fal: FalEmulator) -> None:
    url = f"{fal.base_url}/models/pricing"
    params = {"endpoint_id": "acme/painter"}

    for headers in ({}, {"Authorization": "Key wrong"}, {"Authorization": f"Bearer {API_KEY}"}):
        response = http.get(url, params=params, headers=headers)
        assert response.status_code == 401
        assert error_of(response)["type"] == "authorization_error"
    assert http.get(url, params=params, headers=AUTH).status_code == 200
    assert [request.authorized for request in fal.requests] == [False, False, False, True]


def test_pricing_answers_exact_decimal_numbers(http: httpx.Client, fal: FalEmulator) -> None:
    response = http.get(
        f"{fal.base_url}/models/pricing",
        params=[
            ("endpoint_id", "fal-ai/synth/text-to-image,fal-ai/synth-upscaler"),
            ("endpoint_id", UNPRICED_ID),
        ],
        headers=AUTH,
    )

    assert response.status_code == 200
    assert '"unit_price":0.025,' in response.text
    assert '"unit_price":0.00125,' in response.text
    assert response.json() == {
        "prices": [
            {
                "endpoint_id": "fal-ai/synth/text-to-image",
                "unit_price": 0.025,
                "unit": "megapixels",
                "currency": "USD",
            },
            {
                "endpoint_id": "fal-ai/synth-upscaler",
                "unit_price": 0.00125,
                "unit": "compute seconds",
                "currency": "USD",
            },
        ],
        "next_cursor": None,
        "has_more": False,
    }
    assert json.loads(response.text, parse_float=Decimal)["prices"][1]["unit_price"] == Decimal("0.00125")


def test_pricing_as_strings(http: httpx.Client, fal: FalEmulator) -> None:
    fal.settings.prices_as_strings = True

    response = http.get(
        f"{fal.base_url}/models/pricing", params={"endpoint_id": "acme/painter"}, headers=AUTH
    )

    assert response.json()["prices"] == [
        {"endpoint_id": "acme/painter", "unit_price": "0.04", "unit": "images", "currency": "USD"}
    ]


def test_pricing_404s_the_whole_batch_on_one_unknown_id(http: httpx.Client, fal: FalEmulator) -> None:
    response = http.get(
        f"{fal.base_url}/models/pricing",
        params={"endpoint_id": "acme/painter,acme/gone,acme/also-gone"},
        headers=AUTH,
    )

    assert response.status_code == 404
    assert error_of(response) == {"type": "not_found", "message": "Endpoint not found: acme/gone"}


def test_pricing_validates_the_number_of_ids(http: httpx.Client, fal: FalEmulator) -> None:
    url = f"{fal.base_url}/models/pricing"
    too_many = ",".join(f"fal-ai/x-{n}" for n in range(51))

    for params in ({}, {"endpoint_id": ""}, {"endpoint_id": too_many}):
        response = http.get(url, params=params, headers=AUTH)
        assert response.status_code == 400, params
        assert error_of(response)["type"] == "validation_error"


# -- POST /v1/models/pricing/estimate -----------------------------------------------------------------------


def estimate(
    http: httpx.Client, fal: FalEmulator, body: Any, headers: dict[str, str] = AUTH
) -> httpx.Response:
    return http.post(f"{fal.base_url}/models/pricing/estimate", json=body, headers=headers)


def test_estimate_both_forms_total_exactly(http: httpx.Client, fal: FalEmulator) -> None:
    historical = estimate(
        http,
        fal,
        {
            "estimate_type": "historical_api_price",
            "endpoints": {
                "fal-ai/synth/text-to-image": {"call_quantity": 100},
                "acme/painter": {"call_quantity": 50},
            },
        },
    )
    by_unit = estimate(
        http,
        fal,
        {
            "estimate_type": "unit_price",
            "endpoints": {
                "fal-ai/synth-upscaler": {"unit_quantity": 3.3},
                "acme/speaker/tts": {"unit_quantity": 0.1},
            },
        },
    )

    assert historical.status_code == 200
    assert historical.text == '{"estimate_type":"historical_api_price","total_cost":4.5,"currency":"USD"}'
    assert by_unit.status_code == 200
    assert json.loads(by_unit.text, parse_float=Decimal) == {
        "estimate_type": "unit_price",
        "total_cost": Decimal("0.009125"),
        "currency": "USD",
    }


def test_estimate_rejects_malformed_bodies_and_unknown_ids(http: httpx.Client, fal: FalEmulator) -> None:
    malformed = [
        [],
        {"estimate_type": "guess", "endpoints": {"acme/painter": {"call_quantity": 1}}},
        {"estimate_type": "historical_api_price", "endpoints": {}},
        {"estimate_type": "historical_api_price", "endpoints": {"acme/painter": {"call_quantity": 0}}},
        {"estimate_type": "historical_api_price", "endpoints": {"acme/painter": {"call_quantity": 1.5}}},
        {"estimate_type": "historical_api_price", "endpoints": {"acme/painter": {"unit_quantity": 1}}},
        {"estimate_type": "unit_price", "endpoints": {"acme/painter": {"unit_quantity": 1e-7}}},
        {"estimate_type": "unit_price", "endpoints": {"acme/painter": {"unit_quantity": True}}},
    ]
    for body in malformed:
        response = estimate(http, fal, body)
        assert response.status_code == 400, body
        assert error_of(response)["type"] == "validation_error"
    not_json = http.post(f"{fal.base_url}/models/pricing/estimate", content=b"{", headers=AUTH)
    assert not_json.status_code == 400

    unknown = estimate(
        http, fal, {"estimate_type": "unit_price", "endpoints": {"acme/gone": {"unit_quantity": 1}}}
    )
    assert unknown.status_code == 404
    assert error_of(unknown) == {"type": "not_found", "message": "Endpoint not found: acme/gone"}
    assert estimate(http, fal, {}, headers={}).status_code == 401


def test_estimate_is_rate_limited(http: httpx.Client, fal: FalEmulator) -> None:
    fal.settings.estimate_min_interval = 1.0
    body = {"estimate_type": "unit_price", "endpoints": {"acme/painter": {"unit_quantity": 2}}}

    first = estimate(http, fal, body)
    second = estimate(http, fal, body)

    assert first.status_code == 200
    assert first.json()["total_cost"] == 0.08
    assert second.status_code == 429
    assert second.headers["retry-after"] == "1"
    assert error_of(second) == {"type": "rate_limited", "message": "Rate limit exceeded"}


# -- queue OpenAPI URL and unknown routes ------------------------------------------------------------------


def test_queue_openapi_url_serves_documents_publicly(http: httpx.Client, fal: FalEmulator) -> None:
    assert fal.openapi_url == f"http://127.0.0.1:{fal.port}/api/openapi/queue/openapi.json"
    found = http.get(fal.openapi_url, params={"endpoint_id": "acme/painter"})
    undocumented = http.get(fal.openapi_url, params={"endpoint_id": UNDOCUMENTED_ID})
    unknown = http.get(fal.openapi_url, params={"endpoint_id": "acme/gone"})

    assert found.status_code == 200
    assert found.headers["content-type"] == "application/json"
    assert found.json() == synthetic_document("acme/painter")
    for response in (undocumented, unknown):
        assert response.status_code == 404
        assert error_of(response)["type"] == "not_found"


def test_queue_openapi_url_still_serves_ids_whose_expansion_fails(
    http: httpx.Client, fal: FalEmulator
) -> None:
    fal.settings.expansion_failed_ids.add("acme/painter")

    assert http.get(fal.openapi_url, params={"endpoint_id": "acme/painter"}).status_code == 200


def test_unknown_routes_answer_fals_404(http: httpx.Client, fal: FalEmulator) -> None:
    for method, path in (("GET", "/v1/nothing"), ("POST", "/v1/models"), ("GET", "/")):
        response = http.request(method, f"http://127.0.0.1:{fal.port}{path}")
        assert response.status_code == 404
        assert error_of(response)["type"] == "not_found"


# -- catalog mutations -----------------------------------------------------------------------------------


def test_mutations_show_up_in_the_next_answers(http: httpx.Client, fal: FalEmulator) -> None:
    catalog = fal.catalog
    before = walk(http, fal, BOTH_STATUSES)
    old_updated_at = catalog.models["acme/painter"]["updated_at"]

    catalog.add_model(
        "acme/new-model",
        synthetic_metadata("acme/new-model", "active"),
        price={"unit_price": 0.5, "unit": "images"},
        openapi=synthetic_document("acme/new-model"),
    )
    catalog.remove_model("fal-ai/synth/legacy")
    catalog.set_price("acme/painter", "0.045", "images")
    catalog.set_openapi("acme/painter", synthetic_document("acme/painter-v2"))
    catalog.deprecate("fal-ai/synth-upscaler")

    after = {item["endpoint_id"]: item for item in walk(http, fal, BOTH_STATUSES)}
    active = [item["endpoint_id"] for item in walk(http, fal, [("status", "active")])]
    prices = http.get(
        f"{fal.base_url}/models/pricing", params={"endpoint_id": "acme/painter,acme/new-model"}, headers=AUTH
    ).json()["prices"]
    document = http.get(fal.openapi_url, params={"endpoint_id": "acme/painter"}).json()

    assert len(after) == len(before)
    assert "fal-ai/synth/legacy" not in after
    assert "fal-ai/synth-upscaler" not in active
    assert after["fal-ai/synth-upscaler"]["metadata"]["status"] == "deprecated"
    assert after["acme/painter"]["metadata"]["updated_at"] > old_updated_at
    assert [(price["unit_price"], price["unit"]) for price in prices] == [(0.045, "images"), (0.5, "images")]
    assert document["info"]["title"] == "Queue OpenAPI for acme/painter-v2"
    with pytest.raises(KeyError):
        catalog.set_price("acme/gone", "1", "images")


def test_hidden_endpoints_are_absent_everywhere_until_revealed(http: httpx.Client, fal: FalEmulator) -> None:
    fal.catalog.hide(["acme/painter", "fal-ai/synth/legacy"])
    listed = [item["endpoint_id"] for item in walk(http, fal, BOTH_STATUSES)]
    found = get_models(http, fal, [("endpoint_id", "acme/painter")])
    price = http.get(f"{fal.base_url}/models/pricing", params={"endpoint_id": "acme/painter"}, headers=AUTH)
    document = http.get(fal.openapi_url, params={"endpoint_id": "acme/painter"})
    assert sorted(listed) == sorted(set(ALL_IDS) - {"acme/painter", "fal-ai/synth/legacy"})
    assert found["models"] == [] and price.status_code == 404 and document.status_code == 404
    assert fal.catalog.hidden == ["acme/painter", "fal-ai/synth/legacy"]
    with pytest.raises(KeyError):
        fal.catalog.reveal(["acme/painter/lora"])

    fal.catalog.reveal(["acme/painter"])
    listed = [item["endpoint_id"] for item in walk(http, fal, BOTH_STATUSES)]
    price = http.get(f"{fal.base_url}/models/pricing", params={"endpoint_id": "acme/painter"}, headers=AUTH)
    assert listed[-1] == "acme/painter" and "fal-ai/synth/legacy" not in listed
    assert price.json()["prices"][0]["unit_price"] == 0.04
    assert http.get(fal.openapi_url, params={"endpoint_id": "acme/painter"}).status_code == 200


def test_the_control_route_is_served_only_when_enabled(http: httpx.Client, fal: FalEmulator) -> None:
    control = f"{fal.origin}/_emulator/catalog"
    off = http.post(control, json={"hide": ["acme/painter"]})
    assert off.status_code == 404 and error_of(off)["type"] == "not_found"
    assert "acme/painter" in fal.catalog.models

    fal.settings.control = True
    swapped = http.post(control, json={"hide": ["acme/painter", "acme/painter/lora"]}).json()
    assert swapped["hidden"] == ["acme/painter", "acme/painter/lora"]
    assert swapped["listed"] == len(ALL_IDS) - 2 == len(swapped["listed_ids"])
    moved = http.post(control, json={"reveal": ["acme/painter"], "hide": ["acme/old-painter"]}).json()
    assert moved["hidden"] == ["acme/old-painter", "acme/painter/lora"]
    assert http.get(control).json() == moved
    unknown = http.post(control, json={"reveal": ["acme/gone"]})
    assert unknown.status_code == 400 and "acme/gone" in error_of(unknown)["message"]
    assert http.post(control, content=b"[1]").status_code == 400
    assert [request.path for request in fal.requests] == ["/_emulator/catalog"], (
        "only the refused request (control off) is in the log"
    )


# -- fault injection -------------------------------------------------------------------------------------


def test_status_fault_answers_fals_error_body_with_retry_after(http: httpx.Client, fal: FalEmulator) -> None:
    fal.inject(Fault(path="/v1/models", kind="status", status=429, retry_after=2))
    fal.inject(Fault(path="/v1/models", kind="status", status=503))

    limited = http.get(f"{fal.base_url}/models")
    unavailable = http.get(f"{fal.base_url}/models")
    healthy = http.get(f"{fal.base_url}/models")

    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert error_of(limited)["type"] == "rate_limited"
    assert unavailable.status_code == 503
    assert "retry-after" not in unavailable.headers
    assert error_of(unavailable)["type"] == "server_error"
    assert healthy.status_code == 200
    assert fal.faults == []
    assert [request.status for request in fal.requests] == [429, 503, 200]


def test_truncated_body_makes_httpx_raise(http: httpx.Client, fal: FalEmulator) -> None:
    fal.inject(Fault(path="/v1/models", kind="truncate"))

    with pytest.raises(httpx.RemoteProtocolError):
        http.get(f"{fal.base_url}/models", params={"limit": "100"})
    assert http.get(f"{fal.base_url}/models").status_code == 200


def test_html_fault_answers_a_challenge_page(http: httpx.Client, fal: FalEmulator) -> None:
    fal.inject(Fault(path="/v1/models/pricing", kind="html"))
    fal.inject(Fault(path="/v1/models/pricing", kind="html", status=403))

    page = http.get(f"{fal.base_url}/models/pricing", params={"endpoint_id": "acme/painter"}, headers=AUTH)
    forbidden = http.get(
        f"{fal.base_url}/models/pricing", params={"endpoint_id": "acme/painter"}, headers=AUTH
    )

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.startswith("<!DOCTYPE html>")
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"].startswith("text/html")


def test_delay_fault_outlasts_a_client_timeout(http: httpx.Client, fal: FalEmulator) -> None:
    """One request takes the delay: the next is answered first, while the delayed one is still waiting."""
    fal.inject(Fault(path="/v1/models", kind="delay", delay=1.0))

    with pytest.raises(httpx.ReadTimeout):
        http.get(f"{fal.base_url}/models", timeout=0.2)
    assert fal.faults == []
    assert http.get(f"{fal.base_url}/models").status_code == 200
    wait_until_idle(fal)

    delayed, next_request = fal.requests
    assert (delayed.status, next_request.status) == (200, 200)  # the delayed one answered a client gone
    assert next_request.ended < delayed.ended


def test_reset_fault_drops_the_connection(http: httpx.Client, fal: FalEmulator) -> None:
    fal.inject(Fault(kind="reset"))

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        http.get(f"{fal.base_url}/models")
    assert http.get(f"{fal.base_url}/models").status_code == 200
    assert [request.status for request in fal.requests] == [0, 200]


def test_faults_select_by_path_and_match_and_can_last_forever(http: httpx.Client, fal: FalEmulator) -> None:
    def page_two(request: RecordedRequest) -> bool:
        return request.query.get("cursor") == ["Mg=="]

    fal.inject(Fault(path="/v1/models", kind="status", status=502, times=None, match=page_two))
    fal.inject(Fault(path="/api/openapi", kind="status", status=500, times=2))

    for _ in range(3):
        assert http.get(f"{fal.base_url}/models", params={"cursor": "Mg=="}).status_code == 502
    assert http.get(f"{fal.base_url}/models").status_code == 200
    statuses = [
        http.get(fal.openapi_url, params={"endpoint_id": "acme/painter"}).status_code for _ in range(3)
    ]
    assert statuses == [500, 500, 200]
    assert len(fal.faults) == 1
    fal.clear_faults()
    assert http.get(f"{fal.base_url}/models", params={"cursor": "Mg=="}).status_code == 200


# -- timing, concurrency, lifecycle ------------------------------------------------------------------------


def test_latency_is_added_to_every_request(http: httpx.Client, fal: FalEmulator) -> None:
    """Every route waits out the latency: a client that gives up sooner gets no answer from any of them,
    and the same requests are answered once the latency is gone."""
    urls = (f"{fal.base_url}/models", fal.openapi_url, f"{fal.base_url}/nothing")
    fal.settings.latency = 0.5
    for url in urls:
        with pytest.raises(httpx.ReadTimeout):
            http.get(url, params={"endpoint_id": "acme/painter"}, timeout=0.1)
    wait_until_idle(fal)
    fal.settings.latency = 0.0
    answered = [http.get(url, params={"endpoint_id": "acme/painter"}, timeout=5).status_code for url in urls]

    assert answered == [200, 200, 404]
    assert [request.status for request in fal.requests] == [200, 200, 404] * 2


def test_max_in_flight_counts_concurrent_requests(fal: FalEmulator) -> None:
    fal.settings.latency = 0.2

    def fetch(_: int) -> int:
        with httpx.Client(timeout=10) as client:
            return client.get(f"{fal.base_url}/models").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(fetch, range(8)))

    assert statuses == [200] * 8
    assert fal.max_in_flight >= 4
    wait_until_idle(fal)
    fal.reset_log()
    assert fal.requests == []
    assert fal.max_in_flight == 0


def test_the_request_log_never_holds_the_key(http: httpx.Client, fal: FalEmulator) -> None:
    http.get(f"{fal.base_url}/models/pricing", params={"endpoint_id": "acme/painter"}, headers=AUTH)

    (request,) = fal.requests
    assert request.authorized is True
    assert request.method == "GET"
    assert request.path == "/v1/models/pricing"
    assert request.query == {"endpoint_id": ["acme/painter"]}
    assert request.status == 200
    assert request.started <= request.ended
    assert API_KEY not in repr(fal.requests)


def test_kill_drops_requests_in_flight_and_refuses_new_ones(catalog: EmulatedCatalog) -> None:
    fal = FalEmulator(catalog, EmulatorSettings(latency=0.5)).start()
    url = f"{fal.base_url}/models"
    outcome: list[BaseException | int] = []

    def in_flight() -> None:
        try:
            outcome.append(httpx.get(url, timeout=5).status_code)
        except httpx.HTTPError as error:
            outcome.append(error)

    caller = threading.Thread(target=in_flight)
    caller.start()
    time.sleep(0.2)
    fal.kill()
    caller.join(timeout=5)

    assert len(outcome) == 1
    assert isinstance(outcome[0], httpx.TransportError)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)
    fal.settings.latency = 0.0
    fal.start()
    try:
        assert httpx.get(url, timeout=2).status_code == 200
    finally:
        fal.stop()


def test_stop_closes_keep_alive_connections(catalog: EmulatedCatalog, http: httpx.Client) -> None:
    fal = FalEmulator(catalog).start()
    url = f"{fal.base_url}/models"
    assert http.get(url).status_code == 200
    fal.stop()

    with pytest.raises(httpx.TransportError):
        http.get(url)


# -- scale and snapshot ----------------------------------------------------------------------------------


def path_prefixes(endpoint_id: str) -> list[str]:
    parts = endpoint_id.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


def test_scaled_catalog_has_n_unique_independent_endpoints(catalog: EmulatedCatalog) -> None:
    big = catalog.scaled(15_000)

    ids = list(big.models)
    assert len(ids) == 15_000 == len(set(ids))
    assert ids[: len(ALL_IDS)] == ALL_IDS
    clones = ids[len(ALL_IDS) :]
    assert clones[0] == clone_endpoint_id(ALL_IDS[0], 1) == "fal-ai/clone-00001-synth-text-to-image"
    all_prefixes = {prefix for endpoint_id in ids for prefix in path_prefixes(endpoint_id)}
    id_set = set(ids)
    for clone in clones:
        assert clone not in all_prefixes
        assert not any(prefix in id_set for prefix in path_prefixes(clone))

    original = "fal-ai/synth/text-to-image"
    clone = clone_endpoint_id(original, 1)
    document = big.openapi[clone]
    assert document["info"]["title"] == f"Queue OpenAPI for {clone}"
    assert document["info"]["x-fal-metadata"]["endpointId"] == clone
    assert sorted(document["paths"]) == sorted(
        path.replace(original, clone) for path in catalog.openapi[original]["paths"]
    )
    assert big.models[clone]["display_name"].startswith(catalog.models[original]["display_name"])
    assert big.models[clone]["display_name"] != catalog.models[original]["display_name"]
    assert big.prices[clone] == catalog.prices[original]
    big.openapi[clone]["components"]["schemas"].clear()
    big.models[clone]["tags"].append("mutated")
    big.prices[clone]["unit"] = "mutated"
    big.models[original]["tags"].append("mutated")
    assert catalog.openapi[original]["components"]["schemas"]
    assert catalog.models[original]["tags"] == []
    assert catalog.prices[original]["unit"] == "megapixels"
    other_clone = clone_endpoint_id(original, 1 + len(ALL_IDS))
    assert big.models[other_clone]["tags"] == []
    assert UNDOCUMENTED_ID not in big.openapi
    assert catalog.scaled(3).models.keys() == set(ALL_IDS[:3])


def test_scaled_catalog_is_served_page_by_page(catalog: EmulatedCatalog, http: httpx.Client) -> None:
    with FalEmulator(catalog.scaled(2_500)) as fal:
        items = walk(http, fal, [("limit", "1000"), *BOTH_STATUSES])

    assert len(items) == 2_500
    assert len({item["endpoint_id"] for item in items}) == 2_500


def bundled_snapshot() -> Path:
    path = Path(
        str(
            importlib.resources.files("genfeed_pipeline")
            / "snapshot"
            / "data"
            / "fal_catalog_snapshot.json.gz"
        )
    )
    if not path.is_file():
        pytest.skip(
            f"the bundled fal catalog snapshot is not built yet ({path}); run scripts/build_snapshot.py"
        )
    return path


def test_from_snapshot_serves_the_bundled_catalog(http: httpx.Client) -> None:
    path = bundled_snapshot()
    snapshot = json.loads(gzip.decompress(path.read_bytes()))

    catalog = EmulatedCatalog.from_snapshot()
    big = catalog.scaled(15_000)

    ids = [model["endpoint_id"] for model in snapshot["models"]]
    assert list(catalog.models) == ids
    assert len(big) == 15_000
    # 15,000 = 12 rounds of the 1,182 endpoints + the first 816 again; a clone has a document or a price
    # exactly where its original has one.
    rounds, rest = divmod(15_000, len(ids))
    assert (rounds, rest) == (12, 816)
    for held, by_id in ((big.openapi, snapshot["openapi"]), (big.prices, snapshot["prices"])):
        assert len(held) == rounds * sum(i in by_id for i in ids) + sum(i in by_id for i in ids[:rest])
    endpoint_id, price = next(iter(snapshot["prices"].items()))
    with FalEmulator(catalog) as fal:
        response = http.get(
            f"{fal.base_url}/models/pricing", params={"endpoint_id": endpoint_id}, headers=AUTH
        )
        page = get_models(http, fal, [("limit", "1000"), *BOTH_STATUSES])
    assert f'"unit_price":{price["unit_price"]},' in response.text
    assert response.json()["prices"][0]["unit"] == price["unit"]
    assert len(page["models"]) == min(1000, len(snapshot["models"]))


def test_standalone_server_prints_its_urls() -> None:
    bundled_snapshot()
    process = subprocess.Popen(
        [sys.executable, "-m", "genfeed_pipeline_tests.fal_emulator", "--port", "0", "--scale", "1500"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        base_url = lines[1].split("=", 1)[1].strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        assert lines[2].split("=", 1)[1].strip().endswith("/api/openapi/queue/openapi.json")
        page = httpx.get(f"{base_url}/models", params={"limit": "1000"}, timeout=10).json()
        assert len(page["models"]) == 1000
        assert page["has_more"] is True
    finally:
        process.terminate()
        process.wait(timeout=10)
