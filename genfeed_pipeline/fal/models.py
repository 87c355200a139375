"""Pydantic models of what fal's Platform API sends back.

They are deliberately lenient: fal documents most `metadata` fields as required, yet real items lack
some of them, and `unit_price` arrives as a number or as a decimal string. Anything unknown is kept
(`extra="allow"`) so that nothing fal sends is lost on the way to the cache.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# No fal unit (an image, a second, a training step) costs anything near this; a larger figure is an error.
MAX_PLAUSIBLE_UNIT_PRICE = Decimal(10_000)


class FalMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    display_name: str | None = None
    category: str | None = None
    description: str | None = None
    status: str | None = None
    tags: list[str] | None = None
    updated_at: str | None = None
    date: str | None = None
    kind: str | None = None
    duration_estimate: float | None = None


class FalModelItem(BaseModel):
    """One item of `GET /models`; only `endpoint_id` is required by fal's spec."""

    model_config = ConfigDict(extra="allow")

    endpoint_id: str
    metadata: FalMetadata | None = None
    # Not validated field by field: a document is kept as fal sent it (copying it through pydantic
    # costs more than the rest of the item).
    openapi: Any = None

    def metadata_dict(self) -> dict[str, Any] | None:
        return self.metadata.model_dump(exclude_none=True) if self.metadata is not None else None


class FalModelsPage(BaseModel):
    models: list[FalModelItem]
    next_cursor: str | None = None
    has_more: bool = False


class FalPrice(BaseModel):
    endpoint_id: str
    unit_price: Decimal
    unit: str
    currency: str = "USD"

    @field_validator("unit_price", mode="before")
    @classmethod
    def _exact_decimal(cls, value: object) -> Decimal:
        """Numbers go through their decimal text so that 0.025 stays 0.025, not a binary float."""
        if isinstance(value, bool) or value is None:
            raise ValueError(f"unit_price must be a number or a decimal string, got {value!r}")
        try:
            price = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise ValueError(f"unit_price is not a decimal number: {value!r}") from exc
        if not price.is_finite():
            raise ValueError(f"unit_price is not finite: {value!r}")
        if price < 0:
            raise ValueError(f"unit_price is negative: {value!r}")
        if price > MAX_PLAUSIBLE_UNIT_PRICE:
            raise ValueError(
                f"unit_price {value!r} is above ${MAX_PLAUSIBLE_UNIT_PRICE} per unit: not a real price"
            )
        return price


class FalPricesPage(BaseModel):
    prices: list[dict[str, Any]] = Field(default_factory=list)
    next_cursor: str | None = None
    has_more: bool = False


class FalErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str | None = None
    code: str | None = None
    message: str = ""


class FalErrorBody(BaseModel):
    error: FalErrorDetail


class FalEstimate(BaseModel):
    estimate_type: str
    total_cost: Decimal
    currency: str = "USD"

    @field_validator("total_cost", mode="before")
    @classmethod
    def _exact_decimal(cls, value: object) -> Decimal:
        return Decimal(str(value))
