"""Two syncs at once never interleave: the second waits for the first, then plans on what it wrote."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from genfeed_pipeline.db.engine import create_catalog_engine
from genfeed_pipeline.db.tables import models
from genfeed_pipeline.fal.catalog import DataSource
from genfeed_pipeline.sync.plan import SyncContext, SyncMode
from genfeed_pipeline.sync.store import CatalogStore
from genfeed_pipeline_tests.test_sync_plan import NOW, priced


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> CatalogStore:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lock.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = create_catalog_engine(url)
    store = CatalogStore(engine)
    store.migrate()
    yield store
    engine.dispose()


def test_a_second_sync_waits_for_the_first(store: CatalogStore) -> None:
    model = priced("fal-ai/a")
    context = SyncContext(mode=SyncMode.FULL, source=DataSource.LIVE, data_as_of=NOW, now=NOW)
    holding = threading.Event()
    released_at: list[float] = []

    def first_sync_in_progress() -> None:
        with store.locked_transaction() as connection:
            holding.set()
            time.sleep(1.0)
            connection.execute(
                models.insert(),
                {
                    "id": "fal-ai/a",
                    "name": "written by the first sync",
                    "provider": "fal",
                    "category": "image",
                    "managed_by": "fal_catalog",
                    "enabled": True,
                    "enabled_by_sync": True,
                },
            )
            released_at.append(time.monotonic())

    first = threading.Thread(target=first_sync_in_progress)
    first.start()
    assert holding.wait(10)
    outcome = store.sync(context, {"fal-ai/a": model}, deployment="cloud")
    finished_at = time.monotonic()
    first.join()

    assert finished_at >= released_at[0]
    assert outcome.plan.inserted == 0 and outcome.plan.updated == 1  # it saw the first sync's row
    with store.engine.connect() as connection:
        name = connection.execute(sa.select(models.c.name).where(models.c.id == "fal-ai/a")).scalar_one()
    assert name == "a"
