"""From fal's documents to GenFeed models, priced for this deployment."""

from collections import Counter

import dagster as dg

from genfeed_pipeline.assets.discovery import CATALOG_GROUP, OWNERS
from genfeed_pipeline.assets.metadata import preview_table, source_metadata
from genfeed_pipeline.assets.values import MappedCatalog, PricedCatalog
from genfeed_pipeline.fal.catalog import CatalogListing, SchemaSet
from genfeed_pipeline.mapping import map_catalog
from genfeed_pipeline.pricing import price_catalog
from genfeed_pipeline.report import markdown
from genfeed_pipeline.resources import PricingPolicyResource


def _top_reasons(reasons: Counter[str], limit: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown.table(reasons.most_common(limit), ["reason", "models"]))


@dg.asset(
    group_name=CATALOG_GROUP,
    owners=OWNERS,
    kinds={"python"},
    io_manager_key="catalog_io_manager",
)
def genfeed_models(
    fal_model_list: CatalogListing, fal_openapi_schemas: SchemaSet
) -> dg.Output[MappedCatalog]:
    """Every listed endpoint mapped to GenFeed's model format: type, inputs, outputs, capabilities.

    A model whose schema cannot be used is kept and marked with its validation errors, never dropped.
    """
    models = map_catalog(fal_model_list, fal_openapi_schemas)
    catalog = MappedCatalog(
        source=fal_model_list.source,
        as_of=fal_model_list.as_of,
        models=models,
        requested_endpoint_ids=fal_model_list.requested_endpoint_ids,
    )
    by_type = Counter(m.category.value if m.category else "unknown" for m in models.values())
    invalid = [m for m in models.values() if not m.valid]
    reasons = Counter(error.split(":")[0] for m in invalid for error in m.validation_errors)
    metadata = {
        "models": dg.MetadataValue.int(len(models)),
        "valid": dg.MetadataValue.int(len(models) - len(invalid)),
        "invalid": dg.MetadataValue.int(len(invalid)),
        "by_type": dg.MetadataValue.json(dict(by_type.most_common())),
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
    kinds={"python"},
    io_manager_key="catalog_io_manager",
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
    )
    priced = [m for m in models.values() if m.priced]
    unpriced_units = Counter(
        (m.unit_raw if m.unit_raw is not None else "no price") for m in models.values() if not m.priced
    )
    metadata = {
        "deployment": dg.MetadataValue.text(policy.deployment.value),
        "models": dg.MetadataValue.int(len(models)),
        "priced": dg.MetadataValue.int(len(priced)),
        "unpriced": dg.MetadataValue.int(len(models) - len(priced)),
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
