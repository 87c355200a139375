"""`genfeed-catalog refresh`, the README's first command, and the manual backfill of chosen endpoints.

The command runs as a user runs it: the installed entry point in a process of its own, with `DAGSTER_HOME`
pointing at a home holding the project's `dagster.yaml` (its storage inside that home). In this process the
`refresh_fal_catalog` job that `dg.reconstructable` loads would be the one built when
`genfeed_pipeline.definitions` was first imported, from another test's environment; a process of its own
reads this test's environment, as the command does on a user's machine.

The backfill: fal reprices three chosen endpoints and a fourth that is not chosen; a refresh of the three
(`--endpoint-id` three times, or `endpoint_ids` in the run config as the launchpad sends it) changes exactly
those three rows, to values worked out by hand, and leaves every other row value for value as it was.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from genfeed_pipeline.db.engine import create_catalog_engine
from genfeed_pipeline_tests.conftest import TEST_FAL_KEY
from genfeed_pipeline_tests.fal_emulator import EmulatedCatalog, FalEmulator
from genfeed_pipeline_tests.faults_support import by_id, new_rows, open_pipeline, snapshot_tables

PROJECT_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"
COMMAND = Path(sys.executable).with_name("genfeed-catalog")
BOOKKEEPING = ("price_seen_at", "data_as_of", "last_synced_at")


@dataclass(frozen=True)
class Repricing:
    unit_price: str
    cost: str
    price: str  # cloud: max(cost ÷ 0.30, $0.001), rounded up to $0.0001
    pricing: dict[str, str]  # per unit: unit price ÷ 0.30, rounded up to $0.000001
    derivation: str


CHOSEN = {
    # $0.004 per MP, landscape_4_3 (0.75 MP → 1 MP): $0.004; ÷ 0.3 = $0.01333… → $0.0134 / $0.013334.
    "fal-ai/flux/schnell": Repricing(
        "0.004",
        "0.004",
        "0.0134",
        {"image": "0.013334", "perMegapixel": "0.013334"},
        "1 MP (landscape_4_3: 1024×768 → ⌈786,432 ÷ 1,048,576⌉) × 1 image × $0.004 per megapixel",
    ),
    # $0.05 per image, one image: $0.05; ÷ 0.3 = $0.1666… → $0.1667 / $0.166667.
    "bria/fibo/generate": Repricing(
        "0.05", "0.05", "0.1667", {"image": "0.166667"}, "1 output × $0.05 per image"
    ),
    # $0.05 per second, 5 s by default: $0.25; ÷ 0.3 = $0.8333… → $0.8334; per second $0.166667.
    "fal-ai/kling-video/v1/standard/image-to-video": Repricing(
        "0.05", "0.25", "0.8334", {"video": "0.166667"}, "5 s (duration default '5') × $0.05 per second"
    ),
}
NOT_CHOSEN = "fal-ai/flux/dev"  # repriced at fal too, $0.025 → $0.03 per MP, but not refreshed


def reprice_at_fal(catalog: EmulatedCatalog) -> dict[str, Decimal]:
    """fal's new prices (fal's own unit strings kept); returns the old unit price of each changed endpoint."""
    old = {eid: Decimal(str(catalog.prices[eid]["unit_price"])) for eid in (*CHOSEN, NOT_CHOSEN)}
    for endpoint_id, repricing in CHOSEN.items():
        catalog.set_price(endpoint_id, repricing.unit_price, catalog.prices[endpoint_id]["unit"])
    catalog.set_price(NOT_CHOSEN, "0.03", catalog.prices[NOT_CHOSEN]["unit"])
    return old


def assert_exactly_the_chosen_rows_repriced(
    before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]], run_id: str
) -> None:
    old, new = by_id(before), by_id(after)
    assert set(new) == set(old)
    assert {eid for eid in old if old[eid] != new[eid]} == set(CHOSEN)
    assert [eid for eid, row in new.items() if row["status"] == "removed"] == []
    for endpoint_id, repricing in CHOSEN.items():
        row = old[endpoint_id]
        expected = row | {
            "unit_price": Decimal(repricing.unit_price),
            "cost_per_call": Decimal(repricing.cost),
            "price_per_call": Decimal(repricing.price),
            "pricing": {key: Decimal(value) for key, value in repricing.pricing.items()},
            "rate_card": row["rate_card"] | {"unit_price": Decimal(repricing.unit_price)},
            "cost_derivation": repricing.derivation,
        }
        for column in BOOKKEEPING:
            assert new[endpoint_id][column] > row[column], (endpoint_id, column)
            expected[column] = new[endpoint_id][column]
        assert new[endpoint_id] == expected, endpoint_id
    assert new[NOT_CHOSEN]["unit_price"] == Decimal("0.025")

    assert after["model_schema_history"] == before["model_schema_history"]
    added_prices = new_rows(before, after, "model_price_history")
    assert sorted((r["endpoint_id"], r["unit_price"], r["price_per_call"]) for r in added_prices) == sorted(
        (eid, Decimal(r.unit_price), Decimal(r.price)) for eid, r in CHOSEN.items()
    )
    assert after["sync_runs"][:-1] == before["sync_runs"]
    record = after["sync_runs"][-1]
    assert record["run_id"] == run_id
    assert (record["mode"], record["source"], record["endpoints_seen"]) == ("full", "live", 3)
    assert (record["new_count"], record["changed_count"], record["removed_count"]) == (0, 3, 0)
    assert record["complete_listing"] is False  # a backfill is never the baseline of the shrink guard


# -- the command ----------------------------------------------------------------------------------------


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    """A Dagster home holding the project's `dagster.yaml`, which keeps the instance's storage inside it."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DAGSTER_YAML, home / "dagster.yaml")
    return home


def genfeed_catalog(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [str(COMMAND), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=240, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def command_env(emulator: FalEmulator, tmp_path: Path, home: Path, database_url: str) -> dict[str, str]:
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GENFEED_", "FAL_", "DAGSTER_"))
    }
    return inherited | {
        "DAGSTER_HOME": str(home),
        "FAL_KEY": TEST_FAL_KEY,
        "FAL_API_BASE_URL": emulator.base_url,
        "FAL_OPENAPI_URL": emulator.openapi_url,
        "GENFEED_DATABASE_URL": database_url,
        "GENFEED_DATA_DIR": str(tmp_path / "genfeed-data"),
    }


SUMMARY = re.compile(
    r"refresh_fal_catalog succeeded in [\d.]+s \(run (?P<run_id>[0-9a-f-]{36})\)\n"
    r"  deployment  (?P<deployment>\w+)\n"
    r"  data        from the (?P<source>\w+), as of (?P<as_of>\S+)\n"
    r"  endpoints   (?P<endpoints>\d+)\n"
    r"  valid       (?P<valid>\d+)\n"
    r"  priced      (?P<priced>\d+)\n"
    r"  enabled     (?P<enabled>\d+) of (?P<rows>\d+) rows in the models table\n"
    r"  by type     (?P<by_type>.+)\n"
    r"  models table \((?P<mode>\w+)\): (?P<new>\d+) new, (?P<changed>\d+) changed, "
    r"(?P<removed>\d+) removed, (?P<unchanged>\d+) unchanged\n"
)


def test_refresh_then_a_backfill_of_three_endpoints_from_the_command_line(
    fal_emulator: FalEmulator, tmp_path: Path, dagster_home: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'genfeed.sqlite3'}"
    env = command_env(fal_emulator, tmp_path, dagster_home, database_url)
    endpoints_at_fal = len(fal_emulator.catalog.models)

    printed = genfeed_catalog(env, tmp_path, "refresh").stdout
    summary = SUMMARY.match(printed)
    assert summary, printed
    engine = create_catalog_engine(database_url)
    first = snapshot_tables(engine)
    rows = first["models"]
    assert int(summary["endpoints"]) == endpoints_at_fal == len(rows) == 1182
    assert (summary["deployment"], summary["source"], summary["mode"]) == ("cloud", "live", "full")
    assert int(summary["rows"]) == len(rows)
    assert int(summary["enabled"]) == sum(1 for row in rows if row["enabled"])
    assert int(summary["valid"]) == sum(1 for row in rows if row["validation_errors"] is None)
    assert int(summary["priced"]) == sum(1 for row in rows if row["rate_card"] is not None)
    by_type = dict(item.rsplit(" ", 1) for item in summary["by_type"].split(", "))
    assert {name: int(count) for name, count in by_type.items()} == Counter(row["category"] for row in rows)
    assert [int(count) for count in by_type.values()] == sorted(map(int, by_type.values()), reverse=True)
    counts = tuple(int(summary[name]) for name in ("new", "changed", "removed", "unchanged"))
    assert counts == (1182, 0, 0, 0)
    [record] = first["sync_runs"]
    assert record["run_id"] == summary["run_id"]
    assert (record["new_count"], record["endpoints_seen"]) == (1182, 1182)

    reprice_at_fal(fal_emulator.catalog)
    chosen = [arg for endpoint_id in CHOSEN for arg in ("--endpoint-id", endpoint_id)]
    backfill = json.loads(genfeed_catalog(env, tmp_path, "refresh", *chosen, "--json").stdout)
    second = snapshot_tables(engine)
    engine.dispose()

    assert_exactly_the_chosen_rows_repriced(first, second, backfill["run_id"])
    assert (backfill["source"], backfill["endpoints"], backfill["table_rows"]) == ("live", 3, 1182)
    assert backfill["enabled"] == sum(1 for row in second["models"] if row["enabled"])
    assert backfill["sync"] == {"mode": "full", "new": 0, "changed": 3, "removed": 0, "unchanged": 0}

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
        assert [run.run_id for run in runs] == [backfill["run_id"], summary["run_id"]]
        assert all(run.job_name == "refresh_fal_catalog" for run in runs)
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        assert all(run.tags.get("genfeed/pipeline") == "catalog_refresh" for run in runs)
        discovery = runs[0].run_config["ops"]["discover_fal_catalog"]["config"]
        assert discovery["endpoint_ids"] == list(CHOSEN)
        latest = instance.get_latest_materialization_event(dg.AssetKey("models_table"))
        assert latest is not None and latest.run_id == backfill["run_id"]
    assert (dagster_home / "history" / "runs.db").is_file()
    assert not (tmp_path / ".genfeed").exists()  # nothing stored beside the command


LAUNCHPAD_CONFIG = """
ops:
  discover_fal_catalog:
    config:
      endpoint_ids:
        - fal-ai/flux/schnell
        - bria/fibo/generate
        - fal-ai/kling-video/v1/standard/image-to-video
"""


def test_a_backfill_from_the_launchpad_run_config(tmp_path: Path) -> None:
    with open_pipeline(tmp_path) as pipeline:
        before = pipeline.snapshot()
        assert set(CHOSEN) | {NOT_CHOSEN} <= set(by_id(before))
        reprice_at_fal(pipeline.catalog)

        job = pipeline.defs.resolve_job_def("refresh_fal_catalog")
        result = job.execute_in_process(
            run_config=yaml.safe_load(LAUNCHPAD_CONFIG), instance=pipeline.instance
        )

        assert result.success
        assert_exactly_the_chosen_rows_repriced(before, pipeline.snapshot(), result.run_id)
        with pipeline.engine.connect() as connection:
            # the 40 fal endpoints and the row GenFeed's app keeps for openai/gpt-image-1: none added or lost
            assert connection.execute(sa.text("SELECT count(*) FROM models")).scalar() == 41
