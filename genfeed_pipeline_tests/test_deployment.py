"""The production instance, proven with the real processes.

`test_daemon_and_webserver_on_postgres` starts `dagster-daemon run` and `dagster-webserver` against
`deploy/dagster.yaml` (run, event-log and schedule storage in a fresh PostgreSQL database), the catalog in
another fresh database and the fal emulator as a process of its own. The schedule, its cron shortened to
every minute through `GENFEED_REFRESH_CRON`, launches `refresh_fal_catalog`; the test reads the run, its
materializations and its check results back over GraphQL, from the instance and from the tables, restarts
both processes and reads them again, then shows that a second launch waits in the queue while a refresh
runs, that a refresh over a failing fal list is stopped by the blocking completeness check, and that a
refresh interrupted by stopping the daemon is retried once the daemon is back. The daemon's run status
sensors alert on those runs through a webhook receiver in the test that checks each message's
`X-GenFeed-Signature`: `catalog.check_failed` for a refresh whose `pricing_drift` failed (fal repriced a
model), `catalog.run_failed` for the refresh the completeness check stopped. It prints the time from the
schedule's tick to the finished refresh.

The overdue sensor (`alert_on_overdue_catalog`) is not driven here: it ticks every 300 s and reads the
time from its `clock` resource, which the code location does not let the environment pin; test_guards.py
evaluates it with a fixed clock against a real refresh.

The launcher tests show that the scale-out configurations (`deploy/k8s/dagster.yaml`,
`deploy/docker/dagster.yaml`) validate against the launchers' own config schemas without a cluster.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from genfeed_pipeline_tests.conftest import TEST_FAL_KEY, require_tools
from genfeed_pipeline_tests.deployment_support import (
    BIN,
    DEPLOY,
    REPO_ROOT,
    GraphQLError,
    Processes,
    Service,
    clean_environment,
    dagster_pg_environment,
    fmt_time,
    free_port,
)
from genfeed_pipeline_tests.webhook_receiver import RecordedRequest, WebhookReceiver

LOCATION = "genfeed_pipeline"
REPOSITORY = "__repository__"
JOB = "refresh_fal_catalog"
SCHEDULE = "refresh_fal_catalog_schedule"
REFRESH_TAG = ("genfeed/pipeline", "catalog_refresh")
CATALOG_ASSETS = {
    "fal_model_list",
    "fal_openapi_schemas",
    "genfeed_models",
    "priced_models",
    "profitability_report",
    "models_table",
}
CATALOG_CHECKS = {
    ("fal_model_list", "catalog_completeness"),
    ("genfeed_models", "breaking_schema_changes"),
    ("priced_models", "pricing_drift"),
    ("priced_models", "cloud_price_not_below_cost"),
    ("models_table", "unique_endpoint_ids"),
    ("models_table", "enabled_models_valid_and_priced"),
}
CATALOG_TABLES = ("models", "model_schema_history", "model_price_history", "sync_runs")
IN_PROGRESS = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}
FAILED = {"FAILURE", "CANCELED"}

FAST_LATENCY = 0.01  # seconds the emulator adds to every request while the schedule runs
SLOW_LATENCY = 0.5  # … while two launches compete for the one refresh slot
SCHEDULED_RUN_TIMEOUT = 240.0  # up to a minute for the tick, then the refresh itself
QUEUE_TIMEOUT = 300.0
ALERT_TIMEOUT = 180.0  # run status sensors tick every 30 s; the daemon may be restarted in between

WEBHOOK_SECRET = "drill-webhook-secret-8d41c7"
# fal reprices flux/schnell from the snapshot's $0.003 to $0.004 per megapixel: +33%, past the 5% drift limit.
REPRICED = ("fal-ai/flux/schnell", "0.004", "megapixels")
REPRICE = ("--set-price", *REPRICED)

# -- processes -------------------------------------------------------------------------------------------


class Deployment(Processes):
    """The drill's processes, with the webserver and what it answers over GraphQL."""

    def __init__(self, env: Mapping[str, str], log_dir: Path, webserver_port: int, emulator_port: int):
        super().__init__(env, log_dir, emulator_port)
        self.webserver_port = webserver_port
        self.graphql_url = f"http://127.0.0.1:{webserver_port}/graphql"

    def start_dagster(self, only_daemon: bool = False) -> float:
        """Starts the daemon and the webserver; returns seconds until the code location is loaded."""
        started = time.monotonic()
        workspace = ["-w", str(REPO_ROOT / "workspace.yaml")]
        self.start_daemon()
        if only_daemon:
            return time.monotonic() - started
        webserver = [str(BIN / "dagster-webserver"), *workspace, "-h", "127.0.0.1"]
        webserver += ["-p", str(self.webserver_port)]
        self.services["webserver"] = Service("webserver", webserver, self.env, self.log_dir).start()
        self.wait_for(
            "the webserver to answer /server_info",
            lambda: self._answers(f"http://127.0.0.1:{self.webserver_port}/server_info"),
            timeout=120,
            service="webserver",
        )
        self.wait_for("the code location to load", self._location_loaded, timeout=120, service="webserver")
        self.wait_for("the daemons to report healthy", self._daemons_healthy, timeout=120, service="daemon")
        return time.monotonic() - started

    def stop_dagster(self) -> dict[str, float]:
        return {name: self.stop_service(name) for name in ("webserver", "daemon")}

    # -- GraphQL

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.http.post(self.graphql_url, json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise GraphQLError(str(body["errors"])[:2000])
        return body["data"]

    def _location_loaded(self) -> bool:
        entries = self.graphql(WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
        for entry in entries:
            location = entry["locationOrLoadError"]
            if entry["name"] == LOCATION and location:
                if location["__typename"] == "PythonError":
                    pytest.fail(self.explain(f"the code location failed to load: {location['message']}"))
                return location["__typename"] == "RepositoryLocation"
        return False

    def _daemons_healthy(self) -> bool:
        statuses = self.graphql(DAEMONS_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
        healthy = {status["daemonType"] for status in statuses if status["healthy"]}
        return {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR"} <= healthy

    def runs(self, **run_filter: Any) -> list[dict[str, Any]]:
        result = self.graphql(RUNS_QUERY, filter=run_filter)["runsOrError"]
        if result["__typename"] != "Runs":
            raise GraphQLError(f"runsOrError: {result}")
        return result["results"]

    def run(self, run_id: str) -> dict[str, Any]:
        result = self.graphql(RUN_QUERY, runId=run_id)["runOrError"]
        assert result["__typename"] == "Run", self.explain(f"run {run_id} not found over GraphQL: {result}")
        return result

    def check_executions(self, asset: str, check: str) -> list[dict[str, Any]]:
        return self.graphql(CHECK_QUERY, assetKey={"path": [asset]}, checkName=check)["assetCheckExecutions"]

    def asset_materialization_runs(self, asset: str) -> set[str]:
        result = self.graphql(ASSET_QUERY, assetKey={"path": [asset]})["assetOrError"]
        assert result["__typename"] == "Asset", self.explain(f"asset {asset} not found: {result}")
        return {event["runId"] for event in result["assetMaterializations"]}

    def schedule(self) -> dict[str, Any]:
        selector = {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "scheduleName": SCHEDULE,
        }
        result = self.graphql(SCHEDULE_QUERY, selector=selector)["scheduleOrError"]
        assert result["__typename"] == "Schedule", self.explain(f"schedule not found: {result}")
        return result

    def launch_refresh(self, run_config: dict[str, Any] | None = None) -> str:
        params = {
            "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": JOB},
            "runConfigData": run_config or {},
        }
        result = self.graphql(LAUNCH_MUTATION, executionParams=params)["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", self.explain(f"launchRun failed: {result}")
        return result["run"]["runId"]


WORKSPACE_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""

DAEMONS_QUERY = """
query { instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }
"""

RUN_FIELDS = "runId jobName status creationTime startTime endTime tags { key value }"

RUNS_QUERY = f"""
query Runs($filter: RunsFilter) {{
  runsOrError(filter: $filter) {{
    __typename
    ... on Runs {{ results {{ {RUN_FIELDS} }} }}
    ... on PythonError {{ message }}
  }}
}}
"""

RUN_QUERY = f"""
query Run($runId: ID!) {{
  runOrError(runId: $runId) {{
    __typename
    ... on Run {{ {RUN_FIELDS} assetMaterializations {{ assetKey {{ path }} timestamp }} }}
    ... on RunNotFoundError {{ message }}
    ... on PythonError {{ message }}
  }}
}}
"""

CHECK_QUERY = """
query Checks($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 50) {
    runId status timestamp evaluation { success severity }
  }
}
"""

ASSET_QUERY = """
query Asset($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset { assetMaterializations(limit: 50) { runId timestamp } }
  }
}
"""

SCHEDULE_QUERY = """
query Schedule($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) {
    __typename
    ... on Schedule {
      name cronSchedule
      scheduleState { id status ticks(limit: 50) { tickId status timestamp runIds } }
    }
    ... on PythonError { message }
    ... on ScheduleNotFoundError { message }
  }
}
"""

STOP_SCHEDULE_MUTATION = """
mutation Stop($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
  }
}
"""

LAUNCH_MUTATION = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""


# -- databases -------------------------------------------------------------------------------------------


# -- the drill -------------------------------------------------------------------------------------------


@pytest.mark.timeout(900)
def test_daemon_and_webserver_on_postgres(
    postgres_url: str,
    dagster_postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dagster import AssetKey, DagsterInstance, DagsterRunStatus

    catalog_url = postgres_url
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    emulator_port = free_port()
    # The alert sensors' webhook: a receiver in this process that checks every message's signature.
    receiver = WebhookReceiver(secret=WEBHOOK_SECRET).start()
    env = clean_environment() | dagster_pg_environment(dagster_postgres_url)
    env |= {
        "DAGSTER_HOME": str(dagster_home),
        "GENFEED_DATABASE_URL": catalog_url,
        "GENFEED_DATA_DIR": str(tmp_path / "genfeed-data"),
        "GENFEED_REFRESH_CRON": "* * * * *",
        "FAL_KEY": TEST_FAL_KEY,
        "FAL_API_BASE_URL": f"http://127.0.0.1:{emulator_port}/v1",
        "FAL_OPENAPI_URL": f"http://127.0.0.1:{emulator_port}/api/openapi/queue/openapi.json",
        "GENFEED_WEBHOOK_URLS": receiver.url,
        "GENFEED_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PYTHONUNBUFFERED": "1",
    }
    for key, value in env.items():
        if key.startswith(("DAGSTER_", "GENFEED_", "FAL_")):
            monkeypatch.setenv(key, value)

    drill = Deployment(env, log_dir, free_port(), emulator_port)
    report: list[str] = []
    try:
        drill.start_emulator(FAST_LATENCY)
        # The documented first step on a new instance database: create Dagster's schema.
        migrated = subprocess.run(
            [str(BIN / "dagster"), "instance", "migrate"],
            cwd=log_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert migrated.returncode == 0, (
            f"dagster instance migrate failed:\n{migrated.stdout}\n{migrated.stderr}"
        )

        startup = drill.start_dagster()
        report.append(f"daemon + webserver up, code location loaded: {startup:.1f}s")

        # 1. The schedule ticks and its run refreshes the catalog.
        def scheduled_success() -> dict[str, Any] | None:
            runs = drill.runs(tags=[{"key": "dagster/schedule_name", "value": SCHEDULE}])
            for run in runs:
                if run["status"] in FAILED:
                    pytest.fail(drill.explain(f"the scheduled run failed: {run}\n{run_errors(run['runId'])}"))
            done = [run for run in runs if run["status"] == "SUCCESS"]
            return min(done, key=lambda run: run["creationTime"]) if done else None

        def run_errors(run_id: str) -> str:
            with DagsterInstance.from_config(str(dagster_home)) as instance:
                errors = [
                    entry.user_message or (entry.dagster_event and entry.dagster_event.message) or ""
                    for entry in instance.all_logs(run_id)
                    if entry.level >= 40 or (entry.dagster_event and entry.dagster_event.is_failure)
                ]
            return "\n".join(str(error)[:1500] for error in errors[-5:])

        run = drill.wait_for(
            "the schedule to launch a refresh that succeeds", scheduled_success, timeout=SCHEDULED_RUN_TIMEOUT
        )
        run_id = run["runId"]
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        assert run["jobName"] == JOB
        assert tags.get(REFRESH_TAG[0]) == REFRESH_TAG[1], tags

        ticks = drill.schedule()["scheduleState"]["ticks"]
        tick = next((t for t in ticks if run_id in t["runIds"]), None)
        assert tick is not None and tick["status"] == "SUCCESS", drill.explain(
            f"no tick launched {run_id}: {ticks}"
        )
        tick_to_end = run["endTime"] - tick["timestamp"]
        report.append(
            "schedule tick → finished refresh: "
            f"{tick_to_end:.1f}s (tick {fmt_time(tick['timestamp'])}, run created "
            f"{fmt_time(run['creationTime'])}, started {fmt_time(run['startTime'])}, "
            f"ended {fmt_time(run['endTime'])}; the run itself {run['endTime'] - run['startTime']:.1f}s)"
        )

        def visible_over_graphql(when: str) -> dict[str, Any]:
            seen = drill.run(run_id)
            assert seen["status"] == "SUCCESS", f"{when}: {seen['status']}"
            materialized = {event["assetKey"]["path"][-1] for event in seen["assetMaterializations"]}
            assert materialized == CATALOG_ASSETS, drill.explain(f"{when}: materialized {materialized}")
            for asset in CATALOG_ASSETS:
                assert run_id in drill.asset_materialization_runs(asset), f"{when}: {asset} lacks {run_id}"
            checks = {}
            for asset, check in sorted(CATALOG_CHECKS):
                mine = [e for e in drill.check_executions(asset, check) if e["runId"] == run_id]
                assert len(mine) == 1, drill.explain(f"{when}: {asset}:{check} executions of the run: {mine}")
                assert mine[0]["status"] in {"SUCCEEDED", "FAILED"} and mine[0]["evaluation"], mine
                checks[f"{asset}:{check}"] = mine[0]["status"]
            assert checks["fal_model_list:catalog_completeness"] == "SUCCEEDED", checks
            tick_again = next(
                t for t in drill.schedule()["scheduleState"]["ticks"] if t["tickId"] == tick["tickId"]
            )
            assert run_id in tick_again["runIds"], f"{when}: tick {tick_again}"
            return {"run": seen, "checks": checks}

        before = visible_over_graphql("before the restart")
        report.append(f"check results: {before['checks']}")

        # The same, straight from the instance and the PostgreSQL tables.
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            storages = {
                type(instance.run_storage).__name__,
                type(instance.event_log_storage).__name__,
                type(instance.schedule_storage).__name__,
            }
            assert storages == {"PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"}
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            record = instance.get_run_by_id(run_id)
            assert record is not None and record.status == DagsterRunStatus.SUCCESS
            for asset in CATALOG_ASSETS:
                latest = instance.fetch_materializations(AssetKey(asset), limit=50).records
                assert run_id in {r.run_id for r in latest}, asset

        dagster_db = sa.create_engine(dagster_postgres_url)
        try:
            with dagster_db.connect() as connection:
                status = connection.execute(
                    sa.text("SELECT status FROM runs WHERE run_id = :id"), {"id": run_id}
                ).scalar_one()
                materialized = connection.execute(
                    sa.text(
                        "SELECT asset_key FROM event_logs WHERE run_id = :id"
                        " AND dagster_event_type = 'ASSET_MATERIALIZATION'"
                    ),
                    {"id": run_id},
                ).scalars()
                check_rows = connection.execute(
                    sa.text(
                        "SELECT asset_key, check_name, execution_status FROM asset_check_executions"
                        " WHERE run_id = :id"
                    ),
                    {"id": run_id},
                ).all()
                materialized_keys = {AssetKey.from_db_string(key).path[-1] for key in materialized}
                checks_in_table = {(AssetKey.from_db_string(k).path[-1], c) for k, c, _ in check_rows}
        finally:
            dagster_db.dispose()
        assert status == "SUCCESS"
        assert materialized_keys == CATALOG_ASSETS, materialized_keys
        assert checks_in_table == CATALOG_CHECKS, check_rows
        report.append(
            f"PostgreSQL (Dagster's database): runs.status={status}, {len(materialized_keys)} "
            f"ASSET_MATERIALIZATION rows in event_logs, {len(check_rows)} rows in asset_check_executions"
        )

        catalog_db = sa.create_engine(catalog_url)
        try:
            with catalog_db.connect() as connection:
                model_rows = connection.execute(sa.text("SELECT count(*) FROM models")).scalar_one()
                synced = connection.execute(
                    sa.text("SELECT count(*) FROM sync_runs WHERE run_id = :id"), {"id": run_id}
                ).scalar_one()
        finally:
            catalog_db.dispose()
        assert model_rows > 1000, model_rows
        assert synced == 1, f"sync_runs rows of {run_id}: {synced}"
        report.append(f"catalog database: {model_rows} rows in models, the run's row in sync_runs")

        # 2. Restart both processes: everything above is still there.
        quiet = wait_until_quiet(drill)
        stopped = drill.stop_dagster()
        report.append(
            f"stopped webserver in {stopped['webserver']:.1f}s, daemon in {stopped['daemon']:.1f}s "
            f"(SIGINT to the process group; {quiet})"
        )
        startup = drill.start_dagster()
        report.append(f"restarted: code location loaded after {startup:.1f}s")
        after = visible_over_graphql("after the restart")
        assert after["checks"] == before["checks"]
        for key in ("status", "creationTime", "startTime", "endTime"):
            assert after["run"][key] == before["run"][key], key
        report.append(
            "after the restart, over GraphQL: the run (SUCCESS, same times), its 6 materializations, "
            "its 6 check results and the schedule tick that launched it"
        )

        # 3. A second launch waits in the queue while a refresh runs. fal has repriced one model since the
        #    scheduled run: the first refresh applies it and its pricing_drift check fails (WARN).
        state = drill.schedule()["scheduleState"]
        stop = drill.graphql(STOP_SCHEDULE_MUTATION, id=state["id"])["stopRunningSchedule"]
        assert stop["__typename"] == "ScheduleStateResult", stop
        wait_until_quiet(drill, boundary_margin=0)
        drill.start_emulator(SLOW_LATENCY, *REPRICE)
        first = drill.launch_refresh({"ops": {"discover_fal_catalog": {"config": {"full_refresh": True}}}})
        second = drill.launch_refresh()
        observed: list[tuple[str, str]] = []

        def second_waits() -> bool:
            statuses = {r["runId"]: r["status"] for r in drill.runs(runIds=[first, second])}
            observed.append((statuses[first], statuses[second]))
            if statuses[first] in FAILED:
                pytest.fail(drill.explain(f"the first launched run failed:\n{run_errors(first)}"))
            if statuses[first] == "SUCCESS":
                pytest.fail(
                    drill.explain(f"the first run finished before the second was seen queued: {observed}")
                )
            return statuses[first] == "STARTED" and statuses[second] == "QUEUED"

        drill.wait_for("the second launch to wait while the first runs", second_waits, timeout=120)
        report.append(
            f"queue: first {first[:8]} {observed[-1][0]} while second {second[:8]} {observed[-1][1]} "
            f"(emulator latency {SLOW_LATENCY}s, the first a full refresh; polled {len(observed)} times: "
            f"{sorted(set(observed))})"
        )

        def both_done() -> list[dict[str, Any]] | None:
            runs = {r["runId"]: r for r in drill.runs(runIds=[first, second])}
            for run_id_, run_ in runs.items():
                if run_["status"] in FAILED:
                    pytest.fail(drill.explain(f"launched run {run_id_} failed:\n{run_errors(run_id_)}"))
            done = [runs[first], runs[second]]
            return done if all(r["status"] == "SUCCESS" for r in done) else None

        done_first, done_second = drill.wait_for(
            "both launched runs to succeed", both_done, timeout=QUEUE_TIMEOUT
        )
        assert done_second["startTime"] >= done_first["endTime"], (done_first, done_second)
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            events = {
                entry.dagster_event.event_type_value: entry.timestamp
                for entry in instance.all_logs(second)
                if entry.dagster_event is not None
            }
        # The second was enqueued while the first ran, and launched (STARTING) only after it ended.
        assert {"PIPELINE_ENQUEUED", "PIPELINE_STARTING"} <= set(events), events
        assert events["PIPELINE_ENQUEUED"] < done_first["endTime"] <= events["PIPELINE_STARTING"], events
        report.append(
            f"  first ran {fmt_time(done_first['startTime'])}–{fmt_time(done_first['endTime'])}; "
            f"second enqueued {fmt_time(events['PIPELINE_ENQUEUED'])}, launched "
            f"{fmt_time(events['PIPELINE_STARTING'])}, ran {fmt_time(done_second['startTime'])}–"
            f"{fmt_time(done_second['endTime'])}"
        )

        # No two refreshes ever overlapped, across every run of the drill.
        refreshes = sorted(
            (r for r in drill.runs(pipelineName=JOB) if r["startTime"] and r["endTime"]),
            key=lambda r: r["startTime"],
        )
        for earlier, later in itertools.pairwise(refreshes):
            assert later["startTime"] >= earlier["endTime"], (earlier, later)
        report.append(f"{len(refreshes)} refreshes in all, none overlapping")

        def check_status(asset: str, check: str, run_id_: str) -> str:
            mine = [e["status"] for e in drill.check_executions(asset, check) if e["runId"] == run_id_]
            assert len(mine) == 1, drill.explain(f"{asset}:{check} executions of {run_id_}: {mine}")
            return mine[0]

        drift = (
            check_status("priced_models", "pricing_drift", first),
            check_status("priced_models", "pricing_drift", second),
        )
        assert drift == ("FAILED", "SUCCEEDED"), drift
        report.append(
            f"pricing_drift after fal's repricing of {REPRICED[0]}: first {drift[0]}, second {drift[1]}"
        )

        # 4. fal's list fails (page 1 answers 500 to every attempt): the blocking catalog_completeness check
        #    stops the refresh, and the run fails.
        drill.start_emulator(FAST_LATENCY, *REPRICE, "--failing-list-page", "1")
        blocked = drill.launch_refresh()

        def blocked_failed() -> bool:
            status_ = drill.runs(runIds=[blocked])[0]["status"]
            if status_ == "SUCCESS":
                pytest.fail(drill.explain(f"the refresh over a failing list succeeded: {blocked}"))
            return status_ == "FAILURE"

        drill.wait_for("the refresh over a failing list to fail", blocked_failed, timeout=QUEUE_TIMEOUT)
        completeness = check_status("fal_model_list", "catalog_completeness", blocked)
        assert completeness == "FAILED", completeness
        materialized = {
            event["assetKey"]["path"][-1] for event in drill.run(blocked)["assetMaterializations"]
        }
        assert "models_table" not in materialized, materialized
        report.append(f"failing list: {blocked[:8]} FAILURE, catalog_completeness {completeness}, no sync")
        drill.start_emulator(SLOW_LATENCY, *REPRICE)

        # 5. Stopping the daemon mid-refresh (SIGINT, as systemd's KillSignal) fails the run; once the
        #    daemon is back, run_retries launches it again and the retry succeeds.
        interrupted = drill.launch_refresh(
            {"ops": {"discover_fal_catalog": {"config": {"full_refresh": True}}}}
        )
        drill.wait_for(
            "the refresh to start",
            lambda: drill.runs(runIds=[interrupted])[0]["status"] == "STARTED",
            timeout=120,
        )
        time.sleep(2)
        drill.stop_service("daemon")
        status = drill.runs(runIds=[interrupted])[0]["status"]
        assert status == "FAILURE", drill.explain(f"the interrupted refresh is {status}, not FAILURE")
        drill.start_dagster(only_daemon=True)

        def retried() -> dict[str, Any] | None:
            retries = drill.runs(tags=[{"key": "dagster/parent_run_id", "value": interrupted}])
            for run_ in retries:
                if run_["status"] in FAILED:
                    pytest.fail(drill.explain(f"the retry failed:\n{run_errors(run_['runId'])}"))
            return next((r for r in retries if r["status"] == "SUCCESS"), None)

        retry = drill.wait_for("the interrupted refresh to be retried", retried, timeout=QUEUE_TIMEOUT)
        retry_tags = {tag["key"]: tag["value"] for tag in retry["tags"]}
        assert retry_tags.get("dagster/retry_number") == "1" and retry["jobName"] == JOB, retry_tags
        report.append(
            f"daemon stopped mid-refresh: {interrupted[:8]} FAILURE; after the restart its retry "
            f"{retry['runId'][:8]} (dagster/retry_number=1) succeeded at {fmt_time(retry['endTime'])}"
        )
        # A run that failed in a step (the blocking check) is not retried (retry_on_asset_or_op_failure).
        assert drill.runs(tags=[{"key": "dagster/parent_run_id", "value": blocked}]) == []

        # 6. The daemon's run status sensors alerted on the runs of steps 3 and 4: one signed message each.
        def alert(event_type: str, run_id_: str) -> RecordedRequest | None:
            return next(
                (
                    request
                    for request in receiver.requests
                    if isinstance(request.json, dict)
                    and (request.json.get("type"), request.json.get("run_id")) == (event_type, run_id_)
                ),
                None,
            )

        checks_alert = drill.wait_for(
            "alert_on_failed_checks to send catalog.check_failed for the repriced refresh",
            lambda: alert("catalog.check_failed", first),
            timeout=ALERT_TIMEOUT,
        )
        failure_alert = drill.wait_for(
            "alert_on_failed_refresh to send catalog.run_failed for the blocked refresh",
            lambda: alert("catalog.run_failed", blocked),
            timeout=ALERT_TIMEOUT,
        )
        for message in (checks_alert, failure_alert):
            assert message.signature_valid, (message.json["type"], message.headers.get("x-genfeed-signature"))
            assert message.headers["x-genfeed-event"] == message.json["type"], message.headers
        failed_checks = {check["check_name"]: check for check in checks_alert.json["failed_checks"]}
        assert set(failed_checks) == {"pricing_drift"}, failed_checks
        assert failed_checks["pricing_drift"]["severity"] == "WARN"
        assert failed_checks["pricing_drift"]["affected"] == [REPRICED[0]]
        assert failure_alert.json["job_name"] == JOB
        assert "failed checks: catalog_completeness" in failure_alert.json["error"], failure_alert.json
        assert alert("catalog.check_failed", second) is None and alert("catalog.run_failed", first) is None
        unsigned = [(r.path, r.body[:200]) for r in receiver.requests if not r.signature_valid]
        assert unsigned == [], unsigned
        report.append(
            "alerts (signed, signature checked by the receiver): "
            + ", ".join(
                f"{r.json['type']} {str(r.json.get('run_id'))[:8]}"
                for r in receiver.requests
                if isinstance(r.json, dict) and r.json.get("type") != "catalog.changed"
            )
        )
    finally:
        drill.close()
        receiver.stop()
        print("\n".join(["", "deployment drill:", *(f"  {line}" for line in report)]))


def wait_until_quiet(drill: Deployment, boundary_margin: float = 15.0, timeout: float = 240.0) -> str:
    """Waits until no refresh is queued or running and (with a margin) no tick of the every-minute
    schedule is about to fire, so that stopping the processes interrupts nothing."""
    started = time.monotonic()

    def quiet() -> bool:
        second = datetime.now(UTC).second + datetime.now(UTC).microsecond / 1e6
        if boundary_margin and (second < 5 or second > 60 - boundary_margin):
            return False
        return not drill.runs(statuses=sorted(IN_PROGRESS))

    drill.wait_for("no refresh in progress", quiet, timeout=timeout)
    return f"waited {time.monotonic() - started:.1f}s for no run in progress"


# -- scale-out launchers, validated without a cluster ----------------------------------------------------


def launcher_block(path: Path) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text())
    return config["run_launcher"]


def test_k8s_run_launcher_config_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = pytest.importorskip(
        "dagster_k8s", reason="dagster-k8s==0.29.27 is not installed (a dev extra): cannot validate"
    )
    from dagster._config import process_config, resolve_to_config_type, validate_config

    block = launcher_block(DEPLOY / "k8s" / "dagster.yaml")
    assert (block["module"], block["class"]) == ("dagster_k8s", "K8sRunLauncher")
    schema = resolve_to_config_type(launcher.K8sRunLauncher.config_type())
    environment = {
        "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "genfeed-dagster-instance",
        "DAGSTER_K8S_JOB_NAMESPACE": "genfeed",
        "DAGSTER_K8S_JOB_IMAGE": "registry.example/genfeed-pipeline:1.0.0",
        "DAGSTER_K8S_PG_PASSWORD_SECRET": "genfeed-dagster-postgresql",
        "DAGSTER_K8S_SERVICE_ACCOUNT": "genfeed-dagster",
        "GENFEED_K8S_ENV_CONFIG_MAP": "genfeed-pipeline-config",
        "GENFEED_K8S_ENV_SECRET": "genfeed-pipeline-secrets",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)

    assert validate_config(schema, block["config"]).success
    processed = process_config(schema, block["config"])
    assert processed.success, processed.errors
    value = processed.value
    assert value["instance_config_map"] == "genfeed-dagster-instance"
    assert value["job_namespace"] == "genfeed"
    assert value["job_image"] == "registry.example/genfeed-pipeline:1.0.0"
    assert value["postgres_password_secret"] == "genfeed-dagster-postgresql"
    assert value["load_incluster_config"] is True
    assert value["env_config_maps"] == ["genfeed-pipeline-config"]
    assert value["env_secrets"] == ["genfeed-pipeline-secrets"]
    assert value["volume_mounts"] == [{"name": "genfeed-data", "mount_path": "/var/lib/genfeed/data"}]

    # The schema is the launcher's own: a misspelt or missing key is refused.
    assert not validate_config(schema, {**block["config"], "job_namespaces": "x"}).success
    without_map = {k: v for k, v in block["config"].items() if k != "instance_config_map"}
    assert not validate_config(schema, without_map).success


def test_docker_run_launcher_config_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = pytest.importorskip(
        "dagster_docker", reason="dagster-docker==0.29.27 is not installed (a dev extra): cannot validate"
    )
    from dagster._config import process_config, resolve_to_config_type, validate_config

    block = launcher_block(DEPLOY / "docker" / "dagster.yaml")
    assert (block["module"], block["class"]) == ("dagster_docker", "DockerRunLauncher")
    schema = resolve_to_config_type(launcher.DockerRunLauncher.config_type())
    monkeypatch.setenv("DAGSTER_DOCKER_IMAGE", "genfeed-pipeline:1.0.0")
    monkeypatch.setenv("DAGSTER_DOCKER_NETWORK", "genfeed")

    processed = process_config(schema, block["config"])
    assert processed.success, processed.errors
    assert processed.value["image"] == "genfeed-pipeline:1.0.0"
    assert processed.value["network"] == "genfeed"
    # The launcher builds without a Docker daemon (it connects only when it launches a run).
    built = launcher.DockerRunLauncher(**processed.value)
    assert built.image == "genfeed-pipeline:1.0.0"
    assert not validate_config(schema, {**block["config"], "images": "x"}).success


@pytest.mark.parametrize(
    "relative",
    ["dagster.yaml", "k8s/dagster.yaml", "docker/dagster.yaml"],
    ids=["one-machine", "k8s", "docker"],
)
def test_instance_configs_validate(relative: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each deploy/ instance file passes Dagster's instance schema, with every variable it reads set."""
    from dagster._core.instance.config import dagster_instance_config

    text = (DEPLOY / relative).read_text()
    if "dagster_k8s" in text:
        pytest.importorskip("dagster_k8s", reason="dagster-k8s==0.29.27 is not installed (a dev extra)")
    if "dagster_docker" in text:
        pytest.importorskip("dagster_docker", reason="dagster-docker==0.29.27 is not installed (a dev extra)")
    for variable in (
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_DB",
        "DAGSTER_K8S_INSTANCE_CONFIG_MAP",
        "DAGSTER_K8S_JOB_NAMESPACE",
        "DAGSTER_K8S_JOB_IMAGE",
        "DAGSTER_K8S_PG_PASSWORD_SECRET",
        "DAGSTER_K8S_SERVICE_ACCOUNT",
        "GENFEED_K8S_ENV_CONFIG_MAP",
        "GENFEED_K8S_ENV_SECRET",
        "DAGSTER_DOCKER_IMAGE",
        "DAGSTER_DOCKER_NETWORK",
    ):
        monkeypatch.setenv(variable, "x")
    monkeypatch.setenv("DAGSTER_PG_PORT", "5432")
    (tmp_path / "dagster.yaml").write_text(text)
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    limits = config["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert {"key": "genfeed/pipeline", "value": "catalog_refresh", "limit": 1} in limits
    assert config["run_retries"]["enabled"] is True


def test_scale_out_workspace_validates() -> None:
    """deploy/docker/workspace.yaml (the code location on a gRPC server) passes Dagster's workspace schema."""
    from dagster._core.workspace.config_schema import process_workspace_config

    workspace = yaml.safe_load((DEPLOY / "docker" / "workspace.yaml").read_text())
    processed = process_workspace_config(workspace)
    assert processed.success, processed.errors
    server = processed.value["load_from"][0]["grpc_server"]
    assert (server["location_name"], server["port"]) == (LOCATION, 4000)


def test_systemd_units_verify(tmp_path: Path) -> None:
    """The unit files in deploy/systemd pass `systemd-analyze verify` (paths pointed at this checkout)."""
    (analyze,) = require_tools("systemd-analyze", package="systemd")
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {unit.name for unit in units} == {
        "genfeed-dagster-daemon.service",
        "genfeed-dagster-webserver.service",
    }
    for unit in units:
        text = unit.read_text().replace("/opt/genfeed/pipeline/.venv/bin", str(BIN))
        (tmp_path / unit.name).write_text(text.replace("/opt/genfeed/pipeline", str(REPO_ROOT)))
    result = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / unit.name) for unit in units)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    environment = (DEPLOY / "systemd" / "pipeline.env.example").read_text()
    for variable in (
        "DAGSTER_HOME",
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
    ):
        assert f"\n{variable}=" in environment, variable
    for variable in ("DAGSTER_PG_DB", "GENFEED_DATABASE_URL", "GENFEED_DATA_DIR", "FAL_KEY"):
        assert f"\n{variable}=" in environment, variable
