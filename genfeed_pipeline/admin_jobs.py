"""The admin jobs: what an operator does to the catalog from the Dagster UI's launchpad.

Each job is one op over `genfeed_pipeline.admin`, with typed config (the launchpad scaffolds it) and
the `database` and `pricing` resources; the op records what it did, or in a dry run would do, as a
table in its output metadata. The actor written to the audit table is `dagster:<run id>`. The same
actions from a shell: `genfeed-catalog enable|disable|undo|recommendations|accept`.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any

import dagster as dg
from pydantic import Field

from genfeed_pipeline.admin import (
    AdminError,
    ModelFilter,
    accept_changes,
    apply_recommendations,
    set_enabled,
)
from genfeed_pipeline.admin.actions import AcceptOutcome, ActionOutcome
from genfeed_pipeline.admin.recommendations import RecommendationsOutcome
from genfeed_pipeline.assets.metadata import preview_table
from genfeed_pipeline.resources import CatalogDatabase, PricingPolicyResource

ADMIN_TAGS = {"genfeed/pipeline": "catalog_admin"}
TABLE_LIMIT = 2000
ACTION_COLUMNS = [
    ("endpoint_id", "string"),
    ("action", "string"),
    ("before_enabled", "bool"),
    ("after_enabled", "bool"),
    ("outcome", "string"),
    ("note", "string"),
]
RECOMMENDATION_COLUMNS = [
    ("endpoint_id", "string"),
    ("action", "string"),
    ("reason", "string"),
    ("outcome", "string"),
    ("note", "string"),
]
DIFF_COLUMNS = [("endpoint_id", "string"), ("change", "string"), ("breaking", "bool")]


class ModelAction(Enum):
    enable = "enable"
    disable = "disable"
    undo = "undo"


class RecommendationAction(Enum):
    enable = "enable"
    disable = "disable"


class SetModelsEnabledConfig(dg.Config):
    """Name the models by `endpoint_ids` or by the filter fields (all given must hold), not both."""

    action: ModelAction = Field(description="enable, disable, or undo (hand the models back to policy)")
    endpoint_ids: list[str] = Field(
        default_factory=list, description="fal endpoint ids, e.g. fal-ai/flux/dev"
    )
    category: str | None = Field(None, description="GenFeed type: image, video, audio, text, 3d, training")
    fal_category: str | None = Field(None, description="fal's category, e.g. text-to-image")
    owner: str | None = Field(None, description="first segment of the endpoint id, e.g. fal-ai, bria")
    min_price: float | None = Field(None, description="price_per_call at least this, USD")
    max_price: float | None = Field(None, description="price_per_call at most this, USD")
    status: str | None = Field(None, description="active, deprecated or removed")
    capabilities: list[str] = Field(
        default_factory=list, description="every one of these, e.g. seed, lora, input:image"
    )
    search: str | None = Field(None, description="text in the id, name or description")
    reason: str = Field(description="why; recorded with who (dagster:<run id>) and when")
    dry_run: bool = Field(False, description="list what would change, write nothing")

    def model_filter(self) -> ModelFilter:
        return ModelFilter(
            category=self.category,
            fal_category=self.fal_category,
            owner=self.owner,
            min_price=self.min_price,
            max_price=self.max_price,
            status=self.status,
            capabilities=tuple(self.capabilities),
            search=self.search,
        )


class ApplyRecommendationsConfig(dg.Config):
    dry_run: bool = Field(True, description="list what would change, write nothing (the default)")
    actions: list[RecommendationAction] = Field(
        default_factory=lambda: [RecommendationAction.enable, RecommendationAction.disable],
        description="recommendations to apply; reprice is never applied (fixed prices belong to people)",
    )
    endpoint_ids: list[str] = Field(default_factory=list, description="only these models (empty: all)")


class AcceptSchemaChangesConfig(dg.Config):
    endpoint_ids: list[str] = Field(
        default_factory=list, description="held models to accept (empty: every held one)"
    )
    reason: str = Field("held schema change reviewed and accepted", description="recorded in the audit")
    dry_run: bool = Field(True, description="show the diffs only, accept nothing (the default)")


def actor(context: dg.OpExecutionContext) -> str:
    return f"dagster:{context.run.run_id}"


@contextmanager
def operator_errors() -> Iterator[None]:
    """An operator's mistake (unknown id, refused change, bad filter) fails the run with its message."""
    try:
        yield
    except AdminError as error:
        raise dg.Failure(description=str(error)) from None


def _count_by(records: list[dict[str, Any]], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record[key]] = counts.get(record[key], 0) + 1
    return counts


def action_metadata(outcome: ActionOutcome) -> dict[str, Any]:
    records = outcome.records()
    return {
        "count": dg.MetadataValue.int(len(outcome.changes)),
        "dry_run": dg.MetadataValue.bool(outcome.dry_run),
        "selection": dg.MetadataValue.text(outcome.selection),
        "actor": dg.MetadataValue.text(outcome.actor),
        "reason": dg.MetadataValue.text(outcome.reason),
        "outcomes": dg.MetadataValue.json(_count_by(records, "outcome")),
        "models": preview_table(records, ACTION_COLUMNS, limit=TABLE_LIMIT),
    }


def recommendation_metadata(outcome: RecommendationsOutcome) -> dict[str, Any]:
    records = outcome.records()
    return {
        "count": dg.MetadataValue.int(outcome.count),
        "recommendations": dg.MetadataValue.int(len(outcome.items)),
        "dry_run": dg.MetadataValue.bool(outcome.dry_run),
        "outcomes": dg.MetadataValue.json(_count_by(records, "outcome")),
        "reprice": dg.MetadataValue.text(
            f"{outcome.reprices} reprice recommendations listed, never applied: fixed prices belong to people"
        ),
        "models": preview_table(records, RECOMMENDATION_COLUMNS, limit=TABLE_LIMIT),
    }


def accept_metadata(outcome: AcceptOutcome) -> dict[str, Any]:
    changes = [
        {"endpoint_id": held.endpoint_id, "change": change.describe(), "breaking": change.breaking}
        for held in outcome.held
        for change in held.changes
    ]
    diff = [
        f"{held.endpoint_id}\n" + "\n".join(f"  {change.describe()}" for change in held.changes)
        for held in outcome.held
    ]
    return {
        "count": dg.MetadataValue.int(len(outcome.held) if outcome.dry_run else len(outcome.accepted)),
        "dry_run": dg.MetadataValue.bool(outcome.dry_run),
        "held": dg.MetadataValue.json([held.endpoint_id for held in outcome.held]),
        "accepted": dg.MetadataValue.json(outcome.accepted),
        "not_held": dg.MetadataValue.json(outcome.not_held),
        "diff": dg.MetadataValue.text("\n".join(diff) or "nothing is held"),
        "changes": preview_table(changes, DIFF_COLUMNS, limit=TABLE_LIMIT),
    }


@dg.op(out=dg.Out(dg.Nothing), tags=ADMIN_TAGS)
def change_models_enabled(
    context: dg.OpExecutionContext,
    config: SetModelsEnabledConfig,
    database: CatalogDatabase,
    pricing: PricingPolicyResource,
) -> dg.Output[None]:
    """Enables, disables or undoes an operator's choice for models named by id or chosen by a filter."""
    with operator_errors():
        outcome = set_enabled(
            database.store(),
            config.action.value,
            endpoint_ids=config.endpoint_ids,
            model_filter=config.model_filter(),
            reason=config.reason,
            actor=actor(context),
            dry_run=config.dry_run,
        )
    context.log.info(
        "%s%s: %d models, %d refused",
        "dry run, " if outcome.dry_run else "",
        outcome.action,
        len(outcome.changes),
        len(outcome.refused),
    )
    return dg.Output(None, metadata=action_metadata(outcome))


@dg.op(out=dg.Out(dg.Nothing), tags=ADMIN_TAGS)
def apply_profitability_recommendations(
    context: dg.OpExecutionContext,
    config: ApplyRecommendationsConfig,
    database: CatalogDatabase,
    pricing: PricingPolicyResource,
) -> dg.Output[None]:
    """Lists the profitability report's recommendations and, unless a dry run, applies enable/disable."""
    with operator_errors():
        outcome = apply_recommendations(
            database.store(),
            pricing.policy(),
            actor=actor(context),
            dry_run=config.dry_run,
            actions=[action.value for action in config.actions],
            endpoint_ids=config.endpoint_ids,
        )
    context.log.info(
        "%d recommendations, %d %s; reprice is never applied",
        len(outcome.items),
        outcome.count,
        "would be applied" if outcome.dry_run else "applied",
    )
    return dg.Output(None, metadata=recommendation_metadata(outcome))


@dg.op(out=dg.Out(dg.Nothing), tags=ADMIN_TAGS)
def accept_held_schema_changes(
    context: dg.OpExecutionContext,
    config: AcceptSchemaChangesConfig,
    database: CatalogDatabase,
    pricing: PricingPolicyResource,
) -> dg.Output[None]:
    """Shows each held model's diff against its accepted schema and, unless a dry run, ships it."""
    with operator_errors():
        outcome = accept_changes(
            database.store(),
            config.endpoint_ids,
            actor=actor(context),
            reason=config.reason,
            dry_run=config.dry_run,
        )
    context.log.info("%d held, %d accepted", len(outcome.held), len(outcome.accepted))
    return dg.Output(None, metadata=accept_metadata(outcome))


def _admin_job(name: str, op: Callable[..., Any], description: str) -> dg.JobDefinition:
    @dg.job(name=name, tags=ADMIN_TAGS, description=description)
    def _job() -> None:
        op()

    return _job


set_models_enabled = _admin_job(
    "set_models_enabled",
    change_models_enabled,
    "Enable, disable or undo models by endpoint id or by filter (type, fal category, owner, price, status), "
    "with a reason. Recorded in model_admin_actions; every later sync keeps the choice until undone.",
)
apply_recommendations_job = _admin_job(
    "apply_recommendations",
    apply_profitability_recommendations,
    "The profitability report's recommendations: a dry run (default) lists them; dry_run: false applies "
    "enable/disable as operator actions. Reprice is listed, never applied.",
)
accept_schema_changes = _admin_job(
    "accept_schema_changes",
    accept_held_schema_changes,
    "Show the diff of models held by a breaking schema change (dry run, default), then accept them.",
)

ADMIN_JOBS = [set_models_enabled, apply_recommendations_job, accept_schema_changes]
