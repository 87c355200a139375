"""Discovery: fal's model list (with prices) and every endpoint's OpenAPI document."""

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
from pydantic import Field

from genfeed_pipeline.assets.metadata import preview_table, source_metadata
from genfeed_pipeline.fal.catalog import CatalogListing, SchemaSet
from genfeed_pipeline.report import markdown
from genfeed_pipeline.resources import CatalogCheckSettings, CatalogDatabase, FalCatalogResource
from genfeed_pipeline.sync.completeness import judge_completeness

CATALOG_GROUP = "fal_catalog"
OWNERS = ["team:data"]
CATALOG_TAGS = {"domain": "model_catalog", "source": "fal"}
REFRESH_INTERVAL = timedelta(hours=6)
FRESHNESS_GRACE = timedelta(minutes=30)
# Refreshed every six hours; a catalog asset not updated within that plus a grace period is overdue.
CATALOG_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=REFRESH_INTERVAL + FRESHNESS_GRACE, warn_window=REFRESH_INTERVAL
)


class DiscoveryConfig(dg.Config):
    """A manual refresh (the catalog's backfill): chosen endpoints only, and/or every schema again."""

    endpoint_ids: list[str] = Field(
        default_factory=list,
        description="refresh only these endpoints; every other model is carried forward unchanged",
    )
    full_refresh: bool = Field(False, description="fetch every schema again, ignoring the incremental skip")


@dg.multi_asset(
    name="discover_fal_catalog",
    group_name=CATALOG_GROUP,
    can_subset=False,
    outs={
        "fal_model_list": dg.AssetOut(
            description="Every endpoint fal lists (active and deprecated), fal's metadata verbatim, and its "
            "unit price.",
            dagster_type=CatalogListing,
            owners=OWNERS,
            tags=CATALOG_TAGS,
            kinds={"python", "api"},
            freshness_policy=CATALOG_FRESHNESS,
        ),
        "fal_openapi_schemas": dg.AssetOut(
            description="The OpenAPI document of every listed endpoint; an endpoint whose `updated_at` is "
            "unchanged keeps its cached document.",
            dagster_type=SchemaSet,
            owners=OWNERS,
            tags=CATALOG_TAGS,
            kinds={"python", "api"},
            freshness_policy=CATALOG_FRESHNESS,
        ),
    },
    internal_asset_deps={
        "fal_model_list": set(),
        "fal_openapi_schemas": {dg.AssetKey("fal_model_list")},
    },
)
def discover_fal_catalog(
    context: dg.AssetExecutionContext,
    config: DiscoveryConfig,
    fal: FalCatalogResource,
    database: CatalogDatabase,
    catalog_checks: CatalogCheckSettings,
) -> Iterator[dg.Output]:
    """Discovery in one step: the list first, then prices and schemas side by side under one limit on
    requests in flight, so a refresh costs the fewest round trips to fal. The list's completeness is
    judged here, once, against the last run's; the check shows the verdict and the sync obeys it."""
    source = fal.catalog_source(context.log)
    listing, schemas = source.discover(config.endpoint_ids or None, full_refresh=config.full_refresh)
    listing.completeness = judge_completeness(
        complete=listing.complete,
        list_errors=listing.list_errors,
        endpoints=len(listing.endpoints),
        previous_endpoints=database.store().last_endpoints_seen(),
        drop_threshold=catalog_checks.completeness_drop_threshold,
        whole_catalog=listing.requested_endpoint_ids is None,
        source=listing.source.value,
    )
    yield dg.Output(listing, output_name="fal_model_list", metadata=listing_metadata(listing))
    yield dg.Output(schemas, output_name="fal_openapi_schemas", metadata=schema_metadata(schemas))


def listing_metadata(listing: CatalogListing) -> dict[str, dg.MetadataValue]:
    by_category = Counter(endpoint.category or "unknown" for endpoint in listing.endpoints.values())
    by_status = Counter(endpoint.status for endpoint in listing.endpoints.values())
    return {
        "endpoints": dg.MetadataValue.int(len(listing.endpoints)),
        "complete": dg.MetadataValue.bool(listing.complete),
        "list_errors": dg.MetadataValue.md(markdown.bullet_list(listing.list_errors)),
        "by_category": dg.MetadataValue.json(dict(by_category.most_common())),
        "by_status": dg.MetadataValue.json(dict(by_status)),
        "prices": dg.MetadataValue.json(listing.count_prices()),
        "price_source": dg.MetadataValue.text(listing.price_source.value),
        "http_requests": dg.MetadataValue.int(listing.http_requests),
        "requested_endpoint_ids": dg.MetadataValue.json(listing.requested_endpoint_ids or []),
        "failed_price_fetches": preview_table(
            (
                {"endpoint_id": endpoint_id, "outcome": lookup.status.value, "error": lookup.error}
                for endpoint_id, lookup in listing.prices.items()
                if lookup.error
            ),
            [("endpoint_id", "string"), ("outcome", "string"), ("error", "string")],
            limit=200,
        ),
        "new_since_last_list": dg.MetadataValue.json(listing.new_since_last),
        "gone_since_last_list": dg.MetadataValue.json(listing.gone_since_last),
        "preview": preview_table(
            (
                {
                    "endpoint_id": e.endpoint_id,
                    "name": e.display_name,
                    "category": e.category,
                    "status": e.status,
                    "unit_price": quote.unit_price if (quote := listing.quote(e.endpoint_id)) else None,
                    "unit": quote.unit if quote else None,
                }
                for e in listing.endpoints.values()
            ),
            [
                ("endpoint_id", "string"),
                ("name", "string"),
                ("category", "string"),
                ("status", "string"),
                ("unit_price", "string"),
                ("unit", "string"),
            ],
        ),
        **source_metadata(listing.source.value, listing.as_of, listing.notes),
    }


def schema_metadata(schemas: SchemaSet) -> dict[str, dg.MetadataValue]:
    return {
        "endpoints": dg.MetadataValue.int(len(schemas.records)),
        "by_status": dg.MetadataValue.json(schemas.count_by_status()),
        "http_requests": dg.MetadataValue.int(schemas.http_requests),
        "failed_fetches": preview_table(
            (
                {"endpoint_id": record.endpoint_id, "error": record.error}
                for record in schemas.records.values()
                if record.error
            ),
            [("endpoint_id", "string"), ("error", "string")],
            limit=200,
        ),
        **source_metadata(schemas.source.value, schemas.as_of, schemas.notes),
    }


@dg.asset_check(asset="fal_model_list", blocking=True)
def catalog_completeness(
    fal_model_list: CatalogListing, catalog_checks: CatalogCheckSettings
) -> dg.AssetCheckResult:
    """Stops the sync when fal's list failed or came back far smaller than the last run's.

    Blocking: when it fails, nothing downstream runs and the `models` table stays exactly as it was.
    A manual refresh of chosen endpoints is judged on those endpoints only. The verdict is the one the
    discovery step judged (`sync/completeness.py`).
    """
    verdict = fal_model_list.completeness
    assert verdict is not None, "discover_fal_catalog judges every list"
    missing = sorted(set(fal_model_list.requested_endpoint_ids or ()) - set(fal_model_list.endpoints))
    return dg.AssetCheckResult(
        passed=verdict.passed,
        severity=catalog_checks.severity("completeness"),
        description=verdict.reason,
        metadata={
            "endpoints": dg.MetadataValue.int(len(fal_model_list.endpoints)),
            "previous_endpoints": dg.MetadataValue.int(verdict.previous_endpoints or 0),
            "drop_threshold": dg.MetadataValue.float(catalog_checks.completeness_drop_threshold),
            "list_errors": dg.MetadataValue.md(markdown.bullet_list(fal_model_list.list_errors)),
            "data_source": dg.MetadataValue.text(fal_model_list.source.value),
            "chosen_ids_not_at_fal": dg.MetadataValue.json(missing),
            "may_remove": dg.MetadataValue.bool(verdict.may_remove),
        },
    )
