"""fal misbehaving, on the whole `refresh_fal_catalog` job against the emulator: nothing in the catalog
tables is lost.

Each case runs a first good refresh (the baseline), changes fal's catalog (two prices up, one document gains
an optional input), injects a fault and refreshes again. A fault the client must ride out (429 storms, 5xx,
truncated or HTML bodies, dropped connections, timeouts) must leave the tables exactly as a clean refresh
leaves them, apart from timestamps. A fault that outlasts the retries must leave every last good value in
place, and the next clean refresh must catch up. A list that cannot be read stops the sync with the table
untouched byte for byte.

The baseline table also holds rows people own: the app's own rows with fixed prices (one for a fal endpoint
whose price fal raises) and two operator choices. Every case compares every value of every row with the row
before, allowing only the changes the case names (`assert_nothing_lost`), and checks the people's rows against
what they wrote.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from genfeed_pipeline_tests.fal_emulator import Fault, RecordedRequest
from genfeed_pipeline_tests.faults_support import (
    APP_FAL,
    CHOICES_RECORDED,
    CLEAN_CHANGES,
    DOCUMENTED,
    ENRICHED_PRICE,
    OPERATOR_CHOICES,
    PRICE_WRITE,
    PRICED,
    PRICED_TOO,
    SCHEMA_WRITE,
    TIMESTAMP_COLUMNS,
    Pipeline,
    assert_nothing_lost,
    by_id,
    change_catalog,
    changed_models,
    is_list_page,
    is_pricing,
    is_queue_schema,
    is_schema_batch,
    materialization_metadata,
    new_rows,
    open_pipeline,
    step_succeeded,
    without,
)

Snapshot = dict[str, list[dict[str, Any]]]
PRICE_COLUMNS = ("unit", "unit_raw", "unit_price", "cost_per_call", "price_per_call", "pricing")
SCHEMA_COLUMNS = ("input_schema", "output_schema", "schema_hash", "mapped_hash", "capabilities")
# `change_catalog`'s new prices, as a sync writes them (the app's fal row is enriched, its `pricing` kept).
NEW_PRICES = {PRICED: PRICE_WRITE, PRICED_TOO: PRICE_WRITE, APP_FAL: ENRICHED_PRICE}
NEW_SCHEMA = {DOCUMENTED: SCHEMA_WRITE}


def comparable(snapshot: Snapshot) -> Snapshot:
    """A snapshot without what differs between two equally good runs: timestamps, run ids, row ids."""
    return {table: without(rows, TIMESTAMP_COLUMNS | {"price_source"}) for table, rows in snapshot.items()}


@pytest.fixture(scope="module")
def clean_result(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """The tables after a clean refresh of the changed catalog: what a run that rode out a fault equals."""
    with open_pipeline(tmp_path_factory.mktemp("clean")) as pipeline:
        before = pipeline.snapshot()
        change_catalog(pipeline.catalog)
        pipeline.refresh(full_refresh=True)
        after = pipeline.snapshot()
        assert_nothing_lost(before, after, may_change=CLEAN_CHANGES)
        assert changed_models(before, after) == set(CLEAN_CHANGES)
        return comparable(after)


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    with open_pipeline(tmp_path) as opened:
        yield opened


def assert_equals_clean_run(after: Snapshot, clean: Snapshot, *, same_run: bool = True) -> None:
    """The tables equal a clean refresh's, apart from timestamps; with `same_run`, the last `sync_runs` row
    (the run under test) also has the clean run's counts."""
    got = comparable(after)
    for table in ("models", "model_schema_history", "model_price_history"):
        assert got[table] == clean[table], f"{table} differs from a clean run's"
    if same_run:
        assert got["sync_runs"][-1] == clean["sync_runs"][-1]


def only(match, status: int | None = None, **kwargs: Any) -> dict[str, Any]:
    return {"match": match, "status": status, **kwargs}


# -- faults the client rides out ---------------------------------------------------------------------------

TIMEOUT = {"timeout_seconds": 0.3}
# id → (faults, fal resource overrides, the queue-schema fallback in use for DOCUMENTED)
TRANSIENT: dict[str, tuple[list[Fault], dict[str, Any], bool]] = {
    "429-storm-pricing-30x": (
        [Fault(kind="status", status=429, times=30, retry_after=0.05, match=is_pricing)],
        {"max_attempts": 40},
        False,
    ),
    "429-list": (
        [Fault(kind="status", status=429, times=4, retry_after=0.05, match=is_list_page)],
        {},
        False,
    ),
    "429-schemas": (
        [Fault(kind="status", status=429, times=4, retry_after=0.05, match=is_schema_batch)],
        {},
        False,
    ),
    "500-list": ([Fault(kind="status", status=500, times=3, match=is_list_page)], {}, False),
    "502-schemas": ([Fault(kind="status", status=502, times=4, match=is_schema_batch)], {}, False),
    "503-pricing": ([Fault(kind="status", status=503, times=4, match=is_pricing)], {}, False),
    "503-queue-schema": ([Fault(kind="status", status=503, times=4, match=is_queue_schema)], {}, True),
    "truncated-list": ([Fault(kind="truncate", times=3, match=is_list_page)], {}, False),
    "truncated-schemas": ([Fault(kind="truncate", times=4, match=is_schema_batch)], {}, False),
    "truncated-pricing": ([Fault(kind="truncate", times=4, match=is_pricing)], {}, False),
    "truncated-queue-schema": ([Fault(kind="truncate", times=4, match=is_queue_schema)], {}, True),
    "html-200-list": ([Fault(kind="html", times=3, match=is_list_page)], {}, False),
    "html-503-schemas": ([Fault(kind="html", status=503, times=4, match=is_schema_batch)], {}, False),
    "html-200-pricing": ([Fault(kind="html", times=4, match=is_pricing)], {}, False),
    "html-200-queue-schema": ([Fault(kind="html", times=4, match=is_queue_schema)], {}, True),
    "reset-list": ([Fault(kind="reset", times=3, match=is_list_page)], {}, False),
    "reset-schemas": ([Fault(kind="reset", times=4, match=is_schema_batch)], {}, False),
    "reset-pricing": ([Fault(kind="reset", times=4, match=is_pricing)], {}, False),
    "timeout-list": ([Fault(kind="delay", delay=0.8, times=2, match=is_list_page)], TIMEOUT, False),
    "timeout-schemas": ([Fault(kind="delay", delay=0.8, times=3, match=is_schema_batch)], TIMEOUT, False),
    "timeout-pricing": ([Fault(kind="delay", delay=0.8, times=3, match=is_pricing)], TIMEOUT, False),
    "mixed-every-surface": (
        [
            Fault(kind="status", status=429, times=1, retry_after=0.05, match=is_list_page),
            Fault(kind="truncate", times=2, match=is_schema_batch),
            Fault(kind="html", times=1, match=is_pricing),
            Fault(kind="reset", times=1, match=is_pricing),
            Fault(kind="status", status=502, times=2, match=is_queue_schema),
        ],
        {},
        True,
    ),
}


@pytest.mark.parametrize("case", list(TRANSIENT), ids=list(TRANSIENT))
def test_a_fault_the_client_rides_out_leaves_a_clean_runs_table(
    pipeline: Pipeline, clean_result: Snapshot, case: str
) -> None:
    faults, fal_config, via_queue = TRANSIENT[case]
    before = pipeline.snapshot()
    change_catalog(pipeline.catalog)
    if via_queue:  # DOCUMENTED's expansion fails: its new document comes from the queue schema URL
        pipeline.emulator.settings.expansion_failed_ids = {DOCUMENTED}
    injected = [pipeline.emulator.inject(fault) for fault in faults]

    result = pipeline.refresh(fal=fal_config, full_refresh=True)

    assert [fault.times for fault in injected] == [0] * len(injected), "every fault was served in full"
    after = pipeline.snapshot()
    assert_nothing_lost(before, after, may_change=CLEAN_CHANGES)
    assert changed_models(before, after) == set(CLEAN_CHANGES)
    assert_equals_clean_run(after, clean_result)
    assert by_id(after)[PRICED]["unit_price"] == Decimal("0.004")
    summary = result.output_for_node("models_table")
    assert (summary.new, summary.changed, summary.removed, summary.failed) == (0, 6, 0, 0)


def test_a_429_storm_with_retry_after_is_waited_out_not_hammered(
    pipeline: Pipeline, clean_result: Snapshot
) -> None:
    """30 consecutive 429s with `Retry-After: 0.05` on the pricing API: each retry waits at least 0.05 s."""
    before = pipeline.snapshot()
    change_catalog(pipeline.catalog)
    pipeline.emulator.reset_log()
    pipeline.emulator.inject(Fault(kind="status", status=429, times=30, retry_after=0.05, match=is_pricing))

    pipeline.refresh(fal={"max_attempts": 40, "backoff_initial_seconds": 0.0, "backoff_max_seconds": 0.0})

    pricing = pipeline.emulator.requests_to("/v1/models/pricing")
    assert [r.status for r in pricing] == [429] * 30 + [200]
    gaps = [later.started - earlier.ended for earlier, later in itertools.pairwise(pricing)]
    assert min(gaps) >= 0.045, "Retry-After was not honoured"
    after = pipeline.snapshot()
    assert_nothing_lost(before, after, may_change=CLEAN_CHANGES)
    assert_equals_clean_run(after, clean_result)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_random_5xx_on_a_fifth_of_all_requests_leaves_a_clean_runs_table(
    request: pytest.FixtureRequest, tmp_path: Path, clean_result: Snapshot, database: str
) -> None:
    url = request.getfixturevalue("postgres_url") if database == "postgresql" else None
    with open_pipeline(tmp_path, url) as pipeline:
        before = pipeline.snapshot()
        change_catalog(pipeline.catalog)
        rng = random.Random(20260426)
        lock = threading.Lock()
        decided: dict[int, int | None] = {}

        def decide(r: RecordedRequest) -> int | None:
            with lock:  # one draw per request, whichever of the three faults asks first
                if id(r) not in decided:
                    decided[id(r)] = rng.choice([500, 502, 503]) if rng.random() < 0.2 else None
                return decided[id(r)]

        for status in (500, 502, 503):
            pipeline.emulator.inject(
                Fault(kind="status", status=status, times=None, match=lambda r, s=status: decide(r) == s)
            )

        pipeline.refresh(fal={"schema_batch_size": 2, "price_batch_size": 5}, full_refresh=True)

        statuses = [r.status for r in pipeline.emulator.requests]
        assert {500, 502, 503} <= set(statuses), "the storm never happened"
        assert 0.08 < sum(s >= 500 for s in statuses) / len(statuses) < 0.6
        after = pipeline.snapshot()
        assert_nothing_lost(before, after, may_change=CLEAN_CHANGES)
        assert_equals_clean_run(after, clean_result)


# -- faults that outlast the retries -----------------------------------------------------------------------

PRICE_OUTAGES = {
    "pricing-503-forever": Fault(kind="status", status=503, times=None, match=is_pricing),
    "pricing-html-forever": Fault(kind="html", times=None, match=is_pricing),
    "pricing-truncated-forever": Fault(kind="truncate", times=None, match=is_pricing),
    "pricing-reset-forever": Fault(kind="reset", times=None, match=is_pricing),
    "pricing-timeout-forever": Fault(kind="delay", delay=0.6, times=None, match=is_pricing),
}


def assert_columns_kept(before: Snapshot, after: Snapshot, columns: tuple[str, ...]) -> None:
    old, new = by_id(before), by_id(after)
    for endpoint_id, row in old.items():
        kept = {c: new[endpoint_id][c] for c in columns}
        assert kept == {c: row[c] for c in columns}, f"{endpoint_id} lost its last good {columns}"


@pytest.mark.parametrize("case", list(PRICE_OUTAGES), ids=list(PRICE_OUTAGES))
def test_a_pricing_outage_keeps_every_last_good_price_and_the_rest_syncs(
    pipeline: Pipeline, clean_result: Snapshot, case: str
) -> None:
    before = pipeline.snapshot()
    change_catalog(pipeline.catalog)
    pipeline.emulator.inject(PRICE_OUTAGES[case])

    result = pipeline.refresh(fal={"timeout_seconds": 0.3, "max_attempts": 3})

    after = pipeline.snapshot()
    assert_nothing_lost(before, after, may_change={**NEW_SCHEMA, **CHOICES_RECORDED})
    assert_columns_kept(before, after, PRICE_COLUMNS)
    assert by_id(after)[PRICED]["unit_price"] == Decimal("0.003"), "neither the new price nor null"
    assert changed_models(before, after) == {DOCUMENTED, *OPERATOR_CHOICES}, "the rest syncs"
    assert new_rows(before, after, "model_price_history") == []
    assert result.output_for_node("models_table").failed == len(pipeline.catalog.models)
    assert "price fetches failed" in materialization_metadata(result, "fal_model_list")["notes"].md_str

    pipeline.emulator.clear_faults()
    pipeline.refresh()
    caught_up = pipeline.snapshot()
    assert_nothing_lost(after, caught_up, may_change=NEW_PRICES)
    assert_equals_clean_run(caught_up, clean_result, same_run=False)  # the next run catches up


def test_a_pricing_outage_keeps_models_enabled_and_valid(pipeline: Pipeline) -> None:
    """Contract: 'A model whose schema or price fetch failed keeps its last good values'. A fal pricing outage
    must not switch GenFeed's whole catalog off."""
    before = pipeline.snapshot()
    pipeline.emulator.inject(PRICE_OUTAGES["pricing-503-forever"])

    pipeline.refresh(fal={"max_attempts": 2})

    after = pipeline.snapshot()
    assert_nothing_lost(before, after, may_change=CHOICES_RECORDED)
    assert_columns_kept(before, after, ("enabled", "validation_errors"))
    assert changed_models(before, after) == set(OPERATOR_CHOICES)


def test_a_schema_outage_keeps_every_last_good_schema_and_prices_still_sync(
    pipeline: Pipeline, clean_result: Snapshot
) -> None:
    before = pipeline.snapshot()
    change_catalog(pipeline.catalog)
    pipeline.emulator.inject(Fault(kind="status", status=503, times=None, match=is_schema_batch))

    result = pipeline.refresh(fal={"max_attempts": 3})

    after = pipeline.snapshot()
    assert_nothing_lost(before, after, may_change={**NEW_PRICES, **CHOICES_RECORDED})
    assert_columns_kept(before, after, SCHEMA_COLUMNS)
    assert changed_models(before, after) == {*NEW_PRICES, *OPERATOR_CHOICES}
    assert by_id(after)[PRICED]["unit_price"] == Decimal("0.004")
    assert new_rows(before, after, "model_schema_history") == []
    assert {r["endpoint_id"] for r in new_rows(before, after, "model_price_history")} == set(NEW_PRICES)
    schemas = materialization_metadata(result, "fal_openapi_schemas")
    assert schemas["by_status"].value["failed"] == 1
    assert "schema fetches failed" in schemas["notes"].md_str

    pipeline.emulator.clear_faults()
    pipeline.refresh()
    caught_up = pipeline.snapshot()
    assert_nothing_lost(after, caught_up, may_change=NEW_SCHEMA)
    assert_equals_clean_run(caught_up, clean_result, same_run=False)


def test_pricing_answering_401_takes_prices_from_the_cache_and_says_so(pipeline: Pipeline) -> None:
    before = pipeline.snapshot()
    change_catalog(pipeline.catalog)
    pipeline.emulator.inject(Fault(path="/v1/models/pricing", kind="status", status=401, times=None))

    result = pipeline.refresh()

    after = pipeline.snapshot()
    assert_nothing_lost(before, after, may_change={**NEW_SCHEMA, **CHOICES_RECORDED})
    assert_columns_kept(before, after, (*PRICE_COLUMNS, "enabled", "validation_errors"))
    assert changed_models(before, after) == {DOCUMENTED, *OPERATOR_CHOICES}  # schemas are public: they sync
    assert by_id(after)[PRICED]["unit_price"] == Decimal("0.003")
    listing = materialization_metadata(result, "fal_model_list")
    notes = listing["notes"].md_str
    assert "refused the key" in notes and "cache" in notes
    assert listing["price_source"].value == "cache"
    assert len([r for r in pipeline.emulator.requests if is_pricing(r)]) == 1, "a 401 is not retried"


# -- the list itself fails -----------------------------------------------------------------------------


def database_file(pipeline: Pipeline) -> Path:
    return Path(pipeline.database_url.removeprefix("sqlite:///"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


LIST_FAILURES = {
    "page-2-always-500": ({"list_page_size": 10}, None),
    "page-1-503-forever": ({}, Fault(kind="status", status=503, times=None, match=is_list_page)),
    "page-1-html-forever": ({}, Fault(kind="html", times=None, match=is_list_page)),
}


@pytest.mark.parametrize("case", list(LIST_FAILURES), ids=list(LIST_FAILURES))
def test_a_list_page_that_always_fails_stops_the_sync_and_the_table_stays_byte_for_byte(
    pipeline: Pipeline, clean_result: Snapshot, case: str
) -> None:
    fal_config, fault = LIST_FAILURES[case]
    change_catalog(pipeline.catalog)
    if fault is None:
        pipeline.emulator.settings.failing_list_pages = {2}
    else:
        pipeline.emulator.inject(fault)
    before = pipeline.snapshot()
    pipeline.engine.dispose()
    file_before = digest(database_file(pipeline))

    result = pipeline.refresh(fal={**fal_config, "max_attempts": 3}, raise_on_error=False)

    assert not result.success
    completeness = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "catalog_completeness"
    )
    assert not completeness.passed and "model list failed" in completeness.description
    assert not step_succeeded(result, "models_table")
    pipeline.engine.dispose()
    assert digest(database_file(pipeline)) == file_before
    after = pipeline.snapshot()
    assert after == before
    assert_nothing_lost(before, after)  # and the people's rows hold what they wrote, choices not yet recorded

    pipeline.emulator.settings.failing_list_pages = set()
    pipeline.emulator.clear_faults()
    pipeline.refresh(fal=fal_config)
    caught_up = pipeline.snapshot()
    assert_nothing_lost(before, caught_up, may_change=CLEAN_CHANGES)
    assert_equals_clean_run(caught_up, clean_result)


def test_a_list_page_that_always_fails_on_postgresql_leaves_the_tables_unchanged(
    tmp_path: Path, postgres_url: str
) -> None:
    with open_pipeline(tmp_path, postgres_url) as pipeline:
        change_catalog(pipeline.catalog)
        pipeline.emulator.settings.failing_list_pages = {2}
        before = pipeline.snapshot()

        result = pipeline.refresh(fal={"list_page_size": 10, "max_attempts": 3}, raise_on_error=False)

        assert not result.success and not step_succeeded(result, "models_table")
        after = pipeline.snapshot()
        assert after == before
        assert_nothing_lost(before, after)


UNREACHABLE = {
    "list-reset-forever": Fault(kind="reset", times=None),
    "list-truncated-forever": Fault(kind="truncate", times=None, match=is_list_page),
    "list-timeout-forever": Fault(kind="delay", delay=0.6, times=None),
    "fal-down": None,
}


@pytest.mark.parametrize("case", list(UNREACHABLE), ids=list(UNREACHABLE))
def test_fal_unreachable_runs_from_the_cache_and_marks_nothing_removed(pipeline: Pipeline, case: str) -> None:
    before = pipeline.snapshot()
    change_catalog(pipeline.catalog)
    fault = UNREACHABLE[case]
    if fault is None:
        pipeline.emulator.kill()
    else:
        pipeline.emulator.inject(fault)

    result = pipeline.refresh(fal={"timeout_seconds": 0.3, "max_attempts": 2})

    after = pipeline.snapshot()
    assert_nothing_lost(before, after, may_change=CHOICES_RECORDED)  # the operator's choices are recorded
    assert changed_models(before, after) == set(OPERATOR_CHOICES)
    for table in ("model_schema_history", "model_price_history"):
        assert after[table] == before[table]
    run = after["sync_runs"][-1]
    assert (run["source"], run["removed_count"], run["new_count"], run["changed_count"]) == ("cache", 0, 0, 2)
    listing = materialization_metadata(result, "fal_model_list")
    assert listing["data_source"].value == "cache"
    assert (
        "unreachable" in listing["notes"].md_str
        and "nothing will be marked removed" in listing["notes"].md_str
    )


def test_fal_killed_while_schemas_are_fetched_loses_nothing_and_the_next_run_catches_up(
    pipeline: Pipeline, clean_result: Snapshot
) -> None:
    before = pipeline.snapshot()
    change_catalog(pipeline.catalog)
    emulator = pipeline.emulator
    emulator.settings.latency = 0.05
    emulator.reset_log()
    killed_at: list[float] = []

    def kill_once_schemas_are_in_flight() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(is_schema_batch(r) for r in emulator.requests):
                time.sleep(0.03)
                emulator.kill()
                killed_at.append(time.monotonic())
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_once_schemas_are_in_flight)
    killer.start()
    result = pipeline.refresh(
        fal={"schema_batch_size": 2, "max_attempts": 2, "timeout_seconds": 1.0},
        full_refresh=True,
        raise_on_error=False,
    )
    killer.join()

    assert killed_at, "fal was never killed"
    schema_requests = [r for r in emulator.requests if is_schema_batch(r)]
    assert len(schema_requests) < 20, "the kill came after every schema was fetched"
    after = pipeline.snapshot()
    assert_nothing_lost(before, after, may_change=CLEAN_CHANGES)  # whatever was fetched, or nothing
    assert_columns_kept(before, after, ("status",))
    if result.success:  # a run that goes on keeps every last good schema (DOCUMENTED's may be the new one)
        old, new = by_id(before), by_id(after)
        for endpoint_id in set(old) - {DOCUMENTED}:
            assert {c: new[endpoint_id][c] for c in SCHEMA_COLUMNS} == {
                c: old[endpoint_id][c] for c in SCHEMA_COLUMNS
            }
        clean = {row["id"]: row for row in clean_result["models"]}
        assert new[DOCUMENTED]["mapped_hash"] in (
            old[DOCUMENTED]["mapped_hash"],
            clean[DOCUMENTED]["mapped_hash"],
        )
        assert after["sync_runs"][-1]["removed_count"] == 0
    else:
        assert after == before

    emulator.settings.latency = 0.0
    emulator.start()
    pipeline.refresh()
    caught_up = pipeline.snapshot()
    assert_nothing_lost(after, caught_up, may_change=CLEAN_CHANGES)
    assert_equals_clean_run(caught_up, clean_result, same_run=False)


def test_expansion_failed_for_a_third_of_the_models_falls_back_to_the_queue_schemas(
    pipeline: Pipeline, clean_result: Snapshot
) -> None:
    before = pipeline.snapshot()
    change_catalog(pipeline.catalog)
    documented = [eid for eid in pipeline.catalog.models if eid in pipeline.catalog.openapi]
    third = set(documented[::3]) | {DOCUMENTED}
    pipeline.emulator.settings.expansion_failed_ids = third
    pipeline.emulator.reset_log()

    result = pipeline.refresh(full_refresh=True)

    queue_ids = {r.query["endpoint_id"][0] for r in pipeline.emulator.requests if is_queue_schema(r)}
    assert third <= queue_ids
    schemas = materialization_metadata(result, "fal_openapi_schemas")
    assert schemas["by_status"].value["fallback"] == len(third)
    assert schemas["by_status"].value["failed"] == 0
    after = pipeline.snapshot()
    assert_nothing_lost(before, after, may_change=CLEAN_CHANGES)
    assert_equals_clean_run(after, clean_result)
