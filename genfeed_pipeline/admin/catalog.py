"""The synced catalog, read back: models rebuilt from their rows, and the queries behind the CLI.

A row of `models` carries everything pricing needs (mapped input schema, capabilities, fal's unit and
unit price), so a `GenFeedModel` and a `PricedModel` can be rebuilt from it and handed to the same
functions the pipeline uses (`estimate_cost`, `price_model`, `cheapest_model`): an estimate here is the
sync's own arithmetic, not a second implementation of it.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from genfeed_pipeline.admin.errors import AdminError, UnknownModel
from genfeed_pipeline.admin.filters import ModelFilter, capabilities_from_json, owner_of
from genfeed_pipeline.db.tables import model_admin_actions, models
from genfeed_pipeline.fal.catalog import DataSource, PriceLookup, PriceQuote, PriceStatus
from genfeed_pipeline.mapping.model import GenFeedModel, ModelType
from genfeed_pipeline.pricing import (
    PricedModel,
    PricingPolicy,
    UnitKind,
    cheapest_model,
    estimate_cost,
    is_stub_price,
    normalize_unit,
    price_model,
    price_per_call,
)
from genfeed_pipeline.settings import Deployment
from genfeed_pipeline.sync.history import price_history, schema_history
from genfeed_pipeline.sync.store import CatalogStore

Row = dict[str, Any]

CLOUD = PricingPolicy(deployment=Deployment.CLOUD)
CORE = PricingPolicy(deployment=Deployment.CORE)


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


def price_lookup_from_row(row: Mapping[str, Any]) -> PriceLookup:
    if row.get("unit_price") is None:
        return PriceLookup(PriceStatus.NOT_FOUND)
    source = row.get("price_source")
    quote = PriceQuote(
        endpoint_id=str(row["id"]),
        unit_price=Decimal(row["unit_price"]),
        unit=row.get("unit_raw") or row.get("unit") or "",
        currency="USD",
        source=DataSource(source) if source in DataSource.__members__.values() else DataSource.CACHE,
        seen_at=row.get("price_seen_at") or row.get("last_synced_at") or datetime.min,
        origin="the models table",
    )
    return PriceLookup(PriceStatus.PRICED, quote)


def priced_from_row(row: Mapping[str, Any], policy: PricingPolicy) -> PricedModel:
    """The row priced again under `policy` (its validation errors, price errors among them, kept).

    Compute-second models have no fal duration estimate in the row; their stored cost (which no input
    changes) stands in when re-pricing cannot compute one.
    """
    priced = price_model(model_from_row(row), price_lookup_from_row(row), policy)
    stored_cost = row.get("cost_per_call")
    unit = priced.billing_unit
    if (
        priced.cost_per_call is None
        and stored_cost is not None
        and unit is not None
        and unit.kind is UnitKind.COMPUTE_SECOND
    ):
        cost = Decimal(stored_cost)
        priced = replace(
            priced,
            cost_per_call=cost,
            cost_derivation=row.get("cost_derivation"),
            cost_confidence=row.get("cost_confidence") or "estimated",
            price_per_call=price_per_call(cost, policy),
        )
    return priced


# -- reading -----------------------------------------------------------------------------------------


def load_rows(connection: sa.Connection, *, with_schemas: bool = False) -> dict[str, Row]:
    return CatalogStore.load_rows(connection, with_schemas=with_schemas)


def find_models(connection: sa.Connection, model_filter: ModelFilter) -> list[Row]:
    return model_filter.select(load_rows(connection).values())


def _suggestions(endpoint_id: str, known: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(endpoint_id, list(known), n=3, cutoff=0.75)


def get_rows(
    connection: sa.Connection, endpoint_ids: Sequence[str], *, with_schemas: bool = False
) -> dict[str, Row]:
    """The rows of `endpoint_ids`, in the order given; `UnknownModel` names every id not in the table."""
    wanted = list(dict.fromkeys(endpoint_id.strip() for endpoint_id in endpoint_ids))
    columns = [c for c in models.c if with_schemas or c.name not in ("input_schema", "output_schema")]
    found: dict[str, Row] = {}
    for start in range(0, len(wanted), 500):
        query = sa.select(*columns).where(models.c.id.in_(wanted[start : start + 500]))
        found |= {row["id"]: dict(row) for row in connection.execute(query).mappings()}
    missing = [endpoint_id for endpoint_id in wanted if endpoint_id not in found]
    if missing:
        known = connection.execute(sa.select(models.c.id)).scalars().all()
        hints = _suggestions(missing[0], known) if len(missing) == 1 else []
        raise UnknownModel(missing, hints)
    return {endpoint_id: found[endpoint_id] for endpoint_id in wanted}


def get_row(connection: sa.Connection, endpoint_id: str) -> Row:
    return get_rows(connection, [endpoint_id], with_schemas=True)[endpoint_id]


def admin_actions(connection: sa.Connection, endpoint_id: str) -> list[Row]:
    query = (
        sa.select(model_admin_actions)
        .where(model_admin_actions.c.endpoint_id == endpoint_id)
        .order_by(model_admin_actions.c.at, model_admin_actions.c.id)
    )
    return [dict(row) for row in connection.execute(query).mappings()]


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
    row: Row
    inputs: list[SchemaField]
    outputs: list[SchemaField]
    price_history: list[Row]
    schema_history: list[Row]
    admin_actions: list[Row]


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


def check_inputs(model: GenFeedModel, inputs: Mapping[str, Any]) -> None:
    """Refuse input names the schema does not have, and values outside an enum, before pricing them:
    a typo would otherwise be priced silently at the schema's default."""
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
        if not isinstance(value, str) or not isinstance(node, Mapping):
            continue
        alternatives = [node, *[a for a in node.get("any_of") or () if isinstance(a, Mapping)]]
        free_text = any(a.get("type") == "string" and not a.get("enum") for a in alternatives)
        choices = _choices(node)
        if choices and not free_text and value not in choices:
            shown = ", ".join(str(choice) for choice in choices)
            raise AdminError(f"{model.endpoint_id}: {name} must be one of {shown}, not {value!r}")


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


def estimate_request(
    row: Mapping[str, Any],
    inputs: Mapping[str, Any],
    *,
    cloud: PricingPolicy = CLOUD,
    core: PricingPolicy = CORE,
) -> Estimate:
    """fal's cost of one call of the row's model with `inputs` (the schema's defaults fill the gaps),
    and what GenFeed charges for it in cloud and in core."""
    model = model_from_row(row)
    check_inputs(model, inputs)
    endpoint_id = model.endpoint_id
    if row.get("unit_price") is None:
        raise AdminError(f"{endpoint_id} has no fal price in the models table; it cannot be estimated")
    unit_price = Decimal(row["unit_price"])
    unit = normalize_unit(row.get("unit_raw") or row.get("unit"), unit_price)
    if not unit.priceable:
        raise AdminError(f"{endpoint_id} is billed per {unit.raw!r}, which cannot be priced ({unit.flag})")
    if is_stub_price(unit, unit_price):
        raise AdminError(
            f"{endpoint_id}: fal's price is a placeholder (1 {unit.normalized} at $1), not priced"
        )
    estimate = estimate_cost(model, unit_price, unit, dict(inputs))
    if estimate is None:
        priced = priced_from_row(row, cloud)
        if priced.cost_per_call is None:
            raise AdminError(f"{endpoint_id}: the cost of a call cannot be estimated ({unit.normalized})")
        cost = priced.cost_per_call
        derivation = f"{row.get('cost_derivation')} (inputs do not change a compute-time estimate)"
        quantity, confidence, flags = cost / unit_price if unit_price else Decimal(0), "estimated", ()
    else:
        cost, quantity, derivation = estimate.usd, estimate.quantity, estimate.derivation
        confidence, flags = estimate.confidence, estimate.flags
    return Estimate(
        endpoint_id=endpoint_id,
        inputs=dict(inputs),
        unit=unit.normalized,
        unit_raw=row.get("unit_raw"),
        unit_price=unit_price,
        cost=cost,
        quantity=quantity,
        derivation=derivation,
        confidence=confidence,
        flags=tuple(flags),
        cloud_price=price_per_call(cost, cloud),
        core_price=price_per_call(cost, core),
    )


def _accepts(row: Mapping[str, Any], inputs: Mapping[str, Any]) -> bool:
    try:
        check_inputs(model_from_row(row), inputs)
    except AdminError:
        return False
    properties = (row.get("input_schema") or {}).get("properties") or {}
    return set(inputs) <= set(properties)


@dataclass(frozen=True)
class CheapestAnswer:
    winner: PricedModel | None
    estimate: Estimate | None
    candidates: int  # models of the type, with every capability, considered
    notes: list[str] = field(default_factory=list)


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
    enabled ones). With `inputs`, the cost compared is that request's; models lacking one of the inputs
    are not candidates.
    """
    wanted = ModelFilter(category=category, capabilities=tuple(capabilities))
    if wanted.category not in ModelType.__members__.values():
        raise AdminError(f"type must be one of {', '.join(t.value for t in ModelType)}, not {category!r}")
    candidates = []
    for row in wanted.select(rows):
        if not include_disabled and (not row.get("enabled") or row.get("status") != "active"):
            continue
        if inputs and not _accepts(row, inputs):
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
        return CheapestAnswer(None, None, len(candidates))
    row = next(row for row in candidates if row["id"] == winner.endpoint_id)
    return CheapestAnswer(winner, estimate_request(row, inputs or {}), len(candidates))
