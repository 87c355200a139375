"""The profitability report and the synced `models` table."""

from datetime import datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from genfeed_pipeline.alerts.messages import change_event
from genfeed_pipeline.assets.discovery import CATALOG_FRESHNESS, CATALOG_GROUP, CATALOG_TAGS, OWNERS
from genfeed_pipeline.assets.metadata import preview_table, source_metadata
from genfeed_pipeline.assets.values import PricedCatalog, SyncedChange, SyncSummary
from genfeed_pipeline.clock import utc_now
from genfeed_pipeline.pricing.money import money_text
from genfeed_pipeline.report import charts, markdown
from genfeed_pipeline.report.profitability import (
    build_report,
    cost_distribution,
    fixed_price_of,
    margin_by_type,
    recommendations,
    summarize_by_category,
)
from genfeed_pipeline.resources import (
    CatalogCheckSettings,
    CatalogDatabase,
    CatalogMigrations,
    PricingPolicyResource,
    WebhookResource,
)
from genfeed_pipeline.sync.enabled import blocked, managed, row_state
from genfeed_pipeline.sync.events import sync_change_items
from genfeed_pipeline.sync.plan import SyncContext, SyncMode
from genfeed_pipeline.usage.store import RealizedWindow, load_realized


class SyncConfig(dg.Config):
    """How the sync writes: `full`, `dry_run` (writes nothing), `pricing_only`, `existing_only`."""

    mode: str = Field(SyncMode.FULL.value, description="full | dry_run | pricing_only | existing_only")

    def sync_mode(self) -> SyncMode:
        try:
            return SyncMode(self.mode.strip().lower())
        except ValueError:
            choices = ", ".join(mode.value for mode in SyncMode)
            raise ValueError(
                f"models_table config: mode must be one of {choices}, not {self.mode!r}"
            ) from None


@dg.asset(
    group_name=CATALOG_GROUP,
    owners=OWNERS,
    tags=CATALOG_TAGS,
    kinds={"python", "pandas"},
    freshness_policy=CATALOG_FRESHNESS,
)
def profitability_report(
    priced_models: PricedCatalog, database: CatalogDatabase, pricing: PricingPolicyResource
) -> dg.Output[pd.DataFrame]:
    """fal cost, GenFeed price and margin per model and per type, with recommendations.

    Covers this run's dynamic-priced models and every fixed-price row already in the `models` table.
    """
    store = database.store()
    rows = store.current_rows()
    with store.reading() as connection:
        realized = load_realized(connection, utc_now().date())
    policy = pricing.policy()
    report = build_report(
        priced_models.models,
        rows,
        policy=policy,
        policy_enabled={eid: m.enable_policy.enabled for eid, m in priced_models.models.items()},
        realized={model.endpoint_id: model for model in realized.figures.models} if realized else None,
    )
    by_category = summarize_by_category(report)
    todo = recommendations(report)
    fixed_below_cost = report[
        (report["pricing_kind"] == "fixed")
        & report["fal_cost"].notna()
        & report["genfeed_price"].notna()
        & (report["genfeed_price"] < report["fal_cost"])
    ]
    summary = "\n\n".join(
        [
            f"**{len(report)} models** in {priced_models.deployment} pricing: "
            f"{int(report['priced'].sum())} priced, {int((~report['valid']).sum())} invalid, "
            f"{int((report['status'] == 'deprecated').sum())} deprecated, "
            f"{len(fixed_below_cost)} fixed prices below fal cost.",
            "### By type\n" + markdown.table(by_category.itertuples(index=False), list(by_category.columns)),
            charts.markdown_image(
                charts.bar_chart_svg("Mean margin by type", margin_by_type(by_category), "%"),
                "margin by type",
            ),
            charts.markdown_image(
                charts.bar_chart_svg("Models by fal cost per call", cost_distribution(report)),
                "cost distribution",
            ),
            realized_section(realized),
            "### Recommendations\n"
            + markdown.table(todo.itertuples(index=False), list(todo.columns), limit=40),
        ]
    )
    metadata = {
        "summary": dg.MetadataValue.md(summary),
        "models": dg.MetadataValue.int(len(report)),
        "recommendations": dg.MetadataValue.json(todo["recommendation"].value_counts().to_dict()),
        "fixed_price_below_cost": dg.MetadataValue.json(fixed_below_cost["endpoint_id"].tolist()),
        "dagster/row_count": dg.MetadataValue.int(len(report)),
    }
    if realized is not None and realized.figures.totals.margin is not None:
        metadata["realized_margin_30d"] = dg.MetadataValue.float(float(realized.figures.totals.margin))
    return dg.Output(report, metadata=metadata)


def realized_section(realized: RealizedWindow | None) -> str:
    """The report's "Realized" part: what fal billed over the last 30 days against what GenFeed charged."""
    if realized is None:
        return "### Realized, last 30 days\nNo usage stored (it needs FAL_ADMIN_KEY and `refresh_fal_usage`)."
    figures = realized.figures
    totals = figures.totals
    by_type = [
        [
            kind.model_type,
            kind.models,
            kind.figures.requests,
            money_text(kind.figures.revenue),
            money_text(kind.figures.fal_cost),
            f"{kind.figures.margin * 100:.1f}%" if kind.figures.margin is not None else "-",
        ]
        for kind in figures.by_type
    ]
    margin = f"{totals.margin * 100:.1f}%" if totals.margin is not None else "-"
    return "\n\n".join(
        [
            f"### Realized, last 30 days ({figures.first_day} to {figures.last_day})\n"
            f"Revenue {money_text(totals.revenue)} as billed, fal cost {money_text(totals.fal_cost)} "
            f"({money_text(totals.unpriced_cost)} of it without revenue), realized margin {margin}.",
            markdown.table(
                by_type, ["type", "models", "requests", "revenue", "fal cost", "margin"], limit=None
            ),
            charts.markdown_image(
                charts.line_chart_svg(
                    "Realized margin by day",
                    [(day.isoformat(), float(value * 100)) for day, value in realized.daily_margins],
                    "%",
                ),
                "realized margin by day",
            ),
        ]
    )


@dg.asset(
    group_name=CATALOG_GROUP,
    owners=OWNERS,
    tags=CATALOG_TAGS,
    kinds={"sql"},
    deps=[profitability_report],
    freshness_policy=CATALOG_FRESHNESS,
)
def models_table(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    priced_models: PricedCatalog,
    database: CatalogDatabase,
    catalog_migrations: CatalogMigrations,
    alerts: WebhookResource,
) -> dg.Output[SyncSummary]:
    """GenFeed's `models` table, synced: new fal models inserted, existing rows enriched in place.

    Existing rows, their fixed prices and an operator's enable/disable are never lost or overwritten.
    """
    assert priced_models.completeness is not None, "discover_fal_catalog judges every list"
    sync_context = SyncContext(
        mode=config.sync_mode(),
        source=priced_models.source,
        data_as_of=priced_models.as_of,
        now=utc_now(),
        completeness=priced_models.completeness,
        requested_endpoint_ids=tuple(priced_models.requested_endpoint_ids)
        if priced_models.requested_endpoint_ids is not None
        else None,
    )
    store = database.store()
    outcome = store.sync(
        sync_context,
        priced_models.models,
        held=priced_models.held,
        run_id=context.run.run_id,
        deployment=priced_models.deployment,
    )
    plan = outcome.plan
    table_rows, table_enabled = store.count_rows()
    summary = SyncSummary(
        mode=config.sync_mode().value,
        written=outcome.written,
        source=priced_models.source,
        as_of=priced_models.as_of,
        endpoints_seen=plan.endpoints_seen,
        new=plan.inserted,
        changed=plan.updated,
        removed=plan.removed,
        unchanged=plan.unchanged,
        held=plan.held,
        failed=plan.failed,
        sync_run_id=outcome.sync_run_id,
        table_rows=table_rows,
        table_enabled=table_enabled,
        changes=[
            SyncedChange(c.endpoint_id, c.action.value, tuple(sorted(c.values)), c.reasons)
            for c in plan.changes
        ],
        warnings=plan.warnings,
        held_models=outcome.held,
        deployment=priced_models.deployment,
        valid=priced_models.count_valid(),
        priced=priced_models.count_priced(),
        by_type=priced_models.count_by_type(),
        notes=priced_models.notes,
    )
    if outcome.written:
        items = sync_change_items(plan)
        if any(items.values()):
            event = change_event(run_id=context.run.run_id, deployment=priced_models.deployment, **items)
            alerts.sender().send(event)
    context.log.info(
        "%s: %d new, %d changed, %d removed, %d unchanged",
        "dry run (nothing written)" if not outcome.written else "synced",
        plan.inserted,
        plan.updated,
        plan.removed,
        plan.unchanged,
    )
    return dg.Output(summary, metadata=sync_metadata(summary, priced_models.as_of))


def changed_ids(summary: SyncSummary, *, action: str | None = None, reason: str | None = None) -> list[str]:
    return [
        change.endpoint_id
        for change in summary.changes
        if (action is None or change.action == action) and (reason is None or reason in change.reasons)
    ]


def sync_metadata(summary: SyncSummary, as_of: datetime) -> dict[str, dg.MetadataValue]:
    changes = [
        dg.TableRecord(
            {
                "endpoint_id": change.endpoint_id,
                "action": change.action,
                "reasons": "; ".join(change.reasons),
                "columns": ", ".join(change.columns),
            }
        )
        for change in summary.changes[:500]
    ]
    return {
        "mode": dg.MetadataValue.text(summary.mode),
        "written": dg.MetadataValue.bool(summary.written),
        "new": dg.MetadataValue.int(summary.new),
        "changed": dg.MetadataValue.int(summary.changed),
        "removed": dg.MetadataValue.int(summary.removed),
        "unchanged": dg.MetadataValue.int(summary.unchanged),
        "held": dg.MetadataValue.int(summary.held),
        "failed": dg.MetadataValue.int(summary.failed),
        "sync_run_id": dg.MetadataValue.int(summary.sync_run_id or 0),
        "table_rows": dg.MetadataValue.int(summary.table_rows),
        "table_enabled": dg.MetadataValue.int(summary.table_enabled),
        "changes": dg.MetadataValue.table(
            changes,
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("endpoint_id", "string"),
                    dg.TableColumn("action", "string"),
                    dg.TableColumn("reasons", "string"),
                    dg.TableColumn("columns", "string"),
                ]
            ),
        ),
        "warnings": dg.MetadataValue.md(markdown.bullet_list(summary.warnings)),
        "new_models": dg.MetadataValue.json(changed_ids(summary, action="insert")),
        "removed_models": dg.MetadataValue.json(changed_ids(summary, action="remove")),
        "repriced_models": dg.MetadataValue.json(changed_ids(summary, reason="fal price changed")),
        "schema_changed_models": dg.MetadataValue.json(changed_ids(summary, reason="schema changed")),
        "held_for_review": dg.MetadataValue.json(summary.held_models),
        **source_metadata(summary.source.value, as_of, []),
    }


@dg.asset_check(asset=models_table)
def unique_endpoint_ids(
    database: CatalogDatabase, catalog_checks: CatalogCheckSettings
) -> dg.AssetCheckResult:
    """No two rows of `models` name the same endpoint (ids compared trimmed and case-insensitively)."""
    groups: dict[str, list[str]] = {}
    for endpoint_id in database.store().current_rows():
        groups.setdefault(endpoint_id.strip().lower(), []).append(endpoint_id)
    duplicates = {key: ids for key, ids in groups.items() if len(ids) > 1}
    return dg.AssetCheckResult(
        passed=not duplicates,
        severity=catalog_checks.severity("unique_endpoint_ids"),
        description=f"{len(duplicates)} ids appear more than once" if duplicates else "every id is unique",
        metadata={
            "rows": dg.MetadataValue.int(sum(len(ids) for ids in groups.values())),
            "duplicates": dg.MetadataValue.json(duplicates),
        },
    )


@dg.asset_check(asset=models_table)
def enabled_models_valid_and_priced(
    database: CatalogDatabase, pricing: PricingPolicyResource, catalog_checks: CatalogCheckSettings
) -> dg.AssetCheckResult:
    """Every enabled fal model in `models` is enabled as the rule allows (not removed, held or invalid:
    `blocked`) and, in cloud, where a price must cover fal's cost, priced; core enables valid models
    whatever their price, as the enable rule says."""
    cloud = pricing.policy().is_cloud
    offending = []
    for endpoint_id, row in database.store().current_rows().items():
        if row.get("provider") != "fal" or not row.get("enabled"):
            continue
        block = blocked(row_state(row))
        problems = [block.reason] if block else []
        if cloud and row.get("cost_per_call") is None and fixed_price_of(row.get("pricing")) is None:
            problems.append("no cost per call")
        if problems:
            owner = "pipeline" if managed(row) else "GenFeed"
            offending.append(
                {"endpoint_id": endpoint_id, "row_owner": owner, "problems": "; ".join(problems)}
            )
    columns = [("endpoint_id", "string"), ("row_owner", "string"), ("problems", "string")]
    return dg.AssetCheckResult(
        passed=not offending,
        severity=catalog_checks.severity("enabled_models_valid_and_priced"),
        description=f"{len(offending)} enabled models are invalid or unpriced" if offending else "all good",
        metadata={"offending_models": preview_table(offending, columns, limit=500)},
    )
