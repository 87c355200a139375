"""The core deployment (`GENFEED_DEPLOYMENT=core`, the user's own fal key) end to end through Dagster.

The code location's definitions are built from the environment as `definitions.py` builds them, and the real
`refresh_fal_catalog` job runs against the fal emulator into SQLite and PostgreSQL. After a live refresh:

- every priced row charges exactly what fal charges: `price_per_call` = `cost_per_call`, the rate card's
  `price` rule is the core rule, and the per-unit figures of `pricing` are fal's unit price (checked for
  every row, and by hand for a few models from fal's published prices);
- `enabled` follows validity alone: every valid model is enabled, priced or not (a $0-per-compute-second
  model is valid and enabled), every invalid one disabled; cloud, for the same models, disables the
  unpriced ones;
- with `GENFEED_OFFLINE=1` the job reads the cache the live run wrote (not the bundled snapshot), asks fal
  nothing, marks nothing removed and leaves every row as it was, even when the cache has since lost
  endpoints the table still holds.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from genfeed_pipeline.db.engine import create_catalog_engine
from genfeed_pipeline.definitions import build_definitions
from genfeed_pipeline.settings import PipelineSettings
from genfeed_pipeline_tests.conftest import TEST_FAL_KEY
from genfeed_pipeline_tests.fal_emulator import FalEmulator

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
CORE_RULE = {"margin": 0, "min_price": 0, "step": None}
ENDPOINTS = 1182  # the bundled snapshot the emulator serves (README: endpoints 1182, valid 792, priced 676)
VALID = 792
PRICED = 676
CLOUD_ENABLED = 662  # README's `make refresh` (cloud): enabled 662 of 1182
ZERO_COMPUTE_SECOND = "fal-ai/aura-flow"  # fal: $0 per compute second, a unit that cannot be priced
NO_DURATION_ESTIMATE = "fal-ai/longcat-video/distilled/text-to-video/480p"  # compute seconds, no estimate
GONE_FROM_FAL = ("fal-ai/flux/schnell", "bria/text-to-image/3.2", "fal-ai/minimax/video-01")

# By hand, from fal's unit prices (the emulator's, asserted below) and the schemas' defaults.
HAND_CHECKED: dict[str, dict[str, Any]] = {
    # $0.025 per megapixel; default landscape_4_3 1024×768 → 1 MP.
    "fal-ai/flux/dev": {
        "fal": ("0.025", "megapixels"),
        "cost": "0.025",
        "pricing": {"image": Decimal("0.025"), "perMegapixel": Decimal("0.025")},
    },
    # $0.07 per second of video; default duration "5" → $0.35.
    "fal-ai/kling-video/v2.5-turbo/pro/image-to-video": {
        "fal": ("0.07", "seconds"),
        "cost": "0.35",
        "pricing": {"video": Decimal("0.07")},
    },
    # $0.02 per second; 121 frames ÷ 24 fps × $0.02 = $0.100833…, stored rounded up to 10 places.
    "fal-ai/ltxv-13b-098-distilled": {
        "fal": ("0.02", "seconds"),
        "cost": "0.1008333334",
        "pricing": {"video": Decimal("0.02")},
    },
    # $0.002 per 1000 tokens → $2 per 1M tokens, in and out.
    "fal-ai/qwen-3-guard": {
        "fal": ("0.002", "1000 tokens"),
        "cost": "0.00001",
        "pricing": {"input": Decimal(2), "output": Decimal(2)},
    },
    # $0.04 per generation.
    "bria/text-to-image/3.2": {
        "fal": ("0.04", "generations"),
        "cost": "0.04",
        "pricing": {"perCall": Decimal("0.04")},
    },
    # $0.024 per step; 2,500 steps by default → $60.
    "fal-ai/flux-lora-portrait-trainer": {
        "fal": ("0.024", "steps"),
        "cost": "60",
        "pricing": {"perUnit": Decimal("0.024"), "unit": "step"},
    },
}


def deployment_definitions(
    monkeypatch: pytest.MonkeyPatch,
    fal_emulator: FalEmulator,
    database_url: str,
    data_dir: Path,
    *,
    deployment: str = "core",
    offline: bool = False,
) -> dg.Definitions:
    """The definitions the code location builds from its environment (`PipelineSettings.from_env()`)."""
    environment = {
        "FAL_KEY": TEST_FAL_KEY,
        "GENFEED_DEPLOYMENT": deployment,
        "GENFEED_DATABASE_URL": database_url,
        "GENFEED_DATA_DIR": str(data_dir),
        "FAL_API_BASE_URL": fal_emulator.base_url,
        "FAL_OPENAPI_URL": fal_emulator.openapi_url,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if offline:
        monkeypatch.setenv("GENFEED_OFFLINE", "1")
    else:
        monkeypatch.delenv("GENFEED_OFFLINE", raising=False)
    return build_definitions(PipelineSettings.from_env())


def refresh(
    defs: dg.Definitions, instance: dg.DagsterInstance, mode: str = "full"
) -> dg.ExecuteInProcessResult:
    result = defs.resolve_job_def("refresh_fal_catalog").execute_in_process(
        run_config={**QUIET, "ops": {"models_table": {"config": {"mode": mode}}}}, instance=instance
    )
    assert result.success
    return result


def data_sources(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """Each materialized asset's `data_source` metadata."""
    return {
        event.asset_key.to_user_string(): event.materialization.metadata["data_source"].value
        for event in result.get_asset_materialization_events()
        if "data_source" in event.materialization.metadata
    }


def table_rows(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    """Every row of `models` as the database holds it (no schema columns: they are large)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT id, managed_by, category, status, enabled, enabled_by_sync, operator_enabled, "
                "unit, unit_raw, unit_price, cost_per_call, price_per_call, price_source, price_seen_at, "
                "CAST(pricing AS TEXT) AS pricing, CAST(rate_card AS TEXT) AS rate_card, "
                "CAST(validation_errors AS TEXT) AS validation_errors, schema_hash, mapped_hash, "
                "review_reason, data_as_of, last_synced_at FROM models"
            )
        ).mappings()
        return {row["id"]: dict(row) for row in rows}


def exact(text: str | None) -> Any:
    """JSON column text with every number exact (stdlib, not the pipeline's codec)."""
    return None if text is None else json.loads(text, parse_float=Decimal, parse_int=Decimal)


def money(value: Any) -> Decimal | None:
    assert not isinstance(value, float), value  # money never comes back as a binary float
    return None if value is None else Decimal(value)


def valid(row: dict[str, Any]) -> bool:
    return not exact(row["validation_errors"])


def enabled_ids(rows: dict[str, dict[str, Any]]) -> set[str]:
    return {endpoint_id for endpoint_id, row in rows.items() if bool(row["enabled"])}


def expected_core_pricing(row: dict[str, Any], unit_price: Decimal) -> dict[str, Any]:
    """The contract's `pricing` keys for the row's unit, each at fal's own unit price (core sells at cost)."""
    unit = row["unit"]
    cost = money(row["cost_per_call"])
    if unit == "image":
        return {"image": unit_price}
    if unit in ("megapixel", "processed megapixel"):
        return {"image": exact(row["pricing"])["image"], "perMegapixel": unit_price}
    if unit == "second" and row["category"] == "video":
        return {"video": unit_price}
    if unit in ("1m token", "1000 token"):
        per_million = unit_price * (1 if unit == "1m token" else 1000)
        return {"input": per_million, "output": per_million}
    if unit in ("video", "generation", "request", "video segment", "audio", "cloned voice", "training") or (
        unit.endswith(" second") and unit.split()[0].isdigit()
    ):
        return {"perCall": cost}
    return {"perUnit": unit_price, "unit": unit}


def assert_core_catalog(rows: dict[str, dict[str, Any]], fal_emulator: FalEmulator) -> None:
    fal_prices = fal_emulator.catalog.prices
    priced = {endpoint_id: row for endpoint_id, row in rows.items() if row["cost_per_call"] is not None}
    assert len(rows) == ENDPOINTS and len(priced) == PRICED
    assert {row["managed_by"] for row in rows.values()} == {"fal_catalog"}

    for endpoint_id, row in priced.items():
        unit_price = Decimal(fal_prices[endpoint_id]["unit_price"])
        cost = money(row["cost_per_call"])
        assert money(row["price_per_call"]) == cost, endpoint_id
        assert money(row["unit_price"]) == unit_price, endpoint_id
        card = exact(row["rate_card"])
        assert card["price"] == CORE_RULE, (endpoint_id, card["price"])
        assert card["unit_price"] == unit_price, endpoint_id
        pricing = exact(row["pricing"])
        assert pricing == expected_core_pricing(row, unit_price), (endpoint_id, row["unit"], pricing)
        if "perMegapixel" in pricing:  # one default image is a whole number of megapixels
            megapixels = pricing["image"] / unit_price
            assert megapixels == megapixels.to_integral_value() and megapixels >= 1, endpoint_id

    for endpoint_id, expected in HAND_CHECKED.items():
        fal_unit_price, fal_unit = expected["fal"]
        assert fal_prices[endpoint_id]["unit_price"] == Decimal(fal_unit_price), endpoint_id
        assert fal_prices[endpoint_id]["unit"] == fal_unit, endpoint_id
        row = rows[endpoint_id]
        assert money(row["cost_per_call"]) == Decimal(expected["cost"]), endpoint_id
        assert money(row["price_per_call"]) == Decimal(expected["cost"]), endpoint_id
        assert exact(row["pricing"]) == expected["pricing"], endpoint_id
        assert bool(row["enabled"]) is True, endpoint_id

    # `enabled` follows validity alone, priced or not.
    valid_ids = {endpoint_id for endpoint_id, row in rows.items() if valid(row)}
    assert len(valid_ids) == VALID
    assert enabled_ids(rows) == valid_ids
    for endpoint_id in (ZERO_COMPUTE_SECOND, NO_DURATION_ESTIMATE):
        row = rows[endpoint_id]
        assert fal_prices[endpoint_id]["unit"] == "compute seconds", endpoint_id
        assert row["cost_per_call"] is None and row["rate_card"] in (None, "null"), endpoint_id
        assert valid(row) and bool(row["enabled"]) is True, endpoint_id
    assert Decimal(fal_prices[ZERO_COMPUTE_SECOND]["unit_price"]) == 0
    invalid_priced = [eid for eid, row in priced.items() if not valid(row)]
    assert invalid_priced and not any(bool(rows[eid]["enabled"]) for eid in invalid_priced)


def refresh_live_then_offline(
    monkeypatch: pytest.MonkeyPatch,
    fal_emulator: FalEmulator,
    database_url: str,
    data_dir: Path,
    instance: dg.DagsterInstance,
    engine: sa.Engine,
) -> tuple[dg.Definitions, dg.Definitions, dict[str, dict[str, Any]]]:
    """A live core refresh, checked row by row, then an offline one that must change nothing.

    Returns the live and offline definitions and the table as the live refresh left it."""
    live = deployment_definitions(monkeypatch, fal_emulator, database_url, data_dir)
    offline = deployment_definitions(monkeypatch, fal_emulator, database_url, data_dir, offline=True)
    first = refresh(live, instance)
    assert data_sources(first)["fal_model_list"] == "live"
    assert first.output_for_node("models_table").new == ENDPOINTS
    synced = table_rows(engine)
    assert_core_catalog(synced, fal_emulator)

    # Offline: the cache the live run wrote, not the snapshot; fal is not asked.
    fal_emulator.reset_log()
    second = refresh(offline, instance)
    assert fal_emulator.requests == []
    assert set(data_sources(second).values()) == {"cache"}, data_sources(second)
    summary = second.output_for_node("models_table")
    assert (summary.new, summary.changed, summary.removed, summary.unchanged) == (0, 0, 0, ENDPOINTS)
    assert table_rows(engine) == synced
    return live, offline, synced


def sync_runs(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        runs = connection.execute(
            sa.text("SELECT mode, source, new_count, removed_count FROM sync_runs ORDER BY id")
        )
        return [tuple(run) for run in runs]


def test_core_on_postgresql_sells_at_cost_and_reads_the_cache_offline(
    fal_emulator: FalEmulator, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_catalog_engine(postgres_url)
    try:
        with dg.instance_for_test() as instance:
            refresh_live_then_offline(
                monkeypatch, fal_emulator, postgres_url, tmp_path / "data", instance, engine
            )
        assert sync_runs(engine) == [("full", "live", ENDPOINTS, 0), ("full", "cache", 0, 0)]
    finally:
        engine.dispose()


def cloud_rows(
    monkeypatch: pytest.MonkeyPatch, fal_emulator: FalEmulator, tmp_path: Path
) -> dict[str, dict[str, Any]]:
    """The table a cloud deployment's live refresh writes from the same emulated catalog (own database)."""
    database_url = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    defs = deployment_definitions(
        monkeypatch, fal_emulator, database_url, tmp_path / "cloud", deployment="cloud"
    )
    with dg.instance_for_test() as instance:
        refresh(defs, instance)
    engine = create_catalog_engine(database_url)
    try:
        return table_rows(engine)
    finally:
        engine.dispose()


def assert_cloud_disables_what_core_enables_unpriced(
    core: dict[str, dict[str, Any]], cloud: dict[str, dict[str, Any]]
) -> None:
    assert {eid: valid(row) for eid, row in core.items()} == {eid: valid(row) for eid, row in cloud.items()}
    valid_unpriced = {eid for eid, row in cloud.items() if valid(row) and row["cost_per_call"] is None}
    assert {ZERO_COMPUTE_SECOND, NO_DURATION_ESTIMATE} <= valid_unpriced
    assert len(enabled_ids(cloud)) == CLOUD_ENABLED and len(enabled_ids(core)) == VALID
    assert enabled_ids(core) - enabled_ids(cloud) == valid_unpriced
    assert enabled_ids(cloud) <= enabled_ids(core)
    cloud_rule = {"margin": Decimal("0.7"), "min_price": Decimal("0.001"), "step": Decimal("0.0001")}
    for endpoint_id, row in cloud.items():
        cost = money(row["cost_per_call"])
        assert money(core[endpoint_id]["cost_per_call"]) == cost, endpoint_id  # one cost, two prices
        if cost is not None:
            assert exact(row["rate_card"])["price"] == cloud_rule, endpoint_id
            assert money(row["price_per_call"]) > cost, endpoint_id
    assert money(cloud["fal-ai/flux/dev"]["price_per_call"]) == Decimal("0.0834")
    assert exact(cloud["fal-ai/flux/dev"]["pricing"]) == {
        "image": Decimal("0.083334"),
        "perMegapixel": Decimal("0.083334"),
    }


def test_core_on_sqlite_sells_at_cost_runs_offline_from_the_cache_and_differs_from_cloud(
    fal_emulator: FalEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud = cloud_rows(monkeypatch, fal_emulator, tmp_path)
    database_url = f"sqlite:///{tmp_path / 'core.sqlite3'}"
    engine = create_catalog_engine(database_url)
    try:
        with dg.instance_for_test() as instance:
            live, offline, synced = refresh_live_then_offline(
                monkeypatch, fal_emulator, database_url, tmp_path / "core", instance, engine
            )
            assert_cloud_disables_what_core_enables_unpriced(synced, cloud)

            # fal drops three endpoints and a live dry run lists it, so the cache now lacks them; then fal is
            # out of reach again. The offline refresh reads the smaller cache and still removes nothing.
            for endpoint_id in GONE_FROM_FAL:
                fal_emulator.catalog.remove_model(endpoint_id)
            dry = refresh(live, instance, mode="dry_run")
            would_remove = [change.endpoint_id for change in dry.output_for_node("models_table").changes]
            assert sorted(would_remove) == sorted(GONE_FROM_FAL)
            assert table_rows(engine) == synced

            fal_emulator.reset_log()
            third = refresh(offline, instance)
            assert fal_emulator.requests == []
            assert set(data_sources(third).values()) == {"cache"}, data_sources(third)
            listed = next(
                event.materialization.metadata["endpoints"].value
                for event in third.get_asset_materialization_events()
                if event.asset_key == dg.AssetKey("fal_model_list")
            )
            assert listed == ENDPOINTS - len(GONE_FROM_FAL)
            summary = third.output_for_node("models_table")
            assert (summary.new, summary.changed, summary.removed) == (0, 0, 0)
            after = table_rows(engine)
            assert after == synced
            assert all(
                after[eid]["status"] == "active" and bool(after[eid]["enabled"]) for eid in GONE_FROM_FAL
            )
        assert sync_runs(engine) == [
            ("full", "live", ENDPOINTS, 0),
            ("full", "cache", 0, 0),
            ("full", "cache", 0, 0),
        ]
    finally:
        engine.dispose()
