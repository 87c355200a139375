"""The catalog's guards end to end: breaking changes held, drift flagged, completeness blocking, alerts sent.

Two refreshes run against the emulator with known mutations between them; every check's verdict is
asserted model by model, and a webhook receiver on 127.0.0.1 checks each message's signature.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from genfeed_pipeline.assets.sync import enabled_models_valid_and_priced
from genfeed_pipeline.db.engine import create_catalog_engine
from genfeed_pipeline.db.tables import models
from genfeed_pipeline.definitions import build_definitions
from genfeed_pipeline.resources import (
    CatalogCheckSettings,
    CatalogDatabase,
    ClockResource,
    PricingPolicyResource,
    WebhookResource,
)
from genfeed_pipeline.sensors import alert_on_failed_checks, alert_on_failed_refresh, alert_on_overdue_catalog
from genfeed_pipeline.settings import PipelineSettings
from genfeed_pipeline.sync.history import accept, held_changes, price_on, schema_history
from genfeed_pipeline.sync.store import CatalogStore
from genfeed_pipeline_tests.conftest import TEST_FAL_KEY
from genfeed_pipeline_tests.fal_emulator import FalEmulator, Fault
from genfeed_pipeline_tests.webhook_receiver import WebhookReceiver

REQUIRED_INPUT_REMOVED = "fal-ai/flux/dev"
TYPE_CHANGED = "fal-ai/flux-lora"
OPTIONAL_INPUT_ADDED = "fal-ai/ideogram/v2"
PRICE_UP_6 = "fal-ai/flux/schnell"
PRICE_UP_4 = "fal-ai/flux-pro/v1.1"
UNIT_CHANGED = "fal-ai/ideogram/v2/turbo"
REMOVED = "fal-ai/stable-diffusion-v35-large"
QUANTITY_RULE_CHANGED = "fal-ai/clarity-upscaler"  # gains a num_images input: same cost, a new rule
SECRET = "webhook-secret-for-tests-3c1f"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def input_component(document: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
    body = document["paths"][f"/{endpoint_id}"]["post"]["requestBody"]["content"]["application/json"]
    return document["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[-1]]


def mutate_schema(emulator: FalEmulator, endpoint_id: str, change) -> None:
    document = copy.deepcopy(emulator.catalog.openapi[endpoint_id])
    change(input_component(document, endpoint_id))
    emulator.catalog.set_openapi(endpoint_id, document)


def remove_prompt(schema: dict[str, Any]) -> None:
    del schema["properties"]["prompt"]
    schema["required"] = [name for name in schema.get("required", []) if name != "prompt"]


def retype_steps(schema: dict[str, Any]) -> None:
    schema["properties"]["num_inference_steps"] = {"type": "string", "default": "28"}


def add_optional_style(schema: dict[str, Any]) -> None:
    schema["properties"]["style_preset"] = {"type": "string", "description": "a new optional input"}


def add_output_count(schema: dict[str, Any]) -> None:
    schema["properties"]["num_images"] = {"type": "integer", "default": 1, "minimum": 1, "maximum": 4}


def table_rows(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    """Every row of `models`, read through the table definition (JSON columns decoded)."""
    with engine.connect() as connection:
        return {row["id"]: dict(row) for row in connection.execute(sa.select(models)).mappings()}


def refresh(defs: dg.Definitions, instance: dg.DagsterInstance, **kwargs: Any) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("refresh_fal_catalog").execute_in_process(
        run_config=QUIET, instance=instance, **kwargs
    )


def verdicts(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


@pytest.fixture
def pipeline(fal_emulator: FalEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    receiver = WebhookReceiver(secret=SECRET)
    receiver.start()
    database_url = f"sqlite:///{tmp_path / 'genfeed.sqlite3'}"
    env = {
        "FAL_KEY": TEST_FAL_KEY,
        "GENFEED_DATABASE_URL": database_url,
        "GENFEED_DATA_DIR": str(tmp_path / "data"),
        "FAL_API_BASE_URL": fal_emulator.base_url,
        "FAL_OPENAPI_URL": fal_emulator.openapi_url,
        "GENFEED_WEBHOOK_URLS": receiver.url,
        "GENFEED_WEBHOOK_SECRET": SECRET,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    defs = build_definitions(PipelineSettings.from_env(env))
    engine = create_catalog_engine(database_url)
    with dg.instance_for_test() as instance:
        yield defs, instance, engine, receiver, Path(tmp_path / "genfeed.sqlite3")
    engine.dispose()
    receiver.stop()


def test_two_refreshes_flag_exactly_the_mutated_models(pipeline, fal_emulator: FalEmulator) -> None:
    defs, instance, engine, receiver, _ = pipeline
    catalog = fal_emulator.catalog
    first = refresh(defs, instance)
    assert first.success and all(v.passed for v in verdicts(first).values())
    before = table_rows(engine)
    seen = len(receiver.requests)

    mutate_schema(fal_emulator, REQUIRED_INPUT_REMOVED, remove_prompt)
    mutate_schema(fal_emulator, TYPE_CHANGED, retype_steps)
    mutate_schema(fal_emulator, OPTIONAL_INPUT_ADDED, add_optional_style)
    mutate_schema(fal_emulator, QUANTITY_RULE_CHANGED, add_output_count)
    for endpoint_id, factor in ((PRICE_UP_6, Decimal("1.06")), (PRICE_UP_4, Decimal("1.04"))):
        price = catalog.prices[endpoint_id]
        catalog.set_price(endpoint_id, Decimal(str(price["unit_price"])) * factor, price["unit"])
    catalog.set_price(UNIT_CHANGED, catalog.prices[UNIT_CHANGED]["unit_price"], "megapixels")
    catalog.remove_model(REMOVED)

    second = refresh(defs, instance)
    assert second.success  # neither breaking changes nor drift block the run
    checks = verdicts(second)

    breaking = checks["breaking_schema_changes"]
    assert not breaking.passed and breaking.severity == dg.AssetCheckSeverity.WARN
    assert breaking.metadata["breaking_models"].value == sorted([REQUIRED_INPUT_REMOVED, TYPE_CHANGED])
    assert OPTIONAL_INPUT_ADDED in breaking.metadata["non_breaking_models"].value

    drift = checks["pricing_drift"]
    assert not drift.passed
    assert drift.metadata["drifted_models"].value == sorted([PRICE_UP_6, UNIT_CHANGED, QUANTITY_RULE_CHANGED])
    rule_change = next(
        row
        for row in drift.metadata["drift"].value.records
        if row.data["endpoint_id"] == QUANTITY_RULE_CHANGED
    )
    assert rule_change.data["field"] == "quantity" and '"input":null' in rule_change.data["old"]
    assert '"input":"num_images"' in rule_change.data["new"]
    assert Decimal(table_rows(engine)[QUANTITY_RULE_CHANGED]["cost_per_call"]) == Decimal(
        before[QUANTITY_RULE_CHANGED]["cost_per_call"]
    )
    assert checks["catalog_completeness"].passed and checks["unique_endpoint_ids"].passed
    assert checks["cloud_price_not_below_cost"].passed

    after = table_rows(engine)
    held = after[REQUIRED_INPUT_REMOVED]
    assert "prompt" in held["input_schema"]["properties"], "the last good schema stays"
    assert held["mapped_hash"] == before[REQUIRED_INPUT_REMOVED]["mapped_hash"]
    assert "prompt" in held["review_reason"] and not held["enabled"]
    assert after[TYPE_CHANGED]["review_reason"] and not after[TYPE_CHANGED]["enabled"]
    assert "style_preset" in after[OPTIONAL_INPUT_ADDED]["input_schema"]["properties"]
    assert after[OPTIONAL_INPUT_ADDED]["review_reason"] is None and after[OPTIONAL_INPUT_ADDED]["enabled"]
    assert after[REMOVED]["status"] == "removed"
    assert Decimal(after[PRICE_UP_4]["unit_price"]) == Decimal(before[PRICE_UP_4]["unit_price"]) * Decimal(
        "1.04"
    )

    with engine.connect() as connection:
        history = connection.execute(
            sa.text(
                "SELECT endpoint_id, status FROM model_schema_history "
                "WHERE status = 'held' ORDER BY endpoint_id"
            )
        ).all()
        assert [tuple(row) for row in history] == sorted(
            [(REQUIRED_INPUT_REMOVED, "held"), (TYPE_CHANGED, "held")]
        )
        prices = connection.execute(
            sa.text("SELECT unit_price FROM model_price_history WHERE endpoint_id = :id ORDER BY seen_at"),
            {"id": PRICE_UP_6},
        ).scalars()
        assert [Decimal(p) for p in prices] == [Decimal("0.003"), Decimal("0.00318")]

    receiver.wait_for(seen + 1, timeout=10)
    changed = next(r for r in receiver.requests[seen:] if r.json["type"] == "catalog.changed")
    assert changed.signature_valid
    expected = "sha256=" + hmac.new(SECRET.encode(), changed.body, hashlib.sha256).hexdigest()
    assert changed.headers["x-genfeed-signature"] == expected
    assert [item["endpoint_id"] for item in changed.json["removed"]] == [REMOVED]
    assert {item["endpoint_id"] for item in changed.json["price_changes"]} == {
        PRICE_UP_6,
        PRICE_UP_4,
        UNIT_CHANGED,
    }
    assert {item["endpoint_id"] for item in changed.json["held"]} == {REQUIRED_INPUT_REMOVED, TYPE_CHANGED}

    run = instance.get_run_by_id(second.run_id)
    success_record = instance.get_records_for_run(second.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
    success_event = success_record.records[0].event_log_entry.dagster_event
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_failed_checks",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=success_event,
        resources={"alerts": WebhookResource(urls=receiver.url, secret=SECRET)},
    )
    alert_on_failed_checks(context)
    alert = next(r for r in receiver.requests if r.json["type"] == "catalog.check_failed")
    assert alert.signature_valid
    assert {c["check_name"] for c in alert.json["failed_checks"]} == {
        "breaking_schema_changes",
        "pricing_drift",
    }

    store = CatalogStore(engine)
    with engine.connect() as connection:
        between = price_on(connection, PRICE_UP_6, instance.get_run_record_by_id(run.run_id).create_timestamp)
        assert between["unit_price"] == Decimal("0.003")
        held_now = held_changes(connection)
        assert {h.endpoint_id for h in held_now} == {REQUIRED_INPUT_REMOVED, TYPE_CHANGED}
        removed_prompt = next(h for h in held_now if h.endpoint_id == REQUIRED_INPUT_REMOVED)
        assert any(c.path == "prompt" and c.breaking for c in removed_prompt.changes)
        statuses = [h["status"] for h in schema_history(connection, REQUIRED_INPUT_REMOVED)]
        assert statuses == ["accepted", "held"]
    now = datetime.now(UTC)
    with store.locked_transaction() as connection:
        accepted = accept(connection, [REQUIRED_INPUT_REMOVED, OPTIONAL_INPUT_ADDED], now=now)
    assert accepted == [REQUIRED_INPUT_REMOVED]
    shipped = table_rows(engine)[REQUIRED_INPUT_REMOVED]
    assert "prompt" not in shipped["input_schema"]["properties"]
    assert shipped["review_reason"] is None and shipped["enabled"]

    third = refresh(defs, instance)
    assert verdicts(third)["breaking_schema_changes"].metadata["breaking_models"].value == [TYPE_CHANGED]
    assert table_rows(engine)[REQUIRED_INPUT_REMOVED]["review_reason"] is None


def test_completeness_stops_the_sync_and_the_table_stays_byte_for_byte(
    pipeline, fal_emulator: FalEmulator
) -> None:
    defs, instance, engine, receiver, database_file = pipeline
    assert refresh(defs, instance).success
    engine.dispose()
    before = hashlib.sha256(database_file.read_bytes()).hexdigest()
    fal_emulator.catalog.set_price(PRICE_UP_6, "0.01", "megapixels")
    fal_emulator.inject(
        Fault(
            path="/v1/models",
            kind="status",
            status=500,
            times=None,
            match=lambda r: r.query.get("status") == ["active"],
        )
    )

    result = refresh(defs, instance, raise_on_error=False)

    assert not result.success
    completeness = verdicts(result)["catalog_completeness"]
    assert not completeness.passed and "model list failed" in completeness.description
    steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert "models_table" not in steps and "fal_openapi_schemas" not in steps
    engine.dispose()
    assert hashlib.sha256(database_file.read_bytes()).hexdigest() == before

    seen = len(receiver.requests)
    failure = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_failed_refresh",
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        dagster_event=failure.records[0].event_log_entry.dagster_event,
        resources={"alerts": WebhookResource(urls=receiver.url, secret=SECRET)},
    ).for_run_failure()
    alert_on_failed_refresh(context)
    alert = receiver.wait_for(seen + 1, timeout=10)[seen]
    assert alert.signature_valid and alert.json["type"] == "catalog.run_failed"
    assert "catalog_completeness" in alert.json["error"]


def test_overdue_alert_fires_once_with_a_controlled_clock(pipeline) -> None:
    defs, instance, _, receiver, _ = pipeline
    assert refresh(defs, instance).success
    synced = datetime.fromtimestamp(
        instance.get_latest_materialization_event(dg.AssetKey("models_table")).timestamp, UTC
    )
    alerts = WebhookResource(urls=receiver.url, secret=SECRET)
    seen = len(receiver.requests)

    def tick(at: datetime, cursor: str | None = None):
        context = dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={"alerts": alerts, "clock": ClockResource(fixed_time=at.isoformat())},
        )
        return alert_on_overdue_catalog(context), context.cursor

    on_time, cursor = tick(synced + timedelta(hours=6))
    assert isinstance(on_time, dg.SkipReason) and len(receiver.requests) == seen
    _, cursor = tick(synced + timedelta(hours=6, minutes=31), cursor)
    receiver.wait_for(seen + 1, timeout=10)
    again, cursor = tick(synced + timedelta(hours=8), cursor)
    assert isinstance(again, dg.SkipReason) and len(receiver.requests) == seen + 1
    overdue = receiver.requests[seen]
    assert overdue.signature_valid and overdue.json["type"] == "catalog.overdue"


def test_enabled_models_check_flags_every_row_the_enable_rule_blocks(pipeline) -> None:
    """Rows GenFeed's app enabled against the rule: removed, held, invalid, and (cloud) without a price. The
    check names exactly those, each with the rule's reason, and passes the rows enabled by policy."""
    defs, instance, engine, _, database_path = pipeline
    assert refresh(defs, instance).success
    rows = table_rows(engine)
    enabled = sorted(i for i, row in rows.items() if row["enabled"] and row["cost_per_call"] is not None)
    removed, held, invalid, unpriced = enabled[:4]
    changes = {
        removed: {"status": "removed"},
        held: {"review_reason": "required input 'prompt' removed"},
        invalid: {"validation_errors": ["no price"]},
        unpriced: {"cost_per_call": None},
    }
    with engine.begin() as connection:
        for endpoint_id, values in changes.items():
            connection.execute(sa.update(models).where(models.c.id == endpoint_id).values(**values))

    result = enabled_models_valid_and_priced(
        database=CatalogDatabase(url=f"sqlite:///{database_path}"),
        pricing=PricingPolicyResource(),
        catalog_checks=CatalogCheckSettings(),
    )
    assert not result.passed
    offending = {
        record.data["endpoint_id"]: record.data["problems"]
        for record in result.metadata["offending_models"].value.records
    }
    assert offending == {
        removed: "removed by fal",
        held: "held for review: required input 'prompt' removed",
        invalid: "invalid: no price",
        unpriced: "no cost per call",
    }
