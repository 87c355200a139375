"""One local instance: everything `make refresh`, `make dev`, the `dagster` CLI and the daemon keep lives
under `DAGSTER_HOME`, so a refresh run from one folder is seen from any other.

The project's `dagster.yaml` configures no storage, so Dagster keeps runs, event logs, schedules, compute
logs and local artifacts under `DAGSTER_HOME`; the pipeline's data directory (the fal cache, the asset
values, the default catalog database) defaults to `$DAGSTER_HOME/.genfeed`. The refresh runs as a user runs
it, `genfeed-catalog refresh` offline in a process of its own with nothing but `DAGSTER_HOME` set; the
instance and the catalog are then read from another folder, by Python and by the `dagster` CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.instance import InstanceRef

from genfeed_pipeline.settings import PipelineSettings

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# What any process started with only DAGSTER_HOME set sees: the instance and the catalog it resolves.
READ_BACK = """
import json
import dagster as dg
import sqlalchemy as sa
from genfeed_pipeline.settings import PipelineSettings

settings = PipelineSettings.from_env()
with dg.DagsterInstance.get() as instance:
    runs = [
        [run.run_id, run.job_name, run.status.value, run.tags.get("genfeed/pipeline")]
        for run in instance.get_runs()
    ]
    latest = instance.get_latest_materialization_event(dg.AssetKey("models_table"))
engine = sa.create_engine(settings.database_url)
with engine.connect() as connection:
    counts = sa.text("SELECT count(*), sum(CASE WHEN enabled THEN 1 ELSE 0 END) FROM models")
    models, enabled = connection.execute(counts).one()
    synced = connection.execute(sa.text("SELECT run_id FROM sync_runs")).scalars().all()
engine.dispose()
print(json.dumps({
    "data_dir": str(settings.data_dir),
    "database_url": settings.database_url,
    "runs": runs,
    "models_table_run": latest.run_id if latest else None,
    "models": models,
    "enabled": enabled,
    "sync_runs": synced,
}))
"""


def test_data_dir_defaults_under_dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    settings = PipelineSettings.from_env({"DAGSTER_HOME": str(home)})
    assert settings.data_dir == home / ".genfeed"
    assert settings.database_url == f"sqlite:///{home / '.genfeed' / 'genfeed.sqlite3'}"
    assert settings.cache_path == home / ".genfeed" / "fal_cache.sqlite3"
    assert settings.asset_values_dir == home / ".genfeed" / "asset_values"

    chosen = PipelineSettings.from_env({"DAGSTER_HOME": str(home), "GENFEED_DATA_DIR": str(tmp_path / "d")})
    assert chosen.data_dir == tmp_path / "d"
    assert chosen.database_url == f"sqlite:///{tmp_path / 'd' / 'genfeed.sqlite3'}"
    database = "postgresql+psycopg://genfeed@127.0.0.1:5432/genfeed"
    url_set = PipelineSettings.from_env({"DAGSTER_HOME": str(home), "GENFEED_DATABASE_URL": database})
    assert (url_set.data_dir, url_set.database_url) == (home / ".genfeed", database)

    monkeypatch.chdir(tmp_path)
    assert PipelineSettings.from_env({}).data_dir == tmp_path / ".genfeed"  # no instance: beside the command
    assert PipelineSettings.from_env({"DAGSTER_HOME": ""}).data_dir == tmp_path / ".genfeed"


def test_project_instance_keeps_every_path_under_dagster_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.chdir(tmp_path)

    ref = InstanceRef.from_dir(str(home))
    stores = (
        ref.local_artifact_storage_data,
        ref.compute_logs_data,
        ref.storage_data,
        ref.run_storage_data,
        ref.event_storage_data,
        ref.schedule_storage_data,
    )
    base_dirs = {data.class_name: yaml.safe_load(data.config_yaml)["base_dir"] for data in stores}
    assert base_dirs == {
        "LocalArtifactStorage": str(home),
        "LocalComputeLogManager": f"{home}/storage",
        "DagsterSqliteStorage": str(home),
        "SqliteRunStorage": f"{home}/history/",
        "SqliteEventLogStorage": f"{home}/history/runs/",
        "SqliteScheduleStorage": f"{home}/schedules",
    }

    with dg.DagsterInstance.from_ref(ref) as instance:  # the rest of the project's settings hold
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None and queue.max_concurrent_runs == 4
        assert queue.tag_concurrency_limits == [
            {"key": "genfeed/pipeline", "value": "catalog_refresh", "limit": 1}
        ]
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
        assert instance.run_monitoring_enabled and instance.run_monitoring_max_runtime_seconds == 7200
        assert not instance.telemetry_enabled
    assert sorted(path.name for path in tmp_path.iterdir()) == ["home"]


def test_refresh_from_one_folder_is_seen_from_another(tmp_path: Path) -> None:
    home, first, second = tmp_path / "home", tmp_path / "first", tmp_path / "second"
    for folder in (home, first, second):
        folder.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GENFEED_", "FAL_", "DAGSTER_"))
    }
    env = inherited | {"DAGSTER_HOME": str(home)}

    def run(cwd: Path, *command: str, **extra: str) -> str:
        completed = subprocess.run(
            command, capture_output=True, text=True, env=env | extra, cwd=cwd, timeout=240, check=False
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        return completed.stdout

    refreshed = json.loads(run(first, str(BIN / "genfeed-catalog"), "refresh", "--json", GENFEED_OFFLINE="1"))
    run_id = refreshed["run_id"]

    seen = json.loads(run(second, sys.executable, "-c", READ_BACK))
    assert seen["data_dir"] == str(home / ".genfeed")
    assert seen["database_url"] == f"sqlite:///{home / '.genfeed' / 'genfeed.sqlite3'}"
    assert seen["runs"] == [[run_id, "refresh_fal_catalog", "SUCCESS", "catalog_refresh"]]
    assert seen["models_table_run"] == run_id
    assert (seen["models"], seen["enabled"]) == (refreshed["table_rows"], refreshed["enabled"]) == (1182, 662)
    assert seen["sync_runs"] == [run_id]

    listed = run(second, str(BIN / "dagster"), "run", "list")
    assert f"Run: {run_id}" in listed and "Job: refresh_fal_catalog" in listed

    assert list(first.iterdir()) == [] and list(second.iterdir()) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["first", "home", "second"]
    assert (home / "history" / "runs.db").is_file()
    assert (home / "schedules" / "schedules.db").is_file()
    assert (home / "storage" / run_id).is_dir()
    assert (home / ".genfeed" / "genfeed.sqlite3").is_file()
    assert any((home / ".genfeed" / "asset_values").iterdir())
