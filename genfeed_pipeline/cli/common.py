"""What the reading and operating commands share: the catalog database they open, and the model filters."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from genfeed_pipeline.admin import AdminError, ModelFilter
from genfeed_pipeline.admin.filters import CATEGORIES, STATUSES
from genfeed_pipeline.settings import PipelineSettings
from genfeed_pipeline.sync.store import CatalogNotMigrated, CatalogStore, require_migrated

if TYPE_CHECKING:
    import dagster as dg


def dagster_instance() -> dg.DagsterInstance:
    """The Dagster instance of `DAGSTER_HOME` (so runs show in the UI), else a throw-away one."""
    import dagster as dg

    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


@contextmanager
def opened_store() -> Iterator[tuple[CatalogStore, PipelineSettings]]:
    """The catalog of `GENFEED_DATABASE_URL`, as migrated; a missing or unmigrated one is an `AdminError`
    that says to run `genfeed-catalog migrate`, and nothing is created."""
    from genfeed_pipeline.db.engine import create_catalog_engine

    settings = PipelineSettings.from_env()
    url = sa.make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        raise AdminError(
            f"there is no catalog database at {url.database}: run `genfeed-catalog migrate` first"
        )
    store = CatalogStore(create_catalog_engine(settings.database_url))
    try:
        with store.engine.connect() as connection:
            require_migrated(connection)
        yield store, settings
    except CatalogNotMigrated as error:
        raise AdminError(str(error)) from None
    finally:
        store.engine.dispose()


def add_filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters (every one given must hold)")
    group.add_argument("--type", choices=CATEGORIES, help="GenFeed type")
    group.add_argument("--fal-category", help="fal's category, e.g. text-to-image")
    group.add_argument("--owner", help="first segment of the endpoint id, e.g. fal-ai, bria")
    group.add_argument(
        "--capability",
        action="append",
        default=[],
        help="e.g. seed, lora, input:image (repeatable: all of them)",
    )
    group.add_argument("--min-price", help="price_per_call at least this, USD")
    group.add_argument("--max-price", help="price_per_call at most this, USD")
    group.add_argument("--status", choices=STATUSES)
    state = group.add_mutually_exclusive_group()
    state.add_argument("--enabled", dest="enabled", action="store_const", const=True, default=None)
    state.add_argument("--disabled", dest="enabled", action="store_const", const=False)
    group.add_argument("--held", action="store_const", const=True, default=None, help="held for review only")
    group.add_argument("--search", help="text in the id, name or description")


def model_filter(args: argparse.Namespace) -> ModelFilter:
    """The filters `add_filters` put on the command line."""
    return ModelFilter(
        category=args.type,
        fal_category=args.fal_category,
        owner=args.owner,
        min_price=args.min_price,
        max_price=args.max_price,
        status=args.status,
        capabilities=tuple(args.capability),
        enabled=args.enabled,
        held=args.held,
        search=args.search,
    )
