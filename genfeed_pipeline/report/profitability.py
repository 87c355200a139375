"""The profitability report: fal cost against GenFeed's price, per model and per type, and what to do.

Dynamic-priced models are this run's priced catalog; fixed-price models are rows of the `models` table
whose `pricing` carries a `fixedPrice` set by people. Money stays `Decimal` in the frame (object
columns); percentages are floats for display only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd

from genfeed_pipeline.pricing import PricedModel, PricingPolicy, money_text, price_per_call
from genfeed_pipeline.pricing.money import stored
from genfeed_pipeline.usage.realized import ModelRealized, realized_advice

REALIZED_COLUMNS = (
    "realized_requests",
    "realized_fal_cost",
    "realized_revenue",
    "realized_margin_pct",
    "realized_cost_per_request",
)
MODEL_COLUMNS = [
    "endpoint_id",
    "name",
    "category",
    "pricing_kind",
    "status",
    "valid",
    "priced",
    "enabled",
    "fal_cost",
    "genfeed_price",
    "margin_usd",
    "margin_pct",
    "unit",
    "recommendation",
    "reason",
    "suggested_price",
    *REALIZED_COLUMNS,
]


@dataclass(frozen=True)
class Recommendation:
    endpoint_id: str
    action: str  # "enable" | "disable" | "reprice"
    reason: str
    suggested_price: Decimal | None = None


def _margin(price: Decimal | None, cost: Decimal | None) -> tuple[Decimal | None, float | None]:
    if price is None or cost is None:
        return None, None
    margin = price - cost
    return margin, float(margin / price * 100) if price else None


def fixed_price_of(pricing: Any) -> Decimal | None:
    if not isinstance(pricing, dict) or pricing.get("fixedPrice") in (None, ""):
        return None
    try:
        return Decimal(str(pricing["fixedPrice"]))
    except ArithmeticError:
        return None


def recommend(
    priced: PricedModel | None,
    row: Mapping[str, Any] | None,
    *,
    fixed_price: Decimal | None,
    policy: PricingPolicy,
    policy_enabled: bool,
    realized: ModelRealized | None = None,
) -> Recommendation | None:
    """One recommendation per model: fal's catalog first (a fixed price below cost, removed, invalid,
    deprecated), then what the last 30 days of fal's bill say (`usage.realized.realized_advice`), then
    enabling what the policy allows."""
    endpoint_id = priced.model.endpoint_id if priced else str(row["id"]) if row else ""
    enabled = bool(row.get("enabled")) if row else policy_enabled
    status = (row or {}).get("status") or (priced.model.status if priced else "active")
    cost = priced.cost_per_call if priced else None
    if fixed_price is not None and cost is not None:
        suggested = price_per_call(cost, policy)
        if fixed_price < cost:
            return Recommendation(
                endpoint_id,
                "reprice",
                f"fixed price {money_text(fixed_price)} is below fal cost {money_text(cost)}",
                suggested,
            )
    if enabled and status == "removed":
        return Recommendation(endpoint_id, "disable", "gone from fal's catalog")
    if enabled and priced is not None and not priced.valid:
        return Recommendation(endpoint_id, "disable", "; ".join(priced.validation_errors))
    if enabled and status == "deprecated":
        return Recommendation(endpoint_id, "disable", "deprecated by fal")
    advice = realized_advice(realized, policy, fixed_price=fixed_price) if realized is not None else None
    if advice is not None and (advice.action == "reprice" or enabled):
        return Recommendation(endpoint_id, advice.action, advice.reason, advice.suggested_price)
    if advice is not None:
        return None
    if not enabled and priced is not None and policy_enabled and status == "active" and fixed_price is None:
        margin = priced.margin_pct
        detail = f" at {margin:.0f}% margin" if margin is not None else ""
        return Recommendation(endpoint_id, "enable", f"valid and priced{detail}")
    return None


def build_report(
    priced_models: Mapping[str, PricedModel],
    rows: Mapping[str, Mapping[str, Any]],
    *,
    policy: PricingPolicy,
    policy_enabled: Mapping[str, bool],
    realized: Mapping[str, ModelRealized] | None = None,
) -> pd.DataFrame:
    """One line per model: this run's catalog plus every fixed-price row of the table, with the realized
    figures of the last 30 days where fal's bill has them (`realized`, by endpoint id)."""
    realized = realized or {}
    records: list[dict[str, Any]] = []
    for endpoint_id, priced in priced_models.items():
        row = rows.get(endpoint_id)
        fixed = fixed_price_of(row.get("pricing")) if row else None
        price = fixed if fixed is not None else priced.price_per_call
        margin, margin_pct = _margin(price, priced.cost_per_call)
        recommendation = recommend(
            priced,
            row,
            fixed_price=fixed,
            policy=policy,
            policy_enabled=policy_enabled.get(endpoint_id, False),
            realized=realized.get(endpoint_id),
        )
        records.append(
            {
                "endpoint_id": endpoint_id,
                "name": priced.model.name,
                "category": priced.model.category.value if priced.model.category else "unknown",
                "pricing_kind": "fixed" if fixed is not None else "dynamic",
                "status": (row or {}).get("status") or priced.model.status,
                "valid": priced.valid,
                "priced": priced.priced,
                "enabled": bool(row["enabled"]) if row else policy_enabled.get(endpoint_id, False),
                "fal_cost": priced.cost_per_call,
                "genfeed_price": price,
                "margin_usd": margin,
                "margin_pct": margin_pct,
                "unit": priced.unit,
                "recommendation": recommendation.action if recommendation else None,
                "reason": recommendation.reason if recommendation else None,
                "suggested_price": recommendation.suggested_price if recommendation else None,
                **_realized_columns(realized.get(endpoint_id)),
            }
        )
    for endpoint_id, row in rows.items():
        if endpoint_id in priced_models:
            continue
        fixed = fixed_price_of(row.get("pricing"))
        recommendation = recommend(
            None,
            row,
            fixed_price=fixed,
            policy=policy,
            policy_enabled=False,
            realized=realized.get(endpoint_id),
        )
        if fixed is None and row.get("status") != "removed" and recommendation is None:
            continue
        records.append(
            {
                "endpoint_id": endpoint_id,
                "name": row.get("name"),
                "category": row.get("category"),
                "pricing_kind": "fixed" if fixed is not None else "dynamic",
                "status": row.get("status") or "active",
                "valid": not row.get("validation_errors"),
                "priced": row.get("cost_per_call") is not None,
                "enabled": bool(row.get("enabled")),
                "fal_cost": row.get("cost_per_call"),
                "genfeed_price": fixed if fixed is not None else row.get("price_per_call"),
                "margin_usd": None,
                "margin_pct": None,
                "unit": row.get("unit"),
                "recommendation": recommendation.action if recommendation else None,
                "reason": recommendation.reason if recommendation else None,
                "suggested_price": recommendation.suggested_price if recommendation else None,
                **_realized_columns(realized.get(endpoint_id)),
            }
        )
        margin, margin_pct = _margin(records[-1]["genfeed_price"], records[-1]["fal_cost"])
        records[-1] |= {"margin_usd": margin, "margin_pct": margin_pct}
    frame = pd.DataFrame.from_records(records, columns=MODEL_COLUMNS)
    return frame.sort_values(["category", "endpoint_id"], kind="stable").reset_index(drop=True)


def _realized_columns(model: ModelRealized | None) -> dict[str, Any]:
    if model is None:
        return dict.fromkeys(REALIZED_COLUMNS)
    figures = model.figures
    per_request = stored(figures.fal_cost / figures.requests) if figures.requests else None
    return {
        "realized_requests": figures.requests,
        "realized_fal_cost": figures.fal_cost,
        "realized_revenue": figures.revenue,
        "realized_margin_pct": float(figures.margin * 100) if figures.margin is not None else None,
        "realized_cost_per_request": per_request,
    }


def summarize_by_category(report: pd.DataFrame) -> pd.DataFrame:
    """Per type: models, priced, enabled, median and total fal cost and price, mean margin %."""
    priced = report[report["fal_cost"].notna() & report["genfeed_price"].notna()]
    groups = report.groupby("category", sort=True)
    summary = pd.DataFrame(
        {
            "models": groups.size(),
            "priced": groups["priced"].sum(),
            "valid": groups["valid"].sum(),
            "enabled": groups["enabled"].sum(),
        }
    )
    if not priced.empty:
        priced_groups = priced.groupby("category")
        summary["median_fal_cost"] = priced_groups["fal_cost"].apply(lambda s: _median(list(s)))
        summary["median_price"] = priced_groups["genfeed_price"].apply(lambda s: _median(list(s)))
        summary["mean_margin_pct"] = priced_groups["margin_pct"].mean().round(1)
    return summary.fillna({"median_fal_cost": "", "median_price": "", "mean_margin_pct": 0.0}).reset_index()


def _median(values: list[Decimal]) -> Decimal | None:
    ordered = sorted(Decimal(v) for v in values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def recommendations(report: pd.DataFrame) -> pd.DataFrame:
    columns = ["endpoint_id", "category", "recommendation", "reason", "fal_cost", "genfeed_price"]
    return report[report["recommendation"].notna()][[*columns, "suggested_price"]].reset_index(drop=True)


COST_BUCKETS = (
    (Decimal("0.01"), "< $0.01"),
    (Decimal("0.05"), "$0.01-0.05"),
    (Decimal("0.20"), "$0.05-0.20"),
    (Decimal("1.00"), "$0.20-1.00"),
    (None, "≥ $1.00"),
)


def cost_distribution(report: pd.DataFrame) -> list[tuple[str, float]]:
    """How many priced models fall in each band of fal cost per call."""
    counts = dict.fromkeys((label for _, label in COST_BUCKETS), 0)
    for cost in report["fal_cost"].dropna():
        label = next(label for bound, label in COST_BUCKETS if bound is None or Decimal(cost) < bound)
        counts[label] += 1
    return [(label, float(count)) for label, count in counts.items()]


def margin_by_type(by_category: pd.DataFrame) -> list[tuple[str, float]]:
    if "mean_margin_pct" not in by_category:
        return []
    return [
        (str(row.category), float(row.mean_margin_pct))
        for row in by_category.itertuples(index=False)
        if row.priced
    ]
