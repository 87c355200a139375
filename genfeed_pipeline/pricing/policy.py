"""What GenFeed charges, from what fal charges: the contract's "Pricing rules", exactly.

Cloud (GenFeed's own fal key): `price_per_call` = max(cost / (1 - margin), floor), rounded up to `call_step`;
per-unit resale prices = unit price / (1 - margin), rounded up to `unit_step`, no floor. Core (the user's
own key): the cost, no margin, no floor.

Money is `Decimal` throughout and is rounded exactly once, with `ROUND_CEILING` on the unrounded value, so
that a price is never below the cost it is derived from (flux/dev: 0.025 ÷ 0.3 = 0.08333… → 0.0834; rounding
the cost first could only move that).

Core and rounding: the contract says "the cost", so a core price is the cost itself. A cost can carry more
digits than anyone bills in (e.g. 121 frames / 24 fps at $0.07 per second); only then is it rounded up to
`unit_step` ($0.000001), which keeps it ≥ the cost and storable. Costs with ≤ 6 decimals (every fal example)
stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

from genfeed_pipeline.mapping.model import GenFeedModel, ModelType
from genfeed_pipeline.pricing.estimate import default_image_megapixels, to_decimal
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


def _as_decimal(value: Any, name: str) -> Decimal:
    parsed = to_decimal(value)
    if parsed is None:
        raise ValueError(f"{name} must be a number, not {value!r}")
    return parsed


def _round_up(value: Decimal, step: Decimal) -> Decimal:
    return value.quantize(step, rounding=ROUND_CEILING)


def _exact_or_up(value: Decimal, step: Decimal) -> Decimal:
    """`value` itself, unless it has more decimals than `step`: then rounded up to it."""
    exponent = value.as_tuple().exponent
    step_exponent = step.as_tuple().exponent
    if isinstance(exponent, int) and isinstance(step_exponent, int) and exponent >= step_exponent:
        return value
    rounded = _round_up(value, step)
    return value if rounded == value else rounded


def price_per_call(cost: Decimal, policy: PricingPolicy) -> Decimal:
    """What GenFeed charges for one call that costs `cost` (unrounded) at fal."""
    if policy.is_cloud:
        return _round_up(max(cost / policy.markup_divisor, policy.floor), policy.call_step)
    return _exact_or_up(cost, policy.unit_step)


def resale_unit_price(unit_price: Decimal, policy: PricingPolicy) -> Decimal:
    """GenFeed's price per fal unit (or per image, per second, per 1M tokens): no floor."""
    if policy.is_cloud:
        return _round_up(unit_price / policy.markup_divisor, policy.unit_step)
    return _exact_or_up(unit_price, policy.unit_step)


def margin_of(price: Decimal, cost: Decimal) -> Decimal:
    """(price - cost) / price; 0 for a free call."""
    if price == 0:
        return Decimal(0)
    return (price - cost) / price


def _money_text(value: Decimal) -> str:
    """The exact value, without an exponent or trailing zeros: Decimal("0.100000") → "0.1"."""
    text = f"{value.normalize():f}"
    return text if text != "-0" else "0"


def billing_json(
    model: GenFeedModel,
    unit: BillingUnit,
    unit_price: Decimal | None,
    cost: Decimal | None,
    policy: PricingPolicy,
) -> dict[str, str]:
    """GenFeed's `pricing` JSON for a managed row (contract, "The models table").

    Values are resale prices in USD for this deployment, written as **strings** of the exact Decimal
    ("0.0834"; trailing zeros dropped), so that no binary float ever touches money on its way to the app.
    Keys:

    * `image`: per output image at the schema's default size, for image- and megapixel-billed models;
    * `video`: per second of output video, for second-billed video models;
    * `input` / `output`: per 1M tokens (fal publishes one token price; both carry it);
    * `perCall`: per call (per-request, per-video, per-generation, per-clip units): `price_per_call`;
    * `perUnit` + `unit`: any other unit (minutes, characters, compute seconds, steps, non-video seconds).

    `fixedPrice` belongs to people and is never written. An unpriceable unit or a missing price gives {}.
    """
    if unit_price is None or not unit.priceable:
        return {}
    kind = unit.kind
    if kind is UnitKind.IMAGE:
        return {"image": _money_text(resale_unit_price(unit_price / unit.per, policy))}
    if kind is UnitKind.MEGAPIXEL:
        per_image, _ = default_image_megapixels(model)
        return {"image": _money_text(resale_unit_price(unit_price * per_image / unit.per, policy))}
    if kind is UnitKind.SECOND and model.category is ModelType.VIDEO and not unit.input_based:
        return {"video": _money_text(resale_unit_price(unit_price / unit.per, policy))}
    if kind is UnitKind.TOKENS:
        per_million = _money_text(resale_unit_price(unit_price * ONE_MILLION / unit.per, policy))
        return {"input": per_million, "output": per_million}
    if kind in (UnitKind.CALL, UnitKind.CLIP):
        if cost is None:
            return {}
        return {"perCall": _money_text(price_per_call(cost, policy))}
    return {"perUnit": _money_text(resale_unit_price(unit_price, policy)), "unit": unit.normalized}
