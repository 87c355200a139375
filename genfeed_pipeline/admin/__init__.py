"""Operating the catalog: choosing models, enabling and disabling them with an audit record, applying
the profitability report's recommendations, accepting held schema changes, and the queries behind
`genfeed-catalog`. Plain Python over the `models` table; the Dagster jobs and the CLI call it."""

from genfeed_pipeline.admin.actions import (
    AcceptOutcome,
    ActionOutcome,
    AuditAction,
    ModelChange,
    OperatorAction,
    Skipped,
    accept_changes,
    default_actor,
    has_operator_choice,
    plan_change,
    policy_target,
    set_enabled,
    why_not_enable,
)
from genfeed_pipeline.admin.catalog import (
    CheapestAnswer,
    Estimate,
    ModelDetails,
    SchemaField,
    cheapest_for,
    estimate_request,
    find_models,
    get_row,
    model_details,
    model_from_row,
    parse_inputs,
    priced_from_row,
)
from genfeed_pipeline.admin.errors import AdminError, UnknownModel
from genfeed_pipeline.admin.filters import ModelFilter, owner_of
from genfeed_pipeline.admin.recommendations import (
    RecommendationsOutcome,
    ReviewedRecommendation,
    apply_recommendations,
    report_for,
    review,
)

__all__ = [
    "AcceptOutcome",
    "ActionOutcome",
    "AdminError",
    "AuditAction",
    "CheapestAnswer",
    "Estimate",
    "ModelChange",
    "ModelDetails",
    "ModelFilter",
    "OperatorAction",
    "RecommendationsOutcome",
    "ReviewedRecommendation",
    "SchemaField",
    "Skipped",
    "UnknownModel",
    "accept_changes",
    "apply_recommendations",
    "cheapest_for",
    "default_actor",
    "estimate_request",
    "find_models",
    "get_row",
    "has_operator_choice",
    "model_details",
    "model_from_row",
    "owner_of",
    "parse_inputs",
    "plan_change",
    "policy_target",
    "priced_from_row",
    "report_for",
    "review",
    "set_enabled",
    "why_not_enable",
]
