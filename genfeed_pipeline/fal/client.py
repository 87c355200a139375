"""Client of fal's Platform API (`https://api.fal.ai/v1`) and of its per-endpoint queue schemas.

Everything here is plain asyncio + httpx; the Dagster resources wrap it. Requests share one limit on
requests in flight and one on requests per second, so schema and price batches can run side by side
without exceeding either. Transient failures (429, 5xx, timeouts, dropped connections, truncated or
non-JSON bodies) are retried under the pipeline's retry policy (`genfeed_pipeline.retry`), honouring
`Retry-After`. Outcomes are typed: each endpoint's schema fetch ends with a `SchemaStatus`, its price
fetch with a `PriceStatus`, the catalog's own vocabulary.

The HTTP transport can be injected (`transport=httpx.MockTransport(handler)`), so the client's logic can
be tested without a server.

The keys (the API key, FAL_KEY, and the admin key, FAL_ADMIN_KEY, that reads usage) are held as
`pydantic.SecretStr`s and only ever placed in the `Authorization` header; no message this module builds
contains a header or a key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import orjson
from aiolimiter import AsyncLimiter
from pydantic import BaseModel, Field, SecretStr, ValidationError
from tenacity import RetryCallState

from genfeed_pipeline.fal.catalog import PriceStatus, SchemaStatus, canonical_json
from genfeed_pipeline.fal.concurrency import PrioritySlots
from genfeed_pipeline.fal.models import (
    FalAnalyticsPage,
    FalErrorBody,
    FalEstimate,
    FalModelItem,
    FalModelsPage,
    FalPrice,
    FalPricesPage,
    FalUsageBucket,
    FalUsagePage,
)
from genfeed_pipeline.retry import AttemptError, RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)
Page = TypeVar("Page", bound=BaseModel)

DEFAULT_API_BASE_URL = "https://api.fal.ai/v1"
DEFAULT_OPENAPI_URL = "https://fal.ai/api/openapi/queue/openapi.json"
LIST_STATUSES = ("active", "deprecated")
OPENAPI_EXPANSION = "openapi-3.0"
FAL_ID_LIMIT = 50
USAGE_PERMISSION = "billing:usage:read"
# fal bills successful requests; the other counts come along for the evidence.
ANALYTICS_METRICS = ("request_count", "success_count")


class FalClientSettings(BaseModel):
    """How the client talks to fal. Every number here is configuration, not a constant."""

    base_url: str = DEFAULT_API_BASE_URL
    openapi_url: str = DEFAULT_OPENAPI_URL
    list_page_size: int = Field(1000, ge=1)
    schema_batch_size: int = Field(10, ge=1, le=FAL_ID_LIMIT)
    price_batch_size: int = Field(50, ge=1, le=FAL_ID_LIMIT)
    usage_page_size: int = Field(1000, ge=1)
    max_in_flight: int = Field(8, ge=1)
    max_requests_per_second: float = Field(100.0, gt=0)
    estimate_requests_per_second: float = Field(1.0, gt=0)
    timeout_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(5, ge=1)
    backoff_initial_seconds: float = Field(0.5, ge=0)
    backoff_max_seconds: float = Field(30.0, ge=0)
    max_retry_after_seconds: float = Field(120.0, ge=0)
    progress_interval_seconds: float = Field(5.0, gt=0)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_initial_seconds=self.backoff_initial_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
            max_retry_after_seconds=self.max_retry_after_seconds,
        )


class FalApiError(AttemptError):
    """A request to fal that failed for good. The message names the request; never the key."""

    def __init__(
        self,
        message: str,
        *,
        request: str,
        status_code: int | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{request}: {message}")
        self.request = request
        self.status_code = status_code
        self.error_type = error_type
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status_code is None or self.status_code == 429 or self.status_code >= 500


class FalUnreachableError(FalApiError):
    """fal could not be reached at all (connection refused, DNS, timeouts), after retries."""


class FalUsageAccessError(FalApiError):
    """fal refused to show usage (401/403), or there is no key to ask with. Retrying cannot help: the key
    must be set or given the permission."""

    @property
    def retryable(self) -> bool:
        return False


@dataclass(frozen=True)
class FalUsageReport:
    """What fal billed over a range of days: one bucket per day (pages merged), and how many pages it took."""

    buckets: list[FalUsageBucket]
    pages: int


@dataclass(frozen=True)
class SchemaFetch:
    """The outcome of fetching one endpoint's OpenAPI document: `FETCHED` (by expansion), `FALLBACK` (from
    the queue schema URL), `MISSING` (fal has none anywhere) or `FAILED` (with the error).

    The document is kept as its canonical JSON text, made as soon as its batch arrives: at 15,000
    endpoints the parsed trees of a whole discovery would take several hundred MB, the text a fifth.
    """

    endpoint_id: str
    status: SchemaStatus
    document_json: str | None = None
    error: str | None = None

    @classmethod
    def found(cls, endpoint_id: str, document: dict[str, Any], status: SchemaStatus) -> SchemaFetch:
        return cls(endpoint_id, status, canonical_json(document))

    @classmethod
    def failure(cls, endpoint_id: str, error: str) -> SchemaFetch:
        return cls(endpoint_id, SchemaStatus.FAILED, error=error)

    @property
    def failed(self) -> bool:
        return self.status == SchemaStatus.FAILED


@dataclass(frozen=True)
class PriceFetch:
    """The outcome of fetching one endpoint's price: `PRICED` (with the price), `NO_PRICE`, `NOT_FOUND`
    or `FAILED` (with the error)."""

    endpoint_id: str
    status: PriceStatus
    price: FalPrice | None = None
    error: str | None = None


def _describe(method: str, url: httpx.URL | str, what: str) -> str:
    return f"fal {method} {url} ({what})"


class FalPlatformClient:
    """Async client; use as `async with FalPlatformClient(settings, api_key) as fal: ...`.

    `transport` replaces the network (an `httpx.MockTransport` in unit tests); by default httpx's own.
    """

    def __init__(
        self,
        settings: FalClientSettings | None = None,
        api_key: SecretStr | str | None = None,
        *,
        admin_key: SecretStr | str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings or FalClientSettings()
        self._api_key = _secret(api_key)
        self._admin_key = _secret(admin_key)
        self._transport = transport
        self._retry = self.settings.retry_policy()
        self._http: httpx.AsyncClient | None = None
        self._in_flight = PrioritySlots(self.settings.max_in_flight)
        self._rate = AsyncLimiter(self.settings.max_requests_per_second, 1.0)
        # A margin over fal's own interval, so that network jitter never turns pacing into a 429.
        self._estimate_rate = AsyncLimiter(1, 1.1 / self.settings.estimate_requests_per_second)
        self._schema_batch_size = self.settings.schema_batch_size
        self.requests_sent = 0
        self.requests_by_kind: Counter[str] = Counter()

    @property
    def has_key(self) -> bool:
        return self._api_key is not None

    @property
    def has_admin_key(self) -> bool:
        return self._admin_key is not None

    async def __aenter__(self) -> FalPlatformClient:
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(self.settings.timeout_seconds),
            limits=httpx.Limits(
                max_connections=self.settings.max_in_flight,
                max_keepalive_connections=self.settings.max_in_flight,
            ),
            headers={"Accept": "application/json", "User-Agent": "genfeed-pipeline"},
            transport=self._transport,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- requests ---------------------------------------------------------------------------------

    @staticmethod
    def _auth_headers(key: SecretStr | None) -> dict[str, str] | None:
        return None if key is None else {"Authorization": f"Key {key.get_secret_value()}"}

    async def _send_once(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: list[tuple[str, str]] | None,
        json_body: Any,
        key: SecretStr | None,
        limiter: AsyncLimiter,
        kind: str,
    ) -> Any:
        assert self._http is not None, "use the client inside `async with`"
        request = self._http.build_request(
            method,
            url,
            params=params,
            json=json_body,
            headers=self._auth_headers(key),
        )
        described = _describe(method, request.url, what)
        async with self._in_flight.hold(PrioritySlots.LIST if kind == "list" else PrioritySlots.FANOUT):
            await limiter.acquire()
            self.requests_sent += 1
            self.requests_by_kind[kind] += 1
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                raise FalUnreachableError(f"{type(exc).__name__}: {exc}", request=described) from None
        return self._decode(response, described)

    @staticmethod
    def _decode(response: httpx.Response, described: str) -> Any:
        content_type = response.headers.get("content-type", "")
        body: Any = None
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = _lenient_json(response)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if response.is_success:
            if body is None or "json" not in content_type:
                snippet = response.text[:80].replace("\n", " ")
                raise FalApiError(
                    f"HTTP {response.status_code} answer is not JSON (content-type {content_type!r}, "
                    f"starts {snippet!r})",
                    request=described,
                    status_code=None,
                    error_type="not_json",
                )
            return body
        error_type, message = None, response.reason_phrase
        if body is not None:
            try:
                detail = FalErrorBody.model_validate(body).error
                error_type, message = detail.type or detail.code, detail.message
            except ValidationError:
                message = json.dumps(body)[:200]
        raise FalApiError(
            f"HTTP {response.status_code} {error_type or 'error'}: {message}",
            request=described,
            status_code=response.status_code,
            error_type=error_type,
            retry_after=retry_after,
        )

    async def _request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: list[tuple[str, str]] | None = None,
        json_body: Any = None,
        authorized: bool = True,
        key: SecretStr | None = None,
        limiter: AsyncLimiter | None = None,
        kind: str = "list",
    ) -> Any:
        """One request under the retry policy; sent with `key` if given, else with the API key when
        `authorized`."""
        async for attempt in self._retry.async_retrying(self._log_retry):
            with attempt:
                return await self._send_once(
                    method,
                    url,
                    what=what,
                    params=params,
                    json_body=json_body,
                    key=key or (self._api_key if authorized else None),
                    limiter=limiter or self._rate,
                    kind=kind,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("retrying in %.2fs after attempt %d: %s", wait, state.attempt_number, exc)

    # -- model list ---------------------------------------------------------------------------------

    async def list_models(
        self,
        statuses: Sequence[str] = LIST_STATUSES,
        on_page: Callable[[list[FalModelItem]], None] | None = None,
    ) -> list[FalModelItem]:
        """Every endpoint of fal's list, each exactly once.

        List mode may answer with active endpoints only unless asked, so each status is listed on its
        own (the chains run side by side). `on_page` sees each page's new endpoints as soon as they
        arrive, so that work on them can start while the rest of the list is still coming.
        """
        pages = _Pages(on_page)
        await asyncio.gather(*(self._list_status(status, pages.collect) for status in statuses))
        return pages.items()

    async def _list_status(self, status: str, collect: Callable[[list[FalModelItem]], None]) -> None:
        cursor: str | None = None
        page = 1
        while True:
            params = [("limit", str(self.settings.list_page_size)), ("status", status)]
            if cursor:
                params.append(("cursor", cursor))
            body = await self._request(
                "GET",
                f"{self.settings.base_url}/models",
                what=f"model list, status={status}, page {page}",
                params=params,
            )
            parsed = self._parse_page(body, f"model list, status={status}, page {page}")
            collect(parsed.models)
            if not parsed.has_more or not parsed.next_cursor:
                return
            if parsed.next_cursor == cursor:
                raise FalApiError(
                    "the cursor did not advance", request=f"fal GET /models status={status} page {page}"
                )
            cursor = parsed.next_cursor
            page += 1

    async def find_models(
        self,
        endpoint_ids: Sequence[str],
        on_page: Callable[[list[FalModelItem]], None] | None = None,
    ) -> list[FalModelItem]:
        """The list items of chosen endpoints (fal's find mode), 50 ids a request, each exactly once;
        `on_page` as for `list_models`."""
        pages = _Pages(on_page)

        async def find(batch: list[str]) -> None:
            what = f"find {len(batch)} chosen endpoints from {batch[0]}"
            body = await self._request(
                "GET",
                f"{self.settings.base_url}/models",
                what=what,
                params=[("endpoint_id", endpoint_id) for endpoint_id in batch],
            )
            pages.collect(self._parse_page(body, what).models)

        await asyncio.gather(*(find(batch) for batch in _chunks(endpoint_ids, FAL_ID_LIMIT)))
        return pages.items()

    def _parse_page(self, body: Any, what: str) -> FalModelsPage:
        if not isinstance(body, dict) or not isinstance(body.get("models"), list):
            raise FalApiError("the answer has no `models` list", request=f"fal GET /models ({what})")
        models: list[FalModelItem] = []
        for raw in body["models"]:
            try:
                models.append(FalModelItem.model_validate(raw))
            except ValidationError:
                if isinstance(raw, dict) and isinstance(raw.get("endpoint_id"), str):
                    # Malformed metadata: keep the endpoint, drop what could not be read.
                    models.append(FalModelItem(endpoint_id=raw["endpoint_id"]))
                else:
                    log.warning("skipping a model list item without an endpoint_id (%s)", what)
        has_more = bool(body.get("has_more"))
        next_cursor = body.get("next_cursor") if isinstance(body.get("next_cursor"), str) else None
        return FalModelsPage(models=models, next_cursor=next_cursor, has_more=has_more)

    # -- schemas ------------------------------------------------------------------------------------

    async def fetch_openapi(
        self,
        endpoint_ids: Sequence[str],
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, SchemaFetch]:
        """OpenAPI documents by batches of ids with `expand=openapi-3.0`, batches in parallel.

        A batch that fal rejects as too large is split (to the cap the error names, if any) and the
        smaller size is kept for the rest of the run.
        """
        results: dict[str, SchemaFetch] = {}
        batches = list(_chunks(endpoint_ids, self._schema_batch_size))

        async def run(batch: list[str]) -> None:
            fetched = await self._fetch_openapi_batch(batch)
            results.update(fetched)
            if progress:
                progress(len(fetched))

        await asyncio.gather(*(run(batch) for batch in batches))
        return results

    async def _fetch_openapi_batch(self, batch: list[str]) -> dict[str, SchemaFetch]:
        if len(batch) > self._schema_batch_size:
            parts = await asyncio.gather(
                *(self._fetch_openapi_batch(part) for part in _chunks(batch, self._schema_batch_size))
            )
            return {k: v for part in parts for k, v in part.items()}
        params = [("endpoint_id", endpoint_id) for endpoint_id in batch]
        params.append(("expand", OPENAPI_EXPANSION))
        what = f"schemas of {len(batch)} endpoints from {batch[0]}"
        try:
            body = await self._request(
                "GET", f"{self.settings.base_url}/models", what=what, params=params, kind="schemas"
            )
        except FalApiError as exc:
            if exc.status_code == 400 and exc.error_type == "validation_error" and len(batch) > 1:
                cap = _named_cap(str(exc))
                smaller = cap if cap and cap < len(batch) else max(1, len(batch) // 2)
                if smaller < self._schema_batch_size:
                    log.warning("fal rejected %d ids per schema request; using %d", len(batch), smaller)
                    self._schema_batch_size = smaller
                return await self._fetch_openapi_batch(batch)
            if exc.error_type == "not_json" and len(batch) > 1:
                # One unreadable document must not cost the other endpoints of its batch.
                fetched = await asyncio.gather(*(self.fetch_queue_openapi(eid) for eid in batch))
                return {fetch.endpoint_id: fetch for fetch in fetched}
            return {eid: SchemaFetch.failure(eid, str(exc)) for eid in batch}

        try:
            page = self._parse_page(body, what)
        except FalApiError as exc:
            return {eid: SchemaFetch.failure(eid, str(exc)) for eid in batch}
        results: dict[str, SchemaFetch] = {}
        fallbacks: list[str] = []
        for item in page.models:
            if item.endpoint_id not in batch:
                continue
            document = item.openapi
            if _is_openapi_document(document):
                found = SchemaFetch.found(item.endpoint_id, document, SchemaStatus.FETCHED)
                results[item.endpoint_id] = found
            else:
                fallbacks.append(item.endpoint_id)
        fallbacks.extend(eid for eid in batch if eid not in results and eid not in fallbacks)
        if fallbacks:
            fetched = await asyncio.gather(*(self.fetch_queue_openapi(eid) for eid in fallbacks))
            results.update({fetch.endpoint_id: fetch for fetch in fetched})
        return results

    async def fetch_queue_openapi(self, endpoint_id: str) -> SchemaFetch:
        """The per-endpoint queue document: the fallback when schema expansion fails."""
        try:
            body = await self._request(
                "GET",
                self.settings.openapi_url,
                what=f"queue schema of {endpoint_id}",
                params=[("endpoint_id", endpoint_id)],
                authorized=False,
                kind="schemas",
            )
        except FalApiError as exc:
            if exc.status_code == 404:
                return SchemaFetch(endpoint_id, SchemaStatus.MISSING)
            return SchemaFetch.failure(endpoint_id, str(exc))
        if not _is_openapi_document(body):
            return SchemaFetch.failure(
                endpoint_id, f"queue schema of {endpoint_id} is not an OpenAPI document"
            )
        return SchemaFetch.found(endpoint_id, body, SchemaStatus.FALLBACK)

    # -- prices -------------------------------------------------------------------------------------

    async def fetch_prices(
        self,
        endpoint_ids: Sequence[str],
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, PriceFetch]:
        """Prices by batches of at most 50 ids. Needs the key.

        fal fails a whole batch with 404 when one id is unknown to it; such a batch is bisected so that
        one bad id never costs the other prices.
        """
        if not self.has_key:
            raise FalApiError("pricing needs an API key and none is set", request="fal GET /models/pricing")
        results: dict[str, PriceFetch] = {}

        async def run(batch: list[str]) -> None:
            fetched = await self._fetch_price_batch(batch)
            results.update(fetched)
            if progress:
                progress(len(fetched))

        batches = _chunks(endpoint_ids, min(self.settings.price_batch_size, FAL_ID_LIMIT))
        await asyncio.gather(*(run(batch) for batch in batches))
        return results

    async def _fetch_price_batch(self, batch: list[str]) -> dict[str, PriceFetch]:
        what = (
            f"prices of {len(batch)} endpoints from {batch[0]}" if len(batch) > 1 else f"price of {batch[0]}"
        )
        try:
            body = await self._request(
                "GET",
                f"{self.settings.base_url}/models/pricing",
                what=what,
                params=[("endpoint_id", endpoint_id) for endpoint_id in batch],
                kind="prices",
            )
        except FalApiError as exc:
            if exc.status_code == 404:
                if len(batch) == 1:
                    return {batch[0]: PriceFetch(batch[0], PriceStatus.NOT_FOUND, error=str(exc))}
                middle = len(batch) // 2
                halves = await asyncio.gather(
                    self._fetch_price_batch(batch[:middle]), self._fetch_price_batch(batch[middle:])
                )
                return {**halves[0], **halves[1]}
            if exc.status_code in (401, 403):
                raise
            return {eid: PriceFetch(eid, PriceStatus.FAILED, error=str(exc)) for eid in batch}

        results: dict[str, PriceFetch] = {}
        try:
            page = FalPricesPage.model_validate(body)
        except ValidationError:
            error = f"{_describe('GET', '/models/pricing', what)}: the answer has no `prices` list"
            return {eid: PriceFetch(eid, PriceStatus.FAILED, error=error) for eid in batch}
        wanted = set(batch)
        for raw in page.prices:
            endpoint_id = raw.get("endpoint_id") if isinstance(raw, dict) else None
            if endpoint_id not in wanted:
                continue
            try:
                results[endpoint_id] = PriceFetch(
                    endpoint_id, PriceStatus.PRICED, FalPrice.model_validate(raw)
                )
            except ValidationError as exc:
                reason = "; ".join(err["msg"] for err in exc.errors())
                error = f"fal's price for {endpoint_id} is unusable: {reason}"
                results[endpoint_id] = PriceFetch(endpoint_id, PriceStatus.FAILED, error=error)
        for endpoint_id in batch:
            results.setdefault(endpoint_id, PriceFetch(endpoint_id, PriceStatus.NO_PRICE))
        return results

    # -- estimates ----------------------------------------------------------------------------------

    async def estimate(
        self,
        endpoints: dict[str, int | float | Decimal],
        *,
        estimate_type: str = "unit_price",
    ) -> FalEstimate:
        """`POST /models/pricing/estimate` for a few models on demand (fal allows about one a second).

        `estimate_type="unit_price"` takes billing-unit quantities; `"historical_api_price"` takes
        numbers of calls.
        """
        if estimate_type == "unit_price":
            body = {k: {"unit_quantity": float(v)} for k, v in endpoints.items()}
        elif estimate_type == "historical_api_price":
            body = {k: {"call_quantity": int(v)} for k, v in endpoints.items()}
        else:
            raise ValueError(f"unknown estimate_type {estimate_type!r}")
        answer = await self._request(
            "POST",
            f"{self.settings.base_url}/models/pricing/estimate",
            what=f"{estimate_type} estimate for {', '.join(endpoints)}",
            json_body={"estimate_type": estimate_type, "endpoints": body},
            limiter=self._estimate_rate,
            kind="estimate",
        )
        return FalEstimate.model_validate(answer)

    # -- usage and request counts ---------------------------------------------------------------------

    async def fetch_usage(self, start: date, end: date) -> FalUsageReport:
        """What fal billed per UTC day in [start, end), from `GET /models/usage` with the admin key.

        Pages are followed in order; a day split across two pages comes back as one bucket.
        """
        path = "/models/usage"
        if self._admin_key is None:
            raise FalUsageAccessError(_usage_access_message(None), request=f"fal GET {path}")
        params = [*_day_range_params(start, end), ("expand", "time_series")]
        buckets: dict[Any, FalUsageBucket] = {}
        pages = 0
        async for body, what in self._pages(path, params, f"usage {start}..{end}", self._admin_key, "usage"):
            pages += 1
            page = _parse(FalUsagePage, body, path, what)
            for bucket in page.time_series:
                merged = buckets.get(bucket.bucket)
                if merged is None:
                    buckets[bucket.bucket] = bucket
                else:
                    merged.results.extend(bucket.results)
        return FalUsageReport(buckets=sorted(buckets.values(), key=lambda b: b.bucket), pages=pages)

    async def fetch_request_counts(
        self, endpoint_ids: Sequence[str], start: date, end: date
    ) -> dict[str, int]:
        """Successful requests per endpoint over the UTC days [start, end), from `GET /models/analytics`:
        50 endpoints a request, the batches side by side within the limit on requests in flight.

        Asked with FAL_KEY, else with the admin key. Endpoints fal has no figures for are left out.
        """
        path = "/models/analytics"
        key = self._api_key or self._admin_key
        if key is None:
            raise FalUsageAccessError(
                "request counts need FAL_KEY or FAL_ADMIN_KEY and neither is set", request=f"fal GET {path}"
            )
        wanted = list(dict.fromkeys(endpoint_ids))
        counts: dict[str, int] = {}

        async def run(batch: list[str]) -> None:
            params = [("endpoint_id", endpoint_id) for endpoint_id in batch]
            params += _day_range_params(start, end)
            params += [("expand", "time_series"), *(("expand", metric) for metric in ANALYTICS_METRICS)]
            what = f"request counts {start}..{end} of {len(batch)} endpoints from {batch[0]}"
            asked = set(batch)
            async for body, page_what in self._pages(path, params, what, key, "analytics"):
                for bucket in _parse(FalAnalyticsPage, body, path, page_what).time_series:
                    for row in bucket.results:
                        if row.endpoint_id in asked and row.success_count is not None:
                            counts[row.endpoint_id] = counts.get(row.endpoint_id, 0) + row.success_count

        await asyncio.gather(*(run(batch) for batch in _chunks(wanted, FAL_ID_LIMIT)))
        return counts

    def _redacted(self, text: str) -> str:
        """`text` (an answer from fal) with any key this client holds blanked out, should fal echo one."""
        for key in (self._api_key, self._admin_key):
            if key is not None:
                text = text.replace(key.get_secret_value(), "[redacted]")
        return text

    async def _pages(
        self, path: str, params: list[tuple[str, str]], what: str, key: SecretStr, kind: str
    ) -> AsyncIterator[tuple[Any, str]]:
        """The answers of a cursor-paged request, one page after the other; 401/403 become
        `FalUsageAccessError`."""
        cursor: str | None = None
        page = 1
        while True:
            page_params = [*params, ("limit", str(self.settings.usage_page_size))]
            if cursor:
                page_params.append(("cursor", cursor))
            page_what = f"{what}, page {page}"
            try:
                body = await self._request(
                    "GET",
                    f"{self.settings.base_url}{path}",
                    what=page_what,
                    params=page_params,
                    key=key,
                    kind=kind,
                )
            except FalApiError as exc:
                if exc.status_code in (401, 403):
                    refusal = self._redacted(str(exc).removeprefix(f"{exc.request}: "))
                    named = "FAL_ADMIN_KEY" if key is self._admin_key else "FAL_KEY"
                    message = (
                        _usage_access_message(refusal)
                        if kind == "usage"
                        else f"{refusal} — fal refused {named} for request counts"
                    )
                    raise FalUsageAccessError(
                        message,
                        request=f"fal GET {path}",
                        status_code=exc.status_code,
                        error_type=exc.error_type,
                    ) from None
                raise
            yield body, page_what
            if not (isinstance(body, dict) and body.get("has_more") is True):
                return
            next_cursor = body.get("next_cursor")
            if not isinstance(next_cursor, str) or not next_cursor:
                raise FalApiError("has_more without a next_cursor", request=f"fal GET {path} ({page_what})")
            if next_cursor == cursor:
                raise FalApiError("the cursor did not advance", request=f"fal GET {path} ({page_what})")
            cursor = next_cursor
            page += 1


class _Pages:
    """The items of a list as its pages arrive, each endpoint once; new ones are handed to `on_page`."""

    def __init__(self, on_page: Callable[[list[FalModelItem]], None] | None) -> None:
        self._merged: dict[str, FalModelItem] = {}
        self._on_page = on_page

    def collect(self, items: list[FalModelItem]) -> None:
        new = [item for item in items if item.endpoint_id not in self._merged]
        for item in new:
            self._merged[item.endpoint_id] = item
        if self._on_page is not None and new:
            self._on_page(new)

    def items(self) -> list[FalModelItem]:
        return list(self._merged.values())


def _secret(key: SecretStr | str | None) -> SecretStr | None:
    if isinstance(key, str):
        return SecretStr(key) if key.strip() else None
    if key is not None and not key.get_secret_value().strip():
        return None
    return key


def _day_range_params(start: date, end: date) -> list[tuple[str, str]]:
    """UTC day buckets over [start, end): fal's `end` is exclusive."""
    if end <= start:
        raise ValueError(f"the end day {end} must come after the start day {start} (end is exclusive)")
    return [
        ("timeframe", "day"),
        ("start", start.isoformat()),
        ("end", end.isoformat()),
        ("timezone", "UTC"),
    ]


def _usage_access_message(refusal: str | None) -> str:
    advice = (
        f"FAL_ADMIN_KEY is missing or lacks the usage permission ({USAGE_PERMISSION}); reading usage "
        "needs an ADMIN key that has it"
    )
    return advice if refusal is None else f"{refusal} — {advice}"


def _parse(model: type[Page], body: Any, path: str, what: str) -> Page:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the answer"
        raise FalApiError(
            f"the answer is not in fal's shape ({where}: {first['msg']}; {exc.error_count()} problems)",
            request=f"fal GET {path} ({what})",
            error_type="invalid_answer",
        ) from None


def _chunks(items: Iterable[str], size: int) -> list[list[str]]:
    items = list(items)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _named_cap(message: str) -> int | None:
    match = re.search(r"(?:at most|maximum(?: of)?|up to|max(?:imum)?[: ]+)\s*(\d+)", message, re.IGNORECASE)
    return int(match.group(1)) if match else None


def _lenient_json(response: httpx.Response) -> Any:
    """What orjson refuses but the json module reads (a lone surrogate escaped in one name), with every
    string made valid UTF-8, so that one bad name cannot stop a whole page; None when it is not JSON
    (invalid UTF-8 bytes included)."""
    try:
        return _valid_text(json.loads(response.content.decode("utf-8")))
    except (ValueError, RecursionError):
        return None


def _valid_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", errors="replace").decode("utf-8")
    if isinstance(value, list):
        return [_valid_text(item) for item in value]
    if isinstance(value, dict):
        return {_valid_text(key): _valid_text(item) for key, item in value.items()}
    return value


def _is_openapi_document(document: Any) -> bool:
    return isinstance(document, dict) and "error" not in document and "paths" in document
