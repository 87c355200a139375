"""Where a run's view of fal's catalog comes from: fal itself, the local cache, or the bundled snapshot.

`LiveCatalogSource` talks to fal and writes every successful answer to the cache; when fal cannot be
reached it falls back to the newest cache, else the snapshot, and says so. `OfflineCatalogSource` never
touches the network. Both give the same two values: a `CatalogListing` and a `SchemaSet`.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from pydantic import SecretStr

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
    utc_now,
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


def describe_age(as_of: datetime | None, now: datetime | None = None) -> str:
    if as_of is None:
        return "unknown age"
    seconds = max(0, int(((now or utc_now()) - as_of).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min old"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h old"
    return f"{seconds // 86400} days old"


class CatalogSource(ABC):
    """The interface the assets use; implementations differ only in where the answers come from."""

    def __init__(self, cache: FalCache, logger: logging.Logger | None = None) -> None:
        self.cache = cache
        self.log = logger or log

    @abstractmethod
    def load_listing(self, endpoint_ids: Sequence[str] | None = None) -> CatalogListing: ...

    @abstractmethod
    def load_schemas(self, listing: CatalogListing, *, full_refresh: bool = False) -> SchemaSet: ...

    def discover(
        self, endpoint_ids: Sequence[str] | None = None, *, full_refresh: bool = False
    ) -> tuple[CatalogListing, SchemaSet]:
        """The list (with prices) and the schemas in one go."""
        listing = self.load_listing(endpoint_ids)
        return listing, self.load_schemas(listing, full_refresh=full_refresh)

    # -- offline answers, shared by both implementations ------------------------------------------

    def _snapshot(self) -> CatalogSnapshot:
        return load_snapshot()

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

    def load_listing(self, endpoint_ids: Sequence[str] | None = None) -> CatalogListing:
        return self.offline_listing(endpoint_ids, self.reason)

    def load_schemas(self, listing: CatalogListing, *, full_refresh: bool = False) -> SchemaSet:
        return self.offline_schemas(listing)


class LiveCatalogSource(CatalogSource):
    """fal's Platform API, with the cache written after every successful fetch."""

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

    def _client(self) -> FalPlatformClient:
        return FalPlatformClient(self.settings, self._api_key)

    # -- list + prices ------------------------------------------------------------------------------

    def load_listing(self, endpoint_ids: Sequence[str] | None = None) -> CatalogListing:
        async def listing_with_prices() -> CatalogListing:
            async with self._client() as fal:
                listing = await self._list(fal, endpoint_ids)
                if listing.source == DataSource.LIVE and listing.complete:
                    await self._attach_prices(fal, listing)
                listing.http_requests = fal.requests_sent
                return listing

        return run_sync(listing_with_prices)

    def discover(
        self, endpoint_ids: Sequence[str] | None = None, *, full_refresh: bool = False
    ) -> tuple[CatalogListing, SchemaSet]:
        """One client for the whole discovery: the list first, then prices and schemas side by side,
        sharing the limit on requests in flight (the fewest round trips a discovery can take)."""

        async def discover_all() -> tuple[CatalogListing, SchemaSet]:
            async with self._client() as fal:
                fanout = (
                    _PageFanOut(fal, self.cache, full_refresh, self.log) if endpoint_ids is None else None
                )
                listing = await self._list(fal, endpoint_ids, on_page=fanout.on_page if fanout else None)
                if listing.source != DataSource.LIVE or not listing.complete:
                    if fanout is not None:
                        await fanout.cancel()
                    if listing.source != DataSource.LIVE:
                        return listing, self.offline_schemas(listing)
                    listing.http_requests = fal.requests_sent
                    return listing, SchemaSet(DataSource.LIVE, listing.as_of, {}, notes=list(listing.notes))
                _, schemas = await asyncio.gather(
                    self._attach_prices(fal, listing, fanout.prices() if fanout else None),
                    self._schemas(fal, listing, full_refresh, fanout.schemas() if fanout else None),
                )
                counts = fal.requests_by_kind
                listing.http_requests = counts["list"] + counts["prices"]
                schemas.http_requests = counts["schemas"]
                return listing, schemas

        return run_sync(discover_all)

    async def _list(
        self,
        fal: FalPlatformClient,
        endpoint_ids: Sequence[str] | None,
        on_page: Callable[[list[FalModelItem]], None] | None = None,
    ) -> CatalogListing:
        """fal's list without prices; the cache or snapshot when fal is unreachable."""
        started = utc_now()
        requested = list(endpoint_ids) if endpoint_ids is not None else None
        try:
            if endpoint_ids is None:
                items = await fal.list_models(on_page=on_page)
            else:
                items = await fal.find_models(endpoint_ids)
        except FalUnreachableError as exc:
            return self.offline_listing(endpoint_ids, f"fal is unreachable ({exc})")
        except FalApiError as exc:
            self.log.error("fal's model list failed: %s", exc)
            return CatalogListing(
                source=DataSource.LIVE,
                as_of=started,
                endpoints={},
                prices={},
                price_source=DataSource.LIVE,
                price_as_of=None,
                complete=False,
                list_errors=[str(exc)],
                requested_endpoint_ids=requested,
                http_requests=fal.requests_sent,
            )
        endpoints = {item.endpoint_id: FalEndpoint(item.endpoint_id, item.metadata_dict()) for item in items}
        self.log.info("fal lists %d endpoints (%d requests)", len(endpoints), fal.requests_sent)
        previous = self.cache.listed_ids() if endpoint_ids is None else set()
        self.cache.save_listing(endpoints.values(), started, complete=endpoint_ids is None)
        return CatalogListing(
            new_since_last=sorted(set(endpoints) - previous) if previous else [],
            gone_since_last=sorted(previous - set(endpoints)),
            source=DataSource.LIVE,
            as_of=started,
            endpoints=endpoints,
            prices={},
            price_source=DataSource.LIVE,
            price_as_of=None,
            requested_endpoint_ids=requested,
        )

    async def _attach_prices(
        self,
        fal: FalPlatformClient,
        listing: CatalogListing,
        prefetched: Awaitable[dict[str, PriceFetch]] | None = None,
    ) -> None:
        prices, price_source, price_as_of, notes = await self._prices(
            fal, list(listing.endpoints), prefetched
        )
        listing.prices = prices
        listing.price_source = price_source
        listing.price_as_of = price_as_of
        listing.notes.extend(notes)

    async def _prices(
        self,
        fal: FalPlatformClient,
        endpoint_ids: list[str],
        prefetched: Awaitable[dict[str, PriceFetch]] | None = None,
    ) -> tuple[dict[str, PriceLookup], DataSource, datetime | None, list[str]]:
        if not fal.has_key:
            reason = "FAL_KEY is not set, so fal's pricing API cannot be asked"
            return self._fallback_prices(endpoint_ids, reason)
        seen_at = utc_now()
        progress = ProgressLog("prices", len(endpoint_ids), self.settings.progress_interval_seconds, self.log)
        try:
            fetched = await (
                prefetched if prefetched is not None else fal.fetch_prices(endpoint_ids, progress)
            )
        except FalApiError as exc:
            return self._fallback_prices(endpoint_ids, f"fal's pricing API refused the key ({exc})")
        if prefetched is None:
            progress.finish()
        lookups: dict[str, PriceLookup] = {}
        quotes: list[PriceQuote] = []
        for endpoint_id in endpoint_ids:
            result = fetched[endpoint_id]
            if result.price is not None:
                quote = PriceQuote(
                    endpoint_id=endpoint_id,
                    unit_price=result.price.unit_price,
                    unit=result.price.unit,
                    currency=result.price.currency,
                    source=DataSource.LIVE,
                    seen_at=seen_at,
                )
                quotes.append(quote)
                lookups[endpoint_id] = PriceLookup(PriceStatus.PRICED, quote)
            else:
                lookups[endpoint_id] = PriceLookup(result.status, error=result.error)
        self.cache.save_prices(quotes)
        failed = sum(1 for lookup in lookups.values() if lookup.status == PriceStatus.FAILED)
        notes = [f"{failed} price fetches failed; those models keep their last good price"] if failed else []
        return lookups, DataSource.LIVE, seen_at, notes

    def _fallback_prices(
        self, endpoint_ids: list[str], reason: str
    ) -> tuple[dict[str, PriceLookup], DataSource, datetime | None, list[str]]:
        lookups, as_of, source = self.offline_prices(endpoint_ids)
        note = f"{reason}: prices come from the {source.value} ({describe_age(as_of)})"
        self.log.warning(note)
        return lookups, source, as_of, [note]

    # -- schemas ------------------------------------------------------------------------------------

    def load_schemas(self, listing: CatalogListing, *, full_refresh: bool = False) -> SchemaSet:
        if listing.source != DataSource.LIVE:
            return self.offline_schemas(listing)

        async def schemas_only() -> SchemaSet:
            async with self._client() as fal:
                schemas = await self._schemas(fal, listing, full_refresh)
                schemas.http_requests = fal.requests_sent
                return schemas

        return run_sync(schemas_only)

    async def _schemas(
        self,
        fal: FalPlatformClient,
        listing: CatalogListing,
        full_refresh: bool,
        prefetched: Awaitable[dict[str, SchemaFetch]] | None = None,
    ) -> SchemaSet:
        started = utc_now()
        cached_versions = {} if full_refresh else self.cache.schema_versions()
        stale = [
            endpoint_id
            for endpoint_id, endpoint in listing.endpoints.items()
            if is_stale(endpoint, cached_versions, full_refresh)
        ]
        stale_set = set(stale)
        unchanged = [endpoint_id for endpoint_id in listing.endpoints if endpoint_id not in stale_set]
        self.log.info(
            "schemas: %d to fetch, %d unchanged since their last fetch%s",
            len(stale),
            len(unchanged),
            " (full refresh)" if full_refresh else "",
        )
        progress = ProgressLog("schemas", len(stale), self.settings.progress_interval_seconds, self.log)
        if prefetched is not None:
            fetched = await prefetched
        else:
            fetched = await fal.fetch_openapi(stale, progress) if stale else {}
            progress.finish()

        records = {
            endpoint_id: SchemaRecord(
                endpoint_id,
                SchemaStatus.REUSED,
                record.document_json,
                record.version,
                record.fetched_at,
                DataSource.CACHE,
            )
            if record.status != SchemaStatus.MISSING
            else record
            for endpoint_id, record in self.cache.load_schemas(unchanged).items()
        }
        fresh: list[SchemaRecord] = []
        failed: list[str] = []
        last_good = self.cache.load_schemas([eid for eid in stale if fetched[eid].failed])
        for endpoint_id in stale:
            outcome = fetched[endpoint_id]
            version = listing.endpoints[endpoint_id].version
            if outcome.document_json is not None:
                record = SchemaRecord(
                    endpoint_id, outcome.status, outcome.document_json, version, started, DataSource.LIVE
                )
                fresh.append(record)
            elif outcome.failed:
                failed.append(endpoint_id)
                previous = last_good.get(endpoint_id)
                record = SchemaRecord(
                    endpoint_id,
                    SchemaStatus.FAILED,
                    previous.document_json if previous else None,
                    previous.version if previous else None,
                    previous.fetched_at if previous else None,
                    DataSource.CACHE if previous else DataSource.LIVE,
                    error=outcome.error,
                )
            else:
                record = SchemaRecord(
                    endpoint_id, SchemaStatus.MISSING, None, version, started, DataSource.LIVE
                )
                fresh.append(record)
            records[endpoint_id] = record
        self.cache.save_schemas(fresh)
        notes = []
        if failed:
            notes.append(f"{len(failed)} schema fetches failed; their last good documents are kept")
        return SchemaSet(
            source=DataSource.LIVE,
            as_of=started,
            records={eid: records[eid] for eid in listing.endpoints if eid in records},
            notes=notes,
        )


def is_stale(endpoint: FalEndpoint, cached_versions: dict[str, str | None], full_refresh: bool) -> bool:
    """Whether the endpoint's schema must be fetched: a full refresh, never fetched, or a new version."""
    return (
        full_refresh
        or endpoint.endpoint_id not in cached_versions
        or cached_versions[endpoint.endpoint_id] != endpoint.version
    )


class _PageFanOut:
    """Starts the price and schema fetches of each list page as soon as the page arrives."""

    def __init__(
        self, fal: FalPlatformClient, cache: FalCache, full_refresh: bool, logger: logging.Logger
    ) -> None:
        self.fal = fal
        self.full_refresh = full_refresh
        interval = fal.settings.progress_interval_seconds
        self.price_progress = ProgressLog("prices fetched", 0, interval, logger)
        self.schema_progress = ProgressLog("schemas fetched", 0, interval, logger)
        self.cached_versions = {} if full_refresh else cache.schema_versions()
        self.price_tasks: list[asyncio.Task[dict[str, PriceFetch]]] = []
        self.schema_tasks: list[asyncio.Task[dict[str, SchemaFetch]]] = []

    def on_page(self, items: list[FalModelItem]) -> None:
        endpoints = [FalEndpoint(item.endpoint_id, item.metadata_dict()) for item in items]
        if self.fal.has_key:
            ids = [endpoint.endpoint_id for endpoint in endpoints]
            self.price_progress.total += len(ids)
            self.price_tasks.append(asyncio.ensure_future(self.fal.fetch_prices(ids, self.price_progress)))
        stale = [e.endpoint_id for e in endpoints if is_stale(e, self.cached_versions, self.full_refresh)]
        if stale:
            self.schema_progress.total += len(stale)
            self.schema_tasks.append(
                asyncio.ensure_future(self.fal.fetch_openapi(stale, self.schema_progress))
            )

    async def prices(self) -> dict[str, PriceFetch]:
        merged: dict[str, PriceFetch] = {}
        for part in await asyncio.gather(*self.price_tasks):
            merged.update(part)
        self.price_progress.finish()
        return merged

    async def schemas(self) -> dict[str, SchemaFetch]:
        merged: dict[str, SchemaFetch] = {}
        for part in await asyncio.gather(*self.schema_tasks):
            merged.update(part)
        self.schema_progress.finish()
        return merged

    async def cancel(self) -> None:
        tasks = [*self.price_tasks, *self.schema_tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
