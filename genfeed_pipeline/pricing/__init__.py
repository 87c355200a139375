"""Pricing fal's models for GenFeed: units, cost per call, GenFeed's price and billing JSON.

Plain Python (nothing from Dagster); money is `decimal.Decimal` everywhere and is rounded once, at the end.
"""

from genfeed_pipeline.pricing.estimate import (
    IMAGE_SIZE_PRESETS,
    ONE_MEGAPIXEL,
    Confidence,
    CostEstimate,
    OutputSize,
    default_image_megapixels,
    effective_inputs,
    estimate_cost,
    megapixels,
    output_size,
    parse_seconds,
)
from genfeed_pipeline.pricing.policy import (
    PricingPolicy,
    billing_json,
    margin_of,
    price_per_call,
    resale_unit_price,
)
from genfeed_pipeline.pricing.priced import (
    PricedModel,
    WorkflowEstimate,
    WorkflowStepEstimate,
    capability_names,
    cheapest_model,
    estimate_workflow,
    policy_enabled,
    price_catalog,
    price_model,
)
from genfeed_pipeline.pricing.units import BillingUnit, UnitKind, is_stub_price, normalize_unit

__all__ = [
    "IMAGE_SIZE_PRESETS",
    "ONE_MEGAPIXEL",
    "BillingUnit",
    "Confidence",
    "CostEstimate",
    "OutputSize",
    "PricedModel",
    "PricingPolicy",
    "UnitKind",
    "WorkflowEstimate",
    "WorkflowStepEstimate",
    "billing_json",
    "capability_names",
    "cheapest_model",
    "default_image_megapixels",
    "effective_inputs",
    "estimate_cost",
    "estimate_workflow",
    "is_stub_price",
    "margin_of",
    "megapixels",
    "normalize_unit",
    "output_size",
    "parse_seconds",
    "policy_enabled",
    "price_catalog",
    "price_model",
    "price_per_call",
    "resale_unit_price",
]
