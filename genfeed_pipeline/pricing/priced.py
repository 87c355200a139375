"""A GenFeed model with its fal price, its rate card, its cost per call and GenFeed's price: the
`priced_models` value.

A model is priced by building its rate card (`rate_card.py`) and evaluating it at the schema's defaults
(`evaluate.py`): `cost_per_call` and `price_per_call` are that evaluation, as every other reader of the
card would compute it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from genfeed_pipeline.exact_json import ExactJson
from genfeed_pipeline.fal.catalog import DataSource, PriceLookup, PriceStatus
from genfeed_pipeline.mapping.model import Capabilities, GenFeedModel, ModelType
from genfeed_pipeline.pricing.evaluate import Evaluation, RateCardError, RateCardInputError, evaluate
from genfeed_pipeline.pricing.policy import PricingPolicy, billing_json, margin_of, resale_unit_price
from genfeed_pipeline.pricing.rate_card import build_rate_card
from genfeed_pipeline.pricing.terms import terms_for
from genfeed_pipeline.pricing.units import BillingUnit, UnitKind, is_stub_price, normalize_unit
from genfeed_pipeline.runtime import collector_paused
from genfeed_pipeline.settings import Deployment
from genfeed_pipeline.sync.enabled import PolicyVerdict, policy_verdict

STUB_FLAG = "stub price (1 unit at $1)"
STUB_ERROR = "stub price"
NO_PRICE_ERROR = "no price"
NO_COST_FLAG = "cost cannot be estimated: compute seconds without fal's duration estimate"

_CONFIDENCE_RANK = {"exact": 0, "approximate": 1, "estimated": 2}
NOT_DECIDED = PolicyVerdict(False, "not priced")


@dataclass(frozen=True)
class PricedModel:
    model: GenFeedModel
    unit_raw: str | None  # fal's unit as sent
    unit: str | None  # normalised
    unit_price: Decimal | None  # fal's price per unit: GenFeed's cost
    price_status: PriceStatus
    price_source: DataSource | None
    price_seen_at: datetime | None
    price_origin: str | None  # who recorded the price ("fal /models/pricing", a dated public dump …)
    flags: tuple[str, ...]
    cost_per_call: Decimal | None  # fal cost of a call with the schema's defaults, rounded up to 10 places
    cost_derivation: str | None
    cost_confidence: str | None
    price_per_call: Decimal | None  # what GenFeed charges for that call in this deployment
    resale_unit_price: Decimal | None
    billing: ExactJson  # GenFeed's pricing JSON (Decimal prices); {} exactly when the model is not priced
    validation_errors: tuple[str, ...]
    billing_unit: BillingUnit | None = None
    stub: bool = False
    rate_card: ExactJson = None  # the rate card (JSON data, Decimal money); None when it cannot be priced
    enable_policy: PolicyVerdict = NOT_DECIDED  # step (3) of the enable rule, decided with the price

    @property
    def endpoint_id(self) -> str:
        return self.model.endpoint_id

    @property
    def valid(self) -> bool:
        return not self.validation_errors

    @property
    def priced(self) -> bool:
        return self.cost_per_call is not None

    @property
    def unit_known(self) -> bool:
        return self.billing_unit is not None and self.billing_unit.kind is not UnitKind.UNKNOWN

    @property
    def margin(self) -> Decimal | None:
        if self.price_per_call is None or self.cost_per_call is None:
            return None
        return margin_of(self.price_per_call, self.cost_per_call)

    @property
    def margin_pct(self) -> Decimal | None:
        margin = self.margin
        return None if margin is None else margin * 100

    @property
    def provenance(self) -> dict[str, Any]:
        return {
            "source": self.price_source.value if self.price_source else None,
            "seen_at": self.price_seen_at.isoformat() if self.price_seen_at else None,
            "origin": self.price_origin,
            "unit_raw": self.unit_raw,
        }


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))


def price_model(model: GenFeedModel, lookup: PriceLookup | None, policy: PricingPolicy) -> PricedModel:
    """Price one model from fal's answer for it (None: fal's pricing said nothing about it)."""
    errors: list[str] = list(model.validation_errors)
    flags: list[str] = []
    quote = lookup.quote if lookup is not None and lookup.status is PriceStatus.PRICED else None
    status = lookup.status if lookup is not None else PriceStatus.NOT_FOUND

    if quote is None:
        if lookup is not None and lookup.status is PriceStatus.FAILED:
            errors.append(f"{NO_PRICE_ERROR} (price fetch failed)")
        else:
            errors.append(NO_PRICE_ERROR)
        return with_policy(
            PricedModel(
                model=model,
                unit_raw=None,
                unit=None,
                unit_price=None,
                price_status=status,
                price_source=None,
                price_seen_at=None,
                price_origin=None,
                flags=(),
                cost_per_call=None,
                cost_derivation=None,
                cost_confidence=None,
                price_per_call=None,
                resale_unit_price=None,
                billing={},
                validation_errors=_dedupe(errors),
            ),
            policy.deployment,
        )

    unit_price = quote.unit_price
    unit = normalize_unit(quote.unit, unit_price)
    stub = is_stub_price(unit, unit_price)
    if unit.flag:
        flags.append(unit.flag)
    if stub:
        flags.append(STUB_FLAG)
        errors.append(STUB_ERROR)
    elif unit.kind is UnitKind.UNKNOWN:
        errors.append(f"unit unknown: {(quote.unit or '').strip()!r}")

    card: dict[str, Any] | None = None
    at_defaults: Evaluation | None = None
    if unit.priceable and not stub:
        card = build_rate_card(model, unit, unit_price, policy.rule(), terms_for(model.endpoint_id))
        if card is None:
            flags.append(NO_COST_FLAG)
        else:
            try:
                at_defaults = evaluate(card)
            except (RateCardInputError, RateCardError) as exc:
                flags.append(f"the schema's defaults cannot be priced: {exc}")
                card = None
            else:
                flags.extend(card["flags"])
                if card["confidence"] != "exact":
                    flags.append(f"cost {card['confidence']}")

    priced = card is not None and at_defaults is not None
    priced_model = PricedModel(
        model=model,
        unit_raw=quote.unit,
        unit=unit.normalized,
        unit_price=unit_price,
        price_status=status,
        price_source=quote.source,
        price_seen_at=quote.seen_at,
        price_origin=quote.origin,
        flags=_dedupe(flags),
        cost_per_call=at_defaults.cost if at_defaults else None,
        cost_derivation=at_defaults.derivation if at_defaults else None,
        cost_confidence=card["confidence"] if card is not None and priced else None,
        price_per_call=at_defaults.price if at_defaults else None,
        resale_unit_price=resale_unit_price(unit_price, policy) if priced else None,
        billing=billing_json(card, at_defaults, unit, model.category, policy)
        if card is not None and at_defaults is not None
        else {},
        validation_errors=_dedupe(errors),
        billing_unit=unit,
        stub=stub,
        rate_card=card if priced else None,
    )
    return with_policy(priced_model, policy.deployment)


def with_policy(priced: PricedModel, deployment: Deployment | str) -> PricedModel:
    """The model with step (3) of the enable rule decided, once, for `deployment`."""
    verdict = policy_verdict(
        valid=priced.valid,
        priced=priced.priced
        and priced.price_per_call is not None
        and priced.cost_per_call is not None
        and priced.price_per_call > priced.cost_per_call,
        unit_known=priced.unit_known,
        stub=priced.stub,
        deployment=deployment,
    )
    return replace(priced, enable_policy=verdict)


def price_catalog(
    models: Mapping[str, GenFeedModel], prices: Mapping[str, PriceLookup], policy: PricingPolicy
) -> dict[str, PricedModel]:
    priced: dict[str, PricedModel] = {}
    with collector_paused():
        for endpoint_id, model in models.items():
            try:
                priced[endpoint_id] = price_model(model, prices.get(endpoint_id), policy)
            except ArithmeticError as exc:
                unusable = replace(
                    model, validation_errors=(*model.validation_errors, f"price unusable: {exc!r}")
                )
                priced[endpoint_id] = price_model(unusable, None, policy)
    return priced


def policy_enabled(priced: PricedModel, policy: PricingPolicy) -> bool:
    """Step (3) of the enable rule (`sync/enabled.py`) for `policy`'s deployment."""
    return with_policy(priced, policy.deployment).enable_policy.enabled


# -- workflows and choosing a model ---------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowStepEstimate:
    endpoint_id: str
    inputs: dict[str, Any]
    evaluation: Evaluation | None
    cost: Decimal | None
    price: Decimal | None
    problem: str | None = None  # why the step could not be priced


@dataclass(frozen=True)
class WorkflowEstimate:
    steps: tuple[WorkflowStepEstimate, ...]
    total_cost: Decimal  # sum of the priced steps' costs
    total_price: Decimal  # sum of the priced steps' prices (each call is charged, and rounded, on its own)
    confidence: str
    unpriced: tuple[str, ...] = field(default=())

    @property
    def complete(self) -> bool:
        return not self.unpriced

    @property
    def margin(self) -> Decimal:
        return margin_of(self.total_price, self.total_cost)


def estimate_workflow(
    steps: list[tuple[PricedModel, dict[str, Any]]], policy: PricingPolicy
) -> WorkflowEstimate:
    """Cost and price of running each step once with its inputs (the schema's defaults fill the gaps)."""
    results: list[WorkflowStepEstimate] = []
    total_cost = Decimal(0)
    total_price = Decimal(0)
    confidence = "exact"
    unpriced: list[str] = []
    for priced, inputs in steps:
        inputs = dict(inputs or {})
        problem = None
        evaluation = None
        if priced.rate_card is None:
            problem = "; ".join(priced.validation_errors or priced.flags) or "not priced"
        else:
            try:
                evaluation = evaluate(priced.rate_card, inputs, policy.rule())
            except RateCardInputError as exc:
                problem = str(exc)
        if evaluation is None:
            results.append(WorkflowStepEstimate(priced.endpoint_id, inputs, None, None, None, problem))
            unpriced.append(priced.endpoint_id)
            continue
        results.append(
            WorkflowStepEstimate(priced.endpoint_id, inputs, evaluation, evaluation.cost, evaluation.price)
        )
        total_cost += evaluation.cost
        total_price += evaluation.price
        if _CONFIDENCE_RANK[evaluation.confidence] > _CONFIDENCE_RANK[confidence]:
            confidence = evaluation.confidence
    return WorkflowEstimate(
        steps=tuple(results),
        total_cost=total_cost,
        total_price=total_price,
        confidence=confidence,
        unpriced=tuple(unpriced),
    )


_CAPABILITY_FIELDS = tuple(f.name for f in fields(Capabilities))


def capability_names(capabilities: Capabilities) -> frozenset[str]:
    """Names of the truthy `Capabilities` fields, plus "input:<media>" for each accepted input medium."""
    names = {name for name in _CAPABILITY_FIELDS if getattr(capabilities, name)}
    names.update(f"input:{media}" for media in capabilities.accepted_input_media)
    return frozenset(names)


def cheapest_model(
    models: Iterable[PricedModel],
    *,
    category: ModelType | str,
    capabilities: set[str] | frozenset[str] = frozenset(),
    inputs: dict[str, Any] | None = None,
) -> PricedModel | None:
    """The cheapest valid, priced model of `category` with every capability asked for.

    The cost compared is the cost per call at the schema's defaults, or with `inputs` when given (models
    whose cost cannot be computed for those inputs are skipped). Ties go to the lower endpoint id.
    """
    wanted = ModelType(category)
    needed = frozenset(capabilities)
    best: tuple[Decimal, str, PricedModel] | None = None
    for priced in models:
        if priced.model.category is not wanted or not priced.valid or not priced.priced:
            continue
        if needed and not needed <= capability_names(priced.model.capabilities):
            continue
        if inputs and priced.rate_card is not None:
            try:
                cost: Decimal | None = evaluate(priced.rate_card, inputs).exact_cost
            except RateCardInputError:
                cost = None
        else:
            cost = priced.cost_per_call
        if cost is None:
            continue
        candidate = (cost, priced.endpoint_id, priced)
        if best is None or candidate[:2] < best[:2]:
            best = candidate
    return best[2] if best else None
