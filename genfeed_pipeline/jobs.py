"""The one job that refreshes the catalog; schedules and operators both run it."""

import dagster as dg

from genfeed_pipeline.assets.discovery import CATALOG_GROUP

REFRESH_TAGS = {"genfeed/pipeline": "catalog_refresh"}

refresh_fal_catalog = dg.define_asset_job(
    name="refresh_fal_catalog",
    selection=dg.AssetSelection.groups(CATALOG_GROUP),
    tags=REFRESH_TAGS,
    description=(
        "Discover fal's catalog and sync it into GenFeed's `models` table. Run config: "
        "`ops.discover_fal_catalog.config.endpoint_ids` refreshes chosen endpoints only; "
        "`ops.discover_fal_catalog.config.full_refresh` ignores the incremental skip; "
        "`ops.models_table.config.mode` is full, dry_run, pricing_only or existing_only."
    ),
)
