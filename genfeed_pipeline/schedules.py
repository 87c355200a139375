"""When the pipeline runs on its own, UTC, from the moment it is deployed: the catalog every six hours, and
yesterday's usage at 02:00."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from genfeed_pipeline.clock import utc_now
from genfeed_pipeline.jobs import refresh_fal_catalog, refresh_fal_usage
from genfeed_pipeline.settings import usage_start_date

DEFAULT_REFRESH_CRON = "0 */6 * * *"


def build_refresh_schedule(cron_schedule: str = DEFAULT_REFRESH_CRON) -> dg.ScheduleDefinition:
    """The cron is configuration (`GENFEED_REFRESH_CRON`) so a deployment drill can tick faster."""
    return dg.ScheduleDefinition(
        name="refresh_fal_catalog_schedule",
        job=refresh_fal_catalog,
        cron_schedule=cron_schedule,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Refreshes fal's catalog into the models table; new fal models appear within six hours.",
    )


def usage_day_of_tick(tick: datetime, first_day: date | None = None) -> date | None:
    """The UTC day before the tick, if it is a partition (on or after the first usage day)."""
    yesterday = tick.astimezone(UTC).date() - timedelta(days=1)
    return yesterday if yesterday >= (first_day or usage_start_date()) else None


def build_usage_schedule() -> dg.ScheduleDefinition:
    """Fills yesterday (the newest complete UTC day: the job's last partition at the tick) at 02:00 UTC,
    when fal's figures for it have settled.

    Written out rather than with `build_schedule_from_partitioned_job`, which calls a deprecated Dagster
    API on every tick in 1.13; the run request is the one it makes: the tick's previous day, keyed by it.
    """

    @dg.schedule(
        name="refresh_fal_usage_schedule",
        job=refresh_fal_usage,
        cron_schedule="0 2 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Reads yesterday's fal usage into model_usage_daily and reports its realized margins.",
    )
    def refresh_fal_usage_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        day = usage_day_of_tick(context.scheduled_execution_time or utc_now())
        if day is None:
            return dg.SkipReason("no complete UTC day since GENFEED_USAGE_START_DATE yet")
        return dg.RunRequest(partition_key=day.isoformat(), run_key=day.isoformat())

    return refresh_fal_usage_schedule
