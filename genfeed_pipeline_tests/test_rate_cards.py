"""Rate cards: their JSON Schema, the snapshot catalog's cards, the conformance cases, and properties that
hold for any request drawn from a model's schema, before and after a round trip through the databases."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genfeed_pipeline.db.engine import create_catalog_engine
from genfeed_pipeline.db.migrate import upgrade_to_head
from genfeed_pipeline.db.tables import MANAGED_BY_PIPELINE, models
from genfeed_pipeline.fal.catalog import DataSource
from genfeed_pipeline.pricing import CLOUD_RULE, CORE_RULE, RateCardInputError, evaluate
from genfeed_pipeline.pricing.drift import find_price_drift
from genfeed_pipeline.pricing.rate_card import rate_card_schema, schema_errors
from genfeed_pipeline.sync.plan import SyncContext, SyncMode
from genfeed_pipeline.sync.store import CatalogStore, insert_rows
from genfeed_pipeline_tests.conftest import private_postgres_database

D = Decimal
CONFORMANCE = json.loads(
    (resources.files("genfeed_pipeline") / "pricing" / "rate_card_conformance.json").read_text("utf-8"),
    parse_float=Decimal,
)


@pytest.fixture(scope="session")
def snapshot_cards(priced_snapshot: tuple[dict[str, Any], Any]) -> dict[str, dict[str, Any]]:
    priced, _ = priced_snapshot
    return {endpoint_id: model.rate_card for endpoint_id, model in priced.items() if model.rate_card}


# -- the format -------------------------------------------------------------------------------------


def test_the_shipped_schema_is_a_draft_2020_12_schema() -> None:
    schema = rate_card_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_snapshot_card_validates(
    priced_snapshot: tuple[dict[str, Any], Any], snapshot_cards: dict[str, dict[str, Any]]
) -> None:
    priced, _ = priced_snapshot
    # Every model priced before rate cards keeps one (676 on the snapshot), and only priced models have one.
    assert len(snapshot_cards) == 676
    assert {eid for eid, model in priced.items() if model.priced} == set(snapshot_cards)
    reference = jsonschema.Draft202012Validator(rate_card_schema())
    for endpoint_id, card in snapshot_cards.items():
        assert [error.message for error in reference.iter_errors(card)] == [], endpoint_id
        assert schema_errors(card) == [], endpoint_id
    kinds = Counter(card["quantity"]["kind"] for card in snapshot_cards.values())
    assert kinds == {
        "output": 224,
        "second": 184,
        "megapixel": 123,
        "call": 78,
        "character": 31,
        "step": 14,
        "clip": 13,
        "token": 9,
    }


def test_the_validator_names_what_is_wrong() -> None:
    card = json.loads(json.dumps(CONFORMANCE["cases"][0]["rate_card"], default=str))
    card["quantity"]["kind"] = "furlong"
    card["unit_price"] = -1
    errors = schema_errors(card)
    assert any(error.startswith("unit_price:") for error in errors)
    assert any(error.startswith("quantity") for error in errors)


# -- known mispricings, on the real snapshot -------------------------------------------------------


def test_known_mispricings_are_priced_by_their_card(snapshot_cards: dict[str, dict[str, Any]]) -> None:
    # fal's page: $0.08 a second, one 6-second video $0.48 (the schema has no duration input).
    for endpoint_id in (
        "fal-ai/minimax/hailuo-02/pro/text-to-video",
        "fal-ai/minimax/hailuo-02/pro/image-to-video",
    ):
        at_defaults = evaluate(snapshot_cards[endpoint_id])
        assert at_defaults.cost == D("0.48") and at_defaults.confidence == "exact"
    # A required duration with no default: the one fallback takes the schema's example (50 s), estimated.
    music = snapshot_cards["cassetteai/music-generator"]
    assert evaluate(music).cost == D("0.0166666667")  # 50 s ÷ 60 × $0.02
    assert music["confidence"] == "estimated" and "50 assumed (its example)" in music["flags"][0]
    assert evaluate(music, {"duration": 90}).cost == D("0.03")
    # Interpolators: inserted frames ÷ fps are not the billed seconds.
    for endpoint_id in ("fal-ai/film", "fal-ai/film/video", "fal-ai/rife", "fal-ai/rife/video"):
        card = snapshot_cards[endpoint_id]
        assert "frames" not in card["quantity"]["duration"] and card["confidence"] == "estimated"
        assert evaluate(card, {"num_frames": 4}).cost == evaluate(card).cost
    # The portrait trainer bills at least 1,000 steps (fal's page); its newer $0.024 a step stands.
    portrait = snapshot_cards["fal-ai/flux-lora-portrait-trainer"]
    assert evaluate(portrait).cost == D("60")
    assert evaluate(portrait, {"steps": 500}).cost == D("24")
    fast = snapshot_cards["fal-ai/flux-lora-fast-training"]
    assert fast["quantity"]["steps"]["default"] == 1000 and fast["confidence"] == "estimated"
    # Minimums fal's model data states (pricing_info_override): fewer steps are billed as the minimum.
    qwen = snapshot_cards["fal-ai/qwen-image-trainer"]  # $0.002 a step, at least 250
    assert evaluate(qwen, {"steps": 100}).cost == D("0.5") and evaluate(qwen, {"steps": 300}).cost == D("0.6")
    wan = snapshot_cards["fal-ai/wan-22-image-trainer"]  # $0.0045 a step, at least 100
    assert evaluate(wan, {"steps": 10}).cost == D("0.45") and evaluate(wan).cost == D("4.5")


def test_money_is_stored_at_ten_places_and_core_charges_the_stored_cost(
    snapshot_cards: dict[str, dict[str, Any]],
) -> None:
    ltxv = snapshot_cards["fal-ai/ltxv-13b-098-distilled"]  # 121 frames ÷ 24 fps × $0.02
    cloud = evaluate(ltxv, {}, CLOUD_RULE)
    core = evaluate(ltxv, {}, CORE_RULE)
    assert cloud.cost == D("0.1008333334") and cloud.price == D("0.3362")
    assert core.price == core.cost == D("0.1008333334")


# -- conformance ------------------------------------------------------------------------------------


def test_the_conformance_file_covers_every_kind() -> None:
    cases = CONFORMANCE["cases"]
    assert len(cases) >= 60
    assert len({case["name"] for case in cases}) == len(cases)
    kinds = {case["rate_card"]["quantity"]["kind"] for case in cases}
    assert kinds == {
        "call",
        "output",
        "megapixel",
        "second",
        "clip",
        "character",
        "token",
        "step",
        "compute_second",
    }
    assert any("expected_error" in case for case in cases)
    for case in cases:
        assert case["why"].strip(), case["name"]
        numbers = case.get("expected", {})
        assert all(isinstance(value, int | Decimal) for value in numbers.values()), case["name"]


@pytest.mark.parametrize("case", CONFORMANCE["cases"], ids=[case["name"] for case in CONFORMANCE["cases"]])
def test_conformance_case(case: dict[str, Any]) -> None:
    card, inputs = case["rate_card"], case["inputs"]
    assert schema_errors(card) == []
    if "expected_error" in case:
        with pytest.raises(RateCardInputError) as refused:
            evaluate(card, inputs, CLOUD_RULE)
        assert refused.value.input_name == case["expected_error"]
        assert case["expected_error"] in str(refused.value)
        return
    expected = {key: D(value) for key, value in case["expected"].items()}
    cloud = evaluate(card, inputs, CLOUD_RULE)
    core = evaluate(card, inputs, CORE_RULE)
    assert (cloud.quantity, cloud.cost, cloud.price, core.price) == (
        expected["quantity"],
        expected["cost"],
        expected["cloud_price"],
        expected["core_price"],
    ), case["why"]


# -- round trips and properties ---------------------------------------------------------------------


def _round_trip(url: str, cards: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The cards written as `models` rows (COPY on PostgreSQL) and read back."""
    engine = create_catalog_engine(url)
    try:
        upgrade_to_head(engine)
        rows = [
            {
                "id": endpoint_id,
                "name": endpoint_id,
                "provider": "fal",
                "category": "image",
                "managed_by": MANAGED_BY_PIPELINE,
                "rate_card": card,
            }
            for endpoint_id, card in cards.items()
        ]
        with engine.begin() as connection:
            insert_rows(connection, models, rows)
        with engine.connect() as connection:
            return {
                row.id: row.rate_card
                for row in connection.execute(sa.select(models.c.id, models.c.rate_card))
            }
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def stored_cards(
    snapshot_cards: dict[str, dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server_url: str,
) -> Iterator[dict[str, dict[str, Any]]]:
    sqlite_url = f"sqlite:///{tmp_path_factory.mktemp('cards') / 'cards.sqlite3'}"
    with private_postgres_database(postgres_server_url) as postgres_url:
        yield {
            "sqlite": _round_trip(sqlite_url, snapshot_cards),
            "postgresql": _round_trip(postgres_url, snapshot_cards),
        }


def test_cards_survive_sqlite_and_postgresql_unchanged(
    snapshot_cards: dict[str, dict[str, Any]], stored_cards: dict[str, dict[str, Any]]
) -> None:
    for database, cards in stored_cards.items():
        assert cards == snapshot_cards, database
        for endpoint_id, card in cards.items():
            assert evaluate(card) == evaluate(snapshot_cards[endpoint_id]), (database, endpoint_id)


_TEXT = st.one_of(
    st.integers(0, 4000).map(lambda n: "x" * n),
    st.text(max_size=40),
    st.lists(st.text(max_size=20), max_size=3),
)


def _between(low: Any, high: Any, fallback: int) -> st.SearchStrategy[int]:
    low_value = int(low) if low is not None else 1
    high_value = int(high) if high is not None else max(low_value, fallback)
    return st.integers(low_value, high_value)


def _duration(spec: Mapping[str, Any]) -> dict[str, st.SearchStrategy[Any]]:
    drawn: dict[str, st.SearchStrategy[Any]] = {}
    if spec.get("input"):
        low, high = spec.get("minimum"), spec.get("maximum")
        seconds = _between(max(1, int(low)) if low is not None else 1, high, 30)
        forms = [seconds, seconds.map(str), seconds.map(lambda value: f"{value}s")]
        if spec.get("values"):
            forms.append(st.sampled_from(sorted(spec["values"])))
        drawn[spec["input"]] = st.one_of(*forms)
    if spec.get("frames"):
        drawn[spec["frames"]["input"]] = st.integers(1, 400)
        if spec["frames"].get("fps_input"):
            drawn[spec["frames"]["fps_input"]] = st.integers(1, 60)
    return drawn


def _size(spec: Mapping[str, Any]) -> dict[str, st.SearchStrategy[Any]]:
    side = st.integers(16, 4096)
    if spec["from"] == "size":
        return {
            spec["input"]: st.one_of(
                st.sampled_from(sorted(spec["presets"])),
                st.builds(lambda w, h: {"width": w, "height": h}, side, side),
                st.builds(lambda w, h: f"{w}x{h}", side, side),
            )
        }
    if spec["from"] == "width_height":
        return {part["input"]: side for part in (spec["width"], spec["height"]) if part.get("input")}
    if spec["from"] == "aspect_ratio":
        drawn = {}
        for part in ("aspect_ratio", "resolution"):
            parameter = spec[part]
            if parameter.get("input") and parameter.get("values"):
                drawn[parameter["input"]] = st.sampled_from(sorted(parameter["values"]))
        return drawn
    return {}


def request_strategy(card: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Requests a model's schema allows, for the inputs its card reads, plus one it ignores."""
    quantity = card["quantity"]
    drawn: dict[str, st.SearchStrategy[Any]] = {}
    count = quantity.get("count")
    if count and count.get("input"):
        drawn[count["input"]] = _between(count.get("minimum"), count.get("maximum"), 8)
    if quantity.get("size"):
        drawn |= _size(quantity["size"])
    if quantity.get("duration"):
        drawn |= _duration(quantity["duration"])
    if quantity.get("text"):
        drawn |= {name: _TEXT for name in quantity["text"]["inputs"]}
    if quantity.get("video"):
        drawn |= _size(quantity["video"]["size"]) | _duration(quantity["video"]["duration"])
    steps = quantity.get("steps")
    if steps and steps.get("input"):
        drawn[steps["input"]] = _between(steps.get("minimum"), steps.get("maximum"), 5000)
    if quantity.get("input_images"):
        drawn |= {
            name: st.lists(st.just("https://x/i.png"), max_size=4)
            for name in quantity["input_images"]["inputs"]
        }
    return st.fixed_dictionaries({"seed": st.integers(0, 2**31)}, optional=drawn)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_request_is_priced_at_or_above_cost(
    data: st.DataObject, snapshot_cards: dict[str, dict[str, Any]], stored_cards: dict[str, dict[str, Any]]
) -> None:
    endpoint_id = data.draw(st.sampled_from(sorted(snapshot_cards)), label="endpoint_id")
    card = snapshot_cards[endpoint_id]
    inputs = data.draw(request_strategy(card), label="inputs")
    cloud = evaluate(card, inputs, CLOUD_RULE)
    core = evaluate(card, inputs, CORE_RULE)
    assert cloud.price >= cloud.cost and cloud.price >= D("0.001")
    assert cloud.price >= cloud.exact_cost
    assert core.price == core.cost
    assert cloud.cost == core.cost and cloud.quantity == core.quantity
    assert "seed" in cloud.notes[-1]
    for database, cards in stored_cards.items():
        assert evaluate(cards[endpoint_id], inputs, CLOUD_RULE) == cloud, database


def test_bad_requests_name_the_input_and_what_is_allowed(snapshot_cards: dict[str, dict[str, Any]]) -> None:
    flux = snapshot_cards["fal-ai/flux/dev"]
    with pytest.raises(
        RateCardInputError, match=r"num_images must be an integer from 1 to 4, not 1000000000"
    ):
        evaluate(flux, {"num_images": 1_000_000_000})
    with pytest.raises(
        RateCardInputError, match=r"image_size.width must be an integer of at least 1, not -5"
    ):
        evaluate(flux, {"image_size": {"width": -5, "height": 100}})
    kling = snapshot_cards["fal-ai/kling-video/v2.5-turbo/pro/image-to-video"]
    with pytest.raises(RateCardInputError, match=r"duration must be seconds such as 5 or \"5s\", not 'abc'"):
        evaluate(kling, {"duration": "abc"})
    assert evaluate(kling, {"duration": "10", "fps": 3}).notes == ("ignored (not used for pricing): fps",)


def test_the_conformance_file_is_written_with_json_numbers() -> None:
    path = Path(str(resources.files("genfeed_pipeline") / "pricing" / "rate_card_conformance.json"))
    raw = json.loads(path.read_text("utf-8"))

    def strings_for_money(value: Any, key: str = "") -> list[str]:
        if isinstance(value, dict):
            return [found for k, v in value.items() for found in strings_for_money(v, k)]
        if isinstance(value, list):
            return [found for item in value for found in strings_for_money(item, key)]
        money_keys = {
            "unit_price",
            "quantity",
            "cost",
            "cloud_price",
            "core_price",
            "margin",
            "min_price",
            "step",
        }
        return [key] if key in money_keys and isinstance(value, str) else []

    assert strings_for_money(raw["cases"]) == []


# -- drift ------------------------------------------------------------------------------------------


def test_drift_flags_a_changed_quantity_rule_only(priced_snapshot: tuple[dict[str, Any], Any]) -> None:
    priced, _ = priced_snapshot
    flux = priced["fal-ai/flux/dev"]
    assert flux.rate_card is not None
    synced = {"unit": flux.unit, "unit_price": flux.unit_price, "cost_per_call": flux.cost_per_call}
    current = {flux.endpoint_id: flux}
    threshold = D("0.05")
    # The first sync that adds cards flags nothing.
    assert find_price_drift({flux.endpoint_id: synced | {"rate_card": None}}, current, threshold) == []
    # The same rule written in another order (keys, presets, lists) is not a change.
    reordered = copy.deepcopy(flux.rate_card)
    reordered["quantity"] = dict(reversed(list(reordered["quantity"].items())))
    presets = reordered["quantity"]["size"]["presets"]
    reordered["quantity"]["size"]["presets"] = dict(reversed(list(presets.items())))
    assert find_price_drift({flux.endpoint_id: synced | {"rate_card": reordered}}, current, threshold) == []
    # A new default size is a new rule, flagged with both rules even though the cost is the same.
    older = copy.deepcopy(flux.rate_card)
    older["quantity"]["size"]["default"] = "square_hd"
    [drift] = find_price_drift({flux.endpoint_id: synced | {"rate_card": older}}, current, threshold)
    assert (drift.endpoint_id, drift.field, drift.change_pct) == (flux.endpoint_id, "quantity", None)
    assert '"default":"square_hd"' in drift.old and '"default":"landscape_4_3"' in drift.new


# -- the sync ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_sync_refuses_a_card_that_does_not_validate_and_names_the_model(
    backend: str, priced_snapshot: tuple[dict[str, Any], Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    priced, _ = priced_snapshot
    url = (
        f"sqlite:///{tmp_path / 'cards.sqlite3'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    store = CatalogStore(create_catalog_engine(url))
    store.migrate()
    flux, schnell = priced["fal-ai/flux/dev"], priced["fal-ai/flux/schnell"]
    start = datetime(2026, 12, 1, tzinfo=UTC)

    def sync(models: dict[str, Any], at: datetime) -> Any:
        context = SyncContext(mode=SyncMode.FULL, source=DataSource.LIVE, data_as_of=at, now=at)
        return store.sync(context, models, deployment="cloud")

    sync({flux.endpoint_id: flux}, start)
    with store.engine.connect() as connection:
        before = dict(
            connection.execute(sa.select(models).where(models.c.id == flux.endpoint_id)).mappings().one()
        )
    assert before["rate_card"] == flux.rate_card and before["cost_per_call"] == D("0.025")

    broken_card = copy.deepcopy(flux.rate_card) | {"unit_price": D("0.03")}
    broken_card["quantity"]["kind"] = "furlong"
    broken = replace(flux, unit_price=D("0.03"), cost_per_call=D("0.03"), rate_card=broken_card)
    newcomer = replace(
        schnell,
        model=replace(schnell.model, endpoint_id="fal-ai/flux/new"),
        rate_card=copy.deepcopy(broken_card),
    )
    outcome = sync({flux.endpoint_id: broken, "fal-ai/flux/new": newcomer}, start + timedelta(hours=6))

    refused = [warning for warning in outcome.plan.warnings if "rate card refused" in warning]
    assert len(refused) == 2
    assert refused[0].startswith("fal-ai/flux/dev: rate card refused") and "quantity" in refused[0]
    with store.engine.connect() as connection:
        rows = {row["id"]: dict(row) for row in connection.execute(sa.select(models)).mappings()}
    kept = rows[flux.endpoint_id]
    for column in ("rate_card", "pricing", "unit_price", "cost_per_call", "price_per_call", "enabled"):
        assert kept[column] == before[column], column  # the last good price stays
    new = rows["fal-ai/flux/new"]
    assert new["rate_card"] is None and new["cost_per_call"] is None and not new["enabled"]
    store.engine.dispose()
