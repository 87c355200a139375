"""`usage`: fill days of fal's bill from the command line, as a backfill from the UI does.

`genfeed-catalog usage --from 2026-11-01 --to 2026-11-30` runs `refresh_fal_usage` over those UTC days
(inclusive) as one run against the instance in `DAGSTER_HOME`, so every day shows as materialized in the
UI, and prints a line per day as it is written.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from genfeed_pipeline.cli.common import dagster_instance
from genfeed_pipeline.clock import utc_now
from genfeed_pipeline.settings import usage_start_date

if TYPE_CHECKING:
    import dagster as dg

POLL_SECONDS = 1.0


def usage_job() -> dg.JobDefinition:
    """`refresh_fal_usage`, reconstructable by `dg.reconstructable` (as a run worker loads it)."""
    from genfeed_pipeline.definitions import defs

    return defs.resolve_job_def("refresh_fal_usage")


def day_range(first: str, last: str | None, today: date) -> tuple[date, date]:
    """The inclusive UTC days asked for; refuses days before the first partition or from today on."""
    try:
        start = date.fromisoformat(first)
        end = date.fromisoformat(last) if last else today - timedelta(days=1)
    except ValueError as error:
        raise ValueError(f"days are YYYY-MM-DD: {error}") from None
    earliest = usage_start_date()
    if start > end:
        raise ValueError(f"--from {start} is after --to {end}")
    if start < earliest:
        raise ValueError(f"{start} is before the first usage day {earliest} (GENFEED_USAGE_START_DATE)")
    if end >= today:
        raise ValueError(
            f"{end} is not over yet: the newest day with a full bill is {today - timedelta(days=1)}"
        )
    return start, end


def _day_line(day: str, metadata: dict[str, Any]) -> dict[str, Any]:
    def value(name: str) -> Any:
        entry = metadata.get(name)
        return getattr(entry, "value", entry)

    return {
        "day": day,
        "rows": value("dagster/row_count"),
        "endpoints": value("endpoints"),
        "requests": value("requests"),
        "fal_cost": value("fal_cost_usd"),
        "unknown_endpoints": value("unknown_endpoint_count"),
        "usage_pages": value("fal_usage_pages"),
        "analytics_requests": value("fal_analytics_requests"),
    }


def _usage(args: argparse.Namespace) -> int:
    import dagster as dg

    from genfeed_pipeline.assets.usage import FAL_USAGE

    try:
        start, end = day_range(args.first_day, args.last_day, utc_now().date())
    except ValueError as error:
        print(f"genfeed-catalog usage: error: {error}", file=sys.stderr)
        return 2
    tags = {
        "dagster/asset_partition_range_start": start.isoformat(),
        "dagster/asset_partition_range_end": end.isoformat(),
    }
    run_config = {"loggers": {"console": {"config": {"log_level": "DEBUG" if args.verbose else "WARNING"}}}}
    outcome: dict[str, Any] = {}
    days: list[dict[str, Any]] = []
    started_at = time.time()
    started = time.monotonic()
    with dagster_instance() as instance:

        def run() -> None:
            with dg.execute_job(
                dg.reconstructable(usage_job),
                instance,
                run_config=run_config,
                tags=tags,
                raise_on_error=False,
            ) as result:
                outcome["success"] = result.success
                outcome["run_id"] = result.run_id
                outcome["failures"] = [
                    event.message for event in result.all_events if event.is_failure and event.step_key
                ]
                outcome["not_materialized"] = sorted(
                    {
                        str(event.asset_observation_data.asset_observation.metadata["not_materialized"].value)
                        for event in result.all_events
                        if event.is_asset_observation
                        and "not_materialized" in event.asset_observation_data.asset_observation.metadata
                    }
                )

        worker = threading.Thread(target=run, name="refresh_fal_usage")
        worker.start()
        seen: set[str] = set()
        while True:
            finished = not worker.is_alive()
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=FAL_USAGE, after_timestamp=started_at), limit=1000
            ).records
            for record in sorted(records, key=lambda record: record.storage_id):
                materialization = record.asset_materialization
                if materialization is None or materialization.partition in seen:
                    continue
                seen.add(materialization.partition or "")
                line = _day_line(materialization.partition or "", dict(materialization.metadata))
                days.append(line)
                if not args.json:
                    print(
                        f"  {line['day']}  {line['rows']} rows, {line['endpoints']} endpoints, "
                        f"{line['requests']} requests, fal cost {line['fal_cost']}",
                        flush=True,
                    )
            if finished:
                break
            time.sleep(POLL_SECONDS)
        worker.join()
    seconds = round(time.monotonic() - started, 2)
    summary = {
        "run_id": outcome.get("run_id"),
        "seconds": seconds,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "days_written": len(days),
        "days": sorted(days, key=lambda line: line["day"]),
        "not_materialized": outcome.get("not_materialized", []),
    }
    if not outcome.get("success"):
        print(f"refresh_fal_usage failed after {seconds}s (run {summary['run_id']})", file=sys.stderr)
        for message in outcome.get("failures", []):
            print(f"  {message}", file=sys.stderr)
        if args.json:
            print(json.dumps(summary, indent=2))
        return 1
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"refresh_fal_usage {start} to {end}: {len(days)} days written in {seconds}s "
        f"(run {summary['run_id']})"
    )
    for reason in summary["not_materialized"]:
        print(f"  nothing materialized: {reason}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    usage = commands.add_parser(
        "usage", help="read days of fal's bill into model_usage_daily (runs refresh_fal_usage)"
    )
    usage.add_argument("--from", dest="first_day", required=True, help="first UTC day, YYYY-MM-DD")
    usage.add_argument("--to", dest="last_day", help="last UTC day, inclusive (default: yesterday)")
    usage.add_argument("--json", action="store_true", help="print the summary as JSON")
    usage.add_argument("--verbose", action="store_true", help="show Dagster's debug events")
    usage.set_defaults(handler=_usage)
