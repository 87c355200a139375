"""`refresh_fal_catalog` end to end against the emulator, into SQLite and PostgreSQL, row by row."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from genfeed_pipeline import exact_json
from genfeed_pipeline.db.engine import create_catalog_engine
from genfeed_pipeline.db.migrate import upgrade_to_head
from genfeed_pipeline.definitions import build_definitions
from genfeed_pipeline.pricing import evaluate
from genfeed_pipeline.pricing.rate_card import schema_errors
from genfeed_pipeline.settings import PipelineSettings
from genfeed_pipeline_tests.conftest import TEST_FAL_KEY
from genfeed_pipeline_tests.fal_emulator import FalEmulator

NEW_MODEL = "fal-ai/flux/schnell-turbo"
REMOVED_MODEL = "fal-ai/recraft/v3/text-to-image"
REPRICED_MODEL = "fal-ai/flux/schnell"
OPERATOR_DISABLED = "fal-ai/kling-video/v1.6/pro/image-to-video"
APP_FAL_ROW = "fal-ai/flux/dev"
APP_OTHER_ROW = "openai/gpt-image-1"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


APP_MODELS_TABLE = (
    "CREATE TABLE models (id VARCHAR(512) PRIMARY KEY, name TEXT NOT NULL, "
    "provider VARCHAR(64) NOT NULL, category VARCHAR(32) NOT NULL, pricing JSON, "
    "enabled BOOLEAN NOT NULL DEFAULT TRUE)"
)


def app_created_table(
    engine: sa.Engine,
    fal_row: tuple[str, str, str, bool] = (APP_FAL_ROW, "FLUX dev (GenFeed)", '{"fixedPrice": 0.02}', False),
) -> None:
    """The `models` table as GenFeed's app has it before the pipeline: six columns, a fal row (id, name,
    pricing, enabled) and an OpenAI row."""
    endpoint_id, name, pricing, enabled = fal_row
    with engine.begin() as connection:
        connection.execute(sa.text(APP_MODELS_TABLE))
        connection.execute(
            sa.text(
                "INSERT INTO models (id, name, provider, category, pricing, enabled) VALUES "
                "(:id1, :name1, 'fal', 'image', :pricing1, :enabled1), "
                "(:id2, 'GPT Image', 'openai', 'image', '{\"fixedPrice\": 0.05}', TRUE)"
            ),
            {
                "id1": endpoint_id,
                "name1": name,
                "pricing1": pricing,
                "enabled1": enabled,
                "id2": APP_OTHER_ROW,
            },
        )


def table_rows(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM models")).mappings()
        return {row["id"]: dict(row) for row in rows}


def run_refresh(
    defs: dg.Definitions, instance: dg.DagsterInstance, mode: str = "full"
) -> dg.ExecuteInProcessResult:
    run_config = {**QUIET, "ops": {"models_table": {"config": {"mode": mode}}}}
    result = defs.resolve_job_def("refresh_fal_catalog").execute_in_process(
        run_config=run_config, instance=instance
    )
    assert result.success
    return result


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'genfeed.sqlite3'}"
    return request.getfixturevalue("postgres_url")


def test_refresh_syncs_exactly_the_expected_rows(
    fal_emulator: FalEmulator, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAL_KEY", TEST_FAL_KEY)
    monkeypatch.setenv("GENFEED_DATABASE_URL", database_url)
    settings = PipelineSettings.from_env(
        {
            "FAL_KEY": TEST_FAL_KEY,
            "GENFEED_DATABASE_URL": database_url,
            "GENFEED_DATA_DIR": str(tmp_path / "data"),
            "FAL_API_BASE_URL": fal_emulator.base_url,
            "FAL_OPENAPI_URL": fal_emulator.openapi_url,
        }
    )
    defs = build_definitions(settings)
    engine = create_catalog_engine(database_url)
    app_created_table(engine)
    catalog = fal_emulator.catalog

    with dg.instance_for_test() as instance:
        first = run_refresh(defs, instance)
        rows = table_rows(engine)
        summary = first.output_for_node("models_table")
        assert summary.new == 1181 and summary.changed == 1 and summary.removed == 0
        assert len(rows) == 1183

        app_row = rows[APP_FAL_ROW]  # GenFeed's own fal row: enriched in place, its owner's fields kept
        assert app_row["managed_by"] is None and app_row["name"] == "FLUX dev (GenFeed)"
        assert app_row["pricing"] in ({"fixedPrice": 0.02}, '{"fixedPrice": 0.02}')
        assert app_row["enabled"] in (False, 0)
        assert app_row["unit"] == "megapixel" and Decimal(app_row["unit_price"]) == Decimal("0.025")
        assert app_row["input_schema"] is not None and app_row["status"] == "active"
        other = rows[APP_OTHER_ROW]
        assert other["name"] == "GPT Image" and other["provider"] == "openai" and other["unit"] is None

        schnell = rows[REPRICED_MODEL]
        assert schnell["managed_by"] == "fal_catalog" and bool(schnell["enabled"]) is True
        assert Decimal(schnell["unit_price"]) == Decimal("0.003")
        assert Decimal(schnell["cost_per_call"]) == Decimal("0.003")  # landscape_4_3: 0.75 MP → 1 MP
        assert Decimal(schnell["price_per_call"]) == Decimal("0.01")  # 0.003 ÷ 0.3
        assert bool(rows[OPERATOR_DISABLED]["enabled"]) is True
        assert_pricing_contract(engine)

        # Between the runs: fal adds, removes and reprices; an operator disables a model.
        catalog.add_model(
            NEW_MODEL,
            {**catalog.models[REPRICED_MODEL], "display_name": "FLUX schnell turbo"},
            price={"unit_price": Decimal("0.002"), "unit": "megapixels", "currency": "USD"},
            openapi=copy.deepcopy(catalog.openapi[REPRICED_MODEL]),
        )
        catalog.remove_model(REMOVED_MODEL)
        catalog.set_price(REPRICED_MODEL, "0.004", "megapixels")
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE models SET enabled = FALSE WHERE id = :id"), {"id": OPERATOR_DISABLED}
            )
        before = table_rows(engine)

        second = run_refresh(defs, instance)
        after = table_rows(engine)
        summary = second.output_for_node("models_table")
        assert (summary.new, summary.changed, summary.removed) == (1, 2, 1)
        assert set(after) == set(before) | {NEW_MODEL}
        changed = {endpoint_id for endpoint_id in before if before[endpoint_id] != after[endpoint_id]}
        assert changed == {REMOVED_MODEL, REPRICED_MODEL, OPERATOR_DISABLED}

        assert after[NEW_MODEL]["managed_by"] == "fal_catalog" and bool(after[NEW_MODEL]["enabled"]) is True
        assert after[REMOVED_MODEL]["status"] == "removed" and bool(after[REMOVED_MODEL]["enabled"]) is False
        assert Decimal(after[REPRICED_MODEL]["unit_price"]) == Decimal("0.004")
        assert Decimal(after[REPRICED_MODEL]["price_per_call"]) == Decimal("0.0134")
        assert after[REPRICED_MODEL]["last_synced_at"] > before[REPRICED_MODEL]["last_synced_at"]
        disabled = after[OPERATOR_DISABLED]
        assert bool(disabled["enabled"]) is False and bool(disabled["operator_enabled"]) is False
        assert bool(disabled["enabled_by_sync"]) is False

        third = run_refresh(defs, instance)
        assert table_rows(engine) == after
        summary = third.output_for_node("models_table")
        assert (summary.new, summary.changed, summary.removed, summary.unchanged) == (0, 0, 0, 1182)

        catalog.set_price(REPRICED_MODEL, "0.005", "megapixels")
        dry = run_refresh(defs, instance, mode="dry_run")
        assert table_rows(engine) == after
        assert [c.endpoint_id for c in dry.output_for_node("models_table").changes] == [REPRICED_MODEL]

    with engine.connect() as connection:
        runs = connection.execute(
            sa.text("SELECT mode, source, new_count, removed_count FROM sync_runs ORDER BY id")
        )
        assert [tuple(r) for r in runs] == [
            ("full", "live", 1181, 0),
            ("full", "live", 1, 1),
            ("full", "live", 0, 0),
        ]
    engine.dispose()


def assert_pricing_contract(engine: sa.Engine) -> None:
    """The contract's `pricing` and `rate_card` paragraphs, read from the raw column text."""
    query = sa.text(
        "SELECT id, managed_by, CAST(pricing AS TEXT) AS pricing, CAST(rate_card AS TEXT) AS rate_card, "
        "unit, cost_per_call, price_per_call FROM models WHERE provider = 'fal'"
    )
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    cards = 0
    for row in rows:
        card = exact_json.loads(row["rate_card"]) if row["rate_card"] not in (None, "null") else None
        assert (card is None) == (row["cost_per_call"] is None), row["id"]
        if card is None:
            continue
        cards += 1
        assert schema_errors(card) == [], row["id"]
        at_defaults = evaluate(card)
        assert at_defaults.cost == Decimal(row["cost_per_call"]), row["id"]
        assert Decimal(row["cost_per_call"]).as_tuple().exponent >= -10, row["id"]
        assert at_defaults.price == Decimal(row["price_per_call"]), row["id"]
        if row["managed_by"] is None:
            continue
        pricing = exact_json.loads(row["pricing"])
        prices = {key: value for key, value in pricing.items() if key != "unit"}
        assert prices and all(isinstance(value, int | Decimal) for value in prices.values()), row["id"]
        assert not any(isinstance(value, str) for value in prices.values()), row["id"]
        assert ("perMegapixel" in pricing) == (card["quantity"]["kind"] == "megapixel"), row["id"]
    assert cards == 676  # every model priced before rate cards keeps one
    schnell = next(row for row in rows if row["id"] == REPRICED_MODEL)
    assert exact_json.loads(schnell["pricing"]) == {"image": Decimal("0.01"), "perMegapixel": Decimal("0.01")}
    assert '"image":0.01' in schnell["pricing"].replace(" ", "")  # a number, exactly as written


def test_migration_adopts_the_app_table_and_is_idempotent(tmp_path: Path) -> None:
    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'app.sqlite3'}")
    app_created_table(engine)
    assert upgrade_to_head(engine) == upgrade_to_head(engine)
    rows = table_rows(engine)
    assert set(rows) == {APP_FAL_ROW, APP_OTHER_ROW}
    with engine.begin() as connection:  # the app's own insert of the six original fields still works
        connection.execute(
            sa.text(
                "INSERT INTO models (id, name, provider, category, pricing, enabled) "
                "VALUES ('x/y', 'X', 'fal', 'image', NULL, TRUE)"
            )
        )
    assert table_rows(engine)["x/y"]["status"] == "active"
