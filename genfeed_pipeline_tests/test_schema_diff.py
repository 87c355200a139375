"""Two versions of a model's normalised schemas → changes, and which of them break callers (the contract's
"Breaking schema changes"): hand-made node pairs for every rule, then the real drift between fal's bundled
documents (fal_data.py)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from genfeed_pipeline.mapping import NormalisedDocument, normalise_document, normalise_schema
from genfeed_pipeline.mapping.diff import (
    MAX_REASON_CHARS,
    SchemaChange,
    breaking_changes,
    diff_model_schemas,
    review_reason,
)
from genfeed_pipeline_tests.fal_data import current_document, older_copy

Node = dict[str, Any]
Triple = tuple[str, str, bool]


# -- helpers -----------------------------------------------------------------------------------------------


def obj(properties: dict[str, Node], required: tuple[str, ...] = (), **extra: Any) -> Node:
    node: Node = {"type": "object", "properties": properties, **extra}
    if required:
        node["required"] = list(required)
    return node


def string(**extra: Any) -> Node:
    return {"type": "string", **extra}


def integer(**extra: Any) -> Node:
    return {"type": "integer", **extra}


def with_default(node: Node, value: Any) -> Node:
    return {**node, "default": value, "has_default": True}


def diff_input(old: Node, new: Node) -> list[SchemaChange]:
    return diff_model_schemas(old, None, new, None)


def diff_output(old: Node, new: Node) -> list[SchemaChange]:
    return diff_model_schemas(None, old, None, new)


def triples(changes: list[SchemaChange]) -> list[Triple]:
    return [(change.kind, change.path, change.breaking) for change in changes]


def listing(changes: list[SchemaChange]) -> str:
    return (
        "\n".join(f"  {change.describe()}   [{change.kind} at {change.path!r}]" for change in changes)
        or "  —"
    )


# -- 1. hand-made pairs, one rule each ----------------------------------------------------------------------

PROMPT = string(title="Prompt", description="The prompt.")
SEED = integer(title="Seed")
BASE = obj({"prompt": PROMPT, "seed": SEED}, ("prompt",))


INPUT_CASES: list[tuple[str, Node, Node, list[Triple]]] = [
    ("identical", BASE, json.loads(json.dumps(BASE)), []),
    (
        "input property removed",
        BASE,
        obj({"prompt": PROMPT}, ("prompt",)),
        [("property_removed", "seed", True)],
    ),
    (
        "new optional input",
        BASE,
        obj({"prompt": PROMPT, "seed": SEED, "steps": integer()}, ("prompt",)),
        [("property_added", "steps", False)],
    ),
    (
        "new required input",
        BASE,
        obj({"prompt": PROMPT, "seed": SEED, "image_url": string()}, ("prompt", "image_url")),
        [("property_added", "image_url", True)],
    ),
    (
        "optional → required",
        BASE,
        obj({"prompt": PROMPT, "seed": SEED}, ("prompt", "seed")),
        [("became_required", "seed", True)],
    ),
    (
        "required → optional",
        BASE,
        obj({"prompt": PROMPT, "seed": SEED}),
        [("became_optional", "prompt", False)],
    ),
    (
        "type changed",
        BASE,
        obj({"prompt": PROMPT, "seed": string()}, ("prompt",)),
        [("type_changed", "seed", True)],
    ),
    (
        "integer → number is a type change too",
        BASE,
        obj({"prompt": PROMPT, "seed": {"type": "number"}}, ("prompt",)),
        [("type_changed", "seed", True)],
    ),
    (
        "any → concrete is reported, not breaking",
        obj({"seed": {"type": "any"}}),
        obj({"seed": SEED}),
        [("type_changed", "seed", False)],
    ),
    (
        "concrete → any is reported, not breaking",
        obj({"seed": SEED}),
        obj({"seed": {"type": "any"}}),
        [("type_changed", "seed", False)],
    ),
    (
        "nullable added",
        BASE,
        obj({"prompt": PROMPT, "seed": {**SEED, "nullable": True}}, ("prompt",)),
        [("nullable_added", "seed", False)],
    ),
    (
        "nullable removed on an input",
        obj({"seed": {**SEED, "nullable": True}}),
        obj({"seed": SEED}),
        [("nullable_removed", "seed", False)],
    ),
    (
        "description, title, examples, format, file marker and order",
        BASE,
        obj(
            {
                "seed": integer(title="Random seed", description="New words.", examples=[42]),
                "prompt": string(examples=["a cat"], format="text"),
            },
            ("prompt",),
            title="RenamedInput",
            description="Other words.",
        ),
        [],
    ),
    (
        "enum value removed",
        obj({"format": string(enum=["jpeg", "png"])}),
        obj({"format": string(enum=["jpeg"])}),
        [("enum_value_removed", "format", True)],
    ),
    (
        "enum value added",
        obj({"format": string(enum=["jpeg", "png"])}),
        obj({"format": string(enum=["jpeg", "png", "webp"])}),
        [("enum_value_added", "format", False)],
    ),
    (
        "enum reordered",
        obj({"format": string(enum=["jpeg", "png"])}),
        obj({"format": string(enum=["png", "jpeg"])}),
        [],
    ),
    (
        "enum value replaced",
        obj({"format": string(enum=["jpeg", "png"])}),
        obj({"format": string(enum=["jpeg", "webp"])}),
        [("enum_value_removed", "format", True), ("enum_value_added", "format", False)],
    ),
    (
        "enum appears and the old default is not in it",
        obj({"format": with_default(string(), "gif")}),
        obj({"format": with_default(string(enum=["jpeg", "png"]), "gif")}),
        [("range_narrowed", "format", True)],
    ),
    (
        "enum appears and holds the old default",
        obj({"format": with_default(string(), "png")}),
        obj({"format": with_default(string(enum=["jpeg", "png"]), "png")}),
        [("range_narrowed", "format", False)],
    ),
    (
        "enum dropped",
        obj({"format": string(enum=["jpeg", "png"])}),
        obj({"format": string()}),
        [("range_widened", "format", False)],
    ),
    (
        "maximum narrowed below the old default",
        obj({"steps": with_default(integer(minimum=1, maximum=50), 28)}),
        obj({"steps": with_default(integer(minimum=1, maximum=20), 28)}),
        [("range_narrowed", "steps", True)],
    ),
    (
        "maximum narrowed, the old default still valid (the new default changed too)",
        obj({"steps": with_default(integer(minimum=1, maximum=50), 28)}),
        obj({"steps": with_default(integer(minimum=1, maximum=30), 20)}),
        [("default_changed", "steps", False), ("range_narrowed", "steps", False)],
    ),
    (
        "minimum narrowed above the old default",
        obj({"scale": with_default({"type": "number", "minimum": 0}, 0.5)}),
        obj({"scale": with_default({"type": "number", "minimum": 1}, 0.5)}),
        [("range_narrowed", "scale", True)],
    ),
    (
        "minimum added, no old default",
        obj({"seed": SEED}),
        obj({"seed": integer(minimum=0)}),
        [("range_narrowed", "seed", False)],
    ),
    (
        "minimum becomes exclusive at the old default",
        obj({"width": with_default(integer(minimum=0), 0)}),
        obj({"width": with_default(integer(exclusive_minimum=0), 0)}),
        [("range_narrowed", "width", True)],
    ),
    (
        "exclusive maximum reaches the old default",
        obj({"strength": with_default({"type": "number", "maximum": 1}, 1)}),
        obj({"strength": with_default({"type": "number", "exclusive_maximum": 1}, 1)}),
        [("range_narrowed", "strength", True)],
    ),
    (
        "min_length above the old default's length",
        obj({"negative_prompt": with_default(string(), "")}),
        obj({"negative_prompt": with_default(string(min_length=1), "")}),
        [("range_narrowed", "negative_prompt", True)],
    ),
    (
        "max_length narrowed, the old default fits",
        obj({"prompt": with_default(string(max_length=1000), "a cat")}),
        obj({"prompt": with_default(string(max_length=500), "a cat")}),
        [("range_narrowed", "prompt", False)],
    ),
    (
        "max_items below the old default's length",
        obj({"loras": with_default({"type": "array", "items": string(), "max_items": 5}, ["a", "b", "c"])}),
        obj({"loras": with_default({"type": "array", "items": string(), "max_items": 2}, ["a", "b", "c"])}),
        [("range_narrowed", "loras", True)],
    ),
    (
        "range widened",
        obj({"steps": with_default(integer(minimum=1, maximum=50), 28)}),
        obj({"steps": with_default(integer(maximum=100), 28)}),
        [("range_widened", "steps", False)],
    ),
    (
        "range narrowed at one end, widened at the other",
        obj({"steps": with_default(integer(minimum=1, maximum=50), 28)}),
        obj({"steps": with_default(integer(minimum=2, maximum=100), 28)}),
        [("range_narrowed", "steps", False), ("range_widened", "steps", False)],
    ),
    (
        "default changed",
        obj({"steps": with_default(integer(), 28)}),
        obj({"steps": with_default(integer(), 30)}),
        [("default_changed", "steps", False)],
    ),
    (
        "default added",
        obj({"steps": integer()}),
        obj({"steps": with_default(integer(), 30)}),
        [("default_changed", "steps", False)],
    ),
    (
        "default true → 1 is a change, 2 → 2.0 is not",
        obj({"flag": with_default({"type": "any"}, True), "scale": with_default({"type": "number"}, 2)}),
        obj({"flag": with_default({"type": "any"}, 1), "scale": with_default({"type": "number"}, 2.0)}),
        [("default_changed", "flag", False)],
    ),
    (
        "nested object: property removed, became required, retyped",
        obj({"size": obj({"width": integer(), "height": integer(), "unit": string()})}),
        obj({"size": obj({"width": string(), "height": integer()}, ("height",))}),
        [
            ("property_removed", "size.unit", True),
            ("type_changed", "size.width", True),
            ("became_required", "size.height", True),
        ],
    ),
    (
        "array items: nested property added as required",
        obj({"loras": {"type": "array", "items": obj({"path": string()}, ("path",))}}),
        obj(
            {
                "loras": {
                    "type": "array",
                    "items": obj({"path": string(), "scale": integer()}, ("path", "scale")),
                }
            }
        ),
        [("property_added", "loras[].scale", True)],
    ),
    (
        "arrays of arrays",
        obj({"grid": {"type": "array", "items": {"type": "array", "items": integer()}}}),
        obj({"grid": {"type": "array", "items": {"type": "array", "items": string()}}}),
        [("type_changed", "grid[][]", True)],
    ),
    (
        "array loses its items: items become any",
        obj({"tags": {"type": "array", "items": string()}}),
        obj({"tags": {"type": "array"}}),
        [("type_changed", "tags[]", False)],
    ),
    (
        "an object of unknown shape (a derived document) gains its property list",
        obj({"loras": {"type": "array", "items": {"type": "object", "title": "LoraWeight"}}}),
        obj({"loras": {"type": "array", "items": obj({"path": string()}, ("path",), ref="LoraWeight")}}),
        [],
    ),
    (
        "an empty property list is a property list",
        obj({"extra": obj({})}),
        obj({"extra": obj({"mode": string()}, ("mode",))}),
        [("property_added", "extra.mode", True)],
    ),
]


def size_union(*alternatives: Node, **extra: Any) -> Node:
    return {"type": "any", "any_of": list(alternatives), **extra}


IMAGE_SIZE = obj(
    {"width": with_default(integer(maximum=14142, exclusive_minimum=0), 512), "height": integer()},
    ref="ImageSize",
)
PRESETS = string(enum=["square_hd", "square", "landscape_4_3"])

UNION_CASES: list[tuple[str, Node, Node, list[Triple]]] = [
    (
        "union: alternatives reordered",
        obj({"image_size": size_union(IMAGE_SIZE, PRESETS)}),
        obj({"image_size": size_union(PRESETS, IMAGE_SIZE)}),
        [],
    ),
    (
        "union: a component renamed or inlined is the same alternative",
        obj({"image_size": size_union(IMAGE_SIZE, PRESETS)}),
        obj({"image_size": size_union({k: v for k, v in IMAGE_SIZE.items() if k != "ref"}, PRESETS)}),
        [],
    ),
    (
        "union: alternative removed",
        obj({"image_size": size_union(IMAGE_SIZE, PRESETS)}),
        obj({"image_size": size_union(IMAGE_SIZE, integer())}),
        [("alternative_removed", "image_size", True), ("alternative_added", "image_size", False)],
    ),
    (
        "union: alternative added",
        obj({"image_size": size_union(IMAGE_SIZE, PRESETS)}),
        obj({"image_size": size_union(IMAGE_SIZE, PRESETS, {"type": "integer"})}),
        [("alternative_added", "image_size", False)],
    ),
    (
        "single type → a union holding it",
        obj({"image_size": with_default(PRESETS, "square")}),
        obj({"image_size": size_union(IMAGE_SIZE, PRESETS, default="square", has_default=True)}),
        [("alternative_added", "image_size", False)],
    ),
    (
        "a union → one of its alternatives",
        obj({"image_size": size_union(IMAGE_SIZE, PRESETS, default="square", has_default=True)}),
        obj({"image_size": with_default(PRESETS, "square")}),
        [("alternative_removed", "image_size", True)],
    ),
    (
        "union → a type none of its alternatives have",
        obj({"image_size": size_union(IMAGE_SIZE, PRESETS)}),
        obj({"image_size": integer()}),
        [
            ("alternative_removed", "image_size", True),
            ("alternative_removed", "image_size", True),
            ("alternative_added", "image_size", False),
        ],
    ),
    (
        "union → plain any",
        obj({"image_size": size_union(IMAGE_SIZE, PRESETS)}),
        obj({"image_size": {"type": "any"}}),
        [("type_changed", "image_size", False)],
    ),
    (
        "union: changes inside an alternative keep the property's path",
        obj({"image_size": size_union(IMAGE_SIZE, PRESETS)}),
        obj(
            {
                "image_size": size_union(
                    obj(
                        {"width": with_default(integer(maximum=256, exclusive_minimum=0), 512)},
                        ref="ImageSize",
                    ),
                    string(enum=["square_hd", "square"]),
                )
            }
        ),
        [
            ("property_removed", "image_size.height", True),
            ("range_narrowed", "image_size.width", True),
            ("enum_value_removed", "image_size", True),
        ],
    ),
    (
        "union: nullable added",
        obj({"image_size": size_union(IMAGE_SIZE, PRESETS)}),
        obj({"image_size": size_union(IMAGE_SIZE, PRESETS, nullable=True)}),
        [("nullable_added", "image_size", False)],
    ),
]

NODE_CASES: list[tuple[str, Node, Node, list[Triple]]] = [
    (
        "circular nodes: compared by type only",
        obj({"parent": {"type": "object", "ref": "Node", "circular": True}}),
        obj({"parent": obj({"name": string()}, ("name",), ref="Node")}),
        [],
    ),
    (
        "circular nodes: a type change is still seen",
        obj({"parent": {"type": "object", "ref": "Node", "circular": True}}),
        obj({"parent": {"type": "array", "ref": "Node", "circular": True}}),
        [("type_changed", "parent", True)],
    ),
    (
        "truncated nodes: not compared",
        obj({"deep": {"type": "any", "truncated": True}}),
        obj({"deep": obj({"x": integer()}, ("x",))}),
        [],
    ),
    (
        "the root itself retyped",
        obj({"prompt": PROMPT}),
        {"type": "array", "items": string()},
        [("type_changed", "", True)],
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(old, new, expected, id=name)
        for name, old, new, expected in INPUT_CASES + UNION_CASES + NODE_CASES
    ],
)
def test_input_rules(old: Node, new: Node, expected: list[Triple]) -> None:
    changes = diff_input(old, new)
    assert triples(changes) == expected, listing(changes)
    assert all(change.side == "input" for change in changes)


OUTPUT_CASES: list[tuple[str, Node, Node, list[Triple]]] = [
    (
        "output property removed",
        obj({"images": {"type": "array", "items": obj({"url": string(), "file_data": string()}, ("url",))}}),
        obj({"images": {"type": "array", "items": obj({"url": string()}, ("url",))}}),
        [("property_removed", "images[].file_data", True)],
    ),
    (
        "output retyped",
        obj({"seed": integer()}, ("seed",)),
        obj({"seed": string()}, ("seed",)),
        [("type_changed", "seed", True)],
    ),
    (
        "new output property, even a required one",
        obj({"images": {"type": "array"}}, ("images",)),
        obj(
            {"images": {"type": "array"}, "seed": integer(), "timings": {"type": "object"}},
            ("images", "seed"),
        ),
        [("property_added", "seed", False), ("property_added", "timings", False)],
    ),
    (
        "output optional → required",
        obj({"seed": integer()}),
        obj({"seed": integer()}, ("seed",)),
        [("became_required", "seed", False)],
    ),
    (
        "output required → optional",
        obj({"seed": integer()}, ("seed",)),
        obj({"seed": integer()}),
        [("became_optional", "seed", False)],
    ),
    (
        "output nullable added",
        obj({"content_type": string()}),
        obj({"content_type": string(nullable=True)}),
        [("nullable_added", "content_type", False)],
    ),
    (
        "output nullable removed",
        obj({"content_type": string(nullable=True)}),
        obj({"content_type": string()}),
        [("nullable_removed", "content_type", False)],
    ),
    (
        "output enum value removed",
        obj({"status": string(enum=["ok", "nsfw"])}),
        obj({"status": string(enum=["ok"])}),
        [("enum_value_removed", "status", True)],
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [pytest.param(old, new, expected, id=name) for name, old, new, expected in OUTPUT_CASES],
)
def test_output_rules(old: Node, new: Node, expected: list[Triple]) -> None:
    changes = diff_output(old, new)
    assert triples(changes) == expected, listing(changes)
    assert all(change.side == "output" for change in changes)


def test_all_of_one_ref_is_that_ref() -> None:
    components = {
        "components": {
            "schemas": {
                "ImageSize": {
                    "type": "object",
                    "properties": {
                        "width": {"type": "integer", "default": 512},
                        "height": {"type": "integer"},
                    },
                },
                "Dimensions": {
                    "type": "object",
                    "properties": {
                        "width": {"type": "integer", "default": 512},
                        "height": {"type": "integer"},
                    },
                },
            }
        }
    }
    wrapped, _ = normalise_schema(
        {"type": "object", "properties": {"size": {"allOf": [{"$ref": "#/components/schemas/ImageSize"}]}}},
        components,
    )
    direct, _ = normalise_schema(
        {"type": "object", "properties": {"size": {"$ref": "#/components/schemas/ImageSize"}}}, components
    )
    renamed, _ = normalise_schema(
        {"type": "object", "properties": {"size": {"$ref": "#/components/schemas/Dimensions"}}}, components
    )
    inline, _ = normalise_schema(components["components"]["schemas"]["ImageSize"])
    inline_parent = {"type": "object", "properties": {"size": inline}}
    for old, new in ((wrapped, direct), (direct, wrapped), (direct, renamed), (direct, inline_parent)):
        assert diff_input(old, new) == [], listing(diff_input(old, new))
        assert diff_output(old, new) == []


def test_old_value_and_new_value_are_json_ready() -> None:
    changes = diff_input(
        obj(
            {
                "format": with_default(string(enum=["jpeg", "png", "gif"]), "png"),
                "steps": with_default(integer(maximum=50), 28),
                "seed": integer(),
            }
        ),
        obj(
            {
                "format": with_default(string(enum=["jpeg", "png", "webp"]), "jpeg"),
                "steps": with_default(integer(maximum=20), 28),
                "seed": string(nullable=True),
            }
        ),
    )
    got = [(change.kind, change.path, change.old, change.new) for change in changes]
    assert got == [
        ("default_changed", "format", "png", "jpeg"),
        ("enum_value_removed", "format", ["gif"], None),
        ("enum_value_added", "format", None, ["webp"]),
        ("range_narrowed", "steps", {"maximum": 50}, {"maximum": 20}),
        ("nullable_added", "seed", "integer", "string | null"),
        ("type_changed", "seed", "integer", "string | null"),
    ], listing(changes)
    json.dumps([[change.old, change.new] for change in changes])


def test_a_missing_side_reports_nothing() -> None:
    assert diff_model_schemas(None, None, BASE, BASE) == []
    assert diff_model_schemas(BASE, BASE, None, None) == []
    assert diff_model_schemas(BASE, None, obj({"prompt": PROMPT}, ("prompt",)), BASE) == [
        SchemaChange("input", "seed", "property_removed", True, old="integer")
    ]


def test_describe_is_one_readable_line() -> None:
    became_required = diff_input(BASE, obj({"prompt": PROMPT, "seed": SEED}, ("prompt", "seed")))
    assert [change.describe() for change in became_required] == ["input seed: optional → required (breaking)"]
    added = diff_output(obj({"seed": integer()}), obj({"seed": integer(), "nsfw": {"type": "boolean"}}))
    assert [change.describe() for change in added] == ["output nsfw: added (boolean)"]
    narrowed = diff_input(
        obj({"steps": with_default(integer(maximum=50), 28)}),
        obj({"steps": with_default(integer(maximum=20), 28)}),
    )
    assert [change.describe() for change in narrowed] == [
        "input steps: range narrowed: maximum 50 → 20 (breaking)"
    ]
    root = diff_input(obj({}), string())
    assert [change.describe() for change in root] == ["input (root): type object → string (breaking)"]


def test_breaking_changes_and_review_reason() -> None:
    old = obj({"prompt": PROMPT, "seed": SEED, "steps": integer()}, ("prompt",))
    new = obj(
        {"prompt": PROMPT, "seed": {**SEED, "nullable": True}, "mask_url": string()}, ("prompt", "mask_url")
    )
    changes = diff_input(old, new)
    assert triples(breaking_changes(changes)) == [
        ("property_removed", "steps", True),
        ("property_added", "mask_url", True),
    ]
    reason = review_reason(changes)
    assert reason == (
        "breaking schema changes: input steps: removed (was integer); "
        "input mask_url: added as required (string)"
    )
    assert (
        review_reason(diff_input(BASE, obj({"prompt": PROMPT, "seed": {**SEED, "nullable": True}}))) is None
    )
    assert review_reason([]) is None


def test_review_reason_stays_short() -> None:
    many = obj({f"parameter_number_{index:03d}": integer() for index in range(200)})
    changes = diff_input(many, obj({}))
    assert len(changes) == 200
    reason = review_reason(changes)
    assert reason is not None and len(reason) <= MAX_REASON_CHARS == 500
    assert reason.startswith("breaking schema changes: input parameter_number_000: removed")
    assert "…" in reason and reason.endswith("more)")
    long_name = "x" * 800
    single = review_reason(diff_input(obj({long_name: integer()}), obj({})))
    assert single is not None and len(single) == 500 and single.endswith("…")


def test_shared_subtrees_are_compared_at_every_place_they_are_used() -> None:
    """A `$ref` used at many places is one object in a normalised tree: a change inside one copy is found
    at its own place only, and a change to the shared object is found at every place that uses it."""
    leaf = obj({f"field_{index}": with_default(integer(maximum=100), 1) for index in range(50)})
    old = obj({f"group_{index}": leaf for index in range(400)})

    copies = obj({f"group_{index}": json.loads(json.dumps(leaf)) for index in range(400)})
    copies["properties"]["group_217"]["properties"]["field_3"]["maximum"] = 0
    assert triples(diff_input(old, copies)) == [("range_narrowed", "group_217.field_3", True)]

    narrower = json.loads(json.dumps(leaf))
    del narrower["properties"]["field_49"]
    shared = obj({f"group_{index}": narrower for index in range(400)})
    assert triples(diff_input(old, shared)) == [
        ("property_removed", f"group_{index}.field_49", True) for index in range(400)
    ]


# -- 2. real drift: fal's documents as bundled for the tests (fal_data.py) --------------------------------


def raw_document(name: str) -> dict[str, Any]:
    """An older copy by file name (`….json`), else fal's current document by endpoint id."""
    return older_copy(name) if name.endswith(".json") else current_document(name)


def load(name: str) -> NormalisedDocument:
    return normalise_document(raw_document(name))


def drift(old_name: str, new_name: str) -> list[SchemaChange]:
    old, new = load(old_name), load(new_name)
    return diff_model_schemas(old.input_schema, old.output_schema, new.input_schema, new.output_schema)


CRYSTAL_JAN = "clarityai__crystal-upscaler__2026-01-28.json"
CRYSTAL_NOW = "clarityai/crystal-upscaler"
IMAGE_FIELDS_NOW_NULLABLE = ["content_type", "file_name", "file_size", "width", "height"]


def test_crystal_upscaler_jan_to_apr_is_breaking() -> None:
    changes = drift(CRYSTAL_JAN, CRYSTAL_NOW)
    message = f"crystal-upscaler Jan → Apr 2026:\n{listing(changes)}"
    assert triples(breaking_changes(changes)) == [("property_removed", "images[].file_data", True)], message
    assert changes[0].side == "output" and changes[0].old == "string", message
    assert triples(changes[1:]) == [
        ("nullable_added", f"images[].{name}", False) for name in IMAGE_FIELDS_NOW_NULLABLE
    ], message
    reason = review_reason(changes)
    assert reason is not None and "file_data" in reason and "images[].file_data" in reason, reason


def test_crystal_upscaler_reversed_adds_file_data() -> None:
    changes = drift(CRYSTAL_NOW, CRYSTAL_JAN)
    message = f"crystal-upscaler Apr → Jan 2026:\n{listing(changes)}"
    assert breaking_changes(changes) == [], message
    assert review_reason(changes) is None, message
    assert ("property_added", "images[].file_data", False) in triples(changes), message
    assert sorted(triples(changes)) == sorted(
        [("property_added", "images[].file_data", False)]
        + [("nullable_removed", f"images[].{name}", False) for name in IMAGE_FIELDS_NOW_NULLABLE]
    ), message


@pytest.mark.parametrize("older", ["2026-01-28", "2026-02-07"])
def test_flux_dev_content_type_becomes_nullable(older: str) -> None:
    changes = drift(f"fal-ai__flux__dev__{older}.json", "fal-ai/flux/dev")
    message = f"flux/dev {older} → now:\n{listing(changes)}"
    assert breaking_changes(changes) == [], message
    assert review_reason(changes) is None, message
    assert triples(changes) == [("nullable_added", "images[].content_type", False)], message
    assert changes[0].side == "output", message


def test_clarity_upscaler_seed_gains_a_minimum_its_default_meets() -> None:
    changes = drift("fal-ai__clarity-upscaler__2026-01-28.json", "fal-ai/clarity-upscaler")
    message = f"clarity-upscaler Jan → now:\n{listing(changes)}"
    assert breaking_changes(changes) == [], message
    assert triples(changes) == [("range_narrowed", "seed", False)], message
    assert (changes[0].side, changes[0].old, changes[0].new) == (
        "input",
        {"minimum": None},
        {"minimum": 0},
    ), message


def _drop_height(document: dict[str, Any]) -> None:
    del document["components"]["schemas"]["Image"]["properties"]["height"]


def _require_creativity(document: dict[str, Any]) -> None:
    document["components"]["schemas"]["CrystalUpscalerInput"]["required"].append("creativity")


def _drop_high_acceleration(document: dict[str, Any]) -> None:
    document["components"]["schemas"]["FluxDevInput"]["properties"]["acceleration"]["enum"].remove("high")


def _add_optional_negative_prompt(document: dict[str, Any]) -> None:
    document["components"]["schemas"]["FluxDevInput"]["properties"]["negative_prompt"] = {"type": "string"}


def _cap_steps_below_their_default(document: dict[str, Any]) -> None:
    steps = document["components"]["schemas"]["ClarityUpscalerInput"]["properties"]["num_inference_steps"]
    assert steps["default"] == 18
    steps["maximum"] = 10


@pytest.mark.parametrize(
    ("name", "edit", "expected"),
    [
        (CRYSTAL_JAN, _drop_height, [("property_removed", "images[].height", True)]),
        (CRYSTAL_NOW, _require_creativity, [("became_required", "creativity", True)]),
        ("fal-ai/flux/dev", _drop_high_acceleration, [("enum_value_removed", "acceleration", True)]),
        (
            "fal-ai__flux__dev__2026-01-28.json",
            _add_optional_negative_prompt,
            [("property_added", "negative_prompt", False)],
        ),
        (
            "fal-ai/clarity-upscaler",
            _cap_steps_below_their_default,
            [("range_narrowed", "num_inference_steps", True)],
        ),
    ],
    ids=[
        "crystal-jan-output",
        "crystal-now-input",
        "flux-dev-now-enum",
        "flux-dev-jan-added",
        "clarity-range",
    ],
)
def test_one_hand_made_edit_of_a_real_document_is_the_only_change(
    name: str, edit: Callable[[dict[str, Any]], None], expected: list[Triple]
) -> None:
    """The real document is resolved through its `$ref`s on both sides; only the edit may show."""
    original = raw_document(name)
    edited = copy.deepcopy(original)
    edit(edited)
    old, new = normalise_document(original), normalise_document(edited)
    changes = diff_model_schemas(old.input_schema, old.output_schema, new.input_schema, new.output_schema)
    assert triples(changes) == expected, listing(changes)
