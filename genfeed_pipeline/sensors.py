"""Sensors. Alerts: a failed refresh, failed checks and an overdue catalog each send one signed webhook
message. New models: a poll of fal's list requests a refresh of the endpoints the catalog does not hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from genfeed_pipeline.alerts.messages import (
    check_failure_event,
    is_overdue,
    overdue_event,
    run_failure_event,
)
from genfeed_pipeline.assets.discovery import FRESHNESS_GRACE, REFRESH_INTERVAL
from genfeed_pipeline.jobs import REFRESH_TAGS, refresh_fal_catalog
from genfeed_pipeline.resources import (
    CatalogCheckSettings,
    CatalogDatabase,
    ClockResource,
    FalCatalogResource,
    WebhookResource,
)
from genfeed_pipeline.sync.new_models import decide_new_models
from genfeed_pipeline.sync.store import CatalogNotMigrated

OVERDUE_AFTER = REFRESH_INTERVAL + FRESHNESS_GRACE
SYNCED_ASSET = dg.AssetKey("models_table")
NEW_MODELS_TRIGGER_TAG = "genfeed/trigger"


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[dict[str, Any]]:
    """The asset checks of a run that did not pass, with the evidence they recorded."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    failures = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.asset_check_evaluation_data
        if evaluation.passed:
            continue
        metadata = {key: value.value for key, value in evaluation.metadata.items()}
        affected = next(
            (metadata[key] for key in ("breaking_models", "drifted_models", "duplicates") if key in metadata),
            None,
        )
        failures.append(
            {
                "check_name": evaluation.check_name,
                "asset": evaluation.asset_key.to_user_string(),
                "severity": evaluation.severity.value,
                "description": evaluation.description,
                "affected": affected,
            }
        )
    return failures


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[refresh_fal_catalog],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a refresh that succeeded with failed (warning) checks, sends one check_failed alert.",
)
def alert_on_failed_checks(context: dg.RunStatusSensorContext, alerts: WebhookResource) -> None:
    """Returns nothing, never a `SkipReason`: one tick covers every refresh finished since the last, and
    Dagster fails a tick that mixes a skip with the reactions to the other runs (the tick's cursor would then
    stay put and the alert be sent again at every tick)."""
    run_id = context.dagster_run.run_id
    failures = failed_checks(context.instance, run_id)
    if not failures:
        context.log.info(f"every check of run {run_id} passed")
        return
    event = check_failure_event(run_id=run_id, job_name=context.dagster_run.job_name, failed_checks=failures)
    alerts.sender().send(event)


@dg.run_failure_sensor(
    monitored_jobs=[refresh_fal_catalog],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends one run_failed alert when a refresh fails, with the failed checks if any stopped it.",
)
def alert_on_failed_refresh(context: dg.RunFailureSensorContext, alerts: WebhookResource) -> None:
    run = context.dagster_run
    error = context.failure_event.message or "the run failed"
    failures = failed_checks(context.instance, run.run_id)
    if failures:
        error += " | failed checks: " + ", ".join(f["check_name"] for f in failures)
    alerts.sender().send(run_failure_event(run_id=run.run_id, job_name=run.job_name, error=error))


@dg.sensor(
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts once when models_table has not been synced for six hours plus the grace period.",
)
def alert_on_overdue_catalog(
    context: dg.SensorEvaluationContext, alerts: WebhookResource, clock: ClockResource
) -> dg.SkipReason | None:
    event = context.instance.get_latest_materialization_event(SYNCED_ASSET)
    if event is None:
        return dg.SkipReason("models_table has never been synced; the schedule will do it")
    last = datetime.fromtimestamp(event.timestamp, UTC)
    now = clock.now()
    if not is_overdue(last, now, OVERDUE_AFTER):
        return dg.SkipReason(f"models_table synced at {last:%Y-%m-%d %H:%M} UTC: on time")
    episode = str(event.timestamp)
    if context.cursor == episode:
        return dg.SkipReason("already alerted for this overdue period")
    alerts.sender().send(
        overdue_event(asset="models_table", last_materialized_at=last, now=now, overdue_after=OVERDUE_AFTER)
    )
    context.update_cursor(episode)
    return None


REFRESH_UNDER_WAY = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def refresh_under_way(instance: dg.DagsterInstance) -> bool:
    """A catalog refresh queued or running (any trigger: the schedule, a person, this sensor)."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags=REFRESH_TAGS, statuses=REFRESH_UNDER_WAY), limit=1
    )
    return bool(records)


POLL_DEADLINE_SECONDS = 40.0
"""How long the new-models poll waits for fal's whole list: well inside the 60 s Dagster gives a sensor
evaluation, so a hanging fal ends the tick as a skip with its reason, not as a timed-out tick."""


def build_new_models_sensor(
    poll_seconds: int = 300, poll_deadline_seconds: float = POLL_DEADLINE_SECONDS
) -> dg.SensorDefinition:
    """The poll interval is configuration (`GENFEED_NEW_MODEL_POLL_SECONDS`), so it is fixed when the code
    location loads."""

    @dg.sensor(
        name="new_fal_models_sensor",
        job=refresh_fal_catalog,
        minimum_interval_seconds=poll_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Every {poll_seconds} s, reads fal's list (ids only) and requests a refresh of the "
        "endpoints the catalog does not hold. Never removes anything; the six-hourly refresh stays the "
        "authority.",
    )
    def new_fal_models_sensor(
        context: dg.SensorEvaluationContext,
        fal: FalCatalogResource,
        database: CatalogDatabase,
        catalog_checks: CatalogCheckSettings,
    ) -> dg.SensorResult:
        poll = fal.catalog_source(context.log).poll_endpoint_ids(poll_deadline_seconds)
        try:
            held, previous = database.store().held_endpoints()
        except CatalogNotMigrated as error:
            return dg.SensorResult(skip_reason=f"No run: {error}")
        decision = decide_new_models(
            listed_ids=poll.endpoint_ids,
            list_failure=poll.failure,
            held_ids=held,
            previous_endpoints=previous,
            drop_threshold=catalog_checks.completeness_drop_threshold,
            refresh_in_progress=poll.endpoint_ids is not None and refresh_under_way(context.instance),
        )
        context.log.info(f"{decision.summary} ({poll.requests} requests to fal)")
        if decision.skip_reason is not None:
            return dg.SensorResult(skip_reason=decision.summary)
        new_ids = decision.new_endpoint_ids
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=decision.run_key,
                    run_config={"ops": {"discover_fal_catalog": {"config": {"endpoint_ids": new_ids}}}},
                    tags={NEW_MODELS_TRIGGER_TAG: "new_models"},
                )
            ],
            cursor=json.dumps({"requested": new_ids, "run_key": decision.run_key}),
        )

    return new_fal_models_sensor
