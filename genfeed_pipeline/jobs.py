"""The job that refreshes the catalog (schedules and operators both run it), and the daily usage job."""

import dagster as dg

from genfeed_pipeline.assets.discovery import CATALOG_GROUP
from genfeed_pipeline.assets.usage import USAGE_GROUP

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

USAGE_TAGS = {"genfeed/pipeline": "usage"}

refresh_fal_usage = dg.define_asset_job(
    name="refresh_fal_usage",
    selection=dg.AssetSelection.groups(USAGE_GROUP),
    tags=USAGE_TAGS,
    description=(
        "Read one UTC day of fal's bill into `model_usage_daily` and report that day's realized margins. "
        "Needs FAL_ADMIN_KEY; without it (or offline) the run materializes nothing and says why."
    ),
)
