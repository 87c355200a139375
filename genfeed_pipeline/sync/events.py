"""What a sync changed, as the small JSON-ready items of a `catalog.changed` event."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from genfeed_pipeline.exact_json import decimal_number_text
from genfeed_pipeline.sync.plan import Action, SyncPlan

PRICE_FIELDS = ("unit_price", "unit", "cost_per_call", "price_per_call")


def _text(value: Any) -> Any:
    if value is None:
        return None
    return decimal_number_text(value) if isinstance(value, Decimal) else str(value)


def sync_change_items(plan: SyncPlan) -> dict[str, list[dict[str, Any]]]:
    new, removed, price_changes = [], [], []
    for change in plan.changes:
        values, before = change.values, change.before
        if change.action == Action.INSERT:
            new.append(
                {
                    "endpoint_id": change.endpoint_id,
                    "name": values.get("name"),
                    "category": values.get("category"),
                    "price_per_call": _text(values.get("price_per_call")),
                    "enabled": values.get("enabled"),
                }
            )
        elif change.action == Action.REMOVE:
            removed.append({"endpoint_id": change.endpoint_id})
        elif "unit_price" in values or "unit" in values:
            price_changes.append(
                {"endpoint_id": change.endpoint_id}
                | {f"old_{field}": _text(before.get(field)) for field in PRICE_FIELDS if field in values}
                | {f"new_{field}": _text(values[field]) for field in PRICE_FIELDS if field in values}
            )
    held = [
        {"endpoint_id": entry["endpoint_id"], "reason": entry["review_reason"]}
        for entry in plan.schema_history
        if entry["status"] == "held"
    ]
    return {"new": new, "removed": removed, "price_changes": price_changes, "held": held}
