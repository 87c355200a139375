"""The values the catalog assets hand to one another (stored as JSON by `JsonAssetIOManager`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from genfeed_pipeline.fal.catalog import DataSource
from genfeed_pipeline.mapping.model import GenFeedModel
from genfeed_pipeline.pricing import PricedModel
from genfeed_pipeline.sync.completeness import Completeness
from genfeed_pipeline.sync.review import SchemaReview


@dataclass
class MappedCatalog:
    """Value of `genfeed_models`."""

    source: DataSource
    as_of: datetime
    models: dict[str, GenFeedModel]
    requested_endpoint_ids: list[str] | None = None
    review: SchemaReview = field(default_factory=SchemaReview)  # against the schemas accepted in the table


@dataclass
class PricedCatalog:
    """Value of `priced_models`."""

    source: DataSource
    as_of: datetime
    deployment: str
    models: dict[str, PricedModel]
    requested_endpoint_ids: list[str] | None = None
    held: dict[str, str] = field(default_factory=dict)  # endpoint_id → review reason, from the review
    completeness: Completeness | None = None  # the run's verdict on fal's list, carried to the sync


@dataclass(frozen=True)
class SyncedChange:
    endpoint_id: str
    action: str
    columns: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass
class SyncSummary:
    """Value of `models_table`: what the sync did (or, in a dry run, would do)."""

    mode: str
    written: bool
    source: DataSource
    as_of: datetime
    endpoints_seen: int
    new: int
    changed: int
    removed: int
    unchanged: int
    held: int
    failed: int
    sync_run_id: int | None
    table_rows: int = 0
    table_enabled: int = 0
    changes: list[SyncedChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    held_models: dict[str, str] = field(default_factory=dict)  # endpoint_id → review reason
