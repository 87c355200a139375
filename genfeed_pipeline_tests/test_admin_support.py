"""A synced catalog for the admin and CLI tests (this module holds fixtures, no tests).

Test modules import the fixtures `catalog_fixture` (named `catalog`) and `postgres_catalog_fixture`.

The catalog is built once per test session, offline from the bundled snapshot, by the real
`refresh_fal_catalog` job: GenFeed's app table first (one fal row of its own, with a fixed price below
fal's cost), a refresh, then a second sync of the same catalog after one model's accepted schema is
given an input fal no longer has, which the sync holds as a breaking change. Then one model is marked
removed, one deprecated and one disabled by policy, as a live sync would leave them. Each test gets a
copy.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from genfeed_pipeline.assets.values import PricedCatalog
from genfeed_pipeline.clock import utc_now
from genfeed_pipeline.db.engine import create_catalog_engine
from genfeed_pipeline.db.migrate import upgrade_to_head
from genfeed_pipeline.db.tables import (
    model_admin_actions,
    model_price_history,
    model_schema_history,
    models,
    sync_runs,
)
from genfeed_pipeline.definitions import build_definitions
from genfeed_pipeline.fal.catalog import CatalogListing
from genfeed_pipeline.settings import PipelineSettings
from genfeed_pipeline.sync.plan import SyncContext, SyncMode
from genfeed_pipeline.sync.review import review_catalog
from genfeed_pipeline.sync.store import CatalogStore, SyncOutcome
from genfeed_pipeline_tests.test_sync_job import app_created_table

APP_ROW = "fal-ai/flux/schnell"  # GenFeed's own row: fixed price $0.002, fal cost $0.003
HELD = "fal-ai/ideogram/v2"  # held: its accepted schema has an input fal dropped
REMOVED = "fal-ai/stable-diffusion-v35-large"
DEPRECATED = "fal-ai/flux-pro/v1.1"  # enabled and deprecated: the report says disable
POLICY_OFF = "fal-ai/recraft/v3/text-to-image"  # valid, priced, disabled by the sync: the report says enable
INVALID = "bria/fibo-edit/colorize"  # no price
FLUX_DEV = "fal-ai/flux/dev"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
CATALOG_TABLES = (models, model_schema_history, model_price_history, sync_runs, model_admin_actions)


def offline_settings(database_url: str, data_dir: Path, deployment: str = "cloud") -> PipelineSettings:
    return PipelineSettings.from_env(
        {
            "GENFEED_OFFLINE": "1",
            "GENFEED_DATABASE_URL": database_url,
            "GENFEED_DATA_DIR": str(data_dir),
            "GENFEED_DEPLOYMENT": deployment,
        }
    )


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def refresh_offline(database_url: str, data_dir: Path) -> dg.ExecuteInProcessResult:
    """`refresh_fal_catalog` from the snapshot; the database resource reads GENFEED_DATABASE_URL."""
    defs = build_definitions(offline_settings(database_url, data_dir))
    with _environment({"GENFEED_DATABASE_URL": database_url}), dg.instance_for_test() as instance:
        result = defs.resolve_job_def("refresh_fal_catalog").execute_in_process(
            run_config=QUIET, instance=instance
        )
    assert result.success
    return result


def _hold_on_next_refresh(engine: sa.Engine, endpoint_id: str) -> None:
    with engine.begin() as connection:
        schema = connection.execute(
            sa.select(models.c.input_schema).where(models.c.id == endpoint_id)
        ).scalar_one()
        schema["properties"]["legacy_style"] = {"type": "string", "default": "auto", "has_default": True}
        connection.execute(
            models.update()
            .where(models.c.id == endpoint_id)
            .values(input_schema=schema, mapped_hash="accepted-before-fal-dropped-legacy_style")
        )


def _as_a_live_sync_would_leave_them(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        update = models.update()
        connection.execute(
            update.where(models.c.id == REMOVED).values(
                status="removed", enabled=False, enabled_by_sync=False
            )
        )
        connection.execute(update.where(models.c.id == DEPRECATED).values(status="deprecated"))
        connection.execute(
            update.where(models.c.id == POLICY_OFF).values(enabled=False, enabled_by_sync=False)
        )


@dataclass(frozen=True)
class Catalog:
    """A private copy of the synced catalog."""

    database_url: str
    data_dir: Path
    engine: sa.Engine

    def rows(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as connection:
            return {row["id"]: dict(row) for row in connection.execute(sa.select(models)).mappings()}

    def row(self, endpoint_id: str) -> dict[str, Any]:
        with self.engine.connect() as connection:
            return dict(
                connection.execute(sa.select(models).where(models.c.id == endpoint_id)).mappings().one()
            )

    def audit(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            query = sa.select(model_admin_actions).order_by(model_admin_actions.c.id)
            return [dict(row) for row in connection.execute(query).mappings()]

    def refresh(self) -> dg.ExecuteInProcessResult:
        return refresh_offline(self.database_url, self.data_dir)

    def sync_again(self) -> SyncOutcome:
        return sync_again(self.engine)


_TEMPLATE: dict[str, Path] = {}
_TEMPLATE_RUN: dict[str, Any] = {}


def template_catalog() -> Path:
    """The synced SQLite catalog, built once per process; tests copy it."""
    if "path" not in _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="genfeed-admin-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = folder / "genfeed.sqlite3"
        url = f"sqlite:///{path}"
        engine = create_catalog_engine(url)
        app_created_table(engine, (APP_ROW, "FLUX schnell (GenFeed)", '{"fixedPrice": 0.002}', True))
        result = refresh_offline(url, folder / "data")
        _TEMPLATE_RUN["listing"] = result.output_for_node("discover_fal_catalog", "fal_model_list")
        _TEMPLATE_RUN["priced"] = result.output_for_node("priced_models")
        _hold_on_next_refresh(engine, HELD)
        sync_again(engine)
        _as_a_live_sync_would_leave_them(engine)
        engine.dispose()
        _TEMPLATE["path"] = path
    return _TEMPLATE["path"]


def sync_again(engine: sa.Engine, deployment: str = "cloud") -> SyncOutcome:
    """The `models_table` step of a refresh, on the catalog the template's refresh priced (no Dagster run:
    the same `CatalogStore.sync` call, without discovering and pricing the snapshot again)."""
    listing: CatalogListing = _TEMPLATE_RUN["listing"]
    priced: PricedCatalog = _TEMPLATE_RUN["priced"]
    context = SyncContext(mode=SyncMode.FULL, source=listing.source, data_as_of=listing.as_of, now=utc_now())
    with engine.connect() as connection:  # the review the run's genfeed_models step makes
        review = review_catalog(connection, {eid: model.model for eid, model in priced.models.items()})
    return CatalogStore(engine).sync(context, priced.models, held=review.held, deployment=deployment)


@pytest.fixture(name="catalog")
def catalog_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Catalog]:
    """A copy of the synced catalog in SQLite; `GENFEED_DATABASE_URL` points at it (for the CLI)."""
    path = tmp_path / "genfeed.sqlite3"
    shutil.copyfile(template_catalog(), path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("GENFEED_DATABASE_URL", url)
    monkeypatch.setenv("GENFEED_OFFLINE", "1")
    monkeypatch.setenv("GENFEED_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("GENFEED_DEPLOYMENT", raising=False)
    engine = create_catalog_engine(url)
    yield Catalog(url, tmp_path / "data", engine)
    engine.dispose()


@pytest.fixture(name="postgres_catalog")
def postgres_catalog_fixture(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Catalog]:
    """The same catalog copied, table by table, into a PostgreSQL database of its own."""
    source = create_catalog_engine(f"sqlite:///{template_catalog()}")
    target = create_catalog_engine(postgres_url)
    upgrade_to_head(target)
    with source.connect() as reading, target.begin() as writing:
        for table in CATALOG_TABLES:
            rows = [dict(row) for row in reading.execute(sa.select(table)).mappings()]
            if table is not models:
                rows = [{k: v for k, v in row.items() if k != "id"} for row in rows]
            if rows:
                writing.execute(table.insert(), rows)
    source.dispose()
    monkeypatch.setenv("GENFEED_DATABASE_URL", postgres_url)
    yield Catalog(postgres_url, tmp_path / "data", target)
    target.dispose()
