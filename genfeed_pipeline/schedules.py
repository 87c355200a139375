"""When the pipeline runs on its own, UTC, from the moment it is deployed: the catalog every six hours, and
yesterday's usage at 02:00."""

import dagster as dg

from genfeed_pipeline.jobs import refresh_fal_catalog, refresh_fal_usage

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


def build_usage_schedule() -> dg.ScheduleDefinition:
    """Fills yesterday (the newest complete UTC day) at 02:00 UTC, when fal's figures for it have settled."""
    return dg.build_schedule_from_partitioned_job(
        refresh_fal_usage,
        name="refresh_fal_usage_schedule",
        hour_of_day=2,
        minute_of_hour=0,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Reads yesterday's fal usage into model_usage_daily and reports its realized margins.",
    )
