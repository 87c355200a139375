"""The list-shrink guard: a fal list far smaller than the last run's stops the sync, a slightly smaller one
marks exactly the missing endpoints removed.

`catalog_completeness` (blocking) judges the list with `judge_completeness`; the planner applies the same
threshold before it marks anything removed. Both are tested at the boundary, and the whole rule end to end
through `refresh_fal_catalog` against the emulator, on SQLite and PostgreSQL.

The end-to-end case uses the fault suite's 40-endpoint catalog, where the arithmetic is exact: 10% of 40
is 4, so 36 endpoints still pass; 15% smaller is 34 (blocked), 5% smaller is 38 (2 marked removed).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from genfeed_pipeline.sync.completeness import judge_completeness
from genfeed_pipeline.sync.plan import Action
from genfeed_pipeline_tests.faults_support import by_id, open_pipeline, small_catalog
from genfeed_pipeline_tests.test_sync_plan import context, plan, priced, synced_row

# Of the 40 endpoints, six vanish from fal's list (15%); four come back and two stay gone (5%).
STAY_GONE = ("fal-ai/ideogram/v2/turbo", "fal-ai/kling-video/v1/standard/text-to-video")
COME_BACK = (
    "beatoven/sound-effect-generation",
    "bria/fibo-edit/restore",  # no price
    "fal-ai/esrgan",  # price of 0 per compute second: not priced
    "fal-ai/minimax/image-01/subject-reference",
)
REPRICED = "fal-ai/flux/schnell"  # repriced while the list is short: a sync that ran would write it
DOWNSTREAM_STEPS = {"genfeed_models", "priced_models", "profitability_report", "models_table"}


def judge(endpoints: int, previous: int | None, threshold: float = 0.10, *, whole: bool = True):
    return judge_completeness(
        complete=True,
        list_errors=[],
        endpoints=endpoints,
        previous_endpoints=previous,
        drop_threshold=threshold,
        whole_catalog=whole,
    )


@pytest.mark.parametrize(
    ("previous", "threshold", "lowest_passing"),
    [(40, 0.10, 36), (1180, 0.10, 1062), (1000, 0.10, 900), (40, 0.25, 30)],
)
def test_the_drop_threshold_boundary(previous: int, threshold: float, lowest_passing: int) -> None:
    """Exactly the threshold below the last run passes; one endpoint fewer fails, naming both counts."""
    at_boundary = judge(lowest_passing, previous, threshold)
    assert at_boundary.passed, at_boundary.reason
    assert at_boundary.reason == f"{lowest_passing} endpoints listed for the whole catalog"

    beyond = judge(lowest_passing - 1, previous, threshold)
    assert not beyond.passed
    assert beyond.reason == (
        f"fal listed {lowest_passing - 1} endpoints, more than {threshold:.0%} below "
        f"the last run's {previous}"
    )


def test_no_previous_run_or_a_chosen_endpoint_refresh_is_never_judged_by_size() -> None:
    assert judge(1, None).passed
    chosen = judge(3, 1182, whole=False)
    assert chosen.passed and chosen.reason == "3 endpoints listed for the chosen endpoints"


def test_a_failed_list_fails_whatever_its_size() -> None:
    verdict = judge_completeness(
        complete=False,
        list_errors=["GET /models?status=active: 500"],
        endpoints=1182,
        previous_endpoints=1182,
        drop_threshold=0.10,
        whole_catalog=True,
    )
    assert not verdict.passed and verdict.reason == "fal's model list failed: GET /models?status=active: 500"


@pytest.mark.parametrize(("listed", "removed"), [(36, 4), (35, 0)])
def test_the_planner_removes_at_the_same_boundary(listed: int, removed: int) -> None:
    """At exactly 10% below the last run the planner marks the missing models removed (the check passed,
    so the sync runs); one endpoint fewer and it removes nothing, whatever the check said."""
    models = [priced(f"fal-ai/model-{number:02d}") for number in range(40)]
    existing = {model.endpoint_id: synced_row(model) for model in models}
    result = plan(existing, models[:listed], context(previous_endpoints_seen=40))
    removals = [change.endpoint_id for change in result.changes if change.action == Action.REMOVE]
    assert removals == [f"fal-ai/model-{number:02d}" for number in range(listed, listed + removed)]
    assert all(change.action == Action.REMOVE for change in result.changes)
    if removed == 0:
        assert result.warnings == [
            "fal listed 35 endpoints, more than 10% below the last run's 40: nothing is marked removed"
        ]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("postgres_url") if request.param == "postgresql" else None


def started_steps(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.step_key for event in result.all_events if event.event_type_value == "STEP_START"}


def test_a_shrunk_list_stops_the_sync_and_a_slightly_short_one_removes_exactly_the_missing(
    tmp_path: Path, database_url: str | None
) -> None:
    with open_pipeline(tmp_path, database_url, catalog=small_catalog(), baseline=False) as pipeline:
        catalog = pipeline.catalog
        assert len(catalog.models) == 40
        first = pipeline.refresh()
        assert first.output_for_node("models_table").new == 40
        full = pipeline.snapshot()
        assert len(full["models"]) == 40 and [r["endpoints_seen"] for r in full["sync_runs"]] == [40]
        assert all(by_id(full)[eid]["status"] == "active" for eid in STAY_GONE + COME_BACK)
        assert all(by_id(full)[eid]["enabled"] for eid in STAY_GONE)

        # 15% smaller: blocked, and not one value of the four catalog tables moves.
        saved = {
            eid: (catalog.models[eid], catalog.prices.get(eid), catalog.openapi.get(eid))
            for eid in STAY_GONE + COME_BACK
        }
        for endpoint_id in STAY_GONE + COME_BACK:
            catalog.remove_model(endpoint_id)
        old_price = dict(catalog.prices[REPRICED])
        catalog.set_price(REPRICED, "0.004", old_price["unit"])
        assert len(catalog.models) == 34

        shrunk = pipeline.refresh(raise_on_error=False)

        assert pipeline.snapshot() == full
        assert started_steps(shrunk) & DOWNSTREAM_STEPS == set()
        assert not shrunk.success
        [completeness] = [
            e for e in shrunk.get_asset_check_evaluations() if e.check_name == "catalog_completeness"
        ]
        assert not completeness.passed and completeness.blocking
        assert completeness.severity == dg.AssetCheckSeverity.ERROR
        assert completeness.description == "fal listed 34 endpoints, more than 10% below the last run's 40"
        assert completeness.metadata["endpoints"].value == 34
        assert completeness.metadata["previous_endpoints"].value == 40

        # 5% smaller than the first list: the sync runs and marks exactly the two missing models removed.
        for endpoint_id in COME_BACK:
            metadata, price, document = saved[endpoint_id]
            catalog.add_model(endpoint_id, metadata, price=price, openapi=document)
        catalog.set_price(REPRICED, old_price["unit_price"], old_price["unit"])
        assert len(catalog.models) == 38

        short = pipeline.refresh()

        checks = {e.check_name: e for e in short.get_asset_check_evaluations()}
        assert checks["catalog_completeness"].passed
        assert checks["catalog_completeness"].description == "38 endpoints listed for the whole catalog"
        after = pipeline.snapshot()
        before_rows, after_rows = by_id(full), by_id(after)
        assert set(after_rows) == set(before_rows)
        changed = {eid for eid in before_rows if before_rows[eid] != after_rows[eid]}
        assert changed == set(STAY_GONE)
        for endpoint_id in STAY_GONE:
            old, new = before_rows[endpoint_id], after_rows[endpoint_id]
            differs = {column for column in old if old[column] != new[column]}
            assert differs == {"status", "enabled", "enabled_by_sync", "last_synced_at", "data_as_of"}
            assert (new["status"], new["enabled"], new["enabled_by_sync"]) == ("removed", False, False)
            assert new["last_synced_at"] > old["last_synced_at"]
        assert Decimal(after_rows[REPRICED]["unit_price"]) == Decimal("0.003")
        for table in ("model_schema_history", "model_price_history"):
            assert after[table] == full[table], table
        assert after["sync_runs"][:1] == full["sync_runs"]
        assert len(after["sync_runs"]) == 2
        record = after["sync_runs"][1]
        assert counts(record) == {
            "endpoints_seen": 38,
            "complete_listing": True,
            "source": "live",
            "mode": "full",
            "new_count": 0,
            "changed_count": 0,
            "removed_count": 2,
            "unchanged_count": 38,
        }
        assert record["run_id"] == short.run_id


def counts(record: dict[str, Any]) -> dict[str, Any]:
    columns = ("endpoints_seen", "complete_listing", "source", "mode", "new_count", "changed_count")
    return {column: record[column] for column in (*columns, "removed_count", "unchanged_count")}
