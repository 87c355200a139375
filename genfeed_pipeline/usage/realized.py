"""What a day of usage says about money: realized margins by model and by type, and the two checks' rules
(fal billing a unit price other than the catalog's; a model earning less than the target margin)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from genfeed_pipeline.pricing.money import money_text, stored
from genfeed_pipeline.pricing.policy import PricingPolicy, price_per_call
from genfeed_pipeline.usage.daily import DayPrice, UsageRow, realized_margin, same_unit

ZERO = Decimal(0)
UNKNOWN_TYPE = "unknown"
PRICE_TOLERANCE = Decimal("0.01")
"""NFR4: fal's billed unit price may differ from the catalog's by at most 1% (before discount)."""
MARGIN_SLACK = Decimal("0.05")
"""A model is flagged when its realized margin is more than this below the deployment's target."""


def _sum(values: Iterable[Decimal | None]) -> Decimal | None:
    present = [value for value in values if value is not None]
    return sum(present, ZERO) if present else None


@dataclass(frozen=True)
class Realized:
    """Requests, cost and both revenue readings of a set of rows, with their margins."""

    requests: int
    billed_units: tuple[tuple[str, Decimal], ...]  # (fal's unit, quantity billed), by unit
    fal_cost: Decimal
    revenue_rate_card: Decimal | None
    revenue_per_call: Decimal | None
    cost_rate_card: Decimal  # the cost of the rows that have a rate-card revenue
    cost_per_call: Decimal  # the cost of the endpoints that have a per-call revenue
    revenue: Decimal | None  # as billed: the rate card where it applies, else per call
    cost_with_revenue: Decimal

    @property
    def margin_rate_card(self) -> Decimal | None:
        return realized_margin(self.revenue_rate_card, self.cost_rate_card)

    @property
    def margin_per_call(self) -> Decimal | None:
        return realized_margin(self.revenue_per_call, self.cost_per_call)

    @property
    def margin(self) -> Decimal | None:
        return realized_margin(self.revenue, self.cost_with_revenue)

    @property
    def unpriced_cost(self) -> Decimal:
        """Cost GenFeed has no revenue for (endpoints unknown to the catalog, or unpriced)."""
        return self.fal_cost - self.cost_with_revenue


def billed_units(rows: Iterable[UsageRow]) -> tuple[tuple[str, Decimal], ...]:
    """The quantity fal billed in each unit: units differ between models, so they are never added up."""
    quantities: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for row in rows:
        quantities[row.unit] += row.quantity
    return tuple(sorted(quantities.items()))


def realize(rows: Sequence[UsageRow]) -> Realized:
    by_endpoint: dict[str, list[UsageRow]] = defaultdict(list)
    for row in rows:
        by_endpoint[row.endpoint_id].append(row)
    per_call_cost = ZERO
    revenue_parts: list[Decimal] = []
    cost_with_revenue = ZERO
    for endpoint_rows in by_endpoint.values():
        endpoint_cost = sum((row.cost_total for row in endpoint_rows), ZERO)
        rate_card = _sum(row.revenue_rate_card for row in endpoint_rows)
        per_call = _sum(row.revenue_per_call for row in endpoint_rows)
        if per_call is not None:
            per_call_cost += endpoint_cost
        if rate_card is not None:
            revenue_parts.append(rate_card)
            cost_with_revenue += sum(
                (row.cost_total for row in endpoint_rows if row.revenue_rate_card is not None), ZERO
            )
        elif per_call is not None:
            revenue_parts.append(per_call)
            cost_with_revenue += endpoint_cost
    return Realized(
        requests=sum(row.requests or 0 for row in rows),
        billed_units=billed_units(rows),
        fal_cost=sum((row.cost_total for row in rows), ZERO),
        revenue_rate_card=_sum(row.revenue_rate_card for row in rows),
        revenue_per_call=_sum(row.revenue_per_call for row in rows),
        cost_rate_card=sum((row.cost_total for row in rows if row.revenue_rate_card is not None), ZERO),
        cost_per_call=per_call_cost,
        revenue=_sum(revenue_parts),
        cost_with_revenue=cost_with_revenue,
    )


@dataclass(frozen=True)
class ModelRealized:
    endpoint_id: str
    model_type: str
    figures: Realized

    @property
    def loses_money(self) -> bool:
        margins = (self.figures.margin_rate_card, self.figures.margin_per_call)
        return any(margin is not None and margin < 0 for margin in margins)


@dataclass(frozen=True)
class TypeRealized:
    model_type: str
    models: int
    figures: Realized


@dataclass(frozen=True)
class Profitability:
    """Realized figures over [first_day, last_day]: one day for `usage_profitability`, a window for the
    catalog's report."""

    first_day: date
    last_day: date
    totals: Realized
    models: list[ModelRealized]  # by fal cost, highest first
    by_type: list[TypeRealized]
    unknown_endpoints: list[str]

    @property
    def losing(self) -> list[ModelRealized]:
        return [model for model in self.models if model.loses_money]


def profitability(
    first_day: date, last_day: date, rows: Sequence[UsageRow], model_types: Mapping[str, str]
) -> Profitability:
    by_endpoint: dict[str, list[UsageRow]] = defaultdict(list)
    for row in rows:
        by_endpoint[row.endpoint_id].append(row)
    models = sorted(
        (
            ModelRealized(
                endpoint_id=endpoint_id,
                model_type=model_types.get(endpoint_id, UNKNOWN_TYPE),
                figures=realize(endpoint_rows),
            )
            for endpoint_id, endpoint_rows in by_endpoint.items()
        ),
        key=lambda model: (-model.figures.fal_cost, model.endpoint_id),
    )
    by_type_rows: dict[str, list[UsageRow]] = defaultdict(list)
    by_type_models: dict[str, int] = defaultdict(int)
    for model in models:
        by_type_rows[model.model_type].extend(by_endpoint[model.endpoint_id])
        by_type_models[model.model_type] += 1
    by_type = [
        TypeRealized(model_type=kind, models=by_type_models[kind], figures=realize(kind_rows))
        for kind, kind_rows in sorted(by_type_rows.items())
    ]
    return Profitability(
        first_day=first_day,
        last_day=last_day,
        totals=realize(rows),
        models=models,
        by_type=by_type,
        unknown_endpoints=sorted(endpoint for endpoint in by_endpoint if endpoint not in model_types),
    )


# -- the checks' rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BilledPriceFinding:
    endpoint_id: str
    billed_unit: str
    catalog_unit: str | None
    billed_unit_price: Decimal | None
    catalog_unit_price: Decimal | None
    reason: str


@dataclass(frozen=True)
class BilledPriceReview:
    """`billed_unit_price_matches_catalog`: endpoints whose bill disagrees with the catalog's price."""

    checked: int
    flagged: list[BilledPriceFinding]
    unknown_endpoints: list[str]  # billed, but not in the catalog: not flagged
    unpriced_endpoints: list[str]  # in the catalog without a unit price: nothing to compare


def review_billed_prices(
    rows: Sequence[UsageRow], prices: Mapping[str, DayPrice], tolerance: Decimal = PRICE_TOLERANCE
) -> BilledPriceReview:
    flagged: list[BilledPriceFinding] = []
    unknown: set[str] = set()
    unpriced: set[str] = set()
    checked = 0
    for row in rows:
        price = prices.get(row.endpoint_id)
        if price is None:
            unknown.add(row.endpoint_id)
            continue
        if price.unit_price is None:
            unpriced.add(row.endpoint_id)
            continue
        checked += 1
        reason = _price_disagreement(row, price, tolerance)
        if reason is not None:
            flagged.append(
                BilledPriceFinding(
                    endpoint_id=row.endpoint_id,
                    billed_unit=row.unit,
                    catalog_unit=price.unit_raw,
                    billed_unit_price=row.unit_price,
                    catalog_unit_price=price.unit_price,
                    reason=reason,
                )
            )
    return BilledPriceReview(
        checked=checked,
        flagged=flagged,
        unknown_endpoints=sorted(unknown),
        unpriced_endpoints=sorted(unpriced),
    )


def _price_disagreement(row: UsageRow, price: DayPrice, tolerance: Decimal) -> str | None:
    catalog = price.unit_price
    assert catalog is not None
    if not same_unit(row.unit, price.unit_raw):
        return f"billed per {row.unit!r}, the catalog prices per {price.unit_raw!r}"
    billed = row.unit_price
    if billed is None:
        return None
    if catalog == 0:
        return "the catalog's price is 0, fal billed more" if billed > 0 else None
    difference = abs(billed - catalog) / catalog
    if difference > tolerance:
        return f"billed unit price differs by {difference * 100:.2f}% (more than {tolerance * 100:.0f}%)"
    return None


@dataclass(frozen=True)
class MarginFinding:
    endpoint_id: str
    model_type: str
    fal_cost: Decimal
    revenue_rate_card: Decimal | None
    margin_rate_card: Decimal | None
    revenue_per_call: Decimal | None
    margin_per_call: Decimal | None


@dataclass(frozen=True)
class MarginReview:
    """`realized_margin_below_target`: models earning less than the target margin − 0.05."""

    target: Decimal | None  # None in core: prices are at cost, there is no margin target
    threshold: Decimal | None
    checked: int
    flagged: list[MarginFinding]


def review_realized_margins(figures: Profitability, policy: PricingPolicy) -> MarginReview:
    if not policy.is_cloud:
        return MarginReview(target=None, threshold=None, checked=len(figures.models), flagged=[])
    threshold = policy.margin - MARGIN_SLACK
    flagged = [
        MarginFinding(
            endpoint_id=model.endpoint_id,
            model_type=model.model_type,
            fal_cost=model.figures.fal_cost,
            revenue_rate_card=model.figures.revenue_rate_card,
            margin_rate_card=model.figures.margin_rate_card,
            revenue_per_call=model.figures.revenue_per_call,
            margin_per_call=model.figures.margin_per_call,
        )
        for model in figures.models
        if any(
            margin is not None and margin < threshold
            for margin in (model.figures.margin_rate_card, model.figures.margin_per_call)
        )
    ]
    return MarginReview(
        target=policy.margin, threshold=threshold, checked=len(figures.models), flagged=flagged
    )


# -- what the catalog's report makes of the last 30 days -------------------------------------------


REALIZED_WINDOW_DAYS = 30


def realized_window(today: date) -> tuple[date, date]:
    """The last 30 complete UTC days before `today`."""
    return today - timedelta(days=REALIZED_WINDOW_DAYS), today - timedelta(days=1)


def daily_margins(rows: Sequence[UsageRow]) -> list[tuple[date, Decimal]]:
    """Each day's realized margin as billed (days without revenue are left out)."""
    by_day: dict[date, list[UsageRow]] = defaultdict(list)
    for row in rows:
        by_day[row.day].append(row)
    margins = []
    for day, day_rows in sorted(by_day.items()):
        margin = realize(day_rows).margin
        if margin is not None:
            margins.append((day, margin))
    return margins


@dataclass(frozen=True)
class RealizedAdvice:
    action: str  # "disable" | "reprice"
    reason: str
    suggested_price: Decimal | None = None


def realized_advice(
    model: ModelRealized, policy: PricingPolicy, *, fixed_price: Decimal | None = None
) -> RealizedAdvice | None:
    """What the realized figures ask of a model, cloud only (core prices at cost: there is no margin).

    * `disable`: it loses money as GenFeed bills it (revenue as billed below fal's cost).
    * `reprice`: its per-call price earns less than the target margin − 0.05, typically because its
      requests bill more units than the schema's defaults (longer videos, larger images); the suggested
      price is the policy's price for the realized cost per request.
    """
    if not policy.is_cloud:
        return None
    figures = model.figures
    if figures.margin is not None and figures.margin < 0:
        return RealizedAdvice(
            "disable",
            f"loses money as billed: fal cost {money_text(figures.cost_with_revenue)} against revenue "
            f"{money_text(figures.revenue)} ({figures.margin * 100:.1f}% realized margin)",
        )
    threshold = policy.margin - MARGIN_SLACK
    per_call = figures.margin_per_call
    if per_call is None or per_call >= threshold or not figures.requests:
        return None
    cost_per_request = figures.cost_per_call / figures.requests
    suggested = price_per_call(cost_per_request, policy)
    if fixed_price is not None and fixed_price >= suggested:
        return None
    return RealizedAdvice(
        "reprice",
        f"requests cost fal {money_text(stored(cost_per_request))} each on average: the price per call "
        f"earns {per_call * 100:.1f}%, below {threshold * 100:.0f}%",
        suggested,
    )
