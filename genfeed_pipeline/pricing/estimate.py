"""What one call of a model costs at fal, from fal's unit price, its unit and the call's inputs.

Inputs given to `estimate_cost` override the schema's defaults, which fill the gaps. The result is the
*unrounded* cost: rounding to GenFeed's price steps happens once, later, in `policy`.

fal's billing rules used here (see ../shared/fal-api.md §3 and the contract's "Pricing rules"):

* megapixels: per image ⌈width × height ÷ 1,048,576⌉ ("billed by rounding up to the nearest megapixel"),
  times the number of images;
* seconds: × the requested duration; fixed clips ("5 seconds") per *started* clip;
* per 1000 characters / tokens: **proportional** to the text's length. fal's pages state a price "per 1000
  characters" and MiniMax's voice design page a fee "of $30 per 1M characters"; none of them states a
  rounding rule, so 2,500 characters at $0.05 per 1000 cost $0.125, not 3 × $0.05;
* compute seconds: fal's `duration_estimate` (minutes) of the endpoint, when fal gives one.

Each estimate says how far it can be trusted: `exact` (fal's rule applied to known inputs), `approximate`
(a rule fal applies to something the schema only hints at: aspect ratio and resolution instead of pixels,
input megapixels, tiers) or `estimated` (a quantity assumed: no size, no text, no duration).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any, Literal

from genfeed_pipeline.mapping.model import GenFeedModel, ModelType
from genfeed_pipeline.pricing.units import BillingUnit, UnitKind

Confidence = Literal["exact", "approximate", "estimated"]
_CONFIDENCE_RANK: dict[str, int] = {"exact": 0, "approximate": 1, "estimated": 2}

ONE_MEGAPIXEL = 1_048_576
IMAGE_SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}

# fal endpoints known (from fal's own pricing text) to count input images as billed megapixels too;
# FLUX.2 [pro] and [max] also charge the first megapixel at a different rate than the rest.
INPUT_AND_OUTPUT_MEGAPIXEL_PREFIXES: tuple[str, ...] = ("fal-ai/flux-2",)
TIERED_MEGAPIXEL_PREFIXES: tuple[str, ...] = ("fal-ai/flux-2-pro", "fal-ai/flux-2-max")

OUTPUT_COUNT_KEYS: tuple[str, ...] = (
    "num_images",
    "num_outputs",
    "num_videos",
    "num_audios",
    "num_samples",
    "number_of_images",
    "num_generations",
    "batch_size",
    "n",
)
SIZE_KEYS: tuple[str, ...] = ("image_size", "video_size", "size", "output_size")
DURATION_KEYS: tuple[str, ...] = (
    "duration",
    "duration_seconds",
    "seconds_total",
    "total_seconds",
    "seconds",
    "audio_length",
    "music_duration",
    "video_length",
    "length_seconds",
    "audio_duration",
    "target_duration",
)
TEXT_KEYS: tuple[str, ...] = (
    "text",
    "prompt",
    "input",
    "messages",
    "script",
    "content",
    "preview_text",
    "lyrics",
    "query",
    "question",
    "gen_text",
)
STEP_KEYS: tuple[str, ...] = (
    "steps",
    "number_of_steps",
    "num_steps",
    "max_train_steps",
    "training_steps",
    "max_steps",
    "num_train_steps",
    "iterations",
)
FRAME_KEYS: tuple[str, ...] = ("num_frames", "number_of_frames", "frames")
FPS_KEYS: tuple[str, ...] = ("frames_per_second", "fps", "frame_rate")

ASSUMED_VIDEO_SECONDS = Decimal(5)
ASSUMED_MEDIA_SECONDS = Decimal(60)
ASSUMED_TEXT_LENGTH = 1000
ASSUMED_TRAINING_STEPS = Decimal(1000)
CHARACTERS_PER_TOKEN = 4
VIDEO_TOKEN_FPS = Decimal(24)
VIDEO_TOKEN_DIVISOR = Decimal(1024)

_SECONDS_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:s|sec|secs|second|seconds)?\s*$", re.IGNORECASE)
_WXH = re.compile(r"^\s*(\d{2,5})\s*[x×*:]\s*(\d{2,5})\s*$", re.IGNORECASE)
_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$")
_P_RESOLUTION = re.compile(r"^\s*(\d{3,4})\s*p\s*$", re.IGNORECASE)
_K_RESOLUTION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*k\s*$", re.IGNORECASE)
_MP_RESOLUTION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*mp\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class CostEstimate:
    """fal's cost of one call. `usd` is unrounded; `quantity` is in the unit's own terms (MP, seconds,
    started clips, 1000-character blocks …) so that `usd == quantity × unit_price`."""

    usd: Decimal
    quantity: Decimal
    unit: str
    derivation: str
    confidence: Confidence
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutputSize:
    width: int
    height: int
    label: str  # how the size was given: "landscape_4_3", "1920×1080", "1080p 16:9"
    confidence: Confidence


def worst_confidence(confidences: Iterable[Confidence]) -> Confidence:
    worst: Confidence = "exact"
    for confidence in confidences:
        if _CONFIDENCE_RANK[confidence] > _CONFIDENCE_RANK[worst]:
            worst = confidence
    return worst


# -- small parsers -------------------------------------------------------------------------------------


def to_decimal(value: Any) -> Decimal | None:
    """A number from JSON or a form: never through binary floating point for money or quantities."""
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


def parse_seconds(value: Any) -> Decimal | None:
    """`5`, `5.5`, `"5"`, `"8s"`, `"10 seconds"` → seconds; anything else (`"auto"`) → None."""
    if isinstance(value, str):
        match = _SECONDS_TEXT.match(value)
        seconds = Decimal(match.group(1)) if match else None
    else:
        seconds = to_decimal(value)
    return seconds if seconds is not None and seconds > 0 else None


def megapixels(width: int, height: int) -> int:
    """fal's count: ⌈width × height ÷ 1,048,576⌉, at least 1."""
    return max(1, -(-(width * height) // ONE_MEGAPIXEL))


def _ceil(value: Decimal) -> Decimal:
    return value.to_integral_value(rounding=ROUND_CEILING)


def _num(value: Decimal | int) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value.normalize():f}"


def _money(value: Decimal) -> str:
    return f"${value.normalize():f}"


def _plural(count: Decimal | int, word: str) -> str:
    return f"{_num(count)} {word}" + ("" if count == 1 else "s")


# -- reading the schema --------------------------------------------------------------------------------


def input_properties(model: GenFeedModel) -> Mapping[str, dict[str, Any]]:
    schema = model.input_schema or {}
    properties = schema.get("properties")
    return properties if isinstance(properties, dict) else {}


def effective_inputs(model: GenFeedModel, inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The schema's defaults, overridden by `inputs` (an input of None means "use the default")."""
    values = {
        name: node["default"]
        for name, node in input_properties(model).items()
        if isinstance(node, dict) and node.get("default") is not None
    }
    if inputs:
        values.update({name: value for name, value in inputs.items() if value is not None})
    return values


def _enum_values(node: Mapping[str, Any] | None) -> list[Any]:
    if not node:
        return []
    values = list(node.get("enum") or ())
    for alternative in node.get("any_of") or ():
        if isinstance(alternative, dict):
            values.extend(alternative.get("enum") or ())
    return values


def output_count(model: GenFeedModel, values: Mapping[str, Any]) -> tuple[int, str | None]:
    keys = OUTPUT_COUNT_KEYS
    if model.capabilities.num_outputs_param:
        keys = (model.capabilities.num_outputs_param, *OUTPUT_COUNT_KEYS)
    for key in keys:
        count = to_decimal(values.get(key))
        if count is not None and count >= 1:
            return int(_ceil(count)), key
    return 1, None


def _size_from_value(value: Any) -> tuple[int, int, str] | None:
    if isinstance(value, dict):
        width, height = to_decimal(value.get("width")), to_decimal(value.get("height"))
        if width and height and width > 0 and height > 0:
            w, h = int(_ceil(width)), int(_ceil(height))
            return w, h, f"{w}×{h}"
        return None
    if isinstance(value, str):
        preset = IMAGE_SIZE_PRESETS.get(value.strip().lower())
        if preset:
            return preset[0], preset[1], f"{value.strip()}: {preset[0]}×{preset[1]}"
        match = _WXH.match(value)
        if match:
            w, h = int(match.group(1)), int(match.group(2))
            return w, h, f"{w}×{h}"
    return None


def _ratio(value: Any) -> tuple[Decimal, Decimal] | None:
    if isinstance(value, str):
        match = _RATIO.match(value)
        if match:
            a, b = Decimal(match.group(1)), Decimal(match.group(2))
            if a > 0 and b > 0:
                return a, b
    return None


def _size_from_area(area: Decimal, ratio: tuple[Decimal, Decimal]) -> tuple[int, int]:
    a, b = ratio
    width = (area * a / b).sqrt()
    height = (area * b / a).sqrt()
    return int(width.to_integral_value()), int(height.to_integral_value())


def _size_from_aspect_resolution(aspect: Any, resolution: Any, *, video: bool) -> OutputSize | None:
    """Best effort from `aspect_ratio` and `resolution` ("720p", "1080p", "1K", "2K", "4K", "2 MP")."""
    ratio = _ratio(aspect)
    shown_ratio = f" {aspect}" if ratio else ""
    if isinstance(resolution, str):
        match = _P_RESOLUTION.match(resolution)
        if match:
            short = Decimal(match.group(1))
            a, b = ratio or (Decimal(16), Decimal(9))
            long = int((short * max(a, b) / min(a, b)).to_integral_value())
            w, h = (long, int(short)) if a >= b else (int(short), long)
            return OutputSize(w, h, f"{resolution}{shown_ratio or ' 16:9 assumed'} ≈ {w}×{h}", "approximate")
        match = _K_RESOLUTION.match(resolution)
        if match:
            side = Decimal(match.group(1)) * 1024
            w, h = _size_from_area(side * side, ratio or (Decimal(1), Decimal(1)))
            return OutputSize(w, h, f"{resolution}{shown_ratio} ≈ {w}×{h}", "approximate")
        match = _MP_RESOLUTION.match(resolution)
        if match:
            area = Decimal(match.group(1)) * ONE_MEGAPIXEL
            w, h = _size_from_area(area, ratio or (Decimal(1), Decimal(1)))
            return OutputSize(w, h, f"{resolution}{shown_ratio} ≈ {w}×{h}", "approximate")
        sized = _size_from_value(resolution)
        if sized:
            return OutputSize(sized[0], sized[1], sized[2], "exact")
    if ratio:
        if video:
            return _size_from_aspect_resolution(aspect, "720p", video=True)
        w, h = _size_from_area(Decimal(ONE_MEGAPIXEL), ratio)
        return OutputSize(w, h, f"{aspect} at ≈1 MP ≈ {w}×{h}", "approximate")
    return None


def output_size(model: GenFeedModel, values: Mapping[str, Any]) -> OutputSize | None:
    """The output's pixel size, from a size input, width/height, or aspect ratio and resolution."""
    for key in SIZE_KEYS:
        sized = _size_from_value(values.get(key))
        if sized:
            return OutputSize(sized[0], sized[1], sized[2], "exact")
    width, height = to_decimal(values.get("width")), to_decimal(values.get("height"))
    if width and height and width > 0 and height > 0:
        w, h = int(_ceil(width)), int(_ceil(height))
        return OutputSize(w, h, f"{w}×{h}", "exact")
    return _size_from_aspect_resolution(
        values.get("aspect_ratio"), values.get("resolution"), video=model.category is ModelType.VIDEO
    )


def _is_image_input(name: str, node: Mapping[str, Any]) -> bool:
    file_info = node.get("file")
    if isinstance(file_info, dict):
        return file_info.get("media") == "image"
    items = node.get("items")
    if isinstance(items, dict) and isinstance(items.get("file"), dict):
        return items["file"].get("media") == "image"
    return "image" in name and (name.endswith("_url") or name.endswith("_urls"))


def input_image_count(model: GenFeedModel, values: Mapping[str, Any]) -> tuple[int, bool]:
    """How many input images a call sends (given ones, else 1 per required image input): (count, assumed)."""
    properties = input_properties(model)
    given = 0
    for name, node in properties.items():
        if not isinstance(node, dict) or not _is_image_input(name, node):
            continue
        value = values.get(name)
        if isinstance(value, str) and value:
            given += 1
        elif isinstance(value, list | tuple):
            given += sum(1 for item in value if item)
    if given:
        return given, False
    required = set((model.input_schema or {}).get("required") or ())
    assumed = sum(
        1
        for name, node in properties.items()
        if name in required and isinstance(node, dict) and _is_image_input(name, node)
    )
    return assumed, True


def requested_seconds(
    model: GenFeedModel, values: Mapping[str, Any]
) -> tuple[Decimal, str, Confidence] | None:
    """The requested duration in seconds: (seconds, how it was read, confidence)."""
    properties = input_properties(model)
    for key in DURATION_KEYS:
        node = properties.get(key)
        if key in values:
            seconds = parse_seconds(values[key])
            if seconds is not None:
                return seconds, f"{key}={values[key]!r}", "exact"
        elif node is None:
            continue
        options = [s for s in (parse_seconds(v) for v in _enum_values(node)) if s is not None]
        if options:
            if key in values:  # e.g. "auto": fal decides; assume the longest it may choose
                return max(options), f"{key}={values[key]!r}, longest option assumed", "approximate"
            return options[0], f"{key} not set, first option assumed", "approximate"
    for frame_key in FRAME_KEYS:
        frames = to_decimal(values.get(frame_key))
        if frames and frames > 0:
            for fps_key in FPS_KEYS:
                fps = to_decimal(values.get(fps_key))
                if fps and fps > 0:
                    return frames / fps, f"{_num(frames)} frames ÷ {_num(fps)} fps", "approximate"
            seconds = frames / VIDEO_TOKEN_FPS
            return seconds, f"{_num(frames)} frames at 24 fps assumed", "approximate"
    return None


def _text_length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        total = 0
        for item in value:
            if isinstance(item, dict):
                total += _text_length(item.get("content"))
            else:
                total += _text_length(item)
        return total
    return 0


def text_length(
    model: GenFeedModel, values: Mapping[str, Any], explicit: Mapping[str, Any] | None
) -> tuple[int, str, Confidence]:
    """Characters of the call's text: (length, where from, confidence)."""
    for key in TEXT_KEYS:
        length = _text_length(values.get(key))
        if length:
            from_caller = explicit is not None and explicit.get(key) is not None
            source = f"{key}" if from_caller else f"{key} (schema default)"
            return length, source, "exact" if from_caller else "estimated"
    properties = input_properties(model)
    for key in TEXT_KEYS:
        node = properties.get(key)
        examples = node.get("examples") if isinstance(node, dict) else None
        if examples:
            length = _text_length(examples[0])
            if length:
                return length, f"{key} (schema example)", "estimated"
    return ASSUMED_TEXT_LENGTH, "no text given, 1,000 assumed", "estimated"


def training_steps(values: Mapping[str, Any]) -> tuple[Decimal, str, Confidence]:
    for key in (*STEP_KEYS, "num_inference_steps"):
        steps = to_decimal(values.get(key))
        if steps is not None and steps > 0:
            return _ceil(steps), key, "exact"
    return ASSUMED_TRAINING_STEPS, "no steps given, 1,000 assumed", "estimated"


def _has_prefix(endpoint_id: str, prefixes: tuple[str, ...]) -> bool:
    return any(endpoint_id == p or endpoint_id.startswith((p + "/", p + "-")) for p in prefixes)


# -- the estimate ---------------------------------------------------------------------------------------


def _megapixel_cost(
    model: GenFeedModel, unit_price: Decimal, unit: BillingUnit, values: Mapping[str, Any]
) -> CostEstimate:
    flags: list[str] = []
    size = output_size(model, values)
    count, _ = output_count(model, values)
    if size is None:
        per_image = 1
        confidence: Confidence = "estimated"
        sizing = "1 MP (no output size in the schema: 1 MP assumed)"
    else:
        per_image = megapixels(size.width, size.height)
        confidence = size.confidence
        sizing = f"{per_image} MP ({size.label} → ⌈{size.width * size.height:,} ÷ {ONE_MEGAPIXEL:,}⌉)"
    quantity = Decimal(per_image * count)
    derivation = f"{sizing} × {_plural(count, 'image')}"

    if unit.approximate or _has_prefix(model.endpoint_id, INPUT_AND_OUTPUT_MEGAPIXEL_PREFIXES):
        inputs, assumed = input_image_count(model, values)
        if inputs:
            quantity += inputs
            assumed_text = " (assumed)" if assumed else ""
            derivation += f" + {_plural(inputs, 'input image')} at 1 MP each{assumed_text}"
        flags.append(unit.flag or "billed on input and output megapixels: approximate")
        confidence = worst_confidence((confidence, "approximate"))
    if _has_prefix(model.endpoint_id, TIERED_MEGAPIXEL_PREFIXES):
        flags.append("tiered megapixel price (first megapixel priced differently): approximate")
        confidence = worst_confidence((confidence, "approximate"))
    quantity = quantity / unit.per
    derivation += f" × {_money(unit_price)}"
    usd = quantity * unit_price
    return CostEstimate(usd, quantity, unit.normalized, derivation, confidence, tuple(flags))


def _seconds(model: GenFeedModel, values: Mapping[str, Any]) -> tuple[Decimal, str, Confidence]:
    found = requested_seconds(model, values)
    if found is not None:
        return found
    if model.category is ModelType.VIDEO:
        return ASSUMED_VIDEO_SECONDS, "no duration in the schema, 5 s assumed", "estimated"
    return ASSUMED_MEDIA_SECONDS, "no duration in the schema, 60 s assumed", "estimated"


def _video_tokens(model: GenFeedModel, values: Mapping[str, Any]) -> tuple[Decimal, str, Confidence]:
    """fal's video token count (Seedance): height × width × fps × duration ÷ 1024."""
    seconds, how, confidence = _seconds(model, values)
    size = output_size(model, values) or _size_from_aspect_resolution("16:9", "720p", video=True)
    assert size is not None
    fps = next((f for f in (to_decimal(values.get(k)) for k in FPS_KEYS) if f and f > 0), VIDEO_TOKEN_FPS)
    tokens = Decimal(size.width * size.height) * fps * seconds / VIDEO_TOKEN_DIVISOR
    text = f"{_num(tokens)} video tokens ({size.label} × {_num(fps)} fps × {_num(seconds)} s ({how}) ÷ 1024)"
    return tokens, text, worst_confidence((confidence, size.confidence, "approximate"))


def estimate_cost(
    model: GenFeedModel,
    unit_price: Decimal,
    unit: BillingUnit,
    inputs: dict[str, Any] | None = None,
) -> CostEstimate | None:
    """fal's cost of one call of `model` with `inputs` (else the schema's defaults); None when the unit
    cannot be priced, or a compute-second model has no duration estimate."""
    if not unit.priceable:
        return None
    price = to_decimal(unit_price)
    if price is None or price < 0:
        return None
    values = effective_inputs(model, inputs)
    kind = unit.kind
    label = unit.label
    flags: tuple[str, ...] = (unit.flag,) if unit.flag else ()
    base_confidence: Confidence = "approximate" if unit.approximate else "exact"

    if kind is UnitKind.MEGAPIXEL:
        return _megapixel_cost(model, price, unit, values)

    if kind is UnitKind.IMAGE or (kind is UnitKind.CALL and unit.per_output):
        count, _ = output_count(model, values)
        quantity = Decimal(count) / unit.per
        noun = "image" if kind is UnitKind.IMAGE else unit.normalized
        derivation = f"{_plural(count, noun)} × {_money(price)} per {label}"
        return CostEstimate(quantity * price, quantity, unit.normalized, derivation, base_confidence, flags)

    if kind is UnitKind.CALL:
        quantity = Decimal(1) / unit.per
        derivation = f"1 call × {_money(price)} per {label}"
        return CostEstimate(quantity * price, quantity, unit.normalized, derivation, base_confidence, flags)

    if kind is UnitKind.SECOND:
        seconds, how, confidence = _seconds(model, values)
        quantity = seconds / unit.per
        derivation = f"{_num(seconds)} s ({how}) × {_money(price)} per {label}"
        confidence = worst_confidence((confidence, base_confidence))
        return CostEstimate(quantity * price, quantity, unit.normalized, derivation, confidence, flags)

    if kind is UnitKind.CLIP:
        assert unit.clip_seconds is not None
        found = requested_seconds(model, values)
        if found is None:
            clips = Decimal(1)
            derivation = f"1 clip (no duration in the schema, one clip assumed) × {_money(price)} per {label}"
            confidence = "estimated"
        else:
            seconds, how, confidence = found
            clips = max(Decimal(1), _ceil(seconds / unit.clip_seconds))
            derivation = (
                f"{_plural(clips, 'clip')} (⌈{_num(seconds)} s ({how}) ÷ {_num(unit.clip_seconds)} s⌉)"
                f" × {_money(price)} per {label}"
            )
        return CostEstimate(clips * price, clips, unit.normalized, derivation, confidence, flags)

    if kind is UnitKind.MINUTE:
        found = requested_seconds(model, values)
        if found is None:
            minutes, how, confidence = Decimal(1), "no duration in the schema, 1 minute assumed", "estimated"
        else:
            seconds, how, confidence = found
            minutes = seconds / 60
            how = f"{_num(seconds)} s from {how}"
            confidence = worst_confidence((confidence, "approximate"))
        quantity = minutes / unit.per
        derivation = f"{_num(minutes)} min ({how}) × {_money(price)} per {label}"
        return CostEstimate(quantity * price, quantity, unit.normalized, derivation, confidence, flags)

    if kind is UnitKind.CHARACTERS:
        length, how, confidence = text_length(model, values, inputs)
        quantity = Decimal(length) / unit.per
        derivation = (
            f"{length:,} characters ({how}) ÷ {_num(unit.per)} × {_money(price)} per {label} (proportional)"
        )
        return CostEstimate(quantity * price, quantity, unit.normalized, derivation, confidence, flags)

    if kind is UnitKind.TOKENS:
        if model.category is ModelType.VIDEO:
            tokens, how, confidence = _video_tokens(model, values)
            derivation = f"{how} ÷ {_num(unit.per)} × {_money(price)} per {label}"
        else:
            length, how, confidence = text_length(model, values, inputs)
            tokens = Decimal(-(-length // CHARACTERS_PER_TOKEN))
            confidence = worst_confidence((confidence, "approximate"))
            derivation = (
                f"{_num(tokens)} tokens (⌈{length:,} characters ({how}) ÷ {CHARACTERS_PER_TOKEN}⌉)"
                f" ÷ {_num(unit.per)} × {_money(price)} per {label}"
            )
        quantity = tokens / unit.per
        return CostEstimate(quantity * price, quantity, unit.normalized, derivation, confidence, flags)

    if kind is UnitKind.COMPUTE_SECOND:
        minutes = to_decimal(model.duration_estimate_minutes)
        if minutes is None or minutes <= 0:
            return None
        seconds = minutes * 60
        quantity = seconds / unit.per
        derivation = (
            f"{_num(seconds)} s (fal's duration estimate, {_num(minutes)} min) × {_money(price)} per {label}"
        )
        return CostEstimate(quantity * price, quantity, unit.normalized, derivation, "estimated", flags)

    if kind is UnitKind.STEP:
        steps, how, confidence = training_steps(values)
        quantity = steps / unit.per
        derivation = f"{_num(steps)} steps ({how}) × {_money(price)} per {label}"
        return CostEstimate(quantity * price, quantity, unit.normalized, derivation, confidence, flags)

    return None


def default_image_megapixels(model: GenFeedModel) -> tuple[int, Confidence]:
    """Megapixels of one output image at the schema's default size (1 MP, estimated, when unknown)."""
    size = output_size(model, effective_inputs(model))
    if size is None:
        return 1, "estimated"
    return megapixels(size.width, size.height), size.confidence
