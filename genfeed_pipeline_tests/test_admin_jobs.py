"""The admin jobs, run in process with typed config against a synced catalog, as the launchpad runs them."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from genfeed_pipeline.admin_jobs import (
    ADMIN_TAGS,
    AcceptSchemaChangesConfig,
    ApplyRecommendationsConfig,
    ModelAction,
    RecommendationAction,
    SetModelsEnabledConfig,
)
from genfeed_pipeline.definitions import build_definitions
from genfeed_pipeline_tests.test_admin_support import (
    DEPRECATED,
    HELD,
    POLICY_OFF,
    Catalog,
    catalog_fixture,  # noqa: F401
    offline_settings,
)

QUIET = {"console": {"config": {"log_level": "WARNING"}}}


@pytest.fixture
def run(catalog: Catalog):
    defs = build_definitions(offline_settings(catalog.database_url, catalog.data_dir))
    with dg.instance_for_test() as instance:

        def execute(job: str, op: str, config: dg.Config, **kwargs: Any) -> dg.ExecuteInProcessResult:
            return defs.resolve_job_def(job).execute_in_process(
                run_config=dg.RunConfig(ops={op: config}, loggers=QUIET), instance=instance, **kwargs
            )

        yield execute


def output_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {key: value.value for key, value in event.event_specific_data.metadata.items()}


def table_rows(metadata: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [record.data for record in metadata[name].records]


def test_the_admin_jobs_are_in_the_code_location_with_their_tag(catalog: Catalog) -> None:
    defs = build_definitions(offline_settings(catalog.database_url, catalog.data_dir))
    for name in ("set_models_enabled", "apply_recommendations", "accept_schema_changes"):
        assert defs.resolve_job_def(name).tags == ADMIN_TAGS


def test_set_models_enabled_by_filter_dry_run_then_for_real(run, catalog: Catalog) -> None:
    config = SetModelsEnabledConfig(
        action=ModelAction.disable, owner="bria", category="image", max_price=0.5, reason="contract paused"
    )
    dry = run("set_models_enabled", "change_models_enabled", config.model_copy(update={"dry_run": True}))
    metadata = output_metadata(dry)
    assert metadata["count"] == 3 and metadata["dry_run"] is True
    assert metadata["selection"] == "category=image, owner=bria, max_price=0.5"
    assert {row["outcome"] for row in table_rows(metadata, "models")} == {"would change"}
    assert catalog.audit() == []

    done = run("set_models_enabled", "change_models_enabled", config)
    metadata = output_metadata(done)
    rows = table_rows(metadata, "models")
    assert metadata["count"] == 3 and metadata["actor"] == f"dagster:{done.run_id}"
    assert {row["endpoint_id"] for row in rows} == {
        "bria/fibo/generate",
        "bria/reimagine/3.2",
        "bria/text-to-image/3.2",
    }
    assert all(row["before_enabled"] is True and row["after_enabled"] is False for row in rows)
    assert {(a["actor"], a["reason"]) for a in catalog.audit()} == {
        (f"dagster:{done.run_id}", "contract paused")
    }
    assert catalog.row("bria/fibo/generate")["operator_enabled"] is False


def test_set_models_enabled_fails_the_run_with_the_refusal(run, catalog: Catalog) -> None:
    config = SetModelsEnabledConfig(action=ModelAction.enable, endpoint_ids=[HELD], reason="needed")
    result = run("set_models_enabled", "change_models_enabled", config, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "held for review" in failure.event_specific_data.error.message
    assert catalog.audit() == []


def test_apply_recommendations_is_a_dry_run_by_default(run, catalog: Catalog) -> None:
    before = catalog.rows()
    dry = output_metadata(
        run("apply_recommendations", "apply_profitability_recommendations", ApplyRecommendationsConfig())
    )
    assert dry["dry_run"] is True and dry["count"] == 2
    outcomes = {row["endpoint_id"]: row["outcome"] for row in table_rows(dry, "models")}
    assert outcomes[DEPRECATED] == outcomes[POLICY_OFF] == "would apply"
    assert "listed only" in outcomes.values() and "never applied" in dry["reprice"]
    assert catalog.rows() == before

    config = ApplyRecommendationsConfig(dry_run=False, actions=[RecommendationAction.disable])
    applied = output_metadata(run("apply_recommendations", "apply_profitability_recommendations", config))
    assert applied["count"] == 1 and catalog.row(DEPRECATED)["enabled"] is False
    assert catalog.row(POLICY_OFF)["enabled"] is False  # enable was not among the actions allowed
    assert [a["action"] for a in catalog.audit()] == ["apply_recommendation"]


def test_accept_schema_changes_shows_the_diff_then_accepts(run, catalog: Catalog) -> None:
    dry = output_metadata(
        run("accept_schema_changes", "accept_held_schema_changes", AcceptSchemaChangesConfig())
    )
    assert dry["dry_run"] is True and dry["held"] == [HELD] and dry["accepted"] == []
    assert dry["diff"] == f"{HELD}\n  input legacy_style: removed (was string) (breaking)"
    assert table_rows(dry, "changes") == [
        {
            "endpoint_id": HELD,
            "change": "input legacy_style: removed (was string) (breaking)",
            "breaking": True,
        }
    ]
    assert catalog.row(HELD)["review_reason"] is not None

    config = AcceptSchemaChangesConfig(endpoint_ids=[HELD], dry_run=False)
    done = run("accept_schema_changes", "accept_held_schema_changes", config)
    assert output_metadata(done)["accepted"] == [HELD] and output_metadata(done)["count"] == 1
    assert catalog.row(HELD)["review_reason"] is None
    [audit] = catalog.audit()
    assert (audit["action"], audit["actor"]) == ("accept", f"dagster:{done.run_id}")
