"""The usage rules as plain functions, without a run: summing fal's lines, the day's price, both revenue
readings, the two checks' thresholds and what the realized figures recommend. Figures worked by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from genfeed_pipeline.fal.models import FalUsageBucket, FalUsageItem
from genfeed_pipeline.pricing.policy import CLOUD, CORE
from genfeed_pipeline.usage.daily import (
    DayPrice,
    UsageDataError,
    UsageDay,
    price_usage_day,
    realized_margin,
    sum_billed_lines,
)
from genfeed_pipeline.usage.realized import (
    profitability,
    realized_advice,
    review_billed_prices,
    review_realized_margins,
)

DAY = date(2026, 6, 1)


def bucket(*items: dict, day: date = DAY) -> FalUsageBucket:
    return FalUsageBucket(
        bucket=datetime(day.year, day.month, day.day, tzinfo=UTC),
        results=[FalUsageItem.model_validate(item) for item in items],
    )


def item(endpoint_id: str, unit: str, quantity: str, unit_price: str, discount: str = "0") -> dict:
    subtotal = Decimal(quantity) * Decimal(unit_price)
    cut = subtotal * Decimal(discount) / 100
    return {
        "endpoint_id": endpoint_id,
        "unit": unit,
        "quantity": quantity,
        "unit_price": unit_price,
        "percent_discount": discount,
        "cost_subtotal": str(subtotal),
        "cost_discount": str(cut),
        "cost_total": str(subtotal - cut),
        "cost": str(subtotal - cut),
        "currency": "USD",
    }


def test_lines_of_one_key_are_summed_and_units_stripped() -> None:
    lines = sum_billed_lines(
        DAY,
        [
            bucket(
                item("a/x", "images", "10", "0.08"),
                item("a/x", "images ", "5", "0.08", "20"),
                {"endpoint_id": "a/x", "unit": "megapixels", "quantity": 4, "unit_price": 0.025, "cost": 0.1},
            )
        ],
    )
    by_unit = {line.unit: line for line in lines}
    images = by_unit["images"]
    assert (images.quantity, images.cost_subtotal, images.cost_discount, images.cost_total) == (
        Decimal(15),
        Decimal("1.2"),
        Decimal("0.08"),
        Decimal("1.12"),
    )
    assert images.unit_price == Decimal("0.08")
    assert images.percent_discount == Decimal("6.6666666667")
    legacy = by_unit["megapixels"]
    assert (legacy.cost_subtotal, legacy.cost_total, legacy.percent_discount) == (
        Decimal("0.1"),
        Decimal("0.1"),
        None,
    )


def test_unreadable_days_are_refused_naming_the_line() -> None:
    with pytest.raises(UsageDataError, match="holds a bucket of 2026-06-02"):
        sum_billed_lines(DAY, [bucket(item("a/x", "images", "1", "0.1"), day=date(2026, 6, 2))])
    with pytest.raises(UsageDataError, match=r"a/x \('images'\): negative quantity"):
        sum_billed_lines(DAY, [bucket(item("a/x", "images", "-1", "0.1"))])
    with pytest.raises(UsageDataError, match="no cost_total and no cost"):
        sum_billed_lines(DAY, [bucket({"endpoint_id": "a/x", "unit": "images", "quantity": 1})])
    euro = {**item("a/x", "images", "1", "0.1"), "currency": "EUR"}
    with pytest.raises(UsageDataError, match="lines in USD and EUR"):
        sum_billed_lines(DAY, [bucket(item("a/x", "images", "1", "0.1"), euro)])


def test_requests_sit_on_the_costliest_line_and_revenues_follow_the_day_price() -> None:
    lines = sum_billed_lines(
        DAY,
        [
            bucket(
                item("a/x", "seconds", "100", "0.1"),
                item("a/x", "images", "2", "0.01"),
                item("b/y", "images", "3", "0.1"),
            )
        ],
    )
    prices = {
        "a/x": DayPrice(unit_price=Decimal("0.1"), unit_raw="seconds", cost_per_call=Decimal("0.5")),
        "b/y": DayPrice(
            unit_price=Decimal("0.1"), unit_raw="images", cost_per_call=None, fixed_price=Decimal("0.25")
        ),
    }
    rows = {
        (r.endpoint_id, r.unit): r
        for r in price_usage_day(UsageDay(DAY, lines, {"a/x": 20, "b/y": 3}), prices, CLOUD)
    }
    seconds, images = rows[("a/x", "seconds")], rows[("a/x", "images")]
    assert (seconds.requests, images.requests) == (20, None), (
        "requests once per endpoint: on its costliest line"
    )
    assert seconds.revenue_rate_card == Decimal("33.3334")  # 100 × (0.1 ÷ 0.3 → 0.333334)
    assert seconds.revenue_per_call == Decimal("33.334")  # 20 × (0.5 ÷ 0.3 → 1.6667)
    assert images.revenue_rate_card is None, "billed in images, the catalog prices in seconds"
    fixed = rows[("b/y", "images")]
    assert fixed.revenue_rate_card is None and fixed.revenue_per_call == Decimal("0.75"), (
        "fixedPrice per call"
    )
    core = price_usage_day(UsageDay(DAY, lines, {"a/x": 20}), prices, CORE)
    assert {(r.unit, r.revenue_rate_card) for r in core if r.endpoint_id == "a/x"} == {
        ("seconds", Decimal("10")),
        ("images", None),
    }, "core: both readings at cost"
    assert realized_margin(None, Decimal(1)) is None and realized_margin(Decimal(0), Decimal(1)) is None
    assert realized_margin(Decimal(4), Decimal(1)) == Decimal("0.75")


@pytest.mark.parametrize(
    ("billed", "catalog", "billed_unit", "flagged"),
    [
        ("0.0808", "0.08", "images", False),  # exactly 1%: within
        ("0.080801", "0.08", "images", True),  # just above 1%
        ("0.0792", "0.08", "image", False),  # the catalog's units are normalised: image = images
        ("0.01", "0", "images", True),  # a catalog price of 0 billed above 0
        ("0", "0", "images", False),
        ("0.08", "0.08", "compute seconds", True),  # a different unit
    ],
)
def test_billed_unit_price_tolerance(billed: str, catalog: str, billed_unit: str, flagged: bool) -> None:
    lines = sum_billed_lines(DAY, [bucket(item("a/x", billed_unit, "100", billed))])
    prices = {"a/x": DayPrice(unit_price=Decimal(catalog), unit_raw="images", cost_per_call=Decimal(catalog))}
    review = review_billed_prices(price_usage_day(UsageDay(DAY, lines), prices, CLOUD), prices)
    assert bool(review.flagged) is flagged
    assert review.checked == 1 and review.unknown_endpoints == []


def test_margin_threshold_core_and_what_the_figures_recommend() -> None:
    lines = sum_billed_lines(
        DAY,
        [
            bucket(
                item("a/long-videos", "seconds", "200", "0.095"),
                item("a/loses", "compute seconds", "100", "0.01"),
            )
        ],
    )
    prices = {
        "a/long-videos": DayPrice(
            unit_price=Decimal("0.095"), unit_raw="seconds", cost_per_call=Decimal("0.475")
        ),
        "a/loses": DayPrice(unit_price=Decimal("0.06"), unit_raw="images", cost_per_call=Decimal("0.06")),
    }
    rows = price_usage_day(UsageDay(DAY, lines, {"a/long-videos": 5, "a/loses": 2}), prices, CLOUD)
    figures = profitability(DAY, DAY, rows, {"a/long-videos": "video", "a/loses": "image"})
    review = review_realized_margins(figures, CLOUD)
    assert review.threshold == Decimal("0.65")
    assert {finding.endpoint_id for finding in review.flagged} == {"a/long-videos", "a/loses"}
    assert review_realized_margins(figures, CORE).flagged == [], "core: no margin target"
    models = {model.endpoint_id: model for model in figures.models}
    loses = realized_advice(models["a/loses"], CLOUD)
    assert loses is not None and loses.action == "disable"  # $1.00 cost against 2 × $0.20
    longer = realized_advice(models["a/long-videos"], CLOUD)
    assert longer is not None and longer.action == "reprice"
    assert longer.suggested_price == Decimal("12.6667")  # $19 ÷ 5 = $3.80 a request, ÷ 0.3
    assert realized_advice(models["a/long-videos"], CLOUD, fixed_price=Decimal("13")) is None
    assert realized_advice(models["a/loses"], CORE) is None
    assert [model.endpoint_id for model in figures.losing] == ["a/long-videos", "a/loses"]
