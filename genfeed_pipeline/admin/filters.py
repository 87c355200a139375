"""Choosing models of the `models` table: by GenFeed type, fal category, owner, price, status, capability.

One `ModelFilter` serves `genfeed-catalog list`, the enable/disable/undo actions and their Dagster job,
so that "the models a filter names" means the same everywhere. It reads plain row dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from genfeed_pipeline.admin.errors import AdminError
from genfeed_pipeline.db.tables import ModelRow
from genfeed_pipeline.fal.catalog import owner_of
from genfeed_pipeline.mapping.model import Capabilities, ModelType
from genfeed_pipeline.pricing import capability_names
from genfeed_pipeline.pricing.money import to_decimal

STATUSES = ("active", "deprecated", "removed")
CATEGORIES = (*(t.value for t in ModelType), "unknown")
_CAPABILITY_FIELDS = {f.name: f for f in fields(Capabilities)}
INPUT_MEDIA = ("image", "video", "audio", "text", "3d", "archive")


def capabilities_from_json(data: Mapping[str, Any] | None) -> Capabilities:
    """The `capabilities` column (lists for tuples, falsy fields left out) back into `Capabilities`."""
    values: dict[str, Any] = {}
    for name, value in (data or {}).items():
        field = _CAPABILITY_FIELDS.get(name)
        if field is None or value is None:
            continue
        values[name] = tuple(str(item) for item in value) if isinstance(value, list) else value
    return Capabilities(**values)


def row_capabilities(row: Mapping[str, Any]) -> frozenset[str]:
    return capability_names(capabilities_from_json(row.get("capabilities")))


def known_capability(name: str) -> bool:
    if name.startswith("input:"):
        return name.removeprefix("input:") in INPUT_MEDIA
    return name in _CAPABILITY_FIELDS and name != "accepted_input_media"


def _price(value: Any, name: str) -> Decimal | None:
    if value is None or value == "":
        return None
    price = to_decimal(value)
    if price is None or price < 0:
        raise AdminError(f"{name} must be a price in USD ≥ 0, not {value!r}")
    return price


def _choice(value: str | None, choices: Iterable[str], name: str) -> str | None:
    if value is None or not value.strip():
        return None
    cleaned = value.strip().lower()
    allowed = tuple(choices)
    if cleaned not in allowed:
        raise AdminError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return cleaned


@dataclass(frozen=True)
class ModelFilter:
    """Every criterion given must hold (AND); a criterion left None (or empty) matches everything."""

    category: str | None = None  # GenFeed's type: image | video | audio | text | 3d | training
    fal_category: str | None = None  # fal's own, e.g. text-to-image
    owner: str | None = None  # the first segment of the endpoint id
    min_price: Decimal | None = None  # on `price_per_call`; unpriced models never match a price bound
    max_price: Decimal | None = None
    status: str | None = None  # active | deprecated | removed
    capabilities: tuple[str, ...] = ()  # all of them, named as `pricing.capability_names` names them
    enabled: bool | None = None
    held: bool | None = None  # held for review of a breaking schema change
    search: str | None = None  # case-insensitive, in the id, name and description

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "category", _choice(self.category, CATEGORIES, "type"))
        set_(self, "status", _choice(self.status, STATUSES, "status"))
        set_(self, "fal_category", (self.fal_category or "").strip().lower() or None)
        set_(self, "owner", (self.owner or "").strip().lower() or None)
        set_(self, "search", (self.search or "").strip().casefold() or None)
        set_(self, "min_price", _price(self.min_price, "min price"))
        set_(self, "max_price", _price(self.max_price, "max price"))
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise AdminError(f"min price {self.min_price} is above max price {self.max_price}")
        names = tuple(dict.fromkeys(name.strip().lower() for name in self.capabilities if name.strip()))
        unknown = [name for name in names if not known_capability(name)]
        if unknown:
            known = sorted(n for n in _CAPABILITY_FIELDS if n != "accepted_input_media")
            raise AdminError(
                f"unknown capability {', '.join(unknown)}; known: {', '.join(known)}, "
                f"input:<{'|'.join(INPUT_MEDIA)}>"
            )
        set_(self, "capabilities", names)

    @property
    def empty(self) -> bool:
        return not self.criteria()

    def criteria(self) -> dict[str, Any]:
        """The criteria given, for messages and audit reasons."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) not in (None, ())
        }

    def describe(self) -> str:
        shown = []
        for name, value in self.criteria().items():
            if isinstance(value, tuple):
                value = "+".join(value)
            shown.append(f"{name}={value}")
        return ", ".join(shown) or "every model"

    def matches(self, row: Mapping[str, Any]) -> bool:
        endpoint_id = str(row["id"])
        if self.category and (row.get("category") or "unknown") != self.category:
            return False
        if self.fal_category and (row.get("fal_category") or "").lower() != self.fal_category:
            return False
        if self.owner and owner_of(endpoint_id).lower() != self.owner:
            return False
        if self.status and (row.get("status") or "active") != self.status:
            return False
        if self.enabled is not None and bool(row.get("enabled")) != self.enabled:
            return False
        if self.held is not None and (row.get("review_reason") is not None) != self.held:
            return False
        if self.min_price is not None or self.max_price is not None:
            price = row.get("price_per_call")
            if price is None:
                return False
            if self.min_price is not None and price < self.min_price:
                return False
            if self.max_price is not None and price > self.max_price:
                return False
        if self.capabilities and not set(self.capabilities) <= row_capabilities(row):
            return False
        if self.search:
            text = " ".join(str(row.get(c) or "") for c in ("id", "name", "description")).casefold()
            if self.search not in text:
                return False
        return True

    def select(self, rows: Iterable[ModelRow]) -> list[ModelRow]:
        return sorted((row for row in rows if self.matches(row)), key=lambda row: str(row["id"]))
