"""Where a run's view of fal's catalog comes from: fal itself, the local cache, or the bundled snapshot.

Every source answers one call, `discover`, with the two values of the discovery step: a
`CatalogListing` (the list, with prices) and a `SchemaSet`. Given chosen endpoint ids, it refreshes
only those; with `full_refresh`, it fetches every schema again.

`LiveCatalogSource` talks to fal; when fal cannot be reached it falls back to the newest cache, else the
snapshot, and says so. `OfflineCatalogSource` never touches the network.

A live discovery reads and writes the cache only at its two edges. At the start: which endpoints the
last full list held, and the version of each cached schema, so that whether a schema is stale is decided
as each page of the list arrives. At the end, after the last answer from fal: the cached documents it
keeps (those of unchanged endpoints, and the last good one of a failed fetch), then everything fetched,
written in one transaction. Reading documents after the network rather than before means a full
refresh never holds an old document beside its replacement.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from pydantic import SecretStr

from genfeed_pipeline.clock import utc_now
from genfeed_pipeline.fal.cache import FalCache
from genfeed_pipeline.fal.catalog import (
    CatalogListing,
    DataSource,
    FalEndpoint,
    PriceLookup,
    PriceQuote,
    PriceStatus,
    SchemaRecord,
    SchemaSet,
    SchemaStatus,
)
from genfeed_pipeline.fal.client import (
    FalApiError,
    FalClientSettings,
    FalPlatformClient,
    FalUnreachableError,
    PriceFetch,
    SchemaFetch,
)
from genfeed_pipeline.fal.concurrency import ProgressLog, run_sync
from genfeed_pipeline.fal.models import FalModelItem
from genfeed_pipeline.fal.snapshot import CatalogSnapshot, load_snapshot

log = logging.getLogger(__name__)
T = TypeVar("T")


def describe_age(as_of: datetime | None, now: datetime | None = None) -> str:
    if as_of is None:
        return "unknown age"
    seconds = max(0, int(((now or utc_now()) - as_of).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min old"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h old"
    return f"{seconds // 86400} days old"


def is_stale(endpoint: FalEndpoint, cached_versions: dict[str, str | None], full_refresh: bool) -> bool:
    """Whether the endpoint's schema must be fetched: a full refresh, never fetched, or a new version."""
    return (
        full_refresh
        or endpoint.endpoint_id not in cached_versions
        or cached_versions[endpoint.endpoint_id] != endpoint.version
    )


@dataclass(frozen=True)
class EndpointPoll:
    """fal's list, ids only (no schemas, no prices): what the new-models sensor compares with the catalog.
    `endpoint_ids` is None when the list could not be read whole, and `failure` says why."""

    endpoint_ids: frozenset[str] | None
    requests: int = 0
    failure: str | None = None


class CatalogSource(ABC):
    """The interface the assets use; implementations differ only in where the answers come from."""

    def __init__(self, cache: FalCache, logger: logging.Logger | None = None) -> None:
        self.cache = cache
        self.log = logger or log

    @abstractmethod
    def discover(
        self, endpoint_ids: Sequence[str] | None = None, *, full_refresh: bool = False
    ) -> tuple[CatalogListing, SchemaSet]:
        """The list with prices, and the schemas; only `endpoint_ids` when given."""

    @abstractmethod
    def poll_endpoint_ids(self, deadline_seconds: float | None = None) -> EndpointPoll:
        """Every id fal lists (active and deprecated), and nothing else: the cheapest look at what is new;
        a failed poll when the list is not whole within `deadline_seconds`."""

    # -- offline answers, shared by both implementations ------------------------------------------

    def _snapshot(self) -> CatalogSnapshot:
        return load_snapshot()

    def offline_discovery(
        self, endpoint_ids: Sequence[str] | None, reason: str
    ) -> tuple[CatalogListing, SchemaSet]:
        listing = self.offline_listing(endpoint_ids, reason)
        return listing, self.offline_schemas(listing)

    def offline_listing(self, endpoint_ids: Sequence[str] | None, reason: str) -> CatalogListing:
        cached = self.cache.load_listing()
        if cached is not None:
            endpoints, as_of = cached
            source = DataSource.CACHE
        else:
            snapshot = self._snapshot()
            endpoints, as_of, source = snapshot.endpoints, snapshot.as_of, DataSource.SNAPSHOT
        if endpoint_ids is not None:
            wanted = set(endpoint_ids)
            endpoints = [e for e in endpoints if e.endpoint_id in wanted]
        prices, price_as_of, price_source = self.offline_prices([e.endpoint_id for e in endpoints])
        note = (
            f"{reason}: the catalog comes from the {source.value} ({describe_age(as_of)}, as of "
            f"{as_of:%Y-%m-%d %H:%M} UTC); nothing will be marked removed"
        )
        self.log.warning(note)
        return CatalogListing(
            source=source,
            as_of=as_of,
            endpoints={e.endpoint_id: e for e in endpoints},
            prices=prices,
            price_source=price_source,
            price_as_of=price_as_of,
            requested_endpoint_ids=list(endpoint_ids) if endpoint_ids is not None else None,
            notes=[note],
        )

    def offline_prices(
        self, endpoint_ids: Sequence[str]
    ) -> tuple[dict[str, PriceLookup], datetime | None, DataSource]:
        """Prices from the cache where it has them, else from the snapshot."""
        cached = self.cache.load_prices()
        snapshot_prices = self._snapshot().prices
        lookups: dict[str, PriceLookup] = {}
        newest: datetime | None = None
        for endpoint_id in endpoint_ids:
            quote = cached.get(endpoint_id) or snapshot_prices.get(endpoint_id)
            if quote is None:
                lookups[endpoint_id] = PriceLookup(PriceStatus.NO_PRICE)
                continue
            lookups[endpoint_id] = PriceLookup(PriceStatus.PRICED, quote)
            newest = quote.seen_at if newest is None else max(newest, quote.seen_at)
        source = DataSource.CACHE if any(eid in cached for eid in endpoint_ids) else DataSource.SNAPSHOT
        return lookups, newest, source

    def offline_schemas(self, listing: CatalogListing) -> SchemaSet:
        cached = self.cache.load_schemas(listing.endpoints)
        snapshot_documents = self._snapshot().documents
        records: dict[str, SchemaRecord] = {}
        for endpoint_id, endpoint in listing.endpoints.items():
            record = cached.get(endpoint_id)
            if record is not None and record.status != SchemaStatus.MISSING:
                records[endpoint_id] = record
            elif endpoint_id in snapshot_documents:
                records[endpoint_id] = SchemaRecord(
                    endpoint_id,
                    SchemaStatus.REUSED,
                    document_json=snapshot_documents[endpoint_id],
                    version=endpoint.version,
                    fetched_at=self._snapshot().as_of,
                    source=DataSource.SNAPSHOT,
                )
            else:
                records[endpoint_id] = SchemaRecord(
                    endpoint_id, SchemaStatus.MISSING, version=endpoint.version, source=listing.source
                )
        return SchemaSet(
            source=listing.source, as_of=listing.as_of, records=records, notes=list(listing.notes)
        )


class OfflineCatalogSource(CatalogSource):
    """Never touches the network: the newest cache, else the bundled snapshot."""

    def __init__(
        self, cache: FalCache, reason: str = "offline mode", logger: logging.Logger | None = None
    ) -> None:
        super().__init__(cache, logger)
        self.reason = reason

    def discover(
        self, endpoint_ids: Sequence[str] | None = None, *, full_refresh: bool = False
    ) -> tuple[CatalogListing, SchemaSet]:
        return self.offline_discovery(endpoint_ids, self.reason)

    def poll_endpoint_ids(self, deadline_seconds: float | None = None) -> EndpointPoll:
        return EndpointPoll(None, failure=f"offline ({self.reason}): fal's list is not read")


class LiveCatalogSource(CatalogSource):
    """fal's Platform API; every successful answer is kept in the cache for runs that cannot reach fal."""

    def __init__(
        self,
        settings: FalClientSettings,
        api_key: SecretStr | None,
        cache: FalCache,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(cache, logger)
        self.settings = settings
        self._api_key = api_key

    def discover(
        self, endpoint_ids: Sequence[str] | None = None, *, full_refresh: bool = False
    ) -> tuple[CatalogListing, SchemaSet]:
        """One client for the whole discovery, whose requests share one limit on requests in flight: the
        fewest round trips a discovery can take."""
        requested = list(endpoint_ids) if endpoint_ids is not None else None

        async def discover_live() -> tuple[CatalogListing, SchemaSet]:
            async with FalPlatformClient(self.settings, self._api_key) as fal:
                return await _LiveDiscovery(self, fal, requested, full_refresh).run()

        try:
            return run_sync(discover_live)
        except FalUnreachableError as exc:
            return self.offline_discovery(requested, f"fal is unreachable ({exc})")

    def poll_endpoint_ids(self, deadline_seconds: float | None = None) -> EndpointPoll:
        """A failing page fails the whole poll: a partial list would make known endpoints look new. With
        `deadline_seconds`, a list that takes longer (fal hanging, long Retry-After waits) fails the poll
        too, so that a caller with a time limit of its own (a sensor tick) can still say why."""

        async def list_ids() -> EndpointPoll:
            async with FalPlatformClient(self.settings, self._api_key) as fal:
                try:
                    items = await asyncio.wait_for(fal.list_models(), timeout=deadline_seconds)
                except FalApiError as exc:
                    return EndpointPoll(None, fal.requests_sent, f"fal's list failed: {exc}")
                except TimeoutError:
                    return EndpointPoll(
                        None,
                        fal.requests_sent,
                        f"fal's list failed: no whole answer within {deadline_seconds:g} s",
                    )
                return EndpointPoll(frozenset(item.endpoint_id for item in items), fal.requests_sent)

        return run_sync(list_ids)


@dataclass
class _Prices:
    """A discovery's prices, where they came from, and the live quotes to keep in the cache."""

    lookups: dict[str, PriceLookup]
    source: DataSource
    as_of: datetime | None
    notes: list[str] = field(default_factory=list)
    quotes: list[PriceQuote] = field(default_factory=list)


class _LiveDiscovery:
    """One live discovery: the cache read at the start, fal's list (or the chosen endpoints) with the
    price and schema requests of each page started as soon as the page arrives, while the next page is
    fetched, then the listing and schemas built from the answers and written to the cache at the end.

    Each endpoint is built, and judged stale or not, once: when its page arrives.
    """

    def __init__(
        self,
        source: LiveCatalogSource,
        fal: FalPlatformClient,
        requested: list[str] | None,
        full_refresh: bool,
    ) -> None:
        self.source = source
        self.fal = fal
        self.requested = requested
        self.full_refresh = full_refresh
        self.cache = source.cache
        self.log = source.log
        self.started = utc_now()
        self.listed_at = self.started
        # The start edge: which endpoints the last full list held, and which version each cached schema is of.
        self.previous_ids = self.cache.listed_ids() if requested is None else set()
        self.cached_versions = {} if full_refresh else self.cache.schema_versions()
        self.endpoints: dict[str, FalEndpoint] = {}
        self.stale: set[str] = set()
        interval = fal.settings.progress_interval_seconds
        self.price_progress = ProgressLog("prices fetched", 0, interval, self.log)
        self.schema_progress = ProgressLog("schemas fetched", 0, interval, self.log)
        self.price_tasks: list[asyncio.Future[dict[str, PriceFetch]]] = []
        self.schema_tasks: list[asyncio.Future[dict[str, SchemaFetch]]] = []

    def on_page(self, items: list[FalModelItem]) -> None:
        page = [FalEndpoint(item.endpoint_id, item.metadata_dict()) for item in items]
        self.endpoints.update((endpoint.endpoint_id, endpoint) for endpoint in page)
        if self.fal.has_key:
            ids = [endpoint.endpoint_id for endpoint in page]
            self.price_progress.total += len(ids)
            self.price_tasks.append(asyncio.ensure_future(self.fal.fetch_prices(ids, self.price_progress)))
        stale = [e.endpoint_id for e in page if is_stale(e, self.cached_versions, self.full_refresh)]
        if stale:
            self.stale.update(stale)
            self.schema_progress.total += len(stale)
            self.schema_tasks.append(
                asyncio.ensure_future(self.fal.fetch_openapi(stale, self.schema_progress))
            )

    async def run(self) -> tuple[CatalogListing, SchemaSet]:
        """Raises `FalUnreachableError` when fal could not be reached for the list."""
        try:
            if self.requested is None:
                await self.fal.list_models(on_page=self.on_page)
            else:
                await self.fal.find_models(self.requested, on_page=self.on_page)
        except FalApiError as exc:
            await self._cancel()
            if isinstance(exc, FalUnreachableError):
                raise
            return self._incomplete(exc)
        self.listed_at = utc_now()
        self.log.info("fal lists %d endpoints (%d requests)", len(self.endpoints), self.fal.requests_sent)
        self.log.info(
            "schemas: %d to fetch, %d unchanged since their last fetch%s",
            len(self.stale),
            len(self.endpoints) - len(self.stale),
            " (full refresh)" if self.full_refresh else "",
        )
        fetched_prices: dict[str, PriceFetch] = {}
        refused: FalApiError | None = None
        if self.fal.has_key:
            try:
                fetched_prices = await _merged(self.price_tasks, self.price_progress)
            except FalApiError as exc:
                refused = exc
        fetched_schemas = await _merged(self.schema_tasks, self.schema_progress)
        return self._finish(fetched_prices, refused, fetched_schemas)

    async def _cancel(self) -> None:
        tasks = [*self.price_tasks, *self.schema_tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _incomplete(self, error: FalApiError) -> tuple[CatalogListing, SchemaSet]:
        """A list page failed for good: no endpoint is trusted, and the cache is left as it was."""
        self.log.error("fal's model list failed: %s", error)
        listing = CatalogListing(
            source=DataSource.LIVE,
            as_of=self.started,
            endpoints={},
            prices={},
            price_source=DataSource.LIVE,
            price_as_of=None,
            complete=False,
            list_errors=[str(error)],
            requested_endpoint_ids=self.requested,
            http_requests=self.fal.requests_sent,
        )
        return listing, SchemaSet(DataSource.LIVE, self.started, {}, notes=list(listing.notes))

    # -- the end edge -------------------------------------------------------------------------------

    def _finish(
        self,
        fetched_prices: dict[str, PriceFetch],
        refused: FalApiError | None,
        fetched_schemas: dict[str, SchemaFetch],
    ) -> tuple[CatalogListing, SchemaSet]:
        ids = list(self.endpoints)
        if not self.fal.has_key:
            prices = self._fallback_prices(ids, "FAL_KEY is not set, so fal's pricing API cannot be asked")
        elif refused is not None:
            prices = self._fallback_prices(ids, f"fal's pricing API refused the key ({refused})")
        else:
            prices = self._live_prices(fetched_prices)
        schemas, fresh = self._schemas(fetched_schemas)
        self.cache.save_discovery(
            self.endpoints.values(),
            self.started,
            complete=self.requested is None,
            quotes=prices.quotes,
            schemas=fresh,
        )
        counts = self.fal.requests_by_kind
        listed = set(self.endpoints)
        listing = CatalogListing(
            source=DataSource.LIVE,
            as_of=self.started,
            endpoints=self.endpoints,
            prices=prices.lookups,
            price_source=prices.source,
            price_as_of=prices.as_of,
            requested_endpoint_ids=self.requested,
            notes=prices.notes,
            http_requests=counts["list"] + counts["prices"],
            new_since_last=sorted(listed - self.previous_ids) if self.previous_ids else [],
            gone_since_last=sorted(self.previous_ids - listed),
        )
        schemas.http_requests = counts["schemas"]
        return listing, schemas

    def _live_prices(self, fetched: dict[str, PriceFetch]) -> _Prices:
        seen_at = self.listed_at
        prices = _Prices({}, DataSource.LIVE, seen_at)
        for endpoint_id in self.endpoints:
            result = fetched[endpoint_id]
            quote = None
            if result.price is not None:
                quote = PriceQuote(
                    endpoint_id=endpoint_id,
                    unit_price=result.price.unit_price,
                    unit=result.price.unit,
                    currency=result.price.currency,
                    source=DataSource.LIVE,
                    seen_at=seen_at,
                )
                prices.quotes.append(quote)
            prices.lookups[endpoint_id] = PriceLookup(result.status, quote, result.error)
        failed = sum(1 for lookup in prices.lookups.values() if lookup.status == PriceStatus.FAILED)
        if failed:
            prices.notes.append(f"{failed} price fetches failed; those models keep their last good price")
        return prices

    def _fallback_prices(self, endpoint_ids: list[str], reason: str) -> _Prices:
        lookups, as_of, source = self.source.offline_prices(endpoint_ids)
        note = f"{reason}: prices come from the {source.value} ({describe_age(as_of)})"
        self.log.warning(note)
        return _Prices(lookups, source, as_of, [note])

    def _schemas(self, fetched: dict[str, SchemaFetch]) -> tuple[SchemaSet, list[SchemaRecord]]:
        """The schema set, and the fetched records to cache. An unchanged endpoint reuses its cached
        document; a failed fetch keeps the last good one."""
        kept = self.cache.load_schemas(
            [eid for eid in self.endpoints if eid not in self.stale or fetched[eid].failed]
        )
        records: dict[str, SchemaRecord] = {}
        fresh: list[SchemaRecord] = []
        failed = 0
        for endpoint_id, endpoint in self.endpoints.items():
            previous = kept.get(endpoint_id)
            if endpoint_id not in self.stale:
                if previous is not None:
                    reused = previous.status != SchemaStatus.MISSING
                    records[endpoint_id] = (
                        dataclasses.replace(previous, status=SchemaStatus.REUSED) if reused else previous
                    )
                continue
            outcome = fetched[endpoint_id]
            if outcome.failed:
                failed += 1
                records[endpoint_id] = SchemaRecord(
                    endpoint_id,
                    SchemaStatus.FAILED,
                    previous.document_json if previous else None,
                    previous.version if previous else None,
                    previous.fetched_at if previous else None,
                    DataSource.CACHE if previous else DataSource.LIVE,
                    error=outcome.error,
                )
                continue
            record = SchemaRecord(
                endpoint_id,
                outcome.status,
                outcome.document_json,
                endpoint.version,
                self.listed_at,
                DataSource.LIVE,
            )
            records[endpoint_id] = record
            fresh.append(record)
        notes = [f"{failed} schema fetches failed; their last good documents are kept"] if failed else []
        return SchemaSet(DataSource.LIVE, self.listed_at, records, notes=notes), fresh


async def _merged(tasks: list[asyncio.Future[dict[str, T]]], progress: ProgressLog) -> dict[str, T]:
    """The answers of every task, once all have ended; the first error, if any, raised after that."""
    merged: dict[str, T] = {}
    for part in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(part, BaseException):
            raise part
        merged.update(part)
    progress.finish()
    return merged
