"""`refresh_fal_usage` end to end: fal's bill for three UTC days, read over real HTTP from the emulator,
summed, priced by the day's catalog price and written to `model_usage_daily`, on SQLite and PostgreSQL.

The figures are worked by hand (cloud: resale per unit = unit price ÷ 0.30 rounded up to $0.000001; per
call = cost ÷ 0.30 rounded up to $0.0001). `fal-ai/ideogram/v2` gets a price-history row dated before the
days (unit price $0.07), so those days use it and not the catalog's current $0.08, and are not assumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from genfeed_pipeline.admin.recommendations import apply_recommendations
from genfeed_pipeline.assets.metadata import evidence_rows
from genfeed_pipeline.db.tables import model_price_history, models
from genfeed_pipeline.pricing.policy import CLOUD
from genfeed_pipeline.report.markdown import escape
from genfeed_pipeline.sync.store import CatalogStore
from genfeed_pipeline_tests.fal_emulator import DEFAULT_ADMIN_KEY
from genfeed_pipeline_tests.faults_support import Pipeline, open_pipeline

TODAY = datetime.now(UTC).date()
D1, D2, D3 = (TODAY - timedelta(days=back) for back in (4, 3, 2))  # inside the report's 30-day window
K1, K2, K3 = (day.isoformat() for day in (D1, D2, D3))
IDEOGRAM = "fal-ai/ideogram/v2"
KLING = "fal-ai/kling-video/v1.6/pro/image-to-video"
FLUX = "fal-ai/flux/dev"
UNKNOWN = "acme/not-in-the-catalog"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def pipeline(tmp_path: Path, database_url: str | None) -> Iterator[Pipeline]:
    with open_pipeline(
        tmp_path, database_url, extra_env={"FAL_ADMIN_KEY": DEFAULT_ADMIN_KEY}, people=False
    ) as pipeline:
        with pipeline.engine.begin() as connection:
            connection.execute(
                model_price_history.insert().values(
                    endpoint_id=IDEOGRAM,
                    seen_at=datetime.combine(D1 - timedelta(days=1), time(12), tzinfo=UTC),
                    unit_price=Decimal("0.07"),
                    unit="image",
                    unit_raw="images",
                    cost_per_call=Decimal("0.07"),
                    price_per_call=Decimal("0.2334"),
                    price_source="live",
                    deployment="cloud",
                )
            )
        usage = pipeline.emulator.usage
        usage.add_line(D1, IDEOGRAM, "images", 10, "0.08")
        usage.add_line(D1, IDEOGRAM, "images", 5, "0.08", 20)
        usage.set_requests(D1, IDEOGRAM, 12, 13)
        usage.add_line(D1, KLING, "seconds", 200, "0.095")
        usage.set_requests(D1, KLING, 5)
        usage.add_line(D1, FLUX, "megapixels", 8, "0.025", legacy=True)
        usage.set_requests(D1, FLUX, 8)
        usage.add_line(D1, UNKNOWN, "images", 3, "0.1")
        usage.set_requests(D1, UNKNOWN, 3)
        usage.add_line(D3, IDEOGRAM, "images", 4, "0.08")
        usage.set_requests(D3, IDEOGRAM, 4)
        yield pipeline


def rows_by_key(pipeline: Pipeline) -> dict[tuple[date, str], dict[str, Any]]:
    return {(row["day"], row["endpoint_id"]): row for row in pipeline.usage_rows()}


def catalog_cost_per_call(pipeline: Pipeline, endpoint_id: str) -> Decimal:
    with pipeline.engine.connect() as connection:
        return connection.execute(
            sa.select(models.c.cost_per_call).where(models.c.id == endpoint_id)
        ).scalar_one()


def metadata_by_partition(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, dict[str, Any]]:
    found = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if materialization.asset_key == dg.AssetKey(asset):
            found[materialization.partition] = {k: v.value for k, v in materialization.metadata.items()}
    return found


def check_result(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def test_three_days_are_summed_priced_and_checked(pipeline: Pipeline) -> None:
    result = pipeline.usage(K1, K3)
    rows = rows_by_key(pipeline)
    assert {day for day, _ in rows} == {D1, D3}, "D2 had no usage: no rows, yet materialized"

    ideogram = rows[(D1, IDEOGRAM)]
    assert ideogram["unit"] == "images"
    assert ideogram["quantity"] == Decimal(15)
    assert ideogram["cost_subtotal"] == Decimal("1.2")
    assert ideogram["cost_discount"] == Decimal("0.08")  # 5 × 0.08 × 20%
    assert ideogram["cost_total"] == Decimal("1.12")
    assert ideogram["unit_price"] == Decimal("0.08")
    assert ideogram["percent_discount"] == Decimal("6.6666666667")  # 0.08 ÷ 1.2 × 100, rounded up once
    assert ideogram["requests"] == 12, "fal bills successes: success_count, not request_count"
    assert ideogram["revenue_rate_card"] == Decimal("3.50001")  # 15 × (0.07 ÷ 0.3 → 0.233334)
    assert ideogram["revenue_per_call"] == Decimal("2.8008")  # 12 × (0.07 ÷ 0.3 → 0.2334)
    assert ideogram["price_assumed"] is False, "the history row before the day is the day's price"

    kling = rows[(D1, KLING)]
    assert kling["cost_total"] == Decimal("19")
    assert kling["revenue_rate_card"] == Decimal("63.3334")  # 200 s × (0.095 ÷ 0.3 → 0.316667)
    kling_price = (catalog_cost_per_call(pipeline, KLING) / Decimal("0.3")).quantize(
        Decimal("0.0001"), rounding="ROUND_CEILING"
    )
    assert kling["revenue_per_call"] == 5 * kling_price
    assert kling["price_assumed"] is True, "the history starts after the day: its earliest row, assumed"

    flux = rows[(D1, FLUX)]
    assert (flux["cost_subtotal"], flux["cost_total"], flux["cost_discount"]) == (
        Decimal("0.2"),
        Decimal("0.2"),
        Decimal(0),
    ), "a line from before mid-2026 carries only cost"
    assert flux["revenue_rate_card"] == Decimal("0.666672")  # 8 MP × (0.025 ÷ 0.3 → 0.083334)

    unknown = rows[(D1, UNKNOWN)]
    assert unknown["cost_total"] == Decimal("0.3")
    assert unknown["revenue_rate_card"] is None and unknown["revenue_per_call"] is None

    usage_days = metadata_by_partition(result, "fal_usage")
    assert set(usage_days) == {K1, K2, K3}
    assert usage_days[K2]["dagster/row_count"] == 0
    assert usage_days[K1]["fal_cost"] == pytest.approx(1.12 + 19 + 0.2 + 0.3)
    assert usage_days[K1]["unknown_endpoint_count"] == 1
    assert escape(UNKNOWN) in usage_days[K1]["unknown_endpoints"]

    profit_days = metadata_by_partition(result, "usage_profitability")
    assert set(profit_days) == set(usage_days)
    day1 = profit_days[K1]
    for name in ("fal_cost", "revenue_rate_card", "revenue_per_call", "realized_margin"):
        assert isinstance(day1[name], float), name
    # As billed: the rate card for all three known models; the unknown model's cost has no revenue.
    revenue = Decimal("3.50001") + Decimal("63.3334") + Decimal("0.666672")
    cost = Decimal("1.12") + Decimal("19") + Decimal("0.2")
    assert day1["realized_margin"] == pytest.approx(float((revenue - cost) / revenue))
    assert day1["unpriced_cost"] == pytest.approx(0.3)
    assert escape(KLING) in day1["losing_models"] and escape(IDEOGRAM) not in day1["losing_models"]
    assert "kling" in day1["top_models"]
    # Billed units by fal's unit, never added across units: ideogram 10 + 5 images and the unknown model's 3.
    assert day1["billed_units"] == {"images": 18.0, "megapixels": 8.0, "seconds": 200.0}
    kling_line = next(line for line in day1["top_models"].splitlines() if escape(KLING) in line)
    assert "| 5 | 200 seconds | $19 |" in kling_line, kling_line

    billed = check_result(result, "billed_unit_price_matches_catalog")
    assert not billed.passed
    flagged = billed.metadata["flagged"].value.records
    assert {(r.data["day"], r.data["endpoint_id"]) for r in flagged} == {
        (K1, IDEOGRAM),
        (K3, IDEOGRAM),
    }, "billed $0.08 against the day's $0.07 (14%); kling and flux billed their catalog price"
    assert (
        flagged[0].data["billed_unit_price"] == "$0.08" and flagged[0].data["catalog_unit_price"] == "$0.07"
    )
    assert escape(UNKNOWN) in billed.metadata["unknown_endpoints"].value
    assert escape(UNKNOWN) not in billed.metadata["flagged_endpoints"].value

    margin = check_result(result, "realized_margin_below_target")
    assert not margin.passed
    flagged_margins = {
        (r.data["day"], r.data["endpoint_id"]) for r in margin.metadata["flagged"].value.records
    }
    # D1 ideogram per call: 15 images in 12 requests, (2.8008 − 1.12) ÷ 2.8008 = 60.0% < 65%; kling per
    # call loses money; flux: 70%. D3 ideogram: one image a request, (0.9336 − 0.32) ÷ 0.9336 = 65.7%.
    assert flagged_margins == {(K1, IDEOGRAM), (K1, KLING)}


def test_a_day_run_again_replaces_it_exactly(pipeline: Pipeline) -> None:
    pipeline.usage(K1)
    first = rows_by_key(pipeline)
    pipeline.usage(K1)
    assert rows_by_key(pipeline) == {
        key: {**row, "synced_at": rows_by_key(pipeline)[key]["synced_at"]} for key, row in first.items()
    }, "a re-run of the same figures changes nothing but synced_at"
    pipeline.emulator.usage.clear_day(D1)
    pipeline.emulator.usage.add_line(D1, IDEOGRAM, "images", 2, "0.08")
    pipeline.emulator.usage.set_requests(D1, IDEOGRAM, 2)
    pipeline.usage(K1)
    rows = rows_by_key(pipeline)
    assert list(rows) == [(D1, IDEOGRAM)], "fal's corrected day replaces the day, nothing is added to it"
    assert rows[(D1, IDEOGRAM)]["quantity"] == 2 and rows[(D1, IDEOGRAM)]["requests"] == 2


def test_profitability_alone_reads_the_stored_day(pipeline: Pipeline) -> None:
    pipeline.usage(K1)
    before = len(pipeline.emulator.requests)
    job = pipeline.defs.resolve_job_def("refresh_fal_usage")
    result = job.execute_in_process(
        run_config=pipeline.run_config(),
        instance=pipeline.instance,
        partition_key=K1,
        asset_selection=[dg.AssetKey("usage_profitability")],
    )
    assert result.success
    assert len(pipeline.emulator.requests) == before, "profitability alone asks fal nothing"
    (day,) = metadata_by_partition(result, "usage_profitability").values()
    assert day["fal_cost"] == pytest.approx(1.12 + 19 + 0.2 + 0.3)


def test_without_the_admin_key_nothing_is_materialized(pipeline: Pipeline) -> None:
    config = pipeline.fal_config()
    config.pop("admin_key")
    job = pipeline.defs.resolve_job_def("refresh_fal_usage")
    result = job.execute_in_process(
        run_config={**pipeline.run_config(), "resources": {"fal": {"config": config}}},
        instance=pipeline.instance,
        partition_key=K1,
    )
    assert result.success, "no admin key is not an error: the job succeeds"
    assert pipeline.usage_rows() == []
    assert result.get_asset_materialization_events() == []
    observations = [e for e in result.all_events if e.is_asset_observation]
    reasons = {
        str(e.asset_observation_data.asset_observation.metadata["not_materialized"].value)
        for e in observations
    }
    assert reasons == {"FAL_ADMIN_KEY is not set: fal's usage needs an admin key"}
    assert not any("/models/usage" in request.path for request in pipeline.emulator.requests)
    assert pipeline.instance.get_materialized_partitions(dg.AssetKey("fal_usage")) == set(), (
        "a later backfill must still find the day missing"
    )


ULTRA = "fal-ai/flux-pro/v1.1-ultra"


def test_the_catalog_report_and_recommendations_read_the_last_30_days(pipeline: Pipeline) -> None:
    # fal bills the ultra model by compute seconds ($1.00) where the catalog sells it per image: the two
    # requests bring 2 × ($0.06 ÷ 0.3 = $0.20) = $0.40, a loss as billed.
    pipeline.emulator.usage.add_line(D2, ULTRA, "compute seconds", 100, "0.01")
    pipeline.emulator.usage.set_requests(D2, ULTRA, 2)
    pipeline.usage(K1, K3)
    result = pipeline.refresh()
    report = result.output_for_node("profitability_report")
    lines = report.set_index("endpoint_id")

    ultra = lines.loc[ULTRA]
    assert ultra["recommendation"] == "disable"
    assert (
        "loses money as billed" in ultra["reason"] and "$1" in ultra["reason"] and "$0.4" in ultra["reason"]
    )
    assert ultra["realized_fal_cost"] == Decimal(1) and ultra["realized_requests"] == 2

    # kling: 40 s a request where the per-call price assumes the default; the rate card still earns 70%.
    kling = lines.loc[KLING]
    assert kling["recommendation"] == "reprice"
    assert kling["suggested_price"] == Decimal("12.6667")  # $19 ÷ 5 requests = $3.80; ÷ 0.3, up to $0.0001
    assert kling["realized_cost_per_request"] == Decimal("3.8")
    # ideogram: 15 images in 12 requests on D1, 4 in 4 on D3 → per call (3.7344 − 1.44) ÷ 3.7344 = 61.4%.
    ideogram = lines.loc[IDEOGRAM]
    assert ideogram["recommendation"] == "reprice"
    assert ideogram["suggested_price"] == Decimal("0.3")  # $1.44 ÷ 16 = $0.09 ÷ 0.3
    assert lines.loc[FLUX]["recommendation"] not in ("reprice", "disable"), "flux earns 70% both ways"

    (materialization,) = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey("profitability_report")
    ]
    summary = materialization.metadata["summary"].value
    assert "Realized, last 30 days" in summary and "Realized margin by day" not in summary  # it is an image
    assert "data:image/svg+xml;base64," in summary
    assert isinstance(materialization.metadata["realized_margin_30d"].value, float)

    applied = apply_recommendations(
        CatalogStore(pipeline.engine), CLOUD, actor="data-team", dry_run=False, actions=["disable"]
    )
    outcomes = {(line["endpoint_id"], line["action"]): line["outcome"] for line in applied.records()}
    assert outcomes[(ULTRA, "disable")] == "applied"
    assert outcomes[(KLING, "reprice")] == "listed only", "prices belong to people: never applied"
    with pipeline.engine.connect() as connection:
        enabled = dict(connection.execute(sa.select(models.c.id, models.c.enabled)).all())
        kling_price = connection.execute(
            sa.select(models.c.price_per_call).where(models.c.id == KLING)
        ).scalar()
    assert enabled[ULTRA] is False
    assert kling_price != Decimal("12.6667")


def test_a_check_shows_every_flagged_endpoint_however_many_days_it_spans() -> None:
    """A 300-day backfill flagging three endpoints every day: the table keeps to 500 rows and still names
    each endpoint, on its latest day; a thousand endpoints flagged once each are all shown."""
    days = [(date(2026, 1, 1) + timedelta(days=offset)).isoformat() for offset in range(300)]
    flagged = [{"day": day, "endpoint_id": endpoint} for day in days for endpoint in ("a/x", "b/y", "c/z")]
    shown = evidence_rows(flagged, key="endpoint_id", limit=500)
    assert len(shown) == 500 and {row["endpoint_id"] for row in shown} == {"a/x", "b/y", "c/z"}
    assert all(row in shown for row in flagged[-3:]), "each endpoint's latest day"
    assert shown == sorted(shown, key=flagged.index), "in their order"

    many = [{"day": days[0], "endpoint_id": f"owner/model-{index}"} for index in range(1000)]
    assert evidence_rows(many, key="endpoint_id", limit=500) == many
    assert evidence_rows(flagged[:7], key="endpoint_id", limit=500) == flagged[:7]
