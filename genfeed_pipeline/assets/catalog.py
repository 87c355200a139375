"""From fal's documents to GenFeed models, priced for this deployment."""

import json
from collections import Counter
from decimal import Decimal

import dagster as dg

from genfeed_pipeline.assets.discovery import CATALOG_FRESHNESS, CATALOG_GROUP, CATALOG_TAGS, OWNERS
from genfeed_pipeline.assets.metadata import preview_table, source_metadata
from genfeed_pipeline.assets.values import MappedCatalog, PricedCatalog, count_by_type
from genfeed_pipeline.exact_json import decimal_number_text
from genfeed_pipeline.fal.catalog import CatalogListing, SchemaSet
from genfeed_pipeline.mapping import map_catalog
from genfeed_pipeline.pricing import price_catalog
from genfeed_pipeline.pricing.drift import find_price_drift
from genfeed_pipeline.report import markdown
from genfeed_pipeline.report.profitability import fixed_price_of
from genfeed_pipeline.resources import CatalogCheckSettings, CatalogDatabase, PricingPolicyResource
from genfeed_pipeline.sync.review import review_catalog


def _top_reasons(reasons: Counter[str], limit: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown.table(reasons.most_common(limit), ["reason", "models"]))


@dg.asset(
    group_name=CATALOG_GROUP,
    owners=OWNERS,
    tags=CATALOG_TAGS,
    kinds={"python"},
    freshness_policy=CATALOG_FRESHNESS,
)
def genfeed_models(
    fal_model_list: CatalogListing, fal_openapi_schemas: SchemaSet, database: CatalogDatabase
) -> dg.Output[MappedCatalog]:
    """Every listed endpoint mapped to GenFeed's model format: type, inputs, outputs, capabilities, and
    compared with the schema accepted in the `models` table (which breaking changes hold a model).

    A model whose schema cannot be used is kept and marked with its validation errors, never dropped.
    """
    models = map_catalog(fal_model_list, fal_openapi_schemas)
    with database.store().reading() as connection:
        review = review_catalog(connection, models)
    catalog = MappedCatalog(
        source=fal_model_list.source,
        as_of=fal_model_list.as_of,
        models=models,
        requested_endpoint_ids=fal_model_list.requested_endpoint_ids,
        review=review,
    )
    invalid = [m for m in models.values() if not m.valid]
    reasons = Counter(error.split(":")[0] for m in invalid for error in m.validation_errors)
    metadata = {
        "models": dg.MetadataValue.int(len(models)),
        "valid": dg.MetadataValue.int(len(models) - len(invalid)),
        "invalid": dg.MetadataValue.int(len(invalid)),
        "by_type": dg.MetadataValue.json(count_by_type(models.values())),
        "derived_schemas": dg.MetadataValue.int(sum(m.schema_derived for m in models.values())),
        "invalid_reasons": _top_reasons(reasons),
        "preview": preview_table(
            (
                {
                    "endpoint_id": m.endpoint_id,
                    "type": m.category.value if m.category else None,
                    "fal_category": m.fal_category,
                    "inputs": len((m.input_schema or {}).get("properties", {})),
                    "outputs": len((m.output_schema or {}).get("properties", {})),
                    "valid": m.valid,
                    "errors": "; ".join(m.validation_errors),
                }
                for m in models.values()
            ),
            [
                ("endpoint_id", "string"),
                ("type", "string"),
                ("fal_category", "string"),
                ("inputs", "int"),
                ("outputs", "int"),
                ("valid", "bool"),
                ("errors", "string"),
            ],
        ),
        **source_metadata(fal_model_list.source.value, fal_model_list.as_of, []),
    }
    return dg.Output(catalog, metadata=metadata)


@dg.asset(
    group_name=CATALOG_GROUP,
    owners=OWNERS,
    tags=CATALOG_TAGS,
    kinds={"python"},
    freshness_policy=CATALOG_FRESHNESS,
)
def priced_models(
    fal_model_list: CatalogListing,
    genfeed_models: MappedCatalog,
    pricing: PricingPolicyResource,
) -> dg.Output[PricedCatalog]:
    """Each model's fal cost per call (schema defaults) and GenFeed's price in this deployment."""
    policy = pricing.policy()
    models = price_catalog(genfeed_models.models, fal_model_list.prices, policy)
    catalog = PricedCatalog(
        source=genfeed_models.source,
        as_of=genfeed_models.as_of,
        deployment=policy.deployment.value,
        models=models,
        requested_endpoint_ids=genfeed_models.requested_endpoint_ids,
        held=genfeed_models.review.held,
        completeness=fal_model_list.completeness,
        notes=list(fal_model_list.notes),
    )
    priced = catalog.count_priced()
    unpriced_units = Counter(
        (m.unit_raw if m.unit_raw is not None else "no price") for m in models.values() if not m.priced
    )
    metadata = {
        "deployment": dg.MetadataValue.text(policy.deployment.value),
        "models": dg.MetadataValue.int(len(models)),
        "priced": dg.MetadataValue.int(priced),
        "unpriced": dg.MetadataValue.int(len(models) - priced),
        "valid": dg.MetadataValue.int(catalog.count_valid()),
        "unpriced_by_unit": _top_reasons(unpriced_units, limit=20),
        "price_source": dg.MetadataValue.text(fal_model_list.price_source.value),
        "preview": preview_table(
            (
                {
                    "endpoint_id": m.endpoint_id,
                    "type": m.model.category.value if m.model.category else None,
                    "unit": m.unit,
                    "unit_price": m.unit_price,
                    "cost_per_call": m.cost_per_call,
                    "price_per_call": m.price_per_call,
                    "confidence": m.cost_confidence,
                    "flags": "; ".join(m.flags),
                }
                for m in models.values()
            ),
            [
                ("endpoint_id", "string"),
                ("type", "string"),
                ("unit", "string"),
                ("unit_price", "string"),
                ("cost_per_call", "string"),
                ("price_per_call", "string"),
                ("confidence", "string"),
                ("flags", "string"),
            ],
        ),
        **source_metadata(genfeed_models.source.value, genfeed_models.as_of, []),
    }
    return dg.Output(catalog, metadata=metadata)


@dg.asset_check(asset=genfeed_models)
def breaking_schema_changes(
    genfeed_models: MappedCatalog, catalog_checks: CatalogCheckSettings
) -> dg.AssetCheckResult:
    """Shows each model's mapped inputs and outputs compared with the version accepted in the `models`
    table (the review `genfeed_models` made).

    A breaking change (input removed or retyped, optional → required, new required input, enum value
    removed, range narrowed past the old default, output removed or retyped) holds the model at its
    last good schema until someone accepts it; new optional fields, descriptions and enum values pass.
    """
    reviews = genfeed_models.review.changes
    held = genfeed_models.review.held
    breaking_rows = [
        {
            "endpoint_id": endpoint_id,
            "side": change.side,
            "path": change.path,
            "change": change.kind,
            "old": json.dumps(change.old, default=str),
            "new": json.dumps(change.new, default=str),
        }
        for endpoint_id in sorted(held)
        for change in reviews[endpoint_id]
        if change.breaking
    ]
    columns = [(name, "string") for name in ("endpoint_id", "side", "path", "change", "old", "new")]
    return dg.AssetCheckResult(
        passed=not held,
        severity=catalog_checks.severity("breaking_schema_changes"),
        description=f"{len(held)} models with breaking schema changes" if held else "no breaking changes",
        metadata={
            "models_compared": dg.MetadataValue.int(len(reviews)),
            "models_with_changes": dg.MetadataValue.int(sum(1 for changes in reviews.values() if changes)),
            "breaking_models": dg.MetadataValue.json(sorted(held)),
            "breaking_changes": preview_table(breaking_rows, columns, limit=500),
            "non_breaking_models": dg.MetadataValue.json(
                sorted(eid for eid, changes in reviews.items() if changes and eid not in held)
            ),
        },
    )


@dg.asset_check(asset=priced_models)
def pricing_drift(
    priced_models: PricedCatalog, database: CatalogDatabase, catalog_checks: CatalogCheckSettings
) -> dg.AssetCheckResult:
    """Flags every model whose unit price or cost per call moved more than the threshold (5%) since the
    last synced value, or whose unit changed. Drifted prices are still applied; this reports them."""
    threshold = Decimal(catalog_checks.pricing_drift_threshold)
    rows = database.store().current_rows()
    drifts = find_price_drift(rows, priced_models.models, threshold)
    drift_rows = [
        {
            "endpoint_id": drift.endpoint_id,
            "field": drift.field,
            "old": str(drift.old),
            "new": str(drift.new),
            "change_pct": f"{drift.change_pct:+.2f}" if drift.change_pct is not None else "always flagged",
        }
        for drift in drifts
    ]
    columns = [(name, "string") for name in ("endpoint_id", "field", "old", "new", "change_pct")]
    drifted = sorted({drift.endpoint_id for drift in drifts})
    return dg.AssetCheckResult(
        passed=not drifts,
        severity=catalog_checks.severity("pricing_drift"),
        description=f"{len(drifted)} models drifted more than {threshold:.0%}" if drifts else "no drift",
        metadata={
            "threshold": dg.MetadataValue.float(float(threshold)),
            "drifted_models": dg.MetadataValue.json(drifted),
            "drift": preview_table(drift_rows, columns, limit=500),
        },
    )


@dg.asset_check(asset=priced_models)
def cloud_price_not_below_cost(
    priced_models: PricedCatalog, database: CatalogDatabase, catalog_checks: CatalogCheckSettings
) -> dg.AssetCheckResult:
    """In cloud, no call may be sold below fal's cost: dynamic prices, and fixed prices set by people."""
    if priced_models.deployment != "cloud":
        return dg.AssetCheckResult(
            passed=True,
            severity=catalog_checks.severity("cloud_price_not_below_cost"),
            description="core deployment: prices are fal's cost",
        )
    rows = database.store().current_rows()
    below = []
    for endpoint_id, model in priced_models.models.items():
        cost = model.cost_per_call
        if cost is None:
            continue
        fixed = fixed_price_of((rows.get(endpoint_id) or {}).get("pricing"))
        price = fixed if fixed is not None else model.price_per_call
        if price is not None and price < cost:
            below.append(
                {
                    "endpoint_id": endpoint_id,
                    "pricing": "fixed" if fixed is not None else "dynamic",
                    "price": decimal_number_text(price),
                    "fal_cost": decimal_number_text(cost),
                }
            )
    columns = [(name, "string") for name in ("endpoint_id", "pricing", "price", "fal_cost")]
    return dg.AssetCheckResult(
        passed=not below,
        severity=catalog_checks.severity("cloud_price_not_below_cost"),
        description=f"{len(below)} models priced below fal cost" if below else "every price covers fal cost",
        metadata={"below_cost": preview_table(below, columns, limit=500)},
    )
