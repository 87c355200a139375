"""The rate-card evaluator: a request's inputs → fal's billed quantity, fal's cost and GenFeed's price.

The one pricing path of the project: `cost_per_call` and `price_per_call` (the card at the schema's
defaults), the estimate and cheapest commands, the report and the admin code all call `evaluate`. The
rules are the README's "Rate cards" section, and `rate_card_conformance.json` holds worked cases that this
module and GenFeed's app must both pass. Plain Python: nothing here imports Dagster, and a card is plain
JSON data (numbers may arrive as `int`, `Decimal` or `float`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from genfeed_pipeline.exact_json import decimal_number_text
from genfeed_pipeline.pricing.money import money_text, plain, round_up, stored, to_decimal

ONE_MEGAPIXEL = 1_048_576
VIDEO_TOKEN_DIVISOR = 1024
DEFAULT_FPS = Decimal(24)

CLOUD_RULE: dict[str, Any] = {
    "margin": Decimal("0.7"),
    "min_price": Decimal("0.001"),
    "step": Decimal("0.0001"),
}
CORE_RULE: dict[str, Any] = {"margin": Decimal(0), "min_price": Decimal(0), "step": None}

_SECONDS_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:s|sec|secs|second|seconds)?\s*$", re.IGNORECASE)
_WXH = re.compile(r"^\s*(\d+)\s*[x×*]\s*(\d+)\s*$", re.IGNORECASE)
_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$")
_ONE = Decimal(1)


class RateCardError(ValueError):
    """The card itself cannot be evaluated (it does not follow the rate-card format)."""


class RateCardInputError(ValueError):
    """A request's input the card cannot price: wrong type, out of range, not an allowed value."""

    def __init__(self, input_name: str | None, message: str) -> None:
        super().__init__(message)
        self.input_name = input_name


@dataclass(frozen=True)
class Evaluation:
    """One request priced. `quantity` and `cost` are as stored (rounded up to 10 decimal places);
    `price` was computed from `exact_cost`."""

    quantity: Decimal
    cost: Decimal
    exact_cost: Decimal
    price: Decimal
    derivation: str
    confidence: str
    flags: tuple[str, ...]
    notes: tuple[str, ...]


def apply_rule(cost: Decimal, rule: Mapping[str, Any]) -> Decimal:
    """max(cost ÷ (1 − margin), min_price), rounded up to `step` (none: to 10 decimal places)."""
    margin = _number(rule["margin"])
    target = max(cost / (_ONE - margin) if margin else cost, _number(rule["min_price"]))
    step = rule.get("step")
    if step is None:
        return stored(target)
    return plain(round_up(target, _number(step)))


def evaluate(
    card: Mapping[str, Any], inputs: Mapping[str, Any] | None = None, rule: Mapping[str, Any] | None = None
) -> Evaluation:
    """Price one request. `rule` defaults to the card's own `price`; pass another deployment's to compare."""
    request = _Request(inputs or {})
    try:
        quantity_spec = card["quantity"]
        unit_price = _number(card["unit_price"])
        kind = quantity_spec["kind"]
        measure = _KINDS[kind]
    except (KeyError, TypeError) as exc:
        raise RateCardError(f"not a rate card: {exc!r} is missing or malformed") from None
    quantity, how = measure(quantity_spec, request)
    exact_cost = quantity * unit_price
    unit = card.get("unit", "unit")
    if kind == "clip":
        unit = f"{unit} clip"
    derivation = f"{how} × {money_text(unit_price)} per {unit}"
    notes = request.notes()
    return Evaluation(
        quantity=stored(quantity),
        cost=stored(exact_cost),
        exact_cost=exact_cost,
        price=apply_rule(exact_cost, rule if rule is not None else card["price"]),
        derivation=derivation,
        confidence=card.get("confidence", "exact"),
        flags=tuple(card.get("flags") or ()),
        notes=notes,
    )


# -- reading a request ------------------------------------------------------------------------------


class _Request:
    """The request's inputs, and which of them the card read."""

    __slots__ = ("assumed", "inputs", "read")

    def __init__(self, inputs: Mapping[str, Any]) -> None:
        self.inputs = inputs
        self.read: set[str] = set()
        self.assumed: list[str] = []

    def value(self, parameter: Mapping[str, Any]) -> tuple[Any, bool]:
        """The parameter's input as the request gives it, else its default: (value, given)."""
        name = parameter.get("input")
        if name is not None:
            self.read.add(name)
            value = self.inputs.get(name)
            if value is not None:
                return value, True
        return parameter.get("default"), False

    def notes(self) -> tuple[str, ...]:
        ignored = [name for name in self.inputs if name not in self.read]
        notes = list(self.assumed)
        if ignored:
            notes.append("ignored (not used for pricing): " + ", ".join(sorted(ignored)))
        return tuple(notes)


def _number(value: Any) -> Decimal:
    number = to_decimal(value)
    if number is None:
        raise RateCardError(f"expected a number in the rate card, found {value!r}")
    return number


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _integer(value: Any, name: str | None, low: Any, high: Any, input_name: str | None = None) -> int:
    """A whole number within [low (1 when null), high]; an error naming the input otherwise (`name` may be
    a part of it, such as `image_size.width`)."""
    low = 1 if low is None else low
    number = None if isinstance(value, str) else to_decimal(value)
    whole = int(number) if number is not None and number == number.to_integral_value() else None
    if whole is None or whole < low or (high is not None and whole > high):
        allowed = _range_text(low, high, "an integer")
        raise RateCardInputError(input_name or name, f"{name} must be {allowed}, not {_shown(value)}")
    return whole


def _range_text(low: Any, high: Any, what: str) -> str:
    if low is not None and high is not None:
        return f"{what} from {low} to {high}"
    if low is not None:
        return f"{what} of at least {low}"
    if high is not None:
        return f"{what} of at most {high}"
    return what


def _positive(value: Any, name: str | None, what: str = "a number") -> Decimal:
    number = None if isinstance(value, str) else to_decimal(value)
    if number is None or number <= 0:
        raise RateCardInputError(name, f"{name} must be {what} greater than 0, not {_shown(value)}")
    return number


def _num_text(value: Decimal | int) -> str:
    if isinstance(value, int) or value == value.to_integral_value():
        return f"{int(value):,}"
    return decimal_number_text(value)


def _plural(count: Decimal | int, word: str) -> str:
    return f"{_num_text(count)} {word}" + ("" if count == 1 else "s")


# -- parameters -------------------------------------------------------------------------------------


def _count(spec: Mapping[str, Any], request: _Request) -> int:
    value, given = request.value(spec)
    if not given and spec.get("assumed"):
        request.assumed.append(f"{spec.get('input') or 'outputs'} not given: {value} assumed")
    return _integer(value, spec.get("input") or "count", spec.get("minimum"), spec.get("maximum"))


def _seconds(spec: Mapping[str, Any], request: _Request) -> tuple[Decimal, str]:
    """The duration in seconds and how it was read."""
    seconds: Decimal | None = None
    name = spec.get("input")
    if name is not None:
        value, given = request.value(spec)
        if value is not None:
            seconds = _parse_seconds(value, name, spec)
            how = f"{name}={_shown(value)}" if given else f"{name} default {_shown(value)}"
            if not given and spec.get("assumed"):
                how += ", assumed"
                request.assumed.append(f"{name} not given: {_shown(value)} assumed")
    if seconds is None and (frames_spec := spec.get("frames")) is not None:
        frames_name = frames_spec["input"]
        request.read.add(frames_name)
        frames = request.inputs.get(frames_name)
        frames = frames_spec.get("default") if frames is None else frames
        if frames is not None:
            frame_count = _positive(frames, frames_name)
            fps_name = frames_spec.get("fps_input")
            fps: Any = None
            if fps_name is not None:
                request.read.add(fps_name)
                fps = request.inputs.get(fps_name)
            fps_value = _positive(fps, fps_name) if fps is not None else _number(frames_spec["fps_default"])
            seconds = frame_count / fps_value
            how = f"{_num_text(frame_count)} frames ÷ {_num_text(fps_value)} fps"
    if seconds is None:
        fixed = spec.get("fixed")
        if fixed is None:
            raise RateCardInputError(name, f"{name or 'duration'} must be given: the card has no default")
        seconds = _number(fixed)
        how = "assumed length" if spec.get("assumed") else "the length fal states"
        if spec.get("assumed"):
            request.assumed.append(f"media length not stated by the request: {_num_text(seconds)} s assumed")
    floor = spec.get("minimum_billed")
    if floor is not None and seconds < (minimum := _number(floor)):
        how += f", billed at the minimum {_num_text(minimum)} s"
        seconds = minimum
    return seconds, f"{_num_text(seconds)} s ({how})"


def _parse_seconds(value: Any, name: str, spec: Mapping[str, Any]) -> Decimal:
    seconds: Decimal | None = None
    if isinstance(value, str):
        match = _SECONDS_TEXT.match(value)
        if match:
            seconds = Decimal(match.group(1))
        else:
            named = (spec.get("values") or {}).get(value)
            if named is None:
                options = ", ".join(repr(v) for v in (spec.get("values") or {}))
                allowed = 'seconds such as 5 or "5s"' + (f", or one of {options}" if options else "")
                raise RateCardInputError(name, f"{name} must be {allowed}, not {value!r}")
            seconds = _number(named)
    else:
        seconds = _positive(value, name, "a number of seconds")
    if seconds <= 0:
        raise RateCardInputError(
            name, f"{name} must be a number of seconds greater than 0, not {_shown(value)}"
        )
    low, high = spec.get("minimum"), spec.get("maximum")
    if (low is not None and seconds < _number(low)) or (high is not None and seconds > _number(high)):
        raise RateCardInputError(
            name, f"{name} must be {_range_text(low, high, 'seconds')}, not {_shown(value)}"
        )
    return seconds


def _text_length(value: Any, name: str) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        total = 0
        for item in value:
            if isinstance(item, str):
                total += len(item)
            elif isinstance(item, Mapping) and isinstance(item.get("content"), str):
                total += len(item["content"])
        return total
    raise RateCardInputError(name, f"{name} must be text or a list of messages, not {_shown(value)}")


def _characters(spec: Mapping[str, Any], request: _Request) -> tuple[int, str]:
    total = 0
    given: list[str] = []
    for name in spec["inputs"]:
        request.read.add(name)
        value = request.inputs.get(name)
        if value is not None:
            total += _text_length(value, name)
            given.append(name)
    if given:
        return total, f"{total:,} characters ({', '.join(given)})"
    length = int(spec["default_length"])
    if spec.get("assumed"):
        request.assumed.append(f"no text given: {length:,} characters assumed")
        return length, f"{length:,} characters (assumed)"
    return length, f"{length:,} characters (schema default)"


def _size(spec: Mapping[str, Any], request: _Request) -> tuple[int, int, str]:
    source = spec["from"]
    if source == "size":
        name = spec["input"]
        value, _ = request.value(spec)
        width_height = _size_value(value, name, spec.get("presets") or {})
        label = f"{value}: " if isinstance(value, str) and value in (spec.get("presets") or {}) else ""
        return width_height[0], width_height[1], f"{label}{width_height[0]}×{width_height[1]}"
    if source == "width_height":
        width_spec, height_spec = spec["width"], spec["height"]
        width_value, _ = request.value(width_spec)
        height_value, _ = request.value(height_spec)
        width = _integer(width_value, width_spec.get("input") or "width", 1, None)
        height = _integer(height_value, height_spec.get("input") or "height", 1, None)
        return width, height, f"{width}×{height}"
    if source == "aspect_ratio":
        return _size_from_aspect_ratio(spec, request)
    if source == "fixed":
        width, height = int(spec["width"]), int(spec["height"])
        return width, height, f"{width}×{height}" + (" assumed" if spec.get("assumed") else "")
    raise RateCardError(f"unknown size source {source!r}")


def _size_value(value: Any, name: str, presets: Mapping[str, Any]) -> tuple[int, int]:
    if isinstance(value, str):
        preset = presets.get(value)
        if preset is not None:
            return int(preset[0]), int(preset[1])
        match = _WXH.match(value)
        if match and int(match.group(1)) > 0 and int(match.group(2)) > 0:
            return int(match.group(1)), int(match.group(2))
    elif isinstance(value, Mapping):
        return (
            _integer(value.get("width"), f"{name}.width", 1, None, input_name=name),
            _integer(value.get("height"), f"{name}.height", 1, None, input_name=name),
        )
    choices = ", ".join(presets) or "none"
    raise RateCardInputError(
        name, f'{name} must be a preset ({choices}), "WxH" or {{width, height}}, not {_shown(value)}'
    )


def _size_from_aspect_ratio(spec: Mapping[str, Any], request: _Request) -> tuple[int, int, str]:
    ratio_spec, resolution_spec = spec["aspect_ratio"], spec["resolution"]
    ratio_value, _ = request.value(ratio_spec)
    ratio_table = ratio_spec.get("values")
    ratio_name = ratio_spec.get("input") or "aspect_ratio"
    if ratio_table is not None:
        pair = ratio_table.get(ratio_value) if isinstance(ratio_value, str) else None
        if pair is None:
            allowed = ", ".join(repr(v) for v in ratio_table)
            raise RateCardInputError(
                ratio_name, f"{ratio_name} must be one of {allowed}, not {_shown(ratio_value)}"
            )
        a, b = _number(pair[0]), _number(pair[1])
    else:
        match = _RATIO.match(ratio_value) if isinstance(ratio_value, str) else None
        if match is None or Decimal(match.group(1)) <= 0 or Decimal(match.group(2)) <= 0:
            raise RateCardInputError(
                ratio_name, f'{ratio_name} must be a ratio "a:b", not {_shown(ratio_value)}'
            )
        a, b = Decimal(match.group(1)), Decimal(match.group(2))
    resolution_value, _ = request.value(resolution_spec)
    resolution_name = resolution_spec.get("input") or "resolution"
    table = resolution_spec["values"]
    entry = table.get(resolution_value) if isinstance(resolution_value, str) else None
    if entry is None:
        allowed = ", ".join(repr(v) for v in table)
        raise RateCardInputError(
            resolution_name, f"{resolution_name} must be one of {allowed}, not {_shown(resolution_value)}"
        )
    if "width" in entry:
        width, height = int(entry["width"]), int(entry["height"])
    elif "short_side" in entry:
        short = Decimal(int(entry["short_side"]))
        long = _round_half_up(short * max(a, b) / min(a, b))
        width, height = (long, int(short)) if a >= b else (int(short), long)
    else:
        pixels = Decimal(int(entry["pixels"]))
        width = _round_half_up((pixels * a / b).sqrt())
        height = _round_half_up((pixels * b / a).sqrt())
    return width, height, f"{ratio_value} at {resolution_value} ≈ {width}×{height}"


def _round_half_up(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def _input_images(spec: Mapping[str, Any] | None, request: _Request) -> tuple[int, bool]:
    if not spec:
        return 0, False
    count = 0
    for name in spec["inputs"]:
        request.read.add(name)
        value = request.inputs.get(name)
        if isinstance(value, str):
            count += 1 if value else 0
        elif isinstance(value, list):
            count += sum(1 for item in value if isinstance(item, str) and item)
    if count:
        return count, False
    return int(spec["default"]), True


def megapixels(width: int, height: int) -> int:
    """fal's count: ⌈width × height ÷ 1,048,576⌉, at least 1."""
    return max(1, -(-(width * height) // ONE_MEGAPIXEL))


# -- the kinds --------------------------------------------------------------------------------------


def _per(spec: Mapping[str, Any]) -> Decimal:
    return _number(spec.get("per", 1))


def _divided(quantity: Decimal, spec: Mapping[str, Any], how: str) -> tuple[Decimal, str]:
    per = _per(spec)
    if per == 1:
        return quantity, how
    return quantity / per, f"{how} ÷ {_num_text(per)}"


def _call(spec: Mapping[str, Any], request: _Request) -> tuple[Decimal, str]:
    return _divided(_ONE, spec, "1 call")


def _output(spec: Mapping[str, Any], request: _Request) -> tuple[Decimal, str]:
    count = _count(spec["count"], request)
    return _divided(Decimal(count), spec, _plural(count, "output"))


def _megapixel(spec: Mapping[str, Any], request: _Request) -> tuple[Decimal, str]:
    width, height, label = _size(spec["size"], request)
    per_image = megapixels(width, height)
    count = _count(spec["count"], request)
    how = f"{per_image} MP ({label} → ⌈{width * height:,} ÷ {ONE_MEGAPIXEL:,}⌉) × {_plural(count, 'image')}"
    quantity = Decimal(per_image * count)
    inputs, assumed = _input_images(spec.get("input_images"), request)
    if inputs:
        quantity += inputs
        how += f" + {_plural(inputs, 'input image')} at 1 MP" + (" (assumed)" if assumed else "")
    return _divided(quantity, spec, how)


def _second(spec: Mapping[str, Any], request: _Request) -> tuple[Decimal, str]:
    seconds, how = _seconds(spec["duration"], request)
    return _divided(seconds, spec, how)


def _clip(spec: Mapping[str, Any], request: _Request) -> tuple[Decimal, str]:
    seconds, how = _seconds(spec["duration"], request)
    length = _number(spec["clip_seconds"])
    clips = max(_ONE, (seconds / length).to_integral_value(rounding=ROUND_CEILING))
    return clips, f"{_plural(clips, 'clip')} (⌈{how} ÷ {_num_text(length)} s⌉)"


def _character(spec: Mapping[str, Any], request: _Request) -> tuple[Decimal, str]:
    length, how = _characters(spec["text"], request)
    return _divided(Decimal(length), spec, how)


def _token(spec: Mapping[str, Any], request: _Request) -> tuple[Decimal, str]:
    video = spec.get("video")
    if video is not None:
        width, height, label = _size(video["size"], request)
        seconds, how = _seconds(video["duration"], request)
        fps_value, _ = request.value(video["fps"])
        fps = _positive(fps_value, video["fps"].get("input") or "fps")
        tokens = Decimal(width * height) * fps * seconds / VIDEO_TOKEN_DIVISOR
        fps_text = _num_text(fps)
        text = f"{_num_text(tokens)} video tokens ({label} × {fps_text} fps × {how} ÷ {VIDEO_TOKEN_DIVISOR})"
        return _divided(tokens, spec, text)
    length, how = _characters(spec["text"], request)
    per_token = int(spec["characters_per_token"])
    tokens = -(-length // per_token)
    return _divided(Decimal(tokens), spec, f"{tokens:,} tokens (⌈{how} ÷ {per_token}⌉)")


def _step(spec: Mapping[str, Any], request: _Request) -> tuple[Decimal, str]:
    steps_spec = spec["steps"]
    value, given = request.value(steps_spec)
    name = steps_spec.get("input") or "steps"
    steps = _integer(value, name, steps_spec.get("minimum"), steps_spec.get("maximum"))
    how = f"{steps:,} steps ({name})" if given else f"{steps:,} steps ({name} default)"
    if not given and steps_spec.get("assumed"):
        request.assumed.append(f"{name} not given: {steps:,} assumed")
    floor = steps_spec.get("minimum_billed")
    if floor is not None and steps < int(floor):
        how = f"{int(floor):,} steps billed ({steps:,} asked, fal bills at least {int(floor):,})"
        steps = int(floor)
    return _divided(Decimal(steps), spec, how)


def _compute_second(spec: Mapping[str, Any], request: _Request) -> tuple[Decimal, str]:
    seconds = _number(spec["seconds"])
    return _divided(seconds, spec, f"{_num_text(seconds)} s (fal's duration estimate)")


_KINDS = {
    "call": _call,
    "output": _output,
    "megapixel": _megapixel,
    "second": _second,
    "clip": _clip,
    "character": _character,
    "token": _token,
    "step": _step,
    "compute_second": _compute_second,
}


def output_megapixels(card: Mapping[str, Any]) -> int:
    """Started megapixels of one output image at the card's default size (megapixel cards)."""
    width, height, _ = _size(card["quantity"]["size"], _Request({}))
    return megapixels(width, height)
