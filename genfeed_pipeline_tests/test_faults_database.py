"""The database failing under a sync: the transaction rolls back whole, nothing is lost, the next run
completes.

The sync writes `models`, the two history tables and, last, its `sync_runs` row, in one transaction under a
lock. To catch it in the middle, a test holds a lock the *last* statement needs (`sync_runs` on PostgreSQL,
a reader's shared lock on SQLite, which a commit must wait for): the sync has written everything else and
waits. Then its connection is terminated, or its process is SIGKILLed, and the tables must be exactly as
before. The next run must then sync what the catalog changed and nothing else, over a table that also holds
the app's own rows (fixed prices) and operator choices: those stay as people wrote them.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from genfeed_pipeline.sync.store import SYNC_LOCK_KEY
from genfeed_pipeline_tests.faults_support import (
    APP_FAL,
    APP_OTHER,
    CLEAN_CHANGES,
    OPERATOR_OFF,
    OPERATOR_ON,
    PRICED,
    Pipeline,
    assert_nothing_lost,
    backend_waiting_to_record_its_run,
    by_id,
    change_catalog,
    changed_models,
    open_pipeline,
    step_succeeded,
    sync_runs_locked,
    wait_for,
    without,
)

NEW_MODEL = "fal-ai/flux/schnell-fault-suite"


def change_catalog_and_add_a_model(pipeline: Pipeline) -> None:
    change_catalog(pipeline.catalog)
    catalog = pipeline.catalog
    catalog.add_model(
        NEW_MODEL,
        {**(catalog.models[PRICED] or {}), "display_name": "FLUX schnell (fault suite)"},
        price={"unit_price": "0.002", "unit": "megapixels"},
        openapi=catalog.openapi[PRICED],
    )


class RunInThread:
    """A refresh on a thread, so the test can act on the database while the run is inside its sync."""

    def __init__(self, run: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None

        def target() -> None:
            try:
                self.result = run()
            except BaseException as exc:  # reported by join()
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def join(self, timeout: float = 60.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the run did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def tables_it_has_written(admin: sa.Connection, pid: int) -> set[str]:
    rows = admin.execute(
        sa.text(
            "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE l.pid = :pid AND l.mode = 'RowExclusiveLock' AND l.granted"
        ),
        {"pid": pid},
    )
    return {row[0] for row in rows}


def assert_next_run_completes(pipeline: Pipeline, before: dict) -> None:
    result = pipeline.refresh()
    after = pipeline.snapshot()
    assert_nothing_lost(before, after, may_change=CLEAN_CHANGES, added={NEW_MODEL})
    assert changed_models(before, after) == {*CLEAN_CHANGES, NEW_MODEL}
    summary = result.output_for_node("models_table")
    assert (summary.new, summary.changed, summary.removed) == (1, 6, 0)
    assert len(after["sync_runs"]) == len(before["sync_runs"]) + 1
    rows = by_id(after)
    assert rows[APP_OTHER]["pricing"] == {"fixedPrice": Decimal("0.05")}
    assert rows[APP_FAL]["pricing"] == {"fixedPrice": Decimal("0.25")}, "the app's fixed price is kept"
    assert rows[APP_FAL]["unit_price"] == Decimal("0.07"), "the app's fal row is enriched in place"
    assert (rows[OPERATOR_OFF]["enabled"], rows[OPERATOR_OFF]["operator_enabled"]) == (False, False)
    assert (rows[OPERATOR_ON]["enabled"], rows[OPERATOR_ON]["operator_enabled"]) == (True, True)


# -- PostgreSQL: the connection dropped in the middle of the sync -------------------------------------------


def test_a_connection_terminated_inside_the_sync_rolls_back_and_the_next_run_completes(
    tmp_path: Path, postgres_url: str
) -> None:
    """Also: the app's rows and the operator's choices survive the failed sync and the next one."""
    with open_pipeline(tmp_path, postgres_url) as pipeline:
        change_catalog_and_add_a_model(pipeline)
        before = pipeline.snapshot()
        admin_engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        with admin_engine.connect() as admin, sync_runs_locked(postgres_url):
            run = RunInThread(lambda: pipeline.refresh(raise_on_error=False))
            pid = wait_for(
                lambda: backend_waiting_to_record_its_run(admin), what="the sync to reach sync_runs"
            )
            written = tables_it_has_written(admin, pid)
            assert {"models", "model_price_history", "model_schema_history"} <= written, written
            assert admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        result = run.join()
        admin_engine.dispose()

        assert not result.success and not step_succeeded(result, "models_table")
        assert pipeline.snapshot() == before, "the terminated transaction must roll back whole"
        assert_next_run_completes(pipeline, before)


# -- PostgreSQL: two refreshes at once ----------------------------------------------------------------------


def test_two_refreshes_at_once_never_interleave(tmp_path: Path, postgres_url: str) -> None:
    """Two whole refreshes (separate data directories and Dagster instances, one database) reach the sync
    together: one waits for the other and then plans on what it wrote."""
    with (
        open_pipeline(tmp_path / "reference", people=False) as reference,
        open_pipeline(tmp_path / "a", postgres_url, baseline=False) as first,
        open_pipeline(tmp_path / "b", postgres_url, baseline=False) as second,
    ):
        expected = without(reference.snapshot()["models"])
        admin_engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        with admin_engine.connect() as admin:
            first.refresh(ops={"models_table": {"config": {"mode": "dry_run"}}})  # migrates the database
            admin.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": SYNC_LOCK_KEY})
            runs = [RunInThread(lambda p=p: p.refresh(raise_on_error=False)) for p in (first, second)]

            def both_waiting() -> bool:
                waiting = admin.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                        "AND objid = :low"
                    ),
                    {"low": SYNC_LOCK_KEY & 0xFFFFFFFF},
                ).scalar()
                return waiting == 2

            wait_for(both_waiting, what="both syncs to wait for the lock")
            admin.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": SYNC_LOCK_KEY})
            results = [run.join() for run in runs]
        admin_engine.dispose()

        assert all(result.success for result in results)
        after = first.snapshot()
        assert without(after["models"]) == expected, "the table is one run's result"
        counts = sorted(
            (r["new_count"], r["changed_count"], r["removed_count"], r["unchanged_count"])
            for r in after["sync_runs"]
        )
        assert counts == [(0, 0, 0, 40), (40, 0, 0, 0)]
        for table in ("model_price_history", "model_schema_history"):
            assert without(after[table]) == without(reference.snapshot()[table]), f"{table} written twice"


# -- a run killed in the middle of its sync -----------------------------------------------------------------

CHILD = """
import json, os, sys
import dagster as dg
from genfeed_pipeline.definitions import build_definitions
from genfeed_pipeline.settings import PipelineSettings

config = json.loads(os.environ["FAULT_SUITE_RUN_CONFIG"])
defs = build_definitions(PipelineSettings.from_env())
print("child: refreshing", flush=True)
result = defs.resolve_job_def("refresh_fal_catalog").execute_in_process(
    run_config=config, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
)
print("child: finished", result.success, flush=True)
"""


def start_child_refresh(pipeline: Pipeline) -> subprocess.Popen:
    env = {**os.environ, **pipeline.env, "FAULT_SUITE_RUN_CONFIG": json.dumps(pipeline.run_config())}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def sigkill(child: subprocess.Popen) -> str:
    os.kill(child.pid, signal.SIGKILL)
    output, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert "child: finished" not in output, output[-2000:]
    return output


def test_a_run_sigkilled_inside_its_postgresql_sync_loses_nothing(tmp_path: Path, postgres_url: str) -> None:
    with open_pipeline(tmp_path, postgres_url) as pipeline:
        change_catalog_and_add_a_model(pipeline)
        before = pipeline.snapshot()
        admin_engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        with admin_engine.connect() as admin:
            with sync_runs_locked(postgres_url):
                child = start_child_refresh(pipeline)
                try:
                    pid = wait_for(
                        lambda: backend_waiting_to_record_its_run(admin),
                        60,
                        "the child's sync to reach sync_runs",
                    )
                    assert "models" in tables_it_has_written(admin, pid)
                finally:
                    sigkill(child)

            def gone() -> bool:  # the server notices the dead client and ends the backend
                alive = admin.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                )
                return alive.scalar() == 0

            wait_for(gone, what="the killed run's backend to end")
        admin_engine.dispose()

        assert pipeline.snapshot() == before
        assert_next_run_completes(pipeline, before)


def test_a_run_sigkilled_while_committing_on_sqlite_loses_nothing(tmp_path: Path) -> None:
    """SQLite: a reader's shared lock makes the sync's COMMIT wait after every row is written (the rollback
    journal exists); the writer is SIGKILLed there, and the hot journal is rolled back on the next open."""
    with open_pipeline(tmp_path) as pipeline:
        change_catalog_and_add_a_model(pipeline)
        before = pipeline.snapshot()
        pipeline.engine.dispose()
        database = Path(pipeline.database_url.removeprefix("sqlite:///"))
        journal = database.with_name(database.name + "-journal")
        reader = sqlite3.connect(database, isolation_level=None)
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM models").fetchone()  # holds a SHARED lock
        child = start_child_refresh(pipeline)
        try:
            wait_for(lambda: journal.exists() and journal.stat().st_size > 0, 60, "the child's sync to write")
            time.sleep(0.3)  # let it write every row and reach its COMMIT
        finally:
            sigkill(child)
            reader.execute("ROLLBACK")
            reader.close()

        assert pipeline.snapshot() == before, "the hot journal must roll the half-done sync back"
        assert_next_run_completes(pipeline, before)
