"""`genfeed-catalog`: the catalog from the command line.

`genfeed-catalog refresh` runs the `refresh_fal_catalog` job in this process against the Dagster instance
in `DAGSTER_HOME` (a throw-away one when it is unset) and prints what it did.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg

from genfeed_pipeline.assets.values import PricedCatalog, SyncSummary
from genfeed_pipeline.fal.catalog import CatalogListing
from genfeed_pipeline.settings import PipelineSettings
from genfeed_pipeline.sync.plan import SyncMode
from genfeed_pipeline.sync.store import CatalogStore


def _instance() -> dg.DagsterInstance:
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def _refresh(args: argparse.Namespace) -> int:
    from genfeed_pipeline.definitions import defs

    run_config: dict = {
        "ops": {},
        "loggers": {"console": {"config": {"log_level": "DEBUG" if args.verbose else "INFO"}}},
    }
    run_config["ops"]["discover_fal_catalog"] = {
        "config": {"endpoint_ids": args.endpoint_id, "full_refresh": args.full_refresh}
    }
    run_config["ops"]["models_table"] = {"config": {"mode": args.mode}}
    job = defs.resolve_job_def("refresh_fal_catalog")
    started = time.monotonic()
    with _instance() as instance:
        result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False)
    elapsed = time.monotonic() - started
    if not result.success:
        print(f"refresh_fal_catalog failed after {elapsed:.1f}s (run {result.run_id})", file=sys.stderr)
        for event in result.all_events:
            if event.is_failure and event.step_key:
                print(f"  {event.step_key}: {event.message}", file=sys.stderr)
        return 1
    listing: CatalogListing = result.output_for_node("discover_fal_catalog", "fal_model_list")
    priced: PricedCatalog = result.output_for_node("priced_models")
    synced: SyncSummary = result.output_for_node("models_table")
    models = list(priced.models.values())
    by_type = Counter(m.model.category.value if m.model.category else "unknown" for m in models)
    summary = {
        "run_id": result.run_id,
        "seconds": round(elapsed, 2),
        "deployment": priced.deployment,
        "source": listing.source.value,
        "as_of": listing.as_of.isoformat(),
        "endpoints": len(listing.endpoints),
        "valid": sum(m.valid for m in models),
        "priced": sum(m.priced for m in models),
        "table_rows": synced.table_rows,
        "enabled": synced.table_enabled,
        "by_type": dict(by_type.most_common()),
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


def _catalog_store() -> tuple[CatalogStore, PipelineSettings]:
    from genfeed_pipeline.db.engine import create_catalog_engine

    settings = PipelineSettings.from_env()
    store = CatalogStore(create_catalog_engine(settings.database_url))
    store.migrate()
    return store, settings


def _accept(args: argparse.Namespace) -> int:
    from genfeed_pipeline.sync.history import accept, held_changes

    store, settings = _catalog_store()
    with store.engine.connect() as connection:
        held = held_changes(connection, args.endpoint_id or None)
    if not held:
        print(
            "nothing is held for review"
            + (f" among {', '.join(args.endpoint_id)}" if args.endpoint_id else "")
        )
        return 0 if not args.endpoint_id else 1
    for change in held:
        print(f"{change.endpoint_id} (held since {change.held_since:%Y-%m-%d %H:%M} UTC)")
        for item in change.changes:
            print(f"  {item.describe()}")
    if args.dry_run:
        print("dry run: nothing accepted")
        return 0
    accepted = accept(
        store, [h.endpoint_id for h in held], deployment=settings.deployment.value, now=datetime.now(UTC)
    )
    print(f"accepted {len(accepted)}: {', '.join(accepted)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genfeed-catalog", description=__doc__)
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
    accept = commands.add_parser("accept", help="show held breaking schema changes, then ship them")
    accept.add_argument("endpoint_id", nargs="*", help="endpoints to accept (default: every held one)")
    accept.add_argument("--dry-run", action="store_true", help="show the diffs only")
    accept.set_defaults(handler=_accept)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
