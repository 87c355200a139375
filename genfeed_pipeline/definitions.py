"""The code location: every asset, check, job, schedule and resource, wired explicitly.

The deployment (cloud or core) and the data source (live fal or offline) are chosen here and nowhere
else, from the environment (see `genfeed_pipeline.settings`).
"""

from __future__ import annotations

import dagster as dg

from genfeed_pipeline.admin_jobs import accept_schema_changes, apply_recommendations_job, set_models_enabled
from genfeed_pipeline.assets.catalog import (
    breaking_schema_changes,
    cloud_price_not_below_cost,
    genfeed_models,
    priced_models,
    pricing_drift,
)
from genfeed_pipeline.assets.discovery import catalog_completeness, discover_fal_catalog
from genfeed_pipeline.assets.sync import (
    enabled_models_valid_and_priced,
    models_table,
    profitability_report,
    unique_endpoint_ids,
)
from genfeed_pipeline.assets.usage import fal_usage_days
from genfeed_pipeline.io_manager import JsonAssetIOManager
from genfeed_pipeline.jobs import refresh_fal_catalog, refresh_fal_usage
from genfeed_pipeline.resources import (
    CatalogCheckSettings,
    CatalogDatabase,
    CatalogMigrations,
    ClockResource,
    FalApiResource,
    FalCatalogResource,
    FalSnapshotResource,
    PricingPolicyResource,
    WebhookResource,
)
from genfeed_pipeline.schedules import build_refresh_schedule, build_usage_schedule
from genfeed_pipeline.sensors import (
    alert_on_failed_checks,
    alert_on_failed_refresh,
    alert_on_overdue_catalog,
    build_new_models_sensor,
)
from genfeed_pipeline.settings import FAL_ADMIN_KEY_VARIABLE, PipelineSettings


def fal_resource(settings: PipelineSettings) -> FalCatalogResource:
    cache_path = str(settings.cache_path)
    if settings.offline:
        return FalSnapshotResource(cache_path=cache_path)
    return FalApiResource(
        cache_path=cache_path,
        api_key=dg.EnvVar(settings.fal_key_variable) if settings.fal_key_variable else None,
        admin_key=dg.EnvVar(FAL_ADMIN_KEY_VARIABLE) if settings.fal_admin_key_set else None,
        base_url=settings.fal_api_base_url,
        openapi_url=settings.fal_openapi_url,
    )


def database_resource(
    settings: PipelineSettings, kind: type[CatalogDatabase] = CatalogDatabase
) -> CatalogDatabase:
    """The URL may carry a password: when it comes from the environment it is bound as an EnvVar."""
    if settings.database_url_from_env:
        return kind(url=dg.EnvVar("GENFEED_DATABASE_URL"))
    return kind(url=settings.database_url)


def webhook_resource(settings: PipelineSettings) -> WebhookResource:
    """URLs may carry tokens and the secret signs every message: both are bound as EnvVars when set."""
    return WebhookResource(
        urls=dg.EnvVar("GENFEED_WEBHOOK_URLS") if settings.webhook_urls_set else "",
        secret=dg.EnvVar("GENFEED_WEBHOOK_SECRET") if settings.webhook_secret_set else None,
    )


def build_definitions(settings: PipelineSettings) -> dg.Definitions:
    return dg.Definitions(
        assets=[
            discover_fal_catalog,
            genfeed_models,
            priced_models,
            profitability_report,
            models_table,
            fal_usage_days,
        ],
        asset_checks=[
            catalog_completeness,
            breaking_schema_changes,
            pricing_drift,
            cloud_price_not_below_cost,
            unique_endpoint_ids,
            enabled_models_valid_and_priced,
        ],
        jobs=[
            refresh_fal_catalog,
            refresh_fal_usage,
            set_models_enabled,
            apply_recommendations_job,
            accept_schema_changes,
        ],
        schedules=[build_refresh_schedule(settings.refresh_cron), build_usage_schedule()],
        sensors=[
            build_new_models_sensor(settings.new_model_poll_seconds),
            alert_on_failed_checks,
            alert_on_failed_refresh,
            alert_on_overdue_catalog,
        ],
        resources={
            "fal": fal_resource(settings),
            "database": database_resource(settings),
            "catalog_migrations": database_resource(settings, CatalogMigrations),
            "pricing": PricingPolicyResource(deployment=settings.deployment.value),
            "catalog_checks": CatalogCheckSettings(),
            "alerts": webhook_resource(settings),
            "clock": ClockResource(),
            "io_manager": JsonAssetIOManager(base_dir=str(settings.asset_values_dir)),
        },
        executor=dg.in_process_executor,
    )


defs = build_definitions(PipelineSettings.from_env())
