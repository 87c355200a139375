"""Price drift: how each model's fal price moved since the value last synced into the `models` table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from genfeed_pipeline.exact_json import decimal_number_text
from genfeed_pipeline.fal.catalog import PriceStatus
from genfeed_pipeline.pricing.money import to_decimal
from genfeed_pipeline.pricing.priced import PricedModel


@dataclass(frozen=True)
class PriceDrift:
    endpoint_id: str
    field: str  # "unit_price" | "cost_per_call" | "unit" | "quantity" (the rate card's rule)
    old: Any
    new: Any
    change_pct: Decimal | None  # None when the old value was 0 or the unit changed

    def describe(self) -> str:
        if self.change_pct is None:
            return f"{self.field}: {self.old} → {self.new}"
        return f"{self.field}: {self.old} → {self.new} ({self.change_pct:+.1f}%)"


def _relative_change(old: Decimal, new: Decimal) -> Decimal | None:
    return None if old == 0 else (new - old) / old * 100


def _sorted(value: Any) -> Any:
    """Keys and lists sorted, numbers as plain decimal text: equal rules compare equal."""
    if isinstance(value, Mapping):
        return {str(key): _sorted(item) for key, item in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return sorted((_sorted(item) for item in value), key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    number = to_decimal(value)
    return decimal_number_text(number) if number is not None else str(value)


def quantity_rule_text(quantity: Any) -> str:
    """A rate card's `quantity` rule as canonical JSON: keys and lists sorted."""
    return json.dumps(_sorted(quantity), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def find_price_drift(
    rows: Mapping[str, Mapping[str, Any]], priced: Mapping[str, PricedModel], threshold: Decimal
) -> list[PriceDrift]:
    """Every model whose unit price or cost per call moved more than `threshold` (0.05 = 5%) since the
    last synced value, whose unit changed, or whose rate card counts the quantity differently (both rules
    present and different once keys and lists are sorted); an old value of 0 that moved is always
    reported."""
    drifts: list[PriceDrift] = []
    for endpoint_id, model in priced.items():
        row = rows.get(endpoint_id)
        if row is None or model.price_status != PriceStatus.PRICED or model.unit_price is None:
            continue
        if row.get("unit") is not None and model.unit is not None and row["unit"] != model.unit:
            drifts.append(PriceDrift(endpoint_id, "unit", row["unit"], model.unit, None))
            continue
        for field, new in (("unit_price", model.unit_price), ("cost_per_call", model.cost_per_call)):
            old = row.get(field)
            if old is None or new is None:
                continue
            old, new = Decimal(old), Decimal(new)
            if old == new:
                continue
            change = _relative_change(old, new)
            if change is None or abs(change) > threshold * 100:
                drifts.append(PriceDrift(endpoint_id, field, old, new, change))
        old_card, new_card = row.get("rate_card"), model.rate_card
        if isinstance(old_card, Mapping) and new_card is not None:
            old_rule, new_rule = old_card.get("quantity"), new_card.get("quantity")
            if old_rule is not None and new_rule is not None:
                old_text, new_text = quantity_rule_text(old_rule), quantity_rule_text(new_rule)
                if old_text != new_text:
                    drifts.append(PriceDrift(endpoint_id, "quantity", old_text, new_text, None))
    return drifts
