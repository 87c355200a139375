"""JSON with exact decimal numbers: money written as JSON numbers (never strings, never through a binary
float) and read back as `Decimal`.

One codec for every place money travels as JSON: the `pricing` and `rate_card` columns, the stored asset
values, the conformance file.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any

import orjson
from pydantic import BeforeValidator, PlainSerializer


def decimal_number_text(value: Decimal) -> str:
    """`value` as JSON number text, exactly: no exponent, no trailing zeros, no negative zero
    (`2E+1` → `20`, `0.0830` → `0.083`, `-0.00` → `0`).

    Not `Decimal.normalize()`, which rounds to the context's 28 digits.
    """
    if not value.is_finite():
        raise ValueError(f"{value!r} cannot be written as a JSON number: money must be a finite decimal")
    if value.is_zero():
        return "0"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(decimal_number_text(value))
    return str(value)


def dumps(value: Any) -> str:
    """JSON text with every `Decimal` as its exact number, anything else orjson cannot encode as its
    `str()`. Raises ValueError for a NaN or infinite `Decimal`."""
    try:
        return orjson.dumps(value, default=_default).decode()
    except orjson.JSONEncodeError as exc:
        if isinstance(exc.__cause__, ValueError):
            raise exc.__cause__ from None
        raise


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


# One decoder for every read: json.loads with arguments builds a new one each call, twice the time.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_not_json)


def loads(text: str | bytes) -> Any:
    """JSON text with every number that has a fraction or exponent read as an exact `Decimal` (integers stay
    `int`); NaN and Infinity are refused."""
    return _DECODER.decode(text.decode() if isinstance(text, bytes) else text)


def _from_text(value: Any) -> Any:
    return loads(value) if isinstance(value, str | bytes) else value


ExactJson = Annotated[Any, BeforeValidator(_from_text), PlainSerializer(dumps, when_used="json")]
"""A JSON value holding money, for pydantic-serialised dataclasses: stored as exact JSON text, read back
with its Decimals."""
