"""`refresh` and `migrate`: run the catalog's job, set up the catalog's tables."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from genfeed_pipeline.cli.common import dagster_instance
from genfeed_pipeline.settings import PipelineSettings
from genfeed_pipeline.sync.plan import SyncMode

if TYPE_CHECKING:
    import dagster as dg

    from genfeed_pipeline.assets.values import SyncSummary


def refresh_job() -> dg.JobDefinition:
    """`refresh_fal_catalog`, reconstructable by `dg.reconstructable` (as a run worker loads it)."""
    from genfeed_pipeline.definitions import defs

    return defs.resolve_job_def("refresh_fal_catalog")


def _summary(run_id: str, seconds: float, synced: SyncSummary) -> dict[str, Any]:
    """What `refresh` prints, from the run's `models_table` value alone."""
    return {
        "run_id": run_id,
        "seconds": round(seconds, 2),
        "deployment": synced.deployment,
        "source": synced.source.value,
        "as_of": synced.as_of.isoformat(),
        "endpoints": synced.endpoints_seen,
        "valid": synced.valid,
        "priced": synced.priced,
        "table_rows": synced.table_rows,
        "enabled": synced.table_enabled,
        "by_type": synced.by_type,
        "sync": {
            "mode": synced.mode,
            "new": synced.new,
            "changed": synced.changed,
            "removed": synced.removed,
            "unchanged": synced.unchanged,
        },
        "notes": synced.notes + synced.warnings,
    }


def _print_summary(summary: dict[str, Any]) -> None:
    print(f"refresh_fal_catalog succeeded in {summary['seconds']}s (run {summary['run_id']})")
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


def _refresh(args: argparse.Namespace) -> int:
    """Runs the job as a run worker does (`execute_job`), which keeps no step's value in memory:
    `execute_in_process` would hold every stage of a 15,000-model catalog until the run ends. The
    summary comes from one small value, the run's `models_table` output (`SyncSummary`)."""
    import dagster as dg

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
        dagster_instance() as instance,
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
        summary = _summary(result.run_id, elapsed, result.output_for_node("models_table"))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
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


def add_commands(commands: argparse._SubParsersAction) -> None:
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
