"""Money as `Decimal`: reading numbers without binary floating point, rounding up, and showing amounts."""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

from genfeed_pipeline.exact_json import decimal_number_text

STORAGE_STEP = Decimal("1e-10")
"""Costs (and prices without a rounding step of their own) are stored rounded up to 10 decimal places."""


def to_decimal(value: Any) -> Decimal | None:
    """A finite number from JSON, a form or the database, never through binary floating point; a float is
    read from its shortest repr (the text it was written as). None for anything else, booleans included."""
    if type(value) is Decimal:
        return value if value.is_finite() else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            parsed = Decimal(value.strip())
        except InvalidOperation:
            return None
        return parsed if parsed.is_finite() else None
    return None


def round_up(value: Decimal, step: Decimal) -> Decimal:
    """`value` rounded toward +∞ to a multiple of `step` (a power of ten, or any positive step)."""
    if step.as_tuple().digits == (1,):
        return value.quantize(step, rounding=ROUND_CEILING)
    multiples = (value / step).to_integral_value(rounding=ROUND_CEILING)
    return multiples * step


def stored(value: Decimal) -> Decimal:
    """A cost or quantity as it is stored and reported: rounded up to 10 decimal places, trailing zeros
    dropped (0.1008333333333… → 0.1008333334; 0.0250000000 → 0.025)."""
    return plain(value.quantize(STORAGE_STEP, rounding=ROUND_CEILING))


def plain(value: Decimal) -> Decimal:
    """The same amount without trailing zeros or an exponent in its text: 0.08340 → 0.0834, 2E+1 → 20."""
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return normalized.quantize(Decimal(1))
    return normalized


def money_text(value: Any) -> str:
    """`$0.0834`: the exact amount as `exact_json.decimal_number_text` writes it (no exponent, no trailing
    zeros), the one way amounts become text; "-" for none."""
    amount = to_decimal(value)
    return "-" if amount is None else f"${decimal_number_text(amount)}"
