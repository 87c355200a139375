"""Operator actions on a really synced catalog: enable/disable by id and by filter, undo, refusals,
the audit record, accepting held changes and applying the profitability report's recommendations."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from genfeed_pipeline.admin import (
    AdminError,
    ModelFilter,
    OperatorAction,
    UnknownModel,
    accept_changes,
    apply_recommendations,
    has_operator_choice,
    plan_change,
    policy_target,
    set_enabled,
)
from genfeed_pipeline.admin.actions import Skipped
from genfeed_pipeline.db.migrate import head_revision, upgrade_to_head
from genfeed_pipeline.db.tables import model_admin_actions
from genfeed_pipeline.pricing import PricingPolicy
from genfeed_pipeline.settings import Deployment
from genfeed_pipeline.sync.enabled import policy_verdict, row_state
from genfeed_pipeline.sync.history import schema_history
from genfeed_pipeline.sync.store import CatalogStore
from genfeed_pipeline_tests.test_admin_support import (
    APP_ROW,
    DEPRECATED,
    FLUX_DEV,
    HELD,
    INVALID,
    POLICY_OFF,
    REMOVED,
    Catalog,
    catalog_fixture,  # noqa: F401
    postgres_catalog_fixture,  # noqa: F401
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
BRIA_IMAGES = ModelFilter(owner="bria", category="image")


def disable_bria_images(store: CatalogStore, **kwargs) -> None:
    outcome = set_enabled(
        store,
        "disable",
        model_filter=BRIA_IMAGES,
        reason="bria contract paused",
        actor="alice",
        now=NOW,
        **kwargs,
    )
    assert len(outcome.changes) == 17 and not outcome.skipped


def assert_bria_images_disabled_by_alice(catalog: Catalog) -> None:
    rows = [row for row in catalog.rows().values() if BRIA_IMAGES.matches(row)]
    assert len(rows) == 17
    for row in rows:
        assert not row["enabled"] and row["operator_enabled"] is False
        assert row["operator_reason"] == "bria contract paused" and row["operator_changed_at"] == NOW


def operator_choice_survives_a_refresh_and_undo_returns_to_policy(catalog: Catalog) -> None:
    store = CatalogStore(catalog.engine)
    before = catalog.rows()
    enabled_before = {i for i, row in before.items() if BRIA_IMAGES.matches(row) and row["enabled"]}
    assert enabled_before == {"bria/fibo/generate", "bria/reimagine/3.2", "bria/text-to-image/3.2"}

    disable_bria_images(store)
    assert_bria_images_disabled_by_alice(catalog)
    audit = catalog.audit()
    assert len(audit) == 17
    assert {(a["action"], a["actor"], a["reason"], a["at"]) for a in audit} == {
        ("disable", "alice", "bria contract paused", NOW)
    }
    assert {a["endpoint_id"] for a in audit if a["before_enabled"]} == enabled_before
    assert not any(a["after_enabled"] for a in audit)

    catalog.refresh()
    assert_bria_images_disabled_by_alice(catalog)

    outcome = set_enabled(store, "undo", model_filter=BRIA_IMAGES, reason=None, actor="bob", now=NOW)
    assert len(outcome.changes) == 17
    after_undo = catalog.rows()
    for endpoint_id, row in after_undo.items():
        if BRIA_IMAGES.matches(row):
            assert row["operator_enabled"] is None and row["operator_reason"] is None
            assert bool(row["enabled"]) is row_state(row).policy.enabled is (endpoint_id in enabled_before)
            assert row["enabled_by_sync"] == row["enabled"]
    undo_rows = catalog.audit()[17:]
    assert {(a["action"], a["actor"], a["reason"]) for a in undo_rows} == {("undo", "bob", "operator undo")}

    again = catalog.sync_again()  # the sync sees no operator choice left: nothing to change
    assert not any(BRIA_IMAGES.matches(after_undo[c.endpoint_id]) for c in again.plan.changes)
    assert all(row["operator_enabled"] is None for row in catalog.rows().values() if BRIA_IMAGES.matches(row))


def test_disable_by_filter_survives_a_refresh_and_undo_returns_to_policy(catalog: Catalog) -> None:
    operator_choice_survives_a_refresh_and_undo_returns_to_policy(catalog)


def test_the_same_on_postgresql(postgres_catalog: Catalog) -> None:
    store = CatalogStore(postgres_catalog.engine)
    disable_bria_images(store)
    postgres_catalog.sync_again()
    assert_bria_images_disabled_by_alice(postgres_catalog)
    audit = postgres_catalog.audit()
    assert len(audit) == 17 and audit[0]["at"] == NOW and audit[0]["actor"] == "alice"
    set_enabled(store, "undo", model_filter=BRIA_IMAGES, reason="resumed", actor="bob")
    rows = postgres_catalog.rows()
    assert rows["bria/fibo/generate"]["enabled"] is True and rows[INVALID]["enabled"] is False
    assert all(row["operator_enabled"] is None for row in rows.values() if BRIA_IMAGES.matches(row))


def test_enabling_a_held_removed_or_invalid_model_is_refused_and_nothing_is_written(catalog: Catalog) -> None:
    store = CatalogStore(catalog.engine)
    before = catalog.rows()
    for refused, words in ((HELD, "held for review"), (REMOVED, "removed"), (INVALID, "invalid (no price)")):
        with pytest.raises(AdminError, match=re.escape(words)) as error:
            set_enabled(store, "enable", endpoint_ids=[POLICY_OFF, refused], reason="x", actor="a")
        assert "nothing was changed" in str(error.value)
    with pytest.raises(AdminError, match="genfeed-catalog accept fal-ai/ideogram/v2"):
        set_enabled(store, "enable", endpoint_ids=[HELD], reason="x", actor="a")
    assert catalog.rows() == before and catalog.audit() == []

    with pytest.raises(UnknownModel, match="did you mean fal-ai/flux/dev"):
        set_enabled(store, "disable", endpoint_ids=["fal-ai/flux/dex"], reason="x", actor="a")

    outcome = set_enabled(store, "disable", endpoint_ids=[HELD, REMOVED], reason="retired", actor="a")
    assert [c.endpoint_id for c in outcome.changes] == [HELD, REMOVED]  # disabling is always allowed
    assert catalog.row(HELD)["operator_enabled"] is False

    by_filter = set_enabled(
        store,
        "enable",
        model_filter=ModelFilter(owner="fal-ai", search="ideogram/v2"),
        reason="x",
        actor="a",
        dry_run=True,
    )
    assert HELD in {item.endpoint_id for item in by_filter.refused}  # a filter skips, and lists, refusals
    assert by_filter.changes and not by_filter.written


def test_bad_requests_are_refused_with_a_clear_message(catalog: Catalog) -> None:
    store = CatalogStore(catalog.engine)
    cases = [
        ({"endpoint_ids": []}, "by endpoint id or by a filter"),
        ({"endpoint_ids": [FLUX_DEV], "model_filter": BRIA_IMAGES}, "not both"),
        ({"endpoint_ids": [FLUX_DEV], "reason": " "}, "needs a reason"),
        ({"model_filter": ModelFilter(owner="nobody")}, "no model matches owner=nobody"),
    ]
    for kwargs, message in cases:
        arguments = {"reason": "why", "actor": "a"} | kwargs
        with pytest.raises(AdminError, match=message):
            set_enabled(store, "disable", **arguments)
    with pytest.raises(AdminError, match="enable, disable or undo"):
        set_enabled(store, "toggle", endpoint_ids=[FLUX_DEV], reason="x", actor="a")


def test_undo_on_a_row_genfeeds_app_owns_restores_the_apps_value(catalog: Catalog) -> None:
    store = CatalogStore(catalog.engine)
    assert catalog.row(APP_ROW)["managed_by"] is None and catalog.row(APP_ROW)["enabled"]
    set_enabled(
        store,
        "disable",
        endpoint_ids=[APP_ROW],
        reason="fixed price below cost",
        actor="a",
    )
    set_enabled(store, "enable", endpoint_ids=[APP_ROW], reason="changed my mind", actor="a")
    set_enabled(store, "disable", endpoint_ids=[APP_ROW], reason="no, off", actor="a")
    set_enabled(store, "undo", endpoint_ids=[APP_ROW], reason=None, actor="a")
    row = catalog.row(APP_ROW)
    assert (
        row["enabled"] is True and row["operator_enabled"] is None
    )  # the app's value before the first action
    assert [a["action"] for a in catalog.audit()] == ["disable", "enable", "disable", "undo"]
    nothing = set_enabled(store, "undo", endpoint_ids=[APP_ROW], reason=None, actor="a")
    assert nothing.changes == [] and nothing.skipped[0].why == "no operator choice to undo"


def synced(row: dict, deployment: str) -> dict:
    """The row with the policy verdict a sync in `deployment` stores on it (the enable rule's step 3)."""
    verdict = policy_verdict(
        valid=not row.get("validation_errors"),
        priced=row.get("cost_per_call") is not None,
        unit_known=True,
        stub=False,
        deployment=deployment,
    )
    return row | {"policy_enabled": verdict.enabled, "policy_reason": verdict.reason}


def test_undo_mirrors_the_planners_precedence() -> None:
    base = {
        "id": "fal-ai/x",
        "managed_by": "fal_catalog",
        "status": "active",
        "enabled": False,
        "enabled_by_sync": False,
        "operator_enabled": False,
        "validation_errors": None,
        "review_reason": None,
        "cost_per_call": Decimal("0.01"),
    }
    assert policy_target(synced(base, "cloud")) is True
    assert policy_target(synced(base | {"cost_per_call": None}, "cloud")) is False
    assert policy_target(synced(base | {"cost_per_call": None}, "core")) is True
    for forced_off in ({"status": "removed"}, {"review_reason": "held"}, {"validation_errors": ["no price"]}):
        assert policy_target(synced(base | forced_off, "core")) is False
    assert has_operator_choice(base)
    assert has_operator_choice(
        base | {"operator_enabled": None, "enabled": True}
    )  # toggled in GenFeed's admin
    assert not has_operator_choice(base | {"operator_enabled": None})
    base = synced(base, "cloud")
    change = plan_change(base, OperatorAction.UNDO, reason="r", now=NOW)
    assert not isinstance(change, Skipped)
    assert change.values == {
        "enabled": True,
        "enabled_by_sync": True,
        "operator_enabled": None,
        "operator_reason": None,
        "operator_changed_at": NOW,
    }
    same = plan_change(base, OperatorAction.DISABLE, reason="r", now=NOW)
    assert isinstance(same, Skipped) and not same.refused


def test_accept_ships_the_held_change_and_is_audited(catalog: Catalog) -> None:
    store = CatalogStore(catalog.engine)
    before = catalog.rows()
    assert before[HELD]["review_reason"] and not before[HELD]["enabled"]
    dry = accept_changes(store, [], actor="carol", reason=None, dry_run=True)
    assert [h.endpoint_id for h in dry.held] == [HELD]
    assert [c.describe() for c in dry.held[0].changes] == [
        "input legacy_style: removed (was string) (breaking)"
    ]
    assert catalog.rows() == before and catalog.audit() == []

    with pytest.raises(UnknownModel):
        accept_changes(store, ["fal-ai/nope"], actor="carol", reason=None)
    done = accept_changes(store, [HELD, FLUX_DEV], actor="carol", reason="looked at it", now=NOW)
    assert done.accepted == [HELD] and done.not_held == [FLUX_DEV]
    row = catalog.row(HELD)
    assert row["review_reason"] is None and row["enabled"] is True
    assert "legacy_style" not in row["input_schema"]["properties"]
    [audit] = catalog.audit()
    assert (audit["endpoint_id"], audit["action"], audit["actor"], audit["at"]) == (
        HELD,
        "accept",
        "carol",
        NOW,
    )
    assert (audit["before_enabled"], audit["after_enabled"]) == (False, True)
    assert audit["reason"].startswith("looked at it (was held: breaking schema change: input legacy_style")
    with catalog.engine.connect() as connection:
        assert [h["status"] for h in schema_history(connection, HELD)] == ["accepted", "accepted"]


def test_recommendations_dry_run_writes_nothing_then_apply_writes(catalog: Catalog) -> None:
    store = CatalogStore(catalog.engine)
    set_enabled(store, "disable", endpoint_ids=[FLUX_DEV], reason="too popular", actor="a")
    before, audit_before = catalog.rows(), catalog.audit()
    policy = PricingPolicy(deployment=Deployment.CLOUD)

    dry = apply_recommendations(store, policy, actor="dave")
    by_id = {item.endpoint_id: item for item in dry.items}
    assert {i for i, item in by_id.items() if item.apply} == {DEPRECATED, POLICY_OFF}
    assert (by_id[DEPRECATED].action, by_id[DEPRECATED].reason) == ("disable", "deprecated by fal")
    assert by_id[POLICY_OFF].action == "enable"
    reprice = by_id[APP_ROW]
    assert reprice.action == "reprice" and not reprice.apply and "never applied automatically" in reprice.note
    assert reprice.suggested_price == Decimal("0.01") and reprice.fal_cost == Decimal("0.003")
    assert not by_id[FLUX_DEV].apply and "a person's choice is kept" in by_id[FLUX_DEV].note
    assert by_id[HELD].action == "enable" and not by_id[HELD].apply and "held for review" in by_id[HELD].note
    assert catalog.rows() == before and catalog.audit() == audit_before and not dry.written

    with pytest.raises(AdminError, match="fixed prices belong to people"):
        apply_recommendations(store, policy, actor="dave", dry_run=False, actions=["reprice"])
    only_disable = apply_recommendations(store, policy, actor="dave", actions=["disable"])
    assert [item.endpoint_id for item in only_disable.to_apply] == [DEPRECATED]

    applied = apply_recommendations(store, policy, actor="dave", dry_run=False, now=NOW)
    assert sorted(c.endpoint_id for c in applied.changes) == sorted([DEPRECATED, POLICY_OFF])
    after = catalog.rows()
    assert after[DEPRECATED]["enabled"] is False and after[DEPRECATED]["operator_enabled"] is False
    assert after[POLICY_OFF]["enabled"] is True
    assert after[POLICY_OFF]["operator_reason"].startswith("recommendation: valid and priced")
    assert after[APP_ROW]["pricing"] == before[APP_ROW]["pricing"]
    new_audit = catalog.audit()[len(audit_before) :]
    assert {(a["endpoint_id"], a["action"], a["actor"]) for a in new_audit} == {
        (DEPRECATED, "apply_recommendation", "dave"),
        (POLICY_OFF, "apply_recommendation", "dave"),
    }
    assert {a["reason"] for a in new_audit} == {
        "recommendation: deprecated by fal",
        after[POLICY_OFF]["operator_reason"],
    }
    again = apply_recommendations(store, policy, actor="dave", dry_run=False)
    assert again.changes == []  # applied once: the report no longer asks


def test_model_filter() -> None:
    rows = [
        {
            "id": "fal-ai/a",
            "category": "image",
            "price_per_call": Decimal("0.05"),
            "status": "active",
            "capabilities": {"seed": True, "accepted_input_media": ["text", "image"]},
            "enabled": True,
        },
        {"id": "bria/b", "category": "image", "price_per_call": None, "status": "active", "name": "Bria B"},
        {"id": "fal-ai/c", "category": "video", "price_per_call": Decimal("0.5"), "status": "deprecated"},
    ]
    ids = lambda f: [row["id"] for row in f.select(rows)]  # noqa: E731
    assert ids(ModelFilter(category="IMAGE")) == ["bria/b", "fal-ai/a"]
    assert ids(ModelFilter(max_price="0.1")) == ["fal-ai/a"]
    assert ids(ModelFilter(min_price=0.05, max_price=Decimal("0.5"))) == ["fal-ai/a", "fal-ai/c"]
    assert ids(ModelFilter(capabilities=("seed", "input:image"))) == ["fal-ai/a"]
    assert ids(ModelFilter(owner="Bria")) == ["bria/b"] == ids(ModelFilter(search="bria b"))
    assert ids(ModelFilter(status="deprecated")) == ["fal-ai/c"]
    assert ids(ModelFilter(enabled=False)) == ["bria/b", "fal-ai/c"]
    assert ModelFilter().empty and ModelFilter(owner="x").describe() == "owner=x"
    for bad, message in (
        ({"category": "pictures"}, "type must be one of"),
        ({"status": "gone"}, "status must be one of"),
        ({"min_price": "cheap"}, "min price must be a price"),
        ({"min_price": 2, "max_price": 1}, "above max price"),
        ({"capabilities": ("sed",)}, "unknown capability sed"),
    ):
        with pytest.raises(AdminError, match=message):
            ModelFilter(**bad)


def test_migration_0003_is_idempotent_and_matches_the_table_definition(catalog: Catalog) -> None:
    assert upgrade_to_head(catalog.engine) == upgrade_to_head(catalog.engine) == head_revision()
    columns = {c["name"]: c for c in sa.inspect(catalog.engine).get_columns("model_admin_actions")}
    assert list(columns) == [c.name for c in model_admin_actions.c]
    assert all(columns[c.name]["nullable"] == c.nullable for c in model_admin_actions.c if not c.primary_key)
