"""The bundled offline snapshot of fal's catalog (see `genfeed_pipeline/snapshot/SOURCES.md`).

It is what a run uses when fal cannot be reached and there is no cache yet, and what the quick start
and the tests run on.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path

from genfeed_pipeline.fal.catalog import DataSource, FalEndpoint, PriceQuote, canonical_json


@dataclass(frozen=True)
class CatalogSnapshot:
    as_of: datetime
    endpoints: list[FalEndpoint]
    prices: dict[str, PriceQuote]
    documents: dict[str, str]  # endpoint_id → canonical OpenAPI JSON


def bundled_snapshot_path() -> Path:
    return Path(
        str(resources.files("genfeed_pipeline") / "snapshot" / "data" / "fal_catalog_snapshot.json.gz")
    )


def parse_loose_date(text: str | None) -> datetime | None:
    """Dates as the sources wrote them: ISO timestamps, `2026-01-04`, `2026-02/03`, `2026`."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        pass
    match = re.match(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", text)
    if not match:
        return None
    year, month, day = (int(part) if part else 1 for part in match.groups())
    return datetime(year, month, day, tzinfo=UTC)


@lru_cache(maxsize=4)
def load_snapshot(path: Path | None = None) -> CatalogSnapshot:
    path = path or bundled_snapshot_path()
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        raw = json.load(stream)
    as_of = parse_loose_date(raw["as_of"]) or datetime(1970, 1, 1, tzinfo=UTC)
    endpoints = [FalEndpoint(item["endpoint_id"], item.get("metadata")) for item in raw["models"]]
    prices = {
        endpoint_id: PriceQuote(
            endpoint_id=endpoint_id,
            unit_price=Decimal(price["unit_price"]),
            unit=price["unit"],
            currency=price.get("currency", "USD"),
            source=DataSource.SNAPSHOT,
            seen_at=parse_loose_date(price.get("as_of")) or as_of,
            origin=price.get("source", "snapshot"),
        )
        for endpoint_id, price in raw["prices"].items()
    }
    documents = {endpoint_id: canonical_json(doc) for endpoint_id, doc in raw["openapi"].items()}
    return CatalogSnapshot(as_of=as_of, endpoints=endpoints, prices=prices, documents=documents)
