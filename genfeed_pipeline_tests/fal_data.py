"""Real fal data for the tests, all shipped with the repository (this module holds no tests).

fal's current OpenAPI documents are the 32 real ones in the bundled snapshot (verbatim copies of
`../shared/fal-data/openapi/`); older copies and two small extracts of the raw data are in `data/`
beside this module. `data/SOURCES.md` says where each file comes from; `test_snapshot.py` checks the
bundled files against `../shared/fal-data` where that folder is present.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

from genfeed_pipeline.fal.snapshot import bundled_snapshot_path

DATA_DIR = Path(__file__).resolve().parent / "data"
OLDER_COPIES_DIR = DATA_DIR / "openapi-older-copies"
PRICING_UNITS = DATA_DIR / "pricing_units.json"
PARSED_PARAMETERS = DATA_DIR / "videosos_parsed_parameters_2025-10-30.json"


@cache
def _snapshot_documents() -> dict[str, dict[str, Any]]:
    with gzip.open(bundled_snapshot_path(), "rt", encoding="utf-8") as stream:
        return json.load(stream)["openapi"]


def current_documents() -> dict[str, dict[str, Any]]:
    """fal's real queue OpenAPI documents in the snapshot (not the derived ones), by endpoint id."""
    return {
        endpoint_id: document
        for endpoint_id, document in _snapshot_documents().items()
        if "x-genfeed-derived" not in document["info"]
    }


def current_document(endpoint_id: str) -> dict[str, Any]:
    return current_documents()[endpoint_id]


def older_copies() -> dict[str, dict[str, Any]]:
    """The four older real documents, by file name (endpoint id with `/` → `__`, then the data date)."""
    return {path.name: older_copy(path.name) for path in sorted(OLDER_COPIES_DIR.glob("*.json"))}


def older_copy(name: str) -> dict[str, Any]:
    return json.loads((OLDER_COPIES_DIR / name).read_text(encoding="utf-8"))


def collected_price_units() -> dict[str, list[str | None]]:
    """Every distinct `unit` string of `pricing.json`, by source."""
    return json.loads(PRICING_UNITS.read_text(encoding="utf-8"))


def parsed_parameters() -> dict[str, dict[str, Any]]:
    """The third-party parse's entries for the endpoints that have a real document, by endpoint id."""
    items = json.loads(PARSED_PARAMETERS.read_text(encoding="utf-8"))
    return {item["id"]: item for item in items}
