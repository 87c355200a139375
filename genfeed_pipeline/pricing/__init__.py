"""Pricing fal's models for GenFeed: units, rate cards, the evaluator, the pricing policy and billing JSON.

Plain Python (nothing from Dagster); money is `decimal.Decimal` everywhere and is rounded once, at the end.
"""

from genfeed_pipeline.pricing.evaluate import (
    CLOUD_RULE,
    CORE_RULE,
    Evaluation,
    RateCardError,
    RateCardInputError,
    apply_rule,
    evaluate,
    megapixels,
)
from genfeed_pipeline.pricing.money import money_text, to_decimal
from genfeed_pipeline.pricing.policy import (
    CLOUD,
    CORE,
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
from genfeed_pipeline.pricing.rate_card import (
    IMAGE_SIZE_PRESETS,
    ONE_MEGAPIXEL,
    build_rate_card,
    parse_seconds,
)
from genfeed_pipeline.pricing.units import BillingUnit, UnitKind, is_stub_price, normalize_unit

__all__ = [
    "CLOUD",
    "CLOUD_RULE",
    "CORE",
    "CORE_RULE",
    "IMAGE_SIZE_PRESETS",
    "ONE_MEGAPIXEL",
    "BillingUnit",
    "Evaluation",
    "PricedModel",
    "PricingPolicy",
    "RateCardError",
    "RateCardInputError",
    "UnitKind",
    "WorkflowEstimate",
    "WorkflowStepEstimate",
    "apply_rule",
    "billing_json",
    "build_rate_card",
    "capability_names",
    "cheapest_model",
    "estimate_workflow",
    "evaluate",
    "is_stub_price",
    "margin_of",
    "megapixels",
    "money_text",
    "normalize_unit",
    "parse_seconds",
    "policy_enabled",
    "price_catalog",
    "price_model",
    "price_per_call",
    "resale_unit_price",
    "to_decimal",
]
