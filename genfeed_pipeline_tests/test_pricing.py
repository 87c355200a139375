"""Pricing: units, rate cards built from a schema and evaluated, GenFeed's price and billing JSON.

Money figures are fal's own public worked examples (fal pages quoted in ../shared/fal-api.md §3), typed in by
hand; models are hand-built `GenFeedModel`s with small normalised input schemas (not the mapper's output).
Every cost here goes through the one evaluator, from the card the builder makes of the model.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genfeed_pipeline.db.engine import json_text
from genfeed_pipeline.fal.catalog import DataSource, PriceLookup, PriceQuote, PriceStatus
from genfeed_pipeline.mapping.model import Capabilities, GenFeedModel, ModelType
from genfeed_pipeline.pricing import (
    BillingUnit,
    Evaluation,
    PricedModel,
    PricingPolicy,
    UnitKind,
    billing_json,
    build_rate_card,
    capability_names,
    cheapest_model,
    estimate_workflow,
    evaluate,
    margin_of,
    megapixels,
    normalize_unit,
    parse_seconds,
    policy_enabled,
    price_catalog,
    price_model,
    price_per_call,
    resale_unit_price,
)
from genfeed_pipeline.pricing.terms import terms_for
from genfeed_pipeline.settings import Deployment
from genfeed_pipeline_tests.fal_data import collected_price_units

D = Decimal
CLOUD = PricingPolicy(Deployment.CLOUD)
CORE = PricingPolicy(Deployment.CORE)
SEEN_AT = datetime(2026, 1, 4, tzinfo=UTC)
PRESETS = ["square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"]


# -- hand-made models ----------------------------------------------------------------------------------------


def make_model(
    endpoint_id: str,
    category: ModelType | None,
    properties: dict[str, Any],
    *,
    required: tuple[str, ...] = (),
    capabilities: Capabilities | None = None,
    **extra: Any,
) -> GenFeedModel:
    return GenFeedModel(
        endpoint_id=endpoint_id,
        name=endpoint_id.rsplit("/", 1)[-1],
        category=category,
        fal_category=None,
        status="active",
        owner=endpoint_id.split("/", 1)[0],
        input_schema={"type": "object", "properties": properties, "required": list(required)},
        capabilities=capabilities or Capabilities(),
        **extra,
    )


def image_size_property(default: Any) -> dict[str, Any]:
    return {
        "type": "any",
        "any_of": [
            {
                "type": "object",
                "ref": "ImageSize",
                "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}},
            },
            {"type": "string", "enum": PRESETS},
        ],
        "default": default,
    }


def flux_model(endpoint_id: str = "fal-ai/flux/dev", default_size: Any = "landscape_4_3") -> GenFeedModel:
    return make_model(
        endpoint_id,
        ModelType.IMAGE,
        {
            "prompt": {"type": "string", "examples": ["a cat"]},
            "image_size": image_size_property(default_size),
            "num_images": {"type": "integer", "default": 1, "minimum": 1, "maximum": 4},
            "seed": {"type": "integer", "nullable": True},
            "negative_prompt": {"type": "string", "default": ""},
        },
        required=("prompt",),
        capabilities=Capabilities(
            seed=True,
            num_outputs_param="num_images",
            max_outputs=4,
            image_sizes=tuple(PRESETS),
            custom_image_size=True,
        ),
    )


def kling_model(endpoint_id: str = "fal-ai/kling-video/v2.5-turbo/pro/image-to-video") -> GenFeedModel:
    return make_model(
        endpoint_id,
        ModelType.VIDEO,
        {
            "prompt": {"type": "string"},
            "image_url": {"type": "string", "file": {"media": "image", "max_file_size": None}},
            "duration": {"type": "string", "enum": ["5", "10"], "default": "5"},
            "negative_prompt": {"type": "string", "default": "blur, distort, and low quality"},
        },
        required=("prompt", "image_url"),
        capabilities=Capabilities(
            accepted_input_media=("image", "text"), negative_prompt=True, durations=("5", "10")
        ),
    )


def tts_model(examples: list[str] | None = None, default: str | None = None) -> GenFeedModel:
    text: dict[str, Any] = {"type": "string"}
    if examples:
        text["examples"] = examples
    if default is not None:
        text["default"] = default
    return make_model(
        "fal-ai/minimax/speech-02-hd", ModelType.AUDIO, {"text": text, "voice": {"type": "string"}}
    )


def quote(endpoint_id: str, unit_price: str | Decimal, unit: str) -> PriceLookup:
    return PriceLookup(
        PriceStatus.PRICED,
        PriceQuote(endpoint_id, D(unit_price), unit, "USD", DataSource.SNAPSHOT, SEEN_AT, origin="test"),
    )


def card_for(
    model: GenFeedModel, unit_price: str | Decimal, unit: str | None, policy: PricingPolicy = CLOUD
) -> dict[str, Any] | None:
    price = D(unit_price)
    return build_rate_card(
        model, normalize_unit(unit, price), price, policy.rule(), terms_for(model.endpoint_id)
    )


def evaluation(
    model: GenFeedModel, unit_price: str | Decimal, unit: str, inputs: dict[str, Any] | None = None
) -> Evaluation:
    card = card_for(model, unit_price, unit)
    assert card is not None
    return evaluate(card, inputs)


def cost(model: GenFeedModel, unit_price: str, unit: str, inputs: dict[str, Any] | None = None) -> Decimal:
    result = evaluation(model, unit_price, unit, inputs)
    assert isinstance(result.exact_cost, Decimal)
    return result.exact_cost


def within_one_percent(value: Decimal, expected: Decimal) -> bool:
    return abs(value - expected) <= expected / 100


# -- units ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized", "kind", "per", "priceable"),
    [
        ("megapixels", "megapixel", UnitKind.MEGAPIXEL, 1, True),
        ("images", "image", UnitKind.IMAGE, 1, True),
        ("image", "image", UnitKind.IMAGE, 1, True),
        ("seconds", "second", UnitKind.SECOND, 1, True),
        ("compute seconds", "compute second", UnitKind.COMPUTE_SECOND, 1, True),
        ("1000 characters", "1000 character", UnitKind.CHARACTERS, 1000, True),
        ("1000 characters ", "1000 character", UnitKind.CHARACTERS, 1000, True),
        ("1m tokens", "1m token", UnitKind.TOKENS, 1_000_000, True),
        ("1000 tokens", "1000 token", UnitKind.TOKENS, 1000, True),
        ("video segments", "video segment", UnitKind.CALL, 1, True),
        ("5 seconds", "5 second", UnitKind.CLIP, 5, True),
        ("10 seconds", "10 second", UnitKind.CLIP, 10, True),
        ("30 seconds", "30 second", UnitKind.CLIP, 30, True),
        ("minute of video ", "minute of video", UnitKind.MINUTE, 1, True),
        ("minutes", "minute", UnitKind.MINUTE, 1, True),
        ("videos", "video", UnitKind.CALL, 1, True),
        ("generations", "generation", UnitKind.CALL, 1, True),
        ("requests", "request", UnitKind.CALL, 1, True),
        ("audios", "audio", UnitKind.CALL, 1, True),
        ("trainings", "training", UnitKind.CALL, 1, True),
        ("cloned voices", "cloned voice", UnitKind.CALL, 1, True),
        ("steps", "step", UnitKind.STEP, 1, True),
        ("input seconds", "input second", UnitKind.SECOND, 1, True),
        ("processed megapixels", "processed megapixel", UnitKind.MEGAPIXEL, 1, True),
        ("  MegaPixels ", "megapixel", UnitKind.MEGAPIXEL, 1, True),
        ("units", "unit", UnitKind.UNKNOWN, 1, False),
        ("credits", "credit", UnitKind.UNKNOWN, 1, False),
        ("", "", UnitKind.UNKNOWN, 1, False),
        ("1", "1", UnitKind.UNKNOWN, 1, False),
        ("furlongs", "furlong", UnitKind.UNKNOWN, 1, False),
    ],
)
def test_normalize_unit(raw: str, normalized: str, kind: UnitKind, per: int, priceable: bool) -> None:
    unit = normalize_unit(raw)
    assert unit.raw == raw
    assert unit.normalized == normalized
    assert unit.kind is kind
    assert unit.per == D(per)
    assert isinstance(unit.per, Decimal)
    assert unit.priceable is priceable


def test_unit_flags_say_why() -> None:
    assert normalize_unit("units").flag == "ambiguous unit 'units'"
    assert normalize_unit("credits").flag == "ambiguous unit 'credits'"
    assert normalize_unit("1").flag == "ambiguous unit '1'"
    assert normalize_unit("").flag == "empty unit"
    assert normalize_unit(None).flag == "no unit"
    assert normalize_unit("furlongs").flag == "unknown unit 'furlongs'"
    assert normalize_unit("megapixels").flag is None
    assert normalize_unit("processed megapixels").approximate
    assert normalize_unit("5 seconds").clip_seconds == D(5)


def test_zero_per_compute_second_is_not_priceable() -> None:
    zero = normalize_unit("compute seconds", D("0"))
    assert not zero.priceable
    assert zero.flag and "0 per compute second" in zero.flag
    assert normalize_unit("compute seconds", D("0.00125")).priceable


def test_every_unit_string_in_the_collected_prices_is_handled() -> None:
    units_by_source = collected_price_units()
    assert sum(len(units) for units in units_by_source.values()) == 62
    for source, units in units_by_source.items():
        for raw in units:
            unit = normalize_unit(raw)
            assert isinstance(unit, BillingUnit)
            if source in {"videosos_2025-10-30", "nunomen_2026-01-04", "inference-sh-grid_2026"}:
                ambiguous = (raw or "").strip() in {"units", "credits", "", "1"}
                assert unit.priceable is not ambiguous, raw


# -- megapixels ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1024, 1024, 1),  # exactly 1,048,576 px
        (1_048_577, 1, 2),  # one pixel more
        (1920, 1080, 2),
        (512, 512, 1),
        (1024, 768, 1),
        (2048, 2048, 4),
        (3840, 2160, 8),
        (1, 1, 1),
    ],
)
def test_megapixels_round_up(width: int, height: int, expected: int) -> None:
    assert megapixels(width, height) == expected


def test_flux_dev_worked_examples() -> None:
    flux = flux_model()
    assert cost(flux, "0.025", "megapixels", {"image_size": {"width": 1920, "height": 1080}}) == D("0.05")
    assert cost(flux, "0.025", "megapixels", {"image_size": {"width": 512, "height": 512}}) == D("0.025")
    assert cost(flux, "0.025", "megapixels") == D("0.025")  # default landscape_4_3 = 1024x768
    assert cost(flux, "0.025", "megapixels", {"image_size": "square_hd", "num_images": 2}) == D("0.05")


def test_megapixel_derivation_and_confidence() -> None:
    estimate = evaluation(
        flux_model(), "0.025", "megapixels", {"image_size": {"width": 1920, "height": 1080}}
    )
    assert estimate.derivation == (
        "2 MP (1920×1080 → ⌈2,073,600 ÷ 1,048,576⌉) × 1 image × $0.025 per megapixel"
    )
    assert estimate.confidence == "exact"
    assert estimate.quantity == D(2)
    assert estimate.cost == D("0.05") and estimate.price == D("0.1667")


@pytest.mark.parametrize(
    ("preset", "expected_mp"),
    [("square_hd", 1), ("square", 1), ("portrait_4_3", 1), ("portrait_16_9", 1), ("landscape_16_9", 1)],
)
def test_size_presets(preset: str, expected_mp: int) -> None:
    estimate = evaluation(flux_model(), "0.025", "megapixels", {"image_size": preset})
    assert estimate is not None and estimate.quantity == D(expected_mp)
    assert estimate.confidence == "exact"


def test_flux_2_flex_is_billed_on_input_and_output_megapixels() -> None:
    flex = flux_model("fal-ai/flux-2-flex")
    for size, expected in [((1024, 1024), "0.05"), ((1920, 1080), "0.10"), ((512, 512), "0.05")]:
        inputs = {"image_size": {"width": size[0], "height": size[1]}}
        estimate = evaluation(flex, "0.05", "megapixels", inputs)
        assert estimate is not None
        assert estimate.exact_cost == D(expected)
        assert estimate.confidence == "approximate"
        assert any("input and output" in flag for flag in estimate.flags)


def test_input_megapixels_count_for_an_edit_model() -> None:
    edit = make_model(
        "fal-ai/flux-2-flex/edit",
        ModelType.IMAGE,
        {
            "prompt": {"type": "string"},
            "image_urls": {"type": "array", "items": {"type": "string", "file": {"media": "image"}}},
            "image_size": image_size_property("square_hd"),
        },
        required=("prompt", "image_urls"),
    )
    assumed = evaluation(edit, "0.05", "megapixels")
    assert assumed is not None and assumed.exact_cost == D(
        "0.10"
    )  # 1 MP out + 1 required input assumed at 1 MP
    given = evaluation(edit, "0.05", "megapixels", {"image_urls": ["a", "b", "c"]})
    assert given is not None and given.exact_cost == D("0.20")


def test_processed_megapixels_are_approximate() -> None:
    estimate = evaluation(flux_model("fal-ai/omnigen-v1", "square_hd"), "0.1", "processed megapixels")
    assert estimate is not None and estimate.confidence == "approximate"


def test_sizes_from_aspect_ratio_and_resolution_are_approximate() -> None:
    imagen = make_model(
        "fal-ai/imagen4/preview",
        ModelType.IMAGE,
        {
            "aspect_ratio": {"type": "string", "enum": ["1:1", "16:9"], "default": "1:1"},
            "resolution": {"type": "string", "enum": ["1K", "2K", "4K", "1080p"], "default": "1K"},
        },
    )
    one_k = evaluation(imagen, "0.01", "megapixels")
    assert one_k is not None and one_k.quantity == D(1) and one_k.confidence == "approximate"
    four_k = evaluation(imagen, "0.01", "megapixels", {"resolution": "4K"})
    assert four_k is not None and four_k.quantity == D(16)
    wide = evaluation(imagen, "0.01", "megapixels", {"resolution": "1080p", "aspect_ratio": "16:9"})
    assert wide is not None and wide.quantity == D(2)  # 1920x1080


def test_no_size_at_all_assumes_one_megapixel() -> None:
    upscaler = make_model(
        "fal-ai/some-upscaler",
        ModelType.IMAGE,
        {
            "image_url": {"type": "string", "file": {"media": "image"}},
            "upscale_factor": {"type": "number", "default": 2},
        },
        required=("image_url",),
    )
    estimate = evaluation(upscaler, "0.01", "megapixels")
    assert estimate is not None
    assert estimate.exact_cost == D("0.01")
    assert estimate.confidence == "estimated"


def test_per_image_units_multiply_by_outputs() -> None:
    flux = flux_model("fal-ai/recraft/v3/text-to-image")
    assert cost(flux, "0.04", "images") == D("0.04")
    assert cost(flux, "0.04", "images", {"num_images": 3}) == D("0.12")
    # per-call units are one call; units that are the output itself follow the number of outputs
    assert cost(flux, "0.04", "generations", {"num_images": 3}) == D("0.04")
    assert cost(flux, "0.04", "requests", {"num_images": 3}) == D("0.04")


# -- seconds, clips, minutes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (5, D(5)),
        ("5", D(5)),
        ("8s", D(8)),
        ("5.5", D("5.5")),
        (5.5, D("5.5")),
        ("10 seconds", D(10)),
        (D("6"), D(6)),
        ("auto", None),
        (True, None),
        (0, None),
        (None, None),
        ("", None),
    ],
)
def test_parse_seconds(value: Any, seconds: Decimal | None) -> None:
    assert parse_seconds(value) == seconds


def test_kling_worked_examples() -> None:
    kling = kling_model()
    five = cost(kling, "0.07", "seconds")
    ten = cost(kling, "0.07", "seconds", {"duration": "10"})
    assert five == D("0.35")
    assert ten == D("0.70")
    assert ten == five + 5 * D("0.07")
    estimate = evaluation(kling, "0.07", "seconds")
    assert estimate is not None and estimate.confidence == "exact" and estimate.quantity == D(5)


def test_kling_o3_4k_worked_example() -> None:
    o3 = kling_model("fal-ai/kling-video/o3/4k/text-to-video")
    assert cost(o3, "0.42", "seconds") == D("2.10")


@pytest.mark.parametrize(("duration", "seconds"), [(8, 8), ("8s", 8), ("5.5", "5.5"), (6, 6)])
def test_duration_inputs(duration: Any, seconds: Any) -> None:
    veo = make_model("fal-ai/veo3/fast", ModelType.VIDEO, {"duration": {"type": "string", "default": "8s"}})
    assert cost(veo, "0.1", "seconds", {"duration": duration}) == D(str(seconds)) * D("0.1")


def test_duration_from_an_enum_without_default_and_from_auto() -> None:
    # No default: the one fallback rule takes the lowest allowed value (the first option), estimated.
    no_default = make_model("x/a", ModelType.VIDEO, {"duration": {"type": "string", "enum": ["6", "10"]}})
    estimate = evaluation(no_default, "0.1", "seconds")
    assert estimate.quantity == D(6) and estimate.confidence == "estimated"
    assert any("duration has no default" in flag for flag in estimate.flags)
    auto = make_model(
        "x/b",
        ModelType.VIDEO,
        {"duration": {"type": "string", "enum": ["auto", "4", "15"], "default": "auto"}},
    )
    estimate = evaluation(auto, "0.1", "seconds")
    assert estimate is not None and estimate.quantity == D(15) and estimate.confidence == "approximate"


def test_no_duration_is_estimated() -> None:
    upscaler = make_model("x/video-upscaler", ModelType.VIDEO, {"video_url": {"type": "string"}})
    estimate = evaluation(upscaler, "0.1", "seconds")
    assert estimate is not None and estimate.quantity == D(5) and estimate.confidence == "estimated"


def test_clip_units_are_charged_per_started_clip() -> None:
    ray = make_model(
        "fal-ai/luma-dream-machine/ray-2-flash",
        ModelType.VIDEO,
        {"duration": {"type": "string", "enum": ["5s", "9s"], "default": "5s"}},
    )
    assert cost(ray, "0.2", "5 seconds") == D("0.2")
    assert cost(ray, "0.2", "5 seconds", {"duration": "9s"}) == D("0.4")  # fal: "9s costs 2x more"
    assert cost(ray, "0.1", "10 seconds", {"duration": 10}) == D("0.1")
    assert cost(ray, "0.1", "10 seconds", {"duration": 11}) == D("0.2")
    lyria = make_model("fal-ai/lyria2", ModelType.AUDIO, {"prompt": {"type": "string"}})
    estimate = evaluation(lyria, "0.1", "30 seconds")
    assert estimate is not None and estimate.exact_cost == D("0.1") and estimate.confidence == "estimated"


def test_minutes() -> None:
    music = make_model("cassetteai/music-generator", ModelType.AUDIO, {"duration": {"type": "integer"}})
    assert cost(music, "0.02", "minutes", {"duration": 90}) == D("0.03")
    estimate = evaluation(music, "0.02", "minutes")
    assert estimate is not None and estimate.exact_cost == D("0.02") and estimate.confidence == "estimated"


# -- characters, tokens, compute seconds, steps --------------------------------------------------------------


def test_characters_are_proportional() -> None:
    speech = tts_model()
    assert cost(speech, "0.05", "1000 characters", {"text": "x" * 2500}) == D("0.125")
    assert cost(speech, "0.05", "1000 characters", {"text": "😀" * 1000}) == D("0.05")  # code points
    assert cost(speech, "0.05", "1000 characters ", {"text": "x" * 1000}) == D("0.05")


def test_characters_without_text_use_the_example_else_1000() -> None:
    with_example = evaluation(tts_model(examples=["y" * 200]), "0.05", "1000 characters")
    assert with_example is not None
    assert with_example.exact_cost == D("0.01")
    assert with_example.confidence == "estimated"
    bare = evaluation(tts_model(), "0.05", "1000 characters")
    assert bare is not None and bare.exact_cost == D("0.05") and bare.confidence == "estimated"
    assert any("no text given" in note for note in bare.notes)
    explicit = evaluation(tts_model(), "0.05", "1000 characters", {"text": "hello"})
    assert explicit.exact_cost == D("0.00025") and explicit.notes == ()


def test_text_tokens_and_video_tokens() -> None:
    guard = make_model("fal-ai/qwen-3-guard", ModelType.TEXT, {"prompt": {"type": "string"}})
    estimate = evaluation(guard, "0.002", "1000 tokens", {"prompt": "x" * 4000})
    assert estimate.exact_cost == D("0.002") and estimate.confidence == "estimated"  # ⌈chars ÷ 4⌉: estimated
    messages = [{"role": "user", "content": "x" * 4000}]
    chat = make_model("x/llm", ModelType.TEXT, {"messages": {"type": "array"}})
    assert cost(chat, "1", "1m tokens", {"messages": messages}) == D("0.001")
    # fal: Seedance 1.0 Pro Fast, "each 1080p 5 second video costs roughly $0.243" at $1 per 1M video tokens
    seedance = make_model(
        "fal-ai/bytedance/seedance/v1/pro/fast/text-to-video",
        ModelType.VIDEO,
        {
            "duration": {"type": "string", "enum": ["5", "10"], "default": "5"},
            "resolution": {"type": "string", "enum": ["480p", "720p", "1080p"], "default": "1080p"},
            "aspect_ratio": {"type": "string", "enum": ["16:9", "1:1"], "default": "16:9"},
        },
    )
    video = evaluation(seedance, "1", "1m tokens")
    assert video is not None
    assert within_one_percent(video.exact_cost, D("0.243"))
    assert video.confidence == "approximate"


def test_compute_seconds_need_fal_duration_estimate() -> None:
    hunyuan = make_model(
        "fal-ai/hunyuan-video-v1.5/image-to-video", ModelType.VIDEO, {}, duration_estimate_minutes=2.0
    )
    estimate = evaluation(hunyuan, "0.00125", "compute seconds")
    assert estimate is not None and estimate.exact_cost == D("0.15") and estimate.confidence == "estimated"
    unknown = make_model("fal-ai/whatever", ModelType.VIDEO, {})
    assert card_for(unknown, "0.00125", "compute seconds") is None
    assert card_for(hunyuan, "0", "compute seconds") is None


def test_trainers_billed_at_a_minimum_fal_states() -> None:
    # fal's page: "A minimum of 1000 steps will be billed" (fal_terms.json); the newer $0.024 a step is kept.
    portrait = make_model(
        "fal-ai/flux-lora-portrait-trainer",
        ModelType.TRAINING,
        {"steps": {"type": "integer", "default": 2500, "minimum": 1, "maximum": 10000}},
    )
    assert cost(portrait, "0.024", "steps") == D("60")
    assert cost(portrait, "0.024", "steps", {"steps": 500}) == D("24")  # 1,000 billed
    assert cost(portrait, "0.024", "steps", {"steps": 1500}) == D("36")


def test_a_clip_length_fal_states_prices_a_model_without_duration_input() -> None:
    # fal's page: $0.08 a second, "a single 6 second video will cost $0.48"; the schema has no duration.
    hailuo = make_model(
        "fal-ai/minimax/hailuo-02/pro/text-to-video", ModelType.VIDEO, {"prompt": {"type": "string"}}
    )
    result = evaluation(hailuo, "0.08", "seconds")
    assert result.exact_cost == D("0.48") and result.confidence == "exact"


def test_interpolators_are_not_priced_from_frames() -> None:
    # fal-ai/rife/video: num_frames counts frames inserted between input frames, fps is the output's
    # rate; fal bills processing time, so the one fallback (5 s of video) is assumed, flagged estimated.
    rife = make_model(
        "fal-ai/rife/video",
        ModelType.VIDEO,
        {"num_frames": {"type": "integer", "default": 1}, "fps": {"type": "integer", "default": 8}},
    )
    result = evaluation(rife, "0.0013", "seconds", {"num_frames": 4})
    assert result.exact_cost == D("0.0065") and result.confidence == "estimated"
    assert "num_frames" in result.notes[-1]  # not read: listed as ignored


def test_training_steps() -> None:
    trainer = make_model(
        "fal-ai/flux-kontext-trainer", ModelType.TRAINING, {"steps": {"type": "integer", "default": 1000}}
    )
    assert cost(trainer, "0.0025", "steps") == D("2.5")
    assert cost(trainer, "0.0025", "steps", {"steps": 400}) == D("1.0")
    wan = make_model(
        "fal-ai/wan-trainer", ModelType.TRAINING, {"number_of_steps": {"type": "integer", "default": 400}}
    )
    assert cost(wan, "0.005", "steps") == D("2.0")


def test_unpriceable_units_give_no_estimate() -> None:
    flux = flux_model()
    for raw in ("units", "credits", "", "1", None, "furlongs"):
        assert card_for(flux, "0.05", raw) is None


# -- policy --------------------------------------------------------------------------------------------------


def test_cloud_and_core_price_per_call() -> None:
    assert price_per_call(D("0.025"), CLOUD) == D("0.0834")  # 0.025 ÷ 0.3 = 0.08333… → up to 0.0834
    assert price_per_call(D("0.025"), CORE) == D("0.025")
    assert price_per_call(D("0.35"), CLOUD) == D("1.1667")
    assert price_per_call(D("0.0001"), CLOUD) == D("0.001")  # floor
    assert price_per_call(D("0.0001"), CORE) == D("0.0001")  # no floor in core
    assert price_per_call(D("0"), CLOUD) == D("0.001")
    for value in (D("0.025"), D("0.0834"), D("0.001")):
        assert isinstance(price_per_call(value, CLOUD), Decimal)


def test_prices_are_rounded_once_from_the_unrounded_cost() -> None:
    # 0.02501 ÷ 0.3 = 0.083366… → 0.0834; rounding the cost first (0.0251) would give 0.0837.
    assert price_per_call(D("0.02501"), CLOUD) == D("0.0834")
    assert price_per_call(D("0.0251"), CLOUD) == D("0.0837")
    # a cost with many digits: stored rounded up to 10 places; the core price is that stored cost
    third = D(1) / D(3)
    assert price_per_call(third, CORE) == D("0.3333333334")
    assert price_per_call(third, CLOUD) == D("1.1112")  # from the unrounded cost: 1.11111… → up
    assert price_per_call(D("0.125"), CORE) == D("0.125")


@settings(max_examples=300, deadline=None)
@given(cost=st.decimals(min_value=0, max_value=100, places=12, allow_nan=False, allow_infinity=False))
def test_prices_never_fall_below_cost_and_stay_within_one_step(cost: Decimal) -> None:
    """The contract's figures, typed in rather than read from the policy: cloud is max(cost ÷ (1 − 0.70),
    $0.001) rounded up to $0.0001; core is the cost as stored, rounded up to 10 decimal places."""
    cloud = price_per_call(cost, CLOUD)
    target = max(cost / D("0.30"), D("0.001"))
    assert target <= cloud < target + D("0.0001")
    assert cloud == cloud.quantize(D("0.0001"))
    assert price_per_call(cost, CORE) == cost.quantize(D("1e-10"), rounding=ROUND_CEILING)


def test_resale_unit_prices() -> None:
    assert resale_unit_price(D("0.025"), CLOUD) == D("0.083334")
    assert resale_unit_price(D("0.07"), CLOUD) == D("0.233334")
    assert resale_unit_price(D("0.00007"), CLOUD) == D("0.000234")  # no floor
    assert resale_unit_price(D("0.025"), CORE) == D("0.025")


def test_margin_and_configuration() -> None:
    assert margin_of(D("0.0834"), D("0.025")) == (D("0.0834") - D("0.025")) / D("0.0834")
    assert margin_of(D("0.025"), D("0.025")) == 0
    assert margin_of(D("0"), D("0")) == 0
    half = PricingPolicy(Deployment.CLOUD, margin=D("0.5"), floor=D("0.01"), call_step=D("0.01"))
    assert price_per_call(D("0.025"), half) == D("0.05")
    assert price_per_call(D("0.001"), half) == D("0.01")
    with pytest.raises(ValueError):
        PricingPolicy(Deployment.CLOUD, margin=D("1"))


# -- billing JSON --------------------------------------------------------------------------------------------


def _walk(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _walk(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _walk(item)]
    return [value]


def billing(model: GenFeedModel, unit_price: str, unit: str, policy: PricingPolicy = CLOUD) -> dict[str, Any]:
    billing_unit = normalize_unit(unit, D(unit_price))
    card = card_for(model, unit_price, unit, policy)
    if card is None:
        return {}
    result = billing_json(card, evaluate(card), billing_unit, model.category, policy)
    assert "fixedPrice" not in result
    assert all(isinstance(value, Decimal) for key, value in result.items() if key != "unit")
    # Written as JSON numbers, exact: the text parses back to the same Decimals, and no price is a string.
    written = json.loads(json_text(result), parse_float=Decimal)
    assert written == result
    assert all(not isinstance(value, str) for key, value in written.items() if key != "unit")
    return {key: value if key == "unit" else f"{value:f}" for key, value in result.items()}


def test_billing_json_shapes() -> None:
    audio = make_model("fal-ai/speech-to-text", ModelType.AUDIO, {"audio_url": {"type": "string"}})
    video = kling_model()
    assert billing(flux_model("fal-ai/recraft/v3"), "0.04", "images") == {"image": "0.133334"}
    assert billing(flux_model(), "0.025", "megapixels") == {"image": "0.083334", "perMegapixel": "0.083334"}
    big = make_model(
        "fal-ai/sana", ModelType.IMAGE, {"image_size": image_size_property({"width": 3840, "height": 2160})}
    )
    assert billing(big, "0.025", "megapixels") == {"image": "0.666667", "perMegapixel": "0.083334"}  # 8 MP
    assert billing(video, "0.07", "seconds") == {"video": "0.233334"}
    assert billing(audio, "0.0008", "seconds") == {"perUnit": "0.002667", "unit": "second"}
    assert billing(video, "0.8", "videos") == {"perCall": "2.6667"}
    assert billing(video, "0.2", "5 seconds") == {"perCall": "0.6667"}
    assert billing(video, "0.05", "video segments") == {"perCall": "0.1667"}
    assert billing(make_model("x/llm", ModelType.TEXT, {}), "2.5", "1m tokens") == {
        "input": "8.333334",
        "output": "8.333334",
    }
    assert billing(make_model("x/guard", ModelType.TEXT, {}), "0.002", "1000 tokens") == {
        "input": "6.666667",
        "output": "6.666667",
    }
    assert billing(tts_model(), "0.05", "1000 characters") == {
        "perUnit": "0.166667",
        "unit": "1000 character",
    }
    assert billing(audio, "0.03", "minutes") == {"perUnit": "0.1", "unit": "minute"}
    assert billing(flux_model(), "0.05", "units") == {}


def test_billing_json_core_is_fal_prices() -> None:
    assert billing(flux_model(), "0.025", "megapixels", CORE) == {"image": "0.025", "perMegapixel": "0.025"}
    assert billing(kling_model(), "0.07", "seconds", CORE) == {"video": "0.07"}
    assert billing(kling_model(), "0.8", "videos", CORE) == {"perCall": "0.8"}


# -- priced models -------------------------------------------------------------------------------------------


def test_price_model_flux_dev() -> None:
    priced = price_model(flux_model(), quote("fal-ai/flux/dev", "0.025", "megapixels"), CLOUD)
    assert priced.priced and priced.valid
    assert priced.unit == "megapixel" and priced.unit_raw == "megapixels"
    assert priced.cost_per_call == D("0.025")
    assert priced.price_per_call == D("0.0834")
    assert priced.resale_unit_price == D("0.083334")
    assert priced.cost_confidence == "exact"
    assert priced.billing == {"image": D("0.083334"), "perMegapixel": D("0.083334")}
    assert priced.rate_card is not None and priced.rate_card["quantity"]["kind"] == "megapixel"
    assert priced.price_status is PriceStatus.PRICED
    assert priced.price_source is DataSource.SNAPSHOT and priced.price_seen_at == SEEN_AT
    assert priced.price_origin == "test"
    for value in (priced.unit_price, priced.cost_per_call, priced.price_per_call, priced.resale_unit_price):
        assert isinstance(value, Decimal)
    assert isinstance(priced.margin, Decimal) and priced.margin > D("0.69")
    assert priced.margin_pct is not None and D(69) < priced.margin_pct < D(71)
    assert policy_enabled(priced, CLOUD) and policy_enabled(priced, CORE)
    core = price_model(flux_model(), quote("fal-ai/flux/dev", "0.025", "megapixels"), CORE)
    assert core.price_per_call == D("0.025") and core.margin == 0


@pytest.mark.parametrize("unit", ["units", "1", "", "request", "requests"])
def test_stub_prices_are_flagged_and_never_priced(unit: str) -> None:
    priced = price_model(flux_model("x/new"), quote("x/new", "1", unit), CLOUD)
    assert "stub price (1 unit at $1)" in priced.flags
    assert "stub price" in priced.validation_errors
    assert not priced.priced and priced.cost_per_call is None and priced.price_per_call is None
    assert priced.billing == {}
    assert not policy_enabled(priced, CLOUD) and not policy_enabled(priced, CORE)


def test_one_dollar_for_a_real_unit_is_not_a_stub() -> None:
    priced = price_model(kling_model(), quote("x/v", "1", "videos"), CLOUD)
    assert priced.priced and priced.valid and not priced.stub


@pytest.mark.parametrize("unit", ["units", "credits", "", "1"])
def test_ambiguous_units_are_flagged_and_never_priced(unit: str) -> None:
    priced = price_model(flux_model("x/a"), quote("x/a", "0.05", unit), CLOUD)
    assert not priced.priced and priced.billing == {}
    assert any(error.startswith("unit unknown") for error in priced.validation_errors)
    assert priced.flags
    assert not policy_enabled(priced, CLOUD)


def test_zero_compute_seconds_are_flagged_not_priced() -> None:
    whisper = make_model("fal-ai/whisper", ModelType.TEXT, {}, duration_estimate_minutes=1.0)
    priced = price_model(whisper, quote("fal-ai/whisper", "0", "compute seconds"), CLOUD)
    assert not priced.priced
    assert any("0 per compute second" in flag for flag in priced.flags)
    assert priced.valid  # a known unit with no published rate: held back in cloud, usable in core
    assert not policy_enabled(priced, CLOUD)
    assert policy_enabled(priced, CORE)


def test_missing_and_failed_prices() -> None:
    missing = price_model(flux_model(), None, CLOUD)
    assert missing.validation_errors == ("no price",)
    assert missing.price_status is PriceStatus.NOT_FOUND and not missing.priced
    failed = price_model(flux_model(), PriceLookup(PriceStatus.FAILED, error="timeout"), CLOUD)
    assert failed.price_status is PriceStatus.FAILED
    assert failed.validation_errors[0].startswith("no price")
    invalid = make_model("x/broken", ModelType.IMAGE, {}, validation_errors=("no input schema",))
    broken = price_model(invalid, quote("x/broken", "0.04", "images"), CLOUD)
    assert broken.priced and not broken.valid and broken.validation_errors == ("no input schema",)
    assert not policy_enabled(broken, CLOUD) and not policy_enabled(broken, CORE)


def test_price_catalog() -> None:
    models = {"fal-ai/flux/dev": flux_model(), "x/none": flux_model("x/none")}
    priced = price_catalog(
        models, {"fal-ai/flux/dev": quote("fal-ai/flux/dev", "0.025", "megapixels")}, CLOUD
    )
    assert set(priced) == set(models)
    assert priced["fal-ai/flux/dev"].priced and not priced["x/none"].priced


# -- workflows and the cheapest model ------------------------------------------------------------------------


def small_catalog(policy: PricingPolicy = CLOUD) -> list[PricedModel]:
    dev = flux_model()
    schnell = flux_model("fal-ai/flux/schnell")
    recraft = make_model(
        "fal-ai/recraft/v3",
        ModelType.IMAGE,
        {"prompt": {"type": "string"}, "image_size": image_size_property("square_hd")},
        capabilities=Capabilities(image_sizes=tuple(PRESETS)),
    )
    kontext = make_model(
        "fal-ai/flux-kontext/dev",
        ModelType.IMAGE,
        {"image_url": {"type": "string", "file": {"media": "image"}}, "seed": {"type": "integer"}},
        capabilities=Capabilities(accepted_input_media=("image",), seed=True),
    )
    stub = flux_model("x/stub")
    return [
        price_model(dev, quote(dev.endpoint_id, "0.025", "megapixels"), policy),
        price_model(schnell, quote(schnell.endpoint_id, "0.003", "megapixels"), policy),
        price_model(recraft, quote(recraft.endpoint_id, "0.04", "images"), policy),
        price_model(kontext, quote(kontext.endpoint_id, "0.025", "megapixels"), policy),
        price_model(stub, quote(stub.endpoint_id, "1", "units"), policy),
        price_model(
            kling_model(),
            quote("fal-ai/kling-video/v2.5-turbo/pro/image-to-video", "0.07", "seconds"),
            policy,
        ),
    ]


def test_capability_names() -> None:
    names = capability_names(flux_model().capabilities)
    assert {"seed", "num_outputs_param", "image_sizes", "custom_image_size"} <= names
    assert "negative_prompt" not in names
    assert "input:image" in capability_names(Capabilities(accepted_input_media=("image",)))


def test_cheapest_model() -> None:
    catalog = small_catalog()
    cheapest = cheapest_model(catalog, category=ModelType.IMAGE)
    assert cheapest is not None and cheapest.endpoint_id == "fal-ai/flux/schnell"
    with_input = cheapest_model(catalog, category="image", capabilities={"input:image"})
    assert with_input is not None and with_input.endpoint_id == "fal-ai/flux-kontext/dev"
    assert cheapest_model(catalog, category=ModelType.IMAGE, capabilities={"lora"}) is None
    video = cheapest_model(catalog, category=ModelType.VIDEO, capabilities={"negative_prompt"})
    assert video is not None and video.model.category is ModelType.VIDEO
    # 4 images at 1920x1080: schnell 8 MP x 0.003 = 0.024 stays cheapest; recraft (not sized) 4 x 0.04
    inputs = {"image_size": {"width": 1920, "height": 1080}, "num_images": 4}
    best = cheapest_model(catalog, category=ModelType.IMAGE, capabilities={"seed"}, inputs=inputs)
    assert best is not None and best.endpoint_id == "fal-ai/flux/schnell"


def test_estimate_workflow() -> None:
    by_id = {priced.endpoint_id: priced for priced in small_catalog()}
    workflow = estimate_workflow(
        [
            (by_id["fal-ai/flux/dev"], {"image_size": {"width": 1920, "height": 1080}}),
            (by_id["fal-ai/kling-video/v2.5-turbo/pro/image-to-video"], {"duration": "10"}),
        ],
        CLOUD,
    )
    assert workflow.complete
    assert workflow.total_cost == D("0.05") + D("0.70")
    assert [step.price for step in workflow.steps] == [D("0.1667"), D("2.3334")]
    assert workflow.total_price == D("2.5001")
    assert workflow.confidence == "exact"
    assert isinstance(workflow.total_cost, Decimal) and isinstance(workflow.total_price, Decimal)

    partial = estimate_workflow([(by_id["fal-ai/flux/dev"], {}), (by_id["x/stub"], {})], CORE)
    assert not partial.complete and partial.unpriced == ("x/stub",)
    assert partial.total_cost == partial.total_price == D("0.025")
    assert partial.steps[1].problem and "stub" in partial.steps[1].problem


# -- the bundled snapshot, through the mapper ----------------------------------------------------------------


def test_bundled_snapshot_prices_through_the_mapper(tmp_path: Any) -> None:
    from genfeed_pipeline.fal.cache import FalCache
    from genfeed_pipeline.fal.source import OfflineCatalogSource
    from genfeed_pipeline.mapping import map_catalog

    source = OfflineCatalogSource(FalCache(tmp_path / "cache.sqlite3"))
    listing, schemas = source.discover()
    models = map_catalog(listing, schemas)
    priced = price_catalog(models, listing.prices, CLOUD)
    assert set(priced) == set(models)
    quoted = [p for p in priced.values() if p.unit_raw is not None]
    assert quoted, "the snapshot carries prices"
    for item in priced.values():
        if item.priced:
            assert isinstance(item.cost_per_call, Decimal) and isinstance(item.price_per_call, Decimal)
            assert item.price_per_call >= item.cost_per_call
            assert item.rate_card is not None
            assert all(isinstance(value, Decimal) for key, value in item.billing.items() if key != "unit")
        else:
            assert item.rate_card is None and item.billing == {}
        if item.unit_raw is not None and item.unit_raw.strip() in {"units", "credits", "", "1"}:
            assert not item.priced
    flux = priced["fal-ai/flux/dev"]
    assert (flux.unit_price, flux.unit) == (D("0.025"), "megapixel")
    assert flux.cost_per_call == D("0.025") and flux.price_per_call == D("0.0834")
