"""What fal billed, one UTC day per partition: `fal_usage` (the day's rows of `model_usage_daily`) and
`usage_profitability` (that day's realized margins), with their checks.

Both assets are computed by one step: a day is fetched once, priced once and written once, and the
profitability and both checks read the rows the step has just written. Selecting `usage_profitability`
alone recomputes it from the stored days. The values live in `model_usage_daily`, one set of rows per day,
so partitions never overwrite each other (no IO manager is involved).

A backfill of many days is one run (`BackfillPolicy.single_run`): a day's work is a few hundred
milliseconds of fal round trips, less than what a Dagster run costs to plan and record, so one run per day
would spend most of a 90-day backfill on bookkeeping. The run fetches eight days at a time and records one
materialization per day, with that day's figures, so the UI still shows and plots every day on its own.
Each day is written in its own transaction: a day fal fails to answer keeps what was stored before, and
the days already written stay written.
"""

from collections.abc import Iterator, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import dagster as dg
import sqlalchemy as sa

from genfeed_pipeline.assets.discovery import OWNERS
from genfeed_pipeline.assets.metadata import evidence_rows, preview_table
from genfeed_pipeline.clock import utc_now
from genfeed_pipeline.exact_json import decimal_number_text
from genfeed_pipeline.fal.usage_source import DAYS_PER_BATCH, DayUsageFetch
from genfeed_pipeline.pricing.money import money_text
from genfeed_pipeline.pricing.policy import PricingPolicy
from genfeed_pipeline.report import markdown
from genfeed_pipeline.resources import (
    CatalogCheckSettings,
    CatalogMigrations,
    FalCatalogResource,
    PricingPolicyResource,
)
from genfeed_pipeline.settings import usage_start_date
from genfeed_pipeline.usage.daily import UsageRow, price_usage_day
from genfeed_pipeline.usage.realized import (
    MARGIN_SLACK,
    BilledPriceReview,
    MarginReview,
    ModelRealized,
    Profitability,
    Realized,
    profitability,
    review_billed_prices,
    review_realized_margins,
)
from genfeed_pipeline.usage.store import PriceBook, UsageCatalog, load_usage, replace_usage_day

USAGE_GROUP = "fal_usage"
USAGE_TAGS = {"domain": "model_usage", "source": "fal"}
USAGE_DAYS = dg.DailyPartitionsDefinition(start_date=usage_start_date().isoformat(), timezone="UTC")
"""One partition per UTC day, from GENFEED_USAGE_START_DATE to yesterday (today is not over yet)."""
FAL_USAGE = dg.AssetKey("fal_usage")
USAGE_PROFITABILITY = dg.AssetKey("usage_profitability")
BILLED_PRICE_CHECK = dg.AssetCheckKey(FAL_USAGE, "billed_unit_price_matches_catalog")
MARGIN_CHECK = dg.AssetCheckKey(USAGE_PROFITABILITY, "realized_margin_below_target")
TOP_MODELS = 10
EVIDENCE_ROWS = 500
ZERO = Decimal(0)


@dg.multi_asset(
    name="fal_usage_days",
    group_name=USAGE_GROUP,
    partitions_def=USAGE_DAYS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
    specs=[
        dg.AssetSpec(
            FAL_USAGE,
            description="What fal billed on the day, per endpoint and unit (GET /v1/models/usage, with "
            "request counts from GET /v1/models/analytics), priced by the catalog: the day's rows of "
            "`model_usage_daily`. Needs FAL_ADMIN_KEY.",
            owners=OWNERS,
            tags=USAGE_TAGS,
            kinds={"python", "api", "sql"},
            skippable=True,
        ),
        dg.AssetSpec(
            USAGE_PROFITABILITY,
            description="The day's requests, billed units, fal cost, both revenue readings and realized "
            "margin, by model and by type, and the models that lose money.",
            deps=[FAL_USAGE],
            owners=OWNERS,
            tags=USAGE_TAGS,
            kinds={"python"},
            skippable=True,
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            BILLED_PRICE_CHECK.name,
            asset=FAL_USAGE,
            description="fal's billed unit price (before discount) within 1% of the catalog's, in the same "
            "unit (NFR4).",
        ),
        dg.AssetCheckSpec(
            MARGIN_CHECK.name,
            asset=USAGE_PROFITABILITY,
            description="No model's realized margin, in either reading, below the target margin − 0.05.",
        ),
    ],
)
def fal_usage_days(
    context: dg.AssetExecutionContext,
    fal: FalCatalogResource,
    catalog_migrations: CatalogMigrations,
    pricing: PricingPolicyResource,
    catalog_checks: CatalogCheckSettings,
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckResult | dg.AssetObservation]:
    selected = context.selected_asset_keys
    checks = context.selected_asset_check_keys
    policy = pricing.policy()
    engine = catalog_migrations.engine()
    prices = PriceBook(engine)
    days = [date.fromisoformat(key) for key in context.partition_keys]
    billed: list[tuple[date, BilledPriceReview]] = []
    margins: list[tuple[date, MarginReview]] = []
    written: list[date] = []
    failure: UsageFetchFailed | None = None
    for fetched in _fetched_days(fal, days, fetch=FAL_USAGE in selected):
        unavailable = [day for day in fetched if day.unavailable_reason]
        if unavailable:
            reason = unavailable[0].unavailable_reason
            context.log.warning("usage not materialized for %d days: %s", len(days), reason)
            for key in sorted(selected):
                for day in days:
                    yield dg.AssetObservation(
                        asset_key=key, partition=day.isoformat(), metadata={"not_materialized": reason}
                    )
            return
        for day_fetch in (day for day in fetched if day.error is None):
            day = day_fetch.day
            rows, catalog = _rows_of_day(engine, prices, day_fetch, policy)
            if day_fetch.usage is not None:
                replace_usage_day(engine, day, rows, utc_now())
                written.append(day)
                context.log.info(
                    "usage %s: %d rows, %d endpoints, fal cost %s",
                    day,
                    len(rows),
                    len({row.endpoint_id for row in rows}),
                    money_text(sum((row.cost_total for row in rows), start=ZERO)),
                )
                yield dg.AssetMaterialization(
                    asset_key=FAL_USAGE,
                    partition=day.isoformat(),
                    metadata=_usage_metadata(day_fetch, rows, catalog),
                )
            if BILLED_PRICE_CHECK in checks:
                billed.append((day, review_billed_prices(rows, catalog.prices)))
            if USAGE_PROFITABILITY in selected or MARGIN_CHECK in checks:
                figures = profitability(day, day, rows, catalog.model_types)
                if USAGE_PROFITABILITY in selected:
                    yield dg.AssetMaterialization(
                        asset_key=USAGE_PROFITABILITY,
                        partition=day.isoformat(),
                        metadata=_profitability_metadata(figures),
                    )
                if MARGIN_CHECK in checks:
                    margins.append((day, review_realized_margins(figures, policy)))
        failures = [day for day in fetched if day.error is not None]
        if failures:
            failure = UsageFetchFailed.of(failures, days, written)
            break
    # The checks report on every day written, also when a later day failed and fails the run.
    if BILLED_PRICE_CHECK in checks:
        yield _billed_price_result(billed, catalog_checks.severity("billed_unit_price_matches_catalog"))
    if MARGIN_CHECK in checks:
        yield _margin_result(margins, policy, catalog_checks.severity("realized_margin_below_target"))
    if failure is not None:
        raise failure


class UsageFetchFailed(RuntimeError):
    """fal did not answer for some days of the run: those days keep what was stored before."""

    @classmethod
    def of(
        cls, failures: Sequence[DayUsageFetch], days: Sequence[date], written: Sequence[date]
    ) -> "UsageFetchFailed":
        failed_days = ", ".join(failure.day.isoformat() for failure in failures)
        last_fetched = max(failure.day for failure in failures)
        unread = [day for day in days if day > last_fetched and day not in written]
        not_read = f"; not read: {len(unread)} days from {unread[0].isoformat()}" if unread else ""
        error = cls(
            f"fal's usage could not be read for {failed_days} (nothing of those days was written; "
            f"other days stored: {len(written)}{not_read}): {failures[0].error}"
        )
        error.__cause__ = failures[0].error
        return error


def _fetched_days(
    fal: FalCatalogResource, days: Sequence[date], *, fetch: bool
) -> Iterator[list[DayUsageFetch]]:
    """The days from fal in batches (see `UsageSource.fetch_in_batches`); without `fetch`, the days to
    read back from the table, in the same batches."""
    if fetch:
        yield from fal.usage_source().fetch_in_batches(days)
        return
    for index in range(0, len(days), DAYS_PER_BATCH):
        yield [DayUsageFetch(day=day, usage=None) for day in days[index : index + DAYS_PER_BATCH]]


def _rows_of_day(
    engine: sa.Engine, prices: PriceBook, fetched: DayUsageFetch, policy: PricingPolicy
) -> tuple[list[UsageRow], UsageCatalog]:
    """The day's rows priced from what fal just sent, or the stored rows when the day is not fetched."""
    if fetched.usage is not None:
        catalog = prices.catalog_for(fetched.usage.endpoint_ids, fetched.day)
        return price_usage_day(fetched.usage, catalog.prices, policy), catalog
    with engine.connect() as connection:
        rows = load_usage(connection, fetched.day, fetched.day)
    return rows, prices.catalog_for(sorted({row.endpoint_id for row in rows}), fetched.day)


def _usage_metadata(
    fetched: DayUsageFetch, rows: Sequence[UsageRow], catalog: UsageCatalog
) -> dict[str, Any]:
    endpoints = {row.endpoint_id for row in rows}
    unknown = sorted(endpoint for endpoint in endpoints if endpoint not in catalog.prices)
    fal_cost = sum((row.cost_total for row in rows), start=0)
    return {
        "dagster/row_count": len(rows),
        "endpoints": len(endpoints),
        "fal_cost": float(fal_cost),
        "fal_cost_usd": money_text(fal_cost),
        "requests": sum(row.requests or 0 for row in rows),
        "price_assumed_rows": sum(1 for row in rows if row.price_assumed),
        "unknown_endpoint_count": len(unknown),
        "unknown_endpoints": dg.MetadataValue.md(markdown.bullet_list(unknown)),
        "fal_usage_pages": fetched.usage_pages,
        "fal_analytics_requests": fetched.analytics_requests,
    }


def _units_text(figures: Realized) -> str:
    return ", ".join(f"{decimal_number_text(quantity)} {unit}" for unit, quantity in figures.billed_units)


def _figures_line(figures: Realized) -> list[object]:
    return [
        figures.requests,
        _units_text(figures),
        money_text(figures.fal_cost),
        money_text(figures.revenue_rate_card),
        _percent(figures.margin_rate_card),
        money_text(figures.revenue_per_call),
        _percent(figures.margin_per_call),
        _percent(figures.margin),
    ]


def _model_line(model: ModelRealized) -> list[object]:
    return [model.endpoint_id, model.model_type, *_figures_line(model.figures)]


def _percent(value: object) -> str:
    return "-" if value is None else f"{float(value) * 100:.1f}%"  # type: ignore[arg-type]


MODEL_HEADERS = [
    "endpoint_id",
    "type",
    "requests",
    "billed units",
    "fal cost",
    "revenue (rate card)",
    "margin (rate card)",
    "revenue (per call)",
    "margin (per call)",
    "margin as billed",
]


def _profitability_metadata(day: Profitability) -> dict[str, Any]:
    totals = day.totals
    metadata: dict[str, Any] = {
        "fal_cost": float(totals.fal_cost),
        "revenue_rate_card": float(totals.revenue_rate_card or 0),
        "revenue_per_call": float(totals.revenue_per_call or 0),
        "requests": totals.requests,
        "billed_units": dg.MetadataValue.json(
            {unit: float(quantity) for unit, quantity in totals.billed_units}
        ),
        "models": len(day.models),
        "losing_model_count": len(day.losing),
        "unpriced_cost": float(totals.unpriced_cost),
    }
    for name, value in (
        ("realized_margin", totals.margin),
        ("realized_margin_rate_card", totals.margin_rate_card),
        ("realized_margin_per_call", totals.margin_per_call),
    ):
        if value is not None:
            metadata[name] = float(value)
    by_margin = sorted(
        (model for model in day.models if model.figures.margin is not None),
        key=lambda model: (model.figures.margin, model.endpoint_id),
    )
    metadata["by_type"] = dg.MetadataValue.md(
        markdown.table(
            [[kind.model_type, kind.models, *_figures_line(kind.figures)] for kind in day.by_type],
            ["type", "models", *MODEL_HEADERS[2:]],
            limit=None,
        )
    )
    metadata["top_models"] = dg.MetadataValue.md(
        "**By fal cost**\n\n"
        + markdown.table([_model_line(model) for model in day.models], MODEL_HEADERS, limit=TOP_MODELS)
        + "\n\n**Lowest margin**\n\n"
        + markdown.table([_model_line(model) for model in by_margin], MODEL_HEADERS, limit=TOP_MODELS)
    )
    metadata["losing_models"] = dg.MetadataValue.md(
        markdown.table([_model_line(model) for model in day.losing], MODEL_HEADERS, limit=100)
    )
    metadata["unknown_endpoints"] = dg.MetadataValue.md(markdown.bullet_list(day.unknown_endpoints))
    return metadata


def _billed_price_result(
    reviews: Sequence[tuple[date, BilledPriceReview]], severity: dg.AssetCheckSeverity
) -> dg.AssetCheckResult:
    columns = [
        ("day", "string"),
        ("endpoint_id", "string"),
        ("billed_unit", "string"),
        ("catalog_unit", "string"),
        ("billed_unit_price", "string"),
        ("catalog_unit_price", "string"),
        ("reason", "string"),
    ]
    flagged = [
        {
            "day": day.isoformat(),
            "endpoint_id": finding.endpoint_id,
            "billed_unit": finding.billed_unit,
            "catalog_unit": finding.catalog_unit,
            "billed_unit_price": money_text(finding.billed_unit_price),
            "catalog_unit_price": money_text(finding.catalog_unit_price),
            "reason": finding.reason,
        }
        for day, review in reviews
        for finding in review.flagged
    ]
    checked = sum(review.checked for _, review in reviews)
    unknown = sorted({endpoint for _, review in reviews for endpoint in review.unknown_endpoints})
    unpriced = sorted({endpoint for _, review in reviews for endpoint in review.unpriced_endpoints})
    evidence, shown_text = _flagged_evidence(flagged, columns)
    return dg.AssetCheckResult(
        check_name=BILLED_PRICE_CHECK.name,
        asset_key=FAL_USAGE,
        passed=not flagged,
        severity=severity,
        description=f"{len(flagged)} of {checked} billed lines differ from the catalog's price "
        f"({_days_text(reviews)}){shown_text}",
        metadata={
            "days": _days_text(reviews),
            "expected": "the catalog's unit price of the day, within 1%, before discount, in the same unit",
            "checked_lines": checked,
            **evidence,
            "unknown_endpoints": dg.MetadataValue.md(markdown.bullet_list(unknown)),
            "unpriced_endpoints": dg.MetadataValue.md(markdown.bullet_list(unpriced)),
        },
    )


def _flagged_evidence(
    flagged: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]
) -> tuple[dict[str, Any], str]:
    """A check's evidence: the `flagged` table (every flagged endpoint in it, however long the run), its
    counts and the flagged endpoints; and what the description adds when rows were left out."""
    shown = evidence_rows(flagged, key="endpoint_id", limit=EVIDENCE_ROWS)
    evidence = {
        "flagged_count": len(flagged),
        "flagged_rows_shown": len(shown),
        "flagged": preview_table(shown, columns, limit=len(shown)),
        "flagged_endpoints": dg.MetadataValue.md(
            markdown.bullet_list(sorted({row["endpoint_id"] for row in flagged}))
        ),
    }
    if len(shown) == len(flagged):
        return evidence, ""
    return evidence, (
        f"; the table shows {len(shown)} of the {len(flagged)} rows: "
        "every flagged endpoint, its latest day at least"
    )


def _days_text(reviews: Sequence[tuple[date, object]]) -> str:
    if not reviews:
        return "no days"
    days = [day for day, _ in reviews]
    if len(days) > 1 and (days[-1] - days[0]).days + 1 == len(days):
        return f"{days[0].isoformat()} to {days[-1].isoformat()}"
    return ", ".join(day.isoformat() for day in days)


def _margin_result(
    reviews: Sequence[tuple[date, MarginReview]], policy: PricingPolicy, severity: dg.AssetCheckSeverity
) -> dg.AssetCheckResult:
    checked = sum(review.checked for _, review in reviews)
    if not policy.is_cloud:
        return dg.AssetCheckResult(
            check_name=MARGIN_CHECK.name,
            asset_key=USAGE_PROFITABILITY,
            passed=True,
            severity=severity,
            description="no margin target: core prices at fal's cost",
            metadata={"target": "no margin target", "checked_models": checked, "days": _days_text(reviews)},
        )
    threshold = policy.margin - MARGIN_SLACK
    columns = [
        ("day", "string"),
        ("endpoint_id", "string"),
        ("type", "string"),
        ("fal_cost", "string"),
        ("revenue_rate_card", "string"),
        ("margin_rate_card", "string"),
        ("revenue_per_call", "string"),
        ("margin_per_call", "string"),
    ]
    flagged = [
        {
            "day": day.isoformat(),
            "endpoint_id": finding.endpoint_id,
            "type": finding.model_type,
            "fal_cost": money_text(finding.fal_cost),
            "revenue_rate_card": money_text(finding.revenue_rate_card),
            "margin_rate_card": _percent(finding.margin_rate_card),
            "revenue_per_call": money_text(finding.revenue_per_call),
            "margin_per_call": _percent(finding.margin_per_call),
        }
        for day, review in reviews
        for finding in review.flagged
    ]
    evidence, shown_text = _flagged_evidence(flagged, columns)
    return dg.AssetCheckResult(
        check_name=MARGIN_CHECK.name,
        asset_key=USAGE_PROFITABILITY,
        passed=not flagged,
        severity=severity,
        description=f"{len(flagged)} model-days of {checked} below {_percent(threshold)} "
        f"({_days_text(reviews)}){shown_text}",
        metadata={
            "days": _days_text(reviews),
            "target_margin": float(policy.margin),
            "threshold": float(threshold),
            "checked_model_days": checked,
            **evidence,
        },
    )
