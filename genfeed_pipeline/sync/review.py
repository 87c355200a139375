"""Which models' schemas changed in a breaking way since the version accepted in the `models` table.

A model is compared when its mapped schemas (by `mapped_hash`) differ from the row's. The row keeps the
last accepted schema while a breaking change is held, so a held model is compared again on every run
until someone accepts the change (or fal reverts it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa

from genfeed_pipeline.db.tables import ModelRow
from genfeed_pipeline.fal.catalog import SchemaStatus
from genfeed_pipeline.mapping.diff import SchemaChange, breaking_changes, diff_model_schemas, review_reason
from genfeed_pipeline.mapping.model import GenFeedModel
from genfeed_pipeline.sync.plan import mapped_hash_of
from genfeed_pipeline.sync.store import load_rows, load_schemas


@dataclass
class SchemaReview:
    """Each model compared with the schema accepted in the table, and the models a breaking change holds.

    Decided once per run, by the `genfeed_models` step; the `breaking_schema_changes` check shows it and
    the sync holds what it names.
    """

    changes: dict[str, list[SchemaChange]] = field(default_factory=dict)  # models compared → changes
    held: dict[str, str] = field(default_factory=dict)  # endpoint_id → review reason


def ids_to_review(rows: Mapping[str, ModelRow], models: Mapping[str, GenFeedModel]) -> list[str]:
    """Models whose mapped schemas differ from the accepted ones in the table."""
    return [
        endpoint_id
        for endpoint_id, model in models.items()
        if (row := rows.get(endpoint_id)) is not None
        and row.get("mapped_hash") is not None
        and model.schema_status not in (SchemaStatus.FAILED, SchemaStatus.MISSING)
        and row["mapped_hash"] != mapped_hash_of(model)
    ]


def review_schemas(
    accepted: Mapping[str, ModelRow], models: Mapping[str, GenFeedModel]
) -> dict[str, list[SchemaChange]]:
    """endpoint_id → every change against the accepted schemas (rows carry input/output_schema)."""
    reviews = {}
    for endpoint_id, row in accepted.items():
        if endpoint_id not in models:
            continue
        model = models[endpoint_id]
        changes = diff_model_schemas(
            row.get("input_schema"), row.get("output_schema"), model.input_schema, model.output_schema
        )
        for side, old, new in (
            ("input", row.get("input_schema"), model.input_schema),
            ("output", row.get("output_schema"), model.output_schema),
        ):
            if old is not None and new is None:
                # A document whose inputs or outputs can no longer be read loses every field at once.
                changes.append(SchemaChange(side, "", "property_removed", True, "object", None))
        reviews[endpoint_id] = changes
    return reviews


def held_models(reviews: Mapping[str, list[SchemaChange]]) -> dict[str, str]:
    """endpoint_id → review reason, for the models whose changes include a breaking one."""
    held = {}
    for endpoint_id, changes in reviews.items():
        if breaking_changes(changes):
            held[endpoint_id] = review_reason(changes) or "breaking schema change"
    return held


def review_catalog(connection: sa.Connection, models: Mapping[str, GenFeedModel]) -> SchemaReview:
    """Every model whose mapped schemas differ from the accepted ones, diffed, and the ones held."""
    accepted = load_schemas(connection, ids_to_review(load_rows(connection), models))
    changes = review_schemas(accepted, models)
    return SchemaReview(changes, held_models(changes))
