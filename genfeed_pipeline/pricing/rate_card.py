"""Building a model's rate card from fal's unit and price and the model's mapped input schema.

The card is plain JSON data (`rate_card.schema.json`): which inputs set fal's billed quantity, their
defaults, bounds and presets, and the price rule. `evaluate.py` prices any request from it. The README's
"Rate cards" section gives the rules; the ones that decide what goes into a card are here:

- the count, size, duration, text and steps inputs are the first names of the shared vocabulary
  (`mapping/vocabulary.py`) that the schema has;
- **missing default, one rule everywhere**: an input that sets the quantity but has no usable default takes
  the schema's first example; else its lowest allowed value (`minimum`, or the first enum value); else the
  kind's assumption (`ASSUMED_*` below). The card is then `estimated`, and its flags say which input;
- terms fal states outside the schema (a clip length, a minimum billed) come from `fal_terms.json`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema_rs

from genfeed_pipeline.mapping import vocabulary
from genfeed_pipeline.mapping.model import GenFeedModel, ModelType
from genfeed_pipeline.pricing.money import plain, to_decimal
from genfeed_pipeline.pricing.terms import FalTerms
from genfeed_pipeline.pricing.units import BillingUnit, UnitKind

RATE_CARD_VERSION = 1
ONE_MEGAPIXEL = 1_048_576
IMAGE_SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}

ASSUMED_OUTPUTS = 1
ASSUMED_VIDEO_SECONDS = 5
ASSUMED_MEDIA_SECONDS = 60
ASSUMED_TEXT_LENGTH = 1000
ASSUMED_TRAINING_STEPS = 1000
ASSUMED_SIDE = 1024
DEFAULT_FPS = 24
CHARACTERS_PER_TOKEN = 4

_CONFIDENCE_RANK = {"exact": 0, "approximate": 1, "estimated": 2}
_SECONDS_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:s|sec|secs|second|seconds)?\s*$", re.IGNORECASE)
_WXH = re.compile(r"^\s*(\d{1,5})\s*[x×*]\s*(\d{1,5})\s*$", re.IGNORECASE)
_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$")
_P_RESOLUTION = re.compile(r"^\s*(\d{3,4})\s*p\s*$", re.IGNORECASE)
_K_RESOLUTION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*k\s*$", re.IGNORECASE)
_MP_RESOLUTION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*mp\s*$", re.IGNORECASE)


class _Card:
    """A card under construction: its quantity parameters, confidence and flags."""

    def __init__(self, model: GenFeedModel) -> None:
        schema = model.input_schema or {}
        properties = schema.get("properties")
        self.properties: dict[str, Any] = properties if isinstance(properties, dict) else {}
        self.required = set(schema.get("required") or ())
        self.model = model
        self.video = model.category is ModelType.VIDEO
        self.confidence = "exact"
        self.flags: list[str] = []

    def lower(self, confidence: str, flag: str | None = None) -> None:
        if _CONFIDENCE_RANK[confidence] > _CONFIDENCE_RANK[self.confidence]:
            self.confidence = confidence
        if flag and flag not in self.flags:
            self.flags.append(flag)

    def node(self, name: str | None) -> dict[str, Any]:
        node = self.properties.get(name) if name else None
        return node if isinstance(node, dict) else {}

    def first(self, names: tuple[str, ...]) -> str | None:
        return vocabulary.first_present(names, self.properties)

    def default_of(
        self, name: str, parse: Callable[[Any], Any | None], assumption: Any, what: str
    ) -> tuple[Any, bool]:
        """The input's default if usable, else the one fallback rule: (value, assumed)."""
        node = self.node(name)
        if node.get("default") is not None and parse(node["default"]) is not None:
            return node["default"], False
        candidates = [
            ("its example", list(node.get("examples") or ())),
            ("its minimum", [node["minimum"]] if node.get("minimum") is not None else []),
            ("its first option", enum_values(node)),
        ]
        default = node.get("default")
        lacking = f"{name} has no default"
        if default is not None:
            lacking = f"{name}'s default {_shown(default)} does not set the quantity"
        for source, values in candidates:
            for value in values:
                if parse(value) is not None:
                    self.lower("estimated", f"{lacking}: {_shown(value)} assumed ({source})")
                    return value, True
        self.lower("estimated", f"{lacking}: {what} assumed")
        return assumption, True


def enum_values(node: Mapping[str, Any]) -> list[Any]:
    """The enum of a node, or of its alternatives (`anyOf [ImageSize, enum]`)."""
    values = list(node.get("enum") or ())
    for alternative in node.get("any_of") or ():
        if isinstance(alternative, dict):
            values.extend(value for value in alternative.get("enum") or () if value not in values)
    return values


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _number(value: Any) -> Decimal | None:
    return None if isinstance(value, str) else to_decimal(value)


def _whole(value: Any) -> int | None:
    number = _number(value)
    if number is None or number < 1 or number != number.to_integral_value():
        return None
    return int(number)


def parse_seconds(value: Any) -> Decimal | None:
    """`5`, `5.5`, `"5"`, `"8s"`, `"10 seconds"` → seconds; anything else (`"auto"`) → None."""
    if isinstance(value, str):
        match = _SECONDS_TEXT.match(value)
        seconds = Decimal(match.group(1)) if match else None
    else:
        seconds = _number(value)
    return seconds if seconds is not None and seconds > 0 else None


def _json_number(value: Decimal) -> int | Decimal:
    value = plain(value)
    return int(value) if value == value.to_integral_value() else value


# -- parameters -------------------------------------------------------------------------------------


def _count(card: _Card) -> dict[str, Any]:
    name = card.model.capabilities.num_outputs_param or card.first(vocabulary.OUTPUT_COUNT)
    if name is None or name not in card.properties:
        return {"input": None, "default": ASSUMED_OUTPUTS}
    node = card.node(name)
    default, assumed = card.default_of(name, _whole, ASSUMED_OUTPUTS, f"{ASSUMED_OUTPUTS} output")
    spec: dict[str, Any] = {"input": name, "default": int(default)}
    minimum, maximum = _number(node.get("minimum")), _number(node.get("maximum"))
    whole_options = [v for v in enum_values(node) if _whole(v) is not None]
    if maximum is None and whole_options:
        maximum = Decimal(max(whole_options))
    if minimum is None and whole_options:
        minimum = Decimal(min(whole_options))
    spec["minimum"] = math.ceil(minimum) if minimum is not None else None
    spec["maximum"] = math.floor(maximum) if maximum is not None else None
    if assumed:
        spec["assumed"] = True
    return spec


def _size_of(value: Any, presets: Mapping[str, Any]) -> tuple[int, int] | None:
    if isinstance(value, str):
        if value in presets:
            return tuple(presets[value])  # type: ignore[return-value]
        match = _WXH.match(value)
        if match and int(match.group(1)) > 0 and int(match.group(2)) > 0:
            return int(match.group(1)), int(match.group(2))
    if isinstance(value, dict):
        width, height = _whole(value.get("width")), _whole(value.get("height"))
        if width and height:
            return width, height
    return None


def _size(card: _Card) -> dict[str, Any]:
    """The output size: a size input, width and height, aspect ratio and resolution, or 1024×1024."""
    name = card.first(vocabulary.SIZE)
    if name is not None:
        node = card.node(name)
        options = [value for value in enum_values(node) if isinstance(value, str)]
        named = [value for value in options if value in IMAGE_SIZE_PRESETS] or list(IMAGE_SIZE_PRESETS)
        presets = {value: list(IMAGE_SIZE_PRESETS[value]) for value in named}
        default, assumed = card.default_of(
            name,
            lambda value: _size_of(value, presets),
            {"width": ASSUMED_SIDE, "height": ASSUMED_SIDE},
            f"{ASSUMED_SIDE}×{ASSUMED_SIDE}",
        )
        spec: dict[str, Any] = {"from": "size", "input": name, "default": default, "presets": presets}
        if assumed:
            spec["assumed"] = True
        return spec
    width, height = card.first(vocabulary.WIDTH), card.first(vocabulary.HEIGHT)
    if width is not None and height is not None:
        sides = {}
        for side, side_name in (("width", width), ("height", height)):
            value, _ = card.default_of(side_name, _whole, ASSUMED_SIDE, str(ASSUMED_SIDE))
            sides[side] = {"input": side_name, "default": int(value)}
        return {"from": "width_height", **sides}
    ratio_name, resolution_name = card.first(vocabulary.ASPECT_RATIO), card.first(vocabulary.RESOLUTION)
    if ratio_name is None and resolution_name is None:
        card.lower("estimated", f"no output size in the schema: {ASSUMED_SIDE}×{ASSUMED_SIDE} assumed")
        return {"from": "fixed", "width": ASSUMED_SIDE, "height": ASSUMED_SIDE, "assumed": True}
    card.lower("approximate", "output size read from aspect ratio and resolution: approximate")
    return {
        "from": "aspect_ratio",
        "aspect_ratio": _aspect(card, ratio_name),
        "resolution": _resolution(card, resolution_name),
    }


def _ratio(value: Any) -> list[int | Decimal] | None:
    match = _RATIO.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    a, b = Decimal(match.group(1)), Decimal(match.group(2))
    return [_json_number(a), _json_number(b)] if a > 0 and b > 0 else None


def _aspect(card: _Card, name: str | None) -> dict[str, Any]:
    fallback = "16:9" if card.video else "1:1"
    if name is None:
        return {"input": None, "default": fallback, "values": {fallback: _ratio(fallback)}}
    node = card.node(name)
    default, _ = card.default_of(name, _ratio, fallback, fallback)
    options = [value for value in enum_values(node) if isinstance(value, str)]
    if not options:
        return {"input": name, "default": default, "values": None}
    values: dict[str, Any] = {}
    for option in options:
        pair = _ratio(option)
        if pair is None:
            pair = _ratio(default)
            card.lower("approximate", f"{name} {option!r} priced as {default}")
        values[option] = pair
    values.setdefault(default, _ratio(default))
    return {"input": name, "default": default, "values": values}


def _resolution_value(value: Any) -> dict[str, int] | None:
    if not isinstance(value, str):
        return None
    if match := _P_RESOLUTION.match(value):
        return {"short_side": int(match.group(1))}
    if match := _K_RESOLUTION.match(value):
        side = Decimal(match.group(1)) * 1024
        return {"pixels": int(side * side)}
    if match := _MP_RESOLUTION.match(value):
        return {"pixels": int(Decimal(match.group(1)) * ONE_MEGAPIXEL)}
    if match := _WXH.match(value):
        return {"width": int(match.group(1)), "height": int(match.group(2))}
    return None


def _resolution(card: _Card, name: str | None) -> dict[str, Any]:
    fallback = "720p" if card.video else "1 MP"
    fallback_value = {"short_side": 720} if card.video else {"pixels": ONE_MEGAPIXEL}
    if name is None:
        return {"input": None, "default": fallback, "values": {fallback: fallback_value}}
    default, _ = card.default_of(name, _resolution_value, fallback, fallback)
    default_value = _resolution_value(default) or fallback_value
    values: dict[str, Any] = {}
    for option in enum_values(card.node(name)):
        if not isinstance(option, str):
            continue
        parsed = _resolution_value(option)
        if parsed is None:
            parsed = default_value
            card.lower("approximate", f"{name} {option!r} priced as {default}")
        values[option] = parsed
    values.setdefault(default, default_value)
    return {"input": name, "default": default, "values": values}


def _assumed_seconds(card: _Card, unit: BillingUnit) -> int | Decimal:
    """The kind's assumption when nothing sets the seconds: one clip or one minute for clip and minute
    units; 5 s of video or 60 s of other media for units per second."""
    if unit.kind is UnitKind.CLIP and unit.clip_seconds is not None:
        return _json_number(unit.clip_seconds)
    if unit.kind is UnitKind.MINUTE:
        return _json_number(unit.per * 60)
    return ASSUMED_VIDEO_SECONDS if card.video else ASSUMED_MEDIA_SECONDS


def _duration(card: _Card, unit: BillingUnit, terms: FalTerms) -> dict[str, Any]:
    fallback = _assumed_seconds(card, unit)
    spec: dict[str, Any]
    if unit.input_based or not terms.seconds_from_frames:
        why = (
            "billed on the input media's length"
            if unit.input_based
            else "billed on processing time, not on the frames asked for (fal_terms.json)"
        )
        card.lower("estimated", f"{why}, which a request does not state: {fallback} s assumed")
        spec = {"input": None, "default": None, "fixed": fallback, "assumed": True}
    elif terms.output_seconds is not None:
        card.lower("exact", f"fal states the video's length: {terms.output_seconds} s")
        spec = {"input": None, "default": None, "fixed": terms.output_seconds}
    elif (name := card.first(vocabulary.DURATION)) is not None:
        spec = _duration_input(card, name, fallback)
    elif (frames := card.first(vocabulary.FRAMES)) is not None:
        spec = _frames(card, frames, fallback)
    else:
        card.lower("estimated", f"no duration in the schema: {fallback} s assumed")
        spec = {"input": None, "default": None, "fixed": fallback, "assumed": True}
    if terms.minimum_seconds is not None:
        spec["minimum_billed"] = terms.minimum_seconds
    return spec


def _duration_input(card: _Card, name: str, fallback: int | Decimal) -> dict[str, Any]:
    node = card.node(name)
    options = enum_values(node)
    spoken = [seconds for seconds in (parse_seconds(value) for value in options) if seconds is not None]
    values = {
        value: _json_number(max(spoken))
        for value in options
        if isinstance(value, str) and parse_seconds(value) is None and spoken
    }

    def usable(value: Any) -> Any:
        return parse_seconds(value) if not (isinstance(value, str) and value in values) else values[value]

    default, assumed = card.default_of(name, usable, fallback, f"{fallback} s")
    if isinstance(default, str) and default in values:
        card.lower(
            "approximate", f"{name} {default!r}: fal chooses the length; the longest option is assumed"
        )
    number = _number(default)
    spec: dict[str, Any] = {"input": name, "default": _json_number(number) if number is not None else default}
    if values:
        spec["values"] = values
    minimum, maximum = _number(node.get("minimum")), _number(node.get("maximum"))
    spec["minimum"] = _json_number(minimum) if minimum is not None else None
    spec["maximum"] = _json_number(maximum) if maximum is not None else None
    if assumed:
        spec["assumed"] = True
    return spec


def _frames(card: _Card, name: str, fallback: int | Decimal) -> dict[str, Any]:
    card.lower("approximate", "duration read as frames ÷ fps: approximate")
    node = card.node(name)
    frames = _number(node.get("default")) or None
    if frames is None:
        candidates = [*(node.get("examples") or ()), node.get("minimum")]
        frames = next((number for number in map(_number, candidates) if number), None)
        if frames is not None:
            card.lower("estimated", f"{name} has no default: {_json_number(frames)} assumed")
    fps_name = card.first(vocabulary.FPS)
    fps_default = _number(card.node(fps_name).get("default")) if fps_name else None
    spec: dict[str, Any] = {
        "input": None,
        "default": None,
        "frames": {
            "input": name,
            "default": _json_number(frames) if frames is not None else None,
            "fps_input": fps_name,
            "fps_default": _json_number(fps_default) if fps_default and fps_default > 0 else DEFAULT_FPS,
        },
    }
    if frames is None:
        card.lower("estimated", f"{name} has no default: {fallback} s assumed")
        spec |= {"fixed": fallback, "assumed": True}
    return spec


def _text_length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(
            len(item)
            if isinstance(item, str)
            else len(item.get("content") or "")
            if isinstance(item, dict)
            else 0
            for item in value
        )
    return 0


def _text(card: _Card) -> dict[str, Any]:
    names = [name for name in vocabulary.TEXT if name in card.properties]
    length = sum(_text_length(card.node(name).get("default")) for name in names)
    if length:
        return {"inputs": names, "default_length": length}
    for name in names:
        example = next((v for v in card.node(name).get("examples") or () if _text_length(v)), None)
        if example is not None:
            card.lower("estimated", f"no text given: the length of {name}'s example assumed")
            return {"inputs": names, "default_length": _text_length(example), "assumed": True}
    card.lower("estimated", f"no text given: {ASSUMED_TEXT_LENGTH:,} characters assumed")
    return {"inputs": names, "default_length": ASSUMED_TEXT_LENGTH, "assumed": True}


def _steps(card: _Card, terms: FalTerms) -> dict[str, Any]:
    name = card.first(vocabulary.STEPS)
    spec: dict[str, Any]
    if name is None:
        card.lower("estimated", f"no steps in the schema: {ASSUMED_TRAINING_STEPS:,} assumed")
        spec = {"input": None, "default": ASSUMED_TRAINING_STEPS, "assumed": True}
    else:
        node = card.node(name)
        default, assumed = card.default_of(
            name, _whole, ASSUMED_TRAINING_STEPS, f"{ASSUMED_TRAINING_STEPS:,}"
        )
        minimum, maximum = _number(node.get("minimum")), _number(node.get("maximum"))
        spec = {
            "input": name,
            "default": int(default),
            "minimum": math.ceil(minimum) if minimum is not None else None,
            "maximum": math.floor(maximum) if maximum is not None else None,
        }
        if assumed:
            spec["assumed"] = True
    if terms.minimum_steps is not None:
        spec["minimum_billed"] = terms.minimum_steps
        card.lower("exact", f"fal bills at least {terms.minimum_steps:,} steps")
    return spec


def _is_image_input(name: str, node: Mapping[str, Any]) -> bool:
    file_info = node.get("file")
    if isinstance(file_info, dict):
        return file_info.get("media") == "image"
    items = node.get("items")
    if isinstance(items, dict) and isinstance(items.get("file"), dict):
        return items["file"].get("media") == "image"
    return "image" in name and name.endswith(("_url", "_urls"))


def _input_images(card: _Card) -> dict[str, Any]:
    names = [
        name
        for name, node in card.properties.items()
        if isinstance(node, dict) and _is_image_input(name, node)
    ]
    return {"inputs": names, "default": sum(1 for name in names if name in card.required)}


# -- the card ---------------------------------------------------------------------------------------


def build_rate_card(
    model: GenFeedModel,
    unit: BillingUnit,
    unit_price: Decimal,
    rule: Mapping[str, Any],
    terms: FalTerms,
) -> dict[str, Any] | None:
    """The model's rate card, or None when the unit cannot be priced (unknown or ambiguous unit, or compute
    seconds without fal's duration estimate). Stubs are the caller's to refuse."""
    if not unit.priceable:
        return None
    card = _Card(model)
    if unit.flag:
        card.lower("approximate" if unit.approximate else "exact", unit.flag)
    per = unit.per
    kind = unit.kind
    quantity: dict[str, Any]
    if kind is UnitKind.MEGAPIXEL:
        quantity = {"kind": "megapixel", "per": per, "size": _size(card), "count": _count(card)}
        if unit.approximate or terms.input_megapixels:
            card.lower("approximate", unit.flag or "billed on input and output megapixels: approximate")
            quantity["input_images"] = _input_images(card)
        if terms.tiered:
            card.lower(
                "approximate", "tiered megapixel price (first megapixel priced differently): approximate"
            )
    elif kind is UnitKind.IMAGE or (kind is UnitKind.CALL and unit.per_output):
        quantity = {"kind": "output", "per": per, "count": _count(card)}
    elif kind is UnitKind.CALL:
        quantity = {"kind": "call", "per": per}
    elif kind in (UnitKind.SECOND, UnitKind.MINUTE):
        seconds_per_unit = per * 60 if kind is UnitKind.MINUTE else per
        quantity = {"kind": "second", "per": seconds_per_unit, "duration": _duration(card, unit, terms)}
    elif kind is UnitKind.CLIP:
        assert unit.clip_seconds is not None
        quantity = {
            "kind": "clip",
            "clip_seconds": unit.clip_seconds,
            "duration": _duration(card, unit, terms),
        }
    elif kind is UnitKind.CHARACTERS:
        quantity = {"kind": "character", "per": per, "text": _text(card)}
    elif kind is UnitKind.TOKENS and card.video:
        card.lower("approximate", "video tokens: width × height × fps × seconds ÷ 1024")
        fps_name = card.first(vocabulary.FPS)
        fps_default = _number(card.node(fps_name).get("default")) if fps_name else None
        video = {
            "size": _size(card),
            "duration": _duration(card, unit, terms),
            "fps": {"input": fps_name, "default": _json_number(fps_default) if fps_default else DEFAULT_FPS},
        }
        quantity = {"kind": "token", "per": per, "video": video}
    elif kind is UnitKind.TOKENS:
        card.lower("estimated", f"tokens counted as ⌈characters ÷ {CHARACTERS_PER_TOKEN}⌉: estimated")
        quantity = {
            "kind": "token",
            "per": per,
            "text": _text(card),
            "characters_per_token": CHARACTERS_PER_TOKEN,
        }
    elif kind is UnitKind.STEP:
        quantity = {"kind": "step", "per": per, "steps": _steps(card, terms)}
    elif kind is UnitKind.COMPUTE_SECOND:
        minutes = to_decimal(model.duration_estimate_minutes)
        if minutes is None or minutes <= 0:
            return None
        card.lower("estimated", "compute seconds from fal's duration estimate: estimated")
        quantity = {"kind": "compute_second", "per": per, "seconds": _json_number(minutes * 60)}
    else:
        return None
    if "per" in quantity:
        quantity["per"] = _json_number(Decimal(quantity["per"]))
    if "clip_seconds" in quantity:
        quantity["clip_seconds"] = _json_number(Decimal(quantity["clip_seconds"]))
    return {
        "version": RATE_CARD_VERSION,
        "currency": "USD",
        "unit": unit.normalized,
        "unit_price": plain(unit_price),
        "quantity": quantity,
        "price": dict(rule),
        "confidence": card.confidence,
        "flags": card.flags,
    }


# -- the format -------------------------------------------------------------------------------------


def rate_card_schema() -> dict[str, Any]:
    """The card's JSON Schema (Draft 2020-12), as shipped in the package."""
    path = resources.files("genfeed_pipeline") / "pricing" / "rate_card.schema.json"
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _validator() -> Any:
    return jsonschema_rs.validator_for(rate_card_schema())


def schema_errors(card: Any) -> list[str]:
    """Where and how `card` breaks the rate-card JSON Schema; empty when it is a valid card."""
    return [
        f"{'/'.join(str(part) for part in error.instance_path) or '(card)'}: {error.message}"
        for error in _validator().iter_errors(card)
    ]
