"""An emulator of fal's Platform API, served over real HTTP on 127.0.0.1 for the project's tests.

It answers the surfaces the pipeline uses, in fal's shapes (see shared/fal-api.md §1 and §2, and fal's
own Platform API spec, against which `test_fal_spec.py` checks the answers):

* `GET  /v1/models`                       list mode (cursor pages) and find mode (`endpoint_id`)
* `GET  /v1/models/pricing`               prices of up to 50 endpoints, `Authorization: Key …` required
* `POST /v1/models/pricing/estimate`      cost estimate, rate limited like fal's
* `GET  /v1/models/usage`                 billed usage in UTC day buckets, an ADMIN key required
* `GET  /v1/models/analytics`             request counts of up to 50 endpoints, the API or an admin key
* `GET  /api/openapi/queue/openapi.json`  one endpoint's queue OpenAPI document (public)

and lets a test inject faults (error statuses, truncated bodies, HTML challenge pages, slow answers,
dropped connections), add latency, change the catalog while a run is in progress, or kill the server.
Every request is recorded (never its `Authorization` value, only which kind of key it was) together
with the highest concurrency seen. Usage and request counts live in `emulator.usage` (`EmulatedUsage`).

Standard library only. Run it standalone with
`python -m genfeed_pipeline_tests.fal_emulator --port 8787 --latency 0.1 [--scale N] [--api-key K]
[--admin-key K] [--usage-days N] [--set-price ENDPOINT_ID UNIT_PRICE UNIT] [--failing-list-page N]
[--hide ENDPOINT_ID] [--control]`. With `--control` it also serves `POST /_emulator/catalog`, through
which a test in another process hides and reveals endpoints (`FalEmulator._control`); fal has no such
route, and the in-process emulator serves it only when `EmulatorSettings.control` is set.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import dataclasses
import gc
import gzip
import importlib.resources
import json
import logging
import pickle
import random
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "test-fal-key"
DEFAULT_ADMIN_KEY = "test-fal-admin-key"
MODELS_PATH = "/v1/models"
PRICING_PATH = "/v1/models/pricing"
ESTIMATE_PATH = "/v1/models/pricing/estimate"
USAGE_PATH = "/v1/models/usage"
ANALYTICS_PATH = "/v1/models/analytics"
QUEUE_OPENAPI_PATH = "/api/openapi/queue/openapi.json"
CONTROL_PATH = "/_emulator/catalog"
OPENAPI_EXPANSION = "openapi-3.0"
ENTERPRISE_STATUS_EXPANSION = "enterprise_status"
STATUSES = ("active", "deprecated")
ESTIMATE_QUANTITY_KEYS = {"historical_api_price": "call_quantity", "unit_price": "unit_quantity"}
MIN_UNIT_QUANTITY = Decimal("0.000001")
SNAPSHOT_RESOURCE = ("snapshot", "data", "fal_catalog_snapshot.json.gz")
CONSTANT_METADATA: dict[str, Any] = {"is_favorited": None, "highlighted": False, "pinned": False}
"""`metadata` fields fal's spec requires whose value it fixes, served where the catalog lacks them:
`is_favorited` is null without a login (the emulator keeps no favourites); `highlighted` and `pinned` are
deprecated and always false. The snapshot's sources dropped them."""

JsonObject = dict[str, Any]


# -- catalog ---------------------------------------------------------------------------------------------


def to_decimal(value: Decimal | int | float | str) -> Decimal:
    """A price as an exact decimal; floats go through their shortest repr so 0.025 stays 0.025."""
    if isinstance(value, bool):
        raise ValueError(f"not a price: {value!r}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal number: {value!r}") from exc
    if not number.is_finite() or number < 0:
        raise ValueError(f"not a non-negative finite price: {value!r}")
    return number


def _price_entry(unit_price: Decimal | int | float | str, unit: str, currency: str = "USD") -> JsonObject:
    return {"unit_price": to_decimal(unit_price), "unit": unit, "currency": currency}


def _fal_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _newer_timestamp(previous: str | None) -> str:
    """Now, or one millisecond after `previous` if the clock is behind it: always strictly newer."""
    now = datetime.now(UTC)
    if previous:
        with contextlib.suppress(ValueError):
            earlier = datetime.fromisoformat(previous.replace("Z", "+00:00"))
            if earlier.tzinfo is None:
                earlier = earlier.replace(tzinfo=UTC)
            now = max(now, earlier + timedelta(milliseconds=1))
    return _fal_timestamp(now)


def clone_endpoint_id(endpoint_id: str, k: int) -> str:
    """The id of clone `k` of an endpoint: two segments only, so it is never a path-prefix of another."""
    owner, _, rest = endpoint_id.partition("/")
    return f"{owner}/clone-{k:05d}-{rest.replace('/', '-')}" if rest else f"{owner}/clone-{k:05d}"


def _rename_document(document: JsonObject, old_id: str, new_id: str) -> None:
    """Point a (private) copy of a queue OpenAPI document at another endpoint id, in `info` and paths."""
    info = document.get("info")
    if isinstance(info, dict):
        for key in ("title", "description"):
            if isinstance(info.get(key), str):
                info[key] = info[key].replace(old_id, new_id)
        fal_metadata = info.get("x-fal-metadata")
        if isinstance(fal_metadata, dict):
            for key, value in fal_metadata.items():
                if isinstance(value, str):
                    fal_metadata[key] = (
                        new_id if value == old_id else value.replace(f"/{old_id}", f"/{new_id}")
                    )
    paths = document.get("paths")
    if isinstance(paths, dict):
        old_prefix, new_prefix = f"/{old_id}", f"/{new_id}"
        document["paths"] = {
            (
                new_prefix + key[len(old_prefix) :]
                if key == old_prefix or key.startswith(old_prefix + "/")
                else key
            ): value
            for key, value in paths.items()
        }


@dataclass
class EmulatedCatalog:
    """What the emulated fal knows: list items, prices and OpenAPI documents, by endpoint id.

    `models` maps endpoint id → fal's `metadata` object (None for an endpoint without a registry entry,
    served without `metadata`); its order is the list order. `prices` maps endpoint id →
    `{"unit_price": number or decimal string, "unit", "currency"}`. Change the catalog while the
    emulator runs through the mutation methods: they replace objects instead of editing them in place,
    so a response being encoded on another thread never sees half an edit, and they bump `version`,
    which the server's cache of list-mode filter results is keyed on. After editing the dicts directly,
    call `touch()`.
    """

    models: dict[str, JsonObject | None] = field(default_factory=dict)
    prices: dict[str, JsonObject] = field(default_factory=dict)
    openapi: dict[str, JsonObject] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False, compare=False)
    _version: int = field(default=0, init=False, repr=False, compare=False)
    _hidden: dict[str, tuple[JsonObject | None, JsonObject | None, JsonObject | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @property
    def version(self) -> int:
        return self._version

    def touch(self) -> None:
        """Declare the catalog changed (needed only after editing `models`/`prices`/`openapi` directly)."""
        with self._lock:
            self._version += 1

    def __len__(self) -> int:
        return len(self.models)

    @classmethod
    def from_snapshot(cls, path: Path | None = None) -> EmulatedCatalog:
        """The project's bundled catalog snapshot (or the snapshot file at `path`)."""
        if path is None:
            resource = importlib.resources.files("genfeed_pipeline").joinpath(*SNAPSHOT_RESOURCE)
            raw = resource.read_bytes()
        else:
            raw = Path(path).read_bytes()
        snapshot = json.loads(gzip.decompress(raw))
        if snapshot.get("format") != 1:
            raise ValueError(f"unsupported snapshot format {snapshot.get('format')!r}")
        models = {item["endpoint_id"]: item.get("metadata") for item in snapshot["models"]}
        prices = {
            endpoint_id: _price_entry(price["unit_price"], price["unit"], price.get("currency", "USD"))
            for endpoint_id, price in snapshot.get("prices", {}).items()
        }
        return cls(models=models, prices=prices, openapi=dict(snapshot.get("openapi", {})))

    # -- mutations ------------------------------------------------------------------------------------

    def add_model(
        self,
        endpoint_id: str,
        metadata: JsonObject | None,
        price: JsonObject | None = None,
        openapi: JsonObject | None = None,
    ) -> None:
        """Add (or replace in place) an endpoint; `price` is `{"unit_price", "unit"[, "currency"]}`."""
        with self._lock:
            self.models[endpoint_id] = metadata
            if price is not None:
                self.prices[endpoint_id] = _price_entry(
                    price["unit_price"], price["unit"], price.get("currency", "USD")
                )
            if openapi is not None:
                self.openapi[endpoint_id] = openapi
            self._version += 1

    def remove_model(self, endpoint_id: str) -> None:
        with self._lock:
            del self.models[endpoint_id]
            self.prices.pop(endpoint_id, None)
            self.openapi.pop(endpoint_id, None)
            self._version += 1

    def set_price(self, endpoint_id: str, unit_price: Decimal | int | float | str, unit: str) -> None:
        with self._lock:
            self._require(endpoint_id)
            self.prices[endpoint_id] = _price_entry(unit_price, unit)
            self._version += 1

    def remove_price(self, endpoint_id: str) -> None:
        with self._lock:
            self.prices.pop(endpoint_id, None)
            self._version += 1

    def set_openapi(self, endpoint_id: str, document: JsonObject) -> None:
        """Replace an endpoint's document and, as fal does, make its `updated_at` newer."""
        with self._lock:
            metadata = self._require(endpoint_id)
            self.openapi[endpoint_id] = document
            if metadata is not None:
                self.models[endpoint_id] = {
                    **metadata,
                    "updated_at": _newer_timestamp(metadata.get("updated_at")),
                }
            self._version += 1

    def hide(self, endpoint_ids: Iterable[str]) -> None:
        """Take endpoints out of every answer (list, find, prices, documents) as if fal had not published
        them yet, keeping them to `reveal` later."""
        with self._lock:
            for endpoint_id in endpoint_ids:
                metadata = self._require(endpoint_id)
                self._hidden[endpoint_id] = (
                    metadata,
                    self.prices.pop(endpoint_id, None),
                    self.openapi.pop(endpoint_id, None),
                )
                del self.models[endpoint_id]
            self._version += 1

    def reveal(self, endpoint_ids: Iterable[str]) -> None:
        """Publish hidden endpoints again, at the end of the list."""
        with self._lock:
            for endpoint_id in endpoint_ids:
                if endpoint_id not in self._hidden:
                    raise KeyError(f"endpoint {endpoint_id!r} is not hidden")
                metadata, price, document = self._hidden.pop(endpoint_id)
                self.models[endpoint_id] = metadata
                if price is not None:
                    self.prices[endpoint_id] = price
                if document is not None:
                    self.openapi[endpoint_id] = document
            self._version += 1

    @property
    def hidden(self) -> list[str]:
        with self._lock:
            return sorted(self._hidden)

    def deprecate(self, endpoint_id: str) -> None:
        with self._lock:
            metadata = self._require(endpoint_id)
            self.models[endpoint_id] = {**(metadata or {}), "status": "deprecated"}
            self._version += 1

    def _require(self, endpoint_id: str) -> JsonObject | None:
        if endpoint_id not in self.models:
            raise KeyError(f"endpoint {endpoint_id!r} is not in the emulated catalog")
        return self.models[endpoint_id]

    # -- scale ----------------------------------------------------------------------------------------

    def documented(self) -> EmulatedCatalog:
        """The endpoints that have an OpenAPI document, as fal's own catalog has for every endpoint."""
        with self._lock:
            keep = [endpoint_id for endpoint_id in self.models if endpoint_id in self.openapi]
            return EmulatedCatalog(
                models={endpoint_id: self.models[endpoint_id] for endpoint_id in keep},
                prices={
                    endpoint_id: self.prices[endpoint_id]
                    for endpoint_id in keep
                    if endpoint_id in self.prices
                },
                openapi={endpoint_id: self.openapi[endpoint_id] for endpoint_id in keep},
            )

    def scaled(self, n: int) -> EmulatedCatalog:
        """A catalog of exactly `n` endpoints: this one's first, then clones of them round-robin.

        Nothing mutable is shared with this catalog or between clones. Copies are made by unpickling
        each original once pickled, with the cyclic garbage collector paused, which keeps 15,000
        endpoints (about 10,000 OpenAPI documents) to well under a second or two.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            originals = list(self.models.items())
            if not originals and n:
                raise ValueError("cannot scale an empty catalog")
            frozen = [
                (
                    endpoint_id,
                    pickle.dumps(metadata, pickle.HIGHEST_PROTOCOL),
                    pickle.dumps(self.prices.get(endpoint_id), pickle.HIGHEST_PROTOCOL),
                    pickle.dumps(self.openapi.get(endpoint_id), pickle.HIGHEST_PROTOCOL),
                )
                for endpoint_id, metadata in originals
            ]
        models: dict[str, JsonObject | None] = {}
        prices: dict[str, JsonObject] = {}
        openapi: dict[str, JsonObject] = {}
        collecting = gc.isenabled()
        gc.disable()
        try:
            for index in range(n):
                endpoint_id, metadata_blob, price_blob, document_blob = frozen[index % len(frozen)]
                k = index - len(frozen) + 1
                new_id = endpoint_id if k < 1 else clone_endpoint_id(endpoint_id, k)
                metadata = pickle.loads(metadata_blob)
                price = pickle.loads(price_blob)
                document = pickle.loads(document_blob)
                if k >= 1:
                    if metadata is not None:
                        metadata["display_name"] = (
                            f"{metadata.get('display_name') or endpoint_id} (clone {k})"
                        )
                        for key in ("model_url", "stream_url"):
                            if isinstance(metadata.get(key), str):
                                metadata[key] = metadata[key].replace(f"/{endpoint_id}", f"/{new_id}")
                    if document is not None:
                        _rename_document(document, endpoint_id, new_id)
                models[new_id] = metadata
                if price is not None:
                    prices[new_id] = price
                if document is not None:
                    openapi[new_id] = document
        finally:
            if collecting:
                gc.enable()
        return EmulatedCatalog(models=models, prices=prices, openapi=openapi)


# -- usage ---------------------------------------------------------------------------------------------


TIMEFRAMES = ("minute", "hour", "day", "week", "month")
USAGE_EXPANSIONS = ("time_series", "summary", "auth_method", "auth_method_structured")
ANALYTICS_METRICS = (
    "request_count",
    "success_count",
    "user_error_count",
    "error_count",
    "p50_prepare_duration",
    "p75_prepare_duration",
    "p90_prepare_duration",
    "p95_prepare_duration",
    "p99_prepare_duration",
    "p25_duration",
    "p50_duration",
    "p75_duration",
    "p90_duration",
    "p95_duration",
    "p99_duration",
    "startup_error_count",
    "connection_error_count",
    "timeout_error_count",
    "runtime_error_count",
    "cold_boot_count",
    "p50_cold_boot_duration",
    "p75_cold_boot_duration",
    "p90_cold_boot_duration",
    "total_billable_duration",
)
SERVED_ANALYTICS_METRICS = ("request_count", "success_count", "user_error_count", "error_count")
NANO = Decimal("0.000000001")
"""fal accounts in nano-USD (`cost_estimate_nano_usd`); the emulator rounds every cost to it."""


def _amount(value: Decimal) -> Decimal:
    return value.quantize(NANO).normalize()


def _usage_item(
    endpoint_id: str,
    unit: str,
    quantity: Decimal,
    unit_price: Decimal,
    percent_discount: Decimal | None,
    *,
    legacy: bool,
) -> JsonObject:
    subtotal = _amount(quantity * unit_price)
    discount = _amount(subtotal * percent_discount / 100) if percent_discount else Decimal(0)
    total = subtotal - discount
    if legacy:
        return {
            "endpoint_id": endpoint_id,
            "unit": unit,
            "quantity": quantity,
            "unit_price": unit_price,
            "cost": total,
            "currency": "USD",
        }
    return {
        "endpoint_id": endpoint_id,
        "unit": unit,
        "quantity": quantity,
        "unit_price": unit_price,
        "percent_discount": percent_discount,
        "cost_subtotal": subtotal,
        "cost_discount": discount,
        "cost_total": total,
        "cost": total,
        "currency": "USD",
    }


def _generated_quantity(rng: random.Random, unit: str) -> Decimal:
    lowered = unit.lower()
    if "second" in lowered or "minute" in lowered or "megapixel" in lowered:
        return Decimal(rng.randint(10, 60_000)) / 10
    return Decimal(rng.randint(1, 2_000))


def _split_quantity(rng: random.Random, quantity: Decimal) -> tuple[Decimal, Decimal] | None:
    step = Decimal(1) if quantity == quantity.to_integral_value() else Decimal("0.1")
    steps = int(quantity / step)
    if steps < 2:
        return None
    discounted = rng.randint(1, steps - 1) * step
    return quantity - discounted, discounted


@dataclass(frozen=True)
class _DayRange:
    days: list[date]

    @property
    def buckets(self) -> list[tuple[date, str]]:
        return [(day, f"{day.isoformat()}T00:00:00+00:00") for day in self.days]


@dataclass
class EmulatedUsage:
    """What the emulated fal billed and counted, by UTC day: `GET /v1/models/usage` and
    `GET /v1/models/analytics`.

    Usage lines are served in fal's item shape (`cost_subtotal`, `cost_discount`, `cost_total`, and `cost`
    = `cost_total`; a `legacy` line carries only `cost`, as lines from before mid-2026 do). Costs are
    rounded to the nano-dollar. Several lines for one day, endpoint and unit are served as separate items,
    as fal serves usage billed at different discounts. Request counts are per day and endpoint.

    Only day buckets in UTC are served (`timeframe=day`, or a range fal would bucket by day); other
    timeframes, time zones, `summary` and `auth_method` expansions answer 501. Every day of the range has
    its bucket, empty or not. A page holds at most `limit` rows (an empty bucket counts as one), capped at
    `max_page_size`; `default_page_size` when `limit` is omitted. Cursors are opaque.
    """

    admin_keys: set[str] = field(default_factory=lambda: {DEFAULT_ADMIN_KEY})
    max_page_size: int = 1000
    default_page_size: int = 100
    _lines: dict[date, list[JsonObject]] = field(default_factory=dict, init=False, repr=False)
    _requests: dict[date, dict[str, tuple[int, int]]] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False, compare=False)

    # -- data -------------------------------------------------------------------------------------------

    def add_line(
        self,
        day: date,
        endpoint_id: str,
        unit: str,
        quantity: Decimal | int | float | str,
        unit_price: Decimal | int | float | str,
        percent_discount: Decimal | int | float | str | None = None,
        *,
        legacy: bool = False,
    ) -> JsonObject:
        """Add one billed line to a day; returns the item as it is served."""
        discount = None if percent_discount is None else to_decimal(percent_discount)
        if discount is not None and discount > 100:
            raise ValueError(f"percent_discount must be within 0..100, not {discount}")
        item = _usage_item(
            endpoint_id, unit, to_decimal(quantity), to_decimal(unit_price), discount, legacy=legacy
        )
        with self._lock:
            self._lines[day] = [*self._lines.get(day, []), item]
        return dict(item)

    def set_requests(
        self, day: date, endpoint_id: str, success_count: int, request_count: int | None = None
    ) -> None:
        """An endpoint's requests on a day; `request_count` defaults to `success_count` (no errors)."""
        requests = success_count if request_count is None else request_count
        if not 0 <= success_count <= requests:
            raise ValueError(f"need 0 <= success_count <= request_count, got {success_count}, {requests}")
        with self._lock:
            self._requests[day] = {**self._requests.get(day, {}), endpoint_id: (success_count, requests)}

    def clear_day(self, day: date) -> None:
        with self._lock:
            self._lines.pop(day, None)
            self._requests.pop(day, None)

    def items(self, day: date) -> list[JsonObject]:
        """The day's lines, as served."""
        with self._lock:
            return [dict(item) for item in self._lines.get(day, [])]

    def request_counts(self, day: date) -> dict[str, tuple[int, int]]:
        """The day's `(success_count, request_count)` by endpoint."""
        with self._lock:
            return dict(self._requests.get(day, {}))

    def generate(
        self,
        days: Iterable[date],
        endpoints: Sequence[tuple[str, str, Decimal]],
        *,
        seed: int = 0,
        billed_price_factor: dict[str, Decimal] | None = None,
    ) -> None:
        """Usage and request counts for every `(endpoint_id, unit, list unit price)` on every day, the same
        for the same seed. About one endpoint-day in five is billed partly at a discount (two lines).
        `billed_price_factor[endpoint_id]` multiplies the list price into the billed unit price."""
        rng = random.Random(seed)
        factors = billed_price_factor or {}
        for day in days:
            for endpoint_id, unit, list_price in endpoints:
                unit_price = to_decimal(list_price) * factors.get(endpoint_id, Decimal(1))
                quantity = _generated_quantity(rng, unit)
                split = _split_quantity(rng, quantity) if rng.random() < 0.2 else None
                if split is None:
                    self.add_line(day, endpoint_id, unit, quantity, unit_price)
                else:
                    self.add_line(day, endpoint_id, unit, split[0], unit_price)
                    self.add_line(day, endpoint_id, unit, split[1], unit_price, rng.choice((10, 20, 50)))
                success = max(1, int(quantity) // rng.choice((1, 2, 4)))
                self.set_requests(day, endpoint_id, success, success + rng.randint(0, max(1, success // 10)))

    # -- answers ----------------------------------------------------------------------------------------

    def usage_page(self, query: dict[str, list[str]], max_endpoint_ids: int) -> JsonObject:
        expansions = _expansions(query, ["time_series"], USAGE_EXPANSIONS)
        if not {"time_series", "summary"} & set(expansions):
            raise ApiError(400, "expand must include 'time_series' or 'summary'")
        unserved = [name for name in expansions if name != "time_series"]
        if unserved:
            raise ApiError(501, f"The emulator does not serve expand={unserved[0]}")
        for name in ("api_key_id", "login_username"):
            if _split_values(query.get(name, [])):
                raise ApiError(501, f"The emulator does not filter by {name}")
        wanted = _endpoint_filter(query, max_endpoint_ids, required=False)
        days = _day_range(query)
        with self._lock:
            lines = {day: self._lines.get(day, []) for day in days.days}
        rows: list[tuple[str, JsonObject | None]] = []
        for day, bucket in days.buckets:
            items = [item for item in lines[day] if wanted is None or item["endpoint_id"] in wanted]
            if items:
                rows.extend((bucket, item) for item in items)
            else:
                rows.append((bucket, None))
        return self._page(query, "usage", rows)

    def analytics_page(self, query: dict[str, list[str]], max_endpoint_ids: int) -> JsonObject:
        wanted = _endpoint_filter(query, max_endpoint_ids, required=True)
        assert wanted is not None
        names = set(ANALYTICS_METRICS) | {"time_series", "summary"}
        expansions = _expansions(query, ["time_series", "request_count"], tuple(names))
        metrics = [name for name in expansions if name in ANALYTICS_METRICS]
        if not {"time_series", "summary"} & set(expansions) or not metrics:
            raise ApiError(400, "expand must include 'time_series' or 'summary' and at least one metric")
        if "summary" in expansions:
            raise ApiError(501, "The emulator does not serve expand=summary")
        unserved = [name for name in metrics if name not in SERVED_ANALYTICS_METRICS]
        if unserved:
            raise ApiError(501, f"The emulator does not serve the metric {unserved[0]}")
        days = _day_range(query)
        with self._lock:
            counts = {day: self._requests.get(day, {}) for day in days.days}
        rows: list[tuple[str, JsonObject | None]] = []
        for day, bucket in days.buckets:
            day_rows = []
            for endpoint_id in wanted:
                if endpoint_id in counts[day]:
                    success, requests = counts[day][endpoint_id]
                    figures = {
                        "request_count": requests,
                        "success_count": success,
                        "user_error_count": 0,
                        "error_count": requests - success,
                    }
                    day_rows.append({"endpoint_id": endpoint_id, **{name: figures[name] for name in metrics}})
            if day_rows:
                rows.extend((bucket, row) for row in day_rows)
            else:
                rows.append((bucket, None))
        return self._page(query, "analytics", rows)

    def _page(
        self, query: dict[str, list[str]], kind: str, rows: list[tuple[str, JsonObject | None]]
    ) -> JsonObject:
        limit = _positive_int(query, "limit", self.default_page_size)
        size = max(1, min(limit, self.max_page_size))
        cursors = [value for value in query.get("cursor", []) if value]
        offset = _decode_offset_cursor(cursors[-1], kind) if cursors else 0
        page = rows[offset : offset + size]
        time_series: list[JsonObject] = []
        for bucket, row in page:
            if not time_series or time_series[-1]["bucket"] != bucket:
                time_series.append({"bucket": bucket, "results": []})
            if row is not None:
                time_series[-1]["results"].append(row)
        more = offset + size < len(rows)
        return {
            "time_series": time_series,
            "next_cursor": _encode_offset_cursor(kind, offset + size) if more else None,
            "has_more": more,
        }


def _expansions(query: dict[str, list[str]], default: list[str], known: tuple[str, ...]) -> list[str]:
    values = _split_values(query.get("expand", [])) or default
    for value in values:
        if value not in known:
            raise ApiError(400, f"Invalid expand value: {value!r}")
    return values


def _endpoint_filter(query: dict[str, list[str]], limit: int, *, required: bool) -> list[str] | None:
    endpoint_ids = _split_values(query.get("endpoint_id", []))
    if not endpoint_ids:
        if required:
            raise ApiError(400, "endpoint_id is required (1 to 50 values)")
        return None
    if len(endpoint_ids) > limit:
        raise ApiError(400, f"At most {limit} endpoint_id values are allowed (got {len(endpoint_ids)})")
    return endpoint_ids


def _moment(query: dict[str, list[str]], name: str, default: datetime) -> datetime:
    values = [value.strip() for value in query.get(name, []) if value.strip()]
    if not values:
        return default
    text = values[-1]
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name} must be an ISO 8601 date or date-time, got {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _day_range(query: dict[str, list[str]]) -> _DayRange:
    """The UTC days of `start`..`end` (exclusive), aligned to whole days as fal's `bound_to_timeframe`."""
    timezones = [value for value in query.get("timezone", []) if value.strip()]
    if timezones and timezones[-1].strip() != "UTC":
        raise ApiError(501, f"The emulator buckets in UTC only, not {timezones[-1]!r}")
    bound = (query.get("bound_to_timeframe") or ["true"])[-1]
    if bound not in ("true", "false"):
        raise ApiError(400, "bound_to_timeframe must be 'true' or 'false'")
    if bound == "false":
        raise ApiError(501, "The emulator serves whole days only (bound_to_timeframe=true)")
    now = datetime.now(UTC)
    end = _moment(query, "end", now)
    start = _moment(query, "start", end - timedelta(days=1))
    if end <= start:
        raise ApiError(400, "end must be after start (end is exclusive)")
    timeframes = [value for value in query.get("timeframe", []) if value.strip()]
    if timeframes:
        timeframe = timeframes[-1].strip()
        if timeframe not in TIMEFRAMES:
            raise ApiError(400, f"Invalid timeframe {timeframe!r}: expected one of {', '.join(TIMEFRAMES)}")
    else:
        span = end - start
        timeframe = next(
            name
            for name, below in (
                ("minute", timedelta(hours=2)),
                ("hour", timedelta(days=2)),
                ("day", timedelta(days=64)),
                ("week", timedelta(days=183)),
                ("month", timedelta.max),
            )
            if span < below
        )
    if timeframe != "day":
        raise ApiError(501, f"The emulator serves day buckets only, not {timeframe!r}")
    first = start.astimezone(UTC).date()
    end_utc = end.astimezone(UTC)
    last = end_utc.date() if end_utc.time() == datetime.min.time() else end_utc.date() + timedelta(days=1)
    return _DayRange([first + timedelta(days=n) for n in range((last - first).days)])


def _encode_offset_cursor(kind: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{offset}".encode("ascii")).decode("ascii")


def _decode_offset_cursor(cursor: str, kind: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
        cursor_kind, _, number = text.partition(":")
        offset = int(number)
    except (binascii.Error, UnicodeError, ValueError):
        raise ApiError(400, f"Invalid cursor: {cursor!r}") from None
    if cursor_kind != kind or offset < 1 or str(offset) != number:
        raise ApiError(400, f"Invalid cursor: {cursor!r}")
    return offset


# -- settings, faults, request log ---------------------------------------------------------------------


@dataclass
class EmulatorSettings:
    """How the emulated fal behaves; a test may change any field while the server runs."""

    latency: float = 0.0
    list_page_max: int = 1000
    list_default_limit: int = 100
    schema_batch_cap: int = 10
    max_endpoint_ids: int = 50
    list_default_statuses: tuple[str, ...] = ("active",)
    """fal's docs say list mode returns every status when `status` is omitted; observed: active only."""
    prices_as_strings: bool = False
    estimate_min_interval: float = 1.0
    expansion_failed_ids: set[str] = field(default_factory=set)
    metadata_missing_ids: set[str] = field(default_factory=set)
    failing_list_pages: set[int] = field(default_factory=set)
    control: bool = False
    """Serve `POST /_emulator/catalog` (hide and reveal endpoints from another process); never fal's."""


KeyKind = Literal["none", "api", "admin", "other"]


@dataclass
class RecordedRequest:
    """One request as the emulator saw it. `status` is 0 for a request answered by a dropped connection."""

    method: str
    path: str
    query: dict[str, list[str]]
    authorized: bool
    key: KeyKind = "none"
    """Which key came in `Authorization`: none, the API key, an admin key, or another value."""
    status: int = 0
    started: float = 0.0
    ended: float = 0.0

    @property
    def duration(self) -> float:
        return self.ended - self.started


FaultKind = Literal["status", "truncate", "html", "delay", "reset"]


@dataclass
class Fault:
    """A failure to serve instead of (or before) the normal answer.

    Applies to requests whose path starts with `path` and, if given, for which `match` is true;
    `times` requests (None = forever). Kinds: `status` answers `status` (default 500) with fal's error
    body; `truncate` announces the full body in `Content-Length`, writes half, closes the connection;
    `html` answers an HTML challenge page with status `status` (default 200); `delay` sleeps `delay`
    seconds, then answers normally; `reset` drops the connection without answering. `retry_after`
    adds a `Retry-After` header to whatever is answered.
    """

    path: str = ""
    kind: FaultKind = "status"
    status: int | None = None
    times: int | None = 1
    retry_after: float | None = None
    delay: float = 0.0
    match: Callable[[RecordedRequest], bool] | None = None

    def applies_to(self, request: RecordedRequest) -> bool:
        return request.path.startswith(self.path) and (self.match is None or self.match(request))


# -- responses -------------------------------------------------------------------------------------------


ERROR_TYPES = {400: "validation_error", 401: "authorization_error", 403: "authorization_error"}
ERROR_TYPES |= {404: "not_found", 429: "rate_limited", 501: "not_implemented"}

HTML_CHALLENGE = (
    '<!DOCTYPE html><html lang="en"><head><title>Just a moment...</title>'
    '<meta http-equiv="refresh" content="30"></head><body><h1>Checking your browser before accessing '
    "fal.ai</h1><p>This process is automatic. Your browser will redirect to your requested content "
    "shortly.</p></body></html>"
)


def error_type_for(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "server_error" if status >= 500 else "validation_error"


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """An answer in fal's error shape: `{"error": {"type": …, "message": …}}`."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def response(self) -> _Response:
        body = {"error": {"type": error_type_for(self.status), "message": self.message}}
        return _Response(self.status, _json_bytes(body), headers=dict(self.headers))


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _decimal_token(number: Decimal, *, trim: bool = False) -> str:
    """A JSON number token with the decimal's own digits (no float rounding, no exponent)."""
    text = format(number, "f")
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _encode_with_decimals(value: Any, *, decimals_as_strings: bool = False) -> str:
    """JSON text in which a `Decimal` becomes a number token of its exact digits (or a string)."""
    if isinstance(value, Decimal):
        token = _decimal_token(value)
        return json.dumps(token) if decimals_as_strings else token
    if isinstance(value, dict):
        members = (
            f"{json.dumps(str(key), ensure_ascii=False)}:"
            f"{_encode_with_decimals(item, decimals_as_strings=decimals_as_strings)}"
            for key, item in value.items()
        )
        return "{" + ",".join(members) + "}"
    if isinstance(value, list | tuple):
        items = (_encode_with_decimals(item, decimals_as_strings=decimals_as_strings) for item in value)
        return "[" + ",".join(items) + "]"
    return json.dumps(value, ensure_ascii=False)


def _retry_after_value(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _encode_cursor(page: int) -> str:
    return base64.b64encode(str(page).encode("ascii")).decode("ascii")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.b64decode(cursor.encode("ascii"), validate=True).decode("ascii")
        page = int(text)
    except (binascii.Error, UnicodeError, ValueError):
        raise ApiError(400, f"Invalid cursor: {cursor!r}") from None
    if page < 1 or str(page) != text:
        raise ApiError(400, f"Invalid cursor: {cursor!r}")
    return page


def _positive_int(query: dict[str, list[str]], name: str, default: int) -> int:
    values = [value for value in query.get(name, []) if value.strip()]
    if not values:
        return default
    try:
        number = int(values[-1])
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, got {values[-1]!r}") from None
    if number < 1:
        raise ApiError(400, f"{name} must be >= 1, got {number}")
    return number


def _split_values(values: Iterable[str]) -> list[str]:
    """Repeated or comma-separated query values, stripped, blanks dropped, first occurrence kept."""
    seen: dict[str, None] = {}
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part:
                seen.setdefault(part, None)
    return list(seen)


# -- server ----------------------------------------------------------------------------------------------


class _FalHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, emulator: FalEmulator, port: int) -> None:
        self.emulator = emulator
        super().__init__(("127.0.0.1", port), _FalRequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Dropped and killed connections are part of the job; anything else is a bug worth a trace."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError | ValueError) or self.emulator.killed:
            return
        log.exception("fal emulator: unexpected error while serving %s", client_address)


class _FalRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fal-emulator/1"
    server: _FalHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.emulator._connection_opened(self.connection)

    def finish(self) -> None:
        self.server.emulator._connection_closed(self.connection)
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        emulator = self.server.emulator
        if emulator.killed:
            self._drop()
            return
        body = self._read_body()
        if body is None:
            self._drop()
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        path = url.path.rstrip("/") or "/"
        if path == CONTROL_PATH and emulator.settings.control:
            self._send(emulator._control(method, body), truncate=False)
            return
        record = RecordedRequest(
            method=method,
            path=path,
            query={
                name: _split_values(values) if name == "endpoint_id" else list(values)
                for name, values in query.items()
            },
            authorized=self.headers.get("Authorization") == f"Key {emulator.api_key}",
            key=emulator._key_kind(self.headers.get("Authorization")),
            started=time.monotonic(),
        )
        emulator._request_started(record)
        try:
            self._answer(emulator, record, method, path, query, body)
        finally:
            emulator._request_finished()

    def _answer(
        self,
        emulator: FalEmulator,
        record: RecordedRequest,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
    ) -> None:
        latency = emulator.settings.latency
        if latency > 0:
            time.sleep(latency)
        fault = emulator._take_fault(record)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay)
        if emulator.killed or (fault is not None and fault.kind == "reset"):
            record.ended = time.monotonic()
            self._drop()
            return
        if fault is not None and fault.kind == "status":
            status = fault.status or 500
            response = ApiError(status, f"Injected fault: HTTP {status}").response()
        elif fault is not None and fault.kind == "html":
            response = _Response(fault.status or 200, HTML_CHALLENGE.encode(), "text/html; charset=utf-8")
        else:
            response = emulator._route(
                method, path, query, body, authorized=record.authorized, key=record.key
            )
        if fault is not None and fault.retry_after is not None:
            response.headers["Retry-After"] = _retry_after_value(fault.retry_after)
        if emulator.killed:
            self._drop()
            return
        record.status = response.status
        record.ended = time.monotonic()
        self._send(response, truncate=fault is not None and fault.kind == "truncate")

    def _read_body(self) -> bytes | None:
        """The request body, read in full so the connection can be reused; None if it cannot be read."""
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""
        except (OSError, ValueError):
            return None

    def _send(self, response: _Response, *, truncate: bool) -> None:
        """Head and body in one write: separate small writes meet delayed ACKs and cost ~40 ms each."""
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            if truncate:
                self.send_header("Connection", "close")
            head = b"".join([*self._headers_buffer, b"\r\n"])
            self._headers_buffer = []
            if truncate:
                self.wfile.write(head + response.body[: len(response.body) // 2])
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                self.wfile.write(head + response.body)
        except OSError:
            self.close_connection = True

    def _drop(self) -> None:
        """Close the connection at once with a TCP reset, answering nothing."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError, ValueError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            self.connection.close()


class FalEmulator:
    """fal's Platform API on `http://127.0.0.1:<port>`: `with FalEmulator(catalog) as fal: fal.base_url`."""

    def __init__(
        self,
        catalog: EmulatedCatalog,
        settings: EmulatorSettings | None = None,
        api_key: str = DEFAULT_API_KEY,
        *,
        port: int = 0,
        usage: EmulatedUsage | None = None,
    ) -> None:
        self.catalog = catalog
        self.settings = settings if settings is not None else EmulatorSettings()
        self.api_key = api_key
        self.usage = usage if usage is not None else EmulatedUsage()
        self.requested_port = port
        self._server: _FalHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._state = threading.Condition()
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._in_flight = 0
        self._max_in_flight = 0
        self._last_estimate: float | None = None
        self._killed = False
        self._last_port = 0
        self._list_cache: dict[tuple[frozenset[str], frozenset[str], str], list[str]] = {}
        self._list_cache_fingerprint: tuple[int, ...] = ()

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> FalEmulator:
        """Serve in a daemon thread; after `stop()`/`kill()` it comes back on the same port."""
        if self._server is not None:
            raise RuntimeError("the fal emulator is already running")
        self._killed = False
        self._server = _FalHTTPServer(self, self.requested_port or self._last_port)
        self._last_port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fal-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def __enter__(self) -> FalEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self, grace: float = 2.0) -> None:
        """Stop accepting, let requests in flight finish (up to `grace` s), then close every connection."""
        server = self._server
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._state:
            self._state.wait_for(lambda: self._in_flight == 0, timeout=grace)
        self._close_connections(abrupt=False)
        self._join()

    def kill(self) -> None:
        """Die like a crashed fal: refuse new connections and reset every open one, answered or not."""
        server = self._server
        if server is None:
            return
        self._killed = True
        self._close_connections(abrupt=True)
        server.shutdown()
        server.server_close()
        self._close_connections(abrupt=True)
        self._join()

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    @property
    def killed(self) -> bool:
        return self._killed

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fal emulator is not running")
        return self._server.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def openapi_url(self) -> str:
        return f"{self.origin}{QUEUE_OPENAPI_PATH}"

    # -- faults and observation -------------------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        """Queue a copy of `fault` (so one Fault value can serve many tests); returns the live copy."""
        live = dataclasses.replace(fault)
        with self._state:
            self._faults.append(live)
        return live

    def clear_faults(self) -> None:
        with self._state:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        with self._state:
            return list(self._faults)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order (a copy of the log)."""
        with self._state:
            return list(self._requests)

    @property
    def max_in_flight(self) -> int:
        with self._state:
            return self._max_in_flight

    @property
    def in_flight(self) -> int:
        with self._state:
            return self._in_flight

    def reset_log(self) -> None:
        with self._state:
            self._requests.clear()
            self._max_in_flight = self._in_flight

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == path]

    def _take_fault(self, request: RecordedRequest) -> Fault | None:
        with self._state:
            for index, fault in enumerate(self._faults):
                if fault.applies_to(request):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            del self._faults[index]
                    return fault
        return None

    def _request_started(self, request: RecordedRequest) -> None:
        with self._state:
            self._requests.append(request)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _request_finished(self) -> None:
        with self._state:
            self._in_flight -= 1
            self._state.notify_all()

    def _connection_opened(self, connection: socket.socket) -> None:
        with self._state:
            self._connections.add(connection)

    def _connection_closed(self, connection: socket.socket) -> None:
        with self._state:
            self._connections.discard(connection)

    def _close_connections(self, *, abrupt: bool) -> None:
        with self._state:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                if abrupt:
                    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                connection.shutdown(socket.SHUT_RDWR)

    # -- control (a test in another process changing the catalog) ----------------------------------------

    def _control(self, method: str, body: bytes) -> _Response:
        """`GET` shows, `POST {"reveal": [ids], "hide": [ids]}` reveals then hides; both answer
        `{"listed": n, "listed_ids": [...], "hidden": [...]}`. No latency, no faults, not logged."""
        try:
            if method == "POST":
                try:
                    change = json.loads(body or b"{}")
                    reveal, hide = list(change.get("reveal", [])), list(change.get("hide", []))
                except (ValueError, AttributeError, TypeError):
                    raise ApiError(400, 'body must be {"reveal": [ids], "hide": [ids]}') from None
                with self.catalog.lock:
                    try:
                        self.catalog.reveal(reveal)
                        self.catalog.hide(hide)
                    except KeyError as error:
                        raise ApiError(400, str(error.args[0])) from None
            elif method != "GET":
                raise ApiError(404, f"Not found: {method} {CONTROL_PATH}")
            with self.catalog.lock:
                listed = list(self.catalog.models)
                state = {"listed": len(listed), "listed_ids": listed, "hidden": self.catalog.hidden}
            return _Response(200, _json_bytes(state))
        except ApiError as error:
            return error.response()

    # -- routes -----------------------------------------------------------------------------------------

    def _key_kind(self, authorization: str | None) -> KeyKind:
        if authorization is None:
            return "none"
        scheme, _, value = authorization.partition(" ")
        if scheme == "Key" and value in self.usage.admin_keys:
            return "admin"
        return "api" if authorization == f"Key {self.api_key}" else "other"

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        *,
        authorized: bool,
        key: KeyKind = "none",
    ) -> _Response:
        try:
            if method == "GET" and path == MODELS_PATH:
                return self._models(query)
            if method == "GET" and path == PRICING_PATH:
                self._require_key(authorized)
                return self._pricing(query)
            if method == "POST" and path == ESTIMATE_PATH:
                self._require_key(authorized)
                return self._estimate(body)
            if method == "GET" and path == QUEUE_OPENAPI_PATH:
                return self._queue_openapi(query)
            if method == "GET" and path == USAGE_PATH:
                self._require_admin_key(key)
                page = self.usage.usage_page(query, self.settings.max_endpoint_ids)
                return _Response(200, _encode_with_decimals(page).encode("utf-8"))
            if method == "GET" and path == ANALYTICS_PATH:
                self._require_key(authorized or key == "admin")
                page = self.usage.analytics_page(query, self.settings.max_endpoint_ids)
                return _Response(200, _json_bytes(page))
            raise ApiError(404, f"Not found: {method} {path}")
        except ApiError as error:
            return error.response()
        except Exception:
            log.exception("fal emulator: %s %s failed", method, path)
            return ApiError(500, "An unexpected error occurred").response()

    @staticmethod
    def _require_key(authorized: bool) -> None:
        if not authorized:
            raise ApiError(401, "Authentication required: send 'Authorization: Key <FAL_KEY>'")

    @staticmethod
    def _require_admin_key(key: KeyKind) -> None:
        if key == "none":
            raise ApiError(401, "Authentication required: send 'Authorization: Key <ADMIN_KEY>'")
        if key != "admin":
            raise ApiError(
                403, "Access denied: usage needs an ADMIN key with the billing:usage:read permission"
            )

    def _models(self, query: dict[str, list[str]]) -> _Response:
        expansions = _split_values(query.get("expand", []))
        for expansion in expansions:
            if expansion not in (OPENAPI_EXPANSION, ENTERPRISE_STATUS_EXPANSION):
                raise ApiError(400, f"Invalid expand value: {expansion!r}")
        expand_openapi = OPENAPI_EXPANSION in expansions
        expand_enterprise = ENTERPRISE_STATUS_EXPANSION in expansions
        settings = self.settings
        if "endpoint_id" in query:
            endpoint_ids = _split_values(query["endpoint_id"])
            if not endpoint_ids:
                raise ApiError(400, "endpoint_id must not be empty")
            if len(endpoint_ids) > settings.max_endpoint_ids:
                raise ApiError(
                    400,
                    f"At most {settings.max_endpoint_ids} endpoint_id values are allowed "
                    f"(got {len(endpoint_ids)})",
                )
            if expand_openapi and len(endpoint_ids) > settings.schema_batch_cap:
                raise ApiError(
                    400,
                    f"At most {settings.schema_batch_cap} endpoint_id values are allowed when "
                    f"expand={OPENAPI_EXPANSION} (got {len(endpoint_ids)})",
                )
            with self.catalog.lock:
                page = [(eid, self.catalog.models[eid]) for eid in endpoint_ids if eid in self.catalog.models]
                documents = {eid: self.catalog.openapi.get(eid) for eid, _ in page} if expand_openapi else {}
            next_page = None
        else:
            limit = self._positive_int(query, "limit", settings.list_default_limit)
            page_size = min(limit, settings.list_page_max)
            if expand_openapi:
                page_size = min(page_size, settings.schema_batch_cap)
            page_size = max(page_size, 1)
            cursors = query.get("cursor", [])
            page_number = _decode_cursor(cursors[-1]) if cursors and cursors[-1] else 1
            if page_number in settings.failing_list_pages:
                raise ApiError(500, f"An unexpected error occurred (list page {page_number})")
            statuses = self._statuses(query)
            categories = {value for value in query.get("category", []) if value}
            needle = " ".join(query.get("q", [])).strip().lower()
            with self.catalog.lock:
                matching = self._matching(statuses, categories, needle)
                start = (page_number - 1) * page_size
                page = [(eid, self.catalog.models.get(eid)) for eid in matching[start : start + page_size]]
                documents = {eid: self.catalog.openapi.get(eid) for eid, _ in page} if expand_openapi else {}
            next_page = page_number + 1 if start + page_size < len(matching) else None
        items = []
        for endpoint_id, metadata in page:
            item: JsonObject = {"endpoint_id": endpoint_id}
            if metadata is not None and endpoint_id not in settings.metadata_missing_ids:
                item["metadata"] = _with_constant_fields(metadata)
            if expand_openapi:
                document = documents.get(endpoint_id)
                if document is None or endpoint_id in settings.expansion_failed_ids:
                    item["openapi"] = {
                        "error": {
                            "code": "expansion_failed",
                            "message": f"OpenAPI expansion failed for {endpoint_id}",
                        }
                    }
                else:
                    item["openapi"] = document
            if expand_enterprise:
                item["enterprise_status"] = "ready"
            items.append(item)
        envelope = {
            "models": items,
            "next_cursor": _encode_cursor(next_page) if next_page else None,
            "has_more": next_page is not None,
        }
        return _Response(200, _json_bytes(envelope))

    def _matching(self, statuses: set[str], categories: set[str], needle: str) -> list[str]:
        """Ids list mode shows for a filter, cached until the catalog changes (15,000 take ~60 ms)."""
        catalog = self.catalog
        fingerprint = (id(catalog), catalog.version, id(catalog.models), len(catalog.models))
        key = (frozenset(statuses), frozenset(categories), needle)
        with self._state:
            if self._list_cache_fingerprint != fingerprint:
                self._list_cache_fingerprint = fingerprint
                self._list_cache.clear()
            cached = self._list_cache.get(key)
        if cached is None:
            cached = [
                eid
                for eid, metadata in catalog.models.items()
                if _listed(eid, metadata, statuses, categories, needle)
            ]
            with self._state:
                if self._list_cache_fingerprint == fingerprint:
                    self._list_cache[key] = cached
        return cached

    @staticmethod
    def _positive_int(query: dict[str, list[str]], name: str, default: int) -> int:
        return _positive_int(query, name, default)

    def _statuses(self, query: dict[str, list[str]]) -> set[str]:
        statuses = _split_values(query.get("status", []))
        for status in statuses:
            if status not in STATUSES:
                raise ApiError(400, f"Invalid status {status!r}: expected one of {', '.join(STATUSES)}")
        return set(statuses or self.settings.list_default_statuses)

    def _pricing(self, query: dict[str, list[str]]) -> _Response:
        endpoint_ids = _split_values(query.get("endpoint_id", []))
        limit = self.settings.max_endpoint_ids
        if not endpoint_ids:
            raise ApiError(400, "endpoint_id is required")
        if len(endpoint_ids) > limit:
            raise ApiError(400, f"At most {limit} endpoint_id values are allowed (got {len(endpoint_ids)})")
        with self.catalog.lock:
            unknown = next((eid for eid in endpoint_ids if eid not in self.catalog.models), None)
            if unknown is not None:
                raise ApiError(404, f"Endpoint not found: {unknown}")
            priced = [(eid, self.catalog.prices[eid]) for eid in endpoint_ids if eid in self.catalog.prices]
        prices = [
            {
                "endpoint_id": eid,
                "unit_price": to_decimal(price["unit_price"]),
                "unit": price["unit"],
                "currency": price.get("currency", "USD"),
            }
            for eid, price in priced
        ]
        envelope = {"prices": prices, "next_cursor": None, "has_more": False}
        text = _encode_with_decimals(envelope, decimals_as_strings=self.settings.prices_as_strings)
        return _Response(200, text.encode("utf-8"))

    def _estimate(self, body: bytes) -> _Response:
        with self._state:
            now = time.monotonic()
            interval = self.settings.estimate_min_interval
            if self._last_estimate is not None and now - self._last_estimate < interval:
                raise ApiError(429, "Rate limit exceeded", headers={"Retry-After": "1"})
            self._last_estimate = now
        try:
            request = json.loads(body or b"null", parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "Request body must be a JSON object") from None
        if not isinstance(request, dict):
            raise ApiError(400, "Request body must be a JSON object")
        estimate_type = request.get("estimate_type")
        if estimate_type not in ESTIMATE_QUANTITY_KEYS:
            raise ApiError(400, f"estimate_type must be one of {', '.join(ESTIMATE_QUANTITY_KEYS)}")
        quantity_key = ESTIMATE_QUANTITY_KEYS[estimate_type]
        endpoints = request.get("endpoints")
        if not isinstance(endpoints, dict) or not endpoints:
            raise ApiError(400, "endpoints must be a non-empty object keyed by endpoint id")
        if len(endpoints) > self.settings.max_endpoint_ids:
            raise ApiError(400, f"At most {self.settings.max_endpoint_ids} endpoints are allowed")
        quantities = {eid: _estimate_quantity(eid, spec, quantity_key) for eid, spec in endpoints.items()}
        with self.catalog.lock:
            unknown = next((eid for eid in quantities if eid not in self.catalog.models), None)
            if unknown is not None:
                raise ApiError(404, f"Endpoint not found: {unknown}")
            unpriced = next((eid for eid in quantities if eid not in self.catalog.prices), None)
            if unpriced is not None:
                raise ApiError(404, f"No pricing available for endpoint: {unpriced}")
            unit_prices = {eid: to_decimal(self.catalog.prices[eid]["unit_price"]) for eid in quantities}
        total = sum((unit_prices[eid] * quantity for eid, quantity in quantities.items()), Decimal(0))
        text = (
            f'{{"estimate_type":{json.dumps(estimate_type)},'
            f'"total_cost":{_decimal_token(total, trim=True)},"currency":"USD"}}'
        )
        return _Response(200, text.encode("utf-8"))

    def _queue_openapi(self, query: dict[str, list[str]]) -> _Response:
        endpoint_ids = _split_values(query.get("endpoint_id", []))
        if len(endpoint_ids) != 1:
            raise ApiError(400, "Exactly one endpoint_id is required")
        endpoint_id = endpoint_ids[0]
        with self.catalog.lock:
            known = endpoint_id in self.catalog.models
            document = self.catalog.openapi.get(endpoint_id)
        if not known or document is None:
            raise ApiError(404, f"OpenAPI schema not found for endpoint: {endpoint_id}")
        return _Response(200, _json_bytes(document))


def _with_constant_fields(metadata: JsonObject) -> JsonObject:
    missing = {name: value for name, value in CONSTANT_METADATA.items() if name not in metadata}
    return {**metadata, **missing} if missing else metadata


def _listed(
    endpoint_id: str, metadata: JsonObject | None, statuses: set[str], categories: set[str], needle: str
) -> bool:
    """Whether list mode shows an endpoint. One without metadata counts as active and uncategorised."""
    status = (metadata or {}).get("status") or "active"
    if status not in statuses:
        return False
    if categories and (metadata or {}).get("category") not in categories:
        return False
    if needle:
        haystack = [endpoint_id]
        if metadata is not None:
            haystack += [str(metadata.get("display_name") or ""), str(metadata.get("description") or "")]
        return any(needle in text.lower() for text in haystack)
    return True


def _estimate_quantity(endpoint_id: str, spec: Any, quantity_key: str) -> Decimal:
    if not isinstance(spec, dict) or quantity_key not in spec:
        raise ApiError(400, f"endpoints[{endpoint_id!r}] must be an object with {quantity_key}")
    value = spec[quantity_key]
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ApiError(400, f"endpoints[{endpoint_id!r}].{quantity_key} must be a number")
    if quantity_key == "call_quantity":
        if not isinstance(value, int) or value < 1:
            raise ApiError(400, f"endpoints[{endpoint_id!r}].call_quantity must be an integer >= 1")
    elif value < MIN_UNIT_QUANTITY:
        raise ApiError(400, f"endpoints[{endpoint_id!r}].unit_quantity must be >= 1e-6")
    return Decimal(value)


# -- standalone ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve an emulated fal Platform API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--scale", type=int, default=None, help="serve exactly N endpoints (clones added)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--admin-key", default=DEFAULT_ADMIN_KEY, help="the key usage accepts")
    parser.add_argument(
        "--usage-days",
        type=int,
        default=0,
        metavar="N",
        help="serve generated usage for every priced endpoint over the last N UTC days (before today)",
    )
    parser.add_argument("--snapshot", type=Path, default=None, help="catalog snapshot (default: bundled)")
    parser.add_argument(
        "--documented-only", action="store_true", help="serve (and clone) only endpoints with a document"
    )
    parser.add_argument(
        "--set-price",
        nargs=3,
        action="append",
        default=[],
        metavar=("ENDPOINT_ID", "UNIT_PRICE", "UNIT"),
        help="serve this price instead of the snapshot's (repeatable)",
    )
    parser.add_argument(
        "--failing-list-page",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="answer list page N (1 = the first) with a 500, every time (repeatable)",
    )
    parser.add_argument(
        "--hide",
        action="append",
        default=[],
        metavar="ENDPOINT_ID",
        help="start with this endpoint unpublished (repeatable; --control can reveal it)",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help=f"serve {CONTROL_PATH}: another process hides and reveals endpoints while it runs",
    )
    args = parser.parse_args(argv)
    catalog = EmulatedCatalog.from_snapshot(args.snapshot)
    if args.documented_only:
        catalog = catalog.documented()
    if args.scale is not None:
        catalog = catalog.scaled(args.scale)
    for endpoint_id, unit_price, unit in args.set_price:
        catalog.set_price(endpoint_id, unit_price, unit)
    catalog.hide(args.hide)
    settings = EmulatorSettings(
        latency=args.latency, failing_list_pages=set(args.failing_list_page), control=args.control
    )
    usage = EmulatedUsage(admin_keys={args.admin_key})
    if args.usage_days > 0:
        today = datetime.now(UTC).date()
        priced = [
            (eid, price["unit"], to_decimal(price["unit_price"])) for eid, price in catalog.prices.items()
        ]
        usage.generate([today - timedelta(days=n) for n in range(args.usage_days, 0, -1)], priced)
    emulator = FalEmulator(catalog, settings, args.api_key, port=args.port, usage=usage)
    with emulator:
        print(f"fal emulator: {len(catalog)} endpoints, {len(catalog.prices)} prices", flush=True)
        print(f"base_url    = {emulator.base_url}", flush=True)
        print(f"openapi_url = {emulator.openapi_url}", flush=True)
        print("Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
