"""`genfeed-catalog`: the catalog from the command line.

`genfeed-catalog refresh` runs the `refresh_fal_catalog` job in this process against the Dagster instance
in `DAGSTER_HOME` (a throw-away one when it is unset) and prints what it did. The other commands read
and operate the `models` table in `GENFEED_DATABASE_URL`:

  list, show, estimate, cheapest       read the synced catalog
  enable, disable, undo                an operator's choice, kept by every later sync until undone
  recommendations [--apply]            the profitability report's recommendations (dry run by default)
  accept                               ship held breaking schema changes after showing their diff
  migrate                              create or upgrade the catalog tables

Every change is recorded in `model_admin_actions` (who: --by, default the OS user; when; why).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from tabulate import tabulate

from genfeed_pipeline import exact_json
from genfeed_pipeline.admin import (
    AdminError,
    ModelFilter,
    accept_changes,
    apply_recommendations,
    cheapest_for,
    default_actor,
    estimate_request,
    find_models,
    get_row,
    model_details,
    parse_inputs,
    set_enabled,
)
from genfeed_pipeline.admin.actions import ActionOutcome
from genfeed_pipeline.admin.catalog import load_rows
from genfeed_pipeline.admin.filters import CATEGORIES, STATUSES, row_capabilities
from genfeed_pipeline.pricing import CLOUD, PricingPolicy, margin_of
from genfeed_pipeline.settings import PipelineSettings
from genfeed_pipeline.sync.enabled import decide_enabled, managed, row_state
from genfeed_pipeline.sync.plan import SyncMode
from genfeed_pipeline.sync.store import CatalogNotMigrated, CatalogStore, require_migrated

if TYPE_CHECKING:
    import dagster as dg


# -- output helpers ----------------------------------------------------------------------------------


def _money(value: Any) -> str:
    if value is None:
        return "-"
    text = f"{Decimal(value).normalize():f}"
    return f"${text}"


def _plain(value: Any) -> Any:
    """JSON-ready: money as exact decimal text, times as ISO 8601."""
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):
        return value.value
    return value


def _print_json(value: Any) -> None:
    print(json.dumps(_plain(value), indent=2, ensure_ascii=False))


def _print_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    body = [[_cell(row.get(column)) for column in columns] for row in rows]
    print(tabulate(body, headers=list(columns), tablefmt="simple", disable_numparse=True))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value)


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "-"


@contextmanager
def _opened_store() -> Iterator[tuple[CatalogStore, PipelineSettings]]:
    from genfeed_pipeline.db.engine import create_catalog_engine

    settings = PipelineSettings.from_env()
    url = sa.make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        raise AdminError(
            f"there is no catalog database at {url.database}: run `genfeed-catalog migrate` first"
        )
    store = CatalogStore(create_catalog_engine(settings.database_url))
    try:
        with store.engine.connect() as connection:
            require_migrated(connection)
        yield store, settings
    except CatalogNotMigrated as error:
        raise AdminError(str(error)) from None
    finally:
        store.engine.dispose()


# -- refresh, migrate ---------------------------------------------------------------------------------


def _instance() -> dg.DagsterInstance:
    import dagster as dg

    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def refresh_job() -> dg.JobDefinition:
    """`refresh_fal_catalog`, reconstructable by `dg.reconstructable` (as a run worker loads it)."""
    from genfeed_pipeline.definitions import defs

    return defs.resolve_job_def("refresh_fal_catalog")


def _metadata_value(materializations: Sequence[dg.AssetMaterialization], key: str) -> Any:
    for materialization in materializations:
        if key in materialization.metadata:
            return materialization.metadata[key].value
    return None


def _refresh(args: argparse.Namespace) -> int:
    """Runs the job as a run worker does (`execute_job`), which keeps no step's value in memory:
    `execute_in_process` would hold every stage of a 15,000-model catalog until the run ends. The
    summary comes from the run's materialization metadata and the small `models_table` value."""
    import dagster as dg

    from genfeed_pipeline.assets.values import SyncSummary
    from genfeed_pipeline.fal.catalog import CatalogListing

    run_config: dict = {
        "ops": {},
        "loggers": {"console": {"config": {"log_level": "DEBUG" if args.verbose else "INFO"}}},
    }
    run_config["ops"]["discover_fal_catalog"] = {
        "config": {"endpoint_ids": args.endpoint_id, "full_refresh": args.full_refresh}
    }
    run_config["ops"]["models_table"] = {"config": {"mode": args.mode}}
    started = time.monotonic()
    with (
        _instance() as instance,
        dg.execute_job(
            dg.reconstructable(refresh_job), instance, run_config=run_config, raise_on_error=False
        ) as result,
    ):
        elapsed = time.monotonic() - started
        if not result.success:
            print(f"refresh_fal_catalog failed after {elapsed:.1f}s (run {result.run_id})", file=sys.stderr)
            for event in result.all_events:
                if event.is_failure and event.step_key:
                    print(f"  {event.step_key}: {event.message}", file=sys.stderr)
            return 1
        listing: CatalogListing = result.output_for_node("discover_fal_catalog", "fal_model_list")
        synced: SyncSummary = result.output_for_node("models_table")
        mapped = result.asset_materializations_for_node("genfeed_models")
        priced = result.asset_materializations_for_node("priced_models")
        summary = {
            "run_id": result.run_id,
            "seconds": round(elapsed, 2),
            "deployment": _metadata_value(priced, "deployment"),
            "source": listing.source.value,
            "as_of": listing.as_of.isoformat(),
            "endpoints": len(listing.endpoints),
            "valid": _metadata_value(priced, "valid"),
            "priced": _metadata_value(priced, "priced"),
            "table_rows": synced.table_rows,
            "enabled": synced.table_enabled,
            "by_type": _metadata_value(mapped, "by_type"),
            "sync": {
                "mode": synced.mode,
                "new": synced.new,
                "changed": synced.changed,
                "removed": synced.removed,
                "unchanged": synced.unchanged,
            },
            "notes": listing.notes + synced.warnings,
        }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"refresh_fal_catalog succeeded in {summary['seconds']}s (run {result.run_id})")
    print(f"  deployment  {summary['deployment']}")
    print(f"  data        from the {summary['source']}, as of {summary['as_of']}")
    print(f"  endpoints   {summary['endpoints']}")
    print(f"  valid       {summary['valid']}")
    print(f"  priced      {summary['priced']}")
    print(f"  enabled     {summary['enabled']} of {summary['table_rows']} rows in the models table")
    print("  by type     " + ", ".join(f"{k} {v}" for k, v in summary["by_type"].items()))
    sync = summary["sync"]
    print(
        f"  models table ({sync['mode']}): {sync['new']} new, {sync['changed']} changed, "
        f"{sync['removed']} removed, {sync['unchanged']} unchanged"
    )
    for note in summary["notes"]:
        print(f"  note: {note}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from genfeed_pipeline.db.engine import create_catalog_engine
    from genfeed_pipeline.db.migrate import current_revision, upgrade_to_head

    settings = PipelineSettings.from_env()
    engine = create_catalog_engine(settings.database_url)
    before = current_revision(engine)
    after = upgrade_to_head(engine)
    where = engine.url.render_as_string(hide_password=True)
    print(
        f"{where}: {before or 'no catalog tables'} → {after}" if before != after else f"{where}: at {after}"
    )
    engine.dispose()
    return 0


# -- reading the catalog ------------------------------------------------------------------------------


def _model_filter(args: argparse.Namespace) -> ModelFilter:
    return ModelFilter(
        category=args.type,
        fal_category=args.fal_category,
        owner=args.owner,
        min_price=args.min_price,
        max_price=args.max_price,
        status=args.status,
        capabilities=tuple(args.capability),
        enabled=args.enabled,
        held=args.held,
        search=args.search,
    )


LIST_COLUMNS = ("id", "type", "unit", "price_per_call", "enabled", "status")


def _list(args: argparse.Namespace) -> int:
    model_filter = _model_filter(args)
    with _opened_store() as (store, _), store.engine.connect() as connection:
        rows = find_models(connection, model_filter)
    shown = rows[: args.limit] if args.limit else rows
    lines = [
        {
            "id": row["id"],
            "type": row.get("category"),
            "unit": row.get("unit"),
            "price_per_call": row.get("price_per_call"),
            "enabled": bool(row.get("enabled")),
            "status": row.get("status") + (" (held)" if row.get("review_reason") else ""),
        }
        for row in shown
    ]
    if args.json:
        _print_json(
            [
                line
                | {
                    "name": row.get("name"),
                    "fal_category": row.get("fal_category"),
                    "owner": row["id"].split("/", 1)[0],
                    "cost_per_call": row.get("cost_per_call"),
                    "operator_enabled": row.get("operator_enabled"),
                    "review_reason": row.get("review_reason"),
                    "capabilities": sorted(row_capabilities(row)),
                }
                for line, row in zip(lines, shown, strict=True)
            ]
        )
        return 0
    if not rows:
        print(f"no model matches {model_filter.describe()}")
        return 0
    _print_table(lines, LIST_COLUMNS)
    enabled = sum(1 for row in rows if row.get("enabled"))
    more = f", first {len(shown)} shown" if len(shown) < len(rows) else ""
    print(f"\n{len(rows)} models ({enabled} enabled) matching {model_filter.describe()}{more}")
    return 0


def _enabled_because(row: Mapping[str, Any]) -> str:
    """Who decided the row's `enabled`, by the enable rule (`sync/enabled.py`)."""
    if row.get("operator_enabled") is not None:
        why = f": {row['operator_reason']}" if row.get("operator_reason") else ""
        return f"by an operator on {_when(row.get('operator_changed_at'))}{why}"
    if not managed(row):
        return "by GenFeed's app (a row the pipeline did not insert)"
    decision = decide_enabled(row_state(row))
    if decision.by_operator:
        return "by an operator in GenFeed's admin (recorded at the next sync)"
    if decision.reason.startswith("policy"):
        return (
            f"by the sync's policy ({row.get('policy_reason')})"
            if row.get("policy_reason")
            else "by the sync's policy"
        )
    return f"by the sync: {decision.reason}"


def _show(args: argparse.Namespace) -> int:
    with _opened_store() as (store, _), store.engine.connect() as connection:
        details = model_details(connection, args.endpoint_id)
    row = details.row
    if args.json:
        _print_json(
            {
                "model": {k: v for k, v in row.items() if k not in ("input_schema", "output_schema")},
                "inputs": details.inputs,
                "outputs": details.outputs,
                "price_history": details.price_history,
                "schema_history": details.schema_history,
                "admin_actions": details.admin_actions,
            }
        )
        return 0
    state = "enabled" if row.get("enabled") else "disabled"
    print(f"{row['id']}  {row.get('name')}")
    facts = [
        ("type", f"{row.get('category')} (fal: {row.get('fal_category') or '-'})"),
        ("owner", f"{row['id'].split('/', 1)[0]}, provider {row.get('provider')}"),
        ("managed by", row.get("managed_by") or "GenFeed's app"),
        ("status", f"{row.get('status')}, {state} {_enabled_because(row)}"),
        ("held", row.get("review_reason")),
        ("invalid", "; ".join(row.get("validation_errors") or []) or None),
        (
            "unit price",
            f"{_money(row.get('unit_price'))} per {row.get('unit') or '-'} (fal: {row.get('unit_raw')!r})",
        ),
        ("cost/call", f"{_money(row.get('cost_per_call'))} ({row.get('cost_confidence') or '-'})"),
        ("derivation", row.get("cost_derivation")),
        ("price/call", _money(row.get("price_per_call"))),
        ("pricing", exact_json.dumps(row.get("pricing")) if row.get("pricing") else None),
        ("flags", "; ".join(row.get("price_flags") or []) or None),
        ("capabilities", ", ".join(sorted(row_capabilities(row))) or None),
        (
            "schema",
            f"version {row.get('schema_version') or '-'}, hash {(row.get('schema_hash') or '-')[:12]}",
        ),
        ("synced", _when(row.get("last_synced_at"))),
    ]
    for label, value in facts:
        if value is not None:
            print(f"  {label:<13} {value}")
    for title, fields in (("inputs", details.inputs), ("outputs", details.outputs)):
        print(f"\n{title}")
        if not fields:
            print("  (no schema)")
            continue
        lines = [
            {
                "name": f.name,
                "type": f.type,
                "required": f.required,
                "default": json.dumps(f.default) if f.has_default else "",
                "choices": ", ".join(str(c) for c in f.choices[:8]) + (" …" if len(f.choices) > 8 else ""),
            }
            for f in fields
        ]
        _print_table(lines, ("name", "type", "required", "default", "choices"))
    print("\nprice history")
    _print_table(
        details.price_history or [{}],
        ("seen_at", "unit_price", "unit", "cost_per_call", "price_per_call", "deployment", "price_source"),
    )
    print("\nschema history")
    _print_table(
        details.schema_history or [{}], ("seen_at", "status", "schema_version", "review_reason", "decided_at")
    )
    print("\nadmin actions")
    _print_table(
        details.admin_actions or [{}], ("at", "action", "actor", "before_enabled", "after_enabled", "reason")
    )
    return 0


def _estimate(args: argparse.Namespace) -> int:
    inputs = parse_inputs(args.inputs)
    with _opened_store() as (store, _), store.engine.connect() as connection:
        row = get_row(connection, args.endpoint_id)
    estimate = estimate_request(row, inputs)
    if args.json:
        _print_json(estimate)
        return 0
    margin = margin_of(estimate.cloud_price, estimate.cost) * 100
    print(f"{estimate.endpoint_id} with {json.dumps(inputs) if inputs else 'the schema defaults'}")
    print(f"  cost         {_money(estimate.cost)} at fal ({estimate.confidence})")
    print(f"  derivation   {estimate.derivation}")
    print(f"  unit         {_money(estimate.unit_price)} per {estimate.unit} (fal: {estimate.unit_raw!r})")
    print(f"  cloud price  {_money(estimate.cloud_price)} ({margin:.1f}% margin)")
    print(f"  core price   {_money(estimate.core_price)} (fal cost, the user's own key)")
    print(f"  quantity     {estimate.quantity.normalize():f} {estimate.unit}")
    for flag in estimate.flags:
        print(f"  flag         {flag}")
    for note in estimate.notes:
        print(f"  note         {note}")
    return 0


def _cheapest(args: argparse.Namespace) -> int:
    inputs = parse_inputs(args.inputs)
    with _opened_store() as (store, _), store.engine.connect() as connection:
        rows = load_rows(connection, with_schemas=True)
    answer = cheapest_for(
        rows.values(),
        category=args.type,
        capabilities=args.capability,
        inputs=inputs,
        policy=CLOUD,
        include_disabled=args.all,
    )
    scope = "valid, priced" if args.all else "enabled, active"
    need = f"{args.type} model" + (f" with {', '.join(args.capability)}" if args.capability else "")
    if answer.winner is None or answer.estimate is None:
        why = "".join(f"; {reason} ({count} models)" for reason, count in list(answer.refused.items())[:3])
        raise AdminError(
            f"no {scope} {need} can be priced for this request ({answer.candidates} considered){why}"
        )
    estimate = answer.estimate
    if args.json:
        _print_json(
            {"endpoint_id": answer.winner.endpoint_id, "candidates": answer.candidates, "estimate": estimate}
        )
        return 0
    print(f"cheapest {scope} {need} ({answer.candidates} considered): {answer.winner.endpoint_id}")
    print(f"  name         {answer.winner.model.name}")
    print(f"  cost         {_money(estimate.cost)} at fal ({estimate.confidence}): {estimate.derivation}")
    print(f"  cloud price  {_money(estimate.cloud_price)}")
    print(f"  core price   {_money(estimate.core_price)}")
    return 0


# -- operating the catalog -----------------------------------------------------------------------------


ACTION_COLUMNS = ("endpoint_id", "before_enabled", "after_enabled", "outcome", "note")


def _print_action(outcome: ActionOutcome, as_json: bool) -> None:
    if as_json:
        _print_json(
            {
                "action": outcome.action,
                "actor": outcome.actor,
                "reason": outcome.reason,
                "at": outcome.at,
                "selection": outcome.selection,
                "dry_run": outcome.dry_run,
                "changed": len(outcome.changes),
                "models": outcome.records(),
            }
        )
        return
    records = outcome.records()
    if records:
        _print_table(records, ACTION_COLUMNS)
    verb = {"enable": "enabled", "disable": "disabled", "undo": "handed back to policy"}[outcome.action]
    refused = f", {len(outcome.refused)} refused" if outcome.refused else ""
    unchanged = len(outcome.skipped) - len(outcome.refused)
    counts = f"{len(outcome.changes)} models{refused}, {unchanged} unchanged"
    if outcome.dry_run:
        print(f"\ndry run: would have {verb} {counts}; nothing written")
    else:
        print(f"\n{verb} {counts} (by {outcome.actor}: {outcome.reason!r}, recorded in model_admin_actions)")


def _operator(action: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        model_filter = _model_filter(args)
        with _opened_store() as (store, _):
            outcome = set_enabled(
                store,
                action,
                endpoint_ids=args.endpoint_id,
                model_filter=model_filter,
                reason=args.reason,
                actor=args.by,
                dry_run=args.dry_run,
            )
        _print_action(outcome, args.json)
        return 0

    return handler


def _recommendations(args: argparse.Namespace) -> int:
    with _opened_store() as (store, settings):
        outcome = apply_recommendations(
            store,
            PricingPolicy(deployment=settings.deployment),
            actor=args.by,
            dry_run=not args.apply,
            actions=args.action or ("enable", "disable"),
            endpoint_ids=args.endpoint_id,
        )
    note = (
        f"{outcome.reprices} reprice recommendations are listed only: "
        "fixed prices belong to people, never applied"
    )
    if args.json:
        _print_json(
            {
                "dry_run": outcome.dry_run,
                "actor": outcome.actor,
                "would_apply" if outcome.dry_run else "applied": outcome.count,
                "recommendations": outcome.records(),
                "note": note,
            }
        )
        return 0
    if not outcome.items:
        print("no recommendations: the catalog matches the report")
        return 0
    _print_table(outcome.records(), ("endpoint_id", "action", "reason", "outcome", "note"))
    print()
    if outcome.dry_run:
        print(f"dry run: {len(outcome.to_apply)} would be applied; run with --apply to apply them")
    else:
        print(f"applied {len(outcome.changes)} (by {outcome.actor}, recorded in model_admin_actions)")
    if outcome.reprices:
        print(note)
    return 0


def _accept(args: argparse.Namespace) -> int:
    with _opened_store() as (store, _):
        outcome = accept_changes(
            store,
            args.endpoint_id,
            actor=args.by,
            reason=args.reason,
            now=datetime.now(UTC),
            dry_run=args.dry_run,
        )
    if args.json:
        _print_json(
            {
                "dry_run": outcome.dry_run,
                "held": [
                    {
                        "endpoint_id": held.endpoint_id,
                        "review_reason": held.review_reason,
                        "held_since": held.held_since,
                        "changes": [change.describe() for change in held.changes],
                    }
                    for held in outcome.held
                ],
                "accepted": outcome.accepted,
                "not_held": outcome.not_held,
            }
        )
        return 0 if outcome.held or not args.endpoint_id else 1
    if not outcome.held:
        print(
            "nothing is held for review"
            + (f" among {', '.join(args.endpoint_id)}" if args.endpoint_id else "")
        )
        return 0 if not args.endpoint_id else 1
    for change in outcome.held:
        print(f"{change.endpoint_id} (held since {_when(change.held_since)})")
        for item in change.changes:
            print(f"  {item.describe()}")
    if outcome.not_held:
        print(f"not held (skipped): {', '.join(outcome.not_held)}")
    if args.dry_run:
        print("dry run: nothing accepted")
        return 0
    print(f"accepted {len(outcome.accepted)}: {', '.join(outcome.accepted)}")
    return 0


# -- the parser ---------------------------------------------------------------------------------------


def _add_filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters (every one given must hold)")
    group.add_argument("--type", choices=CATEGORIES, help="GenFeed type")
    group.add_argument("--fal-category", help="fal's category, e.g. text-to-image")
    group.add_argument("--owner", help="first segment of the endpoint id, e.g. fal-ai, bria")
    group.add_argument(
        "--capability",
        action="append",
        default=[],
        help="e.g. seed, lora, input:image (repeatable: all of them)",
    )
    group.add_argument("--min-price", help="price_per_call at least this, USD")
    group.add_argument("--max-price", help="price_per_call at most this, USD")
    group.add_argument("--status", choices=STATUSES)
    state = group.add_mutually_exclusive_group()
    state.add_argument("--enabled", dest="enabled", action="store_const", const=True, default=None)
    state.add_argument("--disabled", dest="enabled", action="store_const", const=False)
    group.add_argument("--held", action="store_const", const=True, default=None, help="held for review only")
    group.add_argument("--search", help="text in the id, name or description")


def _add_operator_command(
    commands: argparse._SubParsersAction, name: str, help_text: str, *, reason_required: bool
) -> None:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("endpoint_id", nargs="*", help="endpoint ids (or use filters)")
    _add_filters(parser)
    parser.add_argument("--reason", required=reason_required, help="why (recorded in the audit table)")
    parser.add_argument("--by", default=default_actor(), help="who (default: the OS user)")
    parser.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=_operator(name))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genfeed-catalog", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    refresh = commands.add_parser("refresh", help="run refresh_fal_catalog and print a summary")
    refresh.add_argument("--endpoint-id", action="append", default=[], help="refresh only this endpoint")
    refresh.add_argument("--full-refresh", action="store_true", help="fetch every schema again")
    refresh.add_argument(
        "--mode", choices=[mode.value for mode in SyncMode], default="full", help="how the sync writes"
    )
    refresh.add_argument("--json", action="store_true", help="print the summary as JSON")
    refresh.add_argument("--verbose", action="store_true", help="show Dagster's debug events")
    refresh.set_defaults(handler=_refresh)
    migrate = commands.add_parser("migrate", help="create or upgrade the catalog tables (idempotent)")
    migrate.set_defaults(handler=_migrate)

    listing = commands.add_parser("list", help="list and search the synced catalog")
    _add_filters(listing)
    listing.add_argument("--limit", type=int, default=0, help="show at most this many (default: all)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)
    show = commands.add_parser("show", help="one model: row, schemas, price and schema history, actions")
    show.add_argument("endpoint_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show)
    estimate = commands.add_parser(
        "estimate", help="cost of a request, how it was derived, cloud and core price"
    )
    estimate.add_argument("endpoint_id")
    estimate.add_argument("--inputs", help="the request's inputs as JSON, e.g. '{\"num_images\": 2}'")
    estimate.add_argument("--json", action="store_true")
    estimate.set_defaults(handler=_estimate)
    cheapest = commands.add_parser("cheapest", help="the cheapest model of a type for a need")
    cheapest.add_argument("--type", required=True, choices=[c for c in CATEGORIES if c != "unknown"])
    cheapest.add_argument("--capability", action="append", default=[], help="e.g. seed (repeatable)")
    cheapest.add_argument("--inputs", help="compare the cost of this request (JSON) instead of the defaults")
    cheapest.add_argument("--all", action="store_true", help="consider disabled models too")
    cheapest.add_argument("--json", action="store_true")
    cheapest.set_defaults(handler=_cheapest)

    _add_operator_command(
        commands, "enable", "enable models; every later sync keeps it", reason_required=True
    )
    _add_operator_command(
        commands, "disable", "disable models; every later sync keeps it", reason_required=True
    )
    _add_operator_command(
        commands, "undo", "hand models back to policy (clear the operator's choice)", reason_required=False
    )

    advice = commands.add_parser(
        "recommendations", help="the profitability report's recommendations (dry run unless --apply)"
    )
    advice.add_argument("--apply", action="store_true", help="apply the enable/disable recommendations")
    advice.add_argument("--action", action="append", choices=["enable", "disable"], help="only these actions")
    advice.add_argument("--endpoint-id", action="append", default=[], help="only these models")
    advice.add_argument("--by", default=default_actor(), help="who (default: the OS user)")
    advice.add_argument("--json", action="store_true")
    advice.set_defaults(handler=_recommendations)

    accept = commands.add_parser("accept", help="show held breaking schema changes, then ship them")
    accept.add_argument("endpoint_id", nargs="*", help="endpoints to accept (default: every held one)")
    accept.add_argument("--dry-run", action="store_true", help="show the diffs only")
    accept.add_argument("--reason", help="why (recorded in the audit table)")
    accept.add_argument("--by", default=default_actor(), help="who (default: the OS user)")
    accept.add_argument("--json", action="store_true")
    accept.set_defaults(handler=_accept)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except AdminError as error:
        print(f"genfeed-catalog {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
