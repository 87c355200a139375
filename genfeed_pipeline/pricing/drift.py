"""Price drift: how each model's fal price moved since the value last synced into the `models` table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from genfeed_pipeline.fal.catalog import PriceStatus
from genfeed_pipeline.pricing.priced import PricedModel


@dataclass(frozen=True)
class PriceDrift:
    endpoint_id: str
    field: str  # "unit_price" | "cost_per_call" | "unit"
    old: Any
    new: Any
    change_pct: Decimal | None  # None when the old value was 0 or the unit changed

    def describe(self) -> str:
        if self.change_pct is None:
            return f"{self.field}: {self.old} → {self.new}"
        return f"{self.field}: {self.old} → {self.new} ({self.change_pct:+.1f}%)"


def _relative_change(old: Decimal, new: Decimal) -> Decimal | None:
    return None if old == 0 else (new - old) / old * 100


def find_price_drift(
    rows: Mapping[str, Mapping[str, Any]], priced: Mapping[str, PricedModel], threshold: Decimal
) -> list[PriceDrift]:
    """Every model whose unit price or cost per call moved more than `threshold` (0.05 = 5%) since the
    last synced value, or whose unit changed; an old value of 0 that moved is always reported."""
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
    return drifts
