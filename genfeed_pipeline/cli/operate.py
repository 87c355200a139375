"""`enable`, `disable`, `undo`, `recommendations`, `accept`: operating the catalog. Every change is
recorded in `model_admin_actions` (who: --by, default the OS user; when; why)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from genfeed_pipeline.admin import accept_changes, apply_recommendations, default_actor, set_enabled
from genfeed_pipeline.admin.actions import ActionOutcome
from genfeed_pipeline.cli.common import add_filters, model_filter, opened_store
from genfeed_pipeline.cli.output import print_json, print_table, when
from genfeed_pipeline.clock import utc_now
from genfeed_pipeline.pricing import PricingPolicy

ACTION_COLUMNS = ("endpoint_id", "before_enabled", "after_enabled", "outcome", "note")


def _print_action(outcome: ActionOutcome, as_json: bool) -> None:
    if as_json:
        print_json(
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
        print_table(records, ACTION_COLUMNS)
    verb = {"enable": "enabled", "disable": "disabled", "undo": "handed back to policy"}[outcome.action]
    refused = f", {len(outcome.refused)} refused" if outcome.refused else ""
    unchanged = len(outcome.skipped) - len(outcome.refused)
    counts = f"{len(outcome.changes)} models{refused}, {unchanged} unchanged"
    if outcome.dry_run:
        print(f"\ndry run: would have {verb} {counts}; nothing written")
    else:
        print(f"\n{verb} {counts} (by {outcome.actor}: {outcome.reason!r}, recorded in model_admin_actions)")


def _operator(action: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        chosen = model_filter(args)
        with opened_store() as (store, _):
            outcome = set_enabled(
                store,
                action,
                endpoint_ids=args.endpoint_id,
                model_filter=chosen,
                reason=args.reason,
                actor=args.by,
                dry_run=args.dry_run,
            )
        _print_action(outcome, args.json)
        return 0

    return handler


def _recommendations(args: argparse.Namespace) -> int:
    with opened_store() as (store, settings):
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
        print_json(
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
    print_table(outcome.records(), ("endpoint_id", "action", "reason", "outcome", "note"))
    print()
    if outcome.dry_run:
        print(f"dry run: {len(outcome.to_apply)} would be applied; run with --apply to apply them")
    else:
        print(f"applied {len(outcome.changes)} (by {outcome.actor}, recorded in model_admin_actions)")
    if outcome.reprices:
        print(note)
    return 0


def _accept(args: argparse.Namespace) -> int:
    with opened_store() as (store, _):
        outcome = accept_changes(
            store,
            args.endpoint_id,
            actor=args.by,
            reason=args.reason,
            now=utc_now(),
            dry_run=args.dry_run,
        )
    if args.json:
        print_json(
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
        print(f"{change.endpoint_id} (held since {when(change.held_since)})")
        for item in change.changes:
            print(f"  {item.describe()}")
    if outcome.not_held:
        print(f"not held (skipped): {', '.join(outcome.not_held)}")
    if args.dry_run:
        print("dry run: nothing accepted")
        return 0
    print(f"accepted {len(outcome.accepted)}: {', '.join(outcome.accepted)}")
    return 0


def _add_operator_command(
    commands: argparse._SubParsersAction, name: str, help_text: str, *, reason_required: bool
) -> None:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("endpoint_id", nargs="*", help="endpoint ids (or use filters)")
    add_filters(parser)
    parser.add_argument("--reason", required=reason_required, help="why (recorded in the audit table)")
    parser.add_argument("--by", default=default_actor(), help="who (default: the OS user)")
    parser.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=_operator(name))


def add_commands(commands: argparse._SubParsersAction) -> None:
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
