"""Pydantic models of what fal's Platform API sends back.

They are deliberately lenient: fal documents most `metadata` fields as required, yet real items lack
some of them, and `unit_price` arrives as a number or as a decimal string. Anything unknown is kept
(`extra="allow"`) so that nothing fal sends is lost on the way to the cache.
"""

from __future__ import annotations

from datetime import UTC, datetime
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


def _finite_decimal(value: object, name: str) -> Decimal:
    """A number or decimal string as an exact Decimal (numbers go through their shortest text)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name} must be a number or a decimal string, got {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError(f"{name} is not a decimal number: {value!r}") from exc
    if not number.is_finite():
        raise ValueError(f"{name} is not finite: {value!r}")
    return number


class FalUsageItem(BaseModel):
    """One line of `GET /models/usage`: what fal billed for an endpoint in one unit (and one discount).

    Lines from before mid-2026 carry only `cost` (the total) besides the quantity and unit price; newer
    lines carry the `cost_subtotal` / `cost_discount` / `cost_total` breakdown and `cost` as a copy of
    `cost_total`.
    """

    model_config = ConfigDict(extra="allow")

    endpoint_id: str
    unit: str
    quantity: Decimal
    unit_price: Decimal | None = None
    percent_discount: Decimal | None = None
    cost_subtotal: Decimal | None = None
    cost_discount: Decimal | None = None
    cost_total: Decimal | None = None
    cost: Decimal | None = None
    currency: str = "USD"

    @field_validator("quantity", mode="before")
    @classmethod
    def _required_decimal(cls, value: object) -> Decimal:
        return _finite_decimal(value, "quantity")

    @field_validator(
        "unit_price",
        "percent_discount",
        "cost_subtotal",
        "cost_discount",
        "cost_total",
        "cost",
        mode="before",
    )
    @classmethod
    def _optional_decimal(cls, value: object) -> Decimal | None:
        return None if value is None else _finite_decimal(value, "a usage amount")


class FalUsageBucket(BaseModel):
    """One time bucket of usage; `bucket` is its start, an ISO timestamp with offset."""

    model_config = ConfigDict(extra="allow")

    bucket: datetime
    results: list[FalUsageItem] = Field(default_factory=list)

    @field_validator("bucket")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class FalUsagePage(BaseModel):
    model_config = ConfigDict(extra="allow")

    time_series: list[FalUsageBucket] = Field(default_factory=list)
    next_cursor: str | None
    has_more: bool


class FalAnalyticsRow(BaseModel):
    """One endpoint's figures in one bucket of `GET /models/analytics`: only the metrics asked for."""

    model_config = ConfigDict(extra="allow")

    endpoint_id: str
    request_count: int | None = None
    success_count: int | None = None


class FalAnalyticsBucket(BaseModel):
    model_config = ConfigDict(extra="allow")

    bucket: datetime
    results: list[FalAnalyticsRow] = Field(default_factory=list)


class FalAnalyticsPage(BaseModel):
    model_config = ConfigDict(extra="allow")

    time_series: list[FalAnalyticsBucket] = Field(default_factory=list)
    next_cursor: str | None
    has_more: bool
