"""The pipeline's configuration, read from the environment in one place.

Secrets are not read here: only the *name* of the variable that holds the fal key is recorded, so that
the Dagster resources can bind it as an `EnvVar` and the key never appears in a snapshot or a log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel

from genfeed_pipeline.fal.client import DEFAULT_API_BASE_URL, DEFAULT_OPENAPI_URL

FAL_KEY_VARIABLES = ("FAL_KEY", "FAL_API_KEY")
FAL_ADMIN_KEY_VARIABLE = "FAL_ADMIN_KEY"
DEFAULT_USAGE_START_DATE = "2026-01-01"
TRUE_WORDS = {"1", "true", "yes", "on"}


class Deployment(StrEnum):
    CLOUD = "cloud"  # GenFeed's own fal key; resale prices keep the configured margin
    CORE = "core"  # the user's own key; prices are fal's cost


class PipelineSettings(BaseModel):
    deployment: Deployment = Deployment.CLOUD
    offline: bool = False
    data_dir: Path
    database_url: str
    fal_api_base_url: str = DEFAULT_API_BASE_URL
    fal_openapi_url: str = DEFAULT_OPENAPI_URL
    fal_key_variable: str | None = None
    database_url_from_env: bool = False
    webhook_urls_set: bool = False
    webhook_secret_set: bool = False
    refresh_cron: str = "0 */6 * * *"
    fal_admin_key_set: bool = False
    new_model_poll_seconds: int = 300
    usage_start_date: date = date.fromisoformat(DEFAULT_USAGE_START_DATE)

    @property
    def cache_path(self) -> Path:
        return self.data_dir / "fal_cache.sqlite3"

    @property
    def asset_values_dir(self) -> Path:
        return self.data_dir / "asset_values"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PipelineSettings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("GENFEED_DATA_DIR") or default_data_dir(env)).absolute()
        deployment = (env.get("GENFEED_DEPLOYMENT") or Deployment.CLOUD.value).strip().lower()
        if deployment not in Deployment.__members__.values():
            raise ValueError(f"GENFEED_DEPLOYMENT must be 'cloud' or 'core', not {deployment!r}")
        return cls(
            deployment=Deployment(deployment),
            offline=(env.get("GENFEED_OFFLINE") or "").strip().lower() in TRUE_WORDS,
            data_dir=data_dir,
            database_url=env.get("GENFEED_DATABASE_URL") or f"sqlite:///{data_dir / 'genfeed.sqlite3'}",
            fal_api_base_url=(env.get("FAL_API_BASE_URL") or DEFAULT_API_BASE_URL).rstrip("/"),
            fal_openapi_url=env.get("FAL_OPENAPI_URL") or DEFAULT_OPENAPI_URL,
            database_url_from_env=bool(env.get("GENFEED_DATABASE_URL")),
            webhook_urls_set=bool((env.get("GENFEED_WEBHOOK_URLS") or "").strip()),
            webhook_secret_set=bool(env.get("GENFEED_WEBHOOK_SECRET")),
            refresh_cron=env.get("GENFEED_REFRESH_CRON") or "0 */6 * * *",
            fal_admin_key_set=bool((env.get(FAL_ADMIN_KEY_VARIABLE) or "").strip()),
            usage_start_date=usage_start_date(env),
            new_model_poll_seconds=_poll_seconds(env.get("GENFEED_NEW_MODEL_POLL_SECONDS")),
            fal_key_variable=next(
                (name for name in FAL_KEY_VARIABLES if (env.get(name) or "").strip()), None
            ),
        )


def _poll_seconds(text: str | None) -> int:
    """`GENFEED_NEW_MODEL_POLL_SECONDS`: a whole number of seconds, at least 1 (default 300)."""
    if text is None or not text.strip():
        return 300
    try:
        seconds = int(text.strip())
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise ValueError(
            f"GENFEED_NEW_MODEL_POLL_SECONDS must be a whole number of seconds ≥ 1, not {text!r}"
        )
    return seconds


def usage_start_date(env: Mapping[str, str] | None = None) -> date:
    """The first day of usage (`GENFEED_USAGE_START_DATE`, YYYY-MM-DD): the first daily partition."""
    env = os.environ if env is None else env
    text = (env.get("GENFEED_USAGE_START_DATE") or DEFAULT_USAGE_START_DATE).strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"GENFEED_USAGE_START_DATE must be a day as YYYY-MM-DD, not {text!r}") from None


def default_data_dir(env: Mapping[str, str]) -> Path:
    """`$DAGSTER_HOME/.genfeed`, so that every process on one Dagster instance (the CLI, `dagster dev`,
    the daemon's runs) shares one cache and one catalog whatever folder it starts in; `./.genfeed` without
    an instance (tests, scripts)."""
    dagster_home = env.get("DAGSTER_HOME")
    return Path(dagster_home).expanduser() / ".genfeed" if dagster_home else Path.cwd() / ".genfeed"
