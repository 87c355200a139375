"""The profitability report's recommendations, reviewed against the table as it is now, then applied.

The report is `report.profitability.build_report`, the function the `profitability_report` asset calls,
over the synced rows (their rate cards evaluated under the deployment's policy, the policy verdict the
sync stored), so it says what the asset would say after the latest changes, operator actions included.
Enable and disable recommendations are applied as operator actions (reason "recommendation: <reason>"),
never over a person's choice; `reprice` is listed and never applied: fixed prices belong to people.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from genfeed_pipeline.admin.actions import (
    AuditAction,
    ModelChange,
    OperatorAction,
    catalog_transaction,
    has_operator_choice,
    managed,
    plan_change,
    why_not_enable,
    write_changes,
)
from genfeed_pipeline.admin.catalog import load_rows, priced_from_row
from genfeed_pipeline.admin.errors import AdminError
from genfeed_pipeline.clock import utc_now
from genfeed_pipeline.db.tables import ModelRow
from genfeed_pipeline.pricing import PricingPolicy, money_text, price_per_call
from genfeed_pipeline.report.profitability import build_report, recommendations
from genfeed_pipeline.sync.store import CatalogStore
from genfeed_pipeline.usage.store import RealizedWindow, load_realized

APPLICABLE = ("enable", "disable")
REPRICE_NOTE = "fixed prices belong to people: never applied automatically, set it in GenFeed's admin"


@dataclass(frozen=True)
class ReviewedRecommendation:
    endpoint_id: str
    category: str | None
    action: str  # enable | disable | reprice
    reason: str
    fal_cost: Decimal | None
    genfeed_price: Decimal | None
    suggested_price: Decimal | None  # reprice: the price at the target margin
    apply: bool
    note: str


@dataclass
class RecommendationsOutcome:
    items: list[ReviewedRecommendation]
    changes: list[ModelChange] = field(default_factory=list)
    dry_run: bool = True
    actor: str = ""
    at: datetime | None = None

    @property
    def to_apply(self) -> list[ReviewedRecommendation]:
        return [item for item in self.items if item.apply]

    @property
    def written(self) -> bool:
        return not self.dry_run and bool(self.changes)

    @property
    def count(self) -> int:
        """Applied, or in a dry run would be."""
        return len(self.to_apply) if self.dry_run else len(self.changes)

    @property
    def reprices(self) -> int:
        return sum(1 for item in self.items if item.action == "reprice")

    def records(self) -> list[dict[str, Any]]:
        applied = {change.endpoint_id for change in self.changes}
        lines = []
        for item in self.items:
            if not item.apply:
                outcome = "listed only" if item.action == "reprice" else "skipped"
            else:
                outcome = (
                    "would apply" if self.dry_run else "applied" if item.endpoint_id in applied else "skipped"
                )
            lines.append(
                {
                    "endpoint_id": item.endpoint_id,
                    "action": item.action,
                    "reason": item.reason,
                    "outcome": outcome,
                    "note": item.note,
                }
            )
        return lines


def report_for(
    rows: Mapping[str, ModelRow], policy: PricingPolicy, realized: RealizedWindow | None = None
) -> pd.DataFrame:
    """`build_report` over the synced fal rows (rows GenFeed's app added join as the report's own), with
    the last 30 days of fal's bill where usage is stored."""
    priced = {
        endpoint_id: priced_from_row(row, policy)
        for endpoint_id, row in rows.items()
        if row.get("provider") == "fal" and row.get("last_synced_at") is not None
    }
    return build_report(
        priced,
        rows,
        policy=policy,
        policy_enabled={endpoint_id: bool(rows[endpoint_id].get("policy_enabled")) for endpoint_id in priced},
        realized={model.endpoint_id: model for model in realized.figures.models} if realized else None,
    )


def _decimal(value: Any) -> Decimal | None:
    return None if value is None or pd.isna(value) else Decimal(value)


def _skip_note(item: Mapping[str, Any], row: Mapping[str, Any], allowed: Collection[str]) -> str | None:
    action = item["recommendation"]
    if action not in allowed:
        return f"{action} is not among the actions allowed ({', '.join(sorted(allowed)) or 'none'})"
    if has_operator_choice(row):
        choice = "enabled" if row.get("enabled") else "disabled"
        why = f" ({row['operator_reason']})" if row.get("operator_reason") else ""
        return f"an operator {choice} it{why}: a person's choice is kept; enable/disable it to override"
    if action == "enable" and not managed(row):
        return "GenFeed's own row: its `enabled` is the app's choice; enable it by hand to override"
    if action == "enable":
        return why_not_enable(row)
    return None


def review(
    rows: Mapping[str, ModelRow],
    policy: PricingPolicy,
    *,
    allowed: Collection[str] = APPLICABLE,
    endpoint_ids: Sequence[str] = (),
    realized: RealizedWindow | None = None,
) -> list[ReviewedRecommendation]:
    """Each recommendation of the report, with whether it would be applied and why not."""
    todo = recommendations(report_for(rows, policy, realized))
    if endpoint_ids:
        todo = todo[todo["endpoint_id"].isin(list(endpoint_ids))]
    reviewed = []
    for item in todo.to_dict("records"):
        row = rows[item["endpoint_id"]]
        cost = _decimal(item["fal_cost"])
        if item["recommendation"] == "reprice":
            suggested = _decimal(item["suggested_price"])
            if suggested is None and cost is not None:
                suggested = price_per_call(cost, policy)
            target = f" (≥ {money_text(suggested)} at the target margin)" if suggested is not None else ""
            note: str | None = REPRICE_NOTE + target
            apply = False
        else:
            suggested = None
            note = _skip_note(item, row, allowed)
            apply = note is None
        reviewed.append(
            ReviewedRecommendation(
                endpoint_id=item["endpoint_id"],
                category=item["category"],
                action=item["recommendation"],
                reason=item["reason"],
                fal_cost=cost,
                genfeed_price=_decimal(item["genfeed_price"]),
                suggested_price=suggested,
                apply=apply,
                note=note or f"recommendation: {item['reason']}",
            )
        )
    return sorted(reviewed, key=lambda r: (r.action, r.endpoint_id))


def apply_recommendations(
    store: CatalogStore,
    policy: PricingPolicy,
    *,
    actor: str,
    dry_run: bool = True,
    actions: Collection[str] = APPLICABLE,
    endpoint_ids: Sequence[str] = (),
    now: datetime | None = None,
) -> RecommendationsOutcome:
    """A dry run lists what would change; otherwise every applicable enable/disable is written as an
    operator action (audit action `apply_recommendation`) in one locked transaction."""
    allowed = {str(action).strip().lower() for action in actions}
    if "reprice" in allowed:
        raise AdminError(f"reprice cannot be applied: {REPRICE_NOTE}")
    unknown = allowed - set(APPLICABLE)
    if unknown:
        raise AdminError(f"actions must be among {', '.join(APPLICABLE)}, not {', '.join(sorted(unknown))}")
    at = now or utc_now()
    with catalog_transaction(store, dry_run=dry_run) as connection:
        rows = load_rows(connection, with_schemas=True)
        realized = load_realized(connection, at.date())
        outcome = RecommendationsOutcome(
            review(rows, policy, allowed=allowed, endpoint_ids=endpoint_ids, realized=realized),
            [],
            dry_run,
            actor,
            at,
        )
        for item in outcome.to_apply:
            planned = plan_change(
                rows[item.endpoint_id],
                OperatorAction(item.action),
                reason=f"recommendation: {item.reason}",
                now=at,
                audit_action=AuditAction.APPLY_RECOMMENDATION,
            )
            if isinstance(planned, ModelChange):
                outcome.changes.append(planned)
        if not dry_run:
            write_changes(connection, outcome.changes, actor=actor, at=at)
    return outcome
