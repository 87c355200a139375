"""One UTC day of fal's bill, turned into `model_usage_daily` rows: the contract's "Usage and realized
profitability", exactly.

fal's usage lines are summed per (day, endpoint, unit) (several lines for one key differ by discount); each
row then gets the day's price from the price history and GenFeed's two revenue readings: by the rate card
(quantity × GenFeed's price per unit) and per call (requests × GenFeed's price per call, or the row's
`fixedPrice`). Plain Python: the asset, the command line and the tests call the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from genfeed_pipeline.fal.models import FalUsageBucket, FalUsageItem
from genfeed_pipeline.pricing.money import plain, stored
from genfeed_pipeline.pricing.policy import PricingPolicy, price_per_call, resale_unit_price
from genfeed_pipeline.pricing.units import normalize_unit

ZERO = Decimal(0)
HUNDRED = Decimal(100)


class UsageDataError(ValueError):
    """fal's answer for a day cannot be read as that day's bill: nothing of the day was written."""


@dataclass(frozen=True)
class BilledLine:
    """fal's lines for one (day, endpoint, unit), summed."""

    day: date
    endpoint_id: str
    unit: str
    quantity: Decimal
    cost_subtotal: Decimal
    cost_discount: Decimal
    cost_total: Decimal
    currency: str

    @property
    def unit_price(self) -> Decimal | None:
        """What fal charged per unit before discount: subtotal ÷ quantity."""
        return stored(self.cost_subtotal / self.quantity) if self.quantity else None

    @property
    def percent_discount(self) -> Decimal | None:
        if not self.cost_discount or not self.cost_subtotal:
            return None
        return stored(self.cost_discount / self.cost_subtotal * HUNDRED)


@dataclass(frozen=True)
class DayPrice:
    """The catalog's price of an endpoint on one day (its last price-history row seen before the next
    00:00 UTC, or its earliest one with `assumed` when the history starts later), and the row's
    `fixedPrice`, which people set and which then replaces both readings' per-call price."""

    unit_price: Decimal | None
    unit_raw: str | None
    cost_per_call: Decimal | None
    assumed: bool = False
    fixed_price: Decimal | None = None


@dataclass(frozen=True)
class UsageRow:
    """One row of `model_usage_daily`."""

    day: date
    endpoint_id: str
    unit: str
    quantity: Decimal
    unit_price: Decimal | None
    percent_discount: Decimal | None
    cost_subtotal: Decimal
    cost_discount: Decimal
    cost_total: Decimal
    requests: int | None
    revenue_rate_card: Decimal | None
    revenue_per_call: Decimal | None
    price_assumed: bool
    currency: str

    @property
    def revenue(self) -> Decimal | None:
        """Revenue as GenFeed bills it: by the rate card where it applies, else per call."""
        return self.revenue_rate_card if self.revenue_rate_card is not None else self.revenue_per_call


@dataclass(frozen=True)
class UsageDay:
    """What fal reported for a day, summed, with the request counts of its endpoints."""

    day: date
    lines: list[BilledLine]
    requests: dict[str, int] = field(default_factory=dict)

    @property
    def endpoint_ids(self) -> list[str]:
        return sorted({line.endpoint_id for line in self.lines})


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[00:00, next 00:00) UTC."""
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _line_costs(item: FalUsageItem, where: str) -> tuple[Decimal, Decimal, Decimal]:
    """(subtotal, discount, total) of one item; items from before mid-2026 carry only `cost`."""
    if item.cost_total is not None or item.cost_subtotal is not None:
        total = item.cost_total if item.cost_total is not None else item.cost
        subtotal = item.cost_subtotal
        discount = item.cost_discount
        if total is None:
            raise UsageDataError(f"{where}: a line with cost_subtotal but no cost_total or cost")
        if subtotal is None:
            subtotal = total + (discount or ZERO)
        if discount is None:
            discount = subtotal - total
        return subtotal, discount, total
    if item.cost is None:
        raise UsageDataError(f"{where}: a line with no cost_total and no cost")
    subtotal = item.quantity * item.unit_price if item.unit_price is not None else item.cost
    return subtotal, subtotal - item.cost, item.cost


def sum_billed_lines(day: date, buckets: Iterable[FalUsageBucket]) -> list[BilledLine]:
    """fal's items of `day`, summed per (endpoint, unit stripped); refuses a bucket of another day or a
    negative quantity, naming the line."""
    totals: dict[tuple[str, str], list[Decimal]] = {}
    currencies: dict[tuple[str, str], str] = {}
    for bucket in buckets:
        bucket_day = bucket.bucket.astimezone(UTC).date() if bucket.bucket.tzinfo else bucket.bucket.date()
        if bucket_day != day and bucket.results:
            raise UsageDataError(f"fal's usage for {day} holds a bucket of {bucket.bucket.isoformat()}")
        for item in bucket.results:
            unit = item.unit.strip()
            where = f"usage of {day}, {item.endpoint_id} ({unit!r})"
            if item.quantity < 0:
                raise UsageDataError(f"{where}: negative quantity {item.quantity}")
            subtotal, discount, total = _line_costs(item, where)
            key = (item.endpoint_id, unit)
            sums = totals.setdefault(key, [ZERO, ZERO, ZERO, ZERO])
            for index, amount in enumerate((item.quantity, subtotal, discount, total)):
                sums[index] += amount
            currency = (item.currency or "USD").upper()
            if currencies.setdefault(key, currency) != currency:
                raise UsageDataError(f"{where}: lines in {currencies[key]} and {currency}")
    return [
        BilledLine(
            day=day,
            endpoint_id=endpoint_id,
            unit=unit,
            quantity=plain(quantity),
            cost_subtotal=plain(subtotal),
            cost_discount=plain(discount),
            cost_total=plain(total),
            currency=currencies[(endpoint_id, unit)],
        )
        for (endpoint_id, unit), (quantity, subtotal, discount, total) in sorted(totals.items())
    ]


def same_unit(billed_unit: str, catalog_unit_raw: str | None) -> bool:
    """Whether fal billed in the catalog's unit, both normalised as the catalog normalises units."""
    if catalog_unit_raw is None:
        return False
    return normalize_unit(billed_unit).normalized == normalize_unit(catalog_unit_raw).normalized


def price_usage_day(usage: UsageDay, prices: Mapping[str, DayPrice], policy: PricingPolicy) -> list[UsageRow]:
    """The day's rows: billed lines with requests on each endpoint's costliest line and both revenues.

    An endpoint the catalog does not price has null revenues (its cost is kept)."""
    costliest: dict[str, BilledLine] = {}
    for line in usage.lines:
        best = costliest.get(line.endpoint_id)
        if best is None or (line.cost_total, line.unit) > (best.cost_total, best.unit):
            costliest[line.endpoint_id] = line
    rows = []
    for line in usage.lines:
        price = prices.get(line.endpoint_id)
        carries_requests = costliest[line.endpoint_id] is line
        requests = usage.requests.get(line.endpoint_id) if carries_requests else None
        rows.append(
            UsageRow(
                day=line.day,
                endpoint_id=line.endpoint_id,
                unit=line.unit,
                quantity=line.quantity,
                unit_price=line.unit_price,
                percent_discount=line.percent_discount,
                cost_subtotal=line.cost_subtotal,
                cost_discount=line.cost_discount,
                cost_total=line.cost_total,
                requests=requests,
                revenue_rate_card=_revenue_rate_card(line, price, policy),
                revenue_per_call=_revenue_per_call(requests, price, policy),
                price_assumed=bool(price and price.assumed),
                currency=line.currency,
            )
        )
    return rows


def _revenue_rate_card(line: BilledLine, price: DayPrice | None, policy: PricingPolicy) -> Decimal | None:
    if price is None or price.fixed_price is not None or price.unit_price is None:
        return None
    if not same_unit(line.unit, price.unit_raw):
        return None
    return stored(line.quantity * resale_unit_price(price.unit_price, policy))


def _revenue_per_call(requests: int | None, price: DayPrice | None, policy: PricingPolicy) -> Decimal | None:
    if requests is None or price is None:
        return None
    if price.fixed_price is not None:
        return stored(requests * price.fixed_price)
    if price.cost_per_call is None:
        return None
    return stored(requests * price_per_call(price.cost_per_call, policy))


def realized_margin(revenue: Decimal | None, cost: Decimal) -> Decimal | None:
    """(revenue − cost) ÷ revenue; None when there is no revenue to divide by."""
    if revenue is None or revenue == 0:
        return None
    return (revenue - cost) / revenue
