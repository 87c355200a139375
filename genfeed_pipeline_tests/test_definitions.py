"""The code location loads, says what it holds, and runs its job for real."""

from __future__ import annotations

import gzip
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
import yaml

from genfeed_pipeline.definitions import build_definitions
from genfeed_pipeline.fal.catalog import DataSource
from genfeed_pipeline.schedules import usage_day_of_tick
from genfeed_pipeline.settings import Deployment, PipelineSettings
from genfeed_pipeline_tests.conftest import TEST_FAL_KEY
from genfeed_pipeline_tests.fal_emulator import FalEmulator

REPO = Path(__file__).resolve().parents[1]
CATALOG_ASSETS = (
    "fal_model_list",
    "fal_openapi_schemas",
    "genfeed_models",
    "priced_models",
    "profitability_report",
    "models_table",
)
USAGE_ASSETS = ("fal_usage", "usage_profitability")


def settings_for(data_dir: Path, emulator: FalEmulator | None = None, **env: str) -> PipelineSettings:
    environ = {"GENFEED_DATA_DIR": str(data_dir), **env}
    if emulator is not None:
        environ |= {"FAL_API_BASE_URL": emulator.base_url, "FAL_OPENAPI_URL": emulator.openapi_url}
    else:
        environ["GENFEED_OFFLINE"] = "1"
    return PipelineSettings.from_env(environ)


def test_package_exports_the_definitions() -> None:
    from genfeed_pipeline import defs

    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == {*CATALOG_ASSETS, *USAGE_ASSETS}
    assert {key.name for key in graph.asset_check_keys} == {
        "billed_unit_price_matches_catalog",
        "realized_margin_below_target",
        "catalog_completeness",
        "breaking_schema_changes",
        "pricing_drift",
        "unique_endpoint_ids",
        "enabled_models_valid_and_priced",
        "cloud_price_not_below_cost",
    }
    completeness = next(key for key in graph.asset_check_keys if key.name == "catalog_completeness")
    assert graph.get_check_spec(completeness).blocking
    for name in CATALOG_ASSETS:
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == "fal_catalog" and node.owners == ["team:data"] and node.kinds
        assert node.tags["domain"] == "model_catalog" and node.description
        policy = node.freshness_policy
        assert policy is not None and policy.fail_window.to_timedelta() == timedelta(hours=6, minutes=30)
    job = defs.resolve_job_def("refresh_fal_catalog")
    assert job.tags["genfeed/pipeline"] == "catalog_refresh"
    assert {node.name for node in job.nodes_in_topological_order} >= {
        "discover_fal_catalog",
        "genfeed_models",
        "priced_models",
        "profitability_report",
        "models_table",
    }
    schedule = defs.resolve_schedule_def("refresh_fal_catalog_schedule")
    assert schedule.cron_schedule == "0 */6 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "refresh_fal_catalog"
    usage_job = defs.resolve_job_def("refresh_fal_usage")
    assert isinstance(usage_job.partitions_def, dg.DailyPartitionsDefinition)
    assert usage_job.partitions_def.timezone == "UTC"
    assert usage_job.partitions_def.start.date().isoformat() == "2026-01-01"
    for name in USAGE_ASSETS:
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == "fal_usage" and node.partitions_def == usage_job.partitions_def
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
    usage_schedule = defs.resolve_schedule_def("refresh_fal_usage_schedule")
    assert usage_schedule.job_name == "refresh_fal_usage" and usage_schedule.execution_timezone == "UTC"
    assert usage_schedule.cron_schedule == "0 2 * * *"
    assert usage_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert usage_day_of_tick(datetime(2026, 12, 2, 2, 0, tzinfo=UTC)).isoformat() == "2026-12-01"
    assert usage_day_of_tick(datetime(2026, 12, 2, 1, 0, tzinfo=timezone(timedelta(hours=-5)))) == (
        date(2026, 12, 1)
    ), "06:00 UTC on the 2nd"
    assert usage_day_of_tick(datetime(2026, 1, 1, 2, 0, tzinfo=UTC)) is None, "2025-12-31 is no partition"
    sensors = {sensor.name: sensor for sensor in defs.sensors}
    assert set(sensors) == {
        "new_fal_models_sensor",
        "alert_on_failed_checks",
        "alert_on_failed_refresh",
        "alert_on_overdue_catalog",
    }
    new_models = sensors["new_fal_models_sensor"]
    assert new_models.minimum_interval_seconds == 300 and new_models.job_name == "refresh_fal_catalog"
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())


def test_workspace_yaml_points_at_the_definitions_and_pyproject_does_not_override_it() -> None:
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    target = workspace["load_from"][0]["python_module"]
    assert target["module_name"] == "genfeed_pipeline.definitions" and target["attribute"] == "defs"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert "[tool.dagster]" not in pyproject and "[tool.dg" not in pyproject


def test_dagster_cli_loads_the_code_location() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "GENFEED_OFFLINE": "1", "HOME": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_schedule_tick_requests_a_full_refresh_of_every_endpoint() -> None:
    """A tick asks for one run of the whole `refresh_fal_catalog` job with no run config, which resolves
    to the defaults: every endpoint (no `endpoint_ids`), the incremental skip, and a `full` sync."""
    from genfeed_pipeline import defs

    schedule = defs.resolve_schedule_def("refresh_fal_catalog_schedule")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 24, 6)
        )
        (request,) = schedule.evaluate_tick(context).run_requests
    assert request.job_name in (None, "refresh_fal_catalog") and schedule.job_name == "refresh_fal_catalog"
    assert request.asset_selection is None and request.partition_key is None
    assert request.tags == {"dagster/schedule_name": "refresh_fal_catalog_schedule"}
    job = defs.resolve_job_def(schedule.job_name)
    assert job.tags == {"genfeed/pipeline": "catalog_refresh"}  # the run carries both sets of tags
    assert request.run_config == {}
    ops = dg.validate_run_config(job, request.run_config)["ops"]
    assert ops["discover_fal_catalog"]["config"] == {"full_refresh": False}
    assert ops["models_table"]["config"] == {"mode": "full"}


def test_settings_choose_live_or_offline_and_never_read_the_key(tmp_path: Path) -> None:
    offline = settings_for(tmp_path)
    assert offline.offline and offline.deployment == Deployment.CLOUD
    live = PipelineSettings.from_env({"FAL_API_KEY": "abc", "GENFEED_DEPLOYMENT": "core"})
    assert live.fal_key_variable == "FAL_API_KEY" and live.deployment == Deployment.CORE
    assert "abc" not in live.model_dump_json()
    both = PipelineSettings.from_env({"FAL_KEY": "k1", "FAL_API_KEY": "k2"})
    assert both.fal_key_variable == "FAL_KEY"


def test_the_poll_interval_and_the_usage_start_come_from_the_environment() -> None:
    settings = PipelineSettings.from_env({"GENFEED_NEW_MODEL_POLL_SECONDS": "30"})
    assert settings.new_model_poll_seconds == 30
    sensor = build_definitions(settings).resolve_sensor_def("new_fal_models_sensor")
    assert sensor.minimum_interval_seconds == 30 and sensor.default_status == dg.DefaultSensorStatus.RUNNING
    for bad in ("0", "-5", "5m", "1.5"):
        with pytest.raises(ValueError, match="NEW_MODEL_POLL_SECONDS must be a whole number of seconds"):
            PipelineSettings.from_env({"GENFEED_NEW_MODEL_POLL_SECONDS": bad})
    assert PipelineSettings.from_env(
        {"GENFEED_USAGE_START_DATE": "2026-06-01"}
    ).usage_start_date.isoformat() == ("2026-06-01")
    with pytest.raises(ValueError, match="GENFEED_USAGE_START_DATE must be a day as YYYY-MM-DD"):
        PipelineSettings.from_env({"GENFEED_USAGE_START_DATE": "June"})


def test_refresh_job_offline_runs_from_the_snapshot(tmp_path: Path) -> None:
    defs = build_definitions(settings_for(tmp_path))
    result = defs.resolve_job_def("refresh_fal_catalog").execute_in_process(
        instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    listing = result.output_for_node("discover_fal_catalog", "fal_model_list")
    assert listing.source == DataSource.SNAPSHOT and len(listing.endpoints) == 1182
    metadata = result.asset_materializations_for_node("discover_fal_catalog")[0].metadata
    assert metadata["data_source"].value == "snapshot"
    assert metadata["endpoints"].value == 1182


def test_refresh_job_against_the_emulator_keeps_the_key_secret(
    fal_emulator: FalEmulator, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("FAL_KEY", TEST_FAL_KEY)
    defs = build_definitions(settings_for(tmp_path / "data", fal_emulator, FAL_KEY=TEST_FAL_KEY))
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        job = defs.resolve_job_def("refresh_fal_catalog")
        result = job.execute_in_process(instance=instance)
        assert result.success
        listing = result.output_for_node("discover_fal_catalog", "fal_model_list")
        assert listing.source == DataSource.LIVE and listing.price_source == DataSource.LIVE
        schemas = result.output_for_node("discover_fal_catalog", "fal_openapi_schemas")
        assert schemas.count_by_status()["fetched"] == 839

        rerun = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"discover_fal_catalog": {"config": {"endpoint_ids": ["fal-ai/flux/dev"]}}}},
        )
        assert sorted(rerun.output_for_node("discover_fal_catalog", "fal_model_list").endpoints) == [
            "fal-ai/flux/dev"
        ]

        secret = TEST_FAL_KEY.split(":")[1]
        events = instance.all_logs(result.run_id) + instance.all_logs(rerun.run_id)
        assert events
        assert all(secret not in str(event) for event in events)
        resource_snapshot = str(defs.get_repository_def().get_top_level_resources())
        assert secret not in resource_snapshot
    for path in tmp_path.rglob("*"):
        if path.is_file():
            content = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            assert secret.encode() not in content, path
