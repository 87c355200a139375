"""fal's bill misbehaving under `refresh_fal_usage`, on SQLite and PostgreSQL: nothing is lost.

Each case starts from the fault suite's baseline catalog (a good refresh, the app's own rows, two operator
choices), bills a few UTC days in the emulator, runs the real job over real HTTP and compares, value for
value, what must not move: the catalog tables (the usage job never writes them) and the stored rows of
every day the case does not name (their `synced_at` included: they were not rewritten). A day is written
whole or not at all, under its lock, and a day fal fails to answer keeps what was stored before.

The figures are worked by hand (cloud: resale per unit = unit price ÷ 0.30 rounded up to $0.000001, per call
= cost per call ÷ 0.30 rounded up to $0.0001; every day here lies before the price history starts, so each
endpoint's earliest price is the day's, `price_assumed`).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from genfeed_pipeline.db.tables import model_price_history
from genfeed_pipeline.report.markdown import escape
from genfeed_pipeline_tests.conftest import TEST_FAL_KEY
from genfeed_pipeline_tests.fal_emulator import (
    ANALYTICS_PATH,
    DEFAULT_ADMIN_KEY,
    USAGE_PATH,
    EmulatedUsage,
    Fault,
    RecordedRequest,
    _Response,
)
from genfeed_pipeline_tests.faults_support import (
    APP_FAL,
    Pipeline,
    assert_nothing_lost,
    open_pipeline,
    wait_for,
)

Snapshot = dict[str, list[dict[str, Any]]]
Rows = dict[date, list[dict[str, Any]]]
D1, D2, D3 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)
IDEOGRAM = "fal-ai/ideogram/v2"  # $0.08 per image; cost per call $0.08 → price per call $0.2667
FLUX = "fal-ai/flux/dev"  # $0.025 per megapixel
SCHNELL = "fal-ai/flux/schnell"  # $0.003 per megapixel
KLING = "fal-ai/kling-video/v1.6/pro/image-to-video"  # $0.095 per second
UNKNOWN = "acme/not-in-the-catalog"
USAGE_TABLE = "model_usage_daily"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def pipeline(tmp_path: Path, database_url: str | None) -> Iterator[Pipeline]:
    with open_pipeline(tmp_path, database_url, extra_env={"FAL_ADMIN_KEY": DEFAULT_ADMIN_KEY}) as opened:
        yield opened


def bill(usage: EmulatedUsage, day: date, factor: int = 1) -> None:
    """Seven lines for five (endpoint, unit) keys, `factor` times the quantities: ideogram's three lines
    (one at 20% off, one at 10% off) land on the first and the last page when pages hold two lines."""
    usage.clear_day(day)
    usage.add_line(day, IDEOGRAM, "images", 10 * factor, "0.08")
    usage.add_line(day, IDEOGRAM, "images", 5 * factor, "0.08", 20)
    usage.add_line(day, FLUX, "megapixels", 8 * factor, "0.025")
    usage.add_line(day, KLING, "seconds", 200 * factor, "0.095")
    usage.add_line(day, SCHNELL, "megapixels", 100 * factor, "0.003")
    usage.add_line(day, UNKNOWN, "images", 3 * factor, "0.1")
    usage.add_line(day, IDEOGRAM, "images", 2 * factor, "0.08", 10)
    for endpoint_id, requests in ((IDEOGRAM, 15), (FLUX, 8), (KLING, 5), (SCHNELL, 100), (UNKNOWN, 3)):
        usage.set_requests(day, endpoint_id, requests * factor)


def by_day(pipeline: Pipeline) -> Rows:
    days: Rows = {}
    for row in pipeline.usage_rows():
        days.setdefault(row["day"], []).append(row)
    return days


def row_of(rows: Rows, day: date, endpoint_id: str) -> dict[str, Any]:
    (row,) = [row for row in rows[day] if row["endpoint_id"] == endpoint_id]
    return row


def catalog_only(snapshot: Snapshot) -> Snapshot:
    return {table: rows for table, rows in snapshot.items() if table != USAGE_TABLE}


def assert_catalog_untouched(before: Snapshot, after: Snapshot) -> None:
    assert_nothing_lost(before, after)
    assert catalog_only(after) == catalog_only(before), "the usage job wrote a catalog table"


def day_tags(first: date, last: date | None = None) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": (last or first).isoformat(),
    }


def materialized_days(result: dg.ExecuteInProcessResult, asset: str) -> set[str]:
    return {
        event.materialization.partition
        for event in result.get_asset_materialization_events()
        if event.materialization.asset_key == dg.AssetKey(asset)
    }


def materialization_of(result: dg.ExecuteInProcessResult, asset: str, day: date) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if materialization.asset_key == dg.AssetKey(asset) and materialization.partition == day.isoformat():
            return {name: value.value for name, value in materialization.metadata.items()}
    raise AssertionError(f"{asset} {day} was not materialized")


def check_result(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def step_error(result: dg.ExecuteInProcessResult) -> str:
    """The messages of the failed step's error and of its causes, outermost first."""
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    messages, error = [], failure.event_specific_data.error
    while error is not None:
        messages.append(error.message.strip())
        error = error.cause
    return "\n".join(messages)


def usage_requests(pipeline: Pipeline, day: date) -> list[RecordedRequest]:
    return [r for r in pipeline.emulator.requests_to(USAGE_PATH) if r.query.get("start") == [day.isoformat()]]


def request_key(request: RecordedRequest) -> tuple[str, tuple[tuple[str, tuple[str, ...]], ...]]:
    return request.path, tuple(sorted((name, tuple(values)) for name, values in request.query.items()))


# -- 1. fal corrects a day ---------------------------------------------------------------------------------


def test_a_day_run_again_after_fal_corrected_it_is_replaced_exactly(pipeline: Pipeline) -> None:
    usage = pipeline.emulator.usage
    for day in (D1, D2, D3):
        bill(usage, day)
    pipeline.usage(D1.isoformat(), D3.isoformat())
    before, stored = pipeline.snapshot(), by_day(pipeline)
    assert {day: len(rows) for day, rows in stored.items()} == {D1: 5, D2: 5, D3: 5}

    usage.clear_day(D2)  # fal's corrected D2: ideogram in one line, kling gone, the app's own fal row billed
    usage.add_line(D2, IDEOGRAM, "images", 12, "0.08")
    usage.set_requests(D2, IDEOGRAM, 12)
    usage.add_line(D2, FLUX, "megapixels", 8, "0.025")
    usage.set_requests(D2, FLUX, 8)
    usage.add_line(D2, APP_FAL, "images", 4, "0.06")
    usage.set_requests(D2, APP_FAL, 4)
    result = pipeline.usage(D2.isoformat())

    after = by_day(pipeline)
    assert after[D1] == stored[D1] and after[D3] == stored[D3], "the other days were rewritten"
    assert {(row["endpoint_id"], row["unit"]) for row in after[D2]} == {
        (APP_FAL, "images"),
        (IDEOGRAM, "images"),
        (FLUX, "megapixels"),
    }, "fal's corrected day replaces the day: kling, schnell and the unknown endpoint are gone"
    assert all(row["synced_at"] > stored[D2][0]["synced_at"] for row in after[D2])
    ideogram = row_of(after, D2, IDEOGRAM)
    assert (ideogram["quantity"], ideogram["cost_subtotal"], ideogram["cost_discount"]) == (
        12,
        Decimal("0.96"),
        0,
    )
    assert ideogram["cost_total"] == Decimal("0.96") and ideogram["percent_discount"] is None
    assert ideogram["requests"] == 12, "not 12 + the 15 stored before"
    assert ideogram["revenue_rate_card"] == Decimal("3.200004")  # 12 × (0.08 ÷ 0.3 → 0.266667)
    assert ideogram["revenue_per_call"] == Decimal("3.2004")  # 12 × 0.2667
    app = row_of(after, D2, APP_FAL)
    assert app["cost_total"] == Decimal("0.24")
    assert app["revenue_per_call"] == Decimal("1.00"), "4 calls × the app's fixedPrice $0.25"
    assert app["revenue_rate_card"] is None, "a fixed price replaces the rate card"
    assert row_of(after, D2, FLUX) == {
        **row_of(stored, D2, FLUX),
        "synced_at": row_of(after, D2, FLUX)["synced_at"],
    }
    assert materialization_of(result, "fal_usage", D2)["dagster/row_count"] == 3

    usage.clear_day(D2)  # and then fal finds nothing was billed that day
    pipeline.usage(D2.isoformat())
    emptied = by_day(pipeline)
    assert D2 not in emptied, "an empty day replaces the stored rows with none"
    assert emptied[D1] == stored[D1] and emptied[D3] == stored[D3]
    assert_catalog_untouched(before, pipeline.snapshot())


# -- 2. a page of a day failing for good ---------------------------------------------------------------


def test_a_usage_page_failing_mid_day_keeps_that_day_whole(pipeline: Pipeline) -> None:
    usage = pipeline.emulator.usage
    usage.max_page_size = 2  # seven lines a day: four pages
    for day in (D1, D2, D3):
        bill(usage, day)
    pipeline.usage(D1.isoformat(), D3.isoformat())
    before, stored = pipeline.snapshot(), by_day(pipeline)

    for day in (D1, D2, D3):
        bill(usage, day, factor=2)  # fal's corrected figures, twice the quantities
    pipeline.emulator.reset_log()
    pipeline.emulator.inject(
        Fault(
            path=USAGE_PATH,
            status=500,
            times=None,
            match=lambda r: r.query.get("start") == [D2.isoformat()] and bool(r.query.get("cursor")),
        )
    )
    result = pipeline.usage(D1.isoformat(), D3.isoformat(), raise_on_error=False)

    assert not result.success
    error = step_error(result)
    assert "fal's usage could not be read for 2026-03-03 (" in error, error
    assert "other days stored: 2)" in error, error
    assert "page 2" in error and "HTTP 500" in error, error
    d2 = usage_requests(pipeline, D2)
    assert [r.status for r in d2 if not r.query.get("cursor")] == [200], "page 1 of D2 was answered"
    assert [r.status for r in d2 if r.query.get("cursor")] == [500] * 5, "page 2: every attempt, no page 3"
    assert [len(usage_requests(pipeline, day)) for day in (D1, D3)] == [4, 4]

    after = by_day(pipeline)
    assert after[D2] == stored[D2], "D2 keeps what was stored, value for value: nothing of page 1 was written"
    for day in (D1, D3):
        assert all(row["synced_at"] > stored[day][0]["synced_at"] for row in after[day])
        ideogram = row_of(after, day, IDEOGRAM)
        assert ideogram["quantity"] == 34, "(10 + 5 + 2) × 2, summed across the first and the last page"
        assert ideogram["cost_total"] == Decimal("2.528")  # 34 × 0.08 − 10 × 0.08 × 20% − 4 × 0.08 × 10%
        assert ideogram["requests"] == 30
        assert row_of(after, day, KLING)["cost_total"] == Decimal("38")
    assert materialized_days(result, "fal_usage") == {"2026-03-02", "2026-03-04"}
    assert materialized_days(result, "usage_profitability") == {"2026-03-02", "2026-03-04"}
    assert materialization_of(result, "fal_usage", D1)["fal_usage_pages"] == 4
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {"billed_unit_price_matches_catalog", "realized_margin_below_target"}, (
        "the days written are checked even though a later day failed the run"
    )
    assert checks["billed_unit_price_matches_catalog"].metadata["days"].value == "2026-03-02, 2026-03-04"
    assert_catalog_untouched(before, pipeline.snapshot())

    pipeline.emulator.clear_faults()
    pipeline.usage(D2.isoformat())
    assert row_of(by_day(pipeline), D2, IDEOGRAM)["quantity"] == 34, "the next run completes the day"


# -- 3. a storm of 429s ------------------------------------------------------------------------------------

STORM = 6
RETRY_AFTER = 0.05


def test_a_429_storm_on_usage_and_analytics_is_ridden_out(pipeline: Pipeline) -> None:
    usage = pipeline.emulator.usage
    for day in (D1, D2, D3):
        bill(usage, day)
    before = pipeline.snapshot()
    for path in (USAGE_PATH, ANALYTICS_PATH):
        pipeline.emulator.inject(Fault(path=path, status=429, times=STORM, retry_after=RETRY_AFTER))
    result = pipeline.usage(D1.isoformat(), D3.isoformat(), fal={"max_attempts": STORM + 2})

    stormed = by_day(pipeline)
    assert {day: len(rows) for day, rows in stormed.items()} == {D1: 5, D2: 5, D3: 5}
    for day in (D1, D2, D3):
        ideogram = row_of(stormed, day, IDEOGRAM)
        assert (ideogram["quantity"], ideogram["cost_total"], ideogram["requests"]) == (
            17,
            Decimal("1.264"),  # 17 × 0.08 − 5 × 0.08 × 20% − 2 × 0.08 × 10%
            15,
        ), "each line counted once, whatever attempt answered"
        assert row_of(stormed, day, SCHNELL)["requests"] == 100
        assert row_of(stormed, day, UNKNOWN)["cost_total"] == Decimal("0.3")
        assert materialization_of(result, "fal_usage", day)["fal_usage_pages"] == 1
    requests = pipeline.emulator.requests
    for path in (USAGE_PATH, ANALYTICS_PATH):
        assert sum(1 for r in requests if r.path == path and r.status == 429) == STORM, path
    attempts: dict[Any, list[RecordedRequest]] = {}
    for request in requests:
        if request.path in (USAGE_PATH, ANALYTICS_PATH):
            attempts.setdefault(request_key(request), []).append(request)
    assert len(attempts) == 6, "one usage page and one analytics batch a day"
    for tries in attempts.values():
        assert [r.status for r in tries] == [429] * (len(tries) - 1) + [200]
        for failed, retry in itertools.pairwise(tries):
            assert retry.started - failed.ended >= RETRY_AFTER - 0.005, "Retry-After was not honoured"
    assert sum(len(tries) - 1 for tries in attempts.values()) == 2 * STORM

    pipeline.usage(D1.isoformat(), D3.isoformat())
    clean = by_day(pipeline)
    assert {day: [{**row, "synced_at": None} for row in rows] for day, rows in clean.items()} == {
        day: [{**row, "synced_at": None} for row in rows] for day, rows in stormed.items()
    }, "the stormy run stored exactly what a clean run stores"
    assert_catalog_untouched(before, pipeline.snapshot())


# -- 4. the admin key revoked ------------------------------------------------------------------------------


def run_text(pipeline: Pipeline, result: dg.ExecuteInProcessResult) -> str:
    """Everything the run recorded: each event log entry, serialized whole (messages, errors, metadata)."""
    return "\n".join(dg.serialize_value(entry) for entry in pipeline.instance.all_logs(result.run_id))


def test_a_revoked_admin_key_fails_the_run_writes_nothing_and_is_never_shown(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    usage = pipeline.emulator.usage
    for day in (D1, D2):
        bill(usage, day)
    pipeline.usage(D1.isoformat(), D2.isoformat())
    before = pipeline.snapshot()
    for day in (D1, D2, D3):
        bill(usage, day, factor=3)  # what a run that wrote anything would store
    usage.admin_keys.clear()
    pipeline.emulator.reset_log()

    result = pipeline.usage(D1.isoformat(), D3.isoformat(), raise_on_error=False)
    assert not result.success
    error = step_error(result)
    assert "FAL_ADMIN_KEY" in error and "403" in error and "billing:usage:read" in error, error
    assert "2026-03-02, 2026-03-03, 2026-03-04" in error, error
    assert pipeline.snapshot() == before, "nothing written: the stored days stay, value for value"
    assert result.get_asset_materialization_events() == []
    assert [r.status for r in pipeline.emulator.requests_to(USAGE_PATH)] == [403] * 3, "a 403 is not retried"
    assert pipeline.emulator.requests_to(ANALYTICS_PATH) == []

    # fal echoing the key it refused: the client blanks it before it reaches an error.
    refusal = f'{{"error":{{"type":"authorization_error","message":"key {DEFAULT_ADMIN_KEY} is revoked"}}}}'
    pipeline.emulator.raw_routes.append(
        (lambda method, path, query: path == USAGE_PATH, _Response(403, refusal.encode()))
    )
    echoed = pipeline.usage(D1.isoformat(), raise_on_error=False)
    assert not echoed.success
    assert "key [redacted] is revoked" in step_error(echoed)
    assert pipeline.snapshot() == before

    recorded = {
        "events": run_text(pipeline, result) + run_text(pipeline, echoed),
        "logs": caplog.text,
        "output": "".join(capfd.readouterr()),
    }
    assert "FAL_ADMIN_KEY" in recorded["events"] and "[redacted]" in recorded["events"], (
        "the errors are there"
    )
    for where, text in recorded.items():
        for secret in (DEFAULT_ADMIN_KEY, TEST_FAL_KEY):
            assert secret not in text, f"a key in the run's {where}"


# -- 5. an endpoint the catalog does not know --------------------------------------------------------------


def test_an_endpoint_unknown_to_the_catalog_is_kept_without_revenue_and_named(pipeline: Pipeline) -> None:
    usage = pipeline.emulator.usage
    usage.add_line(D1, IDEOGRAM, "images", 10, "0.08")
    usage.set_requests(D1, IDEOGRAM, 10)
    usage.add_line(D1, FLUX, "megapixels", 8, "0.025")
    usage.set_requests(D1, FLUX, 8)
    usage.add_line(D1, UNKNOWN, "images", 3, "0.1")
    usage.set_requests(D1, UNKNOWN, 3)
    before = pipeline.snapshot()
    result = pipeline.usage(D1.isoformat())

    rows = by_day(pipeline)
    unknown = row_of(rows, D1, UNKNOWN)
    assert (unknown["quantity"], unknown["unit_price"], unknown["cost_total"]) == (
        3,
        Decimal("0.1"),
        Decimal("0.3"),
    )
    assert unknown["requests"] == 3, "fal's figures are kept whole"
    assert (unknown["revenue_rate_card"], unknown["revenue_per_call"]) == (None, None)
    assert unknown["price_assumed"] is False, "no price at all, not an assumed one"
    assert row_of(rows, D1, IDEOGRAM)["revenue_rate_card"] == Decimal("2.66667")  # 10 × 0.266667

    metadata = materialization_of(result, "fal_usage", D1)
    assert metadata["unknown_endpoint_count"] == 1
    assert escape(UNKNOWN) in metadata["unknown_endpoints"]
    profitability = materialization_of(result, "usage_profitability", D1)
    assert profitability["unpriced_cost"] == pytest.approx(0.3)
    assert escape(UNKNOWN) in profitability["unknown_endpoints"]
    billed = check_result(result, "billed_unit_price_matches_catalog")
    assert billed.passed, "the known endpoints billed the catalog's price; the unknown one is not flagged"
    assert billed.metadata["checked_lines"].value == 2
    assert billed.metadata["flagged_count"].value == 0
    assert escape(UNKNOWN) in billed.metadata["unknown_endpoints"].value
    assert escape(UNKNOWN) not in billed.metadata["flagged_endpoints"].value
    assert_catalog_untouched(before, pipeline.snapshot())  # and no `models` row for it


# -- 6. fal billing another unit than the catalog's ----------------------------------------------------------


def test_a_billed_unit_unlike_the_catalogs_is_flagged_and_priced_per_call_only(pipeline: Pipeline) -> None:
    with pipeline.engine.connect() as connection:
        (history,) = connection.execute(
            sa.select(model_price_history).where(model_price_history.c.endpoint_id == IDEOGRAM)
        ).mappings()
    assert (history["unit_raw"], history["unit_price"], history["cost_per_call"]) == (
        "images",
        Decimal("0.08"),
        Decimal("0.08"),
    ), "one image by default: the cost per call is the unit price"
    usage = pipeline.emulator.usage
    usage.add_line(D1, IDEOGRAM, "compute seconds", 40, "0.002")
    usage.set_requests(D1, IDEOGRAM, 10)
    usage.add_line(D1, FLUX, "megapixels", 8, "0.025")
    usage.set_requests(D1, FLUX, 8)
    before = pipeline.snapshot()
    result = pipeline.usage(D1.isoformat())

    rows = by_day(pipeline)
    ideogram = row_of(rows, D1, IDEOGRAM)
    assert (ideogram["unit"], ideogram["quantity"], ideogram["cost_total"]) == (
        "compute seconds",
        40,
        Decimal("0.08"),
    )
    assert ideogram["revenue_rate_card"] is None, "40 compute seconds are not 40 images"
    assert ideogram["revenue_per_call"] == Decimal("2.667")  # 10 calls × (0.08 ÷ 0.3 → 0.2667)
    assert row_of(rows, D1, FLUX)["revenue_rate_card"] == Decimal("0.666672")  # 8 × 0.083334

    billed = check_result(result, "billed_unit_price_matches_catalog")
    assert not billed.passed and billed.severity == dg.AssetCheckSeverity.WARN
    (flagged,) = [record.data for record in billed.metadata["flagged"].value.records]
    assert flagged["endpoint_id"] == IDEOGRAM and flagged["day"] == "2026-03-02"
    assert (flagged["billed_unit"], flagged["catalog_unit"]) == ("compute seconds", "images")
    assert (flagged["billed_unit_price"], flagged["catalog_unit_price"]) == ("$0.002", "$0.08")
    assert "compute seconds" in flagged["reason"] and "images" in flagged["reason"]
    assert billed.metadata["checked_lines"].value == 2, "flux billed its catalog price, in its unit"
    assert_catalog_untouched(before, pipeline.snapshot())


# -- 7. two runs of one day at once ------------------------------------------------------------------------

LATENCY = 0.2


@contextlib.contextmanager
def holding_the_usage_table(pipeline: Pipeline) -> Iterator[sa.Connection | None]:
    """Blocks every write of `model_usage_daily` until the block ends, without taking the day's lock
    itself: on PostgreSQL `LOCK TABLE … IN EXCLUSIVE MODE` (reads go on; yields a connection to watch the
    waiters with), on SQLite the database's write lock (`BEGIN IMMEDIATE`, as the pipeline's transactions
    begin). Writers that arrive meanwhile are released together, so they overlap as closely as they can."""
    if pipeline.engine.dialect.name == "postgresql":
        engine = sa.create_engine(pipeline.database_url)
        try:
            with engine.connect() as holder, engine.connect() as watcher:
                watcher.execution_options(isolation_level="AUTOCOMMIT")
                with holder.begin():
                    holder.execute(sa.text(f"LOCK TABLE {USAGE_TABLE} IN EXCLUSIVE MODE"))
                    yield watcher
        finally:
            engine.dispose()
        return
    connection = sqlite3.connect(str(sa.make_url(pipeline.database_url).database), isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield None
        finally:
            connection.execute("ROLLBACK")
    finally:
        connection.close()


def lock_waits(watcher: sa.Connection) -> list[str]:
    """What the database's other backends are waiting for (`relation`, `advisory`, …), sorted."""
    return sorted(
        watcher.execute(
            sa.text(
                "SELECT wait_event FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
        ).scalars()
    )


def analytics_answered(pipeline: Pipeline) -> int:
    return sum(1 for r in pipeline.emulator.requests_to(ANALYTICS_PATH) if r.status == 200)


def test_two_runs_of_one_day_at_once_leave_exactly_one_set_of_rows(pipeline: Pipeline) -> None:
    """Two runs of D2, each with its own Dagster instance, on one database that already holds D2: both fetch
    from a slowed fal at the same time, then both reach the write while the test blocks writes; released
    together, they write one after the other, and the day holds one set of rows (no double count, no
    primary-key error). On PostgreSQL the first holds the day's advisory lock while the second waits for
    it."""
    usage = pipeline.emulator.usage
    for day in (D1, D2, D3):
        bill(usage, day)
    pipeline.usage(D1.isoformat(), D3.isoformat())
    before, stored = pipeline.snapshot(), by_day(pipeline)
    bill(usage, D2, factor=2)
    pipeline.emulator.settings.latency = LATENCY
    pipeline.emulator.reset_log()
    job = pipeline.defs.resolve_job_def("refresh_fal_usage")

    def run_alone() -> tuple[dg.ExecuteInProcessResult, float]:
        with dg.DagsterInstance.ephemeral() as instance:
            result = job.execute_in_process(
                run_config=pipeline.run_config(), instance=instance, tags=day_tags(D2), raise_on_error=False
            )
        return result, time.monotonic()

    waits: list[str] = []
    with ThreadPoolExecutor(2) as threads:
        runs = [threads.submit(run_alone) for _ in range(2)]
        wait_for(lambda: len(usage_requests(pipeline, D2)) == 2, what="both runs to ask fal for D2")
        with holding_the_usage_table(pipeline) as watcher:
            if watcher is not None:
                waits = wait_for(
                    lambda: len(lock_waits(watcher)) == 2 and lock_waits(watcher),
                    what="both runs to wait for the write",
                )
            else:
                wait_for(lambda: analytics_answered(pipeline) == 2, what="both runs to have fal's answers")
                time.sleep(0.3)  # both now wait for the write lock (SQLite's busy timeout is 60 s)
            assert not any(run.done() for run in runs), "a run finished while writes were blocked"
            released = time.monotonic()
        outcomes = [run.result(timeout=60) for run in runs]

    assert pipeline.emulator.max_in_flight >= 2, "the two runs' requests to fal overlapped"
    fetches = usage_requests(pipeline, D2)
    assert max(r.started for r in fetches) < min(r.ended for r in fetches), "both fetched D2 at once"
    for result, finished in outcomes:
        assert result.success, step_error(result)
        assert finished > released, "each run wrote after the release"
        assert materialized_days(result, "fal_usage") == {"2026-03-03"}
    if watcher is not None:
        assert waits == ["advisory", "relation"], "one run held the day's lock, the other waited for it"
    after = by_day(pipeline)
    assert after[D1] == stored[D1] and after[D3] == stored[D3]
    assert [(row["endpoint_id"], row["unit"]) for row in after[D2]] == [
        (row["endpoint_id"], row["unit"]) for row in stored[D2]
    ], "one row per key"
    ideogram = row_of(after, D2, IDEOGRAM)
    assert (ideogram["quantity"], ideogram["cost_total"], ideogram["requests"]) == (34, Decimal("2.528"), 30)
    assert sum(row["cost_total"] for row in after[D2]) == 2 * sum(row["cost_total"] for row in stored[D2])
    assert_catalog_untouched(before, pipeline.snapshot())
