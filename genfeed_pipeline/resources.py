"""Dagster resources: every external system the assets touch, configured, never hard-wired.

`FalApiResource` and `FalSnapshotResource` are sibling implementations of one interface
(`FalCatalogResource`): the assets ask for "fal's catalog" and do not know whether it comes from fal,
the cache or the bundled snapshot.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg
from pydantic import Field, SecretStr

from genfeed_pipeline.fal.cache import FalCache
from genfeed_pipeline.fal.client import DEFAULT_API_BASE_URL, DEFAULT_OPENAPI_URL, FalClientSettings
from genfeed_pipeline.fal.source import CatalogSource, LiveCatalogSource, OfflineCatalogSource


class FalCatalogResource(dg.ConfigurableResource, ABC):
    """fal's catalog as the assets see it."""

    cache_path: str = Field(description="SQLite file holding fal's last answers (list, prices, schemas).")

    @abstractmethod
    def catalog_source(self, logger: logging.Logger | None = None) -> CatalogSource: ...

    def cache(self) -> FalCache:
        return FalCache(Path(self.cache_path))


class FalApiResource(FalCatalogResource):
    """fal's Platform API, live; falls back to the cache or the snapshot when fal is unreachable."""

    api_key: str | None = Field(
        default=None, description="fal API key, bound from FAL_KEY (or FAL_API_KEY); optional."
    )
    base_url: str = DEFAULT_API_BASE_URL
    openapi_url: str = DEFAULT_OPENAPI_URL
    list_page_size: int = 1000
    schema_batch_size: int = Field(10, description="Ids per schema request; fal caps expanded pages.")
    price_batch_size: int = Field(50, description="Ids per pricing request (fal allows 50).")
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


class FalSnapshotResource(FalCatalogResource):
    """Never touches the network: the newest cache, else the snapshot bundled with the package."""

    reason: str = "GENFEED_OFFLINE is set"

    def catalog_source(self, logger: logging.Logger | None = None) -> CatalogSource:
        return OfflineCatalogSource(self.cache(), self.reason, logger)
