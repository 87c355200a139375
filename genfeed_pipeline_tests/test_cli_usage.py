"""`genfeed-catalog usage --from DAY --to DAY`: the command a data team runs to fill days of fal's bill.

As a user runs it: the installed entry point in a process of its own, `DAGSTER_HOME` holding the project's
`dagster.yaml`, the emulator over real HTTP. The days it fills show as materialized partitions in that
instance (so the UI shows them), and the days it refuses are refused before anything runs.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from genfeed_pipeline.db.engine import create_catalog_engine
from genfeed_pipeline.db.tables import model_usage_daily
from genfeed_pipeline_tests.conftest import TEST_FAL_KEY
from genfeed_pipeline_tests.fal_emulator import DEFAULT_ADMIN_KEY, EmulatedCatalog, FalEmulator
from genfeed_pipeline_tests.test_cli_refresh import COMMAND, command_env, dagster_home  # noqa: F401

TODAY = datetime.now(UTC).date()
D1, D2 = TODAY - timedelta(days=3), TODAY - timedelta(days=2)


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COMMAND), "usage", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=240,
        check=False,
    )


@pytest.fixture
def emulator(snapshot_catalog: EmulatedCatalog) -> FalEmulator:
    with FalEmulator(snapshot_catalog.documented(), api_key=TEST_FAL_KEY) as fal:
        fal.usage.add_line(D1, "fal-ai/flux/dev", "megapixels", 40, "0.025")
        fal.usage.set_requests(D1, "fal-ai/flux/dev", 30)
        fal.usage.add_line(D2, "fal-ai/flux/dev", "megapixels", 4, "0.025")
        fal.usage.add_line(D2, "fal-ai/ideogram/v2", "images", 2, "0.08", 10)
        fal.usage.set_requests(D2, "fal-ai/flux/dev", 4)
        yield fal


def test_days_are_filled_from_the_command_line_and_show_in_the_instance(
    emulator: FalEmulator,
    tmp_path: Path,
    dagster_home: Path,  # noqa: F811
) -> None:
    url = f"sqlite:///{tmp_path / 'genfeed.sqlite3'}"
    env = command_env(emulator, tmp_path, dagster_home, url) | {"FAL_ADMIN_KEY": DEFAULT_ADMIN_KEY}

    text = run(env, tmp_path, "--from", D1.isoformat(), "--to", D2.isoformat())
    assert text.returncode == 0, text.stderr[-3000:]
    lines = text.stdout.splitlines()
    assert f"  {D1}  1 rows, 1 endpoints, 30 requests, fal cost $1" in lines, text.stdout
    assert f"  {D2}  2 rows, 2 endpoints, 4 requests, fal cost $0.244" in lines, text.stdout
    assert lines[-1].startswith(f"refresh_fal_usage {D1} to {D2}: 2 days written in ")
    assert DEFAULT_ADMIN_KEY not in text.stdout + text.stderr

    as_json = run(env, tmp_path, "--from", D2.isoformat(), "--to", D2.isoformat(), "--json")
    assert as_json.returncode == 0, as_json.stderr[-3000:]
    summary = json.loads(as_json.stdout)
    assert summary["days_written"] == 1 and summary["days"][0]["day"] == D2.isoformat()
    assert summary["days"][0]["fal_cost"] == "$0.244"  # 4 MP × 0.025 + 2 × 0.08 × 90%

    engine = create_catalog_engine(url)
    with engine.connect() as connection:
        stored = connection.execute(
            sa.select(model_usage_daily.c.day, sa.func.sum(model_usage_daily.c.quantity)).group_by(
                model_usage_daily.c.day
            )
        ).all()
    engine.dispose()
    assert {day: int(quantity) for day, quantity in stored} == {D1: 40, D2: 6}, "the re-run replaced D2"

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for asset in ("fal_usage", "usage_profitability"):
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == {
                D1.isoformat(),
                D2.isoformat(),
            }


def test_days_outside_the_partitions_are_refused_and_no_key_writes_nothing(
    emulator: FalEmulator,
    tmp_path: Path,
    dagster_home: Path,  # noqa: F811
) -> None:
    url = f"sqlite:///{tmp_path / 'genfeed.sqlite3'}"
    env = command_env(emulator, tmp_path, dagster_home, url)
    refusals = {
        ("--from", "2025-12-31", "--to", "2026-01-02"): "before the first usage day 2026-01-01",
        ("--from", D1.isoformat(), "--to", TODAY.isoformat()): "is not over yet",
        ("--from", D2.isoformat(), "--to", D1.isoformat()): "is after --to",
        ("--from", "yesterday"): "days are YYYY-MM-DD",
    }
    for args, message in refusals.items():
        refused = run(env, tmp_path, *args)
        assert refused.returncode == 2 and message in refused.stderr, (args, refused.stderr)
    assert not list(dagster_home.glob("storage/*")), "a refused range starts no run"

    without_key = run(env, tmp_path, "--from", D1.isoformat(), "--to", D2.isoformat())
    assert without_key.returncode == 0, without_key.stderr[-3000:]
    assert "0 days written" in without_key.stdout
    assert "nothing materialized: FAL_ADMIN_KEY is not set" in without_key.stdout
    assert not any("/models/usage" in request.path for request in emulator.requests)
