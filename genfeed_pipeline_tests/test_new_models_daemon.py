"""`new_fal_models_sensor` under the real `dagster-daemon run`, Dagster's storage in PostgreSQL
(`deploy/dagster.yaml`), the catalog in another PostgreSQL database and the fal emulator in a process of its
own, which the test drives through its control route (`--control`): endpoints hidden from fal's list are
revealed, and a list that lost 15% of its ids is served.

One baseline refresh (two endpoints hidden) is run in this process on the same instance while the daemon
starts; the poll interval is 3 s (the daemon's sensor loop runs every 5 s, so a tick comes every 5 s). Then:
an endpoint revealed reaches `models`, enabled by policy, through one run the sensor requested (measured
from the reveal to the row and printed); polls with nothing new request nothing; a shrunken list requests
nothing and removes nothing; stopping and starting the daemon keeps the sensor's state and cursor, does
not request the first endpoint again, and requests an endpoint revealed while it was stopped exactly once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from genfeed_pipeline_tests.conftest import TEST_FAL_KEY
from genfeed_pipeline_tests.deployment_support import (
    DEPLOY,
    Processes,
    clean_environment,
    dagster_pg_environment,
    free_port,
)

SENSOR = "new_fal_models_sensor"
JOB = "refresh_fal_catalog"
POLL_SECONDS = 3
FIRST = "fal-ai/flux/schnell"  # revealed while the daemon runs
SECOND = "fal-ai/flux/dev"  # revealed while the daemon is stopped
TRIGGER = ("genfeed/trigger", "new_models")
REFRESH_TAG = ("genfeed/pipeline", "catalog_refresh")
LATENCY = 0.01
DROP = 0.15
NEVER_DURING_THE_TEST = "0 0 1 1 *"  # the six-hourly schedule kept out of the way of the sensor's runs


@pytest.mark.timeout(300)
def test_new_models_arrive_through_the_daemon_once_each(
    postgres_url: str,
    dagster_postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dagster as dg
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        InstigatorTick,
        InstigatorType,
        TickStatus,
    )

    from genfeed_pipeline.definitions import build_definitions
    from genfeed_pipeline.settings import PipelineSettings

    started = time.monotonic()
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    emulator_port = free_port()
    env = clean_environment() | dagster_pg_environment(dagster_postgres_url)
    env |= {
        "DAGSTER_HOME": str(dagster_home),
        "GENFEED_DATABASE_URL": postgres_url,
        "GENFEED_DATA_DIR": str(tmp_path / "genfeed-data"),
        "GENFEED_NEW_MODEL_POLL_SECONDS": str(POLL_SECONDS),
        "GENFEED_REFRESH_CRON": NEVER_DURING_THE_TEST,
        "FAL_KEY": TEST_FAL_KEY,
        "FAL_API_BASE_URL": f"http://127.0.0.1:{emulator_port}/v1",
        "FAL_OPENAPI_URL": f"http://127.0.0.1:{emulator_port}/api/openapi/queue/openapi.json",
        "PYTHONUNBUFFERED": "1",
    }
    for key, value in env.items():
        if key.startswith(("DAGSTER_", "GENFEED_", "FAL_")):
            monkeypatch.setenv(key, value)

    drill = Processes(env, log_dir, emulator_port)
    control_url = f"http://127.0.0.1:{emulator_port}/_emulator/catalog"
    catalog_db = sa.create_engine(postgres_url)
    report: list[str] = []
    instance: dg.DagsterInstance | None = None

    def control(**change: list[str]) -> dict[str, Any]:
        response = drill.http.post(control_url, json=change) if change else drill.http.get(control_url)
        assert response.status_code == 200, response.text
        return response.json()

    def rows() -> dict[str, tuple[str, bool, bool | None]]:
        with catalog_db.connect() as connection:
            found = connection.execute(sa.text("SELECT id, status, enabled, policy_enabled FROM models"))
            return {row.id: (row.status, row.enabled, row.policy_enabled) for row in found}

    def row(endpoint_id: str) -> tuple[str, bool, bool | None] | None:
        with catalog_db.connect() as connection:
            found = connection.execute(
                sa.text("SELECT status, enabled, policy_enabled FROM models WHERE id = :id"),
                {"id": endpoint_id},
            ).one_or_none()
        return None if found is None else (found.status, found.enabled, found.policy_enabled)

    try:
        drill.start_emulator(LATENCY, "--control", "--hide", FIRST, "--hide", SECOND)
        assert control()["hidden"] == sorted([FIRST, SECOND])
        # Opening the instance creates Dagster's tables in its database (before the daemon races for them).
        instance = dg.DagsterInstance.from_config(str(dagster_home))
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

        def sensor_state() -> InstigatorState | None:
            states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
            return next((state for state in states if state.name == SENSOR), None)

        def finished_ticks(after: float) -> list[InstigatorTick]:
            state = sensor_state()
            if state is None:
                return []
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after)
            for tick in ticks:
                if tick.status == TickStatus.FAILURE:
                    pytest.fail(drill.explain(f"a tick of {SENSOR} failed: {tick.error}"))
            return sorted((t for t in ticks if t.status != TickStatus.STARTED), key=lambda t: t.timestamp)

        def runs(**tags: str) -> list[dg.DagsterRun]:
            records = instance.get_run_records(filters=dg.RunsFilter(tags=tags))
            return [record.dagster_run for record in records]

        def triggered() -> list[dg.DagsterRun]:
            return runs(**dict([TRIGGER]))

        def succeeded(run_key: str) -> Callable[[], dg.DagsterRun | None]:
            def check() -> dg.DagsterRun | None:
                requested = runs(**{"dagster/run_key": run_key})
                for run in requested:
                    if run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
                        pytest.fail(drill.explain(f"the run for {run_key} ended {run.status.value}"))
                return next((r for r in requested if r.status == dg.DagsterRunStatus.SUCCESS), None)

            return check

        # Baseline: the daemon starts while this process refreshes the catalog on the same instance.
        drill.start_daemon()
        defs = build_definitions(PipelineSettings.from_env(env))
        baseline_started = time.monotonic()
        baseline = defs.resolve_job_def(JOB).execute_in_process(instance=instance)
        assert baseline.success
        baseline_done = time.time()
        held = rows()
        assert held and FIRST not in held and SECOND not in held
        listed = control()["listed"]
        assert len(held) == listed
        report.append(
            f"baseline: {listed} endpoints listed and held ({FIRST}, {SECOND} hidden), refreshed in "
            f"{time.monotonic() - baseline_started:.1f}s while the daemon started"
        )

        def quiet_ticks(after: float, count: int) -> list[InstigatorTick]:
            done = finished_ticks(after)
            return done if len(done) >= count else []

        first_quiet = drill.wait_for(
            f"a tick of {SENSOR} over the refreshed catalog",
            lambda: quiet_ticks(baseline_done, 1),
            timeout=120,
        )[0]
        state = sensor_state()
        assert state is not None
        assert state.status == InstigatorStatus.DECLARED_IN_CODE, (
            f"running by default, never turned on: {state.status}"
        )
        assert state.instigator_data.min_interval == POLL_SECONDS
        assert first_quiet.status == TickStatus.SKIPPED and first_quiet.skip_reason is not None
        assert first_quiet.skip_reason == f"fal lists {listed}, the catalog holds {listed}. Nothing new."
        assert triggered() == []
        report.append(
            f"daemon ticking {SENSOR} ({state.status.value}, every {POLL_SECONDS}s) "
            f"{time.monotonic() - started:.1f}s after the test began: {first_quiet.skip_reason!r}"
        )

        # 1. FIRST is revealed: one run, requested by the sensor, queued like every refresh, inserts it.
        revealed_at = time.monotonic()
        revealed_wall = time.time()
        assert control(reveal=[FIRST])["listed"] == listed + 1
        drill.wait_for(
            f"{FIRST}'s row, enabled by policy",
            lambda: row(FIRST) == ("active", True, True),
            timeout=POLL_SECONDS + 120,
        )
        to_live = time.monotonic() - revealed_at
        row_wall = time.time()
        assert to_live < POLL_SECONDS + 40, f"{to_live:.1f}s from the reveal to the row (bound: poll + 60 s)"

        run_key = f"new_models:{FIRST}"
        run = drill.wait_for(f"the run for {run_key} to succeed", succeeded(run_key), timeout=120)
        assert run.job_name == JOB
        assert run.tags[TRIGGER[0]] == TRIGGER[1] and run.tags[REFRESH_TAG[0]] == REFRESH_TAG[1], run.tags
        assert run.tags["dagster/sensor_name"] == SENSOR
        assert run.run_config["ops"]["discover_fal_catalog"]["config"]["endpoint_ids"] == [FIRST]
        events = {
            record.event_log_entry.dagster_event.event_type: record.timestamp
            for kind in (dg.DagsterEventType.RUN_ENQUEUED, dg.DagsterEventType.RUN_START)
            for record in instance.get_records_for_run(run.run_id, of_type=kind).records
        }
        assert set(events) == {dg.DagsterEventType.RUN_ENQUEUED, dg.DagsterEventType.RUN_START}, (
            "through the queue, under the one-refresh-at-a-time limit"
        )
        (request_tick,) = [t for t in finished_ticks(revealed_wall) if t.run_ids]
        assert request_tick.status == TickStatus.SUCCESS and request_tick.run_ids == [run.run_id]
        assert request_tick.run_keys == [run_key]
        stats = instance.get_run_stats(run.run_id)
        tick_after = request_tick.timestamp - revealed_wall
        report.append(
            f"new model, time to live: {to_live:.1f}s from the reveal of {FIRST} to its row (active, "
            f"enabled by policy); the requesting tick {tick_after:.1f}s after it, "
            f"enqueued +{events[dg.DagsterEventType.RUN_ENQUEUED] - request_tick.timestamp:.1f}s, "
            f"run started +{events[dg.DagsterEventType.RUN_START] - request_tick.timestamp:.1f}s, "
            f"row +{row_wall - request_tick.timestamp:.1f}s, run ended "
            f"+{(stats.end_time or 0) - request_tick.timestamp:.1f}s"
        )
        cursor = sensor_state().instigator_data.cursor
        assert json.loads(cursor) == {"requested": [FIRST], "run_key": run_key}

        # 2. Polls with nothing new request nothing.
        quiet = drill.wait_for("two more ticks", lambda: quiet_ticks(row_wall, 2), timeout=60)
        assert [t.status for t in quiet] == [TickStatus.SKIPPED] * len(quiet)
        assert all(t.skip_reason.endswith("Nothing new.") for t in quiet), [t.skip_reason for t in quiet]
        assert [r.run_id for r in triggered()] == [run.run_id]
        report.append(f"{len(quiet)} ticks after the row: {quiet[-1].skip_reason!r}; one run in all")

        # 3. A list that lost 15% of its ids (and gained SECOND) requests nothing and removes nothing.
        before = rows()
        served = control()["listed_ids"]
        dropped = [endpoint_id for endpoint_id in served if endpoint_id != FIRST][: round(len(served) * DROP)]
        assert control(reveal=[SECOND], hide=dropped)["listed"] == len(served) + 1 - len(dropped)
        shrunk_at = time.time()
        shrunk = drill.wait_for(
            "a tick over the shrunken list", lambda: quiet_ticks(shrunk_at, 1), timeout=60
        )[0]
        control(reveal=dropped, hide=[SECOND])
        assert shrunk.status == TickStatus.SKIPPED and shrunk.skip_reason is not None
        assert f"below the last run's {listed}" in shrunk.skip_reason, shrunk.skip_reason
        assert "the six-hourly refresh decides" in shrunk.skip_reason
        assert [r.run_id for r in triggered()] == [run.run_id]
        assert rows() == before, "no row changed: nothing removed, nothing added"
        report.append(
            f"{len(dropped)} of {len(served)} ids dropped (and {SECOND} new): {shrunk.skip_reason!r}"
        )

        # 4. The daemon stops; SECOND is revealed meanwhile; after the restart it is requested exactly once.
        state_before = sensor_state()
        stopped_in = drill.stop_service("daemon")
        stopped_wall = time.time()
        control(reveal=[SECOND])
        drill.start_daemon()
        restarted_at = time.monotonic()
        cursors = [state_before.instigator_data.cursor]
        second_key = f"new_models:{SECOND}"

        def second_requested() -> dg.DagsterRun | None:
            state_now = sensor_state()
            assert state_now is not None
            if state_now.instigator_data.cursor != cursors[-1]:
                cursors.append(state_now.instigator_data.cursor)
            return succeeded(second_key)()

        second = drill.wait_for(f"the run for {second_key}", second_requested, timeout=180)
        restart_to_run = time.monotonic() - restarted_at
        assert row(SECOND) is not None and row(SECOND)[0] == "active"
        state_after = sensor_state()
        assert cursors == [cursor, json.dumps({"requested": [SECOND], "run_key": second_key})], (
            "the cursor kept across the restart, then moved once, by the one request"
        )
        assert (state_after.selector_id, state_after.status) == (
            state_before.selector_id,
            state_before.status,
        )
        assert (
            state_after.instigator_data.last_sensor_start_timestamp
            == state_before.instigator_data.last_sensor_start_timestamp
        ), "the same sensor state, not one made anew"
        second_done = time.time()
        after_second = drill.wait_for(
            "a tick after the second run", lambda: quiet_ticks(second_done, 1), timeout=60
        )
        assert after_second[0].skip_reason.endswith("Nothing new."), after_second[0].skip_reason
        requested_after = [t for t in finished_ticks(stopped_wall) if t.run_ids]
        assert [t.run_keys for t in requested_after] == [[second_key]]
        assert len(runs(**{"dagster/run_key": run_key})) == 1, "the first id never requested again"
        assert len(runs(**{"dagster/run_key": second_key})) == 1
        assert sorted(r.run_id for r in triggered()) == sorted([run.run_id, second.run_id])
        report.append(
            f"daemon stopped in {stopped_in:.1f}s, {SECOND} revealed while stopped; after the restart it was "
            f"requested once and its run succeeded {restart_to_run:.1f}s after the daemon started again; "
            f"{run_key} not requested again; cursor kept across the restart ({cursor})"
        )
    finally:
        drill.close()
        catalog_db.dispose()
        if instance is not None:
            instance.dispose()
        report.append(f"the test took {time.monotonic() - started:.1f}s")
        print("\n".join(["", "new models under the daemon:", *(f"  {line}" for line in report)]))
