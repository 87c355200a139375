"""Bad input from fal, hand-made and generated, fed through the real path.

Hand-made: bad OpenAPI documents (circular, missing and external `$ref`s, 400- and 1,000-level nesting, a 10
MB document, wrong types everywhere, non-UTF-8 bytes, lone surrogates), odd endpoint ids and bad prices are
put into the emulated fal, one per endpoint, and `refresh_fal_catalog` runs once over all of them (one id
per schema and price request, so that one unreadable answer costs only its own endpoint). Each case then
checks its own model: a clear per-model error and a marked model, or its last good values kept; never a
crashed run, never a wrong price in the table. The whole table is compared value by value with the one
before: only the rows the bad input reaches may change, and only as the contract says. Cases the product gets
wrong are strict xfails naming the bug.

Generated (hypothesis): documents into `map_endpoint`, prices into `FalPrice` and `price_model`, endpoint
ids into mapping, pricing and the sync planner; the pure path, so many examples cost little.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from genfeed_pipeline.fal.catalog import (
    DataSource,
    FalEndpoint,
    PriceLookup,
    PriceQuote,
    PriceStatus,
    SchemaRecord,
    SchemaStatus,
    canonical_json,
)
from genfeed_pipeline.fal.models import FalPrice
from genfeed_pipeline.mapping.mapper import map_endpoint
from genfeed_pipeline.pricing import PricingPolicy, policy_enabled, price_model
from genfeed_pipeline.sync.plan import MAX_ENDPOINT_ID_LENGTH, Action, SyncContext, SyncMode, SyncPlanner
from genfeed_pipeline_tests.faults_support import (
    CHOICES_RECORDED,
    CLEAN_CHANGES,
    DOCUMENTED,
    OPERATOR_CHOICES,
    PEOPLE_ROWS,
    PRICE_WRITE,
    PRICED,
    SCHEMA_WRITE,
    Pipeline,
    assert_nothing_lost,
    by_id,
    change_catalog,
    changed_models,
    failures,
    input_component,
    materialization_metadata,
    open_pipeline,
    small_catalog,
)

Snapshot = dict[str, list[dict[str, Any]]]
SCHEMA_COLUMNS = ("input_schema", "output_schema", "schema_hash", "mapped_hash", "capabilities")
PRICE_COLUMNS = ("unit", "unit_raw", "unit_price", "cost_per_call", "price_per_call", "pricing")
# A model found invalid, or held for review: marked, and switched off.
MARKED = ("validation_errors", "review_reason", "enabled", "enabled_by_sync")
NOW = datetime(2026, 4, 26, tzinfo=UTC)
CLOUD = PricingPolicy()
HYPOTHESIS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# -- the bad documents --------------------------------------------------------------------------------------


def document_of(catalog, endpoint_id: str) -> dict[str, Any]:
    return copy.deepcopy(catalog.openapi[endpoint_id])


def with_input_property(name: str, schema: dict[str, Any]) -> Callable:
    def change(catalog, endpoint_id: str) -> dict[str, Any]:
        document = document_of(catalog, endpoint_id)
        input_component(document, endpoint_id)["properties"][name] = schema
        return document

    return change


def circular(catalog, endpoint_id: str) -> dict[str, Any]:
    document = document_of(catalog, endpoint_id)
    schemas = document["components"]["schemas"]
    schemas["Node"] = {"type": "object", "properties": {"child": {"$ref": "#/components/schemas/Node"}}}
    schemas["Ping"] = {"type": "object", "properties": {"pong": {"$ref": "#/components/schemas/Pong"}}}
    schemas["Pong"] = {"type": "object", "properties": {"ping": {"$ref": "#/components/schemas/Ping"}}}
    properties = input_component(document, endpoint_id)["properties"]
    properties["tree"] = {"$ref": "#/components/schemas/Node"}
    properties["ping"] = {"$ref": "#/components/schemas/Ping"}
    return document


def wrong_types_everywhere(catalog, endpoint_id: str) -> dict[str, Any]:
    document = document_of(catalog, endpoint_id)
    component = input_component(document, endpoint_id)
    component["required"] = "prompt"
    for name, value in [("type", 5), ("enum", "a"), ("minimum", "zero"), ("items", 7), ("$ref", 12)]:
        component["properties"][f"bad_{name.strip('$')}"] = {name: value}
    component["properties"]["bad_properties"] = {"type": "object", "properties": ["a", "b"]}
    component["properties"]["bad_any_of"] = {"anyOf": {"type": "string"}}
    component["properties"]["bad_all_of"] = {"allOf": []}
    component["properties"]["bad_schema"] = ["not", "a", "schema"]
    document["info"] = "not an object"
    return document


def huge(catalog, endpoint_id: str) -> dict[str, Any]:
    """A 10 MB document: the real one plus a big, unreferenced component."""
    document = document_of(catalog, endpoint_id)
    document["components"]["schemas"]["Padding"] = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string", "description": "x" * 1000} for i in range(10_500)},
    }
    return document


def nested_text(levels: int, endpoint_id: str) -> bytes:
    inner = '{"type":"object","properties":{"x":' * levels + '{"type":"string"}' + "}}" * levels
    return document_text(endpoint_id, inner)


def document_text(endpoint_id: str, input_schema_text: str) -> bytes:
    """A document with only a POST body schema given as raw JSON text (no result path)."""
    path = json.dumps(f"/{endpoint_id}")
    return (
        '{"openapi":"3.0.4","info":{"title":"raw"},"paths":{' + path + ':{"post":{"requestBody":'
        '{"content":{"application/json":{"schema":' + input_schema_text + "}}}}}}}"
    ).encode("utf-8")


# id → (how the document is made: a dict, or raw bytes; what the outcome must be)
# outcomes: "valid" (maps, no error), "error:<text>" (marked with an error containing text),
#           "kept" (the fetch failed: the last good schema stays, unchanged)
DOCUMENTS: dict[str, tuple[Callable[[Any, str], Any], str]] = {
    "circular-refs": (circular, "valid"),
    "missing-ref": (
        with_input_property("ghost", {"$ref": "#/components/schemas/DoesNotExist"}),
        "error:unresolved $ref '#/components/schemas/DoesNotExist'",
    ),
    "external-ref": (
        with_input_property("remote", {"$ref": "https://evil.example/schema.json#/Remote"}),
        "error:external $ref 'https://evil.example/schema.json#/Remote' at",
    ),
    "ref-to-a-path-outside-components": (
        with_input_property("weird", {"$ref": "#/paths/~1nowhere/post"}),
        "error:unresolved $ref '#/paths/~1nowhere/post'",
    ),
    "wrong-types-everywhere": (wrong_types_everywhere, "error:not a list"),
    "nesting-400-levels": (
        lambda catalog, eid: nested_text(400, eid),
        "error:nested more than 64 levels deep",
    ),
    "nesting-1000-levels": (lambda catalog, eid: nested_text(1000, eid), "kept"),
    "document-10-MB": (huge, "valid"),
    "non-utf8-bytes": (
        lambda catalog, eid: document_text(
            eid, '{"type":"object","properties":{"p":{"type":"string"}}}'
        ).replace(b'"string"', b'"str\xff\xfeing"'),
        "kept",
    ),
    # Read leniently: the lone surrogates become U+FFFD and the document is mapped, with its own error.
    "lone-surrogates": (
        lambda catalog, eid: document_text(
            eid, '{"type":"object","properties":{"p\\ud800":{"type":"string","description":"\\udfff"}}}'
        ),
        "error:no result response",
    ),
    "a-json-list-not-a-document": (lambda catalog, eid: b'["not", "a", "document"]', "kept"),
}


# -- bad ids and bad prices ---------------------------------------------------------------------------------

ODD_IDS = {
    "dot-dot-slash": "../../etc/passwd",
    "unicode": "fal-ai/ünïcödé/模型-🚀",
    "spaces": "fal-ai/with space/and  two",
    "1000-characters": "fal-ai/" + "a" * 993,
    "markup": "evil/<script>alert(1)</script>",
}

# raw JSON of `unit_price` → what fal's answer is and what the error must say
BAD_PRICES = {
    "negative": ("-0.5", "negative"),
    "nan-token": ("NaN", "not finite"),
    "infinity-token": ("Infinity", "not finite"),
    "non-numeric": ('"abc"', "not a decimal number"),
    "hex-text": ('"0x10"', "not a decimal number"),
    "null": ("null", "unit_price"),
    "boolean": ("true", "unit_price"),
    "a-list": ("[1]", "not a decimal number"),
}


def raw_price(endpoint_id: str, unit_price: str, unit: str = "megapixels") -> str:
    return json.dumps(
        {"endpoint_id": endpoint_id, "unit_price": "@", "unit": unit, "currency": "USD"}
    ).replace('"@"', unit_price)


class BadInputRun:
    """One refresh over a catalog holding every hand-made bad input; `before` is the baseline's tables."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        catalog = pipeline.catalog
        emulator = pipeline.emulator
        reserved = {PRICED, "fal-ai/flux/dev", "fal-ai/ideogram/v2", *PEOPLE_ROWS}
        documented = [eid for eid in catalog.models if eid in catalog.openapi and eid not in reserved]
        priced = [eid for eid in catalog.models if eid in catalog.prices and eid not in reserved]
        self.document_ids = dict(zip(DOCUMENTS, documented, strict=False))
        assert len(self.document_ids) == len(DOCUMENTS)
        self.price_ids = dict(zip(BAD_PRICES, reversed(priced), strict=False))
        assert not set(self.price_ids.values()) & set(self.document_ids.values())
        self.before = pipeline.snapshot()

        for case, endpoint_id in self.document_ids.items():
            made = DOCUMENTS[case][0](catalog, endpoint_id)
            if isinstance(made, bytes):
                emulator.set_raw_document(endpoint_id, made)
            else:
                catalog.set_openapi(endpoint_id, made)
        self.ten_mb = len(canonical_json(catalog.openapi[self.document_ids["document-10-MB"]]))
        for case, endpoint_id in self.price_ids.items():
            emulator.raw_prices[endpoint_id] = raw_price(endpoint_id, BAD_PRICES[case][0])
        self.unknown_unit_id = priced[0]
        catalog.set_price(self.unknown_unit_id, "0.05", "bananas")
        for endpoint_id in ODD_IDS.values():
            catalog.add_model(
                endpoint_id,
                {**(catalog.models[PRICED] or {}), "display_name": f"odd {endpoint_id[:40]}"},
                price={"unit_price": "0.01", "unit": "images"},
                openapi=catalog.openapi[PRICED],
            )

        self.result = pipeline.refresh(
            fal={"schema_batch_size": 1, "price_batch_size": 1, "max_attempts": 2},
            full_refresh=True,
            raise_on_error=False,
        )
        self.after = pipeline.snapshot()
        self.rows = by_id(self.after)
        self.old = by_id(self.before)

    def expected_changes(self) -> dict[str, tuple[str, ...]]:
        """What the contract lets this run change: a document that maps replaces the schema (with an error,
        or held, it also marks the model and switches it off); an unreadable document and a bad price are
        failed fetches, whose models keep every last good value; the unknown unit is a price fal did send,
        taken as it is, unpriced and invalid; the operator's choices are recorded."""
        changes: dict[str, tuple[str, ...]] = dict(CHOICES_RECORDED)
        for case, endpoint_id in self.document_ids.items():
            outcome = DOCUMENTS[case][1]
            if outcome == "valid":
                changes[endpoint_id] = SCHEMA_WRITE
            elif outcome.startswith("error:"):
                changes[endpoint_id] = (*SCHEMA_WRITE, *MARKED)
        changes[self.unknown_unit_id] = (*PRICE_WRITE, *MARKED)
        return changes

    def expected_new_rows(self) -> set[str]:
        return {eid for eid in ODD_IDS.values() if len(eid) <= MAX_ENDPOINT_ID_LENGTH}


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory: pytest.TempPathFactory) -> BadInputRun:
    with open_pipeline(tmp_path_factory.mktemp("bad-input")) as pipeline:
        yield BadInputRun(pipeline)


def test_the_bad_input_run_succeeds_and_loses_nothing(bad_run: BadInputRun) -> None:
    assert bad_run.result.success, failures(bad_run.result)
    expected = bad_run.expected_changes()
    assert_nothing_lost(bad_run.before, bad_run.after, may_change=expected, added=bad_run.expected_new_rows())
    assert changed_models(bad_run.before, bad_run.after) == set(expected) | bad_run.expected_new_rows()
    assert bad_run.ten_mb > 10_000_000


@pytest.mark.parametrize("case", list(DOCUMENTS), ids=list(DOCUMENTS))
def test_a_bad_document_gives_a_clear_per_model_outcome(bad_run: BadInputRun, case: str) -> None:
    assert bad_run.result.success
    endpoint_id = bad_run.document_ids[case]
    row, old = bad_run.rows[endpoint_id], bad_run.old[endpoint_id]
    outcome = DOCUMENTS[case][1]
    if outcome == "valid":  # no error beyond those it had (an unpriced model stays 'no price')
        assert row["validation_errors"] == old["validation_errors"]
        assert row["input_schema"] and row["input_schema"].get("properties")
    elif outcome == "kept":
        assert {c: row[c] for c in SCHEMA_COLUMNS} == {c: old[c] for c in SCHEMA_COLUMNS}
        assert row["validation_errors"] == old["validation_errors"]
    else:
        expected = outcome.removeprefix("error:")
        errors = row["validation_errors"] or []
        assert any(expected in error for error in errors), errors
        assert not row["enabled"], "an invalid model is not offered"
        assert row["input_schema"] is not None, "its last good (or its new, marked) schema is kept"
    for column in PRICE_COLUMNS:  # a document never moves a price
        assert row[column] == old[column]


def test_circular_refs_are_cut_and_marked(bad_run: BadInputRun) -> None:
    row = bad_run.rows[bad_run.document_ids["circular-refs"]]
    tree = row["input_schema"]["properties"]["tree"]
    assert tree["properties"]["child"]["circular"] is True
    assert row["input_schema"]["properties"]["ping"]["properties"]["pong"]["properties"]["ping"]["circular"]


def test_unreadable_documents_are_reported_as_failed_fetches(bad_run: BadInputRun) -> None:
    schemas = materialization_metadata(bad_run.result, "fal_openapi_schemas")
    kept = [case for case, (_, outcome) in DOCUMENTS.items() if outcome == "kept"]
    assert schemas["by_status"].value["failed"] == len(kept)
    assert f"{len(kept)} schema fetches failed" in schemas["notes"].md_str


def test_unreadable_documents_are_named_in_the_run_metadata(bad_run: BadInputRun) -> None:
    """Somewhere in the run's metadata (not merely as a row of a preview), each endpoint whose document could
    not be read is named, or its preview row carries the error."""
    named = []
    for asset in ("fal_openapi_schemas", "genfeed_models", "priced_models"):
        for value in materialization_metadata(bad_run.result, asset).values():
            if isinstance(value, dg.TableMetadataValue):
                named += [
                    json.dumps(r.data)
                    for r in value.records
                    if any(r.data.get(c) for c in ("errors", "error"))
                ]
            else:
                named.append(str(value))
    text = "\n".join(named)
    for case, (_, outcome) in DOCUMENTS.items():
        if outcome == "kept":
            assert bad_run.document_ids[case] in text, case


@pytest.mark.parametrize("case", list(BAD_PRICES), ids=list(BAD_PRICES))
def test_a_bad_price_never_reaches_the_table(bad_run: BadInputRun, case: str) -> None:
    assert bad_run.result.success
    endpoint_id = bad_run.price_ids[case]
    row, old = bad_run.rows[endpoint_id], bad_run.old[endpoint_id]
    for column in PRICE_COLUMNS:
        assert row[column] == old[column], f"{column}: the last good price stays"
    if row["unit_price"] is not None:
        assert row["unit_price"].is_finite() and row["unit_price"] >= 0
    assert row["validation_errors"] == old["validation_errors"], "a failed fetch says nothing about the model"
    assert row["enabled"] == old["enabled"], "a failed fetch does not switch the model off"
    failures = materialization_metadata(bad_run.result, "fal_model_list")["failed_price_fetches"]
    errors = {r.data["endpoint_id"]: r.data["error"] for r in failures.records}
    assert BAD_PRICES[case][1] in errors[endpoint_id], errors.get(endpoint_id)
    history = [r for r in bad_run.after["model_price_history"] if r["endpoint_id"] == endpoint_id]
    assert history == [r for r in bad_run.before["model_price_history"] if r["endpoint_id"] == endpoint_id]


def test_an_unknown_unit_is_kept_flagged_and_not_priced(bad_run: BadInputRun) -> None:
    row = bad_run.rows[bad_run.unknown_unit_id]
    assert (row["unit_raw"], row["unit_price"]) == ("bananas", Decimal("0.05"))
    assert row["cost_per_call"] is None and row["price_per_call"] is None and not row["pricing"]
    assert any("unit unknown: 'bananas'" in error for error in row["validation_errors"])
    assert not row["enabled"]


@pytest.mark.parametrize("case", list(ODD_IDS), ids=list(ODD_IDS))
def test_an_odd_endpoint_id_is_stored_verbatim_on_sqlite(bad_run: BadInputRun, case: str) -> None:
    endpoint_id = ODD_IDS[case]
    if len(endpoint_id) > MAX_ENDPOINT_ID_LENGTH:
        assert endpoint_id not in bad_run.rows, "longer than the id column: skipped with a warning"
        warnings = materialization_metadata(bad_run.result, "models_table")["warnings"].md_str
        assert f"skipped an endpoint id of {len(endpoint_id)} characters" in warnings
        return
    row = bad_run.rows[endpoint_id]
    assert row["owner"] == endpoint_id.split("/", 1)[0]
    assert row["unit_price"] == Decimal("0.01") and row["managed_by"] == "fal_catalog"


def test_odd_ids_never_become_file_names(bad_run: BadInputRun) -> None:
    data_dir = bad_run.pipeline.data_dir
    names = sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.is_file())
    assert all(name == "fal_cache.sqlite3" or name.startswith("asset_values/") for name in names), names
    assert not any("passwd" in name or "script" in name for name in names)


# -- cases the product gets wrong ---------------------------------------------------------------------------


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    with open_pipeline(tmp_path) as opened:
        yield opened


@pytest.mark.parametrize("unit_price", ["1e30", '"1e30"'], ids=["number", "string"])
def test_a_huge_price_is_one_models_error_not_a_crashed_run(pipeline: Pipeline, unit_price: str) -> None:
    before = pipeline.snapshot()
    pipeline.emulator.raw_prices[PRICED] = raw_price(PRICED, unit_price)

    result = pipeline.refresh(raise_on_error=False)

    assert result.success, failures(result)
    after = pipeline.snapshot()
    assert_nothing_lost(before, after, may_change=CHOICES_RECORDED)
    row = by_id(after)[PRICED]
    assert row["unit_price"] == by_id(before)[PRICED]["unit_price"], "the last good price stays"
    failed = materialization_metadata(result, "fal_model_list")["failed_price_fetches"]
    assert any(
        r.data["endpoint_id"] == PRICED and "not a real price" in r.data["error"] for r in failed.records
    )


def test_a_document_without_a_readable_input_keeps_the_last_good_schema(pipeline: Pipeline) -> None:
    before = pipeline.snapshot()
    victim = "fal-ai/flux-lora"
    pipeline.catalog.set_openapi(victim, {"openapi": "3.0.4", "paths": "nope"})

    result = pipeline.refresh()

    assert result.success
    after = pipeline.snapshot()
    # The schema is held; the rate card, though, is rebuilt from the held document (no inputs: a 1024×1024
    # image assumed), not kept with the last good schema. The price itself, and `pricing`, stay.
    card = ("rate_card", "cost_derivation", "cost_confidence", "price_flags")
    assert_nothing_lost(before, after, may_change={victim: (*MARKED, *card), **CHOICES_RECORDED})
    row, old = by_id(after)[victim], by_id(before)[victim]
    assert any("no POST request body" in error for error in row["validation_errors"] or [])
    assert {c: row[c] for c in SCHEMA_COLUMNS} == {c: old[c] for c in SCHEMA_COLUMNS}, "held, not wiped"
    assert row["review_reason"]


def test_an_unreadable_document_costs_only_its_own_endpoint(pipeline: Pipeline) -> None:
    before = pipeline.snapshot()
    change_catalog(pipeline.catalog)
    ids = list(pipeline.catalog.models)
    batch = ids[ids.index(DOCUMENTED) - ids.index(DOCUMENTED) % 10 :][:10]
    neighbour = next(eid for eid in batch if eid != DOCUMENTED and eid in pipeline.catalog.openapi)
    pipeline.emulator.set_raw_document(neighbour, nested_text(1000, neighbour))

    pipeline.refresh(full_refresh=True)

    after = pipeline.snapshot()
    assert_nothing_lost(before, after, may_change=CLEAN_CHANGES)
    assert changed_models(before, after) == set(CLEAN_CHANGES), "the neighbour keeps its last good schema"
    assert "style_preset" in by_id(after)[DOCUMENTED]["input_schema"]["properties"]


def test_a_lone_surrogate_in_one_name_does_not_stop_the_sync(pipeline: Pipeline) -> None:
    before = pipeline.snapshot()
    change_catalog(pipeline.catalog)
    victim = next(iter(pipeline.catalog.models))
    name = pipeline.emulator.raw_text(b'"broken \\ud800 name"')
    pipeline.catalog.add_model(victim, {**(pipeline.catalog.models[victim] or {}), "display_name": name})

    result = pipeline.refresh(raise_on_error=False)

    assert result.success, failures(result)
    after = pipeline.snapshot()
    assert_nothing_lost(before, after, may_change={**CLEAN_CHANGES, victim: ("name",)})
    assert by_id(after)[PRICED]["unit_price"] == Decimal("0.004")


POSTGRES_TOO_LONG = {
    "endpoint-id-1000-chars": lambda catalog: ("fal-ai/" + "a" * 993, None, None),
    "owner-200-chars": lambda catalog: ("o" * 200 + "/model", None, None),
    "unit-200-chars": lambda catalog: ("fal-ai/long-unit", "megapixels " + "x" * 190, None),
    "category-100-chars": lambda catalog: ("fal-ai/long-category", None, "c" * 100),
    "updated-at-100-chars": lambda catalog: ("fal-ai/long-version", None, "version"),
}


@pytest.mark.parametrize("case", list(POSTGRES_TOO_LONG), ids=list(POSTGRES_TOO_LONG))
def test_fal_text_longer_than_its_column_is_one_models_problem_on_postgresql(
    tmp_path: Path, postgres_url: str, case: str
) -> None:
    with open_pipeline(tmp_path, postgres_url) as pipeline:
        catalog = pipeline.catalog
        endpoint_id, unit, category = POSTGRES_TOO_LONG[case](catalog)
        metadata = {**(catalog.models[PRICED] or {}), "display_name": "too long"}
        if category == "version":
            metadata["updated_at"] = "2026-" + "9" * 95
        elif category:
            metadata["category"] = category
        catalog.add_model(
            endpoint_id,
            metadata,
            price={"unit_price": "0.01", "unit": unit or "images"},
            openapi=catalog.openapi[PRICED],
        )
        catalog.set_price(PRICED, "0.004", "megapixels")
        before = pipeline.snapshot()

        result = pipeline.refresh(raise_on_error=False)

        assert result.success, failures(result)
        after = pipeline.snapshot()
        stored = {endpoint_id} & set(by_id(after))
        assert_nothing_lost(before, after, may_change={PRICED: PRICE_WRITE, **CHOICES_RECORDED}, added=stored)
        assert changed_models(before, after) == {PRICED, *OPERATOR_CHOICES} | stored
        assert by_id(after)[PRICED]["unit_price"] == Decimal("0.004"), "the rest syncs"


# -- generated ----------------------------------------------------------------------------------------------

_KEYS = ["type", "properties", "items", "required", "enum", "default", "anyOf", "oneOf", "allOf", "$ref"]
_KEYS += ["nullable", "minimum", "maximum", "title", "description", "x-fal-order-properties", "examples"]
_REFS = st.sampled_from(
    [
        "#/components/schemas/A",
        "#/components/schemas/B",
        "#/components/schemas/Missing",
        "http://x/y",
        "#/",
        "#",
    ]
)
_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8) | _REFS
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=30,
)
_SCHEMA = st.dictionaries(st.sampled_from(_KEYS), _JSON, max_size=6)


@st.composite
def openapi_documents(draw: st.DrawFn) -> dict[str, Any]:
    endpoint_id = "fal-ai/generated"
    return {
        "openapi": "3.0.4",
        "info": draw(st.one_of(st.just({"title": "x"}), _JSON)),
        "paths": {
            f"/{endpoint_id}": {
                "post": {"requestBody": {"content": {"application/json": {"schema": draw(_SCHEMA | _JSON)}}}}
            },
            f"/{endpoint_id}/requests/{{request_id}}": {
                "get": {"responses": {"200": {"content": {"application/json": {"schema": draw(_SCHEMA)}}}}}
            },
        },
        "components": {"schemas": {"A": draw(_SCHEMA), "B": draw(_SCHEMA | _JSON)}},
    }


def schema_record(endpoint_id: str, document: Any) -> SchemaRecord:
    return SchemaRecord(
        endpoint_id, SchemaStatus.FETCHED, canonical_json(document), "v1", NOW, DataSource.LIVE
    )


@HYPOTHESIS
@given(document=openapi_documents())
def test_generated_documents_map_to_a_model_or_a_reason_never_an_exception(document: dict[str, Any]) -> None:
    endpoint = FalEndpoint("fal-ai/generated", {"display_name": "generated", "category": "text-to-image"})
    model = map_endpoint(endpoint, schema_record("fal-ai/generated", document))
    assert model.endpoint_id == "fal-ai/generated"
    assert all(isinstance(error, str) and error for error in model.validation_errors)
    assert not any("failed while" in error for error in model.validation_errors), model.validation_errors
    if model.valid:
        assert model.input_schema and model.input_schema.get("properties")
    json.dumps(model.input_schema), json.dumps(model.output_schema)  # storable as JSON


def a_model():
    catalog = small_catalog()
    document = catalog.openapi[PRICED]
    return map_endpoint(FalEndpoint(PRICED, catalog.models[PRICED]), schema_record(PRICED, document))


FLUX_SCHNELL = a_model()
_UNITS = st.sampled_from(
    ["megapixels", "images", "seconds", "bananas", "", "units", "1", "5 seconds"]
) | st.text(max_size=12)
_RAW_PRICES = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**6), max_value=10**6)
    | st.decimals(min_value=-(10**6), max_value=10**6, allow_nan=False).map(str)
    | st.sampled_from(["NaN", "-Infinity", "Infinity", "sNaN", " 0.5 ", "-0", "1_000", "0x10", "½"])
    | st.text(max_size=10)
    | st.none()
    | st.booleans()
)


@HYPOTHESIS
@given(unit_price=_RAW_PRICES, unit=_UNITS)
def test_generated_prices_are_rejected_or_priced_sanely(unit_price: Any, unit: str) -> None:
    """What fal sends as `unit_price` either fails validation (the model keeps its last good price) or becomes
    a finite, non-negative price with a non-negative cost and a GenFeed price never below the cost."""
    if isinstance(unit_price, float) and math.isfinite(unit_price):
        assume(abs(unit_price) < 1e6)
    try:
        price = FalPrice.model_validate({"endpoint_id": PRICED, "unit_price": unit_price, "unit": unit})
    except ValidationError as exc:
        assert "unit_price" in str(exc)
        return
    assert price.unit_price.is_finite() and price.unit_price >= 0
    assume(
        price.unit_price.adjusted() < 7
    )  # huge prices: test_a_huge_price_is_one_models_error_not_a_crashed_run
    quote = PriceQuote(PRICED, price.unit_price, price.unit, "USD", DataSource.LIVE, NOW)
    priced = price_model(FLUX_SCHNELL, PriceLookup(PriceStatus.PRICED, quote), CLOUD)
    assert priced.unit_price == price.unit_price
    if priced.cost_per_call is not None:
        assert priced.cost_per_call >= 0 and priced.price_per_call >= priced.cost_per_call
    else:
        assert priced.price_per_call is None and not priced.billing
        assert not policy_enabled(priced, CLOUD)


_IDS = st.text(min_size=1, max_size=300).filter(lambda s: s.strip()) | st.sampled_from(list(ODD_IDS.values()))


@HYPOTHESIS
@given(endpoint_id=_IDS)
def test_generated_endpoint_ids_map_price_and_plan_without_surprises(endpoint_id: str) -> None:
    original = small_catalog_document()
    document = {
        **original,
        "paths": {key.replace(f"/{PRICED}", f"/{endpoint_id}", 1): v for key, v in original["paths"].items()},
    }
    endpoint = FalEndpoint(endpoint_id, {"display_name": endpoint_id, "category": "text-to-image"})
    model = map_endpoint(endpoint, schema_record(endpoint_id, document))
    assert model.owner == endpoint_id.split("/", 1)[0]
    quote = PriceQuote(endpoint_id, Decimal("0.003"), "megapixels", "USD", DataSource.LIVE, NOW)
    priced = price_model(model, PriceLookup(PriceStatus.PRICED, quote), CLOUD)
    context = SyncContext(mode=SyncMode.FULL, source=DataSource.LIVE, data_as_of=NOW, now=NOW)
    plan = SyncPlanner(context).plan({}, {endpoint_id: priced})
    if len(endpoint_id) > MAX_ENDPOINT_ID_LENGTH:
        assert not plan.changes and plan.warnings, "an id longer than the column is skipped, with a warning"
        return
    (change,) = plan.changes
    assert change.action == Action.INSERT and change.values["id"] == endpoint_id
    assert change.values["unit_price"] == Decimal("0.003")


_DOCUMENT_CACHE: dict[str, Any] = {}


def small_catalog_document() -> dict[str, Any]:
    if "doc" not in _DOCUMENT_CACHE:
        _DOCUMENT_CACHE["doc"] = small_catalog().openapi[PRICED]
    return _DOCUMENT_CACHE["doc"]


def test_a_model_whose_price_fetch_failed_never_loses_its_price_in_the_plan() -> None:
    quote = PriceQuote(PRICED, Decimal("0.003"), "megapixels", "USD", DataSource.LIVE, NOW)
    good = price_model(FLUX_SCHNELL, PriceLookup(PriceStatus.PRICED, quote), CLOUD)
    context = SyncContext(mode=SyncMode.FULL, source=DataSource.LIVE, data_as_of=NOW, now=NOW)
    planner = SyncPlanner(context)
    (insert,) = planner.plan({}, {PRICED: good}).changes

    failed = price_model(FLUX_SCHNELL, PriceLookup(PriceStatus.FAILED, error="boom"), CLOUD)
    plan = planner.plan({PRICED: dict(insert.values)}, {PRICED: failed})

    written = plan.changes[0].values if plan.changes else {}
    assert not set(written) & {"unit", "unit_raw", "unit_price", "cost_per_call", "price_per_call", "pricing"}
