"""Sync planning: what must change in the `models` table for it to reflect this run's catalog.

Plain Python over plain values: the rows already in the table (as dicts) and this run's priced models
in, a list of row changes out. The rules are the catalog contract's:

- Rows the pipeline did not insert (`managed_by` null) keep their `name`, `pricing` and `enabled`; a fal
  row among them is enriched in place (schemas, unit, unit price, cost, status).
- `enabled` on managed rows, by precedence: (1) removed by fal, held by a breaking change, or invalid →
  false; (2) else the operator's choice, if one was made; (3) else policy. The sync stores what it wrote
  in `enabled_by_sync`; an `enabled` that differs from it is an operator's choice, remembered in
  `operator_enabled` (also while (1) forces the model off) and never overwritten.
- An unchanged model writes nothing; `last_synced_at` moves only with a real change.
- Only a complete live listing of the whole catalog, not far smaller than the last one, may mark models
  removed. Runs from the cache or the snapshot never replace data newer than their own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson

from genfeed_pipeline.db.tables import MANAGED_BY_PIPELINE, ModelRow
from genfeed_pipeline.fal.catalog import DataSource, PriceStatus, SchemaStatus
from genfeed_pipeline.mapping.model import GenFeedModel
from genfeed_pipeline.pricing import PricedModel
from genfeed_pipeline.sync.completeness import Completeness
from genfeed_pipeline.sync.enabled import (
    EnableDecision,
    ModelState,
    PolicyVerdict,
    decide_enabled,
    operator_choice,
    unrecorded_choice,
)

MAX_ENDPOINT_ID_LENGTH = 512  # the `models.id` column; fal's longest real id is under 100 characters


class SyncMode(StrEnum):
    FULL = "full"
    DRY_RUN = "dry_run"  # plan everything, write nothing
    PRICING_ONLY = "pricing_only"  # update prices of rows already in the table
    EXISTING_ONLY = "existing_only"  # enrich rows already in the table, insert none


class Action(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    REMOVE = "remove"


IDENTITY_COLUMNS = ("name", "provider", "category", "description", "owner", "fal_category")
PRICE_COLUMNS = (
    "unit",
    "unit_raw",
    "unit_price",
    "cost_per_call",
    "price_per_call",
    "cost_derivation",
    "cost_confidence",
    "price_flags",
    "rate_card",
)
SCHEMA_COLUMNS = (
    "input_schema",
    "output_schema",
    "capabilities",
    "schema_hash",
    "mapped_hash",
    "schema_version",
)
STATE_COLUMNS = ("status", "validation_errors", "review_reason")
POLICY_COLUMNS = ("policy_enabled", "policy_reason")  # the enable policy's verdict, for every reader
# Not read back for comparison (they are large): `mapped_hash` tells whether they changed.
HEAVY_SCHEMA_COLUMNS = ("input_schema", "output_schema")
OWNER_COLUMNS = (
    "name",
    "pricing",
    "enabled",
    "category",
)  # never written on rows the pipeline did not insert
BOOKKEEPING_COLUMNS = ("price_source", "price_seen_at", "data_as_of", "last_synced_at")


KEEP_EVERY_ROW = Completeness(True, "no verdict on fal's list given", may_remove=False)


@dataclass(frozen=True)
class SyncContext:
    mode: SyncMode
    source: DataSource
    data_as_of: datetime
    now: datetime
    # The run's one verdict on fal's list (`sync/completeness.py`); without one, nothing is removed.
    completeness: Completeness = KEEP_EVERY_ROW
    requested_endpoint_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RowChange:
    endpoint_id: str
    action: Action
    values: ModelRow  # the columns to write
    before: ModelRow  # their previous values (empty for an insert)
    reasons: tuple[str, ...]


@dataclass
class SyncPlan:
    changes: list[RowChange] = field(default_factory=list)
    unchanged: int = 0
    failed: int = 0  # models whose price or schema fetch failed; their last good values are kept
    held: int = 0
    warnings: list[str] = field(default_factory=list)
    endpoints_seen: int = 0
    schema_history: list[dict[str, Any]] = field(
        default_factory=list
    )  # schema versions first seen in this run
    price_history: list[dict[str, Any]] = field(default_factory=list)  # prices first seen in this run

    def count(self, action: Action) -> int:
        return sum(1 for change in self.changes if change.action == action)

    @property
    def inserted(self) -> int:
        return self.count(Action.INSERT)

    @property
    def updated(self) -> int:
        return self.count(Action.UPDATE)

    @property
    def removed(self) -> int:
        return self.count(Action.REMOVE)


def mapped_hash(input_schema: Any, output_schema: Any, capabilities: Any) -> str:
    payload = orjson.dumps(
        {"input": input_schema, "output": output_schema, "capabilities": capabilities},
        option=orjson.OPT_SORT_KEYS,
        default=str,
    )
    return hashlib.sha256(payload).hexdigest()


def capabilities_json(model: GenFeedModel) -> dict[str, Any]:
    capabilities = model.capabilities
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in vars(capabilities).items()
        if value not in ((), None, False)
    }


def mapped_hash_of(model: GenFeedModel) -> str:
    return mapped_hash(model.input_schema, model.output_schema, capabilities_json(model))


def schema_history_entry(values: ModelRow, status: str, review_reason: str | None = None) -> dict[str, Any]:
    return {column: values[column] for column in SCHEMA_COLUMNS} | {
        "status": status,
        "review_reason": review_reason,
    }


def price_history_entry(values: ModelRow) -> dict[str, Any]:
    columns = ("unit_price", "unit", "unit_raw", "cost_per_call", "price_per_call", "price_source")
    return {column: values[column] for column in columns}


def model_values(priced: PricedModel) -> ModelRow:
    """Every pipeline-owned column of a model, as this run sees it."""
    model = priced.model
    capabilities = capabilities_json(model)
    return {
        "name": model.name,
        "provider": model.provider,
        "category": model.category.value if model.category else "unknown",
        "description": model.description,
        "owner": model.owner,
        "fal_category": model.fal_category,
        "pricing": priced.billing or None,
        "rate_card": priced.rate_card,
        "unit": priced.unit,
        "unit_raw": priced.unit_raw,
        "unit_price": priced.unit_price,
        "cost_per_call": priced.cost_per_call,
        "price_per_call": priced.price_per_call,
        "cost_derivation": priced.cost_derivation,
        "cost_confidence": priced.cost_confidence,
        "price_flags": list(priced.flags) or None,
        "price_source": priced.price_source,
        "price_seen_at": priced.price_seen_at,
        "input_schema": model.input_schema,
        "output_schema": model.output_schema,
        "capabilities": capabilities,
        "schema_hash": model.schema_hash,
        "mapped_hash": mapped_hash(model.input_schema, model.output_schema, capabilities),
        "schema_version": model.version,
        "status": "deprecated" if model.status == "deprecated" else "active",
        "validation_errors": list(priced.validation_errors) or None,
        "policy_enabled": priced.enable_policy.enabled,
        "policy_reason": priced.enable_policy.reason,
    }


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, Decimal) or isinstance(new, Decimal):
        return old is not None and new is not None and Decimal(old) == Decimal(new)
    return old == new


def _is_newer(row_as_of: datetime | None, run_as_of: datetime) -> bool:
    return row_as_of is not None and row_as_of > run_as_of


def refuse_price(priced: PricedModel, reason: str) -> PricedModel:
    """The model as if its price could not be fetched: the table keeps its last good price."""
    return replace(
        priced,
        price_status=PriceStatus.FAILED,
        rate_card=None,
        cost_per_call=None,
        price_per_call=None,
        cost_derivation=None,
        cost_confidence=None,
        resale_unit_price=None,
        billing={},
        validation_errors=(*priced.validation_errors, reason),
        enable_policy=PolicyVerdict(False, "invalid"),
    )


class SyncPlanner:
    """Plans one sync. `held` names the models a breaking change holds (decided once, before the sync);
    `card_errors` says why a rate card breaks its JSON Schema (no card that does is ever written). Whether
    a model is enabled is the enable rule's (`sync/enabled.py`), on the policy verdict priced with it."""

    def __init__(
        self,
        context: SyncContext,
        held: Mapping[str, str] | None = None,
        card_errors: Callable[[Any], list[str]] | None = None,
    ) -> None:
        self.context = context
        self.held = dict(held or {})  # endpoint_id → review reason (a breaking change awaiting accept)
        self.card_errors = card_errors

    def plan(self, existing: Mapping[str, ModelRow], priced: Mapping[str, PricedModel]) -> SyncPlan:
        context = self.context
        plan = SyncPlan(endpoints_seen=len(priced))
        for endpoint_id, model in priced.items():
            if len(endpoint_id) > MAX_ENDPOINT_ID_LENGTH:
                plan.warnings.append(
                    f"skipped an endpoint id of {len(endpoint_id)} characters: {endpoint_id[:80]}…"
                )
                continue
            row = existing.get(endpoint_id)
            model = self._checked_card(model, plan)
            if self._fetch_failed(model):
                plan.failed += 1
            if endpoint_id in self.held:
                plan.held += 1
            if row is None and context.mode in (SyncMode.PRICING_ONLY, SyncMode.EXISTING_ONLY):
                continue
            desired = model_values(model)
            if row is None:
                change = self._insert(endpoint_id, model, desired)
            else:
                change = self._update(endpoint_id, row, model, desired)
            if change is None:
                plan.unchanged += 1
                continue
            plan.changes.append(change)
            self._record_history(plan, change, desired, row)
        plan.changes.extend(self._removals(existing, priced, plan))
        return plan

    def _checked_card(self, priced: PricedModel, plan: SyncPlan) -> PricedModel:
        if priced.rate_card is None or self.card_errors is None:
            return priced
        errors = self.card_errors(priced.rate_card)
        if not errors:
            return priced
        plan.warnings.append(
            f"{priced.endpoint_id}: rate card refused, it does not match rate_card.schema.json "
            f"({'; '.join(errors[:3])}); the table keeps its last good price"
        )
        return refuse_price(priced, "rate card refused: does not match rate_card.schema.json")

    def _record_history(
        self, plan: SyncPlan, change: RowChange, desired: ModelRow, row: ModelRow | None
    ) -> None:
        review_reason = self.held.get(change.endpoint_id)
        if "mapped_hash" in change.values:
            plan.schema_history.append(
                {"endpoint_id": change.endpoint_id} | schema_history_entry(desired, "accepted")
            )
        elif review_reason is not None and (row or {}).get("review_reason") != review_reason:
            plan.schema_history.append(
                {"endpoint_id": change.endpoint_id} | schema_history_entry(desired, "held", review_reason)
            )
        price_columns = ("unit_price", "unit", "unit_raw", "cost_per_call", "price_per_call")
        if desired["unit_price"] is not None and any(column in change.values for column in price_columns):
            plan.price_history.append({"endpoint_id": change.endpoint_id} | price_history_entry(desired))

    # -- inserts ------------------------------------------------------------------------------------

    def _insert(self, endpoint_id: str, priced: PricedModel, desired: ModelRow) -> RowChange:
        values = dict(desired)
        decision = self._decide(priced, operator_choice=None)
        enabled = decision.enabled
        values |= {
            "id": endpoint_id,
            "managed_by": MANAGED_BY_PIPELINE,
            "enabled": enabled,
            "enabled_by_sync": enabled,
            "review_reason": self.held.get(endpoint_id),
            "data_as_of": self.context.data_as_of,
            "last_synced_at": self.context.now,
        }
        reasons = [
            "new fal model",
            "enabled by policy" if enabled else self._disabled_reason(priced, decision),
        ]
        return RowChange(endpoint_id, Action.INSERT, values, {}, tuple(reasons))

    # -- updates ------------------------------------------------------------------------------------

    def _update(
        self, endpoint_id: str, row: ModelRow, priced: PricedModel, desired: ModelRow
    ) -> RowChange | None:
        context = self.context
        if context.source != DataSource.LIVE and _is_newer(row.get("data_as_of"), context.data_as_of):
            return None
        managed = row.get("managed_by") == MANAGED_BY_PIPELINE
        columns = self._writable_columns(managed, priced)
        values = {
            column: desired[column]
            for column in columns
            if column not in HEAVY_SCHEMA_COLUMNS and not _same(row.get(column), desired[column])
        }
        if "mapped_hash" in values:
            values |= {column: desired[column] for column in HEAVY_SCHEMA_COLUMNS}
        reasons = self._reasons(values)

        if context.mode != SyncMode.PRICING_ONLY:
            review_reason = self.held.get(endpoint_id)
            if review_reason is not None:
                for column in SCHEMA_COLUMNS:
                    values.pop(column, None)  # the last good schema stays until someone accepts the change
            if not _same(row.get("review_reason"), review_reason):
                values["review_reason"] = review_reason
                reasons.append("held for review" if review_reason else "review cleared")
            if row.get("status") == "removed":
                reasons.append("back in fal's catalog")
            if managed and self._fetch_failed(priced):
                values |= self._operator_choice_only(row, reasons)
            elif managed:
                values |= self._enabled_values(row, priced, reasons=reasons)

        if not values:
            return None
        if any(column not in ("operator_enabled",) for column in values):
            values |= {"last_synced_at": context.now, "data_as_of": context.data_as_of}
            if any(column in PRICE_COLUMNS for column in values):
                values |= {"price_source": desired["price_source"], "price_seen_at": desired["price_seen_at"]}
        before = {column: row.get(column) for column in values}
        return RowChange(endpoint_id, Action.UPDATE, values, before, tuple(reasons))

    def _writable_columns(self, managed: bool, priced: PricedModel) -> list[str]:
        price_failed = priced.price_status == PriceStatus.FAILED
        schema_failed = priced.model.schema_status == SchemaStatus.FAILED
        columns: list[str] = []
        if self.context.mode != SyncMode.PRICING_ONLY:
            if managed:
                columns += [c for c in IDENTITY_COLUMNS]
            else:
                columns += [c for c in IDENTITY_COLUMNS if c not in OWNER_COLUMNS and c != "provider"]
            if not schema_failed:
                columns += SCHEMA_COLUMNS
            columns.append("status")
        if not (schema_failed or price_failed):
            if self.context.mode != SyncMode.PRICING_ONLY:
                columns.append("validation_errors")  # a failed fetch says nothing about the model itself
            columns += POLICY_COLUMNS
        if not price_failed:
            columns += PRICE_COLUMNS
            if managed:
                columns.append("pricing")
        return columns

    @staticmethod
    def _reasons(values: ModelRow) -> list[str]:
        reasons = []
        if any(column in values for column in ("unit_price", "unit", "unit_raw")):
            reasons.append("fal price changed")
        elif any(column in values for column in (*PRICE_COLUMNS, "pricing")):
            reasons.append("price recomputed")
        if "mapped_hash" in values or "schema_hash" in values:
            reasons.append("schema changed")
        if "status" in values:
            reasons.append(f"status now {values['status']}")
        if "validation_errors" in values:
            reasons.append("validation changed")
        if any(column in values for column in IDENTITY_COLUMNS):
            reasons.append("metadata changed")
        return reasons

    # -- enabled ------------------------------------------------------------------------------------

    def _decide(self, priced: PricedModel, operator_choice: bool | None) -> EnableDecision:
        return decide_enabled(
            ModelState(
                removed=False,
                held=self.held.get(priced.endpoint_id),
                validation_errors=priced.validation_errors,
                operator_choice=operator_choice,
                policy=priced.enable_policy,
            )
        )

    def _enabled_values(self, row: ModelRow, priced: PricedModel | None, *, reasons: list[str]) -> ModelRow:
        """`enabled` as the rule decides it (a removed model when `priced` is None), an operator's change
        since the last sync recorded, and the policy verdict the decision read."""
        values = self._record_choice(row, reasons)
        choice = operator_choice(row)
        target = False if priced is None else self._decide(priced, choice).enabled
        if not _same(row.get("enabled_by_sync"), target):
            values["enabled_by_sync"] = target
        if not _same(bool(row.get("enabled")), target):
            values["enabled"] = target
            reasons.append("enabled" if target else "disabled")
        return values

    @staticmethod
    def _record_choice(row: ModelRow, reasons: list[str]) -> ModelRow:
        """An operator's change made since the last sync, remembered as their choice."""
        choice = unrecorded_choice(row)
        if choice is None:
            return {}
        reasons.append(f"operator {'enabled' if choice else 'disabled'} it; choice kept")
        return {"operator_enabled": choice}

    def _operator_choice_only(self, row: ModelRow, reasons: list[str]) -> ModelRow:
        """When this run could not fetch a model's price or schema, `enabled` stays as it is; only an
        operator's change since the last sync is recorded."""
        values = self._record_choice(row, reasons)
        if values:
            values["enabled_by_sync"] = values["operator_enabled"]
        return values

    @staticmethod
    def _disabled_reason(priced: PricedModel, decision: EnableDecision) -> str:
        if not priced.valid:
            return "disabled: " + "; ".join(priced.validation_errors)
        return "disabled by policy" if not decision.by_operator else decision.reason

    # -- removals -----------------------------------------------------------------------------------

    def _removals(
        self, existing: Mapping[str, ModelRow], priced: Mapping[str, PricedModel], plan: SyncPlan
    ) -> list[RowChange]:
        context = self.context
        if context.mode in (SyncMode.PRICING_ONLY, SyncMode.EXISTING_ONLY):
            return []
        if not context.completeness.may_remove:
            if context.completeness.removal_note:
                plan.warnings.append(context.completeness.removal_note)
            return []
        changes = []
        for endpoint_id, row in existing.items():
            if endpoint_id in priced or row.get("provider") != "fal" or row.get("status") == "removed":
                continue
            reasons = ["gone from fal's catalog"]
            values: ModelRow = {"status": "removed"}
            if row.get("managed_by") == MANAGED_BY_PIPELINE:
                values |= self._enabled_values(row, None, reasons=reasons)
            values |= {"last_synced_at": context.now, "data_as_of": context.data_as_of}
            before = {column: row.get(column) for column in values}
            changes.append(RowChange(endpoint_id, Action.REMOVE, values, before, tuple(reasons)))
        return changes

    @staticmethod
    def _fetch_failed(priced: PricedModel) -> bool:
        return priced.price_status == PriceStatus.FAILED or priced.model.schema_status == SchemaStatus.FAILED


def changed_endpoint_ids(plan: SyncPlan, action: Action | None = None) -> list[str]:
    return [c.endpoint_id for c in plan.changes if action is None or c.action == action]


def summarize(changes: Iterable[RowChange]) -> dict[str, int]:
    summary: dict[str, int] = {}
    for change in changes:
        for reason in change.reasons:
            summary[reason] = summary.get(reason, 0) + 1
    return summary
