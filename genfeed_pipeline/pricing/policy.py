"""What GenFeed charges, from what fal charges: the contract's "Pricing rules", exactly.

A deployment's rule for one request (the `price` of every rate card): price = max(cost ÷ (1 − margin),
min_price), rounded up to `step`, from the unrounded cost. Cloud (GenFeed's own fal key): margin 0.70,
min_price $0.001, step $0.0001. Core (the user's own key): margin 0, min_price 0, no step: the cost itself,
as stored (rounded up to 10 decimal places).

The per-unit figures of the `pricing` JSON are the same rule per unit, for apps that bill per unit:
unit price ÷ (1 − margin) rounded up to `unit_step` ($0.000001), no floor; in core the unit price itself.

Money is `Decimal` throughout and is rounded exactly once, toward +∞, so that a price is never below the
cost it is derived from (flux/dev: 0.025 ÷ 0.3 = 0.08333… → 0.0834).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from genfeed_pipeline.mapping.model import ModelType
from genfeed_pipeline.pricing.evaluate import Evaluation, apply_rule, output_megapixels
from genfeed_pipeline.pricing.money import plain, round_up, to_decimal
from genfeed_pipeline.pricing.units import BillingUnit, UnitKind
from genfeed_pipeline.settings import Deployment

ONE_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class PricingPolicy:
    deployment: Deployment = Deployment.CLOUD
    margin: Decimal = Decimal("0.70")
    floor: Decimal = Decimal("0.001")
    call_step: Decimal = Decimal("0.0001")
    unit_step: Decimal = Decimal("0.000001")

    def __post_init__(self) -> None:
        for name in ("margin", "floor", "call_step", "unit_step"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                object.__setattr__(self, name, _as_decimal(value, name))
        object.__setattr__(self, "deployment", Deployment(self.deployment))
        if not Decimal(0) <= self.margin < Decimal(1):
            raise ValueError(f"margin must be in [0, 1), not {self.margin}")
        if self.floor < 0 or self.call_step <= 0 or self.unit_step <= 0:
            raise ValueError("floor must be ≥ 0 and the rounding steps > 0")

    @property
    def is_cloud(self) -> bool:
        return self.deployment is Deployment.CLOUD

    @property
    def markup_divisor(self) -> Decimal:
        return Decimal(1) - self.margin

    def rule(self) -> dict[str, Any]:
        """The price rule a rate card carries for this deployment."""
        if not self.is_cloud:
            return {"margin": Decimal(0), "min_price": Decimal(0), "step": None}
        return {"margin": plain(self.margin), "min_price": plain(self.floor), "step": plain(self.call_step)}


CLOUD = PricingPolicy(deployment=Deployment.CLOUD)
CORE = PricingPolicy(deployment=Deployment.CORE)


def _as_decimal(value: Any, name: str) -> Decimal:
    parsed = to_decimal(value)
    if parsed is None:
        raise ValueError(f"{name} must be a number, not {value!r}")
    return parsed


def price_per_call(cost: Decimal, policy: PricingPolicy) -> Decimal:
    """What GenFeed charges for one call that costs `cost` (unrounded) at fal."""
    return apply_rule(cost, policy.rule())


def resale_unit_price(unit_price: Decimal, policy: PricingPolicy) -> Decimal:
    """GenFeed's price per fal unit (or per image, per second, per 1M tokens): no floor."""
    if not policy.is_cloud:
        return plain(unit_price)
    return plain(round_up(unit_price / policy.markup_divisor, policy.unit_step))


def margin_of(price: Decimal, cost: Decimal) -> Decimal:
    """(price - cost) / price; 0 for a free call."""
    if price == 0:
        return Decimal(0)
    return (price - cost) / price


def billing_json(
    card: Mapping[str, Any],
    at_defaults: Evaluation,
    unit: BillingUnit,
    category: ModelType | None,
    policy: PricingPolicy,
) -> dict[str, Any]:
    """GenFeed's `pricing` JSON for a managed row (contract, "The models table"): resale prices in USD for
    this deployment, as `Decimal` (written to the table as JSON numbers). Keys:

    * `image`: per output image at the schema's default size, for image- and megapixel-billed models, and
      `perMegapixel` for megapixel-billed ones (one started megapixel of one output image);
    * `video`: per second of output video, for second-billed video models;
    * `input` / `output`: per 1M tokens (fal publishes one token price; both carry it);
    * `perCall`: per call (per-request, per-video, per-generation, per-clip units): `price_per_call`;
    * `perUnit` + `unit`: any other unit (minutes, characters, compute seconds, steps, non-video seconds).

    `fixedPrice` belongs to people and is never written.
    """
    unit_price = to_decimal(card["unit_price"])
    assert unit_price is not None
    per_unit = unit_price / unit.per
    kind = unit.kind
    if kind is UnitKind.IMAGE:
        return {"image": resale_unit_price(per_unit, policy)}
    if kind is UnitKind.MEGAPIXEL:
        per_image = per_unit * output_megapixels(card)
        return {
            "image": resale_unit_price(per_image, policy),
            "perMegapixel": resale_unit_price(per_unit, policy),
        }
    if kind is UnitKind.SECOND and category is ModelType.VIDEO and not unit.input_based:
        return {"video": resale_unit_price(per_unit, policy)}
    if kind is UnitKind.TOKENS:
        per_million = resale_unit_price(per_unit * ONE_MILLION, policy)
        return {"input": per_million, "output": per_million}
    if kind in (UnitKind.CALL, UnitKind.CLIP):
        return {"perCall": at_defaults.price}
    return {"perUnit": resale_unit_price(unit_price, policy), "unit": unit.normalized}
