"""The values the catalog assets hand to one another (stored as JSON by `JsonAssetIOManager`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from genfeed_pipeline.fal.catalog import DataSource
from genfeed_pipeline.mapping.model import GenFeedModel
from genfeed_pipeline.pricing import PricedModel
from genfeed_pipeline.sync.completeness import Completeness
from genfeed_pipeline.sync.review import SchemaReview


def count_by_type(models: Iterable[GenFeedModel]) -> dict[str, int]:
    """Models per GenFeed type ("unknown" where nothing says what a model makes), largest first."""
    counts = Counter(model.category.value if model.category else "unknown" for model in models)
    return dict(counts.most_common())


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
    notes: list[str] = field(default_factory=list)  # discovery's notes (fallbacks, failed fetches)

    def count_valid(self) -> int:
        return sum(1 for model in self.models.values() if model.valid)

    def count_priced(self) -> int:
        return sum(1 for model in self.models.values() if model.priced)

    def count_by_type(self) -> dict[str, int]:
        return count_by_type(model.model for model in self.models.values())


@dataclass(frozen=True)
class SyncedChange:
    endpoint_id: str
    action: str
    columns: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass
class SyncSummary:
    """Value of `models_table`: what the sync did (or, in a dry run, would do), and what the run's priced
    catalog held, so that a run's summary (`genfeed-catalog refresh`) reads this one small value."""

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
    deployment: str = ""
    valid: int = 0  # of endpoints_seen, models that can be used
    priced: int = 0  # of endpoints_seen, models with a fal cost per call
    by_type: dict[str, int] = field(default_factory=dict)  # GenFeed type → models, largest first
    notes: list[str] = field(default_factory=list)  # discovery's notes (fallbacks, failed fetches)
