"""Where the pipeline keeps its local data: under `DAGSTER_HOME` when it is set, else beside the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from genfeed_pipeline.settings import PipelineSettings


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
