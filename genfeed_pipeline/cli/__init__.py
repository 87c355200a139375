"""`genfeed-catalog`: the catalog from the command line.

`genfeed-catalog refresh` runs the `refresh_fal_catalog` job in this process against the Dagster instance
in `DAGSTER_HOME` (a throw-away one when it is unset) and prints what it did. The other commands read
and operate the `models` table in `GENFEED_DATABASE_URL`:

  usage --from DAY [--to DAY]          fill days of fal's bill (runs `refresh_fal_usage`, one run)
  list, show, estimate, cheapest       read the synced catalog
  enable, disable, undo                an operator's choice, kept by every later sync until undone
  recommendations [--apply]            the profitability report's recommendations (dry run by default)
  accept                               ship held breaking schema changes after showing their diff
  migrate                              create or upgrade the catalog tables

Every change is recorded in `model_admin_actions` (who: --by, default the OS user; when; why).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from genfeed_pipeline.admin import AdminError
from genfeed_pipeline.cli import catalog, operate, refresh, usage

COMMAND_GROUPS = (refresh, usage, catalog, operate)
"""Each module adds its commands to the parser (`add_commands`), in the order `--help` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genfeed-catalog", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except AdminError as error:
        print(f"genfeed-catalog {args.command}: error: {error}", file=sys.stderr)
        return 1
