"""GenFeed's app reading the catalog while a sync commits: 1,000 readers, one pool of 50 connections.

The sync reprices hundreds of models in one transaction. It is caught with its rows written and its
transaction open (its last statement, the `sync_runs` row, waits on a lock the test holds), so half the
readers read while the new rows exist uncommitted; the other half are let go the moment the sync is let
go, and race its commit. Every reader must see exactly the old catalog or exactly the new one, and none
may fail or wait on a lock: each reader sets a `lock_timeout`, and a monitor samples `pg_locks` for any
ungranted lock of a reader's backend.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from genfeed_pipeline.db.engine import create_catalog_engine
from genfeed_pipeline.db.tables import model_price_history, models
from genfeed_pipeline.fal.catalog import DataSource
from genfeed_pipeline.pricing import PricedModel, PricingPolicy
from genfeed_pipeline.sync.plan import SyncContext, SyncMode
from genfeed_pipeline.sync.store import CatalogStore
from genfeed_pipeline_tests.faults_support import (
    backend_waiting_to_record_its_run,
    sync_runs_locked,
    wait_for,
)

READERS = 1_000
POOL = 50
APP_NAME = "genfeed-app-reader"
CatalogView = tuple[tuple[str, str | None, bool, str], ...]


def read_catalog(connection: sa.Connection) -> CatalogView:
    """What the app lists: every fal model with its price, whether it is on, and its status."""
    query = sa.select(models.c.id, models.c.price_per_call, models.c.enabled, models.c.status)
    rows = connection.execute(query.where(models.c.provider == "fal").order_by(models.c.id))
    return tuple(
        (id_, None if price is None else str(price), enabled, status) for id_, price, enabled, status in rows
    )


def price_history_rows(connection: sa.Connection) -> list[tuple[str, str | None]]:
    query = sa.select(model_price_history.c.endpoint_id, model_price_history.c.price_per_call)
    return [
        (eid, None if price is None else str(price))
        for eid, price in connection.execute(query.order_by(model_price_history.c.id))
    ]


def repriced(catalog: dict[str, PricedModel], every: int) -> dict[str, PricedModel]:
    """Every `every`-th priced model a cent dearer."""
    priced_ids = [eid for eid, model in catalog.items() if model.price_per_call is not None]
    changed = set(priced_ids[::every])
    return {
        eid: replace(model, price_per_call=model.price_per_call + Decimal("0.01"))
        if eid in changed
        else model
        for eid, model in catalog.items()
    }


class ReaderPool:
    """`READERS` threads reading through one engine (pool of `POOL`, no overflow), as an app server's
    request handlers would; each records the catalog it saw, or its error."""

    def __init__(self, url: str) -> None:
        self.engine = create_catalog_engine(
            url,
            pool_size=POOL,
            max_overflow=0,
            pool_timeout=120,
            connect_args={"application_name": APP_NAME, "options": "-c lock_timeout=100"},
        )
        self.seen: list[CatalogView] = []
        self.errors: list[str] = []
        self.done = 0
        self._lock = threading.Lock()
        self.first_half = threading.Event()
        self.second_half = threading.Event()
        self.threads = [
            threading.Thread(
                target=self._read, args=(self.first_half if i < READERS // 2 else self.second_half,)
            )
            for i in range(READERS)
        ]
        for thread in self.threads:
            thread.start()

    def _read(self, go: threading.Event) -> None:
        go.wait()
        try:
            with self.engine.connect() as connection:
                view = read_catalog(connection)
            with self._lock:
                self.seen.append(view)
        except Exception as exc:  # every failure is a finding, reported by the test
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self.done += 1

    def join(self) -> None:
        for thread in self.threads:
            thread.join(300)
        self.engine.dispose()


class LockWaitMonitor:
    """Samples, every few milliseconds, the readers' backends: how many there are, and any lock one of
    them is waiting on (`pg_locks`)."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        self.waits: list[tuple] = []
        self.samples = 0
        self.most_backends = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._watch)
        self.thread.start()

    def _watch(self) -> None:
        query = sa.text(
            "SELECT a.pid, l.locktype, l.mode, a.query FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.application_name = :app"
        )
        backends = sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :app")
        with self.engine.connect() as connection:
            while not self._stop.is_set():
                self.waits.extend(tuple(row) for row in connection.execute(query, {"app": APP_NAME}))
                count = connection.execute(backends, {"app": APP_NAME}).scalar() or 0
                self.most_backends = max(self.most_backends, count)
                self.samples += 1
                time.sleep(0.002)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(30)
        self.engine.dispose()


def test_readers_see_the_old_or_the_new_catalog_and_never_wait(
    tmp_path: Path, postgres_url: str, priced_snapshot: tuple[dict[str, PricedModel], PricingPolicy]
) -> None:
    catalog, _ = priced_snapshot
    engine = create_catalog_engine(postgres_url)
    store = CatalogStore(engine)
    store.migrate()
    context = SyncContext(
        mode=SyncMode.FULL, source=DataSource.LIVE, data_as_of=datetime.now(UTC), now=datetime.now(UTC)
    )

    def sync(priced: dict[str, PricedModel]) -> int:
        outcome = store.sync(context, priced, deployment="cloud")
        return outcome.plan.updated

    sync(catalog)
    with engine.connect() as connection:
        old = read_catalog(connection)
        history_before = price_history_rows(connection)

    admin_engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    updated: list[int] = []
    with admin_engine.connect() as admin:
        with sync_runs_locked(postgres_url):
            syncing = threading.Thread(target=lambda: updated.append(sync(repriced(catalog, every=2))))
            syncing.start()
            wait_for(lambda: backend_waiting_to_record_its_run(admin), what="the sync to write its rows")
            monitor = LockWaitMonitor(postgres_url)
            readers = ReaderPool(postgres_url)
            readers.first_half.set()
            wait_for(lambda: readers.done >= READERS // 2, 120, "the first half of the readers")
            readers.second_half.set()  # the sync is let go as this block ends: they race its commit
        syncing.join(60)
        readers.join()
        monitor.stop()
    admin_engine.dispose()
    with engine.connect() as connection:
        new = read_catalog(connection)
        history_after = price_history_rows(connection)
    engine.dispose()

    assert not syncing.is_alive() and updated, "the sync did not finish"
    assert updated[0] >= 300, f"the sync changed only {updated[0]} rows"
    assert [row[0] for row in new] == [row[0] for row in old], "no model may be lost or added"
    changed = {a[0] for a, b in zip(old, new, strict=True) if a != b}
    assert len(changed) == updated[0]
    assert history_after[: len(history_before)] == history_before, "price history is append-only"
    assert {row[0] for row in history_after[len(history_before) :]} == changed
    assert readers.errors == [], f"{len(readers.errors)} readers failed, e.g. {readers.errors[:3]}"
    assert len(readers.seen) == READERS
    seen = Counter("old" if view == old else "new" if view == new else "mixed" for view in readers.seen)
    assert seen["mixed"] == 0, f"{seen['mixed']} readers saw neither the old nor the new catalog"
    assert seen["old"] >= READERS // 2, "every reader that read during the open sync must see the old one"
    assert seen["new"] > 0, "no reader saw the committed catalog"
    assert monitor.samples > 0 and monitor.waits == [], f"readers waited on locks: {monitor.waits[:5]}"
    assert 0 < monitor.most_backends <= POOL
