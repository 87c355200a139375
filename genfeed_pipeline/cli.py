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
from collections.abc import Sequence

import dagster as dg

from genfeed_pipeline.fal.catalog import CatalogListing, SchemaSet


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
    if args.endpoint_id:
        run_config["ops"]["fal_model_list"] = {"config": {"endpoint_ids": args.endpoint_id}}
    if args.full_refresh:
        run_config["ops"]["fal_openapi_schemas"] = {"config": {"full_refresh": True}}
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
    listing: CatalogListing = result.output_for_node("fal_model_list")
    schemas: SchemaSet = result.output_for_node("fal_openapi_schemas")
    summary = {
        "run_id": result.run_id,
        "seconds": round(elapsed, 2),
        "source": listing.source.value,
        "as_of": listing.as_of.isoformat(),
        "endpoints": len(listing.endpoints),
        "prices": listing.count_prices(),
        "price_source": listing.price_source.value,
        "schemas": schemas.count_by_status(),
        "http_requests": listing.http_requests + schemas.http_requests,
        "notes": listing.notes + [n for n in schemas.notes if n not in listing.notes],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"refresh_fal_catalog succeeded in {summary['seconds']}s (run {result.run_id})")
    print(f"  source         {summary['source']} (as of {summary['as_of']})")
    print(f"  endpoints      {summary['endpoints']}")
    print(f"  prices         {summary['prices']} from {summary['price_source']}")
    print(f"  schemas        {summary['schemas']}")
    print(f"  http requests  {summary['http_requests']}")
    for note in summary["notes"]:
        print(f"  note: {note}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genfeed-catalog", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    refresh = commands.add_parser("refresh", help="run refresh_fal_catalog and print a summary")
    refresh.add_argument("--endpoint-id", action="append", default=[], help="refresh only this endpoint")
    refresh.add_argument("--full-refresh", action="store_true", help="fetch every schema again")
    refresh.add_argument("--json", action="store_true", help="print the summary as JSON")
    refresh.add_argument("--verbose", action="store_true", help="show Dagster's debug events")
    refresh.set_defaults(handler=_refresh)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
