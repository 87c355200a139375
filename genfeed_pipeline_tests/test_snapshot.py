"""The bundled fal catalog snapshot: its content, and that build_snapshot.py rebuilds it byte for byte; the
real fal data bundled for the tests, checked against its origin."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from genfeed_pipeline_tests.fal_data import (
    OLDER_COPIES_DIR,
    collected_price_units,
    current_documents,
    parsed_parameters,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED = REPO_ROOT / "genfeed_pipeline" / "snapshot" / "data" / "fal_catalog_snapshot.json.gz"
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_snapshot.py"
SCHEMA_PREFIX = "#/components/schemas/"


@cache
def load_snapshot() -> dict[str, Any]:
    return json.loads(gzip.decompress(BUNDLED.read_bytes()))


def json_schema_ref(operation: dict[str, Any], *, request_body: bool) -> str:
    holder = operation["requestBody"] if request_body else operation["responses"]["200"]
    return holder["content"]["application/json"]["schema"]["$ref"]


def test_models_are_the_whole_catalog_sorted_and_unique() -> None:
    snapshot = load_snapshot()
    endpoint_ids = [model["endpoint_id"] for model in snapshot["models"]]
    assert len(endpoint_ids) == 1182
    assert snapshot["counts"]["models"] == 1182
    assert endpoint_ids == sorted(set(endpoint_ids))
    assert all(set(model) == {"endpoint_id", "metadata"} for model in snapshot["models"])


def test_prices_belong_to_catalog_endpoints_and_parse_as_decimals() -> None:
    snapshot = load_snapshot()
    endpoint_ids = {model["endpoint_id"] for model in snapshot["models"]}
    assert snapshot["counts"]["prices"] == len(snapshot["prices"])
    for endpoint_id, price in snapshot["prices"].items():
        assert endpoint_id in endpoint_ids
        try:
            unit_price = Decimal(price["unit_price"])
        except InvalidOperation:
            pytest.fail(f"{endpoint_id}: unit_price {price['unit_price']!r} is not a decimal")
        assert unit_price >= 0, endpoint_id
        assert "E" not in price["unit_price"].upper(), endpoint_id
        assert price["currency"] == "USD"


def test_flux_dev_price_is_the_hand_checked_one() -> None:
    price = load_snapshot()["prices"]["fal-ai/flux/dev"]
    assert Decimal(price["unit_price"]) == Decimal("0.025")
    assert price["unit"] == "megapixels"
    assert price["source"] == "nunomen_2026-01-04"


def test_real_and_derived_documents_are_told_apart() -> None:
    snapshot = load_snapshot()
    documents = snapshot["openapi"]
    real = [doc for doc in documents.values() if "x-genfeed-derived" not in doc["info"]]
    derived = [doc for doc in documents.values() if "x-genfeed-derived" in doc["info"]]
    assert len(real) == 32 == snapshot["counts"]["openapi_real"]
    assert len(derived) == snapshot["counts"]["openapi_derived"]
    assert all(doc["info"]["x-genfeed-derived"] is True for doc in derived)


def test_every_document_body_and_result_refs_resolve() -> None:
    for endpoint_id, document in load_snapshot()["openapi"].items():
        assert document["info"]["x-fal-metadata"]["endpointId"] == endpoint_id
        schemas = document["components"]["schemas"]
        paths = document["paths"]
        body_ref = json_schema_ref(paths[f"/{endpoint_id}"]["post"], request_body=True)
        result_ref = json_schema_ref(
            paths[f"/{endpoint_id}/requests/{{request_id}}"]["get"], request_body=False
        )
        for ref in (body_ref, result_ref):
            assert ref.startswith(SCHEMA_PREFIX), (endpoint_id, ref)
            assert ref.removeprefix(SCHEMA_PREFIX) in schemas, (endpoint_id, ref)


def test_rebuild_gives_the_bundled_bytes(fal_data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "fal_catalog_snapshot.json.gz"
    subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--fal-data", str(fal_data_dir), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.read_bytes() == BUNDLED.read_bytes()


def test_bundled_test_data_matches_the_raw_fal_data(fal_data_dir: Path) -> None:
    """Each file `genfeed_pipeline_tests/data/SOURCES.md` lists is what it says: a copy or an extract."""
    raw_older = sorted((fal_data_dir / "openapi-older-copies").glob("*.json"))
    assert [path.name for path in sorted(OLDER_COPIES_DIR.glob("*.json"))] == [
        path.name for path in raw_older
    ]
    for path in raw_older:
        assert (OLDER_COPIES_DIR / path.name).read_bytes() == path.read_bytes(), path.name

    raw_documents = [json.loads(path.read_text()) for path in (fal_data_dir / "openapi").glob("*.json")]
    by_id = {document["info"]["x-fal-metadata"]["endpointId"]: document for document in raw_documents}
    assert len(by_id) == 32 and current_documents() == by_id

    units: dict[str, set[str | None]] = {}
    for record in json.loads((fal_data_dir / "pricing.json").read_text())["prices"]:
        units.setdefault(record["source"], set()).add(record["unit"])
    assert {source: set(found) for source, found in collected_price_units().items()} == units

    parse = fal_data_dir / "parsed-schemas" / "videosos_fal_models_schemas_2025-10-30.json"
    entries = [item for item in json.loads(parse.read_text()) if item["id"] in by_id]
    assert list(parsed_parameters().values()) == entries and len(entries) == 17
