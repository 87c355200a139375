"""The synced catalog, read back: the queries behind the CLI and the admin jobs.

A row of `models` carries its rate card, so every price here is the card evaluated by the one evaluator
(`pricing.evaluate`) — the same arithmetic as the sync's `cost_per_call` and GenFeed's app — never a
second pricing of the model.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from genfeed_pipeline.admin.errors import AdminError, UnknownModel
from genfeed_pipeline.admin.filters import ModelFilter, capabilities_from_json, owner_of
from genfeed_pipeline.db.tables import ModelRow, model_admin_actions, models
from genfeed_pipeline.exact_json import decimal_number_text
from genfeed_pipeline.fal.catalog import DataSource, PriceStatus
from genfeed_pipeline.mapping.model import GenFeedModel, ModelType
from genfeed_pipeline.pricing import (
    CLOUD,
    CORE,
    PricedModel,
    PricingPolicy,
    RateCardInputError,
    cheapest_model,
    evaluate,
    is_stub_price,
    normalize_unit,
    resale_unit_price,
    to_decimal,
)
from genfeed_pipeline.sync.history import model_history, price_history, schema_history
from genfeed_pipeline.sync.store import load_rows

# -- rows → models ---------------------------------------------------------------------------------


def model_from_row(row: Mapping[str, Any]) -> GenFeedModel:
    category = row.get("category")
    return GenFeedModel(
        endpoint_id=str(row["id"]),
        name=str(row.get("name") or row["id"]),
        category=ModelType(category) if category in ModelType.__members__.values() else None,
        fal_category=row.get("fal_category"),
        status=row.get("status") or "active",
        owner=row.get("owner") or owner_of(str(row["id"])),
        description=row.get("description"),
        version=row.get("schema_version"),
        input_schema=row.get("input_schema"),
        output_schema=row.get("output_schema"),
        capabilities=capabilities_from_json(row.get("capabilities")),
        schema_hash=row.get("schema_hash"),
        schema_status="reused",
        validation_errors=tuple(row.get("validation_errors") or ()),
        provider=row.get("provider") or "fal",
    )


def priced_from_row(row: Mapping[str, Any], policy: PricingPolicy) -> PricedModel:
    """The row as the sync priced it, its cost and price per call evaluated from its rate card under
    `policy` (a row without a card is unpriced; its validation errors, price errors among them, kept)."""
    card = row.get("rate_card") if isinstance(row.get("rate_card"), Mapping) else None
    unit_price = to_decimal(row.get("unit_price"))
    unit = (
        normalize_unit(row.get("unit_raw") or row.get("unit"), unit_price) if unit_price is not None else None
    )
    at_defaults = evaluate(card, {}, policy.rule()) if card is not None else None
    source = row.get("price_source")
    return PricedModel(
        model=model_from_row(row),
        unit_raw=row.get("unit_raw"),
        unit=row.get("unit"),
        unit_price=unit_price,
        price_status=PriceStatus.PRICED if unit_price is not None else PriceStatus.NOT_FOUND,
        price_source=DataSource(source) if source in DataSource.__members__.values() else None,
        price_seen_at=row.get("price_seen_at"),
        price_origin="the models table",
        flags=tuple(row.get("price_flags") or ()),
        cost_per_call=at_defaults.cost if at_defaults else None,
        cost_derivation=at_defaults.derivation if at_defaults else None,
        cost_confidence=at_defaults.confidence if at_defaults else None,
        price_per_call=at_defaults.price if at_defaults else None,
        resale_unit_price=resale_unit_price(unit_price, policy)
        if at_defaults and unit_price is not None
        else None,
        billing=dict(row.get("pricing") or {}) if isinstance(row.get("pricing"), Mapping) else {},
        validation_errors=tuple(row.get("validation_errors") or ()),
        billing_unit=unit,
        stub=unit is not None and unit_price is not None and is_stub_price(unit, unit_price),
        rate_card=dict(card) if card is not None else None,
    )


# -- reading -----------------------------------------------------------------------------------------


def find_models(connection: sa.Connection, model_filter: ModelFilter) -> list[ModelRow]:
    return model_filter.select(load_rows(connection).values())


def _suggestions(endpoint_id: str, known: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(endpoint_id, list(known), n=3, cutoff=0.75)


def get_rows(
    connection: sa.Connection, endpoint_ids: Sequence[str], *, with_schemas: bool = False
) -> dict[str, ModelRow]:
    """The rows of `endpoint_ids`, in the order given; `UnknownModel` names every id not in the table."""
    wanted = list(dict.fromkeys(endpoint_id.strip() for endpoint_id in endpoint_ids))
    columns = [c for c in models.c if with_schemas or c.name not in ("input_schema", "output_schema")]
    found: dict[str, ModelRow] = {}
    for start in range(0, len(wanted), 500):
        query = sa.select(*columns).where(models.c.id.in_(wanted[start : start + 500]))
        found |= {row["id"]: dict(row) for row in connection.execute(query).mappings()}
    missing = [endpoint_id for endpoint_id in wanted if endpoint_id not in found]
    if missing:
        known = connection.execute(sa.select(models.c.id)).scalars().all()
        hints = _suggestions(missing[0], known) if len(missing) == 1 else []
        raise UnknownModel(missing, hints)
    return {endpoint_id: found[endpoint_id] for endpoint_id in wanted}


def get_row(connection: sa.Connection, endpoint_id: str) -> ModelRow:
    return get_rows(connection, [endpoint_id], with_schemas=True)[endpoint_id]


def admin_actions(connection: sa.Connection, endpoint_id: str) -> list[dict[str, Any]]:
    return model_history(connection, model_admin_actions, endpoint_id)


# -- one model ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaField:
    name: str
    type: str
    required: bool
    default: Any = None
    has_default: bool = False
    choices: tuple[Any, ...] = ()


def type_label(node: Mapping[str, Any]) -> str:
    """`string`, `integer | null`, `object | string`, `array of image file` …"""
    kind = node.get("type") or "any"
    if kind == "any" and node.get("any_of"):
        label = " | ".join(type_label(alternative) for alternative in node["any_of"])
    elif kind == "array" and isinstance(node.get("items"), dict):
        label = f"array of {type_label(node['items'])}"
    elif isinstance(node.get("file"), dict):
        label = f"{node['file'].get('media') or 'file'} file"
    else:
        label = str(kind)
    return f"{label} | null" if node.get("nullable") else label


def _choices(node: Mapping[str, Any]) -> tuple[Any, ...]:
    values = list(node.get("enum") or ())
    for alternative in node.get("any_of") or ():
        if isinstance(alternative, dict):
            values.extend(alternative.get("enum") or ())
    return tuple(values)


def schema_fields(schema: Mapping[str, Any] | None) -> list[SchemaField]:
    """The top-level properties of a normalised schema, in fal's order."""
    if not isinstance(schema, Mapping) or not isinstance(schema.get("properties"), Mapping):
        return []
    required = set(schema.get("required") or ())
    return [
        SchemaField(
            name=name,
            type=type_label(node),
            required=name in required,
            default=node.get("default"),
            has_default=bool(node.get("has_default")) or node.get("default") is not None,
            choices=_choices(node),
        )
        for name, node in schema["properties"].items()
        if isinstance(node, Mapping)
    ]


@dataclass(frozen=True)
class ModelDetails:
    row: ModelRow
    inputs: list[SchemaField]
    outputs: list[SchemaField]
    price_history: list[ModelRow]
    schema_history: list[ModelRow]
    admin_actions: list[ModelRow]


def model_details(connection: sa.Connection, endpoint_id: str) -> ModelDetails:
    row = get_row(connection, endpoint_id)
    return ModelDetails(
        row=row,
        inputs=schema_fields(row.get("input_schema")),
        outputs=schema_fields(row.get("output_schema")),
        price_history=price_history(connection, endpoint_id),
        schema_history=schema_history(connection, endpoint_id),
        admin_actions=admin_actions(connection, endpoint_id),
    )


# -- estimates ---------------------------------------------------------------------------------------


def parse_inputs(text: str | None) -> dict[str, Any]:
    """`--inputs` JSON: an object of input names to values."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AdminError(f"--inputs is not valid JSON ({exc.msg} at character {exc.pos}): {text!r}") from None
    if not isinstance(value, dict):
        raise AdminError(
            f"--inputs must be a JSON object of input names to values, not {type(value).__name__}"
        )
    return value


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float, Decimal),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def _fits(kind: str, value: Any) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, _JSON_TYPES.get(kind, ()))


def _value_problem(node: Mapping[str, Any], value: Any) -> str | None:
    """Why `value` does not fit a normalised schema node (type, enum, range), or None when it does."""
    alternatives = [node, *[a for a in node.get("any_of") or () if isinstance(a, Mapping)]]
    types = {a.get("type") for a in alternatives if a.get("type") not in (None, "any")}
    if value is None:
        return None
    if types and not any(_fits(kind, value) for kind in types):
        return f"must be {' or '.join(sorted(types))}, not {value!r}"
    if isinstance(value, str):
        choices = _choices(node)
        free_text = any(a.get("type") == "string" and not a.get("enum") for a in alternatives)
        if choices and not free_text and value not in choices:
            return f"must be one of {', '.join(str(choice) for choice in choices)}, not {value!r}"
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    number = to_decimal(value)
    low, high = to_decimal(node.get("minimum")), to_decimal(node.get("maximum"))
    if number is None or ((low is None or number >= low) and (high is None or number <= high)):
        return None
    what = "an integer" if "integer" in types else "a number"
    if low is not None and high is not None:
        allowed = f"{what} from {decimal_number_text(low)} to {decimal_number_text(high)}"
    elif low is not None:
        allowed = f"{what} of at least {decimal_number_text(low)}"
    else:
        allowed = f"{what} of at most {decimal_number_text(high)}" if high is not None else what
    shown = int(number) if number == number.to_integral_value() else value
    return f"must be {allowed}, not {shown}"


def check_inputs(model: GenFeedModel, inputs: Mapping[str, Any]) -> None:
    """Refuse input names the schema does not have, and values of the wrong type, outside an enum or out of
    range, before pricing them: a typo would otherwise be priced silently at the schema's default."""
    properties = (model.input_schema or {}).get("properties")
    if not isinstance(properties, Mapping) or not properties:
        return
    unknown = [name for name in inputs if name not in properties]
    if unknown:
        raise AdminError(
            f"{model.endpoint_id} has no input {', '.join(repr(n) for n in unknown)}; "
            f"its inputs: {', '.join(properties)}"
        )
    for name, value in inputs.items():
        node = properties[name]
        if isinstance(node, Mapping) and (problem := _value_problem(node, value)):
            raise AdminError(f"{model.endpoint_id}: {name} {problem}")


@dataclass(frozen=True)
class Estimate:
    endpoint_id: str
    inputs: dict[str, Any]
    unit: str
    unit_raw: str | None
    unit_price: Decimal
    cost: Decimal
    quantity: Decimal
    derivation: str
    confidence: str
    flags: tuple[str, ...]
    cloud_price: Decimal
    core_price: Decimal
    notes: tuple[str, ...] = ()


def estimate_request(
    row: Mapping[str, Any],
    inputs: Mapping[str, Any],
    *,
    cloud: PricingPolicy = CLOUD,
    core: PricingPolicy = CORE,
) -> Estimate:
    """fal's cost of one call of the row's model with `inputs` (the card's defaults fill the gaps), and what
    GenFeed charges for it in cloud and in core: the row's rate card, evaluated under both rules."""
    model = model_from_row(row)
    check_inputs(model, inputs)
    endpoint_id = model.endpoint_id
    card = row.get("rate_card")
    if not isinstance(card, Mapping):
        why = "; ".join(row.get("price_flags") or row.get("validation_errors") or ()) or "no fal price"
        raise AdminError(
            f"{endpoint_id} has no rate card in the models table, so it cannot be priced ({why})"
        )
    try:
        in_cloud = evaluate(card, inputs, cloud.rule())
        in_core = evaluate(card, inputs, core.rule())
    except RateCardInputError as exc:
        raise AdminError(f"{endpoint_id}: {exc}") from None
    return Estimate(
        endpoint_id=endpoint_id,
        inputs=dict(inputs),
        unit=str(card["unit"]),
        unit_raw=row.get("unit_raw"),
        unit_price=to_decimal(card["unit_price"]) or Decimal(0),
        cost=in_cloud.cost,
        quantity=in_cloud.quantity,
        derivation=in_cloud.derivation,
        confidence=in_cloud.confidence,
        flags=in_cloud.flags,
        cloud_price=in_cloud.price,
        core_price=in_core.price,
        notes=in_cloud.notes,
    )


def refusal(row: Mapping[str, Any], inputs: Mapping[str, Any]) -> str | None:
    """Why the row's model cannot price `inputs` (an input it lacks, a wrong type, out of range, or a
    value its rate card refuses), naming the input; None when it can."""
    try:
        check_inputs(model_from_row(row), inputs)
    except AdminError as error:
        return str(error).split(": ", 1)[-1] if str(error).startswith(str(row["id"])) else str(error)
    card = row.get("rate_card")
    if isinstance(card, Mapping):
        try:
            evaluate(card, inputs)
        except RateCardInputError as error:
            return str(error)
    return None


@dataclass(frozen=True)
class CheapestAnswer:
    winner: PricedModel | None
    estimate: Estimate | None
    candidates: int  # models of the type, with every capability, that accept the inputs
    refused: dict[str, int] = field(default_factory=dict)  # why models were left out → how many


def cheapest_for(
    rows: Iterable[Mapping[str, Any]],
    *,
    category: str,
    capabilities: Sequence[str] = (),
    inputs: Mapping[str, Any] | None = None,
    policy: PricingPolicy = CLOUD,
    include_disabled: bool = False,
) -> CheapestAnswer:
    """The cheapest valid, priced model of a type with the capabilities asked for, by `cheapest_model`.

    Only enabled, active models are candidates unless `include_disabled` (GenFeed's users can only run
    enabled ones). With `inputs`, the cost compared is that request's; a model that lacks one of the inputs,
    or cannot take a value given, is left out, and `refused` says why.
    """
    wanted = ModelFilter(category=category, capabilities=tuple(capabilities))
    if wanted.category not in ModelType.__members__.values():
        raise AdminError(f"type must be one of {', '.join(t.value for t in ModelType)}, not {category!r}")
    candidates = []
    refused: Counter[str] = Counter()
    for row in wanted.select(rows):
        if not include_disabled and (not row.get("enabled") or row.get("status") != "active"):
            continue
        if inputs and (why := refusal(row, inputs)):
            refused[why] += 1
            continue
        candidates.append(row)
    priced = [priced_from_row(row, policy) for row in candidates]
    winner = cheapest_model(
        priced,
        category=ModelType(wanted.category),
        capabilities=frozenset(wanted.capabilities),
        inputs=dict(inputs) if inputs else None,
    )
    if winner is None:
        return CheapestAnswer(None, None, len(candidates), dict(refused.most_common()))
    row = next(row for row in candidates if row["id"] == winner.endpoint_id)
    return CheapestAnswer(
        winner, estimate_request(row, inputs or {}), len(candidates), dict(refused.most_common())
    )
