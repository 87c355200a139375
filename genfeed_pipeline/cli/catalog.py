"""`list`, `show`, `estimate`, `cheapest`: reading the synced catalog."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from genfeed_pipeline import exact_json
from genfeed_pipeline.admin import (
    AdminError,
    cheapest_for,
    estimate_request,
    find_models,
    get_row,
    model_details,
    parse_inputs,
)
from genfeed_pipeline.admin.catalog import load_rows
from genfeed_pipeline.admin.filters import CATEGORIES, owner_of, row_capabilities
from genfeed_pipeline.cli.common import add_filters, model_filter, opened_store
from genfeed_pipeline.cli.output import print_json, print_table, when
from genfeed_pipeline.pricing import CLOUD, margin_of, money_text
from genfeed_pipeline.sync.enabled import decide_enabled, managed, row_state

LIST_COLUMNS = ("id", "type", "unit", "price_per_call", "enabled", "status")


def _list(args: argparse.Namespace) -> int:
    chosen = model_filter(args)
    with opened_store() as (store, _), store.engine.connect() as connection:
        rows = find_models(connection, chosen)
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
        print_json(
            [
                line
                | {
                    "name": row.get("name"),
                    "fal_category": row.get("fal_category"),
                    "owner": owner_of(row["id"]),
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
        print(f"no model matches {chosen.describe()}")
        return 0
    print_table(lines, LIST_COLUMNS)
    enabled = sum(1 for row in rows if row.get("enabled"))
    more = f", first {len(shown)} shown" if len(shown) < len(rows) else ""
    print(f"\n{len(rows)} models ({enabled} enabled) matching {chosen.describe()}{more}")
    return 0


def _enabled_because(row: Mapping[str, Any]) -> str:
    """Who decided the row's `enabled`, by the enable rule (`sync/enabled.py`)."""
    if row.get("operator_enabled") is not None:
        why = f": {row['operator_reason']}" if row.get("operator_reason") else ""
        return f"by an operator on {when(row.get('operator_changed_at'))}{why}"
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
    with opened_store() as (store, _), store.engine.connect() as connection:
        details = model_details(connection, args.endpoint_id)
    row = details.row
    if args.json:
        print_json(
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
        ("owner", f"{owner_of(row['id'])}, provider {row.get('provider')}"),
        ("managed by", row.get("managed_by") or "GenFeed's app"),
        ("status", f"{row.get('status')}, {state} {_enabled_because(row)}"),
        ("held", row.get("review_reason")),
        ("invalid", "; ".join(row.get("validation_errors") or []) or None),
        (
            "unit price",
            f"{money_text(row.get('unit_price'))} per {row.get('unit') or '-'} "
            f"(fal: {row.get('unit_raw')!r})",
        ),
        ("cost/call", f"{money_text(row.get('cost_per_call'))} ({row.get('cost_confidence') or '-'})"),
        ("derivation", row.get("cost_derivation")),
        ("price/call", money_text(row.get("price_per_call"))),
        ("pricing", exact_json.dumps(row.get("pricing")) if row.get("pricing") else None),
        ("flags", "; ".join(row.get("price_flags") or []) or None),
        ("capabilities", ", ".join(sorted(row_capabilities(row))) or None),
        (
            "schema",
            f"version {row.get('schema_version') or '-'}, hash {(row.get('schema_hash') or '-')[:12]}",
        ),
        ("synced", when(row.get("last_synced_at"))),
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
        print_table(lines, ("name", "type", "required", "default", "choices"))
    print("\nprice history")
    print_table(
        details.price_history or [{}],
        ("seen_at", "unit_price", "unit", "cost_per_call", "price_per_call", "deployment", "price_source"),
    )
    print("\nschema history")
    print_table(
        details.schema_history or [{}], ("seen_at", "status", "schema_version", "review_reason", "decided_at")
    )
    print("\nadmin actions")
    print_table(
        details.admin_actions or [{}], ("at", "action", "actor", "before_enabled", "after_enabled", "reason")
    )
    return 0


def _estimate(args: argparse.Namespace) -> int:
    inputs = parse_inputs(args.inputs)
    with opened_store() as (store, _), store.engine.connect() as connection:
        row = get_row(connection, args.endpoint_id)
    estimate = estimate_request(row, inputs)
    if args.json:
        print_json(estimate)
        return 0
    margin = margin_of(estimate.cloud_price, estimate.cost) * 100
    print(f"{estimate.endpoint_id} with {json.dumps(inputs) if inputs else 'the schema defaults'}")
    print(f"  cost         {money_text(estimate.cost)} at fal ({estimate.confidence})")
    print(f"  derivation   {estimate.derivation}")
    unit = f"{money_text(estimate.unit_price)} per {estimate.unit} (fal: {estimate.unit_raw!r})"
    print(f"  unit         {unit}")
    print(f"  cloud price  {money_text(estimate.cloud_price)} ({margin:.1f}% margin)")
    print(f"  core price   {money_text(estimate.core_price)} (fal cost, the user's own key)")
    print(f"  quantity     {exact_json.decimal_number_text(estimate.quantity)} {estimate.unit}")
    for flag in estimate.flags:
        print(f"  flag         {flag}")
    for note in estimate.notes:
        print(f"  note         {note}")
    return 0


def _cheapest(args: argparse.Namespace) -> int:
    inputs = parse_inputs(args.inputs)
    with opened_store() as (store, _), store.engine.connect() as connection:
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
        print_json(
            {"endpoint_id": answer.winner.endpoint_id, "candidates": answer.candidates, "estimate": estimate}
        )
        return 0
    print(f"cheapest {scope} {need} ({answer.candidates} considered): {answer.winner.endpoint_id}")
    print(f"  name         {answer.winner.model.name}")
    print(f"  cost         {money_text(estimate.cost)} at fal ({estimate.confidence}): {estimate.derivation}")
    print(f"  cloud price  {money_text(estimate.cloud_price)}")
    print(f"  core price   {money_text(estimate.core_price)}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("list", help="list and search the synced catalog")
    add_filters(listing)
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
