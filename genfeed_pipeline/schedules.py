"""When the catalog refreshes on its own: every six hours, UTC, running from the moment it is deployed."""

import dagster as dg

from genfeed_pipeline.jobs import refresh_fal_catalog

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
