"""Dagster resources: every external system the assets touch, configured, never hard-wired.

`FalApiResource` and `FalSnapshotResource` are sibling implementations of one interface
(`FalCatalogResource`): the assets ask for "fal's catalog" and do not know whether it comes from fal,
the cache or the bundled snapshot.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from pydantic import Field, SecretStr

from genfeed_pipeline.alerts.webhook import WebhookSender
from genfeed_pipeline.clock import utc_now
from genfeed_pipeline.db.engine import create_catalog_engine
from genfeed_pipeline.fal.cache import FalCache
from genfeed_pipeline.fal.client import DEFAULT_API_BASE_URL, DEFAULT_OPENAPI_URL, FalClientSettings
from genfeed_pipeline.fal.source import CatalogSource, LiveCatalogSource, OfflineCatalogSource
from genfeed_pipeline.fal.usage_source import LiveUsageSource, UnavailableUsage, UsageSource
from genfeed_pipeline.pricing import PricingPolicy
from genfeed_pipeline.settings import Deployment
from genfeed_pipeline.sync.store import CatalogStore


class FalCatalogResource(dg.ConfigurableResource, ABC):
    """fal's catalog as the assets see it."""

    cache_path: str = Field(description="SQLite file holding fal's last answers (list, prices, schemas).")

    @abstractmethod
    def catalog_source(self, logger: logging.Logger | None = None) -> CatalogSource: ...

    @abstractmethod
    def usage_source(self) -> UsageSource:
        """Where a day of fal's bill comes from (it needs fal's admin key)."""

    def cache(self) -> FalCache:
        return FalCache(Path(self.cache_path))


class FalApiResource(FalCatalogResource):
    """fal's Platform API, live; falls back to the cache or the snapshot when fal is unreachable."""

    api_key: str | None = Field(
        default=None, description="fal API key, bound from FAL_KEY (or FAL_API_KEY); optional."
    )
    admin_key: str | None = Field(
        default=None,
        description="fal ADMIN key, bound from FAL_ADMIN_KEY; optional. Reads usage (billing:usage:read).",
    )
    base_url: str = DEFAULT_API_BASE_URL
    openapi_url: str = DEFAULT_OPENAPI_URL
    list_page_size: int = 1000
    schema_batch_size: int = Field(10, description="Ids per schema request; fal caps expanded pages.")
    price_batch_size: int = Field(50, description="Ids per pricing request (fal allows 50).")
    usage_page_size: int = Field(1000, description="Items asked per usage or analytics page.")
    max_in_flight: int = Field(8, description="Requests to fal in flight at once.")
    max_requests_per_second: float = 100.0
    timeout_seconds: float = 30.0
    max_attempts: int = 5
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0

    def client_settings(self) -> FalClientSettings:
        return FalClientSettings(
            base_url=self.base_url.rstrip("/"),
            openapi_url=self.openapi_url,
            list_page_size=self.list_page_size,
            schema_batch_size=self.schema_batch_size,
            price_batch_size=self.price_batch_size,
            usage_page_size=self.usage_page_size,
            max_in_flight=self.max_in_flight,
            max_requests_per_second=self.max_requests_per_second,
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            backoff_initial_seconds=self.backoff_initial_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
        )

    def catalog_source(self, logger: logging.Logger | None = None) -> CatalogSource:
        key = SecretStr(self.api_key) if self.api_key and self.api_key.strip() else None
        return LiveCatalogSource(self.client_settings(), key, self.cache(), logger)

    def usage_source(self) -> UsageSource:
        if not (self.admin_key and self.admin_key.strip()):
            return UnavailableUsage("FAL_ADMIN_KEY is not set: fal's usage needs an admin key")
        key = SecretStr(self.api_key) if self.api_key and self.api_key.strip() else None
        return LiveUsageSource(self.client_settings(), key, SecretStr(self.admin_key))


class FalSnapshotResource(FalCatalogResource):
    """Never touches the network: the newest cache, else the snapshot bundled with the package."""

    reason: str = "GENFEED_OFFLINE is set"

    def catalog_source(self, logger: logging.Logger | None = None) -> CatalogSource:
        return OfflineCatalogSource(self.cache(), self.reason, logger)

    def usage_source(self) -> UsageSource:
        return UnavailableUsage(f"offline ({self.reason}): fal's usage is read from fal only")


class CatalogDatabase(dg.ConfigurableResource):
    """GenFeed's database holding the `models` table (SQLite by default, PostgreSQL in production)."""

    url: str = Field(description="SQLAlchemy URL, from GENFEED_DATABASE_URL when set.")

    def engine(self) -> sa.Engine:
        return _engine_for(self.url)

    def store(self) -> CatalogStore:
        return CatalogStore(self.engine())


class CatalogMigrations(CatalogDatabase):
    """The same database, its catalog tables brought up to date when a job that writes them starts.

    Required by the steps that write the catalog (the sync, the usage tables); Dagster sets it up before
    the run's first step, so the run's reads and checks already see the migrated tables. Reads, checks and
    the admin jobs never migrate: `genfeed-catalog migrate` does, and this.
    """

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        revision = self.store().migrate()
        if context.log is not None:
            context.log.info("catalog tables at revision %s", revision)


@lru_cache(maxsize=8)
def _engine_for(url: str) -> sa.Engine:
    return create_catalog_engine(url)


class PricingPolicyResource(dg.ConfigurableResource):
    """How GenFeed prices fal models in this deployment: cloud keeps a margin, core charges fal's cost."""

    deployment: str = Field("cloud", description="cloud | core")
    margin: str = Field("0.70", description="gross margin kept in cloud: price = cost ÷ (1 - margin)")
    floor: str = Field("0.001", description="lowest cloud price per call, USD")
    call_step: str = Field("0.0001", description="per-call prices are rounded up to this step, USD")
    unit_step: str = Field("0.000001", description="per-unit resale prices are rounded up to this step")

    def policy(self) -> PricingPolicy:
        return PricingPolicy(
            deployment=Deployment(self.deployment),
            margin=Decimal(self.margin),
            floor=Decimal(self.floor),
            call_step=Decimal(self.call_step),
            unit_step=Decimal(self.unit_step),
        )


class CatalogCheckSettings(dg.ConfigurableResource):
    """Severity (WARN or ERROR) and thresholds of the catalog's asset checks."""

    completeness_severity: str = "ERROR"
    completeness_drop_threshold: float = Field(
        0.10, description="a list this share smaller than the last run's stops the sync"
    )
    breaking_schema_changes_severity: str = "WARN"
    pricing_drift_severity: str = "WARN"
    pricing_drift_threshold: str = Field("0.05", description="relative change that counts as drift")
    unique_endpoint_ids_severity: str = "ERROR"
    enabled_models_valid_and_priced_severity: str = "WARN"
    cloud_price_not_below_cost_severity: str = "ERROR"
    billed_unit_price_matches_catalog_severity: str = "WARN"
    realized_margin_below_target_severity: str = "WARN"

    def severity(self, check_name: str) -> dg.AssetCheckSeverity:
        value = str(getattr(self, f"{check_name}_severity")).strip().upper()
        if value not in ("WARN", "ERROR"):
            raise ValueError(f"catalog_checks.{check_name}_severity must be WARN or ERROR, not {value!r}")
        return dg.AssetCheckSeverity[value]


class WebhookResource(dg.ConfigurableResource):
    """Where alerts and change events go: signed JSON POSTs to GenFeed's webhook URLs (none: nothing sent)."""

    urls: str = Field("", description="comma-separated webhook URLs, from GENFEED_WEBHOOK_URLS")
    secret: str | None = Field(None, description="HMAC-SHA256 signing secret, from GENFEED_WEBHOOK_SECRET")
    max_attempts: int = 5
    backoff_initial_seconds: float = 0.5

    def sender(self) -> WebhookSender:
        urls = [url.strip() for url in self.urls.split(",") if url.strip()]
        return WebhookSender(
            urls,
            self.secret or None,
            max_attempts=self.max_attempts,
            backoff_initial_seconds=self.backoff_initial_seconds,
        )


class ClockResource(dg.ConfigurableResource):
    """The time sensors judge overdue assets by; `fixed_time` (ISO) pins it, for tests and drills."""

    fixed_time: str | None = None

    def now(self) -> datetime:
        if self.fixed_time:
            moment = datetime.fromisoformat(self.fixed_time)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return utc_now()
