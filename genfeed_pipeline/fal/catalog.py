"""What the pipeline knows about fal's catalog after a discovery: plain dataclasses.

These are the values of the `fal_model_list` and `fal_openapi_schemas` assets. OpenAPI documents are
kept as canonical JSON text (sorted keys, no whitespace): a few KB each instead of a tree of Python
objects ten times that size, and hashable as they are.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from genfeed_pipeline.sync.completeness import Completeness


class DataSource(StrEnum):
    """Where a piece of catalog data came from."""

    LIVE = "live"
    CACHE = "cache"
    SNAPSHOT = "snapshot"


class PriceStatus(StrEnum):
    PRICED = "priced"
    NO_PRICE = "no_price"  # fal answered and has no price for the endpoint
    NOT_FOUND = "not_found"  # fal's pricing does not know the endpoint id
    FAILED = "failed"  # the request failed; nothing is known about the price


class SchemaStatus(StrEnum):
    FETCHED = "fetched"  # from `GET /models?expand=openapi-3.0`
    FALLBACK = "fallback"  # expansion failed; taken from the per-endpoint queue schema URL
    REUSED = "reused"  # unchanged `updated_at`: the cached document was kept
    MISSING = "missing"  # fal has no schema for the endpoint anywhere
    FAILED = "failed"  # the fetch failed; the last good document (if any) is kept


def owner_of(endpoint_id: str) -> str:
    """The contract's owner of a model: the first segment of its endpoint id (`fal-ai`, `bria`, …)."""
    return endpoint_id.split("/", 1)[0]


def canonical_json(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def document_hash(document_json: str) -> str:
    return hashlib.sha256(document_json.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FalEndpoint:
    """One endpoint of fal's model list, with fal's metadata kept verbatim."""

    endpoint_id: str
    metadata: dict[str, Any] | None

    @property
    def display_name(self) -> str | None:
        return (self.metadata or {}).get("display_name")

    @property
    def category(self) -> str | None:
        return (self.metadata or {}).get("category")

    @property
    def status(self) -> str:
        return (self.metadata or {}).get("status") or "active"

    @property
    def version(self) -> str | None:
        """What tells one revision of the endpoint from the next: `updated_at`, else `date`."""
        metadata = self.metadata or {}
        return metadata.get("updated_at") or metadata.get("date")

    @property
    def owner(self) -> str:
        return owner_of(self.endpoint_id)


@dataclass(frozen=True)
class PriceQuote:
    """fal's price for one billing unit of an endpoint, with its provenance."""

    endpoint_id: str
    unit_price: Decimal
    unit: str  # verbatim, as fal wrote it (plural, sometimes with trailing spaces)
    currency: str
    source: DataSource
    seen_at: datetime
    origin: str = "fal /models/pricing"


@dataclass(frozen=True)
class PriceLookup:
    status: PriceStatus
    quote: PriceQuote | None = None
    error: str | None = None


@dataclass
class CatalogListing:
    """Value of `fal_model_list`: every endpoint fal lists, and its price."""

    source: DataSource
    as_of: datetime
    endpoints: dict[str, FalEndpoint]
    prices: dict[str, PriceLookup]
    price_source: DataSource
    price_as_of: datetime | None
    complete: bool = True
    list_errors: list[str] = field(default_factory=list)
    requested_endpoint_ids: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    http_requests: int = 0
    new_since_last: list[str] = field(default_factory=list)  # listed now, not in the previous full list
    gone_since_last: list[str] = field(default_factory=list)  # in the previous full list, not now
    # The run's verdict on this list (`sync/completeness.py`), judged once by the discovery step.
    completeness: Completeness | None = None

    def quote(self, endpoint_id: str) -> PriceQuote | None:
        lookup = self.prices.get(endpoint_id)
        return lookup.quote if lookup is not None else None

    def count_prices(self) -> dict[str, int]:
        counts = {status.value: 0 for status in PriceStatus}
        for lookup in self.prices.values():
            counts[lookup.status.value] += 1
        return counts


@dataclass(frozen=True)
class SchemaRecord:
    endpoint_id: str
    status: SchemaStatus
    document_json: str | None = None
    version: str | None = None
    fetched_at: datetime | None = None
    source: DataSource = DataSource.LIVE
    error: str | None = None

    @property
    def has_document(self) -> bool:
        return self.document_json is not None

    @property
    def schema_hash(self) -> str | None:
        return document_hash(self.document_json) if self.document_json is not None else None

    def document(self) -> dict[str, Any] | None:
        return json.loads(self.document_json) if self.document_json is not None else None


@dataclass
class SchemaSet:
    """Value of `fal_openapi_schemas`: one record per listed endpoint."""

    source: DataSource
    as_of: datetime
    records: dict[str, SchemaRecord]
    http_requests: int = 0
    notes: list[str] = field(default_factory=list)

    def count_by_status(self) -> dict[str, int]:
        counts = {status.value: 0 for status in SchemaStatus}
        for record in self.records.values():
            counts[record.status.value] += 1
        return counts
