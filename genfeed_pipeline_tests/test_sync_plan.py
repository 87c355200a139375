"""The sync planner's rules, on hand-made rows and models (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from genfeed_pipeline.fal.catalog import DataSource, PriceLookup, PriceQuote, PriceStatus
from genfeed_pipeline.mapping.model import GenFeedModel, ModelType
from genfeed_pipeline.pricing import PricedModel, PricingPolicy, price_model
from genfeed_pipeline.settings import Deployment
from genfeed_pipeline.sync.completeness import judge_completeness
from genfeed_pipeline.sync.plan import Action, SyncContext, SyncMode, SyncPlanner, model_values

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
CLOUD = PricingPolicy(deployment=Deployment.CLOUD)


def priced(
    endpoint_id: str, unit_price: str | None = "0.04", *, schema_error: str | None = None
) -> PricedModel:
    model = GenFeedModel(
        endpoint_id=endpoint_id,
        name=endpoint_id.rsplit("/", 1)[-1],
        category=ModelType.IMAGE,
        fal_category="text-to-image",
        status="active",
        owner=endpoint_id.split("/")[0],
        input_schema={"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]},
        output_schema={"type": "object", "properties": {"images": {"type": "array"}}},
        schema_status="fetched",
        validation_errors=(schema_error,) if schema_error else (),
    )
    if unit_price is None:
        return price_model(model, PriceLookup(PriceStatus.NO_PRICE), CLOUD)
    quote = PriceQuote(endpoint_id, Decimal(unit_price), "images", "USD", DataSource.LIVE, NOW)
    return price_model(model, PriceLookup(PriceStatus.PRICED, quote), CLOUD)


def context(**overrides) -> dict:
    """What a run knows before it syncs: the mode and source, and the listing's facts (`complete_listing`,
    `previous_endpoints_seen`, `requested_endpoint_ids`) that the verdict is judged on."""
    values = {"mode": SyncMode.FULL, "source": DataSource.LIVE, "data_as_of": NOW, "now": NOW}
    return {**values, **overrides}


def plan(existing, models, ctx=None, held=None):
    facts = dict(ctx or context())
    complete = facts.pop("complete_listing", True)
    previous = facts.pop("previous_endpoints_seen", None)
    verdict = judge_completeness(
        complete=complete,
        list_errors=[],
        endpoints=len(models),
        previous_endpoints=previous,
        drop_threshold=0.10,
        whole_catalog=facts.get("requested_endpoint_ids") is None,
        source=facts["source"].value,
    )
    planner = SyncPlanner(SyncContext(**facts, completeness=verdict), held)
    return planner.plan(existing, {m.endpoint_id: m for m in models})


def synced_row(model: PricedModel, **overrides) -> dict:
    """The row a previous sync left for `model`."""
    row = model_values(model) | {
        "id": model.endpoint_id,
        "managed_by": "fal_catalog",
        "enabled": True,
        "enabled_by_sync": True,
        "operator_enabled": None,
        "review_reason": None,
        "data_as_of": NOW - timedelta(hours=6),
        "last_synced_at": NOW - timedelta(hours=6),
    }
    return row | overrides


def test_new_models_are_inserted_enabled_by_policy() -> None:
    result = plan({}, [priced("fal-ai/a"), priced("fal-ai/b", unit_price=None)])
    inserts = {c.endpoint_id: c.values for c in result.changes}
    assert inserts["fal-ai/a"]["enabled"] is True and inserts["fal-ai/a"]["managed_by"] == "fal_catalog"
    assert inserts["fal-ai/b"]["enabled"] is False  # no price: invalid, so off
    assert inserts["fal-ai/a"]["price_per_call"] == Decimal("0.1334")


def test_unchanged_model_writes_nothing() -> None:
    model = priced("fal-ai/a")
    result = plan({"fal-ai/a": synced_row(model)}, [model])
    assert result.changes == [] and result.unchanged == 1


def test_operator_choice_is_kept_through_removal_and_return() -> None:
    model = priced("fal-ai/a")
    disabled_by_operator = synced_row(model, enabled=False)
    first = plan({"fal-ai/a": disabled_by_operator}, [model])
    change = first.changes[0]
    assert change.values == {"operator_enabled": False, "enabled_by_sync": False} | {
        k: change.values[k] for k in ("last_synced_at", "data_as_of")
    }
    row = disabled_by_operator | change.values

    removed = plan({"fal-ai/a": row}, [priced("fal-ai/other")]).changes
    removal = next(c for c in removed if c.endpoint_id == "fal-ai/a")
    assert removal.action == Action.REMOVE and removal.values["status"] == "removed"
    row |= removal.values
    assert row["enabled"] is False and row["operator_enabled"] is False

    back = plan({"fal-ai/a": row}, [model]).changes[0]
    assert back.values["status"] == "active" and "enabled" not in back.values  # still the operator's "off"


def test_operator_enable_survives_and_undo_returns_to_policy() -> None:
    model = priced("fal-ai/a")
    row = synced_row(model, enabled=True, enabled_by_sync=False)  # policy said off, operator turned it on
    change = plan({"fal-ai/a": row}, [model]).changes[0]
    assert change.values["operator_enabled"] is True and change.values["enabled_by_sync"] is True
    undone = synced_row(model, enabled=True, enabled_by_sync=True, operator_enabled=None)
    assert plan({"fal-ai/a": undone}, [model]).changes == []


def test_rows_the_pipeline_did_not_insert_keep_name_pricing_and_enabled() -> None:
    model = priced("fal-ai/a", unit_price="0.05")
    row = {
        "id": "fal-ai/a",
        "name": "Our A",
        "provider": "fal",
        "category": "image",
        "pricing": {"fixedPrice": 0.02},
        "enabled": False,
        "managed_by": None,
        "status": "active",
    }
    change = plan({"fal-ai/a": row}, [model]).changes[0]
    assert not {"name", "pricing", "enabled", "enabled_by_sync", "category", "provider"} & set(change.values)
    assert change.values["unit_price"] == Decimal("0.05") and change.values["input_schema"] is not None


@pytest.mark.parametrize(
    ("overrides", "warning"),
    [
        ({"source": DataSource.CACHE}, "nothing is marked removed"),
        ({"complete_listing": False}, "incomplete"),
        ({"previous_endpoints_seen": 20}, "below the last run's 20"),
        ({"requested_endpoint_ids": ("fal-ai/keep",)}, None),
    ],
)
def test_nothing_is_removed_unless_the_listing_is_live_whole_and_complete(overrides, warning) -> None:
    gone = priced("fal-ai/gone")
    keep = priced("fal-ai/keep")
    result = plan(
        {"fal-ai/gone": synced_row(gone), "fal-ai/keep": synced_row(keep)}, [keep], context(**overrides)
    )
    assert result.removed == 0
    if warning:
        assert any(warning in w for w in result.warnings)


def test_offline_run_never_replaces_newer_data() -> None:
    model = priced("fal-ai/a", unit_price="0.05")
    row = synced_row(priced("fal-ai/a"), data_as_of=NOW)
    older = context(source=DataSource.SNAPSHOT, data_as_of=NOW - timedelta(days=200))
    assert plan({"fal-ai/a": row}, [model], older).changes == []


def test_failed_price_fetch_keeps_the_last_good_price_and_state() -> None:
    good = priced("fal-ai/a")
    failed = price_model(good.model, PriceLookup(PriceStatus.FAILED, error="HTTP 500"), CLOUD)
    assert not failed.valid  # on its own the model looks invalid ...
    result = plan({"fal-ai/a": synced_row(good)}, [failed])
    assert result.failed == 1 and result.changes == []  # ... but the row keeps its price, errors and enabled

    disabled_meanwhile = synced_row(good, enabled=False)
    change = plan({"fal-ai/a": disabled_meanwhile}, [failed]).changes[0]
    assert change.values["operator_enabled"] is False and "unit_price" not in change.values


def test_pricing_only_touches_prices_and_inserts_nothing() -> None:
    model = priced("fal-ai/a", unit_price="0.05")
    row = synced_row(priced("fal-ai/a"), name="old name")
    result = plan({"fal-ai/a": row}, [model, priced("fal-ai/new")], context(mode=SyncMode.PRICING_ONLY))
    assert [c.endpoint_id for c in result.changes] == ["fal-ai/a"]
    assert "name" not in result.changes[0].values and result.changes[0].values["unit_price"] == Decimal(
        "0.05"
    )


def test_existing_only_enriches_without_inserting() -> None:
    row = synced_row(priced("fal-ai/a"), name="old name")
    result = plan(
        {"fal-ai/a": row}, [priced("fal-ai/a"), priced("fal-ai/new")], context(mode=SyncMode.EXISTING_ONLY)
    )
    assert [c.endpoint_id for c in result.changes] == ["fal-ai/a"]
    assert result.changes[0].values["name"] == "a"


def test_held_model_keeps_its_schema_and_is_disabled() -> None:
    model = priced("fal-ai/a")
    row = synced_row(model, mapped_hash="old", input_schema={"old": True})
    change = plan({"fal-ai/a": row}, [model], held={"fal-ai/a": "input removed: seed"}).changes[0]
    assert "input_schema" not in change.values and "mapped_hash" not in change.values
    assert change.values["review_reason"] == "input removed: seed" and change.values["enabled"] is False
