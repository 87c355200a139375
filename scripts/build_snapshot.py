"""Build the bundled offline snapshot of fal's catalog from ../shared/fal-data.

Usage: python scripts/build_snapshot.py [--fal-data PATH] [--out PATH]

The output is deterministic: the same fal-data gives a byte-identical file (sorted keys, no
build time inside, gzip header with mtime=0), so the bundled file can be checked by rebuilding it.
Stdlib only, so it runs before the project's dependencies are installed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FAL_DATA = REPO_ROOT.parent / "shared" / "fal-data"
DEFAULT_OUT = REPO_ROOT / "genfeed_pipeline" / "snapshot" / "data" / "fal_catalog_snapshot.json.gz"

FORMAT_VERSION = 1

PRICE_SOURCE_ORDER: tuple[str, ...] = (
    "inference-sh-grid_2026",
    "nunomen_2026-01-04",
    "fal-pages",
    "videosos_2025-10-30",
)
"""Newest real `GET /models/pricing` captures first, then fal's page text, then the Oct-2025 billing
strings. litellm and adepanges are left out because their unit labels are not fal's own, and
fal-docs-example because it is a documentation example, not a quote."""

PARSED_SCHEMAS_FILE = "parsed-schemas/videosos_fal_models_schemas_2025-10-30.json"
DERIVED_FROM = "videosos_fal_models_schemas_2025-10-30 (parsed parameters, not fal's raw document)"

COPIED_PARAMETER_FIELDS: tuple[str, ...] = (
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "examples",
    "items",
)

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def load_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def build_models(catalog: dict[str, Any]) -> list[dict[str, Any]]:
    """One `{endpoint_id, metadata}` per catalog record; `updated_at` falls back to `date`."""
    models: dict[str, dict[str, Any]] = {}
    for record in catalog["models"]:
        endpoint_id = record["endpoint_id"]
        if endpoint_id in models:
            raise SystemExit(f"catalog.json lists {endpoint_id} twice")
        metadata = dict(record["metadata"])
        if "updated_at" not in metadata and "date" in metadata:
            metadata["updated_at"] = metadata["date"]
        models[endpoint_id] = {"endpoint_id": endpoint_id, "metadata": metadata}
    return [models[endpoint_id] for endpoint_id in sorted(models)]


def decimal_string(unit_price: int | float) -> str:
    """`7e-05` → `'0.00007'`, `0.025` → `'0.025'`, `10` → `'10'`: no exponent, no float noise."""
    if isinstance(unit_price, bool) or not isinstance(unit_price, int | float):
        raise SystemExit(f"unexpected unit_price {unit_price!r}")
    value = Decimal(str(unit_price))
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def build_prices(pricing: dict[str, Any], endpoint_ids: set[str]) -> tuple[dict[str, dict[str, str]], int]:
    """One current price per catalog endpoint, by PRICE_SOURCE_ORDER; returns (prices, dropped)."""
    rank = {source: position for position, source in enumerate(PRICE_SOURCE_ORDER)}
    chosen: dict[str, tuple[int, dict[str, str]]] = {}
    dropped = 0
    for record in pricing["prices"]:
        source = record["source"]
        if source not in rank or record["unit_price"] is None or record["unit"] is None:
            continue
        endpoint_id = record["endpoint_id"]
        if endpoint_id not in endpoint_ids:
            dropped += 1
            continue
        price = {
            "unit_price": decimal_string(record["unit_price"]),
            "unit": record["unit"],
            "currency": record["currency"],
            "source": source,
            "as_of": record["as_of"],
        }
        current = chosen.get(endpoint_id)
        if current is not None and current[0] == rank[source]:
            raise SystemExit(f"pricing.json has two {source} records for {endpoint_id}")
        if current is None or rank[source] < current[0]:
            chosen[endpoint_id] = (rank[source], price)
    return {endpoint_id: chosen[endpoint_id][1] for endpoint_id in sorted(chosen)}, dropped


def load_real_documents(openapi_dir: Path) -> dict[str, dict[str, Any]]:
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted(openapi_dir.glob("*.json")):
        document = load_json(path)
        endpoint_id = document["info"]["x-fal-metadata"]["endpointId"]
        if path.stem != endpoint_id.replace("/", "__"):
            raise SystemExit(f"{path.name} holds the document of {endpoint_id}")
        documents[endpoint_id] = document
    return documents


def schema_name(endpoint_id: str) -> str:
    """fal's `<Name>` of the Input/Output schemas: `fal-ai/kling-video/v1.6/pro` → `KlingVideoV16Pro`."""
    _owner, _, rest = endpoint_id.partition("/")
    pieces = re.split(r"[/\-_.]", rest)
    return "".join(piece[:1].upper() + piece[1:] for piece in pieces if piece)


def resolve_dangling_refs(value: Any, defined: set[str]) -> Any:
    """Replace a `$ref` to a component the derived document lacks by a titled object schema."""
    if isinstance(value, list):
        return [resolve_dangling_refs(item, defined) for item in value]
    if not isinstance(value, dict):
        return value
    ref = value.get("$ref")
    if isinstance(ref, str):
        target = ref.rsplit("/", 1)[-1]
        if not (ref.startswith("#/components/schemas/") and target in defined):
            return {"type": "object", "title": target}
    return {key: resolve_dangling_refs(item, defined) for key, item in value.items()}


def derive_property(name: str, parameter: dict[str, Any], defined: set[str]) -> dict[str, Any]:
    prop: dict[str, Any] = {"title": name.replace("_", " ").title()}
    if parameter.get("type") is not None:
        prop["type"] = parameter["type"]
    for field in COPIED_PARAMETER_FIELDS:
        if field in parameter:
            prop[field] = parameter[field]
    if "items" in prop:
        prop["items"] = resolve_dangling_refs(prop["items"], defined)
    return prop


def derive_object_schema(
    parameters: dict[str, dict[str, Any]], defined: set[str], *, with_required: bool
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: derive_property(name, p, defined) for name, p in parameters.items()},
        "x-fal-order-properties": list(parameters),
    }
    if with_required:
        schema["required"] = [name for name, p in parameters.items() if p.get("required") is True]
    return schema


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def request_id_parameter() -> dict[str, Any]:
    return {
        "name": "request_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "description": "Request ID"},
    }


def derive_document(
    endpoint_id: str, category: str, parsed: dict[str, Any], queue_status: dict[str, Any]
) -> dict[str, Any]:
    """A document in fal's queue-document shape built from the parsed parameters, marked as derived."""
    name = schema_name(endpoint_id)
    input_name, output_name = f"{name}Input", f"{name}Output"
    defined = {"QueueStatus", input_name, output_name}
    queue_status_ref = {"$ref": "#/components/schemas/QueueStatus"}
    return {
        "openapi": "3.0.4",
        "info": {
            "title": f"Queue OpenAPI for {endpoint_id}",
            "version": "1.0.0",
            "description": f"The OpenAPI schema for the {endpoint_id} queue.",
            "x-fal-metadata": {"endpointId": endpoint_id, "category": category},
            "x-genfeed-derived": True,
            "x-genfeed-derived-from": DERIVED_FROM,
        },
        "servers": [{"url": "https://queue.fal.run"}],
        "security": [{"apiKeyAuth": []}],
        "components": {
            "securitySchemes": {
                "apiKeyAuth": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "Fal Key",
                }
            },
            "schemas": {
                "QueueStatus": queue_status,
                input_name: derive_object_schema(parsed["inputParameters"], defined, with_required=True),
                output_name: derive_object_schema(
                    parsed.get("outputParameters") or {}, defined, with_required=False
                ),
            },
        },
        "paths": {
            f"/{endpoint_id}": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": json_content({"$ref": f"#/components/schemas/{input_name}"}),
                    },
                    "responses": {
                        "200": {
                            "description": "The request status.",
                            "content": json_content(queue_status_ref),
                        }
                    },
                }
            },
            f"/{endpoint_id}/requests/{{request_id}}/status": {
                "get": {
                    "parameters": [
                        request_id_parameter(),
                        {
                            "name": "logs",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "number",
                                "description": "Whether to include logs (`1`) in the response or not (`0`).",
                            },
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The request status.",
                            "content": json_content(queue_status_ref),
                        }
                    },
                }
            },
            f"/{endpoint_id}/requests/{{request_id}}/cancel": {
                "put": {
                    "parameters": [request_id_parameter()],
                    "responses": {
                        "200": {
                            "description": "The request was cancelled.",
                            "content": json_content(
                                {
                                    "type": "object",
                                    "properties": {
                                        "success": {
                                            "type": "boolean",
                                            "description": "Whether the request was cancelled successfully.",
                                        }
                                    },
                                }
                            ),
                        }
                    },
                }
            },
            f"/{endpoint_id}/requests/{{request_id}}": {
                "get": {
                    "parameters": [request_id_parameter()],
                    "responses": {
                        "200": {
                            "description": "Result of the request.",
                            "content": json_content({"$ref": f"#/components/schemas/{output_name}"}),
                        }
                    },
                }
            },
        },
    }


def build_openapi(fal_data: Path, models: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], int, int]:
    """Real documents verbatim, plus derived ones for catalog endpoints with parsed parameters."""
    real = load_real_documents(fal_data / "openapi")
    queue_status = real["fal-ai/flux/dev"]["components"]["schemas"]["QueueStatus"]
    categories = {model["endpoint_id"]: model["metadata"]["category"] for model in models}
    documents = dict(real)
    derived = 0
    for parsed in load_json(fal_data / PARSED_SCHEMAS_FILE):
        endpoint_id = parsed["id"]
        if endpoint_id in real or endpoint_id not in categories or not parsed.get("inputParameters"):
            continue
        documents[endpoint_id] = derive_document(endpoint_id, categories[endpoint_id], parsed, queue_status)
        derived += 1
    return {endpoint_id: documents[endpoint_id] for endpoint_id in sorted(documents)}, len(real), derived


def newest_data_date(
    catalog: dict[str, Any], models_provenance: set[str], prices: dict[str, dict[str, str]]
) -> str:
    """Newest full ISO date among the catalog sources the records come from and the prices kept."""
    candidates = [catalog["sources"][source]["as_of"] for source in models_provenance]
    candidates += [price["as_of"] for price in prices.values()]
    return max(date for date in candidates if ISO_DATE.fullmatch(date))


def build_snapshot(fal_data: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (snapshot, report) where report carries the figures for the printed summary."""
    catalog = load_json(fal_data / "catalog.json")
    pricing = load_json(fal_data / "pricing.json")
    models = build_models(catalog)
    endpoint_ids = {model["endpoint_id"] for model in models}
    prices, dropped = build_prices(pricing, endpoint_ids)
    openapi, real_count, derived_count = build_openapi(fal_data, models)
    provenance = {source for record in catalog["models"] for source in record.get("provenance", [])}
    snapshot = {
        "format": FORMAT_VERSION,
        "as_of": newest_data_date(catalog, provenance, prices),
        "counts": {
            "models": len(models),
            "prices": len(prices),
            "openapi_real": real_count,
            "openapi_derived": derived_count,
        },
        "models": models,
        "prices": prices,
        "openapi": openapi,
    }
    report = {
        "prices_by_source": Counter(price["source"] for price in prices.values()),
        "prices_dropped": dropped,
        "openapi_not_in_catalog": sorted(set(openapi) - endpoint_ids),
    }
    return snapshot, report


def encode_snapshot(snapshot: dict[str, Any]) -> bytes:
    text = json.dumps(snapshot, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fal-data", type=Path, default=DEFAULT_FAL_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not (args.fal_data / "catalog.json").is_file():
        print(f"no catalog.json in {args.fal_data}", file=sys.stderr)
        return 2
    snapshot, report = build_snapshot(args.fal_data)
    payload = encode_snapshot(snapshot)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(payload)
    counts = snapshot["counts"]
    print(f"wrote {args.out}")
    print(f"as_of: {snapshot['as_of']}")
    print(f"models: {counts['models']}")
    print(f"prices: {counts['prices']}")
    for source in PRICE_SOURCE_ORDER:
        print(f"  {source}: {report['prices_by_source'].get(source, 0)}")
    print(f"prices dropped (endpoint not in catalog): {report['prices_dropped']}")
    print(f"openapi real: {counts['openapi_real']}")
    print(f"openapi derived: {counts['openapi_derived']}")
    if report["openapi_not_in_catalog"]:
        not_in_catalog = ", ".join(report["openapi_not_in_catalog"])
        print(f"openapi real documents of endpoints not in catalog: {not_in_catalog}")
    print(f"size: {len(payload) / 1024:.1f} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
